"""The learner's pure step (models/learning.py): warm-up, snapshot timing by W and wall
time, forced snapshots, forgetting, the sample refill, re-bases and resuming."""

from __future__ import annotations

import datetime as dt
import json
import random

import numpy as np
import pytest

from models.family_types import FamilyTypes
from models.features import FEATURE_NAMES
from models.learning import Learner, LearnerBatch, rebase_request, snapshot_due
from models.picture import day

SMALL = {"features": ("a", "b"), "weights": (1, 1), "rule": None}
W0 = "2026-01-01"


def w(days: int) -> str:
    return (dt.date.fromisoformat(W0) + dt.timedelta(days=days)).isoformat()


def vectors(n: int, start: int = 0, seed: int = 0) -> list[tuple[str, dict]]:
    """``n`` families f<start>… in three well separated clusters."""
    rng = random.Random(seed + start)
    return [
        (f"f{i}", {"a": rng.gauss(5 * (i % 3), 0.2), "b": rng.gauss(-3 * (i % 3), 0.2)})
        for i in range(start, start + n)
    ]


def small(**kw) -> Learner:
    kw = {"n_types": 3, "warmup": 30, "calibrate_shares": None, "model_params": SMALL, **kw}
    return Learner(**kw)


def seeded(learner: Learner | None = None, n: int = 30):
    """A learner whose model is seeded, with its first snapshot published at W0, now 0."""
    learner = learner or small()
    state, snap = learner.step(learner.start(None), LearnerBatch(vectors(n)), W0, now=0.0)
    assert snap is not None
    return learner, state


# --------------------------------------------------------------------------- snapshots


def test_warm_up_then_the_first_snapshot():
    learner = small()
    state = learner.start(None)
    state, snap = learner.step(state, LearnerBatch(vectors(29)), W0, now=0.0)
    assert snap is None and not state.model.initialised and state.last is None
    state, snap = learner.step(state, LearnerBatch(vectors(1, start=29)), w(1), now=5.0)
    assert state.model.initialised and snap["version"] == 1
    assert (
        snap["published"]
        == state.last
        == {"w_day": day(w(1)), "at": 5.0, "as_of": w(1), "first_w_day": day(W0)}
    )
    json.dumps(snap)  # publishable as it is
    state, snap = learner.step(state, LearnerBatch(vectors(5, start=30)), w(2), now=500.0)
    assert snap is None and state.model.n_seen == 35


def test_no_watermark_no_snapshot():
    learner = small()
    state, snap = learner.step(learner.start(None), LearnerBatch(vectors(30)), None, now=0.0)
    assert state.model.initialised and snap is None and state.last is None
    state, snap = learner.step(state, LearnerBatch(), W0, now=0.0)
    assert snap["version"] == 1


def test_scheduled_snapshots_need_both_w_days_and_wall_time():
    learner, state = seeded(small(snapshot_days=30, min_interval_s=60.0))
    empty = LearnerBatch()
    state, snap = learner.step(state, empty, w(29), now=1e6)  # W not far enough
    assert snap is None
    state, snap = learner.step(state, empty, w(45), now=59.0)  # too soon in wall time
    assert snap is None
    state, snap = learner.step(state, empty, w(45), now=60.0)
    assert snap["version"] == 2 and state.last == {
        "w_day": day(w(45)),
        "at": 60.0,
        "as_of": w(45),
        "first_w_day": day(W0),
    }
    state, snap = learner.step(state, empty, w(74), now=1e6)  # counted from the last one
    assert snap is None
    state, snap = learner.step(state, empty, w(75), now=1e6)
    assert snap["version"] == 3


def test_a_slow_adoption_spaces_the_next_snapshot_by_its_share():
    """Adopting the last snapshot took a worker 20 s: at most a quarter of the time goes
    to adoptions, so the next waits 80 s, not the 60 s minimum; none: no bound."""
    learner, state = seeded(small(snapshot_days=30, min_interval_s=60.0, adoption_share=0.25))
    empty = LearnerBatch()
    state, snap = learner.step(state, empty, w(45), now=79.0, adoption_s=20.0)
    assert snap is None
    state, snap = learner.step(state, empty, w(45), now=80.0, adoption_s=20.0)
    assert snap["version"] == 2
    unbounded, state = seeded(small(snapshot_days=30, min_interval_s=60.0, adoption_share=None))
    state, snap = unbounded.step(state, empty, w(45), now=60.0, adoption_s=1e6)
    assert snap["version"] == 2


