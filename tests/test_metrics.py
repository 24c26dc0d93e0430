"""Evaluation metrics: VOC mAP and COCO AP on hand-computed cases, then PaddleDetection 2.6's own
results on random detections (tests/data/ppdet26_metrics_golden.npz, from gen_metrics_golden.py)."""

import json
import logging
import os

import numpy as np
import paddle
import pytest

from ppdet_lite.metrics import COCOMetric, VOCMetric, get_det_res
from ppdet_lite.metrics.map_utils import DetectionMAP, jaccard_overlap

GOLDEN = os.path.join(os.path.dirname(__file__), 'data', 'ppdet26_metrics_golden.npz')
FAR = [200., 200., 230., 230.]      # a box overlapping no ground truth below


@pytest.fixture
def metric_log():
    """Messages the metrics log (the project logger does not propagate to pytest's caplog)."""
    records = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record)
    logger = logging.getLogger('ppdet_lite')
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def messages(records, level=logging.INFO):
    return [r.getMessage() for r in records if r.levelno == level]


# ------------------------------------------------------------------------------------------ VOC

def det_rows(boxes, scores, classes=None):
    """[N, 6] rows (class, score, x1, y1, x2, y2); the given order is the matching order."""
    classes = [0] * len(boxes) if classes is None else classes
    return np.array([[c, s] + list(b) for b, s, c in zip(boxes, scores, classes)], 'float32')


def voc_map(gt, dets, names=('a',), gt_class=None, difficult=None, **kwargs):
    """mAP of one image: ``gt`` [n, 4] original pixels, ``dets`` [N, 6] rows."""
    metric = VOCMetric(list(names), class_num=len(names), **kwargs)
    gt = np.array(gt, 'float32').reshape(-1, 4)
    inputs = {'gt_bbox': gt[None],
              'gt_class': np.array(gt_class if gt_class is not None else [0] * len(gt),
                                   'int32').reshape(1, -1, 1)}
    if difficult is not None:
        inputs['difficult'] = np.array(difficult, 'int32').reshape(1, -1, 1)
    metric.update(inputs, {'bbox': dets, 'bbox_num': np.array([len(dets)], 'int32')})
    metric.accumulate()
    return metric.get_results()['bbox'][0]


FOUR_GT = [[0, 0, 20, 20], [40, 0, 60, 20], [0, 40, 20, 60], [40, 40, 60, 60]]


def test_voc_ap_of_a_ranked_list_11point_and_integral():
    # 4 GT; ranked detections TP, FP, TP, TP, FP:
    #   precision 1/1, 1/2, 2/3, 3/4, 3/5     recall .25, .25, .50, .75, .75
    dets = det_rows([FOUR_GT[0], FAR, FOUR_GT[1], FOUR_GT[2], FAR], [.9, .8, .7, .6, .5])
    # 11-point: max precision at recall >= t for t = 0, .1, ..., 1:
    #   t in {0, .1, .2}: 1;  t in {.3, .4, .5, .6, .7}: max(2/3, 3/4, 3/5) = 3/4;  t >= .8: 0
    assert voc_map(FOUR_GT, dets, map_type='11point') == pytest.approx((3 * 1 + 5 * 0.75) / 11)
    # area: precision where recall rises, times the rise: .25 * 1 + .25 * 2/3 + .25 * 3/4
    assert voc_map(FOUR_GT, dets, map_type='integral') == pytest.approx(
        .25 * 1 + .25 * 2 / 3 + .25 * 3 / 4)


def test_voc_ap_follows_the_scores_not_the_update_order():
    # the same detections as above, given in another order: AP is computed on the score ranking
    order = [3, 0, 4, 2, 1]
    boxes = [FOUR_GT[0], FAR, FOUR_GT[1], FOUR_GT[2], FAR]
    scores = [.9, .8, .7, .6, .5]
    dets = det_rows([boxes[i] for i in order], [scores[i] for i in order])
    assert voc_map(FOUR_GT, dets, map_type='11point') == pytest.approx((3 + 5 * 0.75) / 11)


