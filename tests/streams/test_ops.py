"""ShiftAlerts against a real Redis (no broker); the upkeep helpers."""

import asyncio
import datetime as dt
import json
import logging
import os
import time
from functools import partial

import redis.asyncio as aioredis

from models.contract import validate
from models.detection import Detector, Rise5pp
from models.pseudonym import Pseudonymiser
from sinks import keys
from sinks.alert_store import AsyncAlertStore
from streams.ops import (
    CommitGuard,
    Finished,
    KeptUnacked,
    LoopWatch,
    LostMessages,
    ShiftAlerts,
    quiet_logs,
    record_lag,
    record_rocksdb_memory,
)
from tests.conftest import write_counts
from tests.streams.fakes import Topic
from tilannekuva import demo
from tilannekuva.alerts import Backtest
from tilannekuva.replay import Replay
from tilannekuva.synthetic import synthesize

NOW = "2030-01-01T00:00:00Z"


def rise5pp() -> Detector:
    return Detector(Rise5pp(), min_families=20)


def set_picture(client, as_of: str, assisted: int) -> None:
    """A picture that is published on ``as_of`` (W is the day after: the day ``as_of`` is
    complete), the same on every day since 2025-12-01, live since then."""
    for k in client.scan_iter(keys.PATTERN):
        if k.startswith(keys.HIST.encode()) or k.startswith(keys.AGG.encode()):
            client.delete(k)
    pipe = client.pipeline()
    fields = {"families": 400, "children": 700, "families_social_assistance": assisted}
    write_counts(pipe, "all", fields, "2025-12-01")
    w = dt.date.fromisoformat(as_of) + dt.timedelta(days=1)
    pipe.mset(
        {keys.WATERMARK: w.isoformat(), keys.FIRST_DAY: "2025-12-01", keys.LIVE_FROM: "2025-12-01"}
    )
    pipe.execute()


async def test_a_tick_detects_each_published_day_once_and_keeps_what_it_saw(
    redis_test_url, redis_client
):
    client = aioredis.from_url(redis_test_url)
    topic = Topic()
    ticks = ShiftAlerts(client, topic, rise5pp(), 5, lambda: NOW)
    set_picture(redis_client, "2026-01-01", 40)
    assert await ticks() == 0
    rec = await AsyncAlertStore(client).recorded()
    state, rows = rec.state, rec.rows
    assert state["as_of"] == "2026-01-01" and list(rows)[0] == "2025-12-01"
    assert len(rows) == 32 and rows["2026-01-01"]["all"][2] is not None
    # The whole history now reads 80, but what was published up to 2026-01-01 stays 40:
    # the first new day is 10 % → 20 % against 30 days before.
    set_picture(redis_client, "2026-02-05", 80)
    assert await ticks() == 1
    assert await ticks() == 0  # still active: raised once
    (sent,) = topic.sent
    assert sent["value"]["scope"] == "all" and sent["key"] == sent["value"]["id"].encode()
    assert sent["value"]["as_of"] == "2026-01-02" and sent["value"]["raised_at"] == NOW
    observed, expected = sent["value"]["observed"]["share"], sent["value"]["expected"]["share"]
    assert abs(observed - 0.2) < 0.01 and abs(expected - 0.1) < 0.01  # published: cell keys
    rec = await AsyncAlertStore(client).recorded()
    state, rows = rec.state, rec.rows
    assert state["as_of"] == "2026-02-05" and len(rows) == 67
    assert redis_client.zcard(keys.ALERTS) == 1
    await client.aclose()


async def test_nothing_is_detected_before_the_pipeline_settles_or_the_registers_go_live(
    redis_test_url, redis_client
):
    client = aioredis.from_url(redis_test_url)
    settled = {"now": False}

    async def is_settled() -> bool:
        return settled["now"]

    ticks = ShiftAlerts(client, None, rise5pp(), 5, lambda: NOW, settled=is_settled)
    set_picture(redis_client, "2026-01-10", 40)
    assert await ticks.tick() == (0, 0)
    settled["now"] = True
    redis_client.delete(keys.LIVE_FROM)
    assert await ticks.tick() == (0, 0)
    redis_client.set(keys.LIVE_FROM, "2026-01-03")
    assert await ticks.tick() == (8, 0)  # 2026-01-03 … 2026-01-10
    await client.aclose()


async def test_a_failed_tick_is_logged_and_the_next_goes_on_from_what_redis_holds(
    redis_test_url, redis_client, caplog
):
    client = aioredis.from_url(redis_test_url)
    set_picture(redis_client, "2026-01-01", 40)
    failing = ShiftAlerts(
        client, Topic(fail=RuntimeError("broker down")), rise5pp(), 5, lambda: NOW
    )
    assert await failing() == 0
    set_picture(redis_client, "2026-02-05", 80)
    with caplog.at_level(logging.ERROR, logger="tilannekuva.worker"):
        assert await failing() == 0
    assert "shift alert tick failed" in caplog.text
    state = (await AsyncAlertStore(client).recorded()).state
    assert state["as_of"] == "2026-01-01"  # nothing of the failed tick recorded
    # Another leader goes on from Redis, and raises what the failed tick could not send.
    assert await ShiftAlerts(client, Topic(), rise5pp(), 5, lambda: NOW)() == 1
    await client.aclose()


