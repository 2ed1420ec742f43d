"""Benchmark: the history API at 80,000 families (contract 1.1, the issue's 200 ms goal).

    make services-up            # or any Redis: REDIS_URL, a database of its own
    python bench/bench_history_api.py --families 80000 --redis-db 6

1. **Fill** an empty Redis database with a synthetic history through the real sink
   (:meth:`sinks.redis_sink.RedisSink.write_history`, ``apply_history.lua``) and the
   present at ``W`` (:meth:`~sinks.redis_sink.RedisSink.write`): every family a
   plausible piecewise-constant function over the days (reference areas weighted,
   moves, births, episodes of social assistance, unemployment and child welfare,
   window events of 30 and 90 days, a service-need group), most of them formed long
   before the last three years, so the history reaches back decades as real registers do.
2. **Suppression**: ms per :func:`models.suppression.suppress` call on whole pictures of
   that history (day W and days across the window).
3. **The API** in this process (:func:`tilannekuva.api.make_app`, the background history
   refresh on), requests over loopback with aiohttp:
   - *cold*: the first request (one area, all indicators, three years by day) right
     after start-up, while the warm-up runs;
   - *first after warm-up*: a fresh app whose warm-up has finished, its first request;
   - *warm*: ``--requests`` repeated requests, p50/p95; and the same for the present
     picture of the area (the baseline, in the same run);
   - *refresh*: the cost of a refresh in which nothing moved (one atomic fingerprint
     script over every hash of the window) and of one after a late event that revises
     the last 30 days.

The database is flushed before (only with ``--reset`` if it is not empty) and after
(unless ``--keep``). Prints a table and, with ``--json FILE``, writes the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import redis  # noqa: E402

from models.areas import reference_areas  # noqa: E402
from models.contract import INDICATORS  # noqa: E402
from models.suppression import suppress  # noqa: E402
from sinks import keys, redis_reader  # noqa: E402
from sinks.redis_sink import RedisSink  # noqa: E402

W = dt.date(2026, 6, 30).toordinal()
THREE_YEARS = 3 * 365  # days asked for: from = W − 1094 … W
AREA = "33100"
GROUP_WEIGHTS = np.array([30, 25, 20, 15, 10, 8, 6, 4, 2, 1], dtype=float)


# --------------------------------------------------------------------------- synthetic


def _episodes(rng: random.Random, start: int, end: int, per_year: float, mean_days: float):
    """(on, off) day pairs of episodes starting at ``per_year`` within [start, end]."""
    out, d = [], start
    while True:
        d += int(rng.expovariate(per_year / 365.0)) + 1
        if d > end:
            return out
        out.append((d, d + max(7, int(rng.expovariate(1.0 / mean_days)))))


def family_segments(rng: random.Random, areas: list[tuple[str, str]], weights) -> list[list]:
    """One family's history segments ``[[day, value | None], …]`` (models/history.py)."""
    old = rng.random() < 0.75
    start = W - rng.randint(THREE_YEARS + 30, 25 * 365) if old else W - rng.randint(0, THREE_YEARS)
    end = W + 400  # the function goes on after W (windows and episodes end later)
    changes: dict[int, list] = {}

    def at(day: int, what: str, delta: int = 0, value=None) -> None:
        changes.setdefault(day, []).append((what, delta, value))

    area = rng.choices(areas, weights)[0]
    at(start, "area", value=area)
    for on, _ in _episodes(rng, start, end, 0.08, 1):  # moves
        at(on, "area", value=rng.choices(areas, weights)[0])
    at(start, "children", 1 + (rng.random() < 0.5))
    for on, _ in _episodes(rng, start, end, 0.12, 1):
        at(on, "children", 1)
    for on, off in _episodes(rng, start, end, 0.08, 700):
        at(on, "single_parent_families", 1)
        at(off, "single_parent_families", -1)
    for field, rate, mean in (
        ("families_social_assistance", 0.06, 180),
        ("families_unemployed_parent", 0.09, 240),
        ("families_child_welfare", 0.015, 400),
    ):
        for on, off in _episodes(rng, start, end, rate, mean):
            at(on, field, 1)
            at(off, field, -1)
    for field, rate, window in (
        ("child_welfare_notifications_30d", 0.06, 30),
        ("mental_health_visits_90d", 0.5, 90),
    ):
        for on, _ in _episodes(rng, start, end, rate, 1):
            at(on, field, 1)
            at(on + window, field, -1)
    group = int(rng.choices(range(1, 11), GROUP_WEIGHTS)[0])
    if rng.random() < 0.3:
        at(rng.randint(start, end), "group", value=int(rng.choices(range(1, 11), GROUP_WEIGHTS)[0]))
    stop = start + rng.randint(8 * 365, 22 * 365)  # the youngest child turns 18
    counts = dict.fromkeys(INDICATORS, 0)
    counts["families"] = 1
    segments, prev = [], None
    for d in sorted(changes):
        if d > stop:
            break
        for what, delta, value in changes[d]:
            if what == "area":
                area = value
            elif what == "group":
                group = value
            else:
                counts[what] = max(0, counts[what] + delta)
        value = [area[0], area[1], *[counts[f] for f in INDICATORS], group]
        if value != prev:
            segments.append([d, value])
            prev = value
    if stop <= end:
        segments.append([stop, None])
    return segments


