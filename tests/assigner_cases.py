"""Shared helpers of the assigner tests: input builders, numpy reference pieces (IoU, BCE, the
dynamic-k claiming of SimOTA and Dynamic Soft Label) and the host-copy counter.

The numpy pieces are written from the definitions, independently of ``ppdet_lite``'s code; the
hand-computed cases stay in the test files.
"""

import math

import numpy as np
import paddle

from ppdet_lite.modeling.assigners import BACKGROUND, GTs, Preds, Priors

# Tensor methods that hand a value to the host (each one a synchronisation).
HOST_COPIES = ('numpy', 'item', 'tolist', '__array__', '__bool__', '__int__', '__float__',
               '__index__')


def T(x, dtype='float32'):
    return paddle.to_tensor(np.asarray(x, dtype=dtype))


def with_empty_levels(priors, empty_first):
    """``priors`` with ``empty_first`` levels of 0 x 0 cells put in front (built by hand: Paddle
    2.6 cannot make an empty grid)."""
    return Priors(priors.points, priors.boxes, priors.strides,
                  [0] * empty_first + list(priors.num_anchors_list),
                  [(0, 0)] * empty_first + list(priors.level_shapes))


def no_priors(num_levels):
    return Priors(paddle.zeros([0, 2]), paddle.zeros([0, 4]), paddle.zeros([0]),
                  [0] * num_levels, [(0, 0)] * num_levels)


def make_gts(boxes, mask=None, labels=None, scores=None):
    """GTs from nested lists: ``boxes [B][n][4]``, ``mask``/``labels``/``scores`` ``[B][n]``
    (defaults: all real, class 0, no scores)."""
    boxes = np.asarray(boxes, 'float32').reshape([len(boxes), -1, 4])
    batch, num = boxes.shape[:2]
    mask = np.ones([batch, num]) if mask is None else np.asarray(mask)
    labels = np.zeros([batch, num]) if labels is None else np.asarray(labels)
    return GTs(T(labels[..., None], 'int64'), T(boxes), T(mask[..., None]),
               None if scores is None else T(np.asarray(scores)[..., None]))


def positives(result, image=0):
    """{prior index: gt slot} of one image."""
    gt_index = result.gt_index.numpy()[image]
    return {int(p): int(gt_index[p]) for p in np.nonzero(gt_index >= 0)[0]}


def one_image(boxes, labels, scores, pred_boxes):
    """GTs and Preds of one image from lists (all GT slots real)."""
    gts = GTs(paddle.to_tensor(np.array(labels, 'int64').reshape(1, -1, 1)),
              paddle.to_tensor(np.array(boxes, 'float32').reshape(1, -1, 4)),
              paddle.ones([1, len(boxes), 1], dtype='float32'))
    preds = Preds(paddle.to_tensor(np.array(scores, 'float32')[None]),
                  paddle.to_tensor(np.array(pred_boxes, 'float32')[None]))
    return gts, preds


def bce(p, t):
    """Binary cross-entropy of a probability p against a target t, logs clamped at -100."""
    return -(t * max(math.log(p), -100) + (1 - t) * max(math.log(1 - p), -100))


def np_iou(a, b):
    """IoU of boxes a [..., 4] and b [..., 4] (broadcast), float32 with 1e-9 added to the union."""
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = w * h
    area = lambda x: (np.clip(x[..., 2] - x[..., 0], 0, None)  # noqa: E731
                      * np.clip(x[..., 3] - x[..., 1], 0, None))
    return inter / (area(a) + area(b) - inter + np.float32(1e-9))


def dense_dynamic_k(cost, iou, candidate, real, topk, scope):
    """One image's dynamic-k claiming and conflicts, straight from the definition (OTA / YOLOX /
    NanoDet-Plus): each real GT g takes its ``k = max(1, floor(sum of its topk largest candidate
    IoUs))`` lowest-cost candidates (ties: lowest prior); a prior claimed by several GTs goes to
    the lowest cost among its claimants (``'gt'``) or among all real GTs (``'image'``), ties to
    the lowest slot.

    Args: ``cost [n, L]`` float64, ``iou [n, L]``, ``candidate [n, L]`` bool, ``real [n]`` bool.
    Returns: ``gt_index [L]`` (slot or BACKGROUND) and the positives' IoU ``[L]`` float32.
    """
    num_priors = cost.shape[1]
    gt_index = np.full(num_priors, BACKGROUND)
    pos_iou = np.zeros(num_priors, np.float32)
    claims = {}
    for g in np.nonzero(real)[0]:
        cand = np.nonzero(candidate[g])[0]
        k = max(1, int(math.floor(np.sort(iou[g, cand].astype(np.float64))[::-1][:topk].sum())))
        for prior in sorted(cand, key=lambda l: (cost[g, l], l))[:k]:
            claims.setdefault(prior, []).append(g)
    for prior, claimants in claims.items():
        if scope == 'image' and len(claimants) > 1:
            claimants = np.nonzero(real)[0]
        g = min(claimants, key=lambda g: (cost[g, prior], g))
        gt_index[prior] = g
        pos_iou[prior] = iou[g, prior]
    return gt_index, pos_iou


