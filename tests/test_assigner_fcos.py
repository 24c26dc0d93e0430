"""FCOSAssigner: centre sampling radius, scale ranges by stride, smallest area wins; batched ==
per image == a dense numpy definition; empty inputs; argument checks.

Priors are PP-YOLOE's (``grid_priors``): a level of stride s has its points at
``(col + 0.5) * s, (row + 0.5) * s``, so on the stride-8 level x = 4, 12, 20, 28, 36, 44, ...
"""

import numpy as np
import pytest

from assigner_cases import T, make_gts, no_priors, positives, with_empty_levels
from ppdet_lite.modeling.assigners import BACKGROUND, FCOSAssigner, GTs, Preds, grid_priors


def cell(row, col):
    """Prior index of a cell of the one 8 x 8 level below."""
    return row * 8 + col


# one 8 x 8 level of stride 8 (a 64 x 64 image): one scale range, no boundaries
ONE_LEVEL = dict(level_shapes=[(8, 8)], fpn_strides=[8])


def one_level_assigner(**kwargs):
    return FCOSAssigner(num_classes=3, object_sizes_boundary=[], **kwargs)


# ----------------------------------------------------------------------------- centre sampling

def test_centre_radius_keeps_points_strictly_within_1_5_strides():
    priors = grid_priors(**ONE_LEVEL)
    gts = make_gts([[[0, 0, 64, 64]]])
    # centre (32, 32), radius 1.5 * 8 = 12: points strictly inside (20, 44) on each axis are
    # 28 and 36 (cols / rows 3 and 4); 20 and 44 lie exactly on the edge and are left out
    result = one_level_assigner().assign(priors, gts)
    assert set(positives(result)) == {cell(r, c) for r in (3, 4) for c in (3, 4)}
    # radius 2: (16, 48) holds 20, 28, 36, 44: cols / rows 2..5
    result = one_level_assigner(center_sampling_radius=2.0).assign(priors, gts)
    assert set(positives(result)) == {cell(r, c) for r in range(2, 6) for c in range(2, 6)}


def test_sampling_square_is_clipped_to_the_gt():
    priors = grid_priors(**ONE_LEVEL)
    gts = make_gts([[[22, 22, 38, 58]]])
    # centre (30, 40), half side 12: x (18, 42) clipped to the GT's (22, 38) -> 28, 36 (cols 3, 4;
    # unclipped, 20 would count); y (28, 52) within (22, 58) -> 36, 44 (rows 4, 5; 28 and 52 on
    # the edge)
    result = one_level_assigner().assign(priors, gts)
    assert set(positives(result)) == {cell(r, c) for r in (4, 5) for c in (3, 4)}
    # radius 0: no centre sampling, every point strictly inside the GT: x 28, 36; y 28..52
    result = one_level_assigner(center_sampling_radius=0).assign(priors, gts)
    assert set(positives(result)) == {cell(r, c) for r in (3, 4, 5, 6) for c in (3, 4)}


# ----------------------------------------------------------------------------- scale ranges

# a 256 x 256 image, PP-YOLOE's level order (coarsest first) and the reverse
COARSE_FIRST = dict(level_shapes=[(8, 8), (16, 16), (32, 32)], fpn_strides=[32, 16, 8])
FINE_FIRST = dict(level_shapes=[(32, 32), (16, 16), (8, 8)], fpn_strides=[8, 16, 32])


def positive_points(priors, result, image):
    """{(stride, x, y)} of one image's positives."""
    points, strides = priors.points.numpy(), priors.strides.numpy()
    return {(int(strides[p]), float(points[p, 0]), float(points[p, 1]))
            for p in positives(result, image)}


@pytest.mark.parametrize('layout', [COARSE_FIRST, FINE_FIRST])
def test_default_ranges_send_each_gt_to_the_level_of_its_size_by_stride(layout):
    priors = grid_priors(**layout)
    # one GT per image, all centred at (128, 128); default boundaries [64, 128]:
    # stride 8 (-1, 64), stride 16 (64, 128), stride 32 (128, inf)
    gts = make_gts([[[120, 120, 136, 136]],    # 16 x 16
                    [[64, 64, 192, 192]],      # 128 x 128
                    [[0, 0, 256, 256]]])       # 256 x 256
    result = FCOSAssigner(num_classes=3).assign(priors, gts)
    # small: stride 8 points 124, 132 (inside (116, 140) and the GT), max(l,t,r,b) = 12 < 64;
    # stride 16's 120 and 136 lie on the GT's edges
    assert positive_points(priors, result, 0) == {(8, x, y) for x in (124., 132.)
                                                  for y in (124., 132.)}
    # medium: stride 16 points 120, 136 (inside (104, 152)): max = 192 - 120 = 72 in (64, 128);
    # stride 8's 124: max 68 >= 64; stride 32's 112: max 80 <= 128
    assert positive_points(priors, result, 1) == {(16, x, y) for x in (120., 136.)
                                                  for y in (120., 136.)}
    # large: stride 32 points 112, 144 (inside (80, 176)): max = 144 > 128; stride 16's 120:
    # max 136 >= 128; stride 8's 124: max 132 >= 64
    assert positive_points(priors, result, 2) == {(32, x, y) for x in (112., 144.)
                                                  for y in (112., 144.)}


