"""PP-YOLOE's training loss: label assignment, then classification, GIoU, DFL and L1 terms.

Schedule (PaddleDetection's keys of ``PPYOLOEHead``): while ``epoch_id < static_assigner_epoch``
the head's ``static_assigner`` assigns, from then on its ``assigner``. Either slot takes any label
assigner (``assigners.BaseAssigner``), called as ``assign(priors, gts, preds)``; the classification
loss's focal alpha follows the phase (``static_focal_alpha``, then ``focal_alpha``), not the class
in the slot.

Predictions for the assigner: ``preds`` (detached class probabilities and boxes in pixels) go to an
assigner that needs them (``needs_preds``: TAL, SimOTA, DSL) and, under ``static_target:
pred_iou`` (PaddleDetection's behaviour), to the others too, which may then score their positives
by the IoU of the predicted box with the GT (ATSS does, as PaddleDetection's static phase).
``static_target: hard`` withholds them from the assigners that can do without, so their positives'
targets are the GT scores (1). It changes nothing for an assigner that needs predictions: that one
still gets them, and keeps its own soft targets (they are part of its rule), in either slot.

Ignored priors (``AssignResult.ignore_mask``: an assigner's ignore band, a sampler's unsampled
priors) add nothing to the classification loss; their target scores are zero, so they add nothing
to the normaliser either; the box terms read positives only (``gt_index >= 0``).

Units: the head predicts boxes in *strides* (grid units of each prior's level); assigners work in
input-image pixels. This module converts between the two and computes every regression term in
strides, as PaddleDetection does, so the loss values are those of its PPYOLOEHead.

Normalisation: classification, GIoU and DFL sums are divided by the sum of all assigned soft
scores in the batch (averaged over ranks when distributed, and at least 1), so the loss scale does
not depend on how many priors were assigned or on the per-rank batch composition.

Host synchronisations per call: one, the positives' count (``paddle.nonzero``), which sets the
shapes of the box terms; plus the assigner's own (see its docstring).
"""

import numbers

import paddle
import paddle.nn.functional as F

from ppdet_lite.core.workspace import register
from ..checks import check_bool, check_choice, check_int, check_number, check_tensor
from .dfl import dfl_targets, distribution_focal_loss
from .iou_loss import GIoULoss
from .varifocal_loss import focal_loss, varifocal_loss

__all__ = ['PPYOLOELoss', 'check_targets', 'check_assigner']

# The terms of ``loss_weight``; PaddleDetection's head reads exactly these keys.
LOSS_TERMS = ('class', 'iou', 'dfl')
# Target scores of the positives of assigners that can work without predictions (see module).
STATIC_TARGETS = ('pred_iou', 'hard')
# The loss arguments that are PPYOLOEHead's keys, with the defaults of a loss built on its own.
HEAD_KEYS = (('reg_max', 16), ('static_assigner_epoch', 4), ('use_varifocal_loss', True),
             ('loss_weight', {'class': 1.0, 'iou': 2.5, 'dfl': 0.5}), ('static_target', 'pred_iou'))

# The training inputs the loss reads (PaddleDetection's names).
TARGET_KEYS = ('gt_class', 'gt_bbox', 'pad_gt_mask', 'epoch_id')


