"""The real worker on the real broker and Redis.

The reference is ``tilannekuva.batch.compute`` (pandas, written independently of the
stream code) on the same events.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import re
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
import redis

from sinks import keys
from tests.conftest import OwnKafka, OwnRedis, redis_url_for_db, worker_db
from tests.streams.harness import (
    KEY,
    Worker,
    consume_all,
    flatten,
    free_port,
    produce,
    read_redis,
    wait_for,
)
from tilannekuva.batch import compute
from tilannekuva.synthetic import generate

pytestmark = pytest.mark.integration
ONE_YEAR_END = dt.date(2024, 6, 30)  # the generator's history starts on 2023-07-01


@pytest.fixture
def worker_redis(redis_url):
    """The worker writes the production key layout: off db 0 and 15, one db per xdist
    worker."""
    url = redis_url_for_db(redis_url, worker_db())
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url, client
    client.flushdb()
    client.close()


def lines_of(events) -> list[bytes]:
    return [e.encode() if isinstance(e, str) else json.dumps(e).encode() for e in events]


def expected_of(events) -> tuple[dict, str]:
    pic = compute(e for e in events if isinstance(e, dict) and not _invalid(e))
    return flatten(pic), pic["as_of"]


def run_through_worker(
    tmp_path, kafka_bootstrap, kafka_topic_factory, worker_redis, events, timeout=600, env=None
):
    url, client = worker_redis
    topic = kafka_topic_factory("in", partitions=4)
    worker = Worker(kafka_bootstrap, url, topic, tmp_path)
    worker.env.update(env or {})
    # The worker starts, the events arrive and the reference is computed at once: on
    # two cores this overlap is minutes of the 10k case.
    worker.start()
    try:
        produce(kafka_bootstrap, topic, lines_of(events))
        expected, as_of = expected_of(events)
        got = wait_for(client, expected, worker, timeout=timeout, watermark=as_of)
        worker.metrics_text = worker.metrics()
    finally:
        worker.stop()
    return worker, expected, got, client


def test_small_history_with_every_corruption_knob(
    tmp_path, kafka_bootstrap, kafka_topic_factory, worker_redis
):
    events = list(
        generate(300, 11, duplicates=0.03, out_of_order=0.05, retractions=0.02, malformed=0.01)
    )
    malformed = [e for e in events if not isinstance(e, dict) or _invalid(e)]
    assert malformed, "the knob should have produced malformed events"
    worker, expected, got, client = run_through_worker(
        tmp_path, kafka_bootstrap, kafka_topic_factory, worker_redis, events
    )
    assert got == expected, _diff(expected, got)
    # Its topics were there before Faust subscribed: no rebalance a few seconds in
    # (tilannekuva/topics.py::declare_worker_topics).
    assert "not found in cluster metadata" not in worker.logs()

    # Event → Redis latency is observed, and every sample is a real duration (finite
    # bucket), not a unit mix-up.
    m = worker.metrics_text
    count = float(re.search(r"tk_event_to_redis_seconds_count ([0-9.e+]+)", m).group(1))
    in_300s = float(
        re.search(r'tk_event_to_redis_seconds_bucket\{le="300.0"\} ([0-9.e+]+)', m).group(1)
    )
    assert count > 0 and in_300s == count

    # The API over the worker's Redis against the batch reference of the same file,
    # suppressed, for the whole, every municipality and every area.
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines_of(events)) + b"\n")
    out = _compare_through_api(worker.env, path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert ": 0 differ" in out.stdout
    # ...and the history on past days the same way (?as_of=D against the batch of D).
    w = dt.date.fromisoformat(client.get("tk:wm").decode())
    days = ",".join((w - dt.timedelta(days=n)).isoformat() for n in (0, 17, 90, 200))
    out = _compare_through_api(worker.env, path, "--as-of", days)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "4 days," in out.stdout and ": 0 days with differing cells" in out.stdout

    # Every malformed message is in the DLQ with a reason; nothing valid is.
    dlq = [json.loads(m.value) for m in consume_all(kafka_bootstrap, worker.dlq_topic)]
    assert len(dlq) == len(malformed)
    assert all(r["reason"] and r["received_at"] for r in dlq)

    # Every valid message is forwarded exactly once (duplicates are separate messages).
    valid = [e for e in events if isinstance(e, dict) and not _invalid(e)]
    forwarded = consume_all(kafka_bootstrap, f"{worker.app_id}-events-by-id")
    forwarded_ids = [
        item[1]["event_id"] for m in forwarded for item in json.loads(m.value)["items"]
    ]
    assert sorted(forwarded_ids) == sorted(e["event_id"] for e in valid)

    # No raw identity code or DVV family id anywhere past the door: internal topics,
    # changelogs, Redis.
    raw_ids = {e["person"] for e in valid if e.get("person")} | {
        e["data"]["family"] for e in valid if "family" in e.get("data", {})
    }
    topics = [f"{worker.app_id}-{s}" for s in ("events-by-id", "events-by-person", "family-inputs")]
    topics += [f"{worker.app_id}-{t}-changelog" for t in ("dedup", "person", "family")]
    token = re.compile(rb"\d{6}[-+A-FU-Y]\d{3}[0-9A-Y]|F\d+")
    for t in topics:
        msgs = consume_all(kafka_bootstrap, t)
        assert msgs, f"topic {t} should hold messages"
        for m in msgs:
            for blob in (m.key or b"", m.value or b""):
                leaked = {x.decode() for x in token.findall(blob)} & raw_ids
                assert not leaked, f"raw ids in {t}"
    for key in client.scan_iter("*"):
        value = client.dump(key) or b""
        assert not ({x.decode() for x in token.findall(key + value)} & raw_ids)


@pytest.mark.timeout(
    1200
)  # generation, batch reference and produce take a few minutes before the worker
def test_a_year_of_thousands_of_families_stream_equals_batch(
    tmp_path, kafka_bootstrap, kafka_topic_factory, worker_redis
):
    # 3,000 in the suite (CI's 30 minutes); issue 12's acceptance run, 10,000 families,
    # is this test with TK_TEST_FAMILIES=10000 (about 10 minutes on 2 CPUs, RocksDB).
    families = int(os.environ.get("TK_TEST_FAMILIES", "3000"))
    # A year of history (the full three years are the bench's and `tilannekuva compare`'s
    # job): every family, every register and the watermark's day-by-day effects, in about
    # 40 % of the events, so that CI stays well inside its time limit.
    events = list(
        generate(
            families, 5, end=ONE_YEAR_END, duplicates=0.01, out_of_order=0.02, retractions=0.005
        )
    )
    started = time.monotonic()
    # Picture only: the claim here is the indicators at scale, and the feature profiles
    # would double the time of this test in CI; the groups have their own test below.
    _, expected, got, _ = run_through_worker(
        tmp_path,
        kafka_bootstrap,
        kafka_topic_factory,
        worker_redis,
        events,
        timeout=1500,
        env={"TK_FAMILY_TYPES": "0"},
    )
    print(
        f"\n{families} families, {len(events)} events: stream == batch after {time.monotonic() - started:.0f} s"
    )
    assert got == expected, _diff(expected, got)
    # The history too: 30 days across all of it, against the batch reference of each day.
    _, client = worker_redis
    differing = history_differences(client, events, n_days=30)
    assert not differing, "\n".join(differing[:40])


def history_differences(client, events, n_days: int) -> list[str]:
    """Cells where the history in Redis differs from the batch reference, on ``n_days``
    days spread over the whole history (first day of data to W)."""
    from models.contract import COVERED_MUNICIPALITIES, INDICATORS
    from sinks.redis_reader import read_history, read_span
    from tilannekuva.batch import EventTable, compute_days

    first, last = (dt.date.fromisoformat(d) for d in read_span(client))
    span = (last - first).days
    days = sorted({first + dt.timedelta(days=span * i // (n_days - 1)) for i in range(n_days)})
    valid = [e for e in events if isinstance(e, dict) and not _invalid(e)]
    reference = compute_days(EventTable(valid), [d.isoformat() for d in days])
    scopes = sorted(
        {s for pic in reference.values() for s in flatten(pic)}
        | {f"a:{pc.decode()}" for pc in client.hkeys("tk:areas")}
        | {f"m:{code}" for code in COVERED_MUNICIPALITIES}
        | {"all"}
    )
    got = read_history(client, scopes, [d.toordinal() for d in days])
    lines = []
    for d in days:
        want = flatten(reference[d.isoformat()])
        # The indicators only: neither the groups (no batch model) nor the cell keys.
        on = d.toordinal()
        have = {
            s: c for s in scopes if (c := {k: v for k, v in got[s][on].items() if k in INDICATORS})
        }
        if have != want:
            lines.append(f"{d}: {_diff(want, have)}")
    return lines


def settled_history(client, events, n_days: int, timeout: float = 120) -> list[str]:
    """:func:`history_differences` once no restore is marked in Redis and none are
    left, or what differs at ``timeout``: the present can be exact before the families
    are all written again (a family the agent wrote since the loss has its present back,
    its history only from that write on)."""
    deadline = time.monotonic() + timeout
    while True:
        restoring = client.zcard(keys.RESTORING) or client.scard(keys.REWRITING)
        differing = [] if restoring else history_differences(client, events, n_days)
        if (not restoring and not differing) or time.monotonic() > deadline:
            return differing or [f"still restoring after {timeout} s"] * bool(restoring)
        time.sleep(1)


def test_sigkill_mid_stream_then_restart_is_still_exact(
    tmp_path, kafka_bootstrap, kafka_topic_factory, worker_redis
):
    url, client = worker_redis
    events = list(
        generate(1500, 23, end=ONE_YEAR_END, duplicates=0.02, retractions=0.01, out_of_order=0.02)
    )
    expected, as_of = expected_of(events)
    topic = kafka_topic_factory("in", partitions=4)
    worker = Worker(kafka_bootstrap, url, topic, tmp_path)
    worker.env["TK_SESSION_TIMEOUT_S"] = "10"  # the restart takes the killed one's partitions
    lines = lines_of(events)
    produce(kafka_bootstrap, topic, lines[: len(lines) // 2])
    worker.start()
    # Kill once the worker is visibly mid-way: some families in Redis, far from done.
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and int(client.hget("tk:agg:all", "families") or 0) < 50:
        time.sleep(0.2)
    produce(kafka_bootstrap, topic, lines[len(lines) // 2 :])
    time.sleep(random.Random(1).uniform(1, 3))
    partial = read_redis(client)
    worker.kill()
    assert partial != expected, "the kill should have happened mid-stream"
    worker.start()
    try:
        got = wait_for(client, expected, worker, timeout=600, watermark=as_of)
    finally:
        worker.stop()
    assert got == expected, _diff(expected, got)
    differing = history_differences(client, events, n_days=12)  # replays left no trace
    assert not differing, "\n".join(differing[:40])


@pytest.mark.parametrize(
    "fault",
    [
        "kill, AOF everysec",  # as infra/redis.sh runs it: may lose the last second
        "kill, no persistence",  # comes back empty
        "FLUSHALL",  # emptied under the running worker
    ],
)
def test_a_redis_that_goes_away_or_loses_writes_mid_stream_is_healed(
    tmp_path, kafka_bootstrap, kafka_topic_factory, fault
):
    """Redis (its own server) is killed with -9 while the worker writes and started
    again 5 s later, or emptied with FLUSHALL: the worker waits, never exits, writes
    again whatever Redis lost (streams/restore.py) and the picture, its history and the
    model snapshot end exact."""
    aof = "everysec" if fault == "kill, AOF everysec" else False
    redis_server = OwnRedis(tmp_path, aof=aof)
    redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    events = list(generate(1000, 29, end=ONE_YEAR_END, duplicates=0.01, out_of_order=0.01))
    expected, as_of = expected_of(events)
    topic = kafka_topic_factory("in", partitions=4)
    worker = Worker(kafka_bootstrap, redis_server.url, topic, tmp_path)
    worker.env["TK_MODEL_WARMUP"] = "150"  # a snapshot early, for Redis to lose
    lines = lines_of(events)
    produce(kafka_bootstrap, topic, lines[: len(lines) // 2])
    worker.start()
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and int(client.hget(keys.ALL, "families") or 0) < 50:
            time.sleep(0.2)
        produce(kafka_bootstrap, topic, lines[len(lines) // 2 :])
        if fault == "FLUSHALL":
            time.sleep(1)
            client.flushall()
        else:
            redis_server.kill()
            time.sleep(5)
            assert worker.proc.poll() is None, "the worker exited while Redis was away"
            redis_server.start()
        got = wait_for(client, expected, worker, timeout=600, watermark=as_of)
        assert worker.proc.poll() is None and worker.starts == 1
        model = wait_for_model(client)
        assert got == expected, _diff(expected, got)
        differing = settled_history(client, events, n_days=12)
        worker.stop()
        assert not differing, "\n".join(differing[:40]) + f"\nworker log:\n{worker.logs()}"
        assert model, "the model snapshot was not put back"
        # Where shift detection starts, and no restore left marked as going on.
        assert client.get(keys.LIVE_FROM).decode() == min(e["recorded_at"][:10] for e in events)
        assert client.zcard(keys.RESTORING) == 0
    finally:
        worker.stop()
        redis_server.kill()
    if fault.startswith("kill"):
        log = "".join(p.read_text(errors="replace") for p in tmp_path.glob("worker-*.log"))
        assert "Redis unreachable" in log and "Redis reachable again" in log


def wait_for_model(client: redis.Redis, timeout: float = 60) -> bytes | None:
    """The model snapshot in Redis, once it is there (the learner's, or put back)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if model := client.get(keys.MODEL):
            return model
        time.sleep(0.5)
    return None


def test_a_kafka_broker_killed_and_restarted_mid_stream_is_survived(tmp_path, worker_redis):
    """The broker (its own, so the shared one stays up) is killed with -9 while the
    worker consumes, produces to its internal topics and commits, and started again 10 s
    later: the worker rides it out without exiting, resumes from its committed offsets
    and ends exact, present and history (issue 13's Kafka drill)."""
    url, client = worker_redis
    broker = OwnKafka(tmp_path)
    broker.start()
    events = list(generate(1000, 29, end=ONE_YEAR_END, duplicates=0.01, out_of_order=0.01))
    expected, as_of = expected_of(events)
    topic = f"drill-in-{os.getpid()}"
    broker.create_topic(topic, partitions=4)
    worker = Worker(broker.bootstrap, url, topic, tmp_path)
    lines = lines_of(events)
    produce(broker.bootstrap, topic, lines[: len(lines) // 2])
    worker.start()
    try:
        # A broker started a moment ago, beside a busy test worker: once (CI, 86c3701..)
        # the worker's first commit took 227 s; wait longer, and say what it logged.
        deadline = time.monotonic() + 360
        while time.monotonic() < deadline and int(client.hget(keys.ALL, "families") or 0) < 50:
            time.sleep(0.2)
        got_going = int(client.hget(keys.ALL, "families") or 0) >= 50
        assert got_going, f"the worker never got going:\n{worker.logs()}"
        produce(broker.bootstrap, topic, lines[len(lines) // 2 :])
        broker.kill()
        time.sleep(10)
        assert worker.proc.poll() is None, "the worker exited while Kafka was away"
        broker.start()
        got = wait_for(client, expected, worker, timeout=600, watermark=as_of)
        assert worker.proc.poll() is None and worker.starts == 1
    finally:
        worker.stop()
        broker.kill()
    assert got == expected, _diff(expected, got)
    differing = history_differences(client, events, n_days=12)
    assert not differing, "\n".join(differing[:40])


def test_the_worker_raises_the_backtests_alerts_on_the_alert_topic_and_in_redis(
    tmp_path, kafka_bootstrap, kafka_topic_factory, worker_redis
):
    """Fourteen months in event-time order (no event revises a published day), family
    types off: the leader's shift detection (``rise5pp``, which raises plenty) raises on
    the topic and in Redis exactly the alerts ``tilannekuva alerts backtest`` finds on
    the same events, each once."""
    from models.detection import Detector, Rise5pp
    from models.pseudonym import Pseudonymiser
    from sinks.redis_reader import read_alerts, read_span
    from tests.streams.harness import KEY
    from tilannekuva.alerts import Backtest
    from tilannekuva.replay import Replay

    url, client = worker_redis
    events = sorted(
        generate(300, 17, start=dt.date(2025, 5, 1)),
        key=lambda e: (e["occurred_at"], e["recorded_at"], e["event_id"]),
    )
    bt = Backtest({"rise5pp": Detector(Rise5pp(), min_families=20)}, min_cell=5)
    pseudo = Pseudonymiser(KEY.encode())
    Replay(None, on_tick=bt).feed([pseudo.event(e) for e in events])
    expected = bt.alerts["rise5pp"]
    assert len(expected) >= 5, "the stream must raise alerts for the comparison to mean much"

    topic = kafka_topic_factory("in", partitions=4)
    worker = Worker(kafka_bootstrap, url, topic, tmp_path)
    worker.env.update(
        {"TK_ALERT_INTERVAL_S": "0.5", "TK_ALERT_METHOD": "rise5pp", "TK_FAMILY_TYPES": "0"}
    )
    produce(kafka_bootstrap, topic, lines_of(events))
    worker.start()
    try:
        picture, as_of = expected_of(events)
        assert wait_for(client, picture, worker, timeout=300, watermark=as_of) == picture
        published = _minus_days(read_span(client)[1], 1)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            raw = client.get(keys.ALERTS_STATE)
            if raw and json.loads(raw)["as_of"] == published:
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"no detection up to {published}:\n{worker.logs()[-5000:]}")
    finally:
        worker.stop()
    in_redis = read_alerts(client, limit=10**6)
    on_topic = [
        json.loads(m.value) for m in consume_all(kafka_bootstrap, worker.env["TK_ALERTS_TOPIC"])
    ]
    assert sorted(a["id"] for a in on_topic) == sorted(a["id"] for a in in_redis)
    assert len({a["id"] for a in in_redis}) == len(in_redis)
    strip = sorted(
        json.dumps({k: v for k, v in a.items() if k != "raised_at"}, sort_keys=True)
        for a in in_redis
    )
    assert strip == sorted(json.dumps(a, sort_keys=True) for a in expected)
    assert all(a["as_of"] <= published for a in in_redis)


def _minus_days(day: str, n: int) -> str:
    return (dt.date.fromisoformat(day) - dt.timedelta(days=n)).isoformat()


def _compare_through_api(worker_env: dict, path, *extra: str) -> subprocess.CompletedProcess:
    """``tilannekuva compare`` against a ``tilannekuva api`` over the worker's Redis."""
    port = free_port()
    env = {
        **worker_env,
        "SITUATION_API_TOKEN": "dashboard-token",
        "SITUATION_AUDIT_TOKEN": "compare-audit-token",
        "SITUATION_API_PORT": str(port),
    }
    api = subprocess.Popen(
        [sys.executable, "-m", "tilannekuva.cli", "api", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_http(f"http://127.0.0.1:{port}/healthz")
        return subprocess.run(
            [sys.executable, "-m", "tilannekuva.cli", "compare", str(path), *extra],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        api.terminate()
        api.wait(timeout=30)


def _wait_http(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def _invalid(e: dict) -> bool:
    from models.contract import InvalidEvent, validate

    try:
        validate(e)
    except InvalidEvent:
        return True
    return False


def _diff(expected: dict, got: dict) -> str:
    lines = []
    for scope in sorted(set(expected) | set(got)):
        a, b = expected.get(scope, {}), got.get(scope, {})
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                lines.append(f"{scope}.{k}: expected {a.get(k)} got {b.get(k)}")
    return f"{len(lines)} differing cells:\n" + "\n".join(lines[:40])


def test_service_need_groups_follow_the_latest_snapshot_and_survive_a_restart(
    tmp_path, kafka_bootstrap, kafka_topic_factory, worker_redis
):
    """Groups in Redis are exactly the latest snapshot's groups of the families' final
    states; the learner resumes from its compacted snapshot table after a restart."""
    from models.family_types import TypeAssigner, family_group, family_type
    from models.picture import contribution
    from sinks.redis_reader import read_types
    from tilannekuva.evaluate import final_states

    url, client = worker_redis
    events = sorted(generate(600, 29, end=ONE_YEAR_END), key=lambda e: e["occurred_at"])
    cut = int(len(events) * 0.7)
    topic = kafka_topic_factory("in", partitions=4)
    worker = Worker(kafka_bootstrap, url, topic, tmp_path)
    worker.env.update(
        {
            "TK_FAMILY_TYPES": "1",
            "TK_N_TYPES": "12",
            "TK_MODEL_WARMUP": "150",
            "TK_SNAPSHOT_DAYS": "30",
            "TK_SNAPSHOT_MIN_INTERVAL_S": "1",
        }
    )

    def version() -> tuple[int, int] | None:
        raw = client.get("tk:model:version")
        return tuple(int(x) for x in raw.decode().split(".")) if raw else None

    def groups_complete() -> bool:
        ind, grp = read_redis(client), read_redis(client, groups=True)
        return bool(grp) and all(
            sum(grp.get(s, {}).values()) == c.get("families", 0) for s, c in ind.items()
        )

    def adopted() -> tuple[int, int] | None:
        """The snapshot the worker says its families are written with (/metrics)."""
        m = re.search(r'^tk_model_adopted_info\{version="(\d+)\.(\d+)"\}', worker.metrics(), re.M)
        return (int(m.group(1)), int(m.group(2))) if m else None

    def settle(timeout: float = 300) -> tuple[int, int]:
        """Until the worker has adopted the snapshot in Redis, and the version, the
        groups and the types stay so over a few reads with the groups complete. (A quiet
        period alone was not enough: beside a busy process the adoption of a new
        snapshot can start seconds after it is published.)"""
        deadline, last, stable = time.monotonic() + timeout, None, 0
        while time.monotonic() < deadline:
            state = (version(), read_redis(client, groups=True), types_in_redis())
            settled = state[0] and adopted() == state[0] and groups_complete()
            stable = stable + 1 if state == last and settled else 0
            if stable >= 3:
                return state[0]
            last = state
            assert worker.proc.poll() is None, worker.logs()
            time.sleep(0.5)
        raise AssertionError(f"groups did not settle: version {version()}\n{worker.logs()}")

    def groups_of_snapshot() -> dict[str, dict[str, int]]:
        """The groups the snapshot in Redis gives the families' final states."""
        assigner = TypeAssigner.from_snapshot(json.loads(client.get("tk:model")))
        states, wm = final_states(events)
        want: dict[str, dict[str, int]] = {}
        for state in states.values():
            c = contribution(state, wm)
            g = f"g{family_group(state, assigner)}"
            for scope in ("all", f"m:{c['municipality']}", f"a:{c['area']}"):
                want.setdefault(scope, {}).setdefault(g, 0)
                want[scope][g] += 1
        return want

    def types_of_snapshot() -> dict[str, dict[int, int]]:
        """The family types the snapshot in Redis gives the families' final states."""
        assigner = TypeAssigner.from_snapshot(json.loads(client.get("tk:model")))
        states, wm = final_states(events)
        want: dict[str, dict[int, int]] = {}
        for state in states.values():
            c = contribution(state, wm)
            t = family_type(state, assigner)
            for scope in ("all", f"m:{c['municipality']}", f"a:{c['area']}"):
                want.setdefault(scope, {}).setdefault(t, 0)
                want[scope][t] += 1
        return want

    def types_in_redis() -> dict[str, dict[int, int]]:
        return {s: c for s, c in read_types(client)["types"].items() if c}

    produce(kafka_bootstrap, topic, lines_of(events[:cut]))
    worker.start()
    try:
        wait_for(
            client,
            expected_of(events[:cut])[0],
            worker,
            timeout=300,
            watermark=expected_of(events[:cut])[1],
        )
        first = settle()
    finally:
        worker.stop()
    produce(kafka_bootstrap, topic, lines_of(events[cut:]))
    worker.start()
    try:
        expected, as_of = expected_of(events)
        assert wait_for(client, expected, worker, timeout=300, watermark=as_of) == expected
        final = settle()
    finally:
        worker.stop()
    # Resumed, not started afresh: same generation, later version.
    assert final[0] == first[0] and final[1] > first[1], (first, final)
    # Each process timed its adoptions for the learner's spacing of snapshots.
    assert client.hlen("tk:model:adoptions") == 2, client.hgetall("tk:model:adoptions")

    # Exactly the groups and types the final snapshot gives the families' final states.
    snap = json.loads(client.get("tk:model"))
    assert read_redis(client, groups=True) == groups_of_snapshot()
    assert types_in_redis() == types_of_snapshot()

    # Through the API's audit path: the exact indicators equal the batch reference, and
    # the exact groups add up to families in every scope (tilannekuva compare checks both).
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines_of(events)) + b"\n")
    out = _compare_through_api(worker.env, path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert ": 0 differ" in out.stdout and re.search(
        r"service_need_groups in [1-9]\d* scopes: 0 problems", out.stdout
    )

    # The snapshot's durable copy is the compacted changelog of the model table.
    changelog = consume_all(kafka_bootstrap, f"{worker.app_id}-model-changelog")
    versions = [json.loads(m.value)["version"] for m in changelog]
    assert versions and max(versions) == snap["version"]

    # A deliberate re-base: a new generation with fresh ids and the old → new mapping;
    # the picture's groups follow it.
    worker.start()
    try:
        out = subprocess.run(
            [sys.executable, "-m", "tilannekuva.cli", "rebase", "--wait", "120"],
            env=worker.env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert out.returncode == 0, out.stdout + out.stderr + worker.logs()
        rebased = settle()
    finally:
        worker.stop()
    new = json.loads(client.get("tk:model"))
    assert rebased[0] == final[0] + 1 and new["lineage"]["from_version"] >= final[1], (
        final,
        rebased,
    )
    assert sorted(old for old, _ in new["lineage"]["mapping"]) == sorted(snap["type_ids"])
    assert sorted(n for _, n in new["lineage"]["mapping"]) == sorted(new["type_ids"])
    assert not set(new["type_ids"]) & set(snap["type_ids"])
    assert read_redis(client, groups=True) == groups_of_snapshot()
    # The type counts moved to the new ids; none of the old ones is left in any scope.
    assert types_in_redis() == types_of_snapshot()


def test_the_worker_counts_the_offline_cohorts_and_answers_their_estimates(
    tmp_path, kafka_bootstrap, kafka_topic_factory, worker_redis
):
    """With ``TK_IMPACT`` on, the worker's partitions count in Redis the cohorts of the
    offline panel of the final data of the same events (``final_counts``), stratum by
    stratum, in a shuffled arrival order; the API's estimates from them are the offline
    ones. Then a FLUSHALL: the worker counts them again by itself."""
    import asyncio

    import redis.asyncio as aioredis

    from models.contract import COVERED_MUNICIPALITIES
    from models.impact import SERVICES, month_of
    from sinks import impact_store
    from sinks.redis_reader import read_impact_async
    from tilannekuva.api import impact as impact_api
    from tilannekuva.impact_eval import final_counts
    from tilannekuva.synthetic import synthesize

    url, client = worker_redis
    lines = synthesize(500, seed=5, services=True).lines
    random.Random(3).shuffle(lines)  # arrival order: any; late events reach back
    first, last, want = final_counts(lines, KEY.encode())  # the workers' key
    assert sum(int(c.values[..., 0].sum()) for c in want.values()) > 100  # entries
    topic = kafka_topic_factory("in", partitions=4)
    worker = Worker(kafka_bootstrap, url, topic, tmp_path)
    worker.env.update({"TK_IMPACT": "1", "TK_MODEL_WARMUP": "100"})

    def counted() -> dict:
        """What the API reads: every partition's counts added up."""

        async def read():
            r = aioredis.Redis.from_url(url)
            try:
                return await read_impact_async(r, SERVICES)
            finally:
                await r.aclose()

        month, got = asyncio.run(read())
        return {"month": month, "counts": got}

    def same(got: dict) -> bool:
        return got["month"] == impact_store.month_name(last) and all(
            np.array_equal(got["counts"][s].strata, want[s].strata)
            and np.array_equal(got["counts"][s].values, want[s].values)
            for s in SERVICES
        )

    def wait_same(timeout: float) -> dict:
        deadline, got = time.monotonic() + timeout, {}
        while time.monotonic() < deadline:
            got = counted()
            if same(got):
                return got
            assert worker.proc.poll() is None, worker.logs()
            time.sleep(1)
        return got

    worker.start()
    try:
        produce(kafka_bootstrap, topic, [line.encode() for line in lines])
        got = wait_same(600)
        assert month_of(client.get(keys.LIVE_FROM).decode()) == first, "the worker's first month"
        for s in SERVICES:
            assert np.array_equal(got["counts"][s].values, want[s].values), (s, worker.logs())
        body = impact_api.body(got["month"], got["counts"], None, 3, None)
        assert body == impact_api.body(impact_store.month_name(last), want, None, 3, None)
        tampere = "837"
        assert tampere in COVERED_MUNICIPALITIES
        assert impact_api.body(got["month"], got["counts"], tampere, 3, None) == impact_api.body(
            impact_store.month_name(last), want, tampere, 3, None
        )
        shown = [e for s in body["services"] for e in s["estimates"] if e["withheld"] is None]
        assert shown, "500 families publish some estimate"

        client.flushdb()  # Redis loses everything: the worker notices and counts again
        assert same(wait_same(300)), worker.logs()
    finally:
        worker.stop()
