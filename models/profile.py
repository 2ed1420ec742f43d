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
``ep``     ``[[until, "stem|episode", start, name], ...]`` sorted: every episode
           with a start, ``until`` its latest end day, or :data:`OPEN` while it has
           no end (or its latest end is before its first start: person_profile
           counts it open), ``start`` its first start day, ``name`` its profile
           name (:func:`~models.person.episode_name`; None: it counts for nothing)
``until``  ``{"stem|episode": until}``: where each episode sits in ``ep``
``edu``    row count per education level (index = level)
``sup``    row count per school support level (index = level)
``vd``     the days of the other health visits, per service
``im``     ``[[month, cents, reports], ...]``: each reported month's income, in
           whole cents (:func:`~models.person.cents`), and its reports
``it``     ``[cents, months]`` of the 24 months ending with the latest reported
``v``      the layout (:data:`~models.person.INDEX_VERSION`): an index of another
           layout is read as absent
=========  ===================================================================

An episode counts on window ``[w0, last]`` only if ``until >= w0`` (``d_``: it ends
after ``w0`` or is open; ``n_``: it starts on or after ``w0``, so ends there too), so
the episodes read are ``px["ep"][bisect_left(px["ep"], [w0]):]``: those overlapping
the window and the open ones, each with what its days and starts need (no rows read).
A state without ``"px"`` (kept with the profile off, or by an older layout until its
next event) is read by scanning every episode and every ``edu``/``sup`` row: correct,
but O(history) there.

The index is kept by :mod:`models.person` (:func:`note`), which cannot import this
module (``profile -> features -> family -> person`` would be an import cycle).

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
>>> dict(sorted(state_profile(st).items()))  # the keys in the order made: sorted to show
{'d_housing_allowance': 0.5, 'ds_employed': 0.5, 'inc': 130.0, 'inc_mo': 1.0, 'n_housing_allowance': 1.0, 'st_employed': 1.0, 't': 674.0}
>>> state_profile(st) == person_profile(evs)
True

With the index (what :func:`models.person.add` would keep through :func:`note`):

>>> _ = build_index(st)
>>> st["px"]["ep"], st["px"]["until"], st["px"]["edu"]
([[10000000, 'benefit|e1', 739316, 'housing_allowance']], {'benefit|e1': 10000000}, [0, 0, 0, 0, 0, 0])
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
from operator import itemgetter

