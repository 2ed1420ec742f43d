"""How a stage reads and stores its states: each key's state in the partition database
of its key, and the table's changelog records sent as one Kafka batch per partition.

``table[key] = state`` in Faust sends one changelog message per key: a future, a place
in Faust's producer buffer (100 messages; ``flush_atmost`` waits for each one with an
``asyncio.wait_for``), aiokafka's per-message send, a callback, and a RocksDB write of
the persisted offset on every answer. A py-spy sample of the worker catching up
(docs/design.md, "Where a worker's time goes") put 77 % of its time in asyncio, Faust,
mode and aiokafka and 7 % in the steps. :class:`ChangelogBatches` writes the same records
(the store's own encoding of key and value, to the key's partition: recovery, standbys
and compaction read them as Faust's own) with aiokafka's ``create_batch`` /
``send_batch``, and sets the persisted offset once per batch, when the broker answers.

Reads and writes of a RocksDB store go straight to the partition database of each key
(:class:`TableReads`, :meth:`ChangelogBatches.write`), with the codec Faust's ``json``
serializer calls: Faust's own read (``SerializedStore.__getitem__``) and write look up
the current event, pass key and value through its serializer registry (which decodes
the bytes to a string before parsing them), and note each key's partition in an LRU
under a lock; a write is one ``put`` per key where here one ``WriteBatch`` a partition
does (bench/README.md, session 43).

Faust flushes its producer before it commits input offsets
(``faust/transport/consumer.py::Consumer.commit``), and the batches go through that
producer, so no offset is committed before the changelog it covers is in Kafka, as with
Faust's own sends.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping
from functools import partial
from typing import Any, Protocol

from faust.stores.rocksdb import Store as RocksDBStore
from faust.types import TP
from faust.utils import json as faust_json
from rocksdict import WriteBatch

from streams.transport import as_current

Envelope = tuple[Any, dict[str, Any]]  # a Faust event (an envelope) and its keys' states


#: What Faust's ``json`` serializer (the worker's, for keys and values) calls: the bytes
#: of a table's keys and states, as its store and changelog hold them.
encode = faust_json.dumps
decode = faust_json.loads


class Writes(Protocol):
    async def write(self, envelopes: list[Envelope]) -> None: ...


def store_of(table: Mapping[str, Any]) -> Mapping[str, Any]:
    """The store under a Faust table (``table.data``; a plain mapping is its own), read
    directly: a table's ``get`` asks its store ``key in`` and then ``[key]``
    (``mode/utils/collections.py::FastUserDict.__getitem__``), two reads where the
    store's own ``get`` does one."""
    return getattr(table, "data", table)


def on_disk(store: Any) -> bool:
    """Whether ``store`` is Faust's RocksDB store, read and written here by partition; if
    so, checks that its keys and values are encoded as :data:`encode` encodes them."""
    if not isinstance(store, RocksDBStore):
        return False
    probe = {"a": [1, None, "b"], "c": {"d": 0.5}}
    if store._encode_key("k") != encode("k") or store._encode_value(probe) != encode(probe):
        raise ValueError(
            f"table {store.table.name!r}: states are JSON here (key_serializer, value_serializer)"
        )
    return True


class TableReads:
    """A table's states, read in the partition database of each key: the partition of
    the envelopes that carry the key (``streams.transport.partition_of``), whose
    changelog partition it is. A store in memory (or a plain mapping, in unit tests) is
    read by ``get``, with no partition."""

    def __init__(self, table: Mapping[str, Any]):
        self.store: Any = store_of(table)
        self.rocks = on_disk(self.store)

    def of(self, partition: int, keys: Iterable[str]) -> dict[str, Any]:
        """``{key: state}`` of ``keys`` of ``partition`` (one this worker holds), None
        where there is none: one multi-get (about 3 µs a key against 4 one at a time, in
        a database of 100,000 states flushed to disk, bench/README.md, session 43)."""
        if not self.rocks:
            return {key: self.store.get(key) for key in keys}
        return self._read(self.store._db_for_partition(partition), list(dict.fromkeys(keys)))

    def many(self, keys: Mapping[str, int]) -> dict[str, Any]:
        """``{key: state}`` of ``{key: partition}``; None where there is none, and for
        every key of a partition whose database is not open here (revoked meanwhile, or
        never held: Faust's own read without a current event finds nothing there either,
        and opening one would take another worker's lock)."""
        if not self.rocks:
            return {key: self.store.get(key) for key in keys}
        by_partition: dict[int, list[str]] = {}
        for key, partition in keys.items():
            by_partition.setdefault(partition, []).append(key)
        states: dict[str, Any] = {}
        for partition, names in by_partition.items():
            db = self.store._dbs.get(partition)
            states.update(self._read(db, names) if db is not None else dict.fromkeys(names))
        return {key: states[key] for key in keys}

    @staticmethod
    def _read(db: Any, names: list[str]) -> dict[str, Any]:
        """``{name: state}`` of distinct ``names`` in one partition database: one multi-get."""
        raws = db.get([encode(k) for k in names])
        return {k: None if raw is None else decode(raw) for k, raw in zip(names, raws, strict=True)}


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
        self.rocks = on_disk(table.data)

    async def write(self, envelopes: list[Envelope]) -> None:
        store = self.table.data
        records: dict[int, list[tuple[bytes, bytes | None]]] = {}
        for event, states in envelopes:
            rows = records.setdefault(event.message.partition, [])
            if self.rocks:
                rows.extend((encode(key), encode(state)) for key, state in states.items())
                continue
            as_current(event)
            for key, state in states.items():
                store[key] = state
                rows.append((store._encode_key(key), store._encode_value(state)))
        if self.rocks:
            for partition, rows in records.items():
                batch = WriteBatch(raw_mode=True)  # the store's databases are raw too
                for key, value in rows:
                    batch.put(key, value)
                store._db_for_partition(partition).write(batch)
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
