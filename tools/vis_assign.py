#!/usr/bin/env python
"""Assignment inspector: which priors each label assigner makes positive (or ignores) for one
image's GT boxes, level by level, side by side.

    python tools/vis_assign.py -c configs/ppyoloe/ppyoloe_crn_s_shapes.yml --index 0 \\
        [--dataset EvalDataset] [--assigners ATSSAssigner TaskAlignedAssigner \\
                                 "{name: SimOTAAssigner, center_radius: 2.0}"] \\
        [--input_size 256] [--zoom 2] [--output_dir output/vis_assign] \\
        [-o weights=output/ppyoloe_crn_s_shapes/model_final PPYOLOEHead.static_assigner.topk=7]
    python tools/vis_assign.py -c CFG --image demo.jpg --gt "48,240,195,371,2;8,187,143,280,0"
    python tools/vis_assign.py -c CFG --image demo.jpg --gt boxes.json
    python tools/vis_assign.py -c CFG --anno instances_val2017.json --image_id 139 \\
        --image_dir dataset/coco/val2017

Image and GT, one of:
- ``--index N``: record N of the config's ``--dataset`` (default ``EvalDataset``), its image and
  its boxes and classes as the dataset parses them;
- ``--image`` with ``--gt``: boxes x1,y1,x2,y2 in pixels of the image as read, with a class id in
  0..C-1, inline (``"x1,y1,x2,y2,cls;..."``) or a .json file holding a list of
  ``[x1, y1, x2, y2, cls]`` or of ``{"bbox": [x1, y1, x2, y2], "class": cls}``;
- ``--anno`` with ``--image_id``: a COCO file (class id = position of the category in its
  ``categories`` list, COCODataSet's catid2clsid; crowd and empty boxes left out), image at
  ``--image_dir/<file_name>`` unless ``--image`` names it.

``--assigners`` (default: the head's ``static_assigner`` and ``assigner``), each one of:
- a head argument, ``static_assigner`` or ``assigner``: the object training uses (``-o``
  overrides included);
- a registered assigner class, ``ATSSAssigner``: built from its config section with the head's
  ``num_classes``;
- a YAML mapping ``"{name: SimOTAAssigner, center_radius: 2.0}"``: that class, its section
  updated with the given arguments.

What happens, in the order PPYOLOEHead's training step does it:

1. the image is resized to the network input (``--input_size H [W]``, default the config's
   ``eval_size``, else 640; aspect ratio not kept, as the configs' Resize) and the GT boxes are
   scaled with it. Every box below is x1y1x2y2 in network-input pixels.
2. the model of ``-c`` runs on it in eval mode: class probabilities ``[1, L, C]`` and decoded boxes
   ``[1, L, 4]`` per prior. The priors are the head's (``assigners.grid_priors``): a point at every
   cell centre of every FPN level (coarsest level first) and a square of ``grid_cell_scale``
   strides around it.
3. each assigner is called as ``assign(priors, gts, preds)``, the predictions detached, as the
   loss calls it; its ``gt_index`` says which GT slot each prior got (-1 background, -2 ignored),
   so duplicate GT boxes are told apart.

Predictions. Without ``-o weights=W`` the model is untrained, and an untrained PP-YOLOE head
predicts the same at every prior (see PPYOLOEHead): probability 0.01 for every class and a square
box ``reg_max`` strides wide centred on the prior point. The prediction-dependent assigners
(``needs_preds``: TAL, SimOTA, Dynamic Soft Label) then rank priors by the IoU of that square and
their positions alone: the report and the picture name them. With ``-o weights=W`` (a local
.pdparams) the scores and boxes are that model's. The config's own ``weights`` entry is not read,
so the untrained prior is never replaced by a checkpoint silently.

Outputs: ``<output_dir>/<image stem>_assign.png``: a column per assigner, a row per FPN level;
GT boxes, each positive prior as a dot in its GT's colour linked to the GT's centre, ignored
priors as grey crosses, the level's prior grid as small grey dots. A table per assigner: for each
GT slot its positives per level and in total, the mean IoU with the GT of the positives' prior
boxes and of their predicted boxes, their mean classification target (soft score), then the
ignored priors per level and the GTs left without positives; then a summary row per assigner.
``inspect_assignment`` returns the same numbers.
"""

