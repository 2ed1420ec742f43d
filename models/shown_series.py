"""The published history of the watched series, one suppressed picture a day (pure).

A detector reads every watched series of every scope over days (a
:class:`models.detection.Table`). Its values must be what was *published* on each day,
as it was published then: :class:`ShownSeries` keeps, per scope × series × day, the
shown numerator and per scope × day the shown families, from the suppressed picture of
each tick (:func:`models.suppression.suppress`). A hidden cell is NaN; a day without a
tick shows what the tick before it published (that was on display that day: a stream
that moves ``W`` by several days at once, or a worker whose ticks are seconds apart,
skips days); a later tick of the same day replaces it. Arrays grow by doubling, so a
tick costs the width of one day, not the length of the history.

>>> def pic(fam, sa, groups=None):
...     scope = {"indicators": {"families": fam, "families_social_assistance": sa}}
...     if groups is not None:
...         scope["service_need_groups"] = groups
...     return {"all": scope, "municipalities": {}, "areas": {}}
>>> s = ShownSeries(series=("families_social_assistance", "service_need_9_10"))
>>> g = {str(i): 10 for i in range(1, 11)}
>>> s.put("2026-01-01", pic(100, 10, g))
>>> s.put("2026-01-03", pic(100, None, g | {"9": None, "10": None}))
>>> s.put("2026-01-04", pic(100, 9, g | {"8": None, "10": None}))
>>> t = s.table()
>>> t.first_day, t.scopes, t.num[0].tolist(), t.den[0, 0].tolist()
('2026-01-01', ('all',), [[10.0, 10.0, nan, 9.0], [20.0, 20.0, 20.0, nan]], [100.0, 100.0, 100.0, 100.0])
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import numpy as np

from models.publication import publish_picture
from models.suppression import suppress

__all__ = ["ShownSeries", "shown_values"]


def _json(x: float) -> float | int | None:
    if np.isnan(x):
        return None
    return int(x) if float(x).is_integer() else float(x)


def _ordinal(day: str) -> int:
    return dt.date.fromisoformat(day[:10]).toordinal()


def shown_values(body: Mapping, series: tuple[str, ...], group_series: Mapping) -> list[float]:
    """The shown numerator of each series in one scope of a suppressed picture (NaN where
    hidden). A group series is a sum of groups: where one of them is hidden, it is still
    known as the families less the other groups if those are all shown (the groups add
    up to the families: anyone can subtract, so nothing hidden is revealed).

    >>> g = {str(i): 10 for i in range(1, 11)} | {"5": None, "6": None}
    >>> body = {"indicators": {"families": 100}, "service_need_groups": g}
    >>> shown_values(body, ("service_need_4_10", "service_need_9_10"),
    ...              {"service_need_4_10": range(4, 11), "service_need_9_10": (9, 10)})
    [70.0, 20.0]
    """
    ind = body.get("indicators") or {}
    groups = body.get("service_need_groups") or {}
    out = []
    for name in series:
        if name in group_series:
            v = _group_sum(groups, set(group_series[name]), ind.get("families"))
        else:
            v = ind.get(name)
        out.append(np.nan if v is None else float(v))
    return out


def _group_sum(groups: Mapping, members: set[int], families: int | None) -> int | None:
    inside = [groups.get(str(g)) for g in sorted(members)]
    if all(x is not None for x in inside):
        return sum(int(x) for x in inside if x is not None)
    outside = [groups.get(str(g)) for g in range(1, 11) if g not in members]
    if families is None or any(x is None for x in outside):
        return None
    return families - sum(int(x) for x in outside if x is not None)


class ShownSeries:
    """Per scope × series × day, what the suppressed pictures showed (module doc).

    Parameters
    ----------
    series
        The watched series (default :data:`models.detection.SERIES`).
    """

    def __init__(self, series: tuple[str, ...] | None = None):
        from models.detection import GROUP_SERIES, SERIES

        self.series = tuple(series or SERIES)
        self.group_series = GROUP_SERIES
        self.scopes: list[str] = []
        self.municipalities: list[str | None] = []
        self._pos: dict[str, int] = {}
        self._first: int | None = None
        self._days = 0
        self._num = np.full((8, len(self.series), 64), np.nan)
        self._den = np.full((8, 64), np.nan)

    @property
    def days(self) -> list[str]:
        """The days held, first to last (with or without a tick)."""
        if self._first is None:
            return []
        return [dt.date.fromordinal(self._first + t).isoformat() for t in range(self._days)]

    def publish(self, day: str, picture: dict, min_cell: int, perturb: bool = True) -> None:
        """Put what the API publishes of the unsuppressed ``picture`` (with its cell-key
        sums as ``keys``) of ``day``: suppressed, then perturbed (``perturb`` False: the
        exact shown counts, a comparison never served)."""
        shown = suppress(picture, min_cell)
        if perturb:
            shown = publish_picture(shown, picture["keys"], min_cell)
        self.put(day, shown)

    def row(self, day: str) -> dict[str, list]:
        """What ``day`` holds, JSON-able: ``{scope: [municipality, families, *series]}``
        (None where hidden); :meth:`put_row` puts it back, so a worker can keep the
        series in a store.

        >>> s = ShownSeries(series=("families_social_assistance",))
        >>> s.put("2026-01-01", {"all": {"indicators": {"families": 9}}, "areas": {}})
        >>> r = s.row("2026-01-01"); r
        {'all': [None, 9, None]}
        >>> t = ShownSeries(series=("families_social_assistance",))
        >>> t.put_row("2026-01-01", r); t.row("2026-01-01") == r
        True
        """
        if self._first is None:
            raise ValueError("no day put yet")
        t = _ordinal(day) - self._first
        if not 0 <= t < self._days:
            raise ValueError(f"{day} is not held")
        return {
            key: [muni, _json(self._den[s, t]), *map(_json, self._num[s, :, t])]
            for s, (key, muni) in enumerate(zip(self.scopes, self.municipalities, strict=True))
        }

    def put_row(self, day: str, row: Mapping[str, list]) -> None:
        """Put a :meth:`row` back (days in order, as :meth:`put`)."""
        t = self._day(day)
        for key, (muni, fam, *values) in row.items():
            s = self._scope(key, muni)
            self._den[s, t] = np.nan if fam is None else float(fam)
            self._num[s, :, t] = [np.nan if v is None else float(v) for v in values]

    def put(self, day: str, picture: Mapping) -> None:
        """The suppressed picture published on ``day`` (on or after the first day put)."""
        t = self._day(day)
        bodies = [("all", None, picture.get("all") or {})]
        bodies += [
            (f"m:{c}", c, b) for c, b in sorted((picture.get("municipalities") or {}).items())
        ]
        bodies += [
            (f"a:{pc}", b.get("municipality"), b)
            for pc, b in sorted((picture.get("areas") or {}).items())
        ]
        for key, muni, body in bodies:
            s = self._scope(key, muni)
            fam = ((body or {}).get("indicators") or {}).get("families")
            self._den[s, t] = np.nan if fam is None else float(fam)
            self._num[s, :, t] = shown_values(body or {}, self.series, self.group_series)

    def _day(self, day: str) -> int:
        """The column of ``day``, the days skipped before it filled."""
        d = _ordinal(day)
        if self._first is None:
            self._first = d
        t = d - self._first
        if t < 0:
            raise ValueError(f"{day} is before the first day held")
        self._grow(days=t + 1)
        if t > self._days:  # the days skipped show what was last published
            last = self._days - 1
            self._num[:, :, self._days : t] = self._num[:, :, last : last + 1]
            self._den[:, self._days : t] = self._den[:, last : last + 1]
        self._days = max(self._days, t + 1)
        return t

    def table(self):
        """The :class:`models.detection.Table` of everything held (views, no copy)."""
        from models.detection import Table

        if self._first is None:
            raise ValueError("no day put yet")
        n, t = len(self.scopes), self._days
        return Table(
            dt.date.fromordinal(self._first).isoformat(),
            tuple(self.scopes),
            tuple(self.municipalities),
            self.series,
            self._num[:n, :, :t],
            self._den[:n, :t],
        )

    def _scope(self, key: str, muni: str | None) -> int:
        s = self._pos.get(key)
        if s is None:
            s = self._pos[key] = len(self.scopes)
            self.scopes.append(key)
            self.municipalities.append(muni)
            self._grow(scopes=s + 1)
        return s

    def _grow(self, scopes: int = 0, days: int = 0) -> None:
        S, K, T = self._num.shape
        if scopes <= S and days <= T:
            return
        S2 = S if scopes <= S else max(2 * S, scopes)
        T2 = T if days <= T else max(2 * T, days)
        num = np.full((S2, K, T2), np.nan)
        den = np.full((S2, T2), np.nan)
        num[:S, :, :T] = self._num
        den[:S, :T] = self._den
        self._num, self._den = num, den
