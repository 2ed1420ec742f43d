"""The situation page in a real browser: Debian's Chromium driven by Playwright, against
``tilannekuva demo`` (its real embedded Redis; no trickle, so the picture holds still
but for the events a test appends to its ``--events`` file). Screenshots of the main
views go to ``var/page/``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from models import hetu
from tilannekuva.api.handlers import STATIC_DIR

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "var" / "page"
TOKEN = "page-test-token-0123456789"
CHROMIUM = "/usr/bin/chromium"
# As the machine's notes say: without the background-networking flags Chromium tries
# to reach Google's hosts, which would show up as requests to another origin.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
MAX_PAGE_BYTES = 1_500_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Demo:
    def __init__(self, tmp: Path):
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.events = tmp / "events.jsonl"
        env = {**os.environ, "SITUATION_API_TOKEN": TOKEN, "SITUATION_PSEUDONYM_KEY": "p" * 32}
        env.pop("REDIS_URL", None)
        self.log = open(tmp / "demo.log", "w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tilannekuva.cli", "demo", "--families", "1500"]
            + ["--port", str(self.port), "--holdback-days", "0", "--events", str(self.events)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )
        deadline = time.monotonic() + 240
        while "is ready" not in Path(self.log.name).read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(Path(self.log.name).read_text()[-3000:])
            time.sleep(0.5)

    def get(self, path: str, token: str | None = TOKEN):
        req = urllib.request.Request(self.base + path)
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def json(self, path: str):
        status, body = self.get(path)
        assert status == 200, (path, status, body[:300])
        return json.loads(body)

    def produce(self, events: list[dict]) -> None:
        with open(self.events, "a") as f:
            for ev in events:
                f.write(json.dumps(ev) + "\n")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    OUT.mkdir(parents=True, exist_ok=True)
    d = Demo(tmp_path_factory.mktemp("page"))
    yield d
    d.stop()


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: infra/up installs Debian's chromium")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Session:
    """One tab, signed in, with every request it made."""

    def __init__(self, browser, demo: Demo, hash_: str = ""):
        self.context = browser.new_context(
            viewport={"width": 1400, "height": 1000}, accept_downloads=True
        )
        self.page: Page = self.context.new_page()
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(f"{demo.base}/{hash_}")
        self.page.fill("#token", TOKEN)
        self.page.click("#sign-in-form button[type=submit]")
        self.page.wait_for_selector("path.area[data-state=shown]", timeout=30_000)

    def close(self):
        self.context.close()


@pytest.fixture()
def session(browser, demo):
    s = Session(browser, demo, "#indicator=families")
    yield s
    assert s.errors == []
    s.close()


def _area_label(page: Page, postcode: str) -> str:
    return page.get_attribute(f'path.area[data-postcode="{postcode}"]', "aria-label")


# --------------------------------------------------------------------------- tests


def test_the_page_and_its_files_are_public_and_the_data_is_not(demo):
    status, body = demo.get("/", token=None)
    assert status == 200 and b"<!doctype html>" in body.lower()
    assert demo.get("/static/app.js", token=None)[0] == 200
    assert demo.get("/static/data/postcode-areas.geojson", token=None)[0] == 200
    assert demo.get("/api/v1/picture", token=None)[0] == 401
    assert demo.get("/api/v1/areas?detail=full", token=None)[0] == 401


def test_the_page_and_its_data_weigh_at_most_1_5_mb():
    files = [
        p
        for p in STATIC_DIR.rglob("*")
        if p.is_file() and p.suffix in {".html", ".js", ".css", ".geojson"}
    ]
    total = sum(p.stat().st_size for p in files)
    print(f"page weight: {total:,} bytes in {len(files)} files")
    assert total <= MAX_PAGE_BYTES


def test_sign_in_draws_the_144_areas_and_keeps_the_token_out_of_urls(browser, demo):
    s = Session(browser, demo)
    try:
        page = s.page
        geo = json.loads((STATIC_DIR / "data" / "postcode-areas.geojson").read_text())
        assert page.locator("path.area").count() == len(geo["features"]) == 144
        assert page.evaluate("sessionStorage.getItem('tilannekuva-token')") == TOKEN
        assert page.evaluate("localStorage.length") == 0
        assert all(TOKEN not in u for u in s.requests)
        assert TOKEN not in page.url
        # Signed out: the token is gone and the dialog asks again.
        page.click("#sign-out")
        expect(page.locator("#sign-in")).to_be_visible()
        assert page.evaluate("sessionStorage.getItem('tilannekuva-token')") is None
        assert s.errors == []
    finally:
        s.close()


def test_a_wrong_token_is_refused_and_asked_again(browser, demo):
    context = browser.new_context()
    page = context.new_page()
    page.goto(demo.base + "/")
    page.fill("#token", "not-the-token")
    page.click("#sign-in-form button[type=submit]")
    expect(page.locator("#token-error")).to_be_visible()
    assert page.locator("path.area[data-state=shown]").count() == 0
    context.close()


def test_suppressed_areas_show_no_number_and_shown_ones_the_apis(session, demo):
    page = session.page
    page.select_option("#measure", "families_social_assistance")
    page.wait_for_function("() => location.hash.includes('families_social_assistance')")
    areas = demo.json("/api/v1/areas?detail=full")
    page.wait_for_function(
        "(w) => document.querySelector('#status').textContent.includes(w)", arg=areas["as_of"]
    )
    hidden = shown = 0
    for item in areas["areas"]:
        pic = item["picture"]
        fam, n = pic["indicators"]["families"], pic["indicators"]["families_social_assistance"]
        sel = f'path.area[data-postcode="{item["area"]}"]'
        if page.locator(sel).count() == 0:
            continue  # an area outside the 144 reference areas
        if fam is None or n is None:
            hidden += 1
            assert page.get_attribute(sel, "data-state") == "hidden"
            assert page.get_attribute(sel, "fill") == "url(#tk-hatch)"
            label = _area_label(page, item["area"])
            assert not re.search(r"\d", label.split(":", 1)[1]), label  # no number at all
        elif fam:
            shown += 1
            assert page.get_attribute(sel, "data-state") == "shown"
            # Intl rounds the exact value of the double half away from zero.
            pct = Decimal(n / fam * 100).quantize(Decimal("0.1"), ROUND_HALF_UP)
            want = f"{pct}".replace(".", ",") + " %"
            assert _area_label(page, item["area"]).endswith(want)
    assert hidden > 0 and shown > 0, (hidden, shown)
    page.screenshot(path=str(OUT / "map-social-assistance.png"), full_page=True)


def test_choosing_an_indicator_recolours_the_map(session):
    page = session.page
    before = page.eval_on_selector_all("path.area", "ps => ps.map(p => p.getAttribute('fill'))")
    page.select_option("#measure", "groups_4_10")
    page.wait_for_function("() => location.hash.includes('groups_4_10')")
    after = page.eval_on_selector_all("path.area", "ps => ps.map(p => p.getAttribute('fill'))")
    assert before != after
    assert "4–10" in page.text_content("#map-measure")


def test_the_slider_shows_a_past_day_equal_to_the_history_api(session, demo):
    page = session.page
    span = demo.json("/api/v1/picture/history?indicators=families&step=month")
    day = (dt.date.fromisoformat(span["last_day"]) - dt.timedelta(days=200)).isoformat()
    offset = (dt.date.fromisoformat(day) - dt.date.fromisoformat(span["first_day"])).days
    page.select_option("#scope", "m:837")
    page.eval_on_selector(
        "#day",
        "(el, v) => { el.value = v; el.dispatchEvent(new Event('input', {bubbles: true})); }",
        str(offset),
    )
    expect(page.locator("#panel-asof")).to_contain_text(day, timeout=15_000)
    assert f"day={day}" in page.url and "scope=m%3A837" in page.url
    hist = demo.json(f"/api/v1/municipalities/837/history?from={day}&to={day}")["series"][0]
    rows = page.eval_on_selector_all(
        "#indicators tbody tr", "rs => rs.map(r => [...r.cells].map(c => c.textContent))"
    )
    shown = [r[1] for r in rows]
    want = [
        "piilotettu" if v is None else f"{v:,}".replace(",", "\u00a0")
        for v in hist["indicators"].values()
    ]
    assert shown == want
    expect(page.locator("#status")).to_contain_text(day)
    page.screenshot(path=str(OUT / "past-day-tampere.png"), full_page=True)


def test_the_panel_lists_the_scopes_family_types_in_words(session, demo):
    page = session.page
    # The demo runs on while the test does: the page's own answer is the one it must show.
    asked = "/api/v1/types?"
    with page.expect_response(lambda r: asked in r.url and "municipality=837" in r.url) as got:
        page.select_option("#scope", "m:837")
    assert "limit=10" in got.value.url
    body = got.value.json()
    assert body["published"] and body["types"], body  # the demo fits a model
    assert body.keys() == demo.json("/api/v1/types?municipality=837&limit=10").keys()
    first = body["types"][0]
    expect(page.locator("#types li").first).to_contain_text(first["description"]["fi"])
    texts = page.eval_on_selector_all("#types li", "ls => ls.map(l => l.textContent)")
    listed = sum(x["families"] for x in body["types"])
    rest = None if body["families"] is None else body["families"] - listed
    assert len(texts) == len(body["types"]) + (0 if rest == 0 else 1)
    if rest:
        assert texts[-1].endswith(f"Perheitä {rest:,}".replace(",", "\u00a0"))
    for text, x in zip(texts, body["types"], strict=False):
        assert text.startswith(x["description"]["fi"]) and f"Ryhmä {x['group']}" in text
    page.screenshot(path=str(OUT / "types-tampere.png"), full_page=True)


def _pp(v: float) -> str:
    """An effect as the English page writes it: signed percentage points."""
    x = round(v * 100, 1)
    return "0.0 pp" if x == 0 else f"{x:+.1f} pp"


def test_the_impact_panel_shows_each_service_as_the_api_answers(browser, demo):
    """A card per service with the API's estimates (or why each is withheld) at 3, 6
    and 12 months, a point per published month of the event study and its reference
    month apart (said in words where it is not −1); choosing a municipality shows its
    entries."""
    s = Session(browser, demo, "#lang=en")
    try:
        page = s.page
        cards = page.locator("#impact article.impact-service")
        body = demo.json("/api/v1/impact")
        expect(cards).to_have_count(len(body["services"]), timeout=20_000)
        assert body["counted_to"], "the demo counts cohorts at each month's end"
        shown = 0
        for svc in body["services"]:
            card = page.locator(f'article[data-service="{svc["service"]}"]')
            for e in svc["estimates"]:
                text = card.locator(f'tr[data-months="{e["months"]}"]').inner_text()
                if e["withheld"]:
                    assert e["withheld"] in text, text
                else:
                    shown += 1
                    assert _pp(e["effect"]) in text and _pp(e["ci_low"]) in text, (text, e)
                    assert f"≥ {e['entries']}" in text
            months = [e for e in svc["event_study"] if e["withheld"] is None]
            assert card.locator(".impact-study g.est circle").count() == len(months)
            if months:  # the reference month, drawn apart
                ref = card.locator(".impact-study circle.reference")
                assert ref.count() == 1
            if svc["reference_month"] != -1:
                note = card.locator(".impact-reference").inner_text()
                assert f"month {svc['reference_month']}" in note, note
        assert shown, "the demo's 1,500 families publish some estimate"
        expect(page.locator("#impact-scope")).to_contain_text(body["counted_to"])
        page.screenshot(path=str(OUT / "impact.png"), full_page=True)
        page.select_option("#scope", "m:837")
        # the demo may be detecting on its history meanwhile: no time limit is the claim
        expect(page.locator("#impact-scope")).to_contain_text("Tampere", timeout=60_000)
        one = demo.json("/api/v1/impact?municipality=837")
        withheld = sum(e["withheld"] is not None for x in one["services"] for e in x["estimates"])
        expect(page.locator("#impact td.withheld")).to_have_count(withheld)
        assert s.errors == []
    finally:
        s.close()


def test_the_trend_takes_any_range(session, demo):
    page = session.page
    w = dt.date.fromisoformat(demo.json("/api/v1/areas")["as_of"])
    start = (w - dt.timedelta(days=30)).isoformat()
    page.fill("#trend-from", start)
    page.dispatch_event("#trend-from", "change")
    page.wait_for_function(
        "(d) => document.querySelector('#trend-table tbody tr td')?.textContent === d", arg=start
    )
    assert page.locator("#trend-table tbody tr").count() == 31  # by day, from … W
    assert f"from={start}" in page.url


def test_an_event_produced_into_the_demo_repaints_its_area(session, demo):
    """Five families move into an area on the day W, and an event of the next day moves
    W on: the day is complete, published (docs/disclosure.md: completed days only), and
    the area is repainted from the stream. Five, so that the published count moves
    whatever the cell keys draw (each value is within 2 of its exact count). The time it
    took is printed, not asserted: a bound of 5 s failed on a CI box busy with worker
    tests beside this one (about 1 s when the machine is idle)."""
    page = session.page
    areas = demo.json("/api/v1/areas")
    published = dt.date.fromisoformat(areas["as_of"])
    w, after = (published + dt.timedelta(days=n) for n in (1, 2))
    target = max(
        (a for a in areas["areas"] if a["families"] and a.get("name")), key=lambda a: a["families"]
    )
    pc, muni = target["area"], target["municipality"]
    before = _area_label(page, pc)
    events = []

    def ev(fam: str, on: dt.date, kind: str, person: str | None, data: dict) -> dict:
        e = {"schema": "register-event/1", "event_id": f"{fam}-{kind}-{person}", "source": "dvv"}
        e |= {"type": kind, "occurred_at": on.isoformat(), "recorded_at": f"{on}T12:00:00+03:00"}
        e["data"] = data
        if person:
            e["person"] = person
        return e

    for i in range(5):
        fam = f"F-page-{pc}-{i}-{time.time_ns()}"
        parent = hetu.make(dt.date(1990, 3, 4), 800 + (time.time_ns() + i) % 90)
        child = hetu.make(dt.date(2020, 5, 6), 800 + (time.time_ns() + i) % 91)
        born = {"parent": "1990-03-04", "child": "2020-05-06"}
        for person, role in ((parent, "parent"), (child, "child")):
            data = {"family": fam, "role": role, "birth_date": born[role]}
            events.append(ev(fam, w, "family.member_added", person, data))
        data = {"family": fam, "postcode": pc, "municipality": muni}
        events.append(ev(fam, w, "family.residence_changed", None, data))
    # The next day begins: a person joins a family that lives nowhere (counts nothing).
    mover = hetu.make(dt.date(1985, 1, 2), 800 + time.time_ns() % 97)
    data = {"family": f"F-page-next-{time.time_ns()}", "role": "parent", "birth_date": "1985-01-02"}
    events.append(ev("F-page-next", after, "family.member_added", mover, data))
    demo.produce(events)
    t0 = time.monotonic()
    page.wait_for_function(
        "([pc, before]) => document.querySelector(`path.area[data-postcode='${pc}']`)"
        ".getAttribute('aria-label') !== before",
        arg=[pc, before],
        timeout=60_000,
    )
    took = time.monotonic() - t0
    now = demo.json(f"/api/v1/areas/{pc}")["indicators"]["families"]
    label = _area_label(page, pc)
    assert label.endswith(f"{now:,}".replace(",", "\u00a0")), (label, now)
    print(f"repainted {pc} {took:.2f} s after the event was appended")
    (OUT / "live-repaint.json").write_text(json.dumps({"postcode": pc, "seconds": took}))


def test_the_csv_equals_the_table_shown(session):
    page = session.page
    page.click("#map-table-box summary")
    with page.expect_download() as info:
        page.click("#map-csv")
    text = Path(info.value.path()).read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    table = page.eval_on_selector_all(
        "#map-table tr", "rs => rs.map(r => [...r.cells].map(c => c.textContent))"
    )
    assert rows == table and len(rows) == 145


def test_keyboard_selects_an_area_and_languages_change_the_labels(session, demo):
    page = session.page
    page.focus('path.area[data-postcode="33100"]')
    page.keyboard.press("Enter")
    expect(page.locator("#panel-title")).to_contain_text("33100 Tampere")
    # The trend lines of the area, its municipality and the six.
    expect(page.locator("#trend svg[role=img]")).to_have_attribute(
        "aria-label", re.compile(r"^33100 .*, Tampere, Kaikki kuusi kuntaa$"), timeout=15_000
    )
    assert page.locator("#trend path.series").count() == 3
    page.screenshot(path=str(OUT / "area-33100-fi.png"), full_page=True)
    page.select_option("#lang", "sv")
    expect(page.locator("h1")).to_have_text("Lägesbild")
    assert "Håkansböle" in page.text_content("#map-table")
    assert page.evaluate("document.documentElement.lang") == "sv"
    page.select_option("#lang", "en")
    expect(page.locator("h1")).to_have_text("Situation picture")
    assert "All six municipalities" in page.text_content("#trend .chart-legend")
    page.screenshot(path=str(OUT / "area-33100-en.png"), full_page=True)


def test_no_request_leaves_the_origin_and_first_paint_is_recorded(browser, demo):
    s = Session(browser, demo)
    try:
        # Signed in: a reload paints from the token kept in the tab.
        s.page.reload()
        s.page.wait_for_function("() => performance.getEntriesByName('tk-map-painted').length > 0")
        painted = s.page.evaluate("performance.getEntriesByName('tk-map-painted')[0].startTime")
        s.page.wait_for_timeout(1000)
        others = [
            u for u in s.requests if not u.startswith(demo.base + "/") and not u.startswith("blob:")
        ]
        assert others == []
        print(f"first paint of the 144 areas: {painted:.0f} ms after navigation")
        (OUT / "first-paint.json").write_text(json.dumps({"ms": painted}))
        s.page.screenshot(path=str(OUT / "overview.png"), full_page=True)
    finally:
        s.close()


def _family(fam: str, day: str, pc: str, muni: str, n: int) -> list[dict]:
    """A new family of a parent and a child resident in ``pc`` from ``day``, the parent
    starting basic social assistance that day."""
    parent = hetu.make(dt.date(1988, 1, 1) + dt.timedelta(days=n), 700 + n % 90)
    child = hetu.make(dt.date(2019, 1, 1) + dt.timedelta(days=n), 700 + n % 91)
    at = f"{day}T12:00:00+03:00"
    base = {"schema": "register-event/1", "occurred_at": day, "recorded_at": at}
    return [
        base
        | {"event_id": f"{fam}-p", "source": "dvv", "type": "family.member_added"}
        | {"person": parent, "data": {"family": fam, "role": "parent", "birth_date": "1988-01-01"}},
        base
        | {"event_id": f"{fam}-c", "source": "dvv", "type": "family.member_added"}
        | {"person": child, "data": {"family": fam, "role": "child", "birth_date": "2019-01-01"}},
        base
        | {"event_id": f"{fam}-r", "source": "dvv", "type": "family.residence_changed"}
        | {"data": {"family": fam, "postcode": pc, "municipality": muni}},
        base
        | {"event_id": f"{fam}-b", "source": "kela", "type": "benefit.started", "person": parent}
        | {"data": {"benefit": "basic_social_assistance", "episode": f"{fam}-e"}},
    ]


def _detected_day(demo) -> float:
    """The demo's ``tk_alerts_detected_day`` (0 before its first detection)."""
    _, body = demo.get("/metrics")
    found = re.search(rb"^tk_alerts_detected_day (\S+)", body, re.M)
    return float(found.group(1)) if found else 0.0


