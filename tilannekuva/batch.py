"""Batch reference: the situation picture of an event file, computed with pandas.

``tilannekuva picture FILE.jsonl[.gz] [--unsuppressed] [--min-cell N]``

This is the yardstick the streaming pipeline is checked against, so it is written
directly from ``register-events.md`` ("Semantics the picture must honour" and
"Required indicators") and shares no code with ``models/picture.py`` or ``streams/``.
It only uses ``models.contract.validate`` (what counts as an accepted event) and
``models.suppression.suppress`` (the one suppression function of the project).

It works on raw events: ``person`` is the identity code and ``data.family`` the DVV
family id. Nothing of them is printed: the output holds only counts.

The whole picture is a function of the *set* of accepted events:

1. duplicates (same ``event_id``) collapse to the first occurrence in the file;
2. ``W`` = the latest ``occurred_at`` of all accepted events, retractions and
   retracted events included;
3. an ``event.retracted`` removes the event it names, wherever it stands in the file;
   a retraction naming another retraction has no effect;
4. "latest" is by the key ``(occurred_at, recorded_at as a UTC instant, event_id)``.
"""

from __future__ import annotations

import gzip
import json
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

# Only the contract's vocabulary is shared with the stream code, never its logic.
from models.contract import COVERED_MUNICIPALITIES, INDICATORS

RETRACTED = "event.retracted"
MEMBER_ADDED = "family.member_added"
MEMBER_REMOVED = "family.member_removed"
RESIDENCE = "family.residence_changed"
STATUS = "employment.status_changed"
NOTIFICATION = "child_welfare.notification"
VISIT = "health.visit"
EPISODE_TYPES = (
    "benefit.started",
    "benefit.ended",
    "ecec.started",
    "ecec.ended",
    "child_welfare.client_started",
    "child_welfare.client_ended",
    "child_welfare.placement_started",
    "child_welfare.placement_ended",
    "social_service.started",
    "social_service.ended",
)
CHILD_WELFARE_STEMS = ("child_welfare.client", "child_welfare.placement")
NOTIFICATION_DAYS = 30
MENTAL_HEALTH_DAYS = 90

# Type codes: the types the picture reads; every other type is OTHER.
OTHER = -1
_TYPE_LIST = (
    RETRACTED,
    MEMBER_ADDED,
    MEMBER_REMOVED,
    RESIDENCE,
    STATUS,
    NOTIFICATION,
    VISIT,
    *EPISODE_TYPES,
)
TYPE_CODE = {t: i for i, t in enumerate(_TYPE_LIST)}
T_RETRACTED, T_ADDED, T_REMOVED, T_RESIDENCE, T_STATUS, T_NOTIFICATION, T_VISIT = range(7)
_EPISODE_CODES = np.array([TYPE_CODE[t] for t in EPISODE_TYPES])
_STEMS = ("benefit", "ecec", "child_welfare.client", "child_welfare.placement", "social_service")


def _stem(type_: str) -> str:
    """``benefit.started`` → ``benefit``; ``child_welfare.client_ended`` → ``child_welfare.client``."""
    for suffix in (".started", ".ended", "_started", "_ended"):
        if type_.endswith(suffix):
            return type_[: -len(suffix)]
    raise ValueError(type_)


# Lookup tables indexed by type code: the episode's stem (-1: not an episode type) and
# whether the type is a start.
STEM_OF = np.full(len(_TYPE_LIST), -1)
IS_START = np.zeros(len(_TYPE_LIST), dtype=bool)
for _t in EPISODE_TYPES:
    STEM_OF[TYPE_CODE[_t]] = _STEMS.index(_stem(_t))
    IS_START[TYPE_CODE[_t]] = _t.endswith("started")
S_BENEFIT = _STEMS.index("benefit")
S_CHILD_WELFARE = np.array([_STEMS.index(s) for s in CHILD_WELFARE_STEMS])


def zero_counts() -> dict[str, int]:
    return dict.fromkeys(INDICATORS, 0)


# --------------------------------------------------------------------------- input


