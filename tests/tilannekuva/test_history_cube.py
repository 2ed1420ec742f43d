"""The history's pure parts (series days, the cube, whole-picture suppression per day)
and the history cache over the real Redis (db 15 of infra/up's server).

The histories are written through the real sink (:class:`sinks.redis_sink.RedisSink`:
the worker's Lua scripts fill Redis) and kept in memory with the same algebra
(:class:`models.history.History`), the reference every value read back is compared with.
The tests that use Redis are marked ``integration`` by tests/conftest.py.
"""

from __future__ import annotations

import bisect
import datetime as dt
import os
import random
import sys
import threading

import numpy as np
import pytest
import redis.asyncio as aioredis

from models.areas import reference_areas
from models.contract import GROUPS, INDICATORS
from models.history import History
from models.publication import keysums_of, publish_picture
from models.suppression import suppress
from sinks import keys, redis_reader
from sinks.redis_sink import RedisSink
from tilannekuva.api.cube import (
    FIELDS,
    HIDDEN,
    KEYED,
    Cube,
    Layout,
    cells,
    publish_rows,
    raw_picture,
    suppress_rows,
)
from tilannekuva.api.history import (
    BACKGROUND_NICE,
    READ_LUA,
    HistoryCache,
    Snapshot,
    series,
    window_start,
)
from tilannekuva.api.series import (
    DEFAULT_SPAN_DAYS,
    BadRequest,
    parse_history_query,
    series_days,
)

D = dt.date.fromisoformat
MIN_CELL = 5
# A few busy areas; every other reference area is known and empty.
BUSY = [("33100", "837"), ("33200", "837"), ("33500", "837"), ("01300", "092"), ("28100", "609")]


def o(text: str) -> int:
    return D(text).toordinal()


def isos(days: list[int]) -> list[str]:
    return [dt.date.fromordinal(d).isoformat() for d in days]


# --------------------------------------------------------------------------- series days


def test_series_days_by_day_week_month():
    assert isos(series_days(o("2026-06-28"), o("2026-06-30"), "day")) == [
        "2026-06-28",
        "2026-06-29",
        "2026-06-30",
    ]
    # Every 7th day counting back from to; the first may be after from.
    assert isos(series_days(o("2026-06-01"), o("2026-06-30"), "week")) == [
        "2026-06-02",
        "2026-06-09",
        "2026-06-16",
        "2026-06-23",
        "2026-06-30",
    ]
    # The day of the month of to, clamped to each month's end (not carried over).
    assert isos(series_days(o("2023-12-01"), o("2024-03-31"), "month")) == [
        "2023-12-31",
        "2024-01-31",
        "2024-02-29",
        "2024-03-31",
    ]
    assert isos(series_days(o("2025-01-30"), o("2025-05-30"), "month")) == [
        "2025-01-30",
        "2025-02-28",
        "2025-03-30",
        "2025-04-30",
        "2025-05-30",
    ]
    assert isos(series_days(o("2025-12-15"), o("2026-01-15"), "month")) == [
        "2025-12-15",
        "2026-01-15",
    ]
    assert series_days(o("2026-06-30"), o("2026-06-30"), "month") == [o("2026-06-30")]
    assert series_days(o("2026-06-30"), o("2026-06-29"), "week") == []
    with pytest.raises(BadRequest, match="step"):
        series_days(1, 2, "year")


@pytest.mark.parametrize("step", ["day", "week", "month"])
def test_series_ascends_and_ends_on_to(step):
    rng = random.Random(step)
    for _ in range(200):
        start = rng.randint(o("2020-01-01"), o("2026-01-01"))
        end = start + rng.randint(0, 900)
        days = series_days(start, end, step)
        assert days and days[-1] == end and days == sorted(set(days))
        assert days[0] >= start
        gap = {"day": 1, "week": 7, "month": 31}[step]
        assert days[0] - start < gap  # nothing more fits before the first point


