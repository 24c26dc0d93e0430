"""The config as data: YAML files with ``_BASE_``, ``!ClassName`` tag nodes, merges keeping origins.

Every value of a loaded config has an *origin*, used by every error message: ``file:line`` for a value
read from a file, ``-o override`` for a value merged afterwards. Origins live in a dict
``{key path: origin}`` whose paths are tuples of mapping keys and list indices
(``('PPYOLOEHead', 'assigner', 'topk')``, ``('TrainReader', 'sample_transforms', 0, 'Decode')``).

A ``!ClassName {...}`` tag is read as a ``TagNode`` (class name + arguments + their origins), not as an
object: ``ppdet_lite.core.workspace`` builds it and keeps the node as the record of the object's
arguments, so that a later mapping merged onto it (a file over its ``_BASE_``, ``-o Key.arg=v``, a dict
override) updates those arguments and keeps the class, instead of replacing the object by a plain dict.

Merge rules (PaddleDetection's ``dict_merge``, plus what it does not define), for a value ``new`` merged
onto ``old`` at one key:

* mapping onto mapping: merged key by key; if both carry a different ``name:`` the new one replaces the
  old (another class takes other arguments);
* mapping onto a tag (or onto the object built from one): the tag's arguments are updated, the class kept
  (a ``name:`` naming another class replaces it);
* mapping without ``name:`` onto a string (an injected class name such as ``assigner: ATSSAssigner``):
  becomes ``{name: ATSSAssigner, **new}``;
* mapping onto a list, a number, a boolean or another object: ConfigError (lists are replaced whole:
  ``-o 'TrainReader.sample_transforms=[...]'``, as in PaddleDetection);
* anything else: ``new`` replaces ``old`` (lists included).
"""

import os
import re

import yaml

__all__ = ['BASE_KEY', 'OVERRIDE', 'ConfigError', 'TagNode', 'copy_tree', 'dotted', 'merge_tree',
           'parse_yaml_value', 'read_config_file']

BASE_KEY = '_BASE_'
OVERRIDE = '-o override'


class ConfigError(ValueError):
    """A config problem; the message starts with where the value came from and its key."""


def dotted(path):
    """``('A', 'b', 0, 'C')`` -> ``'A.b[0].C'``: a key path as a user writes it."""
    text = ''
    for part in path:
        text += f'[{part}]' if isinstance(part, int) else (f'.{part}' if text else str(part))
    return text


class TagNode:
    """A ``!ClassName`` value as written.

    Attributes:
        name (str): the class name after ``!``.
        args (list): positional arguments (``!Cls [a, b]`` or a scalar ``!Cls a``).
        kwargs (dict): keyword arguments (``!Cls {k: v}``); may hold nested dicts, lists and TagNodes.
        where (str): origin of the tag itself (``file:line`` or ``-o override``).
        origins (dict): ``{path inside kwargs: origin}``.
        built: the object built from this node (None until built; set by the workspace).

    A node is never changed once read: merging a mapping onto it returns a new node (``merged``).
    """

    def __init__(self, name, args, kwargs, where, origins=None):
        self.name, self.args, self.kwargs, self.where = name, list(args), kwargs, where
        self.origins = dict(origins or {})
        self.built = None

    def origin_of(self, path):
        """Origin of the argument at ``path`` (a tuple), falling back to the tag's own origin."""
        for n in range(len(path), 0, -1):
            if path[:n] in self.origins:
                return self.origins[path[:n]]
        return self.where

    def merged(self, update, source_of, tag_of):
        """A new node whose kwargs are these merged with the mapping ``update``.

        Args:
            update (dict): the new arguments (without ``name``).
            source_of (callable): ``path inside kwargs -> origin`` of the update's values.
            tag_of (callable): ``value -> TagNode | None``, for built objects inside the kwargs.
        """
        node = TagNode(self.name, self.args, copy_tree(self.kwargs), self.where, self.origins)
        merge_tree(node.kwargs, update, node.origins, source_of, (), tag_of)
        return node

    def __getattr__(self, attr):
        if attr.startswith('_') or attr in ('name', 'args', 'kwargs', 'where', 'origins', 'built'):
            raise AttributeError(attr)
        raise AttributeError(f'{self.where}: !{self.name} is not built yet, so it has no {attr!r}: '
                             f'get the object with create(<its config key>)')

    def __repr__(self):
        return f'TagNode(!{self.name} at {self.where})'


def copy_tree(obj):
    """Copy nested dicts and lists (keeping their types); other values, TagNodes included, are shared."""
    if isinstance(obj, dict):
        dup = type(obj)()
        for k, v in obj.items():
            dup[k] = copy_tree(v)
        return dup
    if isinstance(obj, list):
        return [copy_tree(v) for v in obj]
    return obj


