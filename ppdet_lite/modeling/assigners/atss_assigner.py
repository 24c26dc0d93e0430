"""ATSSAssigner: Adaptive Training Sample Selection (Zhang et al., "Bridging the Gap Between
Anchor-based and Anchor-free Detection via Adaptive Training Sample Selection", CVPR 2020);
reference implementation PaddleDetection 2.6 ``ppdet/modeling/assigners/atss_assigner.py``.

For every real GT box (padded slots never get a prior):

1. candidates: on each FPN level, the ``topk`` priors whose box centres are nearest the GT centre
   (squared Euclidean distance; equal distances: lowest prior index first, ``ordering``). A level
   with fewer than ``topk`` priors gives all of them (as mmdet; PaddleDetection's ``topk`` fails).
2. quality and threshold: IoU of each candidate's prior box with the GT; the threshold is the
   mean plus the unbiased (N - 1) standard deviation of the GT's candidate IoUs.
3. positives: candidates whose IoU exceeds the threshold and whose prior centre lies inside the
   GT (farther than 1e-9 px from each side).
4. conflicts (``conflicts``): a prior positive for several GTs goes to the one whose box it
   overlaps most (prior-box IoU), lowest slot on equal IoUs. ``conflict='claimants'`` (and
   PaddleDetection's ``sm_use``): only the claiming GTs compete. ``conflict='ppdet'`` (default):
   every real GT of the image competes, as PaddleDetection 2.6 does, so a contested prior can go
   to a GT that never selected it.
5. ``force_gt_matching``: each real GT also takes its highest-IoU prior over all levels (lowest
   index on equal IoUs), unless that prior is the highest-IoU prior of several GTs.
6. targets: label and box of the assigned GT; target score (``pos_scores``) the IoU of the
   prior's predicted box with its GT when ``preds`` is given (PP-YOLOE's static phase), else
   ``gts.scores`` (1 without them).

Why ``conflict='ppdet'`` is the default: PP-YOLOE configs and PaddleDetection's trained models use
it, and PaddleDetection 2.6's own outputs are reproduced with it (``tests/test_ppdet_golden.py``,
and ``tests/test_validation.py``'s options cases, where ``'claimants'`` changes TAL's labels).

Rounding: distances are compared squared (no square root), IoUs come from correctly rounded
float32 operations, and the threshold is reduced from the same ``[B, n, K]`` layout in both
implementations, so both compare the same numbers.
"""


import paddle

from ppdet_lite.core.workspace import register
from ..bbox_utils import batch_iou_planes, bbox_center, bbox_iou
from ..checks import check_bool, check_choice, check_int, check_number, check_tensor
from .base import BACKGROUND, BaseAssigner, GTs, background_result, build_result, level_spans
from .conflicts import resolve_conflicts, resolve_conflicts_pairs
from .gt_check import check_gt_inputs, gt_probe
from .ordering import arg_best, topk_lowest_index
from .ppdet_outputs import ppdet_outputs
from .utils import (PRED_IOU_EPS, best_of_all_slots, contested_priors, grid_shapes,
                    points_in_boxes, power, squared_distance)

__all__ = ['ATSSAssigner']

# PaddleDetection's iou_similarity default, used for every prior-to-GT IoU.
ANCHOR_IOU_EPS = 1e-10


