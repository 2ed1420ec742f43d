"""The pure stream steps: semantics, and order independence as a property."""

import json
import random
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

from models import family, person, picture
from models.picture import Pipeline, contribution, delta
from models.profile import state_profile


def ev(eid, type_, data, occurred, person="p1", recorded=None):
    return {
        "event_id": eid,
        "source": "x",
        "type": type_,
        "occurred_at": occurred,
        "recorded_at": (recorded or occurred) + "T12:00:00.000000Z",
        "person": person,
        "data": data,
    }


def added(eid, person, family, role, born, occurred="2025-01-01", recorded=None):
    return ev(
        eid,
        "family.member_added",
        {"family": family, "role": role, "birth_date": born},
        occurred,
        person,
        recorded,
    )


def home(eid, family, postcode, muni, occurred="2025-01-01"):
    return ev(
        eid,
        "family.residence_changed",
        {"family": family, "postcode": postcode, "municipality": muni},
        occurred,
        None,
    )


BASE = [
    added("m1", "mum", "f1", "parent", "1990-01-01"),
    added("m2", "kid", "f1", "child", "2015-06-01"),
    home("r1", "f1", "33100", "837"),
]


def run(events):
    pipe = Pipeline()
    for e in events:
        pipe.process(e)
    return pipe


def test_basic_family_is_counted_once():
    pipe = run(BASE)
    agg = pipe.aggregates()
    assert agg["all"]["families"] == 1 and agg["a:33100"]["children"] == 1
    assert agg["m:837"]["single_parent_families"] == 1


def test_a_family_is_refreshed_on_its_due_day_by_others_events():
    """W moved on by another family's events: the first family's notification leaves
    its 30 days, and its child turns 18, each on its due day (Pipeline.due_by)."""
    events = [
        *BASE,
        added("k2", "teen", "f1", "child", "2007-03-10"),
        ev("n", "child_welfare.notification", {}, "2025-01-20", "kid"),
        *[
            added(f"o{i}", f"other{i}", f"f{i + 2}", "parent", "1980-01-01", occurred=on)
            for i, on in enumerate(["2025-02-10", "2025-02-18", "2025-02-19", "2025-03-11"])
        ],
    ]
    pipe = run(events[:-4])
    seen = []
    for e in events[-4:]:
        pipe.process(e)
        counts = pipe.contributions["f1"]["counts"]
        seen.append((counts["child_welfare_notifications_30d"], counts["children"]))
    assert seen == [(1, 2), (1, 2), (0, 2), (0, 1)]


def person_of(events):
    """The person state of ``events`` (one person), in the given order."""
    state = person.new_state()
    for e in events:
        person.add(state, e)
    return state


def family_now(events) -> str | None:
    mem = person_of(events)["cp"]["mem"]
    return mem[-1][1] if mem else None


def test_member_added_tie_broken_by_recorded_at_then_event_id():
    later_recorded = [
        added("b", "p", "f1", "parent", "1990-01-01", "2025-01-01", "2025-01-03"),
        added("a", "p", "f2", "parent", "1990-01-01", "2025-01-01", "2025-01-02"),
    ]
    assert family_now(later_recorded) == family_now(later_recorded[::-1]) == "f1"
    same = [
        added("b", "p", "f1", "parent", "1990-01-01"),
        added("a", "p", "f2", "parent", "1990-01-01"),
    ]
    assert family_now(same) == family_now(same[::-1]) == "f1"


def test_member_removed_only_counts_when_later_and_same_family():
    a = added("a", "p", "f1", "parent", "1990-01-01", "2025-01-05")
    removed = ev("r", "family.member_removed", {"family": "f1"}, "2025-01-06", "p")
    assert family_now([a, removed]) is None
    assert family_now([removed, a]) is None
    # ...but the person was in f1 on 2025-01-05: the history keeps that day
    assert person_of([a, removed])["cp"]["mem"] == [
        [picture.day("2025-01-05"), "f1", "parent", "1990-01-01"],
        [picture.day("2025-01-06"), None, None, None],
    ]
    earlier = ev("r", "family.member_removed", {"family": "f1"}, "2025-01-04", "p")
    assert family_now([a, earlier]) == "f1"
    other = ev("r", "family.member_removed", {"family": "f9"}, "2025-01-06", "p")
    assert family_now([a, other]) == "f1"


