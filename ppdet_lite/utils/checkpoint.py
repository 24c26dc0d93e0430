"""Loading and saving weights in PaddleDetection's ``.pdparams`` format.

A PaddleDetection checkpoint is a flat ``{parameter name: array}`` dict saved with ``paddle.save``;
the names are the model's ``state_dict()`` keys, which ppdet_lite keeps identical.
"""

import os
import tempfile
import warnings

import numpy as np
import paddle

from .logger import get_logger

__all__ = ['LoadReport', 'resolve_weights_path', 'match_suffix_keys', 'load_weights',
           'load_pretrain_weights', 'save_weights']

logger = get_logger(__name__)


class LoadReport:
    """What ``load_weights`` did: ``loaded``, ``missing``, ``unexpected`` key lists and
    ``mismatched`` as ``(key, checkpoint shape/dtype, model shape/dtype)`` tuples."""

    def __init__(self, loaded, missing, unexpected, mismatched):
        self.loaded, self.missing, self.unexpected, self.mismatched = \
            loaded, missing, unexpected, mismatched

    @property
    def complete(self):
        return not (self.missing or self.unexpected or self.mismatched)

    def __str__(self):
        lines = [f'loaded {len(self.loaded)} tensors']
        for title, keys in (('missing in checkpoint', self.missing),
                            ('unexpected in checkpoint', self.unexpected)):
            if keys:
                lines.append(f'{title} ({len(keys)}): {", ".join(keys)}')
        if self.mismatched:
            lines.append(f'shape/dtype mismatch, kept model values ({len(self.mismatched)}): ' +
                         ', '.join(f'{k} {c[0]} {c[1]} vs model {m[0]} {m[1]}'
                                   for k, c, m in self.mismatched))
        return '; '.join(lines)


def resolve_weights_path(path):
    """Map ``output/x/model_final`` or ``...pdparams`` to an existing local file.

    URLs are refused: nothing is downloaded at run time.
    """
    path = str(path)
    if path.startswith(('http://', 'https://', 'ftp://')):
        raise ValueError(f'weights {path!r} is a URL; ppdet_lite never downloads at run time. '
                         f'Download the file first and pass its local path.')
    candidates = [path] if path.endswith('.pdparams') else [path + '.pdparams', path]
    for candidate in candidates:
        if os.path.isfile(candidate):
            return candidate
    raise FileNotFoundError(f'weights not found: {path} (tried {", ".join(candidates)})')


def _shape_dtype(value):
    if isinstance(value, paddle.Tensor):
        return list(value.shape), str(value.dtype).replace('paddle.', '')
    array = np.asarray(value)
    return list(array.shape), str(array.dtype)


def match_suffix_keys(model_keys, ckpt_keys):
    """Pair each model key with the longest checkpoint key that is a dotted suffix of it.

    PaddleDetection's rule for pretrained files: a backbone-only checkpoint names
    ``stages.0.blocks.0.conv1.conv.weight`` what the detector calls
    ``backbone.stages.0.blocks.0.conv1.conv.weight``. Returns ``{model key: checkpoint key}``.
    """
    ckpt_keys = set(ckpt_keys)
    pairs = {}
    for key in model_keys:
        parts = key.split('.')
        for start in range(len(parts)):  # longest suffix first
            suffix = '.'.join(parts[start:])
            if suffix in ckpt_keys:
                pairs[key] = suffix
                break
    return pairs


def load_weights(model, path, match='exact'):
    """Load a ``.pdparams`` file into ``model`` as far as names, shapes and dtypes agree.

    Args:
        model (nn.Layer): the model.
        path (str): local file, with or without the ``.pdparams`` suffix.
        match (str): ``'exact'`` (names equal, for checkpoints of the same architecture) or
            ``'suffix'`` (``match_suffix_keys``, for pretrained backbones).
    Tensors whose shape or dtype differ (e.g. the class predictor after a ``num_classes`` change)
    keep the model's values. Returns a ``LoadReport`` and logs it; a file of which nothing
    matches is an error.
    """
    if match not in ('exact', 'suffix'):
        raise ValueError(f"load_weights: match must be 'exact' or 'suffix', got {match!r}")
    path = resolve_weights_path(path)
    try:
        state = paddle.load(path)
    except Exception as e:
        raise ValueError(f'cannot read weights file {path}: {type(e).__name__}: {e}') from e
    if not isinstance(state, dict):
        raise ValueError(f'{path}: expected a dict of parameters, got {type(state).__name__}')

    model_state = model.state_dict()
    if match == 'exact':
        pairs = {k: k for k in model_state if k in state}
    else:
        pairs = match_suffix_keys(model_state, state)
    loadable, mismatched = {}, []
    for key, ckpt_key in pairs.items():
        ckpt_sd, model_sd = _shape_dtype(state[ckpt_key]), _shape_dtype(model_state[key])
        if ckpt_sd == model_sd:
            loadable[key] = state[ckpt_key]
        else:
            mismatched.append((key, ckpt_sd, model_sd))
    if not loadable:
        raise ValueError(f'{path}: none of its {len(state)} tensors matches the model '
                         f'({match} name matching); is it a checkpoint of this architecture?')
    with warnings.catch_warnings():
        # Paddle warns once per key it skips; the report below says it all at once
        warnings.filterwarnings('ignore', message='Skip loading for')
        model.set_state_dict(loadable)
    report = LoadReport(loaded=sorted(loadable),
                        missing=sorted(set(model_state) - set(pairs)),
                        unexpected=sorted(set(state) - set(pairs.values())),
                        mismatched=mismatched)
    log = logger.info if report.complete else logger.warning
    log(f'weights {path}: {report}')
    return report


def load_pretrain_weights(model, path):
    """Load pretrained weights (e.g. an ImageNet backbone) by PaddleDetection's suffix rule."""
    return load_weights(model, path, match='suffix')


def save_weights(state_or_model, path):
    """Save a state dict (or a model's) to ``path`` atomically: a crash never leaves half a file."""
    state = state_or_model.state_dict() if hasattr(state_or_model, 'state_dict') else state_or_model
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix='.tmp_', suffix=os.path.basename(path))
    os.close(fd)
    try:
        paddle.save(state, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path
