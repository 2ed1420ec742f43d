"""FamilyWriter, ModelFollower and Sweep against a real Redis (no broker)."""

import asyncio
import datetime as dt
import json

import pytest
from prometheus_client import REGISTRY

from models import picture
from models.contract import type_id_of
from models.family_types import FamilyTypes, TypeAssigner
from models.features import state_vector
from sinks import keys, redis_reader
from sinks.model_store import AsyncModelStore
from sinks.redis_sink import AsyncRedisSink
from streams.families import FamilyWriter, ModelFollower, Sweep, TimedAdoption
from streams.transport import partition_of
from tests.streams.fakes import HeldBack

PARTS = 4


class Store:
    def __init__(self):
        self.version, self.snap = None, None

    async def load_if_newer(self, known):
        return None if self.version in (None, known) else (self.version, self.snap)


class Vectors:
    def __init__(self):
        self.sent: list[tuple[list, str]] = []

    async def send_items(self, stage, partition, items, field="items"):
        assert (stage, partition) == ("learner", 0)
        self.sent.append((items, field))


def snapshot_of(states: dict) -> dict:
    model = FamilyTypes(n_types=3, warmup=10**6)
    fams = sorted(f for f, s in states.items() if state_vector(s) is not None)
    model.learn_many([state_vector(states[f]) for f in fams], keys=fams)
    model.initialise_now()
    return model.snapshot()


async def sink_at(aredis, watermark: str) -> AsyncRedisSink:
    sink = await AsyncRedisSink(aredis, now=lambda: "2030-01-01T00:00:00Z").setup()
    sink.raise_watermark(watermark)
    await sink.flush()
    return sink


def all_of(pipe) -> dict[str, int]:
    return {f: partition_of(f, PARTS) for f in pipe.families}


async def test_apply_writes_the_contributions_at_w_and_sends_counted_vectors(
    history, aredis, redis_client
):
    sink = await sink_at(aredis, history.watermark)
    vectors = Vectors()
    writer = FamilyWriter(history.families, ModelFollower(Store()), vectors, PARTS, True)
    await writer.apply(sink, all_of(history), learn=True)
    expected = picture.Pipeline()
    expected.contributions = dict(history.contributions)
    agg = expected.aggregates()
    pic = redis_reader.read_picture(redis_client)
    assert {k: v for k, v in pic["all"].items() if v} == agg["all"]
    (items, field), *rest = vectors.sent
    assert rest == [] and field == "items"
    assert {f for f, _ in items} == set(history.contributions)
    assert all(v == state_vector(history.families[f]) for f, v in items)
    # A family that stops being counted (its children grown up by a far W) is forgotten
    # by the learner, once.
    gone = sorted(history.contributions)[0]
    sink.raise_watermark("2070-01-01")
    await sink.flush()
    await writer.apply(sink, {gone: partition_of(gone, PARTS)}, learn=True)
    assert vectors.sent[-1] == ([[gone, None]], "items")
    assert redis_reader.read_picture(redis_client)["all"]["families"] == agg["all"]["families"] - 1


async def test_apply_leaves_a_family_it_cannot_read_as_it_is(history, aredis, redis_client):
    """No state: its partition was revoked meanwhile (RocksDB closed its database) or is
    still recovering; writing it as not counted would delete another worker's family."""
    sink = await sink_at(aredis, history.watermark)
    writer = FamilyWriter(history.families, ModelFollower(Store()), Vectors(), PARTS, False)
    await writer.apply(sink, all_of(history))
    before = redis_reader.read_picture(redis_client)
    fam = sorted(history.contributions)[0]
    writer.table = {f: s for f, s in history.families.items() if f != fam}
    await writer.apply(sink, {fam: partition_of(fam, PARTS)})
    assert redis_reader.read_picture(redis_client) == before
    assert redis_client.exists(keys.family(fam))


