"""``tilannekuva produce``: lines go into the topic as-is, malformed ones too."""

from __future__ import annotations

import collections
import gzip
import time

import pytest

from tilannekuva import produce as P
from tilannekuva.synthetic import synthesize, write_lines


def test_read_lines_plain_gzip_and_limit(tmp_path):
    lines = ['{"a":1}', "not json", "", '{"b":"\u00e4"}']
    plain = tmp_path / "e.jsonl"
    plain.write_text("\n".join(lines) + "\n", encoding="utf-8")
    gz = tmp_path / "e.jsonl.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    expected = [x.encode("utf-8") for x in lines]
    assert list(P.read_lines(str(plain))) == expected
    assert list(P.read_lines(str(gz))) == expected
    assert list(P.read_lines(str(plain), limit=2)) == expected[:2]


class _Future:
    def add_errback(self, fn):
        return self


class _FakeProducer:
    def __init__(self):
        self.sent = []
        self.flushed = False

    def send(self, topic, value):
        self.sent.append((topic, value))
        return _Future()

    def flush(self):
        self.flushed = True


def test_produce_sends_bytes_and_paces():
    fake = _FakeProducer()
    lines = [f"line {i}".encode() for i in range(30)]
    t0 = time.perf_counter()
    n = P.produce(iter(lines), fake, "topic-x", rate=100)
    took = time.perf_counter() - t0
    assert n == 30 and fake.flushed
    assert fake.sent == [("topic-x", x) for x in lines]
    assert took >= 0.25  # 30 events at 100/s


# Pacing on a fake clock: the claim is about the pacing loop, not about Kafka (the
# broker path is the integration test below, the worker tests and the bench).
class Clock:
    def __init__(self):
        self.now, self.sleeps = 0.0, 0

    def perf_counter(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.sleeps += 1
        self.now += s


class Recorder:
    """Records when each line was handed over, on the fake clock."""

    def __init__(self, clock: Clock):
        self.clock, self.at = clock, []

    def send(self, topic, value):
        self.at.append(self.clock.now)
        self.clock.now += 1e-6  # sending costs a little time
        return self

    def add_errback(self, fn):
        return self

    def flush(self):
        pass


@pytest.mark.parametrize("rate", [500.0, 2000.0])
def test_paced_sending_keeps_the_rate_in_ticks_not_per_line(monkeypatch, rate):
    clock = Clock()
    monkeypatch.setattr(P, "time", clock)
    rec = Recorder(clock)
    n = 4000
    assert P.produce((b"x" for _ in range(n)), rec, "t", rate=rate) == n
    # never ahead of the rate by more than one tick, and on time at the end
    for i, t in enumerate(rec.at):
        assert i / rate - t <= P.PACE_TICK_S + 1e-9
    assert rec.at[-1] == pytest.approx((n - 1) / rate, abs=P.PACE_TICK_S)
    # one sleep per tick, not per line
    assert clock.sleeps <= n / (rate * P.PACE_TICK_S) + 1


def test_unpaced_sending_never_sleeps(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(P, "time", clock)
    assert P.produce((b"x" for _ in range(100)), Recorder(clock), "t", rate=0) == 100
    assert clock.sleeps == 0


@pytest.mark.integration
def test_produce_then_consume_exactly_those_lines(tmp_path, kafka_bootstrap, kafka_topic_factory):
    from kafka import KafkaConsumer

    from tilannekuva import cli

    topic = kafka_topic_factory("produce", partitions=2)
    result = synthesize(8, seed=21, malformed=0.05, duplicates=0.02)
    path = tmp_path / "events.jsonl.gz"
    write_lines(str(path), result.lines)
    expected = list(P.read_lines(str(path)))
    assert any(not x.startswith(b"{") for x in expected) or result.counts["malformed"] > 0

    import os

    old = os.environ.get("KAFKA_BOOTSTRAP")
    os.environ["KAFKA_BOOTSTRAP"] = kafka_bootstrap
    try:
        assert (
            cli.main(["produce", str(path), "--topic", topic, "--rate", "0", "--no-progress"]) == 0
        )
    finally:
        if old is None:
            os.environ.pop("KAFKA_BOOTSTRAP", None)
        else:
            os.environ["KAFKA_BOOTSTRAP"] = old

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=10_000,
    )
    got = []
    deadline = time.monotonic() + 60
    try:
        while len(got) < len(expected) and time.monotonic() < deadline:
            for msg in consumer:
                got.append(msg.value)
                if len(got) >= len(expected):
                    break
    finally:
        consumer.close()
    assert collections.Counter(got) == collections.Counter(expected)
    assert len(got) == len(expected)
