"""The Redis sink: family contributions and histories in, aggregates out (layout in
docs/design.md).

``setup()`` loads the scripts, ``write(batch)`` queues one family contribution each,
``write_history(batch)`` one family's history from a day on, ``flush()`` sends the queue
as one transactional pipeline (MULTI/EXEC) and publishes the changed scopes of the
present on :data:`sinks.keys.CHANGES`. Effects are idempotent (see apply_contribution.lua
and apply_history.lua), so a batch may be written again after a crash.

The same transaction counts, per partition of the family topic its contributions came
from, the batches Redis has applied (:data:`sinks.keys.WRITTEN`) and tells the counts
to ``written`` (a :class:`Written`): a count that later reads lower means Redis lost
acknowledged writes (streams/restore.py).

Two flavours share the command building: :class:`RedisSink` (redis-py, the demo and
tests) and :class:`AsyncRedisSink` (redis.asyncio, the Faust worker).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Iterable
from importlib import resources

import orjson
from redis.exceptions import NoScriptError

from models.cellkey import record_key
from models.contract import INDICATORS, KEY_PREFIX
from sinks import keys, metrics
from sinks.connection import text


def _script(name: str) -> str:
    return resources.files("sinks").joinpath(name).read_text()


APPLY_LUA = _script("apply_contribution.lua")
HISTORY_LUA = _script("apply_history.lua")
RAISE_WM_LUA = _script("raise_watermark.lua")
COUNT_LUA = _script("count_written.lua")  # loaded last: see the script


def encode(contribution: dict | None) -> bytes:
    """Canonical JSON, so that an unchanged contribution is byte-identical in Redis: keys
    sorted, no spaces (for its ASCII strings and integers, the bytes of ``json.dumps(c,
    sort_keys=True, separators=(",", ":"))``, which wrote them before orjson did).

    >>> encode({"municipality": "837", "area": "33100", "counts": {"b": 1, "a": 0}, "due": None})
    b'{"area":"33100","counts":{"a":0,"b":1},"due":null,"municipality":"837"}'
    """
    return b"" if contribution is None else orjson.dumps(contribution, option=orjson.OPT_SORT_KEYS)


def encode_segments(segments: list[list]) -> bytes:
    """History segments ``[[start, value|None], ...]`` as apply_history.lua reads them:
    each value as canonical JSON ('' for None), so equal values are equal strings.

    >>> json.loads(encode_segments([[739000, ["33100", "837", 1, 2]], [739100, None]]))
    [[739000, '["33100","837",1,2]'], [739100, '']]
    """
    return orjson.dumps(
        [[start, "" if v is None else orjson.dumps(v).decode()] for start, v in segments]
    )


# Families per script call: one call sums its families' moves before they reach the
# hashes (sinks/apply_contribution.lua). The transaction around the calls runs alone
# anyway; the bound keeps each call's arguments and Lua tables small, and each call far
# short of lua-time-limit (5 s), past which Redis would answer others BUSY.
SCRIPT_FAMILIES = 250


def _chunks(items: list) -> list[list]:
    return [items[i : i + SCRIPT_FAMILIES] for i in range(0, len(items), SCRIPT_FAMILIES)]


def utc_now_iso() -> str:
    """The wall clock as ``tk:updated`` records it; injected, so tests pass their own."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Written:
    """What Redis answered of its count of applied batches, per family-topic partition.

    Every transaction adds one to its partitions' counts and is answered the new
    count, so without a loss no answer repeats. A repeated answer, or a count read lower
    than the highest answered, means Redis went back (streams/restore.py). Answers may
    arrive out of order (tasks flush on their own connections), so the recent ones are
    kept as a set, not compared in order.

    >>> w = Written()
    >>> w.answered({3: 7}); w.answered({3: 5, 1: 2}); w.counts, w.went_back([1, 3])
    ({3: 7, 1: 2}, set())
    >>> w.answered({3: 6}); w.answered({3: 7}); w.went_back([1]), w.went_back([1, 3])  # 7 again
    (set(), {3})
    """

    WINDOW = 4096  # answers kept per partition; an answer older than that counts as lost

    def __init__(self):
        self.counts: dict[int, int] = {}
        self._recent: dict[int, set[int]] = {}
        self._lost: set[int] = set()

    def answered(self, counts: dict[int, int]) -> None:
        """Counts Redis answered to this process's transactions."""
        for partition, n in counts.items():
            top, recent = self.counts.get(partition, 0), self._recent.setdefault(partition, set())
            if n in recent or n <= top - self.WINDOW:
                self._lost.add(partition)
            recent.add(n)
            if len(recent) > 2 * self.WINDOW:
                recent.difference_update([m for m in recent if m <= top - self.WINDOW])
            self.saw({partition: n})

    def saw(self, counts: dict[int, int]) -> None:
        """Counts read (or answered): the highest is kept."""
        for partition, n in counts.items():
            if n > self.counts.get(partition, 0):
                self.counts[partition] = n

    def went_back(self, partitions: Iterable[int]) -> set[int]:
        """Those of ``partitions`` whose answers repeated since :meth:`lost` was last
        told of them: the sign stays until their rewrite begins, whatever a restore tick
        that saw it and failed, or looked at other partitions, did."""
        return self._lost.intersection(partitions)

    def lost(self, partition: int, now: int) -> None:
        """Redis counts ``now`` after losing writes: compare with that from here on."""
        self.counts[partition] = now
        self._recent[partition] = set()
        self._lost.discard(partition)


