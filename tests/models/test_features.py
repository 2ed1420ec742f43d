"""Features depend only on the person's own events; the vector has the documented features."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from models.features import (
    BASE_FEATURES,
    DOMAINS,
    FEATURE_NAMES,
    FEATURES,
    family_vector,
    need_index,
    person_profile,
    state_vector,
)


def ev(i, typ, occurred, data=None, person="p1", source="x"):
    return {
        "event_id": f"{person}-{i}",
        "source": source,
        "type": typ,
        "occurred_at": occurred,
        "recorded_at": f"{occurred}T08:00:00.000000Z",
        "person": person,
        "data": data or {},
    }


def person_events(person="p1"):
    evs = [
        ev(
            0,
            "family.member_added",
            "2024-01-02",
            {"family": "f", "role": "parent", "birth_date": "1990-01-01"},
            person,
        ),
        ev(1, "employment.status_changed", "2025-01-01", {"status": "employed"}, person),
        ev(2, "employment.status_changed", "2026-02-01", {"status": "unemployed"}, person),
        ev(
            3,
            "benefit.started",
            "2026-02-03",
            {"benefit": "unemployment_benefit", "episode": "u1"},
            person,
        ),
        ev(
            4,
            "benefit.ended",
            "2026-01-01",
            {"benefit": "housing_allowance", "episode": "h1"},
            person,
        ),
        ev(
            5,
            "benefit.started",
            "2025-06-01",
            {"benefit": "housing_allowance", "episode": "h1"},
            person,
        ),
        ev(6, "education.completed", "2010-06-01", {"level": "vocational"}, person),
        ev(7, "education.completed", "2015-06-01", {"level": "bachelor"}, person),
        ev(8, "health.visit", "2026-01-15", {"service": "mental_health"}, person),
        ev(9, "health.visit", "2024-01-15", {"service": "mental_health"}, person),  # outside 365 d
        ev(10, "care.episode", "2025-11-01", {"service": "psychiatric", "days": 5}, person),
        ev(
            11,
            "social_service.started",
            "2026-01-05",
            {"service": "family_work", "episode": "s1"},
            person,
        ),
    ]
    for k, m in enumerate(["2025-10", "2025-11", "2026-01"]):
        evs.append(
            ev(20 + k, "income.reported", f"{m}-28", {"month": m, "gross_eur": 2400.0}, person)
        )
    return evs


def test_profile_values():
    p = person_profile(person_events())
    assert p["st_unemployed"] == 1.0 and "st_employed" not in p
    # window: 730 days up to 2026-02-03 -> 2024-02-05 .. 2026-02-03
    assert p["ds_employed"] == 0.54 and "ds_unemployed" not in p  # 3 days round to 0
    assert "d_unemployment_benefit" not in p  # one day of 730 rounds to 0: left out
    assert p["n_unemployment_benefit"] == 1.0
    assert p["d_housing_allowance"] == round(214 / 730, 2)  # 2025-06-01 .. 2026-01-01
    assert p["n_housing_allowance"] == 1.0
    assert p["edu"] == 3.0
    assert p["v_mental_health"] == 1.0  # the 2024-01-15 visit is outside the person's 730 days
    assert p["c_psychiatric"] == 1.0 and p["cd"] == 5.0
    assert p["n_family_work"] == 1.0 and p["d_family_work"] == round(30 / 730, 2)
    assert p["inc"] == 300.0 and p["inc_mo"] == 3.0  # 3 x 2400 / 24
    assert p["t"] == (2026 - 1970) * 12 + 1  # Feb 2026
    assert all(isinstance(v, float) for v in p.values())


@settings(max_examples=50, deadline=None)
@given(st.permutations(person_events()), st.lists(st.integers(0, 14), max_size=5))
def test_profile_is_order_and_duplicate_independent(perm, dups):
    base = person_profile(person_events())
    evs = list(perm) + [person_events()[i] for i in dups]
    assert person_profile(evs) == base


def test_profile_ignores_unrelated_person_and_clock():
    own = person_events("p1")
    other = [e for e in person_events("p2")]  # another person's events are not ours
    # the profile function never sees other persons' events; the stream step passes only
    # the person's own set. Adding another person's *later* events elsewhere (which moves
    # the global watermark) cannot change p1's profile: no global state is read.
    before = person_profile(own)
    for e in other:
        e["occurred_at"] = "2027-06-01"
    person_profile(other)
    assert person_profile(own) == before


def test_empty_profile():
    assert person_profile([]) == {}


def members():
    return [
        {
            "role": "parent",
            "birth_date": "1990-01-01",
            "profile": person_profile(person_events("p1")),
        },
        {
            "role": "child",
            "birth_date": "2015-03-01",
            "profile": {
                "t": 670.0,
                "sup": 2.0,
                "cwn": 2.0,
                "d_cw_client": 0.5,
                "v_mental_health": 3.0,
            },
        },
        {"role": "child", "birth_date": "2022-07-01", "profile": {"t": 660.0, "d_ecec": 1.0}},
        {
            "role": "child",
            "birth_date": "2000-01-01",
            "profile": {"t": 600.0, "cwn": 5.0},
        },  # adult child
    ]


def test_vector_has_documented_features():
    residence = [
        {
            "event_id": "r1",
            "occurred_at": "2020-01-01",
            "recorded_at": "2020-01-02T00:00:00.000000Z",
            "data": {"postcode": "01300", "municipality": "092"},
        },
        {
            "event_id": "r2",
            "occurred_at": "2025-05-01",
            "recorded_at": "2025-05-02T00:00:00.000000Z",
            "data": {"postcode": "33100", "municipality": "837"},
        },
    ]
    v = family_vector(members(), residence)
    assert list(v) == list(FEATURE_NAMES) == [*BASE_FEATURES, "need_index"]
    assert len(FEATURES) == 29
    assert {f.domain for f in FEATURES} == (set(DOMAINS) - {"political voice"}) | {
        "all (composite)"
    }
    assert all(f.sources and f.definition for f in FEATURES)
    assert v["single_parent"] == 1.0
    assert v["n_children"] == 2.0  # the adult child does not count
    assert v["youngest_child_age"] == 3.0
    assert v["school_support"] == 2.0
    assert (
        v["cw_client"] == 0.5 and v["cw_notifications"] == 2.0
    )  # adult child's notifications not counted
    assert v["child_mental_health_visits"] == 3.0 and v["parent_mental_health_visits"] == 1.0
    assert v["parents_employed_share"] == 0.54
    assert v["family_work_episodes"] == 1.0
    assert v["area_unemployment_rate"] == 7.02  # the latest residence: Tampere
    assert v["moves"] == 1.0  # one residence change in the 24 months up to 2026-02
    assert v["income_per_cu"] == round(0.3 / (1 + 0.3 + 0.3), 2)
    assert v["need_index"] == round(need_index(v), 2)


def test_state_vector_matches_family_vector():
    m = members()
    mem = {
        f"p{i}": {"m": [[738000, x["role"], x["birth_date"]]], "profile": x["profile"]}
        for i, x in enumerate(m)
    }
    mem["gone"] = {"m": [[737000, "parent", "1980-01-01"], [738000, None, None]]}
    assert state_vector({"res": [], "mem": mem}) == family_vector(m, None)
    assert state_vector({"res": [], "mem": {}}) is None


def test_vector_is_member_order_independent_and_pure():
    m = members()
    v = family_vector(m, None)
    rng = random.Random(1)
    for _ in range(5):
        rng.shuffle(m)
        assert family_vector(m, None) == v


def test_vector_empty_family():
    v = family_vector([], None)
    assert list(v) == list(FEATURE_NAMES)