def test_snapshot_days_none_publishes_only_when_asked():
    learner = small(snapshot_days=None)
    state, snap = learner.step(learner.start(None), LearnerBatch(vectors(40)), W0, now=0.0)
    assert state.model.initialised and snap is None  # not even a first one
    state, snap = learner.step(state, LearnerBatch(), w(400), now=1e9)
    assert snap is None
    state, snap = learner.step(state, LearnerBatch(snapshot=True), w(400), now=1e9)
    assert snap["version"] == 1 and state.last["as_of"] == w(400)


def test_a_forced_snapshot_seeds_the_model_before_its_warm_up_is_full():
    learner = small(warmup=1000, snapshot_days=None)
    state, snap = learner.step(learner.start(None), LearnerBatch(vectors(12)), W0, now=0.0)
    assert snap is None and not state.model.initialised
    state, snap = learner.step(state, LearnerBatch(vectors(3, start=12), snapshot=True), W0, 1.0)
    assert state.model.initialised and snap["version"] == 1 and state.model.n_seen == 15
    # Forced twice in a row: two versions (the caller decides).
    state, snap = learner.step(state, LearnerBatch(snapshot=True), W0, 1.0)
    assert snap["version"] == 2


def test_a_forced_snapshot_of_nothing_is_no_snapshot():
    learner = small()
    state, snap = learner.step(learner.start(None), LearnerBatch(snapshot=True), W0, now=0.0)
    assert snap is None and not state.model.initialised


def test_step_learns_as_the_model_does():
    """The step adds no learning of its own: same vectors, same model."""
    learner, state = seeded(n=30)
    for k in range(3):
        state, _ = learner.step(state, LearnerBatch(vectors(20, start=30 + 20 * k)), W0, now=0.0)
    model = FamilyTypes(n_types=3, warmup=30, seed=42, **SMALL)
    model.learn_many([v for _, v in vectors(30)], keys=[f for f, _ in vectors(30)])
    for k in range(3):
        batch = vectors(20, start=30 + 20 * k)
        model.learn_many([v for _, v in batch], keys=[f for f, _ in batch])
    np.testing.assert_array_equal(state.model.centroids, model.centroids)
    assert state.model.n_seen == model.n_seen == 90


def test_project_defaults_calibrate_the_groups():
    """With the real features and REFERENCE_SHARES, every snapshot carries ten groups."""
    rng = np.random.default_rng(1)
    learner = Learner(n_types=12, warmup=200)
    batch = LearnerBatch(
        [
            (
                f"f{i}",
                dict(zip(FEATURE_NAMES, rng.random(len(FEATURE_NAMES)).tolist(), strict=True)),
            )
            for i in range(300)
        ]
    )
    state, snap = learner.step(learner.start(None), batch, W0, now=0.0)
    assert snap["version"] == 1 and len(snap["type_ids"]) == 12
    assert set(snap["groups"]) <= set(range(1, 11)) and snap["cuts"] is not None


# --------------------------------------------------------------------------- the sample


def test_forget_drops_a_family_from_the_sample():
    learner, state = seeded(n=30)
    assert state.model.sample_size == 30
    state, _ = learner.step(
        state, LearnerBatch([("f3", None), ("f4", None), ("nobody", None)]), W0, 0.0
    )
    assert state.model.sample_size == 28 and state.model.n_seen == 30


def test_within_a_batch_a_familys_last_entry_wins():
    learner, state = seeded(n=30)
    vec = {"a": 1.0, "b": 1.0}
    # learnt, then no longer counted: learnt from, but not in the sample afterwards
    state, _ = learner.step(state, LearnerBatch([("new", vec), ("new", None)]), W0, 0.0)
    assert state.model.sample_size == 30 and state.model.n_seen == 31
    # forgotten, then counted again: in the sample with its new vector
    state, _ = learner.step(state, LearnerBatch([("f1", None), ("f1", vec)]), W0, 0.0)
    assert state.model.sample_size == 30 and state.model.n_seen == 32
    state, _ = learner.step(state, LearnerBatch([("f1", None)]), W0, 0.0)
    assert state.model.sample_size == 29


def test_a_sample_refill_is_remembered_not_learnt():
    learner, state = seeded(n=30)
    centroids, n_seen = state.model.centroids.copy(), state.model.n_seen
    refill = LearnerBatch(sample=vectors(10, start=100))
    state, snap = learner.step(state, refill, W0, now=0.0)
    assert snap is None and state.model.n_seen == n_seen
    np.testing.assert_array_equal(state.model.centroids, centroids)
    assert state.model.sample_size == 40
    state, _ = learner.step(state, LearnerBatch(sample=vectors(10, start=100)), W0, 0.0)
    assert state.model.sample_size == 40  # a family is sampled once, with its latest vector


