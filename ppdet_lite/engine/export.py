"""Export a trained detector as a Paddle inference model plus ``infer_cfg.yml``.

PaddleDetection 2.6's ``Trainer.export`` and ``ppdet/engine/export_utils.py``: the eval model with
its weights (a checkpoint's ``.pdparams``: the EMA weights when training used EMA), RepVGG blocks
fused (``convert_to_deploy``), traced by ``paddle.jit.to_static`` and written by
``paddle.jit.save`` to ``<output_dir>/<config stem>/``:

* ``model.json`` (Paddle 3.x, PIR) or ``model.pdmodel`` (Paddle 2.6) and ``model.pdiparams``;
  ``find_model_file`` finds whichever is there.
* ``infer_cfg.yml``: ``mode``, ``draw_threshold``, ``metric``, ``use_dynamic_shape``, ``arch``,
  ``min_subgraph_size`` (PaddleDetection's values for YOLO: ``YOLO``, 3), ``Preprocess`` (built
  from the TestReader's transform objects, so the deploy runners resize and normalise exactly as
  ``tools/infer.py`` does), ``label_list``, and ``exclude_nms`` / ``exclude_post_process`` /
  ``NMS`` (the head's NMS settings), which the deploy runners need to post-process a model
  exported without NMS.

Inputs (``paddle.static.InputSpec``; sizes from ``TestReader.inputs_def.image_shape``, ``[3, H,
W]``, multiples of 32, ``-1`` for a dynamic size; batch always dynamic):

* ``image`` ``[None, 3, H, W]`` float32: the preprocessed image (see ``deploy/python/preprocess``).
* ``scale_factor`` ``[None, 2]`` float32: (resized / original) as (y, x); boxes are divided by it.
* ``im_shape`` ``[None, 2]`` is declared by PaddleDetection but PP-YOLOE never reads it; like
  PaddleDetection's export, which prunes unused inputs, it is left out, and so is
  ``scale_factor`` with ``exclude_post_process`` (``YOLOv3.inference_inputs``).

Outputs, in order: ``bbox [N, 6]`` (class, score, x1, y1, x2, y2; original pixels) and ``bbox_num
[B]`` int32; with ``exclude_nms``: ``bbox [B, L, 4]`` (original pixels) and ``scores [B, C, L]``;
with ``exclude_post_process``: ``[B, L, 4 + C]`` (network-input pixels, then scores).
"""

import copy
import os

import paddle
import yaml

from ppdet_lite.core.workspace import create, merge_config
from ppdet_lite.data.datasets.category import get_categories
from ppdet_lite.data.transforms import Decode, NormalizeImage, PadBatch, Permute, Resize
from ppdet_lite.utils.checkpoint import checkpoint_stem, load_weights
from ppdet_lite.utils.logger import get_logger

__all__ = ['export_model', 'build_inference_model', 'export_image_shape', 'deploy_preprocess',
           'infer_config', 'find_model_file', 'refuse_export_switches', 'MODEL_FILES',
           'EXPORT_SWITCHES']

logger = get_logger(__name__)

# What paddle.jit.save writes: the program (PIR JSON on Paddle 3.x, ProgramDesc on 2.6), weights.
MODEL_FILES = ('model.json', 'model.pdmodel')
PARAMS_FILE = 'model.pdiparams'
# Head switches that change the model's outputs for deployment; eager inference and evaluation
# need the NMS output (bbox, bbox_num).
EXPORT_SWITCHES = ('exclude_nms', 'exclude_post_process')
# PaddleDetection's TRT_MIN_SUBGRAPH entry for YOLO architectures ('YOLO' in 'YOLOv3').
_ARCH = {'YOLOv3': ('YOLO', 3)}


def find_model_file(model_dir):
    """``(program file, params file)`` of an export directory: ``model.json`` (Paddle 3.x) or
    ``model.pdmodel`` (Paddle 2.6), and ``model.pdiparams``.

    Raises:
        FileNotFoundError: neither program file, or no params file, naming the directory.
    """
    params = os.path.join(model_dir, PARAMS_FILE)
    for name in MODEL_FILES:
        path = os.path.join(model_dir, name)
        if os.path.isfile(path) and os.path.isfile(params):
            return path, params
    raise FileNotFoundError(f'{model_dir}: no exported model (expected {" or ".join(MODEL_FILES)} '
                            f'and {PARAMS_FILE}; run tools/export_model.py)')


