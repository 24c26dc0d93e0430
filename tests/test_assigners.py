"""ATSSAssigner and TaskAlignedAssigner: hand-computed cases of each rule, and both implementations
(``impl='fast'`` and ``'dense'``, equal exactly on every batch) against the definitions written
below in numpy with their own IoU and inside code (``dense_atss`` / ``dense_tal``: every GT against
every prior, equal values lowest prior index first). Labels and boxes are compared exactly, ties
included (whole-pixel GT corners, tied predictions); soft scores to 1e-6 relative.
"""

import copy
import math
import statistics

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from ppdet_lite.modeling.assigners import ATSSAssigner, TaskAlignedAssigner
from ppdet_lite.modeling.bbox_utils import generate_anchors_for_grid_cell

BG = 80


def grid_anchors(size, strides, cell=5.0):
    """PP-YOLOE's anchors for a square image: boxes ``[L, 4]``, points ``[L, 2]``, level sizes."""
    feats = [paddle.zeros([1, 1, math.ceil(size / s), math.ceil(size / s)]) for s in strides]
    anchors, points, num_anchors_list, _ = generate_anchors_for_grid_cell(feats, strides, cell)
    return anchors, points, num_anchors_list


def tensors(gt_boxes, labels=None, dtype='int64'):
    """One image's GT list -> ``gt_labels [1, n, 1]``, ``gt_bboxes [1, n, 4]``, ``pad_gt_mask``."""
    boxes = np.asarray(gt_boxes, dtype='float32').reshape([1, -1, 4])
    labels = np.zeros(boxes.shape[1]) if labels is None else np.asarray(labels)
    return (paddle.to_tensor(labels.reshape([1, -1, 1]).astype(dtype)), paddle.to_tensor(boxes),
            paddle.ones([1, boxes.shape[1], 1]))


def positives(result):
    """``{anchor: label}`` of the positive anchors of image 0."""
    labels = result[0].numpy()[0]
    return {int(a): int(labels[a]) for a in np.nonzero(labels != BG)[0]}


def iou(overlap, area_a, area_b):
    return overlap / (area_a + area_b - overlap)


# ------------------------------------------------------------------------------------------------
# ATSS by hand. One level: a 4 x 4 grid with stride 10, anchor centres at 5, 15, 25, 35 (anchor
# index = 4 * row + col), anchors of side 20 (grid_cell_size 2) unless stated.


def test_atss_threshold_is_mean_plus_unbiased_std():
    anchors, _, counts = grid_anchors(40, [10], cell=2.0)
    labels, boxes, mask = tensors([[0, 0, 6, 18]], labels=[3])  # area 108, centre (3, 9)
    # The 5 anchor centres nearest (3, 9): a0 (5, 5) at 4.47, a4 (5, 15) at 6.32, a1 (15, 5) at
    # 12.65, a5 (15, 15) at 13.42, a8 (5, 25) at 16.12 (next: a9 at 20.0). Overlaps with the GT:
    ious = [iou(6 * 15, 108, 400),   # a0 [-5, -5, 15, 15]: 0.2153
            iou(6 * 13, 108, 400),   # a4 [-5, 5, 15, 25]:  0.1814
            iou(1 * 15, 108, 400),   # a1 [5, -5, 25, 15]:  0.0304
            iou(1 * 13, 108, 400),   # a5 [5, 5, 25, 25]:   0.0263
            iou(6 * 3, 108, 400)]    # a8 [-5, 15, 15, 35]: 0.0367
    threshold = statistics.mean(ious) + statistics.stdev(ious)  # 0.1905 (N - 1 in the std)
    assert ious[0] > threshold > ious[1]
    # With the population std (N) the threshold would be 0.1807 and a4 would be positive too.
    assert ious[1] > statistics.mean(ious) + statistics.pstdev(ious)

    result = ATSSAssigner(topk=5)(anchors, counts, labels, boxes, mask, BG)
    assert positives(result) == {0: 3}
    np.testing.assert_array_equal(result[1].numpy()[0, 0], [0, 0, 6, 18])
    assert result[2].numpy()[0, 0].tolist() == [1.0 if c == 3 else 0.0 for c in range(80)]


def test_atss_positive_needs_centre_inside_gt():
    anchors, _, counts = grid_anchors(40, [10], cell=3.0)  # anchors of side 30
    gt = [0, 0, 6, 28]  # area 168, centre (3, 14)
    # Nearest: a4 (5, 15) 2.24, a0 (5, 5) 9.22, a8 (5, 25) 11.18, a5 (15, 15) 12.04, a1 (15, 5) 15.
    ious = [iou(6 * 28, 168, 900),   # a4 [-10, 0, 20, 30]:  0.1867
            iou(6 * 20, 168, 900),   # a0 [-10, -10, 20, 20]: 0.1266
            iou(6 * 18, 168, 900),   # a8 [-10, 10, 20, 40]: 0.1125
            iou(6 * 28, 168, 900),   # a5 [0, 0, 30, 30]:    0.1867
            iou(6 * 20, 168, 900)]   # a1 [0, -10, 30, 20]:  0.1266
    threshold = statistics.mean(ious) + statistics.stdev(ious)  # 0.1837
    assert ious[0] > threshold and ious[3] > threshold
    # a5 passes the threshold but its centre x = 15 is outside the GT's [0, 6].
    result = ATSSAssigner(topk=5)(anchors, counts, *tensors([gt]), BG)
    assert positives(result) == {4: 0}


