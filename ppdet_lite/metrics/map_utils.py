"""Pascal VOC style detection mAP, as PaddleDetection 2.6's ``ppdet/metrics/map_utils.py``
``DetectionMAP`` computes it.

Matching, image by image, in the order the detections are given (NMS output: best first): a
detection takes the ground-truth box of its class with the highest overlap (the first such box on
ties). Above ``overlap_thresh`` (strictly) it is a true positive if that box is still free, a false
positive if an earlier detection took it (a duplicate), and is ignored if the box is *difficult*
and difficult boxes are not evaluated; otherwise it is a false positive. Difficult boxes do not
count in a class's number of ground truths unless ``evaluate_difficult``.

The overlap is the legacy VOC one (``jaccard_overlap``): boxes that do not intersect (touching
included) give 0; otherwise pixel coordinates are inclusive, so widths and heights get ``+ 1``
(not for normalised boxes).

AP per class, from its detections sorted by descending score (a stable sort, so ties keep the
update order) with precision ``p_k = TP_k / k`` and recall ``r_k = TP_k / n_gt`` after the k-th:

* ``'11point'``: ``sum_{j=0..10} max{p_k : r_k >= j / 10} / 11`` (a missing max counts 0);
* ``'integral'``: ``sum_k p_k * (r_k - r_prev)`` over the points where the recall rises (by more
  than 1e-6), ``r_prev`` being the recall at the previous such point (0 at first). This is the area
  under the raw precision/recall curve: unlike VOC2010+ it takes no running maximum of precision.

mAP is the mean over the classes that have ground truth (a class whose detections are all missing
has AP 0); classes without ground truth are left out.
"""

import numpy as np

__all__ = ['jaccard_overlap', 'prune_zero_padding', 'average_precision_11point',
           'average_precision_integral', 'DetectionMAP']

MAP_TYPES = ('11point', 'integral')


def jaccard_overlap(pred, gt, is_bbox_normalized=False):
    """Legacy VOC overlap of every ``pred`` box with every ``gt`` box.

    Args:
        pred (np.ndarray): [M, 4] x1y1x2y2 (pixels, or [0, 1] when normalised).
        gt (np.ndarray): [G, 4] same convention.
        is_bbox_normalized (bool): False adds 1 to widths and heights (inclusive pixel corners).
    Returns:
        np.ndarray: [M, G] float64; 0 where the boxes do not intersect or only touch.
    """
    pred = np.asarray(pred, 'float64').reshape(-1, 1, 4)
    gt = np.asarray(gt, 'float64').reshape(1, -1, 4)
    norm = 0. if is_bbox_normalized else 1.

    def area(b):
        return (b[..., 2] - b[..., 0] + norm) * (b[..., 3] - b[..., 1] + norm)

    inter = np.concatenate([np.maximum(pred[..., :2], gt[..., :2]),
                            np.minimum(pred[..., 2:], gt[..., 2:])], axis=-1)
    inter_area = area(inter)
    disjoint = ((pred[..., 0] >= gt[..., 2]) | (pred[..., 2] <= gt[..., 0]) |
                (pred[..., 1] >= gt[..., 3]) | (pred[..., 3] <= gt[..., 1]))
    with np.errstate(divide='ignore', invalid='ignore'):
        overlap = inter_area / (area(pred) + area(gt) - inter_area)
    return np.where(disjoint, 0., overlap)


def prune_zero_padding(gt_box, gt_label, difficult=None):
    """Cut padded ground truth at the first all-zero box (PaddleDetection's rule when no
    ``pad_gt_mask`` is given). Returns the three arrays, ``difficult`` may stay None."""
    zero = np.flatnonzero((np.asarray(gt_box) == 0).all(axis=-1))
    n = int(zero[0]) if len(zero) else len(gt_box)
    return gt_box[:n], gt_label[:n], None if difficult is None else difficult[:n]


