"""Benchmark: family-type assignment cost vs river's KMeans, in the same run.

    python bench/bench_assign.py [--n 20000] [--events 3000] [--seed 0] [--no-quality]

Builds a 100-type model over the 29 family features on synthetic vectors (a mixture of
planted profiles with discrete and skewed features, like real family vectors), then
times per event:

* river ``cluster.KMeans(n_clusters=100)``: ``predict_one`` and ``learn_one`` (on
  standardised dicts, as the issue measured),
* ``FamilyTypes.learn_one`` (the learner),
* ``TypeAssigner.predict_one`` (one dict at a time),
* ``TypeAssigner.predict_many`` in micro-batches of 256 and 1024 dicts (dict → matrix
  conversion included).

With ``--quality`` (default) it also reports ARI of the online model vs the planted
profiles and vs scikit-learn ``KMeans`` on the same vectors, and churn between two
snapshots under continued learning.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

# One BLAS thread, as in a stream worker: on a busy 2-CPU box multi-threaded OpenBLAS
# spin-waits and makes the 1024 x 24 x 100 product ~10x slower. Set before numpy loads.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from river import cluster  # noqa: E402

from models.family_types import FamilyTypes, TypeAssigner  # noqa: E402
from models.features import FEATURE_NAMES, FEATURES  # noqa: E402

BINARY = {"single_parent"}
SHARES = {
    "social_assistance",
    "health_allowance",
    "multi_professional_support",
    "housing_allowance",
    "cw_client",
    "cw_placement",
    "parents_employed_share",
    "parents_unemployed_share",
    "parents_outside_work_share",
    "income_gap_share",
}
COUNTS = {
    "social_assistance_episodes",
    "primary_care_visits",
    "parent_mental_health_visits",
    "child_mental_health_visits",
    "specialist_care_episodes",
    "n_children",
    "family_work_episodes",
    "home_service_episodes",
    "family_counselling_episodes",
    "moves",
    "cw_notifications",
    "substance_abuse_contacts",
}


def synthetic_vectors(n: int, n_profiles: int = 40, seed: int = 0) -> tuple[list[dict], np.ndarray]:
    """``n`` family vectors from ``n_profiles`` planted profiles; returns (vectors, labels)."""
    rng = np.random.default_rng(seed)
    d = len(FEATURE_NAMES)
    probs = rng.dirichlet(np.ones(n_profiles) * 2.0)
    centers = rng.random((n_profiles, d))
    labels = rng.choice(n_profiles, size=n, p=probs)
    out = []
    for lab in labels:
        c = centers[lab]
        v = {}
        for j, f in enumerate(FEATURE_NAMES):
            if f in BINARY:
                v[f] = float(rng.random() < c[j] ** 2)
            elif f in SHARES:
                v[f] = float(rng.choice([0.0, 0.5, 1.0], p=[1 - c[j], c[j] / 2, c[j] / 2]))
            elif f in COUNTS:
                v[f] = float(rng.poisson(4 * c[j] ** 2))
            elif f == "income_per_cu":
                v[f] = round(float(rng.lognormal(np.log(0.3 + 3 * c[j]), 0.25)), 2)
            elif f == "parent_education":
                v[f] = float(min(5, max(0, round(5 * c[j] + rng.normal(0, 0.6)))))
            elif f == "school_support":
                v[f] = float(min(3, max(0, round(3 * c[j] ** 2 + rng.normal(0, 0.4)))))
            elif f == "youngest_child_age":
                v[f] = float(min(17, max(0, round(17 * c[j] + rng.normal(0, 2)))))
            elif f == "need_index":
                v[f] = round(float(1 + 9 * c[j] ** 2 + rng.normal(0, 0.5)), 2)
            elif f == "area_unemployment_rate":
                v[f] = float(rng.choice([5.11, 6.29, 7.02, 3.99, 3.45, 4.79]))
            else:
                v[f] = round(float(c[j] + rng.normal(0, 0.1)), 2)
        out.append(v)
    return out, labels


def per_event_us(fn, items, repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(items)
        best = min(best, time.perf_counter() - t0)
    return 1e6 * best / len(items)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=20000, help="vectors the model learns from")
    ap.add_argument("--events", type=int, default=3000, help="events timed per method")
    ap.add_argument(
        "--river-train", type=int, default=2000, help="vectors river KMeans learns from"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-quality", dest="quality", action="store_false")
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args(argv)

    X, labels = synthetic_vectors(args.n + args.events, seed=args.seed)
    train, test = X[: args.n], X[args.n :]
    assert len(FEATURES) == 29

    # ---- our learner + assigner -------------------------------------------------
    model = FamilyTypes(n_types=100, warmup=5000, seed=args.seed)
    t0 = time.perf_counter()
    for x in train:
        model.learn_one(x)
    learn_total = time.perf_counter() - t0
    snap = model.snapshot()
    assigner = TypeAssigner.from_snapshot(json.loads(json.dumps(snap)))

    def our_learn(items):
        m = FamilyTypes.from_snapshot(snap)
        for x in items:
            m.learn_one(x)

    def our_learn_many(items):
        m = FamilyTypes.from_snapshot(snap)
        for i in range(0, len(items), 256):
            m.learn_many(items[i : i + 256])

    def our_one(items):
        for x in items:
            assigner.predict_one(x)

    def our_many(batch):
        def run(items):
            for i in range(0, len(items), batch):
                assigner.predict_many(items[i : i + batch])

        return run

    # ---- river KMeans on standardised dicts -------------------------------------
    means, stds = np.asarray(snap["means"]), np.asarray(snap["stds"])

    def std(x):
        return {f: (x[f] - means[j]) / stds[j] for j, f in enumerate(FEATURE_NAMES)}

    rk = cluster.KMeans(n_clusters=100, halflife=0.5, seed=args.seed)
    rtrain = [std(x) for x in train[: args.river_train]]
    rtest = [std(x) for x in test]
    t0 = time.perf_counter()
    for x in rtrain:
        rk.learn_one(x)
    river_learn = 1e6 * (time.perf_counter() - t0) / len(rtrain)

    def river_one(items):
        for x in items:
            rk.predict_one(x)

    river_pred = per_event_us(river_one, rtest[: min(len(rtest), 1000)])
    res = {
        "n_types": 100,
        "n_features": len(FEATURE_NAMES),
        "river_kmeans_predict_one_us": river_pred,
        "river_kmeans_learn_one_us": river_learn,
        "familytypes_learn_one_us": per_event_us(our_learn, test[:2000]),
        "familytypes_learn_one_total_us": 1e6 * learn_total / len(train),
        "familytypes_learn_many_256_us": per_event_us(our_learn_many, test[:2000]),
        "assigner_predict_one_us": per_event_us(our_one, test, repeat=3),
        "assigner_predict_many_256_us": per_event_us(our_many(256), test, repeat=5),
        "assigner_predict_many_1024_us": per_event_us(our_many(1024), test, repeat=5),
    }
    M = assigner.to_matrix(test)
    res["assigner_predict_many_1024_matrix_us"] = per_event_us(
        lambda m: [assigner.predict_many(m[i : i + 1024]) for i in range(0, len(m), 1024)],
        M,
        repeat=5,
    )

    print(
        f"family types: 100 types x {len(FEATURE_NAMES)} features, model learnt on {args.n} vectors"
    )
    print(f"{'method':44s} {'us/event':>10s} {'vs river predict_one':>22s}")
    for key, label in [
        ("river_kmeans_predict_one_us", "river KMeans.predict_one"),
        ("river_kmeans_learn_one_us", "river KMeans.learn_one"),
        ("familytypes_learn_one_us", "FamilyTypes.learn_one (steady state)"),
        ("familytypes_learn_many_256_us", "FamilyTypes.learn_many, batches of 256"),
        ("assigner_predict_one_us", "TypeAssigner.predict_one"),
        ("assigner_predict_many_256_us", "TypeAssigner.predict_many, batches of 256"),
        ("assigner_predict_many_1024_us", "TypeAssigner.predict_many, batches of 1024"),
        ("assigner_predict_many_1024_matrix_us", "  same, rows already a matrix"),
    ]:
        print(f"{label:44s} {res[key]:10.2f} {river_pred / res[key]:21.0f}x")

    if args.quality:
        from sklearn.cluster import KMeans
        from sklearn.metrics import adjusted_rand_score

        allX = train
        ours = assigner.predict_many(allX)
        Xs = (assigner.to_matrix(allX) - assigner.means) * assigner.scale
        sk = KMeans(n_clusters=100, random_state=args.seed, n_init="auto").fit_predict(Xs)
        truth = labels[: args.n]
        res["ari_online_vs_planted"] = adjusted_rand_score(truth, ours)
        res["ari_batch_vs_planted"] = adjusted_rand_score(truth, sk)
        res["ari_online_vs_batch"] = adjusted_rand_score(sk, ours)
        # churn: continue learning on fresh vectors of the same distribution
        more, _ = synthetic_vectors(args.n, seed=args.seed + 1)
        for x in more:
            model.learn_one(x)
        assigner2 = TypeAssigner.from_snapshot(model.snapshot())
        res["churn_after_n_more"] = float((assigner2.predict_many(allX) != ours).mean())
        print(
            f"ARI online vs planted {res['ari_online_vs_planted']:.3f}, "
            f"sklearn KMeans vs planted {res['ari_batch_vs_planted']:.3f} "
            f"(ratio {res['ari_online_vs_planted'] / res['ari_batch_vs_planted']:.3f}), "
            f"online vs sklearn {res['ari_online_vs_batch']:.3f}"
        )
        print(
            f"churn after learning {args.n} more vectors of the same distribution: "
            f"{100 * res['churn_after_n_more']:.2f} %"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return res


if __name__ == "__main__":
    main()