@register
class ATSSAssigner(BaseAssigner):
    """Adaptive Training Sample Selection assigner (steps in the module docstring).

    Two implementations with identical results:

    - ``impl='fast'``: per level, only a window of the prior grid around the GT centre is measured
      (``level_shapes`` gives the grid; see ``window_offsets`` for why the window holds the
      ``topk`` nearest). Host synchronisations per call: 0 with ``conflict='claimants'``, 1 with
      ``conflict='ppdet'`` (how many priors are contested; the GT class-id check rides on it).
    - ``impl='dense'``: the plain ``[B, n, L]`` definition, no host synchronisation (for GPUs);
      class ids are not range-checked.

    ``force_gt_matching`` measures every prior in both implementations.

    Args:
        topk (int): candidates per GT per FPN level.
        num_classes (int): C, width of ``assigned_scores``; the background label.
        force_gt_matching (bool): step 5.
        eps (float): kept for PaddleDetection config compatibility; its ATSS never reads it.
        sm_use (bool): PaddleDetection's small-object switch; its only effect in 2.6 is
            ``conflict='claimants'``.
        conflict (str): ``'ppdet'`` or ``'claimants'`` (step 4).
        impl (str): ``'fast'`` or ``'dense'``.
    Raises:
        TypeError, ValueError: an argument of the wrong type or out of range (topk >= 1,
            num_classes >= 1, eps >= 0).
    """
    needs_preds = False

    def __init__(self, topk=9, num_classes=80, force_gt_matching=False, eps=1e-9, sm_use=False,
                 conflict='ppdet', impl='fast'):
        super().__init__(num_classes)
        owner = type(self).__name__
        check_int(owner, 'topk', topk, minimum=1)
        check_int(owner, 'num_classes', num_classes, minimum=1)
        check_bool(owner, 'force_gt_matching', force_gt_matching)
        check_number(owner, 'eps', eps, low=0)
        check_bool(owner, 'sm_use', sm_use)
        check_choice(owner, 'conflict', conflict, ('ppdet', 'claimants'))
        check_choice(owner, 'impl', impl, ('fast', 'dense'))
        self.topk = topk
        self.force_gt_matching = force_gt_matching
        self.eps = eps
        self.sm_use = sm_use
        self.conflict = 'claimants' if sm_use else conflict
        self.impl = impl
        self._offsets = window_offsets(topk)

    @paddle.no_grad()
    def assign(self, priors, gts, preds=None):
        """Assign priors to GT boxes (see ``base.BaseAssigner.assign``).

        Args:
            priors (Priors): ``boxes [L, 4]`` are the anchors; ``num_anchors_list`` and
                ``level_shapes`` the levels.
            gts (GTs): padded GT; ``gts.scores`` are the target scores when ``preds`` is None.
            preds (Preds|None): when given, ``preds.bboxes [B, L, 4]`` (pixels) make each
                positive's target score its predicted box's IoU with its GT.
        Returns:
            AssignResult.
        Raises:
            TypeError, ValueError: inputs of the wrong shape or dtype, ``level_shapes`` not
                matching ``num_anchors_list``; with a host synchronisation (see the class
                docstring), a real GT whose class is not in ``[0, num_classes)`` or whose box is
                not finite.
        """
        return self._assign(priors.boxes, priors.num_anchors_list, priors.level_shapes,
                            gts.labels, gts.bboxes, gts.mask, self.num_classes, gts.scores,
                            None if preds is None else preds.bboxes)

    @paddle.no_grad()
    def forward(self, anchor_bboxes, num_anchors_list, gt_labels, gt_bboxes, pad_gt_mask, bg_index,
                gt_scores=None, pred_bboxes=None):
        """PaddleDetection 2.6's positional interface (an adapter of ``assign``).

        Args:
            anchor_bboxes (Tensor): ``[L, 4]`` float32 anchor boxes x1y1x2y2, pixels, levels in
                order, each level a row-major grid of square cells (PP-YOLOE's anchors).
            num_anchors_list (list[int]): anchors per FPN level.
            gt_labels (Tensor): ``[B, n, 1]`` int32 or int64.
            gt_bboxes (Tensor): ``[B, n, 4]`` float32 x1y1x2y2, pixels.
            pad_gt_mask (Tensor): ``[B, n, 1]`` float32, 1 for a real GT, 0 for padding.
            bg_index (int): background label (checked against the GT classes; the result uses
                ``num_classes``).
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
            TypeError, ValueError: as ``assign``.

        The level shapes are read back from the anchor centres (the first row of each level is
        the anchors sharing its first anchor's y): one more host synchronisation than ``assign``.
        """
        level_shapes = grid_shapes(bbox_center(anchor_bboxes), num_anchors_list)
        result = self._assign(anchor_bboxes, num_anchors_list, level_shapes, gt_labels, gt_bboxes,
                              pad_gt_mask, bg_index, gt_scores, pred_bboxes)
        return ppdet_outputs(result, gt_bboxes.shape[1])

    def _assign(self, anchor_bboxes, num_anchors_list, level_shapes, gt_labels, gt_bboxes,
                pad_gt_mask, bg_index, gt_scores, pred_bboxes):
        levels = self._check_inputs(anchor_bboxes, num_anchors_list, level_shapes, gt_labels,
                                    gt_bboxes, pad_gt_mask, gt_scores, pred_bboxes)
        gts = GTs(gt_labels, gt_bboxes, pad_gt_mask, gt_scores)
        batch_size, num_gts = gt_bboxes.shape[:2]
        num_priors = anchor_bboxes.shape[0]
        if num_gts == 0 or num_priors == 0:
            return background_result(batch_size, num_priors, self.num_classes, gt_labels.dtype)
        centres = bbox_center(anchor_bboxes)
        real = pad_gt_mask.reshape([batch_size, num_gts]) > 0
        if self.impl == 'dense':
            gt_index = self._dense(anchor_bboxes, centres, levels, gt_bboxes, real)
        else:
            gt_index = self._fast(anchor_bboxes, centres, levels, gts, real, bg_index)
        if self.force_gt_matching:
            gt_index = _force_gt_matching(gt_index, anchor_bboxes, gt_bboxes, real)
        pos_scores = None
        if pred_bboxes is not None:
            slot = gt_index.clip(min=0).unsqueeze(-1).tile([1, 1, 4])
            pos_scores = bbox_iou(paddle.take_along_axis(gt_bboxes, slot, axis=1), pred_bboxes,
                                  PRED_IOU_EPS)
        return build_result(gt_index, gts, self.num_classes, pos_scores)

    def _check_inputs(self, anchor_bboxes, num_anchors_list, level_shapes, gt_labels, gt_bboxes,
                      pad_gt_mask, gt_scores, pred_bboxes):
        """Static shape and dtype checks (no device work); returns each level's ``LevelSpan``."""
        owner, sizes = type(self).__name__, {}
        check_tensor(owner, 'anchor_bboxes', anchor_bboxes, ['L', 4], sizes, dtypes=('float32',))
        check_gt_inputs(owner, gt_labels, gt_bboxes, pad_gt_mask, sizes, gt_scores)
        if pred_bboxes is not None:
            check_tensor(owner, 'pred_bboxes', pred_bboxes, ['B', 'L', 4], sizes,
                         dtypes=('float32',))
        return level_spans(owner, num_anchors_list, level_shapes, anchor_bboxes.shape[0],
                           priors_name='anchor_bboxes')

    # 1-4, dense: every (GT, prior) pair ---------------------------------------------------------

    def _dense(self, anchor_bboxes, centres, levels, gt_bboxes, real):
        """gt_index ``[B, L]`` from ``[B, n, L]`` tensors; no host synchronisation."""
        batch_size, num_gts = real.shape
        distances = squared_distance(bbox_center(gt_bboxes).unsqueeze(2),
                                     centres.reshape([1, 1, -1, 2]))
        candidates = []
        for level in levels:
            k = min(self.topk, level.size)
            if k > 0:
                nearest = topk_lowest_index(distances[:, :, level.start:level.start + level.size],
                                            k, axis=-1, largest=False)[1]
                candidates.append(nearest + level.start)
        candidates = paddle.concat(candidates, axis=-1)  # [B, n, K]
        ious = batch_iou_planes(gt_bboxes, anchor_bboxes.unsqueeze(0), ANCHOR_IOU_EPS)
        threshold = _threshold(paddle.take_along_axis(ious, candidates, axis=-1))
        is_candidate = paddle.put_along_axis(
            paddle.zeros(ious.shape, dtype='float32'), candidates,
            paddle.ones(candidates.shape, dtype='float32'), axis=-1) > 0
        inside = points_in_boxes(centres.reshape([1, 1, -1, 2]), gt_bboxes.unsqueeze(2))
        claims = is_candidate & (ious > threshold) & inside & real.unsqueeze(-1)
        if self.conflict == 'ppdet':
            contested = claims.astype('int32').sum(axis=1, keepdim=True) > 1
            # Bool operands: Paddle 2.6 has no bool where.
            claims = (contested & real.unsqueeze(-1)) | (paddle.logical_not(contested) & claims)
        return resolve_conflicts(claims, ious, 'max')

    # 1-4, fast: a window of each level's grid --------------------------------------------------

    def _fast(self, anchor_bboxes, centres, levels, gts, real, bg_index):
        """gt_index ``[B, L]`` measuring only each GT's window; see the class docstring."""
        batch_size, num_gts = real.shape
        num_priors = anchor_bboxes.shape[0]
        gt_boxes = gts.bboxes.reshape([-1, 4])
        gt_centres = bbox_center(gt_boxes)
        candidates = paddle.concat([
            _nearest_in_window(centres, level, gt_centres, min(self.topk, level.size),
                               self._offsets)
            for level in levels if level.size > 0], axis=1)  # [B * n, K]
        num_candidates = candidates.shape[1]
        ious = bbox_iou(gt_boxes.unsqueeze(1), paddle.gather(anchor_bboxes, candidates.flatten())
                        .reshape([-1, num_candidates, 4]), ANCHOR_IOU_EPS)
        threshold = _threshold(ious.reshape([batch_size, num_gts, -1])).reshape([-1, 1])
        inside = points_in_boxes(paddle.gather(centres, candidates.flatten())
                                 .reshape([-1, num_candidates, 2]), gt_boxes.unsqueeze(1))
        claims = (ious > threshold) & inside & real.reshape([-1, 1])
        # Every candidate pair goes to the conflicts step; non-claims point at a spare prior.
        row = paddle.arange(batch_size * num_gts, dtype='int64').unsqueeze(1)
        num_flat = batch_size * num_priors
        prior_flat = paddle.where(claims, row // num_gts * num_priors + candidates,
                                  paddle.full_like(candidates, num_flat)).flatten()
        slot = (row % num_gts).expand(candidates.shape).flatten()
        gt_index = resolve_conflicts_pairs(prior_flat, slot, ious.flatten(), num_gts,
                                           num_flat + 1, 'max')[:num_flat]
        if self.conflict == 'ppdet':
            probe = gt_probe(gts.labels, gts.bboxes, gts.mask, self.num_classes, bg_index)
            contested = contested_priors(prior_flat, num_flat, probe, type(self).__name__,
                                         num_gts, self.num_classes, bg_index)
            if contested is not None:
                winner = best_of_all_slots(paddle.gather(anchor_bboxes, contested % num_priors),
                                           contested // num_priors, gts.bboxes, real,
                                           ANCHOR_IOU_EPS)
                gt_index = paddle.scatter(gt_index, contested, winner)
        return gt_index.reshape([batch_size, num_priors])


