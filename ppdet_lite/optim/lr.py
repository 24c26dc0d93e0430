"""Learning-rate schedules with PaddleDetection 2.6's config keys and per-step values.

Source: ``ppdet/optimizer/optimizer.py`` of PaddleDetection 2.6 (``LearningRate``, ``CosineDecay``,
``PiecewiseDecay``, ``LinearWarmup``, ``ExpWarmup``). A config section reads::

    LearningRate:
      base_lr: 0.01
      base_batch_size: 64          # ppdet_lite: the total batch size base_lr was tuned for
      schedulers:
        - {name: CosineDecay, max_epochs: 360}          # or: - !CosineDecay {max_epochs: 360}
        - {name: LinearWarmup, start_factor: 0., epochs: 5}

``create('LearningRate')(step_per_epoch)`` returns a ``paddle.optimizer.lr.LRScheduler`` stepped
once per iteration; its value at every step equals PaddleDetection 2.6's bit for bit (same float
expressions). Steps count optimizer iterations from 0; ``max_epochs`` and ``epochs`` are converted
to steps with ``step_per_epoch``.

Differences from PaddleDetection, all where it fails or is silent:

* the warm-up and the decay may be listed in either order, and a decay alone (even with
  ``use_warmup: true``) means no warm-up; ppdet 2.6 needs ``[decay, warmup]`` and raises otherwise.
* cosine decay after a warm-up is computed in closed form per step; ppdet builds a list of
  ``max_epochs * step_per_epoch`` boundaries and scans it at every step (same values, O(1) here).
* ``PiecewiseDecay.values`` with a warm-up: the warm-up ramps to ``base_lr`` (which must equal
  ``values[0]``) and ``values[1:]`` follow at the milestones; ppdet 2.6 indexes past its list.
* ``LinearWarmup.epochs`` may be fractional; ``epochs_first`` (from later PaddleDetection) makes
  ``steps`` win over ``epochs``.
* linear LR scaling (``base_batch_size``, ``auto_scale``, ``scale_to``), see ``LearningRate``.
"""

import copy
import math

from paddle.optimizer import lr as paddle_lr

from ppdet_lite.core.workspace import register, serializable

__all__ = ['LearningRate', 'CosineDecay', 'PiecewiseDecay', 'LinearWarmup', 'ExpWarmup',
           'WarmupCosineLR']


class WarmupCosineLR(paddle_lr.LRScheduler):
    """Warm-up values, then PaddleDetection's cosine decay, evaluated in closed form.

    Value at step ``s`` (``W = len(warmup_values) - 1`` warm-up steps, ``T`` = ``max_iters``,
    ``P`` = ``plateau_iters``, ``m = base_lr * min_lr_ratio``)::

        s < W                 warmup_values[s]
        W <= s < T - P        m + (base_lr - m) * 0.5 * (cos((s - W) * pi / (T - W - P)) + 1)
        T - P <= s < T        m
        s >= T                the value at T - 1 (warmup_values[W] if T <= W)

    which is what ppdet 2.6's ``PiecewiseDecay(boundary, value)`` list yields, step for step.
    With ``W = 0`` (``warmup_values = [base_lr]``) it is the cosine-with-plateau schedule that
    ppdet 2.6 uses for ``use_warmup: false, last_plateau_epochs > 0``.
    """

    def __init__(self, base_lr, warmup_values, max_iters, min_lr, plateau_iters=0,
                 last_epoch=-1):
        self.warmup_values = [float(v) for v in warmup_values]
        self.warmup_iters = len(self.warmup_values) - 1
        self.max_iters = int(max_iters)
        self.min_lr = min_lr
        self.plateau_iters = int(plateau_iters)
        super().__init__(learning_rate=float(base_lr), last_epoch=last_epoch)

    def _cosine(self, i):
        base_lr, min_lr, w = self.base_lr, self.min_lr, self.warmup_iters
        if i < self.max_iters - self.plateau_iters:
            # the same expression, in the same order, as ppdet 2.6, so values match exactly
            return min_lr + (base_lr - min_lr) * 0.5 * (math.cos(
                (i - w) * math.pi / (self.max_iters - w - self.plateau_iters)) + 1)
        return min_lr

    def get_lr(self):
        step = self.last_epoch
        if step < self.warmup_iters:
            return self.warmup_values[step]
        if self.max_iters <= self.warmup_iters:
            return self.warmup_values[-1]
        return self._cosine(min(step, self.max_iters - 1))


