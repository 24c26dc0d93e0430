"""Label assigners in PPYOLOEHead's slots, configured from YAML (issue 12).

Every config in configs/ppyoloe/assigners/ trains a tiny PP-YOLOE a few steps on a fixed batch and
lowers the loss, box terms included; any assigner works in either slot; the loss is injected from
YAML with its focal alphas, and takes the schedule keys from the head.
"""

import glob
import os

import numpy as np
import paddle
import pytest

from ppdet_lite.core.workspace import ConfigError, create, load_config
from ppdet_lite.modeling import assigners
from ppdet_lite.modeling.assigners import ATSSAssigner, TaskAlignedAssigner
from ppdet_lite.modeling.losses import PPYOLOELoss

ROOT = os.path.join(os.path.dirname(__file__), '..')
SHAPES = os.path.abspath(os.path.join(ROOT, 'configs', 'ppyoloe', 'ppyoloe_crn_s_shapes.yml'))
CONFIGS = sorted(glob.glob(os.path.join(ROOT, 'configs', 'ppyoloe', 'assigners', '*.yml')))
SIZE = 96


def build(path, **overrides):
    """The config's model at a quarter of the s width with 3 classes (~0.2 s per step at 96 px)."""
    opts = {'width_mult': 0.25, 'num_classes': 3, 'eval_size': None, **overrides}
    return create('YOLOv3', load_config(path, overrides=opts, make_current=False))


def write(tmp_path, text):
    path = tmp_path / 'head.yml'
    path.write_text(f"_BASE_: ['{SHAPES}']\n{text}")
    return str(path)


def batch(epoch_id=0):
    """Two 96 px images: three GT boxes in the first, one in the second (a padded slot pair)."""
    rng = np.random.RandomState(0)
    gt_bbox = np.array([[[8, 8, 40, 48], [50, 20, 90, 70], [10, 60, 30, 90]],
                        [[20, 20, 76, 76], [0, 0, 0, 0], [0, 0, 0, 0]]], 'float32')
    return {'image': paddle.to_tensor(rng.rand(2, 3, SIZE, SIZE).astype('float32')),
            'gt_bbox': paddle.to_tensor(gt_bbox),
            'gt_class': paddle.to_tensor(np.array([[[0], [1], [2]], [[1], [0], [0]]], 'int32')),
            'pad_gt_mask': paddle.to_tensor(np.array([[[1], [1], [1]], [[1], [0], [0]]],
                                                     'float32')),
            'epoch_id': epoch_id}


def test_every_assigner_has_a_config():
    # every assigner class the package exports is in a slot of some config below
    exported = {name for name in assigners.__all__
                if isinstance(getattr(assigners, name), type)
                and issubclass(getattr(assigners, name), assigners.BaseAssigner)
                and name != 'BaseAssigner'}
    assert {'ATSSAssigner', 'TaskAlignedAssigner'} <= exported
    used = set()
    for path in CONFIGS:
        head = load_config(path, make_current=False).PPYOLOEHead
        used.update(head[slot]['name'] for slot in ('static_assigner', 'assigner')
                    if isinstance(head.get(slot), dict))
    assert exported <= used, f'no config in configs/ppyoloe/assigners for {exported - used}'


@pytest.mark.parametrize('path', CONFIGS, ids=[os.path.basename(p)[:-4] for p in CONFIGS])
def test_a_short_training_lowers_the_loss(path):
    paddle.seed(0)
    model = build(path)
    model.train()
    opt = paddle.optimizer.AdamW(learning_rate=0.002, parameters=model.parameters(),
                                 weight_decay=0.0)
    inputs = batch()
    total, box = [], []
    for _ in range(12):
        out = model(inputs)
        out['loss'].backward()
        opt.step()
        opt.clear_grad()
        total.append(float(out['loss']))
        box.append(float(out['loss_iou']) + float(out['loss_dfl']))
    assert np.isfinite(total).all(), total
    assert box[0] > 0, 'the assigner gave no positive'
    assert np.mean(total[-3:]) < 0.8 * total[0], total
    assert np.mean(box[-3:]) < box[0], box


