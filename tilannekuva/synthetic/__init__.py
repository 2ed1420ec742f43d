"""Synthetic registers: ``tilannekuva generate``.

Families with children in the 144 real postcode areas of the six municipalities, three
years of events from all ten registers, a planted latent profile per family (archetype
and service-need level, written to a separate truth CSV) and optional corruption
(duplicates, out-of-order, retractions, malformed lines). Opt-in dynamics (family
trajectories, seasonality, planted area shifts with their own truth file) live in
``dynamics.py``. See ``docs/synthetic.md``.

Python API
----------
``generate(families, seed, ...)`` yields the events in file order (dicts; malformed
lines that are not JSON objects as raw strings); ``planted_truth(families, seed, ...)``
returns the truth rows; ``synthesize(...)`` returns both at once (and, with
``dynamics=True``, ``shifts=N`` or ``population_shift=PP``, the trajectories and the
shift truth; with ``services=True`` the planted services' truth, and with
``counterfactual=True`` the same history's twin in which no service has an effect, with
a service's code the twin in which only that service has none).

>>> events = list(generate(3, seed=1))
>>> {"dvv", "employment", "incomes"} <= {e["source"] for e in events}
True
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import gc
import gzip
import io
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from tilannekuva.synthetic import dynamics as D
from tilannekuva.synthetic.simulate import SCHEMA, SOURCES, assign_families, simulate

DEFAULT_START = dt.date(2023, 7, 1)
DEFAULT_END = dt.date(2026, 6, 30)
DAY_MS = 86_400_000
TRUTH_COLUMNS = ("family", "archetype", "need_level", "municipality", "postcode")
# With dynamics the need level changes: need_level is the family's first day's,
# need_level_end its last day's (W, or the day it left); the changes are in the
# trajectories file.
DYNAMIC_TRUTH_COLUMNS = (*TRUTH_COLUMNS, "need_level_end")
TRAJECTORY_COLUMNS = ("family", "day", "need_level", "cause")


@dataclass
class Synthetic:
    """Generated lines in file order and the planted truth."""

    lines: list[str]
    truth: list[dict]
    counts: dict[str, int]
    shifts: list[dict] = field(default_factory=list)  # shift truth (dynamics.shift_truth)
    trajectories: list[dict] = field(default_factory=list)  # need-level changes
    dynamic: bool = False  # dynamics, shifts or a population shift were on
    services: dict = field(default_factory=dict)  # planted services (dynamics.service_truth)

    def events(self) -> Iterator[dict | str]:
        for line in self.lines:
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                yield line
                continue
            yield obj if isinstance(obj, dict) else line


def _dumps(ev: dict) -> str:
    return json.dumps(ev, separators=(",", ":"), ensure_ascii=False)


def synthesize(
    families: int,
    seed: int,
    *,
    duplicates: float = 0.0,
    out_of_order: float = 0.0,
    retractions: float = 0.0,
    malformed: float = 0.0,
    start: dt.date = DEFAULT_START,
    end: dt.date = DEFAULT_END,
    progress: bool = False,
    dynamics: bool = False,
    shifts: int | Sequence[D.Shift] = 0,
    population_shift: float | None = None,
    population_shift_onset: dt.date | None = None,
    shifts_from: dt.date | None = None,
    services: bool = False,
    counterfactual: bool | str = False,
) -> Synthetic:
    """Events (file order), truth and counts of a synthetic history.

    ``dynamics``: family trajectories and seasonality; ``shifts``: the number of planted
    area/municipality shifts (:func:`dynamics.plan_shifts`) or the shifts themselves;
    ``population_shift``: percentage points of families moved to need level >= 4 over
    six months from ``population_shift_onset`` (default mid-history). Shifts do not
    imply ``dynamics``: on the flat background they are the only change.
    ``shifts_from``: the earliest onset of a planted shift (default: 270 days after
    ``start``), e.g. after the day a detector's baseline is complete.
    ``services``: planted service starts with planted effects on latent need (implies
    ``dynamics``); ``counterfactual``: the same starts, no effect applied (the twin
    world an evaluation compares with), or a service's code: only that service's
    effects left out (the twin that measures its own effect).
    """
    for name, p in (
        ("duplicates", duplicates),
        ("out_of_order", out_of_order),
        ("retractions", retractions),
        ("malformed", malformed),
    ):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{name} must be a share in 0..1, got {p}")
    if end <= start:
        raise ValueError("end must be after start")
    if families < 0:
        raise ValueError("families must be >= 0")
    dyn = _dynamics(
        families,
        seed,
        start,
        end,
        dynamics,
        shifts,
        population_shift,
        population_shift_onset,
        shifts_from,
        services,
        counterfactual,
    )
    record = D.Record()
    records: list[tuple[int, int, str]] = []
    append = records.append
    dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

    def emit(key: int, ev: dict) -> None:
        append((key, len(records), dumps(ev)))

    gc_was = gc.isenabled()
    gc.disable()  # millions of small, acyclic objects: the collector only costs time
    try:
        t0 = time.perf_counter()
        truth = simulate(families, seed, start, end, emit, dyn, record)
        if progress:
            print(
                f"simulated {len(truth)} families, {len(records)} events in "
                f"{time.perf_counter() - t0:.1f} s",
                file=sys.stderr,
            )
        counts = {"valid": len(records)}
        counts.update(
            _corrupt(records, seed, duplicates, out_of_order, retractions, malformed, start, end)
        )
        records.sort()
        lines = [r[2] for r in records]
    finally:
        if gc_was:
            gc.enable()
    counts["lines"] = len(lines)
    if not dyn.active:
        return Synthetic(lines, truth, counts)
    return Synthetic(
        lines,
        truth,
        counts,
        D.shift_truth(dyn.shifts, record),
        record.trajectories,
        True,
        D.service_truth(seed, start, end, dyn, record) if dyn.services else {},
    )


def _dynamics(
    families,
    seed,
    start,
    end,
    dynamics,
    shifts,
    population_shift,
    onset,
    shifts_from=None,
    services=False,
    counterfactual=False,
):
    """The :class:`dynamics.Dynamics` of the options (all off: the flat default)."""
    if counterfactual and not services:
        raise ValueError("counterfactual is the twin of a services run: give services too")
    if not isinstance(counterfactual, bool) and counterfactual not in D.EFFECTS:
        raise ValueError(f"counterfactual: True, False or one of {sorted(D.EFFECTS)}")
    if isinstance(shifts, int):
        if shifts < 0:
            raise ValueError("shifts must be >= 0")
        sizes = area_families(families, seed) if shifts else {}
        planned = D.plan_shifts(shifts, seed, start, end, sizes, shifts_from) if shifts else []
    else:
        planned = list(shifts)
    if population_shift:
        planned.append(D.population_shift(population_shift, start, end, onset))
    if len({s.id for s in planned}) != len(planned):
        raise ValueError("shift ids must be unique")
    if not services:
        return D.Dynamics(trajectories=dynamics, seasonality=dynamics, shifts=planned)
    return D.Dynamics(  # services imply dynamics
        trajectories=True,
        seasonality=True,
        shifts=planned,
        services=True,
        counterfactual=counterfactual,
        supply=D.service_supply(seed),
    )


def area_families(families: int, seed: int) -> dict[str, int]:
    """Families per postcode at the start (without in-movers): the scopes' sizes."""
    return dict(Counter(pc for pc, _, _, inmover in assign_families(families, seed) if not inmover))