def value_at(segments: list[list], day: int):
    v = None
    for d, value in segments:
        if d > day:
            break
        v = value
    return v


def fill(r: redis.Redis, families: int, seed: int) -> dict:
    rng = random.Random(seed)
    ref = reference_areas()
    areas = sorted((pc, a["municipality"]) for pc, a in ref.items())
    weights = np.random.default_rng(seed).lognormal(0, 0.6, len(areas)).tolist()
    sink = RedisSink(r).setup()
    first = W
    t0 = time.perf_counter()
    n_segments = 0
    for f in range(families):
        fam = f"bench{f:06d}"
        segments = family_segments(rng, areas, weights)
        if not segments:
            continue
        first = min(first, segments[0][0])
        n_segments += len(segments)
        sink.write_history([(fam, segments[0][0], segments)])
        v = value_at(segments, W)
        contrib = None
        if v is not None:
            counts = dict(zip(INDICATORS, v[2:-1], strict=True)) | {f"g{v[-1]}": 1}
            contrib = {"area": v[0], "municipality": v[1], "counts": counts}
        sink.write([(fam, contrib, None)])
        if f % 500 == 499:
            sink.flush()
        if f % 10_000 == 9_999:
            print(f"  filled {f + 1:,} families in {time.perf_counter() - t0:.0f} s", flush=True)
    sink.raise_watermark(dt.date.fromordinal(W).isoformat())
    sink.raise_watermark(dt.date.fromordinal(first).isoformat())
    sink.flush()
    return {
        "families": families,
        "segments": n_segments,
        "fill_s": round(time.perf_counter() - t0, 1),
        "first_day": dt.date.fromordinal(first).isoformat(),
        "W": dt.date.fromordinal(W).isoformat(),
        "history_keys": sum(1 for _ in r.scan_iter(keys.HIST + "*", count=10_000)),
    }


# --------------------------------------------------------------------------- measuring


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def bench_suppress(r: redis.Redis, min_cell: int) -> dict:
    """ms per suppress() on the whole picture of W and of days across the window."""
    areas = redis_reader.known_areas(r)
    scopes = (
        ["all"]
        + [f"m:{m}" for m in sorted({m for m in areas.values()})]
        + [f"a:{pc}" for pc in sorted(areas)]
    )
    days = [W - k for k in (0, 180, 365, 730, 1090)]
    hist = redis_reader.read_history(r, scopes, days)
    out = {}
    for d in days:
        pic = redis_reader.picture_on(hist, d, areas, dt.date.fromordinal(d).isoformat())
        runs = []
        for _ in range(5):
            t = time.perf_counter()
            suppress(pic, min_cell)
            runs.append(time.perf_counter() - t)
        out[dt.date.fromordinal(d).isoformat()] = round(statistics.median(runs) * 1000, 1)
    present = redis_reader.read_picture(r)
    runs = []
    for _ in range(5):
        t = time.perf_counter()
        suppress(present, min_cell)
        runs.append(time.perf_counter() - t)
    out["present"] = round(statistics.median(runs) * 1000, 1)
    out["families_at_W"] = present["all"]["families"]
    return out


