"""``tilannekuva evaluate-impact``: the service-impact estimates against planted effects.

Generates a world whose services have planted effects on the families' need
(``tilannekuva generate --services``, ``docs/synthetic.md``) and, for each service with
an effect, its counterfactual twin (``--counterfactual SERVICE``: the same families,
the same service starts, every effect applied but that service's). The world is
streamed in arrival order through the worker's pure steps
(:class:`models.picture.Pipeline` with the feature profile), and at each month's end
every counted family's outcome group (:data:`models.impact.OUTCOME_RULE`) and
municipality go into a panel (:class:`models.impact.PanelBuilder`). A twin differs from
the world only in the families an effect reached (a fifth of them for family work,
fewer for the others): only those are streamed again, on the world's schedule
(:func:`stream_twin`), the rest keep the world's rows.

* **Planted**: the average effect of each service on the families that started it,
  measured the way the estimate measures it: over the entries, whether the outcome
  group at ``k`` months is lower than before the start, in the world less in the
  service's twin (the same family, the same start). A service without an effect has
  none (its twin is the world).
* **Estimate**: :func:`models.impact.estimate` on the factual panel alone, with its
  95 % interval, the naive before/after beside it, and a pre-trend test (months −6 …
  −2, their effects jointly zero).

One JSON object on stdout::

    tilannekuva evaluate-impact --families 5000 --seed 3 [--json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pickle
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import orjson

from models.cohorts import Cohorts, builder_counts, final_builder
from models.contract import COVERED_MUNICIPALITIES, RETRACTED, InvalidEvent, validate
from models.impact import (
    COMPARISONS,
    HORIZONS,
    LAG,
    REPORTED,
    SERVICES,
    Counts,
    Panel,
    PanelBuilder,
    anticipation_of,
    cohort_cells,
    estimate,
    month_of,
    pre_trend,
    record_keys,
    reference_month,
    replicates,
    service_of,
    withheld,
)
from models.picture import Pipeline
from models.profile import state_profile
from models.pseudonym import Pseudonymiser
from tilannekuva.synthetic import synthesize
from tilannekuva.synthetic.dynamics import SERVICE_EFFECTS

__all__ = [
    "REPORTED",
    "Run",
    "Span",
    "Units",
    "batches",
    "evaluate",
    "final_twin",
    "pre_trend",
    "stream_panel",
    "stream_twin",
    "truth",
    "twinned",
]

_KEY = b"impact-eval-key-0123456789abcdef"


@dataclass(frozen=True)
class Step:
    """One batch of a world's stream as its panel saw it: the arrival (UTC) of its last
    event, ``W`` after it, and the months closed after it."""

    last: str  # recorded_at, as validate() writes it: UTC, so string order is time order
    watermark: str
    closes: tuple[int, ...]


@dataclass
class Run:
    """How a world was streamed (:func:`stream_panel`), for its twins
    (:func:`stream_twin`): the schedule, the first month, the municipalities' indices."""

    steps: list[Step] = field(default_factory=list)
    first: int = 0
    munis: dict[str, int] = field(default_factory=dict)


def batches(events: list[dict], size: int = 500) -> Iterator[list[dict]]:
    """``events`` in batches of about ``size``, each ending between arrivals (a twin's
    events find their batch by arrival: :func:`stream_twin`)."""
    i = 0
    while i < len(events):
        end = min(i + size, len(events))
        while end < len(events) and events[end]["recorded_at"] == events[end - 1]["recorded_at"]:
            end += 1
        yield events[i:end]
        i = end


