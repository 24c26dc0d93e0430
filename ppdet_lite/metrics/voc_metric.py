"""Pascal VOC mAP with PaddleDetection 2.6's ``VOCMetric`` interface (``ppdet/metrics/metrics.py``);
the matching and AP rules are in ``map_utils``."""

import json
import os

import numpy as np

from ppdet_lite.utils.logger import get_logger
from .classwise_table import classwise_table
from .json_results import to_numpy
from .map_utils import DetectionMAP, prune_zero_padding
from .metric import Metric

__all__ = ['VOCMetric', 'read_label_list']

logger = get_logger(__name__)


def read_label_list(label_list):
    """Class names from a ``label_list.txt`` (one name a line, a leading ``background`` dropped,
    as PaddleDetection reads it) or from a list of names.

    Raises:
        FileNotFoundError: the file does not exist.
    """
    if isinstance(label_list, (list, tuple)):
        return [str(n) for n in label_list]
    if not os.path.isfile(label_list):
        raise FileNotFoundError(f'VOCMetric: label_list {label_list!r} is not a file')
    with open(label_list) as f:
        names = [line.strip() for line in f if line.strip()]
    return names[1:] if names and names[0] == 'background' else names


class VOCMetric(Metric):
    """VOC mAP of a model's NMS output against the batch's ground truth.

    Args:
        label_list (str | list[str]): ``label_list.txt`` path (the VOCDataSet's) or class names.
        class_num (int): number of classes; must equal the number of names.
        overlap_thresh (float): IoU a match must exceed.
        map_type (str): ``'11point'`` or ``'integral'`` (area under the precision/recall curve).
        is_bbox_normalized (bool): boxes in [0, 1]; False uses inclusive pixels (``w + 1``).
        evaluate_difficult (bool): count difficult ground truth like the rest.
        classwise (bool): ``log`` also prints each class's AP.
        output_eval (str | None): directory for ``bbox.json`` (the raw detections per batch).
        save_prediction_only (bool): only collect (and save) the detections.
    Raises:
        FileNotFoundError: missing ``label_list`` file.
        ValueError: ``class_num`` differs from the number of names; bad ``map_type``.

    ``update(inputs, outputs)``: ``outputs['bbox']`` [N, 6] ``(class index, score, x1, y1, x2,
    y2)`` in original-image pixels, ``outputs['bbox_num']`` [B]; ``inputs['gt_bbox']`` [B, n, 4]
    x1y1x2y2 in the *network input's* pixels (divided by ``inputs['scale_factor']`` [B, 2] (y, x)
    when present, to return to original pixels, as PaddleDetection does), ``inputs['gt_class']``
    [B, n, 1], optional ``inputs['difficult']`` [B, n, 1] and ``inputs['pad_gt_mask']`` [B, n, 1]
    (without it, padding is cut at the first all-zero box). Each may also be a list of per-image
    arrays; numpy arrays or paddle Tensors. Detections with a negative class (padding) are skipped.
    ``get_results()`` -> ``{'bbox': [mAP]}`` with mAP in [0, 1].
    """

    def __init__(self, label_list, class_num=20, overlap_thresh=0.5, map_type='11point',
                 is_bbox_normalized=False, evaluate_difficult=False, classwise=False,
                 output_eval=None, save_prediction_only=False):
        self.class_names = read_label_list(label_list)
        if len(self.class_names) != class_num:
            raise ValueError(f'VOCMetric: label_list {label_list!r} has {len(self.class_names)} '
                             f'classes but class_num is {class_num}')
        self.overlap_thresh = overlap_thresh
        self.map_type = map_type
        self.evaluate_difficult = evaluate_difficult
        self.classwise = classwise
        self.output_eval = output_eval
        self.save_prediction_only = save_prediction_only
        self.detection_map = DetectionMAP(
            class_num=class_num, overlap_thresh=overlap_thresh, map_type=map_type,
            is_bbox_normalized=is_bbox_normalized, evaluate_difficult=evaluate_difficult)
        self.reset()

    def reset(self):
        self.results = {'bbox': [], 'score': [], 'label': []}
        self.detection_map.reset()

    def update(self, inputs, outputs):
        det = to_numpy(outputs.get('bbox'), "outputs['bbox']").reshape(-1, 6)
        bbox_num = to_numpy(outputs.get('bbox_num'), "outputs['bbox_num']").reshape(-1)
        if int(bbox_num.sum()) != len(det):
            raise ValueError(f"VOCMetric: bbox_num {bbox_num.tolist()} sums to "
                             f"{int(bbox_num.sum())} but outputs['bbox'] has {len(det)} rows")
        self.results['bbox'].append(det[:, 2:].tolist())
        self.results['score'].append(det[:, 1].tolist())
        self.results['label'].append(det[:, 0].tolist())
        if self.save_prediction_only:
            return

        gt_boxes = _batched(inputs, 'gt_bbox')
        gt_labels = _batched(inputs, 'gt_class')
        difficults = _batched(inputs, 'difficult', required=False)
        masks = _batched(inputs, 'pad_gt_mask', required=False)
        scales = _batched(inputs, 'scale_factor', required=False)
        if len(gt_boxes) != len(bbox_num):
            raise ValueError(f"VOCMetric: inputs['gt_bbox'] holds {len(gt_boxes)} images but "
                             f"outputs['bbox_num'] {len(bbox_num)}")
        start = 0
        for i, num in enumerate(bbox_num.tolist()):
            rows = det[start:start + num]
            start += num
            rows = rows[rows[:, 0] >= 0]
            gt_box = np.asarray(gt_boxes[i]).reshape(-1, 4)
            gt_label = np.asarray(gt_labels[i]).reshape(-1)
            difficult = None if difficults is None else np.asarray(difficults[i]).reshape(-1)
            if scales is not None:
                h, w = np.asarray(scales[i]).reshape(2)
                gt_box = gt_box / np.array([w, h, w, h])
            if masks is not None:
                keep = np.asarray(masks[i]).reshape(-1) > 0
                gt_box, gt_label = gt_box[keep], gt_label[keep]
                difficult = None if difficult is None else difficult[keep]
            else:
                gt_box, gt_label, difficult = prune_zero_padding(gt_box, gt_label, difficult)
            self.detection_map.update(rows[:, 2:], rows[:, 1], rows[:, 0], gt_box, gt_label,
                                      difficult)

    def accumulate(self):
        if self.output_eval:
            os.makedirs(self.output_eval, exist_ok=True)
            path = os.path.join(self.output_eval, 'bbox.json')
            with open(path, 'w') as f:
                json.dump(self.results, f)
            logger.info(f'The bbox result is saved to {path}.')
        if self.save_prediction_only:
            return
        logger.info('Accumulating evaluation results...')
        self.detection_map.accumulate()

    def log(self):
        if self.classwise:
            evaluated = [(n, ap) for n, ap in zip(self.class_names, self.detection_map.class_aps)
                         if ap is not None]
            logger.info('Per-category of VOC AP:')
            for line in classwise_table([n for n, _ in evaluated], [ap for _, ap in evaluated]):
                logger.info(line)
        logger.info(f'mAP({self.overlap_thresh:.2f}, {self.map_type}) = '
                    f'{100. * self.detection_map.get_map():.2f}%')

    def get_results(self):
        return {'bbox': [self.detection_map.get_map()]}


def _batched(inputs, key, required=True):
    """``inputs[key]`` as something indexable per image: a numpy array [B, ...] or a list of
    per-image numpy arrays; None when an optional key is absent."""
    value = inputs.get(key)
    if value is None:
        if required:
            raise ValueError(f"VOCMetric: inputs['{key}'] is missing")
        return None
    if isinstance(value, (list, tuple)):
        return [to_numpy(v, f"inputs['{key}']") for v in value]
    return to_numpy(value, f"inputs['{key}']")
