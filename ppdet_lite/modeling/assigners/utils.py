"""Helpers shared by the assigners: the anchor grid, the centre-inside-GT rule, ragged index ranges,
conflict resolution, per-GT maxima, and two ways of rounding floats as PaddleDetection's dense
tensors round them (``on_simd_body``, ``ieee_divide``).

Positives travel as pairs of 1-D int64 tensors ``(row, anchor)``: ``row = b * n + g`` is the GT's
row in the flattened ``[B * n]`` GT list and ``anchor`` is in ``[0, L)``; see ``base.py``.
"""

from collections import namedtuple

import numpy as np
import paddle

from ..bbox_utils import bbox_iou

__all__ = [
    'INSIDE_EPS', 'PRED_IOU_EPS', 'AnchorLevel', 'AnchorGrid', 'to_host', 'anchor_levels',
    'points_in_boxes', 'ragged_ranges', 'concat_1d', 'resolve_conflicts', 'max_per_segment', 'on_simd_body',
    'ieee_divide',
]

# PaddleDetection's check_points_inside_bboxes default: a point must be farther than this from
# every side of the box.
INSIDE_EPS = 1e-9
# PaddleDetection's batch_iou_similarity default, used for IoUs between GT and predicted boxes.
PRED_IOU_EPS = 1e-9
# Elements per block when padding a tensor for on_simd_body: a multiple of every SIMD packet size.
SIMD_BLOCK = 64

AnchorLevel = namedtuple('AnchorLevel', ['start', 'size', 'grid'])
AnchorLevel.__doc__ = """One FPN level: anchors ``[start, start + size)``; ``grid`` is an
AnchorGrid, or None when the level's anchors do not form a regular row-major grid (the assigners
then search the level exhaustively)."""

AnchorGrid = namedtuple('AnchorGrid', ['width', 'height', 'xs', 'ys', 'x1', 'x2', 'y1', 'y2'])
AnchorGrid.__doc__ = """Row-major grid of one level: anchor ``start + r * width + c`` has centre
``(xs[c], ys[r])``, both strictly increasing (float32 numpy ``[width]``, ``[height]``). For anchor
boxes that all have the same size and whose x extent depends only on the column and y extent only
on the row, ``x1, x2 [width]`` and ``y1, y2 [height]`` hold the extents; otherwise they are None."""


def to_host(*tensors):
    """Copy several tensors to numpy in one device-to-host transfer (one synchronisation).

    The values travel as float64, which holds every float32 and every integer below 2 ** 53
    exactly; each array comes back with its tensor's shape and dtype.

    Args:
        *tensors (Tensor): any shapes; float32, float64, int32, int64 or bool.
    Returns:
        list[ndarray].
    """
    flat = paddle.concat([t.reshape([-1]).astype('float64') for t in tensors]).numpy()
    arrays, start = [], 0
    for t in tensors:
        size = int(np.prod(t.shape))
        dtype = str(t.dtype).replace('paddle.', '')
        arrays.append(flat[start:start + size].reshape(t.shape).astype(dtype))
        start += size
    return arrays


def anchor_levels(points, num_anchors_list, boxes=None):
    """Split the anchors into FPN levels and recognise each level's grid.

    The assigners receive anchors, not the feature-map shapes, so the grid is read back from the
    coordinates. Every property the fast paths rely on is checked exactly here; a level that fails
    any check gets ``grid=None``.

    Args:
        points (ndarray): ``[L, 2]`` float32 anchor centres (x, y), pixels (see ``to_host``).
        num_anchors_list (list[int]): anchors per level, in order.
        boxes (ndarray|None): ``[L, 4]`` float32 anchor boxes x1y1x2y2, when the assigner has them.
    Returns:
        list[AnchorLevel].
    """
    points = np.asarray(points)
    boxes = None if boxes is None else np.asarray(boxes)
    levels, start = [], 0
    for size in num_anchors_list:
        size = int(size)
        level_boxes = None if boxes is None else boxes[start:start + size]
        grid = _regular_grid(points[start:start + size], level_boxes)
        levels.append(AnchorLevel(start, size, grid))
        start += size
    return levels


