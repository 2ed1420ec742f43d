"""models.family: due() is the first of the breakpoints, found without making them all."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from models import family
from models.person import day
from tests.models.test_picture import DAYS, event_sets, run


@settings(max_examples=150, deadline=None)
@given(event_sets(), st.integers(-120, 120))
def test_due_is_the_first_breakpoint(events, offset):
    pipe = run(events)
    w = day(DAYS[len(DAYS) // 2]) + offset
    for state in pipe.families.values():
        assert family.due(state, w) == min(family._breakpoints(state, w), default=None)
