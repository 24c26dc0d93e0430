"""Candidate (GT, prior) pairs of the centre-region assigners, listed from the prior grid.

SimOTA and Dynamic Soft Label give each GT a candidate set: the priors whose centre lies strictly
inside an axis-aligned region (the GT box, or a square of a few strides around the GT centre). On
each level the priors form a row-major grid (``Priors``' contract), so the priors strictly inside
``(x_lo, x_hi) x (y_lo, y_hi)`` are the columns whose x and the rows whose y lie strictly inside
the bounds: two binary searches per axis in the level's sorted column and row coordinates give a
rectangle of grid indices, compared with the very float32 values a dense ``x > x_lo`` test would
compare. The pairs are then listed rectangle by rectangle, so no ``[B, n, L]`` tensor is formed.

Pairs come out grouped by GT row ``b * n + g`` (ascending) and, within a GT, in ascending prior
index (levels in order, then rows, then columns): the order the tie rule needs.
"""

from collections import namedtuple

import paddle

from .gt_check import gt_probe, raise_for_probe

__all__ = ['GridAxes', 'grid_axes', 'index_range', 'rect_counts', 'fetch_sizes', 'list_pairs',
           'Pairs']

GridAxes = namedtuple('GridAxes', ['xs', 'ys', 'cols', 'starts', 'strides', 'off_grid'])
GridAxes.__doc__ = """The prior grid of every level, levels padded to a common length.

- ``xs [nl, W]`` float32: x of each column (ascending), +inf after the level's last column.
- ``ys [nl, H]`` float32: y of each row (ascending), +inf after the level's last row.
- ``cols [nl]`` int64: columns of each level; ``starts [nl]`` int64: its first prior index.
- ``strides [nl]`` float32: each level's stride, pixels (0 for an empty level).
- ``off_grid [1]`` int64: priors not at (their column's x, their row's y), plus columns or
  rows not strictly increasing; 0 for a regular grid (read with the sizes, ``fetch_sizes``).
"""

Pairs = namedtuple('Pairs', ['gt_row', 'prior', 'col', 'row', 'level'])
Pairs.__doc__ = """Candidate pairs ``[P]`` int64 each: GT row ``b * n + g``, prior index in
``[0, L)``, its column and row on its level's grid, and the level."""


def grid_axes(priors):
    """The per-level column and row coordinates of ``priors`` (a ``base.Priors``).

    Raises:
        ValueError: ``level_shapes`` does not match ``num_anchors_list`` or the points.
    """
    spans = priors.level_spans('Priors')
    shapes = [(span.rows, span.cols) for span in spans]
    counts = [span.size for span in spans]
    width = max([w for _, w in shapes] + [1])
    height = max([h for h, _ in shapes] + [1])
    xs, ys, strides, start = [], [], [], 0
    off_grid = paddle.zeros([1], dtype='int64')
    for h, w in shapes:
        level = priors.points[start:start + h * w]
        x = level[:w, 0] if h * w else paddle.zeros([0], dtype='float32')
        y = level[::w, 1] if h * w else paddle.zeros([0], dtype='float32')
        if h * w:
            grid = level.reshape([h, w, 2])
            off_grid = off_grid + ((grid[:, :, 0] != x.unsqueeze(0)).astype('int64').sum()
                                   + (grid[:, :, 1] != y.unsqueeze(1)).astype('int64').sum()
                                   + (x[1:] <= x[:-1]).astype('int64').sum()
                                   + (y[1:] <= y[:-1]).astype('int64').sum()).reshape([1])
        xs.append(paddle.concat([x, paddle.full([width - x.shape[0]], float('inf'))]))
        ys.append(paddle.concat([y, paddle.full([height - y.shape[0]], float('inf'))]))
        strides.append(priors.strides[start:start + 1] if h * w else paddle.zeros([1]))
        start += h * w
    starts = [0]
    for c in counts[:-1]:
        starts.append(starts[-1] + c)
    return GridAxes(paddle.stack(xs), paddle.stack(ys),
                    paddle.to_tensor([w for _, w in shapes], dtype='int64'),
                    paddle.to_tensor(starts, dtype='int64'),
                    paddle.concat(strides).astype('float32'), off_grid)


