"""The history API (contract 1.1) and ``tilannekuva export`` against the real Redis
(db 15 of infra/up's server), filled through the real sink by the demo's ingest path.

Every answer is checked against the reference: the reader's history of every scope on
that day (:func:`sinks.redis_reader.read_history`, :func:`~sinks.redis_reader.picture_on`)
suppressed as a whole with :func:`models.suppression.suppress`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import pandas as pd
import pytest
import redis
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer

from models.contract import GROUPS, INDICATORS
from models.publication import keysums_of, publish_picture
from models.suppression import suppress
from sinks import keys, redis_reader
from tilannekuva import api, cli, demo, export
from tilannekuva.api.state import HISTORY
from tilannekuva.config import Settings
from tilannekuva.synthetic import synthesize

TOKEN = "history-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
AUDIT_TOKEN = "history-test-audit-token"
AUDIT = {"Authorization": f"Bearer {AUDIT_TOKEN}"}
MIN_CELL = 5
KEY = b"0123456789abcdef-history-test"
LATE_FROM = "2026-05-15"  # events on and after this day arrive late (the second feed)
MUNIS = ("092", "399", "609", "837", "905", "980")

pytestmark = pytest.mark.integration


def day(text: str) -> int:
    return dt.date.fromisoformat(text).toordinal()


@pytest.fixture(scope="module")
def history_redis(redis_test_url):
    """db 15 holding a small synthetic history, replayed in two parts: everything but
    the events of a few families on and after LATE_FROM, then (``feed_late``) those."""
    r = redis.Redis.from_url(redis_test_url)
    r.flushdb()
    syn = synthesize(150, 5)
    early, late = [], []
    for line in syn.lines:
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        held = (
            isinstance(ev, dict)
            and ev.get("occurred_at", "") >= LATE_FROM
            and (
                ev.get("type") == "child_welfare.notification"
                or (
                    ev.get("type") == "health.visit"
                    and ev["data"].get("service") == "mental_health"
                )
            )
        )
        (late if held else early).append(line)
    ingest = demo.Ingest(r, KEY)
    for i in range(0, len(early), 5000):
        ingest.feed(early[i : i + 5000])
    ingest.fit_types(n_types=8)
    assert late, "the synthetic history has no late-held events"

    def feed_late() -> None:
        ingest.feed(late)

    yield r, feed_late
    r.flushdb()
    r.close()


@pytest.fixture
async def make_client(redis_test_url):
    clients = []

    async def make(**kw) -> TestClient:
        r = aioredis.Redis.from_url(redis_test_url)
        audit = kw.pop("audit_token", AUDIT_TOKEN)
        settings = Settings(
            api_token=TOKEN, audit_token=audit, min_cell=MIN_CELL, redis_url=redis_test_url
        )
        kw.setdefault("history_refresh_s", None)
        client = TestClient(TestServer(api.make_app(settings, r, **kw)))
        await client.start_server()
        clients.append((client, r))
        return client

    yield make
    for client, r in clients:
        await client.close()
        await r.aclose()


def reference(r, on: str) -> dict:
    """The published picture of day ``on`` from the reader: suppressed as a whole, then
    each shown count perturbed by its cell key (cell by cell, the reference path)."""
    areas = redis_reader.known_areas(r)
    scopes = ["all"] + [f"m:{m}" for m in MUNIS] + [f"a:{pc}" for pc in sorted(areas)]
    hist = redis_reader.read_history(r, scopes, [day(on)])
    sup = suppress(redis_reader.picture_on(hist, day(on), areas, on), MIN_CELL)
    return publish_picture(sup, {s: keysums_of(hist[s][day(on)]) for s in scopes}, MIN_CELL)


def cells_of(scope: dict) -> tuple:
    return scope["indicators"], scope.get("service_need_groups"), scope["suppressed"]


async def test_the_audit_paths_answer_the_exact_counts_with_the_audit_token_only(
    history_redis, make_client
):
    r, _ = history_redis
    c = await make_client()
    first, w = redis_reader.read_span(r)
    areas = redis_reader.known_areas(r)
    scopes = ["all"] + [f"m:{m}" for m in MUNIS] + [f"a:{pc}" for pc in sorted(areas)]
    differs = 0
    for on in (w, "2026-06-01", "2024-03-15"):
        hist = redis_reader.read_history(r, scopes, [day(on)])
        exact = redis_reader.picture_on(hist, day(on), areas, on)
        published = reference(r, on)
        for path, scope, pick in (
            ("picture", "all", lambda p: p["all"]),
            ("municipalities/837", "m:837", lambda p: p["municipalities"]["837"]),
            ("areas/33100", "a:33100", lambda p: p["areas"]["33100"]["counts"]),
        ):
            query = {} if on == w else {"as_of": on}
            resp = await c.get(f"/api/v1/audit/{path}", params=query, headers=AUDIT)
            assert resp.status == 200, (path, on)
            body = await resp.json()
            assert body["as_of"] == on and body["suppressed"] == []
            want = pick(exact)
            assert body["indicators"] == {f: want[f] for f in INDICATORS}, (path, on)
            if "g1" in want:
                assert body["service_need_groups"] == {g[1:]: want[g] for g in GROUPS}
            public = published["all"] if scope == "all" else None
            if public is not None:
                shown = public["indicators"]
                differs += sum(
                    v is not None and v != body["indicators"][f] for f, v in shown.items()
                )
            # The dashboard token never opens the exact counts.
            assert (await c.get(f"/api/v1/audit/{path}", headers=AUTH)).status == 401
    assert differs > 0  # the published picture is not the exact one
    no_audit = await make_client(audit_token=None)  # without the setting: always 401
    for token in (AUDIT, AUTH):
        assert (await no_audit.get("/api/v1/audit/picture", headers=token)).status == 401


PATHS = (
    ("/api/v1/picture", lambda ref: ref["all"]),
    ("/api/v1/municipalities/837", lambda ref: ref["municipalities"]["837"]),
    ("/api/v1/areas/33100", lambda ref: ref["areas"]["33100"]),
)


async def test_as_of_answers_the_whole_picture_of_that_day(history_redis, make_client):
    r, _ = history_redis
    c = await make_client()
    first, w = redis_reader.read_span(r)
    assert first < "2000-01-01" < w  # the history reaches back decades: births, memberships
    for path, _pick in PATHS:  # the day W is still filling: never published
        assert (await c.get(path, params={"as_of": w}, headers=AUTH)).status == 400
    for on in (published(w), "2026-06-01", "2025-01-31", "2023-07-01", "2010-06-15"):
        ref = reference(r, on)
        for path, pick in PATHS:
            resp = await c.get(path, params={"as_of": on}, headers=AUTH)
            assert resp.status == 200, (path, on)
            body = await resp.json()
            assert body["as_of"] == on
            assert cells_of(body) == cells_of(pick(ref)), (path, on)
            assert body["updated_at"] is None
            if on == published(w):  # the present is the last completed day, W − 1
                present = await (await c.get(path, headers=AUTH)).json()
                assert present["updated_at"] is not None
                assert {**body, "updated_at": None} == {**present, "updated_at": None}
        listing = await (await c.get("/api/v1/areas", params={"as_of": on}, headers=AUTH)).json()
        assert listing["as_of"] == on
        for item in listing["areas"]:
            assert item["families"] == ref["areas"][item["area"]]["indicators"]["families"]
            assert item["suppressed"] == (item["families"] is None)


async def test_series_points_are_the_days_answers_and_end_on_the_present(
    history_redis, make_client
):
    r, _ = history_redis
    c = await make_client()
    _, w = redis_reader.read_span(r)
    for path, _pick in PATHS:
        resp = await c.get(f"{path}/history", params={"step": "month"}, headers=AUTH)
        assert resp.status == 200
        body = await resp.json()
        series = body["series"]
        assert len(series) == 12 and series[-1]["as_of"] == published(w)
        for point in series[::4] + series[-1:]:
            single = await (
                await c.get(path, params={"as_of": point["as_of"]}, headers=AUTH)
            ).json()
            assert cells_of(point) == cells_of(single), (path, point["as_of"])
            assert body["area"] == single["area"] and body["municipality"] == single["municipality"]
    # indicators=a,b: those only, groups whenever the day has them.
    body = await (
        await c.get(
            "/api/v1/areas/33100/history",
            params={"from": "2026-06-20", "indicators": "mental_health_visits_90d,families"},
            headers=AUTH,
        )
    ).json()
    assert len(body["series"]) == w_minus(published(w), "2026-06-20") + 1
    for point in body["series"]:
        assert list(point["indicators"]) == ["families", "mental_health_visits_90d"]
        assert list(point.get("service_need_groups", {})) in ([], [g[1:] for g in GROUPS])
        allowed = set(point["indicators"]) | {f"service_need_groups.{g[1:]}" for g in GROUPS}
        assert set(point["suppressed"]) <= allowed


def w_minus(w: str, d: str) -> int:
    return day(w) - day(d)


def published(w: str) -> str:
    """The last published day of the watermark ``w``: W − 1 (docs/disclosure.md)."""
    return (dt.date.fromisoformat(w) - dt.timedelta(days=1)).isoformat()


async def test_errors(history_redis, make_client):
    r, _ = history_redis
    c = await make_client()
    first, w = redis_reader.read_span(r)
    before = (dt.date.fromisoformat(first) - dt.timedelta(days=1)).isoformat()
    after = w  # the day W is not published yet
    for path, query, status in [
        ("/api/v1/picture", {"as_of": "2026-6-1"}, 400),
        ("/api/v1/picture", {"as_of": after}, 400),
        ("/api/v1/municipalities/837", {"as_of": before}, 400),
        ("/api/v1/areas/00100", {"as_of": "2026-06-01"}, 404),
        ("/api/v1/picture/history", {"from": after}, 400),
        ("/api/v1/picture/history", {"from": "2026-06-02", "to": "2026-06-01"}, 400),
        ("/api/v1/picture/history", {"step": "quarter"}, 400),
        ("/api/v1/areas/33100/history", {"indicators": "families,nope"}, 400),
        ("/api/v1/municipalities/091/history", {}, 404),
        ("/api/v1/areas/00100/history", {}, 404),
    ]:
        resp = await c.get(path, params=query, headers=AUTH)
        assert resp.status == status, (path, query)
        assert "error" in await resp.json()


async def test_no_history_yet(redis_test_url, make_client):
    r = redis.Redis.from_url(redis_test_url)
    saved = {k: r.dump(k) for k in r.scan_iter(keys.PATTERN)}  # the module's history
    r.flushdb()
    try:
        c = await make_client()
        body = await (await c.get("/api/v1/picture/history", headers=AUTH)).json()
        assert body == {
            "area": None,
            "municipality": None,
            "first_day": None,
            "last_day": None,
            "series": [],
        }
        for path, query in [
            ("/api/v1/picture", {"as_of": "2026-06-01"}),
            ("/api/v1/picture/history", {"to": "2026-06-01"}),
        ]:
            resp = await c.get(path, params=query, headers=AUTH)
            assert resp.status == 400
            assert "no data yet" in (await resp.json())["error"]
    finally:
        for k, v in saved.items():
            r.restore(k, 0, v, replace=True)
        r.close()


async def test_export_equals_the_api_cell_by_cell(
    history_redis, redis_test_url, make_client, tmp_path, monkeypatch
):
    c = await make_client()
    scopes = ["all", "m:837", "a:33100"]
    query = {"from": "2025-12-31", "step": "month"}
    ar = aioredis.Redis.from_url(redis_test_url)
    try:
        cols = await export.collect(ar, MIN_CELL, query, scopes)
    finally:
        await ar.aclose()
    got = pd.DataFrame(cols)
    want = []
    for scope, path in zip(scopes, [p for p, _ in PATHS], strict=True):
        body = await (await c.get(f"{path}/history", params=query, headers=AUTH)).json()
        for point in body["series"]:
            for name, v in point["indicators"].items():
                want.append((scope, point["as_of"], name, v))
            for g, v in (point.get("service_need_groups") or {}).items():
                want.append((scope, point["as_of"], f"service_need_groups.{g}", v))
    kinds = {"all": "all", "m": "municipality", "a": "area"}
    rows = [
        (
            "all" if t == "all" else f"{t[0]}:{s}",
            a,
            i,
            None if pd.isna(v) else int(v),
        )
        for t, s, a, i, v in zip(
            got["scope_type"],
            got["scope"],
            got["as_of"],
            got["indicator"],
            got["value"],
            strict=True,
        )
    ]
    assert sorted(rows, key=repr) == sorted(want, key=repr)
    assert (got["suppressed"] == got["value"].isna()).all()
    assert set(got["scope_type"]) == set(kinds.values())
    assert sorted(set(got["as_of"])) == [p["as_of"] for p in body["series"]]  # W 06-30: 01-30 …

    # The command: CSV and Parquet read back equal.
    monkeypatch.setenv("REDIS_URL", redis_test_url)
    monkeypatch.setenv("SITUATION_MIN_CELL", str(MIN_CELL))
    args = ["export", "--from", "2025-12-31", "--step", "month"]
    for s in scopes:
        args += ["--scope", s]
    # (the command runs its own event loop: in a thread beside this test's)
    for fmt in ("csv", "parquet"):
        out = str(tmp_path / f"h.{fmt}")
        assert await asyncio.to_thread(cli.main, [*args, "--format", fmt, "--out", out]) == 0
    csv = pd.read_csv(tmp_path / "h.csv", dtype={"scope": str, "municipality": str})
    parquet = pd.read_parquet(tmp_path / "h.parquet")
    frame = export.frame(cols)
    assert list(parquet.columns) == list(export.COLUMNS)
    assert parquet["value"].astype("Int64").equals(frame["value"])
    assert (parquet["as_of"].astype(str) == frame["as_of"].astype(str)).all()
    assert (csv["value"].astype("Int64") == frame["value"]).fillna(True).all()
    assert (csv["scope"] == frame["scope"]).all()
    assert cli.main(["export", "--scope", "m:999", "--format", "csv", "--out", "x"]) == 2


async def test_a_late_event_revises_the_days_from_its_date_only(history_redis, make_client):
    """Runs last: it feeds the held-back events into the module's history."""
    r, feed_late = history_redis
    c = await make_client()
    w = redis_reader.read_span(r)[1]
    query = {"from": "2026-05-01", "to": published(w)}
    before = (await (await c.get("/api/v1/picture/history", params=query, headers=AUTH)).json())[
        "series"
    ]
    cache = c.server.app[HISTORY]
    done = cache.suppressed_days
    feed_late()
    await cache.refresh()
    # The fixed cadence: nothing of the late events is published while W stays.
    held = (await (await c.get("/api/v1/picture/history", params=query, headers=AUTH)).json())[
        "series"
    ]
    assert held == before and cache.suppressed_days == done
    r.set(keys.WATERMARK, (dt.date.fromisoformat(w) + dt.timedelta(days=1)).isoformat())
    await cache.refresh()  # W moved on: the revisions and the day W are published
    revised = cache.suppressed_days - done
    after = (await (await c.get("/api/v1/picture/history", params=query, headers=AUTH)).json())[
        "series"
    ]
    assert [p["as_of"] for p in after] == [p["as_of"] for p in before]
    changed = [a["as_of"] for a, b in zip(after, before, strict=True) if a != b]
    assert changed and min(changed) >= LATE_FROM
    # The days revised, and the two new days (W, now published, and the new W).
    assert 0 < revised <= day(after[-1]["as_of"]) - day(LATE_FROM) + 1 + 2
    for on in (changed[0], "2026-05-10", after[-2]["as_of"]):
        point = next(p for p in after if p["as_of"] == on)
        assert cells_of(point) == cells_of(reference(r, on)["all"]), on
    assert set(before[0]["indicators"]) == set(INDICATORS)


