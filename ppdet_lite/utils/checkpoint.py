"""Loading and saving weights and training checkpoints in PaddleDetection's format.

A PaddleDetection weights file is a flat ``{parameter name: array}`` dict saved with ``paddle.save``
as ``<stem>.pdparams``; the names are the model's ``state_dict()`` keys, which ppdet_lite keeps
identical. A training checkpoint (``ppdet/utils/checkpoint.py`` ``save_model``) is up to three files
sharing one stem:

- ``<stem>.pdparams``: the weights to evaluate and deploy: the EMA weights when training used EMA,
  else the model's.
- ``<stem>.pdema``: only with EMA: the raw (non-averaged) model weights.
- ``<stem>.pdopt``: the optimizer's ``state_dict()`` (accumulators such as momentum velocities, and
  ``LR_Scheduler``) plus the reserved keys ``last_epoch`` (int, epochs completed; PaddleDetection's
  key) and ``extra_state`` (dict, ppdet_lite's; PaddleDetection's loader ignores it).

Reserved keys inside ``extra_state``, read by ``load_weight`` to resume an EMA exactly:
``ema_step`` (int, EMA updates done), ``ema_epoch`` (int, EMA epochs counted, for ``cycle_epoch``)
and ``ema_state`` (``{model key: tensor}``, the raw, not bias-corrected, running averages; a second
copy of the weights in ``.pdopt``, which PaddleDetection does not save: its resume takes the
bias-corrected ``.pdparams`` as raw averages), and ``param_names`` (the optimizer's parameter names
in order, written by ``save_model``). All other keys belong to the caller (e.g. ``best_ap``).

Paddle keys optimizer state by generated parameter names (``conv2d_12.w_0_moment1_0``) that depend
on how many layers the process built before the model; a second model built in the same process
(a notebook, a test, an evaluation model) gets other names. ``load_weight`` therefore renames the
saved state from the saved ``param_names`` to the current optimizer's, position by position.

Loader rules, as PaddleDetection 2.6 (``load_weight``, ``load_pretrain_weight``, ``match_state_dict``):

- Paths may name the stem or any of ``.pdparams`` / ``.pdopt`` / ``.pdmodel``; other suffixes are
  refused. ppdet_lite refuses URLs (PaddleDetection downloads them; nothing downloads here).
- Every checkpoint tensor is cast to the dtype of the model tensor it loads into (a float16 file
  loads into a float32 model); ``LoadReport.cast`` lists the casts.
- Pretrained weights match by the longest dotted suffix (``match_suffix_keys``); a tensor whose
  shape differs keeps the model's value; one checkpoint tensor matched by several model tensors of
  its shape is an error.
- Resume (``load_weight``) needs every model tensor in the file, takes the EMA and raw weights from
  ``.pdparams`` / ``.pdema`` as ``exchange`` says, and reads ``last_epoch`` from ``.pdopt``.
"""

import os
import tempfile
import warnings
from collections import Counter

import numpy as np
import paddle

from .logger import get_logger

__all__ = ['LoadReport', 'checkpoint_stem', 'resolve_weights_path', 'match_suffix_keys',
           'load_weights', 'load_pretrain_weights', 'save_weights', 'save_model', 'load_weight',
           'load_extra_state']

logger = get_logger(__name__)

# The suffixes PaddleDetection's _strip_postfix accepts on a weights path.
WEIGHT_SUFFIXES = ('.pdparams', '.pdopt', '.pdmodel')
URL_PREFIXES = ('http://', 'https://', 'ftp://', 'ppdet://')
LAST_EPOCH_KEY = 'last_epoch'
EXTRA_STATE_KEY = 'extra_state'
EMA_STEP_KEY = 'ema_step'
EMA_EPOCH_KEY = 'ema_epoch'
PARAM_NAMES_KEY = 'param_names'
EMA_STATE_KEY = 'ema_state'


