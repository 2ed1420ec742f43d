"""The alert evaluation (tilannekuva/evaluate_alerts.py): the methods side by side on a
world with planted shifts, in the report's shape."""

from __future__ import annotations

import json

from tilannekuva.evaluate_alerts import evaluate


def test_the_evaluation_reports_the_methods_side_by_side():
    report = evaluate(600, seed=3, shifts=4, methods=("rise5pp", "cusum"))
    assert set(report["methods"]) == {"rise5pp", "cusum"}
    assert report["scored_from"] > "2025-07-01" and report["shifts"] == 4
    for r in report["methods"].values():
        assert {
            "detected_share",
            "detected_share_large",
            "median_delay_days",
            "p90_delay_days",
            "false_per_100_area_months",
            "ppv",
            "alerts_per_municipality_week",
        } <= set(r)
        assert len(r["shifts"]) == 4
    assert report["best"] in (None, *report["methods"])
    g = report["groups"]
    assert g["planted_pp"] == 0.0 and g["at_onset"]["as_of"] < g["after"]["as_of"]
    json.dumps(report)
