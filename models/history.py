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
from collections.abc import Iterable

from models.cellkey import record_key
from models.contract import GROUPS, INDICATORS, KEY_PREFIX, key_field

__all__ = ["History", "changes", "rewrite", "scope_names"]


def scope_names(value: list, rk: int | None = None) -> Iterable[tuple[str, str, int]]:
    """``(scope, field, count)`` of one history value (non-zero counts only); with a
    record key ``rk``, each count's cell-key field too (``count · rk``)."""
    area, muni = value[0], value[1]
    group = _group(value)
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
    segments that follows the value ``before`` (with cell-key fields for ``rk``; an
    entry may be 0)."""
    out: dict[tuple[str, str, int], int] = {}
    prev = before
    for start, value in segments:
        if value == prev:
            continue
        if prev is not None and value is not None and prev[0] == value[0] and prev[1] == value[1]:
            _moved(out, start, value, prev, rk)  # the same place: only what changed
        else:
            if prev is not None:
                _moved(out, start, prev, None, rk, -1)
            if value is not None:
                _moved(out, start, value, None, rk)
        prev = value
    return out


_N = len(INDICATORS)
_NAMES = tuple((n, key_field(n)) for n in INDICATORS)
_GROUPS = {int(g[1:]): (g, key_field(g)) for g in GROUPS}  # "g3": group 3


def _group(value: list) -> int:
    return value[2 + _N] if len(value) > 2 + _N else 0


def _moved(
    out: dict, start: int, value: list, prev: list | None, rk: int | None, sign: int = 1
) -> None:
    """Add to ``out`` ``sign`` × (``value`` less ``prev``, which is in the same area
    and municipality; None: nothing) in ``value``'s three scopes, from ``start``."""
    moves = []
    for i, (name, key) in enumerate(_NAMES):
        d = value[2 + i] - (prev[2 + i] if prev is not None else 0)
        if d:
            moves.append((name, key, sign * d))
    g, pg = _group(value), (_group(prev) if prev is not None else 0)
    if g != pg:
        if g:
            moves.append((*_GROUPS[g], sign))
        if pg:
            moves.append((*_GROUPS[pg], -sign))
    for scope in ("all", f"m:{value[1]}", f"a:{value[0]}"):
        for name, key, d in moves:
            k = (scope, name, start)
            out[k] = out.get(k, 0) + d
            if rk is not None:
                k = (scope, key, start)
                out[k] = out.get(k, 0) + d * rk


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
        out[k] = out.get(k, 0) - v
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
