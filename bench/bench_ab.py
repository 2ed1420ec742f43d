"""Two versions of the steps against each other, in turns, on one stream.

Each of two checkouts (e.g. ``git worktree add /tmp/base HEAD~1``) runs the in-process
:class:`models.picture.Pipeline` (feature profile on) in a process of its own, over the
same generated history; they take turns, a batch of 100 events each, so that whatever
the machine does meanwhile falls on both alike (the method of ``bench_history.py``).
Prints each one's events/s by eighth and over the whole stream, and the ratio of the
second to the first (the first is the baseline). Both run the collector as the worker
does (:func:`tilannekuva.config.tune_gc`).

    python bench/bench_ab.py BASE_DIR NEW_DIR [--families 600] [--seed 3] [--years 6]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

BATCH = 100

# Run in each checkout (its own sys.path): read a command a line, answer a line.
CHILD = r"""
import datetime as dt, json, sys, time
from models.contract import validate
from models.picture import Pipeline
from models.profile import state_profile
from models.pseudonym import Pseudonymiser
from tilannekuva.config import tune_gc
from tilannekuva.synthetic import DEFAULT_END, generate
tune_gc()  # the collector as the worker runs it
families, seed, years, batch = map(int, sys.argv[1:5])
start = DEFAULT_END.replace(year=DEFAULT_END.year - years) + dt.timedelta(days=1)
pseudo = Pseudonymiser(b"bench-key-0123456789abcdef")
events = [pseudo.event(validate(e)) for e in generate(families, seed, start=start)
          if isinstance(e, dict)]
pipe = Pipeline(profile=state_profile)
print(json.dumps(len(events)), flush=True)
for line in sys.stdin:
    i = int(line)
    chunk = events[i : i + batch]
    t0 = time.perf_counter()
    pipe.process_many(chunk)
    print(json.dumps([len(chunk), time.perf_counter() - t0]), flush=True)
"""


def start(checkout: str, args: argparse.Namespace) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": checkout}
    cmd = [sys.executable, "-c", CHILD, str(args.families), str(args.seed), str(args.years)]
    return subprocess.Popen(
        [*cmd, str(BATCH)],
        cwd=checkout,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def ask(proc: subprocess.Popen, line: str):
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(line + "\n")
    proc.stdin.flush()
    return json.loads(proc.stdout.readline())


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("base")
    ap.add_argument("new")
    ap.add_argument("--families", type=int, default=600)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--years", type=int, default=6)
    args = ap.parse_args(argv)

    procs = {name: start(path, args) for name, path in (("base", args.base), ("new", args.new))}
    counts = {}
    for name, proc in procs.items():
        assert proc.stdout is not None
        counts[name] = json.loads(proc.stdout.readline())
    if counts["base"] != counts["new"]:
        raise SystemExit(f"the two generate different streams: {counts}")
    n = counts["base"]
    secs = {name: [0.0] * 8 for name in procs}
    events = [0] * 8
    for i in range(0, n, BATCH):
        part = min(8 * i // n, 7)
        for name, proc in procs.items():
            k, s = ask(proc, str(i))
            secs[name][part] += s
        events[part] += k
    for proc in procs.values():
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait()
    rates = {name: [e / s for e, s in zip(events, secs[name], strict=True)] for name in procs}
    whole = {name: n / sum(secs[name]) for name in procs}
    out = {
        "events": n,
        "rates": rates,
        "whole": whole,
        "new_over_base": whole["new"] / whole["base"],
    }
    for name in procs:
        print(
            f"{name:4}: " + " → ".join(f"{r:,.0f}" for r in rates[name]), f"| {whole[name]:,.0f}/s"
        )
    print(f"new / base: {out['new_over_base']:.3f} over {n:,} events")
    return out


if __name__ == "__main__":
    main()
