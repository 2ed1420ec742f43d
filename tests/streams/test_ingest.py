"""The bulk ingest's order of effects: W, then the envelopes, then (once the broker has
them) the offsets; and a failure that loses nothing. The consumer is a stand-in (the
claims are about our loop); the worker tests in test_worker.py run it on the broker."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from faust.exceptions import ProducerSendError

from models.pseudonym import Pseudonymiser
from streams.ingest import BulkIngest
from streams.stages import Door
from streams.transport import Sender
from tests.streams.fakes import Topic
from tilannekuva.synthetic import synthesize

KEY = b"unit-test-key-0123456789"


@dataclass(frozen=True)
class Record:
    offset: int
    value: bytes
    timestamp: int = 1_700_000_000_000  # ms, as Kafka gives it


class Consumer:
    """Serves ``log`` ({partition: [raw, ...]}) from its position, ``per_batch`` records a
    partition per getmany; records commits and seeks."""

    def __init__(self, log: dict[int, list[bytes]], per_batch: int = 1000):
        self.log = log
        self.per_batch = per_batch
        self.position = dict.fromkeys(log, 0)
        self.committed: list[dict] = []
        self.seeks: list[tuple[int, int]] = []
        self.mine = set(log)
        self.commit_error: Exception | None = None
        self.read_error: Exception | None = None
        self.start_error: Exception | None = None
        self.states: list[str] = []

    async def start(self):
        if self.start_error is not None:
            self.states.append("start failed")
            raise self.start_error
        self.states.append("started")

    async def stop(self):
        self.states.append("stopped")

    async def getmany(self, timeout_ms=0, max_records=None):
        await asyncio.sleep(0)  # as the real one waits for records: others run meanwhile
        if self.read_error is not None:
            error, self.read_error = self.read_error, None
            raise error
        out = {}
        for tp, raws in self.log.items():
            at = self.position[tp]
            chunk = raws[at : at + self.per_batch]
            if chunk:
                out[tp] = [Record(at + i, raw) for i, raw in enumerate(chunk)]
                self.position[tp] = at + len(chunk)
        return out

    async def commit(self, offsets):
        if self.commit_error is not None:
            raise self.commit_error
        self.committed.append(dict(offsets))

    def assignment(self):
        return set(self.mine)

    def seek(self, tp, offset):
        self.seeks.append((tp, offset))
        self.position[tp] = offset


class Ingest:
    def __init__(self, consumer: Consumer, topic: Topic):
        self.effects: list[str] = []
        self.dlq = Topic()
        self.topic = topic
        self.slept: list[float] = []
        self.loop = BulkIngest(
            lambda: consumer,
            Door(Pseudonymiser(KEY), lambda day: None, lambda day: None, 4, lambda: "t"),
            self._flush,
            Sender({"id": topic}),
            self.dlq,
            sleep=self._sleep,
        )
        self.loop.consumer = consumer

    async def _flush(self) -> None:
        self.effects.append(f"W after {len(self.topic.sent)} envelopes")

    async def _sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


def raw_lines(n: int) -> list[bytes]:
    return [line.encode() for line in synthesize(4, 7).lines[:n]]


def sent_events(topic: Topic) -> list[str]:
    return sorted(item[1]["event_id"] for s in topic.sent for item in s["value"]["items"])


def test_a_batch_raises_w_then_sends_then_commits_once_the_broker_has_it():
    lines = raw_lines(40)
    consumer = Consumer({0: lines[:25], 1: lines[25:] + [b"{broken"]})
    topic = Topic(hold=True)
    ingest = Ingest(consumer, topic)

    async def run():
        step = asyncio.create_task(ingest.loop.step())
        for _ in range(20):
            await asyncio.sleep(0)
        assert topic.sent and consumer.committed == []  # sent, not yet acknowledged
        topic.acknowledge()
        return await step

    assert asyncio.run(run()) == 41
    assert ingest.effects == ["W after 0 envelopes"]
    assert consumer.committed == [{0: 25, 1: 16}]
    assert len(sent_events(topic)) == 40
    assert [r["value"]["reason"].split(":")[0] for r in ingest.dlq.sent] == ["not_json"]


def test_a_failed_send_commits_nothing_and_reads_the_batch_again():
    lines = raw_lines(30)
    consumer = Consumer({0: lines[:10], 1: lines[10:20], 2: lines[20:]})
    consumer.mine = {0, 1}  # partition 2 went to another worker meanwhile
    topic = Topic(fail=ProducerSendError("broker away"))
    ingest = Ingest(consumer, topic)
    assert asyncio.run(ingest.loop.step()) == 30
    assert consumer.committed == [] and sorted(consumer.seeks) == [(0, 0), (1, 0)]
    assert ingest.slept == [0.5]
    topic.fail = None
    consumer.position[2] = 10  # its new owner reads it
    assert asyncio.run(ingest.loop.step()) == 20
    assert consumer.committed == [{0: 10, 1: 10}]
    assert sent_events(topic) == sorted(
        Pseudonymiser(KEY).event(json.loads(x))["event_id"] for x in lines[:20]
    )
    assert ingest.loop.failures == 0


def test_failures_back_off_up_to_the_cap_and_a_refused_commit_is_left_to_the_next_owner():
    lines = raw_lines(5)
    consumer = Consumer({0: lines})
    topic = Topic(fail=ProducerSendError("broker away"))
    ingest = Ingest(consumer, topic)
    for _ in range(9):
        asyncio.run(ingest.loop.step())
    assert ingest.slept == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    topic.fail = None
    consumer.commit_error = RuntimeError("rebalanced")
    assert asyncio.run(ingest.loop.step()) == 5  # forwarded; the commit refused, no raise
    assert consumer.committed == [] and len(sent_events(topic)) == 5


def test_a_failed_read_pauses_and_the_next_read_goes_on():
    lines = raw_lines(5)
    consumer = Consumer({0: lines})
    consumer.read_error = RuntimeError("fetch failed")
    ingest = Ingest(consumer, Topic())
    assert asyncio.run(ingest.loop.step()) == 0 and ingest.slept == [0.5]
    assert asyncio.run(ingest.loop.step()) == 5 and consumer.committed == [{0: 5}]


def test_a_consumer_that_cannot_start_is_replaced_until_one_starts():
    lines = raw_lines(3)
    made: list[Consumer] = []

    def make() -> Consumer:
        made.append(Consumer({0: lines}))
        if len(made) < 3:
            made[-1].start_error = ConnectionError("no broker")
        return made[-1]

    ingest = Ingest(Consumer({}), Topic())
    ingest.loop.make_consumer = make

    async def run():
        task = asyncio.create_task(ingest.loop.run())
        for _ in range(200):
            await asyncio.sleep(0)
            if made and made[-1].committed:
                break
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass

    asyncio.run(run())
    assert [c.states for c in made] == [
        ["start failed", "stopped"],
        ["start failed", "stopped"],
        ["started", "stopped"],
    ]
    assert ingest.slept[:2] == [0.5, 1.0] and made[-1].committed == [{0: 3}]
