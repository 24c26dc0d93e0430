"""Writes ppdet26_simota_golden.npz: PaddleDetection 2.6's SimOTAAssigner (``use_vfl=False``, its
defaults otherwise: center_radius 2.5, candidate_topk 10, iou_weight 3, cls_weight 1) on random
images.

Run with ``paddledet==2.6.0`` installed (never by the tests): ``python
tests/data/gen_simota_golden.py``. ppdet_lite plays no part. Input 160 x 160 at strides 8, 16, 32
(levels 20 x 20, 10 x 10, 5 x 5: L = 525 priors, centres at the cell centres), C = 4. Each case
``n{n}`` holds a batch of images with n GTs each plus one padded slot (zeros, mask 0; ppdet sees
the real GTs only, one image at a time): ``gt_bbox [B, n + 1, 4]``, ``gt_class [B, n + 1, 1]``
int64, ``pad_gt_mask [B, n + 1, 1]``, ``pred_scores [B, L, C]`` (probabilities),
``pred_bboxes [B, L, 4]`` (pixels), and ppdet's ``labels [B, L]`` and ``gt_index [B, L]`` (the
GT slot of each positive, found from its box target; -1 for background). Half of the images have
random predictions, half predictions near the GT a prior lies in.

PaddleDetection adds its 1e8 outside penalty in float32, where it rounds to multiples of 8, so
penalised candidates whose costs differ by less than that tie and its kernels' order decides them.
Images where such a tie decides a claim (at a GT's k-th place) or a contested prior are left
out: there ppdet_lite ranks by the exact cost and may differ.
"""

import os

import numpy as np
import paddle
from ppdet.modeling.assigners.simota_assigner import SimOTAAssigner

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'ppdet26_simota_golden.npz')
SIZE, STRIDES, C, RADIUS, TOPK = 160, [8, 16, 32], 4, 2.5, 10
PER_CASE = 6