def test_history_query_defaults_and_errors():
    first, last = o("2023-07-01"), o("2026-06-30")
    q = parse_history_query({}, first, last)
    assert q.days[-1] == last and q.days[0] == last - DEFAULT_SPAN_DAYS and len(q.days) == 365
    assert q.indicators == INDICATORS and q.step == "day"
    # from = to − 364, clamped to the first day of data.
    q = parse_history_query({"to": "2023-08-01"}, first, last)
    assert q.days[0] == first and q.days[-1] == o("2023-08-01")
    q = parse_history_query({"from": "2026-06-01", "step": "week"}, first, last)
    assert isos(q.days) == ["2026-06-02", "2026-06-09", "2026-06-16", "2026-06-23", "2026-06-30"]
    assert parse_history_query({"indicators": "children"}, first, last).indicators == ("children",)
    for query, reason in [
        ({"from": "2026-6-1"}, "from must be a date"),
        ({"to": "2026-02-30"}, "to must be a date"),
        ({"to": "20260630"}, "to must be a date"),
        ({"from": "2023-06-30"}, "outside the history"),
        ({"to": "2026-07-01"}, "outside the history"),
        ({"from": "2026-06-02", "to": "2026-06-01"}, "is after to"),
        ({"step": "year"}, "step must be one of"),
        ({"indicators": "families,kids"}, "unknown indicator 'kids'"),
        ({"indicators": ""}, "unknown indicator ''"),
    ]:
        with pytest.raises(BadRequest, match=reason):
            parse_history_query(query, first, last)
    # While the cache rests (a catch-up), `to` defaults to the day last published; a
    # later `to`, or a `from` after that day, still asks for days up to W − 1.
    held = last - 3
    assert parse_history_query({}, first, last, held).days[-1] == held
    assert parse_history_query({"to": "2026-06-30"}, first, last, held).days[-1] == last
    assert parse_history_query({"from": "2026-06-29"}, first, last, held).days == [last - 1, last]
    assert parse_history_query({}, first, last, last + 4).days[-1] == last
    # No data yet: an empty series without dates, a 400 with one.
    assert parse_history_query({}, None, None).days == []
    with pytest.raises(BadRequest, match="no data yet"):
        parse_history_query({"from": "2026-01-01"}, None, None)


# --------------------------------------------------------------------------- the cube


class SinkHistory:
    """Family histories written to Redis through the real sink, as the worker writes
    them (``apply_history.lua`` from a day on, ``apply_contribution.lua`` for the present
    at W, ``raise_watermark.lua`` for W and the first day), and the same histories in
    memory (``history``), the reference algebra the tests compare with."""

    def __init__(self, client) -> None:
        self.client = client  # a redis.Redis on the test database
        self.sink = RedisSink(client).setup()
        self.history = History()
        self.names: set[str] = set()
        self.w: int | None = None

    def write(self, family: str, since: int, segments: list[list], flush: bool = True) -> None:
        """One family's history from ``since`` on and, once W is known, its present."""
        self.history.write(family, since, segments)
        self.names.add(family)
        self.sink.write_history([(family, since, segments)])
        if self.w is not None:
            self.sink.write([(family, self.contribution(family), None)])
        if flush:
            self.sink.flush()

    def span(self, first: str, last: str) -> None:
        """The first day of data and W, and every family's contribution at W."""
        self.sink.raise_watermark(first)
        self.sink.raise_watermark(last)
        self.w = D(last).toordinal()
        self.sink.write([(f, self.contribution(f), None) for f in sorted(self.names)])
        self.sink.flush()

    def contribution(self, family: str) -> dict | None:
        """The family's contribution at W (as :func:`models.picture.contribution` makes
        it): its history value on W, the group counted as ``g<group>``."""
        stored = self.history.families.get(family, [])
        i = bisect.bisect_right([s[0] for s in stored], self.w) - 1
        if i < 0 or stored[i][1] is None:
            return None
        v = stored[i][1]
        counts = dict(zip(INDICATORS, v[2 : 2 + len(INDICATORS)], strict=True))
        if v[2 + len(INDICATORS)]:
            counts[f"g{v[2 + len(INDICATORS)]}"] = 1
        due = stored[i + 1][0] if i + 1 < len(stored) else None
        return {"area": v[0], "municipality": v[1], "counts": counts, "due": due}


