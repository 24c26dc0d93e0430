"""OHEMSampler: SSD's hard negative mining, the negatives with the largest loss.

Liu et al., "SSD: Single Shot MultiBox Detector", ECCV 2016, section 2.2 "Hard negative mining";
PaddleDetection's ``SSDLoss._mine_hard_example`` (``ppdet/modeling/losses/ssd_loss.py``) and
mmdet's ``SSDHead.loss_single``. Per image:

1. every positive is kept;
2. each negative's loss is the binary cross-entropy of its predicted class probabilities against
   an all-zero target, summed over classes: ``sum_c -log(1 - p_c)`` with the log clamped at
   -100 (``paddle.nn.functional.binary_cross_entropy``). SSD's softmax loss of the background
   class becomes this for PP-YOLOE's sigmoid classifier; both grow with every class score;
3. the negatives with the largest loss are kept, ``ceil(neg_pos_ratio * positives)`` of them
   (PaddleDetection keeps ranks below ``neg_pos_ratio * positives``: the same count), and at
   least ``min_neg`` (when the image has that many negatives);
4. every other prior is ignored.

Equal losses (e.g. an untrained head predicting the same scores everywhere) are ranked by
``ordering``'s rule, lowest prior index first. Differences: PaddleDetection's SSD keeps 1% of the
priors as negatives of an image without positives (its ``mine_neg_ratio``), mmdet keeps none;
here an image without positives keeps ``min_neg`` negatives (0 by default, mmdet's choice).
mmdet's ``OHEMSampler`` (a budget of RoIs ranked by the R-CNN head's loss) is a two-stage
sampler and not what is implemented. No host synchronisation.
"""

import math

import paddle
import paddle.nn.functional as F

from ppdet_lite.core.workspace import register
from ...checks import check_int, check_number, check_tensor
from ..base import BACKGROUND
from ..ordering import order_key
from .base import BaseSampler, Ranking, count_of

__all__ = ['OHEMSampler']


@register
class OHEMSampler(BaseSampler):
    """Hard negative mining at a fixed negative:positive ratio.

    Args:
        neg_pos_ratio (float): negatives per positive, >= 0; 3 as in SSD (PaddleDetection's
            ``SSDLoss.neg_pos_ratio``, mmdet's ``train_cfg.neg_pos_ratio``).
        min_neg (int): negatives kept per image at least (fewer only if the image has fewer),
            >= 0.
    Raises:
        TypeError, ValueError: an argument of the wrong type or out of range; at ``sample``,
            ``preds`` missing or its scores not ``[B, L, C]`` float32.
    """
    needs_preds = True

    def __init__(self, neg_pos_ratio=3., min_neg=0):
        owner = type(self).__name__
        check_number(owner, 'neg_pos_ratio', neg_pos_ratio, low=0)
        if isinstance(neg_pos_ratio, float) and math.isinf(neg_pos_ratio):
            raise ValueError(f'{owner}: neg_pos_ratio must be finite, got {neg_pos_ratio!r}')
        check_int(owner, 'min_neg', min_neg, minimum=0)
        self.neg_pos_ratio = neg_pos_ratio
        self.min_neg = min_neg

    def keep_mask(self, gt_index, max_iou, preds):
        owner = type(self).__name__
        if preds is None:
            raise ValueError(f'{owner}: needs preds (the detached predicted scores) to rank '
                             f'negatives by loss; got None')
        batch_size, num_priors = gt_index.shape
        check_tensor(owner, 'preds.scores', preds.scores, [batch_size, num_priors, None],
                     dtypes=('float32',))
        loss = F.binary_cross_entropy(preds.scores, paddle.zeros_like(preds.scores),
                                      reduction='none').sum(axis=-1)
        ranking = Ranking(order_key(loss, axis=1, largest=True))
        positives = gt_index >= 0
        quota = paddle.ceil(count_of(positives).astype('float64') * float(self.neg_pos_ratio))
        quota = paddle.clip(quota, min=float(self.min_neg)).astype('int64')
        negatives = ranking.first(gt_index == BACKGROUND, quota)
        return paddle.logical_or(positives, negatives)
