"""Fuzz the API against its own OpenAPI document (``/openapi.json``) with Schemathesis.

The API runs in a thread of its own over the real Redis (db 15), filled with a small
synthetic history through the demo's ingest path (the real sink). Every operation but
the endless event stream gets a bounded, derandomized set of generated requests
(explicit examples first), each sent with the bearer token; every answer must be no
5xx and conform to the document: a documented status code, its content type and its
schema. About 30 s on the 2-CPU dev box.
"""

from __future__ import annotations

import asyncio
import socket
import threading

import pytest
import redis
import redis.asyncio as aioredis
from aiohttp import web

from tilannekuva import api, demo
from tilannekuva.api.openapi import document
from tilannekuva.config import Settings
from tilannekuva.synthetic import synthesize

schemathesis = pytest.importorskip("schemathesis")
hypothesis = pytest.importorskip("hypothesis")

TOKEN = "schemathesis-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
EXAMPLES = 25  # generated requests per operation (plus its explicit examples)

pytestmark = pytest.mark.integration

schema = schemathesis.openapi.from_dict(document()).exclude(path="/api/v1/stream")
CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def base_url(redis_test_url):
    """The API on a free port, over db 15 holding a small synthetic history."""
    r = redis.Redis.from_url(redis_test_url)
    r.flushdb()
    ingest = demo.Ingest(r, b"0123456789abcdef-schemathesis")
    lines = synthesize(120, 3, **demo.KNOBS).lines
    for i in range(0, len(lines), 5000):
        ingest.feed(lines[i : i + 5000])
    ingest.fit_types(n_types=8)
    port = _free_port()
    loop = asyncio.new_event_loop()
    started = threading.Event()
    state: dict = {}

    async def serve() -> None:
        client = aioredis.Redis.from_url(redis_test_url)
        settings = Settings(api_token=TOKEN, min_cell=5, redis_url=redis_test_url)
        app = api.make_app(settings, client, history_refresh_s=None)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        state["runner"], state["client"] = runner, client
        started.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(serve(), loop).result(30)
    assert started.wait(30)
    yield f"http://127.0.0.1:{port}"

    async def stop() -> None:
        await state["runner"].cleanup()
        await state["client"].aclose()

    asyncio.run_coroutine_threadsafe(stop(), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    r.flushdb()
    r.close()


@schema.parametrize()
@hypothesis.settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(hypothesis.HealthCheck),
    phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
)
def test_api_conforms_to_its_openapi(case, base_url):
    case.call_and_validate(base_url=base_url, headers=AUTH, checks=CHECKS, timeout=60)
