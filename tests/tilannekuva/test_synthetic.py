"""Synthetic registers: contract validity, determinism, coverage, planted truth, knobs."""

from __future__ import annotations

import collections
import csv
import datetime as dt
import gc
import gzip
import json

import pytest

from models import hetu
from models.contract import InvalidEvent, validate
from tilannekuva import cli
from tilannekuva.synthetic import TRUTH_COLUMNS, generate, planted_truth, synthesize
from tilannekuva.synthetic import model as M

SIX = {"837", "980", "092", "609", "905", "399"}
SOURCES = {
    "dvv",
    "kela",
    "incomes",
    "employment",
    "koski",
    "varda",
    "avohilmo",
    "hilmo",
    "child_welfare",
    "social_services",
}


@pytest.fixture(scope="module")
def small():
    return synthesize(600, seed=3)


@pytest.fixture(scope="module")
def moderate():
    result = synthesize(5000, seed=11)
    gc.disable()  # half a million small dicts: the cyclic collector only costs time here
    try:
        result.parsed = list(result.events())
    finally:
        gc.enable()
    return result


def _utc(recorded_at: str) -> dt.datetime:
    return dt.datetime.fromisoformat(recorded_at).astimezone(dt.UTC)


# ----------------------------------------------------------------- contract validity
def test_every_event_validates_against_the_contract(small):
    assert len(small.lines) > 30_000
    ids = set()
    for line in small.lines:
        ev = validate(line)  # raises InvalidEvent on any breach
        ids.add(ev["event_id"])
    assert len(ids) == len(small.lines), "event ids are unique"


def test_dates_order_and_envelope(small):
    events = list(small.events())
    prev = None
    for e in events:
        assert e["schema"] == "register-event/1"
        occurred = dt.date.fromisoformat(e["occurred_at"])
        assert dt.date(1900, 1, 1) <= occurred <= dt.date(2026, 6, 30)
        assert occurred <= dt.date.fromisoformat(e["recorded_at"][:10])
        stamp = _utc(e["recorded_at"])
        assert prev is None or prev <= stamp, "sorted by recorded_at without the out-of-order knob"
        prev = stamp
        if e["type"] == "family.residence_changed":
            assert "person" not in e
    # Most events are recorded a few days after they occurred (the initial load aside).
    lags = [
        (
            dt.date.fromisoformat(e["recorded_at"][:10]) - dt.date.fromisoformat(e["occurred_at"])
        ).days
        for e in events
        if e["occurred_at"] >= "2023-08-01"
    ]
    assert min(lags) >= 1 and max(lags) <= 30


def test_no_truth_fields_in_events(small):
    truth_families = {t["family"] for t in small.truth}
    for line in small.lines:
        assert "archetype" not in line and "need_level" not in line
    # but the truth's families are the events' DVV family ids
    families = {e["data"]["family"] for e in small.events() if e["source"] == "dvv"}
    assert truth_families == families


def test_identity_codes_unique_per_person_and_consistent(small):
    born_of: dict[str, str] = {}
    fam_ids = set()
    for e in small.events():
        if e["type"] == "family.member_added":
            code, born = e["person"], e["data"]["birth_date"]
            assert hetu.birth_date(code).isoformat() == born
            assert born_of.setdefault(code, born) == born
            fam_ids.add(e["data"]["family"])
            assert dt.date.fromisoformat(e["occurred_at"]) >= dt.date.fromisoformat(born)
    # one code, one person: birth dates agree, and persons are many
    assert len(born_of) > 2 * 600
    assert all(f[0] == "F" and f[1:].isdigit() for f in fam_ids)


