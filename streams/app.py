"""The Faust worker: register events in, the situation picture in Redis out.

Reads top-down in the order data flows: topics, tables, the logic wired to them,
agents, timers. The logic lives in ``models`` (pure steps) and in the small classes of
``streams.stages``, ``streams.families``, ``streams.learner`` and ``streams.ops``; this
module only declares and connects.

Delivery is at-least-once: ``take_events`` acks a batch once its body (sends and the
Redis pipeline) has run -- or raised, which is why the family states are stored either
way -- and Faust flushes the producer before it commits offsets. A stage stores its
states only once their effects are out (in Kafka, ``stages.Forward``; in Redis,
``FamilyWriter.apply``), and a replay from any offset to the end changes nothing (not
one message on its own: ``streams/ops.py::Finished`` makes the commit follow a replay).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer

from models import picture
from models.profile import state_profile
from models.pseudonym import Pseudonymiser
from sinks.connection import patient_client
from sinks.impact_store import AsyncImpactStore
from sinks.model_store import AsyncModelStore
from sinks.redis_sink import utc_now_iso
from streams.changelog import ChangelogBatches
from streams.cohorts import CohortWriter
from streams.families import FamilyWriter, ModelFollower, Sweep, TimedAdoption
from streams.ingest import BulkIngest
from streams.learner import LearnerRunner, worker_learner
from streams.ops import (
    CommitGuard,
    Finished,
    KeptUnacked,
    LoopWatch,
    LostMessages,
    ShiftAlerts,
    assigned_partitions,
    configured_detector,
    metrics_view,
    quiet_logs,
    record_lag,
    record_rocksdb_memory,
    tables_recovered,
    until_recovered,
)
from streams.restore import Restore
from streams.settled import Settled
from streams.stages import (
    Days,
    Door,
    Forward,
    TableStep,
    TaskSinks,
    history_since,
    observe_event_to_redis,
    touched,
)
from streams.transport import Sender
from tilannekuva import config
from tilannekuva.config import Settings

# Envelopes per batch on the internal topics. A batch runs without yielding to the
# event loop: at 1,000 envelopes (up to 250,000 items) a backlog blocked the loop for
# over 10 s (keepalive errors, /metrics scrapes timing out); 16 are at most 4,000 items.
ENVELOPES = 16
WITHIN = 0.05  # seconds a batch may wait to fill
# Envelopes an agent's stream may hold ahead of it. Faust's bound for every stream
# (``stream_buffer_maxsize``, 8,192 here, which the changelog recovery keeps) counts
# messages; at up to 250 items an envelope a catch-up decoded millions of items ahead
# of the agents, and the heap kept that high-water mark: after 20,000 families 1,467
# MiB RSS, 935 MiB at 256 (bench/README.md, session 26).
STREAM_BUFFER = 16 * ENVELOPES
SWEEP_SECONDS = 1.0
RESTORE_SECONDS = 1.0
MODEL_POLL_SECONDS = 2.0
IMPACT_SECONDS = 5.0
LAG_SECONDS = 5.0
# Bounds per partition database (Faust's defaults give each a 2 GiB block cache and
# 3 x 64 MiB write buffers; a worker opens one per table and partition it holds).
ROCKSDB = {
    "block_cache_size": 16 * 2**20,
    "write_buffer_size": 8 * 2**20,
    "max_write_buffer_number": 2,
    "target_file_size_base": 16 * 2**20,
}


def faust_app(settings: Settings, web_bind: str, web_port: int) -> faust.App:
    # One directory per worker, the same over its restarts: RocksDB locks a database to
    # one process. Host and port tell apart workers on one host or one shared volume.
    datadir = Path(settings.data_dir) / f"{settings.app_id}-{socket.gethostname()}-{web_port}"
    datadir.parent.mkdir(parents=True, exist_ok=True)  # Faust creates only the last level
    return faust.App(
        settings.app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        store=f"{settings.store}://",
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
    topics = Topics.declare(app, settings)
    tables = Tables.declare(app, settings.partitions)
    logic = Logic.wire(settings, redis, topics, tables, app.producer)
    CommitGuard.install(app.consumer, logic.finished)  # commits only what bodies finished
    add_agents(app, topics, logic)
    add_timers(app, settings, topics, logic)

    @app.on_partitions_revoked.connect
    async def revoked(sender, revoked, **kwargs):
        """What this worker remembers of families it no longer writes."""
        name = topics.family_inputs.get_topic_name()
        parts = {tp.partition for tp in revoked if tp.topic == name}
        await logic.writer.settle()  # its families may go to another worker
        logic.writer.forget(parts)
        logic.restore.forget(parts)
        if logic.cohorts is not None:
            logic.cohorts.forget(parts)
        logic.finished.forget(revoked)

    @app.task
    async def logs():
        quiet_logs(loglevel)

    app.page("/metrics")(metrics_view)
    return app


@dataclass(frozen=True)
class Topics:
    register_events: faust.TopicT
    dlq: faust.TopicT
    alerts: faust.TopicT
    by_id: faust.TopicT
    by_person: faust.TopicT
    family_inputs: faust.TopicT
    vectors: faust.TopicT

    @classmethod
    def declare(cls, app: faust.App, settings: Settings) -> Topics:
        parts = settings.partitions
        return cls(
            register_events=app.topic(
                settings.input_topic, key_serializer="raw", value_serializer="raw"
            ),
            dlq=app.topic(settings.dlq_topic, key_serializer="raw", value_serializer="json"),
            alerts=app.topic(settings.alerts_topic, key_serializer="raw", value_serializer="json"),
            by_id=envelopes(app, settings.internal_topic(config.TOPIC_BY_ID), parts),
            by_person=envelopes(app, settings.internal_topic(config.TOPIC_BY_PERSON), parts),
            family_inputs=envelopes(
                app, settings.internal_topic(config.TOPIC_FAMILY_INPUTS), parts
            ),
            vectors=envelopes(app, settings.internal_topic(config.TOPIC_VECTORS), 1),
        )

    def sender(self) -> Sender:
        """Sends each stage's items to its topic."""
        return Sender(
            {
                "id": self.by_id,
                "person": self.by_person,
                "family": self.family_inputs,
                "learner": self.vectors,
            }
        )

    def agents(self) -> list[str]:
        """The topics the agents take (the raw topic has a consumer of its own)."""
        return [
            t.get_topic_name()
            for t in (self.by_id, self.by_person, self.family_inputs, self.vectors)
        ]


