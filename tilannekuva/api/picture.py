"""The published picture, cached, and the answer bodies cut from it.

Every answer comes from the whole picture suppressed with
:func:`models.suppression.suppress` and its shown counts perturbed by their cell keys
(:func:`models.publication.publish_picture`, docs/disclosure.md); the result is cached
briefly and keyed on the content read from Redis, so a burst of requests costs one
suppression. The exact counts are answered only on the audit paths (:func:`exact_scope`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from dataclasses import dataclass

import numpy as np
from aiohttp import web

from models.contract import GROUPS, INDICATORS
from models.publication import publish_picture
from models.suppression import suppress
from sinks import redis_reader
from tilannekuva.api.cube import Layout, cells
from tilannekuva.api.series import iso
from tilannekuva.api.state import REDIS, SETTINGS, STATE, Cached

CACHE_TTL_S = 1.0


async def published_picture(app: web.Application, *, fresh: bool = False) -> dict:
    """The published picture with ``as_of`` and ``updated_at``; cached on content."""
    state = app[STATE]
    if not fresh and _recent(state.cache):
        return state.cache.picture
    async with state.lock:
        # Another request may have refreshed it while this one waited for the lock.
        if not fresh and _recent(state.cache):
            return state.cache.picture
        raw = await redis_reader.read_picture_async(app[REDIS])
        digest = hashlib.sha256(json.dumps(raw, sort_keys=True).encode()).hexdigest()
        if state.cache and state.cache.digest == digest:
            state.cache.at = time.monotonic()
            return state.cache.picture
        # Suppression is CPU-bound (a linear audit): off the event loop.
        loop = asyncio.get_running_loop()
        min_cell = app[SETTINGS].min_cell
        sup = await loop.run_in_executor(None, suppress, raw, min_cell)
        sup = publish_picture(sup, raw["keys"], min_cell)
        sup["as_of"] = raw["as_of"]
        sup["updated_at"] = raw["updated_at"]
        state.cache = Cached(at=time.monotonic(), digest=digest, picture=sup)
        state.metrics.suppressions.inc()
        return sup


def _recent(cached: Cached | None) -> bool:
    return cached is not None and time.monotonic() - cached.at < CACHE_TTL_S


def scope_body(scope: dict, area: str | None, municipality: str | None, as_of, updated_at) -> dict:
    """A :class:`~tilannekuva.api.schemas.Scope`, keys in the contract's order."""
    body = {
        "area": area,
        "municipality": municipality,
        "as_of": as_of,
        "indicators": scope["indicators"],
    }
    if "service_need_groups" in scope:
        body["service_need_groups"] = scope["service_need_groups"]
    body["suppressed"] = scope["suppressed"]
    body["updated_at"] = updated_at
    return body


def area_body(pic: dict, postcode: str) -> dict:
    a = pic["areas"][postcode]
    return scope_body(
        a, postcode, a["municipality"], pic["as_of"], pic["updated_at"].get(f"a:{postcode}")
    )


@dataclass(frozen=True)
class PastDay:
    """A past day's whole picture, suppressed: ``shown`` is ``int32 [scope, field]`` in
    the order of ``layout`` (:mod:`tilannekuva.api.cube`)."""

    day: int
    layout: Layout
    shown: np.ndarray
    groups: bool


def past_scope_body(past: PastDay, scope: str, area: str | None, municipality: str | None) -> dict:
    """A :class:`~tilannekuva.api.schemas.Scope` on a past day: ``updated_at`` null."""
    ind, grp, sup = cells(past.shown[past.layout.index[scope]].tolist(), past.groups)
    body = {"area": area, "municipality": municipality, "as_of": iso(past.day), "indicators": ind}
    if grp is not None:
        body["service_need_groups"] = grp
    body["suppressed"] = sup
    body["updated_at"] = None
    return body


def exact_scope(counts: dict, area: str | None, municipality: str | None, as_of, updated_at):
    """An audit answer: a :class:`~tilannekuva.api.schemas.Scope` of the exact,
    unsuppressed counts (``counts`` as :mod:`sinks.redis_reader` reads them)."""
    body = {
        "area": area,
        "municipality": municipality,
        "as_of": as_of,
        "indicators": {f: int(counts.get(f, 0)) for f in INDICATORS},
    }
    if any(g in counts for g in GROUPS):
        body["service_need_groups"] = {g[1:]: int(counts.get(g, 0)) for g in GROUPS}
    body["suppressed"] = []
    body["updated_at"] = updated_at
    return body
