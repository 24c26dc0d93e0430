"""Inference preprocessing driven by an exported model's ``infer_cfg.yml``.

The deploy counterpart of ``ppdet_lite``'s TestReader transforms (PaddleDetection's
``deploy/python/preprocess.py``), standalone: numpy, OpenCV and PyYAML only, so a deployment needs
neither ``ppdet_lite`` nor Paddle for it. Each op applies the same rule, in the same float32
arithmetic, as the transform ``tools/export_model.py`` read it from, so an image gives the same
network input here and in ``tools/infer.py`` (``tests/test_deploy_paddle.py`` checks it):

* ``Resize`` (ppdet_lite ``Resize``): ``keep_ratio: false`` resizes to exactly ``target_size
  [h, w]``; ``keep_ratio: true`` uses one scale ``min(min(target) / min(h, w), max(target) /
  max(h, w))``; ``cv2.resize(fx=scale_x, fy=scale_y, interpolation=interp)`` on the uint8 image.
* ``NormalizeImage``: ``(image / 255 - mean) / std`` (``is_scale``), as one float32 multiply-add.
* ``Permute``: HWC -> CHW.
* ``PadStride``: zero-pad CHW bottom/right to multiples of ``stride`` (PaddleDetection's deploy op
  for a reader's ``PadBatch``).

The model inputs a ``Preprocessor`` returns (PaddleDetection's names):

* ``image`` ``[B, 3, H, W]`` float32: the normalised, resized image (RGB channel order).
* ``im_shape`` ``[B, 2]`` float32: (h, w) of the resized image before padding, in pixels.
* ``scale_factor`` ``[B, 2]`` float32: (scale_y, scale_x) = resized size / original size; the
  model divides its boxes by it to return original-image pixels.
"""

import os

import cv2
import numpy as np
import yaml

__all__ = ['IMAGE_EXTENSIONS', 'ImageReadError', 'read_image', 'Resize', 'NormalizeImage', 'Permute', 'PadStride',
           'Preprocessor', 'OPS']


# what a directory run picks up (any case): ppdet_lite's IMAGE_EXTENSIONS (tools/infer.py)
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp')


class ImageReadError(ValueError):
    """An image file that is missing, unreadable or not an image; the message names it."""


def read_image(path):
    """``path`` -> uint8 RGB ``[h, w, 3]`` (OpenCV decoding, as ppdet_lite's ``Decode``).

    Raises:
        ImageReadError: the file cannot be read or decoded (message names the file).
    """
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as e:
        raise ImageReadError(f'cannot read image file {path}: {e}') from e
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if bgr is None:
        raise ImageReadError(f'cannot decode image {path}: not an image OpenCV can read '
                             f'({data.size} bytes)')
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


class Resize:
    """Args: target_size ([h, w] or int, pixels), keep_ratio (bool), interp (OpenCV flag)."""

    def __init__(self, target_size, keep_ratio, interp=cv2.INTER_LINEAR):
        if isinstance(target_size, int):
            target_size = [target_size, target_size]
        if not (isinstance(target_size, (list, tuple)) and len(target_size) == 2
                and all(isinstance(t, int) and t > 0 for t in target_size)):
            raise ValueError(f'Resize: target_size must be [h, w] positive ints, got '
                             f'{target_size!r}')
        self.target_size = list(target_size)
        self.keep_ratio = bool(keep_ratio)
        self.interp = int(interp)

    def __call__(self, im, im_info):
        im_h, im_w = im.shape[:2]
        if self.keep_ratio:
            scale_y = scale_x = min(min(self.target_size) / min(im_h, im_w),
                                    max(self.target_size) / max(im_h, im_w))
            resize_h, resize_w = scale_y * float(im_h), scale_x * float(im_w)
        else:
            resize_h, resize_w = self.target_size
            scale_y, scale_x = resize_h / im_h, resize_w / im_w
        im = cv2.resize(im, None, None, fx=scale_x, fy=scale_y, interpolation=self.interp)
        im_info['im_shape'] = np.asarray([resize_h, resize_w], dtype=np.float32)
        prev = im_info['scale_factor']
        im_info['scale_factor'] = np.asarray([prev[0] * scale_y, prev[1] * scale_x],
                                             dtype=np.float32)
        return im.astype(np.float32), im_info


class NormalizeImage:
    """Args: mean, std (per channel), is_scale (divide by 255 first), norm_type ('mean_std' or
    'none': scale only)."""

    def __init__(self, mean, std, is_scale=True, norm_type='mean_std'):
        if norm_type not in ('mean_std', 'none'):
            raise ValueError(f"NormalizeImage: norm_type must be 'mean_std' or 'none', got "
                             f'{norm_type!r}')
        if 0 in list(std):
            raise ValueError(f'NormalizeImage: std {std!r} contains 0')
        # x * scale + offset == (x / 255 - mean) / std; the same float32 constants as ppdet_lite
        scale = np.full(len(std), 1. / 255. if is_scale else 1.)
        self._offset = None
        if norm_type == 'mean_std':
            scale /= np.array(std)
            self._offset = (-np.array(mean) / np.array(std)).astype(np.float32)
        self._scale = scale.astype(np.float32)

    def __call__(self, im, im_info):
        im = im.astype(np.float32)
        im *= self._scale
        if self._offset is not None:
            im += self._offset
        return im, im_info


