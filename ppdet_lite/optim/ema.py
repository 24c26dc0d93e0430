"""ModelEMA: an exponential moving average of a model's state dict (PaddleDetection 2.6).

Source: ``ppdet/optimizer/ema.py`` (``ModelEMA``) and how ``ppdet/engine/trainer.py`` drives it:
``update()`` after every optimizer step, ``apply()`` at each snapshot epoch to get the weights to
evaluate and save. The arithmetic is ppdet's; the differences are where ppdet loses state or fails:

* ``state_dict()`` returns the raw running averages and ``resume(state, step, epoch)`` restores
  them, so a resumed run continues bit for bit (ppdet checkpoints the bias-corrected weights and
  feeds them back as raw averages, and forgets ``epoch``, which drives ``cycle_epoch``).
* ``apply()`` before any update returns the model's weights (ppdet returns the zero averages).
* ``ema_filter_no_grad`` works (ppdet 2.6 calls ``append`` on a set and fails).
* black-listed and non-float entries always hold the model's current value.
"""

import math
import weakref

import numpy as np
import paddle
from paddle import nn

from ppdet_lite.utils.logger import get_logger

__all__ = ['ModelEMA']

logger = get_logger(__name__)

_BN_TYPES = (nn.BatchNorm, nn.BatchNorm1D, nn.BatchNorm2D, nn.BatchNorm3D, nn.SyncBatchNorm)


def _bn_running_stat_names(model):
    names = set()
    for prefix, layer in model.named_sublayers():
        if isinstance(layer, _BN_TYPES):
            names.update((f'{prefix}._mean', f'{prefix}._variance'))
    return names


