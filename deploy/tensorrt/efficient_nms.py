"""TensorRT's EfficientNMS plugin appended to the no-NMS ONNX model (onnx only, no TensorRT needed).

The no-NMS export (``tools/export_model.py -o exclude_nms=True --onnx``) ends in ``bbox [B, L, 4]``
(x1, y1, x2, y2, original-image pixels) and ``scores [B, C, L]``. ``add_efficient_nms`` transposes the
scores to the plugin's ``[B, L, C]`` and feeds both to an ``EfficientNMS_TRT`` node (TensorRT's
``efficientNMSPlugin``, version 1), whose outputs become the graph's:

* ``num_dets [B, 1]`` int32: detections kept per image;
* ``det_boxes [B, max_output_boxes, 4]`` float32: x1, y1, x2, y2 (original-image pixels);
* ``det_scores [B, max_output_boxes]`` float32;
* ``det_classes [B, max_output_boxes]`` int32.

Rows past ``num_dets`` are padding. The plugin's NMS is per class (low scores dropped, greedy
suppression by IoU), then the ``max_output_boxes`` best per image: the rule of PaddleDetection's
``multiclass_nms3`` with ``keep_top_k = max_output_boxes``, except that there is no ``nms_top_k``
(TensorRT bounds the candidates itself), rows come by descending score, not grouped by class, and
FP16 engines score in half precision; expect the same detections up to ties at the thresholds.

The node is in the custom domain ``trt`` so that ``onnx.checker`` accepts the graph; TensorRT's ONNX
parser finds plugins by operator name, whatever the domain (``trt.init_libnvinfer_plugins`` must
have registered them: ``build_engine.py`` does).

As a script (no TensorRT needed; the output goes to ``trtexec`` or ``build_engine.py``)::

    python deploy/tensorrt/efficient_nms.py --onnx_file output_inference/NAME/model.onnx \
        --infer_cfg output_inference/NAME/infer_cfg.yml --save_file model_trt_nms.onnx
        [--score_threshold S --iou_threshold T --max_output_boxes K]

The thresholds default to infer_cfg.yml's ``NMS`` (``score_threshold``, ``nms_threshold``,
``keep_top_k``).
"""

import argparse
import sys

import numpy as np

__all__ = ['add_efficient_nms', 'nms_settings', 'add_arguments', 'PLUGIN_OP', 'PLUGIN_DOMAIN',
           'OUTPUTS', 'main']

PLUGIN_OP = 'EfficientNMS_TRT'
PLUGIN_DOMAIN = 'trt'
OUTPUTS = ('num_dets', 'det_boxes', 'det_scores', 'det_classes')


def _output(graph, name):
    for info in graph.output:
        if info.name == name:
            return info
    raise ValueError(f'add_efficient_nms: the model has no output {name!r} (outputs: '
                     f'{[o.name for o in graph.output]}); export it with -o exclude_nms=True')


