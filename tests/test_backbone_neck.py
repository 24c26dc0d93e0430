"""CSPResNet, CustomCSPPAN and their layers: checkpoint layout, shapes, and definitions.

Numerical parity with PaddleDetection itself is checked outside the repo (the tests never import
ppdet); here every check is against the reference state-dict lists or a hand computation.
"""


import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from ppdet_lite.core.workspace import create
from ppdet_lite.modeling.backbones import CSPResNet
from ppdet_lite.modeling.layers import ConvBNLayer, DropBlock, EffectiveSELayer, RepVggBlock
from ppdet_lite.modeling.necks import CustomCSPPAN
from ppdet_lite.modeling.ops import get_act_fn
from ppdet_lite.modeling.shape_spec import ShapeSpec

from conftest import reference_layout, state_layout

SIZES = {'s': (0.50, 0.33), 'm': (0.75, 0.67), 'l': (1.0, 1.0), 'x': (1.25, 1.33)}


def build_ppyoloe(width_mult, depth_mult, **extra):
    """Backbone and neck with the arguments of PaddleDetection's ppyoloe_crn configs."""
    backbone = CSPResNet(layers=[3, 6, 6, 3], channels=[64, 128, 256, 512, 1024],
                         return_idx=[1, 2, 3], use_large_stem=True, act='swish',
                         width_mult=width_mult, depth_mult=depth_mult, **extra)
    neck = CustomCSPPAN(in_channels=[s.channels for s in backbone.out_shape],
                        out_channels=[768, 384, 192], stage_num=1, block_num=3, act='swish',
                        spp=True, width_mult=width_mult, depth_mult=depth_mult, **extra)
    return backbone, neck


def randomize_bn(layer, seed=0):
    """Non-trivial BN statistics and affine parameters, so BN folding is really exercised."""
    rng = np.random.RandomState(seed)
    for sub in layer.sublayers():
        if isinstance(sub, paddle.nn.BatchNorm2D):
            n = sub._mean.shape[0]
            sub._mean.set_value(rng.normal(0, 0.5, n).astype('float32'))
            sub._variance.set_value(rng.uniform(0.5, 2.0, n).astype('float32'))
            sub.weight.set_value(rng.uniform(0.5, 1.5, n).astype('float32'))
            sub.bias.set_value(rng.normal(0, 0.5, n).astype('float32'))


def max_diff(a, b):
    return float((a - b).abs().max())


# ---------------------------------------------------------------------------------------------
# checkpoint layout


@pytest.mark.parametrize('size', list(SIZES))
def test_state_dict_matches_paddledetection(size):
    backbone, neck = build_ppyoloe(*SIZES[size])
    ours = state_layout(backbone, 'backbone.') + state_layout(neck, 'neck.')
    reference = reference_layout(size, 'backbone.') + reference_layout(size, 'neck.')
    assert [k for k, _, _ in ours] == [k for k, _, _ in reference]
    assert ours == reference


def test_scaling_rounds_like_paddledetection():
    # x: channels 64 * 1.25 = 80 ... 1024 * 1.25 = 1280; depths round(3 * 1.33) = round(3.99) = 4,
    # round(6 * 1.33) = round(7.98) = 8; neck block_num round(3 * 1.33) = 4.
    backbone, neck = build_ppyoloe(1.25, 1.33)
    assert [s.channels for s in backbone.out_shape] == [320, 640, 1280]
    assert [len(stage.blocks) for stage in backbone.stages] == [4, 8, 8, 4]
    assert len(neck.fpn_stages[1][0].convs) == 4
    assert [s.channels for s in neck.out_shape] == [960, 480, 240]


# ---------------------------------------------------------------------------------------------
# shapes


