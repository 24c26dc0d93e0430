"""A tiny PP-YOLOE (the demo config at width 1/8) with random weights and small test images, for
the export, inference and deploy tests.

A freshly built head predicts the same thing everywhere (its prediction convs start at 0), so the
weights are drawn at random: detections then depend on the image, and a preprocessing or export
difference shows.
"""

import json
import os

import cv2
import numpy as np
import paddle

from ppdet_lite.core.workspace import create, load_config

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), '..'))
DEMO = os.path.join(ROOT, 'configs', 'ppyoloe', 'ppyoloe_crn_s_shapes.yml')
# COCO category ids that are not 0..4, so results must go through clsid2catid
CATEGORIES = [(3, 'circle'), (7, 'square'), (9, 'triangle'), (11, 'star'), (20, 'ring')]
# the head's prediction convs get smaller weights: the calibrated features are large
CLS_GAIN, CLS_BIAS, REG_GAIN = 0.05, -3., 0.05
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def write_categories(path):
    """A COCO annotation file with the categories only (what TestDataset needs for names)."""
    with open(path, 'w') as f:
        json.dump({'images': [], 'annotations': [],
                   'categories': [{'id': i, 'name': n} for i, n in CATEGORIES]}, f)
    return path


def write_images(directory):
    """Two PNGs of 150 x 230 and 200 x 170 (h x w): noisy gradients and filled shapes (the noise
    makes every anchor see different pixels, so scores seldom tie)."""
    rng = np.random.RandomState(7)
    paths = []
    for k, (h, w) in enumerate([(150, 230), (200, 170)]):
        ys, xs = np.mgrid[0:h, 0:w]
        im = np.stack([(xs * 3 + k * 50) % 256, (ys * 2) % 256, (xs + ys) % 256],
                      axis=-1).astype(np.uint8)
        cv2.rectangle(im, (30 + 10 * k, 20), (110, 90 + 20 * k), (20, 220, 40), -1)
        cv2.circle(im, (w - 50, h - 45), 30, (230, 30, 200), -1)
        im = np.clip(im.astype(int) + rng.randint(-40, 41, im.shape), 0, 255).astype(np.uint8)
        path = os.path.join(directory, f'img{k}.png')
        cv2.imwrite(path, im)
        paths.append(path)
    return paths


def overrides(anno_file, size, dynamic=False, keep_ratio=False, **extra):
    """``-o`` overrides (dict) of the demo config: width 1/8, TestReader resizing to ``size``
    ``[h, w]``, export input ``size`` (or dynamic), TestDataset naming CATEGORIES."""
    opts = {
        'width_mult': 0.125, 'worker_num': 0,
        'eval_size': None if dynamic else list(size),
        'TestReader.inputs_def.image_shape': [3, -1, -1] if dynamic else [3] + list(size),
        'TestReader.sample_transforms': [
            {'Decode': {}},
            {'Resize': {'target_size': list(size), 'keep_ratio': keep_ratio, 'interp': 2}},
            {'NormalizeImage': {'mean': MEAN, 'std': STD, 'is_scale': True}},
            {'Permute': {}}],
        'TestDataset.anno_path': anno_file,
        # no keep_top_k cut: rows whose scores differ by float rounding could swap across it
        'PPYOLOEHead.nms.keep_top_k': -1,
    }
    opts.update(extra)
    return opts


def cli_overrides(opts):
    """The dict as ``-o key=value`` strings (YAML flow values)."""
    return [f'{k}={json.dumps(v) if v is not None else "null"}' for k, v in opts.items()]


def tiny_config(anno_file, size, **kwargs):
    return load_config(DEMO, overrides=overrides(anno_file, size, **kwargs))


