"""Detections from an exported model's outputs, for every export variant (numpy only).

* with NMS (default export): ``bbox [N, 6]`` and ``bbox_num [B]`` are split per image;
* ``exclude_nms``: ``bbox [B, L, 4]`` (original pixels) and ``scores [B, C, L]`` go through
  ``multiclass_nms`` with the ``NMS`` settings of infer_cfg.yml;
* ``exclude_post_process``: ``[B, L, 4 + C]`` network-input boxes are divided by ``scale_factor``
  (as the model's own post-processing does) first.

``multiclass_nms`` is Paddle's ``multiclass_nms3`` CPU kernel rule for one image (``paddle/phi/
kernels/cpu/multiclass_nms3_kernel.cc``), in float32: per class, scores ``> score_threshold``
sorted descending (stable), the first ``nms_top_k``, greedy suppression of IoU ``>`` the
(adaptive, ``nms_eta``) threshold; then the ``keep_top_k`` best over all classes; rows grouped by
class (ascending), by descending score within a class.
"""

import numpy as np

__all__ = ['multiclass_nms', 'detections']


def _iou(box, others, normalized):
    """IoU of one ``[4]`` box with ``[K, 4]`` boxes, float32, as the kernel's JaccardOverlap."""
    norm = np.float32(0. if normalized else 1.)

    def area(b):
        w, h = b[..., 2] - b[..., 0], b[..., 3] - b[..., 1]
        a = w * h if normalized else (w + norm) * (h + norm)
        return np.where((b[..., 2] < b[..., 0]) | (b[..., 3] < b[..., 1]), np.float32(0.), a)

    disjoint = ((others[:, 0] > box[2]) | (others[:, 2] < box[0]) |
                (others[:, 1] > box[3]) | (others[:, 3] < box[1]))
    inter_w = np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]) + norm
    inter_h = np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]) + norm
    inter = inter_w * inter_h
    with np.errstate(divide='ignore', invalid='ignore'):
        iou = inter / (area(box) + area(others) - inter)
    return np.where(disjoint, np.float32(0.), iou)


def multiclass_nms(bboxes, scores, score_threshold, nms_top_k, keep_top_k, nms_threshold=0.3,
                   normalized=True, nms_eta=1.0, background_label=-1):
    """One image's NMS.

    Args:
        bboxes (ndarray): ``[L, 4]`` float32 x1y1x2y2.
        scores (ndarray): ``[C, L]`` float32.
        score_threshold, nms_top_k, keep_top_k, nms_threshold, normalized, nms_eta,
            background_label: as Paddle's ``multiclass_nms3`` (-1 top-k: no limit).
    Returns:
        ndarray ``[N, 6]`` float32 rows (class, score, x1, y1, x2, y2).
    """
    bboxes = np.asarray(bboxes, dtype=np.float32)
    scores = np.asarray(scores, dtype=np.float32)
    selected = {}
    for c in range(scores.shape[0]):
        if c == background_label:
            continue
        s = scores[c]
        candidates = np.nonzero(s > np.float32(score_threshold))[0]
        order = candidates[np.argsort(-s[candidates], kind='stable')]
        if nms_top_k > -1:
            order = order[:nms_top_k]
        threshold = np.float32(nms_threshold)
        keep = []
        for idx in order:
            if keep and not np.all(_iou(bboxes[idx], bboxes[keep], normalized) <= threshold):
                continue
            keep.append(int(idx))
            if nms_eta < 1 and threshold > 0.5:
                threshold *= np.float32(nms_eta)
        selected[c] = keep
    total = sum(len(v) for v in selected.values())
    if keep_top_k > -1 and total > keep_top_k:
        pairs = [(scores[c, i], c, i) for c in sorted(selected) for i in selected[c]]
        order = np.argsort([-p[0] for p in pairs], kind='stable')[:keep_top_k]
        selected = {}
        for k in order:
            _, c, i = pairs[k]
            selected.setdefault(c, []).append(i)
    rows = [[c, scores[c, i], *bboxes[i]] for c in sorted(selected) for i in selected[c]]
    return np.asarray(rows, dtype=np.float32).reshape(-1, 6)


def detections(outputs, infer_cfg, scale_factor):
    """Per-image detections from the exported model's outputs.

    Args:
        outputs (list[ndarray]): the model's outputs in order (see the module doc).
        infer_cfg (dict): the export's infer_cfg.yml (``exclude_nms``, ``exclude_post_process``,
            ``NMS``).
        scale_factor (ndarray): ``[B, 2]`` float32 (y, x), the preprocessing's.
    Returns:
        list[ndarray]: per image ``[n, 6]`` float32 (class, score, x1, y1, x2, y2), original
        pixels.
    """
    nms = infer_cfg.get('NMS') or {}
    if infer_cfg.get('exclude_post_process'):
        raw = outputs[0]
        sy, sx = scale_factor[:, 0:1], scale_factor[:, 1:2]
        scale = np.concatenate([sx, sy, sx, sy], axis=-1).reshape(-1, 1, 4).astype(np.float32)
        boxes = raw[..., :4] / scale
        scores = raw[..., 4:].transpose(0, 2, 1)
        return [multiclass_nms(b, s, **nms) for b, s in zip(boxes, scores)]
    if infer_cfg.get('exclude_nms'):
        boxes, scores = outputs[:2]
        return [multiclass_nms(b, s, **nms) for b, s in zip(boxes, scores)]
    bbox, bbox_num = outputs[:2]
    bbox = bbox.reshape(-1, 6)
    ends = np.cumsum(bbox_num.astype(np.int64))
    return [bbox[end - n:end] for n, end in zip(bbox_num.astype(np.int64), ends)]
