"""Small-cell suppression of the whole situation picture.

Pure domain logic: no Redis, Faust or Kafka. The API and ``tilannekuva picture`` call
:func:`suppress` on the same unsuppressed picture and so show the same cells.

The picture is a set of *cells* ``(scope, field)``; scopes are ``"all"``,
``"m:{code}"`` and ``"a:{postcode}"``, fields are the eight indicators and, once the
family-types model runs, the service-need groups ``g1`` … ``g10``. The cells satisfy
linear *relations* ``total = Σ parts`` that an attacker can use to subtract:

* hierarchy, for every field: municipality = Σ its areas, all = Σ municipalities;
* groups, for every scope: ``families`` = Σ ``g1`` … ``g10``.

Primary suppression hides every count from 1 to ``min_cell − 1`` and every count of a
scope whose ``families`` is under ``min_cell``. Secondary suppression then makes every
relation safe: the suppressed cells of a relation are none, or at least two, and when
the relation's total is shown the suppressed parts add up to at least ``min_cell``.
A violated relation hides its smallest shown non-zero part (then zero parts, then the
total itself), and the rules are applied until nothing changes. A final audit solves
the whole linear system (relations × suppressed cells) and hides more cells while any
suppressed cell is still determined exactly by a combination of relations (which the
groups × areas cross-structure can allow even when every single relation is safe).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from models.contract import GROUPS, INDICATORS, type_field

Cell = tuple[str, str]  # (scope key, field)


def _scope_keys(picture: Mapping) -> tuple[list[str], dict[str, list[str]], dict[str, str | None]]:
    """Scope keys, the areas of each municipality and each area's municipality."""
    munis = sorted((picture.get("municipalities") or {}).keys())
    areas_of: dict[str, list[str]] = {m: [] for m in munis}
    area_muni: dict[str, str | None] = {}
    for pc in sorted((picture.get("areas") or {}).keys()):
        code = (picture["areas"][pc] or {}).get("municipality")
        area_muni[pc] = code
        if code in areas_of:
            areas_of[code].append(pc)
    return munis, areas_of, area_muni


def _counts(picture: Mapping) -> dict[str, Mapping]:
    out: dict[str, Mapping] = {"all": picture.get("all") or {}}
    for code, counts in (picture.get("municipalities") or {}).items():
        out[f"m:{code}"] = counts or {}
    for pc, area in (picture.get("areas") or {}).items():
        out[f"a:{pc}"] = (area or {}).get("counts") or {}
    return out


def _relations(
    munis: list[str],
    areas_of: dict[str, list[str]],
    scopes: Iterable[str],
    fields: tuple[str, ...],
    groups: bool,
) -> list[tuple[Cell, list[Cell]]]:
    rels: list[tuple[Cell, list[Cell]]] = []
    for f in fields:
        if munis:
            rels.append((("all", f), [(f"m:{m}", f) for m in munis]))
        for m in munis:
            if areas_of[m]:
                rels.append(((f"m:{m}", f), [(f"a:{pc}", f) for pc in areas_of[m]]))
    if groups:
        for s in scopes:
            rels.append(((s, "families"), [(s, g) for g in GROUPS]))
    return rels


def _order(scope: str) -> tuple[int, str]:
    return (0 if scope == "all" else 1 if scope.startswith("m:") else 2, scope)


