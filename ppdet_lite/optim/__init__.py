"""Optimisation: LR schedules (``lr``), the optimizer builder (``optimizer``) and the weight EMA
(``ema``), with PaddleDetection 2.6's config sections ``LearningRate`` and ``OptimizerBuilder``.

Importing this package registers ``LearningRate`` and ``OptimizerBuilder`` and the ``!CosineDecay``,
``!PiecewiseDecay``, ``!LinearWarmup`` and ``!ExpWarmup`` tags with ``ppdet_lite.core.workspace``.
"""

from .lr import LearningRate, CosineDecay, PiecewiseDecay, LinearWarmup, ExpWarmup, WarmupCosineLR
from .optimizer import OptimizerBuilder, SUPPORTED_OPTIMIZERS, SUPPORTED_REGULARIZERS
from .ema import ModelEMA

__all__ = ['LearningRate', 'CosineDecay', 'PiecewiseDecay', 'LinearWarmup', 'ExpWarmup',
           'WarmupCosineLR', 'OptimizerBuilder', 'SUPPORTED_OPTIMIZERS', 'SUPPORTED_REGULARIZERS',
           'ModelEMA']
