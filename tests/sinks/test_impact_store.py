"""The cohort counts in Redis (sinks/impact_store.py): a worker partition's replaced
whole, the partitions written remembered, every writer's added up by the reader."""

from __future__ import annotations

import numpy as np
import redis.asyncio as aioredis

from models.impact import FIELDS, HORIZONS, Counts
from sinks import keys
from sinks.impact_store import AsyncImpactStore, ImpactStore, decode, encode, pack, unpack
from sinks.redis_reader import read_impact_async


def counts(*strata: tuple[int, ...], n: int = 1) -> Counts:
    values = np.full((len(strata), len(HORIZONS), len(FIELDS)), n, dtype=np.int64)
    return Counts(HORIZONS, np.array(strata, dtype=np.int64), values)


async def test_partitions_are_replaced_whole_and_added_up_by_the_reader(
    redis_client, redis_test_url
):
    client = aioredis.Redis.from_url(redis_test_url)
    try:
        store = AsyncImpactStore(client)
        assert await store.written() == set()
        await store.write(0, 24300, {"family_work": counts((24290, 837, 55, 33100, 3), n=2)})
        await store.write(
            1, 24300, {"family_work": counts((24290, 837, 55, 33100, 3), (24291, 92, 11, 0, 4))}
        )
        ImpactStore(redis_client).write(24300, {"family_work": counts((24291, 92, 11, 0, 4), n=5)})
        assert await store.written() == {0, 1}
        month, got = await read_impact_async(client, ["family_work"])
        assert month == "2025-01"
        assert got["family_work"].strata.tolist() == [
            [24290, 837, 55, 33100, 3],
            [24291, 92, 11, 0, 4],
        ]
        assert got["family_work"].values[:, 0, 0].tolist() == [3, 6]
        # A hash as written before session 37, beside the packed counts; its stratum
        # as written before the replicate groups reads as group 0.
        old = ",".join(["1"] * (len(HORIZONS) * len(FIELDS)))
        redis_client.delete(keys.impact("family_work"))
        redis_client.hset(keys.impact("family_work"), "24291|92|11|0", old)
        _, got = await read_impact_async(client, ["family_work"])
        assert got["family_work"].strata.tolist()[-2:] == [
            [24291, 92, 11, 0, 0],
            [24291, 92, 11, 0, 4],
        ]
        assert got["family_work"].values[-2:, 0, 0].tolist() == [1, 1]  # the partitions'
        redis_client.delete(keys.impact("family_work"))
        # A partition counted again replaces its hash: the stratum it no longer has is gone.
        await store.write(1, 24301, {"family_work": counts((24291, 92, 11, 0, 4))})
        kept = unpack(redis_client.get(keys.impact("family_work", 1)))
        assert kept.strata.tolist() == [[24291, 92, 11, 0, 4]]
        await store.write(1, 24301, {"family_work": Counts.empty(HORIZONS)})
        assert not redis_client.exists(keys.impact("family_work", 1))
        redis_client.flushdb()
        assert await store.written() == set()
    finally:
        await client.aclose()


def test_counts_written_before_the_key_sums_read_with_key_sums_zero():
    nine = ",".join(str(i) for i in range(len(HORIZONS) * 9))
    got = decode([(b"24291|92|11|0|4", nine.encode())])
    assert got.values.shape == (1, len(HORIZONS), len(FIELDS))
    assert got.values[0, :, :9].ravel().tolist() == list(range(len(HORIZONS) * 9))
    assert not got.values[0, :, 9:].any()
    whole = counts((24291, 92, 11, 0, 4), n=3)
    assert decode(encode(whole).items()).values.tolist() == whole.values.tolist()


def test_packed_counts_of_fewer_fields_read_with_key_sums_zero():
    rng = np.random.default_rng(1)
    strata = np.array([(24291, 92, 11, 0, g) for g in range(4)], dtype=np.int64)
    values = rng.integers(0, 3, (4, len(HORIZONS), len(FIELDS))) * (
        rng.random((4, len(HORIZONS), len(FIELDS))) < 0.3
    )
    whole = Counts(HORIZONS, strata, values)
    nine = Counts(whole.horizons, whole.strata, whole.values[:, :, :9].copy())
    got = unpack(pack(nine))
    assert got.values[:, :, :9].tolist() == nine.values.tolist()
    assert not got.values[:, :, 9:].any()
    assert unpack(pack(whole)).values.tolist() == whole.values.tolist()
