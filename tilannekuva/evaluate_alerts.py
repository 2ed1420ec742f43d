"""``tilannekuva evaluate-alerts``: every alert method against planted shifts, side by side.

    tilannekuva evaluate-alerts --families 20000 --seed 7 [--shifts 30]
        [--population-shift PP] [--json]

Generates a history with dynamics and planted shifts (``tilannekuva generate --dynamics
--shifts N --shifts-from D``: onsets after the day the service-need groups' baseline is
frozen, so that every series can shift; the truth in its own file, never in the
events), backtests every method on it in one replay (:mod:`tilannekuva.alerts`: the
worker's steps, only what had arrived and was published by each day) and scores each
method's alerts against the truth (:func:`tilannekuva.alert_scoring.score`) from the
first possible onset to the end. ``best``: the method that detects the most large
shifts within 21 days among those with at most 1 false alert per 100 area-months and 5
alerts per municipality-week (None when no method keeps to both).

The service-need groups: ``groups`` reports the published share of groups 4–10 and
9–10 (all six municipalities) on the population shift's onset day and six months plus
30 days later, against the planted change (``--population-shift PP``: that many
percentage points of families moved to need level 4 or more over six months; without
it the same two days, where the shares should stay still).

With ``--json``: ``{"methods": {NAME: {"detected_share", "detected_share_large",
"median_delay_days", "p90_delay_days", "false_per_100_area_months", "ppv",
"alerts_per_municipality_week", ...}}, "best": NAME, "by_size": {NAME: [...]},
"groups": {...}}``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time

from models.areas import reference_areas
from models.contract import validate
from models.detection import METHODS
from models.features import WINDOW_DAYS
from models.pseudonym import Pseudonymiser
from tilannekuva.alert_scoring import score
from tilannekuva.alerts import backtest
from tilannekuva.synthetic import DEFAULT_START, synthesize
from tilannekuva.synthetic.dynamics import POPULATION_RAMP

__all__ = ["SHIFTS_AFTER_DAYS", "add_arguments", "evaluate", "run"]

#: Planted onsets start this long after the history does: the groups' baseline is frozen
#: a feature window (730 days of W) after the learner's first step, at its next snapshot.
SHIFTS_AFTER_DAYS = WINDOW_DAYS + 40
#: The groups' check: the share this long after the population shift's onset.
GROUPS_AFTER_DAYS = POPULATION_RAMP + 30
#: The bars of issue 15 a method must keep to be the best.
MAX_FALSE_PER_100_AREA_MONTHS, MAX_ALERTS_PER_MUNICIPALITY_WEEK = 1.0, 5.0


def evaluate(
    families: int,
    seed: int,
    shifts: int = 30,
    population_shift: float | None = None,
    methods: tuple[str, ...] = tuple(METHODS),
    min_cell: int = 5,
    progress: bool = False,
    perturb: bool = True,
) -> dict:
    """Generate, backtest and score (module doc); returns the report. ``perturb`` False
    scores the exact shown counts instead of the published ones (docs/disclosure.md)."""
    start = DEFAULT_START
    shifts_from = start + dt.timedelta(days=SHIFTS_AFTER_DAYS)
    onset = shifts_from + dt.timedelta(days=30)
    t0 = time.perf_counter()
    synth = synthesize(
        families,
        seed,
        dynamics=True,
        shifts=shifts,
        shifts_from=shifts_from,
        population_shift=population_shift,
        population_shift_onset=onset if population_shift else None,
    )
    truth = [row for row in synth.shifts if row["scope_type"] != "all"]
    planted_population = next((r for r in synth.shifts if r["scope_type"] == "all"), None)
    t_gen = time.perf_counter() - t0
    if progress:
        print(f"generated {len(synth.lines):,} lines in {t_gen:.0f} s", file=sys.stderr)
    pseudo = Pseudonymiser(f"evaluate-alerts-{seed}".encode())
    events = (pseudo.event(validate(line)) for line in synth.lines)
    t1 = time.perf_counter()
    bt = backtest(events, methods, min_cell, perturb=perturb)
    t_bt = time.perf_counter() - t1
    del synth
    areas = {pc: a["municipality"] for pc, a in reference_areas().items()}
    last = bt.series.days[-1]
    report_methods, by_size = {}, {}
    for name in methods:
        r = score(bt.alerts[name], truth, shifts_from.isoformat(), last, areas)
        by_size[name] = r.pop("by_size")
        r["seconds_per_tick"] = round(bt.seconds[name] / max(bt.ticks, 1), 4)
        report_methods[name] = r
    ok = {
        n: r
        for n, r in report_methods.items()
        if r["false_per_100_area_months"] <= MAX_FALSE_PER_100_AREA_MONTHS
        and r["alerts_per_municipality_week"] <= MAX_ALERTS_PER_MUNICIPALITY_WEEK
    }
    best = max(ok, key=lambda n: (ok[n]["detected_share_large"] or 0.0, n)) if ok else None
    return {
        "families": families,
        "seed": seed,
        "values": "published" if perturb else "exact shown",
        "shifts": len(truth),
        "scored_from": shifts_from.isoformat(),
        "scored_to": last,
        "methods": report_methods,
        "best": best,
        "by_size": by_size,
        "groups": groups_check(bt.series, onset, planted_population),
        "timing": {"generate_s": round(t_gen, 1), "backtest_s": round(t_bt, 1), "ticks": bt.ticks},
    }


def groups_check(series, onset: dt.date, planted: dict | None) -> dict:
    """The published shares of groups 4–10 and 9–10 of all six municipalities on the
    first ticked day on or after ``onset`` and :data:`GROUPS_AFTER_DAYS` later, against
    the planted population-wide change (0 without one)."""
    table = series.table()
    s = table.scopes.index("all")
    first = dt.date.fromisoformat(table.first_day).toordinal()
    out: dict = {"planted_pp": planted["planted"]["g4-g10"] if planted else 0.0}
    for label, day in (
        ("at_onset", onset),
        ("after", onset + dt.timedelta(days=GROUPS_AFTER_DAYS)),
    ):
        t = day.toordinal() - first
        while t < table.n_days and not (table.den[s, 0, t] > 0):
            t += 1  # the first ticked day with shown families
        if t >= table.n_days:
            return out | {"error": f"no published picture on or after {day}"}
        fam = float(table.den[s, 0, t])
        out[label] = {
            "as_of": dt.date.fromordinal(first + t).isoformat(),
            **{
                name: round(100 * float(table.num[s, table.series.index(name), t]) / fam, 3)
                for name in ("service_need_4_10", "service_need_9_10")
            },
        }
    change = out["after"]["service_need_4_10"] - out["at_onset"]["service_need_4_10"]
    out["published_change_pp"] = round(change, 3)
    out["difference_pp"] = round(change - out["planted_pp"], 3)
    return out


# ------------------------------------------------------------------------------ the CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--families", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--shifts", type=int, default=30, help="planted shifts (default 30)")
    parser.add_argument(
        "--population-shift",
        type=float,
        default=None,
        metavar="PP",
        help="also move PP percentage points of all families to need level >= 4",
    )
    parser.add_argument(
        "--method",
        action="append",
        choices=sorted(METHODS),
        help="only these methods (repeatable; default: all)",
    )
    parser.add_argument(
        "--unperturbed",
        action="store_true",
        help="detect on the exact shown counts, not the published (perturbed) ones: what "
        "the cell key perturbation costs detection (docs/disclosure.md)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace, settings) -> int:
    report = evaluate(
        args.families,
        args.seed,
        shifts=args.shifts,
        population_shift=args.population_shift,
        methods=tuple(args.method or METHODS),
        min_cell=settings.min_cell,
        progress=not args.json,
        perturb=not args.unperturbed,
    )
    if args.json:
        print(json.dumps(report))
        return 0
    print(
        f"{report['families']} families, seed {report['seed']}, {report['shifts']} planted "
        f"shifts, scored {report['scored_from']} … {report['scored_to']}"
    )
    cols = (
        ("detected_share", "detected"),
        ("detected_share_large", "large ≤21 d"),
        ("median_delay_days", "median delay"),
        ("p90_delay_days", "p90 delay"),
        ("false_per_100_area_months", "false/100 area-mo"),
        ("ppv", "PPV"),
        ("alerts_per_municipality_week", "alerts/muni-wk"),
    )
    print(f"{'method':<12}" + "".join(f"{h:>18}" for _, h in cols))
    for name, r in report["methods"].items():
        print(f"{name:<12}" + "".join(f"{_fmt(r[k]):>18}" for k, _ in cols))
    print(f"best: {report['best']}")
    g = report["groups"]
    if "error" not in g:
        print(
            f"groups 4–10 (all): {g['at_onset']['service_need_4_10']} % on {g['at_onset']['as_of']}, "
            f"{g['after']['service_need_4_10']} % on {g['after']['as_of']}: "
            f"{g['published_change_pp']:+} pp against {g['planted_pp']:+} pp planted"
        )
    return 0


def _fmt(v) -> str:
    return "—" if v is None else (f"{v:.3g}" if isinstance(v, float) else str(v))
