"""The service cohorts of a worker's partitions, counted into Redis (issue 16, docs/impact.md).

Each family state keeps its members' copies of the rows the impact outcome reads and
its month rows (:mod:`models.family_outcome`, kept by the family step). A partition's
counts are those of the panel of its families from the month the registers went live
to the last month ``W`` has left (:func:`models.family_outcome.partition_builder`);
:class:`CohortWriter` replaces them (``tk:impact:{service}:{partition}``) when that
month moves, when Redis lost them, and once the group has applied everything ingested
after its families changed (:class:`streams.settled.Settled`): a catch-up's families
move every second, and counting them all again then would be work thrown away.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Protocol

from models import family_outcome
from models.cohorts import builder_counts
from models.impact import Counts, month_of
from sinks import metrics
from streams.changelog import TableReads
from streams.families import families_in, read_chunks
from streams.transport import partition_of

#: A partition whose families changed is counted again after this long even if the
#: group never settles (a stream that never pauses).
REVISE_S = 600.0


class Span(Protocol):
    async def watermark(self) -> str | None: ...

    async def live(self) -> str | None: ...


class Store(Protocol):
    async def write(self, partition: int, month: int, counts: Mapping[str, Counts]) -> None: ...

    async def written(self) -> set[int]: ...


class CohortWriter:
    """Counts this worker's partitions' cohorts into ``store``.

    ``table``: the family states; ``span``: ``W`` and the day the registers went live;
    ``settled()``: whether everything ingested has been applied."""

    def __init__(
        self,
        table: Mapping[str, dict | None],
        partitions: int,
        span: Span,
        store: Store,
        settled: Callable[[], Awaitable[bool]],
        clock: Callable[[], float] = time.monotonic,
        revise_s: float = REVISE_S,
    ):
        self.table = table
        self.reads = TableReads(table)
        self.partitions = partitions
        self.span = span
        self.store = store
        self.settled = settled
        self.clock = clock
        self.revise_s = revise_s
        self.counted: dict[int, tuple[int, int]] = {}  # partition -> the months it was counted over
        self.changed: dict[int, float] = {}  # partition -> when its families first changed since

    def touched(self, families: Iterable[str]) -> None:
        """Families whose states changed (the family agent's batch)."""
        now = self.clock()
        for fam in families:
            self.changed.setdefault(partition_of(fam, self.partitions), now)

    def forget(self, parts: Iterable[int]) -> None:
        """Partitions revoked: whoever holds them next counts them."""
        for p in parts:
            self.counted.pop(p, None)
            self.changed.pop(p, None)

    async def __call__(self, parts: Iterable[int]) -> list[int]:
        """Counts the partitions of ``parts`` that are due; returns them."""
        wm, live = await self.span.watermark(), await self.span.live()
        if wm is None or live is None:
            return []
        months = (month_of(live), month_of(wm) - 1)
        if months[1] < months[0]:
            return []
        written = await self.store.written()
        now, settled = self.clock(), None
        due = []
        for p in sorted(parts):
            if self.counted.get(p) == months and p in written:
                since = self.changed.get(p)
                if since is None:
                    continue
                if now - since < self.revise_s:
                    if settled is None:
                        settled = await self.settled()
                    if not settled:
                        continue
            due.append(p)
        for p in due:
            self.changed.pop(p, None)  # before reading: changes meanwhile count again
            started = time.perf_counter()
            counts = await self._count(p, *months)
            await self.store.write(p, months[1], counts)
            self.counted[p] = months
            metrics.IMPACT_COUNT_SECONDS.observe(time.perf_counter() - started)
        return due

    async def _count(self, partition: int, first: int, last: int) -> dict[str, Counts]:
        states: dict[str, dict] = {}
        families = families_in(self.table, self.partitions, [partition])
        async for chunk in read_chunks(self.reads, families):
            # The rows of the months not settled yet, made a chunk at a time so that the
            # event loop runs in between (partition_builder then finds them made).
            for fam, state in chunk.items():
                if state is not None and family_outcome.has_start(state):
                    family_outcome.month_rows(state, first, last)
                    states[fam] = state
        return builder_counts(family_outcome.partition_builder(states, first, last))
