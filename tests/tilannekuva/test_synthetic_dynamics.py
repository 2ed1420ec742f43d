"""Dynamics of the synthetic registers: default unchanged, determinism, planted shifts
measured with the batch reference, seasonality, the population shift, the truth files."""

from __future__ import annotations

import collections
import csv
import datetime as dt
import hashlib
import json

import pytest

from models.contract import validate
from tilannekuva import cli
from tilannekuva.batch import EventTable, compute_days
from tilannekuva.synthetic import (
    DYNAMIC_TRUTH_COLUMNS,
    TRAJECTORY_COLUMNS,
    TRUTH_COLUMNS,
    synthesize,
)
from tilannekuva.synthetic.dynamics import POPULATION_RAMP, SEASONS, Shift

ON = dt.date(2025, 1, 15)
# Disjoint scopes: two large areas (Hakunila in Vantaa, central Pori) and Tampere.
SHIFTS = [
    Shift("UP", "area", "01200", "092", ON, "step", 0, "up", "unemployment", 10.0),
    Shift("DOWN", "area", "28100", "609", ON, "step", 0, "down", "unemployment", 8.0),
    Shift("CW", "municipality", "837", "837", ON, "step", 0, "up", "child_welfare", 3.0),
]
WINDOWS = 6  # non-overlapping 30-day windows before and after the onset


def _day(offset: int) -> str:
    return (ON + dt.timedelta(days=offset)).isoformat()


@pytest.fixture(scope="module")
def shifted():
    """Shifts on the flat background (no --dynamics), with the pictures of the days the
    tests read, from the batch reference."""
    result = synthesize(2500, seed=4, shifts=SHIFTS)
    days = {_day(-1), _day(0), _day(30)}
    days |= {_day(-1 - 30 * i) for i in range(WINDOWS)} | {
        _day(29 + 30 * i) for i in range(WINDOWS)
    }
    result.pictures = compute_days(EventTable(result.events()), sorted(days))
    result.truth_of = {s["id"]: s for s in result.shifts}
    return result


@pytest.fixture(scope="module")
def dynamic():
    return synthesize(2000, seed=8, dynamics=True, shifts=4, population_shift=5.0)


def _one_family(truth: dict) -> float:
    """One family of the scope, in percentage points."""
    return 100.0 / truth["families_at_onset"] + 1e-9


def _share(picture: dict, postcode: str, indicator: str) -> float:
    c = picture["areas"][postcode]["counts"]
    return 100.0 * c[indicator] / c["families"]


# ------------------------------------------------------------------ default unchanged
# Hashes of the default output recorded before dynamics existed: without the new
# options the generator must write exactly what it wrote then.
DEFAULT_40 = "8dbba8297571564a42960ff0afbbdd865ecd03b4c052f51382ea0c482857c0e6"
DEFAULT_300_CORRUPTED = "96f17353a5bda455fce8f7af22e4c66436b792d2f99471b9a93006f1c8614007"


def test_default_output_is_byte_identical_to_before_dynamics():
    plain = synthesize(40, seed=1)
    assert hashlib.sha256("\n".join(plain.lines).encode()).hexdigest() == DEFAULT_40
    assert not plain.dynamic and plain.shifts == [] and plain.trajectories == []
    assert set(plain.truth[0]) == set(TRUTH_COLUMNS)
    knobs = dict(duplicates=0.02, out_of_order=0.01, retractions=0.01, malformed=0.01)
    corrupted = synthesize(300, seed=7, **knobs)
    assert hashlib.sha256("\n".join(corrupted.lines).encode()).hexdigest() == DEFAULT_300_CORRUPTED


# ------------------------------------------------------------------ determinism
def test_same_seed_same_dynamics():
    kw = dict(dynamics=True, shifts=4, population_shift=4.0)
    a, b = synthesize(300, seed=6, **kw), synthesize(300, seed=6, **kw)
    assert a.lines == b.lines and a.truth == b.truth
    assert a.shifts == b.shifts and a.trajectories == b.trajectories
    assert a.lines != synthesize(300, seed=6).lines
    assert a.shifts != synthesize(300, seed=7, **kw).shifts


def test_dynamic_events_still_follow_the_contract_and_hide_the_truth(dynamic):
    for line in dynamic.lines[::7]:
        ev = validate(line)
        assert "need_level" not in ev.get("data", {}) and "shift" not in line


