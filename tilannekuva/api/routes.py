"""The route table: every path of the API, said once.

The router (:func:`register`), the OpenAPI ``paths`` (``openapi.py``), the token rule
and the metric labels (``middleware.py``) and the tests all read :data:`ROUTES`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import KW_ONLY, dataclass, field
from typing import Literal

from aiohttp import web
from pydantic import BaseModel

from tilannekuva.api import handlers
from tilannekuva.api.schemas import (
    MUNICIPALITY_CODE,
    POSTCODE,
    AlertList,
    AreaList,
    Health,
    HistorySeries,
    Scope,
)
from tilannekuva.api.series import DATE_PATTERN, STEPS


@dataclass(frozen=True)
class Param:
    name: str
    location: Literal["path", "query"]
    description: str
    example: str  # shown in the OpenAPI document; the tests request it
    pattern: str | None = None
    enum: tuple[str, ...] | None = None

    @property
    def required(self) -> bool:
        return self.location == "path"


@dataclass(frozen=True)
class Raw:
    """A body described by a plain schema rather than a model (text, the OpenAPI document)."""

    media_type: str
    schema: dict


@dataclass(frozen=True)
class Route:
    """One operation: where it is, who answers, and what its OpenAPI entry says."""

    method: str
    path: str
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    _: KW_ONLY
    name: str  # operationId and router name
    summary: str
    body: type[BaseModel] | Raw  # the 200 answer: a model is JSON
    body_description: str
    public: bool = False  # answers without the bearer token (a static path only)
    params: tuple[Param, ...] = ()
    errors: dict[int, str] = field(default_factory=dict)  # status -> when; body: Error

    def example_path(self) -> str:
        """The path with each path parameter's example filled in."""
        return self.path.format_map({p.name: p.example for p in self.params if p.required})


CODE = Param("code", "path", "3-digit municipality code", "837", MUNICIPALITY_CODE)
POSTCODE_PARAM = Param("postcode", "path", "5-digit postcode", "33100", POSTCODE)
AS_OF = Param(
    "as_of",
    "query",
    "a day of the history, YYYY-MM-DD, from the first day of data to W: the picture "
    "of that day, suppressed as a whole as the present is (W: the present itself)",
    "2026-06-01",
    DATE_PATTERN,
)
HISTORY_PARAMS = (
    Param(
        "from",
        "query",
        "first day, YYYY-MM-DD (default: to − 364 days, not before the first day of data)",
        "2025-07-01",
        DATE_PATTERN,
    ),
    Param("to", "query", "last day, YYYY-MM-DD (default: W)", "2026-06-30", DATE_PATTERN),
    Param(
        "step",
        "query",
        "day (default); week: every 7th day counting back from to; month: the day of "
        "the month of to in each month (clamped to the month's end)",
        "week",
        enum=STEPS,
    ),
    Param(
        "indicators",
        "query",
        "comma-separated indicator names (default: all eight); service-need groups "
        "come with every day that has them",
        "families,families_social_assistance",
    ),
)
AS_OF_ERROR = "as_of malformed or outside the history (first day of data … W; none yet)"
HISTORY_ERROR = (
    "a date malformed or outside the history (first day of data … W; none yet), "
    "from after to, an unknown step or indicator"
)
REBUILDING = "the history changed shape while answering (e.g. Redis was reset): retry"

ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        "/healthz",
        handlers.healthz,
        name="healthz",
        summary="liveness",
        body=Health,
        body_description="ok",
        public=True,
    ),
    Route(
        "GET",
        "/api/v1/picture",
        handlers.picture,
        name="picture",
        summary="the picture for all six municipalities together",
        body=Scope,
        body_description="all",
        params=(AS_OF,),
        errors={400: AS_OF_ERROR, 503: REBUILDING},
    ),
    Route(
        "GET",
        "/api/v1/picture/history",
        handlers.picture_history,
        name="picture_history",
        summary="the history of all six municipalities together, one point per step",
        body=HistorySeries,
        body_description="series",
        params=HISTORY_PARAMS,
        errors={400: HISTORY_ERROR, 503: REBUILDING},
    ),
    Route(
        "GET",
        "/api/v1/municipalities/{code}",
        handlers.municipality,
        name="municipality",
        summary="one municipality",
        body=Scope,
        body_description="municipality",
        params=(CODE, AS_OF),
        errors={
            400: f"malformed code; {AS_OF_ERROR}",
            404: "not a covered municipality",
            503: REBUILDING,
        },
    ),
    Route(
        "GET",
        "/api/v1/municipalities/{code}/history",
        handlers.municipality_history,
        name="municipality_history",
        summary="the history of one municipality, one point per step",
        body=HistorySeries,
        body_description="series",
        params=(CODE, *HISTORY_PARAMS),
        errors={
            400: f"malformed code; {HISTORY_ERROR}",
            404: "not a covered municipality",
            503: REBUILDING,
        },
    ),
    Route(
        "GET",
        "/api/v1/areas",
        handlers.areas,
        name="areas",
        summary="every postcode area with its municipality and families",
        body=AreaList,
        body_description="areas",
        params=(AS_OF,),
        errors={400: AS_OF_ERROR, 503: REBUILDING},
    ),
    Route(
        "GET",
        "/api/v1/areas/{postcode}",
        handlers.area,
        name="area",
        summary="one postcode area",
        body=Scope,
        body_description="area",
        params=(POSTCODE_PARAM, AS_OF),
        errors={400: f"malformed postcode; {AS_OF_ERROR}", 404: "unknown area", 503: REBUILDING},
    ),
    Route(
        "GET",
        "/api/v1/areas/{postcode}/history",
        handlers.area_history,
        name="area_history",
        summary="the history of one postcode area, one point per step",
        body=HistorySeries,
        body_description="series",
        params=(POSTCODE_PARAM, *HISTORY_PARAMS),
        errors={400: f"malformed postcode; {HISTORY_ERROR}", 404: "unknown area", 503: REBUILDING},
    ),
    Route(
        "GET",
        "/api/v1/alerts",
        handlers.alerts,
        name="alerts",
        summary="alerts raised, newest first",
        body=AlertList,
        body_description="alerts",
        params=(
            Param("since", "query", "ISO-8601 date or timestamp; naive means UTC", "2026-07-01"),
        ),
        errors={400: "malformed since"},
    ),
    Route(
        "GET",
        "/api/v1/stream",
        handlers.stream,
        name="stream",
        summary="server-sent events: `event: area` with the area's JSON (Scope) per changed "
        "area; comments as heartbeats",
        body=Raw("text/event-stream", {"type": "string"}),
        body_description="event stream",
    ),
    Route(
        "GET",
        "/metrics",
        handlers.metrics,
        name="metrics",
        summary="Prometheus metrics",
        body=Raw("text/plain", {"type": "string"}),
        body_description="text format",
    ),
    Route(
        "GET",
        "/openapi.json",
        handlers.openapi,
        name="openapi",
        summary="this description",
        body=Raw("application/json", {"type": "object"}),
        body_description="OpenAPI 3.1",
    ),
)

PATHS = frozenset(r.path for r in ROUTES)
PUBLIC_PATHS = frozenset(r.path for r in ROUTES if r.public)


def register(router: web.UrlDispatcher) -> None:
    for r in ROUTES:
        if r.method == "GET":
            router.add_get(r.path, r.handler, name=r.name)  # answers HEAD too
        else:
            router.add_route(r.method, r.path, r.handler, name=r.name)
