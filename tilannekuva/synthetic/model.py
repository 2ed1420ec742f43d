"""The latent model behind the synthetic registers: areas, archetypes, need levels.

Everything here is a fixed, documented model (``docs/synthetic.md``). The archetype
table does not depend on the user's seed, so archetype ``k`` means the same family type
in every generated file.

Reference data: Statistics Finland, Paavo — open data by postal code area (CC BY 4.0),
see ``models/data/README.md``.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass

import numpy as np

from models.areas import data_path

# The eight life domains; an archetype is a vector of intensities (0 = no burden).
DOMAINS = (
    "material",
    "health",
    "education",
    "work",
    "political_voice",
    "social_connections",
    "environment",
    "insecurity",
)
MAT, HEA, EDU, WRK, VOI, SOC, ENV, INS = range(8)

# 20 patterns (directions over the domains) x 5 severities = 100 archetypes.
PATTERNS: tuple[tuple[str, dict[int, float]], ...] = (
    ("well-off", {}),
    ("low income", {MAT: 1.0, ENV: 0.5, WRK: 0.3}),
    ("long-term unemployment", {WRK: 1.0, MAT: 0.7, VOI: 0.4, HEA: 0.2}),
    ("chronic illness", {HEA: 1.0, WRK: 0.5, MAT: 0.3}),
    ("parental mental health", {HEA: 0.8, INS: 0.7, SOC: 0.5, WRK: 0.3}),
    ("substance use", {INS: 1.0, HEA: 0.6, SOC: 0.5, MAT: 0.5, WRK: 0.4}),
    ("single-parent strain", {SOC: 1.0, MAT: 0.7, WRK: 0.3, INS: 0.2}),
    ("newcomer / language", {VOI: 1.0, EDU: 0.6, WRK: 0.6, SOC: 0.5, MAT: 0.4}),
    ("student parents", {MAT: 0.8, EDU: 0.2, ENV: 0.4}),
    ("large family", {MAT: 0.6, ENV: 0.6, SOC: 0.2}),
    ("child with special needs", {EDU: 0.9, HEA: 0.6, SOC: 0.4}),
    ("housing insecurity", {ENV: 1.0, MAT: 0.7, INS: 0.4}),
    ("teenager in crisis", {INS: 0.8, EDU: 0.7, HEA: 0.4}),
    ("domestic conflict", {INS: 0.9, SOC: 0.8, HEA: 0.3}),
    ("low education", {EDU: 1.0, WRK: 0.6, MAT: 0.4}),
    ("isolation", {SOC: 1.0, VOI: 0.8, HEA: 0.3}),
    ("disability", {HEA: 0.9, WRK: 0.8, MAT: 0.5}),
    ("precarious work", {WRK: 0.8, MAT: 0.6, INS: 0.4}),
    ("deprived neighbourhood", {ENV: 0.9, VOI: 0.6, INS: 0.3, MAT: 0.3}),
    (
        "multiple problems",
        {MAT: 0.9, HEA: 0.8, EDU: 0.6, WRK: 0.8, VOI: 0.5, SOC: 0.8, ENV: 0.6, INS: 0.9},
    ),
)
SEVERITIES = (0.12, 0.3, 0.48, 0.68, 0.9)
SEVERITY_WEIGHTS = (0.34, 0.27, 0.19, 0.12, 0.08)
PATTERN_WEIGHTS = (4.0,) + (1.0,) * 18 + (0.6,)
# Weights of the domains in the need score (insecurity and material burden weigh most).
NEED_WEIGHTS = np.array([1.0, 0.9, 0.6, 0.8, 0.4, 0.8, 0.5, 1.3])
NEED_NOISE = 0.12
AREA_NEED = 0.12  # direct area term in the need score
AREA_TILT = 1.6  # how strongly an area's propensity tilts the archetype mix
# Target shares of need levels 1..10: >= 4 is 38 %, 9-10 is 10 %.
LEVEL_SHARES = (0.30, 0.17, 0.15, 0.08, 0.06, 0.05, 0.05, 0.04, 0.05, 0.05)

ARCHETYPE_SEED = 20230701


@dataclass(frozen=True)
class Archetype:
    index: int
    pattern: str
    severity: float
    weight: float  # prevalence before area tilt
    domains: tuple[float, ...]  # eight intensities in 0..1
    need: float  # need score (mean, before area and noise)
    single_parent: float  # probability of a single-parent family
    children_mean: float  # expected number of children (1..5)
    first_birth_age: float  # mean age of the first parent at the first birth


def _archetypes() -> tuple[Archetype, ...]:
    rng = np.random.default_rng(ARCHETYPE_SEED)
    out = []
    for p, (name, pattern) in enumerate(PATTERNS):
        direction = np.zeros(8)
        for d, w in pattern.items():
            direction[d] = w
        for v, sev in enumerate(SEVERITIES):
            jitter = rng.uniform(-0.04, 0.04, 8)
            dom = np.clip(
                0.04 + sev * direction + jitter + (0.05 * sev if name == "well-off" else 0),
                0.0,
                1.0,
            )
            need = float(NEED_WEIGHTS @ dom)
            single = float(
                np.clip(
                    0.10 + 0.55 * dom[SOC] + 0.15 * dom[INS] + rng.uniform(-0.03, 0.03), 0.03, 0.85
                )
            )
            kids = (
                1.75
                + (1.6 * sev if name == "large family" else 0.0)
                + 0.3 * dom[VOI]
                + rng.uniform(-0.15, 0.15)
            )
            first = (
                30.5
                - 5.0 * dom[MAT]
                - 3.5 * dom[EDU]
                + (-3.0 * sev if name == "student parents" else 0.0)
            )
            out.append(
                Archetype(
                    index=len(out),
                    pattern=name,
                    severity=sev,
                    weight=PATTERN_WEIGHTS[p] * SEVERITY_WEIGHTS[v],
                    domains=tuple(float(x) for x in dom),
                    need=need,
                    single_parent=single,
                    children_mean=float(kids),
                    first_birth_age=float(first),
                )
            )
    return tuple(out)


ARCHETYPES = _archetypes()


@dataclass(frozen=True)
class Area:
    postcode: str
    name: str
    municipality: str
    x: float
    y: float
    weight: float  # share of the municipality's families (relative)
    propensity: float  # need propensity, about -0.6 (sparse) .. +1.2 (railway corridor)


@dataclass(frozen=True)
class Municipality:
    code: str
    name: str
    households_with_children: int
    effect: float  # municipality-level need propensity from Paavo unemployment and income


# Centres of population per municipality (postcodes); density decays with distance.
CENTRES = {
    "092": ("01300", "01600", "01450", "01200", "01360", "01620"),
    "837": ("33100", "33720", "33540", "33310"),
    "980": ("33470",),
    "609": ("28100",),
    "905": ("65100",),
    "399": ("66400",),
}
DECAY_KM = {"092": 3.0, "837": 4.0, "980": 4.0, "609": 4.0, "905": 3.5, "399": 5.0}
INDUSTRIAL = {"01740", "01770"}
# Areas of higher need: the Vantaa railway corridor and its neighbours, and the
# suburbs of Tampere, Pori and Vaasa known for rental housing.
HIGH_NEED = {
    # Vantaa: ring rail and main line stations, Hakunila and Länsimäki
    "01300": 1.0,
    "01350": 0.8,
    "01360": 1.1,
    "01400": 0.8,
    "01450": 0.9,
    "01600": 1.1,
    "01610": 0.9,
    "01620": 1.0,
    "01200": 1.1,
    "01280": 1.0,
    "01370": 0.4,
    "01670": 0.5,
    "01480": 0.3,
    "01230": 0.4,
    "01380": 0.3,
    "01420": 0.3,
    # Tampere
    "33720": 0.7,
    "33310": 0.6,
    "33850": 0.6,
    "33840": 0.5,
    "33300": 0.4,
    "33800": 0.3,
    "33100": 0.2,
    # Pori
    "28300": 0.5,
    "28100": 0.3,
    "28430": 0.4,
    "28130": 0.3,
    # Vaasa
    "65370": 0.5,
    "65100": 0.2,
    "65320": 0.3,
}


def load_municipalities() -> dict[str, Municipality]:
    rows = list(csv.DictReader(data_path("municipalities.csv").open(encoding="utf-8")))
    unemp = np.array([int(r["unemployed_2017"]) / int(r["inhabitants_2018"]) for r in rows])
    income = np.array([int(r["median_household_income_eur_2017"]) for r in rows], dtype=float)
    z = (unemp - unemp.mean()) / unemp.std() - (income - income.mean()) / income.std()
    z = 0.15 * z
    return {
        r["municipality_code"]: Municipality(
            r["municipality_code"],
            r["municipality"],
            int(r["households_with_children_2018"]),
            float(e),
        )
        for r, e in zip(rows, z, strict=True)
    }


def load_areas() -> list[Area]:
    rows = list(csv.DictReader(data_path("postcode-areas.csv").open(encoding="utf-8")))
    xy = {r["postcode"]: (float(r["x_etrs_tm35fin"]), float(r["y_etrs_tm35fin"])) for r in rows}
    areas = []
    for r in rows:
        code, muni = r["postcode"], r["municipality_code"]
        x, y = xy[code]
        km = min(math.dist((x, y), xy[c]) for c in CENTRES[muni]) / 1000.0
        weight = 0.06 + math.exp(-km / DECAY_KM[muni])
        if code in INDUSTRIAL:
            weight = 0.01
        propensity = HIGH_NEED.get(code, 0.0)
        if km > 12:  # sparsely populated villages
            propensity -= min(0.6, 0.3 + (km - 12) / 40)
        areas.append(Area(code, r["name"], muni, x, y, weight, propensity))
    return areas


# Destinations outside the six municipalities (a move there takes a family out).
ELSEWHERE = (
    ("091", ("00100", "00500", "00940", "00710", "00420")),  # Helsinki
    ("049", ("02100", "02230", "02770")),  # Espoo
    ("853", ("20100", "20610")),  # Turku
    ("564", ("90100", "90570")),  # Oulu
    ("179", ("40100", "40520")),  # Jyväskylä
    ("398", ("15100",)),  # Lahti
    ("858", ("04400",)),  # Kerava
    ("211", ("36200",)),  # Kangasala
)
# Moves between the six favour the neighbour.
NEIGHBOUR = {"837": "980", "980": "837", "905": "399", "399": "905", "609": "837", "092": "837"}


def need_levels(scores: np.ndarray) -> np.ndarray:
    """Levels 1..10 from need scores by the target shares (:data:`LEVEL_SHARES`)."""
    if len(scores) == 0:
        return np.zeros(0, dtype=int)
    cuts = np.cumsum(LEVEL_SHARES)[:-1]
    order = np.argsort(scores, kind="stable")
    levels = np.empty(len(scores), dtype=int)
    ranks = np.empty(len(scores))
    ranks[order] = (np.arange(len(scores)) + 0.5) / len(scores)
    levels[:] = 1 + np.searchsorted(cuts, ranks, side="right")
    return levels