def random_family(
    rng: random.Random, areas: list[tuple[str, str]], start: int, end: int, from_start=False
):
    """``(since, segments)`` of a plausible family living in ``areas`` between days
    (from ``start`` on with ``from_start``)."""
    day = start if from_start else rng.randint(start, end - 5)
    segments, area = [], rng.choice(areas)
    while day <= end:
        counts = [
            1,
            rng.randint(1, 3),
            rng.random() < 0.2,
            rng.random() < 0.1,
            rng.random() < 0.1,
            rng.random() < 0.05,
            rng.choice([0, 0, 0, 1, 2]),
            rng.choice([0, 0, 1, 3]),
        ]
        assert len(counts) == len(INDICATORS)
        if rng.random() < 0.1:
            area = rng.choice(areas)
        segments.append([day, [area[0], area[1], *map(int, counts), rng.randint(1, 10)]])
        day += rng.randint(3, 40)
    if rng.random() < 0.2:
        segments.append([day, None])
    return segments[0][0], segments


@pytest.fixture
def hist(redis_client) -> SinkHistory:
    """An empty test database (flushed before and after) and a sink writing to it."""
    return SinkHistory(redis_client)


@pytest.fixture
async def aredis(redis_test_url, redis_client):
    """A ``redis.asyncio.Redis`` on the same test database, for the history cache."""
    client = aioredis.from_url(redis_test_url)
    yield client
    await client.aclose()


