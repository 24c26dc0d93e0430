"""Golden regression test: ppdet_lite against numbers computed by PaddleDetection 2.6.

The expected values in ``tests/data/ppdet26_ppyoloe_golden.npz`` were produced by
PaddleDetection 2.6.0 itself (``paddledet==2.6.0`` on Paddle 3.3.1, CPU), an independent
implementation: its own ``ppyoloe_crn_s_300e_coco.yml`` built with its own ``create``, its own
PPYOLOEHead / assigners / losses / NMS code. ppdet_lite's code played no part in producing them
(see ``tests/data/README.md``). This test needs no ppdet: it rebuilds the same model with
ppdet_lite, regenerates the same weights from a numpy rule (the weights are not stored), feeds the
stored inputs and compares:

* eval output after NMS (``bbox`` rows, ``bbox_num``) and the raw ``exclude_nms`` outputs
  (boxes ``[B, L, 4]`` in original-image pixels, scores ``[B, C, L]``);
* the five train loss terms at epoch 0 (ATSS assigner) and epoch 150 (task-aligned assigner,
  ``static_assigner_epoch`` 100);
* ATSSAssigner (with predicted boxes) and TaskAlignedAssigner on one batch at 640 x 640
  (8400 anchors, 4 classes).

Model: ppyoloe_crn_s_300e_coco with ``width_mult 0.25`` (depth 0.33 kept), ``num_classes 4``,
``norm_type bn``, ``eval_size None`` and NMS ``score_threshold`` 0.654 (the random model's scores
lie in [0.374, 0.746]; 13 and 22 candidates reach NMS, 7 and 9 survive; every score is at least
1.5e-3 from the threshold, candidate scores differ by at least 2.9e-4 and same-class candidate
IoUs are at least 5e-4 from the NMS IoU 0.7, so float noise cannot change the selection).

Weights are He-scaled with BatchNorm statistics near 1, so the image signal reaches the outputs in
eval mode too (``test_eval_depends_on_image``): the eval half covers the data path, not only the
biases and structure.
"""

import os

import numpy as np
import paddle
import pytest

import ppdet_lite.modeling  # noqa: F401  (registers the classes)
from ppdet_lite.core.workspace import create, load_config
from ppdet_lite.modeling.assigners import ATSSAssigner, TaskAlignedAssigner
from ppdet_lite.modeling.bbox_utils import generate_anchors_for_grid_cell

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, 'data', 'ppdet26_ppyoloe_golden.npz')
CONFIG = os.path.join(HERE, '..', 'configs', 'ppyoloe', 'ppyoloe_crn_s_300e_coco.yml')
NUM_CLASSES = 4
LOSS_KEYS = ['loss', 'loss_cls', 'loss_iou', 'loss_dfl', 'loss_l1']  # order of the stored arrays
# Eval tolerance: scores absolute, boxes relative to the largest coordinate. This model's float32
# outputs differ from float64 by 2.7e-7 (scores) and 1.3e-7 (boxes), oneDNN with 2 threads from
# the reference by 1.2e-7 and 1.7e-7; 1e-5 leaves ~40x room yet catches an anchor offset of 0.499
# (boxes off by 8.7e-5) and a BatchNorm epsilon of 2e-5 (scores off by 4.6e-5).
EVAL_TOL = 1e-5


@pytest.fixture(scope='module')
def golden():
    with np.load(GOLDEN) as data:
        return {k: data[k] for k in data.files}


def numpy_weights(state_dict):
    """The generator's weight rule, over the state dict in order (PaddleDetection's key order),
    with one ``RandomState(0)`` and one ``randn(*shape)`` draw per tensor (always consumed):
    conv weights ``[out, in / groups, kh, kw]`` He-scaled, ``* sqrt(2 / fan_in)`` with
    ``fan_in = in / groups * kh * kw``; BN weight ``1 + 0.1 * draw``, BN running variance
    ``abs(draw) * 0.5 + 0.5``; everything else (BN bias, BN running mean, conv biases)
    ``0.1 * draw``; ``proj_conv.weight`` the fixed projection 0..16. Float32 arithmetic with
    float32 constants, so numpy 1 and 2 give the same bits."""
    rng = np.random.RandomState(0)
    f32 = np.float32
    weights = {}
    for key, value in state_dict.items():
        shape = list(value.shape)
        a = rng.randn(*shape).astype('float32')  # one draw per tensor, in order, always
        if key.endswith('proj_conv.weight'):
            a = np.linspace(0, 16, 17, dtype='float32').reshape([1, 17, 1, 1])
        elif len(shape) == 4:  # conv [out, in / groups, kh, kw]: He, fan_in = prod(shape[1:])
            a = a * f32(np.sqrt(2.0 / np.prod(shape[1:])))
        elif key.endswith('.bn.weight'):
            a = f32(1) + f32(0.1) * a
        elif key.endswith('._variance'):
            a = np.abs(a) * f32(0.5) + f32(0.5)
        else:  # BN bias, BN running mean, conv biases
            a = a * f32(0.1)
        weights[key] = a.astype('float32')
    return weights


