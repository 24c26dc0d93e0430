"""The config system: every feature on small registered dummy classes, and each error message."""

import os
import textwrap

import pytest

from ppdet_lite.core.workspace import (AttrDict, ConfigError, create, current_config, load_config,
                                       merge_config, parse_overrides, register, serializable)
from ppdet_lite.utils.cli import ArgsParser, config_from_args


# --- dummy classes, shaped like a detector's parts -------------------------------------------

class _Shape:
    def __init__(self, channels):
        self.channels = channels


@register
class WsBackbone:
    __shared__ = ['width_mult']

    def __init__(self, depth=50, width_mult=1.0, return_idx=[1, 2, 3], freeze_norm=False):
        self.depth, self.width_mult, self.return_idx = depth, width_mult, return_idx
        self.freeze_norm = freeze_norm

    @property
    def out_shape(self):
        return [_Shape(int(c * self.width_mult)) for c in (256, 512, 1024)]


@register
class WsNeck:
    __shared__ = ['width_mult']

    def __init__(self, in_channels=[256, 512, 1024], out_channels=[64], width_mult=1.0):
        self.in_channels, self.out_channels, self.width_mult = in_channels, out_channels, width_mult

    @classmethod
    def from_config(cls, cfg, input_shape):
        return {'in_channels': [s.channels for s in input_shape]}


@register
class WsAssigner:
    __shared__ = ['num_classes']

    def __init__(self, topk=9, num_classes=80):
        self.topk, self.num_classes = topk, num_classes


@register
class WsHead:
    __shared__ = ['num_classes']
    __inject__ = ['assigner', 'static_assigner', 'loss']

    def __init__(self, num_classes=80, assigner='WsAssigner', static_assigner=None, loss='WsLoss',
                 in_channels=None):
        self.num_classes, self.assigner, self.static_assigner = num_classes, assigner, static_assigner
        self.loss, self.in_channels = loss, in_channels


@register
@serializable
class WsLoss:
    def __init__(self, loss_weight=1.0, eps=1e-10):
        self.loss_weight, self.eps = loss_weight, eps


@register
class WsDetector:
    def __init__(self, backbone, neck, head):
        self.backbone, self.neck, self.head = backbone, neck, head

    @classmethod
    def from_config(cls, cfg, *args, **kwargs):
        backbone = create(cfg['backbone'])
        neck = create(cfg['neck'], input_shape=backbone.out_shape)
        return {'backbone': backbone, 'neck': neck, 'head': create(cfg['head'])}


@register
class WsNeedsArg:
    def __init__(self, required_size, scale=1.0):
        self.required_size, self.scale = required_size, scale


@serializable
class WsDataset:
    def __init__(self, dataset_dir=None, anno_path=None, data_fields=['image']):
        self.dataset_dir, self.anno_path, self.data_fields = dataset_dir, anno_path, data_fields


@serializable
class WsPiecewise:
    def __init__(self, gamma=0.1, milestones=None):
        self.gamma, self.milestones = gamma, milestones


# --- helpers ---------------------------------------------------------------------------------

def write(tmp_path, name, text):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return str(path)


@pytest.fixture
def detector_tree(tmp_path):
    """A PaddleDetection-shaped tree: main -> [runtime, _base_/model, _base_/reader], model -> arch."""
    write(tmp_path, 'runtime.yml', """
        use_gpu: false
        log_iter: 20
        save_dir: output
    """)
    write(tmp_path, 'ppyoloe/_base_/arch.yml', """
        architecture: WsDetector
        WsDetector:
          backbone: WsBackbone
          neck: WsNeck
          head: WsHead
        WsBackbone:
          depth: 50
          return_idx: [1, 2, 3]
    """)
    write(tmp_path, 'ppyoloe/_base_/model.yml', """
        _BASE_: ['arch.yml']
        num_classes: 80
        width_mult: 1.0
        WsBackbone:
          freeze_norm: true
        WsHead:
          static_assigner: {name: WsAssigner, topk: 7}
          assigner: WsAssigner
          loss: !WsLoss {loss_weight: 2.5}
        WsAssigner:
          topk: 13
    """)
    write(tmp_path, 'ppyoloe/_base_/reader.yml', """
        TrainDataset: !WsDataset
          dataset_dir: dataset/coco
          anno_path: annotations/instances_train2017.json
        TrainReader:
          batch_size: 8
    """)
    return write(tmp_path, 'ppyoloe/model_s.yml', """
        _BASE_: [
          '../runtime.yml',
          './_base_/model.yml',
          './_base_/reader.yml',
        ]
        width_mult: 0.50
        num_classes: 4
        TrainReader:
          batch_size: 2
    """)