class Permute:
    """HWC -> CHW."""

    def __call__(self, im, im_info):
        return im.transpose((2, 0, 1)), im_info


class PadStride:
    """Zero-pad a CHW image bottom/right to multiples of ``stride`` (0: no padding)."""

    def __init__(self, stride=0):
        self.stride = int(stride)

    def __call__(self, im, im_info):
        if self.stride <= 0:
            return im, im_info
        c, h, w = im.shape
        pad_h = int(np.ceil(h / self.stride) * self.stride)
        pad_w = int(np.ceil(w / self.stride) * self.stride)
        padded = np.zeros((c, pad_h, pad_w), dtype=np.float32)
        padded[:, :h, :w] = im
        return padded, im_info


OPS = {'Resize': Resize, 'NormalizeImage': NormalizeImage, 'Permute': Permute,
       'PadStride': PadStride}


class Preprocessor:
    """The ``Preprocess`` list of an ``infer_cfg.yml``, applied to images.

    Args:
        ops (list[dict]): ``[{type: Resize, target_size: [h, w], ...}, ...]`` in order.
    Raises:
        ValueError: an op type not in ``OPS`` or an argument it refuses (names the entry).
    """

    def __init__(self, ops):
        self.ops = []
        for i, spec in enumerate(ops):
            spec = dict(spec)
            kind = spec.pop('type', None)
            if kind not in OPS:
                raise ValueError(f'Preprocess[{i}]: unknown op type {kind!r} (known: '
                                 f'{", ".join(OPS)})')
            try:
                self.ops.append(OPS[kind](**spec))
            except TypeError as e:
                raise ValueError(f'Preprocess[{i}] ({kind}): {e}') from e

    @classmethod
    def from_infer_cfg(cls, path_or_dict):
        """From an ``infer_cfg.yml`` path (or an export directory holding one) or its dict."""
        cfg = path_or_dict
        if not isinstance(cfg, dict):
            path = os.fspath(cfg)
            if os.path.isdir(path):
                path = os.path.join(path, 'infer_cfg.yml')
            with open(path) as f:
                cfg = yaml.safe_load(f)
            if not isinstance(cfg, dict) or 'Preprocess' not in cfg:
                raise ValueError(f'{path}: no Preprocess list (is it an infer_cfg.yml?)')
        return cls(cfg['Preprocess'])

    def process(self, image):
        """One image -> ``(image [3, H, W] float32, im_info)``, ``im_info`` holding ``im_shape``
        and ``scale_factor`` ``[2]`` float32.

        ``image``: a file path, or a uint8 ``[h, w, 3]`` array in OpenCV's BGR order (what
        ``cv2.imread`` and ``cv2.VideoCapture`` return). Raises ImageReadError for a bad file.
        """
        if isinstance(image, np.ndarray):
            if image.ndim != 3 or image.shape[2] != 3:
                raise ValueError(f'Preprocessor: an image array must be [h, w, 3] BGR, got shape '
                                 f'{image.shape}')
            im = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        else:
            im = read_image(image)
        h, w = im.shape[:2]
        im_info = {'im_shape': np.asarray([h, w], dtype=np.float32),
                   'scale_factor': np.asarray([1., 1.], dtype=np.float32)}
        for op in self.ops:
            im, im_info = op(im, im_info)
        return im, im_info

    def __call__(self, image):
        """One image (path or BGR array) -> model inputs with a batch axis of 1: ``image
        [1, 3, H, W]``, ``im_shape [1, 2]``, ``scale_factor [1, 2]``, all float32."""
        return self.batch([image])

    def batch(self, images):
        """Several images -> model inputs ``image [B, 3, H, W]`` (zero-padded bottom/right to
        the largest, as PaddleDetection's deploy batching), ``im_shape [B, 2]``,
        ``scale_factor [B, 2]``."""
        processed = [self.process(image) for image in images]
        if not processed:
            raise ValueError('Preprocessor.batch: no image given')
        shapes = np.array([im.shape for im, _ in processed])
        c, max_h, max_w = shapes.max(axis=0)
        batch = np.zeros((len(processed), c, max_h, max_w), dtype=np.float32)
        for k, (im, _) in enumerate(processed):
            batch[k, :, :im.shape[1], :im.shape[2]] = im
        return {'image': batch,
                'im_shape': np.stack([info['im_shape'] for _, info in processed]),
                'scale_factor': np.stack([info['scale_factor'] for _, info in processed])}
