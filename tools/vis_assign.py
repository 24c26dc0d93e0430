#!/usr/bin/env python
"""Assignment inspector: which anchors each label assigner makes positive for one image's GT boxes.

    python tools/vis_assign.py -c configs/ppyoloe/ppyoloe_crn_s_300e_coco.yml \\
        --image demo.jpg --gt "48,240,195,371,2;8,187,143,280,0" \\
        [--assigners static_assigner assigner] [--input_size 640] \\
        [--output_dir output/vis_assign] \\
        [-o PPYOLOEHead.static_assigner.topk=7 weights=output/ppyoloe_crn_s_300e_coco/model_final]
    python tools/vis_assign.py -c CFG --anno dataset/coco/annotations/instances_val2017.json \\
        --image_id 139 --image_dir dataset/coco/val2017

``--gt`` boxes are x1,y1,x2,y2 in pixels of the image as read, with a class id in 0..C-1. With
``--anno`` the GT comes from a COCO file: class id = position of the category among the sorted
category ids (PaddleDetection's catid2clsid), crowd and empty boxes left out (its COCODataSet
defaults), image at ``--image_dir/<file_name>`` unless ``--image`` names it.

``--assigners`` takes the head's assigner arguments (``static_assigner``, ``assigner``: exactly the
objects training uses, ``-o`` overrides included) or registered assigner classes
(``ATSSAssigner``, ...: built from their config section, with the head's ``num_classes``).

What happens, in the order PPYOLOEHead's training step does it:

1. the image is resized to the network input (``--input_size H [W]``, default the config's
   ``eval_size``; aspect ratio not kept, as the configs' Resize) and the GT boxes are scaled with
   it. Every box below is x1y1x2y2 in network-input pixels.
2. the model of ``-c`` runs on it in eval mode: class probabilities ``[1, L, C]`` and boxes
   ``[1, L, 4]`` per anchor. The anchors are the head's: a point at every cell centre of every FPN
   level (``L`` in all, coarsest level first) and a square of ``grid_cell_scale`` strides around it.
3. each assigner is called as the head's loss calls it, by PaddleDetection's argument names.

Predictions. Without ``-o weights=W`` the model is untrained, and an untrained PP-YOLOE head
predicts the same at every anchor (see PPYOLOEHead): probability 0.01 for every class and a square
box ``reg_max`` strides wide centred on the anchor point. TaskAlignedAssigner then ranks the anchors
inside a GT by the IoU of that square with the GT alone (equal IoUs, e.g. squares wholly inside a
large GT, tie, and paddle.topk picks among them): a prior, not what a model trained through the
ATSS epochs would predict when TAL takes over. With ``-o weights=W`` (a local .pdparams) the
scores and boxes are that model's. The config's own ``weights`` entry is not read, so the prior is
never replaced by a checkpoint silently. ATSS selects from anchor boxes and is unaffected.

Outputs: ``<output_dir>/<image stem>_assign.png``, one panel per assigner side by side (GT boxes;
each positive drawn at its anchor point, coloured by FPN level and linked to its GT's centre), and
a table per GT and assigner: positives per level (stride), their total and the mean IoU with the
GT of the positives' anchor boxes (assigners that select from anchors, e.g. ATSS) or predicted
boxes (assigners that select from predicted scores, e.g. TAL), then the GTs left without positives.
``inspect_assignment`` returns the same numbers.
"""

import copy
import inspect
import math
import os
import sys
from collections import namedtuple

import cv2
import numpy as np
import paddle
from pycocotools.coco import COCO

# Runnable from a checkout without installing, as PaddleDetection's tools are.
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '..')))

import ppdet_lite.modeling  # noqa: E402,F401  (registers the model zoo)
from ppdet_lite.core.workspace import ConfigError, create  # noqa: E402
from ppdet_lite.modeling import assigners as assigner_zoo  # noqa: E402
from ppdet_lite.modeling.bbox_utils import (  # noqa: E402
    bbox_center, bbox_iou, generate_anchors_for_grid_cell)