# --- loading, inheritance, shared keys, injection, tags, from_config -------------------------

def test_round_trip_builds_expected_object_graph(detector_tree):
    cfg = load_config(detector_tree)
    assert isinstance(cfg, AttrDict) and cfg.filename == 'model_s'
    assert cfg.use_gpu is False and cfg.log_iter == 20           # from runtime.yml, two levels up
    assert cfg.TrainReader == {'batch_size': 2}                   # main file wins over its base
    assert cfg.WsBackbone == {'depth': 50, 'return_idx': [1, 2, 3], 'freeze_norm': True}  # deep merge

    model = create(cfg.architecture)
    assert isinstance(model, WsDetector)
    assert model.backbone.width_mult == 0.5                      # __shared__ from the top-level key
    assert model.backbone.freeze_norm is True and model.backbone.depth == 50
    assert model.neck.in_channels == [128, 256, 512]             # from_config(input_shape=...)
    assert model.neck.width_mult == 0.5
    head = model.head
    assert head.num_classes == 4
    assert isinstance(head.assigner, WsAssigner)                 # injected by class name
    assert head.assigner.topk == 13 and head.assigner.num_classes == 4
    assert isinstance(head.static_assigner, WsAssigner)          # injected dict with name + args
    assert head.static_assigner.topk == 7 and head.static_assigner.num_classes == 4
    assert isinstance(head.loss, WsLoss) and head.loss.loss_weight == 2.5   # tagged object
    assert isinstance(cfg.TrainDataset, WsDataset)
    assert cfg.TrainDataset.anno_path == 'annotations/instances_train2017.json'
    assert create('TrainDataset') is cfg.TrainDataset            # tagged top-level objects as is


def test_local_setting_beats_shared_key(tmp_path):
    path = write(tmp_path, 'a.yml', """
        num_classes: 3
        WsAssigner: {num_classes: 5}
    """)
    cfg = load_config(path)
    assert create('WsAssigner', cfg).num_classes == 5
    del cfg['WsAssigner']['num_classes']
    assert create('WsAssigner', cfg).num_classes == 3


def test_defaults_without_section_and_explicit_cfg(tmp_path):
    cfg = load_config(write(tmp_path, 'a.yml', 'log_iter: 1\n'), make_current=False)
    obj = create(WsBackbone, cfg)
    assert (obj.depth, obj.width_mult, obj.return_idx) == (50, 1.0, [1, 2, 3])


def test_inject_alias_key_and_tagged_object(tmp_path):
    path = write(tmp_path, 'a.yml', """
        my_assigner: {name: WsAssigner, topk: 3}
        shared_loss: !WsLoss {eps: 0.5}
        WsHead:
          assigner: my_assigner
          loss: shared_loss
    """)
    head = create('WsHead', load_config(path))
    assert isinstance(head.assigner, WsAssigner) and head.assigner.topk == 3
    assert head.loss.eps == 0.5


def test_inject_none_and_prebuilt_objects(tmp_path):
    cfg = load_config(write(tmp_path, 'a.yml', 'WsHead: {static_assigner: null}\n'))
    assert create('WsHead', cfg).static_assigner is None
    prebuilt = WsAssigner(topk=1)
    cfg['WsHead']['assigner'] = prebuilt
    assert create('WsHead', cfg).assigner is prebuilt


def test_sequence_tag_and_scalar_tag(tmp_path):
    path = write(tmp_path, 'a.yml', """
        lr: !WsPiecewise [0.5, [10, 20]]
        data: !WsDataset {}
    """)
    cfg = load_config(path)
    assert (cfg.lr.gamma, cfg.lr.milestones) == (0.5, [10, 20])
    assert cfg.data.data_fields == ['image']


