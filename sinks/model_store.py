"""The family-type model in Redis: the learner publishes, every worker loads (one format).

:data:`sinks.keys.MODEL` holds the latest snapshot (compact JSON) and
:data:`sinks.keys.MODEL_VERSION` its ``"<generation>.<version>"``; :meth:`publish`
writes both in one MULTI/EXEC. A reader polls the short version string and loads the
snapshot only when it changed, reading both keys in one MGET, so the version it gets
is always the snapshot's own.

Two flavours share the encoding, as in :mod:`sinks.redis_sink`: :class:`ModelStore`
(redis-py: the demo, ``tilannekuva rebase``, tests) and :class:`AsyncModelStore`
(redis.asyncio: the Faust worker). Clients with or without ``decode_responses`` work.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from models.types import FamilyTypesSnapshot
from sinks import keys
from sinks.connection import text

__all__ = ["AsyncModelStore", "ModelStore", "decode", "encode", "slowest_adoption", "version_of"]

#: A worker's adoption time counts this long: a worker that left stops holding up snapshots.
ADOPTION_MAX_AGE_S = 3600.0


def version_of(snap: Mapping[str, Any]) -> str:
    """The version string of a snapshot: ``"<generation>.<version>"``.

    >>> version_of({"generation": 2, "version": 17})
    '2.17'
    """
    return f"{snap['generation']}.{snap['version']}"


def encode(snap: Mapping[str, Any]) -> tuple[str, str]:
    """``(version, payload)`` as stored: the version string and compact JSON.

    >>> encode({"generation": 0, "version": 3, "type_ids": [1, 2]})
    ('0.3', '{"generation":0,"version":3,"type_ids":[1,2]}')
    """
    return version_of(snap), json.dumps(snap, separators=(",", ":"))


def decode(version, payload) -> tuple[str, FamilyTypesSnapshot] | None:
    """The stored pair back: ``(version, snapshot)``, None if either is missing.

    >>> decode(b"0.3", b'{"generation":0,"version":3}')
    ('0.3', {'generation': 0, 'version': 3})
    >>> decode(None, None), decode(b"0.3", None)
    (None, None)
    """
    if version is None or payload is None:
        return None
    return str(text(version)), json.loads(payload)


def slowest_adoption(entries: Mapping, now: float, max_age_s: float) -> tuple[float, list]:
    """The longest adoption in ``entries`` (``{worker: "<seconds> <epoch>"}``, as
    stored) recorded within ``max_age_s`` of ``now`` (0.0 if none), and the workers whose
    entries are older or unreadable.

    >>> slowest_adoption({b"a": b"12.5 1000", "b": "40.0 100", "c": "x"}, 1500.0, 600.0)
    (12.5, ['b', 'c'])
    """
    slowest, stale = 0.0, []
    for worker, value in entries.items():
        try:
            seconds, at = (float(x) for x in str(text(value)).split())
        except ValueError:
            seconds, at = 0.0, -math.inf
        if now - at > max_age_s:
            stale.append(str(text(worker)))
        else:
            slowest = max(slowest, seconds)
    return slowest, stale


class _Base:
    def __init__(self, redis):
        self.redis = redis

    def _publish(self, pipe, snap: Mapping[str, Any]) -> str:
        version, payload = encode(snap)
        pipe.set(keys.MODEL, payload)
        pipe.set(keys.MODEL_VERSION, version)
        return version


class ModelStore(_Base):
    """The model store over a ``redis.Redis`` client."""

    def publish(self, snap: Mapping[str, Any]) -> str:
        """Store ``snap`` as the latest model (both keys atomically); its version."""
        pipe = self.redis.pipeline(transaction=True)
        version = self._publish(pipe, snap)
        pipe.execute()
        return version

    def version(self) -> str | None:
        """The stored model's version, None before the first publish."""
        return text(self.redis.get(keys.MODEL_VERSION))

    def load(self) -> tuple[str, FamilyTypesSnapshot] | None:
        """``(version, snapshot)`` of the stored model, None before the first publish."""
        return decode(*self.redis.mget(keys.MODEL_VERSION, keys.MODEL))

    def load_if_newer(self, known: str | None) -> tuple[str, FamilyTypesSnapshot] | None:
        """:meth:`load`, but None (and no transfer of the model) while the stored
        version is ``known`` (or there is none)."""
        version = self.version()
        if version is None or version == known:
            return None
        loaded = self.load()
        return None if loaded is None or loaded[0] == known else loaded


class AsyncModelStore(_Base):
    """The same over ``redis.asyncio.Redis``, for the Faust worker."""

    async def publish(self, snap: Mapping[str, Any]) -> str:
        pipe = self.redis.pipeline(transaction=True)
        version = self._publish(pipe, snap)
        await pipe.execute()
        return version

    async def version(self) -> str | None:
        return text(await self.redis.get(keys.MODEL_VERSION))

    async def load(self) -> tuple[str, FamilyTypesSnapshot] | None:
        return decode(*(await self.redis.mget(keys.MODEL_VERSION, keys.MODEL)))

    async def load_if_newer(self, known: str | None) -> tuple[str, FamilyTypesSnapshot] | None:
        version = await self.version()
        if version is None or version == known:
            return None
        loaded = await self.load()
        return None if loaded is None or loaded[0] == known else loaded

    async def record_adoption(self, worker: str, seconds: float, at: float) -> None:
        """How long ``worker``'s re-assignment to a new snapshot took, at epoch ``at``."""
        await self.redis.hset(keys.MODEL_ADOPTIONS, worker, f"{seconds:.3f} {at:.0f}")

    async def adoption_seconds(self, now: float, max_age_s: float = ADOPTION_MAX_AGE_S) -> float:
        """The slowest worker's last adoption (:func:`slowest_adoption`); the entries of
        workers that have not adopted for ``max_age_s`` are removed."""
        slowest, stale = slowest_adoption(
            await self.redis.hgetall(keys.MODEL_ADOPTIONS), now, max_age_s
        )
        if stale:
            await self.redis.hdel(keys.MODEL_ADOPTIONS, *stale)
        return slowest
