"""Checks of the GT batch every assigner receives: shapes statically, values without a new sync.

A class id outside the classes (``gt_class`` 3 with ``num_classes: 3``, or -1) would otherwise be
trained silently as background, or as another anchor's class, or fail in a raw gather; a NaN box
would poison every IoU. The value check needs the values on the host, so it is folded into a
device-to-host copy the assigner makes anyway (a count its fast path needs): ``gt_probe`` computes
a few integers on the device, ``utils.to_host`` fetches them with that count in one transfer, and
``raise_for_probe`` reads them; an implementation without host copies (``impl='dense'``) skips
the check. Padded slots (``pad_gt_mask`` 0) are never checked: their content is arbitrary.
"""

import paddle

from ..checks import check_tensor

__all__ = ['check_gt_inputs', 'gt_probe', 'raise_for_probe']

GT_LABEL_DTYPES = ('int32', 'int64')
PAD_MASK_DTYPES = ('float32', 'float64', 'int32', 'int64', 'bool')


def check_gt_inputs(owner, gt_labels, gt_bboxes, pad_gt_mask, sizes, gt_scores=None):
    """Static checks: ``gt_labels [B, n, 1]`` int32/int64, ``gt_bboxes [B, n, 4]`` float32,
    ``pad_gt_mask [B, n, 1]``, ``gt_scores [B, n, 1]`` float32 when given; B and n agree (and are
    recorded in ``sizes``, see ``checks.check_tensor``)."""
    check_tensor(owner, 'gt_bboxes', gt_bboxes, ['B', 'n', 4], sizes, dtypes=('float32',))
    check_tensor(owner, 'gt_labels', gt_labels, ['B', 'n', 1], sizes, dtypes=GT_LABEL_DTYPES)
    check_tensor(owner, 'pad_gt_mask', pad_gt_mask, ['B', 'n', 1], sizes, dtypes=PAD_MASK_DTYPES)
    if gt_scores is not None:
        check_tensor(owner, 'gt_scores', gt_scores, ['B', 'n', 1], sizes, dtypes=('float32',))


def gt_probe(gt_labels, gt_bboxes, pad_gt_mask, num_classes, bg_index):
    """Summary of the faults of the real GTs, computed on the device: ``[4]`` int64.

    ``(any bad label, first row with one, its label, first row with a non-finite box or -1)``,
    rows ``b * n + g``. A label is good when it is in ``[0, num_classes]`` and not ``bg_index``
    (with the usual ``bg_index == num_classes`` that is ``[0, num_classes - 1]``).
    """
    labels = gt_labels.reshape([-1]).astype('int64')
    is_real = pad_gt_mask.reshape([-1]) > 0
    good = paddle.logical_and(paddle.logical_and(labels >= 0, labels <= num_classes),
                              labels != bg_index)
    bad_label = paddle.logical_and(is_real, paddle.logical_not(good)).astype('int64')
    first_bad = bad_label.argmax(axis=0, keepdim=True)
    finite = paddle.isfinite(gt_bboxes.reshape([-1, 4])).all(axis=-1)
    bad_box = paddle.logical_and(is_real, paddle.logical_not(finite)).astype('int64')
    has_bad_box = bad_box.max(axis=0, keepdim=True) > 0
    first_bad_box = paddle.where(has_bad_box, bad_box.argmax(axis=0, keepdim=True),
                                 paddle.full([1], -1, dtype='int64'))
    # [1]-shaped pieces: Paddle 2.6 and 3.x agree on them (0-D handling differs)
    return paddle.concat([bad_label.max(axis=0, keepdim=True), first_bad,
                          paddle.gather(labels, first_bad), first_bad_box])


def raise_for_probe(owner, probe, num_gts, num_classes, bg_index):
    """Raise ValueError if ``probe`` (``gt_probe``'s values on the host) reports a fault."""
    has_bad_label, row, label, box_row = (int(v) for v in probe)
    if has_bad_label:
        image, slot = divmod(row, num_gts)
        if bg_index == num_classes:
            valid = f'0 .. {num_classes - 1}'
        else:
            valid = f'0 .. {num_classes} except the background index {bg_index}'
        note = ' (that is the background index)' if label == bg_index else ''
        raise ValueError(
            f'{owner}: gt_class[{image}, {slot}] = {label}{note} is not a class id: with '
            f'num_classes {num_classes} the ids are {valid}. Check num_classes and the dataset\'s '
            f'category mapping; padded slots (pad_gt_mask 0) are not checked')
    if box_row >= 0:
        image, slot = divmod(box_row, num_gts)
        raise ValueError(f'{owner}: gt_bbox[{image}, {slot}] of a real GT (pad_gt_mask 1) is not '
                         f'finite (NaN or inf); check the annotations and the transforms')
