"""Service impact: cohorts of families that start a service, against alike families that
have not, month by month (issue 16; ``docs/impact.md``).

Three pieces, each pure:

1. **The outcome**: :data:`OUTCOME_RULE`, the need score of
   :mod:`models.service_need` over every domain *but* the services themselves (the
   features of :data:`SERVICE_FEATURES` held at the reference family's value), cut into
   ten outcome groups. The published groups count services received as need: measured
   with them, a family that starts family work moves up *because* it did, and every
   service looks harmful.
2. **The panel** (:class:`Panel`): each family's outcome group and municipality at the
   end of each month, as the stream knew them then, and the months in which it started
   each service.
3. **The estimate** (:func:`cohort_cells`, :func:`estimate`): a family that starts a
   service in month ``c`` (an *entry*: no start of that service in the 12 months before)
   is compared with the families of its *stratum* (the same municipality, the same
   outcome group at the end of month ``c − 1`` and ``LAG`` months before that: alike at
   the start, and on the same course) that had not started the service in the 12 months
   before ``c`` nor up to the horizon, and start it *later* (:data:`COMPARISONS`): the
   later-treated, selected for the service as the entries were, only at another time
   (Fadlon & Nielsen 2019; Callaway & Sant'Anna's not-yet-treated without the never
   treated). The outcome at horizon ``k`` is "the group at the end of month ``c + k``
   is lower (better) than at ``c − 1``" (or higher). The effect is the mean over entries
   of their outcome less the mean of their stratum's comparison families: an exactly
   matched difference in differences, the average effect on the treated. Months before
   the start (``k < −1``) give the pre-trend check; the naive before/after compares the
   entries' moves over the ``k`` months after the start with their moves over the ``k``
   months before. Where the start's own process moves the outcome before the start
   (:data:`ANTICIPATION`: a child welfare case opens with a notification), everything
   said of ``c − 1`` here is said of the *reference month* ``c − 1 − a`` instead.

Examples
--------
Eight families over twelve months in one municipality: two start family work in month
5, four in month 11 (after the horizons: the comparison families), two never (not
compared: the never treated differ from those selected for the service); all are in
group 5, and the treated move to group 3 from month 6.

>>> g = np.full((8, 12), 5, dtype=np.int8)
>>> g[:2, 6:] = 3
>>> g[2, 8:] = 4  # one comparison family improves too
>>> panel = Panel(groups=g, municipality=np.zeros((8, 12), dtype=np.int8),
...               starts={"family_work": [[5], [5], [11], [11], [11], [11], [], []]})
>>> cells = cohort_cells(panel, "family_work", horizons=(-2, 3))
>>> e = estimate(cells, 3, "lower")
>>> e.treated, e.comparison, e.effect, e.naive  # 1.0 - 1/4 moved lower
(2, 4, 0.75, 1.0)
>>> estimate(cells, -2, "lower").effect  # no pre-trend
0.0
>>> estimate(cohort_cells(panel, "family_work", (3,), comparison="not_yet"), 3).comparison
6
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import sparse, stats

from models.cellkey import KEYS, record_key
from models.family import current, residence_events
from models.features import NEED_BASE, NEED_WEIGHTS, family_vector
from models.profile import state_profile
from models.publication import table
from models.service_need import ServiceNeedRule

__all__ = [
    "ANTICIPATION",
    "Alike",
    "COMPARISONS",
    "ENTRY_GAP",
    "HORIZONS",
    "LAG",
    "LOOK_BACK_MONTHS",
    "MIN_ENTRIES",
    "OUTCOME_CUTS",
    "OUTCOME_INCOME_MONTHS",
    "OUTCOME_RULE",
    "OUTCOME_WINDOW_DAYS",
    "SERVICES",
    "SERVICE_FEATURES",
    "Cells",
    "Counts",
    "Estimate",
    "FIELDS",
    "REACH",
    "REPLICATES",
    "Panel",
    "PanelBuilder",
    "COUNT_STEP",
    "SHOWN_DIGITS",
    "published",
    "naive_published",
    "REPORTED",
    "cohort_cells",
    "cohort_counts",
    "estimate",
    "jackknife_se",
    "month_of",
    "outcome_group",
    "outcome_score",
    "pre_trend",
    "record_keys",
    "reference_month",
    "replicates",
    "service_of",
    "withheld",
]

#: The services whose impact is estimated: the social services' codes, child welfare
#: open care (a child welfare client episode) and early childhood education (a child's
#: ``varda`` episode), as ``models.contract`` names their events.
SERVICES: tuple[str, ...] = (
    "family_work",
    "home_service",
    "family_counselling",
    "multi_professional_support",
    "substance_abuse_services",
    "child_welfare_open_care",
    "early_childhood_education",
)

#: The features that count services received (or the child welfare measures a service
#: brings): left out of the outcome, held at the reference family's value.
SERVICE_FEATURES: tuple[str, ...] = (
    "family_work_episodes",
    "home_service_episodes",
    "family_counselling_episodes",
    "multi_professional_support",
    "substance_abuse_contacts",
    "cw_client",
    "cw_placement",
)

#: Cut points of the outcome score between outcome groups 1|2 … 9|10: the quantiles of
#: the outcome scores of the need rule's fitting run (``bench/fit_need_rule.py``) at the
#: reference shares, as the published groups' cuts are of the full score
#: (``python bench/fit_need_rule.py --outcome-cuts``: 18,220 families of seed 101).
OUTCOME_CUTS: tuple[float, ...] = (2.288, 2.688, 3.242, 3.775, 4.32, 4.878, 5.53, 6.248, 7.805)

#: The outcome: the frozen need score without the service features.
OUTCOME_RULE = ServiceNeedRule(
    {f: wr for f, wr in NEED_WEIGHTS.items() if f not in SERVICE_FEATURES},
    base=NEED_BASE,
    cuts=OUTCOME_CUTS,
)

#: The outcome's look back: the need of the last six months (counts in the units of
#: the two-year profile), so that a change shows within months and a rise that brought
#: the service is already in the group the entry is matched on. (The two-year profile
#: of the published groups lags: a family whose need rose just before the start goes on
#: rising in it for a year, and every service looks harmful.)
OUTCOME_WINDOW_DAYS = 182
OUTCOME_INCOME_MONTHS = 6

#: Months before the last month before the start whose group is matched too (the
#: family's course, not only its level).
LAG = 3
#: A start is an entry when the family started no episode of that service in the
#: months before it (and a comparison family none in those before the cohort month).
ENTRY_GAP = 12
#: Relative months of the event study: −6 … +12 (−1, the reference, is 0 by definition).
HORIZONS: tuple[int, ...] = tuple(range(-6, 13))

#: Months before the start that the start's own process already moves the outcome, per
#: service (Callaway & Sant'Anna's *anticipation*): a child welfare case opens with a
#: notification 5 to 60 days before the client episode starts, and notifications count
#: in the outcome, so an entry's group rises into the months before the start because
#: of the case itself and falls again when the notification leaves the outcome's look
#: back. Measured from ``c − 1`` that reads as a harm at 3 months and a benefit at 6 and
#: 12, and the pre-trend check fails (docs/impact.md). With ``a`` months, entries are
#: matched and their moves measured from the end of month ``c − 1 − a``, and a
#: comparison family must not start by ``a`` months after the horizon (its own
#: notification would be in its outcome).
ANTICIPATION: Mapping[str, int] = {"child_welfare_open_care": 2}


def anticipation_of(service: str) -> int:
    """The months of :data:`ANTICIPATION` of ``service`` (0: none).

    >>> anticipation_of("child_welfare_open_care"), anticipation_of("family_work")
    (2, 0)
    """
    return ANTICIPATION.get(service, 0)


def reference_month(anticipation: int = 0) -> int:
    """The month (relative to the start) the moves are measured from and the comparison
    is matched at: −1, earlier by the service's :data:`ANTICIPATION`."""
    return -1 - anticipation


