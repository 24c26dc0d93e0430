"""Pieces shared by ATSSAssigner and TaskAlignedAssigner: PaddleDetection's centre-inside rule, the
squared centre distance, a value-wise power, ragged index ranges, the host copy that carries the GT
check, PaddleDetection's all-slot conflict rule, and the level shapes of the positional adapters.

Every value an assigner compares is computed by correctly rounded float32 operations (add,
subtract, multiply, divide) or by ``power``, so a value depends on its operands only, never on
where it sits in a tensor: the fast and dense implementations then rank the same numbers.
"""

import numpy as np
import paddle

from ..bbox_utils import batch_iou_planes
from .conflicts import resolve_conflicts
from .gt_check import raise_for_probe

__all__ = ['INSIDE_EPS', 'PRED_IOU_EPS', 'SIMD_BLOCK', 'points_in_boxes', 'squared_distance',
           'power', 'to_host', 'ragged_ranges', 'contested_priors', 'best_of_all_slots',
           'grid_shapes']

# PaddleDetection's check_points_inside_bboxes default: a point must be farther than this from
# every side of the box.
INSIDE_EPS = 1e-9
# PaddleDetection's batch_iou_similarity default, used for IoUs between GT and predicted boxes.
PRED_IOU_EPS = 1e-9
# Elements per block in ``power``: a multiple of every CPU vector width.
SIMD_BLOCK = 64


def points_in_boxes(points, boxes, eps=INSIDE_EPS):
    """Whether each point lies inside its box, by PaddleDetection's rule.

    Args:
        points (Tensor): ``[..., 2]`` (x, y); boxes (Tensor): ``[..., 4]`` x1y1x2y2; they broadcast.
    Returns:
        Tensor: bool ``[...]``, True when all four point-to-side distances exceed ``eps``.
    """
    x, y = points[..., 0], points[..., 1]
    horizontal = paddle.logical_and(x - boxes[..., 0] > eps, boxes[..., 2] - x > eps)
    vertical = paddle.logical_and(y - boxes[..., 1] > eps, boxes[..., 3] - y > eps)
    return paddle.logical_and(horizontal, vertical)


def squared_distance(a, b):
    """``dx * dx + dy * dy`` of broadcasting points ``[..., 2]``: ``[...]`` float32 (ranks like the
    Euclidean distance, without a square root whose CPU rounding depends on the position)."""
    d = a - b
    return d[..., 0] * d[..., 0] + d[..., 1] * d[..., 1]


def power(x, exponent):
    """``x ** exponent`` elementwise, as a function of each value alone.

    Paddle's CPU ``pow`` rounds an element differently in its vectorised body and in the scalar
    loop over the last few elements of a tensor; padding to whole blocks puts every element in the
    body, so a (GT, prior) pair gets the same value in a gathered list and in a dense tensor.
    """
    if exponent == 1:
        return x
    flat = x.flatten()
    num = flat.shape[0]
    pad = -num % SIMD_BLOCK
    if pad:
        flat = paddle.concat([flat, paddle.zeros([pad], dtype=flat.dtype)])
    return flat.pow(float(exponent))[:num].reshape(x.shape)


def to_host(*tensors):
    """Copy several tensors to numpy in one device-to-host transfer (one synchronisation).

    Values travel as float64, which holds every float32 and every integer below 2 ** 53 exactly.

    Args:
        *tensors (Tensor): any shapes; float32, float64, int32, int64 or bool.
    Returns:
        list[ndarray], each with its tensor's shape and dtype.
    """
    flat = paddle.concat([t.reshape([-1]).astype('float64') for t in tensors]).numpy()
    arrays, start = [], 0
    for t in tensors:
        size = int(np.prod(t.shape))
        dtype = str(t.dtype).replace('paddle.', '')
        arrays.append(flat[start:start + size].reshape(t.shape).astype(dtype))
        start += size
    return arrays


