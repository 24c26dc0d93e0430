"""Run an exported detector with Paddle Inference (PaddleDetection's ``deploy/python/infer.py``).

    python deploy/python/infer.py --model_dir output_inference/ppyoloe_crn_s_shapes \\
        --image_file demo.jpg | --image_dir images/ [--device CPU|GPU]
        [--run_mode paddle|trt_fp32|trt_fp16] [--threshold 0.5] [--output_dir output]
        [--batch_size 1] [--run_benchmark]

The export directory holds ``model.json`` (exported with Paddle 3.x) or ``model.pdmodel`` (Paddle
2.6), ``model.pdiparams`` and ``infer_cfg.yml``; preprocessing (``preprocess.py``) and
post-processing (``postprocess.py``, which also runs NMS for exports without it) follow
infer_cfg.yml. Images with detections drawn go to ``--output_dir``; ``--run_benchmark`` prints
preprocess / inference / postprocess milliseconds per image. ``trt_*`` run modes need a GPU build
of Paddle compiled with TensorRT. Only numpy, OpenCV, PyYAML and Paddle are imported.
"""

import argparse
import glob
import os
import sys
import time

import cv2
import numpy as np
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from postprocess import detections  # noqa: E402
from preprocess import IMAGE_EXTENSIONS, ImageReadError, Preprocessor, read_image  # noqa: E402,E501
from visualize import draw_detections  # noqa: E402

__all__ = ['BaseDetector', 'Detector', 'find_model_file', 'list_images', 'run', 'run_main', 'main']

RUN_MODES = ('paddle', 'trt_fp32', 'trt_fp16')


def find_model_file(model_dir):
    """``(program, params)`` paths: ``model.json`` (Paddle 3.x export) or ``model.pdmodel``
    (Paddle 2.6 export), and ``model.pdiparams``.

    Raises:
        FileNotFoundError: no exported model in ``model_dir``.
        RuntimeError: only ``model.json`` and this Paddle is older than 3.0, which cannot read it.
    """
    import paddle
    params = os.path.join(model_dir, 'model.pdiparams')
    json_file, pdmodel = (os.path.join(model_dir, n) for n in ('model.json', 'model.pdmodel'))
    if not os.path.isfile(params) or not (os.path.isfile(json_file) or os.path.isfile(pdmodel)):
        raise FileNotFoundError(f'{model_dir}: no exported model (expected model.json or '
                                f'model.pdmodel, and model.pdiparams; run tools/export_model.py)')
    paddle3 = int(paddle.__version__.split('.')[0]) >= 3 or paddle.__version__.startswith('0.0')
    if os.path.isfile(json_file) and paddle3:
        return json_file, params
    if os.path.isfile(pdmodel):
        return pdmodel, params
    raise RuntimeError(f'{model_dir} holds model.json, a Paddle 3.x export, which Paddle '
                       f'{paddle.__version__} cannot read: run it with Paddle >= 3.0 or export '
                       f'again with this Paddle')


def _trt_precision(run_mode):
    from paddle.inference import PrecisionType
    return PrecisionType.Half if run_mode == 'trt_fp16' else PrecisionType.Float32


def _check_trt(device):
    import paddle
    from paddle import inference
    if device != 'GPU':
        raise ValueError('TensorRT run modes (trt_fp32, trt_fp16) need --device GPU')
    version = tuple(inference.get_trt_compile_version())
    if not paddle.is_compiled_with_cuda() or version == (0, 0, 0):
        raise RuntimeError(f'this Paddle build ({paddle.__version__}, '
                           f'{"CUDA" if paddle.is_compiled_with_cuda() else "CPU only"}) has no '
                           f'TensorRT: install a paddlepaddle-gpu build compiled with TensorRT '
                           f'for --run_mode trt_fp32 / trt_fp16, or use --run_mode paddle')


