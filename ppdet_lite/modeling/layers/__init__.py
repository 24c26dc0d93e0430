"""Building blocks shared by backbones, necks and heads."""

from .conv_bn import ConvBNLayer
from .drop_block import DropBlock
from .ese import EffectiveSELayer
from .multiclass_nms import MultiClassNMS
from .repvgg import RepVggBlock

__all__ = ['ConvBNLayer', 'DropBlock', 'EffectiveSELayer', 'MultiClassNMS', 'RepVggBlock']
