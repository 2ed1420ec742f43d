"""From family states to Redis: contributions at W, histories, service-need groups, the sweep.

:class:`ModelFollower` keeps the latest family-type snapshot (every worker assigns with
it); :class:`FamilyWriter` turns family states into contributions, writes them through
a Redis sink (the agent's batches behind its next step, :class:`WriteBehind`) and, with
family types on, sends the counted families' vectors to the learner (stage
``"learner"``, its one partition); :class:`TimedAdoption` re-assigns them to a new
snapshot and tells the learner how long that took; :class:`Sweep` rewrites families
whose result changes because W moved on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Protocol

from models import picture
from models.family_types import TypeAssigner
from models.features import state_vector
from sinks import metrics
from sinks.redis_sink import AsyncRedisSink
from streams.changelog import TableReads
from streams.transport import partition_of

log = logging.getLogger("tilannekuva.worker")

# Families per transaction when many are rewritten (a snapshot, a restore), histories
# and all: Redis runs a transaction alone, and 5,000 took 1–5 s at 40,000 families (every
# API read waited; redis-py 8 gives up reading after 5 s and sends it again).
REASSIGN_CHUNK = 1000


def families_in(
    table: Mapping[str, dict | None], partitions: int, parts: Iterable[int]
) -> dict[str, int]:
    """``{family: partition}`` of the families of ``table`` (this worker's) in ``parts``."""
    wanted = set(parts)
    return {fam: p for fam in list(table.keys()) if (p := partition_of(fam, partitions)) in wanted}


async def read_chunks(
    reads: TableReads, families: Mapping[str, int]
) -> AsyncIterator[dict[str, dict | None]]:
    """The states of ``{family: partition}``, :data:`REASSIGN_CHUNK` at a time, the event
    loop let in between: read and assigned all at once, a worker's families are one
    stretch of seconds at 40,000 (tens of µs each) in which no heartbeat, agent or timer
    runs."""
    names = list(families.items())
    for i in range(0, len(names), REASSIGN_CHUNK):
        if i:
            await asyncio.sleep(0)
        yield reads.many(dict(names[i : i + REASSIGN_CHUNK]))


class ModelStore(Protocol):
    async def load_if_newer(self, known: str | None) -> tuple[str, dict] | None: ...


class ModelFollower:
    """The assigner of the newest snapshot in the model store."""

    def __init__(self, store: ModelStore):
        self.store = store
        self.assigner: TypeAssigner | None = None
        self.version: str | None = None

    async def load(self) -> bool:
        """Take the stored snapshot if it is newer; whether it was."""
        found = await self.store.load_if_newer(self.version)
        if found is None:
            return False
        self.version, snap = found
        self.assigner = TypeAssigner.from_snapshot(snap)
        return True

    def assign(
        self, states: Mapping[str, dict | None], vectors_on: bool
    ) -> tuple[dict[str, int | None], dict[str, int | None], dict[str, dict]]:
        """Family type, service-need group and feature vector of each family (one matrix
        product); type and group None without a snapshot or a vector."""
        vectors: dict[str, dict] = {}
        if vectors_on:
            for fam, state in states.items():
                vec = state_vector(state) if state else None
                if vec is not None:
                    vectors[fam] = vec
        types: dict[str, int | None] = dict.fromkeys(states)
        groups: dict[str, int | None] = dict.fromkeys(states)
        if self.assigner is not None:
            for fam, (t, g) in self.assigner.assign_keyed(vectors).items():
                types[fam], groups[fam] = t, g
        return types, groups, vectors


class AdoptionLog(Protocol):
    async def record_adoption(self, worker: str, seconds: float, at: float) -> None: ...


class Unstored(Protocol):
    """New states a step computed and has not stored (:class:`streams.stages.Pending`)."""

    states: Mapping[str, dict | None]

    async def commit(self) -> None: ...


class Send(Protocol):
    async def send_items(self, stage: str, partition: int, items: list, field: str = ...): ...


class WriteBehind:
    """The family agent's last write while Redis applies it, and the new states it stores
    once Redis has it (:attr:`states`: the next step reads them here meanwhile).

    The agent waited for each transaction before it took its next batch, so the worker
    and Redis took turns: a catch-up lasted the worker's CPU plus Redis's (bench/README.md,
    sessions 41 and 45). Behind, Redis applies one batch while the worker computes the
    next. One write at a time, in order: the next one, and any other writer, first wait
    for it (:meth:`settle`, which raises its error).

    >>> async def demo():
    ...     behind = WriteBehind()
    ...     behind.start(asyncio.sleep(0), {"f1": {"v": 1}})
    ...     in_flight = dict(behind.states)
    ...     await behind.settle()
    ...     return in_flight, behind.states, behind.running
    >>> asyncio.run(demo())
    ({'f1': {'v': 1}}, {}, None)
    """

    def __init__(self) -> None:
        self.running: asyncio.Future | None = None
        self.states: Mapping[str, dict | None] = {}

    def start(self, write: Awaitable[None], states: Mapping[str, dict | None]) -> None:
        if self.running is not None:
            raise RuntimeError("a write is in flight: settle() it first")
        self.running, self.states = asyncio.ensure_future(write), states

    async def settle(self) -> None:
        """Wait for the write in flight; a caller cancelled meanwhile does not cancel it
        (a batch half written would be left to the read again)."""
        running = self.running
        if running is None:
            return
        try:
            await asyncio.shield(running)
        finally:
            if running.done() and self.running is running:
                self.running, self.states = None, {}


class FamilyWriter:
    """Recomputes families' contributions at W and writes them in one pipeline.

    Remembers the type and group each counted family was last written with and every
    family written since start, so that a new snapshot rewrites only families whose
    type or group it changes (:meth:`adopt`)."""

    def __init__(
        self,
        table: Mapping[str, dict | None],
        follower: ModelFollower,
        send: Send,
        partitions: int,
        types_on: bool,
    ):
        self.table = table
        self.reads = TableReads(table)
        self.follower = follower
        self.send = send
        self.partitions = partitions
        self.types_on = types_on
        self.groups_now: dict[str, int | None] = {}
        self.types_now: dict[str, int | None] = {}
        self.history_groups: dict[str, int | None] = {}  # the group each history holds
        self.applied: set[str] = set()
        self.adopted: str | None = None  # snapshot version the families were re-assigned to
        self.sampled: set[int] = set()  # partitions whose families went to the learner's sample
        self.behind = WriteBehind()  # the agent's write in flight
        self._writing = asyncio.Lock()

    @property
    def unstored(self) -> Mapping[str, dict | None]:
        """States of the agent's write in flight, stored once Redis has them."""
        return self.behind.states

    async def apply(
        self,
        sink: AsyncRedisSink,
        families: Mapping[str, int],
        learn: bool = False,
        since: Mapping[str, int | None] | None = None,
        unstored: Unstored | None = None,
    ) -> bool:
        """Write ``{family: partition}``: the present, and the history from ``since``
        (``{family: day | None}``) or from the family's own latest day where its group
        changed; with ``learn``, send the counted families' vectors to the learner.
        Families no longer counted are sent as ``None`` from every caller: the learner
        forgets them.

        One call at a time, from reading the states to Redis having applied them, after
        the agent's write in flight: the sweep, a new snapshot and the restore each write
        through here (the agent through :meth:`apply_behind`), and a large transaction
        still being sent could otherwise be overtaken by a later state's write and then
        overwrite it with the older state.

        ``unstored``: the families' new states, written to Redis first and stored only
        then. A crash in between leaves the table behind Redis, and the replay writes
        again, history included; the other order left a replay that found its state
        already stored with no day to rewrite the history from (the present healed, the
        history did not: seen with RocksDB after a SIGKILL).

        Returns whether it wrote: not without W, which only a Redis emptied lacks (the
        states are stored all the same, for the restore to write them).
        """
        async with self._writing:
            await self.behind.settle()
            fresh = unstored.states if unstored else {}
            watermark = await sink.watermark()
            learned = self._prepare(sink, families, learn, since, fresh, watermark)
            await self._write(sink, sink.take(), learned, unstored, families)
            return watermark is not None

    async def apply_behind(
        self,
        sink: AsyncRedisSink,
        families: Mapping[str, int],
        learn: bool,
        since: Mapping[str, int | None],
        unstored: Unstored,
        then: Callable[[], None],
    ) -> None:
        """:meth:`apply` of the agent's batch, written behind (:class:`WriteBehind`):
        returns once the batch is prepared and the write before it done; ``then()`` once
        this one is done too (the batch finished for the commit).

        W is the one the last transaction saw: a round trip now would wait in Redis for
        the write in flight. The sweep writes again whoever W has since moved past. Only
        a W it did see: a transaction that saw none (Redis emptied just before) would
        otherwise leave every batch after it unwritten for as long as writes stay in
        flight, possibly after the restore had rewritten the partition."""
        async with self._writing:
            try:
                watermark = sink.seen_watermark if self.behind.running is not None else None
                if watermark is None:
                    watermark = await sink.watermark()
                learned = self._prepare(sink, families, learn, since, unstored.states, watermark)
                taken = sink.take()
                await self.behind.settle()
            except BaseException:
                self.unlearn(families)
                raise
            self.behind.start(
                self._then(self._write(sink, taken, learned, unstored, families), then),
                unstored.states,
            )

    async def settle(self) -> None:
        """The agent's write in flight done (a revoke waits for it: its families may go to
        another worker). Its error is the agent's to meet; here it is only logged."""
        async with self._writing:
            try:
                await self.behind.settle()
            except Exception:
                log.exception("the family agent's last write failed: its batch is read again")

    @staticmethod
    async def _then(write: Awaitable[None], then: Callable[[], None]) -> None:
        await write
        then()

    async def _write(
        self,
        sink: AsyncRedisSink,
        taken: tuple | None,
        learned: list,
        unstored: Unstored | None,
        families: Mapping[str, int],
    ) -> None:
        try:
            await sink.send(taken)
            if learned:
                await self.send.send_items("learner", 0, learned)
            # Not when the write failed: the agent's batch is not finished
            # (streams/ops.py::Finished) and the batch read again replays from the
            # states as they were, the history with them.
            if unstored is not None:
                await unstored.commit()
        except BaseException:
            self.unlearn(families)
            raise

    def unlearn(self, families: Iterable[str]) -> None:
        """Forget the groups the histories of ``families`` were written with: a write
        that failed had taken them as written, and its replay would then skip rewriting a
        history whose group changed (rewriting too much is harmless)."""
        for fam in families:
            self.history_groups.pop(fam, None)

    def _prepare(
        self,
        sink: AsyncRedisSink,
        families: Mapping[str, int],
        learn: bool,
        since: Mapping[str, int | None] | None,
        fresh: Mapping[str, dict | None],
        watermark: str | None,
    ) -> list:
        """Queue the writes of ``families`` in ``sink``; returns the vectors for the
        learner. Nothing without W (Redis lost it: streams/restore.py writes again)."""
        if watermark is None:
            return []
        since = since or {}
        states = self.reads.many({f: p for f, p in families.items() if f not in fresh})
        states.update({f: fresh[f] for f in families if f in fresh})
        # No state is no family here: a partition revoked while this call waited (RocksDB
        # closes its database) or not yet recovered. Writing it would delete a family
        # that another worker, or the recovered table, holds.
        families = {f: p for f, p in families.items() if states[f] is not None}
        types, groups, vectors = self.follower.assign(states, self.types_on)
        items, learned, history = [], [], []
        for fam, partition in families.items():
            state, segments = states[fam], None
            if state and (
                rewrite := picture.history_rewrite(
                    state, since.get(fam), groups[fam], self.history_groups.get(fam)
                )
            ):
                start, segments = rewrite
                history.append((fam, start, segments))
                self.history_groups[fam] = groups[fam]
            contrib = (
                picture.contribution(state, watermark, groups[fam], segments, types[fam])
                if state
                else None
            )
            items.append((fam, contrib, partition))
            self.applied.add(fam)
            if contrib is None:
                if fam in self.groups_now and self.types_on:
                    learned.append([fam, None])
                self.groups_now.pop(fam, None)
                self.types_now.pop(fam, None)
            else:
                self.groups_now[fam] = groups[fam]
                self.types_now[fam] = types[fam]
                if learn and fam in vectors:
                    learned.append([fam, vectors[fam]])
        sink.write_history(history)
        sink.write(items)
        return learned

    async def rewrite(
        self, sink: AsyncRedisSink, families: Mapping[str, int], since: int | None = None
    ) -> bool:
        """:meth:`apply` of many families, :data:`REASSIGN_CHUNK` to a transaction; with
        ``since``, the history of every one of them from that day. Whether it wrote them
        all (it stops at a chunk it could not write: W gone)."""
        items = list(families.items())
        for i in range(0, len(items), REASSIGN_CHUNK):
            chunk = dict(items[i : i + REASSIGN_CHUNK])
            days = None if since is None else dict.fromkeys(chunk, since)
            if not await self.apply(sink, chunk, since=days):
                return False
        return True

    async def recall(self, sink: AsyncRedisSink, families: Mapping[str, int]) -> int:
        """The group and type Redis holds of each family not written since start, as if
        this worker had written it: a restarted worker's first snapshot then rewrites
        only the families whose group or type it changes, and a family's next write its
        history only where its group moved (not all of them, from their latest days).
        Returns how many Redis held. A Redis that lost writes is healed by the restore
        tick, which rewrites whole partitions regardless."""
        async with self._writing:  # no write of these families in between
            await self.behind.settle()
            held = await sink.contributions([f for f in families if f not in self.applied])
            for fam, contrib in held.items():
                group, type_id = picture.written_with(contrib)
                self.applied.add(fam)
                self.groups_now[fam] = self.history_groups[fam] = group
                self.types_now[fam] = type_id
        return len(held)

    def forget(self, parts: Iterable[int]) -> None:
        """Drop what is remembered of the families of ``parts`` (revoked): another worker
        writes them meanwhile, and a group remembered from before would skip a history
        rewrite they need when the partitions come back."""
        gone = set(parts)
        for seen in (self.groups_now, self.types_now, self.history_groups):
            for fam in [f for f in seen if partition_of(f, self.partitions) in gone]:
                del seen[fam]
        self.applied = {f for f in self.applied if partition_of(f, self.partitions) not in gone}

    def mine(self, parts: Iterable[int]) -> dict[str, int]:
        """``{family: partition}`` of this worker's families in ``parts``."""
        return families_in(self.table, self.partitions, parts)

    async def mine_now(self, parts: Iterable[int]) -> dict[str, int]:
        """:meth:`mine` with no write half done: a new family's state is stored only
        once Redis has it, so one that Redis had just before it lost its writes would
        otherwise be left out of the restore's rewrite, and one written with the
        snapshot before out of the adoption of the next."""
        async with self._writing:
            await self.behind.settle()
            return self.mine(parts)

    async def refill(self, sink: AsyncRedisSink, parts: set[int]) -> None:
        """The counted families of newly assigned partitions to the learner's sample
        (not to learning): a restarted learner resumes with an empty one."""
        new, self.sampled = parts - self.sampled, set(parts)
        watermark = await sink.watermark()
        if not new or watermark is None:
            return
        async for states in read_chunks(self.reads, self.mine(new)):
            counted = {f: s for f, s in states.items() if s and picture.contribution(s, watermark)}
            _, _, vectors = self.follower.assign(counted, True)
            if vectors:
                await self.send.send_items(
                    "learner", 0, [[f, v] for f, v in vectors.items()], "sample"
                )

    async def adopt(self, sink: AsyncRedisSink, parts: set[int]) -> int:
        """Re-assign this worker's families to the follower's snapshot once per version
        (whoever loaded it), rewriting those whose type or group it changes (all after a
        restart, and all after a re-base, which gives every type a fresh id: the deltas
        move the old ids' counts to the new ones); returns how many."""
        version = self.follower.version
        if self.follower.assigner is None or self.adopted == version:
            return 0
        families = await self.mine_now(parts)
        await self.recall(sink, families)
        changed: dict[str, int] = {}
        async for states in read_chunks(self.reads, families):
            types, groups, _ = self.follower.assign(states, True)
            changed.update(
                (fam, families[fam])
                for fam in states
                if fam not in self.applied
                or (
                    fam in self.groups_now
                    and (
                        self.groups_now[fam] != groups[fam] or self.types_now.get(fam) != types[fam]
                    )
                )
            )
        await self.rewrite(sink, changed)
        self.adopted = version
        metrics.FAMILIES_REASSIGNED.inc(len(changed))
        metrics.MODEL_ADOPTED.info({"version": version})
        return len(changed)


class TimedAdoption:
    """:meth:`FamilyWriter.adopt`, timed: each adoption of a new snapshot is recorded in
    ``log`` as this worker's, for the learner to space its snapshots by the slowest
    worker's (``models.learning.Learner`` ``adoption_share``)."""

    def __init__(
        self,
        writer: FamilyWriter,
        log: AdoptionLog,
        worker: str,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], float] = time.time,
    ):
        self.writer = writer
        self.log = log
        self.worker = worker
        self.clock = clock
        self.now = now

    async def __call__(self, sink: AsyncRedisSink, parts: set[int]) -> int:
        version, started = self.writer.adopted, self.clock()
        n = await self.writer.adopt(sink, parts)
        if self.writer.adopted != version:
            seconds = self.clock() - started
            metrics.MODEL_ADOPTION_SECONDS.observe(seconds)
            await self.log.record_adoption(self.worker, seconds, self.now())
        return n


class Sweep:
    """Families whose result changes because W moved on (windows, 18th birthdays)."""

    def __init__(self, writer: FamilyWriter, sink: AsyncRedisSink):
        self.writer = writer
        self.sink = sink

    async def __call__(self, parts: Iterable[int]) -> int:
        """Rewrites the due families of ``parts``; returns how many."""
        watermark = await self.sink.watermark()
        if watermark is None:
            return 0
        metrics.WATERMARK_DAYS.set(picture.day(watermark) - picture.day("1970-01-01"))
        w, swept = picture.day(watermark), 0
        for partition in parts:
            due = await self.sink.due(partition, w)
            if due:
                await self.writer.apply(self.sink, dict.fromkeys(due, partition))
                swept += len(due)
        return swept
