"""Family feature vectors over the eight life domains.

Two steps, both pure functions of a family's *own* data:

1. :func:`person_profile` reduces one person's accepted events (all ten sources) to a
   small, rounded, sparse ``dict[str, float]`` that travels in the person summary.
2. :func:`family_vector` combines the members' profiles, roles, birth dates and the
   family's residence into a dense vector of the :data:`FEATURES` (24 features).

Neither looks at the global watermark or the wall clock: every time reference is the
person's own latest event (``t``, in months), so a family's vector -- and therefore its
type -- changes only when its own data changes. The price is staleness: a person who
stops producing events keeps their last profile (documented in docs/family-types.md).

The domains are those of Stiglitz, Sen & Fitoussi (2009). Political voice has no
register source in the ten registers; it is listed with no feature rather than with a
made-up proxy.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from models.family import members_now, residence_events
from models.person import EDUCATION_LEVEL, INCOME_MONTHS, STEM_KEY, SUPPORT_LEVEL, cents
from models.person import day as _ordinal
from models.person import month as _months

__all__ = [
    "BASE_FEATURES",
    "EPISODE_TYPES",
    "STEM_KEY",
    "DOMAINS",
    "FEATURES",
    "FEATURE_NAMES",
    "NEED_BASE",
    "NEED_WEIGHTS",
    "Feature",
    "family_vector",
    "feature_table_markdown",
    "need_index",
    "person_profile",
    "state_vector",
]

DOMAINS = (
    "material living standards",
    "health",
    "education",
    "personal activities including work",
    "political voice",
    "social connections",
    "environment",
    "insecurity",
)

#: Window of the person's own clock: the 730 days up to and including the person's own
#: latest event (two years: long enough to estimate rates of rare events, short enough
#: to forget old episodes).
WINDOW_DAYS = 730

STATUSES = ("employed", "unemployed", "student", "parental_leave", "outside_labour_force")

# Episode stems (see design.md "Episode identity") and the profile key of an active one.
EPISODE_TYPES = {
    "benefit.started": ("benefit", True),
    "benefit.ended": ("benefit", False),
    "ecec.started": ("ecec", True),
    "ecec.ended": ("ecec", False),
    "child_welfare.client_started": ("child_welfare.client", True),
    "child_welfare.client_ended": ("child_welfare.client", False),
    "child_welfare.placement_started": ("child_welfare.placement", True),
    "child_welfare.placement_ended": ("child_welfare.placement", False),
    "social_service.started": ("social_service", True),
    "social_service.ended": ("social_service", False),
}

# Municipality context (environment domain): unemployed 2017 / inhabitants 2018, from
# Statistics Finland Paavo (CC BY 4.0), models/data/municipalities.csv. Kept here as
# constants so that models/ does not read package data. Unknown municipality -> mean.
MUNICIPALITY_UNEMPLOYMENT = {
    "092": 11666 / 228166,
    "609": 5307 / 84403,
    "837": 16522 / 235239,
    "980": 1317 / 32983,
    "905": 3233 / 67552,
    "399": 278 / 8058,
}


def _order_key(ev: dict) -> tuple:
    return (ev.get("occurred_at", ""), ev.get("recorded_at", ""), ev.get("event_id", ""))


def person_profile(events: Iterable[dict]) -> dict[str, float]:
    """Reduce one person's accepted events to a compact, rounded, sparse profile.

    The profile is a function of the *set* of the person's events (duplicates by
    ``event_id`` count once; order does not matter) and of nothing else. Keys whose
    value is 0 are left out. The window is the person's own last :data:`WINDOW_DAYS`
    (730) days, ending with the person's latest event -- never the global watermark.

    ==========================  ====================================================
    key                         meaning
    ==========================  ====================================================
    ``t``                       months since 1970-01 of the person's latest event
    ``inc``                     mean monthly gross income (EUR, nearest 10) over the 24
                                calendar months ending with the latest reported month;
                                months without a report count as 0; the reports
                                summed in whole cents (exact, in any order)
    ``inc_mo``                  months with an income report in those 24
    ``st_<status>``             1 for the latest ``employment.status_changed``
    ``ds_<status>``             share of the window's days spent in that status
    ``edu``                     highest completed education, 1 basic … 5 doctoral
    ``sup``                     highest school support level, 1 general … 3 special
    ``d_<kind>``                share of the window's days with an active episode of the
                                kind (benefit kind, social service kind, ``ecec``,
                                ``cw_client``, ``cw_placement``)
    ``n_<kind>``                episodes of the kind started in the window
    ``v_<service>``             health visits by service in the window
    ``c_<service>``             specialised care episodes in the window
    ``cd``                      specialised care days in the window
    ``cwn``                     child welfare notifications in the window
    ==========================  ====================================================

    Examples
    --------
    >>> evs = [
    ...     {"event_id": "1", "source": "incomes", "type": "income.reported",
    ...      "occurred_at": "2026-03-05", "recorded_at": "2026-03-05T00:00:00.000000Z",
    ...      "data": {"month": "2026-02", "gross_eur": 3012.0}},
    ...     {"event_id": "2", "source": "kela", "type": "benefit.started",
    ...      "occurred_at": "2025-03-06", "recorded_at": "2025-03-06T00:00:00.000000Z",
    ...      "data": {"benefit": "housing_allowance", "episode": "e1"}},
    ...     {"event_id": "3", "source": "employment", "type": "employment.status_changed",
    ...      "occurred_at": "2025-03-06", "recorded_at": "2025-03-06T00:00:00.000000Z",
    ...      "data": {"status": "employed"}},
    ... ]
    >>> person_profile(evs)
    {'d_housing_allowance': 0.5, 'ds_employed': 0.5, 'inc': 130.0, 'inc_mo': 1.0, 'n_housing_allowance': 1.0, 'st_employed': 1.0, 't': 674.0}
    >>> person_profile(reversed(evs)) == person_profile(evs)
    True
    """
    seen: dict[str, dict] = {}
    for ev in events:
        seen[ev.get("event_id") or repr(sorted(ev.items()))] = ev
    if not seen:
        return {}
    evs = seen.values()  # no global sort: only statuses need the order
    last_date = max(e["occurred_at"] for e in evs)
    last = _ordinal(last_date)
    end = last + 1  # the window is [last - WINDOW_DAYS + 1, last]
    w0 = end - WINDOW_DAYS
    window_start = dt.date.fromordinal(w0).isoformat()

    prof: dict[str, float] = {"t": float(_months(last_date))}
    income_by_month: dict[int, list[int]] = {}  # whole cents (exact sums)
    statuses: list[tuple[tuple, int, str | None]] = []
    episodes: dict[tuple[str, str], list] = {}  # (stem, episode) -> [kind|None, start day, end day]

    def bump(key: str, by: float = 1.0) -> None:
        prof[key] = prof.get(key, 0.0) + by

    for ev in evs:
        typ, data = ev["type"], ev.get("data") or {}
        if typ == "income.reported":
            income_by_month.setdefault(_months(data["month"]), []).append(
                cents(float(data["gross_eur"]))
            )
        elif typ == "employment.status_changed":
            statuses.append((_order_key(ev), _ordinal(ev["occurred_at"]), data.get("status")))
        elif typ == "education.completed":
            prof["edu"] = max(
                prof.get("edu", 0.0), float(EDUCATION_LEVEL.get(data.get("level", ""), 0))
            )
        elif typ == "school.support_changed":
            prof["sup"] = max(
                prof.get("sup", 0.0), float(SUPPORT_LEVEL.get(data.get("level", ""), 0))
            )
        elif typ in EPISODE_TYPES:
            stem, is_start = EPISODE_TYPES[typ]
            rec = episodes.setdefault((stem, str(data.get("episode"))), [None, None, None])
            d = _ordinal(ev["occurred_at"])
            if is_start:
                rec[1] = d if rec[1] is None else min(rec[1], d)
                kind = data.get("benefit") or data.get("service")
                if kind and (rec[0] is None or kind < rec[0]):  # deterministic on conflicts
                    rec[0] = kind
            else:
                rec[2] = d if rec[2] is None else max(rec[2], d)
        elif ev["occurred_at"] >= window_start:
            if typ == "health.visit":
                bump(f"v_{data.get('service')}")
            elif typ == "care.episode":
                bump(f"c_{data.get('service')}")
                bump("cd", float(data.get("days") or 0))
            elif typ == "child_welfare.notification":
                bump("cwn")

    if income_by_month:
        last_m = max(income_by_month)
        months = range(last_m - INCOME_MONTHS + 1, last_m + 1)
        total = sum(sum(income_by_month[m]) for m in months if m in income_by_month)
        prof["inc"] = round(total / (100 * INCOME_MONTHS), -1)
        prof["inc_mo"] = float(sum(1 for m in months if m in income_by_month))
    if statuses:
        statuses.sort()  # "latest" order: the last status is the current one
        if statuses[-1][2] in STATUSES:
            prof[f"st_{statuses[-1][2]}"] = 1.0
        for i, (_, since, status) in enumerate(statuses):
            until = statuses[i + 1][1] if i + 1 < len(statuses) else end
            days = min(until, end) - max(since, w0)
            if days > 0 and status in STATUSES:
                bump(f"ds_{status}", days / WINDOW_DAYS)
    for (stem, _), (kind, start, stop) in episodes.items():
        if start is None:
            continue
        key = STEM_KEY.get(stem) or kind
        if not key:
            continue
        days = min(stop if stop is not None and stop >= start else end, end) - max(start, w0)
        if days > 0:
            bump(f"d_{key}", days / WINDOW_DAYS)
        if start >= w0:
            bump(f"n_{key}")
    rounded = ((k, round(float(v), 2)) for k, v in sorted(prof.items()))
    return {k: v for k, v in rounded if v}


@dataclass(frozen=True)
class Feature:
    """One column of the family vector: documentation and clustering weight."""

    name: str
    domain: str
    sources: str
    definition: str
    weight: float = 1.0  # multiplies the standardised value in the clustering metric


FEATURES: tuple[Feature, ...] = (
    # material living standards
    Feature(
        "income_per_cu",
        DOMAINS[0],
        "incomes, dvv",
        "Parents' mean monthly gross income (k EUR, 24 months) per OECD-modified consumption "
        "unit (1 first parent, 0.5 second parent and children ≥ 14, 0.3 children < 14)",
    ),
    Feature(
        "social_assistance",
        DOMAINS[0],
        "kela",
        "Share of the last 730 days with an active basic social assistance episode (max over members)",
    ),
    Feature(
        "social_assistance_episodes",
        DOMAINS[0],
        "kela",
        "Basic social assistance episodes started in the last 730 days, summed over members",
    ),
    # health
    Feature(
        "primary_care_visits",
        DOMAINS[1],
        "avohilmo",
        "Primary care visits in the last 730 days, mean over parents",
    ),
    Feature(
        "parent_mental_health_visits",
        DOMAINS[1],
        "avohilmo",
        "Mental health visits of the parents in the last 730 days",
    ),
    Feature(
        "child_mental_health_visits",
        DOMAINS[1],
        "avohilmo",
        "Mental health visits of the children in the last 730 days",
    ),
    Feature(
        "specialist_care_episodes",
        DOMAINS[1],
        "hilmo",
        "Specialised care episodes (somatic, psychiatric, emergency) in the last 730 days, all members",
    ),
    Feature(
        "health_allowance",
        DOMAINS[1],
        "kela",
        "Share of the last 730 days with an active sickness or disability allowance (max over members)",
    ),
    # education
    Feature(
        "parent_education",
        DOMAINS[2],
        "koski",
        "Highest completed education of any parent: 0 unknown, 1 basic, 2 upper secondary / "
        "vocational, 3 bachelor, 4 master, 5 doctoral",
    ),
    Feature(
        "school_support",
        DOMAINS[2],
        "koski",
        "Highest school support level of any child: 0 none, 1 general, 2 intensified, 3 special",
    ),
    # personal activities including work
    Feature(
        "parents_employed_share",
        DOMAINS[3],
        "employment",
        "Share of the last 730 days the parents were employed (mean over parents)",
    ),
    Feature(
        "parents_unemployed_share",
        DOMAINS[3],
        "employment",
        "Share of the last 730 days the parents were unemployed (mean over parents)",
    ),
    Feature(
        "parents_outside_work_share",
        DOMAINS[3],
        "employment",
        "Share of the last 730 days the parents were outside the labour force or students",
    ),
    # political voice: no register source (see docs/family-types.md)
    # social connections
    Feature(
        "single_parent", DOMAINS[5], "dvv", "1 if the family has exactly one member of role parent"
    ),
    Feature(
        "n_children",
        DOMAINS[5],
        "dvv",
        "Children (role child, under 18 at the family's reference month)",
    ),
    Feature(
        "youngest_child_age",
        DOMAINS[5],
        "dvv",
        "Age in whole years of the youngest child at the family's reference month (0 if none)",
    ),
    Feature(
        "family_work_episodes",
        DOMAINS[5],
        "social_services",
        "Family work episodes started in the last 730 days",
    ),
    Feature(
        "home_service_episodes",
        DOMAINS[5],
        "social_services",
        "Home service episodes started in the last 730 days",
    ),
    Feature(
        "family_counselling_episodes",
        DOMAINS[5],
        "social_services",
        "Family counselling episodes started in the last 730 days",
    ),
    Feature(
        "multi_professional_support",
        DOMAINS[5],
        "social_services",
        "Share of the last 730 days with an active multi-professional support episode",
    ),
    # environment
    Feature(
        "housing_allowance",
        DOMAINS[6],
        "kela",
        "Share of the last 730 days with an active housing allowance (housing cost burden)",
        0.75,
    ),
    Feature(
        "area_unemployment_rate",
        DOMAINS[6],
        "dvv (residence), Paavo 2017",
        "Unemployed per inhabitant (%) of the residence municipality, Paavo 2017/2018; "
        "mean of the six if unknown",
        0.5,
    ),
    Feature(
        "moves",
        DOMAINS[6],
        "dvv",
        "Residence changes in the 24 months up to the family's reference month",
    ),
    # insecurity
    Feature(
        "cw_notifications",
        DOMAINS[7],
        "child_welfare",
        "Child welfare notifications of the children in the last 730 days",
    ),
    Feature(
        "cw_client",
        DOMAINS[7],
        "child_welfare",
        "Share of the last 730 days with an active child welfare client episode (max over children)",
    ),
    Feature(
        "cw_placement",
        DOMAINS[7],
        "child_welfare",
        "Share of the last 730 days with an active placement (max over children)",
    ),
    Feature(
        "substance_abuse_contacts",
        DOMAINS[7],
        "avohilmo, social_services",
        "Substance abuse visits in the last 730 days plus the share of days with a substance "
        "abuse service, all members",
    ),
    Feature(
        "income_gap_share",
        DOMAINS[7],
        "incomes",
        "Share of the 24 latest months without an income report, averaged over parents "
        "(1 if a parent has no income report)",
    ),
    # composite
    Feature(
        "need_index",
        "all (composite)",
        "all of the above",
        "The service-need score of models.service_need (frozen weighted sum of the features "
        "above, in need-level units); weighted so that types are homogeneous in need",
        4.0,
    ),
)

FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
BASE_FEATURES: tuple[str, ...] = FEATURE_NAMES[:-1]

# The composite feature ``need_index`` is the service-need score of the base features:
# ``NEED_BASE + Σ_j w_j · (x_j − REF_j)``. Its frozen weights live here, with the feature
# they define; models.service_need builds its rule (and the ten groups) on them.
# --- frozen constants, written by bench/fit_need_rule.py (seed 101, 20 000 families) ---
# fitted on synthesize(20000, seed=101): 18220 families, family-level Spearman 0.766, quadratic kappa 0.877 (signs fixed by meaning)
#: feature -> (weight in need levels per feature unit, reference value = mean family)
NEED_WEIGHTS: dict[str, tuple[float, float]] = {
    "income_per_cu": (-0.2788, 2.1350),
    "social_assistance": (+1.8035, 0.1057),
    "social_assistance_episodes": (+0.4589, 0.4993),
    "primary_care_visits": (+0.1090, 1.6036),
    "parent_mental_health_visits": (+0.3649, 1.0746),
    "child_mental_health_visits": (+0.1237, 0.2368),
    "specialist_care_episodes": (+0.0932, 1.7070),
    "health_allowance": (+0.2368, 0.0497),
    "parent_education": (-0.0666, 3.0567),
    "school_support": (+0.0831, 0.3064),
    "parents_employed_share": (+0.0000, 0.7560),
    "parents_unemployed_share": (+0.9123, 0.0960),
    "parents_outside_work_share": (+0.0000, 0.1124),
    "single_parent": (+0.3834, 0.2264),
    "n_children": (-0.2650, 1.7131),
    "youngest_child_age": (-0.0123, 8.2811),
    "family_work_episodes": (+0.8138, 0.2248),
    "home_service_episodes": (+0.5184, 0.0953),
    "family_counselling_episodes": (+0.2710, 0.1929),
    "multi_professional_support": (+2.0823, 0.0435),
    "housing_allowance": (+0.3418, 0.1524),
    "area_unemployment_rate": (+0.0852, 5.7273),
    "moves": (+0.1792, 0.1787),
    "cw_notifications": (+0.2329, 0.5055),
    "cw_client": (+0.9177, 0.0645),
    "cw_placement": (+0.2071, 0.0250),
    "substance_abuse_contacts": (+0.0000, 0.3049),
    "income_gap_share": (+0.0000, 0.2317),
}
#: Need score of the reference (average) family.
NEED_BASE: float = 3.6178
# --- end of frozen constants ---

# The score as offset + Σ w·x, summed in this order: ServiceNeedRule().need_score gives
# the same float bit for bit (tests/models/test_service_need.py).
_NEED_OFFSET = NEED_BASE - float(sum(w * r for w, r in NEED_WEIGHTS.values()))
_NEED_TERMS = tuple((f, w) for f, (w, _) in NEED_WEIGHTS.items())


def need_index(profile: Mapping[str, float]) -> float:
    """The frozen need score of a profile or vector (the ``need_index`` feature), in
    need levels; :class:`models.service_need.ServiceNeedRule` with its default weights
    scores the same.

    Examples
    --------
    >>> need_index({f: r for f, (_, r) in NEED_WEIGHTS.items()}) == NEED_BASE
    True
    >>> need_index({"social_assistance": 1.0}) > need_index({})
    True
    """
    s = _NEED_OFFSET
    for f, w in _NEED_TERMS:
        s += w * float(profile.get(f, 0.0))
    return round(s, 6)


def _age_months(birth_date: str, ref_months: int) -> int:
    return ref_months - _months(birth_date)


# Σ and max of profile keys over profiles, in the order the features always summed them
# (list comprehensions: the same sequence to ``sum`` as the generators before, faster).
def _total(profs: list[dict], *keys: str) -> float:
    return float(sum([p.get(k, 0.0) for p in profs for k in keys]))


def _most(profs: list[dict], *keys: str) -> float:
    return max([p.get(k, 0.0) for p in profs for k in keys], default=0.0)


def _round2(x: float) -> float:
    """``round(x, 2)``, which a whole number (most features: counts, flags, zeros) is
    already: CPython's ``round`` with digits goes through a decimal string, slowly."""
    return x if x.is_integer() else round(x, 2)