# ----------------------------------------------------------------------------------------------
# merging


def _clear_below(origin, path):
    stale = [p for p in origin if len(p) > len(path) and p[:len(path)] == path]
    for p in stale:
        del origin[p]


def _set_origins(origin, path, value, source_of):
    """Record ``value``'s origin at ``path`` and at every path inside it."""
    origin[path] = source_of(path)
    if isinstance(value, dict):
        for k, v in value.items():
            _set_origins(origin, path + (k,), v, source_of)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _set_origins(origin, path + (i,), v, source_of)


def _replace(dst, key, value, origin, path, source_of):
    dst[key] = value
    _clear_below(origin, path)
    _set_origins(origin, path, value, source_of)


def _describe(value):
    if isinstance(value, list):
        return f'a list ({len(value)} items)'
    if isinstance(value, (bool, int, float)):
        return f'the {type(value).__name__} {value!r}'
    return f'an object of type {type(value).__name__}'


def merge_tree(dst, src, origin, source_of, path=(), tag_of=None):
    """Merge the mapping ``src`` into the mapping ``dst`` in place, following the module's rules.

    Args:
        dst (dict): the config level at ``path``.
        src (dict): the values to merge in.
        origin (dict): ``{path: origin}`` of ``dst``'s root, updated for every value taken from ``src``.
        source_of (callable): ``path -> origin`` of ``src``'s values (paths from the same root).
        path (tuple): where ``dst`` sits in the config.
        tag_of (callable | None): ``value -> TagNode | None`` finds the node a built object came from.
    Raises:
        ConfigError: a mapping merged onto a list, number, boolean or other object.
    """
    tag_of = tag_of or (lambda value: None)
    for k, new in src.items():
        p = path + (k,)
        old = dst.get(k)
        if not isinstance(new, dict):
            _replace(dst, k, new, origin, p, source_of)
            continue
        node = old if isinstance(old, TagNode) else tag_of(old)
        renamed = 'name' in new and isinstance(old, dict) and new['name'] != old.get('name', new['name'])
        if isinstance(old, dict) and not renamed:
            origin.setdefault(p, source_of(p))
            merge_tree(old, new, origin, source_of, p, tag_of)
        elif node is not None and new.get('name', node.name) == node.name:
            update = {a: v for a, v in new.items() if a != 'name'}
            dst[k] = node.merged(update, lambda rel, p=p: source_of(p + rel), tag_of)
        elif isinstance(old, str) and 'name' not in new:
            # ``assigner: ATSSAssigner`` then ``assigner.topk=9``: arguments for that class
            named = type(new)(name=old)
            dst[k] = named
            merge_tree(named, new, origin, source_of, p, tag_of)
        elif old is None or isinstance(old, (dict, str)) or node is not None:
            _replace(dst, k, new, origin, p, source_of)
        else:
            rule = ' (a list is replaced whole: give the full list)' if isinstance(old, list) else ''
            raise ConfigError(f'{source_of(p)}: {dotted(p)}: cannot merge the mapping {dict(new)!r} '
                              f'into {_describe(old)} set at {origin.get(p, "<config>")}{rule}')
    return dst


# ----------------------------------------------------------------------------------------------
# reading YAML


class _Loader(yaml.SafeLoader):
    """Our own loader: ``!ClassName`` tags become TagNodes, mappings record each key's line, and
    duplicate keys are errors; other users of PyYAML are unaffected."""

    def __init__(self, stream, source=None):
        super().__init__(stream)
        if source is not None:
            self.name = source
        self.key_origins = {}  # id(mapping) -> {key: origin}; id(list) -> [origin of each item]

    def origin(self, mark):
        if self.name == OVERRIDE:
            return OVERRIDE
        return f'{mark.name}:{mark.line + 1}'

    def mapping_with_origins(self, node, deep):
        seen = {}
        for key_node, _ in node.value:
            if key_node.tag == 'tag:yaml.org,2002:merge':
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node)
            except TypeError:
                continue  # unhashable key: construct_mapping reports it
            if first is not key_node:
                raise ConfigError(f'{self.origin(key_node.start_mark)}: key {key!r} appears twice in '
                                  f'one mapping (first at line {first.start_mark.line + 1}); YAML would '
                                  f'silently keep only the last one')
        data = self.construct_mapping(node, deep=deep)
        self.key_origins[id(data)] = {self.construct_object(key_node, deep=True):
                                      self.origin(key_node.start_mark)
                                      for key_node, _ in node.value}
        return data