def _threshold(candidate_ious):
    """Mean + unbiased std of each GT's candidate IoUs ``[B, n, K]`` -> ``[B, n, 1]`` (both
    implementations reduce this same layout, so their float sums are the same). Written out:
    ``paddle.std`` checks its degrees of freedom on the host."""
    mean = candidate_ious.mean(axis=-1, keepdim=True)
    squares = power(candidate_ious - mean, 2).sum(axis=-1, keepdim=True)
    return mean + (squares / (candidate_ious.shape[-1] - 1)).sqrt()


def window_offsets(topk):
    """Grid offsets ``(d_row, d_col)`` that can hold one of the ``topk`` nearest priors.

    Let cell ``(r0, c0)`` be nearest the point along each axis. Along one axis, distances grow
    away from ``c0`` on each side, strictly from two cells away: a cell ``|dc| >= 2`` columns from
    ``c0`` has ``|dc|`` columns strictly nearer the point, and a cell ``|dr|`` rows away has
    ``|dr| + 1`` rows no farther. So a cell with ``|dc| * (|dr| + 1) >= topk`` (or the same with
    rows and columns swapped) has at least ``topk`` grid cells strictly nearer: it cannot be among
    the ``topk`` nearest, whatever the tie rule, wherever the point is (on, near or far off the
    grid). The other offsets are kept, in row-major order so that a window's position order is
    its prior index order (the tie rule's order).

    Returns:
        list[(int, int)]: e.g. 65 offsets for ``topk`` 9.
    """
    def strictly_nearer(d):
        return abs(d) if abs(d) >= 2 else 0

    reach = range(-(topk - 1), topk)
    return [(dr, dc) for dr in reach for dc in reach
            if strictly_nearer(dc) * (abs(dr) + 1) < topk
            and strictly_nearer(dr) * (abs(dc) + 1) < topk]