def test_tags_do_not_leak_into_plain_pyyaml():
    import yaml
    with pytest.raises(yaml.YAMLError):
        yaml.safe_load('x: !WsLoss {eps: 1.0}')


def test_create_uses_current_config(detector_tree):
    cfg = load_config(detector_tree)
    assert current_config() is cfg
    assert create('WsAssigner').topk == 13


# --- overrides -------------------------------------------------------------------------------

def test_parse_overrides_yaml_scalars_and_dotted_paths():
    got = parse_overrides(['epoch=3', 'use_gpu=false', 'lr=0.01', 'name=abc', 'ids=[1, 2]',
                           'TrainReader.batch_size=4', 'a.b.c=null'])
    assert got == {'epoch': 3, 'use_gpu': False, 'lr': 0.01, 'name': 'abc', 'ids': [1, 2],
                   'TrainReader': {'batch_size': 4}, 'a': {'b': {'c': None}}}
    assert isinstance(got['epoch'], int) and isinstance(got['lr'], float)


def test_merge_config_overrides_nested_and_shared(detector_tree):
    cfg = load_config(detector_tree)
    merge_config(['TrainReader.batch_size=16', 'width_mult=0.25', 'WsAssigner.topk=5'])
    assert cfg.TrainReader.batch_size == 16
    model = create(cfg.architecture)
    assert model.backbone.width_mult == 0.25 and model.head.assigner.topk == 5


def test_load_config_with_overrides_and_cli(detector_tree):
    args = ArgsParser().parse_args(['-c', detector_tree, '-o', 'num_classes=9', 'log_iter=5'])
    assert args.opt == {'num_classes': 9, 'log_iter': 5}
    cfg = config_from_args(args)
    assert cfg.num_classes == 9 and cfg.log_iter == 5
    assert create(cfg.architecture).head.num_classes == 9


def test_cli_repeated_o_flags_all_count(detector_tree):
    args = ArgsParser().parse_args(['-c', detector_tree, '-o', 'num_classes=9', '-o', 'log_iter=5',
                                    'epoch=2'])
    assert args.opt == {'num_classes': 9, 'log_iter': 5, 'epoch': 2}


def test_cli_rejects_malformed_override(detector_tree, capsys):
    with pytest.raises(SystemExit):
        ArgsParser().parse_args(['-c', detector_tree, '-o', 'epoch'])
    assert "not of the form key=value" in capsys.readouterr().err


# --- errors: each names the file and the key -------------------------------------------------

def test_unknown_class_with_suggestion(tmp_path):
    path = write(tmp_path, 'a.yml', """
        WsHead:
          assigner: WsAsigner
    """)
    cfg = load_config(path)
    with pytest.raises(ConfigError) as e:
        create('WsHead', cfg)
    msg = str(e.value)
    assert path in msg and 'WsHead.assigner' in msg and "unknown class 'WsAsigner'" in msg
    assert "did you mean 'WsAssigner'" in msg


def test_unknown_architecture_name(tmp_path):
    path = write(tmp_path, 'a.yml', 'architecture: WsDetectr\n')
    cfg = load_config(path)
    with pytest.raises(ConfigError, match=f"^{path}:1: architecture: unknown class 'WsDetectr'; "
                                          f"did you mean 'WsDetector'"):
        create(cfg.architecture, cfg)


def test_unknown_argument_names_file_key_and_suggestion(tmp_path):
    base = write(tmp_path, 'base.yml', """
        WsBackbone:
          depht: 18
    """)
    main = write(tmp_path, 'main.yml', "_BASE_: ['base.yml']\nlog_iter: 1\n")
    with pytest.raises(ConfigError) as e:
        load_config(main)
    msg = str(e.value)
    assert base in msg and "WsBackbone has no argument 'depht'" in msg
    assert "did you mean 'depth'" in msg


def test_unknown_argument_from_override_is_reported(detector_tree):
    cfg = load_config(detector_tree)
    with pytest.raises(ConfigError, match=r"^-o override: WsAssigner.topkk: WsAssigner has no "
                                          r"argument 'topkk'"):
        merge_config(['WsAssigner.topkk=3'], cfg)


