"""Activation lookup by name, with PaddleDetection's ``get_act_fn`` semantics.

Config files name activations as strings ('swish', 'relu', ...) or dicts
(``{name: leaky_relu, negative_slope: 0.2}``); modules turn them into callables here once, at
construction, so ``trt`` can swap in TensorRT-friendly formulas without touching the modules.
"""

import functools

import paddle.nn.functional as F

__all__ = ['get_act_fn', 'identity', 'swish']


def identity(x):
    return x


def swish(x):
    """x * sigmoid(x) spelled as two primitive ops, which every TensorRT version parses."""
    return x * F.sigmoid(x)


def _leaky(x, negative_slope=0.1):
    return F.leaky_relu(x, negative_slope=negative_slope)


# Names that do not map to a ``paddle.nn.functional`` function of the same name, or whose
# PaddleDetection meaning differs from Paddle's default ('leaky' is YOLOv3's slope 0.1).
_ACTS = {'leaky': _leaky}
_TRT_ACTS = {'swish': swish, 'silu': swish}


def get_act_fn(act=None, trt=False):
    """Return the activation callable for ``act``.

    Args:
        act: None or '' (identity); a name ('swish', 'silu', 'relu', 'leaky', 'hardsigmoid',
            'mish', or any ``paddle.nn.functional`` function); a dict ``{'name': ..., **kwargs}``
            whose extra keys are passed to the function; or a callable, returned unchanged.
        trt: use TensorRT-friendly variants (swish/silu as x * sigmoid(x)).

    Paddle's ``F.swish`` is x * sigmoid(x) (beta 1), the same function as SiLU. Hardsigmoid is
    Paddle's default form, clip(x / 6 + 0.5, 0, 1).
    """
    if callable(act):
        return act
    if not act:
        return identity
    if isinstance(act, dict):
        kwargs = dict(act)
        name = kwargs.pop('name')
    elif isinstance(act, str):
        name, kwargs = act, {}
    else:
        raise TypeError(f'activation must be None, a name, a dict with "name" or a callable, '
                        f'got {act!r}')

    if trt and name in _TRT_ACTS:
        fn = _TRT_ACTS[name]
    elif name in _ACTS:
        fn = _ACTS[name]
    elif hasattr(F, name):
        fn = getattr(F, name)
    else:
        raise ValueError(f'unknown activation {name!r}')
    return functools.partial(fn, **kwargs) if kwargs else fn
