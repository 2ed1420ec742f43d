"""Request metrics, the bearer token and the security headers. ``observe`` runs
outermost, so refusals count."""

from __future__ import annotations

import hmac
import time

from aiohttp import web

from sinks.connection import UNREACHABLE
from tilannekuva.api.routes import PATHS, is_audit, is_public
from tilannekuva.api.schemas import RETRY_AFTER_S, http_error
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
    if is_public(request.path):
        return await handler(request)
    # The exact counts open only with the data controller's own token, never the
    # dashboard's (and the dashboard paths never with the audit token).
    settings = request.app[SETTINGS]
    token = settings.audit_token if is_audit(request.path) else settings.api_token
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


@web.middleware
async def unavailable(request: web.Request, handler):
    """Redis unreachable: 503 with Retry-After, never a 500. The client's pool connects
    again by itself on a later request, so the API recovers without a restart."""
    try:
        return await handler(request)
    except UNREACHABLE:
        raise http_error(
            web.HTTPServiceUnavailable,
            "the picture's store (Redis) is unreachable; retry",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        ) from None


# The page loads nothing from another origin and runs no inline script: the browser
# itself then refuses any request that would leave the server's origin.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


async def secure(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: runs before the headers of every answer leave, the
    stream's and the static files' too (a middleware would see those too late)."""
    response.headers.update(SECURITY_HEADERS)
