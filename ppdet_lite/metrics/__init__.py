"""Evaluation metrics with PaddleDetection 2.6's interface: ``COCOMetric`` (pycocotools box AP)
and ``VOCMetric`` (Pascal VOC mAP, 11-point or area). The trainer calls, per evaluation,
``reset()``, ``update(inputs, outputs)`` for every batch, then ``accumulate()``, ``log()`` and
``get_results()``."""

from .metric import Metric
from .coco_metric import COCOMetric
from .voc_metric import VOCMetric
from .map_utils import DetectionMAP
from .json_results import get_det_res

__all__ = ['Metric', 'COCOMetric', 'VOCMetric', 'DetectionMAP', 'get_det_res']
