"""Detection losses; importing this package registers ``GIoULoss``."""

from .dfl import dfl_targets, distribution_focal_loss
from .iou_loss import GIoULoss
from .ppyoloe_loss import PPYOLOELoss
from .varifocal_loss import focal_loss, varifocal_loss

__all__ = ['GIoULoss', 'PPYOLOELoss', 'dfl_targets', 'distribution_focal_loss', 'focal_loss',
           'varifocal_loss']