def final_stream(lines, key: bytes = _KEY) -> tuple[Pipeline, list[dict], int, int]:
    """A world's events (invalid lines skipped) streamed to the end: ``(pipeline, the
    non-retracted service starts by day, the month the registers went live, the last
    month W has left)``, for the panel of the final data
    (:func:`models.cohorts.final_builder`)."""
    pseudo, events = Pseudonymiser(key), []
    for line in lines:
        try:
            events.append(pseudo.event(validate(line)))
        except InvalidEvent:  # the DLQ's
            continue
    pipe = Pipeline(profile=state_profile, history=None)
    for chunk in batches(events):
        pipe.process_many(chunk)
    retracted = {e["data"]["event_id"] for e in events if e["type"] == RETRACTED}
    starts = sorted(
        (e for e in events if service_of(e) and e["event_id"] not in retracted),
        key=lambda e: e["occurred_at"],
    )
    first = month_of(min(e["recorded_at"][:10] for e in events))
    return pipe, starts, first, month_of(pipe.watermark) - 1


def final_counts(
    lines, key: bytes = _KEY, last: int | None = None
) -> tuple[int, int, dict[str, Counts]]:
    """``(first, last, {service: counts})`` of the panel of a world's final data
    (:func:`final_stream`): from the month the registers went live to ``last``
    (default: the last month ``W`` has left), pseudonymised with ``key``. What a worker
    with ``TK_IMPACT`` counts of the same events, in any order (docs/impact.md)."""
    pipe, starts, first, end = final_stream(lines, key)
    last = end if last is None else last
    return first, last, builder_counts(final_builder(pipe, starts, first, last))


def stream_panel(lines: list[str], batch: int = 500, run: Run | None = None, key: bytes = _KEY):
    """The panel of a world (module doc): ``(panel, families, entries)`` of
    :meth:`models.impact.PanelBuilder.panel`, as :class:`models.cohorts.Cohorts` keeps
    it, from the month of the earliest ``recorded_at`` (the registers going live) on;
    ``run`` (if given) keeps how; ``key``: the pseudonyms' (a family's replicate group
    follows its pseudonym)."""
    pseudo = Pseudonymiser(key)
    events = [pseudo.event(validate(line)) for line in lines]
    run = run if run is not None else Run()
    run.first = month_of(min(e["recorded_at"][:10] for e in events))
    pipe = Pipeline(profile=state_profile, history=None)
    cohorts = Cohorts(run.first, COVERED_MUNICIPALITIES)
    for chunk in batches(events, batch):
        cohorts.observe(chunk)
        pipe.process_many(chunk)
        closes = cohorts.close(pipe)
        run.steps.append(Step(chunk[-1]["recorded_at"], pipe.watermark, closes))
    assert cohorts.builder is not None
    run.munis = dict(cohorts.builder.munis)
    return cohorts.panel()


@dataclass
class Units:
    """The components of a world's events (families joined by their members; a
    person or family without a membership stands alone), with an order-free digest of
    each component's lines: what a twin is compared with (:func:`stream_twin`)."""

    find: Callable[[str], str]
    families: dict[str, list[str]]  # root -> its family ids
    digests: dict[str, tuple[int, int]]  # root -> (sum of line hashes mod 2^64, lines)

    @classmethod
    def of(cls, lines: list[str]) -> Units:
        find, families = _components(lines)
        return cls(find, families, _digests(lines, _roots(lines, find)))


def stream_twin(world, units: Units, twin_lines: list[str], run: Run, again=None):
    """The panel of a twin of ``world`` (streamed as ``run`` says; ``units``: its
    components): the families are independent in the steps, so where a family (with
    the family its separation founds, and their members) has the same events in both
    worlds its rows are the world's; the others are streamed again from the twin's
    events, on the world's schedule (the same batches by arrival, the same ``W``, the
    same month closes). Returns ``(panel, families, entries)`` as the world's.
    ``again``: the components to stream again (default: those whose events differ)."""
    pseudo = Pseudonymiser(_KEY)
    lines, affected = _again(units, twin_lines, again)
    events = [pseudo.event(validate(line)) for line in lines]
    pipe = Pipeline(profile=state_profile, history=None)
    cohorts = Cohorts(run.first, COVERED_MUNICIPALITIES)
    j = 0
    for step in run.steps:
        chunk = []
        while j < len(events) and events[j]["recorded_at"] <= step.last:
            chunk.append(events[j])
            j += 1
        cohorts.observe(chunk)
        pipe.watermark = max(pipe.watermark, step.watermark)
        pipe.process_many(chunk)  # also the families due at the world's W
        for month in step.closes:
            cohorts.close_month(month, pipe)
    assert cohorts.builder is not None
    return _merged(world, cohorts.builder, affected, run.munis)


