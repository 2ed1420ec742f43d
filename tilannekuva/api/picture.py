"""The answer bodies of the picture: published days, empty answers, audit answers.

What is published is the picture of a *completed* day (the present is ``W − 1``: the day
``W`` is still filling), from the history cache (:mod:`tilannekuva.api.history`, which
takes a new snapshot only when ``W`` moves on): the whole picture of the day suppressed
with :func:`models.suppression.suppress` and its shown counts perturbed by their cell
keys (:func:`tilannekuva.api.cube.publish_rows`, docs/disclosure.md). The exact counts
are answered only on the audit paths (:func:`exact_scope`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.contract import GROUPS, INDICATORS
from tilannekuva.api.cube import Layout, cells
from tilannekuva.api.series import iso


def scope_body(scope: dict, area: str | None, municipality: str | None, as_of, updated_at) -> dict:
    """A :class:`~tilannekuva.api.schemas.Scope`, keys in the contract's order."""
    body = {
        "area": area,
        "municipality": municipality,
        "as_of": as_of,
        "indicators": scope["indicators"],
    }
    if "service_need_groups" in scope:
        body["service_need_groups"] = scope["service_need_groups"]
    body["suppressed"] = scope["suppressed"]
    body["updated_at"] = updated_at
    return body


@dataclass(frozen=True)
class PastDay:
    """A completed day's whole picture, published: ``shown`` is ``int32 [scope, field]``
    in the order of ``layout`` (:mod:`tilannekuva.api.cube`); ``updated_at`` the time it
    was published, for the present (None for ``?as_of``)."""

    day: int
    layout: Layout
    shown: np.ndarray
    groups: bool
    updated_at: str | None = None


def past_scope_body(past: PastDay, scope: str, area: str | None, municipality: str | None) -> dict:
    """A :class:`~tilannekuva.api.schemas.Scope` of a published day."""
    ind, grp, sup = cells(past.shown[past.layout.index[scope]].tolist(), past.groups)
    body = {"area": area, "municipality": municipality, "as_of": iso(past.day), "indicators": ind}
    if grp is not None:
        body["service_need_groups"] = grp
    body["suppressed"] = sup
    body["updated_at"] = past.updated_at
    return body


def empty_body(area: str | None, municipality: str | None) -> dict:
    """A scope before any day is complete: nothing published yet (no families, so no
    counts, as for any scope under the threshold)."""
    return scope_body(
        {"indicators": dict.fromkeys(INDICATORS), "suppressed": list(INDICATORS)},
        area,
        municipality,
        None,
        None,
    )


def exact_scope(counts: dict, area: str | None, municipality: str | None, as_of, updated_at):
    """An audit answer: a :class:`~tilannekuva.api.schemas.Scope` of the exact,
    unsuppressed counts (``counts`` as :mod:`sinks.redis_reader` reads them)."""
    body = {
        "area": area,
        "municipality": municipality,
        "as_of": as_of,
        "indicators": {f: int(counts.get(f, 0)) for f in INDICATORS},
    }
    if any(g in counts for g in GROUPS):
        body["service_need_groups"] = {g[1:]: int(counts.get(g, 0)) for g in GROUPS}
    body["suppressed"] = []
    body["updated_at"] = updated_at
    return body