import copy
import json
import os
import sys
from collections import namedtuple

import cv2
import numpy as np
import paddle
import yaml
from pycocotools.coco import COCO

# Runnable from a checkout without installing, as PaddleDetection's tools are.
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '..')))

import ppdet_lite.modeling  # noqa: E402,F401  (registers the model zoo)
from ppdet_lite.core.workspace import ConfigError, create  # noqa: E402
from ppdet_lite.modeling import assigners as assigner_zoo  # noqa: E402
from ppdet_lite.modeling.assigners import GTs, Preds, grid_priors  # noqa: E402
from ppdet_lite.utils.assign_vis import (  # noqa: E402
    AssignmentView, draw_assignments, format_summary, format_table, gts_without_positives,
    ignored_per_level, per_gt_stats)
from ppdet_lite.utils.checkpoint import load_weights  # noqa: E402
from ppdet_lite.utils.cli import ArgsParser, config_from_args  # noqa: E402

# PaddleDetection's NormalizeImage defaults, for configs whose TestReader does not say.
IMAGENET_NORM = {'mean': [0.485, 0.456, 0.406], 'std': [0.229, 0.224, 0.225], 'is_scale': True}
HEAD_SLOTS = ('static_assigner', 'assigner')

GroundTruth = namedtuple('GroundTruth', ['boxes', 'classes', 'class_names'], defaults=[None])
GroundTruth.__doc__ = """``boxes [n, 4]`` float32 x1y1x2y2 pixels, ``classes [n]`` int64 0..C-1,
``class_names`` the dataset's category name of each class id (list) or None when unknown."""

Sample = namedtuple('Sample', ['image', 'gt'])
Sample.__doc__ = """The network input: ``image [H, W, 3]`` BGR uint8 and its scaled GroundTruth."""

Predictions = namedtuple('Predictions', ['scores', 'boxes'])
Predictions.__doc__ = """``scores [1, L, C]`` probabilities and ``boxes [1, L, 4]`` x1y1x2y2
network-input pixels, float32 tensors."""

Assignment = namedtuple('Assignment', ['name', 'assigner', 'result', 'gt_index', 'ignored'])
Assignment.__doc__ = """One assigner's result: the ``AssignResult`` and its image's rows,
``gt_index [L]`` int64 (-1 background, -2 ignored) and ``ignored [L]`` bool, numpy."""

Inspection = namedtuple('Inspection', ['sample', 'priors', 'strides', 'predictions',
                                       'predicted_by', 'untrained', 'assignments', 'stats',
                                       'ignored', 'without_positives'])
Inspection.__doc__ = """Everything the tool found: ``priors`` (assigners.Priors) and the
``strides`` of their levels (pixels, the head's ``fpn_strides``), ``predicted_by``
says where the Predictions come from, ``untrained`` the names of the prediction-dependent
assigners that got the untrained head's constant predictions, ``stats`` {name: [GTStats per GT
slot]}, ``ignored`` {name: {stride: ignored priors}}, ``without_positives`` {name: [GT slot]}."""


class InspectError(ValueError):
    """A problem with the tool's inputs (GT, image, assigner names, sizes, weights)."""


# ----------------------------------------------------------------------------------------------
# inputs


def _checked_gt(entries, where):
    """``[(box, cls, text)]`` -> GroundTruth, each box x2 > x1 and y2 > y1."""
    boxes, classes = [], []
    for box, cls, text in entries:
        if not (box[2] > box[0] and box[3] > box[1]):
            raise InspectError(f'malformed {where} entry {text!r}: needs x2 > x1 and y2 > y1')
        boxes.append(box)
        classes.append(cls)
    if not boxes:
        raise InspectError(f'{where}: no box given')
    return GroundTruth(np.array(boxes, 'float32').reshape([-1, 4]), np.array(classes, 'int64'))


