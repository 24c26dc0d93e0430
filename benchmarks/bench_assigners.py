"""Milliseconds and host synchronisations per ``assign`` call of every label assigner and sampler.

Inputs, as PP-YOLOE's head hands them to the loss at a 640 x 640 input: priors of the levels
(20, 20), (40, 40), (80, 80) with strides 32, 16, 8 (L = 8400, ``grid_priors``), batch 8,
80 classes, GT boxes of 8-400 px (log-uniform sides) inside the image with every other image's
slots up to a quarter padded, and random predictions (probabilities sigmoid(U(-8, 3)), boxes
1-213 px (log-uniform) from the prior point on each side). Cases (columns):

- ``n=20``, ``n=100``: GT slots per image;
- ``untrained n=100``, ``untrained n=650``: an untrained head's predictions, all equal (every class
  0.01, a box 8 strides from the point on each side): every ranking by prediction ties;
- ``whole-px n=100``: GT corners rounded to whole pixels, so GT centres often lie on the prior
  grid's symmetry lines, where distances tie.

Each figure is the median of up to ``--reps`` timed calls (as many as fit in ``--budget``
seconds, at least one) after a first call; a first call longer than the budget is the figure
itself (marked ``*``). The host synchronisations are counted during the first call by wrapping
what copies a device value to the host or makes a shape depend on one: ``Tensor.numpy / item /
tolist / cpu / __array__ / __bool__ / __int__ / __float__ / __index__ / nonzero``,
``paddle.nonzero / masked_select / unique`` and indexing by a bool tensor (nested calls count
once). On a CPU these cost little; on a GPU each one stalls the stream. The load average is
printed before and after: on a shared machine the figures are only as good as it.

Assigners with an ``impl`` argument are measured with each of ``'fast'`` and ``'dense'``, those
with a ``candidate_scope`` with each of ``'image'`` and ``'gt'`` (default first);
``--check`` compares fast and dense on every case (gt_index, labels, boxes identical; soft scores to
1e-6 relative). Samplers are measured inside ``MaxIoUAssigner(sampler=...)`` with their
defaults (the whole ``assign`` call). Public reference figures (torch, 2 threads, same inputs;
from issue 12) are printed beside.

    python benchmarks/bench_assigners.py [--reps 5] [--budget 3] [--check] [--where] [--quick]
                                         [--only SimOTAAssigner ...]
"""

import argparse
import functools
import inspect
import os
import statistics
import sys
import time
import traceback

import numpy as np
import paddle

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from ppdet_lite.modeling import assigners as zoo  # noqa: E402
from ppdet_lite.modeling.assigners import GTs, Preds, grid_priors  # noqa: E402

SIZE, STRIDES, BATCH, CLASSES = 640, [32, 16, 8], 8, 80
CASES = [('n=20', 20, 'random'), ('n=100', 100, 'random'), ('untrained n=100', 100, 'untrained'),
         ('untrained n=650', 650, 'untrained'), ('whole-px n=100', 100, 'whole')]
QUICK_CASES = [('n=20', 20, 'random')]
# ms per batch of 8 at n=20 / n=100, torch on this machine's CPU with 2 threads (issue 12).
REFERENCES = {
    'ATSSAssigner': [('PaddleDetection 2.6', 463, 2164)],
    'TaskAlignedAssigner': [('PaddleDetection 2.6', 391, 2033)],
    'SimOTAAssigner': [('YOLOX (current)', 83, 695), ('YOLOX 0.3.0', 432, 5385),
                       ('mmdet', 374, 4688)],
    'DynamicSoftLabelAssigner': [('NanoDet-Plus', 328, 5355), ('mmdet', 190, 5589),
                                 ('mmyolo (batched)', 93, 529)],
}
# Constructor choices measured separately where an assigner has them: its implementations, and
# SimOTA's and DSL's candidate scope (the published image-wide one, or each GT's own region).
VARIANTS = {'impl': ('fast', 'dense'), 'candidate_scope': ('image', 'gt')}
ASSIGNERS = ['ATSSAssigner', 'TaskAlignedAssigner', 'SimOTAAssigner', 'DynamicSoftLabelAssigner',
             'MaxIoUAssigner', 'FCOSAssigner', 'YOLOv3Assigner']
SAMPLERS = ['RandomSampler', 'IoUBalancedNegSampler', 'OHEMSampler']


# ----------------------------------------------------------------------------------------------
# inputs


