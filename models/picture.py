"""The situation picture as pure stream steps.

Every step has one signature, ``step(state, key, message) -> (state, outputs)`` with
outputs ``(stage, key, message)`` for the next stage (:data:`Step`): no I/O, no clock;
the watermark ``W`` is passed in where it matters. A step with hyper-parameters is a
small class whose instances are such callables. The Faust app (``streams/app.py``) and the in-process
pipeline (:class:`Pipeline`, used by the demo and the tests) run the same steps.

The picture -- on every day, not only on ``W`` -- is a function of the *set* of
accepted, non-retracted events, never of the order they arrive in: every step keeps its
rows keyed by ``event_id`` and derives its output from the whole set ("latest" by
:func:`order_key`), so duplicates and replays are no-ops and a retraction cancels its
target whichever comes first. An event dated ``d`` changes nothing before ``d``, so
each stage sends on only what holds from ``d`` on: the cost of an event does not grow
with the length of the history.

Stages and their keys:

1. :class:`Dedup`, keyed by ``event_id`` (a retraction by the id it retracts).
2. :class:`PersonStep`, keyed by person pseudonym: :mod:`models.person` rows → tails.
3. :func:`family_step`, keyed by family pseudonym: :mod:`models.family` → its value on
   any day: :func:`contribution` at ``W`` (the present) and :func:`history_segments`
   from a day on (the history, :mod:`models.history`).

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
>>> pipe.aggregates_on("2026-01-01"), pipe.aggregates_on("2026-01-02")["a:33100"]["children"]
({}, 1)
"""

from __future__ import annotations

import bisect
import heapq
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from models import family, family_outcome, person
from models.cellkey import record_key
from models.contract import GROUPS, INDICATORS, RETRACTED, key_field, type_field, type_id_of
from models.history import History
from models.person import day, earliest
from models.types import Contribution

RESIDENCE = "family.residence_changed"
MEMBERSHIP = frozenset({"family.member_added", "family.member_removed"})

Output: TypeAlias = tuple[str, str, dict]  # (stage, key, message) for the next stage
Step: TypeAlias = Callable[[Any, str, dict], tuple[Any, list[Output]]]


def order_key(event: dict) -> tuple[str, str, str]:
    """ "Latest" order: occurred_at, then recorded_at (UTC-normalised), then event_id."""
    return (event["occurred_at"], event["recorded_at"], event["event_id"])


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

    State: the JSON text ``[stage, key, where, *retraction_ids]`` (``stage`` and ``key``
    of the event's owner, or null while only retractions have arrived; ``where`` the
    location of its row in the person state, :func:`models.person.locate`, which a
    retraction is sent with, so that the person keeps no map of its event ids), small on
    purpose: this stage holds one entry per event id, for ever. A string, not a dict of lists, because
    the cyclic garbage collector never looks inside one: with millions of ids, three
    containers each made every full collection pause the worker for seconds. Outputs
    ``(stage, key, message)`` for the event's owner. A duplicate or replay sends again
    what it sent before (a send lost in a crash is made good; downstream steps are
    idempotent) and returns the very same state. A retraction of
    a retraction lands under an id that no ordinary event routes to, so it has no effect,
    as the contract requires.

    >>> visit = {"event_id": "e1", "type": "health.visit", "person": "p1",
    ...          "occurred_at": "2026-01-05", "data": {"service": "dental"}}
    >>> state, outs = dedup_step(None, "e1", visit)
    >>> state, outs[0][:2]
    ('["person","p1",["v",739621,739621]]', ('person', 'p1'))
    >>> dedup_step(state, "e1", visit)[0] is state
    True
    >>> state, outs = dedup_step(state, "e1", {"event_id": "r1", "type": RETRACTED, "data": {"event_id": "e1"}})
    >>> state, outs[0][2]
    ('["person","p1",["v",739621,739621],"r1"]', {'kind': 'retract', 'event_id': 'e1', 'where': ['v', 739621, 739621]})
    """
    own, where, retractions = _dedup_fields(state)
    changed = isinstance(state, dict)  # the older form, as an older changelog holds it
    if event["type"] == RETRACTED:
        if event["event_id"] not in retractions:
            retractions, changed = sorted([*retractions, event["event_id"]]), True
    elif own is None:
        own, changed = owner(event), True
        where = person.locate(event) if own[0] == "person" else None
    elif where is None and own[0] == "person" and (where := person.locate(event)) is not None:
        changed = True  # a state of an older form: now with where the event's row lies
    if changed or not isinstance(state, str):
        state = json.dumps([*(own or (None, None)), where, *retractions], separators=(",", ":"))
    if own is None:
        return state, []
    stage, owner_key = own
    if retractions:
        if stage == "family":
            return state, [
                (stage, owner_key, {"kind": "residence_retract", "event_id": route_key(event)})
            ]
        msg = {"kind": "retract", "event_id": route_key(event), "where": where}
        return state, [(stage, owner_key, msg)]
    kind = "residence" if stage == "family" else "add"
    return state, [(stage, owner_key, {"kind": kind, "event": event})]


class Dedup:
    """Stage 1 as a :data:`Step`: :func:`dedup_step`, optionally forwarding only events
    that can change a person summary.

    Without a feature profile, three events in four (incomes, ordinary visits, care,
    education) can change no summary: the person step would drop them, so with
    ``summary_only`` they stop here. Their dedup state is kept, so a retraction of one
    still finds its owner (and changes nothing).

    >>> income = {"event_id": "e1", "type": "income.reported", "person": "p1",
    ...           "occurred_at": "2026-03-05", "data": {"month": "2026-02", "gross_eur": 1.0}}
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


