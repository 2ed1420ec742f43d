"""The service cohorts' counts in Redis (issue 16, ``docs/impact.md``).

``tk:impact:<service>`` (a worker partition's: ``tk:impact:<service>:<partition>``) holds
one writer's :class:`models.impact.Counts` of a service as one string (:func:`pack`):
its strata and its counts over the horizons and :data:`models.impact.FIELDS` that are
not 0, zlib-compressed. ``tk:impact-month`` says which month they
are counted up to, ``tk:impact-version`` is a token made new with every write (a
reader's cache holds its answers while it stays). Counts of families, never a family: what the API's estimates are
computed from. A writer replaces its counts whole, in one transaction, so writing the
same counts twice changes nothing.

Until session 37 a writer kept a hash, a field per stratum with its counts as text
(:func:`decode` still reads it): at 20,000 families the API took about 20 s to read and
parse the 185,000 fields of all seven services, and Redis held 162 MB of them
(bench/README.md, session 37).
"""

from __future__ import annotations

import uuid
import zlib
from collections.abc import Iterable, Mapping

import numpy as np

from models.impact import FIELDS, HORIZONS, Counts
from sinks import keys
from sinks.connection import text

__all__ = ["AsyncImpactStore", "ImpactStore", "decode", "encode", "month_name", "pack", "unpack"]


def month_name(month: int) -> str:
    """``year × 12 + month − 1`` as ``YYYY-MM``.

    >>> month_name(24305)
    '2025-06'
    """
    return f"{month // 12:04d}-{month % 12 + 1:02d}"


_PACKED = b"tk-impact/2\n"


def pack(counts: Counts) -> bytes:
    """``counts`` as one string value (module doc): a head (rows, horizons, fields, the
    number of counts that are not 0, the horizons), the strata, then the counts that are
    not 0 (a tenth of them) as the gaps between their flat positions and their values;
    zlib-compressed.

    >>> c = Counts((1, 3), np.array([[24305, 837, 60, 33100, 7]]), np.arange(30).reshape(1, 2, 15))
    >>> back = unpack(pack(c))
    >>> back.horizons, back.strata.tolist(), back.values.tolist() == c.values.tolist()
    ((1, 3), [[24305, 837, 60, 33100, 7]], True)
    >>> unpack(pack(Counts.empty((1,)))).values.shape
    (0, 1, 15)
    """
    s, h, f = counts.values.shape
    flat = counts.values.reshape(-1)
    at = np.flatnonzero(flat)
    head = np.array([s, h, f, len(at), *counts.horizons], "<i8")
    gaps = np.diff(at, prepend=0)
    if len(gaps) and gaps.max() >= 1 << 32:
        raise ValueError("impact counts too large to pack")
    body = [head, counts.strata.astype("<i8"), gaps.astype("<u4"), flat[at].astype("<i8")]
    return _PACKED + zlib.compress(b"".join(a.tobytes() for a in body), 1)


def unpack(blob: bytes) -> Counts:
    """The :class:`Counts` of :func:`pack` (counts of fewer fields, as written before
    the key sums, get key sums 0)."""
    if not blob.startswith(_PACKED):
        raise ValueError("not packed impact counts")
    raw = zlib.decompress(blob[len(_PACKED) :])
    s, h, f, n = (int(x) for x in np.frombuffer(raw, "<i8", 4))
    head = 8 * (4 + h)
    horizons = tuple(int(x) for x in np.frombuffer(raw, "<i8", h, 32))
    strata = np.frombuffer(raw, "<i8", s * 5, head).reshape(s, 5).astype(np.int64)
    gaps = np.frombuffer(raw, "<u4", n, head + 40 * s)
    nonzero = np.frombuffer(raw, "<i8", n, head + 40 * s + 4 * n)
    at = np.cumsum(gaps, dtype=np.int64)
    values = np.zeros((s, h, len(FIELDS)), np.int64)
    if f == len(FIELDS):
        values.reshape(-1)[at] = nonzero
    else:  # packed with fewer fields
        row, field = np.divmod(at, f)
        values.reshape(-1, len(FIELDS))[row, field] = nonzero
    return Counts(horizons, strata, values)


def encode(counts: Counts) -> dict[str, str]:
    """The hash fields of ``counts`` (strata with a count only).

    >>> c = Counts((1,), np.array([[24305, 837, 60, 33100, 7]]), np.arange(15).reshape(1, 1, 15))
    >>> encode(c)
    {'24305|837|60|33100|7': '0,1,2,3,4,5,6,7,8,9,10,11,12,13,14'}
    >>> decode(encode(c).items(), (1,)).values.tolist() == c.values.tolist()
    True
    """
    flat = counts.values.reshape(len(counts.values), len(counts.horizons) * len(FIELDS))
    return {
        "|".join(map(str, stratum)): ",".join(map(str, row.tolist()))
        for stratum, row in zip(counts.strata.tolist(), flat, strict=True)
    }


def decode(fields: Iterable[tuple], horizons=HORIZONS) -> Counts:
    """:class:`Counts` from hash fields (bytes or str) as written before :func:`pack`
    (and by :func:`encode`), any number of hashes' worth: strata met twice add up."""
    strata, values = [], []
    shape = (len(tuple(horizons)), len(FIELDS))
    for field, value in fields:
        f, v = text(field), text(value)
        stratum = [int(x) for x in f.split("|")]
        strata.append(stratum + [0] * (5 - len(stratum)))
        row = np.array(v.split(","), dtype=np.int64).reshape(shape[0], -1)
        values.append(np.pad(row, ((0, 0), (0, shape[1] - row.shape[1]))))
    if not strata:
        return Counts.empty(horizons)
    out = Counts(tuple(horizons), np.array(strata, np.int64), np.stack(values))
    return out + Counts.empty(horizons)  # strata sorted, repeats added up


class ImpactStore:
    """Writes one writer's counts (``partition``: None for the in-process pipeline)."""

    def __init__(self, redis, partition: int | None = None):
        self.redis = redis
        self.partition = partition

    def write(self, month: int, counts: Mapping[str, Counts]) -> None:
        """Replaces the counts of every service in ``counts``, counted up to ``month``."""
        pipe = self.redis.pipeline(transaction=True)
        _replace(pipe, self.partition, month, counts)
        pipe.execute()


class AsyncImpactStore:
    """:class:`ImpactStore` of a worker's partitions, on an asyncio client."""

    def __init__(self, redis):
        self.redis = redis

    async def write(self, partition: int, month: int, counts: Mapping[str, Counts]) -> None:
        pipe = self.redis.pipeline(transaction=True)
        _replace(pipe, partition, month, counts)
        pipe.sadd(keys.IMPACT_PARTS, partition)
        await pipe.execute()

    async def written(self) -> set[int]:
        """The partitions whose counts Redis holds (none after a FLUSHALL, or a restart
        from a snapshot taken before they were written: those are written again)."""
        return {int(p) for p in await self.redis.smembers(keys.IMPACT_PARTS)}


def _replace(pipe, partition: int | None, month: int, counts: Mapping[str, Counts]) -> None:
    for service, c in counts.items():
        key = keys.impact(service, partition)
        if len(c.strata):
            pipe.set(key, pack(c))
        else:
            pipe.delete(key)
    pipe.set(keys.IMPACT_MONTH, month_name(month))
    # a fresh token, not a counter: a counter would start again after a FLUSHALL, and
    # a reader's cache could take new counts for those it holds
    pipe.set(keys.IMPACT_VERSION, uuid.uuid4().hex)
