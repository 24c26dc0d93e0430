"""SimOTAAssigner (YOLOX): hand-computed cases pinning each rule, and equality with a dense numpy
definition (inside, centre region and cost written here; IoU and dynamic-k claiming in
assigner_cases) on random and tie-heavy batches."""

import math
import os

import numpy as np
import paddle
import pytest

from assigner_cases import (as_inputs, bce, check_batched_result, check_degenerate_batches,
                            dense_dynamic_k, host_copies, np_iou, one_image, random_batch)
from ppdet_lite.modeling.assigners import (BACKGROUND, GTs, Preds, Priors, SimOTAAssigner,
                                           dynamic_k, grid_priors)


def positives(result):
    return np.nonzero(result.gt_index.numpy()[0] >= 0)[0]


# ---------------------------------------------------------------------------------------------
# hand-computed cases


@pytest.mark.parametrize('radius, expected', [
    # 8 x 8 grid, stride 8: centres 4, 12, ..., 60. GT [25, 25, 31, 31], centre 28: only prior
    # (r=3, c=3) = index 27 is inside the box.
    # radius 1: centre region (20, 36) on both axes: 28 only (20 is not > 20): in both.
    (1.0, [27]),
    # radius 1.5: (16, 40): 20, 28, 36 -> the 3 x 3 block around index 27.
    (1.5, [18, 19, 20, 26, 27, 28, 34, 35, 36]),
])
def test_candidates_are_in_box_or_in_the_centre_region(radius, expected):
    # Every prediction is the GT box (IoU 1) and all scores are equal, so k = min(10, candidates)
    # and every candidate is taken: the positives are exactly the candidates.
    gt = [25, 25, 31, 31]
    gts, preds = one_image([gt], [0], np.full((64, 1), 0.5), [gt] * 64)
    result = SimOTAAssigner(center_radius=radius, num_classes=1).assign(
        grid_priors([(8, 8)], [8]), gts, preds)
    np.testing.assert_array_equal(positives(result), expected)


def test_candidates_outside_box_and_centre_pay_the_penalty():
    # GT [9, 9, 47, 15] (x 12..44 inside, y 12 inside: row 1), radius 1: centre (28, 12) -> the
    # centre region (20, 36) x (4, 20) holds x = 28 only on row 1. In box and centre: index 11.
    # Predictions: IoU .5 everywhere ([9, 9, 28, 15] has half the width), except prior 9 (x 12,
    # in the box only) whose prediction is the GT box itself (IoU 1, the best IoU cost).
    # IoU sum over the 5 box candidates: 1 + 4 * .5 = 3 -> k = 3: index 11 first, then the two
    # lowest-index penalised candidates (9 does not win despite its IoU 1: the penalty is 1e5).
    gt = [9, 9, 47, 15]
    preds = [[9, 9, 28, 15]] * 64
    preds[9] = gt
    gts, preds = one_image([gt], [0], np.full((64, 1), 0.5), preds)
    result = SimOTAAssigner(center_radius=1.0, num_classes=1, use_vfl=False).assign(
        grid_priors([(8, 8)], [8]), gts, preds)
    np.testing.assert_array_equal(positives(result), [9, 10, 11])


@pytest.mark.parametrize('use_vfl', [False, True])
def test_classification_cost_sums_bce_over_all_classes(use_vfl):
    # Two candidates of a class-0 GT [0, 0, 16, 8] (priors 0 and 1 of a 4 x 4 grid, stride 8,
    # radius 1: both in box and centre). A: IoU .5, p = (.5, .01); B: IoU .625, p = (.625, .95).
    # IoU sum 1.125 -> k = 1.
    gt = [0, 0, 16, 8]
    scores = np.full((16, 2), 0.3)
    scores[0] = [0.5, 0.01]
    scores[1] = [0.625, 0.95]
    gts, preds = one_image([gt], [0], scores, [[0, 0, 8, 8], [0, 0, 10, 8]] + [[40] * 4] * 14)
    if use_vfl:   # positive term u * BCE(p, u), negative terms .75 * p**2 * BCE(p, 0)
        cost_a = 0.5 * bce(0.5, 0.5) + 0.75 * 0.01 ** 2 * bce(0.01, 0)        # 0.347
        cost_b = 0.625 * bce(0.625, 0.625) + 0.75 * 0.95 ** 2 * bce(0.95, 0)  # 0.414 + 2.028
    else:         # one-hot target: BCE(p_c, 1) + sum of BCE(p_k, 0)
        cost_a = bce(0.5, 1) + bce(0.01, 0)                                   # 0.703
        cost_b = bce(0.625, 1) + bce(0.95, 0)                                 # 3.466
    cost_a += 3 * -math.log(0.5 + 1e-7)
    cost_b += 3 * -math.log(0.625 + 1e-7)
    assert cost_a < cost_b      # without the other class's term B would win
    result = SimOTAAssigner(center_radius=1.0, num_classes=2, use_vfl=use_vfl).assign(
        grid_priors([(4, 4)], [8]), gts, preds)
    np.testing.assert_array_equal(positives(result), [0])
    # Target: the IoU of the prediction at the GT class.
    np.testing.assert_allclose(result.assigned_scores.numpy()[0, 0], [0.5, 0], rtol=1e-6)


