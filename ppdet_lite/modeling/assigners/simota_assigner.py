"""SimOTA (YOLOX: Ge et al., "YOLOX: Exceeding YOLO Series in 2021", arXiv:2107.08430)."""

import paddle

from ppdet_lite.core.workspace import register
from ..checks import check_bool, check_choice, check_int, check_number
from .dynamic_k import (CANDIDATE_SCOPES, DynamicKAssigner, clamped_log, p2_log_q,
                        per_prior_sum)
from .grid_candidates import fetch_sizes, grid_axes, index_range, list_pairs, rect_counts

__all__ = ['SimOTAAssigner']

IOU_COST_EPS = 1e-7
VFL_ALPHA = 0.75


@register
class SimOTAAssigner(DynamicKAssigner):
    """SimOTA: each GT takes its dynamic-k lowest-cost candidates.

    1. Candidates of GT g (``candidate_scope``):
       - ``'image'`` (the default; YOLOX, PaddleDetection's ``get_in_gt_and_in_center_info``,
         mmdet): every prior that is in the box or centre region of *any* real GT of the image,
         where a prior's box region is g's box and its centre region the square of half-side
         ``center_radius`` strides (the prior's level stride) around g's centre, both strict;
       - ``'gt'``: g's own region only (the priors in g's box or centre region).
    2. Cost of (g, prior), with p = the predicted probabilities of the prior, c = g's class,
       u = IoU(predicted box, g box):
       ``cls_weight * cls + iou_weight * -log(u + 1e-7) + M * [not (in g's box and centre)]``,
       M a large penalty (YOLOX 1e5 or 1e6, PaddleDetection and mmdet 1e8), applied exactly:
       every penalised candidate ranks after every unpenalised one, penalised ones by their cost
       (the sum whenever the cost is below M, without float32's rounding of ``cost + M``: 1/128
       at 1e5, 8 at 1e8, which ties penalised candidates of different cost).
       ``cls`` is a BCE summed over the C classes against a target t (t_k = 0 for k != c), logs
       clamped at -100 as in Paddle and PyTorch:
       - ``use_vfl=False``: t_c = 1 (one-hot), ``sum_k BCE(p_k, t_k)`` (PaddleDetection; YOLOX
         and mmdet take BCE of sqrt(p) because their p is cls * objectness);
       - ``use_vfl=True`` (PaddleDetection's default): t_c = u, varifocal weighting (alpha 0.75,
         gamma 2): ``u * BCE(p_c, u)`` if u > 0, ``0.75 * p_k**2 * BCE(p_k, 0)`` for t_k = 0.
    3. Dynamic k: ``k_g = max(1, floor(sum of the candidate_topk largest candidate IoUs of g))``;
       g claims its k_g lowest-cost candidates (ties: lowest prior index), see ``dynamic_k``.
    4. Conflicts: a prior claimed by several GTs goes to the lowest cost among all real GTs of
       the image, claimant or not (``'image'``, as the references do), or among its claimants
       (``'gt'``); penalised costs after unpenalised ones, equal costs to the lowest slot.
    5. Targets: the GT's class and box; ``assigned_scores`` is one-hot times the IoU of the
       prediction with the GT (PaddleDetection's SimOTA loss with VFL, YOLOX's IoU-aware target).
       ``gts.scores`` is not used.

    ``'image'`` (the default) is the references' definition: identical to PaddleDetection
    2.6's SimOTAAssigner (use_vfl False, 320 x 320, 1 / 3 / 10 GTs, 40 images each, predictions
    random or near their GT) on all 240 images except where its float32 ``cost + 1e8`` tied
    penalised candidates. It runs dense over the [B, n, L] pairs by blocks
    (``dynamic_k.image_scope_matching``): at 640 x 640, batch 8, 80 classes about 100 / 260 ms
    of CPU per call with 20 / 100 GT per image and 1.35 s with 650 (YOLOX's SimOTA: 83 / 695 ms
    at 20 / 100). ``'gt'`` is a faster approximation (about 50 / 70 / 400 ms): the other GTs'
    priors enter a GT's cost in the references only through its ranking after its own
    (penalised) or through predicted boxes of other priors overlapping it, and a contested
    prior may go to a GT that did not claim it; on those test images 40 / 34 of 40 images with
    3 / 10 GTs were identical for predictions near their GT, 38 / 8 for random predictions.

    Other differences from the references:
    - PaddleDetection's ``use_vfl`` cost adds ``iou_weight * GIoU`` (the overlap itself, which
      favours worse boxes); here the IoU cost is ``-log(IoU)`` in both modes, as in YOLOX.
    - Prior centres: the given prior points (PaddleDetection's ``flatten_center_and_stride``);
      YOLOX uses the cell's top-left + 0.5 stride, the same points with grid_cell_offset 0.5.
    - The dynamic k's IoU sum is taken in float64 (``dynamic_k``).

    Host synchronisations per call: none with ``'image'``, which therefore neither checks the
    GT class ids (ids outside ``[0, C)`` go undetected; the cost reads them clipped into range)
    nor needs the priors to be a grid; one with ``'gt'`` (the
    number of candidate pairs and the largest per GT, fetched with the prior-grid and GT
    label/box checks).

    Args:
        center_radius (float): half-side of the centre region, in strides (> 0).
        candidate_topk (int): IoUs summed for the dynamic k (>= 1).
        iou_weight (float): weight of the IoU cost (>= 0).
        cls_weight (float): weight of the classification cost (>= 0).
        num_classes (int): C, also the background label.
        use_vfl (bool): varifocal classification cost with the IoU as target (see 2.).
        candidate_scope (str): ``'image'`` or ``'gt'`` (see 1. and 4.).
    Raises:
        TypeError, ValueError: an argument of the wrong type or out of range.
    """

    def __init__(self, center_radius=2.5, candidate_topk=10, iou_weight=3.0, cls_weight=1.0,
                 num_classes=80, use_vfl=True, candidate_scope='image'):
        super().__init__(num_classes)
        owner = type(self).__name__
        check_number(owner, 'center_radius', center_radius, low=0, low_open=True)
        check_int(owner, 'candidate_topk', candidate_topk, minimum=1)
        check_number(owner, 'iou_weight', iou_weight, low=0)
        check_number(owner, 'cls_weight', cls_weight, low=0)
        check_int(owner, 'num_classes', num_classes, minimum=1)
        check_bool(owner, 'use_vfl', use_vfl)
        check_choice(owner, 'candidate_scope', candidate_scope, CANDIDATE_SCOPES)
        self.candidate_scope = candidate_scope
        self.center_radius = center_radius
        self.candidate_topk = candidate_topk
        self.iou_weight = iou_weight
        self.cls_weight = cls_weight
        self.use_vfl = use_vfl

    @property
    def dynamic_topk(self):
        """IoUs summed for the dynamic k: ``candidate_topk``."""
        return self.candidate_topk

    def _image_regions(self, priors, gts):
        """``(near, penalised)`` of the ``'image'`` scope (``dynamic_k.DynamicKAssigner``): the
        priors in a GT's box or centre region, and those outside either (penalised)."""
        num_priors = priors.points.shape[0]
        gt_planes = _planes(gts.bboxes)
        centres = ((gt_planes[0] + gt_planes[2]) / 2.0, (gt_planes[1] + gt_planes[3]) / 2.0)
        points = [priors.points[:, i].reshape([1, 1, -1]) for i in range(2)]
        reach = (self.center_radius * priors.strides).reshape([1, 1, -1])
        in_both = {}

        def near(b0, b1, g0, g1):
            shape = [b1 - b0, g1 - g0, num_priors]
            x, y, r = (t.expand(shape) for t in (*points, reach))
            x1, y1, x2, y2, cx, cy = (t[b0:b1, g0:g1].expand(shape)
                                      for t in (*gt_planes, *centres))
            # x > x1 is the references' x - x1 > 0 (a float32 difference is 0 only for equal
            # operands); cx - r is their float32 bound.
            in_box = (x > x1) & (y > y1) & (x < x2) & (y < y2)
            in_center = (x > cx - r) & (y > cy - r) & (x < cx + r) & (y < cy + r)
            in_both[(b0, g0)] = paddle.logical_and(in_box, in_center)
            return paddle.logical_or(in_box, in_center)

        def penalised(b0, g0):
            return paddle.logical_not(in_both.pop((b0, g0)))

        return near, penalised

    def _own_candidates(self, owner, priors, gts, boxes, is_real):
        """Pairs of each GT's own region, listed from the grid (one host synchronisation):
        ``(gt_row, prior, gt_len, max_len, candidate, penalised)``, penalised the pairs outside
        the box or the centre region; or None without any pair."""
        axes = grid_axes(priors)
        num_levels = axes.xs.shape[0]
        rects = self._regions(axes, boxes, num_levels)
        counts = rect_counts(*rects['hull'], is_real)
        gt_len = counts.sum(1)
        num_pairs, max_len = fetch_sizes(owner, axes, gt_len, gts, self.num_classes)
        if num_pairs == 0:
            return None
        pairs = list_pairs(axes, *rects['hull'], counts, num_pairs)
        seg = pairs.gt_row * num_levels + pairs.level
        in_box = _inside(rects['box'], seg, pairs)
        in_center = _inside(rects['center'], seg, pairs)
        # Hull cells outside both regions stay listed (no new synchronisation) but are no
        # candidates.
        return (pairs.gt_row, pairs.prior, gt_len, max_len, paddle.logical_or(in_box, in_center),
                paddle.logical_not(paddle.logical_and(in_box, in_center)))

    def _regions(self, axes, boxes, num_levels):
        """Index rectangles ``(c0, c1, r0, r1)``, each ``[G, nl]`` int64, of the box region, the
        centre region and their hull."""
        def bounds(values):
            return values.unsqueeze(0).tile([num_levels, 1])
        x1, y1, x2, y2 = (boxes[:, i] for i in range(4))
        box = _rect(axes, bounds(x1), bounds(x2), bounds(y1), bounds(y2))
        reach = (self.center_radius * axes.strides).unsqueeze(1)
        cx = bounds((x1 + x2) / 2.0)
        cy = bounds((y1 + y2) / 2.0)
        center = _rect(axes, cx - reach, cx + reach, cy - reach, cy + reach)
        return {'box': box, 'center': center, 'hull': _hull(box, center)}

    def _background(self, scores):
        """``[N]`` the zero-target classification terms of ``scores [N, C]`` summed over the
        classes: the part of the cost shared by every GT of a prior."""
        if self.use_vfl:
            # zero target: 0.75 * p**2 * BCE(p, 0)
            return -VFL_ALPHA * per_prior_sum(scores, p2_log_q)
        # zero target: BCE(p, 0) = -log(1 - p)
        return -per_prior_sum(scores, lambda q: clamped_log(1 - q))

    def _cost(self, p, iou, background):
        """Cost without the outside penalty (the matching applies it) from the GT class's
        probability ``p``, the IoU and the prior's ``_background`` (shapes broadcast): the GT
        class's zero-target term swapped for its own."""
        log_p, log_q = clamped_log(p), clamped_log(1 - p)
        if self.use_vfl:
            # target u > 0: u * BCE(p, u)
            negative = -VFL_ALPHA * (p * p) * log_q
            positive = -iou * (iou * log_p + (1 - iou) * log_q)
            cls = background - negative + paddle.where(iou > 0, positive, negative)
        else:
            # target 1: BCE(p, 1) = -log(p)
            cls = background + log_q - log_p
        return cls * self.cls_weight - self.iou_weight * paddle.log(iou + IOU_COST_EPS)


