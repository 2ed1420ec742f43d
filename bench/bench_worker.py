"""Worker throughput and event → Redis latency, against the in-process pipeline.

Needs the local services (``make services-up``; reads ``var/env``). For one event
file it measures, in the same run:

1. baseline: the same pure steps in-process (``models.picture.Pipeline``: validate,
   pseudonymise, steps; no Kafka, no Redis), events/s;
2. the real worker: ``--workers`` fresh ``tilannekuva worker`` processes (own app id
   and topic, Redis db ``--redis-db``, default 11) while
   ``tilannekuva produce FILE --rate R`` feeds them; events/s end to end and the
   p50/p99 of ``tk_event_to_redis_seconds`` summed over the workers' ``/metrics``.

    python bench/bench_worker.py FILE [--rate 0|N] [--workers N] [--baseline-lines N] [--limit N]

Prints the figures and the worker/in-process ratio. The picture stays in the Redis
database, so ``tilannekuva api`` and ``tilannekuva compare FILE`` can check it after.
Environment such as ``TK_STANDBY_REPLICAS`` passes through to the workers.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

import redis
from kafka.admin import KafkaAdminClient, NewTopic

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.contract import InvalidEvent, validate  # noqa: E402
from models.family_types import TypeAssigner  # noqa: E402
from models.learning import Learner, LearnerBatch  # noqa: E402
from models.picture import Pipeline  # noqa: E402
from models.profile import state_profile  # noqa: E402
from models.pseudonym import Pseudonymiser  # noqa: E402
from streams.families import ModelFollower  # noqa: E402
from streams.learner import worker_learner  # noqa: E402
from tilannekuva.config import Settings, tune_gc  # noqa: E402
from tilannekuva.replay import TouchedPipeline  # noqa: E402


def env_file() -> dict[str, str]:
    out = {}
    for line in (ROOT / "var" / "env").read_text().splitlines():
        m = re.match(r"^\s*(?:export\s+)?(\w+)=(.*)$", line)
        if m:
            out[m.group(1)] = m.group(2).strip().strip("'\"")
    return out


def in_process(
    path: str, limit: int | None = None, profile: bool = False, types: bool = False
) -> tuple[int, float]:
    """Lines and seconds of the worker's pure steps over ``path``: validate, pseudonymise,
    dedup, person, family, contributions and history (with ``profile``, the feature
    profile too, as a worker with family types computes it; with ``types``, also what the
    worker does with the family types: :class:`Types`). The collector runs as in the
    worker (:func:`tilannekuva.config.tune_gc`)."""
    tune_gc()
    pseudo = Pseudonymiser(b"bench-key-0123456789abcdef")
    with open(path, "rb") as fh:
        lines = (
            [line.rstrip(b"\n") for line in itertools.islice(fh, limit)]
            if limit
            else fh.read().splitlines()
        )
    started = time.perf_counter()
    pipe = TouchedPipeline(profile=state_profile if profile or types else None)
    feed(pipe, pseudo, lines, after=Types(pipe, worker_learner(Settings())) if types else None)
    return len(lines), time.perf_counter() - started


class Types:
    """The family types' part of the worker's steps, in process, after each batch: the
    vector of every family the batch changed, assigned with the latest snapshot (the
    worker's :class:`streams.families.ModelFollower`) and learnt (the learner's step with
    the worker's settings, on the wall clock as the worker's); on a new snapshot, every
    family re-assigned (the worker's adoption)."""

    def __init__(self, pipe: TouchedPipeline, learner: Learner):
        self.pipe = pipe
        self.learner = learner
        self.state = learner.start(None)
        self.follower = ModelFollower(store=None)  # its assigner set here, not loaded
        self.live: str | None = None

    def __call__(self, events: list[dict]) -> None:
        live = min((ev["recorded_at"][:10] for ev in events), default=None)
        if live is not None:
            self.live = min(self.live or live, live)
        changed = sorted(self.pipe.touched)
        self.pipe.touched.clear()
        vectors = self.assign(changed)
        batch = LearnerBatch(vectors=[(fam, vectors.get(fam)) for fam in changed])
        self.state, snap = self.learner.step(
            self.state, batch, self.pipe.watermark, now=time.time(), live=self.live
        )
        if snap is not None:
            self.follower.assigner = TypeAssigner.from_snapshot(snap)
            self.assign(list(self.pipe.contributions))

    def assign(self, families: list[str]) -> dict[str, dict]:
        """The families' vectors, assigned as the worker's family writer does."""
        states = {fam: self.pipe.families.get(fam) for fam in families}
        return self.follower.assign(states, True)[2]


def feed(
    pipe: Pipeline,
    pseudo: Pseudonymiser,
    lines: Iterable[bytes],
    batch: int = 1000,
    after: Callable[[list[dict]], None] | None = None,
) -> None:
    """Raw event lines (without their newline) through the door (validate, pseudonymise;
    the invalid dropped) into ``pipe``, ``batch`` at a time (``after(events)`` after
    each)."""
    events: list[dict] = []
    for raw in lines:
        try:
            events.append(pseudo.event(validate(raw)))
        except InvalidEvent:
            continue
        if len(events) == batch:
            pipe.process_many(events)
            if after is not None:
                after(events)
            events = []
    pipe.process_many(events)
    if after is not None:
        after(events)


def quantile(buckets: dict[float, float], total: float, p: float) -> float:
    target, lo_le, lo_c = p * total, 0.0, 0.0
    for le in sorted(buckets):
        if buckets[le] >= target:
            return lo_le + (le - lo_le) * (target - lo_c) / max(buckets[le] - lo_c, 1.0)
        lo_le, lo_c = le, buckets[le]
    return float("inf")


def group_lag(bootstrap: str, groups: dict[str, list[str]]) -> int:
    """Messages of the groups' topics (``{group: topics}``, as
    :meth:`tilannekuva.config.Settings.consumer_groups` gives them) not yet committed;
    a partition never committed counts whole, a topic not created yet raises."""
    from kafka import KafkaConsumer, TopicPartition

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        behind = 0
        for group, topics in groups.items():
            committed = admin.list_group_offsets({group: None})[group]
            tps = []
            for topic in topics:
                parts = consumer.partitions_for_topic(topic)
                if not parts:
                    raise LookupError(f"no topic {topic} yet")
                tps += [TopicPartition(topic, p) for p in parts]
            ends = consumer.end_offsets(tps)
            behind += sum(
                max(0, end - (committed[tp].offset if tp in committed else 0))
                for tp, end in ends.items()
            )
        return behind
    finally:
        consumer.close()
        admin.close()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker_run(
    path: str,
    rate: int,
    workers: int = 1,
    db: int = 11,
    limit: int | None = None,
    extra_env: dict[str, str] | None = None,
) -> dict:
    """One run of fresh workers (``extra_env`` added to their environment)."""
    services = env_file()
    bootstrap = services["KAFKA_BOOTSTRAP"]
    app_id = f"bench-{uuid.uuid4().hex[:8]}"
    topic = f"{app_id}-in"
    groups = Settings(app_id=app_id, input_topic=topic).consumer_groups()
    # The worker's own topics: input, and the DLQ and alert topics it writes to (Faust
    # creates only its internal ones; a missing alert topic failed every alert tick).
    names = {topic: 4, f"{app_id}-dlq": 1, f"{app_id}-alerts": 1}
    new = [NewTopic(name, parts, 1) for name, parts in names.items()]
    KafkaAdminClient(bootstrap_servers=bootstrap).create_topics(new)
    (ROOT / "var" / "log").mkdir(parents=True, exist_ok=True)
    url = services["REDIS_URL"].rsplit("/", 1)[0] + f"/{db}"
    redis.Redis.from_url(url).flushdb()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP": bootstrap,
        "REDIS_URL": url,
        "TK_APP_ID": app_id,
        "TK_INPUT_TOPIC": topic,
        "TK_DLQ_TOPIC": f"{app_id}-dlq",
        "TK_ALERTS_TOPIC": f"{app_id}-alerts",
        "SITUATION_PSEUDONYM_KEY": "bench-key-0123456789abcdef",
        **(extra_env or {}),
    }
    procs, ports = [], []
    for i in range(workers):
        ports.append(free_port())
        log = open(ROOT / "var" / "log" / f"{app_id}-{i}.log", "wb")
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "tilannekuva.cli", "worker", "--web-port", str(ports[-1])],
                env=env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )

    def scrape(port: int) -> str:
        return (
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30).read().decode()
        )

    def total(text: str, pattern: str) -> float:
        return sum(float(v) for v in re.findall(pattern, text))

    def metrics() -> str:
        return "\n".join(scrape(port) for port in ports)

    try:
        for proc, port in zip(procs, ports, strict=True):
            while True:
                try:
                    scrape(port)
                    break
                except OSError:
                    if proc.poll() is not None:
                        raise SystemExit(f"worker exited; see var/log/{app_id}-*.log") from None
                    time.sleep(1)
        time.sleep(20)  # group join and agent start-up are not part of the measurement
        n = sum(1 for _ in itertools.islice(open(path, "rb"), limit))
        started = time.time()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "tilannekuva.cli",
                "produce",
                path,
                "--rate",
                str(rate),
                "--topic",
                topic,
                *(["--limit", str(limit)] if limit else []),
            ],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        produced = time.time() - started
        # Done when the group has committed every topic it reads to the end (Faust commits
        # only what its agents acked), not when the step counters pause: under a backlog
        # a later step can stand still for seconds while an earlier one catches up.
        prev, last_change, lag = None, time.time(), None
        while True:
            time.sleep(5)
            try:
                m = metrics()
            except OSError as exc:  # a busy worker may answer late: wait, don't abort the run
                print(f"scrape failed ({exc!r}); retrying", file=sys.stderr)
                continue
            state = tuple(sorted(re.findall(r'tk_events_in_total\{step="(\w+)"\} ([0-9.e+]+)', m)))
            if state != prev:
                prev, last_change = state, time.time()
                continue
            if total(m, r'tk_events_in_total\{step="ingest"\} ([0-9.e+]+)') < n:
                continue
            try:
                lag = group_lag(bootstrap, groups)
            except Exception:  # a topic not there yet, the broker slow to say
                continue
            if lag == 0:
                break
            if time.time() - last_change > 300:
                print(
                    f"no step moved for 5 min but the group is {lag} messages behind; stopping",
                    file=sys.stderr,
                )
                break
        elapsed = last_change - started
        cpu_caught_up = total(m, r"process_cpu_seconds_total ([0-9.e+]+)")
        if extra_env:  # what the B side's own timers do once caught up (cohorts: counted)
            time.sleep(30)
            m = metrics()
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=60)
    buckets: dict[float, float] = {}
    for le, c in re.findall(r'tk_event_to_redis_seconds_bucket\{le="([0-9.e+]+)"\} ([0-9.e+]+)', m):
        buckets[float(le)] = buckets.get(float(le), 0.0) + float(c)
    count = total(m, r"tk_event_to_redis_seconds_count ([0-9.e+]+)")
    return {
        "app_id": app_id,
        "redis_url": url,
        "lines": n,
        "produce_s": produced,
        "elapsed_s": elapsed,
        "rate": n / elapsed,
        "p50": quantile(buckets, count, 0.5),
        "p99": quantile(buckets, count, 0.99),
        "cpu_caught_up_s": cpu_caught_up,
        "impact_count_s": total(m, r"tk_impact_count_seconds_sum ([0-9.e+]+)"),
        "impact_counts": total(m, r"tk_impact_count_seconds_count ([0-9.e+]+)"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file")
    parser.add_argument(
        "--rate", type=int, default=0, help="events/s offered (0 = as fast as possible)"
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="worker processes in one consumer group"
    )
    parser.add_argument(
        "--baseline-lines",
        type=int,
        default=None,
        help="in-process baseline over the first N lines only (default: the whole file)",
    )
    parser.add_argument(
        "--limit", type=int, default=None, help="produce only the first N lines of the file"
    )
    parser.add_argument(
        "--redis-db", type=int, default=11, help="Redis database the worker writes (default 11)"
    )
    parser.add_argument(
        "--ab",
        metavar="VAR=VALUE",
        action="append",
        default=[],
        help="after the run, a second one with these in the workers' environment: the ratio "
        "of the two (e.g. --ab TK_IMPACT=1)",
    )
    args = parser.parse_args()
    # A SIGTERM (kill, pkill) unwinds like Ctrl-C, so the finally blocks stop the workers
    # this run started; otherwise they outlive it and skew every later measurement.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    n, secs = in_process(args.file, args.baseline_lines)
    print(f"in-process steps (baseline): {n} lines in {secs:.1f} s = {n / secs:,.0f} events/s")
    w = worker_run(args.file, args.rate, args.workers, args.redis_db, args.limit)
    offered = "full speed" if args.rate == 0 else f"{args.rate}/s"
    print(
        f"{args.workers} worker(s), offered {offered}: {w['lines']} lines in {w['elapsed_s']:.0f} s = {w['rate']:,.0f} events/s "
        f"(produce took {w['produce_s']:.0f} s); event → Redis p50 {w['p50']:.3f} s, p99 {w['p99']:.3f} s"
    )
    print(f"ratio worker / in-process: {w['rate'] / (n / secs):.2f}")
    print(f"worker CPU until caught up: {w['cpu_caught_up_s']:.0f} s")
    if args.ab:
        extra = dict(item.split("=", 1) for item in args.ab)
        b = worker_run(args.file, args.rate, args.workers, args.redis_db, args.limit, extra)
        print(
            f"with {' '.join(args.ab)}: {b['lines']} lines in {b['elapsed_s']:.0f} s = "
            f"{b['rate']:,.0f} events/s, {b['rate'] / w['rate']:.2f}x the run without; worker CPU "
            f"until caught up {b['cpu_caught_up_s']:.0f} s ({b['cpu_caught_up_s'] / w['cpu_caught_up_s']:.2f}x); "
            f"cohorts counted {b['impact_counts']:.0f} times in {b['impact_count_s']:.1f} s"
        )
        w = b
    print(
        f"the picture stays in Redis db {args.redis_db} (app id {w['app_id']}): serve it with "
        f"REDIS_URL=<that db> tilannekuva api, then tilannekuva compare {args.file}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
