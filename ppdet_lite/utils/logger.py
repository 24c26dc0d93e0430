"""One logger setup for the whole package: ``get_logger(__name__)``."""

import logging
import sys

__all__ = ['get_logger']

_FORMAT = '[%(asctime)s] %(name)s %(levelname)s: %(message)s'


def get_logger(name='ppdet_lite'):
    """A logger under the ``ppdet_lite`` hierarchy, printing to stdout once configured."""
    root = logging.getLogger('ppdet_lite')
    if not root.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter(_FORMAT, datefmt='%m/%d %H:%M:%S'))
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        root.propagate = False
    return logging.getLogger(name if name.startswith('ppdet_lite') else f'ppdet_lite.{name}')