def test_unknown_argument_in_injected_dict(tmp_path):
    path = write(tmp_path, 'a.yml', 'WsHead: {assigner: {name: WsAssigner, top_k: 3}}\n')
    with pytest.raises(ConfigError) as e:
        create('WsHead', load_config(path))
    assert path in str(e.value) and 'WsHead.assigner' in str(e.value)
    assert "no argument 'top_k'; did you mean 'topk'" in str(e.value)


def test_unknown_argument_in_tag_names_line(tmp_path):
    path = write(tmp_path, 'a.yml', """
        log_iter: 1
        TrainDataset: !WsDataset {dataset_dir: d, anno_pth: x.json}
    """)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert f'{path}:3' in str(e.value) and "did you mean 'anno_path'" in str(e.value)


def test_missing_required_argument(tmp_path):
    path = write(tmp_path, 'a.yml', 'WsNeedsArg: {scale: 2.0}\n')
    with pytest.raises(ConfigError) as e:
        create('WsNeedsArg', load_config(path))
    assert path in str(e.value) and 'missing required argument(s) required_size' in str(e.value)


def test_wrong_type(tmp_path):
    path = write(tmp_path, 'a.yml', 'WsBackbone: {depth: fifty}\n')
    with pytest.raises(ConfigError) as e:
        load_config(path)
    msg = str(e.value)
    assert path in msg and 'WsBackbone.depth expects int' in msg and "'fifty'" in msg


def test_int_accepted_for_float_but_not_bool_for_int(tmp_path):
    cfg = load_config(write(tmp_path, 'a.yml', 'WsLoss: {loss_weight: 2}\n'))
    assert create('WsLoss', cfg).loss_weight == 2
    with pytest.raises(ConfigError, match='WsBackbone.depth expects int'):
        load_config(write(tmp_path, 'b.yml', 'WsBackbone: {depth: true}\n'))


def test_missing_base_file(tmp_path):
    path = write(tmp_path, 'a.yml', "_BASE_: ['./_base_/nope.yml']\n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert path in str(e.value) and "_BASE_ entry './_base_/nope.yml' not found" in str(e.value)


def test_base_cycle_is_reported(tmp_path):
    write(tmp_path, 'a.yml', "_BASE_: ['b.yml']\n")
    path_b = write(tmp_path, 'b.yml', "_BASE_: ['a.yml']\n")
    with pytest.raises(ConfigError, match='inheritance cycle'):
        load_config(str(tmp_path / 'a.yml'))
    assert os.path.exists(path_b)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match='config file not found'):
        load_config(str(tmp_path / 'missing.yml'))


def test_invalid_yaml_names_file(tmp_path):
    path = write(tmp_path, 'a.yml', 'a: [1, 2\n')
    with pytest.raises(ConfigError, match='invalid YAML') as e:
        load_config(path)
    assert path in str(e.value)


def test_injected_dict_needs_name(tmp_path):
    path = write(tmp_path, 'a.yml', 'WsHead: {assigner: {topk: 3}}\n')
    with pytest.raises(ConfigError, match="WsHead.assigner: an injected dict needs a 'name' key"):
        create('WsHead', load_config(path))


def test_register_rejects_inconsistent_declarations():
    with pytest.raises(TypeError, match="lists 'num_clases'"):
        @register
        class WsBroken:
            __shared__ = ['num_clases']

            def __init__(self, num_classes=80):
                pass


def test_no_current_config_message():
    import contextvars
    from ppdet_lite.core import workspace

    def probe():
        workspace._CURRENT.set(None)
        with pytest.raises(ConfigError, match='no config loaded'):
            current_config()

    contextvars.copy_context().run(probe)


def test_tag_of_class_registered_later_is_built_on_use(tmp_path):
    path = write(tmp_path, 'a.yml', """
        TrainDataset: !WsLateDataset {root: data}
        WsScheduler:
          schedulers: [!WsLateDataset {root: s1}]
    """)
    cfg = load_config(path)
    assert 'WsLateDataset' in repr(cfg.TrainDataset)  # deferred: the class does not exist yet

    @serializable
    class WsLateDataset:
        def __init__(self, root=None):
            self.root = root

    @register
    class WsScheduler:
        def __init__(self, schedulers=[]):
            self.schedulers = schedulers

    dataset = create('TrainDataset', cfg)
    assert isinstance(dataset, WsLateDataset) and dataset.root == 'data'
    assert create('TrainDataset', cfg) is dataset                  # built once
    assert create('WsScheduler', cfg).schedulers[0].root == 's1'   # tags nested in sections


