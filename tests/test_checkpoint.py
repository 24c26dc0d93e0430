"""Weight loading/saving in PaddleDetection's .pdparams format."""

import os

import numpy as np
import paddle
import paddle.nn as nn
import pytest

from ppdet_lite.utils.checkpoint import (load_pretrain_weights, load_weights, match_suffix_keys,
                                         resolve_weights_path, save_weights)


class Tiny(nn.Layer):
    def __init__(self, num_classes=3):
        super().__init__()
        self.stem = nn.Conv2D(3, 4, 3)
        self.bn = nn.BatchNorm2D(4)
        self.cls = nn.Linear(4, num_classes)


def test_round_trip_and_suffixless_path(tmp_path):
    paddle.seed(1)
    src, dst = Tiny(), Tiny()
    path = save_weights(src, str(tmp_path / 'model_final.pdparams'))
    report = load_weights(dst, str(tmp_path / 'model_final'))  # ppdet writes weights without suffix
    assert report.complete and len(report.loaded) == len(src.state_dict())
    for key, value in src.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), dst.state_dict()[key].numpy())
    assert os.listdir(tmp_path) == [os.path.basename(path)]  # no temporary file left behind


def test_num_classes_change_loads_all_but_the_classifier(tmp_path):
    paddle.seed(2)
    src, dst = Tiny(num_classes=80), Tiny(num_classes=3)
    before = dst.cls.weight.numpy().copy()
    save_weights(src.state_dict(), str(tmp_path / 'w.pdparams'))
    report = load_weights(dst, str(tmp_path / 'w.pdparams'))
    assert [m[0] for m in report.mismatched] == ['cls.weight', 'cls.bias']
    assert report.mismatched[0][1] == ([4, 80], 'float32') and report.mismatched[0][2][0] == [4, 3]
    assert not report.missing and not report.unexpected and not report.complete
    np.testing.assert_array_equal(dst.cls.weight.numpy(), before)          # kept
    np.testing.assert_array_equal(dst.stem.weight.numpy(), src.stem.weight.numpy())  # loaded
    assert 'cls.weight [4, 80]' in str(report)


def test_missing_and_unexpected_keys_are_reported(tmp_path):
    state = Tiny().state_dict()
    state.pop('bn._mean')
    state['extra.weight'] = paddle.zeros([2])
    save_weights(state, str(tmp_path / 'w.pdparams'))
    report = load_weights(Tiny(), str(tmp_path / 'w.pdparams'))
    assert report.missing == ['bn._mean'] and report.unexpected == ['extra.weight']


def test_urls_and_missing_files_are_refused_clearly(tmp_path):
    with pytest.raises(ValueError, match='never downloads at run time'):
        resolve_weights_path('https://paddledet.bj.bcebos.com/models/ppyoloe_crn_s_300e_coco.pdparams')
    with pytest.raises(FileNotFoundError, match='weights not found: .*nope'):
        load_weights(Tiny(), str(tmp_path / 'nope'))
    corrupt = tmp_path / 'corrupt.pdparams'
    corrupt.write_bytes(b'not a pickle')
    with pytest.raises(ValueError, match='cannot read weights file .*corrupt.pdparams'):
        load_weights(Tiny(), str(corrupt))


def test_suffix_matching_prefers_the_longest_dotted_suffix():
    model_keys = ['backbone.stem.conv.weight', 'backbone.stages.0.conv.weight', 'head.conv.weight']
    ckpt_keys = ['stem.conv.weight', 'stages.0.conv.weight', 'conv.weight', 'fc.weight',
                 'em.conv.weight']  # 'em.conv.weight' is a string suffix but not a dotted one
    assert match_suffix_keys(model_keys, ckpt_keys) == {
        'backbone.stem.conv.weight': 'stem.conv.weight',
        'backbone.stages.0.conv.weight': 'stages.0.conv.weight',
        'head.conv.weight': 'conv.weight'}


class Detector(nn.Layer):
    def __init__(self):
        super().__init__()
        self.backbone = Tiny()
        self.head = nn.Linear(3, 2)


def test_backbone_only_pretrained_file_fills_the_backbone(tmp_path):
    paddle.seed(3)
    backbone = Tiny()
    save_weights(backbone, str(tmp_path / 'backbone_pretrained.pdparams'))
    model = Detector()
    with pytest.raises(ValueError, match='none of its 8 tensors matches the model'):
        load_weights(model, str(tmp_path / 'backbone_pretrained'))  # exact names: no overlap
    report = load_pretrain_weights(model, str(tmp_path / 'backbone_pretrained'))
    assert len(report.loaded) == 8 and report.missing == ['head.bias', 'head.weight']
    np.testing.assert_array_equal(model.backbone.stem.weight.numpy(), backbone.stem.weight.numpy())
