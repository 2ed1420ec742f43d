"""The situation picture HTTP API (../shared/contract/situation-api.md).

``tilannekuva api [--host H] [--port P]`` serves it; tests and the demo build the app
with :func:`make_app`. The package, like aiohttp's demos:

- ``routes.py``: the route table, the one list of paths (router, OpenAPI, auth, tests);
- ``handlers.py``: the handlers; ``picture.py``: the cached suppressed picture;
- ``history.py``: the history cache (every day's whole picture suppressed once, kept
  while its raw content holds), ``cube.py``: the history as arrays ``[day, scope,
  field]`` (pure), ``series.py``: the days and parameters of a history request (pure);
- ``schemas.py``: the answers as pydantic models; ``openapi.py``: /openapi.json from both;
- ``middleware.py``: bearer token and request metrics; ``app.py``: the factory.

Every answer is cut from the whole picture suppressed with
:func:`models.suppression.suppress` (``SITUATION_MIN_CELL``): the present's, or, for a
past day (``?as_of=D``, ``…/history``), that day's. Nothing served names a
family or a person: the API only ever reads the aggregates, the watermark and the alerts.
"""

from __future__ import annotations

from aiohttp import web

from sinks.metrics import GC_SECONDS
from tilannekuva.api.app import make_app
from tilannekuva.api.state import REDIS
from tilannekuva.config import Settings, one_blas_thread

__all__ = ["add_arguments", "make_app", "run"]


def add_arguments(parser) -> None:
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=int, default=None, help="port (default SITUATION_API_PORT or 8080)"
    )


def run(args, settings: Settings) -> int:
    import redis.asyncio as aioredis

    one_blas_thread()
    GC_SECONDS.install()
    port = args.port if args.port is not None else settings.api_port
    if not settings.api_token:
        print("tilannekuva api: SITUATION_API_TOKEN is not set: only /healthz will answer")

    async def on_cleanup(app: web.Application) -> None:
        await app[REDIS].aclose()

    app = make_app(settings, aioredis.Redis.from_url(settings.redis_url))
    app.on_cleanup.append(on_cleanup)
    web.run_app(app, host=args.host, port=port, print=lambda msg: print(f"tilannekuva api: {msg}"))
    return 0
