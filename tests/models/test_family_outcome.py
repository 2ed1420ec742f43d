"""A family's outcome months from its own state (models/family_outcome.py): the copies
of its members' rows give the outcome of the final data, the kept month rows follow
late events, and the panels of any split of the families add up to the offline one."""

from __future__ import annotations

import random
import zlib

import numpy as np
import pytest

from models import family_outcome
from models.cohorts import builder_counts, final_builder, outcome_on
from models.contract import validate
from models.impact import month_of, service_of
from models.picture import Pipeline
from models.profile import state_profile
from models.pseudonym import Pseudonymiser
from tilannekuva.synthetic import synthesize

KEY = b"family-outcome-key-0123456789abcd"
BATCH = 300


@pytest.fixture(scope="module")
def events():
    pseudo = Pseudonymiser(KEY)
    return [pseudo.event(validate(x)) for x in synthesize(150, seed=4, services=True).lines]


def _stream(events, batch=BATCH, middle=None):
    """The pipeline after ``events`` in batches; ``middle(pipe)`` after each batch."""
    pipe = Pipeline(profile=state_profile, copies=True, history=None)
    for i in range(0, len(events), batch):
        pipe.process_many(events[i : i + batch])
        if middle is not None:
            middle(pipe)
    return pipe


@pytest.fixture(scope="module")
def streamed(events):
    return _stream(events)


@pytest.fixture(scope="module")
def span(events):
    first = month_of(min(e["recorded_at"][:10] for e in events))
    last = month_of(max(e["occurred_at"] for e in events)) - 1
    return first, last


def test_the_copies_give_the_outcome_of_the_person_states(streamed, span):
    """Every family at every month's end: the score from its members' copies is the
    score from their person states, to the bit."""
    first, last = span
    compared = 0
    for fam, state in streamed.families.items():
        for m in range(first, last + 1):
            on = family_outcome.month_end(m)
            want = outcome_on(state, streamed.persons, on)
            assert family_outcome.outcome_at(state, on) == want, (fam, m)
            compared += want is not None
    assert compared > 3000


def test_the_kept_rows_follow_late_events(events, span):
    """Month rows made while events still arrive, in a shuffled order and small
    batches, are dropped where a late event reaches back: at the end they are the rows
    made afresh from the final states."""
    first, last = span
    shuffled = list(events)
    random.Random(7).shuffle(shuffled)

    def make_rows(pipe):
        for state in pipe.families.values():
            family_outcome.month_rows(state, first, last)

    pipe = _stream(shuffled, batch=2000, middle=make_rows)
    kept = {f: family_outcome.month_rows(s, first, last) for f, s in pipe.families.items()}
    fresh = {
        f: family_outcome.month_rows({k: v for k, v in s.items() if k != "ir"}, first, last)
        for f, s in pipe.families.items()
    }
    assert kept == fresh
    assert sum(r is not None for rows in kept.values() for r in rows) > 3000


def test_without_invalidation_the_kept_rows_would_be_stale(events, span):
    """The test above can fail: rows made midway differ from the final ones."""
    first, last = span
    shuffled = list(events)
    random.Random(7).shuffle(shuffled)
    pipe = _stream(shuffled[: len(shuffled) // 2])
    midway = {
        f: [None if r is None else list(r) for r in family_outcome.month_rows(s, first, last)]
        for f, s in pipe.families.items()
    }
    pipe.process_many(shuffled[len(shuffled) // 2 :])
    final = {f: family_outcome.month_rows(s, first, last) for f, s in pipe.families.items()}
    assert sum(midway[f] != final[f] for f in midway) > 10


@pytest.mark.parametrize("parts", [1, 3])
def test_the_partitions_counts_add_up_to_the_offline_panels(events, streamed, span, parts):
    """Families split as a worker's partitions split them: the counts of their panels
    add up to those of the offline panel of the final data, service by service."""
    first, last = span
    starts = sorted((e for e in events if service_of(e)), key=lambda e: e["occurred_at"])
    want = builder_counts(final_builder(streamed, starts, first, last))
    split: list[dict] = [{} for _ in range(parts)]
    for fam, state in streamed.families.items():
        split[zlib.crc32(fam.encode()) % parts][fam] = state
    got = [builder_counts(family_outcome.partition_builder(s, first, last)) for s in split]
    entries = 0
    for service, counts in want.items():
        total = sum((g[service] for g in got[1:]), got[0][service])
        assert np.array_equal(total.strata, counts.strata), service
        assert np.array_equal(total.values, counts.values), service
        entries += int(counts.values[..., 0].sum())
    assert entries > 50
