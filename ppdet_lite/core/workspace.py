"""Registry-driven configuration, with PaddleDetection's workspace semantics.

A config is a nested dict loaded from YAML (reading and merging: ``config_tree``):

* ``_BASE_: [a.yml, b.yml]`` - files merged first, in order (deep merge, later wins), then this file.
* top-level scalars (``num_classes``, ``width_mult``, ``eval_size``, ...) are *shared keys*: a registered
  class listing a constructor argument in ``__shared__`` takes it from there unless its own section
  sets it.
* one section per registered class name (``CSPResNet: {layers: ...}``) holds constructor arguments.
* arguments listed in ``__inject__`` name another config entry (a class name, or a top-level key that
  holds a section or a tagged object), or are a dict ``{name: ClassName, **overrides}``; ``create``
  replaces them with the built object.
* ``!ClassName {...}`` tags build ``@serializable`` classes: when the config is loaded if the class is
  registered by then, else on first use. The config then holds the object; the tag's arguments are kept,
  so ``-o TrainDataset.dataset_dir=x`` rebuilds the same class with that one argument changed.
* a class may define ``from_config(cls, cfg, *args, **kwargs)`` returning extra constructor arguments
  derived from sub-modules (``cfg`` is its resolved section; extra ``create`` kwargs go there).

A class name unknown when something is built makes the workspace import the project's component
packages (``COMPONENT_PACKAGES``) once and look again, so ``load_config`` + ``create(cfg.architecture)``
works without importing ``ppdet_lite.modeling`` first; loading a config imports nothing.

Every error is a ConfigError starting with where the value came from (``file:line`` or ``-o override``)
and its key (``PPYOLOEHead.assigner.topk``).

``load_config`` makes the loaded config the *current* one, so ``create('YOLOv3')`` works as in
PaddleDetection; every function also takes an explicit ``cfg`` and nothing else reads global state.
"""

import contextlib
import contextvars
import copy
import difflib
import importlib
import importlib.util
import inspect
import os

import yaml

from .config_tree import (BASE_KEY, OVERRIDE, ConfigError, TagNode, copy_tree, dotted, merge_tree,
                          parse_yaml_value, read_config_file)

__all__ = [
    'AttrDict', 'ConfigError', 'TagNode', 'register', 'serializable', 'create', 'load_config',
    'merge_config', 'get_registered', 'current_config', 'parse_overrides', 'validate', 'BASE_KEY',
    'COMPONENT_PACKAGES',
]

_REQUIRED = inspect.Parameter.empty

# packages whose import registers the classes a config names (absent ones are skipped)
COMPONENT_PACKAGES = ('ppdet_lite.modeling', 'ppdet_lite.data', 'ppdet_lite.optim',
                      'ppdet_lite.metrics')


class AttrDict(dict):
    """A dict whose keys read as attributes (``cfg.architecture``).

    A loaded config also carries, outside its items, the origin of every value (``_origin``) and the
    tag node of every object built from a ``!Tag`` (``_tags``, keyed by the object's id).
    """

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
        if '_tags' in self.__dict__:
            nodes = [copy.deepcopy(n, memo) for n in self.__dict__['_tags'].values()]
            object.__setattr__(dup, '_tags', {id(n.built): n for n in nodes})
        return dup


def _meta(cfg, name):
    """The config's origin map or tag records (a throw-away dict for a plain dict config)."""
    store = getattr(cfg, '__dict__', None)
    if store is None:
        return {}
    if name not in store:
        object.__setattr__(cfg, name, {})
    return store[name]


def _origin_of(cfg, path):
    """Where the value at ``path`` came from (longest recorded prefix), or None if unknown."""
    origin = _meta(cfg, '_origin')
    for n in range(len(path), 0, -1):
        if path[:n] in origin:
            return origin[path[:n]]
    return None


def _at(where, label):
    """Message prefix ``'file:line: key: '`` (parts that are unknown are left out)."""
    return ''.join(f'{part}: ' for part in (where, label) if part)


def _tag_of(cfg):
    records = _meta(cfg, '_tags')

    def lookup(value):
        node = records.get(id(value))
        return node if node is not None and node.built is value else None
    return lookup


