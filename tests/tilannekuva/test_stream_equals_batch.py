"""The stream steps (models.picture) against the independent batch reference
(tilannekuva.batch, pandas), on random small histories in random order, with
duplicates and retractions (before or after their targets)."""

from hypothesis import given, settings
from hypothesis import strategies as st

from models.picture import Pipeline
from tests.models.test_picture import event_sets
from tests.streams.harness import flatten
from tilannekuva.batch import compute


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
