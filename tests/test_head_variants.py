"""PPYOLOEHead / CustomCSPPAN / MultiClassNMS options that the default PP-YOLOE configs do not use:
focal loss instead of VFL, ``use_shared_conv=False``, ``attn_conv`` 'repvgg' and None, the neck's
DropBlock, and NMS with ``normalized=False``."""

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from ppdet_lite.modeling.assigners import ATSSAssigner, TaskAlignedAssigner
from ppdet_lite.modeling.heads.ppyoloe_head import ESEAttn
from ppdet_lite.modeling.layers import RepVggBlock
from ppdet_lite.modeling.layers.multiclass_nms import MultiClassNMS
from ppdet_lite.modeling.losses import PPYOLOELoss, focal_loss, varifocal_loss
from ppdet_lite.modeling.necks import CustomCSPPAN

from test_head_losses import FixedAssigner, make_feats, make_head, randomise, t

C, L = 3, 252  # 96 x 128 input at strides 32, 16, 8: 12 + 48 + 192 anchors


def eval_outputs(head, feats):
    head.eval()
    return [x.numpy() for x in head(feats)]


def assert_outputs_close(a, b, rtol=1e-5, atol=1e-6):
    for name, x, y in zip(['scores', 'distances', 'points', 'strides'], a, b):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol, err_msg=name)


def real_targets(epoch_id):
    return {'gt_class': t([[[1], [2]], [[0], [0]]], 'int32'),
            'gt_bbox': t([[[10, 12, 60, 70], [50, 40, 120, 90]], [[30, 30, 90, 80], [0, 0, 0, 0]]]),
            'pad_gt_mask': t([[[1.], [1.]], [[1.], [0.]]]), 'epoch_id': epoch_id}


def with_assigners(**kwargs):
    return make_head(num_classes=C, static_assigner=ATSSAssigner(num_classes=C),
                     assigner=TaskAlignedAssigner(num_classes=C), static_assigner_epoch=4,
                     **kwargs)


def assert_trains(head, feats):
    head.train()
    for epoch in (0, 4):
        losses = head(feats, real_targets(epoch))
        assert all(np.isfinite(float(v)) for v in losses.values())
        assert float(losses['loss_iou']) > 0
        losses['loss'].backward()
        head.clear_gradients()


# ------------------------------------------------------------------------------------------------
# focal loss (use_varifocal_loss=False)


def soft_assignment(anchors, classes, scores):
    """One image: the listed anchors positive with soft target scores, boxes around them."""
    labels = np.full([1, L], C)
    bboxes = np.zeros([1, L, 4])
    target = np.zeros([1, L, C])
    for a, c, q in zip(anchors, classes, scores):
        labels[0, a], target[0, a, c] = c, q
        bboxes[0, a] = [8, 8, 72, 56]
    return labels, bboxes, target


def numpy_focal(p, q, alpha, gamma=2.0):
    """Focal loss with soft targets in float64: (p - q)^g * (alpha q + (1 - alpha)(1 - q)) * BCE,
    the balance factor dropped for alpha <= 0."""
    p, q = p.astype('float64'), q.astype('float64')
    weight = np.abs(p - q) ** gamma
    if alpha > 0:
        weight = weight * (alpha * q + (1 - alpha) * (1 - q))
    return (weight * -(q * np.log(p) + (1 - q) * np.log(1 - p))).sum()


class Spy(object):
    """Wraps the head's loss to record its inputs (the predicted scores among them)."""

    def __init__(self, loss):
        self.loss, self.head_outs = loss, []

    def __call__(self, head_outs, *args):
        self.head_outs.append(head_outs)
        return self.loss(head_outs, *args)


