"""MaxIoUAssigner: each prior takes the GT it overlaps most, by IoU thresholds (RetinaNet, Faster
R-CNN), optionally followed by a sampler.

Ren et al., "Faster R-CNN", NeurIPS 2015 (RPN labels); Lin et al., "Focal Loss for Dense Object
Detection", ICCV 2017 (RetinaNet: positive at IoU >= 0.5, negative below 0.4, ignored between).
Reference implementations: mmdet's ``MaxIoUAssigner`` (``mmdet/core/bbox/assigners/
max_iou_assigner.py``, whose argument names are used) and PaddleDetection's ``label_box``
(``ppdet/modeling/proposal_generator/target.py``, its RPN/R-CNN target assignment). Per image:

1. quality: the IoU of every prior box (``priors.boxes``) with every real GT (padded slots never
   count); each prior's best GT is the one it overlaps most (equal IoUs: the lowest slot);
2. negatives: priors whose best IoU is below ``neg_iou_thr`` (or within ``[lo, hi)`` when it is a
   pair; outside the pair they are ignored);
3. positives: priors whose best IoU is at least ``pos_iou_thr``, for their best GT;
4. low-quality matches (``match_low_quality``): each GT whose largest IoU with any prior is at
   least ``min_pos_iou`` and above 0 claims its best prior(s): every prior at exactly that IoU
   (``gt_max_assign_all``) or the lowest-index one. A claim overrides steps 2 and 3 (so a GT
   gets a positive even if another GT overlaps that prior more, as in mmdet);
5. conflicts: a prior claimed in step 4 by several GTs goes to the claimant with the highest IoU
   with it, equal IoUs to the lowest slot (``conflicts.resolve_conflicts``' rule ``'max'``;
   computed by ranking the GTs, see ``_low_quality_matches``);
6. everything else is ignored (``gt_index`` -2): neither positive nor negative;
7. sampling (``sampler``, optional): keeps some positives and negatives, ignores the rest
   (``samplers``);
8. targets: the assigned GT's label and box; classification score 1 (the GT's ``gts.scores``
   when given), i.e. hard targets.

Where it differs from mmdet, and why:
- step 5: mmdet loops over the GTs, so the *last* slot claiming a prior wins it; the claimant
  that overlaps the prior most is the stated, order-independent choice;
- step 4 needs IoU > 0: with mmdet's default ``min_pos_iou=0`` a GT that overlaps no prior
  (degenerate or outside the priors) would make every prior of the image its positive (IoU 0 ==
  its maximum). PaddleDetection's ``label_box`` (and detectron2's matcher) also require IoU > 0;
- an image without real GT: every prior negative, whatever the band (as mmdet);
- ``neg_iou_thr`` above ``pos_iou_thr`` is refused (mmdet lets step 3 overwrite step 2), and so
  is ``pos_iou_thr`` 0 (every prior would be positive);
- mmdet's crowd-box options (``ignore_iof_thr``, ``gt_bboxes_ignore``) are not supported (the GT
  batch carries no crowd boxes); its ``gpu_assign_thr`` device switch has no use here.
PaddleDetection's ``label_box`` differs in step 4 (a low-quality match becomes positive for its
own best GT, not for the claiming GT) and has no ``min_pos_iou``.

Cost: dense over ``[B, n, L]`` (the definition needs every prior's best IoU; the IoU is computed
on coordinate planes, ``bbox_utils.batch_iou_planes``); no host synchronisation (0 per call; the
samplers add none), hence no check of the GT class ids' range (it needs their values on the host).
"""

import numbers

import paddle

from ppdet_lite.core.workspace import create, register
from ..bbox_utils import batch_iou_planes
from ..checks import check_bool, check_int, check_number, check_tensor
from .base import BACKGROUND, IGNORED, BaseAssigner, background_result, build_result
from .gt_check import check_gt_inputs
from .ordering import arg_best, order_key

__all__ = ['MaxIoUAssigner']

# RetinaNet's negative threshold, used when ``neg_iou_thr`` is None.
DEFAULT_NEG_IOU_THR = 0.4


