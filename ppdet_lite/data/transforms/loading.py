"""Loading: turning a record's file into an image (PaddleDetection's ``Decode``)."""

import cv2
import numpy as np

from ppdet_lite.core.workspace import register, serializable
from ppdet_lite.utils.logger import get_logger

from .base import BaseOperator

__all__ = ['ImageDecodeError', 'Decode']

logger = get_logger(__name__)


class ImageDecodeError(ValueError):
    """An image file that cannot be read or decoded; the message names the file.

    Datasets catch it to skip the image with a warning during training.
    """


@register
@serializable
class Decode(BaseOperator):
    """Read ``im_file`` (or decode ``image`` bytes) into an RGB image.

    Sets ``image`` (uint8 ``[h, w, 3]`` RGB), ``h`` and ``w`` (the decoded size, int; an annotation
    size that disagrees is overwritten with a warning, as PaddleDetection does), ``im_shape``
    ``[h, w]`` float32 and ``scale_factor`` ``[1., 1.]`` float32, and removes ``im_file`` once read
    (as ``ppdet/data/transform/operators.py`` Decode does, keeping strings out of batches).
    An ``image`` that is already an ``[h, w, 3]`` array is kept as it is.

    Raises:
        ImageDecodeError: the file is missing or unreadable, or its bytes are not an image
            OpenCV can decode; the message names the file.
    """

    def apply(self, sample):
        source = sample.get('im_file', '<in-memory image>')
        image = sample.get('image')
        if image is None:
            try:
                with open(sample['im_file'], 'rb') as f:
                    image = f.read()
            except OSError as e:
                raise ImageDecodeError(f'cannot read image file {source}: {e}') from e
            sample.pop('im_file')
        if isinstance(image, (bytes, bytearray)):
            image = _decode_bytes(image, source)
        elif not (isinstance(image, np.ndarray) and image.ndim == 3):
            raise ImageDecodeError(f'{source}: sample["image"] must be encoded bytes or an '
                                   f'[h, w, 3] array, got {type(image).__name__}')
        h, w = image.shape[:2]
        for key, actual in (('h', h), ('w', w)):
            if key in sample and sample[key] != actual:
                logger.warning(f'{source}: annotation {key}={sample[key]} differs from the '
                               f'decoded image ({actual}); using {actual}')
            sample[key] = actual
        sample['image'] = image
        sample['im_shape'] = np.array([h, w], dtype=np.float32)
        sample['scale_factor'] = np.array([1., 1.], dtype=np.float32)
        return sample


def _decode_bytes(data, source):
    """Encoded image bytes -> uint8 RGB ``[h, w, 3]``; ImageDecodeError naming ``source``."""
    try:
        bgr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as e:
        raise ImageDecodeError(f'cannot decode image {source}: {e}') from e
    if bgr is None:
        raise ImageDecodeError(f'cannot decode image {source}: not an image OpenCV can read '
                               f'({len(data)} bytes)')
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
