"""models.person: rows found where their event says, without a map of event ids."""

from __future__ import annotations

import copy

from models import person
from models.features import person_profile
from models.profile import state_profile
from tests.models.test_profile import ev

EVENTS = [
    ev(1, "income.reported", "2025-03-05", {"month": "2025-02", "gross_eur": 2500.0}),
    ev(2, "income.reported", "2025-04-05", {"month": "2025-03", "gross_eur": 2600.0}),
    ev(3, "health.visit", "2025-04-05", {"service": "dental"}),
    ev(4, "benefit.started", "2025-02-01", {"benefit": "housing_allowance", "episode": "h"}),
    ev(5, "employment.status_changed", "2025-01-01", {"status": "employed"}),
]


def _state(events):
    st = person.new_state()
    for e in events:
        person.add(st, e)
    return st


def test_a_duplicate_is_found_in_its_row_list_and_changes_nothing():
    st = _state(EVENTS)
    before = copy.deepcopy(st)
    for e in EVENTS:
        assert person.add(st, e) is None
    assert st == before and "ids" not in st


def test_every_row_is_found_by_its_location_and_by_a_look_at_every_row():
    st = _state(EVENTS)
    for e in EVENTS:
        where = person.locate(e)
        assert person.holding(st, e["event_id"], where) == where
        assert person.holding(st, e["event_id"]) == where
    assert person.holding(st, "nope") is None
    assert person.holding(st, "e1", person.locate(EVENTS[2])) is None  # not where it says


def test_removing_the_latest_row_finds_the_next_latest_among_incomes_and_episodes():
    st = _state(EVENTS)
    assert st["last"] == person.day("2025-04-05")
    person.remove(st, "e3", person.locate(EVENTS[2]))
    assert st["last"] == person.day("2025-04-05")  # the income of that day is still there
    person.remove(st, "e2", person.locate(EVENTS[1]))
    assert st["last"] == person.day("2025-03-05")
    person.remove(st, "e1")
    assert st["last"] == person.day("2025-02-01")  # the episode's start
    assert state_profile(st) == person_profile([EVENTS[3], EVENTS[4]])


def test_a_state_of_the_older_layout_is_converted_on_its_next_change():
    st = _state(EVENTS[:4])
    old = copy.deepcopy(st)  # as the layout with an ids map kept it
    old["ids"] = {}
    for e in EVENTS[:4]:
        where = person.locate(e)
        old["ids"][e["event_id"]] = where[:2] if where[0].startswith("ep:") else where
    for r in old["inc"]:
        r.pop()  # incomes without their day
    person.add(old, EVENTS[4])
    assert "ids" not in old and old == _state(EVENTS)
    assert person.remove(old, "e1") == person.day("2025-03-05")
