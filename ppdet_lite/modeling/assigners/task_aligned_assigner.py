"""TaskAlignedAssigner: task alignment learning from TOOD (Feng et al., ICCV 2021), computed exactly
as PaddleDetection 2.6 computes it, without its dense ``[B, n, L]`` tensors.

For every real GT box:

1. candidates: the anchors whose centre (anchor point) lies inside the GT;
2. alignment: ``t = s ** alpha * u ** beta`` with ``s`` the predicted score of the GT's class and
   ``u`` the IoU of the predicted box with the GT;
3. positives: the ``topk`` candidates with the largest ``t``;
4. conflicts: an anchor claimed by several GTs goes to the GT its predicted box overlaps most;
5. targets: label and box of the assigned GT, score ``t / (max t of the GT + eps) * (max u of the
   GT)``, the maxima taken over the GT's final positives.

With ``is_close_gt`` (PaddleDetection's option for small objects) the candidates of step 1 are the
anchors whose point is less than ``CLOSE_MAX_DIST`` "strides" from the GT centre instead, the stride
of level i being taken as ``32 / 2 ** i`` whatever the real strides are (PaddleDetection 2.6's
``task_aligned_assigner.is_close_gt``, reproduced as it is).

Speed: PaddleDetection ranks ``t`` over all L anchors with non-candidates set to 0; only the
candidates can become positive, so only they are scored and ranked (on a regular anchor grid a GT's
candidates are a rectangle of cells per level). Ranking the candidates alone gives PaddleDetection's
top k whenever that is unique. It is not when the k-th largest ``t`` is tied with a value left out
that belongs to a candidate (equal scores, or a candidate scoring 0 while fewer than k candidates
score above 0): ``paddle.topk`` then picks by its sorting algorithm's path through the whole row,
so such a GT is ranked over its whole row, the very row PaddleDetection ranks.
"""

import paddle

from ppdet_lite.core.workspace import register
from ..bbox_utils import bbox_center, bbox_iou
from ..checks import check_bool, check_int, check_number, check_tensor
from .base import BaseAssigner, GTs, background_result, build_result_from_rows
from .gt_check import check_gt_inputs, gt_probe, raise_for_probe
from .ppdet_outputs import ppdet_outputs
from .utils import (INSIDE_EPS, PRED_IOU_EPS, anchor_levels, concat_1d, ieee_divide,
                    max_per_segment, on_simd_body, points_in_boxes, ragged_ranges,
                    resolve_conflicts, to_host)

__all__ = ['TaskAlignedAssigner']

# is_close_gt: an anchor is a candidate when its distance to the GT centre, divided by its level's
# nominal stride CLOSE_FIRST_STRIDE / 2 ** level, is below CLOSE_MAX_DIST (PaddleDetection 2.6).
CLOSE_FIRST_STRIDE = 32.
CLOSE_MAX_DIST = 2.0