def suppress(picture: dict, min_cell: int) -> dict:
    """Suppress small cells of the whole picture, primary and secondary.

    Parameters
    ----------
    picture : dict
        The unsuppressed picture: ``{"all": counts, "municipalities": {code: counts},
        "areas": {postcode: {"municipality": code, "counts": counts}}}`` where
        ``counts`` maps the eight indicators (missing ones count 0) and optionally
        ``"g1"`` … ``"g10"`` to non-negative integers. Other keys are ignored.
    min_cell : int
        The threshold ``SITUATION_MIN_CELL``: counts from 1 to ``min_cell − 1`` are
        never shown, nor are any counts of a scope with fewer than ``min_cell``
        families.

    Returns
    -------
    dict
        ``{"all": scope, "municipalities": {code: scope}, "areas": {postcode:
        {"municipality": code, **scope}}}`` where ``scope`` is ``{"indicators":
        {name: int | None}, "service_need_groups": {"1": int | None, …},
        "suppressed": [names]}``. ``service_need_groups`` is present only when some
        scope of the input has group fields; suppressed groups are listed as
        ``"service_need_groups.3"``. A shown value always equals the input. The
        result is deterministic.

    Examples
    --------
    >>> c = lambda fam, kids: {"families": fam, "children": kids}
    >>> out = suppress({"all": c(30, 50), "municipalities": {"837": c(30, 50)},
    ...                 "areas": {"33100": {"municipality": "837", "counts": c(27, 45)},
    ...                           "33200": {"municipality": "837", "counts": c(3, 5)}}}, 5)
    >>> out["areas"]["33200"]["indicators"]["families"] is None  # primary
    True
    >>> out["areas"]["33100"]["indicators"]["families"] is None  # secondary
    True
    >>> out["municipalities"]["837"]["indicators"]["children"]
    50
    >>> out["areas"]["33100"]["suppressed"][:2]
    ['families', 'children']
    """
    sol = _solve(picture, min_cell)
    hidden, has_groups = sol.hidden | sol.empty, sol.has_groups
    munis, area_muni, value = sol.munis, sol.area_muni, sol.value

    def scope_out(s: str) -> dict:
        out: dict = {
            "indicators": {f: (None if (s, f) in hidden else value[(s, f)]) for f in INDICATORS}
        }
        names = [f for f in INDICATORS if (s, f) in hidden]
        if has_groups:
            out["service_need_groups"] = {
                g[1:]: (None if (s, g) in hidden else value[(s, g)]) for g in GROUPS
            }
            names += [f"service_need_groups.{g[1:]}" for g in GROUPS if (s, g) in hidden]
        out["suppressed"] = names
        return out

    return {
        "all": scope_out("all"),
        "municipalities": {m: scope_out(f"m:{m}") for m in munis},
        "areas": {
            pc: {"municipality": area_muni[pc], **scope_out(f"a:{pc}")} for pc in sorted(area_muni)
        },
    }


