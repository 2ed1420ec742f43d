"""The history cache: every day's whole picture, suppressed once, kept while it holds.

A history answer of one scope needs, for each of its days, the *whole* picture of that
day suppressed with :func:`models.suppression.suppress` (about 6 ms a day at 80,000
families, more when areas are small; bench/README.md), so the API (and
``tilannekuva export``) keep them:

- **The raw history** of every scope is held in a :class:`~tilannekuva.api.cube.Cube`
  and refreshed with a read-only Lua script (:data:`DELTA_LUA`) that, for each hash,
  compares a fingerprint of its content (the SHA-1 of its ``DUMP``) with the one the
  cache holds and sends back only the hashes that moved. It runs once per *unit*, each
  atomic: one block (32 days) of every scope, so the additive relations suppression
  relies on (all = Σ municipalities = Σ areas, families = Σ groups) hold within it,
  and Redis is never held for more than a few milliseconds.
- **Anchored on the present.** A day of the window is the present (every scope's
  counts at ``W``, read atomically with ``W``: :data:`PRESENT_LUA`) less the changes
  after it, so neither the block totals (which span every block since the first day)
  nor the blocks before the window are needed. Each refresh reads the present and the
  latest :data:`RECENT_BLOCKS` blocks, where nearly every change lands; if the present
  moved by more than those blocks explain (the values they imply just before the
  window moved), an older block changed and every block is read again; every
  :data:`FULL_EVERY` refreshes every block is read anyway (an older block can change
  without moving the present: a late event whose window opened and closed in it).
  Units read a moment apart can straddle a write; a read whose values go negative or
  whose municipalities do not add up to all is never published but read again. (A sink
  that recorded which blocks it changed would make the fingerprints unnecessary.)
- **A snapshot** (:class:`Snapshot`) holds the dense values ``[day, scope, field]`` of
  a window of the latest days (at least :data:`WINDOW_DAYS`, ending on ``W``, from the
  start of a block) and, per day, the suppressed picture packed in the same shape (or
  not yet computed). A refresh builds a new snapshot and carries over every
  day whose raw row (every scope, every field) is unchanged: a late event revises the
  days from its date on, and only the days whose content it changed are suppressed
  again, off the event loop, before the new snapshot is published. Readers always see
  one published snapshot, never a half-updated one.
- **Warm-up**: :meth:`HistoryCache.run` (started with the API) refreshes every
  ``refresh_s`` (less often where a refresh and its warm-up take more than
  :data:`REFRESH_SHARE` of the time: a catch-up) and suppresses every day of the window
  not yet done, newest first, a chunk at a time; a request needing days not done yet
  computes (or waits for) just those.
- **A rest after a costly refresh.** A request past the snapshot's ``W`` refreshes at
  once, unless the last refresh took :data:`HOLD_FROM_S` or more and less than three
  times that has passed (:meth:`HistoryCache.resting`): then an answer that names no
  day is of the day last published. In a catch-up ``W`` moves every second, and nearly
  every day of the window changes with it (a family seen for the first time changes
  every day since its first), so each refresh suppresses the whole window again:
  taken at every request they kept a core busy beside the worker.
- **Older days** (the history may start decades before ``W``: births, memberships) are
  read when asked for (each scope's block totals, in parts, and the blocks of those
  days, each block atomically; read again if the parts straddled a write), and
  suppressed unless the last :data:`PAST_DAYS_HELD` asked for hold the same raw content
  (a digest of the day's row).

**The fixed cadence** (docs/disclosure.md): with ``cadence`` (the API's setting), a
refresh takes a new snapshot only when ``W`` has moved on since the last one (or Redis was
reset), so what is published (the completed days, up to ``W − 1``: the day ``W`` is still
filling and never published) changes once per day of ``W``: a day's events, late events
and revisions are seen together, never one by one. ``published_at`` is the wall-clock
time the snapshot was taken. Days before the window are read when asked for, not held
back by the cadence: a late event that reaches more than three years back shows at once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import os
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from models.publication import published_last
from sinks import keys, redis_reader
from sinks.connection import text
from sinks.redis_sink import utc_now_iso
from tilannekuva.aio import check_cancelled
from tilannekuva.api.cube import FIELDS, Cube, Layout, cells, present_counts, publish_rows
from tilannekuva.api.series import iso

log = logging.getLogger(__name__)

REFRESH_S = 2.0  # the background refresh's period
# At most this share of the API's time in the background refresh and warm-up: in a
# catch-up W moves every few seconds and every refresh re-suppresses the days it moved,
# next to a worker that needs the cores (bench/README.md, session 29).
REFRESH_SHARE = 0.25
# A refresh that took less is never held back: a request asking past the snapshot
# refreshes at once. One that took more is followed by a rest in which requests answer
# the published snapshot, so that refreshes take at most REFRESH_SHARE of the time
# (:meth:`HistoryCache.resting`). Reading what moved takes well under a second, even on
# a loaded test machine; suppressing the whole window again takes seconds (a catch-up:
# 1,100 days at about 6 ms each, bench/README.md, session 42).
HOLD_FROM_S = 2.0
# The suppression thread's niceness. Its work is discretionary (the window's warm-up; in
# a catch-up the whole window again after each refresh): on a host it shares with a
# worker it should take what the worker leaves. At the default it took 0.8 of a core in
# bursts of 20-25 s, and the worker fell from about 1.0 of a core to 0.6-0.85 meanwhile
# (bench/README.md, session 43).
BACKGROUND_NICE = 10
CHUNK_DAYS = 16  # days suppressed per executor call (≈ 0.3 s at 80,000 families)
WINDOW_DAYS = 1100  # the latest days held dense and warm: three years by day and more
RECENT_BLOCKS = 4  # blocks fingerprinted on every refresh (≈ the last 100–128 days)
FULL_EVERY = 30  # every this many refreshes, every block of the window (≈ once a minute)
VERIFY_EVERY = 300  # … and the anchor checked against the block totals (≈ every 10 min)
PAST_DAYS_HELD = 2000  # suppressed older days kept (LRU), ≈ 11 KB each at 150 scopes
SETTLE_S = 10.0  # after a reset, the refilled history must stand still this long (5 refreshes)
SETTLE_MAX_S = 120.0  # … or, where W keeps moving (a catch-up), be this long past the reset

# Read-only. KEYS: history hashes; ARGV[i]: the digest the caller holds for KEYS[i]
# ('' for none). Per key: '' when its digest is unchanged, else
# "<digest>\n<field>,<value>,<field>,<value>…" (digest '' for a missing key). DUMP is
# the hash's serialized content, so an unchanged hash costs Redis a copy and a SHA-1
# and the caller nothing; a hash whose encoding moved without its content is sent again
# (harmless: its parsed content compares equal).
# Read-only. KEYS: the watermark, then counts hashes. The watermark and each hash packed
# "<field>,<value>,…", in one atomic call: the present that anchors the history.
PRESENT_LUA = """
local out = {redis.call('GET', KEYS[1]) or ''}
for i = 2, #KEYS do
  out[i] = table.concat(redis.call('HGETALL', KEYS[i]), ',')
