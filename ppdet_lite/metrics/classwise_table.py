"""The per-class AP table that ``--classwise`` logs (PaddleDetection 2.6 draws the same layout with
terminaltables: up to three ``category | AP`` pairs per row, AP with three decimals)."""

import itertools

__all__ = ['classwise_table']


def classwise_table(names, aps, pairs_per_row=3):
    """Plain-text table lines.

    Args:
        names (list[str]): class names, in table order.
        aps (list[float]): AP of each class in [0, 1], NaN when it is undefined (no ground truth).
        pairs_per_row (int): ``category | AP`` column pairs on one row.
    Returns:
        list[str]: the lines of the table, rules included.
    """
    cells = [(str(n), f'{float(a):0.3f}') for n, a in zip(names, aps)]
    columns = min(pairs_per_row, max(len(cells), 1)) * 2
    flat = list(itertools.chain(*cells))
    rows = [['category', 'AP'] * (columns // 2)]
    rows += [list(r) for r in itertools.zip_longest(*[flat[i::columns] for i in range(columns)],
                                                    fillvalue='')]
    widths = [max(len(r[c]) for r in rows) for c in range(columns)]
    rule = '+' + '+'.join('-' * (w + 2) for w in widths) + '+'
    body = ['| ' + ' | '.join(cell.ljust(w) for cell, w in zip(r, widths)) + ' |' for r in rows]
    return [rule, body[0], rule] + body[1:] + [rule]