def test_voc_duplicate_detection_is_a_false_positive():
    gt = [[0, 0, 40, 40], [24, 0, 64, 40]]        # A and B, 41 x 41 inclusive pixels
    dets = det_rows([[0, 0, 40, 40], [1, 0, 41, 40], [24, 0, 64, 40]], [.9, .8, .7])
    # the second detection overlaps A best (40 * 41 / (42 * 41) = .95, with +1 pixels) and
    # B at 18 * 41 / (64 * 41) = .28; A is taken, so it is a false positive:
    #   TP, FP, TP: precision 1, 1/2, 2/3   recall .5, .5, 1
    # 11-point: t <= .5 (6 points): 1; t > .5 (5 points): 2/3
    assert voc_map(gt, dets) == pytest.approx((6 * 1 + 5 * 2 / 3) / 11)
    assert voc_map(gt, dets, map_type='integral') == pytest.approx(.5 * 1 + .5 * 2 / 3)
    # without the duplicate both are true positives
    assert voc_map(gt, dets[[0, 2]]) == 1.0


def test_voc_difficult_ground_truth_is_ignored():
    gt = [[0, 0, 20, 20], [40, 0, 60, 20], [40, 40, 60, 60]]     # A, B normal; D difficult
    difficult = [0, 0, 1]
    on_a = det_rows([gt[0]], [.8])
    # D not counted: 2 GT; A found: recall .5 at precision 1 -> 11-point 6 / 11
    assert voc_map(gt, on_a, difficult=difficult) == pytest.approx(6 / 11)
    # evaluate_difficult counts D: 3 GT, recall 1/3 -> t in {0, .1, .2, .3}: 1 -> 4 / 11
    assert voc_map(gt, on_a, difficult=difficult, evaluate_difficult=True) == \
        pytest.approx(4 / 11)
    # a detection of D (ranked first) is neither TP nor FP: still 6 / 11
    # (as a FP: precision 0, 1/2 at recall 0, .5 -> 6 * .5 / 11; as a TP: recall 1 -> 1)
    on_d_then_a = det_rows([gt[2], gt[0]], [.9, .8])
    assert voc_map(gt, on_d_then_a, difficult=difficult) == pytest.approx(6 / 11)
    # evaluated, D is a true positive: recall 1/3, 2/3 at precision 1 -> 11-point 7 / 11
    assert voc_map(gt, on_d_then_a, difficult=difficult, evaluate_difficult=True) == \
        pytest.approx(7 / 11)


def test_voc_overlap_uses_inclusive_pixels():
    gt = [[0, 0, 9, 9]]
    det = det_rows([[0, 0, 9, 4.2]], [.9])
    # +1 pixel: inter 10 * 5.2 = 52, union 10 * 10 = 100 -> .52 > .5: a true positive
    assert jaccard_overlap(det[:, 2:], gt)[0, 0] == pytest.approx(52 / 100)
    assert voc_map(gt, det) == 1.0
    # normalised boxes take no +1: 9 * 4.2 / (9 * 9) = .467 -> a false positive
    assert jaccard_overlap(det[:, 2:], gt, is_bbox_normalized=True)[0, 0] == \
        pytest.approx(9 * 4.2 / 81)
    assert voc_map(gt, det, is_bbox_normalized=True) == 0.0
    # touching boxes have no overlap at all in the legacy rule (+1 would give them a column)
    assert jaccard_overlap([[9, 0, 19, 9]], gt)[0, 0] == 0.0
    # exactly .5 is not a match: [0, 0, 9, 4] has 10 * 5 / 100
    assert voc_map(gt, det_rows([[0, 0, 9, 4]], [.9])) == 0.0