#: Groups of families for the standard error: each family is in one, by a hash of its
#: pseudonym (:func:`replicates`), and the counts are kept per group, so the
#: delete-a-group jackknife (Kott 2001) can leave each out in turn from aggregates alone.
#: The analytic error treats each stratum's families as drawn apart from the others', but
#: a family stands in for many cohort months and the matching itself (which entries have
#: comparison families) is random too: on the panels of nine 20,000-family worlds the
#: jackknife's error was 1.29 times the analytic one at the median (docs/impact.md).
REPLICATES = 20


def replicates(families: Iterable[str]) -> np.ndarray:
    """Each family's replicate group (:data:`REPLICATES`), the same in every process.

    >>> replicates(["f1", "f2"]).tolist()
    [0, 2]
    """
    return np.array([zlib.crc32(f.encode()) % REPLICATES for f in families], dtype=np.int64)


def record_keys(families: Iterable[str]) -> np.ndarray:
    """Each family's record key (:func:`models.cellkey.record_key`, the picture's): the
    counts behind the naive before/after keep their sums, so it is published through
    cell keys (:func:`published`).

    >>> record_keys(["f1"]).tolist() == [record_key("f1")]
    True
    """
    return np.array([record_key(f) for f in families], dtype=np.int64)


_OUTCOMES = ("lower", "higher")
#: The horizons published and evaluated (months after the start).
REPORTED: tuple[int, ...] = (3, 6, 12)


def outcome_score(
    family: dict,
    persons: Mapping[str, dict],
    on: int,
) -> float | None:
    """The outcome score of a family state (:mod:`models.family`) on day ``on`` (an
    ordinal): its current members' profiles over the last :data:`OUTCOME_WINDOW_DAYS`
    up to ``on`` (``persons``: their person states), as a family vector, scored by
    :data:`OUTCOME_RULE`; None without members."""
    members = []
    for p, last in current(family).items():
        state = persons.get(p)
        profile = (
            state_profile(state, OUTCOME_WINDOW_DAYS, OUTCOME_INCOME_MONTHS, on=on) if state else {}
        )
        members.append({"role": last[1], "birth_date": last[2], "profile": profile})
    if not members:
        return None
    return OUTCOME_RULE.need_score(family_vector(members, residence_events(family)))


def outcome_group(vector: Mapping[str, float]) -> int:
    """The outcome group 1 … 10 of a family vector (:data:`OUTCOME_RULE`).

    >>> from models.features import NEED_WEIGHTS
    >>> ref = {f: r for f, (_, r) in NEED_WEIGHTS.items()}
    >>> outcome_group(ref) == outcome_group({**ref, "family_work_episodes": 3.0})
    True
    >>> outcome_group({**ref, "social_assistance": 1.0}) > outcome_group(ref)
    True
    """
    return OUTCOME_RULE.group_of_score(OUTCOME_RULE.need_score(vector))


def month_of(day: str) -> int:
    """A month's index (``year × 12 + month − 1``) from an ISO day.

    >>> month_of("2024-01-31") - month_of("2023-12-01")
    1
    """
    return int(day[:4]) * 12 + int(day[5:7]) - 1


def service_of(event: dict) -> str | None:
    """The service of :data:`SERVICES` an event starts, or None.

    >>> service_of({"type": "social_service.started", "data": {"service": "family_work"}})
    'family_work'
    >>> service_of({"type": "child_welfare.client_started", "data": {}})
    'child_welfare_open_care'
    >>> service_of({"type": "ecec.started", "data": {"episode": "VA1"}})
    'early_childhood_education'
    >>> service_of({"type": "social_service.ended", "data": {"service": "family_work"}})
    """
    if event.get("type") == "social_service.started":
        service = (event.get("data") or {}).get("service")
        return service if service in SERVICES else None
    if event.get("type") == "child_welfare.client_started":
        return "child_welfare_open_care"
    if event.get("type") == "ecec.started":
        return "early_childhood_education"
    return None


@dataclass
class Panel:
    """Families × months: ``groups`` the outcome group at the end of each month (0: not
    counted then), ``municipality`` an index (any small integers; −1 or anything where
    the group is 0), ``starts`` per service each family's start months (any order,
    repeats allowed), ``scores`` the outcome scores, if kept."""

    groups: np.ndarray
    municipality: np.ndarray
    starts: Mapping[str, Sequence[Sequence[int]]] = field(default_factory=dict)
    scores: np.ndarray | None = None  # the outcome scores behind the groups (NaN: none)
    area: np.ndarray | None = None  # the postcode (a number; 0: none) at each month's end
    replicate: np.ndarray | None = None  # each family's replicate group (None: all 0)
    record: np.ndarray | None = None  # each family's record key (None: all 0)

    def started(self, service: str) -> np.ndarray:
        """``[families, months + 1]``: how many starts of ``service`` each family had
        before each month (column ``m``: in months ``< m``)."""
        f, m = self.groups.shape
        out = np.zeros((f, m + 1), dtype=np.int32)
        for i, months in enumerate(self.starts.get(service, ())):
            for c in months:
                if 0 <= c < m:
                    out[i, c + 1] += 1
        return np.cumsum(out, axis=1)


