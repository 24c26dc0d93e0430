"""Box maths shared by heads, assigners and losses: the one home for it.

Conventions: boxes are ``x1, y1, x2, y2`` in input-image pixels (the last axis holds the four
coordinates); points are ``x, y``; distances are ``left, top, right, bottom`` from a point.
The epsilons are PaddleDetection's, so that results match it bit for bit where possible.
Every function checks the size of the coordinate axis of its inputs (statically: free) and raises
ValueError naming the function, the argument and its shape.
"""

import numpy as np
import paddle

__all__ = [
    'bbox_center', 'bbox_area', 'bbox_iou', 'iou_similarity', 'batch_iou_similarity', 'bbox_giou',
    'distance2bbox', 'batch_distance2bbox', 'bbox2distance', 'grid_points',
    'generate_anchors_for_grid_cell', 'batch_iou_planes', 'plane_iou',
]


def _require_last(fn, name, tensor, size):
    """The last axis of ``tensor`` holds ``size`` coordinates (4 for a box, 2 for a point)."""
    shape = list(tensor.shape)
    if not shape or (shape[-1] >= 0 and shape[-1] != size):
        raise ValueError(f'{fn}: {name} must be [..., {size}], got shape {shape}')


def bbox_center(boxes):
    """Centres ``[..., 2]`` (cx, cy) of boxes ``[..., 4]``."""
    _require_last('bbox_center', 'boxes', boxes, 4)
    return (boxes[..., 0:2] + boxes[..., 2:4]) / 2


def bbox_area(boxes):
    """Areas ``[...]`` of boxes ``[..., 4]``; inverted boxes count as empty."""
    _require_last('bbox_area', 'boxes', boxes, 4)
    wh = (boxes[..., 2:4] - boxes[..., 0:2]).clip(min=0)
    return wh[..., 0] * wh[..., 1]


def bbox_iou(box1, box2, eps=1e-9):
    """IoU of boxes ``[..., 4]`` that broadcast against each other -> ``[...]``.

    ``union = area1 + area2 - overlap + eps``; degenerate boxes give IoU 0, never NaN.
    """
    _require_last('bbox_iou', 'box1', box1, 4)
    _require_last('bbox_iou', 'box2', box2, 4)
    if 0 in box1.shape or 0 in box2.shape:
        # Paddle 2.6's elementwise kernels reject 0-size operands; the answer is just empty
        shape = np.broadcast_shapes(tuple(box1.shape[:-1]), tuple(box2.shape[:-1]))
        return paddle.zeros(shape, dtype=box1.dtype)
    lt = paddle.maximum(box1[..., 0:2], box2[..., 0:2])
    rb = paddle.minimum(box1[..., 2:4], box2[..., 2:4])
    wh = (rb - lt).clip(min=0)
    overlap = wh[..., 0] * wh[..., 1]
    union = bbox_area(box1) + bbox_area(box2) - overlap + eps
    return overlap / union


def iou_similarity(box1, box2, eps=1e-10):
    """Pairwise IoU: ``box1 [M, 4]`` x ``box2 [N, 4]`` -> ``[M, N]``."""
    return bbox_iou(box1.unsqueeze(1), box2.unsqueeze(0), eps)


def batch_iou_similarity(box1, box2, eps=1e-9):
    """Batched pairwise IoU: ``box1 [B, M, 4]`` x ``box2 [B, N, 4]`` -> ``[B, M, N]``."""
    return bbox_iou(box1.unsqueeze(2), box2.unsqueeze(1), eps)


def bbox_giou(box1, box2, eps=1e-10):
    """Generalised IoU of aligned boxes ``[..., 4]`` -> ``(giou [...], iou [...])``.

    As in PaddleDetection's GIoULoss the areas are not clipped and ``eps`` is added to both the
    union and the enclosing area.
    """
    _require_last('bbox_giou', 'box1', box1, 4)
    _require_last('bbox_giou', 'box2', box2, 4)
    x1, y1, x2, y2 = box1.unbind(-1)
    gx1, gy1, gx2, gy2 = box2.unbind(-1)
    w_inter = (paddle.minimum(x2, gx2) - paddle.maximum(x1, gx1)).clip(min=0)
    h_inter = (paddle.minimum(y2, gy2) - paddle.maximum(y1, gy1)).clip(min=0)
    overlap = w_inter * h_inter
    union = (x2 - x1) * (y2 - y1) + (gx2 - gx1) * (gy2 - gy1) - overlap + eps
    iou = overlap / union
    enclose = (paddle.maximum(x2, gx2) - paddle.minimum(x1, gx1)) * \
              (paddle.maximum(y2, gy2) - paddle.minimum(y1, gy1)) + eps
    return iou - (enclose - union) / enclose, iou