def test_voc_map_averages_classes_with_ground_truth_only():
    names = ('a', 'b', 'c')
    gt = [[0, 0, 20, 20], [40, 40, 60, 60]]
    # class a found (AP 1), class b missed (AP 0), class c has no GT: its false positive and the
    # class itself are left out -> mAP (1 + 0) / 2
    dets = det_rows([gt[0], FAR], [.9, .8], classes=[0, 2])
    assert voc_map(gt, dets, names=names, gt_class=[0, 1]) == 0.5
    # a detection of the wrong class is a false positive of its own class, not a match
    dets = det_rows([gt[0], gt[1]], [.9, .8], classes=[0, 0])
    assert voc_map(gt, dets, names=names, gt_class=[0, 1]) == 0.5


def test_voc_update_batch_layouts_agree():
    # network-input GT = original * scale_factor (y, x); padded with zeros and pad_gt_mask
    gt0 = np.array([[0, 0, 20, 20], [40, 0, 60, 20]], 'float32')
    gt1 = np.array([[10, 10, 50, 30]], 'float32')
    scale = np.array([[2., .5], [1., 1.]], 'float32')
    padded = np.zeros((2, 2, 4), 'float32')
    padded[0] = gt0 * [.5, 2., .5, 2.]
    padded[1, :1] = gt1
    gt_class = np.array([[[0], [1]], [[1], [0]]], 'int32')
    pad_gt_mask = np.array([[[1], [1]], [[1], [0]]], 'float32')
    dets = det_rows([gt0[0], FAR, gt1[0]], [.9, .5, .8], classes=[0, 1, 1])
    bbox_num = np.array([2, 1], 'int32')
    # class 0: 1 GT, 1 TP -> 1;  class 1: 2 GT, ranked TP (.8), FP (.5): precision 1, 1/2 at
    # recall .5, .5 -> 11-point 6 / 11;  mAP (1 + 6 / 11) / 2
    expected = (1 + 6 / 11) / 2
    layouts = {
        'numpy + pad_gt_mask': ({'gt_bbox': padded, 'gt_class': gt_class, 'scale_factor': scale,
                                 'pad_gt_mask': pad_gt_mask}, dets),
        'zero padding only': ({'gt_bbox': padded, 'gt_class': gt_class, 'scale_factor': scale},
                              dets),
        'paddle Tensors': ({'gt_bbox': paddle.to_tensor(padded),
                            'gt_class': paddle.to_tensor(gt_class),
                            'scale_factor': paddle.to_tensor(scale),
                            'pad_gt_mask': paddle.to_tensor(pad_gt_mask)},
                           paddle.to_tensor(dets)),
        'per-image lists': ({'gt_bbox': [gt0, gt1], 'gt_class': [gt_class[0], gt_class[1, :1]]},
                            dets),
    }
    for name, (inputs, bbox) in layouts.items():
        metric = VOCMetric(['a', 'b'], class_num=2)
        metric.update(inputs, {'bbox': bbox, 'bbox_num': bbox_num})
        metric.accumulate()
        assert metric.get_results()['bbox'][0] == pytest.approx(expected), name


def test_voc_log_lines_classwise_and_reset(tmp_path, metric_log):
    label_list = tmp_path / 'label_list.txt'
    label_list.write_text('background\ncat\ndog\n')
    metric = VOCMetric(str(label_list), class_num=2, classwise=True)
    gt = np.array([[[0, 0, 20, 20], [40, 40, 60, 60]]], 'float32')
    inputs = {'gt_bbox': gt, 'gt_class': np.array([[[0], [1]]], 'int32')}
    metric.update(inputs, {'bbox': det_rows([gt[0, 0]], [.9]), 'bbox_num': np.array([1])})
    metric.accumulate()
    metric.log()
    lines = messages(metric_log)
    assert 'mAP(0.50, 11point) = 50.00%' in lines
    assert any('| cat ' in line and '| 1.000 ' in line and '| dog ' in line and '| 0.000 ' in line
               for line in lines)
    metric.reset()
    metric.accumulate()
    assert metric.get_results() == {'bbox': [0.0]}


