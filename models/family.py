"""A family's state and what it adds to the picture on any day (the stage 3 state).

The family stage keeps, per family pseudonym, its residence rows and, per member, the
change-point lists and window-event dates of :mod:`models.person` (merged from the
tails the person stage sends). From them, :func:`value` is the family's contribution
on any day ``D`` -- the definitions of register-events.md with ``W = D`` -- and
:func:`segments` the same as a piecewise-constant function from a day on: the history
is the sum of these functions over families (:mod:`models.history`), the present its
value on ``W``.

State (a JSON-able dict, updated in place):

* ``res``: residence rows ``[day, recorded_at, event_id, postcode, municipality]``,
  sorted (so in "latest" order);
* ``mem``: ``{person: {"m", "s", "sa", "cw", "cwn", "mh", "last", "profile"}}``: the
  member's membership of *this* family ``[day, role|None, birth|None]``, status, flags
  and dates (see :func:`models.person.tail`), its latest event day and, with family
  types on, its feature profile.

A value is ``None`` (not counted that day) or the list ``[area, municipality, c_1 …
c_8]`` with the counts of :data:`models.contract.INDICATORS` in order.

Examples
--------
>>> from models.person import day
>>> st = new_state()
>>> apply(st, {"kind": "residence", "event": {"event_id": "r", "occurred_at": "2026-01-01",
...            "recorded_at": "2026-01-01T00:00:00Z", "data": {"postcode": "33100", "municipality": "837"}}})
739617
>>> apply(st, {"kind": "member", "person": "p", "since": day("2026-01-05"), "last": day("2026-01-05"),
...            "tail": {"m": [[day("2026-01-05"), "child", "2020-01-01"]], "s": [], "sa": [], "cw": [],
...                     "cwn": [], "mh": []}})
739621
>>> value(st, day("2026-01-04")), value(st, day("2026-01-05"))
(None, ['33100', '837', 1, 1, 0, 0, 0, 0, 0, 0])
>>> [(dt.date.fromordinal(s).isoformat(), v and v[3]) for s, v in segments(st, day("2026-01-01"))]
[('2026-01-01', None), ('2026-01-05', 1), ('2038-01-01', None)]
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools

from models.contract import COVERED_MUNICIPALITIES, INDICATORS
from models.person import WINDOWS, after, day, in_force, merge

_NONE: list = []  # an absent list (see models.person.merge)

__all__ = [
    "apply",
    "detached",
    "due",
    "members_now",
    "members_on",
    "new_state",
    "present",
    "residence_events",
    "segments",
    "until18",
    "value",
]

COVERED = frozenset(COVERED_MUNICIPALITIES)
N = len(INDICATORS)
_LISTS = ("m", "s", "sa", "cw")


def new_state() -> dict:
    return {"res": [], "mem": {}}


@functools.lru_cache(maxsize=65536)
def until18(birth_date: str) -> int:
    """The 18th birthday as a day number; born 29 Feb → 28 Feb in a common year.

    >>> dt.date.fromordinal(until18("2008-02-29")).isoformat()
    '2026-02-28'
    """
    born = dt.date.fromisoformat(birth_date)
    try:
        return born.replace(year=born.year + 18).toordinal()
    except ValueError:
        return dt.date(born.year + 18, 2, 28).toordinal()


def detached(state: dict, msg: dict) -> dict:
    """A copy of ``state`` that :func:`apply` of ``msg``, and the impact outcome's
    ``merge``, ``invalidate`` and ``settle`` (:mod:`models.family_outcome`: a member's
    ``"o"``, the family's ``"ir"``), can update in place while ``state`` stays as it was:
    every container they may change is new, the rows in them (never changed in place)
    are shared. The worker stores a batch's states only once Redis has them, and the next
    batch steps from those states meanwhile: changed through shared containers, a state
    was stored with the next batch's rows and its own memo of the present (``pv``), and
    a crash before the next store left that memo stale for good (the replay finds its
    rows already there: nothing changed, nothing to drop).

    >>> st = {"res": [[5, "", "r", "33100", "837"]], "mem": {"p": {"m": [[5, "child", "2020-01-01"]]}}}
    >>> new = detached(st, {"kind": "member", "person": "p", "tail": {"m": []}})
    >>> new["mem"]["p"]["m"].append([9, None, None]); new["mem"]["q"] = {}
    >>> st == {"res": [[5, "", "r", "33100", "837"]], "mem": {"p": {"m": [[5, "child", "2020-01-01"]]}}}
    True
    """
    new = {**state}
    if msg["kind"] != "member":  # a residence row in or out
        new["res"] = list(state["res"])
    else:
        mem = new["mem"] = {**state["mem"]}
        if (entry := mem.get(msg["person"])) is not None:
            entry = mem[msg["person"]] = {**entry}
            for name in msg.get("tail") or ():  # the lists models.person.merge lays it over
                if name in entry:
                    entry[name] = list(entry[name])
            if "o" in msg and (o := entry.get("o")) is not None:
                o = entry["o"] = {**o}
                if "ep" in o:
                    o["ep"] = {**o["ep"]}
    if (ir := state.get("ir")) is not None:
        new["ir"] = [ir[0], list(ir[1])]
    return new


def apply(state: dict, msg: dict) -> int | None:
    """Apply one message to the state; the day from which the family's function may
    have changed, or None when nothing did (then :func:`present`'s memo still holds).

    Messages: ``{"kind": "member", "person", "since", "tail", "last"[, "profile"]}`` from
    the person stage (``tail`` None: the person's lists did not change); ``{"kind":
    "residence", "event"}`` and ``{"kind": "residence_retract", "event_id"}`` from the
    dedup stage.
    A member's profile or latest day changing alone returns None: only the service-need
    group can follow it, and that is the writer's (it knows the model).
    """
    since = _apply(state, msg)
    if since is not None:
        state.pop("pv", None)
    return since


def _apply(state: dict, msg: dict) -> int | None:
    kind = msg["kind"]
    if kind == "member":
        return _member(state, msg)
    res = state["res"]
    if kind == "residence":
        ev = msg["event"]
        if any(r[2] == ev["event_id"] for r in res):
            return None
        on, d = day(ev["occurred_at"]), ev["data"]
        row = [on, ev["recorded_at"], ev["event_id"], d["postcode"], d["municipality"]]
        bisect.insort(res, row)
        return on
    if kind == "residence_retract":
        for i, r in enumerate(res):
            if r[2] == msg["event_id"]:
                del res[i]
                return r[0]
        return None
    raise ValueError(f"unknown family message kind {kind!r}")


def _member(state: dict, msg: dict) -> int | None:
    person, since, tail = msg["person"], msg["since"], msg.get("tail")
    known = person in state["mem"]
    changed: int | None = None  # the earliest day the merge changed
    if tail is None:  # the person's lists did not change: only its profile or latest day
        if not known:
            return None
        entry = state["mem"][person]
    else:
        entry = state["mem"].setdefault(person, {})
        # From the day the copy first differs, if that is earlier: a message taken
        # before the one it follows (replays, faust#596) brings older points too.
        changed = merge(entry, tail, since)
        if changed is not None:
            changed = min(changed, since)
        elif not known:
            changed = since
    if not any(p[1] is not None for p in entry.get("m", _NONE)):
        # Never a member of this family (any more): nothing of the person is needed.
        del state["mem"][person]
        return (since if changed is None else changed) if known else None
    entry["last"] = msg.get("last", 0)
    if "profile" in msg:
        entry["profile"] = msg["profile"]
    return changed


def value(state: dict, on: int) -> list | None:
    """The family's contribution on day ``on``: ``[area, municipality, *counts]`` or None."""
    res = state["res"]
    i = after(res, on) - 1
    if i < 0:
        return None
    area, muni = res[i][3], res[i][4]
    if muni not in COVERED:
        return None
    children = parents = cwn = mh = 0
    sa = cw = unemployed = False
    for m in state["mem"].values():
        points = m["m"]
        j = in_force(points, on)
        if j < 0 or points[j][1] is None:
            continue
        role = points[j][1]
        if role == "child":
            children += until18(points[j][2]) > on
        else:
            parents += 1
            if not unemployed and (status := m.get("s")):
                k = in_force(status, on)
                unemployed = k >= 0 and status[k][1] == "unemployed"
        if not sa and (flags := m.get("sa")) and (k := in_force(flags, on)) >= 0:
            sa = flags[k][1] == 1
        if not cw and (flags := m.get("cw")) and (k := in_force(flags, on)) >= 0:
            cw = flags[k][1] == 1
        if dates := m.get("cwn"):
            cwn += _in_window(dates, on, WINDOWS["cwn"])
        if dates := m.get("mh"):
            mh += _in_window(dates, on, WINDOWS["mh"])
    if children == 0:
        return None
    return [area, muni, 1, children, int(parents == 1), int(sa), int(unemployed), int(cw), cwn, mh]


def present(state: dict, on: int) -> tuple[list | None, int | None]:
    """``(value, due)`` on day ``on`` (the present, ``W``), kept in the state as
    ``pv = [day, due, value]``.

    A value holds from its day until its due day (that is what :func:`due` means), so
    while no message changes the family (:func:`apply` drops the memo) and ``W`` stays
    before the due day, both are read instead of made again: three events in four change
    a member's profile only, and making them walks every member's lists. A derived
    field, like the person's profile index: any state without it is read the long way.

    >>> st = {"res": [[5, "", "r", "33100", "837"]], "mem": {"p": {"m": [[5, "child", "2020-01-01"]]}}}
    >>> present(st, 9)[1] == until18("2020-01-01"), st["pv"][0]
    (True, 9)
    >>> present(st, 12) == (st["pv"][2], st["pv"][1]), st["pv"][0]  # read, not made
    (True, 9)
    """
    pv = state.get("pv")
    if pv is not None and pv[0] <= on and (pv[1] is None or on < pv[1]):
        return pv[2], pv[1]
    v, d = value(state, on), due(state, on)
    state["pv"] = [on, d, v]
    return v, d


def _in_window(dates: list[int], on: int, days: int) -> int:
    """How many ``dates`` fall on ``(on - days, on]`` (the present: none after ``on``)."""
    hi = len(dates) if dates[-1] <= on else bisect.bisect_right(dates, on)
    if not hi or dates[hi - 1] <= on - days:
        return 0  # the latest has left the window (from the end, as in after())
    return hi - bisect.bisect_right(dates, on - days, 0, hi)


def _breakpoints(state: dict, since: int) -> set[int]:
    """Days after ``since`` on which :func:`value` may change: a row or change point of
    that day, a window event entering or leaving its window, a child turning 18."""
    days: set[int] = set()
    res = state["res"]
    days.update(r[0] for r in res[after(res, since) :])
    for m in state["mem"].values():
        for name in _LISTS:
            if points := m.get(name):
                days.update(p[0] for p in points[after(points, since) :])
        for p in m["m"][max(in_force(m["m"], since), 0) :]:
            if p[1] == "child":
                days.add(until18(p[2]))
        for name, n in WINDOWS.items():
            dates = m.get(name, _NONE)
            for d in dates[bisect.bisect_right(dates, since - n) :]:
                days.add(d)
                days.add(d + n)
    return {d for d in days if d > since}


def segments(state: dict, since: int) -> list[list]:
    """The family's contribution from day ``since`` on, as ``[[start, value], ...]``:
    each value holds from its start to the next start (the last one for ever, as far as
    the events known so far say). The first segment starts on ``since``."""
    out: list[list] = []
    for on in sorted({since} | _breakpoints(state, since)):
        v = value(state, on)
        if not out or out[-1][1] != v:
            out.append([on, v])
    return out


def due(state: dict, watermark: int) -> int | None:
    """The first day after ``watermark`` on which :func:`value` may change without a new
    event (a window event leaves its window, a child turns 18), or None: the least of
    :func:`_breakpoints`, each list's first candidate found from its end, without making
    them all (it runs on every refresh of a family)."""
    w = watermark
    found: list[int] = []
    res = state["res"]
    if (i := after(res, w)) < len(res):
        found.append(res[i][0])
    for m in state["mem"].values():
        for name in _LISTS:
            if (points := m.get(name)) and (i := after(points, w)) < len(points):
                found.append(points[i][0])
        for p in m["m"][max(in_force(m["m"], w), 0) :]:
            if p[1] == "child" and (d := until18(p[2])) > w:
                found.append(d)
        for name, n in WINDOWS.items():
            if (dates := m.get(name)) and dates[-1] > w - n:
                i = bisect.bisect_right(dates, w - n)
                found.append(dates[i] + n)  # the first to leave its window
                if dates[-1] > w:  # and the first to enter it
                    found.append(dates[bisect.bisect_right(dates, w, i)])
    return min(found, default=None)


def current(state: dict) -> dict[str, list]:
    """``{person: latest membership point}`` of the current members (a latest point with
    a role: not removed)."""
    return {p: m["m"][-1] for p, m in state["mem"].items() if m["m"] and m["m"][-1][1] is not None}


def members_on(state: dict, on: int) -> dict[str, list]:
    """``{person: membership point in force on day on}`` of a family state's members on
    that day (the points are dated: :func:`models.person.tail`)."""
    out = {}
    for p, m in state["mem"].items():
        points = m.get("m") or []
        i = in_force(points, on)
        if i >= 0 and points[i][1] is not None:
            out[p] = points[i]
    return out


def members_now(state: dict) -> list[dict]:
    """The current members as :func:`models.features.family_vector` wants them:
    ``{"role", "birth_date", "profile"}`` from each member's latest membership point."""
    return [
        {"role": last[1], "birth_date": last[2], "profile": state["mem"][p].get("profile") or {}}
        for p, last in current(state).items()
    ]


def residence_events(state: dict) -> list[dict]:
    """The residence rows as :func:`models.features.family_vector` wants them (the
    event fields it reads), in "latest" order."""
    return [
        {
            "occurred_at": dt.date.fromordinal(on).isoformat(),
            "recorded_at": rec,
            "event_id": eid,
            "data": {"postcode": postcode, "municipality": muni},
        }
        for on, rec, eid, postcode, muni in state["res"]
    ]