@dataclass(frozen=True)
class Cells:
    """The counts an estimate needs, per stratum: for each horizon ``k`` (of
    ``horizons``) and outcome, arrays over the strata (cohort month × municipality ×
    group at ``c − 1`` × group at ``c − 1 − LAG``) of entries (``n_t``) and of those
    that moved (``y_t``), of comparison families (``n_c``, ``y_c``), and, for the naive
    before/after, the entries observed ``k`` months before (``n_b``) and those that
    had moved then (``y_b``); ``groups``: the counts behind them by replicate group
    (:data:`REPLICATES`), for the jackknife, as rows ``(stratum, group, values
    [horizons, FIELDS up to the comparison families that moved])`` (None: not kept).
    Nothing per family."""

    horizons: tuple[int, ...]
    n_t: dict[int, np.ndarray]
    n_c: dict[int, np.ndarray]
    y_t: dict[tuple[int, str], np.ndarray]
    y_c: dict[tuple[int, str], np.ndarray]
    n_b: dict[int, np.ndarray]
    y_b: dict[tuple[int, str], np.ndarray]
    groups: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    #: ``(horizon, key field of KEYED)``: the entries' key sums behind the naive
    #: before/after, per stratum (None: not kept; the naive is then published exact).
    keys: dict[tuple[int, str], np.ndarray] | None = None


class Alike:
    """Who is alike at the start of cohort month ``c``: the outcome group at the end of
    month ``c − 1`` and ``lag`` months before that (the level and the course).
    ``__call__(panel, c)`` gives each family's key (equal keys: alike) and whether it
    has one.

    Cohort month 4 reads months 3 and 0: families 0 and 1 are alike, 2 rose since.

    >>> g = np.array([[5, 5, 5, 5, 5], [5, 4, 5, 5, 6], [4, 5, 5, 5, 5]], dtype=np.int8)
    >>> key, ok = Alike(lag=3)(Panel(g, np.zeros_like(g)), 4)
    >>> bool(key[0] == key[1] != key[2]), ok.tolist()
    (True, [True, True, True])
    """

    def __init__(self, lag: int = LAG):
        self.lag = lag

    @property
    def first(self) -> int:
        """The first cohort month with every month the key reads."""
        return self.lag + 1

    def __call__(self, panel: Panel, c: int) -> tuple[np.ndarray, np.ndarray]:
        g = panel.groups
        g0, gl = g[:, c - 1].astype(np.int64), g[:, c - 1 - self.lag].astype(np.int64)
        return g0 * 11 + gl, (g0 > 0) & (gl > 0)


#: Who may stand in as a comparison family (besides being alike and not treated from
#: 12 months before the cohort month up to the horizon): ``"later"``, only families
#: that start the service after the horizon's month (after the cohort month for the
#: months before the start; the default: they were selected
#: for it as the entries were; ``docs/impact.md`` measures why the never treated may
#: not stand in), or ``"not_yet"``, any family not yet treated, the never treated too.
COMPARISONS = ("later", "not_yet")

#: A later-treated family stands in for the cohorts of the ``REACH`` months before its
#: own start, no earlier ones: what a worker keeps of a family is then a few years of
#: months, not its whole history (against no reach, over six seeds at 20,000 families,
#: single estimates moved by 0.0025 on average, 0.012 at most: docs/impact.md).
REACH = 24

#: The counts kept per stratum and horizon (:class:`Counts`), in this order: entries,
#: comparison families, entries seen ``k`` months before the start; then of each, those
#: that moved lower and higher; then the key sums of :data:`KEYED`.
FIELDS: tuple[str, ...] = (
    "n_t",
    "n_c",
    "n_b",
    "y_t:lower",
    "y_t:higher",
    "y_c:lower",
    "y_c:higher",
    "y_b:lower",
    "y_b:higher",
    "k_t",
    "k_t:lower",
    "k_t:higher",
    "k_b",
    "k_b:lower",
    "k_b:higher",
)
#: The counts behind the naive before/after and the field of their key sums
#: (``Σ r`` of the families counted, :func:`record_keys`; additive like the counts).
KEYED: Mapping[str, str] = {
    "n_t": "k_t",
    "y_t:lower": "k_t:lower",
    "y_t:higher": "k_t:higher",
    "n_b": "k_b",
    "y_b:lower": "k_b:lower",
    "y_b:higher": "k_b:higher",
}
_AT = {f: i for i, f in enumerate(FIELDS)}
_ENTRY = np.array([not f.startswith(("n_c", "y_c")) for f in FIELDS])  # the entries' fields
_AREAS = 100_000  # postcodes are five digits
# Cells.groups keeps the first fields: those the jackknife reads (entries, comparison
# families and of each those that moved)
_GROUPED = 1 + max(_AT[f"{n}:{o}"] for n in ("y_t", "y_c") for o in _OUTCOMES)


