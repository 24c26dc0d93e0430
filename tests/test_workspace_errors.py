"""Every config error names where the value came from (``file:line`` or ``-o override``) and its key,
and a value that cannot be right for its argument is refused where it enters (issue 10, part 3).

One test per kind of error; the messages are matched from their start, so the origin and the key
are checked, not just present somewhere."""

import re
import textwrap

import pytest

from ppdet_lite.core.workspace import (ConfigError, create, load_config, merge_config,
                                       parse_overrides, register, serializable)
from ppdet_lite.utils.cli import ArgsParser, config_from_args


@register
class WeBackbone:
    __shared__ = ['width_mult']

    def __init__(self, depth=50, width_mult=1.0, return_idx=[1, 2, 3]):
        self.depth, self.width_mult, self.return_idx = depth, width_mult, return_idx


@register
class WeAssigner:
    def __init__(self, topk=9, reduction='mean'):
        if topk < 1:
            raise ValueError(f'topk must be >= 1, got {topk}')
        self.topk, self.reduction = topk, reduction


@register
class WeYoloHead:
    __shared__ = ['num_classes', 'eval_size']
    __inject__ = ['assigner']

    def __init__(self, num_classes=80, eval_size=None, assigner='WeAssigner'):
        self.num_classes, self.eval_size, self.assigner = num_classes, eval_size, assigner


@register
class WeDetector:
    def __init__(self, backbone, head):
        self.backbone, self.head = backbone, head

    @classmethod
    def from_config(cls, cfg, *args, **kwargs):
        return {'backbone': create(cfg['backbone']), 'head': create(cfg['head'])}


@register
class WeNeeds:
    def __init__(self, size, scale=1.0):
        self.size, self.scale = size, scale


@register
@serializable
class WeDataSet:
    def __init__(self, dataset_dir=None, anno_path=None, data_fields=['image']):
        self.dataset_dir, self.anno_path, self.data_fields = dataset_dir, anno_path, data_fields


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip())
    return str(path)


@pytest.fixture
def model_yml(tmp_path):
    return write(tmp_path, 'model.yml', """
        architecture: WeDetector
        num_classes: 80
        eval_size: ~
        width_mult: 1.0
        WeDetector:
          backbone: WeBackbone
          head: WeYoloHead
        WeYoloHead:
          assigner: {name: WeAssigner, topk: 13}
        TrainDataset: !WeDataSet {dataset_dir: data, anno_path: a.json}
    """)


def raises(pattern, fn, *args, **kwargs):
    """Run fn; its ConfigError message must start with ``pattern`` (a literal string)."""
    with pytest.raises(ConfigError) as e:
        fn(*args, **kwargs)
    assert str(e.value).startswith(pattern), str(e.value)
    return str(e.value)


# --- unknown class names, for every kind of key --------------------------------------------------

def test_unknown_architecture_in_a_file_names_file_line_and_key(tmp_path, model_yml):
    path = write(tmp_path, 'main.yml', "_BASE_: [model.yml]\narchitecture: WeDetectorWithAux\n")
    cfg = load_config(path)
    msg = raises(f"{path}:2: architecture: unknown class 'WeDetectorWithAux'; did you mean "
                 f"'WeDetector'?", create, cfg.architecture, cfg)
    assert 'even after importing ppdet_lite.modeling' in msg


def test_unknown_class_from_an_override_says_so(model_yml):
    cfg = load_config(model_yml, overrides=['architecture=WeDetectr'])
    raises("-o override: architecture: unknown class 'WeDetectr'; did you mean 'WeDetector'?",
           create, cfg.architecture, cfg)


def test_unknown_class_read_by_a_from_config_hook_names_its_key(model_yml):
    # the detector's hook calls create(cfg['backbone']): the message still finds the key
    cfg = load_config(model_yml, overrides=['WeDetector.backbone=WeBackbon'])
    msg = raises("-o override: WeDetector.backbone: unknown class 'WeBackbon'; did you mean "
                 "'WeBackbone'?", create, cfg.architecture, cfg)
    assert msg.endswith(f'(while building WeDetector at {model_yml}:5)')


def test_unknown_injected_class_in_a_name_dict(model_yml):
    cfg = load_config(model_yml, overrides=['WeYoloHead.assigner.name=WeAsigner'])
    raises("-o override: WeYoloHead.assigner: unknown class 'WeAsigner'", create, 'WeYoloHead', cfg)


def test_unknown_tag_names_file_line_and_key(tmp_path):
    path = write(tmp_path, 'a.yml', 'log_iter: 1\nEvalDataset: !WeDataSat {dataset_dir: d}\n')
    raises(f"{path}:2: EvalDataset: unknown tag !WeDataSat; did you mean 'WeDataSet'?",
           create, 'EvalDataset', load_config(path))


