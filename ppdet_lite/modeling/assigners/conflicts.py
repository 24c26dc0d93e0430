"""The conflicts step: a prior claimed by several GTs keeps one of them.

Each assigner states its rule as a per-(GT, prior) score and ``'max'`` or ``'min'``: the claimant
with the highest IoU (ATSS, TAL, MaxIoU, YOLOv3), the lowest cost (SimOTA, Dynamic Soft Label) or
the smallest area (FCOS, rule ``'min'`` on areas). Only claimants compete; equal scores go to the
lowest GT slot (``ordering``). PaddleDetection's ATSS/TAL take the maximum over *all* GT slots of
the image, claimant or not: their assigners offer that as a compatibility choice by passing every
real slot as a claimant of a contested prior.
"""

import paddle

from .base import BACKGROUND
from .ordering import arg_best, monotone_bits

__all__ = ['resolve_conflicts', 'resolve_conflicts_pairs']

_RULES = ('max', 'min')


def _check_rule(rule):
    if rule not in _RULES:
        raise ValueError(f'conflicts: rule must be one of {_RULES}, got {rule!r}')


def resolve_conflicts(claims, score, rule='max'):
    """Dense form: every (GT slot, prior) pair of the batch.

    Args:
        claims (Tensor): ``[B, n, L]`` bool, True where slot g claims prior l.
        score (Tensor): ``[B, n, L]`` float32, the pair's score under ``rule``.
        rule (str): ``'max'`` (highest score wins) or ``'min'`` (lowest wins).
    Returns:
        Tensor: ``[B, L]`` int64 gt_index: the winning slot, ``BACKGROUND`` where no slot claims.
    Raises:
        ValueError: an unknown ``rule``.
    """
    _check_rule(rule)
    batch_size, num_gts, num_priors = claims.shape
    if num_gts == 0:
        return paddle.full([batch_size, num_priors], BACKGROUND, dtype='int64')
    largest = rule == 'max'
    losing = float('-inf') if largest else float('inf')
    masked = paddle.where(claims, score.astype('float32'), paddle.full_like(score, losing,
                                                                          dtype='float32'))
    winner = arg_best(masked, axis=1, largest=largest)
    claimed = claims.any(axis=1)
    return paddle.where(claimed, winner, paddle.full_like(winner, BACKGROUND))


def resolve_conflicts_pairs(prior_flat, slot, score, num_gts, num_flat, rule='max'):
    """Sparse form: a list of claims, for assigners that never build ``[B, n, L]``.

    Args:
        prior_flat (Tensor): ``[P]`` int64, claimed prior as ``b * L + l``; pairs not repeated.
        slot (Tensor): ``[P]`` int64, claiming GT slot g in ``[0, n)``.
        score (Tensor): ``[P]`` float32, the pair's score under ``rule``.
        num_gts (int): n.
        num_flat (int): B * L.
        rule (str): ``'max'`` or ``'min'``.
    Returns:
        Tensor: ``[B * L]`` int64 gt_index per flat prior (slot or ``BACKGROUND``); reshape to
        ``[B, L]``.
    Raises:
        ValueError: an unknown ``rule``.
    """
    _check_rule(rule)
    if prior_flat.shape[0] == 0:
        return paddle.full([num_flat], BACKGROUND, dtype='int64')
    largest = rule == 'max'
    # One key per pair, ordered by score (best largest) and then by lower slot; slot recoverable.
    key = _pair_key(score, slot, num_gts, largest)
    floor = paddle.full([num_flat], -2 ** 62, dtype='int64')
    best = paddle.put_along_axis(floor, prior_flat, key, axis=0, reduce='amax')
    winner = (num_gts - 1) - best % num_gts
    return paddle.where(best > -2 ** 62, winner, paddle.full_like(winner, BACKGROUND))


def _pair_key(score, slot, num_gts, largest):
    """int64 key per pair: larger is better; ``(num_gts - 1) - key % num_gts`` is the slot."""
    bits = monotone_bits(score)
    if not largest:
        bits = -bits
    return bits * num_gts + (num_gts - 1 - slot)
