"""Request metrics and the bearer token. ``observe`` runs outermost, so refusals count."""

from __future__ import annotations

import hmac
import time

from aiohttp import web

from tilannekuva.api.routes import PATHS, PUBLIC_PATHS
from tilannekuva.api.schemas import http_error
from tilannekuva.api.state import SETTINGS, STATE


def _route_label(request: web.Request) -> str:
    # The route's pattern, never the path itself: labels must not carry postcodes, and
    # unknown paths must not grow the label set.
    route = request.match_info.route
    canonical = getattr(route.resource, "canonical", None) if route else None
    return canonical if canonical in PATHS else "other"


@web.middleware
async def observe(request: web.Request, handler):
    metrics = request.app[STATE].metrics
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
        metrics.requests.labels(request.method, route, str(status)).inc()
        metrics.latency.labels(route).observe(time.perf_counter() - start)


@web.middleware
async def authenticate(request: web.Request, handler):
    # By path, before routing: an unknown path is 401 too, so it tells nothing without a token.
    if request.path in PUBLIC_PATHS:
        return await handler(request)
    token = request.app[SETTINGS].api_token
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    ok = (
        bool(token)
        and scheme.lower() == "bearer"
        and hmac.compare_digest(given.strip().encode("utf-8"), token.encode("utf-8"))
    )
    if not ok:
        raise http_error(
            web.HTTPUnauthorized,
            "unauthorized",
            headers={"WWW-Authenticate": 'Bearer realm="tilannekuva"'},
        )
    return await handler(request)