def generate(families: int, seed: int, **options) -> Iterator[dict | str]:
    """The events of a synthetic history in file order (see module doc); ``options``
    are :func:`synthesize`'s keywords (corruption knobs, ``start``, ``end``)."""
    yield from synthesize(families, seed, **options).events()


def planted_truth(
    families: int,
    seed: int,
    *,
    start: dt.date = DEFAULT_START,
    end: dt.date = DEFAULT_END,
    dynamics: bool = False,
    shifts: int | Sequence[D.Shift] = 0,
    population_shift: float | None = None,
    population_shift_onset: dt.date | None = None,
    shifts_from: dt.date | None = None,
    services: bool = False,
    counterfactual: bool | str = False,
) -> list[dict]:
    """The planted truth rows (``TRUTH_COLUMNS``, with dynamics
    ``DYNAMIC_TRUTH_COLUMNS``); independent of the corruption knobs."""
    dyn = _dynamics(
        families,
        seed,
        start,
        end,
        dynamics,
        shifts,
        population_shift,
        population_shift_onset,
        shifts_from,
        services,
        counterfactual,
    )
    return simulate(families, seed, start, end, lambda key, ev: None, dyn, D.Record())


# ---------------------------------------------------------------------------- corruption
def _recorded(day: int, sec: int) -> str:
    d = dt.date.fromordinal(day).isoformat()
    return f"{d}T{sec // 3600:02d}:{sec // 60 % 60:02d}:{sec % 60:02d}Z"


