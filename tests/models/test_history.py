"""models.history: the difference arrays against each family's function summed day by day."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from models.cellkey import record_key
from models.contract import INDICATORS
from models.history import History, changes, scope_names

DAYS = 30
PLACES = [("33100", "837"), ("33200", "837"), ("65100", "905")]

values = st.one_of(
    st.none(),
    st.builds(
        lambda place, counts, group: [*place, *counts, group],
        st.sampled_from(PLACES),
        st.lists(st.integers(0, 2), min_size=len(INDICATORS), max_size=len(INDICATORS)),
        st.integers(0, 10),
    ),
)


@st.composite
def writes(draw):
    """``(family, since, segments)``: segments starting on ``since``, days increasing."""
    family = draw(st.sampled_from(["f1", "f2", "f3"]))
    since = draw(st.integers(0, DAYS - 1))
    days = sorted(draw(st.sets(st.integers(since + 1, DAYS), max_size=4)))
    return family, since, [[d, draw(values)] for d in [since, *days]]


def value_on(function: list[list], d: int) -> list | None:
    found = None
    for start, value in function:
        if start <= d:
            found = value
    return found


def summed(functions: dict[str, list[list]], d: int) -> dict[str, dict[str, int]]:
    """The scopes' fields on day ``d``, summed from each family's value that day."""
    out: dict[str, dict[str, int]] = {}
    for fam, function in functions.items():
        value = value_on(function, d)
        if value is not None:
            for scope, name, count in scope_names(value, record_key(fam)):
                fields = out.setdefault(scope, {})
                fields[name] = fields.get(name, 0) + count
    return {s: {n: c for n, c in f.items() if c} for s, f in out.items()}


@settings(max_examples=300, deadline=None)
@given(st.lists(writes(), min_size=1, max_size=8))
def test_the_history_is_the_sum_of_the_families_functions_on_every_day(steps):
    h, functions = History(), {}
    for fam, since, segments in steps:
        h.write(fam, since, segments)
        functions[fam] = [s for s in functions.get(fam, []) if s[0] < since] + segments
    for d in range(DAYS + 1):
        expected = {s: f for s, f in summed(functions, d).items() if f}
        got = {s: h.on(s, d, keys=True) for s in h.scopes()}
        assert {s: f for s, f in got.items() if f} == expected, d


@settings(max_examples=300, deadline=None)
@given(values, st.lists(st.tuples(st.integers(1, DAYS), values), max_size=5), st.booleans())
def test_changes_are_each_transition_of_the_values_counted_whole(before, tail, keyed):
    """Only the changed fields are counted when a value stays in its place: the same
    non-zero entries as removing the old value whole and adding the new one."""
    rk = 12345 if keyed else None
    segments = [[d, v] for d, v in sorted(dict(tail).items())]
    whole: dict = {}
    prev = before
    for start, value in segments:
        if value != prev:
            for v, sign in ((prev, -1), (value, 1)):
                for scope, name, count in scope_names(v, rk) if v is not None else ():
                    whole[scope, name, start] = whole.get((scope, name, start), 0) + sign * count
            prev = value
    got = changes(before, segments, rk)
    assert {k: v for k, v in got.items() if v} == {k: v for k, v in whole.items() if v}