def _dedup_fields(
    state: str | dict | None,
) -> tuple[tuple[str, str] | None, list | None, list[str]]:
    """``(owner, where, retraction ids)`` of a dedup state; ``where`` None in the forms
    older changelogs hold (a dict; or a list without it, whose third item, if any, is a
    retraction id, a string)."""
    if state is None:
        return None, None, []
    if isinstance(state, dict):
        own = tuple(state["owner"]) if state["owner"] else None
        return own, None, list(state["retractions"])
    stage, key, *rest = json.loads(state)
    where = None
    if rest and not isinstance(rest[0], str):
        where, rest = rest[0], rest[1:]
    return ((stage, key) if stage is not None else None), where, rest


# --------------------------------------------------------------------------- stage 2


def matters(event: dict) -> bool:
    """Whether an event can change the picture (without a feature profile): about three
    events in four (incomes, ordinary visits, care, education) cannot."""
    cat = person.category(event)
    return cat is not None and cat not in person.PROFILE_ONLY


class PersonStep:
    """Stage 2 as a :data:`Step`, keyed by person pseudonym; ``profile`` (a function of
    the person state, :func:`models.profile.state_profile`) adds the feature profile to
    every message, ``copies`` (with a profile) the rows the impact outcome reads."""

    def __init__(self, profile: Callable[[dict], dict] | None = None, copies: bool = False):
        self.profile = profile
        self.copies = copies

    def __call__(self, state: dict | None, key: str, msg: dict) -> tuple[dict | None, list[Output]]:
        return person_step(state, key, msg, self.profile, self.copies)


