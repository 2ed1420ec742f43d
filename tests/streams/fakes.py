"""Stand-ins for Faust's events and topics in unit tests of the worker's parts.

The claims of these tests are about our code (grouping, halving, state handling), not
about Faust or Kafka; the worker tests in test_worker.py run the real broker.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiokafka.errors import MessageSizeTooLargeError
from faust.exceptions import ProducerSendError


@dataclass
class Message:
    partition: int = 0
    timestamp: float | None = None


@dataclass
class Event:
    """What ``take_events`` yields: ``.value`` and ``.message`` (weak-referenceable)."""

    value: Any
    message: Message = field(default_factory=Message)


def envelope(items: list, partition: int = 0) -> Event:
    return Event({"items": items}, Message(partition=partition))


class Topic:
    """Records sends; refuses, as the broker does, envelopes of more than ``max_items``.
    A send returns a future, as Faust's does: done at once, or with ``hold`` only once
    :meth:`acknowledge` is called (the broker's answer)."""

    def __init__(
        self, max_items: int | None = None, fail: Exception | None = None, hold: bool = False
    ):
        self.sent: list[dict] = []
        self.max_items = max_items
        self.fail = fail
        self.hold = hold
        self.futures: list[asyncio.Future] = []

    def acknowledge(self, error: Exception | None = None) -> None:
        for fut in self.futures:
            if not fut.done():
                fut.set_exception(error) if error else fut.set_result(None)

    async def send(self, *, key=None, value=None, partition=None):
        if self.fail is not None:
            raise self.fail
        items = [x for f in ("items", "sample") for x in (value or {}).get(f, [])]
        if self.max_items is not None and len(items) > self.max_items:
            try:
                raise MessageSizeTooLargeError()
            except MessageSizeTooLargeError as cause:
                raise ProducerSendError("too large") from cause
        self.sent.append({"key": key, "value": value, "partition": partition})
        fut = asyncio.get_running_loop().create_future()
        self.futures.append(fut)
        if not self.hold:
            fut.set_result(None)
        return fut


class HeldBack:
    """A step's new states (:class:`streams.stages.Pending`'s shape, as
    ``FamilyWriter.apply`` takes them), stored into ``table`` only once ``release`` is
    set: a write that reached Redis with its store still to come."""

    def __init__(self, table: dict, states: dict):
        self.table, self.states = table, states
        self.release = asyncio.Event()

    async def commit(self) -> None:
        await self.release.wait()
        self.table.update(self.states)