@register
class MaxIoUAssigner(BaseAssigner):
    """Assign by IoU thresholds, each prior to its best-overlapping GT (0 host synchronisations
    per call, sampler included).

    Args:
        pos_iou_thr (float): positive at best IoU >= pos_iou_thr, in (0, 1]; default 0.5.
        neg_iou_thr (float|list|None): negative at best IoU < neg_iou_thr, or a pair
            ``[lo, hi]`` (negative at lo <= IoU < hi, ignored below lo), with
            ``0 <= lo <= hi <= pos_iou_thr``. None is 0.4 (RetinaNet); it is None rather than
            0.4 only because the config loader type-checks an argument against its default,
            and YAML must be able to give either a number or a pair.
        min_pos_iou (float): a GT's low-quality match needs its best IoU >= min_pos_iou (and
            > 0), in [0, 1].
        gt_max_assign_all (bool): a GT's low-quality match takes every prior at its best IoU
            (True) or only the lowest-index one.
        match_low_quality (bool): step 4 on or off (on for RPN / one-stage heads).
        num_classes (int): C; background label C.
        sampler (str|dict|object|None): a registered sampler's name, a ``{name: ..., **args}``
            dict, a sampler object, or None for no sampling (an ``__inject__`` slot, e.g.
            ``sampler: {name: OHEMSampler}`` in YAML).
    Raises:
        TypeError, ValueError: an argument of the wrong type or out of range; ``assign``: inputs
            of the wrong shape or dtype, ``preds`` missing when the sampler needs them.
    """
    __shared__ = ['num_classes']
    __inject__ = ['sampler']
    needs_preds = False

    def __init__(self, pos_iou_thr=0.5, neg_iou_thr=None, min_pos_iou=0., gt_max_assign_all=True,
                 match_low_quality=True, num_classes=80, sampler=None):
        super().__init__(num_classes)
        owner = type(self).__name__
        check_int(owner, 'num_classes', num_classes, minimum=1)
        check_number(owner, 'pos_iou_thr', pos_iou_thr, low=0, high=1, low_open=True)
        self.neg_band = _neg_band(owner, DEFAULT_NEG_IOU_THR if neg_iou_thr is None
                                  else neg_iou_thr, pos_iou_thr)
        check_number(owner, 'min_pos_iou', min_pos_iou, low=0, high=1)
        check_bool(owner, 'gt_max_assign_all', gt_max_assign_all)
        check_bool(owner, 'match_low_quality', match_low_quality)
        self.pos_iou_thr = pos_iou_thr
        self.neg_iou_thr = neg_iou_thr
        self.min_pos_iou = min_pos_iou
        self.gt_max_assign_all = gt_max_assign_all
        self.match_low_quality = match_low_quality
        self.sampler = _build_sampler(owner, sampler)
        self.needs_preds = bool(self.sampler is not None and self.sampler.needs_preds)

    @paddle.no_grad()
    def assign(self, priors, gts, preds=None):
        """Assign priors to GT boxes (see ``base.BaseAssigner.assign`` and the module docstring).

        Args:
            priors (Priors): reads ``boxes [L, 4]`` float32 x1y1x2y2 pixels.
            gts (GTs): ``labels [B, n, 1]``, ``bboxes [B, n, 4]`` pixels, ``mask [B, n, 1]``.
            preds (Preds|None): passed to the sampler (OHEMSampler reads ``scores [B, L, C]``).
        Returns:
            AssignResult: ``gt_index`` slot / -1 negative / -2 ignored (band or unsampled).
        """
        owner = type(self).__name__
        sizes = {}
        check_gt_inputs(owner, gts.labels, gts.bboxes, gts.mask, sizes, gts.scores)
        check_tensor(owner, 'priors.boxes', priors.boxes, ['L', 4], sizes, dtypes=('float32',))
        if self.needs_preds and preds is None:
            raise ValueError(f'{owner}: its sampler {type(self.sampler).__name__} ranks by the '
                             f'predictions; pass preds')
        gt_index, max_iou = self.match(priors.boxes, gts)
        if gt_index.shape[1] == 0:
            # build_result's gathers fail on Paddle 2.6 with zero priors: nothing to gather
            result = background_result(gt_index.shape[0], 0, self.num_classes, gts.labels.dtype)
        else:
            result = build_result(gt_index, gts, self.num_classes)
        if self.sampler is not None:
            result = self.sampler.sample(result, gts, max_iou, preds)
        return result

    def match(self, prior_boxes, gts):
        """Steps 1-6: ``(gt_index [B, L] int64, max_iou [B, L] float32)``, ``max_iou`` being each
        prior's best IoU with a real GT (0 in an image without one)."""
        batch_size, num_gts = gts.bboxes.shape[:2]
        num_priors = prior_boxes.shape[0]
        if num_gts == 0 or num_priors == 0:
            return (paddle.full([batch_size, num_priors], BACKGROUND, dtype='int64'),
                    paddle.zeros([batch_size, num_priors], dtype='float32'))
        is_real = gts.mask.astype('float32') > 0                          # [B, n, 1]
        # A padded slot becomes an empty box: IoU 0 with every prior. It can then tie a real
        # slot only at IoU 0, where its index is never used: positives need IoU >= pos_iou_thr
        # > 0 and low-quality matches IoU > 0 with a real GT.
        gt_boxes = paddle.where(is_real, gts.bboxes, paddle.zeros_like(gts.bboxes))
        iou = batch_iou_planes(gt_boxes, prior_boxes.unsqueeze(0))       # [B, n, L]
        max_iou = iou.max(axis=1)                                         # [B, L]
        best_gt = _lowest_slot(iou == max_iou.unsqueeze(1))

        lo, hi = self.neg_band
        negative = paddle.logical_and(max_iou >= lo, max_iou < hi)
        no_gt = paddle.logical_not(is_real.any(axis=1))                   # [B, 1]
        negative = paddle.logical_or(negative, no_gt)
        gt_index = paddle.where(negative, paddle.full_like(best_gt, BACKGROUND),
                                paddle.full_like(best_gt, IGNORED))
        gt_index = paddle.where(max_iou >= self.pos_iou_thr, best_gt, gt_index)

        if self.match_low_quality:
            claimed = self._low_quality_matches(iou, is_real)
            gt_index = paddle.where(claimed >= 0, claimed, gt_index)
        return gt_index, max_iou

    def _low_quality_matches(self, iou, is_real):
        """Steps 4 and 5: ``[B, L]`` int64, the GT slot whose low-quality match each prior is
        (the conflicts resolved), ``BACKGROUND`` where none.

        A claim's score, its IoU, is the claiming GT's largest IoU (the prior sits at it), so the
        claimant with the highest IoU is the claimant whose GT ranks first by that maximum, equal
        maxima lowest slot first (``ordering.order_key``): ranking the ``n`` GTs once replaces
        ``conflicts.resolve_conflicts(claims, iou, 'max')`` over ``[B, n, L]`` with the same
        result (tested) at a third of the cost.
        """
        num_gts, num_priors = iou.shape[1:]
        gt_max = iou.max(axis=2, keepdim=True)                            # [B, n, 1]
        eligible = paddle.logical_and(is_real, paddle.logical_and(gt_max >= self.min_pos_iou,
                                                                  gt_max > 0))
        if self.gt_max_assign_all:
            claims = iou == gt_max
        else:
            claims = paddle.arange(num_priors, dtype='int64').reshape([1, 1, -1]) == \
                arg_best(iou, axis=2).unsqueeze(-1)
        claims = paddle.logical_and(claims, eligible)                     # [B, n, L]
        by_rank = paddle.argsort(order_key(gt_max.squeeze(-1), axis=1, largest=True), axis=1,
                                 descending=True)                         # [B, n] slots
        rank = paddle.argsort(by_rank, axis=1).astype('int32').unsqueeze(-1)
        best_rank = paddle.where(claims, rank, paddle.full([1, 1, 1], num_gts, 'int32')).min(axis=1)
        winner = paddle.take_along_axis(by_rank, paddle.clip(best_rank, max=num_gts - 1)
                                        .astype('int64'), axis=1)
        return paddle.where(best_rank < num_gts, winner, paddle.full_like(winner, BACKGROUND))


