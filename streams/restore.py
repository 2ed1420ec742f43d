"""Putting back what Redis lost: a FLUSHALL, a restart without persistence, the last
second that an AOF with ``appendfsync everysec`` had not yet written to disk.

Every worker keeps the truth in its tables; Redis holds what the worker wrote from
them. Each transaction of family contributions also counts, per partition of the
family topic, the batches Redis has applied (:data:`sinks.keys.WRITTEN`), and the
worker remembers the counts Redis answered (:class:`sinks.redis_sink.Written`). A count
that reads lower than one Redis answered before, an answer that repeats an earlier one
(Redis went back and new writes counted up again), or no count where the worker has
families, means Redis lost acknowledged writes of that partition: its families are written
again, present and history, through the same idempotent scripts as always, so what
Redis kept is left as it is and what it lost comes back. W and the first day of data
are raised again from the id topic's days table on every tick, and the learner's
latest snapshot is published again where the model store lost it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Protocol

from sinks import metrics
from sinks.redis_sink import AsyncRedisSink, Written
from streams.families import FamilyWriter

log = logging.getLogger("tilannekuva.worker")


class DaySpan(Protocol):
    def span(self, partitions: Iterable[int]) -> tuple[str, str] | None: ...


class Restore:
    """One tick: W and the first day raised from ``days``; every partition in ``parts``
    whose families Redis lost written again (returned)."""

    def __init__(self, writer: FamilyWriter, sink: AsyncRedisSink, days: DaySpan, written: Written):
        self.writer = writer
        self.sink = sink
        self.days = days
        self.written = written
        self.checked: set[int] = set()  # partitions looked at since start

    def forget(self, parts: Iterable[int]) -> None:
        """Partitions revoked: looked at again when they come back."""
        self.checked -= set(parts)

    async def before_writing(self, families: Mapping[str, int]) -> list[int]:
        """A tick over the partitions of ``{family: partition}`` not looked at since
        start, before the agent writes those families: once it has, a Redis emptied
        while this worker was down would already count the agent's batch and look whole.
        The families about to be written do not count as held (a first start)."""
        new = sorted(set(families.values()) - self.checked)
        return await self(new, writing=families.keys()) if new else []

    async def __call__(self, parts: Iterable[int], writing: Iterable[str] = ()) -> list[int]:
        parts = sorted(parts)
        span = self.days.span(parts)
        if span is not None:  # before any family is written: they are written at W
            for day in span:
                self.sink.raise_watermark(day)
            await self.sink.flush()
        if await self.sink.watermark() is None:
            # Nothing can be written before W is known: a rewrite now would write
            # nothing and yet count as done. Look again at the next tick.
            return []
        # Counts Redis answered before the read below: a lower count read is a loss,
        # never a transaction that overtook the read.
        known = dict(self.written.counts)
        counts = await self.sink.written_counts(parts)
        repeated = self.written.take_lost()  # answers that repeated: Redis went back
        lost = [p for p in parts if p in repeated or (p in known and counts[p] < known[p])]
        # A partition first seen (start, restart, rebalance) that Redis has no count of:
        # lost if this worker's table holds families of it (Redis emptied while the
        # worker was down). Looked up only then: the table may be large.
        unknown = [p for p in parts if p not in self.checked and counts[p] == 0]
        self.checked.update(parts)
        families = self.writer.mine(lost + unknown) if lost or unknown else {}
        skip = set(writing)
        held = {q for f, q in families.items() if f not in skip}
        lost += [p for p in unknown if p in held]
        self.written.saw(counts)  # a restarted worker learns what Redis holds
        for p in sorted(lost):
            self.written.lost(p, counts[p])
            mine = [f for f, q in families.items() if q == p]
            log.warning(
                "Redis lost writes of partition %d (it counts %d applied batches, %s"
                " before): writing its %d families again",
                p,
                counts[p],
                f"it answered {known[p]}" if p in known else "none known",
                len(mine),
            )
            metrics.REDIS_LOSSES.inc()
            # since day 0: the whole history, which Redis may have lost too
            await self.writer.rewrite(self.sink, dict.fromkeys(mine, p), since=0)
        return lost