def person_step(
    state: dict | None,
    key: str,
    msg: dict,
    profile: Callable[[dict], dict] | None = None,
    copies: bool = False,
) -> tuple[dict | None, list[Output]]:
    """Stage 2, keyed by person pseudonym (:class:`PersonStep` binds ``profile`` and
    ``copies``).

    State: :mod:`models.person` (compact rows, updated in place; a changed state comes
    back in a new outer dict, so that a caller can tell a change by identity). Sends
    each family the
    person belongs to on some day from the event's day on -- before or after the change,
    so a family the person leaves hears it -- the :func:`models.person.tail` from that
    day, and with ``copies`` the rows the impact outcome reads
    (:func:`models.family_outcome.copy_of`). A message that changes nothing (duplicate,
    replay after a crash) sends the same again, since the first send may be the one the
    crash lost.
    """
    if msg["kind"] == "add" and profile is None and not matters(msg["event"]):
        return state, []  # kept by the dedup stage only (see Dedup)
    state = state if state is not None else person.new_state()
    if msg["kind"] == "add":
        ev = msg["event"]
        since = person.day(ev["occurred_at"])
        where = person.locate(ev)
        membership = ev["type"] in MEMBERSHIP
    else:
        where = person.holding(state, msg["event_id"], msg.get("where"))
        since = where[1] if where else state["last"]
        membership = where is not None and where[0] == "m"
    # With copies, the families also get the rows the impact outcome reads
    # (models.family_outcome), and an income counts from its month's first day.
    copies = copies and profile is not None
    reach = since
    if copies and where is not None and where[0] == "inc":
        reach = min(since, family_outcome.first_of_month(where[2]))
    before = person.families_from(state, reach)
    if msg["kind"] == "add":
        changed = person.add(state, ev, profile is not None) is not None
    else:
        changed = person.remove(state, msg["event_id"], where) is not None
    if changed:
        state = {**state}
    families = before | person.families_from(state, reach) if membership and changed else before
    if not families:
        return state, []
    extra = {"last": state["last"]}
    if profile is not None:
        extra["profile"] = profile(state)
    if copies and (o := family_outcome.copy_of(state, where, full=membership)) is not None:
        extra["o"] = o
    # A row that only the profile reads (three events in four) leaves every tail as it
    # was: the family is sent none, and skips the merge.
    tails = where is None or person.moves_tail(where[0])
    return state, [
        (
            "family",
            fam,
            {
                "kind": "member",
                "person": key,
                "family": fam,
                "since": since,
                "tail": person.tail(state, fam, since) if tails else None,
                **extra,
            },
        )
        for fam in sorted(families)
    ]


# --------------------------------------------------------------------------- stage 3


def family_step(state: dict | None, key: str, msg: dict) -> tuple[dict, list[Output]]:
    """Stage 3, keyed by family pseudonym: :func:`models.family.apply`. Outputs one
    ``("history", family, {"since": day | None})``: the day from which the family's
    function changed, or None when only a member's profile did (its present and its group
    are to be looked at again, its history from a day on is not)."""
    # Never the state given: the worker may still have it to store (family.detached).
    state = family.new_state() if state is None else family.detached(state, msg)
    since = family.apply(state, msg)
    o = msg.get("o")
    if o is not None and (entry := state["mem"].get(msg["person"])) is not None:
        if family_outcome.merge(entry, o):
            family_outcome.invalidate(state, o["d"])
    if since is not None:
        family_outcome.invalidate(state, since)
    if o is not None:  # the person stage sends copies: the impact outcome is kept
        family_outcome.settle(state)
    return state, [("history", key, {"since": since})]


def contribution(
    state: dict,
    watermark: str,
    group: int | None = None,
    segments: list[list] | None = None,
    type_id: int | None = None,
) -> Contribution | None:
    """What one family adds to the picture at ``W``, or None when it is not counted.

    ``{"area", "municipality", "counts": {indicator: int}, "due": day or None}``: ``due``
    is the first day after ``W`` on which the result may change because ``W`` moves on
    (a window event leaves its window, a child turns 18). ``group``: the family's
    service-need group (counted as ``g<group>``), if any. ``segments``: the family's
    :func:`history_segments` from a day up to ``W``, if at hand (they hold the answer).
    ``type_id``: the family's type (counted as ``t<type id>``,
    :func:`models.contract.type_field`), if any: present only, never in the history.
    """
    w = day(watermark)
    if segments and segments[0][0] <= w:
        i = bisect.bisect_right(segments, w, key=_start) - 1
        v = segments[i][1]
        v = None if v is None else v[:-1]  # the group: as the caller says (below)
        due = segments[i + 1][0] if i + 1 < len(segments) else None
    else:
        v, due = family.present(state, w)  # due: also when not counted, for the memo
    if v is None:
        return None
    counts = dict(zip(INDICATORS, v[2:], strict=True))
    if group is not None:
        counts[f"g{group}"] = 1
    if type_id is not None:
        counts[type_field(type_id)] = 1
    return {"area": v[0], "municipality": v[1], "counts": counts, "due": due}