def test_atss_anchor_claimed_by_two_gts_goes_to_higher_iou():
    anchors, _, counts = grid_anchors(40, [10], cell=2.0)
    # Alone, each GT's only positive is a0 [-5, -5, 15, 15]:
    # GT 0 [0, 0, 6, 8]: IoU 48 / 400 = 0.12; GT 1 [0, 0, 8, 12]: IoU 96 / 400 = 0.24.
    assigner = ATSSAssigner(topk=5)
    assert positives(assigner(anchors, counts, *tensors([[0, 0, 6, 8]], [1]), BG)) == {0: 1}
    assert positives(assigner(anchors, counts, *tensors([[0, 0, 8, 12]], [2]), BG)) == {0: 2}
    labels, boxes, mask = tensors([[0, 0, 6, 8], [0, 0, 8, 12]], [1, 2])
    result = assigner(anchors, counts, labels, boxes, mask, BG)
    assert positives(result) == {0: 2}
    np.testing.assert_array_equal(result[1].numpy()[0, 0], [0, 0, 8, 12])


def test_atss_force_gt_matching():
    anchors, _, counts = grid_anchors(40, [10], cell=2.0)
    # A 2 x 2 GT around (22, 22) contains no anchor centre, so it has no positive. Its best IoU,
    # 4 / 400, is shared by the four anchors covering it (a5, a6, a9, a10): the lowest index wins.
    tiny = [21, 21, 23, 23]
    assert positives(ATSSAssigner(topk=5)(anchors, counts, *tensors([tiny], [7]), BG)) == {}
    forced = ATSSAssigner(topk=5, force_gt_matching=True)
    assert positives(forced(anchors, counts, *tensors([tiny], [7]), BG)) == {5: 7}
    # With a second such GT whose best anchor is also a5, neither takes it (PaddleDetection's
    # rule: only an anchor that is the best of exactly one GT is forced).
    other = [16, 16, 18, 18]
    assert positives(forced(anchors, counts, *tensors([tiny, other], [7, 8]), BG)) == {}


def test_atss_soft_scores():
    anchors, _, counts = grid_anchors(40, [10], cell=2.0)
    labels, boxes, mask = tensors([[0, 0, 8, 12]], [2])  # positive: a0 only
    pred = paddle.zeros([1, 16, 4])
    pred[0, 0] = paddle.to_tensor([0.0, 0.0, 8.0, 6.0])  # IoU with the GT: 48 / 96 = 0.5
    result = ATSSAssigner(topk=5)(anchors, counts, labels, boxes, mask, BG, pred_bboxes=pred)
    assert result[2].numpy()[0, 0, 2] == pytest.approx(0.5)
    assert result[2].numpy().sum() == pytest.approx(0.5)
    gt_scores = paddle.full([1, 1, 1], 0.7)
    result = ATSSAssigner(topk=5)(anchors, counts, labels, boxes, mask, BG, gt_scores=gt_scores)
    assert result[2].numpy()[0, 0, 2] == pytest.approx(0.7)
    assert result[2].numpy().sum() == pytest.approx(0.7)


# ------------------------------------------------------------------------------------------------
# TAL by hand: same 4 x 4 grid of anchor points; alpha 1, beta 2 so that t = s * u ** 2.


def tal_inputs(scores, boxes):
    """Class-0 scores and predicted boxes for the listed anchors, zeros elsewhere."""
    pred_scores, pred_boxes = np.zeros([1, 16, 80], 'float32'), np.zeros([1, 16, 4], 'float32')
    for a, s in scores.items():
        pred_scores[0, a, 0] = s
    for a, b in boxes.items():
        pred_boxes[0, a] = b
    return paddle.to_tensor(pred_scores), paddle.to_tensor(pred_boxes)


def test_tal_topk_of_alignment_among_anchors_inside_gt():
    _, points, counts = grid_anchors(40, [10])
    gt = [0, 0, 20, 20]  # area 400; points inside: a0 (5, 5), a1 (15, 5), a4 (5, 15), a5 (15, 15)
    full, top_half, quarter = [0, 0, 20, 20], [0, 0, 20, 10], [0, 0, 10, 10]  # IoU 1, 0.5, 0.25
    scores = {0: 0.9, 1: 0.5, 4: 0.8, 5: 0.6, 2: 1.0}  # a2 (25, 5) is outside the GT
    boxes = {0: top_half, 1: full, 4: top_half, 5: quarter, 2: full}
    t = {0: 0.9 * 0.5 ** 2, 1: 0.5 * 1.0 ** 2, 4: 0.8 * 0.5 ** 2, 5: 0.6 * 0.25 ** 2}
    #    = 0.225,            0.5,              0.2,              0.0375
    # top 2 by t: a1 (0.5) and a0 (0.225); a2 would have t = 1 but its point is outside the GT.
    pred_scores, pred_boxes = tal_inputs(scores, boxes)
    assigner = TaskAlignedAssigner(topk=2, alpha=1.0, beta=2.0)
    result = assigner(pred_scores, pred_boxes, points, counts, *tensors([gt]), BG)
    assert positives(result) == {0: 0, 1: 0}
    # Normalised target: t / max t of the GT * max IoU of its positives = t / 0.5 * 1.0.
    max_t, max_u = t[1], 1.0
    assert result[2].numpy()[0, 1, 0] == pytest.approx(t[1] / max_t * max_u)  # 1.0
    assert result[2].numpy()[0, 0, 0] == pytest.approx(t[0] / max_t * max_u)  # 0.45
    assert result[2].numpy().sum() == pytest.approx(1.45)


def test_tal_anchor_claimed_by_two_gts_goes_to_higher_iou():
    _, points, counts = grid_anchors(40, [10])
    # Both GTs contain only the point of a5 (15, 15); its predicted box [10, 10, 20, 20] has
    # IoU 100 / 144 with GT 0 [10, 10, 22, 22] and 100 / 100 with GT 1 [10, 10, 20, 20].
    pred_scores, pred_boxes = tal_inputs({5: 0.5}, {5: [10, 10, 20, 20]})
    labels, boxes, mask = tensors([[10, 10, 22, 22], [10, 10, 20, 20]], [0, 0])
    result = TaskAlignedAssigner(topk=2)(pred_scores, pred_boxes, points, counts, labels, boxes,
                                         mask, BG)
    assert positives(result) == {5: 0}
    np.testing.assert_array_equal(result[1].numpy()[0, 5], [10, 10, 20, 20])  # GT 1's box
    assert result[2].numpy()[0, 5, 0] == pytest.approx(1.0)  # t / max t * IoU 1