def suppress_types(
    picture: Mapping,
    types: Mapping[str, Mapping[int, int]],
    min_cell: int,
    groups_of: Mapping[int, Collection[int]] | None = None,
) -> dict[str, dict] | None:
    """Suppress the family-type counts of every scope, consistently with the picture.

    The type counts of a scope partition its families (``families`` = Σ types), and
    each type's counts add up like any field (municipality = Σ its areas, all = Σ
    municipalities). They are suppressed together with the picture's ``families`` and
    ``g1`` … ``g10`` cells, whose state :func:`suppress` decides and which stay as the
    picture shows them (frozen). A type's service-need group is published with it, so
    a group's count is the sum of its types' counts (``groups_of``): these relations
    join in, by blocks of groups where a type's families may lie in two groups (a
    boundary split). Primary suppression hides every type count from 1 to
    ``min_cell − 1`` and every type count of a scope with fewer than ``min_cell``
    families; secondary suppression (the same rules and whole-system audit as
    :func:`suppress`) hides more type counts until no hidden cell -- a type count, or a
    ``families`` or group count the picture hides -- can be recovered by subtraction
    across types, groups or scopes.

    Parameters
    ----------
    picture : Mapping
        The unsuppressed picture, as for :func:`suppress`.
    types : Mapping
        ``{scope: {type id: families}}`` for scopes ``"all"``, ``"m:<code>"``,
        ``"a:<postcode>"`` (missing: 0). Each scope's counts must add up to its
        ``families``.
    min_cell : int
        ``SITUATION_MIN_CELL``.
    groups_of : Mapping, optional
        ``{type id: the groups its families may be in}`` (its group, and the next one
        where the model splits it); None: the types say nothing of the groups. A type
        missing from it may be in any group.

    Returns
    -------
    dict
        ``{scope: {"families": int | None, "types": {type id: count}, "hidden": int,
        "hidden_families": int | None}}`` for every scope of the picture: ``families``
        as the picture shows it; ``types`` the shown non-zero counts; ``hidden`` how many
        type counts are not shown (zeros among them, hidden to protect others);
        ``hidden_families`` their families together (``families`` − Σ shown, so null
        where ``families`` is), 0 or at least ``min_cell``. None when no choice of type
        counts to hide keeps every hidden cell safe: the types then say nothing (it
        takes a model whose groups give away cells the picture hides, e.g. a group
        without any type where the picture hides a 0 to protect its neighbours).

    Examples
    --------
    >>> c = lambda fam: {"families": fam}
    >>> pic = {"all": c(35), "municipalities": {"837": c(35)},
    ...        "areas": {"33100": {"municipality": "837", "counts": c(20)},
    ...                  "33200": {"municipality": "837", "counts": c(15)}}}
    >>> whole = {1: 20, 2: 13, 3: 2}
    >>> out = suppress_types(pic, {"all": whole, "m:837": whole,
    ...                            "a:33100": {1: 12, 2: 6, 3: 2}, "a:33200": {1: 8, 2: 7}}, 5)
    >>> out["a:33100"]  # 2 is small; 6 goes with it, else 2 = 20 − 12 − 6
    {'families': 20, 'types': {1: 12}, 'hidden': 2, 'hidden_families': 8}
    >>> out["a:33200"]["types"], out["m:837"]["types"]  # 13 = 6 + 7 would give 6 away
    ({1: 8, 2: 7}, {1: 20})
    """
    sol, tids, value, hidden, sound = _solve_types(picture, types, min_cell, groups_of)
    if not sound:
        return None
    tfields = tuple(type_field(t) for t in tids)
    out: dict[str, dict] = {}
    for s in sol.scopes:
        fam = value[(s, "families")]
        shown_fam = None if (s, "families") in hidden or fam == 0 else fam
        shown = {
            t: value[(s, f)]
            for t, f in zip(tids, tfields, strict=True)
            if (s, f) not in hidden and value[(s, f)]
        }
        out[s] = {
            "families": shown_fam,
            "types": shown,
            "hidden": sum(1 for f in tfields if (s, f) in hidden),
            "hidden_families": None if shown_fam is None else fam - sum(shown.values()),
        }
    return out


