"""Per-event cost over a long history, and the state it leaves per family.

In-process (:class:`models.picture.Pipeline`: the worker's pure steps, with the feature
profile on as the worker has it by default and the in-memory history), one synthetic
history of ``--years`` years in file order, processed in batches of 100 events.

The figure that says whether cost grows with the history is the ratio of the last
eighth's events/s to the first eighth's. Timed one after the other, the two eighths
fall minutes apart, and on a shared machine its speed drifts more than that: the same
code gave single-run ratios from 0.55 to 1.07 (bench/README.md, session 13). So the
two are timed **interleaved**, in two processes forked from one parent: one holds a
fresh pipeline and runs the first eighth, the other holds the pipeline after seven
eighths and runs the last; they take turns, a batch each, so whatever the machine does
falls on both alike. Each process has its own heap and garbage collector, so each
eighth pays for its own state's memory and collections, nothing of the other's. The
event list both inherit is frozen out of the collector (``gc.freeze``) before the fork:
the bench's input is not the system's state (a worker holds a batch, not the history).
The collector runs as in the worker and the demo (:func:`tilannekuva.config.tune_gc`).

Full (generation 2) collections are timed apart (``gc.callbacks``) and the ratio is
printed without them too: one walks the whole heap, so it costs more the longer the
history, and comes after a quarter more long-lived objects, so per event it costs the
same on average; but one lands in an eighth or not. ``--store json`` keeps the states
as the worker's RocksDB store does (JSON bytes, decoded on read, encoded on write);
``--compact`` copies the grown states into fresh objects before the last eighth (a
diagnostic of memory locality, nothing the system does).

``--types``: family types on in full, as the worker has them by default: each refresh
also makes the vectors of its families and assigns their types and groups at once
(:func:`models.family_types.family_assignments`, as the worker's writer does), with a
model learned beforehand on the families of the whole stream (untimed). The learner's
own steps (its micro-batches, snapshots and their re-assignments) are not in it; without
``--types`` the bench times the person, family and history steps with the feature profile
only.

Also printed: events/s for each eighth as the second process builds its state (one
after the other, so with the drift: the shape, not the bar), and the bytes of person and
family state per family (JSON, as the worker's changelogs hold it) after half the years
and at the end, with the factor between them.

    python bench/bench_history.py [--families 600] [--seed 3] [--years 6] [--rounds 3]
        [--store objects|json] [--compact] [--types] [--json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import gc
import json
import multiprocessing as mp
import pickle
import statistics
import sys
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.contract import validate  # noqa: E402
from models.family_types import FamilyTypes, TypeAssigner, family_assignments  # noqa: E402
from models.features import state_vector  # noqa: E402
from models.picture import Pipeline  # noqa: E402
from models.profile import state_profile  # noqa: E402
from models.pseudonym import Pseudonymiser  # noqa: E402
from tilannekuva.config import tune_gc  # noqa: E402
from tilannekuva.synthetic import DEFAULT_END, generate  # noqa: E402

BATCH = 100


class StoredStates(dict):
    """States kept as the worker's RocksDB store keeps them: JSON bytes, decoded on every
    read and encoded on every write (``--store json``)."""

    def get(self, key, default=None):
        raw = dict.get(self, key)
        return default if raw is None else orjson.loads(raw)

    def __getitem__(self, key):
        return orjson.loads(dict.__getitem__(self, key))

    def __setitem__(self, key, state) -> None:
        dict.__setitem__(self, key, orjson.dumps(state))

    def values(self):
        return [orjson.loads(raw) for raw in dict.values(self)]


def new_pipeline(store: str, assigner: TypeAssigner | None = None) -> Pipeline:
    assign = None if assigner is None else functools.partial(family_assignments, assigner=assigner)
    pipe = Pipeline(profile=state_profile, assign_many=assign)
    if store == "json":
        pipe.persons, pipe.families = StoredStates(), StoredStates()
    return pipe


def state_bytes(pipe: Pipeline) -> dict[str, float]:
    """Bytes of JSON per family: person states, family states; and the microseconds a
    person state takes to decode and to encode (orjson, the collector off: what the
    RocksDB store adds to each read and write of a person, whatever the step does)."""
    fams = max(len(pipe.families), 1)
    blobs = [orjson.dumps(s) for s in pipe.persons.values()]
    persons = sum(map(len, blobs))
    families = sum(len(orjson.dumps(s)) for s in pipe.families.values())
    gc.disable()
    try:
        t0 = time.perf_counter()
        states = [orjson.loads(b) for b in blobs]
        t1 = time.perf_counter()
        for state in states:
            orjson.dumps(state)
        t2 = time.perf_counter()
    finally:
        gc.enable()
    return {
        "families": len(pipe.families),
        "person_bytes_per_family": persons / fams,
        "family_bytes_per_family": families / fams,
        "total_bytes_per_family": (persons + families) / fams,
        "person_decode_us": 1e6 * (t1 - t0) / max(len(blobs), 1),
        "person_encode_us": 1e6 * (t2 - t1) / max(len(blobs), 1),
    }


def batches(events: list[dict]) -> list[list[dict]]:
    return [events[i : i + BATCH] for i in range(0, len(events), BATCH)]


def learned_assigner(events: list[dict]) -> TypeAssigner:
    """Family types learned on the counted families at the end of ``events`` (``--types``:
    what is timed is assigning with a model, not learning it)."""
    pipe = Pipeline(profile=state_profile, history=None)
    for batch in batches(events):
        pipe.process_many(batch)
    vectors = [state_vector(pipe.families[fam]) for fam in pipe.contributions]
    model = FamilyTypes(warmup=0)
    model.learn_many([v for v in vectors if v is not None])
    return TypeAssigner.from_snapshot(model.snapshot())


def build(
    eighths: list[list[dict]],
    middle: str,
    store: str = "objects",
    assigner: TypeAssigner | None = None,
) -> tuple[Pipeline, list[float], dict | None]:
    """The pipeline after ``eighths`` (one after the other, each timed; the state's
    bytes, untimed, on reaching ``middle``)."""
    pipe = new_pipeline(store, assigner)
    rates, at_middle = [], None
    for chunk in eighths:
        elapsed = 0.0
        for batch in batches(chunk):
            if at_middle is None and batch[-1]["occurred_at"] >= middle:
                at_middle = state_bytes(pipe)
            t0 = time.perf_counter()
            pipe.process_many(batch)
            elapsed += time.perf_counter() - t0
        rates.append(len(chunk) / elapsed)
    return pipe, rates, at_middle


class FullCollections:
    """Seconds the garbage collector spent in full (generation 2) collections, from
    ``gc.callbacks``: their cost grows with the heap and their spacing too (one per 25 %
    growth of the long-lived objects), so per event they cost the same on average, but
    one lands in an eighth or not."""

    def __init__(self) -> None:
        self.seconds, self._t0 = 0.0, 0.0
        gc.callbacks.append(self)

    def __call__(self, phase: str, info: dict) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._t0 = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._t0


def turn_taker(conn, pipe_factory, events: list[dict]) -> None:
    """A child process: make its pipeline, then time one batch of ``events`` each time
    it is told to, answering with the seconds it took and those of them in full
    collections (None once the events run out); told to stop, it answers with its
    state's bytes."""
    pipe, extra = pipe_factory()
    conn.send(extra)
    full = FullCollections()
    todo = iter(batches(events))
    while conn.recv():
        batch = next(todo, None)
        if batch is None:
            conn.send(None)
            continue
        g0 = full.seconds
        t0 = time.perf_counter()
        pipe.process_many(batch)
        conn.send((len(batch), time.perf_counter() - t0, full.seconds - g0))
    conn.send(state_bytes(pipe))
    conn.close()


