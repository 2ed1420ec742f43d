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


async def test_a_redis_emptied_and_refilled_under_the_api_shows_no_part_and_no_500(
    redis_test_url,
):
    """FLUSHALL under a running API (its history cache refreshing), then Redis refilled
    as a worker puts back what it lost (streams/restore.py): W and the first day first,
    then the families, a part at a time. No answer is a 500 (a 503 says when to retry),
    no part of the refill is published, and once it has settled the API answers what it
    answered before, although W never moved (the cadence alone would hold a part)."""
    import asyncio
    import re

    from tilannekuva import demo
    from tilannekuva.api.state import HISTORY
    from tilannekuva.synthetic import synthesize

    sync = redis.Redis.from_url(redis_test_url)
    sync.flushdb()
    ingest = demo.Ingest(sync, b"0123456789abcdef-emptied-test")
    lines = synthesize(80, 3, **demo.KNOBS).lines
    for i in range(0, len(lines), 5000):
        ingest.feed(lines[i : i + 5000])
    full = {k: sync.dump(k) for k in sync.scan_iter("*")}
    client = aioredis.Redis.from_url(redis_test_url)
    settings = Settings(api_token=TOKEN, audit_token=AUDIT_TOKEN, redis_url=redis_test_url)
    app = api.make_app(settings, client, history_refresh_s=0.1)
    cache = app[HISTORY]
    cache.settle_s = 3.0  # (10 s in service) longer than each step below takes
    paths = [
        r.example_path() for r in ROUTES if r.reads_redis and r.name not in ("stream", "metrics")
    ]

    async def answers() -> dict[str, tuple[int, str]]:
        out = {}
        for path in paths:
            resp = await c.get(path, headers=AUDIT if is_audit(path) else AUTH)
            text = await resp.text()
            assert resp.status != 500, (path, text)
            if resp.status == 503:
                assert resp.headers["Retry-After"] == str(RETRY_AFTER_S), path
            # the answer but its moment of publication (a new one after the refill)
            out[path] = (
                resp.status,
                re.sub(r'"(updated|updated_at|published_at)":\s*"[^"]*"', "", text),
            )
        return out

    async def refreshes(n: int = 3) -> None:
        until = cache.generation + n
        while cache.generation < until:
            await asyncio.sleep(0.05)

    def restore(names) -> None:
        for k in names:
            sync.restore(k, 0, full[k], replace=True)

    async with TestClient(TestServer(app)) as c:
        await refreshes()
        before = await answers()
        assert sum(s == 200 for s, _ in before.values()) >= 10, before
        public = [p for p in paths if not is_audit(p) and before[p][0] == 200]
        assert "/api/v1/picture" in public
        sync.flushdb()  # its db only: other tests run beside this one
        await refreshes()
        await answers()
        restore([keys.WATERMARK.encode(), keys.FIRST_DAY.encode()])
        await refreshes()
        part = [k for k in full if not k.startswith((b"tk:hist:all", b"tk:agg:all"))]
        restore(part)  # all but the scope 'all': a worker half-way through
        await refreshes()
        for path in public[:3]:
            resp = await c.get(path, headers=AUTH)
            assert resp.status == 503, (path, await resp.text())  # not the part: retry
        restore(full)
        for _ in range(100):
            await refreshes()
            after = await answers()
            if after == before:
                break
        assert [(p, before[p], after[p]) for p in paths if after[p] != before[p]] == []
    await client.aclose()
    sync.flushdb()