async def test_the_background_refresh_rests_so_that_it_takes_at_most_its_share():
    from tilannekuva.api.history import HistoryCache

    class Busy(HistoryCache):
        async def refresh(self, **kw):
            ticks.append(ticks[-1] + spent.pop(0))  # the clock moves while it works

        async def warm(self):
            return None

    async def sleep(seconds):
        rests.append(seconds)
        if len(rests) == 2:
            raise asyncio.CancelledError

    ticks, rests, spent = [0.0], [], [1.5, 0.01]
    cache = Busy(None, 5, share=0.25, clock=lambda: ticks[-1])
    with pytest.raises(asyncio.CancelledError):
        await cache.run(2.0, sleep=sleep)
    cache.close()
    # 1.5 s of work (a catch-up): 4.5 s of rest; 10 ms (live): the period
    assert rests == [4.5, 2.0]


async def test_while_the_cache_rests_answers_are_of_the_day_last_published(
    history_redis, make_client
):
    """After a costly refresh (a catch-up) the present and a history's default end stay
    on the day last published for the rest (tilannekuva/api/history.py, HOLD_FROM_S),
    though W moved; a day asked for by name is answered all the same."""
    from tilannekuva.api.history import HOLD_FROM_S

    r, _ = history_redis
    c = await make_client()
    cache = c.server.app[HISTORY]
    _, w = redis_reader.read_span(r)
    before = published(w)

    class Clock:
        t, step = 100.0, 0.0

        def __call__(self) -> float:
            self.t += self.step
            return self.t

    clock = Clock()
    cache.clock = clock
    try:
        clock.step = HOLD_FROM_S
        await cache.refresh()  # a refresh that took HOLD_FROM_S
        clock.step = 0.0
        assert cache.resting()
        moved = (dt.date.fromisoformat(w) + dt.timedelta(days=2)).isoformat()
        r.set(keys.WATERMARK, moved)
        present = await (await c.get("/api/v1/picture", headers=AUTH)).json()
        assert present["as_of"] == before
        body = await (await c.get("/api/v1/areas/33100/history", headers=AUTH)).json()
        assert body["last_day"] == before and body["series"][-1]["as_of"] == before
        named = await c.get("/api/v1/picture", params={"as_of": published(moved)}, headers=AUTH)
        assert named.status == 200 and (await named.json())["as_of"] == published(moved)
        # that request refreshed (cheaply): the present moves on
        present = await (await c.get("/api/v1/picture", headers=AUTH)).json()
        assert present["as_of"] == published(moved)
    finally:
        r.set(keys.WATERMARK, w)
        await cache.refresh()
