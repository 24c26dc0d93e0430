"""CSPResNet, PP-YOLOE's backbone: a ResNet whose stages are CSP splits of RepVGG-style blocks.

Stem (stride 2) then four CSPResStages (stride 2 each): feature strides 4, 8, 16, 32 with
``channels[1:]`` channels; ``return_idx`` picks which are returned (PP-YOLOE: strides 8, 16, 32).
"""

import paddle
import paddle.nn as nn

from ppdet_lite.core.workspace import register, serializable

from ..checks import check_bool, check_int_list, check_number, check_tensor
from ..layers import ConvBNLayer, EffectiveSELayer, RepVggBlock
from ..ops import get_act_fn
from ..shape_spec import ShapeSpec

__all__ = ['CSPResNet', 'CSPResStage', 'BasicBlock', 'ConvBNLayer', 'EffectiveSELayer',
           'RepVggBlock']


class BasicBlock(nn.Layer):
    """[B, C, H, W] -> [B, C, H, W]: ``conv2(conv1(x))`` (+ x when ``shortcut``).

    ``conv1`` is a 3x3 ConvBNLayer, ``conv2`` a RepVggBlock; channels never change.
    """

    def __init__(self, ch_in, ch_out, act='relu', shortcut=True, use_alpha=False):
        super().__init__()
        if ch_in != ch_out:
            raise ValueError(f'BasicBlock needs ch_in == ch_out, got {ch_in} and {ch_out}')
        self.conv1 = ConvBNLayer(ch_in, ch_out, 3, stride=1, padding=1, act=act)
        self.conv2 = RepVggBlock(ch_out, ch_out, act=act, alpha=use_alpha)
        self.shortcut = shortcut

    def forward(self, x):
        y = self.conv2(self.conv1(x))
        return x + y if self.shortcut else y


