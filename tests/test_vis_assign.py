"""tools/vis_assign.py, the assignment inspector, run as a user runs it: ``main(argv)``.

The scene: a 320 x 240 image shown to a 160 x 160 network, so x scales by 1/2 and y by 2/3, and
the anchors are 5x5 (stride 32), 10x10 (stride 16) and 20x20 (stride 8) cell centres.
"""

import importlib.util
import json
import os

import cv2
import numpy as np
import paddle
import pytest

from ppdet_lite.core.workspace import create, load_config
from ppdet_lite.modeling.assigners import ATSSAssigner, TaskAlignedAssigner
from ppdet_lite.modeling.bbox_utils import bbox_iou, generate_anchors_for_grid_cell
from ppdet_lite.utils.checkpoint import save_weights

ROOT = os.path.join(os.path.dirname(__file__), '..')
CONFIG = os.path.join(ROOT, 'configs', 'ppyoloe', 'ppyoloe_crn_s_300e_coco.yml')
STRIDES = [32, 16, 8]

# x1,y1,x2,y2,class in image pixels; the third GT is tiny: scaled to (1, 2, 3, 4), it holds no
# anchor point (the nearest, (4, 4) on stride 8, lies outside it).
GT = '40,30,200,180,1;220,60,300,225,5;2,3,6,6,0'
SCALED = np.array([[20, 20, 100, 120], [110, 40, 150, 150], [1, 2, 3, 4]], 'float32')
CLASSES = [1, 5, 0]


