"""Run an exported ONNX model with ONNX Runtime (the counterpart of ``infer.py`` for ``model.onnx``).

    python deploy/python/infer_onnx.py --onnx_file output_inference/NAME/model.onnx \\
        --infer_cfg output_inference/NAME/infer_cfg.yml --image_file demo.jpg | --image_dir images/
        [--threshold 0.5] [--output_dir output] [--batch_size 1] [--cpu_threads 0]
        [--run_benchmark]

Preprocessing is ``preprocess.py`` driven by infer_cfg.yml, post-processing ``postprocess.py``, the
printed lines and drawn images are ``infer.py``'s, so both runners give the same detections for the
same export. The ONNX model may end in NMS (outputs ``bbox [N, 6]``, ``bbox_num [B]``: the default
export) or not (``bbox [B, L, 4]``, ``scores [B, C, L]``: ``-o exclude_nms=True``; NMS then runs in
numpy with infer_cfg.yml's ``NMS`` settings). Only numpy, OpenCV, PyYAML and onnxruntime are
imported.
"""

import argparse
import os
import sys
import time

import cv2
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from infer import _readable, list_images  # noqa: E402
from postprocess import detections  # noqa: E402
from preprocess import ImageReadError, Preprocessor  # noqa: E402
from visualize import draw_detections  # noqa: E402

__all__ = ['OnnxDetector', 'main']


class OnnxDetector:
    """An ONNX model on ONNX Runtime (CPU) with infer_cfg.yml's pre- and post-processing.

    Args:
        onnx_file (str): the exported ``model.onnx``.
        infer_cfg (str): the export's ``infer_cfg.yml``.
        cpu_threads (int): ONNX Runtime intra-op threads (0: its default, one per core).
    Attributes:
        infer_cfg (dict), labels (list[str]), threshold (float: infer_cfg's draw_threshold),
        times (dict): accumulated seconds of 'preprocess', 'inference', 'postprocess' and the
        number of 'images' (as ``infer.Detector``).
    Raises:
        FileNotFoundError: a missing file; ImportError: onnxruntime is not installed.
    """

    def __init__(self, onnx_file, infer_cfg, cpu_threads=0):
        for flag, path in (('--onnx_file', onnx_file), ('--infer_cfg', infer_cfg)):
            if not os.path.isfile(path):
                raise FileNotFoundError(f'{flag} {path} does not exist')
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise ImportError('infer_onnx.py needs onnxruntime: pip install onnxruntime') from e
        with open(infer_cfg) as f:
            self.infer_cfg = yaml.safe_load(f)
        self.labels = list(self.infer_cfg.get('label_list', []))
        self.threshold = float(self.infer_cfg.get('draw_threshold', 0.5))
        self.preprocessor = Preprocessor.from_infer_cfg(self.infer_cfg)
        options = ort.SessionOptions()
        options.intra_op_num_threads = cpu_threads
        self.session = ort.InferenceSession(onnx_file, options,
                                            providers=['CPUExecutionProvider'])
        self.input_names = [i.name for i in self.session.get_inputs()]
        outputs = [o.name for o in self.session.get_outputs()]
        # the graph says whether it ends in NMS; infer_cfg.yml describes the Paddle export
        self.post_cfg = dict(self.infer_cfg, exclude_post_process=len(outputs) == 1,
                             exclude_nms=len(outputs) == 2 and 'bbox_num' not in outputs)
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
        feed = {name: inputs[name] for name in self.input_names}
        tic2 = time.perf_counter()
        for _ in range(repeats):
            outputs = self.session.run(None, feed)
        tic3 = time.perf_counter()
        dets = detections(outputs, self.post_cfg, inputs['scale_factor'])
        tic4 = time.perf_counter()
        self.times['preprocess'] += tic2 - tic
        self.times['inference'] += (tic3 - tic2) / repeats
        self.times['postprocess'] += tic4 - tic3
        self.times['images'] += len(images)
        return dets


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--onnx_file', required=True, help='model.onnx of tools/export_model.py')
    parser.add_argument('--infer_cfg', required=True, help='infer_cfg.yml of the same export')
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--image_file', help='one image')
    source.add_argument('--image_dir', help='a directory of images (searched recursively)')
    parser.add_argument('--threshold', type=float, default=None,
                        help="score threshold for drawing and printing (default: infer_cfg's "
                             'draw_threshold)')
    parser.add_argument('--output_dir', default='output', help='where drawn images go')
    parser.add_argument('--batch_size', type=int, default=1)
    parser.add_argument('--cpu_threads', type=int, default=0,
                        help='ONNX Runtime threads (0: one per core)')
    parser.add_argument('--run_benchmark', action='store_true',
                        help='time each stage (inference repeated 10 times after a warm-up); no '
                             'images are written')
    return parser.parse_args(argv)


def main(argv=None):
    """Returns ``{image path: [n, 6] detections}`` (every kept detection, unthresholded)."""
    args = parse_args(argv)
    try:
        images = list_images(args.image_file, args.image_dir)
        detector = OnnxDetector(args.onnx_file, args.infer_cfg, args.cpu_threads)
    except (FileNotFoundError, ValueError, ImportError) as e:
        sys.exit(f'error: {e}')
    threshold = detector.threshold if args.threshold is None else args.threshold
    repeats = 10 if args.run_benchmark else 1
    if args.run_benchmark:
        detector.predict([images[0]] * args.batch_size)  # warm-up, not timed
        detector.times = dict.fromkeys(detector.times, 0)
    else:
        os.makedirs(args.output_dir, exist_ok=True)
    results = {}
    for start in range(0, len(images), args.batch_size):
        paths, arrays = [], []
        for path in images[start:start + args.batch_size]:
            try:
                image = _readable(path, single=args.image_file is not None)
            except ImageReadError as e:
                sys.exit(f'error: {e}')
            if image is not None:
                paths.append(path)
                arrays.append(image)
        if not arrays:
            continue
        for path, image, dets in zip(paths, arrays, detector.predict(arrays, repeats)):
            results[path] = dets
            kept = dets[dets[:, 1] >= threshold]
            print(f'{path}: {len(kept)} detections >= {threshold}')
            for cls, score, x1, y1, x2, y2 in kept:
                name = detector.labels[int(cls)] if int(cls) < len(detector.labels) else int(cls)
                print(f'  {name} {score:.3f} [{x1:.1f}, {y1:.1f}, {x2:.1f}, {y2:.1f}]')
            if not args.run_benchmark:
                out = os.path.join(args.output_dir, os.path.basename(path))
                cv2.imwrite(out, draw_detections(image, dets, detector.labels, threshold))
    if args.run_benchmark and detector.times['images']:
        n = detector.times['images']
        print(f'images: {n}, batch size {args.batch_size}, ONNX Runtime CPU; ms per image: ' +
              ', '.join(f'{k} {detector.times[k] * 1000 / n:.2f}'
                        for k in ('preprocess', 'inference', 'postprocess')))
    elif not args.run_benchmark:
        print(f'drawn images written to {args.output_dir}')
    return results


if __name__ == '__main__':
    main()
