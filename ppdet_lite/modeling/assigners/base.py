"""The label-assignment interface every assigner implements, and the result it returns.

    result = assigner.assign(priors, gts, preds=None)

Notation: ``B`` images, ``n`` GT slots per image (padded; ``gts.mask`` marks the real ones), ``L``
priors (anchor points / boxes) over all FPN levels, ``C`` classes. Every assigner is batched over
images, runs without gradients, and returns an ``AssignResult`` whose ``gt_index [B, L]`` says which
GT slot each prior was given (-1 background, -2 ignored). Labels, boxes and soft scores follow from
``gt_index`` through ``build_result``, the same way for every assigner.

Conventions fixed here so that assigners differ only in their rule:
- boxes x1y1x2y2 in input-image pixels; strides in pixels;
- the background label is ``num_classes`` (PaddleDetection's ``bg_index``);
- a background or ignored prior carries the box of its image's GT slot 0 in ``assigned_bboxes``
  (PaddleDetection's argmax over an all-zero mask gives slot 0; losses must use positives only),
  label ``num_classes`` and all-zero scores.
"""

from collections import namedtuple

import paddle
import paddle.nn as nn

from ..bbox_utils import generate_anchors_for_grid_cell

__all__ = ['Priors', 'LevelSpan', 'level_spans', 'grid_priors', 'GTs', 'Preds', 'AssignResult',
           'BaseAssigner', 'BACKGROUND', 'IGNORED',
           'build_result', 'background_result']

# gt_index values of priors without a GT.
BACKGROUND = -1
IGNORED = -2


class Priors(namedtuple('Priors', ['points', 'boxes', 'strides', 'num_anchors_list',
                                   'level_shapes'])):
    """The priors of one input size, shared by all images of the batch; all on the device.

    - ``points [L, 2]`` float32: prior centres (x, y), pixels.
    - ``boxes [L, 4]`` float32: prior boxes x1y1x2y2, pixels (PP-YOLOE: a square of side
      ``grid_cell_scale * stride`` centred on the point; ATSS, MaxIoU and YOLOv3 matching use them).
    - ``strides [L]`` float32: stride of each prior's FPN level, pixels.
    - ``num_anchors_list`` list[int]: priors per level, levels in order (``sum == L``).
    - ``level_shapes`` list[(int, int)]: (rows, cols) of each level's grid; level ``i``'s prior
      ``start_i + r * cols + c`` sits in row r, column c (row-major, as the head flattens maps).
    """
    __slots__ = ()

    def level_spans(self, owner):
        """``level_spans`` of these priors (``LevelSpan`` per level), checked against ``L``."""
        return level_spans(owner, self.num_anchors_list, self.level_shapes, self.points.shape[0],
                           'priors.num_anchors_list', 'priors.level_shapes', 'priors.points')


class LevelSpan(namedtuple('LevelSpan', ['start', 'rows', 'cols'])):
    """One FPN level: priors ``[start, start + size)`` on a row-major ``rows x cols`` grid."""
    __slots__ = ()

    @property
    def size(self):
        return self.rows * self.cols


def level_spans(owner, num_anchors_list, level_shapes, num_priors,
                counts_name='num_anchors_list', shapes_name='level_shapes', priors_name='priors'):
    """Where each level's priors lie, after checking the level table against itself and ``L``.

    Args:
        owner (str): named in errors.
        num_anchors_list (list[int]): priors per level.
        level_shapes (list[(int, int)]): (rows, cols) per level.
        num_priors (int): L (-1 when unknown: not checked).
        counts_name, shapes_name, priors_name (str): how errors name the three inputs.
    Returns:
        list[LevelSpan].
    Raises:
        ValueError: the counts do not sum to L, or a level's rows * cols is not its count.
    """
    counts = [int(c) for c in num_anchors_list]
    shapes = [(int(h), int(w)) for h, w in level_shapes]
    if num_priors >= 0 and sum(counts) != num_priors:
        raise ValueError(f'{owner}: {counts_name} {counts} sums to {sum(counts)} but '
                         f'{priors_name} has {num_priors} priors')
    if len(counts) != len(shapes) or any(c != h * w for c, (h, w) in zip(counts, shapes)):
        raise ValueError(f'{owner}: {counts_name} {counts} does not match {shapes_name} '
                         f'{shapes} (rows * cols per level)')
    spans, start = [], 0
    for rows, cols in shapes:
        spans.append(LevelSpan(start, rows, cols))
        start += rows * cols
    return spans


def grid_priors(level_shapes, fpn_strides, grid_cell_scale=5.0, grid_cell_offset=0.5):
    """PP-YOLOE's priors: one per feature-map cell, a square box of ``grid_cell_scale`` strides.

    Args:
        level_shapes (list[(int, int)]): (rows, cols) of each level's feature map.
        fpn_strides (list[int]): stride of each level, pixels (same order).
        grid_cell_scale (float): prior box side in strides.
        grid_cell_offset (float): prior centre inside its cell, in strides (0.5: the cell centre).
    Returns:
        Priors.
    Raises:
        ValueError: not one stride per level.
    """
    level_shapes = [(int(h), int(w)) for h, w in level_shapes]
    shapes = [paddle.zeros([1, 1, h, w]) for h, w in level_shapes]
    boxes, points, num_anchors_list, strides = generate_anchors_for_grid_cell(
        shapes, fpn_strides, grid_cell_scale, grid_cell_offset)
    return Priors(points, boxes, strides.reshape([-1]), num_anchors_list, level_shapes)


