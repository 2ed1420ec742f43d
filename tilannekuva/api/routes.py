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

from models.impact import COUNT_STEP, ENTRY_GAP, LAG, MIN_ENTRIES, REACH, SERVICES, SHOWN_DIGITS
from tilannekuva.api import handlers
from tilannekuva.api.schemas import (
    AREA_DETAIL,
    MUNICIPALITY_CODE,
    POSTCODE,
    AlertList,
    AreaList,
    Health,
    HistorySeries,
    ImpactList,
    Scope,
    TypeList,
)
from tilannekuva.api.series import DATE_PATTERN, STEPS
from tilannekuva.api.types import LIMIT_DEFAULT, LIMIT_MAX


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
    reads_redis: bool = True  # 503 with Retry-After while Redis is unreachable
    params: tuple[Param, ...] = ()
    errors: dict[int, str] = field(default_factory=dict)  # status -> when; body: Error
    description: str | None = None  # the operation's longer text in OpenAPI, if any

    def example_path(self) -> str:
        """The path with each path parameter's example filled in."""
        return self.path.format_map({p.name: p.example for p in self.params if p.required})


CODE = Param("code", "path", "3-digit municipality code", "837", MUNICIPALITY_CODE)
POSTCODE_PARAM = Param("postcode", "path", "5-digit postcode", "33100", POSTCODE)
AS_OF = Param(
    "as_of",
    "query",
    "a day of the history, YYYY-MM-DD, from the first day of data to W − 1 (the last "
    "completed day, which the present answers; the day W is still filling and never "
    "published): the picture of that day, suppressed as a whole and perturbed as the "
    "present is",
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
    Param(
        "to",
        "query",
        "last day, YYYY-MM-DD (default: the last published day, W − 1)",
        "2026-06-29",
        DATE_PATTERN,
    ),
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
AS_OF_ERROR = "as_of malformed or outside the history (first day of data … W − 1; none yet)"
HISTORY_ERROR = (
    "a date malformed or outside the history (first day of data … W − 1; none yet), "
    "from after to, an unknown step or indicator"
)
REBUILDING = "the history is being rebuilt (e.g. Redis was reset): retry after Retry-After"
STATIC_PREFIX = "/static/"
AUDIT_AS_OF = Param(
    "as_of",
    "query",
    "a day of the history, YYYY-MM-DD, from the first day of data to W (default: W)",
    "2026-06-01",
    DATE_PATTERN,
)
AUDIT_AS_OF_ERROR = "as_of malformed or outside the history (first day of data … W)"
AUDIT_DESCRIPTION = (
    "Disclosure control (contract 1.2, docs/disclosure.md): every other answer publishes "
    "counts perturbed by their cell keys (at most ±2, zero stays zero, never below "
    "SITUATION_MIN_CELL) after small-cell suppression. These paths answer the exact "
    "counts, unsuppressed, so that the data controller can verify the picture against "
    "the batch reference (tilannekuva compare). They open only with "
    "SITUATION_AUDIT_TOKEN, never with the dashboard token; without that setting they "
    "answer 401. `suppressed` is always empty."
)
TYPES_DESCRIPTION = (
    "Every counted family has a family type of the latest model (online k-means, "
    "docs/family-types.md). The scope's types are listed by their families, largest "
    "first; each with its five features furthest from the whole population (z against "
    "the population mean and standard deviation) and a phrase in Finnish, Swedish and "
    "English from the strongest of them. The counts are of the present (W) and may "
    "trail the picture by up to 15 s.\n\n"
    "Small cells: a type's count from 1 to SITUATION_MIN_CELL−1 is never shown. A "
    "scope's type counts add up to its families, a group's to the counts of its types "
    "(the group is published with each type), and each type's counts add up over areas "
    "→ municipality → all; so the type counts of every scope are suppressed as one "
    "table with the picture's families and service-need groups, which stay as the "
    "picture shows them: secondary suppression hides more type counts until no hidden "
    "count (a type's, or a families or group count the picture hides) can be recovered "
    "by subtraction, within a scope or across scopes. Hidden types are not listed (nor "
    "are types without families); `suppressed` says how many type counts of the scope "
    "are hidden and how many families they hold together (0 or at least "
    "SITUATION_MIN_CELL).\n\n"
    "`published` is false and `types` empty before the first model, while not every "
    "counted family has a type of it (a re-base's new ids being written), and when no "
    "choice of hidden counts would be safe (a model whose groups give away a count the "
    "picture hides)."
)

IMPACT_DESCRIPTION = (
    f"Families who start a service (an entry: no start of it in the {ENTRY_GAP} months "
    "before) are compared with families of the same municipality whose outcome group was "
    f"the same at the end of the month before the start and {LAG} months before that, "
    f"and who start the service later (within {REACH} months), not before the horizon: "
    "an exactly matched difference in differences, the average effect on the families "
    "who got the service (docs/impact.md). The outcome is the need score without the "
    "services themselves; measured with the published service-need groups, which count "
    "services as need, every service would look harmful.\n\n"
    "Counted at each month's end. An estimate is withheld, with the reason, when it "
    f"rests on fewer than {MIN_ENTRIES} entries or a count behind it (entries or "
    "comparison families that moved, or did not) is 1 … SITUATION_MIN_CELL−1, or, for "
    "child welfare open care, in the months after the start whose outcome still reads the "
    "notification that opened the case; the naive "
    "before/after is null where one of its own counts is, the pre-trend p where a month "
    f"it tests is withheld. Effects are rounded to {SHOWN_DIGITS} decimals, counts of "
    f"families down to a multiple of {COUNT_STEP}."
)

ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        "/",
        handlers.page,
        name="page",
        summary="the situation page (HTML): it asks for the token once, in the browser, and "
        f"reads this API; its scripts, styles and map data are under {STATIC_PREFIX} (public)",
        body=Raw("text/html", {"type": "string"}),
        body_description="the page",
        public=True,
        reads_redis=False,
    ),
    Route(
        "GET",
        "/healthz",
        handlers.healthz,
        name="healthz",
        summary="liveness",
        body=Health,
        body_description="ok",
        public=True,
        reads_redis=False,
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
        params=(
            AS_OF,
            Param(
                "detail",
                "query",
                "families (default): each area's families; full: each area's whole answer "
                "as well (what /api/v1/areas/{postcode} answers), for a map in one request",
                "full",
                enum=AREA_DETAIL,
            ),
        ),
        errors={400: f"{AS_OF_ERROR}; an unknown detail", 503: REBUILDING},
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
    *(
        Route(
            "GET",
            f"/api/v1/audit/{path}",
            handler,
            name=f"audit_{name}",
            summary=f"the exact, unsuppressed counts of {what} on W or a day of the history "
            "(the data controller's verification; SITUATION_AUDIT_TOKEN only)",
            description=AUDIT_DESCRIPTION,
            body=Scope,
            body_description="exact counts",
            params=(*params, AUDIT_AS_OF),
            errors={400: f"malformed {name}; {AUDIT_AS_OF_ERROR}", 404: "unknown scope"},
        )
        for path, handler, name, what, params in (
            ("picture", handlers.audit_picture, "picture", "all six municipalities", ()),
            (
                "municipalities/{code}",
                handlers.audit_municipality,
                "municipality",
                "one municipality",
                (CODE,),
            ),
            (
                "areas/{postcode}",
                handlers.audit_area,
                "area",
                "one postcode area",
                (POSTCODE_PARAM,),
            ),
        )
    ),
    Route(
        "GET",
        "/api/v1/types",
        handlers.family_types,
        name="types",
        summary="the most common family types of all, a municipality or an area: each "
        "described by what sets it apart from the average family, with its size and its "
        "service-need group",
        description=TYPES_DESCRIPTION,
        body=TypeList,
        body_description="types",
        params=(
            Param(
                "municipality",
                "query",
                "3-digit municipality code (default: all six together)",
                "837",
                MUNICIPALITY_CODE,
            ),
            Param(
                "area",
                "query",
                "5-digit postcode (with municipality: the area must lie in it)",
                "33100",
                POSTCODE,
            ),
            Param(
                "limit",
                "query",
                f"types listed, 1 … {LIMIT_MAX} (default {LIMIT_DEFAULT})",
                "20",
                r"^\d{1,3}$",
            ),
        ),
        errors={
            400: "malformed municipality, area or limit; an area outside the municipality",
            404: "not a covered municipality; unknown area",
        },
    ),
    Route(
        "GET",
        "/api/v1/impact",
        handlers.impact,
        name="impact",
        summary="what happens to families after a service starts, against comparable "
        "families that start it later: per service, the effect on moving to a lower "
        "(better) outcome group at 3, 6 and 12 months, with its interval, the minimum "
        "detectable effect and the naive before/after, an event study from −6 to +12 "
        "months and a pre-trend check",
        description=IMPACT_DESCRIPTION,
        body=ImpactList,
        body_description="impact",
        params=(
            Param(
                "service",
                "query",
                f"one of {', '.join(SERVICES)} (default: all)",
                "family_work",
                enum=SERVICES,
            ),
            Param(
                "municipality",
                "query",
                "3-digit municipality code: the entries of that municipality (default: all "
                "six together)",
                "837",
                MUNICIPALITY_CODE,
            ),
            Param(
                "area",
                "query",
                "5-digit postcode: the entries who lived there, each against the comparison "
                "families of its municipality stratum (mostly withheld: an area's cohorts "
                "are small); with municipality, the area must lie in it",
                "33100",
                POSTCODE,
            ),
        ),
        errors={
            400: "an unknown service; a malformed municipality or area; an area outside "
            "the municipality",
            404: "not a covered municipality; unknown area",
        },
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
        summary="server-sent events: `event: area` with the area's published JSON (Scope) "
        "for every area whose answer changed, which happens once per published day (when W "
        "moves on); comments as heartbeats",
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
        reads_redis=False,
    ),
)

PATHS = frozenset(r.path for r in ROUTES)
AUDIT_PREFIX = "/api/v1/audit/"
PUBLIC_PATHS = frozenset(r.path for r in ROUTES if r.public)


def is_public(path: str) -> bool:
    """Answers without the token: the public routes and the page's static files."""
    return path in PUBLIC_PATHS or path.startswith(STATIC_PREFIX)


def is_audit(path: str) -> bool:
    """Answers only with ``SITUATION_AUDIT_TOKEN``: the exact counts."""
    return path.startswith(AUDIT_PREFIX)


def register(router: web.UrlDispatcher) -> None:
    for r in ROUTES:
        if r.method == "GET":
            router.add_get(r.path, r.handler, name=r.name)  # answers HEAD too
        else:
            router.add_route(r.method, r.path, r.handler, name=r.name)
    # Files, not operations: outside the OpenAPI document, like any site's assets.
    router.add_static(STATIC_PREFIX, handlers.STATIC_DIR, name="static")