class LoadReport:
    """What a load did.

    Attributes:
        loaded (list[str]): model keys that received a checkpoint tensor.
        missing (list[str]): model keys the checkpoint does not provide (kept their values).
        unexpected (list[str]): checkpoint keys that loaded into nothing.
        mismatched (list[tuple]): ``(model key, (checkpoint shape, dtype), (model shape, dtype))``
            of tensors whose shapes differ (kept the model's values).
        cast (list[tuple]): ``(model key, checkpoint dtype, model dtype)`` of loaded tensors that
            were converted to the model's dtype, e.g. ``('conv.weight', 'float16', 'float32')``.
    """

    def __init__(self, loaded, missing, unexpected, mismatched, cast=()):
        self.loaded, self.missing, self.unexpected, self.mismatched = \
            loaded, missing, unexpected, mismatched
        self.cast = list(cast)

    @property
    def complete(self):
        """Every model tensor loaded and every checkpoint tensor used (casts allowed)."""
        return not (self.missing or self.unexpected or self.mismatched)

    def __str__(self):
        lines = [f'loaded {len(self.loaded)} tensors']
        if self.cast:
            counts = Counter((src, dst) for _, src, dst in self.cast)
            lines.append(', '.join(f'cast {n} tensors {src}->{dst}'
                                   for (src, dst), n in sorted(counts.items())))
        for title, keys in (('missing in checkpoint', self.missing),
                            ('unexpected in checkpoint', self.unexpected)):
            if keys:
                lines.append(f'{title} ({len(keys)}): {_first(keys)}')
        if self.mismatched:
            lines.append(f'shape mismatch, kept model values ({len(self.mismatched)}): ' +
                         _first([f'{k} {c[0]} {c[1]} vs model {m[0]} {m[1]}'
                                 for k, c, m in self.mismatched]))
        return '; '.join(lines)


def _first(items, limit=8):
    """The first ``limit`` items joined, and how many more: a report stays one readable line."""
    shown = ', '.join(items[:limit])
    return shown if len(items) <= limit else f'{shown}, ... ({len(items) - limit} more)'


def checkpoint_stem(path):
    """The stem shared by a checkpoint's files: ``out/model_final.pdopt`` -> ``out/model_final``.

    PaddleDetection's ``_strip_postfix``: a ``.pdparams``, ``.pdopt`` or ``.pdmodel`` suffix is
    removed; a path without a suffix is the stem. Raises ``ValueError`` for a URL (nothing downloads
    at run time) and for another suffix, unless ``<path>.pdparams`` exists (a dotted stem such as
    ``ppyoloe.v2``).
    """
    path = os.fspath(path)
    if path.startswith(URL_PREFIXES):
        raise ValueError(f'weights {path!r} is a URL; ppdet_lite never downloads at run time. '
                         f'Download the file first and pass its local path.')
    stem, ext = os.path.splitext(path)
    if ext in WEIGHT_SUFFIXES:
        return stem
    if ext and not os.path.isfile(path + '.pdparams'):
        raise ValueError(f'weights {path!r}: unknown suffix {ext!r}; give the checkpoint stem or '
                         f'a {", ".join(WEIGHT_SUFFIXES)} file (PaddleDetection weights are '
                         f'<stem>.pdparams)')
    return path


def resolve_weights_path(path):
    """The existing ``<stem>.pdparams`` file that ``path`` names (see ``checkpoint_stem``).

    Raises ``ValueError`` (URL, unknown suffix) or ``FileNotFoundError`` naming the file looked for.
    """
    weights = checkpoint_stem(path) + '.pdparams'
    if not os.path.isfile(weights):
        raise FileNotFoundError(f'weights not found: {weights} (from {os.fspath(path)!r})')
    return weights


def _read(path, what='weights'):
    """``paddle.load`` a dict, with errors naming the file."""
    try:
        state = paddle.load(path)
    except Exception as e:
        raise ValueError(f'cannot read {what} file {path}: {type(e).__name__}: {e}') from e
    if not isinstance(state, dict):
        raise ValueError(f'{path}: expected a dict of tensors, got {type(state).__name__}')
    return state


def _dtype_name(dtype):
    return str(dtype).replace('paddle.', '')


def _shape_dtype(value):
    if isinstance(value, paddle.Tensor):
        return list(value.shape), _dtype_name(value.dtype)
    array = np.asarray(value)
    return list(array.shape), str(array.dtype)


def _cast_like(value, target):
    """``value`` as a Tensor of ``target``'s dtype (PaddleDetection casts every loaded tensor)."""
    if not isinstance(value, paddle.Tensor):
        value = paddle.to_tensor(np.asarray(value))
    if value.dtype != target.dtype:
        value = value.astype(target.dtype)
    return value


def _strip_backbone_res5(key):
    # PaddleDetection's Faster R-CNN rule: a pretrained backbone's res5 weights (saved as
    # 'backbone.res5...') belong to the R-CNN head, so they match without their 'backbone.' prefix.
    return key[len('backbone.'):] if key.startswith('backbone.res5') else key


