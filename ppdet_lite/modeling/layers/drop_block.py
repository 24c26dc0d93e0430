"""DropBlock (arXiv:1810.12890): drop contiguous square regions of a feature map in training."""

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ppdet_lite.core.workspace import register, serializable
from ..checks import check_choice, check_int, check_number

__all__ = ['DropBlock']


@register
@serializable
class DropBlock(nn.Layer):
    """[B, C, H, W] -> same shape; identity in eval mode or when ``keep_prob`` is 1.

    Block centres are sampled with rate gamma = (1 - keep_prob) / block_size**2 *
    prod_s s / (s - block_size + 1) (PaddleDetection's formula), each centre zeroes a
    block_size x block_size square, and the survivors are rescaled by numel / kept so the expected
    activation is unchanged. Use an odd ``block_size``: the mask keeps the input size only then.

    Args:
        block_size (int): side of a dropped square, in feature-map cells.
        keep_prob (float): probability that a cell is kept.
        data_format (str): 'NCHW' or 'NHWC'.
    Raises:
        TypeError, ValueError: an even or non-positive ``block_size`` (an even one would change
            the map's size and fail in training only), ``keep_prob`` outside (0, 1].
    """

    def __init__(self, block_size, keep_prob, data_format='NCHW'):
        super().__init__()
        check_int('DropBlock', 'block_size', block_size, minimum=1)
        if block_size % 2 == 0:
            raise ValueError(f'DropBlock: block_size must be odd (the mask keeps the map size '
                             f'only then), got {block_size}')
        check_number('DropBlock', 'keep_prob', keep_prob, low=0, high=1, low_open=True)
        check_choice('DropBlock', 'data_format', data_format, ('NCHW', 'NHWC'))
        self.block_size = block_size
        self.keep_prob = keep_prob
        self.data_format = data_format

    def forward(self, x):
        if not self.training or self.keep_prob == 1:
            return x
        spatial = x.shape[2:] if self.data_format == 'NCHW' else x.shape[1:3]
        gamma = (1. - self.keep_prob) / (self.block_size ** 2)
        for s in spatial:
            gamma *= s / (s - self.block_size + 1)

        centres = paddle.cast(paddle.rand(x.shape) < gamma, x.dtype)
        dropped = F.max_pool2d(centres, self.block_size, stride=1, padding=self.block_size // 2,
                               data_format=self.data_format)
        mask = 1. - dropped
        # Dividing by the kept fraction (numel / kept in PaddleDetection's spelling) stays in x's
        # float dtype, where numel() would be an int64 tensor.
        return x * mask / mask.mean()
