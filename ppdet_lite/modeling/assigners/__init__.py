"""Label assigners: which priors are positives for which GT box, and their training targets.

Every assigner implements ``assign(priors, gts, preds=None) -> AssignResult`` (see ``base``),
batched over images with GT padded to ``n`` slots, without gradients.
"""

from .base import (BACKGROUND, IGNORED, AssignResult, BaseAssigner, GTs, Preds, Priors,
                   background_result, build_result, grid_priors)
from .conflicts import resolve_conflicts, resolve_conflicts_pairs
from .ordering import arg_best, order_key, topk_lowest_index
from .atss_assigner import ATSSAssigner
from .task_aligned_assigner import TaskAlignedAssigner
from .fcos_assigner import FCOSAssigner
from .yolov3_assigner import YOLOv3Assigner
from .simota_assigner import SimOTAAssigner
from .dynamic_soft_label_assigner import DynamicSoftLabelAssigner
from .max_iou_assigner import MaxIoUAssigner
from .samplers import BaseSampler, IoUBalancedNegSampler, OHEMSampler, RandomSampler

__all__ = ['BACKGROUND', 'IGNORED', 'AssignResult', 'BaseAssigner', 'GTs', 'Preds', 'Priors',
           'grid_priors', 'background_result', 'build_result', 'resolve_conflicts',
           'resolve_conflicts_pairs', 'arg_best', 'order_key', 'topk_lowest_index',
           'ATSSAssigner', 'TaskAlignedAssigner', 'FCOSAssigner', 'YOLOv3Assigner',
           'SimOTAAssigner', 'DynamicSoftLabelAssigner',
           'MaxIoUAssigner', 'BaseSampler', 'RandomSampler', 'IoUBalancedNegSampler', 'OHEMSampler']
