"""Classification losses of PP-YOLOE, computed on probabilities (the head applies the sigmoid).

Both return the *sum* over all anchors and classes; the caller divides by the sum of the
assigned scores, so that an image with many positives does not outweigh one with few.
"""

import paddle.nn.functional as F

from ppdet_lite.modeling.checks import check_tensor

__all__ = ['varifocal_loss', 'focal_loss']


def varifocal_loss(pred_score, gt_score, label, alpha=0.75, gamma=2.0):
    """Varifocal loss (arXiv:2008.13367) in PP-YOLOE's form.

    ``weight = alpha * p^gamma * (1 - label) + q * label`` and
    ``loss = sum(weight * BCE(p, q))``: positives are weighted by their own soft target q
    (IoU-aware), so well-localised positives count more; negatives are down-weighted by
    ``alpha * p^gamma`` as in focal loss. Unlike the VFL paper, the negative part uses the
    one-hot ``label`` rather than ``q > 0``, so a positive anchor's *other* classes are
    treated as negatives too.

    Args:
        pred_score (Tensor): [B, L, C] float32 predicted probabilities p in (0, 1).
        gt_score (Tensor): [B, L, C] float32 soft targets q in [0, 1] (0 off the assigned class).
        label (Tensor): [B, L, C] float32 one-hot of the assigned class (all zero for background).
    Returns:
        Tensor: 0-D float32 sum.
    Raises:
        ValueError: the three shapes differ (checked statically).
    """
    sizes = {}
    for name, t in (('pred_score', pred_score), ('gt_score', gt_score), ('label', label)):
        check_tensor('varifocal_loss', name, t, ['B', 'L', 'C'], sizes)
    weight = alpha * pred_score.pow(gamma) * (1 - label) + gt_score * label
    return F.binary_cross_entropy(pred_score, gt_score, weight=weight, reduction='sum')


def focal_loss(score, label, alpha=0.25, gamma=2.0):
    """Focal loss (arXiv:1708.02002) with soft targets.

    ``weight = (p - q)^gamma * (alpha * q + (1 - alpha) * (1 - q))`` and
    ``loss = sum(weight * BCE(p, q))``. ``alpha <= 0`` drops the class-balance factor
    (PP-YOLOE does so in its task-aligned epochs, whose soft targets are already normalised).

    Args:
        score (Tensor): [B, L, C] float32 predicted probabilities p.
        label (Tensor): [B, L, C] float32 targets q in [0, 1] (soft or one-hot).
    Returns:
        Tensor: 0-D float32 sum.
    Raises:
        ValueError: the two shapes differ (checked statically).
    """
    sizes = {}
    for name, t in (('score', score), ('label', label)):
        check_tensor('focal_loss', name, t, ['B', 'L', 'C'], sizes)
    weight = (score - label).pow(gamma)
    if alpha > 0:
        weight = weight * (alpha * label + (1 - alpha) * (1 - label))
    return F.binary_cross_entropy(score, label, weight=weight, reduction='sum')
