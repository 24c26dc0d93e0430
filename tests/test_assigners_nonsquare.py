"""ATSSAssigner and TaskAlignedAssigner on non-square inputs, compared with the numpy definitions of
tests/test_assigners.py (every GT against every prior, equal values lowest prior index first), and
each implementation (fast, dense) with the other exactly.

Non-square grids exercise what square ones cannot: different column and row counts per level (the
fast paths index cells as ``row * width + col``), levels with a single row or column (the window
around a GT centre clipped to one line, or a level smaller than ``topk``), and both level orders
(finest first as in test_assigners.py, coarsest first as PPYOLOEHead feeds them).
"""

import math

import numpy as np
import paddle
import pytest

from ppdet_lite.modeling.assigners import ATSSAssigner, TaskAlignedAssigner
from ppdet_lite.modeling.bbox_utils import generate_anchors_for_grid_cell

from test_assigners import BG, assert_same, dense, dense_atss, dense_tal, run_atss, run_tal


def grid_anchors(height, width, strides, cell=5.0):
    """PP-YOLOE's anchors for a ``height x width`` input: boxes, points, anchors per level."""
    feats = [paddle.zeros([1, 1, math.ceil(height / s), math.ceil(width / s)]) for s in strides]
    anchors, points, counts, _ = generate_anchors_for_grid_cell(feats, strides, cell)
    return anchors, points, counts


def random_batch(rng, height, width, strides=(8, 16, 32), batch_size=3, num_gts=6,
                 integer=False, tied_predictions=False, empty_images=()):
    """Like test_assigners.random_batch on an ``height x width`` input: boxes of 1-80 % of each
    side (some tiny, some partly outside, some duplicated), padded GT slots at the end, images in
    ``empty_images`` with padding only, predictions around the anchors."""
    anchors, points, counts = grid_anchors(height, width, list(strides))
    num_anchors = points.shape[0]
    size = np.array([width, height], 'float64')
    wh = np.exp(rng.uniform(np.log(0.01), np.log(0.8), (batch_size, num_gts, 2))) * size
    tiny = rng.uniform(size=(batch_size, num_gts, 1)) < 0.1
    wh = np.where(tiny, rng.uniform(0.5, 3, wh.shape), wh)
    centre = rng.uniform(0, 1, (batch_size, num_gts, 2)) * size
    outside = rng.uniform(size=(batch_size, num_gts, 1)) < 0.1
    centre = np.where(outside, rng.uniform(-0.2, 1.2, centre.shape) * size, centre)
    boxes = np.concatenate([centre - wh / 2, centre + wh / 2], axis=-1)
    if integer:  # integer corners put GT centres on grid symmetry lines: distance ties
        boxes = np.round(boxes)
    if num_gts > 1:
        duplicate = rng.uniform(size=(batch_size, num_gts)) < 0.1
        boxes[duplicate] = boxes[:, :1].repeat(num_gts, axis=1)[duplicate]
    num_real = rng.integers(1, num_gts + 1, batch_size)
    num_real[list(empty_images)] = 0
    mask = (np.arange(num_gts)[None] < num_real[:, None]).astype('float32')[..., None]
    boxes = boxes * mask
    labels = rng.integers(0, BG, (batch_size, num_gts, 1)) * mask.astype('int64')
    logits = rng.uniform(-8, 3, (batch_size, num_anchors, BG))
    distance = np.exp(rng.uniform(0, np.log(max(height, width) / 3), (batch_size, num_anchors, 4)))
    if tied_predictions:  # few distinct values, and degenerate boxes: alignment ties and zeros
        logits, distance = np.round(logits), np.round(distance / 4) * 4
    pred = np.concatenate([points.numpy() - distance[..., :2], points.numpy() + distance[..., 2:]],
                          axis=-1)
    gt_scores = rng.uniform(0.1, 1, (batch_size, num_gts, 1))
    as_float = lambda a: paddle.to_tensor(a.astype('float32'))  # noqa: E731
    return dict(anchors=anchors, points=points, counts=counts, gt_labels=paddle.to_tensor(labels),
                gt_bboxes=as_float(boxes), pad_gt_mask=as_float(mask),
                pred_scores=as_float(1 / (1 + np.exp(-logits))), pred_bboxes=as_float(pred),
                gt_scores=as_float(gt_scores))


# (height, width, strides, ATSS topk). 32 x 256 at strides 8 / 16 / 32: grids 4 x 32, 2 x 16 and
# 1 x 8; the stride-32 level's window is clipped to its single row. 256 x 32 is the same with
# single columns.
SHAPES = [
    (96, 224, (8, 16, 32), 9),
    (224, 96, (8, 16, 32), 9),
    (96, 224, (32, 16, 8), 9),   # coarsest level first, as PPYOLOEHead orders them
    (32, 256, (8, 16, 32), 3),
    (32, 256, (8, 16, 32), 8),
    (256, 32, (32, 16, 8), 3),
    (256, 32, (8, 16, 32), 8),
    (40, 200, (8, 16, 32), 5),   # 40 / 32 and 200 / 32 round up: 2 x 7 at stride 32
]
ATSS_MODES = [dict(), dict(force_gt_matching=True), dict(pred_bboxes=True)]


def test_shapes_are_as_described():
    assert grid_anchors(32, 256, [8, 16, 32])[2] == [4 * 32, 2 * 16, 1 * 8]
    assert grid_anchors(256, 32, [32, 16, 8])[2] == [8 * 1, 16 * 2, 32 * 4]
    assert grid_anchors(96, 224, [8, 16, 32])[2] == [12 * 28, 6 * 14, 3 * 7]
    assert grid_anchors(40, 200, [8, 16, 32])[2] == [5 * 25, 3 * 13, 2 * 7]


