"""What samplers share: the sampled result, and picking the first ``count`` candidates of a row.

A sampler keeps some of an assignment's positives and negatives and turns every other prior into an
ignored one (``gt_index`` ``IGNORED``, ``ignore_mask`` True, background label, zero scores), so
the loss leaves it out through the ignore mask, as mmdet's ``SamplingResult`` leaves unsampled
priors out of the loss. Priors the assigner already ignored stay ignored.

Every choice of "``count`` of these candidates" in a sampler is the same operation: rank the
priors of each image once by a key (random for uniform sampling, a loss for hard mining), then
keep, per image, the candidates whose rank among the candidates is below that image's count. The
counts are tensors, so nothing is copied to the host and there is no loop over images.
"""

import paddle

from ..base import IGNORED, AssignResult
from ..ordering import order_key

__all__ = ['BaseSampler', 'Ranking', 'random_ranking', 'count_of']


class BaseSampler(object):
    """Base class of the samplers.

    Subclasses implement ``keep_mask`` and set ``needs_preds`` (True when they read ``preds``).
    """
    needs_preds = False

    def sample(self, result, gts, max_iou=None, preds=None):
        """Keep the sampled priors of an assignment, ignore the rest.

        Args:
            result (AssignResult): the assignment, ``B`` images of ``L`` priors, ``C`` classes.
            gts (GTs): the GT batch of ``result`` (its slot 0 box is the box of ignored priors,
                see ``base``).
            max_iou (Tensor|None): ``[B, L]`` float32, each prior's largest IoU with a real GT of
                its image (0 without one); read by samplers that balance by IoU.
            preds (Preds|None): detached predictions; read by samplers with ``needs_preds``.
        Returns:
            AssignResult: ``result`` with the unsampled priors ignored.
        """
        gt_index = result.gt_index
        batch_size, num_priors = gt_index.shape
        if num_priors == 0:
            return result
        keep = self.keep_mask(gt_index, max_iou, preds)
        gt_index = paddle.where(keep, gt_index, paddle.full_like(gt_index, IGNORED))
        labels = result.assigned_labels
        num_classes = result.assigned_scores.shape[-1]
        labels = paddle.where(keep, labels, paddle.full_like(labels, num_classes))
        if gts.bboxes.shape[1] == 0:
            slot0 = paddle.zeros([batch_size, 1, 4], dtype='float32')
        else:
            slot0 = gts.bboxes[:, :1, :]
        bboxes = paddle.where(keep.unsqueeze(-1), result.assigned_bboxes,
                              slot0.expand([batch_size, num_priors, 4]))
        scores = result.assigned_scores * keep.unsqueeze(-1).astype('float32')
        return AssignResult(labels, bboxes, scores, gt_index, gt_index == IGNORED)

    def keep_mask(self, gt_index, max_iou, preds):
        """``[B, L]`` bool: the priors the loss sees (``gt_index [B, L]`` int64, see ``sample``)."""
        raise NotImplementedError(f'{type(self).__name__} does not implement keep_mask()')


class Ranking(object):
    """The priors of every image in the order of an int64 key, largest first.

    Args:
        key (Tensor): ``[B, L]`` int64, distinct within each row (``ordering.order_key`` makes
            such keys from float values, equal values to the lowest index first).
    """

    def __init__(self, key):
        self.order = paddle.argsort(key, axis=1, descending=True)
        self.inverse = paddle.argsort(self.order, axis=1)

    def first(self, candidates, count):
        """The first ``count`` candidates of each row in key order.

        Args:
            candidates (Tensor): ``[B, L]`` bool.
            count (Tensor): ``[B, 1]`` int64 (any value; <= 0 keeps none).
        Returns:
            Tensor: ``[B, L]`` bool, a subset of ``candidates`` with ``min(count, candidates)``
            priors per row.
        """
        ranked = paddle.take_along_axis(candidates.astype('int64'), self.order, axis=1)
        rank = paddle.cumsum(ranked, axis=1) - 1
        taken = paddle.logical_and(ranked > 0, rank < count).astype('int64')
        return paddle.take_along_axis(taken, self.inverse, axis=1) > 0


def random_ranking(shape):
    """A uniformly random order of each row of ``shape [B, L]`` (from Paddle's global generator,
    so ``paddle.seed`` makes it reproducible). Keys are uniform float32 draws; two equal draws
    (one chance in 2**24 per pair) are ordered lowest index first."""
    return Ranking(order_key(paddle.rand(shape, dtype='float32'), axis=1, largest=True))


def count_of(mask):
    """``[B, L]`` bool -> ``[B, 1]`` int64: how many are True in each row."""
    return mask.astype('int64').sum(axis=1, keepdim=True)
