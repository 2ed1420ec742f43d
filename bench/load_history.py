"""Load an event file into a Redis database in-process: the present and the history.

The worker's pure steps (:class:`models.picture.Pipeline`, picture only) and its Redis
sink (the same Lua scripts the worker runs), without Kafka: a way to put a large history
(the 80,000-family file) into Redis in a fraction of the worker's time, for checks of
the history API against the batch reference (``tilannekuva compare FILE --as-of ...``)
and for the history benchmarks. Prints events/s per tenth of the file, the Redis
memory before and after, and Redis's time in the scripts (``INFO commandstats``, reset
at the start: the whole server's).

    python bench/load_history.py FILE --redis-db 13 [--limit N]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_worker import env_file  # noqa: E402
from models.contract import InvalidEvent, validate  # noqa: E402
from models.picture import Dedup, Pipeline  # noqa: E402
from models.pseudonym import Pseudonymiser  # noqa: E402
from sinks.redis_sink import RedisSink  # noqa: E402

BATCH = 2000


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file")
    ap.add_argument("--redis-db", type=int, default=13)
    ap.add_argument("--limit", type=int, default=None)
    args = ap.parse_args(argv)

    url = env_file()["REDIS_URL"].rsplit("/", 1)[0] + f"/{args.redis_db}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.config_resetstat()
    before = client.info("memory")["used_memory"]
    sink = RedisSink(client).setup()
    pipe = Pipeline(
        dedup_step=Dedup(summary_only=True),
        on_contribution=lambda fam, old, new: sink.write([(fam, new, None)]),
        on_history=lambda fam, since, segments: sink.write_history([(fam, since, segments)]),
        history=None,
    )
    pseudo = Pseudonymiser(b"bench-key-0123456789abcdef")
    with open(args.file, "rb") as fh:
        total = sum(1 for _ in itertools.islice(fh, args.limit))
    print(f"{total} lines; Redis db {args.redis_db}", flush=True)
    started = last = time.perf_counter()
    done, batch, rejected = 0, [], 0
    with open(args.file, "rb") as fh:
        for raw in itertools.islice(fh, args.limit):
            try:
                batch.append(pseudo.event(validate(raw)))
            except InvalidEvent:
                rejected += 1
            done += 1
            if len(batch) >= BATCH or done == total:
                pipe.process_many(batch)
                sink.raise_watermark(pipe.watermark)
                if pipe.first_day:
                    sink.raise_watermark(pipe.first_day)
                sink.flush()
                batch = []
            if done % max(total // 10, 1) == 0:
                now = time.perf_counter()
                print(
                    f"{done:>9} lines  {max(total // 10, 1) / (now - last):>8,.0f} lines/s  "
                    f"W {pipe.watermark}",
                    flush=True,
                )
                last = now
    elapsed = time.perf_counter() - started
    grown = client.info("memory")["used_memory"] - before
    sizes = {"tk:hist:*": [0, 0], "tk:fh:*": [0, 0]}
    for pattern, acc in sizes.items():
        for key in client.scan_iter(pattern, count=10_000):
            acc[0] += 1
            acc[1] += client.memory_usage(key, samples=0) or 0
    print(
        f"done: {done} lines ({rejected} rejected) in {elapsed:,.0f} s = {done / elapsed:,.0f} "
        f"lines/s; W {pipe.watermark}, first day {pipe.first_day}",
        flush=True,
    )
    print(f"Redis memory grown by {grown / 2**20:,.1f} MiB (used_memory, whole server)")
    stats = client.info("commandstats")
    scripts = stats.get("cmdstat_evalsha", {"calls": 0, "usec": 0})
    inside = sum(
        v["usec"]
        for k, v in stats.items()
        if k not in ("cmdstat_evalsha", "cmdstat_exec", "cmdstat_multi")
    )
    print(
        f"Redis in the scripts: {scripts['calls']:,} calls, {scripts['usec'] / 1e6:,.2f} s"
        f" (the commands they and the rest ran: {inside / 1e6:,.2f} s)"
    )
    for pattern, (n, size) in sizes.items():
        print(f"  {pattern}: {n} keys, {size / 2**20:,.1f} MiB (MEMORY USAGE)")


if __name__ == "__main__":
    main()