def test_dynamic_k_is_the_floor_of_the_top_ten_iou_sum():
    # GT [0, 0, 64, 16], radius 1: rows 0-1 of an 8 x 8 grid (16 priors) in the box; the
    # centre region (24, 40) x (0, 16) holds x 28, 36 on rows 0-1: priors 3, 4, 11, 12 are in
    # both. Their predictions have IoUs .9 .8 .7 .6 (boxes [0, 0, w, 16]); the other 12 box
    # candidates .05 each. Top-10 sum: 3.0 + 6 * .05 = 3.3 -> k = 3.
    gt = [0, 0, 64, 16]
    preds = [[0, 0, 3.2, 16]] * 64
    for prior, iou in zip((3, 4, 11, 12), (0.9, 0.8, 0.7, 0.6)):
        preds[prior] = [0, 0, 64 * iou, 16]
    gts, preds = one_image([gt], [0], np.full((64, 1), 0.5), preds)
    result = SimOTAAssigner(center_radius=1.0, num_classes=1, use_vfl=False).assign(
        grid_priors([(8, 8)], [8]), gts, preds)
    np.testing.assert_array_equal(positives(result), [3, 4, 11])


def test_conflict_goes_to_the_claimant_of_lowest_cost_not_highest_iou():
    # Prior 5 (centre (12, 12)) is the only in-box candidate of both GTs (radius .5: centre
    # regions (8, 16) around 12). Its prediction has IoU 1 with GT0 and 64/144 with GT1, but
    # its class-1 score is the confident one.
    gt0, gt1 = [8, 8, 16, 16], [6, 6, 18, 18]
    scores = np.full((16, 2), 0.5)
    scores[5] = [0.01, 0.9]
    preds = [[100, 100, 110, 110]] * 16
    preds[5] = [8, 8, 16, 16]
    gts, preds = one_image([gt0, gt1], [0, 1], scores, preds)
    u1 = 64 / 144
    cost0 = bce(0.01, 1) + bce(0.9, 0) + 3 * -math.log(1 + 1e-7)          # 6.91
    cost1 = bce(0.01, 0) + bce(0.9, 1) + 3 * -math.log(u1 + 1e-7)         # 2.55
    assert cost1 < cost0
    result = SimOTAAssigner(center_radius=0.5, num_classes=2, use_vfl=False).assign(
        grid_priors([(4, 4)], [8]), gts, preds)
    expected = np.full(16, BACKGROUND)
    expected[5] = 1
    np.testing.assert_array_equal(result.gt_index.numpy()[0], expected)
    np.testing.assert_allclose(result.assigned_scores.numpy()[0, 5], [0, u1], rtol=1e-6)


def test_image_scope_costs_every_gt_against_every_candidate_of_the_image():
    # 4 x 4 grid, stride 8, radius .5 (centre regions of half-side 4 px). GT0 [0, 0, 16, 8]:
    # priors 0, 1 (x 4, 12) in its box, none in its centre region (4, 12) (strict), so both are
    # penalised; GT1 [16, 0, 32, 8] likewise with priors 2, 3. Prior 2 predicts GT0's box.
    gt0, gt1 = [0, 0, 16, 8], [16, 0, 32, 8]
    preds = [[0, 0, 4, 8], [0, 0, 4, 8], gt0, gt1] + [[40, 40, 50, 50]] * 12
    gts, preds = one_image([gt0, gt1], [0, 0], np.full((16, 1), 0.5), preds)
    priors = grid_priors([(4, 4)], [8])
    own = SimOTAAssigner(num_classes=1, center_radius=0.5, use_vfl=False,
                         candidate_scope='gt').assign(priors, gts, preds)
    # 'gt': GT0 ranks priors 0, 1 (IoU .25 each, k = 1, equal costs: prior 0).
    np.testing.assert_array_equal(own.gt_index.numpy()[0, :4], [0, -1, -1, 1])
    # 'image' (YOLOX / PaddleDetection): GT0 also ranks priors 2, 3, all penalised alike, so the
    # lowest cost wins: prior 2 (IoU 1). Its top IoUs sum to 1.5 -> k = 1.
    image = SimOTAAssigner(num_classes=1, center_radius=0.5, use_vfl=False,
                           candidate_scope='image').assign(priors, gts, preds)
    np.testing.assert_array_equal(image.gt_index.numpy()[0, :4], [-1, -1, 0, 1])


