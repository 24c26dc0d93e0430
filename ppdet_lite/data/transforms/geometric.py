"""Geometric transforms: the image moves and the boxes move with it.

Boxes are ``gt_bbox [n, 4]`` float32 x1y1x2y2 in the current image's pixels; per-box fields
(``gt_class``, ``is_crowd``, ``difficult``, ``gt_score``) stay row-aligned with them. Formulas,
defaults and the order of random draws are those of ``ppdet/data/transform/operators.py`` (2.6).
Besides PaddleDetection, ``RandomExpand`` and ``RandomCrop`` also keep ``im_shape`` equal to the
new image size, so ``im_shape`` always describes the image that travels with the sample.
"""

from numbers import Integral, Number

import cv2
import numpy as np

from ppdet_lite.core.workspace import register, serializable

from .base import BOX_ALIGNED_FIELDS, BaseOperator
from .box_ops import crop_boxes, iou_matrix, take_boxes

__all__ = ['RandomFlip', 'Resize', 'RandomExpand', 'RandomCrop']


def _has_boxes(sample):
    return 'gt_bbox' in sample and len(sample['gt_bbox']) > 0


@register
@serializable
class RandomFlip(BaseOperator):
    """Mirror the image left-right with probability ``prob``.

    A box ``[x1, y1, x2, y2]`` in an image of width ``w`` becomes ``[w - x2, y1, w - x1, y2]``;
    a flipped sample gets ``flipped = True``.

    Raises:
        TypeError: ``prob`` is not a number.
    """

    def __init__(self, prob=0.5):
        if isinstance(prob, bool) or not isinstance(prob, Number):
            raise TypeError(f'RandomFlip.prob must be a number in [0, 1], got {prob!r}')
        self.prob = float(prob)

    def apply(self, sample):
        if np.random.uniform(0, 1) < self.prob:
            im = sample['image']
            width = im.shape[1]
            sample['image'] = im[:, ::-1, :]
            if _has_boxes(sample):
                box = sample['gt_bbox']
                flipped = box.copy()
                flipped[:, 0] = width - box[:, 2]
                flipped[:, 2] = width - box[:, 0]
                sample['gt_bbox'] = flipped
            sample['flipped'] = True
        return sample


@register
@serializable
class Resize(BaseOperator):
    """Resize the image to ``target_size`` and scale the boxes.

    ``keep_ratio=False``: the image becomes exactly ``target_size = [h, w]`` (an int means square),
    ``scale_y = h / im_h``, ``scale_x = w / im_w``. ``keep_ratio=True``: one scale
    ``s = min(min(target) / min(im_h, im_w), max(target) / max(im_h, im_w))`` for both axes.
    The image is resized with ``cv2.resize(fx=scale_x, fy=scale_y, interpolation=interp)`` and
    becomes float32; boxes are multiplied by the scales and clipped to the resized image;
    ``im_shape = [im_h * scale_y, im_w * scale_x]`` (float32, not rounded, as PaddleDetection
    does: with ``keep_ratio`` it may differ from the pixel size by less than 1, and
    ``im_shape / scale_factor`` stays the exact original size);
    ``scale_factor`` (y, x) is multiplied by ``[scale_y, scale_x]``.

    Args:
        target_size (int | list[int]): ``[h, w]`` in pixels.
        keep_ratio (bool): keep the aspect ratio (see above).
        interp (int): OpenCV interpolation flag (1 = ``cv2.INTER_LINEAR``).
    Raises:
        TypeError: ``target_size`` is neither an int nor a list of two ints.
    """

    def __init__(self, target_size, keep_ratio, interp=cv2.INTER_LINEAR):
        if isinstance(target_size, Integral) and not isinstance(target_size, bool):
            target_size = [target_size, target_size]
        if not (isinstance(target_size, (list, tuple)) and len(target_size) == 2
                and all(isinstance(t, Integral) and t > 0 for t in target_size)):
            raise TypeError(f'Resize.target_size must be an int or [h, w] of positive ints, '
                            f'got {target_size!r}')
        self.target_size = list(target_size)
        self.keep_ratio = keep_ratio
        self.interp = interp

    def scales(self, im_h, im_w):
        """``(scale_y, scale_x, resize_h, resize_w)`` for an ``im_h x im_w`` image."""
        if self.keep_ratio:
            scale = min(min(self.target_size) / min(im_h, im_w),
                        max(self.target_size) / max(im_h, im_w))
            return scale, scale, scale * float(im_h), scale * float(im_w)
        resize_h, resize_w = self.target_size
        return resize_h / im_h, resize_w / im_w, resize_h, resize_w

    def apply(self, sample):
        im = sample['image']
        if not isinstance(im, np.ndarray):
            raise TypeError(f'Resize: sample["image"] must be a numpy array, got '
                            f'{type(im).__name__}')
        scale_y, scale_x, resize_h, resize_w = self.scales(*im.shape[:2])
        im = cv2.resize(im, None, None, fx=scale_x, fy=scale_y, interpolation=self.interp)
        sample['image'] = im.astype(np.float32)
        sample['im_shape'] = np.asarray([resize_h, resize_w], dtype=np.float32)
        prev = sample.get('scale_factor', [1., 1.])
        sample['scale_factor'] = np.asarray([prev[0] * scale_y, prev[1] * scale_x],
                                            dtype=np.float32)
        if _has_boxes(sample):
            box = sample['gt_bbox'].copy()
            # clipped to the pixels that exist (PaddleDetection clips to the unrounded size)
            box[:, 0::2] = np.clip(box[:, 0::2] * scale_x, 0, im.shape[1])
            box[:, 1::2] = np.clip(box[:, 1::2] * scale_y, 0, im.shape[0])
            sample['gt_bbox'] = box
        return sample


