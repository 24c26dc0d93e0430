"""ONNX export: paddle2onnx on the NMS-free Paddle export, the graph repairs correctness needs, and
PaddleDetection's NMS appended as standard ONNX operators.

Entry point (``tools/export_model.py --onnx`` calls it after the Paddle export)::

    export_onnx(cfg, export_dir, opset_version=11, save_file=None)
        -> path of the written ONNX file (default ``export_dir/model.onnx``)

The ONNX model always starts from a Paddle export made with ``exclude_nms=True``: when ``export_dir``
holds the NMS variant (its infer_cfg.yml says ``exclude_nms: false``), the same model is exported once
more without NMS into a temporary directory.

- no-NMS variant (``exclude_nms=True``): outputs ``bbox [B, L, 4]`` float32 x1y1x2y2 in original-image
  pixels and ``scores [B, C, L]`` float32 (L anchors over all FPN levels). It uses only operators and
  data types TensorRT's ONNX parser reads (see ``tensorrt_issues``), so ``trtexec`` and
  ``deploy/tensorrt/build_engine.py`` take it as it is, with TensorRT's own NMS plugin if wanted.
- NMS variant: outputs ``bbox [N, 6]`` (class, score, x1, y1, x2, y2) and ``bbox_num [B]`` int32, the
  outputs of Paddle's ``multiclass_nms3`` with the config's ``MultiClassNMS`` settings, for any batch
  size (``onnx_nms.append_multiclass_nms``). paddle2onnx's own conversion of ``multiclass_nms3`` is not
  used: it loads only at batch 1, returns nothing for ``nms_top_k=-1`` and applies ``nms_top_k`` after
  suppression instead of before.

Inputs keep the Paddle export's names and shapes, each with a doc string: ``image [B, 3, H, W]``,
``scale_factor [B, 2]`` and, when the program reads it, ``im_shape [B, 2]`` (PP-YOLOE does not, so its
export has no ``im_shape`` input).

Tidying of paddle2onnx 2.1.0's output:
- outputs get the model's names (``bbox``/``scores``, ``bbox``/``bbox_num``, or ``bbox_scores`` for
  ``exclude_post_process``) instead of ``fetch_name_0``...; dynamic axes get readable names (``batch``,
  ``height``, ``width``, ``num_anchors``); paddle2onnx's Constant and Identity nodes are folded away.

paddle2onnx 2.x needs Paddle 3; with Paddle 2.6 (``model.pdmodel`` exports) install paddle2onnx 1.2.x
(``pip install "paddle2onnx>=1.2.3,<1.3"``; checked with Paddle 2.6.2 and paddle2onnx 1.2.11: the same
graphs, ONNX Runtime equal to Paddle Inference).
"""

import inspect
import os
import shutil
import tempfile

import numpy as np

from ppdet_lite.utils.logger import get_logger

__all__ = ['export_onnx', 'paddle_to_onnx', 'tensorrt_issues', 'INPUT_DOCS', 'TENSORRT_OPS']

logger = get_logger(__name__)

INPUT_DOCS = {
    'image': '[B, 3, H, W] float32: the images after the Preprocess steps of infer_cfg.yml (resized to '
             'H x W, normalised, channels first, RGB).',
    'im_shape': '[B, 2] float32: (h, w) of each image after resizing, i.e. H and W of the network '
                'input without padding.',
    'scale_factor': '[B, 2] float32: (scale_y, scale_x) = resized size / original size of each '
                    'image; boxes are divided by it so that they come out in original-image pixels.',
}

# Operators of the no-NMS graph that TensorRT's ONNX parser (TensorRT 8.4 and later) imports natively.
# Deliberately excluded: NonZero, NonMaxSuppression, Loop, If, Scan, ScatterND and custom domains
# (PaddleDetection's own ONNX fails trtexec on NonZero from its NMS).
TENSORRT_OPS = frozenset([
    'Add', 'AveragePool', 'BatchNormalization', 'Cast', 'Clip', 'Concat', 'Constant',
    'ConstantOfShape', 'Conv', 'ConvTranspose', 'Div', 'Equal', 'Exp', 'Expand', 'Flatten',
    'Gather', 'Gemm', 'GlobalAveragePool', 'GlobalMaxPool', 'Greater', 'HardSigmoid', 'HardSwish',
    'Identity', 'LeakyRelu', 'Less', 'Log', 'MatMul', 'Max', 'MaxPool', 'Min', 'Mul', 'Neg', 'Pad',
    'Pow', 'Range', 'Reciprocal', 'ReduceMax', 'ReduceMean', 'ReduceMin', 'ReduceSum', 'Relu',
    'Reshape', 'Resize', 'Shape', 'Sigmoid', 'Slice', 'Softmax', 'Softplus', 'Split', 'Sqrt',
    'Squeeze', 'Sub', 'Tanh', 'Tile', 'TopK', 'Transpose', 'Unsqueeze', 'Where'])


