"""YOLOv3Assigner: the best prior shape at the GT centre's cell, the ignore threshold (prior boxes
or predicted boxes), conflicts; batched == per image == a dense numpy definition; empty inputs;
argument checks.

Priors are PP-YOLOE's (``grid_priors``) on a 128 x 128 image, levels coarsest first: stride 32
(4 x 4 cells, priors 0..15, 160 px squares), stride 16 (8 x 8, priors 16..79, 80 px squares),
stride 8 (16 x 16, priors 80..335, 40 px squares centred at (8 col + 4, 8 row + 4)).
"""

import numpy as np
import pytest

from assigner_cases import T, make_gts, no_priors, np_iou, positives, with_empty_levels
from ppdet_lite.modeling.assigners import (BACKGROUND, IGNORED, GTs, Preds, YOLOv3Assigner,
                                           grid_priors)

LEVELS = dict(level_shapes=[(4, 4), (8, 8), (16, 16)], fpn_strides=[32, 16, 8])
FINE_FIRST = dict(level_shapes=[(16, 16), (8, 8), (4, 4)], fpn_strides=[8, 16, 32])
NUM_PRIORS = 16 + 64 + 256


def preds_with(boxes_by_prior, num_priors=NUM_PRIORS, num_classes=3):
    """Predicted boxes (0, 0, 1, 1) everywhere except the given priors."""
    boxes = np.tile(np.float32([0, 0, 1, 1]), [1, num_priors, 1])
    for prior, box in boxes_by_prior.items():
        boxes[0, prior] = box
    return Preds(T(np.full([1, num_priors, num_classes], 0.5)), T(boxes))


def ignored(result, image=0):
    return set(np.nonzero(result.gt_index.numpy()[image] == IGNORED)[0].tolist())


def s8(row, col):
    return 80 + row * 16 + col


# ----------------------------------------------------------------------------- best prior

def test_each_gt_gets_its_best_prior_shape_at_its_centre_cell():
    priors = grid_priors(**LEVELS)
    gts = make_gts([[[10, 50, 50, 90],       # A: 40 x 40, centre (30, 70)
                     [0, 0, 100, 60]]])      # B: 100 x 60, centre (50, 30)
    result = YOLOv3Assigner(num_classes=3).assign(priors, gts)
    # A's shape IoUs: 160^2: 1600 / 25600 = 0.0625, 80^2: 1600 / 6400 = 0.25, 40^2: 1 -> stride 8,
    #   cell (floor(30 / 8), floor(70 / 8)) = col 3, row 8 -> prior 80 + 8 * 16 + 3 = 211
    # B's: 40^2: 1600 / (6000 + 1600 - 1600) = 0.267; 80^2: 80 * 60 / (6000 + 6400 - 4800)
    #   = 0.632; 160^2: 6000 / 25600 = 0.234 -> stride 16, col floor(50 / 16) = 3,
    #   row floor(30 / 16) = 1 -> prior 16 + 1 * 8 + 3 = 27
    assert positives(result) == {211: 0, 27: 1}
    # nothing else reaches 0.7 with a prior box (at most 0.677 around A, 0.632 around B)
    assert ignored(result) == set()


def test_equal_shape_ious_go_to_the_earlier_level():
    # 40 x 80: 40^2 gives 1600 / 3200 = 0.5 and 80^2 gives 3200 / 6400 = 0.5 (160^2: 0.125)
    gts = make_gts([[[8, 24, 48, 104]]])         # centre (28, 64)
    for layout, expected in ((LEVELS, (16, 24., 72.)), (FINE_FIRST, (8, 28., 68.))):
        priors = grid_priors(**layout)
        result = YOLOv3Assigner(num_classes=3).assign(priors, gts)
        (prior,) = positives(result)
        point = priors.points.numpy()[prior]
        # stride 16 cell (1, 4) has its point at (24, 72); stride 8 cell (3, 8) at (28, 68)
        assert (int(priors.strides.numpy()[prior]), point[0], point[1]) == expected


def test_centre_outside_the_grid_is_clamped_to_the_border_cell():
    priors = grid_priors(**LEVELS)
    # 40 x 40 boxes -> stride 8; centres (128, 20): col floor(128 / 8) = 16 -> 15, row 2;
    # (-10, -10): col and row -1 -> 0
    gts = make_gts([[[108, 0, 148, 40], [-30, -30, 10, 10]]])
    result = YOLOv3Assigner(num_classes=3).assign(priors, gts)
    assert positives(result) == {s8(2, 15): 0, s8(0, 0): 1}