def random_batch(rng, priors, batch, num_gts, num_classes, whole=False, equal_preds=False,
                 size=64, min_side=2):
    """Random ``(labels [B, n, 1], boxes [B, n, 4], mask [B, n, 1], scores [B, L, C],
    pred [B, L, 4])`` numpy inputs on a ``size`` px image: GT sides in ``[min_side, 0.8 size)``,
    80 % of the slots real; ``whole``: whole-pixel GT boxes; ``equal_preds``: equal scores and
    a square of 4 strides around every prior (many ties)."""
    points = priors.points.numpy()
    num_priors = len(points)
    wh = rng.uniform(min_side, size * 0.8, (batch, num_gts, 2))
    xy = rng.uniform(0, 1, (batch, num_gts, 2)) * (size - wh)
    boxes = np.concatenate([xy, xy + wh], -1)
    if whole:
        boxes = np.round(boxes)
    mask = (rng.uniform(size=(batch, num_gts, 1)) < 0.8).astype('float32')
    labels = rng.integers(0, num_classes, (batch, num_gts, 1))
    if equal_preds:
        scores = np.full((batch, num_priors, num_classes), 0.3)
        side = np.repeat(priors.strides.numpy()[None, :, None], batch, 0) * 2
        pred = np.concatenate([points - side, points + side], -1)
    else:
        scores = rng.uniform(0.001, 0.999, (batch, num_priors, num_classes))
        dist = rng.uniform(1, size / 2, (batch, num_priors, 4))
        pred = np.concatenate([points - dist[..., :2], points + dist[..., 2:]], -1)
    return (labels, boxes.astype('float32'), mask, scores.astype('float32'),
            pred.astype('float32'))


def as_inputs(labels, boxes, mask, scores, pred):
    """GTs and Preds from the numpy arrays of ``random_batch``."""
    return (GTs(paddle.to_tensor(labels), paddle.to_tensor(boxes), paddle.to_tensor(mask)),
            Preds(paddle.to_tensor(scores), paddle.to_tensor(pred)))


def host_copies(monkeypatch, run):
    """``(names of the HOST_COPIES methods called during run(), its result)``."""
    copies = []
    for name in HOST_COPIES:
        original = getattr(paddle.Tensor, name)
        monkeypatch.setattr(paddle.Tensor, name,
                            lambda *args, _run=original, _name=name, **kwargs:
                            copies.append(_name) or _run(*args, **kwargs))
    result = run()
    monkeypatch.undo()
    return copies, result


def check_batched_result(assigner, priors, batch, result, gt_index, pos_iou):
    """``result`` of ``assigner`` on the ``random_batch`` arrays ``batch`` against the dense
    definition's ``gt_index [B, L]`` and positives' IoU ``pos_iou [B, L]``: the same slots (more
    than 5 positives, so that the case tests something), ``assigned_scores`` one-hot at the GT's
    class times the IoU, and each image assigned alone gives its row of the batch."""
    np.testing.assert_array_equal(result.gt_index.numpy(), gt_index)
    assert (gt_index >= 0).sum() > 5
    labels = batch[0][..., 0]
    expected_scores = np.zeros(result.assigned_scores.shape, np.float32)
    for b, l in zip(*np.nonzero(gt_index >= 0)):
        expected_scores[b, l, labels[b, gt_index[b, l]]] = pos_iou[b, l]
    np.testing.assert_allclose(result.assigned_scores.numpy(), expected_scores, rtol=1e-6)
    for b in range(gt_index.shape[0]):
        single = assigner.assign(priors, *as_inputs(*(a[b:b + 1] for a in batch)))
        np.testing.assert_array_equal(single.gt_index.numpy()[0], result.gt_index.numpy()[b])
        np.testing.assert_array_equal(single.assigned_scores.numpy()[0],
                                      result.assigned_scores.numpy()[b])


def check_degenerate_batches(assigner, priors, batch):
    """On the ``random_batch`` arrays ``batch``: no GT slot, every slot padded, and no prior give
    every prior background (label C, zero scores) with the ``[B, L]`` shape."""
    labels, boxes, mask, scores, pred = batch
    num_images, num_priors = len(labels), priors.points.shape[0]
    empty = assigner.assign(priors, *as_inputs(labels[:, :0], boxes[:, :0], mask[:, :0], scores,
                                               pred))
    assert empty.gt_index.shape == [num_images, num_priors]
    assert (empty.gt_index.numpy() == BACKGROUND).all()
    padded = assigner.assign(priors, *as_inputs(labels, boxes, mask * 0, scores, pred))
    assert (padded.gt_index.numpy() == BACKGROUND).all()
    assert (padded.assigned_labels.numpy() == assigner.num_classes).all()
    assert (padded.assigned_scores.numpy() == 0).all()
    zero = assigner.assign(no_priors(1), *as_inputs(labels, boxes, mask, scores[:, :0],
                                                    pred[:, :0]))
    assert zero.gt_index.shape == [num_images, 0]