def envelopes(app: faust.App, name: str, partitions: int) -> faust.TopicT:
    """An internal topic of envelopes, :data:`STREAM_BUFFER` of them buffered ahead of
    its agent (built as ``app.topic`` builds it, which drops its ``maxsize`` argument in
    faust-streaming 0.15)."""
    return app.conf.Topic(
        app, topics=[name], partitions=partitions, internal=True, maxsize=STREAM_BUFFER
    )


@dataclass(frozen=True)
class Tables:
    dedup: faust.Table
    days: faust.Table  # W beyond Redis
    person: faust.Table
    family: faust.Table
    model: faust.Table  # the latest snapshot: its compacted changelog is the durable copy

    @classmethod
    def declare(cls, app: faust.App, parts: int) -> Tables:
        return cls(
            dedup=table(app, "dedup", parts),
            days=table(app, "days", parts),
            person=table(app, "person", parts),
            family=table(app, "family", parts),
            model=table(app, "model", 1),
        )


def table(app: faust.App, name: str, partitions: int) -> faust.Table:
    """A table of JSON values, None where a key has none."""
    return app.Table(name, default=None, partitions=partitions, options=dict(ROCKSDB))


@dataclass(frozen=True)
class Logic:
    """What the agents and timers call; each piece unit-tested on its own."""

    types_on: bool
    sinks: TaskSinks
    send: Sender
    ingest: BulkIngest
    days: Days
    dedup: Forward
    person: Forward
    family: TableStep
    follower: ModelFollower
    writer: FamilyWriter
    adopt: TimedAdoption
    sweep: Sweep
    restore: Restore
    cohorts: CohortWriter | None  # the service cohorts (TK_IMPACT)
    learn: LearnerRunner
    alerts: ShiftAlerts
    watch: LoopWatch
    finished: Finished  # the agents' offsets a commit may pass
    lost: LostMessages

    def written(self, batch: list[Any], families: Mapping[str, int]) -> None:
        """A family batch's effects are in Redis and its states stored."""
        self.finished.add(batch)
        if self.cohorts is not None:
            self.cohorts.touched(families)
        observe_event_to_redis(batch, time.time())

    @classmethod
    def wire(
        cls, settings: Settings, redis: Any, topics: Topics, tables: Tables, producer: Any
    ) -> Logic:
        """``producer``: the app's (its batches carry the tables' changelogs)."""
        parts, types_on = settings.partitions, settings.family_types
        sinks = TaskSinks(redis, now=utc_now_iso)
        send = topics.sender()
        profile = state_profile if types_on else None  # feature profiles feed the family types
        store = AsyncModelStore(redis)
        follower = ModelFollower(store)
        writer = FamilyWriter(tables.family, follower, send, parts, types_on)
        worker = f"{socket.gethostname()}:{os.getpid()}"
        days = Days(tables.days)
        stage = partial(stored_step, partitions=parts, producer=producer)
        finished = Finished(topics.agents())
        settled = Settled(settings.kafka_bootstrap, settings.consumer_groups(config.PICTURE_TOPICS))
        impact = settings.impact and types_on  # the outcome reads the feature profiles' rows
        return cls(
            types_on=types_on,
            sinks=sinks,
            send=send,
            ingest=bulk_ingest(settings, sinks, send, topics.dlq),
            days=days,
            dedup=Forward(
                stage("dedup", tables.dedup, picture.Dedup(summary_only=not types_on)),
                send,
            ),
            person=Forward(
                stage("person", tables.person, picture.PersonStep(profile, copies=impact)), send
            ),
            family=stage("family", tables.family, picture.family_step),
            follower=follower,
            writer=writer,
            adopt=TimedAdoption(writer, store, worker),
            sweep=Sweep(writer, sinks.sweep),
            restore=Restore(writer, sinks.restore, days, sinks.written, worker),
            cohorts=cohort_writer(impact, tables.family, parts, sinks, redis, settled),
            learn=LearnerRunner(
                worker_learner(settings),
                tables.model,
                store,
                sinks.model.watermark,
                time.time,
                live=sinks.model.live,
                adoption=store.adoption_seconds,
            ),
            alerts=ShiftAlerts(
                redis,
                topics.alerts,
                configured_detector(settings),
                settings.min_cell,
                utc_now_iso,
                settled,
            ),
            watch=LoopWatch(),
            finished=finished,
            lost=LostMessages(finished=finished),
        )


