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
>>> cohorts.counts("family_work").values.shape  # no cohort has the months it reads
(0, 19, 9)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from models.contract import COVERED_MUNICIPALITIES
from models.family import current
from models.impact import HORIZONS, Counts, PanelBuilder, cohort_counts, month_of, outcome_score
from models.impact import service_of as _service_of
from models.picture import Pipeline

__all__ = ["Cohorts", "counted"]


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

    def counts(self, service: str, horizons: Sequence[int] = HORIZONS) -> Counts:
        """The stratum counts of ``service``'s cohorts, municipalities by their codes."""
        if self.builder is None:
            return Counts.empty(horizons)
        panel, _, _ = self.builder.panel()
        counts = cohort_counts(panel, service, horizons, first=self.builder.first)
        code = {i: int(m) for m, i in self.builder.munis.items()}
        munis = np.array([code[int(i)] for i in counts.strata[:, 1]], dtype=np.int64)
        strata = counts.strata.copy()
        strata[:, 1] = munis.reshape(-1)
        return Counts(counts.horizons, strata, counts.values)


def counted(pipe: Pipeline, month: int) -> Iterator[tuple[str, str, str, float, list[str]]]:
    """Every counted family's ``(family, municipality, postcode, outcome score,
    members)`` at the end of ``month``."""
    on = dt.date((month + 1) // 12, (month + 1) % 12 + 1, 1).toordinal() - 1
    for fam, contrib in pipe.contributions.items():
        state = pipe.families[fam]
        score = outcome_score(state, pipe.persons, on)
        if score is None:
            continue
        yield fam, contrib["municipality"], contrib["area"], score, list(current(state))
