"""The situation picture as pure stream steps.

Every step has one signature, ``step(state, key, message) -> (state, outputs)`` with
outputs ``(stage, key, message)`` for the next stage (:data:`Step`): no I/O, no clock;
the watermark ``W`` is passed in where it matters. A step with hyper-parameters is a
small class whose instances are such callables. The Faust app (``streams/app.py``) and the in-process
pipeline (:class:`Pipeline`, used by the demo and the tests) run the same steps.

The picture is a function of the *set* of accepted, non-retracted events, never of the
order they arrive in: every step keeps sets keyed by ``event_id`` and recomputes its
output from the whole set ("latest" by :func:`order_key`), so duplicates and replays are
no-ops and a retraction cancels its target whichever comes first.

Stages and their keys:

1. :class:`Dedup`, keyed by ``event_id`` (a retraction by the id it retracts).
2. :class:`PersonStep`, keyed by person pseudonym → :func:`summarize_person`.
3. :func:`family_step`, keyed by family pseudonym; :func:`contribution` at ``W``.

Examples
--------
>>> ev = lambda i, t, d, day, person="p1": {"event_id": i, "source": "x", "type": t,
...     "occurred_at": day, "recorded_at": day + "T12:00:00.000000Z", "person": person, "data": d}
>>> pipe = Pipeline()
>>> for e in [ev("1", "family.member_added", {"family": "f1", "role": "parent", "birth_date": "1990-01-01"}, "2026-01-01"),
...           ev("2", "family.member_added", {"family": "f1", "role": "child", "birth_date": "2020-01-01"}, "2026-01-01", "p2"),
...           ev("3", "family.residence_changed", {"family": "f1", "postcode": "33100", "municipality": "837"}, "2026-01-02", None),
...           ev("4", "child_welfare.notification", {}, "2026-01-03", "p2")]:
...     pipe.process(e)
>>> pipe.watermark, pipe.contributions["f1"]["area"], pipe.contributions["f1"]["counts"]["child_welfare_notifications_30d"]
('2026-01-03', '33100', 1)
>>> pipe.process(ev("5", "event.retracted", {"event_id": "4"}, "2026-01-04", None))
>>> pipe.contributions["f1"]["counts"]["child_welfare_notifications_30d"]
0
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from models.contract import COVERED_MUNICIPALITIES, RETRACTED
from models.types import Contribution, PersonSummary

COVERED = frozenset(COVERED_MUNICIPALITIES)
WINDOWS = {"cw_notifications": 30, "mh_visits": 90}
RESIDENCE = "family.residence_changed"

Output: TypeAlias = tuple[str, str, dict]  # (stage, key, message) for the next stage
Step: TypeAlias = Callable[[Any, str, dict], tuple[Any, list[Output]]]
_EPISODE_SUFFIXES = (".started", ".ended", "_started", "_ended")


def order_key(event: dict) -> tuple[str, str, str]:
    """ "Latest" order: occurred_at, then recorded_at (UTC-normalised), then event_id."""
    return (event["occurred_at"], event["recorded_at"], event["event_id"])


def day(iso: str) -> int:
    """Days since 0001-01-01 of a ``YYYY-MM-DD`` date (cheap, comparable arithmetic)."""
    return dt.date.fromisoformat(iso).toordinal()


def eighteenth_birthday(birth_date: str) -> int:
    """The 18th birthday as a day number; born 29 Feb → 28 Feb in a common year.

    >>> dt.date.fromordinal(eighteenth_birthday("2008-02-29")).isoformat()
    '2026-02-28'
    """
    born = dt.date.fromisoformat(birth_date)
    try:
        return born.replace(year=born.year + 18).toordinal()
    except ValueError:
        return dt.date(born.year + 18, 2, 28).toordinal()


# --------------------------------------------------------------------------- stage 1


def route_key(event: dict) -> str:
    """The key of the dedup stage: a retraction goes where its target goes."""
    return event["data"]["event_id"] if event["type"] == RETRACTED else event["event_id"]


def owner(event: dict) -> tuple[str, str]:
    """Where an event's effect lives: ``("person", p)`` or ``("family", f)``."""
    if event["type"] == RESIDENCE:
        return ("family", event["data"]["family"])
    return ("person", event["person"])


