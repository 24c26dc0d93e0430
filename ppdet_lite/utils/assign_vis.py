"""Per-GT statistics and a picture of one image's label assignments (``tools/vis_assign.py``).

Input: the assigners' ``AssignResult`` rows of one image, as numpy arrays:

- ``gt_index [L]`` int64: the GT slot each prior was given, -1 background, -2 ignored
  (``AssignResult.gt_index[b]``); GT slots are counted separately even when two GTs have the same
  box, which is why nothing here matches GTs by coordinates;
- ``ignored [L]`` bool: ``AssignResult.ignore_mask[b]``;
- the priors of the input size: ``points [L, 2]`` and ``boxes [L, 4]`` x1y1x2y2, network-input
  pixels, ``num_anchors_list`` priors per FPN level and the level ``strides`` (pixels), levels in
  the head's order (coarsest first in PP-YOLOE);
- the GT ``boxes [n, 4]`` x1y1x2y2 pixels and ``classes [n]``; the predicted boxes ``[L, 4]`` when
  there are predictions.

Output: ``GTStats`` per GT (positives per level, mean IoU of the positives with their GT), the
ignored priors per level, printable tables (per assigner, and a summary row per assigner), and
one BGR picture: a column per assigner, a row per
FPN level.
"""

import math
from collections import namedtuple

import cv2
import numpy as np
import paddle

from ppdet_lite.modeling.bbox_utils import bbox_iou

__all__ = ['AssignmentView', 'GTStats', 'prior_levels', 'per_gt_stats', 'ignored_per_level',
           'gts_without_positives', 'format_table', 'format_summary', 'display_zoom',
           'draw_assignments',
           'HEADER_HEIGHT', 'TITLE_HEIGHT']

# Panels are drawn at network-input resolution times a whole zoom that makes them at least this
# wide, so that the finest level's priors stay apart on small inputs.
MIN_PANEL_WIDTH = 320
# Column header (assigner name) above each column; title bar (level, counts) above each panel.
HEADER_HEIGHT = 26
TITLE_HEIGHT = 20
FONT = cv2.FONT_HERSHEY_SIMPLEX
# BGR; a GT's positives and their links share its colour. Ignored priors are grey crosses.
GT_COLOURS = [(0, 200, 255), (255, 0, 255), (255, 160, 0), (0, 170, 0), (0, 0, 230),
              (160, 0, 160), (0, 120, 160), (200, 90, 255)]
IGNORED_COLOUR = (110, 110, 110)
GRID_COLOUR = (175, 175, 175)

AssignmentView = namedtuple('AssignmentView', ['name', 'gt_index', 'ignored', 'note'])
AssignmentView.__doc__ = """One assigner's result on one image: ``name`` (column header),
``gt_index [L]`` int64, ``ignored [L]`` bool, ``note`` (str, a second header line, may be '')."""

GTStats = namedtuple('GTStats', ['positives', 'total', 'iou_prior', 'iou_pred', 'target'])
GTStats.__doc__ = """One GT slot under one assigner: ``positives`` {stride: count} in the head's
level order, ``total`` their sum, ``iou_prior`` / ``iou_pred`` the mean IoU with the GT of the
positives' prior boxes / predicted boxes, ``target`` the mean classification target of the
positives (``AssignResult.assigned_scores`` at their class: 1 for hard targets, an IoU or a
normalised alignment for soft ones); None without positives, or without predictions / targets."""


def prior_levels(num_anchors_list):
    """``[L]`` int64: the FPN level (position in ``num_anchors_list``) of each prior."""
    return np.repeat(np.arange(len(num_anchors_list)), num_anchors_list)


def _iou_with_gt(boxes, gt_boxes, gt_index, positive):
    """IoU of the positives' ``boxes`` with their own GT, ``[P]`` float32."""
    if len(positive) == 0:
        return np.zeros([0], 'float32')
    return bbox_iou(paddle.to_tensor(boxes[positive]),
                    paddle.to_tensor(gt_boxes[gt_index[positive]])).numpy()


