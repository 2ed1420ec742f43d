"""Attackers on the published history: what combining days, scopes and groups discloses.

The first attacker of ``docs/disclosure.md`` (attacks 1, 2, 4 and 5 there): it holds the
published picture of every day (what ``…/history?step=day`` answers: every scope, every
indicator and service-need group, suppressed day by day exactly as the API does,
:func:`tilannekuva.api.cube.suppress_rows`) and subtracts consecutive days. Where a cell
is shown on both days and its published value moved by 1 to ``min_cell − 1``, the
attacker knows with certainty that so many families (or children, or events of a
window) entered or left that cell on that day: a change the contract forbids to be
inferable. Against the publication before cell keys (suppressed, exact where shown) it
finds many; against the perturbed one its findings are not certain.

>>> shown = np.array([[[10, 3]], [[11, -1]], [[11, 9]]])  # [day, scope, field]; -1 hidden
>>> found = differencing(shown, min_cell=5)
>>> found.changes, found.single, found.cells
(1, 1, 1)

The second, :func:`interval_attack`, is the strongest reader the threat model allows on
daily values: each day it bounds every cell by what its published value admits (a
perturbed value by the table's :meth:`~models.cellkey.PerturbationTable.preimage`) and
by every linear relation of the picture, and proves by linear programming which cells,
and which day-to-day changes, are known exactly or known to be small. It finds at least
what differencing finds, and hidden cells recovered through the relations too.
"""

from __future__ import annotations

import functools
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy import optimize, sparse

from models.cellkey import PerturbationTable
from models.history import History
from tilannekuva.api.cube import (
    FIELD_INDEX,
    FIELDS,
    HIDDEN,
    MUNICIPALITIES,
    N_IND,
    WIDTH,
    Layout,
    publish_rows,
    suppress_rows,
)

__all__ = [
    "UNBOUNDED",
    "Certain",
    "Findings",
    "bounds",
    "differencing",
    "history_values",
    "interval_attack",
    "published_days",
    "shows_groups",
]


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
    """``int64 [day, scope, keyed field]`` of an in-memory history on days ``first`` …
    ``last`` (ordinals), as the API's cube has them from Redis: the counts of
    :data:`~tilannekuva.api.cube.FIELDS`, then their cell-key sums."""
    n = last - first + 1
    out = np.zeros((n, len(layout.scopes), WIDTH), dtype=np.int64)
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
    history: History,
    areas: dict[str, str],
    days: Iterable[int],
    min_cell: int,
    perturbed: bool = False,
) -> np.ndarray:
    """The published ``[day, scope, field]`` of consecutive ``days``: suppressed, exact
    where shown (the publication before cell keys), or ``perturbed`` by the history's
    cell keys as the API publishes it now (:func:`~tilannekuva.api.cube.publish_rows`)."""
    days = list(days)
    layout = Layout.of(areas)
    values = history_values(history, layout, days[0], days[-1])
    shown, _groups = (publish_rows if perturbed else suppress_rows)(values, layout, min_cell)
    return shown


# ------------------------------------------------------------------ interval attack

#: The attacker's upper bound of a hidden cell: "no bound" (far above any count).
UNBOUNDED = 10**6
_TOL = 1e-5  # a solver's value this close to an integer is that integer


@dataclass(frozen=True)
class Certain:
    """What :func:`interval_attack` proves over ``days`` days and ``cells`` published
    (day, scope, field) cells, in ``lps`` linear programs and ``seconds``.

    * ``counts``: cells pinned (one value possible) at 1 … m − 1;
    * ``changes``: (day, scope, field), pinned on the day and the day before, whose
      change is 1 … m − 1 in size; ``single`` of them by exactly one; ``by_field``;
    * ``bounded_counts``, ``bounded_changes``: those whose value (change) is not known
      exactly but known to lie in 1 … m − 1 (or −(m − 1) … −1): certain all the same,
      and counted here besides the pinned ones;
    * ``pinned``: cells pinned at any value (zeros, exactly shown cells); ``recovered``
      of them hidden.
    """

    counts: int
    changes: int
    single: int
    bounded_counts: int
    bounded_changes: int
    pinned: int
    recovered: int
    cells: int
    days: int
    lps: int
    seconds: float
    by_field: dict[str, int]


