"""Backbones: each takes ``{'image': [B, 3, H, W]}`` and returns a list of feature maps."""

from .cspresnet import CSPResNet

__all__ = ['CSPResNet']