def per_gt_stats(gt_index, gt_boxes, prior_boxes, strides, num_anchors_list, pred_boxes=None,
                 target_scores=None):
    """``[GTStats]`` for GT slots ``0..n-1`` of one image.

    Args:
        gt_index (ndarray): ``[L]`` int64 GT slot per prior (-1 background, -2 ignored).
        gt_boxes (ndarray): ``[n, 4]`` float32 x1y1x2y2 pixels.
        prior_boxes (ndarray): ``[L, 4]`` float32 x1y1x2y2 pixels.
        strides (list[int]): stride per level, pixels; ``num_anchors_list`` priors per level.
        pred_boxes (ndarray|None): ``[L, 4]`` float32 predicted boxes, pixels.
        target_scores (ndarray|None): ``[L]`` float32 classification target of each prior.
    Raises:
        ValueError: ``gt_index`` names a slot ``>= n`` or its length is not ``L``.
    """
    gt_index = np.asarray(gt_index, 'int64')
    gt_boxes = np.asarray(gt_boxes, 'float32').reshape([-1, 4])
    if gt_index.shape != (sum(num_anchors_list),):
        raise ValueError(f'gt_index has shape {gt_index.shape}, expected ({sum(num_anchors_list)},)'
                         f' (one entry per prior)')
    if gt_index.size and gt_index.max() >= len(gt_boxes):
        raise ValueError(f'gt_index names GT slot {gt_index.max()} but there are only '
                         f'{len(gt_boxes)} GT boxes')
    level = prior_levels(num_anchors_list)
    positive = np.nonzero(gt_index >= 0)[0]
    iou_prior = _iou_with_gt(prior_boxes, gt_boxes, gt_index, positive)
    iou_pred = None if pred_boxes is None else _iou_with_gt(pred_boxes, gt_boxes, gt_index,
                                                            positive)
    stats = []
    for g in range(len(gt_boxes)):
        mine = gt_index[positive] == g
        counts = {s: int((level[positive][mine] == i).sum()) for i, s in enumerate(strides)}
        total = int(mine.sum())
        stats.append(GTStats(
            counts, total,
            float(iou_prior[mine].mean()) if total else None,
            float(iou_pred[mine].mean()) if total and iou_pred is not None else None,
            float(np.asarray(target_scores)[positive][mine].mean())
            if total and target_scores is not None else None))
    return stats


def ignored_per_level(ignored, strides, num_anchors_list):
    """{stride: number of ignored priors} of one image (``ignored [L]`` bool)."""
    level = prior_levels(num_anchors_list)
    ignored = np.asarray(ignored, bool)
    return {s: int((ignored & (level == i)).sum()) for i, s in enumerate(strides)}


def gts_without_positives(stats):
    """GT slots of ``[GTStats]`` that got no positive prior."""
    return [g for g, s in enumerate(stats) if s.total == 0]


def _iou_text(value):
    return '-' if value is None else f'{value:.3f}'


def format_table(title, stats, ignored, gt_boxes, gt_classes, strides):
    """One assigner's table: a row per GT slot (class, box, positives per level, total, mean IoU of
    the positives' prior and predicted boxes, their mean target score), the ignored priors per
    level, the GTs left without positives. ``ignored`` is ``ignored_per_level``'s dict."""
    box_texts = [','.join(f'{v:.1f}' for v in box) for box in gt_boxes]
    box_width = max([len('box x1,y1,x2,y2')] + [len(t) for t in box_texts])
    level_cols = ''.join(f'{"s" + str(s):>6}' for s in strides)
    lines = [title,
             f'{"GT":>4} {"class":>5}  {"box x1,y1,x2,y2":<{box_width}}{level_cols}{"total":>7}'
             f'{"IoU prior":>11}{"IoU pred":>10}{"target":>8}']
    for g, (s, box_text, cls) in enumerate(zip(stats, box_texts, gt_classes)):
        counts = ''.join(f'{s.positives[stride]:>6}' for stride in strides)
        lines.append(f'{"#" + str(g):>4} {int(cls):>5}  {box_text:<{box_width}}{counts}{s.total:>7}'
                     f'{_iou_text(s.iou_prior):>11}{_iou_text(s.iou_pred):>10}'
                     f'{_iou_text(s.target):>8}')
    counts = ''.join(f'{ignored[stride]:>6}' for stride in strides)
    lines.append(f'{"ignored priors":<{12 + box_width}}{counts}{sum(ignored.values()):>7}')
    missing = gts_without_positives(stats)
    lines.append('GT without positives: ' + (', '.join(f'#{g}' for g in missing) or 'none'))
    return '\n'.join(lines)


def format_summary(names, stats, ignored, strides):
    """One row per assigner: its positives per level and in total, its ignored priors and its GTs
    without positives. ``stats`` {name: [GTStats]}, ``ignored`` {name: {stride: count}}."""
    width = max([len('assigner')] + [len(n) for n in names])
    level_cols = ''.join(f'{"s" + str(s):>6}' for s in strides)
    lines = [f'{"assigner":<{width}}{level_cols}{"total":>7}{"ignored":>9}  GT without positives']
    for name in names:
        counts = [sum(s.positives[stride] for s in stats[name]) for stride in strides]
        missing = ', '.join(f'#{g}' for g in gts_without_positives(stats[name])) or 'none'
        lines.append(f'{name:<{width}}' + ''.join(f'{c:>6}' for c in counts) +
                     f'{sum(counts):>7}{sum(ignored[name].values()):>9}  {missing}')
    return '\n'.join(lines)


def display_zoom(width):
    """Whole factor at which a network input ``width`` pixels wide is drawn."""
    return max(1, math.ceil(MIN_PANEL_WIDTH / width))


def _text(canvas, text, origin, scale=0.45):
    cv2.putText(canvas, text, origin, FONT, scale, (0, 0, 0), 1, cv2.LINE_AA)


def _gt_colour(g):
    return GT_COLOURS[g % len(GT_COLOURS)]


