"""Registry-driven configuration, with PaddleDetection's workspace semantics.

A config is a nested dict loaded from YAML:

* ``_BASE_: [a.yml, b.yml]`` - files merged first, in order (deep merge, later wins), then this file.
* top-level scalars (``num_classes``, ``width_mult``, ``trt``, ...) are *shared keys*: a registered
  class listing a constructor argument in ``__shared__`` takes it from there unless its own section
  sets it.
* one section per registered class name (``CSPResNet: {layers: ...}``) holds constructor arguments.
* arguments listed in ``__inject__`` name another config entry (a class name, or a top-level key that
  holds a section or a tagged object), or are a dict ``{name: ClassName, **overrides}``; ``create``
  replaces them with the built object.
* ``!ClassName {...}`` tags build ``@serializable`` classes while the YAML is read.
* a class may define ``from_config(cls, cfg, *args, **kwargs)`` returning extra constructor arguments
  derived from sub-modules (``cfg`` is its resolved section; extra ``create`` kwargs go there).

``load_config`` makes the loaded config the *current* one, so ``create('YOLOv3')`` works as in
PaddleDetection; every function also takes an explicit ``cfg`` and nothing else reads global state.
"""

import contextlib
import contextvars
import copy
import difflib
import inspect
import os
import re

import yaml

__all__ = [
    'AttrDict', 'ConfigError', 'DeferredTag', 'register', 'serializable', 'create', 'load_config',
    'merge_config', 'get_registered', 'current_config', 'parse_overrides',
]

BASE_KEY = '_BASE_'
_REQUIRED = inspect.Parameter.empty


class ConfigError(ValueError):
    """A config problem, with the file and key it concerns in the message."""


class AttrDict(dict):
    """A dict whose keys read as attributes (``cfg.architecture``)."""

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None

    def __setattr__(self, key, value):
        self[key] = value

    def __deepcopy__(self, memo):
        dup = AttrDict({k: copy.deepcopy(v, memo) for k, v in self.items()})
        if '_origin' in self.__dict__:
            object.__setattr__(dup, '_origin', dict(self.__dict__['_origin']))
        return dup


# ----------------------------------------------------------------------------------------------
# registration


class _ClassInfo:
    """What ``create`` needs to know about a registered class."""

    def __init__(self, cls):
        self.cls = cls
        self.shared = list(getattr(cls, '__shared__', []))
        self.inject = list(getattr(cls, '__inject__', []))
        self.params = {}
        self.var_kwargs = False
        for name, p in inspect.signature(cls.__init__).parameters.items():
            if name == 'self' or p.kind == p.VAR_POSITIONAL:
                continue
            if p.kind == p.VAR_KEYWORD:
                self.var_kwargs = True
                continue
            self.params[name] = p.default
        for key in self.shared + self.inject:
            if key not in self.params and not self.var_kwargs:
                raise TypeError(f'{cls.__name__} lists {key!r} in __shared__/__inject__ '
                                f'but its constructor has no such argument')


_REGISTRY = {}


def register(cls):
    """Class decorator: make ``cls`` buildable from a config section named after it."""
    name = cls.__name__
    known = _REGISTRY.get(name)
    if known is not None and known.cls is not cls and \
            (known.cls.__module__, known.cls.__qualname__) != (cls.__module__, cls.__qualname__):
        raise ConfigError(f'class name {name!r} is registered twice '
                          f'({known.cls.__module__} and {cls.__module__})')
    _REGISTRY[name] = _ClassInfo(cls)
    return cls


def get_registered(name):
    """Return the registered class called ``name`` (ConfigError with suggestions if unknown)."""
    if name not in _REGISTRY:
        raise ConfigError(f'unknown class {name!r}{_did_you_mean(name, _REGISTRY)}')
    return _REGISTRY[name].cls


class _Loader(yaml.SafeLoader):
    """Our own loader, so ``!ClassName`` tags never leak into other users of PyYAML."""


# YAML 1.1 reads ``1e-9`` (no dot) as a string; configs and ``-o eps=1e-9`` mean a float.
_Loader.add_implicit_resolver(
    'tag:yaml.org,2002:float',
    re.compile(r'^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$'),
    list('-+0123456789'))


_SERIALIZABLE = {}


def _build_tagged(cls, args, kwargs, where):
    tag = '!' + cls.__name__
    if kwargs:
        _check_keys(_ClassInfo(cls), kwargs, f'{where}: {tag}')
    try:
        return cls(*args, **kwargs)
    except ConfigError:
        raise
    except Exception as e:
        raise ConfigError(f'{where}: building {tag} failed: {type(e).__name__}: {e}') from e


