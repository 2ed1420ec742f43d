"""Fault drills at scale (issue 13): one worker catches up on an event file while it is
killed, the broker stopped and Redis killed and emptied, and the picture must end exact.

Runs its own Kafka broker (``infra/kafka.sh`` with its own state and ports) and its own
Redis (Debian's redis-server, AOF ``everysec`` as ``infra/redis.sh`` runs it), so the
shared services stay up. In one run, at moments of the expected run's length
(``--expect-s``) drawn from ``--seed``, each logged with how far behind the group was:

- ``--kills`` SIGKILLs of the worker, each followed by a restart 1–5 s later (what a
  supervisor such as systemd or Kubernetes does; nothing else restarts it);
- the broker stopped for 30 s and started again;
- Redis killed with -9 and started again 5 s later (it comes back from its AOF, which
  may lack the last second);
- Redis ``FLUSHALL``, once while the worker runs and once 5 s after a restart.

Meanwhile an API process over the same Redis is asked for the picture, an area and a
history every half second; every status is counted. At the end ``tilannekuva compare``
checks the present, and ``compare --as-of`` twelve days of the history, against the
batch reference. Before that, the caught-up worker is killed once more and restarted,
and given the file's last 1,000 lines again (duplicates: the picture stays): the time
until it has committed them is the restart's catch-up time.

    python bench/drills.py FILE [--kills 10] [--seed 1] [--keep] [--no-outages] [--baselines]
        [--workers N] [--impact] [--api-after]

With ``--impact`` the workers keep the service cohorts (``TK_IMPACT=1``), and at the end
their counts in Redis are compared, stratum by stratum, with those of the offline panel
of the file's final data (``tilannekuva.impact_eval.final_counts``).

``--no-outages --kills 0`` is a timing run: the catch-up and the restart after it, with
the store of ``TK_STORE`` (the environment passes through to the worker). With
``--baselines`` it also times, in the same run and before the worker starts, the
worker's pure steps in-process over the file (without and with what the worker does
with the family types) and a bare aiokafka ``getmany`` consumer of the filled topic,
and prints the worker's catch-up rate against them (issue 13's "at least 0.5 × the
in-process steps"). With ``--api-after`` the API starts only once the catch-up is over:
the worker, its broker and its Redis alone on the host's cores (a running API refreshes
its history in the background even when nobody asks it).

Also printed: the workers' resident memory (caught up, and the peak) with the families
counted at W, their CPU-seconds per line at the catch-up, the API's, the broker's and
Redis's CPU meanwhile, all of them a line and the rate the host's cores busy all the
time would give, and the seconds of the workers' garbage collector
(``tk_gc_seconds_total``); ``--workers 2`` runs two in the group (the faults hit the
first), for the scale-out figure.

Needs ``infra/up`` to have fetched Kafka's jars. Prints a line per fault, the restarts'
catch-up times, the API's statuses and both comparisons; exits non-zero if a cell
differs, an answer was a 500, or the worker exited by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import redis
from kafka.admin import KafkaAdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_worker import group_lag, in_process

from sinks import keys
from tilannekuva.config import Settings

ROOT = Path(__file__).resolve().parents[1]
TOKEN, AUDIT = "drill-token", "drill-audit-token"
KEY = "drill-key-0123456789abcdef"  # the workers' pseudonym key (bench/drill_losses.py too)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Broker:
    """A Kafka broker of the drill's own (infra/kafka.sh, KAFKA_STATE)."""

    def __init__(self, state: Path):
        self.state = state
        self.port, self.controller = free_port(), free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "KAFKA_PORT": str(self.port),
            "KAFKA_CONTROLLER_PORT": str(self.controller),
            "KAFKA_STATE": str(state),
        }

    def _run(self, action: str) -> None:
        subprocess.run(
            ["bash", str(ROOT / "infra" / "kafka.sh"), action],
            env=self.env,
            check=True,
            capture_output=True,
        )

    def start(self) -> None:
        self._run("start")

    def stop(self) -> None:
        self._run("stop")

    def pid(self) -> int | None:
        try:
            return int((self.state / "kafka.pid").read_text())
        except (OSError, ValueError):
            return None