# ----------------------------------------------------------------------------------------------
# registration


class _ClassInfo:
    """What ``create`` needs to know about a class: constructor defaults, shared and injected keys."""

    def __init__(self, cls):
        self.cls = cls
        self.shared = list(getattr(cls, '__shared__', []))
        self.inject = list(getattr(cls, '__inject__', []))
        self.params = {}
        self.var_kwargs = self.var_args = False
        for name, p in inspect.signature(cls.__init__).parameters.items():
            if name == 'self':
                continue
            if p.kind == p.VAR_POSITIONAL:
                self.var_args = True
            elif p.kind == p.VAR_KEYWORD:
                self.var_kwargs = True
            else:
                self.params[name] = p.default
        for key in self.shared + self.inject:
            if key not in self.params and not self.var_kwargs:
                raise TypeError(f'{cls.__name__} lists {key!r} in __shared__/__inject__ '
                                f'but its constructor has no such argument')


_REGISTRY = {}
_SERIALIZABLE = {}


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


def serializable(cls):
    """Class decorator: allow ``!ClassName {kwargs}`` / ``!ClassName [args]`` tags in YAML."""
    _SERIALIZABLE[cls.__name__] = _REGISTRY.get(cls.__name__) or _ClassInfo(cls)
    return cls


_components_imported = False


def _import_components():
    """Import ``COMPONENT_PACKAGES`` (those that exist) once; True if this call imported them.

    A package that exists but fails to import raises: its error is real and must be seen.
    """
    global _components_imported
    if _components_imported:
        return False
    for package in COMPONENT_PACKAGES:
        if importlib.util.find_spec(package) is not None:
            importlib.import_module(package)
    _components_imported = True
    return True


def _lookup(name, table):
    """``table[name]`` (a _ClassInfo), importing the component packages once if it is missing."""
    if name not in table and isinstance(name, str):
        _import_components()
    return table.get(name)


