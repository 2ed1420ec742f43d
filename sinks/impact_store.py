"""The service cohorts' counts in Redis (issue 16, ``docs/impact.md``).

``tk:impact:<service>`` (a worker partition's: ``tk:impact:<service>:<partition>``) is a
hash of the cohort strata (:class:`models.impact.Counts`): field
``"<cohort month>|<municipality>|<key>|<area>|<replicate group>"`` (a field of four, as
written before the groups, is group 0), value the stratum's counts over the horizons
and :data:`models.impact.FIELDS`, comma-separated (a value of the nine counts, as
written before the key sums, has key sums 0 until its writer writes it again). ``tk:impact-month`` says which month
they are counted up to. Counts of families, never a family: what the API's estimates
are computed from. A writer replaces its hashes whole, in one transaction, so writing
the same counts twice changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from models.impact import FIELDS, HORIZONS, Counts
from sinks import keys
from sinks.connection import text

__all__ = ["AsyncImpactStore", "ImpactStore", "decode", "encode", "month_name"]


def month_name(month: int) -> str:
    """``year × 12 + month − 1`` as ``YYYY-MM``.

    >>> month_name(24305)
    '2025-06'
    """
    return f"{month // 12:04d}-{month % 12 + 1:02d}"


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
    """:class:`Counts` from hash fields (bytes or str), any number of hashes' worth:
    strata met twice add up."""
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
        pipe.delete(key)
        fields = encode(c)
        if fields:
            pipe.hset(key, mapping=fields)
    pipe.set(keys.IMPACT_MONTH, month_name(month))
