"""How honest the impact estimate's standard error is: a family bootstrap (issue 16).

Reads the panels that ``tilannekuva evaluate-impact --panels FILE`` kept and, for each
service and reported horizon, sets the estimator's analytic standard error
(``models.impact.estimate``) beside two others made from the same world's panel:

* **linearised**: the variance of the estimate's influence function summed per family
  (a family counts in many strata: as a comparison family of up to ``REACH`` cohort
  months, and as an entry), the matching held fixed;
* **bootstrap**: the spread of the whole estimate, matching included, over ``--reps``
  panels drawn from the families with replacement (the cluster bootstrap, each family
  with all its months);
* **jackknife** (``--groups G``): the delete-a-group jackknife over ``G`` groups of
  families by a hash of their pseudonym (Kott 2001), matching included: what a stream
  that keeps its counts per group could compute from aggregates alone.

    python bench/impact_bootstrap.py --panels FILE [--reps 40] [--groups 20] [--json]

If the bootstrap is wider than both, what the analytic error leaves out is the
randomness of the matching itself (which strata have comparison families, and so which
entries count), not the families standing in for several cohorts
(``docs/impact.md``, "Not built yet").
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import time
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.impact import (  # noqa: E402
    ENTRY_GAP,
    HORIZONS,
    REACH,
    REPORTED,
    SERVICES,
    Alike,
    Panel,
    anticipation_of,
    cohort_cells,
    estimate,
)


def resampled(panel: Panel, rows: np.ndarray) -> Panel:
    """The panel of the families ``rows`` (repeats: separate families)."""
    n = panel.groups.shape[0]
    starts = {s: [v[i] for i in rows] for s, v in panel.starts.items() if len(v) == n}
    area = None if panel.area is None else panel.area[rows]
    return Panel(panel.groups[rows], panel.municipality[rows], starts, None, area)


def linearised_se(panel: Panel, service: str, k: int) -> float:
    """The estimate's standard error from its influence function summed per family: the
    entries' and comparison families' terms of every stratum a family is in, added
    before squaring (the strata held fixed)."""
    a = anticipation_of(service)
    alike = Alike()
    g = np.asarray(panel.groups, dtype=np.int64)
    mu_ = np.asarray(panel.municipality, dtype=np.int64)
    n_f, n_m = g.shape
    cum = panel.started(service)
    per = []
    for c in range(alike.first + a, n_m):
        b = c - 1 - a
        key, base = alike(panel, b + 1)
        g0 = g[:, b]
        base &= g0 > 0
        if not base.any():
            continue
        recent = cum[:, c] - cum[:, max(c - ENTRY_GAP, 0)]
        entry = base & (cum[:, c + 1] - cum[:, c] > 0) & (recent == 0)
        strata, at = np.unique((mu_[:, b] * 1_000_000 + key)[base], return_inverse=True)
        where = np.full(n_f, -1, np.int64)
        where[base] = at.reshape(-1)
        t = c + k
        gk = g[:, t] if 0 <= t < n_m else np.zeros_like(g0)
        seen = gk > 0
        last = min(max(t, c) + a, n_m - 1) + 1
        clean = (cum[:, last] - cum[:, max(c - ENTRY_GAP, 0)]) == 0
        clean &= cum[:, min(max(last, c + REACH + 1), n_m)] > cum[:, last]
        tr, co, y = entry & seen, base & seen & clean, (gk < g0).astype(float)
        ns = len(strata)
        nt, nc = np.bincount(where[tr], minlength=ns), np.bincount(where[co], minlength=ns)
        yt = np.bincount(where[tr], weights=y[tr], minlength=ns)
        yc = np.bincount(where[co], weights=y[co], minlength=ns)
        per.append((where, tr, co, y, nt, nc, yt, yc))
    if not per:
        return float("nan")
    n = sum(float(nt[(nt > 0) & (nc > 0)].sum()) for *_, nt, nc, _, _ in per)
    att = (
        sum(
            float((yt - nt * yc / np.maximum(nc, 1))[(nt > 0) & (nc > 0)].sum())
            for *_, nt, nc, yt, yc in per
        )
        / n
    )
    psi = np.zeros(n_f)
    for where, tr, co, y, nt, nc, _yt, yc in per:
        ok = (nt > 0) & (nc > 0)
        mu = yc / np.maximum(nc, 1)
        s = np.maximum(where, 0)
        here = ok[s] & (where >= 0)
        psi += np.where(tr & here, (y - mu[s] - att) / n, 0.0)
        psi -= np.where(co & here, nt[s] / np.maximum(nc[s], 1) * (y - mu[s]) / n, 0.0)
    return float(np.sqrt((psi**2).sum()))


def jackknife_se(panel: Panel, families: list[str], groups: int) -> dict[tuple[str, int], float]:
    """The delete-a-group jackknife's standard error of each service's estimate at each
    reported horizon: ``sqrt((G − 1) / G · Σ (τ₋g − τ̄)²)``."""
    group = np.array([zlib.crc32(f.encode()) % groups for f in families])
    drops: dict[tuple[str, int], list[float]] = {(s, k): [] for s in SERVICES for k in REPORTED}
    for g in range(groups):
        p = resampled(panel, np.flatnonzero(group != g))
        for s in SERVICES:
            cells = cohort_cells(p, s, HORIZONS)
            for k in REPORTED:
                drops[s, k].append(estimate(cells, k).effect)
    out = {}
    for key, v in drops.items():
        x = np.array([np.nan if e is None else e for e in v], float)
        out[key] = float(np.sqrt((groups - 1) / groups * np.nansum((x - np.nanmean(x)) ** 2)))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--panels", required=True, help="a file of evaluate-impact --panels")
    ap.add_argument("--reps", type=int, default=40)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--groups", type=int, default=0, help="also the delete-a-group jackknife")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with open(args.panels, "rb") as f:
        panel, families, _ = pickle.load(f)["world"]  # our own file
    jack = jackknife_se(panel, families, args.groups) if args.groups else {}
    n = panel.groups.shape[0]
    rng = np.random.default_rng(args.seed)
    boots: dict[tuple[str, int], list[float]] = {(s, k): [] for s in SERVICES for k in REPORTED}
    t0 = time.perf_counter()
    for r in range(args.reps):
        p = resampled(panel, rng.integers(0, n, n))
        for s in SERVICES:
            cells = cohort_cells(p, s, HORIZONS)
            for k in REPORTED:
                e = estimate(cells, k)
                if e.effect is not None:
                    boots[s, k].append(e.effect)
        if r == 0:
            print(f"a replicate: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    rows = []
    for s in SERVICES:
        cells = cohort_cells(panel, s, HORIZONS)
        for k in REPORTED:
            e = estimate(cells, k)
            b = np.std(boots[s, k], ddof=1) if len(boots[s, k]) > 1 else float("nan")
            rows.append(
                {
                    "service": s,
                    "months": k,
                    "estimate": e.effect,
                    "analytic": e.se,
                    "linearised": linearised_se(panel, s, k),
                    "bootstrap": float(b),
                    "jackknife": jack.get((s, k), float("nan")),
                }
            )
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(
        f"{'service':28} {'k':>3} {'analytic':>9} {'linearised':>11} {'bootstrap':>10} "
        f"{'jackknife':>10}"
    )
    for r in rows:
        print(
            f"{r['service']:28} {r['months']:>3} {r['analytic'] or float('nan'):9.4f} "
            f"{r['linearised']:11.4f} {r['bootstrap']:10.4f} {r['jackknife']:10.4f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
