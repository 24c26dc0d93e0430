"""Dynamic Soft Label assignment (NanoDet-Plus, RangiLyu 2021; the ``DynamicSoftLabelAssigner``
of nanodet/model/head/assigner/dsl_assigner.py; seed 003)."""

import paddle

from ppdet_lite.core.workspace import register
from ..checks import check_choice, check_int, check_number
from .dynamic_k import (CANDIDATE_SCOPES, DynamicKAssigner, clamped_log, p2_log_q,
                        per_prior_sum)
from .grid_candidates import fetch_sizes, grid_axes, index_range, list_pairs, rect_counts

__all__ = ['DynamicSoftLabelAssigner']

IOU_COST_EPS = 1e-7


@register
class DynamicSoftLabelAssigner(DynamicKAssigner):
    """Dynamic Soft Label: soft-label costs, dynamic k, lowest cost wins.

    1. Candidates of GT g (``candidate_scope``), by the prior's centre (its point):
       - ``'image'`` (the default; NanoDet-Plus, mmdet): every prior strictly inside *any* real
         GT of the image, with no penalty for lying outside g (g may take a prior of another GT);
       - ``'gt'``: the priors strictly inside g's box (g's own priors).
    2. Cost of (g, prior), with p = the prior's predicted probabilities, c = g's class and
       u = IoU(predicted box, g box) the soft label:
       ``sum_k BCE(p_k, t_k) * |t_k - p_k|**2 + iou_factor * -log(u + 1e-7)``, t = u at class c
       and 0 elsewhere (BCE's logs clamped at -100, as in Paddle and PyTorch).
    3. Dynamic k: ``k_g = max(1, floor(sum of the topk largest candidate IoUs of g))``; g claims its
       k_g lowest-cost candidates (ties: lowest prior index), see ``dynamic_k``.
    4. Conflicts: a prior claimed by several GTs goes to the lowest cost among all real GTs of
       the image, claimant or not (``'image'``, as NanoDet-Plus does), or among its claimants
       (``'gt'``); equal costs to the lowest slot.
    5. Targets: the GT's class and box; ``assigned_scores`` is one-hot times the IoU of the
       prediction with the GT (the soft label). ``gts.scores`` is not used.

    ``'image'`` (the default) is NanoDet-Plus's definition (identical to a line-by-line numpy
    transcription of its dsl_assigner.py on 180 test images). It runs dense over the [B, n, L]
    pairs by blocks (``dynamic_k.image_scope_matching``): at 640 x 640, batch 8, 80 classes
    about 95 / 240 ms of CPU per call with 20 / 100 GT per image and 1.2 s with 650 (mmyolo's
    batched DSL: 93 / 529 ms at 20 / 100). ``'gt'`` is a faster variant (about 40 / 55 / 230 ms)
    that reads the seed's in-box filtering per GT. The two agree when a GT's lowest costs and
    top IoUs lie among its own priors and no contested prior has a cheaper non-claimant; with
    several overlapping GTs per image they often do not (NanoDet-Plus lets a GT take another
    GT's prior at no penalty): on 320 x 320 images with 3 / 10 GTs, 19 / 0 of 30 images were
    identical, with one GT all were.

    Other differences from NanoDet-Plus:
    - mmdet's (RTMDet's) soft centre prior ``10 ** (distance / stride - 3)`` is not offered.
    - The classification cost is NanoDet-Plus's sum over all classes (mmdet's too, on logits);
      mmyolo's batched version keeps only the GT class's term.
    - The dynamic k's IoU sum is taken in float64 (``dynamic_k``); IoUs add 1e-9 to the union
      (NanoDet-Plus: union at least 1e-6).

    Host synchronisations per call: none with ``'image'``, which therefore neither checks the
    GT class ids (ids outside ``[0, C)`` go undetected; the cost reads them clipped into range)
    nor needs the priors to be a grid; one with ``'gt'`` (the number of candidate pairs and the
    largest per GT, fetched with the prior-grid and GT label/box checks).

    Args:
        topk (int): IoUs summed for the dynamic k (>= 1).
        iou_factor (float): weight of the IoU cost (>= 0).
        num_classes (int): C, also the background label.
        candidate_scope (str): ``'image'`` or ``'gt'`` (see 1. and 4.).
    Raises:
        TypeError, ValueError: an argument of the wrong type or out of range.
    """

    def __init__(self, topk=13, iou_factor=3.0, num_classes=80, candidate_scope='image'):
        super().__init__(num_classes)
        owner = type(self).__name__
        check_int(owner, 'topk', topk, minimum=1)
        check_number(owner, 'iou_factor', iou_factor, low=0)
        check_int(owner, 'num_classes', num_classes, minimum=1)
        check_choice(owner, 'candidate_scope', candidate_scope, CANDIDATE_SCOPES)
        self.candidate_scope = candidate_scope
        self.topk = topk
        self.iou_factor = iou_factor

    @property
    def dynamic_topk(self):
        """IoUs summed for the dynamic k: ``topk``."""
        return self.topk

    def _image_regions(self, priors, gts):
        """``(near, penalised)`` of the ``'image'`` scope (``dynamic_k.DynamicKAssigner``): the
        priors strictly inside a GT's box; no pair is penalised."""
        num_priors = priors.points.shape[0]
        gt_planes = [gts.bboxes[:, :, i:i + 1] for i in range(4)]
        points = [priors.points[:, i].reshape([1, 1, -1]) for i in range(2)]

        def near(b0, b1, g0, g1):
            shape = [b1 - b0, g1 - g0, num_priors]
            x, y = (t.expand(shape) for t in points)
            x1, y1, x2, y2 = (t[b0:b1, g0:g1].expand(shape) for t in gt_planes)
            # x > x1 is NanoDet-Plus's x - x1 > 0: a float32 difference is 0 only for equal
            # operands.
            return (x > x1) & (y > y1) & (x < x2) & (y < y2)

        return near, lambda b0, g0: None

    def _own_candidates(self, owner, priors, gts, boxes, is_real):
        """Each GT's own priors, listed from the grid (one host synchronisation):
        ``(gt_row, prior, gt_len, max_len, None, None)`` (every pair a candidate, none
        penalised), or None without any pair."""
        axes = grid_axes(priors)
        num_levels = axes.xs.shape[0]
        bounds = [boxes[:, i].unsqueeze(0).tile([num_levels, 1]) for i in range(4)]
        c0, c1 = index_range(axes.xs, bounds[0], bounds[2])
        r0, r1 = index_range(axes.ys, bounds[1], bounds[3])
        rect = tuple(t.transpose([1, 0]) for t in (c0, c1, r0, r1))
        counts = rect_counts(*rect, is_real)
        gt_len = counts.sum(1)
        num_pairs, max_len = fetch_sizes(owner, axes, gt_len, gts, self.num_classes)
        if num_pairs == 0:
            return None
        pairs = list_pairs(axes, *rect, counts, num_pairs)
        return pairs.gt_row, pairs.prior, gt_len, max_len, None, None

    def _background(self, scores):
        """``[N]`` sum over the classes of BCE(p_k, 0) * p_k**2 for ``scores [N, C]``: the part
        of the cost shared by every GT of a prior."""
        return -per_prior_sum(scores, p2_log_q)

    def _cost(self, p, iou, background):
        """Cost from the GT class's probability ``p``, the IoU and the prior's ``_background``
        (shapes broadcast): the GT class's zero-label term swapped for its soft-label term."""
        log_p, log_q = clamped_log(p), clamped_log(1 - p)
        # d * d, not d ** 2: Paddle's pow is ~100x slower and not correctly rounded.
        gap = iou - p
        soft = -(iou * log_p + (1 - iou) * log_q) * (gap * gap)
        cls = background + log_q * (p * p) + soft
        return cls - self.iou_factor * paddle.log(iou + IOU_COST_EPS)
