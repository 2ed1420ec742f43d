"""The history as a dense cube ``[day, scope, field]`` and its suppressed twin (pure).

Redis keeps each scope's history as a difference array split in blocks of
:data:`sinks.keys.HIST_BLOCK` days (``sinks/apply_history.lua``): hash
``tk:hist:<scope>:<block>`` holds ``"<field>:<day>" -> change``, hash ``tk:hist:<scope>``
``"<field>:<block>" -> the block's total change``. :class:`Cube` holds what was read of
those hashes, parsed into small arrays, and turns them into the values of every scope
and field on every day from the first day of data to ``W`` (one ``cumsum``).

A day's picture is cut from the cube (:func:`raw_picture`: the shape of
:func:`sinks.redis_reader.picture_on`) and suppressed *as a whole* with
:func:`models.suppression.suppress`, exactly as the present is; :func:`suppress_rows`
does that for a run of days and packs each result into a row of the same shape, a
shown count or ``HIDDEN`` (null). :func:`cells` unpacks one scope of such a row into
the answer's ``indicators``, ``service_need_groups`` and ``suppressed``.

>>> layout = Layout.of({"33100": "837"})
>>> layout.scopes[:2], layout.scopes[-1], layout.index["m:837"]
(('all', 'm:092'), 'a:33100', 4)
>>> cube = Cube(layout)
>>> key = "tk:hist:a:33100:23093"  # days 738976 … 739007
>>> cube.update(key, "d1", [b"families:738980", b"2", b"children:738990", b"3"])
True
>>> present = np.zeros((8, WIDTH), dtype=np.int64)
>>> present[:, :2] = [2, 3]  # on 738991 (W) every scope has 2 families, 3 children
>>> v, base = cube.values(738979, 738991, present)
>>> a = layout.index["a:33100"]
>>> v.shape, int(v[0, a, 0]), int(v[1, a, 0]), int(v[-3, a, 1]), int(v[-2, a, 1]), int(base[0, 0])
((13, 8, 36), 0, 2, 0, 3, 2)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from models.contract import COVERED_MUNICIPALITIES, GROUPS, INDICATORS, key_field
from models.publication import perturb
from models.suppression import suppress
from sinks import keys
from sinks.connection import text
from sinks.redis_reader import drop_partial_groups

FIELDS: tuple[str, ...] = INDICATORS + GROUPS  # the published fields
# The raw cube holds each field's cell key (models.contract.key_field) after them.
KEYED: tuple[str, ...] = FIELDS + tuple(key_field(f) for f in FIELDS)
WIDTH = len(KEYED)
FIELD_INDEX = {f: i for i, f in enumerate(KEYED)}
N_IND = len(INDICATORS)
HIDDEN = -1  # a suppressed (null) cell in a shown row
GROUP_NAMES = tuple(f"service_need_groups.{g[1:]}" for g in GROUPS)
MUNICIPALITIES = tuple(sorted(COVERED_MUNICIPALITIES))


@dataclass(frozen=True)
class Layout:
    """The scopes of a picture, in the order of the cube's scope axis: ``all``, the six
    municipalities (sorted), then every known area (sorted by postcode)."""

    areas: tuple[tuple[str, str], ...]  # (postcode, municipality), sorted

    @classmethod
    def of(cls, areas: Mapping[str, str]) -> Layout:
        return cls(tuple(sorted(areas.items())))

    @cached_property
    def scopes(self) -> tuple[str, ...]:
        return ("all", *(f"m:{m}" for m in MUNICIPALITIES), *(f"a:{pc}" for pc, _ in self.areas))

    @cached_property
    def index(self) -> dict[str, int]:
        return {s: i for i, s in enumerate(self.scopes)}

    @cached_property
    def municipality_of(self) -> dict[str, str]:
        return dict(self.areas)


@dataclass
class _Entries:
    """One hash parsed: positions (a day, or a block for the totals hash), field indexes
    and changes, as arrays."""

    at: np.ndarray
    fields: np.ndarray
    changes: np.ndarray

    @classmethod
    def parse(cls, flat: Sequence) -> _Entries:
        """From HGETALL's ``[field, value, field, value, …]`` (``"<name>:<n>"`` fields)."""
        at, fields, changes = [], [], []
        for i in range(0, len(flat) - 1, 2):
            name, _, n = text(flat[i]).rpartition(":")
            f = FIELD_INDEX.get(name)
            if f is None or not n.isdigit():
                continue  # not a field of ours: never let it break the history
            at.append(int(n))
            fields.append(f)
            changes.append(int(flat[i + 1]))
        return cls(
            np.array(at, dtype=np.int64),
            np.array(fields, dtype=np.intp),
            np.array(changes, dtype=np.int64),
        )

    def same(self, other: _Entries | None) -> bool:
        return (
            other is not None
            and np.array_equal(self.at, other.at)
            and np.array_equal(self.fields, other.fields)
            and np.array_equal(self.changes, other.changes)
        )