class DeferredTag:
    """A ``!ClassName`` whose class was not registered yet when the YAML was read.

    Configs name datasets, transforms and schedulers that live in modules a tool may not have
    imported; the object is built on first use (``create``, or ``build()``), and an unknown name
    fails then, naming the file and line.
    """

    def __init__(self, name, args, kwargs, where):
        self.name, self.args, self.kwargs, self.where = name, args, kwargs, where
        self._built = None

    def build(self):
        """The object (built once; later calls return the same one, as for eager tags)."""
        if self._built is None:
            self._built = self._construct()
        return self._built

    def _construct(self):
        cls = _SERIALIZABLE.get(self.name)
        if cls is None:
            raise ConfigError(f'{self.where}: unknown tag !{self.name}'
                              f'{_did_you_mean(self.name, _SERIALIZABLE)} (is the module that '
                              f'defines it imported?)')
        return _build_tagged(cls, self.args, self.kwargs, self.where)

    def __repr__(self):
        return f'DeferredTag(!{self.name} at {self.where})'


def _tag_arguments(loader, node):
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True), {}
    if isinstance(node, yaml.MappingNode):
        return [], loader.construct_mapping(node, deep=True)
    value = loader.construct_scalar(node)
    return ([] if value in ('', None) else [value]), {}


def _construct_tag(loader, suffix, node):
    where = f'{node.start_mark.name}:{node.start_mark.line + 1}'
    args, kwargs = _tag_arguments(loader, node)
    cls = _SERIALIZABLE.get(suffix)
    if cls is None:
        return DeferredTag(suffix, args, kwargs, where)
    return _build_tagged(cls, args, kwargs, where)


_Loader.add_multi_constructor('!', _construct_tag)


def serializable(cls):
    """Class decorator: allow ``!ClassName {kwargs}`` / ``!ClassName [args]`` tags in YAML."""
    _SERIALIZABLE[cls.__name__] = cls
    return cls


# ----------------------------------------------------------------------------------------------
# loading and merging


def _did_you_mean(name, candidates):
    close = difflib.get_close_matches(str(name), [str(c) for c in candidates], n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ''


def _deep_merge(dst, src):
    """Merge ``src`` into ``dst`` in place: nested dicts merge, anything else is replaced."""
    for k, v in src.items():
        if isinstance(dst.get(k), dict) and isinstance(v, dict):
            _deep_merge(dst[k], v)
        else:
            dst[k] = v
    return dst


def _to_attrdict(obj):
    if isinstance(obj, dict) and not isinstance(obj, AttrDict):
        return AttrDict({k: _to_attrdict(v) for k, v in obj.items()})
    if isinstance(obj, AttrDict):
        for k, v in obj.items():
            obj[k] = _to_attrdict(v)
    return obj


def _record_origin(origin, data, source):
    for k, v in data.items():
        origin[(k,)] = source
        if isinstance(v, dict):
            for sub in v:
                origin[(k, sub)] = source


def _read_yaml(path, stack):
    path = os.path.abspath(path)
    if path in stack:
        chain = ' -> '.join(stack + [path])
        raise ConfigError(f'{path}: {BASE_KEY} inheritance cycle: {chain}')
    with open(path) as f:
        try:
            data = yaml.load(f, Loader=_Loader) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f'{path}: invalid YAML: {e}') from e
    if not isinstance(data, dict):
        raise ConfigError(f'{path}: a config file must hold a mapping at top level')

    merged, origin = {}, {}
    bases = data.pop(BASE_KEY, [])
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise ConfigError(f'{path}: {BASE_KEY} must be a file name or a list of file names, '
                          f'got {bases!r}')
    for base in bases:
        base_path = os.path.join(os.path.dirname(path), os.path.expanduser(str(base)))
        if not os.path.isfile(base_path):
            raise ConfigError(f'{path}: {BASE_KEY} entry {base!r} not found '
                              f'(looked for {os.path.normpath(base_path)})')
        sub, sub_origin = _read_yaml(base_path, stack + [path])
        _deep_merge(merged, sub)
        origin.update(sub_origin)
    _deep_merge(merged, data)
    _record_origin(origin, data, path)
    return merged, origin


_CURRENT = contextvars.ContextVar('ppdet_lite_config', default=None)


def current_config():
    """The config ``create`` uses when none is passed (the last ``load_config`` result)."""
    cfg = _CURRENT.get()
    if cfg is None:
        raise ConfigError('no config loaded: call load_config(path) first or pass cfg=')
    return cfg