def test_empty_boxes_zero_scores_and_padding_get_no_prior():
    priors = grid_priors(**LEVELS)
    gts = make_gts([[[10, 10, 10, 50], [10, 50, 50, 90], [0, 0, 40, 40], [8, 48, 48, 88]]],
                   mask=[[1, 1, 1, 0]], scores=[[1.0, 0.0, 1.0, 1.0]])
    result = YOLOv3Assigner(num_classes=3).assign(priors, gts)
    # slot 0 has width 0, slot 1 score 0 (Gt2YoloTarget skips both), slot 3 is padding:
    # only slot 2 (40 x 40, centre (20, 20): stride 8 col 2, row 2) is matched
    assert positives(result) == {s8(2, 2): 2}


# ----------------------------------------------------------------------------- ignored

def test_prior_boxes_above_the_ignore_threshold_are_ignored():
    priors = grid_priors(**LEVELS)
    gts = make_gts([[[8, 48, 48, 88]]])     # exactly the stride-8 prior box of col 3, row 8
    # the four side neighbours' boxes are shifted 8 px: IoU 32 * 40 / (3200 - 1280) = 0.667;
    # diagonal ones 32 * 32 / (3200 - 1024) = 0.47; stride 16 boxes at most 1600 / 6400
    result = YOLOv3Assigner(num_classes=3, ignore_thresh=0.6).assign(priors, gts)
    assert positives(result) == {s8(8, 3): 0}
    assert ignored(result) == {s8(8, 2), s8(8, 4), s8(7, 3), s8(9, 3)}
    assert result.ignore_mask.numpy()[0, s8(8, 2)]
    assert result.assigned_labels.numpy()[0, s8(8, 2)] == 3          # ignored: background label
    result = YOLOv3Assigner(num_classes=3).assign(priors, gts)       # 0.667 is not above 0.7
    assert ignored(result) == set()


def test_predicted_boxes_decide_the_ignored_priors_when_given():
    priors = grid_priors(**LEVELS)
    gt = [8, 48, 48, 88]                                               # 40 x 40, area 1600
    preds = preds_with({0: gt,                  # IoU 1
                        1: [8, 48, 48, 76],     # 40 x 28 inside the GT: 1120 / 1600 = 0.7
                        2: [8, 48, 48, 77],     # 40 x 29: 1160 / 1600 = 0.725
                        s8(8, 3): gt})          # the positive itself
    result = YOLOv3Assigner(num_classes=3).assign(priors, make_gts([[gt]]), preds)
    # above 0.7: priors 0 and 2; exactly 0.7 is not above; the positive stays positive; the
    # side neighbours' *prior boxes* (0.667) no longer matter: their predictions miss the GT
    assert positives(result) == {s8(8, 3): 0}
    assert ignored(result) == {0, 2}
    result = YOLOv3Assigner(num_classes=3, ignore_thresh=0.6).assign(priors, make_gts([[gt]]),
                                                                     preds)
    assert ignored(result) == {0, 1, 2}


def test_padded_slots_cause_no_ignores():
    priors = grid_priors(**LEVELS)
    gts = make_gts([[[0, 0, 4, 4], [8, 48, 48, 88]]], mask=[[1, 0]])
    preds = preds_with({5: [8, 48, 48, 88]})
    result = YOLOv3Assigner(num_classes=3).assign(priors, gts, preds)
    assert ignored(result) == set()


# ----------------------------------------------------------------------------- conflicts

def test_two_gts_on_one_prior_go_to_the_higher_shape_iou_then_the_lower_slot():
    priors = grid_priors(**LEVELS)
    a, b = [8, 48, 48, 88], [10, 50, 46, 86]
    # both centred at (28, 68) -> stride 8 cell (3, 8); shape IoUs with 40^2: 1 and 36^2 / 40^2
    # = 0.81: A wins in either slot order, B is left without a positive (YOLOv3 would keep the
    # later slot's box)
    for boxes, winner in (([a, b], 0), ([b, a], 1)):
        result = YOLOv3Assigner(num_classes=3).assign(priors, make_gts([boxes]))
        assert positives(result) == {s8(8, 3): winner}
    result = YOLOv3Assigner(num_classes=3).assign(priors, make_gts([[a, a]]))
    assert positives(result) == {s8(8, 3): 0}


