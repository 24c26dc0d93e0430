"""Batch transforms: ``op(samples: list[dict]) -> list[dict]``, run in the reader's collate.

Random choices draw from ``np.random`` in the process that collates; the dataset seeds it per
sample, so a batch's draws follow from its samples' (seed, epoch, index) as well.
"""

import cv2
import numpy as np

from ppdet_lite.core.workspace import register, serializable

from .base import BaseOperator
from .geometric import Resize

__all__ = ['BatchRandomResize', 'PadGT', 'PadBatch']


@register
@serializable
class BatchRandomResize(BaseOperator):
    """Resize every image of the batch to one size drawn per batch (multi-scale training).

    Args:
        target_size (int | list): the size, or with ``random_size`` the list of candidate sizes
            (each an int for a square or ``[h, w]``), in pixels.
        keep_ratio (bool): as in ``Resize``.
        interp (int): OpenCV interpolation when not ``random_interp`` (0 = ``cv2.INTER_NEAREST``).
        random_size (bool): draw the size uniformly from ``target_size``.
        random_interp (bool): draw the interpolation uniformly from nearest, linear, area,
            cubic and Lanczos-4.
    The size is drawn first, then the interpolation (``np.random.choice``), then every sample
    goes through ``Resize(size, keep_ratio, interp)``: boxes, ``im_shape`` and ``scale_factor``
    are updated as documented there (PaddleDetection ``batch_operators.py``).

    Raises:
        TypeError: ``random_size`` with a ``target_size`` that is not a list, or a size that is
            not an int or ``[h, w]`` (e.g. ``[640]`` without ``random_size``).
    """

    INTERPS = (cv2.INTER_NEAREST, cv2.INTER_LINEAR, cv2.INTER_AREA, cv2.INTER_CUBIC,
               cv2.INTER_LANCZOS4)

    def __init__(self, target_size, keep_ratio, interp=cv2.INTER_NEAREST, random_size=True,
                 random_interp=False):
        if random_size and not isinstance(target_size, list):
            raise TypeError(f'BatchRandomResize.target_size must be a list of sizes when '
                            f'random_size is True, got {target_size!r}')
        for size in (target_size if random_size else [target_size]):
            try:
                Resize(size, keep_ratio)
            except TypeError:
                what = 'each candidate size' if random_size else 'with random_size False it'
                raise TypeError(f'BatchRandomResize.target_size {target_size!r}: {what} must be '
                                f'an int or [h, w] of positive ints (bad: {size!r})') from None
        self.target_size = target_size
        self.keep_ratio = keep_ratio
        self.interp = interp
        self.random_size = random_size
        self.random_interp = random_interp

    def __call__(self, samples):
        if self.random_size:
            target_size = self.target_size[np.random.choice(len(self.target_size))]
        else:
            target_size = self.target_size
        interp = np.random.choice(self.INTERPS) if self.random_interp else self.interp
        resize = Resize(target_size, keep_ratio=self.keep_ratio, interp=int(interp))
        return [resize.apply(s) for s in samples]


@register
@serializable
class PadGT(BaseOperator):
    """Pad every sample's boxes to the batch's largest box count ``n_max``.

    ``gt_bbox`` -> ``[n_max, 4]`` float32, ``gt_class`` -> ``[n_max, 1]`` int32 and, when present,
    ``is_crowd`` / ``difficult`` -> ``[n_max, 1]`` int32, ``gt_score`` -> ``[n_max, 1]`` float32,
    all zero-padded after the real rows. With ``return_gt_mask`` each sample gets
    ``pad_gt_mask [n_max, 1]`` float32: 1 for real boxes, 0 for padding. When no sample has a
    box (``n_max == 0``) the fields keep their ``[0, k]`` shapes and the mask is ``[0, 1]``
    (PaddleDetection ``batch_operators.py`` PadGT).

    Raises:
        KeyError: a sample without ``gt_bbox`` or ``gt_class``, naming its ``im_id``.
    """

    _FIELDS = (('gt_bbox', 4, np.float32), ('gt_class', 1, np.int32),
               ('gt_score', 1, np.float32), ('is_crowd', 1, np.int32), ('difficult', 1, np.int32))

    def __init__(self, return_gt_mask=True):
        self.return_gt_mask = return_gt_mask

    def __call__(self, samples):
        for s in samples:
            if 'gt_bbox' not in s or 'gt_class' not in s:
                raise KeyError(f'PadGT: sample im_id {np.asarray(s.get("im_id", "?")).tolist()} '
                               f'has no gt_bbox / gt_class (list them in the dataset\'s '
                               f'data_fields, or remove PadGT from this reader)')
        n_max = max(len(s['gt_bbox']) for s in samples)
        for sample in samples:
            n = len(sample['gt_bbox'])
            if self.return_gt_mask:
                mask = np.zeros((n_max, 1), dtype=np.float32)
                mask[:n] = 1.
                sample['pad_gt_mask'] = mask
            if n_max == 0:
                continue
            for key, width, dtype in self._FIELDS:
                if key in sample or key in ('gt_bbox', 'gt_class'):
                    padded = np.zeros((n_max, width), dtype=dtype)
                    if n > 0:
                        padded[:n] = sample[key]
                    sample[key] = padded
        return samples


@register
@serializable
class PadBatch(BaseOperator):
    """Zero-pad the CHW images of a batch to a common size (right and bottom).

    The size is the batch's largest ``h`` and ``w``, rounded up to a multiple of
    ``pad_to_stride`` when it is > 0. Images become float32 ``[c, H, W]``; boxes, ``im_shape`` and
    ``scale_factor`` are unchanged since the origin does not move (PaddleDetection PadBatch).
    """

    def __init__(self, pad_to_stride=0):
        self.pad_to_stride = pad_to_stride

    def __call__(self, samples):
        max_shape = np.array([s['image'].shape for s in samples]).max(axis=0)
        stride = self.pad_to_stride
        if stride > 0:
            max_shape[1:] = np.ceil(max_shape[1:] / stride).astype(int) * stride
        for sample in samples:
            im = sample['image']
            c, h, w = im.shape
            padded = np.zeros((c, max_shape[1], max_shape[2]), dtype=np.float32)
            padded[:, :h, :w] = im
            sample['image'] = padded
        return samples
