"""The days a history request asks for, and its parameters checked (pure).

Days are date ordinals (``datetime.date.toordinal``), as in the Redis history. The
history runs from the first day of data to ``W``; a request names a range in it and a
step, and gets one point per step ending on ``to`` (:func:`series_days`).

>>> d = dt.date.fromisoformat
>>> [dt.date.fromordinal(x).isoformat() for x in series_days(d("2026-01-20").toordinal(),
...     d("2026-03-31").toordinal(), "month")]
['2026-01-31', '2026-02-28', '2026-03-31']
>>> q = parse_history_query({"step": "week", "indicators": "children,families"},
...                         d("2025-01-01").toordinal(), d("2026-06-30").toordinal())
>>> dt.date.fromordinal(q.days[0]).isoformat(), len(q.days), q.indicators
('2025-07-01', 53, ('families', 'children'))
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass

from models.contract import INDICATORS

STEPS = ("day", "week", "month")
DEFAULT_SPAN_DAYS = 364  # from = to − 364 days: a year of days, both ends included
DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}$"
_DATE = re.compile(DATE_PATTERN)


class BadRequest(ValueError):
    """A parameter that cannot be answered; the message is the 400's reason."""


def parse_day(text: str, name: str) -> int:
    """``YYYY-MM-DD`` as a day number.

    >>> parse_day("2026-06-30", "as_of") == dt.date(2026, 6, 30).toordinal()
    True
    >>> parse_day("2026-02-30", "as_of")
    Traceback (most recent call last):
    ...
    tilannekuva.api.series.BadRequest: as_of must be a date YYYY-MM-DD, got '2026-02-30'
    """
    if _DATE.fullmatch(text or ""):
        try:
            return dt.date.fromisoformat(text).toordinal()
        except ValueError:
            pass
    raise BadRequest(f"{name} must be a date YYYY-MM-DD, got {text[:40]!r}")


def iso(day: int) -> str:
    return dt.date.fromordinal(day).isoformat()


def check_in_history(day: int, name: str, first: int | None, last: int | None) -> None:
    """A 400 unless ``first <= day <= last`` (the history: first day of data … W)."""
    if first is None or last is None:
        raise BadRequest(f"{name} is outside the history: there is no data yet")
    if not first <= day <= last:
        raise BadRequest(f"{name} {iso(day)} is outside the history, {iso(first)} … {iso(last)}")


def _month_back(to: dt.date, months: int) -> dt.date:
    y, m = divmod(to.year * 12 + to.month - 1 - months, 12)
    m += 1
    return dt.date(y, m, min(to.day, calendar.monthrange(y, m)[1]))


def series_days(start: int, end: int, step: str) -> list[int]:
    """The days of a series from ``start`` to ``end`` (inclusive), ascending and ending
    on ``end``: every day; every 7th day counting back from ``end``; or the same day of
    the month as ``end`` in each earlier month (clamped to the month's end).

    >>> [x - 700000 for x in series_days(700000, 700015, "week")]
    [1, 8, 15]
    >>> series_days(5, 4, "day")
    []
    """
    if step not in STEPS:
        raise BadRequest(f"step must be one of {', '.join(STEPS)}, got {step[:40]!r}")
    if end < start:
        return []
    if step == "day":
        return list(range(start, end + 1))
    if step == "week":
        return list(range(end - 7 * ((end - start) // 7), end + 1, 7))
    to = dt.date.fromordinal(end)
    out, k = [], 0
    while True:
        d = _month_back(to, k).toordinal()
        if d < start:
            break
        out.append(d)
        k += 1
    return out[::-1]


def parse_indicators(raw: str | None) -> tuple[str, ...]:
    """``a,b`` → the named indicators in the contract's order (all eight by default).

    >>> parse_indicators("children , families")
    ('families', 'children')
    >>> parse_indicators("families,kids")
    Traceback (most recent call last):
    ...
    tilannekuva.api.series.BadRequest: unknown indicator 'kids'; known: families, children, single_parent_families, families_social_assistance, families_unemployed_parent, families_child_welfare, child_welfare_notifications_30d, mental_health_visits_90d
    """
    if raw is None:
        return INDICATORS
    names = {n.strip() for n in raw.split(",")}
    for n in sorted(names):
        if n not in INDICATORS:
            raise BadRequest(f"unknown indicator {n[:40]!r}; known: {', '.join(INDICATORS)}")
    return tuple(n for n in INDICATORS if n in names)


@dataclass(frozen=True)
class HistoryQuery:
    days: list[int]  # ascending, ending on ``to``; empty only when there is no history
    indicators: tuple[str, ...]
    step: str


def parse_history_query(
    query: Mapping[str, str], first: int | None, last: int | None, present: int | None = None
) -> HistoryQuery:
    """``from``, ``to``, ``step``, ``indicators`` of a history request against the
    history ``first`` … ``last`` (None: no data yet). Defaults: ``to`` = ``present``
    (the day an answer naming none is of; ``last`` when not given), ``from`` = ``to`` −
    364 days clamped to ``first``, ``step`` = day, every indicator. No data yet and no
    date asked for: an empty series."""
    step = query.get("step", "day")
    if step not in STEPS:
        raise BadRequest(f"step must be one of {', '.join(STEPS)}, got {step[:40]!r}")
    indicators = parse_indicators(query.get("indicators"))
    raw_from, raw_to = query.get("from"), query.get("to")
    start = parse_day(raw_from, "from") if raw_from is not None else None
    end = parse_day(raw_to, "to") if raw_to is not None else None
    if first is None or last is None:
        if start is None and end is None:
            return HistoryQuery([], indicators, step)
    for day, name in ((start, "from"), (end, "to")):
        if day is not None:
            check_in_history(day, name, first, last)
    assert first is not None and last is not None
    if end is None:
        end = last
        if present is not None and present < last and (start is None or start <= present):
            end = present
    if start is None:
        start = max(first, end - DEFAULT_SPAN_DAYS)
    if start > end:
        raise BadRequest(f"from {iso(start)} is after to {iso(end)}")
    return HistoryQuery(series_days(start, end, step), indicators, step)
