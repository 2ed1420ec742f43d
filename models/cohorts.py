"""The service cohorts of a stream in one process (issue 16, ``docs/impact.md``).

:class:`Cohorts` follows a :class:`models.picture.Pipeline` batch by batch: the service
starts among the events (:meth:`Cohorts.observe`, before the pipeline sees them), and,
when ``W`` leaves a month, every counted family's outcome group and municipality at its
end (:meth:`Cohorts.close`). Its :meth:`Cohorts.counts` are the stratum counts the
estimates need (:class:`models.impact.Counts`), by municipality code; nothing per
family leaves it. The demo writes them to Redis; ``tilannekuva evaluate-impact``
builds its panels with it.

Months are closed from the month of the first batch's earliest arrival (the registers
going live) on: a family's group at a month's end is what the stream knew then.

>>> import datetime as dt
>>> from models.picture import Pipeline
>>> def ev(i, kind, person, day, data):
...     e = {"event_id": f"e{i}", "type": kind, "person": person, "occurred_at": day,
...          "recorded_at": day + "T12:00:00Z", "source": "s", "data": data}
...     return {k: v for k, v in e.items() if v is not None}
>>> cohorts, pipe = Cohorts(), Pipeline(history=None)
>>> batch = [ev(1, "family.member_added", "p1", "2025-01-05",
...             {"family": "f1", "role": "parent", "birth_date": "1990-01-01"}),
...          ev(2, "family.member_added", "c1", "2025-01-05",
...             {"family": "f1", "role": "child", "birth_date": "2020-01-01"}),
...          ev(3, "family.residence_changed", None, "2025-01-05",
...             {"family": "f1", "municipality": "837", "postcode": "33100"}),
...          ev(4, "social_service.started", "p1", "2025-02-03",
...             {"service": "family_work", "episode": "x1"})]
>>> cohorts.observe(batch); pipe.process_many(batch)
>>> cohorts.close(pipe)  # W is in February: January is closed
(24300,)
>>> later = [ev(5, "health.visit", "c1", "2025-05-02", {"service": "primary_care"})]
>>> cohorts.observe(later); pipe.process_many(later)
>>> cohorts.close(pipe)
(24301, 24302, 24303)
>>> panel, families, entries = cohorts.panel()
>>> panel.groups.shape, families, entries
((1, 4), ['f1'], {('family_work', 'x1'): (0, 1)})
>>> cohorts.counts()["family_work"].values.shape  # no cohort has the months it reads
(0, 19, 15)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence

import numpy as np

from models import family
from models.contract import COVERED_MUNICIPALITIES
from models.family import current, members_on
from models.family_outcome import month_end, outcome_of
from models.impact import (
    HORIZONS,
    SERVICES,
    Counts,
    PanelBuilder,
    cohort_counts,
    month_of,
    outcome_score,
)
from models.impact import service_of as _service_of
from models.picture import Pipeline

__all__ = ["Cohorts", "builder_counts", "counted", "final_builder", "final_panel", "outcome_on"]


class Cohorts:
    """The panel of a stream in one process (module doc). ``first_month``: the month
    closed first (``year × 12 + month − 1``; default: that of the first batch's
    earliest arrival)."""

    def __init__(
        self,
        first_month: int | None = None,
        municipalities: Iterable[str] = COVERED_MUNICIPALITIES,
    ):
        self.municipalities = tuple(municipalities)
        self.builder: PanelBuilder | None = None
        self.closed: int | None = None  # the last month closed
        if first_month is not None:
            self._begin(first_month)

    def _begin(self, first: int) -> None:
        self.builder = PanelBuilder(first, self.municipalities)
        self.closed = first - 1

    def observe(self, events: Iterable[dict]) -> None:
        """The starts among a batch's (validated, pseudonymised) events."""
        events = list(events)
        if not events:
            return
        if self.builder is None:
            self._begin(month_of(min(e["recorded_at"][:10] for e in events)))
        assert self.builder is not None
        for e in events:
            if (service := _service_of(e)) is not None:
                self.builder.start(service, e["person"], e["data"]["episode"], e["occurred_at"])

    def close(self, pipe: Pipeline) -> tuple[int, ...]:
        """Closes every month ``pipe.watermark`` has left; returns them."""
        if self.closed is None:
            return ()
        closes = []
        while self.closed + 1 < month_of(pipe.watermark):
            self.close_month(self.closed + 1, pipe)
            closes.append(self.closed)
        return tuple(closes)

    def close_month(self, month: int, pipe: Pipeline) -> None:
        """Closes ``month`` (the next one) with ``pipe``'s families as they are."""
        assert self.builder is not None and self.closed is not None
        self.builder.month_end(month, counted(pipe, month))
        self.closed = month

    def panel(self):
        """:meth:`models.impact.PanelBuilder.panel` (an empty panel before any event)."""
        return (self.builder or PanelBuilder(0)).panel()

    def counts(
        self, services: Sequence[str] = SERVICES, horizons: Sequence[int] = HORIZONS
    ) -> dict[str, Counts]:
        """Each service's stratum counts, municipalities by their codes."""
        if self.builder is None:
            return {s: Counts.empty(horizons) for s in services}
        return builder_counts(self.builder, services, horizons)


