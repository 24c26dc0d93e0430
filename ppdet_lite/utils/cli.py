"""The command-line conventions shared by every tool (as PaddleDetection's ``tools/*.py``)."""

import argparse
import warnings

from ppdet_lite.core.workspace import ConfigError, load_config, parse_overrides

# Two notices Paddle prints on every run that say nothing about the user's job: a missing C++
# compiler cache (only for building custom operators) and BatchNorm's always-on statistics.
# Tools import this module before Paddle, so the filters are in place when Paddle warns.
warnings.filterwarnings('ignore', message='No ccache found', category=UserWarning)
warnings.filterwarnings('ignore', message='When training, we now always track global mean',
                        category=UserWarning)

__all__ = ['ArgsParser', 'config_from_args']


class ArgsParser(argparse.ArgumentParser):
    """``-c/--config FILE`` and ``-o/--opt key=value ...``; ``args.opt`` comes back as a dict.

    Values are YAML scalars (``-o use_gpu=false epoch=3 TrainReader.batch_size=4``); dotted keys
    address nested sections. ``-o`` may be repeated (``-o a=1 -o b=2``): every item counts, where
    plain argparse would keep only the last ``-o``. A malformed or conflicting item exits with the
    usage and a message quoting it.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault('formatter_class', argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)
        self.add_argument('-c', '--config', required=True, help='configuration file to use')
        self.add_argument('-o', '--opt', nargs='*', action='extend', default=[],
                          help='override config options, e.g. -o weights=w.pdparams epoch=3')

    def parse_args(self, argv=None, namespace=None):
        args = super().parse_args(argv, namespace)
        try:
            args.opt = parse_overrides(args.opt)
        except ValueError as e:
            self.error(str(e))
        return args

    def parse_config(self, argv=None):
        """``(args, cfg)``: the arguments and the config they name with ``-o`` applied (the
        current config from then on); a config error exits with the usage and its message."""
        args = self.parse_args(argv)
        try:
            return args, config_from_args(args)
        except ConfigError as e:
            self.error(str(e))


def config_from_args(args):
    """Load ``args.config`` and apply ``args.opt``; the result becomes the current config."""
    return load_config(args.config, overrides=args.opt)
