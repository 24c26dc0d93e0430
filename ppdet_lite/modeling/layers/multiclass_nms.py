"""Multi-class NMS through Paddle's own ``multiclass_nms3`` operator.

Using the framework operator (not a Python loop) keeps NMS inside exported inference programs, where
Paddle Inference runs it natively, paddle2onnx maps it to ONNX NonMaxSuppression and the TensorRT
subgraph engine to its NMS plugin.
"""

import paddle
from paddle.base.layer_helper import LayerHelper

from ppdet_lite.core.workspace import register, serializable
from ..checks import check_bool, check_int, check_number, check_tensor

__all__ = ['MultiClassNMS', 'multiclass_nms']

# Paddle >= 2.6 builds programs either as dynamic graphs or as PIR programs (default in 3.x), both
# through the ``_C_ops`` functions; older paddles have only the legacy static program below.
_in_eager_or_pir = getattr(paddle.framework, 'in_dynamic_or_pir_mode', paddle.in_dynamic_mode)


def multiclass_nms(bboxes, scores, score_threshold, nms_top_k, keep_top_k, nms_threshold=0.3,
                   normalized=True, nms_eta=1., background_label=-1, rois_num=None):
    """Per class: drop scores <= ``score_threshold``, keep the ``nms_top_k`` best (-1: all), greedy
    NMS at IoU ``nms_threshold``; per image, keep the ``keep_top_k`` best over all classes (-1: all).

    Args:
        bboxes (Tensor): [B, M, 4] float32 boxes x1y1x2y2 (or [M, C, 4] with ``rois_num``).
        scores (Tensor): [B, C, M] float32 scores (or [M, C] with ``rois_num``).
        normalized (bool): True: box area is ``w * h``; False: pixel-inclusive ``(w + 1) * (h + 1)``.
        nms_eta (float): adaptive NMS; below 1 the threshold shrinks by this factor after each
            kept box while it is above 0.5.
        background_label (int): class index skipped entirely (-1: none).
        rois_num (Tensor | None): [B] int32 boxes per image for the [M, C, 4] layout.
    Raises:
        TypeError, ValueError: arguments out of range (see ``MultiClassNMS``), or boxes and
            scores whose shapes do not fit together (checked statically).
    Returns:
        out: [N, 6] float32 rows (class, score, x1, y1, x2, y2), images concatenated in order and
            each image's rows by class id, then by descending score (Paddle's kernel order);
        index: [N, 1] int32 position of each row's box in the flattened ``[B * M]`` input;
        nms_rois_num: [B] int32 rows per image.
    """
    _check_arguments('multiclass_nms', score_threshold, nms_top_k, keep_top_k, nms_threshold,
                     normalized, nms_eta)
    check_int('multiclass_nms', 'background_label', background_label, minimum=-1)
    if rois_num is None:
        sizes = {}
        check_tensor('multiclass_nms', 'bboxes', bboxes, ['B', 'M', 4], sizes,
                     dtypes=('float32', 'float64'))
        check_tensor('multiclass_nms', 'scores', scores, ['B', None, 'M'], sizes,
                     dtypes=('float32', 'float64'))
    else:
        sizes = {}
        check_tensor('multiclass_nms', 'bboxes', bboxes, ['M', 'C', 4], sizes,
                     dtypes=('float32', 'float64'))
        check_tensor('multiclass_nms', 'scores', scores, ['M', 'C'], sizes,
                     dtypes=('float32', 'float64'))
    if _in_eager_or_pir():
        out, index, nms_rois_num = paddle._C_ops.multiclass_nms3(
            bboxes, scores, rois_num, score_threshold, nms_top_k, keep_top_k, nms_threshold,
            normalized, nms_eta, background_label)
    else:
        helper = LayerHelper('multiclass_nms3')
        out = helper.create_variable_for_type_inference(dtype=bboxes.dtype)
        index = helper.create_variable_for_type_inference(dtype='int32')
        nms_rois_num = helper.create_variable_for_type_inference(dtype='int32')
        inputs = {'BBoxes': bboxes, 'Scores': scores}
        if rois_num is not None:
            inputs['RoisNum'] = rois_num
        helper.append_op(
            type='multiclass_nms3', inputs=inputs,
            outputs={'Out': out, 'Index': index, 'NmsRoisNum': nms_rois_num},
            attrs={'background_label': background_label, 'score_threshold': score_threshold,
                   'nms_top_k': nms_top_k, 'nms_threshold': nms_threshold,
                   'keep_top_k': keep_top_k, 'nms_eta': nms_eta, 'normalized': normalized})
    for t in (out, index, nms_rois_num):
        t.stop_gradient = True
    return out, index, nms_rois_num


