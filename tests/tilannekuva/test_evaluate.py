"""tilannekuva evaluate: report structure, ranges and determinism on a small run."""

from __future__ import annotations

import json

import pytest

from models.family_types import TypeAssigner, family_group
from models.features import state_vector
from tilannekuva import cli
from tilannekuva.evaluate import evaluate, final_states
from tilannekuva.synthetic import synthesize

KEYS = {
    "families",
    "seed",
    "cuts",
    "events",
    "counted_families",
    "n_types",
    "snapshots",
    "ari",
    "ari_batch",
    "ari_ratio",
    "kappa",
    "group_shares",
    "planted_shares",
    "shares_max_diff_pp",
    "share_ge4",
    "planted_share_ge4",
    "share_9_10",
    "planted_share_9_10",
    "churn",
    "churn_families",
    "timing",
}


@pytest.fixture(scope="module")
def report():
    return evaluate(120, seed=5, n_types=8)


def test_report_structure_and_ranges(report):
    assert set(report) == KEYS
    assert report["families"] == 120 and report["seed"] == 5
    assert 0 < report["counted_families"] <= 140  # in-movers and separations add families
    assert 1 <= report["n_types"] <= 8 and report["snapshots"] >= 2
    for k in ("ari", "ari_batch"):
        assert -1.0 <= report[k] <= 1.0
    assert -1.0 <= report["kappa"] <= 1.0
    assert len(report["group_shares"]) == len(report["planted_shares"]) == 10
    assert (
        abs(sum(report["group_shares"]) - 1) < 1e-3
        and abs(sum(report["planted_shares"]) - 1) < 1e-3
    )
    assert 0.0 <= report["shares_max_diff_pp"] <= 100.0
    assert 0.0 <= report["churn"] <= 1.0
    assert report["churn"] == round(report["churn_families"] / report["counted_families"], 5)
    assert report["timing"]["vectors_learnt"] > 0
    json.dumps(report)


def test_deterministic_for_a_seed(report):
    again = evaluate(120, seed=5, n_types=8)
    strip = lambda r: {k: v for k, v in r.items() if k != "timing"}  # noqa: E731
    assert strip(again) == strip(report)


def test_cli_json(capsys):
    assert cli.main(["evaluate", "--families", "40", "--seed", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == KEYS and out["families"] == 40


def test_family_group_on_final_states():
    synth = synthesize(30, 4)
    states, _ = final_states(e for e in synth.events() if isinstance(e, dict))
    vecs = [state_vector(s) for s in states.values()]
    snap = {
        "schema": "family-types/1",
        "version": 1,
        "features": list(vecs[0]),
        "weights": [1.0] * len(vecs[0]),
        "means": [0.0] * len(vecs[0]),
        "stds": [1.0] * len(vecs[0]),
        "centroids": [list(vecs[0].values()), list(vecs[1].values())],
        "type_ids": [0, 1],
        "groups": [3, 9],
    }
    a = TypeAssigner.from_snapshot(snap)
    groups = [family_group(s, a) for s in states.values()]
    assert set(groups) <= {3, 9} and groups[0] == 3 and groups[1] == 9
    assert family_group(next(iter(states.values())), None) is None
