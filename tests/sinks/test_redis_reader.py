"""Reading the unsuppressed picture from the real Redis (db 15 of infra/up's server)."""

from __future__ import annotations

import json

import pytest
import redis.asyncio as aioredis

from models.areas import reference_areas
from models.contract import COVERED_MUNICIPALITIES, GROUPS, INDICATORS
from sinks import redis_reader

pytestmark = pytest.mark.integration


def seed(r) -> None:
    r.set("tk:wm", "2026-06-30")
    r.hset("tk:agg:all", mapping={"families": 40, "children": 70, "g1": 40})
    r.hset("tk:agg:m:837", mapping={"families": 40, "children": 70, "g1": 40})
    r.hset("tk:agg:a:33100", mapping={"families": 30, "children": 50, "g1": 30})
    r.hset("tk:agg:a:99999", mapping={"families": 10, "children": 20, "g1": 10})
    r.hset("tk:areas", mapping={"33100": "837", "99999": "837"})
    r.hset("tk:updated", mapping={"all": "2026-07-01T08:00:02Z", "a:33100": "2026-07-01T08:00:01Z"})


def check(pic: dict) -> None:
    assert pic["as_of"] == "2026-06-30"
    assert pic["updated_at"]["a:33100"] == "2026-07-01T08:00:01Z"
    assert set(pic["municipalities"]) == set(COVERED_MUNICIPALITIES)
    ref = reference_areas()
    assert len(ref) == 144
    assert set(pic["areas"]) == set(ref) | {"99999"}
    a = pic["areas"]["33100"]
    assert a["municipality"] == "837"
    assert a["counts"]["families"] == 30 and a["counts"]["single_parent_families"] == 0
    assert a["counts"]["g1"] == 30 and a["counts"]["g10"] == 0
    # Areas without data: all indicators 0, no group fields.
    empty = pic["areas"]["01200"]["counts"]
    assert empty == {f: 0 for f in INDICATORS}
    assert pic["areas"]["01200"]["municipality"] == "092"
    # An area outside the reference list that has held a family is read too.
    assert pic["areas"]["99999"] == {
        "municipality": "837",
        "counts": {f: 0 for f in INDICATORS}
        | {g: 0 for g in GROUPS}
        | {"families": 10, "children": 20, "g1": 10},
    }
    assert pic["all"]["children"] == 70
    assert pic["municipalities"]["092"] == {f: 0 for f in INDICATORS}


def test_read_picture_sync(redis_client):
    seed(redis_client)
    check(redis_reader.read_picture(redis_client))


async def test_read_picture_async(redis_client, redis_test_url):
    seed(redis_client)
    for decode in (False, True):
        client = aioredis.Redis.from_url(redis_test_url, decode_responses=decode)
        try:
            check(await redis_reader.read_picture_async(client))
        finally:
            await client.aclose()


def test_empty_redis(redis_client):
    pic = redis_reader.read_picture(redis_client)
    assert pic["as_of"] is None and pic["updated_at"] == {}
    assert pic["all"] == {f: 0 for f in INDICATORS}
    assert len(pic["areas"]) == 144


def test_one_round_trip_for_reference_areas(redis_client, monkeypatch):
    seed(redis_client)
    redis_client.delete("tk:agg:a:99999")
    redis_client.hdel("tk:areas", "99999")
    calls = []
    real = type(redis_client.pipeline()).execute

    def counting(self, *a, **k):
        calls.append(1)
        return real(self, *a, **k)

    monkeypatch.setattr(type(redis_client.pipeline()), "execute", counting)
    redis_reader.read_picture(redis_client)
    assert len(calls) == 1


def seed_types(r) -> None:
    """seed() with family-type fields beside the groups, and a model version."""
    seed(r)
    r.hset("tk:agg:all", mapping={"t3": 25, "t8": 15, "t9": 0})
    r.hset("tk:agg:m:837", mapping={"t3": 25, "t8": 15})
    r.hset("tk:agg:a:33100", mapping={"t3": 20, "t8": 10})
    r.hset("tk:agg:a:99999", mapping={"t3": 5, "t8": 5})
    r.set("tk:model:version", "2.7")


async def test_read_types_with_the_picture_of_the_same_moment(redis_client, redis_test_url):
    seed_types(redis_client)
    got = redis_reader.read_types(redis_client)
    assert got["as_of"] == "2026-06-30" and got["model_version"] == "2.7"
    check(got["picture"])  # the very same picture: the type fields are no part of it
    assert got["picture"] == redis_reader.read_picture(redis_client)
    assert got["types"]["all"] == {3: 25, 8: 15}  # zero counts left out
    assert got["types"]["a:33100"] == {3: 20, 8: 10}
    assert got["types"]["a:99999"] == {3: 5, 8: 5}  # outside the reference list
    assert got["types"]["m:092"] == {} and got["types"]["a:01200"] == {}
    assert set(got["types"]) == {"all"} | {f"m:{m}" for m in COVERED_MUNICIPALITIES} | {
        f"a:{pc}" for pc in got["picture"]["areas"]
    }
    for decode in (False, True):
        client = aioredis.Redis.from_url(redis_test_url, decode_responses=decode)
        try:
            assert await redis_reader.read_types_async(client) == got
        finally:
            await client.aclose()


def test_read_types_before_any_model(redis_client):
    seed(redis_client)
    got = redis_reader.read_types(redis_client)
    assert got["model_version"] is None and got["types"]["all"] == {}


async def test_alerts_newest_first(redis_client, redis_test_url):
    for i, ts in enumerate([1_700_000_000, 1_700_000_100, 1_700_000_050]):
        redis_client.zadd("tk:alerts", {json.dumps({"n": i}): ts})
    redis_client.zadd("tk:alerts", {"not json": 1_700_000_200})
    assert [a["n"] for a in redis_reader.read_alerts(redis_client)] == [1, 2, 0]
    assert [a["n"] for a in redis_reader.read_alerts(redis_client, 1_700_000_050)] == [1, 2]
    client = aioredis.Redis.from_url(redis_test_url)
    try:
        assert [a["n"] for a in await redis_reader.read_alerts_async(client, None, 3)] == [1, 2]
    finally:
        await client.aclose()