# ----------------------------------------------------------------------------- targets

def test_targets_gt_score_or_predicted_iou():
    priors = grid_priors(**LEVELS)
    gts = make_gts([[[8, 48, 48, 88]]], labels=[[1]], scores=[[0.5]])
    prior = s8(8, 3)
    result = YOLOv3Assigner(num_classes=3).assign(priors, gts)
    assert result.assigned_labels.numpy()[0, prior] == 1
    assert result.assigned_bboxes.numpy()[0, prior].tolist() == [8, 48, 48, 88]
    assert result.assigned_scores.numpy()[0, prior].tolist() == [0, 0.5, 0]
    # predicted box (8, 48, 48, 68), 40 x 20 inside the GT: IoU 800 / 1600 = 0.5
    preds = preds_with({prior: [8, 48, 48, 68]})
    result = YOLOv3Assigner(num_classes=3, iou_score=True).assign(priors, gts, preds)
    assert np.allclose(result.assigned_scores.numpy()[0, prior], [0, 0.5, 0])


# ----------------------------------------------------------------------------- the definition

def reference(prior_boxes, levels, boxes, mask, scores, pred_boxes, thresh):
    """Dense numpy YOLOv3 assignment, GT by GT as Gt2YoloTarget walks them (its rule, written
    anew), but with the stated conflict rule: ``[B, L]`` slot, -1 or -2."""
    batch, num = mask.shape
    out = np.full([batch, prior_boxes.shape[0]], -1)
    for b in range(batch):
        claim = {}
        for g in range(num):
            x1, y1, x2, y2 = boxes[b, g]
            if not (mask[b, g] > 0 and x2 > x1 and y2 > y1 and scores[b, g] > 0):
                continue
            cx, cy = (x1 + x2) / np.float32(2), (y1 + y2) / np.float32(2)
            best = None
            for start, rows, cols, stride in levels:
                col = min(max(int(np.floor(cx / stride)), 0), cols - 1)
                row = min(max(int(np.floor(cy / stride)), 0), rows - 1)
                prior = start + row * cols + col
                pw, ph = prior_boxes[prior, 2:] - prior_boxes[prior, :2]
                iou = np_iou([0, 0, x2 - x1, y2 - y1], [0, 0, pw, ph])
                if best is None or iou > best[0]:         # the first of equal IoUs stays
                    best = (iou, prior)
            iou, prior = best
            if prior not in claim or iou > claim[prior][0]:    # slots come in order
                claim[prior] = (iou, g)
        for prior, (_, g) in claim.items():
            out[b, prior] = g
        real = mask[b] > 0
        candidates = prior_boxes if pred_boxes is None else pred_boxes[b]
        if real.any():
            over = np_iou(candidates[:, None], boxes[b][real][None]).max(axis=1)
            over = over > np.float32(thresh)
            out[b][(out[b] == -1) & over] = -2
    return out


