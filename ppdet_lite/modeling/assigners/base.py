"""The result every label assigner returns, and how it is built from a per-anchor GT choice.

Notation used by all assigners: ``B`` images, ``n`` GT slots per image (padded, ``pad_gt_mask``
marks the real ones), ``L`` anchors over all FPN levels, ``C`` classes. A GT is addressed by its
*row* ``b * n + g`` in the flattened ``[B * n]`` GT list, an anchor of an image by its *flat index*
``b * L + a``.
"""

from collections import namedtuple

import paddle

__all__ = ['AssignResult', 'background_result', 'build_result']


_Fields = namedtuple('AssignResult', ['assigned_labels', 'assigned_bboxes', 'assigned_scores'])


class AssignResult(_Fields):
    """Targets for every anchor; unpacks as PaddleDetection's ``(labels, bboxes, scores)`` triple.

    - ``assigned_labels [B, L]``, dtype of ``gt_labels`` (int32 or int64): class of the assigned GT,
      ``bg_index`` for background anchors.
    - ``assigned_bboxes [B, L, 4]`` float32, x1y1x2y2 in the units of ``gt_bboxes``: the assigned
      GT box. Background anchors carry their image's first GT slot, as in PaddleDetection (a loss
      must mask them).
    - ``assigned_scores [B, L, C]`` float32: soft one-hot target, zero for background anchors. The
      ``bg_index`` column of the ``C + 1`` one-hot is dropped (PaddleDetection's convention).
    """
    __slots__ = ()


def background_result(batch_size, num_anchors, num_classes, bg_index, label_dtype):
    """All anchors background: what an assigner returns when the batch has no GT slot at all."""
    return AssignResult(
        paddle.full([batch_size, num_anchors], bg_index, dtype=label_dtype),
        paddle.zeros([batch_size, num_anchors, 4], dtype='float32'),
        paddle.zeros([batch_size, num_anchors, num_classes], dtype='float32'))


def build_result(assigned_gt, pos_score, gt_labels, gt_bboxes, bg_index, num_classes):
    """Turn each anchor's assigned GT into labels, boxes and soft scores.

    Args:
        assigned_gt (Tensor): ``[B * L]`` int64, GT row of each anchor, -1 for background.
        pos_score (Tensor|None): ``[P]`` float32 soft score of each positive anchor, in the order of
            ``paddle.nonzero(assigned_gt >= 0)``; None means 1.
        gt_labels (Tensor): ``[B, n, 1]`` int32 or int64.
        gt_bboxes (Tensor): ``[B, n, 4]`` float32.
        bg_index (int): label written for background anchors.
        num_classes (int): ``C``.
    Returns:
        AssignResult.
    """
    batch_size, num_gts = gt_bboxes.shape[:2]
    num_anchors = assigned_gt.shape[0] // batch_size
    is_pos = assigned_gt >= 0
    image_of_anchor = paddle.arange(assigned_gt.shape[0], dtype='int64') // num_anchors
    # Background anchors point at their image's first GT slot: PaddleDetection takes the argmax of
    # an all-zero positive mask there, which is slot 0.
    gt_row = paddle.where(is_pos, assigned_gt, image_of_anchor * num_gts)

    labels = paddle.gather(gt_labels.flatten(), gt_row)
    labels = paddle.where(is_pos, labels, paddle.full_like(labels, bg_index))
    bboxes = paddle.gather(gt_bboxes.reshape([-1, 4]), gt_row)

    scores = paddle.zeros([assigned_gt.shape[0] * num_classes], dtype='float32')
    pos_anchor = paddle.nonzero(is_pos).flatten()
    if pos_anchor.shape[0] > 0:
        pos_label = paddle.gather(labels, pos_anchor).astype('int64')
        if pos_score is None:
            pos_score = paddle.ones([pos_anchor.shape[0]], dtype='float32')
        # One-hot over C + 1 classes with the bg_index column removed: labels above bg_index move
        # one column left, a label equal to bg_index has no column.
        has_column = pos_label != bg_index
        column = pos_label - (pos_label > bg_index).astype('int64')
        keep = paddle.nonzero(has_column).flatten()
        if keep.shape[0] > 0:
            index = paddle.gather(pos_anchor * num_classes + column, keep)
            # In place: scores is this function's own fresh tensor, and copying B * L * C floats
            # would cost more than the scatter.
            values = paddle.gather(pos_score, keep).astype('float32')
            scores = paddle.scatter_(scores, index, values)

    return AssignResult(labels.reshape([batch_size, num_anchors]),
                        bboxes.reshape([batch_size, num_anchors, 4]),
                        scores.reshape([batch_size, num_anchors, num_classes]))
