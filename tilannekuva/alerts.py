"""``tilannekuva alerts backtest``: every alert a method would have raised on an event file.

    tilannekuva alerts backtest FILE [--method cusum|level|farrington|rise5pp|all] [--json]

Replays the file in its arrival order without Kafka (:class:`tilannekuva.replay.Replay`:
the worker's steps, learner and snapshots in one process) and does with each day that
``W`` leaves behind what the worker's alert tick (:class:`streams.ops.ShiftAlerts`) does:
adds what the API publishes of that day (suppressed, perturbed) to the shown series
(:meth:`models.shown_series.ShownSeries.publish`) and runs each method's detector
(:class:`models.detection.Detector`) on them. So every alert uses only what had arrived
by then, and only what was published. Prints each alert with the day it would have been
raised; ``--json``: ``{"ticks", "first_day", "last_day", "methods": {name: [alert, ...]}}``.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
from collections.abc import Callable, Iterable, Mapping

from models.detection import METHODS, Detector
from models.learning import Learner
from models.pseudonym import Pseudonymiser
from models.shown_series import ShownSeries
from tilannekuva.replay import Replay

__all__ = ["Backtest", "add_arguments", "backtest", "run"]


class Backtest:
    """Detectors ticked on a replay: ``on_tick`` for :class:`Replay`.

    ``detectors``: name -> :class:`Detector`, all run on the same shown series in one
    pass (an evaluation compares methods side by side on the same stream).
    """

    def __init__(self, detectors: Mapping[str, Detector], min_cell: int, perturb: bool = True):
        self.detectors = dict(detectors)
        self.min_cell = min_cell
        self.perturb = perturb  # False: the exact shown counts (a comparison, never served)
        self.series = ShownSeries()
        self.states: dict[str, dict | None] = {name: None for name in self.detectors}
        self.alerts: dict[str, list[dict]] = {name: [] for name in self.detectors}
        self.ticks = 0
        self.seconds = {name: 0.0 for name in self.detectors}

    def __call__(self, day: str, picture: dict) -> None:
        self.series.publish(day, picture, self.min_cell, self.perturb)
        table = self.series.table()
        self.ticks += 1
        for name, detector in self.detectors.items():
            t0 = time.perf_counter()
            self.states[name], raised = detector.step(self.states[name], day, table)
            self.seconds[name] += time.perf_counter() - t0
            self.alerts[name].extend(raised)


def detectors_of(methods: Iterable[str]) -> dict[str, Detector]:
    """A detector with its default settings for each method name."""
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise ValueError(f"unknown method(s) {', '.join(unknown)}; known: {', '.join(METHODS)}")
    return {name: Detector(METHODS[name]()) for name in methods}


def backtest(
    events: Iterable[dict],
    methods: Iterable[str],
    min_cell: int,
    learner: Learner | None = None,
    on_progress: Callable[[Replay], None] | None = None,
    perturb: bool = True,
) -> Backtest:
    """Replay validated, pseudonymised ``events`` with a detector per method, on the
    published values (``perturb`` False: the exact shown counts, to measure what the
    cell key perturbation costs detection)."""
    bt = Backtest(detectors_of(methods), min_cell, perturb)
    replay = Replay(learner if learner is not None else default_learner(), on_tick=bt)
    if on_progress is None:
        replay.feed(events)
    else:
        chunk: list[dict] = []
        for ev in events:
            chunk.append(ev)
            if len(chunk) >= 100_000:
                replay.feed(chunk)
                on_progress(replay)
                chunk = []
        replay.feed(chunk)
    return bt


def default_learner() -> Learner:
    """The worker's learner (its defaults), on the replay's clock: snapshots every 30
    days of ``W`` with no wall-clock wait."""
    return Learner(min_interval_s=0.0)


# ------------------------------------------------------------------------------ the CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="alerts_command", required=True, metavar="COMMAND")
    p = sub.add_parser(
        "backtest",
        help="replay an event file and print every alert with the day it would be raised",
        description=__doc__.splitlines()[0],
    )
    p.add_argument("file", help="register events, JSON lines (plain or gzip)")
    p.add_argument(
        "--method",
        default="cusum",
        help=f"one of {', '.join(METHODS)}, or 'all' (default: cusum)",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace, settings) -> int:
    from tilannekuva.batch import InputStats, load_events

    methods = list(METHODS) if args.method == "all" else [args.method]
    try:
        detectors_of(methods)
    except ValueError as exc:
        print(f"tilannekuva alerts backtest: {exc}", file=sys.stderr)
        return 2
    key = settings.require_pseudonym_key() if settings.pseudonym_key else secrets.token_bytes(32)
    pseudo = Pseudonymiser(key)
    stats = InputStats()
    events = (pseudo.event(e) for e in load_events(args.file, stats))

    def progress(replay: Replay) -> None:
        if not args.json:
            print(f"… {replay.events:,} events, W {replay.pipe.watermark}", file=sys.stderr)

    bt = backtest(events, methods, settings.min_cell, on_progress=progress)
    days = bt.series.days
    out = {
        "ticks": bt.ticks,
        "first_day": days[0] if days else None,
        "last_day": days[-1] if days else None,
        "invalid_lines": stats.invalid,
        "methods": bt.alerts,
    }
    if args.json:
        print(json.dumps(out))
        return 0
    print(
        f"{bt.ticks} ticks, {out['first_day']} … {out['last_day']}; {stats.invalid} invalid lines"
    )
    for name, alerts in bt.alerts.items():
        print(f"\n{name}: {len(alerts)} alerts")
        for a in alerts:
            print(f"  {a['as_of']}  {a['explanation']}")
    return 0
