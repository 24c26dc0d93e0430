"""Label assigners: which anchors are positives for which GT box, and their training targets.

Every assigner is batched over images (GT padded to ``n`` slots, ``pad_gt_mask`` marks the real
ones), runs without gradients and returns an ``AssignResult`` triple
``(assigned_labels [B, L], assigned_bboxes [B, L, 4], assigned_scores [B, L, C])``.
"""

from .base import AssignResult, background_result, build_result
from .atss_assigner import ATSSAssigner
from .task_aligned_assigner import TaskAlignedAssigner

__all__ = ['AssignResult', 'background_result', 'build_result', 'ATSSAssigner',
           'TaskAlignedAssigner']