from ppdet_lite.utils.checkpoint import load_weights  # noqa: E402
from ppdet_lite.utils.cli import ArgsParser, config_from_args  # noqa: E402

# PaddleDetection's NormalizeImage defaults, for configs whose TestReader does not say.
IMAGENET_NORM = {'mean': [0.485, 0.456, 0.406], 'std': [0.229, 0.224, 0.225], 'is_scale': True}
# Panels are drawn at network-input resolution times a whole zoom that makes them at least this
# wide, so that small inputs stay legible; the title bar (name, legend) sits above the image.
MIN_PANEL_WIDTH = 480
TITLE_HEIGHT = 44
FONT = cv2.FONT_HERSHEY_SIMPLEX
# BGR. Levels in fpn_strides order (coarsest first); GT colours avoid the level colours.
LEVEL_COLOURS = [(255, 90, 0), (0, 190, 0), (0, 0, 255), (160, 0, 160), (0, 120, 160)]
GT_COLOURS = [(0, 220, 255), (255, 0, 255), (255, 255, 0), (0, 140, 255), (200, 200, 200),
              (140, 80, 255)]

GroundTruth = namedtuple('GroundTruth', ['boxes', 'classes'])
GroundTruth.__doc__ = """``boxes [n, 4]`` float32 x1y1x2y2 pixels, ``classes [n]`` int64 0..C-1."""

Sample = namedtuple('Sample', ['image', 'gt'])
Sample.__doc__ = """The network input: ``image [H, W, 3]`` BGR uint8 and its scaled GroundTruth."""

Anchors = namedtuple('Anchors', ['boxes', 'points', 'num_anchors_list', 'strides'])
Anchors.__doc__ = """The head's anchors: ``boxes [L, 4]`` and ``points [L, 2]`` float32 tensors,
network-input pixels; ``num_anchors_list`` anchors per level; ``strides`` pixels per level."""

Predictions = namedtuple('Predictions', ['scores', 'boxes'])
Predictions.__doc__ = """``scores [1, L, C]`` probabilities and ``boxes [1, L, 4]`` x1y1x2y2
network-input pixels, float32 tensors."""

Assignment = namedtuple('Assignment', ['name', 'assigner', 'gt_index', 'iou', 'iou_with'])
Assignment.__doc__ = """One assigner's result: ``gt_index [L]`` int64 GT of each anchor (-1:
background); ``iou [L]`` float32 IoU of each positive's box with its GT (nan for background);
``iou_with`` 'anchor boxes' or 'predicted boxes': which boxes of the anchors that IoU measures."""

GTStats = namedtuple('GTStats', ['positives', 'total', 'mean_iou'])
GTStats.__doc__ = """One GT under one assigner: ``positives`` {stride: count} per FPN level in the
head's order, ``total`` their sum, ``mean_iou`` over the positives (None when there are none)."""

Inspection = namedtuple('Inspection', ['sample', 'anchors', 'predictions', 'predicted_by',
                                       'assignments', 'stats', 'without_positives'])
Inspection.__doc__ = """Everything the tool found: ``predicted_by`` says where the Predictions
come from, ``stats`` {assigner name: [GTStats per GT]}, ``without_positives`` {assigner name:
[GT index, ...]}."""


class InspectError(ValueError):
    """A problem with the tool's inputs (GT, image, assigner names, sizes, weights)."""


# ----------------------------------------------------------------------------------------------
# inputs


