"""ShapeSpec: the contract between backbone, neck and head (as PaddleDetection's)."""

from collections import namedtuple

__all__ = ['ShapeSpec']


class ShapeSpec(namedtuple('ShapeSpec', ['channels', 'height', 'width', 'stride'],
                           defaults=(None, None, None, None))):
    """Shape of one feature map a module produces: channels, spatial size, stride in input pixels.

    Every field defaults to None (unknown); modules usually fill ``channels`` and ``stride`` only.
    """

    __slots__ = ()
