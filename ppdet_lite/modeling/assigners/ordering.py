"""Deterministic order among equal values: the lowest index wins.

``paddle.topk``, ``argsort`` and ``argmax`` do not promise which of several equal values comes
first, and Paddle's CPU and GPU kernels disagree; an assigner whose positives depend on that would
not be a function of its inputs. Every ranking in the assigners goes through this module, whose
stated rule is: among equal values the one with the lower index along the ranked axis comes first
(whether ranking largest-first or smallest-first).

The rule is made exact by ranking int64 keys that order like the float32 values and have the
index folded into their low digits, so the kernels never see a tie. No host synchronisation.
"""

import paddle

__all__ = ['monotone_bits', 'order_key', 'topk_lowest_index', 'arg_best']

_SIGN_OFFSET = 2 ** 31


def monotone_bits(values):
    """float32 ``values`` -> int64 of the same shape, ordered exactly like the floats (-0.0 == 0.0;
    NaN is not ordered meaningfully); within ``[-2**31, 2**31)``."""
    bits = paddle.view(values.astype('float32'), 'int32').astype('int64')
    # Negative floats have the sign bit set (negative int32) and order backwards by magnitude.
    return paddle.where(bits >= 0, bits, -(bits + _SIGN_OFFSET))


def order_key(values, axis=-1, largest=True):
    """int64 keys whose order along ``axis`` is ``values``' order with ties to the lowest index.

    Args:
        values (Tensor): float32 (other float dtypes are cast), any shape, ``K`` along ``axis``.
        axis (int): the ranked axis.
        largest (bool): True if larger values rank first (take ``topk``/``argmax`` of the key);
            False if smaller values rank first (take ``topk(largest=False)``/``argmin``).
    Returns:
        Tensor: int64, shape of ``values``; distinct along ``axis``.
    """
    axis = axis % values.ndim
    size = values.shape[axis]
    shape = [1] * values.ndim
    shape[axis] = size
    index = paddle.arange(size, dtype='int64').reshape(shape)
    bits = monotone_bits(values)
    return bits * size + (size - 1 - index if largest else index)


def topk_lowest_index(values, k, axis=-1, largest=True):
    """``paddle.topk`` with the stated tie rule: equal values are taken lowest index first.

    Args:
        values (Tensor): float32 ``[..., K, ...]``.
        k (int): 0 <= k <= K.
        axis (int): the ranked axis.
        largest (bool): rank larger values first (True) or smaller first (False).
    Returns:
        (Tensor, Tensor): the k selected values (float32, gathered from ``values``) and their
        int64 indices, best first along ``axis``.
    """
    key = order_key(values, axis, largest)
    _, index = paddle.topk(key, k, axis=axis, largest=largest)
    return paddle.take_along_axis(values, index, axis=axis), index


def arg_best(values, axis=-1, largest=True):
    """Index of the largest (``largest``) or smallest value along ``axis``, lowest index on ties.

    Args:
        values (Tensor): float32, any shape.
    Returns:
        Tensor: int64, ``values``' shape without ``axis``.
    """
    key = order_key(values, axis, largest)
    return key.argmax(axis=axis) if largest else key.argmin(axis=axis)
