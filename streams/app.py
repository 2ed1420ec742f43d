"""The Faust worker: register events in, the situation picture in Redis out.

Reads top-down in the order data flows: topics, tables, agents, timer. The logic is
in ``models.picture`` (pure steps); this module only moves messages between Kafka,
the tables and the Redis sink.

Delivery is at-least-once: ``take_events`` acks a batch only after its body (sends and
the Redis pipeline) has completed, and Faust flushes the producer before it commits
offsets. Every effect is idempotent, so a batch processed twice changes nothing.
Table writes inside a batch go to the changelog partition of the event being handled:
:func:`_as_current` sets Faust's task-local current event, as per-event iteration would.
It must not touch ``Stream.current_event``: ``take_events`` fills its buffer from that
attribute in another task, and overwriting it there loses and duplicates events.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import weakref

import faust
import redis.asyncio as aioredis
from faust.streams import _current_event as _faust_current_event

from models import picture
from models.contract import InvalidEvent, parse_json, validate
from models.pseudonym import Pseudonymiser
from sinks import metrics
from sinks.redis_sink import AsyncRedisSink
from tilannekuva import config
from tilannekuva.config import Settings

log = logging.getLogger("tilannekuva.worker")

BATCH = 1000
WITHIN = 0.05  # seconds a batch may wait to fill
SWEEP_SECONDS = 1.0


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _as_current(event) -> None:
    """Make ``event`` the current event of this task, for table changelog partitions."""
    _faust_current_event.set(weakref.ref(event))


def _dlq_record(raw: bytes, exc: InvalidEvent) -> dict:
    """The contract's DLQ shape: the original object if it parses, else the text."""
    try:
        original: object = parse_json(raw)
    except InvalidEvent:
        original = raw.decode("utf-8", errors="replace")
    return {"reason": exc.reason, "event": original, "received_at": _now_iso()}


