"""Merging keeps tagged objects, ``name:`` dicts and lists as a user means them, on every merge path:
a file over its ``_BASE_``, ``-o`` over the file, and dict overrides (issue 10, part 2)."""

import textwrap

import pytest

from ppdet_lite.core.workspace import (ConfigError, TagNode, create, load_config, merge_config,
                                       register, serializable)


# --- dummy classes: a dataset (returns itself when called, as ppdet's datasets do), a head with
# --- injected assigners and a tagged loss, a scheduler taking positional tag arguments

@register
@serializable
class WmDataSet:
    def __init__(self, dataset_dir=None, image_dir=None, anno_path=None, data_fields=['image']):
        self.dataset_dir, self.image_dir, self.anno_path = dataset_dir, image_dir, anno_path
        self.data_fields = data_fields

    def __call__(self):
        return self


@serializable
class WmOtherDataSet:
    def __init__(self, dataset_dir=None, label_list=None):
        self.dataset_dir, self.label_list = dataset_dir, label_list


@register
class WmAligned:
    def __init__(self, topk=13, alpha=1.0, beta=6.0):
        self.topk, self.alpha, self.beta = topk, alpha, beta


@register
class WmATSS:
    def __init__(self, topk=9):
        self.topk = topk


@register
@serializable
class WmLoss:
    def __init__(self, loss_weight=1.0, eps=1e-10):
        self.loss_weight, self.eps = loss_weight, eps


@register
class WmHead:
    __inject__ = ['assigner', 'static_assigner', 'loss']

    def __init__(self, assigner=None, static_assigner=None, loss=None):
        self.assigner, self.static_assigner, self.loss = assigner, static_assigner, loss


@serializable
class WmPiecewise:
    def __init__(self, gamma=0.1, milestones=None):
        self.gamma, self.milestones = gamma, milestones


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


@pytest.fixture
def base(tmp_path):
    return write(tmp_path, 'base.yml', """
        TrainDataset: !WmDataSet {dataset_dir: data/a, anno_path: x.json}
        lr: !WmPiecewise [0.5, [10, 20]]
        WmHead:
          assigner: {name: WmAligned, topk: 13, alpha: 0.5}
          static_assigner: WmATSS
          loss: !WmLoss {loss_weight: 2.5}
        TrainReader:
          sample_transforms:
            - Decode: {}
            - RandomFlip: {prob: 0.5}
          batch_size: 8
    """)


def assert_dataset(obj, dataset_dir, anno_path):
    assert type(obj) is WmDataSet
    assert (obj.dataset_dir, obj.anno_path) == (dataset_dir, anno_path)


# --- tagged objects --------------------------------------------------------------------------

@pytest.mark.parametrize('how', ['load -o', 'merge_config -o', 'dict override', 'nested dict'])
def test_override_updates_one_argument_of_a_tag(base, how):
    if how == 'load -o':
        cfg = load_config(base, overrides=['TrainDataset.dataset_dir=data/b'])
    else:
        cfg = load_config(base)
        merge_config({'merge_config -o': ['TrainDataset.dataset_dir=data/b'],
                      'dict override': {'TrainDataset.dataset_dir': 'data/b'},
                      'nested dict': {'TrainDataset': {'dataset_dir': 'data/b'}}}[how], cfg)
    assert_dataset(cfg.TrainDataset, 'data/b', 'x.json')   # argument changed, others and class kept
    dataset = create('TrainDataset', cfg)()                # PaddleDetection's trainer habit
    assert dataset is cfg['TrainDataset']
    assert_dataset(dataset, 'data/b', 'x.json')


def test_later_file_updates_a_tag_of_its_base(base, tmp_path):
    child = write(tmp_path, 'child.yml', """
        _BASE_: [base.yml]
        TrainDataset: {dataset_dir: data/b, image_dir: train}
    """)
    cfg = load_config(child)
    assert_dataset(cfg.TrainDataset, 'data/b', 'x.json')
    assert cfg.TrainDataset.image_dir == 'train'


def test_later_file_with_its_own_tag_replaces_the_tag(base, tmp_path):
    # the later file states a whole object, as in PaddleDetection: no argument of the base survives
    child = write(tmp_path, 'child.yml', """
        _BASE_: [base.yml]
        TrainDataset: !WmDataSet {dataset_dir: data/b}
    """)
    assert_dataset(load_config(child).TrainDataset, 'data/b', None)


def test_name_of_another_class_replaces_the_tag(base):
    cfg = load_config(base, overrides={'TrainDataset': {'name': 'WmOtherDataSet',
                                                        'label_list': 'labels.txt'}})
    assert cfg.TrainDataset == {'name': 'WmOtherDataSet', 'label_list': 'labels.txt'}


def test_override_after_create_rebuilds_and_keeps_the_old_object(base):
    cfg = load_config(base)
    first = create('TrainDataset', cfg)
    cfg['TrainDataset'] = first()                          # as the trainer stores it back
    merge_config(['TrainDataset.anno_path=y.json'], cfg)
    assert_dataset(cfg.TrainDataset, 'data/a', 'y.json')
    assert cfg.TrainDataset is not first and first.anno_path == 'x.json'
    assert create('TrainDataset', cfg) is cfg.TrainDataset


