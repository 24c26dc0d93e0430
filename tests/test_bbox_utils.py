"""ppdet_lite.modeling.bbox_utils: every function on small cases computed by hand (the arithmetic
is in the comments). Boxes are x1, y1, x2, y2; points x, y; distances left, top, right, bottom."""

import numpy as np
import paddle
import pytest

from ppdet_lite.modeling import bbox_utils
from ppdet_lite.modeling.bbox_utils import (batch_distance2bbox, batch_iou_similarity,
                                           bbox2distance, bbox_area, bbox_center, bbox_giou,
                                           bbox_iou, distance2bbox,
                                           generate_anchors_for_grid_cell, grid_points,
                                           iou_similarity)


def t(x, dtype='float32'):
    return paddle.to_tensor(np.asarray(x, dtype=dtype))


def close(actual, expected, rtol=1e-6, atol=1e-7):
    np.testing.assert_allclose(actual.numpy(), np.asarray(expected, 'float64'), rtol=rtol,
                               atol=atol)


def test_every_public_function_is_covered():
    tested = {'bbox_center', 'bbox_area', 'bbox_iou', 'iou_similarity', 'batch_iou_similarity',
              'bbox_giou', 'distance2bbox', 'batch_distance2bbox', 'bbox2distance', 'grid_points',
              'generate_anchors_for_grid_cell', 'batch_iou_planes', 'plane_iou'}
    assert set(bbox_utils.__all__) == tested


# ------------------------------------------------------------------------------------------------
# centres and areas


def test_bbox_center():
    # [0, 0, 4, 2]: ((0 + 4) / 2, (0 + 2) / 2) = (2, 1); [1, 3, 2, 8]: (1.5, 5.5)
    close(bbox_center(t([[0, 0, 4, 2], [1, 3, 2, 8]])), [[2, 1], [1.5, 5.5]])
    # any leading shape: [2, 3, 4] -> [2, 3, 2]
    boxes = t(np.arange(24).reshape([2, 3, 4]))
    centres = bbox_center(boxes)
    assert centres.shape == [2, 3, 2]
    # box [0, 1, 2, 3] -> (1, 2); box [20, 21, 22, 23] -> (21, 22)
    close(centres[0, 0], [1, 2])
    close(centres[1, 2], [21, 22])


def test_bbox_area_inverted_and_degenerate_boxes_are_empty():
    boxes = t([[0, 0, 4, 2],      # 4 * 2 = 8
               [1, 1, 3.5, 1.5],  # 2.5 * 0.5 = 1.25
               [4, 2, 0, 0],      # inverted on both axes: (-4 -> 0) * (-2 -> 0) = 0, not +8
               [0, 0, -1, 5],     # inverted width: 0 * 5 = 0, not -5
               [2, 2, 2, 7]])     # zero width: 0
    close(bbox_area(boxes), [8, 1.25, 0, 0, 0])
    assert bbox_area(t(np.zeros([2, 3, 4]))).shape == [2, 3]


# ------------------------------------------------------------------------------------------------
# IoU


def test_bbox_iou_hand_computed():
    a = t([[0, 0, 2, 2],   # overlapping unit square with b: 1 / (4 + 4 - 1) = 1/7
           [0, 0, 1, 1],   # disjoint: 0
           [0, 0, 1, 1],   # sharing an edge: overlap width 0 -> 0
           [0, 0, 2, 2],   # identical: 4 / (4 + 4 - 4 + 1e-9) = 1
           [0, 0, 4, 4]])  # containing b: 4 / 16 = 0.25
    b = t([[1, 1, 3, 3],
           [2, 2, 3, 3],
           [1, 0, 2, 1],
           [0, 0, 2, 2],
           [1, 1, 3, 3]])
    iou = bbox_iou(a, b)
    assert iou.shape == [5]
    close(iou, [1 / 7, 0, 0, 1, 0.25])
    # symmetric
    close(bbox_iou(b, a), iou.numpy())


def test_bbox_iou_degenerate_boxes_give_zero_not_nan():
    point = t([[1, 1, 1, 1]])
    zero = t([[0, 0, 0, 0]])
    inverted = t([[2, 2, 0, 0]])
    normal = t([[0, 0, 2, 2]])
    # point vs itself: overlap 0, union 0 + 0 - 0 + eps: 0 / eps = 0 (eps keeps it from 0 / 0)
    for x, y in [(point, point), (zero, zero), (point, normal), (inverted, normal),
                 (inverted, inverted)]:
        iou = bbox_iou(x, y).numpy()
        assert np.isfinite(iou).all() and (iou == 0).all()
    # inverted vs normal: lt = max((2, 2), (0, 0)) = (2, 2), rb = min((0, 0), (2, 2)) = (0, 0),
    # overlap 0; the inverted box's area counts as 0, so union = 0 + 4 = 4, IoU 0.