def _check_nms(nms):
    """``nms``: the ``NMS`` dict of infer_cfg.yml (MultiClassNMS's arguments)."""
    missing = [k for k in ('score_threshold', 'nms_threshold', 'nms_top_k', 'keep_top_k')
               if k not in nms]
    if missing:
        raise ValueError(f'export_onnx: the NMS settings lack {missing}: {nms!r}')
    # The ONNX subgraph reproduces the kernel for the settings PP-YOLOE uses; refuse the others
    # rather than export a model whose detections differ from Paddle's.
    if not nms.get('normalized', True) or nms.get('nms_eta', 1.0) != 1.0:
        raise ValueError(f'export_onnx: MultiClassNMS(normalized={nms.get("normalized")}, '
                         f'nms_eta={nms.get("nms_eta")}) has no ONNX equivalent; the ONNX NMS '
                         f'needs normalized=True and nms_eta=1.0')


def _run_paddle2onnx(model_file, params_file, save_file, opset_version):
    try:
        import paddle2onnx
    except ImportError as e:
        raise ImportError('export_onnx needs paddle2onnx (pip install -r requirements.txt; with '
                          'Paddle 2.6: pip install "paddle2onnx>=1.2.3,<1.3")') from e
    import paddle
    major = int(paddle2onnx.__version__.split('.')[0])
    paddle_major = int(paddle.__version__.split('.')[0])
    if model_file.endswith('.pdmodel') and major >= 2 and paddle_major < 3:
        raise RuntimeError(f'paddle2onnx {paddle2onnx.__version__} needs Paddle 3; with Paddle '
                           f'{paddle.__version__} install "paddle2onnx>=1.2.3,<1.3"')
    options = {}
    if 'optimize_tool' in inspect.signature(paddle2onnx.export).parameters:
        # paddle2onnx 2.x's default, Polygraphy constant folding, sets POLYGRAPHY_AUTOINSTALL_DEPS=1
        # and pip-installs onnx_graphsurgeon and sympy at run time, then spends seconds in sympy;
        # ONNX Runtime and TensorRT fold constants themselves.
        options['optimize_tool'] = 'none'
    paddle2onnx.export(model_filename=model_file, params_filename=params_file, save_file=save_file,
                       opset_version=opset_version, enable_onnx_checker=True, verbose=False,
                       **options)
    if not os.path.isfile(save_file):
        raise RuntimeError(f'paddle2onnx wrote no ONNX file for {model_file} (see its log above)')


def _tidy(graph):
    """Constant nodes become initializers, Identity nodes are bypassed and unused initializers
    dropped (paddle2onnx writes hundreds of each), so that the graph reads as the network and
    every constant is checked by ``tensorrt_issues``."""
    from onnx import numpy_helper
    outputs = {o.name for o in graph.output}
    kept, alias = [], {}
    for node in graph.node:
        node.input[:] = [alias.get(x, x) for x in node.input]
        value = next((a.t for a in node.attribute if a.name == 'value'), None)
        if node.op_type == 'Constant' and value is not None and node.output[0] not in outputs:
            graph.initializer.append(numpy_helper.from_array(numpy_helper.to_array(value),
                                                             node.output[0]))
        elif node.op_type == 'Identity' and node.output[0] not in outputs:
            alias[node.output[0]] = node.input[0]
        else:
            kept.append(node)
    del graph.node[:]
    graph.node.extend(kept)
    used = {x for node in kept for x in node.input}
    constants = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(constants)


def _rename_tensor(graph, old, new):
    for node in graph.node:
        node.input[:] = [new if x == old else x for x in node.input]
        node.output[:] = [new if x == old else x for x in node.output]
    for info in list(graph.output) + list(graph.input) + list(graph.value_info):
        if info.name == old:
            info.name = new


