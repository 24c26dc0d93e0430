"""GIoU loss (arXiv:1902.09630) for aligned box pairs, with PaddleDetection's ``GIoULoss`` interface."""

import paddle

from ppdet_lite.core.workspace import register, serializable
from ppdet_lite.modeling.bbox_utils import bbox_giou
from ppdet_lite.modeling.checks import check_number

__all__ = ['GIoULoss']


@register
@serializable
class GIoULoss(object):
    """``loss_weight * (1 - GIoU(pbox, gbox))``, in [0, 2] times the weight.

    GIoU = IoU - (enclosing area - union) / enclosing area; it is negative for disjoint boxes,
    so the loss still pulls a prediction towards a box it does not overlap. ``eps`` is added to
    the union and to the enclosing area (``bbox_utils.bbox_giou``), never to the IoU itself.

    Args:
        loss_weight (float): factor applied after the reduction.
        eps (float): guards the two divisions against empty boxes.
        reduction (str): 'none' (per pair, shape [..., 1]), 'mean' or 'sum' (0-D; ``iou_weight``
            multiplies each pair's loss first).
    """

    def __init__(self, loss_weight=1., eps=1e-10, reduction='none'):
        if reduction not in ('none', 'mean', 'sum'):
            raise ValueError(f"GIoULoss: reduction must be 'none', 'mean' or 'sum', got {reduction!r}")
        check_number('GIoULoss', 'loss_weight', loss_weight)
        check_number('GIoULoss', 'eps', eps, low=0)
        self.loss_weight = loss_weight
        self.eps = eps
        self.reduction = reduction

    def __call__(self, pbox, gbox, iou_weight=1.):
        """
        Args:
            pbox (Tensor): [..., 4] predicted boxes x1y1x2y2 (any unit, same as ``gbox``).
            gbox (Tensor): [..., 4] target boxes.
            iou_weight (float | Tensor): [..., 1] per-pair weight, used by 'mean' and 'sum'.
        Returns:
            Tensor: [..., 1] for 'none' (the trailing 1 keeps PaddleDetection's shape, so a
            per-pair weight [..., 1] multiplies it element-wise), else 0-D.
        """
        giou, _ = bbox_giou(pbox, gbox, self.eps)
        loss = (1 - giou).unsqueeze(-1)
        if self.reduction == 'sum':
            loss = paddle.sum(loss * iou_weight)
        elif self.reduction == 'mean':
            loss = paddle.mean(loss * iou_weight)
        return loss * self.loss_weight