class GTs(namedtuple('GTs', ['labels', 'bboxes', 'mask', 'scores'])):
    """Padded ground truth of a batch (PaddleDetection's ``gt_class``, ``gt_bbox``,
    ``pad_gt_mask``, ``gt_score``).

    - ``labels [B, n, 1]`` int32 or int64: class ids in ``[0, C)`` for real slots.
    - ``bboxes [B, n, 4]`` float32: x1y1x2y2, pixels.
    - ``mask [B, n, 1]`` float32: 1 for a real GT, 0 for padding (padded slots hold anything).
    - ``scores [B, n, 1]`` float32 or None: per-GT target score (e.g. mixup weights); None is 1.
    """
    __slots__ = ()

    def __new__(cls, labels, bboxes, mask, scores=None):
        return super().__new__(cls, labels, bboxes, mask, scores)


class Preds(namedtuple('Preds', ['scores', 'bboxes'])):
    """Detached predictions for prediction-dependent assigners.

    - ``scores [B, L, C]`` float32: class probabilities (after sigmoid), in [0, 1].
    - ``bboxes [B, L, 4]`` float32: decoded boxes x1y1x2y2, pixels.
    """
    __slots__ = ()


class AssignResult(namedtuple('AssignResult', ['assigned_labels', 'assigned_bboxes',
                                               'assigned_scores', 'gt_index', 'ignore_mask'])):
    """Targets of every prior. The first three fields are PaddleDetection's triple.

    - ``assigned_labels [B, L]``, dtype of ``gts.labels``: class of the assigned GT, ``num_classes``
      (the background index) for background and ignored priors.
    - ``assigned_bboxes [B, L, 4]`` float32, pixels: the assigned GT box (slot 0's box for
      background and ignored priors, see the module docstring).
    - ``assigned_scores [B, L, C]`` float32: soft one-hot classification target; zero rows for
      background and ignored priors.
    - ``gt_index [B, L]`` int64: assigned GT slot in ``[0, n)``, ``BACKGROUND`` (-1) or
      ``IGNORED`` (-2).
    - ``ignore_mask [B, L]`` bool: ``gt_index == IGNORED``; losses leave these priors out of every
      term (an assigner's ignore band, or a sampler's unsampled priors).
    """
    __slots__ = ()

    @property
    def positive_mask(self):
        """``[B, L]`` bool: priors with a GT."""
        return self.gt_index >= 0


class BaseAssigner(nn.Layer):
    """Base class of the assigners.

    Subclasses implement ``assign`` and set ``needs_preds`` (True when ``assign`` cannot work
    without ``preds``). ``num_classes`` is ``C``; the background label is ``C``.
    """
    __shared__ = ['num_classes']
    needs_preds = False

    def __init__(self, num_classes=80):
        super().__init__()
        self.num_classes = num_classes

    def assign(self, priors, gts, preds=None):
        """Assign priors to GT boxes.

        Args:
            priors (Priors): the priors, see ``Priors``.
            gts (GTs): padded GT boxes, see ``GTs``.
            preds (Preds|None): detached predictions; required when ``needs_preds``.
        Returns:
            AssignResult.
        """
        raise NotImplementedError(f'{type(self).__name__} does not implement assign()')


def background_result(batch_size, num_priors, num_classes, label_dtype):
    """Every prior background (what an assigner returns when there is no GT slot at all)."""
    return AssignResult(
        paddle.full([batch_size, num_priors], num_classes, dtype=label_dtype),
        paddle.zeros([batch_size, num_priors, 4], dtype='float32'),
        paddle.zeros([batch_size, num_priors, num_classes], dtype='float32'),
        paddle.full([batch_size, num_priors], BACKGROUND, dtype='int64'),
        paddle.zeros([batch_size, num_priors], dtype='bool'))


def build_result(gt_index, gts, num_classes, pos_scores=None):
    """Targets from each prior's GT slot; dense, no host synchronisation.

    Args:
        gt_index (Tensor): ``[B, L]`` int64, slot in ``[0, n)``, ``BACKGROUND`` or ``IGNORED``.
        gts (GTs): the GT batch ``gt_index`` points into.
        num_classes (int): C, also the background label.
        pos_scores (Tensor|None): ``[B, L]`` float32 soft score of each prior's target (e.g. an
            IoU); read at positives only. None means ``gts.scores`` (or 1 without them).
    Returns:
        AssignResult.
    """
    batch_size, num_gts = gts.bboxes.shape[:2]
    num_priors = gt_index.shape[1]
    if num_gts == 0 or num_priors == 0:
        # Paddle 2.6's gathers and one_hot reject zero-size operands.
        return background_result(batch_size, num_priors, num_classes, gts.labels.dtype)
    is_pos = gt_index >= 0
    slot = paddle.clip(gt_index, min=0)
    labels = paddle.take_along_axis(gts.labels.squeeze(-1), slot, axis=1)
    labels = paddle.where(is_pos, labels, paddle.full_like(labels, num_classes))
    bboxes = paddle.take_along_axis(gts.bboxes, slot.unsqueeze(-1).tile([1, 1, 4]), axis=1)
    if pos_scores is None:
        pos_scores = (paddle.ones([batch_size, num_priors], dtype='float32') if gts.scores is None
                      else paddle.take_along_axis(gts.scores.squeeze(-1), slot, axis=1))
    pos_scores = paddle.where(is_pos, pos_scores.astype('float32'), paddle.zeros_like(pos_scores))
    # Each prior's score goes to its class column; non-positives write their 0 into column 0.
    column = paddle.where(is_pos, labels.astype('int64'), paddle.zeros_like(gt_index))
    scores = paddle.put_along_axis(
        paddle.zeros([batch_size, num_priors, num_classes], dtype='float32'),
        column.unsqueeze(-1), pos_scores.unsqueeze(-1), axis=2)
    return AssignResult(labels, bboxes, scores, gt_index, gt_index == IGNORED)
