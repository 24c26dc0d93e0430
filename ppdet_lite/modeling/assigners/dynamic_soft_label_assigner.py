"""Dynamic Soft Label assignment (NanoDet-Plus, RangiLyu 2021; the ``DynamicSoftLabelAssigner``
of nanodet/model/head/assigner/dsl_assigner.py; seed 003)."""

import paddle

from ppdet_lite.core.workspace import register
from ..bbox_utils import bbox_iou
from ..checks import check_int, check_number, check_tensor
from .base import BACKGROUND, BaseAssigner, background_result, build_result
from .dynamic_k import clamped_log, dynamic_k_matching, per_prior_sum
from .grid_candidates import fetch_sizes, grid_axes, index_range, list_pairs, rect_counts
from .gt_check import check_gt_inputs

__all__ = ['DynamicSoftLabelAssigner']

IOU_COST_EPS = 1e-7
# Added to the union of a predicted and a GT box (PaddleDetection's batch_iou_similarity).
PRED_IOU_EPS = 1e-9


@register
class DynamicSoftLabelAssigner(BaseAssigner):
    """Dynamic Soft Label: soft-label costs, dynamic k, lowest cost wins.

    1. Candidates of GT g: priors whose centre (the prior point) is strictly inside g's box.
    2. Cost of (g, prior), with p = the prior's predicted probabilities, c = g's class and
       u = IoU(predicted box, g box) the soft label:
       ``sum_k BCE(p_k, t_k) * |t_k - p_k|**2 + iou_factor * -log(u + 1e-7)``, t = u at class c
       and 0 elsewhere (BCE's logs clamped at -100, as in Paddle and PyTorch).
    3. Dynamic k: ``k_g = max(1, floor(sum of the topk largest candidate IoUs of g))``; g claims its
       k_g lowest-cost candidates (ties: lowest prior index), see ``dynamic_k``.
    4. Conflicts: a prior claimed by several GTs goes to the claimant of lowest cost.
    5. Targets: the GT's class and box; ``assigned_scores`` is one-hot times the IoU of the
       prediction with the GT (the soft label). ``gts.scores`` is not used.

    Differences from NanoDet-Plus, and why:
    - Candidate scope: NanoDet-Plus costs every GT against every prior that is inside *any* GT of
      the image, without a penalty for priors outside g (a GT may take a prior inside another GT
      only; mmdet's version adds a soft centre prior ``10 ** (distance / stride - 3)`` that makes
      this rare), and sums g's top-13 IoUs over all those priors. Here a GT's candidates are the
      priors inside it only (the seed's "in-box filtering" read per GT): the dense [B, n, L] cost
      is what makes the published versions slow. The soft centre prior is not offered.
    - Conflicts: NanoDet-Plus re-picks a contested prior's GT by the minimum cost over *all* GTs,
      claimant or not; here among claimants only (``conflicts``).
    - The classification cost is NanoDet-Plus's sum over all classes (mmdet's too, on logits);
      mmyolo's batched version keeps only the GT class's term.
    - A GT with no prior inside it gets no positive (NanoDet-Plus gives it one of the other GTs'
      priors).

    Host synchronisations per call: one (the number of candidate pairs and the largest per GT,
    fetched with the GT label/box check).

    Args:
        topk (int): IoUs summed for the dynamic k (>= 1).
        iou_factor (float): weight of the IoU cost (>= 0).
        num_classes (int): C, also the background label.
    Raises:
        TypeError, ValueError: an argument of the wrong type or out of range.
    """
    needs_preds = True

    def __init__(self, topk=13, iou_factor=3.0, num_classes=80):
        super().__init__(num_classes)
        owner = type(self).__name__
        check_int(owner, 'topk', topk, minimum=1)
        check_number(owner, 'iou_factor', iou_factor, low=0)
        check_int(owner, 'num_classes', num_classes, minimum=1)
        self.topk = topk
        self.iou_factor = iou_factor

    @paddle.no_grad()
    def assign(self, priors, gts, preds=None):
        """Assign priors to GT boxes (see ``base.BaseAssigner.assign`` and the class docstring).

        Args:
            priors (Priors): ``points`` and ``level_shapes`` are used (a row-major grid per level,
                as ``grid_priors`` builds).
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
        num_levels = axes.xs.shape[0]
        bounds = [boxes[:, i].unsqueeze(0).tile([num_levels, 1]) for i in range(4)]
        c0, c1 = index_range(axes.xs, bounds[0], bounds[2])
        r0, r1 = index_range(axes.ys, bounds[1], bounds[3])
        rect = tuple(t.transpose([1, 0]) for t in (c0, c1, r0, r1))
        counts = rect_counts(*rect, gts.mask.reshape([-1]) > 0)
        gt_len = counts.sum(1)
        num_pairs, max_len = fetch_sizes(owner, gt_len, gts, self.num_classes)
        if num_pairs == 0:
            return build_result(paddle.full([batch_size, num_priors], BACKGROUND, dtype='int64'),
                                gts, self.num_classes)

        pairs = list_pairs(axes, *rect, counts, num_pairs)
        flat_prior = (pairs.gt_row // num_gts) * num_priors + pairs.prior
        iou = bbox_iou(paddle.gather(preds.bboxes.reshape([-1, 4]), flat_prior),
                       paddle.gather(boxes, pairs.gt_row), PRED_IOU_EPS)
        cost = self._cost(preds.scores.reshape([-1, self.num_classes]), gts, pairs.gt_row,
                          flat_prior, iou)
        gt_index, pos_iou = dynamic_k_matching(
            cost, iou, pairs.gt_row, flat_prior, paddle.cumsum(gt_len) - gt_len, gt_len, max_len,
            num_gts, batch_size * num_priors, self.topk)
        return build_result(gt_index.reshape([batch_size, num_priors]), gts, self.num_classes,
                            pos_iou.reshape([batch_size, num_priors]))

    def _cost(self, scores, gts, gt_row, flat_prior, iou):
        """``[P]`` cost (see ``dynamic_k``: zero-label terms summed per prior, GT class swapped)."""
        labels = paddle.gather(gts.labels.reshape([-1]).astype('int64'), gt_row)
        p = paddle.gather(scores.reshape([-1]), flat_prior * self.num_classes + labels)
        # sum_k BCE(p_k, 0) * p_k**2, from the clamped logs of 1 - p_k
        background = -per_prior_sum(scores, _p2_log_q)
        log_p, log_q = clamped_log(p), clamped_log(1 - p)
        soft = -(iou * log_p + (1 - iou) * log_q) * (iou - p) ** 2
        cls = paddle.gather(background, flat_prior) + log_q * (p * p) + soft
        return cls - self.iou_factor * paddle.log(iou + IOU_COST_EPS)


def _p2_log_q(p):
    """p**2 * clamped log(1 - p) = -BCE(p, 0) * |0 - p|**2."""
    return clamped_log(1 - p) * (p * p)
