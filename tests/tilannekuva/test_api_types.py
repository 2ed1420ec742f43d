"""``GET /api/v1/types`` against the real Redis (db 15 of infra/up's server), filled
through the real sink by the demo's ingest path: the family types of a scope, in words,
suppressed together with the picture (and nothing of the picture changed by them)."""

from __future__ import annotations

import pytest
import redis
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer

from models.contract import type_id_of
from models.publication import publish_types
from models.suppression import suppress_types
from models.type_descriptions import catalogue, type_groups
from sinks import keys, redis_reader
from sinks.model_store import ModelStore
from tilannekuva import api, demo
from tilannekuva.api.schemas import TypeList
from tilannekuva.config import Settings
from tilannekuva.synthetic import synthesize

TOKEN = "types-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MIN_CELL = 5
N_TYPES = 12

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def typed_redis(redis_test_url):
    """db 15 holding a small synthetic history; ``fit()`` then fits the family types."""
    r = redis.Redis.from_url(redis_test_url)
    r.flushdb()
    ingest = demo.Ingest(r, b"0123456789abcdef-types-test")
    lines = synthesize(400, 11, **demo.KNOBS).lines
    for i in range(0, len(lines), 5000):
        ingest.feed(lines[i : i + 5000])
    yield r, ingest
    r.flushdb()
    r.close()


@pytest.fixture
async def make_client(redis_test_url):
    clients = []

    async def make() -> TestClient:
        r = aioredis.Redis.from_url(redis_test_url)
        settings = Settings(api_token=TOKEN, min_cell=MIN_CELL, redis_url=redis_test_url)
        client = TestClient(TestServer(api.make_app(settings, r, history_refresh_s=None)))
        await client.start_server()
        clients.append((client, r))
        return client

    yield make
    for client, r in clients:
        await client.close()
        await r.aclose()


async def get(client: TestClient, **query) -> dict:
    resp = await client.get("/api/v1/types", params=query, headers=AUTH)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    TypeList.model_validate(body)
    return body


def fields_of(r, scope: str) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in r.hgetall(keys.scope(scope)).items()}


async def test_before_any_model_the_list_is_empty(typed_redis, make_client):
    r, _ = typed_redis
    assert ModelStore(r).version() is None
    body = await get(await make_client())
    assert body["model_version"] is None and body["published"] is False
    assert body["types"] == [] and body["shown_types"] == 0
    assert body["as_of"] == r.get(keys.WATERMARK).decode()
    assert not any(type_id_of(f) is not None for f in fields_of(r, "all"))


async def test_types_of_every_scope_are_the_suppressed_counts_in_words(typed_redis, make_client):
    r, ingest = typed_redis
    snap = ingest.fit_types(n_types=N_TYPES)
    version = ModelStore(r).version()
    read = redis_reader.read_types(r)
    assert read["model_version"] == version
    # Every counted family has a type of the model: the types add up to families.
    pic = read["picture"]
    for scope, counts in [
        ("all", pic["all"]),
        *((f"a:{pc}", a["counts"]) for pc, a in pic["areas"].items()),
    ]:
        assert sum(read["types"][scope].values()) == counts["families"], scope
        assert set(read["types"][scope]) <= set(snap["type_ids"])
    # The type fields live in the picture's hashes; the picture leaves them out.
    assert any(type_id_of(f) is not None for f in fields_of(r, "all"))
    assert read["picture"] == redis_reader.read_picture(r)
    assert not any(type_id_of(f) is not None for f in read["picture"]["all"])

    suppressed = suppress_types(pic, read["types"], MIN_CELL, type_groups(snap))
    assert suppressed is not None, "this history's types can be shown"
    # Published as the picture is: each shown count perturbed by its cell key.
    keysums = {s: {**k, **read["type_keys"].get(s, {})} for s, k in pic["keys"].items()}
    expected = publish_types(suppressed, keysums, MIN_CELL)
    assert any(
        expected[s]["types"] != suppressed[s]["types"] for s in suppressed
    )  # the perturbation is there
    words = catalogue(snap)
    c = await make_client()
    cases = [({}, "all", None, None), ({"municipality": "837"}, "m:837", None, "837")]
    # The area of most families (a few hundred families spread over 144 areas show few
    # types there: what it shows, if anything, must be the suppressed counts).
    pc = max(pic["areas"], key=lambda p: (pic["areas"][p]["counts"]["families"], p))
    cases.append(({"area": pc}, f"a:{pc}", pc, pic["areas"][pc]["municipality"]))
    for query, scope, area, municipality in cases:
        body = await get(c, **query)
        want = expected[scope]
        assert (body["area"], body["municipality"]) == (area, municipality)
        assert body["model_version"] == version and body["published"] is True
        assert body["as_of"] == read["as_of"]
        assert body["families"] == want["families"]
        assert body["suppressed"] == {"types": want["hidden"], "families": want["hidden_families"]}
        assert (
            body["suppressed"]["families"] in (None, 0)
            or body["suppressed"]["families"] >= MIN_CELL
        )
        assert body["shown_types"] == len(want["types"])
        got = {t["type"]: t["families"] for t in body["types"]}
        assert got == want["types"]
        sizes = [t["families"] for t in body["types"]]
        assert sizes == sorted(sizes, reverse=True)
        for t in body["types"]:
            assert t["families"] >= MIN_CELL
            assert t["group"] == words[t["type"]]["group"]
            assert t["description"] == words[t["type"]]["description"]
            assert [f["name"] for f in t["features"]] == [
                f["name"] for f in words[t["type"]]["features"]
            ]
            if body["families"]:
                assert t["share"] == round(t["families"] / body["families"], 4)
    # The whole population's largest types are described, in three languages.
    top = (await get(c, limit="1"))["types"]
    assert len(top) == 1 and all(top[0]["description"][lang] for lang in ("fi", "sv", "en"))


async def test_errors_are_documented(typed_redis, make_client):
    c = await make_client()
    for query, status in [
        ({"limit": "0"}, 400),
        ({"limit": "101"}, 400),
        ({"limit": "ten"}, 400),
        ({"municipality": "83"}, 400),
        ({"municipality": "091"}, 404),
        ({"area": "3310"}, 400),
        ({"area": "00100"}, 404),
        ({"area": "33100", "municipality": "092"}, 400),
    ]:
        resp = await c.get("/api/v1/types", params=query, headers=AUTH)
        assert resp.status == status, (query, await resp.text())
        assert "error" in await resp.json()
    assert (await c.get("/api/v1/types")).status == 401


def test_history_holds_no_type_fields(typed_redis):
    """Type counts are of the present only: the history hashes never get them."""
    r, _ = typed_redis
    seen = 0
    for key in r.scan_iter(keys.HIST + "*", count=1000):
        for field in r.hkeys(key):
            name = field.decode().rpartition(":")[0]
            assert type_id_of(name) is None, (key, field)
            seen += 1
    assert seen
