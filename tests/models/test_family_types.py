"""Family-type learner and assigner: exactness, snapshots, stable ids, rebase."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.family_types import FamilyTypes, TypeAssigner
from models.features import FEATURE_NAMES


def blobs(n, n_profiles=30, seed=0):
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(123).random((n_profiles, len(FEATURE_NAMES))) * 5
    labels = rng.integers(n_profiles, size=n)
    X = centers[labels] + rng.normal(0, 0.4, size=(n, len(FEATURE_NAMES)))
    return [dict(zip(FEATURE_NAMES, row.round(2).tolist(), strict=True)) for row in X], labels


@pytest.fixture(scope="module")
def trained():
    X, _ = blobs(6000)
    model = FamilyTypes(n_types=100, warmup=2000, seed=0)
    for x in X:
        model.learn_one(x, key=None)
    return model, X


def brute(snap, x):
    v = np.asarray([x.get(f, 0.0) for f in snap["features"]])
    s = np.asarray(snap["weights"]) / np.asarray(snap["stds"])
    d = [
        float(
            (
                (
                    (v - np.asarray(snap["means"])) * s
                    - (np.asarray(c) - np.asarray(snap["means"])) * s
                )
                ** 2
            ).sum()
        )
        for c in snap["centroids"]
    ]
    return d


def test_warmup_then_initialised():
    m = FamilyTypes(n_types=5, warmup=20, seed=0)
    X, _ = blobs(19)
    for x in X:
        m.learn_one(x)
    assert m.predict_one(X[0]) is None
    with pytest.raises(RuntimeError):
        m.snapshot()
    m.learn_one(X[0])
    assert m.predict_one(X[0]) in range(5)


def test_assignment_equals_brute_force(trained):
    model, X = trained
    snap = model.snapshot()
    a = TypeAssigner.from_snapshot(snap)
    probe, _ = blobs(300, seed=7)
    got = a.predict_many(probe)
    for x, t in zip(probe, got, strict=True):
        d = brute(snap, x)
        best = min(d)
        pos = snap["type_ids"].index(int(t))
        assert d[pos] <= best + 1e-9 * (1 + best)
        assert model.predict_one(x) == int(t)  # learner with the same (current) metric


def test_predict_many_equals_predict_one_and_batch_independent(trained):
    model, X = trained
    a = TypeAssigner.from_snapshot(model.snapshot())
    probe = X[:700]
    full = a.predict_many(probe)
    assert [a.predict_one(x) for x in probe] == full.tolist()
    parts = np.concatenate([a.predict_many(probe[i : i + 256]) for i in range(0, 700, 256)])
    assert (parts == full).all()
    assert (a.predict_many(a.to_matrix(probe)) == full).all()
    # exact ties (a duplicated centroid) resolve to the lowest position, in any batch
    snap = model.snapshot()
    snap["centroids"][5] = list(snap["centroids"][3])
    t = TypeAssigner.from_snapshot(snap)
    x = dict(zip(FEATURE_NAMES, snap["centroids"][3], strict=True))
    assert t.predict_one(x) == snap["type_ids"][3] == t.predict_many([X[0], x, X[1]])[1]


def test_missing_features_are_zero(trained):
    model, _ = trained
    a = TypeAssigner.from_snapshot(model.snapshot())
    x = {f: 0.0 for f in FEATURE_NAMES}
    assert a.predict_one({}) == a.predict_one(x)


def test_snapshot_round_trips_through_json(trained):
    model, X = trained
    snap = model.snapshot()
    again = json.loads(json.dumps(snap))
    assert again == snap
    a, b = TypeAssigner.from_snapshot(snap), TypeAssigner.from_snapshot(again)
    assert (a.predict_many(X[:500]) == b.predict_many(X[:500])).all()
    assert len(snap["type_ids"]) == len(snap["groups"]) == 100
    assert all(1 <= g <= 10 for g in snap["groups"])


def test_restart_resumes_from_snapshot(trained):
    model, X = trained
    snap = model.snapshot()
    resumed = FamilyTypes.from_snapshot(json.loads(json.dumps(snap)))
    assert [resumed.predict_one(x) for x in X[:200]] == [model.predict_one(x) for x in X[:200]]
    resumed.learn_one(X[0])
    nxt = resumed.snapshot()
    assert nxt["version"] == snap["version"] + 1 and nxt["type_ids"] == snap["type_ids"]


def test_ids_stable_under_continued_learning():
    X, _ = blobs(8000, seed=1)
    model = FamilyTypes(n_types=100, warmup=2000, seed=0)
    for x in X[:6000]:
        model.learn_one(x)
    s1 = model.snapshot()
    for x in X[6000:]:  # same distribution, a third more data
        model.learn_one(x)
    s2 = model.snapshot()
    assert s2["type_ids"] == s1["type_ids"] and s2["generation"] == s1["generation"]
    probe = X[:6000]
    p1 = TypeAssigner.from_snapshot(s1).predict_many(probe)
    p2 = TypeAssigner.from_snapshot(s2).predict_many(probe)
    assert (p1 == p2).mean() >= 0.95


def test_hysteresis_keeps_previous_type_within_margin(trained):
    model, X = trained
    snap = model.snapshot()
    plain = TypeAssigner.from_snapshot(snap)
    sticky = TypeAssigner.from_snapshot(snap, margin=0.5)
    probe = X[:300]
    best = plain.predict_many(probe)
    other = np.roll(best, 1)
    kept = sticky.predict_many(probe, previous=other)
    d = plain.distances(probe)
    pos = {t: i for i, t in enumerate(snap["type_ids"])}
    for i, (b, o, k) in enumerate(zip(best, other, kept, strict=True)):
        within = d[i, pos[int(o)]] <= 1.5**2 * d[i, pos[int(b)]]
        assert k == (o if within else b)
    assert (sticky.predict_many(probe) == best).all()  # no previous: plain nearest


def test_rebase_mapping_is_bijection(trained):
    model, X = trained
    model = FamilyTypes.from_snapshot(model.snapshot())  # leave the shared fixture alone
    before = model.snapshot()
    snap = model.rebase(X[:3000])
    assert snap["generation"] == before["generation"] + 1
    assert snap["version"] == before["version"] + 1
    mapping = snap["lineage"]["mapping"]
    assert snap["lineage"]["from_version"] == before["version"]
    old = [o for o, _ in mapping]
    new = [n for _, n in mapping]
    assert sorted(old) == sorted(before["type_ids"])
    assert sorted(new) == sorted(snap["type_ids"])
    assert len(set(new)) == len(new) == 100
    assert not set(new) & set(before["type_ids"])  # fresh ids: an id never changes meaning
    json.dumps(snap)
    # many families land in the matched successor of their old type (far above the 1 %
    # of chance; 100 types over 30 blobs split the blobs differently on re-clustering)
    m = dict(mapping)
    p_old = TypeAssigner.from_snapshot(before).predict_many(X[:3000])
    p_new = TypeAssigner.from_snapshot(snap).predict_many(X[:3000])
    assert np.mean([m[int(o)] == int(n) for o, n in zip(p_old, p_new, strict=True)]) > 0.3


def test_rebase_from_sample_without_data():
    X, _ = blobs(3000, seed=2)
    model = FamilyTypes(n_types=10, warmup=500, reservoir=1000, seed=0)
    for i, x in enumerate(X):
        model.learn_one(x, key=i % 1500)
    assert len(model._sample) == 1000
    snap = model.rebase()
    assert len(snap["lineage"]["mapping"]) == 10


def test_learn_many_dicts_or_matrix_same_model_and_counts():
    X, _ = blobs(3000, seed=3)
    a = FamilyTypes(n_types=10, warmup=500, seed=0)
    b = FamilyTypes(n_types=10, warmup=500, seed=0)
    for i in range(0, len(X), 256):
        a.learn_many(X[i : i + 256], keys=range(i, min(i + 256, len(X))))
        b.learn_many(np.asarray([[x[f] for f in FEATURE_NAMES] for x in X[i : i + 256]]))
    assert a.n_seen == b.n_seen == len(X)
    np.testing.assert_allclose(a.centroids, b.centroids)
    assert (
        a.counts.sum() == len(X) - 500 + 500
    )  # warm-up vectors counted by Lloyd, the rest one each
    assert a.predict_one(X[0]) == TypeAssigner.from_snapshot(a.snapshot()).predict_one(X[0])


def test_learn_many_close_to_learn_one():
    X, labels = blobs(4000, n_profiles=8, seed=4)
    one = FamilyTypes(n_types=8, warmup=1000, seed=0)
    many = FamilyTypes(n_types=8, warmup=1000, seed=0)
    for x in X:
        one.learn_one(x)
    many.learn_many(X)
    a1 = TypeAssigner.from_snapshot(one.snapshot()).predict_many(X)
    a2 = TypeAssigner.from_snapshot(many.snapshot()).predict_many(X)
    from sklearn.metrics import adjusted_rand_score

    assert adjusted_rand_score(a1, a2) > 0.95


def test_initialise_now_on_small_data():
    X, _ = blobs(30)
    m = FamilyTypes(n_types=5, warmup=1000, seed=0)
    assert not m.initialise_now()
    m.learn_many(X)
    assert m.initialise_now() and m.snapshot()["version"] == 1


def test_forget_drops_a_family_from_the_sample_and_keeps_the_index_consistent():
    import numpy as np

    from models.family_types import FamilyTypes

    model = FamilyTypes(
        n_types=2, features=("a",), weights=(1,), warmup=2, reservoir=5, rule=None, seed=1
    )
    for i in range(5):
        model.learn_one({"a": float(i)}, key=f"f{i}")
    model.forget("f1")
    model.forget("f4")
    model.forget("nobody")
    assert len(model._sample) == 3
    assert sorted(model._sample_keys) == ["f0", "f2", "f3"]
    for key, slot in model._sample_keys.items():
        assert model._slot_keys[slot] == key
        assert float(model._sample[slot][0]) == float(key[1:])
    model.learn_one({"a": 9.0}, key="f2")  # an update still lands in its own slot
    assert float(model._sample[model._sample_keys["f2"]][0]) == 9.0
    assert np.vstack(model._sample).shape == (3, 1)


def test_a_restarted_learner_refills_its_sample_without_learning(trained):
    model, X = trained
    resumed = FamilyTypes.from_snapshot(json.loads(json.dumps(model.snapshot())))
    assert resumed.sample_size == 0
    before = resumed.centroids.copy(), resumed.n_seen
    resumed.remember_many(X[:500], keys=range(500))
    resumed.remember_many(X[:10], keys=range(10))  # the same families again: replaced
    assert resumed.sample_size == 500
    assert np.array_equal(resumed.centroids, before[0]) and resumed.n_seen == before[1]
    snap = resumed.rebase()
    assert snap["generation"] == model.generation + 1 and len(snap["lineage"]["mapping"]) == 100


def test_boundary_splits_bring_coarse_types_to_the_reference_shares():
    """With few, large types whole types miss the shares; splitting the boundary types
    by the families' own need scores gets closer, and leaves every type id alone."""
    from models.service_need import REFERENCE_SHARES

    X, _ = blobs(4000, n_profiles=12, seed=3)
    errors, assigned = {}, {}
    for tol in (None, 0.01):
        model = FamilyTypes(
            n_types=12,
            warmup=1000,
            seed=0,
            calibrate_shares=REFERENCE_SHARES,
            split_tol=tol,
            grouping="type",
        )
        model.learn_many(X, keys=list(range(len(X))))
        snap = json.loads(json.dumps(model.snapshot()))
        assigner = TypeAssigner.from_snapshot(snap)
        types, groups = assigner.assign_many(X)
        assert (types == assigner.predict_many(X)).all()
        assert [assigner.group_one(x) for x in X[:200]] == groups[:200].tolist()
        shares = np.bincount(groups, minlength=11)[1:] / len(X)
        errors[tol] = float(np.abs(np.cumsum(shares) - np.cumsum(REFERENCE_SHARES)).max())
        assigned[tol] = (types, snap["splits"])
        assigned_snap = snap
    assert not assigned[None][1] and assigned[0.01][1], assigned
    assert (assigned[None][0] == assigned[0.01][0]).all()
    assert errors[0.01] < errors[None] and errors[0.01] <= 0.03, errors
    # No family's own score sits on a threshold: a last-bit difference between the
    # learner's score and a worker's cannot move it across.
    lin, M = assigned_snap["need_linear"], TypeAssigner.from_snapshot(assigned_snap).to_matrix(X)
    own = set((lin["offset"] + (M * lin["weights"]).sum(1)).tolist())
    assert not own & {thr for _, _, thr in assigned[0.01][1]}