def final_twin(world, units: Units, twin_lines: list[str], span: Span, again=None):
    """The final data's panel of a twin of ``world`` (the world's from
    :func:`final_stream` and :func:`models.cohorts.final_builder` over ``span``): a
    family's rows there are its state *as of* each month's end, which neither arrival
    order nor other families change, so only the components whose events differ
    (``again``, as in :func:`stream_twin`) are streamed; the others keep the world's
    rows. Returns ``(panel, families, entries)`` as the world's."""
    lines, affected = _again(units, twin_lines, again)
    builder = PanelBuilder(span.first, COVERED_MUNICIPALITIES)
    if lines:
        pipe, starts, _, _ = final_stream(lines)
        builder = final_builder(pipe, starts, span.first, span.last)
    return _merged(world, builder, affected, span.munis)


@dataclass(frozen=True)
class Span:
    """The months of a world's final panel and its municipalities' indices, for its
    twins (:func:`final_twin`)."""

    first: int
    last: int
    munis: dict[str, int]


def _again(units: Units, twin_lines: list[str], again: set[str] | None):
    """``(lines, families)``: the twin's lines of the components to stream again
    (``again``; None: those whose events differ) and their families' pseudonyms, whose
    rows the world's panel gives up."""
    roots = _roots(twin_lines, units.find)
    again = _differing(units, twin_lines, roots) if again is None else again
    lines = [line for line, root in zip(twin_lines, roots, strict=True) if root in again]
    pseudo = Pseudonymiser(_KEY)
    return lines, {pseudo.family(f) for r in again for f in units.families.get(r, ())}


def _differing(units: Units, twin_lines: list[str], roots: list[str]) -> set[str]:
    """The components whose events differ between the world and a twin."""
    twin = _digests(twin_lines, roots)
    return {r for r in set(twin) | set(units.digests) if twin.get(r) != units.digests.get(r)}


def _merged(world, builder: PanelBuilder, affected: set[str], munis: dict[str, int]):
    """The world's panel with the rows of ``affected`` families replaced by
    ``builder``'s (the municipalities' indices mapped to the world's)."""
    panel, families, entries = world
    sub, sub_fams, sub_entries = builder.panel()
    names = {i: m for m, i in builder.munis.items()}
    munis = dict(munis)
    code = {i: munis.setdefault(m, len(munis)) for i, m in names.items()}
    rows = {f: i for i, f in enumerate(families)}
    new = [f for f in sub_fams if f not in rows]
    for f in new:
        rows[f] = len(rows)
    n, m = len(rows), panel.groups.shape[1]
    groups = np.zeros((n, m), dtype=panel.groups.dtype)
    groups[: len(families)] = panel.groups
    scores = np.full((n, m), np.nan)
    scores[: len(families)] = panel.scores
    muni = np.full((n, m), -1, dtype=panel.municipality.dtype)
    muni[: len(families)] = panel.municipality
    area = np.zeros((n, m), dtype=np.int32)
    if panel.area is not None:
        area[: len(families)] = panel.area
    starts = {s: [list(x) for x in v] + [[] for _ in new] for s, v in panel.starts.items()}
    gone = {rows[f] for f in affected if f in rows}
    for i in gone:
        groups[i], scores[i], muni[i], area[i] = 0, np.nan, -1, 0
        for v in starts.values():
            v[i] = []
    lookup = np.vectorize(lambda i: code.get(int(i), -1), otypes=[np.int64])
    for r, f in enumerate(sub_fams):
        i = rows[f]
        groups[i], scores[i] = sub.groups[r], sub.scores[r]
        muni[i] = np.where(sub.groups[r] > 0, lookup(sub.municipality[r]), -1)
        area[i] = sub.area[r]
        for s, v in starts.items():
            v[i] = list(sub.starts[s][r])
    out = {k: v for k, v in entries.items() if v[0] not in gone}
    out.update({k: (rows[sub_fams[r]], c) for k, (r, c) in sub_entries.items()})
    fams = [*families, *new]
    return Panel(groups, muni, starts, scores, area, replicates(fams), record_keys(fams)), fams, out


