"""The application factory: settings, Redis, state, middlewares and the route table."""

from __future__ import annotations

from aiohttp import web

from tilannekuva.api import openapi, routes
from tilannekuva.api.middleware import authenticate, observe
from tilannekuva.api.state import OPENAPI, REDIS, SETTINGS, STATE, State
from tilannekuva.config import Settings

HEARTBEAT_S = 15.0


def make_app(settings: Settings, redis, *, heartbeat_s: float = HEARTBEAT_S) -> web.Application:
    """The aiohttp application; ``redis`` is a ``redis.asyncio.Redis`` (bytes or str)."""
    app = web.Application(middlewares=[observe, authenticate])
    app[SETTINGS] = settings
    app[REDIS] = redis
    app[STATE] = State(heartbeat_s=heartbeat_s)
    app[OPENAPI] = openapi.document()
    routes.register(app.router)
    return app