@serializable
class CosineDecay:
    """Cosine decay from ``base_lr`` to ``base_lr * min_lr_ratio`` over ``max_epochs``.

    Args:
        max_epochs (int | None): epochs of the whole schedule (warm-up included), > 0. None: the
            run's own ``epoch`` (``LearningRate`` takes it from the config), so a config that
            changes ``epoch`` keeps a complete cosine without restating it.
        use_warmup (bool): follow the warm-up scheduler of ``LearningRate`` (default True).
        min_lr_ratio (float): final LR as a fraction of ``base_lr`` (default 0).
        last_plateau_epochs (int): hold the final LR for the last epochs (default 0).

    ``__call__(base_lr, boundary=None, value=None, step_per_epoch)``: ``boundary`` / ``value`` are a
    warm-up's lists (``None``: no warm-up). Returns ``WarmupCosineLR``, or Paddle's
    ``CosineAnnealingDecay(base_lr, T_max=max_iters, eta_min=min_lr)`` without warm-up and plateau,
    as ppdet 2.6 does (that class evaluates recursively; ppdet's values come from it).
    """

    def __init__(self, max_epochs=1000, use_warmup=True, min_lr_ratio=0., last_plateau_epochs=0):
        if max_epochs is not None and (not max_epochs or max_epochs <= 0):
            raise ValueError(f'CosineDecay.max_epochs must be > 0 or null, got {max_epochs!r}')
        self.max_epochs = max_epochs
        self.use_warmup = use_warmup
        self.min_lr_ratio = min_lr_ratio
        self.last_plateau_epochs = last_plateau_epochs

    def __call__(self, base_lr=None, boundary=None, value=None, step_per_epoch=None):
        if base_lr is None:
            raise ValueError('CosineDecay needs base_lr')
        if self.max_epochs is None:
            raise ValueError('CosineDecay.max_epochs is null but no epoch count was given: set '
                             'max_epochs, or the top-level `epoch` the LearningRate reads')
        max_iters = self.max_epochs * int(step_per_epoch)
        plateau_iters = self.last_plateau_epochs * int(step_per_epoch)
        min_lr = base_lr * self.min_lr_ratio
        if boundary is not None and value is not None and self.use_warmup:
            return WarmupCosineLR(base_lr, value, max_iters, min_lr, plateau_iters)
        if plateau_iters > 0:
            return WarmupCosineLR(base_lr, [base_lr], max_iters, min_lr, plateau_iters)
        return paddle_lr.CosineAnnealingDecay(base_lr, T_max=max_iters, eta_min=min_lr)


@serializable
class PiecewiseDecay:
    """Step decay at epoch milestones (ppdet 2.6).

    Args:
        gamma (float | list[float]): LR factors after each milestone; a scalar ``g`` means
            ``[g, g / 10, g / 100, ...]`` (one per milestone). None = ``[0.1, 0.01]`` (ppdet).
        milestones (list[int]): epochs at which the LR drops. Default ``[8, 11]``.
        values (list[float] | None): absolute LRs, ``len(milestones) + 1`` of them; overrides
            ``gamma``. Without warm-up ``base_lr`` is then unused (as ppdet); with a warm-up
            ``values[0]`` must equal ``base_lr``. Linear LR scaling scales them too.
        use_warmup (bool): follow the warm-up scheduler of ``LearningRate``.

    ``__call__`` returns Paddle's ``PiecewiseDecay(boundaries, values)`` as ppdet 2.6 does.
    Raises ValueError for a ``values`` list of the wrong length.
    """

    def __init__(self, gamma=None, milestones=(8, 11), values=None, use_warmup=True):
        milestones = list(milestones)
        if gamma is None:
            self.gamma = [0.1, 0.01]
        elif isinstance(gamma, (list, tuple)):
            self.gamma = list(gamma)
        else:
            self.gamma = [gamma / 10**i for i in range(len(milestones))]
        if values is not None and len(values) != len(milestones) + 1:
            raise ValueError(f'PiecewiseDecay.values needs len(milestones) + 1 = '
                             f'{len(milestones) + 1} entries, got {len(values)}: {values!r}')
        self.milestones = milestones
        self.values = None if values is None else list(values)
        self.use_warmup = use_warmup

    def __call__(self, base_lr=None, boundary=None, value=None, step_per_epoch=None,
                 lr_scale=1.0):
        """``lr_scale`` multiplies explicit ``values`` (linear LR scaling; 1 = ppdet)."""
        milestone_steps = [int(step_per_epoch) * m for m in self.milestones]
        warm = boundary is not None and self.use_warmup
        if self.values is not None:
            values = [v * lr_scale for v in self.values] if lr_scale != 1.0 else self.values
            if not warm:
                return paddle_lr.PiecewiseDecay(milestone_steps, list(values))
            if not math.isclose(values[0], base_lr, rel_tol=1e-9):
                raise ValueError(f'PiecewiseDecay.values[0] ({values[0]}) must equal '
                                 f'LearningRate.base_lr ({base_lr}) when a warm-up is used: the '
                                 f'warm-up ramps to base_lr')
            return paddle_lr.PiecewiseDecay(list(boundary) + milestone_steps,
                                            list(value) + list(values[1:]))
        if warm:
            boundary, value = list(boundary) + milestone_steps, list(value)
        else:
            boundary, value = milestone_steps, [base_lr]
        value += [base_lr * g for g in self.gamma]
        return paddle_lr.PiecewiseDecay(boundary, value)


