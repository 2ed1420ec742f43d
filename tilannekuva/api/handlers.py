"""The request handlers. Which path, method and token each one has is in ``routes.py``.

Nothing served names a family or a person: the handlers only ever read the aggregate
picture, the watermark and the alerts, through :mod:`sinks.redis_reader`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from models.areas import reference_areas
from models.contract import COVERED_MUNICIPALITIES
from models.publication import published_last
from sinks import redis_reader
from tilannekuva.api import impact as impact_api
from tilannekuva.api.cube import FIELD_INDEX, HIDDEN
from tilannekuva.api.history import series
from tilannekuva.api.picture import PastDay, empty_body, exact_scope, past_scope_body
from tilannekuva.api.schemas import (
    AREA_DETAIL,
    MUNICIPALITY_CODE,
    POSTCODE,
    RETRY_AFTER_S,
    http_error,
)
from tilannekuva.api.series import (
    BadRequest,
    check_in_history,
    iso,
    parse_day,
    parse_history_query,
)
from tilannekuva.api.state import HISTORY, IMPACT, OPENAPI, REDIS, STATE, TYPES
from tilannekuva.api.types import BadQuery, parse_query
from tilannekuva.api.types import scope_body as types_body

ALERTS_LIMIT = 1000
STATIC_DIR = Path(__file__).parent / "static"  # the page (routes.STATIC_PREFIX)
# Exported as shares per municipality for the Prometheus trend rule.
SHARE_INDICATORS = (
    "single_parent_families",
    "families_social_assistance",
    "families_unemployed_parent",
    "families_child_welfare",
)
REBUILDING = "the history is being rebuilt (e.g. Redis was reset); retry"
STREAM_POLL_S = 1.0  # how often a stream looks at the publication
SSE_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # nginx would otherwise hold the events back
}


def rebuilding() -> web.HTTPException:
    """503 with Retry-After, as while Redis is unreachable (tilannekuva/api/middleware.py)."""
    return http_error(
        web.HTTPServiceUnavailable, REBUILDING, headers={"Retry-After": str(RETRY_AFTER_S)}
    )


async def page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def picture(request: web.Request) -> web.Response:
    day = await _published(request)
    if day is None:
        return web.json_response(empty_body(None, None))
    return web.json_response(past_scope_body(day, "all", None, None))


def _municipality_code(request: web.Request) -> str:
    code = request.match_info["code"]
    if not re.fullmatch(MUNICIPALITY_CODE, code):
        raise http_error(web.HTTPBadRequest, "municipality code must be 3 digits")
    if code not in COVERED_MUNICIPALITIES:
        raise http_error(web.HTTPNotFound, "municipality not covered")
    return code


def _postcode(request: web.Request) -> str:
    postcode = request.match_info["postcode"]
    if not re.fullmatch(POSTCODE, postcode):
        raise http_error(web.HTTPBadRequest, "postcode must be 5 digits")
    return postcode


async def municipality(request: web.Request) -> web.Response:
    code = _municipality_code(request)
    day = await _published(request)
    if day is None:
        return web.json_response(empty_body(None, code))
    return web.json_response(past_scope_body(day, f"m:{code}", None, code))


async def areas(request: web.Request) -> web.Response:
    detail = request.query.get("detail", "families")
    if detail not in AREA_DETAIL:
        raise http_error(web.HTTPBadRequest, f"detail must be one of {', '.join(AREA_DETAIL)}")
    ref = reference_areas()
    day = await _published(request)
    if day is not None:
        idx = day.layout.index
        listing = [(pc, muni, int(day.shown[idx[f"a:{pc}"], 0])) for pc, muni in day.layout.areas]
        as_of = iso(day.day)
    else:
        listing = [(pc, a["municipality"], HIDDEN) for pc, a in sorted(ref.items())]
        as_of = None
    items = []
    for pc, muni, families in listing:
        item = {"area": pc, "municipality": muni}
        if pc in ref:
            item["name"] = ref[pc]["name"]
            item["name_sv"] = ref[pc]["name_sv"]
        shown = families != HIDDEN
        item["families"] = families if shown else None
        item["suppressed"] = not shown
        if detail == "full":
            # The same body as the area's own answer: one request draws the whole map.
            item["picture"] = (
                past_scope_body(day, f"a:{pc}", pc, muni)
                if day is not None
                else empty_body(pc, muni)
            )
        items.append(item)
    return web.Response(
        body=orjson.dumps({"as_of": as_of, "areas": items}), content_type="application/json"
    )


async def area(request: web.Request) -> web.Response:
    postcode = _postcode(request)
    day = await _published(request)
    if day is None:
        known = await redis_reader.known_areas_async(request.app[REDIS])
        if postcode not in known:
            raise http_error(web.HTTPNotFound, "unknown postcode area")
        return web.json_response(empty_body(postcode, known[postcode]))
    scope = f"a:{postcode}"
    if scope not in day.layout.index:
        raise http_error(web.HTTPNotFound, "unknown postcode area")
    muni = day.layout.municipality_of[postcode]
    return web.json_response(past_scope_body(day, scope, postcode, muni))


async def family_types(request: web.Request) -> web.Response:
    """The most common family types of all, a municipality or an area
    (:mod:`tilannekuva.api.types`)."""
    try:
        municipality, postcode, limit = parse_query(request.query)
    except BadQuery as exc:
        raise http_error(web.HTTPBadRequest, str(exc)) from None
    if municipality is not None and municipality not in COVERED_MUNICIPALITIES:
        raise http_error(web.HTTPNotFound, "municipality not covered")
    scope = "all" if municipality is None else f"m:{municipality}"
    if postcode is not None:
        known = await redis_reader.known_areas_async(request.app[REDIS])
        if postcode not in known:
            raise http_error(web.HTTPNotFound, "unknown postcode area")
        if municipality is not None and known[postcode] != municipality:
            raise http_error(web.HTTPBadRequest, "the area is not in that municipality")
        scope, municipality = f"a:{postcode}", known[postcode]
    tp = await request.app[TYPES].get()
    body = types_body(tp, scope, postcode, municipality, limit)
    return web.Response(body=orjson.dumps(body), content_type="application/json")


async def impact(request: web.Request) -> web.Response:
    """Service impact by service and municipality (:mod:`tilannekuva.api.impact`)."""
    try:
        services, municipality, area = impact_api.parse_query(request.query)
    except BadQuery as exc:
        raise http_error(web.HTTPBadRequest, str(exc)) from None
    if municipality is not None and municipality not in COVERED_MUNICIPALITIES:
        raise http_error(web.HTTPNotFound, "municipality not covered")
    redis = request.app[REDIS]
    if area is not None:
        known = await redis_reader.known_areas_async(redis)
        if area not in known:
            raise http_error(web.HTTPNotFound, "unknown postcode area")
        if municipality is not None and known[area] != municipality:
            raise http_error(web.HTTPBadRequest, "the area is not in that municipality")
    answer = await request.app[IMPACT].get((services, municipality, area))
    return web.Response(body=answer, content_type="application/json")


# --------------------------------------------------------------------------- history


async def _span(request: web.Request) -> tuple[int | None, int | None]:
    """(first day of data, W) as day numbers, read now."""
    first, last = await redis_reader.read_span_async(request.app[REDIS])
    return (
        parse_day(first, "first") if first is not None else None,
        parse_day(last, "W") if last is not None else None,
    )


async def _published_span(request: web.Request) -> tuple[int | None, int | None, int | None]:
    """(first day of data, the last completed day, the day an answer that names none is
    of). The completed days end at W − 1, since the day W is still filling
    (docs/disclosure.md); an answer is of that day, or of the one last published while the
    history cache rests after a costly refresh (:meth:`HistoryCache.resting`, a
    catch-up). None before any day is complete."""
    first, w = await _span(request)
    last = published_last(first, w)
    return first, last, request.app[HISTORY].published(first, last)


async def _published(request: web.Request) -> PastDay | None:
    """The day an answer is of, published: ``?as_of=D`` (first day of data … W − 1),
    else the present (:func:`_published_span`; None before any day is complete)."""
    first, last, present = await _published_span(request)
    raw = request.query.get("as_of")
    if raw is None:
        if present is None:
            return None
        on = present
    else:
        try:
            on = parse_day(raw, "as_of")
            check_in_history(on, "as_of", first, last)
        except BadRequest as exc:
            raise http_error(web.HTTPBadRequest, str(exc)) from None
    cache = request.app[HISTORY]
    if cache.snapshot is None or cache.snapshot.last < on + 1:
        # W moved on since the last publication: publish (a no-op if another request
        # or the background refresh just did).
        await cache.refresh(since_generation=cache.generation)
    got = await cache.pictures([on])
    if got is None:
        raise rebuilding()
    layout, shown, groups = got
    updated = cache.snapshot.published_at if raw is None and cache.snapshot else None
    return PastDay(on, layout, shown[0], bool(groups[0]), updated)


async def _history(
    request: web.Request, scope: str, area: str | None, municipality: str | None
) -> web.Response:
    try:
        first, last, present = await _published_span(request)
        query = parse_history_query(request.query, first, last, present)
    except BadRequest as exc:
        raise http_error(web.HTTPBadRequest, str(exc)) from None
    body = {
        "area": area,
        "municipality": municipality,
        "first_day": iso(first) if first is not None else None,
        "last_day": iso(present) if present is not None else None,
        "series": [],
    }
    if query.days:
        got = await request.app[HISTORY].pictures(query.days)
        if got is None:
            raise rebuilding()
        layout, shown, groups = got
        i = layout.index.get(scope)
        if i is None:
            raise http_error(web.HTTPNotFound, "unknown postcode area")
        body["series"] = series(query.days, shown[:, i], groups, query.indicators)
    return web.Response(body=orjson.dumps(body), content_type="application/json")


async def picture_history(request: web.Request) -> web.Response:
    return await _history(request, "all", None, None)


async def municipality_history(request: web.Request) -> web.Response:
    code = _municipality_code(request)
    return await _history(request, f"m:{code}", None, code)


async def area_history(request: web.Request) -> web.Response:
    postcode = _postcode(request)
    known = await redis_reader.known_areas_async(request.app[REDIS])
    if postcode not in known:
        raise http_error(web.HTTPNotFound, "unknown postcode area")
    return await _history(request, f"a:{postcode}", postcode, known[postcode])


# --------------------------------------------------------------------------- audit


async def _audit(
    request: web.Request, scope: str, area: str | None, municipality: str | None
) -> web.Response:
    """The exact counts of one scope on ``?as_of=D`` (default W): the present hashes on
    W, the history's difference arrays on an earlier day."""
    client = request.app[REDIS]
    raw = request.query.get("as_of")
    first, last = await _span(request)
    if raw is not None:
        try:
            on = parse_day(raw, "as_of")
            check_in_history(on, "as_of", first, last)
        except BadRequest as exc:
            raise http_error(web.HTTPBadRequest, str(exc)) from None
        if on != last:
            hist = await redis_reader.read_history_async(client, [scope], [on])
            counts = redis_reader.counts_of(hist[scope][on])
            return web.json_response(exact_scope(counts, area, municipality, iso(on), None))
    pic = await redis_reader.read_picture_async(client)
    counts = redis_reader.scope_counts(pic, scope)
    if counts is None:
        raise http_error(web.HTTPNotFound, "unknown postcode area")
    updated = pic["updated_at"].get(scope)
    return web.json_response(exact_scope(counts, area, municipality, pic["as_of"], updated))