# --- unknown arguments -------------------------------------------------------------------------

@pytest.mark.parametrize('override, key', [
    ('WeBackbone.dept=18', 'WeBackbone.dept'),                     # a section
    ('WeYoloHead.assigner.top_k=3', 'WeYoloHead.assigner.top_k'),  # a name: dict in a section
    ('TrainDataset.anno_pth=b.json', 'TrainDataset.anno_pth'),     # a tag's argument
])
def test_unknown_argument_from_override(model_yml, override, key):
    msg = raises(f'-o override: {key}: ', load_config, model_yml, overrides=[override])
    assert re.search(r"has no argument '\w+'; did you mean '(depth|topk|anno_path)'\?", msg)


def test_unknown_argument_of_a_tag_in_a_file_names_its_line(tmp_path, model_yml):
    path = write(tmp_path, 'main.yml', """
        _BASE_: [model.yml]
        TrainDataset:
          dataset_dir: mine
          anno_pth: b.json
    """)
    raises(f"{path}:4: TrainDataset.anno_pth: WeDataSet has no argument 'anno_pth'", load_config, path)


# --- values that cannot be right for their argument ----------------------------------------------

def test_string_none_for_a_shared_key_is_refused_at_the_override(model_yml):
    # -o eval_size=None is YAML's string 'None'; the head takes eval_size through __shared__
    raises("-o override: eval_size: the string 'None' is not null; did you mean null (~)? "
           "(WeYoloHead.eval_size (shared through __shared__), default None)",
           load_config, model_yml, overrides=['eval_size=None'])


@pytest.mark.parametrize('override, key', [
    ('WeBackbone.return_idx=none', 'WeBackbone.return_idx'),
    ('WeYoloHead.assigner.topk=None', 'WeYoloHead.assigner.topk'),
    ("TrainDataset.anno_path='null'", 'TrainDataset.anno_path'),
])
def test_string_none_for_any_argument_is_refused(model_yml, override, key):
    raises(f"-o override: {key}: the string ", load_config, model_yml, overrides=[override])


def test_string_none_in_a_file_names_the_line(tmp_path, model_yml):
    path = write(tmp_path, 'main.yml', "_BASE_: [model.yml]\nWeBackbone:\n  return_idx: None\n")
    raises(f"{path}:3: WeBackbone.return_idx: the string 'None' is not null", load_config, path)


def test_string_none_is_a_value_where_the_default_is_a_string(model_yml):
    # reduction='none' is a real value of losses (PaddleDetection's varifocal loss)
    cfg = load_config(model_yml, overrides=['WeYoloHead.assigner.reduction=none'])
    assert create('WeYoloHead', cfg).assigner.reduction == 'none'


def test_string_none_is_refused_when_the_class_registers_only_at_create(tmp_path):
    path = write(tmp_path, 'a.yml', 'WeLateHead: {score_thresh: 0.1}\n')
    cfg = load_config(path, overrides=['WeLateHead.score_thresh=None'])  # unknown class: no check yet

    @register
    class WeLateHead:
        def __init__(self, score_thresh=0.05):
            self.score_thresh = score_thresh

    raises("-o override: WeLateHead.score_thresh: the string 'None' is not null", create,
           'WeLateHead', cfg)


@pytest.mark.parametrize('override, message', [
    ('WeBackbone.return_idx=abc', "WeBackbone.return_idx: WeBackbone.return_idx expects list "
                                  "(default [1, 2, 3]), got str 'abc'"),
    ('WeBackbone.depth=[18]', 'WeBackbone.depth: WeBackbone.depth expects int (default 50), '
                              'got list [18]'),
    ('width_mult=wide', "width_mult: WeBackbone.width_mult (shared through __shared__) expects "
                        "float (default 1.0), got str 'wide'"),
])
def test_wrong_type_for_the_default(model_yml, override, message):
    raises(f'-o override: {message}', load_config, model_yml, overrides=[override])


def test_constructor_refusal_names_the_entry_and_where_each_argument_came_from(model_yml):
    cfg = load_config(model_yml, overrides=['WeYoloHead.assigner.topk=0'])
    # the entry was written in the file; its refused argument came from the override
    raises(f"{model_yml}:9: WeYoloHead.assigner: building WeAssigner failed: ValueError: topk must "
           f"be >= 1, got 0 (arguments set elsewhere: topk from -o override)", create, 'WeYoloHead',
           cfg)
    cfg = load_config(model_yml, overrides=['WeYoloHead.assigner.reduction=sum'])
    cfg.WeYoloHead.assigner.topk = -1  # set in the file's own entry: no list of other origins
    raises(f"{model_yml}:9: WeYoloHead.assigner: building WeAssigner failed: ValueError: topk must "
           f"be >= 1, got -1 (arguments set elsewhere: reduction from -o override)", create,
           'WeYoloHead', cfg)


