"""LearnerRunner: envelopes in, snapshots in the model table and the store (real Redis)."""

import random
from datetime import date

import redis.asyncio as aioredis

from models.learning import Learner, rebase_request
from sinks.model_store import AsyncModelStore
from streams.learner import LearnerRunner
from tests.streams.fakes import Event

FEATURES = ("a", "b")


def vectors(n: int, seed: int = 1) -> list[list]:
    rnd = random.Random(seed)
    return [[f"f{i}", {f: rnd.gauss(i % 3 * 5, 1) for f in FEATURES}] for i in range(n)]


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def runner(table, store, day, clock, live=None, adoption=None, **kw):
    learner = Learner(
        n_types=3,
        warmup=30,
        calibrate_shares=None,
        model_params={"features": FEATURES, "weights": (1, 1), "rule": None},
        **kw,
    )

    async def watermark():
        return day[0]

    return LearnerRunner(learner, table, store, watermark, clock, live=live, adoption=adoption)


async def test_first_snapshot_after_warm_up_goes_to_the_table_and_the_store(
    redis_test_url, redis_client
):
    client = aioredis.from_url(redis_test_url)
    store, table, day, clock = AsyncModelStore(client), {}, ["2026-01-01"], Clock()
    run = runner(table, store, day, clock)
    assert await run([Event({"items": vectors(10)})]) is None  # still warming up
    snap = await run([Event({"items": vectors(40, 2)})])
    assert snap is not None and table["snapshot"] is snap
    version, stored = await store.load_if_newer(None)
    assert stored == snap and version == f"{snap['generation']}.{snap['version']}"
    day[0], clock.t = "2026-01-10", 1000.0
    assert await run([Event({"items": vectors(5, 3)})]) is None  # not due: 9 days of W
    day[0] = "2026-02-01"
    assert (await run([Event({"items": vectors(5, 4)})]))["version"] == snap["version"] + 1
    await client.aclose()


async def test_a_restarted_runner_resumes_from_the_table_and_carries_out_a_rebase_once(
    redis_test_url, redis_client
):
    client = aioredis.from_url(redis_test_url)
    store, table, day, clock = AsyncModelStore(client), {}, ["2026-01-01"], Clock()
    first = await runner(table, store, day, clock)([Event({"items": vectors(60)})])
    again = runner(table, store, day, clock)  # a new process: only the table survived
    assert await again([Event({"items": vectors(3, 5)})]) is None
    assert again.state.model.version == first["version"]
    refill = {"items": [], "sample": vectors(60, 6)}
    snap = await again([Event(refill), Event(rebase_request("r1"))])
    assert snap is not None and snap["generation"] == first["generation"] + 1
    assert snap["lineage"]["request"] == "r1"
    assert await again([Event(rebase_request("r1"))]) is None  # replayed: done already
    await client.aclose()


async def test_republish_puts_the_tables_snapshot_back_where_the_store_lost_it(
    redis_test_url, redis_client
):
    client = aioredis.from_url(redis_test_url)
    store, table, day, clock = AsyncModelStore(client), {}, ["2026-01-01"], Clock()
    run = runner(table, store, day, clock)
    assert not await run.republish()  # no snapshot yet: nothing to put back
    snap = await run([Event({"items": vectors(40)})])
    assert not await run.republish()  # the store holds it
    await client.flushdb()  # its db only: other tests run beside this one
    assert await run.republish()
    assert await store.load_if_newer(None) == (f"{snap['generation']}.{snap['version']}", snap)
    await client.aclose()


async def test_the_runner_counts_the_baseline_from_the_live_day_it_is_given(
    redis_test_url, redis_client
):
    """The worker gives tk:live (AsyncRedisSink.live): W of an initial load starts no clock."""
    client = aioredis.from_url(redis_test_url)
    store, table, day, clock = AsyncModelStore(client), {}, ["2019-06-01"], Clock()

    async def live():
        return "2023-07-01"

    run = runner(table, store, day, clock, live=live)
    await run([Event({"items": vectors(60)})])
    assert run.state.first_w == date(2023, 7, 1).toordinal()
    await client.aclose()


async def test_the_runner_spaces_snapshots_by_the_slowest_recorded_adoption(
    redis_test_url, redis_client
):
    """A worker took 30 s to adopt the last snapshot: at a tenth of the workers' time,
    the next waits 300 s of wall time, not the 60 s minimum."""
    client = aioredis.from_url(redis_test_url)
    store, table, day, clock = AsyncModelStore(client), {}, ["2026-01-01"], Clock()
    run = runner(table, store, day, clock, adoption=store.adoption_seconds)
    run.learner.adoption_share = 0.1
    first = await run([Event({"items": vectors(40)})])
    assert first is not None
    await store.record_adoption("w1", 30.0, at=clock.t)
    day[0], clock.t = "2026-03-01", 299.0  # 59 days of W on
    assert await run([Event({"items": vectors(5, 2)})]) is None
    clock.t = 300.0
    assert (await run([Event({"items": vectors(5, 3)})]))["version"] == first["version"] + 1
    await client.aclose()
