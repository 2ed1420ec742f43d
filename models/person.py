"""A person's accepted events in compact, order-independent form (the stage 2 state).

The person stage keeps, per person pseudonym, one small row per accepted event -- never
the event dict -- sorted by day within its category, and a few change-point lists
derived from them. Every update costs what the changed category holds (a bisect and a
list insert), not what the person's whole history holds; what the family needs is sent
as the *tail* of each list from the day an event changed (``since``): an event dated
``d`` can change nothing the picture shows for a day before ``d`` (every definition of
the picture on day ``D`` reads only events with ``occurred_at ≤ D``).

State (a JSON-able dict, updated in place: copying it would cost the whole history on
every event):

==========  ==========================================================================
key         rows, each a list, sorted
==========  ==========================================================================
``m``       membership: ``[day, recorded_at, event_id, added 1|0, family, role, birth]``
``s``       employment status: ``[day, recorded_at, event_id, status]``
``ep``      ``{"stem|episode": [[day, event_id, start 1|0, kind|None], ...]}``
``cwn``     child welfare notifications: ``[day, event_id]``
``mh``      mental health visits: ``[day, event_id]``
``v``       other health visits (profile only): ``[day, event_id, service]``
``c``       specialised care (profile only): ``[day, event_id, service, days]``
``inc``     incomes (profile only): ``[month, event_id, gross, day]`` (months since
            1970-01; ``day`` the report's)
``edu``     education (profile only): ``[day, event_id, level]``
``sup``     school support (profile only): ``[day, event_id, level]``
``last``    the latest day of any row (0 while none)
``px``      the profile index (:mod:`models.profile`, :func:`new_index`): ``ep``
            ``[[until, "stem|episode", start, name], ...]`` every episode with a start
            by its latest end day (:data:`OPEN` while open), ``until``
            ``{"stem|episode": until}``, ``edu`` and ``sup`` row counts per level
            and ``top`` the highest of each,
            ``vd`` visit days per service, ``im`` income totals per month, ``it``
            those of the profile's months summed, ``v`` its layout
            (:data:`INDEX_VERSION`)
``cp``      derived change points, ``[day, value...]``, a new item only where the value
            changes: ``mem`` ``[day, family|None, role, birth]``, ``s`` ``[day, status]``,
            ``sa`` and ``cw`` ``[day, 0|1]`` (an active basic social assistance episode;
            an active child welfare client or placement episode)
==========  ==========================================================================

Days are ordinals (:func:`day`); "latest" is the contract's order
``(occurred_at, recorded_at, event_id)``, which the sort order of ``m`` and ``s`` rows
is.

No map of event ids is kept (it was the largest part of a state, read with the state on
every event): an event's row is found where :func:`locate` says it lies, by a bisect on
its sort key; a retraction is told the location by the dedup stage, which saw the event
(:func:`models.picture.dedup_step`). A state of the older layout, with an ``ids`` map,
is converted on its next change (:func:`_migrate`).

Examples
--------
>>> st = new_state()
>>> add(st, {"event_id": "a", "type": "family.member_added", "occurred_at": "2026-01-05",
...          "recorded_at": "2026-01-05T00:00:00Z",
...          "data": {"family": "f1", "role": "child", "birth_date": "2020-01-01"}})
739621
>>> add(st, {"event_id": "b", "type": "child_welfare.notification", "occurred_at": "2026-02-01",
...          "recorded_at": "2026-02-01T00:00:00Z", "data": {}})
739648
>>> t = tail(st, "f1", 739648)
>>> t["m"], t["cwn"]
([[739621, 'child', '2020-01-01']], [739648])
>>> where = locate({"event_id": "b", "type": "child_welfare.notification",
...                 "occurred_at": "2026-02-01", "data": {}})
>>> where
['cwn', 739648, 739648]
>>> remove(st, "b", where), st["cwn"], remove(st, "b", where)
(739648, [], None)
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools

from models.types import PersonTail

__all__ = [
    "INCOME_MONTHS",
    "INDEX_VERSION",
    "OPEN",
    "STEM_KEY",
    "WINDOWS",
    "add",
    "after",
    "build_index",
    "category",
    "cents",
    "day",
    "episode_item",
    "episode_name",
    "episode_span",
    "families_from",
    "from_end",
    "holding",
    "in_force",
    "locate",
    "moves_tail",
    "new_index",
    "new_state",
    "note",
    "remove",
    "tail",
]

# How far back a date list's tail reaches: a window event dated d counts on (d, d + n].
WINDOWS = {"cwn": 30, "mh": 90}
SA_KIND = "basic_social_assistance"
CW_STEMS = frozenset({"child_welfare.client", "child_welfare.placement"})
FLAG_STEMS = CW_STEMS | {"benefit"}  # the episodes :func:`_derive` makes flags of
PROFILE_ONLY = frozenset({"v", "c", "inc", "edu", "sup"})
_EPISODE_SUFFIXES = (".started", ".ended", "_started", "_ended")
#: Education and school support levels (the feature profile's ``edu`` and ``sup``).
EDUCATION_LEVEL = {
    "basic": 1,
    "upper_secondary": 2,
    "vocational": 2,
    "bachelor": 3,
    "master": 4,
    "doctoral": 5,
}
SUPPORT_LEVEL = {"general": 1, "intensified": 2, "special": 3}
#: The feature profile's income look-back: the months ending with the latest reported.
INCOME_MONTHS = 24
#: The feature profile's name of an episode stem's ``d_``/``n_`` features; the others
#: (``benefit``, ``social_service``) are named by their kind.
STEM_KEY = {
    "ecec": "ecec",
    "child_welfare.client": "cw_client",
    "child_welfare.placement": "cw_placement",
}


@functools.lru_cache(maxsize=4096)
def day(iso: str) -> int:
    """Days since 0001-01-01 of a ``YYYY-MM-DD`` date.

    >>> day("2026-01-01") - day("2025-12-31")
    1
    """
    return dt.date.fromisoformat(iso[:10]).toordinal()


def earliest(a: int | None, b: int | None) -> int | None:
    """The earlier of two days, None standing for "no day"."""
    if a is None:
        return b
    return a if b is None else min(a, b)


def month(iso: str) -> int:
    """Months since 1970-01 of a ``YYYY-MM[-DD]`` string."""
    return (int(iso[0:4]) - 1970) * 12 + int(iso[5:7]) - 1


@functools.lru_cache(maxsize=64)
def stem(event_type: str) -> str | None:
    """``benefit.started`` → ``benefit``; ``child_welfare.client_ended`` → ``child_welfare.client``."""
    for suffix in _EPISODE_SUFFIXES:
        if event_type.endswith(suffix):
            return event_type[: -len(suffix)]
    return None


def new_state() -> dict:
    """An empty state. Categories, change points and the profile index appear when
    first needed: most persons use few of them, and every container costs memory and
    garbage-collector time (see docs/design.md, "Memory and pauses")."""
    return {"last": 0, "cp": {}}


_NONE: list = []  # what an absent category or change-point list reads as (never written)


def rows_of(state: dict, cat: str) -> list:
    """A category's rows (empty when absent; do not modify the result)."""
    return state.get(cat, _NONE)


