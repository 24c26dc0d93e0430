"""PP-YOLOE model components; each subpackage exports its classes (``backbones.CSPResNet``, ...).

Importing this package registers every class with ``ppdet_lite.core.workspace``.
"""

from . import layers
from . import backbones
from . import necks
from . import assigners
from . import losses
from . import heads
from . import architectures