def test_episode_active_whatever_the_order_and_kind_from_start():
    data = {"benefit": "basic_social_assistance", "episode": "e"}
    start = ev("s", "benefit.started", data, "2025-01-01")
    end = ev("e", "benefit.ended", data, "2025-02-01")
    jan, feb = picture.day("2025-01-01"), picture.day("2025-02-01")
    assert person_of([start])["cp"]["sa"] == [[jan, 1]]
    assert person_of([end, start])["cp"]["sa"] == [[jan, 1], [feb, 0]]
    assert person_of([end])["cp"]["sa"] == []
    other = ev(
        "s", "benefit.started", {"benefit": "housing_allowance", "episode": "e"}, "2025-01-01"
    )
    assert person_of([other])["cp"]["sa"] == []


def test_child_turns_18_as_watermark_passes_birthday():
    pipe = run(
        [
            added("a", "k", "f", "child", "2008-02-29", "2026-01-01"),
            home("r", "f", "33100", "837", "2026-01-01"),
            ev("x", "health.visit", {"service": "dental"}, "2026-02-27", "k"),
        ]
    )
    state = pipe.families["f"]
    assert contribution(state, "2026-02-27")["counts"]["children"] == 1
    assert contribution(state, "2026-02-27")["due"] == picture.day("2026-02-28")
    assert contribution(state, "2026-02-28") is None


def test_window_edges():
    notes = [
        ev(f"n{i}", "child_welfare.notification", {}, d, "k")
        for i, d in enumerate(["2026-05-01", "2026-05-02", "2026-05-31"])
    ]
    pipe = run(
        [
            added("a", "k", "f", "child", "2015-01-01", "2026-01-01"),
            home("r", "f", "33100", "837"),
            *notes,
        ]
    )
    c = contribution(pipe.families["f"], "2026-05-31")  # window (2026-05-01, 2026-05-31]
    assert c["counts"]["child_welfare_notifications_30d"] == 2
    assert c["due"] == picture.day("2026-06-01")
    assert pipe.aggregates_on("2026-05-01")["all"]["child_welfare_notifications_30d"] == 1
    assert pipe.aggregates_on("2026-05-31")["all"]["child_welfare_notifications_30d"] == 2


def test_move_out_of_the_six_removes_the_family():
    pipe = run([*BASE, home("r2", "f1", "00100", "091", "2025-02-01")])
    assert pipe.aggregates() == {}


def test_retraction_before_and_after_target():
    note = ev("n1", "child_welfare.notification", {}, "2025-01-10", "kid")
    retract = ev("x1", "event.retracted", {"event_id": "n1"}, "2025-01-11", None)
    for order in ([*BASE, note, retract], [retract, *BASE, note], [note, retract, *BASE]):
        agg = run(order).aggregates()
        assert agg["all"].get("child_welfare_notifications_30d", 0) == 0
    assert run([*BASE, note]).aggregates()["all"]["child_welfare_notifications_30d"] == 1


def test_retraction_of_a_retraction_has_no_effect():
    note = ev("n1", "child_welfare.notification", {}, "2025-01-10", "kid")
    r1 = ev("x1", "event.retracted", {"event_id": "n1"}, "2025-01-11", None)
    r2 = ev("x2", "event.retracted", {"event_id": "x1"}, "2025-01-12", None)
    agg = run([*BASE, note, r1, r2]).aggregates()
    assert agg["all"].get("child_welfare_notifications_30d", 0) == 0


def test_dedup_state_is_invisible_to_the_garbage_collector_and_written_only_on_change():
    import gc

    note = ev("n1", "child_welfare.notification", {}, "2025-01-10", "kid")
    retract = ev("x1", "event.retracted", {"event_id": "n1"}, "2025-01-11", None)
    state, outs = picture.dedup_step(None, "n1", note)
    # millions of these live for ever: a tracked container each makes full collections slow
    assert not gc.is_tracked(state)
    assert outs == [("person", "kid", {"kind": "add", "event": note})]
    again, outs = picture.dedup_step(state, picture.route_key(note), note)
    assert again is state and outs == [("person", "kid", {"kind": "add", "event": note})]
    retracted, outs = picture.dedup_step(state, picture.route_key(retract), retract)
    assert not gc.is_tracked(retracted)
    where = person.locate(note)
    assert outs == [("person", "kid", {"kind": "retract", "event_id": "n1", "where": where})]
    assert picture.dedup_step(retracted, picture.route_key(retract), retract)[0] is retracted
    assert picture.dedup_step(retracted, picture.route_key(note), note)[1] == outs