def dedup_step(state: str | dict | None, key: str, event: dict) -> tuple[str, list[Output]]:
    """Stage 1, keyed by :func:`route_key` (``key``; the event says it again).

    State: the JSON text ``[stage, key, *retraction_ids]`` (``stage`` and ``key`` of the
    event's owner, or null while only retractions have arrived), small on purpose: this
    stage holds one entry per event id, for ever. A string, not a dict of lists, because
    the cyclic garbage collector never looks inside one: with millions of ids, three
    containers each made every full collection pause the worker for seconds. Outputs
    ``(stage, key, message)`` for the event's owner. A duplicate or replay sends again
    what it sent before (a send lost in a crash is made good; downstream steps are
    idempotent) and returns the very same state, so nothing is written. A retraction of
    a retraction lands under an id that no ordinary event routes to, so it has no effect,
    as the contract requires.

    >>> state, outs = dedup_step(None, "e1", {"event_id": "e1", "type": "health.visit", "person": "p1"})
    >>> state, outs[0][:2]
    ('["person","p1"]', ('person', 'p1'))
    >>> dedup_step(state, "e1", {"event_id": "e1", "type": "health.visit", "person": "p1"})[0] is state
    True
    >>> dedup_step(state, "e1", {"event_id": "r1", "type": RETRACTED, "data": {"event_id": "e1"}})[0]
    '["person","p1","r1"]'
    """
    own, retractions = _dedup_fields(state)
    changed = isinstance(state, dict)  # the older form, as an older changelog holds it
    if event["type"] == RETRACTED:
        if event["event_id"] not in retractions:
            retractions, changed = sorted([*retractions, event["event_id"]]), True
    elif own is None:
        own, changed = owner(event), True
    if changed or not isinstance(state, str):
        state = json.dumps([*(own or (None, None)), *retractions], separators=(",", ":"))
    if own is None:
        return state, []
    stage, owner_key = own
    if retractions:
        kind = "residence_retract" if stage == "family" else "retract"
        return state, [(stage, owner_key, {"kind": kind, "event_id": route_key(event)})]
    kind = "residence" if stage == "family" else "add"
    return state, [(stage, owner_key, {"kind": kind, "event": event})]


class Dedup:
    """Stage 1 as a :data:`Step`: :func:`dedup_step`, optionally forwarding only events
    that can change a person summary.

    Without a feature profile, three events in four (incomes, ordinary visits, care,
    education) can change no summary: the person step would drop them, so with
    ``summary_only`` they stop here. Their dedup state is kept, so a retraction of one
    still finds its owner (and changes nothing).

    >>> income = {"event_id": "e1", "type": "income.reported", "person": "p1", "data": {}}
    >>> Dedup()(None, "e1", income)[1][0][:2], Dedup(summary_only=True)(None, "e1", income)[1]
    (('person', 'p1'), [])
    """

    def __init__(self, summary_only: bool = False):
        self.summary_only = summary_only

    def __call__(self, state: str | dict | None, key: str, event: dict) -> tuple[str, list[Output]]:
        state, outs = dedup_step(state, key, event)
        if not self.summary_only:
            return state, outs
        return state, [o for o in outs if o[2]["kind"] != "add" or matters(o[2]["event"])]


def _dedup_fields(state: str | dict | None) -> tuple[tuple[str, str] | None, list[str]]:
    if state is None:
        return None, []
    if isinstance(state, dict):
        return (tuple(state["owner"]) if state["owner"] else None), list(state["retractions"])
    stage, key, *retractions = json.loads(state)
    return ((stage, key) if stage is not None else None), retractions


# --------------------------------------------------------------------------- stage 2


@functools.lru_cache(maxsize=64)
def stem(event_type: str) -> str | None:
    """``benefit.started`` → ``benefit``; ``child_welfare.client_ended`` → ``child_welfare.client``."""
    for suffix in _EPISODE_SUFFIXES:
        if event_type.endswith(suffix):
            return event_type[: -len(suffix)]
    return None


# Types that can never change a person summary (without a feature profile): the person
# step neither stores nor re-reduces them. About three events in four are of these.
SUMMARY_BLIND = frozenset(
    {"income.reported", "care.episode", "education.completed", "school.support_changed"}
)