def _corrupt(
    records, seed, duplicates, out_of_order, retractions, malformed, start, end
) -> dict[str, int]:
    """Add corruption to ``records`` (key, seq, line) in place; returns counts per knob."""
    r = random.Random(seed * 7_919 + 17)
    n = len(records)
    counts = {
        "duplicates": 0,
        "out_of_order": 0,
        "retractions": 0,
        "retractions_before_target": 0,
        "malformed": 0,
    }
    if n == 0:
        return counts
    seq = n
    lo_key = min(k for k, _, _ in records)
    hi_key = max(k for k, _, _ in records)
    E = end.toordinal()

    def pick(p: float) -> list[int]:
        if p <= 0:
            return []
        m = min(n, int(round(p * n)))
        return sorted(r.sample(range(n), m))

    # Retractions: a register withdraws an event days or weeks after recording it.
    for i in pick(retractions):
        key, _, line = records[i]
        target = json.loads(line)
        rec_day = key // DAY_MS
        occ_day = min(E, rec_day + r.randint(1, 40))
        occ_day = max(occ_day, dt.date.fromisoformat(target["occurred_at"]).toordinal())
        rday = max(occ_day, rec_day) + r.randint(0, 3)
        sec = r.randrange(14400, 68400)
        ev = {
            "schema": SCHEMA,
            "event_id": _uuid(r),
            "source": target["source"],
            "type": "event.retracted",
            "occurred_at": dt.date.fromordinal(occ_day).isoformat(),
            "recorded_at": _recorded(rday, sec),
        }
        if "person" in target and r.random() < 0.5:
            ev["person"] = target["person"]
        ev["data"] = {"event_id": target["event_id"]}
        place = (rday * 86400 + sec) * 1000
        if r.random() < 0.25:  # delivered before its target
            place = key - r.randint(1, 30 * DAY_MS)
            counts["retractions_before_target"] += 1
        records.append((place, seq, _dumps(ev)))
        seq += 1
        counts["retractions"] += 1
    # Duplicates: the same bytes again, minutes to days later.
    for i in pick(duplicates):
        key, _, line = records[i]
        records.append((key + r.randint(1, 5 * DAY_MS), seq, line))
        seq += 1
        counts["duplicates"] += 1
    # Malformed lines: extra lines, each breaking one rule of the contract.
    for i in pick(malformed):
        key, _, line = records[i]
        bad = _malform(json.loads(line), line, r)
        records.append((key + r.randint(0, 3_600_000), seq, bad))
        seq += 1
        counts["malformed"] += 1
    # Out of order: a share of all lines moved to a random place in the file.
    total = len(records)
    if out_of_order > 0:
        m = min(total, int(round(out_of_order * total)))
        for i in sorted(r.sample(range(total), m)):
            key, s, line = records[i]
            records[i] = (r.randint(lo_key, hi_key), s, line)
            counts["out_of_order"] += 1
    return counts


