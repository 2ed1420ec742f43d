"""TrendAlerts against a real Redis (no broker); the upkeep helpers."""

import logging

import redis.asyncio as aioredis

from models.alerts import TrendRule
from sinks import keys
from sinks.alert_store import AsyncAlertStore
from streams.ops import TrendAlerts, quiet_logs, record_lag
from tests.streams.fakes import Topic

RULE = TrendRule(window_days=30, rise=0.05, min_families=20)


def set_picture(client, as_of: str, assisted: int) -> None:
    client.set(keys.WATERMARK, as_of)
    client.hset(
        keys.ALL, mapping={"families": 400, "children": 700, "families_social_assistance": assisted}
    )


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
    recorded = await AsyncAlertStore(client).load()
    assert recorded is not None and redis_client.zcard(keys.ALERTS) == 1
    await client.aclose()


async def test_a_failed_tick_is_logged_and_returns_nothing(redis_test_url, redis_client, caplog):
    client = aioredis.from_url(redis_test_url)
    set_picture(redis_client, "2026-01-01", 40)
    ticks = TrendAlerts(client, Topic(fail=RuntimeError("broker down")), RULE, 5, lambda: "t")
    set_picture(redis_client, "2026-03-01", 120)
    await TrendAlerts(client, Topic(), RULE, 5, lambda: "t")()  # baseline tick
    redis_client.set(keys.WATERMARK, "2026-05-01")
    redis_client.hset(keys.ALL, "families_social_assistance", 300)
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