def create_predictor(model_dir, infer_cfg, device='CPU', run_mode='paddle', batch_size=1,
                     cpu_threads=1, enable_mkldnn=False, trt_min_shape=320, trt_max_shape=1280,
                     trt_opt_shape=640, ir_optim=True):
    """A ``paddle.inference`` predictor for the export in ``model_dir``.

    ``ir_optim=False`` turns off Paddle Inference's graph fusions (conv + BN, conv +
    activation, ...), which change results by float rounding only; without them the program
    computes exactly what the exported graph says (the tests compare it with the eager model).

    Raises:
        ValueError: an unknown device or run mode, TensorRT asked for on the CPU.
        RuntimeError: a TensorRT run mode on a Paddle build without TensorRT; GPU asked for on a
            CPU build.
    """
    import paddle
    from paddle import inference
    if device not in ('CPU', 'GPU'):
        raise ValueError(f"--device must be CPU or GPU, got {device!r}")
    if run_mode not in RUN_MODES:
        raise ValueError(f'--run_mode must be one of {", ".join(RUN_MODES)}, got {run_mode!r}')
    if run_mode != 'paddle':
        _check_trt(device)
    if device == 'GPU' and not paddle.is_compiled_with_cuda():
        raise RuntimeError(f'--device GPU: this Paddle build ({paddle.__version__}) is CPU only')
    program, params = find_model_file(model_dir)
    config = inference.Config(program, params)
    config.switch_ir_optim(ir_optim)
    if device == 'GPU':
        config.enable_use_gpu(200, 0)
        if run_mode != 'paddle':
            config.enable_tensorrt_engine(
                workspace_size=1 << 30, max_batch_size=batch_size,
                min_subgraph_size=int(infer_cfg.get('min_subgraph_size', 3)),
                precision_mode=_trt_precision(run_mode), use_static=False, use_calib_mode=False)
            if infer_cfg.get('use_dynamic_shape'):
                shapes = [{'image': [batch_size, 3, side, side]} for side in
                          (trt_min_shape, trt_max_shape, trt_opt_shape)]
                if not infer_cfg.get('exclude_post_process'):
                    for shape in shapes:
                        shape['scale_factor'] = [batch_size, 2]
                config.set_trt_dynamic_shape_info(*shapes)
    else:
        config.disable_gpu()
        config.set_cpu_math_library_num_threads(cpu_threads)
        if enable_mkldnn:
            config.enable_mkldnn()
        else:
            # Paddle 3 CPU inference turns oneDNN on by default; its kernels refuse the float64
            # `scale` attribute Paddle >= 3.1 writes for the neck's 2x upsampling
            config.disable_mkldnn()
    config.disable_glog_info()
    config.switch_use_feed_fetch_ops(False)
    return inference.create_predictor(config)


class BaseDetector:
    """What the runners share: infer_cfg.yml's pre- and post-processing around an inference
    engine, and the timings. Subclasses load ``infer_cfg.yml`` with ``_load_infer_cfg`` and
    implement ``_feed(inputs) -> feed`` (hand the preprocessed batch to the engine, outside the
    inference timing) and ``_infer(feed, repeats) -> outputs`` (run it ``repeats`` times; the
    engine's output arrays, as ``postprocess.detections`` takes them).

    Attributes:
        infer_cfg (dict), labels (list[str]), threshold (float: infer_cfg's draw_threshold),
        times (dict): accumulated seconds of 'preprocess', 'inference', 'postprocess' and the
        number of 'images'; post_cfg (dict): the settings post-processing reads (infer_cfg).
    """

    def _load_infer_cfg(self, cfg_path):
        with open(cfg_path) as f:
            self.infer_cfg = yaml.safe_load(f)
        self.labels = list(self.infer_cfg.get('label_list', []))
        self.threshold = float(self.infer_cfg.get('draw_threshold', 0.5))
        self.preprocessor = Preprocessor.from_infer_cfg(self.infer_cfg)
        self.post_cfg = self.infer_cfg
        self.times = {'preprocess': 0., 'inference': 0., 'postprocess': 0., 'images': 0}

    def predict(self, images, repeats=1):
        """Detections for a batch of images (paths or BGR arrays).

        Returns:
            list[ndarray]: per image ``[n, 6]`` float32 (class, score, x1, y1, x2, y2) in
            original-image pixels, every detection the model keeps (no threshold applied).
        Raises:
            ImageReadError: an image that cannot be read (names the file).
        """
        tic = time.perf_counter()
        inputs = self.preprocessor.batch(images)
        feed = self._feed(inputs)
        tic2 = time.perf_counter()
        outputs = self._infer(feed, repeats)
        tic3 = time.perf_counter()
        dets = detections(outputs, self.post_cfg, inputs['scale_factor'])
        tic4 = time.perf_counter()
        self.times['preprocess'] += tic2 - tic
        self.times['inference'] += (tic3 - tic2) / repeats
        self.times['postprocess'] += tic4 - tic3
        self.times['images'] += len(images)
        return dets


