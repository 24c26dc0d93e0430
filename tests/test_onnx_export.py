"""ONNX export (ppdet_lite/engine/onnx_export.py, onnx_nms.py) and the ONNX Runtime runner.

A quarter-width PP-YOLOE-s with 3 classes and seeded random weights (so that boxes and scores
depend on the image) is exported by ``tools/export_model.py --onnx`` with a dynamic input size,
with and without NMS; ONNX Runtime is compared with Paddle Inference on the same exports.
"""

import importlib.util
import os
import sys

import cv2
import numpy as np
import onnx
import paddle
import pytest
import yaml
from onnx import TensorProto, helper

import ppdet_lite.modeling  # noqa: F401  (registers the model zoo)
from ppdet_lite.core.workspace import create, load_config
from ppdet_lite.engine.onnx_export import INPUT_DOCS, paddle_to_onnx, tensorrt_issues
from ppdet_lite.engine.onnx_nms import append_multiclass_nms
from ppdet_lite.modeling.layers.multiclass_nms import multiclass_nms
from ppdet_lite.utils.checkpoint import save_weights

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), '..'))
sys.path.insert(0, os.path.join(ROOT, 'deploy', 'python'))
import infer as paddle_infer  # noqa: E402
import infer_onnx  # noqa: E402

def _load_tool(name):
    """tools/<name>.py as a module (tools/ is not put on sys.path: its infer.py would shadow
    deploy/python's)."""
    spec = importlib.util.spec_from_file_location(f'tools_{name}',
                                                  os.path.join(ROOT, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tools_export_model = _load_tool('export_model')

ort = pytest.importorskip('onnxruntime')
try:
    import paddle2onnx  # noqa: F401
except Exception as e:  # paddle2onnx 2.x imports Paddle 3 modules at import time
    pytest.skip(f'paddle2onnx unusable here ({e}); with Paddle 2.6 install paddle2onnx<1.3',
                allow_module_level=True)

NMS = {'score_threshold': 0.3, 'nms_top_k': 60, 'keep_top_k': 20, 'nms_threshold': 0.5}
SIZE = [160, 224]  # h, w of the TestReader's Resize: non-square


def randomize(model, seed=0):
    """Seeded random predictors. The initial head predicts the same 0.01 score everywhere (zero
    weights, prior bias); these give scores spread over (0, 1) that depend on the image."""
    rng = np.random.RandomState(seed)
    for name, param in model.state_dict().items():
        if name.startswith(('yolo_head.pred_cls', 'yolo_head.pred_reg')):
            if name.endswith('weight'):
                value = rng.normal(0, 0.2, param.shape)
            else:
                value = np.full(param.shape, -1. if 'pred_cls' in name else 0.)
            param.set_value(value.astype(np.float32))


@pytest.fixture(scope='module')
def exports(tmp_path_factory):
    """The two exports (dynamic size) made the way users make them, ``tools/export_model.py
    ... --onnx``: raw outputs (``-o exclude_nms=True``) and NMS, with their ONNX models."""
    tmp = tmp_path_factory.mktemp('onnx')
    config = {
        '_BASE_': [os.path.join(ROOT, 'configs', 'ppyoloe', 'ppyoloe_crn_s_300e_coco.yml')],
        'width_mult': 0.25, 'num_classes': 3, 'eval_size': None,
        'PPYOLOEHead': {'nms': dict(name='MultiClassNMS', **NMS)},
        'TestReader': {'inputs_def': {'image_shape': [3, -1, -1]}, 'sample_transforms': [
            {'Decode': {}}, {'Resize': {'target_size': SIZE, 'keep_ratio': False, 'interp': 2}},
            {'NormalizeImage': {'mean': [0.485, 0.456, 0.406], 'std': [0.229, 0.224, 0.225],
                                'is_scale': True}}, {'Permute': {}}]}}
    config_file = str(tmp / 'tiny.yml')
    with open(config_file, 'w') as f:
        yaml.safe_dump(config, f)
    cfg = load_config(config_file, make_current=False)
    paddle.seed(0)
    model = create(cfg.architecture, cfg=cfg)
    randomize(model)
    save_weights(model, str(tmp / 'tiny.pdparams'))
    weights = f'weights={tmp / "tiny.pdparams"}'
    raw_dir = tools_export_model.main(['-c', config_file, '-o', weights, 'exclude_nms=True',
                                       '--output_dir', str(tmp / 'raw'), '--onnx'])
    nms_dir = tools_export_model.main(['-c', config_file, '-o', weights,
                                       '--output_dir', str(tmp / 'nms'), '--onnx'])
    return {'raw': raw_dir, 'nms': nms_dir, 'raw_onnx': os.path.join(raw_dir, 'model.onnx'),
            'nms_onnx': os.path.join(nms_dir, 'model.onnx'), 'tmp': tmp,
            'export_args': ['-c', config_file, '-o', weights]}


@pytest.fixture(scope='module')
def images(tmp_path_factory):
    """Two noise images of different sizes with a rectangle and a circle of muted colours (the
    random head's scores stay between 0.03 and 0.7: saturated colours drive them to 1.0, where
    float32 rounding would decide NMS among equal scores)."""
    import cv2
    folder = tmp_path_factory.mktemp('img')
    rng = np.random.RandomState(0)
    paths = []
    for i, (h, w) in enumerate([(150, 230), (200, 180)]):
        im = rng.randint(0, 256, (h, w, 3)).astype(np.uint8)
        cv2.rectangle(im, (20 + 30 * i, 25), (110, 120 - 20 * i), (90, 160, 110), -1)
        cv2.circle(im, (150 - 40 * i, 90), 30, (170, 100, 120), -1)
        paths.append(str(folder / f'im{i}.png'))
        cv2.imwrite(paths[-1], im)
    return paths


def paddle_run(model_dir, feed):
    with open(os.path.join(model_dir, 'infer_cfg.yml')) as f:
        infer_cfg = yaml.safe_load(f)
    predictor = paddle_infer.create_predictor(model_dir, infer_cfg)
    for name in predictor.get_input_names():
        predictor.get_input_handle(name).copy_from_cpu(feed[name])
    predictor.run()
    return [predictor.get_output_handle(n).copy_to_cpu() for n in predictor.get_output_names()]


def ort_run(onnx_file, feed):
    session = ort.InferenceSession(onnx_file, providers=['CPUExecutionProvider'])
    return session.run(None, {i.name: feed[i.name] for i in session.get_inputs()})


def network_inputs(batch, height, width, seed):
    rng = np.random.RandomState(seed)
    return {'image': rng.uniform(-2, 2, (batch, 3, height, width)).astype(np.float32),
            'scale_factor': rng.uniform(0.5, 2, (batch, 2)).astype(np.float32)}


def per_image(bbox, bbox_num):
    ends = np.cumsum(bbox_num)
    return [bbox[end - n:end] for n, end in zip(bbox_num, ends)]


def canonical(rows):
    """Rows ordered by class, then descending score, then box: equal-score ties ordered alike."""
    rows = np.asarray(rows).reshape(-1, 6)
    return rows[np.lexsort((rows[:, 5], rows[:, 4], rows[:, 3], rows[:, 2], -rows[:, 1],
                            rows[:, 0]))]


def assert_same_detections(got, ref):
    """Same count per image, same rows (class and score within 1e-4, boxes within 5e-3 px:
    see test_raw_outputs_equal_paddle_inference)."""
    assert len(got) == len(ref)
    for g, r in zip(got, ref):
        assert g.shape == r.shape
        g, r = canonical(g), canonical(r)
        np.testing.assert_allclose(g[:, :2], r[:, :2], rtol=0, atol=1e-4)
        np.testing.assert_allclose(g[:, 2:], r[:, 2:], rtol=0, atol=5e-3)


# --------------------------------------------------------------------------- the exported graphs

def test_inputs_are_documented_and_dynamic(exports):
    for key in ('raw_onnx', 'nms_onnx'):
        model = onnx.load(exports[key])
        inputs = {i.name: i for i in model.graph.input}
        assert sorted(inputs) == ['image', 'scale_factor']  # PP-YOLOE never reads im_shape
        for name, info in inputs.items():
            assert info.doc_string == INPUT_DOCS[name]
        dims = [d.dim_param or d.dim_value for d in inputs['image'].type.tensor_type.shape.dim]
        assert dims == ['batch', 3, 'height', 'width']


def test_raw_graph_is_tensorrt_parsable(exports):
    model = onnx.load(exports['raw_onnx'])
    onnx.checker.check_model(model, full_check=True)
    assert [o.name for o in model.graph.output] == ['bbox', 'scores']
    assert tensorrt_issues(model) == []
    ops = {n.op_type for n in model.graph.node}
    assert not ops & {'NonZero', 'NonMaxSuppression', 'Loop', 'If'}
    # the TensorRT NMS plugin goes onto this graph (its own tests: test_trt_graph.py)
    sys.path.insert(0, os.path.join(ROOT, 'deploy', 'tensorrt'))
    from efficient_nms import add_efficient_nms
    onnx.checker.check_model(add_efficient_nms(model, 0.3, 0.5, 20))


def test_tensorrt_rule_flags_what_trtexec_refuses():
    big = helper.make_tensor('big', TensorProto.INT64, [1], [2 ** 40])
    graph = helper.make_graph(
        [helper.make_node('NonZero', ['x'], ['idx']),
         helper.make_node('Add', ['idx', 'big'], ['y']),
         helper.make_node('Cast', ['x'], ['x64'], to=TensorProto.DOUBLE)], 'g',
        [helper.make_tensor_value_info('x', TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info('y', TensorProto.INT64, [1, None]),
         helper.make_tensor_value_info('x64', TensorProto.DOUBLE, [4])], [big])
    issues = tensorrt_issues(helper.make_model(graph))
    assert len(issues) == 5
    assert 'big holds values outside int32' in issues[0]
    assert 'ai.onnx::NonZero is not in the TensorRT set' in issues[1]
    assert 'casts to float64' in issues[2]
    assert issues[3:] == ['graph output y is INT64', 'graph output x64 is DOUBLE']


def test_nms_graph_outputs(exports):
    model = onnx.load(exports['nms_onnx'])
    onnx.checker.check_model(model, full_check=True)
    outputs = {o.name: o.type.tensor_type.elem_type for o in model.graph.output}
    assert outputs == {'bbox': TensorProto.FLOAT, 'bbox_num': TensorProto.INT32}
    # paddle2onnx's multiclass_nms3 conversion is not in the graph: one NonMaxSuppression, ours
    nms_nodes = [n.name for n in model.graph.node if n.op_type == 'NonMaxSuppression']
    assert len(nms_nodes) == 1 and nms_nodes[0].startswith('multiclass_nms/')


# ------------------------------------------------------------------ ONNX Runtime == Paddle Inference

@pytest.mark.parametrize('height, width', [(160, 160), (160, 224), (256, 192)])
def test_raw_outputs_equal_paddle_inference(exports, height, width):
    feed = network_inputs(2, height, width, seed=height + width)
    ref_boxes, ref_scores = paddle_run(exports['raw'], feed)
    boxes, scores = ort_run(exports['raw_onnx'], feed)
    num_anchors = sum((height // s) * (width // s) for s in (8, 16, 32))
    assert boxes.shape == (2, num_anchors, 4) and scores.shape == (2, 3, num_anchors)
    np.testing.assert_allclose(scores, ref_scores, rtol=0, atol=1e-4)
    # Boxes are pixels, anchor +- distance divided by scale_factor: float32 rounding in kernels
    # of another order is relative to the largest coordinate (a few hundred px): 1e-5 of it.
    np.testing.assert_allclose(boxes, ref_boxes, rtol=0, atol=1e-5 * np.abs(ref_boxes).max())
    assert np.abs(boxes - ref_boxes).max() < 5e-3  # pixels
    assert scores.std() > 0.05  # the outputs depend on the input


def test_plain_paddle2onnx_command_converts_the_raw_export(exports, tmp_path):
    """SPEC 1.5: users run paddle2onnx by hand on the export directory. The neck's 2x upsampling
    scale is a float32 constant in the traced program (a Python float would be a float64
    attribute, which paddle2onnx 2.1 refuses), so the command succeeds and the model agrees."""
    import subprocess
    from ppdet_lite.engine.export import find_model_file
    model_file, params_file = find_model_file(exports['raw'])
    save_file = str(tmp_path / 'by_hand.onnx')
    command = [os.path.join(os.path.dirname(sys.executable), 'paddle2onnx'),
               '--model_dir', exports['raw'], '--model_filename', os.path.basename(model_file),
               '--params_filename', os.path.basename(params_file), '--opset_version', '11',
               '--save_file', save_file]
    if int(paddle2onnx.__version__.split('.')[0]) >= 2:
        command += ['--optimize_tool', 'None']   # 2.x's default pip-installs Polygraphy's needs
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    feed = network_inputs(2, 160, 224, seed=5)
    ref_boxes, ref_scores = paddle_run(exports['raw'], feed)
    boxes, scores = ort_run(save_file, feed)
    np.testing.assert_allclose(scores, ref_scores, rtol=0, atol=1e-4)
    np.testing.assert_allclose(boxes, ref_boxes, rtol=0, atol=1e-5 * np.abs(ref_boxes).max())


def test_nms_equals_paddle_at_batch_2_for_every_class(exports):
    """The batch-2, multi-class case paddle2onnx's own multiclass_nms3 conversion gets wrong (it
    does not even load at batch 2): the ONNX NMS model gives Paddle Inference's NMS model's
    detections, and Paddle's multiclass_nms3 on Paddle Inference's raw outputs."""
    feed = network_inputs(2, 160, 224, seed=1)
    bbox, bbox_num = ort_run(exports['nms_onnx'], feed)
    assert bbox_num.dtype == np.int32 and bbox.shape == (bbox_num.sum(), 6)
    got = per_image(bbox, bbox_num)
    ref = per_image(*paddle_run(exports['nms'], feed))
    assert_same_detections(got, ref)
    raw_boxes, raw_scores = paddle_run(exports['raw'], feed)
    out, _, num = multiclass_nms(paddle.to_tensor(raw_boxes), paddle.to_tensor(raw_scores),
                                 NMS['score_threshold'], NMS['nms_top_k'], NMS['keep_top_k'],
                                 NMS['nms_threshold'])
    assert_same_detections(got, per_image(out.numpy(), num.numpy()))
    # the case is hard enough: every class in both images, keep_top_k cutting
    assert [len(set(d[:, 0])) for d in got] == [3, 3]
    assert list(bbox_num) == [NMS['keep_top_k']] * 2
    # and ordered as Paddle's: by class, then descending score (not just the same set)
    np.testing.assert_allclose(bbox[:, :2], np.concatenate(ref)[:, :2], rtol=0, atol=1e-4)


@pytest.mark.parametrize('nms_top_k, keep_top_k', [(-1, 20), (60, -1), (-1, -1), (5, 300)])
def test_nms_top_k_settings(exports, nms_top_k, keep_top_k):
    nms = dict(NMS, nms_top_k=nms_top_k, keep_top_k=keep_top_k)
    onnx_file = str(exports['tmp'] / f'nms_{nms_top_k}_{keep_top_k}.onnx')
    paddle_to_onnx(exports['raw'], onnx_file, nms=nms)
    feed = network_inputs(2, 192, 160, seed=2)
    raw_boxes, raw_scores = paddle_run(exports['raw'], feed)
    out, _, num = multiclass_nms(paddle.to_tensor(raw_boxes), paddle.to_tensor(raw_scores),
                                 nms['score_threshold'], nms_top_k, keep_top_k,
                                 nms['nms_threshold'])
    bbox, bbox_num = ort_run(onnx_file, feed)
    assert list(bbox_num) == list(num.numpy()) and bbox_num.min() > 0
    assert_same_detections(per_image(bbox, bbox_num), per_image(out.numpy(), num.numpy()))


# ------------------------------------------------------------------ the NMS subgraph on its own

def nms_graph(nms_top_k, keep_top_k, score_threshold=0.3, nms_threshold=0.5, opset=11):
    graph = helper.make_graph(
        [helper.make_node('Identity', ['in_boxes'], ['boxes']),
         helper.make_node('Identity', ['in_scores'], ['scores'])], 'nms',
        [helper.make_tensor_value_info('in_boxes', TensorProto.FLOAT, ['B', 'L', 4]),
         helper.make_tensor_value_info('in_scores', TensorProto.FLOAT, ['B', 'C', 'L'])],
        [helper.make_tensor_value_info('boxes', TensorProto.FLOAT, None),
         helper.make_tensor_value_info('scores', TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', opset)])
    model.ir_version = 7  # readable by every onnxruntime >= 1.8
    append_multiclass_nms(model, 'boxes', 'scores', score_threshold, nms_threshold, nms_top_k,
                          keep_top_k)
    onnx.checker.check_model(model, full_check=True)
    return ort.InferenceSession(model.SerializeToString(), providers=['CPUExecutionProvider'])


def test_nms_hand_computed():
    """Boxes A=[0,0,10,10], B=[1,0,11,10] (IoU with A 90/110 = 0.82 > 0.5), C=[20,20,30,30]
    (disjoint), score_threshold 0.3. Image 0: class 0 scores A .9, B .8, C .4; class 1 A .3 (not
    above the threshold), B .7, C .6. Image 1: every score .1, no detection."""
    boxes = np.array([[[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30]]] * 2, np.float32)
    scores = np.array([[[.9, .8, .4], [.3, .7, .6]], np.full((2, 3), .1)], np.float32)
    feed = {'in_boxes': boxes, 'in_scores': scores}
    a0, c0, b1, c1 = [0, .9, 0, 0, 10, 10], [0, .4, 20, 20, 30, 30], [1, .7, 1, 0, 11, 10], \
        [1, .6, 20, 20, 30, 30]
    # no limits: class 0 keeps A and C (A suppresses B), class 1 keeps B and C
    bbox, bbox_num = nms_graph(-1, -1).run(None, feed)
    assert bbox_num.tolist() == [4, 0]
    np.testing.assert_allclose(bbox, [a0, c0, b1, c1], rtol=1e-6)
    # keep_top_k 3: the best three over the classes (.9, .7, .6), still grouped by class
    bbox, bbox_num = nms_graph(-1, 3).run(None, feed)
    np.testing.assert_allclose(bbox, [a0, b1, c1], rtol=1e-6)
    # nms_top_k 2 acts before suppression: class 0's candidates are A and B only, so C is lost
    # (a limit on NMS's output, ONNX's max_output_boxes_per_class, would keep A and C)
    bbox, bbox_num = nms_graph(2, -1).run(None, feed)
    assert bbox_num.tolist() == [3, 0]
    np.testing.assert_allclose(bbox, [a0, b1, c1], rtol=1e-6)
    # nothing above the threshold anywhere: empty outputs of the right shapes
    bbox, bbox_num = nms_graph(2, 3).run(None, {'in_boxes': boxes,
                                                'in_scores': np.full_like(scores, .1)})
    assert bbox.shape == (0, 6) and bbox_num.tolist() == [0, 0]


@pytest.mark.parametrize('batch, nms_top_k, keep_top_k, opset', [
    (1, 1000, 300, 11), (3, -1, 50, 11), (2, 20, -1, 13), (2, 30, 25, 16)])
def test_nms_matches_multiclass_nms3_on_random_boxes(batch, nms_top_k, keep_top_k, opset):
    rng = np.random.RandomState(batch + opset)
    corner = rng.uniform(0, 150, (batch, 120, 2))
    boxes = np.concatenate([corner, corner + rng.uniform(5, 60, (batch, 120, 2))], -1)
    boxes = boxes.astype(np.float32)
    scores = rng.uniform(0, 1, (batch, 4, 120)).astype(np.float32)
    scores[..., ::7] = 0.5  # equal scores across boxes and classes
    out, _, num = multiclass_nms(paddle.to_tensor(boxes), paddle.to_tensor(scores), 0.3,
                                 nms_top_k, keep_top_k, 0.5)
    bbox, bbox_num = nms_graph(nms_top_k, keep_top_k, opset=opset).run(
        None, {'in_boxes': boxes, 'in_scores': scores})
    assert bbox_num.tolist() == num.numpy().tolist()
    np.testing.assert_array_equal(bbox, out.numpy())  # same rows in the same order


def test_nms_refuses_bad_settings():
    with pytest.raises(ValueError, match='nms_top_k must be -1'):
        nms_graph(0, 10)
    with pytest.raises(ValueError, match='opset 10'):
        nms_graph(10, 10, opset=10)


# ------------------------------------------------------------------------ the runners

def test_infer_onnx_equals_paddle_runner(exports, images, tmp_path):
    """Same images, same preprocessing file, same detections (NMS and no-NMS ONNX models; the
    ONNX runs take both images as one batch, the Paddle run one by one)."""
    ref = paddle_infer.main(['--model_dir', exports['nms'], '--image_dir',
                             os.path.dirname(images[0]), '--output_dir', str(tmp_path / 'p')])
    for key, model_dir in (('nms_onnx', exports['nms']), ('raw_onnx', exports['raw'])):
        got = infer_onnx.main(['--onnx_file', exports[key], '--infer_cfg',
                               os.path.join(model_dir, 'infer_cfg.yml'), '--image_dir',
                               os.path.dirname(images[0]), '--output_dir', str(tmp_path / key),
                               '--batch_size', '2'])
        assert sorted(got) == sorted(ref) == sorted(images)
        assert min(len(got[p]) for p in images) > 0
        assert_same_detections([got[p] for p in images], [ref[p] for p in images])
        assert os.path.isfile(tmp_path / key / os.path.basename(images[0]))


def test_infer_onnx_without_post_processing(exports, images, tmp_path):
    """``exclude_post_process``: the ONNX model gives network-input boxes and scores
    (``bbox_scores [B, L, 4 + C]``, no scale_factor input); the runner scales and runs NMS."""
    export_dir = tools_export_model.main(exports['export_args'] + [
        'exclude_post_process=True', '--output_dir', str(tmp_path / 'epp'), '--onnx'])
    model = onnx.load(os.path.join(export_dir, 'model.onnx'))
    assert [i.name for i in model.graph.input] == ['image']
    assert [o.name for o in model.graph.output] == ['bbox_scores']
    assert tensorrt_issues(model) == []
    args = ['--image_dir', os.path.dirname(images[0]), '--output_dir', str(tmp_path / 'out')]
    got = infer_onnx.main(['--onnx_file', os.path.join(export_dir, 'model.onnx'), '--infer_cfg',
                           os.path.join(export_dir, 'infer_cfg.yml')] + args)
    ref = paddle_infer.main(['--model_dir', exports['nms']] + args)
    assert_same_detections([got[p] for p in images], [ref[p] for p in images])


def test_infer_onnx_errors(exports, tmp_path, capsys):
    bad = tmp_path / 'bad.jpg'
    bad.write_bytes(b'not an image')
    infer_cfg = os.path.join(exports['nms'], 'infer_cfg.yml')
    with pytest.raises(SystemExit, match=f'cannot decode image {bad}'):
        infer_onnx.main(['--onnx_file', exports['nms_onnx'], '--infer_cfg', infer_cfg,
                         '--image_file', str(bad)])
    with pytest.raises(SystemExit, match='--onnx_file .*missing.onnx does not exist'):
        infer_onnx.main(['--onnx_file', str(tmp_path / 'missing.onnx'), '--infer_cfg',
                         infer_cfg, '--image_file', str(bad)])


def test_infer_onnx_refuses_what_it_cannot_run(exports, images, tmp_path, capsys):
    """A truncated JPEG (cv2.imread decodes it half grey; the Preprocessor's rule refuses it),
    Paddle's model.pdiparams and the TensorRT plugin graph as --onnx_file: clear errors, no
    traceback. An export directory is accepted as --infer_cfg."""
    ok, data = cv2.imencode('.jpg', cv2.imread(images[0]))
    truncated = tmp_path / 'truncated.jpg'
    truncated.write_bytes(data.tobytes()[:len(data) // 3])
    assert cv2.imread(str(truncated)) is not None
    base = ['--infer_cfg', exports['nms'], '--output_dir', str(tmp_path / 'out')]
    with pytest.raises(SystemExit, match=f'cannot decode image {truncated}: not an image'):
        infer_onnx.main(base + ['--onnx_file', exports['nms_onnx'],
                                '--image_file', str(truncated)])
    params = os.path.join(exports['nms'], 'model.pdiparams')
    with pytest.raises(SystemExit, match=f'--onnx_file {params}: ONNX Runtime cannot load it.*'
                                         f'deploy/python/infer.py'):
        infer_onnx.main(base + ['--onnx_file', params, '--image_file', images[0]])
    node = onnx.helper.make_node('EfficientNMS_TRT', ['x'], ['y'])
    graph = onnx.helper.make_graph(
        [node], 'g', [onnx.helper.make_tensor_value_info('x', onnx.TensorProto.FLOAT, [1, 4])],
        [onnx.helper.make_tensor_value_info('y', onnx.TensorProto.FLOAT, [1, 4])])
    trt_file = str(tmp_path / 'model_trt_nms.onnx')
    onnx.save(onnx.helper.make_model(graph), trt_file)
    with pytest.raises(SystemExit, match='is the TensorRT graph .*EfficientNMS_TRT.*model.onnx'):
        infer_onnx.main(base + ['--onnx_file', trt_file, '--image_file', images[0]])
    got = infer_onnx.main(base + ['--onnx_file', exports['nms_onnx'], '--image_file', images[0]])
    assert list(got) == [images[0]]
    with pytest.raises(SystemExit) as exit_info:
        infer_onnx.main(base + ['--onnx_file', exports['nms_onnx'], '--image_file', images[0],
                                '--threshold', '-0.1'])
    assert exit_info.value.code == 2 and '--threshold must be in [0, 1]' in capsys.readouterr().err


def test_infer_onnx_benchmark(exports, images, capsys):
    infer_onnx.main(['--onnx_file', exports['nms_onnx'], '--infer_cfg',
                     os.path.join(exports['nms'], 'infer_cfg.yml'), '--image_file', images[0],
                     '--run_benchmark'])
    assert 'ms per image: preprocess' in capsys.readouterr().out
