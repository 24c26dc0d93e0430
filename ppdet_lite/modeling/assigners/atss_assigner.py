"""ATSSAssigner: Adaptive Training Sample Selection (Zhang et al., CVPR 2020), computed exactly as
PaddleDetection 2.6 computes it, without its dense ``[B, n, L]`` tensors.

For every real GT box:

1. candidates: on each FPN level, the ``topk`` anchors whose centres are nearest the GT centre;
2. threshold: mean + standard deviation (unbiased, N - 1) of the candidates' IoUs with the GT;
3. positives: candidates whose IoU exceeds the threshold and whose centre lies inside the GT;
4. conflicts: an anchor claimed by several GTs goes to the GT it overlaps most (among all GT slots
   of the image, as PaddleDetection 2.6 does; among the claiming GTs only with ``sm_use``);
5. optionally (``force_gt_matching``) each GT also takes the anchor it overlaps most, unless that
   anchor is also some other GT's best;
6. targets: label and box of the assigned GT; score 1, or the IoU of the anchor's predicted box
   with its GT when ``pred_bboxes`` is given, or the GT's score when ``gt_scores`` is given.

Speed: the nearest anchors of a GT lie in a small window of its level's anchor grid around the GT
centre, so only that window is measured, and IoUs are computed for candidates and positives only.
Exactness: a row falls back to measuring its whole level (as PaddleDetection does) when the window
cannot prove its answer, i.e. when an anchor outside the window could be as near as the k-th. Equal
distances need care because ``paddle.topk`` orders equal values by its sorting algorithm's path
through the whole row: the order of equal distances is the summation order of the mean and std, and
a tie at the k-th decides which anchors are candidates. Both are harmless when the tied anchors have
equal IoUs, unless a tie at the k-th has an anchor that can become positive; in every other case
the row is measured whole, and measured over the same row, each tie goes the way it goes in
PaddleDetection (whatever topk kernel the device has; equality is tested on CPU).
"""

import math
from collections import namedtuple

import paddle

from ppdet_lite.core.workspace import register
from ..bbox_utils import bbox_area, bbox_center, bbox_iou
from ..checks import check_bool, check_int, check_number, check_tensor
from .base import BaseAssigner, GTs, background_result, build_result_from_rows
from .gt_check import check_gt_inputs, gt_probe, raise_for_probe
from .ppdet_outputs import ppdet_outputs
from .utils import (PRED_IOU_EPS, anchor_levels, on_simd_body, points_in_boxes, resolve_conflicts,
                    to_host)

__all__ = ['ATSSAssigner']

# PaddleDetection's iou_similarity default, used for every anchor-to-GT IoU.
ANCHOR_IOU_EPS = 1e-10
# Anchors gathered beyond the k-th nearest to see the whole tie at the k-th: a grid has at most 8
# anchors at one distance from a point but for rare coincidences (those rows measure the level).
TIE_GROUP = 8
# Relative margin between the k-th window distance and the nearest possible outside distance; far
# above float32 rounding, so a window result is only trusted when it is certain.
REACH_MARGIN = 1e-6


_LevelCandidates = namedtuple('_LevelCandidates', ['index', 'open_tie', 'tie_iou', 'tie_inside'])
_LevelCandidates.__doc__ = """One level's candidates of each GT row: ``index [R, k]`` anchors by
increasing distance. ``open_tie [R]`` bool: the last of them are one pick among the anchors as far
as the k-th, which all have IoU ``tie_iou [R]``; ``tie_inside [R]`` bool: one of those anchors has
its centre inside the GT."""