def alert_keys(client) -> dict:
    """The detector's four keys as Redis holds them."""
    return {
        "state": client.get(keys.ALERTS_STATE),
        "shown": client.hgetall(keys.ALERTS_SHOWN),
        "alerts": client.zrange(keys.ALERTS, 0, -1, withscores=True),
        "ids": client.hgetall(keys.ALERTS_IDS),
    }


async def test_what_redis_lost_of_the_detector_is_put_back_and_detection_goes_on(
    redis_test_url, redis_client, caplog
):
    client = aioredis.from_url(redis_test_url)
    topic = Topic()
    ticks = ShiftAlerts(client, topic, rise5pp(), 5, lambda: NOW)
    set_picture(redis_client, "2026-01-01", 40)
    assert await ticks() == 0
    set_picture(redis_client, "2026-02-05", 80)
    assert await ticks() == 1
    had = alert_keys(redis_client)
    redis_client.flushdb()  # FLUSHALL (of the test's db); the restore tick puts W back
    set_picture(redis_client, "2026-02-05", 80)
    with caplog.at_level(logging.WARNING, logger="tilannekuva.worker"):
        assert await ticks() == 0
    assert "Redis lost the shift detector's record" in caplog.text
    assert alert_keys(redis_client) == had and len(topic.sent) == 1  # nothing raised again
    set_picture(redis_client, "2026-02-10", 80)
    assert await ticks.tick() == (5, 0)  # on from the day after the one it had recorded
    await client.aclose()


async def test_a_redis_back_to_an_older_copy_gets_the_newer_record_back(
    redis_test_url, redis_client
):
    client = aioredis.from_url(redis_test_url)
    ticks = ShiftAlerts(client, Topic(), rise5pp(), 5, lambda: NOW)
    set_picture(redis_client, "2026-01-01", 40)
    assert await ticks() == 0
    older = {k: redis_client.dump(k) for k in redis_client.scan_iter(keys.ALERTS + "*")}
    set_picture(redis_client, "2026-02-05", 80)
    assert await ticks() == 1
    had = alert_keys(redis_client)
    for k, v in older.items():  # a restart from the snapshot before the second tick
        redis_client.restore(k, 0, v, replace=True)
    redis_client.delete(keys.ALERTS, keys.ALERTS_IDS)  # the older copy had no alert yet
    assert alert_keys(redis_client) != had
    assert await ticks() == 0
    assert alert_keys(redis_client) == had
    # Another leader's newer record is not overwritten: it is read.
    other = ShiftAlerts(client, Topic(), rise5pp(), 5, lambda: NOW)
    set_picture(redis_client, "2026-02-07", 80)
    assert await other.tick() == (2, 0)
    assert await ticks.tick() == (0, 0)
    assert json.loads(redis_client.get(keys.ALERTS_STATE))["as_of"] == "2026-02-07"
    await client.aclose()


async def test_no_day_is_detected_on_while_a_worker_writes_lost_families_again(
    redis_test_url, redis_client
):
    client = aioredis.from_url(redis_test_url)
    now = {"t": 1000.0}
    ticks = ShiftAlerts(client, None, rise5pp(), 5, lambda: NOW, clock=lambda: now["t"])
    set_picture(redis_client, "2026-01-10", 40)
    redis_client.zadd(keys.RESTORING, {"w1": 1100.0, "w2": 900.0})  # w2's mark has lapsed
    assert await ticks.tick() == (0, 0)
    redis_client.zrem(keys.RESTORING, "w1")
    assert await ticks.tick() == (41, 0)  # 2025-12-01 … 2026-01-10
    set_picture(redis_client, "2026-01-12", 40)
    redis_client.zadd(keys.RESTORING, {"w1": 1100.0})
    assert await ticks.tick() == (0, 0)
    now["t"] = 1100.5  # a worker that died while restoring holds detection no longer
    assert await ticks.tick() == (2, 0)
    await client.aclose()


def in_order(events: list[dict]) -> list[dict]:
    """Arrival in event time: no event revises a day that was already published, so the
    days' history in Redis is what the backtest saw at each of its ticks."""
    return sorted(events, key=lambda e: (e["occurred_at"], e["recorded_at"], e["event_id"]))