@contextlib.contextmanager
def _using(cfg):
    token = _CURRENT.set(cfg)
    try:
        yield cfg
    finally:
        _CURRENT.reset(token)


def load_config(path, overrides=None, make_current=True):
    """Read ``path`` (following ``_BASE_``), apply ``overrides`` and validate known sections.

    Args:
        path (str): YAML file.
        overrides (dict | list[str] | None): ``-o`` style overrides, see ``merge_config``.
        make_current (bool): make the result the config ``create`` uses by default.
    Returns:
        AttrDict: the merged config; ``cfg.filename`` is the file's stem, as in PaddleDetection.
    """
    if not os.path.isfile(path):
        raise ConfigError(f'config file not found: {path}')
    data, origin = _read_yaml(path, [])
    cfg = _to_attrdict(data)
    cfg.setdefault('filename', os.path.splitext(os.path.basename(path))[0])
    # where each key came from, for error messages: {(section, key) or (key,): file}
    object.__setattr__(cfg, '_origin', origin)
    if overrides:
        merge_config(overrides, cfg)
    else:
        validate(cfg)
    if make_current:
        _CURRENT.set(cfg)
    return cfg


def parse_overrides(items):
    """Turn ``['a=1', 'b.c=x']`` into ``{'a': 1, 'b': {'c': 'x'}}``; values are YAML scalars."""
    result = {}
    for item in items or []:
        if '=' not in item:
            raise ConfigError(f'override {item!r} is not of the form key=value')
        key, value = item.split('=', 1)
        try:
            value = yaml.load(value, Loader=_Loader)
        except yaml.YAMLError as e:
            raise ConfigError(f'override {item!r}: invalid YAML value: {e}') from e
        node = result
        parts = key.strip().split('.')
        if not all(parts):
            raise ConfigError(f'override {item!r}: empty key component')
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f'override {item!r} conflicts with an earlier override of {p!r}')
        node[parts[-1]] = value
    return result


def _expand_dotted(overrides):
    """``{'a.b': 1}`` -> ``{'a': {'b': 1}}``, so dict overrides address sections like ``-o``."""
    result = {}
    for key, value in overrides.items():
        parts = str(key).split('.')
        node = result
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        if isinstance(node.get(parts[-1]), dict) and isinstance(value, dict):
            _deep_merge(node[parts[-1]], value)
        else:
            node[parts[-1]] = value
    return result


def merge_config(overrides, cfg=None):
    """Deep-merge ``overrides`` into ``cfg``: a list of ``key=value`` strings (``-o``), or a
    dict whose keys may be dotted paths (``{'TrainReader.batch_size': 4}``).

    ``cfg`` defaults to the current config. Returns the merged config (merged in place).
    """
    cfg = current_config() if cfg is None else cfg
    if isinstance(overrides, (list, tuple)):
        overrides = parse_overrides(overrides)
    overrides = _to_attrdict(_expand_dotted(copy.deepcopy(dict(overrides))))
    _deep_merge(cfg, overrides)
    origin = getattr(cfg, '__dict__', {}).get('_origin')
    if origin is not None:
        _record_origin(origin, overrides, '-o override')
    validate(cfg)
    return cfg


def _origin_of(cfg, *key):
    origin = getattr(cfg, '__dict__', {}).get('_origin', {})
    return origin.get(key) or origin.get(key[:1]) or '<config>'


# ----------------------------------------------------------------------------------------------
# validation and creation


def _type_ok(default, value):
    """Primitive type check against the constructor default (None defaults accept anything)."""
    if value is None or default is None or default is _REQUIRED:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    return True


def _check_keys(info, section, where, skip_types=()):
    name = info.cls.__name__
    for key, value in section.items():
        if key not in info.params:
            if info.var_kwargs:
                continue
            hint = _did_you_mean(key, info.params)
            raise ConfigError(f'{where}: {name} has no argument {key!r}{hint}')
        default = info.params[key]
        if key not in skip_types and not _type_ok(default, value):
            raise ConfigError(f'{where}: {name}.{key} expects {type(default).__name__} '
                              f'(default {default!r}), got {type(value).__name__} {value!r}')


def validate(cfg):
    """Check every section named after a registered class for unknown keys and wrong types."""
    for name, section in cfg.items():
        info = _REGISTRY.get(name)
        if info is None or not isinstance(section, dict):
            continue
        for key in section:
            where = _origin_of(cfg, name, key)
            _check_keys(info, {key: section[key]}, where, skip_types=info.inject)


