"""PaddleDetection's multi-class NMS appended to an ONNX graph as standard ONNX operators.

paddle2onnx 2.1.0 converts Paddle's ``multiclass_nms3`` into a graph that only loads at batch 1, returns
nothing for ``nms_top_k=-1`` and applies ``nms_top_k`` after suppression instead of before it (so the
detections differ). The raw outputs of a ``exclude_nms=True`` export, boxes ``[B, L, 4]`` and scores
``[B, C, L]``, are exactly the layout of ONNX's ``NonMaxSuppression``, so the NMS variant of the ONNX
model is that export plus the subgraph built here, which reproduces ``multiclass_nms3``'s CPU kernel
(``paddle/phi/kernels/cpu/multiclass_nms3_kernel.cc``, ``normalized=True``, ``nms_eta=1``, no
background class):

1. per image and class, candidates are the scores ``> score_threshold``; the ``nms_top_k`` best of them
   (all for -1) enter greedy NMS, which drops a box whose IoU with a kept one is ``> nms_threshold``;
2. per image, the ``keep_top_k`` best kept boxes over all classes survive (all for -1), ties going to
   the lower class, then the lower box index;
3. rows are ordered by image, then class, then descending score.

Outputs: ``bbox [N, 6]`` float32 rows (class, score, x1, y1, x2, y2) of all images in order and
``bbox_num [B]`` int32 rows per image, PaddleDetection's ``multiclass_nms3`` outputs. Batch size,
image size and the number of boxes may all be dynamic.
"""

import numpy as np
from onnx import TensorProto, helper, numpy_helper

__all__ = ['append_multiclass_nms']

_PREFIX = 'multiclass_nms/'


class _Builder(object):
    """Appends nodes and constants under one name prefix to a graph."""

    def __init__(self, graph):
        self.graph = graph
        self.count = 0

    def name(self, hint):
        self.count += 1
        return f'{_PREFIX}{hint}_{self.count}'

    def const(self, value, dtype, hint='const'):
        name = self.name(hint)
        self.graph.initializer.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type, inputs, hint=None, outputs=1, **attrs):
        names = [self.name(hint or op_type.lower()) for _ in range(outputs)]
        self.graph.node.append(helper.make_node(op_type, list(inputs), names,
                                                name=self.name(op_type), **attrs))
        return names[0] if outputs == 1 else names

    def dim(self, tensor, axis):
        """``tensor.shape[axis]`` as an int64 ``[1]`` tensor (dynamic sizes stay dynamic)."""
        shape = self.op('Shape', [tensor])
        return self.op('Slice', [shape, self.const([axis], np.int64), self.const([axis + 1], np.int64),
                                 self.const([0], np.int64)], hint=f'dim{axis}')

    def take(self, tensor, order):
        """Rows of ``tensor`` reordered (or selected) by the int64 indices ``order``."""
        return self.op('Gather', [tensor, order], axis=0)

    def stable_argsort(self, key, ascending):
        """Indices sorting the 1-D float ``key``; ONNX's TopK puts the lower index first among equal
        values, which makes the sort stable."""
        count = self.dim(key, 0)
        _, order = self.op('TopK', [key, count], outputs=2, axis=0, largest=0 if ascending else 1)
        return order