def _warmup_steps(steps, epochs, epochs_first, step_per_epoch):
    if epochs is not None and epochs_first:
        steps = int(epochs * step_per_epoch)
    return max(int(steps), 1)


@serializable
class LinearWarmup:
    """Linear warm-up from ``base_lr * start_factor`` to ``base_lr`` (ppdet 2.6).

    Args:
        steps (int): warm-up length in optimizer steps (default 500).
        start_factor (float): LR factor at step 0 (default 1/3).
        epochs (float | None): warm-up length in epochs; wins over ``steps`` when set.
        epochs_first (bool): False makes ``steps`` win over ``epochs`` (later PaddleDetection).

    ``__call__(base_lr, step_per_epoch) -> (boundary, value)``: with ``W = max(steps, 1)``,
    ``boundary = [1, ..., W]`` and ``value[i] = base_lr * (start_factor * (1 - i / W) + i / W)``
    for ``i = 0..W`` (so ``value[W] = base_lr``).
    """

    def __init__(self, steps=500, start_factor=1. / 3, epochs=None, epochs_first=True):
        self.steps = steps
        self.start_factor = start_factor
        self.epochs = epochs
        self.epochs_first = epochs_first

    def __call__(self, base_lr, step_per_epoch):
        warmup_steps = _warmup_steps(self.steps, self.epochs, self.epochs_first, step_per_epoch)
        value = []
        for i in range(warmup_steps + 1):
            alpha = i / warmup_steps
            value.append(base_lr * (self.start_factor * (1 - alpha) + alpha))
        return list(range(1, warmup_steps + 1)), value


@serializable
class ExpWarmup:
    """Warm-up ``base_lr * (i / W) ** power`` for ``i = 0..W`` (ppdet 2.6).

    Args:
        steps (int): warm-up length in optimizer steps (default 1000).
        epochs (float | None): warm-up length in epochs; wins over ``steps`` when set.
        power (int): exponent (default 2).
    """

    def __init__(self, steps=1000, epochs=None, power=2):
        self.steps = steps
        self.epochs = epochs
        self.power = power

    def __call__(self, base_lr, step_per_epoch):
        warmup_steps = _warmup_steps(self.steps, self.epochs, True, step_per_epoch)
        value = [base_lr * (i / float(warmup_steps))**self.power
                 for i in range(warmup_steps + 1)]
        return list(range(1, warmup_steps + 1)), value


_SCHEDULERS = {c.__name__: c for c in (CosineDecay, PiecewiseDecay, LinearWarmup, ExpWarmup)}
_WARMUPS = (LinearWarmup, ExpWarmup)


def _build_scheduler(entry, index):
    if not isinstance(entry, dict):
        return entry
    args = dict(entry)
    name = args.pop('name', None)
    if name not in _SCHEDULERS:
        raise ValueError(f'LearningRate.schedulers[{index}].name: unknown scheduler {name!r}; '
                         f'supported: {", ".join(sorted(_SCHEDULERS))}')
    try:
        return _SCHEDULERS[name](**args)
    except TypeError as e:
        raise ValueError(f'LearningRate.schedulers[{index}] ({name}): {e}') from e