def _materialise(obj):
    """Build deferred tags anywhere inside ``obj`` (lists and dicts included)."""
    if isinstance(obj, DeferredTag):
        return obj.build()
    if isinstance(obj, list):
        return [_materialise(v) for v in obj]
    if isinstance(obj, dict):
        return type(obj)({k: _materialise(v) for k, v in obj.items()})
    return obj


def _resolve_inject(value, key, owner, cfg):
    """Build the object an ``__inject__`` argument names."""
    if value is None or not isinstance(value, (str, dict)):
        return _materialise(value)  # already an object (or explicitly None)
    where = _origin_of(cfg, owner, key)
    if isinstance(value, dict):
        if 'name' not in value:
            raise ConfigError(f"{where}: {owner}.{key}: an injected dict needs a 'name' key")
        args = {k: v for k, v in value.items() if k != 'name'}
        return _build(value['name'], cfg, args, referrer=f'{where}: {owner}.{key}')
    entry = cfg.get(value)
    if entry is not None and not isinstance(entry, dict):
        return _materialise(entry)  # a tagged object stored under a top-level key
    return _build(value, cfg, {}, referrer=f'{where}: {owner}.{key}')


def _build(name, cfg, overrides, referrer=None, **from_config_kwargs):
    if name not in _REGISTRY:
        entry = cfg.get(name)
        if entry is not None and not isinstance(entry, dict):
            return _materialise(entry)
        if isinstance(entry, dict) and 'name' in entry:
            # a top-level key holding {name: ClassName, **args}, e.g. TrainDataset
            args = {k: v for k, v in entry.items() if k != 'name'}
            return _build(entry['name'], cfg, args, referrer=f'{_origin_of(cfg, name)}: {name}')
        prefix = f'{referrer}: ' if referrer else ''
        raise ConfigError(f'{prefix}unknown class {name!r}{_did_you_mean(name, _REGISTRY)}')
    info = _REGISTRY[name]
    section = cfg.get(name)
    where = _origin_of(cfg, name)
    if isinstance(section, (bool, int, float, str, list, tuple)):
        raise ConfigError(f'{where}: {name} must be a mapping of constructor arguments, got '
                          f'{type(section).__name__} {section!r}')
    if section is not None and not isinstance(section, dict):
        return _materialise(section)  # an already-built object
    kwargs = _materialise(dict(section or {}))
    kwargs.update(_materialise(overrides))
    _check_keys(info, kwargs, referrer or where, skip_types=info.inject)

    for key in info.shared:
        if key not in kwargs and key in cfg:
            _check_keys(info, {key: cfg[key]}, f'{_origin_of(cfg, key)}: top-level {key!r}')
            kwargs[key] = cfg[key]
    for key in info.inject:
        value = kwargs.get(key, info.params.get(key))
        if value is not _REQUIRED:
            kwargs[key] = _resolve_inject(value, key, name, cfg)

    from_config = getattr(info.cls, 'from_config', None)
    if from_config is not None:
        # the hook sees the constructor defaults too, as PaddleDetection's schema provides them
        section_view = {k: d for k, d in info.params.items() if d is not _REQUIRED}
        section_view.update(kwargs)
        try:
            kwargs.update(from_config(section_view, **from_config_kwargs) or {})
        except ConfigError as e:
            raise ConfigError(f'{referrer or where}: while building {name}: {e}') from e
    elif from_config_kwargs:
        kwargs.update(from_config_kwargs)

    missing = [k for k, d in info.params.items() if d is _REQUIRED and k not in kwargs]
    if missing:
        raise ConfigError(f'{referrer or where}: {name} is missing required argument(s) '
                          f'{", ".join(missing)} (set them in the {name} section)')
    try:
        return info.cls(**kwargs)
    except ConfigError:
        raise
    except TypeError as e:
        raise ConfigError(f'{referrer or where}: building {name} failed: {e}') from e


def create(cls_or_name, cfg=None, **kwargs):
    """Build a registered class from the config.

    Args:
        cls_or_name (str | type): a registered class (or its name), a top-level key holding a
            tagged object (returned as is) or a ``{name: ClassName, **args}`` dict (built).
        cfg (dict | None): the config; defaults to the current one (see ``load_config``).
        **kwargs: passed to the class's ``from_config`` hook (e.g. ``input_shape=``), or straight
            to the constructor when it has none.
    """
    name = cls_or_name if isinstance(cls_or_name, str) else cls_or_name.__name__
    cfg = current_config() if cfg is None else cfg
    with _using(cfg):
        return _build(name, cfg, {}, **kwargs)
