"""Formatting: image layout for the network (PaddleDetection's ``Permute``)."""

from ppdet_lite.core.workspace import register, serializable

from .base import BaseOperator

__all__ = ['Permute']


@register
@serializable
class Permute(BaseOperator):
    """HWC -> CHW: ``image [h, w, c]`` becomes ``[c, h, w]`` (same dtype; a transposed view)."""

    def apply(self, sample):
        sample['image'] = sample['image'].transpose((2, 0, 1))
        return sample
