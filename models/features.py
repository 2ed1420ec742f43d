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
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "DOMAINS",
    "FEATURES",
    "FEATURE_NAMES",
    "Feature",
    "family_vector",
    "feature_table_markdown",
    "person_profile",
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

#: Rolling window of the person's own clock: events in the 365 days up to and including
#: the person's own latest event count as "per year".
WINDOW_DAYS = 365
INCOME_MONTHS = 12

EDUCATION_LEVEL = {
    "basic": 1,
    "upper_secondary": 2,
    "vocational": 2,
    "bachelor": 3,
    "master": 4,
    "doctoral": 5,
}
SUPPORT_LEVEL = {"general": 1, "intensified": 2, "special": 3}
STATUSES = ("employed", "unemployed", "student", "parental_leave", "outside_labour_force")

# Episode stems (see design.md "Episode identity") and the profile key of an active one.
_EPISODE_TYPES = {
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
_STEM_KEY = {
    "ecec": "a_ecec",
    "child_welfare.client": "a_cw_client",
    "child_welfare.placement": "a_cw_placement",
}

# Municipality context (environment domain): unemployed 2017 / inhabitants 2018, from
# Statistics Finland Paavo (CC BY 4.0), tilannekuva/data/municipalities.csv. Kept here as
# constants so that models/ does not read package data. Unknown municipality -> mean.
MUNICIPALITY_UNEMPLOYMENT = {
    "092": 11666 / 228166,
    "609": 5307 / 84403,
    "837": 16522 / 235239,
    "980": 1317 / 32983,
    "905": 3233 / 67552,
    "399": 278 / 8058,
}


def _months(date: str) -> int:
    """Months since 1970-01 of a ``YYYY-MM[-DD]`` string."""
    return (int(date[0:4]) - 1970) * 12 + int(date[5:7]) - 1


def _order_key(ev: dict) -> tuple:
    return (ev.get("occurred_at", ""), ev.get("recorded_at", ""), ev.get("event_id", ""))


def person_profile(events: Iterable[dict]) -> dict[str, float]:
    """Reduce one person's accepted events to a compact, rounded, sparse profile.

    The profile is a function of the *set* of the person's events (duplicates by
    ``event_id`` count once; order does not matter) and of nothing else. Keys whose
    value is 0 are left out.

    ==========================  ====================================================
    key                         meaning
    ==========================  ====================================================
    ``t``                       months since 1970-01 of the person's latest event
    ``inc``                     mean monthly gross income (EUR, nearest 10) over the 12
                                calendar months ending with the latest reported month;
                                months without a report count as 0
    ``inc_mo``                  months with an income report in those 12
    ``st_<status>``             1 for the latest ``employment.status_changed``
    ``edu``                     highest completed education, 1 basic … 5 doctoral
    ``sup``                     highest school support level, 1 general … 3 special
    ``a_<kind>``                1 per active episode kind (benefit kind, social service
                                kind, ``ecec``, ``cw_client``, ``cw_placement``)
    ``v_<service>``             health visits by service in the person's last 365 days
    ``c_<service>``             specialised care episodes in the last 365 days
    ``cd``                      specialised care days in the last 365 days
    ``cwn``                     child welfare notifications in the last 365 days
    ==========================  ====================================================

    "Last 365 days" is measured back from the person's own latest event, never from
    the global watermark.

    Examples
    --------
    >>> evs = [
    ...     {"event_id": "1", "source": "incomes", "type": "income.reported",
    ...      "occurred_at": "2026-03-05", "recorded_at": "2026-03-05T00:00:00.000000Z",
    ...      "data": {"month": "2026-02", "gross_eur": 3012.0}},
    ...     {"event_id": "2", "source": "kela", "type": "benefit.started",
    ...      "occurred_at": "2026-01-10", "recorded_at": "2026-01-10T00:00:00.000000Z",
    ...      "data": {"benefit": "housing_allowance", "episode": "e1"}},
    ...     {"event_id": "3", "source": "employment", "type": "employment.status_changed",
    ...      "occurred_at": "2025-12-01", "recorded_at": "2025-12-01T00:00:00.000000Z",
    ...      "data": {"status": "employed"}},
    ... ]
    >>> person_profile(evs)
    {'a_housing_allowance': 1.0, 'inc': 250.0, 'inc_mo': 1.0, 'st_employed': 1.0, 't': 674.0}
    >>> person_profile(reversed(evs)) == person_profile(evs)
    True
    """
    seen: dict[str, dict] = {}
    for ev in events:
        seen[ev.get("event_id") or repr(sorted(ev.items()))] = ev
    evs = sorted(seen.values(), key=_order_key)
    if not evs:
        return {}
    last_date = max(e["occurred_at"] for e in evs)
    last_day = dt.date.fromisoformat(last_date)
    window_start = (last_day - dt.timedelta(days=WINDOW_DAYS - 1)).isoformat()

    prof: dict[str, float] = {"t": float(_months(last_date))}
    income_by_month: dict[int, float] = {}
    status = None
    episodes: dict[tuple[str, str], list] = {}  # (stem, episode) -> [kind|None, started, ended]

    def bump(key: str, by: float = 1.0) -> None:
        prof[key] = prof.get(key, 0.0) + by

    for ev in evs:  # sorted: the last status seen is the latest
        typ, data = ev["type"], ev.get("data") or {}
        in_window = ev["occurred_at"] >= window_start
        if typ == "income.reported":
            m = _months(data["month"])
            income_by_month[m] = income_by_month.get(m, 0.0) + float(data["gross_eur"])
        elif typ == "employment.status_changed":
            status = data.get("status")
        elif typ == "education.completed":
            prof["edu"] = max(prof.get("edu", 0.0), float(EDUCATION_LEVEL.get(data.get("level"), 0)))
        elif typ == "school.support_changed":
            prof["sup"] = max(prof.get("sup", 0.0), float(SUPPORT_LEVEL.get(data.get("level"), 0)))
        elif typ in _EPISODE_TYPES:
            stem, is_start = _EPISODE_TYPES[typ]
            rec = episodes.setdefault((stem, str(data.get("episode"))), [None, False, False])
            if is_start:
                rec[1] = True
                kind = data.get("benefit") or data.get("service")
                if kind and (rec[0] is None or kind < rec[0]):  # deterministic on conflicts
                    rec[0] = kind
            else:
                rec[2] = True
        elif typ == "health.visit" and in_window:
            bump(f"v_{data.get('service')}")
        elif typ == "care.episode" and in_window:
            bump(f"c_{data.get('service')}")
            bump("cd", float(data.get("days") or 0))
        elif typ == "child_welfare.notification" and in_window:
            bump("cwn")

    if income_by_month:
        last_m = max(income_by_month)
        window = [income_by_month.get(m, 0.0) for m in range(last_m - INCOME_MONTHS + 1, last_m + 1)]
        prof["inc"] = round(sum(window) / INCOME_MONTHS, -1)
        prof["inc_mo"] = float(sum(1 for m in range(last_m - INCOME_MONTHS + 1, last_m + 1) if m in income_by_month))
    if status in STATUSES:
        prof[f"st_{status}"] = 1.0
    for (stem, _), (kind, started, ended) in episodes.items():
        if started and not ended:
            key = _STEM_KEY.get(stem) or (f"a_{kind}" if kind else None)
            if key:
                prof[key] = 1.0
    return {k: float(v) for k, v in sorted(prof.items()) if v}


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
    Feature("income_per_cu", DOMAINS[0], "incomes, dvv",
            "Members' mean monthly gross income (k EUR, 12 months) per OECD-modified "
            "consumption unit (1 first adult, 0.5 other adults and children ≥ 14, 0.3 children < 14)"),
    Feature("social_assistance", DOMAINS[0], "kela",
            "1 if a member has an active basic social assistance episode"),
    # health
    Feature("health_allowance_members", DOMAINS[1], "kela",
            "Members with an active disability or sickness allowance"),
    Feature("mental_health_contacts", DOMAINS[1], "avohilmo, hilmo",
            "Mental health visits plus psychiatric care episodes, last 365 days, summed over members"),
    Feature("substance_abuse_contacts", DOMAINS[1], "avohilmo, social_services",
            "Substance abuse visits in the last 365 days plus 1 per active substance abuse service, summed over members"),
    Feature("specialist_care_days", DOMAINS[1], "hilmo",
            "Specialised care days (somatic, psychiatric, emergency), last 365 days, summed over members"),
    # education
    Feature("parent_education", DOMAINS[2], "koski",
            "Highest completed education of any parent: 0 unknown, 1 basic, 2 upper secondary / "
            "vocational, 3 bachelor, 4 master, 5 doctoral"),
    Feature("school_support", DOMAINS[2], "koski",
            "Highest school support level of any child: 0 none, 1 general, 2 intensified, 3 special"),
    Feature("ecec_children", DOMAINS[2], "varda",
            "Children in an active early childhood education episode"),
    # personal activities including work
    Feature("parents_employed_share", DOMAINS[3], "employment",
            "Share of parents whose latest status is employed"),
    Feature("parents_unemployed_share", DOMAINS[3], "employment",
            "Share of parents whose latest status is unemployed"),
    Feature("unemployment_benefit", DOMAINS[3], "kela",
            "1 if a parent has an active unemployment benefit episode"),
    Feature("parents_outside_work_share", DOMAINS[3], "employment, kela",
            "Share of parents outside labour force, on parental leave or with active child home care allowance"),
    # political voice: no register source (see docs/family-types.md)
    # social connections
    Feature("single_parent", DOMAINS[5], "dvv",
            "1 if the family has exactly one member of role parent"),
    Feature("n_children", DOMAINS[5], "dvv",
            "Children (role child, under 18 at the family's reference month)"),
    Feature("youngest_child_age", DOMAINS[5], "dvv",
            "Age in whole years of the youngest child at the family's reference month (0 if none)"),
    Feature("family_services", DOMAINS[5], "social_services",
            "Active family work, home service and family counselling episodes of members"),
    Feature("multi_professional_support", DOMAINS[5], "social_services",
            "1 if a member has an active multi-professional support episode"),
    # environment
    Feature("housing_allowance", DOMAINS[6], "kela",
            "1 if a member has an active housing allowance (proxy for housing cost burden)", 0.75),
    Feature("area_unemployment_rate", DOMAINS[6], "dvv (residence), Paavo 2017",
            "Unemployed per inhabitant (%) of the residence municipality, Paavo 2017/2018; "
            "mean of the six if unknown", 0.5),
    # insecurity
    Feature("cw_notifications", DOMAINS[7], "child_welfare",
            "Child welfare notifications, last 365 days, summed over members"),
    Feature("cw_client", DOMAINS[7], "child_welfare",
            "1 if a member has an active child welfare client episode"),
    Feature("cw_placement", DOMAINS[7], "child_welfare",
            "1 if a member has an active child welfare placement episode"),
    Feature("income_gap_share", DOMAINS[7], "incomes",
            "Share of the 12 latest months without an income report, averaged over parents "
            "(1 if a parent has no income report)"),
)

FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)


def _age_months(birth_date: str, ref_months: int) -> int:
    return ref_months - _months(birth_date)


def family_vector(members: list[dict], residence: dict | None) -> dict[str, float]:
    """The family's dense feature vector (all :data:`FEATURE_NAMES`, rounded to 0.01).

    Parameters
    ----------
    members
        ``{"role": "parent"|"child", "birth_date": "YYYY-MM-DD", "profile": {...}}``
        per member, the profile from :func:`person_profile`.
    residence
        ``{"postcode": ..., "municipality": ...}`` or None.

    The reference month (for ages) is the latest ``t`` of the members' profiles -- the
    family's own clock, never the global watermark.

    Examples
    --------
    >>> mum = {"role": "parent", "birth_date": "1990-01-01",
    ...        "profile": {"t": 674.0, "inc": 3000.0, "inc_mo": 12.0, "st_employed": 1.0, "edu": 3.0}}
    >>> kid = {"role": "child", "birth_date": "2020-06-01",
    ...        "profile": {"t": 670.0, "a_ecec": 1.0}}
    >>> v = family_vector([mum, kid], {"postcode": "33100", "municipality": "837"})
    >>> len(v), v["single_parent"], v["n_children"], v["youngest_child_age"], v["income_per_cu"]
    (24, 1.0, 1.0, 5.0, 2.31)
    >>> list(v) == list(FEATURE_NAMES)
    True
    """
    ref = max((int(m.get("profile", {}).get("t", 0)) for m in members), default=0)
    parents = [m for m in members if m.get("role") == "parent"]
    children = [
        m for m in members
        if m.get("role") == "child" and 0 <= _age_months(m["birth_date"], ref) < 18 * 12
    ]
    profiles = [m.get("profile") or {} for m in members]
    pprof = [m.get("profile") or {} for m in parents]

    def any_(key: str, profs=profiles) -> float:
        return 1.0 if any(p.get(key) for p in profs) else 0.0

    def total(*keys: str, profs=profiles) -> float:
        return float(sum(p.get(k, 0.0) for p in profs for k in keys))

    def share(pred) -> float:
        return sum(1 for p in pprof if pred(p)) / len(pprof) if pprof else 0.0

    # OECD-modified consumption units over the members counted (parents + children).
    adults = len(parents) + sum(
        1 for m in members if m.get("role") == "child" and m not in children
    )
    cu = 1.0 + 0.5 * max(adults - 1, 0)
    for c in children:
        cu += 0.5 if _age_months(c["birth_date"], ref) >= 14 * 12 else 0.3
    if adults == 0:
        cu += 0.5  # a child-only family still needs an adult's unit
    income = total("inc") / 1000.0

    ages = [_age_months(c["birth_date"], ref) // 12 for c in children]
    muni = (residence or {}).get("municipality")
    area_rate = MUNICIPALITY_UNEMPLOYMENT.get(
        muni, sum(MUNICIPALITY_UNEMPLOYMENT.values()) / len(MUNICIPALITY_UNEMPLOYMENT)
    )
    vec = {
        "income_per_cu": income / cu,
        "social_assistance": any_("a_basic_social_assistance"),
        "health_allowance_members": float(
            sum(1 for p in profiles if p.get("a_disability_allowance") or p.get("a_sickness_allowance"))
        ),
        "mental_health_contacts": total("v_mental_health", "c_psychiatric"),
        "substance_abuse_contacts": total("v_substance_abuse", "a_substance_abuse_services"),
        "specialist_care_days": total("cd"),
        "parent_education": max((p.get("edu", 0.0) for p in pprof), default=0.0),
        "school_support": max(((c.get("profile") or {}).get("sup", 0.0) for c in children), default=0.0),
        "ecec_children": total("a_ecec", profs=[c.get("profile") or {} for c in children]),
        "parents_employed_share": share(lambda p: p.get("st_employed")),
        "parents_unemployed_share": share(lambda p: p.get("st_unemployed")),
        "unemployment_benefit": any_("a_unemployment_benefit", profs=pprof),
        "parents_outside_work_share": share(
            lambda p: p.get("st_outside_labour_force") or p.get("st_parental_leave")
            or p.get("a_child_home_care_allowance")
        ),
        "single_parent": 1.0 if len(parents) == 1 else 0.0,
        "n_children": float(len(children)),
        "youngest_child_age": float(min(ages)) if ages else 0.0,
        "family_services": total("a_family_work", "a_home_service", "a_family_counselling"),
        "multi_professional_support": any_("a_multi_professional_support"),
        "housing_allowance": any_("a_housing_allowance"),
        "area_unemployment_rate": 100.0 * area_rate,
        "cw_notifications": total("cwn"),
        "cw_client": any_("a_cw_client"),
        "cw_placement": any_("a_cw_placement"),
        "income_gap_share": (
            sum(1.0 - p.get("inc_mo", 0.0) / INCOME_MONTHS for p in pprof) / len(pprof) if pprof else 1.0
        ),
    }
    return {name: round(float(vec[name]), 2) for name in FEATURE_NAMES}


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
        lines.append(f"| {i} | `{f.name}` | {f.domain} | {f.sources} | {f.definition} | {f.weight:g} |")
    return "\n".join(lines)