def parse_gt(text):
    """``"x1,y1,x2,y2,cls;..."`` (pixels; a trailing ``;`` is fine) -> GroundTruth."""
    entries = []
    for entry in text.split(';'):
        if not entry.strip():
            continue
        fields = entry.split(',')
        try:
            if len(fields) != 5:
                raise ValueError
            entries.append(([float(v) for v in fields[:4]], int(fields[4]), entry.strip()))
        except ValueError:
            raise InspectError(f'malformed --gt entry {entry.strip()!r}: expected x1,y1,x2,y2,'
                               f'class_id (pixels, integer class id)') from None
    if not entries:
        raise InspectError(f'malformed --gt {text!r}: no box given (format "x1,y1,x2,y2,cls;...")')
    return _checked_gt(entries, '--gt')


def load_gt_json(path):
    """A .json list of ``[x1, y1, x2, y2, cls]`` or ``{"bbox": [x1, y1, x2, y2], "class": cls}``
    (pixels) -> GroundTruth."""
    try:
        with open(path) as f:
            items = json.load(f)
    except (OSError, ValueError) as e:
        raise InspectError(f'cannot read the GT file {path}: {e}') from e
    if not isinstance(items, list):
        raise InspectError(f'GT file {path}: expected a list of boxes, got {type(items).__name__}')
    entries = []
    for item in items:
        row = item if isinstance(item, list) else (
            list(item.get('bbox', [])) + [item.get('class')] if isinstance(item, dict) else None)
        try:
            if row is None or len(row) != 5 or isinstance(row[4], bool) or row[4] != int(row[4]):
                raise ValueError
            entries.append(([float(v) for v in row[:4]], int(row[4]), json.dumps(item)))
        except (TypeError, ValueError):
            raise InspectError(f'GT file {path}: malformed entry {json.dumps(item)}: expected '
                               f'[x1, y1, x2, y2, class_id] or {{"bbox": [x1, y1, x2, y2], '
                               f'"class": class_id}}') from None
    return _checked_gt(entries, f'GT file {path}')


def load_coco_gt(anno_path, image_id, image_dir):
    """GT of image ``image_id`` of a COCO annotation file -> (image path, GroundTruth).

    Class ids follow COCODataSet's catid2clsid (PaddleDetection's: position of the category in
    the file's ``categories`` list); crowd boxes and boxes without area are left out, as
    COCODataSet does by default.
    """
    if not os.path.isfile(anno_path):
        raise InspectError(f'annotation file not found: {anno_path}')
    coco = COCO(anno_path)
    if image_id not in coco.imgs:
        raise InspectError(f'image id {image_id} is not in {anno_path}')
    cat_ids = coco.getCatIds()
    catid2clsid = {cat: i for i, cat in enumerate(cat_ids)}
    boxes, classes = [], []
    for ann in coco.loadAnns(coco.getAnnIds(imgIds=[image_id], iscrowd=False)):
        x, y, w, h = ann['bbox']
        if w > 0 and h > 0:
            boxes.append([x, y, x + w, y + h])
            classes.append(catid2clsid[ann['category_id']])
    if not boxes:
        raise InspectError(f'image id {image_id} of {anno_path} has no non-crowd box')
    path = os.path.join(image_dir, coco.imgs[image_id]['file_name'])
    names = [coco.cats[cat]['name'] for cat in cat_ids]
    return path, GroundTruth(np.array(boxes, 'float32'), np.array(classes, 'int64'), names)


