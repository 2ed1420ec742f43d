"""The worker's own upkeep: trend alerts on the leader, consumer lag, log levels."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any

from models.alerts import TrendRule, alert_step
from models.publication import publish_picture
from models.suppression import suppress
from sinks import metrics, redis_reader
from sinks.alert_store import AsyncAlertStore
from streams.transport import Topic

log = logging.getLogger("tilannekuva.worker")


class TrendAlerts:
    """One tick of area trends in event time (models/alerts.py), from the suppressed
    picture. Alerts go to the alert topic first, then to Redis with the new state; a
    crash in between repeats the tick with the same alert ids, which Redis skips and
    consumers can drop. ``topic`` None: Redis only (the demo runs without Kafka)."""

    def __init__(
        self,
        redis: Any,
        topic: Topic | None,
        rule: TrendRule,
        min_cell: int,
        now: Callable[[], str],
    ):
        self.redis = redis
        self.topic = topic
        self.rule = rule
        self.min_cell = min_cell
        self.now = now
        self.store = AsyncAlertStore(redis)

    async def __call__(self) -> int:
        """Raise what the tick finds; returns how many (0 after a failed tick)."""
        try:
            # Alerts see only what is published (docs/disclosure.md): the last completed
            # day, W − 1, suppressed and perturbed as the API publishes it.
            raw = await redis_reader.read_published_async(self.redis)
            if raw is None:
                return 0
            loop = asyncio.get_running_loop()
            shown = await loop.run_in_executor(None, suppress, raw, self.min_cell)
            shown = publish_picture(shown, raw["keys"], self.min_cell)
            previous = await self.store.load()
            state, raised = alert_step(previous, shown, raw["as_of"], self.now(), self.rule)
            for alert in raised if self.topic is not None else ():
                await self.topic.send(key=alert["id"].encode(), value=alert)
            await self.store.record(state, raised)
        except Exception:  # alerts are derived; the picture must go on
            log.exception("trend alert tick failed; retrying at the next tick")
            return 0
        metrics.ALERTS.inc(len(raised))
        return len(raised)


async def record_lag(consumer: Any, assigned: Iterable[Any]) -> None:
    """Consumer lag per topic and partition (best effort, never fatal)."""
    for tp in assigned:
        try:
            high = consumer.highwater(tp)
            pos = await consumer.position(tp)
        except Exception:  # lag is a gauge; a failed read waits for the next tick
            continue
        if high is not None and pos is not None:
            metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(max(0, high - pos))


def quiet_logs(loglevel: str | int) -> None:
    """mode's worker set-up can leave faust/aiokafka debug records enabled, which costs
    a few per cent on the send path; honour the requested level. Under a backlog Faust
    warns of a full producer buffer ten times a second: that is its flow control
    working, not news (consumer lag is the metric to watch)."""
    level = logging.getLevelName(loglevel.upper()) if isinstance(loglevel, str) else loglevel
    for name in ("faust", "aiokafka", "mode", "kafka"):
        logging.getLogger(name).setLevel(level)
    logging.getLogger("faust.transport.producer").setLevel(max(level, logging.ERROR))


def assigned_partitions(app: Any, topic: Any) -> set[int]:
    """The partitions of ``topic`` this worker owns now."""
    name = topic.get_topic_name()
    return {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == name}


def tables_recovered(app: Any) -> bool:
    """Whether the tables are whole: not rebalancing, recovery done."""
    return not (app.rebalancing or app.in_recovery) and app.tables.recovery.completed.is_set()


async def metrics_view(web: Any, request: Any) -> Any:
    """``/metrics`` on the worker's web server, for Prometheus."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return web.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])