@pytest.mark.parametrize('use_preds', [False, True])
@pytest.mark.parametrize('whole_pixels', [False, True])
def test_equals_dense_definition_batched_and_per_image(use_preds, whole_pixels):
    rng = np.random.RandomState(10 * use_preds + whole_pixels)
    shapes, strides = [(3, 5), (6, 10), (12, 20)], [32, 16, 8]
    priors = grid_priors(shapes, strides)
    levels, start = [], 0
    for (rows, cols), stride in zip(shapes, strides):
        levels.append((start, rows, cols, np.float32(stride)))
        start += rows * cols
    prior_boxes = priors.boxes.numpy()
    num_priors = prior_boxes.shape[0]
    batch, num = 3, 12
    centre = rng.uniform(-10, 170, (batch, num, 2))
    size = rng.uniform(2, 220, (batch, num, 2))
    if whole_pixels:
        # prior-sized squares and rounded boxes: equal shape IoUs, shared cells, duplicates
        size[:, :4] = rng.choice([40, 80, 160], (batch, 4, 1))
        centre, size = np.round(centre / 4) * 4, np.round(size / 4) * 4
        centre[:, 4:6], size[:, 4:6] = centre[:, 0:2], size[:, 0:2]
    boxes = np.concatenate([centre - size / 2, centre + size / 2], -1).astype('float32')
    boxes[:, -1, 2] = boxes[:, -1, 0]                          # an empty box
    mask = (rng.rand(batch, num) < 0.85).astype('float32')
    scores = np.where(rng.rand(batch, num) < 0.1, 0, 1).astype('float32')
    pred_boxes = None
    if use_preds:
        # each prior predicts a jittered copy of a random GT of its image: IoUs spread over (0, 1]
        pick = rng.randint(0, num, (batch, num_priors))
        pred_boxes = np.take_along_axis(boxes, pick[..., None], 1)
        pred_boxes = (pred_boxes + rng.normal(0, 6, pred_boxes.shape)).astype('float32')
        if whole_pixels:
            pred_boxes = np.round(pred_boxes)
    labels = rng.randint(0, 3, (batch, num))
    gts = make_gts(boxes, mask, labels, scores)
    assigner = YOLOv3Assigner(num_classes=3, ignore_thresh=0.6)
    preds = None if pred_boxes is None else Preds(T(np.zeros([batch, num_priors, 3])),
                                                  T(pred_boxes))
    gt_index = assigner.assign(priors, gts, preds).gt_index.numpy()
    expected = reference(prior_boxes, levels, boxes, mask, scores, pred_boxes, 0.6)
    assert gt_index.tolist() == expected.tolist()
    assert (expected >= 0).sum() > 10 and (expected == -2).sum() > 3     # not a trivial case
    for b in range(batch):
        one_preds = None if preds is None else Preds(preds.scores[b:b + 1], preds.bboxes[b:b + 1])
        one = assigner.assign(priors, make_gts(boxes[b:b + 1], mask[b:b + 1], labels[b:b + 1],
                                               scores[b:b + 1]), one_preds)
        assert one.gt_index.numpy()[0].tolist() == gt_index[b].tolist()


# ----------------------------------------------------------------------------- edge cases

def test_zero_gt_zero_priors_fully_padded_and_empty_levels():
    assigner = YOLOv3Assigner(num_classes=3)
    priors = grid_priors(**LEVELS)
    none = assigner.assign(priors, make_gts(np.zeros([2, 0, 4])))
    assert none.gt_index.shape == [2, NUM_PRIORS]
    assert (none.gt_index.numpy() == BACKGROUND).all()
    padded = assigner.assign(priors, make_gts([[[8, 48, 48, 88]], [[0, 0, 160, 160]]],
                                              mask=[[0], [0]]))
    assert (padded.gt_index.numpy() == BACKGROUND).all()
    nothing = assigner.assign(no_priors(3), make_gts([[[0, 0, 64, 64]]]))
    assert nothing.gt_index.shape == [1, 0] and nothing.assigned_scores.shape == [1, 0, 3]
    # no stride-32 level: a 160 x 160 GT takes the best remaining shape, 80^2 (IoU 0.25)
    partial = with_empty_levels(grid_priors([(8, 8), (16, 16)], [16, 8]), 1)
    result = assigner.assign(partial, make_gts([[[0, 0, 160, 160]]]))
    # centre (80, 80): stride 16 col / row 5 -> prior 5 * 8 + 5 = 45 (the level starts at 0)
    assert positives(result) == {45: 0}


def test_constructor_and_input_checks():
    with pytest.raises(ValueError, match='YOLOv3Assigner: ignore_thresh'):
        YOLOv3Assigner(ignore_thresh=1.5)
    with pytest.raises(TypeError, match='ignore_thresh'):
        YOLOv3Assigner(ignore_thresh='0.7')
    with pytest.raises(ValueError, match='num_classes'):
        YOLOv3Assigner(num_classes=0)
    with pytest.raises(TypeError, match='iou_score'):
        YOLOv3Assigner(iou_score=1)
    priors = grid_priors(**LEVELS)
    gts = make_gts([[[0, 0, 8, 8]]])
    with pytest.raises(ValueError, match='preds.bboxes'):
        YOLOv3Assigner().assign(priors, gts, Preds(T(np.zeros([1, 5, 80])),
                                                   T(np.zeros([1, 5, 4]))))
    bad = priors._replace(num_anchors_list=[16, 64, 255])
    with pytest.raises(ValueError, match='num_anchors_list'):
        YOLOv3Assigner().assign(bad, gts)
    with pytest.raises(TypeError, match='gt_labels'):
        YOLOv3Assigner().assign(priors, GTs(T([[[0]]], 'float32'), T([[[0, 0, 8, 8]]]),
                                            T([[[1.]]])))