def distance2bbox(points, distance, max_shape=None):
    """Decode ``distance [N, 4]`` (ltrb) from ``points [N, 2]`` -> boxes ``[N, 4]``.

    ``max_shape`` (h, w) clips the result to the image.
    """
    _require_last('distance2bbox', 'points', points, 2)
    _require_last('distance2bbox', 'distance', distance, 4)
    x1y1 = points - distance[..., 0:2]
    x2y2 = points + distance[..., 2:4]
    boxes = paddle.concat([x1y1, x2y2], axis=-1)
    if max_shape is not None:
        h, w = float(max_shape[0]), float(max_shape[1])
        boxes = paddle.stack([boxes[..., 0].clip(0, w), boxes[..., 1].clip(0, h),
                              boxes[..., 2].clip(0, w), boxes[..., 3].clip(0, h)], axis=-1)
    return boxes


def batch_distance2bbox(points, distance, max_shapes=None):
    """Decode ``distance [B, L, 4]`` (ltrb) from ``points [L, 2]`` or ``[B, L, 2]`` -> ``[B, L, 4]``.

    ``max_shapes [B, 2]`` (h, w per image) clips each image's boxes to ``[0, w] x [0, h]``.
    """
    _require_last('batch_distance2bbox', 'points', points, 2)
    _require_last('batch_distance2bbox', 'distance', distance, 4)
    lt, rb = paddle.split(distance, 2, axis=-1)
    boxes = paddle.concat([points - lt, points + rb], axis=-1)
    if max_shapes is not None:
        limit = max_shapes.flip(-1).tile([1, 2]).unsqueeze(1)  # [B, 1, 4] = w, h, w, h
        boxes = paddle.where(boxes < limit, boxes, limit)
        boxes = paddle.where(boxes > 0, boxes, paddle.zeros_like(boxes))
    return boxes


def bbox2distance(points, bbox, max_dis=None, eps=0.1):
    """Encode boxes ``[..., 4]`` as ltrb distances from ``points [..., 2]``.

    With ``max_dis`` the distances are clipped to ``[0, max_dis - eps]``: strictly below the last
    DFL bin so that the right neighbour bin of every target exists.
    """
    _require_last('bbox2distance', 'points', points, 2)
    _require_last('bbox2distance', 'bbox', bbox, 4)
    lt = points - bbox[..., 0:2]
    rb = bbox[..., 2:4] - points
    dist = paddle.concat([lt, rb], axis=-1)
    if max_dis is not None:
        dist = dist.clip(min=0, max=max_dis - eps)
    return dist


def grid_points(h, w, offset=0.5, stride=1.0, dtype='float32'):
    """Centres of an ``h x w`` grid of cells, row-major: ``[h * w, 2]`` (x, y).

    ``((col + offset) * stride, (row + offset) * stride)``: in pixels for a level's stride, in
    cells (grid units) with ``stride=1``.
    """
    xs = (paddle.arange(end=w) + offset) * stride
    ys = (paddle.arange(end=h) + offset) * stride
    ys, xs = paddle.meshgrid(ys, xs)
    return paddle.stack([xs, ys], axis=-1).astype(dtype).reshape([-1, 2])


