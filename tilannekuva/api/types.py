"""``GET /api/v1/types``: the most common family types of a scope, in words.

The aggregates count each family's type beside its service-need group (``t<type id>``,
present only: :func:`models.picture.contribution`). One read
(:func:`sinks.redis_reader.read_types_async`) gives every scope's type counts with the
picture of the same moment; :func:`models.suppression.suppress_types` suppresses them
as one table together with the picture's ``families`` and groups (primary: counts 1 …
``min_cell − 1``; secondary: nothing hidden can be recovered from ``families`` = Σ
types, a group = Σ its types, municipality = Σ areas, all = Σ municipalities, or from
the published picture); the words come from the snapshot
(:func:`models.type_descriptions.catalogue`). Hidden types are not listed: a scope's
answer lists its shown types by size and says how many are hidden and how many families
they hold together.

The suppressed table is cached like the picture (:mod:`tilannekuva.api.picture`), but
longer (:data:`CACHE_TTL_S`: the audit of a full table takes a second or two), and
computed again only when what was read changed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from models.publication import publish_types
from models.suppression import suppress_types
from models.type_descriptions import catalogue, type_groups
from sinks import redis_reader
from sinks.model_store import AsyncModelStore
from tilannekuva.api.schemas import MUNICIPALITY_CODE, POSTCODE

CACHE_TTL_S = 15.0  # types move slowly, and suppressing them takes a second or two
LIMIT_DEFAULT = 100
LIMIT_MAX = 100


@dataclass(frozen=True)
class TypesPicture:
    """Every scope's suppressed type counts (:func:`models.suppression.suppress_types`),
    or None while the types are not published (no model, not every counted family has
    a type of the model, or no safe suppression), and the model's words."""

    as_of: str | None
    model_version: str | None
    scopes: dict[str, dict] | None
    catalogue: dict[int, dict] = field(default_factory=dict)


def complete(read: Mapping[str, Any], type_ids: set[int]) -> bool:
    """Whether the type counts of every scope add up to its families and name only
    types of the model: every counted family has been written with a type of it (not so
    before the first snapshot, or while a re-base's fresh ids are being written).

    >>> pic = {"all": {"families": 3}, "municipalities": {}, "areas": {}}
    >>> complete({"picture": pic, "types": {"all": {1: 2, 2: 1}}}, {1, 2})
    True
    >>> complete({"picture": pic, "types": {"all": {1: 2}}}, {1, 2})  # one has none yet
    False
    >>> complete({"picture": pic, "types": {"all": {1: 2, 9: 1}}}, {1, 2})  # an old id
    False
    """
    pic = read["picture"]
    families = {"all": pic["all"]["families"]}
    families.update({f"m:{m}": c["families"] for m, c in pic["municipalities"].items()})
    families.update({f"a:{pc}": a["counts"]["families"] for pc, a in pic["areas"].items()})
    types = read["types"]
    return all(
        sum((types.get(s) or {}).values()) == n and set(types.get(s) or {}) <= type_ids
        for s, n in families.items()
    )


class BadQuery(ValueError):
    """A malformed query: 400 with the message."""


def parse_query(query: Mapping[str, str]) -> tuple[str | None, str | None, int]:
    """``(municipality, area, limit)`` of a types request; formats only (whether the
    municipality is covered and the area known is the handler's: 404).

    >>> parse_query({}), parse_query({"area": "33100", "limit": "10"})
    ((None, None, 100), (None, '33100', 10))
    >>> parse_query({"limit": "0"})
    Traceback (most recent call last):
    ...
    tilannekuva.api.types.BadQuery: limit must be an integer from 1 to 100
    """
    municipality, area, raw = query.get("municipality"), query.get("area"), query.get("limit")
    if municipality is not None and not re.fullmatch(MUNICIPALITY_CODE, municipality):
        raise BadQuery("municipality code must be 3 digits")
    if area is not None and not re.fullmatch(POSTCODE, area):
        raise BadQuery("postcode must be 5 digits")
    limit = LIMIT_DEFAULT
    if raw is not None:
        if not re.fullmatch(r"\d{1,3}", raw) or not 1 <= int(raw) <= LIMIT_MAX:
            raise BadQuery(f"limit must be an integer from 1 to {LIMIT_MAX}")
        limit = int(raw)
    return municipality, area, limit


