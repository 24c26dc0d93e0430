"""TaskAlignedAssigner: task alignment learning from TOOD (Feng et al., "TOOD: Task-aligned
One-stage Object Detection", ICCV 2021); reference implementation PaddleDetection 2.6
``ppdet/modeling/assigners/task_aligned_assigner.py``.

For every real GT box (padded slots never get a prior):

1. candidates: the priors whose point lies inside the GT (farther than 1e-9 px from each side).
   With ``is_close_gt`` (PaddleDetection's small-object option) instead the priors of level i
   less than ``CLOSE_MAX_DIST`` nominal strides ``32 / 2 ** i`` from the GT centre, whatever the
   real strides are (compared squared: ``dx * dx + dy * dy < (2 * stride) ** 2``).
2. quality: the alignment metric ``t = s ** alpha * u ** beta``, ``s`` the predicted probability
   of the GT's class, ``u`` the IoU of the predicted box with the GT.
3. positives: PaddleDetection's top k: the ``topk`` largest values of ``t`` over *all* priors, the
   non-candidates counting as 0, of which the candidates are kept; equal values go lowest prior
   index first (``ordering``). So when fewer than ``topk`` candidates have ``t > 0``, a candidate
   with ``t == 0`` is positive only if it is among the lowest-index priors with value 0.
4. conflicts (``conflicts``): a prior positive for several GTs goes to the one its predicted box
   overlaps most (``u``), lowest slot on equal IoUs; ``conflict='ppdet'`` (default): every real
   GT of the image competes (PaddleDetection 2.6); ``conflict='claimants'``: the claimants only.
5. targets: label and box of the assigned GT; target score (``pos_scores``) the normalised
   metric ``t / (max t + eps) * max u``, the maxima over the GT's final positives.

Why ``conflict='ppdet'`` is the default: PP-YOLOE configs and PaddleDetection's trained models use
it, and PaddleDetection 2.6's own outputs are reproduced with it (``tests/test_ppdet_golden.py``,
and ``tests/test_validation.py``'s options cases, where ``'claimants'`` changes TAL's labels).
"""

from collections import namedtuple

import paddle

from ppdet_lite.core.workspace import register
from ..bbox_utils import batch_iou_planes, bbox_center, bbox_iou
from ..checks import check_bool, check_choice, check_int, check_number, check_tensor
from .base import BaseAssigner, GTs, background_result, build_result, level_spans
from .conflicts import resolve_conflicts, resolve_conflicts_pairs
from .gt_check import check_gt_inputs, gt_probe, raise_for_probe
from .ordering import monotone_bits, topk_lowest_index
from .ppdet_outputs import ppdet_outputs
from .utils import (INSIDE_EPS, PRED_IOU_EPS, best_of_all_slots, contested_priors, grid_shapes,
                    points_in_boxes, power, ragged_ranges, squared_distance, to_host)

__all__ = ['TaskAlignedAssigner']

# is_close_gt: level i's nominal stride is CLOSE_FIRST_STRIDE / 2 ** i (PaddleDetection 2.6).
CLOSE_FIRST_STRIDE = 32.
CLOSE_MAX_DIST = 2.0