def generate_anchors_for_grid_cell(feats, fpn_strides, grid_cell_size=5.0, grid_cell_offset=0.5,
                                   dtype='float32'):
    """Square anchors centred on every feature-map cell (ATSS style).

    Args:
        feats (list[Tensor]): per level ``[B, C, H_i, W_i]`` (only the shapes are used).
        fpn_strides (list[int]): stride of each level, in pixels.
        grid_cell_size (float): anchor side in strides (side = ``grid_cell_size * stride``).
        grid_cell_offset (float): cell-centre offset in strides (0.5 = cell centre).
    Returns:
        anchors ``[L, 4]`` x1y1x2y2 pixels, anchor_points ``[L, 2]`` pixels,
        num_anchors_list ``[H_i * W_i]``, stride_tensor ``[L, 1]``; ``L = sum(H_i * W_i)``,
        levels concatenated in order, row-major within a level.
    Raises:
        ValueError: not one stride per feature map.
    """
    if len(feats) != len(fpn_strides):
        raise ValueError(f'generate_anchors_for_grid_cell: {len(feats)} feature maps for '
                         f'{len(fpn_strides)} fpn_strides {list(fpn_strides)}')
    anchors, points, num_anchors_list, strides = [], [], [], []
    for feat, stride in zip(feats, fpn_strides):
        h, w = feat.shape[2], feat.shape[3]
        half = grid_cell_size * stride * 0.5
        point = grid_points(h, w, grid_cell_offset, stride, dtype)
        anchors.append(paddle.concat([point - half, point + half], axis=-1))
        points.append(point)
        num_anchors_list.append(h * w)
        strides.append(paddle.full([h * w, 1], stride, dtype=dtype))
    anchors = paddle.concat(anchors)
    points = paddle.concat(points)
    stride_tensor = paddle.concat(strides)
    for t in (anchors, points, stride_tensor):
        t.stop_gradient = True
    return anchors, points, num_anchors_list, stride_tensor


def batch_iou_planes(box1, box2, eps=1e-9):
    """Pairwise IoU of the boxes of each image: ``box1 [B, M, 4]`` x ``box2 [B, N, 4]`` ->
    ``[B, M, N]`` (either B may be 1 and broadcast; zeros when M or N is 0).

    The values of ``batch_iou_similarity(box1, box2, eps)`` (the same float32 operations in the
    same order), computed on ``[B, M, N]`` coordinate planes instead of slices of broadcast
    ``[B, M, N, 4]`` boxes: about half the time when ``B * M * N`` runs into the millions
    (MaxIoUAssigner's IoU of every prior with every GT, YOLOv3Assigner's of every prediction).
    """
    _require_last('batch_iou_planes', 'box1', box1, 4)
    _require_last('batch_iou_planes', 'box2', box2, 4)
    if 0 in box1.shape or 0 in box2.shape:
        batch = max(box1.shape[0], box2.shape[0])
        return paddle.zeros([batch, box1.shape[1], box2.shape[1]], dtype=box1.dtype)
    x1, y1, x2, y2 = [c.unsqueeze(2) for c in box1.unbind(-1)]
    u1, v1, u2, v2 = [c.unsqueeze(1) for c in box2.unbind(-1)]
    w = (paddle.minimum(x2, u2) - paddle.maximum(x1, u1)).clip(min=0)
    h = (paddle.minimum(y2, v2) - paddle.maximum(y1, v1)).clip(min=0)
    overlap = w * h
    union = bbox_area(box1).unsqueeze(2) + bbox_area(box2).unsqueeze(1) - overlap + eps
    return overlap / union


def plane_iou(planes1, planes2, eps=1e-9):
    """IoU from coordinate planes: ``planes1``, ``planes2`` are ``(x1, y1, x2, y2)``, eight
    float32 tensors of one shape (pixels) -> IoU of that shape.

    The values of ``bbox_iou`` (the same float32 operations in the same order, up to the
    commutative ``area1 + area2``) without broadcasting: Paddle's CPU kernels run an operation
    whose two operands both broadcast (``[n, 1]`` with ``[1, L]``) 10-15x slower than one on
    expanded operands, so pairwise callers expand the planes first.
    """
    x1, y1, x2, y2 = planes1
    u1, v1, u2, v2 = planes2
    w = (paddle.minimum(x2, u2) - paddle.maximum(x1, u1)).clip(min=0)
    h = (paddle.minimum(y2, v2) - paddle.maximum(y1, v1)).clip(min=0)
    overlap = w * h
    area1 = (x2 - x1).clip(min=0) * (y2 - y1).clip(min=0)
    area2 = (u2 - u1).clip(min=0) * (v2 - v1).clip(min=0)
    return overlap / (area1 + area2 - overlap + eps)
