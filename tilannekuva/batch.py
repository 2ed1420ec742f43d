"""Batch reference: the situation picture of an event file, computed with pandas.

``tilannekuva picture FILE.jsonl[.gz] [--unsuppressed] [--min-cell N] [--as-of DAY[,DAY...]]``

prints ``{"as_of", "picture", "municipalities", "areas"}`` (suppressed unless
``--unsuppressed``). With ``--as-of DAY`` it is the picture on that past day, in the
same shape with ``"as_of": DAY``; with a comma-separated list of days (any list, even
``DAY,``) it is ``{"days": {DAY: <that shape>, ...}}``, the days in date order, each
once. The file is read once for all days. A malformed day is refused before the file
is read; a day outside the history (see below) after it: a message on stderr and exit
status 2, as for every other error.

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

History (situation-api.md, "History (version 1.1)"): the picture on a day ``D`` is
what the definitions give with ``W = D`` over the accepted, non-retracted events with
``occurred_at <= D``. Steps 1 and 3 are done over the whole set first (a retraction
removes its target from every day, whatever its own date); ages, windows, memberships,
residences, statuses and episodes are then those of the events up to ``D``. The
history runs from the first ``occurred_at`` of the set of step 2 to ``W``; any other
day is a ValueError. :class:`History` prepares a loaded :class:`EventTable` once;
each day then costs numpy masks over the prepared columns
(``compute_days(table, days)``, ``compute_table(table, as_of)``,
``compute(events, as_of)``).
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import re
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import SimpleNamespace

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
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

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


def parse_day(value: str | dt.date | np.datetime64) -> np.datetime64:
    """A day ``YYYY-MM-DD`` (a string, a ``datetime.date`` or a ``datetime64[D]``) as
    ``datetime64[D]``.

    >>> parse_day("2024-02-29")
    np.datetime64('2024-02-29')
    >>> parse_day("2023-02-29")
    Traceback (most recent call last):
    ...
    ValueError: not a day YYYY-MM-DD: '2023-02-29'
    """
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = value.isoformat()
    elif isinstance(value, np.datetime64):
        value = str(value)  # only a datetime64[D] reads as YYYY-MM-DD
    if isinstance(value, str) and _DAY.fullmatch(value):
        try:
            dt.date.fromisoformat(value)
        except ValueError:
            pass
        else:
            return np.datetime64(value, "D")
    raise ValueError(f"not a day YYYY-MM-DD: {value!r}")


def _last_per_group(group: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Positions of the last ``True`` of ``mask`` in each group, for rows sorted by
    (group, rank): the latest masked row of each group.

    >>> _last_per_group(np.array([0, 0, 0, 1, 1, 2]), np.array([1, 1, 0, 1, 0, 0], bool))
    array([1, 3])
    """
    at = np.flatnonzero(mask)
    g = group[at]
    last = np.ones(len(at), dtype=bool)
    last[:-1] = g[1:] != g[:-1]
    return at[last]


def _sorted(order: np.ndarray, **columns) -> SimpleNamespace:
    return SimpleNamespace(**{k: np.asarray(v)[order] for k, v in columns.items()})