def refuse_export_switches(cfg, tool):
    """Refuse ``exclude_nms`` / ``exclude_post_process`` outside the export.

    ``tools/infer.py`` and ``tools/eval.py`` read the model's NMS output (``bbox``,
    ``bbox_num``); these switches remove it and only make sense for ``tools/export_model.py``
    (whose deploy runners then run NMS themselves).

    Raises:
        ValueError: a switch set true (globally or under ``PPYOLOEHead``), naming the key.
    """
    head = cfg.get('PPYOLOEHead') or {}
    for key in EXPORT_SWITCHES:
        if cfg.get(key) or (isinstance(head, dict) and head.get(key)):
            raise ValueError(f'{key}=True is an export switch (tools/export_model.py): {tool} '
                             f'runs the model with its NMS and needs its bbox / bbox_num '
                             f'outputs; remove {key} from -o and the config')


def export_image_shape(cfg):
    """``[3, H, W]`` from ``TestReader.inputs_def.image_shape`` (``[3, -1, -1]`` when unset, as
    PaddleDetection), checked.

    Raises:
        ValueError: not ``[3, H, W]`` (a leading batch entry is accepted and dropped), H and W not
            both -1 or both positive multiples of 32.
    """
    inputs_def = (cfg.get('TestReader') or {}).get('inputs_def') or {}
    shape = inputs_def.get('image_shape')
    if shape is None:
        return [3, -1, -1]
    shape = list(shape)
    if len(shape) == 4:
        shape = shape[1:]
    dynamic = len(shape) == 3 and shape[1] == -1 and shape[2] == -1
    fixed = len(shape) == 3 and all(isinstance(s, int) and s > 0 and s % 32 == 0
                                    for s in shape[1:])
    if len(shape) != 3 or shape[0] != 3 or not (dynamic or fixed):
        raise ValueError(f'TestReader.inputs_def.image_shape must be [3, H, W] with H and W '
                         f'multiples of 32 (non-square allowed) or both -1 (dynamic), got '
                         f'{inputs_def.get("image_shape")!r}')
    return shape


def _export_config(cfg, exclude_nms, exclude_post_process, trt, dynamic, image_shape):
    """A copy of ``cfg`` with the export switches (shared keys of the head) applied."""
    cfg = copy.deepcopy(cfg)
    overrides = {}
    for key, value in (('exclude_nms', exclude_nms),
                       ('exclude_post_process', exclude_post_process), ('trt', trt)):
        if value is not None:
            overrides[key] = bool(value)
    eval_size = cfg.get('eval_size')
    if dynamic and eval_size:
        # eval_size precomputes the anchors for one input size; a dynamic export needs them
        # computed from the feature maps of each input
        logger.info(f'dynamic image_shape: eval_size {list(eval_size)} not used for the export')
        overrides['eval_size'] = None
    elif eval_size and list(eval_size) != list(image_shape[1:]):
        raise ValueError(f'TestReader.inputs_def.image_shape {image_shape} and eval_size '
                         f'{list(eval_size)} differ: the anchors are fixed for eval_size; set both '
                         f'to the export size (or eval_size: null)')
    if overrides:
        merge_config(overrides, cfg)
    return cfg


def build_inference_model(cfg, weights=None):
    """The eval model of ``cfg`` with ``weights`` (default ``cfg.weights``) and RepVGG fused.

    ``weights`` is a checkpoint stem or ``.pdparams`` file; a checkpoint saved with EMA holds the
    EMA weights in ``.pdparams`` (its ``.pdema`` the raw ones), so those are used.

    Raises:
        ValueError: no weights given, or a file that does not fill the whole model (a model
            exported with random tensors is never what was meant).
        FileNotFoundError: the ``.pdparams`` file is missing.
    """
    weights = weights if weights is not None else cfg.get('weights')
    if not weights:
        raise ValueError('no weights: pass -o weights=path/to/model_final')
    model = create(cfg.architecture, cfg=cfg)
    report = load_weights(model, weights)
    if report.missing or report.mismatched:
        raise ValueError(f'weights {weights}: {report}; was it trained with this config '
                         f'(width_mult, depth_mult, num_classes)?')
    if os.path.isfile(checkpoint_stem(weights) + '.pdema'):
        logger.info(f'{checkpoint_stem(weights)}.pdparams holds the EMA weights (raw weights in '
                    f'.pdema): using the EMA weights')
    model.eval()
    for layer in model.sublayers():
        if hasattr(layer, 'convert_to_deploy'):
            layer.convert_to_deploy()
    return model