def written_with(contrib: Contribution) -> tuple[int | None, int | None]:
    """The service-need group and the family type a contribution was written with.

    >>> written_with({"area": "33100", "municipality": "837", "due": None,
    ...               "counts": {"families": 1, "g4": 1, "t37": 1}})
    (4, 37)
    """
    group = type_id = None
    for name in contrib["counts"]:
        if name in GROUPS:
            group = int(name[1:])
        elif (t := type_id_of(name)) is not None:
            type_id = t
    return group, type_id


def _start(segment: list) -> int:
    return segment[0]


def history_segments(state: dict, since: int, group: int | None) -> list[list]:
    """The family's history values from ``since`` on (:mod:`models.history`): its
    segments with its present service-need group appended (0: none)."""
    return [
        [on, None if v is None else [*v, group or 0]] for on, v in family.segments(state, since)
    ]


def history_rewrite(
    state: dict, since: int | None, group: int | None, written_group: int | None
) -> tuple[int, list[list]] | None:
    """``(start, segments)`` of a family's history to write, or None: from ``since``
    (its function changed from that day on) or, where its group is not the one its
    history holds (``written_group``), from its own latest day (:func:`family_clock`),
    whichever is earlier."""
    if group != written_group:
        since = earliest(since, family_clock(state))
    if since is None:
        return None
    return since, history_segments(state, since, group)


def family_clock(state: dict) -> int:
    """The family's own latest day (its members' latest events): the day from which a
    change of its service-need group is written into the history."""
    return max((m.get("last", 0) for m in state["mem"].values()), default=0)


# --------------------------------------------------------------------------- deltas


def scopes(contrib: dict) -> tuple[str, str, str]:
    return ("all", f"m:{contrib['municipality']}", f"a:{contrib['area']}")


