"""``GET /api/v1/impact`` over the real Redis: a generated world with planted service
effects fed through the demo's ingest (the in-process pipeline, its cohorts and the
real Redis sink) answers the estimates that the offline panel of the same events gives
(``evaluate-impact``'s ``stream_panel``), for all six municipalities, for one and for
an area; and
``tilannekuva export --impact`` writes the same."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import socket

import numpy as np
import orjson
import pandas as pd
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from models.contract import COVERED_MUNICIPALITIES, validate
from models.impact import (
    HORIZONS,
    SERVICES,
    Panel,
    anticipation_of,
    cohort_cells,
    cohort_counts,
    published,
)
from sinks import keys
from sinks.impact_store import ImpactStore, pack
from tilannekuva import api, export
from tilannekuva.api import impact as impact_api
from tilannekuva.api.schemas import ImpactList
from tilannekuva.api.state import IMPACT
from tilannekuva.config import Settings
from tilannekuva.demo import Ingest
from tilannekuva.impact_eval import batches, stream_panel
from tilannekuva.synthetic import synthesize

TOKEN = "impact-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MIN_CELL = 3
KEY = b"0123456789abcdef-impact-test"


@pytest.fixture(scope="module")
def world():
    """A world's lines and, offline, its panel."""
    lines = synthesize(500, seed=5, services=True).lines
    return lines, stream_panel(lines, key=KEY)  # the demo's pseudonyms: the same groups


@pytest.fixture
async def client(redis_client, redis_test_url, world):
    lines, _ = world
    ingest = Ingest(redis_client, KEY)
    for chunk in batches([validate(line) for line in lines]):
        ingest.apply(chunk)
    r = aioredis.Redis.from_url(redis_test_url)
    settings = Settings(api_token=TOKEN, min_cell=MIN_CELL, redis_url=redis_test_url)
    c = TestClient(TestServer(api.make_app(settings, r)))
    await c.start_server()
    yield c
    await c.close()
    await r.aclose()


