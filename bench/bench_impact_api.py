"""Benchmark: ``GET /api/v1/impact`` on the counts of a real panel (issue 16).

    make services-up            # or any Redis: REDIS_URL, a database of its own
    tilannekuva evaluate-impact --families 20000 --seed 5 --panels FILE
    python bench/bench_impact_api.py --panels FILE [--redis-db 7] [--requests 5]

Writes every service's counts of the panel's world (``models.impact.cohort_counts``,
replicate groups and record keys from the pseudonyms) to an empty Redis database, then,
in this process, with the real API app (:func:`tilannekuva.api.make_app`) over loopback:

1. **baseline**, as a request cost before session 37: the counts written as a hash per
   service, a field per stratum with its counts as text
   (:func:`sinks.impact_store.encode`, which the reader still reads), read, decoded and
   answered in the request's own task (what the handler did);
2. **packed, cold**: the counts packed (:func:`sinks.impact_store.pack`, as the writers
   write them now), the first request of each query (read, decode and estimates in a
   worker thread, :class:`tilannekuva.api.impact.ImpactCache`);
3. **packed, warm**: the same queries again, from the cache;

for all six municipalities and for one (Tampere), and, while a cold answer is made,
the gaps between answers to ``/healthz`` asked for every 50 ms (the event loop's
freedom). Prints
a table; the database is flushed before (only with ``--reset`` if not empty) and after.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pickle
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import orjson
import redis
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.impact import HORIZONS, SERVICES, cohort_counts, record_keys, replicates  # noqa: E402
from sinks import keys  # noqa: E402
from sinks.impact_store import ImpactStore, encode  # noqa: E402
from tilannekuva import api  # noqa: E402
from tilannekuva.api import impact as impact_api  # noqa: E402
from tilannekuva.config import Settings  # noqa: E402

QUERIES = {"all six": "", "Tampere": "&municipality=837"}
TOKEN = "bench-impact-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def size_mib(sync: redis.Redis) -> float:
    return sum(sync.memory_usage(k) or 0 for k in sync.scan_iter(f"{keys.IMPACT}*")) / 2**20


def counts_of(path: str) -> dict:
    with open(path, "rb") as f:
        panel, fams, _ = pickle.load(f)["world"]  # our own file (tilannekuva/impact_eval.py)
    panel = replace(panel, replicate=replicates(fams), record=record_keys(fams))
    return {s: cohort_counts(panel, s, HORIZONS, first=24_000) for s in SERVICES}


async def baseline(r: aioredis.Redis, munis: str | None) -> float:
    """Seconds of one request's work as the handler did it before (in its task)."""
    t0 = time.perf_counter()
    month, counts = await impact_api.redis_reader.read_impact_async(r, SERVICES)
    orjson.dumps(impact_api.body(month, counts, munis, 5, None))
    return time.perf_counter() - t0


async def served(client: TestClient, query: str) -> tuple[float, int]:
    t0 = time.perf_counter()
    resp = await client.get(f"/api/v1/impact?{query.lstrip('&')}", headers=AUTH)
    body = await resp.read()
    assert resp.status == 200, body[:200]
    return time.perf_counter() - t0, len(body)


async def health_during(client: TestClient, work) -> tuple[float, list[float]]:
    """``work``'s seconds and the gaps between /healthz answers asked for every 50 ms
    meanwhile (a gap far over 50 ms: the event loop was held)."""
    done, at = asyncio.Event(), [time.perf_counter()]

    async def probe() -> None:
        while not done.is_set():
            await (await client.get("/healthz")).read()
            at.append(time.perf_counter())
            await asyncio.sleep(0.05)

    task = asyncio.create_task(probe())
    t0 = time.perf_counter()
    await work
    spent = time.perf_counter() - t0
    at.append(time.perf_counter())  # the gap up to the end counts too
    done.set()
    await task
    return spent, [b - a for a, b in zip(at, at[1:], strict=False)]


async def run(args: argparse.Namespace, url: str) -> None:
    sync = redis.Redis.from_url(url)
    counts = counts_of(args.panels)
    rows = sum(len(c.strata) for c in counts.values())
    print(f"{rows:,} strata rows over {len(SERVICES)} services ({args.panels})")

    # 1. the baseline: hashes of text fields, answered in the request's task
    pipe = sync.pipeline()
    for s, c in counts.items():
        pipe.hset(keys.impact(s), mapping=encode(c))
    pipe.set(keys.IMPACT_MONTH, "2026-01")
    pipe.execute()
    hashes_mb = size_mib(sync)
    r = aioredis.Redis.from_url(url)
    settings = Settings(api_token=TOKEN, min_cell=5, redis_url=url)
    client = TestClient(TestServer(api.make_app(settings, r)))
    await client.start_server()
    try:
        print(f"Redis memory of the counts as hashes: {hashes_mb:.1f} MiB")
        for name, q in QUERIES.items():
            munis = q.split("=")[1] if q else None
            spent, lat = await health_during(client, baseline(r, munis))
            print(
                f"  baseline, {name}: {spent:.2f} s; /healthz answers meanwhile at most "
                f"{max(lat, default=0) * 1000:.0f} ms apart ({len(lat)} answers)"
            )
        # 2., 3. packed, through the API and its cache
        sync.flushdb()
        ImpactStore(sync).write(24_300, counts)
        print(f"Redis memory of the counts packed: {size_mib(sync):.1f} MiB")
        for name, q in QUERIES.items():
            spent, lat = await health_during(client, served(client, q))
            warm = [(await served(client, q))[0] for _ in range(args.requests)]
            print(
                f"  packed, {name}: cold {spent:.2f} s (/healthz answers at most "
                f"{max(lat, default=0) * 1000:.0f} ms apart, {len(lat)}); warm median "
                f"{statistics.median(warm) * 1000:.1f} ms"
            )
    finally:
        await client.close()
        await r.aclose()
        sync.flushdb()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--panels", required=True, help="evaluate-impact --panels FILE")
    p.add_argument("--redis-db", type=int, default=7)
    p.add_argument("--requests", type=int, default=5)
    p.add_argument("--reset", action="store_true", help="flush a database that is not empty")
    args = p.parse_args(argv)
    base = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0]
    url = f"{base}/{args.redis_db}"
    if redis.Redis.from_url(url).dbsize() and not args.reset:
        raise SystemExit(f"{url.split('@')[-1]} is not empty (--reset flushes it)")
    asyncio.run(run(args, url))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