class Fresh:
    def __init__(self, store: str, assigner: TypeAssigner | None = None):
        self.store, self.assigner = store, assigner

    def __call__(self):
        return new_pipeline(self.store, self.assigner), None


class Grown:
    """The pipeline after seven eighths; with ``compact``, its person and family states
    then copied into fresh objects (a diagnostic: how much of the last eighth's cost is
    where its rows lie in memory)."""

    def __init__(
        self,
        eighths: list[list[dict]],
        middle: str,
        store: str,
        compact: bool,
        assigner: TypeAssigner | None = None,
    ):
        self.eighths, self.middle, self.store, self.compact = eighths, middle, store, compact
        self.assigner = assigner

    def __call__(self):
        pipe, rates, at_middle = build(self.eighths, self.middle, self.store, self.assigner)
        if self.compact:
            pipe.persons = pickle.loads(pickle.dumps(pipe.persons))
            pipe.families = pickle.loads(pickle.dumps(pipe.families))
        return pipe, {"rates": rates, "at_middle": at_middle}


def interleaved(
    first: list[dict], fresh: Fresh, grown: Grown, last: list[dict]
) -> tuple[float, float, dict]:
    """events/s of ``first`` on a fresh pipeline and of ``last`` on ``grown``'s, timed
    in turns (see the module's docstring); and what ``grown`` said of its build, with
    its state at the end (``at_end``)."""
    ctx = mp.get_context("fork")
    ends = {}
    procs = []
    for name, factory, events in (("first", fresh, first), ("last", grown, last)):
        parent, child = ctx.Pipe()
        p = ctx.Process(target=turn_taker, args=(child, factory, events), daemon=True)
        p.start()
        procs.append(p)
        ends[name] = parent
    info = {name: conn.recv() for name, conn in ends.items()}  # both are ready
    totals = {name: [0, 0.0, 0.0] for name in ends}
    done: set[str] = set()
    while len(done) < len(ends):
        for name, conn in ends.items():
            if name in done:
                continue
            conn.send(True)
            answer = conn.recv()
            if answer is None:
                done.add(name)
                continue
            for i, x in enumerate(answer):
                totals[name][i] += x
    for conn in ends.values():
        conn.send(False)
    info["last"]["at_end"] = ends["last"].recv()
    ends["first"].recv()
    for p in procs:
        p.join()
    info["last"]["gc"] = {name: t[2] for name, t in totals.items()}
    info["last"]["without_gc"] = {name: n / (secs - g) for name, (n, secs, g) in totals.items()}
    rate = {name: n / secs for name, (n, secs, _) in totals.items()}
    return rate["first"], rate["last"], info["last"]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", type=int, default=600)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--years", type=int, default=6)
    ap.add_argument(
        "--rounds", type=int, default=3, help="interleaved timings of first against last (≥ 1)"
    )
    ap.add_argument(
        "--store",
        choices=("objects", "json"),
        default="objects",
        help="states as Python objects (the in-memory tables) or as JSON bytes (RocksDB)",
    )
    ap.add_argument(
        "--compact",
        action="store_true",
        help="diagnostic: copy the grown states into fresh objects before the last eighth",
    )
    ap.add_argument(
        "--types",
        action="store_true",
        help="family types on in full: vectors and type assignment in every refresh",
    )
    ap.add_argument("--json", action="store_true", help="print the figures as JSON only")
    args = ap.parse_args(argv)

    start = DEFAULT_END.replace(year=DEFAULT_END.year - args.years) + dt.timedelta(days=1)
    pseudo = Pseudonymiser(b"bench-key-0123456789abcdef")
    events = [
        pseudo.event(validate(e))
        for e in generate(args.families, args.seed, start=start)
        if isinstance(e, dict)
    ]
    assigner = learned_assigner(events) if args.types else None
    tune_gc()  # as the worker runs the steps; the children inherit it
    gc.collect()
    gc.freeze()  # the input, inherited by the children, is no state of theirs
    middle = start.replace(year=start.year + args.years // 2).isoformat()
    n = len(events)
    eighths = [events[part * n // 8 : (part + 1) * n // 8] for part in range(8)]
    rounds = []
    for _ in range(max(args.rounds, 1)):
        f, l_, built = interleaved(
            eighths[0],
            Fresh(args.store, assigner),
            Grown(eighths[:7], middle, args.store, args.compact, assigner),
            eighths[7],
        )
        wo = built["without_gc"]
        rounds.append(
            {
                "first": f,
                "last": l_,
                "ratio": l_ / f,
                "full_gc_s_first": built["gc"]["first"],
                "full_gc_s_last": built["gc"]["last"],
                "ratio_without_full_gc": wo["last"] / wo["first"],
            }
        )
    ratios = [r["ratio"] for r in rounds]
    at_middle = built["at_middle"]
    out = {
        "events": n,
        "start": start.isoformat(),
        "store": args.store,
        "compact": args.compact,
        "types": args.types,
        "events_per_s_by_eighth_while_building": [round(x) for x in built["rates"]],
        "interleaved": [{k: round(v, 3) for k, v in r.items()} for r in rounds],
        "last_over_first": round(statistics.median(ratios), 3),
        "state_at_middle": at_middle,
        "state_at_end": built["at_end"],
    }
    at_end = built["at_end"]
    out["state_growth"] = (
        round(at_end["total_bytes_per_family"] / at_middle["total_bytes_per_family"], 3)
        if at_middle
        else None
    )
    if args.json:
        print(json.dumps(out))
    else:
        print(
            f"{n} events, {out['start']} … {DEFAULT_END.isoformat()}, "
            + ("family types on (vectors, assignment)" if args.types else "feature profile on")
            + f", states as {args.store}"
            + (", compacted before the last eighth" if args.compact else "")
        )
        print(
            "events/s of eighths 1-7, one after the other:",
            " → ".join(f"{x:,}" for x in out["events_per_s_by_eighth_while_building"]),
        )
        for r in rounds:
            print(
                f"interleaved: first eighth {r['first']:,.0f}/s, "
                f"last eighth {r['last']:,.0f}/s, last / first {r['ratio']:.3f} "
                f"(full collections {r['full_gc_s_first']:.2f} s and "
                f"{r['full_gc_s_last']:.2f} s; without them {r['ratio_without_full_gc']:.3f})"
            )
        print(f"last eighth / first eighth (median of {len(rounds)}): {out['last_over_first']}")
        for label, s in (("after half the years", at_middle), ("at the end", at_end)):
            if s:
                print(
                    f"state {label}: {s['families']} families, "
                    f"{s['person_bytes_per_family']:,.0f} B person + "
                    f"{s['family_bytes_per_family']:,.0f} B family = "
                    f"{s['total_bytes_per_family']:,.0f} B per family; a person state "
                    f"decodes in {s['person_decode_us']:.0f} µs, encodes in "
                    f"{s['person_encode_us']:.0f} µs"
                )
        print(f"growth of state per family: {out['state_growth']}")
    return out


if __name__ == "__main__":
    main()