async def test_the_ticks_raise_the_backtests_alerts_on_the_same_stream(
    redis_test_url, redis_client
):
    key = b"ops-test-key-0123456789"
    lines = synthesize(200, 11, start=dt.date(2025, 5, 1)).lines  # 14 months
    events = in_order([validate(line.encode()) for line in lines])
    pseudo = Pseudonymiser(key)
    bt = Backtest({"rise5pp": rise5pp()}, min_cell=5)
    Replay(None, on_tick=bt).feed([pseudo.event(e) for e in events])
    expected = bt.alerts["rise5pp"]
    assert len(expected) >= 5, "the stream must raise alerts for the comparison to mean much"

    client = aioredis.from_url(redis_test_url)
    ingest = demo.Ingest(redis_client, key)
    ticks = ShiftAlerts(client, Topic(), rise5pp(), 5, lambda: NOW, days_per_tick=7)
    got = []
    for i in range(0, len(events), 997):  # ticks at moments of their own
        ingest.apply(events[i : i + 997])
        got += [m["value"] for m in ticks.topic.sent]
        ticks.topic.sent.clear()
        await ticks.tick()
    await ticks.catch_up()
    got += [m["value"] for m in ticks.topic.sent]
    strip = [{k: v for k, v in a.items() if k != "raised_at"} for a in got]
    want = expected
    assert sorted(strip, key=json.dumps) == sorted(want, key=json.dumps)
    rec = await AsyncAlertStore(client).recorded()
    state, rows = rec.state, rec.rows
    assert list(rows) == bt.series.days and state == bt.states["rise5pp"]
    await client.aclose()


class Consumer:
    def __init__(self, high, pos):
        self.high, self.pos = high, pos

    def highwater(self, tp):
        if tp.partition == 9:
            raise RuntimeError("not assigned any more")
        return self.high

    async def position(self, tp):
        return self.pos


async def test_record_lag_sets_the_gauge_per_partition_and_skips_failures():
    from types import SimpleNamespace

    from prometheus_client import REGISTRY

    tps = [SimpleNamespace(topic="t-lag", partition=p) for p in (0, 9)]
    await record_lag(Consumer(120, 100), tps)
    value = REGISTRY.get_sample_value("tk_consumer_lag", {"topic": "t-lag", "partition": "0"})
    assert value == 20
    assert (
        REGISTRY.get_sample_value("tk_consumer_lag", {"topic": "t-lag", "partition": "9"}) is None
    )


def test_rocksdb_memory_is_summed_over_the_tables_partition_databases(tmp_path):
    """Real RocksDB databases (rocksdict, as Faust's store opens them) under two tables,
    and a memory-store table without any: the memtables of what was written show."""
    from types import SimpleNamespace

    import rocksdict
    from prometheus_client import REGISTRY

    def table(*names):
        dbs = {i: rocksdict.Rdict(str(tmp_path / n)) for i, n in enumerate(names)}
        return SimpleNamespace(data=SimpleNamespace(_dbs=dbs)), dbs

    (person, pdbs), (family, fdbs) = table("p0", "p1"), table("f0")
    for db in (*pdbs.values(), *fdbs.values()):
        for i in range(2000):
            db[f"k{i}".encode()] = b"x" * 200
    record_rocksdb_memory([person, family, SimpleNamespace(data={})])
    sample = REGISTRY.get_sample_value
    memtables = sample("tk_rocksdb_memory_bytes", {"kind": "memtables"})
    one = pdbs[0].property_int_value("rocksdb.cur-size-all-mem-tables")
    assert one > 2000 * 200 and memtables >= 3 * one * 0.9
    for kind in ("block_cache", "table_readers"):
        assert sample("tk_rocksdb_memory_bytes", {"kind": kind}) is not None
    for db in (*pdbs.values(), *fdbs.values()):
        db.close()


def test_quiet_logs_sets_the_libraries_levels_and_keeps_producer_warnings_down():
    quiet_logs("INFO")
    assert logging.getLogger("aiokafka").level == logging.INFO
    assert logging.getLogger("faust.transport.producer").level == logging.ERROR
    quiet_logs("WARNING")


def hold_the_loop(seconds: float) -> None:
    time.sleep(seconds)  # synchronous work on the loop's thread, as a long step would be


async def test_the_loop_watch_names_what_holds_the_loop_and_times_the_stall(caplog):
    watch = LoopWatch(threshold_s=0.3, every_s=0.05)
    task = asyncio.create_task(watch.run())
    with caplog.at_level(logging.WARNING, logger="tilannekuva.worker"):
        await asyncio.sleep(0.3)
        assert watch.stalls == []  # a loop that runs is not held
        hold_the_loop(0.8)
        await asyncio.sleep(0.3)
    task.cancel()
    (stall,) = watch.stalls
    assert 0.7 <= stall <= 1.2
    held = [r.getMessage() for r in caplog.records if "event loop is held" in r.getMessage()]
    assert len(held) == 1 and "hold_the_loop" in held[0]
    assert any("was held for" in r.getMessage() for r in caplog.records)


