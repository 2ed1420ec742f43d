"""``GET /api/v1/impact``: what happens to families after a service starts, against
comparable families (issue 16, ``docs/impact.md``).

The answer is computed from the cohort counts the pipeline keeps in Redis
(:mod:`sinks.impact_store`), added up over every writer, with the estimator of
:mod:`models.impact`; what is published of it, and what is withheld, is
:func:`models.impact.published`'s. An answer costs seconds of CPU at 20,000 families
(the counts of seven services, a jackknife per estimate), so :class:`ImpactCache` makes
each once per version of the counts, in a worker thread, the event loop free meanwhile.
"""

from __future__ import annotations

import asyncio
import re
from collections import OrderedDict
from collections.abc import Mapping

import orjson

from models.impact import ANTICIPATION, SERVICES, Counts, published
from sinks import keys, redis_reader
from sinks.connection import text
from tilannekuva.api.schemas import MUNICIPALITY_CODE, POSTCODE
from tilannekuva.api.types import BadQuery

OUTCOME = (
    "the probability of moving to a lower (better) outcome group: the need score without "
    "the services themselves (docs/impact.md), over the last six months"
)


def parse_query(query: Mapping[str, str]) -> tuple[tuple[str, ...], str | None, str | None]:
    """``(services, municipality, area)`` of an impact request; formats only (whether
    the municipality is covered and the area known is the handler's: 404).

    >>> parse_query({})[1:], len(parse_query({})[0])
    ((None, None), 7)
    >>> parse_query({"service": "family_work", "municipality": "837", "area": "33100"})
    (('family_work',), '837', '33100')
    >>> parse_query({"service": "yoga"})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tilannekuva.api.types.BadQuery: service must be one of family_work, home_service, ...
    """
    service = query.get("service")
    if service is not None and service not in SERVICES:
        raise BadQuery(f"service must be one of {', '.join(SERVICES)}")
    municipality = query.get("municipality")
    if municipality is not None and not re.fullmatch(MUNICIPALITY_CODE, municipality):
        raise BadQuery("municipality code must be 3 digits")
    area = query.get("area")
    if area is not None and not re.fullmatch(POSTCODE, area):
        raise BadQuery("area must be a 5-digit postcode")
    return ((service,) if service else SERVICES), municipality, area


def body(
    month: str | None,
    counts: Mapping[str, Counts],
    municipality: str | None,
    min_cell: int,
    area: str | None = None,
) -> dict:
    """The answer (:class:`tilannekuva.api.schemas.ImpactList`) from each service's
    counts; ``municipality``: its entries only (None: all six); ``area``: the entries of
    that postcode area, each against its municipality stratum's comparison families."""
    only = None if municipality is None else [int(municipality)]
    where = None if area is None else int(area)
    # An area's answer has no naive before/after: it is the entries' own mean change, so
    # between two months it moves by the new entries only, and where an area gains one,
    # its direction tells that family's outcome (docs/impact.md, "Over time").
    naive = area is None
    return {
        "area": area,
        "municipality": municipality,
        "counted_to": month,
        "outcome": OUTCOME,
        "services": [
            {
                "service": s,
                **published(
                    c.cells(only, where), min_cell, naive=naive, anticipation=ANTICIPATION.get(s, 0)
                ),
            }
            for s, c in counts.items()
        ],
    }


Query = tuple[tuple[str, ...], str | None, str | None]  # services, municipality, area


class ImpactCache:
    """The answers (JSON bytes) of the last ``size`` queries, for the version of the
    counts they were made from (:data:`sinks.keys.IMPACT_VERSION`, read with the counts
    in one transaction). The counts change when a month closes or a worker counts its
    families again; a request meanwhile costs one Redis read of the token. A query not
    held reads the counts and makes the answer in a worker thread, one at a time (the
    second of two alike waits for the first's answer). Counts written before the token
    existed are not cached."""

    def __init__(self, redis, min_cell: int, size: int = 64):
        self.redis = redis
        self.min_cell = min_cell
        self.size = size
        self.lock = asyncio.Lock()
        self._version: str | None = None
        self._answers: OrderedDict[Query, bytes] = OrderedDict()

    async def get(self, query: Query) -> bytes:
        held = await self._held(query)
        if held is not None:
            return held
        async with self.lock:
            held = await self._held(query)
            if held is not None:
                return held
            services, municipality, area = query
            read = await redis_reader.fetch_impact_async(self.redis, services)
            answer = await asyncio.to_thread(self._answer, read, municipality, area)
            if read.version is not None:
                if read.version != self._version:
                    self._version = read.version
                    self._answers.clear()
                self._answers[query] = answer
                while len(self._answers) > self.size:
                    self._answers.popitem(last=False)
            return answer

    async def _held(self, query: Query) -> bytes | None:
        if query not in self._answers:
            return None
        version = await self.redis.get(keys.IMPACT_VERSION)
        if version is None or text(version) != self._version:
            return None
        self._answers.move_to_end(query)
        return self._answers[query]

    def _answer(self, read: redis_reader.ImpactRead, municipality, area) -> bytes:
        return orjson.dumps(body(read.month, read, municipality, self.min_cell, area))
