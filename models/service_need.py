"""Ten ordered service-need groups from family-type profiles: an explainable rule.

The rule works on a type's *profile*: its centroid in original feature units (see
:mod:`models.features`). It has two documented steps:

1. **Need score** (0 … 10). Each need indicator is turned into a deprivation value
   ``d`` in [0, 1] by a fixed transform (a share is itself; a rate is divided by a
   "clearly high" reference and capped at 1; income is the shortfall below a reference),
   and the score is ``10 · Σ w·d / Σ w`` with the weights of :data:`NEED_WEIGHTS`.
   Heavy, specialised services (multi-professional support, placement, child welfare
   client) weigh most; universal-service signals (housing allowance) least.
2. **Groups.** ``group = 1 + #{cuts ≤ score}`` with nine increasing cut points. The
   rule is monotone: a higher need score never gives a lower group. Cut points are
   either the documented defaults (:data:`DEFAULT_CUTS`) or *calibrated once* to a
   reference distribution of need levels (:meth:`ServiceNeedRule.calibrated`), e.g. a
   national survey of service need; they are then frozen into the model snapshot.

Group 1 is the least need (universal services), group 4 and up need at least
social-network support, groups 9–10 multi-professional sustaining support.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

__all__ = [
    "DEFAULT_CUTS",
    "NEED_WEIGHTS",
    "ServiceNeedRule",
    "group_shares",
    "share_at_least",
]

#: feature -> (weight, transform, reference). transform: "share" d = clip(v, 0, 1);
#: "rate" d = min(v / reference, 1); "shortfall" d = clip(1 - v / reference, 0, 1);
#: "below" d = clip((reference - v) / reference, 0, 1).
NEED_WEIGHTS: dict[str, tuple[float, str, float]] = {
    "income_per_cu": (1.0, "shortfall", 2.5),  # k EUR gross / consumption unit / month
    "social_assistance": (1.5, "share", 1.0),
    "health_allowance_members": (0.5, "rate", 1.0),
    "mental_health_contacts": (1.0, "rate", 6.0),
    "substance_abuse_contacts": (1.0, "rate", 3.0),
    "specialist_care_days": (0.5, "rate", 14.0),
    "parent_education": (0.5, "below", 2.0),  # basic or unknown education
    "school_support": (1.0, "rate", 3.0),
    "parents_unemployed_share": (1.0, "share", 1.0),
    "income_gap_share": (0.5, "share", 1.0),
    "single_parent": (0.5, "share", 1.0),
    "housing_allowance": (0.25, "share", 1.0),
    "family_services": (1.5, "rate", 1.0),
    "cw_notifications": (1.0, "rate", 2.0),
    "cw_client": (2.0, "share", 1.0),
    "cw_placement": (2.5, "share", 1.0),
    "multi_professional_support": (2.5, "share", 1.0),
}

#: Default cut points on the 0..10 need score between groups 1|2, 2|3, ..., 9|10.
DEFAULT_CUTS: tuple[float, ...] = (0.4, 0.8, 1.2, 1.7, 2.3, 3.0, 3.8, 4.7, 5.7)


def _deprivation(value: float, transform: str, ref: float) -> float:
    if transform == "share":
        return min(max(value, 0.0), 1.0)
    if transform == "rate":
        return min(max(value / ref, 0.0), 1.0)
    if transform in ("shortfall", "below"):
        return min(max(1.0 - value / ref, 0.0), 1.0)
    raise ValueError(f"unknown transform {transform!r}")


class ServiceNeedRule:
    """Explainable rule from a type profile to a service-need group 1 … 10.

    Parameters
    ----------
    weights
        feature -> (weight, transform, reference); defaults to :data:`NEED_WEIGHTS`.
    cuts
        Nine non-decreasing cut points on the 0 … 10 need score.

    Examples
    --------
    >>> rule = ServiceNeedRule()
    >>> calm = {"income_per_cu": 3.0, "parent_education": 4.0}
    >>> hard = {"income_per_cu": 0.8, "social_assistance": 1.0, "cw_client": 1.0,
    ...         "cw_placement": 1.0, "multi_professional_support": 1.0, "family_services": 1.0,
    ...         "parents_unemployed_share": 1.0, "cw_notifications": 3.0}
    >>> rule.need_score(calm), rule.group(calm)
    (0.0, 1)
    >>> rule.group(hard)
    10
    >>> rule.explain(hard)[0]
    ('cw_placement', 1.0, 1.33)
    """

    def __init__(
        self,
        weights: Mapping[str, tuple[float, str, float]] | None = None,
        cuts: Sequence[float] = DEFAULT_CUTS,
    ):
        self.weights = dict(NEED_WEIGHTS if weights is None else weights)
        cuts = [float(c) for c in cuts]
        if len(cuts) != 9 or any(b < a for a, b in zip(cuts, cuts[1:], strict=False)):
            raise ValueError("cuts must be nine non-decreasing numbers")
        self.cuts = cuts
        self._total = sum(w for w, _, _ in self.weights.values())

    def contributions(self, profile: Mapping[str, float]) -> dict[str, float]:
        """Points each need indicator adds to the score (they sum to the score)."""
        return {
            f: 10.0 * w * _deprivation(float(profile.get(f, 0.0)), t, ref) / self._total
            for f, (w, t, ref) in self.weights.items()
        }

    def need_score(self, profile: Mapping[str, float]) -> float:
        """Need score 0 … 10 of a profile (in original feature units)."""
        return round(sum(self.contributions(profile).values()), 6)

    def group_of_score(self, score: float) -> int:
        """``1 + #{cuts ≤ score}``: monotone non-decreasing in the score."""
        return 1 + int(np.searchsorted(np.asarray(self.cuts), score, side="right"))

    def group(self, profile: Mapping[str, float], previous: int | None = None, margin: float = 0.0) -> int:
        """Group of a profile; with ``previous`` and ``margin > 0`` a group is kept while the
        score stays within ``margin`` of that group's score interval (hysteresis)."""
        score = self.need_score(profile)
        if previous is not None and margin > 0 and 1 <= previous <= 10:
            lo = self.cuts[previous - 2] if previous > 1 else -np.inf
            hi = self.cuts[previous - 1] if previous < 10 else np.inf
            if lo - margin <= score < hi + margin:
                return previous
        return self.group_of_score(score)

    def explain(self, profile: Mapping[str, float]) -> list[tuple[str, float, float]]:
        """``(feature, deprivation, points)``, largest contributions first, zeros left out."""
        out = []
        for f, (w, t, ref) in self.weights.items():
            d = _deprivation(float(profile.get(f, 0.0)), t, ref)
            if d > 0:
                out.append((f, round(d, 2), round(10.0 * w * d / self._total, 2)))
        return sorted(out, key=lambda r: (-r[2], r[0]))

    @classmethod
    def calibrated(
        cls,
        scores: Iterable[float],
        sizes: Iterable[float],
        shares: Sequence[float],
        weights: Mapping[str, tuple[float, str, float]] | None = None,
    ) -> ServiceNeedRule:
        """Cut points such that types ranked by score and weighted by ``sizes`` (families
        per type) fill the ten groups with the reference ``shares`` as closely as whole
        types allow. Done once, deliberately; the cuts are then frozen.

        Examples
        --------
        >>> r = ServiceNeedRule.calibrated(range(10), [1] * 10, [0.1] * 10)
        >>> [r.group_of_score(s) for s in range(10)]
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
        """
        s = np.asarray(list(scores), dtype=float)
        n = np.asarray(list(sizes), dtype=float)
        if len(shares) != 10:
            raise ValueError("ten shares")
        order = np.argsort(s, kind="stable")
        s, n = s[order], n[order]
        cum = np.cumsum(n) / n.sum()
        targets = np.cumsum(np.asarray(shares, dtype=float) / sum(shares))[:9]
        cuts = []
        for t in targets:
            # first type whose cumulative share (including itself) passes the target
            # starts the next group; cut halfway between it and the previous score.
            i = int(np.argmin(np.abs(cum - t)))  # last type of the lower group
            i = min(i, len(s) - 1)
            nxt = s[i + 1] if i + 1 < len(s) else s[i] + 1.0
            cuts.append(float((s[i] + nxt) / 2.0))
        cuts = list(np.maximum.accumulate(cuts))
        return cls(weights=weights, cuts=cuts)


def group_shares(groups: Iterable[int]) -> dict[int, float]:
    """Share of families per group 1 … 10.

    Examples
    --------
    >>> group_shares([1, 1, 4, 10])[1]
    0.5
    """
    g = np.asarray(list(groups), dtype=int)
    n = max(len(g), 1)
    return {k: float((g == k).sum()) / n for k in range(1, 11)}


def share_at_least(groups: Iterable[int], level: int) -> float:
    """Share of families in groups ≥ ``level`` (4: social-network support or more;
    9: multi-professional support).

    Examples
    --------
    >>> share_at_least([1, 3, 4, 9, 10], 4), share_at_least([1, 3, 4, 9, 10], 9)
    (0.6, 0.4)
    """
    g = np.asarray(list(groups), dtype=int)
    return float((g >= level).sum()) / max(len(g), 1)