def match_suffix_keys(model_keys, ckpt_keys):
    """Pair each model key with the longest checkpoint key that is a dotted suffix of it.

    PaddleDetection's ``match_state_dict``: checkpoint key ``w`` matches model key ``m`` when
    ``m == w`` or ``m`` ends with ``'.' + w``, so a backbone-only file's
    ``stages.0.blocks.0.conv1.conv.weight`` fills the detector's
    ``backbone.stages.0.blocks.0.conv1.conv.weight``. A checkpoint key starting with
    ``backbone.res5`` matches as if it had no ``backbone.`` prefix (its length still counts in
    full). Returns ``{model key: checkpoint key}``; several model keys may share one checkpoint key
    (``load_pretrain_weights`` refuses that when their shapes agree).
    """
    by_suffix = {}
    for key in ckpt_keys:
        suffix = _strip_backbone_res5(key)
        if len(key) > len(by_suffix.get(suffix, '')):
            by_suffix[suffix] = key
    pairs = {}
    for key in model_keys:
        parts = key.split('.')
        for start in range(len(parts)):  # longest suffix first
            suffix = '.'.join(parts[start:])
            if suffix in by_suffix:
                pairs[key] = by_suffix[suffix]
                break
    return pairs


def _prepare(pairs, state, model_state):
    """Cast the paired tensors to the model's dtypes; set aside those whose shapes differ."""
    loadable, mismatched, cast = {}, [], []
    for key, ckpt_key in pairs.items():
        ckpt_sd, model_sd = _shape_dtype(state[ckpt_key]), _shape_dtype(model_state[key])
        if ckpt_sd[0] != model_sd[0]:
            mismatched.append((key, ckpt_sd, model_sd))
            continue
        loadable[key] = _cast_like(state[ckpt_key], model_state[key])
        if ckpt_sd[1] != model_sd[1]:
            cast.append((key, ckpt_sd[1], model_sd[1]))
    return loadable, mismatched, cast


def _set_state(model, loadable):
    with warnings.catch_warnings():
        # Paddle warns once per key it skips; the LoadReport says it all at once
        warnings.filterwarnings('ignore', message='Skip loading for')
        model.set_state_dict(loadable)


def load_weights(model, path, match='exact'):
    """Load a ``.pdparams`` file into ``model`` as far as names and shapes agree.

    Args:
        model (nn.Layer): the model.
        path (str): the checkpoint stem or its ``.pdparams`` (see ``checkpoint_stem``).
        match (str): ``'exact'`` (names equal, for checkpoints of the same architecture) or
            ``'suffix'`` (``match_suffix_keys``, for pretrained backbones, as PaddleDetection's
            ``load_pretrain_weight``).
    Tensors are cast to the model's dtypes. Tensors whose shapes differ (e.g. the class predictor
    after a ``num_classes`` change) keep the model's values. Returns a ``LoadReport`` and logs it.

    Raises:
        ValueError: no tensor of the file matches the model; in ``'suffix'`` mode, one checkpoint
            tensor matches several model tensors of its shape (PaddleDetection's "Ambiguity
            weight" error); unreadable file; URL or unknown suffix.
        FileNotFoundError: no ``<stem>.pdparams``.
    """
    if match not in ('exact', 'suffix'):
        raise ValueError(f"load_weights: match must be 'exact' or 'suffix', got {match!r}")
    path = resolve_weights_path(path)
    state = _read(path)
    model_state = model.state_dict()
    if match == 'exact':
        pairs = {k: k for k in model_state if k in state}
    else:
        pairs = match_suffix_keys(model_state, state)
    loadable, mismatched, cast = _prepare(pairs, state, model_state)
    if match == 'suffix':
        _refuse_ambiguous({k: pairs[k] for k in loadable}, path)
    if not loadable:
        raise ValueError(f'{path}: none of its {len(state)} tensors matches the model '
                         f'({match} name matching); is it a checkpoint of this architecture?')
    _set_state(model, loadable)
    report = LoadReport(loaded=sorted(loadable),
                        missing=sorted(set(model_state) - set(pairs)),
                        unexpected=sorted(set(state) - set(pairs.values())),
                        mismatched=mismatched, cast=cast)
    log = logger.info if report.complete else logger.warning
    log(f'weights {path}: {report}')
    return report