end
return out
"""
READ_LUA = """
local out = {}
for i, key in ipairs(KEYS) do
  out[i] = '\\n' .. table.concat(redis.call('HGETALL', key), ',')
end
return out
"""
DELTA_LUA = """
local out = {}
for i, key in ipairs(KEYS) do
  local dump = redis.call('DUMP', key)
  local digest = ''
  if dump then digest = redis.sha1hex(dump) end
  if digest == ARGV[i] then
    out[i] = ''
  else
    out[i] = digest .. '\\n' .. table.concat(redis.call('HGETALL', key), ',')
  end
end
return out
"""


def _day(iso: str) -> int:
    return dt.date.fromisoformat(iso).toordinal()


_AGAIN = object()  # a refresh to run again, reading every block


def window_start(first: int, last: int, days: int = WINDOW_DAYS) -> int:
    """The first day held dense: at least ``days`` days ending on ``last``, from the
    start of a block, never before ``first``.

    >>> window_start(0, 5000) % keys.HIST_BLOCK, 5000 - window_start(0, 5000) + 1 >= WINDOW_DAYS
    (0, True)
    >>> window_start(4500, 5000)
    4500
    """
    return max(first, (last - days + 1) // keys.HIST_BLOCK * keys.HIST_BLOCK)


def _quiet(fut: asyncio.Future) -> None:
    """Retrieve a shielded future's outcome, so a caller that went away leaves no
    'exception was never retrieved' behind (the computing task logs its own)."""
    if not fut.cancelled():
        fut.exception()


@dataclass
class Snapshot:
    """The history of every scope on days ``first`` (the window's start) … ``last``
    (= W), raw and suppressed."""

    layout: Layout
    first: int
    last: int
    values: np.ndarray  # int64 [day, scope, field]: the raw counts
    shown: np.ndarray  # int32 [day, scope, field]: suppressed (cube.HIDDEN = null)
    groups: np.ndarray  # bool [day]: the day's picture shows service-need groups
    ready: np.ndarray  # bool [day]: shown and groups are computed
    inflight: dict[int, asyncio.Future] = field(default_factory=dict)
    published_at: str | None = None  # wall clock (ISO) when this snapshot was taken

    @classmethod
    def of(cls, layout: Layout, first: int, last: int, values: np.ndarray) -> Snapshot:
        n = len(values)
        return cls(
            layout,
            first,
            last,
            values,
            np.zeros((*values.shape[:2], len(FIELDS)), dtype=np.int32),
            np.zeros(n, dtype=bool),
            np.zeros(n, dtype=bool),
        )

    def covers(self, lo: int, hi: int) -> bool:
        return self.first <= lo and hi <= self.last

    def rows(self, days: Iterable[int]) -> list[int]:
        return [d - self.first for d in days]

    def carry(self, old: Snapshot | None) -> list[int]:
        """Take over ``old``'s suppressed days whose raw row is unchanged; return the
        rows to suppress before this snapshot replaces ``old``: the days ``old`` had
        ready whose content changed, and the days after ``old``'s W."""
        if old is None or old.layout != self.layout:
            return []
        lo, hi = max(self.first, old.first), min(self.last, old.last)
        must: list[int] = []
        if lo <= hi:
            a = slice(lo - self.first, hi - self.first + 1)
            b = slice(lo - old.first, hi - old.first + 1)
            same = (self.values[a] == old.values[b]).all(axis=(1, 2))
            keep = old.ready[b] & same
            self.shown[a][keep] = old.shown[b][keep]
            self.groups[a][keep] = old.groups[b][keep]
            self.ready[a] = keep
            must = (np.flatnonzero(old.ready[b] & ~same) + a.start).tolist()
        if self.last > old.last:
            must += range(max(old.last + 1, self.first) - self.first, len(self.values))
        return must


class HistoryCache:
    """The suppressed history of every day, for the API and the export.

    ``redis`` is a ``redis.asyncio.Redis``. Suppression runs on ``executor`` (by default
    one thread of its own, so a warm-up never occupies more than one core)."""

    def __init__(
        self,
        redis,
        min_cell: int,
        *,
        executor: Executor | None = None,
        chunk_days: int = CHUNK_DAYS,
        window_days: int = WINDOW_DAYS,
        full_every: int = FULL_EVERY,
        on_suppressed: Callable[[int], None] | None = None,
        cadence: bool = True,
        now: Callable[[], str] | None = None,
        settle_s: float = SETTLE_S,
        clock: Callable[[], float] = time.monotonic,
        share: float | None = REFRESH_SHARE,
    ) -> None:
        self.redis = redis
        self.share = share  # None: no bound (every refresh at once, however costly)
        self.min_cell = min_cell
        self._own_executor = executor is None
        self.executor = executor or ThreadPoolExecutor(
            1, thread_name_prefix="tk-history", initializer=background_priority
        )
        self.chunk_days = chunk_days
        self.window_days = window_days
        self.on_suppressed = on_suppressed
        self.cadence = cadence
        self.now = now or utc_now_iso
        self.snapshot: Snapshot | None = None
        self.cube: Cube | None = None
        self.refreshed_at: float | None = None  # monotonic time of the last refresh
        self.refresh_s = 0.0  # … and how long it took
        self.generation = 0  # refreshes completed
        self.suppressed_days = 0  # days suppressed since start
        self.fetched_hashes = 0  # history hashes fetched since start
        self.full_every = full_every
        self._past: OrderedDict[int, tuple[bytes, np.ndarray, bool]] = OrderedDict()
        self._lock = asyncio.Lock()
        self._script = None
        self._read_script = None
        self._present_script = None
        self._ticks = 0
        self._full_next = False
        self._base: np.ndarray | None = None  # the values just before the window
        self._origin = 0  # … whose first block is this
        self._trust_present = True  # the last check found present = history on W
        # After a reset (the span gone, e.g. FLUSHALL): the refill, a worker writing its
        # families back, is not published until it has stood still for settle_s.
        self.settle_s = settle_s
        self.clock = clock
        self._resetting = False
        # the refill as last read, since when it reads so, and when it was first read
        self._settling: tuple[Snapshot, float, float] | None = None

    # ------------------------------------------------------------------ reading

    async def _read(
        self, cube: Cube, units: list[list[str]], *, fresh: bool = False, present: bool = False
    ):
        """Run the delta script once per unit (each atomic; one round trip for all) and
        apply what moved to ``cube``; ``fresh``: read everything, no fingerprints. With
        ``present``, first the present unit too: returns ``((W, anchor), changed)``."""
        units = [u for u in units if u]
        if self._script is None:
            self._script = self.redis.register_script(DELTA_LUA)
            self._read_script = self.redis.register_script(READ_LUA)
            self._present_script = self.redis.register_script(PRESENT_LUA)
        script = self._read_script if fresh else self._script
        pipe = self.redis.pipeline(transaction=False)
        if present:
            await self._present_script(keys=cube.present_unit(), args=[], client=pipe)
        for unit in units:
            args = [] if fresh else [cube.digests.get(k, "") for k in unit]
            await script(keys=unit, args=args, client=pipe)
        replies = await pipe.execute() if (units or present) else []
        head = None
        if present:
            wm, *counts = replies.pop(0)
            head = (text(wm), present_counts(cube.layout, counts))
        pairs = [
            (k, r)
            for unit, rs in zip(units, replies, strict=True)
            for k, r in zip(unit, rs, strict=True)
        ]
        self.fetched_hashes += sum(1 for _, r in pairs if r)
        # Parsing is string work and numpy: off the event loop.
        loop = asyncio.get_running_loop()
        changed = await loop.run_in_executor(None, cube.apply, pairs) if pairs else False
        return (head, changed) if present else changed

    def _settled(self, new: Snapshot) -> bool:
        """Whether the history read after a reset has stood still for ``settle_s``: a
        worker writes its families back partition by partition, and the cadence would
        otherwise hold a part of them until ``W`` moves on."""
        now = self.clock()
        if self._settling is None:
            self._settling = (new, now, now)
            return False
        held, since, began = self._settling
        if (
            held.layout != new.layout
            or (held.first, held.last) != (new.first, new.last)
            or not np.array_equal(held.values, new.values)
        ):
            self._settling, since = (new, now, began), now
        if now - since < self.settle_s and now - began < SETTLE_MAX_S:
            return False
        self._resetting, self._settling = False, None
        return True

    async def refresh(self, *, since_generation: int | None = None) -> Snapshot | None:
        """Read what moved and publish a new snapshot (one at a time; a caller that
        waited while another refresh completed after ``since_generation`` takes that)."""
        async with self._lock:
            if since_generation is not None and self.generation > since_generation:
                return self.snapshot
            started = self.clock()
            snap = await self._refresh()
            self.generation += 1
            self.refreshed_at = self.clock()
            self.refresh_s = self.refreshed_at - started
            log.debug("history refresh in %.3f s", self.refresh_s)
            return snap

    def resting(self) -> bool:
        """Whether requests take the published snapshot as it is, ``W`` moved or not: the
        last refresh took :data:`HOLD_FROM_S` or more and was less than ``share`` of the
        time since it began. In a catch-up ``W`` moves every second and each refresh
        suppresses the whole window again (a new family's history changes every day
        since its first); taken at every request, they kept a core busy beside the
        worker (bench/README.md, session 42)."""
        if self.share is None or self.snapshot is None or self.refreshed_at is None:
            return False
        if self.refresh_s < HOLD_FROM_S:
            return False
        return self.clock() - self.refreshed_at < rest_after(self.refresh_s, 0.0, self.share)

    def published(self, first: int | None, newest: int | None) -> int | None:
        """The day an answer that names none is of: ``newest`` (the last completed day,
        W − 1), or while :meth:`resting`, the one the snapshot published if earlier."""
        if newest is None or not self.resting() or self.snapshot is None:
            return newest
        held = published_last(first, self.snapshot.last)
        return newest if held is None else min(held, newest)

    async def _refresh(self) -> Snapshot | None:
        if self.cadence and self.snapshot is not None:
            # The fixed cadence (docs/disclosure.md): what is published changes only when
            # W moves on, so late events, revisions and a day's changes are seen together,
            # never one by one. A reset Redis (no span) is noticed all the same.
            first_s, last_s = await redis_reader.read_span_async(self.redis)
            if first_s is not None and last_s is not None and _day(last_s) == self.snapshot.last:
                return self.snapshot
        for attempt in range(3):
            got = await self._refresh_once(full=attempt > 0, totals=attempt == 2)
            if got is not _AGAIN:
                return got
        log.warning("history refresh: Redis kept changing under the read; keeping the last")
        return self.snapshot

    async def _refresh_once(self, *, full: bool, totals: bool = False):
        first_s, last_s = await redis_reader.read_span_async(self.redis)
        if first_s is None or last_s is None:
            self._resetting = self._resetting or self.snapshot is not None
            self.snapshot, self.cube, self._base = None, None, None  # no data (or flushed)
            self._settling = None
            self._past.clear()
            return None
        last = _day(last_s)
        first = window_start(_day(first_s), last, self.window_days)
        layout = Layout.of(await redis_reader.known_areas_async(self.redis))
        cube = self.cube if self.cube is not None and self.cube.layout == layout else Cube(layout)
        b0, b1 = first // keys.HIST_BLOCK, last // keys.HIST_BLOCK
        cube.forget_before(b0)
        self._ticks += 1
        full = (
            full
            or self._full_next
            or self._ticks % self.full_every == 0
            or self._base is None
            or self._origin != b0
            or cube is not self.cube
        )
        # The anchor is checked against the block totals (large: every block since the
        # first day, so read in parts) at the start, now and then, and while they differ.
        verify = totals or not self._trust_present or self._base is None
        verify = verify or self._ticks % VERIFY_EVERY == 0
        # Each tick: the present (the anchor) and the latest blocks, where nearly every
        # change lands; every full_every ticks, every block of the window.
        blocks = [
            b for b in range(b0, b1 + 1) if full or b > b1 - RECENT_BLOCKS or not cube.has_block(b)
        ]
        units = [cube.block_unit(b) for b in blocks]
        if verify:
            unit = cube.totals_unit()
            units += [unit[i : i + 16] for i in range(0, len(unit), 16)]
        present, changed = await self._read(cube, units, present=True)
        if present[0] != last_s:
            return _AGAIN  # W moved between the two reads
        loop = asyncio.get_running_loop()
        values, base = await loop.run_in_executor(None, cube.values, first, last, present[1])
        self.cube = cube
        if verify:
            by_totals = await loop.run_in_executor(None, cube.values, first, last, None)
            agree = np.array_equal(base, by_totals[1])
            if not agree:
                # Written in one transaction, the present and the history agree on W;
                # if a writer ever broke that, the history's own totals are the truth.
                log.warning("history: the present and the history differ on W; using the totals")
                values, base = by_totals
            self._trust_present = agree
        elif not full and not np.array_equal(base, self._base):
            # The present moved by more than the blocks read again explain: an older
            # block changed. Read them all (its change shows on every later day).
            return _AGAIN
        if (values < 0).any() or (values[:, 0] != values[:, 1:7].sum(axis=1)).any():
            # Units read a moment apart straddled a write: never publish that.
            self._full_next = True
            return _AGAIN
        self._base, self._origin, self._full_next = base, b0, False
        old = self.snapshot
        if (
            old is not None
            and not changed
            and old.layout == layout
            and (old.first, old.last) == (first, last)
            and np.array_equal(old.values[-1], values[-1])
        ):
            return old
        new = Snapshot.of(layout, first, last, values)
        if self._resetting and self.cadence and not self._settled(new):
            return None  # requests answer 503 (rebuilding) meanwhile, never a part
        new.published_at = self.now()
        must = new.carry(old)
        if must:
            await self.ensure(new, must)
        self.snapshot = new
        return new

    async def covering(self, last: int) -> Snapshot | None:
        """The snapshot, refreshed first if it ends before day ``last``."""
        snap = self.snapshot
        if snap is None or snap.last < last:
            snap = await self.refresh(since_generation=self.generation)
            if snap is None or snap.last < last:
                snap = await self.refresh()
        return snap if snap is not None and snap.last >= last else None

    async def pictures(self, days: list[int]) -> tuple[Layout, np.ndarray, np.ndarray] | None:
        """The suppressed whole pictures of ``days`` (ascending, in the history):
        ``(layout, shown int32 [day, scope, field], groups bool [day])``; None when the
        history no longer holds them (Redis was reset meanwhile)."""
        if not days:
            return None
        snap = await self.covering(days[-1])
        if snap is None:
            return None
        n_old = sum(1 for d in days if d < snap.first)
        shown = np.empty((len(days), len(snap.layout.scopes), len(FIELDS)), np.int32)
        groups = np.zeros(len(days), dtype=bool)
        rows = snap.rows(days[n_old:])
        await self.ensure(snap, rows)
        shown[n_old:] = snap.shown[rows]
        groups[n_old:] = snap.groups[rows]
        if n_old:
            shown[:n_old], groups[:n_old] = await self.past(days[:n_old], snap.layout)
        return snap.layout, shown, groups

    async def past(self, days: list[int], layout: Layout) -> tuple[np.ndarray, np.ndarray]:
        """Days before the window, read and suppressed now unless held with the same
        raw content."""
        cube = Cube(layout)
        blocks = sorted({d // keys.HIST_BLOCK for d in days})
        totals = cube.totals_unit()  # large (every block since the first day): in parts
        parts = [totals[i : i + 16] for i in range(0, len(totals), 16)]
        for attempt in range(3):
            await self._read(cube, parts + [cube.block_unit(b) for b in blocks], fresh=True)
            loop = asyncio.get_running_loop()
            values = await loop.run_in_executor(None, cube.values_on, days)
            ok = not (values < 0).any() and (values[:, 0] == values[:, 1:7].sum(axis=1)).all()
            if ok or attempt == 2:
                break  # (a read that straddled a write is read again)
        shown = np.empty((*values.shape[:2], len(FIELDS)), dtype=np.int32)
        groups = np.zeros(len(days), dtype=bool)
        tag = repr(layout.areas).encode()
        todo, digests = [], []
        for i, d in enumerate(days):
            digest = hashlib.blake2b(values[i].tobytes() + tag, digest_size=16).digest()
            digests.append(digest)
            held = self._past.get(d)
            if held is not None and held[0] == digest:
                self._past.move_to_end(d)
                shown[i], groups[i] = held[1], held[2]
            else:
                todo.append(i)
        for j in range(0, len(todo), self.chunk_days):
            idx = np.array(todo[j : j + self.chunk_days], dtype=np.intp)
            got, grp = await loop.run_in_executor(
                self.executor, publish_rows, values[idx], layout, self.min_cell
            )
            shown[idx], groups[idx] = got, grp
            self._count(len(idx))
            for k, i in enumerate(idx.tolist()):
                self._past[days[i]] = (digests[i], got[k], bool(grp[k]))
                self._past.move_to_end(days[i])
            while len(self._past) > PAST_DAYS_HELD:
                self._past.popitem(last=False)
        return shown, groups

    # ------------------------------------------------------------------ suppression

    def _count(self, n: int) -> None:
        self.suppressed_days += n
        if self.on_suppressed is not None:
            self.on_suppressed(n)

    async def ensure(self, snap: Snapshot, rows: Iterable[int]) -> None:
        """Suppress the given rows of ``snap`` that are not done yet (newest first, in
        chunks on the executor); rows another caller is computing are waited for."""
        waits: set[asyncio.Future] = set()
        todo = []
        for r in sorted(set(rows), reverse=True):
            if snap.ready[r]:
                continue
            running = snap.inflight.get(r)
            if running is not None:
                waits.add(running)
            else:
                todo.append(r)
        for i in range(0, len(todo), self.chunk_days):
            chunk = todo[i : i + self.chunk_days]
            task = asyncio.ensure_future(self._compute(snap, chunk))
            for r in chunk:
                snap.inflight[r] = task
            waits.add(task)
        if waits:
            # Shielded: a request that goes away does not waste what is being computed.
            waiter = asyncio.gather(*waits)
            waiter.add_done_callback(_quiet)
            await asyncio.shield(waiter)

    async def _compute(self, snap: Snapshot, rows: list[int]) -> None:
        try:
            idx = np.array(rows, dtype=np.intp)
            shown, groups = await asyncio.get_running_loop().run_in_executor(
                self.executor, publish_rows, snap.values[idx], snap.layout, self.min_cell
            )
            snap.shown[idx] = shown
            snap.groups[idx] = groups
            snap.ready[idx] = True
            self._count(len(rows))
        finally:
            for r in rows:
                snap.inflight.pop(r, None)

    async def warm(self) -> None:
        """Suppress every day of the current snapshot not done yet, newest first, one
        chunk at a time (so a request's own days are never queued behind the rest)."""
        while True:
            snap = self.snapshot
            if snap is None:
                return
            todo = [r for r in np.flatnonzero(~snap.ready)[::-1].tolist() if r not in snap.inflight]
            if not todo:
                return
            await self.ensure(snap, todo[: self.chunk_days])

    async def run(
        self,
        refresh_s: float = REFRESH_S,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """Forever: refresh (unless :meth:`resting`), warm up, rest (:func:`rest_after`,
        at most ``share`` of the time in the first two). Errors are logged, not fatal. A
        request whose days are not held refreshes for itself meanwhile."""
        while True:
            began = self.clock()
            try:
                if not self.resting():
                    await self.refresh()
                await self.warm()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("history refresh failed; retrying in %.1f s", refresh_s)
            check_cancelled()
            await sleep(rest_after(self.clock() - began, refresh_s, self.share))

    def close(self) -> None:
        if self._own_executor:
            self.executor.shutdown(wait=False, cancel_futures=True)


def background_priority(niceness: int = BACKGROUND_NICE) -> None:
    """Lower the calling thread's CPU priority to ``niceness`` (never raise it): on Linux
    a thread's nice value is its own; elsewhere it would be the process's, so there
    nothing is changed."""
    if not sys.platform.startswith("linux"):
        return
    tid = threading.get_native_id()
    if os.getpriority(os.PRIO_PROCESS, tid) < niceness:
        os.setpriority(os.PRIO_PROCESS, tid, niceness)


def rest_after(spent_s: float, refresh_s: float, share: float | None = REFRESH_SHARE) -> float:
    """Seconds to rest after a refresh and warm-up that took ``spent_s``: ``refresh_s``,
    or long enough that they take at most ``share`` of the time (None: no bound).

    >>> rest_after(0.02, 2.0)  # live: nothing moved, the refresh is cheap
    2.0
    >>> rest_after(1.5, 2.0)  # a catch-up: 1.5 s of work, 4.5 s of rest
    4.5
    >>> rest_after(1.5, 2.0, share=None)
    2.0
    """
    if share is None:
        return refresh_s
    return max(refresh_s, spent_s * (1.0 - share) / share)


def series(
    days: list[int], shown: np.ndarray, groups: np.ndarray, indicators: tuple[str, ...]
) -> list[dict]:
    """The points of one scope: ``shown`` its rows ``[day, field]`` on ``days``."""
    out = []
    for day, row, grp_on in zip(days, shown.tolist(), groups.tolist(), strict=True):
        ind, grp, sup = cells(row, grp_on, indicators)
        point = {"as_of": iso(day), "indicators": ind}
        if grp is not None:
            point["service_need_groups"] = grp
        point["suppressed"] = sup
        out.append(point)
    return out