class Recording(object):
    """Records each ``assign`` call of ``assigner`` (was ``preds`` given?) under ``name``."""

    def __init__(self, assigner, name, log):
        self.original, self.name, self.log = assigner.assign, name, log

    def __call__(self, priors, gts, preds=None):
        self.log.append((self.name, preds is not None))
        return self.original(priors, gts, preds)


@pytest.mark.parametrize('static_target', ['hard', 'pred_iou'])
def test_tal_in_the_static_slot_and_atss_in_the_other(tmp_path, static_target):
    # PaddleDetection's order reversed: before 2.6's fixed signatures made this fail with
    # "multiple values for 'bg_index'".
    path = write(tmp_path, 'PPYOLOEHead: {static_assigner_epoch: 1, '
                           'static_assigner: {name: TaskAlignedAssigner, topk: 13}, '
                           f'assigner: {{name: ATSSAssigner, topk: 9}}, '
                           f'static_target: {static_target}}}\n')
    model = build(path)
    head = model.yolo_head
    assert isinstance(head.static_assigner, TaskAlignedAssigner)
    assert isinstance(head.assigner, ATSSAssigner)
    assert head.static_assigner.num_classes == head.assigner.num_classes == 3
    log = []
    for name in ('static_assigner', 'assigner'):
        slot = getattr(head, name)
        slot.assign = Recording(slot, name, log)
    model.train()
    for epoch in (0, 1):
        losses = model(batch(epoch))
        assert all(np.isfinite(float(v)) for v in losses.values())
        assert float(losses['loss_iou']) > 0
    # TAL needs the predictions in any case; ATSS gets them only for 'pred_iou' targets
    assert log == [('static_assigner', True), ('assigner', static_target == 'pred_iou')]


def test_the_loss_injected_from_yaml_with_its_focal_alphas(tmp_path):
    path = write(tmp_path, 'PPYOLOEHead:\n'
                           '  use_varifocal_loss: false\n'
                           '  loss: {name: PPYOLOELoss, static_focal_alpha: 0.4, '
                           'focal_alpha: 0.1}\n')
    loss = build(path).yolo_head.loss
    assert isinstance(loss, PPYOLOELoss)
    assert (loss.static_focal_alpha, loss.focal_alpha) == (0.4, 0.1)
    # the shared num_classes, and the head's keys from the shapes config
    assert loss.num_classes == 3 and loss.reg_max == 16
    assert loss.static_assigner_epoch == 6 and loss.static_target == 'hard'
    assert loss.use_varifocal_loss is False
    assert loss.loss_weight == {'class': 1.0, 'iou': 2.5, 'dfl': 0.5}

    # a section of its own, named by the head; PaddleDetection's defaults without it
    path = write(tmp_path, 'PPYOLOELoss: {focal_alpha: 0.3}\nPPYOLOEHead: {loss: PPYOLOELoss}\n')
    loss = build(path).yolo_head.loss
    assert (loss.static_focal_alpha, loss.focal_alpha) == (0.25, 0.3)
    default = build(SHAPES).yolo_head.loss
    assert (default.static_focal_alpha, default.focal_alpha) == (0.25, None)
    assert default.static_assigner_epoch == 6 and default.use_varifocal_loss is True


def test_an_injected_loss_that_contradicts_the_head_is_an_error(tmp_path):
    path = write(tmp_path, 'PPYOLOEHead: {loss: {name: PPYOLOELoss, static_assigner_epoch: 3}}\n')
    with pytest.raises((ConfigError, ValueError),
                       match=r'its loss PPYOLOELoss sets static_assigner_epoch 3 but the head '
                             r'has static_assigner_epoch 6.*set PPYOLOEHead.static_assigner_epoch'):
        build(path)
    # the same value on both sides is fine
    path = write(tmp_path, 'PPYOLOEHead: {loss: {name: PPYOLOELoss, static_assigner_epoch: 6}}\n')
    assert build(path).yolo_head.loss.static_assigner_epoch == 6


def test_a_slot_holding_something_else_is_named(tmp_path):
    path = write(tmp_path, 'PPYOLOEHead: {assigner: {name: MultiClassNMS}}\n')
    with pytest.raises((ConfigError, TypeError),
                       match=r'PPYOLOEHead: assigner must be a label assigner .*got a '
                             r'MultiClassNMS'):
        build(path)
