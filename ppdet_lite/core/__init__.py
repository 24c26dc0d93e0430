from .config_tree import TagNode
from .workspace import (AttrDict, ConfigError, create, current_config, get_registered, load_config,
                        merge_config, parse_overrides, register, serializable)

__all__ = ['AttrDict', 'ConfigError', 'TagNode', 'create', 'current_config', 'get_registered',
           'load_config', 'merge_config', 'parse_overrides', 'register', 'serializable']