def points(state: dict, name: str) -> list:
    """A change-point list (``mem``, ``s``, ``sa``, ``cw``; empty when absent)."""
    return state["cp"].get(name, _NONE)


_TYPE_CATEGORY = {
    "family.member_added": "m",
    "family.member_removed": "m",
    "employment.status_changed": "s",
    "child_welfare.notification": "cwn",
    "income.reported": "inc",
    "care.episode": "c",
    "education.completed": "edu",
    "school.support_changed": "sup",
}


def category(event: dict) -> str | None:
    """The category an event's row goes to (None: it has none, e.g. a residence)."""
    t = event["type"]
    cat = _TYPE_CATEGORY.get(t)
    if cat is not None:
        return cat
    d = event["data"]
    if t == "health.visit":
        return "mh" if d.get("service") == "mental_health" else "v"
    if "episode" in d and stem(t) is not None:
        return "ep"
    return None


def _row(cat: str, event: dict) -> list:
    d, eid, on = event["data"], event["event_id"], day(event["occurred_at"])
    if cat == "m":
        if event["type"] == "family.member_added":
            return [on, event["recorded_at"], eid, 1, d["family"], d["role"], d["birth_date"]]
        return [on, event["recorded_at"], eid, 0, d["family"], None, None]
    if cat == "s":
        return [on, event["recorded_at"], eid, d["status"]]
    if cat == "ep":
        start = 1 if event["type"].endswith("started") else 0
        return [on, eid, start, (d.get("benefit") or d.get("service")) if start else None]
    if cat in ("cwn", "mh"):
        return [on, eid]
    if cat == "v":
        return [on, eid, d.get("service")]
    if cat == "c":
        return [on, eid, d.get("service"), int(d.get("days") or 0)]
    if cat == "inc":
        return [month(d["month"]), eid, float(d["gross_eur"]), on]
    if cat == "edu":
        return [on, eid, EDUCATION_LEVEL.get(d.get("level", ""), 0)]
    return [on, eid, SUPPORT_LEVEL.get(d.get("level", ""), 0)]  # sup