def _solve_types(
    picture: Mapping,
    types: Mapping[str, Mapping[int, int]],
    min_cell: int,
    groups_of: Mapping[int, Collection[int]] | None = None,
) -> tuple[_Solved, list[int], dict[Cell, int], set[Cell], bool]:
    """:func:`suppress_types` as cells: the picture's solution, the type ids, every cell's
    value (``families``, groups, ``t<id>``), the hidden ones, and whether they are safe."""
    sol = _solve(picture, min_cell)
    tids = sorted({t for counts in types.values() for t, n in counts.items() if n})
    tfields = tuple(type_field(t) for t in tids)
    base = ("families", *(GROUPS if sol.has_groups else ()))
    fields = (*base, *tfields)
    value: dict[Cell, int] = {}
    for s in sol.scopes:
        counts = types.get(s) or {}
        value.update(((s, f), sol.value[(s, f)]) for f in base)
        for t, f in zip(tids, tfields, strict=True):
            v = int(counts.get(t) or 0)
            if v < 0:
                raise ValueError(f"negative count {f}={v} in {s}")
            value[(s, f)] = v
        if sum(value[(s, f)] for f in tfields) != value[(s, "families")]:
            raise ValueError(f"the type counts of {s} do not add up to its families")
    frozen = {c for c in value if c[1] in base}
    hidden = {c for c in sol.hidden if c in frozen}
    for s in sol.scopes:
        fam = value[(s, "families")]
        if fam == 0:
            continue  # nothing in it: every type count is a known 0
        if fam < min_cell:
            hidden.update((s, f) for f in tfields)
        else:
            hidden.update((s, f) for f in tfields if 0 < value[(s, f)] < min_cell)
    relations = _relations(sol.munis, sol.areas_of, sol.scopes, fields, sol.has_groups)
    extra: list[tuple[list[Cell], list[Cell]]] = []
    if tfields:
        relations += [((s, "families"), [(s, f) for f in tfields]) for s in sol.scopes]
    if tfields and sol.has_groups and groups_of is not None:
        for gs, ts in group_blocks(groups_of, tids, empty=True):
            if not ts:
                # No type of the model is in these groups: they hold no family in any
                # scope, and the attacker knows it (from the groups of the types shown).
                for s in sol.scopes:
                    for g in gs:
                        if value[(s, f"g{g}")] == 0:
                            hidden.discard((s, f"g{g}"))
                continue
            for s in sol.scopes:
                cells = [(s, type_field(t)) for t in ts]
                if len(gs) == 1:
                    relations.append(((s, f"g{gs[0]}"), cells))
                else:
                    extra.append(([(s, f"g{g}") for g in gs], cells))
                if len(gs) == 1 and len(ts) == 1 and value[cells[0]] == value[(s, f"g{gs[0]}")]:
                    # The group's only type: its count is the group's, shown or hidden
                    # as the picture has it (hiding it alone would protect nothing).
                    frozen.add(cells[0])
                    if (s, f"g{gs[0]}") in hidden:
                        hidden.add(cells[0])
                    else:
                        hidden.discard(cells[0])
    # A known 0 (a frozen cell the picture shows, or one known as below) makes every
    # part of its sums a known 0: no count to protect, nor any protection.
    settled = False
    while not settled:
        settled = True
        sums = [([total], parts) for total, parts in relations] + list(extra)
        for plus, parts in sums:
            if all(c in frozen and c not in hidden and value[c] == 0 for c in plus):
                for c in parts:
                    if value[c] == 0 and (c not in frozen or c in hidden):
                        frozen.add(c)
                        hidden.discard(c)
                        settled = False
    key = _key(value, sol.scopes, fields)
    sound = _protect(
        relations, hidden, value, key, min_cell, frozen, gram=True, extra=extra, many=True
    )
    return sol, tids, value, hidden, sound


def group_blocks(
    groups_of: Mapping[int, Collection[int]], tids: Iterable[int], empty: bool = False
) -> list[tuple[list[int], list[int]]]:
    """``[(groups, type ids), …]``: the smallest blocks of service-need groups whose
    families are the families of a set of types (Σ groups of a block = Σ its types), from
    the groups each type's families may be in. Blocks without a type (groups that hold
    no family) only with ``empty``.

    >>> group_blocks({1: [3], 2: [3, 4], 3: [6], 4: [4]}, [1, 2, 3, 4])
    [([3, 4], [1, 2, 4]), ([6], [3])]
    >>> group_blocks({1: [2]}, [1], empty=True)[:3]
    [([1], []), ([2], [1]), ([3], [])]
    >>> group_blocks({1: [3]}, [1, 2])  # type 2 may be anywhere: one block of all
    [([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [1, 2])]
    """
    everything = [int(g[1:]) for g in GROUPS]
    parent = {g: g for g in everything}

    def find(g: int) -> int:
        while parent[g] != g:
            parent[g] = parent[parent[g]]
            g = parent[g]
        return g

    home: dict[int, int] = {}
    for t in tids:
        gs = [g for g in groups_of.get(t, everything) if g in parent] or everything
        for g in gs[1:]:
            parent[find(g)] = find(gs[0])
        home[t] = gs[0]
    blocks: dict[int, tuple[list[int], list[int]]] = {}
    for g in everything:
        blocks.setdefault(find(g), ([], []))[0].append(g)
    for t in sorted(home):
        blocks[find(home[t])][1].append(t)
    return sorted((gs, ts) for gs, ts in blocks.values() if ts or empty)


@dataclass
class _Solved:
    """The whole picture as cells, with its relations and the cells suppression hides:
    ``hidden`` (primary and secondary, the cells that relations must protect) and
    ``empty`` (every cell of a scope that holds nothing: blanked, protecting nobody)."""

    munis: list[str]
    areas_of: dict[str, list[str]]
    area_muni: dict[str, str | None]
    scopes: list[str]
    has_groups: bool
    value: dict[Cell, int]
    hidden: set[Cell]
    empty: set[Cell]