def _panel(background, gt_boxes, gt_labels, points, view, level_mask, stride, zoom):
    """One assigner at one level: GT boxes, the level's prior grid, positives linked to their GT's
    centre in the GT's colour, ignored priors as grey crosses."""
    h, w = background.shape[:2]
    panel = np.full((TITLE_HEIGHT + h, w, 3), 255, 'uint8')
    canvas = panel[TITLE_HEIGHT:]
    canvas[:] = background
    pts = np.round(points * zoom).astype(int)
    boxes = np.round(np.asarray(gt_boxes, 'float32').reshape([-1, 4]) * zoom).astype(int)
    centres = (boxes[:, :2] + boxes[:, 2:]) // 2
    for p in pts[level_mask]:
        cv2.circle(canvas, tuple(p), 1, GRID_COLOUR, -1)
    positive = np.nonzero(level_mask & (view.gt_index >= 0))[0]
    ignored = np.nonzero(level_mask & view.ignored)[0]
    for a in positive:
        g = view.gt_index[a]
        cv2.line(canvas, tuple(pts[a]), tuple(centres[g]), _gt_colour(g), 1, cv2.LINE_AA)
    for g, ((x1, y1, x2, y2), name) in enumerate(zip(boxes, gt_labels)):
        cv2.rectangle(canvas, (x1, y1), (x2, y2), _gt_colour(g), 2)
        label = f'#{g} {name}'
        (tw, th), _ = cv2.getTextSize(label, FONT, 0.4, 1)
        top = max(y1 - th - 6, 0)
        cv2.rectangle(canvas, (x1, top), (x1 + tw + 6, top + th + 6), _gt_colour(g), -1)
        cv2.putText(canvas, label, (x1 + 3, top + th + 2), FONT, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    arm = max(3, zoom + 1)
    for a in ignored:
        x, y = pts[a]
        cv2.line(canvas, (x - arm, y - arm), (x + arm, y + arm), IGNORED_COLOUR, 2, cv2.LINE_AA)
        cv2.line(canvas, (x - arm, y + arm), (x + arm, y - arm), IGNORED_COLOUR, 2, cv2.LINE_AA)
    for a in positive:
        cv2.circle(canvas, tuple(pts[a]), arm + 1, (0, 0, 0), -1, cv2.LINE_AA)
        cv2.circle(canvas, tuple(pts[a]), arm, _gt_colour(view.gt_index[a]), -1, cv2.LINE_AA)
    title = f'stride {stride}: {len(positive)} positives'
    if len(ignored):
        title += f', {len(ignored)} ignored'
    _text(panel, title, (5, 15))
    return panel


def _header(width, view):
    header = np.full((HEADER_HEIGHT, width, 3), 235, 'uint8')
    text = view.name + (f'  ({view.note})' if view.note else '')
    scale = 0.5
    while scale > 0.3 and cv2.getTextSize(text, FONT, scale, 1)[0][0] > width - 10:
        scale -= 0.05
    _text(header, text, (5, 18), scale=scale)
    return header


def draw_assignments(image, gt_boxes, gt_classes, points, strides, num_anchors_list, views,
                     zoom=None, class_names=None):
    """The picture: a column per AssignmentView, a row per FPN level.

    Args:
        image (ndarray): ``[H, W, 3]`` BGR uint8, the network input the boxes refer to.
        gt_boxes (ndarray): ``[n, 4]`` x1y1x2y2 pixels; ``gt_classes [n]``.
        points (ndarray): ``[L, 2]`` prior centres, pixels.
        strides, num_anchors_list: see ``per_gt_stats``.
        views (list[AssignmentView]): one column each.
        zoom (int|None): drawing scale; None: ``display_zoom(W)``.
        class_names (list[str]|None): name of each class id, for the GT labels (``#g name``);
            None labels them ``#g c<class id>``.
    Returns:
        ndarray: ``[HEADER_HEIGHT + len(strides) * (TITLE_HEIGHT + zoom * H), len(views) * zoom * W,
        3]`` BGR uint8.
    """
    h, w = image.shape[:2]
    zoom = zoom or display_zoom(w)
    # The image is shown faded and in grey so that the coloured marks read on any content, and
    # posterised so that the picture stays a small PNG.
    grey = cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    big = cv2.resize(grey, (w * zoom, h * zoom), interpolation=cv2.INTER_NEAREST)
    background = (big // 32 * 32 * 0.4 + 255 * 0.6).astype('uint8')
    level = prior_levels(num_anchors_list)
    points = np.asarray(points, 'float32').reshape([-1, 2])
    labels = [class_names[int(c)] if class_names and 0 <= c < len(class_names) else f'c{int(c)}'
              for c in gt_classes]
    columns = []
    for view in views:
        panels = [_panel(background, gt_boxes, labels, points, view, level == i, stride, zoom)
                  for i, stride in enumerate(strides)]
        column = np.concatenate([_header(w * zoom, view)] + panels, axis=0)
        column[:, -1] = 0  # a dark rule, so that neighbouring columns' panels read apart
        columns.append(column)
    return np.concatenate(columns, axis=1)