def test_override_of_a_tag_whose_class_is_registered_later(tmp_path):
    path = write(tmp_path, 'a.yml', 'EvalDataset: !WmLateDataSet {dataset_dir: a, allow_empty: false}\n')
    cfg = load_config(path, overrides=['EvalDataset.allow_empty=true'])
    assert isinstance(cfg.EvalDataset, TagNode)            # the class does not exist yet
    with pytest.raises(AttributeError, match=r'a.yml:1: !WmLateDataSet is not built yet'):
        cfg.EvalDataset.get_anno()

    @serializable
    class WmLateDataSet:
        def __init__(self, dataset_dir=None, allow_empty=False):
            self.dataset_dir, self.allow_empty = dataset_dir, allow_empty

    built = create('EvalDataset', cfg)
    assert isinstance(built, WmLateDataSet) and (built.dataset_dir, built.allow_empty) == ('a', True)
    assert cfg.EvalDataset is built                        # usable as the object from now on


def test_positional_tag_arguments_can_be_overridden(base):
    cfg = load_config(base, overrides=['lr.gamma=0.2'])
    assert (cfg.lr.gamma, cfg.lr.milestones) == (0.2, [10, 20])


def test_tag_inside_a_section_keeps_its_other_arguments(base):
    cfg = load_config(base, overrides=['WmHead.loss.eps=0.5'])
    loss = create('WmHead', cfg).loss
    assert isinstance(loss, WmLoss) and (loss.loss_weight, loss.eps) == (2.5, 0.5)


def test_refused_override_leaves_the_config_unchanged(base):
    cfg = load_config(base)
    dataset = cfg.TrainDataset
    with pytest.raises(ConfigError, match="-o override: TrainDataset.anno_pth: WmDataSet has no "
                                          "argument 'anno_pth'; did you mean 'anno_path'"):
        merge_config(['TrainReader.batch_size=2', 'TrainDataset.anno_pth=y.json'], cfg)
    assert cfg.TrainDataset is dataset and cfg.TrainReader.batch_size == 8


# --- name: dicts and injected class names ----------------------------------------------------

@pytest.mark.parametrize('how', ['-o', 'dict override', 'later file'])
def test_override_of_one_argument_of_a_name_dict_keeps_the_name(base, tmp_path, how):
    if how == 'later file':
        cfg = load_config(write(tmp_path, 'child.yml', '_BASE_: [base.yml]\n'
                                                       'WmHead: {assigner: {topk: 9}}\n'))
    else:
        cfg = load_config(base, overrides={'-o': ['WmHead.assigner.topk=9'],
                                           'dict override': {'WmHead.assigner.topk': 9}}[how])
    assert cfg.WmHead.assigner == {'name': 'WmAligned', 'topk': 9, 'alpha': 0.5}
    assigner = create('WmHead', cfg).assigner
    assert isinstance(assigner, WmAligned) and (assigner.topk, assigner.alpha) == (9, 0.5)


def test_class_name_string_replaces_a_name_dict(base):
    cfg = load_config(base, overrides=['WmHead.assigner=WmATSS'])
    assert isinstance(create('WmHead', cfg).assigner, WmATSS)


def test_name_dict_of_another_class_replaces_the_old_arguments(base):
    # alpha belongs to WmAligned: keeping it for WmATSS would be an error
    cfg = load_config(base, overrides={'WmHead.assigner': {'name': 'WmATSS', 'topk': 5}})
    assigner = create('WmHead', cfg).assigner
    assert isinstance(assigner, WmATSS) and assigner.topk == 5


def test_arguments_for_an_injected_class_name(base, tmp_path):
    # ``static_assigner: WmATSS`` then ``static_assigner.topk=3``: arguments for that class
    cfg = load_config(base, overrides=['WmHead.static_assigner.topk=3'])
    assert cfg.WmHead.static_assigner == {'name': 'WmATSS', 'topk': 3}
    assert create('WmHead', cfg).static_assigner.topk == 3
    child = write(tmp_path, 'child.yml', '_BASE_: [base.yml]\nWmHead: {static_assigner: {topk: 4}}\n')
    assert create('WmHead', load_config(child)).static_assigner.topk == 4


# --- lists are replaced whole (PaddleDetection's rule) -----------------------------------------

def test_lists_are_replaced_whole_by_a_later_file_and_by_overrides(base, tmp_path):
    child = write(tmp_path, 'child.yml', """
        _BASE_: [base.yml]
        TrainReader:
          sample_transforms:
            - Decode: {}
    """)
    cfg = load_config(child)
    assert cfg.TrainReader.sample_transforms == [{'Decode': {}}] and cfg.TrainReader.batch_size == 8
    merge_config(["TrainReader.sample_transforms=[{Decode: {}}, {Permute: {}}]"], cfg)
    assert cfg.TrainReader.sample_transforms == [{'Decode': {}}, {'Permute': {}}]
    merge_config({'TrainReader.sample_transforms': [{'Resize': {'target_size': [64, 64]}}]}, cfg)
    assert cfg.TrainReader.sample_transforms == [{'Resize': {'target_size': [64, 64]}}]


def test_mapping_into_a_list_is_refused_naming_both_origins(base):
    cfg = load_config(base)
    with pytest.raises(ConfigError) as e:
        merge_config(['TrainReader.sample_transforms.RandomFlip.prob=0.3'], cfg)
    msg = str(e.value)
    assert msg.startswith('-o override: TrainReader.sample_transforms: cannot merge the mapping')
    assert f'into a list (2 items) set at {base}:9' in msg and 'a list is replaced whole' in msg


def test_mapping_into_a_number_is_refused(base, tmp_path):
    child = write(tmp_path, 'child.yml', '_BASE_: [base.yml]\nTrainReader: {batch_size: {x: 1}}\n')
    with pytest.raises(ConfigError, match=rf"{child}:2: TrainReader.batch_size: cannot merge the "
                                          rf"mapping {{'x': 1}} into the int 8 set at {base}:12"):
        load_config(child)