def _did_you_mean(name, candidates):
    close = difflib.get_close_matches(str(name), [str(c) for c in candidates], n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ''


def _unknown(kind, name, table):
    shown = f'!{name}' if kind == 'tag' else repr(name)
    return (f'unknown {kind} {shown}{_did_you_mean(name, table)} (not registered, even after '
            f'importing {", ".join(COMPONENT_PACKAGES)})')


def get_registered(name):
    """Return the registered class called ``name`` (ConfigError with suggestions if unknown)."""
    info = _lookup(name, _REGISTRY)
    if info is None:
        raise ConfigError(_unknown('class', name, _REGISTRY))
    return info.cls


# ----------------------------------------------------------------------------------------------
# loading and merging


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


def _to_attrdict(obj):
    if isinstance(obj, dict):
        dup = obj if isinstance(obj, AttrDict) else AttrDict(obj)
        for k, v in dup.items():
            dup[k] = _to_attrdict(v)
        return dup
    if isinstance(obj, list):
        return [_to_attrdict(v) for v in obj]
    return obj


def load_config(path, overrides=None, make_current=True):
    """Read ``path`` (following ``_BASE_``), apply ``overrides``, validate, build registered tags.

    Args:
        path (str): YAML file.
        overrides (dict | list[str] | None): ``-o`` style overrides, see ``merge_config``.
        make_current (bool): make the result the config ``create`` uses by default.
    Returns:
        AttrDict: the merged config; ``cfg.filename`` is the file's stem, as in PaddleDetection.
    Raises:
        ConfigError: naming the file (and line) or ``-o override``, and the key.
    """
    if not os.path.isfile(path):
        raise ConfigError(f'config file not found: {path}')
    data, origin = read_config_file(path)
    cfg = _to_attrdict(data)
    cfg.setdefault('filename', os.path.splitext(os.path.basename(path))[0])
    object.__setattr__(cfg, '_origin', origin)
    object.__setattr__(cfg, '_tags', {})
    if overrides:
        merge_config(overrides, cfg)
    else:
        _settle(cfg)
    if make_current:
        _CURRENT.set(cfg)
    return cfg


def parse_overrides(items):
    """Turn ``['a=1', 'b.c=x']`` into ``{'a': 1, 'b': {'c': 'x'}}``; values are YAML scalars."""
    result, seen = {}, {}
    for item in items or []:
        if '=' not in item:
            raise ConfigError(f'override {item!r} is not of the form key=value')
        key, text = item.split('=', 1)
        parts = key.strip().split('.')
        if not all(parts):
            raise ConfigError(f'override {item!r}: empty key component')
        try:
            value = parse_yaml_value(text)
        except (yaml.YAMLError, ConfigError) as e:
            raise ConfigError(f'override {item!r}: invalid YAML value: {e}') from e
        for n in range(1, len(parts) + 1):
            # 'a=1' with 'a.b=2' (either order) would silently lose one of them
            earlier = seen.get(tuple(parts[:n]))
            if earlier is not None and ((n < len(parts) and not earlier[1]) or
                                        (n == len(parts) and earlier[1])):
                raise ConfigError(f'override {item!r} conflicts with the earlier override '
                                  f'{earlier[0]!r}')
        for n in range(1, len(parts)):
            seen[tuple(parts[:n])] = (item, True)
        seen[tuple(parts)] = (item, False)
        node = result
        for p in parts[:-1]:
            node = node.setdefault(p, {})
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
            merge_tree(node[parts[-1]], value, {}, lambda p: OVERRIDE)
        else:
            node[parts[-1]] = value
    return result


def merge_config(overrides, cfg=None):
    """Merge ``overrides`` into ``cfg``: a list of ``key=value`` strings (``-o``), or a dict whose keys
    may be dotted paths (``{'TrainReader.batch_size': 4}``). Rules: see ``config_tree``; a mapping
    merged onto a tagged object updates its arguments and rebuilds it. On a ConfigError the config
    is left as it was.

    ``cfg`` defaults to the current config. Returns the merged config (merged in place).
    """
    cfg = current_config() if cfg is None else cfg
    if isinstance(overrides, (list, tuple)):
        overrides = parse_overrides(overrides)
    overrides = _to_attrdict(copy_tree(_expand_dotted(dict(overrides))))
    origin = _meta(cfg, '_origin')
    saved = copy_tree(dict(cfg)), dict(origin)
    try:
        merge_tree(cfg, overrides, origin, lambda p: OVERRIDE, (), _tag_of(cfg))
        _settle(cfg)
    except ConfigError:
        # a refused override leaves the config as it was
        cfg.clear()
        cfg.update(saved[0])
        origin.clear()
        origin.update(saved[1])
        raise
    return cfg


def _settle(cfg):
    """After loading or merging: validate what registered classes allow, build registered tags,
    and forget the tag records of objects the config no longer holds."""
    validate(cfg)
    _build_tags(cfg, cfg, (), import_missing=False)
    records = _meta(cfg, '_tags')
    held = set()

    def collect(value):
        held.add(id(value))
        if isinstance(value, (dict, list)):
            for v in (value.values() if isinstance(value, dict) else value):
                collect(v)
    collect(cfg)
    for key in [k for k, node in records.items() if k not in held or node.built is None]:
        del records[key]


# ----------------------------------------------------------------------------------------------
# validation


def _type_ok(default, value):
    """Primitive type check against the constructor default (None defaults accept anything)."""
    if value is None or default is None or default is _REQUIRED or isinstance(value, TagNode):
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


def _looks_null(value):
    # YAML reads null, Null, NULL and ~ as null; 'None' (Python's spelling) stays a string
    return isinstance(value, str) and value.strip().lower() in ('none', 'null')


def _check_value(info, key, value, where, label, shared=False, check_type=True):
    """One constructor argument: it exists, is not the string 'None', has the default's type.

    Args:
        where (str | None): origin of the value; label (str): its config key path.
        shared (bool): the value is a top-level key taken through ``__shared__``.
    """
    name = info.cls.__name__
    prefix = _at(where, label)
    if key not in info.params:
        if not info.var_kwargs:
            raise ConfigError(f'{prefix}{name} has no argument {key!r}'
                              f'{_did_you_mean(key, info.params)}')
        default = _REQUIRED
    else:
        default = info.params[key]
    via = ' (shared through __shared__)' if shared else ''
    if _looks_null(value) and not isinstance(default, str):
        shown = 'required' if default is _REQUIRED else f'default {default!r}'
        raise ConfigError(f'{prefix}the string {value!r} is not null; did you mean null (~)? '
                          f'({name}.{key}{via}, {shown})')
    if check_type and not _type_ok(default, value):
        raise ConfigError(f'{prefix}{name}.{key}{via} expects {type(default).__name__} '
                          f'(default {default!r}), got {type(value).__name__} {value!r}')


def _check_args(cfg, info, args, path):
    """Check a section or ``{name: ...}`` dict (``args``, at ``path``) against ``info``."""
    for key, value in args.items():
        _check_value(info, key, value, _origin_of(cfg, path + (key,)), dotted(path + (key,)),
                     check_type=key not in info.inject)


def _check_named_dict(cfg, value, path):
    if isinstance(value, dict) and isinstance(value.get('name'), str) and value['name'] in _REGISTRY:
        args = {k: v for k, v in value.items() if k != 'name'}
        _check_args(cfg, _REGISTRY[value['name']], args, path)


def _names_in(value, found=None):
    """Every string used as a key or value inside ``value``: the class names a config refers to."""
    found = set() if found is None else found
    if isinstance(value, str):
        found.add(value)
    elif isinstance(value, TagNode):
        found.add(value.name)
        _names_in(value.kwargs, found)
    elif isinstance(value, dict):
        for k, v in value.items():
            _names_in(k, found)
            _names_in(v, found)
    elif isinstance(value, list):
        for v in value:
            _names_in(v, found)
    return found


def validate(cfg):
    """Check what registered classes allow, without importing anything: their sections, the
    ``{name: Class, ...}`` dicts naming them, and the top-level keys taken through ``__shared__`` by
    the classes the config names. Classes not registered yet are checked when built."""
    for name, section in cfg.items():
        if name == 'filename':
            continue
        info = _REGISTRY.get(name)
        if info is not None and isinstance(section, dict):
            _check_args(cfg, info, section, (name,))
            for key in info.inject:
                _check_named_dict(cfg, section.get(key), (name, key))
        else:
            _check_named_dict(cfg, section, (name,))
    for name in sorted(_names_in(cfg) & set(_REGISTRY)):
        info = _REGISTRY[name]
        own = cfg.get(name)
        for key in info.shared:
            if key in cfg and not (isinstance(own, dict) and key in own):
                _check_value(info, key, cfg[key], _origin_of(cfg, (key,)), key, shared=True)


# ----------------------------------------------------------------------------------------------
# creation


def _construct(cls, args, kwargs, where, label, sources):
    """``cls(*args, **kwargs)``; a TypeError/ValueError becomes a ConfigError naming the entry and
    the arguments set outside its file (``sources``: {argument: origin})."""
    try:
        return cls(*args, **kwargs)
    except (TypeError, ValueError) as e:  # ConfigError included: the class's own checks
        # arguments set outside the entry's own file are the likely culprits: say where
        home = (where or '').rsplit(':', 1)[0]
        elsewhere = [f'{key} from {origin}' for key, origin in sources.items()
                     if origin and origin.rsplit(':', 1)[0] != home]
        came = f' (arguments set elsewhere: {", ".join(elsewhere)})' if elsewhere else ''
        kind = '' if isinstance(e, ConfigError) else f'{type(e).__name__}: '
        raise ConfigError(f'{_at(where, label)}building {cls.__name__} failed: {kind}{e}{came}') from e


def _build_tag(node, cfg, path):
    """Build (once) the object of a TagNode at config path ``path`` and record the node for merges."""
    if node.built is not None:
        return node.built
    label = dotted(path) if path else None
    info = _lookup(node.name, _SERIALIZABLE)
    if info is None:
        raise ConfigError(f'{_at(node.where, label)}'
                          f'{_unknown("tag", node.name, _SERIALIZABLE)}')
    args, kwargs = list(node.args), {}
    if args and not info.var_args:
        # positional tag arguments become named ones, so a later merge can override one of them
        try:
            bound = inspect.signature(info.cls).bind_partial(*args)
        except TypeError as e:
            raise ConfigError(f'{_at(node.where, label)}!{node.name} {args!r}: {e}') from e
        kwargs, args = dict(bound.arguments), []
    kwargs.update(copy_tree(node.kwargs))
    for key, value in kwargs.items():
        _check_value(info, key, value, node.origin_of((key,)), dotted(path + (key,)))
    _build_tags(kwargs, cfg, path, import_missing=True)
    sources = {k: node.origin_of((k,)) for k in node.kwargs}
    obj = _construct(info.cls, args, kwargs, node.where, label, sources)
    node.built = obj
    _meta(cfg, '_tags')[id(obj)] = node
    return obj


def _registered_tags(value):
    """True if every tag in ``value`` (a TagNode, dict or list) names a registered class."""
    if isinstance(value, TagNode):
        return value.name in _SERIALIZABLE and _registered_tags(value.args) and \
            _registered_tags(value.kwargs)
    if isinstance(value, dict):
        return all(_registered_tags(v) for v in value.values())
    if isinstance(value, list):
        return all(_registered_tags(v) for v in value)
    return True


def _build_tags(container, cfg, path, import_missing):
    """Replace TagNodes inside ``container`` (a dict or list of the config) by their objects, in place.

    ``import_missing=False`` (on load) builds only tags whose class is registered already.
    """
    items = container.items() if isinstance(container, dict) else enumerate(container)
    for key, value in list(items):
        if isinstance(value, TagNode):
            if import_missing or _registered_tags(value):
                container[key] = _build_tag(value, cfg, path + (key,))
        elif isinstance(value, (dict, list)):
            _build_tags(value, cfg, path + (key,), import_missing)


def _find_reference(cfg, name):
    """The config entry whose value is the class name ``name``: ``(origin, key path)`` or None."""
    paths = [(k,) for k, v in cfg.items() if isinstance(v, str) and v == name]
    for k, section in cfg.items():
        if isinstance(section, dict):
            paths += [(k, sub) for sub, v in section.items() if isinstance(v, str) and v == name]
            paths += [(k, sub, 'name') for sub, v in section.items()
                      if isinstance(v, dict) and v.get('name') == name]
    if not paths:
        return None
    return _origin_of(cfg, paths[0]), dotted(paths[0][:2])


def _resolve_inject(value, key, owner, cfg):
    """Build the object an ``__inject__`` argument names."""
    path = (owner, key)
    where, label = _origin_of(cfg, path), dotted(path)
    if isinstance(value, TagNode):
        return _build_tag(value, cfg, path)
    if value is None or not isinstance(value, (str, dict)):
        return value  # already an object (or explicitly None)
    if isinstance(value, dict):
        if 'name' not in value:
            raise ConfigError(f"{_at(where, label)}an injected dict needs a 'name' key naming a "
                              f"class, got {dict(value)!r}")
        args = {k: v for k, v in value.items() if k != 'name'}
        return _build(value['name'], cfg, args, ref=(where, label), args_path=path)
    entry = cfg.get(value)
    if isinstance(entry, TagNode):
        cfg[value] = _build_tag(entry, cfg, (value,))
        return cfg[value]
    if entry is not None and not isinstance(entry, (dict, str, list)):
        return entry  # a tagged object stored under a top-level key
    return _build(value, cfg, {}, ref=(where, label))


def _build(name, cfg, overrides, ref=None, args_path=None, **from_config_kwargs):
    """Build ``name``: a registered class (from its section, ``overrides`` and shared keys), or a
    top-level key holding a tag, a built object or a ``{name: Class, ...}`` dict.

    Args:
        ref ((origin, label) | None): the config entry that named ``name``, for messages.
        args_path (tuple | None): config path of ``overrides`` (an injected ``{name: ...}`` dict).
    """
    info = _REGISTRY.get(name)
    if info is None:
        entry = cfg.get(name)
        if isinstance(entry, TagNode):
            cfg[name] = _build_tag(entry, cfg, (name,))
            return cfg[name]
        if entry is not None and not isinstance(entry, (dict, str, list, tuple, bool, int, float)):
            return entry
        if isinstance(entry, dict) and 'name' in entry:
            # a top-level key holding {name: ClassName, **args}, e.g. TrainDataset
            args = {k: v for k, v in entry.items() if k != 'name'}
            return _build(entry['name'], cfg, args, ref=(_origin_of(cfg, (name, 'name')), name),
                          args_path=(name,))
        info = _lookup(name, _REGISTRY)
        if info is None:
            where, label = ref or _find_reference(cfg, name) or (None, None)
            raise ConfigError(f'{_at(where, label)}{_unknown("class", name, _REGISTRY)}')
    section = cfg.get(name)
    where, label = _origin_of(cfg, (name,)), name
    if isinstance(section, (bool, int, float, str, list, tuple)):
        raise ConfigError(f'{_at(where, label)}a section of constructor arguments must be a '
                          f'mapping, got {type(section).__name__} {section!r}')
    if isinstance(section, TagNode):
        cfg[name] = _build_tag(section, cfg, (name,))
        return cfg[name]
    if section is not None and not isinstance(section, dict):
        return section  # an already-built object
    if section is not None:
        _build_tags(section, cfg, (name,), import_missing=True)
    if overrides:
        _build_tags(overrides, cfg, args_path or (name,), import_missing=True)
    sources = {k: _origin_of(cfg, (name, k)) for k in section or {}}
    sources.update({k: _origin_of(cfg, (args_path or (name,)) + (k,)) for k in overrides})
    kwargs = dict(section or {})
    kwargs.update(overrides)
    for key, value in kwargs.items():
        key_path = ((args_path or (name,)) if key in overrides else (name,)) + (key,)
        _check_value(info, key, value, sources[key], dotted(key_path),
                     check_type=key not in info.inject)

    for key in info.shared:
        if key not in kwargs and key in cfg:
            _check_value(info, key, cfg[key], _origin_of(cfg, (key,)), key, shared=True)
            kwargs[key] = cfg[key]
            sources[key] = _origin_of(cfg, (key,))
    for key in info.inject:
        value = kwargs.get(key, info.params.get(key))
        if value is not _REQUIRED:
            kwargs[key] = _resolve_inject(value, key, name, cfg)

    where = where or (ref[0] if ref else None)
    label = ref[1] if ref and not cfg.get(name) else label
    from_config = getattr(info.cls, 'from_config', None)
    if from_config is not None:
        # the hook sees the constructor defaults too, as PaddleDetection's schema provides them
        section_view = {k: d for k, d in info.params.items() if d is not _REQUIRED}
        section_view.update(kwargs)
        try:
            kwargs.update(from_config(section_view, **from_config_kwargs) or {})
        except ConfigError as e:
            # the inner message starts with the offending value's origin and key: keep it first
            outer = f' at {where}' if where else ''
            raise ConfigError(f'{e} (while building {name}{outer})') from e
        except KeyError as e:
            raise ConfigError(f'{_at(where, label)}{name}.from_config needs the argument {e} '
                              f'(set it in the {name} section)') from e
    elif from_config_kwargs:
        kwargs.update(from_config_kwargs)

    missing = [k for k, d in info.params.items() if d is _REQUIRED and k not in kwargs]
    if missing:
        raise ConfigError(f'{_at(where, label)}{name} is missing required argument(s) '
                          f'{", ".join(missing)} (set them in the {name} section)')
    return _construct(info.cls, [], kwargs, where, label,
                      {k: s for k, s in sources.items() if s})


def create(cls_or_name, cfg=None, **kwargs):
    """Build a registered class from the config.

    Args:
        cls_or_name (str | type): a registered class (or its name), a top-level key holding a
            tagged object (built on first use, then stored in the config in its place and returned
            as is) or a ``{name: ClassName, **args}`` dict (built anew on each call).
        cfg (dict | None): the config; defaults to the current one (see ``load_config``).
        **kwargs: passed to the class's ``from_config`` hook (e.g. ``input_shape=``), or straight
            to the constructor when it has none.
    Raises:
        ConfigError: naming the origin and key of the offending value.
    """
    if isinstance(cls_or_name, type):
        name = cls_or_name.__name__
    elif isinstance(cls_or_name, str):
        name = cls_or_name
    else:
        raise ConfigError(f'create() takes a class or a class name, got {type(cls_or_name).__name__} '
                          f'{cls_or_name!r}')
    cfg = current_config() if cfg is None else cfg
    with _using(cfg):
        return _build(name, cfg, {}, **kwargs)