def test_voc_bad_input_is_named():
    with pytest.raises(ValueError, match='has 2 classes but class_num is 20'):
        VOCMetric(['a', 'b'])
    with pytest.raises(FileNotFoundError, match='nowhere.txt'):
        VOCMetric('nowhere.txt')
    metric = VOCMetric(['a', 'b'], class_num=2)
    gt = {'gt_bbox': np.zeros((1, 1, 4), 'float32'), 'gt_class': np.zeros((1, 1, 1), 'int32')}
    with pytest.raises(ValueError, match='detection class index 5 is outside 0..1'):
        metric.update(gt, {'bbox': det_rows([FAR], [.9], [5]), 'bbox_num': np.array([1])})
    with pytest.raises(ValueError, match=r'sums to 2 but .* has 1 rows'):
        metric.update(gt, {'bbox': det_rows([FAR], [.9]), 'bbox_num': np.array([2])})
    with pytest.raises(ValueError, match='map_type'):
        DetectionMAP(2, map_type='area')


# ----------------------------------------------------------------------------------------- COCO

CATEGORIES = [{'id': 1, 'name': 'circle'}, {'id': 3, 'name': 'square'},
              {'id': 7, 'name': 'star'}]
# image 5: a circle and a star; image 9: a square and a star (x, y, w, h)
GT_ANNS = [(5, 1, [10, 10, 40, 40]), (5, 7, [60, 60, 30, 50]),
           (9, 3, [0, 20, 64, 40]), (9, 7, [90, 10, 40, 40])]


def write_anno(path, anns=GT_ANNS, categories=CATEGORIES):
    images = [{'id': i, 'file_name': f'{i}.jpg', 'width': 160, 'height': 128} for i in (5, 9)]
    annotations = [{'id': k + 1, 'image_id': im, 'category_id': cat, 'bbox': box,
                    'area': box[2] * box[3], 'iscrowd': 0}
                   for k, (im, cat, box) in enumerate(anns)]
    path.write_text(json.dumps({'images': images, 'annotations': annotations,
                                'categories': categories}))
    return str(path)


def coco_outputs(rows_per_image):
    """``rows_per_image``: {im_id: [(class index, score, x, y, w, h)]} -> (inputs, outputs)."""
    ids = sorted(rows_per_image)
    rows = [[c, s, x, y, x + w, y + h] for i in ids for c, s, x, y, w, h in rows_per_image[i]]
    return ({'im_id': np.array(ids, 'int64')[:, None]},
            {'bbox': np.array(rows, 'float32').reshape(-1, 6),
             'bbox_num': np.array([len(rows_per_image[i]) for i in ids], 'int32')})


CLS = {1: 0, 3: 1, 7: 2}           # class index of each category id (the file's order)


def perfect_detections():
    rows = {5: [], 9: []}
    for im, cat, box in GT_ANNS:
        rows[im].append((CLS[cat], .9, *box))
    return rows


def test_coco_perfect_detections_give_ap_1(tmp_path, metric_log):
    metric = COCOMetric(write_anno(tmp_path / 'anno.json'))
    assert metric.clsid2catid == {0: 1, 1: 3, 2: 7}
    inputs, outputs = coco_outputs(perfect_detections())
    metric.update(inputs, outputs)
    metric.accumulate()
    stats = metric.get_results()['bbox']
    assert len(stats) == 12
    assert stats[0] == 1.0 and stats[1] == 1.0 and stats[2] == 1.0     # AP, AP50, AP75
    # areas 1600, 1500, 2560, 1600 px^2 are all "medium" (32^2 .. 96^2): no small or large GT
    assert stats[3] == -1 and stats[4] == 1.0 and stats[5] == -1
    summary = [m for m in messages(metric_log) if m.startswith(' Average')]
    assert len(summary) == 12
    assert summary[0] == (' Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | '
                          'maxDets=100 ] = 1.000')