@dataclass(frozen=True)
class Counts:
    """A service's cohort counts, additive: ``strata`` ``[S, 5]`` (cohort month —
    ``year × 12 + month − 1``—, municipality, :class:`Alike` key, area, replicate
    group), ``values``
    ``[S, len(horizons), len(FIELDS)]``. The entries' counts are by their area (the
    postcode at the end of the month before the start, 0: none); the comparison
    families' are in the row of area 0, as they stand in for the entries of every area
    of their municipality. The counts of two
    sets of families are the sum of theirs (:meth:`__add__`): each worker partition
    keeps its own, a reader adds them up. Nothing per family.

    >>> g = np.full((3, 8), 5, dtype=np.int8)
    >>> p = Panel(g, np.zeros_like(g), {"family_work": [[5], [7], []]})
    >>> a = cohort_counts(p, "family_work", (1,), first=24_300)
    >>> a.strata.tolist()  # cohort 24304 has a comparison family, no entry
    [[24304, 0, 60, 0, 0], [24305, 0, 60, 0, 0]]
    >>> a.values[1, 0, :9].tolist()  # one entry (seen a month before too), one comparison
    [1, 1, 1, 0, 0, 0, 0, 0, 0]
    >>> p.record = np.array([7, 100, 1000])  # record keys: the key fields sum the entries'
    >>> dict(zip(FIELDS[9:], cohort_counts(p, "family_work", (1,)).values[1, 0, 9:].tolist()))
    {'k_t': 7, 'k_t:lower': 0, 'k_t:higher': 0, 'k_b': 7, 'k_b:lower': 0, 'k_b:higher': 0}
    >>> (a + a).values[1, 0, :2].tolist(), (a + a).cells().n_t[1].tolist()
    ([2, 2], [2.0])
    """

    horizons: tuple[int, ...]
    strata: np.ndarray
    values: np.ndarray

    @classmethod
    def empty(cls, horizons: Sequence[int] = HORIZONS) -> Counts:
        ks = tuple(horizons)
        return cls(ks, np.zeros((0, 5), np.int64), np.zeros((0, len(ks), len(FIELDS)), np.int64))

    def __add__(self, other: Counts) -> Counts:
        return Counts.total([self, other], self.horizons)

    @classmethod
    def total(cls, parts: Sequence[Counts], horizons: Sequence[int] = HORIZONS) -> Counts:
        """The sum of ``parts`` (all of ``horizons``), strata sorted, in one pass."""
        ks = tuple(horizons)
        if any(p.horizons != ks for p in parts):
            raise ValueError("counts of different horizons")
        if not parts:
            return cls.empty(ks)
        strata = np.concatenate([p.strata for p in parts])
        values = np.concatenate([p.values for p in parts])
        keys, inverse = _unique_rows(strata)
        return Counts(ks, keys, _summed(inverse, values, len(keys)))

    def cells(self, municipalities: Sequence[int] | None = None, area: int | None = None) -> Cells:
        """The :class:`Cells` of the strata with an entry (``municipalities``: those
        strata only; ``area``: the entries of that area, against their strata's
        comparison families)."""
        rows_of, values = self.strata, self.values
        if municipalities is not None:  # a municipality's strata only, before any sum
            there = np.isin(rows_of[:, 1], np.asarray(municipalities))
            rows_of, values = rows_of[there], values[there]
        strata, inverse = _unique_rows(rows_of[:, :3])
        if area is not None:  # every row's comparison fields; the area's rows' entries'
            mine = rows_of[:, 3] == area
            values = values * np.where(mine[:, None, None], True, ~_ENTRY)
        v = _summed(inverse, values, len(strata))
        keep = (v[:, :, _AT["n_t"]] > 0).any(axis=1)
        vk = v[keep]
        vf = vk.astype(float)
        ks = self.horizons
        at = np.full(len(strata), -1)
        at[keep] = np.arange(int(keep.sum()))
        row_at = at[inverse]
        rows = row_at >= 0
        groups = None
        if np.unique(rows_of[rows, 4]).size > 1:
            # a row per kept stratum and replicate group (its areas added up), the
            # jackknife's fields only
            pairs, pair_of = np.unique(
                row_at[rows] * REPLICATES + rows_of[rows, 4], return_inverse=True
            )
            grouped = values[:, :, :_GROUPED][rows]
            stratum, group = np.divmod(pairs, REPLICATES)
            groups = (stratum, group, _summed(pair_of.reshape(-1), grouped, len(pairs)))

        def one(name: str) -> dict:
            return {k: vf[:, i, _AT[name]] for i, k in enumerate(ks)}

        def two(name: str) -> dict:
            return {
                (k, o): vf[:, i, _AT[f"{name}:{o}"]] for i, k in enumerate(ks) for o in _OUTCOMES
            }

        return Cells(
            ks,
            one("n_t"),
            one("n_c"),
            two("y_t"),
            two("y_c"),
            one("n_b"),
            two("y_b"),
            groups,
            {(k, f): vk[:, i, _AT[f]] for i, k in enumerate(ks) for f in KEYED.values()},
        )