def _nearest_index(coords, values):
    """Index of the nearest of the ascending ``coords [S]`` to each of ``values [R]``."""
    size = coords.shape[0]
    if size == 1:
        return paddle.zeros(values.shape, dtype='int64')
    above = paddle.searchsorted(coords, values).clip(1, size - 1)
    below = above - 1
    take_below = (values - paddle.gather(coords, below)) <= (paddle.gather(coords, above) - values)
    return paddle.where(take_below, below, above)


def _nearest_in_window(centres, level, gt_centres, k, offsets):
    """The ``k`` priors of ``level`` nearest each of ``gt_centres [R, 2]`` (lowest index on equal
    distances): ``[R, k]`` int64 prior indices, by increasing distance."""
    start, rows, cols = level.start, level.rows, level.cols
    xs = centres[start:start + cols, 0]
    ys = paddle.gather(centres[:, 1], start + cols * paddle.arange(rows, dtype='int64'))
    col0 = _nearest_index(xs, gt_centres[:, 0]).unsqueeze(1)
    row0 = _nearest_index(ys, gt_centres[:, 1]).unsqueeze(1)
    offset = paddle.to_tensor(offsets, dtype='int64')
    col = col0 + offset[:, 1]
    row = row0 + offset[:, 0]
    on_grid = (col >= 0) & (col < cols) & (row >= 0) & (row < rows)
    prior = start + row.clip(0, rows - 1) * cols + col.clip(0, cols - 1)  # [R, W]
    distances = squared_distance(gt_centres.unsqueeze(1),
                                 paddle.gather(centres, prior.flatten()).reshape(
                                     [prior.shape[0], prior.shape[1], 2]))
    distances = paddle.where(on_grid, distances, paddle.full_like(distances, float('inf')))
    nearest = topk_lowest_index(distances, k, axis=-1, largest=False)[1]
    return paddle.take_along_axis(prior, nearest, axis=1)


