"""``tilannekuva evaluate-impact``: the service-impact estimates against planted effects.

Generates a world whose services have planted effects on the families' need
(``tilannekuva generate --services``, ``docs/synthetic.md``) and, for each service with
an effect, its counterfactual twin (``--counterfactual SERVICE``: the same families,
the same service starts, every effect applied but that service's). Each is streamed in
arrival order through the worker's pure steps (:class:`models.picture.Pipeline` with
the feature profile), and at each month's end every counted family's outcome group
(:data:`models.impact.OUTCOME_RULE`) and municipality go into a panel
(:class:`models.impact.PanelBuilder`).

* **Planted**: the average effect of each service on the families that started it,
  measured the way the estimate measures it: over the entries, whether the outcome
  group at ``k`` months is lower than before the start, in the world less in the
  service's twin (the same family, the same start). A service without an effect has
  none (its twin is the world).
* **Estimate**: :func:`models.impact.estimate` on the factual panel alone, with its
  95 % interval, the naive before/after beside it, and a pre-trend test (months −6 …
  −2, their effects jointly zero).

One JSON object on stdout::

    tilannekuva evaluate-impact --families 5000 --seed 3 [--json] [--jobs 2]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import pickle
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict
from pathlib import Path

import numpy as np
from scipy import stats

from models.contract import COVERED_MUNICIPALITIES, validate
from models.family import current
from models.impact import (
    COMPARISONS,
    HORIZONS,
    LAG,
    SERVICES,
    PanelBuilder,
    cohort_cells,
    estimate,
    month_of,
    outcome_score,
    service_of,
    withheld,
)
from models.picture import Pipeline
from models.profile import state_profile
from models.pseudonym import Pseudonymiser
from tilannekuva.synthetic.dynamics import SERVICE_EFFECTS

__all__ = ["REPORTED", "evaluate", "pre_trend", "stream_panel", "stream_world", "truth", "twinned"]

#: The horizons of the report (months after the start).
REPORTED = (3, 6, 12)
_KEY = b"impact-eval-key-0123456789abcdef"


def stream_panel(lines: list[str], batch: int = 500):
    """The panel of a world (module doc): ``(panel, families, entries)`` of
    :meth:`models.impact.PanelBuilder.panel`. Months are closed as ``W`` leaves them,
    from the month of the earliest ``recorded_at`` (the registers going live) on."""
    pseudo = Pseudonymiser(_KEY)
    events = [pseudo.event(validate(line)) for line in lines]
    live = min(e["recorded_at"][:10] for e in events)
    pipe = Pipeline(profile=state_profile, history=None)
    builder = PanelBuilder(month_of(live), COVERED_MUNICIPALITIES)
    closed = month_of(live) - 1
    for i in range(0, len(events), batch):
        chunk = events[i : i + batch]
        for ev in chunk:
            if (service := service_of(ev)) is not None:
                builder.start(service, ev["person"], ev["data"]["episode"], ev["occurred_at"])
        pipe.process_many(chunk)
        while closed + 1 < month_of(pipe.watermark):
            closed += 1
            builder.month_end(closed, _counted(pipe, closed))
    return builder.panel()


def _counted(pipe: Pipeline, month: int):
    """Every counted family's (family, municipality, outcome score, members) at the
    end of ``month``."""
    on = dt.date((month + 1) // 12, (month + 1) % 12 + 1, 1).toordinal() - 1
    for fam, contrib in pipe.contributions.items():
        state = pipe.families[fam]
        score = outcome_score(state, pipe.persons, on)
        if score is None:
            continue
        yield fam, contrib["municipality"], score, list(current(state))


def truth(factual, twins, horizons=REPORTED, outcome: str = "lower") -> dict[str, dict]:
    """Per service and horizon, the planted effect on the entries (module doc):
    ``{"effect", "entries"}``. ``twins``: the streamed twin of each service with an
    effect (others: none, the world is its own twin); entries are the factual panel's
    (no start of the service in the months before, groups known at ``c − 1 − LAG`` and
    ``c − 1``)."""
    p1, _, e1 = factual
    out: dict[str, dict] = {}
    for service in SERVICES:
        p0, _, e0 = twins.get(service, factual)
        cum = p1.started(service)
        rows1, rows0, months = [], [], []
        for (svc, episode), (row, c) in e1.items():
            if svc != service or (svc, episode) not in e0 or c < LAG + 1:
                continue
            if (
                cum[row, c] - cum[row, max(c - 12, 0)]
                or not (p1.groups[row, [c - 1, c - 1 - LAG]] > 0).all()
            ):
                continue
            rows1.append(row)
            rows0.append(e0[svc, episode][0])
            months.append(c)
        r1, r0, c = (np.array(x, dtype=np.int64) for x in (rows1, rows0, months))
        here = {}
        for k in horizons:
            ok = c + k < p1.groups.shape[1]
            a, b, cc = r1[ok], r0[ok], c[ok]
            y1 = _moved(p1.groups, a, cc, k, outcome)
            y0 = _moved(p0.groups, b, cc, k, outcome)
            seen = (y1 >= 0) & (y0 >= 0)
            diff = (y1 - y0)[seen]
            here[str(k)] = {
                "effect": round(float(diff.mean()), 4) if len(diff) else None,
                "entries": int(seen.sum()),
            }
        out[service] = here
    return out


def _moved(groups: np.ndarray, rows: np.ndarray, c: np.ndarray, k: int, outcome: str):
    """1 if the group at ``c + k`` is lower (higher) than at ``c − 1``, 0 if not, −1 if
    either is unknown."""
    before, after = groups[rows, c - 1].astype(int), groups[rows, c + k].astype(int)
    moved = (after < before) if outcome == "lower" else (after > before)
    return np.where((before > 0) & (after > 0), moved.astype(int), -1)


def pre_trend(cells, outcome: str = "lower") -> float | None:
    """The p-value of "no effect before the start" (months −6 … −2 but the matched
    ``−1 − LAG``), a chi-square on the event-study estimates taken as independent (they
    are not quite: the same families at neighbouring months)."""
    z = []
    for k in cells.horizons:
        if k < -1 and k != -1 - LAG:
            e = estimate(cells, k, outcome)
            if e.effect is not None and e.se:
                z.append(e.effect / e.se)
    if not z:
        return None
    return round(float(stats.chi2.sf(float(np.sum(np.square(z))), len(z))), 4)


def evaluate(
    factual, twins, min_cell: int, outcome: str = "lower", comparison: str = "later"
) -> dict:
    """The report (module doc) from the streamed world and its services' twins;
    ``comparison``: who stands in (:data:`models.impact.COMPARISONS`)."""
    planted = truth(factual, twins, REPORTED, outcome)
    panel = factual[0]
    services = {}
    for service in SERVICES:
        cells = cohort_cells(panel, service, HORIZONS, comparison=comparison)
        rows = {}
        for k in REPORTED:
            e = estimate(cells, k, outcome)
            rows[str(k)] = {
                "planted": planted[service][str(k)]["effect"],
                "estimate": e.effect,
                "ci_low": e.ci_low,
                "ci_high": e.ci_high,
                "naive": e.naive,
                "withheld": withheld(e, min_cell),
                "se": e.se,
                "mde": e.mde,
                "entries": e.treated,
                "unmatched": e.unmatched,
                "comparison": e.comparison,
            }
        services[service] = {
            **rows,
            "pre_trend_p": pre_trend(cells, outcome),
            "event_study": {
                str(k): asdict(estimate(cells, k, outcome))["effect"] for k in HORIZONS
            },
        }
    return {"services": services}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--families", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="the whole report as JSON")
    parser.add_argument(
        "--jobs", type=int, default=1, help="worlds streamed at once (processes; default 1)"
    )
    parser.add_argument(
        "--comparison",
        choices=COMPARISONS,
        default="later",
        help="who stands in for the entries: the later treated (default) or any not yet "
        "treated, the never treated too (to see their bias)",
    )
    parser.add_argument(
        "--panels",
        metavar="FILE",
        help="keep the streamed panels in FILE (pickle) and read them from it when it "
        "exists: to look at the estimates again without streaming again",
    )


def twinned() -> list[str]:
    """The services with a planted effect: each has its own twin."""
    return [e.service for e in SERVICE_EFFECTS if e.probability > 0 and e.levels > 0]


def stream_world(families: int, seed: int, counterfactual: bool | str):
    """One world's panel (:func:`stream_panel`), generated here (a process of its own)."""
    from tilannekuva.synthetic import synthesize

    lines = synthesize(families, seed=seed, services=True, counterfactual=counterfactual).lines
    return stream_panel(lines)