def add_efficient_nms(model, score_threshold, iou_threshold, max_output_boxes, boxes='bbox',
                      scores='scores'):
    """Append ``EfficientNMS_TRT`` to a no-NMS ONNX model (edited in place).

    Args:
        model (onnx.ModelProto): outputs ``boxes [B, L, 4]`` and ``scores [B, C, L]`` float32.
        score_threshold (float): lower-scored boxes are dropped.
        iou_threshold (float): in [0, 1]; IoU above it suppresses a lower-scored box of its class.
        max_output_boxes (int): detections per image, >= 1 (PaddleDetection's ``keep_top_k``).
        boxes, scores (str): names of the two raw outputs.
    Returns:
        the same ``model`` with the four outputs ``OUTPUTS``.
    Raises:
        ValueError: missing outputs, or thresholds / ``max_output_boxes`` out of range.
    """
    from onnx import TensorProto, helper  # here: build_engine.py imports this module without onnx

    if not (isinstance(max_output_boxes, (int, np.integer)) and max_output_boxes >= 1):
        raise ValueError(f'add_efficient_nms: max_output_boxes must be an int >= 1 (keep_top_k '
                         f'-1 has no TensorRT equivalent), got {max_output_boxes!r}')
    if not 0. <= float(iou_threshold) <= 1.:
        raise ValueError(f'add_efficient_nms: iou_threshold must be in [0, 1], got {iou_threshold}')
    graph = model.graph
    box_info, score_info = _output(graph, boxes), _output(graph, scores)
    batch = box_info.type.tensor_type.shape.dim[0]
    batch = batch.dim_value if batch.HasField('dim_value') else (batch.dim_param or 'batch')

    transposed = 'efficient_nms/scores_blc'
    graph.node.append(helper.make_node('Transpose', [scores], [transposed], perm=[0, 2, 1],
                                       name='efficient_nms/transpose_scores'))
    graph.node.append(helper.make_node(
        PLUGIN_OP, [boxes, transposed], list(OUTPUTS), name='efficient_nms', domain=PLUGIN_DOMAIN,
        plugin_version='1', background_class=-1, max_output_boxes=int(max_output_boxes),
        score_threshold=float(score_threshold), iou_threshold=float(iou_threshold),
        score_activation=0, box_coding=0))
    del graph.output[:]
    graph.output.extend([
        helper.make_tensor_value_info('num_dets', TensorProto.INT32, [batch, 1],
                                      doc_string='detections kept per image'),
        helper.make_tensor_value_info('det_boxes', TensorProto.FLOAT,
                                      [batch, int(max_output_boxes), 4],
                                      doc_string='x1, y1, x2, y2 in original-image pixels'),
        helper.make_tensor_value_info('det_scores', TensorProto.FLOAT,
                                      [batch, int(max_output_boxes)]),
        helper.make_tensor_value_info('det_classes', TensorProto.INT32,
                                      [batch, int(max_output_boxes)])])
    if not any(o.domain == PLUGIN_DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(PLUGIN_DOMAIN, 1))
    return model


def nms_settings(infer_cfg=None, score_threshold=None, iou_threshold=None, max_output_boxes=None):
    """The plugin's settings: the given values, else those of infer_cfg.yml's ``NMS``.

    Raises:
        ValueError: a setting given neither way.
    """
    nms = {}
    if infer_cfg:
        import yaml
        with open(infer_cfg) as f:
            nms = (yaml.safe_load(f) or {}).get('NMS') or {}
    settings = {
        'score_threshold': nms.get('score_threshold') if score_threshold is None else score_threshold,
        'iou_threshold': nms.get('nms_threshold') if iou_threshold is None else iou_threshold,
        'max_output_boxes': nms.get('keep_top_k') if max_output_boxes is None else max_output_boxes}
    missing = [k for k, v in settings.items() if v is None]
    if missing:
        raise ValueError(f'EfficientNMS needs {", ".join(missing)}: give --infer_cfg (its NMS '
                         f'section) or the flags')
    return settings


def add_arguments(parser):
    """The plugin's command-line flags (shared with build_engine.py)."""
    parser.add_argument('--infer_cfg', help="infer_cfg.yml whose NMS gives the plugin's settings")
    parser.add_argument('--score_threshold', type=float)
    parser.add_argument('--iou_threshold', type=float)
    parser.add_argument('--max_output_boxes', type=int, help="default: infer_cfg's keep_top_k")


def main(argv=None):
    import onnx
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--onnx_file', required=True, help='the no-NMS model.onnx')
    parser.add_argument('--save_file', required=True)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        settings = nms_settings(args.infer_cfg, args.score_threshold, args.iou_threshold,
                                args.max_output_boxes)
        model = add_efficient_nms(onnx.load(args.onnx_file), **settings)
    except (ValueError, OSError) as e:
        sys.exit(f'error: {e}')
    onnx.save(model, args.save_file)
    print(f'EfficientNMS_TRT ({settings}) appended: {args.save_file}')
    return args.save_file


if __name__ == '__main__':
    main()
