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

import asyncio
import datetime as dt
import functools
import json
import logging
import time
import weakref
import zlib
from pathlib import Path

import faust
import redis.asyncio as aioredis
from aiokafka.errors import MessageSizeTooLargeError
from faust.exceptions import ProducerSendError
from faust.streams import _current_event as _faust_current_event

from models import picture
from models.alerts import TrendRule, alert_step
from models.contract import InvalidEvent, parse_json, validate
from models.family_types import FamilyTypes, TypeAssigner
from models.features import person_profile, state_vector
from models.pseudonym import Pseudonymiser
from models.service_need import REFERENCE_SHARES
from models.suppression import suppress
from sinks import metrics, redis_reader
from sinks.alert_store import AsyncAlertStore
from sinks.redis_sink import AsyncRedisSink
from tilannekuva import config
from tilannekuva.config import Settings

log = logging.getLogger("tilannekuva.worker")

BATCH = 1000
ENVELOPE_ITEMS = 250
# Envelopes per batch on the internal topics. A batch is handled without yielding to
# the event loop: at BATCH envelopes (up to 250,000 items) a backlog blocked the loop
# for over 10 s (consumer keepalive errors, /metrics scrapes timing out). 16 envelopes
# are at most 4,000 items, and the envelopes sent on stay as full as before.
ENVELOPES = 16
WITHIN = 0.05  # seconds a batch may wait to fill
SWEEP_SECONDS = 1.0
MODEL_POLL_SECONDS = 2.0
MODEL_KEY, MODEL_VERSION_KEY = "tk:model", "tk:model:version"


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def partition_of(key: str, partitions: int) -> int:
    """Our own partitioner for internal topics: stable across processes and clients."""
    return zlib.crc32(key.encode("utf-8")) % partitions


class Envelopes:
    """Outgoing items grouped by (stage, partition): one Kafka message per group.

    Faust's per-message cost (consume, send, serialise) is far above the cost of a
    step, so internal topics carry envelopes ``{"items": [[key, message, t0], ...]}``
    sent to the partition of their keys.
    """

    def __init__(self, partitions: int):
        self.partitions = partitions
        self.groups: dict[tuple[str, int], list] = {}

    def add(self, stage: str, key: str, message: dict, t0: int | None) -> None:
        self.groups.setdefault((stage, partition_of(key, self.partitions)), []).append(
            [key, message, t0]
        )

    def items(self):
        return self.groups.items()


def _as_current(event) -> None:
    """Make ``event`` the current event of this task, for table changelog partitions."""
    _faust_current_event.set(weakref.ref(event))


def snapshot_due(
    last: dict | None, w_day: int, now: float, days: int, min_interval_s: float
) -> bool:
    """Publish a model snapshot? The first as soon as the model is seeded; then every
    ``days`` of event time W, but not more often than ``min_interval_s`` of wall time
    (a replayed history moves W by years in minutes, and each snapshot re-assigns
    every family).

    >>> snapshot_due(None, 100, 0.0, 30, 60.0)
    True
    >>> last = {"w_day": 100, "at": 1000.0}
    >>> snapshot_due(last, 129, 5000.0, 30, 60.0), snapshot_due(last, 130, 1030.0, 30, 60.0)
    (False, False)
    >>> snapshot_due(last, 130, 1060.0, 30, 60.0)
    True
    """
    if last is None:
        return True
    return w_day >= last["w_day"] + days and now >= last["at"] + min_interval_s


def _dlq_record(raw: bytes, exc: InvalidEvent) -> dict:
    """The contract's DLQ shape: the original object if it parses, else the text."""
    try:
        original: object = parse_json(raw)
    except InvalidEvent:
        original = raw.decode("utf-8", errors="replace")
    return {"reason": exc.reason, "event": original, "received_at": _now_iso()}


