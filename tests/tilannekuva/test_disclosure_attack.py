"""The differencing attacker (tilannekuva/disclosure_attack.py) against today's
publication: it must find what issue 17 says is there (single-family changes of shown
cells, day by day), so that it can later show the protection working."""

from __future__ import annotations

import numpy as np

from models.areas import reference_areas
from models.contract import validate
from models.picture import Pipeline, day
from models.pseudonym import Pseudonymiser
from tilannekuva.api.cube import FIELDS, HIDDEN
from tilannekuva.disclosure_attack import differencing, published_days
from tilannekuva.synthetic import synthesize


def test_todays_daily_history_discloses_single_family_changes():
    synth = synthesize(1500, seed=11)
    pseudo = Pseudonymiser(b"attack-test-key-0123456789")
    pipe = Pipeline()
    events = [pseudo.event(validate(line)) for line in synth.lines]
    for i in range(0, len(events), 1000):
        pipe.process_many(events[i : i + 1000])
    areas = {pc: a["municipality"] for pc, a in reference_areas().items()}
    last = day(pipe.watermark)
    shown = published_days(pipe.history, areas, range(last - 89, last + 1), min_cell=5)
    assert shown.shape == (90, 151, len(FIELDS))
    assert (shown == HIDDEN).any() and (shown > 0).any()  # suppression at work, data shown
    found = differencing(shown, min_cell=5)
    # Today: day-to-day changes of one family, visible in shown cells of every kind.
    assert found.single > 100 and found.cells > 50, found
    assert {"families_social_assistance", "families_unemployed_parent"} <= set(found.by_field)
    # The attacker is exact: every finding is a real change of the exact history.
    from tilannekuva.api.cube import Layout
    from tilannekuva.disclosure_attack import history_values

    exact = history_values(pipe.history, Layout.of(areas), last - 89, last)
    both = (shown[:-1] != HIDDEN) & (shown[1:] != HIDDEN)
    assert np.array_equal(np.diff(shown, axis=0)[both], np.diff(exact, axis=0)[both])
