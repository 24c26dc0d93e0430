"""CustomCSPPAN, PP-YOLOE's neck: an FPN top-down pass then a PAN bottom-up pass of CSP stages.

Inputs are the backbone's maps fine to coarse (C3, C4, C5 at strides 8, 16, 32); outputs are
coarse to fine (strides 32, 16, 8) with ``out_channels`` channels in that order, as
PaddleDetection's PP-YOLOE head expects (its ``fpn_strides`` default is [32, 16, 8]).
"""

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ppdet_lite.core.workspace import register, serializable

from ..backbones.cspresnet import BasicBlock
from ..checks import check_bool, check_int, check_int_list, check_number, check_tensor
from ..layers import ConvBNLayer, DropBlock
from ..ops import get_act_fn
from ..shape_spec import ShapeSpec

__all__ = ['CustomCSPPAN', 'CSPStage', 'SPP']


class SPP(nn.Layer):
    """[B, C, H, W] -> [B, ch_out, H, W]: x and its stride-1 max pools, concatenated, then a conv.

    ``ch_in`` counts the concatenation: (len(pool_size) + 1) * C.
    Pool layers are ``pool0``, ``pool1``, ...; the conv is ``conv``.
    """

    def __init__(self, ch_in, ch_out, k, pool_size, act='swish', data_format='NCHW'):
        super().__init__()
        self.data_format = data_format
        self.pool = []
        for i, size in enumerate(pool_size):
            pool = nn.MaxPool2D(kernel_size=size, stride=1, padding=size // 2,
                                data_format=data_format, ceil_mode=False)
            self.pool.append(self.add_sublayer(f'pool{i}', pool))
        self.conv = ConvBNLayer(ch_in, ch_out, k, padding=k // 2, act=act)

    def forward(self, x):
        outs = [x] + [pool(x) for pool in self.pool]
        y = paddle.concat(outs, axis=1 if self.data_format == 'NCHW' else -1)
        return self.conv(y)


_BLOCKS = {'BasicBlock': BasicBlock}


def _resolve(kind, table, value):
    """A class given directly or by its name in ``table`` (config files name it)."""
    if not isinstance(value, str):
        return value
    if value not in table:
        raise ValueError(f'unknown {kind} {value!r}; known: {", ".join(table)}')
    return table[value]


class CSPStage(nn.Layer):
    """[B, ch_in, H, W] -> [B, ch_out, H, W].

    Two 1x1 halves of ch_out // 2 channels: ``conv1`` passes through, ``conv2`` feeds ``n`` blocks
    ``convs.0`` .. ``convs.{n-1}`` without shortcut (with ``convs.spp`` after the middle one when
    ``spp``); the halves are concatenated and projected by 1x1 ``conv3``.

    Args:
        block_fn: a block class or its name ('BasicBlock').
    """

    def __init__(self, block_fn, ch_in, ch_out, n, act='swish', spp=False, use_alpha=False):
        super().__init__()
        block_fn = _resolve('block_fn', _BLOCKS, block_fn)
        ch_mid = ch_out // 2
        self.conv1 = ConvBNLayer(ch_in, ch_mid, 1, act=act)
        self.conv2 = ConvBNLayer(ch_in, ch_mid, 1, act=act)
        self.convs = nn.Sequential()
        for i in range(n):
            self.convs.add_sublayer(
                str(i), block_fn(ch_mid, ch_mid, act=act, shortcut=False, use_alpha=use_alpha))
            if spp and i == (n - 1) // 2:
                self.convs.add_sublayer('spp', SPP(ch_mid * 4, ch_mid, 1, [5, 9, 13], act=act))
        self.conv3 = ConvBNLayer(ch_mid * 2, ch_out, 1, act=act)

    def forward(self, x):
        y = paddle.concat([self.conv1(x), self.convs(self.conv2(x))], axis=1)
        return self.conv3(y)


_STAGES = {'CSPStage': CSPStage}


@register
@serializable
class CustomCSPPAN(nn.Layer):
    """[C3, C4, C5] (fine to coarse) -> [N5, N4, P3] (coarse to fine).

    With levels indexed coarse to fine (i = 0 is C5):
    top-down, ``fpn_stages[i]`` runs on concat(upsampled ``fpn_routes[i-1]`` output, level i);
    ``fpn_routes[i]`` halves the channels with a 1x1 conv before the 2x nearest upsampling;
    bottom-up, ``pan_routes[i]`` is a stride-2 3x3 conv on the finer result and ``pan_stages[i]``
    runs on concat(that, fpn output i). SPP sits in the coarsest FPN stage when ``spp``;
    a DropBlock closes every stage when ``drop_block``.

    Args:
        in_channels: channels of the inputs, fine to coarse (derived from the backbone by
            ``from_config``).
        out_channels: channels of the outputs, coarse to fine, before ``width_mult`` scaling
            (max(round(c * width_mult), 1)).
        norm_type: accepted for PaddleDetection config compatibility, where it does not change the
            neck either: BatchNorm is always built, and the trainer converts it to SyncBatchNorm
            for 'sync_bn'.
        act: activation of every conv.
        stage_fn / block_fn: stage and block classes or their names ('CSPStage', 'BasicBlock').
        stage_num: stages per level; block_num: blocks per stage, scaled by ``depth_mult``.
        drop_block, block_size, keep_prob: DropBlock after every stage.
        spp: SPP block in the first (coarsest) FPN stage.
        data_format: only 'NCHW' (ConvBNLayer has no other layout).
        use_alpha: learnable branch weight in every RepVggBlock (PP-YOLOE+).
        trt: TensorRT-friendly activation formulas (see ``get_act_fn``).

    Raises:
        TypeError, ValueError: at construction, channel lists that are not positive integers of
            equal length, ``stage_num`` or ``block_num`` below 1, non-positive multipliers,
            non-bool flags; in ``forward``, input maps that do not halve exactly from level to
            level (an input whose height or width is not a multiple of the coarsest stride).
    """

    __shared__ = ['norm_type', 'data_format', 'width_mult', 'depth_mult', 'trt']

    def __init__(self,
                 in_channels=[256, 512, 1024],
                 out_channels=[1024, 512, 256],
                 norm_type='bn',
                 act='leaky',
                 stage_fn='CSPStage',
                 block_fn='BasicBlock',
                 stage_num=1,
                 block_num=3,
                 drop_block=False,
                 block_size=3,
                 keep_prob=0.9,
                 spp=False,
                 data_format='NCHW',
                 width_mult=1.0,
                 depth_mult=1.0,
                 use_alpha=False,
                 trt=False):
        super().__init__()
        if data_format != 'NCHW':
            raise ValueError(f"CustomCSPPAN supports data_format 'NCHW' only, got {data_format!r}")
        owner = 'CustomCSPPAN'
        check_int_list(owner, 'in_channels', in_channels)
        check_int_list(owner, 'out_channels', out_channels)
        if len(in_channels) != len(out_channels):
            raise ValueError(f'CustomCSPPAN needs as many out_channels as in_channels, got '
                             f'{out_channels} for {in_channels}')
        check_int(owner, 'stage_num', stage_num, minimum=1)
        check_int(owner, 'block_num', block_num, minimum=1)
        check_number(owner, 'width_mult', width_mult, low=0, low_open=True)
        check_number(owner, 'depth_mult', depth_mult, low=0, low_open=True)
        for name, value in (('drop_block', drop_block), ('spp', spp), ('use_alpha', use_alpha),
                            ('trt', trt)):
            check_bool(owner, name, value)
        out_channels = [max(round(c * width_mult), 1) for c in out_channels]
        block_num = max(round(block_num * depth_mult), 1)
        act = get_act_fn(act, trt=trt)
        stage_fn = _resolve('stage_fn', _STAGES, stage_fn)
        self.num_blocks = len(in_channels)
        self._in_channels = list(in_channels)
        self.data_format = data_format
        self._out_channels = out_channels

        def make_stage(ch_in, ch_out, with_spp):
            stage = nn.Sequential()
            for j in range(stage_num):
                stage.add_sublayer(str(j), stage_fn(block_fn, ch_in if j == 0 else ch_out, ch_out,
                                                    block_num, act=act, spp=with_spp,
                                                    use_alpha=use_alpha))
            if drop_block:
                stage.add_sublayer('drop', DropBlock(block_size, keep_prob))
            return stage

        fpn_stages, fpn_routes = [], []
        for i, (ch_in, ch_out) in enumerate(zip(in_channels[::-1], out_channels)):
            if i > 0:
                ch_in += out_channels[i - 1] // 2
            fpn_stages.append(make_stage(ch_in, ch_out, spp and i == 0))
            if i < self.num_blocks - 1:
                fpn_routes.append(ConvBNLayer(ch_out, ch_out // 2, 1, stride=1, padding=0, act=act))
        self.fpn_stages = nn.LayerList(fpn_stages)
        self.fpn_routes = nn.LayerList(fpn_routes)

        # Built fine to coarse, the order they run in, so a given seed draws the same initial
        # weights as PaddleDetection; stored coarse to fine like the FPN lists.
        pan_stages, pan_routes = [], []
        for i in reversed(range(self.num_blocks - 1)):
            pan_routes.append(ConvBNLayer(out_channels[i + 1], out_channels[i + 1], 3, stride=2,
                                          padding=1, act=act))
            pan_stages.append(make_stage(out_channels[i] + out_channels[i + 1], out_channels[i],
                                         False))
        self.pan_stages = nn.LayerList(pan_stages[::-1])
        self.pan_routes = nn.LayerList(pan_routes[::-1])

    def forward(self, blocks, for_mot=False):
        """blocks: [B, in_channels[k], H_k, W_k] fine to coarse; returns coarse to fine maps.

        ``for_mot`` is accepted for PaddleDetection call compatibility and ignored, as there.
        """
        self._check_inputs(blocks)
        fpn_feats = []
        for i, block in enumerate(blocks[::-1]):
            if i > 0:
                block = paddle.concat([route, block], axis=1)
            route = self.fpn_stages[i](block)
            fpn_feats.append(route)
            if i < self.num_blocks - 1:
                route = F.interpolate(self.fpn_routes[i](route), scale_factor=_upsample_scale(),
                                      data_format=self.data_format)

        pan_feats = [fpn_feats[-1]]
        route = fpn_feats[-1]
        for i in reversed(range(self.num_blocks - 1)):
            route = self.pan_routes[i](route)
            route = self.pan_stages[i](paddle.concat([route, fpn_feats[i]], axis=1))
            pan_feats.append(route)
        return pan_feats[::-1]

    @paddle.jit.not_to_static
    def _check_inputs(self, blocks):
        """Static checks: the channels, and sizes that halve exactly, so the top-down concat fits."""
        owner = 'CustomCSPPAN'
        if not isinstance(blocks, (list, tuple)) or len(blocks) != self.num_blocks:
            got = f'{len(blocks)} maps' if isinstance(blocks, (list, tuple)) else \
                type(blocks).__name__
            raise ValueError(f'{owner}: expected a list of {self.num_blocks} feature maps, fine '
                             f'to coarse, got {got}')
        sizes = {}
        for k, (block, channels) in enumerate(zip(blocks, self._in_channels)):
            check_tensor(owner, f'blocks[{k}]', block, ['B', channels, None, None], sizes)
        shapes = [list(b.shape[2:]) for b in blocks]
        for finer, coarser in zip(shapes, shapes[1:]):
            known = all(s >= 0 for s in finer + coarser)
            if known and [2 * s for s in coarser] != finer:
                raise ValueError(
                    f'{owner}: input maps of sizes {shapes} (fine to coarse) do not halve exactly '
                    f'from level to level, so the upsampled coarse map cannot be concatenated '
                    f'with the finer one; the network input height and width must be multiples '
                    f'of the coarsest stride (32 for PP-YOLOE)')

    @classmethod
    def from_config(cls, cfg, input_shape):
        return {'in_channels': [i.channels for i in input_shape]}

    @property
    def out_shape(self):
        """Channels of the outputs, coarse to fine (strides are the inputs' reversed)."""
        return [ShapeSpec(channels=c) for c in self._out_channels]


def _upsample_scale():
    """The 2x scale of the top-down path: a Python float when running eagerly (no device
    tensor, no synchronisation); a float32 constant in a traced program, where Paddle 3 would
    store a Python float as a float64 attribute that paddle2onnx 2.1 and oneDNN refuse."""
    if paddle.in_dynamic_mode():
        return 2.
    return paddle.full([2], 2., dtype='float32')
