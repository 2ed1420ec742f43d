"""An attacker on the published history: what differencing over time discloses.

The first attacker of ``docs/disclosure.md`` (attacks 1, 2, 4 and 5 there): it holds the
published picture of every day (what ``…/history?step=day`` answers: every scope, every
indicator and service-need group, suppressed day by day exactly as the API does,
:func:`tilannekuva.api.cube.suppress_rows`) and subtracts consecutive days. Where a cell
is shown on both days and its published value moved by 1 to ``min_cell − 1``, the
attacker knows with certainty that so many families (or children, or events of a
window) entered or left that cell on that day: a change the contract forbids to be
inferable. Against today's publication it finds many; the protection of issue 17 must
bring it to none.

>>> shown = np.array([[[10, 3]], [[11, -1]], [[11, 9]]])  # [day, scope, field]; -1 hidden
>>> found = differencing(shown, min_cell=5)
>>> found.changes, found.single, found.cells
(1, 1, 1)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from models.history import History
from tilannekuva.api.cube import FIELD_INDEX, FIELDS, HIDDEN, Layout, suppress_rows

__all__ = ["Findings", "differencing", "history_values", "published_days"]


@dataclass(frozen=True)
class Findings:
    """What differencing found: ``changes`` (day, scope, field) triples whose change of
    1 … m − 1 is certain, ``single`` those of exactly one, ``cells`` distinct (scope,
    field) cells with at least one such change."""

    changes: int
    single: int
    cells: int
    by_field: dict[str, int]


def differencing(shown: np.ndarray, min_cell: int) -> Findings:
    """Consecutive days of ``shown`` (``[day, scope, field]``, :data:`HIDDEN` where
    suppressed) whose difference is certain and small (module doc)."""
    a, b = shown[:-1], shown[1:]
    both = (a != HIDDEN) & (b != HIDDEN)
    delta = np.abs(b.astype(np.int64) - a.astype(np.int64))
    small = both & (delta >= 1) & (delta <= min_cell - 1)
    per_field = small.sum(axis=(0, 1))
    return Findings(
        changes=int(small.sum()),
        single=int((small & (delta == 1)).sum()),
        cells=int(small.any(axis=0).sum()),
        by_field={
            FIELDS[f] if f < len(FIELDS) else str(f): int(n) for f, n in enumerate(per_field) if n
        },
    )


def history_values(history: History, layout: Layout, first: int, last: int) -> np.ndarray:
    """``int64 [day, scope, field]`` of an in-memory history on days ``first`` … ``last``
    (ordinals), as the API's cube has them from Redis."""
    n = last - first + 1
    out = np.zeros((n, len(layout.scopes), len(FIELDS)), dtype=np.int64)
    for scope, fields in history.diff.items():
        s = layout.index.get(scope)
        if s is None:
            continue
        for name, days in fields.items():
            f = FIELD_INDEX.get(name)
            if f is None:
                continue
            step = np.zeros(n, dtype=np.int64)
            for d, change in days.items():
                if d <= last:
                    step[max(d - first, 0)] += change
            out[:, s, f] = np.cumsum(step)
    return out


def published_days(
    history: History, areas: dict[str, str], days: Iterable[int], min_cell: int
) -> np.ndarray:
    """The published (suppressed) ``[day, scope, field]`` of consecutive ``days``."""
    days = list(days)
    layout = Layout.of(areas)
    values = history_values(history, layout, days[0], days[-1])
    shown, _groups = suppress_rows(values, layout, min_cell)
    return shown