class _Base:
    def __init__(self, redis, now: Callable[[], str] = utc_now_iso, written: Written | None = None):
        self.redis = redis
        self.now = now
        self.written = written
        self._queue: list[tuple[str, bytes, str]] = []
        self._history: list[tuple[str, int, bytes]] = []
        self._parts: set[int] = set()  # family-topic partitions of the queued contributions
        self._wm: str | None = None
        self._first: str | None = None
        self._live: str | None = None
        self.apply_sha: str | None = None
        self.history_sha: str | None = None
        self.wm_sha: str | None = None
        self.count_sha: str | None = None
        # W as the last transaction left it, known without a round trip of its own
        self.seen_watermark: str | None = None

    def write(self, batch) -> None:
        """Queue ``(family, contribution, partition)`` items."""
        for family, contrib, partition in batch:
            self._queue.append((family, encode(contrib), keys.due(partition)))
            if partition is not None:
                self._parts.add(partition)

    def write_history(self, batch) -> None:
        """Queue ``(family, since, segments)`` items (:func:`models.picture.history_segments`)."""
        for family, since, segments in batch:
            self._history.append((family, since, encode_segments(segments)))

    def raise_watermark(self, day: str) -> None:
        """Queue a watermark raise and a first-day lowering (the highest and the lowest
        day of a batch are sent)."""
        if self._wm is None or day > self._wm:
            self._wm = day
        if self._first is None or day < self._first:
            self._first = day

    def went_live(self, recorded_at: str) -> None:
        """Queue a lowering of the day the registers went live (the earliest
        ``recorded_at`` day): the shift detector's series start there."""
        day = recorded_at[:10]
        if self._live is None or day < self._live:
            self._live = day

    def _pending(self) -> bool:
        return bool(self._queue or self._history or self._wm is not None)

    def _take(self) -> tuple:
        """Everything queued, taken before any await, so whatever other tasks queue
        meanwhile waits for the next flush."""
        taken = (self._queue, self._history, self._wm, self._first, self._live, sorted(self._parts))
        self._queue, self._history, self._wm, self._first, self._live = [], [], None, None, None
        self._parts = set()
        return taken

    def _fill(self, pipe, taken: tuple) -> tuple[int, int]:
        """Put what :meth:`_take` took into ``pipe``; returns how many answers come before
        the contributions' and how many of theirs there are."""
        queue, history, wm, first, live, parts = taken
        skip, now = 0, self.now()
        if wm is not None:
            pipe.evalsha(
                self.wm_sha,
                3,
                keys.WATERMARK,
                keys.FIRST_DAY,
                keys.LIVE_FROM,
                wm,
                first,
                live or "",
            )
            skip = 1
        for chunk in _chunks(history):
            histories = [keys.family_history(family) for family, _, _ in chunk]
            per_family = [(since, payload, record_key(family)) for family, since, payload in chunk]
            pipe.evalsha(
                self.history_sha,
                len(chunk),
                *histories,
                keys.HIST,
                keys.HIST_BLOCK,
                KEY_PREFIX,
                len(INDICATORS),
                *INDICATORS,
                *(a for args in per_family for a in args),
            )
            skip += 1
        n = 0
        for chunk in _chunks(queue):
            family_keys = [(keys.family(family), dkey) for family, _, dkey in chunk]
            per_family = [(family, payload, record_key(family)) for family, payload, _ in chunk]
            pipe.evalsha(
                self.apply_sha,
                2 + 2 * len(chunk),
                keys.AREAS,
                keys.UPDATED,
                *(k for pair in family_keys for k in pair),
                now,
                keys.AGG,
                KEY_PREFIX,
                *(a for args in per_family for a in args),
            )
            n += 1
        if parts:
            pipe.evalsha(self.count_sha, 1, keys.WRITTEN, *parts)
        pipe.get(keys.WATERMARK)  # :attr:`seen_watermark`
        return skip, n

    def _finish(self, results, taken: tuple, skip: int, n: int) -> list[str]:
        changed = sorted({text(s) for r in results[skip : skip + n] for s in r})
        if self.written is not None:
            counts = results[skip + n] if taken[5] else []
            self.written.answered(dict(zip(taken[5], counts, strict=True)))
        self.seen_watermark = text(results[-1])
        metrics.REDIS_FAMILY_WRITES.inc(len(taken[0]))
        return changed


