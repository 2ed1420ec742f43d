"""Service-need rule: monotone, explainable, ten ordered groups."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from models.features import BASE_FEATURES, FEATURE_NAMES, NEED_BASE, NEED_WEIGHTS, need_index
from models.service_need import (
    DEFAULT_CUTS,
    REFERENCE_SHARES,
    ServiceNeedRule,
    group_shares,
    share_at_least,
)

profiles = st.fixed_dictionaries({f: st.floats(0, 20, allow_nan=False) for f in FEATURE_NAMES})


def test_weights_name_real_features():
    assert set(NEED_WEIGHTS) <= set(FEATURE_NAMES)


@settings(max_examples=200, deadline=None)
@given(st.floats(-5, 15, allow_nan=False), st.floats(-5, 15, allow_nan=False))
def test_group_monotone_in_score(a, b):
    rule = ServiceNeedRule()
    lo, hi = sorted((a, b))
    assert 1 <= rule.group_of_score(lo) <= rule.group_of_score(hi) <= 10


@settings(max_examples=100, deadline=None)
@given(profiles, st.sampled_from(sorted(NEED_WEIGHTS)), st.floats(0, 5, allow_nan=False))
def test_score_is_monotone_in_each_feature_by_the_sign_of_its_weight(profile, feature, delta):
    rule = ServiceNeedRule()
    w, _ = NEED_WEIGHTS[feature]
    more = {**profile, feature: profile[feature] + delta}
    if w >= 0:
        assert rule.need_score(more) >= rule.need_score(profile) - 1e-9
        assert rule.group(more) >= rule.group(profile)
    else:
        assert rule.need_score(more) <= rule.need_score(profile) + 1e-9


@settings(max_examples=100, deadline=None)
@given(profiles)
def test_explanation_adds_up_to_the_score(profile):
    rule = ServiceNeedRule()
    s = rule.need_score(profile)
    assert abs(rule.base + sum(rule.contributions(profile).values()) - s) < 1e-6
    assert (
        abs(rule.base + sum(p for _, _, p in rule.explain(profile)) - s)
        < 0.005 * len(NEED_WEIGHTS) + 1e-6
    )
    assert abs(sum(rule.explain_domains(profile).values()) - (s - rule.base)) < 0.005 * 8 + 1e-6


def test_reference_family_scores_base_and_constants_are_frozen():
    rule = ServiceNeedRule()
    ref = {f: r for f, (_, r) in NEED_WEIGHTS.items()}
    assert abs(rule.need_score(ref) - NEED_BASE) < 1e-6
    assert len(DEFAULT_CUTS) == 9 and list(DEFAULT_CUTS) == sorted(DEFAULT_CUTS)
    assert set(NEED_WEIGHTS) == set(BASE_FEATURES)  # every base feature has a frozen weight


def test_vector_need_index_is_the_rule_score():
    v = {f: 1.0 for f in BASE_FEATURES}
    assert need_index(v) == ServiceNeedRule().need_score(v)
    X = np.asarray([[v[f] for f in BASE_FEATURES], [0.0] * len(BASE_FEATURES)])
    got = ServiceNeedRule().need_scores(X, BASE_FEATURES)
    assert abs(got[0] - need_index(v)) < 1e-6 and abs(got[1] - need_index({})) < 1e-6


@settings(max_examples=200, deadline=None)
@given(profiles)
def test_need_index_feature_equals_the_default_rule_bit_for_bit(profile):
    # models.features computes the need_index feature on its own (no import of this
    # module): it must stay the default rule's score exactly, or a family near a cut
    # would get one group from its vector and another from the rule.
    assert need_index(profile) == ServiceNeedRule().need_score(profile)
    assert need_index({}) == ServiceNeedRule().need_score({})


def test_hysteresis_keeps_group_near_a_cut():
    rule = ServiceNeedRule(weights={"x": (10.0, 0.0)}, base=0.0, cuts=[1, 2, 3, 4, 5, 6, 7, 8, 9])
    assert rule.group_of_score(2.05) == 3
    # a profile whose score sits just above the 2|3 cut stays in group 2 with margin 0.1
    prof = {"x": 0.205}
    assert abs(rule.need_score(prof) - 2.05) < 1e-6
    assert rule.group(prof) == 3
    assert rule.group(prof, previous=2, margin=0.1) == 2
    assert rule.group(prof, previous=1, margin=0.1) == 3


def test_calibrated_cuts_reproduce_reference_shares():
    scores = list(range(100))
    sizes = [1] * 100
    shares = [0.19, 0.17, 0.15, 0.13, 0.11, 0.08, 0.07, 0.05, 0.03, 0.02]
    rule = ServiceNeedRule.calibrated(scores, sizes, shares)
    got = group_shares([rule.group_of_score(s) for s in scores])
    assert all(abs(got[g] - shares[g - 1]) <= 0.011 for g in range(1, 11))


def test_calibrated_cuts_are_never_worse_than_nearest_cumulative_cuts():
    """The minimax cut points against the simple rule (each cut at the profile whose
    cumulative share is nearest the cumulative target), on random type sizes."""
    import numpy as np

    from models.service_need import REFERENCE_SHARES

    def max_error(cuts_rule, scores, sizes):
        g = np.asarray([cuts_rule.group_of_score(x) for x in scores])
        got = np.asarray([sizes[g == i].sum() for i in range(1, 11)]) / sizes.sum()
        return float(np.abs(got - np.asarray(REFERENCE_SHARES)).max())

    rng = np.random.default_rng(3)
    better = 0
    for _ in range(30):
        scores, sizes = rng.normal(size=100), rng.pareto(1.5, size=100) + 1
        order = np.argsort(scores)
        cum = np.cumsum(sizes[order]) / sizes.sum()
        naive = []
        for t in np.cumsum(REFERENCE_SHARES)[:9]:
            i = int(np.argmin(np.abs(cum - t)))
            naive.append((scores[order][i] + scores[order][min(i + 1, 99)]) / 2)
        dp = max_error(ServiceNeedRule.calibrated(scores, sizes), scores, sizes)
        simple = max_error(ServiceNeedRule(cuts=list(np.maximum.accumulate(naive))), scores, sizes)
        assert dp <= simple + 1e-12
        better += dp < simple - 1e-9
    assert better > 0


def test_share_helpers():
    g = [1, 2, 4, 4, 9, 10, 10, 3]
    assert share_at_least(g, 4) == 5 / 8
    assert share_at_least(g, 9) == 3 / 8
    assert abs(sum(group_shares(g).values()) - 1) < 1e-12
    assert share_at_least([], 4) == 0.0


def _group_errors(rule, scores, sizes, shares):
    g = np.asarray([rule.group_of_score(s) for s in scores])
    n = np.asarray(sizes, dtype=float)
    got = np.asarray([n[g == k].sum() for k in range(1, 11)]) / n.sum()
    return g, np.abs(got - np.asarray(shares) / sum(shares))


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.0, 0.02))
def test_stable_calibration_moves_fewer_families_and_stays_within_the_slack(seed, slack):
    rng = np.random.default_rng(seed)
    scores = rng.normal(4, 2, 100)
    sizes = rng.integers(1, 400, 100)
    first = ServiceNeedRule.calibrated(scores, sizes, REFERENCE_SHARES)
    before, _ = _group_errors(first, scores, sizes, REFERENCE_SHARES)
    scores2 = scores + rng.normal(0, 0.05, 100)  # the centroids drift a little
    sizes2 = sizes + rng.integers(0, 40, 100)
    free = ServiceNeedRule.calibrated(scores2, sizes2, REFERENCE_SHARES)
    stable = ServiceNeedRule.calibrated(
        scores2, sizes2, REFERENCE_SHARES, previous=before.tolist(), slack=slack
    )
    g_free, err_free = _group_errors(free, scores2, sizes2, REFERENCE_SHARES)
    g_stable, err_stable = _group_errors(stable, scores2, sizes2, REFERENCE_SHARES)
    assert err_stable.max() <= err_free.max() + slack + 1e-9
    moved = lambda g: sizes2[g != before].sum()  # noqa: E731
    assert moved(g_stable) <= moved(g_free)
    # still a rule on the score: groups never decrease as the score rises
    order = np.argsort(scores2)
    assert (np.diff(g_stable[order]) >= 0).all()