def test_parents_aged_20_to_45_at_births(small):
    members = collections.defaultdict(list)
    for e in small.events():
        if e["type"] == "family.member_added":
            members[e["data"]["family"]].append(
                (e["data"]["role"], dt.date.fromisoformat(e["data"]["birth_date"]))
            )
    checked = 0
    for ms in members.values():
        parents = [b for role, b in ms if role == "parent"]
        kids = [b for role, b in ms if role == "child"]
        for k in kids:
            # some parent of the family was 20..45 when the child was born
            assert any(19.9 <= (k - p).days / 365.25 <= 46 for p in parents), (parents, k)
            checked += 1
    assert checked > 600


# ----------------------------------------------------------------- determinism
def test_same_seed_gives_byte_identical_files(tmp_path):
    args = [
        "--families",
        "120",
        "--duplicates",
        "0.02",
        "--out-of-order",
        "0.02",
        "--retractions",
        "0.02",
        "--malformed",
        "0.02",
    ]
    outs = []
    for name, seed in (("a.jsonl.gz", "5"), ("b.jsonl.gz", "5"), ("c.jsonl.gz", "6")):
        path = tmp_path / name
        assert cli.main(["generate", "--seed", seed, "--out", str(path), *args]) == 0
        outs.append((path.read_bytes(), (tmp_path / (name + ".truth.csv")).read_bytes()))
    assert outs[0] == outs[1]
    assert outs[0][0] != outs[2][0]
    lines = gzip.decompress(outs[0][0]).decode().splitlines()
    assert len(lines) > 5000


def test_truth_csv_matches_planted_truth(tmp_path):
    out = tmp_path / "ev.jsonl"
    truth = tmp_path / "t.csv"
    assert (
        cli.main(
            [
                "generate",
                "--families",
                "80",
                "--seed",
                "2",
                "--out",
                str(out),
                "--truth",
                str(truth),
            ]
        )
        == 0
    )
    rows = list(csv.DictReader(truth.open()))
    assert tuple(rows[0]) == TRUTH_COLUMNS
    expected = planted_truth(80, 2)
    assert [(r["family"], int(r["archetype"]), int(r["need_level"])) for r in rows] == [
        (t["family"], t["archetype"], t["need_level"]) for t in expected
    ]
    assert all(0 <= int(r["archetype"]) <= 99 and 1 <= int(r["need_level"]) <= 10 for r in rows)
    assert len(rows) >= 80


# ----------------------------------------------------------------- coverage at moderate size
def test_municipalities_areas_and_sources(moderate):
    munis, areas, sources, types = set(), set(), set(), set()
    for e in moderate.parsed:
        sources.add(e["source"])
        types.add(e["type"])
        if e["type"] == "family.residence_changed" and e["data"]["municipality"] in SIX:
            munis.add(e["data"]["municipality"])
            areas.add(e["data"]["postcode"])
    assert munis == SIX
    assert len(areas) >= 140
    assert sources == SOURCES
    expected_types = {
        "family.member_added",
        "family.member_removed",
        "family.residence_changed",
        "benefit.started",
        "benefit.ended",
        "income.reported",
        "employment.status_changed",
        "education.completed",
        "school.support_changed",
        "ecec.started",
        "ecec.ended",
        "health.visit",
        "care.episode",
        "child_welfare.notification",
        "child_welfare.client_started",
        "child_welfare.client_ended",
        "child_welfare.placement_started",
        "child_welfare.placement_ended",
        "social_service.started",
        "social_service.ended",
    }
    assert types == expected_types


def test_planted_shares(moderate):
    levels = collections.Counter(t["need_level"] for t in moderate.truth)
    n = sum(levels.values())
    at_least_4 = sum(v for k, v in levels.items() if k >= 4) / n
    top = (levels[9] + levels[10]) / n
    assert 1 / 3 <= at_least_4 <= 0.42
    assert 0.08 <= top <= 0.12
    assert set(levels) == set(range(1, 11))
    assert len({t["archetype"] for t in moderate.truth}) >= 95