def append_multiclass_nms(model, boxes, scores, score_threshold, nms_threshold, nms_top_k, keep_top_k,
                          outputs=('bbox', 'bbox_num')):
    """Replace the graph outputs of ``model`` by PaddleDetection's NMS of ``boxes`` and ``scores``.

    Args:
        model (onnx.ModelProto): opset >= 11; edited in place.
        boxes (str): graph tensor ``[B, L, 4]`` float32, x1y1x2y2 (original-image pixels).
        scores (str): graph tensor ``[B, C, L]`` float32.
        score_threshold (float): candidates need a score strictly above it.
        nms_threshold (float): IoU above which a lower-scored box of the same class is dropped.
        nms_top_k (int): candidates per image and class entering NMS; -1 for all.
        keep_top_k (int): detections kept per image over all classes; -1 for all.
        outputs (tuple): names of the two new graph outputs.
    Returns:
        the same ``model`` with outputs ``bbox [N, 6]`` float32 and ``bbox_num [B]`` int32.
    Raises:
        ValueError: an opset below 11, top-k values that are neither -1 nor >= 1, or a tensor name
            that is not in the graph.
    """
    opset = next((o.version for o in model.opset_import if o.domain in ('', 'ai.onnx')), 0)
    if opset < 11:
        raise ValueError(f'append_multiclass_nms: the model has opset {opset}; NonMaxSuppression '
                         f'with dynamic outputs, TopK with a tensor k and CumSum need opset >= 11')
    for key, value in (('nms_top_k', nms_top_k), ('keep_top_k', keep_top_k)):
        if not isinstance(value, int) or (value != -1 and value < 1):
            raise ValueError(f'append_multiclass_nms: {key} must be -1 (no limit) or >= 1, '
                             f'got {value!r}')
    produced = {o for n in model.graph.node for o in n.output} | {i.name for i in model.graph.input}
    for key, name in (('boxes', boxes), ('scores', scores)):
        if name not in produced:
            raise ValueError(f'append_multiclass_nms: {key} tensor {name!r} is not in the graph')

    b = _Builder(model.graph)
    num_boxes = b.dim(scores, 2)

    # 1. nms_top_k acts before suppression (ONNX's max_output_boxes_per_class acts after it): the
    #    scores outside each class's top k are pushed below any threshold.
    nms_scores = scores
    if nms_top_k == -1:
        max_per_class = num_boxes
    else:
        limit = b.const([nms_top_k], np.int64, 'nms_top_k')
        k = b.op('Where', [b.op('Less', [num_boxes, limit]), num_boxes, limit])
        _, top_index = b.op('TopK', [scores, k], outputs=2, axis=2, largest=1)
        zeros = b.op('ConstantOfShape', [b.op('Shape', [scores])],
                     value=helper.make_tensor('zero', TensorProto.FLOAT, [1], [0.]))
        ones = b.op('ConstantOfShape', [b.op('Shape', [top_index])],
                    value=helper.make_tensor('one', TensorProto.FLOAT, [1], [1.]))
        in_top = b.op('ScatterElements', [zeros, top_index, ones], axis=2)
        nms_scores = b.op('Where', [b.op('Greater', [in_top, b.const(.5, np.float32)]), scores,
                                    b.const(-np.inf, np.float32)])
        max_per_class = limit
    selected = b.op('NonMaxSuppression', [
        boxes, nms_scores, max_per_class, b.const([nms_threshold], np.float32, 'iou_threshold'),
        b.const([score_threshold], np.float32, 'score_threshold')])

    # selected: [K, 3] int64 (image, class, box), by image, class, then descending score.
    image = b.op('Gather', [selected, b.const(0, np.int64)], axis=1)
    label = b.op('Gather', [selected, b.const(1, np.int64)], axis=1)
    box_index = b.op('Gather', [selected, b.const(2, np.int64)], axis=1)
    score = b.op('GatherND', [scores, selected])
    column = b.const([-1, 1], np.int64, 'column')
    box = b.op('GatherND', [boxes, b.op('Concat', [b.op('Reshape', [image, column]),
                                                     b.op('Reshape', [box_index, column])], axis=1)])

    # 2. per image, by descending score (stable: ties keep the class order, as the kernel's
    #    stable sort of its class-ordered list does).
    def reorder(order, *tensors):
        return [b.take(t, order) for t in tensors]

    image, label, score, box = reorder(b.stable_argsort(score, ascending=False),
                                       image, label, score, box)
    image, label, score, box = reorder(
        b.stable_argsort(b.op('Cast', [image], to=TensorProto.FLOAT), ascending=True),
        image, label, score, box)
    batch = b.dim(boxes, 0)
    image_ids = b.op('Range', [b.const(0, np.int64), b.op('Reshape', [batch, b.const([], np.int64)]),
                               b.const(1, np.int64)])
    one_hot = b.op('Cast', [b.op('Equal', [b.op('Reshape', [image, column]),
                                           b.op('Reshape', [image_ids, b.const([1, -1], np.int64)])])],
                   to=TensorProto.FLOAT)  # [K, B]
    count = b.op('MatMul', [b.op('ConstantOfShape', [
        b.op('Concat', [b.const([1], np.int64), b.dim(image, 0)], axis=0)],
        value=helper.make_tensor('one', TensorProto.FLOAT, [1], [1.])), one_hot])  # [1, B]
    if keep_top_k != -1:
        # rank of each row within its image: running count of its image's rows, minus one
        running = b.op('CumSum', [one_hot, b.const(0, np.int64)])
        rank = b.op('GatherElements', [running, b.op('Reshape', [image, column])], axis=1)
        keep = b.op('Reshape', [b.op('Less', [rank, b.const(keep_top_k + .5, np.float32)]),
                                b.const([-1], np.int64)])
        image, label, score, box = [b.op('Compress', [t, keep], axis=0)
                                    for t in (image, label, score, box)]
        count = b.op('Min', [count, b.const(float(keep_top_k), np.float32)])

    # 3. the kernel's output order: image, class, descending score (both sorts stable).
    num_classes = b.dim(scores, 1)
    group = b.op('Cast', [b.op('Add', [b.op('Mul', [image, num_classes]), label])],
                 to=TensorProto.FLOAT)
    label, score, box = reorder(b.stable_argsort(group, ascending=True), label, score, box)
    bbox = b.op('Concat', [b.op('Reshape', [b.op('Cast', [label], to=TensorProto.FLOAT), column]),
                           b.op('Reshape', [score, column]), box], axis=1)
    bbox_num = b.op('Cast', [b.op('Reshape', [count, b.const([-1], np.int64)])],
                    to=TensorProto.INT32)

    b.graph.node.append(helper.make_node('Identity', [bbox], [outputs[0]], name=_PREFIX + 'bbox'))
    b.graph.node.append(helper.make_node('Identity', [bbox_num], [outputs[1]],
                                         name=_PREFIX + 'bbox_num'))
    del model.graph.output[:]
    model.graph.output.extend([
        helper.make_tensor_value_info(outputs[0], TensorProto.FLOAT, ['num_detections', 6],
                                      doc_string='detections of all images in order: class id, '
                                                 'score, x1, y1, x2, y2 (original-image pixels)'),
        helper.make_tensor_value_info(outputs[1], TensorProto.INT32, ['batch'],
                                      doc_string='number of bbox rows of each image')])
    return model
