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
    Scope,
)


@dataclass(frozen=True)
class Param:
    name: str
    location: Literal["path", "query"]
    description: str
    example: str  # shown in the OpenAPI document; the tests request it
    pattern: str | None = None

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
    ),
    Route(
        "GET",
        "/api/v1/municipalities/{code}",
        handlers.municipality,
        name="municipality",
        summary="one municipality",
        body=Scope,
        body_description="municipality",
        params=(Param("code", "path", "3-digit municipality code", "837", MUNICIPALITY_CODE),),
        errors={400: "malformed code", 404: "not a covered municipality"},
    ),
    Route(
        "GET",
        "/api/v1/areas",
        handlers.areas,
        name="areas",
        summary="every postcode area with its municipality and families",
        body=AreaList,
        body_description="areas",
    ),
    Route(
        "GET",
        "/api/v1/areas/{postcode}",
        handlers.area,
        name="area",
        summary="one postcode area",
        body=Scope,
        body_description="area",
        params=(Param("postcode", "path", "5-digit postcode", "33100", POSTCODE),),
        errors={400: "malformed postcode", 404: "unknown area"},
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