def test_missing_required_argument_names_the_section(tmp_path, model_yml):
    path = write(tmp_path, 'main.yml', '_BASE_: [model.yml]\nWeNeeds: {scale: 2.0}\n')
    raises(f'{path}:2: WeNeeds: WeNeeds is missing required argument(s) size (set them in the '
           f'WeNeeds section)', create, 'WeNeeds', load_config(path))
    cfg = load_config(model_yml)
    del cfg.WeDetector['backbone']  # read by WeDetector.from_config
    raises(f"{model_yml}:5: WeDetector: WeDetector.from_config needs the argument 'backbone'",
           create, 'WeDetector', cfg)


def test_too_many_positional_tag_arguments(tmp_path):
    path = write(tmp_path, 'a.yml', 'TrainDataset: !WeDataSet [a, b, c, d]\n')
    raises(f'{path}:1: TrainDataset: !WeDataSet ', load_config, path)


# --- files -----------------------------------------------------------------------------------------

def test_duplicate_key_in_one_mapping(tmp_path):
    path = write(tmp_path, 'a.yml', """
        WeBackbone:
          depth: 18
        num_classes: 3
        WeBackbone:
          depth: 34
    """)
    raises(f"{path}:4: key 'WeBackbone' appears twice in one mapping (first at line 1)",
           load_config, path)


def test_yaml_merge_keys_are_not_duplicates(tmp_path):
    path = write(tmp_path, 'a.yml', """
        base: &base {depth: 18, return_idx: [2, 3]}
        WeBackbone:
          <<: *base
          depth: 34
    """)
    assert create('WeBackbone', load_config(path)).depth == 34


def test_file_must_hold_a_mapping(tmp_path):
    path = write(tmp_path, 'a.yml', '- a\n- b\n')
    raises(f'{path}: a config file must hold a mapping at top level, got list', load_config, path)


def test_invalid_yaml_names_file_and_line(tmp_path):
    path = write(tmp_path, 'a.yml', 'a: 1\nb: [1, 2\n')
    msg = raises(f'{path}: invalid YAML: ', load_config, path)
    assert 'line 3' in msg


def test_missing_base_names_the_line_of_base(tmp_path):
    path = write(tmp_path, 'a.yml', "log_iter: 1\n_BASE_: ['./_base_/nope.yml']\n")
    raises(f"{path}:2: _BASE_ entry './_base_/nope.yml' not found", load_config, path)


# --- overrides and the command line ----------------------------------------------------------------

@pytest.mark.parametrize('items, message', [
    (['epoch'], "override 'epoch' is not of the form key=value"),
    (['TrainReader..batch_size=2'], "override 'TrainReader..batch_size=2': empty key component"),
    (['eval_size=[640, 640'], "override 'eval_size=[640, 640': invalid YAML value"),
    (['a={x: 1, x: 2}'], "override 'a={x: 1, x: 2}': invalid YAML value: -o override: key 'x' "
                         "appears twice"),
    (['TrainReader=3', 'TrainReader.batch_size=2'],
     "override 'TrainReader.batch_size=2' conflicts with the earlier override 'TrainReader=3'"),
    (['TrainReader.batch_size=2', 'TrainReader=3'],
     "override 'TrainReader=3' conflicts with the earlier override 'TrainReader.batch_size=2'"),
])
def test_malformed_overrides(items, message):
    raises(message, parse_overrides, items)


def test_overrides_of_different_keys_of_one_section_do_not_conflict():
    assert parse_overrides(['R.a=1', 'R.b=2', 'R.a=3']) == {'R': {'a': 3, 'b': 2}}


def test_cli_reports_override_and_config_errors(model_yml, capsys):
    with pytest.raises(SystemExit):
        ArgsParser().parse_args(['-c', model_yml, '-o', 'a.=1'])
    assert "override 'a.=1': empty key component" in capsys.readouterr().err
    args = ArgsParser().parse_args(['-c', model_yml, '-o', 'eval_size=None'])
    raises("-o override: eval_size: the string 'None' is not null", config_from_args, args)


def test_create_needs_a_class_or_a_name(model_yml):
    cfg = load_config(model_yml)
    raises("create() takes a class or a class name, got dict {'name': 'WeAssigner'}",
           create, {'name': 'WeAssigner'}, cfg)


def test_errors_after_merge_config_name_the_override(model_yml):
    cfg = load_config(model_yml)
    merge_config({'WeYoloHead.assigner': 'WeNoSuchAssigner'}, cfg)
    raises("-o override: WeYoloHead.assigner: unknown class 'WeNoSuchAssigner'", create,
           'WeYoloHead', cfg)
