"""PP-YOLOE head, its losses and multi-class NMS, checked against hand computations.

Parity with PaddleDetection's own PPYOLOEHead (every loss term, gradients, eval outputs and NMS,
identical to the last bit) is verified outside the test suite, which never imports ppdet.
"""

import math

import numpy as np
import pytest
import paddle

from ppdet_lite.core.workspace import create
from ppdet_lite.modeling.assigners import (AssignResult, ATSSAssigner, BaseAssigner,
                                           TaskAlignedAssigner, grid_priors)
from ppdet_lite.modeling.bbox_utils import bbox_giou
from ppdet_lite.modeling.heads import PPYOLOEHead
from ppdet_lite.modeling.layers.multiclass_nms import MultiClassNMS
from ppdet_lite.modeling.losses import (GIoULoss, dfl_targets, distribution_focal_loss,
                                        focal_loss, varifocal_loss)
from ppdet_lite.modeling.shape_spec import ShapeSpec

from conftest import reference_layout, state_layout

STRIDES = (32, 16, 8)


def t(x, dtype='float32'):
    return paddle.to_tensor(np.asarray(x, dtype=dtype))


def bce(p, q):
    return -(q * math.log(p) + (1 - q) * math.log(1 - p))


# ------------------------------------------------------------------------------------------------
# losses


def test_giou_loss_hand_computed():
    pbox = t([[0, 0, 2, 2],    # overlaps the target by a unit square
              [0, 0, 1, 1],    # disjoint from its target
              [4, 4, 6, 8]])   # equal to its target
    gbox = t([[1, 1, 3, 3],
              [2, 0, 3, 1],
              [4, 4, 6, 8]])
    # overlap 1, union 4 + 4 - 1 = 7, enclosing [0, 0, 3, 3] = 9: GIoU = 1/7 - (9 - 7)/9 = -5/63
    # overlap 0, union 1 + 1 = 2, enclosing [0, 0, 3, 1] = 3: GIoU = 0 - (3 - 2)/3 = -1/3
    expected_giou = [-5 / 63, -1 / 3, 1.0]
    giou, iou = bbox_giou(pbox, gbox)
    np.testing.assert_allclose(giou.numpy(), expected_giou, rtol=1e-6)
    np.testing.assert_allclose(iou.numpy(), [1 / 7, 0, 1], rtol=1e-6)

    loss = GIoULoss()(pbox, gbox)
    assert loss.shape == [3, 1]  # PaddleDetection's trailing 1, so [N, 1] weights multiply per box
    np.testing.assert_allclose(loss.numpy()[:, 0], [1 + 5 / 63, 1 + 1 / 3, 0], rtol=1e-6, atol=1e-7)
    total = sum(1 - g for g in expected_giou)
    np.testing.assert_allclose(GIoULoss(reduction='sum', loss_weight=2.)(pbox, gbox).numpy(),
                               2 * total, rtol=1e-6)
    np.testing.assert_allclose(GIoULoss(reduction='mean')(pbox, gbox).numpy(), total / 3, rtol=1e-6)


def test_varifocal_loss_hand_computed():
    # one anchor, two classes: assigned to class 0 with IoU-aware target q = 0.6
    p = t([[[0.8, 0.3]]])
    q = t([[[0.6, 0.0]]])
    label = t([[[1.0, 0.0]]])
    # positive: weight q = 0.6; negative: weight alpha * p^gamma = 0.75 * 0.3^2 = 0.0675
    expected = 0.6 * bce(0.8, 0.6) + 0.0675 * bce(0.3, 0.0)
    np.testing.assert_allclose(varifocal_loss(p, q, label).numpy(), expected, rtol=1e-5)
    # a positive anchor's other classes are negatives even where q > 0 (label decides)
    q2 = t([[[0.6, 0.2]]])
    expected2 = 0.6 * bce(0.8, 0.6) + 0.0675 * bce(0.3, 0.2)
    np.testing.assert_allclose(varifocal_loss(p, q2, label).numpy(), expected2, rtol=1e-5)


