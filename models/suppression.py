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

from collections.abc import Iterable, Mapping

import numpy as np

from models.contract import GROUPS, INDICATORS

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
    rank = {s: i for i, s in enumerate(scopes)}
    findex = {f: i for i, f in enumerate(fields)}

    def key(cell: Cell) -> tuple:
        # Smallest non-zero first, then zeros; ties broken by scope and field order.
        v = value[cell]
        return (v == 0, v, rank[cell[0]], findex[cell[1]])

    def fixed_point() -> None:
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
                hidden.add(min(shown_parts, key=key) if shown_parts else total)
                changed = True

    # Secondary: per-relation rules, then the whole-system audit, to a fixed point.
    for _ in range(len(value) + 1):
        fixed_point()
        extra = _audit(relations, hidden, value, key)
        if extra is None:
            break
        hidden.add(extra)

    hidden |= empty

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


def _audit(relations, hidden: set[Cell], value: dict[Cell, int], key) -> Cell | None:
    """A shown cell to hide next, or None when no hidden cell is exactly determined.

    Shown cells are known constants, so each relation is a linear equation in the
    hidden cells. A hidden cell ``x`` is determined iff the unit vector ``e_x`` lies in
    the row space of that system, i.e. iff the orthogonal projection onto the row space
    maps ``e_x`` to itself. Relations sharing hidden cells are solved together
    (connected components), each with one SVD.
    """
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
    if not rows:
        return None
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
    if not determined:
        return None
    # Fix the first determined cell: hide the smallest shown part (or total) of a
    # relation that involves it; failing that, of any relation of its component.
    x, comp_rows = min(determined, key=lambda d: key(d[0]))
    candidates = []
    for total, parts in relations:
        if x == total or x in parts:
            candidates += [c for c in (total, *parts) if c not in hidden]
    if not candidates:
        for _, total, parts in comp_rows:
            candidates += [c for c in (total, *parts) if c not in hidden]
    if not candidates:
        return None  # nothing left to hide: cannot happen for sum relations in practice
    return min(candidates, key=key)
