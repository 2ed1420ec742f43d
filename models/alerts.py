"""Trend alerts: an area's share of families with an indicator rising in event time.

Pure domain logic, bytewax style: :func:`alert_step` takes the state, the *suppressed*
picture and the times, and returns the new state and the alerts raised. Nothing is read
from a clock inside.

Privacy: an alert is computed from shown cells only (the output of
:func:`models.suppression.suppress`, what the API answers at the same moment), so it
discloses nothing the API did not. A scope also needs at least ``min_families`` shown
families at both ends of the window, so that one family's change cannot make an alert.

The rule (:class:`TrendRule`), per scope (area, municipality, whole) and indicator:

* ``share = indicator / families``; for the window counts
  (``child_welfare_notifications_30d``, ``mental_health_visits_90d``) it is a rate per
  family, so "share" reads "per family" there;
* the baseline is the latest snapshot at least ``window_days`` before ``W``, in event
  time: snapshots are taken whenever the step runs, one per watermark day;
* an alert is raised when ``share_now − share_before ≥ rise`` and the pair
  (scope, indicator) is not already active; it stays active, raising nothing more,
  until the rise falls under ``rise / 2`` (hysteresis: no flapping around the line).

Alert ids are a hash of (scope, indicator, as_of): the same tick replayed gives the same
id, so consumers can drop duplicates. A pair raises at most once per watermark day:
while the stream catches up, counts at one W still move, and a pair that fell back and
rose again on the same day would otherwise repeat an id the topic already carries.

Examples
--------
>>> rule = TrendRule(window_days=30, rise=0.05, min_families=20)
>>> def pic(n_assist):
...     counts = {"families": 100, "families_social_assistance": n_assist}
...     return {"all": {"indicators": counts, "suppressed": []},
...             "municipalities": {}, "areas": {}}
>>> state, out = alert_step(None, pic(10), "2026-01-01", "2026-01-01T00:00:00Z", rule)
>>> out
[]
>>> state, out = alert_step(state, pic(17), "2026-02-05", "2026-01-01T00:00:10Z", rule)
>>> [(a["scope"], a["indicator"], a["before"]["share"], a["now"]["share"]) for a in out]
[('all', 'families_social_assistance', 0.1, 0.17)]
>>> state, out = alert_step(state, pic(18), "2026-02-06", "2026-01-01T00:00:20Z", rule)
>>> out  # still active: raised once
[]
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from models.contract import INDICATORS

#: Indicators watched, as a share (or rate) per family: every indicator but the
#: denominators themselves.
WATCHED: tuple[str, ...] = tuple(i for i in INDICATORS if i not in ("families", "children"))


@dataclass(frozen=True)
class TrendRule:
    """Hyper-parameters of the trend rule.

    Parameters
    ----------
    window_days
        Event-time distance between the baseline snapshot and now.
    rise
        Rise of the share (0.05 = 5 percentage points) that raises an alert.
    min_families
        Shown families needed at both ends; scopes below it raise nothing.
    """

    window_days: int = 30
    rise: float = 0.05
    min_families: int = 20


def _day(iso: str) -> int:
    return dt.date.fromisoformat(iso[:10]).toordinal()


def _scopes(pic: Mapping):
    """(scope key, kind, area, municipality, scope body) of every scope in the picture."""
    yield "all", "all", None, None, pic["all"]
    for code, body in sorted((pic.get("municipalities") or {}).items()):
        yield f"m:{code}", "municipality", None, code, body
    for pc, body in sorted((pic.get("areas") or {}).items()):
        yield f"a:{pc}", "area", pc, body.get("municipality"), body


def shown_shares(pic: Mapping, min_families: int) -> dict[str, dict[str, float]]:
    """``{scope: {indicator: share}}`` from shown cells of scopes with enough families."""
    out: dict[str, dict[str, float]] = {}
    for key, _kind, _area, _muni, body in _scopes(pic):
        ind = body.get("indicators") or {}
        fam = ind.get("families")
        if fam is None or fam < max(min_families, 1):
            continue
        shares = {n: round(ind[n] / fam, 6) for n in WATCHED if ind.get(n) is not None}
        if shares:
            out[key] = shares
    return out


def alert_id(scope: str, indicator: str, as_of: str) -> str:
    return hashlib.sha256(f"{scope}|{indicator}|{as_of}".encode()).hexdigest()[:20]


def alert_step(state: Mapping | None, pic: Mapping, as_of: str | None, now: str, rule: TrendRule):
    """One tick: ``(state, suppressed picture, W, wall-clock now, rule) -> (state, alerts)``.

    ``state`` is JSON-able: ``{"history": [[day, shares], ...], "active": [key, ...],
    "raised": {key: day}}`` with days as ISO dates, history oldest first. ``alerts`` are
    dicts, ready to publish.
    """
    history = [list(h) for h in (state or {}).get("history", [])]
    active = set((state or {}).get("active", []))
    raised = dict((state or {}).get("raised", {}))
    if as_of is None:
        return {"history": history, "active": sorted(active), "raised": raised}, []
    today = _day(as_of)
    shares = shown_shares(pic, rule.min_families)
    # One snapshot per watermark day: a later tick on the same day replaces it.
    history = [h for h in history if _day(h[0]) < today] + [[as_of[:10], shares]]
    baseline = None
    for h in history:
        if _day(h[0]) <= today - rule.window_days:
            baseline = h
    # Keep the baseline and everything that can become one later.
    history = [h for h in history if baseline is None or _day(h[0]) >= _day(baseline[0])]
    alerts: list[dict] = []
    if baseline is None:
        return {"history": history, "active": sorted(active), "raised": raised}, alerts
    before = baseline[1]
    kinds = {key: (kind, area, muni) for key, kind, area, muni, _ in _scopes(pic)}
    still = set()
    for key, now_shares in shares.items():
        for indicator, share in now_shares.items():
            old = (before.get(key) or {}).get(indicator)
            if old is None:
                continue
            rise = share - old
            pair = f"{key}|{indicator}"
            if pair in active:
                if rise >= rule.rise / 2:
                    still.add(pair)
                continue
            if rise >= rule.rise:
                still.add(pair)
                if raised.get(pair) == as_of[:10]:
                    continue  # raised today already: same id
                raised[pair] = as_of[:10]
                kind, area, muni = kinds[key]
                alerts.append(
                    {
                        "id": alert_id(key, indicator, as_of[:10]),
                        "rule": f"share_rising_{rule.window_days}d",
                        "raised_at": now,
                        "as_of": as_of[:10],
                        "scope": kind,
                        "area": area,
                        "municipality": muni,
                        "indicator": indicator,
                        "window_days": rule.window_days,
                        "before": {"as_of": baseline[0], "share": old},
                        "now": {"as_of": as_of[:10], "share": share},
                        "rise": round(rise, 6),
                    }
                )
    return {"history": history, "active": sorted(still), "raised": raised}, alerts