@pytest.mark.parametrize('alphas', [None, (0.4, 0.1)], ids=['ppdet-defaults', 'from-config'])
def test_focal_loss_alpha_follows_the_phase(alphas):
    # PaddleDetection: alpha 0.25 in the static epochs, none (-1) after; PPYOLOELoss's
    # static_focal_alpha and focal_alpha set them. Both slots hold the same kind of (fixed)
    # assigner: the alpha belongs to the phase, not to the assigner class.
    # The static epochs: four positives, score sum 0.5 + 0.9 + 0.3 + 1.0 = 2.7 (> 1, so the
    # normaliser is the sum itself); the later epochs: other priors and scores, sum 0.8 + 0.6 = 1.4
    static_alpha, alpha = (0.25, -1) if alphas is None else alphas
    loss = None if alphas is None else PPYOLOELoss(num_classes=C, static_focal_alpha=alphas[0],
                                                   focal_alpha=alphas[1])
    static_q = soft_assignment([14, 30, 100, 200], [1, 0, 2, 1], [0.5, 0.9, 0.3, 1.0])
    dynamic_q = soft_assignment([15, 101], [2, 0], [0.8, 0.6])
    head = make_head(num_classes=C, static_assigner=FixedAssigner(*static_q),
                     assigner=FixedAssigner(*dynamic_q), static_assigner_epoch=4,
                     use_varifocal_loss=False, loss=loss)
    randomise(head)
    head.loss = spy = Spy(head.loss)
    head.train()
    feats = make_feats(batch=1)
    for epoch, (_, _, q), a, other, norm in [(0, static_q, static_alpha, alpha, 2.7),
                                             (3, static_q, static_alpha, alpha, 2.7),
                                             (4, dynamic_q, alpha, static_alpha, 1.4),
                                             (150, dynamic_q, alpha, static_alpha, 1.4)]:
        losses = head(feats, {'gt_class': t([[[1]]], 'int32'), 'gt_bbox': t([[[8, 8, 72, 56]]]),
                              'pad_gt_mask': t([[[1.]]]), 'epoch_id': epoch})
        pred_scores = spy.head_outs[-1][0]
        assert pred_scores.shape == [1, L, C]
        q_tensor = t(q)
        expected = float(focal_loss(pred_scores, q_tensor, alpha=a)) / norm
        np.testing.assert_allclose(float(losses['loss_cls']), expected, rtol=1e-5,
                                   err_msg=f'epoch {epoch}')
        np.testing.assert_allclose(float(losses['loss_cls']),
                                   numpy_focal(pred_scores.numpy(), q, a) / norm, rtol=1e-4)
        # the other phase's alpha, and VFL, give clearly different values
        other = float(focal_loss(pred_scores, q_tensor, alpha=other)) / norm
        one_hot = t((q > 0).astype('float32'))
        vfl = float(varifocal_loss(pred_scores, q_tensor, one_hot)) / norm
        for wrong in (other, vfl):
            assert abs(float(losses['loss_cls']) - wrong) > 1e-3 * abs(wrong)
        np.testing.assert_allclose(
            float(losses['loss']), float(losses['loss_cls']) + 2.5 * float(losses['loss_iou']) +
            0.5 * float(losses['loss_dfl']), rtol=1e-5)


def test_focal_loss_head_trains_with_real_assigners():
    head = with_assigners(use_varifocal_loss=False)
    randomise(head)
    assert_trains(head, make_feats(batch=2))


# ------------------------------------------------------------------------------------------------
# use_shared_conv


def test_use_shared_conv_false_gives_the_same_eval_outputs():
    shared = make_head(use_shared_conv=True, nms=MultiClassNMS(score_threshold=0.3))
    randomise(shared)
    separate = make_head(use_shared_conv=False, nms=MultiClassNMS(score_threshold=0.3))
    separate.set_state_dict(shared.state_dict())
    assert list(separate.state_dict()) == list(shared.state_dict())
    feats = make_feats()
    a, b = eval_outputs(shared, feats), eval_outputs(separate, feats)
    assert a[1].shape == b[1].shape == (2, L, 4)
    assert_outputs_close(a, b)
    scale_factor = t([[0.5, 2.0], [1.0, 1.0]])
    bbox_a, num_a = shared.post_process(shared(feats), scale_factor)
    bbox_b, num_b = separate.post_process(separate(feats), scale_factor)
    assert int(num_a.sum()) > 0
    np.testing.assert_array_equal(num_a.numpy(), num_b.numpy())
    np.testing.assert_allclose(bbox_a.numpy(), bbox_b.numpy(), rtol=1e-5, atol=1e-4)


# ------------------------------------------------------------------------------------------------
# attn_conv


def test_attn_conv_repvgg_builds_runs_and_converts_to_deploy():
    head = with_assigners(attn_conv='repvgg')
    keys = list(head.state_dict())
    assert 'stem_cls.0.conv.conv1.conv.weight' in keys
    assert 'stem_reg.2.conv.conv2.bn._variance' in keys
    blocks = [m for m in head.sublayers() if isinstance(m, RepVggBlock)]
    assert len(blocks) == 6  # stem_cls and stem_reg of 3 levels
    randomise(head)
    feats = make_feats()
    assert_trains(head, feats)
    before = eval_outputs(head, feats)
    assert before[0].shape == (2, C, L) and np.isfinite(before[1]).all()
    for block in blocks:
        block.convert_to_deploy()
    assert 'stem_cls.0.conv.conv.weight' in head.state_dict()
    assert not any('conv1' in k for k in head.state_dict())
    assert_outputs_close(before, eval_outputs(head, feats))


def test_attn_conv_none_is_the_gate_alone():
    head = with_assigners(attn_conv=None)
    assert not any(k.startswith('stem_cls.0.conv') for k in head.state_dict())
    assert all(stem.conv is None for stem in list(head.stem_cls) + list(head.stem_reg))
    randomise(head)
    feats = make_feats()
    assert_trains(head, feats)
    scores, dist, _, _ = eval_outputs(head, feats)
    assert scores.shape == (2, C, L) and dist.shape == (2, L, 4) and np.isfinite(dist).all()
    # ESEAttn(None): feat * sigmoid(fc(mean over H, W))
    stem = head.stem_cls[0]
    x = feats[0]
    avg = x.mean(axis=[2, 3], keepdim=True)
    np.testing.assert_allclose(stem(x, avg).numpy(), (x * F.sigmoid(stem.fc(avg))).numpy(),
                               rtol=1e-6)


