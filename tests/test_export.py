"""tools/export_model.py's exporter: eager == Paddle Inference after NMS for the NMS, exclude_nms
and exclude_post_process exports (fixed non-square size) and for a dynamic-size trt=True export;
the EMA weights exported; infer_cfg.yml round-trips to the TestReader's preprocessing; pruned
inputs; refused configurations."""

import importlib.util
import os
import sys

import numpy as np
import paddle
import pytest
import yaml

from ppdet_lite.engine.export import export_model, find_model_file

from tiny_detector import (CATEGORIES, DEMO, ROOT, assert_same_detections, cli_overrides,
                           eager_detections, eager_model, overrides, reader_inputs,
                           run_predictor, tiny_config, write_categories, write_checkpoint,
                           write_images)

sys.path.insert(0, os.path.join(ROOT, 'deploy', 'python'))
import infer as deploy_infer  # noqa: E402
import preprocess as deploy_pre  # noqa: E402

SIZE = [160, 224]  # h x w, non-square


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    """Images, the category file, the config and an EMA checkpoint with random weights."""
    root = tmp_path_factory.mktemp('export')
    anno = write_categories(str(root / 'categories.json'))
    images = write_images(str(root))
    cfg = tiny_config(anno, SIZE)
    stem = str(root / 'model_final')
    ema, raw = write_checkpoint(cfg, stem)
    return {'root': root, 'anno': anno, 'images': images, 'cfg': cfg, 'weights': stem,
            'ema': ema, 'raw': raw}