def _force_gt_matching(gt_index, anchor_bboxes, gt_bboxes, real):
    """Step 5 on ``gt_index [B, L]``: a prior that is the highest-IoU prior (lowest index on
    equal IoUs) of exactly one real GT goes to that GT."""
    batch_size, num_gts = real.shape
    num_priors = anchor_bboxes.shape[0]
    ious = batch_iou_planes(gt_bboxes, anchor_bboxes.unsqueeze(0), ANCHOR_IOU_EPS)
    best = arg_best(ious, axis=-1)  # [B, n]
    # Padded slots vote for a spare prior L.
    best = paddle.where(real, best, paddle.full_like(best, num_priors))
    votes = paddle.put_along_axis(paddle.zeros([batch_size, num_priors + 1], dtype='int64'),
                                  best, paddle.ones(best.shape, dtype='int64'), axis=1,
                                  reduce='add')
    slots = paddle.arange(num_gts, dtype='int64').unsqueeze(0).expand(best.shape)
    voter = paddle.put_along_axis(paddle.full([batch_size, num_priors + 1], BACKGROUND,
                                              dtype='int64'),
                                  best, slots, axis=1, reduce='amax')
    sole = votes[:, :num_priors] == 1
    return paddle.where(sole, voter[:, :num_priors], gt_index)
