"""Trend alerts in Redis: the alert step's state, and the alerts the API serves.

``tk:alerts`` (zset, score = raised-at epoch seconds, member = alert JSON) is what
``GET /api/v1/alerts`` reads; ``tk:alerts:ids`` remembers every id recorded, so a tick
replayed after a crash (same id, see :func:`models.alerts.alert_id`) adds nothing;
``tk:alerts:state`` holds the step's snapshots and active pairs. One Lua call writes
all three atomically.
"""

from __future__ import annotations

import datetime as dt
import json
from importlib import resources

from sinks import keys

RECORD_LUA = resources.files("sinks").joinpath("record_alerts.lua").read_text()
KEEP = 10_000  # newest alerts served


def _epoch(iso: str) -> float:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


class AsyncAlertStore:
    """``load()`` the state, ``record(state, alerts)`` it with the alerts raised."""

    def __init__(self, redis, keep: int = KEEP):
        self.redis = redis
        self.keep = keep

    async def load(self) -> dict | None:
        raw = await self.redis.get(keys.ALERTS_STATE)
        return json.loads(raw) if raw else None

    async def record(self, state: dict, alerts: list[dict]) -> int:
        argv: list = [json.dumps(state, separators=(",", ":")), self.keep]
        for a in alerts:
            argv += [a["id"], _epoch(a["raised_at"]), json.dumps(a, sort_keys=True)]
        return int(
            await self.redis.eval(
                RECORD_LUA, 3, keys.ALERTS_STATE, keys.ALERTS, keys.ALERTS_IDS, *argv
            )
        )