def _name_dynamic_axes(graph):
    """Readable names for the dynamic axes: ``batch``, ``height``, ``width`` of the inputs and
    ``batch``, ``num_anchors`` of the raw outputs (paddle2onnx numbers them DynamicDimension.N)."""
    layouts = {'image': ('batch', None, 'height', 'width'), 'im_shape': ('batch', None),
               'scale_factor': ('batch', None), 'bbox': ('batch', 'num_anchors', None),
               'scores': ('batch', None, 'num_anchors'),
               'bbox_scores': ('batch', 'num_anchors', None)}
    for info in list(graph.input) + list(graph.output):
        names = layouts.get(info.name, ())
        for dim, name in zip(info.type.tensor_type.shape.dim, names):
            if name and not dim.HasField('dim_value'):
                dim.dim_param = name


def paddle_to_onnx(model_dir, save_file, opset_version=11, nms=None):
    """Convert a Paddle inference export with raw outputs to ONNX.

    Args:
        model_dir (str): export made with ``exclude_nms=True`` (outputs boxes ``[B, L, 4]`` then
            scores ``[B, C, L]``) or ``exclude_post_process=True`` (one output, converted as is).
        save_file (str): ONNX file to write.
        opset_version (int): >= 11.
        nms (dict | None): append this NMS (``MultiClassNMS`` arguments, as in infer_cfg.yml's
            ``NMS``; see ``onnx_nms``); None keeps the raw outputs.
    Returns:
        the written ``onnx.ModelProto``.
    Raises:
        FileNotFoundError: no Paddle model in ``model_dir``.
        ValueError: outputs that are not the raw boxes and scores while ``nms`` is given, an NMS the
            ONNX graph cannot reproduce, or an opset below 11.
    """
    import onnx
    from .export import find_model_file
    from .onnx_nms import append_multiclass_nms

    if opset_version < 11:
        raise ValueError(f'export_onnx: opset_version must be >= 11, got {opset_version}')
    if nms is not None:
        _check_nms(nms)
    model_file, params_file = find_model_file(model_dir)
    work = tempfile.mkdtemp(prefix='ppdet_lite_onnx_')
    try:
        raw_file = os.path.join(work, 'raw.onnx')
        _run_paddle2onnx(model_file, params_file, raw_file, opset_version)
        model = onnx.load(raw_file)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    graph = model.graph
    _tidy(graph)
    for info in graph.input:
        info.doc_string = INPUT_DOCS.get(info.name, info.doc_string)
    outputs = [o.name for o in graph.output]
    if len(outputs) == 2:
        ranks = [len(o.type.tensor_type.shape.dim) for o in graph.output]
        last = graph.output[0].type.tensor_type.shape.dim[-1].dim_value if ranks[0] else 0
        if ranks != [3, 3] or last != 4:
            raise ValueError(f'export_onnx: {model_dir} must output boxes [B, L, 4] and scores '
                             f'[B, C, L] (an exclude_nms=True export); got outputs {outputs} of '
                             f'ranks {ranks}')
        # with NMS appended, 'bbox' becomes the name of the NMS output
        _rename_tensor(graph, outputs[0], 'bbox' if nms is None else 'raw_bbox')
        _rename_tensor(graph, outputs[1], 'scores' if nms is None else 'raw_scores')
        graph.output[0].doc_string = ('[B, L, 4] float32 boxes x1, y1, x2, y2 in original-image '
                                      'pixels, one per anchor point')
        graph.output[1].doc_string = '[B, C, L] float32 class scores of each box'
    elif nms is not None:
        raise ValueError(f'export_onnx: NMS needs an export with boxes and scores outputs; '
                         f'{model_dir} has {outputs}')
    elif len(outputs) == 1:
        _rename_tensor(graph, outputs[0], 'bbox_scores')
        graph.output[0].doc_string = ('[B, L, 4 + C] float32: boxes x1, y1, x2, y2 in network-input '
                                      'pixels, then the C class scores (exclude_post_process)')
    _name_dynamic_axes(graph)
    if nms is not None:
        append_multiclass_nms(model, 'raw_bbox', 'raw_scores', float(nms['score_threshold']),
                              float(nms['nms_threshold']), int(nms['nms_top_k']),
                              int(nms['keep_top_k']))
    model.producer_name = 'ppdet_lite (paddle2onnx)'
    onnx.checker.check_model(model)
    onnx.save(model, save_file)
    return model