def _uuid(r: random.Random) -> str:
    s = f"{r.getrandbits(128):032x}"
    return f"{s[:8]}-{s[8:12]}-4{s[13:16]}-{s[16:20]}-{s[20:]}"


BAD_DATA = {
    "family.member_added": {"role": "grandparent"},
    "family.member_removed": {"family": 12345},
    "family.residence_changed": {"postcode": "3310"},
    "benefit.started": {"benefit": "lottery_win"},
    "benefit.ended": {"episode": ""},
    "income.reported": {"gross_eur": -1200.0},
    "employment.status_changed": {"status": "retired"},
    "education.completed": {"level": "kindergarten"},
    "school.support_changed": {"level": "extra"},
    "ecec.started": {"episode": None},
    "ecec.ended": {"episode": 7},
    "health.visit": {"service": "astrology"},
    "care.episode": {"days": -3},
    "child_welfare.client_started": {"episode": ""},
    "child_welfare.client_ended": {"episode": ""},
    "child_welfare.placement_started": {"episode": ["x"]},
    "child_welfare.placement_ended": {"episode": ""},
    "social_service.started": {"service": "lawn_mowing"},
    "social_service.ended": {"service": ""},
}


def _malform(ev: dict, line: str, r: random.Random) -> str:
    """One line that breaks the contract, derived from a valid event."""
    ev = dict(ev)
    ev["event_id"] = "bad-" + _uuid(r)
    kinds = [
        "truncated",
        "garbage",
        "array",
        "missing",
        "check_char",
        "unknown_type",
        "unknown_source",
        "foreign_type",
        "future",
        "before_1900",
        "schema",
        "bad_date",
        "no_zone",
        "long_id",
        "bad_data",
    ]
    if "person" not in ev:
        kinds.remove("check_char")
    if ev["type"] not in BAD_DATA:
        kinds.remove("bad_data")
    kind = kinds[r.randrange(len(kinds))]
    if kind == "truncated":
        text = _dumps(ev)
        return text[: r.randint(1, len(text) - 2)]
    if kind == "garbage":
        return r.choice(
            (
                "<html><body>502 Bad Gateway</body></html>",
                "null",
                "",
                "\x00\x01\x02",
                "event_id=1;source=kela",
                "{'schema': 'register-event/1'}",
            )
        )
    if kind == "array":
        return _dumps([ev])
    if kind == "missing":
        fields = ["schema", "event_id", "source", "type", "occurred_at", "recorded_at", "data"]
        if "person" in ev:
            fields.append("person")
        del ev[r.choice(fields)]
    elif kind == "check_char":
        code = ev["person"]
        from models.hetu import CHECK_CHARS

        wrong = CHECK_CHARS[(CHECK_CHARS.index(code[-1]) + r.randint(1, 30)) % 31]
        ev["person"] = code[:-1] + wrong
    elif kind == "unknown_type":
        ev["type"] = r.choice(
            ("benefit.paused", "family.member_renamed", "visit", "EVENT.RETRACTED")
        )
    elif kind == "unknown_source":
        ev["source"] = r.choice(("vero", "KELA", "police", ""))
    elif kind == "foreign_type":
        others = [s for s in SOURCES if s != ev["source"]]
        ev["source"] = r.choice(others) if ev["type"] != "event.retracted" else "nobody"
    elif kind == "future":
        day = dt.date.fromisoformat(ev["recorded_at"][:10]) + dt.timedelta(days=r.randint(2, 60))
        ev["occurred_at"] = day.isoformat()
    elif kind == "before_1900":
        ev["occurred_at"] = r.choice(("1899-12-31", "1066-10-14", "0001-01-01"))
    elif kind == "schema":
        ev["schema"] = r.choice(
            ("register-event/2", "register-event/0", "Register-Event/1", None, 1)
        )
    elif kind == "bad_date":
        ev["occurred_at"] = r.choice(
            ("2024-02-30", "2024/03/01", "01.03.2024", "2024-13-01", "yesterday")
        )
    elif kind == "no_zone":
        ev["recorded_at"] = ev["recorded_at"][:19]
    elif kind == "long_id":
        ev["event_id"] = r.choice(("", "x" * 129))
    elif kind == "bad_data":
        ev["data"] = {**ev["data"], **BAD_DATA[ev["type"]]}
    return _dumps(ev)


