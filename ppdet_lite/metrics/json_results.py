"""Detections in COCO's result format (the ``bbox.json`` that pycocotools' ``loadRes`` reads).

The rule is PaddleDetection 2.6's ``ppdet/metrics/json_results.py`` ``get_det_res``: rows are taken
image by image in ``bbox_num`` order, rows with a negative class (padding of some NMS back-ends) are
skipped, the class index goes through ``clsid2catid`` and corners become ``[x, y, w, h]`` with
``w = x2 - x1 + bias``.
"""

import numpy as np

__all__ = ['to_numpy', 'get_det_res']


def to_numpy(value, name):
    """``value`` (numpy array, paddle Tensor or nested list) as a numpy array.

    Raises:
        ValueError: ``value`` is None (the key ``name`` was not provided).
    """
    if value is None:
        raise ValueError(f'{name} is missing')
    # duck typing keeps the metrics importable without touching Paddle
    if hasattr(value, 'numpy') and not isinstance(value, np.ndarray):
        value = value.numpy()
    return np.asarray(value)


def get_det_res(bboxes, bbox_nums, image_id, clsid2catid, bias=0):
    """COCO result dicts for a batch of detections.

    Args:
        bboxes (np.ndarray): [N, 6] float rows ``(class index, score, x1, y1, x2, y2)``, corners in
            original-image pixels; images concatenated in batch order.
        bbox_nums (np.ndarray): [B] int, rows per image; must sum to N.
        image_id (np.ndarray): [B, 1] (or [B]) int COCO image ids.
        clsid2catid (dict): contiguous class index -> COCO category id.
        bias (float): added to widths and heights (1 for the legacy pixel-inclusive convention).
    Returns:
        list of ``{'image_id': int, 'category_id': int, 'bbox': [x, y, w, h], 'score': float}``.
    Raises:
        ValueError: shapes disagree, or a class index has no category id.
    """
    bboxes = np.asarray(bboxes).reshape(-1, 6) if np.size(bboxes) else np.zeros((0, 6))
    bbox_nums = np.asarray(bbox_nums).reshape(-1).astype('int64')
    image_id = np.asarray(image_id).reshape(-1)
    if len(bbox_nums) != len(image_id):
        raise ValueError(f'bbox_num has {len(bbox_nums)} entries but im_id has {len(image_id)}')
    if bbox_nums.sum() != len(bboxes):
        raise ValueError(f'bbox_num {bbox_nums.tolist()} sums to {int(bbox_nums.sum())} but bbox '
                         f'has {len(bboxes)} rows')
    results = []
    ends = np.cumsum(bbox_nums)
    for im_id, end, num in zip(image_id, ends, bbox_nums):
        for cls, score, x1, y1, x2, y2 in bboxes[end - num:end].tolist():
            if int(cls) < 0:
                continue
            if int(cls) not in clsid2catid:
                raise ValueError(f'detection class index {int(cls)} has no COCO category id '
                                 f'(clsid2catid covers {sorted(clsid2catid)})')
            results.append({'image_id': int(im_id), 'category_id': clsid2catid[int(cls)],
                            'bbox': [x1, y1, x2 - x1 + bias, y2 - y1 + bias], 'score': score})
    return results
