"""Export a trained model for deployment:
``python tools/export_model.py -c CONFIG -o weights=W [trt=True] [exclude_nms=True]
[exclude_post_process=True] [--output_dir output_inference] [--onnx]``.

Writes ``<output_dir>/<config stem>/``: ``model.json`` (Paddle 3.x) or ``model.pdmodel`` (Paddle
2.6), ``model.pdiparams`` and ``infer_cfg.yml`` (see ``ppdet_lite/engine/export.py``); the input
size comes from ``TestReader.inputs_def.image_shape`` (``[3, H, W]``, -1 for dynamic).
``--onnx`` also writes ``model.onnx`` there (``ppdet_lite/engine/onnx_export.py``).
"""

import os
import sys

# Runnable from a checkout without installing, as PaddleDetection's tools are.
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '..')))

from ppdet_lite.utils.cli import ArgsParser  # noqa: E402


def parse(argv=None):
    """(parser, args, cfg) from the command line."""
    parser = ArgsParser(description=__doc__)
    parser.add_argument('--output_dir', default='output_inference',
                        help='parent directory of the export (default: output_inference)')
    parser.add_argument('--onnx', action='store_true',
                        help='also write model.onnx beside the Paddle model')
    return (parser, *parser.parse_config(argv))


def main(argv=None):
    parser, args, cfg = parse(argv)
    if not cfg.get('weights'):
        parser.error('no weights: pass -o weights=path/to/model_final')
    from ppdet_lite.engine.export import export_model
    try:
        save_dir = export_model(cfg, args.output_dir)
    except (ValueError, FileNotFoundError) as e:
        parser.exit(2, f'export_model.py: error: {e}\n')
    if args.onnx:
        from ppdet_lite.engine.onnx_export import export_onnx
        export_onnx(cfg, save_dir)
    return save_dir


if __name__ == '__main__':
    main()
