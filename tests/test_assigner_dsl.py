"""DynamicSoftLabelAssigner (NanoDet-Plus): hand-computed cases pinning each rule, and equality with
a dense numpy definition (inside and cost written here; IoU and dynamic-k claiming in
assigner_cases) on random and tie-heavy batches."""

import math

import numpy as np
import paddle
import pytest

from assigner_cases import (as_inputs, bce, check_batched_result, check_degenerate_batches,
                            dense_dynamic_k, host_copies, np_iou, one_image, random_batch)
from ppdet_lite.modeling.assigners import (BACKGROUND, DynamicSoftLabelAssigner, Priors,
                                           grid_priors)
from ppdet_lite.modeling.assigners import dynamic_k
from ppdet_lite.modeling.assigners.dynamic_k import lowest_keys_per_gt


def priors_64(shapes=((8, 8), (4, 4)), strides=(8, 16)):
    return grid_priors(list(shapes), list(strides))


def single_level(cols, rows, stride=8):
    """One level; prior (r, c) has index r * cols + c and centre ((c + .5) * stride, ...)."""
    return grid_priors([(rows, cols)], [stride])


# ---------------------------------------------------------------------------------------------
# hand-computed cases


def test_candidates_are_the_priors_strictly_inside_the_gt():
    # 4 x 4 grid, stride 8: centres 4, 12, 20, 28 on each axis. GT [4, 4, 20.5, 20].
    priors = single_level(4, 4)
    num = 16
    scores = np.full((num, 2), 0.5)
    # Every prediction is the GT box itself: IoU 1, so k = min(13, candidates) takes them all.
    box = [4, 4, 20.5, 20]
    gts, preds = one_image([box], [0], scores, [box] * num)
    result = DynamicSoftLabelAssigner(num_classes=2).assign(priors, gts, preds)
    # x in {12, 20} (20 < 20.5), y in {12} (20 is not < 20): priors (r=1, c=1) and (1, 2).
    expected = np.full(num, BACKGROUND)
    expected[[1 * 4 + 1, 1 * 4 + 2]] = 0
    np.testing.assert_array_equal(result.gt_index.numpy()[0], expected)


def test_dynamic_k_is_the_floor_of_the_top_iou_sum():
    # GT [0, 0, 32, 16]: the 4 x 2 priors of row 0 and 1 of a 4 x 4 grid (stride 8) are inside.
    priors = single_level(4, 4)
    gt = [0, 0, 32, 16]
    # Predictions of the 8 inside priors: boxes [0, 0, w, 16] with IoU w / 32.
    widths = [28.8, 25.6, 22.4, 9.6, 6.4, 3.2, 3.2, 3.2]  # IoUs .9 .8 .7 .3 .2 .1 .1 .1
    preds = [[0, 0, w, 16] for w in widths] + [[40, 40, 50, 50]] * 8
    scores = np.full((16, 1), 0.5)
    gts, preds = one_image([gt], [0], scores, preds)
    result = DynamicSoftLabelAssigner(num_classes=1).assign(priors, gts, preds)
    # sum of the 8 IoUs (fewer than 13 candidates) = 3.2 -> k = 3; equal scores, so the cost
    # decreases with the IoU: the three best IoUs win.
    assert sum(w / 32 for w in widths) == pytest.approx(3.2)
    np.testing.assert_array_equal(np.nonzero(result.gt_index.numpy()[0] == 0)[0], [0, 1, 2])
    np.testing.assert_allclose(result.assigned_scores.numpy()[0, :3, 0], [0.9, 0.8, 0.7],
                               rtol=1e-6)


def test_classification_cost_sums_over_all_classes_with_soft_label_and_scale():
    # Two candidates of a class-0 GT [0, 0, 16, 8] (priors 0 and 1 of a 4 x 4 grid, stride 8).
    # A: IoU .5, p = (.5, .01);  B: IoU .625, p = (.625, .95). IoU sum 1.125 -> k = 1.
    priors = single_level(4, 4)
    gt = [0, 0, 16, 8]
    pred_a, pred_b = [0, 0, 8, 8], [0, 0, 10, 8]  # IoU 64/128 = .5 and 80/128 = .625
    scores = np.full((16, 2), 0.3)
    scores[0] = [0.5, 0.01]
    scores[1] = [0.625, 0.95]
    gts, preds = one_image([gt], [0], scores, [pred_a, pred_b] + [[40, 40, 50, 50]] * 14)
    cost_a = (bce(0.5, 0.5) * (0.5 - 0.5) ** 2 + bce(0.01, 0) * 0.01 ** 2
              + 3 * -math.log(0.5 + 1e-7))                      # 0 + 1e-6 + 2.079 = 2.079
    cost_b = (bce(0.625, 0.625) * 0 + bce(0.95, 0) * 0.95 ** 2
              + 3 * -math.log(0.625 + 1e-7))                    # 0 + 2.704 + 1.410 = 4.114
    assert cost_a < cost_b
    # Keeping the GT class's term only (mmyolo) would pick B: 1.410 < 2.079.
    result = DynamicSoftLabelAssigner(num_classes=2).assign(priors, gts, preds)
    np.testing.assert_array_equal(np.nonzero(result.gt_index.numpy()[0] >= 0)[0], [0])
    np.testing.assert_allclose(result.assigned_scores.numpy()[0, 0], [0.5, 0], rtol=1e-6)


