"""Data: datasets (records in original-image pixels), transforms (sample and batch ops) and readers.

Importing this package registers every dataset, transform and reader with
``ppdet_lite.core.workspace``, so YAML tags such as ``!COCODataSet`` and reader sections build.
"""

import cv2

# OpenCV's worker-thread pool does not survive fork(): loader workers forked after the main
# process has used it can deadlock inside their first cv2 call. Loader workers provide the
# parallelism instead (the same guard as PyTorch's DataLoader users apply).
cv2.setNumThreads(0)

from . import transforms  # noqa: E402
from . import datasets  # noqa: E402
from . import reader  # noqa: E402
from .reader import EvalReader, TestReader, TrainReader  # noqa: E402