def _solve(picture: Mapping, min_cell: int) -> _Solved:
    """Primary and secondary suppression of the whole picture (see :func:`suppress`)."""
    if min_cell < 1:
        raise ValueError("min_cell must be at least 1")
    munis, areas_of, area_muni = _scope_keys(picture)
    raw = _counts(picture)
    scopes = sorted(raw, key=_order)
    has_groups = any(g in counts for counts in raw.values() for g in GROUPS)
    fields = INDICATORS + (GROUPS if has_groups else ())

    value: dict[Cell, int] = {}
    for s in scopes:
        for f in fields:
            v = int(raw[s].get(f) or 0)
            if v < 0:
                raise ValueError(f"negative count {f}={v} in {s}")
            value[(s, f)] = v

    # Primary. A scope that holds nothing (every count 0) shows nothing either, but its
    # cells protect nobody: they stay out of ``hidden``, the set that secondary
    # suppression protects, and are blanked only in the output (``empty``).
    hidden: set[Cell] = set()
    empty: set[Cell] = set()
    for s in scopes:
        if all(value[(s, f)] == 0 for f in fields):
            empty.update((s, f) for f in fields)
        elif value[(s, "families")] < min_cell:
            hidden.update((s, f) for f in fields)
        else:
            hidden.update((s, f) for f in fields if 0 < value[(s, f)] < min_cell)

    relations = _relations(munis, areas_of, scopes, fields, has_groups)
    _protect(relations, hidden, value, _key(value, scopes, fields), min_cell)
    return _Solved(munis, areas_of, area_muni, scopes, has_groups, value, hidden, empty)


def _key(value: Mapping[Cell, int], scopes: list[str], fields: Iterable[str]):
    """The order in which cells are chosen for secondary suppression: the smallest
    non-zero first, then zeros; ties broken by scope and field order."""
    rank = {s: i for i, s in enumerate(scopes)}
    findex = {f: i for i, f in enumerate(fields)}

    def key(cell: Cell) -> tuple:
        v = value[cell]
        return (v == 0, v, rank[cell[0]], findex[cell[1]])

    return key


def _protect(
    relations: list[tuple[Cell, list[Cell]]],
    hidden: set[Cell],
    value: Mapping[Cell, int],
    key,
    min_cell: int,
    frozen: frozenset[Cell] | set[Cell] = frozenset(),
    gram: bool = False,
    extra: Sequence[tuple[list[Cell], list[Cell]]] = (),
    many: bool = False,
) -> bool:
    """Secondary suppression: add to ``hidden`` until every relation is safe and no
    hidden cell is determined by the whole system (per-relation rules, then the audit,
    to a fixed point). Cells in ``frozen`` are never chosen: their state is decided
    elsewhere (another table already published). ``gram``: the audit's projection from
    the Gram matrix of the relations (:func:`_projection_gram`, for large systems).
    ``extra``: equations ``Σ plus = Σ minus`` of another form than ``total = Σ parts``,
    for the audit only. ``many``: several cells per round of the audit
    (:func:`_audit_many`). Returns whether that was reached: without frozen cells always;
    with them, a rule that only a frozen cell could mend, or a cell determined whatever
    else is hidden, leaves it unreached."""
    mended = [True]

    def fixed_point() -> None:
        mended[0] = True
        changed = True
        while changed:
            changed = False
            for total, parts in relations:
                hidden_parts = [p for p in parts if p in hidden]
                shown_parts = [p for p in parts if p not in hidden]
                if total in hidden:
                    ok = bool(hidden_parts) or not parts
                else:
                    ok = not hidden_parts or (
                        len(hidden_parts) >= 2 and sum(value[p] for p in hidden_parts) >= min_cell
                    )
                if ok:
                    continue
                choices = [p for p in shown_parts if p not in frozen]
                if choices:
                    hidden.add(min(choices, key=key))
                elif total not in hidden and total not in frozen:
                    hidden.add(total)
                else:
                    mended[0] = False  # only frozen cells could mend it (none without them)
                    continue
                changed = True

    stuck: list[Cell] = []
    for _ in range(len(value) + 1):
        fixed_point()
        if many:
            more = _audit_many(relations, hidden, value, key, frozen, gram, extra, stuck, True)
        else:
            one = _audit(relations, hidden, value, key, frozen, gram, extra, stuck)
            more = [] if one is None else [one]
        if not more:
            break
        hidden.update(more)
    return mended[0] and not stuck