def test_conflict_goes_to_the_claimant_of_lowest_cost_not_highest_iou():
    # One prior (index 5, centre (12, 12)) inside both GTs; every other prediction is far away.
    priors = single_level(4, 4)
    gt0, gt1 = [8, 8, 16, 16], [6, 6, 18, 18]
    pred = [8, 8, 16, 16]                        # IoU 1 with GT0, 64/144 = .444 with GT1
    scores = np.full((16, 2), 0.5)
    scores[5] = [0.01, 0.9]                      # class 1 (GT1) is the confident one
    preds = [[100, 100, 110, 110]] * 16
    preds[5] = pred
    gts, preds = one_image([gt0, gt1], [0, 1], scores, preds)
    u1 = 64 / 144
    cost0 = bce(0.01, 1) * (1 - 0.01) ** 2 + bce(0.9, 0) * 0.9 ** 2 + 3 * -math.log(1 + 1e-7)
    cost1 = bce(0.01, 0) * 0.01 ** 2 + bce(0.9, u1) * (u1 - 0.9) ** 2 + 3 * -math.log(u1 + 1e-7)
    assert cost1 < cost0                         # 2.71 < 6.38 although IoU .44 < 1
    result = DynamicSoftLabelAssigner(num_classes=2).assign(priors, gts, preds)
    expected = np.full(16, BACKGROUND)
    expected[5] = 1
    np.testing.assert_array_equal(result.gt_index.numpy()[0], expected)
    assert result.assigned_labels.numpy()[0, 5] == 1
    np.testing.assert_allclose(result.assigned_scores.numpy()[0, 5], [0, u1], rtol=1e-6)


def test_image_scope_lets_a_gt_take_another_gts_prior():
    # GT0 [0, 0, 16, 8] holds priors 0 and 1 (centres (4, 4), (12, 4)); GT1 [16, 0, 32, 8] holds
    # priors 2 and 3. Prior 2 predicts GT0's box exactly (IoU 1 with GT0, 0 with GT1); priors 0, 1
    # predict a box of IoU .25 with GT0; prior 3 predicts GT1 exactly. Equal scores.
    priors = single_level(4, 4)
    gt0, gt1 = [0, 0, 16, 8], [16, 0, 32, 8]
    preds = [[0, 0, 4, 8], [0, 0, 4, 8], gt0, gt1] + [[40, 40, 50, 50]] * 12
    gts, preds = one_image([gt0, gt1], [0, 0], np.full((16, 1), 0.5), preds)
    # 'gt': GT0's candidates are priors 0 and 1 (IoU sum .5 -> k = 1; equal costs -> prior 0).
    own = DynamicSoftLabelAssigner(num_classes=1, candidate_scope='gt').assign(priors, gts,
                                                                              preds)
    np.testing.assert_array_equal(own.gt_index.numpy()[0, :4], [0, -1, -1, 1])
    # 'image' (NanoDet-Plus): GT0 also costs priors 2 and 3: IoU sum 1 + .25 + .25 = 1.5 -> k = 1,
    # and prior 2 (IoU 1, the lowest cost) is GT0's; GT1 takes prior 3.
    image = DynamicSoftLabelAssigner(num_classes=1, candidate_scope='image').assign(
        priors, gts, preds)
    np.testing.assert_array_equal(image.gt_index.numpy()[0, :4], [-1, -1, 0, 1])


def test_equal_costs_go_to_the_lowest_prior_index():
    # All predictions equal: every candidate of the GT has the same cost; k = 1 (IoU sum < 2).
    priors = single_level(4, 4)
    gts, preds = one_image([[0, 0, 32, 32]], [0], np.full((16, 1), 0.2), [[0, 0, 8, 8]] * 16)
    result = DynamicSoftLabelAssigner(num_classes=1).assign(priors, gts, preds)
    np.testing.assert_array_equal(np.nonzero(result.gt_index.numpy()[0] >= 0)[0], [0])


# ---------------------------------------------------------------------------------------------
# dense numpy definition