def test_focal_loss_hand_computed():
    p = t([[[0.8, 0.3]]])
    q = t([[[1.0, 0.0]]])
    # weight = (p - q)^2 * (alpha q + (1 - alpha)(1 - q)): 0.04 * 0.25 = 0.01 and 0.09 * 0.75 = 0.0675
    expected = 0.01 * bce(0.8, 1.0) + 0.0675 * bce(0.3, 0.0)
    np.testing.assert_allclose(focal_loss(p, q).numpy(), expected, rtol=1e-5)
    # alpha <= 0: no balance factor, weight = (p - q)^2 = 0.04 and 0.09
    expected = 0.04 * bce(0.8, 1.0) + 0.09 * bce(0.3, 0.0)
    np.testing.assert_allclose(focal_loss(p, q, alpha=-1).numpy(), expected, rtol=1e-5)


def test_distribution_focal_loss_between_two_bins():
    reg_max = 16
    # a distribution with P(bin 2) = 1/2, P(bin 3) = 1/4, the rest 1/4 spread over 15 bins
    prob = np.full(reg_max + 1, 0.25 / 15)
    prob[2], prob[3] = 0.5, 0.25
    logits = t(np.tile(np.log(prob), (1, 4, 1)))  # [1 box, 4 sides, 17 bins]
    target = t([[2.3, 2.3, 2.3, 2.3]])
    # target 2.3 lies between bins 2 and 3; each bin is weighted by the distance to the other:
    # (3 - 2.3) * CE(bin 2) + (2.3 - 2) * CE(bin 3) = 0.7 * ln 2 + 0.3 * ln 4
    expected = 0.7 * math.log(2) + 0.3 * math.log(4)
    loss = distribution_focal_loss(logits, target)
    assert loss.shape == [1, 1]
    np.testing.assert_allclose(loss.numpy(), [[expected]], rtol=1e-5)
    # on a bin exactly, the whole weight goes to it: -ln P(bin 2) = ln 2
    np.testing.assert_allclose(distribution_focal_loss(logits, t([[2., 2., 2., 2.]])).numpy(),
                               [[math.log(2)]], rtol=1e-5)


def test_dfl_targets_stay_below_last_bin():
    point = t([[10., 10.]])
    box = t([[7.5, 9., 40., 10.]])  # sides 2.5, 1, 30 (too long), 0, in strides
    targets = dfl_targets(point, box, reg_max=16).numpy()
    # 30 is clipped to 16 - 0.01 so that floor + 1 = 16 is still a bin
    np.testing.assert_allclose(targets, [[2.5, 1., 15.99, 0.]], rtol=1e-6)


# ------------------------------------------------------------------------------------------------
# multi-class NMS


def test_multiclass_nms_hand_made_case():
    boxes = t([[[0, 0, 10, 10],      # b0
                [1, 1, 11, 11],      # b1: IoU(b0, b1) = 81 / (100 + 100 - 81) = 0.68 > 0.5
                [50, 50, 60, 60]]])  # b2: far from both
    scores = t([[[0.9, 0.8, 0.01],    # class 0: b1 suppressed by b0 (same class), b2 below 0.05
                 [0.02, 0.7, 0.6]]])  # class 1: b1 kept though it overlaps class 0's b0; b0 dropped
    bbox, bbox_num, index = MultiClassNMS(return_index=True)(boxes, scores)
    np.testing.assert_allclose(bbox.numpy(), [[0, 0.9, 0, 0, 10, 10],
                                              [1, 0.7, 1, 1, 11, 11],
                                              [1, 0.6, 50, 50, 60, 60]], rtol=1e-6)
    assert bbox_num.dtype == paddle.int32 and bbox_num.numpy().tolist() == [3]
    assert index.numpy().ravel().tolist() == [0, 1, 2]
    # keep_top_k keeps the best per image; batches concatenate with per-image counts
    bbox, bbox_num, index = MultiClassNMS(keep_top_k=2)(paddle.concat([boxes, boxes]),
                                                        paddle.concat([scores, scores]))
    assert bbox_num.numpy().tolist() == [2, 2] and index is None
    np.testing.assert_allclose(bbox.numpy()[:, 1], [0.9, 0.7, 0.9, 0.7], rtol=1e-6)
    # with a looser IoU threshold (0.9 > 0.68) class 0 keeps b1 too
    bbox, _, _ = MultiClassNMS(nms_threshold=0.9)(boxes, scores)
    np.testing.assert_allclose(bbox.numpy()[:, :2], [[0, 0.9], [0, 0.8], [1, 0.7], [1, 0.6]],
                               rtol=1e-6)


# ------------------------------------------------------------------------------------------------
# head


