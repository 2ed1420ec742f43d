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

The third, :func:`window_attack`, joins the days of the two window fields: a 30- or
90-day count is a sum of daily arrivals (attack 4 of ``docs/disclosure.md``). One
program per field over all days at once bounds the counts, their day-to-day changes and
the arrivals themselves ("two notifications in area X on day d"), granting the attacker
the window identity wherever the true counts admit it (more than a reader can know).
"""

from __future__ import annotations

import functools
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy import optimize, sparse
from scipy.sparse import csgraph

from models.cellkey import PerturbationTable
from models.history import History
from models.person import WINDOWS
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
    "WINDOW_FIELDS",
    "Certain",
    "Findings",
    "bounds",
    "differencing",
    "history_values",
    "interval_attack",
    "published_days",
    "shows_groups",
    "window_arrivals",
    "window_attack",
    "WindowCertain",
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


# ------------------------------------------------------------------ window attack

#: The moving-window fields and their lengths in days: a count on day ``D`` is the
#: events of ``(D − days, D]`` (:data:`models.person.WINDOWS`, ``models.family``).
WINDOW_FIELDS: tuple[tuple[int, int], ...] = (
    (FIELD_INDEX["child_welfare_notifications_30d"], WINDOWS["cwn"]),
    (FIELD_INDEX["mental_health_visits_90d"], WINDOWS["mh"]),
)


@dataclass(frozen=True)
class WindowCertain:
    """What :func:`window_attack` proves about the two window fields over ``days`` days
    (``cells`` published (day, scope, field) cells of them), in ``lps`` linear and
    ``milps`` integer programs (``fractional``: vertices or optima that were not
    integral) and ``seconds``.

    * ``counts``, ``bounded_counts``: window counts pinned at 1 … m − 1, or known to lie
      in 1 … m − 1 without being pinned; ``recovered``: hidden counts pinned at any
      value (None unless asked for: it is costly);
    * ``changes``, ``bounded_changes``: day-to-day changes ``n(D) − n(D − 1)`` pinned at
      (known to lie in) 1 … m − 1 or −(m − 1) … −1, ``single`` of the pinned ones ±1;
    * ``arrivals``, ``bounded_arrivals``: daily arrivals ``a(s, d)`` (the events of day
      ``d`` in scope ``s``) pinned at (known to lie in) 1 … m − 1, ``single_arrivals``
      of the pinned ones exactly 1: "one notification in area X on day d";
    * ``kept``: per field, the scopes given the window identity (of ``scopes``);
    * ``undecided``: variables left open when an integer program ran out of time
      (``milp_seconds``): 0, or the findings are a lower bound and "nothing" is not
      proved for these; ``out_of_time``: integer programs that ran out of time with
      neither solution nor bound (a witness not found, or a bound left at the
      relaxation's: sound either way, only ``undecided`` says what stayed open);
    * ``by_field``: the findings per field; ``examples``: a few of them,
      ``"kind field scope day: lo…hi"`` (day: from the first published day; arrivals
      reach a window's length before it).
    """

    counts: int
    bounded_counts: int
    recovered: int | None
    changes: int
    single: int
    bounded_changes: int
    arrivals: int
    single_arrivals: int
    bounded_arrivals: int
    kept: dict[str, int]
    scopes: int
    cells: int
    days: int
    lps: int
    milps: int
    fractional: int
    undecided: int
    out_of_time: int
    seconds: float
    by_field: dict[str, dict[str, int]]
    examples: tuple[str, ...]


_WINDOW_FINDINGS = (
    "counts",
    "bounded_counts",
    "recovered",
    "changes",
    "single",
    "bounded_changes",
    "arrivals",
    "single_arrivals",
    "bounded_arrivals",
)


def window_arrivals(counts: np.ndarray, window: int) -> np.ndarray | None:
    """Daily arrivals ``a ≥ 0`` (integers, on the ``len(counts) + window − 1`` days
    from ``window − 1`` before the first) whose ``window``-day sums are ``counts``, or
    None when there are none: what the true counts of a scope must satisfy for the
    window identity to hold there (no family carrying window events moved in or out,
    joined, left, started or stopped counting in a way the sums show).

    Day ``t ≥ 1`` gives ``a(t + w − 1) = a(t − 1) + n(t) − n(t − 1)``: each residue
    class of days mod ``w`` is one chain, fixed by its first (unpublished) day; the
    least first days that keep a chain non-negative must sum to at most ``n(0)``.

    >>> window_arrivals(np.array([1, 2, 2, 1]), 2).tolist()
    [0, 1, 1, 1, 0]
    >>> window_arrivals(np.array([0, 2, 0]), 2) is None  # 2 in (0, 1] and (1, 2]: no
    True
    """
    n = np.asarray(counts, dtype=np.int64)
    w, u = window, len(n) + window - 1
    a = np.zeros(u, dtype=np.int64)
    for k in range(w, u):
        a[k] = a[k - w] + n[k - w + 1] - n[k - w]
    for r in range(w):
        a[r::w] -= min(int(a[r::w].min()), 0)  # the least start that keeps it >= 0
    slack = int(n[0]) - int(a[:w].sum())
    if slack < 0:
        return None
    a[w - 1 :: w] += slack
    return a


def _children(layout: Layout) -> dict[int, list[int]]:
    """``{parent scope: its parts}``: all over the municipalities, each municipality
    with areas over them; municipalities first, so that parts come before wholes when
    walked in reverse."""
    munis = [layout.index[f"m:{m}"] for m in MUNICIPALITIES]
    out = {0: munis}
    for code, m in zip(MUNICIPALITIES, munis, strict=True):
        if areas := [layout.index[f"a:{pc}"] for pc, mm in layout.areas if mm == code]:
            out[m] = areas
    return dict(reversed(list(out.items())))


def _propagate(a: sparse.coo_array, lo: np.ndarray, hi: np.ndarray, rounds: int = 1000):
    """Bounds implied by ``a x = 0`` (coefficients ±1) and the box ``[lo, hi]`` over
    integers, by propagation row by row to a fixed point (or ``rounds``): every integer
    solution lies within them. Raises when the box and the rows contradict."""
    lo, hi = lo.copy(), hi.copy()
    r, c, v = a.row, a.col, a.data > 0
    for _ in range(rounds):
        cmin = np.where(v, lo[c], -hi[c])
        cmax = np.where(v, hi[c], -lo[c])
        rmin = np.zeros(a.shape[0], dtype=np.int64)
        rmax = np.zeros(a.shape[0], dtype=np.int64)
        np.add.at(rmin, r, cmin)
        np.add.at(rmax, r, cmax)
        new_lo, new_hi = lo.copy(), hi.copy()
        np.maximum.at(new_lo, c, np.where(v, cmax - rmax[r], rmin[r] - cmin))
        np.minimum.at(new_hi, c, np.where(v, cmin - rmin[r], rmax[r] - cmax))
        if (new_lo > new_hi).any():
            raise RuntimeError("window attack: the published window counts are infeasible")
        if np.array_equal(new_lo, lo) and np.array_equal(new_hi, hi):
            break
        lo, hi = new_lo, new_hi
    return lo, hi


def _small(lo: np.ndarray, hi: np.ndarray, m: int) -> np.ndarray:
    return ((lo >= 1) & (hi <= m - 1)) | ((hi <= -1) & (lo >= 1 - m))


def _rows(rows: list[tuple[np.ndarray, np.ndarray]], size: int) -> sparse.coo_array:
    """A sparse matrix of ``rows``: each ``(columns [k, nonzeros], signs)`` is ``k``
    rows with those signs."""
    r, c, v, at = [], [], [], 0
    for cols, signs in rows:
        k = len(cols)
        r.append(np.repeat(np.arange(at, at + k), cols.shape[1]))
        c.append(cols.reshape(-1))
        v.append(np.tile(signs, k))
        at += k
    return sparse.coo_array(
        (np.concatenate(v).astype(float), (np.concatenate(r), np.concatenate(c))),
        shape=(at, size),
    )


class _OutOfTime(Exception):
    """An integer program ran out of time with neither a solution nor a bound."""


class _Window:
    """The joint program of one window field over all published days.

    Variables: the counts ``n(s, t)`` of every scope and day, the changes
    ``δ(s, t) = n(s, t + 1) − n(s, t)`` and, for every kept scope, the arrivals
    ``a(s, u)`` on the days ``u`` from ``window − 1`` before the first on (index
    ``u = t + window − 1`` is day ``t``). Rows (all ``= 0``): the scope tree of the
    counts each day; the changes; the window identity of a kept scope,
    ``n(s, 0) = Σ_{u < w} a(s, u)`` and ``δ(s, t) = a(s, t + w) − a(s, t)``; the scope
    tree of the arrivals where a scope and all its parts are kept (then the whole's
    identity follows from its parts', and its arrivals are theirs summed).

    Every variable has ``outer`` bounds (``olo``, ``ohi``) that every integer solution
    respects (by propagation over all the rows, then from programs) and ``inner`` ones
    (``ilo``, ``ihi``) that integer solutions reach (the exact point, integral vertices):
    the true range lies between. The programs are solved over the *core* variables
    alone (the counts, the arrivals of kept scopes that are not such wholes): the
    changes and the wholes' arrivals are sums of them (``expand``). The core splits
    into independent *components* once fixed variables are taken out (on the
    publication before cell keys, a shown municipality's areas are one): the whole
    program is solved component by component, only over those an objective touches.
    A *restriction* frees the variables of a few scopes and holds every other at the
    reference solution (the exact point): its solutions are solutions of the whole.
    """

    def __init__(self, layout, lo, hi, window, exact, m, hidden, rng, milp_seconds=300.0):
        n_t, n_s = lo.shape
        self.m, self.w, self.rng, self.layout = m, window, rng, layout
        self.n_t, self.n_s = n_t, n_s
        n_u = n_t + window - 1
        truth: dict[int, np.ndarray] = {}
        if exact is None:
            kept = list(range(n_s))
        else:
            for s in range(n_s):
                a = window_arrivals(exact[:, s], window)
                if a is not None:
                    truth[s] = a
            kept = sorted(truth)
        children = _children(layout)
        self.kids = children
        self.parent = {c: p for p, cs in children.items() for c in cs}
        tree = {p: cs for p, cs in children.items() if p in kept and set(cs) <= set(kept)}
        for p, cs in tree.items():  # parts before wholes: a whole's arrivals, its parts'
            if truth:
                truth[p] = sum(truth[c] for c in cs)
        self.kept = kept
        n_n, n_d = n_s * n_t, n_s * (n_t - 1)
        slot = {s: i for i, s in enumerate(kept)}
        self.n_of = np.arange(n_n).reshape(n_s, n_t)
        self.d_of = n_n + np.arange(n_d).reshape(n_s, n_t - 1)
        self.a_of = n_n + n_d + np.arange(len(kept) * n_u).reshape(len(kept), n_u)
        self.size = n_n + n_d + len(kept) * n_u
        self.scope_of = np.concatenate(
            [np.repeat(np.arange(n_s), n_t), np.repeat(np.arange(n_s), n_t - 1)]
            + [np.repeat(np.array(kept, dtype=np.intp), n_u)]
        )
        self.vars_of = {s: np.flatnonzero(self.scope_of == s) for s in range(n_s)}

        # All the rows (propagation, checks), and the core's (programs).
        full: list[tuple[np.ndarray, np.ndarray]] = []  # [k, nonzeros] columns, signs
        core: list[tuple[np.ndarray, np.ndarray]] = []

        def add(rows: list, cols: list[np.ndarray], signs: list[int]) -> None:
            rows.append((np.column_stack(cols), np.array(signs)))

        for p, cs in children.items():
            for rows in (full, core):
                add(rows, [self.n_of[p], *(self.n_of[c] for c in cs)], [1] + [-1] * len(cs))
        dn = [self.d_of.reshape(-1), self.n_of[:, 1:].reshape(-1), self.n_of[:, :-1].reshape(-1)]
        add(full, dn, [1, -1, 1])
        for s in kept:
            a, n = self.a_of[slot[s]], self.n_of[s]
            first = [n[:1], *(a[u : u + 1] for u in range(window))]
            add(full, first, [1] + [-1] * window)
            add(full, [self.d_of[s], a[window:], a[: n_t - 1]], [1, -1, 1])
            if s not in tree:
                add(core, first, [1] + [-1] * window)
                add(core, [n[1:], n[:-1], a[window:], a[: n_t - 1]], [1, -1, -1, 1])
        for p, cs in tree.items():
            add(full, [self.a_of[slot[p]], *(self.a_of[slot[c]] for c in cs)], [1] + [-1] * len(cs))
        self.a_csr = _rows(full, self.size).tocsr()
        # The core and how every variable is a sum of core ones.
        own = [s for s in kept if s not in tree]
        self.core = np.concatenate([self.n_of.reshape(-1), *(self.a_of[slot[s]] for s in own)])
        at = np.full(self.size, -1)
        at[self.core] = np.arange(len(self.core))
        leaves: dict[int, list[int]] = {}
        for p, cs in tree.items():
            leaves[p] = [k for c in cs for k in (leaves[c] if c in leaves else [c])]
        er, ec, ev = [self.core], [np.arange(len(self.core))], [np.ones(len(self.core))]
        for d, sign in ((self.n_of[:, 1:], 1.0), (self.n_of[:, :-1], -1.0)):
            er.append(self.d_of.reshape(-1))
            ec.append(at[d.reshape(-1)])
            ev.append(np.full(n_d, sign))
        for p, ls in leaves.items():
            for leaf in ls:
                er.append(self.a_of[slot[p]])
                ec.append(at[self.a_of[slot[leaf]]])
                ev.append(np.ones(n_u))
        self.expand = sparse.csr_array(
            (np.concatenate(ev), (np.concatenate(er), np.concatenate(ec))),
            shape=(self.size, len(self.core)),
        )
        self.lp_rows = sparse.csr_array(_rows(core, self.size).tocsc()[:, self.core])
        self.lp_cols = self.lp_rows.tocsc()

        box_lo = np.concatenate(
            [lo.T.reshape(-1), np.full(n_d, -2 * UNBOUNDED), np.zeros(len(kept) * n_u)]
        ).astype(np.int64)
        box_hi = np.concatenate(
            [hi.T.reshape(-1), np.full(n_d, 2 * UNBOUNDED), np.full(len(kept) * n_u, UNBOUNDED)]
        ).astype(np.int64)
        self.olo, self.ohi = _propagate(self.a_csr.tocoo(), box_lo, box_hi)
        self.ilo = np.full(self.size, np.iinfo(np.int64).max)
        self.ihi = np.full(self.size, np.iinfo(np.int64).min)
        self.want_pinned = np.zeros(self.size, dtype=bool)
        self.want_pinned[self.n_of.T[hidden]] = True  # hidden counts: recovered?
        self.lps = self.milps = self.fractional = self.out_of_time = 0
        self.milp_seconds = milp_seconds
        self.ref: np.ndarray | None = None
        self._components: tuple[int, np.ndarray] | None = None
        if exact is not None:
            x = np.zeros(self.size, dtype=np.int64)
            x[self.n_of] = exact.T
            x[self.d_of] = np.diff(exact.T, axis=1)
            for s in kept:
                x[self.a_of[slot[s]]] = truth[s]
            if not self.see(x):
                raise ValueError("window attack: the exact values do not give the published ones")

    # -- solutions and bounds ----------------------------------------------------------
    def see(self, x: np.ndarray) -> bool:
        """Widen the inner ranges by ``x`` (over all variables) if it is an integer
        solution (else False); the first one seen is the reference of restrictions."""
        r = np.round(x)
        if np.abs(x - r).max(initial=0) > _TOL:
            return False
        r = r.astype(np.int64)
        if (r < self.olo).any() or (r > self.ohi).any() or (self.a_csr @ r).any():
            return False
        self.ilo, self.ihi = np.minimum(self.ilo, r), np.maximum(self.ihi, r)
        if self.ref is None:
            self.ref = r
        return True

    def components(self) -> np.ndarray:
        """The component of each core variable (−1: fixed), for the outer bounds now."""
        fixed = self.olo[self.core] == self.ohi[self.core]
        key = int(fixed.sum())
        if self._components is None or self._components[0] != key:
            free = np.flatnonzero(~fixed)
            sub = self.lp_cols[:, free]
            link = (sub.T @ sub).tocsr()  # free variables sharing a row
            _, labels = csgraph.connected_components(link, directed=False)
            out = np.full(len(self.core), -1)
            out[free] = labels
            self._components = (key, out)
        return self._components[1]

    def _program(self, cc: np.ndarray, cols: np.ndarray, x: np.ndarray, integral: bool):
        """Minimise ``cc @ x`` over the core variables ``cols`` with the others held at
        ``x`` (core, updated in place); the rows are those that touch ``cols``. Returns
        a lower bound of the minimum: the minimum itself, or when an integer program
        runs out of time its dual bound (and its best solution, if any, in ``x``)."""
        rows = np.unique(self.lp_cols[:, cols].indices)
        sub = self.lp_rows[rows]
        rest = x.copy()
        rest[cols] = 0.0
        a, b = sub[:, cols], -(sub @ rest)
        box = np.column_stack([self.olo[self.core[cols]], self.ohi[self.core[cols]]])
        box = box.astype(float)
        if integral:
            self.milps += 1
            res = optimize.milp(
                cc[cols],
                constraints=optimize.LinearConstraint(a, b, b),
                integrality=np.ones(len(cols)),
                bounds=optimize.Bounds(box[:, 0], box[:, 1]),
                options={"time_limit": self.milp_seconds},
            )
            if res.x is not None:
                x[cols] = res.x
            if res.status == 0:
                return float(cc[cols] @ res.x)
            if res.status == 1 and res.get("mip_dual_bound") is not None:
                return float(res.mip_dual_bound)
            if res.status == 1:
                raise _OutOfTime(res.message)
        else:
            self.lps += 1
            res = optimize.linprog(cc[cols], A_eq=a, b_eq=b, bounds=box, method="highs-ds")
            if res.status == 0:
                x[cols] = res.x
                return float(res.fun)
        raise RuntimeError(f"window attack: no solution ({res.message})")

    def _solve(self, c: np.ndarray, scopes=None, integral: bool = False):
        """Minimise ``c`` (over all variables) over the whole program (``scopes`` None:
        the components ``c`` touches, the rest at the reference) or a restriction to the
        variables of ``scopes``. Returns ``(solution over all variables, a lower bound
        of the minimum)``: :meth:`_program`."""
        cc = self.expand.T @ c
        if self.ref is None:  # nothing to hold the rest at: every component
            x = self.olo[self.core].astype(float)
            comp = self.components()
            parts = [np.flatnonzero(comp == k) for k in range(comp.max() + 1)]
        else:
            x = self.ref[self.core].astype(float)
            if scopes is None:
                comp = self.components()
                parts = [
                    np.flatnonzero(comp == k) for k in np.unique(comp[(cc != 0) & (comp >= 0)])
                ]
            else:
                mine = np.isin(self.scope_of[self.core], scopes)
                parts = [np.flatnonzero(mine & (self.olo[self.core] < self.ohi[self.core]))]
        parts = [cols for cols in parts if len(cols)]
        solved = np.zeros(len(x), dtype=bool)
        for cols in parts:
            solved[cols] = True
        bound = float(cc[~solved] @ x[~solved])
        for cols in parts:
            bound += self._program(cc, cols, x, integral)
        return self.expand @ x, bound

    def witness(self, c: np.ndarray, scopes=None) -> None:
        """See the vertex minimising ``c`` over a restriction to ``scopes`` (or the whole
        program) when it is integral; the integer program's solution when it is not."""
        x, _ = self._solve(c, scopes)
        if not self.see(x):
            self.fractional += 1
            try:
                self.see(self._solve(c, scopes, integral=True)[0])
            except _OutOfTime:  # a witness is only a help: what stays open is decided later
                self.out_of_time += 1

    def tighten(self, j: int, top: bool) -> None:
        """The integer minimum (``top``: maximum) of variable ``j`` as its outer bound:
        an integral optimum is the integer one; a fractional one whose rounded value does
        not meet a solution seen falls back on the integer program (its dual bound if it
        runs out of time)."""
        if (self.ohi[j] == self.ihi[j]) if top else (self.olo[j] == self.ilo[j]):
            return
        c = np.zeros(self.size)
        c[j] = -1.0 if top else 1.0
        x, bound = self._solve(c)
        if not self.see(x):
            self.fractional += 1
            if np.ceil(bound - _TOL) != (-self.ihi[j] if top else self.ilo[j]):
                try:
                    x, exact = self._solve(c, integral=True)
                    self.see(x)
                    bound = max(bound, exact)
                except _OutOfTime:  # the relaxation's bound stands (sound, maybe loose)
                    self.out_of_time += 1
        if top:
            self.ohi[j] = min(self.ohi[j], np.floor(-bound + _TOL))
        else:
            self.olo[j] = max(self.olo[j], np.ceil(bound - _TOL))

    # -- what is left to decide ----------------------------------------------------------
    def need(self, j: np.ndarray | int | slice = slice(None)) -> np.ndarray:
        """Whether the outer and inner ranges leave open the kind of variables ``j``: a
        finding or not; pinned or only bounded; for a hidden count, recovered or not."""
        m = self.m
        olo, ohi, ilo, ihi = self.olo[j], self.ohi[j], self.ilo[j], self.ihi[j]
        small_out, small_in = _small(olo, ohi, m), _small(ilo, ihi, m)
        moves, pinned = ilo < ihi, olo == ohi
        need = small_in & ~small_out
        need |= small_out & ~pinned & ~moves
        return need | (self.want_pinned[j] & ~pinned & ~moves)

    def _up(self, s: int) -> list[int]:
        up = [s]
        while up[-1] in self.parent:
            up.append(self.parent[up[-1]])
        return up

    def _pick(self, scopes, like: int | None = None, k: int = 1) -> list[int]:
        """``k`` of ``scopes`` with the most counts not fixed (on the days where scope
        ``like`` has open counts, if any), ties broken at random."""
        days = np.ones(self.n_t, dtype=bool)
        if like is not None and self.need(self.n_of[like]).any():
            days = self.need(self.n_of[like])
        free = np.array(
            [(self.olo[self.n_of[c]] < self.ohi[self.n_of[c]])[days].sum() for c in scopes]
        )
        order = np.lexsort((self.rng.random(len(free)), -free))
        return [int(scopes[i]) for i in order[:k]]

    def _down(self, s: int) -> list[int]:
        """A path from ``s`` down to an area (empty from an area)."""
        out = []
        while s in self.kids:
            s = self._pick(self.kids[s], s)[0]
            out.append(s)
        return out

    def restrictions(self, s: int) -> list[list[int]]:
        """Scope sets whose restrictions can move scope ``s``: its path to the root and
        down to an area (one area's arrivals move its municipality's and all's); the
        same with one, then three more areas of the municipality (moves between areas),
        or another municipality's path (moves between municipalities); a municipality
        of a few areas with all of them and another's path."""
        up = self._up(s)
        base = up + self._down(s)
        leaf = base[-1]
        out = [base]
        if leaf in self.parent:
            sibs = [k for k in self.kids[self.parent[leaf]] if k != leaf]
            out += [base + self._pick(sibs, leaf, k) for k in (1, 3) if len(sibs) >= k]
        others = [k for k in self.kids.get(0, []) if k not in up and k not in base]
        cousin = []
        if others:
            k = self._pick(others, s)[0]
            cousin = [k, *self._down(k)]
            out.append(base + cousin)
        if 0 < len(self.kids.get(s, ())) <= 8:
            out.append(up + self.kids[s] + cousin)
        return [sorted(set(q)) for q in out]

    def _settled(self, j: int, top: bool) -> bool:
        return not self.need(j) or (
            (self.ohi[j] == self.ihi[j]) if top else (self.olo[j] == self.ilo[j])
        )

    def push(self, idx: np.ndarray, scopes, sign: float) -> None:
        """Push the open variables of ``idx`` down (``sign`` 1) or up, with random
        weights, over a restriction to ``scopes`` (None: the whole program)."""
        open_ = idx[self.need(idx)]
        if len(open_):
            c = np.zeros(self.size)
            c[open_] = sign * self.rng.uniform(1, 2, len(open_))
            self.witness(c, scopes)

    def pin_ends(self) -> None:
        """Pin together the open variables never seen to move that sit at an end of
        their outer range (a hidden zero, say): a vertex of the whole program pushing
        all of them off that end either moves some (seen; again with the rest) or shows
        that their sum, and so each of them, cannot move."""
        everything = np.arange(self.size)
        for top in (False, True):
            while True:
                u = everything[self.need() & (self.ilo == self.ihi)]
                u = u[(self.ihi[u] == self.ohi[u]) if top else (self.ilo[u] == self.olo[u])]
                if not len(u):
                    break
                c = np.zeros(self.size)
                c[u] = 1.0 if top else -1.0
                x, value = self._solve(c)
                if abs(value - c[u] @ self.ilo[u]) <= _TOL:
                    if top:
                        self.olo[u] = self.ilo[u]
                    else:
                        self.ohi[u] = self.ihi[u]
                    break
                if not self.see(x) or not (self.ilo[u] < self.ihi[u]).any():
                    self.fractional += 1
                    break

    def run(self, rounds: int = 6) -> None:
        """Witnesses first, small programs before the whole one: pushes of all that is
        open in each scope, down and up, over its restrictions (again, with partners
        drawn anew, while that helps); pushes over the whole program while they help
        (an integer program where a vertex is not integral); joint pins at the ends of
        outer ranges; then each variable still open alone, exactly (:meth:`tighten`)."""
        if self.ref is None:  # no exact point: any integer solution to start from
            x, _ = self._solve(np.zeros(self.size))
            if not self.see(x):
                self.see(self._solve(np.zeros(self.size), integral=True)[0])
        for _ in range(rounds):
            before = int(self.need().sum())
            for s in np.unique(self.scope_of[self.need()]):
                for scopes in self.restrictions(int(s)):
                    for sign in (1.0, -1.0):
                        self.push(self.vars_of[s], scopes, sign)
            if self.need().sum() > 0.9 * before:
                break
        everything = np.arange(self.size)
        for _ in range(rounds):
            before = int(self.need().sum())
            for sign in (1.0, -1.0):
                self.push(everything, None, sign)
            if self.need().sum() > 0.9 * before:
                break
        self.pin_ends()
        for j in np.flatnonzero(self.need()):
            for top in (False, True):
                if not self._settled(int(j), top):
                    self.tighten(int(j), top)

    # -- what was found ----------------------------------------------------------------
    def found(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Of variables ``idx``: pinned within 1 … m − 1 (or −(m − 1) … −1), and known
        to lie there without being pinned."""
        lo, hi = self.olo[idx], self.ohi[idx]
        small = _small(lo, hi, self.m)
        return small & (lo == hi), small & (lo < hi)


def window_attack(
    published: np.ndarray,
    layout: Layout,
    min_cell: int,
    table: PerturbationTable | None = None,
    exact: np.ndarray | None = None,
    seed: int = 0,
    examples: int = 3,
    recover: bool = False,
    milp_seconds: float = 300.0,
) -> WindowCertain:
    """The window identities across days (attack 4 of ``docs/disclosure.md``): what the
    published days prove about the window counts, their day-to-day changes and the
    daily arrivals behind them (:class:`WindowCertain`).

    A 30-day count on day ``D`` is the events of ``(D − 30, D]`` of the families living
    in the scope *on D*: ``n(s, D) = Σ_{d ∈ (D − 30, D]} a(s, d)`` with daily arrivals
    ``a ≥ 0`` holds only while no family with events in the window moves in or out,
    joins or leaves, starts or stops counting. A reader cannot know that it holds; this
    attacker is *told*, for every scope where the true counts admit such arrivals
    (:func:`window_arrivals` on ``exact``; every scope without ``exact``), and gets the
    scope tree on the arrivals where a scope and all its parts have it. It is therefore
    stronger than any reader of the same relations: what it cannot pin, none of them
    can (relations between fields, ``families = 0`` emptying an area's windows, say,
    are not used, as by :func:`interval_attack`). Each field is one program over all
    days (:class:`_Window`) with the per-day bounds of :func:`bounds` and the scope tree
    of the counts each day, so it knows at least what the per-day programs of
    :func:`interval_attack` know of these fields.

    The ranges are integer ones, and sound both ways. The program is not totally
    unimodular (three windows of two nested scopes can make a vertex half-integral),
    so a vertex counts as a solution only when it is integral, and an optimum that is
    not integral falls back on the integer program where its rounded value does not
    settle the question. To spare programs: propagation first, then the exact point,
    then integral vertices that push what is still open down and up, over small
    restrictions around each scope (a few scopes free, the rest held at the exact
    point) and then over the whole program; what these leave open gets its own
    minimum and maximum. ``seed``: the random weights and partners. ``recover``: also
    decide for every hidden count whether it is pinned (at any value, zeros
    included: ``recovered``), which costs far more programs than the findings.
    ``examples``: of each kind and field, how many findings to describe.
    ``milp_seconds``: the time limit of one integer program (``undecided``).

    >>> layout = Layout.of({"33100": "837"})
    >>> exact = np.zeros((3, len(layout.scopes), len(FIELDS)), dtype=np.int64)
    >>> exact[:, [0, 4, 7], 6] = [[0], [2], [3]]  # 0, then 2 notifications, then 1 more
    >>> shown, _ = suppress_rows(exact, layout, 5)
    >>> found = window_attack(shown, layout, 5, exact=exact)  # 0 shown, 2 and 3 hidden
    >>> found.arrivals, found.changes, found.counts
    (0, 0, 0)
    >>> found = window_attack(exact, layout, 5, exact=exact)  # everything shown exactly
    >>> found.arrivals, found.single_arrivals, found.examples[0]
    (6, 3, 'arrival child_welfare_notifications_30d all day +1: 2…2')
    """
    t0 = time.perf_counter()
    published = np.asarray(published)
    rng = np.random.default_rng(seed)
    lo_all, hi_all = bounds(published, table)
    m = min_cell
    total = dict.fromkeys(
        (*_WINDOW_FINDINGS, "lps", "milps", "fractional", "undecided", "out_of_time"), 0
    )
    kept, by_field, found_examples = {}, {}, []
    for f, window in WINDOW_FIELDS:
        block = _Window(
            layout,
            lo_all[:, :, f],
            hi_all[:, :, f],
            window,
            None if exact is None else np.asarray(exact)[:, :, f].astype(np.int64),
            m,
            (published[:, :, f] == HIDDEN) & recover,
            rng,
            milp_seconds,
        )
        block.run()
        name = FIELDS[f]
        kept[name] = len(block.kept)
        counts, bounded_counts = block.found(block.n_of.reshape(-1))
        changes, bounded_changes = block.found(block.d_of.reshape(-1))
        arrivals, bounded_arrivals = block.found(block.a_of.reshape(-1))
        n_pinned = block.olo[block.n_of] == block.ohi[block.n_of]
        here = {
            "counts": int(counts.sum()),
            "bounded_counts": int(bounded_counts.sum()),
            "recovered": int((n_pinned.T & (published[:, :, f] == HIDDEN)).sum()),
            "changes": int(changes.sum()),
            "single": int((changes & (np.abs(block.olo[block.d_of.reshape(-1)]) == 1)).sum()),
            "bounded_changes": int(bounded_changes.sum()),
            "arrivals": int(arrivals.sum()),
            "single_arrivals": int((arrivals & (block.olo[block.a_of.reshape(-1)] == 1)).sum()),
            "bounded_arrivals": int(bounded_arrivals.sum()),
            "lps": block.lps,
            "milps": block.milps,
            "fractional": block.fractional,
            "undecided": int(block.need().sum()),
            "out_of_time": block.out_of_time,
        }
        for k, v in here.items():
            total[k] += v
        by_field[name] = {k: here[k] for k in _WINDOW_FINDINGS if here[k]}
        for kind, of, hit, shift in (
            ("arrival", block.a_of, arrivals | bounded_arrivals, window - 1),
            ("change", block.d_of, changes | bounded_changes, -1),
            ("count", block.n_of, counts | bounded_counts, 0),
        ):
            for k in np.flatnonzero(hit)[:examples]:
                i, t = divmod(int(k), of.shape[1])
                s = block.kept[i] if kind == "arrival" else i
                j = int(of[i, t])
                found_examples.append(
                    f"{kind} {name} {layout.scopes[s]} day {t - shift:+d}: "
                    f"{block.olo[j]}…{block.ohi[j]}"
                )
    n_days = len(published)
    if not recover:
        total["recovered"] = None
        for here in by_field.values():
            here.pop("recovered", None)
    return WindowCertain(
        **{k: total[k] for k in _WINDOW_FINDINGS},
        kept=kept,
        scopes=len(layout.scopes),
        cells=n_days * len(layout.scopes) * len(WINDOW_FIELDS),
        days=n_days,
        lps=total["lps"],
        milps=total["milps"],
        fractional=total["fractional"],
        undecided=total["undecided"],
        out_of_time=total["out_of_time"],
        seconds=round(time.perf_counter() - t0, 2),
        by_field=by_field,
        examples=tuple(found_examples),
    )