@register
class LearningRate:
    """The LR schedule of a training run (PaddleDetection 2.6's ``LearningRate`` section).

    Args:
        base_lr (float): peak learning rate, for ``base_batch_size`` images per step if that is
            set. Default 0.01.
        schedulers (list | None): one decay (``CosineDecay`` / ``PiecewiseDecay``) and at most one
            warm-up (``LinearWarmup`` / ``ExpWarmup``), each an object (``!CosineDecay`` tag) or a
            ``{name: ..., **args}`` dict. None = ppdet's default
            ``[PiecewiseDecay(), LinearWarmup()]``.
        base_batch_size (int | None): the total batch size (all devices) ``base_lr`` was tuned
            for. None (PaddleDetection's behaviour): ``base_lr`` is used as written.
        auto_scale (bool): with ``base_batch_size`` set, ``scale_to`` applies the linear scaling
            rule (Goyal et al. 2017, "Accurate, Large Minibatch SGD"): ``base_lr * total /
            base_batch_size``. ``-o LearningRate.auto_scale=false`` switches it off.
        epoch (int | None): the run's epoch count (the shared top-level ``epoch``); fills
            ``CosineDecay.max_epochs: null``.

    Call ``scale_to(total_batch_size)`` (the trainer does, before building the schedule), then
    ``__call__(step_per_epoch)`` -> ``paddle.optimizer.lr.LRScheduler`` to step once per iteration.

    Raises:
        ValueError: unknown scheduler name, no decay or several decays / warm-ups, bad base_lr or
            base_batch_size.
    """

    __category__ = 'optim'
    __shared__ = ['epoch']

    def __init__(self, base_lr=0.01, schedulers=None, base_batch_size=None, auto_scale=True,
                 epoch=None):
        if isinstance(base_lr, bool) or not isinstance(base_lr, (int, float)) or base_lr <= 0:
            raise ValueError(f'LearningRate.base_lr must be a number > 0, got {base_lr!r}')
        if base_batch_size is not None and (isinstance(base_batch_size, bool) or
                                            not isinstance(base_batch_size, int) or
                                            base_batch_size <= 0):
            raise ValueError(f'LearningRate.base_batch_size must be an int > 0 or null, got '
                             f'{base_batch_size!r}')
        if schedulers is None:
            schedulers = [PiecewiseDecay(), LinearWarmup()]
        self.base_lr = float(base_lr)
        self.config_base_lr = float(base_lr)
        self.base_batch_size = base_batch_size
        self.auto_scale = bool(auto_scale)
        self.lr_scale = 1.0
        self.schedulers = [_build_scheduler(copy.deepcopy(s), i)
                           for i, s in enumerate(schedulers)]
        warmups = [s for s in self.schedulers if isinstance(s, _WARMUPS)]
        decays = [s for s in self.schedulers if not isinstance(s, _WARMUPS)]
        if len(decays) != 1 or len(warmups) > 1:
            names = [type(s).__name__ for s in self.schedulers]
            raise ValueError(f'LearningRate.schedulers needs exactly one decay (CosineDecay, '
                             f'PiecewiseDecay) and at most one warm-up (LinearWarmup, ExpWarmup), '
                             f'got {names}')
        self.decay = decays[0]
        self.warmup = warmups[0] if warmups else None
        if isinstance(self.decay, CosineDecay) and self.decay.max_epochs is None and epoch:
            self.decay.max_epochs = epoch

    def scale_to(self, total_batch_size):
        """Set ``base_lr`` for ``total_batch_size`` images per step (all devices).

        Linear scaling rule: ``base_lr = config_base_lr * total_batch_size / base_batch_size``,
        only when ``base_batch_size`` is set and ``auto_scale`` is on; idempotent (always scales
        the configured value). Returns ``(base_lr, message)``, the message a one-line log entry,
        e.g. ``"base_lr 0.01 for batch 64 -> 0.00125 for batch 8 (linear scaling rule)"``.
        Raises ValueError if ``total_batch_size`` is not a positive int.
        """
        if isinstance(total_batch_size, bool) or not isinstance(total_batch_size, int) or \
                total_batch_size <= 0:
            raise ValueError(f'scale_to: total_batch_size must be an int > 0, got '
                             f'{total_batch_size!r}')
        lr0, ref = self.config_base_lr, self.base_batch_size
        if ref is None:
            self.lr_scale = 1.0
            message = (f'base_lr {lr0:g} for batch {total_batch_size} (no linear scaling: '
                       f'LearningRate.base_batch_size is not set)')
        elif not self.auto_scale:
            self.lr_scale = 1.0
            message = (f'base_lr {lr0:g} for batch {total_batch_size} (linear scaling off: '
                       f'LearningRate.auto_scale=false; tuned for batch {ref})')
        else:
            self.lr_scale = total_batch_size / ref
            message = (f'base_lr {lr0:g} for batch {ref} -> {lr0 * self.lr_scale:g} for batch '
                       f'{total_batch_size} (linear scaling rule)')
        self.base_lr = lr0 * self.lr_scale
        return self.base_lr, message

    def __call__(self, step_per_epoch):
        """Build the per-step scheduler; ``step_per_epoch`` (int > 0) converts epochs to steps."""
        if isinstance(step_per_epoch, bool) or int(step_per_epoch) != step_per_epoch or \
                step_per_epoch <= 0:
            raise ValueError(f'LearningRate: step_per_epoch must be an int > 0, got '
                             f'{step_per_epoch!r}')
        step_per_epoch = int(step_per_epoch)
        extra = {'lr_scale': self.lr_scale} if isinstance(self.decay, PiecewiseDecay) else {}
        if self.warmup is None or not self.decay.use_warmup:
            return self.decay(base_lr=self.base_lr, step_per_epoch=step_per_epoch, **extra)
        boundary, value = self.warmup(self.base_lr, step_per_epoch)
        return self.decay(self.base_lr, boundary, value, step_per_epoch, **extra)