def _episode_key(event: dict) -> str:
    return f"{stem(event['type'])}|{event['data']['episode']}"


def locate(event: dict) -> list | None:
    """``[where, day, sort key]`` of the row an event makes: ``where`` its category, or
    ``"ep:stem|episode"`` for an episode; the sort key its row's first item (the day, or
    the month of an income). None: the event makes no row.

    >>> locate({"event_id": "i", "type": "income.reported", "occurred_at": "2026-03-05",
    ...         "data": {"month": "2026-02", "gross_eur": 1.0}})
    ['inc', 739680, 673]
    """
    cat = category(event)
    if cat is None:
        return None
    on = day(event["occurred_at"])
    if cat == "ep":
        return [f"ep:{_episode_key(event)}", on, on]
    return [cat, on, month(event["data"]["month"]) if cat == "inc" else on]


def add(state: dict, event: dict, profile: bool = True) -> int | None:
    """Store one accepted event; the day from which the picture may change, or None when
    nothing changed (a duplicate, or a profile-only event while ``profile`` is off)."""
    where = locate(event)
    if where is None:
        return None
    cat = "ep" if where[0].startswith("ep:") else where[0]
    if not profile and cat in PROFILE_ONLY:
        return None
    if "ids" in state:
        _migrate(state)
    if _find(state, where, event["event_id"]) is not None:
        return None  # a duplicate: the same event again
    row = _row(cat, event)
    on = where[1]
    key = where[0][3:] if cat == "ep" else ""
    if profile and state.get("px", _STALE).get("v") != INDEX_VERSION:
        build_index(state)  # the first event with profiles on (or an older layout): the rows
    if cat == "ep":
        _insort(state.setdefault("ep", {}).setdefault(key, []), row)
    else:
        _insort(state.setdefault(cat, []), row)
    state["last"] = max(state["last"], on)
    _derive(state, cat, key)
    note(state, cat, row, key, 1)
    return on


def remove(state: dict, event_id: str, where: list | None = None) -> int | None:
    """Remove a retracted event's row, found where ``where`` (its :func:`locate`) says,
    or, without it, by a look at every row (a retraction the dedup stage kept no location
    for: an older changelog); the day from which the picture may change, or None when the
    person holds no such event."""
    if "ids" in state:
        _migrate(state)
    if where is None and (where := holding(state, event_id)) is None:
        return None
    if (i := _find(state, where, event_id)) is None:
        return None
    cat, on = where[0], where[1]
    if cat.startswith("ep:"):
        key, row = cat[3:], None
        rows = state["ep"][key]
        del rows[i]
        if not rows:
            del state["ep"][key]
        cat = "ep"
    else:
        key = ""
        row = state[cat].pop(i)
    if on == state["last"]:
        state["last"] = _latest(state)
    _derive(state, cat, key)
    note(state, cat, row, key, -1)
    return on


