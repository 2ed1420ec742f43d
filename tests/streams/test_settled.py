"""Settled against the real broker: a group has caught up only once it has committed
every message of every topic it is asked about."""

import asyncio
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from streams.settled import Settled


async def test_a_group_is_settled_once_it_has_committed_every_message(
    kafka_bootstrap, kafka_topic_factory
):
    first, second = kafka_topic_factory("a", partitions=2), kafka_topic_factory("b")
    group = f"tk-settled-{uuid.uuid4().hex[:8]}"
    settled = Settled(kafka_bootstrap, group, [first, second])
    missing = Settled(kafka_bootstrap, group, [first, f"never-created-{group}"])
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False
    )
    await producer.start()
    await consumer.start()
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

        async def commit(tp: TopicPartition, offset: int) -> None:
            consumer.assign([tp])
            await consumer.commit({tp: OffsetAndMetadata(offset, "")})

        await commit(TopicPartition(first, 0), 1)
        await commit(TopicPartition(first, 1), 1)
        assert not await settled()  # the second topic is not consumed yet
        await commit(TopicPartition(second, 0), 1)
        assert await settled()
        await producer.send_and_wait(second, b"z")
        assert not await settled()
        assert not await missing()  # a topic that does not exist yet
    finally:
        await settled.close()
        await missing.close()
        await producer.stop()
        await consumer.stop()