class Fed:
    """Faust's own consumer (not started: no broker) of ``topics``, fed as its fetch loop
    and conductor feed it (partition 0 of each)."""

    def __init__(self, app_id: str, *topics: str):
        import faust

        self.app = faust.App(app_id, broker="kafka://127.0.0.1:1")
        self.consumer = self.app.consumer
        self.app.topics._acking_topics.update(topics)

    def taken(self, topic: str, offset: int, streams: int = 1):
        """A message handed on to ``streams`` streams (0: to none, untracked)."""
        from faust.types.tuples import ConsumerMessage

        m = ConsumerMessage(topic, 0, offset, 0.0, 0, [], b"k", b"v", None)
        if streams:
            m.incref(streams)
        self.consumer.track_message(m)
        self.consumer._read_offset[m.tp] = offset
        return m

    def batch(self, topic: str, offsets: range, committed: int | None = None) -> list:
        """Messages of ``offsets`` taken, the partition committed at ``committed``."""
        ms = [self.taken(topic, o) for o in offsets]
        self.consumer._committed_offset[ms[0].tp] = committed
        return ms

    def events(self, messages: list) -> list:
        """``messages`` as the events an agent's body holds."""
        from faust.events import Event

        return [Event(self.app, b"k", b"v", {}, m) for m in messages]


def test_messages_dropped_at_the_tail_are_counted_lost_once_the_commit_stands_still():
    """Faust's own consumer (not started: no broker): the last messages handed on for a
    partition are dropped with nothing after them (session 30's drill)."""
    from faust.types import TP

    fed = Fed("t-tail", "t-tail-a")
    consumer, handed_on = fed.consumer, partial(fed.taken, "t-tail-a")
    tp = TP("t-tail-a", 0)
    consumer._committed_offset[tp] = 10  # offsets 0 … 9 done: 10 is the next to read
    consumer._read_offset[tp] = 9
    lost = LostMessages(patience=3)
    assert lost(consumer) == {}  # caught up: the last handed on is behind the commit
    ms = [handed_on(o) for o in range(10, 14)]
    assert [lost(consumer) for _ in range(4)] == [{}] * 4  # in flight: being worked on
    for m in ms[:2]:
        consumer.ack(m)
    consumer._committed_offset[tp] = 12  # acked and committed, 12 and 13 still in flight
    consumer._unacked_messages.clear()  # a recovery cleared them; the collector ran
    counts = [lost(consumer) for _ in range(3)]
    assert counts == [{}, {}, {"t-tail-a": 2}]
    assert lost.due == {tp: (12, [])}  # patient already: read again from the commit
    consumer._committed_offset[tp] = 14  # read again and committed
    assert lost(consumer) == {} and lost.due == {}
    for m in [handed_on(o) for o in range(14, 17)]:
        consumer.ack(m)  # processed, acked: waiting for Faust's next commit, not lost
    assert [lost(consumer) for _ in range(5)] == [{}] * 5 and lost.due == {}
    consumer._committed_offset[tp] = 17  # committed to the end, then sought there: a seek
    consumer._read_offset[tp] = 17  # leaves the next offset to read, where nothing is yet
    consumer.highwater = lambda tp: 17  # the end of the partition (a started consumer's)
    assert [lost(consumer) for _ in range(5)] == [{}] * 5 and lost.due == {}


async def test_a_repair_waits_while_not_steady_and_tries_a_failed_seek_again(caplog):
    """A recovery pauses partitions and clears queues on purpose: nothing is due then.
    The seek against the real broker is in
    ``test_messages_faust_lost_are_read_again_from_the_real_broker``; here a consumer
    that is not started has no fetch loop to stop, the read again fails, and the loss
    stands."""
    fed = Fed("t-heal", "t-heal-a")
    consumer, tp = fed.consumer, fed.batch("t-heal-a", range(10, 12), committed=10)[0].tp
    consumer._unacked_messages.clear()
    lost = LostMessages(patience=2, park_s=0.2)
    for _ in range(3):
        assert await lost.repair(consumer, steady=False) == {}
    assert lost.due == {} and lost.calls == {}
    with caplog.at_level(logging.ERROR, logger="tilannekuva.worker"):
        assert await lost.repair(consumer) == {}
        assert await lost.repair(consumer) == {}  # due, and the seek failed
    assert lost.due == {tp: (10, [])} and "next call" in caplog.text