# ---------------------------------------------------------------------------------------------
# dense numpy definition


def dense_simota(points, strides, labels, boxes, mask, scores, pred_boxes, center_radius=2.5,
                 candidate_topk=10, iou_weight=3.0, cls_weight=1.0, use_vfl=True, scope='gt'):
    """gt_index [B, L] and the positives' IoU [B, L], straight from the definition; the penalty
    is a large number added in float64."""
    batch, num_gts = boxes.shape[:2]
    num_priors = points.shape[0]
    gt_index = np.full((batch, num_priors), BACKGROUND)
    pos_iou = np.zeros((batch, num_priors), np.float32)
    x, y = points[:, 0], points[:, 1]
    reach = np.float32(center_radius) * strides
    for b in range(batch):
        p = scores[b].astype(np.float64)
        log_p = np.maximum(np.log(np.maximum(p, 0)), -100)
        log_q = np.maximum(np.log(np.maximum(1 - p, 0)), -100)
        iou = np_iou(pred_boxes[b][None], boxes[b][:, None])
        real = mask[b, :, 0] > 0
        x1, y1, x2, y2 = (boxes[b, :, i:i + 1] for i in range(4))
        cx, cy = (x1 + x2) / np.float32(2), (y1 + y2) / np.float32(2)
        in_box = (x - x1 > 0) & (y - y1 > 0) & (x2 - x > 0) & (y2 - y > 0)
        in_ctr = ((x - (cx - reach) > 0) & (y - (cy - reach) > 0)
                  & ((cx + reach) - x > 0) & ((cy + reach) - y > 0))
        cand = (in_box | in_ctr) & real[:, None]
        if scope == 'image':
            cand = np.broadcast_to(cand.any(0), cand.shape) & real[:, None]
        cost = np.zeros((num_gts, num_priors))
        for g in range(num_gts):
            u = iou[g].astype(np.float64)
            t = np.zeros_like(p)
            t[:, labels[b, g, 0]] = u if use_vfl else 1
            loss = -(t * log_p + (1 - t) * log_q)
            if use_vfl:
                loss = loss * np.where(t > 0, t, 0.75 * np.abs(p - t) ** 2)
            cost[g] = (cls_weight * loss.sum(-1) + iou_weight * -np.log(u + 1e-7)
                       + 1e9 * ~(in_box[g] & in_ctr[g]))
        gt_index[b], pos_iou[b] = dense_dynamic_k(cost, iou, cand, real, candidate_topk, scope)
    return gt_index, pos_iou


@pytest.mark.parametrize('seed, whole, equal_preds, use_vfl, scope, radius', [
    (0, False, False, True, 'gt', 2.5), (1, True, False, False, 'gt', 2.5),
    (2, True, True, True, 'gt', 2.5), (3, False, True, False, 'gt', 2.5),
    (4, False, False, True, 'image', 1.0), (5, True, True, False, 'image', 1.0)])
def test_batched_equals_per_image_equals_dense_definition(seed, whole, equal_preds, use_vfl,
                                                         scope, radius):
    rng = np.random.default_rng(seed)
    priors = grid_priors([(8, 8), (4, 4), (2, 2)], [8, 16, 32])
    batch = random_batch(rng, priors, 3, 8, 4, whole, equal_preds)
    assigner = SimOTAAssigner(num_classes=4, use_vfl=use_vfl, candidate_scope=scope,
                              center_radius=radius)
    result = assigner.assign(priors, *as_inputs(*batch))
    points, strides = priors.points.numpy(), priors.strides.numpy()
    gt_index, pos_iou = dense_simota(points, strides, *batch, use_vfl=use_vfl, scope=scope,
                                     center_radius=radius)
    if scope == 'image':   # the case tells the scopes apart
        other = dense_simota(points, strides, *batch, use_vfl=use_vfl, center_radius=radius)[0]
        assert (other != gt_index).any()
    check_batched_result(assigner, priors, batch, result, gt_index, pos_iou)