def test_dedup_reads_the_older_states_of_an_older_changelog():
    note = ev("n1", "child_welfare.notification", {}, "2025-01-10", "kid")
    retract = ev("x1", "event.retracted", {"event_id": "n1"}, "2025-01-11", None)
    where = person.locate(note)
    current = picture.dedup_step(picture.dedup_step(None, "n1", note)[0], "n1", retract)[0]
    # the dict form, and the list form before the row's location was kept
    for old in ({"owner": ["person", "kid"], "retractions": ["x1"]}, '["person","kid","x1"]'):
        new, outs = picture.dedup_step(old, picture.route_key(note), note)
        assert outs == [("person", "kid", {"kind": "retract", "event_id": "n1", "where": where})]
        assert new == current
        # a retraction of an event seen under the older form: no location to send
        _, outs = picture.dedup_step(old, picture.route_key(retract), retract)
        assert outs == [("person", "kid", {"kind": "retract", "event_id": "n1", "where": None})]
    early = {"owner": None, "retractions": ["x1"]}
    assert picture.dedup_step(early, picture.route_key(note), note)[1][0][2]["where"] == where


def test_a_retraction_without_a_location_finds_the_row_by_a_look_at_every_row():
    pipe = Pipeline()
    for e in BASE:
        pipe.process(e)
    note = ev("n1", "child_welfare.notification", {}, "2025-01-10", "kid")
    pipe.process(note)
    with_note = pipe.aggregates()
    state = pipe.persons["kid"]
    assert person.holding(state, "n1") == person.locate(note)
    msg = {"kind": "retract", "event_id": "n1", "where": None}
    state, outs = picture.person_step(state, "kid", msg)
    assert not state.get("cwn") and outs[0][2]["since"] == person.day("2025-01-10")
    assert person.holding(state, "n1") is None
    assert with_note != run(BASE).aggregates()  # the note counted, and now is gone:
    pipe.persons["kid"] = state
    for _, fam, out in outs:
        pipe.families[fam], _ = picture.family_step(pipe.families[fam], fam, out)
    pipe.refresh(since={"f1": person.day("2025-01-10")})
    assert pipe.aggregates() == run(BASE).aggregates()


def test_events_before_membership_count_once_it_arrives():
    note = ev("n1", "child_welfare.notification", {}, "2025-01-10", "kid")
    agg = run([note, *BASE]).aggregates()
    assert agg["all"]["child_welfare_notifications_30d"] == 1


def test_delta_round_trip():
    a = {"area": "1", "municipality": "837", "counts": {"families": 1, "children": 2}}
    assert delta(a, a) == {}
    assert delta(None, a)[("all", "children")] == 2 and delta(a, None)[("a:1", "families")] == -1


# ------------------------------------------------------------------ property

PERSONS = ["p1", "p2", "p3", "p4", "p5"]
FAMILIES = ["f1", "f2"]
DAYS = [f"2026-0{m}-{d:02d}" for m in (1, 2, 3) for d in (1, 10, 20)]


