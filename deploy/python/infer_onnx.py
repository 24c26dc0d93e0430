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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from infer import BaseDetector, add_run_args, check_run_args, run_main  # noqa: E402

__all__ = ['OnnxDetector', 'main']


def _session(ort, onnx_file, options):
    """An ONNX Runtime CPU session, or ValueError naming the file when ONNX Runtime cannot load
    it (a Paddle file, or the TensorRT-only graph with the EfficientNMS_TRT plugin)."""
    try:
        return ort.InferenceSession(onnx_file, options, providers=['CPUExecutionProvider'])
    except Exception as e:  # onnxruntime's own exception types (InvalidProtobuf, Fail, ...)
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if 'EfficientNMS_TRT' in str(e):
            raise ValueError(f'--onnx_file {onnx_file} is the TensorRT graph (its NMS is the '
                             f'EfficientNMS_TRT plugin, which only TensorRT runs): give the '
                             f'model.onnx of the same export') from e
        raise ValueError(f'--onnx_file {onnx_file}: ONNX Runtime cannot load it as an ONNX model '
                         f'({type(e).__name__}: {reason}); give the model.onnx written by '
                         f'tools/export_model.py --onnx (model.pdiparams / model.json are the '
                         f'Paddle export: run them with deploy/python/infer.py)') from e


class OnnxDetector(BaseDetector):
    """An ONNX model on ONNX Runtime (CPU) with infer_cfg.yml's pre- and post-processing.

    Args:
        onnx_file (str): the exported ``model.onnx``.
        infer_cfg (str): the export's ``infer_cfg.yml``, or the export directory holding it.
        cpu_threads (int): ONNX Runtime intra-op threads (0: its default, one per core).
    Attributes:
        those of ``infer.BaseDetector``; ``post_cfg`` also says whether the graph ends in NMS.
    Raises:
        FileNotFoundError: a missing file; ImportError: onnxruntime is not installed;
        ValueError: a file ONNX Runtime cannot load (a Paddle file, the TensorRT NMS graph).
    """

    def __init__(self, onnx_file, infer_cfg, cpu_threads=0):
        if os.path.isdir(infer_cfg):
            infer_cfg = os.path.join(infer_cfg, 'infer_cfg.yml')
        for flag, path in (('--onnx_file', onnx_file), ('--infer_cfg', infer_cfg)):
            if not os.path.isfile(path):
                raise FileNotFoundError(f'{flag} {path} does not exist')
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise ImportError('infer_onnx.py needs onnxruntime: pip install onnxruntime') from e
        self._load_infer_cfg(infer_cfg)
        options = ort.SessionOptions()
        options.intra_op_num_threads = cpu_threads
        self.session = _session(ort, onnx_file, options)
        self.input_names = [i.name for i in self.session.get_inputs()]
        outputs = [o.name for o in self.session.get_outputs()]
        # the graph says whether it ends in NMS; infer_cfg.yml describes the Paddle export
        self.post_cfg = dict(self.infer_cfg, exclude_post_process=len(outputs) == 1,
                             exclude_nms=len(outputs) == 2 and 'bbox_num' not in outputs)

    def _feed(self, inputs):
        return {name: inputs[name] for name in self.input_names}

    def _infer(self, feed, repeats):
        for _ in range(repeats):
            outputs = self.session.run(None, feed)
        return outputs


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--onnx_file', required=True, help='model.onnx of tools/export_model.py')
    parser.add_argument('--infer_cfg', required=True,
                        help='infer_cfg.yml of the same export (or its export directory)')
    add_run_args(parser)
    parser.add_argument('--cpu_threads', type=int, default=0,
                        help='ONNX Runtime threads (0: one per core)')
    args = parser.parse_args(argv)
    check_run_args(parser, args)
    return args


def main(argv=None):
    """Returns ``{image path: [n, 6] detections}`` (every kept detection, unthresholded)."""
    args = parse_args(argv)
    return run_main(args, lambda a: OnnxDetector(a.onnx_file, a.infer_cfg, a.cpu_threads),
                    (FileNotFoundError, ValueError, ImportError), 'ONNX Runtime CPU')


if __name__ == '__main__':
    main()