def dense_dsl(points, labels, boxes, mask, scores, pred_boxes, topk=13, iou_factor=3.0,
              scope='gt'):
    """gt_index [B, L] and the positives' IoU [B, L], straight from the definition."""
    batch, num_gts = boxes.shape[:2]
    num_priors = points.shape[0]
    gt_index = np.full((batch, num_priors), BACKGROUND)
    pos_iou = np.zeros((batch, num_priors), np.float32)
    x, y = points[:, 0], points[:, 1]
    for b in range(batch):
        p = scores[b].astype(np.float64)                                      # [L, C]
        iou = np_iou(pred_boxes[b][None], boxes[b][:, None])                   # [n, L]
        real = mask[b, :, 0] > 0
        x1, y1, x2, y2 = (boxes[b, :, i:i + 1] for i in range(4))
        inside = (x - x1 > 0) & (y - y1 > 0) & (x2 - x > 0) & (y2 - y > 0) & real[:, None]
        if scope == 'image':
            inside = np.broadcast_to(inside.any(0), inside.shape) & real[:, None]
        log_p = np.maximum(np.log(np.maximum(p, 0)), -100)
        log_q = np.maximum(np.log(np.maximum(1 - p, 0)), -100)
        cost = np.zeros((num_gts, num_priors))
        for g in range(num_gts):
            u = iou[g].astype(np.float64)
            t = np.zeros_like(p)
            t[:, labels[b, g, 0]] = u
            cls = (-(t * log_p + (1 - t) * log_q) * (t - p) ** 2).sum(-1)
            cost[g] = cls + iou_factor * -np.log(u + 1e-7)
        gt_index[b], pos_iou[b] = dense_dynamic_k(cost, iou, inside, real, topk, scope)
    return gt_index, pos_iou


@pytest.mark.parametrize('seed, whole, equal_preds, scope', [
    (0, False, False, 'gt'), (1, True, False, 'gt'), (2, True, True, 'gt'), (3, False, True, 'gt'),
    (4, False, False, 'image'), (5, True, True, 'image')])
def test_batched_equals_per_image_equals_dense_definition(seed, whole, equal_preds, scope):
    rng = np.random.default_rng(seed)
    priors = priors_64(((8, 8), (4, 4), (2, 2)), (8, 16, 32))
    batch = random_batch(rng, priors, 3, 6, 4, whole, equal_preds, min_side=3)
    assigner = DynamicSoftLabelAssigner(num_classes=4, candidate_scope=scope)
    result = assigner.assign(priors, *as_inputs(*batch))
    gt_index, pos_iou = dense_dsl(priors.points.numpy(), *batch, scope=scope)
    if scope == 'image':   # the case tells the scopes apart
        assert (dense_dsl(priors.points.numpy(), *batch)[0] != gt_index).any()
    check_batched_result(assigner, priors, batch, result, gt_index, pos_iou)


@pytest.mark.parametrize('scope', ['gt', 'image'])
def test_large_gts_take_several_topk_rounds(scope):
    # 40 x 40 priors of stride 2: a GT over most of the image has > 1000 candidates, more than one
    # row of the per-GT top-k; the result must still be the dense one.
    rng = np.random.default_rng(5)
    priors = grid_priors([(40, 40)], [2])
    batch = random_batch(rng, priors, 2, 3, 3, size=80, min_side=3)
    result = DynamicSoftLabelAssigner(num_classes=3, candidate_scope=scope).assign(
        priors, *as_inputs(*batch))
    np.testing.assert_array_equal(result.gt_index.numpy(),
                                  dense_dsl(priors.points.numpy(), *batch, scope=scope)[0])


@pytest.mark.parametrize('block', [80, 3 * 80, 2 * 8 * 80])
def test_image_scope_blocks_split_and_join_images(monkeypatch, block):
    # 'image' works on blocks of about dynamic_k._BLOCK_ELEMENTS pairs: of one GT slot (80),
    # of 3 slots of one image (8 slots -> 3 + 3 + 2), of 2 whole images (3 images -> 2 + 1).
    # Dynamic k, the claims and the image-wide conflict minimum must not see the seams.
    monkeypatch.setattr(dynamic_k, '_BLOCK_ELEMENTS', block)
    rng = np.random.default_rng(6)
    priors = priors_64()
    batch = random_batch(rng, priors, 3, 8, 4, min_side=3)
    result = DynamicSoftLabelAssigner(num_classes=4).assign(priors, *as_inputs(*batch))
    np.testing.assert_array_equal(result.gt_index.numpy(),
                                  dense_dsl(priors.points.numpy(), *batch, scope='image')[0])


def test_the_default_scope_is_nanodet_plus_image_scope():
    assert DynamicSoftLabelAssigner().candidate_scope == 'image'


