"""PP-YOLOE's training loss: label assignment, then classification, GIoU, DFL and L1 terms.

Units: the head predicts boxes in *strides* (grid units of each anchor's level); assigners work in
input-image pixels. This module converts between the two and computes every regression term in
strides, as PaddleDetection does, so the loss values are identical to its PPYOLOEHead's.

Normalisation: classification, GIoU and DFL sums are divided by the sum of all assigned soft
scores in the batch (averaged over ranks when distributed, and at least 1), so the loss scale does
not depend on how many anchors were assigned or on the per-rank batch composition.
"""

import numbers

import paddle
import paddle.nn.functional as F

from ..checks import check_bool, check_choice, check_int, check_number, check_tensor
from .dfl import dfl_targets, distribution_focal_loss
from .iou_loss import GIoULoss
from .varifocal_loss import focal_loss, varifocal_loss

__all__ = ['PPYOLOELoss', 'check_targets']

# Class-balance factor of the focal loss (when VFL is off): 0.25 with the static (ATSS) assigner's
# IoU targets; none with the task-aligned assigner, whose targets are already normalised per GT.
STATIC_FOCAL_ALPHA = 0.25
DYNAMIC_FOCAL_ALPHA = -1
# The terms of ``loss_weight``; PaddleDetection's head reads exactly these keys.
LOSS_TERMS = ('class', 'iou', 'dfl')
# Target scores of the static phase's positives (see PPYOLOELoss).
STATIC_TARGETS = ('pred_iou', 'hard')

# The training inputs the loss reads (PaddleDetection's names).
TARGET_KEYS = ('gt_class', 'gt_bbox', 'pad_gt_mask', 'epoch_id')


