"""PP-YOLOE model components; each subpackage exports its classes (``backbones.CSPResNet``, ...).

Importing a subpackage registers its classes with ``ppdet_lite.core.workspace``.
"""

from . import layers
from . import backbones
from . import necks