def moves_tail(where: str) -> bool:
    """Whether a row of ``where`` (a category, or ``"ep:stem|episode"``, as
    :func:`locate` gives it) can change what :func:`tail` sends: memberships, statuses, window events, and the
    episodes of the two flags. About three events in four (incomes, visits, care,
    education, other benefits and services) change only the feature profile.

    >>> moves_tail("s"), moves_tail("inc"), moves_tail("ep:benefit|e1"), moves_tail("ep:family_work|e2")
    (True, False, True, False)
    """
    if where.startswith("ep:"):
        return where[3:].split("|", 1)[0] in FLAG_STEMS
    return where not in PROFILE_ONLY


_ID = {"m": 2, "s": 2, "cwn": 1, "mh": 1, "v": 1, "c": 1, "inc": 1, "edu": 1, "sup": 1}
_DAY_CATEGORIES = ("m", "s", "cwn", "mh", "v", "c", "edu", "sup")  # sorted by day


def holding(state: dict, event_id: str, where: list | None = None) -> list | None:
    """The location of the event's row if the person holds it (None: it does not);
    ``where`` its :func:`locate`, or None to look at every row."""
    if where is not None:
        return where if _find(state, where, event_id) is not None else None
    for cat in _ID:
        for r in rows_of(state, cat):
            if r[_ID[cat]] == event_id:
                return [cat, r[3] if cat == "inc" else r[0], r[0]]
    for key, rows in state.get("ep", {}).items():
        for r in rows:
            if r[1] == event_id:
                return [f"ep:{key}", r[0], r[0]]
    return None


def _find(state: dict, where: list, event_id: str) -> int | None:
    """Index of the event's row in its list, or None: a bisect to its sort key, then the
    rows of that key (an episode's rows are few: all of them)."""
    cat = where[0]
    if cat.startswith("ep:"):
        rows = state.get("ep", {}).get(cat[3:], _NONE)
        return next((i for i, r in enumerate(rows) if r[1] == event_id), None)
    rows = rows_of(state, cat)
    at, k = where[2], _ID[cat]
    i = from_end(rows, [at])
    while i < len(rows) and rows[i][0] == at:
        if rows[i][k] == event_id:
            return i
        i += 1
    return None


def _latest(state: dict) -> int:
    # Only when the latest row itself is retracted: rare enough to look at every income
    # and episode (the other categories are sorted by day).
    days = [rows[-1][0] for cat in _DAY_CATEGORIES if (rows := rows_of(state, cat))]
    days += [r[3] for r in rows_of(state, "inc")]
    days += [rows[-1][0] for rows in state.get("ep", {}).values()]
    return max(days, default=0)


def _migrate(state: dict) -> None:
    """A state of the older layout (an ``ids`` map, incomes without their day) in the
    current one, in place: O(history), once."""
    ids = state.pop("ids")
    for r in rows_of(state, "inc"):
        if len(r) == 3:
            r.append(ids[r[1]][1])


def _derive(state: dict, cat: str, key: str = "") -> None:
    """Recompute the change points a changed row can move."""
    cp = state["cp"]
    if cat == "m":
        cp["mem"] = _membership(state["m"])
    elif cat == "s":
        cp["s"] = _compress([[r[0], r[3]] for r in state["s"]])
    elif cat == "ep":
        stem_ = key.split("|", 1)[0]
        if stem_ == "benefit":
            cp["sa"] = _flags(state["ep"], "benefit", SA_KIND)
        elif stem_ in CW_STEMS:
            cp["cw"] = _flags(state["ep"], CW_STEMS)


# The profile index (models.profile reads it: the episodes that overlap a window or are
# open, by a bisect; the highest edu/sup level without a scan).

