"""The alert backtest (tilannekuva/alerts.py): a planted shift is found after its onset
from what was published by each day, never before it; the command line. The
evaluation's report is in test_alerts_evaluation.py (a module of its own, so that the
two long replays run side by side under xdist)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from models.contract import validate
from models.pseudonym import Pseudonymiser
from tilannekuva import cli
from tilannekuva.alerts import backtest
from tilannekuva.synthetic import synthesize
from tilannekuva.synthetic.dynamics import Shift

ON = dt.date(2025, 9, 1)
# A plant closure in Pori on a flat background: +12 pp of families with an unemployed
# parent, from one day to the next.
PORI = Shift("PORI", "municipality", "609", "609", ON, "step", 0, "up", "unemployment", 12.0)
PAIR = ("m:609", "families_unemployed_parent")


@pytest.fixture(scope="module")
def run():
    synth = synthesize(2000, seed=5, shifts=[PORI])
    pseudo = Pseudonymiser(b"backtest-test-key-0123456789")
    events = [pseudo.event(validate(line)) for line in synth.lines]
    bt = backtest(events, ("cusum", "rise5pp"), min_cell=5)
    return synth, bt


def test_every_day_of_w_is_ticked_and_published(run):
    _, bt = run
    days = bt.series.days
    # every completed day from go-live, also those W skipped; W itself is still filling
    assert days[0] == "2023-07-01" and days[-1] == "2026-06-29"
    assert bt.ticks == len(days)
    table = bt.series.table()
    assert not (table.den[table.scopes.index("all"), 0] != table.den[0, 0]).any()


def test_the_planted_shift_is_found_within_21_days_and_never_before_its_onset(run):
    synth, bt = run
    truth = synth.shifts[0]
    assert truth["planted"]["families_unemployed_parent"] > 8  # what the generator did
    for method in ("cusum", "rise5pp"):
        hits = [a for a in bt.alerts[method] if (a["scope_key"], a["series"]) == PAIR]
        assert all(a["as_of"] >= ON.isoformat() for a in hits), method
    cusum = [a for a in bt.alerts["cusum"] if (a["scope_key"], a["series"]) == PAIR]
    assert cusum, "cusum missed a 12 pp step in Pori"
    first = dt.date.fromisoformat(cusum[0]["as_of"])
    assert (first - ON).days <= 21
    a = cusum[0]
    table = bt.series.table()
    s, t = table.scopes.index(PAIR[0]), table.index((ON - dt.timedelta(days=1)).isoformat())
    before = table.num[s, table.series.index(PAIR[1]), t] / table.den[s, 0, t]
    assert a["observed"]["share"] > before and a["p"] < 0.01 and a["q"] <= 0.05
    assert a["onset"] is not None and abs((dt.date.fromisoformat(a["onset"]) - ON).days) <= 14


def test_alerts_use_only_published_cells(run):
    """Every alert's observed numerator and families are cells the suppressed picture
    showed that day (nothing hidden is disclosed by an alert)."""
    _, bt = run
    table = bt.series.table()
    for method, alerts in bt.alerts.items():
        for a in alerts:
            s = table.scopes.index(a["scope_key"])
            t = table.index(a["as_of"])
            assert a["observed"]["denominator"] == table.den[s, 0, t] >= 20, method
            k = table.series.index(a["series"])
            assert a["observed"]["numerator"] == table.num[s, k, t]


def test_the_command_line(tmp_path, capsys):
    synth = synthesize(150, seed=2, start=dt.date(2026, 2, 1))  # five months: quick
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(synth.lines) + "\n")
    assert cli.main(["alerts", "backtest", str(path), "--method", "nonesuch"]) == 2
    assert "unknown method" in capsys.readouterr().err
    assert cli.main(["alerts", "backtest", str(path), "--method", "rise5pp", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["methods"]) == {"rise5pp"} and out["invalid_lines"] == 0
    # a tick for every completed day from go-live on
    assert out["first_day"] == "2026-02-01" and out["ticks"] == 149