def random_state(model, seed):
    """Random weights for every tensor but ``proj_conv`` (the fixed DFL projection), with
    BatchNorm statistics measured on random inputs so that features keep their scale through the
    network (with arbitrary statistics they fade to ~1e-6 by the head and every anchor scores
    alike): conv weights N(0, 1/fan_in) (the head's prediction convs scaled by CLS_GAIN and
    REG_GAIN), BN scales in [0.5, 1.5], class biases -3, other vectors N(0, 0.1). Scores then
    range over (0, 1) and depend on the image. Returns the state dict (numpy)."""
    rng = np.random.RandomState(seed)
    state = {}
    for key, value in model.state_dict().items():
        shape = value.shape
        if 'proj_conv' in key:
            state[key] = value.numpy()
        elif key.endswith('_variance') or (key.endswith('.weight') and len(shape) == 1):
            state[key] = rng.uniform(0.5, 1.5, shape).astype('float32')
        elif len(shape) == 4:
            fan_in = shape[1] * shape[2] * shape[3]
            gain = (CLS_GAIN if key.startswith('yolo_head.pred_cls') else
                    REG_GAIN if key.startswith('yolo_head.pred_reg') else 1.)
            state[key] = (rng.randn(*shape) * gain / np.sqrt(fan_in)).astype('float32')
        elif key.startswith('yolo_head.pred_cls'):
            state[key] = np.full(shape, CLS_BIAS, dtype='float32')
        else:
            state[key] = (rng.randn(*shape) * 0.1).astype('float32')
    model.set_state_dict(state)
    norms = [m for m in model.sublayers() if isinstance(m, paddle.nn.BatchNorm2D)]
    for norm in norms:
        norm._momentum = 0.  # running statistics := this batch's
    model.train()
    with paddle.no_grad():
        h, w = model.yolo_head.eval_size or (160, 224)
        image = paddle.to_tensor(rng.randn(2, 3, h, w).astype('float32'))
        model.yolo_head.forward_eval(model.neck(model.backbone({'image': image})))
    model.eval()
    return {k: v.numpy() for k, v in model.state_dict().items()}


def write_checkpoint(cfg, stem, seed=0):
    """``<stem>.pdparams`` (the EMA weights, seed ``seed``) and ``<stem>.pdema`` (other raw
    weights, seed ``seed + 1``), as the trainer saves an EMA run. Returns both states."""
    model = create(cfg.architecture, cfg=cfg)
    ema, raw = random_state(model, seed), random_state(model, seed + 1)
    paddle.save(ema, stem + '.pdparams')
    paddle.save(raw, stem + '.pdema')
    return ema, raw


def eager_model(cfg, state, fuse=True):
    """The dynamic-graph eval model with ``state``; ``fuse``: RepVGG blocks converted as the
    export does (fused and unfused differ by float rounding, ~5e-5 px on these boxes, which can
    flip NMS between near-tied boxes; with it, eager and exported outputs are equal)."""
    model = create(cfg.architecture, cfg=cfg)
    model.set_state_dict(state)
    model.eval()
    if fuse:
        for layer in model.sublayers():
            if hasattr(layer, 'convert_to_deploy'):
                layer.convert_to_deploy()
    return model


def reader_inputs(cfg, path):
    """ppdet_lite's TestReader transforms of one image, batched as numpy."""
    reader = create('TestReader', cfg=cfg)
    return reader._batch_transforms([reader._sample_transforms({'im_file': path})])


def eager_detections(model, inputs):
    """Per image [n, 6] (class, score, x1, y1, x2, y2) of the eager model with NMS."""
    with paddle.no_grad():
        out = model({k: paddle.to_tensor(inputs[k]) for k in ('image', 'im_shape',
                                                               'scale_factor')})
    bbox, num = out['bbox'].numpy().reshape(-1, 6), out['bbox_num'].numpy()
    ends = np.cumsum(num)
    return [bbox[e - n:e] for n, e in zip(num, ends)]


def assert_same_detections(actual, expected, atol=1e-4):
    """Per image: the same number of rows, and a one-to-one pairing of rows with equal classes
    and boxes and scores within ``atol``. Rows are paired regardless of order, since scores
    equal up to float rounding may come out in either order."""
    assert len(actual) == len(expected)
    for k, (a, e) in enumerate(zip(actual, expected)):
        assert a.shape == e.shape, f'image {k}: {a.shape[0]} rows vs {e.shape[0]} expected'
        unused = list(range(len(e)))
        for row in a:
            close = [j for j in unused if e[j, 0] == row[0] and
                     np.abs(e[j, 1:] - row[1:]).max() <= atol]
            assert close, f'image {k}: row {row.tolist()} has no counterpart'
            unused.remove(close[0])


def run_predictor(predictor, inputs):
    """Feed ``inputs`` (numpy, by input name) to a paddle.inference predictor; its outputs."""
    for name in predictor.get_input_names():
        handle = predictor.get_input_handle(name)
        handle.reshape(inputs[name].shape)
        handle.copy_from_cpu(np.ascontiguousarray(inputs[name]))
    predictor.run()
    return [predictor.get_output_handle(n).copy_to_cpu() for n in predictor.get_output_names()]
