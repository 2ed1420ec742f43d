"""The worker's own upkeep: shift alerts on the leader, consumer lag, log levels, a watch
on the event loop."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import sys
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from models.detection import METHODS, Detector
from models.picture import day
from models.publication import published_last
from models.shown_series import ShownSeries
from sinks import metrics, redis_reader
from sinks.alert_store import AsyncAlertStore, Recorded
from streams.transport import Topic
from tilannekuva.config import Settings

log = logging.getLogger("tilannekuva.worker")


def configured_detector(settings: Settings) -> Detector:
    """The detector the worker and the demo run: ``TK_ALERT_METHOD``, ``TK_ALERT_Q``,
    ``TK_ALERT_MIN_FAMILIES``."""
    method = METHODS[settings.alert_method]()
    return Detector(method, q=settings.alert_q, min_families=settings.alert_min_families)


#: Days a tick detects on at most: a catch-up over years goes on at the next tick
#: rather than holding Redis and the executor for minutes.
DAYS_PER_TICK = 64


class ShiftAlerts:
    """The leader's shift detection (docs/alerts.md, "In the worker"), tick by tick.

    A tick takes the days ``W`` has left behind since the detector's last day, from the
    day the registers went live (``tk:live``), and does with each what
    ``tilannekuva alerts backtest`` does: what the API publishes of the day, read from
    the history (suppressed, perturbed), goes into the shown series and the detector
    steps on it. Alerts go to the alert topic first, then to Redis with the state and
    the days' values in one script; a crash in between repeats the days with the same
    alert ids, which Redis skips and consumers can drop. ``topic`` None: Redis only (the
    demo runs without Kafka). What this worker recorded is kept in memory
    (:class:`sinks.alert_store.Recorded`): when Redis holds a newer state, another
    leader went on and its record is loaded; an older one or none, and Redis lost it
    (emptied, or back to an older copy), and it is put back whole. ``settled()``
    (:class:`streams.settled.Settled`) says whether everything ingested is in Redis yet
    (None: always; the demo writes each batch through before the next); no day is
    detected on while a worker writes lost families again (``clock``: epoch seconds).
    """

    def __init__(
        self,
        redis: Any,
        topic: Topic | None,
        detector: Detector,
        min_cell: int,
        now: Callable[[], str],
        settled: Callable[[], Awaitable[bool]] | None = None,
        days_per_tick: int = DAYS_PER_TICK,
        clock: Callable[[], float] = time.time,
    ):
        self.redis = redis
        self.topic = topic
        self.detector = detector
        self.min_cell = min_cell
        self.now = now
        self.settled = settled
        self.days_per_tick = days_per_tick
        self.clock = clock
        self.store = AsyncAlertStore(redis)
        self.series: ShownSeries | None = None
        self.kept = Recorded()  # what this worker recorded (or loaded) last

    async def __call__(self) -> int:
        """Raise what the tick finds; returns how many (0 after a failed tick)."""
        return (await self.tick())[1]

    async def catch_up(self) -> int:
        """Tick until no published day is left; returns the alerts raised."""
        raised = 0
        while True:
            days, n = await self.tick()
            raised += n
            if not days:
                return raised

    async def tick(self) -> tuple[int, int]:
        """(days detected on, alerts raised); (0, 0) after a failed tick."""
        try:
            days, raised = await self._tick()
        except Exception:  # alerts are derived; the picture must go on
            log.exception("shift alert tick failed; retrying at the next tick")
            self.series = None  # what Redis holds is what was recorded
            return 0, 0
        for a in raised:
            metrics.ALERTS.labels(a["scope"], a["series"]).inc()
        return days, len(raised)

    async def _tick(self) -> tuple[int, list[dict]]:
        held = await self.store.state()
        if held != self.kept.state:
            if self.kept.behind(held):
                log.warning(
                    "Redis lost the shift detector's record (it holds %s, this leader"
                    " recorded up to %s): putting it back",
                    held and held["as_of"],
                    self.kept.state and self.kept.state["as_of"],
                )
                metrics.REDIS_LOSSES.inc()
                await self.store.put_back(self.kept)
            else:  # another leader went on: from what it recorded
                self.kept = await self.store.recorded()
            self.series = None
        if self.series is None:
            self.series = ShownSeries()
            for iso, row in self.kept.rows.items():
                self.series.put_row(iso, row)
        days = await self._days()
        if not days:
            return 0, []
        pictures = await redis_reader.read_published_days_async(self.redis, days)
        loop = asyncio.get_running_loop()
        state, rows, raised = await loop.run_in_executor(None, self._detect, pictures)
        now = self.now()
        raised = [a | {"raised_at": now} for a in raised]
        for alert in raised if self.topic is not None else ():
            await self.topic.send(key=alert["id"].encode(), value=alert)
        await self.store.record(state, rows, raised)
        self.kept.add(state, rows, raised, self.store.keep)
        metrics.ALERTS_DAY.set(days[-1] - day("1970-01-01"))
        return len(days), raised

    async def _days(self) -> list[int]:
        """The published days not detected on yet (at most ``days_per_tick``), once
        everything that had arrived when ``W`` was read is in Redis."""
        first, w, live = await redis_reader.read_live_span_async(self.redis)
        if first is None or w is None or live is None:
            return []
        if self.settled is not None and not await self.settled():
            return []
        if await redis_reader.restoring_async(self.redis, self.clock()):
            return []  # a worker is writing lost families again: the history is partial
        last = published_last(day(first), day(w))
        start = day(live)
        if self.kept.state is not None:
            start = max(start, day(self.kept.state["as_of"]) + 1)
        if last is None or last < start:
            return []
        return list(range(start, min(last, start + self.days_per_tick - 1) + 1))

    def _detect(self, pictures: dict[int, dict]) -> tuple[dict | None, dict[str, dict], list]:
        assert self.series is not None
        state, rows, raised = self.kept.state, {}, []
        for on, picture in pictures.items():
            iso = dt.date.fromordinal(on).isoformat()
            self.series.publish(iso, picture, self.min_cell)
            state, out = self.detector.step(state, iso, self.series.table())
            rows[iso] = self.series.row(iso)
            raised += out
        return state, rows, raised


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


#: RocksDB properties behind ``tk_rocksdb_memory_bytes{kind}`` (bounded by the options in
#: streams/app.py, except the readers, which grow with the data on disk).
ROCKSDB_PROPERTIES = {
    "block_cache": "rocksdb.block-cache-usage",
    "memtables": "rocksdb.cur-size-all-mem-tables",
    "table_readers": "rocksdb.estimate-table-readers-mem",
}


def record_rocksdb_memory(tables: Iterable[Any]) -> None:
    """``tk_rocksdb_memory_bytes`` over the open partition databases of ``tables``
    (Faust's ``rocksdb://`` store keeps them in ``Store._dbs``; a memory store has none)."""
    totals = dict.fromkeys(ROCKSDB_PROPERTIES, 0)
    for table in tables:
        for db in list(getattr(table.data, "_dbs", {}).values()):
            for kind, prop in ROCKSDB_PROPERTIES.items():
                try:
                    totals[kind] += db.property_int_value(prop) or 0
                except Exception:  # a database closed meanwhile (revoked): next tick
                    continue
    for kind, total in totals.items():
        metrics.ROCKSDB_MEMORY.labels(kind).set(total)


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


async def until_recovered(app: Any, poll_s: float = 0.5) -> None:
    """Returns once the worker has joined its group and its tables are whole."""
    while not tables_recovered(app):
        await asyncio.sleep(poll_s)


class KeptUnacked:
    """``async with KeptUnacked(name, batch):`` around an agent's body over a batch of
    ``take_events``: a body that does not finish leaves the batch unacked.

    Faust's ``Stream.take_events`` acks every event of a batch in a ``finally``, also
    when the body raised or was cancelled (Faust cancels an agent on a rebalance and
    logs "Restarting on rebalance" at INFO): the batch's offsets are then committed
    with its effects never made. Session 32's drill lost one envelope on each partition
    of the family topic at the session expiry after the broker's 30 s stop (26 families
    wrong): the one batch in flight then, by all signs this way (the worker logs at
    WARNING, so how its body ended was not recorded). Here each message of such a batch gets one more reference, so
    that the ack Faust makes only drops it again: the messages stay unacked, no commit
    passes them (with :class:`CommitGuard` for a single one), :class:`LostMessages`
    reads their partition again a minute later, and a restart reads them from the
    committed offset. Every effect is idempotent, so what a failed batch did do is
    done again harmlessly. The error goes on up (Faust restarts the agent); counted in
    ``tk_batches_left_unacked_total{agent}`` and logged."""

    def __init__(self, agent: str, batch: list[Any]):
        self.agent = agent
        self.batch = batch

    async def __aenter__(self) -> list[Any]:
        return self.batch

    async def __aexit__(self, kind: Any, exc: Any, tb: Any) -> bool:
        if kind is not None:
            for event in self.batch:
                event.message.incref()
            metrics.BATCHES_LEFT_UNACKED.labels(self.agent).inc()
            log.warning(
                "%s: a batch of %d envelopes not finished (%s): left unacked, to be read again",
                self.agent,
                len(self.batch),
                kind.__name__,
            )
        return False


class CommitGuard:
    """Faust's commit, kept from stepping over a message no agent acked.

    Faust's ``Consumer._new_offset`` holds a commit back only when the first acked
    offset is *more than one* past the committed offset (which is the next to read):
    a single message lost at the committed offset (faust-streaming/faust#596) is
    committed past as soon as the next one is acked, and no restart reads it again.
    Session 32's 1,000,000-line drill lost, most likely so, one envelope of 17 events on the id
    topic, 28 s before a SIGKILL: the history was off by one family for half a year.
    Installed on a consumer (:meth:`install`), it answers "nothing to commit" while the
    message at the committed offset is unacked and no gap Faust knows of (a compacted
    or transactional offset) covers it, and Faust's own answer otherwise. The commit
    then stands behind the loss: :class:`LostMessages` finds it behind a later ack and
    reads the partition again, and a worker killed before that reads it on its restart.
    A partition whose committed offset is 0 Faust holds as None (unknown): left to
    Faust. ``consumer``: Faust's; ``_acked``, ``_committed_offset`` and ``_gap`` are
    its bookkeeping, not public API."""

    def __init__(self, consumer: Any):
        self.consumer = consumer
        self.faust = consumer._new_offset

    @classmethod
    def install(cls, consumer: Any) -> CommitGuard:
        """Every commit of ``consumer`` asks the guard (Faust calls ``self._new_offset``)."""
        guard = cls(consumer)
        consumer._new_offset = guard
        return guard

    def __call__(self, tp: Any) -> int | None:
        acked = self.consumer._acked.get(tp)
        committed = self.consumer._committed_offset.get(tp)
        if acked and committed is not None and min(acked) > committed:
            gaps = self.consumer._gap.get(tp)
            if not (gaps and gaps.overlaps(committed)):
                return None
        return self.faust(tp)


class LostMessages:
    """Messages Faust took from a partition and lost before an agent acked them, as in
    faust-streaming/faust#596 (a recovery clears the agents' queues after messages were
    fetched), found two ways, and read again:

    - *behind a later ack*: unacked while a later offset of the same partition is acked
      or committed. Each agent takes its partitions in order and acks a batch, in order,
      after its body, so a message behind a later ack is no longer being worked on;
    - *at the tail*: the last message Faust handed on is at or past the committed offset
      (the next to read), no message of the partition is in flight any more, some of
      those handed on since the commit are not acked (acked ones wait for Faust's next
      commit), and the commit has not moved for ``patience`` calls: they were
      dropped, with nothing after them to show it (seen in session 30's drill: 228
      messages of one partition, the worker idle for minutes).

    Faust commits no offset past them and a rebalance waits for them for ever. Counted
    per topic in ``tk_lost_messages`` on every call. A partition that has had some for
    ``patience`` calls in a row (a message cleared by a rebalance lingers in Faust's weak
    set until the collector runs) is read again from its committed offset by
    :meth:`repair`: every effect is idempotent, and Faust's acks skip an offset acked
    before. A race is left: a message fetched before the seek and handed on after it
    moves the read offset past the ones fetched again, which Faust then drops; the
    commit stands still behind them, they are found at the tail, and the partition is
    read again once more (if exactly one was dropped, :class:`CommitGuard` keeps Faust's
    commit from stepping over it).
    ``consumer``: Faust's; its bookkeeping is not public API (``_unacked_messages``,
    ``_acked``, ``_acked_index``, ``_committed_offset``, ``_read_offset``: the offset of
    the last message handed on, which ``seek_wait`` also sets; ``_paused_partitions``,
    logged)."""

    def __init__(self, patience: int = 12):
        self.patience = patience
        self.topics: set[str] = set()  # topics whose gauge was set
        self.calls: dict[Any, int] = {}  # tp → calls in a row with lost messages
        self.tails: dict[Any, list[int]] = {}  # tp → [committed, calls it stood still]
        # tp → (the offset to read it again from, its messages lost behind a later ack)
        self.due: dict[Any, tuple[int, list[Any]]] = {}

    def __call__(self, consumer: Any) -> dict[str, int]:
        """The lost messages per topic; sets :attr:`due`."""
        acked, committed = consumer._acked, consumer._committed_offset
        behind: dict[Any, list[Any]] = {}
        in_flight = set()
        for m in list(consumer._unacked_messages):
            later = max(acked.get(m.tp) or (-1,))
            if committed.get(m.tp) is not None:
                later = max(later, committed[m.tp])
            if not m.acked and later > m.offset:
                behind.setdefault(m.tp, []).append(m)
            elif not m.acked:
                in_flight.add(m.tp)
        self.calls = {tp: self.calls.get(tp, 0) + 1 for tp in behind}
        lost = {tp: len(ms) for tp, ms in behind.items()}
        for tp, n in self._tails(consumer, in_flight).items():  # patient already
            lost.setdefault(tp, n)
            self.calls[tp] = max(self.calls.get(tp, 0), self.patience)
        # Where CommitGuard cannot hold it (a committed offset of 0), Faust commits past
        # the message at the committed offset once the next is acked: read from the lowest
        self.due = {}
        for tp, n in self.calls.items():
            ms = behind.get(tp, [])
            offsets = [m.offset for m in ms] + [committed.get(tp)]
            if n >= self.patience and (offsets := [o for o in offsets if o is not None]):
                self.due[tp] = (min(offsets), ms)
        counts = dict.fromkeys(self.topics, 0)
        for tp, n in lost.items():
            counts[tp.topic] = counts.get(tp.topic, 0) + n
        for topic, n in counts.items():
            metrics.LOST_MESSAGES.labels(topic).set(n)
        self.topics |= counts.keys()
        return {topic: n for topic, n in counts.items() if n}

    async def repair(self, consumer: Any, steady: bool = True) -> dict[Any, int]:
        """Count, and read the partitions :attr:`due` again from their committed offsets
        (or a lost message's, when lower); returns those (tp → offset). A failed seek is
        tried at the next call. Not ``steady`` (a rebalance or a recovery, which pause
        partitions and clear queues on purpose): nothing is due, and nothing is counted
        towards it."""
        if not steady:
            self.calls, self.tails, self.due = {}, {}, {}
            return {}
        self(consumer)
        if not self.due:
            return {}
        again = {tp: offset for tp, (offset, _) in self.due.items()}
        try:
            await consumer.seek_wait(again)
        except Exception:  # the broker away: the losses stand, and are read next time
            log.exception("reading partitions with lost messages again failed; next call")
            return {}
        for tp, (offset, lost) in self.due.items():
            for m in lost:  # let go of: a rebalance would wait for them
                consumer._unacked_messages.discard(m)
            self.calls.pop(tp, None)
            self.tails.pop(tp, None)
            metrics.PARTITIONS_READ_AGAIN.labels(tp.topic).inc()
            log.warning(
                "messages of %s[%d] were taken and never acked (faust-streaming/faust#596):"
                " reading the partition again from offset %d%s",
                tp.topic,
                tp.partition,
                offset,
                " (Faust holds it paused)" if tp in consumer._paused_partitions else "",
            )
        self.due = {}
        return again

    def _tails(self, consumer: Any, in_flight: set) -> dict[Any, int]:
        """Messages lost at the tail of each partition (see the class)."""
        lost = {}
        committed = consumer._committed_offset
        for tp, read in list(consumer._read_offset.items()):
            done = committed.get(tp)
            if read is None or done is None or read < done or tp in in_flight:
                self.tails.pop(tp, None)
                continue
            acked = consumer._acked_index.get(tp) or ()
            if not (n := sum(1 for o in range(done, read + 1) if o not in acked)):
                self.tails.pop(tp, None)  # acked, to be committed at the next commit
                continue
            still = self.tails.setdefault(tp, [done, 0])
            if still[0] != done:
                still[:] = [done, 0]
            still[1] += 1
            if still[1] >= self.patience:
                lost[tp] = n
        return lost


async def metrics_view(web: Any, request: Any) -> Any:
    """``/metrics`` on the worker's web server, for Prometheus."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return web.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])


class LoopWatch:
    """A thread that notices when the event loop is held: the loop marks a beat every
    ``every_s``; a beat older than ``threshold_s`` is a stall, logged once with the
    stack the loop's thread is in (what holds it) and observed in
    ``tk_event_loop_stall_seconds`` when it ends. A stall longer than the session
    timeout loses the ingest consumer's group membership."""

    def __init__(
        self,
        threshold_s: float = 2.0,
        every_s: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.threshold_s = threshold_s
        self.every_s = every_s
        self.clock = clock
        self.beat = clock()
        self.loop_thread: int | None = None
        self.stalls: list[float] = []  # ended stalls, seconds (the last 100)

    async def run(self) -> None:
        """The loop's side, until cancelled; starts the watching thread."""
        self.loop_thread = threading.get_ident()
        stop = threading.Event()
        threading.Thread(
            target=self._watch, args=(stop,), name="tk-loop-watch", daemon=True
        ).start()
        try:
            while True:
                self.beat = self.clock()
                await asyncio.sleep(self.every_s)
        finally:
            stop.set()

    def _watch(self, stop: threading.Event) -> None:
        stalled_since: float | None = None
        while not stop.wait(self.every_s):
            late = self.clock() - self.beat
            if late > self.threshold_s and stalled_since is None:
                stalled_since = self.beat
                frame = sys._current_frames().get(self.loop_thread or 0)
                where = "".join(traceback.format_stack(frame, limit=25)) if frame else "?"
                log.warning("the event loop is held (%.1f s so far), in:\n%s", late, where)
            elif stalled_since is not None and self.beat > stalled_since:
                took = self.beat - stalled_since
                self.stalls = (self.stalls + [took])[-100:]
                metrics.LOOP_STALLS.observe(took)
                log.warning("the event loop was held for %.1f s", took)
                stalled_since = None
