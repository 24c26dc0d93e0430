"""The shipped PaddleDetection-shaped configs load and merge to PaddleDetection 2.6's values."""

import json
import os

import pytest

from ppdet_lite.core.workspace import load_config

CONFIG_DIR = os.path.join(os.path.dirname(__file__), '..', 'configs', 'ppyoloe')
SIZES = {'s': (0.33, 0.50), 'm': (0.67, 0.75), 'l': (1.0, 1.0), 'x': (1.33, 1.25)}


@pytest.mark.parametrize('size', sorted(SIZES))
def test_ppyoloe_configs_merge_their_bases(size):
    cfg = load_config(os.path.join(CONFIG_DIR, f'ppyoloe_crn_{size}_300e_coco.yml'),
                      make_current=False)
    assert (cfg.depth_mult, cfg.width_mult) == SIZES[size]
    assert cfg.filename == f'ppyoloe_crn_{size}_300e_coco'
    # one value from each base file
    assert cfg.num_classes == 80 and cfg.metric == 'COCO'                   # datasets/coco_detection
    assert cfg.log_iter == 100 and cfg.save_dir == 'output'                 # runtime, overridden
    assert cfg.epoch == 300 and cfg.LearningRate.base_lr == 0.01            # optimizer_300e
    assert [s['name'] for s in cfg.LearningRate.schedulers] == ['CosineDecay', 'LinearWarmup']
    assert cfg.architecture == 'YOLOv3' and cfg.YOLOv3.post_process is None  # ppyoloe_crn
    assert cfg.eval_size == [640, 640] and cfg.TrainReader.batch_size == 8  # ppyoloe_reader
    head = cfg.PPYOLOEHead
    assert head.static_assigner_epoch == 100 and head.fpn_strides == [32, 16, 8]
    assert head.static_assigner == {'name': 'ATSSAssigner', 'topk': 9}
    assert head.assigner == {'name': 'TaskAlignedAssigner', 'topk': 13, 'alpha': 1.0, 'beta': 6.0}
    assert head.nms['keep_top_k'] == 300 and head.nms['nms_threshold'] == 0.7
    assert cfg.CSPResNet.use_large_stem is True and cfg.CustomCSPPAN.out_channels == [768, 384, 192]


PLUS_SIZES = {'s': (0.33, 0.50), 'm': (0.67, 0.75), 'l': (1.0, 1.0), 'x': (1.33, 1.25)}


def plus_config(size, overrides=None):
    return load_config(os.path.join(CONFIG_DIR, f'ppyoloe_plus_crn_{size}_80e_coco.yml'),
                       overrides=overrides, make_current=False)


@pytest.mark.parametrize('size', sorted(PLUS_SIZES))
def test_ppyoloe_plus_configs_merge_their_bases(size):
    cfg = plus_config(size)
    assert (cfg.depth_mult, cfg.width_mult) == PLUS_SIZES[size]
    assert cfg.snapshot_epoch == 5 and cfg.log_iter == 100
    assert cfg.pretrain_weights.endswith(f'ppyoloe_crn_{size}_obj365_pretrained.pdparams')
    assert cfg.num_classes == 80 and cfg.metric == 'COCO'                   # datasets/coco_detection
    assert cfg.epoch == 80 and cfg.LearningRate.base_lr == 0.001            # optimizer_80e
    assert cfg.LearningRate.schedulers[0] == {'name': 'CosineDecay', 'max_epochs': 96}
    assert cfg.CSPResNet.use_alpha is True                                  # ppyoloe_plus_crn
    assert cfg.PPYOLOEHead.static_assigner_epoch == 30
    assert cfg.PPYOLOEHead.assigner == {'name': 'TaskAlignedAssigner', 'topk': 13, 'alpha': 1.0,
                                        'beta': 6.0}
    normalize = cfg.TrainReader.batch_transforms[1]['NormalizeImage']       # ppyoloe_plus_reader
    assert normalize == {'mean': [0., 0., 0.], 'std': [1., 1., 1.], 'norm_type': 'none'}
    assert cfg.eval_size == [640, 640]


@pytest.mark.parametrize('size', sorted(PLUS_SIZES))
def test_ppyoloe_plus_configs_build(size):
    import ppdet_lite.modeling  # noqa: F401  (registers the model zoo)
    from ppdet_lite.core.workspace import create
    # an eighth of the width keeps building fast; the layout at full width is checked below
    cfg = plus_config(size, {'width_mult': 0.125 * PLUS_SIZES[size][1]})
    model = create(cfg.architecture, cfg)
    alphas = [k for k in model.state_dict() if k.endswith('.alpha')]
    assert alphas and all(k.startswith('backbone.') for k in alphas)  # use_alpha: backbone only


def test_ppyoloe_plus_s_state_dict_matches_paddledetection():
    import ppdet_lite.modeling  # noqa: F401
    from ppdet_lite.core.workspace import create
    from conftest import state_layout
    reference = []
    with open(os.path.join(os.path.dirname(__file__), 'data',
                           'ppyoloe_plus_crn_s_state_dict.tsv')) as f:
        for line in f:
            if not line.startswith('#'):
                key, shape, dtype = line.rstrip('\n').split('\t')
                reference.append((key, json.loads(shape), dtype))
    cfg = plus_config('s')
    assert len(reference) == 429
    assert state_layout(create(cfg.architecture, cfg)) == reference


def test_paddledetection_assigner_keys_are_accepted():
    import ppdet_lite.modeling  # noqa: F401
    from ppdet_lite.core.workspace import create
    cfg = plus_config('s', {'width_mult': 0.125, 'PPYOLOEHead.assigner.is_close_gt': True,
                            'PPYOLOEHead.static_assigner.sm_use': True})
    head = create(cfg.architecture, cfg).yolo_head
    assert head.assigner.is_close_gt is True and head.static_assigner.sm_use is True


def _configs_with_local_weights():
    root = os.path.join(os.path.dirname(__file__), '..', 'configs')
    for folder, _, files in os.walk(root):
        for name in sorted(files):
            if name.endswith('.yml') and not folder.endswith('_base_'):
                yield os.path.join(folder, name)


@pytest.mark.parametrize('path', [p for p in _configs_with_local_weights()
                                  if 'assigners' in p or p.endswith('_shapes.yml')])
def test_a_config_evaluates_its_own_checkpoint(path):
    """tools/train.py saves to <save_dir>/<config stem>/; `weights` (what tools/eval.py,
    infer.py and export_model.py load by default) must point there, not at the _BASE_ config's
    model (an assigner config inheriting the demo's weights evaluated the demo model)."""
    cfg = load_config(path, make_current=False)
    stem = os.path.splitext(os.path.basename(path))[0]
    assert cfg.weights == f'{cfg.save_dir}/{stem}/model_final'