#: ``until`` of an open episode: after every day (``date.max`` is day 3 652 059).
OPEN = 10_000_000
#: The layout of ``state["px"]`` (its ``"v"``): an index of another layout (a state kept
#: by an older version) is rebuilt from the rows on the next event, and read as absent.
INDEX_VERSION = 3
_STALE: dict = {}
_LEVELS = {"edu": max(EDUCATION_LEVEL.values()) + 1, "sup": max(SUPPORT_LEVEL.values()) + 1}


def new_index() -> dict:
    """An empty profile index (``state["px"]``): ``ep`` the episodes by their latest end
    day, each ``[until, "stem|episode", first start day, profile name|None]``, and
    ``until`` where each sits in ``ep``; ``edu`` and ``sup`` row counts per level and
    ``top`` the highest level of each with a row (0: none), ``vd`` the days of the other
    health visits per service (sorted), ``im`` each reported month's income
    (``[month, cents, reports]``, by month; :func:`cents`) and ``it`` the ``[cents,
    months]`` of the :data:`INCOME_MONTHS` ending with the latest, so that a profile
    counts its window with bisects, whatever the window holds."""
    return {
        "v": INDEX_VERSION,
        "ep": [],
        "until": {},
        "edu": [0] * _LEVELS["edu"],
        "sup": [0] * _LEVELS["sup"],
        "top": {"edu": 0, "sup": 0},
        "vd": {},
        "im": [],
        "it": [0, 0],
    }


def build_index(state: dict) -> dict:
    """Make ``state["px"]`` from the rows (once, for a state made without it): O(history)."""
    px = state["px"] = new_index()
    for key, rows in state.get("ep", {}).items():
        _reindex(px, key, rows)
    for cat in ("edu", "sup"):
        for r in rows_of(state, cat):
            px[cat][r[2]] += 1
        _top(px, cat)
    for r in rows_of(state, "v"):
        bisect.insort(px["vd"].setdefault(r[2], []), r[0])
    for r in rows_of(state, "inc"):
        _income(px, r[0], cents(r[2]), 1)
    return px


def note(state: dict, cat: str, row: list | None, key: str = "", sign: int = 1) -> None:
    """Keep ``state["px"]`` after a row change: :func:`add` calls it with the added
    ``row`` and ``sign=1``, :func:`remove` with the removed row (None for an episode) and
    ``sign=-1``; ``key`` is the ``"stem|episode"`` of an episode row. Cost: the changed
    episode's rows and a bisect. No-op without an index (a state made before it) or with
    one of an older layout (rebuilt by the next :func:`add`)."""
    px = state.get("px")
    if px is None or px.get("v") != INDEX_VERSION:
        return
    if cat == "ep":
        _reindex(px, key, state["ep"].get(key))
    elif cat in _LEVELS:
        assert row is not None
        px[cat][row[2]] += sign
        _top(px, cat)
    elif cat == "v":
        assert row is not None
        days = px["vd"].setdefault(row[2], [])
        if sign > 0:
            _insort(days, row[0])
        else:
            del days[bisect.bisect_left(days, row[0])]
            if not days:
                del px["vd"][row[2]]
    elif cat == "inc":
        assert row is not None
        _income(px, row[0], cents(row[2]), sign)


def _top(px: dict, cat: str) -> None:
    counts = px[cat]
    level = len(counts) - 1
    while level and not counts[level]:
        level -= 1
    px["top"][cat] = level


def cents(gross: float) -> int:
    """An income in whole cents: the profile sums incomes exactly, so that a sum kept
    as reports come and go is the sum of the reports, in any order.

    >>> cents(3012.005), cents(0.1) + cents(0.2) == cents(0.3)
    (301200, True)
    """
    return round(gross * 100)


