"""YOLOv3: the architecture name PaddleDetection's PP-YOLOE configs use (backbone -> neck -> head)."""

import paddle

from ppdet_lite.core.workspace import create, register
from ..checks import check_tensor, size_multiple
from .meta_arch import BaseArch

__all__ = ['YOLOv3']


# The input checks read static shapes only. Marked not_to_static so that, when the model is traced
# for export (``paddle.jit.to_static``), they run as plain Python on the traced shapes (-1 where a
# size is dynamic, which the checks skip) instead of being converted into graph operations.
@paddle.jit.not_to_static
def _check_image(image, strides):
    check_tensor('YOLOv3', 'inputs["image"]', image, [None, 3, None, None],
                 dtypes=('float32', 'float16', 'bfloat16'))
    if strides:
        height, width = image.shape[2:]
        size_multiple('YOLOv3', 'the input image', height, width, max(strides),
                      f'the largest of PPYOLOEHead.fpn_strides {strides}')


@paddle.jit.not_to_static
def _check_feature_strides(image, feats, strides):
    height = image.shape[2]
    if not strides or height <= 0 or len(feats) != len(strides):
        return
    actual = [height // f.shape[2] if f.shape[2] > 0 else s for f, s in zip(feats, strides)]
    if actual != strides:
        raise ValueError(f'YOLOv3: the neck returns maps of strides {actual} but the '
                         f'head expects fpn_strides {strides}; list fpn_strides in the '
                         f"neck's output order (coarse to fine for CustomCSPPAN)")


@register
class YOLOv3(BaseArch):
    """Single-stage detector made of ``backbone``, ``neck`` and ``yolo_head`` (the sub-module names
    are those of PaddleDetection's checkpoints).

    Inputs (dict):
        image ``[B, 3, H, W]`` float32, normalised network input.
        eval: ``im_shape [B, 2]`` (network input h, w) and ``scale_factor [B, 2]`` (y, x scale
        from the original image to the network input).
        train: ``gt_class [B, n, 1]`` int32/int64, ``gt_bbox [B, n, 4]`` float32 x1y1x2y2 pixels of
        the network input, ``pad_gt_mask [B, n, 1]`` float32 (1 = real box), ``epoch_id`` int.
    Outputs (dict):
        train: ``loss, loss_cls, loss_iou, loss_dfl, loss_l1`` scalars.
        eval: ``bbox [N, 6]`` (class_id, score, x1, y1, x2, y2 in original-image pixels) and
        ``bbox_num [B]`` int32; when the head excludes NMS, ``bbox [B, L, 4]`` decoded boxes in
        original-image pixels and ``scores [B, C, L]``; when it excludes post-processing, only
        ``bbox [B, L, 4 + C]``: network-input boxes then class scores.
    Raises:
        KeyError, TypeError, ValueError: before any computation, for an image that is not
        ``[B, 3, H, W]`` float or whose H or W is not a multiple of the largest of the head's
        ``fpn_strides`` (32), or a missing ``scale_factor`` in eval (unless the head excludes
        post-processing); the head's loss checks the
        training targets (``PPYOLOELoss``); feature maps whose strides are not the head's
        ``fpn_strides``.
    """
    __category__ = 'architecture'
    __shared__ = ['data_format']
    __inject__ = ['post_process']

    def __init__(self, backbone='CSPResNet', neck='CustomCSPPAN', yolo_head='PPYOLOEHead',
                 post_process=None, data_format='NCHW'):
        super().__init__(data_format=data_format)
        if post_process is not None:
            raise ValueError('YOLOv3: PP-YOLOE heads post-process themselves; set '
                             'YOLOv3.post_process to ~ (null)')
        self.backbone = backbone
        self.neck = neck
        self.yolo_head = yolo_head

    @classmethod
    def from_config(cls, cfg, *args, **kwargs):
        backbone = create(cfg['backbone'])
        neck = create(cfg['neck'], input_shape=backbone.out_shape)
        yolo_head = create(cfg['yolo_head'], input_shape=neck.out_shape)
        return {'backbone': backbone, 'neck': neck, 'yolo_head': yolo_head}

    def _features(self, inputs):
        image = inputs['image']
        strides = list(getattr(self.yolo_head, 'fpn_strides', []))
        _check_image(image, strides)
        feats = self.neck(self.backbone(inputs))
        _check_feature_strides(image, feats, strides)
        return feats

    def get_loss(self, inputs):
        return self.yolo_head(self._features(inputs), inputs)

    def get_pred(self, inputs):
        if 'scale_factor' not in inputs and 'scale_factor' in self.inference_inputs:
            raise KeyError('YOLOv3: eval inputs need "scale_factor" [B, 2] (network input / '
                           'original image size, y then x) to map boxes back to the image')
        head_outs = self.yolo_head(self._features(inputs))
        bbox, second = self.yolo_head.post_process(head_outs, inputs.get('scale_factor'))
        if getattr(self.yolo_head, 'exclude_post_process', False):
            return {'bbox': bbox}
        if getattr(self.yolo_head, 'exclude_nms', False):
            return {'bbox': bbox, 'scores': second}
        return {'bbox': bbox, 'bbox_num': second}

    @property
    def inference_inputs(self):
        """Names of the eval inputs the predictions depend on, in order: ``['image',
        'scale_factor']``, or ``['image']`` when the head excludes post-processing (its boxes stay
        in network-input pixels). These are an exported model's inputs: ``im_shape`` is never
        read, and a graph input nothing reads would break the export, so it is left out, as
        PaddleDetection's export prunes it."""
        if getattr(self.yolo_head, 'exclude_post_process', False):
            return ['image']
        return ['image', 'scale_factor']