@register
class TaskAlignedAssigner(BaseAssigner):
    """Task-aligned assigner.

    Args:
        topk (int): positives per GT (at most).
        alpha (float): exponent of the classification score in the alignment metric.
        beta (float): exponent of the IoU in the alignment metric.
        eps (float): added to each GT's maximum metric before normalising.
        is_close_gt (bool): candidates by distance to the GT centre instead of inside the GT
            (see the module docstring).
        num_classes (int): C, the background label of ``assign`` (shared with the head).
    Raises:
        TypeError, ValueError: an argument of the wrong type or out of range (topk >= 1,
            alpha, beta, eps >= 0, num_classes >= 1).
    """
    needs_preds = True

    def __init__(self, topk=13, alpha=1.0, beta=6.0, eps=1e-9, is_close_gt=False, num_classes=80):
        super().__init__(num_classes)
        owner = type(self).__name__
        check_int(owner, 'topk', topk, minimum=1)
        check_int(owner, 'num_classes', num_classes, minimum=1)
        for name, value in (('alpha', alpha), ('beta', beta), ('eps', eps)):
            check_number(owner, name, value, low=0)
        check_bool(owner, 'is_close_gt', is_close_gt)
        self.topk = topk
        self.alpha = alpha
        self.beta = beta
        self.eps = eps
        self.is_close_gt = is_close_gt

    @paddle.no_grad()
    def assign(self, priors, gts, preds=None):
        """Assign priors to GT boxes (see ``base.BaseAssigner.assign``).

        Args:
            priors (Priors): ``priors.points [L, 2]`` are the anchor points.
            gts (GTs): padded GT (``gts.scores`` is not used, as in PaddleDetection).
            preds (Preds): ``scores [B, L, C]`` with ``C == num_classes``, ``bboxes [B, L, 4]``
                pixels; required.
        Returns:
            AssignResult.
        Raises:
            TypeError, ValueError: ``preds`` missing, or see ``forward``.
        """
        owner = type(self).__name__
        if preds is None:
            raise ValueError(f'{owner}.assign needs preds (predicted scores and boxes)')
        check_tensor(owner, 'preds.scores', preds.scores, [None, None, self.num_classes])
        return self._assign(preds.scores, preds.bboxes, priors.points, priors.num_anchors_list,
                            gts.labels, gts.bboxes, gts.mask, self.num_classes)

    @paddle.no_grad()
    def forward(self, pred_scores, pred_bboxes, anchor_points, num_anchors_list, gt_labels,
                gt_bboxes, pad_gt_mask, bg_index, gt_scores=None):
        """PaddleDetection 2.6's positional interface (an adapter of ``assign``).

        Args:
            pred_scores (Tensor): ``[B, L, C]`` float32 predicted class probabilities.
            pred_bboxes (Tensor): ``[B, L, 4]`` float32 predicted boxes x1y1x2y2, pixels.
            anchor_points (Tensor): ``[L, 2]`` float32 anchor centres, pixels, levels in order.
            num_anchors_list (list[int]): anchors per FPN level.
            gt_labels (Tensor): ``[B, n, 1]`` int32 or int64.
            gt_bboxes (Tensor): ``[B, n, 4]`` float32 x1y1x2y2, pixels.
            pad_gt_mask (Tensor): ``[B, n, 1]`` float32, 1 for a real GT, 0 for padding.
            bg_index (int): label of background anchors (normally C).
            gt_scores (Tensor|None): accepted for PaddleDetection compatibility; unused there too.
        Returns:
            tuple: ``(assigned_labels [B, L], assigned_bboxes [B, L, 4], assigned_scores
            [B, L, C], mask_positive [B, n, L] float32)`` as PaddleDetection 2.6 returns them;
            only the first three when ``n == 0``. C is taken from ``pred_scores``.
        Raises:
            TypeError, ValueError: inputs of the wrong shape or dtype, anchors not matching
                ``num_anchors_list``, a real GT whose class is not in ``[0, C)`` (more exactly:
                not in ``[0, C]`` or equal to ``bg_index``) or whose box is not finite.
        """
        result = self._assign(pred_scores, pred_bboxes, anchor_points, num_anchors_list,
                              gt_labels, gt_bboxes, pad_gt_mask, bg_index)
        return ppdet_outputs(result, gt_bboxes.shape[1])

    def _assign(self, pred_scores, pred_bboxes, anchor_points, num_anchors_list, gt_labels,
                gt_bboxes, pad_gt_mask, bg_index):
        self._check_inputs(pred_scores, pred_bboxes, anchor_points, num_anchors_list, gt_labels,
                           gt_bboxes, pad_gt_mask)
        batch_size, num_anchors, num_classes = pred_scores.shape
        if gt_bboxes.shape[1] == 0:
            return background_result(batch_size, num_anchors, num_classes, gt_labels.dtype)

        gts = _GTs(gt_labels, gt_bboxes, pad_gt_mask)
        preds = _Predictions(pred_scores, pred_bboxes)
        points, probe = to_host(anchor_points, gt_probe(gt_labels, gt_bboxes, pad_gt_mask,
                                                        num_classes, bg_index))
        raise_for_probe(type(self).__name__, probe, gts.num_gts, num_classes, bg_index)
        levels = anchor_levels(points, num_anchors_list)

        cand_row, cand_anchor = self._candidates(levels, anchor_points, gts)
        metric, _ = self._alignment(cand_row, cand_anchor, gts, preds)
        pos_row, pos_anchor = self._topk_per_gt(cand_row, cand_anchor, metric, levels,
                                                anchor_points, gts, preds)
        assigned = resolve_conflicts(pos_row, pos_anchor, gt_bboxes, pred_bboxes, PRED_IOU_EPS)
        pos_score = self._normalised_scores(assigned, gts, preds)
        return build_result_from_rows(assigned, pos_score, GTs(gt_labels, gt_bboxes, pad_gt_mask),
                                      num_classes)

    def _check_inputs(self, pred_scores, pred_bboxes, anchor_points, num_anchors_list,
                      gt_labels, gt_bboxes, pad_gt_mask):
        """Static shape and dtype checks (no device work)."""
        owner, sizes = type(self).__name__, {}
        check_tensor(owner, 'pred_scores', pred_scores, ['B', 'L', 'C'], sizes,
                     dtypes=('float32',))
        check_tensor(owner, 'pred_bboxes', pred_bboxes, ['B', 'L', 4], sizes, dtypes=('float32',))
        check_tensor(owner, 'anchor_points', anchor_points, ['L', 2], sizes, dtypes=('float32',))
        check_gt_inputs(owner, gt_labels, gt_bboxes, pad_gt_mask, sizes)
        total = sum(int(n) for n in num_anchors_list)
        if anchor_points.shape[0] >= 0 and total != anchor_points.shape[0]:
            raise ValueError(f'{owner}: num_anchors_list {list(num_anchors_list)} sums to {total} '
                             f'but anchor_points has {anchor_points.shape[0]} anchors')

    # 1. candidates ------------------------------------------------------------------------------

    def _candidates(self, levels, anchor_points, gts):
        """Candidate anchors of the real GTs (inside them, or close with ``is_close_gt``):
        ``(row, anchor)`` int64 pairs."""
        if self.is_close_gt:
            return self._close_candidates(levels, anchor_points, gts)
        rows, anchors = [], []
        for level in levels:
            if level.grid is None:
                points = anchor_points[level.start:level.start + level.size].unsqueeze(0)
                inside = paddle.logical_and(points_in_boxes(points, gts.boxes.unsqueeze(1)),
                                            gts.is_real.unsqueeze(1))
                pairs = paddle.nonzero(inside)
                rows.append(pairs[:, 0])
                anchors.append(pairs[:, 1] + level.start)
                continue
            # The inside test is monotone along each grid axis, so the inside cells of a GT form a
            # rectangle: columns [col, col + num_cols) and rows [row, row + num_rows).
            box = gts.boxes
            col, num_cols = _inside_span(box[:, 0], box[:, 2], level.grid.xs)
            row, num_rows = _inside_span(box[:, 1], box[:, 3], level.grid.ys)
            count = num_cols * num_rows * gts.is_real.astype('int64')
            owner, local = ragged_ranges(count)
            num_cols = paddle.gather(num_cols, owner)
            cell_col = paddle.gather(col, owner) + local % num_cols
            cell_row = paddle.gather(row, owner) + local // num_cols
            rows.append(owner)
            anchors.append(level.start + cell_row * level.grid.width + cell_col)
        return concat_1d(rows), concat_1d(anchors)

    def _close_candidates(self, levels, anchor_points, gts):
        """``is_close_gt`` candidates, measured level by level: ``(row, anchor)`` pairs."""
        centres = bbox_center(gts.boxes)
        rows, anchors = [], []
        for index, level in enumerate(levels):
            points = anchor_points[level.start:level.start + level.size]
            close = paddle.logical_and(_is_close(points, centres, index),
                                       gts.is_real.unsqueeze(1))
            pairs = paddle.nonzero(close)
            rows.append(pairs[:, 0])
            anchors.append(pairs[:, 1] + level.start)
        return concat_1d(rows), concat_1d(anchors)

    def _candidate_mask(self, levels, anchor_points, boxes):
        """``[R, L]`` bool: which anchors are candidates of GT boxes ``[R, 4]``."""
        if not self.is_close_gt:
            return points_in_boxes(anchor_points.unsqueeze(0), boxes.unsqueeze(1))
        centres = bbox_center(boxes)
        return paddle.concat([
            _is_close(anchor_points[level.start:level.start + level.size], centres, index)
            for index, level in enumerate(levels)], axis=1)

    # 2. alignment -------------------------------------------------------------------------------

    def _alignment(self, row, anchor, gts, preds):
        """``t = s ** alpha * u ** beta`` and ``u`` of ``(row, anchor)`` pairs: ``[P]``, ``[P]``."""
        flat = row // gts.num_gts * preds.num_anchors + anchor
        iou = bbox_iou(paddle.gather(gts.boxes, row), paddle.gather(preds.boxes, flat),
                       PRED_IOU_EPS)
        label = paddle.gather(gts.labels, row)
        score = paddle.gather(preds.scores, flat * preds.num_classes + label)
        alignment = (on_simd_body(lambda s: s.pow(self.alpha), score) *
                     on_simd_body(lambda u: u.pow(self.beta), iou))
        return alignment, iou

    # 3. top k -----------------------------------------------------------------------------------

    def _topk_per_gt(self, row, anchor, metric, levels, anchor_points, gts, preds):
        """Each GT's ``topk`` candidates by metric: ``(row, anchor)`` pairs."""
        num = row.shape[0]
        if num == 0:
            return row, anchor
        # Group the candidates by GT, by decreasing metric within a GT: rank by metric, then sort
        # by (row, rank), an integer key with no ties.
        rank = paddle.scatter(paddle.zeros([num], dtype='int64'),
                              paddle.argsort(metric, descending=True),
                              paddle.arange(num, dtype='int64'))
        order = paddle.argsort(row * num + rank)
        row, anchor, metric = (paddle.gather(t, order) for t in (row, anchor, metric))
        count = paddle.bincount(row, minlength=gts.num_rows)
        first = paddle.cumsum(count) - count
        position = paddle.arange(num, dtype='int64') - paddle.gather(first, row)

        undecided = self._tied_at_k(metric, first, count, preds.num_anchors)
        decided = paddle.gather(paddle.logical_not(undecided).astype('int32'), row) > 0
        keep = paddle.nonzero(paddle.logical_and(position < self.topk, decided)).flatten()
        pos_row, pos_anchor = paddle.gather(row, keep), paddle.gather(anchor, keep)

        redo = paddle.nonzero(undecided).flatten()
        if redo.shape[0] > 0:
            redo_row, redo_anchor = self._topk_over_all_anchors(redo, levels, anchor_points, gts,
                                                                preds)
            pos_row = concat_1d([pos_row, redo_row])
            pos_anchor = concat_1d([pos_anchor, redo_anchor])
        return pos_row, pos_anchor

    def _tied_at_k(self, metric, first, count, num_anchors):
        """``[B * n]`` bool: GTs whose top k is not unique among their candidates.

        ``metric`` is grouped by GT in decreasing order; GT r's values are
        ``metric[first[r]:first[r] + count[r]]``, and every non-candidate anchor counts as 0.
        """
        k = self.topk
        last = metric.shape[0] - 1
        kth = paddle.gather(metric, (first + k - 1).clip(max=last))
        next_ = paddle.gather(metric, (first + k).clip(max=last))
        smallest = paddle.gather(metric, (first + count - 1).clip(0, last))
        # Order comparisons only: Paddle's float == has a 1e-8 tolerance. Values are sorted
        # decreasing and t >= 0, so "not greater" means "equal".
        # More than k candidates: the k-th and (k+1)-th largest are both candidates.
        tie_within = paddle.logical_and(count > k, kth <= next_)
        # At most k candidates: they are all in the top k unless one scores 0, which ties with the
        # zeros of the non-candidates filling up the top k.
        tie_with_zeros = paddle.logical_and(paddle.logical_and(count > 0, count <= k),
                                            smallest <= 0)
        if num_anchors <= k:
            tie_with_zeros = paddle.zeros_like(tie_with_zeros)
        return paddle.logical_or(tie_within, tie_with_zeros)

    def _topk_over_all_anchors(self, rows, levels, anchor_points, gts, preds):
        """PaddleDetection's ranking for ``rows [R]``: top k of ``t * candidate`` over all anchors,
        keeping the candidates. Returns ``(row, anchor)`` pairs."""
        num_rows, num_anchors = rows.shape[0], preds.num_anchors
        row = rows.unsqueeze(1).expand([num_rows, num_anchors]).flatten()
        anchor = paddle.tile(paddle.arange(num_anchors, dtype='int64'), [num_rows])
        metric = self._alignment(row, anchor, gts, preds)[0].reshape([num_rows, num_anchors])
        boxes = paddle.gather(gts.boxes, rows)
        inside = self._candidate_mask(levels, anchor_points, boxes).astype(metric.dtype)
        top = paddle.topk(metric * inside, self.topk, axis=-1)[1]
        keep = paddle.nonzero(paddle.take_along_axis(inside, top, axis=1) > 0)
        return (paddle.gather(rows, keep[:, 0]),
                paddle.gather(top.flatten(), keep[:, 0] * self.topk + keep[:, 1]))

    # 5. targets ---------------------------------------------------------------------------------

    def _normalised_scores(self, assigned, gts, preds):
        """``t / (max t + eps) * max u`` for each positive anchor (in ``nonzero(assigned >= 0)``
        order), the maxima over the positives of the same GT."""
        pos_flat = paddle.nonzero(assigned >= 0).flatten()
        if pos_flat.shape[0] == 0:
            return None
        row = paddle.gather(assigned, pos_flat)
        metric, iou = self._alignment(row, pos_flat % preds.num_anchors, gts, preds)
        max_metric, max_iou = max_per_segment(metric, row), max_per_segment(iou, row)
        return ieee_divide(metric, max_metric + self.eps) * max_iou


