"""PP-YOLOE's detection head (ET-head): task-aligned stems, per-level cls/reg predictions, DFL boxes.

For each FPN level i (stride s_i, feature [B, C_i, H_i, W_i]):

* ``stem_cls[i]`` / ``stem_reg[i]`` (``ESEAttn``) re-weight the channels from the level's global
  average, separately for classification and regression;
* ``pred_cls[i]`` (3x3 conv) gives C class logits per cell from ``stem_cls(x) + x``;
* ``pred_reg[i]`` (3x3 conv) gives 4 x (reg_max + 1) logits per cell: for each box side
  (left, top, right, bottom, in strides from the cell centre) a distribution over the bins
  0..reg_max, whose expectation is computed by the fixed 1x1 ``proj_conv`` (weights 0..reg_max).

Anchors are the cell centres ``(j + 0.5, i + 0.5) * s``; assigners that match boxes (ATSS,
MaxIoU, YOLOv3) also get square anchor boxes of side ``grid_cell_scale * s`` around them. Cells are ordered level by level (stride 32
first with the default ``fpn_strides``), row-major within a level; L is their total count.

Training: the head gives the loss its predictions, the priors of the input size (``Priors``: the
anchor points, boxes, strides and level shapes above), the padded GT (``GTs``), the detached
predictions in pixels (``Preds``) and its two assigner slots; the loss
(``ppdet_lite.modeling.losses.PPYOLOELoss``) picks the slot by epoch and calls
``assign(priors, gts, preds)``. This head keeps the config arguments PaddleDetection's configs
set, and decodes boxes for inference.
"""

import math

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddle import ParamAttr
from paddle.nn.initializer import Assign, Constant, Normal

from ppdet_lite.core.workspace import create, register
from ppdet_lite.modeling.assigners.base import GTs, Preds, Priors
from ppdet_lite.modeling.bbox_utils import (batch_distance2bbox, generate_anchors_for_grid_cell,
                                           grid_points)
from ppdet_lite.modeling.checks import (check_bool, check_int, check_int_list, check_number,
                                       check_tensor)
from ppdet_lite.modeling.layers.conv_bn import ConvBNLayer
from ppdet_lite.modeling.layers.multiclass_nms import MultiClassNMS
from ppdet_lite.modeling.layers.repvgg import RepVggBlock
from ppdet_lite.modeling.losses.ppyoloe_loss import PPYOLOELoss, check_assigner, check_targets
from ppdet_lite.modeling.ops import get_act_fn

__all__ = ['ESEAttn', 'PPYOLOEHead']


def _by_name(obj, num_classes):
    """Build a registered class given by name (the constructor defaults below), so the head also
    works without a config; objects pass through. Config-built heads receive objects already."""
    if isinstance(obj, str):
        return create(obj, cfg={'num_classes': num_classes})
    return obj


