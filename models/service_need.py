"""Ten ordered service-need groups from family-type profiles: an explainable rule.

The rule works on a *profile*: a family's feature vector or a type's centroid, both in
original feature units (see :mod:`models.features`). Two documented steps:

1. **Need score** (in need-level units, about 1 … 10): a frozen weighted sum

   ``score = BASE + Σ_j w_j · (x_j − REF_j)``

   over the features of :data:`models.features.NEED_WEIGHTS` (``BASE`` is
   :data:`models.features.NEED_BASE`). ``REF`` is the average family of the
   fitting run, so each term is the points a feature adds (or takes away) compared with
   an average family, and ``BASE`` is that family's score. The weights were fitted
   **once, offline** (least squares of the planted need level on the final family
   vectors of ``synthesize(20000, seed=101)``, a seed used for nothing else, with the
   sign of every weight fixed by its meaning: a deprivation never lowers the score, a
   resource never raises it; four features got weight 0, i.e. they add nothing beyond
   the others; script
   ``bench/fit_need_rule.py``) and are frozen as constants in :mod:`models.features`,
   beside the feature they define: nothing is fitted at evaluation or stream time. The
   score is linear, so a type's score (its centroid's) is the mean of its families'
   scores; :func:`models.features.need_index` puts the same score into the family vector
   (feature ``need_index``) so that types are homogeneous in need.
2. **Groups.** ``group = 1 + #{cuts ≤ score}`` with nine increasing cut points
   (:data:`DEFAULT_CUTS`, frozen in the same fitting run at the quantiles of the family
   scores that give the reference distribution of need levels 30/17/15/8/6/5/5/4/5/5 %).
   The rule is monotone: a higher need score never gives a lower group.

Group 1 is the least need (universal services), group 4 and up need at least
social-network support, groups 9–10 multi-professional sustaining support.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from models.features import FEATURES, NEED_BASE, NEED_WEIGHTS

__all__ = [
    "DEFAULT_CUTS",
    "REFERENCE_SHARES",
    "ServiceNeedRule",
    "boundary_splits",
    "group_shares",
    "share_at_least",
]

#: Reference distribution of need levels 1..10 (the cut points reproduce it on the
#: fitting run): 38 % at level ≥ 4, 10 % at 9–10.
REFERENCE_SHARES: tuple[float, ...] = (0.30, 0.17, 0.15, 0.08, 0.06, 0.05, 0.05, 0.04, 0.05, 0.05)

# --- frozen constants, written by bench/fit_need_rule.py (seed 101, 20 000 families) ---
# (its weights and reference family: models.features.NEED_WEIGHTS, NEED_BASE)
#: Cut points on the need score between groups 1|2, 2|3, ..., 9|10.
DEFAULT_CUTS: tuple[float, ...] = (2.205, 2.683, 3.263, 3.741, 4.273, 4.954, 5.97, 7.114, 9.033)
# --- end of frozen constants ---


class ServiceNeedRule:
    """Explainable rule from a profile to a need score and a service-need group 1 … 10.

    Parameters
    ----------
    weights
        feature -> (weight, reference value); defaults to
        :data:`models.features.NEED_WEIGHTS`.
    base
        Score of the reference profile; defaults to :data:`models.features.NEED_BASE`.
    cuts
        Nine non-decreasing cut points on the need score.

    Examples
    --------
    >>> rule = ServiceNeedRule({"cw_client": (6.0, 0.0), "income_per_cu": (-1.0, 2.0)},
    ...                        base=2.0, cuts=range(2, 11))
    >>> calm = {"income_per_cu": 3.0}
    >>> hard = {"income_per_cu": 0.5, "cw_client": 1.0}
    >>> rule.need_score(calm), rule.group(calm)
    (1.0, 1)
    >>> rule.need_score(hard), rule.group(hard)
    (9.5, 9)
    >>> rule.explain(hard)
    [('cw_client', 1.0, 6.0), ('income_per_cu', 0.5, 1.5)]
    """

    def __init__(
        self,
        weights: Mapping[str, tuple[float, float]] | None = None,
        base: float | None = None,
        cuts: Sequence[float] | None = None,
    ):
        self.weights = {
            f: (float(w), float(r))
            for f, (w, r) in (NEED_WEIGHTS if weights is None else weights).items()
        }
        self.base = float(NEED_BASE if base is None else base)
        cuts = [float(c) for c in (DEFAULT_CUTS if cuts is None else cuts)]
        if len(cuts) != 9 or any(b < a for a, b in zip(cuts, cuts[1:], strict=False)):
            raise ValueError("cuts must be nine non-decreasing numbers")
        self.cuts = cuts
        self._names = list(self.weights)
        self._w = np.asarray([w for w, _ in self.weights.values()])
        self._offset = self.base - float(sum(w * r for w, r in self.weights.values()))

    def contributions(self, profile: Mapping[str, float]) -> dict[str, float]:
        """Points each feature adds to the reference family's score (they sum to
        ``score − base``)."""
        return {f: w * (float(profile.get(f, 0.0)) - r) for f, (w, r) in self.weights.items()}

    def need_score(self, profile: Mapping[str, float]) -> float:
        """Need score of a profile (in original feature units)."""
        s = self._offset
        for f, (w, _) in self.weights.items():
            s += w * float(profile.get(f, 0.0))
        return round(s, 6)

    def need_scores(self, X: np.ndarray, features: Sequence[str]) -> np.ndarray:
        """Need scores of the rows of a matrix whose columns are ``features``."""
        w, offset = self.linear(features)
        # row by row, not a matrix product: a family's score must not depend on the batch
        # it is in (TypeAssigner.assign_many computes the same sum against split thresholds)
        return offset + (np.asarray(X, dtype=float) * w).sum(1)

    def linear(self, features: Sequence[str]) -> tuple[np.ndarray, float]:
        """The score as ``offset + x · w`` over ``features`` (for a frozen snapshot)."""
        pos = {f: i for i, f in enumerate(features)}
        w = np.zeros(len(features))
        for f, (wf, _) in self.weights.items():
            if f in pos:
                w[pos[f]] = wf
        return w, float(self._offset)

    def group_of_score(self, score: float) -> int:
        """``1 + #{cuts ≤ score}``: monotone non-decreasing in the score."""
        return 1 + int(np.searchsorted(np.asarray(self.cuts), score, side="right"))

    def group(
        self, profile: Mapping[str, float], previous: int | None = None, margin: float = 0.0
    ) -> int:
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
        """``(feature, value, points)`` of the features that move the score away from the
        reference family's, largest effect first (points rounded to 0.01)."""
        out = []
        for f, pts in self.contributions(profile).items():
            if round(pts, 2):
                out.append((f, float(profile.get(f, 0.0)), round(pts, 2)))
        return sorted(out, key=lambda r: (-abs(r[2]), r[0]))

    def explain_domains(self, profile: Mapping[str, float]) -> dict[str, float]:
        """Points per life domain (see :data:`models.features.FEATURES`)."""
        domain = {f.name: f.domain for f in FEATURES}
        out: dict[str, float] = {}
        for f, pts in self.contributions(profile).items():
            out[domain.get(f, "other")] = out.get(domain.get(f, "other"), 0.0) + pts
        return {k: round(v, 2) for k, v in out.items()}

    @classmethod
    def calibrated(
        cls,
        scores: Iterable[float],
        sizes: Iterable[float],
        shares: Sequence[float] = REFERENCE_SHARES,
        weights: Mapping[str, tuple[float, float]] | None = None,
        base: float | None = None,
        previous: Sequence[int | None] | None = None,
        slack: float = 0.0025,
    ) -> ServiceNeedRule:
        """Cut points such that profiles ranked by score and weighted by ``sizes`` fill
        the ten groups with the reference ``shares`` as closely as whole profiles allow:
        the largest difference between a group's share and its reference share is as
        small as possible (a dynamic programme over the ranked profiles; ties go to the
        smaller total difference). Used by every snapshot of a model with
        ``calibrate_shares``. (:data:`DEFAULT_CUTS` were frozen earlier with the simpler
        rule: each cut at the profile whose cumulative share is nearest the target.)

        With ``previous`` (each profile's group in the last snapshot, None if new) the
        cuts are also stable: among all cuts whose every group is within ``slack`` of
        that smallest largest difference, the ones that move the fewest families to
        another group win. Groups stay contiguous in the score, so the rule stays
        ``1 + #{cuts ≤ score}``; the stability costs at most ``slack`` in share.

        Examples
        --------
        >>> r = ServiceNeedRule.calibrated(range(10), [1] * 10, [0.1] * 10)
        >>> [r.group_of_score(s) for s in range(10)]
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]

        Profile 3 was in group 3: with 1.5 points of slack in share it stays there, with
        none it moves up to meet the shares exactly.

        >>> prev = [1, 2, 3, 3, 5, 6, 7, 8, 9, 10]
        >>> r = ServiceNeedRule.calibrated(range(10), [1] * 10, [0.1] * 10, previous=prev, slack=0.15)
        >>> [r.group_of_score(s) for s in range(10)]
        [1, 2, 3, 3, 5, 6, 7, 8, 9, 10]
        >>> r = ServiceNeedRule.calibrated(range(10), [1] * 10, [0.1] * 10, previous=prev, slack=0.0)
        >>> [r.group_of_score(s) for s in range(10)]
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
        """
        s = np.asarray(list(scores), dtype=float)
        n = np.asarray(list(sizes), dtype=float)
        if len(shares) != 10:
            raise ValueError("ten shares")
        order = np.argsort(s, kind="stable")
        s, n = s[order], n[order]
        target = np.asarray(shares, dtype=float) / sum(shares)
        cum = np.concatenate([[0.0], np.cumsum(n) / n.sum()])
        ends = _minimax_ends(cum, target)
        if previous is not None:
            prev = [list(previous)[i] for i in order]
            best = max(
                abs(cum[e] - cum[b] - t)
                for b, e, t in zip([0, *ends[:-1]], ends, target, strict=True)
            )
            ends = _stable_ends(cum, target, best + slack, n / n.sum(), prev)
        cuts = []
        for e in ends[:-1]:  # group g holds ranked profiles [ends[g-1], ends[g])
            lo = s[e - 1] if e > 0 else s[0] - 1.0
            hi = s[e] if e < len(s) else lo + 1.0
            cuts.append(float((lo + hi) / 2.0))
        cuts = list(np.maximum.accumulate(cuts))
        return cls(weights=weights, base=base, cuts=cuts)

    @classmethod
    def quantile_cuts(
        cls,
        scores: Iterable[float],
        shares: Sequence[float] = REFERENCE_SHARES,
        weights: Mapping[str, tuple[float, float]] | None = None,
        base: float | None = None,
    ) -> ServiceNeedRule:
        """Cut points that put families ranked by their own need ``scores`` into the ten
        groups with the reference ``shares`` (as near as ties allow): the calibration of
        a grouping by the families' own scores, where every family is its own profile.

        >>> r = ServiceNeedRule.quantile_cuts(range(100))
        >>> [sum(1 for s in range(100) if r.group_of_score(s) == g) for g in range(1, 11)]
        [30, 17, 15, 8, 6, 5, 5, 4, 5, 5]
        """
        o = np.sort(np.asarray(list(scores), dtype=float))
        if len(shares) != 10:
            raise ValueError("ten shares")
        if len(o) == 0:
            raise ValueError("no scores to calibrate on")
        cum = np.cumsum(shares)[:-1] / float(sum(shares))
        cuts = [_cut(o, int(round(c * len(o))), down=True) for c in cum]
        return cls(weights=weights, base=base, cuts=list(np.maximum.accumulate(cuts)))