@st.composite
def event_sets(draw):
    n = draw(st.integers(3, 25))
    events = []
    for i in range(n):
        kind = draw(
            st.sampled_from(
                ["add", "add", "remove", "home", "note", "mh", "status", "benefit", "cw"]
            )
        )
        person = draw(st.sampled_from(PERSONS))
        fam = draw(st.sampled_from(FAMILIES))
        occurred = draw(st.sampled_from(DAYS))
        eid = f"e{i}"
        if kind == "add":
            role = draw(st.sampled_from(["parent", "child"]))
            born = draw(st.sampled_from(["1985-01-01", "2008-02-29", "2008-03-15", "2015-05-05"]))
            events.append(
                added(eid, person, fam, role, born, occurred, draw(st.sampled_from(DAYS[-3:])))
            )
        elif kind == "remove":
            events.append(ev(eid, "family.member_removed", {"family": fam}, occurred, person))
        elif kind == "home":
            pc, muni = draw(st.sampled_from([("33100", "837"), ("01300", "092"), ("00100", "091")]))
            events.append(home(eid, fam, pc, muni, occurred))
        elif kind == "note":
            events.append(ev(eid, "child_welfare.notification", {}, occurred, person))
        elif kind == "mh":
            events.append(ev(eid, "health.visit", {"service": "mental_health"}, occurred, person))
        elif kind == "status":
            events.append(
                ev(
                    eid,
                    "employment.status_changed",
                    {"status": draw(st.sampled_from(["employed", "unemployed"]))},
                    occurred,
                    person,
                )
            )
        else:
            stem = "benefit" if kind == "benefit" else "child_welfare.client"
            suffix = draw(st.sampled_from(["started", "ended"]))
            t = f"{stem}.{suffix}" if stem == "benefit" else f"{stem}_{suffix}"
            data = {"episode": draw(st.sampled_from(["a", "b"]))}
            if stem == "benefit":
                data["benefit"] = "basic_social_assistance"
            events.append(ev(eid, t, data, occurred, person))
    targets = [e["event_id"] for e in events]
    for j in range(draw(st.integers(0, 3))):
        events.append(
            ev(
                f"x{j}",
                "event.retracted",
                {"event_id": draw(st.sampled_from(targets + ["x0"]))},
                draw(st.sampled_from(DAYS)),
                None,
            )
        )
    return events


@settings(max_examples=150, deadline=None)
@given(event_sets(), st.randoms(use_true_random=False), st.integers(0, 4))
def test_any_order_with_duplicates_gives_the_same_picture(events, rnd, dups):
    reference = run(events).aggregates()
    shuffled = list(events) + [rnd.choice(events) for _ in range(dups)]
    rnd.shuffle(shuffled)
    pipe = Pipeline()
    # Mixed batch sizes: the due-sweep must not depend on how events are grouped.
    i = 0
    while i < len(shuffled):
        k = rnd.randint(1, 4)
        pipe.process_many(shuffled[i : i + k])
        i += k
    assert pipe.aggregates() == reference
    # every family's present as W has it, whether an event or its due day refreshed it
    # (the day it may next change aside: from the segments it can be a later one)
    fresh = {f: contribution(state, pipe.watermark) for f, state in pipe.families.items()}
    assert {f: {**c, "due": 0} for f, c in pipe.contributions.items()} == {
        f: {**c, "due": 0} for f, c in fresh.items() if c is not None
    }


@settings(max_examples=150, deadline=None)
@given(event_sets(), st.randoms(use_true_random=False), st.integers(0, 4))
def test_the_family_step_never_changes_the_state_it_is_given(events, rnd, dups):
    """The worker stores a batch's family states only once Redis has them, and the next
    batch steps from them meanwhile (streams/families.py::WriteBehind): a step that
    changed them through shared lists stored one with the next batch's rows and its own,
    now stale, memo of the present (a fault drill's present off by two families). With
    the profiles and the impact outcome's rows, the memo of the present on W as the
    pipeline refreshes it, duplicates and any order."""
    step = picture.family_step

    def checked(state, key, msg):
        before = json.dumps(state, sort_keys=True)
        out = step(state, key, msg)
        assert json.dumps(state, sort_keys=True) == before, msg
        return out

    shuffled = list(events) + [rnd.choice(events) for _ in range(dups)]
    rnd.shuffle(shuffled)
    pipe = Pipeline(profile=state_profile, copies=True)
    with mock.patch.object(picture, "family_step", checked):
        for i in range(0, len(shuffled), 3):
            pipe.process_many(shuffled[i : i + 3])
    assert pipe.aggregates() == run(events).aggregates()


def test_a_state_stepped_from_keeps_its_memo_of_the_present_true():
    """The drill's case: a family whose present is memoised on W moves; the state it
    moved from still says where it lived."""
    pipe = run(
        [*BASE, ev("w", "income.reported", {"month": "2025-03", "gross_eur": 1}, "2025-03-01")]
    )
    before = pipe.families["f1"]
    assert contribution(before, pipe.watermark)["area"] == "33100"  # memoised in "pv"
    after, _ = picture.family_step(
        before, "f1", {"kind": "residence", "event": home("r2", "f1", "01300", "092", "2025-02-01")}
    )
    assert contribution(after, pipe.watermark)["area"] == "01300"
    assert contribution(before, pipe.watermark)["area"] == "33100"
    assert family.value(before, person.day(pipe.watermark))[0] == "33100"


