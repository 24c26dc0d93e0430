"""Shared test helpers."""

import json
import os

REFERENCE_DIR = os.path.normpath(os.path.join(os.path.dirname(__file__), '..', '..', 'shared',
                                              'reference'))


def reference_layout(size, prefix=''):
    """PaddleDetection 2.6's state-dict layout for ppyoloe_crn_<size> (80 classes):
    ``[(key, shape list, dtype str)]`` in its order, for the keys starting with ``prefix``.

    The lists live in ../shared/reference beside the repository (as in CI); a missing file is an
    error, not a skip, so the checkpoint-compatibility tests can never pass vacuously.
    """
    path = os.path.join(REFERENCE_DIR, f'ppyoloe_crn_{size}_state_dict.tsv')
    if not os.path.isfile(path):
        raise FileNotFoundError(f'reference list {path} is missing: clone the repository with '
                                f'shared/ beside it')
    rows = []
    with open(path) as f:
        for line in f:
            if line.startswith('#') or not line.strip():
                continue
            key, shape, dtype = line.rstrip('\n').split('\t')
            if key.startswith(prefix):
                rows.append((key, json.loads(shape), dtype))
    return rows


def state_layout(layer, prefix=''):
    """``[(prefix + key, shape list, dtype str)]`` of a layer's state dict, in order."""
    return [(prefix + k, list(v.shape), str(v.dtype).split('.')[-1])
            for k, v in layer.state_dict().items()]
