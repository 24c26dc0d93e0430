"""Milliseconds per call of ATSSAssigner and TaskAlignedAssigner at PP-YOLOE's training shapes.

640 x 640 input (8400 anchors, strides 8/16/32), batch 8, 80 classes, 20 and 100 GT slots per image
with boxes of 8-400 px inside the image (log-uniform sides) and some images padded. Each figure is
the median of ``--reps`` calls after one warm-up call.

    python benchmarks/bench_assigners.py [--reps 7] [--integer] [--check]

``--integer`` rounds the GT corners to whole pixels: GT centres then often lie on the anchor grid's
symmetry lines, the tie-heavy case. ``--check`` also compares every result with the plain dense
formulation of tests/test_assigners.py, for exact equality.
"""

import argparse
import importlib.util
import os
import statistics
import sys
import time

import numpy as np
import paddle

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from ppdet_lite.modeling.assigners import ATSSAssigner, TaskAlignedAssigner  # noqa: E402
from ppdet_lite.modeling.bbox_utils import generate_anchors_for_grid_cell  # noqa: E402

SIZE, STRIDES, BATCH, CLASSES = 640, [8, 16, 32], 8, 80


def make_inputs(num_gts, integer, seed=0):
    """One batch of GT and predictions, as PPYOLOEHead hands them to the assigners."""
    rng = np.random.default_rng(seed)
    feats = [paddle.zeros([1, 1, SIZE // s, SIZE // s]) for s in STRIDES]
    anchors, points, num_anchors_list, _ = generate_anchors_for_grid_cell(feats, STRIDES)
    num_anchors = points.shape[0]

    wh = np.exp(rng.uniform(np.log(8), np.log(400), (BATCH, num_gts, 2)))
    x1y1 = rng.uniform(0, 1, (BATCH, num_gts, 2)) * (SIZE - wh)
    boxes = np.concatenate([x1y1, x1y1 + wh], axis=-1)
    if integer:
        boxes = np.round(boxes)
    # Every other image has up to a quarter of its slots padded.
    num_real = np.full(BATCH, num_gts)
    num_real[1::2] -= rng.integers(0, num_gts // 4 + 1, BATCH // 2)
    mask = (np.arange(num_gts)[None] < num_real[:, None]).astype('float32')[..., None]
    labels = rng.integers(0, CLASSES, (BATCH, num_gts, 1)) * mask.astype('int64')

    scores = 1 / (1 + np.exp(-rng.uniform(-8, 3, (BATCH, num_anchors, CLASSES))))
    distance = np.exp(rng.uniform(0, np.log(SIZE / 3), (BATCH, num_anchors, 4)))
    xy = points.numpy()
    pred = np.concatenate([xy - distance[..., :2], xy + distance[..., 2:]], axis=-1)
    as_float = lambda a: paddle.to_tensor(a.astype('float32'))  # noqa: E731
    return dict(anchors=anchors, points=points, num_anchors_list=num_anchors_list,
                gt_labels=paddle.to_tensor(labels), gt_bboxes=as_float(boxes * mask),
                pad_gt_mask=as_float(mask), pred_scores=as_float(scores),
                pred_bboxes=as_float(pred))


def run_atss(d, assigner=None):
    """ATSS as PPYOLOEHead calls it (with predicted boxes for the soft scores)."""
    assigner = assigner or ATSSAssigner(num_classes=CLASSES)
    return assigner(d['anchors'], d['num_anchors_list'], d['gt_labels'], d['gt_bboxes'],
                    d['pad_gt_mask'], CLASSES, pred_bboxes=d['pred_bboxes'])


def run_tal(d, assigner=None):
    assigner = assigner or TaskAlignedAssigner()
    return assigner(d['pred_scores'], d['pred_bboxes'], d['points'], d['num_anchors_list'],
                    d['gt_labels'], d['gt_bboxes'], d['pad_gt_mask'], CLASSES)


def dense_references():
    """The dense definitions of tests/test_assigners.py, as (ATSS, TAL) assigner callables."""
    path = os.path.join(ROOT, 'tests', 'test_assigners.py')
    spec = importlib.util.spec_from_file_location('test_assigners', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def atss(anchors, counts, labels, boxes, mask, bg_index, pred_bboxes):
        return module.dense_atss(anchors, counts, labels, boxes, mask, bg_index, CLASSES,
                                 pred_bboxes=pred_bboxes)
    return atss, module.dense_tal


def median_ms(fn, reps):
    fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--reps', type=int, default=7, help='timed calls per figure (median)')
    parser.add_argument('--integer', action='store_true', help='whole-pixel GT corners (ties)')
    parser.add_argument('--check', action='store_true', help='compare with the dense definition')
    args = parser.parse_args()
    paddle.set_device('cpu')
    references = dense_references() if args.check else (None, None)
    for num_gts in (20, 100):
        d = make_inputs(num_gts, args.integer)
        if num_gts == 20:
            print('paddle %s, %d CPUs; batch %d, %d anchors, %d classes%s' % (
                paddle.__version__, os.cpu_count(), BATCH, d['points'].shape[0], CLASSES,
                ', whole-pixel GT corners' if args.integer else ''))
        for name, run, reference in (('ATSS', run_atss, references[0]),
                                     ('TAL', run_tal, references[1])):
            ms = median_ms(lambda: run(d), args.reps)
            line = '%-4s n=%-3d %8.1f ms/call' % (name, num_gts, ms)
            if args.check:
                same = all(np.array_equal(a.numpy(), b.numpy())
                           for a, b in zip(run(d), run(d, reference)))
                line += '   identical to the dense definition: %s' % same
            print(line, flush=True)


if __name__ == '__main__':
    main()