def index_range(coords, low, high):
    """Indices ``[lo, hi)`` of the ``coords`` strictly between ``low`` and ``high``.

    Args:
        coords (Tensor): ``[nl, M]`` float32, ascending along M (+inf padding allowed).
        low, high (Tensor): ``[nl, G]`` float32 bounds per level and GT.
    Returns:
        (Tensor, Tensor): ``[nl, G]`` int64 ``lo <= hi``.
    """
    lo = paddle.searchsorted(coords, low, right=True)
    hi = paddle.searchsorted(coords, high, right=False)
    return lo, paddle.maximum(hi, lo)


def rect_counts(c0, c1, r0, r1, is_real):
    """Pairs per (GT, level) of index rectangles ``[c0, c1) x [r0, r1)``, all ``[G, nl]`` int64;
    0 for padded GT slots (``is_real [G]`` bool). Returns ``[G, nl]`` int64."""
    counts = (c1 - c0) * (r1 - r0)
    return paddle.where(is_real.unsqueeze(1), counts, paddle.zeros_like(counts))


def fetch_sizes(owner, axes, gt_len, gts, num_classes):
    """The one host synchronisation of a candidate listing: the number of pairs and the largest
    per GT, fetched together with the grid check (``GridAxes.off_grid``) and the GT check
    (``gt_check.gt_probe``).

    Args:
        owner (str): the assigner, for error messages.
        axes (GridAxes): the grid the pairs come from.
        gt_len (Tensor): ``[G]`` int64 pairs per GT row.
        gts (GTs): the GT batch; num_classes (int): C (also the background index).
    Returns:
        (int, int): total pairs, largest per GT.
    Raises:
        ValueError: priors that are not a row-major grid per level, a real GT with a class
            outside ``[0, C)`` or a non-finite box.
    """
    probe = gt_probe(gts.labels, gts.bboxes, gts.mask, num_classes, num_classes)
    host = paddle.concat([gt_len.sum().reshape([1]), gt_len.max().reshape([1]), axes.off_grid,
                          probe]).numpy()
    if host[2]:
        raise ValueError(f'{owner}: priors.points are not a row-major grid per level '
                         f'(level_shapes, x per column and y per row strictly increasing): '
                         f'{int(host[2])} mismatches; build them with grid_priors, or use '
                         f'candidate_scope: image')
    raise_for_probe(owner, host[3:], gts.bboxes.shape[1], num_classes, num_classes)
    return int(host[0]), int(host[1])


def list_pairs(axes, c0, c1, r0, r1, counts, num_pairs):
    """Every (GT, prior) pair of the rectangles, grouped by GT.

    Args:
        axes (GridAxes): the grid.
        c0, c1, r0, r1 (Tensor): ``[G, nl]`` int64 rectangles (columns, rows).
        counts (Tensor): ``[G, nl]`` int64 from ``rect_counts``.
        num_pairs (int): ``counts.sum()`` read on the host (the caller's synchronisation).
    Returns:
        Pairs.
    """
    num_levels = c0.shape[1]
    if num_pairs == 0:
        empty = paddle.zeros([0], dtype='int64')
        return Pairs(empty, empty, empty, empty, empty)
    flat = counts.reshape([-1])
    ends = paddle.cumsum(flat)
    index = paddle.arange(num_pairs, dtype='int64')
    # The segment (GT, level) of pair p is the first whose end exceeds p; empty ones never are.
    seg = paddle.searchsorted(ends, index, right=True)
    local = index - paddle.gather(ends - flat, seg)
    width = paddle.gather((c1 - c0).reshape([-1]), seg)
    col = paddle.gather(c0.reshape([-1]), seg) + local % width
    row = paddle.gather(r0.reshape([-1]), seg) + local // width
    level = seg % num_levels
    prior = paddle.gather(axes.starts, level) + row * paddle.gather(axes.cols, level) + col
    return Pairs(seg // num_levels, prior, col, row, level)

