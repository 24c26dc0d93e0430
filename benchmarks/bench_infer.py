"""Inference latency of one model in every runtime the project deploys to, in ms per image.

PP-YOLOE-s (``configs/ppyoloe/ppyoloe_crn_s_300e_coco.yml``, 80 classes) at 640 x 640, batch 1, on
one preprocessed image tensor (decoding and resizing not timed), NMS included everywhere:

* **eager**: the dynamic-graph model as ``tools/infer.py`` runs it (``build_inference_model``: eval
  mode, RepVGG fused) under ``paddle.no_grad``;
* **paddle_inference**: the ``tools/export_model.py`` export on ``paddle.inference`` (CPU, oneDNN
  off as in ``deploy/python/infer.py``: Paddle >= 3.1's oneDNN kernels refuse the export);
* **onnxruntime**: the ``--onnx`` export (``model.onnx``, ONNX NMS) on ONNX Runtime's CPU provider;
* **tensorrt** (only where ``tensorrt`` imports and a GPU is present): an FP32 engine of the no-NMS
  ONNX with the EfficientNMS plugin (``deploy/tensorrt/build_engine.py``).

Weights are random (the figures do not depend on them) except that the head's prediction convs get
seeded weights (N(0, 0.02), class bias -5) so that, as with a trained model, a few thousand class
scores pass the 0.01 threshold (about 3200 on the benchmark's input) and NMS has work to do (a freshly
built head scores every box exactly 0.01, below it). Each runtime gets
``--warmup`` untimed runs, then ``--repeats`` timed ones; the figure is the median. Paddle Inference
and ONNX Runtime get ``--threads`` CPU threads, eager Paddle its default; oneDNN is off for eager Paddle
too, so that both Paddle figures run the same kernels.

    python benchmarks/bench_infer.py [--size 640] [--repeats 20] [--warmup 3] [--threads 2]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, 'deploy', 'python'))
sys.path.insert(0, os.path.join(ROOT, 'deploy', 'tensorrt'))

import paddle  # noqa: E402
import yaml  # noqa: E402

import ppdet_lite.modeling  # noqa: E402,F401
from ppdet_lite.core.workspace import create, load_config  # noqa: E402
from ppdet_lite.engine.export import build_inference_model, export_model  # noqa: E402
from ppdet_lite.engine.onnx_export import export_onnx  # noqa: E402
from ppdet_lite.utils.checkpoint import save_weights  # noqa: E402

S_CFG = os.path.join(ROOT, 'configs', 'ppyoloe', 'ppyoloe_crn_s_300e_coco.yml')


def median_ms(run, warmup, repeats):
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        run()
        times.append(time.perf_counter() - tic)
    return statistics.median(times) * 1000


def make_config(size, weights_dir):
    cfg = load_config(S_CFG, overrides={
        'eval_size': [size, size], 'pretrain_weights': None,
        'TestReader': {'inputs_def': {'image_shape': [3, size, size]}, 'sample_transforms': [
            {'Decode': {}}, {'Resize': {'target_size': [size, size], 'keep_ratio': False,
                                        'interp': 2}},
            {'NormalizeImage': {'mean': [0.485, 0.456, 0.406], 'std': [0.229, 0.224, 0.225],
                                'is_scale': True}}, {'Permute': {}}]}}, make_current=False)
    paddle.seed(0)
    model = create(cfg.architecture, cfg=cfg)
    rng = np.random.RandomState(0)
    for name, param in model.state_dict().items():
        if name.startswith(('yolo_head.pred_cls', 'yolo_head.pred_reg')):
            value = (rng.normal(0, 0.02, param.shape) if name.endswith('weight') else
                     np.full(param.shape, -5. if 'pred_cls' in name else 0.))
            param.set_value(value.astype(np.float32))
    cfg['weights'] = os.path.join(weights_dir, 'random.pdparams')
    save_weights(model, cfg['weights'])
    return cfg


def bench_tensorrt(cfg, work, feed, args):
    """ms per image of an FP32 TensorRT (>= 8.5, tensor-name API) engine run through pycuda, or the
    reason there is none.
    Written for GPU machines; this repository's CI has no GPU, so this path is not exercised there."""
    try:
        import tensorrt as trt
    except ImportError:
        return 'tensorrt not installed'
    import build_engine
    import onnx
    from efficient_nms import add_efficient_nms
    try:
        import pycuda.autoinit  # noqa: F401
        import pycuda.driver as cuda
    except ImportError:
        return 'pycuda not installed (needed to run the engine)'
    raw_dir = export_model(cfg, os.path.join(work, 'raw'), exclude_nms=True)
    with open(os.path.join(raw_dir, 'infer_cfg.yml')) as f:
        nms = yaml.safe_load(f)['NMS']
    model = add_efficient_nms(onnx.load(export_onnx(cfg, raw_dir)), nms['score_threshold'],
                              nms['nms_threshold'], nms['keep_top_k'])
    trt_onnx = os.path.join(raw_dir, 'trt_nms.onnx')
    onnx.save(model, trt_onnx)
    engine_file = build_engine.build_engine(trt_onnx, os.path.join(raw_dir, 'm.engine'),
                                            batch=(1, 1, 1))
    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    with open(engine_file, 'rb') as f:
        engine = runtime.deserialize_cuda_engine(f.read())
    context = engine.create_execution_context()
    buffers, host = [], {}
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
            context.set_input_shape(name, feed[name].shape)
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        shape = tuple(context.get_tensor_shape(name))
        array = (feed[name] if name in feed else
                 np.empty(shape, dtype=trt.nptype(engine.get_tensor_dtype(name))))
        host[name] = np.ascontiguousarray(array)
        buffers.append(cuda.mem_alloc(host[name].nbytes))
        context.set_tensor_address(name, int(buffers[-1]))
    stream = cuda.Stream()

    def run():
        for k, name in enumerate(host):
            if name in feed:
                cuda.memcpy_htod_async(buffers[k], host[name], stream)
        context.execute_async_v3(stream.handle)
        for k, name in enumerate(host):
            if name not in feed:
                cuda.memcpy_dtoh_async(host[name], buffers[k], stream)
        stream.synchronize()
    return median_ms(run, args.warmup, args.repeats)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--size', type=int, default=640)
    parser.add_argument('--repeats', type=int, default=20)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--threads', type=int, default=2)
    args = parser.parse_args(argv)

    import infer as paddle_infer
    import onnxruntime as ort

    work = tempfile.mkdtemp(prefix='bench_infer_')
    cfg = make_config(args.size, work)
    rng = np.random.RandomState(0)
    feed = {'image': rng.uniform(-2, 2, (1, 3, args.size, args.size)).astype(np.float32),
            'scale_factor': np.ones((1, 2), np.float32)}
    results = {}

    paddle.set_flags({'FLAGS_use_mkldnn': False})
    model = build_inference_model(cfg)
    inputs = {k: paddle.to_tensor(v) for k, v in feed.items()}
    with paddle.no_grad():
        out = model(inputs)
        results['eager'] = median_ms(lambda: model(inputs)['bbox'].numpy(), args.warmup,
                                     args.repeats)
    print(f'eager detections per image: {int(out["bbox_num"].sum())}')

    export_dir = export_model(cfg, os.path.join(work, 'export'))
    with open(os.path.join(export_dir, 'infer_cfg.yml')) as f:
        infer_cfg = yaml.safe_load(f)
    predictor = paddle_infer.create_predictor(export_dir, infer_cfg, cpu_threads=args.threads)

    def run_paddle():
        for name in predictor.get_input_names():
            predictor.get_input_handle(name).copy_from_cpu(feed[name])
        predictor.run()
        return [predictor.get_output_handle(n).copy_to_cpu()
                for n in predictor.get_output_names()]
    results['paddle_inference'] = median_ms(run_paddle, args.warmup, args.repeats)

    onnx_file = export_onnx(cfg, export_dir)
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    session = ort.InferenceSession(onnx_file, options, providers=['CPUExecutionProvider'])
    ort_feed = {i.name: feed[i.name] for i in session.get_inputs()}
    results['onnxruntime'] = median_ms(lambda: session.run(None, ort_feed), args.warmup,
                                       args.repeats)
    counts = [len(run_paddle()[0]), len(session.run(None, ort_feed)[0])]
    print(f'detections (paddle_inference, onnxruntime): {counts}')

    results['tensorrt'] = bench_tensorrt(cfg, work, feed, args)
    load = os.getloadavg()
    print(f'PP-YOLOE-s {args.size}x{args.size}, batch 1, {args.threads} threads, Paddle '
          f'{paddle.__version__}, onnxruntime {ort.__version__}, load average '
          f'{load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; median of {args.repeats} runs:')
    for name, value in results.items():
        shown = f'{value:8.1f} ms/image' if isinstance(value, float) else f'   - ({value})'
        print(f'  {name:17s}{shown}')
    return results


if __name__ == '__main__':
    main()