def parse_gt(text):
    """``"x1,y1,x2,y2,cls;..."`` (pixels; a trailing ``;`` is fine) -> GroundTruth."""
    boxes, classes = [], []
    for entry in text.split(';'):
        if not entry.strip():
            continue
        fields = entry.split(',')
        try:
            if len(fields) != 5:
                raise ValueError
            box = [float(v) for v in fields[:4]]
            cls = int(fields[4])
        except ValueError:
            raise InspectError(f'malformed --gt entry {entry.strip()!r}: expected x1,y1,x2,y2,'
                               f'class_id (pixels, integer class id)') from None
        if not (box[2] > box[0] and box[3] > box[1]):
            raise InspectError(f'malformed --gt entry {entry.strip()!r}: needs x2 > x1 and y2 > y1')
        boxes.append(box)
        classes.append(cls)
    if not boxes:
        raise InspectError(f'malformed --gt {text!r}: no box given (format "x1,y1,x2,y2,cls;...")')
    return GroundTruth(np.array(boxes, 'float32'), np.array(classes, 'int64'))


def load_coco_gt(anno_path, image_id, image_dir):
    """GT of image ``image_id`` of a COCO annotation file -> (image path, GroundTruth).

    Class ids follow PaddleDetection's catid2clsid (position among the sorted category ids); crowd
    boxes and boxes without area are left out, as COCODataSet does by default.
    """
    if not os.path.isfile(anno_path):
        raise InspectError(f'annotation file not found: {anno_path}')
    coco = COCO(anno_path)
    if image_id not in coco.imgs:
        raise InspectError(f'image id {image_id} is not in {anno_path}')
    catid2clsid = {cat: i for i, cat in enumerate(sorted(coco.getCatIds()))}
    boxes, classes = [], []
    for ann in coco.loadAnns(coco.getAnnIds(imgIds=[image_id], iscrowd=False)):
        x, y, w, h = ann['bbox']
        if w > 0 and h > 0:
            boxes.append([x, y, x + w, y + h])
            classes.append(catid2clsid[ann['category_id']])
    if not boxes:
        raise InspectError(f'image id {image_id} of {anno_path} has no non-crowd box')
    path = os.path.join(image_dir, coco.imgs[image_id]['file_name'])
    return path, GroundTruth(np.array(boxes, 'float32'), np.array(classes, 'int64'))


def read_image(path):
    """``[h, w, 3]`` BGR uint8, as OpenCV reads it."""
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise InspectError(f'cannot read image {path!r} (missing, unreadable or not an image)')
    return image


def resize_sample(image, gt, input_size):
    """Resize ``image`` to ``input_size`` (h, w) without keeping the aspect ratio, scaling the GT
    boxes with it -> Sample."""
    h, w = input_size
    scale_x, scale_y = w / image.shape[1], h / image.shape[0]
    # interpolation 2 (cubic), as the configs' Resize
    resized = cv2.resize(image, (w, h), interpolation=cv2.INTER_CUBIC)
    boxes = gt.boxes * np.array([scale_x, scale_y, scale_x, scale_y], 'float32')
    return Sample(resized, GroundTruth(boxes, gt.classes))


# ----------------------------------------------------------------------------------------------
# model and assigners


def build_model(cfg, weights=None):
    """``cfg.architecture`` in eval mode, for any input size (the config's ``eval_size`` anchors
    are not precomputed), with ``weights`` (a local .pdparams) loaded when given."""
    cfg = copy.copy(cfg)
    cfg['eval_size'] = None
    model = create(cfg.architecture, cfg)
    if weights is not None:
        try:
            load_weights(model, weights)
        except (ValueError, OSError) as e:
            raise InspectError(str(e)) from e
    model.eval()
    return model


def available_assigners(head):
    """(head argument names holding an assigner, registered assigner class names)."""
    classes = {name: getattr(assigner_zoo, name) for name in assigner_zoo.__all__}
    classes = {name: c for name, c in classes.items()
               if isinstance(c, type) and issubclass(c, paddle.nn.Layer)}
    keys = [k for k in getattr(type(head), '__inject__', [])
            if isinstance(getattr(head, k, None), tuple(classes.values()))]
    return keys, list(classes)