def _open_text(path: str | Path):
    path = Path(path)
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt", encoding="utf-8", errors="surrogateescape")
    return open(path, encoding="utf-8", errors="surrogateescape")


class InputStats:
    """Lines read and events refused while loading a file."""

    def __init__(self) -> None:
        self.lines = 0
        self.accepted = 0
        self.invalid = 0
        self.reasons: dict[str, int] = {}

    def refuse(self, code: str) -> None:
        self.invalid += 1
        self.reasons[code] = self.reasons.get(code, 0) + 1


def load_events(path: str | Path, stats: InputStats | None = None) -> Iterator[dict]:
    """Validated events of a JSON-lines file (plain or gzip); invalid lines are skipped
    and counted in ``stats``. Blank lines are not events and are ignored."""
    from models.contract import InvalidEvent, validate

    stats = stats if stats is not None else InputStats()
    with _open_text(path) as fh:
        for line in fh:
            if not line.strip():
                continue
            stats.lines += 1
            try:
                event = validate(line)
            except InvalidEvent as exc:
                stats.refuse(exc.code)
                continue
            except Exception:  # never let one bad line stop the reference
                stats.refuse("other")
                continue
            stats.accepted += 1
            yield event


class EventTable:
    """Events as parallel columns, in input order (``data`` kept as the dicts)."""

    def __init__(self, events: Iterable[dict]) -> None:
        ids: list = []
        types: list = []
        occurred: list = []
        recorded: list = []
        persons: list = []
        datas: list = []
        code = TYPE_CODE.get
        for ev in events:
            ids.append(ev.get("event_id"))
            types.append(code(ev.get("type"), OTHER))
            occurred.append(ev.get("occurred_at"))
            recorded.append(ev.get("recorded_at"))
            persons.append(ev.get("person"))
            datas.append(ev.get("data") or {})
        self.event_id = np.array(ids, dtype=object)
        self.type = np.array(types, dtype=np.int64)
        self.occurred = np.array(occurred, dtype="datetime64[D]")
        self.recorded = np.array(recorded, dtype=object)
        self.person = np.array(persons, dtype=object)
        self.data = datas

    def __len__(self) -> int:
        return len(self.type)

    def field(self, rows: np.ndarray, name: str) -> np.ndarray:
        data = self.data
        return np.array([data[i].get(name) for i in rows], dtype=object)


# --------------------------------------------------------------------------- semantics


def eighteenth_birthday(born: np.ndarray) -> np.ndarray:
    """The 18th birthdays (``datetime64[D]``) of birth dates; 29 February → 28 February
    when the 18th year is a common year."""
    born = np.asarray(born, dtype="datetime64[D]")
    months = born.astype("datetime64[M]")
    day = (born - months).astype(np.int64) + 1
    month_index = months.astype(np.int64)  # months since 1970-01
    year = month_index // 12 + 1970 + 18
    month = month_index % 12 + 1
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    day = np.where((month == 2) & (day == 29) & ~leap, 28, day)
    target_month = (month_index + 18 * 12).astype("datetime64[M]")
    return target_month.astype("datetime64[D]") + (day - 1).astype("timedelta64[D]")


def _recorded_instants(values: np.ndarray) -> np.ndarray:
    """``recorded_at`` strings (any zone) as UTC microseconds since the epoch."""
    if len(values) == 0:
        return np.zeros(0, dtype=np.int64)
    stamps = pd.to_datetime(pd.Series(values, dtype=object), utc=True, format="ISO8601")
    return stamps.dt.tz_localize(None).to_numpy().astype("datetime64[us]").view(np.int64)


def _empty_picture(as_of: str | None) -> dict:
    return {
        "as_of": as_of,
        "all": zero_counts(),
        "municipalities": {code: zero_counts() for code in sorted(COVERED_MUNICIPALITIES)},
        "areas": {},
    }


def compute(events: Iterable[dict]) -> dict:
    """The unsuppressed picture of a collection of accepted (validated) events.

    Returns ``{"as_of": W, "all": counts, "municipalities": {code: counts},
    "areas": {postcode: {"municipality": code, "counts": counts}}}``; ``as_of`` is None
    when there are no events. Events are taken in the given order only to decide which
    copy of a duplicated ``event_id`` is kept (the first).
    """
    return compute_table(EventTable(events))