# ------------------------------------------------------------------------------------------------
# The dense definitions, in numpy with their own IoU and inside code: every GT against every
# prior, image by image, ranks by a stable sort (equal values: lowest prior index first).


def np_iou(a, b, eps):
    """IoU of broadcasting float32 boxes ``[..., 4]`` (union + eps, as PaddleDetection)."""
    lt, rb = np.maximum(a[..., :2], b[..., :2]), np.minimum(a[..., 2:], b[..., 2:])
    wh = np.clip(rb - lt, 0, None)
    overlap = wh[..., 0] * wh[..., 1]
    area = lambda x: np.clip(x[..., 2] - x[..., 0], 0, None) * np.clip(x[..., 3] - x[..., 1], 0, None)  # noqa: E731,E501
    return overlap / (area(a) + area(b) - overlap + np.float32(eps))


def np_inside(points, box):
    """Points ``[L, 2]`` strictly inside ``box [4]`` by more than 1e-9 on every side."""
    x, y = points[:, 0], points[:, 1]
    return (x - box[0] > 1e-9) & (y - box[1] > 1e-9) & (box[2] - x > 1e-9) & (box[3] - y > 1e-9)


def np_top(values, k, largest=True):
    """Indices of the k best values, lowest index first among equal ones."""
    order = np.argsort(-values if largest else values, kind='stable')
    return order[:k]


def np_resolve(claims, score, real, conflict):
    """``claims [n, L]`` -> slot of each prior (-1 none): highest score among the claimants, or
    with ``conflict='ppdet'`` among all real slots where two or more claim; lowest slot on ties."""
    competing = claims.copy()
    if conflict == 'ppdet':
        contested = claims.sum(axis=0) > 1
        competing[:, contested] = real[:, None]
    masked = np.where(competing, score, -np.inf)
    return np.where(claims.any(axis=0), masked.argmax(axis=0), -1)


def np_targets(gt_index, labels, boxes, pos_scores, num_classes):
    """Labels, boxes and scores of one image from ``gt_index [L]``."""
    slot = np.clip(gt_index, 0, None)
    out_labels = np.where(gt_index >= 0, labels[slot], num_classes)
    out_scores = np.zeros((len(gt_index), num_classes), 'float32')
    pos = np.nonzero(gt_index >= 0)[0]
    out_scores[pos, out_labels[pos]] = pos_scores[pos]
    return out_labels, boxes[slot], out_scores


def dense_atss(anchors, counts, gt_labels, gt_bboxes, pad_gt_mask, bg_index, num_classes, topk=9,
               force_gt_matching=False, gt_scores=None, pred_bboxes=None, conflict='ppdet'):
    """ATSS by its definition: ATSSAssigner's arguments, its (labels, boxes, scores) in numpy."""
    anchors = anchors.numpy()
    labels_all, boxes_all = gt_labels.numpy()[..., 0], gt_bboxes.numpy()
    real_all = pad_gt_mask.numpy()[..., 0] > 0
    centres = (anchors[:, :2] + anchors[:, 2:]) / 2
    starts = np.cumsum([0] + list(counts))
    out = []
    for b in range(boxes_all.shape[0]):
        boxes, real = boxes_all[b], real_all[b]
        ious = np_iou(boxes[:, None], anchors[None], 1e-10)  # [n, L]
        claims = np.zeros(ious.shape, bool)
        for g in np.nonzero(real)[0]:
            d = centres - (boxes[g, :2] + boxes[g, 2:]) / 2
            distance = d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1]
            cand = np.concatenate([start + np_top(distance[start:end], topk, largest=False)
                                   for start, end in zip(starts[:-1], starts[1:])])
            cand_iou = ious[g, cand].astype('float64')
            threshold = cand_iou.mean() + cand_iou.std(ddof=1)
            keep = cand[(cand_iou > threshold) & np_inside(centres[cand], boxes[g])]
            claims[g, keep] = True
        gt_index = np_resolve(claims, ious, real, conflict)
        if force_gt_matching:
            best = ious.argmax(axis=1)
            for g in np.nonzero(real)[0]:
                if sum(best[h] == best[g] for h in np.nonzero(real)[0]) == 1:
                    gt_index[best[g]] = g
        slot = np.clip(gt_index, 0, None)
        if pred_bboxes is not None:
            pos_scores = np_iou(boxes[slot], pred_bboxes.numpy()[b], 1e-9)
        elif gt_scores is not None:
            pos_scores = gt_scores.numpy()[b, slot, 0]
        else:
            pos_scores = np.ones(len(slot), 'float32')
        out.append(np_targets(gt_index, labels_all[b], boxes, pos_scores, num_classes))
    return tuple(np.stack(parts) for parts in zip(*out))


