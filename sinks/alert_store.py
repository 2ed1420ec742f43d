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
from dataclasses import dataclass, field
from importlib import resources

from sinks import keys
from sinks.connection import text

RECORD_LUA = resources.files("sinks").joinpath("record_alerts.lua").read_text()
KEEP = 10_000  # newest alerts served


def _epoch(iso: str) -> float:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _compact(value) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


@dataclass
class Recorded:
    """What a leader recorded in the four keys: the state, each day's values and the
    newest ``keep`` alerts; the leader keeps it to put back what Redis loses."""

    state: dict | None = None
    rows: dict[str, dict] = field(default_factory=dict)
    alerts: list[dict] = field(default_factory=list)

    def add(self, state: dict, rows: dict[str, dict], alerts: list[dict], keep: int = KEEP) -> None:
        self.state = state
        self.rows.update(rows)
        self.alerts = (self.alerts + alerts)[-keep:] if keep > 0 else []

    def behind(self, held: dict | None) -> bool:
        """Whether ``held`` (the state Redis holds) is older than this one: Redis lost it
        (emptied, or back to an older copy), rather than another leader going on."""
        return self.state is not None and (held is None or held["as_of"] < self.state["as_of"])


class AsyncAlertStore:
    """``recorded()`` all of it, ``record(state, rows, alerts)`` a tick, ``put_back``."""

    def __init__(self, redis, keep: int = KEEP):
        self.redis = redis
        self.keep = keep

    async def state(self) -> dict | None:
        raw = await self.redis.get(keys.ALERTS_STATE)
        return json.loads(raw) if raw else None

    async def recorded(self) -> Recorded:
        """All of it, read together; alerts oldest first."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.get(keys.ALERTS_STATE)
        pipe.hgetall(keys.ALERTS_SHOWN)
        pipe.zrange(keys.ALERTS, 0, -1)
        raw, rows, alerts = await pipe.execute()
        days = {text(d): json.loads(v) for d, v in (rows or {}).items()}
        return Recorded(
            json.loads(raw) if raw else None,
            dict(sorted(days.items())),
            [json.loads(a) for a in alerts],
        )

    async def put_back(self, rec: Recorded) -> int:
        """Record ``rec`` whole again; returns the alerts Redis had lost."""
        assert rec.state is not None
        return await self.record(rec.state, rec.rows, rec.alerts)

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