def ragged_ranges(counts, total):
    """Enumerate ``range(counts[i])`` for every i at once, without a host synchronisation.

    Args:
        counts (Tensor): ``[R]`` int64, non-negative.
        total (int): ``sum(counts)``, known on the host.
    Returns:
        (owner, local): ``[total]`` int64 each; element j is element ``local[j]`` of range
        ``owner[j]``.
    """
    ends = paddle.cumsum(counts)
    index = paddle.arange(total, dtype='int64')
    owner = paddle.searchsorted(ends, index, right=True)
    local = index - paddle.gather(ends - counts, owner)
    return owner, local


def contested_priors(prior_flat, num_flat, probe, owner, num_gts, num_classes, bg_index):
    """The priors claimed by two or more GT slots, for PaddleDetection's conflict rule; one host
    synchronisation, which also reads the GT check.

    Args:
        prior_flat (Tensor): ``[P]`` int64 claimed prior ``b * L + l``; ``num_flat`` (= B * L)
            marks a pair that is no claim.
        num_flat (int): B * L.
        probe (Tensor): ``gt_check.gt_probe`` of the batch (raised here if it reports a fault).
        owner (str), num_gts (int), num_classes (int), bg_index (int): for the check's message.
    Returns:
        Tensor|None: ``[Q]`` int64 contested flat priors in ascending order, None if there are
        none.
    """
    claims = paddle.put_along_axis(paddle.zeros([num_flat + 1], dtype='int64'), prior_flat,
                                   paddle.ones(prior_flat.shape, dtype='int64'), axis=0,
                                   reduce='add')[:num_flat]
    contested = claims > 1
    probe, count = to_host(probe, contested.astype('int64').sum().reshape([1]))
    raise_for_probe(owner, probe, num_gts, num_classes, bg_index)
    if int(count[0]) == 0:
        return None
    # The contested priors, lowest first: the top of a key that is positive only for them.
    key = paddle.where(contested, num_flat - paddle.arange(num_flat, dtype='int64'),
                       paddle.zeros([num_flat], dtype='int64'))
    return paddle.topk(key, int(count[0]))[1]


def best_of_all_slots(boxes, image, gt_bboxes, real, iou_eps):
    """PaddleDetection's conflict rule for contested priors: every real GT slot of the image
    competes by the IoU of its box with the prior's ``boxes`` (the conflicts step's ``'max'``
    rule, lowest slot on equal IoUs).

    Args:
        boxes (Tensor): ``[Q, 4]`` the box standing for each contested prior (anchor or
            predicted box), pixels.
        image (Tensor): ``[Q]`` int64 image of each prior.
        gt_bboxes (Tensor): ``[B, n, 4]``; real (Tensor): ``[B, n]`` bool.
        iou_eps (float): the IoU's epsilon (as for the claims).
    Returns:
        Tensor: ``[Q]`` int64 winning slot.
    """
    # Each prior as an image of one prior: IoUs and claims [Q, n, 1].
    ious = batch_iou_planes(paddle.gather(gt_bboxes, image), boxes.unsqueeze(1), iou_eps)
    claims = paddle.gather(real.astype('int32'), image).unsqueeze(-1) > 0
    return resolve_conflicts(claims, ious, 'max')[:, 0]


def grid_shapes(points, num_anchors_list):
    """``[(rows, cols)]`` of row-major grid levels from their prior centres ``[L, 2]`` (the first
    row is the priors sharing the level's first y), for the positional ``forward`` adapters,
    which get no level shapes; one host synchronisation."""
    counts = [int(n) for n in num_anchors_list]
    first_row, start = [], 0
    for n in counts:
        if n > 0:
            ys = points[start:start + n, 1]
            first_row.append((ys == ys[0]).astype('int64').sum().reshape([1]))
        start += n
    widths = iter(to_host(*first_row)) if first_row else iter(())
    shapes = []
    for n in counts:
        cols = int(next(widths)[0]) if n > 0 else 0
        shapes.append((n // cols, cols) if cols else (0, 0))
    return shapes
