"""A family's outcome group month by month from its own state: the worker's cohorts
(issue 16, ``docs/impact.md``).

The impact outcome of a family at a month's end reads each member's rows of the six
months up to that day (``models.cohorts.outcome_on``), and a person's rows live on
the person partitions. So the person stage sends each family of the person, with its
member message, a **copy** of the rows the outcome reads (:func:`copy_of`): the rows of
the category an event changed from that row on, or, when the person's membership
changes, all of them (a new member's past counts in the window). The family lays it
over its member's copy (:func:`merge`), and reads the outcome of any month's end from
its own state (:func:`outcome_at`), as the final data has it: what arrived when does not
matter, so every partition split and arrival order gives the panel of
:func:`models.cohorts.final_panel`.

The month rows a family adds to the panel are kept in its state (``ir``) and dropped
from the month a message changes (:func:`invalidate`); :func:`month_rows` makes the
missing ones. :func:`partition_builder` is the panel of a set of families (a worker's
partition), whose counts add up over partitions to those of the whole.

A copy, ``o`` in a member's entry: ``{category: rows}`` in the person's row layout
(:mod:`models.person`) without event ids, incomes summed per month, for ``s``, ``v`` (primary care only: the one visit feature the
outcome reads outside mental health), ``mh``, ``c``, ``cwn``, ``edu``, ``sup``, ``inc``,
and ``ep`` ``{"stem|episode": rows}`` for benefits (the outcome's shares of days) and the
services whose starts make the cohorts. A message's ``o``: ``{"d": day, "full": copy}``
or ``{"d": day, category: [cut, rows from cut]}`` or ``{"d": day, "ep": {key: rows}}``;
``d`` is the first day whose outcome it can change.

>>> from models.person import add, locate, new_state
>>> p = new_state()
>>> inc = {"event_id": "i", "type": "income.reported", "occurred_at": "2026-03-05",
...        "recorded_at": "2026-03-05T00:00:00Z", "data": {"month": "2026-02", "gross_eur": 900.0}}
>>> _ = add(p, inc)
>>> o = copy_of(p, locate(inc))
>>> dt.date.fromordinal(o["d"]).isoformat(), o["inc"][1]  # February's income counts from 1 Feb
('2026-02-01', [[673, '', 900.0, 0]])
>>> entry = {}
>>> merge(entry, o), entry["o"]["inc"], merge(entry, o)
(True, [[673, '', 900.0, 0]], False)
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Mapping

from models import family
from models.contract import COVERED_MUNICIPALITIES
from models.family import members_on, residence_events
from models.features import family_vector
from models.impact import (
    OUTCOME_INCOME_MONTHS,
    OUTCOME_RULE,
    OUTCOME_WINDOW_DAYS,
    SERVICES,
    PanelBuilder,
)
from models.person import cents, day, rows_of
from models.profile import state_profile

__all__ = [
    "copy_of",
    "first_of_month",
    "has_start",
    "invalidate",
    "merge",
    "month_end",
    "month_rows",
    "outcome_at",
    "outcome_of",
    "partition_builder",
    "score_of",
    "settle",
    "starts",
]

#: The categories of a person's rows the outcome reads (``ep`` apart).
CATEGORIES = ("s", "v", "mh", "c", "cwn", "edu", "sup", "inc")
#: Episode stems kept: the benefits (shares of days in the outcome) and the services
#: whose starts make cohorts (``models.impact.service_of``).
_SERVICE_STEMS = {
    "social_service": None,  # the service is the start row's kind
    "child_welfare.client": "child_welfare_open_care",
    "ecec": "early_childhood_education",
}
_STEMS = frozenset({"benefit", *_SERVICE_STEMS})


def _kept(cat: str, row: list) -> bool:
    return cat != "v" or row[2] == "primary_care"


def first_of_month(m: int) -> int:
    """The first day (an ordinal) of the month ``m`` (months since 1970-01)."""
    return dt.date(1970 + m // 12, m % 12 + 1, 1).toordinal()


def month_end(month: int) -> int:
    """The last day (an ordinal) of a month ``year × 12 + month − 1``.

    >>> dt.date.fromordinal(month_end(2024 * 12 + 1)).isoformat()
    '2024-02-29'
    """
    return dt.date((month + 1) // 12, (month + 1) % 12 + 1, 1).toordinal() - 1


def copy_of(state: dict, where: list | None, full: bool = False) -> dict | None:
    """What a family needs of a person's rows after a change at ``where``
    (:func:`models.person.locate`); ``full``: all of them (the membership changed).
    None: the change touched nothing the outcome reads."""
    if full:
        o: dict = {c: _compact(c, rows_of(state, c)) for c in CATEGORIES}
        o["ep"] = {
            k: _compact("ep", rows) for k, rows in state.get("ep", {}).items() if _stem_kept(k)
        }
        return {"d": 0, "full": o}
    if where is None:
        return None
    name, on, cut = where
    if name.startswith("ep:"):
        key = name[3:]
        if not _stem_kept(key):
            return None
        return {"d": on, "ep": {key: _compact("ep", state.get("ep", {}).get(key, ()))}}
    if name not in CATEGORIES:
        return None
    rows = rows_of(state, name)
    tail = _compact(name, rows[bisect.bisect_left(rows, [cut]) :])
    return {"d": first_of_month(cut) if name == "inc" else on, name: [cut, tail]}


def _compact(cat: str, rows) -> list[list]:
    """Rows as the outcome reads them: without event ids (in the layout of
    :mod:`models.person`, an empty id), statuses whole (their order on a day is the
    contract's "latest", which reads the id), incomes summed per month."""
    if cat == "s":
        return list(rows)
    if cat == "inc":
        months: dict[int, int] = {}
        for r in rows:
            months[r[0]] = months.get(r[0], 0) + cents(r[2])
        return [[m, "", total / 100, 0] for m, total in months.items()]
    return [[r[0], "", *r[2:]] for r in rows if _kept(cat, r)]


def _stem_kept(key: str) -> bool:
    return key.split("|", 1)[0] in _STEMS


def merge(entry: dict, o: Mapping) -> bool:
    """Lay a :func:`copy_of` over a member's entry (``entry["o"]``), in place; whether
    anything changed."""
    if "full" in o:
        full = o["full"]
        new: dict = {c: list(full[c]) for c in CATEGORIES if full.get(c)}
        if eps := {k: list(rows) for k, rows in full.get("ep", {}).items() if rows}:
            new["ep"] = eps
        changed = entry.get("o") != new
        entry["o"] = new
        return changed
    copy = entry.setdefault("o", {})
    changed = False
    for name, value in o.items():
        if name == "d":
            continue
        if name == "ep":
            eps = copy.setdefault("ep", {})
            for key, rows in value.items():
                if eps.get(key, []) != rows:
                    changed = True
                    if rows:
                        eps[key] = list(rows)
                    else:
                        eps.pop(key, None)
            continue
        cut, tail = value
        old = copy.get(name, [])
        i = bisect.bisect_left(old, [cut])
        if old[i:] != tail:
            copy[name] = old[:i] + list(tail)
            changed = True
            if not copy[name]:
                del copy[name]
    return changed


def invalidate(state: dict, on: int) -> None:
    """Drops the family's month rows from the month of day ``on`` (their month ends
    fall on or after it)."""
    ir = state.get("ir")
    if ir is None:
        return
    keep = _month(on) - ir[0]
    if keep <= 0:
        del state["ir"]
    elif keep < len(ir[1]):
        del ir[1][keep:]


def _month(on: int) -> int:
    d = dt.date.fromordinal(max(on, 1))
    return d.year * 12 + d.month - 1


def outcome_at(state: dict, on: int) -> float | None:
    """The outcome score of a family on day ``on`` from its members' copies:
    ``models.cohorts.outcome_on`` of the final data, without the person states."""
    # A member's state always has its membership rows, so its profile is never the empty
    # one of a person without rows: a copy reads as one with rows ("last").
    return outcome_of(state, on, lambda p: {"last": 1, **(state["mem"][p].get("o") or {})})


def outcome_of(state: dict, on: int, rows_of_member: Callable[[str], dict | None]) -> float | None:
    """The outcome score (:data:`models.impact.OUTCOME_RULE`) of a family on day ``on``:
    its members on that day, each one's profile over the six months up to it from the
    rows ``rows_of_member(person)`` gives (a person state; None: no profile), its
    residence up to it; None without members."""
    members = []
    for p, point in members_on(state, on).items():
        rows = rows_of_member(p)
        profile = (
            state_profile(rows, OUTCOME_WINDOW_DAYS, OUTCOME_INCOME_MONTHS, on=on) if rows else {}
        )
        members.append({"role": point[1], "birth_date": point[2], "profile": profile})
    if not members:
        return None
    residence = [r for r in residence_events(state) if day(r["occurred_at"]) <= on]
    return OUTCOME_RULE.need_score(family_vector(members, residence))


def month_rows(state: dict, first: int, last: int) -> list[list | None]:
    """The family's ``[outcome group, municipality, postcode]`` at the end of each month
    ``first`` … ``last`` (None: not counted then). Those from :func:`_start` on are kept
    in ``state["ir"]`` as ``[month, rows]``; any before it are made each time."""
    start = _start(state)
    if start is None:
        return [None] * (last - first + 1)
    ir = state.get("ir")
    if ir is None or ir[0] != start:
        ir = state["ir"] = [start, []]
    rows = ir[1]
    for m in range(start + len(rows), last + 1):
        rows.append(_row(state, m))
    before = [_row(state, m) for m in range(first, min(start, last + 1))]
    return before + rows[max(first - start, 0) : last - start + 1]


def _start(state: dict) -> int | None:
    """The first month whose row a family keeps: that of its first residence, or, if
    later, that of the first residence's registration (a family's residence goes back
    years before the registers went live, and those months are in no panel)."""
    res = state["res"]
    if not res:
        return None
    recorded = min(r[1] for r in res)
    return max(_month(res[0][0]), (int(recorded[:4]) * 12 + int(recorded[5:7]) - 1))


def _row(state: dict, m: int) -> list | None:
    on = month_end(m)
    v = family.value(state, on)
    score = outcome_at(state, on) if v is not None else None
    if v is None or score is None:
        return None
    return [1 + bisect.bisect_right(OUTCOME_RULE.cuts, score), v[1], v[0]]


#: Months before the family's latest data whose rows a worker keeps as they come: the
#: month before it is still open to the incomes of its month, reported in the next.
SETTLE_MONTHS = 2


def settle(state: dict) -> None:
    """Makes the rows of the months :data:`SETTLE_MONTHS` before the family's latest data
    and earlier, which only a late event changes again: a worker keeps them in the
    state, each made about once."""
    if not has_start(state):
        return
    latest = max((m.get("last", 0) for m in state["mem"].values()), default=0)
    if state["res"]:
        latest = max(latest, state["res"][-1][0])
    start = _start(state)
    if latest and start is not None and _month(latest) - SETTLE_MONTHS >= start:
        month_rows(state, start, _month(latest) - SETTLE_MONTHS)


def score_of(group: int) -> float:
    """An outcome score in ``group`` (:class:`models.impact.PanelBuilder` takes scores)."""
    cuts = OUTCOME_RULE.cuts
    return cuts[group - 2] if group > 1 else cuts[0] - 1.0


def starts(state: dict) -> Iterator[tuple[str, str, str, str]]:
    """``(service, person, episode, day)`` of every service start in the members' copies."""
    for p, entry in state["mem"].items():
        for key, rows in (entry.get("o") or {}).get("ep", {}).items():
            stem, episode = key.split("|", 1)
            if stem not in _SERVICE_STEMS:
                continue
            for r in rows:
                if not r[2]:
                    continue
                service = _SERVICE_STEMS[stem] or r[3]
                if service in SERVICES:
                    yield service, p, episode, dt.date.fromordinal(r[0]).isoformat()


def has_start(state: dict) -> bool:
    """Whether a member started a service: with the later-treated comparison
    (``models.impact.COMPARISONS``), a family that never starts one is in no cohort's
    counts, as an entry or a comparison family, and needs no month rows."""
    return next(starts(state), None) is not None


def partition_builder(
    states: Mapping[str, dict],
    first: int,
    last: int,
    municipalities: Iterable[str] = COVERED_MUNICIPALITIES,
) -> PanelBuilder:
    """The panel of months ``first`` … ``last`` of ``states`` (family → state; their
    month rows are made and kept as needed): what :func:`models.cohorts.final_panel`
    builds of the same families, less those without a start (:func:`has_start`), so
    with the same counts."""
    builder = PanelBuilder(first, list(municipalities))
    fams = sorted(f for f, state in states.items() if has_start(state))
    found = {fam: list(starts(states[fam])) for fam in fams}
    # By day, as an offline panel is given them: a start counts once per episode.
    for service, person, episode, on in sorted(
        (s for fam in fams for s in found[fam]), key=lambda s: (s[3], s[0], s[2], s[1])
    ):
        builder.start(service, person, episode, on)
    # A start counts for the family its person belongs to at the end of its month: the
    # members are needed only then, and a family holds the starts of all its members'.
    start_months = {fam: {_month(day(s[3])) for s in found[fam]} for fam in fams}
    rows = {fam: month_rows(states[fam], first, last) for fam in fams}
    for m in range(first, last + 1):
        end = month_end(m)
        column = []
        for fam in fams:
            row = rows[fam][m - first]
            if row is not None:
                members = list(members_on(states[fam], end)) if m in start_months[fam] else []
                column.append((fam, row[1], row[2], score_of(row[0]), members))
        builder.month_end(m, column)
    return builder