@pytest.mark.parametrize('scope', ['gt', 'image'])
def test_large_gts_and_other_arguments_match_the_dense_definition(scope):
    # 40 x 40 priors of stride 2: large GTs have > 1000 candidates (several top-k rounds).
    rng = np.random.default_rng(5)
    priors = grid_priors([(40, 40)], [2])
    batch = random_batch(rng, priors, 2, 3, 3, size=80)
    args = dict(center_radius=4.0, candidate_topk=20, iou_weight=1.0, cls_weight=2.0)
    result = SimOTAAssigner(num_classes=3, candidate_scope=scope, **args).assign(
        priors, *as_inputs(*batch))
    np.testing.assert_array_equal(
        result.gt_index.numpy(),
        dense_simota(priors.points.numpy(), priors.strides.numpy(), *batch, scope=scope,
                     **args)[0])


@pytest.mark.parametrize('block', [84, 3 * 84, 2 * 8 * 84])
def test_image_scope_blocks_split_and_join_images(monkeypatch, block):
    # 'image' works on blocks of about dynamic_k._BLOCK_ELEMENTS pairs: of one GT slot (84),
    # of 3 slots of one image (8 slots -> 3 + 3 + 2), of 2 whole images (3 images -> 2 + 1).
    # Dynamic k, the claims and the image-wide conflict minimum must not see the seams.
    monkeypatch.setattr(dynamic_k, '_BLOCK_ELEMENTS', block)
    rng = np.random.default_rng(6)
    priors = grid_priors([(8, 8), (4, 4), (2, 2)], [8, 16, 32])
    batch = random_batch(rng, priors, 3, 8, 4)
    result = SimOTAAssigner(num_classes=4, center_radius=1.0).assign(priors, *as_inputs(*batch))
    gt_index = dense_simota(priors.points.numpy(), priors.strides.numpy(), *batch,
                            center_radius=1.0, scope='image')[0]
    np.testing.assert_array_equal(result.gt_index.numpy(), gt_index)


def test_the_default_scope_is_the_references_image_scope():
    assert SimOTAAssigner().candidate_scope == 'image'


GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data',
                      'ppdet26_simota_golden.npz')


@pytest.mark.parametrize('case', ['n1', 'n3', 'n8'])
def test_image_scope_equals_paddledetection_simota(case):
    # PaddleDetection 2.6's SimOTAAssigner (use_vfl=False) on 160 x 160 images with 1 / 3 / 8 GTs
    # and a padded slot (tests/data/gen_simota_golden.py; images where its float32 cost + 1e8
    # ties penalised candidates at a decision are left out there).
    golden = np.load(GOLDEN)
    get = lambda name: golden[f'{case}/{name}']  # noqa: E731
    gts = GTs(paddle.to_tensor(get('gt_class')), paddle.to_tensor(get('gt_bbox')),
              paddle.to_tensor(get('pad_gt_mask')))
    preds = Preds(paddle.to_tensor(get('pred_scores')), paddle.to_tensor(get('pred_bboxes')))
    priors = grid_priors([(20, 20), (10, 10), (5, 5)], [8, 16, 32])
    result = SimOTAAssigner(num_classes=4, use_vfl=False).assign(priors, gts, preds)
    np.testing.assert_array_equal(result.gt_index.numpy(), get('gt_index'))
    np.testing.assert_array_equal(result.assigned_labels.numpy(), get('labels'))
    if case == 'n8':   # several GTs: the GT-only scope is a different rule
        own = SimOTAAssigner(num_classes=4, use_vfl=False, candidate_scope='gt').assign(
            priors, gts, preds)
        assert (own.gt_index.numpy() != get('gt_index')).any()


