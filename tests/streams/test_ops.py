"""TrendAlerts against a real Redis (no broker); the upkeep helpers."""

import datetime as dt
import logging

import redis.asyncio as aioredis

from models.alerts import TrendRule
from sinks import keys
from sinks.alert_store import AsyncAlertStore
from streams.ops import TrendAlerts, quiet_logs, record_lag
from tests.conftest import write_counts
from tests.streams.fakes import Topic

RULE = TrendRule(window_days=30, rise=0.05, min_families=20)


def set_picture(client, as_of: str, assisted: int) -> None:
    """A picture that is published on ``as_of`` (W is the day after: the day ``as_of`` is
    complete), the same on every day since 2025-12-01."""
    for k in client.scan_iter(keys.PATTERN):
        if k.startswith(keys.HIST.encode()) or k.startswith(keys.AGG.encode()):
            client.delete(k)
    pipe = client.pipeline()
    fields = {"families": 400, "children": 700, "families_social_assistance": assisted}
    write_counts(pipe, "all", fields, "2025-12-01")
    w = dt.date.fromisoformat(as_of) + dt.timedelta(days=1)
    pipe.mset({keys.WATERMARK: w.isoformat(), keys.FIRST_DAY: "2025-12-01"})
    pipe.execute()


async def test_a_tick_raises_to_the_topic_and_records_once(redis_test_url, redis_client):
    client = aioredis.from_url(redis_test_url)
    topic = Topic()
    ticks = TrendAlerts(client, topic, RULE, 5, lambda: "2030-01-01T00:00:00Z")
    set_picture(redis_client, "2026-01-01", 40)
    assert await ticks() == 0
    set_picture(redis_client, "2026-02-05", 80)  # 10 % → 20 % in 35 days
    assert await ticks() == 1
    assert await ticks() == 0  # still active: raised once
    (sent,) = topic.sent
    assert sent["value"]["scope"] == "all" and sent["key"] == sent["value"]["id"].encode()
    assert sent["value"]["as_of"] == "2026-02-05"  # the published day, W − 1
    recorded = await AsyncAlertStore(client).load()
    assert recorded is not None and redis_client.zcard(keys.ALERTS) == 1
    await client.aclose()


async def test_a_failed_tick_is_logged_and_returns_nothing(redis_test_url, redis_client, caplog):
    client = aioredis.from_url(redis_test_url)
    set_picture(redis_client, "2026-01-01", 40)
    ticks = TrendAlerts(client, Topic(fail=RuntimeError("broker down")), RULE, 5, lambda: "t")
    set_picture(redis_client, "2026-03-01", 120)
    await TrendAlerts(client, Topic(), RULE, 5, lambda: "t")()  # baseline tick
    set_picture(redis_client, "2026-05-01", 300)
    with caplog.at_level(logging.ERROR, logger="tilannekuva.worker"):
        assert await ticks() == 0
    assert "trend alert tick failed" in caplog.text
    await client.aclose()


class Consumer:
    def __init__(self, high, pos):
        self.high, self.pos = high, pos

    def highwater(self, tp):
        if tp.partition == 9:
            raise RuntimeError("not assigned any more")
        return self.high

    async def position(self, tp):
        return self.pos


async def test_record_lag_sets_the_gauge_per_partition_and_skips_failures():
    from types import SimpleNamespace

    from prometheus_client import REGISTRY

    tps = [SimpleNamespace(topic="t-lag", partition=p) for p in (0, 9)]
    await record_lag(Consumer(120, 100), tps)
    value = REGISTRY.get_sample_value("tk_consumer_lag", {"topic": "t-lag", "partition": "0"})
    assert value == 20
    assert (
        REGISTRY.get_sample_value("tk_consumer_lag", {"topic": "t-lag", "partition": "9"}) is None
    )


def test_quiet_logs_sets_the_libraries_levels_and_keeps_producer_warnings_down():
    quiet_logs("INFO")
    assert logging.getLogger("aiokafka").level == logging.INFO
    assert logging.getLogger("faust.transport.producer").level == logging.ERROR
    quiet_logs("WARNING")