def _panels(args: argparse.Namespace, t0: float) -> dict:
    """``{"world": panel, service: its twin's panel}``: streamed, or read from
    ``--panels`` (then kept there)."""
    if args.panels and Path(args.panels).exists():
        with open(args.panels, "rb") as f:
            return pickle.load(f)  # our own file, written below
    names = ["world", *twinned()]
    worlds = {}
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        jobs = {
            pool.submit(stream_world, args.families, args.seed, n != "world" and n): n
            for n in names
        }
        for job in as_completed(jobs):
            worlds[jobs[job]] = job.result()
            print(
                f"{jobs[job]}: streamed, {time.perf_counter() - t0:.0f} s",
                file=sys.stderr,
                flush=True,
            )
    worlds = {n: worlds[n] for n in names}
    if args.panels:
        with open(args.panels, "wb") as f:
            pickle.dump(worlds, f)
    return worlds


def run(args: argparse.Namespace, settings) -> int:
    t0 = time.perf_counter()
    worlds = _panels(args, t0)
    report = {
        "families": args.families,
        "seed": args.seed,
        "min_cell": settings.min_cell,
        "comparison": args.comparison,
    }
    world = worlds.pop("world")
    report.update(evaluate(world, worlds, settings.min_cell, comparison=args.comparison))
    report["seconds"] = round(time.perf_counter() - t0, 1)
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print(
        f"{'service':28} {'k':>3} {'planted':>8} {'estimate':>9} {'95 % interval':>18} {'naive':>7}"
    )
    for service, rows in report["services"].items():
        for k in map(str, REPORTED):
            r = rows[k]
            fmt = lambda v: "—" if v is None else f"{v:+.3f}"  # noqa: E731
            ci = f"[{fmt(r['ci_low'])}, {fmt(r['ci_high'])}]"
            print(
                f"{service:28} {k:>3} {fmt(r['planted']):>8} {fmt(r['estimate']):>9} "
                f"{ci:>18} {fmt(r['naive']):>7}" + (f"  ({r['withheld']})" if r["withheld"] else "")
            )
        print(f"{'':28} pre-trend p = {rows['pre_trend_p']}")
    return 0