async def bench_api(url: str, requests: int, min_cell: int) -> dict:
    import aiohttp
    import redis.asyncio as aioredis

    from tilannekuva import api
    from tilannekuva.api.state import HISTORY
    from tilannekuva.config import Settings

    token = "bench-token"
    headers = {"Authorization": f"Bearer {token}"}
    frm = dt.date.fromordinal(W - THREE_YEARS + 1).isoformat()
    hist_path = f"/api/v1/areas/{AREA}/history?from={frm}"
    present_path = f"/api/v1/areas/{AREA}"
    out: dict = {"request": hist_path}

    async def start():
        client = aioredis.Redis.from_url(url)
        # Without the cadence: the refreshes below measure the work a publication does
        # when W moves on (with it, a refresh while W stays costs one MGET).
        settings = Settings(api_token=token, min_cell=min_cell, redis_url=url)
        app = api.make_app(settings, client, history_cadence=False)
        runner = aiohttp.web.AppRunner(app)
        await runner.setup()
        site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        return app, runner, client, f"http://127.0.0.1:{port}"

    async def timed(session, base, path) -> tuple[float, int, int]:
        t = time.perf_counter()
        async with session.get(base + path, headers=headers) as resp:
            body = await resp.read()
        return time.perf_counter() - t, resp.status, len(body)

    timeout = aiohttp.ClientTimeout(total=1800)  # the cold request waits for its days
    async with aiohttp.ClientSession(timeout=timeout) as session:
        # Cold: the first request right after start-up.
        app, runner, client, base = await start()
        t0 = time.perf_counter()
        s, status, size = await timed(session, base, hist_path)
        assert status == 200, status
        out["cold_first_request_s"] = round(s, 3)
        out["response_bytes"] = size
        cache = app[HISTORY]
        while cache.snapshot is None or not cache.snapshot.ready.all():
            await asyncio.sleep(0.2)
        out["warm_up_s"] = round(time.perf_counter() - t0, 1)
        out["window_days"] = len(cache.snapshot.values)
        out["days_suppressed"] = cache.suppressed_days
        # Warm: repeated requests, the history and the present baseline interleaved.
        hist, present = [], []
        for _ in range(requests):
            hist.append((await timed(session, base, hist_path))[0])
            present.append((await timed(session, base, present_path))[0])
        for name, xs in (("history_warm", hist), ("present_baseline", present)):
            out[name] = {
                "p50_ms": round(pct(xs, 0.5) * 1000, 1),
                "p95_ms": round(pct(xs, 0.95) * 1000, 1),
                "max_ms": round(max(xs) * 1000, 1),
                "n": len(xs),
            }
        # Refresh with nothing moved: the fingerprint script over the whole window.
        runs = []
        for _ in range(5):
            t = time.perf_counter()
            await cache.refresh()
            runs.append(time.perf_counter() - t)
        out["refresh_unchanged_ms"] = round(statistics.median(runs) * 1000, 1)
        # A late event revising the last 30 days: one family counted from W − 30 on.
        sync = redis.Redis.from_url(url)
        sink = RedisSink(sync).setup()
        late = W - 30
        value = [AREA, "837", 1, 2, 0, 1, 0, 0, 1, 0, 3]
        sink.write_history([("bench-late", late, [[late, value]])])
        counts = dict(zip(INDICATORS, value[2:-1], strict=True)) | {"g3": 1}
        sink.write([("bench-late", {"area": AREA, "municipality": "837", "counts": counts}, None)])
        sink.flush()  # one transaction, as the worker writes: the history and the present
        done = cache.suppressed_days
        t = time.perf_counter()
        await cache.refresh()
        out["refresh_late_event_s"] = round(time.perf_counter() - t, 3)
        out["refresh_late_event_days"] = cache.suppressed_days - done
        s, status, _ = await timed(session, base, hist_path)
        out["history_after_revision_ms"] = round(s * 1000, 1)
        sink.write_history([("bench-late", late, [[late, None]])])
        sink.write([("bench-late", None, None)])
        sink.flush()
        sync.close()
        await runner.cleanup()
        await client.aclose()

        # A fresh app whose warm-up has finished: its first request.
        app, runner, client, base = await start()
        cache = app[HISTORY]
        t0 = time.perf_counter()
        while cache.snapshot is None or not cache.snapshot.ready.all():
            await asyncio.sleep(0.2)
        out["warm_up_again_s"] = round(time.perf_counter() - t0, 1)
        s, status, _ = await timed(session, base, hist_path)
        out["first_request_after_warm_up_ms"] = round(s * 1000, 1)
        await runner.cleanup()
        await client.aclose()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--families", type=int, default=80_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--redis-db", type=int, default=6)
    p.add_argument("--requests", type=int, default=50)
    p.add_argument("--min-cell", type=int, default=5)
    p.add_argument("--reset", action="store_true", help="flush the database even if not empty")
    p.add_argument("--reuse", action="store_true", help="keep a filled database (no fill)")
    p.add_argument("--keep", action="store_true", help="do not flush the database afterwards")
    p.add_argument("--json", help="write the figures to this file")
    args = p.parse_args(argv)

    base = os.environ.get("REDIS_URL") or _from_env_file()
    url = base.rsplit("/", 1)[0] + f"/{args.redis_db}"
    r = redis.Redis.from_url(url)
    figures: dict = {"redis_db": args.redis_db}
    if args.reuse and r.exists(keys.WATERMARK):
        print(f"reusing db {args.redis_db}")
    else:
        if r.dbsize() and not args.reset:
            print(f"db {args.redis_db} is not empty: --reset to flush it", file=sys.stderr)
            return 2
        r.flushdb()
        print(f"filling db {args.redis_db} with {args.families:,} families …", flush=True)
        figures["fill"] = fill(r, args.families, args.seed)
        print(json.dumps(figures["fill"]))
    try:
        figures["suppress_ms"] = bench_suppress(r, args.min_cell)
        print("suppress ms per call:", json.dumps(figures["suppress_ms"]), flush=True)
        figures["api"] = asyncio.run(bench_api(url, args.requests, args.min_cell))
        print(json.dumps(figures["api"], indent=1))
    finally:
        if not args.keep:
            r.flushdb()
        r.close()
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))
    return 0


def _from_env_file() -> str:
    for line in (ROOT / "var" / "env").read_text().splitlines():
        if "REDIS_URL=" in line:
            return line.split("=", 1)[1].strip().strip("'\"")
    raise SystemExit("REDIS_URL is not set and var/env has none")


if __name__ == "__main__":
    sys.exit(main())