@pytest.fixture(scope='module')
def exports(setup):
    """The three variants of the non-square export, each in its own output directory; the last
    one through the command line (``-o exclude_post_process=true``)."""
    out = {}
    for variant in ('nms', 'exclude_nms'):
        out[variant] = export_model(setup['cfg'], str(setup['root'] / variant),
                                    weights=setup['weights'], exclude_nms=variant != 'nms')
    spec = importlib.util.spec_from_file_location(
        'tools_export_model', os.path.join(ROOT, 'tools', 'export_model.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    argv = (['-c', DEMO, '-o', f'weights={setup["weights"]}', 'exclude_post_process=true'] +
            cli_overrides(overrides(setup['anno'], SIZE)) +
            ['--output_dir', str(setup['root'] / 'exclude_post_process')])
    out['exclude_post_process'] = tool.main(argv)
    return out


@pytest.mark.parametrize('variant', ['nms', 'exclude_nms', 'exclude_post_process'])
def test_paddle_inference_equals_eager(setup, exports, variant):
    """After NMS (in the graph, or the deploy post-processing's for the raw exports)."""
    # graph fusions off: they move numbers by float rounding, enough to swap which of two
    # near-tied overlapping boxes NMS keeps (test_optimized_runner_is_close measures them)
    detector = deploy_infer.Detector(exports[variant], ir_optim=False)
    model = eager_model(setup['cfg'], setup['ema'])
    for path in setup['images']:
        expected = eager_detections(model, reader_inputs(setup['cfg'], path))
        assert_same_detections(detector.predict([path]), expected)
    # both images in one batch give the same rows as one by one
    batch = detector.predict(setup['images'])
    singles = [detector.predict([p])[0] for p in setup['images']]
    assert_same_detections(batch, singles)


def test_optimized_runner_is_close(setup, exports):
    """The default runner (graph fusions on) against the plain eager model (RepVGG not fused):
    raw scores within 1e-4, boxes within 1e-2 px (float rounding of a different summation order
    on boxes hundreds of pixels wide: the random weights make them large)."""
    predictor = deploy_infer.create_predictor(exports['exclude_nms'], {})
    model = eager_model(tiny_config(setup['anno'], SIZE, exclude_nms=True), setup['ema'],
                        fuse=False)
    for path in setup['images']:
        inputs = reader_inputs(setup['cfg'], path)
        boxes, scores = run_predictor(predictor, inputs)
        with paddle.no_grad():
            out = model({k: paddle.to_tensor(inputs[k]) for k in ('image', 'scale_factor')})
        np.testing.assert_allclose(boxes, out['bbox'].numpy(), rtol=0, atol=1e-2)
        np.testing.assert_allclose(scores, out['scores'].numpy(), rtol=0, atol=1e-4)


def test_the_ema_weights_are_exported(setup, exports):
    detector = deploy_infer.Detector(exports['nms'], ir_optim=False)
    path = setup['images'][0]
    got = detector.predict([path])[0]
    raw = eager_detections(eager_model(setup['cfg'], setup['raw']),
                           reader_inputs(setup['cfg'], path))[0]
    ema = eager_detections(eager_model(setup['cfg'], setup['ema']),
                           reader_inputs(setup['cfg'], path))[0]
    assert_same_detections([got], [ema])
    with pytest.raises(AssertionError):
        assert_same_detections([got], [raw])


def test_export_files_and_pruned_inputs(exports):
    from paddle import inference
    expected_inputs = {'nms': ['image', 'scale_factor'],
                       'exclude_nms': ['image', 'scale_factor'],
                       'exclude_post_process': ['image']}  # scale_factor unused: pruned
    for variant, directory in exports.items():
        assert os.path.basename(directory) == 'ppyoloe_crn_s_shapes'  # the config stem
        program, params = find_model_file(directory)
        expected_program = 'model.json' if paddle.__version__.startswith('3') else 'model.pdmodel'
        assert os.path.basename(program) == expected_program
        assert os.path.isfile(params)
        config = inference.Config(program, params)
        config.switch_ir_optim(False)  # only the inputs are looked at
        assert inference.create_predictor(config).get_input_names() == expected_inputs[variant]


def test_infer_cfg_round_trip(setup, exports):
    with open(os.path.join(exports['exclude_nms'], 'infer_cfg.yml')) as f:
        infer_cfg = yaml.safe_load(f)
    nms = setup['cfg'].PPYOLOEHead['nms']
    assert infer_cfg['mode'] == 'paddle' and infer_cfg['arch'] == 'YOLO'
    assert infer_cfg['min_subgraph_size'] == 3 and infer_cfg['draw_threshold'] == 0.5
    assert infer_cfg['metric'] == 'COCO' and infer_cfg['use_dynamic_shape'] is False
    assert infer_cfg['label_list'] == [name for _, name in CATEGORIES]
    assert infer_cfg['exclude_nms'] is True and infer_cfg['exclude_post_process'] is False
    assert infer_cfg['NMS'] == {'score_threshold': nms['score_threshold'], 'nms_top_k': 1000,
                                'keep_top_k': -1, 'nms_threshold': nms['nms_threshold'],
                                'normalized': True, 'nms_eta': 1.0}
    assert [op['type'] for op in infer_cfg['Preprocess']] == ['Resize', 'NormalizeImage',
                                                              'Permute']
    assert infer_cfg['Preprocess'][0] == {'type': 'Resize', 'interp': 2, 'keep_ratio': False,
                                          'target_size': SIZE}
    # loading it gives the TestReader's own network input, bit for bit
    pre = deploy_pre.Preprocessor.from_infer_cfg(exports['exclude_nms'])
    for path in setup['images']:
        expected = reader_inputs(setup['cfg'], path)
        got = pre(path)
        for key in ('image', 'im_shape', 'scale_factor'):
            np.testing.assert_array_equal(got[key], expected[key])


def test_dynamic_shape_trt_export(setup):
    """image_shape [3, -1, -1] with trt=True: any multiple of 32 runs, square or not."""
    cfg = tiny_config(setup['anno'], [192, 192], dynamic=True)
    directory = export_model(cfg, str(setup['root'] / 'dynamic'), weights=setup['weights'],
                             trt=True)
    with open(os.path.join(directory, 'infer_cfg.yml')) as f:
        assert yaml.safe_load(f)['use_dynamic_shape'] is True
    predictor = deploy_infer.create_predictor(directory, {}, ir_optim=False)
    trt_cfg = tiny_config(setup['anno'], [192, 192], dynamic=True, trt=True)
    model = eager_model(trt_cfg, setup['ema'])
    rng = np.random.RandomState(0)
    for h, w in [(192, 192), (128, 256)]:
        inputs = {'image': rng.randn(1, 3, h, w).astype('float32'),
                  'im_shape': np.array([[h, w]], 'float32'),
                  'scale_factor': np.array([[0.8, 1.25]], 'float32')}
        bbox, num = run_predictor(predictor, inputs)
        assert_same_detections([bbox.reshape(-1, 6)], eager_detections(model, inputs))
        assert num.tolist() == [len(bbox)]


def test_refused_configurations(setup):
    anno = setup['anno']
    with pytest.raises(ValueError, match=r'image_shape must be \[3, H, W\] with H and W '
                                         r'multiples of 32'):
        export_model(tiny_config(anno, [160, 224], **{
            'TestReader.inputs_def.image_shape': [3, 100, 224]}), str(setup['root']))
    # the exported input size must be what the TestReader produces (else tools/infer.py and the
    # deploy runners would see different images)
    with pytest.raises(ValueError, match=r'fixes the exported input to 192 x 224, but the '
                                         r'TestReader resizes'):
        export_model(tiny_config(anno, [160, 224], eval_size=None, **{
            'TestReader.inputs_def.image_shape': [3, 192, 224]}), str(setup['root']),
            weights=setup['weights'])
    with pytest.raises(ValueError, match=r'image_shape \[3, 160, 224\] and eval_size '
                                         r'\[160, 160\] differ'):
        export_model(tiny_config(anno, [160, 224], eval_size=[160, 160]), str(setup['root']))
    with pytest.raises(ValueError, match='no weights'):
        export_model(tiny_config(anno, [160, 224], weights=None), str(setup['root']))


@pytest.mark.parametrize('size, keep_ratio, pad', [
    ([250, 250], False, None),  # 250 = 7 * 32 + 26
    ([192, 192], True, None),   # a 150 x 230 image becomes 192 x 294: 294 = 9 * 32 + 6
    ([192, 192], True, 16)])    # padding to 16 is not enough either
def test_dynamic_export_refuses_inputs_not_multiple_of_32(setup, size, keep_ratio, pad):
    """A dynamic export used to accept these TestReaders; the runners then fed the model sizes
    tools/infer.py refuses (fewer detections)."""
    extra = {} if pad is None else {'TestReader.batch_transforms': [
        {'PadBatch': {'pad_to_stride': pad}}]}
    cfg = tiny_config(setup['anno'], size, dynamic=True, keep_ratio=keep_ratio, **extra)
    with pytest.raises(ValueError, match=r'image_shape \[3, -1, -1\] \(dynamic size\).*multiples '
                                         r'of 32.*Resize target_size.*PadBatch: \{pad_to_stride: 32\}'):
        export_model(cfg, str(setup['root'] / 'refused'), weights=setup['weights'])


def test_dynamic_keep_ratio_export_with_pad_to_32_is_accepted(setup):
    cfg = tiny_config(setup['anno'], [192, 192], dynamic=True, keep_ratio=True, **{
        'TestReader.batch_transforms': [{'PadBatch': {'pad_to_stride': 32}}]})
    directory = export_model(cfg, str(setup['root'] / 'keep_ratio'), weights=setup['weights'])
    with open(os.path.join(directory, 'infer_cfg.yml')) as f:
        assert yaml.safe_load(f)['Preprocess'][-1] == {'type': 'PadStride', 'stride': 32}


def test_export_log_names_the_exported_layout(setup):
    """Both switches give the no-post-processing layout, and the log says so (it said "without
    NMS"); a temporary export (the ONNX conversion's) logs its line at debug level only."""
    import logging
    lines = []
    handler = logging.Handler(level=logging.DEBUG)
    handler.emit = lambda record: lines.append((record.levelno, record.getMessage()))
    logger = logging.getLogger('ppdet_lite.engine.export')
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        export_model(setup['cfg'], str(setup['root'] / 'both'), weights=setup['weights'],
                     exclude_nms=True, exclude_post_process=True)
        export_model(setup['cfg'], str(setup['root'] / 'temp'), weights=setup['weights'],
                     exclude_nms=True, temporary=True)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    exported = [(level, msg) for level, msg in lines if msg.startswith('exported the')]
    assert len(exported) == 2
    assert exported[0][0] == logging.INFO and 'without post-processing; inputs image)' in \
        exported[0][1]
    assert exported[1][0] == logging.DEBUG and 'without NMS' in exported[1][1]