class CSPResStage(nn.Layer):
    """[B, ch_in, H, W] -> [B, ch_out, H / stride, W / stride].

    With ch_mid = (ch_in + ch_out) // 2: optional stride-2 ``conv_down`` to ch_mid, then two 1x1
    halves - ``conv1`` passes through, ``conv2`` feeds ``n`` residual blocks - concatenated back to
    ch_mid, reweighted by EffectiveSELayer ``attn`` (gate: hardsigmoid, whatever ``act`` is), and
    projected by 1x1 ``conv3`` to ch_out.
    """

    def __init__(self, block_fn, ch_in, ch_out, n, stride, act='relu', attn='eca',
                 use_alpha=False):
        super().__init__()
        ch_mid = (ch_in + ch_out) // 2
        if stride == 2:
            self.conv_down = ConvBNLayer(ch_in, ch_mid, 3, stride=2, padding=1, act=act)
        else:
            self.conv_down = None
        self.conv1 = ConvBNLayer(ch_mid, ch_mid // 2, 1, act=act)
        self.conv2 = ConvBNLayer(ch_mid, ch_mid // 2, 1, act=act)
        self.blocks = nn.Sequential(*[
            block_fn(ch_mid // 2, ch_mid // 2, act=act, shortcut=True, use_alpha=use_alpha)
            for _ in range(n)
        ])
        self.attn = EffectiveSELayer(ch_mid, act='hardsigmoid') if attn else None
        self.conv3 = ConvBNLayer(ch_mid, ch_out, 1, act=act)

    def forward(self, x):
        if self.conv_down is not None:
            x = self.conv_down(x)
        y = paddle.concat([self.conv1(x), self.blocks(self.conv2(x))], axis=1)
        if self.attn is not None:
            y = self.attn(y)
        return self.conv3(y)


@register
@serializable
class CSPResNet(nn.Layer):
    """``{'image': [B, 3, H, W]}`` (or the tensor itself) -> list of [B, C_i, H / s_i, W / s_i].

    Args:
        layers: blocks per stage, scaled by ``depth_mult`` as max(round(n * depth_mult), 1).
        channels: stem output then each stage's output, scaled by ``width_mult`` likewise.
        act: activation of every conv (the ESE gate is always hardsigmoid).
        return_idx: stages whose outputs are returned (0: stride 4 ... 3: stride 32).
        depth_wise: accepted for PaddleDetection config compatibility; unused there as well.
        use_large_stem: three 3x3 stem convs (PP-YOLOE) instead of two.
        trt: TensorRT-friendly activation formulas (see ``get_act_fn``).
        use_checkpoint: recompute stages in the backward pass to save memory in training.
        use_alpha: learnable branch weight in every RepVggBlock (PP-YOLOE+).

    Raises:
        TypeError, ValueError: at construction, ``channels`` without a stem and at least one
            stage, fewer ``layers`` than stages, ``return_idx`` not increasing stage indices
            (``out_shape`` lists them in that order), non-positive multipliers.
    """

    __shared__ = ['width_mult', 'depth_mult', 'trt']

    def __init__(self,
                 layers=[3, 6, 6, 3],
                 channels=[64, 128, 256, 512, 1024],
                 act='swish',
                 return_idx=[1, 2, 3],
                 depth_wise=False,
                 use_large_stem=False,
                 width_mult=1.0,
                 depth_mult=1.0,
                 trt=False,
                 use_checkpoint=False,
                 use_alpha=False):
        super().__init__()
        _check_arguments(layers, channels, return_idx, width_mult, depth_mult,
                         dict(depth_wise=depth_wise, use_large_stem=use_large_stem, trt=trt,
                              use_checkpoint=use_checkpoint, use_alpha=use_alpha))
        # Python's round (half to even) is PaddleDetection's: it decides checkpoint shapes.
        channels = [max(round(c * width_mult), 1) for c in channels]
        layers = [max(round(n * depth_mult), 1) for n in layers]
        act = get_act_fn(act, trt=trt)
        self.use_checkpoint = use_checkpoint

        stem_mid = channels[0] // 2
        stem = [('conv1', ConvBNLayer(3, stem_mid, 3, stride=2, padding=1, act=act))]
        if use_large_stem:
            stem.append(('conv2', ConvBNLayer(stem_mid, stem_mid, 3, stride=1, padding=1, act=act)))
        stem.append(('conv3' if use_large_stem else 'conv2',
                     ConvBNLayer(stem_mid, channels[0], 3, stride=1, padding=1, act=act)))
        self.stem = nn.Sequential(*stem)

        n = len(channels) - 1
        self.stages = nn.Sequential(*[
            (str(i), CSPResStage(BasicBlock, channels[i], channels[i + 1], layers[i], 2, act=act,
                                 use_alpha=use_alpha))
            for i in range(n)
        ])
        self._out_channels = channels[1:]
        self._out_strides = [4 * 2 ** i for i in range(n)]
        self.return_idx = return_idx

    def forward(self, inputs):
        """``{'image': [B, 3, H, W]}`` or the tensor, float32 (float16/bfloat16 under AMP)."""
        x = inputs['image'] if isinstance(inputs, dict) else inputs
        check_tensor('CSPResNet', 'image', x, [None, 3, None, None],
                     dtypes=('float32', 'float16', 'bfloat16'))
        x = self.stem(x)
        outs = []
        for idx, stage in enumerate(self.stages):
            if self.use_checkpoint and self.training:
                # Imported here: loading paddle.distributed.fleet is slow and rarely needed.
                from paddle.distributed.fleet.utils import recompute
                x = recompute(stage, x, preserve_rng_state=True)
            else:
                x = stage(x)
            if idx in self.return_idx:
                outs.append(x)
        return outs

    @property
    def out_shape(self):
        """ShapeSpec (channels, stride) of each returned stage, in ``return_idx`` order."""
        return [ShapeSpec(channels=self._out_channels[i], stride=self._out_strides[i])
                for i in self.return_idx]


def _check_arguments(layers, channels, return_idx, width_mult, depth_mult, flags):
    owner = 'CSPResNet'
    check_int_list(owner, 'channels', channels)
    num_stages = len(channels) - 1
    if num_stages < 1:
        raise ValueError(f'{owner}: channels must list the stem and at least one stage, got '
                         f'{channels}')
    check_int_list(owner, 'layers', layers)
    if len(layers) < num_stages:
        raise ValueError(f'{owner}: layers {layers} gives fewer blocks counts than the '
                         f'{num_stages} stages of channels {channels}')
    check_int_list(owner, 'return_idx', return_idx, minimum=0)
    if list(return_idx) != sorted(set(return_idx)) or return_idx[-1] >= num_stages:
        raise ValueError(f'{owner}: return_idx must be increasing stage indices in 0 .. '
                         f'{num_stages - 1}, got {return_idx}')
    check_number(owner, 'width_mult', width_mult, low=0, low_open=True)
    check_number(owner, 'depth_mult', depth_mult, low=0, low_open=True)
    for name, value in flags.items():
        check_bool(owner, name, value)