def make_priors():
    shapes = [(SIZE // s, SIZE // s) for s in STRIDES]
    return grid_priors(shapes, STRIDES)


def make_inputs(priors, num_gts, kind, seed=0):
    """(GTs, Preds) of one case, see the module docstring."""
    rng = np.random.default_rng(seed)
    wh = np.exp(rng.uniform(np.log(8), np.log(400), (BATCH, num_gts, 2)))
    x1y1 = rng.uniform(0, 1, (BATCH, num_gts, 2)) * (SIZE - wh)
    boxes = np.concatenate([x1y1, x1y1 + wh], axis=-1)
    if kind == 'whole':
        boxes = np.round(boxes)
    num_real = np.full(BATCH, num_gts)
    num_real[1::2] -= rng.integers(0, num_gts // 4 + 1, BATCH // 2)
    mask = (np.arange(num_gts)[None] < num_real[:, None]).astype('float32')[..., None]
    labels = rng.integers(0, CLASSES, (BATCH, num_gts, 1)) * mask.astype('int64')

    points = priors.points.numpy()
    num_priors = len(points)
    if kind == 'untrained':
        scores = np.full((BATCH, num_priors, CLASSES), 0.01)
        distance = np.broadcast_to(8 * priors.strides.numpy()[None, :, None],
                                   (BATCH, num_priors, 4))
    else:
        scores = 1 / (1 + np.exp(-rng.uniform(-8, 3, (BATCH, num_priors, CLASSES))))
        distance = np.exp(rng.uniform(0, np.log(SIZE / 3), (BATCH, num_priors, 4)))
    pred = np.concatenate([points - distance[..., :2], points + distance[..., 2:]], axis=-1)
    as_float = lambda a: paddle.to_tensor(np.ascontiguousarray(a, 'float32'))  # noqa: E731
    gts = GTs(paddle.to_tensor(labels.astype('int32')), as_float(boxes * mask), as_float(mask))
    return gts, Preds(as_float(scores), as_float(pred))


# ----------------------------------------------------------------------------------------------
# host synchronisations


class SyncCounter(object):
    """Counts host synchronisations while active (``with SyncCounter() as c: ...; c.count``)."""

    TENSOR_METHODS = ('numpy', 'item', 'tolist', 'cpu', '__array__', '__bool__', '__int__',
                      '__float__', '__index__', 'nonzero')
    PADDLE_FUNCTIONS = ('nonzero', 'masked_select', 'unique')

    def __init__(self):
        self.count = 0
        self.where = []  # (what, 'file:line' of the innermost ppdet_lite frame) per sync
        self._depth = 0
        self._saved = []

    def _wrap(self, fn, counts=lambda *a, **k: True):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            outer = self._depth == 0 and counts(*args, **kwargs)
            self._depth += 1
            try:
                return fn(*args, **kwargs)
            finally:
                self._depth -= 1
                if outer:
                    self.count += 1
                    self.where.append((fn.__name__, _caller()))
        return wrapper

    def _patch(self, owner, name, counts=None):
        original = getattr(owner, name, None)
        if original is None:
            return
        self._saved.append((owner, name, original))
        setattr(owner, name, self._wrap(original, counts) if counts else self._wrap(original))

    def __enter__(self):
        for name in self.TENSOR_METHODS:
            self._patch(paddle.Tensor, name)
        for name in self.PADDLE_FUNCTIONS:
            self._patch(paddle, name)
        self._patch(paddle, 'where', lambda condition, x=None, y=None, name=None: x is None)
        self._patch(paddle.Tensor, '__getitem__', _bool_index)
        return self

    def __exit__(self, *exc):
        for owner, name, original in reversed(self._saved):
            setattr(owner, name, original)
        self._saved = []


def _caller():
    """'path:line' of the innermost ppdet_lite frame of the current stack."""
    for frame in reversed(traceback.extract_stack()[:-2]):
        if os.sep + 'ppdet_lite' + os.sep in frame.filename:
            return '%s:%d' % (os.path.relpath(frame.filename, ROOT), frame.lineno)
    return '?'


def _bool_index(tensor, index):
    items = index if isinstance(index, tuple) else (index,)
    return any(isinstance(i, paddle.Tensor) and i.dtype == paddle.bool for i in items)


# ----------------------------------------------------------------------------------------------
# what is measured


def _variants(cls):
    """Constructor arguments to measure ``cls`` with: one dict per combination of the
    ``VARIANTS`` its constructor takes, the default value first."""
    params = inspect.signature(cls.__init__).parameters
    combos = [{}]
    for arg, values in VARIANTS.items():
        if arg in params:
            default = params[arg].default
            ordered = [default] + [v for v in values if v != default]
            combos = [dict(c, **{arg: v}) for c in combos for v in ordered]
    return combos


def runners(only=None):
    """``[(row label, class name, constructor arguments, fn(priors, gts, preds) ->
    AssignResult)]`` for the assigners ``ppdet_lite.modeling.assigners`` exports (each variant),
    and MaxIoUAssigner with each sampler."""
    rows = []
    for name in ASSIGNERS:
        cls = getattr(zoo, name, None)
        if cls is None or (only and name not in only):
            continue
        for kwargs in _variants(cls):
            shown = ', '.join(f'{k}={v}' for k, v in kwargs.items())
            rows.append((name + (f' ({shown})' if shown else ''), name, kwargs,
                         cls(num_classes=CLASSES, **kwargs).assign))
    for name in SAMPLERS:
        if not hasattr(zoo, name) or not hasattr(zoo, 'MaxIoUAssigner') or (
                only and name not in only):
            continue
        assigner = zoo.MaxIoUAssigner(num_classes=CLASSES, sampler=name)
        rows.append((f'MaxIoUAssigner + {name}', name, {}, assigner.assign))
    return rows


def measure(fn, reps, budget):
    """(median ms per call, whether that is a single call, host syncs, [(what, where)]).

    The first call counts the host synchronisations (and warms up); then up to ``reps`` timed
    calls, as many as fit in ``budget`` seconds but at least one. A first call longer than
    ``budget`` is the figure itself (marked single): repeating a call of tens of seconds on a
    shared machine adds nothing.
    """
    with SyncCounter() as counter:
        start = time.perf_counter()
        fn()
        first = time.perf_counter() - start
    times = []
    if first <= budget:
        while len(times) < reps and (not times or sum(times) + times[-1] <= budget):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    single = len(times) <= 1
    return 1000 * statistics.median(times or [first]), single, counter.count, counter.where


def compare(a, b):
    """'identical' when gt_index, labels and boxes are equal and soft scores agree to 1e-6
    relative; else what differs."""
    diffs = [field for field in ('gt_index', 'assigned_labels', 'assigned_bboxes')
             if not np.array_equal(getattr(a, field).numpy(), getattr(b, field).numpy())]
    sa, sb = a.assigned_scores.numpy(), b.assigned_scores.numpy()
    if not np.allclose(sa, sb, rtol=1e-6, atol=1e-12):
        diffs.append('assigned_scores (max rel diff %.2g)' % (
            np.abs(sa - sb).max() / max(np.abs(sb).max(), 1e-12)))
    return 'identical' if not diffs else 'DIFFERENT: ' + ', '.join(diffs)


def _reference_text(name):
    return '; '.join(f'{who} {n20} / {n100}' for who, n20, n100 in REFERENCES.get(name, []))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--reps', type=int, default=5, help='timed calls per figure (median)')
    parser.add_argument('--budget', type=float, default=3.0,
                        help='seconds of timed calls per figure at most (at least one call)')
    parser.add_argument('--check', action='store_true',
                        help="compare impl 'fast' with 'dense' on every case")
    parser.add_argument('--quick', action='store_true',
                        help='one case (n=20), one timed call: a smoke run')
    parser.add_argument('--only', nargs='+', help='class names to measure (default: all)')
    parser.add_argument('--where', action='store_true',
                        help='list where in ppdet_lite each counted host sync happens')
    args = parser.parse_args(argv)
    paddle.set_device('cpu')
    reps = 1 if args.quick else args.reps
    cases = QUICK_CASES if args.quick else CASES
    priors = make_priors()
    rows = runners(args.only)
    print('paddle %s, %d CPUs, load average %.1f; batch %d, %d priors, %d classes; median ms per '
          'call of up to %d' % (paddle.__version__, os.cpu_count(), os.getloadavg()[0], BATCH,
                                priors.points.shape[0], CLASSES, reps), flush=True)
    inputs = {label: make_inputs(priors, num_gts, kind) for label, num_gts, kind in cases}
    print('| assigner | ' + ' | '.join(c[0] for c in cases) +
          ' | host syncs per call | reference ms n=20 / n=100 |')
    print('|' + ' --- |' * (len(cases) + 3))
    table = {}
    checks, sync_places = [], []
    for row, name, kwargs, fn in rows:
        cells, syncs, places = [], [], set()
        for label, _, _ in cases:
            call = functools.partial(fn, priors, *inputs[label])
            ms, single, count, where = measure(call, reps, args.budget)
            cells.append('%.1f%s' % (ms, '*' if single and reps > 1 else ''))
            syncs.append(count)
            places.update(where)
        table[row] = (cells, syncs)
        sync_text = str(syncs[0]) if min(syncs) == max(syncs) else f'{min(syncs)}-{max(syncs)}'
        print('| %s | %s | %s | %s |' % (row, ' | '.join(cells), sync_text,
                                          _reference_text(name)), flush=True)
        if args.where:
            sync_places.append(f'{row}: ' + (', '.join(f'{what} at {where}' for what, where
                                                       in sorted(places)) or 'none'))
        if args.check and kwargs.get('impl') == 'dense':
            fast = next(r[3] for r in rows if r[1] == name and r[2] == dict(kwargs, impl='fast'))
            for label, _, _ in cases:
                same = compare(fast(priors, *inputs[label]), fn(priors, *inputs[label]))
                others = ', '.join(f'{k}={v}' for k, v in kwargs.items() if k != 'impl')
                checks.append(f'{name}{" (" + others + ")" if others else ""} {label}: impl fast '
                              f'vs dense {same}')
    if not args.quick:
        print(f'* a single call (over --budget {args.budget:g} s): not a median')
    print('load average at the end %.1f' % os.getloadavg()[0])
    for line in sync_places + checks:
        print(line)
    return table


if __name__ == '__main__':
    main()
