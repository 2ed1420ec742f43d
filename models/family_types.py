"""Family types: online clustering with stable ids, split into a learner and assigners.

* :class:`FamilyTypes` is the **learner** (one instance, one worker). It follows river's
  ``Clusterer`` API (``learn_one``/``predict_one`` on dicts). It standardises online with
  river's :class:`~river.preprocessing.StandardScaler`, seeds ``n_types`` centroids with
  k-means++ and Lloyd iterations on a warm-up buffer, then moves the nearest centroid
  towards each new vector with a *decaying* rate ``max(1 / n_c, min_lr)`` (MacQueen /
  Sculley mini-batch k-means). Centroids are kept in original feature units; the
  running scaler only defines the metric. :meth:`FamilyTypes.snapshot` freezes the
  model into a JSON-serialisable dict (publish it on the compacted model topic); a
  restarted learner resumes with :meth:`FamilyTypes.from_snapshot`.
* :class:`TypeAssigner` is the **assigner** (every worker): built from a snapshot, it
  assigns by vectorised nearest centroid with numpy, deterministically for that
  snapshot (independent of batch composition).

Type ids are stable: between snapshots centroids only drift (the rate decays) and ids
never renumber. :meth:`FamilyTypes.rebase` re-clusters deliberately, gives the new types
*fresh* ids (an id never changes meaning) and publishes a versioned old → new mapping
found by optimal matching of old and new centroids.
"""

from __future__ import annotations

import math
import operator
import random
from collections.abc import Hashable, Mapping, Sequence
from itertools import chain
from typing import TypeVar

import numpy as np
from river import base, preprocessing

from models.features import FEATURE_NAMES, FEATURES, state_vector
from models.service_need import ServiceNeedRule, boundary_splits
from models.types import Calibration, FamilyTypesSnapshot, Lineage

__all__ = [
    "FamilyTypes",
    "TypeAssigner",
    "SNAPSHOT_SCHEMA",
    "family_assignment",
    "family_assignments",
    "family_group",
    "family_type",
]

SNAPSHOT_SCHEMA = "family-types/1"
K = TypeVar("K", bound=Hashable)
_DEFAULT_WEIGHTS = tuple(f.weight for f in FEATURES)
_DEFAULT_RULE = ServiceNeedRule()


def _kmeans_pp(
    X: np.ndarray, k: int, rng: np.random.Generator, trials: int | None = None
) -> np.ndarray:
    """Greedy k-means++ seeding (indices into X)."""
    n = len(X)
    trials = trials or 2 + int(math.log(k))
    first = int(rng.integers(n))
    idx = [first]
    d = ((X - X[first]) ** 2).sum(1)
    for _ in range(1, k):
        tot = d.sum()
        if tot <= 0:  # fewer distinct points than k: repeat points
            idx.append(int(rng.integers(n)))
            continue
        cand = np.searchsorted(np.cumsum(d), rng.random(trials) * tot)
        cand = np.minimum(cand, n - 1)
        dc = ((X[None, :, :] - X[cand][:, None, :]) ** 2).sum(2)
        dn = np.minimum(d[None, :], dc)
        best = int(np.argmin(dn.sum(1)))
        idx.append(int(cand[best]))
        d = dn[best]
    return np.asarray(idx)


def _nearest(Xs: np.ndarray, Cs: np.ndarray, c2: np.ndarray | None = None) -> np.ndarray:
    if c2 is None:
        c2 = (Cs**2).sum(1)
    return np.argmin(c2[None, :] - 2.0 * Xs @ Cs.T, axis=1)


