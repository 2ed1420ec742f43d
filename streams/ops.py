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


def highwater(consumer: Any, tp: Any) -> int | None:
    """The partition's end offset as the consumer last fetched it (None: unknown)."""
    try:
        return consumer.highwater(tp)
    except Exception:  # a consumer not started, or the partition not fetched yet
        return None


async def record_lag(consumer: Any, assigned: Iterable[Any]) -> None:
    """Consumer lag per topic and partition (best effort, never fatal)."""
    for tp in assigned:
        high = highwater(consumer, tp)
        try:
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


class Finished:
    """The offsets of ``topics`` (the agents') whose agent body finished, per partition:
    the only offsets :class:`CommitGuard` lets a commit pass.

    Faust commits what it *acked*, and it acks more than what an agent finished: a batch
    whose body raised or was cancelled (``take_events`` acks in a ``finally``), a
    message at the committed offset stepped over (``_new_offset``), offsets it took for
    a gap after a seek raced a fetch (``_add_gap``). Each lost effects in a drill, and
    one loss of session 32's third drill run (a message at the committed offset acked
    by a just-restarted worker, its events never applied) has no known path at all.
    So the commit is not asked of Faust's acks but of the bodies: an offset is passed
    only once the body that took it has finished, whatever Faust did.

    Offsets below ``gone`` were deleted by the topic's retention before a body took
    them (:meth:`LostMessages.repair` finds that out): nothing can be done for them.

    A replay is not idempotent message by message, only as a whole: a family lays each
    member's tail over its copy last-writer-wins (``models.family``), so a message read
    again after newer ones sets the state back until the newer ones are read again too.
    A body finishing an offset at or below one finished before means the partition is
    being read again from there (a seek: :meth:`LostMessages.reread`, Faust's after a
    rebalance, a message handed on late): the marks from there on belong to the pass
    being redone and are dropped, so that the commit follows the replay. Kept, they let
    session 33's third drill commit 739 to 1023 seven seconds into a replay from 739;
    the worker was killed 55 s later, its replay near 900, and 653 families kept the
    older tails the replay had laid over the newer ones.

    >>> from faust.types import TP
    >>> done = Finished({"t"})
    >>> done.offsets[TP("t", 0)] = {10, 11, 13}
    >>> done.upto(TP("t", 0), 10), done.upto(TP("t", 0), 12), done.upto(TP("t", 1), 0)
    (12, 12, 0)
    """

    def __init__(self, topics: Iterable[str]):
        self.topics = frozenset(topics)
        self.offsets: dict[Any, set[int]] = {}
        self.gone: dict[Any, int] = {}

    def add(self, batch: Iterable[Any]) -> None:
        """A body finished every event of ``batch`` (marks of a pass it redoes dropped).

        >>> from types import SimpleNamespace as E
        >>> from faust.types import TP
        >>> done, tp = Finished({"t"}), TP("t", 0)
        >>> done.add([E(message=E(tp=tp, offset=o)) for o in (11, 12, 13)])
        >>> done.add([E(message=E(tp=tp, offset=10)), E(message=E(tp=tp, offset=11))])
        >>> sorted(done.offsets[tp]), done.upto(tp, 10)
        ([10, 11], 12)
        """
        taken: dict[Any, list[int]] = {}
        for event in batch:
            message = event.message
            taken.setdefault(message.tp, []).append(message.offset)
        for tp, offsets in taken.items():
            done = self.offsets.setdefault(tp, set())
            low = min(offsets)
            if done and low <= max(done):  # read again from ``low``
                done.difference_update([o for o in done if o >= low])
            done.update(offsets)

    def upto(self, tp: Any, start: int) -> int:
        """The first offset from ``start`` on that no body finished (the committed offset
        ``start`` is the next to read; the finished ones below it are let go)."""
        n = max(start, self.gone.get(tp, 0))
        done = self.offsets.get(tp)
        if not done:
            return n
        if min(done) < start:
            done.difference_update([o for o in done if o < start])
        while n in done:
            n += 1
        return n

    def hole(self, tp: Any, start: int) -> tuple[int, int] | None:
        """``(first, n)``: the first offset from ``start`` on that no body finished, and
        how many up to the last finished one no body finished; None when no body
        finished any offset after ``first``.

        >>> from faust.types import TP
        >>> done = Finished({"t"})
        >>> done.offsets[TP("t", 0)] = {10, 11, 13, 15}
        >>> done.hole(TP("t", 0), 10), done.hole(TP("t", 0), 15)
        ((12, 2), None)
        """
        first = self.upto(tp, start)
        done = self.offsets.get(tp)
        last = max(done) if done else -1
        if last <= first:
            return None
        return first, sum(1 for o in range(first, last) if o not in done)

    def forget(self, tps: Iterable[Any]) -> None:
        """Partitions revoked: whoever takes them commits them."""
        for tp in tps:
            self.offsets.pop(tp, None)
            self.gone.pop(tp, None)


