import json

import pytest

from models import contract
from models.contract import InvalidEvent, validate

PERSON = "131052-308T"


def ev(**over):
    base = {
        "schema": "register-event/1",
        "event_id": "e-1",
        "source": "kela",
        "type": "benefit.started",
        "occurred_at": "2025-03-01",
        "recorded_at": "2025-03-02T08:00:00+02:00",
        "person": PERSON,
        "data": {"benefit": "basic_social_assistance", "episode": "k1"},
    }
    base.update(over)
    return base


VALID = [
    ("dvv", "family.member_added", {"family": "F1", "role": "child", "birth_date": "2012-02-29"}),
    ("dvv", "family.member_removed", {"family": "F1"}),
    ("kela", "benefit.ended", {"benefit": "housing_allowance", "episode": "x"}),
    ("incomes", "income.reported", {"month": "2025-02", "gross_eur": 0}),
    ("incomes", "income.reported", {"month": "2025-12", "gross_eur": 3100.5}),
    ("employment", "employment.status_changed", {"status": "parental_leave"}),
    ("koski", "education.completed", {"level": "vocational"}),
    ("koski", "school.support_changed", {"level": "special"}),
    ("varda", "ecec.started", {"episode": "v"}),
    ("avohilmo", "health.visit", {"service": "mental_health"}),
    ("hilmo", "care.episode", {"service": "emergency", "days": 0}),
    ("child_welfare", "child_welfare.notification", {}),
    ("child_welfare", "child_welfare.placement_ended", {"episode": "p"}),
    ("social_services", "social_service.started", {"service": "family_work", "episode": "s"}),
]


@pytest.mark.parametrize("source,type_,data", VALID)
def test_every_type_of_every_source_validates(source, type_, data):
    out = validate(json.dumps(ev(source=source, type=type_, data=data)))
    assert out["type"] == type_ and out["person"] == PERSON
    assert out["data"] == {
        **data,
        **({"gross_eur": float(data["gross_eur"])} if "gross_eur" in data else {}),
    }


def test_all_ten_sources_are_known():
    assert len(contract.SOURCES) == 10


def test_residence_change_needs_no_person_and_drops_one():
    out = validate(
        ev(
            source="dvv",
            type="family.residence_changed",
            person=None,
            data={"family": "F1", "postcode": "33100", "municipality": "837"},
        )
    )
    assert out["person"] is None
    out = validate(
        ev(
            source="dvv",
            type="family.residence_changed",
            data={"family": "F1", "postcode": "33100", "municipality": "837"},
        )
    )
    assert out["person"] is None


RESIDENCE = {"family": "F1", "postcode": "33100", "municipality": "837"}


@pytest.mark.parametrize("bad", ["131052-308U", "310252-308T", "131052Q308T", "", "x" * 200])
def test_residence_change_with_an_invalid_person_goes_to_the_dlq(bad):
    """A person that is present must be valid, even where the type needs none."""
    with pytest.raises(InvalidEvent) as exc:
        validate(ev(source="dvv", type="family.residence_changed", person=bad, data=RESIDENCE))
    assert exc.value.code == "person"
    assert bad not in exc.value.detail or bad == ""  # the reason never repeats the code


@pytest.mark.parametrize("person", [None, PERSON, "absent"])
def test_residence_change_with_a_valid_null_or_absent_person_is_accepted(person):
    event = ev(source="dvv", type="family.residence_changed", person=person, data=RESIDENCE)
    if person == "absent":
        del event["person"]
    out = validate(json.dumps(event))
    assert out["person"] is None  # a valid stray person is dropped, as before
    assert out["data"] == RESIDENCE


def test_residence_change_with_a_non_string_person_is_bad_input():
    with pytest.raises(InvalidEvent) as exc:
        validate(ev(source="dvv", type="family.residence_changed", person=131052, data=RESIDENCE))
    assert exc.value.code == "envelope"


def test_retraction_from_any_source_without_person():
    out = validate(
        ev(source="hilmo", type="event.retracted", person=None, data={"event_id": "e-9"})
    )
    assert out["data"] == {"event_id": "e-9"}


def test_recorded_at_normalised_to_utc_and_extra_fields_dropped():
    out = validate(
        ev(data={"benefit": "basic_social_assistance", "episode": "k1", "x": 1}, extra=5)
    )
    assert out["recorded_at"] == "2025-03-02T06:00:00.000000Z"
    assert out["data"] == {"benefit": "basic_social_assistance", "episode": "k1"}
    assert "extra" not in out and "schema" not in out


BAD = [
    (b"\xff\xfe", "not_json"),
    ("{not json", "not_json"),
    ("[1, 2]", "not_object"),
    (ev(schema="register-event/2"), "schema"),
    ({k: v for k, v in ev().items() if k != "event_id"}, "envelope"),
    (ev(event_id=""), "envelope"),
    (ev(event_id="x" * 129), "envelope"),
    (ev(event_id=7), "envelope"),
    (ev(source="tax"), "envelope"),
    (ev(type="benefit.paused"), "unknown_type"),
    (ev(source="koski"), "unknown_type"),
    (ev(occurred_at="2025-3-1"), "envelope"),
    (ev(occurred_at="2025-02-30"), "dates"),
    (ev(occurred_at="1899-12-31", recorded_at="1900-01-02T00:00:00Z"), "dates"),
    (ev(occurred_at="2025-03-03"), "dates"),
    (ev(recorded_at="2025-03-02T08:00:00"), "dates"),
    (ev(recorded_at="yesterday"), "dates"),
    (ev(person=None), "person"),
    (ev(person="131052-308U"), "person"),
    (ev(person="310252-308T"), "person"),
    (ev(person="131052Q308T"), "person"),
    (ev(data={"benefit": "lottery", "episode": "k"}), "data"),
    (ev(data={"benefit": "basic_social_assistance"}), "data"),
    (
        ev(source="incomes", type="income.reported", data={"month": "2025-13", "gross_eur": 1}),
        "data",
    ),
    (
        ev(source="incomes", type="income.reported", data={"month": "2025-01", "gross_eur": -1}),
        "data",
    ),
    (
        ev(source="incomes", type="income.reported", data={"month": "2025-01", "gross_eur": "100"}),
        "data",
    ),
    (
        ev(source="incomes", type="income.reported", data={"month": "2025-01", "gross_eur": True}),
        "data",
    ),
    (ev(source="hilmo", type="care.episode", data={"service": "psychiatric", "days": -1}), "data"),
    (ev(source="hilmo", type="care.episode", data={"service": "psychiatric", "days": 1.5}), "data"),
    (
        ev(
            source="dvv",
            type="family.member_added",
            data={"family": "F", "role": "child", "birth_date": "2011-02-29"},
        ),
        "data",
    ),
    (
        ev(
            source="dvv",
            type="family.residence_changed",
            person=None,
            data={"family": "F", "postcode": "3310", "municipality": "837"},
        ),
        "data",
    ),
    (ev(type="event.retracted", data={}), "data"),
    (ev(data="nope"), "envelope"),
]


@pytest.mark.parametrize("raw,code", BAD)
def test_bad_input_is_refused_with_its_reason(raw, code):
    with pytest.raises(InvalidEvent) as info:
        validate(raw if isinstance(raw, bytes | str) else json.dumps(raw))
    assert info.value.code == code
    assert info.value.code in contract.REASON_CODES
    assert info.value.detail


def test_reason_never_contains_the_identity_code():
    with pytest.raises(InvalidEvent) as info:
        validate(ev(person="131052-308U"))
    assert "131052" not in str(info.value)