def family_vector(members: list[dict], residence: dict | Iterable[dict] | None) -> dict[str, float]:
    """The family's dense feature vector (all :data:`FEATURE_NAMES`, rounded to 0.01).

    Parameters
    ----------
    members
        ``{"role": "parent"|"child", "birth_date": "YYYY-MM-DD", "profile": {...}}``
        per member, the profile from :func:`person_profile`.
    residence
        The family's residence events (``family.residence_changed``; the latest gives
        the municipality, those in the last 24 months count as moves), or just the
        latest ``{"postcode": ..., "municipality": ...}``, or None.

    The reference month (for ages and moves) is the latest ``t`` of the members'
    profiles -- the family's own clock, never the global watermark.

    Examples
    --------
    >>> mum = {"role": "parent", "birth_date": "1990-01-01",
    ...        "profile": {"t": 674.0, "inc": 3000.0, "inc_mo": 24.0, "ds_employed": 1.0, "edu": 3.0}}
    >>> kid = {"role": "child", "birth_date": "2020-06-01",
    ...        "profile": {"t": 670.0, "d_ecec": 1.0}}
    >>> v = family_vector([mum, kid], {"postcode": "33100", "municipality": "837"})
    >>> len(v), v["single_parent"], v["n_children"], v["youngest_child_age"], v["income_per_cu"]
    (29, 1.0, 1.0, 5.0, 2.31)
    >>> list(v) == list(FEATURE_NAMES)
    True
    """
    ref = max((int((m.get("profile") or {}).get("t", 0)) for m in members), default=0)
    parents, children, ages_m = [], [], []  # children under 18 at ``ref``, their ages
    for m in members:
        role = m.get("role")
        if role == "parent":
            parents.append(m)
        elif role == "child" and 0 <= (age := _age_months(m["birth_date"], ref)) < 18 * 12:
            children.append(m)
            ages_m.append(age)
    profiles = [m.get("profile") or {} for m in members]
    pprof = [m.get("profile") or {} for m in parents]
    cprof = [c.get("profile") or {} for c in children]

    def mean(*keys: str, profs=pprof) -> float:
        return _total(profs, *keys) / len(profs) if profs else 0.0

    # OECD-modified consumption units over the members counted (parents + children).
    cu = 1.0 + 0.5 * max(len(parents) - 1, 0)
    for age in ages_m:
        cu += 0.5 if age >= 14 * 12 else 0.3
    if not parents:
        cu += 0.5  # a child-only family still needs an adult's unit
    ages = [age // 12 for age in ages_m]

    events: list[dict]
    if residence is None:
        events = []
    elif isinstance(residence, dict):
        events = [{"occurred_at": "", "recorded_at": "", "event_id": "", "data": residence}]
    else:
        events = sorted(residence, key=_order_key)
    muni = events[-1]["data"].get("municipality", "") if events else ""
    since = (
        dt.date(1970 + (ref - 23) // 12, (ref - 23) % 12 + 1, 1).isoformat() if ref >= 23 else ""
    )
    moves = sum(1 for e in events if e["occurred_at"] and e["occurred_at"] >= since) if ref else 0
    area_rate = MUNICIPALITY_UNEMPLOYMENT.get(
        muni, sum(MUNICIPALITY_UNEMPLOYMENT.values()) / len(MUNICIPALITY_UNEMPLOYMENT)
    )
    vec = {
        "income_per_cu": _total(pprof, "inc") / 1000.0 / cu,
        "social_assistance": _most(profiles, "d_basic_social_assistance"),
        "social_assistance_episodes": _total(profiles, "n_basic_social_assistance"),
        "primary_care_visits": mean("v_primary_care"),
        "parent_mental_health_visits": _total(pprof, "v_mental_health"),
        "child_mental_health_visits": _total(cprof, "v_mental_health"),
        "specialist_care_episodes": _total(
            profiles, "c_somatic_specialist", "c_psychiatric", "c_emergency"
        ),
        "health_allowance": _most(profiles, "d_sickness_allowance", "d_disability_allowance"),
        "parent_education": _most(pprof, "edu"),
        "school_support": _most(cprof, "sup"),
        "parents_employed_share": mean("ds_employed"),
        "parents_unemployed_share": mean("ds_unemployed"),
        "parents_outside_work_share": mean("ds_outside_labour_force", "ds_student"),
        "single_parent": 1.0 if len(parents) == 1 else 0.0,
        "n_children": float(len(children)),
        "youngest_child_age": float(min(ages)) if ages else 0.0,
        "family_work_episodes": _total(profiles, "n_family_work"),
        "home_service_episodes": _total(profiles, "n_home_service"),
        "family_counselling_episodes": _total(profiles, "n_family_counselling"),
        "multi_professional_support": _most(profiles, "d_multi_professional_support"),
        "housing_allowance": _most(profiles, "d_housing_allowance"),
        "area_unemployment_rate": 100.0 * area_rate,
        "moves": float(moves),
        "cw_notifications": _total(cprof, "cwn"),
        "cw_client": _most(cprof, "d_cw_client"),
        "cw_placement": _most(cprof, "d_cw_placement"),
        "substance_abuse_contacts": _total(
            profiles, "v_substance_abuse", "d_substance_abuse_services"
        ),
        "income_gap_share": (
            sum(1.0 - p.get("inc_mo", 0.0) / INCOME_MONTHS for p in pprof) / len(pprof)
            if pprof
            else 1.0
        ),
    }
    out = {name: _round2(float(vec[name])) for name in BASE_FEATURES}
    out["need_index"] = round(need_index(out), 2)
    return out


def state_vector(state: dict) -> dict[str, float] | None:
    """:func:`family_vector` of a family state of :mod:`models.family` (members carrying
    ``"profile"``, :func:`models.profile.state_profile`); None if the family has no
    members now.

    Examples
    --------
    >>> st = {"res": [], "mem": {"p": {"m": [[738000, "parent", "1990-01-01"]],
    ...        "profile": {"t": 674.0}}}}
    >>> state_vector(st)["single_parent"]
    1.0
    """
    members = members_now(state)
    if not members:
        return None
    return family_vector(members, residence_events(state))


def feature_table_markdown() -> str:
    """The feature table (feature → domain → sources → definition) as Markdown.

    Examples
    --------
    >>> print(feature_table_markdown().splitlines()[0])
    | # | feature | domain | source registers | definition | weight |
    """
    lines = [
        "| # | feature | domain | source registers | definition | weight |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for i, f in enumerate(FEATURES, 1):
        lines.append(
            f"| {i} | `{f.name}` | {f.domain} | {f.sources} | {f.definition} | {f.weight:g} |"
        )
    return "\n".join(lines)
