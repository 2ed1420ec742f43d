"""The service cohorts of a stream in one process (models/cohorts.py): the counts by
municipality code, and the panel of the final data, which no arrival order changes."""

from __future__ import annotations

import random

import numpy as np
import pytest

from models.cohorts import Cohorts, final_panel
from models.contract import validate
from models.impact import SERVICES, cohort_counts, month_of, service_of
from models.picture import Pipeline
from models.profile import state_profile
from models.pseudonym import Pseudonymiser
from tilannekuva.synthetic import synthesize

KEY = b"cohorts-test-key-0123456789abcdef"


@pytest.fixture(scope="module")
def events():
    pseudo = Pseudonymiser(KEY)
    return [pseudo.event(validate(x)) for x in synthesize(150, seed=4, services=True).lines]


def _final(events, order_seed=None):
    """The final-data panel of ``events`` streamed in arrival order, or shuffled."""
    events = list(events)
    first = month_of(min(e["recorded_at"][:10] for e in events))
    last = month_of(max(e["occurred_at"] for e in events)) - 1
    if order_seed is not None:
        random.Random(order_seed).shuffle(events)
    pipe = Pipeline(profile=state_profile, history=None)
    for i in range(0, len(events), 400):
        pipe.process_many(events[i : i + 400])
    return final_panel(pipe, [e for e in events if service_of(e)], first, last)


def test_no_arrival_order_changes_the_final_panel(events):
    """The worker's panel is to equal the offline one whatever a partition saw first:
    the final data as of each month's end does not depend on the order."""
    panel, families, entries = _final(events)
    assert (panel.groups > 0).sum() > 1000 and entries
    for seed in (1, 2):
        other, fams, ents = _final(events, seed)
        order = [fams.index(f) for f in families]
        assert np.array_equal(other.groups[order], panel.groups)
        assert np.array_equal(other.municipality[order], panel.municipality)
        assert np.array_equal(other.area[order], panel.area)
        assert {k: (families[r], c) for k, (r, c) in entries.items()} == {
            k: (fams[r], c) for k, (r, c) in ents.items()
        }


def test_the_final_panel_is_close_to_what_the_stream_knew(events):
    """Where the stream knew a month's end late (events recorded after it), the two
    panels differ; over all family-months, rarely."""
    cohorts, pipe = Cohorts(), Pipeline(profile=state_profile, history=None)
    for i in range(0, len(events), 400):
        chunk = events[i : i + 400]
        cohorts.observe(chunk)
        pipe.process_many(chunk)
        cohorts.close(pipe)
    known, kf, _ = cohorts.panel()
    final, ff, _ = final_panel(
        pipe, [e for e in events if service_of(e)], cohorts.builder.first, cohorts.closed
    )
    rows = [ff.index(f) for f in kf]
    both = (known.groups > 0) & (final.groups[rows] > 0)
    same = (known.groups == final.groups[rows])[both].mean()
    print(f"{same:.4f} of {both.sum()} family-months alike")
    assert 0.9 < same < 1.0, same


def test_counts_carry_municipality_codes(events):
    cohorts, pipe = Cohorts(), Pipeline(profile=state_profile, history=None)
    for i in range(0, len(events), 400):
        chunk = events[i : i + 400]
        cohorts.observe(chunk)
        pipe.process_many(chunk)
        cohorts.close(pipe)
    counts = cohorts.counts("family_work")
    assert set(counts.strata[:, 1]) <= {92, 399, 609, 837, 905, 980} and len(counts.strata)
    panel, _, _ = cohorts.panel()
    assert cohort_counts(panel, "family_work").values.sum() == counts.values.sum()
    assert set(SERVICES) == set(panel.starts)