def test_a_message_left_unacked_behind_a_later_ack_is_counted_lost_and_due_from_the_lowest():
    """Faust's own consumer (not started: no broker), fed as its conductor feeds it."""
    from prometheus_client import REGISTRY

    fed = Fed("t-lost", "t-lost-a", "t-lost-b")
    consumer, a, b = fed.consumer, fed.batch("t-lost-a", range(4)), fed.batch("t-lost-b", range(2))
    lost = LostMessages(patience=2)
    consumer.ack(a[0])  # in order, as an agent acks a batch: nothing is lost
    assert lost(consumer) == {}
    consumer.ack(a[2])  # a[1] was cleared from its queue; a[3] is merely in flight
    assert lost(consumer) == {"t-lost-a": 1}
    assert lost.due == {}  # once may be a rebalance's leftover, not yet collected
    assert lost(consumer) == {"t-lost-a": 1}
    assert lost.due == {a[1].tp: (1, [a[1]])}
    assert REGISTRY.get_sample_value("tk_lost_messages", {"topic": "t-lost-a"}) == 1
    # Faust commits past the message at the committed offset once the next is acked
    consumer.ack(b[1])
    consumer._committed_offset[b[0].tp] = 2
    assert lost(consumer) == {"t-lost-a": 1, "t-lost-b": 1}
    assert lost(consumer) == {"t-lost-a": 1, "t-lost-b": 1}
    assert lost.due[b[0].tp] == (0, [b[0]])  # read again from the lost one, not the commit
    consumer._unacked_messages.discard(a[1])  # read again: nothing lost
    consumer._unacked_messages.discard(b[0])
    assert lost(consumer) == {}
    assert REGISTRY.get_sample_value("tk_lost_messages", {"topic": "t-lost-a"}) == 0


def fed_consumer(app_id: str, offsets: range, committed: int | None):
    """``(fed, messages, tp)``: a :class:`Fed` that took ``offsets`` of ``{app_id}-a``."""
    fed = Fed(app_id, f"{app_id}-a")
    ms = fed.batch(f"{app_id}-a", offsets, committed)
    return fed, ms, ms[0].tp


def test_the_guard_commits_only_offsets_whose_body_finished_whatever_faust_acked():
    """Faust alone commits past the message at the committed offset once the next is
    acked, and past any message it acked that no body finished; the guard moves the
    commit over finished offsets only."""
    fed, ms, tp = fed_consumer("t-unguarded", range(10, 14), 10)
    consumer = fed.consumer
    consumer.ack(ms[1])  # 10 was lost, 11 is done
    assert consumer._new_offset(tp) == 12  # Faust: 10 is stepped over

    fed, ms, tp = fed_consumer("t-guarded", range(10, 14), 10)
    consumer = fed.consumer
    finished = Finished({tp.topic})
    CommitGuard.install(consumer, finished)
    consumer.ack(ms[1])
    finished.add(fed.events([ms[1]]))
    assert consumer._new_offset(tp) is None  # nothing to commit: 10 stands
    consumer.ack(ms[0])  # acked, as Faust acks what a failed or cancelled body took
    assert consumer._new_offset(tp) is None  # Faust's acks do not count
    finished.add(fed.events(ms[:3]))  # read again from 10 and finished
    assert consumer._new_offset(tp) == 13
    consumer._committed_offset[tp] = 13
    assert consumer._new_offset(tp) is None  # nothing finished since
    assert finished.offsets[tp] == set()  # those committed are let go

    fed, ms, tp = fed_consumer("t-gap", range(10, 14), 10)
    consumer = fed.consumer
    finished = Finished({tp.topic})
    CommitGuard.install(consumer, finished)
    consumer._gap[tp].addi(10, 11)  # Faust took offset 10 for a gap (after a seek, say)
    consumer.ack(ms[1])
    finished.add(fed.events([ms[1]]))
    assert consumer._new_offset(tp) is None  # no body finished 10: no topic here has gaps

    fed, ms, tp = fed_consumer("t-zero", range(0, 3), None)  # Faust's committed 0
    consumer = fed.consumer
    finished = Finished({tp.topic})
    CommitGuard.install(consumer, finished)
    finished.add(fed.events(ms[1:]))
    assert consumer._new_offset(tp) is None  # read as 0, which no body finished
    finished.add(fed.events(ms))  # read again from 0
    assert consumer._new_offset(tp) == 3

    fed, ms, tp = fed_consumer("t-other", range(10, 14), 10)
    consumer = fed.consumer
    CommitGuard.install(consumer, Finished({"an-agents-topic"}))
    consumer.ack(ms[0])
    assert consumer._new_offset(tp) == 11  # a topic no agent of ours takes: Faust's


def test_a_commit_follows_a_replay_not_the_marks_of_the_pass_it_redoes():
    """10 lost, 11 to 13 finished: the partition is read again from 10. The replay lays
    the older messages over states that hold the newer ones, so the commit may pass 12
    only once the replay has: a worker killed after 10 and 11 restarts from 12, and
    its replay of 12 and 13 restores what 11 set back. (Session 33's third drill
    committed the whole first pass seven seconds into the replay.)"""
    fed, ms, tp = fed_consumer("t-replay", range(10, 14), 10)
    consumer = fed.consumer
    finished = Finished({tp.topic})
    CommitGuard.install(consumer, finished)
    finished.add(fed.events(ms[1:]))  # the first pass, without 10
    assert consumer._new_offset(tp) is None
    again = fed.batch("t-replay-a", range(10, 14), 10)  # the same offsets, read again
    finished.add(fed.events(again[:2]))
    assert consumer._new_offset(tp) == 12  # not 14: 12 and 13 are still to be redone
    finished.add(fed.events(again[2:]))
    assert consumer._new_offset(tp) == 14

    fed, ms, tp = fed_consumer("t-late", range(10, 14), 10)
    consumer = fed.consumer
    finished = Finished({tp.topic})
    CommitGuard.install(consumer, finished)
    finished.add(fed.events([ms[0], ms[2], ms[3]]))  # 11 is handed on late, after 13
    finished.add(fed.events([ms[1]]))
    assert consumer._new_offset(tp) == 12  # 12 and 13 are held for a read again