def _unit(event: dict) -> str:
    """What an event belongs to: its family (population register) or its person."""
    return (event.get("data") or {}).get("family") or event["person"]


def _components(lines: list[str]):
    """``(find, families)``: the root of a person's or family's component (families
    joined by their members) and each root's family ids."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        root = x
        while parent.get(root, root) != root:
            root = parent[root]
        while parent.get(x, x) != root:  # path compression
            parent[x], x = root, parent[x]
        return root

    families = set()
    for line in lines:
        if '"family.member_added"' in line:
            ev = orjson.loads(line)
            fam = ev["data"]["family"]
            families.add(fam)
            a, b = find(ev["person"]), find(fam)
            if a != b:
                parent[a] = b
    out: dict[str, list[str]] = {}
    for f in families:
        out.setdefault(find(f), []).append(f)
    return find, out


def _roots(lines: list[str], find) -> list[str]:
    """Each line's component (:func:`_components` of the world); refuses lines that
    join components the world keeps apart (then its rows cannot be the world's)."""
    out = []
    for line in lines:
        ev = orjson.loads(line)
        if ev.get("type") == "family.member_added" and find(ev["person"]) != find(
            ev["data"]["family"]
        ):
            raise ValueError("the twin joins families the world keeps apart: stream it whole")
        out.append(find(_unit(ev)))
    return out


def _digests(lines: list[str], roots: list[str]) -> dict[str, tuple[int, int]]:
    """Per component (``roots``: each line's), an order-free digest of its lines: (sum
    of their hashes mod 2^64, their number)."""
    out: dict[str, list[int]] = {}
    for line, root in zip(lines, roots, strict=True):
        h = int.from_bytes(hashlib.blake2b(line.encode(), digest_size=8).digest(), "big")
        d = out.setdefault(root, [0, 0])
        d[0] = (d[0] + h) % (1 << 64)
        d[1] += 1
    return {r: (d[0], d[1]) for r, d in out.items()}


def truth(factual, twins, horizons=REPORTED, outcome: str = "lower") -> dict[str, dict]:
    """Per service and horizon, the planted effect on the entries (module doc):
    ``{"effect", "entries"}``. ``twins``: the streamed twin of each service with an
    effect (others: none, the world is its own twin); entries are the factual panel's
    (no start of the service in the months before, groups known at the reference month
    ``r = c − 1 − a`` of the service's :data:`models.impact.ANTICIPATION` and at
    ``r − LAG``); moves are measured from ``r``."""
    p1, _, e1 = factual
    out: dict[str, dict] = {}
    for service in SERVICES:
        p0, _, e0 = twins.get(service, factual)
        a = anticipation_of(service)
        cum = p1.started(service)
        rows1, rows0, months = [], [], []
        for (svc, episode), (row, c) in e1.items():
            if svc != service or (svc, episode) not in e0 or c < LAG + 1 + a:
                continue
            if (
                cum[row, c] - cum[row, max(c - 12, 0)]
                or not (p1.groups[row, [c - 1 - a, c - 1 - a - LAG]] > 0).all()
            ):
                continue
            rows1.append(row)
            rows0.append(e0[svc, episode][0])
            months.append(c)
        r1, r0, c = (np.array(x, dtype=np.int64) for x in (rows1, rows0, months))
        here = {}
        for k in horizons:
            ok = c + k < p1.groups.shape[1]
            r1_, r0_, cc = r1[ok], r0[ok], c[ok]
            y1 = _moved(p1.groups, r1_, cc, k, outcome, a)
            y0 = _moved(p0.groups, r0_, cc, k, outcome, a)
            seen = (y1 >= 0) & (y0 >= 0)
            diff = (y1 - y0)[seen]
            here[str(k)] = {
                "effect": round(float(diff.mean()), 4) if len(diff) else None,
                "entries": int(seen.sum()),
            }
        out[service] = here
    return out


def _moved(groups: np.ndarray, rows: np.ndarray, c: np.ndarray, k: int, outcome: str, a: int = 0):
    """1 if the group at ``c + k`` is lower (higher) than at the reference ``c − 1 − a``,
    0 if not, −1 if either is unknown."""
    before, after = groups[rows, c - 1 - a].astype(int), groups[rows, c + k].astype(int)
    moved = (after < before) if outcome == "lower" else (after > before)
    return np.where((before > 0) & (after > 0), moved.astype(int), -1)


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
                "withheld": withheld(e, min_cell, anticipation=anticipation_of(service)),
                "se": e.se,
                "mde": e.mde,
                "entries": e.treated,
                "unmatched": e.unmatched,
                "comparison": e.comparison,
            }
        services[service] = {
            **rows,
            "pre_trend_p": pre_trend(cells, outcome, anticipation_of(service)),
            "reference_month": reference_month(anticipation_of(service)),
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
        "--comparison",
        choices=COMPARISONS,
        default="later",
        help="who stands in for the entries: the later treated (default) or any not yet "
        "treated, the never treated too (to see their bias)",
    )
    parser.add_argument(
        "--panel",
        choices=("known", "final"),
        default="known",
        help="the panel estimated from: each month's end as the stream knew it at its close "
        "(the demo's, default), or as the final data have it (a worker's, TK_IMPACT)",
    )
    parser.add_argument(
        "--panels",
        metavar="FILE",
        help="keep the streamed panels in FILE (pickle) and read them from it when it "
        "exists: to look at the estimates again without streaming again",
    )


