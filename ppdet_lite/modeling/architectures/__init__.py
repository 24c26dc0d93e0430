from .meta_arch import BaseArch
from .yolo import YOLOv3

__all__ = ['BaseArch', 'YOLOv3']
