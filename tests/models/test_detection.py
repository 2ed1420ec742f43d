"""Shift detection (models/detection.py): the contract of every method, then statistics.

The statistical tests simulate what the detector meets: stocks of families (each family
enters and leaves the stock as a two-state Markov chain, so the share on consecutive
days is nearly the same families), and rolling 30- and 90-day sums of Poisson events,
both with an annual season. Seeds are fixed, so the tests are deterministic; the bounds
are derived from what a valid method must satisfy, so a method that ignored the
autocorrelation or the multiplicity fails them (see each test).
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from scipy import stats

from models.alerts import TrendRule, alert_step
from models.detection import (
    METHODS,
    SERIES,
    Cusum,
    Detector,
    Farrington,
    Level,
    Rise5pp,
    Scores,
    Table,
    _iso,
    _ordinal,
    step,
)
from models.suppression import suppress

FIRST = "2023-01-01"
T = 3 * 365  # three years of daily history

# --------------------------------------------------------------------------- simulation


def sim_stock(rng, n, T=T, p0=0.10, amp=0.02, duration=120.0, t0=None, delta=0.0, planted=None):
    """Daily stocks of ``n`` families (array, one per series): each family enters with a
    seasonal rate and stays ``duration`` days on average, so the share's equilibrium is
    ``p0 + amp·sin(season)``. Where ``planted``, on day ``t0`` about ``delta·n``
    families enter at once and the equilibrium stays ``delta`` higher (a step)."""
    n = np.asarray(n, dtype=int)
    planted = np.zeros(n.shape, bool) if planted is None else planted
    exit_p = 1.0 / duration
    phase = rng.uniform(0, 2 * np.pi, n.shape)
    k = rng.binomial(n, p0)
    out = np.zeros((n.size, T))
    for t in range(T):
        p = p0 + amp * np.sin(2 * np.pi * t / 365.25 + phase)
        if t0 is not None and t >= t0:
            p = np.where(planted, p + delta, p)
            if t == t0:
                k = k + np.where(planted, rng.binomial(n - k, delta / (1 - p + delta)), 0)
        k = k - rng.binomial(k, exit_p) + rng.binomial(n - k, exit_p * p / (1 - p))
        out[:, t] = k
    return out


def sim_window(rng, n, window, rate=0.3, amp=0.2, T=T):
    """Rolling ``window``-day sums of Poisson events, ``rate`` per family per window."""
    n = np.asarray(n, dtype=float)
    phase = rng.uniform(0, 2 * np.pi, n.shape)
    days = np.arange(T + window)[None, :]
    lam = (n * rate / window)[:, None] * (
        1 + amp * np.sin(2 * np.pi * days / 365.25 + phase[:, None])
    )
    c = np.cumsum(rng.poisson(lam), axis=1)
    return (c[:, window:] - c[:, :-window]).astype(float)


def one_series_table(num, n, series="families_social_assistance"):
    """One series over many area scopes: ``num`` (S, T), ``n`` families (S,) or (S, T)."""
    s = num.shape[0]
    den = np.broadcast_to(np.asarray(n, float).reshape(s, -1), (s, num.shape[1])).copy()
    scopes = tuple(f"a:{i:05d}" for i in range(s))
    return Table(FIRST, scopes, ("837",) * s, (series,), num[:, None, :], den)


def mixed_table(rng, s=40, n=300):
    """Every watched series over ``s`` area scopes of ``n`` families (null: no shift)."""
    fam = np.full(s, n)
    num = np.zeros((s, len(SERIES), T))
    for k, name in enumerate(SERIES):
        if name == "child_welfare_notifications_30d":
            num[:, k] = sim_window(rng, fam, 30)
        elif name == "mental_health_visits_90d":
            num[:, k] = sim_window(rng, fam, 90, rate=1.5)
        else:
            num[:, k] = sim_stock(rng, fam, p0=0.05 + 0.03 * k, duration=60.0 + 40 * k)
    scopes = tuple(f"a:{i:05d}" for i in range(s))
    return Table(FIRST, scopes, ("837",) * s, SERIES, num, np.full((s, T), float(n)))


def all_methods():
    return [cls() for cls in METHODS.values()]


@pytest.fixture(scope="module")
def shifted():
    """A table with a clear shift in one scope (a:00001, +12 pp stock from day T−20),
    plus scopes with the same shift that are too small or hidden while it lasts
    (a:00002 … a:00004)."""
    rng = np.random.default_rng(7)
    fam = np.array([400, 400, 12, 400, 400])
    num = sim_stock(rng, fam, p0=0.10, duration=120.0)
    for s in (1, 2, 3, 4):  # the same +12 pp shift everywhere: only a:00001 may alert
        num[s, -20:] += np.round(0.12 * fam[s])
    num[3, -20:] = np.nan  # a:00003: the numerator is hidden
    den = np.repeat(fam[:, None].astype(float), T, axis=1)
    den[4, -20:] = np.nan  # a:00004: the families are hidden
    return one_series_table(num, den)


# --------------------------------------------------------------------------- the contract


@pytest.mark.parametrize("method", all_methods(), ids=lambda m: m.name)
def test_scores_have_one_shape_and_sane_values(method, shifted):
    sc = method.score(shifted, shifted.last_day)
    assert isinstance(sc, Scores)
    for name in ("num", "den", "observed", "expected", "lower", "upper", "statistic", "p"):
        assert getattr(sc, name).shape == (5, 1), name
    p = sc.p[np.isfinite(sc.p)]
    assert p.size and ((p >= 0) & (p <= 1)).all()
    ok = np.isfinite(sc.expected)
    assert (sc.lower[ok] <= sc.expected[ok] + 1e-12).all()
    assert (sc.expected[ok] <= sc.upper[ok] + 1e-12).all()
    # The shifted scope is the strongest evidence of all those tested.
    assert np.nanargmin(sc.p[:, 0]) == 1


@pytest.mark.parametrize("method", all_methods(), ids=lambda m: m.name)
def test_a_method_reads_nothing_after_the_day_it_scores(method, shifted):
    day = _iso(_ordinal(FIRST) + T - 30)
    cut = Table(
        FIRST,
        shifted.scopes,
        shifted.municipalities,
        shifted.series,
        shifted.num[:, :, : T - 29],
        shifted.den[:, :, : T - 29],
    )
    a, b = method.score(shifted, day), method.score(cut, day)
    np.testing.assert_array_equal(a.p, b.p)
    np.testing.assert_array_equal(a.expected, b.expected)


@pytest.mark.parametrize("method", all_methods(), ids=lambda m: m.name)
def test_step_is_deterministic_with_a_small_json_state(method, shifted):
    det = Detector(method)
    days = [_iso(_ordinal(FIRST) + t) for t in range(T - 25, T)]

    def run(state):
        out = []
        for d in days:
            before = copy.deepcopy(state)
            state, alerts = det.step(state, d, shifted)
            assert state is not before and before == (copy.deepcopy(before))
            state = json.loads(json.dumps(state))  # what is stored between ticks
            out.append(alerts)
        return state, out

    s1, a1 = run(None)
    s2, a2 = run(None)
    assert s1 == s2 and a1 == a2
    assert json.loads(json.dumps(a1)) == a1  # alerts are JSON too
    assert len(json.dumps(s1)) < 200 + 100 * len(s1["active"])  # no history in it
    assert sum(len(a) for a in a1) >= 1  # the shift was seen …
    # … once: hysteresis keeps the pair active, raising nothing more.
    assert [a["scope_key"] for al in a1 for a in al] == ["a:00001"]


@pytest.mark.parametrize("method", all_methods(), ids=lambda m: m.name)
def test_no_alert_on_small_or_hidden_scopes(method, shifted):
    _, alerts = Detector(method).step(None, shifted.last_day, shifted)
    # a:00002 has 12 families, a:00003 a hidden numerator, a:00004 hidden families:
    # each has the shift that makes a:00001 alert, and none of them may alert.
    assert [a["scope_key"] for a in alerts] == ["a:00001"]
    sc = method.score(shifted, shifted.last_day)
    assert np.isnan(sc.observed[3, 0]) and np.isnan(sc.observed[4, 0])


@pytest.mark.parametrize("method", all_methods(), ids=lambda m: m.name)
def test_alerts_explain_themselves(method, shifted):
    _, (alert,) = Detector(method).step(None, shifted.last_day, shifted)
    assert alert["method"] == method.name and alert["as_of"] == shifted.last_day
    assert (alert["scope"], alert["area"], alert["municipality"]) == ("area", "00001", "837")
    assert alert["series"] == "families_social_assistance"
    obs, exp = alert["observed"], alert["expected"]
    assert obs["denominator"] == 400 and obs["share"] == pytest.approx(obs["numerator"] / 400)
    assert obs["share"] > exp["share"]
    assert exp["lower"] <= exp["share"] <= exp["upper"]
    assert 0 <= alert["p"] <= alert["q"] <= 1
    assert alert["onset"] is not None
    assert _ordinal(shifted.last_day) - 60 <= _ordinal(alert["onset"]) <= _ordinal(shifted.last_day)
    assert alert["strength"] > 0 and alert["rank"] == 1
    assert isinstance(alert["statistic"], float) and len(alert["id"]) == 20
    assert "00001" in alert["explanation"] and method.name in alert["explanation"]
    recent = alert["recent"]  # a quarter of the published series, weekly, up to the day
    assert recent["every_days"] == 7 and len(recent["shares"]) == 13
    assert _ordinal(alert["as_of"]) - _ordinal(recent["from"]) == 84
    assert recent["shares"][-1] == pytest.approx(obs["share"], abs=1e-6)
    assert recent["shares"][0] < exp["upper"] < obs["share"]  # before the shift, it was low


def test_hysteresis_raises_once_and_rearms_after_the_evidence_is_gone():
    rng = np.random.default_rng(3)
    num = sim_stock(rng, np.full(30, 400), p0=0.10, duration=60.0)
    num[0, T - 120 : T - 60] += 60  # +15 pp for 60 days, then back
    num[0, T - 20 :] += 60  # and again
    table = one_series_table(num, np.full(30, 400))
    det, state, raised = Detector(Cusum()), None, []
    for t in range(T - 130, T):
        state, alerts = det.step(state, _iso(_ordinal(FIRST) + t), table)
        raised += [(t, a["scope_key"]) for a in alerts]
    # once per episode, not every day of it (the 29 null scopes may raise a rare
    # false alert: that is the FDR tests' business)
    mine = [t for t, s in raised if s == "a:00000"]
    assert len(mine) == 2
    assert T - 120 <= mine[0] <= T - 100 and T - 20 <= mine[1] <= T - 1


def test_the_same_tick_again_raises_nothing_new(shifted):
    state, first = step(None, shifted.last_day, shifted)
    state, again = step(state, shifted.last_day, shifted)
    assert len(first) == 1 and again == []


def test_another_methods_episodes_are_not_held_by_this_one(shifted):
    """TK_ALERT_METHOD changed between two ticks: the state's active pairs were raised
    by the other method; this one raises its own alert for the shift it finds."""
    theirs, raised = Detector(Rise5pp()).step(None, shifted.last_day, shifted)
    assert raised and theirs["active"]
    state, mine = Detector(Cusum()).step(theirs, shifted.last_day, shifted)
    assert [a["scope_key"] for a in mine] == [a["scope_key"] for a in raised]
    assert state["method"] == "cusum" and set(state["active"]) == set(theirs["active"])
    # Its own state, the same tick again: held, nothing new.
    assert Detector(Cusum()).step(state, shifted.last_day, shifted)[1] == []


def test_rise5pp_is_todays_rule():
    """The method "rise5pp" through the detector gives the alerts of models/alerts.py."""
    rng = np.random.default_rng(5)
    days = 200
    fam = np.array([97, 83, 150, 41, 19])  # irregular: no rise exactly on the line
    num = sim_stock(rng, fam, T=days, p0=0.15, duration=20.0)
    pictures = {}
    for t in range(days):
        areas = {
            f"{33100 + 100 * i}": {
                "municipality": "837",
                "counts": {"families": int(fam[i]), "families_social_assistance": int(num[i, t])},
            }
            for i in range(len(fam))
        }
        pic = {"all": {}, "municipalities": {}, "areas": areas}
        pictures[_iso(_ordinal(FIRST) + t)] = suppress(pic, 1)  # min cell 1: all shown
    rule = TrendRule(window_days=30, rise=0.05, min_families=20)
    old, state = set(), None
    for i, (d, pic) in enumerate(pictures.items()):
        state, alerts = alert_step(state, pic, d, f"2026-01-01T00:00:{i % 60:02d}Z", rule)
        old |= {(a["as_of"], a["area"]) for a in alerts}
    table = Table.from_pictures(pictures, series=("families_social_assistance",))
    new, state = set(), None
    for d in pictures:
        state, alerts = Detector(Rise5pp()).step(state, d, table)
        new |= {(a["as_of"], a["area"]) for a in alerts if a["area"]}
    assert len(old) >= 5 and new == old


# --------------------------------------------------------------------------- statistics


@pytest.fixture(scope="module")
def null_table():
    """300 null series (no shift): stocks of 200 and 1000 families with durations of 2,
    4 and 12 months, and 30/90-day event counts, all seasonal."""
    rng = np.random.default_rng(11)
    parts = []
    for duration in (60.0, 120.0, 365.0):
        parts.append(sim_stock(rng, np.array([200] * 25 + [1000] * 25), duration=duration))
    w = np.array([200] * 25 + [1000] * 25)
    parts += [sim_window(rng, w, 30), sim_window(rng, w, 90, rate=1.5)]
    num = np.concatenate(parts)
    n = np.concatenate([np.array([200] * 25 + [1000] * 25)] * 5)
    rate = np.zeros(num.shape[0], bool)
    rate[150:] = True
    # two tables: shares (stocks) and rates (window counts)
    return (
        one_series_table(num[:150], n[:150]),
        one_series_table(num[150:], n[150:], series="child_welfare_notifications_30d"),
    )


@pytest.mark.parametrize("method", [Cusum(), Farrington(), Level()], ids=lambda m: m.name)
def test_p_values_are_honest_on_seasonal_null_series(method, null_table):
    """P(p < α) ≤ α for a valid test. Bound: 1.5 α + 3 Monte Carlo standard errors
    (counted as if only one tick in four were independent). A CUSUM on undifferenced
    residuals, or a baseline variance that ignores the autocorrelation of a stock, gives
    2–8 α here and fails."""
    ps = []
    for table in null_table:
        for t in range(T - 365, T, 10):
            ps.append(method.score(table, _iso(_ordinal(FIRST) + t)).p.ravel())
    p = np.concatenate(ps)
    p = p[np.isfinite(p)]
    assert p.size > 8000
    for alpha in (0.05, 0.01):
        se = np.sqrt(alpha / (p.size / 4))
        assert (p < alpha).mean() <= 1.5 * alpha + 3 * se, alpha


def test_few_false_alerts_over_a_year_of_daily_ticks(null_table):
    """Under the global null, BH makes P(any alert in a tick) ≤ q, and hysteresis only
    removes alerts, so a year of daily ticks raises at most about q·365 ≈ 18 alerts
    over all 300 series; we allow 1.5× that (slightly anti-conservative tails measured
    for year-long stocks). Without BH (raw p < q) it is hundreds."""
    det, raw = Detector(Cusum()), 0
    total = 0
    for table in null_table:
        state = None
        for t in range(T - 365, T):
            state, alerts = det.step(state, _iso(_ordinal(FIRST) + t), table)
            total += len(alerts)
            if t % 7 == 0:
                raw += int((det.method.score(table, _iso(_ordinal(FIRST) + t)).p < 0.05).sum())
    assert total <= 1.5 * 0.05 * 365
    assert raw > 100  # the same data without the correction: many


def test_a_step_of_5pp_in_200_families_is_found_within_21_days():
    """40 of 300 scopes of 200 families (10 % on assistance, stays of 4 months) get
    +5 pp on day t0. Most are found within 21 days, with the onset near t0, and the
    tick's discoveries stay mostly true: their false proportion averages near q (BH
    bounds its expectation by q·m0/m). rise5pp is run alongside as the baseline."""
    rng = np.random.default_rng(21)
    s, t0 = 300, T - 40
    planted = np.zeros(s, bool)
    planted[:40] = True
    num = sim_stock(rng, np.full(s, 200), duration=120.0, t0=t0, delta=0.05, planted=planted)
    table = one_series_table(num, np.full(s, 200))
    found, fdp = {}, []
    for name, det in (("cusum", Detector(Cusum())), ("rise5pp", Detector(Rise5pp()))):
        state, hits = None, {}
        for t in range(t0 - 7, t0 + 22):
            day = _iso(_ordinal(FIRST) + t)
            state, alerts = det.step(state, day, table)
            for a in alerts:
                hits.setdefault(int(a["scope_key"][2:]), (t, a["onset"]))
            if name == "cusum" and t > t0:
                p = det.method.score(table, day).p[:, 0]
                disc = stats.false_discovery_control(p, method="bh") <= det.q
                fdp.append((disc & ~planted).sum() / max(disc.sum(), 1))
        found[name] = hits
    hits = found["cusum"]
    true = [i for i in hits if i < 40]
    assert len(true) >= 0.7 * 40
    onsets = [_ordinal(hits[i][1]) - (_ordinal(FIRST) + t0) for i in true]
    assert np.median(np.abs(onsets)) <= 7
    assert np.mean(fdp) <= 2 * 0.05
    # the baseline rule needs the rise to show in a 30-day window: fewer, later
    assert len(true) > len([i for i in found["rise5pp"] if i < 40])


def test_bh_keeps_false_alerts_across_1000_null_series_near_q():
    """20 ticks, each of 1,000 fresh null series. Unadjusted, p < 0.05 flags ~50 series
    a tick; with Benjamini–Hochberg at q = 0.05 a tick raises any alert with probability
    at most q, so 20 ticks raise about 1 (at most 4: P(Binomial(20, 0.05) ≥ 5) < 0.3 %)."""
    rng = np.random.default_rng(1000)
    det = Detector(Cusum())
    raw, alerts_per_tick = [], []
    for _ in range(20):
        num = sim_stock(rng, np.full(1000, 300), T=2 * 365, duration=90.0)
        table = Table(
            FIRST,
            tuple(f"a:{i:05d}" for i in range(1000)),
            ("837",) * 1000,
            ("families_social_assistance",),
            num[:, None, :],
            np.full((1000, 2 * 365), 300.0),
        )
        _, alerts = det.step(None, table.last_day, table)
        raw.append(int((det.method.score(table, table.last_day).p < 0.05).sum()))
        alerts_per_tick.append(len(alerts))
    assert 20 <= np.mean(raw) <= 80
    assert sum(a > 0 for a in alerts_per_tick) <= 4
    assert sum(alerts_per_tick) <= 8


@pytest.mark.parametrize("method", [Cusum(), Level()], ids=lambda m: m.name)
def test_a_partial_first_picture_does_not_blind_the_method(method):
    """The first ticks of a stream show a partial picture (the initial load still
    arriving): a stock at a tenth of its level on day 0. Those weeks are no baseline
    (``warmup_weeks``): one huge first-week jump in the variance of the week's change
    would hide a +5 pp step for ever after (as it did in the 20k backtest)."""
    rng = np.random.default_rng(31)
    s, t0 = 20, T - 14
    planted = np.zeros(s, bool)
    planted[0] = True
    num = sim_stock(rng, np.full(s, 400), duration=365.0, t0=t0, delta=0.05, planted=planted)
    num[:, :3] = np.round(num[:, :3] / 10)  # the partial first days
    table = one_series_table(num, np.full(s, 400))
    p = method.score(table, table.last_day).p[:, 0]
    assert p[0] < 1e-4 and np.nanmin(p[1:]) > 1e-3
    blind = type(method)(warmup_weeks=0).score(table, table.last_day).p[:, 0]
    assert blind[0] > 10 * p[0]


def test_fdr_by_series_is_bh_within_each_series():
    """``fdr_by="series"``: the q-values of a series do not depend on the other series."""
    rng = np.random.default_rng(2)
    base = mixed_table(rng, s=20)
    k = SERIES.index("families_unemployed_parent")
    num = base.num.copy()
    num[0, :, -10:] += 36  # +12 pp in every series of scope 0
    table = Table(FIRST, base.scopes, base.municipalities, SERIES, num, base.den)
    one = Table(
        FIRST,
        base.scopes,
        base.municipalities,
        (SERIES[k],),
        num[:, k : k + 1],
        base.den[:, k : k + 1],
    )
    a = Detector(Cusum(), fdr_by="series")
    _, alerts_all = a.step(None, table.last_day, table)
    _, alerts_one = a.step(None, table.last_day, one)
    assert len(alerts_one) >= 1
    assert [x["q"] for x in alerts_all if x["series"] == SERIES[k]] == [x["q"] for x in alerts_one]
    with pytest.raises(ValueError):
        Detector(Cusum(), fdr_by="scope")