@pytest.mark.parametrize('mode', range(len(ATSS_MODES)))
@pytest.mark.parametrize('shape', range(len(SHAPES)))
def test_atss_non_square_equals_dense_definition(shape, mode):
    height, width, strides, topk = SHAPES[shape]
    options = ATSS_MODES[mode]
    force = options.get('force_gt_matching', False)
    rng = np.random.default_rng(100 * shape + mode)
    fast = ATSSAssigner(topk=topk, num_classes=BG, force_gt_matching=force)
    reference = dense(dense_atss, topk=topk, force_gt_matching=force)
    for num_gts, integer, empty in [(1, False, ()), (5, True, (1,)), (12, False, (0, 2)),
                                    (12, True, ())]:
        d = random_batch(rng, height, width, strides, num_gts=num_gts, integer=integer,
                         empty_images=empty)
        extra = {'pred_bboxes': d['pred_bboxes']} if options.get('pred_bboxes') else {}
        expected = run_atss(reference, d, **extra)
        assert_same(run_atss(fast, d, **extra), expected)
        for b in empty:  # images with padding only: all background
            assert (expected[0][b] == BG).all() and not expected[2][b].any()


@pytest.mark.parametrize('tied_predictions', [False, True])
@pytest.mark.parametrize('shape', range(len(SHAPES)))
def test_tal_non_square_equals_dense_definition(shape, tied_predictions):
    height, width, strides, _ = SHAPES[shape]
    rng = np.random.default_rng(1000 + 10 * shape + tied_predictions)
    for num_gts, integer, empty in [(1, False, ()), (5, True, (1,)), (12, False, (0, 2)),
                                    (12, True, ())]:
        d = random_batch(rng, height, width, strides, num_gts=num_gts, integer=integer,
                         tied_predictions=tied_predictions, empty_images=empty)
        assert_same(run_tal(TaskAlignedAssigner(), d), run_tal(dense(dense_tal), d))


def test_tal_non_square_other_topk():
    rng = np.random.default_rng(2000)
    for (height, width), topk in [((32, 256), 1), ((256, 32), 4), ((96, 224), 30)]:
        d = random_batch(rng, height, width, num_gts=10, tied_predictions=topk == 4)
        assert_same(run_tal(TaskAlignedAssigner(topk=topk), d),
                    run_tal(dense(dense_tal, topk=topk), d))


def test_gt_centres_on_the_single_row():
    # 32 x 256 at stride 32: the single row's centres have y = 16; GT centred on that row and on
    # cell borders (x multiple of 32) give equidistant pairs, in the window and at the k-th.
    rng = np.random.default_rng(3000)
    anchors, points, counts = grid_anchors(32, 256, [8, 16, 32])
    cx = rng.integers(0, 9, 40) * 32.0
    cx[::3] += 16.0  # some on cell centres
    w = rng.integers(1, 20, 40) * 8.0
    h = rng.integers(1, 8, 40) * 4.0
    boxes = np.stack([cx - w / 2, 16 - h / 2, cx + w / 2, 16 + h / 2], axis=1).astype('float32')
    labels = paddle.to_tensor((np.arange(40) % BG).reshape([1, 40, 1]).astype('int64'))
    gt = (labels, paddle.to_tensor(boxes[None]), paddle.ones([1, 40, 1]))
    for topk in (3, 8):
        assert_same(ATSSAssigner(topk=topk, num_classes=BG)(anchors, counts, *gt, BG),
                    dense_atss(anchors, counts, *gt, BG, BG, topk=topk))
    num = points.shape[0]
    pred_scores = paddle.to_tensor(rng.uniform(0.01, 1, (1, num, BG)).astype('float32'))
    dist = rng.uniform(1, 60, (1, num, 4))
    pred = np.concatenate([points.numpy() - dist[..., :2], points.numpy() + dist[..., 2:]], -1)
    args = (pred_scores, paddle.to_tensor(pred.astype('float32')), points, counts) + gt
    assert_same(TaskAlignedAssigner()(*args, BG), dense_tal(*args, BG))


def test_non_square_batches_without_gt():
    rng = np.random.default_rng(4000)
    d = random_batch(rng, 32, 256, num_gts=4, empty_images=(0, 1, 2))  # padding only
    for result in (run_atss(ATSSAssigner(topk=3, num_classes=BG, force_gt_matching=True), d),
                   run_tal(TaskAlignedAssigner(), d)):
        assert (result[0].numpy() == BG).all() and not result[2].numpy().any()
    assert_same(run_atss(ATSSAssigner(topk=3, num_classes=BG), d),
                run_atss(dense(dense_atss, topk=3), d))
    for key, width in (('gt_labels', 1), ('gt_bboxes', 4), ('pad_gt_mask', 1)):
        d[key] = paddle.zeros([3, 0, width], d[key].dtype)  # no GT slot at all
    num = sum(d['counts'])
    for result in (run_atss(ATSSAssigner(topk=3, num_classes=BG), d),
                   run_tal(TaskAlignedAssigner(), d)):
        assert result[0].shape == [3, num] and (result[0].numpy() == BG).all()
        assert result[1].shape == [3, num, 4] and result[2].shape == [3, num, BG]
        assert not result[1].numpy().any() and not result[2].numpy().any()