def test_coco_category_ids_follow_the_file_order(tmp_path):
    # categories listed 3, 1, 7: class index i is the i-th listed (PaddleDetection's COCODataSet)
    anno = write_anno(tmp_path / 'anno.json', categories=[CATEGORIES[1], CATEGORIES[0],
                                                          CATEGORIES[2]])
    metric = COCOMetric(anno)
    assert metric.clsid2catid == {0: 3, 1: 1, 2: 7}
    # detections built for the sorted order (circle = 0) now claim the wrong categories
    inputs, outputs = coco_outputs(perfect_detections())
    metric.update(inputs, outputs)
    metric.accumulate()
    assert metric.get_results()['bbox'][0] < 1.0
    metric.reset()
    swapped = {im: [({0: 1, 1: 0, 2: 2}[c], *rest) for c, *rest in rows]
               for im, rows in perfect_detections().items()}
    metric.update(*coco_outputs(swapped))
    metric.accumulate()
    assert metric.get_results()['bbox'][0] == 1.0


def test_get_det_res_converts_corners_and_ids():
    bbox = np.array([[2, .75, 10, 20, 30.5, 60], [0, .5, 0, 0, 8, 8], [-1, 0, 0, 0, 0, 0]],
                    'float32')
    res = get_det_res(bbox, np.array([1, 2]), np.array([[5], [9]]), {0: 1, 1: 3, 2: 7})
    assert res == [{'image_id': 5, 'category_id': 7, 'bbox': [10, 20, 20.5, 40], 'score': .75},
                   {'image_id': 9, 'category_id': 1, 'bbox': [0, 0, 8, 8], 'score': .5}]
    # bias: the legacy inclusive widths, w = x2 - x1 + 1
    res = get_det_res(bbox[:1], np.array([1]), np.array([[5]]), {2: 7}, bias=1)
    assert res[0]['bbox'] == [10, 20, 21.5, 41]
    with pytest.raises(ValueError, match='class index 2 has no COCO category id'):
        get_det_res(bbox[:1], np.array([1]), np.array([[5]]), {0: 1})


def test_coco_shifted_box_ap_per_iou_threshold(tmp_path, metric_log):
    # one image, two stars: the first detected exactly (score .9), the second shifted 8 px right
    # (score .8): IoU = 32 * 40 / (40 * 40 + 8 * 40) = 32 / 48 = 2/3 (clear of every threshold)
    anns = [(5, 7, [0, 0, 40, 40]), (5, 7, [100, 0, 40, 40])]
    metric = COCOMetric(write_anno(tmp_path / 'anno.json', anns=anns), classwise=True)
    metric.update(*coco_outputs({5: [(2, .9, 0, 0, 40, 40), (2, .8, 108, 0, 40, 40)]}))
    metric.accumulate()
    stats = metric.get_results()['bbox']
    # IoU thresholds .50 .55 .60 .65 <= 2/3: both match, AP 1.
    # .70 ... .95 (6 of them): TP then FP: recall .5 at precision 1, so 51 of the 101 recall
    #   points (0, .01, ..., .50) have precision 1 and the rest 0: AP 51/101.
    assert stats[1] == pytest.approx(1.0)                        # AP50
    assert stats[2] == pytest.approx(51 / 101)                   # AP75
    assert stats[0] == pytest.approx((4 * 1 + 6 * 51 / 101) / 10)
    # AR@100: recall 1 at 4 thresholds, .5 at 6
    assert stats[8] == pytest.approx((4 * 1 + 6 * .5) / 10)
    lines = messages(metric_log)
    expected_ap = f'{(4 + 6 * 51 / 101) / 10:0.3f}'                # 0.703
    assert any('| star ' in line and f'| {expected_ap} ' in line for line in lines)
    assert any('| circle ' in line and '| nan ' in line for line in lines)   # no circle GT


def test_coco_no_detections_gives_zeros_and_a_warning(tmp_path, metric_log):
    metric = COCOMetric(write_anno(tmp_path / 'anno.json'))
    metric.update({'im_id': paddle.to_tensor([[5], [9]], dtype='int64')},
                  {'bbox': paddle.zeros([0, 6]), 'bbox_num': paddle.to_tensor([0, 0], 'int32')})
    metric.accumulate()
    stats = metric.get_results()['bbox']
    # pycocotools: 0 where there is ground truth, -1 for the area ranges without any
    assert stats == [0.0, 0.0, 0.0, -1.0, 0.0, -1.0, 0.0, 0.0, 0.0, -1.0, 0.0, -1.0]
    assert any('no detections' in m for m in messages(metric_log, logging.WARNING))