def test_alerts_are_listed_with_their_explanation_and_their_area_marked(browser, demo):
    """Last in the module: it moves W on by 32 days. Ten single parents with social
    assistance move with a child each into a middle-sized area, and an event of the
    next day completes their day (alerts see only published days); once the demo's
    shift detection (the worker's) has caught up on the history, it raises the jump in
    one of the area's series, and the page lists it, ranked by strength, and marks
    the area."""
    areas = demo.json("/api/v1/areas?detail=full")
    w = dt.date.fromisoformat(areas["as_of"])
    # The demo detects on its history's days in the background first (two CPU-minutes);
    # as_of is the last published day.
    published = (w - dt.date(1970, 1, 1)).days
    deadline = time.monotonic() + 600
    while _detected_day(demo) < published:
        assert time.monotonic() < deadline, "the demo's detection never caught up"
        time.sleep(2)
    candidates = [
        a
        for a in areas["areas"]
        if a.get("name")
        and a["families"]
        and 25 <= a["families"] <= 60
        and a["picture"]["indicators"]["families_social_assistance"] is not None
    ]
    target = min(candidates, key=lambda a: a["families"])
    pc, muni = target["area"], target["municipality"]
    later = (w + dt.timedelta(days=31)).isoformat()
    after = (w + dt.timedelta(days=32)).isoformat()
    moved = [ev for n in range(10) for ev in _family(f"F-alert-{pc}-{n}", later, pc, muni, n)]
    # The next day begins: a person joins a family that lives nowhere (counts nothing).
    mover = _family(f"F-alert-next-{pc}", after, pc, muni, 11)[0]
    demo.produce([*moved, mover])
    deadline = time.monotonic() + 60
    mine = []
    while not mine and time.monotonic() < deadline:
        time.sleep(1)
        mine = [a for a in demo.json("/api/v1/alerts")["alerts"] if a["area"] == pc]
    assert mine, f"no alert for {pc}"
    s = Session(browser, demo, "#indicator=families_social_assistance")
    try:
        page = s.page
        expect(page.locator("#alerts li button").first).to_be_visible(timeout=20_000)
        texts = page.eval_on_selector_all("#alerts li button", "bs => bs.map(b => b.textContent)")
        assert any(t.startswith(f"{pc} ") and mine[0]["as_of"] in t for t in texts), texts
        assert "alerted" in page.get_attribute(f'path.area[data-postcode="{pc}"]', "class")
        # Ranked by strength, strongest first.
        shown = page.eval_on_selector_all(
            "#alerts li", "ls => ls.map(l => Number(l.dataset.strength))"
        )
        assert shown == sorted(shown, reverse=True)
        assert len(shown) == len(demo.json("/api/v1/alerts")["alerts"])
        page.click(f"#alerts li button >> text=/^{pc} /")
        expect(page.locator("#panel-title")).to_contain_text(pc)
        page.screenshot(path=str(OUT / "alerts.png"), full_page=True)
        assert s.errors == []
    finally:
        s.close()
