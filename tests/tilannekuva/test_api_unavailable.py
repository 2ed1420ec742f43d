"""The API while its Redis is down: 503 with Retry-After, never a 500, and back to 200 by
itself once Redis is up again. A Redis server of the test's own (Debian's redis-server
on a free port) is stopped and started under a running app."""

from __future__ import annotations

import pytest
import redis
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer

from sinks import keys
from tests.conftest import OwnRedis
from tilannekuva import api
from tilannekuva.api.middleware import RETRY_AFTER_S
from tilannekuva.api.routes import ROUTES, is_audit
from tilannekuva.config import Settings

TOKEN = "unavailable-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
AUDIT_TOKEN = "unavailable-audit-token"
AUDIT = {"Authorization": f"Bearer {AUDIT_TOKEN}"}


@pytest.fixture
def own_redis(tmp_path):
    r = OwnRedis(tmp_path)
    r.start()
    yield r
    r.kill()


async def test_redis_down_answers_503_with_retry_after_and_recovers(own_redis):
    url = own_redis.url
    client = aioredis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
    redis.Redis.from_url(url).mset({keys.WATERMARK: "2026-06-30", keys.FIRST_DAY: "2026-06-01"})
    settings = Settings(api_token=TOKEN, audit_token=AUDIT_TOKEN, redis_url=url)
    app = api.make_app(settings, client, history_refresh_s=None)
    async with TestClient(TestServer(app)) as c:
        assert (await c.get("/api/v1/picture", headers=AUTH)).status == 200

        own_redis.kill()
        paths = [r.example_path() for r in ROUTES if r.reads_redis and r.name != "stream"]
        assert len(paths) >= 10
        for path in paths:
            resp = await c.get(path, headers=AUDIT if is_audit(path) else AUTH)
            assert resp.status == 503, (path, resp.status, await resp.text())
            assert resp.headers["Retry-After"] == str(RETRY_AFTER_S)
            assert "unreachable" in (await resp.json())["error"]
        assert (await c.get("/healthz")).status == 200  # alive, only the data is away
        stream = await c.get("/api/v1/stream", headers=AUTH)
        assert stream.status == 503

        own_redis.start()  # empty, on the same port
        redis.Redis.from_url(url).mset({keys.WATERMARK: "2026-07-01", keys.FIRST_DAY: "2026-06-01"})
        resp = await c.get("/api/v1/picture", headers=AUTH)
        assert resp.status == 200
        assert (await resp.json())["as_of"] == "2026-06-30"  # the last completed day
    await client.aclose()


async def test_a_redis_emptied_and_refilled_under_the_api_never_gives_a_500(redis_test_url):
    """FLUSHALL under a running API (its history cache refreshing), then Redis refilled
    as a worker puts back what it lost (W and the first day first, then the families):
    no answer is a 5xx on the way, and the API ends where it began."""
    import asyncio

    from tilannekuva import demo
    from tilannekuva.synthetic import synthesize

    sync = redis.Redis.from_url(redis_test_url)
    sync.flushdb()
    lines = synthesize(80, 3, **demo.KNOBS).lines

    def fill() -> None:
        ingest = demo.Ingest(sync, b"0123456789abcdef-emptied-test")
        for i in range(0, len(lines), 5000):
            ingest.feed(lines[i : i + 5000])

    fill()
    client = aioredis.Redis.from_url(redis_test_url)
    settings = Settings(api_token=TOKEN, audit_token=AUDIT_TOKEN, redis_url=redis_test_url)
    app = api.make_app(settings, client, history_refresh_s=0.2)
    paths = [r.example_path() for r in ROUTES if r.reads_redis and r.name != "stream"]

    async def answers() -> dict[str, int]:
        out = {}
        for path in paths:
            resp = await c.get(path, headers=AUDIT if is_audit(path) else AUTH)
            out[path] = resp.status
            assert resp.status < 500, (path, resp.status, await resp.text())
        return out

    async with TestClient(TestServer(app)) as c:
        before = await answers()
        assert sum(s == 200 for s in before.values()) >= 10, before
        sync.flushall()
        await answers()
        await asyncio.sleep(0.5)  # a refresh of the history cache over the empty Redis
        await answers()
        wm, first = "2026-06-30", "2023-07-01"
        sync.mset({keys.WATERMARK: wm, keys.FIRST_DAY: first})  # as streams/restore.py does first
        await asyncio.sleep(0.5)
        await answers()
        fill()
        await asyncio.sleep(0.5)
        assert await answers() == before
    await client.aclose()
    sync.flushdb()
