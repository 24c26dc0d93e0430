"""OptimizerBuilder: the ``OptimizerBuilder`` config section of PaddleDetection 2.6.

Source: ``ppdet/optimizer/optimizer.py`` (``OptimizerBuilder``). A config section reads::

    OptimizerBuilder:
      clip_grad_by_norm: 35.          # optional: clip by global L2 norm (or clip_grad_by_value)
      regularizer: {type: L2, factor: 0.0005}
      optimizer: {type: Momentum, momentum: 0.9}

or, for AdamW (its own decoupled ``weight_decay``; ``regularizer`` is ignored, as in ppdet)::

    OptimizerBuilder:
      optimizer: {type: AdamW, weight_decay: 0.05, decay_norm_bias: false}
"""

import paddle
from paddle import nn
from paddle import regularizer as paddle_regularizer

from ppdet_lite.core.workspace import register

__all__ = ['OptimizerBuilder']

# paddle.optimizer classes taking (learning_rate, parameters, weight_decay, grad_clip, ...)
SUPPORTED_OPTIMIZERS = ('Momentum', 'SGD', 'Adam', 'AdamW', 'RMSProp')
SUPPORTED_REGULARIZERS = ('L1', 'L2')


def _no_regularizer(reg):
    return reg is None or reg is False or (isinstance(reg, str) and reg.lower() == 'none')


@register
class OptimizerBuilder:
    """Build a ``paddle.optimizer`` over a model's trainable parameters.

    Args:
        clip_grad_by_norm (float | None): clip gradients by their global L2 norm
            (``paddle.nn.ClipGradByGlobalNorm``); wins over ``clip_grad_by_value``.
        clip_grad_by_value (float | None): clip each gradient element to ``[-|v|, |v|]``.
        regularizer (dict | None): ``{type: L2 | L1, factor: float}``, passed as the optimizer's
            ``weight_decay`` for every type but AdamW. None / ``'None'``: no regularizer.
            Default ``{type: L2, factor: 0.0001}``.
        optimizer (dict): ``{type: <one of SUPPORTED_OPTIMIZERS>, **kwargs}``; the other keys go to
            the ``paddle.optimizer`` class (e.g. ``momentum``, ``use_nesterov``, ``beta1``,
            ``weight_decay`` for AdamW). Default ``{type: Momentum, momentum: 0.9}``.
            ppdet_lite's extra key, AdamW only: ``decay_norm_bias`` (bool, default True = ppdet:
            decay every parameter); False exempts every parameter with ``ndim <= 1`` (biases and
            BatchNorm / GroupNorm / LayerNorm scales and shifts) from weight decay, through
            AdamW's ``apply_decay_param_fun``.

    ``__call__(learning_rate, model)``: ``learning_rate`` is a float or an ``LRScheduler`` (from
    ``LearningRate``); returns the optimizer over the parameters with ``trainable`` set, in
    ``model.parameters()`` order.

    Raises:
        ValueError: unknown ``optimizer.type`` or ``regularizer.type`` (the message lists the
            supported values), a missing ``type`` / ``factor``, ``decay_norm_bias`` on a type other
            than AdamW.
    """

    __category__ = 'optim'

    def __init__(self, clip_grad_by_norm=None, clip_grad_by_value=None,
                 regularizer={'type': 'L2', 'factor': .0001},
                 optimizer={'type': 'Momentum', 'momentum': .9}):
        self.clip_grad_by_norm = clip_grad_by_norm
        self.clip_grad_by_value = clip_grad_by_value
        self.regularizer = None if _no_regularizer(regularizer) else dict(regularizer)
        self.optimizer = dict(optimizer)
        self._check()

    def _check(self):
        opt_type = self.optimizer.get('type')
        if opt_type not in SUPPORTED_OPTIMIZERS:
            raise ValueError(f'OptimizerBuilder.optimizer.type: unknown optimizer {opt_type!r}; '
                             f'supported: {", ".join(SUPPORTED_OPTIMIZERS)}')
        if 'decay_norm_bias' in self.optimizer and opt_type != 'AdamW':
            raise ValueError(f'OptimizerBuilder.optimizer.decay_norm_bias is an AdamW option '
                             f'(optimizer.type is {opt_type!r})')
        if self.regularizer is not None and opt_type != 'AdamW':
            reg_type = self.regularizer.get('type')
            if reg_type not in SUPPORTED_REGULARIZERS:
                raise ValueError(f'OptimizerBuilder.regularizer.type: unknown regularizer '
                                 f'{reg_type!r}; supported: {", ".join(SUPPORTED_REGULARIZERS)} '
                                 f'(or regularizer: null)')
            if 'factor' not in self.regularizer:
                raise ValueError(f'OptimizerBuilder.regularizer needs a factor, got '
                                 f'{self.regularizer!r}')

    def grad_clip(self):
        """The ``paddle.nn`` gradient-clip object, or None."""
        if self.clip_grad_by_norm is not None:
            return nn.ClipGradByGlobalNorm(clip_norm=float(self.clip_grad_by_norm))
        if self.clip_grad_by_value is not None:
            bound = abs(float(self.clip_grad_by_value))
            return nn.ClipGradByValue(min=-bound, max=bound)
        return None

    def __call__(self, learning_rate, model):
        kwargs = dict(self.optimizer)
        opt_type = kwargs.pop('type')
        decay_norm_bias = kwargs.pop('decay_norm_bias', True)
        params = [p for p in model.parameters() if p.trainable]
        if opt_type == 'AdamW':
            if not decay_norm_bias:
                exempt = {p.name for p in params if p.ndim <= 1}
                kwargs['apply_decay_param_fun'] = lambda name: name not in exempt
        elif self.regularizer is not None:
            reg_cls = getattr(paddle_regularizer, self.regularizer['type'] + 'Decay')
            kwargs['weight_decay'] = reg_cls(float(self.regularizer['factor']))
        else:
            kwargs['weight_decay'] = None
        optim_cls = getattr(paddle.optimizer, opt_type)
        try:
            return optim_cls(learning_rate=learning_rate, parameters=params,
                             grad_clip=self.grad_clip(), **kwargs)
        except TypeError as e:
            raise ValueError(f'OptimizerBuilder.optimizer: {opt_type} rejected the arguments '
                             f'{sorted(kwargs)}: {e}') from e
