"""How far the published service-need groups follow a population-wide rise in need
(issue 15), and what bounds them.

    OPENBLAS_NUM_THREADS=1 python bench/groups_follow.py --families 5000 --seed 1 \\
        [--population-shift 5] [--start 2021-07-01] [--every 30] [--json] \\
        [--grouping own|type] [--alerts-world]

Generates a dynamic history (``synthesize(dynamics=True)``, optionally with the planted
population-wide rise of ``tilannekuva evaluate-alerts --population-shift``, same onset:
770 days after ``--start`` plus 30), replays it through the worker's steps and learner
(:class:`tilannekuva.replay.Replay`, as the backtest does) and, every ``--every`` days
from the onset on, prints the share of the counted families in groups 4–10 (and 9–10)

* ``published``: as the picture counts them (each family the group the newest snapshot
  gives it: its type's group, or the split of a boundary type);
* ``own``: each family's own need score against the frozen baseline cuts (no types);
* ``baseline_types``: the types and groups of the snapshot that froze the baseline.

and the snapshots after the freeze whose types changed group (``moved``: type id → old
and new group; with ``--grouping type`` each such type takes all its families along).
``--grouping`` is the learner's (:class:`models.family_types.FamilyTypes`; default its
default, ``own``). ``--alerts-world`` streams the world of ``tilannekuva evaluate-alerts
--families N --seed S [--population-shift PP]`` instead (its 30 planted area shifts and
its pseudonym key, from the default start): the same groups as its ``groups`` report.

A start five years before the default end lets the two-year feature window take in the
whole rise (the ramp ends 952 days after the start).

    python bench/groups_follow.py --ceiling [--families 4000] [--seed 7]

fits and replays nothing: on the final family vectors of a static world it prints, per
planted need level, the families' mean need score and the share whose own score is in
groups 4–10 and 9–10 under the fixed cuts: how much of a move in latent need the
registers can show at all (docs/alerts.md, "A population-wide rise").
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from models.contract import validate
from models.family_types import TypeAssigner
from models.features import state_vector
from models.picture import written_with
from models.pseudonym import Pseudonymiser
from models.service_need import ServiceNeedRule
from tilannekuva.alerts import default_learner
from tilannekuva.evaluate_alerts import SHIFTS_AFTER_DAYS
from tilannekuva.replay import Replay
from tilannekuva.synthetic import DEFAULT_START, synthesize


class Follow(Replay):
    """The replay, keeping the assigner of the snapshot that froze the baseline and the
    types that changed group at each later snapshot."""

    def __init__(self, grouping: str | None = None, **kw):
        learner = default_learner()
        if grouping is not None:
            learner.model_params["grouping"] = grouping
        super().__init__(learner, **kw)
        self.baseline: TypeAssigner | None = None
        self.frozen_on: str | None = None
        self.moves: list[dict] = []

    def _learn(self, w: int) -> None:
        before = self.assigner
        super()._learn(w)
        # the calibration is set only by the snapshot that freezes it, which is also the
        # one the replay has just taken up
        if self.baseline is None and self.state and self.state.model.calibration is not None:
            self.baseline, self.frozen_on = self.assigner, self.pipe.watermark
        elif self.baseline is not None and self.assigner is not before and before is not None:
            old = dict(zip(before.type_ids.tolist(), before.groups.tolist(), strict=True))
            assert self.assigner is not None
            moved = {
                t: [old[t], g]
                for t, g in zip(
                    self.assigner.type_ids.tolist(), self.assigner.groups.tolist(), strict=True
                )
                if t in old and old[t] != g
            }
            if moved:
                self.moves.append({"day": self.pipe.watermark, "moved": moved})

    def shares(self) -> dict:
        """Groups 4–10 and 9–10 of the counted families, three ways (module doc)."""
        assert self.assigner is not None and self.baseline is not None and self.state
        vectors, published = [], []
        for fam, contrib in self.pipe.contributions.items():
            vec = self._vector(self.pipe.families[fam])  # the replay's, computed once
            if vec is None:
                continue
            vectors.append(vec)
            published.append(written_with(contrib)[0] or 0)
        rule = self.state.model.rule
        assert rule is not None
        own = rule.need_scores(self.assigner.to_matrix(vectors), self.assigner.features)
        groups = {
            "published": np.asarray(published),
            "own": np.asarray([rule.group_of_score(s) for s in own]),
            "baseline_types": self.baseline.assign_many(vectors)[1],
        }
        out: dict = {"day": self.pipe.watermark, "families": len(vectors)}
        for name, g in groups.items():
            out[name] = [
                round(100 * float((g >= 4).mean()), 2),
                round(100 * float((g >= 9).mean()), 2),
            ]
        return out


def follow(
    families: int,
    seed: int,
    pp: float | None,
    start: dt.date,
    every: int,
    grouping: str | None = None,
    alerts_world: bool = False,
):
    shifts_from = start + dt.timedelta(days=SHIFTS_AFTER_DAYS)
    onset = shifts_from + dt.timedelta(days=30)
    key = f"evaluate-alerts-{seed}" if alerts_world else f"bench-groups-follow-{seed}"
    pseudo = Pseudonymiser(key.encode())
    synth = synthesize(
        families,
        seed,
        start=start,
        dynamics=True,
        shifts=30 if alerts_world else 0,
        shifts_from=shifts_from if alerts_world else None,
        population_shift=pp or None,
        population_shift_onset=onset if pp else None,
    )
    planted = next((r["planted"]["g4-g10"] for r in synth.shifts if r["scope_type"] == "all"), 0)
    days = {(onset + dt.timedelta(days=d)).isoformat() for d in range(0, 4000, every)}
    rows: list[dict] = []

    def tick(day: str, picture: dict) -> None:
        if day in days and replay.baseline is not None:
            rows.append(replay.shares())
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)

    replay = Follow(grouping=grouping, on_tick=tick)
    replay.feed(pseudo.event(validate(line)) for line in synth.lines)
    return {
        "onset": onset.isoformat(),
        "planted_pp": planted,
        "grouping": replay.state.model.grouping if replay.state else grouping,
        "frozen_on": replay.frozen_on,
        "rows": rows,
        "moves": replay.moves,
    }


def ceiling(families: int, seed: int) -> dict:
    from tilannekuva.evaluate import final_states

    synth = synthesize(families, seed)
    truth = {r["family"]: r["need_level"] for r in synth.truth}
    states, _ = final_states(e for e in synth.events() if isinstance(e, dict))
    rule, by_level = ServiceNeedRule(), {}
    for fam, state in states.items():
        vec = state_vector(state) if fam in truth else None
        if vec is not None:
            by_level.setdefault(truth[fam], []).append(rule.need_score(vec))
    n = sum(len(v) for v in by_level.values())
    out = {}
    for level, scores in sorted(by_level.items()):
        groups = np.asarray([rule.group_of_score(x) for x in scores])
        out[str(level)] = {
            "share": round(len(scores) / n, 3),
            "mean_score": round(float(np.mean(scores)), 2),
            "groups_4_10": round(float(np.mean(groups >= 4)), 3),
            "groups_9_10": round(float(np.mean(groups >= 9)), 3),
        }
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--families", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--population-shift", type=float, default=None, metavar="PP")
    ap.add_argument("--start", type=dt.date.fromisoformat, default=DEFAULT_START)
    ap.add_argument("--every", type=int, default=30, help="days between rows (default 30)")
    ap.add_argument("--ceiling", action="store_true", help="the registers' bound (module doc)")
    ap.add_argument("--grouping", choices=("own", "type"), default=None)
    ap.add_argument("--alerts-world", action="store_true", help="evaluate-alerts' world")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.ceiling:
        report = ceiling(args.families, args.seed)
    else:
        report = follow(
            args.families,
            args.seed,
            args.population_shift,
            args.start,
            args.every,
            args.grouping,
            args.alerts_world,
        )
    print(json.dumps(report, indent=None if args.json else 1))
    return report


if __name__ == "__main__":
    main()
