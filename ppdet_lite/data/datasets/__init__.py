"""Detection datasets: one record per image with its file, boxes (x1y1x2y2 pixels) and classes.

Record (numpy, original-image pixels; ``data_fields`` selects the keys a dataset emits):
    im_file str, im_id int64 [1], h / w float (annotated size; Decode overwrites them),
    gt_bbox float32 [n, 4] x1y1x2y2 clipped to the image, gt_class int32 [n, 1] in 0..C-1,
    is_crowd int32 [n, 1] (COCO), difficult int32 [n, 1] (VOC); n may be 0.
"""

from .dataset import DetDataset
from .coco import COCODataSet
from .voc import VOCDataSet
from .image_folder import ImageFolder
from .category import get_categories

__all__ = ['DetDataset', 'COCODataSet', 'VOCDataSet', 'ImageFolder', 'get_categories']
