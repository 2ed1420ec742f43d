"""The replay's learner (tilannekuva/replay.py): the groups' baseline counts from the day
the registers went live, not from a watermark of the initial load."""

from __future__ import annotations

import json

from models.contract import validate
from models.learning import Learner
from models.picture import day
from models.pseudonym import Pseudonymiser
from tilannekuva.replay import Replay
from tilannekuva.synthetic import DEFAULT_START, synthesize


def test_the_initial_load_does_not_start_the_baseline_clock():
    """The load (recorded on the first days, occurred_at back to the 1980s) moves W
    through years of history: in this world the learner's first step saw W in 2018, so
    the baseline (730 days of W) was due at once and the first snapshot froze the groups
    on profiles that had only begun to fill."""
    synth = synthesize(100, seed=5)
    pseudo = Pseudonymiser(b"replay-test-key-0123456789")
    events = [
        pseudo.event(validate(line))
        for line in synth.lines
        if json.loads(line)["recorded_at"][:10] <= "2023-08-15"
    ]
    replay = Replay(Learner(n_types=5, warmup=50, min_interval_s=0.0))
    replay.feed(events)
    assert replay.snapshots >= 1
    assert replay.state.first_w == day(DEFAULT_START.isoformat())  # the live day
    assert replay.state.model.calibration is None  # still re-cut, not frozen
