"""The tables' changelog batches through the real broker, read back as Faust recovers.

The claim is about Kafka: what ``ChangelogBatches`` puts in a changelog topic is, record
for record, what the store holds (key and value bytes, partition, order), and the
persisted offset it sets is that of the last record of each partition, so that a store
recovered from the topic, or resumed from its offset, holds the same states.
"""

from __future__ import annotations

import asyncio
import json

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from faust.types import TP

from streams.changelog import ChangelogBatches, KeyWrites
from tests.streams.fakes import Event, Message


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


class Table:
    def __init__(self, topic: str):
        self.data = Store()
        self.changelog_topic = self
        self.topic = topic

    def get_topic_name(self) -> str:
        return self.topic


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


def test_the_changelog_holds_each_write_in_its_partition_and_the_offset_is_the_last(
    kafka_bootstrap, kafka_topic_factory
):
    topic = kafka_topic_factory("changelog", partitions=3)
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
            table = Table(topic)
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
    assert store == {"a": {"n": 2}, "b": None, **{f"k{i}": {"n": i, "pad": big} for i in range(40)}}
    assert store.offsets == {TP(topic, p): rows[-1][0] for p, rows in got.items() if rows}
    assert got[1][-1][0] == 39 and TP(topic, 2) not in store.offsets
    # Recovered from the topic alone (as a standby or a new disk does: latest wins):
    recovered = {json.loads(k): v and json.loads(v) for p in got for _, k, v in got[p]}
    assert recovered == dict(store)


def test_key_writes_store_each_key_once_per_envelope_in_order():
    table: dict = {}
    envelopes = [(Event({}), {"a": 1, "b": 2}), (Event({}), {"a": 3})]
    asyncio.run(KeyWrites(table).write(envelopes))
    assert table == {"a": 3, "b": 2}
