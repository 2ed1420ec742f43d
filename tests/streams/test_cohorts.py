"""The service cohorts of a worker's partitions (streams/cohorts.py): when a partition is
counted, and that the partitions' counts add up to the offline panel's."""

from __future__ import annotations

import numpy as np
import pytest

from models.cohorts import builder_counts, final_builder
from models.contract import validate
from models.impact import SERVICES, Counts, month_of, service_of
from models.picture import Pipeline
from models.profile import state_profile
from models.pseudonym import Pseudonymiser
from streams.cohorts import CohortWriter
from streams.transport import partition_of
from tilannekuva.synthetic import synthesize

PARTS = 4


@pytest.fixture(scope="module")
def world():
    """``(events, pipeline)`` of a world with services, streamed with copies on."""
    pseudo = Pseudonymiser(b"cohort-writer-key-0123456789abcd")
    events = [pseudo.event(validate(x)) for x in synthesize(150, seed=4, services=True).lines]
    pipe = Pipeline(profile=state_profile, copies=True, history=None)
    for i in range(0, len(events), 500):
        pipe.process_many(events[i : i + 500])
    return events, pipe


class Span:
    def __init__(self, live: str | None, watermark: str | None):
        self.day_live, self.day_w = live, watermark

    async def watermark(self):
        return self.day_w

    async def live(self):
        return self.day_live


class Store:
    def __init__(self):
        self.counts: dict[int, tuple[int, dict[str, Counts]]] = {}

    async def write(self, partition, month, counts):
        self.counts[partition] = (month, counts)

    async def written(self):
        return set(self.counts)


class Settled:
    def __init__(self, answer: bool):
        self.answer, self.asked = answer, 0

    async def __call__(self):
        self.asked += 1
        return self.answer


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def writer(table, span, store, settled, clock=None) -> CohortWriter:
    return CohortWriter(table, PARTS, span, store, settled, clock or Clock(), revise_s=600)


async def test_the_partitions_counts_add_up_to_the_offline_panels(world):
    events, pipe = world
    span = Span(min(e["recorded_at"][:10] for e in events), pipe.watermark)
    store = Store()
    counted = await writer(dict(pipe.families), span, store, Settled(True))(range(PARTS))
    assert counted == list(range(PARTS))
    first, last = month_of(span.day_live), month_of(pipe.watermark) - 1
    starts = sorted((e for e in events if service_of(e)), key=lambda e: e["occurred_at"])
    want = builder_counts(final_builder(pipe, starts, first, last))
    assert {month for month, _ in store.counts.values()} == {last}
    for service in SERVICES:
        got = [store.counts[p][1][service] for p in range(PARTS)]
        total = sum(got[1:], got[0])
        assert np.array_equal(total.strata, want[service].strata), service
        assert np.array_equal(total.values, want[service].values), service
    assert sum(int(c.values[..., 0].sum()) for c in want.values()) > 50


async def test_a_partition_is_counted_when_the_month_moves_or_redis_lost_it(world):
    events, pipe = world
    span = Span(min(e["recorded_at"][:10] for e in events), "2025-03-10")
    store, settled = Store(), Settled(False)
    w = writer(dict(pipe.families), span, store, settled)
    assert await w([0, 1]) == [0, 1]
    assert await w([0, 1]) == [] and settled.asked == 0  # nothing changed: not even asked
    del store.counts[1]  # Redis lost it (a FLUSHALL, an older snapshot)
    assert await w([0, 1]) == [1]
    span.day_w = "2025-03-31"  # W within the same month: the same months
    assert await w([0, 1]) == []
    span.day_w = "2025-04-01"  # W leaves March: March is counted
    assert await w([0, 1]) == [0, 1]
    assert store.counts[0][0] == month_of("2025-03-01")
    assert await w([0, 1, 2]) == [2]  # a partition newly assigned
    w.forget([0])  # revoked and back: counted again
    assert await w([0, 1, 2]) == [0]


async def test_changed_families_are_counted_once_the_group_settles(world):
    events, pipe = world
    span = Span(min(e["recorded_at"][:10] for e in events), pipe.watermark)
    store, settled, clock = Store(), Settled(False), Clock()
    w = writer(dict(pipe.families), span, store, settled, clock)
    await w(range(PARTS))
    fam = next(f for f in pipe.families if partition_of(f, PARTS) == 2)
    w.touched([fam])
    assert await w(range(PARTS)) == [] and settled.asked == 1  # a catch-up: not yet
    settled.answer = True
    assert await w(range(PARTS)) == [2]
    assert await w(range(PARTS)) == []  # counted: no longer changed
    settled.answer = False
    w.touched([fam])
    clock.t += 601  # a stream that never pauses: counted after revise_s all the same
    assert await w(range(PARTS)) == [2]


async def test_nothing_is_counted_before_w_has_left_the_first_month():
    store = Store()
    w = writer({}, Span("2025-03-02", "2025-03-20"), store, Settled(True))
    assert await w([0]) == [] and not store.counts
    w = writer({}, Span(None, None), store, Settled(True))
    assert await w([0]) == []