def create_app(
    settings: Settings,
    redis_client=None,
    web_bind: str = "127.0.0.1",
    web_port: int = 6066,
    loglevel: str = "WARNING",
) -> faust.App:
    pseudonymiser = Pseudonymiser(settings.require_pseudonym_key())
    datadir = Path("var/faust") / settings.app_id
    datadir.parent.mkdir(parents=True, exist_ok=True)  # Faust creates only the last level
    app = faust.App(
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
        # partition: at Faust's 16 KiB, every table write waited on a round trip (one
        # worker, 10k families: about 40 % more events/s at 512 KiB).
        producer_max_batch_size=512 * 1024,
        broker_commit_every=5000,
        stream_buffer_maxsize=8192,
        consumer_auto_offset_reset="earliest",
    )
    redis = redis_client or aioredis.from_url(settings.redis_url)

    # ------------------------------------------------------------------ topics
    register_events = app.topic(settings.input_topic, key_serializer="raw", value_serializer="raw")
    dlq = app.topic(settings.dlq_topic, key_serializer="raw", value_serializer="json")
    alerts_out = app.topic(settings.alerts_topic, key_serializer="raw", value_serializer="json")
    internal = {"partitions": settings.partitions, "internal": True}
    by_id = app.topic(settings.internal_topic(config.TOPIC_BY_ID), **internal)
    by_person = app.topic(settings.internal_topic(config.TOPIC_BY_PERSON), **internal)
    family_inputs = app.topic(settings.internal_topic(config.TOPIC_FAMILY_INPUTS), **internal)
    family_vectors = app.topic(
        settings.internal_topic(config.TOPIC_VECTORS), partitions=1, internal=True
    )
    out_topics = {"id": by_id, "person": by_person, "family": family_inputs}
    partitions = settings.partitions
    types_on = settings.family_types

    # ------------------------------------------------------------------ tables
    table_opts = {"default": None, "partitions": partitions}
    dedup_table = app.Table("dedup", **table_opts)
    person_table = app.Table("person", **table_opts)
    family_table = app.Table("family", **table_opts)
    # The learner's latest snapshot; its changelog ("<app>-model-changelog", one
    # partition, compacted) is the model's durable copy: a restarted learner resumes
    # from it.
    model_table = app.Table("model", default=None, partitions=1)

    # One sink per task: a sink's queue belongs to whoever flushes it.
    ingest_sink, family_sink, sweep_sink, model_sink = (AsyncRedisSink(redis) for _ in range(4))

    async def ensure_sinks() -> None:
        for sink in (ingest_sink, family_sink, sweep_sink, model_sink):
            if sink.apply_sha is None:
                await sink.setup()

    async def send_items(topic, partition: int, items: list, field: str = "items") -> None:
        """``{field: items}`` to one partition, in envelopes the broker accepts: at most
        ENVELOPE_ITEMS items, halved again if one is still too large (feature profiles
        make person summaries about 1 KiB; 1000 of them broke the 1 MB limit)."""
        for i in range(0, len(items), ENVELOPE_ITEMS):
            chunk = items[i : i + ENVELOPE_ITEMS]
            try:
                await topic.send(
                    key=None, partition=partition, value={"items": [], **{field: chunk}}
                )
            except ProducerSendError as exc:
                if not isinstance(exc.__cause__, MessageSizeTooLargeError) or len(chunk) == 1:
                    raise
                half = len(chunk) // 2
                await send_items(topic, partition, chunk[:half], field)
                await send_items(topic, partition, chunk[half:], field)

    async def send_envelopes(step: str, outs: Envelopes) -> None:
        for (stage, partition), items in outs.items():
            await send_items(out_topics[stage], partition, items)
            metrics.EVENTS_OUT.labels(step).inc(len(items))

    def run_step(batch, table, step_fn, step: str) -> Envelopes:
        """Apply ``step_fn(state, key, msg) -> (state, outs)`` to every item of every
        envelope; each touched key is written to its table once per envelope."""
        outs = Envelopes(partitions)
        for event in batch:
            _as_current(event)  # changelog writes go to this envelope's partition
            items = event.value["items"]
            metrics.EVENTS_IN.labels(step).inc(len(items))
            states: dict = {}
            for key, msg, t0 in items:
                old = states[key] if key in states else table.get(key)
                new, produced = step_fn(old, key, msg)
                if new is not old:
                    states[key] = new
                for stage, okey, out in produced:
                    outs.add(stage, okey, out, t0)
            for key, state in states.items():
                table[key] = state
        return outs

    # ------------------------------------------------------------------ agents
    @app.agent(register_events)
    async def ingest(stream):
        """Validate, pseudonymise, forward by event id; the rest to the DLQ."""
        async for batch in stream.take_events(BATCH, within=WITHIN):
            await ensure_sinks()
            metrics.EVENTS_IN.labels("ingest").inc(len(batch))
            outs = Envelopes(partitions)
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
                    await dlq.send(
                        value=_dlq_record(raw, InvalidEvent("internal", type(exc).__name__))
                    )
                    continue
                metrics.ACCEPTED.inc()
                ingest_sink.raise_watermark(ev["occurred_at"])
                outs.add("id", picture.route_key(ev), ev, event.message.timestamp)
            # W is raised before the events travel on, so later steps never see an
            # event newer than the watermark they read.
            await ingest_sink.flush()
            await send_envelopes("ingest", outs)

    def dedup_and_filter(state, key, ev):
        state, outs = picture.dedup_step(state, ev)
        if types_on:  # every event feeds the feature profile
            return state, outs
        # Without a feature profile, three events in four (incomes, ordinary visits,
        # care, education) can change no summary: the person step would drop them, so
        # they stop here, after ingest has raised W with them. Their dedup state is
        # kept, so a retraction of one still finds its owner (and changes nothing).
        return state, [o for o in outs if o[2]["kind"] != "add" or picture.matters(o[2]["event"])]

    @app.agent(by_id)
    async def dedup(stream):
        """One effect per event id; retractions meet their targets here."""
        async for batch in stream.take_events(ENVELOPES, within=WITHIN):
            await send_envelopes("dedup", run_step(batch, dedup_table, dedup_and_filter, "dedup"))

    person_step = functools.partial(
        picture.person_step, profile=person_profile if types_on else None
    )

    @app.agent(by_person)
    async def person(stream):
        """A person's events → their summary, sent to their family when it changes."""
        async for batch in stream.take_events(ENVELOPES, within=WITHIN):
            await send_envelopes("person", run_step(batch, person_table, person_step, "person"))

    # The assigner of the latest snapshot (every worker); the group each counted family
    # of this worker was last written with, and every family written since start, so
    # that a new snapshot rewrites only families whose group it changes.
    model = {"assigner": None, "version": None, "adopted": None}
    groups_now: dict[str, int | None] = {}
    applied: set[str] = set()

    async def load_model() -> None:
        """Take the snapshot in Redis if it is newer (``adopt_model`` re-assigns once per
        version, whoever loaded it)."""
        version = await redis.get(MODEL_VERSION_KEY)
        if version is None or version == model["version"]:
            return
        raw = await redis.get(MODEL_KEY)
        if raw is None:
            return
        model["assigner"] = TypeAssigner.from_snapshot(json.loads(raw))
        model["version"] = version

    def groups_of(states: dict[str, dict | None]) -> tuple[dict[str, int | None], dict[str, dict]]:
        """Service-need group and feature vector of each family (one matrix product)."""
        assigner = model["assigner"]
        vectors = {}
        if types_on:
            for fam, state in states.items():
                vec = state_vector(state) if state else None
                if vec is not None:
                    vectors[fam] = vec
        groups: dict[str, int | None] = dict.fromkeys(states)
        if assigner is not None and vectors:
            fams = list(vectors)
            _, grp = assigner.assign_many([vectors[f] for f in fams])
            groups.update(zip(fams, grp.tolist(), strict=True))
        return groups, vectors

    async def apply_families(
        sink: AsyncRedisSink, families: dict[str, int], learn: bool = False
    ) -> None:
        """Recompute contributions (indicators and group) and write them in one pipeline;
        with ``learn``, send the counted families' vectors to the learner. Families no
        longer counted are sent as ``None`` from every caller: the learner forgets them."""
        watermark = await sink.watermark()
        if watermark is None:
            return
        states = {fam: family_table.get(fam) for fam in families}
        groups, vectors = groups_of(states)
        items, learned = [], []
        for fam, partition in families.items():
            state = states[fam]
            contrib = (
                picture.contribution(state, watermark, lambda _s, g=groups[fam]: g)
                if state
                else None
            )
            items.append((fam, contrib, partition))
            applied.add(fam)
            if contrib is None:
                if fam in groups_now and types_on:
                    learned.append([fam, None])
                groups_now.pop(fam, None)
            else:
                groups_now[fam] = groups[fam]
                if learn and fam in vectors:
                    learned.append([fam, vectors[fam]])
        sink.write(items)
        await sink.flush()
        if learned:
            await send_items(family_vectors, 0, learned)

    @app.agent(family_inputs)
    async def family(stream):
        """Family state → its contribution at W (and its group) → deltas in Redis."""
        async for batch in stream.take_events(ENVELOPES, within=WITHIN):
            await ensure_sinks()
            if types_on and model["version"] is None:
                await load_model()
            step = lambda state, key, msg: (picture.family_step(state, msg), ())  # noqa: E731
            run_step(batch, family_table, step, "family")
            touched = {
                key: event.message.partition
                for event in batch
                for key, _, _ in event.value["items"]
            }
            # Redis is written before the batch is acked: a crash in between means a
            # replay, and the Lua script makes the replay a no-op.
            await apply_families(family_sink, touched, learn=types_on)
            done = time.time()
            for event in batch:
                for _, _, t0 in event.value["items"]:
                    if t0:  # Faust gives Kafka timestamps in seconds
                        metrics.EVENT_TO_REDIS.observe(max(0.0, done - t0))

    learner_state: dict = {"model": None, "last": None, "pending": set()}

    def new_learner() -> FamilyTypes:
        return FamilyTypes(
            n_types=settings.n_types,
            warmup=settings.model_warmup,
            calibrate_shares=REFERENCE_SHARES,
        )

    async def publish(current: FamilyTypes, snap: dict, watermark: str, now: float) -> None:
        """A snapshot to the compacted model table and to Redis for every worker."""
        snap["published"] = learner_state["last"] = {
            "w_day": picture.day(watermark),
            "at": now,
            "as_of": watermark,
        }
        model_table["snapshot"] = snap
        pipe = redis.pipeline(transaction=True)
        pipe.set(MODEL_KEY, json.dumps(snap, separators=(",", ":")))
        pipe.set(MODEL_VERSION_KEY, f"{snap['generation']}.{snap['version']}")
        await pipe.execute()
        metrics.MODEL_SNAPSHOTS.inc()

    def rebase(current: FamilyTypes, request: str) -> dict | None:
        """A deliberate re-base (``tilannekuva rebase``): new generation, fresh type ids,
        the old → new mapping in the snapshot's ``lineage``. A request is carried out
        once: a replayed request finds its id in the lineage. Until the sample holds a
        vector per type (a restarted learner waits for the workers' refill) it stays
        pending, in memory."""
        if (current.lineage or {}).get("request") == request:
            return None
        if current.sample_size < current.n_types:
            if request not in learner_state["pending"]:
                log.warning(
                    "rebase %s pending: the model has %d recent vectors, needs %d",
                    request,
                    current.sample_size,
                    current.n_types,
                )
            learner_state["pending"].add(request)
            return None
        learner_state["pending"].discard(request)
        snap = current.rebase()
        current.lineage = snap["lineage"] = {**snap["lineage"], "request": request}
        log.warning(
            "rebase %s: generation %d, %d types re-based",
            request,
            snap["generation"],
            len(snap["lineage"]["mapping"]),
        )
        return snap

    @app.agent(family_vectors)
    async def learner(stream):
        """The one learner: family vectors → online family types → versioned snapshots
        in the compacted model table and in Redis (``tk:model``) for every worker."""
        async for batch in stream.take_events(ENVELOPES, within=0.5):
            await ensure_sinks()
            _as_current(batch[-1])  # the model table's changelog partition
            stored = model_table.get("snapshot")
            current = learner_state["model"]
            if current is None or (stored and stored["version"] > current.version):
                # Start, restart or take-over: resume from the durable snapshot.
                current = (
                    FamilyTypes.from_snapshot(
                        stored, warmup=settings.model_warmup, calibrate_shares=REFERENCE_SHARES
                    )
                    if stored
                    else new_learner()
                )
                learner_state["model"] = current
                learner_state["last"] = stored and stored.get("published")
            keys, vectors, requests = [], [], sorted(learner_state["pending"])
            for event in batch:
                if event.value.get("rebase") and str(event.value["rebase"]) not in requests:
                    requests.append(str(event.value["rebase"]))
                if event.value.get("sample"):
                    fams, vecs = zip(*event.value["sample"], strict=True)
                    current.remember_many(vecs, fams)
                for fam, vec in event.value["items"]:
                    if vec is None:
                        current.forget(fam)
                    else:
                        keys.append(fam)
                        vectors.append(vec)
            metrics.EVENTS_IN.labels("learner").inc(len(vectors))
            current.learn_many(vectors, keys=keys)
            watermark = await sweep_sink.watermark()
            if not current.initialised or watermark is None:
                for request in requests:
                    log.warning("rebase %s ignored: the model is still warming up", request)
                learner_state["pending"].clear()
                continue
            now = time.time()
            snap = None
            for request in requests:
                snap = rebase(current, request) or snap
            if snap is None and snapshot_due(
                learner_state["last"],
                picture.day(watermark),
                now,
                settings.snapshot_days,
                settings.snapshot_min_interval_s,
            ):
                snap = current.snapshot()
            if snap is not None:
                await publish(current, snap, watermark, now)

    # ------------------------------------------------------------------ timers
    @app.timer(SWEEP_SECONDS)
    async def sweep():
        """Families whose result changes because W moved on (windows, 18th birthdays)."""
        await ensure_sinks()
        watermark = await sweep_sink.watermark()
        if watermark is None:
            return
        metrics.WATERMARK_DAYS.set(
            dt.date.fromisoformat(watermark).toordinal() - dt.date(1970, 1, 1).toordinal()
        )
        w = picture.day(watermark)
        for tp in app.assignor.assigned_actives():
            if tp.topic != family_inputs.get_topic_name():
                continue
            due = await sweep_sink.due(tp.partition, w)
            if due:
                await apply_families(sweep_sink, {fam: tp.partition for fam in due})

    sampled: set[int] = set()  # partitions whose families this worker put in the learner's sample

    async def refill_sample(parts: set[int]) -> None:
        """Send the counted families of newly assigned partitions to the learner's sample
        (not to learning): a restarted learner resumes with an empty one."""
        watermark = await model_sink.watermark()
        if not parts or watermark is None:
            return
        states = {
            fam: state
            for fam in list(family_table.keys())
            if partition_of(fam, partitions) in parts
            and (state := family_table.get(fam))
            and picture.contribution(state, watermark) is not None
        }
        _, vectors = groups_of(states)
        await send_items(
            family_vectors, 0, [[fam, vec] for fam, vec in vectors.items()], field="sample"
        )

    @app.timer(MODEL_POLL_SECONDS)
    async def adopt_model():
        """A new snapshot: re-assign this worker's families, rewriting those whose group
        it changes (all of them after a restart)."""
        if (
            not types_on
            or app.rebalancing
            or app.in_recovery
            or not app.tables.recovery.completed.is_set()
        ):
            return  # the family table is complete only once recovered
        await ensure_sinks()
        mine = {
            tp.partition
            for tp in app.assignor.assigned_actives()
            if tp.topic == family_inputs.get_topic_name()
        }
        await refill_sample(mine - sampled)
        sampled.clear()
        sampled.update(mine)
        await load_model()
        # Not "did load_model change it": the family agent may have loaded this version
        # first, after it had written families without a group.
        if model["assigner"] is None or model["adopted"] == model["version"]:
            return
        version = model["version"]
        families = {
            fam: p
            for fam in list(family_table.keys())
            if (p := partition_of(fam, partitions)) in mine
        }
        groups, _ = groups_of({fam: family_table.get(fam) for fam in families})
        changed = {
            fam: p
            for fam, p in families.items()
            if fam not in applied or (fam in groups_now and groups_now[fam] != groups[fam])
        }
        for i in range(0, len(changed), 5000):
            chunk = dict(list(changed.items())[i : i + 5000])
            await apply_families(model_sink, chunk)
        model["adopted"] = version
        metrics.FAMILIES_REASSIGNED.inc(len(changed))

    rule = TrendRule(settings.alert_window_days, settings.alert_rise, settings.alert_min_families)
    alert_store = AsyncAlertStore(redis)

    @app.timer(settings.alert_interval_s, on_leader=True)
    async def trend_alerts():
        """Area trends in event time (models/alerts.py), from the suppressed picture.

        On the leader only: one writer. Alerts go to the alert topic first, then to
        Redis with the new state; a crash in between repeats the tick with the same
        alert ids, which Redis skips and consumers can drop."""
        try:
            raw = await redis_reader.read_picture_async(redis)
            shown = await asyncio.get_running_loop().run_in_executor(
                None, suppress, raw, settings.min_cell
            )
            state, raised = alert_step(
                await alert_store.load(), shown, raw["as_of"], _now_iso(), rule
            )
            for alert in raised:
                await alerts_out.send(key=alert["id"].encode(), value=alert)
            await alert_store.record(state, raised)
            metrics.ALERTS.inc(len(raised))
        except Exception:  # noqa: BLE001 - alerts are derived; the picture must go on
            log.exception("trend alert tick failed; retrying at the next tick")

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
                metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(max(0, high - pos))

    @app.task
    async def quiet_logs():
        # mode's worker set-up can leave faust/aiokafka debug records enabled, which
        # costs a few per cent on the send path; honour the requested level.
        level = logging.getLevelName(loglevel.upper()) if isinstance(loglevel, str) else loglevel
        for name in ("faust", "aiokafka", "mode", "kafka"):
            logging.getLogger(name).setLevel(level)
        # Under a backlog Faust warns of a full producer buffer ten times a second: that
        # is its flow control working, not news (consumer lag is the metric to watch).
        logging.getLogger("faust.transport.producer").setLevel(max(level, logging.ERROR))

    # ------------------------------------------------------------------ views
    @app.page("/metrics")
    async def prometheus_metrics(web, request):
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return web.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    app.tk_tables = {"dedup": dedup_table, "person": person_table, "family": family_table}
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