def _load_tool():
    spec = importlib.util.spec_from_file_location('vis_assign',
                                                  os.path.join(ROOT, 'tools', 'vis_assign.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


vis_assign = _load_tool()


@pytest.fixture(scope='module')
def image_path(tmp_path_factory):
    image = np.full((240, 320, 3), 80, 'uint8')
    cv2.rectangle(image, (40, 30), (200, 180), (40, 160, 220), -1)
    cv2.circle(image, (260, 140), 40, (200, 80, 60), -1)
    path = str(tmp_path_factory.mktemp('images') / 'scene.png')
    cv2.imwrite(path, image)
    return path


def run(image, output_dir, *extra, gt=GT):
    return vis_assign.main(['-c', CONFIG, '--image', image, '--gt', gt, '--input_size', '160',
                            '--output_dir', str(output_dir), *extra])


def anchors_160():
    feats = [paddle.zeros([1, 1, 160 // s, 160 // s]) for s in STRIDES]
    return generate_anchors_for_grid_cell(feats, STRIDES, 5.0, 0.5)


def gt_tensors():
    labels = paddle.to_tensor(np.array(CLASSES, 'int32').reshape([1, 3, 1]))
    return labels, paddle.to_tensor(SCALED[None]), paddle.ones([1, 3, 1])


def positives_per_level(assigned, g):
    """{stride: count} of the anchors assigned to GT g (the GTs differ, so the box says which)."""
    labels, bboxes, _ = assigned
    mine = (labels.numpy()[0] != 80) & (bboxes.numpy()[0] == SCALED[g]).all(axis=-1)
    ends = np.cumsum([(160 // s) ** 2 for s in STRIDES])
    return {s: int(mine[end - (160 // s) ** 2:end].sum()) for s, end in zip(STRIDES, ends)}, mine


def test_png_holds_one_panel_per_assigner_side_by_side(image_path, tmp_path):
    run(image_path, tmp_path)
    png = cv2.imread(str(tmp_path / 'scene_assign.png'))
    # a 160 px input is drawn at 3x (panels at least MIN_PANEL_WIDTH = 480 wide), title bar on top
    assert vis_assign.display_zoom(160) == 3
    assert png.shape == (vis_assign.TITLE_HEIGHT + 480, 2 * 480, 3)


def test_boxes_scaled_and_anchors_are_the_heads(image_path, tmp_path):
    result = run(image_path, tmp_path)
    np.testing.assert_allclose(result.sample.gt.boxes, SCALED, rtol=1e-6)
    anchors, points, num_anchors_list, _ = anchors_160()
    assert result.anchors.num_anchors_list == num_anchors_list == [25, 100, 400]
    np.testing.assert_array_equal(result.anchors.boxes.numpy(), anchors.numpy())
    np.testing.assert_array_equal(result.anchors.points.numpy(), points.numpy())


def test_untrained_predictions_are_the_documented_prior(image_path, tmp_path, capsys):
    result = run(image_path, tmp_path)
    _, points, _, stride = anchors_160()
    scores, boxes = result.predictions.scores.numpy(), result.predictions.boxes.numpy()
    assert scores.shape == (1, 525, 80) and boxes.shape == (1, 525, 4)
    np.testing.assert_allclose(scores, 0.01, rtol=1e-5)
    # reg_max = 16: each side 8 strides from the anchor point
    half = 8 * stride.numpy()
    expected = np.concatenate([points.numpy() - half, points.numpy() + half], axis=1)
    np.testing.assert_allclose(boxes[0], expected, atol=1e-3)
    assert 'untrained head (no -o weights)' in capsys.readouterr().out


@pytest.mark.parametrize('topk', [9, 7])
def test_stats_equal_direct_assigner_calls(image_path, tmp_path, topk):
    result = run(image_path, tmp_path, '-o', f'PPYOLOEHead.static_assigner.topk={topk}')
    assert result.assignments[0].assigner.topk == topk
    anchors, points, num_anchors_list, _ = anchors_160()
    labels, bboxes, mask = gt_tensors()
    atss = ATSSAssigner(topk=topk, num_classes=80)(anchors, num_anchors_list, labels, bboxes,
                                                  mask, 80)
    tal = TaskAlignedAssigner(topk=13, alpha=1.0, beta=6.0)(
        result.predictions.scores, result.predictions.boxes, points, num_anchors_list, labels,
        bboxes, mask, 80)
    for g in range(3):
        expected, mine = positives_per_level(atss, g)
        got = result.stats['static_assigner'][g]
        assert got.positives == expected and got.total == sum(expected.values())
        if got.total:  # ATSS: IoU of the positives' anchor boxes with the GT
            ious = bbox_iou(paddle.to_tensor(anchors.numpy()[mine]), paddle.to_tensor(SCALED[g]))
            assert got.mean_iou == pytest.approx(float(ious.numpy().mean()), rel=1e-5)
        expected, _ = positives_per_level(tal, g)
        assert result.stats['assigner'][g].positives == expected
    assert sum(result.stats['static_assigner'][0].positives.values()) > 0
    assert result.stats['assigner'][0].total == 13  # topk 13, the GT holds more anchor points


def test_tiny_gt_is_reported_without_positives(image_path, tmp_path, capsys):
    result = run(image_path, tmp_path)
    assert result.without_positives == {'static_assigner': [2], 'assigner': [2]}
    assert result.stats['assigner'][2].positives == {32: 0, 16: 0, 8: 0}
    out = capsys.readouterr().out
    assert 'GT without positives: static_assigner: #2; assigner: #2' in out
    assert "static_assigner with the positives' anchor boxes" in out
    assert "assigner with the positives' predicted boxes" in out


def test_registered_class_names_build_from_config_with_head_classes(image_path, tmp_path):
    result = run(image_path, tmp_path, '--assigners', 'ATSSAssigner', 'static_assigner',
                 'TaskAlignedAssigner', '-o', 'num_classes=6')
    atss, static, tal = (a.assigner for a in result.assignments)
    assert type(atss) is ATSSAssigner and atss.num_classes == 6 and atss.topk == 9
    assert static is not atss and type(tal) is TaskAlignedAssigner
    assert result.stats['ATSSAssigner'] == result.stats['static_assigner']
    png = cv2.imread(str(tmp_path / 'scene_assign.png'))
    assert png.shape[1] == 3 * 480


def test_coco_annotation_gives_the_same_gt(image_path, tmp_path):
    # categories 3 and 7 become classes 0 and 1; the crowd box and the empty box are left out
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
    from_anno = vis_assign.main(['-c', CONFIG, '--anno', str(anno_path), '--image_id', '12',
                                 '--image_dir', os.path.dirname(image_path), '--input_size', '160',
                                 '--output_dir', str(tmp_path)])
    from_gt = run(image_path, tmp_path, gt='40,30,200,180,1;2,3,6,6,0')
    np.testing.assert_array_equal(from_anno.sample.gt.classes, [1, 0])
    np.testing.assert_allclose(from_anno.sample.gt.boxes, SCALED[[0, 2]], rtol=1e-6)
    assert from_anno.stats == from_gt.stats


def test_weights_give_the_models_predictions(image_path, tmp_path, capsys):
    cfg = load_config(CONFIG, overrides={'width_mult': 0.25, 'eval_size': None},
                      make_current=False)
    paddle.seed(1)
    model = create(cfg.architecture, cfg)
    for conv in list(model.yolo_head.pred_cls) + list(model.yolo_head.pred_reg):
        conv.weight.set_value(paddle.randn(conv.weight.shape) * 0.01)
        conv.bias.set_value(paddle.randn(conv.bias.shape))
    save_weights(model, str(tmp_path / 'trained.pdparams'))
    result = run(image_path, tmp_path, '-o', 'width_mult=0.25',
                 f'weights={tmp_path / "trained.pdparams"}')
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
    assert 'predictions: model with weights' in capsys.readouterr().out


@pytest.mark.parametrize('change, message', [
    ({'--assigners': ['static_assigner', 'SimOTA']},
     "unknown assigner 'SimOTA'; available: PPYOLOEHead arguments static_assigner, assigner; "
     "registered classes "),
    ({'--assigners': ['SimOTA']}, 'TaskAlignedAssigner'),  # the classes are listed too
    ({'--gt': ['1,2,3,4']}, "malformed --gt entry '1,2,3,4': expected x1,y1,x2,y2,class_id"),
    ({'--gt': ['1,2,3,4,dog']}, "malformed --gt entry '1,2,3,4,dog'"),
    ({'--gt': ['10,10,5,20,1']}, "malformed --gt entry '10,10,5,20,1': needs x2 > x1 and y2 > y1"),
    ({'--gt': [';']}, 'malformed --gt'),
    ({'--gt': ['10,10,50,50,80']}, 'class id(s) [80] outside 0..79'),
    ({'--input_size': ['100']}, 'multiple of 32 (the coarsest fpn stride)'),
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


def test_unreadable_image_is_named(tmp_path, capsys):
    bad = tmp_path / 'not_an_image.jpg'
    bad.write_text('plain text')
    with pytest.raises(SystemExit):
        run(str(bad), tmp_path)
    assert f"cannot read image '{bad}'" in capsys.readouterr().err


def test_unknown_coco_image_id(tmp_path, capsys):
    anno_path = tmp_path / 'instances.json'
    anno_path.write_text(json.dumps({'images': [], 'categories': [], 'annotations': []}))
    with pytest.raises(SystemExit):
        vis_assign.main(['-c', CONFIG, '--anno', str(anno_path), '--image_id', '5'])
    assert f'image id 5 is not in {anno_path}' in capsys.readouterr().err