class ModelEMA:
    """Exponential moving average of every floating-point entry of ``model.state_dict()``.

    Args:
        model (paddle.nn.Layer): the trained model (not a ``DataParallel`` wrapper, whose keys
            carry a ``_layers.`` prefix). Its state tensors are tracked through weak references,
            as in ppdet, so ``update()`` needs no argument.
        decay (float): the EMA decay ``d`` (default 0.9998).
        ema_decay_type (str): how the decay at update number ``t`` (0-based) is chosen:
            ``'threshold'``: ``min(d, (1 + t) / (10 + t))``; ``'exponential'``:
            ``d * (1 - exp(-(t + 1) / 2000))``; ``'normal'``: ``d``.
        cycle_epoch (int): > 0 resets the averages every ``cycle_epoch`` calls of ``apply()``
            (ppdet counts snapshot epochs this way); -1 never.
        ema_black_list (list[str] | None): substrings; a state key containing one is not averaged:
            the EMA holds the model's current value (e.g. ``'proj_conv.weight'``).
        ema_filter_no_grad (bool): also black-list parameters with ``stop_gradient`` set, except
            BatchNorm running statistics.

    Update rule (all on device, no host sync): ``ema = t_d * ema + (1 - t_d) * value`` from
    ``ema = 0``. ``apply()`` divides by ``1 - t_d ** step`` (bias correction, ``t_d`` the decay of
    the last update) for ``'threshold'`` and ``'normal'``, not for ``'exponential'``.
    """

    def __init__(self, model, decay=0.9998, ema_decay_type='threshold', cycle_epoch=-1,
                 ema_black_list=None, ema_filter_no_grad=False):
        if ema_decay_type not in ('threshold', 'normal', 'exponential'):
            raise ValueError(f"ModelEMA.ema_decay_type must be 'threshold', 'normal' or "
                             f"'exponential', got {ema_decay_type!r}")
        if not 0.0 <= decay < 1.0:
            raise ValueError(f'ModelEMA.decay must be in [0, 1), got {decay!r}')
        self.step = 0
        self.epoch = 0
        self.decay = decay
        self.ema_decay_type = ema_decay_type
        self.cycle_epoch = cycle_epoch
        model_state = model.state_dict()
        self.ema_black_list = {k for k in model_state
                               if any(pattern in k for pattern in (ema_black_list or ()))}
        if ema_filter_no_grad:
            bn_stats = _bn_running_stat_names(model)
            self.ema_black_list.update(n for n, p in model.named_parameters()
                                       if p.stop_gradient and n not in bn_stats)
        self._model_state = {k: weakref.ref(v) for k, v in model_state.items()}
        # keys averaged: float entries not black-listed; the others mirror the model
        self._averaged = {k for k, v in model_state.items()
                          if k not in self.ema_black_list and paddle.is_floating_point(v)}
        self._state = {}
        self.reset()

    def decay_at(self, step):
        """The decay used by update number ``step`` (0-based), a Python float."""
        if self.ema_decay_type == 'threshold':
            return min(self.decay, (1 + step) / (10 + step))
        if self.ema_decay_type == 'exponential':
            return self.decay * (1 - math.exp(-(step + 1) / 2000))
        return self.decay

    def _model_tensors(self, model=None):
        if model is not None:
            return model.state_dict()
        tensors = {k: ref() for k, ref in self._model_state.items()}
        gone = [k for k, v in tensors.items() if v is None]
        if gone:
            raise RuntimeError(f'ModelEMA: the model tensors {gone[:3]} were freed; pass the '
                               f'model to update()')
        return tensors

    def reset(self):
        """Zero the averages and the step / epoch counters (what ``cycle_epoch`` triggers)."""
        self.step = 0
        self.epoch = 0
        current = self._model_tensors()
        self._state = {k: paddle.zeros_like(v) if k in self._averaged else v
                       for k, v in current.items()}

    @paddle.no_grad()
    def update(self, model=None):
        """Fold the model's current state into the averages (call after each optimizer step).

        ``model``: read its ``state_dict()`` instead of the tracked tensors (same keys).
        """
        decay = self.decay_at(self.step)
        current = self._model_tensors(model)
        for k in self._state:
            if k in self._averaged:
                self._state[k] = decay * self._state[k] + (1 - decay) * current[k].detach()
            else:
                self._state[k] = current[k]
        self.step += 1

    @paddle.no_grad()
    def apply(self):
        """The EMA weights to evaluate or save: ``{key: Tensor}`` with the model's keys.

        Bias-corrected (see the class doc); counts an epoch and resets the averages when
        ``cycle_epoch`` epochs are reached (as ppdet). Before any update: the model's weights.
        """
        if self.step == 0:
            weights = dict(self._model_tensors())
        else:
            correction = 1.0
            if self.ema_decay_type != 'exponential':
                correction = 1 - self.decay_at(self.step - 1)**self.step
            weights = {k: (v / correction if k in self._averaged else v)
                       for k, v in self._state.items()}
        self.epoch += 1
        if self.cycle_epoch > 0 and self.epoch == self.cycle_epoch:
            self.reset()
        return weights

    def state_dict(self):
        """The raw (not bias-corrected) averages, ``{key: Tensor}`` with the model's keys.

        With ``step`` and ``epoch`` this is the whole EMA state: ``resume(ema.state_dict(),
        ema.step, ema.epoch)`` on a fresh ModelEMA continues identically.
        """
        return dict(self._state)

    def resume(self, state_dict, step=0, epoch=0):
        """Restore the averages saved by ``state_dict()`` and the update / epoch counters.

        ``state_dict`` values may be Tensors or numpy arrays; they are cast to the model's dtypes.
        Keys the model lacks are ignored and averaged keys missing from ``state_dict`` keep zero
        averages, both with a warning (ppdet ignores them silently).

        Raises:
            ValueError: a value whose shape differs from the model's, naming the key.
        """
        unknown = sorted(set(state_dict) - set(self._state))
        missing = sorted(self._averaged - set(state_dict))
        if unknown or missing:
            logger.warning(f'ModelEMA.resume: {len(unknown)} unknown key(s) ignored '
                           f'{unknown[:3]}, {len(missing)} averaged key(s) missing {missing[:3]}')
        for k, v in state_dict.items():
            if k not in self._state:
                continue
            ref = self._state[k]
            if isinstance(v, np.ndarray):
                v = paddle.to_tensor(v)
            if list(v.shape) != list(ref.shape):
                raise ValueError(f'ModelEMA.resume: {k!r} has shape {list(v.shape)}, the model '
                                 f'has {list(ref.shape)}')
            if v.dtype != ref.dtype:
                v = v.astype(ref.dtype)
            self._state[k] = v
        self.step = int(step)
        self.epoch = int(epoch)
