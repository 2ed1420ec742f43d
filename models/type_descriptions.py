"""Family types in words: what sets each type apart from the average family.

Pure domain logic over a family-type snapshot (:class:`models.types.FamilyTypesSnapshot`,
centroids in original feature units): no Redis, no clock. For every type,
:func:`type_features` ranks the features by how far the type's centroid lies from the
population, ``z = (centroid − population mean) / population standard deviation`` (the
learner's running scaler, frozen in the snapshot as ``means`` and ``vars``), and
:func:`describe` turns the strongest of them into a short phrase in Finnish, Swedish and
English from the word templates of :data:`WORDS` ("single parent, unemployed, social
assistance, child under 3"): one phrase for a high value and one for a low value of
each feature, some depending on the centroid's own value (the youngest child's age, the
number of children). Features that say much the same (the parents' work and income
gaps; social assistance days and periods) share a *theme* (:data:`THEMES`), and a
phrase says at most one feature of each, a high one before a low one ("working parents"
rather than "regular income"). :func:`catalogue` does both for every type of a snapshot,
with the type's service-need group.

``need_index`` (the service-need score, a composite of the other features) is left out:
the type's group says it.

>>> snap = {"features": ["single_parent", "parents_unemployed_share", "youngest_child_age"],
...         "means": [0.2, 0.1, 8.0], "vars": [0.16, 0.04, 25.0],
...         "centroids": [[0.95, 0.4, 1.5], [0.0, 0.08, 9.0]], "type_ids": [7, 8],
...         "groups": [9, 2]}
>>> cat = catalogue(snap)
>>> cat[7]["description"]["en"], cat[7]["group"]
('single parent, unemployed, child under 3', 9)
>>> cat[7]["features"][0]
{'name': 'single_parent', 'value': 0.95, 'population_mean': 0.2, 'z': 1.88}
>>> cat[8]["description"]["fi"], cat[8]["description"]["sv"]
('kahden vanhemman perhe', 'tvåföräldersfamilj')
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeAlias

__all__ = [
    "AVERAGE",
    "DESCRIBE_MAX",
    "DESCRIBE_MIN_Z",
    "EXCLUDED",
    "FEATURES_SHOWN",
    "LANGUAGES",
    "THEMES",
    "WORDS",
    "catalogue",
    "describe",
    "type_features",
    "type_groups",
    "words",
]

LANGUAGES = ("fi", "sv", "en")
FEATURES_SHOWN = 5  # features listed per type, by |z|
DESCRIBE_MIN_Z = 0.5  # a feature goes into the words from this |z| on …
DESCRIBE_MAX = 4  # … at most this many
EXCLUDED = frozenset({"need_index"})  # the composite: the type's group says it
AVERAGE = ("keskimääräinen perhe", "genomsnittlig familj", "average family")

Words: TypeAlias = tuple[str, str, str]  # fi, sv, en
# A phrase for a direction: fixed, or chosen by the centroid's own value.
Phrase: TypeAlias = Words | Callable[[float], Words]


def _by_value(limit: float, below: Words, otherwise: Words) -> Callable[[float], Words]:
    def pick(value: float) -> Words:
        return below if value < limit else otherwise

    return pick


#: feature -> (phrase when the type is above the population, phrase when below).
WORDS: dict[str, tuple[Phrase, Phrase]] = {
    "income_per_cu": (
        ("suuret tulot", "höga inkomster", "high income"),
        ("pienet tulot", "låga inkomster", "low income"),
    ),
    "social_assistance": (
        ("toimeentulotuki", "utkomststöd", "social assistance"),
        ("ei toimeentulotukea", "inget utkomststöd", "no social assistance"),
    ),
    "social_assistance_episodes": (
        ("toistuva toimeentulotuki", "upprepat utkomststöd", "repeated social assistance"),
        (
            "ei toimeentulotukijaksoja",
            "inga perioder av utkomststöd",
            "no social assistance periods",
        ),
    ),
    "primary_care_visits": (
        ("paljon terveyskeskuskäyntejä", "många besök i primärvården", "many primary care visits"),
        ("vähän terveyskeskuskäyntejä", "få besök i primärvården", "few primary care visits"),
    ),
    "parent_mental_health_visits": (
        (
            "vanhemman mielenterveyskäyntejä",
            "förälderns besök i mentalvården",
            "parent's mental health visits",
        ),
        (
            "ei vanhempien mielenterveyskäyntejä",
            "inga besök i mentalvården för föräldrarna",
            "no parental mental health visits",
        ),
    ),
    "child_mental_health_visits": (
        (
            "lapsen mielenterveyskäyntejä",
            "barnets besök i mentalvården",
            "child's mental health visits",
        ),
        (
            "ei lasten mielenterveyskäyntejä",
            "inga besök i mentalvården för barnen",
            "no child mental health visits",
        ),
    ),
    "specialist_care_episodes": (
        ("paljon erikoissairaanhoitoa", "mycket specialiserad sjukvård", "much specialised care"),
        ("vähän erikoissairaanhoitoa", "lite specialiserad sjukvård", "little specialised care"),
    ),
    "health_allowance": (
        (
            "sairaus- tai työkyvyttömyysetuus",
            "sjuk- eller invaliditetsförmån",
            "sickness or disability allowance",
        ),
        ("ei sairausetuuksia", "inga sjukförmåner", "no sickness allowance"),
    ),
    "parent_education": (
        ("korkeasti koulutetut vanhemmat", "högutbildade föräldrar", "highly educated parents"),
        ("vanhempien matala koulutus", "föräldrarnas låga utbildning", "low parental education"),
    ),
    "school_support": (
        ("koulun tehostettu tai erityinen tuki", "stöd i skolan", "school support"),
        ("ei koulun tukea", "inget stöd i skolan", "no school support"),
    ),
    "parents_employed_share": (
        ("työssä käyvät vanhemmat", "förvärvsarbetande föräldrar", "working parents"),
        ("vanhemmat harvoin työssä", "föräldrarna sällan i arbete", "parents seldom in work"),
    ),
    "parents_unemployed_share": (
        ("työtön", "arbetslös", "unemployed"),
        ("ei työttömyyttä", "ingen arbetslöshet", "no unemployment"),
    ),
    "parents_outside_work_share": (
        (
            "vanhempi opiskelija tai työvoiman ulkopuolella",
            "förälder studerande eller utanför arbetskraften",
            "parent studying or outside the labour force",
        ),
        ("vanhemmat työvoimassa", "föräldrarna i arbetskraften", "parents in the labour force"),
    ),
    "single_parent": (
        ("yksinhuoltaja", "ensamförsörjare", "single parent"),
        ("kahden vanhemman perhe", "tvåföräldersfamilj", "two parents"),
    ),
    "n_children": (
        ("monilapsinen", "många barn", "many children"),
        _by_value(
            1.5,
            ("yksi lapsi", "ett barn", "one child"),
            ("vähän lapsia", "få barn", "few children"),
        ),
    ),
    "youngest_child_age": (
        _by_value(
            13.0,
            ("kouluikäisiä lapsia", "skolbarn", "school-age children"),
            ("teini-ikäisiä lapsia", "tonåringar", "teenage children"),
        ),
        _by_value(
            3.0,
            ("alle 3-vuotias lapsi", "barn under 3 år", "child under 3"),
            ("pieniä lapsia", "små barn", "young children"),
        ),
    ),
    "family_work_episodes": (
        ("perhetyö", "familjearbete", "family work"),
        ("ei perhetyötä", "inget familjearbete", "no family work"),
    ),
    "home_service_episodes": (
        ("lapsiperheiden kotipalvelu", "hemservice", "home help"),
        ("ei kotipalvelua", "ingen hemservice", "no home help"),
    ),
    "family_counselling_episodes": (
        ("perheneuvola", "familjerådgivning", "family counselling"),
        ("ei perheneuvolaa", "ingen familjerådgivning", "no family counselling"),
    ),
    "multi_professional_support": (
        ("moniammatillinen tuki", "multiprofessionellt stöd", "multi-professional support"),
        (
            "ei moniammatillista tukea",
            "inget multiprofessionellt stöd",
            "no multi-professional support",
        ),
    ),
    "housing_allowance": (
        ("asumistuki", "bostadsbidrag", "housing allowance"),
        ("ei asumistukea", "inget bostadsbidrag", "no housing allowance"),
    ),
    "area_unemployment_rate": (
        (
            "korkean työttömyyden kunta",
            "kommun med hög arbetslöshet",
            "high-unemployment municipality",
        ),
        (
            "matalan työttömyyden kunta",
            "kommun med låg arbetslöshet",
            "low-unemployment municipality",
        ),
    ),
    "moves": (
        ("muuttanut usein", "flyttat ofta", "frequent moves"),
        ("ei muuttoja", "inga flyttar", "no moves"),
    ),
    "cw_notifications": (
        ("lastensuojeluilmoituksia", "barnskyddsanmälningar", "child welfare notifications"),
        (
            "ei lastensuojeluilmoituksia",
            "inga barnskyddsanmälningar",
            "no child welfare notifications",
        ),
    ),
    "cw_client": (
        ("lastensuojelun asiakkuus", "klient inom barnskyddet", "child welfare client"),
        (
            "ei lastensuojelun asiakkuutta",
            "inte klient inom barnskyddet",
            "no child welfare client",
        ),
    ),
    "cw_placement": (
        ("lapsi sijoitettuna", "barn placerat utom hemmet", "child placed outside the home"),
        ("ei sijoituksia", "inga placeringar", "no placements"),
    ),
    "substance_abuse_contacts": (
        ("päihdepalveluja", "missbrukarvård", "substance abuse services"),
        ("ei päihdepalveluja", "ingen missbrukarvård", "no substance abuse services"),
    ),
    "income_gap_share": (
        ("kuukausia ilman tuloja", "månader utan inkomst", "months without income"),
        ("säännölliset tulot", "regelbundna inkomster", "regular income"),
    ),
}


#: feature -> theme, for features that say much the same (the others: their own name).
THEMES: dict[str, str] = {
    "parents_employed_share": "work",
    "parents_unemployed_share": "work",
    "parents_outside_work_share": "work",
    "income_gap_share": "work",
    "social_assistance": "social_assistance",
    "social_assistance_episodes": "social_assistance",
}


def words(name: str, value: float, z: float) -> Words | None:
    """The phrase of one feature in the three languages, None for a feature without
    words (unknown to :data:`WORDS`).

    >>> words("youngest_child_age", 1.0, -1.4), words("youngest_child_age", 5.0, -0.7)[2]
    (('alle 3-vuotias lapsi', 'barn under 3 år', 'child under 3'), 'young children')
    >>> words("need_index", 9.0, 3.0) is None
    True
    """
    pair = WORDS.get(name)
    if pair is None:
        return None
    phrase = pair[0] if z > 0 else pair[1]
    return phrase(value) if callable(phrase) else phrase


def type_features(
    snap: Mapping[str, Any], limit: int | None = FEATURES_SHOWN
) -> dict[int, list[dict]]:
    """``{type id: [feature, …]}``: each type's ``limit`` (None: all) features furthest
    from the population, by ``|z|`` (then by name); a feature is ``{"name", "value",
    "population_mean", "z"}`` (value and mean in the feature's own units, rounded to 3
    decimals; ``z`` to 2). Features of no spread in the population and those of
    :data:`EXCLUDED` are left out.
    """
    names: Sequence[str] = snap["features"]
    means: Sequence[float] = snap["means"]
    variances: Sequence[float] = snap.get("vars") or [0.0] * len(names)
    out: dict[int, list[dict]] = {}
    for tid, centroid in zip(snap["type_ids"], snap["centroids"], strict=True):
        ranked = []
        for name, c, mean, var in zip(names, centroid, means, variances, strict=True):
            if name in EXCLUDED or not var or var <= 1e-12:
                continue
            z = (float(c) - float(mean)) / math.sqrt(float(var))
            ranked.append((-abs(z), name, float(c), float(mean), z))
        ranked.sort()
        out[int(tid)] = [
            {
                "name": name,
                "value": round(c, 3),
                "population_mean": round(mean, 3),
                "z": round(z, 2),
            }
            for _, name, c, mean, z in ranked[:limit]
        ]
    return out


def describe(
    features: Sequence[Mapping[str, Any]],
    min_z: float = DESCRIBE_MIN_Z,
    most: int = DESCRIBE_MAX,
) -> dict[str, str]:
    """``{"fi", "sv", "en"}``: the phrases of the strongest features (``features`` in
    :func:`type_features`' order) whose ``|z|`` is at least ``min_z``, one per theme
    (its strongest high feature, else its strongest low one), at most ``most``, joined
    by commas; "average family" when none is.

    >>> describe([{"name": "single_parent", "value": 1.0, "z": 1.9},
    ...           {"name": "income_gap_share", "value": 0.0, "z": -1.5},
    ...           {"name": "social_assistance", "value": 0.4, "z": 1.2},
    ...           {"name": "parents_employed_share", "value": 0.9, "z": 0.7},
    ...           {"name": "moves", "value": 0.2, "z": 0.1}])["en"]
    'single parent, working parents, social assistance'
    >>> describe([{"name": "moves", "value": 0.2, "z": 0.1}])["sv"]
    'genomsnittlig familj'
    """
    strong = [
        f for f in features if abs(f["z"]) >= min_z and words(f["name"], 0.0, 1.0) is not None
    ]
    chosen: list[Words] = []
    themes: set[str] = set()
    for f in strong:
        theme = THEMES.get(f["name"], f["name"])
        if len(chosen) >= most or theme in themes:
            continue
        themes.add(theme)
        same = [g for g in strong if THEMES.get(g["name"], g["name"]) == theme]
        best = next((g for g in same if g["z"] > 0), same[0])
        phrase = words(best["name"], best["value"], best["z"])
        if phrase is not None and phrase not in chosen:
            chosen.append(phrase)
    if not chosen:
        return dict(zip(LANGUAGES, AVERAGE, strict=True))
    return {lang: ", ".join(p[i] for p in chosen) for i, lang in enumerate(LANGUAGES)}


def type_groups(snap: Mapping[str, Any]) -> dict[int, list[int]]:
    """``{type id: the service-need groups its families may be in}``: the type's group,
    and the next one down or up where the snapshot splits the type at a boundary
    (``splits``: ``[type id, "down" | "up", threshold]``); any group where the snapshot
    groups each family by its own need score (``grouping`` ``"own"``).

    >>> type_groups({"type_ids": [1, 2, 3], "groups": [1, 4, 10],
    ...              "splits": [[2, "down", 3.9], [3, "up", 9.0]]})
    {1: [1], 2: [3, 4], 3: [10]}
    >>> type_groups({"type_ids": [1], "groups": [4], "grouping": "own"})[1][:3]
    [1, 2, 3]
    """
    if snap.get("grouping") == "own":
        return {int(t): list(range(1, 11)) for t in snap["type_ids"]}
    out = {int(t): [int(g)] for t, g in zip(snap["type_ids"], snap["groups"], strict=True)}
    for tid, way, _ in snap.get("splits") or []:
        g = out[int(tid)][0] + (-1 if way == "down" else 1)
        if 1 <= g <= 10:
            out[int(tid)] = sorted({*out[int(tid)], g})
    return out


def catalogue(snap: Mapping[str, Any]) -> dict[int, dict]:
    """``{type id: {"group", "features", "description"}}`` for every type of a snapshot:
    its service-need group (the group of its centroid; where the snapshot splits the
    type at a group boundary some of its families are in the next group, and where it
    groups families by their own need scores they may be in any group), its
    :func:`type_features` and their :func:`describe` words."""
    groups = dict(zip(snap["type_ids"], snap["groups"], strict=True))
    return {
        tid: {
            "group": int(groups[tid]),
            "features": ranked[:FEATURES_SHOWN],
            "description": describe(ranked),
        }
        for tid, ranked in type_features(snap, None).items()
    }