def matters(event: dict) -> bool:
    """Whether an event can change a person summary that carries no profile."""
    t = event["type"]
    if t in SUMMARY_BLIND:
        return False
    return t != "health.visit" or event["data"].get("service") == "mental_health"


def summarize_person(
    events: Iterable[dict], profile: Callable[[list[dict]], dict] | None = None
) -> PersonSummary:
    """Reduce a person's accepted events to what their family needs.

    Depends only on the set of events. Window-event dates older than the person's own
    latest event minus the window can never count again (``W`` is at least that date),
    so they are dropped to keep messages small.
    """
    events = list(events)
    added = None
    removed: dict[str, tuple] = {}
    status = None
    episodes: dict[tuple[str, str], dict] = {}
    windows: dict[str, list[str]] = {"cw_notifications": [], "mh_visits": []}
    latest = ""
    for ev in events:
        t, d, k = ev["type"], ev["data"], order_key(ev)
        latest = max(latest, ev["occurred_at"])
        if t == "family.member_added":
            if added is None or k > order_key(added):
                added = ev
        elif t == "family.member_removed":
            if k > removed.get(d["family"], ("",)):
                removed[d["family"]] = k
        elif t == "employment.status_changed":
            if status is None or k > order_key(status):
                status = ev
        elif t == "child_welfare.notification":
            windows["cw_notifications"].append(ev["occurred_at"])
        elif t == "health.visit" and d.get("service") == "mental_health":
            windows["mh_visits"].append(ev["occurred_at"])
        else:
            st_ = stem(t)
            if st_ is not None and "episode" in d:
                ep = episodes.setdefault(
                    (st_, d["episode"]), {"start": False, "end": False, "kinds": set()}
                )
                if t.endswith("started"):
                    ep["start"] = True
                    kind = d.get("benefit") or d.get("service")
                    ep["kinds"].add(f"{st_}:{kind}" if kind else st_)
                else:
                    ep["end"] = True
    family = role = birth_date = None
    if added is not None and removed.get(added["data"]["family"], ("",)) <= order_key(added):
        family, role, birth_date = (
            added["data"]["family"],
            added["data"]["role"],
            added["data"]["birth_date"],
        )
    active = sorted(
        {k for ep in episodes.values() if ep["start"] and not ep["end"] for k in ep["kinds"]}
    )

    # Dates older than the person's own latest event minus the window can never count.
    floor = (
        {n: dt.date.fromordinal(day(latest) - d).isoformat() for n, d in WINDOWS.items()}
        if latest
        else {}
    )
    out: PersonSummary = {
        "family": family,
        "role": role,
        "birth_date": birth_date,
        "status": status["data"]["status"] if status else None,
        "active": active,
        "cw_notifications": sorted(
            d for d in windows["cw_notifications"] if d > floor["cw_notifications"]
        ),
        "mh_visits": sorted(d for d in windows["mh_visits"] if d > floor["mh_visits"]),
    }
    if profile is not None:
        out["profile"] = profile(events)
    return out


class PersonStep:
    """Stage 2 as a :data:`Step`, keyed by person pseudonym; ``profile`` (a function of
    the person's events, :func:`models.features.person_profile`) adds the feature
    profile to every summary."""

    def __init__(self, profile: Callable[[list[dict]], dict] | None = None):
        self.profile = profile

    def __call__(self, state: dict | None, key: str, msg: dict) -> tuple[dict, list[Output]]:
        return person_step(state, key, msg, self.profile)