async def audit_picture(request: web.Request) -> web.Response:
    return await _audit(request, "all", None, None)


async def audit_municipality(request: web.Request) -> web.Response:
    code = _municipality_code(request)
    return await _audit(request, f"m:{code}", None, code)


async def audit_area(request: web.Request) -> web.Response:
    postcode = _postcode(request)
    known = await redis_reader.known_areas_async(request.app[REDIS])
    if postcode not in known:
        raise http_error(web.HTTPNotFound, "unknown postcode area")
    return await _audit(request, f"a:{postcode}", postcode, known[postcode])


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
            raise http_error(
                web.HTTPBadRequest, "since must be an ISO-8601 date or timestamp"
            ) from None
    items = await redis_reader.read_alerts_async(request.app[REDIS], since_epoch, ALERTS_LIMIT)
    return web.json_response({"since": since, "alerts": items})


async def stream(request: web.Request) -> web.StreamResponse:
    """Server-sent events: ``event: area`` with the published area, for every area whose
    published answer changed (once per published day: :func:`_relay`)."""
    app = request.app
    sent = await _area_bodies(request)  # what the client can already read (Redis away: 503)
    resp = web.StreamResponse(headers=SSE_HEADERS)
    app[STATE].metrics.streams.inc()
    try:
        await resp.prepare(request)
        await resp.write(b": connected\n\n")  # from now on, changes arrive
        await _relay(request, resp, sent)
    except ConnectionResetError:
        pass  # the client went away; cancellation propagates through finally
    finally:
        app[STATE].metrics.streams.dec()
    return resp