# --------------------------------------------------------------------------- re-base


def test_a_rebase_is_carried_out_once():
    learner, state = seeded(n=30)
    state, snap = learner.step(state, LearnerBatch(rebase=["r1"]), w(1), now=1.0)
    assert snap["generation"] == 1 and snap["lineage"]["request"] == "r1"
    assert sorted(new for _, new in snap["lineage"]["mapping"]) == sorted(snap["type_ids"])
    assert snap["published"] == state.last and state.last["as_of"] == w(1)
    assert state.notes == ["rebase r1: generation 1, 3 types re-based"]
    # The same request again (a replay of the topic): nothing happens.
    state, snap = learner.step(state, LearnerBatch(rebase=["r1"]), w(2), now=2.0)
    assert snap is None and state.model.generation == 1 and state.pending == set()
    assert state.notes == ["rebase r1 ignored: carried out already (generation 1)"]
    # A new request: a new generation.
    state, snap = learner.step(state, LearnerBatch(rebase=["r2", "r2"]), w(3), now=3.0)
    assert snap["generation"] == 2 and snap["lineage"]["request"] == "r2"
    assert snap["lineage"]["from_version"] == 2


def test_a_rebase_replaces_the_scheduled_snapshot():
    learner, state = seeded(small(snapshot_days=1, min_interval_s=0.0))
    state, snap = learner.step(state, LearnerBatch(rebase=["r1"]), w(5), now=9.0)
    assert snap["generation"] == 1 and snap["version"] == 2  # one snapshot, the re-based one


def test_a_rebase_waits_for_a_full_sample_after_a_restart():
    learner, state = seeded(n=30)
    _, published = learner.step(state, LearnerBatch(snapshot=True), W0, now=0.0)
    restarted = learner.start(json.loads(json.dumps(published)))
    assert restarted.model.sample_size == 0
    restarted, snap = learner.step(restarted, LearnerBatch(rebase=["r1"]), w(1), now=1.0)
    assert snap is None and restarted.pending == {"r1"}
    assert restarted.notes == ["rebase r1 pending: the model has 0 recent vectors, needs 3"]
    restarted, snap = learner.step(restarted, LearnerBatch(sample=vectors(2)), w(1), now=1.0)
    assert snap is None and restarted.pending == {"r1"} and restarted.notes == []
    restarted, snap = learner.step(restarted, LearnerBatch(sample=vectors(1, start=2)), w(1), 1.0)
    assert snap["lineage"]["request"] == "r1" and restarted.pending == set()
    assert snap["generation"] == 1 and snap["lineage"]["from_version"] == published["version"]


def test_rebase_requests_during_warm_up_are_ignored():
    learner = small()
    state = learner.start(None)
    state, snap = learner.step(state, LearnerBatch(vectors(5), rebase=["r1"]), W0, 0.0)
    assert snap is None and state.pending == set()
    assert state.notes == ["rebase r1 ignored: the model is still warming up"]
    # Seeded, but no watermark: ignored as well, a pending request too.
    learner, state = seeded()
    state.pending.add("r0")
    state, snap = learner.step(state, LearnerBatch(rebase=["r1"]), None, 0.0)
    assert snap is None and state.pending == set() and state.model.generation == 0
    assert state.notes == [
        "rebase r0 ignored: no watermark yet",
        "rebase r1 ignored: no watermark yet",
    ]


# --------------------------------------------------------------------------- resume


def test_resume_from_a_stored_snapshot():
    learner, state = seeded(n=60)
    state, stored = learner.step(state, LearnerBatch(snapshot=True), w(3), now=7.0)
    stored = json.loads(json.dumps(stored))  # as read back from the changelog / Redis
    resumed = learner.start(stored)
    assert resumed.last == {"w_day": day(w(3)), "at": 7.0, "as_of": w(3), "first_w_day": day(W0)}
    assert resumed.model.version == 2 and resumed.model.n_seen == 60
    assert resumed.pending == set() and resumed.notes == []
    probe = {"a": 5.0, "b": -3.0}
    assert resumed.model.predict_one(probe) == state.model.predict_one(probe)
    # Its schedule continues from the stored snapshot's.
    resumed, snap = learner.step(resumed, LearnerBatch(vectors(5, start=60)), w(32), now=1e3)
    assert snap is None
    resumed, snap = learner.step(resumed, LearnerBatch(), w(33), now=1e3)
    assert snap["version"] == 3