def test_coco_output_eval_and_prediction_only(tmp_path):
    anno = write_anno(tmp_path / 'anno.json')
    inputs, outputs = coco_outputs(perfect_detections())
    metric = COCOMetric(anno, output_eval=str(tmp_path / 'out'))
    metric.update(inputs, outputs)
    metric.accumulate()
    saved = json.loads((tmp_path / 'out' / 'bbox.json').read_text())
    assert saved == json.loads(json.dumps(metric.results['bbox']))
    assert sorted((r['image_id'], r['category_id']) for r in saved) == \
        [(5, 1), (5, 7), (9, 3), (9, 7)]
    only = COCOMetric(anno, output_eval=str(tmp_path / 'pred'), save_prediction_only=True)
    only.update(inputs, outputs)
    only.accumulate()
    assert only.get_results() == {}
    assert len(json.loads((tmp_path / 'pred' / 'bbox.json').read_text())) == 4


def test_coco_bad_input_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match='missing.json'):
        COCOMetric(str(tmp_path / 'missing.json'))
    anno = write_anno(tmp_path / 'anno.json')
    with pytest.raises(ValueError, match="IouType 'segm'"):
        COCOMetric(anno, IouType='segm')
    metric = COCOMetric(anno)
    metric.update(*coco_outputs({4: [(0, .9, 0, 0, 10, 10)]}))
    with pytest.raises(ValueError, match=r'image ids \[4\]'):
        metric.accumulate()
    with pytest.raises(ValueError, match='bbox_num has 1 entries but im_id has 2'):
        metric.update({'im_id': np.array([[5], [9]])},
                      {'bbox': np.zeros((0, 6)), 'bbox_num': np.array([0])})


# --------------------------------------------------------------- PaddleDetection 2.6 golden

@pytest.fixture(scope='module')
def golden():
    if not os.path.isfile(GOLDEN):
        pytest.skip(f'{GOLDEN} is absent (tests/data/gen_metrics_golden.py makes it)')
    return np.load(GOLDEN)


def test_coco_metric_equals_paddledetection(golden, tmp_path):
    anno = tmp_path / 'anno.json'
    anno.write_text(str(golden['coco_anno_json']))
    nums = golden['coco_bbox_num']
    ends = np.cumsum(nums)
    for bias in (0, 1):
        metric = COCOMetric(str(anno), bias=bias)
        for sl in (slice(0, 2), slice(2, 6)):          # the generator's two batches
            first, last = ends[sl.start] - nums[sl.start], ends[sl.stop - 1]
            metric.update({'im_id': golden['coco_im_id'][sl]},
                          {'bbox': golden['coco_bbox'][first:last], 'bbox_num': nums[sl]})
        metric.accumulate()
        assert metric.get_results()['bbox'] == golden[f'coco_stats_bias{bias}'].tolist(), bias


@pytest.mark.parametrize('with_mask', [True, False])
def test_voc_metric_equals_paddledetection(golden, with_mask):
    configs = [('11point', False), ('11point', True), ('integral', False), ('integral', True)]
    for (map_type, evaluate_difficult), expected in zip(configs, golden['voc_map']):
        metric = VOCMetric(golden['voc_class_names'].tolist(), class_num=3, map_type=map_type,
                           evaluate_difficult=evaluate_difficult)
        for b in range(int(golden['voc_num_batches'])):
            keys = ['gt_bbox', 'gt_class', 'difficult', 'scale_factor']
            inputs = {k: golden[f'voc{b}_{k}'] for k in keys + ['pad_gt_mask'] * with_mask}
            metric.update(inputs, {'bbox': golden[f'voc{b}_bbox'],
                                   'bbox_num': golden[f'voc{b}_bbox_num']})
        metric.accumulate()
        assert metric.get_results()['bbox'][0] == expected, (map_type, evaluate_difficult)