@register
class ATSSAssigner(BaseAssigner):
    """Adaptive Training Sample Selection assigner.

    Args:
        topk (int): candidates per GT per FPN level.
        num_classes (int): C, width of ``assigned_scores``.
        force_gt_matching (bool): also give each GT its highest-IoU anchor.
        eps (float): kept for PaddleDetection config compatibility; PaddleDetection 2.6's ATSS
            never reads it (its IoU and inside checks use fixed epsilons, reproduced here).
        sm_use (bool): PaddleDetection's small-object option: an anchor claimed by several GTs
            goes to the claimant it overlaps most, rather than to the most-overlapping GT slot
            of the image, claimant or not (the only effect ``sm_use`` has in 2.6's ATSS).
    Raises:
        TypeError, ValueError: an argument of the wrong type or out of range (topk >= 1,
            num_classes >= 1, eps >= 0).
    """
    needs_preds = False

    def __init__(self, topk=9, num_classes=80, force_gt_matching=False, eps=1e-9, sm_use=False):
        super().__init__(num_classes)
        owner = type(self).__name__
        check_int(owner, 'topk', topk, minimum=1)
        check_int(owner, 'num_classes', num_classes, minimum=1)
        check_bool(owner, 'force_gt_matching', force_gt_matching)
        check_number(owner, 'eps', eps, low=0)
        check_bool(owner, 'sm_use', sm_use)
        self.topk = topk
        self.num_classes = num_classes
        self.force_gt_matching = force_gt_matching
        self.eps = eps
        self.sm_use = sm_use
        # Window half-width in cells. A q x q block around the nearest cell (q odd, q * q >= topk)
        # bounds the k-th distance by sqrt(2) * q / 2 strides; any anchor h + 1 cells away is at
        # least h + 0.5 strides away, so h + 0.5 > sqrt(2) * q / 2 keeps inner GTs in the window.
        block = 2 * math.ceil((math.sqrt(topk) - 1) / 2) + 1
        self.window_half = int((math.sqrt(2) * block - 1) / 2) + 1

    @paddle.no_grad()
    def assign(self, priors, gts, preds=None):
        """Assign priors to GT boxes (see ``base.BaseAssigner.assign``).

        Args:
            priors (Priors): ``priors.boxes [L, 4]`` are the anchors.
            gts (GTs): padded GT; ``gts.scores`` are the positives' target scores when ``preds``
                is None.
            preds (Preds|None): when given, ``preds.bboxes [B, L, 4]`` (pixels) make each
                positive's target score its predicted box's IoU with its GT.
        Returns:
            AssignResult.
        Raises:
            TypeError, ValueError: see ``forward``.
        """
        return self._assign(priors.boxes, priors.num_anchors_list, gts.labels, gts.bboxes,
                            gts.mask, self.num_classes, gts.scores,
                            None if preds is None else preds.bboxes)

    @paddle.no_grad()
    def forward(self, anchor_bboxes, num_anchors_list, gt_labels, gt_bboxes, pad_gt_mask, bg_index,
                gt_scores=None, pred_bboxes=None):
        """PaddleDetection 2.6's positional interface (an adapter of ``assign``).

        Args:
            anchor_bboxes (Tensor): ``[L, 4]`` float32 anchor boxes x1y1x2y2, pixels, levels in
                order.
            num_anchors_list (list[int]): anchors per FPN level.
            gt_labels (Tensor): ``[B, n, 1]`` int32 or int64.
            gt_bboxes (Tensor): ``[B, n, 4]`` float32 x1y1x2y2, pixels.
            pad_gt_mask (Tensor): ``[B, n, 1]`` float32, 1 for a real GT, 0 for padding.
            bg_index (int): label of background anchors (normally ``num_classes``).
            gt_scores (Tensor|None): ``[B, n, 1]`` float32 score of each GT, used as the target
                score when ``pred_bboxes`` is None.
            pred_bboxes (Tensor|None): ``[B, L, 4]`` float32 predicted boxes in the pixels of
                ``gt_bboxes`` (PPYOLOEHead passes its decoded boxes times the stride).
        Returns:
            tuple: ``(assigned_labels [B, L], assigned_bboxes [B, L, 4], assigned_scores
            [B, L, C], mask_positive [B, n, L] float32)`` as PaddleDetection 2.6 returns them
            (``mask_positive[b, g, l]`` is 1 where prior l is assigned to slot g); only the first
            three when ``n == 0``.
        Raises:
            TypeError, ValueError: inputs of the wrong shape or dtype, anchors not matching
                ``num_anchors_list``, a real GT whose class is not in ``[0, num_classes)``
                (more exactly: not in ``[0, num_classes]`` or equal to ``bg_index``) or whose box
                is not finite.
        """
        result = self._assign(anchor_bboxes, num_anchors_list, gt_labels, gt_bboxes, pad_gt_mask,
                              bg_index, gt_scores, pred_bboxes)
        return ppdet_outputs(result, gt_bboxes.shape[1])

    def _assign(self, anchor_bboxes, num_anchors_list, gt_labels, gt_bboxes, pad_gt_mask,
                bg_index, gt_scores, pred_bboxes):
        self._check_inputs(anchor_bboxes, num_anchors_list, gt_labels, gt_bboxes, pad_gt_mask,
                           gt_scores, pred_bboxes)
        batch_size, num_gts = gt_bboxes.shape[:2]
        num_anchors = anchor_bboxes.shape[0]
        if num_gts == 0:
            return background_result(batch_size, num_anchors, self.num_classes, gt_labels.dtype)

        gt_boxes = gt_bboxes.reshape([-1, 4])
        is_real = pad_gt_mask.reshape([-1]) > 0
        anchor_centres = bbox_center(anchor_bboxes)
        centres, boxes, probe = to_host(anchor_centres, anchor_bboxes, gt_probe(
            gt_labels, gt_bboxes, pad_gt_mask, self.num_classes, bg_index))
        raise_for_probe(type(self).__name__, probe, num_gts, self.num_classes, bg_index)
        levels = anchor_levels(centres, num_anchors_list, boxes)

        nearest = self._nearest_per_level(levels, anchor_bboxes, anchor_centres, gt_boxes, is_real)
        candidates = paddle.concat([found.index for found in nearest], axis=1)
        candidate_ious = _candidate_ious(candidates, anchor_bboxes, gt_boxes)
        threshold = self._threshold(candidate_ious, batch_size)
        # A pick among equidistant anchors of equal IoU leaves the threshold as it is, and whether
        # the pick matters (can one of them become positive?) needs the threshold: settle it now.
        candidates = self._settle_ties(levels, nearest, threshold, anchor_centres, gt_boxes,
                                       is_real)
        pos_row, pos_anchor = self._positives(candidates, threshold, anchor_bboxes, anchor_centres,
                                              gt_boxes, is_real)
        assigned = resolve_conflicts(pos_row, pos_anchor, gt_bboxes, anchor_bboxes, ANCHOR_IOU_EPS,
                                     claimants_only=self.sm_use)
        if self.force_gt_matching:
            assigned = self._force_gt_matching(assigned, levels, anchor_bboxes, gt_bboxes, is_real)
        pos_score = self._scores(assigned, gt_boxes, gt_scores, pred_bboxes)
        return build_result_from_rows(assigned, pos_score, GTs(gt_labels, gt_bboxes, pad_gt_mask),
                                      self.num_classes)

    def _check_inputs(self, anchor_bboxes, num_anchors_list, gt_labels, gt_bboxes, pad_gt_mask,
                      gt_scores, pred_bboxes):
        """Static shape and dtype checks (no device work)."""
        owner, sizes = type(self).__name__, {}
        check_tensor(owner, 'anchor_bboxes', anchor_bboxes, ['L', 4], sizes, dtypes=('float32',))
        check_gt_inputs(owner, gt_labels, gt_bboxes, pad_gt_mask, sizes, gt_scores)
        if pred_bboxes is not None:
            check_tensor(owner, 'pred_bboxes', pred_bboxes, ['B', 'L', 4], sizes,
                         dtypes=('float32',))
        total = sum(int(n) for n in num_anchors_list)
        if anchor_bboxes.shape[0] >= 0 and total != anchor_bboxes.shape[0]:
            raise ValueError(f'{owner}: num_anchors_list {list(num_anchors_list)} sums to {total} '
                             f'but anchor_bboxes has {anchor_bboxes.shape[0]} anchors')

    # 1. candidates ------------------------------------------------------------------------------

    def _nearest_per_level(self, levels, anchor_bboxes, anchor_centres, gt_boxes, is_real):
        """Per level, each GT's ``topk`` nearest anchors by increasing distance: a list of
        _LevelCandidates with ``[B * n, topk]`` indices (rows of padded GTs are unspecified)."""
        gt_centres = bbox_center(gt_boxes)
        num_rows = gt_boxes.shape[0]
        per_level = []
        for index, level in enumerate(levels):
            if level.size < self.topk:
                grid = '' if level.grid is None else \
                    f' ({level.grid.height} x {level.grid.width} cells)'
                raise ValueError(f'ATSSAssigner: FPN level {index} has {level.size} anchors'
                                 f'{grid}, fewer than topk={self.topk}; the input is too small '
                                 f'for this topk (each level needs at least topk cells: e.g. '
                                 f'96 x 96 or larger for strides up to 32 and topk 9), or lower '
                                 f'ATSSAssigner.topk')
            if self._window_fits(level.grid):
                found, undecided = self._nearest_in_window(level, anchor_bboxes, anchor_centres,
                                                           gt_boxes, gt_centres)
            else:
                no = paddle.zeros([num_rows], dtype='bool')
                placeholder = paddle.full([num_rows, self.topk], level.start, dtype='int64')
                found = _LevelCandidates(placeholder, no, paddle.zeros([num_rows]), no)
                undecided = paddle.logical_not(no)
            redo = paddle.nonzero(paddle.logical_and(is_real, undecided)).flatten()
            if redo.shape[0] > 0:
                measured = self._nearest_in_level(level, anchor_centres,
                                                  paddle.gather(gt_centres, redo))
                found = found._replace(index=paddle.scatter(found.index, redo, measured))
            per_level.append(found)
        return per_level

    def _window_fits(self, grid):
        side = 2 * self.window_half + 1
        return grid is not None and min(side, grid.width) * min(side, grid.height) > self.topk

    def _nearest_in_window(self, level, anchor_bboxes, anchor_centres, gt_boxes, gt_centres):
        """The ``topk`` anchors nearest each GT centre among its window's.

        Returns:
            (_LevelCandidates, undecided): ``undecided [R]`` bool marks rows the window cannot
            settle: an anchor outside it may be as near as the k-th, or equal distances among the
            first k (or at the k-th) come with unequal IoUs, so their order or pick would change
            the threshold.
        """
        grid, num_rows, k = level.grid, gt_centres.shape[0], self.topk
        cols, col_reach = _window_axis(gt_centres[:, 0], grid.xs, self.window_half)
        rows, row_reach = _window_axis(gt_centres[:, 1], grid.ys, self.window_half)
        window = rows.unsqueeze(2) * grid.width + cols.unsqueeze(1)
        window = level.start + window.reshape([num_rows, -1])
        distances = _distances(gt_centres.unsqueeze(1), _gather_rows(anchor_centres, window))
        num = min(k + TIE_GROUP, window.shape[1])
        nearest, order = paddle.topk(distances, num, axis=-1, largest=False)
        index = paddle.take_along_axis(window, order, axis=1)
        ious = _candidate_ious(index, anchor_bboxes, gt_boxes)
        inside = points_in_boxes(_gather_rows(anchor_centres, index), gt_boxes.unsqueeze(1))

        kth = nearest[:, k - 1:k]
        at_kth = _equal(nearest, kth)
        # Equal neighbours among the first k and the anchors tied with the k-th.
        tied = paddle.logical_and(_equal(nearest[:, 1:], nearest[:, :-1]), nearest[:, 1:] <= kth)
        unequal_ious = paddle.logical_not(_equal(ious[:, 1:], ious[:, :-1]))
        reach = paddle.minimum(col_reach, row_reach) * (1 - REACH_MARGIN)
        undecided = paddle.logical_or(paddle.logical_not(kth[:, 0] < reach),
                                      paddle.logical_and(tied, unequal_ious).any(axis=1))
        open_tie = at_kth[:, k]
        if num < window.shape[1]:  # the tie at the k-th may go on beyond the anchors gathered
            undecided = paddle.logical_or(undecided, paddle.logical_and(open_tie, at_kth[:, -1]))
        open_tie = paddle.logical_and(open_tie, paddle.logical_not(undecided))
        tie_inside = paddle.logical_and(inside, at_kth).any(axis=1)
        return _LevelCandidates(index[:, :k], open_tie, ious[:, k - 1], tie_inside), undecided

    def _nearest_in_level(self, level, anchor_centres, gt_centres):
        """The ``topk`` nearest anchors of the level, measuring all of them: ``[R, topk]`` int64."""
        centres = anchor_centres[level.start:level.start + level.size]
        distances = _distances(gt_centres.unsqueeze(1), centres.unsqueeze(0))
        return paddle.topk(distances, self.topk, axis=-1, largest=False)[1] + level.start

    def _settle_ties(self, levels, nearest, threshold, anchor_centres, gt_boxes, is_real):
        """``[B * n, K]`` candidates, with every pick among equidistant anchors at the k-th made as
        PaddleDetection makes it where the pick matters: when one of those anchors can become
        positive (their common IoU beats the threshold and one has its centre inside the GT).
        Otherwise the pick changes neither the threshold nor the positives."""
        gt_centres = bbox_center(gt_boxes)
        per_level = []
        for level, found in zip(levels, nearest):
            can_be_positive = paddle.logical_and(found.tie_inside, found.tie_iou > threshold[:, 0])
            matters = paddle.logical_and(paddle.logical_and(found.open_tie, can_be_positive),
                                         is_real)
            redo = paddle.nonzero(matters).flatten()
            index = found.index
            if redo.shape[0] > 0:
                measured = self._nearest_in_level(level, anchor_centres,
                                                  paddle.gather(gt_centres, redo))
                index = paddle.scatter(index, redo, measured)
            per_level.append(index)
        return paddle.concat(per_level, axis=1)

    # 2. threshold -------------------------------------------------------------------------------

    @staticmethod
    def _threshold(candidate_ious, batch_size):
        """Mean + std (unbiased) of each GT's candidate IoUs: ``[B * n, 1]``.

        Reduced in PaddleDetection's ``[B, n, K]`` layout and candidate order, so that the float
        sums are the same.
        """
        ious = candidate_ious.reshape([batch_size, -1, candidate_ious.shape[-1]])
        threshold = ious.mean(axis=-1, keepdim=True) + ious.std(axis=-1, keepdim=True)
        return threshold.reshape([-1, 1])

    # 3. positives -------------------------------------------------------------------------------

    @staticmethod
    def _positives(candidates, threshold, anchor_bboxes, anchor_centres, gt_boxes, is_real):
        """Candidates above the threshold with their centre inside the GT: (row, anchor) pairs."""
        inside = points_in_boxes(_gather_rows(anchor_centres, candidates), gt_boxes.unsqueeze(1))
        above = _candidate_ious(candidates, anchor_bboxes, gt_boxes) > threshold
        positive = paddle.logical_and(paddle.logical_and(above, inside), is_real.unsqueeze(1))
        pos = paddle.nonzero(positive)
        row = pos[:, 0]
        anchor = paddle.gather(candidates.flatten(), row * candidates.shape[1] + pos[:, 1])
        return row, anchor

    # 5. force_gt_matching -----------------------------------------------------------------------

    def _force_gt_matching(self, assigned, levels, anchor_bboxes, gt_bboxes, is_real):
        """Give each real GT its highest-IoU anchor, unless that anchor is the best of several GTs
        (then PaddleDetection leaves the anchor as it was)."""
        num_gts = gt_bboxes.shape[1]
        real_rows = paddle.nonzero(is_real).flatten()
        if real_rows.shape[0] == 0:
            return assigned
        best = self._best_anchor_per_gt(levels, anchor_bboxes,
                                        paddle.gather(gt_bboxes.reshape([-1, 4]), real_rows))
        flat = real_rows // num_gts * anchor_bboxes.shape[0] + best
        owners = paddle.bincount(flat, minlength=assigned.shape[0])
        sole = paddle.nonzero(paddle.gather(owners, flat) == 1).flatten()
        if sole.shape[0] == 0:
            return assigned
        return paddle.scatter(assigned, paddle.gather(flat, sole), paddle.gather(real_rows, sole))

    @staticmethod
    def _best_anchor_per_gt(levels, anchor_bboxes, gt_boxes):
        """Index of each GT's highest-IoU anchor over all levels, lowest index on ties: ``[R]``."""
        best_iou, best_index = [], []
        for level in levels:
            if level.grid is not None and level.grid.x1 is not None:
                iou, index = _best_in_grid(level, anchor_bboxes, gt_boxes)
            else:
                anchors = anchor_bboxes[level.start:level.start + level.size]
                ious = bbox_iou(gt_boxes.unsqueeze(1), anchors.unsqueeze(0), ANCHOR_IOU_EPS)
                iou, index = ious.max(axis=-1), ious.argmax(axis=-1) + level.start
            best_iou.append(iou)
            best_index.append(index)
        first_best_level = paddle.stack(best_iou, axis=1).argmax(axis=1, keepdim=True)
        best_index = paddle.stack(best_index, axis=1)
        return paddle.take_along_axis(best_index, first_best_level, axis=1).flatten()

    # 6. targets ---------------------------------------------------------------------------------

    @staticmethod
    def _scores(assigned, gt_boxes, gt_scores, pred_bboxes):
        """Soft score of each positive anchor (``nonzero(assigned >= 0)`` order), None for 1."""
        if pred_bboxes is None and gt_scores is None:
            return None
        pos_anchor = paddle.nonzero(assigned >= 0).flatten()
        gt_row = paddle.gather(assigned, pos_anchor)
        if pred_bboxes is not None:
            pred = paddle.gather(pred_bboxes.reshape([-1, 4]), pos_anchor)
            return bbox_iou(paddle.gather(gt_boxes, gt_row), pred, PRED_IOU_EPS)
        return paddle.gather(gt_scores.flatten(), gt_row)