def load_dataset_gt(cfg, dataset_key, index):
    """Record ``index`` of the config's dataset ``dataset_key`` -> (image path, GroundTruth), the
    boxes and classes as the dataset parses them."""
    if dataset_key not in cfg:
        raise InspectError(f'the config has no {dataset_key}')
    dataset = create(dataset_key, cfg)
    # An EvalDataset emits only image fields by default; the GT is what is inspected here.
    dataset.data_fields = list(dict.fromkeys(list(dataset.data_fields) +
                                             ['image', 'gt_bbox', 'gt_class']))
    try:
        dataset.parse_dataset()
    except (OSError, ValueError) as e:
        raise InspectError(f'{dataset_key}: {e}') from e
    records = dataset.roidbs
    if not 0 <= index < len(records):
        raise InspectError(f'--index {index} is out of range: {dataset_key} has {len(records)} '
                           f'records (0..{len(records) - 1})')
    record = records[index]
    boxes = np.asarray(record.get('gt_bbox', np.zeros([0, 4])), 'float32').reshape([-1, 4])
    classes = np.asarray(record.get('gt_class', np.zeros([0])), 'int64').reshape([-1])
    by_id = {cid: name for name, cid in (getattr(dataset, 'cname2cid', None) or {}).items()}
    names = [by_id.get(i, str(i)) for i in range(max(by_id) + 1)] if by_id else None
    return record['im_file'], GroundTruth(boxes, classes, names)


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
    return Sample(resized, GroundTruth(boxes, gt.classes, gt.class_names))


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


def registered_assigners():
    """Names of the assigner classes ``ppdet_lite.modeling.assigners`` exports."""
    return [name for name in assigner_zoo.__all__
            if isinstance(getattr(assigner_zoo, name), type)
            and issubclass(getattr(assigner_zoo, name), assigner_zoo.BaseAssigner)
            and getattr(assigner_zoo, name) is not assigner_zoo.BaseAssigner]


def _parse_spec(spec):
    """An ``--assigners`` item -> (display name, head slot or class name, arguments or None)."""
    if spec.lstrip().startswith('{'):
        try:
            mapping = yaml.safe_load(spec)
        except yaml.YAMLError as e:
            raise InspectError(f'--assigners item {spec!r} is not a YAML mapping: {e}') from e
        if not isinstance(mapping, dict) or not isinstance(mapping.get('name'), str):
            raise InspectError(f'--assigners item {spec!r}: a mapping needs "name: ClassName"')
        args = {k: v for k, v in mapping.items() if k != 'name'}
        shown = yaml.safe_dump(args, default_flow_style=True, sort_keys=False,
                               width=float('inf')).strip() if args else ''
        return f'{mapping["name"]} {shown}'.strip(), mapping['name'], args
    return spec, spec, None


