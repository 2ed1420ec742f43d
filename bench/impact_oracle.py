"""How much of the impact estimate's bias is what the matching cannot see (issue 16).

Reads the panels that ``tilannekuva evaluate-impact --panels FILE`` kept, regenerates
the same world's truth (its need-level trajectories), and estimates each service's
effect twice on the world's panel, with the later-treated comparison of
``models.impact``: matched as published (municipality, outcome group at ``c − 1`` and
``c − 1 − LAG``), and matched also on the family's *latent* need level at the end of
month ``c − 1``, which the generator knows and no register has (the oracle). Beside
each, the planted effect (the world less the service's twin).

    python bench/impact_oracle.py --families 20000 --seed 6 --panels FILE

If the oracle's estimates sit on the planted effects where the published ones do not,
the bias left is selection on need the registers measure with noise
(``docs/impact.md``, "Measured").
"""

from __future__ import annotations

import argparse
import bisect
import datetime as dt
import pickle
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.impact import SERVICES, Alike, Panel, cohort_cells, estimate, month_of  # noqa: E402
from models.pseudonym import Pseudonymiser  # noqa: E402
from tilannekuva.impact_eval import _KEY, REPORTED, truth  # noqa: E402
from tilannekuva.synthetic import synthesize  # noqa: E402


def latent_levels(families: list[str], months: int, first: int, synth) -> np.ndarray:
    """``[rows, months]``: each panel row's planted need level at each month's end (0:
    not a family of the truth)."""
    pseudo = Pseudonymiser(_KEY)
    row_of = {f: i for i, f in enumerate(families)}
    changes: dict[str, list[tuple[str, int]]] = {}
    for r in synth.trajectories:
        changes.setdefault(r["family"], []).append((r["day"], int(r["need_level"])))
    ends = []
    for m in range(months):
        y, mo = divmod(first + m + 1, 12)
        ends.append((dt.date(y, mo + 1, 1) - dt.timedelta(days=1)).isoformat())
    out = np.zeros((len(families), months), dtype=np.int8)
    for t in synth.truth:
        row = row_of.get(pseudo.family(t["family"]))
        if row is None:
            continue
        ch = sorted(changes.get(t["family"], []))
        days, levels = [d for d, _ in ch], [v for _, v in ch]
        for m, end in enumerate(ends):
            i = bisect.bisect_right(days, end) - 1
            out[row, m] = levels[i] if i >= 0 else int(t["need_level"])
    return out


class Oracle(Alike):
    """:class:`models.impact.Alike` and the latent need level at the end of ``c − 1``."""

    def __init__(self, latent: np.ndarray):
        super().__init__()
        self.latent = latent

    def __call__(self, panel: Panel, c: int) -> tuple[np.ndarray, np.ndarray]:
        key, ok = super().__call__(panel, c)
        level = self.latent[:, c - 1].astype(np.int64)
        return key * 11 + level, ok & (level > 0)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", type=int, required=True)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--panels", required=True, help="evaluate-impact's --panels file")
    args = ap.parse_args(argv)
    with open(args.panels, "rb") as f:
        worlds = pickle.load(f)  # written by evaluate-impact
    world = worlds.pop("world")
    panel, families, entries = world
    synth = synthesize(args.families, seed=args.seed, services=True)
    day = {(s["service"], s["episode"]): s["start"] for s in synth.services["starts"]}
    firsts = {month_of(day[k]) - col for k, (_, col) in entries.items() if k in day}
    if len(firsts) != 1:  # a start's month is the panel's first month plus its column
        raise SystemExit(f"these panels are not of --families {args.families} --seed {args.seed}")
    (first,) = firsts
    latent = latent_levels(families, panel.groups.shape[1], first, synth)
    planted = truth(world, worlds, REPORTED)
    print(f"{'service':28} {'k':>3} {'planted':>8} {'published':>10} {'oracle':>8}")
    for service in SERVICES:
        published = cohort_cells(panel, service, REPORTED)
        oracle = cohort_cells(panel, service, REPORTED, alike=Oracle(latent))
        for k in REPORTED:
            a, b = estimate(published, k), estimate(oracle, k)
            p = planted[service][str(k)]["effect"]
            cells = [p, a.effect, b.effect]
            txt = ["—" if v is None else f"{v:+.3f}" for v in cells]
            print(f"{service:28} {k:>3} {txt[0]:>8} {txt[1]:>10} {txt[2]:>8}")


if __name__ == "__main__":
    main()
