"""A person's feature profile read off the compact person state, at the cost of the window.

:func:`state_profile` returns exactly :func:`models.features.person_profile` of the events
that were :func:`models.person.add`-ed (with ``profile=True``) and not removed, bit for
bit, without re-reducing the person's whole history. It reads only:

* the rows of ``s``, ``v``, ``mh``, ``c``, ``cwn`` from the window start on (a bisect on
  the day-sorted rows), plus the one status in force at the window start;
* the ``inc`` rows of the 24 months ending with the latest reported month;
* the episodes that overlap the window or are still open, through the profile index
  ``state["px"]`` (see below);
* the level counts of ``edu`` and ``sup`` in the index.

The window and the constants are those of :mod:`models.features`: ``w0 = last + 1 - 730``.

The profile index ``state["px"]`` (JSON-able, derived from the rows, kept by
:func:`note` on every row change; :func:`build_index` makes it from scratch):

=========  ===================================================================
key        value
=========  ===================================================================
``ep``     ``[[until, "stem|episode"], ...]`` sorted: every episode with a start,
           ``until`` its latest end day, or :data:`OPEN` while it has no end (or
           its latest end is before its first start: person_profile counts it
           open)
``until``  ``{"stem|episode": until}``: where each episode sits in ``ep``
``edu``    row count per education level (index = level)
``sup``    row count per school support level (index = level)
=========  ===================================================================

An episode counts on window ``[w0, last]`` only if ``until >= w0`` (``d_``: it ends
after ``w0`` or is open; ``n_``: it starts on or after ``w0``, so ends there too), so
the episodes read are ``px["ep"][bisect_left(px["ep"], [w0]):]``: those overlapping
the window and the open ones. A state without ``"px"`` (while :mod:`models.person` does
not keep the index yet) is read by scanning every episode and every ``edu``/``sup``
row: correct, but O(history) there.

The index block at the end of this module uses nothing of :mod:`models.features`, so
that it can move to :mod:`models.person` as it is: :mod:`models.person` cannot import
this module (``profile -> features -> family -> person`` would be an import cycle).

Examples
--------
>>> from models import person
>>> from models.features import person_profile
>>> evs = [
...     {"event_id": "1", "source": "incomes", "type": "income.reported",
...      "occurred_at": "2026-03-05", "recorded_at": "2026-03-05T00:00:00.000000Z",
...      "data": {"month": "2026-02", "gross_eur": 3012.0}},
...     {"event_id": "2", "source": "kela", "type": "benefit.started",
...      "occurred_at": "2025-03-06", "recorded_at": "2025-03-06T00:00:00.000000Z",
...      "data": {"benefit": "housing_allowance", "episode": "e1"}},
...     {"event_id": "3", "source": "employment", "type": "employment.status_changed",
...      "occurred_at": "2025-03-06", "recorded_at": "2025-03-06T00:00:00.000000Z",
...      "data": {"status": "employed"}},
... ]
>>> st = person.new_state()
>>> for ev in evs:
...     _ = person.add(st, ev)
>>> state_profile(st)
{'d_housing_allowance': 0.5, 'ds_employed': 0.5, 'inc': 130.0, 'inc_mo': 1.0, 'n_housing_allowance': 1.0, 'st_employed': 1.0, 't': 674.0}
>>> state_profile(st) == person_profile(evs)
True

With the index (what :func:`models.person.add` would keep through :func:`note`):

>>> _ = build_index(st)
>>> st["px"]["ep"], st["px"]["until"], st["px"]["edu"]
([[10000000, 'benefit|e1']], {'benefit|e1': 10000000}, [0, 0, 0, 0, 0, 0])
>>> state_profile(st) == person_profile(evs)
True
>>> _ = person.remove(st, "2"); note(st, "ep", None, "benefit|e1", -1)
>>> st["px"]["ep"], state_profile(st) == person_profile(evs[::2])
([], True)
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections import Counter
from itertools import compress
from operator import itemgetter

from models.features import (
    EPISODE_TYPES,
    INCOME_MONTHS,
    STATUSES,
    STEM_KEY,
    WINDOW_DAYS,
)
from models.person import (
    EDUCATION_LEVEL,
    OPEN,
    SUPPORT_LEVEL,
    build_index,
    episode_span,
    new_index,
    note,
    rows_of,
)

__all__ = ["OPEN", "build_index", "episode_span", "new_index", "note", "state_profile"]

_STEMS = frozenset(stem for stem, _ in EPISODE_TYPES.values())
_TOP = {"edu": max(EDUCATION_LEVEL.values()), "sup": max(SUPPORT_LEVEL.values())}


def state_profile(
    state: dict,
    window: int = WINDOW_DAYS,
    income_months: int = INCOME_MONTHS,
    on: int | None = None,
) -> dict[str, float]:
    """:func:`models.features.person_profile` of the events stored in ``state``.

    Cost: a bisect per category plus the rows in the window, the 24 income months, the
    episodes overlapping the window or open, and (with ``state["px"]``) O(levels) for
    ``edu``/``sup`` -- not the length of the history.

    ``window``, ``income_months``: a shorter look back, in the same units (counts scaled
    to :data:`WINDOW_DAYS`, shares of the window's days, the mean income of the months):
    the recent need the impact outcome reads (``models/impact.py``). ``on``: the window
    ends on that day (an ordinal) instead of on the person's own latest day, and only
    what happened by then counts (incomes: the months reported up to that month): the
    profile on a calendar day, as at a month's end. Only the defaults are
    :func:`~models.features.person_profile` bit for bit.
    """
    last = state["last"] if on is None else on
    if not state["last"]:
        return {}
    if on is not None:
        state = _until(state, on)
    px = state.get("px")
    end = last + 1  # the window is [w0, last]
    w0 = end - window
    latest = dt.date.fromordinal(last)
    prof: dict[str, float] = {"t": float((latest.year - 1970) * 12 + latest.month - 1)}

    def bump(key: str, by: float = 1.0) -> None:
        prof[key] = prof.get(key, 0.0) + by

    # Incomes: the 24 months ending with the latest reported month; the same float
    # operations in the same order as person_profile (sorted within a month, months in
    # ascending order), so the sum is bit-identical.
    inc = rows_of(state, "inc")
    if inc:
        last_m = inc[-1][0]
        months = range(last_m - income_months + 1, last_m + 1)
        if px is not None:
            im = px["im"]
            # One item per month, the latest last_m: the window's are among the last.
            totals = im[bisect.bisect_left(im, [months[0]], max(len(im) - income_months, 0)) :]
            total = sum(map(_second, totals))  # summed in C: 24 months, on every event
        else:  # SCAN path: the month totals from the rows
            income_by_month: dict[int, list[float]] = {}
            for m, _, gross in inc[bisect.bisect_left(inc, [months[0]]) :]:
                income_by_month.setdefault(m, []).append(gross)
            totals = [sum(sorted(income_by_month[m])) for m in months if m in income_by_month]
            total = sum(totals)
        prof["inc"] = round(total / income_months, -1)
        prof["inc_mo"] = float(len(totals)) * INCOME_MONTHS / income_months

    # Statuses: rows are in "latest" order. A status whose successor starts on or before
    # w0 adds nothing (person_profile skips it: days <= 0), so start from the one in force
    # on w0; the terms added, and their order, are then those of person_profile.
    s = rows_of(state, "s")
    if s:
        if s[-1][3] in STATUSES:
            prof[f"st_{s[-1][3]}"] = 1.0
        for i in range(max(bisect.bisect_left(s, [w0 + 1]) - 1, 0), len(s)):
            since, status = s[i][0], s[i][3]
            until = s[i + 1][0] if i + 1 < len(s) else end
            days = min(until, end) - max(since, w0)
            if days > 0 and status in STATUSES:
                bump(f"ds_{status}", days / window)

    # Episodes. The d_ shares may be added in another order than person_profile's (which
    # follows the order the events came in), but the rounded value cannot differ: the
    # exact sum is D/730 for a whole number of days D, which is at least 10/146000 away
    # from every rounding midpoint k/100 + 0.005 (200*D - 730*(2k+1) is 10 times an odd
    # number), far more than the rounding error of any such sum of floats.
    ep = state.get("ep", {})
    if px is None:
        # SCAN, O(history): every episode the person ever had -- until models/person.py
        # keeps state["px"] (see note()).
        keys = list(ep)
    else:
        index = px["ep"]
        keys = [key for _, key in index[bisect.bisect_left(index, [w0]) :]]
    for key in keys:
        rec = _episode(key, ep[key])
        if rec is None:
            continue
        name, start, stop = rec
        days = min(stop if stop is not None and stop >= start else end, end) - max(start, w0)
        if days > 0:
            bump(f"d_{name}", days / window)
        if start >= w0:
            bump(f"n_{name}")

    # Window events: [w0, last]. Counts and whole days: person_profile's sums of 1.0 and
    # of float(days) are exact, so one float of the whole count is the same float.
    if px is not None:
        for service, days in px["vd"].items():
            if n := len(days) - bisect.bisect_left(days, w0):
                bump(f"v_{service}", float(n))
    else:  # SCAN path
        for service, n in Counter(map(_third, _since(rows_of(state, "v"), w0))).items():
            bump(f"v_{service}", float(n))
    if n := _count_since(rows_of(state, "mh"), w0):
        bump("v_mental_health", float(n))
    care = _since(rows_of(state, "c"), w0)
    if care:
        for service, n in Counter(map(_third, care)).items():
            bump(f"c_{service}", float(n))
        bump("cd", float(sum(map(_fourth, care))))
    if n := _count_since(rows_of(state, "cwn"), w0):
        bump("cwn", float(n))

    # Highest levels over all rows (person_profile's max over all events).
    for cat in ("edu", "sup"):
        if px is None:
            level = _max_level_scan(rows_of(state, cat), _TOP[cat])  # SCAN, O(rows)
        else:
            level = max(compress(range(len(px[cat])), px[cat]), default=0)
        if level:
            prof[cat] = float(level)

    if window != WINDOW_DAYS:  # counts in the units of the full window
        scale = WINDOW_DAYS / window
        for k in prof:
            if k.startswith(("n_", "v_", "c_")) or k in ("cd", "cwn"):
                prof[k] *= scale
    return _rounded(prof)


_second, _third, _fourth = itemgetter(1), itemgetter(2), itemgetter(3)


def _rounded(prof: dict[str, float]) -> dict[str, float]:
    """The profile by key, each value rounded to 2 decimals, zeros left out.

    A whole number is its own rounding, and nine values in ten are (counts, months,
    levels): ``round(v, 2)`` goes through a decimal string, and with full windows it was
    7 % of all the instructions of an event.

    >>> _rounded({"b": 2.0, "a": 1 / 3, "c": 0.001, "d": -0.0})
    {'a': 0.33, 'b': 2.0}
    """
    out = {}
    for k, v in sorted(prof.items()):
        v = float(v)
        if not v.is_integer():
            v = round(v, 2)
        if v:
            out[k] = v
    return out


def _until(state: dict, on: int) -> dict:
    """The rows of ``state`` that happened by day ``on`` (incomes: reported for a month
    up to ``on``'s), without the profile index: the scan path reads them."""
    day = dt.date.fromordinal(on)
    month = (day.year - 1970) * 12 + day.month - 1
    out = {k: v for k, v in state.items() if k != "px"}
    for cat in ("s", "v", "mh", "c", "cwn", "edu", "sup"):
        rows = rows_of(state, cat)
        if rows:
            out[cat] = rows[: bisect.bisect_left(rows, [on + 1])]
    inc = rows_of(state, "inc")
    if inc:
        out["inc"] = inc[: bisect.bisect_left(inc, [month + 1])]
    out["ep"] = {
        key: kept
        for key, rows in state.get("ep", {}).items()
        if (kept := rows[: bisect.bisect_left(rows, [on + 1])])
    }
    return out


def _since(rows: list[list], w0: int) -> list[list]:
    return rows[bisect.bisect_left(rows, [w0]) :]


def _count_since(rows: list[list], w0: int) -> int:
    return len(rows) - bisect.bisect_left(rows, [w0])


def _max_level_scan(rows: list[list], top: int) -> int:
    level = 0
    for r in reversed(rows):  # the latest first: usually the highest
        if r[2] > level:
            level = r[2]
            if level >= top:
                break
    return level


def _episode(key: str, rows: list[list]) -> tuple[str, int, int | None] | None:
    """``(profile name, first start day, last end day|None)`` of an episode as
    person_profile counts it, or None when it counts for nothing (not a profile stem, no
    start, no kind). Rows: ``[day, event_id, start 1|0, kind|None]``, sorted by day."""
    stem = key.split("|", 1)[0]
    if stem not in _STEMS:
        return None
    span = episode_span(rows)
    if span is None:
        return None
    name = STEM_KEY.get(stem) or min((r[3] for r in rows if r[2] and r[3]), default=None)
    if not name:
        return None
    return name, span[0], span[1]
