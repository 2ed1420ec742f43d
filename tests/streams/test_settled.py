"""Settled against the real broker: the groups have caught up only once each has
committed every message of every topic it is asked about (the worker's ingest group
the raw topic, Faust's group the internal ones)."""

import asyncio
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from streams.settled import Settled


async def test_groups_are_settled_once_each_has_committed_every_message_of_its_topics(
    kafka_bootstrap, kafka_topic_factory
):
    first, second = kafka_topic_factory("a", partitions=2), kafka_topic_factory("b")
    group = f"tk-settled-{uuid.uuid4().hex[:8]}"
    other = f"{group}-other"
    settled = Settled(kafka_bootstrap, {group: [first], other: [second]})
    missing = Settled(kafka_bootstrap, {group: [first, f"never-created-{group}"]})
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    consumer, consumer_of_other = (
        AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=g, enable_auto_commit=False)
        for g in (group, other)
    )
    await producer.start()
    await consumer.start()
    await consumer_of_other.start()
    try:
        # Nothing written, nothing to wait for, once the broker can say: a fresh broker
        # has no group coordinator until its offsets topic exists (False meanwhile).
        deadline = asyncio.get_running_loop().time() + 60
        while not await settled():
            assert asyncio.get_running_loop().time() < deadline, "the broker never answered"
            await asyncio.sleep(0.5)
        for p in (0, 1):
            await producer.send_and_wait(first, b"x", partition=p)
        await producer.send_and_wait(second, b"y")
        assert not await settled()

        async def commit(by: AIOKafkaConsumer, tp: TopicPartition, offset: int) -> None:
            by.assign([tp])
            await by.commit({tp: OffsetAndMetadata(offset, "")})

        await commit(consumer, TopicPartition(first, 0), 1)
        await commit(consumer, TopicPartition(first, 1), 1)
        assert not await settled()  # the second topic is not consumed yet
        await commit(consumer, TopicPartition(second, 0), 1)
        assert not await settled()  # ... by the group that is asked about it
        await commit(consumer_of_other, TopicPartition(second, 0), 1)
        assert await settled()
        await producer.send_and_wait(second, b"z")
        assert not await settled()
        assert not await missing()  # a topic that does not exist yet
    finally:
        await settled.close()
        await missing.close()
        await producer.stop()
        await consumer.stop()
        await consumer_of_other.stop()
