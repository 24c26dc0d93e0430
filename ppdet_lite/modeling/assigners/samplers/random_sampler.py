"""RandomSampler: a fixed budget of priors per image, positives first, drawn uniformly at random.

mmdet's ``RandomSampler`` (``mmdet/core/bbox/samplers/random_sampler.py`` with ``BaseSampler``),
PaddleDetection's ``subsample_labels`` (``ppdet/modeling/proposal_generator/target.py``, RPN's
``batch_size_per_im`` / ``fg_fraction``). Per image:

1. positives: at most ``int(num * pos_fraction)`` of the image's positives, uniformly at random;
2. negatives: the rest of the budget, ``num`` minus the positives kept, capped at
   ``int(neg_pos_ub * max(1, positives kept))`` when ``neg_pos_ub >= 0`` (mmdet's cap; the
   ``max(1, .)`` lets an image without positives keep ``neg_pos_ub`` negatives), uniformly at
   random among the negatives;
3. every other prior is ignored (``BaseSampler.sample``).

"Uniformly at random" is a uniform float32 key per prior and the first keys of each image
(``base.random_ranking``): every subset of the requested size is equally likely, images are
sampled independently in one batched pass, and ``paddle.seed`` reproduces the draw. mmdet's
``add_gt_as_proposals`` has no meaning here (the priors are fixed anchors, not proposals).
No host synchronisation.
"""

import paddle

from ppdet_lite.core.workspace import register
from ...checks import check_int, check_number
from ..base import BACKGROUND
from .base import BaseSampler, count_of, random_ranking

__all__ = ['RandomSampler']


@register
class RandomSampler(BaseSampler):
    """Uniform random sampling of positives and negatives.

    Args:
        num (int): priors kept per image (positives plus negatives), >= 1; default 256
            (PaddleDetection's RPN ``batch_size_per_im``).
        pos_fraction (float): at most ``int(num * pos_fraction)`` positives, in [0, 1];
            default 0.5 (RPN's ``fg_fraction``).
        neg_pos_ub (float): negatives at most ``neg_pos_ub`` times the positives kept (at least
            once ``neg_pos_ub``); -1 (or any negative value) for no cap.
    Raises:
        TypeError, ValueError: an argument of the wrong type or out of range.
    """

    def __init__(self, num=256, pos_fraction=0.5, neg_pos_ub=-1):
        owner = type(self).__name__
        check_int(owner, 'num', num, minimum=1)
        check_number(owner, 'pos_fraction', pos_fraction, low=0, high=1)
        check_number(owner, 'neg_pos_ub', neg_pos_ub)
        self.num = num
        self.pos_fraction = pos_fraction
        self.neg_pos_ub = neg_pos_ub

    def keep_mask(self, gt_index, max_iou, preds):
        ranking = random_ranking(gt_index.shape)
        num_expected_pos = paddle.full([gt_index.shape[0], 1], int(self.num * self.pos_fraction),
                                       dtype='int64')
        positives = ranking.first(gt_index >= 0, num_expected_pos)
        quota = self.negative_quota(count_of(positives))
        negatives = self.sample_negatives(gt_index == BACKGROUND, quota, ranking, max_iou)
        return paddle.logical_or(positives, negatives)

    def negative_quota(self, num_pos):
        """Negatives to draw per image (mmdet's ``num_expected_neg``): ``[B, 1]`` int64 from the
        positives kept ``num_pos [B, 1]`` int64."""
        quota = self.num - num_pos
        if self.neg_pos_ub >= 0:
            # float64 so that the product rounds as mmdet's Python int(neg_pos_ub * pos) does
            cap = paddle.clip(num_pos, min=1).astype('float64') * float(self.neg_pos_ub)
            cap = paddle.floor(cap)
            quota = paddle.minimum(quota, cap.astype('int64'))
        return quota

    def sample_negatives(self, negatives, quota, ranking, max_iou):
        """``quota [B, 1]`` of the ``negatives [B, L]`` bool, in ``ranking`` order (uniform)."""
        return ranking.first(negatives, quota)
