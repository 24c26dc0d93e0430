"""FCOSAssigner: the sample definition of FCOS (Tian et al., "FCOS: Fully Convolutional One-Stage
Object Detection", ICCV 2019) with its centre sampling, as PaddleDetection 2.6's ``Gt2FCOSTarget``
(``ppdet/data/transform/batch_operators.py``) and mmdet's ``FCOSHead.get_targets`` define it,
batched over images and padded GT.

For a prior (anchor point) ``p = (px, py)`` on an FPN level of stride ``s`` and a real GT box
``(x1, y1, x2, y2)`` with centre ``(cx, cy)``:

1. candidates (centre sampling): ``p`` lies strictly inside the GT box clipped to the square of
   half-side ``center_sampling_radius * s`` around the GT centre,
   ``max(x1, cx - r s) < px < min(x2, cx + r s)`` and the same for y. With
   ``center_sampling_radius`` 0 there is no centre sampling: ``p`` strictly inside the GT box.
2. scale range: the regression target of ``p``, its distances ``l = px - x1, t = py - y1,
   r = x2 - px, b = y2 - py`` to the sides of the whole (unclipped) GT, must have
   ``lo < max(l, t, r, b) < hi`` for the ``(lo, hi)`` of ``p``'s level. ``object_sizes_boundary
   [b_1, ..., b_{K-1}]`` cuts the sizes into K ranges ``(-1, b_1), (b_1, b_2), ...,
   (b_{K-1}, inf)``, given to the levels by stride, smallest stride first. The default ``[64, 128]``
   gives PP-YOLOE's levels stride 8: ``(-1, 64)``, stride 16: ``(64, 128)``, stride 32:
   ``(128, inf)``. PP-YOLOE lists its levels coarsest first (``fpn_strides [32, 16, 8]``) while
   PaddleDetection's FCOS lists them finest first: the ranges follow the strides, not the list
   order, so the same ``object_sizes_boundary`` means the same thing in both.
3. conflicts: a prior that is a candidate within range of several GTs goes to the one with the
   smallest area ``(x2 - x1) * (y2 - y1)`` (``conflicts`` rule ``'min'`` on areas); equal areas go
   to the lowest GT slot (numpy's ``argmin`` in PaddleDetection gives the same).
4. targets: label and box of the assigned GT. Classification score 1, or ``gts.scores`` when given
   (``base.build_result``); with ``iou_score`` and ``preds`` given, the IoU of the prior's
   predicted box with its GT (the IoU-aware target PP-YOLOE's varifocal loss can use). FCOS's
   centerness target belongs to a centerness branch, which PP-YOLOE does not have.

Differences from the references, stated:
- Bounds of the scale ranges are exclusive on both sides, as in PaddleDetection: a prior whose
  ``max(l, t, r, b)`` equals a boundary (e.g. 64) is in no level's range. mmdet's bounds are
  inclusive on both sides (such a prior is in both ranges).
- Levels without priors (an input smaller than their stride) are taken as coarser than every level
  with priors when ranges are given out by stride.
- Levels sharing one stride share its range.
- ``num_shift``, ``norm_reg_targets`` and ``multiply_strides_reg_targets`` of ``Gt2FCOSTarget``
  place the points and encode the regression targets: here the head supplies the points and the
  loss encodes the boxes, so they do not apply.

Speed: a candidate lies less than ``center_sampling_radius`` strides from the GT centre on each
axis, so on each level only a window of ``ceil(2 r) + 2`` cells per axis around the centre is
examined (one cell more than needed, against rounding in the window's placement); every test on
the window's cells is exact. This relies on ``grid_priors``' layout: a level's priors form a
row-major grid of pitch ``stride`` (``priors.level_shapes``). Without centre sampling a GT can
cover a whole level, and every (GT, prior) pair is examined (B * n * L pairs).

Host synchronisations per call: none.
"""

import math
import numbers

import paddle

