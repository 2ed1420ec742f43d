"""The tables' changelog batches through the real broker, read back as Faust recovers.

The claim is about Kafka and RocksDB: what ``ChangelogBatches`` puts in a changelog topic
is, record for record, what the store holds (key and value bytes, partition, order), read
back by Faust's own store, and the persisted offset it sets is that of the last record of
each partition, so that a store recovered from the topic, or resumed from its offset,
holds the same states. ``TableReads`` reads what Faust's own store wrote.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from faust.types import TP

from streams.app import faust_app, table
from streams.changelog import ChangelogBatches, KeyWrites, TableReads
from streams.transport import as_current, partition_of
from tests.streams.fakes import Event, Message
from tilannekuva.config import Settings


class Store(dict):
    """A store as Faust's: encodes keys and values (JSON, as the worker's tables do) and
    keeps a persisted offset per partition."""

    def __init__(self):
        super().__init__()
        self.offsets: dict[TP, int] = {}

    def _encode_key(self, key) -> bytes:
        return json.dumps(key).encode()

    def _encode_value(self, value) -> bytes | None:
        return None if value is None else json.dumps(value).encode()

    def set_persisted_offset(self, tp: TP, offset: int) -> None:
        self.offsets[tp] = offset

    def persisted_offset(self, tp: TP) -> int | None:
        return self.offsets.get(tp)

    def held(self, key: str, partition: int):
        return self[key]


class Table:
    def __init__(self, topic: str, data=None):
        self.data = Store() if data is None else data
        self.changelog_topic = self
        self.topic = topic

    def get_topic_name(self) -> str:
        return self.topic


def rocksdb_table(tmp_path, partitions: int = 3):
    """A table of the worker's own (``streams.app``: Faust's RocksDB store, its options
    and serializers), in ``tmp_path``."""
    app = faust_app(Settings(data_dir=str(tmp_path), store="rocksdb"), "127.0.0.1", 6066)
    return table(app, "family", partitions)


def faust_read(store, key: str, partition: int):
    """``store[key]`` as Faust reads it in an agent: the envelope of ``partition`` current."""
    event = Event({}, Message(partition=partition))  # held: the current event is a weakref
    as_current(event)
    return store.get(key)


class FaustProducer:
    def __init__(self, producer: AIOKafkaProducer):
        self.producer = producer

    def _ensure_producer(self) -> AIOKafkaProducer:
        return self.producer


async def read_back(bootstrap: str, topic: str, partitions: int) -> dict[int, list]:
    """``{partition: [(offset, key, value), ...]}`` of every record in ``topic``."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        out: dict[int, list] = {p: [] for p in range(partitions)}
        while sum(map(len, out.values())) < sum(ends.values()):
            for tp, records in (await consumer.getmany(timeout_ms=1000)).items():
                out[tp.partition] += [(r.offset, r.key, r.value) for r in records]
        return out
    finally:
        await consumer.stop()


@pytest.mark.parametrize("store", ["rocksdb", "mapping"])
def test_the_changelog_holds_each_write_in_its_partition_and_the_offset_is_the_last(
    store, kafka_bootstrap, kafka_topic_factory, tmp_path
):
    topic = kafka_topic_factory("changelog", partitions=3)
    data = rocksdb_table(tmp_path).data if store == "rocksdb" else None
    big = "x" * 3000  # with a 16 KiB batch limit, partition 1's 40 writes need several batches
    envelopes = [
        (Event({}, Message(partition=0)), {"a": {"n": 1}, "b": None}),
        (Event({}, Message(partition=1)), {f"k{i}": {"n": i, "pad": big} for i in range(40)}),
        (Event({}, Message(partition=0)), {"a": {"n": 2}}),  # the same key again: latest last
    ]

    async def run():
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, max_batch_size=16 * 1024)
        await producer.start()
        try:
            table = Table(topic, data)
            await ChangelogBatches(table, FaustProducer(producer)).write(envelopes)
            await producer.flush()  # what Faust does before it commits input offsets
            await asyncio.sleep(0)  # the batches' answers run their callbacks
            return table, await read_back(kafka_bootstrap, topic, 3)
        finally:
            await producer.stop()

    table, got = asyncio.run(run())
    store = table.data
    want: dict[int, list] = {0: [], 1: [], 2: []}
    for event, states in envelopes:
        for key, state in states.items():
            want[event.message.partition].append(
                (store._encode_key(key), store._encode_value(state))
            )
    assert {p: [(k, v) for _, k, v in rows] for p, rows in got.items()} == want
    held = {"a": {"n": 2}, "b": None, **{f"k{i}": {"n": i, "pad": big} for i in range(40)}}
    where = {"a": 0, "b": 0, **{f"k{i}": 1 for i in range(40)}}
    assert {k: faust_read(store, k, p) for k, p in where.items()} == held
    offsets = {TP(topic, p): store.persisted_offset(TP(topic, p)) for p in range(3)}
    assert offsets == {TP(topic, p): rows[-1][0] if rows else None for p, rows in got.items()}
    assert got[1][-1][0] == 39 and offsets[TP(topic, 2)] is None
    # Recovered from the topic alone (as a standby or a new disk does: latest wins):
    recovered = {json.loads(k): v and json.loads(v) for p in got for _, k, v in got[p]}
    assert recovered == held


def test_table_reads_find_what_faust_s_own_store_wrote(tmp_path):
    """Each state as Faust stores it (``store[key] = state`` with the key's envelope
    current), read by partition, one and many at a time; a missing key, and a partition
    whose database this worker has not opened, read as None."""
    tbl = rocksdb_table(tmp_path, partitions=4)
    store = tbl.data
    states = {f"F{i}": {"m": [[i, "child", "2011-05-16"]], "t": i / 3} for i in range(60)}
    states["F7"] = None  # a person who left no trace: stored as JSON null
    where = {key: partition_of(key, 4) for key in states}
    for key, state in states.items():
        event = Event({}, Message(partition=where[key]))  # held: the current event is a weakref
        as_current(event)
        store[key] = state
    held = {p for p in where.values()}
    reads = TableReads(tbl)
    assert reads.rocks
    assert {
        k: s for p in held for k, s in reads.of(p, [k for k in where if where[k] == p]).items()
    } == states
    assert reads.many(where) == states
    assert reads.of(where["F3"], ["nobody", "F3", "F3"]) == {"nobody": None, "F3": states["F3"]}
    unopened = {p for p in range(4) if p not in held} or None
    if unopened is None:  # every partition took a key: close one as a revoke does
        closed = where["F3"]
        store._dbs.pop(closed)
        unopened = {closed}
    asked = {**where, "nobody": 0}
    got = reads.many(asked)
    assert got == {
        k: None if p in unopened or k == "nobody" else states[k] for k, p in asked.items()
    }
    assert not any(p in store._dbs for p in unopened)  # many() opened none


def test_key_writes_store_each_key_once_per_envelope_in_order():
    table: dict = {}
    envelopes = [(Event({}), {"a": 1, "b": 2}), (Event({}), {"a": 3})]
    asyncio.run(KeyWrites(table).write(envelopes))
    assert table == {"a": 3, "b": 2}
