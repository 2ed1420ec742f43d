"""Per-event cost over a long history, and the state it leaves per family.

In-process (:class:`models.picture.Pipeline`: the worker's pure steps, with the feature
profile on as the worker has it by default and the in-memory history), one synthetic
history of ``--years`` years in file order. Prints events/s for each eighth of the
stream and the ratio of the last eighth to the first (the baseline, same run: the cost
must not grow with the length of the history), and the bytes of person and family state
per family (JSON, as the worker's changelogs hold it) after half the years and at the
end, with the factor between them.

    python bench/bench_history.py [--families 600] [--seed 3] [--years 6]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.contract import validate  # noqa: E402
from models.picture import Pipeline  # noqa: E402
from models.profile import state_profile  # noqa: E402
from models.pseudonym import Pseudonymiser  # noqa: E402
from tilannekuva.synthetic import DEFAULT_END, generate  # noqa: E402

BATCH = 100


def state_bytes(pipe: Pipeline) -> dict[str, float]:
    """Bytes of JSON per family: person states, family states."""
    fams = max(len(pipe.families), 1)
    persons = sum(len(json.dumps(s, separators=(",", ":"))) for s in pipe.persons.values())
    families = sum(len(json.dumps(s, separators=(",", ":"))) for s in pipe.families.values())
    return {
        "families": len(pipe.families),
        "person_bytes_per_family": persons / fams,
        "family_bytes_per_family": families / fams,
        "total_bytes_per_family": (persons + families) / fams,
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", type=int, default=600)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--years", type=int, default=6)
    ap.add_argument("--json", action="store_true", help="print the figures as JSON only")
    args = ap.parse_args(argv)

    start = DEFAULT_END.replace(year=DEFAULT_END.year - args.years) + dt.timedelta(days=1)
    pseudo = Pseudonymiser(b"bench-key-0123456789abcdef")
    events = [
        pseudo.event(validate(e))
        for e in generate(args.families, args.seed, start=start)
        if isinstance(e, dict)
    ]
    middle = start.replace(year=start.year + args.years // 2).isoformat()
    pipe = Pipeline(profile=state_profile)
    n = len(events)
    eighths, at_middle = [], None
    for part in range(8):
        chunk = events[part * n // 8 : (part + 1) * n // 8]
        t0 = time.perf_counter()
        for i in range(0, len(chunk), BATCH):
            batch = chunk[i : i + BATCH]
            if at_middle is None and batch[-1]["occurred_at"] >= middle:
                elapsed = time.perf_counter() - t0
                at_middle = state_bytes(pipe)  # not timed
                t0 = time.perf_counter() - elapsed
            pipe.process_many(batch)
        eighths.append(len(chunk) / (time.perf_counter() - t0))
    at_end = state_bytes(pipe)
    out = {
        "events": n,
        "start": start.isoformat(),
        "end": pipe.watermark,
        "events_per_s_by_eighth": [round(x) for x in eighths],
        "last_over_first": round(eighths[-1] / eighths[0], 3),
        "state_at_middle": at_middle,
        "state_at_end": at_end,
        "state_growth": round(
            at_end["total_bytes_per_family"] / at_middle["total_bytes_per_family"], 3
        )
        if at_middle
        else None,
    }
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{n} events, {out['start']} … {out['end']}, feature profile on")
        print("events/s by eighth:", " → ".join(f"{x:,}" for x in out["events_per_s_by_eighth"]))
        print(f"last eighth / first eighth: {out['last_over_first']}")
        for label, s in (("after half the years", at_middle), ("at the end", at_end)):
            if s:
                print(
                    f"state {label}: {s['families']} families, "
                    f"{s['person_bytes_per_family']:,.0f} B person + "
                    f"{s['family_bytes_per_family']:,.0f} B family = "
                    f"{s['total_bytes_per_family']:,.0f} B per family"
                )
        print(f"growth of state per family, end / middle: {out['state_growth']}")
    return out


if __name__ == "__main__":
    main()