def test_attn_conv_unknown_is_an_error():
    with pytest.raises(ValueError, match='attn_conv'):
        ESEAttn(8, attn_conv='conv3x3')


# ------------------------------------------------------------------------------------------------
# CustomCSPPAN drop_block


def neck_inputs(seed=0):
    rng = np.random.RandomState(seed)
    return [t(rng.randn(2, c, s, s)) for c, s in [(8, 16), (16, 8), (32, 4)]]  # fine to coarse


def make_neck(**kwargs):
    return CustomCSPPAN(in_channels=[8, 16, 32], out_channels=[32, 16, 8], act='swish', spp=True,
                        block_num=1, **kwargs)


def test_neck_drop_block_train_runs_and_eval_is_unchanged():
    plain = make_neck()
    randomise(plain)
    dropping = make_neck(drop_block=True, block_size=3, keep_prob=0.5)
    assert list(dropping.state_dict()) == list(plain.state_dict())  # DropBlock has no weights
    dropping.set_state_dict(plain.state_dict())
    drops = [name for name, _ in dropping.named_sublayers() if name.endswith('.drop')]
    assert len(drops) == 5  # every FPN and PAN stage: 3 + 2
    feats = neck_inputs()

    plain.eval()
    dropping.eval()
    for a, b in zip(plain(feats), dropping(feats)):
        np.testing.assert_array_equal(a.numpy(), b.numpy())

    plain.train()
    dropping.train()
    paddle.seed(0)
    out = dropping(feats)
    assert [o.shape for o in out] == [[2, 32, 4, 4], [2, 16, 8, 8], [2, 8, 16, 16]]
    assert all(np.isfinite(o.numpy()).all() for o in out)
    sum(o.mean() for o in out).backward()  # gradients flow through the masks
    assert dropping.fpn_stages[0][0].conv1.conv.weight.grad is not None
    reference = plain(feats)
    assert any(not np.allclose(a.numpy(), b.numpy()) for a, b in zip(out, reference))


# ------------------------------------------------------------------------------------------------
# MultiClassNMS normalized=False: box sizes are pixel-inclusive, (x2 - x1 + 1) * (y2 - y1 + 1)


def nms_kept(boxes, nms_threshold, normalized):
    scores = t([[[0.9, 0.8]]])  # one class, b0 first
    bbox, bbox_num, _ = MultiClassNMS(nms_threshold=nms_threshold, normalized=normalized)(
        t([boxes]), scores)
    assert int(bbox_num[0]) == bbox.shape[0]
    return bbox.numpy()[:, 1].tolist()


def test_nms_normalized_false_adds_one_pixel_to_sides():
    # b0 [0, 0, 10, 10], b1 [0, 0, 10, 11]:
    #   normalized: overlap 10 * 10 = 100, areas 100 and 110: IoU 100 / 110 = 0.9091
    #   pixels:     overlap 11 * 11 = 121, areas 121 and 132: IoU 121 / 132 = 0.9167
    # at nms_threshold 0.912 b1 survives only with normalized boxes
    boxes = [[0, 0, 10, 10], [0, 0, 10, 11]]
    assert nms_kept(boxes, 0.912, normalized=True) == pytest.approx([0.9, 0.8])
    assert nms_kept(boxes, 0.912, normalized=False) == pytest.approx([0.9])
    # both suppress b1 at 0.9 and keep it at 0.95
    for normalized in (True, False):
        assert nms_kept(boxes, 0.9, normalized) == pytest.approx([0.9])
        assert nms_kept(boxes, 0.95, normalized) == pytest.approx([0.9, 0.8])


def test_nms_normalized_false_small_and_touching_boxes():
    # b0 [0, 0, 2, 2], b1 [1, 0, 3, 2]:
    #   normalized: overlap 1 * 2 = 2, union 4 + 4 - 2 = 6: IoU 1/3
    #   pixels:     overlap 2 * 3 = 6, areas 3 * 3 = 9: union 12, IoU 1/2
    overlapping = [[0, 0, 2, 2], [1, 0, 3, 2]]
    assert nms_kept(overlapping, 0.4, normalized=True) == pytest.approx([0.9, 0.8])
    assert nms_kept(overlapping, 0.4, normalized=False) == pytest.approx([0.9])
    # b0 [0, 0, 2, 2], b1 [2, 0, 4, 2] share the column x = 2:
    #   normalized: overlap width 0: IoU 0
    #   pixels:     overlap 1 * 3 = 3, areas 9 and 9: IoU 3 / 15 = 0.2
    touching = [[0, 0, 2, 2], [2, 0, 4, 2]]
    assert nms_kept(touching, 0.1, normalized=True) == pytest.approx([0.9, 0.8])
    assert nms_kept(touching, 0.1, normalized=False) == pytest.approx([0.9])
    assert nms_kept(touching, 0.25, normalized=False) == pytest.approx([0.9, 0.8])
