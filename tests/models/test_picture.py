"""The pure stream steps: semantics, and order independence as a property."""

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from models import picture
from models.picture import Pipeline, contribution, delta, summarize_person


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


def test_member_added_tie_broken_by_recorded_at_then_event_id():
    s = summarize_person(
        [
            added("b", "p", "f1", "parent", "1990-01-01", "2025-01-01", "2025-01-03"),
            added("a", "p", "f2", "parent", "1990-01-01", "2025-01-01", "2025-01-02"),
        ]
    )
    assert s["family"] == "f1"
    s = summarize_person(
        [
            added("b", "p", "f1", "parent", "1990-01-01"),
            added("a", "p", "f2", "parent", "1990-01-01"),
        ]
    )
    assert s["family"] == "f1"


def test_member_removed_only_counts_when_later_and_same_family():
    a = added("a", "p", "f1", "parent", "1990-01-01", "2025-01-05")
    assert (
        summarize_person(
            [a, ev("r", "family.member_removed", {"family": "f1"}, "2025-01-06", "p")]
        )["family"]
        is None
    )
    assert (
        summarize_person(
            [a, ev("r", "family.member_removed", {"family": "f1"}, "2025-01-04", "p")]
        )["family"]
        == "f1"
    )
    assert (
        summarize_person(
            [a, ev("r", "family.member_removed", {"family": "f9"}, "2025-01-06", "p")]
        )["family"]
        == "f1"
    )


def test_episode_active_whatever_the_order_and_kind_from_start():
    start = ev(
        "s", "benefit.started", {"benefit": "basic_social_assistance", "episode": "e"}, "2025-01-01"
    )
    end = ev(
        "e", "benefit.ended", {"benefit": "basic_social_assistance", "episode": "e"}, "2025-02-01"
    )
    assert summarize_person([start])["active"] == ["benefit:basic_social_assistance"]
    assert summarize_person([end, start])["active"] == []
    assert summarize_person([end])["active"] == []


def test_child_turns_18_as_watermark_passes_birthday():
    state = {
        "residence": {"r": home("r", "f", "33100", "837")},
        "members": {
            "k": {
                "role": "child",
                "birth_date": "2008-02-29",
                "status": None,
                "active": [],
                "cw_notifications": [],
                "mh_visits": [],
            }
        },
    }
    assert contribution(state, "2026-02-27")["counts"]["children"] == 1
    assert contribution(state, "2026-02-27")["due"] == picture.day("2026-02-28")
    assert contribution(state, "2026-02-28") is None


def test_window_edges():
    member = {
        "role": "child",
        "birth_date": "2015-01-01",
        "status": None,
        "active": [],
        "cw_notifications": ["2026-05-01", "2026-05-02", "2026-05-31"],
        "mh_visits": [],
    }
    state = {"residence": {"r": home("r", "f", "33100", "837")}, "members": {"k": member}}
    c = contribution(state, "2026-05-31")  # window (2026-05-01, 2026-05-31]
    assert c["counts"]["child_welfare_notifications_30d"] == 2
    assert c["due"] == picture.day("2026-06-01")


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
    assert outs == [("person", "kid", {"kind": "retract", "event_id": "n1"})]
    assert picture.dedup_step(retracted, picture.route_key(retract), retract)[0] is retracted
    assert picture.dedup_step(retracted, picture.route_key(note), note)[1] == outs


def test_dedup_reads_the_older_dict_state_of_an_older_changelog():
    note = ev("n1", "child_welfare.notification", {}, "2025-01-10", "kid")
    retract = ev("x1", "event.retracted", {"event_id": "n1"}, "2025-01-11", None)
    old = {"owner": ["person", "kid"], "retractions": ["x1"]}
    new, outs = picture.dedup_step(old, picture.route_key(note), note)
    assert outs == [("person", "kid", {"kind": "retract", "event_id": "n1"})]
    assert new == picture.dedup_step(picture.dedup_step(None, "n1", note)[0], "n1", retract)[0]
    early = {"owner": None, "retractions": ["x1"]}
    assert picture.dedup_step(early, picture.route_key(note), note)[1] == outs


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


def test_replaying_everything_again_changes_nothing():
    rnd = random.Random(1)
    events = [*BASE, ev("n", "child_welfare.notification", {}, "2025-01-20", "kid")]
    pipe = run(events)
    before = pipe.aggregates()
    for e in rnd.sample(events, len(events)):
        pipe.process(e)
    assert pipe.aggregates() == before
