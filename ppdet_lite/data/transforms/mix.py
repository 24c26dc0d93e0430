"""Mixing transforms: several records become one training sample.

The dataset hands a *list* of records to the sample transforms while a mix is active
(``mixup_epoch`` / ``mosaic_epoch`` of the reader, see ``DetDataset``); the ops before the mixing
op (Decode, ...) run on each record, the mixing op returns one sample dict, and the ops after it
see that dict.
"""

import copy
import math
import random

import cv2
import numpy as np

from ppdet_lite.core.workspace import register, serializable

from .base import BaseOperator

__all__ = ['Mixup', 'Mosaic']


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


@register
@serializable
class Mosaic(BaseOperator):
    """Four images on a 2x canvas, a random affine warp, then an optional copy-paste mixup
    (YOLOX's mosaic, as PaddleDetection 2.6 ``operators.py`` Mosaic implements it).

    Takes the five records the dataset hands over while ``mosaic_epoch`` lasts (four for the
    mosaic, one for the mixup) and returns one sample of ``input_dim = [h, w]``:

    1. with probability ``1 - prob`` the first record is returned as it is;
    2. a centre ``(xc, yc)`` uniform in ``[0.5, 1.5) x [w, h]`` of a ``2h x 2w`` canvas (grey 114);
       each image is resized by ``min(h / h0, w / w0)`` and placed with a corner at the centre
       (top-left, top-right, bottom-left, bottom-right), boxes scaled and shifted alike, then
       clipped to the canvas (or, with ``remove_outside_box``, boxes fully outside dropped);
    3. the canvas is warped to ``h x w`` by ``M = [R + shear] + translation``: rotation ``degrees``
       and scale ``scale`` about the origin, the same shear angle on both axes, the same
       translate fraction for x (``* w``) and y (``* h``); a box becomes the bounding box of its
       four warped corners, clipped to the image;
    4. with ``enable_mixup`` and probability ``mixup_prob``, the fifth image (fitted into
       ``h x w``, jittered by ``mixup_scale``, flipped half the time, randomly cropped) is
       blended 50/50 with the result and its boxes are added.

    Output: ``image`` uint8 ``[h, w, 3]``, ``gt_bbox`` float32, ``gt_class`` / ``is_crowd`` /
    ``difficult`` int32 aligned with it, ``im_shape = [h, w]``. Unlike PaddleDetection, boxes left
    with zero width or height are dropped, no placeholder box is added when there is none, the
    class fields keep their integer dtype and non-square ``input_dim`` warps to ``h x w`` (not
    ``w x h``). Draws come from Python ``random`` (and ``np.random`` for ``prob``) in
    PaddleDetection's order.

    Raises:
        ValueError: a list that is not of five samples.
    """

    _FIELDS = ('gt_class', 'is_crowd', 'difficult')

    def __init__(self, prob=1.0, input_dim=[640, 640], degrees=[-10, 10], translate=[-0.1, 0.1],
                 scale=[0.1, 2], shear=[-2, 2], enable_mixup=True, mixup_prob=1.0,
                 mixup_scale=[0.5, 1.5], remove_outside_box=False):
        if isinstance(input_dim, int):
            input_dim = [input_dim, input_dim]
        self.prob = prob
        self.input_dim = list(input_dim)
        self.degrees = degrees
        self.translate = translate
        self.scale = scale
        self.shear = shear
        self.enable_mixup = enable_mixup
        self.mixup_prob = mixup_prob
        self.mixup_scale = mixup_scale
        self.remove_outside_box = remove_outside_box

    def __call__(self, sample):
        if isinstance(sample, dict):
            return sample
        if len(sample) != 5:
            raise ValueError(f'Mosaic needs 5 samples (4 for the mosaic, 1 for the mixup), got '
                             f'{len(sample)}')
        if np.random.uniform(0., 1.) > self.prob:
            return sample[0]
        fields = [k for k in self._FIELDS if k in sample[0]]
        image, boxes, labels = self._mosaic(sample[:4], fields)
        image, boxes = self._random_affine(image, boxes)
        if self.enable_mixup and random.random() < self.mixup_prob:
            image, boxes, labels = self._copy_paste(image, boxes, labels, sample[4], fields)
        keep = np.nonzero((boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1]))[0]
        result = sample[0]
        result['image'] = image.astype(np.uint8)
        result['h'], result['w'] = float(image.shape[0]), float(image.shape[1])
        result['im_shape'] = np.array(image.shape[:2], dtype=np.float32)
        result['gt_bbox'] = boxes[keep].astype(np.float32)
        for key in fields:
            result[key] = labels[key][keep]
        return result

    @staticmethod
    def _corner_coords(idx, xc, yc, w, h, input_h, input_w):
        """``(canvas window, image window)`` of image ``idx`` (0 TL, 1 TR, 2 BL, 3 BR)."""
        if idx == 0:
            x1, y1, x2, y2 = max(xc - w, 0), max(yc - h, 0), xc, yc
            return (x1, y1, x2, y2), (w - (x2 - x1), h - (y2 - y1), w, h)
        if idx == 1:
            x1, y1, x2, y2 = xc, max(yc - h, 0), min(xc + w, input_w * 2), yc
            return (x1, y1, x2, y2), (0, h - (y2 - y1), min(w, x2 - x1), h)
        if idx == 2:
            x1, y1, x2, y2 = max(xc - w, 0), yc, xc, min(input_h * 2, yc + h)
            return (x1, y1, x2, y2), (w - (x2 - x1), 0, w, min(y2 - y1, h))
        x1, y1, x2, y2 = xc, yc, min(xc + w, input_w * 2), min(input_h * 2, yc + h)
        return (x1, y1, x2, y2), (0, 0, min(w, x2 - x1), min(y2 - y1, h))

    def _mosaic(self, samples, fields):
        input_h, input_w = self.input_dim
        yc = int(random.uniform(0.5 * input_h, 1.5 * input_h))
        xc = int(random.uniform(0.5 * input_w, 1.5 * input_w))
        canvas = np.full((input_h * 2, input_w * 2, 3), 114, dtype=np.uint8)
        boxes, labels = [], {k: [] for k in fields}
        for idx, sp in enumerate(samples):
            h0, w0 = sp['image'].shape[:2]
            scale = min(input_h / h0, input_w / w0)
            img = cv2.resize(sp['image'], (int(w0 * scale), int(h0 * scale)),
                             interpolation=cv2.INTER_LINEAR)
            h, w = img.shape[:2]
            (lx1, ly1, lx2, ly2), (sx1, sy1, sx2, sy2) = self._corner_coords(
                idx, xc, yc, w, h, input_h, input_w)
            canvas[ly1:ly2, lx1:lx2] = img[sy1:sy2, sx1:sx2]
            shift = np.array([lx1 - sx1, ly1 - sy1] * 2, dtype=np.float32)
            boxes.append(sp['gt_bbox'].reshape(-1, 4).astype(np.float32) * scale + shift)
            for key in fields:
                labels[key].append(_per_box(sp, key))
        boxes = np.concatenate(boxes, axis=0)
        labels = {k: np.concatenate(v, axis=0) for k, v in labels.items()}
        if self.remove_outside_box:
            inside = ((boxes[:, 0] < 2 * input_w) & (boxes[:, 2] > 0)
                      & (boxes[:, 1] < 2 * input_h) & (boxes[:, 3] > 0))
            boxes, labels = boxes[inside], {k: v[inside] for k, v in labels.items()}
        else:
            boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, 2 * input_w)
            boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, 2 * input_h)
        return canvas, boxes, labels

    def _random_affine(self, image, boxes):
        input_h, input_w = self.input_dim
        degree = random.uniform(*self.degrees)
        scale = random.uniform(*self.scale)
        if not scale > 0:
            raise ValueError(f'Mosaic.scale must be positive, drew {scale}')
        rotation = cv2.getRotationMatrix2D(angle=degree, center=(0, 0), scale=scale)
        shear = math.tan(random.uniform(*self.shear) * math.pi / 180)
        matrix = np.ones([2, 3])
        matrix[0] = rotation[0] + shear * rotation[1]
        matrix[1] = rotation[1] + shear * rotation[0]
        translate = random.uniform(*self.translate)
        matrix[0, 2] = translate * input_w
        matrix[1, 2] = translate * input_h
        image = cv2.warpAffine(image, matrix, dsize=(input_w, input_h),
                               borderValue=(114, 114, 114))
        if len(boxes):
            # corners x1y1, x2y2, x1y2, x2y1 of every box, warped
            corners = np.ones((4 * len(boxes), 3))
            corners[:, :2] = boxes[:, [0, 1, 2, 3, 0, 3, 2, 1]].reshape(-1, 2)
            corners = (corners @ matrix.T).reshape(len(boxes), 8)
            xs, ys = corners[:, 0::2], corners[:, 1::2]
            boxes = np.stack([xs.min(1), ys.min(1), xs.max(1), ys.max(1)], axis=1)
            boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, input_w)
            boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, input_h)
        # boxes stay float32 between the steps, as in PaddleDetection
        return image, boxes.astype(np.float32)

    def _copy_paste(self, image, boxes, labels, other, fields):
        input_h, input_w = self.input_dim
        jitter = random.uniform(*self.mixup_scale)
        flip = random.uniform(0, 1) > 0.5
        src = other['image']
        ratio = min(input_h / src.shape[0], input_w / src.shape[1])
        fitted_h, fitted_w = int(src.shape[0] * ratio), int(src.shape[1] * ratio)
        pasted = np.full((input_h, input_w, 3), 114, dtype=np.uint8)
        pasted[:fitted_h, :fitted_w] = cv2.resize(src, (fitted_w, fitted_h),
                                                  interpolation=cv2.INTER_LINEAR)
        pasted = cv2.resize(pasted, (int(input_w * jitter), int(input_h * jitter)))
        ratio *= jitter
        if flip:
            pasted = pasted[:, ::-1, :]
        h, w = pasted.shape[:2]
        target_h, target_w = image.shape[:2]
        padded = np.zeros((max(h, target_h), max(w, target_w), 3), dtype=np.uint8)
        padded[:h, :w] = pasted
        y_off = random.randint(0, padded.shape[0] - target_h - 1) \
            if padded.shape[0] > target_h else 0
        x_off = random.randint(0, padded.shape[1] - target_w - 1) \
            if padded.shape[1] > target_w else 0
        cropped = padded[y_off:y_off + target_h, x_off:x_off + target_w]

        new = other['gt_bbox'].reshape(-1, 4).astype(np.float32) * ratio
        new[:, 0::2] = np.clip(new[:, 0::2], 0, w)
        new[:, 1::2] = np.clip(new[:, 1::2], 0, h)
        if flip:
            new[:, 0::2] = w - new[:, 2::-2]
        new -= np.array([x_off, y_off, x_off, y_off], dtype=np.float32)
        new_labels = {k: _per_box(other, k) for k in fields}
        if self.remove_outside_box:
            inside = ((new[:, 0] < target_w) & (new[:, 2] > 0)
                      & (new[:, 1] < target_h) & (new[:, 3] > 0))
            new, new_labels = new[inside], {k: v[inside] for k, v in new_labels.items()}
        else:
            new[:, 0::2] = np.clip(new[:, 0::2], 0, target_w)
            new[:, 1::2] = np.clip(new[:, 1::2], 0, target_h)
        image = 0.5 * image.astype(np.float32) + 0.5 * cropped.astype(np.float32)
        boxes = np.concatenate([boxes, new], axis=0)
        labels = {k: np.concatenate([labels[k], new_labels[k]], axis=0) for k in fields}
        return image.astype(np.uint8), boxes, labels


def _per_box(sample, key):
    """``sample[key]`` as ``[n, 1]`` int32 (zeros when the sample lacks it)."""
    n = len(sample['gt_bbox'])
    if key not in sample:
        return np.zeros((n, 1), np.int32)
    return np.asarray(sample[key]).reshape(n, 1).astype(np.int32)