def compute_table(t: EventTable) -> dict:
    if len(t) == 0:
        return _empty_picture(None)

    # 1. Duplicates: the first occurrence of an event_id is the event.
    id_code, id_uniques = pd.factorize(t.event_id)
    kept = np.flatnonzero(~pd.Series(id_code).duplicated(keep="first").to_numpy())
    # 2. Watermark over everything accepted.
    W = t.occurred[kept].max()
    as_of = str(W)

    # 3. Retractions: a retraction only ever removes a non-retraction event.
    is_retraction = t.type[kept] == T_RETRACTED
    targets = t.field(kept[is_retraction], "event_id")
    target_codes = pd.Index(id_uniques).get_indexer(targets)
    retracted = np.isin(id_code[kept], target_codes[target_codes >= 0]) & ~is_retraction
    live = kept[~is_retraction & ~retracted]
    live_type = t.type[live]

    def rows(*codes: int) -> np.ndarray:
        return live[np.isin(live_type, codes)]

    person_code, _ = pd.factorize(t.person)  # None -> -1
    n_persons = int(person_code.max()) + 1 if len(person_code) else 0

    # 4. One rank by the order key (occurred_at, recorded_at instant, event_id) over the
    #    events whose "latest" matters, so "later than" is a comparison of integers.
    ordered = rows(T_ADDED, T_REMOVED, T_RESIDENCE, T_STATUS)
    id_rank, _ = pd.factorize(t.event_id[ordered], sort=True)
    order = np.lexsort(
        (id_rank, _recorded_instants(t.recorded[ordered]), t.occurred[ordered].astype(np.int64))
    )
    rank = np.empty(len(ordered), dtype=np.int64)
    rank[order] = np.arange(len(ordered))
    otype = t.type[ordered]

    def ordered_part(code: int) -> tuple[np.ndarray, np.ndarray]:
        sel = otype == code
        return ordered[sel], rank[sel]

    # Membership: the latest member_added wins, unless a member_removed for the same
    # family is later still.
    add_rows, add_rank = ordered_part(T_ADDED)
    rem_rows, rem_rank = ordered_part(T_REMOVED)
    res_rows, res_rank = ordered_part(T_RESIDENCE)
    family_code, _ = pd.factorize(
        np.concatenate(
            [t.field(add_rows, "family"), t.field(rem_rows, "family"), t.field(res_rows, "family")]
        )
    )
    n_add, n_rem = len(add_rows), len(rem_rows)
    adds = pd.DataFrame(
        {
            "row": add_rows,
            "person": person_code[add_rows],
            "family": family_code[:n_add],
            "rank": add_rank,
        }
    )
    adds = adds.sort_values("rank").drop_duplicates("person", keep="last")
    removes = (
        pd.DataFrame(
            {
                "person": person_code[rem_rows],
                "family": family_code[n_add : n_add + n_rem],
                "removed_rank": rem_rank,
            }
        )
        .groupby(["person", "family"], sort=False)["removed_rank"]
        .max()
        .reset_index()
    )
    members = adds.merge(removes, on=["person", "family"], how="left")
    members = members.loc[~(members["removed_rank"] > members["rank"])]

    # Residence: the family's latest residence_changed; only the six count.
    residence = (
        pd.DataFrame(
            {
                "family": family_code[n_add + n_rem :],
                "rank": res_rank,
                "municipality": t.field(res_rows, "municipality"),
                "postcode": t.field(res_rows, "postcode"),
            }
        )
        .sort_values("rank")
        .drop_duplicates("family", keep="last")
    )
    residence = residence.loc[residence["municipality"].isin(list(COVERED_MUNICIPALITIES))]
    members = members.merge(residence[["family", "municipality", "postcode"]], on="family")
    if members.empty:
        return _empty_picture(as_of)
    member_rows = members["row"].to_numpy()
    member_person = members["person"].to_numpy()

    # Status: the person's latest employment.status_changed.
    st_rows, st_rank = ordered_part(T_STATUS)
    status = pd.DataFrame(
        {"person": person_code[st_rows], "rank": st_rank, "status": t.field(st_rows, "status")}
    )
    status = status.sort_values("rank").drop_duplicates("person", keep="last")
    unemployed = np.zeros(n_persons, dtype=bool)
    unemployed[status.loc[status["status"] == "unemployed", "person"].to_numpy()] = True

    # Episodes: (person, stem, episode); active iff a start is known and no end is.
    ep_rows = live[np.isin(live_type, _EPISODE_CODES)]
    ep_type = t.type[ep_rows]
    ep_start = IS_START[ep_type]
    episode_code, _ = pd.factorize(t.field(ep_rows, "episode"), use_na_sentinel=False)
    eps = pd.DataFrame(
        {
            "person": person_code[ep_rows],
            "stem": STEM_OF[ep_type],
            "episode": episode_code,
            "start": ep_start,
            "end": ~ep_start,
            "sa_start": ep_start & (t.field(ep_rows, "benefit") == "basic_social_assistance"),
        }
    )
    per_episode = eps.groupby(["person", "stem", "episode"], sort=False)[
        ["start", "end", "sa_start"]
    ].any()
    active = per_episode.loc[per_episode["start"] & ~per_episode["end"]].reset_index()
    social_assistance = np.zeros(n_persons, dtype=bool)
    social_assistance[
        active.loc[(active["stem"] == S_BENEFIT) & active["sa_start"], "person"].to_numpy()
    ] = True
    child_welfare = np.zeros(n_persons, dtype=bool)
    child_welfare[active.loc[active["stem"].isin(S_CHILD_WELFARE), "person"].to_numpy()] = True

    # Window events: occurred_at in (W - n days, W]; occurred_at <= W always holds.
    n_rows = rows(T_NOTIFICATION)
    n_rows = n_rows[t.occurred[n_rows] > W - np.timedelta64(NOTIFICATION_DAYS, "D")]
    v_rows = rows(T_VISIT)
    v_rows = v_rows[t.occurred[v_rows] > W - np.timedelta64(MENTAL_HEALTH_DAYS, "D")]
    v_rows = v_rows[t.field(v_rows, "service") == "mental_health"]
    notifications = np.bincount(person_code[n_rows], minlength=n_persons)
    visits = np.bincount(person_code[v_rows], minlength=n_persons)

    # Per member, then per family.
    role = t.field(member_rows, "role")
    born = np.array(t.field(member_rows, "birth_date").tolist(), dtype="datetime64[D]")
    parent = role == "parent"
    m = pd.DataFrame(
        {
            "family": members["family"].to_numpy(),
            "child": (role == "child") & (eighteenth_birthday(born) > W),
            "parent": parent,
            "sa": social_assistance[member_person],
            "cw": child_welfare[member_person],
            "unemployed_parent": parent & unemployed[member_person],
            "notif": notifications[member_person],
            "visits": visits[member_person],
        }
    )
    fam = m.groupby("family", sort=False).agg(
        children=("child", "sum"),
        parents=("parent", "sum"),
        sa=("sa", "any"),
        cw=("cw", "any"),
        unemployed_parent=("unemployed_parent", "any"),
        notif=("notif", "sum"),
        visits=("visits", "sum"),
    )
    place = residence.set_index("family").loc[fam.index, ["municipality", "postcode"]]
    counted = (fam["children"] >= 1).to_numpy().astype(np.int64)
    counts = pd.DataFrame(
        {
            "families": counted,
            "children": fam["children"].to_numpy(),
            "single_parent_families": (fam["parents"] == 1).to_numpy(),
            "families_social_assistance": fam["sa"].to_numpy(),
            "families_unemployed_parent": fam["unemployed_parent"].to_numpy(),
            "families_child_welfare": fam["cw"].to_numpy(),
            "child_welfare_notifications_30d": fam["notif"].to_numpy(),
            "mental_health_visits_90d": fam["visits"].to_numpy(),
        }
    ).astype(np.int64)
    # Only counted families (resident, at least one child) contribute anything.
    counts = counts.mul(counted, axis=0)
    counts["municipality"] = place["municipality"].to_numpy()
    counts["postcode"] = place["postcode"].to_numpy()
    return _aggregate(as_of, counts)


