"""The input contract at the door: ``register-event/1``.

``validate`` turns one raw message into a normalised event dict, or raises
:class:`InvalidEvent` whose ``code`` is one of a small fixed set (a safe metric label)
and whose ``detail`` says what was wrong. Validation is declarative, with pydantic
models: one envelope, one ``data`` model per event type.

Examples
--------
>>> ev = validate('{"schema": "register-event/1", "event_id": "e1", "source": "koski",'
...     ' "type": "education.completed", "occurred_at": "2025-06-01",'
...     ' "recorded_at": "2025-06-02T10:00:00+03:00", "person": "131052-308T",'
...     ' "data": {"level": "master", "note": "ignored"}}')
>>> ev["recorded_at"], ev["data"]
('2025-06-02T07:00:00.000000Z', {'level': 'master'})
>>> try:
...     validate('{"schema": "register-event/1"}')
... except InvalidEvent as exc:
...     print(exc.code)
envelope
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

from models import hetu

SCHEMA = "register-event/1"

# The six covered municipalities (register-events.md): code -> name.
COVERED_MUNICIPALITIES = {
    "837": "Tampere",
    "980": "Ylöjärvi",
    "092": "Vantaa",
    "609": "Pori",
    "905": "Vaasa",
    "399": "Laihia",
}
# The required indicators, in the order of the contracts.
INDICATORS: tuple[str, ...] = (
    "families",
    "children",
    "single_parent_families",
    "families_social_assistance",
    "families_unemployed_parent",
    "families_child_welfare",
    "child_welfare_notifications_30d",
    "mental_health_visits_90d",
)
# The ten service-need group fields of the picture (situation-api.md).
GROUPS: tuple[str, ...] = tuple(f"g{i}" for i in range(1, 11))
# Family-type fields of the aggregates: "t<type id>" -> families of that type (present
# only; never in the picture's answers, only in /api/v1/types).
TYPE_PREFIX = "t"
# Cell-key fields beside every count field (docs/disclosure.md): "~<field>" -> Σ v·r of the
# families counted in it (v their count, r their record key, models.cellkey), kept by the
# same deltas as the count; never published, read only to perturb the published count.
KEY_PREFIX = "~"


def type_field(type_id: int) -> str:
    """The aggregate field counting the families of one family type.

    >>> type_field(37), type_id_of("t37"), type_id_of("families"), type_id_of("t")
    ('t37', 37, None, None)
    """
    return f"{TYPE_PREFIX}{type_id}"


def key_field(name: str) -> str:
    """The cell-key field of a count field.

    >>> key_field("families"), key_field("g3"), type_id_of(key_field("t7"))
    ('~families', '~g3', None)
    """
    return KEY_PREFIX + name


def type_id_of(name: str) -> int | None:
    """The type id of a family-type field (:func:`type_field`), None for any other field."""
    rest = name[len(TYPE_PREFIX) :] if name.startswith(TYPE_PREFIX) else ""
    return int(rest) if rest.isdigit() else None


EARLIEST = dt.date(1900, 1, 1)

# Reason codes: a closed set, so they are safe as metric labels.
REASON_CODES = (
    "not_json",
    "not_object",
    "schema",
    "envelope",
    "unknown_type",
    "person",
    "dates",
    "data",
)


class InvalidEvent(ValueError):
    """Bad input: ``code`` is one of :data:`REASON_CODES`, ``detail`` explains."""

    def __init__(self, code: str, detail: str):
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail

    @property
    def reason(self) -> str:
        return f"{self.code}: {self.detail}"


_DATE_RE = r"^\d{4}-\d{2}-\d{2}$"
Day = Annotated[str, StringConstraints(pattern=_DATE_RE)]
Episode = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Family = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class _Data(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)


class MemberAdded(_Data):
    family: Family
    role: Literal["parent", "child"]
    birth_date: Day

    @field_validator("birth_date")
    @classmethod
    def _real_date(cls, v: str) -> str:
        dt.date.fromisoformat(v)
        return v


class MemberRemoved(_Data):
    family: Family


class ResidenceChanged(_Data):
    family: Family
    postcode: Annotated[str, StringConstraints(pattern=r"^\d{5}$")]
    municipality: Annotated[str, StringConstraints(pattern=r"^\d{3}$")]


class Benefit(_Data):
    benefit: Literal[
        "basic_social_assistance",
        "housing_allowance",
        "unemployment_benefit",
        "child_home_care_allowance",
        "disability_allowance",
        "sickness_allowance",
    ]
    episode: Episode


class Income(_Data):
    month: Annotated[str, StringConstraints(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")]
    gross_eur: Annotated[float, Field(ge=0, allow_inf_nan=False)]

    @field_validator("gross_eur", mode="before")
    @classmethod
    def _number(cls, v: Any) -> Any:
        # strict mode refuses ints for a float field; any JSON number is fine, bools are not.
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise ValueError("gross_eur must be a number")
        return float(v)


class EmploymentStatus(_Data):
    status: Literal["employed", "unemployed", "student", "parental_leave", "outside_labour_force"]


class EducationCompleted(_Data):
    level: Literal["basic", "upper_secondary", "vocational", "bachelor", "master", "doctoral"]


class SchoolSupport(_Data):
    level: Literal["general", "intensified", "special"]


class EpisodeOnly(_Data):
    episode: Episode


class HealthVisit(_Data):
    service: Literal[
        "primary_care",
        "maternity_clinic",
        "child_health_clinic",
        "school_health",
        "mental_health",
        "substance_abuse",
        "dental",
    ]


class CareEpisode(_Data):
    service: Literal["somatic_specialist", "psychiatric", "emergency"]
    days: Annotated[int, Field(ge=0)]


class NoData(_Data):
    pass


class SocialService(_Data):
    service: Literal[
        "family_work",
        "home_service",
        "family_counselling",
        "multi_professional_support",
        "substance_abuse_services",
    ]
    episode: Episode


class Retraction(_Data):
    event_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]


# (source, type) -> data model. ``event.retracted`` is valid from any source.
TYPES: dict[str, dict[str, type[_Data]]] = {
    "dvv": {
        "family.member_added": MemberAdded,
        "family.member_removed": MemberRemoved,
        "family.residence_changed": ResidenceChanged,
    },
    "kela": {"benefit.started": Benefit, "benefit.ended": Benefit},
    "incomes": {"income.reported": Income},
    "employment": {"employment.status_changed": EmploymentStatus},
    "koski": {"education.completed": EducationCompleted, "school.support_changed": SchoolSupport},
    "varda": {"ecec.started": EpisodeOnly, "ecec.ended": EpisodeOnly},
    "avohilmo": {"health.visit": HealthVisit},
    "hilmo": {"care.episode": CareEpisode},
    "child_welfare": {
        "child_welfare.notification": NoData,
        "child_welfare.client_started": EpisodeOnly,
        "child_welfare.client_ended": EpisodeOnly,
        "child_welfare.placement_started": EpisodeOnly,
        "child_welfare.placement_ended": EpisodeOnly,
    },
    "social_services": {
        "social_service.started": SocialService,
        "social_service.ended": SocialService,
    },
}
SOURCES = tuple(TYPES)
RETRACTED = "event.retracted"
NO_PERSON_TYPES = frozenset({"family.residence_changed", RETRACTED})


class Envelope(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    schema_: Literal["register-event/1"] = Field(alias="schema")
    event_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    source: Literal[SOURCES]  # type: ignore[valid-type]
    type: str
    occurred_at: Day
    recorded_at: str
    person: str | None = None
    data: dict


_ZONE_RE = re.compile(r"(Z|[+-]\d{2}(:?\d{2})?)$")


def _pydantic_detail(err: ValidationError, prefix: str = "") -> str:
    parts = []
    for e in err.errors()[:3]:
        loc = ".".join(str(p) for p in e["loc"]).replace("schema_", "schema")
        parts.append(f"{prefix}{loc}: {e['msg']}" if loc else f"{prefix}{e['msg']}")
    return "; ".join(parts)


def parse_json(raw: bytes | str | dict) -> dict:
    if isinstance(raw, dict):
        return raw
    try:
        obj = orjson.loads(raw)
    except (orjson.JSONDecodeError, TypeError) as exc:
        raise InvalidEvent(
            "not_json", f"message is not UTF-8 JSON ({exc.__class__.__name__})"
        ) from None
    if not isinstance(obj, dict):
        raise InvalidEvent("not_object", f"message is JSON {type(obj).__name__}, not an object")
    return obj


def _parse_recorded_at(value: str) -> dt.datetime:
    """The timestamp in its own zone (its date is the register's date)."""
    if not _ZONE_RE.search(value) or "T" not in value:
        raise InvalidEvent("dates", "recorded_at must be an ISO 8601 timestamp with zone")
    try:
        stamp = dt.datetime.fromisoformat(value)
    except ValueError:
        raise InvalidEvent("dates", "recorded_at is not an ISO 8601 timestamp") from None
    if stamp.tzinfo is None:
        raise InvalidEvent("dates", "recorded_at has no zone")
    return stamp


def validate(raw: bytes | str | dict) -> dict:
    """Check one message against the contract and normalise it.

    Returns a new dict: the envelope fields (without ``schema``), ``recorded_at`` in UTC
    as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (so string order is time order), ``person`` (or
    None) and ``data`` holding only the fields of the type. Raises :class:`InvalidEvent`.
    """
    obj = parse_json(raw)
    if obj.get("schema") != SCHEMA:
        raise InvalidEvent("schema", f"schema must be {SCHEMA!r}")
    try:
        env = Envelope.model_validate(obj)
    except ValidationError as err:
        raise InvalidEvent("envelope", _pydantic_detail(err)) from None

    model = Retraction if env.type == RETRACTED else TYPES[env.source].get(env.type)
    if model is None:
        raise InvalidEvent(
            "unknown_type", f"type {env.type!r} is not a type of source {env.source!r}"
        )

    try:
        occurred = dt.date.fromisoformat(env.occurred_at)
    except ValueError:
        raise InvalidEvent("dates", "occurred_at is not a real date") from None
    recorded = _parse_recorded_at(env.recorded_at)
    if occurred < EARLIEST:
        raise InvalidEvent("dates", "occurred_at is before 1900-01-01")
    # "after its own recorded_at date": the date as the register wrote it, in its zone.
    if occurred > recorded.date():
        raise InvalidEvent("dates", "occurred_at is after recorded_at")

    person = env.person
    if person is not None:
        # A value that is present must be valid, even where the type needs none.
        _check_person(person)
    elif env.type not in NO_PERSON_TYPES:
        raise InvalidEvent("person", f"person is required for {env.type}")
    if env.type == "family.residence_changed":
        person = None  # residence changes carry no person; a valid stray one is dropped

    try:
        data = model.model_validate(env.data).model_dump()
    except ValidationError as err:
        raise InvalidEvent("data", _pydantic_detail(err, "data.")) from None

    return {
        "event_id": env.event_id,
        "source": env.source,
        "type": env.type,
        "occurred_at": env.occurred_at,
        # isoformat is several times cheaper than strftime on this hot path
        "recorded_at": recorded.astimezone(dt.UTC)
        .replace(tzinfo=None)
        .isoformat(timespec="microseconds")
        + "Z",
        "person": person,
        "data": data,
    }


def _check_person(code: str) -> None:
    try:
        hetu.parse(code)
    except ValueError as exc:
        # The reason names the rule broken, never the code itself.
        raise InvalidEvent("person", str(exc)) from None