def delta(old: dict | None, new: dict | None, rk: int | None = None) -> dict[tuple[str, str], int]:
    """Increments per ``(scope, field)`` that turn the aggregates from ``old`` to ``new``
    (with the family's record key ``rk``: the cell-key fields' too, as the sink has them).

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
                if rk is not None:
                    k = (scope, key_field(name))
                    out[k] = out.get(k, 0) + sign * value * rk
    return {k: v for k, v in out.items() if v}


# --------------------------------------------------------------------------- in-process


@dataclass
class Pipeline:
    """All three stages in one process, with dict state: the demo and the tests.

    ``contributions`` holds each family's current contribution; :meth:`aggregates`
    sums them. ``on_contribution(family, old, new)`` is called for every change, so a
    sink can apply :func:`delta`. ``history`` (:class:`models.history.History`) holds
    every day; ``on_history(family, since, segments)`` is called for every rewrite.
    ``assign(state) -> (type id, group)`` (e.g.
    :func:`models.family_types.family_assignment`) gives each family its type and
    service-need group; ``assign_many(states) -> [(type id, group), ...]`` the same for
    all the families of a refresh at once (:func:`models.family_types.family_assignments`:
    one matrix product, as the worker's writer assigns a batch); ``group(state) ->
    group`` alone, the group without a type.
    """

    profile: Callable[[dict], dict] | None = None
    copies: bool = False  # the rows the impact outcome reads, to the families
    group: Callable[[dict], int | None] | None = None
    assign: Callable[[dict], tuple[int | None, int | None]] | None = None
    assign_many: Callable[[list[dict]], list[tuple[int | None, int | None]]] | None = None
    dedup_step: Step = field(default_factory=Dedup)
    on_contribution: Callable[[str, Contribution | None, Contribution | None], None] | None = None
    on_history: Callable[[str, int, list[list]], None] | None = None
    watermark: str = "0001-01-01"
    first_day: str | None = None
    dedup: dict = field(default_factory=dict)
    persons: dict = field(default_factory=dict)
    families: dict = field(default_factory=dict)
    contributions: dict = field(default_factory=dict)
    due: dict = field(default_factory=dict)  # {family: the day its present next changes}
    due_heap: list = field(default_factory=list, repr=False)  # (day, family), some stale
    history: History | None = field(default_factory=History)  # None: only on_history
    groups: dict = field(default_factory=dict)  # the group each family's history holds

    def process(self, event: dict) -> None:
        """Process one validated, pseudonymised event (then sweep the due families)."""
        self.process_many([event])

    def process_many(self, events: Iterable[dict]) -> None:
        touched: dict[str, int | None] = {}
        for event in events:
            self.watermark = max(self.watermark, event["occurred_at"])
            self.first_day = min(self.first_day or event["occurred_at"], event["occurred_at"])
            k = route_key(event)
            self.dedup[k], outs = self.dedup_step(self.dedup.get(k), k, event)
            for _, okey, msg in outs:
                self._route(okey, msg, touched)
        self.refresh(since=touched)

    def _route(self, okey: str, msg: dict, touched: dict[str, int | None]) -> None:
        if msg["kind"] in ("add", "retract"):
            self.persons[okey], outs = person_step(
                self.persons.get(okey), okey, msg, self.profile, self.copies
            )
        else:
            self.families[okey], outs = family_step(self.families.get(okey), okey, msg)
        for stage, key, out in outs:
            if stage == "history":
                touched[key] = earliest(touched.get(key), out["since"])
            else:
                self._route(key, out, touched)

    def refresh(
        self, families: Iterable[str] = (), since: dict[str, int | None] | None = None
    ) -> None:
        """Rewrite the given families, those of ``since`` (``{family: day}``: their
        history from that day on) and every family whose due day has come."""
        since_of = since or {}
        w = day(self.watermark)
        todo = sorted(set(families) | set(since_of) | self.due_by(w))
        states = [self.families[fam] for fam in todo]
        for fam, state, (t, g) in zip(todo, states, self._assigned(states), strict=True):
            segments = None
            if rewrite := history_rewrite(state, since_of.get(fam), g, self.groups.get(fam)):
                start, segments = rewrite
                if self.history is not None:
                    self.history.write(fam, start, segments)
                self.groups[fam] = g
                if self.on_history is not None:
                    self.on_history(fam, start, segments)
            new = contribution(state, self.watermark, g, segments, t)
            old = self.contributions.get(fam)
            was = self.due.pop(fam, None)
            if new is not None and new["due"] is not None:
                self.due[fam] = new["due"]
                if new["due"] != was or was <= w:  # else its entry is still in the heap
                    heapq.heappush(self.due_heap, (new["due"], fam))
            if new != old:
                if new is None:
                    self.contributions.pop(fam, None)
                else:
                    self.contributions[fam] = new
                if self.on_contribution is not None:
                    self.on_contribution(fam, old, new)

    def due_by(self, w: int) -> set[str]:
        """The families whose due day is ``w`` or before, taken off the heap: the cost is
        theirs, not every family's (a scan of :attr:`due` on every batch was 2 % of the
        in-process steps at 20,000 families and grew with them)."""
        out, heap = set(), self.due_heap
        while heap and heap[0][0] <= w:
            d, fam = heapq.heappop(heap)
            if self.due.get(fam) == d:
                out.add(fam)
        return out

    def _assigned(self, states: list[dict]) -> list[tuple[int | None, int | None]]:
        """(type id, group) of each family state, each None where nothing assigns it."""
        if self.assign_many is not None:
            return self.assign_many(states) if states else []
        if self.assign is not None:
            return [self.assign(state) for state in states]
        if self.group is not None:
            return [(None, self.group(state)) for state in states]
        return [(None, None)] * len(states)

    def aggregates(self, keys: bool = False) -> dict[str, dict[str, int]]:
        """``{scope: {field: count}}`` over all current contributions (non-zero only;
        with ``keys``, the cell-key fields too)."""
        out: dict[str, dict[str, int]] = {}
        for fam, contrib in self.contributions.items():
            rk = record_key(fam) if keys else None
            for (scope, name), v in delta(None, contrib, rk).items():
                bucket = out.setdefault(scope, {})
                bucket[name] = bucket.get(name, 0) + v
        return out

    def aggregates_on(self, on: str, keys: bool = False) -> dict[str, dict[str, int]]:
        """:meth:`aggregates` as the history has them on day ``on`` (non-empty scopes)."""
        if self.history is None:
            raise ValueError("this pipeline keeps no history in memory")
        d = day(on)
        found = {scope: self.history.on(scope, d, keys) for scope in self.history.scopes()}
        return {scope: counts for scope, counts in found.items() if counts}