def _income(px: dict, month: int, amount: int, sign: int) -> None:
    """Keep ``px["im"]`` and ``px["it"]`` after an income report of ``amount`` cents for
    ``month`` came (``sign`` 1) or went (-1).

    The window's months are the last ``it[1]`` items of ``im`` (one item a month, the
    window ends with the latest), so a report in the window changes the total by its
    amount, and a new latest month moves the window on by subtracting the months that
    leave it: one or two items read, not the 24 (each of them, in a heap grown with the
    years, a cache miss). Only the latest month's last report going moves the window
    back: then the window is summed again."""
    im, it = px["im"], px["it"]
    n = len(im)
    i = _month_index(im, month)
    first = im[-1][0] - INCOME_MONTHS + 1 if n else month
    if i < n and im[i][0] == month:  # a month with reports
        item = im[i]
        item[1] += sign * amount
        item[2] += sign
        if item[2]:
            if month >= first:
                it[0] += sign * amount
            return
        del im[i]
        if i == n - 1:  # the latest month went: the window moves back
            px["it"] = _window_income(im)
        elif month >= first:
            it[0] -= amount
            it[1] -= 1
        return
    if sign < 0:
        return  # a report of a month without any: nothing was counted
    im.insert(i, [month, amount, 1])
    if i < n:  # a month before the latest
        if month >= first:
            it[0] += amount
            it[1] += 1
        return
    # A new latest month: the months before the new first leave the window.
    start = month - INCOME_MONTHS + 1
    j = n - it[1]
    while j < n and im[j][0] < start:
        it[0] -= im[j][1]
        it[1] -= 1
        j += 1
    it[0] += amount
    it[1] += 1


def _window_income(im: list[list]) -> list[int]:
    """``[cents, months]`` of the :data:`INCOME_MONTHS` ending with the latest month."""
    if not im:
        return [0, 0]
    first = im[-1][0] - INCOME_MONTHS + 1
    j = _month_index(im, first)
    return [sum(item[1] for item in im[j:]), len(im) - j]


# Rows mostly arrive in order, so a new one goes at or next to the end. A bisect finds
# the place in log(n) probes, but each probe is a chain of cache misses (the row, its
# items, its day) once a person's rows lie spread over a heap that grows with the
# history: over six years, bisect probes took three times as long per event in the last
# eighth of the stream as in the second. These look at the end first.


def _insort(rows: list, row) -> None:
    """``bisect.insort(rows, row)``: appended when it sorts last (equal ones: after)."""
    if not rows or rows[-1] <= row:
        rows.append(row)
    else:
        bisect.insort(rows, row)


def _month_index(totals: list[list], month: int) -> int:
    """``bisect_left(totals, [month])`` of ``[month, total]`` items, one per month."""
    n = len(totals)
    if not n or totals[-1][0] < month:
        return n
    if totals[-1][0] == month:
        return n - 1
    return bisect.bisect_left(totals, [month])


def episode_span(rows: list[list]) -> tuple[int, int | None] | None:
    """(first start day, last end day|None) of an episode's day-sorted rows; None if it
    has no start."""
    start: int | None = None
    stop: int | None = None
    for on, _, is_start, _ in rows:
        if not is_start:
            stop = on  # the last end is the latest
        elif start is None:
            start = on  # the first start is the earliest
    return None if start is None else (start, stop)


def _reindex(px: dict, key: str, rows: list[list] | None) -> None:
    old = px["until"].pop(key, None)
    if old is not None:
        index = px["ep"]
        del index[bisect.bisect_left(index, [old, key])]
    if rows and (item := episode_item(key, rows)) is not None:
        px["until"][key] = item[0]
        bisect.insort(px["ep"], item)


def episode_item(key: str, rows: list[list]) -> list | None:
    """An episode as the profile index holds it, ``[until, key, first start day, profile
    name]`` (``until``: its last end day, :data:`OPEN` while it has none or its last end
    is before its first start), or None while it has no start."""
    span = episode_span(rows)
    if span is None:
        return None
    start, stop = span
    until = stop if stop is not None and stop >= start else OPEN
    return [until, key, start, episode_name(key, rows)]