def stored_step(
    name: str, table: faust.Table, step: picture.Step, partitions: int, producer: Any
) -> TableStep:
    """A stage over ``table`` whose states are stored with their changelog in batches."""
    return TableStep(name, table, step, partitions, ChangelogBatches(table, producer))


def cohort_writer(
    on: bool, table: faust.Table, partitions: int, sinks: TaskSinks, redis: Any, settled: Settled
) -> CohortWriter | None:
    """The service cohorts' writer (``TK_IMPACT``; None when off): ``W`` and the live
    day read through the sweep's sink, the counts written to ``redis``."""
    if not on:
        return None
    return CohortWriter(table, partitions, sinks.sweep, AsyncImpactStore(redis), settled)


def bulk_ingest(settings: Settings, sinks: TaskSinks, send: Sender, dlq: Any) -> BulkIngest:
    """The raw topic read in bulk: the door validates and pseudonymises, the ingest's sink
    raises W, the envelopes go to the id topic, the rejected to ``dlq``."""
    door = Door(
        Pseudonymiser(settings.require_pseudonym_key()),
        sinks.ingest.raise_watermark,
        sinks.ingest.went_live,
        settings.partitions,
        utc_now_iso,
    )
    return BulkIngest(partial(ingest_consumer, settings), door, sinks.ingest.flush, send, dlq)