async def test_apply_stores_new_states_only_once_redis_has_them(history, aredis, redis_client):
    """A crash before the store leaves the table behind Redis, so the replay writes again."""
    sink = await sink_at(aredis, history.watermark)
    fam = sorted(history.contributions)[0]
    table = {f: s for f, s in history.families.items() if f != fam}
    in_redis_at_commit = []

    class Unstored:
        states = {fam: history.families[fam]}

        async def commit(self):
            in_redis_at_commit.append(bool(redis_client.exists(keys.family(fam))))
            table.update(self.states)

    writer = FamilyWriter(table, ModelFollower(Store()), Vectors(), PARTS, False)
    await writer.apply(sink, {fam: partition_of(fam, PARTS)}, unstored=Unstored())
    assert in_redis_at_commit == [True]
    assert table[fam] is history.families[fam]
    assert redis_reader.read_picture(redis_client)["all"]["families"] == 1


async def test_adopt_rewrites_families_once_per_snapshot_version(history, aredis, redis_client):
    sink = await sink_at(aredis, history.watermark)
    store = Store()
    follower = ModelFollower(store)
    writer = FamilyWriter(history.families, follower, Vectors(), PARTS, True)
    await writer.apply(sink, all_of(history))
    assert "g1" not in redis_reader.read_picture(redis_client)["all"]  # no model yet
    store.version, store.snap = "1.1", snapshot_of(history.families)
    assert await follower.load() and not await follower.load()
    everything = set(range(PARTS))
    # counted families move from no group to their group; uncounted ones stay as they are
    assert await writer.adopt(sink, everything) == len(history.contributions)
    assert await writer.adopt(sink, everything) == 0  # the same version again
    assert REGISTRY.get_sample_value("tk_model_adopted_info", {"version": "1.1"}) == 1
    pic = redis_reader.read_picture(redis_client)
    groups = sum(pic["all"].get(f"g{i}", 0) for i in range(1, 11))
    assert groups == pic["all"]["families"] == len(history.contributions)
    assigner = TypeAssigner.from_snapshot(store.snap)
    fam = sorted(history.contributions)[0]
    _, grp = assigner.assign_many([state_vector(history.families[fam])])
    assert writer.groups_now[fam] == int(grp[0])


async def test_a_restarted_writer_rewrites_only_what_redis_does_not_hold_as_it_would(
    history, aredis, redis_client
):
    """Its first adoption reads the group and type each family was written with: over a
    Redis that holds them all, the same snapshot rewrites no counted family."""
    sink = await sink_at(aredis, history.watermark)
    store = Store()
    store.version, store.snap = "1.1", snapshot_of(history.families)
    follower = ModelFollower(store)
    await follower.load()
    everything = set(range(PARTS))
    first = FamilyWriter(history.families, follower, Vectors(), PARTS, True)
    assert await first.adopt(sink, everything) == len(history.families)
    before = {k: redis_client.dump(k) for k in redis_client.scan_iter(keys.PATTERN)}
    again = FamilyWriter(history.families, follower, Vectors(), PARTS, True)  # a restart
    uncounted = len(history.families) - len(history.contributions)
    assert await again.adopt(sink, everything) == uncounted  # not in Redis: written as None
    assert again.groups_now == first.groups_now and again.types_now == first.types_now
    assert again.history_groups == {f: g for f, g in first.history_groups.items() if g}
    after = {k: redis_client.dump(k) for k in redis_client.scan_iter(keys.PATTERN)}
    assert after.keys() == before.keys()
    # Nothing changed but the count of transactions (the uncounted families' no-ops).
    assert [k for k, v in before.items() if after[k] != v] == [keys.WRITTEN.encode()]


async def test_each_adoption_of_a_new_snapshot_is_timed_into_redis_for_the_learner(
    history, aredis, redis_client
):
    sink = await sink_at(aredis, history.watermark)
    store = Store()
    follower = ModelFollower(store)
    writer = FamilyWriter(history.families, follower, Vectors(), PARTS, True)
    ticks = iter([10.0, 20.0, 22.5, 30.0])
    log = AsyncModelStore(aredis)
    adopt = TimedAdoption(writer, log, "w1", clock=lambda: next(ticks), now=lambda: 5000.0)
    everything = set(range(PARTS))
    assert await adopt(sink, everything) == 0  # no snapshot yet: nothing adopted
    assert not redis_client.exists(keys.MODEL_ADOPTIONS)
    store.version, store.snap = "1.1", snapshot_of(history.families)
    await follower.load()
    assert await adopt(sink, everything) == len(history.families)  # none written before
    assert await log.adoption_seconds(now=5000.0) == 2.5
    assert redis_client.hgetall(keys.MODEL_ADOPTIONS) == {b"w1": b"2.500 5000"}
    assert await adopt(sink, everything) == 0  # the same version: not recorded again
    assert redis_client.hgetall(keys.MODEL_ADOPTIONS) == {b"w1": b"2.500 5000"}