# ---------------------------------------------------------------------------- files and CLI
def open_out(path: str):
    if path.endswith(".gz"):
        raw = open(path, "wb")  # closed with the gzip wrapper (close_out)
        gz = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=5)
        text = io.TextIOWrapper(gz, encoding="utf-8", newline="\n")
        text._raw_file = raw  # keep it alive; closed in close_out
        return text
    return open(path, "w", encoding="utf-8", newline="\n")


def close_out(f) -> None:
    raw = getattr(f, "_raw_file", None)
    f.close()
    if raw is not None:
        raw.close()


def write_lines(path: str, lines: list[str]) -> int:
    f = open_out(path)
    size = 0
    try:
        for i in range(0, len(lines), 20_000):
            chunk = "\n".join(lines[i : i + 20_000]) + "\n"
            size += len(chunk)
            f.write(chunk)
    finally:
        close_out(f)
    return size


def write_truth(path: str, truth: list[dict], columns: Sequence[str] = TRUTH_COLUMNS) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, lineterminator="\n")
        w.writeheader()
        for row in truth:
            w.writerow(row)


def write_shift_truth(path: str, result: Synthetic, seed: int, start, end) -> None:
    doc = {
        "seed": seed,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "shifts": result.shifts,
    }
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        json.dump(doc, f, indent=2, ensure_ascii=False)
        f.write("\n")


def write_services_truth(path: str, doc: dict) -> None:
    """The services truth JSON (:func:`dynamics.service_truth`), one start a line."""
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("{\n")
        for key, value in doc.items():
            if key != "starts":
                f.write(f"  {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)},\n")
        rows = ",\n".join("    " + json.dumps(s, ensure_ascii=False) for s in doc["starts"])
        f.write('  "starts": [\n' + rows + ("\n" if rows else "") + "  ]\n}\n")


def _share(text: str) -> float:
    v = float(text)
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError("must be a share in 0..1")
    return v


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--families",
        type=int,
        default=80_000,
        help="families resident at the start (default 80000)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", required=True, help="JSON Lines output (.gz: gzip)")
    parser.add_argument("--truth", help="planted truth CSV (default <out>.truth.csv)")
    parser.add_argument("--duplicates", type=_share, default=0.0, help="share of events sent again")
    parser.add_argument(
        "--out-of-order", type=_share, default=0.0, help="share of lines moved far from their place"
    )
    parser.add_argument("--retractions", type=_share, default=0.0, help="share of events retracted")
    parser.add_argument(
        "--malformed", type=_share, default=0.0, help="malformed lines added, as a share of events"
    )
    parser.add_argument("--start", type=dt.date.fromisoformat, default=DEFAULT_START)
    parser.add_argument("--end", type=dt.date.fromisoformat, default=DEFAULT_END)
    dyn = parser.add_argument_group("dynamics (all off by default; see docs/synthetic.md)")
    dyn.add_argument(
        "--dynamics",
        action="store_true",
        help="family trajectories (need levels that change) and seasonality",
    )
    dyn.add_argument(
        "--shifts", type=int, default=0, metavar="N", help="plant N area/municipality shifts"
    )
    dyn.add_argument(
        "--population-shift",
        type=float,
        default=None,
        metavar="PP",
        help="move PP percentage points of all families to need level >= 4 over six months",
    )
    dyn.add_argument(
        "--population-shift-onset",
        type=dt.date.fromisoformat,
        default=None,
        metavar="DAY",
        help="onset of --population-shift (default: the middle of the history)",
    )
    dyn.add_argument(
        "--shifts-from",
        type=dt.date.fromisoformat,
        default=None,
        metavar="DAY",
        help="earliest onset of a planted shift (default: 270 days after --start)",
    )
    dyn.add_argument("--shifts-truth", help="shift truth JSON (default <out>.shifts.json)")
    dyn.add_argument(
        "--services",
        action="store_true",
        help="planted service starts (selection on need) with planted effects on latent "
        "need; implies --dynamics",
    )
    dyn.add_argument(
        "--counterfactual",
        nargs="?",
        const=True,
        default=False,
        choices=sorted(D.EFFECTS),
        metavar="SERVICE",
        help="with --services: the same starts and episodes, no effect applied; with "
        "SERVICE, only that service's effects left out (the truth of its own effect): "
        + ", ".join(sorted(D.EFFECTS)),
    )
    dyn.add_argument("--services-truth", help="services truth JSON (default <out>.services.json)")
    dyn.add_argument(
        "--trajectories", help="need-level changes CSV (default <out>.trajectories.csv)"
    )


