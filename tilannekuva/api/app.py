"""The application factory: settings, Redis, state, middlewares and the route table."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from tilannekuva.aio import stop_tasks
from tilannekuva.api import openapi, routes
from tilannekuva.api.history import REFRESH_S, REFRESH_SHARE, HistoryCache
from tilannekuva.api.impact import SETTLE_S, ImpactCache
from tilannekuva.api.middleware import authenticate, observe, secure, unavailable
from tilannekuva.api.state import (
    HISTORY,
    IMPACT,
    OPENAPI,
    REDIS,
    SETTINGS,
    STATE,
    TYPES,
    State,
)
from tilannekuva.api.types import TypesCache
from tilannekuva.config import Settings

HEARTBEAT_S = 15.0

log = logging.getLogger(__name__)


def make_app(
    settings: Settings,
    redis,
    *,
    heartbeat_s: float = HEARTBEAT_S,
    history_refresh_s: float | None = REFRESH_S,
    history_cadence: bool = True,
    history_share: float | None = REFRESH_SHARE,
    impact_settle_s: float | None = SETTLE_S,
) -> web.Application:
    """The aiohttp application; ``redis`` is a ``redis.asyncio.Redis`` (bytes or str).

    With ``history_refresh_s`` (seconds), a background task keeps the history cache
    fresh and warm from start-up on (see :mod:`tilannekuva.api.history`); None leaves
    it to the requests (each then refreshes only when its days are not held yet).
    ``history_cadence`` False publishes every refresh rather than once per day of ``W``:
    only for measuring the refresh itself (bench/), never for serving.
    ``history_share``: the most of the API's time its history refreshes take where each
    is costly (a catch-up); None publishes every day ``W`` moves to at once, however
    costly: for tests that record every publication. With
    ``impact_settle_s``, a background task makes the page's impact answers once the
    counts have stood that long (:meth:`tilannekuva.api.impact.ImpactCache.run`)."""
    app = web.Application(middlewares=[observe, authenticate, unavailable])
    app[SETTINGS] = settings
    app[REDIS] = redis
    app[STATE] = State(heartbeat_s=heartbeat_s)
    app[OPENAPI] = openapi.document()
    app[HISTORY] = HistoryCache(
        redis,
        settings.min_cell,
        on_suppressed=app[STATE].metrics.history_days.inc,
        cadence=history_cadence,
        share=history_share,
    )
    app[TYPES] = TypesCache(redis, settings.min_cell)
    app[IMPACT] = ImpactCache(redis, settings.min_cell)
    routes.register(app.router)
    app.on_response_prepare.append(secure)
    app.cleanup_ctx.append(_history_task(history_refresh_s))
    app.cleanup_ctx.append(_impact_task(impact_settle_s))
    return app


def _history_task(refresh_s: float | None):
    async def ctx(app: web.Application):
        cache: HistoryCache = app[HISTORY]
        task = asyncio.create_task(cache.run(refresh_s)) if refresh_s is not None else None
        yield
        stuck = await stop_tasks({"the history refresh": task})
        for name, where in stuck.items():  # bounded: a shutdown never waits on the cache
            log.warning("%s did not stop; going on without it\n%s", name, where)
        cache.close()

    return ctx


def _impact_task(settle_s: float | None):
    async def ctx(app: web.Application):
        cache: ImpactCache = app[IMPACT]
        task = asyncio.create_task(cache.run(settle_s=settle_s)) if settle_s is not None else None
        yield
        for name, where in (await stop_tasks({"the impact warm-up": task})).items():
            log.warning("%s did not stop; going on without it\n%s", name, where)

    return ctx