def test_range_bounds_are_exclusive_on_both_sides():
    priors = grid_priors(**COARSE_FIRST)
    gts = make_gts([[[68, 68, 188, 188]],      # 120 x 120, centre (128, 128)
                    [[72, 72, 184, 184]]])     # 112 x 112
    result = FCOSAssigner(num_classes=3).assign(priors, gts)
    # first GT, stride 8 points 124, 132: max(l,t,r,b) = 188 - 124 = 64, not below 64 -> none;
    # stride 16 points 120, 136: max = 68 in (64, 128) -> 4 positives
    assert {s for s, _, _ in positive_points(priors, result, 0)} == {16}
    assert len(positives(result, 0)) == 4
    # second GT, stride 16 points 120, 136: max = 184 - 120 = 64, not above 64 -> none;
    # stride 8 points 124, 132: max = 60 < 64 -> 4 positives
    assert {s for s, _, _ in positive_points(priors, result, 1)} == {8}
    assert len(positives(result, 1)) == 4


def test_custom_boundaries_follow_the_strides():
    priors = grid_priors(**COARSE_FIRST)
    gts = make_gts([[[64, 64, 192, 192]]])
    # boundaries [32, 256]: stride 8 (-1, 32), stride 16 (32, 256), stride 32 (256, inf);
    # the 128 x 128 GT's stride 16 points have max 72 -> stride 16 only
    result = FCOSAssigner(num_classes=3, object_sizes_boundary=[32, 256]).assign(priors, gts)
    assert {s for s, _, _ in positive_points(priors, result, 0)} == {16}
    # boundaries [80, 100]: stride 8 (-1, 80) takes 124 (max 68), stride 16 (80, 100) rejects 72
    result = FCOSAssigner(num_classes=3, object_sizes_boundary=[80, 100]).assign(priors, gts)
    assert {s for s, _, _ in positive_points(priors, result, 0)} == {8}


# ----------------------------------------------------------------------------- conflicts

def test_smallest_area_wins_whatever_the_slot_order():
    priors = grid_priors(**ONE_LEVEL)
    big, small = [0, 0, 64, 64], [20, 20, 44, 44]
    # both centred at (32, 32): both claim cols / rows 3, 4; areas 4096 and 24 * 24 = 576
    shared = {cell(r, c) for r in (3, 4) for c in (3, 4)}
    for boxes, small_slot in (([big, small], 1), ([small, big], 0)):
        result = one_level_assigner().assign(priors, make_gts([boxes]))
        assert positives(result) == {p: small_slot for p in shared}


def test_equal_areas_go_to_the_lowest_slot():
    priors = grid_priors(**ONE_LEVEL)
    square, tall = [20, 20, 44, 44], [24, 16, 40, 52]      # 24 * 24 = 16 * 36 = 576
    # square claims x, y in {28, 36}; tall (centre (32, 34)) claims x in {28, 36} (clipped to
    # (24, 40)), y in {28, 36, 44} (within (22, 46))
    square_cells = {cell(r, c) for r in (3, 4) for c in (3, 4)}
    tall_only = {cell(5, 3), cell(5, 4)}
    result = one_level_assigner().assign(priors, make_gts([[square, tall]]))
    assert positives(result) == {**{p: 0 for p in square_cells}, **{p: 1 for p in tall_only}}
    result = one_level_assigner().assign(priors, make_gts([[tall, square]]))
    assert positives(result) == {p: 0 for p in square_cells | tall_only}


def test_padded_slots_never_claim():
    priors = grid_priors(**ONE_LEVEL)
    # slot 1 is padding holding a tiny box that would win every shared prior if it were real
    gts = make_gts([[[0, 0, 64, 64], [26, 26, 38, 38]]], mask=[[1, 0]])
    result = one_level_assigner().assign(priors, gts)
    assert set(positives(result).values()) == {0}
    assert len(positives(result)) == 4


# ----------------------------------------------------------------------------- targets

