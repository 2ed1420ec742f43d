"""Putting back what Redis lost: a FLUSHALL, a restart without persistence, the last
second that an AOF with ``appendfsync everysec`` had not yet written to disk.

Every worker keeps the truth in its tables; Redis holds what the worker wrote from
them. Redis holds a token (:data:`sinks.keys.EPOCH`), set anew by the first worker to
find none, and for each partition of the family topic the token at which all its
families were last known written (:data:`sinks.keys.WHOLE`): a partition not known
whole at today's token (Redis emptied since: a FLUSHALL, a restart without
persistence; or never written) whose families this worker's table holds is written
again, whatever its count reads by then. Each transaction of family contributions also
counts, per partition, the batches Redis has applied (:data:`sinks.keys.WRITTEN`), and
the worker remembers the counts Redis answered (:class:`sinks.redis_sink.Written`): a
count that reads lower than one Redis answered before, or an answer that repeats an
earlier one (Redis went back and new writes counted up again), means Redis lost
acknowledged writes of that partition (a restart from an older copy keeps the token).
A lost partition's families are written again, present and history, through the same
idempotent scripts as always, so what Redis kept is left as it is and what it lost
comes back. Redis marks each such partition (:data:`sinks.keys.REWRITING`) until its
rewrite is done: a worker killed during one leaves the mark, and whoever holds the
partition next rewrites it again (the agent's writes meanwhile count it up, so its
count no longer shows the loss). W and the first day of data are raised again from the
id topic's days table on every tick (and the day the registers went live, where the
shift alerts start), and the learner's latest snapshot is published again where the
model store lost it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from sinks import metrics
from sinks.redis_sink import AsyncRedisSink, Written
from streams.families import FamilyWriter

log = logging.getLogger("tilannekuva.worker")

#: How long a restore's mark holds (renewed for each partition it writes again).
HOLD_S = 300.0


class DaySpan(Protocol):
    def span(self, partitions: Iterable[int]) -> tuple[str, str] | None: ...

    def live(self, partitions: Iterable[int]) -> str | None: ...


class Restore:
    """One tick: W and the first day raised from ``days``; every partition in ``parts``
    whose families Redis lost written again (returned). While it writes (and from the
    moment it finds W gone), Redis says so under ``who`` (:data:`sinks.keys.RESTORING`,
    for at most ``hold_s`` at a time): shift detection waits for a whole history. One
    tick at a time: the timer's and the agent's (:meth:`before_writing`) run side by
    side, and one would read the other's marks of rewrites not yet done as left undone
    by a killed worker."""

    def __init__(
        self,
        writer: FamilyWriter,
        sink: AsyncRedisSink,
        days: DaySpan,
        written: Written,
        who: str = "worker",
        clock: Callable[[], float] = time.time,
        hold_s: float = HOLD_S,
        new_token: Callable[[], str] = lambda: uuid.uuid4().hex,
    ):
        self.writer = writer
        self.sink = sink
        self.days = days
        self.written = written
        self.who = who
        self.clock = clock
        self.hold_s = hold_s
        self.checked: set[int] = set()  # partitions looked at since start
        self.new_token = new_token
        self.holding = False  # this tick marked a restore in Redis
        self.one_tick = asyncio.Lock()

    def forget(self, parts: Iterable[int]) -> None:
        """Partitions revoked: looked at again when they come back."""
        self.checked -= set(parts)

    async def before_writing(self, families: Mapping[str, int]) -> list[int]:
        """A tick over the partitions of ``{family: partition}`` not looked at since
        start, before the agent writes those families: once it has, a Redis emptied
        while this worker was down would already count the agent's batch and look whole.
        The families about to be written do not count as held (a first start)."""
        if not set(families.values()) - self.checked:
            return []  # the agent's every batch: no wait for a tick
        async with self.one_tick:
            new = sorted(set(families.values()) - self.checked)
            return await self._call(new, writing=families.keys()) if new else []

    async def __call__(self, parts: Iterable[int], writing: Iterable[str] = ()) -> list[int]:
        async with self.one_tick:
            return await self._call(parts, writing)

    async def _call(self, parts: Iterable[int], writing: Iterable[str]) -> list[int]:
        parts = sorted(parts)
        span = self.days.span(parts)
        if span is not None and await self.sink.watermark() is None:
            await self._hold()  # Redis lost W, so the rest too: said before W is back
        try:
            return await self._tick(parts, span, writing)
        finally:
            if self.holding:
                self.holding = False
                await self.sink.restored(self.who)

    async def _hold(self) -> None:
        self.holding = True
        await self.sink.restoring(self.who, self.clock() + self.hold_s)

    async def _tick(
        self, parts: list[int], span: tuple[str, str] | None, writing: Iterable[str]
    ) -> list[int]:
        if span is not None:  # before any family is written: they are written at W
            for day in span:
                self.sink.raise_watermark(day)
            if (live := self.days.live(parts)) is not None:
                self.sink.went_live(live)
            await self.sink.flush()
        if await self.sink.watermark() is None:
            # Nothing can be written before W is known: a rewrite now would write
            # nothing and yet count as done. Look again at the next tick.
            return []
        # The token of what Redis holds (new after a FLUSHALL or a restart without
        # persistence), and the token at which each partition was last known whole.
        token = await self.sink.epoch(new=self.new_token())
        whole = await self.sink.whole_at(parts)
        # Counts Redis answered before the read below: a lower count read is a loss,
        # never a transaction that overtook the read.
        known = dict(self.written.counts)
        counts = await self.sink.written_counts(parts)
        repeated = self.written.went_back(parts)  # answers that repeated
        lost = [p for p in parts if p in repeated or (p in known and counts[p] < known[p])]
        # A rewrite a killed worker left undone: the agent's writes since count the
        # partition up, so only the mark Redis keeps until the rewrite is done shows it.
        lost += [p for p in await self.sink.rewriting(parts) if p not in lost]
        # Not known whole since Redis was last emptied, whatever its count reads by now
        # (writes since, this worker's or another's that held it, count it up): lost if
        # this worker's table holds families of it. A first start holds none but those
        # the agent is about to write. Looked up only then: the table may be large.
        unsure = [p for p in parts if whole[p] != token and p not in lost]
        self.checked.update(parts)
        families = await self.writer.mine_now(lost + unsure) if lost or unsure else {}
        skip = set(writing)
        held = {q for f, q in families.items() if f not in skip}
        lost += [p for p in unsure if p in held]
        self.written.saw(counts)  # a restarted worker learns what Redis holds
        await self.sink.rewrite_begins(lost)
        await self.sink.whole([p for p in unsure if p not in lost], token)
        for p in sorted(lost):
            await self._hold()  # renewed per partition: a worker that dies lets it lapse
            self.written.lost(p, counts[p])
            mine = [f for f, q in families.items() if q == p]
            report_loss(p, counts[p], known.get(p), whole[p] == token, len(mine))
            # since day 0: the whole history, which Redis may have lost too
            if not await self.writer.rewrite(self.sink, dict.fromkeys(mine, p), since=0):
                # W gone: Redis was emptied during this tick (after its check of W),
                # and nothing was written. Nothing is marked done: the next tick sees
                # the partitions not known whole, and writes them once W is back.
                log.warning("Redis emptied while its lost writes were written again")
                break
            await self.sink.rewrite_done(p)
            await self.sink.whole([p], token)
        return lost


def report_loss(partition: int, count: int, answered: int | None, whole: bool, n: int) -> None:
    """The log line and the metric of a partition whose families are written again."""
    log.warning(
        "Redis lost writes of partition %d (it counts %d applied batches, %s before; %s):"
        " writing its %d families again",
        partition,
        count,
        "none known" if answered is None else f"it answered {answered}",
        "known whole" if whole else "not known whole since emptied",
        n,
    )
    metrics.REDIS_LOSSES.inc()
