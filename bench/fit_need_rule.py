"""Fit the frozen need-score weights (models/features.py) and cut points
(models/service_need.py), once.

    OPENBLAS_NUM_THREADS=1 python bench/fit_need_rule.py [--families 20000] [--seed 101]

Seed 101 is used for nothing else (evaluation uses other seeds). Steps: generate the
synthetic registers, reduce them to the final family vectors (the state the stream ends
with), fit ridge least squares (alpha 1) of the planted need level on the base features
(raw units; by default with the sign of each weight fixed by its meaning, see
``SIGNS``), and put the cut points at the quantiles of the fitted family scores that
give the reference shares of need levels. Prints the constants to paste: NEED_WEIGHTS
and NEED_BASE into models/features.py, DEFAULT_CUTS into models/service_need.py, plus
the fit's quality.

    python bench/fit_need_rule.py --outcome-cuts

fits nothing: on the same run it scores every family on the last day with the frozen
outcome (models/impact.py, outcome_score: the need score without the service
features, over the last six months) and prints OUTCOME_CUTS, the quantiles of those
scores at the reference shares.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

#: +1: a deprivation (weight ≥ 0); -1: a resource (weight ≤ 0); absent: structural, free.
SIGNS = {
    "income_per_cu": -1,
    "social_assistance": 1,
    "social_assistance_episodes": 1,
    "primary_care_visits": 1,
    "parent_mental_health_visits": 1,
    "child_mental_health_visits": 1,
    "specialist_care_episodes": 1,
    "health_allowance": 1,
    "parent_education": -1,
    "school_support": 1,
    "parents_employed_share": -1,
    "parents_unemployed_share": 1,
    "parents_outside_work_share": 1,
    "single_parent": 1,
    "family_work_episodes": 1,
    "home_service_episodes": 1,
    "family_counselling_episodes": 1,
    "multi_professional_support": 1,
    "housing_allowance": 1,
    "area_unemployment_rate": 1,
    "moves": 1,
    "cw_notifications": 1,
    "cw_client": 1,
    "cw_placement": 1,
    "substance_abuse_contacts": 1,
    "income_gap_share": 1,
}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--families", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=101)
    ap.add_argument("--alpha", type=float, default=1.0)
    ap.add_argument(
        "--free-signs",
        action="store_true",
        help="plain ridge; default: least squares with the documented sign of each weight",
    )
    ap.add_argument(
        "--outcome-cuts",
        action="store_true",
        help="no fit: the impact outcome's cut points from the frozen weights",
    )
    args = ap.parse_args(argv)

    from scipy.stats import spearmanr
    from sklearn.linear_model import Ridge
    from sklearn.metrics import cohen_kappa_score

    from models.features import BASE_FEATURES, state_vector
    from models.service_need import REFERENCE_SHARES
    from tilannekuva.evaluate import final_states
    from tilannekuva.synthetic import synthesize

    synth = synthesize(args.families, args.seed)
    truth = {r["family"]: r["need_level"] for r in synth.truth}
    persons: dict = {}
    states, wm = final_states((e for e in synth.events() if isinstance(e, dict)), persons)
    fams = sorted(f for f in states if f in truth)
    V = [state_vector(states[f]) for f in fams]
    X = np.asarray([[v[f] for f in BASE_FEATURES] for v in V])
    y = np.asarray([truth[f] for f in fams], dtype=float)
    ref = np.round(X.mean(0), 4)
    if args.outcome_cuts:
        import datetime as dt

        from models.impact import outcome_score

        on = dt.date.fromisoformat(wm).toordinal()
        outcome = np.asarray([outcome_score(states[f], persons, on) for f in fams])
        cuts = np.round(np.quantile(outcome, np.cumsum(REFERENCE_SHARES)[:9]), 3)
        print(f"# outcome scores of synthesize({args.families}, seed={args.seed}): {len(fams)}")
        print(f"OUTCOME_CUTS: tuple[float, ...] = {tuple(float(c) for c in cuts)}")
        return {"outcome_cuts": cuts.tolist()}
    if args.free_signs:
        model = Ridge(alpha=args.alpha).fit(X, y)
        w = np.round(model.coef_, 4)
        base = float(np.round(model.intercept_ + w @ ref, 4))
    else:
        # Signs fixed by meaning, so that every weight reads the right way round:
        # more deprivation never lowers the score, more resources never raise it.
        from scipy.optimize import lsq_linear

        lo = np.asarray([0.0 if SIGNS.get(f, 0) > 0 else -np.inf for f in BASE_FEATURES])
        hi = np.asarray([0.0 if SIGNS.get(f, 0) < 0 else np.inf for f in BASE_FEATURES])
        Xc = X - ref
        fit = lsq_linear(
            np.column_stack([Xc, np.ones(len(X))]),
            y,
            bounds=(np.append(lo, -np.inf), np.append(hi, np.inf)),
        )
        w = np.round(fit.x[:-1], 4)
        base = float(np.round(fit.x[-1], 4))
    score = base + (X - ref) @ w
    cuts = np.round(np.quantile(score, np.cumsum(REFERENCE_SHARES)[:9]), 3)
    groups = 1 + np.searchsorted(cuts, score, side="right")
    print(
        f"# fitted on synthesize({args.families}, seed={args.seed}): {len(fams)} families, "
        f"family-level Spearman {spearmanr(score, y)[0]:.3f}, "
        f"quadratic kappa {cohen_kappa_score(y.astype(int), groups, weights='quadratic'):.3f}"
    )
    print("NEED_WEIGHTS: dict[str, tuple[float, float]] = {")
    for f, wf, rf in zip(BASE_FEATURES, w, ref, strict=True):
        print(f'    "{f}": ({wf:+.4f}, {rf:.4f}),')
    print("}")
    print(f"NEED_BASE: float = {base}")
    print(f"DEFAULT_CUTS: tuple[float, ...] = {tuple(float(c) for c in cuts)}")
    return {
        "weights": dict(zip(BASE_FEATURES, w.tolist(), strict=True)),
        "base": base,
        "cuts": cuts.tolist(),
    }


if __name__ == "__main__":
    main()