class Detector(BaseDetector):
    """An exported model on Paddle Inference with its preprocessing and post-processing.

    Args:
        model_dir (str): the export directory (model, params and infer_cfg.yml).
        device, run_mode, batch_size, cpu_threads, enable_mkldnn, ir_optim: see
            ``create_predictor``.
    Attributes:
        those of ``BaseDetector``.
    """

    def __init__(self, model_dir, device='CPU', run_mode='paddle', batch_size=1, cpu_threads=1,
                 enable_mkldnn=False, ir_optim=True):
        cfg_path = os.path.join(model_dir, 'infer_cfg.yml')
        if not os.path.isfile(cfg_path):
            raise FileNotFoundError(f'{cfg_path} not found: --model_dir must be a directory '
                                    f'written by tools/export_model.py')
        self._load_infer_cfg(cfg_path)
        self.predictor = create_predictor(model_dir, self.infer_cfg, device, run_mode, batch_size,
                                          cpu_threads, enable_mkldnn, ir_optim=ir_optim)
        self.input_names = self.predictor.get_input_names()

    def _feed(self, inputs):
        for name in self.input_names:
            handle = self.predictor.get_input_handle(name)
            handle.reshape(inputs[name].shape)
            handle.copy_from_cpu(np.ascontiguousarray(inputs[name]))

    def _infer(self, feed, repeats):
        for _ in range(repeats):
            self.predictor.run()
        return [self.predictor.get_output_handle(name).copy_to_cpu()
                for name in self.predictor.get_output_names()]


def list_images(image_file=None, image_dir=None):
    """The image paths to run on: ``image_file``, or the image files under ``image_dir``
    (recursive, sorted; extensions ``IMAGE_EXTENSIONS``, any case, as ``tools/infer.py``).

    Raises:
        FileNotFoundError: a missing file or directory; ValueError: no image in the directory.
    """
    if image_file:
        if not os.path.isfile(image_file):
            raise FileNotFoundError(f'--image_file {image_file} does not exist')
        return [image_file]
    if not os.path.isdir(image_dir):
        raise FileNotFoundError(f'--image_dir {image_dir} is not a directory')
    images = sorted(p for p in glob.glob(os.path.join(image_dir, '**', '*'), recursive=True)
                    if p.lower().endswith(IMAGE_EXTENSIONS) and not os.path.isdir(p))
    if not images:
        raise ValueError(f'--image_dir {image_dir}: no {"/".join(IMAGE_EXTENSIONS)} image found')
    return images


def _readable(path, single):
    """``path`` decoded as BGR uint8 by ``preprocess.read_image`` (the Preprocessor's rule: a
    truncated or corrupt file is refused, not half decoded), or None after a warning when a
    directory run meets a bad file.

    Raises:
        ImageReadError: an unreadable file in a single-image run (``single``).
    """
    try:
        return cv2.cvtColor(read_image(path), cv2.COLOR_RGB2BGR)
    except ImageReadError as e:
        if single:
            raise
        print(f'warning: skipping {path}: {e}', file=sys.stderr)
        return None


