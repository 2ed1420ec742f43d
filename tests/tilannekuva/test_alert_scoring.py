"""Alerts against planted shifts (tilannekuva/alert_scoring.py): what detects, what is
explained, what is false, and the figures built on them."""

from __future__ import annotations

import pytest

from tilannekuva.alert_scoring import score

AREAS = {"33100": "837", "33200": "837", "28100": "609"}


def shift(id_, scope_type, scope, onset, planted, *, direction="up", families=400, muni=None):
    unit = "rate_ratio" if any("_30d" in k or "_90d" in k for k in planted) else "percentage_points"
    return {
        "id": id_,
        "scope_type": scope_type,
        "scope": scope,
        "municipality": muni or (AREAS.get(scope) if scope_type == "area" else scope),
        "onset": onset,
        "direction": direction,
        "unit": unit,
        "planted": planted,
        "families_at_onset": families,
    }


def alert(scope, series, day):
    return {"scope_key": scope, "series": series, "as_of": day}


def run(alerts, truth, lo="2024-07-01", hi="2025-06-30"):
    return score(alerts, truth, lo, hi, AREAS)


def test_an_alert_before_the_onset_is_false_and_the_first_after_it_sets_the_delay():
    truth = [shift("S1", "area", "33100", "2025-01-10", {"families_unemployed_parent": 6.0})]
    r = run(
        [
            alert("a:33100", "families_unemployed_parent", "2025-01-01"),
            alert("a:33100", "families_unemployed_parent", "2025-02-05"),
            alert("a:33100", "families_unemployed_parent", "2025-01-30"),
        ],
        truth,
    )
    assert r["false_alerts"] == 1 and r["true_alerts"] == 2
    assert r["shifts"]["S1"]["delay_days"] == 20 and r["median_delay_days"] == 20.0
    assert r["detected_share_large"] == 1.0  # 20 days: within 21
    assert r["detected_share"] == 1.0


def test_the_large_share_counts_detection_within_21_days_in_scopes_of_100_or_more():
    truth = [
        shift("S1", "area", "33100", "2025-01-10", {"families_unemployed_parent": 6.0}),
        shift(
            "S2", "area", "33200", "2025-01-10", {"families_unemployed_parent": 6.0}, families=60
        ),
        shift("S3", "municipality", "609", "2025-01-10", {"child_welfare_notifications_30d": 2.5}),
        shift("S4", "area", "28100", "2025-01-10", {"mental_health_visits_90d": 1.5}),
    ]
    r = run(
        [
            alert("a:33100", "families_unemployed_parent", "2025-01-31"),  # 21 days: in time
            alert("a:33200", "families_unemployed_parent", "2025-01-12"),  # small scope
            alert("m:609", "child_welfare_notifications_30d", "2025-02-01"),  # 22 days: late
        ],
        truth,
    )
    assert r["large_shifts"] == 2  # S1 and S3: S2 is too small a scope, S4 too small a rise
    assert r["detected_share_large"] == 0.5
    assert r["detected_share"] == 0.75 and r["p90_delay_days"] == pytest.approx(21.8)


def test_related_scopes_and_other_series_after_the_onset_are_explained_not_false():
    truth = [
        shift("S1", "area", "33100", "2025-01-10", {"families_unemployed_parent": 6.0}),
        shift("S2", "municipality", "609", "2025-03-01", {"g4-g10": 5.0}),
    ]
    r = run(
        [
            alert("m:837", "families_unemployed_parent", "2025-01-20"),  # its municipality
            alert("all", "families_unemployed_parent", "2025-01-20"),  # everything
            alert("a:33100", "families_social_assistance", "2025-01-20"),  # another series
            alert("a:28100", "service_need_4_10", "2025-03-10"),  # an area of the municipality
            alert("m:609", "service_need_4_10", "2025-03-10"),  # S2's own cell: detects
            alert("a:33200", "families_unemployed_parent", "2025-01-20"),  # a sibling: false
        ],
        truth,
    )
    assert (r["true_alerts"], r["explained_alerts"], r["false_alerts"]) == (1, 4, 1)
    assert r["shifts"]["S2"]["delay_days"] == 9 and r["shifts"]["S1"]["delay_days"] is None
    assert r["ppv"] == 0.5


def test_a_rise_alert_on_a_planted_improvement_is_false():
    truth = [
        shift(
            "S1",
            "area",
            "33100",
            "2025-01-10",
            {"families_unemployed_parent": -4.0},
            direction="down",
        )
    ]
    r = run([alert("a:33100", "families_unemployed_parent", "2025-02-01")], truth)
    assert r["false_alerts"] == 1 and r["shifts_rising"] == 0 and r["detected_share"] is None


def test_rates_of_false_alerts_and_of_alerts_per_municipality_week():
    # 365 days, 3 areas: 12 area-months each; 52.1 weeks, 6 municipalities
    r = run([alert("a:33200", "families_child_welfare", "2025-01-01")] * 6, [])
    assert r["false_per_100_area_months"] == pytest.approx(
        100 * 6 / (3 * 365 / (365.25 / 12)), abs=1e-3
    )
    assert r["alerts_per_municipality_week"] == pytest.approx(6 / (6 * 365 / 7), abs=1e-3)
    # alerts outside the scored days are left out
    assert run([alert("a:33200", "families_child_welfare", "2026-01-01")], [])["alerts"] == 0


def test_the_power_curve_bins_by_size_and_scope():
    truth = [
        shift(
            "S1", "area", "33100", "2025-01-10", {"families_unemployed_parent": 3.0}, families=50
        ),
        shift(
            "S2", "area", "33200", "2025-01-10", {"families_unemployed_parent": 8.0}, families=800
        ),
    ]
    r = run([alert("a:33200", "families_unemployed_parent", "2025-01-15")], truth)
    bins = {(tuple(b["size"]), tuple(b["families"])): b for b in r["by_size"]}
    assert bins[((0.0, 4.0), (0, 100))]["share"] == 0.0
    assert bins[((6.0, 100.0), (500, 10**9))]["share"] == 1.0
