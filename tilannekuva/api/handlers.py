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

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from models.areas import reference_areas
from models.contract import COVERED_MUNICIPALITIES
from sinks import keys, redis_reader
from tilannekuva.api.picture import area_body, scope_body, suppressed_picture
from tilannekuva.api.schemas import MUNICIPALITY_CODE, POSTCODE, http_error
from tilannekuva.api.state import OPENAPI, REDIS, STATE

ALERTS_LIMIT = 1000
# Exported as shares per municipality for the Prometheus trend rule.
SHARE_INDICATORS = (
    "single_parent_families",
    "families_social_assistance",
    "families_unemployed_parent",
    "families_child_welfare",
)
SSE_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # nginx would otherwise hold the events back
}


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def picture(request: web.Request) -> web.Response:
    pic = await suppressed_picture(request.app)
    return web.json_response(
        scope_body(pic["all"], None, None, pic["as_of"], pic["updated_at"].get("all"))
    )


async def municipality(request: web.Request) -> web.Response:
    code = request.match_info["code"]
    if not re.fullmatch(MUNICIPALITY_CODE, code):
        raise http_error(web.HTTPBadRequest, "municipality code must be 3 digits")
    if code not in COVERED_MUNICIPALITIES:
        raise http_error(web.HTTPNotFound, "municipality not covered")
    pic = await suppressed_picture(request.app)
    m = pic["municipalities"][code]
    return web.json_response(
        scope_body(m, None, code, pic["as_of"], pic["updated_at"].get(f"m:{code}"))
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
    if not re.fullmatch(POSTCODE, postcode):
        raise http_error(web.HTTPBadRequest, "postcode must be 5 digits")
    pic = await suppressed_picture(request.app)
    if postcode not in pic["areas"]:
        raise http_error(web.HTTPNotFound, "unknown postcode area")
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
        pic = await suppressed_picture(app, fresh=True)
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
    _export_shares(state.metrics.share, await suppressed_picture(request.app))
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
