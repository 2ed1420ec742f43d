"""Shift alerts in Redis: the detector's state, what it detected on, the alerts served.

``tk:alerts`` (zset, score = raised-at epoch seconds, member = alert JSON) is what
``GET /api/v1/alerts`` reads; ``tk:alerts:ids`` remembers every id recorded, so a tick
replayed after a crash (same id, see :func:`models.detection.alert_id`) adds nothing;
``tk:alerts:state`` holds the detector's state (its last day, the active pairs) and
``tk:alerts:shown`` the published values of every day it detected on
(:meth:`models.shown_series.ShownSeries.row`): a new leader goes on from exactly what
the last one saw, not from a history that late events have revised since. One Lua call
writes all four atomically.
"""

from __future__ import annotations

import datetime as dt
import json
from importlib import resources

from sinks import keys
from sinks.connection import text

RECORD_LUA = resources.files("sinks").joinpath("record_alerts.lua").read_text()
KEEP = 10_000  # newest alerts served


def _epoch(iso: str) -> float:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _compact(value) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


class AsyncAlertStore:
    """``load()`` the state and the days' values, ``record(state, rows, alerts)`` a tick."""

    def __init__(self, redis, keep: int = KEEP):
        self.redis = redis
        self.keep = keep

    async def state(self) -> dict | None:
        raw = await self.redis.get(keys.ALERTS_STATE)
        return json.loads(raw) if raw else None

    async def load(self) -> tuple[dict | None, dict[str, dict]]:
        """The state and ``{day: values}`` of every day recorded, read together."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.get(keys.ALERTS_STATE)
        pipe.hgetall(keys.ALERTS_SHOWN)
        raw, rows = await pipe.execute()
        days = {text(d): json.loads(v) for d, v in (rows or {}).items()}
        return (json.loads(raw) if raw else None), dict(sorted(days.items()))

    async def record(self, state: dict, rows: dict[str, dict], alerts: list[dict]) -> int:
        argv: list = [_compact(state), self.keep, len(rows)]
        for day, row in rows.items():
            argv += [day, _compact(row)]
        for a in alerts:
            argv += [a["id"], _epoch(a["raised_at"]), json.dumps(a, sort_keys=True)]
        return int(
            await self.redis.eval(
                RECORD_LUA,
                4,
                keys.ALERTS_STATE,
                keys.ALERTS,
                keys.ALERTS_IDS,
                keys.ALERTS_SHOWN,
                *argv,
            )
        )