def test_bbox_iou_eps_is_added_to_the_union():
    box = t([[0, 0, 2, 2]])  # area 4
    # 4 / (4 + 4 - 4 + eps): with eps = 4 the IoU of a box with itself is 4 / 8 = 0.5
    close(bbox_iou(box, box, eps=4.0), [0.5])
    # default eps 1e-9: 4 / (4 + 1e-9) rounds to 1 in float32
    close(bbox_iou(box, box), [1.0])


def test_bbox_iou_broadcasts():
    a = t([[[0, 0, 2, 2]], [[0, 0, 1, 1]], [[5, 5, 6, 6]]])  # [3, 1, 4]
    b = t([[[0, 0, 2, 2], [1, 1, 3, 3]]])                    # [1, 2, 4]
    iou = bbox_iou(a, b)
    assert iou.shape == [3, 2]
    # [0,0,1,1] vs [1,1,3,3]: touching at a corner -> 0; [0,0,1,1] vs [0,0,2,2]: 1 / 4
    close(iou, [[1, 1 / 7], [0.25, 0], [0, 0]])


def test_iou_similarity_pairwise():
    box1 = t([[0, 0, 2, 2], [0, 0, 1, 1]])                  # M = 2
    box2 = t([[1, 1, 3, 3], [0, 0, 2, 2], [4, 4, 5, 5]])    # N = 3
    iou = iou_similarity(box1, box2)
    assert iou.shape == [2, 3]
    close(iou, [[1 / 7, 1, 0],
                [0, 0.25, 0]])
    # empty side: [0, 4] x [3, 4] -> [0, 3]
    assert iou_similarity(paddle.zeros([0, 4]), box2).shape == [0, 3]


def test_batch_iou_similarity_per_image():
    box1 = t([[[0, 0, 2, 2]],                   # B = 2, M = 1
              [[0, 0, 4, 4]]])
    box2 = t([[[1, 1, 3, 3], [0, 0, 2, 2]],     # N = 2
              [[1, 1, 3, 3], [8, 8, 9, 9]]])
    iou = batch_iou_similarity(box1, box2)
    assert iou.shape == [2, 1, 2]
    # image 0 as above; image 1: [0,0,4,4] contains [1,1,3,3]: 4 / 16; disjoint from [8,8,9,9]
    close(iou, [[[1 / 7, 1]], [[0.25, 0]]])
    # no cross-image pairs: image 1's box1 against image 0's box2 would give 1/4 and 1/4
    assert iou_similarity(box1[1], box2[0]).numpy().tolist() == [[0.25, 0.25]]


def test_bbox_giou():
    pred = t([[0, 0, 2, 2],    # overlap 1, union 7, enclosing [0,0,3,3] = 9: 1/7 - 2/9
              [0, 0, 1, 1],    # disjoint, adjacent: union 2, enclosing [0,0,3,1] = 3: 0 - 1/3
              [0, 0, 1, 1],    # disjoint, far: union 2, enclosing [0,0,4,4] = 16: 0 - 14/16
              [4, 4, 6, 8]])   # identical: 1
    gt = t([[1, 1, 3, 3],
            [2, 0, 3, 1],
            [3, 3, 4, 4],
            [4, 4, 6, 8]])
    giou, iou = bbox_giou(pred, gt)
    assert giou.shape == [4] and iou.shape == [4]
    close(giou, [1 / 7 - 2 / 9, -1 / 3, -0.875, 1])
    close(iou, [1 / 7, 0, 0, 1])
    assert (giou.numpy()[1:3] < 0).all()  # disjoint boxes: negative GIoU, more so the farther
    assert giou.numpy()[2] < giou.numpy()[1]
    # broadcasting leading dims: [2, 1, 4] x [1, 1, 4]
    giou, _ = bbox_giou(t([[[0, 0, 2, 2]], [[0, 0, 1, 1]]]), t([[[1, 1, 3, 3]]]))
    assert giou.shape == [2, 1]
    # [0,0,1,1] vs [1,1,3,3]: overlap 0, union 1 + 4 = 5, enclosing 9: 0 - 4/9
    close(giou[:, 0], [1 / 7 - 2 / 9, -4 / 9])


# ------------------------------------------------------------------------------------------------
# distances <-> boxes


def test_distance2bbox():
    points = t([[5, 5], [1, 1]])
    distance = t([[1, 2, 3, 4],    # (5 - 1, 5 - 2, 5 + 3, 5 + 4) = (4, 3, 8, 9)
                  [3, 3, 1, 1]])   # (1 - 3, 1 - 3, 1 + 1, 1 + 1) = (-2, -2, 2, 2)
    close(distance2bbox(points, distance), [[4, 3, 8, 9], [-2, -2, 2, 2]])
    # max_shape (h, w) = (8, 7): x clipped to [0, 7], y to [0, 8]
    close(distance2bbox(points, distance, max_shape=(8, 7)), [[4, 3, 7, 8], [0, 0, 2, 2]])
    # a larger image leaves the first box alone
    close(distance2bbox(points, distance, max_shape=[100, 100]), [[4, 3, 8, 9], [0, 0, 2, 2]])


