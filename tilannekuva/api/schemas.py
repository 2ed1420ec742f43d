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

from models.alerts import WATCHED
from models.contract import GROUPS, INDICATORS

POSTCODE = r"^\d{5}$"
MUNICIPALITY_CODE = r"^\d{3}$"

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
    __doc__="Families per service-need group, 1 (least need) … 10 (most); their sum is "
    "families. null: suppressed.",
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


class AreaList(BaseModel):
    as_of: dt.date | None
    areas: list[AreaItem]


class ShareAt(BaseModel):
    as_of: dt.date
    share: float


class Alert(BaseModel):
    """A trend alert (docs/design.md, 'Trend alerts'): the shown share of families with an
    indicator (rate per family for the window counts) rose by at least the rule's rise
    over window_days of event time. Built from shown cells only."""

    id: str = Field(description="hash of scope, indicator and as_of: repeats are the same alert")
    rule: str
    raised_at: dt.datetime
    as_of: dt.date
    scope: Literal["all", "municipality", "area"]
    area: str | None
    municipality: str | None
    indicator: Literal[WATCHED]  # type: ignore[valid-type]
    window_days: int
    before: ShareAt
    now: ShareAt
    rise: float


class AlertList(BaseModel):
    since: str | None = Field(description="the since parameter as given")
    alerts: list[Alert] = Field(description="newest first")


def http_error(cls: type[web.HTTPException], message: str, **kwargs) -> web.HTTPException:
    """An aiohttp error whose body is an :class:`Error`."""
    return cls(text=json.dumps({"error": message}), content_type="application/json", **kwargs)
