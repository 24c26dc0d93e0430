"""Data: datasets (records in original-image pixels), transforms (sample and batch ops) and readers.

Importing this package registers every dataset, transform and reader with
``ppdet_lite.core.workspace``, so YAML tags such as ``!COCODataSet`` and reader sections build.
"""

from . import transforms
from . import datasets
from . import reader
from .reader import EvalReader, TestReader, TrainReader
