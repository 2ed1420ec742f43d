"""The worker's stages between topics: the door (ingest) and a pure step over a table.

Each takes a batch of Faust events and returns what to send on; the agents in
``streams/app.py`` only move it. Nothing here awaits, so a batch runs without yielding
to the event loop (which is why the internal-topic batches are small).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from types import MappingProxyType
from typing import Any

from models import picture
from models.contract import InvalidEvent, parse_json, validate
from models.pseudonym import Pseudonymiser
from sinks import metrics
from sinks.redis_sink import AsyncRedisSink, Written
from streams.changelog import Envelope, KeyWrites, TableReads, Writes
from streams.transport import Envelopes, Sender, as_current

log = logging.getLogger("tilannekuva.worker")
EMPTY: Mapping[str, Any] = MappingProxyType({})


def dlq_record(raw: bytes, exc: InvalidEvent, received_at: str) -> dict:
    """The contract's DLQ shape: the original object if it parses, else the text.

    >>> dlq_record(b"{nope", InvalidEvent("not_json", "x"), "2026-01-01T00:00:00Z")["event"]
    '{nope'
    """
    try:
        original: object = parse_json(raw)
    except InvalidEvent:
        original = raw.decode("utf-8", errors="replace")
    return {"reason": exc.reason, "event": original, "received_at": received_at}


class Door:
    """Ingest: validate, pseudonymise, route by event id; the rest to the DLQ.

    ``raise_watermark(day)`` is told every accepted ``occurred_at`` (the sink queues
    the highest) and ``went_live(day)`` every ``recorded_at`` (the sink queues the
    lowest); ``now()`` stamps DLQ records.
    """

    def __init__(
        self,
        pseudonymiser: Pseudonymiser,
        raise_watermark: Callable[[str], None],
        went_live: Callable[[str], None],
        partitions: int,
        now: Callable[[], str],
    ):
        self.pseudonymiser = pseudonymiser
        self.raise_watermark = raise_watermark
        self.went_live = went_live
        self.partitions = partitions
        self.now = now

    def __call__(self, batch: list[tuple[bytes, float | None]]) -> tuple[Envelopes, list[dict]]:
        """Envelopes for the dedup topic and the DLQ records of the rejected, from
        ``(raw message, its Kafka timestamp in seconds)`` pairs."""
        metrics.EVENTS_IN.labels("ingest").inc(len(batch))
        outs, rejected = Envelopes(self.partitions), []
        for raw, t0 in batch:
            try:
                ev = self.pseudonymiser.event(validate(raw))
            except Exception as exc:  # a worker never crashes on data
                rejected.append(self._reject(raw, exc))
                continue
            metrics.ACCEPTED.inc()
            self.raise_watermark(ev["occurred_at"])
            self.went_live(ev["recorded_at"])
            outs.add("id", picture.route_key(ev), ev, t0)
        return outs, rejected

    def _reject(self, raw: bytes, exc: Exception) -> dict:
        if not isinstance(exc, InvalidEvent):
            log.exception("unexpected error validating a message")
            exc = InvalidEvent("internal", type(exc).__name__)
        metrics.REJECTED.labels(exc.code).inc()
        return dlq_record(raw, exc, self.now())


class Pending:
    """States a :meth:`TableStep.run` computed and did not store yet: ``states`` (each
    key's latest) and, per envelope, what to store with it as the current event."""

    def __init__(self, writes: Writes):
        self.writes = writes
        self.states: dict[str, Any] = {}
        self.envelopes: list[Envelope] = []

    async def commit(self) -> None:
        """Store them: each key once per envelope, in its envelope's changelog partition."""
        envelopes, self.envelopes = self.envelopes, []
        await self.writes.write(envelopes)


class TableStep:
    """A pure :data:`models.picture.Step` over every item of every envelope of a batch,
    its state in ``table``; each touched key is written to the table once per envelope
    (changed or not), with the envelope as Faust's current event (its changelog
    partition). ``writes`` stores them (default: ``table[key] = state``; the worker
    gives :class:`streams.changelog.ChangelogBatches`)."""

    def __init__(
        self,
        name: str,
        table: MutableMapping,
        step: picture.Step,
        partitions: int,
        writes: Writes | None = None,
    ):
        self.name = name
        self.table = table
        self.step = step
        self.partitions = partitions
        self.writes = writes if writes is not None else KeyWrites(table)
        self.reads = TableReads(table)

    def run(
        self, batch: list[Any], unstored: Mapping[str, Any] = EMPTY
    ) -> tuple[Envelopes, Pending]:
        """The outputs, and the new states not yet stored: a stage stores them only once
        its effects are out, in Kafka (:class:`Forward`) or in Redis
        (:meth:`streams.families.FamilyWriter.apply_behind`). ``unstored``: states newer
        than the table's, of an earlier batch still being written."""
        outs, pending = Envelopes(self.partitions), Pending(self.writes)
        for event in batch:
            items = event.value["items"]
            metrics.EVENTS_IN.labels(self.name).inc(len(items))
            # An envelope's keys are all of its partition: read at once, those not
            # computed already in this batch (those read from ``pending`` below).
            stored = self.reads.of(
                event.message.partition,
                [k for k, _, _ in items if k not in pending.states and k not in unstored],
            )
            states: dict = {}
            for key, msg, t0 in items:
                if key in pending.states:
                    old = pending.states[key]
                elif key in unstored:
                    old = unstored[key]
                else:
                    old = stored[key]
                new, produced = self.step(old, key, msg)
                # Written even when unchanged: after a crash the database can hold a
                # state the changelog lacks (the send was still buffered), and the
                # replay, a no-op here, is the one chance to send it (a standby or a
                # take-over recovers from the changelog alone).
                pending.states[key] = states[key] = new
                for stage, okey, out in produced:
                    outs.add(stage, okey, out, t0)
            pending.envelopes.append((event, states))
        return outs, pending


class Forward:
    """A middle stage (dedup, person): its step's outputs are in Kafka before the states
    that made them are stored.

    The other order lost effects: a SIGKILL between the two left a stored state whose
    outputs were still in the producer's buffer, and the replay from that state sends
    less than the first run did (a person who left a family no longer has it among
    theirs, so the family is not told again and still counts them). Delivered first, a
    crash before the store replays from the old state and sends the same again, which
    every later step takes as a no-op.
    """

    def __init__(self, step: TableStep, send: Sender):
        self.step = step
        self.send = send

    async def __call__(self, batch: list[Any]) -> None:
        outs, unstored = self.step.run(batch)
        await self.send.deliver(self.step.name, outs)
        await unstored.commit()


class Days:
    """Per partition of the id topic, in ``table`` (keyed by partition): the first and
    the last ``occurred_at`` of the accepted events it has carried, and the first
    ``recorded_at`` day (the registers went live): the first day, W and ``tk:live``,
    kept where a Redis that lost them cannot take them along (streams/restore.py)."""

    def __init__(self, table: MutableMapping):
        self.table = table
        self.reads = TableReads(table)

    def __call__(self, batch: list[Any]) -> None:
        for event in batch:
            items = event.value["items"]
            if not items:
                continue
            on = [msg["occurred_at"] for _, msg, _ in items]
            live = min(msg["recorded_at"][:10] for _, msg, _ in items)
            partition = event.message.partition
            key = str(partition)
            old = self.reads.of(partition, [key])[key]
            as_current(event)  # the write below goes to its partition's database
            new = [min(on), max(on), live]
            if old is not None:
                # a span stored before the live day was kept has two days
                was = old[2] if len(old) > 2 else live
                new = [min(old[0], new[0]), max(old[1], new[1]), min(was, live)]
            self.table[key] = new  # also unchanged: as TableStep, for a changelog behind

    def span(self, partitions: Iterable[int]) -> tuple[str, str] | None:
        """``(first, last)`` over ``partitions``, None before any event."""
        spans = self._spans(partitions)
        if not spans:
            return None
        return min(s[0] for s in spans), max(s[1] for s in spans)

    def live(self, partitions: Iterable[int]) -> str | None:
        """The first ``recorded_at`` day over ``partitions``, None where none is kept."""
        return min((s[2] for s in self._spans(partitions) if len(s) > 2), default=None)

    def _spans(self, partitions: Iterable[int]) -> list[list[str]]:
        keys = {str(p): p for p in partitions}  # each partition's span is kept in it
        return [s for s in self.reads.many(keys).values() if s]


def history_since(outs: Envelopes) -> dict[str, int | None]:
    """``{family: day}`` from the family step's ``("history", family, {"since"})``
    outputs: the earliest day from which each family's history changed (None: it did
    not, only perhaps its present or its group).

    >>> outs = Envelopes(2)
    >>> for since in (5, None, 3):
    ...     outs.add("history", "f", {"since": since}, None)
    >>> history_since(outs)
    {'f': 3}
    """
    out: dict[str, int | None] = {}
    for (stage, _), items in outs.items():
        if stage == "history":
            for key, msg, _ in items:
                out[key] = picture.earliest(out.get(key), msg["since"])
    return out


def touched(batch: list[Any]) -> dict[str, int]:
    """``{key: partition}`` of every item in a batch of envelopes."""
    return {key: event.message.partition for event in batch for key, _, _ in event.value["items"]}


def observe_event_to_redis(batch: list[Any], now: float) -> None:
    """``now − t0`` of every item whose effect is now in Redis (Kafka timestamps of
    arrival in register-events, in seconds)."""
    for event in batch:
        for _, _, t0 in event.value["items"]:
            if t0:
                metrics.EVENT_TO_REDIS.observe(max(0.0, now - t0))


class TaskSinks:
    """One Redis sink per task, since a sink's queue belongs to whoever flushes it (a
    flush takes its queue before its first await, so tasks cannot drop each other's
    writes). ``ready()`` loads the scripts once."""

    def __init__(self, redis: Any, now: Callable[[], str]):
        self.written = Written()  # what Redis answered, for streams/restore.py
        self.ingest, self.family, self.sweep, self.model, self.restore = (
            AsyncRedisSink(redis, now=now, written=self.written) for _ in range(5)
        )

    async def ready(self) -> None:
        for sink in (self.ingest, self.family, self.sweep, self.model, self.restore):
            if sink.apply_sha is None:
                await sink.setup()