def run(args: argparse.Namespace, settings=None) -> int:
    t0 = time.perf_counter()
    truth_path = args.truth or args.out + ".truth.csv"
    result = synthesize(
        args.families,
        args.seed,
        duplicates=args.duplicates,
        out_of_order=args.out_of_order,
        retractions=args.retractions,
        malformed=args.malformed,
        start=args.start,
        end=args.end,
        progress=True,
        dynamics=args.dynamics,
        shifts=args.shifts,
        population_shift=args.population_shift,
        population_shift_onset=args.population_shift_onset,
        shifts_from=args.shifts_from,
        services=args.services,
        counterfactual=args.counterfactual,
    )
    size = write_lines(args.out, result.lines)
    if not result.dynamic:
        write_truth(truth_path, result.truth)
    else:
        write_truth(truth_path, result.truth, DYNAMIC_TRUTH_COLUMNS)
        traj_path = args.trajectories or args.out + ".trajectories.csv"
        write_truth(traj_path, result.trajectories, TRAJECTORY_COLUMNS)
        shifts_path = args.shifts_truth or args.out + ".shifts.json"
        write_shift_truth(shifts_path, result, args.seed, args.start, args.end)
        print(
            f"dynamics: {len(result.trajectories)} need-level rows -> {traj_path}; "
            f"{len(result.shifts)} shifts -> {shifts_path}",
            file=sys.stderr,
        )
    if result.services:
        services_path = args.services_truth or args.out + ".services.json"
        write_services_truth(services_path, result.services)
        starts = result.services["starts"]
        applied = sum(1 for s in starts if s["applied"])
        world = (
            "factual"
            if not args.counterfactual
            else "counterfactual (no effect applied)"
            if args.counterfactual is True
            else f"counterfactual ({args.counterfactual}'s effects not applied)"
        )
        print(
            f"services: {len(starts)} planted starts, {applied} with an effect drawn, "
            f"{world} -> {services_path}",
            file=sys.stderr,
        )
    took = time.perf_counter() - t0
    high = sum(1 for t in result.truth if t["need_level"] >= 4) / max(1, len(result.truth))
    top = sum(1 for t in result.truth if t["need_level"] >= 9) / max(1, len(result.truth))
    knobs = ", ".join(f"{k} {v}" for k, v in result.counts.items() if k not in ("valid", "lines"))
    print(
        f"wrote {result.counts['lines']} lines ({result.counts['valid']} events; {knobs}) "
        f"{size / 1e6:.0f} MB uncompressed to {args.out}",
        file=sys.stderr,
    )
    print(
        f"truth: {len(result.truth)} families, {high:.1%} at need level >= 4, {top:.1%} at 9-10 -> "
        f"{truth_path}; {took:.1f} s",
        file=sys.stderr,
    )
    return 0
