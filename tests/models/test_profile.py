"""state_profile of the compact person state equals person_profile of the events, bit for bit."""

from __future__ import annotations

import copy
import datetime as dt
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from models import person
from models.features import person_profile
from models.person import EDUCATION_LEVEL, SUPPORT_LEVEL
from models.profile import OPEN, build_index, new_index, state_profile

DAY0 = dt.date(2020, 1, 1).toordinal()
SPAN = 6 * 365  # dates over ~6 years: most of them outside the 730-day window

BENEFITS = [
    "basic_social_assistance",
    "housing_allowance",
    "unemployment_benefit",
    "child_home_care_allowance",
    "disability_allowance",
    "sickness_allowance",
]
SERVICES = [
    "family_work",
    "home_service",
    "family_counselling",
    "multi_professional_support",
    "substance_abuse_services",
]
VISITS = [
    "primary_care",
    "maternity_clinic",
    "child_health_clinic",
    "school_health",
    "mental_health",
    "substance_abuse",
    "dental",
]
episode = st.sampled_from(["a", "b", "c", "d"])  # few ids: starts and ends collide
gross = st.one_of(
    st.floats(0, 10_000, allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, 0.1, 0.2, 0.3, 1e-9, 2400.0, 3012.005, 1e15]),
)

# type -> (source, data strategy): all ten sources.
DATA = {
    "family.member_added": (
        "dvv",
        st.fixed_dictionaries(
            {
                "family": st.sampled_from(["f1", "f2"]),
                "role": st.sampled_from(["parent", "child"]),
                "birth_date": st.just("2015-05-05"),
            }
        ),
    ),
    "family.member_removed": ("dvv", st.fixed_dictionaries({"family": st.sampled_from(["f1"])})),
    "benefit.started": (
        "kela",
        st.fixed_dictionaries({"benefit": st.sampled_from(BENEFITS), "episode": episode}),
    ),
    "benefit.ended": (
        "kela",
        st.fixed_dictionaries({"benefit": st.sampled_from(BENEFITS), "episode": episode}),
    ),
    "income.reported": ("incomes", None),  # months: see events()
    "employment.status_changed": (
        "employment",
        st.fixed_dictionaries(
            {
                "status": st.sampled_from(
                    ["employed", "unemployed", "student", "parental_leave", "outside_labour_force"]
                )
            }
        ),
    ),
    "education.completed": (
        "koski",
        st.fixed_dictionaries({"level": st.sampled_from(sorted(EDUCATION_LEVEL))}),
    ),
    "school.support_changed": (
        "koski",
        st.fixed_dictionaries({"level": st.sampled_from(sorted(SUPPORT_LEVEL))}),
    ),
    "ecec.started": ("varda", st.fixed_dictionaries({"episode": episode})),
    "ecec.ended": ("varda", st.fixed_dictionaries({"episode": episode})),
    "health.visit": ("avohilmo", st.fixed_dictionaries({"service": st.sampled_from(VISITS)})),
    "care.episode": (
        "hilmo",
        st.fixed_dictionaries(
            {
                "service": st.sampled_from(["somatic_specialist", "psychiatric", "emergency"]),
                "days": st.integers(0, 40),
            }
        ),
    ),
    "child_welfare.notification": ("child_welfare", st.just({})),
    "child_welfare.client_started": ("child_welfare", st.fixed_dictionaries({"episode": episode})),
    "child_welfare.client_ended": ("child_welfare", st.fixed_dictionaries({"episode": episode})),
    "child_welfare.placement_started": (
        "child_welfare",
        st.fixed_dictionaries({"episode": episode}),
    ),
    "child_welfare.placement_ended": (
        "child_welfare",
        st.fixed_dictionaries({"episode": episode}),
    ),
    "social_service.started": (
        "social_services",
        st.fixed_dictionaries({"service": st.sampled_from(SERVICES), "episode": episode}),
    ),
    "social_service.ended": (
        "social_services",
        st.fixed_dictionaries({"service": st.sampled_from(SERVICES), "episode": episode}),
    ),
}


@st.composite
def events(draw, max_size=40):
    """Days anywhere in the six years up to a drawn latest day ``top``, or on the edges of
    its window (``w0 = top - 729``: same-day ties too); income months anywhere in the six
    years, or on the edges of the 24 months up to a drawn month ``m``."""
    top = draw(st.integers(0, SPAN))
    edges = [top, top - 1, top - 728, top - 729, top - 730]
    offset = st.one_of(st.integers(0, top), st.integers(0, top), st.sampled_from(edges))
    m = draw(st.integers(0, 6 * 12))
    months = st.one_of(st.integers(0, m), st.sampled_from([m, m - 22, m - 23, m - 24]))
    income = st.fixed_dictionaries(
        {"month": months.map(lambda k: f"{2020 + k // 12}-{k % 12 + 1:02d}"), "gross_eur": gross}
    )
    out = []
    for i in range(draw(st.integers(0, max_size))):
        typ = draw(st.sampled_from(sorted(DATA)))
        source, data = DATA[typ]
        data = income if data is None else data
        on = dt.date.fromordinal(DAY0 + draw(offset)).isoformat()
        hour = draw(st.integers(0, 2))
        out.append(
            {
                "event_id": f"p-{i}",
                "source": source,
                "type": typ,
                "occurred_at": on,
                "recorded_at": f"{on}T{hour:02d}:00:00.000000Z",
                "person": "p",
                "data": draw(data),
            }
        )
    return out