class RedisSink(_Base):
    """Synchronous sink over a ``redis.Redis`` client."""

    def setup(self) -> RedisSink:
        self.apply_sha = self.redis.script_load(APPLY_LUA)
        self.history_sha = self.redis.script_load(HISTORY_LUA)
        self.wm_sha = self.redis.script_load(RAISE_WM_LUA)
        self.count_sha = self.redis.script_load(COUNT_LUA)
        return self

    def flush(self) -> list[str]:
        """Send everything queued in one MULTI/EXEC; return the changed scopes."""
        if not self._pending():
            return []
        started = time.perf_counter()
        taken = self._take()
        while True:
            pipe = self.redis.pipeline(transaction=True)
            skip, n = self._fill(pipe, taken)
            try:
                results = pipe.execute()
                break
            except NoScriptError:  # a restarted Redis lost its scripts: load, send again
                self.setup()
        changed = self._finish(results, taken, skip, n)
        if changed:
            self.redis.publish(keys.CHANGES, json.dumps(changed))
        metrics.REDIS_WRITE_SECONDS.observe(time.perf_counter() - started)
        return changed

    def watermark(self) -> str | None:
        v = self.redis.get(keys.WATERMARK)
        return text(v)

    def due(self, partition: int | None, upto_day: int, limit: int = 10_000) -> list[str]:
        rows = self.redis.zrangebyscore(keys.due(partition), "-inf", upto_day, start=0, num=limit)
        return [text(r) for r in rows]