def bounds(values: np.ndarray, table: PerturbationTable | None) -> tuple[np.ndarray, np.ndarray]:
    """``(lowest, highest)`` exact count of each published value (any shape). A hidden
    cell: ``[0, UNBOUNDED]`` (the attacker cannot tell a primary suppression from a
    secondary one, which may hide a zero or a large count); a zero: ``[0, 0]``; a shown
    value: itself, or with a ``table`` its :meth:`~PerturbationTable.preimage`.

    >>> lo, hi = bounds(np.array([HIDDEN, 0, 7, 40]), PerturbationTable(min_cell=5))
    >>> lo.tolist(), hi.tolist()
    ([0, 0, 6, 38], [1000000, 0, 9, 42])
    """
    v = np.asarray(values, dtype=np.int64)
    lo = np.where(v == HIDDEN, 0, v)
    hi = np.where(v == HIDDEN, UNBOUNDED, v)
    if table is not None and v.size:
        pre = np.array([table.preimage(n) for n in range(max(int(v.max()), 0) + 1)])
        at = v > 0
        lo[at], hi[at] = pre[v[at], 0], pre[v[at], 1]
    return lo, hi


@dataclass(frozen=True)
class _System:
    """One day's relations: variables are the published cells (flat ``scope·F + field``
    in ``cols``), ``a_eq @ x = 0`` the relations. ``blocks``: the independent parts
    (variable indexes, their rows), one per indicator or, with the groups, families
    and the groups together; ``block_of``, ``at``: each variable's block and place in it.
    """

    cols: np.ndarray
    a_eq: sparse.csr_array
    blocks: tuple[tuple[np.ndarray, sparse.csr_array], ...]
    block_of: np.ndarray
    at: np.ndarray


@functools.lru_cache(maxsize=8)
def _system(layout: Layout, groups: bool) -> _System:
    """The relations of :mod:`models.suppression`: for every field all = Σ
    municipalities and municipality = Σ its areas; with ``groups``, for every scope
    families = Σ g1 … g10."""
    n_f = len(FIELDS)
    fields = list(range(n_f if groups else N_IND))
    munis = [layout.index[f"m:{m}"] for m in MUNICIPALITIES]
    areas_of = {
        m: [layout.index[f"a:{pc}"] for pc, mm in layout.areas if mm == m] for m in MUNICIPALITIES
    }
    cols = np.array([s * n_f + f for s in range(len(layout.scopes)) for f in fields])
    var = {int(c): i for i, c in enumerate(cols)}
    rows: list[list[tuple[int, int]]] = []  # (scope, field) cells: total first, then parts
    for f in fields:
        rows.append([(0, f)] + [(m, f) for m in munis])
        for code, m in zip(MUNICIPALITIES, munis, strict=True):
            if areas_of[code]:
                rows.append([(m, f)] + [(a, f) for a in areas_of[code]])
    if groups:
        for s in range(len(layout.scopes)):
            rows.append([(s, 0)] + [(s, f) for f in range(N_IND, n_f)])
    r, c, v = [], [], []
    for i, row in enumerate(rows):
        for k, (s, f) in enumerate(row):
            r.append(i)
            c.append(var[s * n_f + f])
            v.append(1.0 if k == 0 else -1.0)
    a_eq = sparse.csr_array((v, (r, c)), shape=(len(rows), len(cols)))
    field_of = cols % n_f
    block_of = np.where(groups & (field_of >= N_IND), 0, field_of)  # groups join families
    blocks, at = [], np.zeros(len(cols), dtype=np.intp)
    for b in range(N_IND):
        idx = np.flatnonzero(block_of == b)
        at[idx] = np.arange(len(idx))
        sub = a_eq[:, idx].tocsr()
        blocks.append((idx, sub[np.flatnonzero(np.diff(sub.indptr))]))
    return _System(cols, a_eq, tuple(blocks), block_of, at)