def test_a_rebase_of_a_frozen_model_is_a_new_baseline_with_its_cuts_in_the_lineage():
    from models.service_need import REFERENCE_SHARES

    X, _ = blobs(3000, n_profiles=20, seed=4)
    model = FamilyTypes(n_types=20, warmup=1000, seed=0, calibrate_shares=REFERENCE_SHARES)
    model.learn_many(X, keys=list(range(len(X))))
    s1 = model.snapshot(freeze=True)
    assert s1["calibration"]["version"] == 1 and model.calibration is not None
    # the world moves: the same families, need features doubled; frozen cuts stay
    Y = [
        {f: v * (2.0 if f in ("social_assistance", "cw_client") else 1.0) for f, v in x.items()}
        for x in X
    ]
    model.learn_many(Y, keys=list(range(len(Y))))
    s2 = model.snapshot()
    assert s2["cuts"] == s1["cuts"] and all(x in s1["splits"] for x in s2["splits"])
    s3 = model.rebase()
    assert s3["calibration"]["version"] == 3
    assert s3["lineage"]["cuts"] == {"from": s1["cuts"], "to": s3["cuts"]}
    again = FamilyTypes.from_snapshot(json.loads(json.dumps(s3)), calibrate_shares=REFERENCE_SHARES)
    assert again.calibration == model.calibration
    assert again.snapshot()["cuts"] == s3["cuts"]


