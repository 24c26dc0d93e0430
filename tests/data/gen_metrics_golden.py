"""Generate ``ppdet26_metrics_golden.npz``: PaddleDetection 2.6's own COCOMetric and VOCMetric
on random detections, for ``tests/test_metrics.py``.

Runs only where ``paddledet==2.6.0`` is installed (not a project dependency):

    python tests/data/gen_metrics_golden.py [output.npz]

Everything is drawn from ``np.random.RandomState(0)`` and stored with the expected results, so the
test needs neither ppdet nor this script.

* COCO: an annotation file (stored as JSON text) with 6 images, categories listed in the order
  3, 1, 7 (non-contiguous and unsorted: class index i is the i-th listed category, ppdet's rule),
  boxes of small, medium and large area and some crowd boxes; detections are jittered copies of
  the ground truth (sometimes with the wrong class) plus random boxes, scores rounded to 0.05 so
  that ties occur; two batches. Expected: ``COCOMetric(...).get_results()['bbox']`` (12 stats)
  for ``bias`` 0 and 1.
* VOC: 4 batches of 3 images, 3 classes; ground truth in network-input pixels (original pixels
  times ``scale_factor``), zero-padded to the batch maximum with ``pad_gt_mask``, some difficult
  boxes, images without ground truth and without detections. Expected: ``VOCMetric(...)``'s mAP
  for map_type 11point / integral x evaluate_difficult False / True.
  ppdet's DetectionMAP calls ``int()`` on each per-image label and difficult flag, which NumPy 2
  refuses for shape [1] arrays, so ppdet is given ``gt_class`` and ``difficult`` as [B, n] (the
  test passes the reader's [B, n, 1]). No detection/ground-truth overlap lies within 1e-4 of the
  0.5 threshold (checked here), so float32 versus float64 overlap arithmetic cannot flip a match.
"""

import json
import os
import sys
import tempfile

import numpy as np
import paddle
import ppdet
from ppdet.metrics.metrics import COCOMetric, VOCMetric

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__),
                                                         'ppdet26_metrics_golden.npz')
rng = np.random.RandomState(0)
out = {'versions': np.array(f'paddledet {ppdet.__version__}; paddle {paddle.__version__}')}


def random_boxes(n, img_w, img_h, min_side, max_side):
    wh = rng.uniform(min_side, max_side, (n, 2))
    wh = np.minimum(wh, [img_w - 1, img_h - 1])
    xy = rng.uniform(0, 1, (n, 2)) * ([img_w, img_h] - wh)
    return np.concatenate([xy, xy + wh], 1)


def jittered_detections(gt, gt_cls, n_random, img_w, img_h, num_classes, jitter):
    boxes, classes = [], []
    for b, c in zip(gt, gt_cls):
        for _ in range(rng.randint(0, 3)):      # 0, 1 or 2 (a duplicate) detections per object
            side = np.array([b[2] - b[0], b[3] - b[1]] * 2)
            boxes.append(b + rng.randn(4) * jitter * side)
            classes.append(c if rng.rand() < 0.85 else rng.randint(num_classes))
    rand = random_boxes(n_random, img_w, img_h, 4, 60)
    boxes += list(rand)
    classes += list(rng.randint(0, num_classes, n_random))
    boxes = np.array(boxes, 'float64').reshape(-1, 4)
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, img_w)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, img_h)
    boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
    scores = np.round(rng.uniform(0.05, 1, len(boxes)) / 0.05) * 0.05
    order = np.argsort(-scores, kind='stable')      # NMS output: best first
    return np.concatenate([np.array(classes, 'float64')[:, None], scores[:, None], boxes],
                          1)[order].astype('float32')


