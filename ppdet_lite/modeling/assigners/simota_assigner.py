"""SimOTA (YOLOX: Ge et al., "YOLOX: Exceeding YOLO Series in 2021", arXiv:2107.08430)."""

import paddle

from ppdet_lite.core.workspace import register
from ..bbox_utils import bbox_iou
from ..checks import check_bool, check_int, check_number, check_tensor
from .base import BACKGROUND, BaseAssigner, background_result, build_result
from .dynamic_k import clamped_log, dynamic_k_matching, per_prior_sum
from .grid_candidates import fetch_sizes, grid_axes, index_range, list_pairs, rect_counts
from .gt_check import check_gt_inputs

__all__ = ['SimOTAAssigner']

IOU_COST_EPS = 1e-7
# Added to the union of a predicted and a GT box (PaddleDetection's batch_iou_similarity).
PRED_IOU_EPS = 1e-9
VFL_ALPHA = 0.75


@register
class SimOTAAssigner(BaseAssigner):
    """SimOTA: each GT takes its dynamic-k lowest-cost candidates.

    1. Candidates of GT g: priors whose centre is strictly inside g's box, or strictly inside the
       square of half-side ``center_radius`` strides (the prior's level stride) around g's centre
       (PaddleDetection's ``get_in_gt_and_in_center_info``).
    2. Cost of (g, prior), with p = the predicted probabilities of the prior, c = g's class,
       u = IoU(predicted box, g box):
       ``cls_weight * cls + iou_weight * -log(u + 1e-7) + M * [not (in box and in centre)]``,
       M a large penalty (YOLOX 1e5 or 1e6, PaddleDetection and mmdet 1e8).
       ``cls`` is a BCE summed over the C classes against a target t (t_k = 0 for k != c):
       - ``use_vfl=False``: t_c = 1 (one-hot), ``sum_k BCE(p_k, t_k)`` (PaddleDetection; YOLOX
         and mmdet take BCE of sqrt(p) because their p is cls * objectness);
       - ``use_vfl=True``: t_c = u, varifocal weighting (alpha 0.75, gamma 2): positive term
         ``u * BCE(p_c, u)`` if u > 0, negative terms ``0.75 * p_k**2 * BCE(p_k, 0)``.
       BCE's logs are clamped at -100 as in Paddle and PyTorch.
    3. Dynamic k: ``k_g = max(1, floor(sum of the candidate_topk largest candidate IoUs of g))``;
       g claims its k_g lowest-cost candidates (ties: lowest prior index), see ``dynamic_k``.
    4. Conflicts: a prior claimed by several GTs goes to the claimant of lowest cost.
    5. Targets: the GT's class and box; ``assigned_scores`` is one-hot times the IoU of the
       prediction with the GT (PaddleDetection's SimOTA loss with VFL, YOLOX's IoU-aware target).
       ``gts.scores`` is not used.

    Differences from the references, and why:
    - Candidate scope: the references cost every GT against every prior that is a candidate of
      *any* GT of the image (penalised by the outside penalty when not in g's box and centre), and
      sum g's top-k IoUs over all of them. Here a GT's candidates are its own region only: the
      dense [B, n, L] cost is what makes the references slow, and the other GTs' priors only enter
      when g has fewer than k_g priors in its box and centre region, or through predicted boxes
      of distant priors overlapping g (rare once the head is trained).
    - Conflicts: the references re-pick a contested prior's GT by the minimum cost over *all*
      GTs, claimant or not; here among claimants only (``conflicts``), so that a prior never goes to
      a GT that did not choose it.
    - The penalty is applied exactly, as an order: every penalised candidate ranks after every
      unpenalised one, and penalised ones rank by their cost (in a GT's ranking and among a
      prior's claimants). That is the references' sum whenever the cost is below M, without the
      float32 rounding of ``cost + M`` (1/128 at 1e5, 8 at 1e8), which ties penalised candidates
      of different cost and leaves their order to the index.
    - PaddleDetection's ``use_vfl`` cost adds ``iou_weight * GIoU`` (the overlap itself, which
      favours worse boxes); here the IoU cost is ``-log(IoU)`` in both modes, as in YOLOX.
    - Prior centres: the given prior points (PaddleDetection's ``flatten_center_and_stride``);
      YOLOX uses the cell's top-left + 0.5 stride, the same points with grid_cell_offset 0.5.

    Host synchronisations per call: one (the number of candidate pairs and the largest per GT,
    fetched with the GT label/box check).

    Args:
        center_radius (float): half-side of the centre region, in strides (> 0).
        candidate_topk (int): IoUs summed for the dynamic k (>= 1).
        iou_weight (float): weight of the IoU cost (>= 0).
        cls_weight (float): weight of the classification cost (>= 0).
        num_classes (int): C, also the background label.
        use_vfl (bool): varifocal classification cost with the IoU as target (see 2.).
    Raises:
        TypeError, ValueError: an argument of the wrong type or out of range.
    """
    needs_preds = True

    def __init__(self, center_radius=2.5, candidate_topk=10, iou_weight=3.0, cls_weight=1.0,
                 num_classes=80, use_vfl=True):
        super().__init__(num_classes)
        owner = type(self).__name__
        check_number(owner, 'center_radius', center_radius, low=0, low_open=True)
        check_int(owner, 'candidate_topk', candidate_topk, minimum=1)
        check_number(owner, 'iou_weight', iou_weight, low=0)
        check_number(owner, 'cls_weight', cls_weight, low=0)
        check_int(owner, 'num_classes', num_classes, minimum=1)
        check_bool(owner, 'use_vfl', use_vfl)
        self.center_radius = center_radius
        self.candidate_topk = candidate_topk
        self.iou_weight = iou_weight
        self.cls_weight = cls_weight
        self.use_vfl = use_vfl

    @paddle.no_grad()
    def assign(self, priors, gts, preds=None):
        """Assign priors to GT boxes (see ``base.BaseAssigner.assign`` and the class docstring).

        Args:
            priors (Priors): ``points``, ``strides``, ``level_shapes`` are used (a row-major grid
                per level, as ``grid_priors`` builds).
            gts (GTs): padded GT.
            preds (Preds): ``scores [B, L, C]`` probabilities, ``bboxes [B, L, 4]`` pixels.
        Returns:
            AssignResult.
        Raises:
            TypeError, ValueError: ``preds`` missing, inputs of the wrong shape or dtype, a real
                GT with a class outside ``[0, C)`` or a non-finite box.
        """
        owner = type(self).__name__
        sizes = {'L': (priors.points.shape[0], 'priors.points')}
        check_gt_inputs(owner, gts.labels, gts.bboxes, gts.mask, sizes)
        if preds is None:
            raise ValueError(f'{owner}.assign needs preds (predicted scores and boxes)')
        check_tensor(owner, 'preds.scores', preds.scores, ['B', 'L', self.num_classes], sizes,
                     dtypes=('float32',))
        check_tensor(owner, 'preds.bboxes', preds.bboxes, ['B', 'L', 4], sizes,
                     dtypes=('float32',))
        batch_size, num_gts = gts.bboxes.shape[:2]
        num_priors = priors.points.shape[0]
        if num_gts == 0 or num_priors == 0 or batch_size == 0:
            return background_result(batch_size, num_priors, self.num_classes, gts.labels.dtype)

        axes = grid_axes(priors)
        boxes = gts.bboxes.reshape([-1, 4])
        is_real = gts.mask.reshape([-1]) > 0
        num_levels = axes.xs.shape[0]
        rects = self._regions(axes, boxes, num_levels)
        counts = rect_counts(*rects['hull'], is_real)
        gt_len = counts.sum(1)
        num_pairs, max_len = fetch_sizes(owner, gt_len, gts, self.num_classes)
        num_flat = batch_size * num_priors
        if num_pairs == 0:
            return build_result(paddle.full([batch_size, num_priors], BACKGROUND, dtype='int64'),
                                gts, self.num_classes)

        pairs = list_pairs(axes, *rects['hull'], counts, num_pairs)
        seg = pairs.gt_row * num_levels + pairs.level
        in_box = _inside(rects['box'], seg, pairs)
        in_center = _inside(rects['center'], seg, pairs)
        flat_prior = (pairs.gt_row // num_gts) * num_priors + pairs.prior
        iou = bbox_iou(paddle.gather(preds.bboxes.reshape([-1, 4]), flat_prior),
                       paddle.gather(boxes, pairs.gt_row), PRED_IOU_EPS)
        cost = self._cost(preds.scores.reshape([-1, self.num_classes]), gts, pairs, flat_prior,
                          iou)
        # Hull cells outside both regions stay listed (no new synchronisation) but are no
        # candidates.
        candidate = paddle.logical_or(in_box, in_center)
        gt_start = paddle.cumsum(gt_len) - gt_len
        gt_index, pos_iou = dynamic_k_matching(
            cost, iou, pairs.gt_row, flat_prior, gt_start, gt_len, max_len, num_gts, num_flat,
            self.candidate_topk, valid=candidate,
            penalised=paddle.logical_not(paddle.logical_and(in_box, in_center)))
        return build_result(gt_index.reshape([batch_size, num_priors]), gts, self.num_classes,
                            pos_iou.reshape([batch_size, num_priors]))

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

    def _cost(self, scores, gts, pairs, flat_prior, iou):
        """``[P]`` cost without the outside penalty (``dynamic_k_matching`` applies it): the
        zero-target terms of all classes are summed once per prior, then the GT class's term is
        swapped for its own (``dynamic_k``)."""
        labels = paddle.gather(gts.labels.reshape([-1]).astype('int64'), pairs.gt_row)
        p = paddle.gather(scores.reshape([-1]), flat_prior * self.num_classes + labels)
        log_p, log_q = clamped_log(p), clamped_log(1 - p)
        if self.use_vfl:
            # zero target: 0.75 * p**2 * BCE(p, 0); target u > 0: u * BCE(p, u)
            background = -VFL_ALPHA * per_prior_sum(scores, _p2_log_q)
            negative = -VFL_ALPHA * (p * p) * log_q
            positive = -iou * (iou * log_p + (1 - iou) * log_q)
            own = paddle.where(iou > 0, positive, negative)
            cls = paddle.gather(background, flat_prior) - negative + own
        else:
            # zero target: BCE(p, 0) = -log(1 - p); target 1: BCE(p, 1) = -log(p)
            background = -per_prior_sum(scores, lambda q: clamped_log(1 - q))
            cls = paddle.gather(background, flat_prior) + log_q - log_p
        return cls * self.cls_weight - self.iou_weight * paddle.log(iou + IOU_COST_EPS)


def _p2_log_q(p):
    """p**2 * clamped log(1 - p)."""
    return clamped_log(1 - p) * (p * p)


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
