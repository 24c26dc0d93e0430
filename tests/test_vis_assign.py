"""The assignment inspector: ``ppdet_lite.utils.assign_vis`` on hand-made assignments, and
``tools/vis_assign.py`` run as a user runs it (``main(argv)``).

The tool's scene: a 320 x 240 image shown to a 160 x 160 network, so x scales by 1/2 and y by 2/3;
the priors are 5x5 (stride 32), 10x10 (stride 16) and 20x20 (stride 8) cell centres.
"""

import importlib.util
import json
import os

import cv2
import numpy as np
import paddle
import pytest

from ppdet_lite.core.workspace import create, load_config
from ppdet_lite.modeling import assigners as zoo
from ppdet_lite.modeling.assigners import GTs, Preds, grid_priors
from ppdet_lite.utils import assign_vis
from ppdet_lite.utils.assign_vis import GTStats
from ppdet_lite.utils.checkpoint import save_weights

ROOT = os.path.join(os.path.dirname(__file__), '..')
CONFIG = os.path.join(ROOT, 'configs', 'ppyoloe', 'ppyoloe_crn_s_shapes.yml')  # 5 classes
STRIDES = [32, 16, 8]
COUNTS = [25, 100, 400]

# x1,y1,x2,y2,class in image pixels; the third GT is tiny: scaled to (1, 2, 3, 4), it holds no
# prior point (the nearest, (4, 4) on stride 8, lies outside it).
GT = '40,30,200,180,1;220,60,300,225,3;2,3,6,6,0'
SCALED = np.array([[20, 20, 100, 120], [110, 40, 150, 150], [1, 2, 3, 4]], 'float32')
CLASSES = [1, 3, 0]
# The assigners the scene is run with: ATSS and TAL, and the zoo's others as they exist.
OPTIONAL = ['SimOTAAssigner', 'DynamicSoftLabelAssigner', 'FCOSAssigner', 'MaxIoUAssigner',
            'YOLOv3Assigner']
NAMES = ['ATSSAssigner', 'TaskAlignedAssigner'] + [n for n in OPTIONAL if hasattr(zoo, n)]


def _load_tool():
    spec = importlib.util.spec_from_file_location('vis_assign',
                                                  os.path.join(ROOT, 'tools', 'vis_assign.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


vis_assign = _load_tool()


# ----------------------------------------------------------------------------------------------
# the library on a hand-made assignment

# Two levels: stride 16 holds priors 0 and 1, stride 8 priors 2, 3, 4. GT slots 0 and 1 are the
# same box; slot 2 gets nothing. Prior 3 is ignored, prior 4 background.
HAND_GT = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [20, 20, 30, 30]], 'float32')
HAND_INDEX = np.array([0, 1, 1, -2, -1])
HAND_PRIORS = np.array([[0, 0, 10, 5],     # IoU with [0,0,10,10]: 50 / 100 = 0.5
                        [0, 0, 5, 5],      # 25 / 100 = 0.25
                        [0, 0, 20, 10],    # 100 / 200 = 0.5
                        [40, 40, 50, 50], [60, 60, 70, 70]], 'float32')
HAND_PREDS = np.array([[0, 0, 10, 10],     # 1.0
                       [5, 0, 15, 10],     # 50 / 150 = 1/3
                       [0, 0, 10, 10],     # 1.0
                       [0, 0, 1, 1], [0, 0, 1, 1]], 'float32')
HAND_TARGETS = np.array([0.9, 0.2, 0.6, 0.0, 0.0], 'float32')


def test_per_gt_stats_counts_slots_not_boxes():
    stats = assign_vis.per_gt_stats(HAND_INDEX, HAND_GT, HAND_PRIORS, [16, 8], [2, 3], HAND_PREDS,
                                    HAND_TARGETS)
    approx = lambda v: pytest.approx(v, rel=1e-6)  # noqa: E731
    assert stats == [
        GTStats({16: 1, 8: 0}, 1, approx(0.5), approx(1.0), approx(0.9)),
        GTStats({16: 1, 8: 1}, 2, approx((0.25 + 0.5) / 2), approx((1 / 3 + 1.0) / 2),
                approx((0.2 + 0.6) / 2)),
        GTStats({16: 0, 8: 0}, 0, None, None, None)]
    assert assign_vis.gts_without_positives(stats) == [2]
    ignored = HAND_INDEX == -2
    assert assign_vis.ignored_per_level(ignored, [16, 8], [2, 3]) == {16: 0, 8: 1}
    no_preds = assign_vis.per_gt_stats(HAND_INDEX, HAND_GT, HAND_PRIORS, [16, 8], [2, 3])
    assert [(s.iou_pred, s.target) for s in no_preds] == [(None, None)] * 3