class AsyncRedisSink(_Base):
    """The same over ``redis.asyncio.Redis``, for the Faust worker."""

    async def setup(self) -> AsyncRedisSink:
        # All three at once after the last load: another task seeing ``apply_sha`` set
        # would flush with the others still None (a worker crashed so at start-up in a drill).
        scripts = (APPLY_LUA, HISTORY_LUA, RAISE_WM_LUA, COUNT_LUA)
        shas = [await self.redis.script_load(lua) for lua in scripts]
        self.apply_sha, self.history_sha, self.wm_sha, self.count_sha = shas
        return self

    async def flush(self) -> list[str]:
        return await self.send(self.take())

    def take(self) -> tuple | None:
        """Everything queued (None: nothing), for :meth:`send`; what is queued after this
        goes with the next transaction."""
        return self._take() if self._pending() else None

    async def send(self, taken: tuple | None) -> list[str]:
        """What :meth:`take` took, in one MULTI/EXEC; returns the changed scopes."""
        if taken is None:
            return []
        started = time.perf_counter()
        while True:
            pipe = self.redis.pipeline(transaction=True)
            skip, n = self._fill(pipe, taken)
            try:
                results = await pipe.execute()
                break
            except NoScriptError:  # a restarted Redis lost its scripts: load, send again
                # (every script is idempotent, so what ran of the failed one is harmless)
                await self.setup()
        changed = self._finish(results, taken, skip, n)
        if changed:
            await self.redis.publish(keys.CHANGES, json.dumps(changed))
        metrics.REDIS_WRITE_SECONDS.observe(time.perf_counter() - started)
        return changed

    async def watermark(self) -> str | None:
        v = await self.redis.get(keys.WATERMARK)
        return text(v)

    async def live(self) -> str | None:
        """The day the registers went live (``tk:live``), None before any event."""
        return text(await self.redis.get(keys.LIVE_FROM)) or None

    async def restoring(self, who: str, until: float) -> None:
        """``who`` writes what Redis lost again, until ``until`` (epoch seconds) at most:
        the history is incomplete meanwhile (:func:`sinks.redis_reader.restoring_async`)."""
        await self.redis.zadd(keys.RESTORING, {who: until})

    async def restored(self, who: str) -> None:
        await self.redis.zrem(keys.RESTORING, who)

    async def epoch(self, new: str) -> str:
        """The token of what this Redis holds (:data:`sinks.keys.EPOCH`), set to ``new``
        where there is none."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(keys.EPOCH, new, nx=True)
            pipe.get(keys.EPOCH)
            _, token = await pipe.execute()
        return text(token)

    async def whole_at(self, partitions: list[int]) -> dict[int, str | None]:
        """The token at which each of ``partitions`` was last known whole (None: never
        since Redis was emptied)."""
        if not partitions:
            return {}
        got = await self.redis.hmget(keys.WHOLE, partitions)
        return {p: text(t) for p, t in zip(partitions, got, strict=True)}

    async def whole(self, partitions: list[int], token: str) -> None:
        """Every family of ``partitions`` is written, as of ``token``."""
        if partitions:
            await self.redis.hset(keys.WHOLE, mapping=dict.fromkeys(partitions, token))

    async def rewriting(self, partitions: list[int]) -> list[int]:
        """Those of ``partitions`` whose rewrite after a loss began and was not done."""
        if not partitions:
            return []
        marked = await self.redis.smismember(keys.REWRITING, partitions)
        return [p for p, m in zip(partitions, marked, strict=True) if m]

    async def rewrite_begins(self, partitions: list[int]) -> None:
        if partitions:
            await self.redis.sadd(keys.REWRITING, *partitions)

    async def rewrite_done(self, partition: int) -> None:
        await self.redis.srem(keys.REWRITING, partition)

    async def written_counts(self, partitions: list[int]) -> dict[int, int]:
        """The applied batches Redis counts for ``partitions`` (0: none, or lost)."""
        if not partitions:
            return {}
        got = await self.redis.hmget(keys.WRITTEN, partitions)
        return {p: int(n or 0) for p, n in zip(partitions, got, strict=True)}

    async def contributions(self, families: list[str], chunk: int = 1000) -> dict[str, dict]:
        """The contributions Redis holds of ``families`` (those it counts), as written."""
        out: dict[str, dict] = {}
        for i in range(0, len(families), chunk):
            part = families[i : i + chunk]
            got = await self.redis.mget([keys.family(f) for f in part])
            out.update({f: json.loads(v) for f, v in zip(part, got, strict=True) if v})
        return out

    async def due(self, partition: int | None, upto_day: int, limit: int = 10_000) -> list[str]:
        rows = await self.redis.zrangebyscore(
            keys.due(partition), "-inf", upto_day, start=0, num=limit
        )
        return [text(r) for r in rows]