from ppdet_lite.core.workspace import register
from ..bbox_utils import bbox_area, bbox_center, bbox_iou
from ..checks import check_bool, check_int, check_number, check_tensor
from .base import BaseAssigner, background_result, build_result
from .conflicts import resolve_conflicts_pairs
from .gt_check import check_gt_inputs

__all__ = ['FCOSAssigner']

# PaddleDetection's batch_iou_similarity epsilon, for the optional IoU scores.
PRED_IOU_EPS = 1e-9
# The lower end of the finest level's range (Gt2FCOSTarget's -1: no lower bound in effect).
NO_LOWER_BOUND = -1.0


@register
class FCOSAssigner(BaseAssigner):
    """FCOS assignment: centre sampling, per-level scale ranges, smallest area wins.

    Args:
        num_classes (int): C; the background label is C.
        object_sizes_boundary (list[float]): the K - 1 increasing size boundaries (pixels) that cut
            ``max(l, t, r, b)`` into the ranges of K levels, smallest stride first.
        center_sampling_radius (float): candidates lie within this many strides of the GT centre
            (clipped to the GT); 0 turns centre sampling off (candidates: inside the GT).
        iou_score (bool): when ``preds`` are given, a positive's target score is the IoU of its
            predicted box with its GT instead of 1 (``PPYOLOELoss`` hands predictions to an
            assigner that does not need them under ``static_target: pred_iou`` only).
    Raises:
        TypeError, ValueError: an argument of the wrong type or out of range (num_classes >= 1;
            boundaries positive, finite, strictly increasing; radius finite and >= 0).
    """
    needs_preds = False

    def __init__(self, num_classes=80, object_sizes_boundary=(64, 128), center_sampling_radius=1.5,
                 iou_score=False):
        super().__init__(num_classes)
        owner = type(self).__name__
        check_int(owner, 'num_classes', num_classes, minimum=1)
        _check_boundaries(owner, object_sizes_boundary)
        check_number(owner, 'center_sampling_radius', center_sampling_radius, low=0)
        if math.isinf(center_sampling_radius):
            raise ValueError(f'{owner}: center_sampling_radius must be finite, got '
                             f'{center_sampling_radius!r}')
        check_bool(owner, 'iou_score', iou_score)
        self.object_sizes_boundary = [float(b) for b in object_sizes_boundary]
        self.center_sampling_radius = float(center_sampling_radius)
        self.iou_score = iou_score

    @paddle.no_grad()
    def assign(self, priors, gts, preds=None):
        """Assign priors to GT boxes (see ``base.BaseAssigner.assign``).

        Args:
            priors (Priors): ``points [L, 2]``, ``strides [L]``, ``num_anchors_list`` and
                ``level_shapes`` are used (a level's points: a row-major grid of pitch stride).
            gts (GTs): padded GT, ``bboxes [B, n, 4]`` x1y1x2y2 pixels.
            preds (Preds|None): ``preds.bboxes [B, L, 4]`` (pixels) are read with ``iou_score``.
        Returns:
            AssignResult: ``gt_index [B, L]`` is a GT slot or ``BACKGROUND`` (nothing is ignored).
        Raises:
            TypeError, ValueError: inputs of the wrong shape or dtype; ``num_anchors_list`` not
                matching ``level_shapes`` or L; not ``len(object_sizes_boundary) + 1`` levels.
        """
        owner = type(self).__name__
        sizes = {}
        check_gt_inputs(owner, gts.labels, gts.bboxes, gts.mask, sizes, gts.scores)
        check_tensor(owner, 'priors.points', priors.points, ['L', 2], sizes, dtypes=('float32',))
        check_tensor(owner, 'priors.strides', priors.strides, ['L'], sizes, dtypes=('float32',))
        if preds is not None:
            check_tensor(owner, 'preds.bboxes', preds.bboxes, ['B', 'L', 4], sizes,
                         dtypes=('float32',))
        levels = priors.level_spans(owner)
        if len(levels) != len(self.object_sizes_boundary) + 1:
            raise ValueError(
                f'{owner}: object_sizes_boundary {self.object_sizes_boundary} defines '
                f'{len(self.object_sizes_boundary) + 1} scale ranges but the priors have '
                f'{len(levels)} levels (level_shapes {list(priors.level_shapes)}); give one '
                f'boundary fewer than levels')
        batch_size, num_gts = gts.bboxes.shape[:2]
        num_priors = priors.points.shape[0]
        if batch_size == 0 or num_gts == 0 or num_priors == 0:
            return background_result(batch_size, num_priors, self.num_classes, gts.labels.dtype)

        prior, claim = self._candidates_in_range(priors, levels, gts)
        gt_index = self._smallest_area_wins(prior, claim, gts, num_priors)
        return build_result(gt_index, gts, self.num_classes, self._scores(gt_index, gts, preds))

    # 1.-2. candidates within the level's scale range ---------------------------------------------

    def _candidates_in_range(self, priors, levels, gts):
        """``(prior [R, W], claim [R, W])``: the priors examined for each GT row ``b * n + g``
        (int64 in ``[0, L)``) and whether the row's GT claims it (steps 1 and 2)."""
        boxes = gts.bboxes.reshape([-1, 4])
        is_real = (gts.mask.reshape([-1]) > 0).unsqueeze(1)
        rank = _stride_ranks(priors.strides, levels)
        lower = _device_vector([NO_LOWER_BOUND] + self.object_sizes_boundary)
        upper = _device_vector(self.object_sizes_boundary + [float('inf')])
        priors_all, claims_all = [], []
        for (start, rows, cols), level_rank in zip(levels, rank):
            if rows * cols == 0:
                continue
            prior = self._window(priors, start, rows, cols, boxes)
            px = paddle.gather(priors.points[:, 0], prior.reshape([-1])).reshape(prior.shape)
            py = paddle.gather(priors.points[:, 1], prior.reshape([-1])).reshape(prior.shape)
            inside = self._inside_sampling_region(px, py, boxes, priors.strides[start:start + 1])
            x1, y1, x2, y2 = [c.unsqueeze(1) for c in boxes.unbind(-1)]
            farthest = paddle.maximum(paddle.maximum(px - x1, py - y1),
                                      paddle.maximum(x2 - px, y2 - py))
            in_range = paddle.logical_and(farthest > paddle.gather(lower, level_rank),
                                          farthest < paddle.gather(upper, level_rank))
            priors_all.append(prior)
            claims_all.append(paddle.logical_and(paddle.logical_and(inside, in_range), is_real))
        return paddle.concat(priors_all, axis=1), paddle.concat(claims_all, axis=1)

    def _window(self, priors, start, rows, cols, boxes):
        """``[R, W]`` int64: the cells of one level examined for each GT row (see Speed)."""
        num_rows = boxes.shape[0]
        radius = self.center_sampling_radius
        if radius == 0:
            cells = paddle.arange(start, start + rows * cols, dtype='int64')
            return cells.unsqueeze(0).expand([num_rows, rows * cols])
        span = math.ceil(2 * radius) + 2
        span_x, span_y = min(span, cols), min(span, rows)
        stride = priors.strides[start:start + 1]
        origin = priors.points[start]
        centre = bbox_center(boxes)
        # first cell whose point could lie beyond the sampling square's left (top) edge
        first = paddle.floor((centre - radius * stride - origin) / stride).astype('int64')
        col = paddle.clip(first[:, 0], 0, cols - span_x).unsqueeze(1)
        row = paddle.clip(first[:, 1], 0, rows - span_y).unsqueeze(1)
        col = col + paddle.arange(span_x, dtype='int64').unsqueeze(0)
        row = row + paddle.arange(span_y, dtype='int64').unsqueeze(0)
        cells = start + row.unsqueeze(2) * cols + col.unsqueeze(1)
        return cells.reshape([num_rows, span_y * span_x])

    def _inside_sampling_region(self, px, py, boxes, stride):
        """``[R, W]`` bool: point strictly inside the GT clipped to the sampling square (step 1)."""
        x1, y1, x2, y2 = [c.unsqueeze(1) for c in boxes.unbind(-1)]
        if self.center_sampling_radius > 0:
            half = stride * self.center_sampling_radius
            cx, cy = [c.unsqueeze(1) for c in bbox_center(boxes).unbind(-1)]
            x1, y1 = paddle.maximum(x1, cx - half), paddle.maximum(y1, cy - half)
            x2, y2 = paddle.minimum(x2, cx + half), paddle.minimum(y2, cy + half)
        return paddle.logical_and(paddle.logical_and(px > x1, px < x2),
                                  paddle.logical_and(py > y1, py < y2))

    # 3. conflicts --------------------------------------------------------------------------------

    def _smallest_area_wins(self, prior, claim, gts, num_priors):
        """``[B, L]`` int64 gt_index: each claimed prior's smallest-area claimant (step 3)."""
        batch_size, num_gts = gts.bboxes.shape[:2]
        num_flat = batch_size * num_priors
        row = paddle.arange(batch_size * num_gts, dtype='int64').unsqueeze(1)
        flat = (row // num_gts) * num_priors + prior
        # pairs that claim nothing all point at one extra slot, dropped below
        flat = paddle.where(claim, flat, paddle.full_like(flat, num_flat))
        slot = (row % num_gts).expand(prior.shape)
        area = bbox_area(gts.bboxes.reshape([-1, 4])).unsqueeze(1).expand(prior.shape)
        gt_index = resolve_conflicts_pairs(flat.reshape([-1]), slot.reshape([-1]),
                                           area.reshape([-1]), num_gts, num_flat + 1, 'min')
        return gt_index[:num_flat].reshape([batch_size, num_priors])

    # 4. targets ----------------------------------------------------------------------------------

    def _scores(self, gt_index, gts, preds):
        """``[B, L]`` float32 IoU of each prior's predicted box with its GT, or None (step 4)."""
        if not self.iou_score or preds is None:
            return None
        slot = paddle.clip(gt_index, min=0).unsqueeze(-1).tile([1, 1, 4])
        return bbox_iou(preds.bboxes, paddle.take_along_axis(gts.bboxes, slot, axis=1),
                        PRED_IOU_EPS)


def _check_boundaries(owner, boundaries):
    """``object_sizes_boundary``: a list of positive, finite, strictly increasing numbers."""
    what = 'a list of positive, finite, strictly increasing numbers (pixels)'
    if not isinstance(boundaries, (list, tuple)) or not all(
            isinstance(b, numbers.Real) and not isinstance(b, bool) for b in boundaries):
        raise TypeError(f'{owner}: object_sizes_boundary must be {what}, got {boundaries!r}')
    values = [float(b) for b in boundaries]
    if any(not math.isfinite(b) or b <= 0 for b in values) or any(
            a >= b for a, b in zip(values, values[1:])):
        raise ValueError(f'{owner}: object_sizes_boundary must be {what}, got {boundaries!r}')


def _stride_ranks(strides, levels):
    """Per level, ``[1]`` int64 on the device: how many levels with priors have a smaller stride
    (the level's scale range). Levels without priors rank after all others; they are skipped."""
    present = [start for start, rows, cols in levels if rows * cols > 0]
    if not present:
        return [None] * len(levels)
    level_strides = paddle.concat([strides[start:start + 1] for start in present])
    ranks = []
    for start, rows, cols in levels:
        if rows * cols == 0:
            ranks.append(None)
            continue
        smaller = (level_strides < strides[start:start + 1]).astype('int64')
        ranks.append(smaller.sum(axis=0, keepdim=True))
    return ranks


def _device_vector(values):
    """``[len(values)]`` float32 filled on the device, without a host-to-device copy per call."""
    return paddle.concat([paddle.full([1], v, dtype='float32') for v in values])