# ------------------------------------------------------------------ planted shifts
def test_step_shift_up_raises_the_area_share_by_the_planted_amount(shifted):
    truth = shifted.truth_of["UP"]
    planted = truth["planted"]["families_unemployed_parent"]
    assert planted >= 4.0  # not vacuous at this size
    pics = shifted.pictures
    before = _share(pics[_day(-1)], "01200", "families_unemployed_parent")
    # On the onset day only the planted layoffs and one day of ordinary changes (about
    # 0.07 families of an area this size: it happens) move the share: within one family.
    on = _share(pics[_day(0)], "01200", "families_unemployed_parent")
    assert abs((on - before) - planted) <= _one_family(truth)
    # A month later most of it is still there (laid-off parents leave unemployment
    # at SHIFT_UNEMPLOYED_EXIT = 0.3 a year).
    later = _share(pics[_day(30)], "01200", "families_unemployed_parent")
    assert later - before >= 0.5 * planted
    assert truth["families_at_onset"] == pics[_day(-1)]["areas"]["01200"]["counts"]["families"]


def test_planted_improvement_lowers_the_area_share(shifted):
    truth = shifted.truth_of["DOWN"]
    planted = truth["planted"]["families_unemployed_parent"]
    assert planted <= -2.0
    pics = shifted.pictures
    before = _share(pics[_day(-1)], "28100", "families_unemployed_parent")
    on = _share(pics[_day(0)], "28100", "families_unemployed_parent")
    assert abs((on - before) - planted) <= _one_family(truth)
    assert _share(pics[_day(30)], "28100", "families_unemployed_parent") < before


def test_untouched_areas_stay_flat(shifted):
    pics = shifted.pictures

    def pooled(day: str) -> float:
        areas = [a["counts"] for c, a in pics[day]["areas"].items() if c not in ("01200", "28100")]
        return (
            100.0
            * sum(a["families_unemployed_parent"] for a in areas)
            / sum(a["families"] for a in areas)
        )

    # ~2,300 families: a month of ordinary changes moves the pooled share well under 1 pp.
    assert abs(pooled(_day(30)) - pooled(_day(-1))) <= 1.0
    assert abs(pooled(_day(0)) - pooled(_day(-1))) <= 0.3


def test_rate_shift_multiplies_the_window_count(shifted):
    planted = shifted.truth_of["CW"]["planted"]["child_welfare_notifications_30d"]
    pics = shifted.pictures

    def total(code: str, days: list[str]) -> int:
        return sum(pics[d]["municipalities"][code]["child_welfare_notifications_30d"] for d in days)

    before = [_day(-1 - 30 * i) for i in range(WINDOWS)]
    after = [_day(29 + 30 * i) for i in range(WINDOWS)]
    # About 100 notifications before: Poisson noise alone is ~12 % on the ratio, and
    # families moving in after the onset (not hit) dilute it a little; hence +-30 %.
    ratio = total("837", after) / total("837", before)
    assert 0.7 * planted <= ratio <= 1.3 * planted
    others = sum(total(c, after) for c in ("092", "609", "905", "980", "399"))
    assert (
        0.8 <= others / sum(total(c, before) for c in ("092", "609", "905", "980", "399")) <= 1.25
    )


def test_planned_shifts_span_scopes_and_sizes():
    shifts = synthesize(2000, seed=3, shifts=10).shifts
    assert {s["scope_type"] for s in shifts} == {"area", "municipality"}
    assert any(s["scope"] == "609" and s["mechanism"] == "unemployment" for s in shifts)
    assert {s["direction"] for s in shifts} == {"up", "down"}
    pp = [s["target_size"] for s in shifts if s["unit"] == "percentage_points"]
    ratio = [
        max(s["target_size"], 1 / s["target_size"]) for s in shifts if s["unit"] == "rate_ratio"
    ]
    assert min(pp) == 2.0 and max(pp) == 10.0
    assert min(ratio) == pytest.approx(1.3, abs=0.01) and max(ratio) == pytest.approx(3.0, abs=0.01)
    scopes = [s["scope"] for s in shifts]
    assert len(set(scopes)) == len(scopes)
    municipalities = {s["scope"] for s in shifts if s["scope_type"] == "municipality"}
    assert not municipalities & {s["municipality"] for s in shifts if s["scope_type"] == "area"}
    for s in shifts:
        assert s["families_at_onset"] > 0 and s["indicators"] == list(s["planted"])