async def test_a_snapshot_adopted_while_a_new_family_is_written_reaches_it(
    history, aredis, redis_client
):
    """A new family's write lands with no group (no snapshot yet) and its state is not
    stored yet when a snapshot is adopted: the adoption waits for the write and
    re-assigns the family too (listed from the table alone, it was left without a
    group until its next event)."""
    sink = await sink_at(aredis, history.watermark)
    store = Store()
    follower = ModelFollower(store)
    new = sorted(history.contributions)[0]
    table = {f: s for f, s in history.families.items() if f != new}
    writer = FamilyWriter(table, follower, Vectors(), PARTS, True)
    await writer.apply(sink, {f: partition_of(f, PARTS) for f in table})
    held = HeldBack(table, {new: history.families[new]})
    writing = asyncio.ensure_future(
        writer.apply(sink, {new: partition_of(new, PARTS)}, unstored=held)
    )
    for _ in range(500):
        if redis_client.exists(keys.family(new)):
            break  # in Redis, its state not stored
        await asyncio.sleep(0.01)
    assert redis_client.exists(keys.family(new)) and not writing.done()
    store.version, store.snap = "1.1", snapshot_of(history.families)
    assert await follower.load()
    adopting = asyncio.ensure_future(writer.adopt(sink, set(range(PARTS))))
    await asyncio.sleep(0.1)
    held.release.set()
    await writing
    assert await adopting == len(history.contributions)
    pic = redis_reader.read_picture(redis_client)
    groups = sum(pic["all"].get(f"g{i}", 0) for i in range(1, 11))
    assert groups == pic["all"]["families"] == len(history.contributions)


async def test_adopt_only_touches_the_given_partitions(history, aredis):
    sink = await sink_at(aredis, history.watermark)
    store = Store()
    store.version, store.snap = "1.1", snapshot_of(history.families)
    follower = ModelFollower(store)
    await follower.load()
    writer = FamilyWriter(history.families, follower, Vectors(), PARTS, True)
    n = await writer.adopt(sink, {1})
    assert n == sum(1 for f in history.families if partition_of(f, PARTS) == 1) > 0


async def test_refill_sends_each_new_partitions_counted_families_once(history, aredis):
    sink = await sink_at(aredis, history.watermark)
    vectors = Vectors()
    writer = FamilyWriter(history.families, ModelFollower(Store()), vectors, PARTS, True)
    await writer.refill(sink, {0, 1})
    await writer.refill(sink, {0, 1})  # nothing new
    await writer.refill(sink, {1, 2})  # 2 is new
    sent = [(field, f) for items, field in vectors.sent for f, _ in items]
    assert {field for field, _ in sent} == {"sample"}
    fams = [f for _, f in sent]
    assert len(fams) == len(set(fams))
    assert set(fams) == {f for f in history.contributions if partition_of(f, PARTS) in {0, 1, 2}}


async def test_sweep_rewrites_families_when_w_moves_past_their_due_day(
    history, aredis, redis_client
):
    sink = await sink_at(aredis, history.watermark)
    writer = FamilyWriter(history.families, ModelFollower(Store()), Vectors(), PARTS, False)
    for fam, part in all_of(history).items():
        await writer.apply(sink, {fam: part})
    due = [c["due"] for c in history.contributions.values() if c["due"] is not None]
    assert due, "the history should leave some window event or birthday ahead"
    later = dt.date.fromordinal(max(due)).isoformat()
    sink.raise_watermark(later)
    await sink.flush()
    swept = await Sweep(writer, sink)(range(PARTS))
    assert swept >= len(due)
    after = picture.Pipeline()
    after.families, after.watermark = history.families, later
    after.refresh(history.families)
    expected = after.aggregates()["all"]
    got = {k: v for k, v in redis_reader.read_picture(redis_client)["all"].items() if v}
    assert got == expected