def episode_name(key: str, rows: list[list]) -> str | None:
    """The feature profile's name of an episode (None: it counts for nothing): its stem's
    :data:`STEM_KEY`, else the least kind of its starts (deterministic on conflicts)."""
    return STEM_KEY.get(key.split("|", 1)[0]) or min(
        (r[3] for r in rows if r[2] and r[3]), default=None
    )


def _compress(points: list[list]) -> list[list]:
    """One item per day (the last of the day: rows are in "latest" order), and one only
    where the value changes."""
    out: list[list] = []
    for p in points:
        if out and out[-1][0] == p[0]:
            out.pop()
        if not out or out[-1][1:] != p[1:]:
            out.append(p)
    return out


def _membership(rows: list[list]) -> list[list]:
    """``[day, family|None, role, birth]`` change points: on day ``D`` the latest
    ``member_added`` up to ``D`` wins, unless a ``member_removed`` of that family up to
    ``D`` is later still (rows are few: a person joins a family or two in a lifetime)."""
    points = []
    for i, r in enumerate(rows):
        if i + 1 < len(rows) and rows[i + 1][0] == r[0]:
            continue  # the day's last row decides the day
        upto = rows[: i + 1]
        added = next((a for a in reversed(upto) if a[3] == 1), None)
        value = [None, None, None]
        if added is not None:
            fam = added[4]
            removed = any(x[3] == 0 and x[4] == fam and x[:3] > added[:3] for x in upto)
            if not removed:
                value = [fam, added[5], added[6]]
        points.append([r[0], *value])
    return _compress(points)


def _flags(episodes: dict, stems, kind: str | None = None) -> list[list]:
    """``[day, 0|1]`` change points of "an episode of ``stems`` (of ``kind``) is active":
    active on ``D`` when a start (of the kind) is known by ``D`` and no end is."""
    stems = {stems} if isinstance(stems, str) else stems
    edges: list[tuple[int, int]] = []
    for key, rows in episodes.items():
        if key.split("|", 1)[0] not in stems:
            continue
        starts = [r[0] for r in rows if r[2] == 1 and (kind is None or r[3] == kind)]
        ends = [r[0] for r in rows if r[2] == 0]
        if not starts:
            continue
        begin, end = min(starts), min(ends, default=None)
        if end is not None and end <= begin:
            continue
        edges.append((begin, 1))
        if end is not None:
            edges.append((end, -1))
    edges.sort()
    points, active = [], 0
    for on, step in edges:
        active += step
        points.append([on, int(active > 0)])
    return _compress(points)


def in_force(points: list[list], on: int) -> int:
    """Index of the change point in force on day ``on`` (-1: none yet).

    >>> pts = [[5, "a"], [9, "b"]]
    >>> in_force(pts, 4), in_force(pts, 5), in_force(pts, 8), in_force(pts, 30)
    (-1, 0, 0, 1)
    """
    return after(points, on) - 1


def from_end(rows: list, x) -> int:
    """``bisect_left(rows, x)``, searched from the end: for a window's start, whose rows
    are the last few. The probes stay among the recent rows (in a grown heap, each probe
    into the old ones is a cache miss): steps of 8, 32, 128 ... back, then a bisect
    between the last two.

    >>> rows = list(range(0, 1000, 2))
    >>> all(from_end(rows, x) == bisect.bisect_left(rows, x) for x in range(-3, 1003))
    True
    >>> from_end([], 5), from_end([[3, "a"], [7, "b"]], [7])
    (0, 1)
    """
    hi = len(rows)
    step = 8
    while hi:
        lo = hi - step
        if lo <= 0:
            return bisect.bisect_left(rows, x, 0, hi)
        if rows[lo] < x:
            return bisect.bisect_left(rows, x, lo + 1, hi)
        hi, step = lo, step * 4
    return 0


def after(points: list[list], on: int) -> int:
    """``bisect_right`` of ``on`` in day-sorted ``points`` (by their first item): the
    index of the first one after day ``on``.

    Most questions are about the present, on or after the last point: answered from the
    end, without a probe into the older points (each a cache miss in a grown heap, and a
    call of the key function).

    >>> after([[5, "a"], [9, "b"]], 9), after([[5, "a"], [9, "b"]], 8), after([], 3)
    (2, 1, 0)
    """
    n = len(points)
    if not n or points[-1][0] <= on:
        return n
    return bisect.bisect_right(points, on, key=_first)