def test_a_commit_held_at_an_offset_no_body_finished_is_due_to_be_read_again():
    """Faust acked offset 10 (or dropped it) and no body finished it; 11 and 12
    finished: the guard holds the commit at 10, and once it has stood there for
    ``patience`` calls, the partition is read again from 10."""
    fed, ms, tp = fed_consumer("t-held", range(10, 14), 10)
    consumer = fed.consumer
    finished = Finished({tp.topic})
    CommitGuard.install(consumer, finished)
    lost = LostMessages(patience=2, finished=finished)
    assert lost(consumer) == {}  # nothing finished: 10 and on in flight
    for m in ms[:3]:
        consumer.ack(m)
    finished.add(fed.events([ms[1], ms[2]]))  # 10 was acked, its body never ran
    assert lost(consumer) == {} and lost.due == {}  # once: a batch may be finishing
    assert lost(consumer) == {"t-held-a": 1}
    assert lost.due == {tp: (10, [])}
    finished.add(fed.events([ms[0]]))  # read again and finished
    assert lost(consumer) == {} and lost.due == {}

    fed, ms, tp = fed_consumer("t-ahead", range(0, 10), None)  # nothing committed yet
    consumer = fed.consumer
    finished = Finished({tp.topic})
    lost = LostMessages(patience=2, finished=finished)
    for m in ms:
        consumer.ack(m)
    finished.add(fed.events([m for m in ms if m.offset != 5]))
    assert [lost(consumer) for _ in range(2)] == [{}, {"t-ahead-a": 1}]
    assert lost.due == {tp: (5, [])}  # from the hole, not from Faust's commit behind it

    fed, ms, tp = fed_consumer("t-unacked", range(10, 14), 10)
    consumer = fed.consumer
    finished = Finished({tp.topic})
    CommitGuard.install(consumer, finished)
    lost = LostMessages(patience=2, finished=finished)
    for m in ms[1:]:
        consumer.ack(m)
    finished.add(fed.events(ms[1:]))  # 10 dropped unacked, 11 to 13 finished
    assert consumer._new_offset(tp) is None  # Faust's bookkeeping let go of 11 to 13
    assert [lost(consumer) for _ in range(2)] == [{}, {"t-unacked-a": 1}]
    assert lost.due == {tp: (10, [])}  # no later ack left to show it: held all the same


async def test_a_batch_whose_body_did_not_finish_is_left_unacked_and_a_finished_one_acked():
    """Faust's own events and consumer (not started), acked as take_events acks a batch:
    in a ``finally``, whatever the body did."""
    from prometheus_client import REGISTRY

    fed = Fed("t-kept", "t-kept-a")
    consumer = fed.consumer

    def batch(offsets):
        return fed.events(fed.batch("t-kept-a", offsets))

    before = REGISTRY.get_sample_value("tk_batches_left_unacked_total", {"agent": "t"}) or 0
    failed, done = batch(range(0, 3)), batch(range(3, 5))
    finished = Finished({"t-kept-a"})
    for events, fail in ((failed, True), (done, False)):
        try:
            async with KeptUnacked("t", events, finished):
                if fail:
                    raise asyncio.CancelledError()  # as Faust cancels an agent
        except asyncio.CancelledError:
            pass
        finally:
            for event in events:
                event.ack()  # take_events' finally
    tp = failed[0].message.tp
    assert sorted(consumer._acked[tp]) == [3, 4]  # the failed batch stays unacked
    assert finished.offsets == {tp: {3, 4}}  # and only the finished one may be committed
    assert not any(e.message.acked for e in failed)
    assert REGISTRY.get_sample_value("tk_batches_left_unacked_total", {"agent": "t"}) == before + 1
    assert LostMessages(patience=1)(consumer) == {"t-kept-a": 3}  # behind a later ack