@pytest.fixture(scope='module')
def model_and_weights(golden):
    cfg = load_config(CONFIG, make_current=False, overrides={
        'norm_type': 'bn', 'eval_size': None, 'width_mult': 0.25, 'num_classes': NUM_CLASSES,
        'PPYOLOEHead': {'nms': {'score_threshold': float(golden['nms_score_threshold'])}}})
    assert cfg.depth_mult == 0.33 and cfg.PPYOLOEHead['static_assigner_epoch'] == 100
    model = create('YOLOv3', cfg)
    weights = numpy_weights(model.state_dict())
    return model, weights


def load(model, weights):
    model.set_state_dict(weights)
    for key, value in model.state_dict().items():  # every key present, nothing left unset
        np.testing.assert_array_equal(value.numpy(), weights[key], err_msg=key)


def model_inputs(golden, train=False, epoch_id=None, image_u8=None):
    image_u8 = golden['image_u8'] if image_u8 is None else image_u8
    image = (image_u8.astype('float32') - 128.) / 64.  # as the generator: exact
    inputs = {'image': paddle.to_tensor(image), 'im_shape': paddle.to_tensor(golden['im_shape']),
              'scale_factor': paddle.to_tensor(golden['scale_factor'])}
    if train:
        inputs.update(gt_bbox=paddle.to_tensor(golden['gt_bbox']),
                      gt_class=paddle.to_tensor(golden['gt_class']),
                      pad_gt_mask=paddle.to_tensor(golden['pad_gt_mask']), epoch_id=epoch_id)
    return inputs


def test_golden_file_and_weight_rule(golden, model_and_weights):
    model, weights = model_and_weights
    assert golden['versions'].tolist() == ['2.6.0', '3.3.1']  # paddledet, paddle that made it
    assert len(weights) == 423
    first = next(iter(weights))
    assert first == 'backbone.stem.conv1.conv.weight'
    np.testing.assert_array_equal(weights[first].ravel()[:8], golden['weight_first'])
    assert golden['image_u8'].shape == (2, 3, 96, 128)  # non-square
    assert golden['pad_gt_mask'][1].sum() == 0  # image 1 has no GT (only padding)


def test_eval_nms_output(golden, model_and_weights):
    model, weights = model_and_weights
    load(model, weights)
    model.eval()
    model.yolo_head.exclude_nms = False
    out = model(model_inputs(golden))
    expected, expected_num = golden['eval_bbox'], golden['eval_bbox_num']
    np.testing.assert_array_equal(out['bbox_num'].numpy(), expected_num)
    bbox = out['bbox'].numpy()
    assert bbox.shape == expected.shape and expected.shape[0] > 0
    np.testing.assert_array_equal(bbox[:, 0], expected[:, 0])  # class ids
    np.testing.assert_allclose(bbox[:, 1], expected[:, 1], rtol=0, atol=EVAL_TOL)  # scores
    box_scale = np.abs(expected[:, 2:]).max()
    np.testing.assert_allclose(bbox[:, 2:], expected[:, 2:], rtol=0, atol=EVAL_TOL * box_scale)


def test_eval_raw_outputs(golden, model_and_weights):
    model, weights = model_and_weights
    load(model, weights)
    model.eval()
    model.yolo_head.exclude_nms = True
    try:
        out = model(model_inputs(golden))
    finally:
        model.yolo_head.exclude_nms = False
    boxes, scores = out['bbox'].numpy(), out['scores'].numpy()
    assert boxes.shape == golden['raw_boxes'].shape == (2, 252, 4)
    assert scores.shape == golden['raw_scores'].shape == (2, NUM_CLASSES, 252)
    box_scale = np.abs(golden['raw_boxes']).max()
    np.testing.assert_allclose(boxes, golden['raw_boxes'], rtol=0, atol=EVAL_TOL * box_scale)
    np.testing.assert_allclose(scores, golden['raw_scores'], rtol=0, atol=EVAL_TOL)


