"""The shipped PaddleDetection-shaped configs load and merge to PaddleDetection 2.6's values."""

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
