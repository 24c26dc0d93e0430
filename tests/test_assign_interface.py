"""The assigner interface: the tie rule, the conflicts step and building targets from gt_index."""

import numpy as np
import paddle
import pytest

from ppdet_lite.modeling.assigners import (BACKGROUND, IGNORED, GTs, arg_best, build_result,
                                           grid_priors, order_key, resolve_conflicts,
                                           resolve_conflicts_pairs, topk_lowest_index)


def T(x, dtype='float32'):
    return paddle.to_tensor(np.asarray(x, dtype=dtype))


# ----------------------------------------------------------------------------- the tie rule

def test_topk_takes_equal_values_lowest_index_first():
    values = T([[0.5, 0.9, 0.9, -1.0, 0.9]])
    top, index = topk_lowest_index(values, 3)
    # the three 0.9s are indices 1, 2, 4: all taken, in index order
    assert index.numpy().tolist() == [[1, 2, 4]]
    assert np.allclose(top.numpy(), [[0.9, 0.9, 0.9]])
    _, index = topk_lowest_index(values, 2, largest=False)
    assert index.numpy().tolist() == [[3, 0]]   # -1.0, then 0.5


def test_tie_rule_holds_along_any_axis_and_for_signed_zero_and_infinities():
    values = T([[0.0, 1.0], [-0.0, float('inf')], [0.0, float('inf')], [float('-inf'), -2.0]])
    # along axis 0: column 0 has 0.0, -0.0, 0.0 tied at the top (rows 0, 1, 2), -inf last
    assert arg_best(values, axis=0).numpy().tolist() == [0, 1]
    assert arg_best(values, axis=0, largest=False).numpy().tolist() == [3, 3]
    _, index = topk_lowest_index(values, 4, axis=0)
    assert index.numpy()[:, 0].tolist() == [0, 1, 2, 3]
    assert index.numpy()[:, 1].tolist() == [1, 2, 0, 3]


def test_order_key_orders_like_the_floats():
    rng = np.random.RandomState(0)
    x = rng.randn(1000).astype('float32') * 10.0 ** rng.randint(-30, 30, 1000)
    key = order_key(T(x[None]), largest=False).numpy()[0]
    # ascending by (value, index): numpy's stable sort is the oracle
    assert np.argsort(key, kind='stable').tolist() == np.argsort(x, kind='stable').tolist()


# ----------------------------------------------------------------------------- conflicts

def test_conflicts_go_to_the_best_claimant_only():
    # one image, GT slots 0..2, priors 0..2
    claims = T([[[1, 1, 0],
                 [1, 0, 0],
                 [0, 1, 0]]], 'bool')
    score = T([[[0.3, 0.5, 0.0],
                [0.9, 0.9, 0.9],     # slot 1's 0.9 on prior 1 is not a claim: it must not win
                [0.3, 0.5, 0.0]]])
    # prior 0: slots 0 (0.3) and 1 (0.9) claim -> max 1, min 0
    # prior 1: slots 0 (0.5) and 2 (0.5) claim, equal -> lowest slot 0 under both rules
    # prior 2: nobody -> background
    assert resolve_conflicts(claims, score, 'max').numpy().tolist() == [[1, 0, BACKGROUND]]
    assert resolve_conflicts(claims, score, 'min').numpy().tolist() == [[0, 0, BACKGROUND]]


def test_sparse_conflicts_equal_dense_ones():
    rng = np.random.RandomState(1)
    batch, num_gts, num_priors = 3, 5, 40
    claims = rng.rand(batch, num_gts, num_priors) < 0.3
    # few distinct values, so ties are common
    score = rng.randint(0, 4, (batch, num_gts, num_priors)).astype('float32') / 4
    b, g, l = np.nonzero(claims)
    for rule in ('max', 'min'):
        dense = resolve_conflicts(T(claims, 'bool'), T(score), rule).numpy()
        sparse = resolve_conflicts_pairs(T(b * num_priors + l, 'int64'), T(g, 'int64'),
                                         T(score[b, g, l]), num_gts, batch * num_priors, rule)
        assert sparse.numpy().reshape(batch, num_priors).tolist() == dense.tolist()
        # definition: best score among claimants, lowest slot on ties
        for i in range(batch):
            for j in range(num_priors):
                slots = np.nonzero(claims[i, :, j])[0]
                if len(slots) == 0:
                    assert dense[i, j] == BACKGROUND
                    continue
                s = score[i, slots, j]
                best = s.max() if rule == 'max' else s.min()
                assert dense[i, j] == slots[s == best][0]


def test_conflicts_reject_an_unknown_rule():
    with pytest.raises(ValueError, match="'smallest'"):
        resolve_conflicts(T([[[1]]], 'bool'), T([[[1.]]]), 'smallest')


# ----------------------------------------------------------------------------- targets

