"""Numpy box helpers of the data pipeline (boxes ``[n, 4]`` x1y1x2y2 pixels, float32).

The model's box maths (Paddle tensors) lives in ``ppdet_lite/modeling/bbox_utils.py``; these are
the few numpy counterparts the transforms need, kept in one place.
"""

import numpy as np

__all__ = ['iou_matrix', 'crop_boxes', 'take_boxes']


def iou_matrix(a, b):
    """Pairwise IoU ``[n, m]`` of boxes ``a [n, 4]`` and ``b [m, 4]``.

    Disjoint boxes give 0; ``1e-10`` in the union avoids 0/0, as in PaddleDetection's RandomCrop.
    """
    lt = np.maximum(a[:, np.newaxis, :2], b[:, :2])
    rb = np.minimum(a[:, np.newaxis, 2:], b[:, 2:])
    overlap = np.prod(rb - lt, axis=2) * (lt < rb).all(axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return overlap / (area_a[:, np.newaxis] + area_b - overlap + 1e-10)


def crop_boxes(boxes, crop):
    """Boxes seen through the window ``crop = [x1, y1, x2, y2]``.

    Returns ``(cropped [n, 4], keep [k] int64)``: every box clipped to the window and shifted to
    its origin, and the indices of the boxes whose centre lies inside the window (left/top edge
    inclusive, right/bottom exclusive) and whose clipped box is not empty
    (PaddleDetection's ``_crop_box_with_center_constraint``).
    """
    crop = np.asarray(crop, dtype=boxes.dtype)
    cropped = boxes.copy()
    cropped[:, :2] = np.maximum(boxes[:, :2], crop[:2]) - crop[:2]
    cropped[:, 2:] = np.minimum(boxes[:, 2:], crop[2:]) - crop[:2]
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    inside = np.logical_and(crop[:2] <= centres, centres < crop[2:]).all(axis=1)
    keep = np.logical_and(inside, (cropped[:, :2] < cropped[:, 2:]).all(axis=1))
    return cropped, np.nonzero(keep)[0]


def take_boxes(sample, keep, fields):
    """Keep rows ``keep`` of ``gt_bbox`` and of every per-box field of ``sample`` in ``fields``."""
    sample['gt_bbox'] = np.take(sample['gt_bbox'], keep, axis=0)
    for key in fields:
        if key in sample:
            sample[key] = np.take(sample[key], keep, axis=0)
    return sample
