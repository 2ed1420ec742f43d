"""Envelopes: how the internal topics carry many items in one Kafka message.

Faust's cost per Kafka message (consume, deserialise, send) is far above the cost of a
step, so the internal topics carry envelopes ``{"items": [[key, message, t0], ...]}``,
one per (stage, partition) and batch, sent to the partition of their keys by our own
partitioner (stable across processes and clients).
"""

from __future__ import annotations

import asyncio
import weakref
import zlib
from collections.abc import Awaitable, Iterable, Mapping
from typing import Any, Protocol

from aiokafka.errors import MessageSizeTooLargeError
from faust.exceptions import ProducerSendError
from faust.streams import _current_event as _faust_current_event

from sinks import metrics

ENVELOPE_ITEMS = 250  # feature profiles make an item ~1 KiB; 1000 broke the 1 MB limit


def partition_of(key: str, partitions: int) -> int:
    """Our own partitioner for internal topics.

    >>> partition_of("family-1", 4), partition_of("family-1", 4) == partition_of("family-1", 4)
    (1, True)
    """
    return zlib.crc32(key.encode("utf-8")) % partitions


class Envelopes:
    """Outgoing items grouped by (stage, partition): one Kafka message per group.

    >>> outs = Envelopes(4)
    >>> outs.add("family", "family-1", {"kind": "member"}, 17)
    >>> list(outs.items())
    [(('family', 1), [['family-1', {'kind': 'member'}, 17]])]
    """

    def __init__(self, partitions: int):
        self.partitions = partitions
        self.groups: dict[tuple[str, int], list] = {}

    def add(self, stage: str, key: str, message: dict, t0: float | None) -> None:
        group = (stage, partition_of(key, self.partitions))
        self.groups.setdefault(group, []).append([key, message, t0])

    def items(self) -> Iterable[tuple[tuple[str, int], list]]:
        return self.groups.items()


def as_current(event: Any) -> None:
    """Make ``event`` the current event of this task, so that table writes go to the
    changelog partition of its envelope (which is its keys' partition).

    It must not touch ``Stream.current_event``: ``take_events`` fills its buffer from
    that attribute in another task, and overwriting it there loses and duplicates events.
    """
    _faust_current_event.set(weakref.ref(event))


class Topic(Protocol):
    async def send(
        self, *, key: Any = None, value: Any = None, partition: int | None = None
    ) -> Any: ...


class Sender:
    """Sends items in envelopes the broker accepts: at most ``envelope_items`` items,
    halved again while one is still too large for the broker."""

    def __init__(self, topics: Mapping[str, Topic], envelope_items: int = ENVELOPE_ITEMS):
        self.topics = topics
        self.envelope_items = envelope_items

    async def send_items(
        self, stage: str, partition: int, items: list, field: str = "items"
    ) -> list[Awaitable]:
        """``{field: items}`` to one partition of a stage's topic; a future per envelope,
        done once the broker has it."""
        sent: list[Awaitable] = []
        for i in range(0, len(items), self.envelope_items):
            await self._send(
                self.topics[stage], partition, items[i : i + self.envelope_items], field, sent
            )
        return sent

    async def _send(
        self, topic: Topic, partition: int, chunk: list, field: str, sent: list
    ) -> None:
        try:
            sent.append(
                await topic.send(key=None, partition=partition, value={"items": [], field: chunk})
            )
        except ProducerSendError as exc:
            if not isinstance(exc.__cause__, MessageSizeTooLargeError) or len(chunk) == 1:
                raise
            half = len(chunk) // 2
            await self._send(topic, partition, chunk[:half], field, sent)
            await self._send(topic, partition, chunk[half:], field, sent)

    async def send_envelopes(self, step: str, outs: Envelopes) -> list[Awaitable]:
        """Every group of ``outs`` to its stage's topic and partition; their futures."""
        sent: list[Awaitable] = []
        for (stage, partition), items in outs.items():
            sent += await self.send_items(stage, partition, items)
            metrics.EVENTS_OUT.labels(step).inc(len(items))
        return sent

    async def deliver(self, step: str, outs: Envelopes) -> None:
        """:meth:`send_envelopes`, returning once the broker has every envelope (raising
        if it refused one)."""
        await asyncio.gather(*await self.send_envelopes(step, outs))
