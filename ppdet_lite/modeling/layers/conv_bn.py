"""Conv (no bias) + BatchNorm + activation, the unit every PP-YOLOE module is built from."""

import paddle.nn as nn
from paddle import ParamAttr
from paddle.regularizer import L2Decay

from ..ops import get_act_fn

__all__ = ['ConvBNLayer']


class ConvBNLayer(nn.Layer):
    """[B, ch_in, H, W] -> [B, ch_out, H', W'], H' = (H + 2 * padding - filter_size) // stride + 1.

    Parameters ``conv.weight``, ``bn.{weight,bias,_mean,_variance}`` (PaddleDetection's names).
    BatchNorm2D keeps Paddle's defaults (epsilon 1e-5, momentum 0.9); its scale and shift carry
    L2Decay(0) so the optimizer's global weight decay never shrinks them.

    Args:
        act: name, dict or callable, resolved by ``get_act_fn`` (None: identity).
    """

    def __init__(self, ch_in, ch_out, filter_size=3, stride=1, groups=1, padding=0, act=None):
        super().__init__()
        self.conv = nn.Conv2D(ch_in, ch_out, filter_size, stride=stride, padding=padding,
                              groups=groups, bias_attr=False)
        self.bn = nn.BatchNorm2D(ch_out,
                                 weight_attr=ParamAttr(regularizer=L2Decay(0.0)),
                                 bias_attr=ParamAttr(regularizer=L2Decay(0.0)))
        self.act = get_act_fn(act)

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))