from models.features import (
    EPISODE_TYPES,
    STATUSES,
    WINDOW_DAYS,
)
from models.person import (
    EDUCATION_LEVEL,
    INCOME_MONTHS,
    INDEX_VERSION,
    OPEN,
    SUPPORT_LEVEL,
    build_index,
    cents,
    episode_item,
    episode_span,
    from_end,
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
    if px is not None and px.get("v") != INDEX_VERSION:
        px = None  # an older layout, rebuilt on the next event: read the rows meanwhile
    end = last + 1  # the window is [w0, last]
    w0 = end - window
    latest = dt.date.fromordinal(last)
    prof: dict[str, float] = {"t": float((latest.year - 1970) * 12 + latest.month - 1)}
    get = prof.get  # on every event: keys added with += go through prof.get, inline

    # Incomes: the 24 months ending with the latest reported month, in whole cents (as
    # person_profile sums them: exact, so the sum kept by models.person is the same).
    inc = state.get("inc")
    if inc:
        if px is not None and income_months == INCOME_MONTHS:
            total, n = px["it"]  # kept by models.person with every income row
        else:
            first_m = inc[-1][0] - income_months + 1
            if px is not None:
                im = px["im"]
                recent = im[bisect.bisect_left(im, [first_m]) :]
                total, n = sum(item[1] for item in recent), len(recent)
            else:  # SCAN path: from the rows
                rows = inc[bisect.bisect_left(inc, [first_m]) :]
                total, n = sum(cents(r[2]) for r in rows), len({r[0] for r in rows})
        prof["inc"] = round(total / (100 * income_months), -1)
        prof["inc_mo"] = float(n) * INCOME_MONTHS / income_months

    # Statuses: rows are in "latest" order. A status whose successor starts on or before
    # w0 adds nothing (person_profile skips it: days <= 0), so start from the one in force
    # on w0; the terms added, and their order, are then those of person_profile.
    s = state.get("s")
    if s:
        if s[-1][3] in STATUSES:
            prof["st_" + s[-1][3]] = 1.0
        n = len(s)
        for i in range(max(from_end(s, [w0 + 1]) - 1, 0), n):
            since, status = s[i][0], s[i][3]
            until = s[i + 1][0] if i + 1 < n else end
            days = (until if until < end else end) - (since if since > w0 else w0)
            if days > 0 and status in STATUSES:
                k = "ds_" + status
                prof[k] = get(k, 0.0) + days / window

    # Episodes. The d_ shares may be added in another order than person_profile's (which
    # follows the order the events came in), but the rounded value cannot differ: the
    # exact sum is D/730 for a whole number of days D, which is at least 10/146000 away
    # from every rounding midpoint k/100 + 0.005 (200*D - 730*(2k+1) is 10 times an odd
    # number), far more than the rounding error of any such sum of floats.
    # Each as [until, key, start, name] (until: the end day, OPEN while open).
    if px is None:  # SCAN, O(history): every episode the person ever had
        items = [_episode(key, rows) for key, rows in state.get("ep", {}).items()]
    else:  # those that end on or after w0, or are open
        index = px["ep"]
        items = index[from_end(index, [w0]) :]
    for item in items:
        if item is None or item[3] is None:
            continue
        until, _, start, name = item
        days = (until if until < end else end) - (start if start > w0 else w0)
        if days > 0:
            k = "d_" + name
            prof[k] = get(k, 0.0) + days / window
        if start >= w0:
            k = "n_" + name
            prof[k] = get(k, 0.0) + 1.0

    # Window events: [w0, last]. Counts and whole days: person_profile's sums of 1.0 and
    # of float(days) are exact, so one float of the whole count is the same float. Each
    # key comes from one category (mental health visits are "mh" rows, never "v").
    if px is not None:
        for service, days in px["vd"].items():
            if days[-1] >= w0:
                prof[f"v_{service}"] = float(len(days) - from_end(days, w0))
    else:  # SCAN path
        for service, n in Counter(map(_third, _since(rows_of(state, "v"), w0))).items():
            prof[f"v_{service}"] = float(n)
    if n := _count_since(state.get("mh"), w0):
        prof["v_mental_health"] = float(n)
    care = state.get("c")
    if care and care[-1][0] >= w0:
        total = 0
        for row in care[from_end(care, [w0]) :]:
            k = f"c_{row[2]}"
            prof[k] = get(k, 0.0) + 1.0
            total += row[3]
        prof["cd"] = float(total)
    if n := _count_since(state.get("cwn"), w0):
        prof["cwn"] = float(n)

    # Highest levels over all rows (person_profile's max over all events).
    for cat in ("edu", "sup"):
        if px is None:
            level = _max_level_scan(rows_of(state, cat), _TOP[cat])  # SCAN, O(rows)
        else:
            level = px["top"][cat]
        if level:
            prof[cat] = float(level)

    if window != WINDOW_DAYS:  # counts in the units of the full window
        scale = WINDOW_DAYS / window
        for k in prof:
            if k.startswith(("n_", "v_", "c_")) or k in ("cd", "cwn"):
                prof[k] *= scale
    return _rounded(prof)


_third = itemgetter(2)


def _rounded(prof: dict[str, float]) -> dict[str, float]:
    """The profile, each value rounded to 2 decimals, zeros left out.

    A whole number is its own rounding, and nine values in ten are (counts, months,
    levels): ``round(v, 2)`` goes through a decimal string, and with full windows it was
    7 % of all the instructions of an event. The keys keep the order they were made in
    (person_profile's are sorted): a profile is read by key, and sorting them was a
    tenth of this function's cost.

    >>> _rounded({"b": 2.0, "a": 1 / 3, "c": 0.001, "d": -0.0})  # values: floats
    {'b': 2.0, 'a': 0.33}
    """
    out = {}
    for k, v in prof.items():
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


def _count_since(rows: list[list] | None, w0: int) -> int:
    """How many rows fall on ``w0`` or later (none: the latest is before it)."""
    if not rows or rows[-1][0] < w0:
        return 0
    return len(rows) - from_end(rows, [w0])


def _max_level_scan(rows: list[list], top: int) -> int:
    level = 0
    for r in reversed(rows):  # the latest first: usually the highest
        if r[2] > level:
            level = r[2]
            if level >= top:
                break
    return level


def _episode(key: str, rows: list[list]) -> list | None:
    """:func:`~models.person.episode_item` of an episode (as the index holds it), or None
    when it counts for nothing (not a profile stem, no start)."""
    if key.split("|", 1)[0] not in _STEMS:
        return None
    return episode_item(key, rows)