def ingest_consumer(settings: Settings) -> AIOKafkaConsumer:
    """The ingest's consumer of the raw topic (made in the running loop)."""
    session_ms = int(settings.session_timeout_s * 1000)
    return AIOKafkaConsumer(
        settings.input_topic,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=settings.ingest_group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=session_ms,
        heartbeat_interval_ms=min(3000, session_ms // 3),
    )


def add_agents(app: faust.App, topics: Topics, logic: Logic) -> None:
    """One agent per topic, in the order an event passes them."""
    sinks = logic.sinks

    @app.task
    async def ingest():
        """The raw topic in bulk, with a consumer of its own (streams/ingest.py), once
        Faust has joined its group and created its topics: in the first drill run that
        sent while Faust was still starting, the producer hung (bench/README.md)."""
        await until_recovered(app)
        await sinks.ready()
        await logic.ingest.run()

    @app.agent(topics.by_id)
    async def dedup(stream):
        """One effect per event id; retractions meet their targets here."""
        async for batch in stream.take_events(ENVELOPES, within=WITHIN):
            async with KeptUnacked("dedup", batch, logic.finished):  # not finished: read again
                logic.days(batch)
                await logic.dedup(batch)  # sent and in Kafka, then the states stored

    @app.agent(topics.by_person)
    async def person(stream):
        """A person's events → their summary, sent to their family when it changes."""
        async for batch in stream.take_events(ENVELOPES, within=WITHIN):
            async with KeptUnacked("person", batch, logic.finished):
                await logic.person(batch)

    @app.agent(topics.family_inputs)
    async def family(stream):
        """Family state → contribution at W (and group) → Redis deltas, written behind
        the next batch's step (streams/families.py::WriteBehind), finished once written."""
        async for batch in stream.take_events(ENVELOPES, within=WITHIN):
            async with KeptUnacked("family", batch):  # finished by logic.written
                await sinks.ready()
                if logic.types_on and logic.follower.version is None:
                    await logic.follower.load()
                # stored once Redis has them; the batch before may still be being written
                outs, unstored = logic.family.run(batch, logic.writer.unstored)
                families = touched(batch)
                await logic.restore.before_writing(families)
                await logic.writer.apply_behind(
                    sinks.family,
                    families,
                    logic.types_on,
                    history_since(outs),
                    unstored,
                    partial(logic.written, batch, families),
                )

    @app.agent(topics.vectors)
    async def learner(stream):
        """The one learner: vectors → family types → snapshots for every worker."""
        async for batch in stream.take_events(ENVELOPES, within=0.5):
            async with KeptUnacked("learner", batch, logic.finished):
                await sinks.ready()
                await logic.learn(batch)


def add_timers(app: faust.App, settings: Settings, topics: Topics, logic: Logic) -> None:
    sinks, types_on = logic.sinks, logic.types_on

    def mine() -> set[int]:
        return assigned_partitions(app, topics.family_inputs)

    @app.timer(SWEEP_SECONDS)
    async def sweep():
        """Families whose result changes because W moved on (windows, 18th birthdays)."""
        if not tables_recovered(app):  # a table still recovering holds older states
            return
        await sinks.ready()
        await logic.sweep(sorted(mine()))

    @app.timer(RESTORE_SECONDS)
    async def restore():
        """What Redis lost (a FLUSHALL, a restart without persistence) written again."""
        if not tables_recovered(app):
            return
        await sinks.ready()
        await logic.restore(mine())
        if types_on and 0 in assigned_partitions(app, topics.vectors):
            await logic.learn.republish()

    @app.timer(IMPACT_SECONDS)
    async def impact():
        """The service cohorts of this worker's partitions (TK_IMPACT), when due."""
        if logic.cohorts is None or not tables_recovered(app):
            return
        await sinks.ready()
        await logic.cohorts(mine())

    @app.timer(MODEL_POLL_SECONDS)
    async def adopt_model():
        """A new snapshot: re-assign this worker's families (once the table is whole)."""
        if not types_on or not tables_recovered(app):
            return
        await sinks.ready()
        parts = mine()
        await logic.writer.refill(sinks.model, parts)
        await logic.follower.load()
        await logic.adopt(sinks.model, parts)

    @app.timer(settings.alert_interval_s, on_leader=True)
    async def shift_alerts():
        """Shift detection on the leader only: one writer."""
        await logic.alerts()

    @app.task
    async def loop_watch():
        """What holds the event loop, when something does (logged, and a metric)."""
        await logic.watch.run()

    @app.timer(LAG_SECONDS)
    async def lag():
        await record_lag(app.consumer, app.assignor.assigned_actives())
        if (raw := logic.ingest.consumer) is not None:
            await record_lag(raw, raw.assignment())
        record_rocksdb_memory(app.tables.values())
        await logic.lost.repair(app.consumer, steady=tables_recovered(app))
