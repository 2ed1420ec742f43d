"""The worker in one process: an event file's stream, in arrival order, without Kafka.

:class:`Replay` runs what a worker runs on a stream, with the same pure steps: the
picture (:class:`models.picture.Pipeline` with the feature profile), the learner
(:class:`models.learning.Learner`) fed the vectors of the families that changed once a
week of ``W``, its snapshots on its own schedule of ``W`` (no wall clock), and every
counted family re-assigned its type and service-need group on a new snapshot. Each day
that ``W`` leaves behind is complete and published (W − 1, docs/disclosure.md): just
before the batch that moves ``W`` past it, the replay calls ``on_tick(day, picture)``
with that day's unsuppressed picture in the shape of
:func:`sinks.redis_reader.read_published_async` (what the worker's alert tick reads from
the history in Redis), so a backtest sees only what had arrived by then. A day that
``W`` skips is ticked too, with ``W`` moved onto it as the worker's sweep moves it.

Ticks start when the registers go live: on the day of the earliest ``recorded_at`` (an
initial load carries decades of ``occurred_at`` in its first days; those days are
history, not moments anyone watched), or on ``W`` if that had passed it already. The
learner's baseline of the groups counts from that day too (:meth:`Learner.step`'s
``live``), not from a ``W`` of the load.

>>> ev = lambda i, t, d, day, person="p1": {"event_id": i, "source": "x", "type": t,
...     "occurred_at": day, "recorded_at": "2026-01-01T12:00:00Z", "person": person, "data": d}
>>> ticks = []
>>> replay = Replay(learner=None, on_tick=lambda d, pic: ticks.append((d, pic["all"]["families"])))
>>> replay.feed([ev("1", "family.member_added", {"family": "f1", "role": "parent", "birth_date": "1990-01-01"}, "2025-12-01"),
...              ev("2", "family.member_added", {"family": "f1", "role": "child", "birth_date": "2020-01-01"}, "2026-01-01", "p2"),
...              ev("3", "family.residence_changed", {"family": "f1", "postcode": "33100", "municipality": "837"}, "2026-01-03", None),
...              ev("4", "health.visit", {"service": "primary_care"}, "2026-01-05", "p2")], batch=1)
>>> ticks  # the family counts from its residence on; 2026-01-04 was skipped by W, 01-05 is not complete
[('2026-01-01', 0), ('2026-01-02', 0), ('2026-01-03', 1), ('2026-01-04', 1)]
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable

from models.areas import reference_areas
from models.cellkey import record_key
from models.family_types import TypeAssigner
from models.features import state_vector
from models.history import History
from models.learning import Learner, LearnerBatch
from models.picture import Pipeline, day, delta
from models.profile import state_profile
from models.publication import keysums_of
from sinks.redis_reader import picture_on

__all__ = ["LEARN_EVERY_DAYS", "Replay", "TouchedPipeline"]

#: The learner's micro-batches: the vectors of the families that changed, once a week of W.
LEARN_EVERY_DAYS = 7
EMPTY = Pipeline.watermark  # W before any event


class TouchedPipeline(Pipeline):
    """A pipeline that remembers the families its refreshes touched (those whose due
    day came too)."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.touched: set[str] = set()

    def refresh(self, families=(), since=None) -> None:
        self.touched |= set(families) | set(since or ())
        super().refresh(families, since)

    def due_by(self, w: int) -> set[str]:
        # families aged out by W alone are refreshed too: the learner must forget them
        found = super().due_by(w)
        self.touched |= found
        return found


