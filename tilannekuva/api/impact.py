"""``GET /api/v1/impact``: what happens to families after a service starts, against
comparable families (issue 16, ``docs/impact.md``).

The answer is computed from the cohort counts the pipeline keeps in Redis
(:mod:`sinks.impact_store`), added up over every writer, with the estimator of
:mod:`models.impact`; what is published of it, and what is withheld, is
:func:`models.impact.published`'s. An answer costs seconds of CPU at 80,000 families
(the counts of seven services, a jackknife per estimate), so :class:`ImpactCache` makes
each once per version of the counts, in a worker thread, the event loop free meanwhile,
and makes the page's answers ahead once a version has stood still (:meth:`ImpactCache.run`).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import orjson

from models.contract import COVERED_MUNICIPALITIES
from models.impact import SERVICES, Counts, anticipation_of, published
from sinks import keys, redis_reader
from sinks.connection import UNREACHABLE, text
from tilannekuva.api.schemas import MUNICIPALITY_CODE, POSTCODE
from tilannekuva.api.types import BadQuery

log = logging.getLogger(__name__)

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
                    c.cells(only, where), min_cell, naive=naive, anticipation=anticipation_of(s)
                ),
            }
            for s, c in counts.items()
        ],
    }


Query = tuple[tuple[str, ...], str | None, str | None]  # services, municipality, area

#: The queries the page asks (every service, for all six municipalities and for each):
#: made ahead once the counts stand still (:meth:`ImpactCache.run`).
PAGE_QUERIES: tuple[Query, ...] = tuple(
    (SERVICES, m, None) for m in (None, *sorted(COVERED_MUNICIPALITIES))
)
POLL_S = 2.0  # how often the warm-up looks at the counts' version
#: How long a version must stand before its answers are made ahead: a month's close
#: writes once, a worker recounts after its families changed (every few seconds while it
#: catches up, when it has applied everything live), and at 80,000 families the page's
#: seven answers cost about 8 s of CPU (bench/README.md, session 38).
SETTLE_S = 30.0


@dataclass
class Settled:
    """Whether a version of the counts has stood ``settle_s`` and its answers are not
    made yet (``made``: the version they were last made for): ``due(version, now)``
    with the clock passed in.

    >>> s = Settled(settle_s=30.0)
    >>> s.due("a", 0.0), s.due("a", 29.0), s.due("a", 30.0)
    (False, False, True)
    >>> s.made = "a"  # made: not due again
    >>> s.due("a", 99.0), s.due("b", 100.0), s.due("c", 131.0), s.due("c", 161.0)
    (False, False, False, True)
    >>> s.due(None, 999.0)  # no counts
    False
    """

    settle_s: float
    seen: str | None = None
    since: float = 0.0
    made: str | None = None

    def due(self, version: str | None, now: float) -> bool:
        if version != self.seen:
            self.seen, self.since = version, now
        return version is not None and version != self.made and now - self.since >= self.settle_s


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

    async def run(
        self,
        poll_s: float = POLL_S,
        settle_s: float = SETTLE_S,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """Forever: once a version of the counts has stood ``settle_s`` (:class:`Settled`),
        make the page's answers (:data:`PAGE_QUERIES`) ahead, so that the page's first
        request after a month's close is answered from the cache. Errors are logged,
        not fatal, Redis being unreachable once per outage; a version whose answers
        failed is made again."""
        settled, waiting = Settled(settle_s), False
        while True:
            try:
                raw = await self.redis.get(keys.IMPACT_VERSION)
                version = None if raw is None else text(raw)
                if settled.due(version, clock()):
                    for query in PAGE_QUERIES:
                        await self.get(query)
                    settled.made = version
                waiting = False
            except asyncio.CancelledError:
                raise
            except UNREACHABLE:
                if not waiting:
                    log.warning("impact answers ahead: Redis unreachable; waiting for it")
                waiting = True
            except Exception:
                log.exception("making the impact answers ahead failed; retrying")
            await sleep(poll_s)

    def held(self) -> list[Query]:
        """The queries whose answers are kept (for the current version or not)."""
        return list(self._answers)

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
