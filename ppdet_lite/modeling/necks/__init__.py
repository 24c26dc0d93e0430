"""Necks: take the backbone's feature list and return the head's feature list."""

from .custom_pan import CustomCSPPAN

__all__ = ['CustomCSPPAN']