def _regular_grid(points, boxes):
    """AnchorGrid of one level's ``points [N, 2]`` (and ``boxes [N, 4]``), or None."""
    if len(points) == 0:
        return None
    in_first_row = points[:, 1] == points[0, 1]
    width = len(points) if in_first_row.all() else int(np.argmin(in_first_row))
    if len(points) % width:
        return None
    height = len(points) // width
    grid = points.reshape(height, width, 2)
    xs, ys = grid[0, :, 0], grid[:, 0, 1]
    if not ((grid[..., 0] == xs).all() and (grid[..., 1] == ys[:, None]).all()):
        return None
    if (np.diff(xs) <= 0).any() or (np.diff(ys) <= 0).any():
        return None
    x1 = x2 = y1 = y2 = None
    if boxes is not None:
        boxes = boxes.reshape(height, width, 4)
        col_x, row_y = boxes[0, :, 0::2], boxes[:, 0, 1::2]
        separable = (boxes[..., 0::2] == col_x).all() and (boxes[..., 1::2] == row_y[:, None]).all()
        widths, heights = col_x[:, 1] - col_x[:, 0], row_y[:, 1] - row_y[:, 0]
        if separable and (widths == widths[0]).all() and (heights == heights[0]).all():
            x1, x2, y1, y2 = col_x[:, 0], col_x[:, 1], row_y[:, 0], row_y[:, 1]
    return AnchorGrid(width, height, xs, ys, x1, x2, y1, y2)


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


def ragged_ranges(counts):
    """Enumerate ``range(counts[i])`` for every i at once.

    Args:
        counts (Tensor): ``[R]`` int64, non-negative.
    Returns:
        (owner, local): ``[sum(counts)]`` int64 each; element j belongs to range ``owner[j]`` and is
        its ``local[j]``-th element.
    """
    owner = paddle.repeat_interleave(paddle.arange(counts.shape[0], dtype='int64'), counts)
    first = paddle.cumsum(counts) - counts
    local = paddle.arange(owner.shape[0], dtype='int64') - paddle.gather(first, owner)
    return owner, local


def concat_1d(pieces, dtype='int64'):
    """Concatenate 1-D tensors, any of them empty (Paddle 2.6's concat rejects all-empty lists)."""
    pieces = [p for p in pieces if p.shape[0] > 0]
    return paddle.concat(pieces) if pieces else paddle.zeros([0], dtype=dtype)


def resolve_conflicts(pos_row, pos_anchor, gt_bboxes, anchor_boxes, iou_eps,
                      claimants_only=False):
    """Give every anchor at most one GT.

    An anchor claimed by one GT keeps it. An anchor claimed by several goes to the GT of its image
    with the highest IoU with the anchor's box, first slot on ties; like PaddleDetection this
    argmax runs over all ``n`` slots (the winner need not be a claimant, padded slots included),
    unless ``claimants_only``: then the IoUs of the other slots count as 0 (PaddleDetection's
    ATSS ``sm_use``, whose claimants always overlap the anchor).

    Args:
        pos_row, pos_anchor (Tensor): ``[P]`` int64 positive pairs, no pair repeated.
        gt_bboxes (Tensor): ``[B, n, 4]``.
        anchor_boxes (Tensor): the boxes standing for the anchors, ``[L, 4]`` (shared by the
            images) or ``[B, L, 4]``.
        iou_eps (float): the epsilon PaddleDetection uses for this IoU.
        claimants_only (bool): see above.
    Returns:
        Tensor: ``[B * L]`` int64, GT row of each anchor or -1.
    """
    batch_size, num_gts = gt_bboxes.shape[:2]
    num_anchors = anchor_boxes.shape[-2]
    assigned = paddle.full([batch_size * num_anchors], -1, dtype='int64')
    if pos_row.shape[0] == 0:
        return assigned
    flat = pos_row // num_gts * num_anchors + pos_anchor
    claims = paddle.bincount(flat, minlength=batch_size * num_anchors)
    sole = paddle.nonzero(paddle.gather(claims, flat) == 1).flatten()
    if sole.shape[0] > 0:
        assigned = paddle.scatter(assigned, paddle.gather(flat, sole), paddle.gather(pos_row, sole))

    contested = paddle.nonzero(claims > 1).flatten()
    if contested.shape[0] > 0:
        image = contested // num_anchors
        boxes = anchor_boxes.reshape([-1, 4])
        box = paddle.gather(boxes, contested if anchor_boxes.ndim == 3 else contested % num_anchors)
        ious = bbox_iou(paddle.gather(gt_bboxes, image), box.unsqueeze(1), iou_eps)  # [P', n]
        if claimants_only:
            ious = ious * _claims(flat, pos_row, contested, num_gts, batch_size * num_anchors)
        winner = image * num_gts + ious.argmax(axis=-1)
        assigned = paddle.scatter(assigned, contested, winner)
    return assigned


