"""The Faust worker: register events in, the situation picture in Redis out.

Reads top-down in the order data flows: topics, tables, the logic wired to them,
agents, timers. The logic lives in ``models`` (pure steps) and in the small classes of
``streams.stages``, ``streams.families``, ``streams.learner`` and ``streams.ops``; this
module only declares and connects.

Delivery is at-least-once: ``take_events`` acks a batch only after its body (sends and
the Redis pipeline) has completed, and Faust flushes the producer before it commits
offsets. Every effect is idempotent, so a batch processed twice changes nothing.
"""

from __future__ import annotations

import time
from pathlib import Path

import faust

from models import picture
from models.alerts import TrendRule
from models.profile import state_profile
from models.pseudonym import Pseudonymiser
from sinks.connection import patient_client
from sinks.model_store import AsyncModelStore
from sinks.redis_sink import utc_now_iso
from streams.families import FamilyWriter, ModelFollower, Sweep
from streams.learner import LearnerRunner, worker_learner
from streams.ops import (
    TrendAlerts,
    assigned_partitions,
    metrics_view,
    quiet_logs,
    record_lag,
    tables_recovered,
)
from streams.restore import Restore
from streams.stages import (
    Days,
    Door,
    TableStep,
    TaskSinks,
    history_since,
    observe_event_to_redis,
    touched,
)
from streams.transport import Sender
from tilannekuva import config
from tilannekuva.config import Settings

BATCH = 1000  # raw events per ingest batch
# Envelopes per batch on the internal topics. A batch runs without yielding to the
# event loop: at 1,000 envelopes (up to 250,000 items) a backlog blocked the loop for
# over 10 s (keepalive errors, /metrics scrapes timing out); 16 are at most 4,000 items.
ENVELOPES = 16
WITHIN = 0.05  # seconds a batch may wait to fill
SWEEP_SECONDS = 1.0
RESTORE_SECONDS = 1.0
MODEL_POLL_SECONDS = 2.0
LAG_SECONDS = 5.0


def faust_app(settings: Settings, web_bind: str, web_port: int) -> faust.App:
    datadir = Path("var/faust") / settings.app_id
    datadir.parent.mkdir(parents=True, exist_ok=True)  # Faust creates only the last level
    return faust.App(
        settings.app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="memory://",
        processing_guarantee="at_least_once",
        topic_partitions=settings.partitions,
        table_standby_replicas=settings.standby_replicas,
        broker_session_timeout=settings.session_timeout_s,
        key_serializer="json",
        value_serializer="json",
        web_bind=web_bind,
        web_host="127.0.0.1",
        web_port=web_port,
        datadir=str(datadir),
        producer_linger_ms=5,
        # aiokafka keeps one produce request in flight per broker and a batch per
        # partition: at Faust's 16 KiB every table write waited on a round trip (one
        # worker, 10k families: about 40 % more events/s at 512 KiB).
        producer_max_batch_size=512 * 1024,
        broker_commit_every=5000,
        stream_buffer_maxsize=8192,
        consumer_auto_offset_reset="earliest",
    )


