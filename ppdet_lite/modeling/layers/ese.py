"""Effective Squeeze-Excitation (CenterMask, arXiv:1911.06667): one FC, no channel reduction."""

import paddle.nn as nn

from ..ops import get_act_fn

__all__ = ['EffectiveSELayer']


class EffectiveSELayer(nn.Layer):
    """x [B, C, H, W] -> x * gate(fc(mean_hw(x))), gate [B, C, 1, 1].

    ``fc`` is a 1x1 Conv2D with bias (PaddleDetection's parameter names ``fc.weight``, ``fc.bias``).
    The default gate is Paddle's hardsigmoid, clip(x / 6 + 0.5, 0, 1).
    """

    def __init__(self, channels, act='hardsigmoid'):
        super().__init__()
        self.fc = nn.Conv2D(channels, channels, kernel_size=1, padding=0)
        self.act = get_act_fn(act)

    def forward(self, x):
        gate = self.act(self.fc(x.mean((2, 3), keepdim=True)))
        return x * gate