class _Day:
    """One day's linear program: the bounds of every variable, and what is known of its
    range so far. ``lo``/``hi``: integers reached by feasible points (so within the
    true range); ``lo_exact``/``hi_exact``: where they are the true minimum/maximum.
    Fixed variables (a shown exact value, a zero) are left out of the LPs."""

    def __init__(self, system: _System, lo: np.ndarray, hi: np.ndarray):
        self.sys = system
        self.bounds = np.column_stack([lo, hi]).astype(float)
        fixed = lo == hi
        self.lo = np.where(fixed, lo, np.inf).astype(float)  # nothing seen yet but these
        self.hi = np.where(fixed, hi, -np.inf).astype(float)
        self.fixed = fixed
        self.lo_exact, self.hi_exact = fixed.copy(), fixed.copy()
        self.x_fixed = np.where(fixed, lo, 0).astype(float)
        self.lps = 0
        self._lp: dict[int | None, tuple[np.ndarray, sparse.csr_array, np.ndarray]] = {}

    def lp(self, block: int | None) -> tuple[np.ndarray, sparse.csr_array, np.ndarray]:
        """``(variables, A, b)`` of the whole day or one block: its free variables, and
        ``A x = b`` its relations with the fixed ones moved to the right."""
        if block not in self._lp:
            idx, a = (
                (np.arange(len(self.lo)), self.sys.a_eq)
                if block is None
                else self.sys.blocks[block]
            )
            free = ~self.fixed[idx]
            b = -(a @ self.x_fixed[idx])
            sub = a[:, np.flatnonzero(free)].tocsr()
            rows = np.diff(sub.indptr) > 0
            if np.abs(b[~rows]).max(initial=0) > 0:  # the published values contradict
                raise RuntimeError("interval attack: the published day is infeasible")
            self._lp[block] = (idx[free], sub[np.flatnonzero(rows)], b[rows])
        return self._lp[block]

    def see(self, x: np.ndarray, idx: np.ndarray | slice = slice(None)) -> None:
        """Widen the known ranges by a feasible point ``x`` of the variables ``idx``. A
        fractional value counts for the integers on both sides (the true range has
        integer ends, :func:`interval_attack`, so it holds them); within ``_TOL`` of an
        integer it is that integer, so that a solver's rounding never widens a range."""
        r = np.round(x)
        x = np.where(np.abs(x - r) < _TOL, r, x)
        self.lo[idx] = np.minimum(self.lo[idx], np.floor(x))
        self.hi[idx] = np.maximum(self.hi[idx], np.ceil(x))

    def unmoved(self) -> np.ndarray:
        """Cells not yet seen to take two values, nor known to be pinned."""
        return ~(self.lo < self.hi) & ~(self.lo_exact & self.hi_exact)

    def _linprog(self, c: np.ndarray, block: int | None, **how) -> np.ndarray | None:
        """A solution over the free variables of ``block`` (``c``: over all of them)."""
        idx, a, b = self.lp(block)
        if not len(idx):
            return np.zeros(0)
        with warnings.catch_warnings():  # run_crossover: passed to HiGHS as it is
            warnings.simplefilter("ignore", optimize.OptimizeWarning)
            res = optimize.linprog(
                c[idx] if block is None else c[self.sys.at[idx]],
                A_eq=a if a.shape[0] else None,
                b_eq=b if a.shape[0] else None,
                bounds=self.bounds[idx],
                **how,
            )
        self.lps += 1
        return res.x if res.status == 0 else None

    def centre(self) -> None:
        """See a point inside the feasible set (an interior-point method with no
        objective and no crossover: near its analytic centre). Every cell that can move
        is strictly inside its range there, as a rule off the integers: one LP shows
        most cells not pinned. A point that misses the relations by more than a
        rounding error is not seen."""
        how = {"method": "highs-ipm", "options": {"presolve": False, "run_crossover": "off"}}
        x = self._linprog(np.zeros(len(self.lo)), None, **how)
        if x is None:
            return
        idx, a, b = self.lp(None)
        residual = np.abs(a @ x - b).max(initial=0)
        outside = np.maximum(self.bounds[idx, 0] - x, x - self.bounds[idx, 1]).max(initial=0)
        if max(residual, outside) < 1e-10:  # a pinned cell then within _TOL of its value
            self.see(x, idx)

    def solve(self, c: np.ndarray, block: int | None = None) -> None:
        """See a vertex minimising ``c`` (over the day's variables, or a block's)."""
        x = self._linprog(c, block, method="highs-ds")
        if x is None:  # the published values contradict the relations: a bug
            raise RuntimeError("interval attack: the published day is infeasible")
        self.see(x, self.lp(block)[0])

    def certify(self) -> None:
        """Pin, a few LPs for many, the cells never seen to move that sit at an end of
        their box (a hidden zero, say), so that end is their exact one: a vertex that
        pushes all of them towards their other ends (it is integral) either moves some,
        or shows that their sum cannot move, and then none of them can."""
        for at_top in (False, True):
            while (u := self.unmoved() & (self.lo == self.bounds[:, int(at_top)])).any():
                self.solve(np.where(u, 1.0 if at_top else -1.0, 0.0))
                if not (u & (self.lo < self.hi)).any():
                    self.lo_exact[u] = self.hi_exact[u] = True

    def extreme(self, j: int, top: bool) -> None:
        """Make the minimum (``top`` False) or maximum of variable ``j`` exact."""
        if (self.hi_exact if top else self.lo_exact)[j]:
            return
        b = int(self.sys.block_of[j])
        c = np.zeros(len(self.sys.blocks[b][0]))
        c[self.sys.at[j]] = -1.0 if top else 1.0
        self.solve(c, b)
        (self.hi_exact if top else self.lo_exact)[j] = True

    def exact_range(self, j: int) -> tuple[int, int]:
        self.extreme(j, False)
        self.extreme(j, True)
        return int(self.lo[j]), int(self.hi[j])