def fill(r: SinkHistory, n: int, start: int, end: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    for f in range(n):
        since, segments = random_family(rng, BUSY, start, end)
        r.write(f"f{f}", since, segments, flush=False)
    r.span(dt.date.fromordinal(start).isoformat(), dt.date.fromordinal(end).isoformat())


def layout_of(r: SinkHistory) -> Layout:
    areas = {pc: a["municipality"] for pc, a in reference_areas().items()}
    return Layout.of(areas | dict(BUSY))


def present(r: SinkHistory, layout: Layout, day: int) -> np.ndarray:
    """Every scope's values on ``day`` (the present when ``day`` is W)."""
    out = np.zeros((len(layout.scopes), len(KEYED)), dtype=np.int64)
    for i, scope in enumerate(layout.scopes):
        for f, v in r.history.on(scope, day, keys=True).items():
            out[i, KEYED.index(f)] = v
    return out


def cube_of(r: SinkHistory, layout: Layout, names: list[str]) -> Cube:
    """A cube of the hashes ``names`` read from Redis with the cache's plain read."""
    cube = Cube(layout)
    replies = r.client.register_script(READ_LUA)(keys=names, args=[])
    cube.apply(zip(names, replies, strict=True))
    return cube


def test_cube_values_are_the_history_on_every_day(hist):
    r = hist
    start, end = o("2025-01-01"), o("2025-06-30")
    fill(r, 120, start, end)
    layout = layout_of(r)
    # The present the sink keeps (tk:agg:*) is the history on W: the cache's anchor.
    for scope in layout.scopes:
        got = {k.decode(): int(v) for k, v in r.client.hgetall(keys.scope(scope)).items()}
        assert {f: v for f, v in got.items() if v} == r.history.on(scope, end, keys=True), scope
    lo = start + 40  # the window starts inside the history, anchored on the present
    cube = cube_of(r, layout, Cube(layout).keys(lo, end))
    values, base = cube.values(lo, end, present(r, layout, end))
    origin = lo // keys.HIST_BLOCK * keys.HIST_BLOCK
    assert (base == present(r, layout, origin - 1)).all()
    assert values.shape == (end - lo + 1, len(layout.scopes), len(KEYED))
    for scope in ("all", "m:837", "a:33100", "a:01300", "a:01200"):
        i = layout.index[scope]
        for day in range(lo, end + 1):
            want = r.history.on(scope, day, keys=True)
            got = {f: int(v) for f, v in zip(KEYED, values[day - lo, i], strict=True) if v}
            assert got == want, (scope, day)
    # Scattered days from their own blocks and the totals.
    days = [start, start + 3, start + 33, lo + 1, end]
    cube2 = cube_of(r, layout, Cube(layout).keys_of_blocks({d // keys.HIST_BLOCK for d in days}))
    on = cube2.values_on(days)
    for k, day in enumerate(days):
        for scope in ("all", "a:33200"):
            want = r.history.on(scope, day, keys=True)
            got = {f: int(v) for f, v in zip(KEYED, on[k, layout.index[scope]], strict=True) if v}
            assert got == want, (scope, day)


def test_cube_update_tells_whether_content_moved():
    layout = Layout.of(dict(BUSY))
    cube = Cube(layout)
    key = keys.history("a:33100", 23093)
    assert cube.update(key, "d1", ["families:738980", "1"])
    assert not cube.update(key, "d2", ["families:738980", "1"])  # same content, new digest
    assert cube.digests[key] == "d2"
    assert cube.update(key, "d3", ["families:738980", "2"])
    assert cube.update(key, "", [])  # gone
    assert not cube.update("tk:hist:a:99999:1", "x", ["families:1", "1"])  # not in the layout
    assert not cube.apply([(key, b"")])  # '' = unchanged


def test_day_suppressed_as_the_whole_picture_of_picture_on(hist):
    """raw_picture → suppress → packed rows → cells gives exactly suppress(picture_on)."""
    r = hist
    start, end = o("2025-01-01"), o("2025-03-31")
    fill(r, 60, start, end, seed=4)
    # A family without a group: on its days the groups do not add up and are dropped.
    r.write("nogroup", start + 30, [[start + 30, ["33100", "837", 1, 1, 0, 0, 0, 0, 0, 0, 0]]])
    layout = layout_of(r)
    cube = cube_of(r, layout, Cube(layout).keys(start, end))
    days = [start + 5, start + 29, start + 31, end]
    values = cube.values(start, end, present(r, layout, end))[0][[d - start for d in days]]
    shown, groups = suppress_rows(values, layout, MIN_CELL)
    published, groups2 = publish_rows(values, layout, MIN_CELL)
    assert groups.tolist() == groups2.tolist() == [True, True, False, False]
    assert ((published == HIDDEN) == (shown == HIDDEN)).all()
    assert (published != shown).any()  # perturbed, yet never more than 2 away
    assert (np.abs(published - shown) <= 2).all()
    scopes = list(layout.scopes)
    history = {s: {d: r.history.on(s, d, keys=True) for d in days} for s in scopes}
    areas = dict(layout.areas)
    for k, day in enumerate(days):
        pic = redis_reader.picture_on(history, day, areas, "x")
        assert raw_picture(values[k], layout, "x") == pic
        want = suppress(pic, MIN_CELL)
        pub = publish_picture(want, {s: keysums_of(history[s][day]) for s in scopes}, MIN_CELL)
        for scope, exp, exp_pub in [
            ("all", want["all"], pub["all"]),
            ("m:837", want["municipalities"]["837"], pub["municipalities"]["837"]),
            ("a:33100", want["areas"]["33100"], pub["areas"]["33100"]),
            ("a:01200", want["areas"]["01200"], pub["areas"]["01200"]),
        ]:
            ind, grp, sup = cells(shown[k, layout.index[scope]].tolist(), bool(groups[k]))
            assert ind == exp["indicators"]
            assert grp == exp.get("service_need_groups")
            assert sup == exp["suppressed"]
            # The array path publishes what the cell-by-cell reference does.
            ind, grp, sup = cells(published[k, layout.index[scope]].tolist(), bool(groups[k]))
            assert (ind, grp, sup) == (
                exp_pub["indicators"],
                exp_pub.get("service_need_groups"),
                exp_pub["suppressed"],
            )


def test_cells_limits_to_the_indicators_asked_and_keeps_groups():
    row = [30, 50, HIDDEN, 0, 7, HIDDEN, 0, 9] + [10, 10, 10, HIDDEN, HIDDEN, 0, 0, 0, 0, 0]
    ind, grp, sup = cells(row, True, ("children", "families_child_welfare"))
    assert ind == {"children": 50, "families_child_welfare": None}
    assert grp == {"1": 10, "2": 10, "3": 10, "4": None, "5": None} | {
        str(i): 0 for i in range(6, 11)
    }
    assert sup == ["families_child_welfare", "service_need_groups.4", "service_need_groups.5"]
    assert len(GROUPS) == 10


def test_window_start_is_block_aligned_and_long_enough():
    for last in range(800_000, 800_100):
        lo = window_start(0, last, 1100)
        assert lo % keys.HIST_BLOCK == 0 and last - lo + 1 >= 1100 and last - lo + 1 < 1100 + 32
    assert window_start(799_990, 800_000, 1100) == 799_990


def test_snapshot_carry_keeps_unchanged_days_only():
    layout = Layout.of(dict(BUSY[:1]))
    values = np.zeros((10, len(layout.scopes), len(FIELDS)), dtype=np.int64)
    old = Snapshot.of(layout, 100, 109, values)
    old.ready[:] = [True] * 8 + [False] * 2
    old.shown[:] = 7
    newer = values.copy()
    newer[5:, 0, 0] = 1  # a late event from day 105 on
    extended = np.concatenate([newer, newer[-1:]])  # and W moved to 110
    new = Snapshot.of(layout, 100, 110, extended)
    must = new.carry(old)
    assert new.ready.tolist() == [True] * 5 + [False] * 6
    assert (new.shown[:5] == 7).all()
    assert sorted(must) == [5, 6, 7, 10]  # were ready and changed; the new day
    assert Snapshot.of(Layout.of({}), 100, 110, extended[:, :7]).carry(old) == []


# --------------------------------------------------------------------------- the cache


async def test_cache_suppresses_again_only_the_days_a_late_event_changed(hist, aredis):
    r = hist
    start, end = o("2025-01-01"), o("2025-04-30")
    fill(r, 80, start, end, seed=7)
    cache = HistoryCache(aredis, MIN_CELL, window_days=60, cadence=False)
    try:
        snap = await cache.refresh()
        assert snap.last == end and snap.first == window_start(start, end, 60)
        await cache.warm()
        assert snap.ready.all() and cache.suppressed_days == len(snap.values)
        # Nothing moved: the same snapshot, nothing fetched again.
        fetched = cache.fetched_hashes
        assert await cache.refresh() is snap and cache.fetched_hashes == fetched
        # A late event: a family counted on 10 days, from 20 days before W.
        late = end - 20
        value = ["33100", "837", 1, 2, 0, 1, 0, 0, 1, 0, 4]
        assert len(value) == 3 + len(INDICATORS)
        r.write("late", late, [[late, value], [late + 10, None]])
        before = cache.suppressed_days
        new = await cache.refresh()
        changed = int((~(new.values == snap.values).all(axis=(1, 2))).sum())
        assert changed == 10
        assert cache.suppressed_days - before == changed  # only those, before publishing
        assert new.ready.all()
        # Every day equals suppressing its whole picture now.
        shown, groups = publish_rows(new.values, new.layout, MIN_CELL)
        assert (shown == new.shown).all() and (groups == new.groups).all()
    finally:
        cache.close()


async def test_cache_answers_days_before_the_window_and_keeps_them(hist, aredis):
    r = hist
    start, end = o("2024-09-01"), o("2025-03-31")
    fill(r, 60, start, end, seed=9)
    cache = HistoryCache(aredis, MIN_CELL, window_days=40)
    try:
        days = [start, start + 45, start + 100, end - 50, end - 1, end]
        layout, shown, groups = await cache.pictures(days)
        assert cache.snapshot.first > start + 100  # three of the days are older
        scopes = list(layout.scopes)
        history = {s: {d: r.history.on(s, d, keys=True) for d in days} for s in scopes}
        for k, day in enumerate(days):
            pic = redis_reader.picture_on(history, day, dict(layout.areas), None)
            keysums = {s: keysums_of(history[s][day]) for s in scopes}
            want = publish_picture(suppress(pic, MIN_CELL), keysums, MIN_CELL)
            ind, grp, sup = cells(shown[k, layout.index["a:33100"]].tolist(), bool(groups[k]))
            assert (ind, grp, sup) == (
                want["areas"]["33100"]["indicators"],
                want["areas"]["33100"].get("service_need_groups"),
                want["areas"]["33100"]["suppressed"],
            ), day
        done = cache.suppressed_days
        again = await cache.pictures(days)
        assert cache.suppressed_days == done  # older days held, window days ready
        assert (again[1] == shown).all()
        points = series(days, shown[:, layout.index["all"]], groups, ("families",))
        assert [p["as_of"] for p in points] == isos(days)
        assert all(list(p["indicators"]) == ["families"] for p in points)
    finally:
        cache.close()


async def test_cache_without_data_holds_nothing(aredis):
    cache = HistoryCache(aredis, MIN_CELL)  # an empty database
    try:
        assert await cache.refresh() is None
        assert await cache.pictures([o("2026-01-01")]) is None
    finally:
        cache.close()


# --------------------------------------------------------------------------- export


def test_export_without_pyarrow_says_which_extra(monkeypatch, capsys, tmp_path):
    from tilannekuva import cli, export

    real = export.importlib.util.find_spec
    monkeypatch.setattr(
        export.importlib.util, "find_spec", lambda n, *a: None if n == "pyarrow" else real(n, *a)
    )
    out = str(tmp_path / "x.parquet")
    assert cli.main(["export", "--format", "parquet", "--out", out]) == 2
    assert capsys.readouterr().err == (
        "tilannekuva export needs pyarrow: pip install 'tilannekuva[export]'\n"
    )


def test_export_rows_are_tidy():
    from tilannekuva.export import COLUMNS, tidy

    layout = Layout.of({"33100": "837"})
    shown = np.full((2, len(layout.scopes), len(FIELDS)), 7, dtype=np.int32)
    shown[1, layout.index["a:33100"], 1] = HIDDEN
    cols = tidy(
        [o("2026-06-29"), o("2026-06-30")],
        ["a:33100", "all"],
        layout,
        shown,
        np.array([False, True]),
        ("families", "children"),
    )
    assert list(cols) == list(COLUMNS)
    rows = list(zip(*cols.values(), strict=True))
    assert rows[0] == ("2026-06-29", "area", "33100", "837", "families", 7, False)
    assert rows[3] == ("2026-06-30", "area", "33100", "837", "children", None, True)
    assert rows[4][4] == "service_need_groups.1"  # the groups on the day that has them
    assert len(rows) == 2 * (2 + 2 + 10) and rows[-1][1:4] == ("all", "all", None)


async def test_refresh_finds_changes_in_older_blocks(hist, aredis):
    """Totals catch a late change that moves an older block's total at once; one that
    opens and closes inside an older block is caught by the next full pass."""
    r = hist
    start, end = o("2024-01-01"), o("2025-02-28")
    fill(r, 40, start, end, seed=11)
    cache = HistoryCache(aredis, MIN_CELL, window_days=300, full_every=3, cadence=False)
    try:
        snap = await cache.refresh()  # tick 1 (every block is new: all read)
        old_block = snap.first // keys.HIST_BLOCK + 1  # far from the recent blocks
        d = old_block * keys.HIST_BLOCK + 2
        value = ["33100", "837", 1, 2, 0, 0, 0, 0, 0, 0, 4]
        a = layout_of(r).index["a:33100"]

        r.write("inside", d, [[d, value], [d + 3, None]])  # opens and closes in the block
        snap = await cache.refresh()  # tick 2: not a full pass
        assert int(snap.values[d - snap.first, a, 0]) == r.history.on("a:33100", d)["families"] - 1

        r.write("from-then-on", d + 10, [[d + 10, value]])  # moves the block's total
        snap = await cache.refresh()  # tick 3: a full pass anyway; check both
        for day in (d, d + 10, end):
            want = r.history.on("a:33100", day)["families"]
            assert int(snap.values[day - snap.first, a, 0]) == want, day

        r.write("later", d + 20, [[d + 20, value]])
        snap = await cache.refresh()  # tick 4: the totals moved → the block is read
        assert (
            int(snap.values[d + 20 - snap.first, a, 0])
            == r.history.on("a:33100", d + 20)["families"]
        )
    finally:
        cache.close()


async def test_refresh_falls_back_to_the_totals_when_the_present_disagrees(hist, aredis):
    r = hist
    start, end = o("2025-01-01"), o("2025-04-30")
    fill(r, 40, start, end, seed=13)
    # A present the history does not have (a writer outside the sink's transaction).
    for k in (keys.area("33100"), keys.ALL, keys.municipality("837")):
        assert r.client.hexists(k, "families")
        r.client.hincrby(k, "families", 1)
    cache = HistoryCache(aredis, MIN_CELL, window_days=60, cadence=False)
    try:
        snap = await cache.refresh()
        layout = layout_of(r)
        for day in (snap.first, end):
            assert (snap.values[day - snap.first] == present(r, layout, day)).all()
    finally:
        cache.close()


class SteppingClock:
    """A monotonic clock that moves ``step`` before every reading (a refresh reads it as
    it begins and ends: its cost), or only when moved by hand (``step`` 0)."""

    def __init__(self):
        self.t, self.step = 100.0, 0.0

    def __call__(self) -> float:
        self.t += self.step
        return self.t


async def test_after_a_costly_refresh_answers_take_the_published_day_for_the_rest(hist, aredis):
    """A catch-up: W moves every second and each refresh suppresses the whole window
    again. After a refresh that took HOLD_FROM_S or more, the day answers are of stays
    the published one for three times its cost (REFRESH_SHARE 0.25); a cheap refresh
    is never held back."""
    from tilannekuva.api.history import HOLD_FROM_S

    r = hist
    start, end = o("2025-01-01"), o("2025-04-30")
    fill(r, 40, start, end, seed=5)
    clock = SteppingClock()
    cache = HistoryCache(aredis, MIN_CELL, window_days=60, clock=clock)
    try:
        await cache.refresh()
        assert not cache.resting() and cache.published(start, end + 3) == end + 3
        clock.step = HOLD_FROM_S  # a refresh that took HOLD_FROM_S
        await cache.refresh()
        clock.step = 0.0
        assert cache.refresh_s == HOLD_FROM_S and cache.resting()
        # W moved on to end + 4 (published end + 3); the snapshot published end − 1
        assert cache.published(start, end + 3) == end - 1
        assert cache.published(start, end - 5) == end - 5  # never later than asked
        assert cache.published(start, None) is None
        clock.t += 3 * HOLD_FROM_S - 0.1  # REFRESH_SHARE 0.25: a rest of three times
        assert cache.resting()
        clock.t += 0.2
        assert not cache.resting() and cache.published(start, end + 3) == end + 3
        clock.step = HOLD_FROM_S * 0.9
        await cache.refresh()
        clock.step = 0.0
        assert not cache.resting()
    finally:
        cache.close()


async def test_with_the_cadence_a_snapshot_is_taken_only_when_w_moves_on(hist, aredis):
    """The fixed cadence (docs/disclosure.md): a late event is held back until W moves
    on, then published with everything else of that moment."""
    r = hist
    start, end = o("2025-01-01"), o("2025-04-30")
    fill(r, 40, start, end, seed=17)
    times = iter(f"2026-01-0{i}T00:00:00Z" for i in range(1, 9))
    cache = HistoryCache(aredis, MIN_CELL, window_days=60, now=lambda: next(times))
    try:
        snap = await cache.refresh()
        assert snap.published_at == "2026-01-01T00:00:00Z"
        a = layout_of(r).index["a:33100"]
        late = end - 20
        r.write("late", late, [[late, ["33100", "837", 1, 2, 0, 0, 0, 0, 0, 0, 4]]])
        assert await cache.refresh() is snap  # W stays: nothing new is published
        assert (
            int(snap.values[late - snap.first, a, 0])
            == r.history.on("a:33100", late)["families"] - 1
        )
        r.span(dt.date.fromordinal(start).isoformat(), dt.date.fromordinal(end + 1).isoformat())
        moved = await cache.refresh()
        assert moved is not snap and moved.last == end + 1
        assert moved.published_at == "2026-01-02T00:00:00Z"
        for day in (late, end):
            want = r.history.on("a:33100", day)["families"]
            assert int(moved.values[day - moved.first, a, 0]) == want, day
    finally:
        cache.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a thread's own nice is Linux's")
def test_the_suppression_thread_yields_the_cpu_and_the_caller_keeps_its_priority():
    """The history's suppression runs at BACKGROUND_NICE on a thread of its own; the
    event loop's thread (answering requests) keeps the priority it had."""

    def nice() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    before = nice()
    cache = HistoryCache(None, 10)
    try:
        assert cache.executor.submit(nice).result() == max(before, BACKGROUND_NICE)
    finally:
        cache.close()
    assert nice() == before
