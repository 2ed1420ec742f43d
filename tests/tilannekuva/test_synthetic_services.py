"""Planted services (issue 16, step 1): the defaults unchanged, determinism, selection
(need, rises, supply), the planted effects, the counterfactual twin, the truth file."""

from __future__ import annotations

import collections
import datetime as dt
import hashlib
import json
import math

import pytest

from models.contract import validate
from tilannekuva import cli
from tilannekuva.synthetic import DEFAULT_END, DEFAULT_START, synthesize
from tilannekuva.synthetic import dynamics as D
from tilannekuva.synthetic.simulate import SOCIAL_SERVICES, simulate

FAMILIES, SEED = 2000, 3
S, E = DEFAULT_START.toordinal(), DEFAULT_END.toordinal()
SIX = set(D.M.CENTRES)


@pytest.fixture(scope="module")
def factual():
    return synthesize(FAMILIES, seed=SEED, services=True)


@pytest.fixture(scope="module")
def twin():
    return synthesize(FAMILIES, seed=SEED, services=True, counterfactual=True)


def _h(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _day(iso: str) -> int:
    return dt.date.fromisoformat(iso).toordinal()


# ------------------------------------------------------------------ defaults unchanged
# Recorded before the services existed (git d379df2): without --services the generator
# writes what it wrote then, with --dynamics and with shifts too.
BEFORE = {
    (5, (("dynamics", True),)): (
        "7861f0be557489fb947641ada0bfaefeebc20b44d2dd6594b6c183332a9c2b5a",
        "bd5f43e7ef311c2c193ab4ecab8cb8365c3dbf72a8fc9acb7e49126e83389e98",
    ),
    (5, (("dynamics", True), ("shifts", 3))): (
        "9e8aba1a01a6ea3b35787a99af7911d7f77e417a605302d1ee77e0920135b7be",
        "e55132e877a087589d55231ab15fcce47a8d4aa5c0d9cce51d558b1288b4c24a",
    ),
}


@pytest.mark.parametrize("key", list(BEFORE))
def test_dynamics_output_is_byte_identical_to_before_services(key):
    seed, options = key
    result = synthesize(300, seed=seed, **dict(options))
    lines, trajectories = BEFORE[key]
    assert _h("\n".join(result.lines)) == lines
    assert _h(json.dumps(result.trajectories, sort_keys=True)) == trajectories
    assert result.services == {}


def test_counterfactual_needs_services():
    with pytest.raises(ValueError, match="services"):
        synthesize(10, seed=1, counterfactual=True)


# ------------------------------------------------------------------ determinism
def test_same_seed_same_services():
    a, b = synthesize(300, seed=6, services=True), synthesize(300, seed=6, services=True)
    assert a.lines == b.lines and a.truth == b.truth and a.services == b.services
    assert a.trajectories == b.trajectories
    other = synthesize(300, seed=7, services=True)
    assert other.services["starts"] != a.services["starts"]
    assert other.services["supply"] != a.services["supply"]


def test_counterfactual_latent_need_is_that_of_dynamics():
    """The twin's need paths are exactly the --dynamics ones (the same life events):
    the services change need only through their effects."""
    twin = synthesize(300, seed=6, services=True, counterfactual=True)
    plain = synthesize(300, seed=6, dynamics=True)
    assert twin.trajectories == plain.trajectories and twin.truth == plain.truth
    factual = synthesize(300, seed=6, services=True)
    assert factual.trajectories != plain.trajectories
    assert {r["cause"].split(":")[0] for r in factual.trajectories} >= {"service", "start"}


def test_events_follow_the_contract_and_hide_the_truth(factual):
    for line in factual.lines:
        assert "effect" not in line and "planted" not in line and "rising" not in line
    for line in factual.lines[::11]:
        validate(line)
    kinds = {
        json.loads(x)["data"]["service"] for x in factual.lines if '"social_service.started"' in x
    }
    assert kinds == {code for code, *_ in SOCIAL_SERVICES}


# ------------------------------------------------------------------ exposure helpers
def _units(result) -> dict[str, list[tuple[int, int, str]]]:
    """Family -> [(day, level, cause)] of its trajectory rows (the factual levels)."""
    rows: dict[str, list[tuple[int, int, str]]] = collections.defaultdict(list)
    for r in result.trajectories:
        rows[r["family"]].append((_day(r["day"]), r["need_level"], r["cause"]))
    return rows


def _ends(result) -> dict[str, int]:
    """Family -> its last day: the day it moved out of the six municipalities, or E."""
    out = {}
    for line in result.lines:
        if '"family.residence_changed"' in line:
            ev = json.loads(line)
            if ev["data"]["municipality"] not in SIX:
                out[ev["data"]["family"]] = _day(ev["occurred_at"])
    return out


def _exposure(result):
    """Family-years in the history by (level, rising); a rise: a trajectory row above
    the one before it, or the founding of a family by a separation (a level up)."""
    ends = _ends(result)
    years: collections.Counter = collections.Counter()
    for fam, rows in _units(result).items():
        first = rows[0][0]
        end = min(ends.get(fam, E), E)
        rises = [d for i, (d, lv, _) in enumerate(rows) if i and lv > rows[i - 1][1]]
        if rows[0][2] == "separation":
            rises.insert(0, first)
        cuts = sorted({d for d, *_ in rows} | {r + D.RISING_DAYS for r in rises})
        cuts = [c for c in cuts if first <= c <= end] + [end + 1]
        level = {d: lv for d, lv, _ in rows}  # a day's last row: the level in force
        lv = rows[0][1]
        for a, b in zip(cuts, cuts[1:], strict=False):
            lv = level.get(a, lv)
            rising = any(r <= a < r + D.RISING_DAYS for r in rises)
            years[lv, rising] += (b - a) / 365.25
    return years


def _starts(result):
    """The starts in the history (on or after the start and the family's first day)."""
    first = {fam: rows[0][0] for fam, rows in _units(result).items()}
    return [s for s in result.services["starts"] if _day(s["start"]) >= max(S, first[s["family"]])]


# ------------------------------------------------------------------ selection
def test_starts_concentrate_at_high_need(factual):
    years = _exposure(factual)
    starts = collections.Counter(s["level_at_start"] for s in _starts(factual))
    high = sum(starts[lv] for lv in range(7, 11)) / sum(
        y for (lv, _), y in years.items() if lv >= 7
    )
    low = sum(starts[lv] for lv in range(1, 4)) / sum(y for (lv, _), y in years.items() if lv <= 3)
    print(f"starts per family-year: levels 7-10 {high:.3f}, 1-3 {low:.3f}")
    assert high >= 4 * low


def test_rising_families_start_more_at_the_same_level(factual):
    years = _exposure(factual)
    starts = collections.Counter((s["level_at_start"], s["rising"]) for s in _starts(factual))
    # Indirect standardisation: the rising starts against the non-rising rate of their level.
    observed = expected = 0.0
    for lv in range(1, 11):
        if years[lv, False] and starts[lv, False] >= 20:
            observed += starts[lv, True]
            expected += years[lv, True] * starts[lv, False] / years[lv, False]
    print(f"rising starts {observed:.0f}, expected at the non-rising rates {expected:.1f}")
    assert observed >= 100
    # Planted x3; rises also shock the domains (more), and the days a service already
    # runs count as exposure without a possible start of it (less): measured 2.6.
    assert 2.0 <= observed / expected <= 5.0


def test_supply_varies_the_rate_as_recorded(factual):
    """The same families with every supply factor 1: each municipality's starts scale
    by its recorded factor."""
    flat = D.Record()
    dyn = D.Dynamics(True, True, services=True, supply={m: 1.0 for m in SIX})
    simulate(FAMILIES, SEED, DEFAULT_START, DEFAULT_END, lambda k, e: None, dyn, flat)
    supply = factual.services["supply"]
    assert set(supply) == SIX and len(set(supply.values())) == 6
    assert all(D.SUPPLY_RANGE[0] <= f <= D.SUPPLY_RANGE[1] for f in supply.values())

    def per_muni(starts):
        return collections.Counter(s["municipality"] for s in starts if s["start"] >= "2023-07-01")

    with_supply, without = per_muni(factual.services["starts"]), per_muni(flat.services)
    ratios = {m: with_supply[m] / without[m] for m in SIX if without[m] >= 150}
    print({m: (round(r, 2), supply[m], without[m]) for m, r in ratios.items()})
    assert len(ratios) >= 3
    for m, r in ratios.items():
        assert r == pytest.approx(supply[m], rel=0.25)
    lo, hi = min(ratios, key=supply.get), max(ratios, key=supply.get)
    assert ratios[hi] > ratios[lo]


# ------------------------------------------------------------------ effects
def test_effects_are_drawn_at_the_planted_probability(factual):
    starts = factual.services["starts"]
    for e in D.SERVICE_EFFECTS:
        mine = [s for s in starts if s["service"] == e.service]
        assert len(mine) >= 30, e.service
        eligible = [s for s in mine if s["effect_day"] is not None]
        applied = [s for s in mine if s["applied"]]
        if e.probability == 0:
            assert not eligible and not applied
            continue
        assert all(s["effect_day"] is not None for s in applied)
        n, k = len(eligible), len(applied)
        sd = math.sqrt(n * e.probability * (1 - e.probability))
        print(f"{e.service}: {k}/{n} applied, planted {e.probability}")
        assert abs(k - n * e.probability) <= 4 * sd
        for s in applied:
            assert _day(s["effect_day"]) - _day(s["start"]) == e.delay_days
            assert s["level_after"] == max(1, s["level_before"] - e.levels)


def test_effects_lower_the_trajectory(factual):
    """Each effect inside the history is a trajectory row on its day; where it is the
    family's only change that day the row holds the level after the effect."""
    rows = collections.defaultdict(list)
    for r in factual.trajectories:
        rows[r["family"], r["day"]].append(r)
    inside = [
        s for s in factual.services["starts"] if s["applied"] and s["effect_day"] <= "2026-06-30"
    ]
    assert len(inside) >= 200
    checked = 0
    for s in inside:
        day = rows[s["family"], s["effect_day"]]
        causes = [r["cause"] for r in day]
        if not causes:
            continue  # the family left before the effect's day
        assert f"service:{s['service']}" in causes
        if len(day) == 1:
            assert day[0]["need_level"] == s["level_after"]
            checked += 1
    assert checked >= 0.8 * len(inside)
    drops = sum(s["level_after"] < s["level_before"] for s in inside)
    assert drops >= 0.6 * len(inside)


# ------------------------------------------------------------------ the counterfactual twin
def _components(result):
    """Lines per simulated family (a family and the one a separation founds: joined by
    their members), as multisets."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    events = [json.loads(x) for x in result.lines]
    for ev in events:
        if ev["type"] == "family.member_added":
            parent[find(ev["person"])] = find(ev["data"]["family"])
    out: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for line, ev in zip(result.lines, events, strict=True):
        key = ev["data"]["family"] if ev["source"] == "dvv" else ev["person"]
        out[find(key)][line] += 1
    return out, find


def test_twin_has_the_same_starts_and_episodes(factual, twin):
    assert twin.services["counterfactual"] and not factual.services["counterfactual"]
    assert twin.services["starts"] == factual.services["starts"]
    assert twin.services["supply"] == factual.services["supply"]

    def service_lines(result):
        kinds = ('"social_service.', '"child_welfare.client_')
        return sorted(x for x in result.lines if any(k in x for k in kinds))

    same = service_lines(factual)
    assert same == service_lines(twin) and len(same) > 2000


def test_twin_differs_only_where_an_effect_was_applied(factual, twin):
    lines_f, find = _components(factual)
    lines_c, _ = _components(twin)
    assert set(lines_f) == set(lines_c)
    applied = {find(s["family"]) for s in factual.services["starts"] if s["applied"]}
    inside = {
        find(s["family"])
        for s in factual.services["starts"]
        if s["applied"] and s["level_before"] is not None and s["effect_day"] <= "2026-06-30"
    }
    untouched = [k for k in lines_f if k not in applied]
    assert len(untouched) >= 0.5 * len(lines_f)
    assert all(lines_f[k] == lines_c[k] for k in untouched)
    differ = sum(lines_f[k] != lines_c[k] for k in inside)
    print(f"{len(untouched)} families without an effect, {differ}/{len(inside)} with one differ")
    assert differ >= 0.8 * len(inside)
    assert [t for t in factual.truth if find(t["family"]) not in applied] == [
        t for t in twin.truth if find(t["family"]) not in applied
    ]


def test_a_service_s_twin_leaves_out_its_effects_only():
    """The twin of one service (the truth of its own effect): the world where that
    service's effects were not applied, the all-effects-off twin where they were the
    only ones applied."""
    world = synthesize(300, seed=6, services=True)
    none = synthesize(300, seed=6, services=True, counterfactual=True)
    one = synthesize(300, seed=6, services=True, counterfactual="family_work")
    assert one.services["starts"] == world.services["starts"]
    assert one.services["counterfactual"] == "family_work"
    lines_w, find = _components(world)
    lines_n, lines_1 = _components(none)[0], _components(one)[0]
    applied = collections.defaultdict(set)
    for s in world.services["starts"]:
        if s["applied"]:
            applied[find(s["family"])].add(s["service"])
    mine = [k for k, v in applied.items() if "family_work" in v]
    assert len(mine) >= 5
    assert all(lines_1[k] == lines_w[k] for k in lines_w if "family_work" not in applied[k])
    only = [k for k in mine if applied[k] == {"family_work"}]
    assert only and all(lines_1[k] == lines_n[k] for k in only)
    assert sum(lines_1[k] != lines_w[k] for k in mine) >= 0.8 * len(mine)
    with pytest.raises(ValueError, match="one of"):
        synthesize(10, seed=1, services=True, counterfactual="family_therapy")


# ------------------------------------------------------------------ files
def test_cli_writes_the_services_truth(tmp_path):
    out = tmp_path / "ev.jsonl"
    assert (
        cli.main(["generate", "--families", "200", "--seed", "2", "--out", str(out), "--services"])
        == 0
    )
    doc = json.loads((tmp_path / "ev.jsonl.services.json").read_text())
    assert {"seed", "start", "end", "counterfactual", "supply", "effects", "starts"} == set(doc)
    assert doc["seed"] == 2 and doc["counterfactual"] is False and doc["starts"]
    assert [e["service"] for e in doc["effects"]] == [e.service for e in D.SERVICE_EFFECTS]
    keys = {
        "family", "unit", "person", "service", "episode", "start", "end", "municipality",
        "postcode", "level_at_start", "rising", "applied", "effect_day", "level_before",
        "level_after",
    }  # fmt: skip
    assert all(set(s) == keys for s in doc["starts"])
    with open(str(out) + ".truth.csv") as f:
        families = {line.split(",")[0] for line in f}
    assert {s["family"] for s in doc["starts"]} <= families
    persons = {json.loads(x).get("person") for x in out.read_text().splitlines()}
    assert {s["person"] for s in doc["starts"]} <= persons
    assert (tmp_path / "ev.jsonl.trajectories.csv").exists()
    twin = tmp_path / "twin.jsonl"
    args = ["generate", "--families", "200", "--seed", "2", "--out", str(twin)]
    assert (
        cli.main(
            [*args, "--services", "--counterfactual", "--services-truth", str(tmp_path / "t.json")]
        )
        == 0
    )
    doc2 = json.loads((tmp_path / "t.json").read_text())
    assert doc2["counterfactual"] is True and doc2["starts"] == doc["starts"]
    assert (
        cli.main(
            [*args, "--services", "--counterfactual", "home_service", "--services-truth",
             str(tmp_path / "h.json")]
        )
        == 0
    )  # fmt: skip
    doc3 = json.loads((tmp_path / "h.json").read_text())
    assert doc3["counterfactual"] == "home_service" and doc3["starts"] == doc["starts"]