# YAML 1.1 reads ``1e-9`` (no dot) as a string; configs and ``-o eps=1e-9`` mean a float.
_Loader.add_implicit_resolver(
    'tag:yaml.org,2002:float',
    re.compile(r'^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$'),
    list('-+0123456789'))


def _construct_map(loader, node):
    data = {}
    yield data
    content = loader.mapping_with_origins(node, deep=False)
    data.update(content)
    loader.key_origins[id(data)] = loader.key_origins.pop(id(content))


def _construct_seq(loader, node):
    data = []
    yield data
    data.extend(loader.construct_sequence(node))
    loader.key_origins[id(data)] = [loader.origin(item.start_mark) for item in node.value]


def _construct_tag(loader, suffix, node):
    where = loader.origin(node.start_mark)
    if isinstance(node, yaml.SequenceNode):
        return TagNode(suffix, loader.construct_sequence(node, deep=True), {}, where)
    if isinstance(node, yaml.MappingNode):
        return TagNode(suffix, [], loader.mapping_with_origins(node, deep=True), where)
    value = loader.construct_scalar(node)
    return TagNode(suffix, [] if value in ('', None) else [value], {}, where)


_Loader.add_constructor('tag:yaml.org,2002:map', _construct_map)
_Loader.add_constructor('tag:yaml.org,2002:seq', _construct_seq)
_Loader.add_multi_constructor('!', _construct_tag)


def _collect_origins(value, path, key_origins, origin, fallback):
    """Fill ``origin`` for every path inside ``value``; TagNodes get their own (relative) origins."""
    if isinstance(value, TagNode):
        _collect_origins(value.kwargs, (), key_origins, value.origins, value.where)
        for v in value.args:
            _collect_origins(v, None, key_origins, {}, value.where)
        return
    if isinstance(value, dict):
        lines = key_origins.get(id(value), {})
        for k, v in value.items():
            where = lines.get(k, fallback)
            if path is not None:
                origin[path + (k,)] = where
            _collect_origins(v, None if path is None else path + (k,), key_origins, origin, where)
    elif isinstance(value, list):
        lines = key_origins.get(id(value)) or [fallback] * len(value)
        for i, v in enumerate(value):
            if path is not None:
                origin[path + (i,)] = lines[i]
            _collect_origins(v, None if path is None else path + (i,), key_origins, origin, lines[i])


def _load(stream, source=None):
    loader = _Loader(stream, source)
    try:
        data = loader.get_single_data()
        origin = {}
        _collect_origins(data, (), loader.key_origins, origin, loader.name)
        return data, origin
    finally:
        loader.dispose()


def parse_yaml_value(text, source=OVERRIDE):
    """Read one YAML value (an ``-o`` right-hand side); its tags' origin is ``source``."""
    return _load(text, source)[0]


def read_config_file(path, stack=()):
    """Read ``path`` and its ``_BASE_`` files (merged first, in order; this file last).

    Returns:
        (dict, dict): the merged tree and its ``{path: 'file:line'}`` origins.
    Raises:
        ConfigError: invalid YAML, a duplicate key, a non-mapping file, a bad or missing ``_BASE_``
            entry, or an inheritance cycle; each names the file.
    """
    path = os.path.abspath(path)
    if path in stack:
        chain = ' -> '.join(list(stack) + [path])
        raise ConfigError(f'{path}: {BASE_KEY} inheritance cycle: {chain}')
    with open(path) as f:
        try:
            data, file_origin = _load(f)
        except yaml.YAMLError as e:
            raise ConfigError(f'{path}: invalid YAML: {e}') from e
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ConfigError(f'{path}: a config file must hold a mapping at top level, got '
                          f'{type(data).__name__}')

    merged, origin = {}, {}
    bases = data.pop(BASE_KEY, [])
    where = file_origin.get((BASE_KEY,), path)
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise ConfigError(f'{where}: {BASE_KEY} must be a file name or a list of file names, '
                          f'got {bases!r}')
    for base in bases:
        base_path = os.path.join(os.path.dirname(path), os.path.expanduser(base))
        if not os.path.isfile(base_path):
            raise ConfigError(f'{where}: {BASE_KEY} entry {base!r} not found '
                              f'(looked for {os.path.normpath(base_path)})')
        sub, sub_origin = read_config_file(base_path, tuple(stack) + (path,))
        merge_tree(merged, sub, origin, lambda p, o=sub_origin: o.get(p, base_path))
    merge_tree(merged, data, origin, lambda p: file_origin.get(p, path))
    return merged, origin
