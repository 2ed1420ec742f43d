"""``tilannekuva evaluate``: family types and service-need groups against the planted truth.

    tilannekuva evaluate --families 20000 --seed 7 [--json] [--snapshot-days 30]

Generates the synthetic registers (no corruption), streams the events in file order
through the pure stream steps (:class:`models.picture.Pipeline` with
:func:`models.profile.state_profile`), and while streaming

* feeds the vector of every counted family that changed to the one learner in weekly
  micro-batches of stream time: the worker's learner step (:class:`models.learning.Learner`
  over :class:`models.family_types.FamilyTypes`) without its wall-clock schedule,
* every ``--snapshot-days`` (30) of stream time, counted back from the end, asks that
  step for a snapshot and re-assigns *all* counted families with it
  (:class:`models.family_types.TypeAssigner`, as every worker does on a new snapshot).

At the end it reports, over the families counted in the picture (resident in the six
municipalities, with children): ``ari`` (types vs planted archetypes), ``ari_batch``
(scikit-learn KMeans, 100 clusters, on the final vectors in the snapshot's metric, same
run), ``kappa`` (quadratic-weighted, groups vs planted need levels), group shares vs
planted shares (``shares_max_diff_pp``), ``churn`` (share of families whose type changed
between the snapshot 30 days before the end and the final one although none of their
own events arrived in between) and timings. The truth is read only for this report.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy: one BLAS thread

import numpy as np

from models import family, person
from models.family_types import TypeAssigner, family_group
from models.features import state_vector
from models.learning import Learner, LearnerBatch
from models.picture import contribution, day
from models.profile import state_profile
from models.service_need import REFERENCE_SHARES
from tilannekuva.replay import LEARN_EVERY_DAYS, TouchedPipeline

__all__ = ["Streamed", "add_arguments", "evaluate", "final_states", "run", "score", "stream"]


def final_states(
    events: Iterable[dict], persons: dict[str, dict] | None = None
) -> tuple[dict[str, dict], str]:
    """Family states (as the stream ends up with) of the counted families, and ``W``;
    ``persons``, if given, receives the person states.

    The picture is a function of the event set, so this reduces each person's events
    once instead of streaming them (used by ``bench/fit_need_rule.py``).
    """
    persons = {} if persons is None else persons
    fams: dict[str, dict] = {}
    wm = ""
    for e in events:
        wm = max(wm, e["occurred_at"])
        if e["type"] == "family.residence_changed":
            state = fams.setdefault(e["data"]["family"], family.new_state())
            family.apply(state, {"kind": "residence", "event": e})
        else:
            person.add(persons.setdefault(e["person"], person.new_state()), e)
    for p, st in persons.items():
        prof = state_profile(st)
        for fam in person.families_from(st, 0):
            msg = {"kind": "member", "person": p, "since": 0, "tail": person.tail(st, fam, 0)}
            msg |= {"last": st["last"], "profile": prof}
            family.apply(fams.setdefault(fam, family.new_state()), msg)
    return {f: st for f, st in fams.items() if contribution(st, wm) is not None}, wm


@dataclass
class Streamed:
    """What streaming the synthetic registers left behind, before any scoring.

    ``truth``: planted rows by family (read only by :func:`score`). ``vectors``: the
    latest vector of every family counted at the end; ``types``: their types at the last
    snapshot; ``states``: final family states; ``assigner``: the last snapshot's.
    ``before``: the types at the snapshot ``snapshot_days`` before the end and the number
    of learning batches by then; ``last_touch``: the last batch that touched a family.
    """

    families: int
    seed: int
    n_types: int
    model_seed: int
    calibrate: bool
    truth: dict[str, dict]
    events: int
    snapshots: int
    vectors: dict[str, dict]
    types: dict[str, int]
    states: dict[str, dict]
    counted: set[str]
    assigner: TypeAssigner | None
    before: tuple[dict[str, int], int] | None
    last_touch: dict[str, int]
    vectors_learnt: int
    timing: dict[str, float] = field(default_factory=dict)
    started: float = 0.0


def evaluate(
    families: int,
    seed: int,
    snapshot_days: int = 30,
    n_types: int = 100,
    model_seed: int = 42,
    calibrate: bool = True,
    progress: bool = False,
) -> dict:
    """Run the evaluation; returns the report (see module doc)."""
    return score(stream(families, seed, snapshot_days, n_types, model_seed, calibrate, progress))


def stream(
    families: int,
    seed: int,
    snapshot_days: int = 30,
    n_types: int = 100,
    model_seed: int = 42,
    calibrate: bool = True,
    progress: bool = False,
) -> Streamed:
    """Generate the registers and stream them, learning and snapshotting as the worker
    does (the learner's steps, :class:`models.learning.Learner`) at this evaluation's own
    event-time schedule."""
    from tilannekuva.synthetic import synthesize

    t_start = time.perf_counter()
    synth = synthesize(families, seed)
    truth = {row["family"]: row for row in synth.truth}
    lines = synth.lines
    del synth
    t_gen = time.perf_counter() - t_start
    if progress:
        print(f"generated {len(lines)} events in {t_gen:.0f} s", file=sys.stderr)

    t0 = time.perf_counter()
    pipe = TouchedPipeline(profile=state_profile)
    # Snapshots only when asked for: at end - k * snapshot_days of stream time.
    learner = Learner(
        n_types=n_types,
        calibrate_shares=REFERENCE_SHARES if calibrate else None,
        snapshot_days=None,
        seed=model_seed,
    )
    state = learner.start(None)
    vectors: dict[str, dict] = {}
    types: dict[str, int] = {}
    last_touch: dict[str, int] = {}  # family -> index of the learning batch that last touched it
    snapshots = 0
    learn_time = assign_time = 0.0
    assigner: TypeAssigner | None = None
    at_minus: tuple[dict[str, int], int] | None = None  # types at end - snapshot_days, batch no.
    batch_no = 0
    n_events = 0
    loads = json.loads

    def learn() -> None:
        nonlocal learn_time, state
        ts = time.perf_counter()
        batch = LearnerBatch()
        for fam in sorted(pipe.touched):
            last_touch[fam] = batch_no
            if fam in pipe.contributions:
                vec = state_vector(pipe.families[fam])
                vectors[fam] = vec
                batch.vectors.append((fam, vec))
            else:
                vectors.pop(fam, None)
                batch.vectors.append((fam, None))  # no longer counted: forgotten
        state, _ = learner.step(state, batch, pipe.watermark, time.time(), live=live)
        pipe.touched.clear()
        learn_time += time.perf_counter() - ts

    def snapshot(final: bool = False) -> None:
        """A snapshot, and every counted family re-assigned with it; the final one
        seeds the model if a tiny run ended before its warm-up buffer was full."""
        nonlocal assigner, snapshots, assign_time, state
        if not vectors or not (final or state.model.initialised):
            return
        ts = time.perf_counter()
        batch = LearnerBatch(snapshot=True)
        for fam in list(vectors):  # aged out by W alone (the stream's sweep does the same)
            if fam not in pipe.contributions:
                vectors.pop(fam)
                batch.vectors.append((fam, None))
        state, snap = learner.step(state, batch, pipe.watermark, time.time(), live=live)
        if snap is None:
            return
        assigner = TypeAssigner.from_snapshot(snap)
        fams = sorted(vectors)
        for f, t in zip(
            fams, assigner.predict_many([vectors[f] for f in fams]).tolist(), strict=True
        ):
            types[f] = t
        snapshots += 1
        assign_time += time.perf_counter() - ts

    # Stream time is the watermark (latest occurred_at); snapshots fall on
    # end - k * snapshot_days, so one is exactly snapshot_days before the end.
    end_day = 0
    for line in lines:
        i = line.find('"occurred_at":"')
        end_day = max(end_day, day(line[i + 15 : i + 25]))
    next_learn = None
    next_snap = None
    live: str | None = None  # the earliest recorded_at day: the baseline counts from it
    chunk: list[dict] = []
    for k in range(len(lines) + 1):
        if k < len(lines):
            ev = loads(lines[k])
            lines[k] = None  # free memory as we go
            if not isinstance(ev, dict):
                continue
            ev.pop("schema", None)
            n_events += 1
            rec = str(ev.get("recorded_at") or "")[:10]
            if rec and (live is None or rec < live):
                live = rec
            # micro-batches of one stream day: the due-family sweep runs once per batch
            if not chunk or ev["occurred_at"] <= pipe.watermark or len(chunk) < 64:
                chunk.append(ev)
                continue
        if not chunk:
            break
        pipe.process_many(chunk)
        chunk = [ev] if k < len(lines) else []
        w = day(pipe.watermark)
        if next_learn is None:
            next_learn = w + LEARN_EVERY_DAYS
            back = (end_day - w) // snapshot_days
            next_snap = end_day - back * snapshot_days
            if next_snap <= w:
                next_snap += snapshot_days
        if w >= next_learn:
            learn()
            batch_no += 1
            next_learn = w + LEARN_EVERY_DAYS
        if w >= next_snap:
            learn()
            batch_no += 1
            snapshot()
            if next_snap == end_day - snapshot_days:
                at_minus = (dict(types), batch_no)
            next_snap += snapshot_days
            if progress:
                print(
                    f"{dt_iso(w)}: {n_events} events, {len(vectors)} families, "
                    f"{time.perf_counter() - t0:.0f} s",
                    file=sys.stderr,
                )
    learn()
    batch_no += 1
    snapshot(final=True)
    return Streamed(
        families=families,
        seed=seed,
        n_types=n_types,
        model_seed=model_seed,
        calibrate=calibrate,
        truth=truth,
        events=n_events,
        snapshots=snapshots,
        vectors=vectors,
        types=types,
        states=pipe.families,
        counted=set(pipe.contributions),
        assigner=assigner,
        before=at_minus,
        last_touch=last_touch,
        vectors_learnt=state.model.n_seen,
        timing={
            "generate_s": t_gen,
            "stream_s": time.perf_counter() - t0,
            "learn_s": learn_time,
            "assign_s": assign_time,
        },
        started=t_start,
    )


def score(run: Streamed, truth: dict[str, dict] | None = None) -> dict:
    """The report of a streamed run against the planted ``truth`` (default: the run's
    own; a test may pass a deliberately wrong one)."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score, cohen_kappa_score

    truth = run.truth if truth is None else truth
    vectors, types, assigner = run.vectors, run.types, run.assigner
    fams = sorted(f for f in vectors if f in truth and f in run.counted)  # counted at the end
    final_types = np.asarray([types[f] for f in fams])
    ts = time.perf_counter()
    groups = np.asarray([family_group(run.states[f], assigner) for f in fams])
    group_us = 1e6 * (time.perf_counter() - ts) / max(len(fams), 1)
    arche = np.asarray([truth[f]["archetype"] for f in fams])
    levels = np.asarray([truth[f]["need_level"] for f in fams])
    X = assigner.to_matrix([vectors[f] for f in fams])
    Xs = (X - assigner.means) * assigner.scale
    tk = time.perf_counter()
    batch = KMeans(
        n_clusters=min(run.n_types, len(fams)), n_init=1, random_state=run.model_seed
    ).fit_predict(Xs)
    t_kmeans = time.perf_counter() - tk
    shares = np.bincount(groups, minlength=11)[1:] / len(fams)
    planted = np.bincount(levels, minlength=11)[1:] / len(fams)
    churned = 0
    if run.before is not None:
        before, b_no = run.before
        churned = sum(
            1
            for f in fams
            if f in before and before[f] != types[f] and run.last_touch.get(f, -1) < b_no
        )
    ari = float(adjusted_rand_score(arche, final_types))
    ari_batch = float(adjusted_rand_score(arche, batch))
    t = run.timing
    return {
        "families": run.families,
        "seed": run.seed,
        "cuts": "calibrated to REFERENCE_SHARES, frozen at the baseline"
        if run.calibrate
        else "fixed DEFAULT_CUTS",
        "events": run.events,
        "counted_families": len(fams),
        "n_types": int(len(np.unique(final_types))),
        "snapshots": run.snapshots,
        "ari": round(ari, 4),
        "ari_batch": round(ari_batch, 4),
        "ari_ratio": round(ari / ari_batch, 3) if ari_batch > 0 else None,
        "kappa": round(float(cohen_kappa_score(levels, groups, weights="quadratic")), 4),
        "group_shares": [round(float(x), 4) for x in shares],
        "planted_shares": [round(float(x), 4) for x in planted],
        "shares_max_diff_pp": round(100 * float(np.abs(shares - planted).max()), 2),
        "share_ge4": round(float(shares[3:].sum()), 4),
        "planted_share_ge4": round(float(planted[3:].sum()), 4),
        "share_9_10": round(float(shares[8:].sum()), 4),
        "planted_share_9_10": round(float(planted[8:].sum()), 4),
        "churn": round(churned / max(len(fams), 1), 5),
        "churn_families": churned,
        "timing": {
            "generate_s": round(t["generate_s"], 1),
            "stream_s": round(t["stream_s"], 1),
            "learn_s": round(t["learn_s"], 1),
            "learn_us_per_vector": round(1e6 * t["learn_s"] / max(run.vectors_learnt, 1), 1),
            "vectors_learnt": run.vectors_learnt,
            "assign_s": round(t["assign_s"], 2),
            "family_group_us": round(group_us, 1),
            "kmeans_batch_s": round(t_kmeans, 1),
            "total_s": round(time.perf_counter() - run.started, 1),
        },
    }


def dt_iso(d: int) -> str:
    import datetime as dt

    return dt.date.fromordinal(d).isoformat()


def format_report(r: dict) -> str:
    ok = lambda c: "ok" if c else "NOT MET"  # noqa: E731
    rows = [
        ("group cut points", r["cuts"], ""),
        ("families generated / counted", f"{r['families']} / {r['counted_families']}", ""),
        ("events streamed", f"{r['events']}", ""),
        ("types in use / snapshots", f"{r['n_types']} / {r['snapshots']}", ""),
        ("ARI types vs archetypes (ari)", f"{r['ari']:.4f}", ""),
        (
            "ARI sklearn KMeans (ari_batch)",
            f"{r['ari_batch']:.4f}",
            ok(r["ari_ratio"] is not None and r["ari_ratio"] >= 0.9)
            + f" (ratio {r['ari_ratio']}, ≥ 0.9)",
        ),
        ("kappa groups vs need level", f"{r['kappa']:.4f}", ok(r["kappa"] >= 0.8) + " (≥ 0.8)"),
        (
            "group shares max diff (pp)",
            f"{r['shares_max_diff_pp']:.2f}",
            ok(r["shares_max_diff_pp"] <= 2) + " (≤ 2)",
        ),
        ("churn (last 30 days)", f"{100 * r['churn']:.2f} %", ok(r["churn"] <= 0.01) + " (≤ 1 %)"),
    ]
    out = [f"{a:34s} {b:>18s}  {c}" for a, b, c in rows]
    out.append("")
    out.append("group   " + " ".join(f"{g:>6d}" for g in range(1, 11)))
    out.append("ours %  " + " ".join(f"{100 * x:6.1f}" for x in r["group_shares"]))
    out.append("truth % " + " ".join(f"{100 * x:6.1f}" for x in r["planted_shares"]))
    t = r["timing"]
    out.append("")
    out.append(
        f"time: generate {t['generate_s']} s, stream {t['stream_s']} s (learning {t['learn_s']} s, "
        f"{t['learn_us_per_vector']} µs/vector over {t['vectors_learnt']} vectors; assignment "
        f"{t['assign_s']} s), family_group {t['family_group_us']} µs/family, total {t['total_s']} s"
    )
    return "\n".join(out)


def add_arguments(parser) -> None:
    parser.add_argument("--families", type=int, default=5000, help="families to generate")
    parser.add_argument("--seed", type=int, default=1, help="generator seed")
    parser.add_argument(
        "--snapshot-days", type=int, default=30, help="stream days between model snapshots"
    )
    parser.add_argument(
        "--fixed-cuts",
        action="store_true",
        help="groups by the rule's fixed cut points instead of re-cutting the "
        "types to the reference shares at every snapshot",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")


def run(args, settings=None) -> int:
    report = evaluate(
        args.families,
        args.seed,
        snapshot_days=args.snapshot_days,
        calibrate=not args.fixed_cuts,
        progress=not args.quiet and not args.json,
    )
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0