def dense_tal(pred_scores, pred_bboxes, points, counts, gt_labels, gt_bboxes, pad_gt_mask, bg_index,
              topk=13, alpha=1.0, beta=6.0, eps=1e-9, conflict='ppdet'):
    """TAL by its definition: TaskAlignedAssigner's arguments, its result in numpy."""
    scores_all, preds_all = pred_scores.numpy(), pred_bboxes.numpy()
    points = points.numpy()
    labels_all, boxes_all = gt_labels.numpy()[..., 0], gt_bboxes.numpy()
    real_all = pad_gt_mask.numpy()[..., 0] > 0
    num_classes = scores_all.shape[-1]
    out = []
    for b in range(boxes_all.shape[0]):
        boxes, real, labels = boxes_all[b], real_all[b], labels_all[b]
        ious = np_iou(boxes[:, None], preds_all[b][None], 1e-9)  # [n, L]
        metric = (np.power(scores_all[b][:, labels].T, np.float32(alpha)) *
                  np.power(ious, np.float32(beta)))
        claims = np.zeros(ious.shape, bool)
        for g in np.nonzero(real)[0]:
            inside = np_inside(points, boxes[g])
            top = np_top(metric[g] * inside, min(topk, len(points)))
            claims[g, top[inside[top]]] = True
        gt_index = np_resolve(claims, ious, real, conflict)
        slot = np.clip(gt_index, 0, None)
        prior = np.arange(len(slot))
        t, u = metric[slot, prior], ious[slot, prior]
        pos = gt_index >= 0
        max_t = np.array([t[pos & (slot == g)].max(initial=0) for g in range(len(boxes))])
        max_u = np.array([u[pos & (slot == g)].max(initial=0) for g in range(len(boxes))])
        pos_scores = t / (max_t[slot] + np.float32(eps)) * max_u[slot]
        out.append(np_targets(gt_index, labels, boxes, pos_scores, num_classes))
    return tuple(np.stack(parts) for parts in zip(*out))


# ------------------------------------------------------------------------------------------------
# Random batches


def random_batch(rng, size=128, batch_size=3, num_gts=6, num_classes=6, integer=False,
                 tied_predictions=False):
    """Realistic small batch: boxes of 1-80 % of the image (some tiny, some partly outside, some
    duplicated), padded GT slots at the end, images without GT, predictions around the anchors."""
    anchors, points, counts = grid_anchors(size, [8, 16, 32])
    num_anchors = points.shape[0]
    wh = np.exp(rng.uniform(np.log(0.01 * size), np.log(0.8 * size), (batch_size, num_gts, 2)))
    tiny = rng.uniform(size=(batch_size, num_gts, 1)) < 0.1
    wh = np.where(tiny, rng.uniform(0.5, 3, wh.shape), wh)
    centre = rng.uniform(0, size, (batch_size, num_gts, 2))
    outside = rng.uniform(size=(batch_size, num_gts, 1)) < 0.1
    centre = np.where(outside, rng.uniform(-0.2 * size, 1.2 * size, centre.shape), centre)
    boxes = np.concatenate([centre - wh / 2, centre + wh / 2], axis=-1)
    if integer:  # integer corners put GT centres on grid symmetry lines: distance ties
        boxes = np.round(boxes)
    if num_gts > 1:
        duplicate = rng.uniform(size=(batch_size, num_gts)) < 0.1
        boxes[duplicate] = boxes[:, :1].repeat(num_gts, axis=1)[duplicate]
    num_real = rng.integers(0, num_gts + 1, batch_size)
    num_real[rng.uniform(size=batch_size) < 0.3] = num_gts
    mask = (np.arange(num_gts)[None] < num_real[:, None]).astype('float32')[..., None]
    boxes = boxes * mask
    labels = rng.integers(0, num_classes, (batch_size, num_gts, 1)) * mask.astype('int64')
    logits = rng.uniform(-8, 3, (batch_size, num_anchors, num_classes))
    distance = np.exp(rng.uniform(0, np.log(size / 3), (batch_size, num_anchors, 4)))
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


def both_impls(assigner, call):
    """``call(assigner)`` for the assigner (fast) and, for our classes, its ``impl='dense'``
    twin, which must agree exactly; the fast result."""
    result = call(assigner)
    if isinstance(assigner, (ATSSAssigner, TaskAlignedAssigner)):
        twin = copy.copy(assigner)
        twin.impl = 'dense'
        for a, b in zip(result, call(twin)):
            np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg='fast != dense')
    return result


def run_atss(assigner, d, **kwargs):
    """``assigner`` (ATSSAssigner or dense_atss with its options bound) on a random batch."""
    return both_impls(assigner, lambda a: a(d['anchors'], d['counts'], d['gt_labels'],
                                            d['gt_bboxes'], d['pad_gt_mask'], BG, **kwargs))


def run_tal(assigner, d):
    """``assigner`` (TaskAlignedAssigner or dense_tal with its options bound) on a random batch."""
    return both_impls(assigner, lambda a: a(d['pred_scores'], d['pred_bboxes'], d['points'],
                                            d['counts'], d['gt_labels'], d['gt_bboxes'],
                                            d['pad_gt_mask'], BG))


def dense(reference, **options):
    """The dense definition as an assigner callable with ``options`` bound."""
    if reference is dense_atss:
        return lambda *args, **kwargs: dense_atss(*args, BG, **options, **kwargs)
    return lambda *args: dense_tal(*args, **options)


def assert_same(result, definition):
    """Labels and boxes exactly, soft scores to 1e-6 relative (numpy's pow and sums round
    differently from Paddle's)."""
    for name, a, b in zip(['labels', 'bboxes', 'scores'], result, definition):
        a = a.numpy() if hasattr(a, 'numpy') else a
        b = b.numpy() if hasattr(b, 'numpy') else b
        assert a.shape == b.shape, name
        if name == 'scores':
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7, err_msg=name)
        else:
            np.testing.assert_array_equal(a, b, err_msg=name)


ATSS_MODES = [dict(), dict(force_gt_matching=True), dict(pred_bboxes=True), dict(gt_scores=True)]


@pytest.mark.parametrize('mode', range(len(ATSS_MODES)))
@pytest.mark.parametrize('integer', [False, True])
def test_atss_equals_dense_definition(mode, integer):
    rng = np.random.default_rng(10 * mode + integer)
    options = ATSS_MODES[mode]
    force = options.get('force_gt_matching', False)
    fast = ATSSAssigner(topk=9, num_classes=BG, force_gt_matching=force)
    for num_gts in [1, 4, 12, 12, 24]:
        d = random_batch(rng, num_gts=num_gts, num_classes=BG, integer=integer)
        extra = {key: d[key] for key in ('pred_bboxes', 'gt_scores') if options.get(key)}
        expected = run_atss(dense(dense_atss, force_gt_matching=force), d, **extra)
        assert_same(run_atss(fast, d, **extra), expected)