def _lloyd(Xs: np.ndarray, Cs: np.ndarray, n_iter: int) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd iterations in the scaled space; empty clusters keep their centre."""
    Cs = Cs.copy()
    k = len(Cs)
    for _ in range(n_iter):
        lab = _nearest(Xs, Cs)
        counts = np.bincount(lab, minlength=k)
        sums = np.zeros_like(Cs)
        np.add.at(sums, lab, Xs)
        nz = counts > 0
        new = Cs.copy()
        new[nz] = sums[nz] / counts[nz, None]
        if np.allclose(new, Cs):
            Cs = new
            break
        Cs = new
    lab = _nearest(Xs, Cs)
    return Cs, np.bincount(lab, minlength=k)


class FamilyTypes(base.Clusterer):
    """Online k-means learner of family types with stable ids and frozen snapshots.

    Parameters
    ----------
    n_types
        Number of family types.
    features
        Feature order (defaults to :data:`models.features.FEATURE_NAMES`).
    weights
        Per-feature multipliers of the standardised values in the metric.
    warmup
        Vectors buffered before the centroids are seeded (k-means++ and Lloyd).
    min_lr
        Floor of the per-centroid learning rate ``1 / n_c`` (lets centroids follow slow
        drift; smaller = more stable ids).
    reservoir
        Size of the sample of recent vectors kept for a deliberate :meth:`rebase`.
    group_margin
        Hysteresis of a type's service-need group on the need score between snapshots.
    rule
        :class:`~models.service_need.ServiceNeedRule` giving each type its group.
    calibrate_shares
        Optional reference distribution of the ten groups (e.g.
        :data:`models.service_need.REFERENCE_SHARES`). If given, a snapshot cuts the
        rule to the *baseline*: types ranked by need score, weighted by their share of
        the families in the rebase sample (latest vector per sampled family), fill the
        groups with these shares as closely as whole types allow. Snapshots re-cut like
        this until one is taken with ``snapshot(freeze=True)``: from then on the cuts
        and the boundary splits stay as that snapshot had them (:attr:`calibration`),
        so that a real change in need shows as a change in the groups' shares instead
        of being calibrated away; only a deliberate :meth:`rebase` cuts again (a new
        baseline). None keeps the rule's fixed cuts. ``group_margin`` applies to fixed
        and frozen cuts.
    share_slack
        With ``calibrate_shares``: how far (as a share) a group may stay from its best
        reachable share so that fewer families change group between snapshots.
    split_tol
        With ``calibrate_shares``: where whole types still leave the share below a group
        boundary more than this far from its target, the type at the boundary is split
        by its families' own need scores (:func:`~models.service_need.boundary_splits`);
        None never splits.
    grouping
        Whose need score puts a family in a service-need group: ``"type"`` (its type's,
        with the boundary splits) or ``"own"`` (its own score against the cuts, which
        ``calibrate_shares`` then sets at the quantiles of the sampled families' own
        scores; a type's group is then the group of its centroid, a description). With
        ``"type"`` a large type whose centroid wanders across a frozen cut moves all its
        families at once, a jump of several points in the groups' shares with no change
        in need (docs/alerts.md, "Groups that stand still").
    seed
        Random seed.

    Examples
    --------
    >>> rng = random.Random(0)
    >>> X = [{"a": rng.gauss(c, 0.1), "b": rng.gauss(-c, 0.1)} for c in (0, 5) * 100]
    >>> model = FamilyTypes(n_types=2, features=("a", "b"), weights=(1, 1), warmup=50,
    ...                     rule=None, seed=1)
    >>> for x in X:
    ...     model.learn_one(x)
    >>> model.predict_one({"a": 0, "b": 0}) != model.predict_one({"a": 5, "b": -5})
    True
    >>> snap = model.snapshot()
    >>> snap["version"], snap["type_ids"], snap["features"]
    (1, [0, 1], ['a', 'b'])
    >>> assigner = TypeAssigner.from_snapshot(snap)
    >>> assigner.predict_one({"a": 5, "b": -5}) == model.predict_one({"a": 5, "b": -5})
    True
    """

    def __init__(
        self,
        n_types: int = 100,
        features: Sequence[str] = FEATURE_NAMES,
        weights: Sequence[float] | None = _DEFAULT_WEIGHTS,
        warmup: int = 5000,
        min_lr: float = 1e-3,
        reservoir: int = 20000,
        group_margin: float = 0.1,
        rule: ServiceNeedRule | None = _DEFAULT_RULE,
        calibrate_shares: Sequence[float] | None = None,
        share_slack: float = 0.0025,
        split_tol: float | None = 0.01,
        grouping: str = "own",
        seed: int | None = 42,
    ):
        self.n_types = n_types
        self.features = tuple(features)
        self.weights = tuple(float(w) for w in (weights or [1.0] * len(self.features)))
        self.warmup = warmup
        self.min_lr = min_lr
        self.reservoir = reservoir
        self.group_margin = group_margin
        self.rule = rule
        self.calibrate_shares = tuple(calibrate_shares) if calibrate_shares is not None else None
        self.share_slack = share_slack
        self.split_tol = split_tol
        if grouping not in ("type", "own"):
            raise ValueError(f"grouping must be 'type' or 'own', got {grouping!r}")
        self.grouping = grouping
        self.seed = seed
        if len(self.weights) != len(self.features):
            raise ValueError("one weight per feature")

        self.scaler = preprocessing.StandardScaler()
        self.centroids: np.ndarray | None = None  # (k, d), original units
        self.counts = np.zeros(n_types, dtype=float)
        self.type_ids: list[int] = list(range(n_types))
        self.groups: dict[int, int] = {}
        self.version = 0
        self.generation = 0
        self.n_seen = 0
        self.lineage: Lineage | None = None
        # The frozen baseline: {"version", "cuts", "splits"}, None while cuts still move.
        self.calibration: Calibration | None = None
        self._next_id = n_types
        self._buffer: list[np.ndarray] = []
        self._sample: list[np.ndarray] = []
        self._sample_keys: dict = {}  # key -> slot
        self._slot_keys: dict = {}  # slot -> key
        self._seen_for_sample = 0
        self._rng = random.Random(seed)
        self._np_rng = np.random.default_rng(seed)
        self._get = operator.itemgetter(*self.features)

    # -- helpers ------------------------------------------------------------------
    def _vec(self, x: dict) -> np.ndarray:
        try:
            return np.asarray(self._get(x), dtype=float).reshape(len(self.features))
        except KeyError:
            return np.asarray([x.get(f, 0.0) for f in self.features], dtype=float)

    def _metric(self) -> tuple[np.ndarray, np.ndarray]:
        """Current (means, scale) with scale = weight / std."""
        means = np.asarray([self.scaler.means.get(f, 0.0) for f in self.features])
        stds = np.sqrt(np.asarray([self.scaler.vars.get(f, 0.0) for f in self.features]))
        stds = np.where(stds > 1e-9, stds, 1.0)
        return means, np.asarray(self.weights) / stds

    def _remember(self, v: np.ndarray, key=None) -> None:
        if self.reservoir <= 0:
            return
        if key is not None and key in self._sample_keys:
            self._sample[self._sample_keys[key]] = v
            return
        self._seen_for_sample += 1
        if len(self._sample) < self.reservoir:
            slot = len(self._sample)
            self._sample.append(v)
        else:
            slot = self._rng.randrange(self._seen_for_sample)
            if slot >= self.reservoir:
                return
            self._sample[slot] = v
            gone = self._slot_keys.pop(slot, None)
            if gone is not None:
                del self._sample_keys[gone]
        if key is not None:
            self._sample_keys[key] = slot
            self._slot_keys[slot] = key

    def remember_many(self, X, keys) -> None:
        """Put families' current vectors in the rebase and calibration sample without
        learning from them: after a restart the model resumes from its snapshot, and the
        workers refill the sample from the families' states."""
        for x, key in zip(X, keys, strict=True):
            self._remember(self._vec(x) if isinstance(x, dict) else np.array(x, dtype=float), key)

    @property
    def sample_size(self) -> int:
        """Recent vectors held for a :meth:`rebase` (a restart empties the sample)."""
        return len(self._sample)

    def forget(self, key) -> None:
        """Drop ``key``'s vector from the rebase and calibration sample: the family is no
        longer counted (moved away, children grown up), so it must not weigh on the cut
        points of the groups the picture shows."""
        slot = self._sample_keys.pop(key, None)
        if slot is None:
            return
        del self._slot_keys[slot]
        last = len(self._sample) - 1
        if slot != last:
            self._sample[slot] = self._sample[last]
            moved = self._slot_keys.pop(last, None)
            if moved is not None:
                self._sample_keys[moved] = slot
                self._slot_keys[slot] = moved
        self._sample.pop()

    @property
    def initialised(self) -> bool:
        return self.centroids is not None

    def _initialise(self) -> None:
        X = np.vstack(self._buffer)
        means, scale = self._metric()
        Xs = (X - means) * scale
        k = self.n_types
        seeds = _kmeans_pp(Xs, k, self._np_rng)
        Cs, counts = _lloyd(Xs, Xs[seeds], n_iter=50)
        self.centroids = Cs / scale + means
        self.counts = counts.astype(float)
        self._buffer = []

    def initialise_now(self) -> bool:
        """Seed the centroids from the warm-up buffer before it is full (small data);
        returns whether the model is initialised."""
        if self.centroids is None and self._buffer:
            self._initialise()
        return self.centroids is not None

    # -- river API ------------------------------------------------------------------
    def learn_one(self, x: dict, key=None) -> None:
        """Learn from one family vector. ``key`` (e.g. the family pseudonym) makes the
        rebase sample hold each sampled family's *latest* vector."""
        v = self._vec(x)
        self.scaler.learn_one(dict(zip(self.features, v.tolist(), strict=True)))
        self.n_seen += 1
        self._remember(v, key)
        if self.centroids is None:
            self._buffer.append(v)
            if len(self._buffer) >= max(self.warmup, self.n_types):
                self._initialise()
            return
        means, scale = self._metric()
        d = (((self.centroids - v) * scale) ** 2).sum(1)
        j = int(np.argmin(d))
        self.counts[j] += 1.0
        lr = max(1.0 / self.counts[j], self.min_lr)
        self.centroids[j] += lr * (v - self.centroids[j])

    def learn_many(self, X, keys=None) -> None:
        """Learn from a micro-batch of family vectors (dicts or an (n, d) array).

        The scaler is updated with river's ``learn_many`` for the whole batch, then each
        row moves its nearest centroid in order (same rule as :meth:`learn_one`, with the
        metric of the batch). Much cheaper per vector than :meth:`learn_one`.
        """
        import pandas as pd

        if isinstance(X, np.ndarray):
            M = np.asarray(X, dtype=float).reshape(-1, len(self.features))
        else:
            M = np.asarray([self._vec(x) for x in X], dtype=float).reshape(-1, len(self.features))
        if len(M) == 0:
            return
        keys = list(keys) if keys is not None else [None] * len(M)
        if self.centroids is None:  # warm-up: one at a time until seeded
            i = 0
            while self.centroids is None and i < len(M):
                self.learn_one(dict(zip(self.features, M[i].tolist(), strict=True)), key=keys[i])
                i += 1
            M, keys = M[i:], keys[i:]
            if len(M) == 0:
                return
        self.scaler.learn_many(pd.DataFrame(M, columns=list(self.features)))
        self.n_seen += len(M)
        means, scale = self._metric()
        C, counts, min_lr = self.centroids, self.counts, self.min_lr
        assert C is not None and counts is not None  # initialised above
        Cs = C * scale
        for i in range(len(M)):
            v = M[i]
            self._remember(v.copy(), keys[i])  # a view would keep all of M alive in the sample
            j = int(np.argmin(((Cs - v * scale) ** 2).sum(1)))
            counts[j] += 1.0
            lr = max(1.0 / counts[j], min_lr)
            C[j] += lr * (v - C[j])
            Cs[j] = C[j] * scale

    def predict_one(self, x: dict) -> int | None:  # type: ignore[override]  # None in warm-up
        """Type id of the nearest centroid under the current metric (None in warm-up)."""
        if self.centroids is None:
            return None
        means, scale = self._metric()
        d = (((self.centroids - self._vec(x)) * scale) ** 2).sum(1)
        return self.type_ids[int(np.argmin(d))]

    # -- snapshots -----------------------------------------------------------------
    def _profiles(self) -> list[dict[str, float]]:
        assert self.centroids is not None
        return [dict(zip(self.features, c.tolist(), strict=True)) for c in self.centroids]

    def snapshot(self, freeze: bool = False) -> FamilyTypesSnapshot:
        """Freeze the model: a new version, JSON-serialisable.

        Keys: ``schema``, ``version``, ``generation``, ``features``, ``weights``,
        ``means``, ``stds``, ``vars``, ``scaler_n``, ``centroids`` (original units),
        ``type_ids``, ``counts``, ``need_scores``, ``groups``, ``cuts``, ``splits``,
        ``calibration`` (``{"version"}`` of the baseline whose cuts and splits these are,
        None while they are re-cut at every snapshot), ``n_seen``, ``lineage``
        (``{"from_version", "mapping": [[old, new], ...], "cuts": {"from", "to"}}``
        after a rebase).

        ``freeze``: with ``calibrate_shares``, make this snapshot's calibration the
        baseline that later snapshots keep (no effect once frozen).
        """
        if self.centroids is None:
            raise RuntimeError("model still in warm-up: no snapshot yet")
        self.version += 1
        means, scale = self._metric()
        stds = np.asarray(self.weights) / scale
        profiles = self._profiles()
        recut = self.rule is not None and self.calibrate_shares is not None
        recut = recut and self.calibration is None
        sample = np.vstack(self._sample) if self._sample else self.centroids
        # the sample's types: only a re-cut of the type grouping reads them
        lab = (
            _nearest((sample - means) * scale, (self.centroids - means) * scale)
            if recut and self.grouping == "type"
            else None
        )
        if recut and self.grouping == "own":
            assert self.rule is not None and self.calibrate_shares is not None
            self.rule = ServiceNeedRule.quantile_cuts(
                self.rule.need_scores(sample, self.features),
                self.calibrate_shares,
                weights=self.rule.weights,
                base=self.rule.base,
            )
        elif recut:
            assert self.rule is not None and self.calibrate_shares is not None and lab is not None
            sizes = np.bincount(lab, minlength=len(self.centroids))
            type_scores = [self.rule.need_score(p) for p in profiles]
            # stability is in the cuts (least families moved within the share slack), so
            # no score hysteresis on top: it would undo the calibration
            self.rule = ServiceNeedRule.calibrated(
                type_scores,
                sizes,
                self.calibrate_shares,
                weights=self.rule.weights,
                base=self.rule.base,
                previous=[self.groups.get(t) for t in self.type_ids],
                slack=self.share_slack,
            )
        margin = 0.0 if recut else self.group_margin
        scores, groups = [], []
        for tid, prof in zip(self.type_ids, profiles, strict=True):
            if self.rule is None:
                s, g = 0.0, 1
            else:
                s = self.rule.need_score(prof)
                g = self.rule.group(prof, previous=self.groups.get(tid), margin=margin)
            self.groups[tid] = g
            scores.append(s)
            groups.append(g)
        splits: list = []
        if self.calibration is not None:
            # A baseline split is made for its type's boundary at the baseline: once the
            # type has moved to another group it no longer applies (it would send
            # families past group 1 or 10, or across the wrong boundary).
            splits = [x[:3] for x in self.calibration["splits"] if self.groups.get(x[0]) == x[3]]
        elif recut and self.split_tol is not None and self._sample and lab is not None:
            assert self.rule is not None and self.calibrate_shares is not None
            splits = boundary_splits(
                np.asarray(self.type_ids)[lab],
                self.rule.need_scores(sample, self.features),
                self.groups,
                dict(zip(self.type_ids, scores, strict=True)),
                self.calibrate_shares,
                self.split_tol,
            )
        if recut and freeze:
            assert self.rule is not None
            self.calibration = {
                "version": self.version,
                "cuts": list(self.rule.cuts),
                "splits": [[*x, self.groups[x[0]]] for x in splits],
            }
        need_w, need_offset = (
            self.rule.linear(self.features) if self.rule is not None else (None, 0.0)
        )
        n = int(min(self.scaler.counts.values(), default=0))
        return {
            "schema": SNAPSHOT_SCHEMA,
            "version": self.version,
            "generation": self.generation,
            "features": list(self.features),
            "weights": list(self.weights),
            "means": means.tolist(),
            "stds": stds.tolist(),
            "vars": [float(self.scaler.vars.get(f, 0.0)) for f in self.features],
            "scaler_n": n,
            "centroids": self.centroids.tolist(),
            "type_ids": list(self.type_ids),
            "counts": self.counts.tolist(),
            "need_scores": scores,
            "groups": groups,
            "cuts": list(self.rule.cuts) if self.rule is not None else None,
            "splits": splits,
            "grouping": self.grouping,
            "calibration": None
            if self.calibration is None
            else {
                "version": self.calibration["version"],
                "splits": self.calibration["splits"],
            },
            "need_linear": None
            if need_w is None
            else {"weights": need_w.tolist(), "offset": need_offset},
            "n_seen": self.n_seen,
            "next_id": self._next_id,
            "lineage": self.lineage,
        }

    @classmethod
    def from_snapshot(cls, snap: dict, **params) -> FamilyTypes:
        """Resume learning after a restart from the latest published snapshot.

        The rebase sample is not in the snapshot; it refills as vectors arrive.
        """
        if snap.get("schema") != SNAPSHOT_SCHEMA:
            raise ValueError(f"not a {SNAPSHOT_SCHEMA} snapshot")
        if snap.get("cuts") is not None and "rule" not in params:
            params["rule"] = ServiceNeedRule(cuts=snap["cuts"])
        params.setdefault("grouping", snap.get("grouping", "type"))
        model = cls(
            n_types=len(snap["type_ids"]),
            features=snap["features"],
            weights=snap["weights"],
            **params,
        )
        n = snap["scaler_n"]
        model.scaler = preprocessing.StandardScaler._from_state(
            counts={f: n for f in model.features},
            means=dict(zip(model.features, snap["means"], strict=True)),
            vars=dict(zip(model.features, snap["vars"], strict=True)),
        )
        model.centroids = np.asarray(snap["centroids"], dtype=float)
        model.counts = np.asarray(snap["counts"], dtype=float)
        model.type_ids = [int(t) for t in snap["type_ids"]]
        model.groups = {
            int(t): int(g) for t, g in zip(snap["type_ids"], snap["groups"], strict=True)
        }
        model.version = int(snap["version"])
        model.generation = int(snap["generation"])
        model.n_seen = int(snap["n_seen"])
        model._next_id = int(snap.get("next_id", max(model.type_ids) + 1))
        model.lineage = snap.get("lineage")
        if snap.get("calibration") and model.rule is not None:
            groups = dict(zip(snap["type_ids"], snap["groups"], strict=True))
            baseline = snap["calibration"].get("splits")
            if baseline is None:  # an older snapshot: its splits, at their types' groups
                baseline = [[*x, groups[x[0]]] for x in snap.get("splits") or ()]
            model.calibration = {
                "version": int(snap["calibration"]["version"]),
                "cuts": list(model.rule.cuts),
                "splits": [list(x) for x in baseline],
            }
        return model

    # -- deliberate re-basing ---------------------------------------------------------
    def rebase(
        self, X: Sequence[dict] | np.ndarray | None = None, n_iter: int = 100
    ) -> FamilyTypesSnapshot:
        """Re-cluster from scratch on ``X`` (default: the sample of recent vectors), give the
        new types fresh ids and return the new snapshot whose ``lineage`` holds the
        ``old → new`` mapping (a bijection, optimal matching of old and new centroids in
        the current metric; Hungarian via scipy when available, else greedy). A model
        with a frozen :attr:`calibration` is calibrated anew on the same sample and frozen
        again (a new baseline); the lineage then holds the cuts before and after.
        """
        if X is None:
            data = np.vstack(self._sample) if self._sample else np.vstack(self._buffer)
        elif isinstance(X, np.ndarray):
            data = np.asarray(X, dtype=float)
        else:
            data = np.vstack([self._vec(x) for x in X])
        means, scale = self._metric()
        Xs = (data - means) * scale
        k = self.n_types
        Cs, counts = _lloyd(Xs, Xs[_kmeans_pp(Xs, k, self._np_rng)], n_iter=n_iter)
        new_centroids = Cs / scale + means
        old_ids = list(self.type_ids)
        old_version = self.version
        if self.centroids is None:  # rebasing during warm-up simply initialises
            rows, cols = np.arange(k), np.arange(k)
        else:
            Os = (self.centroids - means) * scale
            cost = ((Os[:, None, :] - Cs[None, :, :]) ** 2).sum(2)
            rows, cols = _match(cost)
        # new type matched to old type at position p gets id next_id + p
        new_ids = [0] * k
        mapping = []
        for p, q in zip(rows.tolist(), cols.tolist(), strict=True):
            new_ids[q] = self._next_id + p
            mapping.append([old_ids[p], self._next_id + p])
        self._next_id += k
        self.centroids = new_centroids
        self.counts = counts.astype(float)
        self.type_ids = new_ids
        old_groups = self.groups
        self.groups = {}
        for p, q in zip(rows.tolist(), cols.tolist(), strict=True):  # carry hysteresis
            if old_ids[p] in old_groups:
                self.groups[new_ids[q]] = old_groups[old_ids[p]]
        self.generation += 1
        self.lineage = {"from_version": old_version, "mapping": sorted(mapping)}
        baseline = self.calibration
        if baseline is None:
            return self.snapshot()
        # Fresh ids need fresh splits: a re-base is also a new baseline of the groups,
        # and says so with the cuts before and after.
        self.calibration = None
        snap = self.snapshot(freeze=True)
        assert snap["cuts"] is not None
        self.lineage = {**self.lineage, "cuts": {"from": baseline["cuts"], "to": snap["cuts"]}}
        snap["lineage"] = self.lineage
        return snap


def _match(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-cost perfect matching (rows, cols)."""
    try:
        from scipy.optimize import linear_sum_assignment
    except ImportError:  # greedy fallback
        rows, cols, used_r, used_c = [], [], set(), set()
        for flat in np.argsort(cost, axis=None, kind="stable"):
            r, c = divmod(int(flat), cost.shape[1])
            if r not in used_r and c not in used_c:
                used_r.add(r)
                used_c.add(c)
                rows.append(r)
                cols.append(c)
        order = np.argsort(rows)
        return np.asarray(rows)[order], np.asarray(cols)[order]
    return linear_sum_assignment(cost)


class TypeAssigner:
    """Cheap, deterministic nearest-centroid assignment with a frozen snapshot.

    ``predict_many`` computes ``‖c‖² − 2 x·c`` with one matrix product per micro-batch;
    rows whose best two distances are within rounding of each other are re-decided
    with exact row-wise distances (ties: lowest position), so a family's type does not
    depend on which batch it was in.

    Parameters
    ----------
    features, means, stds, weights, centroids, type_ids, groups, version
        As in :meth:`FamilyTypes.snapshot`.
    margin
        Optional hysteresis for ``predict_many(X, previous=...)``: keep the previous type
        while its squared distance is at most ``(1 + margin)²`` times the best one.
        Off (0) by default: with hysteresis a type depends on the family's history, not
        only on its current data and the snapshot.

    Examples
    --------
    >>> snap = {"schema": SNAPSHOT_SCHEMA, "version": 3, "features": ["a", "b"],
    ...         "weights": [1, 1], "means": [0, 0], "stds": [1, 1],
    ...         "centroids": [[0, 0], [10, 0], [0, 10]], "type_ids": [7, 8, 9],
    ...         "groups": [1, 5, 10]}
    >>> a = TypeAssigner.from_snapshot(snap)
    >>> a.predict_one({"a": 9, "b": 1}), a.group_one({"a": 1, "b": 9})
    (8, 10)
    >>> a.predict_many([{"a": 0, "b": 1}, {"a": 9, "b": 0}]).tolist()
    [7, 8]
    """

    def __init__(
        self,
        features,
        means,
        stds,
        weights,
        centroids,
        type_ids,
        groups=None,
        version=0,
        margin: float = 0.0,
        splits=None,
        need_linear=None,
        own_cuts=None,
    ):
        self.features = tuple(features)
        self.version = version
        self.margin = margin
        self.means = np.asarray(means, dtype=float)
        stds = np.asarray(stds, dtype=float)
        self.scale = np.asarray(weights, dtype=float) / np.where(stds > 0, stds, 1.0)
        self.centroids = np.asarray(centroids, dtype=float)
        self.type_ids = np.asarray(type_ids, dtype=np.int64)
        self.groups = np.asarray(
            groups if groups is not None else [0] * len(type_ids), dtype=np.int64
        )
        self._cs = (self.centroids - self.means) * self.scale
        self._c2 = (self._cs**2).sum(1)
        self._c2_max = float(self._c2.max()) if len(self._c2) else 0.0
        # scaled space folded into one affine map: x·(scale²·cs) − mean·scale·cs
        self._w = (self._cs * self.scale).T.copy()  # (d, k)
        self._b = self._c2 + 2.0 * (self.means * self.scale) @ self._cs.T
        self._pos = {int(t): i for i, t in enumerate(self.type_ids)}
        if len(self.features) == 1:  # itemgetter of one key returns a scalar
            only = self.features[0]
            self._get = lambda x: (x[only],)
        else:
            self._get = operator.itemgetter(*self.features)
        # Boundary types split by the family's own need score (boundary_splits): per
        # position, own < down → one group down, own ≥ up → one group up.
        self._down = np.full(len(self.type_ids), -np.inf)
        self._up = np.full(len(self.type_ids), np.inf)
        for tid, way, thr in splits or ():
            (self._down if way == "down" else self._up)[self._pos[int(tid)]] = float(thr)
        self._split = bool(splits)
        # grouping "own": every family's group is its own need score against these cuts
        self._own_cuts = None if own_cuts is None else np.asarray(own_cuts, dtype=float)
        if self._split or self._own_cuts is not None:
            self._need_w = np.asarray(need_linear["weights"], dtype=float)
            self._need_b = float(need_linear["offset"])

    @classmethod
    def from_snapshot(cls, snap: dict, margin: float = 0.0) -> TypeAssigner:
        if snap.get("schema") != SNAPSHOT_SCHEMA:
            raise ValueError(f"not a {SNAPSHOT_SCHEMA} snapshot")
        return cls(
            snap["features"],
            snap["means"],
            snap["stds"],
            snap["weights"],
            snap["centroids"],
            snap["type_ids"],
            snap.get("groups"),
            snap.get("version", 0),
            margin,
            snap.get("splits"),
            snap.get("need_linear"),
            snap.get("cuts") if snap.get("grouping") == "own" else None,
        )

    def to_matrix(self, X) -> np.ndarray:
        """Rows of ``X`` (dicts; missing features are 0) as a float matrix."""
        if isinstance(X, np.ndarray):
            return np.asarray(X, dtype=float).reshape(-1, len(self.features))
        get, d = self._get, len(self.features)
        try:
            return np.fromiter(chain.from_iterable(map(get, X)), dtype=float).reshape(-1, d)
        except KeyError:
            return np.array(
                [[x.get(f, 0.0) for f in self.features] for x in X], dtype=float
            ).reshape(-1, len(self.features))

    def distances(self, X) -> np.ndarray:
        """Exact squared distances (n, k) in the snapshot's metric, row-wise."""
        Xs = (self.to_matrix(X) - self.means) * self.scale
        return ((Xs[:, None, :] - self._cs[None, :, :]) ** 2).sum(2)

    def _positions(self, M: np.ndarray) -> np.ndarray:
        d = self._b[None, :] - 2.0 * (M @ self._w)  # = ‖x−c‖² − ‖x‖² (scaled space)
        pos = np.argmin(d, axis=1)
        if d.shape[1] > 1:
            dmin = d[np.arange(len(d)), pos]
            xs2 = (((M - self.means) * self.scale) ** 2).sum(1)
            tol = 1e-9 * (1.0 + xs2 + self._c2_max)
            close = np.nonzero((d <= (dmin + tol)[:, None]).sum(1) > 1)[0]
            if len(close):
                exact = self.distances(M[close])
                pos[close] = np.argmin(exact, axis=1)  # first minimum: lowest position
        return pos

    def predict_many(self, X, previous=None) -> np.ndarray:
        """Type ids for a micro-batch (list of dicts or an (n, d) array).

        ``previous``: optional type ids (−1 or unknown ids = none) for hysteresis, used
        only when ``margin > 0``.
        """
        M = self.to_matrix(X)
        if len(M) == 0:
            return np.zeros(0, dtype=np.int64)
        pos = self._positions(M)
        if previous is not None and self.margin > 0:
            prev_pos = np.asarray([self._pos.get(int(p), -1) for p in previous])
            rows = np.nonzero((prev_pos >= 0) & (prev_pos != pos))[0]
            if len(rows):
                d = self.distances(M[rows])
                r = np.arange(len(rows))
                keep = d[r, prev_pos[rows]] <= (1.0 + self.margin) ** 2 * d[r, pos[rows]]
                pos[rows[keep]] = prev_pos[rows[keep]]
        return self.type_ids[pos]

    def predict_one(self, x: dict, previous: int | None = None) -> int:
        """Type id of one vector (same result as its row in :meth:`predict_many`)."""
        return int(self.predict_many([x], None if previous is None else [previous])[0])

    def group_one(self, x: dict) -> int:
        """Service-need group of one vector (its row in :meth:`assign_many`)."""
        return int(self.assign_many([x])[1][0])

    def assign_many(self, X) -> tuple[np.ndarray, np.ndarray]:
        """Type ids and service-need groups of a micro-batch: the group of the type, one
        down or up where the snapshot splits that type and the row's own need score is
        below or at/above the split; with the snapshot's grouping ``"own"`` the group of
        the row's own need score."""
        M = self.to_matrix(X)
        if len(M) == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        pos = self._positions(M)
        if self._own_cuts is None and not self._split:
            return self.type_ids[pos], self.groups[pos].copy()
        own = self._need_b + (M * self._need_w).sum(1)  # as ServiceNeedRule.need_scores
        if self._own_cuts is not None:
            return self.type_ids[pos], 1 + np.searchsorted(self._own_cuts, own, side="right")
        groups = self.groups[pos].copy()  # the type's, one down or up where it is split
        groups -= own < self._down[pos]
        groups += own >= self._up[pos]
        np.clip(groups, 1, 10, out=groups)  # a split never leaves the ten groups
        return self.type_ids[pos], groups

    def assign_keyed(self, vectors: Mapping[K, dict]) -> dict[K, tuple[int, int]]:
        """``{key: (type id, group)}`` of keyed vectors, with one :meth:`assign_many`."""
        if not vectors:
            return {}
        types, groups = self.assign_many(list(vectors.values()))
        return dict(zip(vectors, zip(types.tolist(), groups.tolist(), strict=True), strict=True))


def family_type(state: dict, assigner: TypeAssigner | None) -> int | None:
    """Type id of a family state of :mod:`models.family` (members carrying
    ``"profile"``) with the latest snapshot's assigner; None without an assigner or
    members."""
    if assigner is None:
        return None
    vec = state_vector(state)
    return None if vec is None else assigner.predict_one(vec)


def family_assignment(state: dict, assigner: TypeAssigner | None) -> tuple[int | None, int | None]:
    """``(type id, service-need group)`` of a family state (see :func:`family_type`),
    both from one row of :meth:`TypeAssigner.assign_many`; ``(None, None)`` without an
    assigner or members. Pass as ``Pipeline(assign=functools.partial(family_assignment,
    assigner=a))``: the contribution then counts ``t<type>`` and ``g<group>``.

    >>> snap = {"schema": SNAPSHOT_SCHEMA, "version": 1, "features": ["single_parent"],
    ...         "weights": [1], "means": [0], "stds": [1], "centroids": [[0], [1]],
    ...         "type_ids": [3, 4], "groups": [2, 7]}
    >>> st = {"res": [], "mem": {"p": {"m": [[738000, "parent", "1990-01-01"]],
    ...       "profile": {"t": 674.0}}}}
    >>> family_assignment(st, TypeAssigner.from_snapshot(snap)), family_assignment(st, None)
    ((4, 7), (None, None))
    """
    return family_assignments([state], assigner)[0]


def family_assignments(
    states: list[dict], assigner: TypeAssigner | None
) -> list[tuple[int | None, int | None]]:
    """:func:`family_assignment` of many family states with one
    :meth:`TypeAssigner.assign_many`, as the worker's writer assigns a batch. Pass as
    ``Pipeline(assign_many=functools.partial(family_assignments, assigner=a))``.

    >>> snap = {"schema": SNAPSHOT_SCHEMA, "version": 1, "features": ["single_parent"],
    ...         "weights": [1], "means": [0], "stds": [1], "centroids": [[0], [1]],
    ...         "type_ids": [3, 4], "groups": [2, 7]}
    >>> st = {"res": [], "mem": {"p": {"m": [[738000, "parent", "1990-01-01"]],
    ...       "profile": {"t": 674.0}}}}
    >>> family_assignments([st, {"res": [], "mem": {}}, st], TypeAssigner.from_snapshot(snap))
    [(4, 7), (None, None), (4, 7)]
    """
    if assigner is None:
        return [(None, None)] * len(states)
    vectors = {i: vec for i, state in enumerate(states) if (vec := state_vector(state)) is not None}
    got = assigner.assign_keyed(vectors)
    return [got.get(i, (None, None)) for i in range(len(states))]


def family_group(state: dict, assigner: TypeAssigner | None) -> int | None:
    """Service-need group 1 … 10 of a family state (see :func:`family_type`): the group
    of its type in the assigner's snapshot. Pass as
    ``contribution(state, W, group=family_group(state, a))``.

    Examples
    --------
    >>> snap = {"schema": SNAPSHOT_SCHEMA, "version": 1, "features": ["single_parent"],
    ...         "weights": [1], "means": [0], "stds": [1], "centroids": [[0], [1]],
    ...         "type_ids": [3, 4], "groups": [2, 7]}
    >>> st = {"res": [], "mem": {"p": {"m": [[738000, "parent", "1990-01-01"]],
    ...       "profile": {"t": 674.0}}}}
    >>> family_group(st, TypeAssigner.from_snapshot(snap)), family_group(st, None)
    (7, None)
    """
    if assigner is None:
        return None
    vec = state_vector(state)
    return None if vec is None else assigner.group_one(vec)
