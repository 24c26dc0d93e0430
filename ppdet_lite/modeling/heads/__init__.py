"""Detection heads; importing this package registers ``PPYOLOEHead``."""

from .ppyoloe_head import ESEAttn, PPYOLOEHead

__all__ = ['ESEAttn', 'PPYOLOEHead']
