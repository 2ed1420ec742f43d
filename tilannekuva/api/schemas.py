"""The API's answers as pydantic models, from which /openapi.json takes its schemas.

They describe and do not build: the handlers answer plain dicts, whose key order and
omitted keys follow the contract exactly, and the tests check real answers against
these models. Indicator and group fields come from :mod:`models.contract`.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Literal

from aiohttp import web
from pydantic import BaseModel, Field, create_model
from pydantic.json_schema import SkipJsonSchema

from models.contract import GROUPS, INDICATORS
from models.detection import METHODS, SERIES
from models.impact import COUNT_STEP, HORIZONS, REPORTED

POSTCODE = r"^\d{5}$"
MUNICIPALITY_CODE = r"^\d{3}$"
AREA_DETAIL = ("families", "full")  # /api/v1/areas?detail=

# A shown count, or null where suppression hides it.
Count = Annotated[int, Field(ge=0)] | None
# ``x: T | Absent = None``: the key may be missing from the answer but is never null.
Absent = SkipJsonSchema[None]
Postcode = Annotated[str, Field(pattern=POSTCODE)]
MunicipalityCode = Annotated[str, Field(pattern=MUNICIPALITY_CODE)]

Indicators = create_model(
    "Indicators",
    __doc__="The indicators of situation-api.md. null: a suppressed small cell "
    "(1 … SITUATION_MIN_CELL−1) or complementary suppression.",
    **{name: (Count, ...) for name in INDICATORS},
)
# Fields g1 … g10 of the aggregates are answered as "1" … "10".
ServiceNeedGroups = create_model(
    "ServiceNeedGroups",
    __doc__="Families per service-need group, 1 (least need) … 10 (most): each family "
    "by its own need score against the cuts frozen at the baseline (docs/family-types.md); "
    "their sum is families. null: suppressed.",
    **{g: (Count, Field(alias=g.removeprefix("g"))) for g in GROUPS},
)


class Scope(BaseModel):
    """The picture of all six municipalities, one municipality or one postcode area."""

    area: Postcode | None = Field(description="postcode; null for a municipality or all")
    municipality: MunicipalityCode | None = Field(description="null for all")
    as_of: dt.date | None = Field(
        description="the watermark W, or the day asked for with as_of; null before any data"
    )
    indicators: Indicators  # type: ignore[valid-type]
    service_need_groups: ServiceNeedGroups | Absent = Field(  # type: ignore[valid-type]
        None, description="present once the family-types model runs"
    )
    suppressed: list[str] = Field(
        description="names of null cells, groups as service_need_groups.N"
    )
    updated_at: dt.datetime | None = Field(
        description="last change of the scope; null for a past day (as_of before W)"
    )


# The indicators asked for (all eight by default), each a shown count or null.
SomeIndicators = create_model(
    "SomeIndicators",
    __doc__="The indicators asked for (indicators=a,b; all eight by default), as in "
    "Indicators: null is a suppressed cell.",
    **{name: (Count, Field(None)) for name in INDICATORS},
)


class HistoryPoint(BaseModel):
    """One day of a history series, suppressed exactly as the picture of that day."""

    as_of: dt.date = Field(description="the day D (the picture with W = D)")
    indicators: SomeIndicators  # type: ignore[valid-type]
    service_need_groups: ServiceNeedGroups | Absent = Field(  # type: ignore[valid-type]
        None, description="present on days whose picture has the groups"
    )
    suppressed: list[str] = Field(
        description="names of null cells shown, groups as service_need_groups.N"
    )


class HistorySeries(BaseModel):
    """The history of all six municipalities, one municipality or one postcode area."""

    area: Postcode | None = Field(description="postcode; null for a municipality or all")
    municipality: MunicipalityCode | None = Field(description="null for all")
    first_day: dt.date | None = Field(
        description="the first day of data: the history's first day (null: no data yet)"
    )
    last_day: dt.date | None = Field(description="W: the history's last day (null: no data yet)")
    series: list[HistoryPoint] = Field(
        description="ascending, ending on to; empty while there is no data and no date "
        "was asked for"
    )


class Error(BaseModel):
    error: str


class Health(BaseModel):
    status: Literal["ok"]


class AreaItem(BaseModel):
    area: Postcode
    municipality: MunicipalityCode
    name: str | Absent = Field(None, description="Finnish name (reference areas only)")
    name_sv: str | Absent = Field(None, description="Swedish name (reference areas only)")
    families: Count
    suppressed: bool = Field(description="true: families is not shown")
    picture: Scope | Absent = Field(
        None, description="with detail=full: the area's whole answer, as /api/v1/areas/{postcode}"
    )


class AreaList(BaseModel):
    as_of: dt.date | None
    areas: list[AreaItem]


class Observed(BaseModel):
    share: float | None = Field(description="numerator / denominator, as published that day")
    numerator: float | None
    denominator: float | None = Field(description="the scope's shown families")


class Expected(BaseModel):
    share: float | None = Field(description="what the method expected today")
    lower: float | None = Field(description="95 % prediction interval of today's share")
    upper: float | None


class Recent(BaseModel):
    from_: dt.date = Field(alias="from", description="the first weekly point")
    every_days: int = Field(description="days between points (7)")
    shares: list[float | None] = Field(description="published shares, None where hidden")


class Alert(BaseModel):
    """A shift alert (docs/alerts.md): the detector found a watched series of a scope
    above what its own published history leads one to expect, under false-discovery
    control over all the tests of the day. Computed from published values only."""

    id: str = Field(
        description="hash of method, scope, series and as_of: repeats are the same alert"
    )
    method: Literal[tuple(METHODS)]  # type: ignore[valid-type]
    raised_at: dt.datetime = Field(description="when the worker raised it (wall clock)")
    as_of: dt.date = Field(description="the published day it was found on")
    scope: Literal["all", "municipality", "area"]
    scope_key: str = Field(description="all, m:<code> or a:<postcode>")
    area: str | None
    municipality: str | None
    series: Literal[SERIES]  # type: ignore[valid-type]
    observed: Observed
    expected: Expected
    statistic: float | None = Field(description="the method's statistic")
    p: float | None = Field(description="one-sided p-value of a rise")
    q: float | None = Field(description="Benjamini-Hochberg q-value over the day's tests")
    onset: dt.date | None = Field(description="the method's estimate of when the rise began")
    strength: float | None = Field(description="for ranking: larger is stronger")
    recent: Recent = Field(description="the scope's series once a week up to as_of (13 points)")
    rank: int = Field(description="1 = the strongest alert of its day", ge=1)
    explanation: str


class AlertList(BaseModel):
    since: str | None = Field(description="the since parameter as given")
    alerts: list[Alert] = Field(description="newest first")


class TypeFeature(BaseModel):
    """A feature that sets the type apart (models/features.py, docs/family-types.md)."""

    name: str = Field(description="feature name")
    value: float = Field(description="the type's centroid, in the feature's own units")
    population_mean: float = Field(description="the mean over all families learnt")
    z: float = Field(
        description="(value − population_mean) / population standard deviation; the "
        "features are listed by |z|, strongest first"
    )


class TypeDescription(BaseModel):
    """The type in words: the phrases of its strongest features (|z| ≥ 0.5, at most
    four), or 'average family'."""

    fi: str
    sv: str
    en: str


class FamilyType(BaseModel):
    type: int = Field(description="type id of the model (stable between re-bases)")
    families: Annotated[int, Field(ge=1)] = Field(
        description="families of the type in the scope (never 1 … SITUATION_MIN_CELL−1)"
    )
    share: Annotated[float, Field(ge=0, le=1)] | None = Field(
        description="families / the scope's families; null where the scope's families is not shown"
    )
    group: Annotated[int, Field(ge=1, le=10)] = Field(
        description="service-need group of the type's centroid (its typical family); "
        "each family is in the group of its own need score, which may be another"
    )
    features: list[TypeFeature] = Field(description="the five strongest features")
    description: TypeDescription


class TypesSuppressed(BaseModel):
    types: Annotated[int, Field(ge=0)] = Field(
        description="types whose count in the scope is not shown (not listed; among them "
        "possibly types without families, hidden to protect others)"
    )
    families: Count = Field(
        description="their families together: families − Σ shown types (0 or at least "
        "SITUATION_MIN_CELL); null where families is"
    )


class TypeList(BaseModel):
    """The family types of all six municipalities, one municipality or one area."""

    area: Postcode | None = Field(description="postcode; null for a municipality or all")
    municipality: MunicipalityCode | None = Field(description="null for all")
    as_of: dt.date | None = Field(description="the watermark W; null before any data")
    model_version: str | None = Field(
        description="'<generation>.<version>' of the family-type model; null before the first model"
    )
    published: bool = Field(
        description="false before the first model, while not every counted family has a "
        "type of it yet (a new generation being written), or when no choice of hidden "
        "counts would be safe: types is then empty"
    )
    families: Count = Field(
        description="the scope's families as the picture shows them (null: suppressed, "
        "or types not published)"
    )
    shown_types: Annotated[int, Field(ge=0)] = Field(
        description="types shown in the scope (types lists the first `limit` of them)"
    )
    types: list[FamilyType] = Field(description="by families, largest first (then by type)")
    suppressed: TypesSuppressed


RETRY_AFTER_S = 5  # seconds a 503 asks a client to wait: Redis away, the history rebuilt


def http_error(cls: type[web.HTTPException], message: str, **kwargs) -> web.HTTPException:
    """An aiohttp error whose body is an :class:`Error`."""
    return cls(text=json.dumps({"error": message}), content_type="application/json", **kwargs)


class ImpactEstimate(BaseModel):
    """The effect of a service ``months`` after its start: the difference it makes to
    the probability of moving to a lower (better) outcome group, against comparable
    families that start it later (docs/impact.md). All null but ``months`` and
    ``withheld`` when withheld."""

    months: int = Field(description="months after the start (negative: before it)")
    effect: float | None = Field(description="a difference of probabilities, e.g. 0.03")
    ci_low: float | None = Field(description="95 % interval, low end")
    ci_high: float | None = Field(description="95 % interval, high end")
    mde: float | None = Field(description="minimum detectable effect (80 % power, 5 %)")
    naive: float | None = Field(
        description="the entries' before/after alone: what the comparison corrects; from "
        "its counts as the cell key method publishes them (docs/impact.md); null where a "
        "count behind it is small, and in an area's answer"
    )
    entries: int | None = Field(
        description=f"families that started the service, matched (rounded down to a "
        f"multiple of {COUNT_STEP})"
    )
    comparison: int | None = Field(
        description=f"comparison families (rounded down to a multiple of {COUNT_STEP})"
    )
    withheld: str | None = Field(description="why nothing is published; null when it is")


class ServiceImpact(BaseModel):
    service: str = Field(description="the service, as the register events name it")
    estimates: list[ImpactEstimate] = Field(
        description=f"{', '.join(map(str, REPORTED))} months after the start"
    )
    event_study: list[ImpactEstimate] = Field(
        description=f"every month from {HORIZONS[0]} to +{HORIZONS[-1]} but the reference"
    )
    pre_trend_p: float | None = Field(
        description="p-value of no difference before the reference month (but the matched "
        "one: −6 … −2 when the reference is −1); a small one says the comparison is not "
        "alike; null while nothing is published"
    )
    reference_month: int = Field(
        description="the month the moves are measured from and the families matched at: "
        "−1, or earlier where the process leading to the service moves the outcome "
        "before it starts (child welfare open care: −3, a notification opens the case; "
        "docs/impact.md)"
    )


class ImpactList(BaseModel):
    """What happens to families after a service starts, against comparable families."""

    area: Postcode | None = Field(description="the entries' postcode area; null for all")
    municipality: MunicipalityCode | None = Field(description="null for all six")
    counted_to: str | None = Field(
        description="the last month whose end is counted, YYYY-MM (null: none yet)"
    )
    outcome: str = Field(description="what the effects are effects on")
    services: list[ServiceImpact]
