"""``tilannekuva disclosure``: the attackers against today's publication and against the
cell key method, and what the perturbation costs (``docs/disclosure.md``, issue 17).

It simulates a history in process (the synthetic registers through the pure pipeline,
as the demo does, with its cell keys) and publishes every day of it: suppressed and
exact, as before cell keys; perturbed by the history's cell keys, as the API publishes
it now (:func:`~tilannekuva.api.cube.publish_rows`); and perturbed by random keys,
drawn anew for every day and cell. It runs
:func:`~tilannekuva.disclosure_attack.differencing`,
:func:`~tilannekuva.disclosure_attack.interval_attack` and
:func:`~tilannekuva.disclosure_attack.window_attack` (the 30- and 90-day windows across
days) on each, and :func:`utility`, the figures the issue asks for, on the perturbed
one. One JSON object on stdout::

    tilannekuva disclosure --families 1500 --seed 11 --days 90
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import zlib
from dataclasses import asdict, dataclass

import numpy as np

from models import publication
from models.areas import reference_areas
from models.cellkey import KEYS
from models.contract import validate
from models.picture import Pipeline, day
from models.pseudonym import Pseudonymiser
from tilannekuva.api.cube import FIELDS, HIDDEN, N_IND, Layout, suppress_rows
from tilannekuva.disclosure_attack import (
    differencing,
    history_values,
    interval_attack,
    window_attack,
)

__all__ = ["SIZES", "Utility", "World", "evaluate", "simulate", "stand_in_group", "utility"]

#: Scope size classes by families: (name, lowest, highest + 1).
SIZES = (("<100", 0, 100), ("100-999", 100, 1000), (">=1000", 1000, None))


def stand_in_group(state: dict) -> int | None:
    """A service-need group for a family without a family-types model: a hash of its
    first member, so that ``families = Σ groups`` holds on every day, as with one.

    >>> stand_in_group({"mem": {"p2": {}, "p1": {}}}), stand_in_group({"mem": {}})
    (8, None)
    """
    mem = state.get("mem") or {}
    return 1 + zlib.crc32(min(mem).encode()) % 10 if mem else None


@dataclass
class World:
    """A simulated history and its publication: ``exact`` ``[day, scope, keyed field]``
    (counts, then cell-key sums: :func:`~tilannekuva.disclosure_attack.history_values`),
    ``shown`` ``[day, scope, field]`` (suppressed, exact where shown), ``groups`` per day;
    :attr:`published`: perturbed by the cell keys, as the API publishes it."""

    pipe: Pipeline
    areas: dict[str, str]
    layout: Layout
    first: int
    last: int
    exact: np.ndarray
    shown: np.ndarray
    groups: np.ndarray

    @property
    def counts(self) -> np.ndarray:
        return self.exact[..., : len(FIELDS)]

    def published(self, min_cell: int, keys: np.ndarray | None = None) -> np.ndarray:
        """``shown`` perturbed by ``keys`` (``[day, scope, field]``; None: the cell keys
        of the history): :func:`~tilannekuva.api.cube.publish_rows` without suppressing
        again."""
        keys = self.exact[..., len(FIELDS) :] if keys is None else keys
        return publication.perturb(self.shown, keys, min_cell)


def simulate(families: int, seed: int, days: int, min_cell: int) -> World:
    """The last ``days`` days of ``families`` synthetic families (groups by
    :func:`stand_in_group`), exact and published."""
    from tilannekuva.synthetic import synthesize

    synth = synthesize(families, seed=seed)
    pseudo = Pseudonymiser(b"attack-test-key-0123456789")
    pipe = Pipeline(group=stand_in_group)
    events = [pseudo.event(validate(line)) for line in synth.lines]
    for i in range(0, len(events), 1000):
        pipe.process_many(events[i : i + 1000])
    areas = {pc: a["municipality"] for pc, a in reference_areas().items()}
    layout = Layout.of(areas)
    last = day(pipe.watermark)
    first = last - days + 1
    exact = history_values(pipe.history, layout, first, last)
    shown, groups = suppress_rows(exact, layout, min_cell)
    return World(pipe, areas, layout, first, last, exact, shown, groups)


@dataclass(frozen=True)
class Utility:
    """What perturbation costs: of ``shown_nonzero`` shown non-zero cells, the share
    ``differing`` whose published value is not the exact count; by scope size class
    (families), the mean absolute deviation ``mad`` of the shares per family
    (indicator / families, the seven indicators besides families, shown cells only)
    over ``shares`` shares."""

    shown_nonzero: int
    differing: float
    mad: dict[str, float]
    shares: dict[str, int]


def utility(exact: np.ndarray, published: np.ndarray) -> Utility:
    """:class:`Utility` of ``published`` against ``exact`` (both ``[day, scope, field]``).

    >>> exact = np.array([[[40, 60, 10, 0, 6, 0, 0, 0], [2000, 3100, 300, 0, 0, 0, 0, 0]]])
    >>> shown = np.array([[[41, 60, 11, 0, HIDDEN, 0, 0, 0], [2001, 3100, 300, 0, 0, 0, 0, 0]]])
    >>> u = utility(exact, shown)
    >>> u.shown_nonzero, round(u.differing, 2), u.shares
    (6, 0.5, {'<100': 6, '100-999': 0, '>=1000': 7})
    >>> round(u.mad["<100"], 4), round(u.mad[">=1000"], 6)
    (0.0091, 0.000121)
    """
    exact = np.asarray(exact, dtype=np.int64)
    pub = np.asarray(published, dtype=np.int64)
    shown = pub != HIDDEN
    nonzero = shown & (exact != 0)
    n = int(nonzero.sum())
    differing = float((nonzero & (pub != exact)).sum() / n) if n else 0.0
    fam_e, fam_p = exact[:, :, :1], pub[:, :, :1]
    ok = shown[:, :, 1:N_IND] & shown[:, :, :1] & (fam_e > 0) & (fam_p > 0)
    dev = np.abs(
        pub[:, :, 1:N_IND] / np.maximum(fam_p, 1) - exact[:, :, 1:N_IND] / np.maximum(fam_e, 1)
    )
    size = np.broadcast_to(fam_e, dev.shape)
    mad, shares = {}, {}
    for name, lo, hi in SIZES:
        at = ok & (size >= lo) & (size < (hi if hi is not None else np.inf))
        shares[name] = int(at.sum())
        mad[name] = float(dev[at].mean()) if at.any() else 0.0
    return Utility(n, differing, mad, shares)


def evaluate(
    world: World,
    min_cell: int,
    seed: int = 0,
    window_days: int | None = None,
    log=None,
    window_on: tuple[str, ...] = ("exact", "cell_keys", "random_keys"),
) -> dict:
    """The attackers on each publication of ``world`` and the utility of the perturbed
    one (module doc). ``window_days``: the window attacker joins only the last so many
    days (None: all; its programs grow with the days). ``log``: called with each
    attacker's findings as they come (a long run shows its progress). ``window_on``:
    the publications the window attacker reads (the costly one)."""
    table = publication.table(min_cell)
    random_keys = np.random.default_rng(seed).integers(0, KEYS, world.shown.shape)
    out: dict = {"days": len(world.shown), "scopes": len(world.layout.scopes)}
    out["groups_days"] = int(world.groups.sum())
    runs = (
        ("exact", world.shown, None),
        ("cell_keys", world.published(min_cell), table),
        ("random_keys", world.published(min_cell, random_keys), table),
    )
    last = slice(-window_days if window_days else None, None)
    for name, published, tab in runs:
        out[name] = here = {
            "differencing": asdict(differencing(published, min_cell)),
            "differencing_right": _right(published, world.counts, min_cell),
            "interval": asdict(
                interval_attack(
                    published, world.groups, world.layout, min_cell, tab, exact=world.counts
                )
            ),
        }
        if log:
            log(name, here)
        if name not in window_on:
            continue
        here["window"] = asdict(
            window_attack(
                published[last], world.layout, min_cell, tab, exact=world.counts[last], seed=seed
            )
        )
        if log:
            log(name, {"window": here["window"]})
    out["utility"] = asdict(utility(world.counts, world.published(min_cell)))
    return out


def _right(published: np.ndarray, counts: np.ndarray, min_cell: int) -> float:
    """Of the published day-to-day changes of 1 … m − 1 (shown on both days), the share
    that is the true change."""
    a, b = published[:-1].astype(np.int64), published[1:].astype(np.int64)
    d = b - a
    small = (a != HIDDEN) & (b != HIDDEN) & (np.abs(d) >= 1) & (np.abs(d) < min_cell)
    return round(float((d == np.diff(counts, axis=0))[small].mean()), 3) if small.any() else 0.0


def _log(name: str, findings: dict) -> None:
    print(name, json.dumps(findings), file=sys.stderr, flush=True)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--families", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--days", type=int, default=90, help="the last D days (default 90)")
    parser.add_argument(
        "--window-days",
        type=int,
        default=None,
        help="the window attacker joins the last K days only (default: all D)",
    )
    parser.add_argument(
        "--window-on",
        default="exact,cell_keys,random_keys",
        help="the publications the window attacker reads (default: all three)",
    )


def run(args: argparse.Namespace, settings) -> int:
    t0 = time.perf_counter()
    world = simulate(args.families, args.seed, args.days, settings.min_cell)
    simulated = time.perf_counter() - t0
    report = {"families": args.families, "seed": args.seed, "min_cell": settings.min_cell}
    report["window_days"] = args.window_days or args.days
    on = tuple(args.window_on.split(","))
    report.update(evaluate(world, settings.min_cell, args.seed, args.window_days, _log, on))
    report["simulate_seconds"] = round(simulated, 1)
    print(json.dumps(report, indent=1))
    return 0
