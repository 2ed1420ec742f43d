"""Which envelopes of a drill's internal topics never reached the next stage, and which
families came out wrong.

    python bench/drill_losses.py var/drills/<run id> [--events FILE [FILE ...]]

A failed drill (bench/drills.py keeps its state) leaves its broker's log, the worker's
RocksDB tables and Redis. This starts a broker on a copy of that log and reads, per
partition, every envelope of the id topic whose events are not in the dedup changelog
(the dedup step writes every event id it meets), and every envelope of the person
topic whose events are mostly missing from the person states (each row keeps its event
id), with the time each was sent and the group's commits around it (from
``__consumer_offsets``). Session 32 found its losses so (bench/README.md).

Then, per family: Redis (a copy of its AOF) against the worker's family states, the
history Redis holds of each (``tk:fh:<family>``) against the one its state gives (a
write lost between the two), the contribution Redis holds of each (``tk:fam:<family>``)
against the one its state's rows give at W (a present not rewritten), each state's memo
of the present (``pv``) against its rows, and every count of the present's hashes
against the sum of the contributions Redis holds (a move applied twice or lost); and,
with ``--events`` (the drill's event file and its ``tail.jsonl``), each state against
the in-process steps' over those events (what never reached the family, the family
topic included). Values are compared day by day without the service-need group, which
depends on when a snapshot came.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import struct
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import redis
from kafka import KafkaConsumer, TopicPartition
from rocksdict import AccessType, Options, Rdict

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.bench_worker import feed  # noqa: E402
from bench.drills import KEY, Broker, OwnRedis  # noqa: E402
from models import family, picture  # noqa: E402
from models.contract import INDICATORS  # noqa: E402
from models.profile import state_profile  # noqa: E402
from models.pseudonym import Pseudonymiser  # noqa: E402
from sinks import keys  # noqa: E402


def when(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%H:%M:%S.%f")[:-3]


def read(bootstrap: str, topic: str, partition: int) -> Iterator:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        consumer_timeout_ms=8000,
        max_partition_fetch_bytes=20 * 2**20,
        fetch_max_bytes=50 * 2**20,
    )
    tp = TopicPartition(topic, partition)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    yield from consumer
    consumer.close()


def commits(bootstrap: str, group: str) -> dict[tuple[str, int], list[tuple[int, int]]]:
    """``{(topic, partition): [(time ms, offset), ...]}`` of the group's commits."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=8000
    )
    tps = [
        TopicPartition("__consumer_offsets", p)
        for p in consumer.partitions_for_topic("__consumer_offsets")
    ]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    out: dict[tuple[str, int], list[tuple[int, int]]] = {}
    for m in consumer:
        if not m.key or m.value is None or struct.unpack(">h", m.key[:2])[0] > 1:
            continue  # a group's metadata, or a tombstone
        fields, i = [], 2
        for _ in range(2):  # the group and the topic, each a length-prefixed string
            n = struct.unpack(">h", m.key[i : i + 2])[0]
            fields.append(m.key[i + 2 : i + 2 + n].decode())
            i += 2 + n
        if fields[0] == group:
            partition = struct.unpack(">i", m.key[i : i + 4])[0]
            offset = struct.unpack(">q", m.value[2:10])[0]
            out.setdefault((fields[1], partition), []).append((m.timestamp, offset))
    consumer.close()
    return out


def around(rows: list[tuple[int, int]], offset: int) -> str:
    """The last commit at or below ``offset`` and the first above it."""
    below = [r for r in rows if r[1] <= offset][-1:]
    above = [r for r in rows if r[1] > offset][:1]
    return ", ".join(f"{when(t)} → {o}" for t, o in below + above)


Course = list[tuple[int, tuple | None]]  # a family's value from each day on, merged