async def test_apply_writes_the_history_the_in_process_pipeline_keeps(
    history, aredis, redis_client
):
    sink = await sink_at(aredis, history.watermark)
    writer = FamilyWriter(history.families, ModelFollower(Store()), Vectors(), PARTS, False)
    families = all_of(history)
    # In two halves and then all again from a later day: the history is the same.
    await writer.apply(sink, families, since=dict.fromkeys(families, 0))
    w = picture.day(history.watermark)
    await writer.apply(sink, families, since=dict.fromkeys(families, w - 100))
    scopes = sorted(history.history.scopes())
    days = list(range(w - 400, w + 1, 9)) + [w]
    got = redis_reader.read_history(redis_client, scopes, days)
    for on in days:
        want = history.aggregates_on(dt.date.fromordinal(on).isoformat(), keys=True)
        assert {s: c for s in scopes if (c := got[s][on])} == want, on
    assert {s: got[s][w] for s in scopes if got[s][w]} == history.aggregates(keys=True)


def types_in_redis(client) -> dict[str, dict[int, int]]:
    """``{scope: {type id: families}}`` of every scope, as the API reads them."""
    got = redis_reader.read_types(client)
    return {s: c for s, c in got["types"].items() if c}


def types_of_snapshot(snap: dict, families: dict, contributions: dict) -> dict:
    """The type counts a snapshot gives the counted families, per scope."""
    assigner = TypeAssigner.from_snapshot(snap)
    want: dict[str, dict[int, int]] = {}
    for fam, c in contributions.items():
        (t,), _ = assigner.assign_many([state_vector(families[fam])])
        for scope in picture.scopes(c):
            want.setdefault(scope, {}).setdefault(int(t), 0)
            want[scope][int(t)] += 1
    return want


async def test_contributions_carry_the_type_and_a_re_base_moves_the_counts(
    history, aredis, redis_client
):
    """Each counted family is written with its type beside its group; a re-based snapshot
    (fresh ids, groups as they were) rewrites every family, and the old ids' counts are
    gone from Redis, not left at 0."""
    sink = await sink_at(aredis, history.watermark)
    store = Store()
    follower = ModelFollower(store)
    writer = FamilyWriter(history.families, follower, Vectors(), PARTS, True)
    await writer.apply(sink, all_of(history))
    assert types_in_redis(redis_client) == {}  # no model yet: no types
    model = FamilyTypes(n_types=3, warmup=10**6, seed=1)
    fams = sorted(f for f, s in history.families.items() if state_vector(s) is not None)
    model.learn_many([state_vector(history.families[f]) for f in fams], keys=fams)
    model.initialise_now()
    store.version, store.snap = "0.1", model.snapshot()
    await follower.load()
    everything = set(range(PARTS))
    await writer.adopt(sink, everything)
    want = types_of_snapshot(store.snap, history.families, history.contributions)
    assert types_in_redis(redis_client) == want
    pic = redis_reader.read_picture(redis_client)
    assert sum(want["all"].values()) == pic["all"]["families"] == len(history.contributions)
    fam = sorted(history.contributions)[0]
    (t,), _ = TypeAssigner.from_snapshot(store.snap).assign_many(
        [state_vector(history.families[fam])]
    )
    assert writer.types_now[fam] == int(t)

    rebased = model.rebase()
    assert not set(rebased["type_ids"]) & set(store.snap["type_ids"])
    old_ids = set(store.snap["type_ids"])
    store.version, store.snap = "1.2", rebased
    await follower.load()
    n = await writer.adopt(sink, everything)
    assert n >= len(history.contributions)  # every counted family: its type id is new
    assert types_in_redis(redis_client) == types_of_snapshot(
        rebased, history.families, history.contributions
    )
    for key in redis_client.scan_iter("tk:agg:*"):
        ids = {type_id_of(k.decode()) for k in redis_client.hkeys(key)} - {None}
        assert not ids & old_ids, key  # deleted at 0, not left behind