def _claims(flat, pos_row, contested, num_gts, num_flat):
    """``[P', n]`` float32: 1 where GT slot g claims the p-th contested anchor.

    Args:
        flat, pos_row (Tensor): ``[P]`` int64, each claim's image-anchor index ``b * L + a`` and
            GT row ``b * n + g``.
        contested (Tensor): ``[P']`` int64, the image-anchor indices claimed more than once.
        num_gts (int): n; num_flat (int): B * L.
    """
    position = paddle.scatter(paddle.full([num_flat], -1, dtype='int64'), contested,
                              paddle.arange(contested.shape[0], dtype='int64'))
    claim_position = paddle.gather(position, flat)
    kept = paddle.nonzero(claim_position >= 0).flatten()
    cells = (paddle.gather(claim_position, kept) * num_gts +
             paddle.gather(pos_row, kept) % num_gts)
    mask = paddle.zeros([contested.shape[0] * num_gts], dtype='float32')
    mask = paddle.scatter(mask, cells, paddle.ones([cells.shape[0]], dtype='float32'))
    return mask.reshape([contested.shape[0], num_gts])


def max_per_segment(values, segment_ids):
    """For each element, the maximum of ``values`` over the elements sharing its segment id.

    Args:
        values (Tensor): ``[P]`` float32; segment_ids (Tensor): ``[P]`` int64, any order.
    Returns:
        Tensor: ``[P]`` float32.
    """
    order = paddle.argsort(segment_ids)
    maxima = paddle.geometric.segment_max(paddle.gather(values, order),
                                          paddle.gather(segment_ids, order))
    return paddle.gather(maxima, segment_ids)


def on_simd_body(fn, x, item_ndim=0):
    """Apply an elementwise ``fn`` so that every element takes Paddle's vectorised code path.

    Paddle's CPU kernels for ``sqrt``, ``pow`` and ``norm`` round differently in their SIMD body
    and in the scalar loop over the last ``numel % packet`` elements. PaddleDetection computes these
    on dense ``[B, n, L]`` tensors whose elements are (all but a few at the very end) in the body,
    so a gathered tensor is padded to whole blocks first and the results agree to the bit.

    Args:
        fn (callable): maps ``[M, *item]`` to ``[M, ...]`` element by element.
        x (Tensor): ``[..., *item]`` with ``item_ndim`` trailing per-element axes (e.g. 1 for the
            ``[..., 2]`` input of a norm over the last axis).
    Returns:
        Tensor: ``fn``'s result reshaped to ``x``'s leading shape.
    """
    lead, item = x.shape[:x.ndim - item_ndim], x.shape[x.ndim - item_ndim:]
    flat = x.reshape([-1] + item)
    num = flat.shape[0]
    pad = -num % SIMD_BLOCK
    if pad:
        flat = paddle.concat([flat, paddle.zeros([pad] + item, dtype=flat.dtype)])
    out = fn(flat)[:num]
    return out.reshape(lead + out.shape[1:])


def ieee_divide(x, y):
    """``x / y`` for same-shape float tensors, rounded as IEEE division.

    Paddle's CPU kernel for same-shape float32 division is a vectorised approximation (one ulp off
    now and then) while its broadcasting kernel divides exactly. Where PaddleDetection divides by
    broadcasting (``[B, n, L] / [B, n, 1]``), this gives its values by broadcasting too.
    """
    return (paddle.stack([x, x], axis=-1) / y.unsqueeze(-1))[..., 0]
