"""Evaluate weights: ``python tools/eval.py -c CONFIG -o weights=W [--classwise]``.

COCO (pycocotools' summary) or VOC mAP, following the config's ``metric``; ``--classwise`` adds the
per-class AP table; ``--output_eval DIR`` writes the detections as ``bbox.json``. Weights that do
not fill the model (another ``num_classes``, ``width_mult``, ...) and the export-only switches
``exclude_nms`` / ``exclude_post_process`` are refused before evaluating.
"""

import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '..')))

from ppdet_lite.utils.cli import ArgsParser  # noqa: E402


def parse(argv=None):
    """(parser, args, cfg) from the command line."""
    parser = ArgsParser(description=__doc__)
    parser.add_argument('--classwise', action='store_true', help='per-class AP table')
    parser.add_argument('--output_eval', default=None, help='directory for bbox.json')
    parser.add_argument('--bias', action='store_true',
                        help='COCO box width/height as x2 - x1 + 1 (PaddleDetection\'s flag)')
    parser.add_argument('--save_prediction_only', action='store_true',
                        help='write bbox.json without computing the metric')
    return (parser, *parser.parse_config(argv))


def main(argv=None):
    parser, args, cfg = parse(argv)
    if not cfg.get('weights'):
        parser.error('no weights: pass -o weights=path/to/model_final')
    cfg['classwise'] = args.classwise
    cfg['output_eval'] = args.output_eval
    cfg['bias'] = 1 if args.bias else 0
    cfg['save_prediction_only'] = args.save_prediction_only

    from ppdet_lite.engine import Trainer
    from ppdet_lite.engine.export import refuse_export_switches
    try:
        refuse_export_switches(cfg, 'tools/eval.py')
        trainer = Trainer(cfg, mode='eval')
        trainer.load_weights(cfg.weights)
    except ValueError as e:
        parser.exit(1, f'eval.py: error: {e}\n')
    ap = trainer.evaluate()
    return ap


if __name__ == '__main__':
    main()
