"""models.family: due() is the first of the breakpoints, found without making them all;
present() reads its memo only while it holds."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from models import family, picture
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


class Recording(Pipeline):
    """The in-process steps, keeping each family's messages in the order they came and
    the person stage's."""

    def __init__(self):
        super().__init__()
        self.messages: dict[str, list[dict]] = {}
        self.persons_in: list[tuple[str, dict]] = []

    def _route(self, okey, msg, touched):
        if msg["kind"] in ("add", "retract"):
            self.persons_in.append((okey, msg))
        else:
            self.messages.setdefault(okey, []).append(msg)
        super()._route(okey, msg, touched)


def _written(writes: list[tuple[int, list[list]]]) -> list[list]:
    """The history as rewrites ``(since, segments from since)`` in turn leave it, with
    equal neighbours merged (the history's function, not its segments)."""
    segs: list[list] = [[0, None]]
    for since, new in writes:
        segs = [s for s in segs if s[0] < since] + new
    out: list[list] = []
    for start, v in segs:
        if not out or out[-1][1] != v:
            out.append([start, v])
    return out


@settings(max_examples=1000, deadline=None)
@given(event_sets(), st.data())
def test_a_message_taken_late_leaves_the_history_as_the_state(events, data):
    """The person stage sends some messages again (its batch read again after a crash:
    the same tails, from their events' days), and one of a family's messages is held
    back and read again with every one after it (faust#596: a message taken and never
    finished, the partition read again from it); the history written from each day the
    family step returns is the final state's, and that is the state in order. A drill
    of session 44 left a family a parent short on the days before the parent's latest
    event: the parent's message sent again came first, with that event's day."""
    pipe = Recording()
    for e in events:
        pipe.process(e)
    sent = pipe.persons_in
    again = data.draw(st.lists(st.sampled_from(sent), max_size=4), label="again") if sent else []
    for okey, msg in again:
        pipe._route(okey, msg, {})
    for fam, msgs in pipe.messages.items():
        k = data.draw(st.integers(0, len(msgs) - 1), label=f"held back of {len(msgs)}")
        state, writes = None, []
        for msg in msgs[:k] + msgs[k + 1 :] + msgs[k:]:
            state, outs = picture.family_step(state, fam, msg)
            if (since := outs[0][2]["since"]) is not None:
                writes.append((since, family.segments(state, since)))
        assert family.segments(state, 0) == family.segments(pipe.families[fam], 0)
        assert _written(writes) == _written([(0, family.segments(state, 0))])


def test_a_parent_first_seen_in_a_message_sent_again_counts_from_its_membership():
    """The drill's family (session 44): the parent's status event came before their
    membership, the person stage sent the status message again after the membership
    (same tail, the status's day), and the family took that one first: the parent counts
    from the membership's day, not from the status's."""
    from tests.models.test_picture import added, ev, home

    pipe = Recording()
    for e in [
        home("r", "f", "01200", "092", "2021-07-18"),
        added("c", "kid", "f", "child", "2016-11-16", "2016-11-16"),
        ev("s", "employment.status_changed", {"status": "employed"}, "2021-09-14", "mum"),
        added("m", "mum", "f", "parent", "1994-02-14", "2015-02-26"),
    ]:
        pipe.process(e)
    status = next(m for k, m in pipe.persons_in if k == "mum" and m["event"]["event_id"] == "s")
    pipe._route("mum", status, {})  # sent again: the same tail, from the status's day
    *before, member, again = pipe.messages["f"]
    assert (member["since"], again["since"]) == (day("2015-02-26"), day("2021-09-14"))
    assert member["tail"] == again["tail"]
    state, writes = None, []
    for msg in [*before, again, member, again]:
        state, outs = picture.family_step(state, "f", msg)
        if (since := outs[0][2]["since"]) is not None:
            writes.append((since, family.segments(state, since)))
    assert _written(writes) == _written([(0, family.segments(pipe.families["f"], 0))])