@register
class TaskAlignedAssigner(BaseAssigner):
    """Task-aligned assigner (steps in the module docstring).

    Two implementations with identical results:

    - ``impl='fast'``: only each GT's candidates are scored and ranked; on each level they are a
      rectangle of the prior grid (``level_shapes``), listed as (GT, prior) pairs. Host
      synchronisations per call: 1 (how many pairs there are; the GT class-id check rides on it),
      plus 1 with ``conflict='ppdet'`` (how many priors are contested).
    - ``impl='dense'``: the plain ``[B, n, L]`` definition, no host synchronisation (for GPUs);
      class ids are not range-checked.

    Args:
        topk (int): positives per GT (at most).
        alpha (float): exponent of the classification score in the alignment metric.
        beta (float): exponent of the IoU in the alignment metric.
        eps (float): added to each GT's maximum metric before normalising.
        is_close_gt (bool): candidates by distance to the GT centre (step 1).
        num_classes (int): C, the background label of ``assign`` (shared with the head).
        conflict (str): ``'ppdet'`` or ``'claimants'`` (step 4).
        impl (str): ``'fast'`` or ``'dense'``.
    Raises:
        TypeError, ValueError: an argument of the wrong type or out of range (topk >= 1,
            alpha, beta, eps >= 0, num_classes >= 1).
    """
    needs_preds = True

    def __init__(self, topk=13, alpha=1.0, beta=6.0, eps=1e-9, is_close_gt=False, num_classes=80,
                 conflict='ppdet', impl='fast'):
        super().__init__(num_classes)
        owner = type(self).__name__
        check_int(owner, 'topk', topk, minimum=1)
        for name, value in (('alpha', alpha), ('beta', beta), ('eps', eps)):
            check_number(owner, name, value, low=0)
        check_bool(owner, 'is_close_gt', is_close_gt)
        check_int(owner, 'num_classes', num_classes, minimum=1)
        check_choice(owner, 'conflict', conflict, ('ppdet', 'claimants'))
        check_choice(owner, 'impl', impl, ('fast', 'dense'))
        self.topk = topk
        self.alpha = alpha
        self.beta = beta
        self.eps = eps
        self.is_close_gt = is_close_gt
        self.conflict = conflict
        self.impl = impl

    @paddle.no_grad()
    def assign(self, priors, gts, preds=None):
        """Assign priors to GT boxes (see ``base.BaseAssigner.assign``).

        Args:
            priors (Priors): ``points [L, 2]`` are the anchor points; ``num_anchors_list`` and
                ``level_shapes`` the levels.
            gts (GTs): padded GT (``gts.scores`` is not used, as in PaddleDetection).
            preds (Preds): ``scores [B, L, C]`` with ``C == num_classes``, ``bboxes [B, L, 4]``
                pixels; required.
        Returns:
            AssignResult.
        Raises:
            TypeError, ValueError: ``preds`` missing; inputs of the wrong shape or dtype;
                ``level_shapes`` not matching ``num_anchors_list``; with ``impl='fast'``, a real
                GT whose class is not in ``[0, num_classes)`` or whose box is not finite.
        """
        owner = type(self).__name__
        if preds is None:
            raise ValueError(f'{owner}.assign needs preds (predicted scores and boxes)')
        check_tensor(owner, 'preds.scores', preds.scores, [None, None, self.num_classes])
        return self._assign(preds.scores, preds.bboxes, priors.points, priors.num_anchors_list,
                            priors.level_shapes, gts.labels, gts.bboxes, gts.mask,
                            self.num_classes)

    @paddle.no_grad()
    def forward(self, pred_scores, pred_bboxes, anchor_points, num_anchors_list, gt_labels,
                gt_bboxes, pad_gt_mask, bg_index, gt_scores=None):
        """PaddleDetection 2.6's positional interface (an adapter of ``assign``).

        Args:
            pred_scores (Tensor): ``[B, L, C]`` float32 predicted class probabilities.
            pred_bboxes (Tensor): ``[B, L, 4]`` float32 predicted boxes x1y1x2y2, pixels.
            anchor_points (Tensor): ``[L, 2]`` float32 anchor centres, pixels, levels in order,
                each level a row-major grid.
            num_anchors_list (list[int]): anchors per FPN level.
            gt_labels (Tensor): ``[B, n, 1]`` int32 or int64.
            gt_bboxes (Tensor): ``[B, n, 4]`` float32 x1y1x2y2, pixels.
            pad_gt_mask (Tensor): ``[B, n, 1]`` float32, 1 for a real GT, 0 for padding.
            bg_index (int): background label (checked against the GT classes; the result uses C).
            gt_scores (Tensor|None): accepted for PaddleDetection compatibility; unused there too.
        Returns:
            tuple: ``(assigned_labels [B, L], assigned_bboxes [B, L, 4], assigned_scores
            [B, L, C], mask_positive [B, n, L] float32)`` as PaddleDetection 2.6 returns them;
            only the first three when ``n == 0``. C is taken from ``pred_scores``.
        Raises:
            TypeError, ValueError: as ``assign``.

        The level shapes are read back from the anchor points (the first row of each level is
        the anchors sharing its first anchor's y): one more host synchronisation than ``assign``.
        """
        level_shapes = grid_shapes(anchor_points, num_anchors_list)
        result = self._assign(pred_scores, pred_bboxes, anchor_points, num_anchors_list,
                              level_shapes, gt_labels, gt_bboxes, pad_gt_mask, bg_index)
        return ppdet_outputs(result, gt_bboxes.shape[1])

    def _assign(self, pred_scores, pred_bboxes, anchor_points, num_anchors_list, level_shapes,
                gt_labels, gt_bboxes, pad_gt_mask, bg_index):
        self._check_inputs(pred_scores, pred_bboxes, anchor_points, num_anchors_list,
                           level_shapes, gt_labels, gt_bboxes, pad_gt_mask)
        batch_size, num_priors, num_classes = pred_scores.shape
        num_gts = gt_bboxes.shape[1]
        if num_gts == 0 or num_priors == 0:
            return background_result(batch_size, num_priors, num_classes, gt_labels.dtype)
        gts = GTs(gt_labels, gt_bboxes, pad_gt_mask)
        real = pad_gt_mask.reshape([batch_size, num_gts]) > 0
        if self.impl == 'dense':
            gt_index = self._dense(pred_scores, pred_bboxes, anchor_points, num_anchors_list, gts,
                                   real)
        else:
            gt_index = self._fast(pred_scores, pred_bboxes, anchor_points, num_anchors_list,
                                  level_shapes, gts, real, bg_index)
        return build_result(gt_index, gts, num_classes,
                            self._normalised_scores(gt_index, pred_scores, pred_bboxes, gts))

    def _check_inputs(self, pred_scores, pred_bboxes, anchor_points, num_anchors_list,
                      level_shapes, gt_labels, gt_bboxes, pad_gt_mask):
        """Static shape and dtype checks (no device work)."""
        owner, sizes = type(self).__name__, {}
        check_tensor(owner, 'pred_scores', pred_scores, ['B', 'L', 'C'], sizes,
                     dtypes=('float32',))
        check_tensor(owner, 'pred_bboxes', pred_bboxes, ['B', 'L', 4], sizes, dtypes=('float32',))
        check_tensor(owner, 'anchor_points', anchor_points, ['L', 2], sizes, dtypes=('float32',))
        check_gt_inputs(owner, gt_labels, gt_bboxes, pad_gt_mask, sizes)
        level_spans(owner, num_anchors_list, level_shapes, anchor_points.shape[0],
                    priors_name='anchor_points')

    def _metric(self, score, iou):
        """Step 2: ``t = s ** alpha * u ** beta``."""
        return power(score, self.alpha) * power(iou, self.beta)

    def _close(self, points, centres, level):
        """is_close_gt candidates: bool, broadcasting ``points [..., 2]`` and ``centres``."""
        radius = CLOSE_MAX_DIST * CLOSE_FIRST_STRIDE / 2 ** level
        return squared_distance(points, centres) < radius * radius

    # 1-4, dense: every (GT, prior) pair ---------------------------------------------------------

    def _dense(self, pred_scores, pred_bboxes, anchor_points, num_anchors_list, gts, real):
        """gt_index ``[B, L]`` from ``[B, n, L]`` tensors; no host synchronisation."""
        batch_size, num_priors, _ = pred_scores.shape
        num_gts = real.shape[1]
        ious = batch_iou_planes(gts.bboxes, pred_bboxes, PRED_IOU_EPS)
        labels = gts.labels.astype('int64').expand([batch_size, num_gts, num_priors])
        scores = paddle.take_along_axis(pred_scores.transpose([0, 2, 1]), labels, axis=1)
        metric = self._metric(scores, ious)
        if self.is_close_gt:
            centres = bbox_center(gts.bboxes).unsqueeze(2)
            pieces, start = [], 0
            for level, count in enumerate(num_anchors_list):
                points = anchor_points[start:start + int(count)].reshape([1, 1, -1, 2])
                pieces.append(self._close(points, centres, level))
                start += int(count)
            candidate = paddle.concat(pieces, axis=-1)
        else:
            candidate = points_in_boxes(anchor_points.reshape([1, 1, -1, 2]),
                                        gts.bboxes.unsqueeze(2))
        top = topk_lowest_index(metric * candidate.astype('float32'),
                                min(self.topk, num_priors), axis=-1)[1]
        is_top = paddle.put_along_axis(paddle.zeros(metric.shape, dtype='float32'), top,
                                       paddle.ones(top.shape, dtype='float32'), axis=-1) > 0
        claims = is_top & candidate & real.unsqueeze(-1)
        if self.conflict == 'ppdet':
            contested = claims.astype('int32').sum(axis=1, keepdim=True) > 1
            # Bool operands: Paddle 2.6 has no bool where.
            claims = (contested & real.unsqueeze(-1)) | (paddle.logical_not(contested) & claims)
        return resolve_conflicts(claims, ious, 'max')

    # 1-4, fast: the candidates only ------------------------------------------------------------

    def _fast(self, pred_scores, pred_bboxes, anchor_points, num_anchors_list, level_shapes, gts,
              real, bg_index):
        """gt_index ``[B, L]`` scoring only each GT's candidates; see the class docstring."""
        batch_size, num_priors, num_classes = pred_scores.shape
        num_gts = real.shape[1]
        num_rows = batch_size * num_gts
        owner = type(self).__name__
        gt_boxes = gts.bboxes.reshape([-1, 4])
        gt_labels = gts.labels.reshape([-1]).astype('int64')
        probe = gt_probe(gts.labels, gts.bboxes, gts.mask, num_classes, bg_index)

        # 1. Each GT's candidate rectangle on each level, listed as (row, prior) pairs.
        spans, start = [], 0
        for level, (count, (rows, cols)) in enumerate(zip(num_anchors_list, level_shapes)):
            spans.append(self._level_span(anchor_points, start, rows, cols, gt_boxes, level))
            start += int(count)
        counts = paddle.concat([s.count for s in spans]) * \
            paddle.tile(real.reshape([-1]).astype('int64'), [len(spans)])
        host = to_host(probe, counts.sum().reshape([1]))
        raise_for_probe(owner, host[0], num_gts, num_classes, bg_index)
        total = int(host[1][0])
        if total == 0:
            return paddle.full([batch_size, num_priors], -1, dtype='int64')
        owner_index, local = ragged_ranges(counts, total)
        level = owner_index // num_rows
        row = owner_index % num_rows
        table = {name: paddle.gather(paddle.concat([getattr(s, name) for s in spans]), owner_index)
                 for name in ('col', 'num_cols', 'row')}
        starts = paddle.to_tensor([s.start for s in spans], dtype='int64')
        widths = paddle.to_tensor([s.cols for s in spans], dtype='int64')
        cell_col = table['col'] + local % table['num_cols']
        cell_row = table['row'] + local // table['num_cols']
        prior = paddle.gather(starts, level) + cell_row * paddle.gather(widths, level) + cell_col
        if self.is_close_gt:
            centres = paddle.gather(bbox_center(gt_boxes), row)
            points = paddle.gather(anchor_points, prior)
            squared_radius = paddle.to_tensor(
                [(CLOSE_MAX_DIST * CLOSE_FIRST_STRIDE / 2 ** i) ** 2 for i in range(len(spans))],
                dtype='float32')
            valid = squared_distance(points, centres) < paddle.gather(squared_radius, level)
        else:
            valid = paddle.ones(prior.shape, dtype='bool')

        # 2. Metric of the pairs.
        flat = row // num_gts * num_priors + prior
        iou = bbox_iou(paddle.gather(gt_boxes, row),
                       paddle.gather(pred_bboxes.reshape([-1, 4]), flat), PRED_IOU_EPS)
        score = paddle.gather(pred_scores.flatten(),
                              flat * num_classes + paddle.gather(gt_labels, row))
        metric = self._metric(score, iou)

        # 3. PaddleDetection's top k with the lowest-index tie rule.
        k = min(self.topk, num_priors)
        claims = valid & _in_topk(row, prior, metric, valid, num_rows, num_priors, k)

        # 4. Conflicts among the claims (pairs that are no claim point at a spare prior).
        num_flat = batch_size * num_priors
        prior_flat = paddle.where(claims, flat, paddle.full_like(flat, num_flat))
        slot = row % num_gts
        gt_index = resolve_conflicts_pairs(prior_flat, slot, iou, num_gts, num_flat + 1,
                                           'max')[:num_flat]
        if self.conflict == 'ppdet':
            contested = contested_priors(prior_flat, num_flat, probe, owner, num_gts, num_classes,
                                         bg_index)
            if contested is not None:
                winner = best_of_all_slots(paddle.gather(pred_bboxes.reshape([-1, 4]), contested),
                                           contested // num_priors, gts.bboxes, real,
                                           PRED_IOU_EPS)
                gt_index = paddle.scatter(gt_index, contested, winner)
        return gt_index.reshape([batch_size, num_priors])

    def _level_span(self, anchor_points, start, rows, cols, gt_boxes, level):
        """The rectangle of level cells holding each GT's candidates (a superset with
        ``is_close_gt``): _Span of ``[B * n]`` int64 tensors."""
        num_rows = gt_boxes.shape[0]
        if rows * cols == 0:
            zero = paddle.zeros([num_rows], dtype='int64')
            return _Span(start, max(cols, 1), zero, paddle.ones_like(zero), zero, zero)
        xs = anchor_points[start:start + cols, 0]
        ys = paddle.gather(anchor_points[:, 1], start + cols * paddle.arange(rows, dtype='int64'))
        if self.is_close_gt:
            # Cells within the square around the centre, widened beyond any rounding: the exact
            # (squared distance) test is applied to the pairs.
            radius = CLOSE_MAX_DIST * CLOSE_FIRST_STRIDE / 2 ** level * (1 + 1e-4) + 1e-3
            centre = bbox_center(gt_boxes)
            low, high, eps = centre - radius, centre + radius, 0.
        else:
            low, high, eps = gt_boxes[:, 0:2], gt_boxes[:, 2:4], INSIDE_EPS
        col, num_cols = _strictly_inside(low[:, 0], high[:, 0], xs, eps)
        row, num_rows_ = _strictly_inside(low[:, 1], high[:, 1], ys, eps)
        return _Span(start, cols, col, num_cols.clip(min=1), row, num_cols * num_rows_)

    # 5. targets ---------------------------------------------------------------------------------

    def _normalised_scores(self, gt_index, pred_scores, pred_bboxes, gts):
        """``[B, L]``: ``t / (max t + eps) * max u`` of each prior with its assigned GT, the
        maxima over that GT's positives (other priors: anything; ``build_result`` zeroes them)."""
        batch_size, num_priors, _ = pred_scores.shape
        num_gts = gts.bboxes.shape[1]
        is_pos = gt_index >= 0
        slot = gt_index.clip(min=0)
        gt_box = paddle.take_along_axis(gts.bboxes, slot.unsqueeze(-1).tile([1, 1, 4]), axis=1)
        iou = bbox_iou(gt_box, pred_bboxes, PRED_IOU_EPS)
        label = paddle.take_along_axis(gts.labels.reshape([batch_size, num_gts]).astype('int64'),
                                       slot, axis=1)
        # A flat gather: take_along_axis over the class axis is slow on [B, L, C].
        flat = paddle.arange(batch_size * num_priors, dtype='int64') * pred_scores.shape[2]
        score = paddle.gather(pred_scores.flatten(), flat + label.flatten()).reshape(label.shape)
        metric = self._metric(score, iou)
        # Per-GT maxima over the positives; the others report to a spare slot n.
        target = paddle.where(is_pos, slot, paddle.full_like(slot, num_gts))
        zeros = paddle.zeros([batch_size, num_gts + 1], dtype='float32')
        max_metric = paddle.put_along_axis(zeros, target, metric, axis=1, reduce='amax')
        max_iou = paddle.put_along_axis(zeros, target, iou, axis=1, reduce='amax')
        return (metric / (paddle.take_along_axis(max_metric, slot, axis=1) + self.eps) *
                paddle.take_along_axis(max_iou, slot, axis=1))