@pytest.mark.parametrize('tied_predictions', [False, True])
@pytest.mark.parametrize('integer', [False, True])
def test_tal_equals_dense_definition(tied_predictions, integer):
    rng = np.random.default_rng(2 * tied_predictions + integer)
    for num_gts in [1, 4, 12, 12, 24]:
        d = random_batch(rng, num_gts=num_gts, num_classes=BG, integer=integer,
                         tied_predictions=tied_predictions)
        assert_same(run_tal(TaskAlignedAssigner(), d), run_tal(dense(dense_tal), d))


def test_tal_small_topk_and_other_exponents():
    rng = np.random.default_rng(7)
    for topk, alpha, beta in [(1, 1.0, 6.0), (4, 0.5, 2.0), (30, 2.0, 1.0)]:
        d = random_batch(rng, num_gts=10, num_classes=BG, tied_predictions=topk == 4)
        options = dict(topk=topk, alpha=alpha, beta=beta)
        assert_same(run_tal(TaskAlignedAssigner(**options), d),
                    run_tal(dense(dense_tal, **options), d))


def test_atss_other_topk_and_image_shapes():
    rng = np.random.default_rng(8)
    for size, topk in [(96, 3), (160, 9), (224, 15)]:  # 160 and 224: L not a multiple of 8
        d = random_batch(rng, size=size, num_gts=10, num_classes=BG, integer=True)
        options = dict(topk=topk, force_gt_matching=True)
        assert_same(run_atss(ATSSAssigner(num_classes=BG, **options), d),
                    run_atss(dense(dense_atss, **options), d))