def build_assigners(cfg, head, names):
    """``[(name, assigner)]`` for ``names``: head arguments give the head's own objects, class
    names are built from ``cfg`` with the head's ``num_classes``."""
    head_keys, class_names = available_assigners(head)
    built = []
    for name in names:
        if name in head_keys:
            built.append((name, getattr(head, name)))
        elif name in class_names:
            scoped = copy.copy(cfg)
            scoped['num_classes'] = head.num_classes
            built.append((name, create(name, scoped)))
        else:
            raise InspectError(f'unknown assigner {name!r}; available: '
                               f'{type(head).__name__} arguments {", ".join(head_keys)}; '
                               f'registered classes {", ".join(class_names)}')
    return built


def _network_input(image, cfg):
    """``image [H, W, 3]`` BGR uint8 -> ``[1, 3, H, W]`` float32 as the config's TestReader
    prepares it (RGB, NormalizeImage, Permute)."""
    norm = dict(IMAGENET_NORM)
    for op in (cfg.get('TestReader') or {}).get('sample_transforms', []):
        if isinstance(op, dict) and 'NormalizeImage' in op:
            norm.update(op['NormalizeImage'] or {})
    x = image[:, :, ::-1].astype('float32')
    if norm['is_scale']:
        x /= 255.
    x = (x - np.array(norm['mean'], 'float32')) / np.array(norm['std'], 'float32')
    return paddle.to_tensor(x.transpose(2, 0, 1)[None].copy())


def predict(model, image, cfg):
    """Run ``model`` (eval mode) on the network input ``image [H, W, 3]`` BGR uint8.

    Returns:
        (Anchors, Predictions): the head's training anchors for these feature maps, and per anchor
        class probabilities and boxes decoded as ``post_process`` decodes them, in pixels.
    """
    head = model.yolo_head
    with paddle.no_grad():
        feats = model.neck(model.backbone({'image': _network_input(image, cfg)}))
        pred_bboxes, pred_scores = head.decode(head(feats))
    boxes, anchor_points, num_anchors_list, _ = generate_anchors_for_grid_cell(
        feats, head.fpn_strides, head.grid_cell_scale, head.grid_cell_offset)
    return (Anchors(boxes, anchor_points, num_anchors_list, list(head.fpn_strides)),
            Predictions(pred_scores.transpose([0, 2, 1]), pred_bboxes))