def test_targets_score_one_gt_score_or_predicted_iou():
    priors = grid_priors(**ONE_LEVEL)
    gts = make_gts([[[0, 0, 64, 64]]], labels=[[2]])
    prior = cell(3, 3)
    # a predicted box (20, 20, 44, 44) everywhere: IoU with the GT 576 / 4096 = 0.140625
    preds = Preds(T(np.full([1, 64, 3], 0.5)), T(np.tile([20, 20, 44, 44], [1, 64, 1])))
    plain = FCOSAssigner(num_classes=3, object_sizes_boundary=[]).assign(priors, gts, preds)
    assert plain.assigned_scores.numpy()[0, prior].tolist() == [0, 0, 1]
    assert plain.assigned_labels.numpy()[0, prior] == 2
    assert plain.assigned_labels.numpy()[0, 0] == 3                  # background
    assert plain.assigned_bboxes.numpy()[0, prior].tolist() == [0, 0, 64, 64]
    weighted = one_level_assigner().assign(priors, make_gts([[[0, 0, 64, 64]]], labels=[[2]],
                                                            scores=[[0.25]]))
    assert weighted.assigned_scores.numpy()[0, prior].tolist() == [0, 0, 0.25]
    iou = FCOSAssigner(num_classes=3, object_sizes_boundary=[], iou_score=True).assign(
        priors, gts, preds)
    assert np.allclose(iou.assigned_scores.numpy()[0, prior], [0, 0, 0.140625])
    assert not iou.ignore_mask.numpy().any()


# ----------------------------------------------------------------------------- the definition

def reference(points, strides, boxes, mask, boundaries, radius):
    """Dense numpy FCOS assignment: ``[B, L]`` gt slot or -1 (Gt2FCOSTarget's rule, written
    anew: every (prior, GT) pair; ranges handed out by stride; argmin keeps the first slot), and
    how many priors had several claimants."""
    ranked = sorted(set(strides.tolist()))
    rank = np.array([ranked.index(s) for s in strides])
    lower = np.array([-1.0] + boundaries, 'float32')[rank][:, None]
    upper = np.array(boundaries + [np.inf], 'float32')[rank][:, None]
    px, py = points[:, 0:1], points[:, 1:2]
    out = np.full(mask.shape[:1] + points.shape[:1], -1)
    contested = 0
    for b in range(boxes.shape[0]):
        x1, y1, x2, y2 = [boxes[b, :, i][None] for i in range(4)]
        distances = np.stack([px - x1, py - y1, x2 - px, y2 - py])     # [4, L, n]
        if radius > 0:
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            half = strides[:, None] * np.float32(radius)
            x1, x2 = np.maximum(x1, cx - half), np.minimum(x2, cx + half)
            y1, y2 = np.maximum(y1, cy - half), np.minimum(y2, cy + half)
        inside = (px > x1) & (px < x2) & (py > y1) & (py < y2)
        farthest = distances.max(axis=0)
        ok = inside & (farthest > lower) & (farthest < upper) & (mask[b][None] > 0)
        area = (boxes[b, :, 2] - boxes[b, :, 0]) * (boxes[b, :, 3] - boxes[b, :, 1])
        area = np.where(ok, area[None], np.inf)
        out[b] = np.where(ok.any(axis=1), area.argmin(axis=1), -1)
        contested += int((ok.sum(axis=1) > 1).sum())
    return out, contested


def random_gts(rng, batch, num, size, whole_pixels):
    centre = rng.uniform(-8, size + 8, (batch, num, 2))
    centre[:, 2::3] = centre[:, 0::3][:, :centre[:, 2::3].shape[1]]       # concentric GTs
    half = rng.uniform(1, size / 2, (batch, num, 2)) * rng.choice([0.25, 1.0], (batch, num, 1))
    boxes = np.concatenate([centre - half, centre + half], -1)
    if whole_pixels:
        boxes = np.round(boxes / 4) * 4                         # many equal distances and areas
        boxes[:, 1::3] = boxes[:, 0::3][:, :boxes[:, 1::3].shape[1]]   # duplicate GTs
    mask = (rng.rand(batch, num) < 0.8).astype('float32')
    boxes[mask == 0] = rng.uniform(-1e3, 1e3, (int((mask == 0).sum()), 4))   # padding: anything
    return boxes.astype('float32'), mask


@pytest.mark.parametrize('whole_pixels', [False, True])
@pytest.mark.parametrize('radius,boundaries,offset', [(1.5, [64, 128], 0.5), (2.5, [16, 40], 0.0),
                                                      (0, [24, 48], 0.5), (0.75, [24, 48], 0.5)])
