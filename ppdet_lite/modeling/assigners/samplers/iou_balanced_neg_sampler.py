"""IoUBalancedNegSampler: Libra R-CNN's IoU-balanced sampling of negatives.

Pang et al., "Libra R-CNN: Towards Balanced Learning for Object Detection", CVPR 2019; mmdet's
``IoUBalancedNegSampler`` and PaddleDetection's ``libra_sample_neg`` /
``libra_sample_via_interval`` (``ppdet/modeling/proposal_generator/target.py``). Hard negatives
(IoU with a GT just below the negative threshold) are rare among random draws; Libra R-CNN splits
the negatives by IoU into equal-width bins and draws evenly from each bin.

Positives and the negative budget ``E`` of an image are RandomSampler's. Negatives, by their
``max_iou`` (each prior's largest IoU with a real GT of its image), per image:

1. floor split (``floor_thr``): > 0: the floor set is IoU in [0, floor_thr), the balanced set IoU
   >= floor_thr; == 0: floor IoU == 0, balanced IoU > 0; < 0 (default -1): everything balanced;
2. if all negatives fit in ``E``: keep them all;
3. balanced set, ``E_b = int(E * (1 - floor_fraction))`` of it: ``num_bins`` bins of equal width
   from ``max(floor_thr, 0)`` to the image's largest ``max_iou`` (over all its priors, positives
   included), bin ``i`` = [start_i, end_i) with ``start_i = base + i * width``; each bin gives up
   to ``E_b // num_bins`` at random, then the balanced set tops the draw up to ``E_b`` at
   random (``num_bins < 2``: ``E_b`` at random, no bins);
4. floor set: up to ``E`` minus what step 3 kept, at random;
5. still short of ``E``: the remaining negatives at random.

This is mmdet's and PaddleDetection's order of steps (the interval uses a floor of 0 when
``floor_thr < 0``, as PaddleDetection and later mmdet do). Each "at random" is a uniform draw
from one random order of the image's priors (``base.random_ranking``), so the whole sampler is a
few cumulative sums over ``[B, L]``: batched, no host synchronisation. Bin edges are computed in
float32 (as mmdet does from float32 IoUs).
"""

import paddle

from ppdet_lite.core.workspace import register
from ...checks import check_int, check_number, check_tensor
from .base import count_of
from .random_sampler import RandomSampler

__all__ = ['IoUBalancedNegSampler']


@register
class IoUBalancedNegSampler(RandomSampler):
    """IoU-balanced negative sampling (positives uniformly at random).

    Args:
        num (int): priors kept per image, >= 1; default 512 (Libra R-CNN's R-CNN stage).
        pos_fraction (float): at most ``int(num * pos_fraction)`` positives, in [0, 1];
            default 0.25.
        floor_thr (float): IoU below which negatives are drawn at random, not by bins; -1 (any
            negative value) for no floor set; in [-1, 1).
        floor_fraction (float): share of the negative budget for the floor set, in [0, 1].
        num_bins (int): IoU bins of the balanced set, >= 1 (1: uniform draw).
        neg_pos_ub (float): RandomSampler's cap on negatives per positive (-1: none).
    Raises:
        TypeError, ValueError: an argument of the wrong type or out of range; at ``sample``,
            ``max_iou`` missing or not ``[B, L]`` float32.
    """

    def __init__(self, num=512, pos_fraction=0.25, floor_thr=-1., floor_fraction=0., num_bins=3,
                 neg_pos_ub=-1):
        super().__init__(num, pos_fraction, neg_pos_ub)
        owner = type(self).__name__
        check_number(owner, 'floor_thr', floor_thr, low=-1, high=1, high_open=True)
        check_number(owner, 'floor_fraction', floor_fraction, low=0, high=1)
        check_int(owner, 'num_bins', num_bins, minimum=1)
        self.floor_thr = floor_thr
        self.floor_fraction = floor_fraction
        self.num_bins = num_bins

    def sample_negatives(self, negatives, quota, ranking, max_iou):
        owner = type(self).__name__
        if max_iou is None:
            raise ValueError(f'{owner}: needs max_iou [B, L], each prior\'s largest IoU with a '
                             f'GT (MaxIoUAssigner passes it); got None')
        check_tensor(owner, 'max_iou', max_iou, list(negatives.shape), dtypes=('float32',))
        if self.floor_thr > 0:
            floor = paddle.logical_and(negatives, max_iou < self.floor_thr)
            balanced = paddle.logical_and(negatives, max_iou >= self.floor_thr)
        elif self.floor_thr == 0:
            floor = paddle.logical_and(negatives, max_iou == 0)
            balanced = paddle.logical_and(negatives, max_iou > 0)
        else:
            floor = paddle.zeros_like(negatives)
            balanced = negatives
        # float64: rounds as mmdet's Python int(num_expected * (1 - floor_fraction))
        quota_balanced = paddle.floor(quota.astype('float64') * (1. - self.floor_fraction))
        quota_balanced = paddle.clip(quota_balanced.astype('int64'), min=0)

        binned = self._draw_per_bin(balanced, quota_balanced, ranking, max_iou)
        rest = paddle.logical_and(balanced, paddle.logical_not(binned))
        primary = paddle.logical_or(binned, ranking.first(rest, quota_balanced - count_of(binned)))
        kept_floor = ranking.first(floor, quota - count_of(primary))
        kept = paddle.logical_or(primary, kept_floor)
        extra = ranking.first(paddle.logical_and(negatives, paddle.logical_not(kept)),
                              quota - count_of(kept))
        return paddle.logical_or(kept, extra)

    def _draw_per_bin(self, balanced, quota_balanced, ranking, max_iou):
        """Up to ``quota_balanced // num_bins`` of ``balanced`` from each IoU bin: ``[B, L]``
        bool."""
        drawn = paddle.zeros_like(balanced)
        if self.num_bins < 2:
            return drawn
        base = max(float(self.floor_thr), 0.)
        top = max_iou.max(axis=1, keepdim=True)
        width = (top - base) / self.num_bins
        per_bin = quota_balanced // self.num_bins
        for i in range(self.num_bins):
            start, end = base + i * width, base + (i + 1) * width
            in_bin = paddle.logical_and(balanced, paddle.logical_and(max_iou >= start,
                                                                     max_iou < end))
            drawn = paddle.logical_or(drawn, ranking.first(in_bin, per_bin))
        return drawn