def test_municipality_sizes_follow_households_with_children(moderate):
    munis = M.load_municipalities()
    hh = {c: m.households_with_children for c, m in munis.items()}
    first = {}
    for t in moderate.truth:
        first.setdefault(t["municipality"], 0)
        first[t["municipality"]] += 1
    total = sum(hh.values())
    for code in SIX:
        share = first.get(code, 0) / len(moderate.truth)
        assert abs(share - hh[code] / total) < 0.04, code


def _family_of(events) -> dict[str, str]:
    fam = {}
    for e in events:
        if e["type"] == "family.member_added":
            fam.setdefault(e["person"], e["data"]["family"])
    return fam


def test_higher_need_means_more_services(moderate):
    events = moderate.parsed
    family_of = _family_of(events)
    level = {t["family"]: t["need_level"] for t in moderate.truth}
    per = collections.defaultdict(collections.Counter)
    for e in events:
        f = family_of.get(e.get("person"))
        if f is None:
            continue
        d = e["data"]
        if e["type"] == "benefit.started" and d["benefit"] == "basic_social_assistance":
            per[f]["sa"] += 1
        elif e["type"] == "health.visit" and d["service"] == "mental_health":
            per[f]["mh"] += 1
        elif e["source"] == "child_welfare":
            per[f]["cw"] += 1
        elif e["type"] == "social_service.started":
            per[f]["ss"] += 1
        elif e["type"] == "employment.status_changed" and d["status"] == "unemployed":
            per[f]["une"] += 1

    def mean(key, lo, hi):
        fams = [f for f, lv in level.items() if lo <= lv <= hi]
        return sum(per[f][key] for f in fams) / len(fams)

    for key, factor in (("sa", 3), ("mh", 3), ("cw", 3), ("ss", 3), ("une", 2)):
        assert mean(key, 9, 10) > factor * mean(key, 1, 3), key
        assert mean(key, 4, 8) > mean(key, 1, 3), key


def test_area_variation(moderate):
    corridor = {
        "01300",
        "01600",
        "01620",
        "01360",
        "01450",
        "01400",
        "01200",
        "01280",
        "01610",
        "01350",
    }
    areas = {a.postcode: a for a in M.load_areas()}
    lv_corr, lv_sparse, lv_all = [], [], []
    for t in moderate.truth:
        lv_all.append(t["need_level"])
        a = areas.get(t["postcode"])
        if t["postcode"] in corridor:
            lv_corr.append(t["need_level"])
        elif a is not None and a.propensity < -0.2:
            lv_sparse.append(t["need_level"])
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    assert len(lv_corr) > 300 and len(lv_sparse) > 50
    assert mean(lv_corr) > mean(lv_all) + 0.4 > mean(lv_sparse) + 0.4


def test_archetypes_differ_in_their_events(moderate):
    """Families of different patterns leave different event profiles (not trivially equal)."""
    events = moderate.parsed
    family_of = _family_of(events)
    arch = {t["family"]: M.ARCHETYPES[t["archetype"]] for t in moderate.truth}
    prof = collections.defaultdict(collections.Counter)
    for e in events:
        f = family_of.get(e.get("person"))
        if f is not None and f in arch:
            a = arch[f]
            if a.severity >= 0.68:
                prof[a.pattern][
                    e["type"] + ":" + str(e["data"].get("service") or e["data"].get("benefit"))
                ] += 1
    n_fam = collections.Counter(a.pattern for f, a in arch.items() if a.severity >= 0.68)

    def rate(pattern, key):
        return prof[pattern][key] / n_fam[pattern]

    assert rate("substance use", "health.visit:substance_abuse") > 3 * rate(
        "low income", "health.visit:substance_abuse"
    )
    assert rate("low income", "benefit.started:basic_social_assistance") > 2 * rate(
        "isolation", "benefit.started:basic_social_assistance"
    )
    assert rate("low income", "benefit.started:housing_allowance") > 3 * rate(
        "child with special needs", "benefit.started:housing_allowance"
    )
    assert rate("chronic illness", "health.visit:primary_care") > 1.5 * rate(
        "well-off", "health.visit:primary_care"
    )


