"""The situation picture HTTP API (../shared/contract/situation-api.md).

``tilannekuva api [--host H] [--port P]`` serves it; tests and the demo build the app
with :func:`make_app`. Every answer is computed from the whole picture suppressed with
:func:`models.suppression.suppress` (``SITUATION_MIN_CELL``); the suppressed picture is
cached briefly and keyed on the content read from Redis, so a burst of requests costs
one suppression. Nothing served names a family or a person: the API only ever reads
the aggregate hashes, the watermark and the alerts.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import re
import time
from datetime import UTC, datetime

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from models.areas import reference_areas
from models.contract import COVERED_MUNICIPALITIES
from models.suppression import suppress
from sinks import redis_reader
from tilannekuva.config import Settings

CACHE_TTL_S = 1.0
HEARTBEAT_S = 15.0
ALERTS_LIMIT = 1000

PATHS = (
    "/healthz",
    "/api/v1/picture",
    "/api/v1/municipalities/{code}",
    "/api/v1/areas",
    "/api/v1/areas/{postcode}",
    "/api/v1/alerts",
    "/api/v1/stream",
    "/metrics",
    "/openapi.json",
)

K_SETTINGS = web.AppKey("settings", Settings)
K_REDIS = web.AppKey("redis", object)
K_STATE = web.AppKey("state", dict)


# --------------------------------------------------------------------------- CLI


def add_arguments(parser) -> None:
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=int, default=None, help="port (default SITUATION_API_PORT or 8080)"
    )


def run(args, settings: Settings) -> int:
    import redis.asyncio as aioredis

    port = args.port if args.port is not None else settings.api_port
    if not settings.api_token:
        print("tilannekuva api: SITUATION_API_TOKEN is not set: only /healthz will answer")

    async def on_cleanup(app: web.Application) -> None:
        await app[K_REDIS].aclose()

    app = make_app(settings, aioredis.Redis.from_url(settings.redis_url))
    app.on_cleanup.append(on_cleanup)
    web.run_app(app, host=args.host, port=port, print=lambda msg: print(f"tilannekuva api: {msg}"))
    return 0


# --------------------------------------------------------------------------- picture


def _scope_body(scope: dict, area: str | None, municipality: str | None, as_of, updated_at) -> dict:
    body = {
        "area": area,
        "municipality": municipality,
        "as_of": as_of,
        "indicators": scope["indicators"],
    }
    if "service_need_groups" in scope:
        body["service_need_groups"] = scope["service_need_groups"]
    body["suppressed"] = scope["suppressed"]
    body["updated_at"] = updated_at
    return body


async def suppressed_picture(app: web.Application, *, fresh: bool = False) -> dict:
    """The suppressed picture with ``as_of`` and ``updated_at``; cached on content."""
    state = app[K_STATE]
    cached = state.get("cache")
    now = time.monotonic()
    if cached and not fresh and now - cached["at"] < CACHE_TTL_S:
        return cached["picture"]
    async with state["lock"]:
        cached = state.get("cache")
        if cached and not fresh and time.monotonic() - cached["at"] < CACHE_TTL_S:
            return cached["picture"]
        raw = await redis_reader.read_picture_async(app[K_REDIS])
        digest = hashlib.sha256(json.dumps(raw, sort_keys=True).encode()).hexdigest()
        if cached and cached["digest"] == digest:
            cached["at"] = time.monotonic()
            return cached["picture"]
        min_cell = app[K_SETTINGS].min_cell
        loop = asyncio.get_running_loop()
        sup = await loop.run_in_executor(None, suppress, raw, min_cell)
        sup["as_of"] = raw["as_of"]
        sup["updated_at"] = raw["updated_at"]
        state["cache"] = {"at": time.monotonic(), "digest": digest, "picture": sup}
        state["suppressions"].inc()
        return sup


def area_body(pic: dict, postcode: str) -> dict:
    a = pic["areas"][postcode]
    return _scope_body(
        a, postcode, a["municipality"], pic["as_of"], pic["updated_at"].get(f"a:{postcode}")
    )


# --------------------------------------------------------------------------- handlers


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def picture(request: web.Request) -> web.Response:
    pic = await suppressed_picture(request.app)
    return web.json_response(
        _scope_body(pic["all"], None, None, pic["as_of"], pic["updated_at"].get("all"))
    )


async def municipality(request: web.Request) -> web.Response:
    code = request.match_info["code"]
    if not re.fullmatch(r"\d{3}", code):
        raise _error(web.HTTPBadRequest, "municipality code must be 3 digits")
    if code not in COVERED_MUNICIPALITIES:
        raise _error(web.HTTPNotFound, "municipality not covered")
    pic = await suppressed_picture(request.app)
    m = pic["municipalities"][code]
    return web.json_response(
        _scope_body(m, None, code, pic["as_of"], pic["updated_at"].get(f"m:{code}"))
    )


async def areas(request: web.Request) -> web.Response:
    pic = await suppressed_picture(request.app)
    ref = reference_areas()
    items = []
    for pc, a in pic["areas"].items():
        item = {"area": pc, "municipality": a["municipality"]}
        if pc in ref:
            item["name"] = ref[pc]["name"]
            item["name_sv"] = ref[pc]["name_sv"]
        item["families"] = a["indicators"]["families"]
        item["suppressed"] = "families" in a["suppressed"]
        items.append(item)
    return web.json_response({"as_of": pic["as_of"], "areas": items})


async def area(request: web.Request) -> web.Response:
    postcode = request.match_info["postcode"]
    if not re.fullmatch(r"\d{5}", postcode):
        raise _error(web.HTTPBadRequest, "postcode must be 5 digits")
    pic = await suppressed_picture(request.app)
    if postcode not in pic["areas"]:
        raise _error(web.HTTPNotFound, "unknown postcode area")
    return web.json_response(area_body(pic, postcode))


def parse_since(raw: str) -> float:
    """Epoch seconds of an ISO-8601 date or timestamp (naive means UTC)."""
    text = raw.strip()
    if not text or len(text) > 64:
        raise ValueError("empty")
    dt = datetime.fromisoformat(text.replace("z", "Z"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


async def alerts(request: web.Request) -> web.Response:
    since = request.query.get("since")
    since_epoch = None
    if since is not None:
        try:
            since_epoch = parse_since(since)
        except ValueError:
            raise _error(
                web.HTTPBadRequest, "since must be an ISO-8601 date or timestamp"
            ) from None
    items = await redis_reader.read_alerts_async(request.app[K_REDIS], since_epoch, ALERTS_LIMIT)
    return web.json_response({"since": since, "alerts": items})


async def stream(request: web.Request) -> web.StreamResponse:
    """Server-sent events: ``event: area`` with the suppressed area per changed area."""
    app = request.app
    pubsub = app[K_REDIS].pubsub()
    await pubsub.subscribe(redis_reader.CHANNEL_CHANGES)
    resp = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    app[K_STATE]["streams"].inc()
    try:
        await resp.prepare(request)
        await resp.write(b": connected\n\n")  # subscribed: changes from now on arrive
        heartbeat = app[K_STATE]["heartbeat_s"]
        last = time.monotonic()
        while True:
            msg = await pubsub.get_message(
                ignore_subscribe_messages=True, timeout=min(1.0, heartbeat)
            )
            if msg is None or msg.get("type") != "message":
                if time.monotonic() - last >= heartbeat:
                    await resp.write(b": heartbeat\n\n")
                    last = time.monotonic()
                continue
            try:
                scopes = json.loads(redis_reader._s(msg["data"]))
            except ValueError:
                continue
            if not isinstance(scopes, list):
                continue
            postcodes = sorted({s[2:] for s in scopes if isinstance(s, str) and s.startswith("a:")})
            if not postcodes:
                continue
            pic = await suppressed_picture(app, fresh=True)
            for pc in postcodes:
                if pc not in pic["areas"]:
                    continue
                data = json.dumps(area_body(pic, pc), separators=(",", ":"))
                await resp.write(f"event: area\ndata: {data}\n\n".encode())
                app[K_STATE]["events"].inc()
            last = time.monotonic()
    except ConnectionResetError:
        pass  # the client went away; cancellation propagates through finally
    finally:
        app[K_STATE]["streams"].dec()
        with contextlib.suppress(Exception):
            await pubsub.unsubscribe(redis_reader.CHANNEL_CHANGES)
            await pubsub.aclose()
    return resp


_SHARE_AT = {
    "type": "object",
    "properties": {"as_of": {"type": "string", "format": "date"}, "share": {"type": "number"}},
}
ALERT_SCHEMA = {
    "type": "object",
    "description": "A trend alert (docs/design.md, 'Trend alerts'): the shown share of families with "
    "an indicator (rate per family for the window counts) rose by at least the rule's rise over "
    "window_days of event time. Built from shown cells only.",
    "properties": {
        "id": {
            "type": "string",
            "description": "hash of scope, indicator and as_of: repeats are the same alert",
        },
        "rule": {"type": "string"},
        "raised_at": {"type": "string", "format": "date-time"},
        "as_of": {"type": "string", "format": "date"},
        "scope": {"type": "string", "enum": ["all", "municipality", "area"]},
        "area": {"type": ["string", "null"]},
        "municipality": {"type": ["string", "null"]},
        "indicator": {"type": "string"},
        "window_days": {"type": "integer"},
        "before": _SHARE_AT,
        "now": _SHARE_AT,
        "rise": {"type": "number"},
    },
}

SHARE_INDICATORS = (
    "single_parent_families",
    "families_social_assistance",
    "families_unemployed_parent",
    "families_child_welfare",
)


async def metrics(request: web.Request) -> web.Response:
    # Shares per municipality for the trend alert rules, from the suppressed picture
    # only: a share is exported where both its counts are shown.
    state = request.app[K_STATE]
    pic = await suppressed_picture(request.app)
    for code, scope in pic["municipalities"].items():
        ind = scope["indicators"]
        for name in SHARE_INDICATORS:
            if ind.get(name) is not None and ind.get("families"):
                state["share"].labels(code, name).set(ind[name] / ind["families"])
            else:
                with contextlib.suppress(KeyError):
                    state["share"].remove(code, name)
    body = generate_latest(state["registry"]) + generate_latest(REGISTRY)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_spec())


def _error(cls, message: str):
    return cls(text=json.dumps({"error": message}), content_type="application/json")


# --------------------------------------------------------------------------- middleware


def _route_label(request: web.Request) -> str:
    info = request.match_info.route.resource if request.match_info.route else None
    canonical = getattr(info, "canonical", None) if info is not None else None
    return canonical if canonical in PATHS else "other"


@web.middleware
async def observe(request: web.Request, handler):
    state = request.app[K_STATE]
    route = _route_label(request)
    start = time.perf_counter()
    status = 500
    try:
        resp = await handler(request)
        status = resp.status
        return resp
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        state["requests"].labels(request.method, route, str(status)).inc()
        state["latency"].labels(route).observe(time.perf_counter() - start)


@web.middleware
async def authenticate(request: web.Request, handler):
    if request.path == "/healthz":
        return await handler(request)
    token = request.app[K_SETTINGS].api_token
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    ok = (
        bool(token)
        and scheme.lower() == "bearer"
        and hmac.compare_digest(given.strip().encode("utf-8"), token.encode("utf-8"))
    )
    if not ok:
        raise web.HTTPUnauthorized(
            text=json.dumps({"error": "unauthorized"}),
            content_type="application/json",
            headers={"WWW-Authenticate": 'Bearer realm="tilannekuva"'},
        )
    return await handler(request)


# --------------------------------------------------------------------------- app


def make_app(settings: Settings, redis, *, heartbeat_s: float = HEARTBEAT_S) -> web.Application:
    """The aiohttp application; ``redis`` is a ``redis.asyncio.Redis`` (bytes or str)."""
    registry = CollectorRegistry(auto_describe=True)
    state = {
        "lock": asyncio.Lock(),
        "cache": None,
        "heartbeat_s": heartbeat_s,
        "registry": registry,
        "requests": Counter(
            "tk_api_requests",
            "HTTP requests answered",
            ["method", "route", "status"],
            registry=registry,
        ),
        "latency": Histogram(
            "tk_api_request_duration_seconds", "HTTP request latency", ["route"], registry=registry
        ),
        "suppressions": Counter(
            "tk_api_picture_suppressions",
            "times the whole picture was suppressed anew",
            registry=registry,
        ),
        "events": Counter("tk_api_stream_events", "server-sent area events", registry=registry),
        "share": Gauge(
            "tk_area_indicator_share",
            "Share of counted families with the indicator, per municipality (shown counts only)",
            ["municipality", "indicator"],
            registry=registry,
        ),
    }
    state["streams"] = Gauge(
        "tk_api_stream_clients", "open server-sent event streams", registry=registry
    )
    app = web.Application(middlewares=[observe, authenticate])
    app[K_SETTINGS] = settings
    app[K_REDIS] = redis
    app[K_STATE] = state
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/api/v1/picture", picture)
    app.router.add_get("/api/v1/municipalities/{code}", municipality)
    app.router.add_get("/api/v1/areas", areas)
    app.router.add_get("/api/v1/areas/{postcode}", area)
    app.router.add_get("/api/v1/alerts", alerts)
    app.router.add_get("/api/v1/stream", stream)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/openapi.json", openapi)
    return app


# --------------------------------------------------------------------------- OpenAPI


def openapi_spec() -> dict:
    """OpenAPI 3.1 description of every path."""
    from models.contract import INDICATORS

    count = {"type": ["integer", "null"], "minimum": 0}
    scope = {
        "type": "object",
        "required": ["area", "municipality", "as_of", "indicators", "suppressed", "updated_at"],
        "properties": {
            "area": {
                "type": ["string", "null"],
                "pattern": r"^\d{5}$",
                "description": "postcode; null for a municipality or all",
            },
            "municipality": {
                "type": ["string", "null"],
                "pattern": r"^\d{3}$",
                "description": "null for all",
            },
            "as_of": {
                "type": ["string", "null"],
                "format": "date",
                "description": "the watermark W",
            },
            "indicators": {
                "type": "object",
                "required": list(INDICATORS),
                "properties": {k: count for k in INDICATORS},
                "description": "null: suppressed small cell (1 … SITUATION_MIN_CELL−1) or complementary suppression",
            },
            "service_need_groups": {
                "type": "object",
                "properties": {str(i): count for i in range(1, 11)},
                "description": "families per service-need group 1 (least) … 10 (most); present once the family-types model runs",
            },
            "suppressed": {
                "type": "array",
                "items": {"type": "string"},
                "description": "names of null cells, groups as service_need_groups.N",
            },
            "updated_at": {"type": ["string", "null"], "format": "date-time"},
        },
    }
    err = {"type": "object", "properties": {"error": {"type": "string"}}}

    def resp(desc, schema=None, content_type="application/json"):
        r = {"description": desc}
        if schema is not None:
            r["content"] = {content_type: {"schema": schema}}
        return r

    unauthorized = resp("missing or wrong bearer token (always, when no token is configured)", err)
    secured = [{"bearer": []}]

    def op(summary, ok, extra=None, params=None):
        o = {"summary": summary, "security": secured, "responses": {"200": ok, "401": unauthorized}}
        o["responses"].update(extra or {})
        if params:
            o["parameters"] = params
        return {"get": o}

    code_p = {
        "name": "code",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": r"^\d{3}$"},
    }
    pc_p = {
        "name": "postcode",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": r"^\d{5}$"},
    }
    since_p = {
        "name": "since",
        "in": "query",
        "required": False,
        "schema": {"type": "string"},
        "description": "ISO-8601 date or timestamp; naive means UTC",
    }
    area_item = {
        "type": "object",
        "properties": {
            "area": {"type": "string"},
            "municipality": {"type": "string"},
            "name": {"type": "string"},
            "name_sv": {"type": "string"},
            "families": count,
            "suppressed": {"type": "boolean"},
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "tilannekuva — situation picture of families with children",
            "version": "1",
            "description": "Output contract situation-api.md, version 1. Small cells are suppressed.",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Scope": scope, "Error": err, "Alert": ALERT_SCHEMA},
        },
        "paths": {
            "/healthz": {
                "get": {
                    "summary": "liveness",
                    "security": [],
                    "responses": {
                        "200": resp(
                            "ok", {"type": "object", "properties": {"status": {"const": "ok"}}}
                        )
                    },
                }
            },
            "/api/v1/picture": op(
                "the picture for all six municipalities together",
                resp("all", {"$ref": "#/components/schemas/Scope"}),
            ),
            "/api/v1/municipalities/{code}": op(
                "one municipality",
                resp("municipality", {"$ref": "#/components/schemas/Scope"}),
                {
                    "400": resp("malformed code", err),
                    "404": resp("not a covered municipality", err),
                },
                [code_p],
            ),
            "/api/v1/areas": op(
                "every postcode area with its municipality and families",
                resp(
                    "areas",
                    {
                        "type": "object",
                        "properties": {
                            "as_of": {"type": ["string", "null"]},
                            "areas": {"type": "array", "items": area_item},
                        },
                    },
                ),
            ),
            "/api/v1/areas/{postcode}": op(
                "one postcode area",
                resp("area", {"$ref": "#/components/schemas/Scope"}),
                {"400": resp("malformed postcode", err), "404": resp("unknown area", err)},
                [pc_p],
            ),
            "/api/v1/alerts": op(
                "alerts raised, newest first",
                resp(
                    "alerts",
                    {
                        "type": "object",
                        "properties": {
                            "since": {"type": ["string", "null"]},
                            "alerts": {
                                "type": "array",
                                "items": {"$ref": "#/components/schemas/Alert"},
                            },
                        },
                    },
                ),
                {"400": resp("malformed since", err)},
                [since_p],
            ),
            "/api/v1/stream": op(
                "server-sent events: `event: area` with the area's JSON (Scope) per changed area; comments as heartbeats",
                resp("event stream", {"type": "string"}, "text/event-stream"),
            ),
            "/metrics": op(
                "Prometheus metrics", resp("text format", {"type": "string"}, "text/plain")
            ),
            "/openapi.json": op("this description", resp("OpenAPI 3.1", {"type": "object"})),
        },
    }