def _audit(
    relations,
    hidden: set[Cell],
    value: Mapping[Cell, int],
    key,
    frozen: frozenset[Cell] | set[Cell] = frozenset(),
    gram: bool = False,
    extra: Sequence[tuple[list[Cell], list[Cell]]] = (),
    stuck: list[Cell] | None = None,
) -> Cell | None:
    """A shown cell to hide next (:func:`_audit_many`'s first), or None."""
    more = _audit_many(relations, hidden, value, key, frozen, gram, extra, stuck, many=False)
    return more[0] if more else None


def _audit_many(
    relations,
    hidden: set[Cell],
    value: Mapping[Cell, int],
    key,
    frozen: frozenset[Cell] | set[Cell] = frozenset(),
    gram: bool = False,
    extra: Sequence[tuple[list[Cell], list[Cell]]] = (),
    stuck: list[Cell] | None = None,
    many: bool = False,
) -> list[Cell]:
    """Shown cells to hide next: none when no hidden cell is exactly determined (or
    none of the determined can be helped without hiding a frozen cell: those are added
    to ``stuck``); one for the first determined cell; with ``many``, one for each
    determined cell whose relations got none yet (fewer rounds of a costly audit).

    Shown cells are known constants, so each relation is a linear equation in the
    hidden cells. A hidden cell ``x`` is determined iff the unit vector ``e_x`` lies in
    the row space of that system, i.e. iff the orthogonal projection onto the row space
    maps ``e_x`` to itself. Relations sharing hidden cells are solved together
    (connected components), each with one SVD (or, with ``gram``, one symmetric
    eigendecomposition of the relations' Gram matrix: :func:`_projection_gram`).
    """
    if stuck is not None:
        stuck.clear()
    chosen: list[Cell] = []
    rows = []
    for total, parts in relations:
        coeffs = {}
        if total in hidden:
            coeffs[total] = 1.0
        for p in parts:
            if p in hidden:
                coeffs[p] = coeffs.get(p, 0.0) - 1.0
        if coeffs:
            rows.append((coeffs, total, parts))
    # Σ plus = Σ minus, kept as (first of plus, the rest) for the choice of a cell below.
    extra_relations = [(plus[0], [*plus[1:], *minus]) for plus, minus in extra]
    for plus, minus in extra:
        coeffs = {}
        for c in plus:
            if c in hidden:
                coeffs[c] = coeffs.get(c, 0.0) + 1.0
        for c in minus:
            if c in hidden:
                coeffs[c] = coeffs.get(c, 0.0) - 1.0
        coeffs = {c: v for c, v in coeffs.items() if v}
        if coeffs:
            rows.append((coeffs, plus[0], [*plus[1:], *minus]))
    if not rows:
        return chosen
    # Union-find over hidden cells to split into independent components.
    parent: dict[Cell, Cell] = {}

    def find(c: Cell) -> Cell:
        while parent.setdefault(c, c) != c:
            parent[c] = parent[parent[c]]
            c = parent[c]
        return c

    for coeffs, _, _ in rows:
        cells = list(coeffs)
        for c in cells[1:]:
            parent[find(c)] = find(cells[0])
    comps: dict[Cell, list] = {}
    for row in rows:
        comps.setdefault(find(next(iter(row[0]))), []).append(row)

    determined: list[tuple[Cell, list]] = []
    for comp_rows in comps.values():
        cells = sorted({c for coeffs, _, _ in comp_rows for c in coeffs}, key=key)
        col = {c: i for i, c in enumerate(cells)}
        if gram:
            proj_diag = _projection_gram([coeffs for coeffs, _, _ in comp_rows], col)
        else:
            a = np.zeros((len(comp_rows), len(cells)))
            for i, (coeffs, _, _) in enumerate(comp_rows):
                for c, v in coeffs.items():
                    a[i, col[c]] = v
            _, s, vt = np.linalg.svd(a, full_matrices=False)
            r = int((s > 1e-9 * max(1.0, s[0] if len(s) else 0.0)).sum())
            proj_diag = (vt[:r] ** 2).sum(axis=0)
        for c in cells:
            if proj_diag[col[c]] > 1 - 1e-7:
                determined.append((c, comp_rows))
    # Fix the first determined cell: hide the smallest shown part (or total) of a
    # relation that involves it; failing that, of any relation of its component. (A
    # determined cell without any: with frozen cells only; then the next one.)
    touched: set[int] = set()
    every = [*relations, *extra_relations]
    for x, comp_rows in sorted(determined, key=lambda d: key(d[0])):
        mine = [i for i, (total, parts) in enumerate(every) if x == total or x in parts]
        if touched & set(mine):
            continue  # a cell hidden for another determined cell this round may do
        candidates = []
        for i in mine:
            total, parts = every[i]
            candidates += [c for c in (total, *parts) if c not in hidden and c not in frozen]
        if not candidates:
            for _, total, parts in comp_rows:
                candidates += [c for c in (total, *parts) if c not in hidden and c not in frozen]
        candidates = [c for c in candidates if c not in chosen]
        if candidates:
            chosen.append(min(candidates, key=key))
            if not many:
                return chosen
            touched |= set(mine)
        elif stuck is not None:
            stuck.append(x)
    return chosen


