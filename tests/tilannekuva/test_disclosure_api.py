"""The attacker as a client (issue 17): everything the API lets a dashboard token holder
collect while a stream arrives day by day, against the real Redis (db 15) and the API.

A synthetic history is ingested through the demo's real sink path up to some weeks
before its end; then each remaining day of arrivals (in ``recorded_at`` order, so late
events arrive late) is fed, and after each day the client records every present answer
(the whole picture, the six municipalities, every area with ``?detail=full``) and every
server-sent event. At the end it also records the history of every scope. The
recordings are stacked by published day and handed to the LP attacker
(:func:`tilannekuva.disclosure_attack.interval_attack`): it must find nothing. The same
days as they were published before cell keys (exact, suppressed) must give it plenty.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import numpy as np
import pytest
import redis
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer

from models import publication
from models.contract import GROUPS, INDICATORS
from sinks import redis_reader
from tilannekuva import api, demo
from tilannekuva.api.cube import FIELD_INDEX, FIELDS, HIDDEN, Layout, suppress_rows
from tilannekuva.config import Settings
from tilannekuva.disclosure_attack import interval_attack, shows_groups
from tilannekuva.synthetic import synthesize

TOKEN = "attacker-has-a-dashboard-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MIN_CELL = 5
LIVE_DAYS = 15  # the last days of arrivals (recorded_at), fed one day at a time

pytestmark = pytest.mark.integration


def _recorded_day(line: str) -> str:
    try:
        ev = json.loads(line)
        return str(ev["recorded_at"])[:10]
    except (ValueError, KeyError, TypeError):
        return ""  # malformed lines go with the history


def _row(scopes: dict[str, dict], layout: Layout) -> np.ndarray:
    """The answers of every scope as ``[scope, field]`` (``HIDDEN`` for null)."""
    out = np.zeros((len(layout.scopes), len(FIELDS)), dtype=np.int64)
    for scope, body in scopes.items():
        i = layout.index[scope]
        for f in INDICATORS:
            v = body["indicators"][f]
            out[i, FIELD_INDEX[f]] = HIDDEN if v is None else v
        groups = body.get("service_need_groups") or {}
        for g in GROUPS:
            v = groups.get(g[1:], 0) if groups else 0
            out[i, FIELD_INDEX[g]] = HIDDEN if v is None else v
    return out


async def _present(c: TestClient) -> tuple[str | None, dict[str, dict]]:
    """Every present answer a client can ask for: ``(as_of, {scope: body})``."""
    whole = await (await c.get("/api/v1/picture", headers=AUTH)).json()
    scopes = {"all": whole}
    for code in sorted({"092", "399", "609", "837", "905", "980"}):
        scopes[f"m:{code}"] = await (
            await c.get(f"/api/v1/municipalities/{code}", headers=AUTH)
        ).json()
    listing = await (await c.get("/api/v1/areas", params={"detail": "full"}, headers=AUTH)).json()
    for item in listing["areas"]:
        scopes[f"a:{item['area']}"] = item["picture"]
    return whole["as_of"], scopes


async def _events(resp, into: list[dict]) -> None:
    """Every ``event: area`` of a stream, forever."""
    while True:
        line = (await resp.content.readline()).decode()
        if line.startswith("data: "):
            into.append(json.loads(line[6:]))


async def test_a_client_recording_everything_over_a_month_singles_out_nothing(redis_test_url):
    r = redis.Redis.from_url(redis_test_url)
    r.flushdb()
    ar = aioredis.Redis.from_url(redis_test_url)
    syn = synthesize(500, 23)
    lines = sorted(syn.lines, key=_recorded_day)
    last = max(json.loads(line)["occurred_at"] for line in lines if _recorded_day(line))
    # The last days on which W still moves (registers record late: after the last day of
    # events only revisions arrive, and they are not published while W stays).
    days = sorted({d for line in lines if (d := _recorded_day(line)) and d <= last})
    live = days[-LIVE_DAYS:]
    ingest = demo.Ingest(r, b"attacker-test-key-0123456789")
    ingest.feed([line for line in lines if _recorded_day(line) < live[0]])
    ingest.fit_types(n_types=8)
    settings = Settings(api_token=TOKEN, min_cell=MIN_CELL, redis_url=redis_test_url)
    # Every day W moves to published, however long its refresh takes on a busy machine
    # (no rest after a costly one, as in a catch-up): the most a client can record.
    app = api.make_app(settings, ar, history_refresh_s=None, history_share=None)
    client = TestClient(TestServer(app))
    await client.start_server()
    recorded: dict[str, np.ndarray] = {}  # published day -> every scope's answer
    streamed: list[dict] = []
    try:
        stream = await client.get("/api/v1/stream", headers=AUTH)
        listener = asyncio.ensure_future(_events(stream, streamed))
        layout = Layout.of(redis_reader.known_areas(r))
        for day in live:
            ingest.feed([line for line in lines if _recorded_day(line) == day])
            layout = Layout.of(redis_reader.known_areas(r))
            as_of, scopes = await _present(client)
            row = _row(scopes, layout)
            if as_of in recorded:
                # The fixed cadence: while W stays, every answer is the same.
                assert np.array_equal(recorded[as_of], row), as_of
            recorded[as_of] = row
        await asyncio.sleep(2.5)  # the stream looks at the publication every second
        listener.cancel()
        stream.close()
        # The whole published history of every scope, by day, over the live weeks.
        first_day = min(d for d in recorded if d is not None)
        history: dict[str, list[dict]] = {}
        for scope in layout.scopes:
            path = (
                "/api/v1/picture/history"
                if scope == "all"
                else f"/api/v1/municipalities/{scope[2:]}/history"
                if scope.startswith("m:")
                else f"/api/v1/areas/{scope[2:]}/history"
            )
            body = await (await client.get(path, params={"from": first_day}, headers=AUTH)).json()
            history[scope] = body["series"]
    finally:
        await client.close()
        await ar.aclose()

    # Every streamed area answer is one the API answered on its published day.
    assert streamed, "W moved on: the stream sends the areas"
    for e in streamed:
        i = layout.index[f"a:{e['area']}"]
        if e["as_of"] in recorded:
            assert np.array_equal(_row({f"a:{e['area']}": e}, layout)[i], recorded[e["as_of"]][i])

    # The attacker's days: the history as last published (every day, revised), and each
    # present answer as it was recorded at its moment (a second version of its day).
    hist_days = [p["as_of"] for p in history["all"]]
    published_days = [d for d in recorded if d is not None]
    assert set(published_days) <= set(hist_days) and len(published_days) >= LIVE_DAYS // 2
    stack = np.stack(
        [_row({s: history[s][k] for s in layout.scopes}, layout) for k in range(len(hist_days))]
    )
    moments = np.stack([recorded[d] for d in sorted(d for d in recorded if d is not None)])
    ordinals = [dt.date.fromisoformat(d).toordinal() for d in hist_days]
    exact_hist = redis_reader.read_history(r, list(layout.scopes), ordinals)
    exact = np.zeros((len(ordinals), len(layout.scopes), len(FIELDS)), dtype=np.int64)
    for s, scope in enumerate(layout.scopes):
        for k, on in enumerate(ordinals):
            for f, v in redis_reader.counts_of(exact_hist[scope][on]).items():
                exact[k, s, FIELD_INDEX[f]] = v
    r.flushdb()
    r.close()

    table = publication.table(MIN_CELL)
    for name, published in (("history", stack), ("moments", moments)):
        found = interval_attack(published, shows_groups(published), layout, MIN_CELL, table)
        assert (found.counts, found.changes, found.bounded_counts, found.bounded_changes) == (
            0,
            0,
            0,
            0,
        ), (name, found)
    # The same days published as before cell keys: the attacker has teeth.
    keyed = np.concatenate([exact, np.zeros_like(exact)], axis=2)  # no cell keys needed
    shown, groups = suppress_rows(keyed, layout, MIN_CELL)
    before = interval_attack(shown, groups, layout, MIN_CELL, None, exact=exact)
    assert before.changes > 20, before
    # And what was published is the exact picture perturbed: within 2 of it, where shown
    # (the indicators: a day's groups are published only where they add up everywhere).
    visible = stack != HIDDEN
    visible[..., len(INDICATORS) :] = False
    assert (np.abs(stack[visible] - exact[visible]) <= 2).all()
    assert (stack[visible] != exact[visible]).any()