def tensorrt_issues(model):
    """What in an ONNX model TensorRT's parser cannot take; an empty list when it can take it all.

    Rules: every node is a standard-domain operator of ``TENSORRT_OPS``; no graph input or output is
    int64; INT64 initializers (shape arithmetic: Reshape targets, Concat of shape pieces, Range
    bounds) hold values that fit in int32, because TensorRT 8.x casts them to INT32 (TensorRT 10
    reads INT64 as it is); nothing is float64 (no initializer, Cast target or graph input/output),
    a type TensorRT does not have.

    Args:
        model (onnx.ModelProto).
    Returns:
        list of str, one per problem, naming the node or tensor.
    """
    from onnx import TensorProto, numpy_helper

    issues = []
    info32 = np.iinfo(np.int32)
    for init in model.graph.initializer:
        if init.data_type == TensorProto.DOUBLE:
            issues.append(f'initializer {init.name} is float64')
        if init.data_type == TensorProto.INT64:
            value = numpy_helper.to_array(init)
            if value.size and (value.min() < info32.min or value.max() > info32.max):
                issues.append(f'INT64 initializer {init.name} holds values outside int32')
    for node in model.graph.node:
        if node.domain not in ('', 'ai.onnx') or node.op_type not in TENSORRT_OPS:
            issues.append(f'{node.op_type} node {node.name or node.output[0]}: operator '
                          f'{node.domain or "ai.onnx"}::{node.op_type} is not in the TensorRT set')
        if node.op_type == 'Cast' and any(a.name == 'to' and a.i == TensorProto.DOUBLE
                                          for a in node.attribute):
            issues.append(f'Cast node {node.name or node.output[0]} casts to float64')
    for kind, infos in (('input', model.graph.input), ('output', model.graph.output)):
        for info in infos:
            if info.type.tensor_type.elem_type in (TensorProto.INT64, TensorProto.DOUBLE):
                issues.append(f'graph {kind} {info.name} is '
                              f'{TensorProto.DataType.Name(info.type.tensor_type.elem_type)}')
    return issues


def export_onnx(cfg, export_dir, opset_version=11, save_file=None):
    """Write the ONNX model of the Paddle export in ``export_dir``.

    The variant follows the export's infer_cfg.yml: ``exclude_nms`` (or ``exclude_post_process``)
    exports convert as they are; an export with NMS is exported once more with ``exclude_nms=True``
    (``export_model`` into a temporary directory, same config and weights), converted, and given
    the ONNX NMS with infer_cfg.yml's ``NMS`` settings.

    Args:
        cfg (dict): the config the export was made from (``weights`` set).
        export_dir (str): directory written by ``export_model`` (Paddle model + infer_cfg.yml).
        opset_version (int): ONNX opset, >= 11.
        save_file (str | None): default ``export_dir/model.onnx``.
    Returns:
        str: path of the ONNX file.
    Raises:
        FileNotFoundError: no Paddle model or infer_cfg.yml in ``export_dir``.
        ValueError, ImportError, RuntimeError: see ``paddle_to_onnx``.
    """
    import yaml

    infer_cfg_file = os.path.join(export_dir, 'infer_cfg.yml')
    if not os.path.isfile(infer_cfg_file):
        raise FileNotFoundError(f'{infer_cfg_file} not found; run tools/export_model.py first')
    with open(infer_cfg_file) as f:
        infer_cfg = yaml.safe_load(f) or {}
    save_file = save_file or os.path.join(export_dir, 'model.onnx')
    if infer_cfg.get('exclude_nms') or infer_cfg.get('exclude_post_process'):
        issues = tensorrt_issues(paddle_to_onnx(export_dir, save_file, opset_version))
        if issues:
            logger.warning('%s: TensorRT will not parse: %s', save_file, '; '.join(issues))
    else:
        from .export import export_model
        nms = infer_cfg.get('NMS')
        if not isinstance(nms, dict):
            raise ValueError(f'{infer_cfg_file}: no NMS settings (key NMS) for the ONNX NMS')
        _check_nms(nms)
        raw_parent = tempfile.mkdtemp(prefix='ppdet_lite_raw_')
        try:
            raw_dir = export_model(cfg, raw_parent, exclude_nms=True, temporary=True)
            paddle_to_onnx(raw_dir, save_file, opset_version, nms=nms)
        finally:
            shutil.rmtree(raw_parent, ignore_errors=True)
        logger.info('ONNX model saved to %s (converted from a temporary export without NMS, '
                    'followed by the ONNX NMS of infer_cfg.yml: outputs bbox, bbox_num)',
                    save_file)
        return save_file
    logger.info('ONNX model saved to %s', save_file)
    return save_file
