"""Train a detector: ``python tools/train.py -c CONFIG [--eval] [-r CKPT] [--amp] [-o key=value ...]``.

PaddleDetection's flags. ``--eval`` evaluates every ``snapshot_epoch`` epochs and keeps
``best_model``; ``-r/--resume`` continues a run exactly from one of its checkpoints
(``output/<config>/<epoch>``); ``--amp`` uses mixed precision on a GPU. Run under
``python -m paddle.distributed.launch`` for several devices (``scripts/train.sh`` does it).
"""

import os
import sys

# Runnable from a checkout without installing, as PaddleDetection's tools are.
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '..')))

from ppdet_lite.utils.cli import ArgsParser  # noqa: E402


def parse(argv=None):
    """(parser, args, cfg) from the command line."""
    parser = ArgsParser(description=__doc__)
    parser.add_argument('--eval', action='store_true',
                        help='evaluate at every snapshot epoch and keep best_model')
    parser.add_argument('-r', '--resume', default=None,
                        help='checkpoint to resume from, e.g. output/<config>/9')
    parser.add_argument('--amp', action='store_true', help='automatic mixed precision (GPU)')
    parser.add_argument('--use_vdl', action='store_true', help='log scalars to VisualDL')
    parser.add_argument('--vdl_log_dir', default='vdl_log_dir/scalar',
                        help='VisualDL log directory')
    parser.add_argument('--seed', type=int, default=None,
                        help='random seed (default: the config key `seed`, else 0)')
    return (parser, *parser.parse_config(argv))


def main(argv=None):
    parser, args, cfg = parse(argv)
    cfg['amp'] = args.amp or cfg.get('amp', False)
    cfg['use_vdl'] = args.use_vdl
    cfg['vdl_log_dir'] = args.vdl_log_dir
    if args.seed is not None:
        cfg['seed'] = args.seed

    from ppdet_lite.engine import StopTraining, Trainer
    trainer = Trainer(cfg, mode='train')
    if args.resume:
        trainer.resume_weights(args.resume)
    try:
        trainer.train(validate=args.eval)
    except StopTraining:
        sys.exit(1)  # the trainer has logged why and which checkpoint is kept
    return trainer


if __name__ == '__main__':
    main()