class History:
    """The picture of an :class:`EventTable` on any day of its history.

    Everything that does not depend on the day (duplicates, retractions, the order
    key, the fields read from ``data``) is worked out once here; :meth:`picture` then
    only selects, with numpy masks, the events with ``occurred_at`` on or before the
    day. ``first`` and ``last`` (= ``W``) bound the history, as ``YYYY-MM-DD`` strings
    (None when there are no events).
    """

    def __init__(self, t: EventTable) -> None:
        self.first: str | None = None
        self.last: str | None = None
        if len(t) == 0:
            return

        # 1. Duplicates: the first occurrence of an event_id is the event.
        id_code, id_uniques = pd.factorize(t.event_id)
        kept = np.flatnonzero(~pd.Series(id_code).duplicated(keep="first").to_numpy())
        # 2. The history runs over everything accepted, retractions and retracted
        #    events included: from the first day of data to the watermark W.
        self._first = t.occurred[kept].min()
        self._last = t.occurred[kept].max()
        self.first, self.last = str(self._first), str(self._last)

        # 3. Retractions, whatever their own date: a retraction only ever removes a
        #    non-retraction event, and removes it from every day.
        is_retraction = t.type[kept] == T_RETRACTED
        targets = t.field(kept[is_retraction], "event_id")
        target_codes = pd.Index(id_uniques).get_indexer(targets)
        retracted = np.isin(id_code[kept], target_codes[target_codes >= 0]) & ~is_retraction
        live = kept[~is_retraction & ~retracted]
        live_type = t.type[live]

        person_code, _ = pd.factorize(t.person)  # None -> -1
        self.n_persons = int(person_code.max()) + 1

        def rows(*codes: int) -> np.ndarray:
            """Live rows of these types that name a person."""
            r = live[np.isin(live_type, codes)]
            return r[person_code[r] >= 0]

        # 4. One rank by the order key (occurred_at, recorded_at instant, event_id) over
        #    the events whose "latest" matters, so "later than" is a comparison of
        #    integers. Restricted to the events up to a day D it is still their order.
        ordered = live[np.isin(live_type, (T_ADDED, T_REMOVED, T_RESIDENCE, T_STATUS))]
        id_rank, _ = pd.factorize(t.event_id[ordered], sort=True)
        order = np.lexsort(
            (id_rank, _recorded_instants(t.recorded[ordered]), t.occurred[ordered].astype(np.int64))
        )
        rank = np.empty(len(ordered), dtype=np.int64)
        rank[order] = np.arange(len(ordered))
        otype = t.type[ordered]

        def ordered_part(code: int, person: bool = True) -> tuple[np.ndarray, np.ndarray]:
            sel = otype == code
            if person:
                sel &= person_code[ordered] >= 0
            return ordered[sel], rank[sel]

        # Membership and residence: families as codes.
        add_rows, add_rank = ordered_part(T_ADDED)
        rem_rows, rem_rank = ordered_part(T_REMOVED)
        res_rows, res_rank = ordered_part(T_RESIDENCE, person=False)
        family_code, _ = pd.factorize(
            np.concatenate(
                [
                    t.field(add_rows, "family"),
                    t.field(rem_rows, "family"),
                    t.field(res_rows, "family"),
                ]
            )
        )
        n_add, n_rem = len(add_rows), len(rem_rows)
        self.n_families = n_families = int(family_code.max()) + 1 if len(family_code) else 0
        add_family = family_code[:n_add]
        rem_family = family_code[n_add : n_add + n_rem]
        res_family = family_code[n_add + n_rem :]
        add_person = person_code[add_rows]
        rem_person = person_code[rem_rows]
        # (person, family) pairs, for "a member_removed for that same family".
        pair_code, _ = pd.factorize(
            np.concatenate([add_person, rem_person]).astype(np.int64) * max(n_families, 1)
            + np.concatenate([add_family, rem_family])
        )
        self.n_pairs = int(pair_code.max()) + 1 if len(pair_code) else 0

        ok = add_family >= 0
        role = t.field(add_rows, "role")
        born = np.array(t.field(add_rows, "birth_date").tolist(), dtype="datetime64[D]")
        self.adds = _sorted(
            np.lexsort((add_rank[ok], add_person[ok])),
            person=add_person[ok],
            family=add_family[ok],
            pair=pair_code[:n_add][ok],
            rank=add_rank[ok],
            day=t.occurred[add_rows][ok],
            child=(role == "child")[ok],
            parent=(role == "parent")[ok],
            adult_from=eighteenth_birthday(born)[ok],
        )
        ok = rem_family >= 0
        rem_pair = pair_code[n_add:][ok]
        self.removals = _sorted(
            np.lexsort((rem_rank[ok], rem_pair)),
            pair=rem_pair,
            rank=rem_rank[ok],
            day=t.occurred[rem_rows][ok],
        )
        ok = res_family >= 0
        municipality = t.field(res_rows, "municipality")[ok]
        self.homes = _sorted(
            np.lexsort((res_rank[ok], res_family[ok])),
            family=res_family[ok],
            day=t.occurred[res_rows][ok],
            covered=np.isin(municipality, list(COVERED_MUNICIPALITIES)),
            municipality=municipality,
            postcode=t.field(res_rows, "postcode")[ok],
        )

        # Status: the person's latest employment.status_changed.
        st_rows, st_rank = ordered_part(T_STATUS)
        st_person = person_code[st_rows]
        self.statuses = _sorted(
            np.lexsort((st_rank, st_person)),
            person=st_person,
            day=t.occurred[st_rows],
            unemployed=t.field(st_rows, "status") == "unemployed",
        )

        # Episodes: (person, stem, episode) as one key; active iff a start is known and
        # no end is.
        ep_rows = rows(*_EPISODE_CODES)
        ep_type = t.type[ep_rows]
        ep_start = IS_START[ep_type]
        episode_code, _ = pd.factorize(t.field(ep_rows, "episode"), use_na_sentinel=False)
        keys = pd.DataFrame(
            {"person": person_code[ep_rows], "stem": STEM_OF[ep_type], "episode": episode_code}
        )
        ep_key = keys.groupby(["person", "stem", "episode"], sort=False).ngroup().to_numpy()
        self.n_episodes = int(ep_key.max()) + 1 if len(ep_key) else 0
        first_of_key = np.unique(ep_key, return_index=True)[1]
        key_stem = STEM_OF[ep_type][first_of_key]
        self.episode_person = person_code[ep_rows][first_of_key]
        self.episode_benefit = key_stem == S_BENEFIT
        self.episode_child_welfare = np.isin(key_stem, S_CHILD_WELFARE)
        self.episodes = SimpleNamespace(
            key=ep_key,
            day=t.occurred[ep_rows],
            start=ep_start,
            end=~ep_start,
            sa_start=ep_start & (t.field(ep_rows, "benefit") == "basic_social_assistance"),
        )

        # Window events.
        n_rows = rows(T_NOTIFICATION)
        v_rows = rows(T_VISIT)
        v_rows = v_rows[t.field(v_rows, "service") == "mental_health"]
        self.notifications = SimpleNamespace(person=person_code[n_rows], day=t.occurred[n_rows])
        self.visits = SimpleNamespace(person=person_code[v_rows], day=t.occurred[v_rows])

    # ----------------------------------------------------------------- days

    def day(self, value: str | dt.date | np.datetime64) -> np.datetime64:
        """``value`` as a day of the history; ValueError when it is not one."""
        day = parse_day(value)
        if self.last is None:
            raise ValueError(f"day {day} is outside the history: there are no events")
        if not self._first <= day <= self._last:
            raise ValueError(
                f"day {day} is outside the history, which runs from {self.first} to {self.last}"
            )
        return day

    def pictures(self, days: Iterable[str | dt.date]) -> dict[str, dict]:
        """``{day: picture}`` for each day (in the given order, each once); every day is
        checked before any is computed."""
        checked = {str(d): d for d in (self.day(v) for v in days)}
        return {key: self._picture(d) for key, d in checked.items()}

    def picture(self, day: str | dt.date | None = None) -> dict:
        """The unsuppressed picture on ``day`` (None: on ``W``, the present)."""
        if day is None:
            return _empty_picture(None) if self.last is None else self._picture(self._last)
        return self._picture(self.day(day))

    def _window(self, events: SimpleNamespace, D: np.datetime64, days: int) -> np.ndarray:
        """Per person: events with occurred_at in (D - days, D]."""
        inside = (events.day <= D) & (events.day > D - np.timedelta64(days, "D"))
        return np.bincount(events.person[inside], minlength=self.n_persons)

    def _picture(self, D: np.datetime64) -> dict:
        as_of = str(D)
        n_persons, n_families = self.n_persons, self.n_families

        # Membership: the person's latest member_added up to D wins, unless a
        # member_removed for the same family up to D is later still.
        a, r, h = self.adds, self.removals, self.homes
        latest = _last_per_group(a.person, a.day <= D)
        removed = _last_per_group(r.pair, r.day <= D)
        removed_rank = np.full(self.n_pairs, -1, dtype=np.int64)
        removed_rank[r.pair[removed]] = r.rank[removed]
        latest = latest[removed_rank[a.pair[latest]] < a.rank[latest]]

        # Residence: the family's latest residence_changed up to D; only the six count.
        home = _last_per_group(h.family, h.day <= D)
        home = home[h.covered[home]]
        home_of = np.full(n_families, -1, dtype=np.int64)
        home_of[h.family[home]] = home
        members = latest[home_of[a.family[latest]] >= 0]
        if len(members) == 0:
            return _empty_picture(as_of)
        member_person = a.person[members]
        member_family = a.family[members]

        # Status up to D.
        s = self.statuses
        status = _last_per_group(s.person, s.day <= D)
        unemployed = np.zeros(n_persons, dtype=bool)
        unemployed[s.person[status]] = s.unemployed[status]

        # Episodes: the starts and ends known up to D.
        e = self.episodes
        known = e.day <= D
        started = np.zeros(self.n_episodes, dtype=bool)
        started[e.key[known & e.start]] = True
        ended = np.zeros(self.n_episodes, dtype=bool)
        ended[e.key[known & e.end]] = True
        sa_started = np.zeros(self.n_episodes, dtype=bool)
        sa_started[e.key[known & e.sa_start]] = True
        active = started & ~ended
        social_assistance = np.zeros(n_persons, dtype=bool)
        social_assistance[self.episode_person[active & self.episode_benefit & sa_started]] = True
        child_welfare = np.zeros(n_persons, dtype=bool)
        child_welfare[self.episode_person[active & self.episode_child_welfare]] = True

        # Window events: occurred_at in (D - n days, D].
        notifications = self._window(self.notifications, D, NOTIFICATION_DAYS)
        visits = self._window(self.visits, D, MENTAL_HEALTH_DAYS)

        # Per member, then per family (families with a member, resident in the six).
        child = a.child[members] & (a.adult_from[members] > D)
        parent = a.parent[members]

        def per_family(values: np.ndarray) -> np.ndarray:
            sums = np.bincount(
                member_family, weights=values.astype(np.float64), minlength=n_families
            )
            return np.rint(sums).astype(np.int64)

        families = np.flatnonzero(np.bincount(member_family, minlength=n_families) > 0)
        children = per_family(child)[families]
        counted = (children >= 1).astype(np.int64)
        counts = pd.DataFrame(
            {
                "families": counted,
                "children": children,
                "single_parent_families": per_family(parent)[families] == 1,
                "families_social_assistance": per_family(social_assistance[member_person])[families]
                > 0,
                "families_unemployed_parent": per_family(parent & unemployed[member_person])[
                    families
                ]
                > 0,
                "families_child_welfare": per_family(child_welfare[member_person])[families] > 0,
                "child_welfare_notifications_30d": per_family(notifications[member_person])[
                    families
                ],
                "mental_health_visits_90d": per_family(visits[member_person])[families],
            }
        ).astype(np.int64)
        # Only counted families (resident, at least one child) contribute anything.
        counts = counts.mul(counted, axis=0)
        place = home_of[families]
        counts["municipality"] = h.municipality[place]
        counts["postcode"] = h.postcode[place]
        return _aggregate(as_of, counts)


