"""The HTTP API against the real Redis (db 15 of infra/up's server)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer

from models.areas import reference_areas
from models.cellkey import KEYS
from models.contract import COVERED_MUNICIPALITIES, GROUPS, INDICATORS, key_field
from models.publication import table
from sinks import keys
from tests.conftest import write_counts
from tilannekuva import api
from tilannekuva.api.routes import ROUTES, STATIC_PREFIX
from tilannekuva.config import Settings

TOKEN = "s3cret-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MIN_CELL = 5

pytestmark = pytest.mark.integration


# --------------------------------------------------------------------------- fixtures


W = "2026-06-30"  # the watermark of the seeded picture
PUBLISHED = "2026-06-29"  # what is published: the last completed day, W − 1
SINCE = "2026-06-01"  # the seeded counts hold from this day on (the first day of data)


def ordinal(day: str) -> int:
    return dt.date.fromisoformat(day).toordinal()


def bump(pipe, scope: str, fields: dict, day: str = SINCE) -> None:
    """Counts that hold from ``day`` on, in the present and the history."""
    write_counts(pipe, scope, fields, day)


def seed_picture(r, seed: int = 3, groups: bool = True) -> dict:
    """A consistent random picture over every reference area, with small cells, holding
    from SINCE to W (present and history)."""
    rng = random.Random(seed)
    fields = INDICATORS + (GROUPS if groups else ())
    keyed = fields + tuple(key_field(f) for f in fields)
    munis = {m: dict.fromkeys(keyed, 0) for m in COVERED_MUNICIPALITIES}
    total = dict.fromkeys(keyed, 0)
    pipe = r.pipeline()
    for pc, ref in sorted(reference_areas().items()):
        if rng.random() < 0.15:
            continue  # never held a family: no hash at all
        c = {f: rng.choice([0, 0, 1, 2, 3, 4, 6, 9, 25]) for f in INDICATORS[1:]}
        if groups:
            gs = {g: rng.choice([0, 1, 2, 3, 5, 12]) for g in GROUPS}
            c |= gs
            c["families"] = sum(gs.values())
        else:
            c["families"] = rng.choice([1, 3, 7, 30, 80])
        # Cell keys as the sink keeps them beside the counts (any sums will do here).
        c |= {key_field(f): rng.randrange(1 << 20) * (c[f] > 0) for f in fields}
        bump(pipe, f"a:{pc}", c)
        pipe.hset(keys.AREAS, pc, ref["municipality"])
        pipe.hset(keys.UPDATED, f"a:{pc}", "2026-07-01T08:00:01Z")
        for f in keyed:
            munis[ref["municipality"]][f] += c[f]
            total[f] += c[f]
    for m, c in munis.items():
        bump(pipe, f"m:{m}", c)
    bump(pipe, "all", total)
    pipe.hset(keys.UPDATED, "all", "2026-07-01T08:00:02Z")
    pipe.set(keys.WATERMARK, W)
    pipe.set(keys.FIRST_DAY, SINCE)
    pipe.execute()
    return total


@pytest.fixture
async def make_client(redis_client, redis_test_url):
    clients = []

    async def make(token: str | None = TOKEN, **kw) -> TestClient:
        r = aioredis.Redis.from_url(redis_test_url)
        settings = Settings(api_token=token, min_cell=MIN_CELL, redis_url=redis_test_url)
        client = TestClient(TestServer(api.make_app(settings, r, **kw)))
        await client.start_server()
        clients.append((client, r))
        return client

    yield make
    for client, r in clients:
        await client.close()
        await r.aclose()


@pytest.fixture
async def client(make_client):
    return await make_client()


def walk_numbers(obj):
    if isinstance(obj, bool):
        return
    if isinstance(obj, int):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from walk_numbers(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from walk_numbers(v)


def assert_no_small(body):
    small = [n for n in walk_numbers(body) if 1 <= n < MIN_CELL]
    assert not small, small


def assert_scope_shape(body, area, municipality, groups=True):
    keys = ["area", "municipality", "as_of", "indicators"] + (
        ["service_need_groups"] if groups else []
    )
    assert list(body) == keys + ["suppressed", "updated_at"]
    assert body["area"] == area and body["municipality"] == municipality
    assert body["as_of"] == PUBLISHED
    assert list(body["indicators"]) == list(INDICATORS)
    if groups:
        assert list(body["service_need_groups"]) == [str(i) for i in range(1, 11)]
    nulls = {k for k, v in body["indicators"].items() if v is None}
    nulls |= {
        f"service_need_groups.{k}"
        for k, v in body.get("service_need_groups", {}).items()
        if v is None
    }
    assert set(body["suppressed"]) == nulls


# --------------------------------------------------------------------------- auth


# Every route that needs the token (from the one route table), and one that does not exist.
ALL_PATHS = [r.example_path() for r in ROUTES if not r.public] + ["/no/such/path"]


async def test_healthz_needs_no_token(make_client):
    for token in (TOKEN, None):
        c = await make_client(token)
        resp = await c.get("/healthz")
        assert resp.status == 200
        assert await resp.json() == {"status": "ok"}


async def test_the_page_and_its_files_need_no_token_and_carry_the_security_headers(client):
    for path in ("/", f"{STATIC_PREFIX}app.js", f"{STATIC_PREFIX}data/postcode-areas.geojson"):
        resp = await client.get(path)
        assert resp.status == 200, path
        csp = resp.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "connect-src 'self'" in csp
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert "text/html" in (await client.get("/")).headers["Content-Type"]
    # Nothing outside the static folder is served from it.
    for path in (f"{STATIC_PREFIX}../handlers.py", f"{STATIC_PREFIX}%2e%2e/handlers.py"):
        assert (await client.get(path)).status in (401, 403, 404), path
    assert (await client.get("/api/v1/picture")).status == 401
    assert "Content-Security-Policy" in (await client.get("/api/v1/picture")).headers


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": TOKEN},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": f"Bearer {TOKEN}x"},
    ],
)
async def test_401_without_right_token(client, headers):
    for path in ALL_PATHS:
        resp = await client.get(path, headers=headers)
        assert resp.status == 401, path
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")


async def test_no_token_configured_refuses_everything_but_healthz(make_client):
    c = await make_client(None)
    for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Bearer None"}, AUTH):
        for path in ALL_PATHS:
            assert (await c.get(path, headers=headers)).status == 401, (path, headers)


# --------------------------------------------------------------------------- shapes


async def test_shapes_and_suppression(client, redis_client):
    total = seed_picture(redis_client)
    resp = await client.get("/api/v1/picture", headers=AUTH)
    assert resp.status == 200
    body = await resp.json()
    assert_scope_shape(body, None, None)
    assert body["updated_at"].endswith("Z")  # when this day was published
    # Published: the exact count moved by its cell key's perturbation (docs/disclosure.md).
    published = table(MIN_CELL).published(total["families"], total["~families"] % KEYS)
    assert body["indicators"]["families"] == published
    assert abs(published - total["families"]) <= 2
    assert_no_small(body)

    for code in COVERED_MUNICIPALITIES:
        body = await (await client.get(f"/api/v1/municipalities/{code}", headers=AUTH)).json()
        assert_scope_shape(body, None, code)
        assert_no_small(body)

    listing = await (await client.get("/api/v1/areas", headers=AUTH)).json()
    assert listing["as_of"] == PUBLISHED
    assert len(listing["areas"]) == 144
    assert_no_small(listing)
    some_hidden = False
    for item in listing["areas"]:
        assert item["municipality"] in COVERED_MUNICIPALITIES
        body = await (await client.get(f"/api/v1/areas/{item['area']}", headers=AUTH)).json()
        assert_scope_shape(body, item["area"], item["municipality"])
        assert body["indicators"]["families"] == item["families"]
        fam = body["indicators"]["families"]
        if fam is None:
            some_hidden = True
        else:
            assert fam >= MIN_CELL  # an area under the threshold shows no counts
        assert_no_small(body)
    assert some_hidden

    # detail=full: the same listing, each area carrying its own whole answer.
    full = await (await client.get("/api/v1/areas?detail=full", headers=AUTH)).json()
    assert [{k: v for k, v in a.items() if k != "picture"} for a in full["areas"]] == listing[
        "areas"
    ]
    for item in full["areas"]:
        own = await (await client.get(f"/api/v1/areas/{item['area']}", headers=AUTH)).json()
        assert item["picture"] == own


async def test_groups_omitted_without_g_fields(client, redis_client):
    seed_picture(redis_client, seed=5, groups=False)
    body = await (await client.get("/api/v1/picture", headers=AUTH)).json()
    assert "service_need_groups" not in body
    assert_scope_shape(body, None, None, groups=False)
    body = await (await client.get("/api/v1/areas/33100", headers=AUTH)).json()
    assert "service_need_groups" not in body


async def test_empty_redis(client, redis_client):
    body = await (await client.get("/api/v1/picture", headers=AUTH)).json()
    assert body["as_of"] is None and body["updated_at"] is None
    assert body["indicators"]["families"] is None  # 0 families is under the threshold
    # One day of data is not a completed day: nothing is published yet.
    redis_client.mset({keys.WATERMARK: W, keys.FIRST_DAY: W})
    body = await (await client.get("/api/v1/picture", headers=AUTH)).json()
    assert body["as_of"] is None


async def test_404_and_400(client, redis_client):
    seed_picture(redis_client)
    for path, status in [
        ("/api/v1/municipalities/091", 404),
        ("/api/v1/municipalities/837x", 400),
        ("/api/v1/municipalities/83", 400),
        ("/api/v1/areas/00100", 404),
        ("/api/v1/areas/3310", 400),
        ("/api/v1/areas/abcde", 400),
        ("/api/v2/picture", 404),
        ("/api/v1/areas?detail=everything", 400),
    ]:
        resp = await client.get(path, headers=AUTH)
        assert resp.status == status, path


async def test_publication_moves_once_per_day_of_w(client, redis_client):
    """The fixed cadence: late events and the day W itself stay unpublished until W
    moves on; then everything up to the new W − 1 is published at once."""
    seed_picture(redis_client)
    first = await (await client.get("/api/v1/picture", headers=AUTH)).json()
    pipe = redis_client.pipeline()
    for scope in ("all", "m:837", "a:33100"):
        bump(pipe, scope, {"children": 100, "~children": 1000}, day="2026-06-20")  # late
        bump(pipe, scope, {"families": 50, "~families": 77}, day=W)  # the day still filling
    pipe.execute()
    await asyncio.sleep(0.2)
    again = await (await client.get("/api/v1/picture", headers=AUTH)).json()
    assert again == first  # nothing published while W stays
    past = await client.get("/api/v1/picture", params={"as_of": "2026-06-25"}, headers=AUTH)
    assert (await past.json())["indicators"] == first["indicators"]  # the past neither
    assert (await client.get("/api/v1/picture", params={"as_of": W}, headers=AUTH)).status == 400
    redis_client.set(keys.WATERMARK, "2026-07-01")
    moved = await (await client.get("/api/v1/picture", headers=AUTH)).json()
    assert moved["as_of"] == W
    got = moved["indicators"]
    assert abs(got["children"] - (first["indicators"]["children"] + 100)) <= 4
    assert abs(got["families"] - (first["indicators"]["families"] + 50)) <= 4
    late = await client.get("/api/v1/picture", params={"as_of": "2026-06-25"}, headers=AUTH)
    assert abs((await late.json())["indicators"]["children"] - got["children"]) <= 4


# --------------------------------------------------------------------------- alerts


async def test_alerts_order_and_since(client, redis_client):
    alerts = [
        ({"kind": "rise", "area": "33100", "raised_at": "2026-07-01T08:00:00Z"}, 1782892800),
        ({"kind": "rise", "area": "33200", "raised_at": "2026-07-03T08:00:00Z"}, 1783065600),
        ({"kind": "drop", "area": "01200", "raised_at": "2026-07-02T08:00:00Z"}, 1782979200),
    ]
    for a, ts in alerts:
        redis_client.zadd(keys.ALERTS, {json.dumps(a): ts})
    body = await (await client.get("/api/v1/alerts", headers=AUTH)).json()
    assert [a["area"] for a in body["alerts"]] == ["33200", "01200", "33100"]
    for since, expect in [
        ("2026-07-02T08:00:00Z", ["33200", "01200"]),
        ("2026-07-02T10:00:00+02:00", ["33200", "01200"]),
        ("2026-07-02", ["33200", "01200"]),
        ("2026-07-03T08:00:01Z", []),
    ]:
        resp = await client.get("/api/v1/alerts", params={"since": since}, headers=AUTH)
        assert resp.status == 200
        assert [a["area"] for a in (await resp.json())["alerts"]] == expect, since
    for bad in ["yesterday", "2026-13-01", "", "2026-07-02T25:00"]:
        resp = await client.get("/api/v1/alerts", params={"since": bad}, headers=AUTH)
        assert resp.status == 400, bad


# --------------------------------------------------------------------------- stream


async def test_stream_delivers_area_events(make_client, redis_client, redis_test_url):
    seed_picture(redis_client)
    c = await make_client(heartbeat_s=0.3)
    resp = await c.get("/api/v1/stream", headers=AUTH)
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    assert await asyncio.wait_for(resp.content.readline(), 5) == b": connected\n"
    assert await asyncio.wait_for(resp.content.readline(), 5) == b"\n"
    # A heartbeat comment arrives while nothing changes, and a late event is not sent.
    pipe = redis_client.pipeline()
    for scope in ("all", "m:837", "a:33100"):
        bump(pipe, scope, {"children": 100, "~children": 1000}, day="2026-06-20")
    pipe.execute()
    assert (await asyncio.wait_for(resp.content.readline(), 5)).startswith(b":")
    assert (await asyncio.wait_for(resp.content.readline(), 5)) == b"\n"
    assert (await asyncio.wait_for(resp.content.readline(), 5)).startswith(b":")
    # W moves on: every area's published answer is new (its day), each sent once.
    redis_client.set(keys.WATERMARK, "2026-07-01")
    events = []
    while len(events) < 2:
        # (a publication suppresses the days the move revised: seconds on a busy box)
        line = (await asyncio.wait_for(resp.content.readline(), 20)).decode()
        if line.startswith("event:"):
            assert line == "event: area\n"
            data = (await asyncio.wait_for(resp.content.readline(), 5)).decode()
            assert data.startswith("data: ")
            events.append(json.loads(data[6:]))
    first_two = sorted(pc for pc, _ in reference_areas().items())[:2]
    assert [e["area"] for e in events] == first_two
    for e in events:
        assert e["as_of"] == W
        assert_no_small(e)
    direct = await (await c.get(f"/api/v1/areas/{first_two[0]}", headers=AUTH)).json()
    assert events[0] == direct
    resp.close()


# --------------------------------------------------------------------------- metrics, openapi


async def test_metrics(client, redis_client):
    await client.get("/healthz")
    await client.get("/api/v1/areas/33100", headers=AUTH)
    await client.get("/api/v1/picture")
    resp = await client.get("/metrics", headers=AUTH)
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    text = await resp.text()
    assert 'tk_api_requests_total{method="GET",route="/healthz",status="200"} 1.0' in text
    assert 'route="/api/v1/areas/{postcode}",status="200"' in text
    assert 'route="/api/v1/picture",status="401"' in text
    assert "tk_api_request_duration_seconds_bucket" in text
    assert "33100" not in text  # labels carry routes, never values


async def test_openapi_lists_every_path(client):
    resp = await client.get("/openapi.json", headers=AUTH)
    assert resp.status == 200
    spec = await resp.json()
    assert spec["openapi"].startswith("3.1")
    assert set(spec["paths"]) == {r.path for r in ROUTES}
    routes = {r.resource.canonical for r in client.server.app.router.routes()}
    assert routes == set(spec["paths"]) | {STATIC_PREFIX.rstrip("/")}
    for r in ROUTES:
        assert (spec["paths"][r.path][r.method.lower()]["security"] == []) == r.public


async def test_metrics_export_municipality_shares_of_shown_counts_only(client, redis_client):
    pipe = redis_client.pipeline()
    for pc, cw in (("33100", 3), ("33200", 0)):
        fields = {"families": 100, "families_social_assistance": 15, "families_child_welfare": cw}
        bump(pipe, f"a:{pc}", fields)
        pipe.hset(keys.AREAS, pc, "837")
    for scope in ("m:837", "all"):
        bump(pipe, scope, {"families": 200, "families_social_assistance": 30})
        bump(pipe, scope, {"families_child_welfare": 3})
    pipe.mset({keys.WATERMARK: W, keys.FIRST_DAY: SINCE})
    pipe.execute()
    text = await (await client.get("/metrics", headers=AUTH)).text()
    # From the published counts (no cell keys were written here: key sums 0).
    share = table(MIN_CELL).published(30, 0) / table(MIN_CELL).published(200, 0)
    assert (
        f'tk_area_indicator_share{{indicator="families_social_assistance",municipality="837"}} {share}'
        in text
    )
    # 3 is a small cell: no share that would let it be recomputed
    assert 'indicator="families_child_welfare",municipality="837"' not in text