def test_replaying_everything_again_changes_nothing():
    rnd = random.Random(1)
    events = [*BASE, ev("n", "child_welfare.notification", {}, "2025-01-20", "kid")]
    pipe = run(events)
    before = pipe.aggregates()
    for e in rnd.sample(events, len(events)):
        pipe.process(e)
    assert pipe.aggregates() == before


# ------------------------------------------------------------------ history


def as_of_subset(events, on):
    """The accepted, non-retracted events up to ``on``, with W pinned to ``on`` by an
    event that changes no picture (an income of a person in no family)."""
    by_id = {e["event_id"]: e for e in events}
    retracted = {
        e["data"]["event_id"]
        for e in events
        if e["type"] == "event.retracted"
        and by_id.get(e["data"]["event_id"], {}).get("type") != "event.retracted"
    }
    kept = [
        e
        for e in events
        if e["type"] != "event.retracted"
        and e["event_id"] not in retracted
        and e["occurred_at"] <= on
    ]
    pin = ev("pin", "income.reported", {"month": on[:7], "gross_eur": 1}, on, "nobody")
    return [*kept, pin]


@settings(max_examples=150, deadline=None)
@given(event_sets(), st.randoms(use_true_random=False), st.integers(0, 4))
def test_history_on_every_day_is_the_picture_of_the_events_up_to_that_day(events, rnd, dups):
    shuffled = list(events) + [rnd.choice(events) for _ in range(dups)]
    rnd.shuffle(shuffled)
    pipe = Pipeline()
    i = 0
    while i < len(shuffled):
        k = rnd.randint(1, 4)
        pipe.process_many(shuffled[i : i + k])
        i += k
    days = sorted({e["occurred_at"] for e in events} | {"2026-04-15", "2026-05-30"})
    for on in days:
        if on > pipe.watermark:
            continue
        assert pipe.aggregates_on(on) == run(as_of_subset(events, on)).aggregates(), on
    assert pipe.aggregates_on(pipe.watermark) == pipe.aggregates()


def test_a_late_event_revises_the_days_from_its_date_on_only():
    pipe = run([*BASE, ev("n", "child_welfare.notification", {}, "2025-03-01", "kid")])
    before = {d: pipe.aggregates_on(d) for d in ("2025-01-20", "2025-02-01", "2025-02-15")}
    pipe.process(ev("late", "child_welfare.notification", {}, "2025-02-01", "kid"))
    assert pipe.aggregates_on("2025-01-20") == before["2025-01-20"]
    for d in ("2025-02-01", "2025-02-15"):
        assert pipe.aggregates_on(d)["all"]["child_welfare_notifications_30d"] == 1
    assert pipe.aggregates_on("2025-03-02")["all"]["child_welfare_notifications_30d"] == 2
    assert pipe.aggregates_on("2025-03-03")["all"]["child_welfare_notifications_30d"] == 1


def test_state_keeps_no_event_dicts():
    pipe = run([*BASE, ev("n", "child_welfare.notification", {"x": "y"}, "2025-03-01", "kid")])
    text = repr(pipe.persons) + repr(pipe.families)
    assert "child_welfare.notification" not in text and "occurred_at" not in text


def test_a_changed_state_is_a_new_object_and_an_unchanged_one_the_same():
    """Tables write a key only when the step returns another object (TableStep, Faust)."""
    note = ev("n", "child_welfare.notification", {}, "2025-03-01", "kid")
    state, _ = picture.person_step(None, "kid", {"kind": "add", "event": note})
    again, outs = picture.person_step(state, "kid", {"kind": "add", "event": note})
    assert again is state
    changed, _ = picture.person_step(
        state, "kid", {"kind": "add", "event": {**note, "event_id": "n2"}}
    )
    assert changed is not state
    fam, _ = picture.family_step(None, "f", {"kind": "residence", "event": BASE[2]})
    assert picture.family_step(fam, "f", {"kind": "residence", "event": BASE[2]})[0] is not fam