# ----------------------------------------------------------------- knobs
@pytest.fixture(scope="module")
def knobbed():
    return synthesize(
        300, seed=9, duplicates=0.03, out_of_order=0.03, retractions=0.03, malformed=0.03
    )


def test_malformed_lines_all_fail_and_the_rest_pass(knobbed):
    failed = 0
    for line in knobbed.lines:
        try:
            validate(line)
        except InvalidEvent:
            failed += 1
    assert knobbed.counts["malformed"] > 100
    assert failed == knobbed.counts["malformed"]


def test_malformed_variety():
    r = synthesize(150, seed=4, malformed=0.05)
    codes = collections.Counter()
    for line in r.lines:
        try:
            validate(line)
        except InvalidEvent as exc:
            codes[exc.code] += 1
    assert {
        "not_json",
        "not_object",
        "schema",
        "envelope",
        "unknown_type",
        "person",
        "dates",
        "data",
    } <= set(codes)


def test_duplicates_are_identical_lines(knobbed):
    by_id = collections.defaultdict(list)
    for line in knobbed.lines:
        try:
            ev = validate(line)
        except InvalidEvent:
            continue
        by_id[ev["event_id"]].append(line)
    repeated = {k: v for k, v in by_id.items() if len(v) > 1}
    assert sum(len(v) - 1 for v in repeated.values()) == knobbed.counts["duplicates"] > 100
    assert all(len(set(v)) == 1 for v in repeated.values())


def test_retractions_reference_real_events(knobbed):
    events = [e for e in knobbed.events() if isinstance(e, dict)]
    position = {}
    for i, e in enumerate(events):
        if e.get("type") != "event.retracted" and "event_id" in e:
            position.setdefault(e["event_id"], i)
    retractions = [(i, e) for i, e in enumerate(events) if e.get("type") == "event.retracted"]
    valid_retr = []
    for i, e in retractions:
        try:
            validate(e)
        except InvalidEvent:
            continue  # a malformed copy
        valid_retr.append((i, e))
    assert len(valid_retr) >= knobbed.counts["retractions"]
    assert all(e["data"]["event_id"] in position for _, e in valid_retr)
    before = sum(1 for i, e in valid_retr if i < position[e["data"]["event_id"]])
    assert before >= 10
    assert any("person" not in e for _, e in valid_retr) and any(
        "person" in e for _, e in valid_retr
    )


def test_out_of_order_moves_lines_far(knobbed):
    stamps = []
    for e in knobbed.events():
        if isinstance(e, dict) and isinstance(e.get("recorded_at"), str):
            try:
                stamps.append(_utc(e["recorded_at"]))
            except ValueError:
                pass
    far = sum(1 for a, b in zip(stamps, stamps[1:], strict=False) if a - b > dt.timedelta(days=30))
    assert knobbed.counts["out_of_order"] > 100
    assert far > knobbed.counts["out_of_order"] / 4


def test_knobs_do_not_change_the_valid_events(knobbed):
    clean = synthesize(300, seed=9)
    ids_clean = {json.loads(line)["event_id"] for line in clean.lines}
    ids = set()
    for line in knobbed.lines:
        try:
            ev = validate(line)
        except InvalidEvent:
            continue
        if ev["type"] != "event.retracted":
            ids.add(ev["event_id"])
    assert ids == ids_clean
    assert clean.truth == knobbed.truth


def test_generate_api_yields_dicts_and_strings():
    out = list(generate(40, seed=1, malformed=0.05))
    assert any(isinstance(e, str) for e in out)
    assert sum(isinstance(e, dict) for e in out) > 1000


def test_bad_knob_rejected():
    with pytest.raises(ValueError):
        synthesize(10, 1, duplicates=1.5)