def add_run_args(parser):
    """The arguments both runners share (images, threshold, output, batch, benchmark)."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--image_file', help='one image')
    source.add_argument('--image_dir', help='a directory of images (searched recursively; '
                                            f'{"/".join(IMAGE_EXTENSIONS)}, any case)')
    parser.add_argument('--threshold', type=float, default=None,
                        help="score threshold in [0, 1] for drawing and printing (default: "
                             "infer_cfg's draw_threshold)")
    parser.add_argument('--output_dir', default='output',
                        help='where drawn images go (an --image_dir run keeps the relative paths '
                             'under it); must not be the input directory')
    parser.add_argument('--batch_size', type=int, default=1, help='images per run (>= 1)')
    parser.add_argument('--run_benchmark', action='store_true',
                        help='time each stage (inference repeated 10 times after a warm-up); no '
                             'images are written')


def check_run_args(parser, args):
    """Refuse (``parser.error``, exit 2) a batch size < 1, a threshold outside [0, 1] and an
    ``--output_dir`` that is the input directory (drawn images would replace the sources)."""
    if args.batch_size < 1:
        parser.error(f'--batch_size must be >= 1, got {args.batch_size}')
    if args.threshold is not None and not 0. <= args.threshold <= 1.:
        parser.error(f'--threshold must be in [0, 1], got {args.threshold}')
    source = args.image_dir if args.image_dir else os.path.dirname(args.image_file) or '.'
    if not args.run_benchmark and os.path.realpath(args.output_dir) == os.path.realpath(source):
        parser.error(f'--output_dir {args.output_dir} is the directory of the input images: the '
                     f'drawn images would overwrite them; choose another --output_dir')


def _output_path(path, args):
    relative = (os.path.relpath(path, args.image_dir) if args.image_dir
                else os.path.basename(path))
    return os.path.join(args.output_dir, relative)


def run(detector, args, images, setting):
    """Detect on ``images`` in batches of ``args.batch_size``, print the detections at or above
    the threshold and draw them to ``--output_dir`` (relative paths kept), or, with
    ``--run_benchmark``, time the stages after a warm-up on the first readable image and print
    ``setting`` with the ms per image.

    Returns:
        dict: image path -> ``[n, 6]`` detections (every kept one, unthresholded).
    Exits (``sys.exit``, status 1): an unreadable ``--image_file``; a directory of which no image
        is readable; ``--enable_mkldnn`` refused by this Paddle's oneDNN.
    """
    threshold = detector.threshold if args.threshold is None else args.threshold
    repeats = 10 if args.run_benchmark else 1
    single = args.image_file is not None
    warm = not args.run_benchmark
    results = {}
    for start in range(0, len(images), args.batch_size):
        paths, arrays = [], []
        for path in images[start:start + args.batch_size]:
            try:
                image = _readable(path, single)
            except ImageReadError as e:
                sys.exit(f'error: {e}')
            if image is not None:
                paths.append(path)
                arrays.append(image)
        if not arrays:
            continue
        try:
            if not warm:
                detector.predict(arrays[:1] * args.batch_size)  # warm-up, not timed
                detector.times = dict.fromkeys(detector.times, 0)
                warm = True
            batch_dets = detector.predict(arrays, repeats)
        except NotImplementedError as e:
            if not getattr(args, 'enable_mkldnn', False):
                raise
            sys.exit(f'error: --enable_mkldnn: oneDNN refuses this program on Paddle 3.x '
                     f'({type(e).__name__}: {str(e).strip().splitlines()[0]}); it works on '
                     f'Paddle 2.6: run without --enable_mkldnn here')
        for path, image, dets in zip(paths, arrays, batch_dets):
            results[path] = dets
            kept = dets[dets[:, 1] >= threshold]
            print(f'{path}: {len(kept)} detections >= {threshold}')
            for cls, score, x1, y1, x2, y2 in kept:
                name = detector.labels[int(cls)] if int(cls) < len(detector.labels) else int(cls)
                print(f'  {name} {score:.3f} [{x1:.1f}, {y1:.1f}, {x2:.1f}, {y2:.1f}]')
            if not args.run_benchmark:
                out = _output_path(path, args)
                os.makedirs(os.path.dirname(out) or '.', exist_ok=True)
                cv2.imwrite(out, draw_detections(image, dets, detector.labels, threshold))
    if not results:
        sys.exit(f'error: --image_dir {args.image_dir}: none of its {len(images)} images could '
                 f'be read')
    if args.run_benchmark:
        n = detector.times['images']
        print(f'images: {n}, batch size {args.batch_size}, {setting}; ms per image: ' +
              ', '.join(f'{k} {detector.times[k] * 1000 / n:.2f}'
                        for k in ('preprocess', 'inference', 'postprocess')))
    else:
        print(f'drawn images written to {args.output_dir}')
    return results


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model_dir', required=True, help='directory of tools/export_model.py')
    add_run_args(parser)
    parser.add_argument('--device', default='CPU', type=str.upper, choices=['CPU', 'GPU'])
    parser.add_argument('--run_mode', default='paddle', choices=RUN_MODES)
    parser.add_argument('--cpu_threads', type=int, default=1)
    parser.add_argument('--enable_mkldnn', action='store_true',
                        help='oneDNN CPU kernels (about 3x faster with Paddle 2.6; Paddle 3.x '
                             "refuses them for this model's upsampling op)")
    args = parser.parse_args(argv)
    check_run_args(parser, args)
    return args


def run_main(args, build, errors, setting):
    """A runner's ``main`` after its argument parsing: the images, the detector ``build(args)``
    (an exception of a type in ``errors`` exits with ``error: <message>``), then ``run``.

    Returns:
        dict: ``run``'s ``{image path: [n, 6] detections}``.
    """
    try:
        images = list_images(args.image_file, args.image_dir)
        detector = build(args)
    except errors as e:
        sys.exit(f'error: {e}')
    return run(detector, args, images, setting)


def main(argv=None):
    """Returns ``{image path: [n, 6] detections}`` (every kept detection, unthresholded)."""
    args = parse_args(argv)
    return run_main(args, lambda a: Detector(a.model_dir, a.device, a.run_mode, a.batch_size,
                                             a.cpu_threads, a.enable_mkldnn),
                    (FileNotFoundError, ValueError, RuntimeError),
                    f'run mode {args.run_mode}, device {args.device}')


if __name__ == '__main__':
    main()