@st.composite
def operations(draw):
    """Adds (with duplicates) and removes (also of absent ids) in random order."""
    evs = draw(events())
    ops = [("add", e) for e in evs]
    if evs:
        ops += [("add", e) for e in draw(st.lists(st.sampled_from(evs), max_size=6))]
        ops += [("remove", e["event_id"]) for e in draw(st.lists(st.sampled_from(evs), max_size=8))]
    ops.append(("remove", "absent"))
    return draw(st.permutations(ops))


def _run(ops):
    """The state after ``ops`` with its profile index (person.add keeps it) and a copy
    without (the scan path), and the events present at the end."""
    indexed = person.new_state()
    present: dict[str, dict] = {}
    for op, arg in ops:
        if op == "add":
            person.add(indexed, arg)
            present.setdefault(arg["event_id"], arg)
        else:
            person.remove(indexed, arg)
            present.pop(arg, None)
    plain = copy.deepcopy(indexed)
    plain.pop("px", None)
    return plain, indexed, list(present.values())


@settings(max_examples=300, deadline=None)
@given(operations())
def test_state_profile_is_person_profile(ops):
    plain, indexed, evs = _run(ops)
    expected = person_profile(evs)
    assert state_profile(plain) == expected  # the scan path (no index)
    assert state_profile(indexed) == expected  # the index path
    # The index kept on every change is the index made from scratch.
    kept = indexed.get("px", new_index())
    assert build_index(indexed) == kept
    # JSON round trip (the state lives in a changelogged table).
    assert state_profile(json.loads(json.dumps(indexed))) == expected


@settings(max_examples=100, deadline=None)
@given(events(max_size=60), st.randoms(use_true_random=False))
def test_insertion_order_does_not_matter(evs, rnd):
    a, b = person.new_state(), person.new_state()
    for e in evs:
        person.add(a, e)
    shuffled = list(evs)
    rnd.shuffle(shuffled)
    for e in shuffled:
        person.add(b, e)
    assert state_profile(a) == state_profile(b) == person_profile(evs)


def ev(i, typ, occurred, data):
    return {
        "event_id": f"e{i}",
        "source": "x",
        "type": typ,
        "occurred_at": occurred,
        "recorded_at": f"{occurred}T08:00:00.000000Z",
        "data": data,
    }


class _Reads(dict):
    """An episode dict that records which keys are read."""

    def __init__(self, *a):
        super().__init__(*a)
        self.read: set[str] = set()

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)


def test_index_holds_window_and_open_episodes_and_no_rows_are_read():
    evs, i = [], 0
    for y in range(2000, 2024):  # 24 old closed episodes, one open, one in the window
        evs += [ev(i, "ecec.started", f"{y}-01-01", {"episode": f"o{y}"})]
        evs += [ev(i + 1, "ecec.ended", f"{y}-06-01", {"episode": f"o{y}"})]
        i += 2
    evs += [
        ev(i, "benefit.started", "2001-01-01", {"benefit": "housing_allowance", "episode": "h"})
    ]
    evs += [ev(i + 1, "ecec.started", "2025-03-01", {"episode": "new"})]
    evs += [ev(i + 2, "ecec.ended", "2025-09-01", {"episode": "new"})]
    evs += [ev(i + 3, "health.visit", "2026-01-01", {"service": "dental"})]
    state = person.new_state()
    for e in evs:
        person.add(state, e)
    assert state["px"]["ep"][-2:] == [
        [person.day("2025-09-01"), "ecec|new", person.day("2025-03-01"), "ecec"],
        [OPEN, "benefit|h", person.day("2001-01-01"), "housing_allowance"],
    ]
    state["ep"] = _Reads(state["ep"])
    assert state_profile(state) == person_profile(evs)
    assert state["ep"].read == set()  # the index holds each episode's span and name


def test_window_edges():
    last = "2026-01-01"
    w0 = dt.date.fromordinal(person.day(last) - 729).isoformat()  # the window's first day
    before = dt.date.fromordinal(person.day(last) - 730).isoformat()
    evs = [
        ev(1, "ecec.started", w0, {"episode": "a"}),  # starts and ends on w0: n_, no d_
        ev(2, "ecec.ended", w0, {"episode": "a"}),
        ev(3, "benefit.started", "2020-01-01", {"benefit": "housing_allowance", "episode": "h"}),
        ev(4, "benefit.ended", w0, {"benefit": "housing_allowance", "episode": "h"}),
        ev(5, "health.visit", w0, {"service": "dental"}),
        ev(6, "health.visit", before, {"service": "dental"}),
        ev(7, "employment.status_changed", before, {"status": "student"}),
        ev(8, "employment.status_changed", w0, {"status": "employed"}),
        ev(9, "income.reported", last, {"month": "2025-12", "gross_eur": 240.0}),
        ev(10, "income.reported", last, {"month": "2024-01", "gross_eur": 240.0}),
        ev(11, "income.reported", last, {"month": "2023-12", "gross_eur": 240.0}),
    ]
    state = person.new_state()
    for e in evs:
        person.add(state, e)
    expected = person_profile(evs)
    assert expected["n_ecec"] == 1.0 and "d_ecec" not in expected
    assert expected["v_dental"] == 1.0 and expected["ds_employed"] == 1.0
    assert expected["inc_mo"] == 2.0 and expected["inc"] == 20.0
    assert state_profile(state) == expected
    del state["px"]
    assert state_profile(state) == expected


