"""RepVGG block (arXiv:2101.03697) as PP-YOLOE uses it: 3x3 and 1x1 conv-BN branches only."""

import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddle import ParamAttr
from paddle.nn.initializer import Constant

from ..ops import get_act_fn
from .conv_bn import ConvBNLayer

__all__ = ['RepVggBlock']


class RepVggBlock(nn.Layer):
    """[B, ch_in, H, W] -> [B, ch_out, H, W]: act(conv1(x) + alpha * conv2(x)).

    Training form: ``conv1`` (3x3 ConvBNLayer) and ``conv2`` (1x1 ConvBNLayer), both without
    activation, plus a learnable scalar ``alpha`` (shape [1], initialised to 1) when ``alpha=True``.
    ``convert_to_deploy()`` folds both BNs and both branches into one biased 3x3 conv ``conv``
    computing the same function in eval mode (BN with its running statistics).
    """

    def __init__(self, ch_in, ch_out, act='relu', alpha=False):
        super().__init__()
        self.ch_in = ch_in
        self.ch_out = ch_out
        self.conv1 = ConvBNLayer(ch_in, ch_out, 3, stride=1, padding=1, act=None)
        self.conv2 = ConvBNLayer(ch_in, ch_out, 1, stride=1, padding=0, act=None)
        self.act = get_act_fn(act)
        if alpha:
            self.alpha = self.create_parameter(
                shape=[1], attr=ParamAttr(initializer=Constant(value=1.)), dtype='float32')
        else:
            self.alpha = None

    @property
    def deployed(self):
        return 'conv' in self._sub_layers

    def forward(self, x):
        if self.deployed:
            y = self.conv(x)
        elif self.alpha is not None:
            y = self.conv1(x) + self.alpha * self.conv2(x)
        else:
            y = self.conv1(x) + self.conv2(x)
        return self.act(y)

    @paddle.no_grad()
    def convert_to_deploy(self):
        """Replace ``conv1``/``conv2`` by one 3x3 conv with bias; a no-op if already converted.

        ``alpha`` stays a parameter (unused after conversion), as in PaddleDetection.
        """
        if self.deployed:
            return
        kernel, bias = self._equivalent_kernel_bias()
        self.conv = nn.Conv2D(self.ch_in, self.ch_out, kernel_size=3, stride=1, padding=1)
        self.conv.weight.set_value(kernel)
        self.conv.bias.set_value(bias)
        del self.conv1
        del self.conv2

    def _equivalent_kernel_bias(self):
        """Kernel [ch_out, ch_in, 3, 3] and bias [ch_out] of one conv equal to both branches."""
        kernel3x3, bias3x3 = _fuse_bn(self.conv1)
        kernel1x1, bias1x1 = _fuse_bn(self.conv2)
        # A 1x1 kernel is the centre tap of a 3x3 kernel; both convs keep the spatial size.
        kernel1x1 = F.pad(kernel1x1, [1, 1, 1, 1])
        if self.alpha is not None:
            return kernel3x3 + self.alpha * kernel1x1, bias3x3 + self.alpha * bias1x1
        return kernel3x3 + kernel1x1, bias3x3 + bias1x1


def _fuse_bn(branch):
    """Conv kernel and bias equal to ``branch.bn(branch.conv(x))`` with BN's running statistics."""
    bn = branch.bn
    std = (bn._variance + bn._epsilon).sqrt()
    kernel = branch.conv.weight * (bn.weight / std).reshape([-1, 1, 1, 1])
    # Same operation order as PaddleDetection, so fused weights match theirs bit for bit.
    return kernel, bn.bias - bn._mean * bn.weight / std