def test_a_frozen_split_applies_only_while_its_type_keeps_its_baseline_group():
    """A boundary split is made for its type's boundary at the baseline. When the
    world moves and the type's group with it, the split is dropped: applied to the new
    group it would send families across another boundary, or out of the ten groups
    (group 0 or 11, which the picture cannot count)."""
    from models.service_need import REFERENCE_SHARES

    X, _ = blobs(4000, n_profiles=12, seed=3)
    model = FamilyTypes(
        n_types=12, warmup=1000, seed=0, calibrate_shares=REFERENCE_SHARES, grouping="type"
    )
    model.learn_many(X, keys=list(range(len(X))))
    s1 = model.snapshot(freeze=True)
    assert s1["splits"], "the coarse types need splits at the baseline"
    baseline = model.calibration["splits"]
    assert all(len(x) == 4 and s1["groups"][s1["type_ids"].index(x[0])] == x[3] for x in baseline)
    moved = baseline[0][0]
    model.groups[moved] = baseline[0][3] % 10 + 1  # as if its centroid's score had moved on
    model.group_margin = 1e9  # hysteresis keeps every type where it is now
    s2 = model.snapshot()
    assert [x[0] for x in s2["splits"]] == [x[0] for x in baseline[1:]]
    types, groups = TypeAssigner.from_snapshot(s2).assign_many(X)
    assert groups.min() >= 1 and groups.max() <= 10
    again = FamilyTypes.from_snapshot(json.loads(json.dumps(s2)), calibrate_shares=REFERENCE_SHARES)
    assert again.calibration["splits"] == baseline