def _minimax_ends(cum: np.ndarray, target: np.ndarray) -> list[int]:
    """End positions of the ten groups in the ranked profiles (group g is
    ``[ends[g-1], ends[g])``, possibly empty) minimising (max |share − target|, Σ |…|),
    where ``cum[i]`` is the weight share of the first ``i`` profiles."""
    m, k = len(cum) - 1, len(target)
    inf = (np.inf, np.inf)
    best = [[inf] * (m + 1) for _ in range(k + 1)]
    back = [[0] * (m + 1) for _ in range(k + 1)]
    best[0][0] = (0.0, 0.0)
    for g in range(1, k + 1):
        t = target[g - 1]
        for j in range(m + 1):
            if g == k and j != m:
                continue
            top = inf
            for i in range(j + 1):
                prev = best[g - 1][i]
                if prev[0] == np.inf:
                    continue
                err = abs(cum[j] - cum[i] - t)
                cand = (max(prev[0], err), prev[1] + err)
                if cand < top:
                    top, back[g][j] = cand, i
            best[g][j] = top
    ends, j = [], m
    for g in range(k, 0, -1):
        ends.append(j)
        j = back[g][j]
    return ends[::-1]


def _stable_ends(
    cum: np.ndarray,
    target: np.ndarray,
    bound: float,
    weight: np.ndarray,
    previous: Sequence[int | None],
) -> list[int]:
    """End positions of the ten groups (as :func:`_minimax_ends`) with every
    ``|share − target| ≤ bound`` that move the least weight of profiles away from their
    ``previous`` group (None: no previous group, free); ties go to the smaller total
    difference. The minimax solution is feasible for ``bound`` ≥ its largest difference."""
    m, k = len(cum) - 1, len(target)
    tol = 1e-12
    best = np.full((k + 1, m + 1, 2), np.inf)
    back = np.zeros((k + 1, m + 1), dtype=int)
    best[0, 0] = (0.0, 0.0)
    idx = np.arange(m + 1)
    for g in range(1, k + 1):
        # moved[i] = weight of profiles 0..i-1 whose previous group is neither None nor g
        moved = np.concatenate(
            [
                [0.0],
                np.cumsum(
                    [
                        w if p is not None and p != g else 0.0
                        for w, p in zip(weight, previous, strict=True)
                    ]
                ),
            ]
        )
        for j in range(m + 1):
            if g == k and j != m:
                continue
            i = idx[: j + 1]
            err = np.abs(cum[j] - cum[i] - target[g - 1])
            cost = best[g - 1, i, 0] + (moved[j] - moved[i])
            total = best[g - 1, i, 1] + err
            cost = np.where(err <= bound + tol, cost, np.inf)
            if not np.isfinite(cost).any():
                continue
            key = np.lexsort((total, np.round(cost, 12)))[0]
            if np.isfinite(cost[key]):
                best[g, j] = (cost[key], total[key])
                back[g, j] = i[key]
    if not np.isfinite(best[k, m, 0]):
        raise ValueError("no cuts within the bound")
    ends, j = [], m
    for g in range(k, 0, -1):
        ends.append(j)
        j = back[g, j]
    return ends[::-1]


