"""Sample and batch transforms with PaddleDetection's names and arguments, one module per family.

* ``loading``: Decode (and ImageDecodeError)
* ``photometric``: RandomDistort, NormalizeImage
* ``geometric``: RandomFlip, Resize, RandomExpand, RandomCrop
* ``formatting``: Permute
* ``mix``: Mixup, Mosaic (several records into one sample)
* ``batch``: BatchRandomResize, PadGT, PadBatch

Every op is registered (``@register @serializable``), so reader configs name them as
``- Resize: {target_size: [640, 640], keep_ratio: false}`` and YAML may tag them.
"""

from .base import BaseOperator
from .batch import BatchRandomResize, PadBatch, PadGT
from .formatting import Permute
from .geometric import RandomCrop, RandomExpand, RandomFlip, Resize
from .loading import Decode, ImageDecodeError
from .mix import Mixup, Mosaic
from .photometric import NormalizeImage, RandomDistort

__all__ = [
    'BaseOperator', 'ImageDecodeError', 'Decode', 'RandomDistort', 'NormalizeImage', 'RandomFlip',
    'Resize', 'RandomExpand', 'RandomCrop', 'Permute', 'Mixup', 'Mosaic', 'BatchRandomResize',
    'PadGT', 'PadBatch',
]