def gt_batch(centres, sides):
    """One image with GT boxes of the given centres and (w, h), labels 0, 1, 2, ..."""
    boxes = [[cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
             for (cx, cy), (w, h) in zip(centres, sides)]
    return tensors(boxes, labels=np.arange(len(boxes)) % BG)


@pytest.mark.parametrize('size', [128, 320])
def test_atss_distance_ties_go_to_the_lowest_prior_index(size):
    # Centres on multiples of 8 sit between anchor columns/rows: candidates come in equidistant
    # pairs and quadruples, and the k-th nearest is tied with the (k+1)-th.
    rng = np.random.default_rng(size)
    anchors, _, counts = grid_anchors(size, [8, 16, 32])
    gts = gt_batch(rng.integers(1, size // 8, (60, 2)) * 8.0, rng.integers(2, 40, (60, 2)) * 4.0)
    assert_same(ATSSAssigner(num_classes=BG)(anchors, counts, *gts, BG),
                dense_atss(anchors, counts, *gts, BG, BG))


@pytest.mark.parametrize('shape', [(8.0, 16.0), (16.0, 8.0)])
def test_atss_tie_between_anchors_of_equal_iou_only_one_inside(shape):
    # GT centre at (-2, -6) from a stride-8 anchor centre. Nearest anchor: offset (2, -2); then a
    # tie at the 2nd place between offsets (2, 6) and (-6, -2), both at sqrt(40). Both 40 px anchors
    # contain the whole GT, so both have IoU 128 / 1600 (positive), but only one has its centre
    # inside the GT: which one paddle.topk picks decides the positive.
    anchors, _, counts = grid_anchors(640, [8, 16, 32])
    cols, rows = np.meshgrid(np.arange(2, 78, 3), np.arange(2, 78, 7))
    centres = np.stack([8 * cols.ravel() + 2, 8 * rows.ravel() - 2], axis=1).astype('float64')
    gts = gt_batch(centres, np.tile([shape], (len(centres), 1)))
    assert_same(ATSSAssigner(topk=2, num_classes=BG)(anchors, counts, *gts, BG),
                dense_atss(anchors, counts, *gts, BG, BG, topk=2))


def test_atss_gt_centre_far_outside_the_grid():
    # The nearest anchors of a far-away centre spread along the grid's border, beyond the window.
    rng = np.random.default_rng(14)
    anchors, _, counts = grid_anchors(640, [8, 16, 32])
    gts = gt_batch(rng.uniform(-640, 1280, (60, 2)), rng.uniform(320, 1280, (60, 2)))
    assert_same(ATSSAssigner(num_classes=BG)(anchors, counts, *gts, BG),
                dense_atss(anchors, counts, *gts, BG, BG))


def test_batched_equals_per_image():
    rng = np.random.default_rng(11)
    d = random_batch(rng, batch_size=4, num_gts=12, num_classes=BG, integer=True)
    atss, tal = ATSSAssigner(num_classes=BG), TaskAlignedAssigner()
    together = [run_atss(atss, d, pred_bboxes=d['pred_bboxes']), run_tal(tal, d)]
    for b in range(4):
        num_real = int(d['pad_gt_mask'].numpy()[b].sum())
        # Each image alone, with its own padding: its real GTs plus 3 empty slots.
        alone = dict(d)
        for key in ('gt_labels', 'gt_bboxes', 'pad_gt_mask'):
            value = d[key].numpy()[b:b + 1, :num_real]
            padding = np.zeros((1, 3, value.shape[2]), value.dtype)
            alone[key] = paddle.to_tensor(np.concatenate([value, padding], axis=1))
        for key in ('pred_bboxes', 'pred_scores'):
            alone[key] = d[key][b:b + 1]
        single = [run_atss(atss, alone, pred_bboxes=alone['pred_bboxes']), run_tal(tal, alone)]
        for batched, one in zip(together, single):
            for part_of_batch, part_alone in zip(batched[:3], one[:3]):
                np.testing.assert_array_equal(part_of_batch.numpy()[b], part_alone.numpy()[0])


def test_images_without_gt_and_empty_batches():
    rng = np.random.default_rng(12)
    d = random_batch(rng, num_gts=5, num_classes=BG)
    d['pad_gt_mask'] = paddle.zeros_like(d['pad_gt_mask'])  # every slot padding
    for result in (run_atss(ATSSAssigner(num_classes=BG, force_gt_matching=True), d),
                   run_tal(TaskAlignedAssigner(), d)):
        assert (result[0].numpy() == BG).all() and not result[2].numpy().any()
    for key, width in (('gt_labels', 1), ('gt_bboxes', 4), ('pad_gt_mask', 1)):
        d[key] = paddle.zeros([3, 0, width], d[key].dtype)
    for result in (run_atss(ATSSAssigner(num_classes=BG), d), run_tal(TaskAlignedAssigner(), d)):
        assert result[0].shape == [3, 336] and (result[0].numpy() == BG).all()
        assert result[1].shape == [3, 336, 4] and result[2].shape == [3, 336, BG]
        assert not result[1].numpy().any() and not result[2].numpy().any()


@pytest.mark.parametrize('dtype', ['int32', 'int64'])
def test_label_dtypes(dtype):
    rng = np.random.default_rng(13)
    d = random_batch(rng, num_gts=8, num_classes=BG)
    reference = [run_atss(ATSSAssigner(num_classes=BG), d), run_tal(TaskAlignedAssigner(), d)]
    d['gt_labels'] = d['gt_labels'].astype(dtype)
    results = [run_atss(ATSSAssigner(num_classes=BG), d), run_tal(TaskAlignedAssigner(), d)]
    for result, expected in zip(results, reference):
        assert result[0].dtype == d['gt_labels'].dtype
        for a, b in zip(result, expected):
            np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_assign_and_forward_adapter_agree():
    """``assign`` (the interface) and ``forward`` (PaddleDetection's positional adapter) give the
    same targets; the adapter's fourth value ``mask_positive [B, n, L]`` marks slot gt_index."""
    from ppdet_lite.modeling.assigners import GTs, Preds, Priors
    rng = np.random.default_rng(21)
    d = random_batch(rng, num_gts=6, num_classes=BG)
    priors = Priors(d['points'], d['anchors'], None, d['counts'], [(16, 16), (8, 8), (4, 4)])
    gts = GTs(d['gt_labels'], d['gt_bboxes'], d['pad_gt_mask'])
    preds = Preds(d['pred_scores'], d['pred_bboxes'])
    cases = [(ATSSAssigner(num_classes=BG).assign(priors, gts, preds),
              run_atss(ATSSAssigner(num_classes=BG), d, pred_bboxes=d['pred_bboxes'])),
             (TaskAlignedAssigner(num_classes=BG).assign(priors, gts, preds),
              run_tal(TaskAlignedAssigner(), d))]
    for result, adapter in cases:
        assert len(adapter) == 4
        for a, b in zip(result[:3], adapter[:3]):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
        gt_index, mask_positive = result.gt_index.numpy(), adapter[3].numpy()
        assert mask_positive.shape == (3, 6, 336) and mask_positive.dtype == np.float32
        for b in range(3):
            for g in range(6):
                np.testing.assert_array_equal(mask_positive[b, g], gt_index[b] == g)
        labels = result.assigned_labels.numpy()
        np.testing.assert_array_equal(labels != BG, gt_index >= 0)
        assert (gt_index >= -1).all() and not result.ignore_mask.numpy().any()


# ------------------------------------------------------------------------------------------------
# Stated rules by hand (4 x 4 grid of stride 10 as above: points 5, 15, 25, 35; prior 4 * row + col)


def test_tal_conflict_claimants_or_all_real_slots():
    _, points, counts = grid_anchors(40, [10])
    # Prior 5's point (15, 15) is the only point inside GT 0 [14, 10, 16, 20] and GT 1
    # [13, 10, 17, 20]; GT 2 [10, 10, 20, 15] holds no point (15 is not strictly inside (10, 15)).
    # Prior 5's predicted box P = [10, 10, 20, 20] (area 100) overlaps
    #   GT 0: 2 x 10 = 20 -> IoU 20 / (20 + 100 - 20) = 0.2
    #   GT 1: 4 x 10 = 40 -> IoU 40 / (40 + 100 - 40) = 0.4
    #   GT 2: 10 x 5 = 50 -> IoU 50 / (50 + 100 - 50) = 0.5 (but GT 2 never claims prior 5).
    scores = np.zeros([1, 16, 80], 'float32')
    scores[0, 5, :] = 0.5
    boxes = np.zeros([1, 16, 4], 'float32')
    boxes[0, 5] = [10, 10, 20, 20]
    preds = (paddle.to_tensor(scores), paddle.to_tensor(boxes), points, counts)
    gts = tensors([[14, 10, 16, 20], [13, 10, 17, 20], [10, 10, 20, 15]], labels=[1, 2, 3])
    ppdet = TaskAlignedAssigner()(*preds, *gts, BG)
    claimants = TaskAlignedAssigner(conflict='claimants')(*preds, *gts, BG)
    assert positives(ppdet) == {5: 3}      # every real slot competes: GT 2's 0.5 wins
    assert positives(claimants) == {5: 2}  # the claimants only: GT 1's 0.4 beats 0.2
    # Target: t / (max t of the GT's positives + eps) * max IoU = 1 * IoU for a lone positive.
    assert ppdet[2].numpy()[0, 5, 3] == pytest.approx(0.5)
    assert claimants[2].numpy()[0, 5, 2] == pytest.approx(0.4)
    for result in (ppdet, claimants):
        assert_same(result, dense_tal(*preds, *gts, BG, conflict=('ppdet' if result is ppdet
                                                                   else 'claimants')))


@pytest.mark.parametrize('gt, topk, expected', [
    # GT [0, 0, 20, 20] holds points of priors 0, 1, 4, 5; only prior 5 has t > 0 (m = 1). The
    # other topk - 1 places go to the lowest-index priors valued 0 (t * inside = 0): priors 0, 1
    # for topk 3 (both candidates, so positive; prior 4 is not), prior 0 for topk 2.
    ([0, 0, 20, 20], 3, {0, 1, 5}),
    ([0, 0, 20, 20], 2, {0, 5}),
    # GT [10, 0, 30, 20] holds priors 1, 2, 5, 6: the two zero places go to priors 0 (not a
    # candidate: it takes a place but is not kept) and 1.
    ([10, 0, 30, 20], 3, {1, 5}),
])
def test_tal_zero_metric_candidates_by_lowest_index(gt, topk, expected):
    _, points, counts = grid_anchors(40, [10])
    scores = np.zeros([1, 16, 80], 'float32')
    scores[0, 5, 0] = 0.5  # every other prior scores 0 for class 0: t = 0
    boxes = np.tile(np.array([[[10, 10, 20, 20]]], 'float32'), [1, 16, 1])
    preds = (paddle.to_tensor(scores), paddle.to_tensor(boxes), points, counts)
    result = TaskAlignedAssigner(topk=topk)(*preds, *tensors([gt]), BG)
    assert set(positives(result)) == expected
    assert result[2].numpy()[0, :, 0].nonzero()[0].tolist() == [5]  # t = 0: target score 0


def test_atss_level_smaller_than_topk_gives_all_its_priors():
    # Levels 4 x 4 (stride 10) and 1 x 1 (stride 40), topk 3: the second level's single prior is
    # a candidate. GT [10, 10, 30, 30]: centre (20, 20), equidistant (sqrt 50) from priors 5, 6,
    # 9, 10 of level 0, of which the lowest-index three are candidates (5, 6, 9), each IoU
    # 225 / 575 = 0.3913 with anchors of side 20; the stride-40 prior (20, 20) [-20, -20, 60, 60]
    # (side 80) has IoU 400 / 6400 = 0.0625. mean + std of the four: 0.3522 + 0.1636 = 0.5158:
    # no positive. Per level alone, the lowest-index rule is what the definition decides.
    feats = [paddle.zeros([1, 1, 4, 4]), paddle.zeros([1, 1, 1, 1])]
    anchors, points, counts, _ = generate_anchors_for_grid_cell(feats, [10, 40], 2.0)
    assert counts == [16, 1]
    ious = [225 / 575] * 3 + [400 / 6400]
    threshold = statistics.mean(ious) + statistics.stdev(ious)
    assert max(ious) < threshold
    gts = tensors([[10, 10, 30, 30]])
    result = ATSSAssigner(topk=3)(anchors, counts, *gts, BG)
    assert positives(result) == {}
    assert_same(result, dense_atss(anchors, counts, *gts, BG, BG, topk=3))
    # A GT whose nearest three have unequal IoUs: [8, 8, 22, 22] (centre (15, 15) on prior 5).
    gts = tensors([[8, 8, 22, 22]])
    assert_same(ATSSAssigner(topk=3)(anchors, counts, *gts, BG),
                dense_atss(anchors, counts, *gts, BG, BG, topk=3))


def test_window_holds_the_topk_nearest_anywhere():
    # window_offsets' claim, by brute force on a 12 x 9 grid: for points on, near and far off the
    # grid (and on its symmetry lines), the topk nearest cells by squared distance, lowest index
    # on ties, all lie within the offsets around the per-axis nearest cell.
    from ppdet_lite.modeling.assigners.atss_assigner import window_offsets
    rng = np.random.default_rng(5)
    rows, cols = 12, 9
    ys, xs = np.meshgrid(np.arange(rows) * 8.0 + 4, np.arange(cols) * 8.0 + 4, indexing='ij')
    cells = np.stack([xs.ravel(), ys.ravel()], 1).astype('float32')
    points = np.concatenate([rng.uniform(-300, 400, (300, 2)),
                             np.round(rng.uniform(-20, 110, (300, 2)) / 4) * 4]).astype('float32')
    for topk in (1, 3, 9, 13):
        offsets = set(window_offsets(topk))
        for p in points:
            d = cells - p
            nearest = np_top(d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1], topk, largest=False)
            c0 = np.abs(xs[0] - p[0]).argmin()
            r0 = np.abs(ys[:, 0] - p[1]).argmin()
            assert {(i // cols - r0, i % cols - c0) for i in nearest} <= offsets


def test_zero_priors_and_empty_levels():
    from ppdet_lite.modeling.assigners import GTs, Preds, Priors
    gts = GTs(*tensors([[0, 0, 20, 20]]))
    # An empty middle level (0 x 0) between two grids.
    feats = [paddle.zeros([1, 1, 4, 4]), paddle.zeros([1, 1, 2, 2])]
    anchors, points, counts, _ = generate_anchors_for_grid_cell(feats, [10, 20], 2.0)
    priors = Priors(points, anchors, None, [16, 0, 4], [(4, 4), (0, 0), (2, 2)])
    expected = Priors(points, anchors, None, [16, 4], [(4, 4), (2, 2)])
    scores = paddle.full([1, 20, 80], 0.5)
    boxes = paddle.to_tensor(np.tile(np.array([[[0, 0, 20, 20]]], 'float32'), [1, 20, 1]))
    for assigner in (ATSSAssigner(topk=3), TaskAlignedAssigner(topk=3),
                     ATSSAssigner(topk=3, impl='dense'), TaskAlignedAssigner(topk=3, impl='dense')):
        with_empty = assigner.assign(priors, gts, Preds(scores, boxes))
        without = assigner.assign(expected, gts, Preds(scores, boxes))
        for a, b in zip(with_empty, without):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
        if isinstance(assigner, TaskAlignedAssigner):
            assert with_empty.positive_mask.numpy().any()
    # No priors at all.
    none = Priors(paddle.zeros([0, 2]), paddle.zeros([0, 4]), None, [0], [(0, 0)])
    for assigner in (ATSSAssigner(), TaskAlignedAssigner(), ATSSAssigner(impl='dense'),
                     TaskAlignedAssigner(impl='dense')):
        result = assigner.assign(none, gts, Preds(paddle.zeros([1, 0, 80]), paddle.zeros([1, 0, 4])))
        assert result.gt_index.shape == [1, 0] and result.assigned_scores.shape == [1, 0, 80]


@pytest.mark.parametrize('cls, kwargs, message', [
    (ATSSAssigner, dict(conflict='max'), r"conflict must be one of"),
    (ATSSAssigner, dict(impl='gpu'), r"impl must be one of"),
    (TaskAlignedAssigner, dict(conflict=None), r"conflict must be one of"),
    (TaskAlignedAssigner, dict(impl='sparse'), r"impl must be one of"),
    (TaskAlignedAssigner, dict(num_classes=0), r"num_classes must be an integer >= 1"),
])
def test_constructor_choices(cls, kwargs, message):
    with pytest.raises(ValueError, match=message):
        cls(**kwargs)


def test_assign_needs_preds_for_tal_and_matching_classes():
    from ppdet_lite.modeling.assigners import GTs, Preds, grid_priors
    priors = grid_priors([(4, 4)], [10])
    gts = GTs(*tensors([[0, 0, 20, 20]]))
    assert TaskAlignedAssigner.needs_preds and not ATSSAssigner.needs_preds
    with pytest.raises(ValueError, match='needs preds'):
        TaskAlignedAssigner().assign(priors, gts)
    with pytest.raises(ValueError, match=r'preds\.scores must be \[\*, \*, 80\]'):
        TaskAlignedAssigner().assign(priors, gts, Preds(paddle.zeros([1, 16, 3]),
                                                        paddle.zeros([1, 16, 4])))
    assert not ATSSAssigner(topk=3).assign(priors, gts).ignore_mask.numpy().any()


class HostSyncs(object):
    """Counts host synchronisations while active: a device value read on the host
    (``numpy``, ``item``, ``tolist``, ``bool``/``int``/``float``/``index`` of a tensor) or a shape
    that depends on one (``paddle.nonzero``, ``masked_select``)."""
    METHODS = ('numpy', 'item', 'tolist', '__bool__', '__int__', '__float__', '__index__')

    def __enter__(self):
        self.count, self.saved, self.depth = 0, [], 0
        for owner, names in ((paddle.Tensor, self.METHODS), (paddle, ('nonzero', 'masked_select'))):
            for name in names:
                original = getattr(owner, name)
                self.saved.append((owner, name, original))
                setattr(owner, name, self._counting(original))
        return self

    def _counting(self, original):
        def wrapper(*args, **kwargs):
            self.count += self.depth == 0  # nested calls (bool -> numpy) count once
            self.depth += 1
            try:
                return original(*args, **kwargs)
            finally:
                self.depth -= 1
        return wrapper

    def __exit__(self, *exc):
        for owner, name, original in self.saved:
            setattr(owner, name, original)


@pytest.mark.parametrize('cls, kwargs, syncs', [
    (ATSSAssigner, dict(impl='dense'), 0),
    (TaskAlignedAssigner, dict(impl='dense'), 0),
    (ATSSAssigner, dict(conflict='claimants'), 0),
    (ATSSAssigner, dict(), 1),                        # how many priors are contested
    (TaskAlignedAssigner, dict(conflict='claimants'), 1),  # how many candidate pairs
    (TaskAlignedAssigner, dict(), 2),                 # both
])
def test_host_synchronisations_per_assign_call(cls, kwargs, syncs):
    from ppdet_lite.modeling.assigners import GTs, Preds, Priors
    d = random_batch(np.random.default_rng(31), num_gts=12, num_classes=BG, integer=True)
    priors = Priors(d['points'], d['anchors'], None, d['counts'], [(16, 16), (8, 8), (4, 4)])
    gts = GTs(d['gt_labels'], d['gt_bboxes'], d['pad_gt_mask'])
    preds = Preds(d['pred_scores'], d['pred_bboxes'])
    assigner = cls(num_classes=BG, **kwargs)
    with HostSyncs() as counter:
        result = assigner.assign(priors, gts, preds)
    assert counter.count == syncs
    assert result.positive_mask.numpy().any()


def test_tal_topk_order_is_the_same_with_the_two_sort_fallback():
    # _in_topk orders the pairs by one int64 key (row, t descending, prior ascending) when
    # rows * (2 ** 31 + 1) * priors fits in int64, else by two sorts; the prior count only scales
    # the keys, so claiming 2 ** 31 priors forces the fallback on the same pairs.
    from ppdet_lite.modeling.assigners.task_aligned_assigner import _in_topk
    rng = np.random.default_rng(41)
    num = 160  # pairs of 4 GT rows over 240 priors; metrics in steps of 0.1 (ties, zeros)
    row = paddle.to_tensor(rng.integers(0, 4, num).astype('int64'))
    prior = paddle.to_tensor(rng.permutation(240)[:num].astype('int64'))
    metric = paddle.to_tensor(np.round(rng.uniform(0, 1, num), 1).astype('float32'))
    valid = paddle.to_tensor(rng.uniform(size=num) < 0.9)
    one_key = _in_topk(row, prior, metric, valid, 4, 240, 5).numpy()
    two_sorts = _in_topk(row, prior, metric, valid, 4, 2 ** 31, 5).numpy()
    np.testing.assert_array_equal(one_key, two_sorts)
    assert 0 < one_key.sum() <= 4 * 5