def test_eval_depends_on_image(golden, model_and_weights):
    """The eval outputs carry the image: the horizontally flipped images give clearly different raw
    scores and boxes (by far more than the tolerances above), and the scores are not saturated."""
    model, weights = model_and_weights
    load(model, weights)
    model.eval()
    model.yolo_head.exclude_nms = True
    flipped = np.ascontiguousarray(golden['image_u8'][..., ::-1])
    try:
        out = model(model_inputs(golden, image_u8=flipped))
    finally:
        model.yolo_head.exclude_nms = False
    scores = golden['raw_scores']
    assert 0.2 < scores.min() and scores.max() < 0.8  # spread, far from 0 and 1
    assert np.abs(out['scores'].numpy() - scores).max() > 1e-3
    assert np.abs(out['bbox'].numpy() - golden['raw_boxes']).max() > 1e-3 * np.abs(
        golden['raw_boxes']).max()


@pytest.mark.parametrize('epoch_id', [0, 150])  # ATSS, then the task-aligned assigner
def test_train_loss_terms(golden, model_and_weights, epoch_id):
    model, weights = model_and_weights
    load(model, weights)
    model.train()
    losses = model(model_inputs(golden, train=True, epoch_id=epoch_id))
    assert set(losses) == set(LOSS_KEYS)
    expected = golden[f'loss_epoch{epoch_id}']
    for key, value in zip(LOSS_KEYS, expected):
        np.testing.assert_allclose(float(losses[key]), float(value), rtol=1e-5, err_msg=key)


def assigner_batch(golden):
    """The generator's 640 x 640 batch: anchors, points, counts and (exactly stored) predictions."""
    feats = [paddle.zeros([1, 1, 640 // s, 640 // s]) for s in (32, 16, 8)]
    anchors, points, counts, strides = generate_anchors_for_grid_cell(feats, [32, 16, 8], 5.0, 0.5)
    dist = (golden['assign_dist_u8'].astype('float32') + 0.5) * (strides.numpy() / 16.)
    pts = points.numpy()
    pred_bboxes = np.concatenate([pts - dist[..., :2], pts + dist[..., 2:]], -1).astype('float32')
    pred_scores = (golden['assign_score_u8'].astype('float32') + 0.5) / 256.
    gts = [paddle.to_tensor(golden[k]) for k in
           ('assign_gt_class', 'assign_gt_bbox', 'assign_pad_gt_mask')]
    return (anchors, points, counts, paddle.to_tensor(pred_bboxes), paddle.to_tensor(pred_scores),
            gts)


def assert_assignment(result, golden, prefix):
    labels, bboxes, scores = (r.numpy() for r in result[:3])
    np.testing.assert_array_equal(labels, golden[f'{prefix}_labels'].astype(labels.dtype))
    np.testing.assert_array_equal(bboxes, golden[f'{prefix}_bboxes'])
    np.testing.assert_allclose(scores, golden[f'{prefix}_scores'], rtol=0, atol=1e-6)
    assert (labels != NUM_CLASSES).sum() > 10  # a real assignment, not all background


def test_atss_assigner(golden):
    anchors, _, counts, pred_bboxes, _, (gt_class, gt_bbox, pad) = assigner_batch(golden)
    assert anchors.shape == [8400, 4] and counts == [400, 1600, 6400]
    result = ATSSAssigner(topk=9, num_classes=NUM_CLASSES)(
        anchors, counts, gt_class, gt_bbox, pad, NUM_CLASSES, pred_bboxes=pred_bboxes)
    assert_assignment(result, golden, 'atss')


def test_task_aligned_assigner(golden):
    _, points, counts, pred_bboxes, pred_scores, (gt_class, gt_bbox, pad) = assigner_batch(golden)
    result = TaskAlignedAssigner(topk=13, alpha=1.0, beta=6.0)(
        pred_scores, pred_bboxes, points, counts, gt_class, gt_bbox, pad, NUM_CLASSES)
    assert_assignment(result, golden, 'tal')