def test_a_batch_whose_body_failed_is_read_again_from_the_real_broker(
    kafka_bootstrap, kafka_admin, kafka_topic_factory, tmp_path
):
    """An agent over ``take_events`` whose body raises once, at offset 5 (its batch half
    done): Faust acks the batch all the same, and alone never processes what was left of
    it (fails with ``T_KEEP=0 T_GUARD=0``; with the guard alone the commit stands at 0,
    no body having finished); kept unacked, it is read again and all is processed."""
    n = 30
    topic = kafka_topic_factory("lossy-fail")
    send(kafka_bootstrap, topic, range(n))
    app = Lossy(kafka_bootstrap, topic, n, tmp_path, T_MODE="fail")
    processed, text = app.committed_to_the_end(kafka_admin)
    assert set(processed) == set(range(n))
    assert "left unacked" in text


def test_a_message_faust_acked_that_no_body_finished_is_read_again_from_the_real_broker(
    kafka_bootstrap, kafka_admin, kafka_topic_factory, tmp_path
):
    """The message at offset 5 acked once and never processed (``T_MODE=acked``), as
    Faust acks what a body did not finish: Faust alone commits past it and it is never
    processed (fails with ``T_GUARD=0``); guarded, the commit stands at 5 until the
    partition is read again, and all is processed."""
    n = 30
    topic = kafka_topic_factory("lossy-acked")
    send(kafka_bootstrap, topic, range(n))
    app = Lossy(kafka_bootstrap, topic, n, tmp_path, T_MODE="acked")
    processed, text = app.committed_to_the_end(kafka_admin)
    assert set(processed) == set(range(n)) and processed.count(5) == 1
    assert "reading the partition again from offset 5" in text


def test_a_partition_is_read_again_once_while_faust_waits_inside_a_fetched_batch(
    kafka_bootstrap, kafka_admin, kafka_topic_factory, tmp_path
):
    """Offset 5 acked and never processed while Faust's fetch loop waits inside a large
    fetched batch (a slow body, a small stream buffer: a backlog). A plain seek lets the
    rest of that batch move Faust's read offset past what it fetches again, which it
    then drops: the hole stays, and the partition is read again and again until the
    backlog is gone (fails with ``T_PLAIN=1``). With the fetch loop stopped first, one
    read again fills it."""
    n = 1500
    topic = kafka_topic_factory("lossy-slow")
    send(kafka_bootstrap, topic, range(n))
    app = Lossy(kafka_bootstrap, topic, n, tmp_path, T_MODE="slow")
    processed, text = app.committed_to_the_end(kafka_admin, 120)
    assert set(processed) == set(range(n))
    assert text.count("reading the partition again") == 1


def test_the_commit_follows_a_replay_on_the_real_broker(
    kafka_bootstrap, kafka_admin, kafka_topic_factory, tmp_path
):
    """Offset 5 acked and never processed under a backlog: the partition is read again
    from 5 while the first pass had finished hundreds after it. The replay redoes them
    (a family's member tails are last-writer-wins: older messages laid again over newer
    states set them back until the newer come again), so the commit may pass an offset
    only once the replay has: a worker killed during it restarts where the replay was.
    Faust commits every 0.1 s here. With the first pass's marks kept (the code before
    session 34) the commit jumped to the first pass's end once 5 was done."""
    n = 1500
    topic = kafka_topic_factory("lossy-replay")
    send(kafka_bootstrap, topic, range(n))
    app = Lossy(kafka_bootstrap, topic, n, tmp_path, T_MODE="slow", T_COMMIT_S="0.1")
    ahead, replay = [], []

    def follows() -> bool:
        committed = committed_offset(kafka_admin, app.app_id, topic)
        seen = app.processed()  # read after the commit: the replay only got further
        if 5 in seen and committed is not None:
            replay[:] = seen[seen.index(5) :]  # 5 is processed once: the replay's first
            if committed > max(replay) + 1:
                ahead.append((committed, max(replay)))
        return committed == n

    app.start()
    try:
        app.wait(follows, 120)
    finally:
        app.stop()
    assert replay[:3] == [5, 6, 7] and len(replay) > n - 100  # read again from 5, to the end
    assert not ahead, f"commits ahead of the replay (commit, replay's last): {ahead[:5]}"


def test_offsets_deleted_by_retention_before_a_body_took_them_are_passed_by_the_commit(
    kafka_bootstrap, kafka_admin, kafka_topic_factory, tmp_path
):
    """A group that starts on a topic whose first records were deleted (retention, or
    a worker down for longer than it) has nothing committed and reads from the first
    kept offset: the guard would hold the commit at 0 for ever; the repair asks the
    real broker for the first kept offset and the commit goes on from there."""
    from kafka.structs import TopicPartition

    n, deleted = 20, 8
    topic = kafka_topic_factory("lossy-retention")
    send(kafka_bootstrap, topic, range(n))
    kafka_admin.delete_records({TopicPartition(topic, 0): deleted})
    app = Lossy(kafka_bootstrap, topic, n, tmp_path, T_MODE="none")
    processed, text = app.committed_to_the_end(kafka_admin)
    assert processed == list(range(deleted, n))
    assert f"offsets 0 to {deleted - 1} were deleted by retention" in text