@register
class PPYOLOELoss(object):
    """Loss of ``PPYOLOEHead``. The head builds it from its own arguments unless the config injects
    one (``PPYOLOEHead: {loss: {name: PPYOLOELoss, static_focal_alpha: 0.5}}``); the head hands it
    its two assigner slots on every call (they stay the head's sub-layers, as in PaddleDetection).

    Args:
        num_classes (int): C; the assigners' background label is C.
        reg_max (int): last DFL bin; each box side is a distribution over reg_max + 1 bins.
        static_assigner_epoch (int): epochs (0-based ``epoch_id`` below it) that use the
            ``static_assigner`` slot; the ``assigner`` slot from then on.
        use_varifocal_loss (bool): VFL if True, else focal loss.
        loss_weight (dict): weights of 'class', 'iou' and 'dfl' in the total ``loss``.
        static_target (str): ``'pred_iou'`` or ``'hard'``, see the module docstring. From scratch
            the predicted boxes are random and their IoUs near 0, which starves the box losses
            and teaches the classifier to predict ~0: ``'hard'`` is what trains small datasets
            without pretrained weights.
        static_focal_alpha (float | None): class-balance factor of the focal loss (when
            ``use_varifocal_loss`` is False) in the static phase: PaddleDetection's 0.25.
        focal_alpha (float | None): the same after ``static_assigner_epoch``: PaddleDetection's
            None (no factor: the task-aligned targets are normalised per GT already).

    The five arguments from ``reg_max`` to ``static_target`` are ``PPYOLOEHead`` keys: left at
    None they take the head's values (PaddleDetection's defaults above for a loss used without a
    head); set here, they must equal the head's (``use_head_settings``).

    Raises:
        TypeError, ValueError: ``num_classes`` or ``reg_max`` below 1, a non-integer
            ``static_assigner_epoch``, ``loss_weight`` without exactly the keys 'class', 'iou'
            and 'dfl' mapped to numbers >= 0, a focal alpha outside (0, 1) and not None.
    """
    __shared__ = ['num_classes']

    def __init__(self, num_classes=80, reg_max=None, static_assigner_epoch=None,
                 use_varifocal_loss=None, loss_weight=None, static_target=None,
                 static_focal_alpha=0.25, focal_alpha=None):
        owner = type(self).__name__
        check_int(owner, 'num_classes', num_classes, minimum=1)
        for name, value in (('static_focal_alpha', static_focal_alpha),
                            ('focal_alpha', focal_alpha)):
            if value is not None:
                check_number(owner, f'{name} (null or a number)', value, low=0, high=1,
                             low_open=True, high_open=True)
        given = {'reg_max': reg_max, 'static_assigner_epoch': static_assigner_epoch,
                 'use_varifocal_loss': use_varifocal_loss, 'loss_weight': loss_weight,
                 'static_target': static_target}
        self._from_head = tuple(key for key, _ in HEAD_KEYS if given[key] is None)
        settings = {key: dict(default) if isinstance(default, dict) else default
                    for key, default in HEAD_KEYS}
        settings.update((key, value) for key, value in given.items() if value is not None)
        _check_settings(owner, settings)
        self.num_classes = num_classes
        self.static_focal_alpha = static_focal_alpha
        self.focal_alpha = focal_alpha
        for key, value in settings.items():
            setattr(self, key, value)
        self.iou_loss = GIoULoss()

    def use_head_settings(self, owner, settings):
        """Take the head's keys: those left at None here adopt the head's value, the others must
        equal it.

        Args:
            owner (str): the head's name, for messages.
            settings (dict): the head's ``reg_max``, ``static_assigner_epoch``,
                ``use_varifocal_loss``, ``loss_weight`` and ``static_target``.
        Raises:
            TypeError, ValueError: a head value out of range, or a value set on both sides that
                differs (naming the key and both values).
        """
        _check_settings(owner, settings)
        for key, _ in HEAD_KEYS:
            if key in self._from_head:
                setattr(self, key, settings[key])
            elif getattr(self, key) != settings[key]:
                raise ValueError(f'{owner}: its loss {type(self).__name__} sets {key} '
                                 f'{getattr(self, key)!r} but the head has {key} '
                                 f'{settings[key]!r}; the head\'s key configures its loss: set '
                                 f'{owner}.{key} and leave it out of the loss')
        self._from_head = ()

    def __call__(self, head_outs, gts, epoch_id, static_assigner, assigner):
        """
        Args:
            head_outs (tuple): from ``PPYOLOEHead.forward_train``:
                pred_scores [B, L, C] float32 sigmoid probabilities;
                pred_distri [B, L, 4 * (reg_max + 1)] float32 DFL logits (side-major);
                pred_bboxes [B, L, 4] float32 decoded boxes x1y1x2y2 in strides;
                priors (``assigners.Priors``) the priors, pixels;
                preds (``assigners.Preds``) the detached predictions, boxes in pixels.
            gts (``assigners.GTs``): the padded GT of the batch, pixels.
            epoch_id (int): 0-based epoch, compared with ``static_assigner_epoch``.
            static_assigner, assigner: the head's two slots (label assigners or None).
        Returns:
            dict: 'loss' (weighted total), 'loss_cls', 'loss_iou', 'loss_dfl', 'loss_l1'
            (L1 of positive boxes in strides, a metric only: not in 'loss').
        Raises:
            ValueError: the slot the schedule picks is None; TypeError: it is not an assigner
                (both naming the key); the assigner's own input errors.
        """
        pred_scores, pred_distri, pred_bboxes, priors, preds = head_outs
        if epoch_id < self.static_assigner_epoch:
            key, slot, relation = 'static_assigner', static_assigner, '<'
            focal_alpha = self.static_focal_alpha
        else:
            key, slot, relation = 'assigner', assigner, '>='
            focal_alpha = self.focal_alpha
        if slot is None:
            raise ValueError(f'PPYOLOEHead: {key} is None but training epoch_id {epoch_id} '
                             f'{relation} static_assigner_epoch {self.static_assigner_epoch} '
                             f'needs it; set PPYOLOEHead.{key} in the config')
        check_assigner('PPYOLOEHead', key, slot)
        passes_preds = getattr(slot, 'needs_preds', False) or self.static_target == 'pred_iou'
        result = slot.assign(priors, gts, preds if passes_preds else None)

        strides = priors.strides.unsqueeze(-1)
        assigned_scores = result.assigned_scores
        # An ignored prior's target is all zero; predicting exactly it costs 0 in VFL and focal
        # loss alike, so replacing its prediction by 0 leaves it out of the loss and its gradient.
        cls_scores = paddle.where(result.ignore_mask.unsqueeze(-1),
                                  paddle.zeros_like(pred_scores), pred_scores)
        if self.use_varifocal_loss:
            one_hot = F.one_hot(result.assigned_labels, self.num_classes + 1)[..., :-1]
            loss_cls = varifocal_loss(cls_scores, assigned_scores, one_hot)
        else:
            # focal_loss drops the balance factor for alpha <= 0
            loss_cls = focal_loss(cls_scores, assigned_scores,
                                  -1 if focal_alpha is None else focal_alpha)

        assigned_scores_sum = self._normaliser(assigned_scores)
        loss_cls = loss_cls / assigned_scores_sum

        loss_l1, loss_iou, loss_dfl = self._bbox_losses(
            pred_distri, pred_bboxes, priors.points / strides, result.positive_mask,
            result.assigned_bboxes / strides, assigned_scores, assigned_scores_sum)
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

    def _bbox_losses(self, pred_distri, pred_bboxes, points_s, positive, assigned_bboxes,
                     assigned_scores, assigned_scores_sum):
        """L1, GIoU and DFL over positive priors; all boxes and points in strides.

        ``positive`` [B, L] bool. Each positive's GIoU and DFL terms are weighted by its total
        assigned score, so soft targets (IoU or alignment metric) set how much a positive matters.
        """
        # The positives' flat indices, in (image, prior) order; their count, now on the host,
        # sets the shapes below (this is the call's one synchronisation).
        pos = paddle.nonzero(positive.flatten()).flatten()
        if pos.shape[0] == 0:
            # Zero keeps the regression branch in the graph (unused parameters would break
            # data-parallel gradient synchronisation). Paddle 2.6 cannot reduce empty tensors.
            zero = paddle.zeros([])
            return zero, zero, pred_distri.sum() * 0.

        def rows(x):
            return paddle.gather(x.reshape([-1, x.shape[-1]]), pos)

        pred_bboxes_pos = rows(pred_bboxes)
        assigned_bboxes_pos = rows(assigned_bboxes)
        bbox_weight = rows(assigned_scores.sum(-1, keepdim=True))

        loss_l1 = F.l1_loss(pred_bboxes_pos, assigned_bboxes_pos)

        loss_iou = self.iou_loss(pred_bboxes_pos, assigned_bboxes_pos) * bbox_weight
        loss_iou = loss_iou.sum() / assigned_scores_sum

        pred_dist_pos = rows(pred_distri).reshape([-1, 4, self.reg_max + 1])
        assigned_ltrb_pos = rows(dfl_targets(points_s, assigned_bboxes, self.reg_max))
        loss_dfl = distribution_focal_loss(pred_dist_pos, assigned_ltrb_pos) * bbox_weight
        loss_dfl = loss_dfl.sum() / assigned_scores_sum
        return loss_l1, loss_iou, loss_dfl