def person_step(
    state: dict | None, person: str, msg: dict, profile: Callable[[list[dict]], dict] | None = None
) -> tuple[dict, list[Output]]:
    """Stage 2, keyed by person pseudonym (:class:`PersonStep` binds ``profile``).

    State: ``{"events": {event_id: event}, "sent": last summary sent, or None}``.
    Sends the summary to the person's family when it changes, and a leave message to the
    previous family when the family changes. A message that changes nothing (duplicate,
    replay after a crash) re-sends the current summary, since the first send may be the
    one the crash lost.
    """
    state = state or {"events": {}, "sent": None}
    events = state["events"]
    if msg["kind"] == "add":
        ev = msg["event"]
        if profile is None and not matters(ev):
            return state, []
        changed = ev["event_id"] not in events
        if changed:
            # The key is the person: no need to keep it in every stored event.
            events = {**events, ev["event_id"]: {k: v for k, v in ev.items() if k != "person"}}
    else:
        changed = msg["event_id"] in events
        if changed:
            events = {k: v for k, v in events.items() if k != msg["event_id"]}
    summary = summarize_person(events.values(), profile)
    sent = state["sent"]
    out: list[tuple[str, str, dict]] = []
    old_family = sent["family"] if sent else None
    if old_family and old_family != summary["family"]:
        out.append(
            (
                "family",
                old_family,
                {"kind": "member", "person": person, "family": old_family, "summary": None},
            )
        )
    if summary["family"] and (summary != sent or not changed):
        out.append(
            (
                "family",
                summary["family"],
                {
                    "kind": "member",
                    "person": person,
                    "family": summary["family"],
                    "summary": summary,
                },
            )
        )
    return {"events": events, "sent": summary}, out


# --------------------------------------------------------------------------- stage 3


def family_step(state: dict | None, key: str, msg: dict) -> tuple[dict, list[Output]]:
    """Stage 3 input, keyed by family pseudonym: the new state, no outputs (what the
    family adds to the picture is :func:`contribution` of the state at ``W``).

    State: ``{"residence": {event_id: event}, "members": {person: summary}}``.
    """
    return _family_state(state, msg), []


def _family_state(state: dict | None, msg: dict) -> dict:
    state = state or {"residence": {}, "members": {}}
    kind = msg["kind"]
    if kind == "member":
        members = state["members"]
        if msg["summary"] is None or msg["summary"]["family"] != msg["family"]:
            members = {p: s for p, s in members.items() if p != msg["person"]}
        else:
            members = {**members, msg["person"]: msg["summary"]}
        return {**state, "members": members}
    residence = state["residence"]
    if kind == "residence":
        ev = msg["event"]
        residence = {**residence, ev["event_id"]: ev}
    elif kind == "residence_retract":
        residence = {k: v for k, v in residence.items() if k != msg["event_id"]}
    else:
        raise ValueError(f"unknown family message kind {kind!r}")
    return {**state, "residence": residence}


def _in_window(dates: list[str], w: int, days: int) -> int:
    return sum(1 for d in dates if w - days < day(d) <= w)


def contribution(
    state: dict, watermark: str, group: Callable[[dict], int | None] | None = None
) -> Contribution | None:
    """What one family adds to the picture at ``W``, or None when it is not counted.

    ``{"area", "municipality", "counts": {indicator: int}, "due": day or None}``: ``due``
    is the first day after ``W`` on which the result may change because ``W`` moves on
    (a window event leaves its window, a child turns 18).
    """
    if not state["residence"]:
        return None
    home = max(state["residence"].values(), key=order_key)["data"]
    if home["municipality"] not in COVERED:
        return None
    w = day(watermark)
    members = state["members"].values()
    parents = [m for m in members if m["role"] == "parent"]
    child_until = [eighteenth_birthday(m["birth_date"]) for m in members if m["role"] == "child"]
    children = sum(1 for b in child_until if b > w)
    if children == 0:
        return None
    counts = {
        "families": 1,
        "children": children,
        "single_parent_families": int(len(parents) == 1),
        "families_social_assistance": int(
            any("benefit:basic_social_assistance" in m["active"] for m in members)
        ),
        "families_unemployed_parent": int(any(m["status"] == "unemployed" for m in parents)),
        "families_child_welfare": int(
            any(
                a in ("child_welfare.client", "child_welfare.placement")
                for m in members
                for a in m["active"]
            )
        ),
        "child_welfare_notifications_30d": sum(
            _in_window(m["cw_notifications"], w, 30) for m in members
        ),
        "mental_health_visits_90d": sum(_in_window(m["mh_visits"], w, 90) for m in members),
    }
    if group is not None:
        g = group(state)
        if g is not None:
            counts[f"g{g}"] = 1
    breakpoints = [b for b in child_until if b > w]
    for name, days in WINDOWS.items():
        for m in members:
            for d in m[name]:
                dd = day(d)
                breakpoints.append(dd if dd > w else dd + days)
    due = min((b for b in breakpoints if b > w), default=None)
    return {
        "area": home["postcode"],
        "municipality": home["municipality"],
        "counts": counts,
        "due": due,
    }


