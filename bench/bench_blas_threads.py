"""Benchmark: suppression on one BLAS thread against the library's default, in one run.

    python bench/bench_blas_threads.py /tmp/s17/d200k.jsonl [--days 20] [--rounds 3]

Whole pictures of ``--days`` days a week apart, ending on the file's last complete day,
from the batch reference (:func:`tilannekuva.batch.compute_days`), each given the ten
service-need groups as the API's pictures have them (the families of a scope split
over the groups at fixed shares, seeded), then :func:`models.suppression.suppress` on
every picture, the two settings interleaved ``--rounds`` times. Prints wall and CPU
milliseconds a picture for each (the CPU of every thread of the process, so a BLAS
thread that waits spinning counts): what ``tilannekuva/config.py::one_blas_thread``
saves the API and the worker.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from models.suppression import suppress
from tilannekuva.batch import EventTable, compute_days, load_events

SHARES = np.array([30, 14, 12, 10, 9, 8, 7, 5, 3, 2], float)


def with_groups(counts: dict, rng: np.random.Generator) -> dict:
    out = dict(counts)
    n = int(out.get("families") or 0)
    for i, v in enumerate(rng.multinomial(n, SHARES / SHARES.sum()), 1):
        out[f"g{i}"] = int(v)
    return out


def pictures(path: str, days: int) -> list[dict]:
    table = EventTable(load_events(path))
    last = table.occurred.max().astype(dt.date) - dt.timedelta(days=1)
    wanted = [last - dt.timedelta(days=7 * i) for i in range(days)]
    rng = np.random.default_rng(1)
    out = []
    for p in compute_days(table, wanted).values():
        p["all"] = with_groups(p["all"], rng)
        p["municipalities"] = {k: with_groups(v, rng) for k, v in p["municipalities"].items()}
        for area in p["areas"].values():
            area["counts"] = with_groups(area["counts"], rng)
        out.append(p)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file")
    parser.add_argument("--days", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--min-cell", type=int, default=5)
    args = parser.parse_args()
    pics = pictures(args.file, args.days)
    suppress(pics[0], args.min_cell)  # loads scipy's BLAS too, before the limits
    print("BLAS:", [(i["internal_api"], i["num_threads"]) for i in threadpool_info()])
    spent = {"default": [0.0, 0.0], "one thread": [0.0, 0.0]}
    for _ in range(args.rounds):
        for name in spent:
            limit = 1 if name == "one thread" else None
            with threadpool_limits(limit, user_api="blas"):
                wall, cpu = time.perf_counter(), time.process_time()
                for p in pics:
                    suppress(p, args.min_cell)
                spent[name][0] += time.perf_counter() - wall
                spent[name][1] += time.process_time() - cpu
    n = args.rounds * len(pics)
    for name, (wall, cpu) in spent.items():
        print(f"{name}: {1e3 * wall / n:.1f} ms a picture, {1e3 * cpu / n:.1f} CPU-ms")
    print(f"CPU one thread / default: {spent['one thread'][1] / spent['default'][1]:.2f}")


if __name__ == "__main__":
    main()