def create_app(
    settings: Settings, redis_client=None, web_bind="127.0.0.1", web_port=6066, loglevel="WARNING"
) -> faust.App:
    """The worker for ``settings``: ``/metrics`` on ``web_bind:web_port``."""
    app = faust_app(settings, web_bind, web_port)
    redis = redis_client or patient_client(settings.redis_url)  # waits out a Redis restart
    parts, types_on = settings.partitions, settings.family_types

    # ------------------------------------------------------------------ topics
    register_events = app.topic(settings.input_topic, key_serializer="raw", value_serializer="raw")
    dlq = app.topic(settings.dlq_topic, key_serializer="raw", value_serializer="json")
    alerts_out = app.topic(settings.alerts_topic, key_serializer="raw", value_serializer="json")
    internal = {"partitions": parts, "internal": True}
    by_id = app.topic(settings.internal_topic(config.TOPIC_BY_ID), **internal)
    by_person = app.topic(settings.internal_topic(config.TOPIC_BY_PERSON), **internal)
    family_inputs = app.topic(settings.internal_topic(config.TOPIC_FAMILY_INPUTS), **internal)
    vectors = app.topic(settings.internal_topic(config.TOPIC_VECTORS), partitions=1, internal=True)

    # ------------------------------------------------------------------ tables
    dedup_table = app.Table("dedup", default=None, partitions=parts)
    days_table = app.Table("days", default=None, partitions=parts)  # W beyond Redis
    person_table = app.Table("person", default=None, partitions=parts)
    family_table = app.Table("family", default=None, partitions=parts)
    # The latest snapshot: its compacted changelog is the model's durable copy.
    model_table = app.Table("model", default=None, partitions=1)

    # ------------------------------------------------------------------ the logic
    sinks = TaskSinks(redis, now=utc_now_iso)
    send = Sender({"id": by_id, "person": by_person, "family": family_inputs, "learner": vectors})
    pseudonymiser = Pseudonymiser(settings.require_pseudonym_key())
    door = Door(pseudonymiser, sinks.ingest.raise_watermark, parts, utc_now_iso)
    days = Days(days_table)
    dedup_step = TableStep("dedup", dedup_table, picture.Dedup(summary_only=not types_on), parts)
    profile = state_profile if types_on else None  # feature profiles feed the family types
    person_step = TableStep("person", person_table, picture.PersonStep(profile), parts)
    family_step = TableStep("family", family_table, picture.family_step, parts)
    store = AsyncModelStore(redis)
    follower = ModelFollower(store)
    writer = FamilyWriter(family_table, follower, send, parts, types_on)
    sweep_due = Sweep(writer, sinks.sweep)
    restore_lost = Restore(writer, sinks.restore, days, sinks.written)
    learner_step = worker_learner(settings)
    learn = LearnerRunner(learner_step, model_table, store, sinks.model.watermark, time.time)
    rule = TrendRule(settings.alert_window_days, settings.alert_rise, settings.alert_min_families)
    alerts = TrendAlerts(redis, alerts_out, rule, settings.min_cell, utc_now_iso)

    # ------------------------------------------------------------------ agents
    @app.agent(register_events)
    async def ingest(stream):
        """Validate, pseudonymise, forward by event id; the rest to the DLQ."""
        async for batch in stream.take_events(BATCH, within=WITHIN):
            await sinks.ready()
            outs, rejected = door(batch)
            for record in rejected:
                await dlq.send(value=record)
            await sinks.ingest.flush()  # W first: no later step sees an event newer than W
            await send.send_envelopes("ingest", outs)

    @app.agent(by_id)
    async def dedup(stream):
        """One effect per event id; retractions meet their targets here."""
        async for batch in stream.take_events(ENVELOPES, within=WITHIN):
            days(batch)
            await send.send_envelopes("dedup", dedup_step(batch))

    @app.agent(by_person)
    async def person(stream):
        """A person's events → their summary, sent to their family when it changes."""
        async for batch in stream.take_events(ENVELOPES, within=WITHIN):
            await send.send_envelopes("person", person_step(batch))

    @app.agent(family_inputs)
    async def family(stream):
        """Family state → contribution at W (and group) → Redis deltas, before the ack."""
        async for batch in stream.take_events(ENVELOPES, within=WITHIN):
            await sinks.ready()
            if types_on and follower.version is None:
                await follower.load()
            since = history_since(family_step(batch))
            families = touched(batch)
            await restore_lost.before_writing(families)
            await writer.apply(sinks.family, families, learn=types_on, since=since)
            observe_event_to_redis(batch, time.time())

    @app.agent(vectors)
    async def learner(stream):
        """The one learner: vectors → family types → snapshots for every worker."""
        async for batch in stream.take_events(ENVELOPES, within=0.5):
            await sinks.ready()
            await learn(batch)

    # ------------------------------------------------------------------ timers
    @app.timer(SWEEP_SECONDS)
    async def sweep():
        """Families whose result changes because W moved on (windows, 18th birthdays)."""
        await sinks.ready()
        await sweep_due(sorted(assigned_partitions(app, family_inputs)))

    @app.timer(RESTORE_SECONDS)
    async def restore():
        """What Redis lost (a FLUSHALL, a restart without persistence) written again."""
        if not tables_recovered(app):
            return
        await sinks.ready()
        await restore_lost(assigned_partitions(app, family_inputs))
        if types_on and 0 in assigned_partitions(app, vectors):
            await learn.republish()

    @app.timer(MODEL_POLL_SECONDS)
    async def adopt_model():
        """A new snapshot: re-assign this worker's families (once the table is whole)."""
        if not types_on or not tables_recovered(app):
            return
        await sinks.ready()
        mine = assigned_partitions(app, family_inputs)
        await writer.refill(sinks.model, mine)
        await follower.load()
        await writer.adopt(sinks.model, mine)

    @app.timer(settings.alert_interval_s, on_leader=True)
    async def trend_alerts():
        """Area trends on the leader only: one writer."""
        await alerts()

    @app.timer(LAG_SECONDS)
    async def lag():
        await record_lag(app.consumer, app.assignor.assigned_actives())

    @app.task
    async def logs():
        quiet_logs(loglevel)

    app.page("/metrics")(metrics_view)
    return app


def add_arguments(parser) -> None:
    parser.add_argument("--loglevel", default="WARNING", help="Faust log level (default WARNING)")
    parser.add_argument(
        "--web-port", type=int, default=6066, help="port of /metrics (default 6066)"
    )
    parser.add_argument(
        "--web-bind", default="127.0.0.1", help="address of /metrics (0.0.0.0 in a container)"
    )


def run(args, settings: Settings) -> int:
    app = create_app(
        settings, web_bind=args.web_bind, web_port=args.web_port, loglevel=args.loglevel
    )
    worker = faust.Worker(app, loglevel=args.loglevel)
    worker.execute_from_commandline()
    return 0