def course(segments: list) -> Course:
    """History segments ``[[start, value], ...]`` (values as lists or as the JSON text
    Redis holds) without the group, equal neighbours merged, leading "not counted"
    dropped."""
    out: Course = []
    for start, value in segments:
        if isinstance(value, str):
            value = json.loads(value) if value else None
        v = None if value is None else tuple(value[:-1])
        if not (out and out[-1][1] == v) and (out or v is not None):
            out.append((start, v))
    return out


def first_difference(a: Course, b: Course) -> str:
    """The day from which two courses differ."""
    for x, y in zip(a, b, strict=False):
        if x != y:
            return dt.date.fromordinal(min(x[0], y[0])).isoformat()
    shorter = min(len(a), len(b))
    longer = a if len(a) > shorter else b
    return dt.date.fromordinal(longer[shorter][0]).isoformat()


def family_states(tables: Path) -> dict[str, dict]:
    """The worker's family states, from its RocksDB family tables."""
    states = {}
    for path in sorted(tables.glob("family-*.db")):
        db = Rdict(str(path), access_type=AccessType.read_only(), options=Options(raw_mode=True))
        for key, value in db.items():
            if not key.startswith(b"__faust") and value:
                states[json.loads(key)] = json.loads(value)
        db.close()
    return states


def redis_behind(client: redis.Redis, states: dict[str, dict]) -> list[tuple[str, str]]:
    """``(family, day)``: families whose history in Redis differs from their state's."""
    off = []
    for fam, st in sorted(states.items()):
        rows = client.zrange(keys.FAMILY_HISTORY + fam, 0, -1, withscores=True)
        held = course([(int(score), member.split("|", 1)[1]) for member, score in rows])
        want = course(picture.history_segments(st, 0, 0))
        if held != want:
            off.append((fam, first_difference(held, want)))
    return off


def _indicators(contrib: dict | None) -> tuple | None:
    """A contribution without its group and type (a snapshot's): area, municipality and
    the indicators' counts."""
    if contrib is None:
        return None
    counts = {k: v for k, v in contrib["counts"].items() if k in INDICATORS}
    return contrib["area"], contrib["municipality"], sorted(counts.items())


def present_off(client: redis.Redis, states: dict[str, dict]) -> list[str]:
    """What is wrong with the present in Redis: families whose stored contribution is not
    the one their state gives at W, and count fields of the scopes' hashes that are not
    the sum of the stored contributions."""
    w = client.get(keys.WATERMARK)
    held = {
        k[len(keys.FAMILY) :]: json.loads(v)
        for k in client.scan_iter(keys.FAMILY + "*", count=1000)
        if (v := client.get(k))
    }
    out = []
    for fam in sorted(set(held) | set(states)):
        # from the rows, not the state's memo of the present (pv): a stale memo is what
        # session 48 found, reported apart below
        rows = {k: v for k, v in states[fam].items() if k != "pv"} if fam in states else None
        want = picture.contribution(rows, w) if rows is not None else None
        if _indicators(held.get(fam)) != _indicators(want):
            out.append(f"family {fam}: Redis holds {held.get(fam)}, its state at {w} gives {want}")
        if rows is not None and (pv := states[fam].get("pv")) is not None:
            if (made := family.value(rows, pv[0])) != pv[2]:
                out.append(f"family {fam}: its memo of the present {pv} is not its rows' {made}")
    summed: dict[tuple[str, str], int] = {}
    for contrib in held.values():
        for k, v in picture.delta(None, contrib).items():
            summed[k] = summed.get(k, 0) + v
    for hkey in client.scan_iter(keys.AGG + "*", count=1000):
        scope = hkey[len(keys.AGG) :]
        for field, v in client.hgetall(hkey).items():
            if field in INDICATORS and int(v) != summed.get((scope, field), 0):
                out.append(
                    f"{hkey} {field} = {v}, the stored contributions sum to "
                    f"{summed.get((scope, field), 0)}"
                )
    return out