def _refuse_ambiguous(pairs, path):
    first_user = {}
    for model_key in sorted(pairs):
        ckpt_key = pairs[model_key]
        if ckpt_key in first_user:
            raise ValueError(
                f'{path}: ambiguous pretrained weight {ckpt_key!r}: it matches both '
                f'{first_user[ckpt_key]!r} and {model_key!r} in the model (PaddleDetection '
                f'loads one pretrained tensor into one model tensor); rename the file\'s keys '
                f'to longer suffixes of the model\'s names')
        first_user[ckpt_key] = model_key


def load_pretrain_weights(model, path):
    """PaddleDetection's ``load_pretrain_weight``: ``load_weights(model, path, match='suffix')``."""
    return load_weights(model, path, match='suffix')


def _atomic_temp(path):
    """A new empty temporary file beside ``path``, hidden, to be ``os.replace``d onto it."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix='.tmp_', suffix=os.path.basename(path))
    os.close(fd)
    # mkstemp creates 0600; a checkpoint gets the permissions any new file would (umask applied)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    return tmp


def _save_all_atomically(items):
    """``paddle.save`` each ``(path, object)`` to a temporary file, then rename in list order.

    An object ``None`` removes ``path`` at its place in the order. Nothing is replaced until every
    object has been written, so a failed save leaves the previous files untouched; no temporary
    file survives a Python exception.
    """
    temps = []
    try:
        for path, obj in items:
            temps.append(None if obj is None else _atomic_temp(path))
            if obj is not None:
                paddle.save(obj, temps[-1])
        for tmp, (path, _) in zip(temps, items):
            if tmp is not None:
                os.replace(tmp, path)
            elif os.path.exists(path):
                os.remove(path)
    finally:
        for tmp in temps:
            if tmp is not None and os.path.exists(tmp):
                os.remove(tmp)


def save_weights(state_or_model, path):
    """Save a state dict (or a model's) to ``path`` atomically: a crash never leaves half a file."""
    state = state_or_model.state_dict() if hasattr(state_or_model, 'state_dict') else state_or_model
    _save_all_atomically([(path, state)])
    return path


def _param_names(optimizer):
    """The optimizer's parameter names in its order (parameter groups flattened)."""
    params = getattr(optimizer, '_parameter_list', None) or []
    names = []
    for entry in params:
        if isinstance(entry, dict):
            names.extend(p.name for p in entry['params'])
        else:
            names.append(entry.name)
    return names


def _rename_param_state(opt_state, saved_names, current_names, where):
    """Re-key optimizer state saved for parameters ``saved_names`` to ``current_names`` (same
    order). Keys are ``<parameter name>_<accumulator>`` (and ``master_weights`` maps parameter
    names); the longest saved name that prefixes a key decides its parameter."""
    if list(saved_names) == list(current_names):
        return opt_state
    if len(saved_names) != len(current_names):
        raise ValueError(f'{where}: optimizer state of {len(saved_names)} parameters, the '
                         f'optimizer has {len(current_names)}; is it the same architecture?')
    rename = dict(zip(saved_names, current_names))
    by_length = sorted(saved_names, key=len, reverse=True)

    def new_key(key):
        if key in rename:
            return rename[key]
        for old in by_length:
            if key.startswith(old + '_'):
                return rename[old] + key[len(old):]
        return key

    renamed = {}
    for key, value in opt_state.items():
        if key == 'master_weights' and isinstance(value, dict):
            value = {new_key(k): v for k, v in value.items()}
        renamed[new_key(key)] = value
    return renamed


def save_model(model_state, optimizer, save_dir, save_name, last_epoch, ema_model=None,
               extra_state=None):
    """Write a training checkpoint: PaddleDetection's ``save_model``, every file atomic.

    Args:
        model_state (dict): the model's ``state_dict()`` (raw, non-averaged weights).
        optimizer (paddle.optimizer.Optimizer): its ``state_dict()`` goes to ``.pdopt``.
        save_dir (str): folder, created if needed.
        save_name (str): file stem, e.g. ``'model_final'`` or the epoch ``'11'``.
        last_epoch (int): epochs completed, returned by ``load_weight`` as the epoch to start from.
        ema_model (dict|None): the EMA weights' state dict. Given, they go to ``.pdparams`` (the
            file evaluated and deployed) and ``model_state`` to ``.pdema``, as PaddleDetection.
        extra_state (dict|None): small picklable values for an exact resume, stored in ``.pdopt``
            under ``extra_state``; the reserved keys ``ema_step``, ``ema_epoch`` and ``ema_state``
            (see the module doc) let ``load_weight`` resume the EMA exactly. Read back with
            ``load_extra_state``.
    Files: ``<save_dir>/<save_name>.pdparams``, ``.pdema`` (with EMA) and ``.pdopt``. All are written
    to temporary files first, then renamed weights first and ``.pdopt`` last, so an interrupted save
    never leaves a ``.pdopt`` newer than its ``.pdparams``. Saving without EMA removes a stale
    ``.pdema`` of the same stem, which ``load_weight`` would otherwise resume from. Only rank 0
    writes (others return ``None``, as PaddleDetection). Returns the checkpoint stem.

    Raises:
        TypeError: ``model_state`` / ``ema_model`` / ``extra_state`` not dicts, ``optimizer``
            without ``state_dict``, ``last_epoch`` not an int.
    """
    if paddle.distributed.get_rank() != 0:
        return None
    for name, value in (('model_state', model_state), ('ema_model', ema_model),
                        ('extra_state', extra_state)):
        if not isinstance(value, dict) and (value is not None or name == 'model_state'):
            raise TypeError(f'save_model: {name} must be a dict (call .state_dict()), '
                            f'got {type(value).__name__}')
    if not hasattr(optimizer, 'state_dict'):
        raise TypeError(f'save_model: optimizer must be a paddle optimizer, '
                        f'got {type(optimizer).__name__}')
    if isinstance(last_epoch, bool) or not isinstance(last_epoch, (int, np.integer)):
        raise TypeError(f'save_model: last_epoch must be an int, got {last_epoch!r}')
    stem = os.path.join(save_dir, save_name)
    opt_state = dict(optimizer.state_dict())
    opt_state[LAST_EPOCH_KEY] = int(last_epoch)
    opt_state[EXTRA_STATE_KEY] = dict(extra_state or {})
    opt_state[EXTRA_STATE_KEY][PARAM_NAMES_KEY] = _param_names(optimizer)
    if ema_model is None:
        weights = [(stem + '.pdparams', model_state), (stem + '.pdema', None)]
    else:
        weights = [(stem + '.pdparams', ema_model), (stem + '.pdema', model_state)]
    _save_all_atomically(weights + [(stem + '.pdopt', opt_state)])
    logger.info(f'saved checkpoint {stem} (epoch {int(last_epoch)}'
                f'{", with EMA" if ema_model is not None else ""})')
    return stem


def _strict_state(model_state, state, path):
    """The checkpoint's tensors for every model key, cast; a resume loads all of them or none."""
    missing = [k for k in model_state if k not in state]
    if missing:
        raise ValueError(f'{path}: {len(missing)} model tensors missing from the checkpoint '
                         f'(e.g. {", ".join(missing[:5])}); resume needs a checkpoint of this '
                         f'exact model (load_weights loads partial files)')
    loadable, mismatched, cast = _prepare({k: k for k in model_state}, state, model_state)
    if mismatched:
        raise ValueError(f'{path}: shape mismatch for {len(mismatched)} tensors: ' +
                         ', '.join(f'{k} {c[0]} vs model {m[0]}' for k, c, m in mismatched[:5]))
    report = LoadReport(loaded=sorted(loadable), missing=[],
                        unexpected=sorted(set(state) - set(model_state)), mismatched=[], cast=cast)
    return loadable, report


def load_weight(model, path, optimizer=None, ema=None, exchange=True):
    """Resume training from a checkpoint: PaddleDetection's ``load_weight``.

    Args:
        model (nn.Layer): receives the raw model weights.
        path (str): the checkpoint stem or one of its files (see ``checkpoint_stem``).
        optimizer (paddle.optimizer.Optimizer|None): given, restored from ``<stem>.pdopt``;
            state keys the file lacks (e.g. ``LR_Scheduler``) keep the optimizer's current values
            (as PaddleDetection).
        ema (object|None): has ``resume(state_dict, step)`` (``ModelEMA``). Resumed only when
            ``<stem>.pdema`` exists (as PaddleDetection), from ``extra_state['ema_state']`` if
            saved (the raw averages: exact), else from the EMA weights file. Its step is
            ``extra_state['ema_step']`` if saved, else the LR scheduler's ``last_epoch`` in
            ``.pdopt`` (PaddleDetection's), else 0; ``extra_state['ema_epoch']``, if saved, is
            passed as a third argument. Without ``optimizer`` the ``.pdopt`` is not read and the
            step is 0 (as PaddleDetection).
        exchange (bool): True: ``.pdparams`` holds the EMA weights and ``.pdema`` the model's (what
            ``save_model`` writes). False: the other way round (PaddleDetection's DenseTeacher).
            Without ``ema`` the model loads ``.pdparams``, whatever the file holds.
    Returns:
        int: ``last_epoch`` from ``.pdopt`` (the first epoch to train), 0 without ``optimizer``
        or when the file has none.

    Every file is read and checked before anything is changed. Tensors are cast to the model's
    dtypes. Differences from PaddleDetection, which resumes silently from partial state: a missing
    ``.pdopt`` when ``optimizer`` is given raises ``FileNotFoundError`` (PaddleDetection would
    return epoch 0 with a fresh optimizer, restarting the schedule on trained weights), and a shape
    mismatch or a model tensor missing from the EMA weights raises ``ValueError`` like a missing
    model tensor (PaddleDetection skips them with a warning or not at all).

    Raises:
        FileNotFoundError: no ``<stem>.pdparams``; no ``<stem>.pdopt`` while ``optimizer`` is given.
        ValueError: a model tensor missing from, or of another shape in, the weights; unreadable
            file; URL or unknown suffix.
    """
    stem = checkpoint_stem(path)
    params_path, ema_path, opt_path = stem + '.pdparams', stem + '.pdema', stem + '.pdopt'
    if not os.path.isfile(params_path):
        raise FileNotFoundError(f'checkpoint weights not found: {params_path} (from {path!r})')
    if optimizer is not None and not os.path.isfile(opt_path):
        raise FileNotFoundError(
            f'optimizer state not found: {opt_path}; resuming needs the .pdopt saved with '
            f'{params_path} (to start a new training from these weights, load them with '
            f'load_weights or load_pretrain_weights instead)')
    last_epoch, opt_state, extra, ema_args = 0, None, {}, [0]
    if optimizer is not None:
        opt_state = _read(opt_path, 'optimizer state')
        last_epoch = int(opt_state.pop(LAST_EPOCH_KEY, 0))
        extra = opt_state.pop(EXTRA_STATE_KEY, {})
        if PARAM_NAMES_KEY in extra:
            opt_state = _rename_param_state(opt_state, extra[PARAM_NAMES_KEY],
                                            _param_names(optimizer), opt_path)
        for key, value in optimizer.state_dict().items():
            opt_state.setdefault(key, value)
        if EMA_STEP_KEY in extra:
            ema_args = [int(extra[EMA_STEP_KEY])]
        elif isinstance(opt_state.get('LR_Scheduler'), dict):
            ema_args = [int(opt_state['LR_Scheduler'].get('last_epoch', 0))]
        if EMA_EPOCH_KEY in extra:
            ema_args.append(int(extra[EMA_EPOCH_KEY]))

    model_state = model.state_dict()
    ema_loadable, model_file = None, params_path
    if ema is not None and os.path.isfile(ema_path):
        model_file, ema_file = (ema_path, params_path) if exchange else (params_path, ema_path)
        if EMA_STATE_KEY in extra:
            ema_file = f"{opt_path} extra_state['{EMA_STATE_KEY}']"
            ema_loadable, _ = _strict_state(model_state, extra[EMA_STATE_KEY], ema_file)
        else:
            ema_loadable, _ = _strict_state(model_state, _read(ema_file), ema_file)
    loadable, report = _strict_state(model_state, _read(model_file), model_file)

    _set_state(model, loadable)
    logger.info(f'resumed model weights from {model_file}: {report}')
    if opt_state is not None:
        optimizer.set_state_dict(opt_state)
        logger.info(f'resumed optimizer from {opt_path} at epoch {last_epoch}')
    if ema_loadable is not None:
        ema.resume(ema_loadable, *ema_args)
        logger.info(f'resumed EMA from {ema_file} at step {ema_args[0]}')
    return last_epoch


def load_extra_state(path):
    """The ``extra_state`` dict ``save_model`` stored in ``<stem>.pdopt`` (``{}`` if none, e.g.
    a PaddleDetection checkpoint).

    Raises ``FileNotFoundError`` naming the ``.pdopt`` if it is absent.
    """
    opt_path = checkpoint_stem(path) + '.pdopt'
    if not os.path.isfile(opt_path):
        raise FileNotFoundError(f'optimizer state not found: {opt_path} (from {path!r})')
    return dict(_read(opt_path, 'optimizer state').get(EXTRA_STATE_KEY, {}))