def build_assigners(cfg, head, specs):
    """``[(name, assigner)]`` for the ``--assigners`` items, see the module docstring."""
    classes = registered_assigners()
    built = []
    for spec in specs:
        name, key, args = _parse_spec(spec)
        if args is None and key in HEAD_SLOTS and getattr(head, key, None) is not None:
            assigner = getattr(head, key)
        elif key in classes:
            scoped = copy.copy(cfg)
            scoped['num_classes'] = head.num_classes
            section = dict(cfg.get(key) or {})
            section.update(args or {})
            scoped[key] = section
            try:
                assigner = create(key, scoped)
            except (ConfigError, TypeError, ValueError) as e:
                raise InspectError(f'--assigners {spec!r}: {e}') from e
        else:
            raise InspectError(f'unknown assigner {key!r}; available: {type(head).__name__} '
                               f'arguments {", ".join(HEAD_SLOTS)}; registered classes '
                               f'{", ".join(classes)}')
        if not callable(getattr(assigner, 'assign', None)):
            raise InspectError(f'assigner {name!r} ({type(assigner).__name__}) has no '
                               f'assign(priors, gts, preds) method')
        built.append((name, assigner))
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
        (Priors, Predictions): the head's priors for these feature maps, and per prior class
        probabilities and boxes decoded as ``post_process`` decodes them, in pixels.
    """
    head = model.yolo_head
    with paddle.no_grad():
        feats = model.neck(model.backbone({'image': _network_input(image, cfg)}))
        pred_bboxes, pred_scores = head.decode(head(feats))
    priors = grid_priors([f.shape[2:] for f in feats], head.fpn_strides, head.grid_cell_scale,
                         head.grid_cell_offset)
    return priors, Predictions(pred_scores.transpose([0, 2, 1]), pred_bboxes)


def run_assigner(name, assigner, gt, priors, predictions):
    """``assigner.assign(priors, gts, preds)`` on one image -> Assignment."""
    num_gts = len(gt.classes)
    gts = GTs(paddle.to_tensor(gt.classes.reshape([1, num_gts, 1]).astype('int32')),
              paddle.to_tensor(gt.boxes.reshape([1, num_gts, 4])),
              paddle.ones([1, num_gts, 1], dtype='float32'))
    result = assigner.assign(priors, gts, Preds(predictions.scores, predictions.boxes))
    return Assignment(name, assigner, result, result.gt_index.numpy()[0],
                      result.ignore_mask.numpy()[0])


def inspect_assignment(cfg, image, gt, specs, input_size, weights=None):
    """Assign one image with each ``--assigners`` item.

    Args:
        cfg (dict): loaded config (``-o`` applied).
        image (ndarray): ``[h, w, 3]`` BGR uint8, any size.
        gt (GroundTruth): boxes in pixels of ``image``.
        specs (list[str]): assigners, see ``build_assigners``.
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
    assigners = build_assigners(cfg, head, specs)

    sample = resize_sample(image, gt, input_size)
    priors, predictions = predict(model, sample.image, cfg)
    untrained = [] if weights is not None else [
        name for name, assigner in assigners if getattr(assigner, 'needs_preds', False)]
    predicted_by = (f'model with weights {weights}' if weights is not None else
                    f'untrained head (no -o weights): every prior predicts probability 0.01 for '
                    f'every class and a box {head.reg_max} strides square centred on its point; '
                    f'prediction-dependent assigners given these all-equal predictions: '
                    f'{", ".join(untrained) or "none"}')
    assignments = [run_assigner(name, assigner, sample.gt, priors, predictions)
                   for name, assigner in assigners]
    strides, counts = [int(s) for s in head.fpn_strides], priors.num_anchors_list
    prior_boxes, pred_boxes = priors.boxes.numpy(), predictions.boxes.numpy()[0]
    stats = {a.name: per_gt_stats(a.gt_index, sample.gt.boxes, prior_boxes, strides, counts,
                                  pred_boxes, a.result.assigned_scores.numpy()[0].max(axis=-1))
             for a in assignments}
    ignored = {a.name: ignored_per_level(a.ignored, strides, counts) for a in assignments}
    without = {name: gts_without_positives(per_gt) for name, per_gt in stats.items()}
    return Inspection(sample, priors, strides, predictions, predicted_by, untrained, assignments,
                      stats, ignored, without)


def format_report(result, image_path, image_shape):
    """The printed report: setup lines, then a table per assigner."""
    sample, priors = result.sample, result.priors
    h, w = sample.image.shape[:2]
    strides = result.strides
    levels = ', '.join(f'stride {s}: {n}' for s, n in zip(strides, priors.num_anchors_list))
    lines = [f'image {image_path}: {image_shape[1]}x{image_shape[0]} resized to the network input '
             f'{w}x{h}; boxes in network-input pixels',
             f'priors per level: {levels}',
             f'predictions: {result.predicted_by}',
             'IoU prior / IoU pred / target: mean IoU with the GT of its positives\' prior '
             'boxes / predicted boxes, their mean classification target (assigned_scores)']
    if sample.gt.class_names:
        lines.insert(2, 'classes: ' + ', '.join(f'{c} {sample.gt.class_names[c]}' for c in
                                               sorted(set(sample.gt.classes.tolist()))))
    for a in result.assignments:
        needs = getattr(a.assigner, 'needs_preds', False)
        title = (f'\n== {a.name} ({type(a.assigner).__name__}'
                 f'{", uses predictions" if needs else ""}'
                 f'{", UNTRAINED predictions" if a.name in result.untrained else ""})')
        lines.append(format_table(title, result.stats[a.name], result.ignored[a.name],
                                  sample.gt.boxes, sample.gt.classes, strides))
    lines.append('\n' + format_summary([a.name for a in result.assignments], result.stats,
                                       result.ignored, strides))
    return '\n'.join(lines)