def compute(events: Iterable[dict], as_of: str | dt.date | None = None) -> dict:
    """The unsuppressed picture of a collection of accepted (validated) events on the
    day ``as_of`` (``YYYY-MM-DD``; None: on ``W``, the present).

    Returns ``{"as_of": day, "all": counts, "municipalities": {code: counts},
    "areas": {postcode: {"municipality": code, "counts": counts}}}``; ``as_of`` is None
    when there are no events (and no day given). Events are taken in the given order
    only to decide which copy of a duplicated ``event_id`` is kept (the first). A day
    outside the history (from the first ``occurred_at`` to ``W``) is a ValueError.
    """
    return compute_table(EventTable(events), as_of)


def compute_table(t: EventTable, as_of: str | dt.date | None = None) -> dict:
    """:func:`compute` of an already loaded :class:`EventTable`."""
    return History(t).picture(as_of)


def compute_days(t: EventTable, days: Iterable[str | dt.date]) -> dict[str, dict]:
    """``{day: picture}`` of one loaded table on several days, preparing the table once:
    each day costs only numpy masks and a few groupbys. Every day is checked against the
    history before any is computed (ValueError)."""
    return History(t).pictures(days)


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
    parser.add_argument(
        "--as-of",
        default=None,
        metavar="DAY[,DAY...]",
        help="the picture on a past day YYYY-MM-DD of the history (from the first "
        "occurred_at to W), or on several days separated by commas, printed as "
        '{"days": {DAY: picture, ...}}; default: W, the present',
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


def _days_argument(value: str) -> list[str]:
    """The days of ``--as-of``: one day or several separated by commas."""
    days = [str(parse_day(part.strip())) for part in value.split(",") if part.strip()]
    if not days:
        raise ValueError(f"no day in {value!r}")
    return days


def run(args, settings) -> int:
    min_cell = args.min_cell if args.min_cell is not None else settings.min_cell
    if min_cell < 1:
        print("tilannekuva picture: --min-cell must be at least 1", file=sys.stderr)
        return 2
    days = None
    if args.as_of is not None:
        # Checked before the (possibly long) load; the range only after it.
        try:
            days = _days_argument(args.as_of)
        except ValueError as exc:
            print(f"tilannekuva picture: --as-of: {exc}", file=sys.stderr)
            return 2
    path = Path(args.file)
    if not path.is_file():
        print(f"tilannekuva picture: no such file: {path}", file=sys.stderr)
        return 2
    stats = InputStats()
    t0 = time.perf_counter()
    table = EventTable(load_events(path, stats))
    t1 = time.perf_counter()
    history = History(table)
    try:
        if days is None:
            out = render(history.picture(), args.unsuppressed, min_cell)
        elif "," not in args.as_of:
            out = render(history.picture(days[0]), args.unsuppressed, min_cell)
        else:
            pictures = history.pictures(sorted(days))
            out = {
                "days": {
                    day: render(pic, args.unsuppressed, min_cell) for day, pic in pictures.items()
                }
            }
    except ValueError as exc:
        print(f"tilannekuva picture: --as-of: {exc}", file=sys.stderr)
        return 2
    t2 = time.perf_counter()
    json.dump(out, sys.stdout, ensure_ascii=False, sort_keys=False)
    sys.stdout.write("\n")
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(stats.reasons.items()))
    n_days = len(out["days"]) if "days" in out else 1
    print(
        f"tilannekuva picture: {stats.lines} lines, {stats.accepted} accepted, "
        f"{stats.invalid} invalid skipped{f' ({reasons})' if reasons else ''}; "
        f"read+validate {t1 - t0:.1f} s, compute {t2 - t1:.1f} s "
        f"({n_days} day{'s' if n_days != 1 else ''})",
        file=sys.stderr,
    )
    return 0