@dataclass
class Cube:
    """What has been read of every scope's history hashes, and the values they give.

    ``digests`` is what :meth:`update` was told about each hash (the reader's
    fingerprint of its content), so a refresh fetches only hashes whose fingerprint
    moved (:mod:`tilannekuva.api.history`)."""

    layout: Layout
    digests: dict[str, str] = field(default_factory=dict)
    moved_blocks: set[int] = field(default_factory=set)  # blocks whose totals moved
    _entries: dict[str, _Entries] = field(default_factory=dict)
    _where: dict[str, tuple[int, int | None]] = field(default_factory=dict)

    def present_unit(self) -> list[str]:
        """The watermark and every scope's present counts: one unit, read atomically."""
        return [keys.WATERMARK] + [keys.scope(s) for s in self.layout.scopes]

    def totals_unit(self) -> list[str]:
        """Every scope's block totals: one unit, read atomically."""
        return [keys.history(s) for s in self.layout.scopes]

    def block_unit(self, block: int) -> list[str]:
        """One block of every scope: one unit, read atomically (so the additive relations
        all = Σ municipalities = Σ areas and families = Σ groups hold in it)."""
        return [keys.history(s, block) for s in self.layout.scopes]

    def has_block(self, block: int) -> bool:
        return keys.history("all", block) in self.digests

    def keys(self, first: int, last: int) -> list[str]:
        """The hashes that hold days ``first`` … ``last`` of every scope: each scope's
        block totals (for the blocks before ``first``'s), then its daily blocks."""
        return self.keys_of_blocks(range(first // keys.HIST_BLOCK, last // keys.HIST_BLOCK + 1))

    def keys_of_blocks(self, blocks: Iterable[int]) -> list[str]:
        """Each scope's block totals and its daily hashes of ``blocks``."""
        blocks = tuple(blocks)
        return [keys.history(s, b) for s in self.layout.scopes for b in (None, *blocks)]

    def forget_before(self, block: int) -> None:
        """Drop the daily blocks before ``block`` (the window moved past them)."""
        for k in [k for k, w in self._where.items() if w[1] is not None and w[1] < block]:
            self._entries.pop(k, None)
            self.digests.pop(k, None)
            del self._where[k]

    def _locate(self, key: str) -> tuple[int, int | None] | None:
        """(scope index, block or None for the totals) of a history hash's name."""
        where = self._where.get(key)
        if where is None and key.startswith(keys.HIST):
            rest = key[len(keys.HIST) :]
            head, _, block = rest.rpartition(":")
            if rest in self.layout.index:
                where = (self.layout.index[rest], None)
            elif head in self.layout.index and block.isdigit():
                where = (self.layout.index[head], int(block))
            if where is not None:
                self._where[key] = where
        return where

    def update(self, key: str, digest: str, flat: Sequence) -> bool:
        """Replace one hash's content (``flat``: HGETALL's field, value, …); True if
        the parsed content differs from what was held."""
        self.digests[key] = digest
        if self._locate(key) is None:
            return False
        new = _Entries.parse(flat)
        old = self._entries.pop(key, None)
        if len(new.at):
            self._entries[key] = new
        moved = not new.same(old) if len(new.at) else old is not None
        if moved and self._where[key][1] is None:  # block totals: which blocks moved
            self.moved_blocks |= _moved(old, new)
        return moved

    def apply(self, replies: Iterable[tuple[str, bytes | str]]) -> bool:
        """Apply packed replies ``(key, "<digest>\\n<field>,<value>,…")`` (an empty
        reply: unchanged); True if any content changed."""
        changed = False
        for key, reply in replies:
            body = text(reply)
            if not body:
                continue
            digest, _, packed = body.partition("\n")
            changed |= self.update(key, digest, packed.split(",") if packed else [])
        return changed

    def values(
        self, first: int, last: int, anchor: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``int64 [day, scope, field]`` for days ``first`` … ``last`` (their blocks
        read), anchored on ``anchor``, the values on ``last`` (the present at W): a day
        is the present less the changes after it. Also the values just before the first
        block that this implies (a change in a block not read again moves them). With
        ``anchor`` None, from the block totals before the first block instead."""
        b0, b1 = first // keys.HIST_BLOCK, last // keys.HIST_BLOCK
        origin = b0 * keys.HIST_BLOCK
        rows = (b1 + 1) * keys.HIST_BLOCK - origin
        n_scopes = len(self.layout.scopes)
        diff = np.zeros((rows, n_scopes, WIDTH), dtype=np.int64)
        for k, e in self._entries.items():
            where = self._where.get(k)
            if where is None or where[1] is None or not b0 <= where[1] <= b1:
                continue
            # (day, field) is unique within a block's hash, and no two hashes share a
            # (scope, day): plain assignment adds nothing twice.
            diff[e.at - origin, where[0], e.fields] = e.changes
        running = np.cumsum(diff, axis=0)
        base = anchor - running[last - origin] if anchor is not None else self.totals_before(b0)
        running += base
        return running[first - origin : last - origin + 1], base

    def totals_before(self, block: int) -> np.ndarray:
        """``int64 [scope, field]``: the block totals read, summed over the blocks before
        ``block`` (the values just before it, without the present)."""
        base = np.zeros((len(self.layout.scopes), WIDTH), dtype=np.int64)
        for k, e in self._entries.items():
            where = self._where.get(k)
            if where is not None and where[1] is None:
                before = e.at < block
                np.add.at(base, (where[0], e.fields[before]), e.changes[before])
        return base

    def values_on(self, days: Sequence[int]) -> np.ndarray:
        """``int64 [day, scope, field]`` on scattered ``days`` (their blocks read): each
        day is the totals of the blocks before its own plus its block's changes up to it."""
        n_scopes = len(self.layout.scopes)
        out = np.zeros((len(days), n_scopes, WIDTH), dtype=np.int64)
        if not len(days):
            return out
        by_block: dict[int, list[int]] = {}
        for i, d in enumerate(days):
            by_block.setdefault(d // keys.HIST_BLOCK, []).append(i)
        # Totals of every block as a dense array and its running sum over the blocks.
        parts = [
            (w[0], e)
            for k, e in self._entries.items()
            if (w := self._where.get(k)) and w[1] is None
        ]
        at = np.concatenate([e.at for _, e in parts] or [np.zeros(0, np.int64)])
        b_min = int(at.min()) if len(at) else 0
        n_b = int(at.max()) - b_min + 1 if len(at) else 1
        prefix = np.zeros((n_b, n_scopes, WIDTH), dtype=np.int64)
        for scope, e in parts:
            np.add.at(prefix, (e.at - b_min, scope, e.fields), e.changes)
        np.cumsum(prefix, axis=0, out=prefix)
        for b in sorted(by_block):
            k = min(b - b_min, n_b) - 1  # the last block before b
            base = prefix[k] if k >= 0 else 0
            diff = np.zeros((keys.HIST_BLOCK, n_scopes, WIDTH), dtype=np.int64)
            for scope in range(n_scopes):
                e = self._entries.get(keys.history(self.layout.scopes[scope], b))
                if e is not None:
                    diff[e.at - b * keys.HIST_BLOCK, scope, e.fields] = e.changes
            running = np.cumsum(diff, axis=0) + base
            for i in by_block[b]:
                out[i] = running[days[i] - b * keys.HIST_BLOCK]
        return out


def present_counts(layout: Layout, replies: Sequence) -> np.ndarray:
    """``int64 [scope, field]`` from the packed counts hashes of every scope
    (``"<field>,<value>,…"``, in the layout's order)."""
    out = np.zeros((len(layout.scopes), WIDTH), dtype=np.int64)
    for i, reply in enumerate(replies):
        flat = text(reply).split(",") if reply else []
        for j in range(0, len(flat) - 1, 2):
            f = FIELD_INDEX.get(flat[j])
            if f is not None:
                out[i, f] = int(flat[j + 1])
    return out


def _moved(old: _Entries | None, new: _Entries) -> set[int]:
    """The blocks whose total of some field differs between two totals hashes."""

    def totals(e: _Entries | None) -> dict[tuple[int, int], int]:
        if e is None:
            return {}
        return dict(
            zip(zip(e.at.tolist(), e.fields.tolist(), strict=True), e.changes.tolist(), strict=True)
        )

    a, b = totals(old), totals(new)
    return {blk for (blk, f) in a.keys() | b.keys() if a.get((blk, f)) != b.get((blk, f))}


def raw_picture(row: np.ndarray, layout: Layout, as_of: str | None = None) -> dict:
    """The unsuppressed picture of one day (``row``: ``[scope, field]``), in the shape
    of :func:`sinks.redis_reader.picture_on` (groups kept only where they add up)."""
    values = row[:, : len(FIELDS)].tolist()

    def counts(i: int) -> dict[str, int]:
        r = values[i]
        c = dict(zip(INDICATORS, r[:N_IND], strict=True))
        if any(r[N_IND:]):
            c.update(zip(GROUPS, r[N_IND:], strict=True))
        return c

    idx = layout.index
    picture = {
        "as_of": as_of,
        "all": counts(0),
        "municipalities": {m: counts(idx[f"m:{m}"]) for m in MUNICIPALITIES},
        "areas": {
            pc: {"municipality": muni, "counts": counts(idx[f"a:{pc}"])}
            for pc, muni in layout.areas
        },
    }
    return drop_partial_groups(picture)


def shown_row(suppressed: dict, layout: Layout) -> tuple[np.ndarray, bool]:
    """:func:`models.suppression.suppress`'s answer packed as ``int32 [scope, field]``
    (``HIDDEN`` for null), and whether it shows service-need groups."""
    out = np.full((len(layout.scopes), len(FIELDS)), HIDDEN, dtype=np.int32)
    groups = "service_need_groups" in suppressed["all"]

    def put(i: int, scope: dict) -> None:
        vals = [scope["indicators"][f] for f in INDICATORS]
        if groups:
            vals += [scope["service_need_groups"][g[1:]] for g in GROUPS]
        out[i, : len(vals)] = [HIDDEN if v is None else v for v in vals]

    put(0, suppressed["all"])
    for m, scope in suppressed["municipalities"].items():
        put(layout.index[f"m:{m}"], scope)
    for pc, scope in suppressed["areas"].items():
        put(layout.index[f"a:{pc}"], scope)
    return out, groups


def suppress_rows(
    values: np.ndarray, layout: Layout, min_cell: int
) -> tuple[np.ndarray, np.ndarray]:
    """Suppress each day of ``values`` (``[day, scope, keyed field]``) as a whole
    picture: ``(shown int32 [day, scope, field], groups bool [day])``, the exact counts
    of the shown cells. CPU-bound: run it off the event loop."""
    shown = np.empty((*values.shape[:2], len(FIELDS)), dtype=np.int32)
    groups = np.zeros(len(values), dtype=bool)
    for d in range(len(values)):
        sup = suppress(raw_picture(values[d], layout), min_cell)
        shown[d], groups[d] = shown_row(sup, layout)
    return shown, groups


def publish_rows(
    values: np.ndarray, layout: Layout, min_cell: int
) -> tuple[np.ndarray, np.ndarray]:
    """What is published of each day of ``values``: :func:`suppress_rows`, then every
    shown count perturbed by its cell key (:func:`models.publication.perturb`).
    ``(published int32 [day, scope, field], groups bool [day])``."""
    shown, groups = suppress_rows(values, layout, min_cell)
    return perturb(shown, values[..., len(FIELDS) :], min_cell), groups


def cells(
    row: Sequence[int], groups: bool, indicators: Iterable[str] = INDICATORS
) -> tuple[dict, dict | None, list[str]]:
    """One scope of a shown row as the answer has it: ``(indicators, service_need_groups
    or None, suppressed)``, limited to ``indicators`` (groups whenever the day has them).

    >>> row = [40, 70, HIDDEN, 0, 6, 0, 0, 9] + [HIDDEN] * 10
    >>> ind, grp, sup = cells(row, False, ("families", "single_parent_families"))
    >>> ind, grp, sup
    ({'families': 40, 'single_parent_families': None}, None, ['single_parent_families'])
    """
    ind, suppressed = {}, []
    for name in indicators:
        v = row[FIELD_INDEX[name]]
        if v == HIDDEN:
            ind[name] = None
            suppressed.append(name)
        else:
            ind[name] = v
    if not groups:
        return ind, None, suppressed
    grp = {}
    for j, g in enumerate(GROUPS):
        v = row[N_IND + j]
        key = g[1:]
        if v == HIDDEN:
            grp[key] = None
            suppressed.append(GROUP_NAMES[j])
        else:
            grp[key] = v
    return ind, grp, suppressed
