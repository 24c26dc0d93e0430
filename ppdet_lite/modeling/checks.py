"""Argument and input checks at module boundaries, with messages a user can act on.

Constructors check their arguments here so that a wrong value fails at construction, naming the
class, the argument and the value, instead of deep inside a Paddle kernel later (or never, while
training silently goes wrong). Forward passes check the *static* properties of their inputs (rank,
known sizes, dtype): these cost no device work and no host synchronisation. Value ranges of tensors
need a device-to-host copy and are checked only where one already happens (see the assigners).

Every function raises ``TypeError`` for a value of the wrong kind and ``ValueError`` for a value
out of range; messages read ``"<owner>: <name> must be <expectation>, got <value>"``.
"""

import numbers

__all__ = ['check_bool', 'check_int', 'check_number', 'check_choice', 'check_int_list',
           'check_tensor', 'dtype_name', 'size_multiple']


def _fail(error, owner, name, expectation, value):
    raise error(f'{owner}: {name} must be {expectation}, got {value!r}')


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_bool(owner, name, value):
    """``value`` is True or False (YAML ``true``/``false``; strings such as 'False' are refused)."""
    if not isinstance(value, bool):
        _fail(TypeError, owner, name, 'true or false', value)


def check_int(owner, name, value, minimum=None, also=()):
    """``value`` is an integer (not a bool) ``>= minimum``, or one of the special values ``also``
    (e.g. -1 for "no limit")."""
    if _is_int(value) and value in also:
        return
    special = ''.join(f' or {v}' for v in also)
    bound = '' if minimum is None else f' >= {minimum}'
    if not _is_int(value):
        _fail(TypeError, owner, name, f'an integer{bound}{special}', value)
    if minimum is not None and value < minimum:
        _fail(ValueError, owner, name, f'an integer{bound}{special}', value)


def check_number(owner, name, value, low=None, high=None, low_open=False, high_open=False):
    """``value`` is a real number within the bounds (closed unless ``*_open``; None: unbounded)."""
    lo = '' if low is None else ('(' if low_open else '[') + f'{low}, '
    hi = '' if high is None else f'{high}' + (')' if high_open else ']')
    if low is None and high is None:
        expectation = 'a number'
    elif high is None:
        expectation = f'a number {">" if low_open else ">="} {low}'
    elif low is None:
        expectation = f'a number {"<" if high_open else "<="} {high}'
    else:
        expectation = f'a number in {lo}{hi}'
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        _fail(TypeError, owner, name, expectation, value)
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high or value != value:  # the last one: NaN
        _fail(ValueError, owner, name, expectation, value)


def check_choice(owner, name, value, choices):
    """``value`` is one of ``choices``."""
    if value not in choices:
        _fail(ValueError, owner, name, 'one of ' + ', '.join(repr(c) for c in choices), value)


def check_int_list(owner, name, value, minimum=1, length=None):
    """``value`` is a non-empty list or tuple of integers ``>= minimum`` (of ``length`` items when
    given)."""
    what = f'a non-empty list of integers >= {minimum}'
    if length is not None:
        what = f'a list of {length} integers >= {minimum}'
    if not isinstance(value, (list, tuple)) or not value:
        _fail(TypeError, owner, name, what, value)
    if not all(_is_int(v) for v in value):
        _fail(TypeError, owner, name, what, value)
    if any(v < minimum for v in value) or (length is not None and len(value) != length):
        _fail(ValueError, owner, name, what, value)


def dtype_name(dtype):
    """'float32' for ``paddle.float32`` (also for Paddle 3's DataType and numpy dtypes)."""
    return str(dtype).replace('paddle.', '').replace('VarType.', '').lower()


def check_tensor(owner, name, tensor, spec, sizes=None, dtypes=None):
    """Check a tensor's rank, sizes and dtype without touching its values.

    Args:
        owner (str): who checks (class or function name), for the message.
        name (str): the tensor's name as the caller knows it (e.g. the input dict key).
        tensor: a ``paddle.Tensor`` (or a static-graph variable).
        spec (sequence): one entry per axis: an int (that exact size), a str naming a size that
            must agree among the tensors checked with the same ``sizes`` dict ('B', 'n', 'L', ...),
            or None (any size). Unknown sizes (-1 in static graphs) always pass.
        sizes (dict | None): named sizes seen so far; updated with the ones this tensor fixes.
        dtypes (sequence[str] | None): allowed dtype names ('float32', 'int64', ...).
    Raises:
        TypeError: not a tensor, or a dtype outside ``dtypes``.
        ValueError: wrong rank or size, naming the expected layout and the actual shape.
    """
    layout = '[' + ', '.join('*' if s is None else str(s) for s in spec) + ']'
    if not (hasattr(tensor, 'shape') and hasattr(tensor, 'dtype')):
        raise TypeError(f'{owner}: {name} must be a paddle.Tensor of shape {layout}, got '
                        f'{type(tensor).__name__}')
    shape = list(tensor.shape)
    if dtypes is not None and dtype_name(tensor.dtype) not in dtypes:
        raise TypeError(f'{owner}: {name} must have dtype {" or ".join(dtypes)}, got '
                        f'{dtype_name(tensor.dtype)} (shape {shape})')
    if len(shape) != len(spec):
        raise ValueError(f'{owner}: {name} must be {layout} ({len(spec)}-D), got shape {shape}')
    sizes = {} if sizes is None else sizes
    for axis, (want, got) in enumerate(zip(spec, shape)):
        if want is None or got is None or got < 0:
            continue
        if isinstance(want, str):
            seen = sizes.setdefault(want, (got, name))
            if seen[0] < 0:
                sizes[want] = (got, name)
            elif seen[0] != got:
                raise ValueError(f'{owner}: {name} has {want}={got} on axis {axis} (shape '
                                 f'{shape}) but {seen[1]} has {want}={seen[0]}; expected {layout}')
        elif want != got:
            raise ValueError(f'{owner}: {name} must be {layout}, got shape {shape}')


def size_multiple(owner, what, height, width, multiple, rule):
    """Input height and width (ints; negative = unknown) must be multiples of ``multiple``.

    ``rule`` says where the multiple comes from, e.g. "the largest of PPYOLOEHead.fpn_strides".
    """
    bad = [s for s in (height, width) if s is not None and s >= 0 and s % multiple]
    if bad:
        fix = [(s + multiple - 1) // multiple * multiple if s >= 0 else s for s in (height, width)]
        raise ValueError(f'{owner}: {what} is {height} x {width} (h x w); both must be multiples '
                         f'of {multiple} ({rule}), so that every FPN level is exactly half the '
                         f'size of the next finer one; resize or pad the input, e.g. to '
                         f'{fix[0]} x {fix[1]}')
