"""tilannekuva evaluate: the report's invariants, the model against broken baselines in
the same run, determinism."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from models.family_types import TypeAssigner, family_group
from models.features import state_vector
from tilannekuva import cli
from tilannekuva.evaluate import evaluate, final_states, score, stream
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
FAMILIES, SEED, N_TYPES = 200, 5, 8


@pytest.fixture(scope="module")
def run():
    return stream(FAMILIES, SEED, n_types=N_TYPES)


@pytest.fixture(scope="module")
def report(run):
    return score(run)


def shuffled_truth(run, seed: int) -> dict[str, dict]:
    """The planted rows of the counted families dealt out among them: the same planted
    shares, no signal left."""
    fams = sorted(set(run.truth) & set(run.vectors))
    rows = [run.truth[f] for f in fams]
    random.Random(seed).shuffle(rows)
    return dict(zip(fams, rows, strict=True))


def test_the_model_beats_a_shuffled_truth_by_a_margin(run, report):
    """Types and groups carry the planted structure: dealt to the wrong families, the
    same run's types and groups agree with it no better than chance."""
    broken = [score(run, shuffled_truth(run, s)) for s in range(3)]
    assert report["kappa"] >= 0.6
    assert report["kappa"] >= max(b["kappa"] for b in broken) + 0.4
    assert report["ari"] >= max(b["ari"] for b in broken) + 0.015
    assert report["ari_batch"] >= max(b["ari_batch"] for b in broken) + 0.015
    for b in broken:  # the same families, types and groups: only the truth moved
        assert b["counted_families"] == report["counted_families"]
        assert b["group_shares"] == report["group_shares"]
        assert b["planted_shares"] == report["planted_shares"]


def test_counted_families_and_planted_shares_match_the_batch_reduction(run, report):
    """The families the stream counts at the end, and their planted need levels, are
    those of the batch reduction of the same history (an independent path)."""
    synth = synthesize(FAMILIES, SEED)
    states, _ = final_states(e for e in synth.events() if isinstance(e, dict))
    truth = {row["family"]: row for row in synth.truth}
    fams = sorted(f for f in states if f in truth)
    assert report["counted_families"] == len(fams) > 0
    assert set(run.vectors) & set(truth) == set(fams)
    levels = np.bincount([truth[f]["need_level"] for f in fams], minlength=11)[1:]
    assert report["planted_shares"] == [round(float(x), 4) for x in levels / len(fams)]
    assert report["events"] == sum(1 for e in synth.events() if isinstance(e, dict))


def test_report_invariants(run, report):
    assert set(report) == KEYS
    assert report["families"] == FAMILIES and report["seed"] == SEED
    assert report["cuts"] == "calibrated to REFERENCE_SHARES, frozen at the baseline"
    n = report["counted_families"]
    # Groups: one per counted family, every one in 1 … 10, the shares of the final snapshot.
    groups = [family_group(run.states[f], run.assigner) for f in sorted(run.vectors)]
    assert len(groups) == n and set(groups) <= set(range(1, 11))
    counts = np.bincount(groups, minlength=11)[1:]
    assert report["group_shares"] == [round(float(c / n), 4) for c in counts]
    shares, planted = np.asarray(report["group_shares"]), np.asarray(report["planted_shares"])
    assert report["shares_max_diff_pp"] == pytest.approx(
        100 * np.abs(shares - planted).max(), abs=0.011
    )
    assert report["share_ge4"] == pytest.approx(shares[3:].sum(), abs=5e-4 * 7)
    assert report["planted_share_9_10"] == pytest.approx(planted[8:].sum(), abs=1e-3)
    # Types: those of the last snapshot, as many as in use.
    assert report["n_types"] == len({run.types[f] for f in run.vectors}) <= N_TYPES
    assert set(run.types.values()) <= set(run.assigner.type_ids.tolist())
    assert report["ari_ratio"] == pytest.approx(report["ari"] / report["ari_batch"], rel=0.01)
    assert report["churn"] == round(report["churn_families"] / n, 5)
    assert report["snapshots"] >= 2 and run.before is not None
    assert report["timing"]["vectors_learnt"] == run.vectors_learnt >= n
    json.dumps(report)


def test_deterministic_for_a_seed():
    first, again = (evaluate(60, seed=3, n_types=6) for _ in range(2))
    strip = lambda r: {k: v for k, v in r.items() if k != "timing"}  # noqa: E731
    assert strip(again) == strip(first)


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
