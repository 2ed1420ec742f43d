"""How a stage stores its states: each key's write to the table's store, and the
table's changelog records sent as one Kafka batch per partition.

``table[key] = state`` in Faust sends one changelog message per key: a future, a place
in Faust's producer buffer (100 messages; ``flush_atmost`` waits for each one with an
``asyncio.wait_for``), aiokafka's per-message send, a callback, and a RocksDB write of
the persisted offset on every answer. A py-spy sample of the worker catching up
(docs/design.md, "Where a worker's time goes") put 77 % of its time in asyncio, Faust,
mode and aiokafka and 7 % in the steps. :class:`ChangelogBatches` writes the same records
(the store's own encoding of key and value, to the key's partition: recovery, standbys
and compaction read them as Faust's own) with aiokafka's ``create_batch`` /
``send_batch``, and sets the persisted offset once per batch, when the broker answers.

Faust flushes its producer before it commits input offsets
(``faust/transport/consumer.py::Consumer.commit``), and the batches go through that
producer, so no offset is committed before the changelog it covers is in Kafka, as with
Faust's own sends.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from functools import partial
from typing import Any, Protocol

from faust.stores.base import SerializedStore
from faust.types import TP

from streams.transport import as_current

Envelope = tuple[Any, dict[str, Any]]  # a Faust event (an envelope) and its keys' states


class Writes(Protocol):
    async def write(self, envelopes: list[Envelope]) -> None: ...


class KeyWrites:
    """``table[key] = state`` for each key, in its envelope as the current event: Faust's
    own path (a changelog message per key), and a plain dict's in unit tests."""

    def __init__(self, table: MutableMapping[str, Any]):
        self.table = table

    async def write(self, envelopes: list[Envelope]) -> None:
        for event, states in envelopes:
            as_current(event)
            for key, state in states.items():
                self.table[key] = state


class ChangelogBatches:
    """Stores a Faust table's states and sends their changelog records in one Kafka batch
    per partition per call (see the module's docstring).

    ``producer`` is the app's Faust producer: the batches go through the aiokafka
    producer it sends with (``_ensure_producer()``; started with the app, so asked for
    at each write), which its flush before an offset commit waits for.
    """

    def __init__(self, table: Any, producer: Any):
        self.table = table
        self.producer = producer

    async def write(self, envelopes: list[Envelope]) -> None:
        store = self.table.data
        encoded = isinstance(store, SerializedStore)  # RocksDB: holds the record's bytes
        records: dict[int, list[tuple[bytes, bytes | None]]] = {}
        for event, states in envelopes:
            as_current(event)  # RocksDB writes into the current event's partition
            rows = records.setdefault(event.message.partition, [])
            for key, state in states.items():
                record = store._encode_key(key), store._encode_value(state)
                if encoded:
                    store._set(*record)  # what store[key] = state does, encoded once
                else:
                    store[key] = state
                rows.append(record)
        topic = self.table.changelog_topic.get_topic_name()
        producer = self.producer._ensure_producer()
        for partition, rows in records.items():
            await self._send(producer, TP(topic, partition), rows)

    async def _send(self, producer: Any, tp: TP, rows: list[tuple[bytes, bytes | None]]) -> None:
        batch, n = producer.create_batch(), 0
        for key, value in rows:
            if batch.append(key=key, value=value, timestamp=None) is None:
                if not n:
                    raise ValueError(f"a record of {len(value or b'')} bytes fits no batch")
                await self._submit(producer, batch, tp, n)
                batch, n = producer.create_batch(), 0
                batch.append(key=key, value=value, timestamp=None)
            n += 1
        if n:
            await self._submit(producer, batch, tp, n)

    async def _submit(self, producer: Any, batch: Any, tp: TP, n: int) -> None:
        fut = await producer.send_batch(batch, tp.topic, partition=tp.partition)
        fut.add_done_callback(partial(self._sent, tp, n))

    def _sent(self, tp: TP, n: int, fut: Any) -> None:
        """What Faust does on each answer (``Collection._on_changelog_sent``), once per
        batch: the store remembers the last changelog offset it holds, so that a restart
        reads only what came after."""
        if fut.cancelled() or fut.exception() is not None:
            return  # the input offsets are not committed either: the batch is replayed
        self.table.data.set_persisted_offset(tp, fut.result().offset + n - 1)
