"""What subtracting two months' impact answers says about one family (issue 16).

Reads the panels that ``tilannekuva evaluate-impact --panels FILE`` kept and, for each
month, publishes what the API would have answered then (the world's panel cut at that
month: only the months, outcomes and starts known by its end; ``models.impact.published``
for all six, each municipality and each area). Then it looks at every pair of
consecutive months where a scope's entries at ``--months`` grew by one to four
families and the figure was published both times, and guesses from the direction of
its change whether the new entry moved to a lower group (one entry) or whether all or
none of them did. Beside it, the guess that needs no answer: "did not move lower".

    python bench/impact_differencing.py --panels FILE [--service family_work]
        [--months 6] [--figure naive|effect] [--exact]
    python bench/impact_differencing.py --panels FILE --deviation

Measured in docs/impact.md ("Over time"). The figure is read before the rule that an
area's answer has no naive (``published(..., naive=True)`` here), to show why.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.impact import (  # noqa: E402
    HORIZONS,
    REPORTED,
    SERVICES,
    Panel,
    cohort_counts,
    estimate,
    published,
    record_keys,
)


def cut(panel: Panel, t: int) -> Panel:
    """The panel as known at the end of month ``t``."""
    starts = {s: [[c for c in ms if c <= t] for ms in v] for s, v in panel.starts.items()}
    area = None if panel.area is None else panel.area[:, : t + 1]
    return replace(
        panel,
        groups=panel.groups[:, : t + 1],
        municipality=panel.municipality[:, : t + 1],
        starts=starts,
        scores=None,
        area=area,
    )


def monthly(panel: Panel, service: str, k: int, figure: str, min_cell: int) -> dict:
    """``{scope: [(month, entries, moved lower, figure shown)]}`` over the months."""
    munis = sorted(int(m) for m in np.unique(panel.municipality) if m >= 0)
    areas = [] if panel.area is None else sorted(int(a) for a in np.unique(panel.area) if a > 0)
    out: dict[str, list] = {}
    for t in range(12, panel.groups.shape[1]):
        counts = cohort_counts(cut(panel, t), service, HORIZONS)
        scopes = [("all", counts.cells())]
        scopes += [(f"m{m}", counts.cells([m])) for m in munis]
        scopes += [(f"a{a}", counts.cells(area=a)) for a in areas]
        for name, cells in scopes:
            if k not in cells.n_t or not len(cells.n_t[k]):
                continue
            n, y = int(cells.n_t[k].sum()), int(cells.y_t[k, "lower"].sum())
            row = next(r for r in published(cells, min_cell)["estimates"] if r["months"] == k)
            out.setdefault(name, []).append((t, n, y, row[figure]))
    return out


def deviation(panel: Panel, min_cell: int) -> list[float]:
    """|published − exact| naive before/after of every service, for all six and each
    municipality, at 3, 6 and 12 months, where it is published: the cell keys' cost."""
    munis = sorted(int(m) for m in np.unique(panel.municipality) if m >= 0)
    out = []
    for service in SERVICES:
        counts = cohort_counts(panel, service, HORIZONS)
        for only in [None, *([m] for m in munis)]:
            cells = counts.cells(only)
            shown = {r["months"]: r["naive"] for r in published(cells, min_cell)["estimates"]}
            for k in REPORTED:
                if shown.get(k) is not None:
                    out.append(abs(shown[k] - estimate(cells, k).naive))
    return out


def differences(rows_by_scope: dict) -> dict:
    """Per (scope kind, new entries): pairs, reads right, moved lower, unchanged."""
    by: dict[tuple[str, int], dict[str, int]] = {}
    for name, rows in rows_by_scope.items():
        for (t0, n0, y0, v0), (t1, n1, y1, v1) in zip(rows, rows[1:], strict=False):
            dn, dy = n1 - n0, y1 - y0
            if t1 != t0 + 1 or not 1 <= dn <= 4 or v0 is None or v1 is None:
                continue
            kind = {"a": "area", "m": "municipality"}.get(name[0], "all")
            b = by.setdefault(
                (kind, dn), dict.fromkeys(("pairs", "right", "moved", "same", "uniform"), 0)
            )
            b["pairs"] += 1
            b["same"] += int(v1 == v0)
            guess = None if v1 == v0 else v1 > v0  # a new 1 raises the mean, a new 0 lowers it
            if dn == 1:
                b["moved"] += int(dy == 1)
                b["right"] += int(guess is not None and guess == (dy == 1))
            elif dy in (0, dn):  # all or none of them moved
                b["uniform"] += 1
                b["right"] += int(guess is not None and guess == (dy == dn))
    return by


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--panels", required=True, help="evaluate-impact --panels FILE")
    p.add_argument("--service", default="family_work")
    p.add_argument("--months", type=int, default=6, help="the horizon (default 6)")
    p.add_argument("--figure", choices=("naive", "effect"), default="naive")
    p.add_argument("--min-cell", type=int, default=5)
    p.add_argument(
        "--deviation",
        action="store_true",
        help="instead: how far the published naive is from the exact one (every service)",
    )
    p.add_argument(
        "--exact", action="store_true", help="the naive from exact counts (before cell keys)"
    )
    args = p.parse_args(argv)
    with open(args.panels, "rb") as f:
        panel, fams, _ = pickle.load(f)["world"]  # our own file (tilannekuva/impact_eval.py)
    # The record keys follow the pseudonyms (panels kept before them have none); without
    # them the naive is published from exact counts, as before the cell keys.
    panel = replace(panel, replicate=None, record=None if args.exact else record_keys(fams))
    t0 = time.perf_counter()
    if args.deviation:
        d = np.array(deviation(panel, args.min_cell))
        print(
            f"published naive against the exact one, {len(d)} figures: median "
            f"{np.median(d):.4f}, 90th percentile {np.quantile(d, 0.9):.4f}, largest {d.max():.4f}"
        )
        return 0
    rows = monthly(panel, args.service, args.months, args.figure, args.min_cell)
    print(
        f"{args.service}, {args.figure} at {args.months} months ({time.perf_counter() - t0:.0f} s)"
    )
    for (kind, dn), b in sorted(differences(rows).items()):
        what = "its outcome" if dn == 1 else f"of {b['uniform']} where all or none moved, that"
        extra = f", it moved lower in {b['moved']}" if dn == 1 else ""
        print(
            f"  {kind}, +{dn} entries: {b['pairs']} month pairs, {what} read right in "
            f"{b['right']}{extra}, figure unchanged in {b['same']}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
