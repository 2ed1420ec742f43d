"""models.family: due() is the first of the breakpoints, found without making them all;
present() reads its memo only while it holds."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from models import family
from models.person import day
from models.picture import Pipeline
from tests.models.test_picture import DAYS, event_sets, run


@settings(max_examples=150, deadline=None)
@given(event_sets(), st.integers(-120, 120))
def test_due_is_the_first_breakpoint(events, offset):
    pipe = run(events)
    w = day(DAYS[len(DAYS) // 2]) + offset
    for state in pipe.families.values():
        assert family.due(state, w) == min(family._breakpoints(state, w), default=None)


@settings(max_examples=150, deadline=None)
@given(event_sets(), st.lists(st.integers(0, 400), min_size=1, max_size=4))
def test_the_present_is_read_from_its_memo_only_while_that_holds(events, steps):
    # The pipeline keeps each family's memo as the worker does (contribution at W after
    # every event); W then moves on by the steps, and every message may change it.
    pipe = Pipeline()
    for e in events:
        pipe.process(e)
        for state in pipe.families.values():
            on = day(pipe.watermark)
            for step in steps:
                on += step
                assert family.present(state, on) == (
                    family.value(state, on),
                    family.due(state, on),
                )