def _check_arguments(owner, score_threshold, nms_top_k, keep_top_k, nms_threshold, normalized,
                     nms_eta):
    # A top-k of 0 keeps nothing, silently: -1 is the "no limit" value.
    check_number(owner, 'score_threshold', score_threshold)
    check_int(owner, 'nms_top_k', nms_top_k, minimum=1, also=(-1,))
    check_int(owner, 'keep_top_k', keep_top_k, minimum=1, also=(-1,))
    check_number(owner, 'nms_threshold', nms_threshold, low=0, high=1)
    check_bool(owner, 'normalized', normalized)
    check_number(owner, 'nms_eta', nms_eta, low=0, low_open=True)


@register
@serializable
class MultiClassNMS(object):
    """PaddleDetection's ``MultiClassNMS`` (same arguments and defaults).

    Args:
        score_threshold, nms_top_k, keep_top_k, nms_threshold, normalized, nms_eta: see
            ``multiclass_nms``.
        return_index (bool): also return the kept boxes' input indices.
        return_rois_num (bool): kept for config compatibility; the per-image counts are always
            returned.
        trt (bool): build the graph for Paddle Inference's TensorRT engine (see ``__call__``).
    Raises:
        TypeError, ValueError: ``nms_top_k`` / ``keep_top_k`` neither -1 nor >= 1,
            ``nms_threshold`` outside [0, 1], ``nms_eta <= 0``, a non-number threshold or a
            non-bool flag.
    """

    def __init__(self, score_threshold=.05, nms_top_k=-1, keep_top_k=100, nms_threshold=.5,
                 normalized=True, nms_eta=1.0, return_index=False, return_rois_num=True,
                 trt=False):
        owner = type(self).__name__
        _check_arguments(owner, score_threshold, nms_top_k, keep_top_k, nms_threshold, normalized,
                         nms_eta)
        for name, value in (('return_index', return_index), ('return_rois_num', return_rois_num),
                            ('trt', trt)):
            check_bool(owner, name, value)
        self.score_threshold = score_threshold
        self.nms_top_k = nms_top_k
        self.keep_top_k = keep_top_k
        self.nms_threshold = nms_threshold
        self.normalized = normalized
        self.nms_eta = nms_eta
        self.return_index = return_index
        self.return_rois_num = return_rois_num
        self.trt = trt

    def __call__(self, bboxes, score, background_label=-1):
        """
        Args:
            bboxes (Tensor | tuple): [B, M, 4] float32 x1y1x2y2, or ``(boxes [M, C, 4],
                rois_num [B] int32)`` for per-class boxes (two-stage heads).
            score (Tensor): [B, C, M] float32, or [M, C] with per-class boxes.
            background_label (int): class to ignore (-1 for YOLO-style heads, which have none).
        Returns:
            bbox [N, 6] float32 (class, score, x1, y1, x2, y2), bbox_num [B] int32, and
            index [N, 1] int32 when ``return_index`` else None.
        """
        rois_num = None
        if isinstance(bboxes, tuple):
            bboxes, rois_num = bboxes
        nms_eta = self.nms_eta
        if self.trt:
            # Paddle Inference hands multiclass_nms3 to TensorRT's batched-NMS plugin only when
            # nms_eta > 1 (and nms_top_k, keep_top_k >= 0); the CPU/GPU kernels adapt the threshold
            # only for eta < 1, so elsewhere results are unchanged. The plugin's output is padded
            # with class -1 rows, which are removed below.
            nms_eta = 1.1
        bbox, index, bbox_num = multiclass_nms(
            bboxes, score, self.score_threshold, self.nms_top_k, self.keep_top_k,
            self.nms_threshold, self.normalized, nms_eta, background_label, rois_num)
        if self.trt:
            bbox = bbox.reshape([1, -1, 6])
            bbox = paddle.gather_nd(bbox, paddle.nonzero(bbox[..., 0] != -1))
        return bbox, bbox_num, index if self.return_index else None