def twinned() -> list[str]:
    """The services with a planted effect: each has its own twin."""
    return [e.service for e in SERVICE_EFFECTS if e.probability > 0 and e.changes]


def _panels(args: argparse.Namespace, t0: float) -> dict:
    """``{"world": panel, service: its twin's panel}``: streamed, or read from
    ``--panels`` (then kept there)."""
    if args.panels and Path(args.panels).exists():
        with open(args.panels, "rb") as f:
            worlds = pickle.load(f)  # our own file, written below
        if not isinstance(worlds, dict) or "world" not in worlds:
            raise SystemExit(f"{args.panels}: not panels of this version; remove it to stream")
        # Panels kept before the replicate groups and record keys: both follow the
        # pseudonyms
        return {
            name: (replace(p, replicate=replicates(fams), record=record_keys(fams)), fams, entries)
            for name, (p, fams, entries) in worlds.items()
        }

    def say(what: str) -> None:
        print(f"{what}, {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)

    lines = synthesize(args.families, seed=args.seed, services=True).lines
    units = Units.of(lines)
    if args.panel == "final":
        pipe, starts, first, last = final_stream(lines)
        builder = final_builder(pipe, starts, first, last)
        span = Span(first, last, dict(builder.munis))
        worlds = {"world": builder.panel()}
        say(f"world: {len(lines)} events streamed, its final panel made")
        del pipe, starts, builder, lines
        for service in twinned():
            twin = synthesize(args.families, seed=args.seed, services=True, counterfactual=service)
            worlds[service] = final_twin(worlds["world"], units, twin.lines, span)
            say(f"{service}'s twin streamed, its final panel made")
        return _kept(args, worlds)
    run = Run()
    worlds = {"world": stream_panel(lines, run=run)}
    say(f"world: {len(lines)} events streamed")
    del lines
    for service in twinned():
        twin = synthesize(args.families, seed=args.seed, services=True, counterfactual=service)
        worlds[service] = stream_twin(worlds["world"], units, twin.lines, run)
        say(f"{service}'s twin streamed")
    return _kept(args, worlds)


def _kept(args: argparse.Namespace, worlds: dict) -> dict:
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
        "panel": args.panel,
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
