"""From the exact, suppressed picture to the published one: the cell key perturbation.

Suppression (:mod:`models.suppression`) decides, on the exact counts, which cells are
shown. Every shown count ``n`` is then published as ``n + p(n, k)``, where ``k`` is the
cell's key (``Σ v·r mod KEYS`` over the families counted in it, kept by the sink beside
the count: :func:`models.contract.key_field`) and ``p`` comes from the perturbation table
(:class:`models.cellkey.PerturbationTable`): the same families always give the same
published value, and a change of one family is not visible as such (docs/disclosure.md).

The table is applied through a lookup array ``[count, key]`` built once per
``min_cell``, so a whole day of every scope is perturbed with one fancy index.

>>> shown = np.array([[40, -1, 0, 5]])
>>> keysums = np.array([[123456789, 7, 0, 99]])
>>> out = perturb(shown, keysums, 5)
>>> int(out[0, 1]), int(out[0, 2]), abs(int(out[0, 0]) - 40) <= 2, int(out[0, 3]) >= 5
(-1, 0, True, True)
>>> bool((perturb(shown, keysums, 5) == out).all())  # the same families: the same value
True
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

import numpy as np

from models.cellkey import KEYS, PerturbationTable
from models.contract import KEY_PREFIX

__all__ = [
    "HIDDEN",
    "keysums_of",
    "lookup",
    "perturb",
    "publish_picture",
    "publish_types",
    "published_last",
    "table",
]

HIDDEN = -1  # a suppressed cell in a packed row (tilannekuva.api.cube.HIDDEN)


@lru_cache(maxsize=8)
def table(min_cell: int) -> PerturbationTable:
    """The project's perturbation table for a small-cell threshold (its parameters are
    documented in docs/disclosure.md: at most ±2, variance 1)."""
    return PerturbationTable(min_cell=min_cell)


@lru_cache(maxsize=8)
def lookup(min_cell: int) -> np.ndarray:
    """``int8 [count, key]``: ``p`` for counts ``0 … top`` (every count from ``top`` on
    shares the last row) and every cell key."""
    t = table(min_cell)
    top = max(t.rows)
    u = (np.arange(KEYS) + 0.5) / KEYS
    out = np.empty((top + 1, KEYS), dtype=np.int8)
    for n in range(top + 1):
        values, cum = t.rows[n]
        idx = np.minimum(np.searchsorted(cum, u, side="right"), len(values) - 1)
        out[n] = values[idx]
    return out


def perturb(shown: np.ndarray, keysums: np.ndarray, min_cell: int) -> np.ndarray:
    """The published values of ``shown`` (exact counts, :data:`HIDDEN` where suppressed)
    whose cells have the key sums ``keysums`` (same shape, the exact ``Σ v·r``)."""
    lut = lookup(min_cell)
    n = np.asarray(shown, dtype=np.int64)
    visible = n > 0
    rows = np.minimum(np.where(visible, n, 0), lut.shape[0] - 1)
    p = lut[rows, np.mod(np.asarray(keysums, dtype=np.int64), KEYS)]
    return np.where(visible, n + p, n).astype(np.asarray(shown).dtype)


def keysums_of(fields: Mapping[str, int]) -> dict[str, int]:
    """``{field: key sum}`` from a scope's stored fields (counts and cell keys mixed,
    as the sink's hashes and :func:`sinks.redis_reader.read_history` have them).

    >>> keysums_of({"families": 3, "~families": 12, "~g2": 5})
    {'families': 12, 'g2': 5}
    """
    return {k[len(KEY_PREFIX) :]: int(v) for k, v in fields.items() if k.startswith(KEY_PREFIX)}


def publish_picture(
    suppressed: Mapping, keysums: Mapping[str, Mapping[str, int]], min_cell: int
) -> dict:
    """A :func:`models.suppression.suppress` answer with every shown count replaced by
    its published value; ``keysums``: ``{scope: {field: key sum}}`` (scopes ``all``,
    ``m:<code>``, ``a:<postcode>``; fields as in the counts, groups ``g1`` …). Cell by
    cell through :meth:`~models.cellkey.PerturbationTable.published`: the reference the
    array path (:func:`perturb`) is tested against.

    >>> sup = {"all": {"indicators": {"families": 40, "children": None}, "suppressed": ["children"]},
    ...        "municipalities": {}, "areas": {}}
    >>> out = publish_picture(sup, {"all": {"families": 77}}, 5)
    >>> out["all"]["indicators"]["children"], abs(out["all"]["indicators"]["families"] - 40) <= 2
    (None, True)
    """
    t = table(min_cell)

    def scope(body: Mapping, name: str) -> dict:
        ks = keysums.get(name, {})
        out = dict(body)
        out["indicators"] = {
            f: (v if not v else t.published(v, ks.get(f, 0) % KEYS))
            for f, v in body["indicators"].items()
        }
        if body.get("service_need_groups") is not None:
            out["service_need_groups"] = {
                g: (v if not v else t.published(v, ks.get(f"g{g}", 0) % KEYS))
                for g, v in body["service_need_groups"].items()
            }
        return out

    return {
        **suppressed,
        "all": scope(suppressed["all"], "all"),
        "municipalities": {
            c: scope(b, f"m:{c}") for c, b in suppressed.get("municipalities", {}).items()
        },
        "areas": {pc: scope(b, f"a:{pc}") for pc, b in suppressed.get("areas", {}).items()},
    }


def publish_types(
    scopes: Mapping[str, Mapping] | None, keysums: Mapping[str, Mapping[str, int]], min_cell: int
) -> dict[str, dict] | None:
    """A :func:`models.suppression.suppress_types` answer published: each shown type
    count by its own cell key (field ``t<id>``), ``families`` as the picture publishes
    it, and ``hidden_families`` (the hidden types' families together, a cell like any
    other) by the key of those families: the scope's ``families`` key less the shown
    types' keys.

    >>> sup = {"all": {"families": 40, "types": {3: 30, 4: 0}, "hidden": 1, "hidden_families": 10}}
    >>> out = publish_types(sup, {"all": {"families": 900, "t3": 500}}, 5)["all"]
    >>> abs(out["types"][3] - 30) <= 2, out["types"][4], abs(out["hidden_families"] - 10) <= 2
    (True, 0, True)
    """
    if scopes is None:
        return None
    t = table(min_cell)
    out = {}
    for name, body in scopes.items():
        ks = keysums.get(name, {})

        def pub(n, key):
            return n if not n else t.published(n, key % KEYS)

        types = {tid: pub(n, ks.get(f"t{tid}", 0)) for tid, n in body["types"].items()}
        rest = ks.get("families", 0) - sum(ks.get(f"t{tid}", 0) for tid in body["types"])
        hidden = body.get("hidden_families")
        out[name] = {
            **body,
            "families": pub(body["families"], ks.get("families", 0)),
            "types": types,
            "hidden_families": None if hidden is None else pub(hidden, rest),
        }
    return out


def published_last(first: int | None, w: int | None) -> int | None:
    """The last published day: W − 1, the last completed day (the day W is still
    filling, docs/disclosure.md); None while no day is complete.

    >>> published_last(700000, 700010), published_last(700010, 700010), published_last(None, None)
    (700009, None, None)
    """
    if first is None or w is None or w - 1 < first:
        return None
    return w - 1