def redis_findings(state: Path, states: dict[str, dict]) -> list[str]:
    """:func:`redis_behind` and :func:`present_off` on a copy of the drill's Redis."""
    work = Path(tempfile.mkdtemp(prefix="drill-redis-"))
    shutil.copytree(state / "redis", work / "redis")
    store = OwnRedis(work / "redis")
    store.start()
    try:
        client = redis.Redis.from_url(store.url, decode_responses=True)
        while client.info("persistence").get("loading"):
            time.sleep(0.2)
        return [
            f"family {fam}: the history in Redis differs from its state's from {since}"
            for fam, since in redis_behind(client, states)
        ] + present_off(client, states)
    finally:
        store.kill()
        shutil.rmtree(work, ignore_errors=True)


def states_off(states: dict[str, dict], files: list[Path]) -> list[tuple[str, str]]:
    """``(family, day)``: families whose state differs from the in-process steps'."""
    pipe = picture.Pipeline(profile=state_profile, history=None)
    for path in files:
        with open(path, "rb") as lines:
            events = (line.rstrip(b"\n") for line in lines)
            feed(pipe, Pseudonymiser(KEY.encode()), events, batch=5000)
    off = []
    for fam in sorted(set(states) | set(pipe.families)):
        a, b = (
            course(picture.history_segments(s, 0, 0)) if s else []
            for s in (states.get(fam), pipe.families.get(fam))
        )
        if a != b:
            off.append((fam, first_difference(a, b)))
    return off


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("state", type=Path, help="a drill's kept state: var/drills/<run id>")
    parser.add_argument(
        "--events",
        type=Path,
        nargs="+",
        help="the drill's event file and its tail.jsonl: compare the states with the steps'",
    )
    args = parser.parse_args()
    run = args.state.resolve().name
    app = f"drill-{run}"
    tables = next((args.state / "faust").glob("*/v1/tables"))
    work = Path(tempfile.mkdtemp(prefix="drill-losses-"))
    shutil.copytree(args.state / "kafka", work / "kafka")
    broker = Broker(work / "kafka")
    broker.start()
    bootstrap = broker.bootstrap
    try:
        done = commits(bootstrap, app)
        parts = len({p for (t, p) in done if t == f"{app}-events-by-id"}) or 4
        for p in range(parts):
            seen = {json.loads(m.key) for m in read(bootstrap, f"{app}-dedup-changelog", p)}
            for m in read(bootstrap, f"{app}-events-by-id", p):
                ids = [item[0] for item in json.loads(m.value)["items"]]
                if missing := [i for i in ids if i not in seen]:
                    rows = done.get((f"{app}-events-by-id", p), [])
                    print(
                        f"events-by-id[{p}] offset {m.offset}, sent {when(m.timestamp)}: "
                        f"{len(missing)} of {len(ids)} events never deduplicated; "
                        f"commits {around(rows, m.offset)}"
                    )
            db = Rdict(
                str(tables / f"person-{p}.db"),
                access_type=AccessType.read_only(),
                options=Options(raw_mode=True),
            )
            for m in read(bootstrap, f"{app}-events-by-person", p):
                adds = [
                    (key, msg["event"]["event_id"])
                    for key, msg, _ in json.loads(m.value)["items"]
                    if msg.get("kind") == "add"
                ]
                missing = [
                    e
                    for key, e in adds
                    if e.encode() not in (db.get(json.dumps(key).encode()) or b"")
                ]
                if adds and len(missing) > len(adds) / 2:
                    rows = done.get((f"{app}-events-by-person", p), [])
                    print(
                        f"events-by-person[{p}] offset {m.offset}, sent {when(m.timestamp)}: "
                        f"{len(missing)} of {len(adds)} events in no person state; "
                        f"commits {around(rows, m.offset)}"
                    )
            db.close()
    finally:
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)
    states = family_states(tables)
    for finding in redis_findings(args.state, states):
        print(finding)
    for fam, since in states_off(states, args.events or []) if args.events else ():
        print(f"family {fam}: its state differs from the in-process steps' from {since}")


if __name__ == "__main__":
    main()