def priors():
    points, strides = [], []
    for s in STRIDES:
        cells = (np.arange(SIZE // s) + 0.5) * s
        y, x = np.meshgrid(cells, cells, indexing='ij')
        points.append(np.stack([x.ravel(), y.ravel()], -1))
        strides.append(np.full(x.size, s))
    return np.concatenate(points).astype('float32'), np.concatenate(strides).astype('float32')


def random_image(rng, n, points, near):
    wh = np.exp(rng.uniform(np.log(8), np.log(100), (n, 2)))
    xy = rng.uniform(0, 1, (n, 2)) * (SIZE - wh)
    boxes = np.concatenate([xy, xy + wh], -1).astype('float32')
    labels = rng.integers(0, C, (n, 1)).astype('int64')
    scores = (1 / (1 + np.exp(-rng.uniform(-6, 3, (len(points), C))))).astype('float32')
    if near:   # a prior inside a GT predicts that GT's sides (+-15 %; the smallest GT last)
        dist = np.full((len(points), 4), 4.0)
        for g in np.argsort(-(wh[:, 0] * wh[:, 1])):
            inside = ((points[:, 0] > boxes[g, 0]) & (points[:, 0] < boxes[g, 2])
                      & (points[:, 1] > boxes[g, 1]) & (points[:, 1] < boxes[g, 3]))
            sides = np.concatenate([points - boxes[g, :2], boxes[g, 2:] - points], -1)
            dist[inside] = sides[inside] * rng.uniform(0.85, 1.15, (inside.sum(), 4))
    else:
        dist = np.exp(rng.uniform(0, np.log(60), (len(points), 4)))
    pred = np.concatenate([points - dist[:, :2], points + dist[:, 2:]], -1).astype('float32')
    return boxes, labels, scores, pred


def float32_penalty_ties(boxes, labels, scores, pred, points, strides):
    """Whether ppdet's float32 ``cost + 1e8`` ties candidates at a GT's k-th place or at the
    lowest cost of a prior several GTs claim (the claims as ppdet makes them, by that cost)."""
    x, y = points[:, 0], points[:, 1]
    x1, y1, x2, y2 = (boxes[:, i:i + 1] for i in range(4))
    cx, cy, reach = (x1 + x2) / 2, (y1 + y2) / 2, RADIUS * strides
    in_box = (x > x1) & (y > y1) & (x < x2) & (y < y2)
    in_ctr = (x > cx - reach) & (y > cy - reach) & (x < cx + reach) & (y < cy + reach)
    fg = np.nonzero((in_box | in_ctr).any(0))[0]
    lt = np.maximum(pred[None, fg, :2], boxes[:, None, :2])
    rb = np.minimum(pred[None, fg, 2:], boxes[:, None, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
    iou = inter / (area(pred[fg])[None] + area(boxes)[:, None] - inter)
    p = scores[fg].astype(np.float64)
    log_q, log_p = np.maximum(np.log(1 - p), -100), np.maximum(np.log(p), -100)
    own = labels[:, 0]
    cls = -(log_q.sum(1)[None] - log_q[:, own].T + log_p[:, own].T)
    cost = cls + 3 * -np.log(iou + 1e-7)
    cost32 = cost.astype(np.float32) + np.float32(1e8) * ~(in_box & in_ctr)[:, fg]
    claims = np.zeros(cost.shape, bool)
    for g in range(len(boxes)):
        k = max(1, int(np.sort(iou[g])[::-1][:TOPK].sum()))
        ranked = np.sort(cost32[g])
        if k < len(ranked) and ranked[k - 1] == ranked[k]:
            return True
        claims[g, np.argsort(cost32[g], kind='stable')[:k]] = True
    for col in np.nonzero(claims.sum(0) > 1)[0]:
        if (cost32[:, col] == cost32[:, col].min()).sum() > 1:
            return True
    return False


def main():
    paddle.set_device('cpu')
    points, strides = priors()
    centres = paddle.to_tensor(np.concatenate([points, strides[:, None], strides[:, None]], -1))
    ref = SimOTAAssigner(num_classes=C, use_vfl=False)
    rng = np.random.default_rng(0)
    out = {}
    for n in (1, 3, 8):
        images, skipped = [], 0
        while len(images) < PER_CASE:
            near = len(images) % 2 == 1
            boxes, labels, scores, pred = random_image(rng, n, points, near)
            if float32_penalty_ties(boxes, labels, scores, pred, points, strides):
                skipped += 1
                continue
            _, label, _, target = ref(paddle.to_tensor(scores), centres, paddle.to_tensor(pred),
                                      paddle.to_tensor(boxes), paddle.to_tensor(labels))
            gt_index = np.full(len(points), -1)
            for prior in np.nonzero(label != C)[0]:
                gt_index[prior] = np.nonzero((boxes == target[prior]).all(-1))[0][0]
            images.append((boxes, labels, scores, pred, np.asarray(label), gt_index))
        print(f'n={n}: {PER_CASE} images kept, {skipped} left out for float32 penalty ties, '
              f'{sum((im[5] >= 0).sum() for im in images)} positives')
        pad = lambda a: np.concatenate([a, np.zeros_like(a[:1])])  # noqa: E731
        out[f'n{n}/gt_bbox'] = np.stack([pad(im[0]) for im in images])
        out[f'n{n}/gt_class'] = np.stack([pad(im[1]) for im in images])
        out[f'n{n}/pad_gt_mask'] = np.stack([pad(np.ones((n, 1), 'float32'))
                                             for _ in images])
        out[f'n{n}/pred_scores'] = np.stack([im[2] for im in images])
        out[f'n{n}/pred_bboxes'] = np.stack([im[3] for im in images])
        out[f'n{n}/labels'] = np.stack([im[4] for im in images]).astype('int64')
        out[f'n{n}/gt_index'] = np.stack([im[5] for im in images]).astype('int64')
    np.savez_compressed(OUT, **out)
    print('wrote', OUT, os.path.getsize(OUT), 'bytes')


if __name__ == '__main__':
    main()