def _unique_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(rows, axis=0, return_inverse=True)`` by one integer per row, where
    the columns' ranges fit in 63 bits (the 551,521 strata rows of 80,000 families:
    0.05 s against 0.8–1.1 s).

    >>> u, inv = _unique_rows(np.array([[3, -1], [1, 5], [3, -1]]))
    >>> u.tolist(), inv.tolist()
    ([[1, 5], [3, -1]], [1, 0, 1])
    """
    if len(rows) == 0:
        return rows[:0], np.zeros(0, np.int64)
    low, high = rows.min(axis=0), rows.max(axis=0)
    spans = (high - low + 1).astype(object)  # Python integers: no overflow in the test
    if np.prod(spans) >= 2**63:
        out, inverse = np.unique(rows, axis=0, return_inverse=True)
        return out, inverse.reshape(-1)
    key = np.zeros(len(rows), np.int64)
    for j in range(rows.shape[1]):
        key = key * int(spans[j]) + (rows[:, j] - low[j])
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    return rows[first], inverse.reshape(-1)


def _summed(at: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """``out[i] = Σ values[at == i]`` for ``i < n``, as a sparse 0/1 matrix (row ``i``:
    the rows of ``at == i``) times ``values``, in ``values``' integers: no copy of the
    rows in order (``np.add.at`` took 0.2 s for a service's 45,000 strata; running
    sums 0.43 s and ``np.add.reduceat`` 0.25 s for 127,000 rows, this 0.03 s).

    >>> _summed(np.array([1, 0, 1]), np.array([[1], [2], [3]]), 3).tolist()
    [[2], [4], [0]]
    >>> _summed(np.zeros(0, int), np.zeros((0, 2, 3)), 2).shape
    (2, 2, 3)
    """
    flat = values.reshape(len(values), int(np.prod(values.shape[1:])))
    order = np.argsort(at, kind="stable") if (at[1:] < at[:-1]).any() else np.arange(len(at))
    indptr = np.r_[0, np.cumsum(np.bincount(at, minlength=n))]
    ones = sparse.csr_matrix((np.ones(len(at), values.dtype), order, indptr), shape=(n, len(at)))
    return np.asarray(ones @ flat).reshape(n, *values.shape[1:])


def cohort_cells(
    panel: Panel,
    service: str,
    horizons: Sequence[int] = HORIZONS,
    municipalities: Sequence[int] | None = None,
    alike: Alike | None = None,
    gap: int = ENTRY_GAP,
    comparison: str = "later",
    reach: int | None = REACH,
    anticipation: int | None = None,
) -> Cells:
    """The stratum counts of ``service``'s cohorts (module doc) as :class:`Cells`:
    strata are cohort month × municipality × :class:`Alike` key (default ``Alike()``),
    those with an entry only; ``municipalities``: only entries there (None: all);
    ``comparison``: one of :data:`COMPARISONS`; ``reach``: see :data:`REACH` (None:
    any later start); ``anticipation``: months (None: the service's
    :data:`ANTICIPATION`)."""
    counts = cohort_counts(
        panel, service, horizons, alike, gap, comparison, reach, anticipation=anticipation
    )
    return counts.cells(municipalities)


class _Binner:
    """Adds to ``values[:, horizon, field]`` how many families of a mask each stratum
    (``where``: each family's, −1 none) has, and for a field of :data:`KEYED` the sum
    of their record keys (``keys``) to its key field."""

    def __init__(self, values: np.ndarray, where: np.ndarray, keys: np.ndarray):
        self.values, self.where, self.keys = values, where, keys

    def __call__(self, mask: np.ndarray, i: int, name: str) -> None:
        at, size = self.where[mask], len(self.values)
        self.values[:, i, _AT[name]] += np.bincount(at, minlength=size)
        if name in KEYED:  # exact in float64: below 2⁵³
            sums = np.bincount(at, weights=self.keys[mask], minlength=size)
            self.values[:, i, _AT[KEYED[name]]] += sums.astype(np.int64)


def cohort_counts(
    panel: Panel,
    service: str,
    horizons: Sequence[int] = HORIZONS,
    alike: Alike | None = None,
    gap: int = ENTRY_GAP,
    comparison: str = "later",
    reach: int | None = REACH,
    first: int = 0,
    cohorts: range | None = None,
    anticipation: int | None = None,
) -> Counts:
    """The :class:`Counts` of ``service``'s cohorts (:func:`cohort_cells`): every
    stratum with an entry or a comparison family. ``first``: the panel's first month
    (``year × 12 + month − 1``), so that the counts of panels of different spans add
    up; ``cohorts``: only these cohort months (panel columns; None: all);
    ``anticipation``: months (None: the service's :data:`ANTICIPATION`)."""
    if comparison not in COMPARISONS:
        raise ValueError(f"comparison must be one of {COMPARISONS}, not {comparison!r}")
    alike = alike or Alike()
    a = anticipation_of(service) if anticipation is None else anticipation
    g = np.asarray(panel.groups, dtype=np.int64)
    mu = np.asarray(panel.municipality, dtype=np.int64)
    n_m = g.shape[1]
    cum = panel.started(service)
    rep = np.zeros(len(g), np.int64) if panel.replicate is None else panel.replicate
    rkeys = np.zeros(len(g), np.int64) if panel.record is None else panel.record
    ks = tuple(horizons)
    span = range(max(alike.first, 0), n_m) if cohorts is None else cohorts
    strata_out, values_out = [], []

    def moved(later: np.ndarray, base: np.ndarray, outcome: str) -> np.ndarray:
        return (later < base) if outcome == "lower" else (later > base)

    for c in span:
        if c - a < alike.first or c >= n_m:
            continue
        b = c - 1 - a  # the reference month
        key, base = alike(panel, b + 1)
        g0, m0 = g[:, b], mu[:, b]
        base &= g0 > 0
        if not base.any():
            continue
        recent = cum[:, c] - cum[:, max(c - gap, 0)]  # starts in c − gap … c − 1
        entry = base & (cum[:, c + 1] - cum[:, c] > 0) & (recent == 0)
        # The municipality, the key, (of an entry) its area and the replicate group, one
        # integer: an entry's counts go to its area's row, a comparison family's to the
        # area-0 row.
        ar = panel.area[:, b].astype(np.int64) if panel.area is not None else 0
        full = ((m0 * 1_000_000 + key) * _AREAS + np.where(entry, ar, 0)) * REPLICATES + rep
        strata, at = np.unique(full[base], return_inverse=True)
        where = np.full(len(g0), -1, np.int64)
        where[base] = at.reshape(-1)
        values = np.zeros((len(strata), len(ks), len(FIELDS)), np.int64)
        add = _Binner(values, where, rkeys)
        for i, k in enumerate(ks):
            t = c + k
            gk = g[:, t] if 0 <= t < n_m else np.zeros_like(g0)
            seen = gk > 0
            # not yet treated: no start from c − gap up to the horizon's month (and the
            # anticipation's months after it)
            last = min(max(t, c) + a, n_m - 1) + 1  # cum column after those
            clean = (cum[:, last] - cum[:, max(c - gap, 0)]) == 0
            if comparison == "later":
                upto = n_m if reach is None else min(max(last, c + reach + 1), n_m)
                clean &= cum[:, upto] > cum[:, last]
            tr, co = entry & seen, base & seen & clean
            add(tr, i, "n_t")
            add(co, i, "n_c")
            before = np.zeros_like(entry)
            if k > 0 and b - k >= 0:  # the same entries, k months before the reference
                before = entry & seen & (g[:, b - k] > 0)
            add(before, i, "n_b")
            for o in _OUTCOMES:
                mv = moved(gk, g0, o)
                add(tr & mv, i, f"y_t:{o}")
                add(co & mv, i, f"y_c:{o}")
                mb = moved(g0, g[:, min(max(b - k, 0), n_m - 1)], o)  # used if k > 0
                add(before & mb, i, f"y_b:{o}")
        used = values.any(axis=(1, 2))
        if used.any():
            rest, group = np.divmod(strata[used], REPLICATES)
            rest, area = np.divmod(rest, _AREAS)
            muni, key = np.divmod(rest, 1_000_000)
            rows = np.stack([np.full(len(key), first + c), muni, key, area, group], 1)
            strata_out.append(rows)
            values_out.append(values[used])
    if not strata_out:
        return Counts.empty(ks)
    return Counts(ks, np.concatenate(strata_out), np.concatenate(values_out))


@dataclass(frozen=True)
class Estimate:
    """The effect of a service on the probability of moving to a ``lower`` (or
    ``higher``) outcome group ``horizon`` months after the start, as a difference of
    probabilities: ``effect`` with its standard error ``se``, the 95 % interval, the
    minimum detectable effect (80 % power, two-sided 5 %: 2.8 standard errors); the
    entries matched (``treated``), those without any comparison family in their
    stratum (``unmatched``, left out), the comparison families (``comparison``, counted
    once per stratum they stand in), the raw counts behind it (``moved_treated``,
    ``moved_comparison``) and the ``naive`` before/after of the same entries (None for
    ``horizon ≤ 0``)."""

    horizon: int
    outcome: str
    effect: float | None
    se: float | None
    ci_low: float | None
    ci_high: float | None
    mde: float | None
    treated: int
    unmatched: int
    comparison: int
    moved_treated: int
    moved_comparison: int
    naive: float | None


def estimate(cells: Cells, horizon: int, outcome: str = "lower") -> Estimate:
    """The matched effect at ``horizon`` (module doc, :class:`Estimate`).

    Where the cells keep their replicate groups, the standard error is the
    delete-a-group jackknife's (:func:`jackknife_se`: the estimate made again with each
    group left out, matching included) and the interval ± t₀.₉₇₅ with ``G − 1`` degrees
    of freedom. Otherwise it is analytic: the variance of the mean over entries of
    (outcome − their stratum's comparison mean), plus ``Σ (n_t / N)² μ (1 − μ) / n_c``
    over strata, each stratum's families taken as drawn apart from the others'.
    """
    nt, nc = cells.n_t[horizon], cells.n_c[horizon]
    yt, yc = cells.y_t[horizon, outcome], cells.y_c[horizon, outcome]
    ok = (nt > 0) & (nc > 0)
    n = float(nt[ok].sum())
    naive = None
    if horizon > 0 and cells.n_b[horizon].sum() > 0 and nt.sum() > 0:
        after = yt.sum() / nt.sum()
        before = cells.y_b[horizon, outcome].sum() / cells.n_b[horizon].sum()
        naive = round(float(after - before), 6)
    common: dict[str, Any] = dict(
        horizon=horizon,
        outcome=outcome,
        treated=int(n),
        unmatched=int(nt[~ok].sum()),
        comparison=int(nc[ok].sum()),
        moved_treated=int(yt[ok].sum()),
        moved_comparison=int(yc[ok].sum()),
        naive=naive,
    )
    if n == 0:
        return Estimate(effect=None, se=None, ci_low=None, ci_high=None, mde=None, **common)
    nt, nc, yt, yc = nt[ok], nc[ok], yt[ok], yc[ok]
    mu = yc / nc
    att = float(((yt - nt * mu).sum()) / n)
    sq = (yt * (1 - mu) ** 2 + (nt - yt) * mu**2).sum()  # Σ over entries of (Y − μ)²
    var_t = max(float(sq) - n * att**2, 0.0) / max(n - 1, 1) / n
    var_c = float(((nt / n) ** 2 * mu * (1 - mu) / nc).sum())
    se, z, power = (var_t + var_c) ** 0.5, 1.96, 0.84
    jack = jackknife_se(cells, horizon, outcome)
    if jack is not None:
        se, z, power = jack, _T_975, _T_80
    return Estimate(
        effect=round(att, 6),
        se=round(se, 6),
        ci_low=round(att - z * se, 6),
        ci_high=round(att + z * se, 6),
        mde=round((z + power) * se, 6),
        **common,
    )


#: The jackknife interval's and minimum detectable effect's t quantiles (G − 1 degrees
#: of freedom).
_T_975, _T_80 = (float(stats.t.ppf(q, REPLICATES - 1)) for q in (0.975, 0.8))


def jackknife_se(cells: Cells, horizon: int, outcome: str = "lower") -> float | None:
    """The delete-a-group jackknife's standard error of :func:`estimate` (Kott 2001):
    the effect made again without each replicate group in turn, from the cells' counts
    per group (strata without an entry or a comparison family then drop out, as they
    would), ``sqrt((G − 1) / G · Σ (τ₋g − τ̄)²)``; None where the cells keep no groups
    or leaving a group out leaves no entry."""
    if cells.groups is None:
        return None
    stratum, group, values = cells.groups
    i = cells.horizons.index(horizon)
    fields = [_AT["n_t"], _AT["n_c"], _AT[f"y_t:{outcome}"], _AT[f"y_c:{outcome}"]]
    x = values[:, i, fields].astype(float)  # [stratum × group rows, fields]
    # each stratum's counts, all groups in: the cells' own
    whole = np.stack(
        [
            cells.n_t[horizon],
            cells.n_c[horizon],
            cells.y_t[horizon, outcome],
            cells.y_c[horizon, outcome],
        ],
        1,
    )

    def terms(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each stratum's term of the effect's numerator and its entries (0 where it
        has no entry or no comparison family)."""
        nt, nc, yt, yc = c.T
        ok = (nt > 0) & (nc > 0)
        return np.where(ok, yt - nt * yc / np.where(ok, nc, 1), 0), np.where(ok, nt, 0)

    # Leaving group g out changes only the strata it has a row in: the whole sums less,
    # for each of those rows, its stratum's term with the group less without it.
    top, n = (v.sum() for v in terms(whole))
    with_g, without_g = terms(whole[stratum]), terms(whole[stratum] - x)
    less = [np.bincount(group, a - b, REPLICATES) for a, b in zip(with_g, without_g, strict=True)]
    n_out = n - less[1]
    if (n_out <= 0).any():
        return None
    att = (top - less[0]) / n_out
    g = len(att)
    return float(np.sqrt((g - 1) / g * ((att - att.mean()) ** 2).sum()))


class PanelBuilder:
    """A :class:`Panel` from a stream: the starts as they arrive (:meth:`start`, once
    per episode), the families' outcome groups, municipalities and areas at each month's end
    (:meth:`month_end`, months in order; the caller says when a month has ended). A
    start counts for the family its person belongs to at the end of the start's month.

    >>> b = PanelBuilder(month_of("2025-01-01"))
    >>> b.start("family_work", "p1", "e1", "2025-02-03")
    >>> b.start("family_work", "p1", "e1", "2025-02-03")  # a duplicate
    >>> for m, score in (("2025-01-31", 4.0), ("2025-02-28", 4.0), ("2025-03-31", 3.5)):
    ...     b.month_end(month_of(m), [("f1", "837", "33100", score, ("p1", "p2"))])
    >>> panel, families, entries = b.panel()
    >>> panel.groups.tolist(), panel.starts["family_work"], families, entries
    ([[5, 5, 4]], [[1]], ['f1'], {('family_work', 'e1'): (0, 1)})
    >>> panel.scores.tolist(), panel.area.tolist()
    ([[4.0, 4.0, 3.5]], [[33100, 33100, 33100]])
    """

    def __init__(self, first_month: int, municipalities: Sequence[str] | None = None):
        self.first = first_month
        self.munis = {m: i for i, m in enumerate(sorted(municipalities or ()))}
        self.rows: dict[str, int] = {}
        # month -> {row: (score, municipality index, postcode as a number)}
        self.columns: list[dict[int, tuple[float, int, int]]] = []
        self.pending: dict[tuple[str, str], tuple[str, int]] = {}  # episode -> person, month
        self.entries: dict[tuple[str, str], tuple[int, int]] = {}  # episode -> row, month

    def start(self, service: str, person: str, episode: str, day: str) -> None:
        m = month_of(day) - self.first
        if m >= 0 and (service, episode) not in self.entries:
            self.pending.setdefault((service, episode), (person, m))

    def month_end(self, month: int, families) -> None:
        """``families``: ``(family, municipality, postcode, outcome score, member
        persons)`` of every family counted at the end of ``month``."""
        m = month - self.first
        while len(self.columns) <= m:
            self.columns.append({})
        column, member_of = self.columns[m], {}
        for fam, muni, area, score, members in families:
            row = self.rows.setdefault(fam, len(self.rows))
            column[row] = (score, self.munis.setdefault(muni, len(self.munis)), int(area or 0))
            for p in members:
                member_of[p] = row
        for key, (person, sm) in list(self.pending.items()):
            if sm <= m:
                del self.pending[key]
                if person in member_of:
                    self.entries[key] = (member_of[person], sm)

    def panel(self) -> tuple[Panel, list[str], dict[tuple[str, str], tuple[int, int]]]:
        """``(panel, family of each row, (service, episode) -> (row, start month))``."""
        shape = (len(self.rows), len(self.columns))
        scores = np.full(shape, np.nan)
        munis = np.full(shape, -1, dtype=np.int16)
        areas = np.zeros(shape, dtype=np.int32)
        for m, column in enumerate(self.columns):
            if column:
                rows = np.fromiter(column, dtype=np.int64)
                vals = np.array(list(column.values()), dtype=float)
                scores[rows, m], munis[rows, m], areas[rows, m] = vals.T
        cuts = np.asarray(OUTCOME_RULE.cuts)
        groups = np.where(
            np.isnan(scores), 0, 1 + np.searchsorted(cuts, np.nan_to_num(scores), side="right")
        ).astype(np.int8)
        starts: dict[str, list[list[int]]] = {s: [[] for _ in range(shape[0])] for s in SERVICES}
        for (service, _), (row, m) in self.entries.items():
            starts[service][row].append(m)
        fams = list(self.rows)
        panel = Panel(groups, munis, starts, scores, areas, replicates(fams), record_keys(fams))
        return panel, fams, dict(self.entries)


#: Fewer entries than this and an estimate is not published (its interval would be
#: too wide to tell anything, and a few families' moves would show in it).
MIN_ENTRIES = 20


#: Whole months of the outcome's look back (:data:`OUTCOME_WINDOW_DAYS`): until this many
#: months after the start, a family's outcome still reads the months before it.
LOOK_BACK_MONTHS = OUTCOME_WINDOW_DAYS // 30


def withheld(
    e: Estimate, min_cell: int, min_entries: int = MIN_ENTRIES, anticipation: int = 0
) -> str | None:
    """Why ``e`` may not be published, or None: too few entries, or a count behind it
    (entries that moved, that did not; comparison families that moved, that did not)
    within 1 … ``min_cell − 1``, the small-cell rule of the picture; or, for a service
    with ``anticipation`` (:data:`ANTICIPATION`), a month from the start within the
    outcome's look back (:data:`LOOK_BACK_MONTHS`), where the entries' outcome still
    reads what opened the case (a notification) and their comparison families' does
    not: measured, open care at 3 months −0.19 on average where it has no effect
    (docs/impact.md).

    >>> e = Estimate(6, "lower", 0.1, 0.05, 0.0, 0.2, 0.14, 40, 0, 400, 3, 20, 0.2)
    >>> withheld(e, 5)
    'a count behind the estimate is 1 to 4 families'
    >>> withheld(e, 3) is None, withheld(e, 3, 50)
    (True, 'fewer than 50 entries')
    >>> withheld(e, 3, anticipation=2) is None  # 6 months on: out of the look back
    True
    >>> from dataclasses import replace
    >>> withheld(replace(e, horizon=3), 3, anticipation=2)
    "what opened the case is still in the outcome's 6-month look back"
    """
    if anticipation and 0 <= e.horizon < LOOK_BACK_MONTHS:
        return f"what opened the case is still in the outcome's {LOOK_BACK_MONTHS}-month look back"
    if e.effect is None or e.treated < min_entries:
        return f"fewer than {min_entries} entries"  # not how many: a count under min_cell
    counts = (
        e.moved_treated,
        e.treated - e.moved_treated,
        e.moved_comparison,
        e.comparison - e.moved_comparison,
    )
    if any(0 < c < min_cell for c in counts):
        return f"a count behind the estimate is 1 to {min_cell - 1} families"
    return None


def pre_trend(cells, outcome: str = "lower", anticipation: int = 0) -> float | None:
    """The p-value of "no effect before the start": the months before the reference
    (:func:`reference_month`; −6 … −2 without anticipation) but the matched one, a
    chi-square on the event-study estimates taken as independent (they are not quite:
    the same families at neighbouring months)."""
    months = _pre_trend_months(anticipation)
    return _pre_trend_p(estimate(cells, k, outcome) for k in cells.horizons if k in months)


def _pre_trend_p(estimates: Iterable[Estimate]) -> float | None:
    """:func:`pre_trend` of the estimates of the months it tests."""
    z = [e.effect / e.se for e in estimates if e.effect is not None and e.se]
    if not z:
        return None
    return round(float(stats.chi2.sf(float(np.sum(np.square(z))), len(z))), 4)


#: Published counts of families are rounded down to a multiple of this: from one
#: month's answer to the next, the change of an exact count would say how many
#: families entered a cohort (a handful, in a small municipality).
COUNT_STEP = 10


def published(
    cells: Cells, min_cell: int, outcome: str = "lower", naive: bool = True, anticipation: int = 0
) -> dict:
    """What is published of a service's cells (the API, the export, the page): per
    horizon of :data:`REPORTED` and per month of the event study (all of
    ``cells.horizons`` but the reference, :func:`reference_month` of
    ``anticipation``, the service's :data:`ANTICIPATION`), the estimate or why it is withheld
    (:func:`withheld`), rounded to :data:`SHOWN_DIGITS` decimals; the entries and
    comparison families rounded down to :data:`COUNT_STEP`; the naive before/after only
    where none of its own counts (all entries, those seen before, and of each those
    that moved and did not) is 1 … ``min_cell − 1``, from those counts as the cell key
    method publishes them (:func:`naive_published`); the pre-trend p-value only where
    every month it tests is published. ``naive`` False: never the naive before/after
    (an area's answer: docs/impact.md, "Over time").

    >>> g = np.full((60, 12), 5, dtype=np.int8)
    >>> g[:30, 8:] = 4  # the 30 entries (month 6) improve, the 30 later treated do not
    >>> starts = [[6]] * 30 + [[11]] * 30
    >>> cells = cohort_cells(Panel(g, np.zeros_like(g), {"family_work": starts}),
    ...                      "family_work", (-2, 3))
    >>> out = published(cells, min_cell=5)
    >>> out["estimates"][0]["months"], out["estimates"][0]["effect"]
    (3, 1.0)
    >>> out["estimates"][0]["withheld"] is None, out["estimates"][0]["entries"]
    (True, 30)
    >>> published(cells, min_cell=40)["estimates"][0]["withheld"]
    'a count behind the estimate is 1 to 39 families'
    """

    def shown(v: float | None) -> float | None:
        return None if v is None else round(v, SHOWN_DIGITS)

    ref = reference_month(anticipation)
    made = {k: estimate(cells, k, outcome) for k in cells.horizons if k != ref}  # each once

    def one(k: int) -> dict:
        e = made[k]
        why = withheld(e, min_cell, anticipation=anticipation)
        if why is not None:
            return {"months": k, **dict.fromkeys(_SHOWN), "withheld": why}
        return {
            "months": k,
            "effect": shown(e.effect),
            "ci_low": shown(e.ci_low),
            "ci_high": shown(e.ci_high),
            "mde": shown(e.mde),
            "naive": (
                shown(naive_published(cells, k, outcome, min_cell))
                if naive and _naive_safe(cells, k, outcome, min_cell)
                else None
            ),
            "entries": e.treated // COUNT_STEP * COUNT_STEP,
            "comparison": e.comparison // COUNT_STEP * COUNT_STEP,
            "withheld": None,
        }

    estimates = [one(k) for k in REPORTED if k in cells.horizons]
    study = [one(k) for k in cells.horizons if k != ref]
    tested = [r for r in study if r["months"] in _pre_trend_months(anticipation)]
    safe = tested and all(r["withheld"] is None for r in tested)
    p = _pre_trend_p(made[r["months"]] for r in tested) if safe else None
    return {
        "estimates": estimates,
        "event_study": study,
        "pre_trend_p": p,
        "reference_month": ref,
    }


#: Decimals of a published effect (0.1 percentage points): more would let the exact
#: ratios, and so the counts, show from one month's answer to the next.
SHOWN_DIGITS = 3
_SHOWN = ("effect", "ci_low", "ci_high", "mde", "naive", "entries", "comparison")


def _pre_trend_months(anticipation: int = 0) -> tuple[int, ...]:
    """The months :func:`pre_trend` tests: before the reference, but the matched one."""
    ref = reference_month(anticipation)
    return tuple(k for k in HORIZONS if k < ref and k != ref - LAG)


def naive_published(cells: Cells, k: int, outcome: str, min_cell: int) -> float | None:
    """The naive before/after at horizon ``k`` from its four counts as the cell key
    method publishes them (:mod:`models.publication`: ``n + p(n, Σ r mod KEYS)``, the
    picture's table): entries that moved and did not, after and before. Between two
    months it moves by the new entries only, so with exact counts the direction of its
    change could tell a lone new entry's outcome; the same families always give the
    same value, one family more redraws a count's perturbation (docs/impact.md, "Over
    time"). Exact where the cells keep no key sums; None where it has no entries.

    >>> g = np.full((60, 12), 5, dtype=np.int8)
    >>> g[:30, 8:] = 4  # the 30 entries (month 6) improve, the 30 later treated do not
    >>> p = Panel(g, np.zeros_like(g), {"family_work": [[6]] * 30 + [[11]] * 30})
    >>> cells = cohort_cells(p, "family_work", (3,))
    >>> estimate(cells, 3).naive, naive_published(cells, 3, "lower", 5)
    (1.0, 1.0)
    >>> p.record = record_keys([f"f{i}" for i in range(60)])
    >>> keyed = cohort_cells(p, "family_work", (3,))
    >>> naive_published(keyed, 3, "lower", 5)  # a count of 0 is never perturbed
    1.0
    """
    if k not in cells.n_b or cells.n_b[k].sum() == 0 or cells.n_t[k].sum() == 0:
        return None
    n, y = int(cells.n_t[k].sum()), int(cells.y_t[k, outcome].sum())
    nb, yb = int(cells.n_b[k].sum()), int(cells.y_b[k, outcome].sum())
    counts: tuple[int, ...] = (y, n - y, yb, nb - yb)  # moved and not, after and before
    if cells.keys is not None:
        kn, ky = (int(cells.keys[k, f].sum()) for f in ("k_t", f"k_t:{outcome}"))
        knb, kyb = (int(cells.keys[k, f].sum()) for f in ("k_b", f"k_b:{outcome}"))
        t = table(min_cell)
        sums = (ky, kn - ky, kyb, knb - kyb)
        counts = tuple(t.published(c, r % KEYS) for c, r in zip(counts, sums, strict=True))
    moved, stayed, moved_b, stayed_b = counts
    return round(moved / (moved + stayed) - moved_b / (moved_b + stayed_b), 6)


def _naive_safe(cells: Cells, k: int, outcome: str, min_cell: int) -> bool:
    """Whether the counts behind the naive before/after obey the small-cell rule."""
    if k not in cells.n_b:
        return False
    n, y = cells.n_t[k].sum(), cells.y_t[k, outcome].sum()
    nb, yb = cells.n_b[k].sum(), cells.y_b[k, outcome].sum()
    return not any(0 < c < min_cell for c in (n, y, n - y, nb, yb, nb - yb))
