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