async def test_the_api_answers_the_offline_estimates(
    client, world, redis_client, redis_test_url, tmp_path
):
    _, (panel, _, _) = world
    body = await (await client.get("/api/v1/impact", headers=AUTH)).json()
    ImpactList.model_validate(body)
    assert body["counted_to"] == redis_client.get(keys.IMPACT_MONTH).decode()
    assert [s["service"] for s in body["services"]] == list(SERVICES)
    for s in body["services"]:
        a = anticipation_of(s["service"])
        want = published(cohort_cells(panel, s["service"]), MIN_CELL, anticipation=a)
        assert {k: s[k] for k in want} == want, s["service"]
    shown = [e for s in body["services"] for e in s["estimates"] if e["withheld"] is None]
    assert shown, "a world of 500 families publishes some estimate"
    reasons = {e["withheld"] for s in body["services"] for e in s["event_study"]}
    # A reason never says how many families: only the rule's own numbers.
    small = f"a count behind the estimate is 1 to {MIN_CELL - 1} families"
    opened = "what opened the case is still in the outcome's 6-month look back"
    assert reasons - {None} <= {"fewer than 20 entries", small, opened} and opened in reasons

    # One service, the entries of one municipality; then malformed and unknown asks.
    tampere = sorted(COVERED_MUNICIPALITIES).index("837")  # the panel's numbering
    resp = await client.get("/api/v1/impact?service=family_work&municipality=837", headers=AUTH)
    one = await resp.json()
    assert one["municipality"] == "837" and len(one["services"]) == 1
    want = published(cohort_cells(panel, "family_work", municipalities=[tampere]), MIN_CELL)
    assert {k: one["services"][0][k] for k in want} == want
    # One area of it: its entries against their strata's comparison families.
    areas = panel.area[panel.municipality == tampere]
    area = int(np.bincount(areas[areas > 0]).argmax())  # Tampere's most populous area
    resp = await client.get(f"/api/v1/impact?service=family_work&area={area:05d}", headers=AUTH)
    one = await resp.json()
    assert one["area"] == f"{area:05d}" and one["municipality"] is None
    cells = cohort_counts(panel, "family_work").cells(area=area)
    want = published(cells, MIN_CELL, naive=False)
    assert {k: one["services"][0][k] for k in want} == want
    assert all(e["naive"] is None for e in one["services"][0]["event_study"])
    for path, status in (
        ("/api/v1/impact?service=yoga", 400),
        ("/api/v1/impact?municipality=83", 400),
        ("/api/v1/impact?area=3310", 400),
        (f"/api/v1/impact?area={area:05d}&municipality=092", 400),
        ("/api/v1/impact?municipality=091", 404),
        ("/api/v1/impact?area=00001", 404),
    ):
        assert (await client.get(path, headers=AUTH)).status == status, path

    # The export: the same answers, a row per (municipality, service, month).
    out = tmp_path / "impact.csv"
    parser = argparse.ArgumentParser()
    export.add_arguments(parser)
    args = parser.parse_args(["--impact", "--format", "csv", "--out", str(out)])
    settings = Settings(min_cell=MIN_CELL, redis_url=redis_test_url)
    assert await asyncio.to_thread(export.run, args, settings) == 0  # it runs its own loop
    df = pd.read_csv(out, dtype={"municipality": str})
    assert len(df) == 7 * len(SERVICES) * len(body["services"][0]["event_study"])
    rows = df[df["municipality"].isna() & (df["service"] == "family_work")]
    api_rows = body["services"][0]["event_study"]
    assert rows["months"].tolist() == [e["months"] for e in api_rows]
    assert rows["effect"].fillna(-9).round(6).tolist() == [
        -9 if e["effect"] is None else e["effect"] for e in api_rows
    ]
    assert set(df.loc[df["reported"], "months"]) == {3, 6, 12}
    parser_args = ["--impact", "--step", "week", "--format", "csv", "--out", str(out)]
    assert export.run(parser.parse_args(parser_args), Settings(redis_url=redis_test_url)) == 2


def test_an_areas_answer_has_no_naive_before_after():
    """The naive before/after moves by a month's new entries only: an area's is never
    published (docs/impact.md, "Over time"); the same counts give it for all six."""
    g = np.full((60, 12), 5, dtype=np.int8)
    g[:30, 8:] = 4  # the 30 entries (month 6) improve, the 30 later treated do not
    area = np.full_like(g, 33100, dtype=np.int64)
    panel = Panel(g, np.zeros_like(g), {"family_work": [[6]] * 30 + [[11]] * 30}, None, area)
    counts = {"family_work": cohort_counts(panel, "family_work", (-2, 3))}
    everywhere = impact_api.body("2026-01", counts, None, MIN_CELL)["services"][0]
    there = impact_api.body("2026-01", counts, None, MIN_CELL, area="33100")["services"][0]
    assert everywhere["estimates"][0]["naive"] == 1.0
    assert there["estimates"][0]["naive"] is None
    assert there["estimates"][0]["effect"] == everywhere["estimates"][0]["effect"] == 1.0


