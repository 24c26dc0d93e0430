"""Samplers: which positives and negatives of an assignment the loss sees (the rest ignored)."""

from .base import BaseSampler
from .random_sampler import RandomSampler
from .iou_balanced_neg_sampler import IoUBalancedNegSampler
from .ohem_sampler import OHEMSampler

__all__ = ['BaseSampler', 'RandomSampler', 'IoUBalancedNegSampler', 'OHEMSampler']