def test_per_gt_stats_rejects_a_slot_beyond_the_gts():
    with pytest.raises(ValueError, match='names GT slot 3 but there are only 3 GT boxes'):
        assign_vis.per_gt_stats([3, -1, -1, -1, -1], HAND_GT, HAND_PRIORS, [16, 8], [2, 3])
    with pytest.raises(ValueError, match=r'gt_index has shape \(4,\), expected \(5,\)'):
        assign_vis.per_gt_stats([0, -1, -1, -1], HAND_GT, HAND_PRIORS, [16, 8], [2, 3])


def test_table_rows():
    stats = assign_vis.per_gt_stats(HAND_INDEX, HAND_GT, HAND_PRIORS, [16, 8], [2, 3], HAND_PREDS,
                                    HAND_TARGETS)
    table = assign_vis.format_table('== hand', stats, {16: 0, 8: 1}, HAND_GT, [4, 4, 2], [16, 8])
    lines = table.split('\n')
    assert lines[0] == '== hand'
    assert lines[1].split() == ['GT', 'class', 'box', 'x1,y1,x2,y2', 's16', 's8', 'total', 'IoU',
                                'prior', 'IoU', 'pred', 'target']
    assert lines[2].split() == ['#0', '4', '0.0,0.0,10.0,10.0', '1', '0', '1', '0.500', '1.000',
                                '0.900']
    assert lines[3].split() == ['#1', '4', '0.0,0.0,10.0,10.0', '1', '1', '2', '0.375', '0.667',
                                '0.400']
    assert lines[4].split() == ['#2', '2', '20.0,20.0,30.0,30.0', '0', '0', '0', '-', '-', '-']
    assert lines[5].split() == ['ignored', 'priors', '0', '1', '1']
    assert lines[6] == 'GT without positives: #2'


def test_summary_rows():
    stats = assign_vis.per_gt_stats(HAND_INDEX, HAND_GT, HAND_PRIORS, [16, 8], [2, 3])
    none = assign_vis.per_gt_stats([-1] * 5, HAND_GT, HAND_PRIORS, [16, 8], [2, 3])
    lines = assign_vis.format_summary(['hand', 'nothing'], {'hand': stats, 'nothing': none},
                                      {'hand': {16: 0, 8: 1}, 'nothing': {16: 0, 8: 0}},
                                      [16, 8]).split('\n')
    assert lines[0].split() == ['assigner', 's16', 's8', 'total', 'ignored', 'GT', 'without',
                                'positives']
    # positives: s16 priors 0 (slot 0) and 1 (slot 1), s8 prior 2 (slot 1); prior 3 ignored
    assert lines[1].split() == ['hand', '2', '1', '3', '1', '#2']
    assert lines[2].split() == ['nothing', '0', '0', '0', '0', '#0,', '#1,', '#2']


def test_drawing_marks_positives_in_their_gts_colour_and_ignored_priors_grey():
    # a 32 x 32 input drawn at zoom 4; one level of 4 priors at the cell centres of stride 16
    image = np.full((32, 32, 3), 0, 'uint8')
    points = np.array([[8, 8], [24, 8], [8, 24], [24, 24]], 'float32')
    gt = np.array([[2, 2, 14, 14], [18, 18, 30, 30]], 'float32')
    view = assign_vis.AssignmentView('A', np.array([0, -2, -1, 1]),
                                     np.array([False, True, False, False]), '')
    picture = assign_vis.draw_assignments(image, gt, [0, 1], points, [16], [4], [view, view],
                                          zoom=4)
    top = assign_vis.HEADER_HEIGHT + assign_vis.TITLE_HEIGHT
    assert picture.shape == (top + 4 * 32, 2 * 4 * 32, 3)
    at = lambda x, y: tuple(int(v) for v in picture[top + 4 * y, 4 * x])  # noqa: E731
    assert at(8, 8) == assign_vis.GT_COLOURS[0]          # positive of slot 0
    assert at(24, 24) == assign_vis.GT_COLOURS[1]        # positive of slot 1
    assert at(24, 8) == assign_vis.IGNORED_COLOUR        # the ignored prior's cross
    assert at(8, 24) == assign_vis.GRID_COLOUR           # background: only the grid dot
    assert tuple(int(v) for v in picture[top + 4 * 24, 4 * 32 + 4 * 24]) == (
        assign_vis.GT_COLOURS[1])                        # the second column repeats it