class _GTs:
    """The GT batch flattened to rows ``b * n + g``."""

    def __init__(self, gt_labels, gt_bboxes, pad_gt_mask):
        self.num_gts = gt_bboxes.shape[1]
        self.num_rows = gt_bboxes.shape[0] * self.num_gts
        self.boxes = gt_bboxes.reshape([-1, 4])
        self.labels = gt_labels.reshape([-1]).astype('int64')
        self.is_real = pad_gt_mask.reshape([-1]) > 0


class _Predictions:
    """The predictions flattened to anchors ``b * L + a``."""

    def __init__(self, pred_scores, pred_bboxes):
        _, self.num_anchors, self.num_classes = pred_scores.shape
        self.scores = pred_scores.flatten()
        self.boxes = pred_bboxes.reshape([-1, 4])


def _is_close(points, centres, level_index):
    """``[R, S]`` bool: anchor points ``[S, 2]`` within ``CLOSE_MAX_DIST`` nominal strides of GT
    centres ``[R, 2]`` (PaddleDetection's expression: point minus centre, norm, divided)."""
    stride = CLOSE_FIRST_STRIDE / 2 ** level_index
    offsets = points.unsqueeze(0) - centres.unsqueeze(1)
    distance = on_simd_body(lambda d: d.norm(2, axis=-1), offsets, item_ndim=1)
    return distance / stride < CLOSE_MAX_DIST


def _inside_span(low, high, coords):
    """Cells whose coordinate lies strictly inside ``(low, high)`` by PaddleDetection's rule.

    Args:
        low, high (Tensor): ``[R]`` box sides on one axis; coords (ndarray): ``[S]`` increasing.
    Returns:
        (first, count): ``[R]`` int64 each; the cells are ``first ... first + count - 1``.
    """
    coords = paddle.to_tensor(coords).unsqueeze(0)
    # coords - low grows with the cell and high - coords shrinks, so the cells failing the first
    # test come first and the cells passing the second test come first.
    first = paddle.logical_not(coords - low.unsqueeze(1) > INSIDE_EPS).astype('int64').sum(axis=1)
    end = (high.unsqueeze(1) - coords > INSIDE_EPS).astype('int64').sum(axis=1)
    return first, (end - first).clip(min=0)
