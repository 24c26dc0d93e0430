"""Sample and batch transforms with PaddleDetection's names and arguments, one module per family."""

from .loading import ImageDecodeError