def _lowest_slot(is_best):
    """``[B, n, L]`` bool -> ``[B, L]`` int64: the lowest slot g with ``is_best[:, g, l]``
    (``ordering``'s tie rule, read off the maximum directly instead of from int64 keys: a third
    of ``arg_best``'s cost over ``[B, n, L]``); n where there is none."""
    num_gts = is_best.shape[1]
    slots = paddle.arange(num_gts, dtype='int32').reshape([1, -1, 1])
    return paddle.where(is_best, slots, paddle.full([1, 1, 1], num_gts, 'int32')).min(
        axis=1).astype('int64')


def _neg_band(owner, value, pos_iou_thr):
    """``neg_iou_thr`` as a ``(lo, hi)`` band: a number t is ``(0, t)``."""
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ValueError(f'{owner}: neg_iou_thr must be a number or a pair [lo, hi], got '
                             f'{value!r}')
        lo, hi = value
        check_number(owner, 'neg_iou_thr[0] (lo)', lo, low=0, high=1)
        check_number(owner, 'neg_iou_thr[1] (hi)', hi, low=0, high=1)
        if lo > hi:
            raise ValueError(f'{owner}: neg_iou_thr [lo, hi] needs lo <= hi, got {value!r}')
    else:
        if not isinstance(value, numbers.Real) or isinstance(value, bool):
            raise TypeError(f'{owner}: neg_iou_thr must be a number or a pair [lo, hi], got '
                            f'{value!r}')
        check_number(owner, 'neg_iou_thr', value, low=0, high=1)
        lo, hi = 0., value
    if hi > pos_iou_thr:
        raise ValueError(f'{owner}: neg_iou_thr {value!r} reaches above pos_iou_thr '
                         f'{pos_iou_thr!r}: a prior cannot be both negative and positive')
    return float(lo), float(hi)


def _build_sampler(owner, sampler):
    """The ``sampler`` argument as an object (config-built heads inject objects already)."""
    if isinstance(sampler, str):
        sampler = create(sampler, cfg={})
    elif isinstance(sampler, dict):
        if 'name' not in sampler:
            raise ValueError(f'{owner}: a sampler dict needs a \'name\' key naming a sampler '
                             f'class, got {sampler!r}')
        args = {k: v for k, v in sampler.items() if k != 'name'}
        sampler = create(sampler['name'], cfg={sampler['name']: args})
    if sampler is not None and not callable(getattr(sampler, 'sample', None)):
        raise TypeError(f'{owner}: sampler must be a sampler (with a sample() method), its '
                        f'registered name, a {{name: ...}} dict or None, got '
                        f'{type(sampler).__name__} {sampler!r}')
    return sampler
