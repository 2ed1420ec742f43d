"""The cell key method: consistent perturbation of published counts (pure).

The answer of ``docs/disclosure.md`` to differencing over time (issue 17), as the
Australian Bureau of Statistics (TableBuilder) and the UK's ONS (Census 2021) use it:

* every family has a fixed **record key** ``r``, uniform on ``[0, KEYS)``, derived from its
  pseudonym (:func:`record_key`; never from an identity code, never published);
* a cell's **cell key** is ``Σ v·r mod KEYS`` over the families that count in it, ``v``
  the family's contribution to the count (1 for a family, its children, its window
  events). Sums are kept by the same additive deltas as the counts themselves, so the
  cell key is exact and order-independent inside the stream, like the count;
* the published value is ``n + p`` with ``p`` read from a **perturbation table** at
  ``(n, cell key)`` (:class:`PerturbationTable`). The same families always give the same
  published value; one family more or less moves the cell key to an unrelated place, so
  a published change does not tell the true one.

The table is built once from its parameters: for each count ``n`` a distribution of
``p`` over ``[-max_deviation, max_deviation]`` with mean 0 and variance ``variance`` where
the support allows (maximum entropy under those two moments), never making an empty cell
non-empty (``p = 0`` at ``n = 0``) nor a count of at least ``min_cell`` a published small
count (``n + p ≥ min_cell``); counts 1 … ``min_cell − 1`` are suppressed anyway and not
perturbed. Cell keys split ``[0, KEYS)`` into intervals by the cumulative probabilities.

>>> t = PerturbationTable(min_cell=5)
>>> t.max_deviation, t.published(0, 12345), t.published(3, 777)
(2, 0, 3)
>>> all(t.published(n, k) >= 5 for n in range(5, 40) for k in range(0, KEYS, 97))
True
>>> t.published(120, cell_key([1, 2, 3])) == t.published(120, cell_key([3, 2, 1]))
True
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize

__all__ = ["KEYS", "PerturbationTable", "cell_key", "record_key"]

#: Size of the key space: record keys and cell keys are integers in [0, KEYS).
KEYS = 1 << 16


def record_key(pseudonym: str) -> int:
    """A family's record key from its pseudonym (keyed already: the pseudonym is an
    HMAC of the identity, so this cannot be computed from an identity code).

    >>> record_key("f-1") == record_key("f-1") != record_key("f-2")
    True
    """
    digest = hashlib.sha256(b"tilannekuva-record-key\x00" + pseudonym.encode()).digest()
    return int.from_bytes(digest[:8], "big") % KEYS


def cell_key(record_keys: Iterable[int], weights: Iterable[int] | None = None) -> int:
    """``Σ v·r mod KEYS`` of the records in a cell (``weights``: each record's ``v``)."""
    keys = list(record_keys)
    v = list(weights) if weights is not None else [1] * len(keys)
    return sum(w * k for w, k in zip(v, keys, strict=True)) % KEYS


@dataclass
class PerturbationTable:
    """Perturbations by count and cell key (module doc).

    Parameters
    ----------
    min_cell
        ``SITUATION_MIN_CELL``: counts 1 … ``min_cell − 1`` are suppressed, not perturbed,
        and no count of at least ``min_cell`` is published below it.
    max_deviation
        The largest ``|p|``: the published value is within this of the exact count.
    variance
        The target variance of ``p`` where the support allows it.
    """

    min_cell: int = 5
    max_deviation: int = 2
    variance: float = 1.0
    rows: dict[int, tuple[np.ndarray, np.ndarray]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        top = self.min_cell + 2 * self.max_deviation  # from here on, one distribution
        self._top = top
        self.rows = {n: self._row(n) for n in range(top + 1)}

    def distribution(self, n: int) -> dict[int, float]:
        """``{p: probability}`` of count ``n``."""
        values, cum = self.rows[min(n, self._top)]
        probs = np.diff(np.concatenate([[0.0], cum]))
        return {int(v): float(q) for v, q in zip(values, probs, strict=True) if q > 0}

    def perturbation(self, n: int, key: int) -> int:
        """``p`` for count ``n`` and cell key ``key``."""
        values, cum = self.rows[min(n, self._top)]
        u = (key % KEYS + 0.5) / KEYS
        return int(values[min(int(np.searchsorted(cum, u, side="right")), len(values) - 1)])

    def published(self, n: int, key: int) -> int:
        """The published value of count ``n`` with cell key ``key``."""
        return n + self.perturbation(n, key)

    def preimage(self, v: int) -> tuple[int, int]:
        """``(lowest, highest)`` exact count that can publish as ``v``: what a reader who
        knows the table (its parameters are documented) learns from one value. Read off
        the rows, and checked to be an interval, so that an attacker's bounds on a cell
        are exactly these two numbers (:mod:`tilannekuva.disclosure_attack`). Near
        ``min_cell`` it is narrower than ``v ± max_deviation``: no count below
        ``min_cell`` is published perturbed, and ``n = min_cell`` is never moved.

        >>> t = PerturbationTable(min_cell=5)
        >>> [t.preimage(v) for v in (0, 3, 5, 6, 7, 8, 9, 40)]
        [(0, 0), (3, 3), (5, 7), (6, 8), (6, 9), (6, 10), (7, 11), (38, 42)]
        """
        d = self.max_deviation
        ns = [n for n in range(max(v - d, 0), v + d + 1) if v - n in self.distribution(n)]
        if not ns:
            raise ValueError(f"{v} is never published")
        if ns != list(range(ns[0], ns[-1] + 1)):
            raise ValueError(f"the counts that publish as {v} are not an interval: {ns}")
        return ns[0], ns[-1]

    # -- building the table ---------------------------------------------------------------
    def _row(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Support and cumulative probabilities of ``p`` at count ``n``."""
        d = self.max_deviation
        if n == 0 or n < self.min_cell:
            return np.array([0]), np.array([1.0])
        lo = max(-d, self.min_cell - n)
        support = np.arange(lo, d + 1, dtype=float)
        probs = _max_entropy(support, self.variance)
        return support.astype(int), np.cumsum(probs)


def _max_entropy(support: np.ndarray, variance: float) -> np.ndarray:
    """The maximum-entropy distribution on ``support`` with mean 0 and second moment
    ``variance`` (``p_i ∝ exp(a s_i + b s_i²)``); where that is out of reach (a support
    too narrow), mean 0 with the largest second moment reachable below it, or ``p = 0``
    alone when 0 is the only way to mean 0."""
    if support.min() >= 0:  # mean 0 only with p = 0
        return (support == 0).astype(float)
    # the largest second moment with mean 0: the two extremes
    a_, b_ = support.min(), support.max()
    top = -a_ * b_
    target = min(variance, 0.9 * top)

    def moments(x):
        w = np.exp(x[0] * support + x[1] * support**2 - np.max(x[0] * support + x[1] * support**2))
        q = w / w.sum()
        return [float(q @ support), float(q @ support**2) - target]

    sol = optimize.root(moments, x0=[0.0, 0.0], method="hybr")
    z = sol.x[0] * support + sol.x[1] * support**2
    q = np.exp(z - z.max())
    q /= q.sum()
    if not sol.success or abs(q @ support) > 1e-6 or abs(q @ support**2 - target) > 1e-6:
        raise ValueError(
            f"no perturbation distribution on {support.tolist()} with variance {target}"
        )
    return q