class KeptUnacked:
    """``async with KeptUnacked(name, batch, finished):`` around an agent's body over a
    batch of ``take_events``: a body that finishes marks the batch :class:`Finished`; one
    that does not leaves it unacked.

    Faust's ``Stream.take_events`` acks every event of a batch in a ``finally``, also
    when the body raised or was cancelled (Faust cancels an agent on a rebalance and
    logs "Restarting on rebalance" at INFO). Session 32's drill lost one envelope on
    each partition of the family topic at the session expiry after the broker's 30 s
    stop (26 families wrong): the one batch in flight then, by all signs this way. Here
    each message of such a batch gets one more reference, so that the ack Faust makes
    only drops it again: the messages stay unacked and :class:`LostMessages` reads
    their partition again a minute later (and :class:`CommitGuard` passes no offset
    the body did not finish, acked or not). The read again runs to the end, so what a
    failed batch did do is done again harmlessly. The error goes on up (Faust restarts the
    agent); counted in ``tk_batches_left_unacked_total{agent}`` and logged."""

    def __init__(self, agent: str, batch: list[Any], finished: Finished | None = None):
        self.agent = agent
        self.batch = batch
        self.finished = finished

    async def __aenter__(self) -> list[Any]:
        return self.batch

    async def __aexit__(self, kind: Any, exc: Any, tb: Any) -> bool:
        if kind is None:
            if self.finished is not None:
                self.finished.add(self.batch)
            return False
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
    """Faust's commit of the agents' topics, moved only over offsets :class:`Finished`.

    Faust's ``Consumer._new_offset`` commits up to the first hole in what it acked, and
    it acks what no body finished (:class:`Finished`); it also holds a commit back only
    when the first acked offset is *more than one* past the committed offset, so that a
    single message lost there (faust-streaming/faust#596) is committed past as soon as
    the next one is acked. Installed on a consumer (:meth:`install`), the guard answers
    for the partitions of ``finished.topics`` the end of the run of finished offsets
    from the committed one (None: nothing to commit), and Faust's own answer for any
    other topic. Faust's bookkeeping of its acks goes on as before (it is asked, its
    answer not used). A commit that stands behind an offset no body finished is found by
    :class:`LostMessages` a minute later, which reads the partition again; a worker
    killed before that reads it on its restart. Faust holds a committed offset of 0 as
    None: read as 0. ``consumer``: Faust's; ``_committed_offset`` is its bookkeeping,
    not public API."""

    def __init__(self, consumer: Any, finished: Finished):
        self.consumer = consumer
        self.finished = finished
        self.faust = consumer._new_offset

    @classmethod
    def install(cls, consumer: Any, finished: Finished) -> CommitGuard:
        """Every commit of ``consumer`` asks the guard (Faust calls ``self._new_offset``)."""
        guard = cls(consumer, finished)
        consumer._new_offset = guard
        return guard

    def __call__(self, tp: Any) -> int | None:
        faust = self.faust(tp)
        if tp.topic not in self.finished.topics:
            return faust
        start = self.consumer._committed_offset.get(tp) or 0
        upto = self.finished.upto(tp, start)
        return upto if upto > start else None