@register
@serializable
class RandomExpand(BaseOperator):
    """Place the image on a larger canvas filled with ``fill_value`` (zoom-out augmentation).

    With probability ``1 - prob`` (PaddleDetection draws ``u < prob`` to *skip*): ``r`` uniform in
    ``[1, ratio)``, canvas ``int(h * r) x int(w * r)``, offsets ``y`` in ``[0, H - h)`` and ``x`` in
    ``[0, W - w)``; the image is pasted at ``(x, y)`` and boxes shift by ``[x, y, x, y]``. The
    result is float32 ``[H, W, 3]``; ``im_shape`` becomes ``[H, W]``. No change when the canvas
    would not be larger in both dimensions.

    Args:
        ratio (float): maximum side ratio canvas / image (> 1.01).
        prob (float): probability of *not* expanding.
        fill_value (float | list[float]): canvas colour, in the image's channel order (RGB).
    Raises:
        ValueError: ``ratio <= 1.01`` or a ``fill_value`` that is not a number or 3 numbers.
    """

    def __init__(self, ratio=4., prob=0.5, fill_value=(127.5, 127.5, 127.5)):
        if not ratio > 1.01:
            raise ValueError(f'RandomExpand.ratio must be larger than 1.01, got {ratio!r}')
        if isinstance(fill_value, Number):
            fill_value = (fill_value,) * 3
        if not (isinstance(fill_value, (list, tuple)) and len(fill_value) == 3):
            raise ValueError(f'RandomExpand.fill_value must be a number or 3 numbers, got '
                             f'{fill_value!r}')
        self.ratio = ratio
        self.prob = prob
        self.fill_value = tuple(fill_value)

    def apply(self, sample):
        if np.random.uniform(0., 1.) < self.prob:
            return sample
        im = sample['image']
        height, width = im.shape[:2]
        ratio = np.random.uniform(1., self.ratio)
        h, w = int(height * ratio), int(width * ratio)
        if not (h > height and w > width):
            return sample
        y = np.random.randint(0, h - height)
        x = np.random.randint(0, w - width)
        canvas = np.empty((h, w, 3), dtype=np.float32)
        canvas[...] = np.array(self.fill_value, dtype=np.float32)
        canvas[y:y + height, x:x + width, :] = im
        sample['image'] = canvas
        sample['im_shape'] = np.array([h, w], dtype=np.float32)
        if _has_boxes(sample):
            sample['gt_bbox'] = sample['gt_bbox'] + np.array([x, y, x, y], dtype=np.float32)
        return sample