async def test_a_snapshot_that_changes_types_only_rewrites_those_families(
    history, aredis, redis_client
):
    """Groups equal, types renumbered: the families are rewritten for their type alone."""
    sink = await sink_at(aredis, history.watermark)
    store = Store()
    follower = ModelFollower(store)
    writer = FamilyWriter(history.families, follower, Vectors(), PARTS, True)
    snap = snapshot_of(history.families)
    store.version, store.snap = "0.1", snap
    await follower.load()
    everything = set(range(PARTS))
    await writer.adopt(sink, everything)
    before = redis_reader.read_picture(redis_client)
    renumbered = {**snap, "type_ids": [t + 50 for t in snap["type_ids"]], "version": 2}
    store.version, store.snap = "0.2", renumbered
    await follower.load()
    assert await writer.adopt(sink, everything) == len(history.contributions)
    assert await writer.adopt(sink, everything) == 0
    # The picture (groups included) is exactly as it was; the types moved to the new ids.
    after = redis_reader.read_picture(redis_client)
    assert after == before
    got = types_in_redis(redis_client)
    assert got == types_of_snapshot(renumbered, history.families, history.contributions)
    assert all(t >= 50 for counts in got.values() for t in counts)


async def test_a_later_state_is_never_overwritten_by_an_earlier_slow_write(history, aredis):
    """A large rewrite (a new snapshot, the restore) that is still being sent when the
    agent writes a newer state of one of its families must not land after it."""
    from sinks import keys

    class SlowSink(AsyncRedisSink):
        async def send(self, taken):
            await asyncio.sleep(0.3)  # a large transaction still on its way
            return await super().send(taken)

    fam = next(f for f in sorted(history.contributions))
    table = dict(history.families)
    slow = await SlowSink(aredis, now=lambda: "2030-01-01T00:00:00Z").setup()
    fast = await sink_at(aredis, history.watermark)
    writer = FamilyWriter(table, ModelFollower(Store()), Vectors(), PARTS, False)
    part = partition_of(fam, PARTS)

    area = history.contributions[fam]["area"]
    other = next(f for f, c in sorted(history.contributions.items()) if c["area"] != area)

    async def agent():
        await asyncio.sleep(0.05)  # the rewrite has read its states
        table[fam] = history.families[other]  # the family's newest state: another area
        await writer.apply(fast, {fam: part})

    await asyncio.gather(writer.apply(slow, {fam: part}), agent())
    stored = json.loads(await aredis.get(keys.family(fam)))
    assert stored["area"] == history.contributions[other]["area"] != area


def test_forget_drops_what_is_remembered_of_revoked_partitions_only():
    writer = FamilyWriter({}, ModelFollower(Store()), Vectors(), PARTS, True)
    fams = [f"family-{i}" for i in range(40)]
    for fam in fams:
        writer.groups_now[fam] = writer.types_now[fam] = writer.history_groups[fam] = 1
        writer.applied.add(fam)
    writer.forget({1})
    kept = {f for f in fams if partition_of(f, PARTS) != 1}
    assert kept != set(fams)
    assert set(writer.groups_now) == set(writer.types_now) == set(writer.history_groups) == kept
    assert writer.applied == kept


class Landing:
    """A batch's new states (``Pending``'s shape) that record, when stored, whether Redis
    had the family by then; ``then`` records the batch finished."""

    def __init__(self, table: dict, states: dict, redis_client, log: list):
        self.table, self.states, self.redis, self.log = table, states, redis_client, log

    async def commit(self) -> None:
        self.log.append(("stored", [bool(self.redis.exists(keys.family(f))) for f in self.states]))
        self.table.update(self.states)

    def then(self) -> None:
        self.log.append(("finished", sorted(self.states)))


