"""The assembled PP-YOLOE (YOLOv3 architecture) built from the shipped configs."""

import os

import numpy as np
import paddle
import pytest

import ppdet_lite.modeling  # noqa: F401  (registers the model zoo)
from ppdet_lite.core.workspace import create, load_config
from ppdet_lite.utils.checkpoint import load_weights, save_weights

from conftest import reference_layout, state_layout

ROOT = os.path.join(os.path.dirname(__file__), '..')


def config(size='s', **overrides):
    path = os.path.join(ROOT, 'configs', 'ppyoloe', f'ppyoloe_crn_{size}_300e_coco.yml')
    return load_config(path, overrides=overrides or None, make_current=False)


def tiny_model(num_classes=4, **overrides):
    """s-config with a quarter width: seconds on a CPU, same code paths."""
    opts = dict(width_mult=0.25, num_classes=num_classes, eval_size=None, **overrides)
    return create('YOLOv3', config('s', **opts))


@pytest.mark.parametrize('size', ['s', 'm', 'l', 'x'])
def test_state_dict_matches_paddledetection(size):
    model = create('YOLOv3', config(size))
    assert state_layout(model) == reference_layout(size)  # keys, order, shapes and dtypes


def test_checkpoint_with_other_num_classes_loads_all_but_class_predictor(tmp_path):
    paddle.seed(0)
    save_weights(tiny_model(num_classes=80), str(tmp_path / 'coco.pdparams'))
    model = tiny_model(num_classes=3)
    report = load_weights(model, str(tmp_path / 'coco'))
    assert not report.missing and not report.unexpected
    assert sorted(k for k, _, _ in report.mismatched) == sorted(
        f'yolo_head.pred_cls.{i}.{p}' for i in range(3) for p in ('weight', 'bias'))


def eval_inputs(batch=2, h=96, w=128):
    """The same image twice, with scale factors (y, x) of (0.5, 0.5) and (1.0, 2.0)."""
    image = np.random.RandomState(0).rand(1, 3, h, w).astype('float32')
    return {'image': paddle.to_tensor(np.repeat(image, batch, axis=0)),
            'im_shape': paddle.to_tensor(np.array([[h, w]] * batch, 'float32')),
            'scale_factor': paddle.to_tensor(np.array([[0.5, 0.5], [1.0, 2.0]][:batch], 'float32'))}


def test_eval_contract_with_and_without_nms():
    paddle.seed(0)
    model = tiny_model(**{'PPYOLOEHead.nms.score_threshold': 0.0})
    model.eval()
    out = model(eval_inputs())
    assert set(out) == {'bbox', 'bbox_num'}
    bbox, bbox_num = out['bbox'].numpy(), out['bbox_num'].numpy()
    assert out['bbox_num'].dtype == paddle.int32 and bbox_num.shape == (2,)
    assert bbox.ndim == 2 and bbox.shape[1] == 6 and bbox.shape[0] == bbox_num.sum() > 0
    assert set(np.unique(bbox[:, 0])) <= set(range(4))
    assert ((bbox[:, 1] > 0) & (bbox[:, 1] <= 1)).all()

    model.yolo_head.exclude_nms = True
    raw = model(eval_inputs())
    num_anchors = sum((96 // s) * (128 // s) for s in (8, 16, 32))
    boxes, scores = raw['bbox'].numpy(), raw['scores'].numpy()
    assert boxes.shape == (2, num_anchors, 4) and scores.shape == (2, 4, num_anchors)
    # same image, original = network / scale: x by 0.5 vs 2.0 (ratio 4), y by 0.5 vs 1.0 (ratio 2)
    np.testing.assert_allclose(boxes[0], boxes[1] * [4, 2, 4, 2], rtol=1e-5, atol=1e-3)
    # every kept detection is one of the raw boxes of its image, with that box's class score
    for row in bbox[:bbox_num[0]]:
        match = np.abs(boxes[0] - row[2:]).max(axis=1) < 1e-3
        assert match.any() and np.isclose(scores[0, int(row[0]), match], row[1]).any()


def train_inputs(epoch_id, batch=2, size=96):
    rng = np.random.RandomState(3)
    gt_bbox = np.zeros((batch, 3, 4), 'float32')
    gt_bbox[0, :3] = [[8, 8, 40, 48], [50, 20, 90, 70], [10, 60, 30, 90]]
    gt_bbox[1, :1] = [[20, 20, 76, 76]]
    pad = np.zeros((batch, 3, 1), 'float32')
    pad[0, :3] = 1
    pad[1, :1] = 1
    gt_class = np.array([[[0], [1], [2]], [[3], [0], [0]]], 'int32')
    return {'image': paddle.to_tensor(rng.rand(batch, 3, size, size).astype('float32')),
            'gt_bbox': paddle.to_tensor(gt_bbox), 'gt_class': paddle.to_tensor(gt_class),
            'pad_gt_mask': paddle.to_tensor(pad), 'epoch_id': epoch_id}


@pytest.mark.parametrize('epoch_id', [0, 200])  # ATSS before static_assigner_epoch (100), TAL after
def test_overfit_fixed_batch(epoch_id):
    paddle.seed(0)
    model = tiny_model()
    model.train()
    opt = paddle.optimizer.Momentum(learning_rate=0.01, momentum=0.9,
                                    parameters=model.parameters())
    inputs = train_inputs(epoch_id)
    losses = []
    for _ in range(30):
        out = model(inputs)
        assert set(out) == {'loss', 'loss_cls', 'loss_iou', 'loss_dfl', 'loss_l1'}
        out['loss'].backward()
        opt.step()
        opt.clear_grad()
        losses.append(float(out['loss']))
    assert np.isfinite(losses).all()
    assert np.mean(losses[-3:]) < 0.5 * losses[0], losses


def test_eval_size_mismatch_is_a_clear_error():
    paddle.seed(0)
    model = create('YOLOv3', config('s', width_mult=0.25, eval_size=[64, 64]))
    model.eval()
    with pytest.raises(ValueError, match=r'eval_size \[64, 64\] fixes the anchors .*eval_size=null'):
        model(eval_inputs())


def test_assigners_are_replaceable_sub_layers():
    from ppdet_lite.modeling.assigners import TaskAlignedAssigner

    class CountingTAL(TaskAlignedAssigner):
        calls = 0

        def assign(self, priors, gts, preds=None):
            CountingTAL.calls += 1
            return super().assign(priors, gts, preds)

    model = tiny_model()
    replacement = CountingTAL(topk=3, num_classes=4)
    model.yolo_head.assigner = replacement  # as PaddleDetection code does
    assert model.yolo_head.assigner is replacement
    model.train()
    model(train_inputs(epoch_id=200))
    assert CountingTAL.calls == 1