def check_assigner(owner, key, assigner):
    """``assigner`` (the object in slot ``key``) is None or a label assigner, i.e. has
    ``assign(priors, gts, preds)`` (see ``assigners.BaseAssigner``).

    Raises:
        TypeError: naming ``owner.key`` and the object's type.
    """
    if assigner is not None and not callable(getattr(assigner, 'assign', None)):
        raise TypeError(f'{owner}: {key} must be a label assigner (a class with '
                        f'assign(priors, gts, preds), e.g. {{name: ATSSAssigner}} or '
                        f'{{name: TaskAlignedAssigner}}), got a {type(assigner).__name__}')


def _check_settings(owner, settings):
    """The head's keys of the loss: ``reg_max``, ``static_assigner_epoch``,
    ``use_varifocal_loss``, ``loss_weight``, ``static_target``."""
    check_choice(owner, 'static_target', settings['static_target'], STATIC_TARGETS)
    check_int(owner, 'reg_max', settings['reg_max'], minimum=1)
    check_int(owner, 'static_assigner_epoch', settings['static_assigner_epoch'])
    check_bool(owner, 'use_varifocal_loss', settings['use_varifocal_loss'])
    loss_weight = settings['loss_weight']
    if not isinstance(loss_weight, dict) or set(loss_weight) != set(LOSS_TERMS):
        raise ValueError(f'{owner}: loss_weight must be a dict with exactly the keys '
                         f'{", ".join(LOSS_TERMS)}, got {loss_weight!r}')
    for key in LOSS_TERMS:
        check_number(owner, f'loss_weight[{key!r}]', loss_weight[key], low=0)


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