def create_app(settings: Settings, redis_client=None) -> faust.App:
    pseudonymiser = Pseudonymiser(settings.require_pseudonym_key())
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="memory://",
        processing_guarantee="at_least_once",
        topic_partitions=settings.partitions,
        key_serializer="json",
        value_serializer="json",
        web_bind="127.0.0.1",
        web_host="127.0.0.1",
        web_port=6066,
        producer_linger_ms=5,
        broker_commit_every=5000,
        stream_buffer_maxsize=8192,
        consumer_auto_offset_reset="earliest",
    )
    redis = redis_client or aioredis.from_url(settings.redis_url)
    sink = AsyncRedisSink(redis)

    # ------------------------------------------------------------------ topics
    register_events = app.topic(settings.input_topic, key_serializer="raw", value_serializer="raw")
    dlq = app.topic(settings.dlq_topic, key_serializer="raw", value_serializer="json")
    internal = {"partitions": settings.partitions, "internal": True}
    by_id = app.topic(settings.internal_topic(config.TOPIC_BY_ID), **internal)
    by_person = app.topic(settings.internal_topic(config.TOPIC_BY_PERSON), **internal)
    family_inputs = app.topic(settings.internal_topic(config.TOPIC_FAMILY_INPUTS), **internal)
    out_topics = {"person": by_person, "family": family_inputs}

    # ------------------------------------------------------------------ tables
    table_opts = {"default": None, "partitions": settings.partitions}
    dedup_table = app.Table("dedup", **table_opts)
    person_table = app.Table("person", **table_opts)
    family_table = app.Table("family", **table_opts)

    async def ensure_sink() -> None:
        if sink.apply_sha is None:
            await sink.setup()

    # ------------------------------------------------------------------ agents
    @app.agent(register_events)
    async def ingest(stream):
        """Validate, pseudonymise, forward by event id; the rest to the DLQ."""
        async for batch in stream.take_events(BATCH, within=WITHIN):
            await ensure_sink()
            metrics.EVENTS_IN.labels("ingest").inc(len(batch))
            forward = []
            for event in batch:
                raw = event.value
                try:
                    ev = pseudonymiser.event(validate(raw))
                except InvalidEvent as exc:
                    metrics.REJECTED.labels(exc.code).inc()
                    await dlq.send(value=_dlq_record(raw, exc))
                    continue
                except Exception as exc:  # a worker never crashes on data
                    log.exception("unexpected error validating a message")
                    metrics.REJECTED.labels("internal").inc()
                    await dlq.send(value=_dlq_record(raw, InvalidEvent("internal", type(exc).__name__)))
                    continue
                metrics.ACCEPTED.inc()
                sink.raise_watermark(ev["occurred_at"])
                forward.append((ev, event.message.timestamp))
            # W is raised before the events travel on, so later steps never see an
            # event newer than the watermark they read.
            await sink.flush()
            for ev, t0 in forward:
                await by_id.send(key=picture.route_key(ev), value={"event": ev, "t0": t0})
            metrics.EVENTS_OUT.labels("ingest").inc(len(forward))

    @app.agent(by_id)
    async def dedup(stream):
        """One effect per event id; retractions meet their targets here."""
        async for batch in stream.take_events(BATCH, within=WITHIN):
            metrics.EVENTS_IN.labels("dedup").inc(len(batch))
            for event in batch:
                _as_current(event)
                msg = event.value
                key = picture.route_key(msg["event"])
                state, outs = picture.dedup_step(dedup_table.get(key), msg["event"])
                dedup_table[key] = state
                for stage, okey, out in outs:
                    await out_topics[stage].send(key=okey, value={**out, "t0": msg["t0"]})
                    metrics.EVENTS_OUT.labels("dedup").inc()

    @app.agent(by_person)
    async def person(stream):
        """A person's events → their summary, sent to their family when it changes."""
        async for batch in stream.take_events(BATCH, within=WITHIN):
            metrics.EVENTS_IN.labels("person").inc(len(batch))
            for event in batch:
                _as_current(event)
                msg = event.value
                key = event.key
                state, outs = picture.person_step(person_table.get(key), key, msg)
                person_table[key] = state
                for _, fkey, out in outs:
                    await family_inputs.send(key=fkey, value={**out, "t0": msg["t0"]})
                    metrics.EVENTS_OUT.labels("person").inc()

    async def apply_families(families: dict[str, int], watermark: str | None) -> None:
        """Recompute contributions and write them to Redis in one pipeline."""
        if watermark is None:
            return
        items = []
        for fam, partition in families.items():
            state = family_table.get(fam)
            contrib = picture.contribution(state, watermark) if state else None
            items.append((fam, contrib, partition))
        sink.write(items)
        await sink.flush()

    @app.agent(family_inputs)
    async def family(stream):
        """Family state → its contribution at W → deltas in Redis."""
        async for batch in stream.take_events(BATCH, within=WITHIN):
            await ensure_sink()
            metrics.EVENTS_IN.labels("family").inc(len(batch))
            touched: dict[str, int] = {}
            for event in batch:
                _as_current(event)
                key = event.key
                state, _ = picture.family_step(family_table.get(key), event.value)
                family_table[key] = state
                touched[key] = event.message.partition
            # Redis is written before the batch is acked: a crash in between means a
            # replay, and the Lua script makes the replay a no-op.
            await apply_families(touched, await sink.watermark())
            done = time.time()
            for event in batch:
                t0 = event.value.get("t0")
                if t0:
                    metrics.EVENT_TO_REDIS.observe(max(0.0, done - t0 / 1000.0))

    # ------------------------------------------------------------------ timers
    @app.timer(SWEEP_SECONDS)
    async def sweep():
        """Families whose result changes because W moved on (windows, 18th birthdays)."""
        await ensure_sink()
        watermark = await sink.watermark()
        if watermark is None:
            return
        metrics.WATERMARK_DAYS.set(dt.date.fromisoformat(watermark).toordinal() - dt.date(1970, 1, 1).toordinal())
        w = picture.day(watermark)
        for tp in app.assignor.assigned_actives():
            if tp.topic != family_inputs.get_topic_name():
                continue
            due = await sink.due(tp.partition, w)
            if due:
                await apply_families({fam: tp.partition for fam in due}, watermark)

    @app.timer(5.0)
    async def lag():
        consumer = app.consumer
        for tp in app.assignor.assigned_actives():
            try:
                high = consumer.highwater(tp)
                pos = await consumer.position(tp)
            except Exception:  # noqa: BLE001 - lag is best effort, never fatal
                continue
            if high is not None and pos is not None:
                metrics.CONSUMER_LAG.labels(tp.topic).set(max(0, high - pos))

    # ------------------------------------------------------------------ views
    @app.page("/metrics")
    async def prometheus_metrics(web, request):
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return web.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    app.tk_tables = {"dedup": dedup_table, "person": person_table, "family": family_table}
    return app


def add_arguments(parser) -> None:
    parser.add_argument("--loglevel", default="WARNING", help="Faust log level (default WARNING)")
    parser.add_argument("--web-port", type=int, default=6066, help="port of /metrics (default 6066)")


def run(args, settings: Settings) -> int:
    app = create_app(settings)
    app.conf.web_port = args.web_port
    worker = faust.Worker(app, loglevel=args.loglevel)
    worker.execute_from_commandline()
    return 0