def _candidate_ious(candidates, anchor_bboxes, gt_boxes):
    """IoU of each GT row with its candidate anchors ``[R, K]`` -> ``[R, K]``."""
    return bbox_iou(gt_boxes.unsqueeze(1), _gather_rows(anchor_bboxes, candidates),
                    ANCHOR_IOU_EPS)


def _equal(a, b):
    """Exact elementwise equality of float tensors (Paddle's ``==`` allows a 1e-8 difference)."""
    return paddle.logical_not(paddle.logical_or(a < b, a > b))


def _distances(points, others):
    """Euclidean distances of broadcasting ``[..., 2]`` points, PaddleDetection's expression."""
    return on_simd_body(lambda d: d.norm(2, axis=-1), points - others, item_ndim=1)


def _gather_rows(table, index):
    """``table [N, D]`` rows at ``index [R, K]`` -> ``[R, K, D]``."""
    return paddle.gather(table, index.flatten()).reshape([index.shape[0], index.shape[1], -1])


def _window_axis(centre, coords, half):
    """Window along one grid axis for each GT centre coordinate.

    Args:
        centre (Tensor): ``[R]`` GT centre coordinate.
        coords (ndarray): ``[S]`` strictly increasing anchor-centre coordinates of the axis.
        half (int): cells on each side of the nearest one (the window shifts to stay on the grid).
    Returns:
        (index, reach): ``[R, w]`` int64 cell indices and ``[R]`` float32, a lower bound on the
        distance from the centre to any anchor outside the window (inf when none is).
    """
    size = len(coords)
    width = min(2 * half + 1, size)
    origin = float(coords[0])
    step = (float(coords[-1]) - origin) / max(size - 1, 1)
    coords = paddle.to_tensor(coords)
    nearest = paddle.round((centre - origin) / step).clip(0, size - 1).astype('int64')
    first = (nearest - half).clip(0, size - width)
    index = first.unsqueeze(1) + paddle.arange(width, dtype='int64')
    inf = paddle.full_like(centre, float('inf'))
    below = paddle.where(first > 0, centre - paddle.gather(coords, (first - 1).clip(min=0)), inf)
    after = first + width
    above = paddle.where(after < size, paddle.gather(coords, after.clip(max=size - 1)) - centre,
                         inf)
    return index, paddle.minimum(below, above)


