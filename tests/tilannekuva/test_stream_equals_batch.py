"""The stream steps (models.picture) against the independent batch reference
(tilannekuva.batch, pandas), on random small histories in random order, with
duplicates and retractions (before or after their targets)."""

from hypothesis import given, settings
from hypothesis import strategies as st

from models.picture import Pipeline
from tests.models.test_picture import event_sets
from tests.streams.harness import flatten
from tilannekuva.batch import EventTable, compute, compute_days


@settings(max_examples=120, deadline=None)
@given(event_sets(), st.randoms(use_true_random=False), st.integers(0, 4))
def test_stream_steps_equal_the_batch_reference(events, rnd, dups):
    arrival = list(events) + [rnd.choice(events) for _ in range(dups)]
    rnd.shuffle(arrival)
    pipe = Pipeline()
    for i in range(0, len(arrival), 3):
        pipe.process_many(arrival[i : i + 3])
    reference = compute(events)
    assert pipe.aggregates() == flatten(reference)
    assert pipe.watermark == reference["as_of"]


@settings(max_examples=120, deadline=None)
@given(event_sets(), st.randoms(use_true_random=False), st.integers(0, 4))
def test_stream_history_equals_the_batch_reference_on_every_day(events, rnd, dups):
    """Every day of the history the stream steps keep equals the batch reference's
    picture of that day (``compute(events, as_of=D)``), in any arrival order."""
    arrival = list(events) + [rnd.choice(events) for _ in range(dups)]
    rnd.shuffle(arrival)
    pipe = Pipeline()
    for i in range(0, len(arrival), 3):
        pipe.process_many(arrival[i : i + 3])
    table = EventTable(events)
    days = sorted({e["occurred_at"] for e in events} | {"2026-02-28", "2026-04-15"})
    days = [d for d in days if d <= pipe.watermark and d >= pipe.first_day]
    for on, reference in compute_days(table, days).items():
        assert pipe.aggregates_on(on) == flatten(reference), on