def _first(point: list) -> int:
    return point[0]


def families_from(state: dict, since: int) -> set[str]:
    """Families the person belongs to on some day from ``since`` on."""
    mem = points(state, "mem")
    i = max(in_force(mem, since), 0)
    return {p[1] for p in mem[i:] if p[1] is not None}


def _tail(points: list[list], since: int) -> list[list]:
    return points[max(in_force(points, since), 0) :]


def tail(state: dict, family: str, since: int) -> PersonTail:
    """What the family needs of this person from day ``since`` on: each change-point list
    from the point in force on ``since``, each window-event date list from the earliest
    date that still counts on ``since`` (see :func:`merge`)."""
    member = _compress(
        [[p[0], *(p[2:] if p[1] == family else (None, None))] for p in points(state, "mem")]
    )
    return {
        "m": _tail(member, since),
        "s": _tail(points(state, "s"), since),
        "sa": _tail(points(state, "sa"), since),
        "cw": _tail(points(state, "cw"), since),
        "cwn": _dates_from(state, "cwn", since),
        "mh": _dates_from(state, "mh", since),
    }


def _dates_from(state: dict, name: str, since: int) -> list[int]:
    """The days of a window category that still count on ``since`` or later."""
    rows = rows_of(state, name)
    return [r[0] for r in rows[from_end(rows, [since - WINDOWS[name] + 1]) :]]


def merge(copy: dict, tail_: dict, since: int) -> int | None:
    """Lay a :func:`tail` from ``since`` over a family's copy of a member, in place; the
    earliest day on which a point or a date differs (None: nothing changed).

    Points before the tail's first (which is the one in force on ``since``) and dates
    that no longer count on ``since`` cannot have changed, so they are kept: the cost is
    the tail's, not the copy's. Emptied lists are left out (every container costs, see
    :func:`new_state`). The day can be before ``since``: a tail laid over a copy that
    lacks what came before it (the family took a later message first) brings the points
    in force on ``since``, which began earlier.

    >>> copy = {"m": [[1, "child", "2020-01-01"]], "s": [[1, "employed"], [5, "unemployed"]],
    ...         "cwn": [2, 40]}
    >>> merge(copy, {"m": [[1, "child", "2020-01-01"]], "s": [[1, "employed"]],
    ...              "sa": [], "cw": [], "cwn": [40, 41], "mh": []}, 41)
    5
    >>> copy["s"], copy["cwn"], "sa" in copy
    ([[1, 'employed']], [2, 40, 41], False)
    >>> merge({}, {"m": [[3, "parent", "1990-01-01"]], "s": [[9, "employed"]]}, 9)
    3
    """
    first: int | None = None
    for name, new in tail_.items():
        old = copy.get(name)
        if old is None:
            if new:
                copy[name] = list(new)
                first = earliest(first, _day_of(new[0]))
            continue
        if name in WINDOWS:
            i = bisect.bisect_left(old, since - WINDOWS[name] + 1)
        else:
            i = bisect.bisect_left(old, min(new[0][0], since) if new else since, key=_first)
        if old[i:] != new:
            first = earliest(first, _first_difference(old, i, new))
            del old[i:]
            old.extend(new)
        if not old:
            del copy[name]
    return first


def _day_of(item: int | list) -> int:
    """The day of a window date or of a change point."""
    return item if isinstance(item, int) else item[0]


def _first_difference(old: list, i: int, new: list) -> int:
    """The day of the first item where ``old[i:]`` and ``new`` differ (they do)."""
    k = 0
    while i + k < len(old) and k < len(new) and old[i + k] == new[k]:
        k += 1
    days = [_day_of(x[k]) for x in (old[i:], new) if k < len(x)]
    return min(days)
