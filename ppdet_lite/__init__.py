"""ppdet_lite: a compact PaddlePaddle toolkit mirroring PaddleDetection's PP-YOLOE family."""

__version__ = "0.1.0"