def test_backbone_and_neck_shapes_follow_out_shape():
    backbone, neck = build_ppyoloe(0.25, 0.33)
    backbone.eval()
    neck.eval()
    x = paddle.rand([2, 3, 64, 64])
    feats = backbone({'image': x})
    assert [s.stride for s in backbone.out_shape] == [8, 16, 32]
    assert [list(f.shape) for f in feats] == [[2, s.channels, 64 // s.stride, 64 // s.stride]
                                              for s in backbone.out_shape]

    outs = neck(feats)
    # The neck returns coarse to fine: strides 32, 16, 8.
    assert [list(o.shape) for o in outs] == [[2, s.channels, 64 // stride, 64 // stride]
                                             for s, stride in zip(neck.out_shape, [32, 16, 8])]


def test_neck_from_config_takes_backbone_channels():
    cfg = {'width_mult': 0.25, 'depth_mult': 0.33, 'norm_type': 'sync_bn',
           'CSPResNet': {'layers': [3, 6, 6, 3], 'channels': [64, 128, 256, 512, 1024],
                         'return_idx': [1, 2, 3], 'use_large_stem': True},
           'CustomCSPPAN': {'out_channels': [768, 384, 192], 'stage_num': 1, 'block_num': 3,
                            'act': 'swish', 'spp': True}}
    backbone = create('CSPResNet', cfg)
    neck = create('CustomCSPPAN', cfg, input_shape=backbone.out_shape)
    assert neck.fpn_stages[0][0].conv1.conv.weight.shape[1] == backbone.out_shape[-1].channels
    assert [s.channels for s in neck.out_shape] == [192, 96, 48]


# ---------------------------------------------------------------------------------------------
# RepVGG re-parameterisation


@pytest.mark.parametrize('alpha', [False, True])
def test_repvgg_fused_equals_unfused(alpha):
    paddle.seed(0)
    block = RepVggBlock(8, 16, act='relu', alpha=alpha)
    randomize_bn(block)
    if alpha:
        block.alpha.set_value(np.array([0.7], dtype='float32'))
    block.eval()
    x = paddle.randn([2, 8, 9, 11])
    expected = block(x)

    block.convert_to_deploy()
    assert sorted(k for k in block.state_dict() if k != 'alpha') == ['conv.bias', 'conv.weight']
    assert list(block.conv.weight.shape) == [16, 8, 3, 3]
    assert max_diff(block(x), expected) < 1e-4


def test_cspresnet_fused_equals_unfused():
    paddle.seed(0)
    backbone = CSPResNet(layers=[1, 1, 1, 1], channels=[16, 16, 32, 32, 64], use_large_stem=True,
                         use_alpha=True)
    randomize_bn(backbone)
    blocks = [m for m in backbone.sublayers() if isinstance(m, RepVggBlock)]
    assert len(blocks) == 4
    for i, block in enumerate(blocks):
        block.alpha.set_value(np.array([0.5 + 0.2 * i], dtype='float32'))
    backbone.eval()
    x = paddle.randn([1, 3, 64, 64])
    expected = backbone(x)

    for block in blocks:
        block.convert_to_deploy()
    for got, want in zip(backbone(x), expected):
        assert max_diff(got, want) < 1e-4


# ---------------------------------------------------------------------------------------------
# layers against their definitions


def test_conv_bn_layer_defaults():
    layer = ConvBNLayer(4, 6, 3, padding=1, act='swish')
    assert layer.conv.bias is None
    assert layer.bn._epsilon == pytest.approx(1e-5)
    assert layer.bn._momentum == pytest.approx(0.9)
    assert list(layer.state_dict()) == ['conv.weight', 'bn.weight', 'bn.bias', 'bn._mean',
                                        'bn._variance']


def test_effective_se_matches_hand_computation():
    paddle.seed(0)
    layer = EffectiveSELayer(4)
    x = paddle.randn([2, 4, 5, 3])
    xn = x.numpy()
    w = layer.fc.weight.numpy()[:, :, 0, 0]  # [C_out, C_in]
    b = layer.fc.bias.numpy()
    squeezed = xn.mean(axis=(2, 3))  # [B, C]
    logits = squeezed @ w.T + b
    gate = np.clip(logits / 6. + 0.5, 0., 1.)  # Paddle's hardsigmoid: slope 1/6, offset 0.5
    expected = xn * gate[:, :, None, None]
    np.testing.assert_allclose(layer(x).numpy(), expected, rtol=1e-5, atol=1e-6)


def test_drop_block_is_identity_in_eval():
    layer = DropBlock(block_size=3, keep_prob=0.5)
    layer.eval()
    x = paddle.rand([2, 4, 16, 16])
    assert layer(x) is x


def test_drop_block_zeroes_whole_blocks_in_train():
    paddle.seed(3)
    layer = DropBlock(block_size=3, keep_prob=0.8)
    layer.train()
    x = paddle.rand([2, 4, 16, 16]) + 1.  # strictly positive, so a zero means dropped
    y = layer(x).numpy()
    dropped = y == 0
    assert 0 < dropped.mean() < 0.9

    # Every dropped cell lies in a 3x3 window (clipped at the border) that is dropped entirely.
    h, w = dropped.shape[2:]
    for b, c, i, j in zip(*np.nonzero(dropped)):
        windows = [dropped[b, c, max(ci - 1, 0):ci + 2, max(cj - 1, 0):cj + 2].all()
                   for ci in range(max(i - 1, 0), min(i + 2, h))
                   for cj in range(max(j - 1, 0), min(j + 2, w))]
        assert any(windows)

    # Kept cells are rescaled by numel / kept, preserving the expected activation.
    kept = ~dropped
    np.testing.assert_allclose(y[kept], x.numpy()[kept] / kept.mean(), rtol=1e-5)


def test_activations():
    x = paddle.linspace(-8., 8., 33)
    xn = x.numpy()
    swish = xn / (1. + np.exp(-xn))
    np.testing.assert_allclose(get_act_fn('swish')(x).numpy(), swish, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(get_act_fn('swish', trt=True)(x).numpy(), swish, rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(get_act_fn('silu')(x).numpy(), swish, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(get_act_fn('leaky')(x).numpy(), np.where(xn > 0, xn, 0.1 * xn),
                               rtol=1e-6)
    np.testing.assert_allclose(get_act_fn('hardsigmoid')(x).numpy(),
                               np.clip(xn / 6. + 0.5, 0., 1.), rtol=1e-5, atol=1e-6)
    assert get_act_fn(None)(x) is x

    spec = {'name': 'leaky_relu', 'negative_slope': 0.2}
    np.testing.assert_allclose(get_act_fn(spec)(x).numpy(), np.where(xn > 0, xn, 0.2 * xn),
                               rtol=1e-6)
    assert spec == {'name': 'leaky_relu', 'negative_slope': 0.2}  # the config is not consumed
    assert get_act_fn(F.relu) is F.relu
    with pytest.raises(ValueError, match='unknown activation'):
        get_act_fn('no_such_act')


def test_shape_spec_defaults():
    assert ShapeSpec(channels=8) == (8, None, None, None)
    assert ShapeSpec(channels=8, stride=4).stride == 4
