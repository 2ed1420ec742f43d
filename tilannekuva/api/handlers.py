"""The request handlers. Which path, method and token each one has is in ``routes.py``.

Nothing served names a family or a person: the handlers only ever read the aggregate
picture, the watermark and the alerts, through :mod:`sinks.redis_reader`.
"""

from __future__ import annotations

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
from sinks import keys, redis_reader
from tilannekuva.api.cube import HIDDEN
from tilannekuva.api.history import series
from tilannekuva.api.picture import (
    PastDay,
    area_body,
    exact_scope,
    past_scope_body,
    published_picture,
    scope_body,
)
from tilannekuva.api.schemas import AREA_DETAIL, MUNICIPALITY_CODE, POSTCODE, http_error
from tilannekuva.api.series import (
    BadRequest,
    check_in_history,
    iso,
    parse_day,
    parse_history_query,
)
from tilannekuva.api.state import HISTORY, OPENAPI, REDIS, STATE, TYPES
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
REBUILDING = "the history was reset while answering; retry"
SSE_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # nginx would otherwise hold the events back
}


async def page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def picture(request: web.Request) -> web.Response:
    past = await _past_day(request)
    if past is not None:
        return web.json_response(past_scope_body(past, "all", None, None))
    pic = await published_picture(request.app)
    return web.json_response(
        scope_body(pic["all"], None, None, pic["as_of"], pic["updated_at"].get("all"))
    )


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
    past = await _past_day(request)
    if past is not None:
        return web.json_response(past_scope_body(past, f"m:{code}", None, code))
    pic = await published_picture(request.app)
    m = pic["municipalities"][code]
    return web.json_response(
        scope_body(m, None, code, pic["as_of"], pic["updated_at"].get(f"m:{code}"))
    )


async def areas(request: web.Request) -> web.Response:
    detail = request.query.get("detail", "families")
    if detail not in AREA_DETAIL:
        raise http_error(web.HTTPBadRequest, f"detail must be one of {', '.join(AREA_DETAIL)}")
    ref = reference_areas()
    past = await _past_day(request)
    if past is not None:
        idx = past.layout.index
        listing = [(pc, muni, int(past.shown[idx[f"a:{pc}"], 0])) for pc, muni in past.layout.areas]
        as_of = iso(past.day)
    else:
        pic = await published_picture(request.app)
        listing = [
            (pc, a["municipality"], a["indicators"]["families"]) for pc, a in pic["areas"].items()
        ]
        as_of = pic["as_of"]
    items = []
    for pc, muni, families in listing:
        item = {"area": pc, "municipality": muni}
        if pc in ref:
            item["name"] = ref[pc]["name"]
            item["name_sv"] = ref[pc]["name_sv"]
        shown = families is not None and families != HIDDEN
        item["families"] = families if shown else None
        item["suppressed"] = not shown
        if detail == "full":
            # The same body as the area's own answer: one request draws the whole map.
            item["picture"] = (
                past_scope_body(past, f"a:{pc}", pc, muni)
                if past is not None
                else area_body(pic, pc)
            )
        items.append(item)
    return web.Response(
        body=orjson.dumps({"as_of": as_of, "areas": items}), content_type="application/json"
    )


async def area(request: web.Request) -> web.Response:
    postcode = _postcode(request)
    past = await _past_day(request)
    if past is not None:
        scope = f"a:{postcode}"
        if scope not in past.layout.index:
            raise http_error(web.HTTPNotFound, "unknown postcode area")
        muni = past.layout.municipality_of[postcode]
        return web.json_response(past_scope_body(past, scope, postcode, muni))
    pic = await published_picture(request.app)
    if postcode not in pic["areas"]:
        raise http_error(web.HTTPNotFound, "unknown postcode area")
    return web.json_response(area_body(pic, postcode))


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


# --------------------------------------------------------------------------- history


async def _span(request: web.Request) -> tuple[int | None, int | None]:
    """(first day of data, W) as day numbers, read now."""
    first, last = await redis_reader.read_span_async(request.app[REDIS])
    return (
        parse_day(first, "first") if first is not None else None,
        parse_day(last, "W") if last is not None else None,
    )