def scope_body(
    tp: TypesPicture,
    scope: str,
    area: str | None,
    municipality: str | None,
    limit: int = LIMIT_DEFAULT,
) -> dict:
    """A :class:`~tilannekuva.api.schemas.TypeList`: the scope's shown types by size
    (then id), at most ``limit``, each with its group, strongest features and words.

    >>> tp = TypesPicture("2026-06-30", "0.3", {"all": {"families": 40, "types": {1: 30, 2: 6},
    ...     "hidden": 1, "hidden_families": 4}}, {t: {"group": t, "features": [],
    ...     "description": {"fi": "", "sv": "", "en": f"type {t}"}} for t in (1, 2, 3)})
    >>> body = scope_body(tp, "all", None, None, limit=1)
    >>> body["types"][0]["type"], body["types"][0]["share"], body["shown_types"], body["suppressed"]
    (1, 0.75, 2, {'types': 1, 'families': 4})
    >>> scope_body(TypesPicture(None, None, None), "all", None, None)["types"]
    []
    """
    body: dict = {
        "area": area,
        "municipality": municipality,
        "as_of": tp.as_of,
        "model_version": tp.model_version,
        "published": tp.scopes is not None,
    }
    cut = tp.scopes.get(scope) if tp.scopes is not None else None
    if cut is None:
        body |= {
            "families": None,
            "shown_types": 0,
            "types": [],
            "suppressed": {"types": 0, "families": None},
        }
        return body
    total = cut["families"]
    ranked = sorted(cut["types"].items(), key=lambda kv: (-kv[1], kv[0]))
    items = []
    for tid, n in ranked[:limit]:
        words = tp.catalogue.get(tid)
        if words is None:
            continue  # cannot happen once complete(): every id is the model's
        items.append(
            {
                "type": tid,
                "families": n,
                "share": round(n / total, 4) if total else None,
                "group": words["group"],
                "features": words["features"],
                "description": words["description"],
            }
        )
    body |= {
        "families": total,
        "shown_types": len(ranked),
        "types": items,
        "suppressed": {"types": cut["hidden"], "families": cut["hidden_families"]},
    }
    return body


class TypesCache:
    """The suppressed type counts of every scope, cached on what was read."""

    def __init__(self, redis, min_cell: int):
        self.redis = redis
        self.min_cell = min_cell
        self.lock = asyncio.Lock()  # one suppression at a time
        self._at = float("-inf")
        self._digest: str | None = None
        self._current: TypesPicture | None = None
        # version, snapshot, words per type, groups per type
        self._model: tuple[str, dict, dict[int, dict], dict[int, list[int]]] | None = None

    async def get(self) -> TypesPicture:
        if self._current is not None and time.monotonic() - self._at < CACHE_TTL_S:
            return self._current
        async with self.lock:
            if self._current is not None and time.monotonic() - self._at < CACHE_TTL_S:
                return self._current
            read = await redis_reader.read_types_async(self.redis)
            model = await self._load(read["model_version"])
            raw = {"picture": read["picture"], "types": read["types"]}
            digest = hashlib.sha256(
                json.dumps([raw, model[0] if model else None], sort_keys=True, default=str).encode()
            ).hexdigest()
            # The fixed cadence of the picture (docs/disclosure.md): new counts are
            # published when W moves on or a new model arrives, never event by event.
            held = self._current
            due = (
                held is None
                or held.scopes is None
                or held.as_of != read["as_of"]
                or held.model_version != (model[0] if model else None)
            )
            if due and digest != self._digest:
                self._current = await self._compute(read, model)
                self._digest = digest
            self._at = time.monotonic()
            return self._current

    async def _load(self, version: str | None):
        """The model of ``version`` (as read with the counts) and its words, kept while
        the version holds."""
        if version is None:
            return None
        if self._model is None or self._model[0] != version:
            loaded = await AsyncModelStore(self.redis).load()
            if loaded is None:
                return None
            got, snap = loaded
            self._model = (got, dict(snap), catalogue(snap), type_groups(snap))
        return self._model

    async def _compute(self, read: dict, model) -> TypesPicture:
        if model is None:
            return TypesPicture(read["as_of"], None, None)
        version, snap, words, groups = model
        if not complete(read, {int(t) for t in snap["type_ids"]}):
            return TypesPicture(read["as_of"], version, None, words)
        # Suppression is CPU-bound (a linear audit of a second or two at 80,000 families):
        # off the event loop. None: the types cannot be shown safely (published false).
        loop = asyncio.get_running_loop()
        scopes = await loop.run_in_executor(
            None, suppress_types, read["picture"], read["types"], self.min_cell, groups
        )
        # Published like the picture: every shown count perturbed by its cell key.
        keysums = {
            s: {**k, **read["type_keys"].get(s, {})} for s, k in read["picture"]["keys"].items()
        }
        scopes = publish_types(scopes, keysums, self.min_cell)
        return TypesPicture(read["as_of"], version, scopes, words)