def test_resume_keeps_a_current_state_and_takes_a_newer_snapshot():
    learner, state = seeded(n=30)
    assert learner.resume(state, None) is state
    _, snap = learner.step(state, LearnerBatch(snapshot=True), W0, now=0.0)
    stored = json.loads(json.dumps(snap))
    assert learner.resume(state, stored) is state  # our own latest
    newer = {**stored, "version": stored["version"] + 1}
    taken = learner.resume(state, newer)
    assert taken is not state and taken.model.version == newer["version"]
    fresh = learner.resume(None, None)
    assert not fresh.model.initialised and fresh.last is None


def test_from_messages_reads_the_learner_topic():
    batch = LearnerBatch.from_messages(
        [
            {"items": [["f1", {"a": 1}], ["f2", None]]},
            {"items": [], "sample": [["f3", {"a": 2}]]},
            rebase_request("r1"),
            {"items": [["f1", None]]},
            rebase_request("r1"),
        ]
    )
    assert batch.vectors == [("f1", {"a": 1}), ("f2", None), ("f1", None)]
    assert batch.sample == [("f3", {"a": 2})] and batch.rebase == ["r1"]
    assert not batch.snapshot


@pytest.mark.parametrize(
    ("last", "w_day", "now", "days", "due"),
    [
        (None, 0, 0.0, 30, True),
        (None, 0, 0.0, None, False),
        ({"w_day": 10, "at": 0.0}, 40, 60.0, 30, True),
        ({"w_day": 10, "at": 0.0}, 39, 60.0, 30, False),
        ({"w_day": 10, "at": 0.0}, 40, 59.9, 30, False),
    ],
)
def test_snapshot_due(last, w_day, now, days, due):
    assert snapshot_due(last, w_day, now, days, 60.0) is due


# --------------------------------------------------------------------------- the baseline


