"""The shapes of the messages that cross a stage, as TypedDicts (for mypy, not at run time).

Three dicts travel between the stream steps, into Redis and into the model table; each
is plain JSON on the wire, so its shape is written down once here:

* :class:`PersonTail`: what the person stage sends a family of what it knows of the
  person from a day on (:func:`models.person.tail`).
* :class:`Contribution`: what one family adds to the picture at ``W``
  (:func:`models.picture.contribution`); the Redis sink applies it.
* :class:`FamilyTypesSnapshot`: a frozen family-type model
  (:meth:`models.family_types.FamilyTypes.snapshot`), stored in ``tk:model`` and in the
  compacted model changelog, read back by every worker's
  :class:`models.family_types.TypeAssigner`.

A TypedDict is an ordinary ``dict`` at run time: nothing here validates, copies or
converts. Only the standard library is imported, so any module may use these types.

>>> c: Contribution = {"area": "33100", "municipality": "837",
...                    "counts": {"families": 1, "children": 2}, "due": None}
>>> type(c) is dict
True
>>> sorted(Contribution.__required_keys__)
['area', 'counts', 'due', 'municipality']
>>> sorted(PersonTail.__required_keys__)
['cw', 'cwn', 'm', 'mh', 's', 'sa']
"""

# No ``from __future__ import annotations`` here: TypedDict reads NotRequired[...] from
# evaluated annotations on Python 3.11 (with string annotations every key is required).
from typing import Any, NotRequired, TypeAlias, TypedDict

__all__ = [
    "Calibration",
    "Contribution",
    "FamilyTypesSnapshot",
    "Lineage",
    "NeedLinear",
    "PersonTail",
    "Profile",
    "Split",
]

#: A person's feature profile (:func:`models.features.person_profile`) or a family's
#: feature vector (:func:`models.features.family_vector`): feature -> value.
Profile: TypeAlias = dict[str, float]


class PersonTail(TypedDict):
    """A person's lists from a day on, for one family (:func:`models.person.tail`).

    Days are ``date.toordinal()`` numbers. Each change-point list starts with the point in
    force on that day; the date lists start with the earliest date still counting then.
    """

    m: list[list[Any]]  # membership of this family: [day, role, birth] or [day, None, None]
    s: list[list[Any]]  # employment status: [day, status]
    sa: list[list[int]]  # an active basic social assistance episode: [day, 0|1]
    cw: list[list[int]]  # an active child welfare client or placement episode: [day, 0|1]
    cwn: list[int]  # days of child welfare notifications
    mh: list[int]  # days of mental health visits


class Contribution(TypedDict):
    """What one family adds to the picture at ``W`` (:func:`models.picture.contribution`)."""

    area: str  # postcode of the latest residence
    municipality: str  # three-digit code
    counts: dict[str, int]  # indicator (and "g1" … "g10", the group; "t<id>", the type) -> n
    due: int | None  # first day (ordinal, models.picture.day) after W the result may change


class Lineage(TypedDict):
    """How the type ids of a re-based model map to the previous model's."""

    from_version: int
    mapping: list[list[int]]  # [[old id, new id], ...]
    request: NotRequired[str]  # the re-base request carried out (models.learning)
    # The groups' cut points before and after, where the re-base cut them anew (a new
    # baseline: models.family_types.FamilyTypes.calibration)
    cuts: NotRequired[dict[str, list[float]]]  # {"from": [...], "to": [...]}


class NeedLinear(TypedDict):
    """The need score of a snapshot as ``offset + x · weights`` over its ``features``."""

    weights: list[float]
    offset: float


#: A boundary split of one type (:func:`models.service_need.boundary_splits`):
#: ``[type id, "down" | "up", threshold on the family's own need score]``, a JSON list.
Split: TypeAlias = list[Any]


class Calibration(TypedDict):
    """The frozen baseline of the service-need groups (:attr:`FamilyTypes.calibration`):
    the cuts and boundary splits of snapshot ``version``, kept by every later snapshot;
    each split with the group its type had then (``[type id, way, threshold, group]``:
    a split applies only while its type is in that group)."""

    version: int
    cuts: list[float]
    splits: list[list[Any]]


class FamilyTypesSnapshot(TypedDict):
    """A frozen family-type model (:meth:`models.family_types.FamilyTypes.snapshot`).

    Per-feature lists follow ``features``; per-type lists follow ``type_ids``. The keys
    marked NotRequired came later than ``family-types/1`` itself: readers must accept a
    stored snapshot without them.
    """

    schema: str  # models.family_types.SNAPSHOT_SCHEMA
    version: int
    generation: int
    features: list[str]
    weights: list[float]  # clustering weight per feature
    means: list[float]  # scaler means
    stds: list[float]  # weight / scale, per feature
    vars: list[float]  # scaler variances
    scaler_n: int
    centroids: list[list[float]]  # original feature units, one row per type
    type_ids: list[int]
    counts: list[float]  # families assigned per type (learning counts)
    need_scores: list[float]
    groups: list[int]  # service-need group 1 … 10 per type
    cuts: list[float] | None  # the rule's nine cut points; None without a rule
    n_seen: int
    splits: NotRequired[list[Split]]
    need_linear: NotRequired[NeedLinear | None]
    next_id: NotRequired[int]
    lineage: NotRequired[Lineage | None]
    calibration: NotRequired[dict[str, Any] | None]  # {"version", "splits"} of the baseline
    grouping: NotRequired[str]  # "own" (each family's own score) or "type"; absent: "type"
    published: NotRequired[dict[str, Any]]  # {"w_day", "at", "as_of", "first_w_day"}
