"""Ingest: the raw topic read in bulk by a consumer of its own.

Through Faust, every raw message passes the fetcher's drain, the conductor, the stream
and ``take_events`` one at a time: a Faust agent that does nothing consumes about
11,300 messages/s on this machine, aiokafka's ``getmany`` about 394,000 (issue 13). The
internal topics carry envelopes of up to 250 items (``streams/transport.py``), so only
the raw topic, one message per event, paid that per message. Here an aiokafka consumer
reads it a batch at a time, in a group of its own (``<app id>-ingest``: a plain
consumer cannot join the group Faust's assignor runs), so two workers still share its
partitions.

One batch: validate and pseudonymise (:class:`streams.stages.Door`), the DLQ records,
``W`` into Redis, the envelopes to the id topic, and only once the broker has every
envelope, the batch's offsets committed. A failure on the way (the broker away, Redis
waited out by the patient client) seeks the batch's partitions back to its first
offsets and tries again after a backoff: nothing is lost, and what went out twice the
dedup step counts once. A commit refused (a rebalance took a partition) is left to the
partition's new owner, which reads again from the last commit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from streams.stages import Door
from streams.transport import Sender

log = logging.getLogger("tilannekuva.worker")

BATCH = 1000  # raw events per batch
WAIT_MS = 50  # how long a batch may wait to fill


class Topic(Protocol):
    async def send(self, *, value: Any = None) -> Any: ...


class BulkIngest:
    """The ingest loop: ``consumer()`` makes the aiokafka consumer (subscribed to the raw
    topic, its own group, no auto-commit), ``flush()`` writes the ``W`` the door raised."""

    def __init__(
        self,
        consumer: Callable[[], Any],
        door: Door,
        flush: Callable[[], Awaitable[Any]],
        send: Sender,
        dlq: Topic,
        batch: int = BATCH,
        backoff_s: tuple[float, float] = (0.5, 30.0),
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ):
        self.make_consumer = consumer
        self.door = door
        self.flush = flush
        self.send = send
        self.dlq = dlq
        self.batch = batch
        self.backoff_s = backoff_s
        self.sleep = sleep
        self.consumer: Any = None
        self.failures = 0

    async def run(self) -> None:
        """Until cancelled (the worker stops): start the consumer, then batch after batch."""
        while True:  # a consumer whose start failed is not started again: a new one
            self.consumer = self.make_consumer()
            if await self._started():
                break
            await self._wait()
        try:
            while True:
                await self.step()
        finally:
            await self.consumer.stop()

    async def step(self) -> int:
        """One batch; how many records it read."""
        try:
            got = await self.consumer.getmany(timeout_ms=WAIT_MS, max_records=self.batch)
        except Exception as exc:  # aiokafka retries a broker away itself; whatever else
            log.warning("ingest: cannot read (%r); again after a pause", exc)
            await self._wait()
            return 0
        records = [r for rs in got.values() for r in rs]
        if not records:
            return 0
        try:
            await self.forward(records)
        except Exception as exc:  # the broker or Redis away: the batch again, later
            log.warning(
                "ingest: %d events not forwarded (%r); again after a pause", len(records), exc
            )
            self.rewind(got)
            await self._wait()
            return len(records)
        self.failures = 0
        try:
            await self.consumer.commit({tp: rs[-1].offset + 1 for tp, rs in got.items()})
        except Exception as exc:  # a partition gone to another worker, or the broker away
            log.warning("ingest: offsets not committed (%r); they are read again", exc)
        return len(records)

    async def forward(self, records: list[Any]) -> None:
        """The door's work on ``records``, durable: DLQ records and envelopes in Kafka,
        ``W`` in Redis before any of them."""
        outs, rejected = self.door([(r.value, r.timestamp / 1000.0) for r in records])
        await self.flush()  # W first: no later step sees an event newer than W
        sent = [await self.dlq.send(value=record) for record in rejected]
        await self.send.deliver("ingest", outs)
        await asyncio.gather(*sent)

    def rewind(self, got: dict[Any, list[Any]]) -> None:
        """Back to each partition's first record of the batch, where it is still ours."""
        mine = self.consumer.assignment()
        for tp, rs in got.items():
            if tp in mine:
                self.consumer.seek(tp, rs[0].offset)

    async def _started(self) -> bool:
        try:
            await self.consumer.start()
            return True
        except Exception as exc:  # the broker not up yet
            log.warning("ingest: cannot start its consumer (%r); again after a pause", exc)
            try:
                await self.consumer.stop()
            except Exception:  # what it had opened is gone with it
                pass
            return False

    async def _wait(self) -> None:
        first, cap = self.backoff_s
        self.failures += 1
        await self.sleep(min(cap, first * 2 ** (self.failures - 1)))
