"""Which partitions of the person and family topics a worker runs in place.

An item bound for a stage whose partition this worker owns need not cross Kafka: the
stage that made it can hand it to the next stage's step at once, in the same batch,
and store its own states once the next stage has stored theirs (``streams.stages.Link``).
One worker owns every partition, so then nothing crosses the internal topics at all;
of two workers, each runs in place the items of its own partitions.

In place is safe only where it cannot overtake what went through Kafka. A family lays
each member's tail over its copy last-writer-wins (``models.family``): a person's
older tail still waiting in the family topic, read after a newer one handed over in
place, would set the family back for good (the newer one is in no topic to be read
again). So a partition turns in place only once everything ever sent to it is not
just read but *committed* (a rebalance that keeps a partition seeks it back to its
committed offset and reads from there again), measured while no send of this worker to
it is in flight. A stage with items for an owned partition not in place yet waits for
that, sending nothing to it (:meth:`Routes.ready`; under a steady flow a partition that
is sent to until its end is asked is never committed to it), seconds at a worker's
start. Then nothing more is sent to it from here; it goes back to Kafka when a
rebalance revokes it (Faust revokes every partition on each one), and turns in place
again once it is committed to its end. Other workers' items for it still come through
Kafka: they are other people's tails, whose order against ours does not matter.

>>> routes = Routes({"family"})
>>> routes.here["family"].add(3)
>>> outs = Envelopes(4)
>>> outs.add("family", "family-1", {"kind": "member"}, 17)  # partition 1: through Kafka
>>> outs.add("family", "family-2", {"kind": "member"}, 18)  # partition 3: in place
>>> here, away = routes.split(outs)
>>> [(e.message.partition, e.value["items"]) for e in here["family"]]
[(3, [['family-2', {'kind': 'member'}, 18]])]
>>> list(away.items())
[(('family', 1), [['family-1', {'kind': 'member'}, 17]])]
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from sinks import metrics
from streams.transport import Envelopes, LocalEnvelope

Part = tuple[str, int]  # (stage, partition)
DRAIN_POLLS = 100
DRAIN_POLL_S = 0.1  # 10 s at most: Faust commits every 2.8 s by default


class Routes:
    """Which ``(stage, partition)`` of ``stages`` this worker runs in place (``here``).

    :meth:`ready` (a stage, before it hands on a batch's outputs) and :meth:`refresh`
    (a timer) turn owned partitions in place once committed to their end; the worker
    gives them ``owned()`` (the partitions it owns now, none while its tables are not
    whole), ``committed(part)`` (the group's committed offset) and ``ends(parts)`` (the
    topics' end offsets, from the broker). Without them nothing turns in place by itself
    (unit tests set ``here``). A stage waits at most ``polls`` × ``poll_s`` for its
    partitions: Faust commits every few seconds (``broker_commit_interval``)."""

    def __init__(
        self,
        stages: Collection[str],
        owned: Callable[[], set[Part]] = set,
        committed: Callable[[Part], int] | None = None,
        ends: Callable[[list[Part]], Awaitable[dict[Part, int]]] | None = None,
        polls: int = DRAIN_POLLS,
        poll_s: float = DRAIN_POLL_S,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ):
        self.here: dict[str, set[int]] = {stage: set() for stage in stages}
        self.owned = owned
        self.committed = committed
        self.ends = ends
        self.polls = polls
        self.poll_s = poll_s
        self.sleep = sleep
        self.inflight: dict[Part, int] = {}  # sends of ours not yet answered
        self.sends: dict[Part, int] = {}  # sends of ours begun, ever

    def split(self, outs: Envelopes) -> tuple[dict[str, list[LocalEnvelope]], Envelopes]:
        """``outs`` as envelopes to run here, by stage, and the rest to send."""
        here: dict[str, list[LocalEnvelope]] = {}
        away = Envelopes(outs.partitions)
        for (stage, partition), items in outs.items():
            if partition in self.here.get(stage, ()):
                here.setdefault(stage, []).append(LocalEnvelope(partition, items))
                metrics.IN_PLACE.labels(stage).inc(len(items))
            else:
                away.groups[(stage, partition)] = items
        return here, away

    @contextmanager
    def sending(self, away: Envelopes) -> Iterator[None]:
        """Around sending ``away`` until the broker has answered: none of its partitions
        turns in place meanwhile."""
        parts = [part for part in away.groups if part[0] in self.here]
        for part in parts:
            self.inflight[part] = self.inflight.get(part, 0) + 1
            self.sends[part] = self.sends.get(part, 0) + 1
        try:
            yield
        finally:
            for part in parts:
                self.inflight[part] -= 1

    async def ready(self, outs: Envelopes) -> None:
        """Returns once every partition of ``outs`` that this worker owns runs in place,
        or after ``polls`` tries (then they go through Kafka this time). The caller sends
        nothing meanwhile, so the partitions can be committed to their end: under a
        steady flow, a partition sent to until its end is asked would never be."""
        for _ in range(self.polls):
            elsewhere = [
                p for p in outs.groups if p[0] in self.here and p[1] not in self.here[p[0]]
            ]
            if not elsewhere:
                return
            owned = self.owned()
            waiting = [p for p in elsewhere if p in owned]
            if not waiting:
                return
            await self.refresh(waiting)
            if all(p[1] in self.here[p[0]] for p in waiting):
                return
            await self.sleep(self.poll_s)

    async def refresh(self, parts: Iterable[Part] | None = None) -> None:
        """Let go of what is no longer owned; turn in place what is owned (of ``parts``,
        if given) and committed to its end, with no send of ours to it begun while the
        end was asked."""
        owned = self.owned()
        for stage, here in self.here.items():
            here.intersection_update(p for s, p in owned if s == stage)
        if self.committed is None or self.ends is None:
            return
        asked = sorted(
            part
            for part in (owned if parts is None else owned.intersection(parts))
            if part[0] in self.here
            and part[1] not in self.here[part[0]]
            and not self.inflight.get(part)
        )
        if not asked:
            return
        sends = {part: self.sends.get(part, 0) for part in asked}
        ends = await self.ends(asked)
        still = self.owned()
        for part in asked:
            quiet = self.sends.get(part, 0) == sends[part] and not self.inflight.get(part)
            if quiet and part in still and part in ends and self.committed(part) >= ends[part]:
                self.here[part[0]].add(part[1])

    def forget(self, parts: Iterable[Part]) -> None:
        """Partitions revoked: through Kafka again until committed to their end."""
        for stage, partition in parts:
            self.here.get(stage, set()).discard(partition)