def _need_world(shift: float, baseline_days: int | None) -> dict[str, float]:
    """Two snapshots of a 40-type learner on 6,000 families, 59 days apart; between them
    a share ``shift`` of families from the lower half of the need scores take on the
    profile of a family in the top fifth. Returns the change in the shares of groups
    4–10 and 9–10 as published (the snapshots' assignment) and as the families' own
    need scores put them against the first snapshot's cuts."""
    from models.family_types import TypeAssigner
    from models.service_need import ServiceNeedRule
    from tests.models.test_family_types import blobs

    X, _ = blobs(6000, seed=5)
    learner = Learner(n_types=40, warmup=2000, baseline_days=baseline_days)
    state = learner.start(None)
    first = LearnerBatch([(f"f{i}", x) for i, x in enumerate(X)], snapshot=True)
    state, s1 = learner.step(state, first, W0, now=0.0)
    a1 = TypeAssigner.from_snapshot(s1)
    rule = ServiceNeedRule(cuts=s1["cuts"])
    own1 = rule.need_scores(a1.to_matrix(X), FEATURE_NAMES)
    X2 = [dict(x) for x in X]
    rng = np.random.default_rng(9)
    order = np.argsort(own1, kind="stable")
    needy, low = order[-len(X) // 5 :], order[: len(X) // 2]
    for m in rng.choice(low, size=int(shift * len(X)), replace=False):
        X2[m] = dict(X[rng.choice(needy)])
    second = LearnerBatch([(f"f{i}", x) for i, x in enumerate(X2)], snapshot=True)
    state, s2 = learner.step(state, second, w(59), now=100.0)
    a2 = TypeAssigner.from_snapshot(s2)
    g1, g2 = a1.assign_many(X)[1], a2.assign_many(X2)[1]
    own2 = rule.need_scores(a2.to_matrix(X2), FEATURE_NAMES)
    c = s1["cuts"]
    return {
        "published_4": float((g2 >= 4).mean() - (g1 >= 4).mean()),
        "published_9": float((g2 >= 9).mean() - (g1 >= 9).mean()),
        "own_4": float((own2 >= c[2]).mean() - (own1 >= c[2]).mean()),
        "own_9": float((own2 >= c[7]).mean() - (own1 >= c[7]).mean()),
        "frozen": s2["calibration"] is not None and s2["cuts"] == s1["cuts"],
    }


def test_a_rise_in_need_shows_in_the_groups_once_the_baseline_is_frozen():
    """Issue 15, item 0: 8 % of families become needy. With the calibration frozen at
    the baseline, the published share of groups 4–10 rises by what the families' own
    scores say (±1.5 pp) and that of 9–10 rises too; re-cut at every snapshot (the old
    way), the same rise is calibrated away."""
    frozen = _need_world(0.08, baseline_days=0)
    assert frozen["frozen"]
    assert frozen["own_4"] > 0.06
    assert abs(frozen["published_4"] - frozen["own_4"]) <= 0.015, frozen
    assert frozen["published_9"] >= frozen["own_9"] / 2 > 0.01, frozen
    rolling = _need_world(0.08, baseline_days=None)
    assert not rolling["frozen"] and abs(rolling["published_4"]) < 0.01, rolling


def test_no_change_in_need_leaves_the_frozen_groups_still():
    still = _need_world(0.0, baseline_days=0)
    assert still["frozen"]
    assert abs(still["published_4"]) <= 0.01 and abs(still["published_9"]) <= 0.01, still


def test_the_baseline_is_frozen_baseline_days_after_the_first_watermark():
    """Snapshots re-cut until ``baseline_days`` of W have passed since the learner's
    first step; the first snapshot after that freezes, and a restart keeps both the
    frozen calibration and the day it counts from."""
    rng = np.random.default_rng(1)

    def batch(n, start):
        return LearnerBatch(
            [
                (
                    f"f{i}",
                    dict(
                        zip(
                            FEATURE_NAMES,
                            (rng.random(len(FEATURE_NAMES)) * 3).tolist(),
                            strict=True,
                        )
                    ),
                )
                for i in range(start, start + n)
            ],
            snapshot=True,
        )

    learner = Learner(n_types=12, warmup=200, baseline_days=100)
    state, s1 = learner.step(learner.start(None), batch(300, 0), W0, now=0.0)
    assert s1["calibration"] is None and state.first_w == day(W0)
    state, s2 = learner.step(state, batch(300, 300), w(99), now=10.0)
    assert s2["calibration"] is None  # still re-cut: 99 days
    state, s3 = learner.step(state, batch(300, 600), w(100), now=20.0)
    assert s3["calibration"]["version"] == 3
    stored = json.loads(json.dumps(s3))
    resumed = learner.start(stored)
    assert resumed.first_w == day(W0) and resumed.model.calibration is not None
    resumed, s4 = learner.step(resumed, batch(300, 900), w(200), now=30.0)
    assert s4["calibration"] == s3["calibration"]
    assert s4["cuts"] == s3["cuts"] and s4["splits"] == s3["splits"]


def test_the_baseline_counts_from_the_day_the_registers_went_live():
    """An initial load of back-dated records moves W through years of history in its
    first batches. Counted from such a W, the baseline froze the groups at the first
    snapshot, on profiles that had only begun to fill (evaluate-alerts, seed 2: groups
    4–10 at 55–61 % instead of 38 %). With the live day the count starts there."""
    rng = np.random.default_rng(2)

    def batch(n, start):
        rows = rng.random((n, len(FEATURE_NAMES))) * 3
        return LearnerBatch(
            [
                (f"f{i}", dict(zip(FEATURE_NAMES, row.tolist(), strict=True)))
                for i, row in zip(range(start, start + n), rows, strict=True)
            ],
            snapshot=True,
        )

    learner = Learner(n_types=12, warmup=200, baseline_days=100)
    loading = "2019-06-01"  # W of the load's first batch, years before W0, the live day
    state, s0 = learner.step(learner.start(None), batch(300, 0), loading, now=0.0, live=W0)
    assert state.first_w == day(W0) and s0["calibration"] is None
    state, s1 = learner.step(state, batch(300, 300), W0, now=10.0, live=W0)
    assert s1["calibration"] is None  # not frozen on the load's W
    state, s2 = learner.step(state, batch(300, 600), w(99), now=20.0, live=W0)
    assert s2["calibration"] is None
    state, s3 = learner.step(state, batch(300, 900), w(100), now=30.0, live=W0)
    assert s3["calibration"]["version"] == 4
    resumed = learner.start(json.loads(json.dumps(s3)))
    assert resumed.first_w == day(W0)
    # without a live day the first watermark still counts (a stream with no load)
    state, s = learner.step(learner.start(None), batch(300, 0), loading, now=0.0)
    assert state.first_w == day(loading)