def _validate_eval_size(eval_size, fpn_strides):
    """``eval_size`` is None or [h, w], both multiples of the largest stride: the anchors it fixes
    are those of the feature maps such an input gives (other sizes cannot pass the neck)."""
    if eval_size is None:
        return
    check_int_list('PPYOLOEHead', 'eval_size (null or [h, w])', eval_size, length=2)
    step = max(fpn_strides)
    if any(s % step for s in eval_size):
        fix = [(s + step - 1) // step * step for s in eval_size]
        raise ValueError(f'PPYOLOEHead: eval_size {list(eval_size)} must be [h, w] with both '
                         f'multiples of {step}, the largest of fpn_strides {list(fpn_strides)} '
                         f'(the input size the neck accepts); e.g. {fix}, or null to take the '
                         f'anchors from each input')


def _check_components(nms, static_assigner, assigner, loss, num_classes):
    """Injected parts: NMS a callable, the slots label assigners, the loss a ``PPYOLOELoss`` (each
    may be None but the loss: a head that never trains, or never runs NMS); a part with its own
    ``num_classes`` must agree with ours."""
    if nms is not None and not callable(nms):
        raise TypeError(f'PPYOLOEHead: nms must be a registered class name, a dict with '
                        f'"name" or a callable object, got {nms!r}')
    check_assigner('PPYOLOEHead', 'static_assigner', static_assigner)
    check_assigner('PPYOLOEHead', 'assigner', assigner)
    if not isinstance(loss, PPYOLOELoss):
        raise TypeError(f'PPYOLOEHead: loss must be a PPYOLOELoss (or a subclass), e.g. '
                        f'{{name: PPYOLOELoss, static_focal_alpha: 0.25}}, got a '
                        f'{type(loss).__name__}')
    parts = {'nms': nms, 'static_assigner': static_assigner, 'assigner': assigner, 'loss': loss}
    for name, obj in parts.items():
        _check_num_classes(name, obj, num_classes)


def _check_num_classes(name, obj, num_classes):
    own = getattr(obj, 'num_classes', None)
    if own is not None and own != num_classes:
        raise ValueError(f'PPYOLOEHead: {name} {type(obj).__name__} was built with num_classes '
                         f'{own} but the head has num_classes {num_classes}; its scores would not '
                         f'match the predictions (set the top-level num_classes only)')


def _bias_for_prior(prior_prob):
    """Logit b with sigmoid(b) = prior_prob: every class starts at that probability (RetinaNet),
    so the many negatives do not swamp the first updates."""
    return -math.log((1 - prior_prob) / prior_prob)


class ESEAttn(nn.Layer):
    """Channel attention of the head stems: ``conv(x * sigmoid(fc(avg_pool(x))))``.

    [B, C, H, W] -> [B, C, H, W]. ``fc`` is a biased 1x1 conv on the level's global average
    (initialised near zero, so the gate starts at 0.5 everywhere); ``conv`` is a 1x1 ConvBNLayer
    with the head's activation (``attn_conv='convbn'``), a RepVggBlock (``'repvgg'``) or nothing
    (None). The gate is a plain sigmoid, as in PaddleDetection's head (the backbone's
    EffectiveSELayer uses hardsigmoid).
    """

    def __init__(self, feat_channels, act='swish', attn_conv='convbn'):
        super().__init__()
        self.fc = nn.Conv2D(feat_channels, feat_channels, 1,
                            weight_attr=ParamAttr(initializer=Normal(mean=0., std=0.001)))
        if attn_conv == 'convbn':
            self.conv = ConvBNLayer(feat_channels, feat_channels, 1, act=act)
        elif attn_conv == 'repvgg':
            self.conv = RepVggBlock(feat_channels, feat_channels, act=act)
        elif attn_conv is None:
            self.conv = None
        else:
            raise ValueError(f"ESEAttn: attn_conv must be 'convbn', 'repvgg' or None, "
                             f"got {attn_conv!r}")

    def forward(self, feat, avg_feat):
        """feat [B, C, H, W], avg_feat [B, C, 1, 1] (its spatial mean) -> [B, C, H, W]."""
        out = feat * F.sigmoid(self.fc(avg_feat))
        return self.conv(out) if self.conv is not None else out


@register
class PPYOLOEHead(nn.Layer):
    """PaddleDetection 2.6's ``PPYOLOEHead``: same constructor, parameter names and outputs.

    Args:
        in_channels (list[int]): channels of the input levels, coarsest first (from the neck).
        num_classes (int): C.
        act: activation of the stems (name, dict or callable; ``trt`` picks TensorRT-friendly forms).
        fpn_strides (tuple[int]): stride of each input level, in pixels.
        grid_cell_scale (float): ATSS anchor side in strides.
        grid_cell_offset (float): anchor point offset inside a cell, in strides.
        reg_max (int): last DFL bin; box sides up to reg_max strides are representable.
        reg_range: PP-YOLOE-SOD's shifted bins; not supported (must be None).
        static_assigner_epoch (int): epochs trained with ``static_assigner`` before ``assigner``.
        use_varifocal_loss (bool): VFL (True) or focal loss for classification.
        static_assigner, assigner: label assigners (any class with ``assign(priors, gts, preds)``,
            in either slot), injected by the config system; a registered class name is built with
            its defaults (and ``num_classes``). None for a slot the schedule never uses.
        nms: injected ``MultiClassNMS`` (or a name, as above).
        eval_size (list[int] | None): fixed input [h, w]; the inference anchors are then built
            once, here, instead of from the feature shapes on every call (for export).
        loss_weight (dict): weights of 'class', 'iou' and 'dfl' in the total loss.
        trt (bool): TensorRT-friendly activations, and TensorRT NMS in ``nms``.
        attn_conv: 'convbn', 'repvgg' or None, the stems' conv (see ``ESEAttn``).
        exclude_nms (bool): ``post_process`` returns raw boxes and scores (no NMS).
        exclude_post_process (bool): ``post_process`` returns network-input boxes and scores
            concatenated, without rescaling or NMS.
        use_shared_conv (bool): apply ``proj_conv`` per level (True) or once on all levels; the
            same numbers either way.
        for_distill (bool): PaddleDetection's distillation hooks; not supported (must be False).
        static_target (str): ``'pred_iou'`` (PaddleDetection) or ``'hard'``: whether assigners
            that can work without predictions get them to score their positives (see
            ``PPYOLOELoss``; ``'hard'`` for training from scratch).
        loss: injected ``PPYOLOELoss`` (or a subclass); None builds one from the arguments above.
            The head's ``reg_max``, ``static_assigner_epoch``, ``use_varifocal_loss``,
            ``loss_weight`` and ``static_target`` configure it either way (an injected loss that
            sets one of them must agree); its own keys, e.g. the focal alphas, come with it.

    Raises:
        TypeError, ValueError: at construction, an argument of the wrong type or out of range:
            positive ``in_channels``, ``num_classes`` and ``fpn_strides`` (one per input level),
            ``reg_max >= 1``, ``grid_cell_scale > 0``, ``grid_cell_offset`` in [0, 1), an
            ``eval_size`` that is not ``[h, w]`` with both multiples of the largest stride,
            an assigner slot holding something else than an assigner, assigners or a loss built
            for another ``num_classes``, ``loss_weight`` keys other than 'class', 'iou' and
            'dfl', a loss that is not a ``PPYOLOELoss`` or disagrees with the head's keys.

    Initial predictions (prediction conv weights 0): every class probability 0.01, every box-side
    distribution uniform (so each side is reg_max / 2 strides). ``proj_conv.weight``
    [1, reg_max + 1, 1, 1] is fixed to 0..reg_max and never trained.
    """
    __shared__ = ['num_classes', 'eval_size', 'trt', 'exclude_nms', 'exclude_post_process',
                  'use_shared_conv', 'for_distill']
    __inject__ = ['static_assigner', 'assigner', 'nms', 'loss']

    def __init__(self,
                 in_channels=[1024, 512, 256],
                 num_classes=80,
                 act='swish',
                 fpn_strides=(32, 16, 8),
                 grid_cell_scale=5.0,
                 grid_cell_offset=0.5,
                 reg_max=16,
                 reg_range=None,
                 static_assigner_epoch=4,
                 use_varifocal_loss=True,
                 static_assigner='ATSSAssigner',
                 assigner='TaskAlignedAssigner',
                 nms='MultiClassNMS',
                 eval_size=None,
                 loss_weight={'class': 1.0, 'iou': 2.5, 'dfl': 0.5},
                 trt=False,
                 attn_conv='convbn',
                 exclude_nms=False,
                 exclude_post_process=False,
                 use_shared_conv=True,
                 for_distill=False,
                 static_target='pred_iou',
                 loss=None):
        super().__init__()
        owner = type(self).__name__
        check_int_list(owner, 'in_channels', in_channels)
        check_int(owner, 'num_classes', num_classes, minimum=1)
        check_int_list(owner, 'fpn_strides', fpn_strides, length=len(in_channels))
        check_number(owner, 'grid_cell_scale', grid_cell_scale, low=0, low_open=True)
        check_number(owner, 'grid_cell_offset', grid_cell_offset, low=0, high=1, high_open=True)
        check_int(owner, 'reg_max', reg_max, minimum=1)
        for name, value in (('trt', trt), ('exclude_nms', exclude_nms),
                            ('exclude_post_process', exclude_post_process),
                            ('use_shared_conv', use_shared_conv), ('for_distill', for_distill)):
            check_bool(owner, name, value)
        if reg_range is not None:
            raise NotImplementedError('PPYOLOEHead: reg_range (PP-YOLOE-SOD) is not supported')
        if for_distill:
            raise NotImplementedError('PPYOLOEHead: for_distill is not supported')
        _validate_eval_size(eval_size, fpn_strides)
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.fpn_strides = fpn_strides
        self.grid_cell_scale = grid_cell_scale
        self.grid_cell_offset = grid_cell_offset
        self.reg_max = reg_max
        self.eval_size = eval_size
        self.exclude_nms = exclude_nms
        self.exclude_post_process = exclude_post_process
        self.use_shared_conv = use_shared_conv
        self.nms = _by_name(nms, num_classes)
        if isinstance(self.nms, MultiClassNMS) and trt:
            self.nms.trt = True
        self.static_assigner = _by_name(static_assigner, num_classes)
        self.assigner = _by_name(assigner, num_classes)
        self.loss = PPYOLOELoss(num_classes) if loss is None else _by_name(loss, num_classes)
        _check_components(self.nms, self.static_assigner, self.assigner, self.loss, num_classes)
        self.loss.use_head_settings(owner, {
            'reg_max': reg_max, 'static_assigner_epoch': static_assigner_epoch,
            'use_varifocal_loss': use_varifocal_loss, 'loss_weight': loss_weight,
            'static_target': static_target})

        act = get_act_fn(act, trt=trt)
        num_bins = reg_max + 1
        self.stem_cls = nn.LayerList([ESEAttn(c, act, attn_conv) for c in in_channels])
        self.stem_reg = nn.LayerList([ESEAttn(c, act, attn_conv) for c in in_channels])
        cls_bias = ParamAttr(initializer=Constant(_bias_for_prior(0.01)))
        zero = ParamAttr(initializer=Constant(0.))
        self.pred_cls = nn.LayerList([
            nn.Conv2D(c, num_classes, 3, padding=1, weight_attr=zero, bias_attr=cls_bias)
            for c in in_channels])
        self.pred_reg = nn.LayerList([
            nn.Conv2D(c, 4 * num_bins, 3, padding=1, weight_attr=zero,
                      bias_attr=ParamAttr(initializer=Constant(1.)))
            for c in in_channels])
        # Expectation over the bins as a 1x1 conv, so inference graphs hold only standard ops.
        # Kept as a (frozen) parameter because PaddleDetection checkpoints contain it.
        proj = np.linspace(0, reg_max, num_bins, dtype='float32').reshape([1, num_bins, 1, 1])
        self.proj_conv = nn.Conv2D(num_bins, 1, 1, bias_attr=False,
                                   weight_attr=ParamAttr(initializer=Assign(proj)))
        self.proj_conv.weight.stop_gradient = True

        if eval_size:
            self.anchor_points, self.stride_tensor = self._eval_anchors()

    @classmethod
    def from_config(cls, cfg, input_shape):
        return {'in_channels': [i.channels for i in input_shape]}

    def forward(self, feats, targets=None):
        """
        Args:
            feats (list[Tensor]): per level [B, in_channels[i], H_i, W_i] float32, in
                ``fpn_strides`` order.
            targets (dict): training only: ``gt_class``, ``gt_bbox``, ``pad_gt_mask``,
                ``epoch_id`` (see ``losses.ppyoloe_loss.check_targets``).
        Returns:
            training: the loss dict of ``PPYOLOELoss``;
            eval: ``(pred_scores [B, C, L] sigmoid probabilities, pred_dist [B, L, 4] ltrb
            distances in strides, anchor_points [L, 2] in strides, stride_tensor [L, 1] pixels)``,
            the input of ``post_process``.
        """
        self._check_feats(feats)
        if self.training:
            if not isinstance(targets, dict):
                raise TypeError('PPYOLOEHead: in train mode forward needs the targets dict '
                                '(gt_class, gt_bbox, pad_gt_mask, epoch_id), got '
                                f'{type(targets).__name__}; call .eval() for predictions')
            return self.forward_train(feats, targets)
        return self.forward_eval(feats)

    def _check_feats(self, feats):
        """Static checks: one [B, in_channels[i], H_i, W_i] float map per level."""
        if not isinstance(feats, (list, tuple)) or len(feats) != len(self.fpn_strides):
            got = f'{len(feats)} feature maps' if isinstance(feats, (list, tuple)) else \
                type(feats).__name__
            raise ValueError(f'PPYOLOEHead: expected a list of {len(self.fpn_strides)} feature '
                             f'maps (one per fpn_strides {list(self.fpn_strides)}), got {got}')
        sizes = {}
        for i, (feat, channels) in enumerate(zip(feats, self.in_channels)):
            check_tensor('PPYOLOEHead', f'feats[{i}]', feat, ['B', channels, None, None], sizes,
                         dtypes=('float32', 'float16', 'bfloat16'))

    def _level_logits(self, i, feat):
        avg_feat = F.adaptive_avg_pool2d(feat, (1, 1))
        # The residual on the cls branch only: classification keeps the neck's features,
        # regression sees just the re-weighted ones (PaddleDetection's design).
        cls_logit = self.pred_cls[i](self.stem_cls[i](feat, avg_feat) + feat)
        reg_logit = self.pred_reg[i](self.stem_reg[i](feat, avg_feat))
        return cls_logit, reg_logit

    def forward_train(self, feats, targets):
        check_targets(targets, batch_size=feats[0].shape[0])
        anchors, anchor_points, num_anchors_list, stride_tensor = generate_anchors_for_grid_cell(
            feats, self.fpn_strides, self.grid_cell_scale, self.grid_cell_offset)
        priors = Priors(anchor_points, anchors, stride_tensor.reshape([-1]), num_anchors_list,
                        [tuple(feat.shape[2:]) for feat in feats])
        scores, distri = [], []
        for i, feat in enumerate(feats):
            cls_logit, reg_logit = self._level_logits(i, feat)
            scores.append(F.sigmoid(cls_logit).flatten(2).transpose([0, 2, 1]))
            distri.append(reg_logit.flatten(2).transpose([0, 2, 1]))
        pred_scores = paddle.concat(scores, axis=1)  # [B, L, C]
        pred_distri = paddle.concat(distri, axis=1)  # [B, L, 4 * (reg_max + 1)]
        pred_bboxes = self._decode(anchor_points / stride_tensor, pred_distri)
        # Assigners see pixels and must not back-propagate into the predictions they score.
        preds = Preds(pred_scores.detach(), pred_bboxes.detach() * stride_tensor)
        mask = targets['pad_gt_mask']
        gts = GTs(targets['gt_class'], targets['gt_bbox'],
                  mask if mask.dtype == paddle.float32 else (mask > 0).astype('float32'))
        return self.loss((pred_scores, pred_distri, pred_bboxes, priors, preds), gts,
                         targets['epoch_id'], self.static_assigner, self.assigner)

    def _decode(self, points, pred_distri):
        """points [L, 2] and logits [B, L, 4 * (reg_max + 1)] -> boxes [B, L, 4], in strides."""
        dist = F.softmax(pred_distri.reshape([0, 0, 4, self.reg_max + 1]))
        dist = self.proj_conv(dist.transpose([0, 3, 1, 2])).squeeze(1)
        return batch_distance2bbox(points, dist)

    def _eval_anchors(self, feats=None):
        """Cell centres [L, 2] in strides and strides [L, 1], from ``feats`` or ``eval_size``."""
        points, strides = [], []
        for i, stride in enumerate(self.fpn_strides):
            if feats is not None:
                h, w = feats[i].shape[2], feats[i].shape[3]
            else:
                h, w = int(self.eval_size[0] / stride), int(self.eval_size[1] / stride)
            points.append(grid_points(h, w, self.grid_cell_offset))
            strides.append(paddle.full([h * w, 1], stride, dtype='float32'))
        return paddle.concat(points), paddle.concat(strides)

    def forward_eval(self, feats):
        if self.eval_size:
            anchor_points, stride_tensor = self.anchor_points, self.stride_tensor
            if paddle.in_dynamic_mode():
                self._check_eval_size(feats)
        else:
            anchor_points, stride_tensor = self._eval_anchors(feats)
        num_bins = self.reg_max + 1
        scores, dists = [], []
        for i, feat in enumerate(feats):
            _, _, h, w = feat.shape
            l = h * w
            cls_logit, reg_logit = self._level_logits(i, feat)
            # [B, 4 * bins, H, W] -> [B, bins, l, 4]: bins on the channel axis for proj_conv.
            dist = F.softmax(reg_logit.reshape([-1, 4, num_bins, l]).transpose([0, 2, 3, 1]), axis=1)
            if self.use_shared_conv:
                dist = self.proj_conv(dist).squeeze(1)
            scores.append(F.sigmoid(cls_logit).reshape([-1, self.num_classes, l]))
            dists.append(dist)
        pred_scores = paddle.concat(scores, axis=-1)
        if self.use_shared_conv:
            pred_dist = paddle.concat(dists, axis=1)
        else:
            pred_dist = self.proj_conv(paddle.concat(dists, axis=2)).squeeze(1)
        return pred_scores, pred_dist, anchor_points, stride_tensor

    def _check_eval_size(self, feats):
        expected = [(int(self.eval_size[0] / s), int(self.eval_size[1] / s)) for s in self.fpn_strides]
        got = [tuple(f.shape[2:]) for f in feats]
        if got != expected:
            raise ValueError(f'PPYOLOEHead: eval_size {list(self.eval_size)} fixes the anchors to '
                             f'feature maps {expected}, but the input gives {got}; resize inputs '
                             f'to eval_size or set eval_size: null (-o eval_size=null)')

    @staticmethod
    def decode(head_outs):
        """``forward_eval``'s output -> ``(boxes [B, L, 4] x1y1x2y2 network-input pixels,
        scores [B, C, L])``, before rescaling and NMS."""
        pred_scores, pred_dist, anchor_points, stride_tensor = head_outs
        return batch_distance2bbox(anchor_points, pred_dist) * stride_tensor, pred_scores

    def post_process(self, head_outs, scale_factor):
        """Decode boxes to original-image pixels and run NMS.

        Args:
            head_outs (tuple): ``forward_eval``'s output.
            scale_factor (Tensor): [B, 2] float32 (scale_y, scale_x), network input / original.
        Returns:
            ``(bbox [N, 6] float32 (class, score, x1, y1, x2, y2) original pixels,
            bbox_num [B] int32)``; with ``exclude_nms`` ``(boxes [B, L, 4] original pixels,
            scores [B, C, L])``; with ``exclude_post_process`` ``([B, L, 4 + C] network-input
            boxes then scores, None)``.
        """
        pred_bboxes, pred_scores = self.decode(head_outs)
        if self.exclude_post_process:
            return paddle.concat([pred_bboxes, pred_scores.transpose([0, 2, 1])], axis=-1), None
        check_tensor('PPYOLOEHead.post_process', 'scale_factor', scale_factor, ['B', 2],
                     {'B': (pred_bboxes.shape[0], 'the predictions')}, dtypes=('float32',))
        scale_y, scale_x = paddle.split(scale_factor, 2, axis=-1)
        scale = paddle.concat([scale_x, scale_y, scale_x, scale_y], axis=-1).reshape([-1, 1, 4])
        pred_bboxes = pred_bboxes / scale
        if self.exclude_nms:
            return pred_bboxes, pred_scores
        bbox, bbox_num, _ = self.nms(pred_bboxes, pred_scores)
        return bbox, bbox_num
