"""The route table drives the router, /openapi.json and the token rule.

The table's own checks need no server. The served routes run over the real Redis (db 15
of infra/up's server) holding a history written through the real sink
(``test_history_cube.SinkHistory``), so they are marked ``integration`` by
tests/conftest.py; the present picture and the alerts are taken from the reader's public
functions (``sinks.redis_reader``), replaced here by fixed answers (test_api.py and
test_api_history.py check those answers on a real Redis).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random
import re

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request
from test_history_cube import SinkHistory, random_family

from models.contract import COVERED_MUNICIPALITIES, GROUPS, INDICATORS
from sinks import redis_reader
from tilannekuva import api
from tilannekuva.api import schemas
from tilannekuva.api.openapi import document
from tilannekuva.api.routes import ROUTES, STATIC_PREFIX, Raw, is_audit
from tilannekuva.config import Settings

TOKEN = "unit-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
AUDIT_TOKEN = "unit-test-audit-token"
AUDIT = {"Authorization": f"Bearer {AUDIT_TOKEN}"}


def auth(path: str) -> dict:
    """The token a path opens with: the audit paths only with the audit token."""
    return AUDIT if is_audit(path) else AUTH


ALERT = {
    "id": "0123456789abcdef0123",
    "method": "cusum",
    "raised_at": "2026-07-01T08:00:02.5Z",
    "as_of": "2026-06-30",
    "scope": "area",
    "scope_key": "a:33100",
    "area": "33100",
    "municipality": "837",
    "series": "families_social_assistance",
    "observed": {"share": 0.142, "numerator": 57.0, "denominator": 401.0},
    "expected": {"share": 0.081, "lower": 0.06, "upper": 0.104},
    "statistic": 9.1,
    "p": 1.2e-07,
    "q": 3.1e-05,
    "onset": "2026-06-12",
    "strength": 7.4,
    "recent": {"from": "2026-04-07", "every_days": 7, "shares": [0.08] * 11 + [None, 0.142]},
    "rank": 1,
    "explanation": "families_social_assistance in area 33100: 14.2 % of families against 8.1 % expected",
}


def raw_picture() -> dict:
    """An unsuppressed picture as the reader returns it: two areas of Tampere, groups."""
    a = {f: 6 for f in INDICATORS} | {f: 0 for f in GROUPS} | {"families": 30, "g1": 30}
    b = a | {"children": 2}  # a small cell: suppressed, and something with it
    tampere = {f: a[f] + b[f] for f in a}
    zero = dict.fromkeys(a, 0)
    return {
        "as_of": "2026-06-30",
        "updated_at": {"all": "2026-07-01T08:00:02Z", "a:33100": "2026-07-01T08:00:01Z"},
        "all": tampere,
        "municipalities": {m: (tampere if m == "837" else zero) for m in COVERED_MUNICIPALITIES},
        "areas": {
            "33100": {"municipality": "837", "counts": a},
            "33200": {"municipality": "837", "counts": b},
        },
        "keys": {"all": {"families": 4242, "children": 99}, "a:33100": {"families": 17}},
    }


def fill_history(client) -> None:
    """A history of 2025-07-01 … 2026-06-30 (W of raw_picture) in the test database:
    nothing until families arrive in two Tampere areas on 2026-05-01."""
    r = SinkHistory(client)
    rng = random.Random(1)
    start, end = dt.date(2026, 5, 1).toordinal(), dt.date(2026, 6, 30).toordinal()
    areas = [("33100", "837"), ("33200", "837")]
    for f in range(120):
        since, segments = random_family(rng, areas, start, end, from_start=True)
        r.write(f"f{f}", since, segments, flush=False)
    r.span("2025-07-01", "2026-06-30")


@pytest.fixture
async def make_client(monkeypatch, redis_client, redis_test_url):
    async def read_picture(client):
        return raw_picture()

    async def read_alerts(client, since_epoch=None, limit=1000):
        return [ALERT]

    monkeypatch.setattr(redis_reader, "read_picture_async", read_picture)
    monkeypatch.setattr(redis_reader, "read_alerts_async", read_alerts)
    fill_history(redis_client)  # db 15, flushed before and after the test
    clients = []

    async def make(token: str | None = TOKEN, audit: str | None = AUDIT_TOKEN) -> TestClient:
        r = aioredis.from_url(redis_test_url)
        app = api.make_app(
            Settings(api_token=token, audit_token=audit, min_cell=5, redis_url=redis_test_url),
            r,
            heartbeat_s=0.05,
            history_refresh_s=None,
        )
        client = TestClient(TestServer(app))
        await client.start_server()
        clients.append((client, r))
        return client

    yield make
    for client, r in clients:
        await client.close()
        await r.aclose()


# --------------------------------------------------------------------------- the table


def test_table_is_well_formed():
    assert len({(r.method, r.path) for r in ROUTES}) == len(ROUTES)
    assert len({r.name for r in ROUTES}) == len(ROUTES)
    for r in ROUTES:
        in_path = set(re.findall(r"{(\w+)}", r.path))
        assert in_path == {p.name for p in r.params if p.location == "path"}, r.path
        assert not (r.public and in_path), "the token rule matches public paths exactly"
        for p in r.params:
            if p.pattern:
                assert re.fullmatch(p.pattern, p.example), (r.path, p.name)
            if p.enum:
                assert p.example in p.enum, (r.path, p.name)


async def test_router_serves_exactly_the_table():
    app = api.make_app(Settings(api_token=TOKEN), None)  # never started: no Redis needed
    static = STATIC_PREFIX.rstrip("/")  # the page's files: outside the table and OpenAPI
    assert {res.canonical for res in app.router.resources()} == {r.path for r in ROUTES} | {static}
    for r in ROUTES:
        match = await app.router.resolve(make_mocked_request(r.method, r.example_path()))
        assert match.http_exception is None, r.path
        assert match.handler is r.handler and match.route.name == r.name


def test_openapi_paths_are_the_table():
    doc = document()
    assert set(doc["paths"]) == {r.path for r in ROUTES}
    for r in ROUTES:
        op = doc["paths"][r.path][r.method.lower()]
        assert op["operationId"] == r.name and op["summary"] == r.summary
        assert (op["security"] == []) == r.public
        assert ("401" in op["responses"]) != r.public
        assert {str(s) for s in r.errors} | {"200"} <= set(op["responses"])
        assert [p["name"] for p in op.get("parameters", [])] == [p.name for p in r.params]


def test_openapi_fields_come_from_the_contract():
    defs = document()["components"]["schemas"]
    assert list(defs["Indicators"]["properties"]) == list(INDICATORS)
    assert defs["Indicators"]["required"] == list(INDICATORS)
    assert list(defs["ServiceNeedGroups"]["properties"]) == [g[1:] for g in GROUPS]
    assert "service_need_groups" not in defs["Scope"]["required"]  # absent until the model runs
    refs = re.findall(r'"#/components/schemas/(\w+)"', json.dumps(document()))
    assert set(refs) <= set(defs)


def test_openapi_is_valid():
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(document())


# --------------------------------------------------------------------------- served


async def test_every_route_answers_its_documented_body(make_client):
    client = await make_client()
    for r in ROUTES:
        resp = await client.request(r.method, r.example_path(), headers=auth(r.path))
        assert resp.status == 200, r.path
        media = r.body.media_type if isinstance(r.body, Raw) else "application/json"
        assert resp.headers["Content-Type"].startswith(media), r.path
        if r.path == "/api/v1/stream":
            assert await asyncio.wait_for(resp.content.readline(), 5) == b": connected\n"
            resp.close()
        elif not isinstance(r.body, Raw):
            r.body.model_validate_json(await resp.read())
    # Labelled by the table's pattern; the stream is counted only once the server notices
    # that its client left, so it is not waited for here.
    metrics = await (await client.get("/metrics", headers=AUTH)).text()
    for r in ROUTES:
        if r.path != "/api/v1/stream":
            assert f'route="{r.path}",status="200"' in metrics, r.path


async def test_errors_are_documented_errors(make_client):
    client = await make_client()
    for path, status in [
        ("/api/v1/municipalities/83", 400),
        ("/api/v1/municipalities/091", 404),
        ("/api/v1/areas/abcde", 400),
        ("/api/v1/areas/00100", 404),
        ("/api/v1/alerts?since=yesterday", 400),
        ("/api/v1/picture?as_of=2026-6-1", 400),
        ("/api/v1/picture?as_of=2025-06-30", 400),
        ("/api/v1/municipalities/837?as_of=2026-07-01", 400),
        ("/api/v1/areas?as_of=yesterday", 400),
        ("/api/v1/areas/33100?as_of=2026-02-30", 400),
        ("/api/v1/areas/00100?as_of=2026-06-01", 404),
        ("/api/v1/picture/history?step=year", 400),
        ("/api/v1/picture/history?indicators=families,kids", 400),
        ("/api/v1/picture/history?from=2026-06-02&to=2026-06-01", 400),
        ("/api/v1/municipalities/837/history?from=2025-06-30", 400),
        ("/api/v1/municipalities/091/history", 404),
        ("/api/v1/areas/33100/history?to=2026-07-01", 400),
        ("/api/v1/areas/00100/history", 404),
        ("/api/v1/areas/abcde/history", 400),
        ("/api/v1/picture", 401),
        ("/api/v1/audit/picture?as_of=2025-06-30", 400),
        ("/api/v1/audit/municipalities/091", 404),
        ("/api/v1/audit/areas/00100", 404),
        ("/api/v1/audit/areas/abcde", 400),
        ("/api/v1/audit/picture", 401),
    ]:
        resp = await client.get(path, headers=auth(path) if status != 401 else {})
        assert resp.status == status, path
        schemas.Error.model_validate_json(await resp.read())


async def test_query_examples_answer_their_documented_bodies(make_client):
    """Every route with its query parameters' examples (as_of, from, to, step, indicators)."""
    client = await make_client()
    for r in ROUTES:
        query = {p.name: p.example for p in r.params if p.location == "query"}
        if not query or isinstance(r.body, Raw):
            continue
        resp = await client.get(r.example_path(), params=query, headers=auth(r.path))
        assert resp.status == 200, (r.path, await resp.text())
        body = r.body.model_validate_json(await resp.read())
        if "as_of" in query:
            assert str(body.as_of) == query["as_of"]
    body = await (
        await client.get(
            "/api/v1/areas/33100/history",
            params={"from": "2026-05-01", "step": "week", "indicators": "children"},
            headers=AUTH,
        )
    ).json()
    assert body["area"] == "33100" and body["municipality"] == "837"
    assert [p["as_of"] for p in body["series"]][-2:] == ["2026-06-22", "2026-06-29"]
    assert all(list(p["indicators"]) == ["children"] for p in body["series"])
    assert all("service_need_groups" in p for p in body["series"])


async def test_token_rule_follows_the_table(make_client):
    for token in (TOKEN, None):
        client = await make_client(token, audit=None if token is None else AUDIT_TOKEN)
        for r in ROUTES:
            resp = await client.request(r.method, r.example_path())
            assert (resp.status != 401) == r.public, (r.path, token)
            if r.public:
                continue
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")
            with_token = await client.request(r.method, r.example_path(), headers=auth(r.path))
            assert (with_token.status == 401) == (token is None), (r.path, token)
            with_token.close()
            # Each token opens its own paths only: the dashboard's never the exact counts.
            other = AUTH if is_audit(r.path) else AUDIT
            crossed = await client.request(r.method, r.example_path(), headers=other)
            assert crossed.status == 401, (r.path, token)
            crossed.close()
        assert (await client.get("/no/such/path", headers=AUTH)).status == (404 if token else 401)