# ---------------------------------------------------------------- COCO
cat_ids = [3, 1, 7]
images, annotations = [], []
coco_dets, coco_nums, coco_ids = [], [], []
for k in range(6):
    im_id, w, h = 10 + 3 * k, int(rng.randint(120, 161)), int(rng.randint(120, 161))
    images.append({'id': im_id, 'file_name': f'{im_id}.jpg', 'width': w, 'height': h})
    n = rng.randint(0 if k == 5 else 1, 6)
    gt = np.concatenate([random_boxes(n - n // 2, w, h, 6, 30),         # small and medium
                         random_boxes(n // 2, w, h, 40, 150)])          # medium and large
    gt = np.round(gt, 1)
    gt_cls = rng.randint(0, 3, n)
    for b, c in zip(gt, gt_cls):
        bw, bh = float(b[2] - b[0]), float(b[3] - b[1])
        annotations.append({'id': len(annotations) + 1, 'image_id': im_id,
                            'category_id': cat_ids[c], 'bbox': [float(b[0]), float(b[1]), bw, bh],
                            'area': bw * bh, 'iscrowd': int(rng.rand() < 0.1)})
    det = jittered_detections(gt, gt_cls, rng.randint(0, 5), w, h, 3, jitter=0.08)
    coco_dets.append(det)
    coco_nums.append(len(det))
    coco_ids.append(im_id)
anno = {'images': images, 'annotations': annotations,
        'categories': [{'id': c, 'name': f'shape{c}', 'supercategory': 'shape'} for c in cat_ids]}
out['coco_anno_json'] = np.array(json.dumps(anno))
out['coco_bbox'] = np.concatenate(coco_dets)
out['coco_bbox_num'] = np.array(coco_nums, 'int32')
out['coco_im_id'] = np.array(coco_ids, 'int64')[:, None]
coco_batches = [slice(0, 2), slice(2, 6)]

with tempfile.TemporaryDirectory() as tmp:
    anno_file = os.path.join(tmp, 'anno.json')
    with open(anno_file, 'w') as f:
        json.dump(anno, f)
    for bias in (0, 1):
        metric = COCOMetric(anno_file, output_eval=tmp, bias=bias)
        for sl in coco_batches:
            first = int(np.sum(coco_nums[:sl.start]))
            last = int(np.sum(coco_nums[:sl.stop]))
            metric.update({'im_id': out['coco_im_id'][sl]},
                          {'bbox': out['coco_bbox'][first:last],
                           'bbox_num': out['coco_bbox_num'][sl]})
        metric.accumulate()
        out[f'coco_stats_bias{bias}'] = np.array(metric.get_results()['bbox'], 'float64')

# ---------------------------------------------------------------- VOC
class_names = ['cat', 'dog', 'bird']
voc_batches = []
for b in range(4):
    batch_gt, batch_cls, batch_diff, batch_dets = [], [], [], []
    scale = rng.uniform(0.5, 2.0, (3, 2)).astype('float32')
    for i in range(3):
        w, h = int(rng.randint(80, 161)), int(rng.randint(80, 161))
        n = 0 if (b, i) == (1, 2) else rng.randint(1, 6)
        gt = np.round(random_boxes(n, w, h, 8, 70))
        cls = rng.randint(0, 3, n)
        batch_gt.append(gt)
        batch_cls.append(cls)
        batch_diff.append((rng.rand(n) < 0.2).astype('int32'))
        det = jittered_detections(gt, cls, rng.randint(0, 4), w, h, 3, jitter=0.1)
        batch_dets.append(det[:0] if (b, i) == (2, 0) else det)
    n_max = max(len(g) for g in batch_gt)
    gt_bbox = np.zeros((3, n_max, 4), 'float32')
    gt_class = np.zeros((3, n_max, 1), 'int32')
    difficult = np.zeros((3, n_max, 1), 'int32')
    pad_gt_mask = np.zeros((3, n_max, 1), 'float32')
    for i in range(3):
        n = len(batch_gt[i])
        sy, sx = scale[i]
        gt_bbox[i, :n] = (batch_gt[i] * [sx, sy, sx, sy]).astype('float32')
        gt_class[i, :n, 0] = batch_cls[i]
        difficult[i, :n, 0] = batch_diff[i]
        pad_gt_mask[i, :n] = 1
    voc_batches.append({'gt_bbox': gt_bbox, 'gt_class': gt_class, 'difficult': difficult,
                        'pad_gt_mask': pad_gt_mask, 'scale_factor': scale,
                        'bbox': np.concatenate(batch_dets),
                        'bbox_num': np.array([len(d) for d in batch_dets], 'int32')})


def min_margin(batches, thresh=0.5):
    """Smallest |overlap - thresh| over same-class detection / ground-truth pairs (float64)."""
    margin = np.inf
    for bt in batches:
        start = 0
        for i, num in enumerate(bt['bbox_num']):
            det = bt['bbox'][start:start + num].astype('float64')
            start += num
            sy, sx = bt['scale_factor'][i]
            gt = (bt['gt_bbox'][i] / np.array([sx, sy, sx, sy])).astype('float64')
            for d in det:
                for g, c, m in zip(gt, bt['gt_class'][i, :, 0], bt['pad_gt_mask'][i, :, 0]):
                    if m == 0 or c != int(d[0]):
                        continue
                    iw = min(d[4], g[2]) - max(d[2], g[0]) + 1
                    ih = min(d[5], g[3]) - max(d[3], g[1]) + 1
                    if d[2] >= g[2] or d[4] <= g[0] or d[3] >= g[3] or d[5] <= g[1]:
                        continue
                    union = ((d[4] - d[2] + 1) * (d[5] - d[3] + 1) +
                             (g[2] - g[0] + 1) * (g[3] - g[1] + 1) - iw * ih)
                    margin = min(margin, abs(iw * ih / union - thresh))
    return margin


margin = min_margin(voc_batches)
assert margin > 1e-4, f'an overlap lies within {margin} of the threshold: change the seed'

with tempfile.TemporaryDirectory() as tmp:
    label_list = os.path.join(tmp, 'label_list.txt')
    with open(label_list, 'w') as f:
        f.write('\n'.join(class_names) + '\n')
    expected = []
    for map_type in ('11point', 'integral'):
        for evaluate_difficult in (False, True):
            metric = VOCMetric(label_list, class_num=3, map_type=map_type,
                               evaluate_difficult=evaluate_difficult)
            for bt in voc_batches:
                metric.update({'gt_bbox': bt['gt_bbox'], 'gt_class': bt['gt_class'][..., 0],
                               'difficult': bt['difficult'][..., 0],
                               'scale_factor': bt['scale_factor']},
                              {'bbox': bt['bbox'], 'bbox_num': bt['bbox_num']})
            metric.accumulate()
            expected.append(metric.get_results()['bbox'][0])
out['voc_class_names'] = np.array(class_names)
out['voc_map'] = np.array(expected, 'float64')    # [11point, 11point + difficult, integral, ...]
out['voc_num_batches'] = np.array(len(voc_batches))
for b, bt in enumerate(voc_batches):
    for key, value in bt.items():
        out[f'voc{b}_{key}'] = value

np.savez(OUT, **out)
print(f'wrote {OUT}: COCO stats bias 0 {out["coco_stats_bias0"].round(4).tolist()}, '
      f'bias 1 {out["coco_stats_bias1"].round(4).tolist()}; VOC mAP {expected}; '
      f'min overlap margin {margin:.2e}')