def _aggregate(as_of: str, counts: pd.DataFrame) -> dict:
    """Sum per-family counts (resident families only) to areas, municipalities, all."""
    cols = list(INDICATORS)

    def as_counts(values) -> dict[str, int]:
        return {k: int(v) for k, v in zip(cols, values, strict=True)}

    by_mun = counts.groupby("municipality")[cols].sum()
    by_area = counts.groupby("postcode")[cols].sum()
    # The area's municipality: the one its families report (the most common, then the
    # smallest code, should residence events ever disagree).
    area_mun = (
        counts.groupby(["postcode", "municipality"])
        .size()
        .reset_index(name="n")
        .sort_values(["postcode", "n", "municipality"], ascending=[True, False, True])
        .drop_duplicates("postcode")
        .set_index("postcode")["municipality"]
    )
    municipalities = {
        code: as_counts(by_mun.loc[code].to_numpy()) if code in by_mun.index else zero_counts()
        for code in sorted(COVERED_MUNICIPALITIES)
    }
    areas = {
        str(pc): {
            "municipality": str(area_mun[pc]),
            "counts": as_counts(by_area.loc[pc].to_numpy()),
        }
        for pc in sorted(by_area.index)
    }
    return {
        "as_of": as_of,
        "all": as_counts(counts[cols].sum().to_numpy()),
        "municipalities": municipalities,
        "areas": areas,
    }