def test_build_result_gives_labels_boxes_and_soft_scores_from_gt_index():
    gts = GTs(T([[[2], [0]]], 'int32'),
              T([[[0, 0, 10, 10], [5, 5, 20, 20]]]),
              T([[[1.], [1.]]]))
    gt_index = T([[1, BACKGROUND, 0, IGNORED]], 'int64')
    result = build_result(gt_index, gts, num_classes=3, pos_scores=T([[0.7, 0.9, 0.4, 0.8]]))
    assert result.assigned_labels.numpy().tolist() == [[0, 3, 2, 3]]
    assert result.assigned_labels.dtype == paddle.int32
    # background and ignored priors carry slot 0's box
    assert result.assigned_bboxes.numpy().tolist() == [[[5, 5, 20, 20], [0, 0, 10, 10],
                                                        [0, 0, 10, 10], [0, 0, 10, 10]]]
    scores = result.assigned_scores.numpy()
    expected = np.zeros([1, 4, 3], 'float32')
    expected[0, 0, 0] = 0.7      # prior 0 -> slot 1, class 0, its own score
    expected[0, 2, 2] = 0.4      # prior 2 -> slot 0, class 2
    assert np.allclose(scores, expected)
    assert result.ignore_mask.numpy().tolist() == [[False, False, False, True]]
    assert result.positive_mask.numpy().tolist() == [[True, False, True, False]]
    labels, boxes, soft = result[:3]      # PaddleDetection's triple
    assert labels.shape == [1, 4] and boxes.shape == [1, 4, 4] and soft.shape == [1, 4, 3]


def test_build_result_scores_default_to_gt_scores_then_one():
    labels, boxes, mask = T([[[1]]], 'int64'), T([[[0, 0, 4, 4]]]), T([[[1.]]])
    gt_index = T([[0, BACKGROUND]], 'int64')
    hard = build_result(gt_index, GTs(labels, boxes, mask), num_classes=2)
    assert hard.assigned_scores.numpy().tolist() == [[[0, 1], [0, 0]]]
    mixed = build_result(gt_index, GTs(labels, boxes, mask, T([[[0.25]]])), num_classes=2)
    assert mixed.assigned_scores.numpy().tolist() == [[[0, 0.25], [0, 0]]]


def test_build_result_without_gt_slots_is_all_background():
    gts = GTs(paddle.zeros([2, 0, 1], 'int32'), paddle.zeros([2, 0, 4]), paddle.zeros([2, 0, 1]))
    result = build_result(paddle.full([2, 5], BACKGROUND, 'int64'), gts, num_classes=4)
    assert result.assigned_labels.numpy().tolist() == [[4] * 5] * 2
    assert float(result.assigned_scores.abs().sum()) == 0
    assert result.gt_index.numpy().tolist() == [[BACKGROUND] * 5] * 2


def test_build_result_without_priors_is_empty():
    gts = GTs(T([[[1]]], 'int32'), T([[[0, 0, 4, 4]]]), T([[[1.]]]))
    result = build_result(paddle.zeros([1, 0], 'int64'), gts, num_classes=3)
    assert result.assigned_labels.shape == [1, 0]
    assert result.assigned_bboxes.shape == [1, 0, 4]
    assert result.assigned_scores.shape == [1, 0, 3]
    assert result.ignore_mask.shape == [1, 0]


# ----------------------------------------------------------------------------- priors

def test_grid_priors_are_cell_centres_with_square_boxes():
    priors = grid_priors([(1, 2), (2, 2)], [32, 16], grid_cell_scale=5.0, grid_cell_offset=0.5)
    assert priors.num_anchors_list == [2, 4]
    assert priors.level_shapes == [(1, 2), (2, 2)]
    # level 0, row 0: centres at (0.5 * 32, 0.5 * 32) and (1.5 * 32, 0.5 * 32)
    assert priors.points.numpy()[:2].tolist() == [[16, 16], [48, 16]]
    # level 1, row-major: (8, 8), (24, 8), (8, 24), (24, 24)
    assert priors.points.numpy()[2:].tolist() == [[8, 8], [24, 8], [8, 24], [24, 24]]
    # side 5 strides: 160 px around (16, 16), 80 px around (8, 8)
    assert priors.boxes.numpy()[0].tolist() == [-64, -64, 96, 96]
    assert priors.boxes.numpy()[2].tolist() == [-32, -32, 48, 48]
    assert priors.strides.numpy().tolist() == [32, 32, 16, 16, 16, 16]


def test_level_spans_locate_each_level_and_check_the_priors():
    priors = grid_priors([(1, 2), (2, 2)], [32, 16])
    # level 0: priors 0..1 (1 x 2); level 1 starts after them, 2 x 2
    assert priors.level_spans('X') == [(0, 1, 2), (2, 2, 2)]
    wrong_shapes = priors._replace(level_shapes=[(2, 2), (1, 2)])
    with pytest.raises(ValueError, match=r'X: priors.num_anchors_list \[2, 4\] does not match'):
        wrong_shapes.level_spans('X')
    wrong_count = priors._replace(num_anchors_list=[2, 4, 0], level_shapes=[(1, 2), (2, 2), (0, 0)],
                                  points=priors.points[:5])
    with pytest.raises(ValueError, match='sums to 6 but priors.points has 5 priors'):
        wrong_count.level_spans('X')
