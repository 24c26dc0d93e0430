"""Distribution focal loss (GFL, arXiv:2006.04388) for PP-YOLOE's discretised box sides.

Each side (left, top, right, bottom distance from the anchor point, in strides) is predicted as a
softmax over ``reg_max + 1`` bins 0, 1, ..., reg_max; its value is the expectation. A real-valued
target t between bins i = floor(t) and i + 1 is learnt as cross-entropy towards both neighbours,
weighted by closeness: ``(i + 1 - t) * CE(i) + (t - i) * CE(i + 1)``, minimised when the
distribution puts exactly that mass on the two bins (whose expectation is then t).
"""

import paddle
import paddle.nn.functional as F

from ppdet_lite.modeling.bbox_utils import bbox2distance
from ppdet_lite.modeling.checks import check_int, check_tensor

__all__ = ['dfl_targets', 'distribution_focal_loss']

# PaddleDetection's margin below the last bin.
DFL_TARGET_MARGIN = 0.01


def dfl_targets(points, bboxes, reg_max):
    """Box sides as DFL targets.

    Args:
        points (Tensor): [..., 2] anchor points x, y, in strides (grid units).
        bboxes (Tensor): [..., 4] boxes x1y1x2y2 in the same units.
        reg_max (int): index of the last bin, >= 1.
    Returns:
        Tensor: [..., 4] float32 ltrb distances clipped to [0, reg_max - 0.01]. The clip stays
        just below the last bin, as PaddleDetection does, so that floor(t) + 1 (the right
        neighbour bin) always exists; a side longer than reg_max strides is learnt as reg_max.
    """
    check_int('dfl_targets', 'reg_max', reg_max, minimum=1)
    return bbox2distance(points, bboxes, max_dis=reg_max, eps=DFL_TARGET_MARGIN)


def distribution_focal_loss(pred_dist, target):
    """
    Args:
        pred_dist (Tensor): [N, 4, reg_max + 1] float32 logits, one distribution per side.
        target (Tensor): [N, 4] float32 targets in [0, reg_max) (see ``dfl_targets``).
    Returns:
        Tensor: [N, 1] float32 loss of each box, averaged over its four sides.
    Raises:
        ValueError: shapes other than the above (checked statically).
    """
    sizes = {}
    check_tensor('distribution_focal_loss', 'pred_dist', pred_dist, ['N', 4, None], sizes)
    check_tensor('distribution_focal_loss', 'target', target, ['N', 4], sizes)
    target_left = paddle.cast(target.floor(), 'int64')
    target_right = target_left + 1
    # Each bin's weight is the distance from the target to the *other* bin.
    weight_left = target_right.astype('float32') - target
    weight_right = 1 - weight_left
    loss_left = F.cross_entropy(pred_dist, target_left, reduction='none') * weight_left
    loss_right = F.cross_entropy(pred_dist, target_right, reduction='none') * weight_right
    return (loss_left + loss_right).mean(-1, keepdim=True)