def make_feats(batch=2, channels=(16, 12, 8), size=(96, 128), seed=0):
    rng = np.random.RandomState(seed)
    return [t(rng.randn(batch, c, size[0] // s, size[1] // s)) for c, s in zip(channels, STRIDES)]


def make_head(num_classes=3, channels=(16, 12, 8), **kwargs):
    kwargs.setdefault('nms', MultiClassNMS())
    kwargs.setdefault('static_assigner', None)
    kwargs.setdefault('assigner', None)
    return PPYOLOEHead(in_channels=list(channels), num_classes=num_classes, **kwargs)


def randomise(head, seed=0):
    """Random weights and BN statistics (positive variances); the projection stays fixed."""
    rng = np.random.RandomState(seed)
    for name, p in head.state_dict().items():
        if name.endswith('_variance'):
            p.set_value(rng.uniform(0.5, 1.5, p.shape).astype('float32'))
        elif name != 'proj_conv.weight':
            p.set_value(rng.randn(*p.shape).astype('float32') * 0.1)


def test_state_dict_matches_paddledetection_reference():
    head = make_head(num_classes=80, channels=(384, 192, 96))
    assert state_layout(head, 'yolo_head.') == reference_layout('s', 'yolo_head.')


def test_initial_predictions_and_fixed_projection():
    head = make_head()
    head.eval()
    scores, dist, points, strides = head(make_feats())
    L = 3 * 4 + 6 * 8 + 12 * 16  # 96 x 128 input at strides 32, 16, 8
    assert scores.shape == [2, 3, L] and dist.shape == [2, L, 4]
    assert points.shape == [L, 2] and strides.shape == [L, 1]
    assert all(x.dtype == paddle.float32 for x in (scores, dist, points, strides))
    # prediction weights start at zero: every score is sigmoid(bias) = 0.01 (the prior), and every
    # side is the mean of a uniform distribution over bins 0..16, i.e. 8 strides
    np.testing.assert_allclose(scores.numpy(), 0.01, rtol=1e-5)
    np.testing.assert_allclose(dist.numpy(), 8.0, rtol=1e-5)
    np.testing.assert_array_equal(head.proj_conv.weight.numpy().ravel(), np.arange(17))
    assert head.proj_conv.weight.stop_gradient
    # cell centres in strides, level by level, row-major; strides per anchor
    np.testing.assert_array_equal(points.numpy()[:5], [[.5, .5], [1.5, .5], [2.5, .5], [3.5, .5],
                                                       [.5, 1.5]])
    np.testing.assert_array_equal(points.numpy()[12], [.5, .5])
    np.testing.assert_array_equal(strides.numpy()[[0, 11, 12, 59, 60, L - 1], 0],
                                  [32, 32, 16, 16, 8, 8])


def test_eval_size_precomputes_the_same_anchors():
    feats = make_feats()
    head = make_head(eval_size=[96, 128])
    head.eval()
    _, _, points, strides = head(feats)
    plain = make_head()
    plain.eval()
    _, _, points2, strides2 = plain(feats)
    np.testing.assert_array_equal(points.numpy(), points2.numpy())
    np.testing.assert_array_equal(strides.numpy(), strides2.numpy())


def test_post_process_exclude_nms_scales_to_original_pixels():
    head = make_head(exclude_nms=True)
    head.eval()
    outs = head(make_feats())
    scale_factor = t([[0.5, 2.0], [1.0, 1.0]])  # (y, x) network input / original
    boxes, scores = head.post_process(outs, scale_factor)
    assert boxes.shape == [2, 252, 4] and scores.shape == [2, 3, 252]
    # first anchor: centre (0.5, 0.5) strides, sides 8 strides, stride 32:
    # [-7.5, -7.5, 8.5, 8.5] * 32 = [-240, -240, 272, 272] px; x / 2, y / 0.5 in image 0
    np.testing.assert_allclose(boxes.numpy()[0, 0], [-120, -480, 136, 544], rtol=1e-5)
    np.testing.assert_allclose(boxes.numpy()[1, 0], [-240, -240, 272, 272], rtol=1e-5)


def test_post_process_with_nms_equals_nms_of_raw_outputs():
    head = make_head(nms=MultiClassNMS(score_threshold=0.3, keep_top_k=20))
    randomise(head)
    head.eval()
    outs = head(make_feats())
    scale_factor = t([[0.5, 2.0], [1.0, 1.0]])
    bbox, bbox_num = head.post_process(outs, scale_factor)
    assert bbox.ndim == 2 and bbox.shape[1] == 6
    assert bbox_num.dtype == paddle.int32 and bbox_num.shape == [2]
    assert int(bbox_num.sum()) == bbox.shape[0] > 0
    head.exclude_nms = True
    boxes, scores = head.post_process(outs, scale_factor)
    expected, expected_num, _ = MultiClassNMS(score_threshold=0.3, keep_top_k=20)(boxes, scores)
    np.testing.assert_array_equal(bbox.numpy(), expected.numpy())
    np.testing.assert_array_equal(bbox_num.numpy(), expected_num.numpy())


def test_exclude_post_process_returns_network_input_boxes_and_scores():
    head = make_head(exclude_post_process=True)
    head.eval()
    out, none = head.post_process(head(make_feats()), t([[0.5, 2.0], [1.0, 1.0]]))
    assert none is None and out.shape == [2, 252, 4 + 3]
    np.testing.assert_allclose(out.numpy()[0, 0], [-240, -240, 272, 272, .01, .01, .01], rtol=1e-5)


def test_head_from_config_and_trt_nms():
    cfg = {'num_classes': 4, 'trt': True,
           'PPYOLOEHead': {'static_assigner': None, 'assigner': None, 'nms': 'MultiClassNMS'},
           'MultiClassNMS': {'keep_top_k': 50}}
    head = create('PPYOLOEHead', cfg=cfg,
                  input_shape=[ShapeSpec(channels=c, stride=s) for c, s in zip((16, 12, 8), STRIDES)])
    assert head.in_channels == [16, 12, 8] and head.num_classes == 4
    assert isinstance(head.nms, MultiClassNMS) and head.nms.keep_top_k == 50 and head.nms.trt


# ------------------------------------------------------------------------------------------------
# training loss


class FixedAssigner(BaseAssigner):
    """Stands in for an assigner: returns a prescribed assignment and records its inputs.

    ``labels [1, L]`` (C for background), ``bboxes [1, L, 4]`` pixels, ``scores [1, L, C]``;
    ``ignored`` lists priors to mark ignored (gt_index -2, label C, zero scores)."""

    def __init__(self, labels, bboxes, scores, ignored=(), needs_preds=False):
        super().__init__(num_classes=np.asarray(scores).shape[-1])
        self.needs_preds = needs_preds
        labels = np.asarray(labels)
        gt_index = np.where(labels == self.num_classes, -1, 0)
        gt_index[:, list(ignored)] = -2
        self.result = AssignResult(t(labels, 'int32'), t(bboxes), t(scores), t(gt_index, 'int64'),
                                   t(gt_index == -2, 'bool'))
        self.calls = []

    def assign(self, priors, gts, preds=None):
        self.calls.append((priors, gts, preds))
        return self.result


def one_positive_assignment(L, C, anchor, cls, box, q):
    labels = np.full([1, L], C)
    bboxes = np.zeros([1, L, 4])
    scores = np.zeros([1, L, C])
    labels[0, anchor], bboxes[0, anchor], scores[0, anchor, cls] = cls, box, q
    return labels, bboxes, scores


def gt_targets(epoch_id):
    return {'gt_class': t([[[1]]], 'int32'), 'gt_bbox': t([[[40, 8, 88, 56]]]),
            'pad_gt_mask': t([[[1.]]]), 'epoch_id': epoch_id}


def test_training_loss_terms_hand_computed():
    """Initial head (scores 0.01, sides 8 strides) with one positive of target score 0.5."""
    C, L = 3, 252
    anchor = 14  # level 2 (stride 16, 8 columns): anchor 14 - 12 = 2 -> cell (2, 0)
    box = [40., 8., 88., 56.]  # pixels; in strides [2.5, 0.5, 5.5, 3.5] around centre (2.5, 0.5)
    q = 0.5
    static = FixedAssigner(*one_positive_assignment(L, C, anchor, 1, box, q))
    dynamic = FixedAssigner(*one_positive_assignment(L, C, anchor, 1, box, 0.8), needs_preds=True)
    head = make_head(num_classes=C, static_assigner=static, assigner=dynamic,
                     static_assigner_epoch=4)
    head.train()
    losses = head(make_feats(batch=1), gt_targets(epoch_id=0))
    assert len(static.calls) == 1 and not dynamic.calls
    priors, gts, preds = static.calls[0]
    # the priors of a 96 x 128 input: levels 3 x 4, 6 x 8, 12 x 16 at strides 32, 16, 8
    assert priors.num_anchors_list == [12, 48, 192]
    assert [tuple(s) for s in priors.level_shapes] == [(3, 4), (6, 8), (12, 16)]
    np.testing.assert_array_equal(priors.points.numpy()[anchor], [40, 8])  # (2.5, 0.5) * 16
    np.testing.assert_array_equal(priors.boxes.numpy()[anchor], [0, -32, 80, 48])  # +- 2.5 * 16
    np.testing.assert_array_equal(priors.strides.numpy()[[11, 12, 59, 60]], [32, 16, 16, 8])
    np.testing.assert_array_equal(gts.bboxes.numpy(), [[box]])
    # the same priors as assigners.grid_priors gives tools (e.g. vis_assign) for this input
    reference = grid_priors([(3, 4), (6, 8), (12, 16)], STRIDES)
    for name in ('points', 'boxes', 'strides'):
        np.testing.assert_array_equal(getattr(priors, name).numpy(),
                                      getattr(reference, name).numpy(), err_msg=name)
    # static_target 'pred_iou' (the default): the static phase gets the predictions too
    assert preds.scores.shape == [1, L, C] and preds.bboxes.shape == [1, L, 4]
    assert preds.scores.stop_gradient and preds.bboxes.stop_gradient

    # normaliser: sum of assigned scores 0.5, clipped to 1
    norm = max(q, 1.)
    # VFL: the positive entry weighs q, the L * C - 1 others alpha * 0.01^2
    neg = 0.75 * 0.01 ** 2 * bce(0.01, 0.)
    cls = (q * bce(0.01, q) + (L * C - 1) * neg) / norm
    # predicted box: centre (2.5, 0.5) +- 8 strides = [-5.5, -7.5, 10.5, 8.5]; target
    # [2.5, 0.5, 5.5, 3.5]: inside it, so IoU = 9 / 256 = GIoU (the enclosing box is the prediction)
    giou = 9 / 256
    iou_loss = (1 - giou) * q / norm
    # uniform distributions: CE = ln 17 for every bin, whatever the target
    dfl = math.log(17) * q / norm
    l1 = (8 + 8 + 5 + 5) / 4  # |-5.5 - 2.5|, |-7.5 - 0.5|, |10.5 - 5.5|, |8.5 - 3.5|
    expected = {'loss_cls': cls, 'loss_iou': iou_loss, 'loss_dfl': dfl, 'loss_l1': l1,
                'loss': cls + 2.5 * iou_loss + 0.5 * dfl}
    assert set(losses) == set(expected)
    for k, v in expected.items():
        np.testing.assert_allclose(float(losses[k]), v, rtol=1e-4, err_msg=k)

    # from static_assigner_epoch on, the other slot gets the scores and pixel boxes
    losses = head(make_feats(batch=1), gt_targets(epoch_id=4))
    assert len(static.calls) == 1 and len(dynamic.calls) == 1
    _, _, preds = dynamic.calls[0]
    np.testing.assert_allclose(preds.scores.numpy(), 0.01, rtol=1e-5)
    # the box at anchor (2.5, 0.5) * 16 px: [-5.5, -7.5, 10.5, 8.5] * 16
    np.testing.assert_allclose(preds.bboxes.numpy()[0, anchor], [-88, -120, 168, 136], rtol=1e-5)
    np.testing.assert_allclose(float(losses['loss_iou']), (1 - giou) * 0.8 / 1., rtol=1e-4)


def test_ignored_priors_leave_the_classification_loss_and_the_normaliser():
    """Every score p = 0.5 (zero class bias), so BCE(p, q) = ln 2 for any target q; one positive
    (q = 0.8) and 10 ignored priors (30 class entries) among L = 252 priors of C = 3 classes."""
    C, L, q = 3, 252, 0.8
    labels, bboxes, scores = one_positive_assignment(L, C, 14, 1, [40., 8., 88., 56.], q)
    ignored = list(range(100, 110))
    ln2 = math.log(2)
    # VFL: positive q ln 2; negative 0.75 p^2 ln 2.
    # focal, alpha 0.25 in the static phase, weight (p - q)^2 (a q + (1 - a)(1 - q)):
    # positive 0.3^2 * (0.2 + 0.15) ln 2; negative p^2 * 0.75 ln 2 (VFL's, by coincidence).
    negative = 0.75 * 0.25 * ln2
    for use_vfl, positive in ((True, q * ln2), (False, 0.09 * 0.35 * ln2)):
        out = {}
        for name, skip in (('plain', []), ('ignoring', ignored)):
            head = make_head(num_classes=C, use_varifocal_loss=use_vfl,
                             static_assigner=FixedAssigner(labels, bboxes, scores, ignored=skip))
            for conv in head.pred_cls:
                conv.bias.set_value(paddle.zeros_like(conv.bias))
            head.train()
            out[name] = head(make_feats(batch=1), gt_targets(epoch_id=0))
        # the normaliser is max(0.8, 1) = 1 either way: ignored priors have zero targets
        np.testing.assert_allclose(float(out['plain']['loss_cls']),
                                   positive + (L * C - 1) * negative, rtol=1e-5)
        np.testing.assert_allclose(float(out['ignoring']['loss_cls']),
                                   positive + (L * C - 1 - 10 * C) * negative, rtol=1e-5)
        # the box terms read the positive only: the same with and without the ignored priors
        for key in ('loss_iou', 'loss_dfl', 'loss_l1'):
            assert float(out['plain'][key]) == float(out['ignoring'][key]) > 0


def test_ignored_priors_get_no_gradient():
    C, L = 3, 252
    labels, bboxes, scores = one_positive_assignment(L, C, 14, 1, [40., 8., 88., 56.], 0.5)
    ignored = list(range(60, 252))  # the whole stride-8 level (anchors 60..251)
    head = make_head(num_classes=C,
                     static_assigner=FixedAssigner(labels, bboxes, scores, ignored=ignored))
    randomise(head)
    head.train()
    head(make_feats(batch=1), gt_targets(epoch_id=0))['loss_cls'].backward()
    # the stride-8 classifier sees only ignored priors; the stride-32 one background priors
    assert float(head.pred_cls[2].weight.grad.abs().sum()) == 0
    assert float(head.pred_cls[0].weight.grad.abs().sum()) > 0


def test_training_loss_without_positives():
    C, L = 3, 252
    empty = FixedAssigner(np.full([1, L], C), np.zeros([1, L, 4]), np.zeros([1, L, C]))
    head = make_head(num_classes=C, static_assigner=empty, assigner=empty)
    head.train()
    losses = head(make_feats(batch=1), gt_targets(epoch_id=0))
    assert float(losses['loss_iou']) == 0 and float(losses['loss_dfl']) == 0
    assert float(losses['loss_l1']) == 0
    # only negatives, normaliser clipped to 1
    np.testing.assert_allclose(float(losses['loss_cls']), L * C * 0.75 * 0.01 ** 2 * bce(0.01, 0.),
                               rtol=1e-4)
    losses['loss'].backward()  # the regression branch stays in the graph (zero gradient)
    assert head.pred_reg[0].weight.grad is not None


def test_training_with_assigners_atss_then_tal():
    C = 3
    head = make_head(num_classes=C, static_assigner=ATSSAssigner(num_classes=C),
                     assigner=TaskAlignedAssigner(num_classes=C), static_assigner_epoch=4)
    randomise(head)
    head.train()
    feats = make_feats(batch=2)
    targets = {'gt_class': t([[[1], [2]], [[0], [0]]], 'int32'),
               'gt_bbox': t([[[10, 12, 60, 70], [50, 40, 120, 90]], [[30, 30, 90, 80], [0, 0, 0, 0]]]),
               'pad_gt_mask': t([[[1.], [1.]], [[1.], [0.]]])}
    for epoch in (0, 4):
        losses = head(feats, dict(targets, epoch_id=epoch))
        assert set(losses) == {'loss', 'loss_cls', 'loss_iou', 'loss_dfl', 'loss_l1'}
        assert all(np.isfinite(float(v)) for v in losses.values())
        assert float(losses['loss_iou']) > 0 and float(losses['loss_dfl']) > 0
        losses['loss'].backward()
        head.clear_gradients()
    # images without any GT: all padding, and no GT slot at all
    for gt_class, gt_bbox, pad in ((targets['gt_class'], targets['gt_bbox'], paddle.zeros([2, 2, 1])),
                                   (paddle.zeros([2, 0, 1], 'int32'), paddle.zeros([2, 0, 4]),
                                    paddle.zeros([2, 0, 1]))):
        for epoch in (0, 4):
            losses = head(feats, {'gt_class': gt_class, 'gt_bbox': gt_bbox, 'pad_gt_mask': pad,
                                  'epoch_id': epoch})
            assert float(losses['loss_iou']) == 0 and float(losses['loss_dfl']) == 0
            assert np.isfinite(float(losses['loss_cls'])) and float(losses['loss_cls']) > 0


class Recording(object):
    """Wraps an assigner, recording what it was given and what it returned."""

    def __init__(self, assigner):
        self.assigner, self.calls = assigner, []
        self.needs_preds, self.num_classes = assigner.needs_preds, assigner.num_classes

    def assign(self, priors, gts, preds=None):
        result = self.assigner.assign(priors, gts, preds)
        self.calls.append((preds, result))
        return result


def test_static_target_hard_gives_every_static_positive_target_one():
    # PaddleDetection's static phase ('pred_iou') scores an ATSS positive by IoU(predicted box,
    # GT); 'hard' withholds the predictions, so the GT score (1.0) is the target.
    C = 3
    feats = make_feats(batch=1)
    targets = {'gt_class': t([[[1]]], 'int32'), 'gt_bbox': t([[[10, 12, 60, 70]]]),
               'pad_gt_mask': t([[[1.]]]), 'epoch_id': 0}
    scores = {}
    for mode in ('pred_iou', 'hard'):
        atss = Recording(ATSSAssigner(num_classes=C))
        head = make_head(num_classes=C, static_assigner=atss, static_target=mode)
        randomise(head)
        head.train()
        head(feats, dict(targets))
        preds, result = atss.calls[0]
        assert (preds is None) == (mode == 'hard')
        positive = result.assigned_labels.numpy()[0] == 1
        assert positive.sum() > 0
        scores[mode] = result.assigned_scores.numpy()[0][positive, 1]
    np.testing.assert_array_equal(scores['hard'], np.ones_like(scores['hard']))
    assert (scores['pred_iou'] < 1).all()  # IoUs of random boxes
    with pytest.raises(ValueError, match="static_target must be one of 'pred_iou', 'hard'"):
        make_head(num_classes=C, static_target='soft')


def test_static_target_hard_still_gives_predictions_to_an_assigner_that_needs_them():
    # TAL in the static slot under 'hard': it cannot choose without predictions, so it gets them
    # and keeps its own (normalised alignment) targets, which are below 1 for random predictions.
    C = 3
    tal = Recording(TaskAlignedAssigner(num_classes=C))
    head = make_head(num_classes=C, static_assigner=tal, static_target='hard',
                     static_assigner_epoch=4)
    randomise(head)
    head.train()
    head(make_feats(batch=1), {'gt_class': t([[[1]]], 'int32'),
                               'gt_bbox': t([[[10, 12, 60, 70]]]), 'pad_gt_mask': t([[[1.]]]),
                               'epoch_id': 0})
    preds, result = tal.calls[0]
    assert preds is not None
    positive = result.assigned_labels.numpy()[0] == 1
    assert positive.sum() > 0 and (result.assigned_scores.numpy()[0][positive, 1] < 1).all()


def test_the_loss_makes_one_host_synchronisation(monkeypatch):
    # The positives' count (paddle.nonzero) is the loss's only device-to-host copy; the assigner
    # (here a fixed one) has its own. Before: a Python `if` on a tensor and five masked_selects.
    C, L = 3, 252
    static = FixedAssigner(*one_positive_assignment(L, C, 14, 1, [40., 8., 88., 56.], 0.5))
    head = make_head(num_classes=C, static_assigner=static)
    head.train()
    feats = make_feats(batch=1)
    calls = []

    def counting(name, original):
        def wrapper(*args, **kwargs):
            calls.append(name)
            return original(*args, **kwargs)
        return wrapper

    for name in ('numpy', 'item', 'tolist', '__bool__', '__int__', '__float__', '__index__'):
        monkeypatch.setattr(paddle.Tensor, name, counting(name, getattr(paddle.Tensor, name)))
    for name in ('nonzero', 'masked_select'):
        monkeypatch.setattr(paddle, name, counting(name, getattr(paddle, name)))
    head(feats, gt_targets(epoch_id=0))
    assert calls == ['nonzero']