class DetectionMAP(object):
    """Accumulates per-class true/false positives over images and computes VOC mAP.

    Args:
        class_num (int): number of classes C; labels are 0..C-1.
        overlap_thresh (float): a match needs overlap strictly above it.
        map_type (str): ``'11point'`` or ``'integral'``.
        is_bbox_normalized (bool): boxes in [0, 1] (no ``+ 1`` in widths).
        evaluate_difficult (bool): count difficult boxes as ordinary ground truth.
    Raises:
        ValueError: unknown ``map_type``; a label outside 0..C-1 in ``update``.
    """

    def __init__(self, class_num, overlap_thresh=0.5, map_type='11point',
                 is_bbox_normalized=False, evaluate_difficult=False):
        if map_type not in MAP_TYPES:
            raise ValueError(f'map_type {map_type!r} is not one of {MAP_TYPES}')
        self.class_num = class_num
        self.overlap_thresh = overlap_thresh
        self.map_type = map_type
        self.is_bbox_normalized = is_bbox_normalized
        self.evaluate_difficult = evaluate_difficult
        self.reset()

    def reset(self):
        self.class_scores = [[] for _ in range(self.class_num)]
        self.class_tps = [[] for _ in range(self.class_num)]
        self.class_gt_counts = [0] * self.class_num
        self.class_aps = [None] * self.class_num
        self.mAP = 0.0

    def _check_labels(self, labels, what):
        bad = labels[(labels < 0) | (labels >= self.class_num)]
        if len(bad):
            raise ValueError(f'{what} class index {int(bad[0])} is outside 0..{self.class_num - 1} '
                             f'(class_num={self.class_num})')

    def update(self, bbox, score, label, gt_box, gt_label, difficult=None):
        """Add one image.

        Args:
            bbox (np.ndarray): [M, 4] detections x1y1x2y2, in the order to match them.
            score (np.ndarray): [M] scores.
            label (np.ndarray): [M] class indices (float or int).
            gt_box (np.ndarray): [G, 4] ground truth, same units as ``bbox``.
            gt_label (np.ndarray): [G] or [G, 1] class indices.
            difficult (np.ndarray | None): [G] or [G, 1], nonzero = difficult; None: none is.
        """
        label = np.asarray(label).reshape(-1).astype('int64')
        gt_label = np.asarray(gt_label).reshape(-1).astype('int64')
        difficult = (np.zeros(len(gt_label), bool) if difficult is None
                     else np.asarray(difficult).reshape(-1).astype(bool))
        self._check_labels(gt_label, 'ground-truth')
        self._check_labels(label, 'detection')
        counted = self.evaluate_difficult | ~difficult
        for c in gt_label[counted]:
            self.class_gt_counts[c] += 1

        overlaps = jaccard_overlap(bbox, gt_box, self.is_bbox_normalized)
        taken = np.zeros(len(gt_label), bool)
        for k, (s, c) in enumerate(zip(np.asarray(score).reshape(-1).tolist(), label.tolist())):
            same_class = np.flatnonzero(gt_label == c)
            tp = 0.
            if len(same_class):
                best = same_class[np.argmax(overlaps[k, same_class])]
                if overlaps[k, best] > self.overlap_thresh:
                    if not counted[best]:
                        continue
                    tp = 0. if taken[best] else 1.
                    taken[best] = True
            self.class_scores[c].append(s)
            self.class_tps[c].append(tp)

    def accumulate(self):
        """Per-class AP into ``class_aps`` ([C], None for classes without ground truth) and
        their mean into ``mAP``."""
        for c, n_gt in enumerate(self.class_gt_counts):
            if n_gt == 0:
                self.class_aps[c] = None
                continue
            scores = np.asarray(self.class_scores[c], 'float64')
            tp = np.asarray(self.class_tps[c], 'float64')[np.argsort(-scores, kind='stable')]
            tp_cum = np.cumsum(tp)
            precision = tp_cum / np.arange(1, len(tp) + 1)
            recall = tp_cum / n_gt
            if self.map_type == '11point':
                self.class_aps[c] = average_precision_11point(precision, recall)
            else:
                self.class_aps[c] = average_precision_integral(precision, recall)
        aps = [ap for ap in self.class_aps if ap is not None]
        self.mAP = sum(aps) / len(aps) if aps else 0.0

    def get_map(self):
        """mAP in [0, 1] of the last ``accumulate`` (0.0 before it)."""
        return self.mAP


def average_precision_11point(precision, recall):
    """``sum_{j=0..10} max{p_k : r_k >= j/10} / 11`` of a ranked list (sequences of floats)."""
    precision, recall = np.asarray(precision, 'float64'), np.asarray(recall, 'float64')
    maxima = []
    for j in range(11):
        reached = precision[recall >= j / 10.]
        maxima.append(float(reached.max()) if len(reached) else 0.)
    # a left-to-right Python sum, so the value is PaddleDetection's to the last bit
    return sum(maxima) / 11.


def average_precision_integral(precision, recall):
    """``sum p_k * (r_k - r_prev)`` over the ranks where the recall rises by more than 1e-6."""
    precision = np.asarray(precision, 'float64').tolist()
    recall = np.asarray(recall, 'float64').tolist()
    ap, prev_recall = 0., 0.
    for p, r in zip(precision, recall):
        if abs(r - prev_recall) > 1e-6:
            ap += p * abs(r - prev_recall)
            prev_recall = r
    return ap