# ------------------------------------------------------------------ seasonality
def _per_month(result, predicate) -> collections.Counter:
    counts: collections.Counter = collections.Counter()
    for ev in result.events():
        if isinstance(ev, dict) and predicate(ev):
            counts[int(ev["occurred_at"][5:7])] += 1
    return counts


def test_seasonality_fewer_notifications_and_school_visits_in_july(dynamic):
    def notification(ev):
        return ev["type"] == "child_welfare.notification"

    def school(ev):
        return ev["type"] == "health.visit" and ev["data"]["service"] == "school_health"

    for predicate, channel in ((notification, "notification"), (school, "school_health")):
        months = _per_month(dynamic, predicate)
        school_year = sum(months[m] for m in (9, 10, 11)) / 3
        expected = SEASONS[channel][6] / (sum(SEASONS[channel][8:11]) / 3)
        assert months[7] / school_year == pytest.approx(expected, abs=0.2)
        assert months[7] / school_year < 0.8
    flat = _per_month(synthesize(1000, seed=8), notification)
    assert flat[7] / (sum(flat[m] for m in (9, 10, 11)) / 3) > 0.75


# ------------------------------------------------------------------ population shift
def _share_ge4(trajectories: list[dict], day: str) -> float:
    level: dict[str, int] = {}
    for row in trajectories:  # in family order, each family's rows by day
        if row["day"] <= day:
            level[row["family"]] = row["need_level"]
    return 100.0 * sum(v >= 4 for v in level.values()) / len(level)


def test_population_shift_raises_need_level_4_plus(dynamic):
    (p,) = [s for s in dynamic.shifts if s["scope_type"] == "all"]
    planted = p["planted"]["g4-g10"]
    assert planted >= 3.0
    onset = dt.date.fromisoformat(p["onset"])
    before = _share_ge4(dynamic.trajectories, (onset - dt.timedelta(days=1)).isoformat())
    after = _share_ge4(
        dynamic.trajectories, (onset + dt.timedelta(days=POPULATION_RAMP + 1)).isoformat()
    )
    # Trajectories alone drift the share up ~0.3 pp in half a year; the population
    # shift's families are counted over all families here (moved/at onset in the truth).
    assert planted - 1.5 <= after - before <= planted + 2.0


def test_trajectories_change_levels_and_return(dynamic):
    causes = collections.Counter(r["cause"] for r in dynamic.trajectories)
    assert {"start", "job_loss", "illness", "separation", "recovery"} <= set(causes)
    ends = [t["need_level_end"] != t["need_level"] for t in dynamic.truth]
    assert 0.1 <= sum(ends) / len(ends) <= 0.6


# ------------------------------------------------------------------ files
def test_cli_writes_the_truth_files(tmp_path):
    out = tmp_path / "ev.jsonl"
    args = ["generate", "--families", "300", "--seed", "2", "--out", str(out)]
    args += ["--dynamics", "--shifts", "3", "--population-shift", "4"]
    assert cli.main(args) == 0
    doc = json.loads((tmp_path / "ev.jsonl.shifts.json").read_text())
    assert doc["seed"] == 2 and len(doc["shifts"]) == 4
    keys = {
        "id", "scope_type", "scope", "municipality", "onset", "shape", "ramp_days",
        "direction", "mechanism", "indicators", "planted", "unit", "target_size",
        "families_at_onset", "families_hit", "families_moved",
    }  # fmt: skip
    assert all(set(s) == keys for s in doc["shifts"])
    with open(str(out) + ".truth.csv") as f:
        assert tuple(next(csv.reader(f))) == DYNAMIC_TRUTH_COLUMNS
    with open(str(out) + ".trajectories.csv") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == TRAJECTORY_COLUMNS and rows[0]["cause"] == "start"


def test_shifts_from_sets_the_earliest_onset():
    """An evaluation plants its shifts after its detectors' baselines are complete."""
    from tilannekuva.synthetic import DEFAULT_END, DEFAULT_START, area_families
    from tilannekuva.synthetic import dynamics as D

    sizes = area_families(2000, 3)
    late = dt.date(2025, 7, 1)
    default = D.plan_shifts(10, 3, DEFAULT_START, DEFAULT_END, sizes)
    planned = D.plan_shifts(10, 3, DEFAULT_START, DEFAULT_END, sizes, onset_from=late)
    assert min(s.onset for s in default) < late <= min(s.onset for s in planned)
    assert max(s.onset.toordinal() + s.ramp_days for s in planned) <= DEFAULT_END.toordinal() - 180