def deploy_preprocess(reader, image_shape):
    """The ``Preprocess`` list of infer_cfg.yml from a TestReader's transform objects.

    Args:
        reader: the built ``TestReader``.
        image_shape (list[int]): ``[3, H, W]`` (-1 for dynamic sizes).
    Raises:
        ValueError: a transform with no deploy equivalent (named); for a fixed export size,
            a TestReader that does not resize to exactly ``[H, W]`` (the exported model would
            get inputs of another size than ``tools/infer.py`` gives its model); for a dynamic
            size, a TestReader whose output is not always a multiple of 32.
    """
    ops = []
    transforms = list(reader._sample_transforms.transforms)
    batch_ops = list(reader._batch_transforms.transforms)
    for i, op in enumerate(transforms + batch_ops):
        where = (f'TestReader.sample_transforms[{i}]' if i < len(transforms)
                 else f'TestReader.batch_transforms[{i - len(transforms)}]')
        kind = type(op)
        if kind is Decode:
            continue
        if kind is Resize:
            ops.append({'type': 'Resize', 'interp': int(op.interp),
                        'keep_ratio': bool(op.keep_ratio), 'target_size': list(op.target_size)})
        elif kind is NormalizeImage:
            ops.append({'type': 'NormalizeImage', 'mean': [float(m) for m in op.mean],
                        'std': [float(s) for s in op.std], 'is_scale': bool(op.is_scale),
                        'norm_type': op.norm_type})
        elif kind is Permute:
            ops.append({'type': 'Permute'})
        elif kind is PadBatch:
            # PaddleDetection's rule: the batch padding becomes a per-image stride padding
            ops.append({'type': 'PadStride', 'stride': int(op.pad_to_stride)})
        else:
            raise ValueError(f'{where}: {kind.__name__} has no deploy preprocessing op (supported: '
                             f'Decode, Resize, NormalizeImage, Permute, PadBatch)')
    if image_shape[1] < 0:
        _check_dynamic_output(ops)
    else:
        resizes = [op for op in ops if op['type'] == 'Resize']
        size = list(image_shape[1:])
        if len(resizes) != 1 or resizes[0]['keep_ratio'] or resizes[0]['target_size'] != size:
            raise ValueError(f'TestReader.inputs_def.image_shape {image_shape} fixes the exported '
                             f'input to {size[0]} x {size[1]}, but the TestReader resizes with '
                             f'{resizes or "no Resize"}: use one Resize {{target_size: {size}, '
                             f'keep_ratio: false}} or image_shape [3, -1, -1] (dynamic)')
    return ops


def _check_dynamic_output(ops):
    """A dynamic-size export still needs network inputs whose height and width are multiples of
    32 (the neck's strides; ``tools/infer.py`` refuses others): the TestReader must end in a
    Resize to a multiple-of-32 ``target_size`` with ``keep_ratio: false``, or pad to a stride
    that is a multiple of 32 (``PadBatch``, deployed as ``PadStride``).

    Raises:
        ValueError: neither, naming the keys and the fix.
    """
    stride_ok = False
    for op in ops:
        if op['type'] == 'Resize':
            stride_ok = (not op['keep_ratio'] and
                         all(t > 0 and t % 32 == 0 for t in op['target_size']))
        elif op['type'] == 'PadStride' and op['stride'] > 0 and op['stride'] % 32 == 0:
            stride_ok = True
    if not stride_ok:
        resizes = [op for op in ops if op['type'] == 'Resize']
        pads = [op['stride'] for op in ops if op['type'] == 'PadStride']
        raise ValueError(
            f'TestReader.inputs_def.image_shape [3, -1, -1] (dynamic size): the network input '
            f'height and width must still be multiples of 32, but the TestReader resizes with '
            f'{resizes or "no Resize"} and pads to stride {pads or "none"} (its output is not '
            f'always a multiple of 32): give TestReader.sample_transforms a Resize target_size '
            f'of multiples of 32 with keep_ratio: false, or add TestReader.batch_transforms '
            f'[PadBatch: {{pad_to_stride: 32}}]')


def _label_list(cfg):
    dataset = create('TestDataset', cfg=cfg)
    anno = dataset.get_anno() if hasattr(dataset, 'get_anno') else None
    clsid2catid, catid2name = get_categories(cfg.get('metric', 'COCO'), anno)
    labels = [str(catid2name[clsid2catid[i]]) for i in range(len(clsid2catid))]
    if cfg.get('num_classes') is not None and len(labels) != cfg.num_classes:
        logger.warning(f'TestDataset names {len(labels)} classes, num_classes is '
                       f'{cfg.num_classes}: label_list has {len(labels)} entries')
    return labels


