"""Alerts, their state and the days they saw in a real Redis: atomic, replay-safe, bounded,
served newest first."""

import asyncio

import pytest
import redis.asyncio as aioredis

from models.alerts import TrendRule, alert_step
from sinks import keys
from sinks.alert_store import AsyncAlertStore, Recorded
from sinks.redis_reader import read_alerts

pytestmark = pytest.mark.integration


def pic(assist):
    ind = {"families": 100, "families_social_assistance": assist}
    return {"all": {"indicators": ind, "suppressed": []}, "municipalities": {}, "areas": {}}


def test_record_is_replay_safe_and_served_newest_first(redis_client, redis_test_url):
    async def scenario():
        client = aioredis.Redis.from_url(redis_test_url)
        store = AsyncAlertStore(client, keep=3)
        rule = TrendRule(window_days=30, rise=0.05, min_families=20)
        assert await store.state() is None and await store.recorded() == Recorded()
        added = []
        for i, (day, assist) in enumerate(
            [
                ("2026-01-01", 10),
                ("2026-02-05", 20),
                ("2026-03-20", 10),
                ("2026-05-01", 30),
                ("2026-06-10", 10),
                ("2026-07-20", 30),
            ]
        ):
            before = await store.state()
            state, raised = alert_step(before, pic(assist), day, f"2026-08-01T00:00:{i:02d}Z", rule)
            added.append(await store.record(state, {day: {"all": [None, 100, assist]}}, raised))
            # The same tick again (a crash before the state was seen as saved): no new alert.
            again, raised_again = alert_step(
                before, pic(assist), day, f"2026-08-01T00:01:{i:02d}Z", rule
            )
            assert [a["id"] for a in raised_again] == [a["id"] for a in raised]
            assert await store.record(again, {}, raised_again) == 0
        rec = await store.recorded()
        state, rows = rec.state, rec.rows
        assert list(rows) == [
            "2026-01-01",
            "2026-02-05",
            "2026-03-20",
            "2026-05-01",
            "2026-06-10",
            "2026-07-20",
        ]
        assert rows["2026-05-01"] == {"all": [None, 100, 30]} and state == again
        await client.aclose()
        return added

    added = asyncio.run(scenario())
    assert added == [0, 1, 0, 1, 0, 1]
    served = read_alerts(redis_client)
    assert [a["as_of"] for a in served] == ["2026-07-20", "2026-05-01", "2026-02-05"]
    assert redis_client.hlen(keys.ALERTS_IDS) == 3
    since = read_alerts(redis_client, since_epoch=1785542403.0)  # 2026-08-01T00:00:03Z
    assert [a["as_of"] for a in since] == ["2026-07-20", "2026-05-01"]


def test_keep_bounds_the_served_alerts(redis_client, redis_test_url):
    async def scenario():
        client = aioredis.Redis.from_url(redis_test_url)
        store = AsyncAlertStore(client, keep=2)
        alerts = [
            {"id": f"a{i}", "raised_at": f"2026-08-01T00:00:0{i}Z", "as_of": "2026-07-01"}
            for i in range(5)
        ]
        n = await store.record({"history": [], "active": []}, {}, alerts)
        await client.aclose()
        return n

    assert asyncio.run(scenario()) == 5
    assert [a["id"] for a in read_alerts(redis_client)] == ["a4", "a3"]