class Replay:
    """A worker's steps over events in arrival order (see the module doc).

    Parameters
    ----------
    learner
        The learning step (:func:`worker_learner` for the worker's settings); None: no
        family types and no groups.
    on_tick
        ``(day, picture)`` each time ``W`` reaches a new day, after the batch that moved
        it.
    keep_history
        Keep the in-memory history (every day of every scope); off by default, since a
        backtest reads only the present at each tick.
    """

    def __init__(
        self,
        learner: Learner | None,
        on_tick: Callable[[str, dict], None] | None = None,
        keep_history: bool = False,
    ):
        self.learner = learner
        self.on_tick = on_tick
        self.pipe = TouchedPipeline(
            profile=state_profile,
            history=History() if keep_history else None,
            on_contribution=self._count,
        )
        self.state = learner.start(None) if learner is not None else None
        self.assigner: TypeAssigner | None = None
        self.snapshots = 0
        self.events = 0
        self.areas = {pc: a["municipality"] for pc, a in reference_areas().items()}
        self.totals: dict[str, dict[str, int]] = {}  # the aggregates, kept by deltas
        self._vectors: dict[int, tuple[dict, dict | None]] = {}  # id(state) -> (state, vector)
        self._live_from: int | None = None  # the day of the earliest recorded_at
        self._ticked: int | None = None
        self._next_learn: int | None = None

    # -- feeding ------------------------------------------------------------------------
    def feed(self, events: Iterable[dict], batch: int = 200) -> None:
        """Process validated, pseudonymised events in order, at most ``batch`` at a time
        and never past an event that moves ``W`` on: each day that is ``W`` gets its tick
        with everything that arrived while it was."""
        chunk: list[dict] = []
        w = self.pipe.watermark
        for ev in events:
            if chunk and (len(chunk) >= batch or ev["occurred_at"] > w):
                self._process(chunk)
                chunk = []
            w = max(w, ev["occurred_at"])
            chunk.append(ev)
        if chunk:
            self._process(chunk)

    def _process(self, chunk: list[dict]) -> None:
        for ev in chunk:
            rec = day(ev["recorded_at"][:10])
            self._live_from = rec if self._live_from is None else min(self._live_from, rec)
        self._tick_until(day(max(ev["occurred_at"] for ev in chunk)) - 1)
        self.pipe.process_many(chunk)
        self.events += len(chunk)
        if self.learner is not None:
            self._learn(day(self.pipe.watermark))

    def _tick_until(self, last: int) -> None:
        """Tick every day up to ``last`` not ticked yet (``feed`` ends a chunk before
        an event that moves ``W``: what has arrived is all there is of those days)."""
        if self._live_from is None or self.pipe.watermark == EMPTY:
            return
        w = day(self.pipe.watermark)
        start = max(self._live_from, w, (self._ticked or 0) + 1)
        for on in range(start, last + 1):
            if on > day(self.pipe.watermark):  # as the worker's sweep moves W
                self.pipe.watermark = dt.date.fromordinal(on).isoformat()
                self.pipe.refresh()
            self._ticked = on
            if self.on_tick is not None:
                self.on_tick(self.pipe.watermark, self.picture())

    # -- the learner --------------------------------------------------------------------
    def _learn(self, w: int) -> None:
        if self._next_learn is None:
            self._next_learn = w + LEARN_EVERY_DAYS
        if w < self._next_learn:
            return
        self._next_learn = w + LEARN_EVERY_DAYS
        assert self.learner is not None and self.state is not None
        batch = LearnerBatch()
        for fam in sorted(self.pipe.touched):
            counted = fam in self.pipe.contributions
            batch.vectors.append((fam, self._vector(self.pipe.families[fam]) if counted else None))
        self.pipe.touched.clear()
        self._vectors.clear()
        # the learner's own schedule of W; a replay has no wall clock to wait for
        live = dt.date.fromordinal(self._live_from).isoformat() if self._live_from else None
        self.state, snap = self.learner.step(
            self.state, batch, self.pipe.watermark, now=float(w) * 86400, live=live
        )
        if snap is not None:
            self.assigner = TypeAssigner.from_snapshot(snap)
            self.pipe.assign = self._assign
            self.snapshots += 1
            self.pipe.refresh(families=list(self.pipe.families))
            self.pipe.touched.clear()

    def _vector(self, state: dict) -> dict | None:
        """The family's vector, computed once per state: the assignment of a refresh and
        the learner's batch read the same one (a vector costs more than the rest of a
        family's refresh)."""
        hit = self._vectors.get(id(state))
        if hit is not None and hit[0] is state:
            return hit[1]
        vec = state_vector(state)
        self._vectors[id(state)] = (state, vec)
        return vec

    def _assign(self, state: dict) -> tuple[int | None, int | None]:
        """:func:`models.family_types.family_assignment` through the vector cache."""
        vec = self._vector(state)
        if vec is None or self.assigner is None:
            return None, None
        types, groups = self.assigner.assign_many([vec])
        return int(types[0]), int(groups[0])

    # -- the picture --------------------------------------------------------------------
    def _count(self, fam: str, old: dict | None, new: dict | None) -> None:
        for (scope, name), v in delta(old, new, record_key(fam)).items():
            bucket = self.totals.setdefault(scope, {})
            bucket[name] = bucket.get(name, 0) + v
            if not bucket[name]:
                del bucket[name]

    def picture(self) -> dict:
        """The unsuppressed present picture with its cell keys (``keys``), as the
        worker's alert tick reads it."""
        on = day(self.pipe.watermark)
        history = {scope: {on: counts} for scope, counts in self.totals.items()}
        areas = {c["area"]: c["municipality"] for c in self.pipe.contributions.values()}
        picture = picture_on(history, on, self.areas | areas, self.pipe.watermark)
        picture["keys"] = {scope: keysums_of(counts) for scope, counts in self.totals.items()}
        return picture
