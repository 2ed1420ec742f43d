"""Family types in words: the ranking against the population and the phrases."""

from __future__ import annotations

import numpy as np
import pytest

from models.family_types import FamilyTypes
from models.features import FEATURE_NAMES
from models.type_descriptions import (
    AVERAGE,
    DESCRIBE_MAX,
    EXCLUDED,
    FEATURES_SHOWN,
    LANGUAGES,
    THEMES,
    WORDS,
    catalogue,
    describe,
    type_features,
    type_groups,
    words,
)


@pytest.fixture(scope="module")
def snap():
    """A real snapshot of 12 types over every feature."""
    rng = np.random.default_rng(4)
    centers = rng.random((6, len(FEATURE_NAMES))) * 3
    X = centers[rng.integers(6, size=900)] + rng.normal(0, 0.3, (900, len(FEATURE_NAMES)))
    rows = [dict(zip(FEATURE_NAMES, r.round(2).tolist(), strict=True)) for r in X]
    model = FamilyTypes(n_types=12, warmup=10**6, seed=0)
    model.learn_many(rows, keys=[f"f{i}" for i in range(len(rows))])
    model.initialise_now()
    return model.snapshot()


def test_every_feature_has_words_in_three_languages_both_ways():
    assert set(WORDS) | EXCLUDED == set(FEATURE_NAMES)
    for name in WORDS:
        for z in (1.0, -1.0):
            for value in (0.0, 1.0, 2.0, 5.0, 15.0):
                phrase = words(name, value, z)
                assert phrase is not None and len(phrase) == len(LANGUAGES)
                assert all(isinstance(p, str) and p.strip() == p and p for p in phrase)
        assert words(name, 1.0, 1.0) != words(name, 1.0, -1.0), name
    assert set(THEMES) <= set(WORDS)


def test_features_are_ranked_by_distance_from_the_population(snap):
    feats = type_features(snap)
    assert set(feats) == set(snap["type_ids"])
    means = dict(zip(snap["features"], snap["means"], strict=True))
    sds = dict(zip(snap["features"], np.sqrt(snap["vars"]), strict=True))
    for tid, centroid in zip(snap["type_ids"], snap["centroids"], strict=True):
        got = feats[tid]
        assert len(got) == FEATURES_SHOWN
        assert not {f["name"] for f in got} & EXCLUDED
        zs = [abs(f["z"]) for f in got]
        assert zs == sorted(zs, reverse=True)
        row = dict(zip(snap["features"], centroid, strict=True))
        strongest = max(
            (abs(row[n] - means[n]) / sds[n], n) for n in snap["features"] if n not in EXCLUDED
        )
        assert got[0]["name"] == strongest[1]
        for f in got:
            assert f["value"] == round(row[f["name"]], 3)
            assert f["population_mean"] == round(means[f["name"]], 3)
            assert f["z"] == pytest.approx(
                (row[f["name"]] - means[f["name"]]) / sds[f["name"]], abs=0.006
            )
    assert len(type_features(snap, None)[snap["type_ids"][0]]) == len(FEATURE_NAMES) - len(EXCLUDED)


def test_features_without_spread_are_left_out():
    snap = {
        "features": ["moves", "single_parent"],
        "means": [0.0, 0.3],
        "vars": [0.0, 0.2],
        "centroids": [[0.0, 1.0]],
        "type_ids": [1],
    }
    assert [f["name"] for f in type_features(snap)[1]] == ["single_parent"]


def test_describe_takes_the_strongest_one_per_theme_highs_first():
    f = lambda name, z, value=1.0: {"name": name, "value": value, "z": z}  # noqa: E731
    got = describe(
        [
            f("income_gap_share", -2.0),  # work theme: a low …
            f("social_assistance", 1.8),
            f("parents_unemployed_share", 1.5),  # … loses to this high of the same theme
            f("social_assistance_episodes", 1.4),  # social assistance said already
            f("youngest_child_age", -1.2, 1.0),
            f("single_parent", 1.1),
            f("moves", 0.9),
        ]
    )
    assert got["en"] == "unemployed, social assistance, child under 3, single parent"
    assert got["fi"] == "työtön, toimeentulotuki, alle 3-vuotias lapsi, yksinhuoltaja"
    assert got["sv"] == "arbetslös, utkomststöd, barn under 3 år, ensamförsörjare"
    assert len(got["en"].split(", ")) == DESCRIBE_MAX
    assert describe([f("moves", 0.3)]) == dict(zip(LANGUAGES, AVERAGE, strict=True))
    assert describe([]) == dict(zip(LANGUAGES, AVERAGE, strict=True))


def test_catalogue_has_group_features_and_words_of_every_type(snap):
    cat = catalogue(snap)
    assert list(cat) == list(snap["type_ids"])
    for tid, g in zip(snap["type_ids"], snap["groups"], strict=True):
        entry = cat[tid]
        assert entry["group"] == g and 1 <= g <= 10
        assert len(entry["features"]) == FEATURES_SHOWN
        assert set(entry["description"]) == set(LANGUAGES)
        first = entry["features"][0]
        if abs(first["z"]) >= 0.5 and first["name"] not in THEMES:  # the strongest leads
            phrase = words(first["name"], first["value"], first["z"])
            assert entry["description"]["en"].startswith(phrase[2]), (tid, entry)


def test_type_groups_follow_the_splits(snap):
    # grouped by the families' own scores (the default), a type's families may be anywhere
    assert snap["grouping"] == "own"
    assert type_groups(snap) == {int(t): list(range(1, 11)) for t in snap["type_ids"]}
    snap = {**snap, "grouping": "type"}
    groups = type_groups(snap)
    assert set(groups) == set(snap["type_ids"])
    split = {int(t): way for t, way, _ in snap.get("splits") or []}
    for tid, g in zip(snap["type_ids"], snap["groups"], strict=True):
        assert g in groups[tid]
        assert len(groups[tid]) == (
            2 if tid in split and 1 <= g + (1 if split[tid] == "up" else -1) <= 10 else 1
        )
    assert type_groups({"type_ids": [1], "groups": [1], "splits": [[1, "down", 2.0]]}) == {1: [1]}
