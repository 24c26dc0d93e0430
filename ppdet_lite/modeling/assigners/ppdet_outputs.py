"""What PaddleDetection 2.6's assigners return from their positional ``forward``.

Its ATSSAssigner and TaskAlignedAssigner (2.6.0 tag) return four values, the fourth being
``mask_positive [B, n, L]`` float32 (1 where prior l is assigned to GT slot g), which its own
PPYOLOE head unpacks; with no GT slot at all (``n == 0``) they return the first three only.
"""

import paddle.nn.functional as F

__all__ = ['ppdet_outputs']


def ppdet_outputs(result, num_gts):
    """PaddleDetection's return value from an ``AssignResult``.

    Args:
        result (AssignResult): the assignment, ``gt_index [B, L]``.
        num_gts (int): n, GT slots per image.
    Returns:
        tuple: ``(assigned_labels, assigned_bboxes, assigned_scores, mask_positive [B, n, L]
        float32)``; ``(assigned_labels, assigned_bboxes, assigned_scores)`` when ``n == 0``.
    """
    if num_gts == 0:
        return tuple(result[:3])
    # Slot g + 1 of a one-hot over n + 1 classes; class 0 collects background and ignored priors.
    one_hot = F.one_hot(result.gt_index.clip(min=-1) + 1, num_gts + 1)[..., 1:]
    return tuple(result[:3]) + (one_hot.transpose([0, 2, 1]).astype('float32'),)