def test_equals_dense_definition_batched_and_per_image(whole_pixels, radius, boundaries, offset):
    rng = np.random.RandomState(int(radius * 10) + 100 * whole_pixels)
    priors = grid_priors([(3, 5), (6, 10), (12, 20)], [32, 16, 8], grid_cell_offset=offset)
    batch, num = 3, 9
    boxes, mask = random_gts(rng, batch, num, 128, whole_pixels)
    labels = rng.randint(0, 4, (batch, num))
    assigner = FCOSAssigner(num_classes=4, object_sizes_boundary=boundaries,
                            center_sampling_radius=radius)
    result = assigner.assign(priors, make_gts(boxes, mask, labels))
    expected, contested = reference(priors.points.numpy(), priors.strides.numpy(), boxes, mask,
                                    [float(b) for b in boundaries], radius)
    gt_index = result.gt_index.numpy()
    assert gt_index.tolist() == expected.tolist()
    assert (gt_index >= 0).sum() > 5 and contested > 0     # the case is not trivial
    for b in range(batch):
        one = assigner.assign(priors, make_gts(boxes[b:b + 1], mask[b:b + 1], labels[b:b + 1]))
        assert one.gt_index.numpy()[0].tolist() == gt_index[b].tolist()
    # targets follow gt_index
    slot = np.clip(expected, 0, None)
    label = np.take_along_axis(labels, slot, 1)
    assert result.assigned_labels.numpy().tolist() == np.where(expected >= 0, label, 4).tolist()


# ----------------------------------------------------------------------------- edge cases

def test_zero_gt_zero_priors_fully_padded_and_empty_levels():
    assigner = FCOSAssigner(num_classes=3)
    priors = grid_priors(**COARSE_FIRST)
    none = assigner.assign(priors, make_gts(np.zeros([2, 0, 4])))
    assert none.gt_index.shape == [2, 1344] and (none.gt_index.numpy() == BACKGROUND).all()
    assert none.assigned_scores.shape == [2, 1344, 3]
    padded = assigner.assign(priors, make_gts([[[0, 0, 64, 64]], [[8, 8, 40, 40]]],
                                              mask=[[0], [0]]))
    assert (padded.gt_index.numpy() == BACKGROUND).all()
    nothing = assigner.assign(no_priors(3), make_gts([[[0, 0, 64, 64]]]))
    assert nothing.gt_index.shape == [1, 0] and nothing.assigned_scores.shape == [1, 0, 3]
    # the stride-32 level is empty (an input smaller than 32): strides 8 and 16 keep their ranges
    partial = with_empty_levels(grid_priors([(4, 4), (8, 8)], [16, 8]), 1)
    result = assigner.assign(partial, make_gts([[[20, 20, 44, 44]]]))
    strides = partial.strides.numpy()
    # 24 x 24 GT centred at (32, 32): stride 8 points 28, 36 (max 16 < 64) -> stride 8 only
    assert {int(strides[p]) for p in positives(result)} == {8} and len(positives(result)) == 4


def test_constructor_and_input_checks():
    with pytest.raises(ValueError, match='FCOSAssigner: object_sizes_boundary'):
        FCOSAssigner(object_sizes_boundary=[128, 64])
    with pytest.raises(ValueError, match='object_sizes_boundary'):
        FCOSAssigner(object_sizes_boundary=[0, 64])
    with pytest.raises(TypeError, match='object_sizes_boundary'):
        FCOSAssigner(object_sizes_boundary=64)
    with pytest.raises(ValueError, match='center_sampling_radius'):
        FCOSAssigner(center_sampling_radius=-1)
    with pytest.raises(ValueError, match='center_sampling_radius'):
        FCOSAssigner(center_sampling_radius=float('inf'))
    with pytest.raises(ValueError, match='num_classes'):
        FCOSAssigner(num_classes=0)
    with pytest.raises(TypeError, match='iou_score'):
        FCOSAssigner(iou_score='yes')
    priors = grid_priors(**COARSE_FIRST)
    with pytest.raises(ValueError, match=r'defines 2 scale ranges but the priors have 3 levels'):
        FCOSAssigner(object_sizes_boundary=[64]).assign(priors, make_gts([[[0, 0, 8, 8]]]))
    with pytest.raises(ValueError, match='preds.bboxes'):
        FCOSAssigner().assign(priors, make_gts([[[0, 0, 8, 8]]]),
                              Preds(T(np.zeros([1, 10, 80])), T(np.zeros([1, 10, 4]))))
    with pytest.raises(TypeError, match='gt_bboxes'):
        FCOSAssigner().assign(priors, GTs(T([[[0]]], 'int64'), T([[[0, 0, 8, 8]]], 'float64'),
                                          T([[[1.]]])))