# --------------------------------------------------------------------------- deltas


def scopes(contrib: dict) -> tuple[str, str, str]:
    return ("all", f"m:{contrib['municipality']}", f"a:{contrib['area']}")


def delta(old: dict | None, new: dict | None) -> dict[tuple[str, str], int]:
    """Increments per ``(scope, field)`` that turn the aggregates from ``old`` to ``new``.

    >>> a = {"area": "33100", "municipality": "837", "counts": {"families": 1, "children": 2}}
    >>> b = {"area": "33200", "municipality": "837", "counts": {"families": 1, "children": 3}}
    >>> sorted(delta(a, b).items())
    [(('a:33100', 'children'), -2), (('a:33100', 'families'), -1), (('a:33200', 'children'), 3), (('a:33200', 'families'), 1), (('all', 'children'), 1), (('m:837', 'children'), 1)]
    """
    out: dict[tuple[str, str], int] = {}
    for contrib, sign in ((old, -1), (new, 1)):
        if contrib is None:
            continue
        for scope in scopes(contrib):
            for name, value in contrib["counts"].items():
                k = (scope, name)
                out[k] = out.get(k, 0) + sign * value
    return {k: v for k, v in out.items() if v}


# --------------------------------------------------------------------------- in-process


@dataclass
class Pipeline:
    """All three stages in one process, with dict state: the demo and the tests.

    ``contributions`` holds each family's current contribution; :meth:`aggregates`
    sums them. ``on_contribution(family, old, new)`` is called for every change, so a
    sink can apply :func:`delta`.
    """

    profile: Callable[[list[dict]], dict] | None = None
    group: Callable[[dict], int | None] | None = None
    dedup_step: Step = field(default_factory=Dedup)
    on_contribution: Callable[[str, Contribution | None, Contribution | None], None] | None = None
    watermark: str = "0001-01-01"
    dedup: dict = field(default_factory=dict)
    persons: dict = field(default_factory=dict)
    families: dict = field(default_factory=dict)
    contributions: dict = field(default_factory=dict)
    due: dict = field(default_factory=dict)

    def process(self, event: dict) -> None:
        """Process one validated, pseudonymised event (then sweep the due families)."""
        self.process_many([event])

    def process_many(self, events: Iterable[dict]) -> None:
        touched: set[str] = set()
        for event in events:
            self.watermark = max(self.watermark, event["occurred_at"])
            k = route_key(event)
            self.dedup[k], outs = self.dedup_step(self.dedup.get(k), k, event)
            for _, okey, msg in outs:
                touched |= self._route(okey, msg)
        self.refresh(touched)

    def _route(self, okey: str, msg: dict) -> set[str]:
        if msg["kind"] in ("add", "retract"):
            self.persons[okey], outs = person_step(self.persons.get(okey), okey, msg, self.profile)
            touched: set[str] = set()
            for _, fkey, fmsg in outs:
                touched |= self._route(fkey, fmsg)
            return touched
        self.families[okey], _ = family_step(self.families.get(okey), okey, msg)
        return {okey}

    def refresh(self, families: Iterable[str] = ()) -> None:
        """Recompute the given families and every family whose due day has come."""
        w = day(self.watermark)
        todo = set(families) | {f for f, d in self.due.items() if d <= w}
        for fam in sorted(todo):
            new = contribution(self.families[fam], self.watermark, self.group)
            old = self.contributions.get(fam)
            self.due.pop(fam, None)
            if new is not None and new["due"] is not None:
                self.due[fam] = new["due"]
            if new != old:
                if new is None:
                    self.contributions.pop(fam, None)
                else:
                    self.contributions[fam] = new
                if self.on_contribution is not None:
                    self.on_contribution(fam, old, new)

    def aggregates(self) -> dict[str, dict[str, int]]:
        """``{scope: {field: count}}`` over all current contributions (non-zero only)."""
        out: dict[str, dict[str, int]] = {}
        for contrib in self.contributions.values():
            for (scope, name), v in delta(None, contrib).items():
                bucket = out.setdefault(scope, {})
                bucket[name] = bucket.get(name, 0) + v
        return out
