"""YOLOv3: the architecture name PaddleDetection's PP-YOLOE configs use (backbone -> neck -> head)."""

from ppdet_lite.core.workspace import create, register
from .meta_arch import BaseArch

__all__ = ['YOLOv3']


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
        original-image pixels and ``scores [B, C, L]``.
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
        return self.neck(self.backbone(inputs))

    def get_loss(self, inputs):
        return self.yolo_head(self._features(inputs), inputs)

    def get_pred(self, inputs):
        head_outs = self.yolo_head(self._features(inputs))
        bbox, second = self.yolo_head.post_process(head_outs, inputs['scale_factor'])
        if getattr(self.yolo_head, 'exclude_nms', False):
            return {'bbox': bbox, 'scores': second}
        return {'bbox': bbox, 'bbox_num': second}