# ----------------------------------------------------------------------------------------------
# the tool


@pytest.fixture(scope='module')
def image_path(tmp_path_factory):
    image = np.full((240, 320, 3), 80, 'uint8')
    cv2.rectangle(image, (40, 30), (200, 180), (40, 160, 220), -1)
    cv2.circle(image, (260, 140), 40, (200, 80, 60), -1)
    path = str(tmp_path_factory.mktemp('images') / 'scene.png')
    cv2.imwrite(path, image)
    return path


def run(image, output_dir, *extra, gt=GT, names=None):
    return vis_assign.main(['-c', CONFIG, '--image', image, '--gt', gt, '--input_size', '160',
                            '--output_dir', str(output_dir), '--assigners',
                            *(names or NAMES), *extra])


@pytest.fixture(scope='module')
def scene(image_path, tmp_path_factory):
    """The scene under every assigner, and what the tool printed."""
    out = tmp_path_factory.mktemp('scene')
    return run(image_path, out), out


def own_iou(boxes, box):
    """IoU of ``boxes [P, 4]`` with one ``box [4]``, x1y1x2y2 (the test's own arithmetic)."""
    w = np.clip(np.minimum(boxes[:, 2], box[2]) - np.maximum(boxes[:, 0], box[0]), 0, None)
    h = np.clip(np.minimum(boxes[:, 3], box[3]) - np.maximum(boxes[:, 1], box[1]), 0, None)
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
    return w * h / (area(boxes) + area(box) - w * h)