def builder_counts(
    builder: PanelBuilder, services: Sequence[str] = SERVICES, horizons: Sequence[int] = HORIZONS
) -> dict[str, Counts]:
    """Each service's stratum counts of a panel builder's panel, municipalities by their
    codes (the panel numbers them)."""
    panel, _, _ = builder.panel()
    code = np.zeros(max(builder.munis.values(), default=0) + 1, dtype=np.int64)
    for m, i in builder.munis.items():
        code[i] = int(m)
    out = {}
    for service in services:
        c = cohort_counts(panel, service, horizons, first=builder.first)
        strata = c.strata.copy()
        strata[:, 1] = code[strata[:, 1]]
        out[service] = Counts(c.horizons, strata, c.values)
    return out


def counted(pipe: Pipeline, month: int) -> Iterator[tuple[str, str, str, float, list[str]]]:
    """Every counted family's ``(family, municipality, postcode, outcome score,
    members)`` at the end of ``month``."""
    on = month_end(month)
    for fam, contrib in pipe.contributions.items():
        state = pipe.families[fam]
        score = outcome_score(state, pipe.persons, on)
        if score is None:
            continue
        yield fam, contrib["municipality"], contrib["area"], score, list(current(state))


def outcome_on(state: dict, persons: Mapping[str, dict], on: int) -> float | None:
    """The outcome score (:data:`models.impact.OUTCOME_RULE`) of a family on day ``on``
    from the final data: its members on that day, their profiles over the six months up
    to it (``persons``: their person states), its residence up to it; None without
    members."""
    return outcome_of(state, on, persons.get)


def final_panel(
    pipe: Pipeline,
    starts: Iterable[dict],
    first: int,
    last: int,
    municipalities: Iterable[str] = COVERED_MUNICIPALITIES,
):
    """What :func:`final_builder` builds, as :meth:`models.impact.PanelBuilder.panel`."""
    return final_builder(pipe, starts, first, last, municipalities).panel()


def final_builder(
    pipe: Pipeline,
    starts: Iterable[dict],
    first: int,
    last: int,
    municipalities: Iterable[str] = COVERED_MUNICIPALITIES,
) -> PanelBuilder:
    """The panel of months ``first`` … ``last`` from the final data (``pipe`` after
    every event): a family's group at a month's end is that of its state *as of* that
    day, whatever arrived when, so that any arrival order gives the same panel (the
    history's semantics; the worker's design, docs/impact.md). ``starts``: the
    service-start events (validated, pseudonymised); a start counts for the family its
    person belongs to at the end of its month, once per episode (the first given)."""
    builder = PanelBuilder(first, list(municipalities))
    for e in starts:
        if (service := _service_of(e)) is not None:
            builder.start(service, e["person"], e["data"]["episode"], e["occurred_at"])
    for month in range(first, last + 1):
        on = month_end(month)
        rows = []
        for fam in sorted(pipe.families):
            state = pipe.families[fam]
            v = family.value(state, on)
            if v is None:
                continue
            score = outcome_on(state, pipe.persons, on)
            if score is not None:
                rows.append((fam, v[1], v[0], score, list(members_on(state, on))))
        builder.month_end(month, rows)
    return builder