_Span = namedtuple('_Span', ['start', 'cols', 'col', 'num_cols', 'row', 'count'])
_Span.__doc__ = """One level's candidate rectangles: ``start``, ``cols`` (ints); per GT row ``col``,
``num_cols`` (>= 1, for the division), ``row`` and ``count`` (cells) int64 ``[B * n]``."""


def _strictly_inside(low, high, coords, eps):
    """Cells whose coordinate passes ``coord - low > eps`` and ``high - coord > eps`` (the
    expressions of ``points_in_boxes``), for ascending ``coords [S]``: ``(first, count)`` ``[R]``
    int64. Both tests are monotone along the axis, so the passing cells are consecutive."""
    first = paddle.logical_not(coords - low.unsqueeze(1) > eps).astype('int64').sum(axis=1)
    end = (high.unsqueeze(1) - coords > eps).astype('int64').sum(axis=1)
    return first, (end - first).clip(min=0)


def _in_topk(row, prior, metric, valid, num_rows, num_priors, k):
    """Step 3 for (row, prior) candidate pairs ``[P]``: bool, the pair is in its GT's top k over
    all priors (non-candidates valued 0, equal values lowest prior index first).

    A pair with ``t > 0`` is in it when fewer than k of its GT's pairs rank before it by (t
    descending, prior ascending). With only m < k pairs above 0, the other k - m places go to
    the lowest-index priors valued 0: a candidate valued 0 at prior p is in when the priors below
    p valued 0, ``p - (pairs above 0 below p)``, are fewer than k - m. That needs p < k.
    """
    num = row.shape[0]
    above = valid & (metric > 0)
    # Order the pairs by (row, t descending, prior ascending) with one int64 key; t >= 0 has
    # monotone bits in [0, 2 ** 31), and pairs that are no candidate go last in their row.
    bits = paddle.where(valid, monotone_bits(metric), paddle.full_like(prior, -1))
    span = 2 ** 31 + 1
    if num_rows * span * num_priors < 2 ** 63:
        order = paddle.argsort((row * span + (2 ** 31 - 1 - bits)) * num_priors + prior)
    else:  # rank by (t, prior) over the whole list, then order by (row, rank)
        by_key = paddle.argsort(bits * num_priors + (num_priors - 1 - prior), descending=True)
        rank = paddle.scatter(paddle.zeros([num], dtype='int64'), by_key,
                              paddle.arange(num, dtype='int64'))
        order = paddle.argsort(row * num + rank)
    sorted_row = paddle.gather(row, order)
    position = paddle.arange(num, dtype='int64') - paddle.searchsorted(sorted_row, sorted_row)
    position = paddle.scatter(paddle.zeros([num], dtype='int64'), order, position)

    per_row = paddle.put_along_axis(paddle.zeros([num_rows], dtype='int64'), row,
                                    above.astype('int64'), axis=0, reduce='add')
    m = paddle.gather(per_row, row)
    # Pairs above 0 at priors below k, per row: how many lie below each prior p < k.
    low = above & (prior < k)
    cell = paddle.where(low, row * (k + 1) + prior + 1, paddle.full_like(row, 0))
    below = paddle.put_along_axis(paddle.zeros([num_rows * (k + 1)], dtype='int64'), cell,
                                  low.astype('int64'), axis=0, reduce='add')
    below = paddle.cumsum(below.reshape([num_rows, k + 1]), axis=1).flatten()
    zeros_below = prior - paddle.gather(below, row * (k + 1) + prior.clip(max=k))
    zero_in = paddle.logical_not(above) & (prior < k) & (m < k) & (zeros_below < k - m)
    return (above & (position < k)) | zero_in