class OwnRedis:
    """redis-server on a free port with an AOF fsync'd every second, as infra/redis.sh."""

    def __init__(self, state: Path):
        self.port, self.dir = free_port(), state
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            ["/usr/bin/redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
            + ["--dir", str(self.dir), "--save", "", "--appendonly", "yes"]
            + ["--appendfsync", "everysec"],
            stdout=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        for _ in range(200):
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise SystemExit("redis-server did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Supervised:
    """A ``tilannekuva`` process restarted only by the drill (as a supervisor would)."""

    def __init__(self, args: list[str], env: dict, logs: Path, name: str):
        self.args, self.env, self.logs, self.name = args, env, logs, name
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        out = open(self.logs / f"{self.name}-{self.starts}.log", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tilannekuva.cli", *self.args],
            env=self.env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()

    def exited(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None


class Rss(threading.Thread):
    """The resident memory of supervised processes, read from ``/proc`` every second:
    the latest sum and its peak over the run (over restarts: whichever processes run)."""

    def __init__(self, targets: list[Supervised]):
        super().__init__(daemon=True)
        self.targets = targets
        self.latest = self.peak = 0  # bytes
        self.halt = threading.Event()

    @staticmethod
    def read(target: Supervised) -> int:
        try:
            with open(f"/proc/{target.proc.pid}/status") as status:  # type: ignore[union-attr]
                kb = next(int(x.split()[1]) for x in status if x.startswith("VmRSS:"))
        except (AttributeError, OSError, StopIteration):
            return 0
        return kb * 1024

    def run(self) -> None:
        while not self.halt.wait(1.0):
            if rss := sum(self.read(t) for t in self.targets):
                self.latest, self.peak = rss, max(self.peak, rss)


def scraped(targets: list[Supervised]) -> list[str]:
    """The sample lines of the workers' ``/metrics`` (those that answer)."""
    lines: list[str] = []
    for target in targets:
        port = target.args[target.args.index("--web-port") + 1]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as resp:
                lines += [x for x in resp.read().decode().splitlines() if not x.startswith("#")]
        except OSError:
            continue
    return lines


def by_label(targets: list[Supervised], metric: str, label: str) -> dict[str, float]:
    """``metric`` by the value of its ``label``, summed over the workers (counters since
    each one's last start)."""
    out: dict[str, float] = {}
    for line in scraped(targets):
        if line.startswith(metric + "{"):
            value = line.split(f'{label}="', 1)[1].split('"', 1)[0]
            out[value] = out.get(value, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def snapshot_costs(targets: list[Supervised]) -> dict[str, float]:
    """Snapshots published, adoptions and their seconds, families re-assigned: summed
    over the workers, each since its last start."""
    names = {
        "tk_model_snapshots_total": "snapshots",
        "tk_model_adoption_seconds_count": "adoptions",
        "tk_model_adoption_seconds_sum": "adoption_s",
        "tk_families_reassigned_total": "reassigned",
    }
    out = dict.fromkeys(names.values(), 0.0)
    for line in scraped(targets):
        name, _, value = line.partition(" ")
        if name in names:
            out[names[name]] += float(value)
    return out


def logged(targets: list[Supervised], text: str) -> int:
    """How often the workers logged ``text``, over all their starts."""
    return sum(
        path.read_text(errors="replace").count(text)
        for t in targets
        for path in t.logs.glob(f"{t.name}-*.log")
    )


def cpu_seconds(target: Supervised) -> float:
    """User + system CPU time of a supervised process so far (0 if it is gone)."""
    return cpu_of(target.proc.pid if target.proc is not None else None)


def cpu_of(pid: int | None) -> float:
    """User + system CPU time of process ``pid`` so far (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def services_cpu(broker: Broker, store: OwnRedis) -> dict[str, float]:
    """CPU seconds so far of the drill's broker and Redis."""
    return {
        "broker": cpu_of(broker.pid()),
        "Redis": cpu_of(store.proc.pid if store.proc is not None else None),
    }


class Poller(threading.Thread):
    """Asks the API every half second; counts statuses per path."""

    PATHS = (
        "/api/v1/picture",
        "/api/v1/areas/33100",
        "/api/v1/areas/33100/history?step=month",
    )

    def __init__(self, base: str):
        super().__init__(daemon=True)
        self.base = base
        self.statuses: collections.Counter = collections.Counter()
        self.bad: list[str] = []
        self.halt = threading.Event()

    def run(self) -> None:
        up = False  # "no answer" counts only once the API has answered: not its start-up
        while not self.halt.is_set():
            for path in self.PATHS:
                req = urllib.request.Request(
                    self.base + path, headers={"Authorization": f"Bearer {TOKEN}"}
                )
                try:
                    with urllib.request.urlopen(req, timeout=30) as resp:
                        status = resp.status
                except urllib.error.HTTPError as exc:
                    status = exc.code
                except OSError as exc:
                    status, why = "no answer", exc
                if status == "no answer" and not up:
                    continue
                up = True
                self.statuses[status] += 1
                if status == 500:
                    self.bad.append(f"{time.strftime('%H:%M:%S')} {path}")
                elif status == "no answer":  # when, and why: to set beside the faults
                    log(f"the API gave no answer to {path}: {why!r}")
            self.halt.wait(0.5)


def lag(bootstrap: str, groups: dict[str, list[str]]) -> int | None:
    """Messages of the groups' topics not yet committed (``bench_worker.group_lag``);
    None while the broker cannot say or a topic does not exist yet."""
    try:
        return group_lag(bootstrap, groups)
    except Exception:
        return None


def baselines(
    path: str, bootstrap: str, topic: str, partitions: int, env: dict
) -> dict[str, float]:
    """Lines/s of the worker's pure steps in-process over ``path`` (with the feature
    profile when family types are on, as the worker runs them; and with what the worker
    does with the types too, ``bench_worker.Types``) and of a bare aiokafka ``getmany``
    consumer reading the filled topic from the start: the floor and the ceiling the
    worker's catch-up is measured against, in the same run."""
    lines, secs = bare_getmany(bootstrap, topic, partitions)
    out = {"bare getmany": lines / secs}
    types = env.get("TK_FAMILY_TYPES", "1") != "0"
    lines, secs = in_process(path, profile=types)
    out["in-process steps"] = lines / secs
    if types:
        lines, secs = in_process(path, types=True)
        out["in-process steps with the types"] = lines / secs
    return out


def bare_getmany(bootstrap: str, topic: str, partitions: int) -> tuple[int, float]:
    """Messages and seconds for one consumer of no group to read ``topic`` to its end."""
    import asyncio

    from aiokafka import AIOKafkaConsumer
    from aiokafka import TopicPartition as AioTP

    async def read() -> tuple[int, float]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
        await consumer.start()
        try:
            tps = [AioTP(topic, p) for p in range(partitions)]
            consumer.assign(tps)
            ends = await consumer.end_offsets(tps)
            started, n = time.perf_counter(), 0
            while n < sum(ends.values()):
                for records in (
                    await consumer.getmany(timeout_ms=1000, max_records=10000)
                ).values():
                    n += len(records)
            return n, time.perf_counter() - started
        finally:
            await consumer.stop()

    return asyncio.run(read())


def plan(kills: int, seed: int, expect_s: float, outages: bool = True) -> list[tuple[float, str]]:
    """``(seconds after the worker's start, fault)``, in order: the kills at random
    moments of the expected run, the others (with ``outages``) at fixed shares of it."""
    rnd = random.Random(seed)
    faults = [(rnd.uniform(0.03, 0.9) * expect_s, "kill worker") for _ in range(kills)]
    if outages:
        faults += [
            (0.3 * expect_s, "stop Kafka 30 s"),
            (0.5 * expect_s, "kill Redis"),
            (0.7 * expect_s, "FLUSHALL"),
            (0.8 * expect_s, "FLUSHALL during a restart"),
        ]
    return sorted(faults)


def settled(bootstrap: str, groups: dict[str, list[str]], checks: int = 3) -> float:
    """Waits until the group has nothing uncommitted on ``checks`` reads 2 s apart;
    the time of the first of them."""
    zero, since = 0, time.time()
    while zero < checks:
        time.sleep(2)
        now, behind = time.time(), lag(bootstrap, groups)
        zero, since = (zero + 1, since) if behind == 0 else (0, now)
        if zero == 1:
            since = now
    return since


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file")
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="workers in the group (the kills hit the first); their CPU-seconds per line"
        " at the catch-up are printed (issue 13's scale-out figure)",
    )
    parser.add_argument(
        "--expect-s",
        type=float,
        default=None,
        help="the run's expected length, over which the faults are spread (default: 1,000 lines/s)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the drill's state directory")
    parser.add_argument(
        "--baselines",
        action="store_true",
        help="also time, in the same run, the in-process steps over the file and a bare "
        "aiokafka getmany consumer of the filled topic, and print the worker's ratios",
    )
    parser.add_argument(
        "--worker-loglevel",
        default="WARNING",
        help="the workers' log level (INFO: Faust's rebalances, recoveries and agent restarts)",
    )
    parser.add_argument(
        "--no-outages",
        dest="outages",
        action="store_false",
        help="only the kills: no broker stop, Redis kill or FLUSHALL (a timing run)",
    )
    parser.add_argument(
        "--api-after",
        action="store_true",
        help="start the API only once the catch-up is over (a timing run: the worker, its"
        " broker and its Redis alone on the cores)",
    )
    parser.add_argument(
        "--impact",
        action="store_true",
        help="the workers keep the service cohorts (TK_IMPACT=1); their counts are compared"
        " at the end with the offline panel of the file's final data",
    )
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    run_id = uuid.uuid4().hex[:8]
    state = ROOT / "var" / "drills" / run_id
    state.mkdir(parents=True)
    total = sum(1 for _ in open(args.file, "rb"))
    args.expect_s = args.expect_s or total / 1000
    broker, store = Broker(state / "kafka"), OwnRedis(state / "redis")
    broker.start()
    store.start()
    app_id, topic = f"drill-{run_id}", f"drill-{run_id}-in"
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics(
        [
            NewTopic(topic, args.partitions, 1),
            NewTopic(f"{app_id}-dlq", 1, 1),
            NewTopic(f"{app_id}-alerts", 1, 1),
        ]
    )
    admin.close()
    api_port = free_port()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP": broker.bootstrap,
        "REDIS_URL": store.url,
        "TK_APP_ID": app_id,
        "TK_INPUT_TOPIC": topic,
        "TK_DLQ_TOPIC": f"{app_id}-dlq",
        "TK_ALERTS_TOPIC": f"{app_id}-alerts",
        "TK_PARTITIONS": str(args.partitions),
        # A killed worker's partitions go to its restart after this long (the default
        # 60 s would make ten kills ten minutes of standing still).
        "TK_SESSION_TIMEOUT_S": "10",
        "SITUATION_PSEUDONYM_KEY": KEY,
        "SITUATION_API_TOKEN": TOKEN,
        "SITUATION_AUDIT_TOKEN": AUDIT,
        "SITUATION_API_PORT": str(api_port),
        "TK_DATA_DIR": str(state / "faust"),  # the worker's RocksDB tables
        **({"TK_IMPACT": "1"} if args.impact else {}),
    }
    groups = Settings(app_id=app_id, input_topic=topic).consumer_groups()
    workers = [
        Supervised(
            ["worker", "--web-port", str(free_port()), "--loglevel", args.worker_loglevel],
            env,
            state,
            f"worker{i}",
        )
        for i in range(args.workers)
    ]
    worker = workers[0]  # the one the faults hit
    api = Supervised(["api"], env, state, "api")
    poller = Poller(f"http://127.0.0.1:{api_port}")
    rss = Rss(workers)
    failures: list[str] = []
    try:
        log(f"producing {total:,} lines of {args.file} to {topic}")
        subprocess.run(
            [sys.executable, "-m", "tilannekuva.cli", "produce", args.file, "--topic", topic]
            + ["--no-progress"],
            env=env,
            check=True,
            cwd=ROOT,
        )
        rates = {}
        if args.baselines:
            rates = baselines(args.file, broker.bootstrap, topic, args.partitions, env)
        started, services_at_start = time.time(), services_cpu(broker, store)
        for w in workers:
            w.start()
        rss.start()
        if not args.api_after:
            api.start()
            time.sleep(3)
            poller.start()
        faults = plan(args.kills, args.seed, args.expect_s, args.outages)
        zero, first_zero = 0, 0.0
        while True:
            time.sleep(2)
            for w in workers:
                if w.exited():
                    failures.append(f"{w.name} exited by itself ({w.proc.returncode})")
                    log(failures[-1])
                    w.start()
            if faults and time.time() - started >= faults[0][0]:
                _, fault = faults.pop(0)
                behind = lag(broker.bootstrap, groups)
                log(f"{time.time() - started:.0f} s, {behind} messages behind: {fault}")
                if fault == "kill worker":
                    worker.kill()
                    time.sleep(random.Random(len(faults)).uniform(1, 5))
                    worker.start()
                elif fault == "stop Kafka 30 s":
                    broker.stop()
                    time.sleep(30)
                    broker.start()
                elif fault == "kill Redis":
                    store.kill()
                    time.sleep(5)
                    store.start()
                elif fault == "FLUSHALL during a restart":
                    worker.kill()
                    worker.start()
                    time.sleep(5)  # the new worker is starting, its tables not yet whole
                    redis.Redis.from_url(store.url).flushall()
                else:
                    redis.Redis.from_url(store.url).flushall()
                continue
            if not faults:
                now = time.time()
                zero, first_zero = (
                    (zero + 1, first_zero) if lag(broker.bootstrap, groups) == 0 else (0, now)
                )
                if zero == 1:
                    first_zero = now
                if zero >= 3:
                    break
        took = first_zero - started  # the first of the reads that found nothing behind
        cpu, api_cpu = [cpu_seconds(w) for w in workers], cpu_seconds(api)
        log(f"caught up: {total:,} lines in {took:.0f} s with the faults")
        if args.api_after:  # from now on: the restart's and the answers' checks
            api.start()
            poller.start()
        log(
            f"CPU of the {len(workers)} worker(s): {' + '.join(f'{c:.0f}' for c in cpu)} s,"
            f" {1e3 * sum(cpu) / total:.3f} ms a line; the API's {api_cpu:.0f} s"
            f" ({poller.statuses.total():,} requests)"
        )
        # Beside them on the same cores; restarted ones (the faults) count from their start.
        services = services_cpu(broker, store)
        spent = {name: max(0.0, services[name] - services_at_start[name]) for name in services}
        log(
            "CPU of the services meanwhile: "
            + ", ".join(f"{name} {s:.0f} s" for name, s in spent.items())
            + f", over {took:.0f} s on {os.cpu_count()} cores"
        )
        # On a host they share, all of them at once bound the rate (issue 13's ratio).
        every = sum(cpu) + api_cpu + sum(spent.values())
        log(
            f"CPU of all of them: {1e6 * every / total:,.0f} µs a line; {os.cpu_count()} cores"
            f" busy all the time would take {total * os.cpu_count() / every:,.0f} lines/s"
            f" (the catch-up took {total / took:,.0f})"
        )
        families = int(redis.Redis.from_url(store.url).hget(keys.ALL, "families") or 0)
        log(
            f"worker RSS: {rss.latest / 2**20:,.0f} MiB caught up, {rss.peak / 2**20:,.0f} MiB"
            f" at most; {families:,} families counted at W"
        )
        again = logged(workers, "reading the partition again")
        log(f"partitions read again after lost messages (faust#596): {again}")
        log(f"batches left unacked, not finished: {logged(workers, 'left unacked')}")
        memory = by_label(workers, "tk_rocksdb_memory_bytes", "kind")
        log("RocksDB holds: " + ", ".join(f"{k} {v / 2**20:,.0f} MiB" for k, v in memory.items()))
        gc_s = by_label(workers, "tk_gc_seconds_total", "generation")
        log(
            f"the garbage collector ran {sum(gc_s.values()):.1f} s of the workers' CPU since"
            f" their last start (generations 0 / 1 / 2: "
            + " / ".join(f"{gc_s.get(str(g), 0.0):.1f}" for g in range(3))
            + " s)"
        )
        cost = snapshot_costs(workers)
        log(
            f"snapshots since the last start: {cost['snapshots']:.0f} published,"
            f" {cost['adoptions']:.0f} adoptions took {cost['adoption_s']:.0f} s,"
            f" {cost['reassigned']:,.0f} families re-assigned"
        )
        if rates:
            rates["worker catch-up"] = total / took
            for name, rate in rates.items():
                log(f"{name}: {rate:,.0f} lines/s")
            rate = rates["worker catch-up"]
            log(
                f"worker / in-process steps: {rate / rates['in-process steps']:.3f}; "
                + (
                    f"with the types: {rate / typed:.3f}; "
                    if (typed := rates.get("in-process steps with the types"))
                    else ""
                )
                + f"worker / bare getmany: {rate / rates['bare getmany']:.4f}"
            )
        # A restart after the catch-up: killed, restarted, and given the file's last
        # 1,000 lines again (duplicates: the picture stays), until nothing is uncommitted.
        tail = state / "tail.jsonl"
        tail.write_bytes(b"".join(open(args.file, "rb").readlines()[-1000:]))
        worker.kill()
        worker.start()
        restarted = time.time()
        subprocess.run(
            [sys.executable, "-m", "tilannekuva.cli", "produce", str(tail), "--topic", topic]
            + ["--no-progress"],
            env=env,
            check=True,
            cwd=ROOT,
        )
        caught_up = settled(broker.bootstrap, groups)
        log(f"restart after the catch-up: caught up again in {caught_up - restarted:.0f} s")
        time.sleep(10)  # the sweep and a refresh of the API's history cache
        poller.halt.set()
        poller.join()
        log(f"API statuses: {dict(poller.statuses)}; 500s: {len(poller.bad)}")
        if poller.bad:
            failures.append(f"{len(poller.bad)} answers were 500: {poller.bad[:5]}")
        base = f"http://127.0.0.1:{api_port}"
        for extra in ([], ["--as-of", days_of(store.url)]):
            done = subprocess.run(
                [sys.executable, "-m", "tilannekuva.cli", "compare", args.file, "--api", base]
                + ["--token", AUDIT, *extra],
                env=env,
                cwd=ROOT,
                capture_output=True,
                text=True,
            )
            lines = done.stdout.splitlines()
            summary = [x for x in lines if not x.startswith("  ")]  # one line a day or scope set
            print("\n".join(summary), done.stderr[-2000:], flush=True)
            print("\n".join(lines[:30]), flush=True)
            if done.returncode:
                failures.append(f"compare {' '.join(extra)} found differences")
        if args.impact and (differs := impact_differs(store.url, args.file)):
            failures.append(differs)
        print(json.dumps({"worker_starts": [w.starts for w in workers]}))
    finally:
        poller.halt.set()
        rss.halt.set()
        for w in workers:
            w.stop()
        api.stop()
        store.kill()
        try:
            broker.stop()
        except subprocess.CalledProcessError:
            pass
        if not args.keep and not failures:
            shutil.rmtree(state, ignore_errors=True)
    for line in failures:
        log(f"FAILED: {line}")
    log("all drills exact" if not failures else f"state kept in {state}")
    return 1 if failures else 0


def impact_differs(url: str, path: str, wait_s: float = 300) -> str | None:
    """What differs between the cohort counts in Redis and those of the offline panel of
    the file's final data (None: nothing), waiting up to ``wait_s`` for the workers'
    timers to count them."""
    import numpy as np
    import redis.asyncio

    from models.impact import SERVICES
    from sinks import impact_store
    from sinks.redis_reader import read_impact_async
    from tilannekuva.impact_eval import final_counts

    started = time.time()
    _, last, want = final_counts(open(path, "rb").read().splitlines(), KEY.encode())
    log(f"offline final-data cohorts in {time.time() - started:.0f} s")

    async def read():  # what the API reads: every partition's counts added up
        client = redis.asyncio.Redis.from_url(url)
        try:
            return await read_impact_async(client, SERVICES)
        finally:
            await client.aclose()

    deadline, differs = time.time() + wait_s, "never read"
    while time.time() < deadline:
        month, counted = asyncio.run(read())
        differs = "" if month == impact_store.month_name(last) else f"counted to {month!r}"
        for service in SERVICES:
            got = counted[service]
            if not (
                np.array_equal(got.strata, want[service].strata)
                and np.array_equal(got.values, want[service].values)
            ):
                differs += (
                    f" {service}: {len(got.strata)} strata, {len(want[service].strata)} offline;"
                )
        if not differs:
            entries = sum(int(c.values[:, :, 0].sum()) for c in want.values())
            log(
                f"impact: every service's counts equal the offline final data's ({entries:,} entries × months)"
            )
            return None
        time.sleep(5)
    return f"impact counts differ from the offline final data's:{differs}"


def days_of(url: str) -> str:
    """Twelve days from the first day of data to W, for ``compare --as-of``."""
    import datetime as dt

    client = redis.Redis.from_url(url)
    first = dt.date.fromisoformat(client.get("tk:first").decode())
    w = dt.date.fromisoformat(client.get("tk:wm").decode()) - dt.timedelta(days=1)
    first = max(first, w - dt.timedelta(days=3 * 365))
    step = (w - first) / 11
    return ",".join(str(first + step * i) for i in range(12))


if __name__ == "__main__":
    sys.exit(main())