def _projection_gram(rows: list[dict[Cell, float]], col: dict[Cell, int]) -> np.ndarray:
    """The diagonal of the orthogonal projection onto the row space of the sparse system
    ``rows`` (``{cell: coefficient}`` each; columns numbered by ``col``).

    ``G = A Aᵀ`` (rows × rows: small, and cheap from a sparse ``A``) is factored by
    Cholesky with complete pivoting (LAPACK ``dpstrf``), which picks ``r`` linearly
    independent rows ``A_r`` (pivots down to 1e-9, far above rounding noise for these
    ±1 sum systems and far below their smallest true pivot) with ``A_r A_rᵀ = L Lᵀ``.
    The projection is then ``A_rᵀ (L Lᵀ)⁻¹ A_r``, so its diagonal is the squared norm of
    each column of ``L⁻¹ A_r``: the same as the SVD's ``Σ vt[:r]²``, at a fraction of its
    cost when there are thousands of rows and columns.

    >>> a, b, c = ("s", "a"), ("s", "b"), ("s", "c")
    >>> _projection_gram([{a: 1.0, b: -1.0}, {b: 1.0}], {a: 0, b: 1, c: 2}).round(6).tolist()
    [1.0, 1.0, 0.0]
    >>> _projection_gram([{a: 1.0, b: -1.0}, {a: -1.0, b: 1.0}], {a: 0, b: 1}).round(6).tolist()
    [0.5, 0.5]
    """
    from scipy import sparse  # river's dependency: always installed with this package
    from scipy.linalg import lapack

    ri = [i for i, coeffs in enumerate(rows) for _ in coeffs]
    ci = [col[c] for coeffs in rows for c in coeffs]
    vi = [v for coeffs in rows for v in coeffs.values()]
    a = sparse.csr_matrix((vi, (ri, ci)), shape=(len(rows), len(col)))
    factor, piv, rank, _ = lapack.dpstrf((a @ a.T).toarray(), lower=1, tol=1e-9)
    if rank == 0:
        return np.zeros(len(col))
    linv, _ = lapack.dtrtri(np.tril(factor[:rank, :rank]), lower=1)
    ar_t = a[piv[:rank] - 1, :].T.tocsr()  # columns × independent rows
    diag = np.empty(len(col))
    for s in range(0, len(col), 4096):
        block = np.asarray(ar_t[s : s + 4096] @ linv.T)
        diag[s : s + 4096] = (block**2).sum(axis=1)
    return diag