async def parked(consumer: Any, timeout_s: float = 30.0, poll_s: float = 0.02) -> None:
    """Returns once Faust's fetch loop waits for its flow to resume (after
    ``stop_flow``: it waits on ``can_resume_flow``, mode's ``Event``, whose waiters are
    its own bookkeeping); raises ``TimeoutError`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not consumer.can_resume_flow._waiters:
        if time.monotonic() > deadline:
            raise TimeoutError("Faust's fetch loop did not stop")
        await asyncio.sleep(poll_s)


class LostMessages:
    """Messages Faust took from a partition and lost before an agent finished them, as in
    faust-streaming/faust#596 (a recovery clears the agents' queues after messages were
    fetched), found three ways, and read again:

    - *behind a later ack*: unacked while a later offset of the same partition is acked
      or committed. Each agent takes its partitions in order and acks a batch, in order,
      after its body, so a message behind a later ack is no longer being worked on;
    - *at the tail*: the last message Faust handed on is at or past the committed offset
      (the next to read), no message of the partition is in flight any more, some of
      those handed on since the commit are not acked (acked ones wait for Faust's next
      commit), and the commit has not moved for ``patience`` calls: they were
      dropped, with nothing after them to show it (seen in session 30's drill: 228
      messages of one partition, the worker idle for minutes);
    - *held* (with ``finished``, :class:`Finished`): the first offset from the committed
      one that no body finished has stood still for ``patience`` calls with a later
      offset finished: Faust acked it, or dropped it, and :class:`CommitGuard` holds the
      commit there. (The guard asks Faust's ``_new_offset`` too, which lets go of the
      acks it counts as committable: behind such a hole the first way misses some.)

    Counted per topic in ``tk_lost_messages`` on every call. Once a partition has had
    some for ``patience`` calls in a row (a message cleared by a rebalance lingers in
    Faust's weak set until the collector runs), :meth:`repair` reads it again from its
    lost offset (:meth:`reread`), to the end: the commit follows (:class:`Finished`).
    ``consumer``: Faust's; its bookkeeping is not public API (``_unacked_messages``,
    ``_acked``, ``_acked_index``, ``_committed_offset``, ``_read_offset``: the offset of
    the last message handed on, which ``seek_wait`` also sets; ``_paused_partitions``,
    logged)."""

    def __init__(self, patience: int = 12, finished: Finished | None = None, park_s: float = 30.0):
        self.patience = patience
        self.finished = finished
        self.park_s = park_s  # how long a read again waits for Faust's fetch loop to stop
        self.topics: set[str] = set()  # topics whose gauge was set
        self.calls: dict[Any, int] = {}  # tp → calls in a row with lost messages
        self.tails: dict[Any, list[int]] = {}  # tp → [committed, calls it stood still]
        self.held: dict[Any, list[int]] = {}  # tp → [first unfinished, calls it stood]
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
        holes = self._holes(consumer)
        held = self._held(holes)
        floors = {tp: holes[tp][0] for tp in held}  # where a held partition is read from
        for tp, n in {**self._tails(consumer, in_flight), **held}.items():  # patient already
            lost.setdefault(tp, n)
            self.calls[tp] = max(self.calls.get(tp, 0), self.patience)
        # From the lowest of the lost messages, the commit and the hole: without the guard
        # (``finished`` None) Faust can commit past a lost message
        self.due = {}
        for tp, n in self.calls.items():
            ms = behind.get(tp, [])
            offsets = [m.offset for m in ms] + [committed.get(tp), floors.get(tp)]
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
        """Count, and when a partition is :attr:`due`, read it again from its offset to
        read from, with the fetch loop stopped (:meth:`reread`); returns the due ones
        (tp → offset). A failed re-read is tried at the next call. Not ``steady`` (a rebalance or a recovery, which pause
        partitions and clear queues on purpose): nothing is due, and nothing is counted
        towards it."""
        if not steady:
            self.calls, self.tails, self.held, self.due = {}, {}, {}, {}
            return {}
        self(consumer)
        if not self.due:
            return {}
        again = {tp: offset for tp, (offset, _) in self.due.items()}
        try:
            for tp in await self._retained(consumer, again):
                del again[tp]
            if again:
                await self.reread(consumer, again)
        except Exception:  # the broker away: the losses stand, and are read next time
            log.exception("reading partitions with lost messages again failed; next call")
            return {}
        for tp, (_, lost) in self.due.items():
            for m in lost:  # let go of: a rebalance would wait for them
                consumer._unacked_messages.discard(m)
            self.calls.pop(tp, None)
            self.tails.pop(tp, None)
            self.held.pop(tp, None)
            if tp not in again:
                continue
            metrics.PARTITIONS_READ_AGAIN.labels(tp.topic).inc()
            log.warning(
                "messages of %s[%d] were taken and never finished (faust-streaming/faust#596):"
                " reading the partition again from offset %d%s",
                tp.topic,
                tp.partition,
                again[tp],
                " (Faust holds it paused)" if tp in consumer._paused_partitions else "",
            )
        self.due = {}
        return again

    async def reread(self, consumer: Any, lowest: dict[Any, int]) -> None:
        """The partitions of ``lowest`` read again from their offsets, and every other
        partition of the agents' topics from the last offset Faust handed on (its
        committed offset when none was since a seek; nothing committed: 0, which the
        broker answers from the first kept offset on), with Faust's fetch loop stopped.

        A seek while the fetch loop hands on a batch it fetched before the seek lets
        that batch's later messages move Faust's read offset past the ones fetched
        again, which it then drops as already read (``_drain_messages``); Faust also
        takes the skipped offsets for a gap and counts them acked. Under a backlog the
        loop is nearly always inside such a batch: session 33's drill read the same
        partitions again every minute and never filled their holes. Stopped, the loop
        drops the rest of its batch and waits (``can_resume_flow``); since that rest may
        hold any partition's messages, every partition is sought, each to the last
        offset handed on (the one whose hand-on the stop cut short is taken again).
        Seeking them all to their committed offsets, as Faust's recovery does, made
        each read again redo what the agents had taken since the last commit: session
        33's second drill, with the read offset a seek leaves at the end of a partition
        taken for a message lost there, read again every 40 s and its family agent
        spent its time on duplicates. The flow is resumed unless a rebalance began
        meanwhile (Faust's recovery resumes it then)."""
        consumer.stop_flow()
        try:
            await parked(consumer, self.park_s)
            committed, acking = consumer._committed_offset, consumer.app.topics.acks_enabled_for
            read = consumer._read_offset
            again = {
                tp: r if (r := read.get(tp)) is not None else committed.get(tp) or 0
                for tp in consumer.assignment()
                if acking(tp.topic)
            }
            for tp, offset in lowest.items():
                again[tp] = min(offset, again.get(tp, offset))
            await consumer.seek_wait(again)
        finally:
            if tables_recovered(consumer.app):
                consumer.resume_flow()

    async def _retained(self, consumer: Any, again: dict[Any, int]) -> list[Any]:
        """The partitions of ``again`` whose offset to read from the topic's retention
        has deleted: the guard lets the commit pass those gone (else it would stand
        behind them for ever), and the partition is not read again (what is kept was
        read; a hole after it is found at a later call)."""
        if self.finished is None:
            return []
        first, gone = await consumer.earliest_offsets(*again), []
        for tp, offset in again.items():
            if (kept := first.get(tp)) is not None and kept > offset:
                log.warning(
                    "%s[%d]: offsets %d to %d were deleted by retention before an agent"
                    " finished them: going on from %d",
                    tp.topic,
                    tp.partition,
                    offset,
                    kept - 1,
                    kept,
                )
                self.finished.gone[tp] = kept
                gone.append(tp)
        return gone

    def _holes(self, consumer: Any) -> dict[Any, tuple[int, int]]:
        """``{tp: (first, n)}``: :meth:`Finished.hole` from the committed offset."""
        if self.finished is None:
            return {}
        committed = consumer._committed_offset
        holes = {tp: self.finished.hole(tp, committed.get(tp) or 0) for tp in self.finished.offsets}
        return {tp: h for tp, h in holes.items() if h is not None}

    def _held(self, holes: dict[Any, tuple[int, int]]) -> dict[Any, int]:
        """Partitions whose hole (:meth:`_holes`) has stood at the same offset for
        ``patience`` calls (see the class). Each agent takes its partitions in order, so
        no body is still to come to an offset before one it finished, unless the
        partition was read again (which starts the patience anew)."""
        lost = {}
        for tp in [tp for tp in self.held if tp not in holes]:
            del self.held[tp]
        for tp, (first, n) in holes.items():
            if self._stood(self.held, tp, first):
                lost[tp] = n
        return lost

    def _tails(self, consumer: Any, in_flight: set) -> dict[Any, int]:
        """Messages lost at the tail of each partition (see the class)."""
        lost = {}
        committed = consumer._committed_offset
        for tp, read in list(consumer._read_offset.items()):
            done = committed.get(tp)
            if read is not None and (high := highwater(consumer, tp)) is not None:
                # a seek sets the read offset to the next to read: at the end of the
                # partition no message is there, and none was lost
                read = min(read, high - 1)
            if read is None or done is None or read < done or tp in in_flight:
                self.tails.pop(tp, None)
                continue
            acked = consumer._acked_index.get(tp) or ()
            if not (n := sum(1 for o in range(done, read + 1) if o not in acked)):
                self.tails.pop(tp, None)  # acked, to be committed at the next commit
                continue
            if self._stood(self.tails, tp, done):
                lost[tp] = n
        return lost

    def _stood(self, seen: dict[Any, list[int]], tp: Any, at: int) -> bool:
        """Whether ``tp`` has stood at offset ``at`` for ``patience`` calls, this one
        counted (``seen``: tp → [offset, calls in a row there])."""
        still = seen.setdefault(tp, [at, 0])
        if still[0] != at:
            still[:] = [at, 0]
        still[1] += 1
        return still[1] >= self.patience


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
