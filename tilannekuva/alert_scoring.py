"""Alerts against planted shifts: detection, delay, false alerts, PPV (pure).

The truth is the generator's shift file (``tilannekuva generate --shifts N``,
:func:`tilannekuva.synthetic.dynamics.shift_truth`); the alerts are those a method raised
in a backtest (:mod:`tilannekuva.alerts`), each with the day it was raised (``as_of``).
The rules, said once here:

* A planted shift lives in one scope (``a:<postcode>``, ``m:<code>`` or ``all``) and
  names the series it moves (``planted``: percentage points of the scope's families, or
  a rate ratio for the window counts). Its **own cells** are that scope × those series.
* An alert **detects** a rising shift when it is raised in one of the shift's own cells
  on or after the onset; the delay is the first such alert's day minus the onset.
  Falling shifts (planted improvements) are not there to be detected by a rise alert:
  a rise alert in their cells counts as false.
* A shift also moves the scopes that contain its scope or lie in it (an area's
  municipality and ``all``; a municipality's areas; everything, for the population-wide
  shift), and the other series of its scope (a laid-off parent may also need social
  assistance). A rise alert there, on or after the onset of a rising shift, is
  **explained**: neither a detection nor a false alert.
* Every other alert is **false**. False alerts are counted per 100 area-months: over
  the 144 areas and the months from the first day any method may alert
  (``from_day``) to the last tick, whatever the scope of the alert (a municipality's
  false alert counts as much as an area's).
* PPV: alerts in own cells after the onset of a rising shift, over those plus false
  alerts.
* ``detected_share_large``: among rising shifts of at least 5 pp (or a ratio of 2) in
  scopes of at least 100 families at onset, the share detected within 21 days.

>>> truth = [{"id": "S1", "scope_type": "area", "scope": "33100", "municipality": "837",
...           "onset": "2025-03-01", "direction": "up", "unit": "percentage_points",
...           "planted": {"families_unemployed_parent": 6.0}, "families_at_onset": 400}]
>>> alert = lambda scope, series, day: {"scope_key": scope, "series": series, "as_of": day}
>>> alerts = [alert("a:33100", "families_unemployed_parent", "2025-03-12"),  # detects, 11 days
...           alert("m:837", "families_unemployed_parent", "2025-03-20"),    # explained
...           alert("a:33200", "families_child_welfare", "2025-04-01")]      # false
>>> r = score(alerts, truth, "2024-07-01", "2025-06-30", areas={"33100": "837", "33200": "837"})
>>> r["detected_share"], r["median_delay_days"], r["false_alerts"], r["ppv"]
(1.0, 11.0, 1, 0.5)
>>> r["detected_share_large"], r["shifts"]["S1"]["delay_days"]
(1.0, 11)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping

import numpy as np

__all__ = ["LARGE_PP", "LARGE_RATIO", "LARGE_SCOPE", "WITHIN_DAYS", "score", "series_of"]

#: The issue's "large" shift: +5 pp, or twice the rate, in a scope of 100+ families,
#: detected within 21 days.
LARGE_PP, LARGE_RATIO, LARGE_SCOPE, WITHIN_DAYS = 5.0, 2.0, 100, 21
#: The truth's names of the group series -> the detectors' (models.detection.GROUP_SERIES).
_SERIES = {"g4-g10": "service_need_4_10", "g9-g10": "service_need_9_10"}
#: Size bins of the power curve: (unit, low, high).
SIZE_BINS = (
    ("percentage_points", 0.0, 4.0),
    ("percentage_points", 4.0, 6.0),
    ("percentage_points", 6.0, 100.0),
    ("rate_ratio", 1.0, 1.6),
    ("rate_ratio", 1.6, 2.2),
    ("rate_ratio", 2.2, 100.0),
)
SCOPE_BINS = ((0, 100), (100, 500), (500, 10**9))


def series_of(name: str) -> str:
    """The detectors' name of a series the truth names."""
    return _SERIES.get(name, name)


def _day(iso: str) -> int:
    return dt.date.fromisoformat(iso[:10]).toordinal()


def _key(row: Mapping) -> str:
    kind = row["scope_type"]
    return "all" if kind == "all" else ("a:" if kind == "area" else "m:") + row["scope"]


def _related(row: Mapping, scope: str, areas: Mapping[str, str]) -> bool:
    """Whether ``scope`` contains the shift's scope or lies within it (or is it)."""
    kind, code, muni = row["scope_type"], row["scope"], row.get("municipality")
    if kind == "all" or scope == "all":
        return True
    if kind == "municipality":
        return scope == f"m:{code}" or (scope.startswith("a:") and areas.get(scope[2:]) == code)
    return scope in (f"a:{code}", f"m:{muni}")