# --------------------------------------------------------------------------- CLI


def add_arguments(parser) -> None:
    parser.add_argument("file", help="JSON-lines file of raw register events (may be gzip)")
    parser.add_argument(
        "--unsuppressed",
        action="store_true",
        help="print every count (no small-cell suppression); for checking only",
    )
    parser.add_argument(
        "--min-cell",
        type=int,
        default=None,
        help="small-cell threshold (default: SITUATION_MIN_CELL, 5)",
    )


def render(picture: dict, unsuppressed: bool, min_cell: int) -> dict:
    """The printed form: ``{"as_of", "picture", "municipalities", "areas"}`` of indicators."""
    if unsuppressed:
        return {
            "as_of": picture["as_of"],
            "picture": dict(picture["all"]),
            "municipalities": {c: dict(v) for c, v in picture["municipalities"].items()},
            "areas": {p: dict(a["counts"]) for p, a in picture["areas"].items()},
        }
    from models.suppression import suppress

    body = {k: picture[k] for k in ("all", "municipalities", "areas")}
    out = suppress(body, min_cell)
    return {
        "as_of": picture["as_of"],
        "picture": dict(out["all"]["indicators"]),
        "municipalities": {c: dict(v["indicators"]) for c, v in out["municipalities"].items()},
        "areas": {p: dict(v["indicators"]) for p, v in out["areas"].items()},
    }


def run(args, settings) -> int:
    min_cell = args.min_cell if args.min_cell is not None else settings.min_cell
    if min_cell < 1:
        print("tilannekuva picture: --min-cell must be at least 1", file=sys.stderr)
        return 2
    path = Path(args.file)
    if not path.is_file():
        print(f"tilannekuva picture: no such file: {path}", file=sys.stderr)
        return 2
    stats = InputStats()
    t0 = time.perf_counter()
    table = EventTable(load_events(path, stats))
    t1 = time.perf_counter()
    picture = compute_table(table)
    t2 = time.perf_counter()
    out = render(picture, args.unsuppressed, min_cell)
    json.dump(out, sys.stdout, ensure_ascii=False, sort_keys=False)
    sys.stdout.write("\n")
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(stats.reasons.items()))
    print(
        f"tilannekuva picture: {stats.lines} lines, {stats.accepted} accepted, "
        f"{stats.invalid} invalid skipped{f' ({reasons})' if reasons else ''}; "
        f"read+validate {t1 - t0:.1f} s, compute {t2 - t1:.1f} s",
        file=sys.stderr,
    )
    return 0