def test_batch_distance2bbox():
    points = t([[10, 10], [4, 6]])                       # [L, 2], shared by the images
    distance = t([[[12, 13, 5, 5], [1, 1, 1, 1]],        # [B = 2, L = 2, 4]
                  [[12, 13, 5, 5], [2, 2, 20, 20]]])
    # unclipped: (10 - 12, 10 - 13, 10 + 5, 10 + 5) = (-2, -3, 15, 15); (3, 5, 5, 7);
    # (4 - 2, 6 - 2, 4 + 20, 6 + 20) = (2, 4, 24, 26)
    boxes = batch_distance2bbox(points, distance)
    assert boxes.shape == [2, 2, 4]
    close(boxes, [[[-2, -3, 15, 15], [3, 5, 5, 7]], [[-2, -3, 15, 15], [2, 4, 24, 26]]])
    # per-image max_shapes (h, w): image 0 is 10 high and 20 wide, image 1 20 high and 10 wide
    max_shapes = t([[10, 20], [20, 10]])
    close(batch_distance2bbox(points, distance, max_shapes),
          [[[0, 0, 15, 10], [3, 5, 5, 7]],     # y2 15 -> 10; x2 15 < 20 stays
           [[0, 0, 10, 15], [2, 4, 10, 20]]])  # x2 15 -> 10, y2 15 < 20; (24, 26) -> (10, 20)
    # per-image points [B, L, 2] give the same as shared points
    close(batch_distance2bbox(paddle.stack([points, points]), distance, max_shapes),
          batch_distance2bbox(points, distance, max_shapes).numpy())


def test_bbox2distance_and_clipping():
    points = t([[5, 5], [0, 0]])
    bbox = t([[1, 2, 8, 9],    # (5 - 1, 5 - 2, 8 - 5, 9 - 5) = (4, 3, 3, 4)
              [1, 1, 4, 4]])   # point outside: (0 - 1, 0 - 1, 4 - 0, 4 - 0) = (-1, -1, 4, 4)
    close(bbox2distance(points, bbox), [[4, 3, 3, 4], [-1, -1, 4, 4]])
    # max_dis 3.5, eps 0.1: clipped to [0, 3.4]
    close(bbox2distance(points, bbox, max_dis=3.5), [[3.4, 3, 3, 3.4], [0, 0, 3.4, 3.4]])
    # PP-YOLOE's DFL: max_dis 16, eps 0.01 -> at most 15.99, so bin floor + 1 = 16 exists
    far = bbox2distance(t([[0, 0]]), t([[-40, -2, 3, 16]]), max_dis=16, eps=0.01)
    close(far, [[15.99, 2, 3, 15.99]])
    # round trip with distance2bbox inside the limits
    close(distance2bbox(points[:1], bbox2distance(points[:1], bbox[:1])), [[1, 2, 8, 9]])


# ------------------------------------------------------------------------------------------------
# grids and anchors


def test_grid_points_row_major_with_offset_and_stride():
    points = grid_points(2, 3, offset=0.5, stride=8.)
    assert points.shape == [6, 2] and points.dtype == paddle.float32
    # ((col + 0.5) * 8, (row + 0.5) * 8), x running fastest
    close(points, [[4, 4], [12, 4], [20, 4],
                   [4, 12], [12, 12], [20, 12]])
    close(grid_points(3, 2, offset=0., stride=1.), [[0, 0], [1, 0], [0, 1], [1, 1], [0, 2], [1, 2]])
    assert grid_points(2, 2, dtype='float64').dtype == paddle.float64
    close(grid_points(1, 2), [[0.5, 0.5], [1.5, 0.5]])  # defaults: offset 0.5, stride 1


