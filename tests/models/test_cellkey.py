"""The cell key method (models/cellkey.py): the table's promises and what a change of one
family looks like from outside."""

from __future__ import annotations

import random

import numpy as np
import pytest

from models.cellkey import KEYS, PerturbationTable, cell_key, record_key


@pytest.mark.parametrize("min_cell,dev,var", [(5, 2, 1.0), (3, 3, 2.0), (10, 2, 0.8)])
def test_every_row_keeps_the_tables_promises(min_cell, dev, var):
    t = PerturbationTable(min_cell=min_cell, max_deviation=dev, variance=var)
    assert t.distribution(0) == {0: 1.0}
    for n in range(1, min_cell):
        assert t.distribution(n) == {0: 1.0}  # suppressed anyway
    for n in range(min_cell, min_cell + 40):
        q = t.distribution(n)
        assert abs(sum(q.values()) - 1) < 1e-12
        assert all(-dev <= p <= dev and n + p >= min_cell for p in q)
        mean = sum(p * w for p, w in q.items())
        assert abs(mean) < 1e-9, (n, q)
        if n >= min_cell + dev:  # the whole support: the variance asked for
            assert sum(p * p * w for p, w in q.items()) == pytest.approx(var, abs=1e-9)


def test_cell_keys_spread_the_perturbations_as_the_table_says():
    t = PerturbationTable()
    for n in (6, 7, 50):
        seen = np.bincount([t.perturbation(n, k) + 2 for k in range(KEYS)], minlength=5) / KEYS
        for p, q in t.distribution(n).items():
            assert seen[p + 2] == pytest.approx(q, abs=2 / KEYS)


def test_the_cell_key_is_kept_by_additive_deltas_and_ignores_order():
    rng = random.Random(1)
    fams = [f"f{i}" for i in range(200)]
    keys = {f: record_key(f) for f in fams}
    kids = {f: rng.randint(1, 4) for f in fams}
    whole = cell_key([keys[f] for f in fams], [kids[f] for f in fams])
    running = 0
    for f in reversed(fams):  # one delta per family, any order
        running = (running + kids[f] * keys[f]) % KEYS
    assert running == whole
    # a family leaving is its delta taken back
    rest = cell_key([keys[f] for f in fams[1:]], [kids[f] for f in fams[1:]])
    assert (whole - kids[fams[0]] * keys[fams[0]]) % KEYS == rest
    assert all(0 <= k < KEYS for k in keys.values())


def test_a_published_change_does_not_tell_the_true_one():
    """One family joins a cell of 40: the published value moves by its true change (+1)
    only about a third of the time; a published +1 also comes from a family that joined
    while another left (true change 0) and from two that joined (+2)."""
    t = PerturbationTable()
    rng = random.Random(7)
    same = 0
    true_of_plus_one: set[int] = set()
    trials = 4000
    for _ in range(trials):
        base = [rng.randrange(KEYS) for _ in range(40)]
        before = t.published(40, cell_key(base))
        join = [rng.randrange(KEYS) for _ in range(2)]
        after_one = t.published(41, cell_key(base + join[:1]))
        same += after_one - before == 1
        for true, cell in ((0, base[1:] + join[:1]), (1, base + join[:1]), (2, base + join)):
            if t.published(40 + true, cell_key(cell)) - before == 1:
                true_of_plus_one.add(true)
    assert 0.2 < same / trials < 0.45
    assert true_of_plus_one == {0, 1, 2}