def draw(result, zoom=None):
    """The picture of an Inspection, see ``assign_vis.draw_assignments``."""
    views = []
    for a in result.assignments:
        note = type(a.assigner).__name__ if type(a.assigner).__name__ != a.name else ''
        if a.name in result.untrained:
            note = ', '.join(filter(None, [note, 'untrained predictions']))
        views.append(AssignmentView(a.name, a.gt_index, a.ignored, note))
    return draw_assignments(result.sample.image, result.sample.gt.boxes, result.sample.gt.classes,
                            result.priors.points.numpy(), result.strides,
                            result.priors.num_anchors_list, views, zoom,
                            result.sample.gt.class_names)


# ----------------------------------------------------------------------------------------------
# command line


def parse_args(argv=None):
    parser = ArgsParser(description=__doc__)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--gt', help='GT boxes "x1,y1,x2,y2,cls;..." in pixels of --image, or a '
                                     '.json file of them')
    source.add_argument('--anno', help='COCO annotation file to take the GT from (--image_id)')
    source.add_argument('--index', type=int, help='record of the config\'s --dataset')
    parser.add_argument('--dataset', default='EvalDataset',
                        help='config key of the dataset --index reads (default EvalDataset)')
    parser.add_argument('--image', help='image file (with --anno: default --image_dir/file_name)')
    parser.add_argument('--image_id', type=int, help='image id in --anno')
    parser.add_argument('--image_dir', default='', help='directory of the --anno file names')
    parser.add_argument('--assigners', nargs='+', default=list(HEAD_SLOTS),
                        help='head arguments, registered assigner classes or '
                             '"{name: Class, arg: value}" mappings')
    parser.add_argument('--input_size', nargs='+', type=int,
                        help='network input H [W] (default: the config\'s eval_size, else 640)')
    parser.add_argument('--zoom', type=int, help='drawing scale (default: panels >= 320 px wide)')
    parser.add_argument('--output_dir', default='output/vis_assign')
    args = parser.parse_args(argv)
    if args.gt is not None and args.image is None:
        parser.error('--gt needs --image')
    if args.anno is not None and args.image_id is None:
        parser.error('--anno needs --image_id')
    if args.input_size is not None and len(args.input_size) > 2:
        parser.error(f'--input_size takes H or H W, got {args.input_size}')
    if args.zoom is not None and args.zoom < 1:
        parser.error(f'--zoom must be a whole number >= 1, got {args.zoom}')
    return parser, args


def _load_input(args, cfg):
    """(image path, GroundTruth) from the command line's source of GT."""
    if args.anno is not None:
        image_path, gt = load_coco_gt(args.anno, args.image_id, args.image_dir)
        return args.image or image_path, gt
    if args.index is not None:
        image_path, gt = load_dataset_gt(cfg, args.dataset, args.index)
        return args.image or image_path, gt
    if args.gt.lower().endswith('.json'):
        return args.image, load_gt_json(args.gt)
    return args.image, parse_gt(args.gt)


def main(argv=None):
    """Run the tool; returns the Inspection (also printed and drawn)."""
    parser, args = parse_args(argv)
    try:
        cfg = config_from_args(args)
        image_path, gt = _load_input(args, cfg)
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
    if not cv2.imwrite(out_path, draw(result, args.zoom)):
        parser.error(f'cannot write {out_path}')
    print(f'saved {out_path}')
    return result


if __name__ == '__main__':
    main()