def test_levels_and_removal():
    evs = [
        ev(1, "education.completed", "2010-06-01", {"level": "master"}),
        ev(2, "education.completed", "2015-06-01", {"level": "basic"}),
        ev(3, "school.support_changed", "2016-06-01", {"level": "special"}),
    ]
    state = person.new_state()
    for e in evs:
        person.add(state, e)
    assert state_profile(state)["edu"] == 4.0 and state_profile(state)["sup"] == 3.0
    person.remove(state, "e1")
    person.remove(state, "e3")
    assert state_profile(state) == person_profile(evs[1:2]) == {"edu": 1.0, "t": 545.0}
    person.remove(state, "e2")
    assert state_profile(state) == {} == person_profile([])
    assert state["px"] == new_index()


def test_an_index_of_an_older_layout_is_read_as_absent_and_rebuilt():
    evs = [
        ev(1, "benefit.started", "2025-03-06", {"benefit": "housing_allowance", "episode": "h"}),
        ev(2, "ecec.started", "2025-05-01", {"episode": "e"}),
        ev(3, "ecec.ended", "2025-09-01", {"episode": "e"}),
    ]
    state = person.new_state()
    for e in evs[:2]:
        person.add(state, e)
    old = state["px"]
    del old["v"]  # as a state kept by the version before INDEX_VERSION 2 ...
    old["ep"] = [item[:2] for item in old["ep"]]  # ... held [until, key] per episode
    assert state_profile(state) == person_profile(evs[:2])  # the rows, not the stale index
    person.add(state, evs[2])
    assert state["px"]["v"] == person.INDEX_VERSION
    assert state["px"] == build_index(copy.deepcopy(state))
    assert state_profile(state) == person_profile(evs)


def test_a_retraction_on_an_index_of_the_float_income_layout_leaves_it_to_be_rebuilt():
    # INDEX_VERSION 2 kept each month's income as [month, float total]; a state stored by
    # it, then a retraction (which keeps the index, never rebuilds it) and an event.
    evs = [
        ev(1, "income.reported", "2025-02-05", {"month": "2025-01", "gross_eur": 1000.25}),
        ev(2, "income.reported", "2025-03-05", {"month": "2025-02", "gross_eur": 990.5}),
        ev(3, "income.reported", "2025-04-05", {"month": "2025-03", "gross_eur": 1010.0}),
    ]
    state = person.new_state()
    for e in evs[:2]:
        person.add(state, e)
    state["px"].update(v=2, im=[[m, c / 100] for m, c, _ in state["px"]["im"]], it=[1990.75, 2])
    person.remove(state, "e2")
    assert state_profile(state) == person_profile(evs[:1])
    person.add(state, evs[2])
    assert state["px"] == build_index(copy.deepcopy(state))
    assert state_profile(state) == person_profile([evs[0], evs[2]])


def test_person_levels_are_the_feature_levels():
    # state rows carry models.person's level numbers; the profile those of models.features
    px = new_index()
    assert len(px["edu"]) == max(EDUCATION_LEVEL.values()) + 1
    assert len(px["sup"]) == max(SUPPORT_LEVEL.values()) + 1


def _month_of(iso: str) -> int:
    return (int(iso[:4]) - 1970) * 12 + int(iso[5:7]) - 1


@settings(max_examples=200, deadline=None)
@given(operations(), st.integers(-30, SPAN + 30), st.sampled_from([730, 182, 91]))
def test_the_profile_on_a_day_is_that_of_what_had_happened(ops, offset, window):
    """``on=D`` reads only what happened by ``D`` (incomes: reported for months up to
    ``D``'s): the same profile as a state that never saw the rest, on both paths."""
    plain, indexed, evs = _run(ops)
    on = DAY0 + offset
    month = _month_of(dt.date.fromordinal(on).isoformat())
    before = person.new_state()
    for e in evs:
        income = e["type"] == "income.reported"
        if (
            (_month_of(e["data"]["month"] + "-01") <= month)
            if income
            else e["occurred_at"] <= dt.date.fromordinal(on).isoformat()
        ):
            person.add(before, e)
    if not plain["last"]:
        assert state_profile(plain, on=on) == {}
        return
    months = 24 if window == 730 else 6
    expected = state_profile(before, window, months, on=on) if before["last"] else None
    for state in (plain, indexed):
        got = state_profile(state, window, months, on=on)
        if expected is not None:
            assert got == expected
    if window == 730 and on == plain["last"]:
        assert state_profile(indexed, on=on) == state_profile(indexed)
