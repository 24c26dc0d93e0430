"""Writes ppdet26_assigner_options_golden.npz: PaddleDetection 2.6's TaskAlignedAssigner with
``is_close_gt=True`` and ATSSAssigner with ``sm_use=True`` on random batches.

Run with ``paddledet==2.6.0`` installed (never by the tests): ``python
tests/data/gen_assigner_options_golden.py``. ppdet_lite plays no part. Each case ``k`` stores the
inputs (``k/gt_bbox [B, n, 4]``, ``k/gt_class [B, n, 1]`` int64, ``k/pad_gt_mask [B, n, 1]``,
``k/pred_scores [B, L, C]``, ``k/pred_bboxes [B, L, 4]``) for a
96 x 128 input at strides 32, 16, 8 (L = 252, anchors from the grid, grid_cell_scale 5, offset 0.5,
C = 3, bg_index 3) and PaddleDetection's outputs ``k/{tal,atss}_{labels,bboxes,scores}``. The
first cases are ones where ``sm_use`` changes ATSS's labels (contested anchors whose best-IoU GT
slot does not claim them), so the option's rule is exercised, not only accepted.
"""

import os

import numpy as np
import paddle
from ppdet.modeling.assigners.atss_assigner import ATSSAssigner
from ppdet.modeling.assigners.task_aligned_assigner import TaskAlignedAssigner
from ppdet.modeling.assigners.utils import generate_anchors_for_grid_cell

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                   'ppdet26_assigner_options_golden.npz')
H, W, STRIDES, C = 96, 128, [32, 16, 8], 3


def random_case(rng, points):
    batch, n = 2, rng.randint(3, 9)
    wh = rng.uniform(8, 70, (batch, n, 2))
    xy = rng.uniform([0, 0], [W, H], (batch, n, 2))
    boxes = np.concatenate([xy - wh / 2, xy + wh / 2], -1).astype('float32')
    labels = rng.randint(0, C, (batch, n, 1)).astype('int64')
    pad = (rng.rand(batch, n, 1) < 0.85).astype('float32')
    # Padded slots hold zeros, as the readers pad: PaddleDetection's conflict step compares every
    # slot, padded ones included, and could otherwise give a prior to a padded slot's box.
    boxes = boxes * pad
    centres = points[None]
    # GT corners are not rounded, so no two priors are equally near a GT centre. Predicted boxes
    # large enough to overlap every GT near their point, and continuous scores:
    # every is_close_gt candidate gets a distinct metric > 0, so no top-k place is decided by a
    # tie (PaddleDetection's order among equal values is its kernel's, not a rule).
    size = rng.uniform(120, 200, (batch, len(points), 2))
    shift = rng.randn(batch, len(points), 2) * 4
    pred_bboxes = np.concatenate([centres - size / 2 + shift, centres + size / 2 + shift],
                                 -1).astype('float32')
    pred_scores = rng.uniform(0.05, 1, (batch, len(points), C)).astype('float32')
    return dict(gt_bbox=boxes, gt_class=labels, pad_gt_mask=pad, pred_scores=pred_scores,
                pred_bboxes=pred_bboxes)


def main():
    feats = [paddle.zeros([1, 1, H // s, W // s]) for s in STRIDES]
    anchors, points, nums, _ = generate_anchors_for_grid_cell(feats, STRIDES, 5.0, 0.5)
    rng = np.random.RandomState(2026)
    contested, plain, out = [], [], {}
    while len(contested) < 4 or len(plain) < 2:
        case = random_case(rng, points.numpy())
        t = {k: paddle.to_tensor(v) for k, v in case.items()}
        gts = (t['gt_class'], t['gt_bbox'], t['pad_gt_mask'])
        atss = ATSSAssigner(topk=9, num_classes=C, sm_use=True)(
            anchors, nums, *gts, bg_index=C, pred_bboxes=t['pred_bboxes'])
        default = ATSSAssigner(topk=9, num_classes=C)(
            anchors, nums, *gts, bg_index=C, pred_bboxes=t['pred_bboxes'])
        tal = TaskAlignedAssigner(topk=13, is_close_gt=True)(
            t['pred_scores'], t['pred_bboxes'], points, nums, *gts, bg_index=C)
        differs = not np.array_equal(atss[0].numpy(), default[0].numpy())
        group = contested if differs else plain
        if len(group) >= (4 if differs else 2):
            continue
        for name, result in (('atss', atss), ('tal', tal)):
            for field, value in zip(('labels', 'bboxes', 'scores'), result[:3]):
                case[f'{name}_{field}'] = value.numpy()
        group.append(case)
    for k, case in enumerate(contested + plain):
        out.update({f'{k}/{name}': value for name, value in case.items()})
    np.savez_compressed(OUT, **out)
    print(OUT, len(contested) + len(plain), 'cases')


if __name__ == '__main__':
    main()
