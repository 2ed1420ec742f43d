"""Restore against a real Redis: what a FLUSHALL or an older Redis lost comes back,
and nothing is rewritten while Redis keeps what it answered."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from models import picture
from sinks import keys, redis_reader
from sinks.redis_sink import AsyncRedisSink, Written
from streams.families import FamilyWriter, ModelFollower
from streams.restore import Restore
from tests.streams.fakes import HeldBack
from tests.streams.test_families import PARTS, Store, Vectors, all_of

pytestmark = pytest.mark.integration


class Span:
    def __init__(self, first: str, last: str, live: str | None = None):
        self.first, self.last, self.went_live = first, last, live

    def span(self, partitions):
        return (self.first, self.last) if list(partitions) else None

    def live(self, partitions):
        return self.went_live if list(partitions) else None


def first_day(history) -> str:
    diff = history.history.diff
    return dt.date.fromordinal(
        min(d for f in diff.values() for ds in f.values() for d in ds)
    ).isoformat()


def picture_and_history(client, history) -> tuple[dict, dict]:
    w = picture.day(history.watermark)
    scopes = sorted(history.history.scopes())
    days = list(range(w - 400, w + 1, 7)) + [w]
    got = redis_reader.read_history(client, scopes, days)
    return (
        {k: v for k, v in redis_reader.read_picture(client)["all"].items() if v},
        {on: {s: c for s in scopes if (c := got[s][on])} for on in days},
    )


async def worker_parts(history, aredis):
    written = Written()
    sink = await AsyncRedisSink(aredis, now=lambda: "2030-01-01T00:00:00Z", written=written).setup()
    sink.raise_watermark(history.watermark)
    await sink.flush()
    writer = FamilyWriter(history.families, ModelFollower(Store()), Vectors(), PARTS, False)
    days = Span(first_day(history), history.watermark, live=history.watermark)
    return written, sink, writer, Restore(writer, sink, days, written)


async def known_whole(sink) -> None:
    """What a worker's first tick leaves in an empty Redis, its table empty: a token, and
    every partition known whole at it."""
    await sink.whole(list(range(PARTS)), await sink.epoch(new="first"))


async def all_written(history, aredis, redis_client):
    """``(worker_parts(...), {family: partition}, what Redis shows)`` after a worker
    wrote every family, present and whole history."""
    parts = await worker_parts(history, aredis)
    _, sink, writer, _ = parts
    await known_whole(sink)
    families = all_of(history)
    await writer.apply(sink, families, since=dict.fromkeys(families, 0))
    return parts, families, picture_and_history(redis_client, history)


async def test_a_flushed_redis_gets_w_the_picture_and_the_history_back(
    history, aredis, redis_client
):
    (written, sink, writer, restore), families, want = await all_written(
        history, aredis, redis_client
    )
    assert await restore(range(PARTS)) == []
    redis_client.flushdb()  # the worker's db only: other tests run beside this one
    lost = await restore(range(PARTS))
    assert lost == sorted(set(families.values()))
    assert redis_client.get(keys.WATERMARK).decode() == history.watermark
    assert redis_client.get(keys.LIVE_FROM).decode() == history.watermark  # alerts start there
    assert picture_and_history(redis_client, history) == want
    assert await restore(range(PARTS)) == []  # healed: compared from the new counts on


async def test_a_restore_says_so_in_redis_from_finding_w_gone_until_its_families_are_back(
    history, aredis, redis_client
):
    """Shift detection waits meanwhile (sinks.keys.RESTORING): the history is partial."""
    _, sink, writer, restore = await worker_parts(history, aredis)
    families = all_of(history)
    await writer.apply(sink, families, since=dict.fromkeys(families, 0))
    restore.who, restore.clock = "w1", lambda: 1000.0
    seen = []
    rewrite = writer.rewrite

    async def watched(*args, **kwargs):
        seen.append(redis_client.zrange(keys.RESTORING, 0, -1, withscores=True))
        return await rewrite(*args, **kwargs)

    writer.rewrite = watched  # type: ignore[method-assign]
    flush, marked_at_flush = sink.flush, []

    async def flushed():
        if redis_client.get(keys.WATERMARK) is None:  # the flush that puts W back
            marked_at_flush.append(redis_client.zcard(keys.RESTORING))
        return await flush()

    sink.flush = flushed  # type: ignore[method-assign]
    redis_client.flushdb()
    lost = await restore(range(PARTS))
    assert marked_at_flush == [1]  # said before W is back, when a tick could start
    assert lost and len(seen) == len(lost)
    assert all(s == [(b"w1", 1000.0 + restore.hold_s)] for s in seen)
    assert redis_client.zcard(keys.RESTORING) == 0  # done: detection goes on
    assert await restore(range(PARTS)) == [] and len(seen) == len(lost)
    assert redis_client.zcard(keys.RESTORING) == 0


async def went_back_a_batch(history, redis_client, sink, writer):
    """Everything written, then Redis put back to its copy from before the last batch,
    which wrote one counted family alone: ``(families but that one, its partition,
    the picture and history as written)``."""
    await known_whole(sink)
    families = all_of(history)
    fam = next(f for f in sorted(families) if history.contributions.get(f))
    p = families.pop(fam)
    await writer.apply(sink, families, since=dict.fromkeys(families, 0))
    older = {k: redis_client.dump(k) for k in redis_client.scan_iter("*")}
    await writer.apply(sink, {fam: p}, since={fam: 0})
    want = picture_and_history(redis_client, history)
    redis_client.flushdb()
    for k, v in older.items():
        redis_client.restore(k, 0, v)
    return families, p, want


async def test_a_partition_that_went_back_is_rewritten_alone(history, aredis, redis_client):
    """Redis comes back from an older copy (a snapshot, an AOF that had not synced the
    last second): one batch of one partition is missing."""
    _, sink, writer, restore = await worker_parts(history, aredis)
    _, p, want = await went_back_a_batch(history, redis_client, sink, writer)
    assert picture_and_history(redis_client, history) != want
    assert await restore(range(PARTS)) == [p]
    assert picture_and_history(redis_client, history) == want


async def test_a_partition_that_went_back_and_counted_up_again_is_rewritten(
    history, aredis, redis_client
):
    """Redis comes back a batch short and the same partition's next batch counts it up
    to the highest count answered before: the repeated answer gives the loss away."""
    written, sink, writer, restore = await worker_parts(history, aredis)
    families, p, want = await went_back_a_batch(history, redis_client, sink, writer)
    other = next(f for f, q in families.items() if q == p)
    await writer.apply(sink, {other: p})  # counted up again: the count reads as before
    assert int(redis_client.hget(keys.WRITTEN, p)) == written.counts[p]
    assert await restore(range(PARTS)) == [p]
    assert picture_and_history(redis_client, history) == want
    assert await restore(range(PARTS)) == []


async def test_a_repeated_answer_waits_for_the_tick_that_looks_at_its_partition(
    history, aredis, redis_client
):
    """The agent's check before writing a partition first seen (a start, a rebalance)
    looks at that partition alone: another's repeated answer, its only sign of a loss
    once its count reads as before, is left for a tick over it, not taken and dropped."""
    written, sink, writer, restore = await worker_parts(history, aredis)
    families, p, want = await went_back_a_batch(history, redis_client, sink, writer)
    other = next(f for f, q in families.items() if q == p)
    await writer.apply(sink, {other: p})  # counted up again: the count reads as before
    assert int(redis_client.hget(keys.WRITTEN, p)) == written.counts[p]
    back = next(q for q in sorted(set(families.values())) if q != p)
    assert await restore.before_writing({f: q for f, q in families.items() if q == back}) == []
    assert await restore(range(PARTS)) == [p]
    assert picture_and_history(redis_client, history) == want


async def test_a_tick_cut_short_before_the_rewrite_leaves_the_loss_for_the_next(
    history, aredis, redis_client
):
    """Redis went away again in the middle of the tick that saw a partition's repeated
    answer: the next tick still sees it."""
    written, sink, writer, restore = await worker_parts(history, aredis)
    families, p, want = await went_back_a_batch(history, redis_client, sink, writer)
    other = next(f for f, q in families.items() if q == p)
    await writer.apply(sink, {other: p})  # counted up again: the count reads as before

    async def unreachable(partitions):
        raise ConnectionError("Redis went away")

    sink.rewriting = unreachable  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        await restore(range(PARTS))
    del sink.rewriting
    assert await restore(range(PARTS)) == [p]
    assert picture_and_history(redis_client, history) == want
    assert await restore(range(PARTS)) == []


async def test_an_emptied_redis_is_known_by_its_lost_tokens_whatever_the_counts_say(
    history, aredis, redis_client
):
    """Redis emptied, and its counts back at their old height by writes this worker was
    not told of (another worker's, a connection's answer lost): neither a lower count
    nor a repeated answer shows the loss; the partitions no longer known whole do, also
    to the tick after one cut short."""
    (written, sink, writer, restore), families, want = await all_written(
        history, aredis, redis_client
    )
    assert await restore(range(PARTS)) == []  # reads the token
    token = redis_client.get(keys.EPOCH)
    assert token and await restore(range(PARTS)) == [] and redis_client.get(keys.EPOCH) == token
    redis_client.flushdb()  # the worker's db only: other tests run beside this one
    redis_client.hset(keys.WRITTEN, mapping=written.counts)

    async def unreachable(partitions):
        raise ConnectionError("Redis went away")

    sink.rewriting = unreachable  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):  # cut short before the rewrites were marked
        await restore(range(PARTS))
    del sink.rewriting
    assert await restore(range(PARTS)) == sorted(set(families.values()))
    assert picture_and_history(redis_client, history) == want
    assert await restore(range(PARTS)) == []


async def test_a_partition_taken_over_after_a_flush_is_written_again(history, aredis, redis_client):
    """Redis emptied; the worker holding a partition writes a batch of it and dies
    before its restore tick (its count reads 1, no mark); the worker that takes the
    partition over, which had already seen the emptied Redis and written its own
    partitions again, finds the partition not known whole since, and writes it again."""
    (_, sink, writer, restore), families, want = await all_written(history, aredis, redis_client)
    assert await restore(range(PARTS)) == []
    redis_client.flushdb()  # the worker's db only: other tests run beside this one
    p = max(families.values())
    fam = next(f for f, q in sorted(families.items()) if q == p)
    _, other_sink, other_writer, _ = await worker_parts(history, aredis)  # W raised again
    await other_writer.apply(other_sink, {fam: p}, since={fam: 0})  # then it died
    mine = sorted({q for q in families.values() if q != p})
    assert await restore(mine) == mine
    assert await restore(range(PARTS)) == [p]  # taken over
    assert picture_and_history(redis_client, history) == want
    assert await restore(range(PARTS)) == []


async def test_a_redis_emptied_during_a_tick_is_not_taken_as_written_again(
    history, aredis, redis_client
):
    """Redis killed while a tick waits on it and back empty, after the tick's check of
    W: every partition reads as lost, and the rewrites find no W and write nothing. They
    are not counted as done (CI on d9977b4, the Redis-kill test: four partitions "written
    again" in 5 ms, and most of the history stayed lost); the next tick writes them."""
    (written, sink, writer, restore), families, want = await all_written(
        history, aredis, redis_client
    )
    assert await restore(range(PARTS)) == []
    epoch = sink.epoch

    async def emptied_first(new):
        redis_client.flushdb()  # the worker's db only: other tests run beside this one
        return await epoch(new)

    sink.epoch = emptied_first  # type: ignore[method-assign]
    assert await restore(range(PARTS)) == sorted(set(families.values()))
    del sink.epoch
    assert not redis_client.hgetall(keys.WHOLE)  # nothing taken as written
    assert sorted(await restore(range(PARTS))) == sorted(set(families.values()))
    assert picture_and_history(redis_client, history) == want
    assert await restore(range(PARTS)) == []


async def test_a_restarted_worker_trusts_what_redis_counts_and_rewrites_what_it_does_not(
    history, aredis, redis_client
):
    (_, sink, writer, _), families, want = await all_written(history, aredis, redis_client)
    _, _, _, restarted = await worker_parts(history, aredis)  # knows no counts yet
    assert await restarted(range(PARTS)) == []
    redis_client.flushdb()  # emptied while the worker was down (its db: tests run side by side)
    _, _, _, restarted = await worker_parts(history, aredis)
    assert await restarted(range(PARTS)) == sorted(set(families.values()))
    assert picture_and_history(redis_client, history) == want


async def test_a_rewrite_cut_short_is_done_by_the_next_worker(history, aredis, redis_client):
    """Redis emptied, and the worker killed while it wrote the families again: the
    agent's writes after it count every partition up, so the counts no longer show the
    loss; the mark Redis keeps until a partition's rewrite is done does. (Session 34's
    seed-4 drill: a SIGKILL 25 s after a FLUSHALL, and 789 to 970 cells of history a day
    off, the present exact.)"""
    (_, sink, writer, _), families, want = await all_written(history, aredis, redis_client)
    redis_client.flushdb()  # the worker's db only: other tests run beside this one
    _, sink, writer, restore = await worker_parts(history, aredis)
    parts = sorted(set(families.values()))

    async def killed(*args, **kwargs):
        raise asyncio.CancelledError()

    rewrite, writer.rewrite = writer.rewrite, killed
    with pytest.raises(asyncio.CancelledError):
        await restore(range(PARTS))
    writer.rewrite = rewrite
    for p in parts:  # the next worker's agent writes a family of each partition first
        fam = next(f for f, q in sorted(families.items()) if q == p)
        await writer.apply(sink, {fam: p}, since={fam: 0})
    _, _, _, restarted = await worker_parts(history, aredis)
    assert await restarted(range(PARTS)) == parts
    assert picture_and_history(redis_client, history) == want
    assert not redis_client.exists(keys.REWRITING)  # done: no mark left
    assert await restarted(range(PARTS)) == []


async def test_a_restarted_worker_checks_a_partition_before_its_first_write(
    history, aredis, redis_client
):
    """Redis emptied while the worker was down: had the agent written first, the
    partition's count would read 1 and look whole."""
    (_, sink, writer, _), families, want = await all_written(history, aredis, redis_client)
    redis_client.flushdb()  # the worker's db only: other tests run beside this one
    _, sink, writer, restarted = await worker_parts(history, aredis)
    fam, p = next(iter(sorted(families.items())))
    assert await restarted.before_writing({fam: p}) == [p]
    await writer.apply(sink, {fam: p}, since={fam: 0})  # the agent's first batch
    assert await restarted.before_writing({fam: p}) == []  # looked at once
    lost = await restarted(range(PARTS))
    assert p not in lost and sorted(lost + [p]) == sorted(set(families.values()))
    assert picture_and_history(redis_client, history) == want


async def test_the_tick_and_the_agent_rewrite_a_lost_partition_once(history, aredis, redis_client):
    """The restore timer and the agent's check before its first write run side by side
    (session 39: a worker on an emptied Redis wrote two partitions' families twice, the
    agent's check seeing the timer's marks of rewrites not yet done as left undone)."""
    (_, sink, writer, _), families, want = await all_written(history, aredis, redis_client)
    redis_client.flushdb()  # the worker's db only: other tests run beside this one
    _, sink, writer, restarted = await worker_parts(history, aredis)
    rewritten: list[int] = []
    rewrite = writer.rewrite

    async def counted(sink_, fams, since=None):
        rewritten.extend(sorted(set(fams.values())))
        return await rewrite(sink_, fams, since=since)

    writer.rewrite = counted  # type: ignore[method-assign]
    parts = sorted(set(families.values()))
    last = {f: q for f, q in families.items() if q == parts[-1]}
    tick, agent = await asyncio.gather(restarted(range(PARTS)), restarted.before_writing(last))
    assert sorted(tick + agent) == parts and sorted(rewritten) == parts
    assert picture_and_history(redis_client, history) == want


async def test_a_first_start_is_not_a_loss(history, aredis, redis_client):
    """An empty Redis and a table that holds only the families the agent is about to
    write: nothing was lost, nothing is rewritten."""
    _, sink, writer, restore = await worker_parts(history, aredis)
    families = all_of(history)
    p = next(iter(families.values()))
    first = {f: q for f, q in families.items() if q == p}
    writer.table = {f: history.families[f] for f in first}
    assert await restore.before_writing(first) == []
    assert redis_client.hget(keys.WRITTEN, p) is None  # nothing was written by the check


async def test_nothing_counts_as_rewritten_before_w_is_known(history, aredis, redis_client):
    """Redis emptied and no day known yet to raise W from: the tick waits, and the
    next one, with W back, writes everything."""

    class NoDays:
        def span(self, partitions):
            return None

        def live(self, partitions):
            return None

    (_, sink, writer, _), families, want = await all_written(history, aredis, redis_client)
    redis_client.flushdb()  # the worker's db only: other tests run beside this one
    restore = Restore(writer, sink, NoDays(), Written())
    assert await restore(range(PARTS)) == []
    redis_client.mset({keys.WATERMARK: history.watermark, keys.FIRST_DAY: first_day(history)})
    assert await restore(range(PARTS)) == sorted(set(families.values()))
    assert picture_and_history(redis_client, history) == want


def test_revoked_partitions_are_looked_at_again_when_they_come_back(history):
    writer = FamilyWriter(history.families, ModelFollower(Store()), Vectors(), PARTS, False)
    restore = Restore(writer, None, Span("2024-01-01", "2024-06-30"), Written())
    restore.checked = {0, 1, 2, 3}
    restore.forget({1, 3})
    assert restore.checked == {0, 2}


async def test_a_new_family_written_just_before_a_flush_is_in_the_rewrite(
    history, aredis, redis_client
):
    """The agent's write of a family new to the table lands, Redis is emptied, and its
    state is not stored yet (stored only once Redis has it: FamilyWriter.apply): the
    restore waits for the write, and writes the family again."""
    (written, sink, writer, restore), families, want = await all_written(
        history, aredis, redis_client
    )
    assert await restore(range(PARTS)) == []
    new = sorted(history.contributions)[0]  # counted: Redis holds its contribution
    writer.table = table = {f: s for f, s in history.families.items() if f != new}
    held = HeldBack(table, {new: history.families[new]})
    part = families[new]
    answered = written.counts[part]
    writing = asyncio.ensure_future(writer.apply(sink, {new: part}, since={new: 0}, unstored=held))
    for _ in range(500):
        if written.counts[part] > answered:
            break  # in Redis, its state not stored
        await asyncio.sleep(0.01)
    assert written.counts[part] > answered, "the write never reached Redis: nothing to lose"
    assert not writing.done()  # its store still held back
    redis_client.flushdb()
    tick = asyncio.ensure_future(restore(range(PARTS)))
    await asyncio.sleep(0.1)
    held.release.set()
    await writing
    assert await tick == sorted(set(families.values()))
    assert picture_and_history(redis_client, history) == want