def _best_in_grid(level, anchor_bboxes, gt_boxes):
    """Highest anchor IoU of each GT on a grid level and its lowest-index anchor: ``[R]``, ``[R]``.

    The anchors share one size, so IoU grows with the overlap, which is the product of a column
    overlap and a row overlap: the best row is found from the best column overlap, then the first
    column reaching the best IoU within that row. IoUs use PaddleDetection's expression, so the
    float values and hence the ties are its.
    """
    grid = level.grid
    col_overlap = _overlap(gt_boxes[:, 0:1], gt_boxes[:, 2:3], grid.x1, grid.x2)
    row_overlap = _overlap(gt_boxes[:, 1:2], gt_boxes[:, 3:4], grid.y1, grid.y2)
    anchor_area = bbox_area(anchor_bboxes[level.start:level.start + 1])
    area_sum = bbox_area(gt_boxes).unsqueeze(1) + anchor_area

    def iou(overlap):
        return overlap / (area_sum - overlap + ANCHOR_IOU_EPS)

    row_best = iou(row_overlap * col_overlap.max(axis=1, keepdim=True))
    row = row_best.argmax(axis=1, keepdim=True)
    in_row = iou(paddle.take_along_axis(row_overlap, row, axis=1) * col_overlap)
    col = in_row.argmax(axis=1, keepdim=True)
    return row_best.max(axis=1), level.start + (row * grid.width + col).flatten()


def _overlap(low, high, anchor_low, anchor_high):
    """Overlap lengths ``[R, S]`` of GT intervals ``[R, 1]`` with the grid's anchor intervals
    (ndarray ``[S]``), as PaddleDetection's IoU computes them."""
    anchor_low, anchor_high = paddle.to_tensor(anchor_low), paddle.to_tensor(anchor_high)
    return (paddle.minimum(high, anchor_high) - paddle.maximum(low, anchor_low)).clip(min=0)