@pytest.mark.parametrize('scope, syncs', [('image', 0), ('gt', 1)])
def test_host_synchronisations_per_call(monkeypatch, scope, syncs):
    # 'image' copies nothing to the host; 'gt' once (the pair count, with the grid and GT
    # checks). Every Tensor method that hands a value to the host is counted.
    priors = grid_priors([(8, 8), (4, 4), (2, 2)], [8, 16, 32])
    batch = random_batch(np.random.default_rng(7), priors, 2, 6, 4)
    inputs = as_inputs(*batch)
    assigner = SimOTAAssigner(num_classes=4, candidate_scope=scope)
    copies, result = host_copies(monkeypatch, lambda: assigner.assign(priors, *inputs))
    assert copies == ['numpy'] * syncs
    assert (result.gt_index.numpy() >= 0).any()


# ---------------------------------------------------------------------------------------------
# degenerate inputs and arguments


@pytest.mark.parametrize('scope', ['gt', 'image'])
def test_zero_gt_zero_priors_and_fully_padded_batches_are_background(scope):
    assigner = SimOTAAssigner(num_classes=3, candidate_scope=scope)
    priors = grid_priors([(8, 8), (4, 4)], [8, 16])
    batch = random_batch(np.random.default_rng(0), priors, 2, 3, 3)
    check_degenerate_batches(assigner, priors, batch)


@pytest.mark.parametrize('scope', ['gt', 'image'])
def test_an_empty_level_is_skipped(scope):
    rng = np.random.default_rng(4)
    priors = grid_priors([(8, 8), (4, 4)], [8, 16])
    with_empty = Priors(priors.points, priors.boxes, priors.strides, [64, 0, 16],
                        [(8, 8), (0, 0), (4, 4)])
    batch = random_batch(rng, priors, 2, 4, 3)
    result = SimOTAAssigner(num_classes=3, candidate_scope=scope).assign(with_empty,
                                                                        *as_inputs(*batch))
    np.testing.assert_array_equal(
        result.gt_index.numpy(),
        dense_simota(priors.points.numpy(), priors.strides.numpy(), *batch, scope=scope)[0])


def test_bad_inputs_are_errors():
    priors = grid_priors([(8, 8), (4, 4)], [8, 16])
    rng = np.random.default_rng(0)
    labels, boxes, mask, scores, pred = random_batch(rng, priors, 1, 2, 3)
    mask[:] = 1
    assigner = SimOTAAssigner(num_classes=3, candidate_scope='gt')
    bad = labels.copy()
    bad[0, 1, 0] = -1
    with pytest.raises(ValueError, match=r'gt_class\[0, 1\] = -1'):
        assigner.assign(priors, *as_inputs(bad, boxes, mask, scores, pred))
    with pytest.raises(ValueError, match='needs preds'):
        assigner.assign(priors, as_inputs(labels, boxes, mask, scores, pred)[0])
    with pytest.raises(ValueError, match='preds.bboxes'):
        assigner.assign(priors, *as_inputs(labels, boxes, mask, scores, pred[:, :10]))
    shapes = Priors(priors.points, priors.boxes, priors.strides, [64, 16], [(8, 8), (4, 3)])
    with pytest.raises(ValueError, match='level_shapes'):
        assigner.assign(shapes, *as_inputs(labels, boxes, mask, scores, pred))
    # Columns 0 and 1 of level 0 swapped: not a grid the candidate listing can search.
    points = priors.points.numpy().copy()
    points[[0, 1]] = points[[1, 0]]
    swapped = Priors(paddle.to_tensor(points), priors.boxes, priors.strides, [64, 16],
                     [(8, 8), (4, 4)])
    with pytest.raises(ValueError, match='not a row-major grid'):
        assigner.assign(swapped, *as_inputs(labels, boxes, mask, scores, pred))
    # ... which the image scope does not need.
    SimOTAAssigner(num_classes=3, candidate_scope='image').assign(
        swapped, *as_inputs(labels, boxes, mask, scores, pred))


@pytest.mark.parametrize('kwargs, error, text', [
    (dict(center_radius=0), ValueError, 'center_radius'),
    (dict(candidate_topk=0), ValueError, 'candidate_topk'),
    (dict(iou_weight=-1.0), ValueError, 'iou_weight'),
    (dict(cls_weight='1'), TypeError, 'cls_weight'),
    (dict(use_vfl=1), TypeError, 'use_vfl'),
    (dict(num_classes=0), ValueError, 'num_classes'),
    (dict(candidate_scope='any'), ValueError, 'candidate_scope')])
def test_constructor_arguments_are_validated(kwargs, error, text):
    with pytest.raises(error, match=f'SimOTAAssigner: {text}'):
        SimOTAAssigner(**kwargs)