def shows_groups(published: np.ndarray) -> np.ndarray:
    """Whether each day of ``published`` shows the service-need groups (a day that does
    not has every group cell :data:`HIDDEN`: :func:`~tilannekuva.api.cube.shown_row`).

    >>> row = np.full((1, 2, len(FIELDS)), HIDDEN)
    >>> shows_groups(row).tolist(), shows_groups(np.where(np.arange(len(FIELDS)) > 8, 0, row)).tolist()
    ([False], [True])
    """
    return (np.asarray(published)[:, :, N_IND:] != HIDDEN).any(axis=(1, 2))


def interval_attack(
    published: np.ndarray,
    groups: np.ndarray | None,
    layout: Layout,
    min_cell: int,
    table: PerturbationTable | None = None,
    exact: np.ndarray | None = None,
    rounds: int = 1,
    seed: int = 0,
) -> Certain:
    """Every count and day-to-day change that the published days prove to be 1 …
    ``min_cell − 1`` (:class:`Certain`).

    Each day is one linear program. Its variables are the day's published cells
    (``published``: ``[day, scope, field]``, :data:`HIDDEN` where suppressed; the
    groups only on days that show them, ``groups``: bool per day as
    :func:`~tilannekuva.api.cube.suppress_rows` returns it, or None to read it off
    ``published`` with :func:`shows_groups`), bounded by :func:`bounds`
    (``table`` None: exact publication, as before cell keys), and tied by the relations:
    all = Σ municipalities = Σ areas per field, families = Σ groups per scope.

    LP ranges are exact for integer counts here. Written over the area cells alone,
    every cell is the sum of a set of them, and these sets form two laminar families
    (the scope tree of each field, and the scope tree of families over all groups); the
    incidence matrix of two laminar families is totally unimodular, so with integer
    bounds every vertex is integral: a cell's LP minimum and maximum are reached by
    integer counts, and so is every integer between. A cell is *pinned* when they
    meet. Without groups each field is a tree on its own (a network matrix).

    To spare a pair of LPs per cell: a point near the analytic centre of the day's
    feasible set (one interior-point LP, no crossover) has every cell that can move
    strictly inside its range, so as a rule off the integers: not pinned. ``exact``
    (the true values, when the caller has them: a feasible point, checked) and
    ``rounds`` vertices with random objectives (``seed``) show more. The cells never
    seen to move that sit at an end of their box are pinned together, a vertex pushing
    all of them at once; the few left get their own minimum and maximum over their
    block alone, and so do the cells and day pairs whose seen range lies within 1 …
    m − 1. On the 90 days of 1,500 synthetic families (151 scopes, groups shown, two
    CPUs) this takes about 0.1 s a day with ``exact``, on the exact publication as on a
    perturbed one, and 0.25 s a day without it.

    >>> layout = Layout.of({"33100": "837", "33200": "837"})
    >>> exact = np.zeros((2, len(layout.scopes), len(FIELDS)), dtype=np.int32)
    >>> for s in ("all", "m:837"):
    ...     exact[:, layout.index[s], :2] = [[20, 31], [21, 31]]
    >>> exact[:, layout.index["a:33100"], :2] = [[12, 20], [13, 20]]
    >>> exact[:, layout.index["a:33200"], :2] = 8, 11
    >>> shown = exact.copy()
    >>> shown[:, layout.index["a:33200"], 0] = HIDDEN  # known all the same: 20 − 12
    >>> no_groups = np.zeros(2, dtype=bool)
    >>> found = interval_attack(shown, no_groups, layout, 5)
    >>> found.changes, found.recovered, found.counts
    (3, 2, 0)
    >>> from models import publication
    >>> keys = np.arange(shown.size).reshape(shown.shape) * 4099  # cell keys, any
    >>> published = publication.perturb(shown, keys, 5)
    >>> interval_attack(published, no_groups, layout, 5, publication.table(5)).changes
    0
    """
    t0 = time.perf_counter()
    published = np.asarray(published)
    n_days, n_f = len(published), len(FIELDS)
    rng = np.random.default_rng(seed)
    groups = shows_groups(published) if groups is None else np.asarray(groups, dtype=bool)
    lo_all, hi_all = bounds(published, table)
    days: list[_Day] = []
    m = min_cell
    for d in range(n_days):
        system = _system(layout, bool(groups[d]))
        lo = lo_all[d].reshape(-1)[system.cols]
        hi = hi_all[d].reshape(-1)[system.cols]
        day = _Day(system, lo, hi)
        if exact is not None:
            x0 = np.asarray(exact[d]).reshape(-1)[system.cols].astype(float)
            if not ((lo <= x0) & (x0 <= hi)).all() or np.abs(system.a_eq @ x0).max() > 0:
                raise ValueError(f"day {d}: the exact values do not give the published ones")
            day.see(x0)
        day.centre()
        for _ in range(rounds):
            still = day.unmoved()
            if not still.any():
                break
            c = np.where(still, rng.choice([-1.0, 1.0], len(lo)) * rng.uniform(1, 2, len(lo)), 0)
            day.solve(c)
        day.certify()
        for j in np.flatnonzero(day.unmoved()):  # never moved: its own minimum, maximum
            if not day.lo[j] < day.hi[j]:
                day.extreme(int(j), False)
            if not day.lo[j] < day.hi[j]:
                day.extreme(int(j), True)
        for _ in range(rounds):  # seen small: vertices push them to 0 or to m and more
            still = (day.lo >= 1) & (day.hi <= m - 1) & ~(day.lo_exact & day.hi_exact)
            if not still.any():
                break
            for sign in (1.0, -1.0):
                day.solve(np.where(still, sign * rng.uniform(1, 2, len(lo)), 0))
        for j in np.flatnonzero((day.lo >= 1) & (day.hi <= m - 1)):  # small, maybe for sure
            day.exact_range(int(j))
        days.append(day)
        assert np.isfinite(day.lo).all() and np.isfinite(day.hi).all()

    # Per (day, scope, field): ranges, known exactly or not, on the full grid.
    shape = (n_days, len(layout.scopes) * n_f)
    lo_g, hi_g = np.zeros(shape), np.full(shape, -1.0)  # inactive: an empty range
    exact_g = np.zeros(shape, dtype=bool)
    active = np.zeros(shape, dtype=bool)

    def fill(d: int) -> None:
        day = days[d]
        cols = day.sys.cols
        lo_g[d, cols], hi_g[d, cols] = day.lo, day.hi
        exact_g[d, cols] = day.lo_exact & day.hi_exact
        active[d, cols] = True

    for d in range(n_days):
        fill(d)

    def small(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        return ((lo >= 1) & (hi <= m - 1)) | ((hi <= -1) & (lo >= 1 - m))

    # Changes: only pairs whose seen ranges already allow a small certain change need
    # their exact ranges (the true range holds the seen one).
    both = active[:-1] & active[1:]
    cand = both & small(lo_g[1:] - hi_g[:-1], hi_g[1:] - lo_g[:-1]) & ~(exact_g[:-1] & exact_g[1:])
    for d, flat in zip(*np.nonzero(cand), strict=True):
        for dd in (d, d + 1):
            day = days[dd]
            day.exact_range(int(np.searchsorted(day.sys.cols, flat)))
        fill(d)
        fill(d + 1)
    pinned = exact_g & (lo_g == hi_g) & active
    delta_lo, delta_hi = lo_g[1:] - hi_g[:-1], hi_g[1:] - lo_g[:-1]
    sure = both & exact_g[:-1] & exact_g[1:] & small(delta_lo, delta_hi)
    changes = sure & pinned[:-1] & pinned[1:]
    counts = pinned & small(lo_g, hi_g)
    hidden = published.reshape(shape) == HIDDEN
    per_field = changes.reshape(n_days - 1, -1, n_f).sum(axis=(0, 1)) if n_days > 1 else []
    return Certain(
        counts=int(counts.sum()),
        changes=int(changes.sum()),
        single=int((changes & (np.abs(delta_lo) == 1)).sum()),
        bounded_counts=int((active & exact_g & small(lo_g, hi_g)).sum() - counts.sum()),
        bounded_changes=int(sure.sum() - changes.sum()),
        pinned=int(pinned.sum()),
        recovered=int((pinned & hidden).sum()),
        cells=int(active.sum()),
        days=n_days,
        lps=sum(day.lps for day in days),
        seconds=round(time.perf_counter() - t0, 2),
        by_field={FIELDS[f]: int(k) for f, k in enumerate(per_field) if k},
    )
