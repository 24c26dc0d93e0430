"""Mixing transforms: several records become one training sample.

The dataset hands a *list* of records to the sample transforms while a mix is active
(``mixup_epoch`` of the reader, see ``DetDataset``); the ops before the mixing op (Decode, ...)
run on each record, the mixing op returns one sample dict, and the ops after it see that dict.
"""

import copy

import numpy as np

from ppdet_lite.core.workspace import register, serializable

from .base import BaseOperator

__all__ = ['Mixup']


@register
@serializable
class Mixup(BaseOperator):
    """Blend two images and keep the boxes of both (mixup, Zhang et al. 2018, as PaddleDetection
    2.6 ``operators.py`` Mixup applies it to detection).

    ``factor ~ Beta(alpha, beta)``, clipped to [0, 1]. The image is ``factor * image1 +
    (1 - factor) * image2`` on a canvas of the larger height and width (each image at the top-left,
    zeros elsewhere), truncated to uint8; ``im_shape`` becomes the canvas size (PaddleDetection
    keeps the first sample's). ``gt_bbox``, ``gt_class``, ``is_crowd`` and ``difficult``
    are the first sample's rows followed by the second's, and ``gt_score [n1 + n2, 1]`` float32 is
    ``factor`` for the first sample's boxes and ``1 - factor`` for the second's. With factor 1
    (or 0) the first (second) sample is returned as it is; a single sample dict (mixing not
    active) passes through unchanged.

    Args:
        alpha (float): first Beta parameter (> 0).
        beta (float): second Beta parameter (> 0).
    Raises:
        ValueError: ``alpha`` or ``beta`` not positive, or a list that is not of two samples.
    """

    _CONCATENATED = ('gt_bbox', 'gt_class', 'is_crowd', 'difficult')

    def __init__(self, alpha=1.5, beta=1.5):
        if not (alpha > 0 and beta > 0):
            raise ValueError(f'Mixup: alpha and beta must be positive, got {alpha!r}, {beta!r}')
        self.alpha = alpha
        self.beta = beta

    def __call__(self, sample):
        if isinstance(sample, dict):
            return sample
        if len(sample) != 2:
            raise ValueError(f'Mixup needs two samples, got {len(sample)}')
        first, second = sample
        factor = min(1.0, max(0.0, np.random.beta(self.alpha, self.beta)))
        if factor >= 1.0:
            return first
        if factor <= 0.0:
            return second
        result = copy.deepcopy(first)
        result['image'] = self._blend(first['image'], second['image'], factor)
        result['im_shape'] = np.array(result['image'].shape[:2], dtype=np.float32)
        for key in self._CONCATENATED:
            if key in first:
                result[key] = np.concatenate([first[key], second[key]], axis=0)
        if 'gt_class' in first:
            result['gt_score'] = np.concatenate(
                [np.full((len(first['gt_class']), 1), factor),
                 np.full((len(second['gt_class']), 1), 1. - factor)]).astype(np.float32)
        return result

    @staticmethod
    def _blend(im1, im2, factor):
        h, w = max(im1.shape[0], im2.shape[0]), max(im1.shape[1], im2.shape[1])
        canvas = np.zeros((h, w, im1.shape[2]), np.float32)
        canvas[:im1.shape[0], :im1.shape[1]] = im1.astype(np.float32) * factor
        canvas[:im2.shape[0], :im2.shape[1]] += im2.astype(np.float32) * (1.0 - factor)
        return canvas.astype(np.uint8)