def infer_config(cfg, model, image_shape):
    """The ``infer_cfg.yml`` dict for ``model`` built from ``cfg`` (see the module doc)."""
    if cfg.architecture not in _ARCH:
        raise ValueError(f'export supports the architectures {sorted(_ARCH)}, got '
                         f'{cfg.architecture!r}')
    arch, min_subgraph_size = _ARCH[cfg.architecture]
    head = model.yolo_head
    nms = head.nms
    infer_cfg = {
        'mode': 'paddle',
        'draw_threshold': 0.5,
        'metric': cfg.get('metric', 'COCO'),
        'use_dynamic_shape': image_shape[2] == -1,
        'arch': arch,
        'min_subgraph_size': min_subgraph_size,
        'Preprocess': deploy_preprocess(create('TestReader', cfg=cfg), image_shape),
        'label_list': _label_list(cfg),
        'exclude_nms': bool(head.exclude_nms),
        'exclude_post_process': bool(head.exclude_post_process),
        'NMS': {'score_threshold': float(nms.score_threshold), 'nms_top_k': int(nms.nms_top_k),
                'keep_top_k': int(nms.keep_top_k), 'nms_threshold': float(nms.nms_threshold),
                'normalized': bool(nms.normalized), 'nms_eta': float(nms.nms_eta)},
    }
    return infer_cfg


class _InferenceModel(paddle.nn.Layer):
    """The detector with positional tensor inputs (what ``paddle.jit.save`` traces) and a list
    of outputs in the documented order."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, image, scale_factor=None):
        inputs = {'image': image}
        if scale_factor is not None:
            inputs['scale_factor'] = scale_factor
        outputs = self.model(inputs)
        return [outputs[key] for key in ('bbox', 'bbox_num', 'scores') if key in outputs]


def _trace_safe():
    """Modules whose code runs as plain Python while tracing: their input checks read static
    shapes (-1 where dynamic, which they skip); converted, a dynamic size would be a graph
    value that a Python ``if`` cannot test."""
    from ppdet_lite.modeling import checks
    paddle.jit.ignore_module([checks])


def export_model(cfg, output_dir='output_inference', exclude_nms=None, exclude_post_process=None,
                 trt=None, weights=None, temporary=False):
    """Write the inference model and infer_cfg.yml of ``cfg`` to ``output_dir/<config stem>/``.

    Args:
        cfg (AttrDict): a loaded config (not modified: the switches apply to a copy).
        output_dir (str): parent directory.
        exclude_nms, exclude_post_process, trt (bool | None): the head's switches; None keeps
            the config's value.
        weights (str | None): checkpoint; default ``cfg.weights``.
        temporary (bool): an intermediate export (the ONNX conversion's no-NMS one): its
            "exported" line is logged at debug level, so users do not read it as their model.
    Returns:
        str: the export directory.
    Raises:
        ValueError: bad ``image_shape``, ``eval_size`` or TestReader (see ``export_image_shape``,
            ``deploy_preprocess``), weights that do not fit the model; FileNotFoundError: no
            weights file.
    """
    image_shape = export_image_shape(cfg)
    dynamic = image_shape[1] == -1
    cfg = _export_config(cfg, exclude_nms, exclude_post_process, trt, dynamic, image_shape)
    model = build_inference_model(cfg, weights)
    infer_cfg = infer_config(cfg, model, image_shape)

    specs = {'image': paddle.static.InputSpec([None] + image_shape, 'float32', 'image'),
             'scale_factor': paddle.static.InputSpec([None, 2], 'float32', 'scale_factor')}
    input_spec = [specs[name] for name in model.inference_inputs]
    _trace_safe()
    static_model = paddle.jit.to_static(_InferenceModel(model), input_spec=input_spec,
                                        full_graph=True)

    save_dir = os.path.join(output_dir, cfg.get('filename', 'model'))
    os.makedirs(save_dir, exist_ok=True)
    for name in MODEL_FILES + (PARAMS_FILE,):
        # a program file of another Paddle version left here would be found first
        if os.path.isfile(os.path.join(save_dir, name)):
            os.remove(os.path.join(save_dir, name))
    paddle.jit.save(static_model, os.path.join(save_dir, 'model'))
    with open(os.path.join(save_dir, 'infer_cfg.yml'), 'w') as f:
        yaml.safe_dump(infer_cfg, f, sort_keys=False, default_flow_style=None)
    program, _ = find_model_file(save_dir)
    size = 'dynamic size' if dynamic else f'{image_shape[1]} x {image_shape[2]}'
    # exclude_post_process wins over exclude_nms in the head: its layout is the one exported
    kind = ('without post-processing' if infer_cfg['exclude_post_process'] else 'without NMS'
            if infer_cfg['exclude_nms'] else 'with NMS')
    log = logger.debug if temporary else logger.info
    log(f'exported the {cfg.architecture} model ({size}, {kind}; inputs '
                f'{", ".join(model.inference_inputs)}) to {program}, {PARAMS_FILE} and '
                f'infer_cfg.yml')
    return save_dir