def test_per_gt_lowest_keys_over_several_rounds():
    # 7000 pairs for one GT need three rounds of rows of 256 (7000 -> 28 * 13 = 364 -> 26 -> 1
    # row); the others are short. The result must be each GT's 13 smallest keys, ascending.
    rng = np.random.default_rng(0)
    lengths = np.array([3, 7000, 0, 300, 13])
    gt = np.repeat(np.arange(5), lengths)
    keys = rng.choice(2 ** 40, (2, len(gt)), replace=False)
    keys[0, 1] = 2 ** 62                                        # a left-out pair of GT 0
    starts = np.cumsum(lengths) - lengths
    best = lowest_keys_per_gt(paddle.to_tensor(keys), paddle.to_tensor(gt),
                              paddle.to_tensor(starts), paddle.to_tensor(lengths), 7000, 13)
    expected = np.full((2, 5, 13), 2 ** 62)
    for t in range(2):
        for g in range(5):
            mine = np.sort(keys[t, gt == g])[:13]
            expected[t, g, :len(mine)] = mine
    np.testing.assert_array_equal(best.numpy(), expected)


@pytest.mark.parametrize('scope, syncs', [('image', 0), ('gt', 1)])
def test_host_synchronisations_per_call(monkeypatch, scope, syncs):
    # 'image' copies nothing to the host; 'gt' once (the pair count, with the grid and GT
    # checks). Every Tensor method that hands a value to the host is counted.
    priors = priors_64()
    batch = random_batch(np.random.default_rng(7), priors, 2, 6, 4, min_side=3)
    inputs = as_inputs(*batch)
    assigner = DynamicSoftLabelAssigner(num_classes=4, candidate_scope=scope)
    copies, result = host_copies(monkeypatch, lambda: assigner.assign(priors, *inputs))
    assert copies == ['numpy'] * syncs
    assert (result.gt_index.numpy() >= 0).any()


# ---------------------------------------------------------------------------------------------
# degenerate inputs and arguments


@pytest.mark.parametrize('scope', ['gt', 'image'])
def test_zero_gt_zero_priors_and_fully_padded_batches_are_background(scope):
    assigner = DynamicSoftLabelAssigner(num_classes=3, candidate_scope=scope)
    priors = priors_64()
    batch = random_batch(np.random.default_rng(0), priors, 2, 3, 3, min_side=3)
    check_degenerate_batches(assigner, priors, batch)


@pytest.mark.parametrize('scope', ['gt', 'image'])
def test_an_empty_level_is_skipped(scope):
    rng = np.random.default_rng(4)
    priors = priors_64()
    with_empty = Priors(priors.points, priors.boxes, priors.strides, [64, 0, 16],
                        [(8, 8), (0, 0), (4, 4)])
    batch = random_batch(rng, priors, 2, 4, 3, min_side=3)
    result = DynamicSoftLabelAssigner(num_classes=3, candidate_scope=scope).assign(
        with_empty, *as_inputs(*batch))
    np.testing.assert_array_equal(result.gt_index.numpy(),
                                  dense_dsl(priors.points.numpy(), *batch, scope=scope)[0])


def test_bad_class_id_missing_preds_and_off_grid_priors_are_errors():
    priors = priors_64()
    rng = np.random.default_rng(0)
    labels, boxes, mask, scores, pred = random_batch(rng, priors, 1, 2, 3, min_side=3)
    mask[:] = 1
    labels[0, 1, 0] = 3
    assigner = DynamicSoftLabelAssigner(num_classes=3, candidate_scope='gt')
    with pytest.raises(ValueError, match=r'gt_class\[0, 1\] = 3'):
        assigner.assign(priors, *as_inputs(labels, boxes, mask, scores, pred))
    with pytest.raises(ValueError, match='needs preds'):
        assigner.assign(priors, as_inputs(labels, boxes, mask, scores, pred)[0])
    with pytest.raises(ValueError, match='preds.scores'):
        assigner.assign(priors, *as_inputs(labels * 0, boxes, mask, scores[..., :2], pred))
    points = priors.points.numpy().copy()
    points[65, 1] += 1                  # level 1, row 0, column 1: off its row's y
    moved = Priors(paddle.to_tensor(points), priors.boxes, priors.strides, [64, 16],
                   [(8, 8), (4, 4)])
    with pytest.raises(ValueError, match='not a row-major grid'):
        assigner.assign(moved, *as_inputs(labels * 0, boxes, mask, scores, pred))


@pytest.mark.parametrize('kwargs, error, text', [
    (dict(topk=0), ValueError, 'topk'), (dict(topk=2.5), TypeError, 'topk'),
    (dict(iou_factor=-1), ValueError, 'iou_factor'), (dict(iou_factor='3'), TypeError,
                                                       'iou_factor'),
    (dict(num_classes=0), ValueError, 'num_classes'),
    (dict(candidate_scope='all'), ValueError, 'candidate_scope')])
def test_constructor_arguments_are_validated(kwargs, error, text):
    with pytest.raises(error, match=f'DynamicSoftLabelAssigner: {text}'):
        DynamicSoftLabelAssigner(**kwargs)