def test_the_family_type_is_counted_beside_the_group_in_the_present_only():
    """With ``assign``, every contribution counts ``t<type>`` and ``g<group>``; the types
    add up to the families of every scope; a new assignment (fresh ids, as after a
    re-base) moves the type counts, leaving none of the old ids; the history keeps the
    groups and never a type."""
    families = {
        "f1": ("a1", "33100", "837"),
        "f2": ("a2", "33100", "837"),
        "f3": ("a3", "01300", "092"),
    }
    events = []
    for fam, (parent, pc, muni) in families.items():
        events += [
            added(f"{fam}m", parent, fam, "parent", "1990-01-01"),
            added(f"{fam}k", f"{parent}k", fam, "child", "2016-01-01"),
            home(f"{fam}r", fam, pc, muni),
        ]
    types = {"f1": 4, "f2": 4, "f3": 9}
    pipe = Pipeline(assign=lambda state: (types[_family_of(state)], 2))
    pipe.process_many(events)
    assert pipe.contributions["f1"]["counts"]["t4"] == 1
    assert pipe.contributions["f3"]["counts"]["g2"] == 1
    agg = pipe.aggregates()
    assert agg["all"]["t4"] == 2 and agg["all"]["t9"] == 1 and agg["a:33100"]["t4"] == 2
    for counts in agg.values():
        assert sum(v for k, v in counts.items() if k[0] == "t") == counts["families"]
    changed = []
    pipe.on_contribution = lambda fam, old, new: changed.append(fam)
    types.update(f1=104, f2=109, f3=109)
    pipe.refresh(list(pipe.contributions))
    assert sorted(changed) == ["f1", "f2", "f3"]
    agg = pipe.aggregates()
    assert {k: v for k, v in agg["all"].items() if k[0] == "t"} == {"t104": 1, "t109": 2}
    assert {k for k in agg["a:33100"] if k[0] == "t"} == {"t104", "t109"}
    day = picture.day(pipe.watermark)
    assert all(
        not k.startswith("t") for s in pipe.history.scopes() for k in pipe.history.on(s, day)
    )
    assert pipe.history.on("all", day)["g2"] == 3


def _family_of(state: dict) -> str:
    """The family of a test state: its residence event's id is ``<family>r``."""
    return state["res"][0][2].removesuffix("r")


def test_a_row_only_the_profile_reads_sends_no_tail_and_moves_only_the_profile():
    """An income (a profile-only row) sends ``tail: None``: the family keeps its copy of
    the member, takes the new profile and latest day, and reports no change of its
    function; a status change sends the tail. A family that does not know the person
    ignores a message without a tail."""
    from models import family
    from models.profile import state_profile

    pipe = Pipeline(profile=state_profile)
    for e in BASE:
        pipe.process(e)
    mum = pipe.persons["mum"]
    income = ev(
        "i1", "income.reported", {"month": "2025-01", "gross_eur": 2500.0}, "2025-02-05", "mum"
    )
    mum, outs = picture.person_step(mum, "mum", {"kind": "add", "event": income}, state_profile)
    [(_, fam, msg)] = outs
    assert fam == "f1" and msg["tail"] is None and msg["profile"]["inc_mo"] == 1.0
    state = {
        **pipe.families["f1"],
        "mem": {p: dict(m) for p, m in pipe.families["f1"]["mem"].items()},
    }
    lists = {k: v for k, v in state["mem"]["mum"].items() if k not in ("profile", "last")}
    assert family.apply(state, msg) is None
    entry = state["mem"]["mum"]
    assert entry["profile"] == msg["profile"] and entry["last"] == msg["last"]
    assert {k: v for k, v in entry.items() if k not in ("profile", "last")} == lists
    assert family.apply({"res": [], "mem": {}}, msg) is None  # unknown person: nothing kept

    job = ev("s1", "employment.status_changed", {"status": "unemployed"}, "2025-03-01", "mum")
    _, outs = picture.person_step(mum, "mum", {"kind": "add", "event": job}, state_profile)
    assert outs[0][2]["tail"]["s"] == [[person.day("2025-03-01"), "unemployed"]]