async def test_answers_are_kept_while_the_counts_version_holds(redis_client, redis_test_url):
    """The cache answers from what it made while ``tk:impact-version`` is the token it
    read with the counts; a writer's write (a new token) or a lost token makes it read
    again."""
    g = np.full((60, 12), 5, dtype=np.int8)
    g[:30, 8:] = 4
    panel = Panel(g, np.zeros_like(g), {"family_work": [[6]] * 30 + [[11]] * 30})
    better = cohort_counts(panel, "family_work", HORIZONS)
    g[:30, 8:] = 6  # the same families, now worse off
    worse = cohort_counts(panel, "family_work", HORIZONS)
    store = ImpactStore(redis_client)
    store.write(24300, {"family_work": better})
    r = aioredis.Redis.from_url(redis_test_url)
    try:
        cache = impact_api.ImpactCache(r, MIN_CELL)
        query = (("family_work",), None, None)

        def effect(answer: bytes) -> float:
            return orjson.loads(answer)["services"][0]["estimates"][0]["effect"]

        assert effect(await cache.get(query)) == 1.0
        # counts changed behind the writer's back (its token kept): the answer held
        token = redis_client.get(keys.IMPACT_VERSION)
        redis_client.set(keys.impact("family_work"), pack(worse))
        assert effect(await cache.get(query)) == 1.0
        redis_client.set(keys.IMPACT_VERSION, token)
        assert effect(await cache.get(query)) == 1.0
        store.write(24300, {"family_work": worse})  # a write: a new token
        assert effect(await cache.get(query)) == 0.0
        store.write(24300, {"family_work": better})
        redis_client.delete(keys.IMPACT_VERSION)  # no token: never held
        assert effect(await cache.get(query)) == 1.0
        redis_client.set(keys.impact("family_work"), pack(worse))
        assert effect(await cache.get(query)) == 0.0
        # two alike at once: one answer
        a, b = await asyncio.gather(cache.get(query), cache.get(query))
        assert a == b
    finally:
        await r.aclose()


async def test_the_page_s_answers_are_made_once_the_counts_stand_still(
    redis_client, redis_test_url
):
    """The app's warm-up makes every page query's answer once a version of the counts
    has stood its settle time, not before, and again for the next version."""
    g = np.full((60, 12), 5, dtype=np.int8)
    g[:30, 8:] = 4
    panel = Panel(g, np.zeros_like(g), {"family_work": [[6]] * 30 + [[11]] * 30})
    store = ImpactStore(redis_client)
    store.write(24300, {"family_work": cohort_counts(panel, "family_work", HORIZONS)})
    r = aioredis.Redis.from_url(redis_test_url)
    settings = Settings(api_token=TOKEN, min_cell=MIN_CELL, redis_url=redis_test_url)
    app = api.make_app(settings, r, history_refresh_s=None, impact_settle_s=3.0)
    c = TestClient(TestServer(app))
    await c.start_server()
    cache = app[IMPACT]

    async def made(within_s: float) -> set:
        for _ in range(int(within_s / 0.1)):
            if set(cache.held()) == set(impact_api.PAGE_QUERIES):
                break
            await asyncio.sleep(0.1)
        return set(cache.held())

    try:
        await asyncio.sleep(0.5)
        assert cache.held() == []  # the version has not stood 3 s yet
        assert await made(20.0) == set(impact_api.PAGE_QUERIES)
        held = await (await c.get("/api/v1/impact?municipality=837", headers=AUTH)).read()
        assert held == cache._answers[(SERVICES, "837", None)]
        g[:30, 8:] = 6  # a new version: the answers of the old one are not served
        store.write(24300, {"family_work": cohort_counts(panel, "family_work", HORIZONS)})
        body = await (await c.get("/api/v1/impact", headers=AUTH)).json()
        assert body["services"][0]["estimates"][0]["effect"] == 0.0
        assert set(cache.held()) == {(SERVICES, None, None)}  # only the one asked, so far
        assert await made(20.0) == set(impact_api.PAGE_QUERIES)
    finally:
        await c.close()
        await r.aclose()


async def test_the_warm_up_waits_out_an_unreachable_redis(caplog):
    """With Redis down the warm-up keeps polling, says so once, and does not end."""
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = aioredis.Redis(host="127.0.0.1", port=port, retry=Retry(NoBackoff(), 0))
    task = asyncio.create_task(impact_api.ImpactCache(r, MIN_CELL).run(poll_s=0.05, settle_s=0))
    try:
        with caplog.at_level(logging.WARNING, logger=impact_api.__name__):
            await asyncio.sleep(1.5)
        assert not task.done()
        said = [x for x in caplog.records if "Redis unreachable" in x.getMessage()]
        assert len(said) == 1
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await r.aclose()