def test_the_sample_holds_its_vectors_not_the_batches_they_came_in():
    # A row view would keep its whole batch matrix alive: a sample of 20,000 rows from
    # as many batches holds every batch.
    X, _ = blobs(600, seed=5)
    M = np.asarray([[x[f] for f in FEATURE_NAMES] for x in X])
    model = FamilyTypes(n_types=5, warmup=100, seed=0, reservoir=1000)
    model.learn_many(M[:300], keys=range(300))
    model.remember_many(M[300:], keys=range(300, 600))
    assert model.sample_size == 600
    assert not any(np.shares_memory(v, M) for v in model._sample)


def test_a_refresh_assigned_at_once_equals_one_family_at_a_time():
    # The worker's writer assigns a batch with one matrix product; the pipeline can too.
    import functools

    from models.contract import validate
    from models.family_types import family_assignment, family_assignments
    from models.features import state_vector
    from models.picture import Pipeline
    from models.profile import state_profile
    from models.pseudonym import Pseudonymiser
    from tilannekuva.synthetic import synthesize

    pseudo = Pseudonymiser(b"assign-test-key-0123456789abcdef")
    events = [pseudo.event(validate(x)) for x in synthesize(120, seed=5).lines]
    warm = Pipeline(profile=state_profile, history=None)
    warm.process_many(events)
    vectors = [v for s in warm.families.values() if (v := state_vector(s)) is not None]
    model = FamilyTypes(n_types=8, warmup=0)
    model.learn_many(vectors)
    assigner = TypeAssigner.from_snapshot(model.snapshot())
    one = Pipeline(
        profile=state_profile,
        history=None,
        assign=functools.partial(family_assignment, assigner=assigner),
    )
    many = Pipeline(
        profile=state_profile,
        history=None,
        assign_many=functools.partial(family_assignments, assigner=assigner),
    )
    for i in range(0, len(events), 300):
        one.process_many(events[i : i + 300])
        many.process_many(events[i : i + 300])
        assert many.contributions == one.contributions
    counted = [c for c in many.contributions.values()]
    assert counted and all(any(k.startswith("t") for k in c["counts"]) for c in counted)
    assert len({k for c in counted for k in c["counts"] if k.startswith("t")}) > 1


