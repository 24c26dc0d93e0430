"""Photometric transforms: pixel values change, geometry and boxes do not.

``RandomDistort`` and ``NormalizeImage`` follow ``ppdet/data/transform/operators.py`` (2.6),
including the order of their random draws, so a seeded run matches PaddleDetection's.
"""

import numpy as np

from ppdet_lite.core.workspace import register, serializable

from .base import BaseOperator

__all__ = ['NormalizeImage', 'RandomDistort']


@register
@serializable
class NormalizeImage(BaseOperator):
    """``image = (image / 255 - mean) / std`` per channel -> float32 ``[h, w, 3]``.

    Args:
        mean (list[float]): per-channel mean, in the image's channel order (RGB after Decode).
        std (list[float]): per-channel standard deviation; no entry may be 0.
        is_scale (bool): divide by 255 first (``mean`` / ``std`` are then in [0, 1] units).
        norm_type (str): ``'mean_std'`` subtracts and divides, ``'none'`` only scales.
    Raises:
        TypeError: ``mean`` / ``std`` not lists, ``is_scale`` not a bool or unknown ``norm_type``.
        ValueError: a zero in ``std``.
    """

    def __init__(self, mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225], is_scale=True,
                 norm_type='mean_std'):
        if not (isinstance(mean, (list, tuple)) and isinstance(std, (list, tuple))
                and isinstance(is_scale, bool) and norm_type in ('mean_std', 'none')):
            raise TypeError(f'NormalizeImage: invalid arguments mean={mean!r}, std={std!r}, '
                            f'is_scale={is_scale!r}, norm_type={norm_type!r} (lists, a bool and '
                            f"'mean_std' or 'none' expected)")
        if 0 in std:
            raise ValueError(f'NormalizeImage: std {std!r} contains 0')
        self.mean = list(mean)
        self.std = list(std)
        self.is_scale = is_scale
        self.norm_type = norm_type
        scale = np.full(len(self.std), 1. / 255. if is_scale else 1.)
        self._offset = None
        if norm_type == 'mean_std':
            scale /= np.array(self.std)
            self._offset = (-np.array(self.mean) / np.array(self.std)).astype(np.float32)
        self._scale = scale.astype(np.float32)

    def apply(self, sample):
        # one multiply-add per pixel, (x / 255 - mean) / std = x * scale + offset, in float32;
        # equal to PaddleDetection's three passes up to float32 rounding, and ~3x cheaper
        im = sample['image'].astype(np.float32)
        im *= self._scale
        if self._offset is not None:
            im += self._offset
        sample['image'] = im
        return sample


@register
@serializable
class RandomDistort(BaseOperator):
    """Random brightness / contrast / saturation / hue changes -> float32 ``[h, w, 3]``.

    Each of ``hue``, ``saturation``, ``contrast``, ``brightness`` is ``[low, high, prob]``: a
    ``delta`` is drawn uniformly from ``[low, high]`` and the change is *skipped* when a uniform
    draw is below ``prob`` (PaddleDetection's convention; with the default 0.5 it is a coin flip).

    The formulas are PaddleDetection 2.6's, kept so that its recipes behave the same here:
    brightness adds ``delta`` (pixel units, so the default [0.5, 1.5] is a shift of about one
    grey level); contrast multiplies by ``delta``; saturation blends with the BT.601 grey
    (``delta * im + (1 - delta) * grey``); hue rotates the YIQ chroma plane by ``delta * pi``
    radians (the default [-18, 18] therefore covers every rotation).

    Args:
        random_apply (bool): apply ``count`` of the four changes in a random order (YOLO style);
            otherwise brightness, contrast before or after saturation and hue (SSD style).
        count (int): how many of the four changes to consider when ``random_apply``.
        random_channel (bool): SSD style only: randomly permute the channels half of the time.
    """

    def __init__(self, hue=[-18, 18, 0.5], saturation=[0.5, 1.5, 0.5],
                 contrast=[0.5, 1.5, 0.5], brightness=[0.5, 1.5, 0.5], random_apply=True,
                 count=4, random_channel=False):
        for name, value in (('hue', hue), ('saturation', saturation), ('contrast', contrast),
                            ('brightness', brightness)):
            if not (isinstance(value, (list, tuple)) and len(value) == 3):
                raise ValueError(f'RandomDistort.{name} must be [low, high, prob], got {value!r}')
        self.hue = list(hue)
        self.saturation = list(saturation)
        self.contrast = list(contrast)
        self.brightness = list(brightness)
        self.random_apply = random_apply
        self.count = count
        self.random_channel = random_channel

    # YIQ <-> RGB matrices of PaddleDetection's hue rotation
    _RGB2YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.321], [0.211, -0.523, 0.311]])
    _YIQ2RGB = np.array([[1.0, 0.956, 0.621], [1.0, -0.272, -0.647], [1.0, -1.107, 1.705]])

    @staticmethod
    def _draw(spec):
        """``delta`` for a change ``[low, high, prob]``, or None when the change is skipped
        (the skip draw comes first, as in PaddleDetection, so the random streams agree)."""
        low, high, prob = spec
        if np.random.uniform(0., 1.) < prob:
            return None
        return np.random.uniform(low, high)

    def apply_hue(self, img):
        delta = self._draw(self.hue)
        if delta is None:
            return img
        u, w = np.cos(delta * np.pi), np.sin(delta * np.pi)
        rotation = np.array([[1.0, 0.0, 0.0], [0.0, u, -w], [0.0, w, u]])
        t = np.dot(np.dot(self._YIQ2RGB, rotation), self._RGB2YIQ).T.astype(np.float32)
        return np.dot(img.astype(np.float32), t)

    def apply_saturation(self, img):
        delta = self._draw(self.saturation)
        if delta is None:
            return img
        img = img.astype(np.float32)
        grey = (img * np.array([[[0.299, 0.587, 0.114]]], dtype=np.float32)).sum(
            axis=2, keepdims=True)
        grey *= (1.0 - delta)
        img *= delta
        img += grey
        return img

    def apply_contrast(self, img):
        delta = self._draw(self.contrast)
        if delta is None:
            return img
        img = img.astype(np.float32)
        img *= delta
        return img

    def apply_brightness(self, img):
        delta = self._draw(self.brightness)
        if delta is None:
            return img
        img = img.astype(np.float32)
        img += delta
        return img

    def apply(self, sample):
        img = sample['image']
        if self.random_apply:
            functions = [self.apply_brightness, self.apply_contrast, self.apply_saturation,
                         self.apply_hue]
            for i in np.random.permutation(len(functions))[:self.count]:
                img = functions[i](img)
            sample['image'] = img.astype(np.float32, copy=False)
            return sample

        img = self.apply_brightness(img)
        contrast_first = np.random.randint(0, 2)
        if contrast_first:
            img = self.apply_contrast(img)
        img = self.apply_saturation(img)
        img = self.apply_hue(img)
        if not contrast_first:
            img = self.apply_contrast(img)
        if self.random_channel and np.random.randint(0, 2):
            img = img[..., np.random.permutation(3)]
        sample['image'] = img.astype(np.float32, copy=False)
        return sample