async def _area_bodies(request: web.Request) -> dict[str, str]:
    """``{postcode: the area's published answer as JSON}`` of the present."""
    day = await _published(request)
    if day is None:
        return {}
    return {
        pc: json.dumps(past_scope_body(day, f"a:{pc}", pc, muni), separators=(",", ":"))
        for pc, muni in day.layout.areas
    }


async def _relay(request: web.Request, resp: web.StreamResponse, sent: dict[str, str]) -> None:
    """Forever: look at the publication every second (it changes only when W moves on,
    :mod:`tilannekuva.api.history`), send the areas whose answer changed, and a comment
    after ``heartbeat_s`` of quiet."""
    app = request.app
    heartbeat = app[STATE].heartbeat_s
    last = time.monotonic()
    while True:
        await asyncio.sleep(min(STREAM_POLL_S, heartbeat))
        bodies = await _area_bodies(request)
        changed = sorted(pc for pc, data in bodies.items() if sent.get(pc) != data)
        for pc in changed:
            await resp.write(f"event: area\ndata: {bodies[pc]}\n\n".encode())
            app[STATE].metrics.events.inc()
        sent.update(bodies)
        if changed:
            last = time.monotonic()
        elif time.monotonic() - last >= heartbeat:
            await resp.write(b": heartbeat\n\n")
            last = time.monotonic()


async def metrics(request: web.Request) -> web.Response:
    state = request.app[STATE]
    _export_shares(state.metrics.share, await _published(request))
    body = generate_latest(state.metrics.registry) + generate_latest(REGISTRY)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def _export_shares(gauge, day: PastDay | None) -> None:
    """Shares per municipality from the published day only: a share is exported where
    both its counts are shown, so none lets a hidden count be recomputed."""
    for code in sorted(COVERED_MUNICIPALITIES):
        row = day.shown[day.layout.index[f"m:{code}"]] if day is not None else None
        families = None if row is None else int(row[FIELD_INDEX["families"]])
        for name in SHARE_INDICATORS:
            v = None if row is None else int(row[FIELD_INDEX[name]])
            if v is not None and v != HIDDEN and families not in (None, HIDDEN, 0):
                gauge.labels(code, name).set(v / families)
            else:
                with contextlib.suppress(KeyError):
                    gauge.remove(code, name)


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPENAPI])