def test_unknown_tag_names_file_and_line(tmp_path):
    path = write(tmp_path, 'a.yml', """
        log_iter: 1
        TrainDataset: !WsDatset {dataset_dir: d}
    """)
    cfg = load_config(path)
    with pytest.raises(ConfigError) as e:
        create('TrainDataset', cfg)
    assert str(e.value).startswith(f"{path}:3: TrainDataset: unknown tag !WsDatset; did you mean "
                                   f"'WsDataset'")


def test_top_level_name_dict_is_built(tmp_path):
    # PaddleDetection 2.6 writes datasets as `TrainDataset: {name: COCODataSet, ...}`
    path = write(tmp_path, 'a.yml', """
        num_classes: 6
        TrainAssigner:
          name: WsAssigner
          topk: 4
    """)
    built = create('TrainAssigner', load_config(path))
    assert isinstance(built, WsAssigner) and (built.topk, built.num_classes) == (4, 6)
    bad = write(tmp_path, 'b.yml', 'TrainAssigner: {name: WsAsigner}\n')
    with pytest.raises(ConfigError, match=f"{bad}:1: TrainAssigner: unknown class 'WsAsigner'"):
        create('TrainAssigner', load_config(bad))


def test_dict_overrides_accept_dotted_paths(detector_tree):
    cfg = load_config(detector_tree, overrides={'WsHead.static_assigner.topk': 2, 'log_iter': 7})
    assert cfg.log_iter == 7 and cfg.WsHead.static_assigner == {'name': 'WsAssigner', 'topk': 2}
    assert create('WsHead', cfg).static_assigner.topk == 2


def test_from_config_sees_constructor_defaults(tmp_path):
    @register
    class WsDefaultDetector:
        def __init__(self, backbone='WsBackbone', neck=None):
            self.backbone, self.neck = backbone, neck

        @classmethod
        def from_config(cls, cfg, *args, **kwargs):
            return {'backbone': create(cfg['backbone'])}

    cfg = load_config(write(tmp_path, 'a.yml', 'architecture: WsDefaultDetector\n'))
    assert isinstance(create(cfg.architecture, cfg).backbone, WsBackbone)  # no section at all


def test_errors_inside_from_config_name_the_outer_class(detector_tree):
    cfg = load_config(detector_tree)
    merge_config(['WsDetector.backbone=WsBackbon'], cfg)
    with pytest.raises(ConfigError) as e:
        create(cfg.architecture, cfg)
    msg = str(e.value)
    assert 'while building WsDetector' in msg and "unknown class 'WsBackbon'" in msg
    assert '-o override' in msg


def test_shared_key_of_wrong_type_names_the_top_level_key(detector_tree):
    with pytest.raises(ConfigError) as e:  # refused where it enters: the classes are registered
        load_config(detector_tree, overrides=['width_mult=abc'])
    assert str(e.value).startswith('-o override: width_mult: ')
    assert "WsBackbone.width_mult (shared through __shared__) expects float" in str(e.value)


def test_exponent_floats_without_dot_are_floats(tmp_path):
    assert parse_overrides(['eps=1e-9', 'big=2E+3', 'plain=7', 'name=e10']) == \
        {'eps': 1e-9, 'big': 2000.0, 'plain': 7, 'name': 'e10'}
    cfg = load_config(write(tmp_path, 'a.yml', 'WsLoss: {eps: 1e-6}\n'))
    assert create('WsLoss', cfg).eps == 1e-6


def test_base_must_name_files(tmp_path):
    path = write(tmp_path, 'a.yml', '_BASE_: 3\n')
    with pytest.raises(ConfigError, match=f'{path}:1: _BASE_ must be a file name or a list'):
        load_config(path)


def test_scalar_section_is_rejected(tmp_path):
    cfg = load_config(write(tmp_path, 'a.yml', 'log_iter: 1\n'), overrides=['WsAssigner=3'])
    with pytest.raises(ConfigError, match='-o override: WsAssigner: a section of constructor '
                                          'arguments must be a mapping, got int 3'):
        create('WsAssigner', cfg)