def direct_assign(name, predictions, gt_boxes=SCALED, classes=CLASSES, **kwargs):
    """``name`` built with ``kwargs`` (else its defaults) and called on the scene's priors by the
    test itself."""
    priors = grid_priors([(160 // s, 160 // s) for s in STRIDES], STRIDES)
    n = len(classes)
    gts = GTs(paddle.to_tensor(np.array(classes, 'int32').reshape([1, n, 1])),
              paddle.to_tensor(gt_boxes[None]), paddle.ones([1, n, 1]))
    result = getattr(zoo, name)(num_classes=5, **kwargs).assign(
        priors, gts, Preds(predictions.scores, predictions.boxes))
    return priors, result.gt_index.numpy()[0], result.ignore_mask.numpy()[0], result


def test_png_has_a_column_per_assigner_and_a_row_per_level(scene):
    result, out = scene
    png = cv2.imread(str(out / 'scene_assign.png'))
    # a 160 px input is drawn at 2x (panels at least MIN_PANEL_WIDTH = 320 wide)
    assert assign_vis.display_zoom(160) == 2
    assert png.shape == (assign_vis.HEADER_HEIGHT + 3 * (assign_vis.TITLE_HEIGHT + 320),
                         len(NAMES) * 320, 3)
    assert [a.name for a in result.assignments] == NAMES


def test_boxes_scaled_and_priors_are_the_heads(scene):
    result, _ = scene
    np.testing.assert_allclose(result.sample.gt.boxes, SCALED, rtol=1e-6)
    priors = grid_priors([(5, 5), (10, 10), (20, 20)], STRIDES)
    assert result.priors.num_anchors_list == COUNTS and result.strides == STRIDES
    np.testing.assert_array_equal(result.priors.boxes.numpy(), priors.boxes.numpy())
    np.testing.assert_array_equal(result.priors.points.numpy(), priors.points.numpy())


def test_untrained_predictions_are_the_documented_prior(scene):
    result, _ = scene
    priors = grid_priors([(5, 5), (10, 10), (20, 20)], STRIDES)
    scores, boxes = result.predictions.scores.numpy(), result.predictions.boxes.numpy()
    assert scores.shape == (1, 525, 5) and boxes.shape == (1, 525, 4)
    np.testing.assert_allclose(scores, 0.01, rtol=1e-5)
    # reg_max = 16: each side 8 strides from the prior point
    half = 8 * priors.strides.numpy()[:, None]
    points = priors.points.numpy()
    np.testing.assert_allclose(boxes[0], np.concatenate([points - half, points + half], axis=1),
                               atol=1e-3)
    needing = [n for n in NAMES if getattr(zoo, n).needs_preds]
    assert 'TaskAlignedAssigner' in needing and 'ATSSAssigner' not in needing
    assert result.untrained == needing
    assert (f'prediction-dependent assigners given these all-equal predictions: '
            f'{", ".join(needing)}') in result.predicted_by


@pytest.mark.parametrize('name', NAMES)
def test_stats_count_the_assigners_own_gt_index(scene, name):
    result, _ = scene
    priors, gt_index, ignored, own = direct_assign(name, result.predictions)
    # each prior's classification target at the class of its GT (positives only are read)
    labels = np.clip(own.assigned_labels.numpy()[0], 0, 4)
    target = np.take_along_axis(own.assigned_scores.numpy()[0], labels[:, None], axis=1)[:, 0]
    level = np.repeat([0, 1, 2], COUNTS)
    pred_boxes = result.predictions.boxes.numpy()[0]
    for g in range(3):
        mine = gt_index == g
        got = result.stats[name][g]
        assert got.positives == {s: int((mine & (level == i)).sum())
                                 for i, s in enumerate(STRIDES)}
        assert got.total == mine.sum()
        if got.total:
            assert got.iou_prior == pytest.approx(
                own_iou(priors.boxes.numpy()[mine], SCALED[g]).mean(), rel=1e-5)
            assert got.iou_pred == pytest.approx(own_iou(pred_boxes[mine], SCALED[g]).mean(),
                                                 rel=1e-5)
            assert got.target == pytest.approx(target[mine].mean(), rel=1e-6)
    assert result.ignored[name] == {s: int((ignored & (level == i)).sum())
                                    for i, s in enumerate(STRIDES)}
    # the tiny GT holds no prior point: reported by the point-in-box assigners
    if name in ('ATSSAssigner', 'TaskAlignedAssigner'):
        assert result.without_positives[name] == [2]
        assert result.stats[name][2].positives == {32: 0, 16: 0, 8: 0}


def test_report_prints_a_table_per_assigner(scene, image_path, tmp_path, capsys):
    run(image_path, tmp_path, names=['ATSSAssigner', 'TaskAlignedAssigner'])
    out = capsys.readouterr().out
    assert '== ATSSAssigner (ATSSAssigner)\n' in out
    assert '== TaskAlignedAssigner (TaskAlignedAssigner, uses predictions, UNTRAINED predictions)' \
        in out
    assert out.count('GT without positives: #2') == 2
    summary = out.split('\nassigner ')[1].split('\n')
    assert summary[1].split()[0] == 'ATSSAssigner' and summary[1].split()[-1] == '#2'
    assert summary[2].split()[0] == 'TaskAlignedAssigner' and summary[2].split()[-1] == '#2'
    assert 'predictions: untrained head (no -o weights)' in out


def test_duplicate_gt_boxes_are_separate_slots(image_path, tmp_path, scene):
    # slots 0 and 1 hold the same box: every prior both claim ties, and the tie rule (lowest slot)
    # gives it to slot 0, so slot 1 is reported without positives and slot 0 keeps the single
    # box's positives
    result = run(image_path, tmp_path, gt='40,30,200,180,1;40,30,200,180,1',
                 names=['ATSSAssigner', 'TaskAlignedAssigner'])
    single, _ = scene
    for name in ('ATSSAssigner', 'TaskAlignedAssigner'):
        assert result.stats[name][0] == single.stats[name][0]
        assert result.stats[name][1].total == 0
        assert result.without_positives[name] == [1]


def test_head_slots_class_names_and_mappings(image_path, tmp_path):
    result = run(image_path, tmp_path, '-o', 'PPYOLOEHead.static_assigner.topk=7',
                 names=['static_assigner', 'ATSSAssigner', '{name: ATSSAssigner, topk: 7}',
                        'assigner'])
    static, default, mapped, tal = (a.assigner for a in result.assignments)
    assert type(static) is zoo.ATSSAssigner and static.topk == 7
    assert default.topk == 9 and mapped.topk == 7 and mapped.num_classes == 5
    assert type(tal) is zoo.TaskAlignedAssigner
    assert [a.name for a in result.assignments] == [
        'static_assigner', 'ATSSAssigner', 'ATSSAssigner {topk: 7}', 'assigner']
    assert result.stats['static_assigner'] == result.stats['ATSSAssigner {topk: 7}']


def test_ignored_priors_are_counted_printed_and_drawn(image_path, tmp_path):
    # MaxIoU's band [0.4, 0.5) and YOLOv3's threshold (lowered: the untrained predictions are
    # squares of 16 strides, whose IoU with the scene's GTs stays below the default 0.7)
    specs = {'MaxIoUAssigner': ('MaxIoUAssigner', {}),
             'YOLOv3Assigner': ('{name: YOLOv3Assigner, ignore_thresh: 0.3}',
                                {'ignore_thresh': 0.3})}
    specs = {name: spec for name, spec in specs.items() if hasattr(zoo, name)}
    if not specs:
        pytest.skip('no assigner with an ignore band is available yet')
    result = run(image_path, tmp_path, names=[spec for spec, _ in specs.values()])
    png = cv2.imread(str(tmp_path / 'scene_assign.png'))
    level = np.repeat([0, 1, 2], COUNTS)
    report = vis_assign.format_report(result, 'scene.png', (240, 320, 3))
    for column, (a, (name, (_, kwargs))) in enumerate(zip(result.assignments, specs.items())):
        _, _, ignored, _ = direct_assign(name, result.predictions, **kwargs)
        expected = {s: int((ignored & (level == i)).sum()) for i, s in enumerate(STRIDES)}
        assert result.ignored[a.name] == expected and sum(expected.values()) > 0, name
        block = report.split(f'== {a.name} ')[1].split('\n')
        line = next(row for row in block if row.startswith('ignored priors'))
        assert line.split()[2:] == [str(expected[s]) for s in STRIDES] + [
            str(sum(expected.values()))]
        # every ignored prior's cross is centred on its point in its level's panel (zoom 2)
        points = np.round(result.priors.points.numpy() * 2).astype(int)
        for prior in np.nonzero(ignored)[0]:
            top = assign_vis.HEADER_HEIGHT + level[prior] * (assign_vis.TITLE_HEIGHT + 320) + (
                assign_vis.TITLE_HEIGHT)
            x, y = points[prior]
            assert tuple(png[top + y, column * 320 + x]) == assign_vis.IGNORED_COLOUR, name


def test_gt_from_json_and_coco_and_dataset_index_agree(image_path, tmp_path):
    names = ['ATSSAssigner']
    boxes = tmp_path / 'boxes.json'
    boxes.write_text(json.dumps([[40, 30, 200, 180, 0], {'bbox': [2, 3, 6, 6], 'class': 1}]))
    from_json = run(image_path, tmp_path, gt=str(boxes), names=names)
    from_gt = run(image_path, tmp_path, gt='40,30,200,180,0;2,3,6,6,1', names=names)
    # categories 7 and 3 become classes 0 and 1 (their order in the file, as COCODataSet); the
    # crowd box and the empty box are left out
    anno = {
        'images': [{'id': 12, 'file_name': os.path.basename(image_path), 'width': 320,
                    'height': 240}],
        'categories': [{'id': 7, 'name': 'b'}, {'id': 3, 'name': 'a'}],
        'annotations': [
            {'id': 1, 'image_id': 12, 'category_id': 7, 'bbox': [40, 30, 160, 150],
             'area': 24000, 'iscrowd': 0},
            {'id': 2, 'image_id': 12, 'category_id': 3, 'bbox': [2, 3, 4, 3], 'area': 12,
             'iscrowd': 0},
            {'id': 3, 'image_id': 12, 'category_id': 3, 'bbox': [0, 0, 300, 200], 'area': 6e4,
             'iscrowd': 1},
            {'id': 4, 'image_id': 12, 'category_id': 3, 'bbox': [5, 5, 0, 10], 'area': 0,
             'iscrowd': 0},
        ]}
    anno_path = tmp_path / 'instances.json'
    anno_path.write_text(json.dumps(anno))
    common = ['-c', CONFIG, '--input_size', '160', '--output_dir', str(tmp_path),
              '--assigners', *names]
    from_anno = vis_assign.main(common + ['--anno', str(anno_path), '--image_id', '12',
                                          '--image_dir', os.path.dirname(image_path)])
    from_index = vis_assign.main(common + [
        '--index', '0', '-o', f'EvalDataset.dataset_dir={os.path.dirname(image_path)}',
        'EvalDataset.image_dir=.', f'EvalDataset.anno_path={anno_path}'])
    for result in (from_json, from_anno, from_index):
        np.testing.assert_array_equal(result.sample.gt.classes, [0, 1])
        np.testing.assert_allclose(result.sample.gt.boxes, SCALED[[0, 2]], rtol=1e-6)
        assert result.stats == from_gt.stats
    # the category names label the GT where the source has them
    assert from_anno.sample.gt.class_names == from_index.sample.gt.class_names == ['b', 'a']
    assert from_json.sample.gt.class_names is None
    assert 'classes: 0 b, 1 a' in vis_assign.format_report(from_index, 'scene.png', (240, 320))


def test_weights_give_the_models_predictions(image_path, tmp_path, capsys):
    cfg = load_config(CONFIG, overrides={'eval_size': None}, make_current=False)
    paddle.seed(1)
    model = create(cfg.architecture, cfg)
    for conv in list(model.yolo_head.pred_cls) + list(model.yolo_head.pred_reg):
        conv.weight.set_value(paddle.randn(conv.weight.shape) * 0.01)
        conv.bias.set_value(paddle.randn(conv.bias.shape))
    save_weights(model, str(tmp_path / 'trained.pdparams'))
    result = run(image_path, tmp_path, f'-o', f'weights={tmp_path / "trained.pdparams"}',
                 names=['TaskAlignedAssigner'])
    model.eval()
    # the TestReader's preprocessing: cubic resize, RGB, /255, ImageNet mean/std, CHW
    image = cv2.resize(cv2.imread(image_path), (160, 160), interpolation=cv2.INTER_CUBIC)
    x = (image[:, :, ::-1] / 255. - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    x = paddle.to_tensor(x.transpose(2, 0, 1)[None].astype('float32'))
    with paddle.no_grad():
        scores = model.yolo_head(model.neck(model.backbone({'image': x})))[0]
    np.testing.assert_allclose(result.predictions.scores.numpy(),
                               scores.numpy().transpose(0, 2, 1), rtol=1e-5, atol=1e-6)
    assert result.predictions.scores.numpy().std() > 0.05  # no longer the constant prior
    assert result.untrained == []
    out = capsys.readouterr().out
    assert 'predictions: model with weights' in out and 'UNTRAINED' not in out


@pytest.mark.parametrize('change, message', [
    ({'--assigners': ['static_assigner', 'SimOTA']},
     "unknown assigner 'SimOTA'; available: PPYOLOEHead arguments static_assigner, assigner; "
     "registered classes "),
    ({'--assigners': ['SimOTA']}, 'TaskAlignedAssigner'),  # the classes are listed
    ({'--assigners': ['{name: ATSSAssigner, topk: [}']}, 'is not a YAML mapping'),
    ({'--assigners': ['{topk: 3}']}, 'a mapping needs "name: ClassName"'),
    ({'--assigners': ['{name: ATSSAssigner, topk: 0}']}, 'topk'),
    ({'--gt': ['1,2,3,4']}, "malformed --gt entry '1,2,3,4': expected x1,y1,x2,y2,class_id"),
    ({'--gt': ['1,2,3,4,dog']}, "malformed --gt entry '1,2,3,4,dog'"),
    ({'--gt': ['10,10,5,20,1']}, "malformed --gt entry '10,10,5,20,1': needs x2 > x1 and y2 > y1"),
    ({'--gt': [';']}, 'malformed --gt'),
    ({'--gt': ['missing.json']}, 'cannot read the GT file missing.json'),
    ({'--gt': ['10,10,50,50,5']}, 'class id(s) [5] outside 0..4'),
    ({'--input_size': ['100']}, 'multiple of 32 (the coarsest fpn stride)'),
    ({'--zoom': ['0']}, '--zoom must be a whole number >= 1, got 0'),
    ({'--image': ['missing.jpg']}, "cannot read image 'missing.jpg'"),
    ({'-o': ['weights=https://example.com/w.pdparams']}, 'is a URL'),
    ({'-o': ['weights=nowhere/model_final']}, 'weights not found: nowhere/model_final'),
])
def test_clear_errors(image_path, tmp_path, capsys, change, message):
    options = {'-c': [CONFIG], '--image': [image_path], '--gt': [GT], '--input_size': ['160'],
               '--output_dir': [str(tmp_path)]}
    options.update(change)
    argv = [item for key, values in options.items() for item in [key, *values]]
    with pytest.raises(SystemExit) as exit_info:
        vis_assign.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_malformed_gt_json_entry_is_quoted(image_path, tmp_path, capsys):
    bad = tmp_path / 'bad.json'
    bad.write_text(json.dumps([[1, 2, 3, 4, 0], [1, 2, 3]]))
    with pytest.raises(SystemExit):
        run(image_path, tmp_path, gt=str(bad))
    assert f'GT file {bad}: malformed entry [1, 2, 3]' in capsys.readouterr().err


def test_dataset_index_out_of_range(image_path, tmp_path, capsys):
    anno_path = tmp_path / 'instances.json'
    anno_path.write_text(json.dumps({
        'images': [{'id': 1, 'file_name': os.path.basename(image_path), 'width': 320,
                    'height': 240}],
        'categories': [{'id': 1, 'name': 'a'}],
        'annotations': [{'id': 1, 'image_id': 1, 'category_id': 1, 'bbox': [4, 4, 40, 40],
                         'area': 1600, 'iscrowd': 0}]}))
    with pytest.raises(SystemExit):
        vis_assign.main(['-c', CONFIG, '--index', '3', '-o',
                         f'EvalDataset.dataset_dir={os.path.dirname(image_path)}',
                         'EvalDataset.image_dir=.', f'EvalDataset.anno_path={anno_path}'])
    assert '--index 3 is out of range: EvalDataset has 1 records (0..0)' in capsys.readouterr().err


def test_an_image_without_gt_has_no_positives(image_path, tmp_path):
    anno_path = tmp_path / 'instances.json'
    anno_path.write_text(json.dumps({
        'images': [{'id': 1, 'file_name': os.path.basename(image_path), 'width': 320,
                    'height': 240}],
        'categories': [{'id': 1, 'name': 'a'}], 'annotations': []}))
    result = vis_assign.main([
        '-c', CONFIG, '--index', '0', '--input_size', '160', '--output_dir', str(tmp_path),
        '--assigners', *NAMES, '-o', f'EvalDataset.dataset_dir={os.path.dirname(image_path)}',
        'EvalDataset.image_dir=.', f'EvalDataset.anno_path={anno_path}',
        'EvalDataset.allow_empty=true'])
    assert result.sample.gt.boxes.shape == (0, 4)
    for a in result.assignments:
        assert (a.gt_index == -1).all(), a.name
        assert result.stats[a.name] == [] and result.without_positives[a.name] == []
    assert cv2.imread(str(tmp_path / 'scene_assign.png')).shape[1] == len(NAMES) * 320


def test_unknown_coco_image_id(tmp_path, capsys):
    anno_path = tmp_path / 'instances.json'
    anno_path.write_text(json.dumps({'images': [], 'categories': [], 'annotations': []}))
    with pytest.raises(SystemExit):
        vis_assign.main(['-c', CONFIG, '--anno', str(anno_path), '--image_id', '5'])
    assert f'image id 5 is not in {anno_path}' in capsys.readouterr().err