def run_assigner(name, assigner, sample, anchors, predictions, num_classes):
    """Call ``assigner`` on one image as the head's loss does and map its result back to GTs.

    The forward arguments are passed by PaddleDetection's names (``anchor_bboxes``,
    ``anchor_points``, ``num_anchors_list``, ``gt_labels``, ``gt_bboxes``, ``pad_gt_mask``,
    ``bg_index``, ``pred_scores``, ``pred_bboxes``), each as far as the forward takes it.

    Returns:
        Assignment.
    """
    params = inspect.signature(assigner.forward).parameters
    gt = sample.gt
    num_gts = len(gt.classes)
    gt_bboxes = paddle.to_tensor(gt.boxes[None])
    offered = {
        'anchor_bboxes': anchors.boxes, 'anchor_points': anchors.points,
        'num_anchors_list': anchors.num_anchors_list,
        'gt_labels': paddle.to_tensor(gt.classes.reshape([1, num_gts, 1]).astype('int32')),
        'gt_bboxes': gt_bboxes, 'pad_gt_mask': paddle.ones([1, num_gts, 1], dtype='float32'),
        'bg_index': num_classes, 'pred_scores': predictions.scores,
        'pred_bboxes': predictions.boxes,
    }
    missing = [k for k, p in params.items() if p.default is p.empty and k not in offered
               and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if missing:
        raise InspectError(f'assigner {name!r} ({type(assigner).__name__}) needs '
                           f'{", ".join(missing)}, which this inspector cannot provide')
    labels, assigned_bboxes = assigner(**{k: v for k, v in offered.items() if k in params})[:2]

    gt_index = _gt_of_anchors(labels.numpy()[0], assigned_bboxes.numpy()[0], gt, num_classes)

    by_prediction = 'pred_scores' in params
    boxes = predictions.boxes[0] if by_prediction else anchors.boxes
    iou = np.full(gt_index.shape, np.nan, 'float32')
    positive = np.nonzero(gt_index >= 0)[0]
    if len(positive):
        their_gt = paddle.gather(gt_bboxes[0], paddle.to_tensor(gt_index[positive]))
        iou[positive] = bbox_iou(paddle.gather(boxes, paddle.to_tensor(positive)),
                                 their_gt).numpy()
    return Assignment(name, assigner, gt_index, iou,
                      'predicted boxes' if by_prediction else 'anchor boxes')


def _gt_of_anchors(labels, assigned_bboxes, gt, bg_index):
    """``[L]`` int64 GT index of each anchor (-1: background) from one image's ``labels [L]`` and
    ``assigned_bboxes [L, 4]``: the GT with that box and class (the first of identical GTs)."""
    positive = np.nonzero(labels != bg_index)[0]
    same = ((assigned_bboxes[positive, None] == gt.boxes[None]).all(axis=-1) &
            (labels[positive, None] == gt.classes[None]))  # [P, n]
    gt_index = np.full(labels.shape, -1, 'int64')
    gt_index[positive] = same.argmax(axis=1)
    return gt_index


# ----------------------------------------------------------------------------------------------
# statistics


def per_gt_stats(assignment, anchors, num_gts):
    """``[GTStats]`` for GTs ``0..num_gts-1`` of one Assignment."""
    level = np.repeat(np.arange(len(anchors.strides)), anchors.num_anchors_list)
    stats = []
    for g in range(num_gts):
        mine = assignment.gt_index == g
        positives = {stride: int((mine & (level == i)).sum())
                     for i, stride in enumerate(anchors.strides)}
        total = int(mine.sum())
        mean_iou = float(assignment.iou[mine].mean()) if total else None
        stats.append(GTStats(positives, total, mean_iou))
    return stats


def inspect_assignment(cfg, image, gt, names, input_size, weights=None):
    """Assign one image with each named assigner.

    Args:
        cfg (dict): loaded config (``-o`` applied).
        image (ndarray): ``[h, w, 3]`` BGR uint8, any size.
        gt (GroundTruth): boxes in pixels of ``image``.
        names (list[str]): assigners, see ``build_assigners``.
        input_size (tuple[int, int]): network input (h, w), multiples of the coarsest stride.
        weights (str|None): local checkpoint for the predictions; None: the untrained prior.
    Returns:
        Inspection.
    """
    model = build_model(cfg, weights)
    head = model.yolo_head
    coarsest = max(head.fpn_strides)
    if any(side <= 0 or side % coarsest for side in input_size):
        raise InspectError(f'--input_size {list(input_size)}: each side must be a positive '
                           f'multiple of {coarsest} (the coarsest fpn stride)')
    bad = [int(c) for c in gt.classes if not 0 <= c < head.num_classes]
    if bad:
        raise InspectError(f'class id(s) {bad} outside 0..{head.num_classes - 1} '
                           f'(num_classes {head.num_classes})')
    assigners = build_assigners(cfg, head, names)

    sample = resize_sample(image, gt, input_size)
    predicted_by = (f'model with weights {weights}' if weights is not None else
                    f'untrained head (no -o weights): every anchor predicts probability 0.01 for '
                    f'every class and a box {head.reg_max} strides square centred on its point, '
                    f'so the assigners that rank predictions rank by the IoU of that box alone')
    anchors, predictions = predict(model, sample.image, cfg)
    assignments = [run_assigner(name, assigner, sample, anchors, predictions, head.num_classes)
                   for name, assigner in assigners]
    num_gts = len(gt.classes)
    stats = {a.name: per_gt_stats(a, anchors, num_gts) for a in assignments}
    without = {name: [g for g, s in enumerate(per_gt) if s.total == 0]
               for name, per_gt in stats.items()}
    return Inspection(sample, anchors, predictions, predicted_by, assignments, stats, without)


def format_report(result, image_path, image_shape):
    """The printed report: setup lines, one row per GT and assigner, the GTs without positives."""
    sample, anchors = result.sample, result.anchors
    h, w = sample.image.shape[:2]
    levels = ', '.join(f'stride {s}: {n}' for s, n in zip(anchors.strides,
                                                          anchors.num_anchors_list))
    lines = [f'image {image_path}: {image_shape[1]}x{image_shape[0]} resized to the network input '
             f'{w}x{h}; boxes in network-input pixels',
             f'anchors per level: {levels}',
             f'predictions: {result.predicted_by}',
             'mean IoU: ' + '; '.join(f'{a.name} with the positives\' {a.iou_with}'
                                      for a in result.assignments)]
    box_texts = [','.join(f'{v:.1f}' for v in box) for box in sample.gt.boxes]
    box_width = max(len('box x1,y1,x2,y2'), *map(len, box_texts))
    name_width = max(len('assigner'), *(len(a.name) for a in result.assignments))
    level_cols = ''.join(f'{"s" + str(s):>6}' for s in anchors.strides)
    lines.append(f'{"GT":>3} {"class":>5}  {"box x1,y1,x2,y2":<{box_width}}  '
                 f'{"assigner":<{name_width}}{level_cols}{"total":>7}{"mean IoU":>10}')
    for g, (box_text, cls) in enumerate(zip(box_texts, sample.gt.classes)):
        gt_text = f'{g:>3} {cls:>5}  {box_text:<{box_width}}'
        for a in result.assignments:
            s = result.stats[a.name][g]
            counts = ''.join(f'{s.positives[stride]:>6}' for stride in anchors.strides)
            iou = '-' if s.mean_iou is None else f'{s.mean_iou:.3f}'
            lines.append(f'{gt_text}  {a.name:<{name_width}}{counts}{s.total:>7}{iou:>10}')
            gt_text = ' ' * len(gt_text)
    lines.append('GT without positives: ' + '; '.join(
        f'{name}: {", ".join(f"#{g}" for g in gts) if gts else "none"}'
        for name, gts in result.without_positives.items()))
    return '\n'.join(lines)


# ----------------------------------------------------------------------------------------------
# drawing


def display_zoom(width):
    """Whole factor at which a network input ``width`` pixels wide is drawn."""
    return max(1, math.ceil(MIN_PANEL_WIDTH / width))


def _text(canvas, text, origin, colour, scale=0.5):
    cv2.putText(canvas, text, origin, FONT, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(canvas, text, origin, FONT, scale, colour, 1, cv2.LINE_AA)


def _draw_panel(sample, anchors, assignment, zoom):
    h, w = sample.image.shape[:2]
    panel = np.full((TITLE_HEIGHT + h * zoom, w * zoom, 3), 255, 'uint8')
    view = panel[TITLE_HEIGHT:]
    view[:] = cv2.resize(sample.image, (w * zoom, h * zoom), interpolation=cv2.INTER_NEAREST)

    gt = sample.gt
    gt_centres = np.round(bbox_center(paddle.to_tensor(gt.boxes)).numpy() * zoom).astype(int)
    points = np.round(anchors.points.numpy() * zoom).astype(int)
    level = np.repeat(np.arange(len(anchors.strides)), anchors.num_anchors_list)
    positive = np.nonzero(assignment.gt_index >= 0)[0]
    for a in positive:
        g = assignment.gt_index[a]
        cv2.line(view, tuple(points[a]), tuple(gt_centres[g]), GT_COLOURS[g % len(GT_COLOURS)], 1,
                 cv2.LINE_AA)
    for g, (box, cls) in enumerate(zip(gt.boxes, gt.classes)):
        colour = GT_COLOURS[g % len(GT_COLOURS)]
        x1, y1, x2, y2 = np.round(box * zoom).astype(int)
        cv2.rectangle(view, (x1, y1), (x2, y2), colour, 2)
        _text(view, f'#{g} c{cls}', (x1 + 3, max(y1 - 4, 12)), colour)
    radius = max(3, zoom + 1)
    for a in positive:
        colour = LEVEL_COLOURS[level[a] % len(LEVEL_COLOURS)]
        cv2.circle(view, tuple(points[a]), radius + 1, (0, 0, 0), -1, cv2.LINE_AA)
        cv2.circle(view, tuple(points[a]), radius, colour, -1, cv2.LINE_AA)

    title = (f'{assignment.name} ({type(assignment.assigner).__name__}): '
             f'{len(positive)} positives')
    cv2.putText(panel, title, (6, 17), FONT, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    x = 6
    for i, stride in enumerate(anchors.strides):
        count = int((level[positive] == i).sum())
        cv2.circle(panel, (x + 5, 33), 5, LEVEL_COLOURS[i % len(LEVEL_COLOURS)], -1, cv2.LINE_AA)
        label = f'stride {stride}: {count}'
        cv2.putText(panel, label, (x + 14, 38), FONT, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        x += 24 + cv2.getTextSize(label, FONT, 0.45, 1)[0][0]
    return panel


def draw_panels(sample, anchors, assignments):
    """One panel per Assignment, side by side: ``[TITLE_HEIGHT + z * H, len(assignments) * z * W,
    3]`` BGR uint8, ``z = display_zoom(W)`` for a network input ``H x W``."""
    zoom = display_zoom(sample.image.shape[1])
    return np.concatenate([_draw_panel(sample, anchors, a, zoom) for a in assignments], axis=1)


# ----------------------------------------------------------------------------------------------
# command line


def parse_args(argv=None):
    parser = ArgsParser(description=__doc__)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--gt', help='GT boxes "x1,y1,x2,y2,cls;..." in pixels of --image')
    source.add_argument('--anno', help='COCO annotation file to take the GT from (--image_id)')
    parser.add_argument('--image', help='image file (with --anno: default --image_dir/file_name)')
    parser.add_argument('--image_id', type=int, help='image id in --anno')
    parser.add_argument('--image_dir', default='', help='directory of the --anno file names')
    parser.add_argument('--assigners', nargs='+', default=['static_assigner', 'assigner'],
                        help='head arguments or registered assigner classes')
    parser.add_argument('--input_size', nargs='+', type=int,
                        help='network input H [W] (default: the config\'s eval_size, else 640)')
    parser.add_argument('--output_dir', default='output/vis_assign')
    args = parser.parse_args(argv)
    if args.gt is not None and args.image is None:
        parser.error('--gt needs --image')
    if args.anno is not None and args.image_id is None:
        parser.error('--anno needs --image_id')
    if args.input_size is not None and len(args.input_size) > 2:
        parser.error(f'--input_size takes H or H W, got {args.input_size}')
    return parser, args


def main(argv=None):
    """Run the tool; returns the Inspection (also printed and drawn)."""
    parser, args = parse_args(argv)
    try:
        cfg = config_from_args(args)
        if args.anno is not None:
            image_path, gt = load_coco_gt(args.anno, args.image_id, args.image_dir)
            image_path = args.image or image_path
        else:
            image_path, gt = args.image, parse_gt(args.gt)
        image = read_image(image_path)
        size = args.input_size or cfg.get('eval_size') or [640]
        result = inspect_assignment(cfg, image, gt, args.assigners, (size[0], size[-1]),
                                    args.opt.get('weights'))
    except (InspectError, ConfigError) as e:
        parser.error(str(e))

    print(format_report(result, image_path, image.shape))
    os.makedirs(args.output_dir, exist_ok=True)
    stem = os.path.splitext(os.path.basename(image_path))[0]
    out_path = os.path.join(args.output_dir, f'{stem}_assign.png')
    if not cv2.imwrite(out_path, draw_panels(result.sample, result.anchors, result.assignments)):
        parser.error(f'cannot write {out_path}')
    print(f'saved {out_path}')
    return result


if __name__ == '__main__':
    main()