class PPYOLOELoss(object):
    """Loss of ``PPYOLOEHead``; the head builds it from its own config arguments and hands it its
    assigners on every call (they stay the head's sub-layers, as in PaddleDetection).

    Args:
        num_classes (int): C; the assigners' background label is C.
        reg_max (int): last DFL bin; each box side is a distribution over reg_max + 1 bins.
        static_assigner_epoch (int): epochs (0-based ``epoch_id`` below it) using the static
            assigner.
        use_varifocal_loss (bool): VFL if True, else focal loss.
        loss_weight (dict): weights of 'class', 'iou' and 'dfl' in the total ``loss``.
        static_target (str): the positives' target scores in the static phase.
            ``'pred_iou'`` (PaddleDetection): the static assigner scores each positive by the IoU
            of its predicted box with its GT; those scores are the VFL targets and weight the
            GIoU and DFL terms. ``'hard'``: the assigner gets no predicted boxes, so every
            positive's target is 1. From scratch the predicted boxes are random and their IoUs
            near 0, which starves the box losses and teaches the classifier to predict ~0:
            ``'hard'`` is what trains small datasets without pretrained weights.
    Raises:
        TypeError, ValueError: ``num_classes`` or ``reg_max`` below 1, a non-integer
            ``static_assigner_epoch``, ``loss_weight`` without exactly the keys 'class', 'iou'
            and 'dfl' mapped to numbers >= 0.
    """

    def __init__(self, num_classes=80, reg_max=16, static_assigner_epoch=4,
                 use_varifocal_loss=True, loss_weight=None, static_target='pred_iou'):
        owner = type(self).__name__
        check_choice(owner, 'static_target', static_target, STATIC_TARGETS)
        check_int(owner, 'num_classes', num_classes, minimum=1)
        check_int(owner, 'reg_max', reg_max, minimum=1)
        check_int(owner, 'static_assigner_epoch', static_assigner_epoch)
        check_bool(owner, 'use_varifocal_loss', use_varifocal_loss)
        if loss_weight is not None:
            _check_loss_weight(loss_weight)
        self.num_classes = num_classes
        self.reg_max = reg_max
        self.static_assigner_epoch = static_assigner_epoch
        self.use_varifocal_loss = use_varifocal_loss
        self.loss_weight = loss_weight or {'class': 1.0, 'iou': 2.5, 'dfl': 0.5}
        self.static_target = static_target
        self.iou_loss = GIoULoss()

    def __call__(self, head_outs, targets, static_assigner, assigner):
        """
        Args:
            head_outs (tuple): from ``PPYOLOEHead.forward_train``:
                pred_scores [B, L, C] float32 sigmoid probabilities;
                pred_distri [B, L, 4 * (reg_max + 1)] float32 DFL logits (side-major);
                pred_bboxes [B, L, 4] float32 decoded boxes x1y1x2y2 in strides;
                anchors [L, 4] float32 ATSS anchor boxes in pixels;
                anchor_points [L, 2] float32 anchor centres in pixels;
                num_anchors_list (list[int]) anchors per level;
                stride_tensor [L, 1] float32 stride of each anchor in pixels.
            targets (dict): gt_class [B, n, 1] int32/int64, gt_bbox [B, n, 4] float32 pixels
                x1y1x2y2, pad_gt_mask [B, n, 1] float32 (1 real, 0 padding), epoch_id (int).
            static_assigner: ATSS-style callable ``(anchors, num_anchors_list, gt_labels,
                gt_bboxes, pad_gt_mask, bg_index=, pred_bboxes=)``, used while
                ``epoch_id < static_assigner_epoch``.
            assigner: task-aligned callable ``(pred_scores, pred_bboxes, anchor_points,
                num_anchors_list, gt_labels, gt_bboxes, pad_gt_mask, bg_index=)``, used after.
                Both return ``(assigned_labels [B, L] int, assigned_bboxes [B, L, 4] pixels,
                assigned_scores [B, L, C] float32, ...)``; extra outputs are ignored.
        Returns:
            dict: 'loss' (weighted total), 'loss_cls', 'loss_iou', 'loss_dfl', 'loss_l1'
            (L1 of positive boxes in strides, a metric only: not in 'loss').
        Raises:
            KeyError, TypeError, ValueError: a missing target, or one of the wrong shape or
                dtype (checked statically); the assigners check the class ids' range.
        """
        (pred_scores, pred_distri, pred_bboxes, anchors, anchor_points, num_anchors_list,
         stride_tensor) = head_outs
        check_targets(targets, batch_size=pred_scores.shape[0])
        gt_labels = targets['gt_class']
        gt_bboxes = targets['gt_bbox']
        pad_gt_mask = targets['pad_gt_mask']

        # Assigners see pixels and must not back-propagate into the predictions they score.
        pred_bboxes_px = pred_bboxes.detach() * stride_tensor
        if targets['epoch_id'] < self.static_assigner_epoch:
            _require_assigner(static_assigner, 'static_assigner', targets['epoch_id'], '<',
                              self.static_assigner_epoch)
            assigned = static_assigner(
                anchors, num_anchors_list, gt_labels, gt_bboxes, pad_gt_mask,
                bg_index=self.num_classes,
                pred_bboxes=pred_bboxes_px if self.static_target == 'pred_iou' else None)
            focal_alpha = STATIC_FOCAL_ALPHA
        else:
            _require_assigner(assigner, 'assigner', targets['epoch_id'], '>=',
                              self.static_assigner_epoch)
            assigned = assigner(
                pred_scores.detach(), pred_bboxes_px, anchor_points, num_anchors_list,
                gt_labels, gt_bboxes, pad_gt_mask, bg_index=self.num_classes)
            focal_alpha = DYNAMIC_FOCAL_ALPHA
        assigned_labels, assigned_bboxes, assigned_scores = assigned[:3]
        assigned_bboxes = assigned_bboxes / stride_tensor

        if self.use_varifocal_loss:
            one_hot = F.one_hot(assigned_labels, self.num_classes + 1)[..., :-1]
            loss_cls = varifocal_loss(pred_scores, assigned_scores, one_hot)
        else:
            loss_cls = focal_loss(pred_scores, assigned_scores, focal_alpha)

        assigned_scores_sum = self._normaliser(assigned_scores)
        loss_cls = loss_cls / assigned_scores_sum

        loss_l1, loss_iou, loss_dfl = self._bbox_losses(
            pred_distri, pred_bboxes, anchor_points / stride_tensor, assigned_labels,
            assigned_bboxes, assigned_scores, assigned_scores_sum)
        w = self.loss_weight
        loss = w['class'] * loss_cls + w['iou'] * loss_iou + w['dfl'] * loss_dfl
        return {'loss': loss, 'loss_cls': loss_cls, 'loss_iou': loss_iou,
                'loss_dfl': loss_dfl, 'loss_l1': loss_l1}

    @staticmethod
    def _normaliser(assigned_scores):
        """Sum of the assigned scores, averaged over ranks, clipped to at least 1 (0-D float32)."""
        total = assigned_scores.sum()
        world_size = paddle.distributed.get_world_size()
        if world_size > 1:
            paddle.distributed.all_reduce(total)
            total = total / world_size
        return paddle.clip(total, min=1.)

    def _bbox_losses(self, pred_distri, pred_bboxes, anchor_points_s, assigned_labels,
                     assigned_bboxes, assigned_scores, assigned_scores_sum):
        """L1, GIoU and DFL over positive anchors; all boxes and points in strides.

        Each positive's GIoU and DFL terms are weighted by its total assigned score, so soft
        targets (IoU or alignment metric) set how much a positive matters.
        """
        mask_positive = assigned_labels != self.num_classes
        if mask_positive.sum() == 0:
            # Zero keeps the regression branch in the graph (unused parameters would break
            # data-parallel gradient synchronisation).
            zero = paddle.zeros([])
            return zero, zero, pred_distri.sum() * 0.

        bbox_mask = mask_positive.unsqueeze(-1).tile([1, 1, 4])
        pred_bboxes_pos = paddle.masked_select(pred_bboxes, bbox_mask).reshape([-1, 4])
        assigned_bboxes_pos = paddle.masked_select(assigned_bboxes, bbox_mask).reshape([-1, 4])
        bbox_weight = paddle.masked_select(assigned_scores.sum(-1), mask_positive).unsqueeze(-1)

        loss_l1 = F.l1_loss(pred_bboxes_pos, assigned_bboxes_pos)

        loss_iou = self.iou_loss(pred_bboxes_pos, assigned_bboxes_pos) * bbox_weight
        loss_iou = loss_iou.sum() / assigned_scores_sum

        num_bins = self.reg_max + 1
        dist_mask = mask_positive.unsqueeze(-1).tile([1, 1, 4 * num_bins])
        pred_dist_pos = paddle.masked_select(pred_distri, dist_mask).reshape([-1, 4, num_bins])
        assigned_ltrb = dfl_targets(anchor_points_s, assigned_bboxes, self.reg_max)
        assigned_ltrb_pos = paddle.masked_select(assigned_ltrb, bbox_mask).reshape([-1, 4])
        loss_dfl = distribution_focal_loss(pred_dist_pos, assigned_ltrb_pos) * bbox_weight
        loss_dfl = loss_dfl.sum() / assigned_scores_sum
        return loss_l1, loss_iou, loss_dfl