def _planes(boxes):
    """``(x1, y1, x2, y2)`` planes ``[B, M, 1]`` of boxes ``[B, M, 4]``."""
    return [boxes[:, :, i:i + 1] for i in range(4)]


def _rect(axes, x_lo, x_hi, y_lo, y_hi):
    """Index rectangle of the priors strictly inside the bounds (``[nl, G]`` each) -> ``(c0, c1,
    r0, r1)`` each ``[G, nl]``."""
    c0, c1 = index_range(axes.xs, x_lo, x_hi)
    r0, r1 = index_range(axes.ys, y_lo, y_hi)
    return tuple(t.transpose([1, 0]) for t in (c0, c1, r0, r1))


def _hull(a, b):
    """Smallest rectangle holding rectangles a and b (an empty one contributes nothing)."""
    a_full = paddle.logical_and(a[1] > a[0], a[3] > a[2])
    b_full = paddle.logical_and(b[1] > b[0], b[3] > b[2])
    hull = []
    for i, pick in enumerate((paddle.minimum, paddle.maximum, paddle.minimum, paddle.maximum)):
        both = pick(a[i], b[i])
        hull.append(paddle.where(a_full, paddle.where(b_full, both, a[i]),
                                 paddle.where(b_full, b[i], paddle.zeros_like(both))))
    return tuple(hull)


def _inside(rect, seg, pairs):
    """``[P]`` bool: the pair's grid cell lies in ``rect`` (rectangles ``[G, nl]``)."""
    c0, c1, r0, r1 = (paddle.gather(t.reshape([-1]), seg) for t in rect)
    return (pairs.col >= c0) & (pairs.col < c1) & (pairs.row >= r0) & (pairs.row < r1)