def test_own_grouping_calibrates_on_the_families_and_groups_each_by_its_own_score():
    """``grouping="own"``: the baseline's cuts put the sampled families at the reference
    shares; every family's group is its own score's, whatever its type; the frozen cuts
    and the grouping survive JSON and a restart."""
    from models.service_need import REFERENCE_SHARES

    X, _ = blobs(4000, n_profiles=12, seed=3)
    model = FamilyTypes(
        n_types=12, warmup=1000, seed=0, calibrate_shares=REFERENCE_SHARES, grouping="own"
    )
    model.learn_many(X, keys=list(range(len(X))))
    snap = json.loads(json.dumps(model.snapshot(freeze=True)))
    assert snap["grouping"] == "own" and snap["splits"] == []
    assigner = TypeAssigner.from_snapshot(snap)
    types, groups = assigner.assign_many(X)
    assert (types == assigner.predict_many(X)).all()
    own = model.rule.need_scores(assigner.to_matrix(X), assigner.features)
    assert groups.tolist() == [model.rule.group_of_score(s) for s in own]
    shares = np.bincount(groups, minlength=11)[1:] / len(X)
    assert np.abs(shares - REFERENCE_SHARES).max() <= 0.002, shares
    # one type's families sit in several groups: the type does not decide
    assert max(len(set(groups[types == t].tolist())) for t in set(types.tolist())) > 1
    again = FamilyTypes.from_snapshot(snap, calibrate_shares=REFERENCE_SHARES)
    assert again.grouping == "own" and again.calibration["cuts"] == snap["cuts"]
    assert again.snapshot()["cuts"] == snap["cuts"]
    with pytest.raises(ValueError, match="grouping"):
        FamilyTypes(n_types=2, grouping="centroid")


def test_own_grouping_does_not_jump_when_a_type_crosses_a_frozen_cut():
    """The jump the type grouping makes (docs/alerts.md): a type moved across a frozen
    cut takes every one of its families with it; with ``grouping="own"`` no family
    moves, as no family's data changed."""
    from models.service_need import REFERENCE_SHARES

    X, _ = blobs(4000, n_profiles=12, seed=3)
    moved = {}
    for grouping in ("type", "own"):
        model = FamilyTypes(
            n_types=12, warmup=1000, seed=0, calibrate_shares=REFERENCE_SHARES, grouping=grouping
        )
        model.learn_many(X, keys=list(range(len(X))))
        before = TypeAssigner.from_snapshot(model.snapshot(freeze=True)).assign_many(X)[1]
        big = max(model.groups, key=lambda t: (model.counts[model.type_ids.index(t)], t))
        model.groups[big] = model.groups[big] % 10 + 1  # its centroid wandered over a cut
        model.group_margin = 1e9  # and hysteresis keeps it there
        after = TypeAssigner.from_snapshot(model.snapshot()).assign_many(X)[1]
        moved[grouping] = float((before != after).mean())
    assert moved["type"] > 0.03 and moved["own"] == 0.0, moved
