"""The attackers (tilannekuva/disclosure_attack.py) against the publication before cell
keys and against the perturbed one: they must find what issue 17 says is there
(single-family changes of shown cells day by day, hidden cells recovered through the
relations), so that finding nothing on the perturbed publication means something."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize

from models import publication
from models.cellkey import KEYS
from tilannekuva.api.cube import FIELDS, HIDDEN, MUNICIPALITIES, N_IND, Layout, suppress_rows
from tilannekuva.disclosure_attack import (
    bounds,
    differencing,
    interval_attack,
    published_days,
    shows_groups,
    window_attack,
)
from tilannekuva.disclosure_eval import SIZES, simulate, utility

F = len(FIELDS)
NOTHING = {"counts": 0, "changes": 0, "bounded_counts": 0, "bounded_changes": 0}


def _sure(found) -> dict[str, int]:
    return {k: getattr(found, k) for k in NOTHING}


@pytest.fixture(scope="module")
def world():
    """1,500 synthetic families, the last 90 days (groups on every day): ~40 s."""
    return simulate(1500, seed=11, days=90, min_cell=5)


def test_todays_daily_history_discloses_single_family_changes(world):
    shown = world.shown
    assert shown.shape == (90, 151, F)
    assert (shown == HIDDEN).any() and (shown > 0).any()  # suppression at work, data shown
    found = differencing(shown, min_cell=5)
    # Before cell keys: day-to-day changes of one family, visible in shown cells of every kind.
    assert found.single > 100 and found.cells > 50, found
    assert {"families_social_assistance", "families_unemployed_parent"} <= set(found.by_field)
    # The attacker is exact: every finding is a real change of the exact history.
    both = (shown[:-1] != HIDDEN) & (shown[1:] != HIDDEN)
    assert np.array_equal(np.diff(shown, axis=0)[both], np.diff(world.counts, axis=0)[both])
    # published_days is that publication, and with cell keys the API's (three days of it).
    days = range(world.last - 2, world.last + 1)
    assert np.array_equal(published_days(world.pipe.history, world.areas, days, 5), shown[-3:])
    perturbed = published_days(world.pipe.history, world.areas, days, 5, perturbed=True)
    assert np.array_equal(perturbed, world.published(5)[-3:])
    assert world.groups.all() and shows_groups(shown).all()


# -- a hand-made register: 30 families on day 0, one more on day 1 ----------------------

HAND = {"33100": "837", "33200": "837", "33210": "837"}
# (area, service-need group) of each family; family 30 joins a:33100, group 3, on day 1.
FAMILIES = [("33100", 1)] * 9 + [("33100", 3)] * 3 + [("33200", 1)] * 10
FAMILIES += [("33200", 2)] * 5 + [("33210", 2)] * 3
JOINER = ("33100", 3)


def _hand(record_keys: np.ndarray) -> tuple[Layout, np.ndarray, np.ndarray]:
    """``(layout, exact counts, cell-key sums)`` of the register on days 0 and 1: each
    family counts 1 in ``families`` and in its group, in its area, municipality, all."""
    layout = Layout.of(HAND)
    counts = np.zeros((2, len(layout.scopes), F), dtype=np.int64)
    keys = np.zeros_like(counts)
    for d, fams in enumerate((FAMILIES, [*FAMILIES, JOINER])):
        for r, (pc, g) in zip(record_keys, fams, strict=False):
            for s in ("all", f"m:{HAND[pc]}", f"a:{pc}"):
                for f in (0, N_IND + g - 1):
                    counts[d, layout.index[s], f] += 1
                    keys[d, layout.index[s], f] += r
    return layout, counts, keys


def _primary(counts: np.ndarray, min_cell: int = 5) -> np.ndarray:
    """Primary suppression alone: counts 1 … m − 1 and every cell of a scope with 1 …
    m − 1 families hidden; nothing to protect the relations."""
    small = (counts >= 1) & (counts < min_cell)
    small |= (counts[..., :1] >= 1) & (counts[..., :1] < min_cell)
    return np.where(small, HIDDEN, counts)


def test_the_interval_attacker_finds_what_the_relations_give_away():
    layout, counts, _ = _hand(np.zeros(len(FAMILIES) + 1, dtype=np.int64))
    shown = _primary(counts)
    naive = differencing(shown, 5)
    assert naive.changes == naive.single == 3  # families of all, m:837, a:33100: +1
    found = interval_attack(shown, None, layout, 5, exact=counts)
    # and the hidden g3 (3 → 4) of a:33100 (= families − g1), m:837 and all: +1 each
    assert (found.changes, found.single) == (6, 6), found
    # each day: a:33210 families (3) and g2 (3: m:837's 8 less a:33200's 5), the three g3
    assert found.counts == 10 and found.recovered >= 10, found
    # The API's suppression (secondary, then the audit) stops the counts, not the change.
    shown, groups = suppress_rows(counts, layout, 5)
    found = interval_attack(shown, groups, layout, 5, exact=counts)
    assert found.counts == 0 and found.changes >= 1, found


def test_perturbed_the_same_register_gives_nothing_away_whatever_the_record_keys():
    rng = np.random.default_rng(5)
    table = publication.table(5)
    for _ in range(150):
        layout, counts, keys = _hand(rng.integers(0, KEYS, len(FAMILIES) + 1))
        published = publication.perturb(_primary(counts), keys, 5)
        found = interval_attack(published, None, layout, 5, table, exact=counts)
        assert _sure(found) == NOTHING, found


# -- the attacker's short cuts against one pair of LPs per cell ---------------------------

SMALL = {"33100": "837", "33200": "837", "33300": "837", "01300": "092", "01350": "092"}


def _ranges(published: np.ndarray, groups: np.ndarray, layout: Layout, table) -> list[dict]:
    """Per day ``{(scope, field): (min, max)}``, one LP each way per cell."""
    lo_b, hi_b = bounds(published, table)
    out = []
    for d in range(len(published)):
        fields = range(F if groups[d] else N_IND)
        cells = [(s, f) for s in range(len(layout.scopes)) for f in fields]
        var = {c: i for i, c in enumerate(cells)}
        rows: list[tuple[tuple[int, int], list[tuple[int, int]]]] = []
        for f in fields:
            rows.append(((0, f), [(layout.index[f"m:{m}"], f) for m in MUNICIPALITIES]))
            for m in MUNICIPALITIES:
                if parts := [layout.index[f"a:{pc}"] for pc, mm in SMALL.items() if mm == m]:
                    rows.append(((layout.index[f"m:{m}"], f), [(a, f) for a in parts]))
        if groups[d]:
            rows += [((s, 0), [(s, f) for f in range(N_IND, F)]) for s in range(len(layout.scopes))]
        a = np.zeros((len(rows), len(cells)))
        for i, (total, parts) in enumerate(rows):
            a[i, var[total]] = 1
            a[i, [var[p] for p in parts]] = -1
        box = [(lo_b[d, s, f], hi_b[d, s, f]) for s, f in cells]
        day = {}
        for j, c in enumerate(cells):
            e = np.eye(len(cells))[j]
            lo = optimize.linprog(e, A_eq=a, b_eq=np.zeros(len(rows)), bounds=box).fun
            hi = -optimize.linprog(-e, A_eq=a, b_eq=np.zeros(len(rows)), bounds=box).fun
            day[c] = (round(lo), round(hi))
        out.append(day)
    return out


def _certain(published: np.ndarray, ranges: list[dict], m: int = 5) -> dict[str, int]:
    def small(lo, hi):
        return 1 <= lo and hi <= m - 1 or 1 - m <= lo and hi <= -1

    out = {"counts": 0, "changes": 0, "bounded_counts": 0, "bounded_changes": 0}
    out["pinned"] = out["recovered"] = 0
    for d, day in enumerate(ranges):
        for (s, f), (lo, hi) in day.items():
            out["counts" if lo == hi else "bounded_counts"] += small(lo, hi)
            out["pinned"] += lo == hi
            out["recovered"] += lo == hi and published[d, s, f] == HIDDEN
    for a, b in zip(ranges, ranges[1:], strict=False):
        for c in a.keys() & b.keys():
            (l0, h0), (l1, h1) = a[c], b[c]
            if small(l1 - h0, h1 - l0):
                out["changes" if l0 == h0 and l1 == h1 else "bounded_changes"] += 1
    return out


@pytest.mark.parametrize("perturbed", [False, True])
def test_the_short_cuts_find_what_every_cells_own_lps_find(perturbed):
    """Random counts, half the cells hidden at random (small ones shown too, so that
    there is much to find), groups on two of three days."""
    layout = Layout.of(SMALL)
    rng = np.random.default_rng(3)
    counts = np.zeros((3, len(layout.scopes), F), dtype=np.int64)
    for d in range(3):
        for pc, m in SMALL.items():
            row = counts[d, layout.index[f"a:{pc}"]]
            row[N_IND:] = rng.integers(0, 5, F - N_IND) * (rng.random(F - N_IND) < 0.5)
            row[0], row[1:N_IND] = row[N_IND:].sum(), rng.integers(0, 9, N_IND - 1)
            for s in ("all", f"m:{m}"):
                counts[d, layout.index[s]] += row
    shown = np.where(rng.random(counts.shape) < 0.5, HIDDEN, counts)
    groups = np.array([True, True, False])
    shown[~groups, :, N_IND:] = HIDDEN
    table = publication.table(5) if perturbed else None
    if perturbed:
        shown = publication.perturb(shown, rng.integers(0, KEYS, shown.shape), 5)
    want = _certain(shown, _ranges(shown, groups, layout, table))
    assert want["counts"] and want["changes"] and want["bounded_changes"]  # much to find
    found = interval_attack(shown, groups, layout, 5, table, exact=counts)
    assert {k: getattr(found, k) for k in want} == want


# -- the generated history ---------------------------------------------------------------


def test_exact_days_disclose_much_and_perturbed_days_nothing(world):
    layout, counts, groups = world.layout, world.counts, world.groups
    naive = differencing(world.shown, 5)
    found = interval_attack(world.shown, groups, layout, 5, exact=counts)
    assert found.changes >= naive.changes and found.single >= naive.single > 100, found
    assert found.days == 90 and found.cells == 90 * 151 * F
    table = publication.table(5)
    published = world.published(5)  # the history's own cell keys, as the API
    assert (published != world.shown)[world.shown > 0].mean() > 0.4
    found = interval_attack(published, groups, layout, 5, table, exact=counts)
    assert _sure(found) == NOTHING, found
    # Random keys for every day and cell (a stand-in for keys that move day by day).
    keys = np.random.default_rng(2).integers(0, KEYS, world.shown.shape)[-30:]
    random = publication.perturb(world.shown[-30:], keys, 5)
    found = interval_attack(random, groups[-30:], layout, 5, table, exact=counts[-30:])
    assert _sure(found) == NOTHING, found


def test_utility_of_the_perturbed_days(world):
    exact = utility(world.counts, world.shown)
    assert exact.differing == 0 and not any(exact.mad.values())
    u = utility(world.counts, world.published(5))
    assert 0.3 < u.differing < 0.9, u
    mad = [u.mad[name] for name, *_ in SIZES]
    assert all(u.shares.values()) and mad[0] > mad[1] > mad[2] > 0, u


# -- the window identities across days ----------------------------------------------------

CWN = FIELDS.index("child_welfare_notifications_30d")
# Notifications per day (day 0: the first published one) in each area of HAND: a:33100
# has none in the 30 days to day 0, six on day 1, two on day 3 (which leave its window
# on day 33), one on day 31 (when day 1's six have left); a:33200 one every day, from
# before the window on; a:33210 none.
ARRIVALS = {"33100": {1: 6, 3: 2, 31: 1}, "33200": dict.fromkeys(range(-29, 33), 1)}
WINDOW_DAYS = 33


def _window_hand(record_keys: np.random.Generator | None = None):
    """``(layout, exact, cell-key sums)`` of the window field on days 0 … 32: each
    notification is its own family with its own record key (``record_keys`` None: 0)."""
    layout = Layout.of(HAND)
    counts = np.zeros((WINDOW_DAYS, len(layout.scopes), F), dtype=np.int64)
    keys = np.zeros_like(counts)
    for pc, days in ARRIVALS.items():
        for d, k in days.items():
            for _ in range(k):
                r = int(record_keys.integers(KEYS)) if record_keys is not None else 0
                on = slice(max(d, 0), d + 30)  # in the window of days d … d + 29
                for s in ("all", f"m:{HAND[pc]}", f"a:{pc}"):
                    counts[on, layout.index[s], CWN] += 1
                    keys[on, layout.index[s], CWN] += r
    shown = np.where((counts >= 1) & (counts < 5), HIDDEN, counts)
    shown[:, layout.index["a:33210"], CWN] = HIDDEN  # secondary: a:33100 not recovered
    return layout, counts, keys, shown


def test_the_window_identities_leak_arrivals_before_cell_keys():
    layout, counts, _, shown = _window_hand()
    # Day by day: the change of +2 on day 3; a:33100 on day 31 is 0 … 3, nothing more.
    daily = interval_attack(shown, None, layout, 5, exact=counts)
    assert (daily.changes, daily.counts, daily.bounded_counts) == (3, 0, 0), daily
    found = window_attack(shown, layout, 5, exact=counts)
    assert found.kept["child_welfare_notifications_30d"] == len(layout.scopes)
    # The zero of day 0 empties the window, so the +2 of day 3 is two notifications on
    # day 3; a:33210's zeros (m:837 less the others) leave a:33100 at 2 or 3 on days
    # 31 and 32 (its 8 less day 1's 6, plus day 31's one, here or in a:33210).
    assert "arrival child_welfare_notifications_30d a:33100 day +3: 2…2" in found.examples
    assert found.arrivals >= 1 and found.single_arrivals == 0, found
    assert found.bounded_counts == 2 and found.counts == 0, found
    assert found.changes >= daily.changes, found


def test_perturbed_the_window_identities_give_nothing_away():
    rng = np.random.default_rng(7)
    table = publication.table(5)
    for _ in range(30):
        layout, counts, keys, shown = _window_hand(rng)
        published = publication.perturb(shown, keys, 5)
        found = window_attack(published, layout, 5, table, exact=counts)
        assert _window_sure(found) == WINDOW_NOTHING, (found, published[:, :, CWN].T)


WINDOW_NOTHING = dict.fromkeys(
    ("counts", "bounded_counts", "changes", "bounded_changes", "arrivals", "bounded_arrivals"), 0
)


def _window_sure(found) -> dict[str, int]:
    return {k: getattr(found, k) for k in WINDOW_NOTHING}


def test_window_identities_on_the_generated_history(world):
    """The last 30 days (the 90-day window reaches 119 days back): before cell keys the
    joint programs find every change the daily ones find in the two window fields, and
    more besides; with the history's cell keys, nothing."""
    last = slice(-30, None)
    layout, counts, shown = world.layout, world.counts[last], world.shown[last]
    found = window_attack(shown, layout, 5, exact=counts)
    daily = interval_attack(shown, world.groups[last], layout, 5, exact=counts)
    names = ("child_welfare_notifications_30d", "mental_health_visits_90d")
    assert found.changes >= sum(daily.by_field.get(f, 0) for f in names) > 100, (found, daily)
    assert found.bounded_counts > daily.counts + daily.bounded_counts == 0, found
    assert found.arrivals + found.bounded_arrivals > 10, found
    # Families move: in a few areas the 90-day counts admit no arrivals (no identity).
    assert found.kept[names[0]] == len(layout.scopes) > found.kept[names[1]] > 140, found.kept
    published = world.published(5)[last]
    found = window_attack(published, layout, 5, publication.table(5), exact=counts)
    assert _window_sure(found) == WINDOW_NOTHING, found


def test_an_integer_program_out_of_time_leaves_the_bounds_sound(world, monkeypatch):
    """Where HiGHS runs out of time with neither solution nor bound, a witness is given
    up and a bound stays at the relaxation's: counted, never a crash, and no finding the
    complete run does not make."""
    from scipy import optimize

    def out_of_time(*args, **kw):
        return optimize.OptimizeResult(status=1, x=None, message="Time limit reached")

    last = slice(-30, None)
    published, counts = world.published(5)[last], world.counts[last]
    table = publication.table(5)
    complete = window_attack(published, world.layout, 5, table, exact=counts)
    monkeypatch.setattr(optimize, "milp", out_of_time)
    starved = window_attack(published, world.layout, 5, table, exact=counts)
    assert starved.out_of_time == starved.milps > 0 == complete.out_of_time, (starved, complete)
    assert _window_sure(starved) == _window_sure(complete) == WINDOW_NOTHING