async def _past_day(request: web.Request) -> PastDay | None:
    """``?as_of=D`` before W: D's whole picture, suppressed. None without ``as_of`` or
    when D is W: the present answers then (the present is day W)."""
    raw = request.query.get("as_of")
    if raw is None:
        return None
    try:
        day = parse_day(raw, "as_of")
        first, last = await _span(request)
        check_in_history(day, "as_of", first, last)
    except BadRequest as exc:
        raise http_error(web.HTTPBadRequest, str(exc)) from None
    if day == last:
        return None
    got = await request.app[HISTORY].pictures([day])
    if got is None:
        raise http_error(web.HTTPServiceUnavailable, REBUILDING)
    layout, shown, groups = got
    return PastDay(day, layout, shown[0], bool(groups[0]))


async def _history(
    request: web.Request, scope: str, area: str | None, municipality: str | None
) -> web.Response:
    try:
        first, last = await _span(request)
        query = parse_history_query(request.query, first, last)
    except BadRequest as exc:
        raise http_error(web.HTTPBadRequest, str(exc)) from None
    body = {
        "area": area,
        "municipality": municipality,
        "first_day": iso(first) if first is not None else None,
        "last_day": iso(last) if last is not None else None,
        "series": [],
    }
    if query.days:
        got = await request.app[HISTORY].pictures(query.days)
        if got is None:
            raise http_error(web.HTTPServiceUnavailable, REBUILDING)
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
    """Server-sent events: ``event: area`` with the suppressed area per changed area."""
    app = request.app
    pubsub = app[REDIS].pubsub()
    await pubsub.subscribe(keys.CHANGES)
    resp = web.StreamResponse(headers=SSE_HEADERS)
    app[STATE].metrics.streams.inc()
    try:
        await resp.prepare(request)
        await resp.write(b": connected\n\n")  # subscribed: changes from now on arrive
        await _relay(app, pubsub, resp)
    except ConnectionResetError:
        pass  # the client went away; cancellation propagates through finally
    finally:
        app[STATE].metrics.streams.dec()
        with contextlib.suppress(Exception):
            await pubsub.unsubscribe(keys.CHANGES)
            await pubsub.aclose()
    return resp


async def _relay(app: web.Application, pubsub, resp: web.StreamResponse) -> None:
    """Forever: the changed areas as events, a comment after ``heartbeat_s`` of quiet."""
    heartbeat = app[STATE].heartbeat_s
    last = time.monotonic()
    while True:
        msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=min(1.0, heartbeat))
        if msg is None or msg.get("type") != "message":
            if time.monotonic() - last >= heartbeat:
                await resp.write(b": heartbeat\n\n")
                last = time.monotonic()
            continue
        postcodes = _changed_postcodes(msg["data"])
        if not postcodes:
            continue
        pic = await published_picture(app, fresh=True)
        for pc in postcodes:
            if pc in pic["areas"]:
                data = json.dumps(area_body(pic, pc), separators=(",", ":"))
                await resp.write(f"event: area\ndata: {data}\n\n".encode())
                app[STATE].metrics.events.inc()
        last = time.monotonic()


def _changed_postcodes(data: bytes | str) -> list[str]:
    """The postcodes of the area scopes (``a:33100``) in one change notice, sorted."""
    try:
        scopes = json.loads(data)
    except ValueError:
        return []
    if not isinstance(scopes, list):
        return []
    return sorted({s[2:] for s in scopes if isinstance(s, str) and s.startswith("a:")})


async def metrics(request: web.Request) -> web.Response:
    state = request.app[STATE]
    _export_shares(state.metrics.share, await published_picture(request.app))
    body = generate_latest(state.metrics.registry) + generate_latest(REGISTRY)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def _export_shares(gauge, pic: dict) -> None:
    """Shares per municipality from the suppressed picture only: a share is exported
    where both its counts are shown, so none lets a hidden count be recomputed."""
    for code, scope in pic["municipalities"].items():
        ind = scope["indicators"]
        for name in SHARE_INDICATORS:
            if ind.get(name) is not None and ind.get("families"):
                gauge.labels(code, name).set(ind[name] / ind["families"])
            else:
                with contextlib.suppress(KeyError):
                    gauge.remove(code, name)


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPENAPI])