def _cut(o: np.ndarray, c: int, down: bool) -> float:
    """A threshold with as near ``c`` of the sorted scores ``o`` below it as ties allow,
    midway between two distinct scores: no family's own score sits on it, so the learner
    and a worker put every family on the same side even if their scores differ in the
    last bit. At least one family moves: one below it if ``down``, else one at or above.

    >>> _cut(np.array([1.0, 2.0, 2.0, 3.0]), 2, True), _cut(np.array([1.0, 2.0]), 2, True)
    (1.5, 3.0)
    >>> _cut(np.array([2.0, 2.0, 2.0]), 1, True), _cut(np.array([2.0, 2.0, 2.0]), 2, False)
    (3.0, 1.0)
    """
    cuts = np.concatenate(([0], np.nonzero(o[1:] > o[:-1])[0] + 1, [len(o)]))
    cuts = cuts[cuts > 0] if down else cuts[cuts < len(o)]
    best = int(cuts[np.argmin(np.abs(cuts - c))])
    if best == 0:
        return float(o[0]) - 1.0
    if best == len(o):
        return float(o[-1]) + 1.0
    return (float(o[best - 1]) + float(o[best])) / 2


def boundary_splits(
    types,
    own,
    groups: Mapping[int, int],
    type_scores: Mapping[int, float],
    shares: Sequence[float] = REFERENCE_SHARES,
    tol: float = 0.01,
) -> list[list]:
    """Split the type at a group boundary by its families' own need scores, where whole
    types leave the share below the boundary more than ``tol`` from its target.

    A type goes wholly into one group, so one large type at a boundary can put a group
    several points off its share. For each boundary (groups ≤ k against the cumulative
    target), if the share is too low, the least-need type of group k+1 sends its
    families with the lowest own scores down to group k; if too high, the highest-need
    type of group k sends its families with the highest own scores up. At most one split
    per type. ``types``/``own``: type id and own need score of each sampled family.

    Returns ``[[type_id, "down", t], ...]`` (own score < t: one group down) and
    ``[[type_id, "up", t], ...]`` (own score ≥ t: one group up).

    Examples
    --------
    >>> types = [0] * 50 + [1] * 50     # two types of 50 families, target 30 / 70
    >>> own = list(range(100))
    >>> splits = boundary_splits(types, own, {0: 1, 1: 2}, {0: 1.0, 1: 2.0},
    ...                          shares=(0.3, 0.7), tol=0.01)
    >>> splits
    [[0, 'up', 29.5]]
    >>> sum(1 for t, o in zip(types, own) if t == 0 and o < 30) / 100
    0.3
    """
    types = np.asarray(types, dtype=np.int64)
    own = np.asarray(own, dtype=float)
    n = len(types)
    if n == 0:
        return []
    g = np.asarray([groups[int(t)] for t in types], dtype=np.int64)
    target = np.cumsum(shares)[:-1]
    out: list[list] = []
    split: set[int] = set()
    for k in range(1, len(shares)):
        have = float((g <= k).mean())
        gap = target[k - 1] - have
        if abs(gap) <= tol:
            continue
        src = k + 1 if gap > 0 else k  # the group that gives families across the boundary
        present = {int(t) for t in np.unique(types[g == src])} - split
        if not present:
            continue
        pick = min if gap > 0 else max
        t = pick(present, key=lambda t: (type_scores[t], t))
        rows = np.nonzero((types == t) & (g == src))[0]
        m = min(len(rows), int(round(abs(gap) * n)))
        if m == 0:
            continue
        thr = _cut(np.sort(own[rows]), m if gap > 0 else len(rows) - m, down=gap > 0)
        if gap > 0:  # about the m lowest go down
            g[rows[own[rows] < thr]] = k
            out.append([t, "down", thr])
        else:  # about the m highest go up
            g[rows[own[rows] >= thr]] = k + 1
            out.append([t, "up", thr])
        split.add(t)
    return out


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