def _require_assigner(assigner, name, epoch_id, relation, static_assigner_epoch):
    if assigner is None:
        raise ValueError(f'PPYOLOEHead: {name} is None but training epoch_id {epoch_id} '
                         f'{relation} static_assigner_epoch {static_assigner_epoch} needs it; set '
                         f'PPYOLOEHead.{name} in the config')


def _check_loss_weight(loss_weight):
    if not isinstance(loss_weight, dict) or set(loss_weight) != set(LOSS_TERMS):
        raise ValueError(f'PPYOLOELoss: loss_weight must be a dict with exactly the keys '
                         f'{", ".join(LOSS_TERMS)}, got {loss_weight!r}')
    for key in LOSS_TERMS:
        check_number('PPYOLOELoss', f'loss_weight[{key!r}]', loss_weight[key], low=0)


def check_targets(targets, batch_size=None):
    """Static checks of the training inputs (no device work).

    Args:
        targets (dict): ``gt_class [B, n, 1]`` int32/int64, ``gt_bbox [B, n, 4]`` float32,
            ``pad_gt_mask [B, n, 1]`` (float32 as PadGT makes it; other numeric dtypes and bool
            are read as ``> 0``), ``epoch_id`` a Python int.
        batch_size (int | None): B of the predictions, which the targets must share.
    Raises:
        KeyError: a key is missing (the message lists them all).
        TypeError, ValueError: a wrong type, rank, size or dtype, naming the key and its shape.
    """
    owner = 'PPYOLOELoss'
    if not isinstance(targets, dict):
        raise TypeError(f'{owner}: targets must be a dict with {", ".join(TARGET_KEYS)}, got '
                        f'{type(targets).__name__}')
    missing = [k for k in TARGET_KEYS if k not in targets]
    if missing:
        raise KeyError(f'{owner}: the training inputs lack {", ".join(missing)} (a training batch '
                       f'needs {", ".join(TARGET_KEYS)}; PadGT adds pad_gt_mask and the trainer '
                       f'epoch_id)')
    sizes = {} if batch_size is None else {'B': (batch_size, 'the image batch')}
    check_tensor(owner, 'gt_bbox', targets['gt_bbox'], ['B', 'n', 4], sizes, dtypes=('float32',))
    check_tensor(owner, 'gt_class', targets['gt_class'], ['B', 'n', 1], sizes,
                 dtypes=('int32', 'int64'))
    check_tensor(owner, 'pad_gt_mask', targets['pad_gt_mask'], ['B', 'n', 1], sizes,
                 dtypes=('float32', 'float64', 'int32', 'int64', 'bool'))
    epoch_id = targets['epoch_id']
    if not isinstance(epoch_id, numbers.Integral) or isinstance(epoch_id, bool):
        raise TypeError(f'{owner}: epoch_id must be a Python int (the 0-based epoch, compared '
                        f'with static_assigner_epoch), got {type(epoch_id).__name__} '
                        f'{epoch_id!r}')