@register
@serializable
class RandomCrop(BaseOperator):
    """Random crop that keeps at least one box (SSD-style IoU-constrained sampling).

    The candidate thresholds (plus ``'no_crop'`` when ``allow_no_crop``) are shuffled and tried
    in turn; for each, up to ``num_attempts`` windows are drawn: ``scale`` uniform in ``scaling``,
    aspect ``a`` uniform in ``[max(min_ar, scale**2), min(max_ar, scale**-2)]``, window
    ``int(h * scale / sqrt(a)) x int(w * scale * sqrt(a))`` at a uniform integer position. A window
    is accepted when the best IoU of a box with it reaches the threshold (every box's IoU with
    ``cover_all_box``) and at least one box has its centre inside it. The image is cropped to the
    window; boxes whose centre lies outside are dropped with their per-box fields; the others are
    clipped to the window and shifted to its origin; ``im_shape`` becomes the window size.
    Samples without boxes are returned unchanged, as are those where no window is accepted
    (PaddleDetection ``RandomCrop``, with ``aspect_ratio=None`` drawing both sides' scales
    independently and rejecting windows with h/w outside [0.5, 2]).

    Args:
        aspect_ratio (list[float] | None): ``[min, max]`` window aspect ratio.
        thresholds (list[float]): minimum IoU candidates.
        scaling (list[float]): ``[min, max]`` window side scale relative to the image.
        num_attempts (int): windows drawn per threshold.
        allow_no_crop (bool): include "leave the image as it is" among the candidates.
        cover_all_box (bool): require every box's IoU with the window to reach the threshold.
    """

    def __init__(self, aspect_ratio=[.5, 2.], thresholds=[.0, .1, .3, .5, .7, .9],
                 scaling=[.3, 1.], num_attempts=50, allow_no_crop=True, cover_all_box=False):
        self.aspect_ratio = aspect_ratio
        self.thresholds = list(thresholds)
        self.scaling = list(scaling)
        self.num_attempts = num_attempts
        self.allow_no_crop = allow_no_crop
        self.cover_all_box = cover_all_box

    def _draw_window(self, h, w):
        """One candidate window ``[x1, y1, x2, y2]`` (ints), or None when rejected by shape."""
        scale = np.random.uniform(*self.scaling)
        if self.aspect_ratio is not None:
            min_ar, max_ar = self.aspect_ratio
            aspect_ratio = np.random.uniform(max(min_ar, scale ** 2), min(max_ar, scale ** -2))
            h_scale = scale / np.sqrt(aspect_ratio)
            w_scale = scale * np.sqrt(aspect_ratio)
        else:
            h_scale = np.random.uniform(*self.scaling)
            w_scale = np.random.uniform(*self.scaling)
        crop_h, crop_w = h * h_scale, w * w_scale
        if self.aspect_ratio is None and not 0.5 <= crop_h / crop_w <= 2.0:
            return None
        crop_h, crop_w = int(crop_h), int(crop_w)
        # a full-size side leaves a single position (PaddleDetection's randint(0, 0) would fail)
        crop_y = np.random.randint(0, max(h - crop_h, 1))
        crop_x = np.random.randint(0, max(w - crop_w, 1))
        return [crop_x, crop_y, crop_x + crop_w, crop_y + crop_h]

    def apply(self, sample):
        if not _has_boxes(sample):
            return sample
        h, w = sample['image'].shape[:2]
        gt_bbox = sample['gt_bbox']
        thresholds = list(self.thresholds)
        if self.allow_no_crop:
            thresholds.append('no_crop')
        np.random.shuffle(thresholds)
        for thresh in thresholds:
            if thresh == 'no_crop':
                return sample
            for _ in range(self.num_attempts):
                window = self._draw_window(h, w)
                if window is None:
                    continue
                iou = iou_matrix(gt_bbox, np.array([window], dtype=np.float32))
                if iou.max() < thresh or (self.cover_all_box and iou.min() < thresh):
                    continue
                cropped, keep = crop_boxes(gt_bbox, np.array(window, dtype=np.float32))
                if keep.size > 0:
                    return self._crop(sample, window, cropped, keep)
        return sample

    @staticmethod
    def _crop(sample, window, cropped, keep):
        x1, y1, x2, y2 = window
        sample['image'] = sample['image'][y1:y2, x1:x2, :]
        sample['im_shape'] = np.array([y2 - y1, x2 - x1], dtype=np.float32)
        sample['gt_bbox'] = cropped
        return take_boxes(sample, keep, BOX_ALIGNED_FIELDS)
