"""The history of the picture: every scope × field × day, as sums of family functions.

Each family's contribution is a piecewise-constant function of the day
(:func:`models.family.segments`, with its service-need group appended). The history of
a scope is the sum of its families' functions, kept as a *difference array*: for each
``(scope, field)`` the change of the sum on each day where it changes, so that the value
on day ``D`` is the sum of the changes up to ``D``. When a family's function changes
from day ``since`` on, only its changes from ``since`` on are taken out and the new ones
put in (:func:`rewrite`): the cost is that of the family's segments from ``since`` on,
never of the whole history, and writing the same segments again changes nothing (the
family's stored segments are the idempotence key, as its stored contribution is for the
present). The Redis sink runs the same algebra in Lua (``sinks/apply_history.lua``);
:class:`History` runs it in memory for the in-process pipeline and the tests.

A history value is a segment value of :mod:`models.family` with the group appended:
``[area, municipality, c_1 … c_8, group]`` (``group`` 0: none), or None.

Examples
--------
>>> h = History()
>>> h.write("f1", 10, [[10, ["33100", "837", 1, 2, 0, 0, 0, 0, 0, 0, 3]], [20, None]])
>>> h.on("a:33100", 9), h.on("a:33100", 10)["children"], h.on("all", 15)["g3"], h.on("all", 20)
({}, 2, 1, {})
>>> h.write("f1", 15, [[15, ["33200", "837", 1, 2, 0, 0, 0, 0, 0, 0, 3]], [20, None]])
>>> h.on("a:33100", 14)["families"], h.on("a:33100", 15), h.on("m:837", 15)["families"]
(1, {}, 1)
>>> h.write("f1", 15, [[15, ["33200", "837", 1, 2, 0, 0, 0, 0, 0, 0, 3]], [20, None]])  # again
>>> h.on("m:837", 15)["families"]
1
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable

from models.cellkey import record_key
from models.contract import INDICATORS, KEY_PREFIX, key_field

__all__ = ["History", "changes", "rewrite", "scope_names"]


def scope_names(value: list, rk: int | None = None) -> Iterable[tuple[str, str, int]]:
    """``(scope, field, count)`` of one history value (non-zero counts only); with a
    record key ``rk``, each count's cell-key field too (``count · rk``)."""
    area, muni = value[0], value[1]
    group = value[2 + len(INDICATORS)] if len(value) > 2 + len(INDICATORS) else 0
    named = [(n, c) for n, c in zip(INDICATORS, value[2 : 2 + len(INDICATORS)], strict=True) if c]
    if group:
        named.append((f"g{group}", 1))
    for scope in ("all", f"m:{muni}", f"a:{area}"):
        for name, count in named:
            yield scope, name, count
            if rk is not None:
                yield scope, key_field(name), count * rk


def changes(
    before: list | None, segments: Iterable[list], rk: int | None = None
) -> dict[tuple[str, str, int], int]:
    """The difference-array entries ``{(scope, field, day): change}`` of a chain of
    segments that follows the value ``before`` (with cell-key fields for ``rk``)."""
    out: dict[tuple[str, str, int], int] = defaultdict(int)
    prev = before
    for start, value in segments:
        if value == prev:
            continue
        if prev is not None:
            for scope, name, count in scope_names(prev, rk):
                out[scope, name, start] -= count
        if value is not None:
            for scope, name, count in scope_names(value, rk):
                out[scope, name, start] += count
        prev = value
    return out


def rewrite(
    stored: list[list], since: int, new: list[list], rk: int | None = None
) -> tuple[list[list], dict[tuple[str, str, int], int]]:
    """Replace a family's stored segments from ``since`` on by ``new`` (which start on
    ``since``); the new stored list and the difference-array entries that move the
    history from the old function to the new one (zero entries left out; cell-key
    fields too for the family's record key ``rk``)."""
    i = bisect.bisect_left(stored, since, key=_start)
    before = stored[i - 1][1] if i else None
    out = changes(before, new, rk)
    for k, v in changes(before, stored[i:], rk).items():
        out[k] -= v
    return stored[:i] + _canonical(before, new), {k: v for k, v in out.items() if v}


def _canonical(before: list | None, segments: list[list]) -> list[list]:
    out, prev = [], before
    for s in segments:
        if s[1] != prev:
            out.append(s)
            prev = s[1]
    return out


def _start(segment: list) -> int:
    return segment[0]


class History:
    """The history in memory: families' stored segments and the scopes' difference arrays."""

    def __init__(self) -> None:
        self.families: dict[str, list[list]] = {}
        self.diff: dict[str, dict[str, dict[int, int]]] = {}

    def write(self, family: str, since: int, segments: list[list]) -> None:
        rk = record_key(family)
        stored, entries = rewrite(self.families.get(family, []), since, segments, rk)
        if stored:
            self.families[family] = stored
        else:
            self.families.pop(family, None)
        for (scope, name, on), v in entries.items():
            days = self.diff.setdefault(scope, {}).setdefault(name, {})
            days[on] = days.get(on, 0) + v
            if not days[on]:
                del days[on]

    def on(self, scope: str, day: int, keys: bool = False) -> dict[str, int]:
        """``{field: value}`` of a scope on a day (non-zero only; with ``keys``, the
        cell-key fields too)."""
        out = {}
        for name, days in self.diff.get(scope, {}).items():
            if not keys and name.startswith(KEY_PREFIX):
                continue
            v = sum(c for d, c in days.items() if d <= day)
            if v:
                out[name] = v
        return out

    def scopes(self) -> list[str]:
        return sorted(self.diff)