async def test_the_agents_batch_is_written_behind_its_next_step_in_order(
    history, aredis, redis_client
):
    """The agent's call returns before Redis has its batch, whose states the next step
    reads meanwhile from the write in flight; each batch is stored once Redis has it,
    then finished, one after another; another writer waits for the write in flight."""
    sink = await sink_at(aredis, history.watermark)
    first, second = sorted(history.contributions)[:2]
    table: dict = {}
    writer = FamilyWriter(table, ModelFollower(Store()), Vectors(), PARTS, False)
    log: list = []
    one = Landing(table, {first: history.families[first]}, redis_client, log)
    await writer.apply_behind(sink, {first: partition_of(first, PARTS)}, False, {}, one, one.then)
    assert log == [] and not redis_client.exists(keys.family(first))
    assert writer.unstored == one.states and first not in table
    two = Landing(table, {second: history.families[second]}, redis_client, log)
    await writer.apply_behind(sink, {second: partition_of(second, PARTS)}, False, {}, two, two.then)
    assert log == [("stored", [True]), ("finished", [first])]
    assert writer.unstored == two.states
    await writer.apply(sink, {first: partition_of(first, PARTS)})  # the sweep, say
    assert log[2:] == [("stored", [True]), ("finished", [second])]
    assert writer.unstored == {} and set(table) == {first, second}
    assert redis_reader.read_picture(redis_client)["all"]["families"] == 2


async def test_a_write_behind_that_failed_fails_the_next_batch_and_is_not_finished(
    history, aredis, redis_client
):
    """Redis away under the write in flight: its states are not stored, its batch not
    finished (read again), the next batch meets the error, and the history's group is
    forgotten so that the replay rewrites the history."""

    class Away(AsyncRedisSink):
        fail = True

        async def send(self, taken):
            if self.fail:
                raise ConnectionError("Redis away")
            return await super().send(taken)

    sink = await Away(aredis, now=lambda: "2030-01-01T00:00:00Z").setup()
    sink.fail = False
    sink.raise_watermark(history.watermark)
    await sink.flush()
    sink.fail = True
    first, second = sorted(history.contributions)[:2]
    table: dict = {}
    writer = FamilyWriter(table, ModelFollower(Store()), Vectors(), PARTS, False)
    log: list = []
    one = Landing(table, {first: history.families[first]}, redis_client, log)
    since = {first: 0, second: 0}  # their histories rewritten from day 0
    await writer.apply_behind(
        sink, {first: partition_of(first, PARTS)}, False, since, one, one.then
    )
    assert first in writer.history_groups  # taken as written, until the write fails
    two = Landing(table, {second: history.families[second]}, redis_client, log)
    with pytest.raises(ConnectionError):
        await writer.apply_behind(
            sink, {second: partition_of(second, PARTS)}, False, since, two, two.then
        )
    assert log == [] and table == {} and writer.unstored == {}
    assert first not in writer.history_groups and second not in writer.history_groups
    sink.fail = False  # Redis back: the batches read again are written
    await writer.apply_behind(sink, {first: partition_of(first, PARTS)}, False, {}, one, one.then)
    await writer.settle()
    assert log == [("stored", [True]), ("finished", [first])]


async def test_a_write_behind_takes_w_from_the_transaction_before_it(history, aredis):
    """No round trip for W while a write is in flight (it would wait in Redis for that
    write): W as the last transaction saw it; read when that one saw none."""

    class Counted(AsyncRedisSink):
        reads = 0

        async def watermark(self):
            self.reads += 1
            return await super().watermark()

    sink = await Counted(aredis, now=lambda: "2030-01-01T00:00:00Z").setup()
    sink.raise_watermark(history.watermark)
    await sink.flush()
    assert sink.seen_watermark == history.watermark
    fams = sorted(history.contributions)[:3]
    table: dict = {}
    writer = FamilyWriter(table, ModelFollower(Store()), Vectors(), PARTS, False)
    for fam in fams:
        held = HeldBack(table, {fam: history.families[fam]})
        held.release.set()
        await writer.apply_behind(
            sink, {fam: partition_of(fam, PARTS)}, False, {}, held, lambda: None
        )
        assert sink.reads == 1  # only the first, with nothing in flight
    await writer.settle()
    sink.seen_watermark = None  # the last transaction found Redis emptied
    held = HeldBack(table, {fams[0]: history.families[fams[0]]})
    held.release.set()
    writer.behind.start(asyncio.sleep(0.05), {})  # a write in flight
    await writer.apply_behind(
        sink, {fams[0]: partition_of(fams[0], PARTS)}, False, {}, held, lambda: None
    )
    assert sink.reads == 2
    await writer.settle()