def committed_offset(admin, group: str, topic: str) -> int | None:
    """The group's committed offset of the topic's partition 0; None before the group
    has one (or a coordinator)."""
    from kafka.errors import KafkaError
    from kafka.structs import TopicPartition

    try:
        offsets = admin.list_group_offsets({group: None})[group]
    except KafkaError:  # the group's coordinator not found yet: nothing committed
        return None
    meta = offsets.get(TopicPartition(topic, 0))
    return meta.offset if meta is not None else None


class Lossy:
    """tests/streams/lossy_app.py in a process of its own, against the real broker."""

    def __init__(self, kafka_bootstrap: str, topic: str, n: int, tmp_path, **env: str):
        import uuid

        self.app_id = f"tktest-lossy-{uuid.uuid4().hex[:8]}"
        self.n = n
        self.out = tmp_path / "processed"
        self.log_path = tmp_path / "app.log"
        self.topic = topic
        self.env = {
            **os.environ,
            "KAFKA_BOOTSTRAP": kafka_bootstrap,
            "T_APP": self.app_id,
            "T_TOPIC": topic,
            "T_N": str(n),
            "T_OUT": str(self.out),
            "T_DATA": str(tmp_path / "data"),
            **env,
        }
        self.proc = None

    def start(self, **env: str) -> None:
        import subprocess
        import sys

        from tests.streams.harness import ROOT

        with open(self.log_path, "a") as log_file:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.streams.lossy_app", "worker", "-l", "info"],
                cwd=ROOT,
                env={**self.env, **env},
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(30)

    def processed(self) -> list[int]:
        return [int(x) for x in self.out.read_text().split()] if self.out.exists() else []

    def committed_to_the_end(self, admin, seconds: float = 90) -> tuple[list[int], str]:
        """Start it, wait until the group has committed the whole partition, stop it;
        the messages it processed and its log."""
        self.start()
        try:
            self.wait(lambda: committed_offset(admin, self.app_id, self.topic) == self.n, seconds)
            return self.processed(), self.log_path.read_text()
        finally:
            self.stop()

    def wait(self, what, seconds: float = 90) -> None:
        """Until ``what()`` is true, the app running all the while."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not what():
            assert self.proc.poll() is None, self.log_path.read_text()[-3000:]
            time.sleep(0.5)
        assert what(), (self.processed(), self.log_path.read_text()[-3000:])


def send(kafka_bootstrap: str, topic: str, values: range) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    for i in values:
        producer.send(topic, key=b"k", value=str(i).encode())
    producer.flush()
    producer.close()


def test_messages_faust_lost_are_read_again_from_the_real_broker(
    kafka_bootstrap, kafka_admin, kafka_topic_factory, tmp_path
):
    """faust#596 made to happen (tests/streams/lossy_app.py): the agents' queues cleared
    after Faust handed the messages on. The repair seeks the real consumer back; every
    message is processed and the group's commit reaches the end of the partition."""
    n = 40
    topic = kafka_topic_factory("lossy")
    send(kafka_bootstrap, topic, range(n))
    app = Lossy(kafka_bootstrap, topic, n, tmp_path)
    processed, text = app.committed_to_the_end(kafka_admin)
    assert processed[0] == 0 and set(processed) == set(range(n))
    assert processed[1:] == list(range(1, n))  # lost once, then read again in order
    assert "reading the partition again from offset 1" in text


def test_a_message_lost_at_the_committed_offset_is_not_committed_past_and_a_restart_reads_it(
    kafka_bootstrap, kafka_admin, kafka_topic_factory, tmp_path
):
    """The loss of session 32's drill through the real broker: one message lost at the
    committed offset, those after it done. Without the repair (``T_REPAIR=0``), the
    guarded commit stands at the lost message (Faust's own went past it: fails with
    ``T_GUARD=0``), and the next start of the app reads it."""
    n, more = 10, 10
    topic = kafka_topic_factory("lossy-head")
    send(kafka_bootstrap, topic, range(n))
    app = Lossy(kafka_bootstrap, topic, n, tmp_path, T_REPAIR="0")
    app.start(T_MODE="head")
    try:
        app.wait(lambda: app.out.with_name("processed.cleared").exists())
        send(kafka_bootstrap, topic, range(n, n + more))
        app.wait(lambda: (n + more - 1) in app.processed())
        time.sleep(8)  # Faust commits every 2.8 s
        assert committed_offset(kafka_admin, app.app_id, topic) == n - 1
    finally:
        app.stop()
    assert (n - 1) not in app.processed()
    assert committed_offset(kafka_admin, app.app_id, topic) == n - 1  # also at its stop
    app.start(T_MODE="none")
    try:
        app.wait(lambda: committed_offset(kafka_admin, app.app_id, topic) == n + more)
    finally:
        app.stop()
    processed = app.processed()
    assert processed[: n - 1] == list(range(n - 1)) and (n - 1) in processed
    assert set(processed) == set(range(n + more))