def _large(row: Mapping) -> bool:
    if (row.get("families_at_onset") or 0) < LARGE_SCOPE or row["direction"] != "up":
        return False
    big = LARGE_PP if row["unit"] == "percentage_points" else LARGE_RATIO
    return any(abs(v) >= big for v in row["planted"].values())


def _size(row: Mapping) -> float:
    return max(abs(v) for v in row["planted"].values())


def score(
    alerts: Iterable[Mapping],
    truth: list[Mapping],
    from_day: str,
    to_day: str,
    areas: Mapping[str, str],
) -> dict:
    """The figures of one method's alerts against the planted ``truth`` (module doc).

    ``from_day`` … ``to_day``: the days on which the method could alert (its ticks after
    its warm-up); alerts outside them are ignored. ``areas``: postcode -> municipality.
    """
    lo, hi = _day(from_day), _day(to_day)
    shown = sorted(
        (a for a in alerts if lo <= _day(a["as_of"]) <= hi), key=lambda a: _day(a["as_of"])
    )
    rising = [r for r in truth if r["direction"] == "up"]
    first: dict[str, int] = {}  # shift id -> day of its first detecting alert
    true_alerts = false_alerts = explained = 0
    for a in shown:
        d, scope, series = _day(a["as_of"]), a["scope_key"], a["series"]
        own = [
            r
            for r in rising
            if _key(r) == scope
            and series in {series_of(s) for s in r["planted"]}
            and d >= _day(r["onset"])
        ]
        if own:
            true_alerts += 1
            for r in own:
                first.setdefault(r["id"], d)
            continue
        if any(_related(r, scope, areas) and d >= _day(r["onset"]) for r in rising):
            explained += 1
            continue
        false_alerts += 1
    months = max((hi - lo + 1) / (365.25 / 12), 1e-9)
    weeks = max((hi - lo + 1) / 7, 1e-9)
    delays = [first[r["id"]] - _day(r["onset"]) for r in rising if r["id"] in first]
    large = [r for r in rising if _large(r)]
    per_shift = {
        r["id"]: {
            "scope": _key(r),
            "series": sorted(series_of(s) for s in r["planted"]),
            "direction": r["direction"],
            "size": _size(r),
            "unit": r["unit"],
            "families_at_onset": r.get("families_at_onset"),
            "onset": r["onset"],
            "delay_days": (first[r["id"]] - _day(r["onset"])) if r["id"] in first else None,
        }
        for r in truth
    }
    return {
        "shifts_rising": len(rising),
        "detected_share": _share(len(delays), len(rising)),
        "detected_share_large": _share(
            sum(
                1
                for r in large
                if r["id"] in first and first[r["id"]] - _day(r["onset"]) <= WITHIN_DAYS
            ),
            len(large),
        ),
        "large_shifts": len(large),
        "median_delay_days": float(np.median(delays)) if delays else None,
        "p90_delay_days": float(np.percentile(delays, 90)) if delays else None,
        "alerts": len(shown),
        "true_alerts": true_alerts,
        "explained_alerts": explained,
        "false_alerts": false_alerts,
        "false_per_100_area_months": round(100 * false_alerts / (len(areas) * months), 3),
        "ppv": _share(true_alerts, true_alerts + false_alerts),
        "alerts_per_municipality_week": round(len(shown) / (6 * weeks), 3),
        "by_size": _power(rising, first),
        "shifts": per_shift,
    }


def _share(k: int, n: int) -> float | None:
    return round(k / n, 4) if n else None


def _power(rising: list[Mapping], first: Mapping[str, int]) -> list[dict]:
    """Detection within :data:`WITHIN_DAYS` by planted size and scope size."""
    out = []
    for unit, s_lo, s_hi in SIZE_BINS:
        for f_lo, f_hi in SCOPE_BINS:
            rows = [
                r
                for r in rising
                if r["unit"] == unit
                and s_lo <= _size(r) < s_hi
                and f_lo <= (r.get("families_at_onset") or 0) < f_hi
            ]
            if not rows:
                continue
            hit = sum(
                1
                for r in rows
                if r["id"] in first and first[r["id"]] - _day(r["onset"]) <= WITHIN_DAYS
            )
            out.append(
                {
                    "unit": unit,
                    "size": [s_lo, s_hi],
                    "families": [f_lo, f_hi],
                    "shifts": len(rows),
                    "detected_within_21d": hit,
                    "share": round(hit / len(rows), 4),
                }
            )
    return out