def test_generate_anchors_for_grid_cell_non_square_two_levels():
    # a 96 x 128 input at strides 32 and 16: 3 x 4 and 6 x 8 cells
    feats = [paddle.zeros([2, 5, 3, 4]), paddle.zeros([2, 5, 6, 8])]
    anchors, points, num_anchors_list, stride_tensor = generate_anchors_for_grid_cell(
        feats, [32, 16], grid_cell_size=5.0, grid_cell_offset=0.5)
    assert num_anchors_list == [12, 48]
    assert anchors.shape == [60, 4] and points.shape == [60, 2] and stride_tensor.shape == [60, 1]
    # level 0, cell (row 0, col 0): point (0.5 * 32, 0.5 * 32) = (16, 16), half side 5 * 32 / 2 = 80
    close(anchors[0], [16 - 80, 16 - 80, 16 + 80, 16 + 80])
    close(points[0], [16, 16])
    # level 0, second anchor is the next column: (48, 16)
    close(points[1], [48, 16])
    # level 0, last cell (row 2, col 3): (3.5 * 32, 2.5 * 32) = (112, 80)
    close(points[11], [112, 80])
    close(anchors[11], [112 - 80, 80 - 80, 112 + 80, 80 + 80])
    # level 1, first cell: (8, 8), half side 5 * 16 / 2 = 40
    close(anchors[12], [-32, -32, 48, 48])
    # level 1, last cell (row 5, col 7): (7.5 * 16, 5.5 * 16) = (120, 88)
    close(points[59], [120, 88])
    close(anchors[59], [80, 48, 160, 128])
    np.testing.assert_array_equal(stride_tensor.numpy()[:, 0], [32] * 12 + [16] * 48)
    # anchors are centred on the points
    close(bbox_center(anchors), points.numpy())
    assert all(x.stop_gradient for x in (anchors, points, stride_tensor))


def test_generate_anchors_cell_size_and_offset():
    anchors, points, counts, strides = generate_anchors_for_grid_cell(
        [paddle.zeros([1, 1, 1, 2])], [8], grid_cell_size=2.0, grid_cell_offset=0.)
    # offset 0: points at (0, 0) and (8, 0); side 2 * 8 = 16
    close(points, [[0, 0], [8, 0]])
    close(anchors, [[-8, -8, 8, 8], [0, -8, 16, 8]])
    assert counts == [2] and strides.numpy().tolist() == [[8.], [8.]]


@pytest.mark.parametrize('fn', [bbox_area, bbox_center])
def test_empty_inputs(fn):
    assert fn(paddle.zeros([0, 4])).shape[0] == 0


def test_batch_iou_planes_is_the_pairwise_iou_of_each_image():
    gts = t([[[0, 0, 10, 10], [0, 0, 4, 4]]])                       # one image, M = 2
    boxes = t([[[0, 0, 10, 10], [5, 5, 15, 15], [1, 1, 3, 3]]])
    # first GT: itself 1; overlap 5 * 5 -> 25 / (100 + 100 - 25); the 2 x 2 box inside: 4 / 100
    # second GT: 16 / 100; [5, 5, 15, 15] does not touch [0, 0, 4, 4]: 0; 4 / 16
    close(bbox_utils.batch_iou_planes(gts, boxes), [[[1, 25 / 175, 0.04], [0.16, 0, 0.25]]])
    # a batch of 1 broadcasts; empty sides give zeros of the right shape
    assert bbox_utils.batch_iou_planes(gts, paddle.concat([boxes, boxes])).shape == [2, 2, 3]
    assert bbox_utils.batch_iou_planes(paddle.zeros([2, 0, 4]), boxes).shape == [2, 0, 3]
    rng = np.random.RandomState(1)
    a = rng.randint(0, 50, (3, 6, 4)).astype('float32')
    b = rng.randint(0, 50, (1, 40, 4)).astype('float32')
    a[..., 2:] += a[..., :2]
    b[..., 2:] += b[..., :2]
    # the same operations as batch_iou_similarity: the same float32 values, bit for bit
    np.testing.assert_array_equal(
        bbox_utils.batch_iou_planes(t(a), t(b)).numpy(),
        bbox_utils.batch_iou_similarity(t(a), t(np.repeat(b, 3, axis=0))).numpy())


def test_plane_iou_is_bbox_iou_on_coordinate_planes():
    # [0, 0, 10, 10] with [5, 5, 15, 15]: overlap 5 * 5 = 25, union 100 + 100 - 25 = 175;
    # with [20, 0, 30, 10]: no overlap; an inverted box has area 0: IoU 0
    a = t([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]])
    b = t([[5, 5, 15, 15], [20, 0, 30, 10], [10, 10, 0, 0]])
    close(bbox_utils.plane_iou(a.unbind(-1), b.unbind(-1)), [25 / 175, 0, 0])
    rng = np.random.RandomState(2)
    boxes = rng.uniform(0, 50, (2, 300, 4)).astype('float32')
    boxes[..., 2:] += rng.uniform(-5, 30, (2, 300, 2)).astype('float32')   # some inverted
    # the same float32 operations as bbox_iou: the same values, bit for bit
    np.testing.assert_array_equal(
        bbox_utils.plane_iou(t(boxes[0]).unbind(-1), t(boxes[1]).unbind(-1), 1e-9).numpy(),
        bbox_utils.bbox_iou(t(boxes[0]), t(boxes[1]), 1e-9).numpy())
