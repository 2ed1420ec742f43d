"""Family-by-family simulation of three years of register events.

Each family is simulated with its own ``random.Random`` seeded from (seed, family
index), so a family's events do not depend on the others, except for the individual
numbers of identity codes, which are handed out in family order (deterministic).
Days are ``date.toordinal()`` integers. Events are handed to ``emit(key, event)``
where ``key`` is the UTC millisecond of ``recorded_at`` (the file's sort key).

Rates are functions of a family's state read on the day from its state path
(``dynamics.Path``). Without dynamics the path is one constant segment and the draws
are exactly those of the flat model, so default files stay byte-identical.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
import random
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from models import hetu
from tilannekuva.synthetic import dynamics as D
from tilannekuva.synthetic import model as M
from tilannekuva.synthetic.model import EDU, ENV, HEA, INS, MAT, SOC, VOI, WRK

SCHEMA = "register-event/1"
YEAR = 365.25
O0 = dt.date(1900, 1, 1).toordinal()

# Recording lag in days (min, max) and the timestamp style of each source.
SOURCES = {
    "dvv": (1, 5, "local"),
    "kela": (1, 10, "z"),
    "incomes": (1, 5, "ms"),
    "employment": (1, 14, "local"),
    "koski": (1, 30, "z"),
    "varda": (1, 14, "local"),
    "avohilmo": (1, 7, "z"),
    "hilmo": (2, 21, "local"),
    "child_welfare": (1, 10, "local"),
    "social_services": (1, 14, "z"),
}
EMP, UNE, STU, PAR, OUT = (
    "employed",
    "unemployed",
    "student",
    "parental_leave",
    "outside_labour_force",
)


def _last_sunday(year: int, month: int) -> int:
    d = dt.date(year, month + 1, 1) - dt.timedelta(days=1)
    return (d - dt.timedelta(days=(d.weekday() + 1) % 7)).toordinal()


class Calendar:
    """ISO strings and Finnish UTC offsets for days, precomputed."""

    def __init__(self, last: dt.date):
        n = last.toordinal() - O0 + 1
        self.iso = [dt.date.fromordinal(O0 + i).isoformat() for i in range(n)]
        self.offset = bytearray(n)
        for i in range(n):
            self.offset[i] = 2
        for year in range(1900, last.year + 1):
            lo, hi = _last_sunday(year, 3), _last_sunday(year, 10)
            for o in range(max(lo, O0), min(hi, O0 + n)):
                self.offset[o - O0] = 3

    def day(self, o: int) -> str:
        return self.iso[o - O0]


class World:
    """Shared state of one generation run."""

    def __init__(
        self,
        seed: int,
        start: dt.date,
        end: dt.date,
        emit: Callable[[int, dict], None],
        dyn: D.Dynamics | None = None,
        record: D.Record | None = None,
    ):
        self.seed = seed
        self.dyn = dyn if dyn is not None and dyn.active else None
        self.record = record if record is not None else D.Record()
        self.S = start.toordinal()
        self.E = end.toordinal()
        self.cal = Calendar(end + dt.timedelta(days=400))
        self.iso = self.cal.iso
        self.emit = emit
        self._hetu_count: dict[int, int] = {}
        self.next_family = 10**8  # separations found families with indices from here on
        self.areas = M.load_areas()
        self.by_code = {a.postcode: a for a in self.areas}
        self.muni_areas: dict[str, tuple[list[str], list[float]]] = {}
        for a in self.areas:
            codes, weights = self.muni_areas.setdefault(a.municipality, ([], []))
            codes.append(a.postcode)
            weights.append(a.weight)
        # Pay days: (month "YYYY-MM", last day of that month) within the history.
        self.paydays = []
        d = dt.date(start.year, start.month, 1)
        while d <= end:
            nxt = dt.date(d.year + d.month // 12, d.month % 12 + 1, 1)
            last = nxt.toordinal() - 1
            if start.toordinal() <= last <= self.E:
                self.paydays.append((d.strftime("%Y-%m"), last))
            d = nxt
        self.augusts = [dt.date(y, 8, 10).toordinal() for y in range(start.year - 20, end.year + 1)]
        # Seasonal thinning tables (peak, acceptance per day), None: flat rates.
        self.seasonal = seasonal = self.dyn is not None and self.dyn.seasonality
        self.season = {c: D.season_table(c, self.iso) if seasonal else None for c in D.SEASONS}

    def new_family_id(self) -> str:
        self.next_family += 1
        return family_id(self.next_family, self.seed)

    def hetu(self, born: int) -> str:
        n = self._hetu_count.get(born, 0)
        self._hetu_count[born] = n + 1
        date = dt.date.fromordinal(born)
        signs = (
            ("-", "Y", "X", "W", "V", "U") if date.year < 2000 else ("A", "B", "C", "D", "E", "F")
        )
        sign = signs[n // 898]
        individual = 2 + ((born * 7919) % 898 + (n % 898) * 37) % 898
        return hetu.make(date, individual, sign)


def poisson(r: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 30:
        return max(0, int(round(r.gauss(lam, math.sqrt(lam)))))
    L, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= r.random()
        if p <= L:
            return k
        k += 1


def points(r: random.Random, rate: float, t0: int, t1: int) -> list[int]:
    """Days of a Poisson process with ``rate`` per year on [t0, t1]."""
    if t1 < t0 or rate <= 0:
        return []
    n = poisson(r, rate * (t1 - t0 + 1) / YEAR)
    return sorted(r.randint(t0, t1) for _ in range(n))


def seg_points(r, path: D.Path, rate_of, t0: int, t1: int, season=None) -> list[int]:
    """:func:`points` with the rate ``rate_of(state)`` of the state in force on each day,
    thinned by a seasonal table. A one-segment path without season draws exactly what
    :func:`points` draws (the default files stay byte-identical)."""
    if season is None and len(path.days) == 1:
        return points(r, rate_of(path.states[0]), t0, t1)
    out: list[int] = []
    peak, accept = season if season is not None else (1.0, None)
    for lo, hi, rate in _coalesced(path, rate_of, t0, t1):
        days = points(r, rate * peak, lo, hi)
        out.extend(days if accept is None else [t for t in days if r.random() < accept[t - O0]])
    return out


def _coalesced(path: D.Path, rate_of, t0: int, t1: int) -> list[list]:
    """[lo, hi, rate] of the path's segments, neighbours with the same rate joined (a
    multiplier's steps change one channel's rate, not the others')."""
    out: list[list] = []
    for lo, hi, st in path.segments(t0, t1):
        rate = rate_of(st)
        if out and out[-1][2] == rate:
            out[-1][1] = hi
        else:
            out.append([lo, hi, rate])
    return out


def seg_episodes(
    r, path: D.Path, rate_of, mean_of, t0, t1, born, min_days=7, warm=3 * 365, season=None
):
    """Alternating renewal process: (start, end or None) of the episodes seen on
    [t0, t1], begun up to ``warm`` days before t0. Start rates and mean durations
    follow the state path (the state at the start); starts are thinned by a seasonal
    table. Exponential gaps are memoryless, so a gap crossing a change day is redrawn
    from that day with the new rate; a one-segment path without season draws exactly
    what the flat process always drew."""
    out = []
    if t1 < t0:
        return out
    peak, accept = season if season is not None else (1.0, None)
    t = max(t0 - warm, born)
    while True:
        st, nb = path.at(t + 1)
        rate = rate_of(st)
        if rate <= 0:
            if nb is None:
                return out
            t = nb - 1
            continue
        cand = t + int(r.expovariate(rate * peak / YEAR)) + 1
        if nb is not None and cand >= nb:
            t = nb - 1
            continue
        t = cand
        if t > t1:
            return out
        if accept is not None and r.random() >= accept[t - O0]:
            continue
        dur = max(min_days, int(r.expovariate(1.0 / mean_of(st))))
        end = t + dur
        if end >= t0:
            out.append((t, end if end <= t1 else None))
        t = end


def employment_hazard(status: str, W: float, sg: float) -> float:
    """Per year: leaving ``status`` (W work burden, sg = sigma)."""
    if status == EMP:
        return 0.03 + 0.45 * W**1.5 + 0.12 * sg * sg
    if status == UNE:
        return max(0.25, 1.6 * (1 - W) - 0.6 * sg)
    if status == STU:
        return 0.45
    return 0.1 * (1 - W) + 0.05


def status_on(p: Person, day: int) -> str | None:
    """An adult's employment status on ``day`` (None: not simulated or not yet known)."""
    if p.status is None:
        return None
    days, stats = p.status
    i = bisect.bisect_right(days, day) - 1
    return stats[i] if i >= 0 else None


def adult_mental_health(s: D.State) -> float:
    return (0.03 + 3.0 * (0.5 * s.d[HEA] + 0.5 * s.d[INS]) ** 2 + 1.2 * s.sigma**3) * s.mh


# Exit hazards of spells a shift forced (a layoff by a job loss in a trajectory: none).
FORCED_HAZARD = {"up": D.SHIFT_UNEMPLOYED_EXIT, "down": D.SHIFT_EMPLOYED_LOSS}


def forced_status(status: str, token: dict) -> str | None:
    """The status a forced change gives (None: it does not fit this person)."""
    if token["kind"] in ("up", "loss"):
        return UNE if status == EMP else None
    return EMP if status == UNE else None


def const(value: float):
    return lambda st: value


# Family social services: (service, start rate per year of (state, young), mean days,
# minimum days). ``young`` is 1 with a child under three at the unit's first day, else
# 0.3. The same rates for the flat draws (family_services) and the planted services.
SOCIAL_SERVICES = (
    ("family_work", lambda s, young: 0.01 + 0.5 * s.sigma**2 + 0.2 * s.d[SOC], 180, 30),
    (
        "home_service",
        lambda s, young: (0.01 + 0.3 * s.d[SOC] + 0.2 * s.sigma**2) * young,
        90,
        14,
    ),
    (
        "family_counselling",
        lambda s, young: 0.03 + 0.3 * s.d[SOC] + 0.2 * s.d[INS],
        120,
        14,
    ),
    ("multi_professional_support", lambda s, young: 1.4 * max(0.0, s.sigma - 0.6), 365, 60),
    (
        "substance_abuse_services",
        lambda s, young: 0.003 + 0.8 * s.d[INS] ** 2 * s.d[HEA],
        270,
        30,
    ),
)


def client_rate(s: D.State, ci: float) -> float:
    """Child welfare client episodes per year of a child with insecurity ``ci``."""
    return 0.004 + 0.4 * ci**2 * s.sigma + 0.22 * s.sigma**4


CLIENT_MEAN, CLIENT_MIN = 500, 60  # days of a client episode (mean, minimum)


def clip(x: float, lo: float = 0.0, hi: float = 1.0) -> float:
    return lo if x < lo else hi if x > hi else x


@dataclass(slots=True)
class Planned:
    """One planted service episode of a unit (``--services``): drawn on the unit's need
    path, its effect (if drawn) applied ``delay_days`` after the start."""

    unit: str  # "a" | "b"
    service: str  # a social service or D.CLIENT_SERVICE
    person: Person  # the applicant, or the child of a client episode
    start: int
    shown_end: int | None  # the end day the events show (None: open at the end)
    episode: str
    notice: int | None  # days from the notification before a client episode
    rising: bool  # within RISING_DAYS of a rise of the need level
    level: int  # need level at the start
    home: tuple[str, str]  # (postcode, municipality) at the start
    applied: bool = False  # the effect was drawn (a start in the history)
    effect_day: int | None = None  # start + delay (a start in the history, an effect)
    level_before: int | None = None
    level_after: int | None = None
    in_path: bool = False  # the effect day fell in the unit's history: the path changed


class Person:
    __slots__ = ("hetu", "born", "role", "until", "child_of_b", "status")

    def __init__(self, code, born, role, until):
        self.hetu, self.born, self.role, self.until = code, born, role, until
        self.child_of_b = False
        self.status = None  # (change days, statuses) of an adult, once simulated


class FamilySim:
    """One family (and the family a separating parent founds)."""

    def __init__(
        self,
        w: World,
        index: int,
        fam_id: str,
        arch: M.Archetype,
        level: int,
        postcode: str,
        inmover: bool,
    ):
        self.w = w
        self.index = index
        self.r = random.Random(w.seed * 1_000_003 + index)
        self.fid = fam_id
        self.arch = arch
        self.level = level
        self.postcode = postcode
        self.inmover = inmover
        r = self.r
        # Family-level intensities: the archetype's, with a little family noise.
        self.d = [clip(x * math.exp(r.gauss(0, 0.15)) + r.gauss(0, 0.02)) for x in arch.domains]
        self.sigma = (level - 1) / 9.0
        self.truth: list[dict] = []
        # The state over time of the family (path_a) and of the family a separating
        # parent founds (path_b); one constant segment unless dynamics are on.
        self.path_a = self.path_b = D.Path(D.State(level, self.sigma, tuple(self.d)))
        self.tokens: list[dict] = []  # employment changes forced on a day (layoffs, …)
        self.planned: list[Planned] | None = None  # planted service episodes (--services)
        self.svc: random.Random | None = None  # their RNG (starts, then their events)

    # ------------------------------------------------------------------ events
    def ev(self, src: str, typ: str, occ: int, person: str | None, data: dict, rng=None) -> None:
        """Emit one event; recording time and id from ``rng`` (default: the family's)."""
        w, r = self.w, self.r if rng is None else rng
        lo, hi, style = SOURCES[src]
        rec = w.S + r.randrange(3) if occ < w.S else occ + r.randint(lo, hi)
        sec = r.randrange(14400, 68400)
        ms = 0
        i = rec - O0
        if style == "z":
            recorded = f"{w.iso[i]}T{sec // 3600:02d}:{sec // 60 % 60:02d}:{sec % 60:02d}Z"
        elif style == "ms":
            ms = r.randrange(1000)
            recorded = f"{w.iso[i]}T{sec // 3600:02d}:{sec // 60 % 60:02d}:{sec % 60:02d}.{ms:03d}Z"
        else:
            off = w.cal.offset[i]
            recorded = (
                f"{w.iso[i]}T{sec // 3600 + off:02d}:{sec // 60 % 60:02d}:{sec % 60:02d}+0{off}:00"
            )
        s = f"{r.getrandbits(128):032x}"
        e = {
            "schema": SCHEMA,
            "event_id": f"{s[:8]}-{s[8:12]}-4{s[13:16]}-{s[16:20]}-{s[20:]}",
            "source": src,
            "type": typ,
            "occurred_at": w.iso[occ - O0],
            "recorded_at": recorded,
        }
        if person is not None:
            e["person"] = person
        e["data"] = data
        w.emit((rec * 86400 + sec) * 1000 + ms, e)

    def episode_id(self, prefix: str) -> str:
        return f"{prefix}{self.r.getrandbits(48):012x}"

    def episode_events(
        self,
        src,
        stem,
        person,
        spans,
        data,
        prefix,
        ended_suffix=".ended",
        started_suffix=".started",
    ):
        for start, end in spans:
            ep = self.episode_id(prefix)
            self.ev(src, stem + started_suffix, start, person, {**data, "episode": ep})
            if end is not None:
                self.ev(src, stem + ended_suffix, end, person, {**data, "episode": ep})

    # ------------------------------------------------------------- structure
    def run(self) -> list[dict]:
        w, r, d, a = self.w, self.r, self.d, self.arch
        S, E = w.S, w.E
        # Children and parents at the start.
        n = min(5, 1 + poisson(r, max(0.0, a.children_mean - 1)))
        fb_age = clip(r.gauss(a.first_birth_age, 4.0), 20.0, 40.0)
        for _ in range(8):
            first_age = r.uniform(0.0, 19.0)
            births = [S - int(first_age * YEAR)]
            for _ in range(n - 1):
                b = births[-1] + int((1.2 + r.expovariate(1 / 1.8)) * YEAR)
                if b >= S or (b - births[0]) / YEAR + fb_age > 45:
                    break
                births.append(b)
            if (S - births[-1]) / YEAR < 18:
                break
        kids_born = []
        for b in births:
            age = (S - b) / YEAR
            if age >= 18 and not (age < 20 and r.random() < 0.5 or age < 22 and r.random() < 0.15):
                continue
            kids_born.append(b)
        a_born = births[0] - int(fb_age * YEAR) - r.randrange(365)
        single = r.random() < a.single_parent
        b_born = a_born + int(r.gauss(-1.5, 3.0) * YEAR)
        b_born = min(max(b_born, births[-1] - int(45 * YEAR)), births[0] - int(20 * YEAR))
        formed = max(
            births[0] - int(r.uniform(0.2, 5.0) * YEAR), a_born + 19 * 365, b_born + 19 * 365
        )

        self.A = Person(w.hetu(a_born), a_born, "parent", E)
        self.B = None if single else Person(w.hetu(b_born), b_born, "parent", E)
        self.kids = [Person(w.hetu(b), b, "child", E) for b in kids_born]

        # Family timeline.
        t_move_rate = 0.06 + 0.18 * d[ENV] + 0.05 * d[MAT]
        t_end = E
        muni = w.by_code[self.postcode].municipality
        residence = []  # (day, postcode, municipality)
        if self.inmover:
            code, posts = M.ELSEWHERE[r.randrange(len(M.ELSEWHERE))]
            residence.append(
                (formed + r.randrange(max(1, S - formed)), posts[r.randrange(len(posts))], code)
            )
            t = S + 20 + r.randrange(E - S - 40)
            residence.append((t, self.postcode, muni))
        else:
            since = S - 1 - int(r.expovariate(1 / 4.0) * YEAR)
            residence.append((max(since, formed), self.postcode, muni))
            t = S
        cur_post, cur_muni = self.postcode, muni
        while True:
            t += int(r.expovariate(t_move_rate) * YEAR) + 1
            if t > E:
                break
            u = r.random()
            if u < 0.70:
                codes, weights = w.muni_areas[cur_muni]
                new = r.choices(codes, weights)[0]
                if new == cur_post:
                    continue
                cur_post = new
            elif u < 0.78:
                cur_muni = M.NEIGHBOUR[cur_muni]
                codes, weights = w.muni_areas[cur_muni]
                cur_post = r.choices(codes, weights)[0]
            else:
                cur_muni, posts = M.ELSEWHERE[r.randrange(len(M.ELSEWHERE))]
                cur_post = posts[r.randrange(len(posts))]
                residence.append((t, cur_post, cur_muni))
                t_end = t
                break
            residence.append((t, cur_post, cur_muni))
        self.t_end = t_end
        t_in = residence[1][0] if self.inmover else S  # events before moving in are not simulated
        first_day = min(t_in, S) if not self.inmover else t_in

        for p in [self.A, self.B, *self.kids]:
            if p is not None:
                p.until = t_end

        # DVV: initial memberships and residences.
        fid = self.fid
        for day, post, m in residence:
            self.ev(
                "dvv",
                "family.residence_changed",
                day,
                None,
                {"family": fid, "postcode": post, "municipality": m},
            )
        self.added(self.A, fid, formed)
        if self.B:
            self.added(self.B, fid, formed)
        for k in self.kids:
            self.added(k, fid, k.born)

        # A birth during the history.
        n_kids = len(self.kids)
        youngest = (S - births[-1]) / YEAR
        a_age = (S - a_born) / YEAR
        p_birth = (0.45, 0.32, 0.18, 0.1, 0.05)[min(n_kids, 5) - 1] if n_kids else 0.3
        self.new_births = []
        b_age = (S - b_born) / YEAR if not single else 0.0
        if (
            youngest < 9
            and a_age < 41
            and b_age < 41
            and n_kids < 5
            and r.random() < p_birth * (0.5 if single else 1.0)
        ):
            tb = first_day + r.randrange(max(1, E - first_day))
            if tb < t_end:
                k = Person(w.hetu(tb), tb, "child", t_end)
                self.kids.append(k)
                self.new_births.append(tb)
                self.added(k, fid, tb)

        # Children who turn 18 may leave home.
        for k in self.kids:
            b18 = self.birthday(k.born, 18)
            if b18 < t_end:
                leave = max(b18, first_day) + int(r.expovariate(1 / 1.3) * YEAR)
                if leave < t_end:
                    self.ev("dvv", "family.member_removed", leave, k.hetu, {"family": fid})
                    k.until = leave

        # Separation and new partners.
        self.sep = None
        sep_rate = 0.02 + 0.09 * d[SOC] + 0.05 * d[INS]
        if self.B is not None:
            ts = first_day + int(r.expovariate(sep_rate) * YEAR)
            if ts < t_end:
                self.sep = ts
        np_from = first_day if self.B is None else (self.sep + 90 if self.sep else None)
        self.C = None
        self.c_joined = None
        self.residence = residence
        self.first_day = first_day
        self.home_b = None
        if np_from is not None:
            tn = np_from + int(r.expovariate(0.09) * YEAR)
            if tn < t_end:
                self.c_joined = tn
                c_born = a_born + int(r.gauss(-1.0, 4.0) * YEAR)
                self.C = Person(w.hetu(c_born), c_born, "parent", t_end)
                self.added(self.C, fid, tn)

        level_new = None
        if self.sep is not None:
            ts = self.sep
            fid2 = self.new_family_id()
            self.ev("dvv", "family.member_removed", ts, self.B.hetu, {"family": fid})
            self.added(self.B, fid2, ts)
            self.B.until = E
            codes, weights = w.muni_areas.get(cur_muni if t_end == E else muni, w.muni_areas[muni])
            post2 = r.choices(codes, weights)[0]
            muni2 = w.by_code[post2].municipality
            self.home_b = (post2, muni2)
            self.ev(
                "dvv",
                "family.residence_changed",
                ts,
                None,
                {"family": fid2, "postcode": post2, "municipality": muni2},
            )
            present = [
                k
                for k in self.kids
                if k.born < ts and k.until > ts and self.birthday(k.born, 18) > ts
            ]
            if present and r.random() < 0.25:
                k = present[-1]
                self.ev("dvv", "family.member_removed", ts, k.hetu, {"family": fid})
                self.added(k, fid2, ts)
                k.child_of_b = True
                k.until = min(E, self.birthday(k.born, 18) + 400)
            level_new = min(10, self.level + (1 if r.random() < 0.3 else 0))
            self.truth.append(
                {
                    "family": fid2,
                    "archetype": a.index,
                    "need_level": level_new,
                    "municipality": muni2,
                    "postcode": post2,
                }
            )
        last = residence[-1]
        self.truth.insert(
            0,
            {
                "family": fid,
                "archetype": a.index,
                "need_level": self.level,
                "municipality": last[2],
                "postcode": last[1],
            },
        )

        if w.dyn is not None:
            self.dynamics(w.dyn)
        # Person-level registers.
        adults = [(self.A, True), (self.B, False), (self.C, False)]
        for p, is_a in adults:
            if p is not None:
                self.adult(p, first_day, is_a)
        for k in self.kids:
            self.child(k, first_day)
        # Family-level services: applicant A for the family, B for the new family.
        self.family_services(self.A, first_day, t_end, self.path_a)
        if self.sep is not None:
            self.family_services(self.B, self.sep, E, self.path_b)
        if self.tokens:
            self.tally_employment()
        return self.truth

    # --------------------------------------------------------------- dynamics
    def path_of(self, p: Person) -> D.Path:
        """The state path a person's rates read: B (and a child who went with B) follow
        the family before the separation and B's new family after it."""
        joined = self.sep is not None and self.path_b is not self.path_a
        if joined and (p is self.B or p.child_of_b):
            return self.path_a.joined(self.path_b, self.sep)
        return self.path_a

    def units(self) -> list[tuple[str, str]]:
        """The DVV families of this simulation: ("a", id) and, after a separation, ("b", id)."""
        out = [("a", self.fid)]
        if self.sep is not None:
            out.append(("b", self.truth[1]["family"]))
        return out

    def home(self, unit: str, day: int) -> tuple[str, str] | None:
        """(postcode, municipality) of the unit on ``day`` (None: not yet founded)."""
        if unit == "b":
            return self.home_b if self.sep is not None and self.sep <= day else None
        if day >= self.t_end:
            return None
        i = bisect.bisect_right([x[0] for x in self.residence], day) - 1
        return (self.residence[i][1], self.residence[i][2]) if i >= 0 else None

    def has_child(self, unit: str, day: int) -> bool:
        """The unit counts as a family on ``day`` (a member child under 18), as the
        picture counts it."""
        for k in self.kids:
            mine = k.child_of_b and self.sep is not None and day >= self.sep
            if (unit == "b") != mine:
                continue
            if k.born <= day < k.until and self.birthday(k.born, 18) > day:
                return True
        return False

    def parents(self, unit: str, day: int) -> list[Person]:
        if unit == "b":
            return [self.B]
        out = [self.A]
        if self.B is not None and (self.sep is None or day < self.sep):
            out.append(self.B)
        if self.C is not None and self.c_joined is not None and self.c_joined <= day:
            out.append(self.C)
        return out

    def dynamics(self, dyn: D.Dynamics) -> None:
        """Build the state paths (trajectories, planted shocks, rate multipliers) and the
        forced employment changes, with an RNG of their own."""
        q = random.Random(f"dyn:{self.w.seed}:{self.index}")
        fixed: dict[str, list] = {"a": [], "b": []}
        mults: dict[str, list] = {"a": [], "b": []}
        if dyn.trajectories and self.sep is not None:
            fixed["a"].append((self.sep, D.SEPARATION))
        for s in dyn.shifts:
            self.plant(s, q, fixed, mults)
        start = self.path_a.states[0]
        t_end = min(self.t_end, self.w.E)
        path_a, changes_a, layoffs_a = self.trajectory(
            q, dyn, start, self.first_day, t_end, fixed["a"], D.WARMUP_DAYS
        )
        start = path_a.states[0]
        self.path_a = self.multiplied(path_a, mults["a"])
        self.tokens += [{"day": t, "kind": "loss", "unit": "a"} for t in layoffs_a]
        rows = [(self.fid, self.first_day, start.level, "start")] + [
            (self.fid, t, lv, c) for t, lv, c in changes_a
        ]
        self.truth[0]["need_level"] = start.level
        self.truth[0]["need_level_end"] = path_a.level_at(t_end)
        if self.sep is not None:
            before = path_a.at(self.sep - 1)[0]
            start_b = before
            if dyn.trajectories:
                start_b = D.shocked(before, D.SEPARATION, int(q.random() < D.SEPARATION.level_up2))
            path_b, changes_b, layoffs_b = self.trajectory(
                q, dyn, start_b, self.sep, self.w.E, fixed["b"]
            )
            self.path_b = self.multiplied(path_b, mults["b"])
            self.tokens += [{"day": t, "kind": "loss", "unit": "b"} for t in layoffs_b]
            fid2 = self.truth[1]["family"]
            rows += [(fid2, self.sep, start_b.level, "separation")]
            rows += [(fid2, t, lv, c) for t, lv, c in changes_b]
            self.truth[1]["need_level"] = start_b.level
            self.truth[1]["need_level_end"] = path_b.level_at(self.w.E)
        if dyn.services:
            rise_b = self.sep is not None and start_b.level > before.level
            rows = self.plan_services(dyn, rows, t_end, rise_b)
        if self.path_b.days == [D.NEVER] and self.path_a.days == [D.NEVER]:
            if self.path_b.states == self.path_a.states:
                self.path_b = self.path_a  # untouched: draw exactly as without dynamics
        self.tokens.sort(key=lambda x: x["day"])
        iso = self.w.iso
        self.w.record.trajectories.extend(
            {"family": f, "day": iso[t - O0], "need_level": lv, "cause": c} for f, t, lv, c in rows
        )

    @staticmethod
    def trajectory(q, dyn, start, t0, t1, fixed, warm=0):
        if dyn.trajectories:
            return D.life_events(q, start, t0, t1, fixed, warm)
        return D.fixed_events(q, start, fixed)

    @staticmethod
    def multiplied(path: D.Path, mults: list[tuple[str, list]]) -> D.Path:
        for name, schedule in mults:
            path = path.with_multiplier(name, schedule)
        return path

    def plant(self, s: D.Shift, q: random.Random, fixed: dict, mults: dict) -> None:
        """Apply shift ``s`` to the units resident in its scope on the onset day."""
        onset = s.onset.toordinal()
        for unit, _ in self.units():
            home = self.home(unit, onset)
            if home is None or not s.covers(*home) or not self.has_child(unit, onset):
                continue
            tally = self.w.record.tally(s.id)
            tally.families_at_onset += 1
            if s.kind == "ratio":
                name = "notif" if s.mechanism == "child_welfare" else "mh"
                mults[unit].append((name, s.schedule()))
                tally.hit += 1
                tally.moved += 1
            elif q.random() < s.hit_probability():
                tally.hit += 1
                day = s.shock_day(q)
                if s.mechanism == "need":
                    fixed[unit].append((day, D.need_shock(s, tally)))
                else:
                    self.tokens.append({"day": day, "kind": s.direction, "unit": unit, "shift": s})

    # --------------------------------------------------------------- services
    def plan_services(self, dyn: D.Dynamics, rows: list[tuple], t_end: int, rise_b: bool):
        """Draw the planted service starts of the unit(s) on their need paths, in time,
        with an RNG of their own (``"svc:<seed>:<index>"``), applying each drawn effect
        to the path the later starts see. The factual world keeps the changed paths; the
        counterfactual twin keeps the same starts on the paths without the effects.
        Returns the trajectory rows (levels of the world, ``service:<code>`` rows)."""
        w = self.w
        svc = self.svc = random.Random(f"svc:{w.seed}:{self.index}")
        base_a, base_b = self.path_a, self.path_b
        eff_a, planned = self.draw_services(
            svc, "a", base_a, self.first_day, t_end, self.A, base_a.rises(), dyn.supply
        )
        eff_b = base_b
        if self.sep is not None:
            # An effect on the family before the separation holds for both families.
            for pl in planned:
                if pl.in_path and pl.effect_day < self.sep:
                    e = D.EFFECTS[pl.service]
                    eff_b = eff_b.with_effect(D.NEVER, e.levels, e.keep)
            rises_b = sorted(set(base_b.rises()) | ({self.sep} if rise_b else set()))
            eff_b, planned_b = self.draw_services(
                svc, "b", eff_b, self.sep, w.E, self.B, rises_b, dyn.supply
            )
            planned += planned_b
        self.planned = planned
        fids = {"a": self.fid, "b": self.truth[1]["family"] if self.sep is not None else None}
        iso = w.iso
        for pl in planned:
            w.record.services.append(
                {
                    "family": fids[pl.unit],
                    "unit": pl.unit,
                    "person": pl.person.hetu,
                    "service": pl.service,
                    "episode": pl.episode,
                    "start": iso[pl.start - O0],
                    "end": None if pl.shown_end is None else iso[pl.shown_end - O0],
                    "municipality": pl.home[1],
                    "postcode": pl.home[0],
                    "level_at_start": pl.level,
                    "rising": pl.rising,
                    "applied": pl.applied,
                    "effect_day": None if pl.effect_day is None else iso[pl.effect_day - O0],
                    "level_before": pl.level_before,
                    "level_after": pl.level_after,
                }
            )
        if dyn.counterfactual is True:
            return rows  # the same starts, no effect: the paths stay as they were
        if dyn.counterfactual:  # the twin without one service's effects, the others kept
            eff_a, eff_b = self.paths_without(dyn.counterfactual, base_a, base_b, planned)
        self.path_a, self.path_b = eff_a, eff_b
        paths = {self.fid: (base_a, eff_a), fids["b"]: (base_b, eff_b)}
        out = []
        for f, t, lv, c in rows:
            base, eff = paths[f]
            out.append((f, t, lv + eff.level_at(t) - base.level_at(t), c))
        for pl in planned:
            if pl.in_path:
                eff = eff_a if pl.unit == "a" else eff_b
                f = fids[pl.unit]
                out.append((f, pl.effect_day, eff.level_at(pl.effect_day), f"service:{pl.service}"))
        out.sort(key=lambda x: (x[0] != self.fid, x[1]))  # stable: family a, then b, by day
        self.truth[0]["need_level_end"] = eff_a.level_at(t_end)
        if self.sep is not None:
            self.truth[1]["need_level"] = eff_b.states[0].level
            self.truth[1]["need_level_end"] = eff_b.level_at(w.E)
        return out

    def paths_without(self, service: str, base_a: D.Path, base_b: D.Path, planned: list):
        """The two units' paths with every drawn effect applied but ``service``'s (the
        world's paths, had that service done nothing; the starts stay as drawn)."""
        paths = {"a": base_a, "b": base_b}
        for pl in planned:
            if not pl.in_path or pl.service == service:
                continue
            e = D.EFFECTS[pl.service]
            paths[pl.unit] = paths[pl.unit].with_effect(pl.effect_day, e.levels, e.keep)
            if pl.unit == "a" and self.sep is not None and pl.effect_day < self.sep:
                paths["b"] = paths["b"].with_effect(D.NEVER, e.levels, e.keep)
        return paths["a"], paths["b"]

    def draw_services(self, svc, unit, path, t0, t1, applicant, rises, supply):
        """(the path with the drawn effects, the unit's planted episodes seen on
        [max(S, t0), t1]): competing start hazards of the services, each the service's
        rate on the state in force x RISING_FACTOR within RISING_DAYS of a rise x the
        municipality's supply factor; one episode at a time per service; starts from
        SERVICE_WARM_DAYS before the history. A hazard that changes (a change day of
        the path, an effect's day, a move, a child's birth or 18th birthday, the end of
        an episode or of a rising window) redraws from that day (memoryless)."""
        w = self.w
        T0 = max(w.S, t0)
        t = max(T0 - D.SERVICE_WARM_DAYS, applicant.born + 18 * 365)
        young = 1.0 if any(k.born > t0 - 3 * 365 for k in self.kids) else 0.3
        specs = [(c, rate, mean, mn, "SS") for c, rate, mean, mn in SOCIAL_SERVICES]
        specs.append((D.CLIENT_SERVICE, None, CLIENT_MEAN, CLIENT_MIN, "LS"))
        busy = [-1] * len(specs)  # a service is free on days after its episode's end
        b18 = {id(k): self.birthday(k.born, 18) for k in self.kids}
        sep = self.sep

        def children(day: int) -> list[Person]:
            out = []
            for k in self.kids:
                mine_b = k.child_of_b and sep is not None and day >= sep
                if (unit == "b") == mine_b and k.born <= day < k.until and day < b18[id(k)]:
                    out.append(k)
            return out

        cuts = {r0 + x for r0 in rises for x in (0, D.RISING_DAYS)}
        for k in self.kids:
            cuts |= {k.born, k.until, b18[id(k)]}
        if sep is not None:
            cuts.add(sep)
        res_days = [x[0] for x in self.residence]
        if unit == "a":
            cuts |= set(res_days)

        def home(day: int) -> tuple[str, str]:
            if unit == "b":
                return self.home_b
            i = max(0, bisect.bisect_right(res_days, day) - 1)
            return self.residence[i][1], self.residence[i][2]

        cuts = sorted(cuts)
        pending: list[tuple[int, int, Planned]] = []  # drawn effects, by day
        out: list[Planned] = []
        while True:
            day = t + 1
            while pending and pending[0][0] <= min(day, t1):
                _, _, pl = pending.pop(0)
                e = D.EFFECTS[pl.service]
                pl.level_before = path.level_at(pl.effect_day)
                path = path.with_effect(pl.effect_day, e.levels, e.keep)
                pl.level_after = path.level_at(pl.effect_day)
                pl.in_path = True
            if day > t1:
                break
            st, nb = path.at(day)
            lims = [] if nb is None else [nb]
            j = bisect.bisect_right(cuts, day)
            if j < len(cuts):
                lims.append(cuts[j])
            if pending:
                lims.append(pending[0][0])
            kids = children(day)
            rising = any(r0 <= day < r0 + D.RISING_DAYS for r0 in rises)
            f = supply.get(home(day)[1], 1.0) * (D.RISING_FACTOR if rising else 1.0)
            rates = []
            for i, (_, rate, _, _, _) in enumerate(specs):
                if busy[i] >= day:
                    rates.append(0.0)
                    lims.append(busy[i] + 1)
                elif rate is None:
                    rates.append(client_rate(st, st.d[INS]) * len(kids) * f)
                else:
                    rates.append(rate(st, young) * f)
            total = sum(rates)
            lim = min(lims) if lims else None
            if total <= 0:
                if lim is None:
                    break
                t = lim - 1
                continue
            cand = t + int(svc.expovariate(total / YEAR)) + 1
            if lim is not None and cand >= lim:
                t = lim - 1
                continue
            if cand > t1:
                break
            u = svc.random() * total
            i = max(j for j, x in enumerate(rates) if x > 0)
            for j, x in enumerate(rates):
                if u < x:
                    i = j
                    break
                u -= x
            code, rate, mean, mn, prefix = specs[i]
            end = cand + max(mn, int(svc.expovariate(1.0 / mean)))
            person, notice = applicant, None
            if rate is None:  # open care: one child of the unit
                person = kids[svc.randrange(len(kids))]
                notice = svc.randint(5, 60)
                tc = min(person.until, b18[id(person)] - 1)
                end = min(end, b18[id(person)])
                shown = end if end <= tc else None if tc == person.until else b18[id(person)]
            else:
                shown = end if end <= t1 else None
            busy[i] = end
            episode = f"{prefix}{svc.getrandbits(48):012x}"
            u_effect = svc.random()
            t = cand
            if end < T0:
                continue  # ended before the history: not seen
            pl = Planned(
                unit, code, person, cand, shown, episode, notice, rising, st.level, home(cand)
            )
            e = D.EFFECTS[code]
            if cand >= T0 and e.probability > 0:
                pl.effect_day = cand + e.delay_days
                pl.applied = u_effect < e.probability
                if pl.applied:
                    pending.append((pl.effect_day, len(out), pl))
                    pending.sort(key=lambda x: x[:2])
            out.append(pl)
        for _, _, pl in pending:  # effects after the unit's last day: the history ends first
            e = D.EFFECTS[pl.service]
            pl.level_before = path.level_at(pl.effect_day)
            pl.level_after = max(1, pl.level_before - e.levels)
        return path, out

    def planted_social(self, p: Person) -> None:
        """The social service events of the unit whose applicant is ``p``."""
        unit = "a" if p is self.A else "b"
        for pl in self.planned:
            if pl.unit == unit and pl.service != D.CLIENT_SERVICE:
                self.planted_events(
                    "social_services", "social_service", p.hetu, pl, {"service": pl.service}
                )

    def planted_client(self, k: Person, path: D.Path, t0v: int) -> list[tuple]:
        """The child welfare client episodes planted on child ``k`` (each with the
        notification before it); returns their (start, end) as the events show them."""
        mine = [pl for pl in self.planned if pl.person is k]
        for pl in mine:
            for day in self.multiplied_notification(path, pl.start - pl.notice):
                if day >= t0v:
                    self.ev("child_welfare", "child_welfare.notification", day, k.hetu, {})
        for pl in mine:
            self.planted_events(
                "child_welfare", "child_welfare.client", k.hetu, pl, {}, "_started", "_ended"
            )
        return [(pl.start, pl.shown_end) for pl in mine]

    def planted_events(self, src, stem, person, pl, data, started=".started", ended=".ended"):
        """Started (and ended) of a planted episode; recording times and event ids from
        the services' RNG, so both worlds write the same lines for it."""
        self.ev(src, stem + started, pl.start, person, {**data, "episode": pl.episode}, self.svc)
        if pl.shown_end is not None:
            self.ev(
                src, stem + ended, pl.shown_end, person, {**data, "episode": pl.episode}, self.svc
            )

    def tally_employment(self) -> None:
        """Count the families a shift's layoffs (or hires) moved into (out of) having an
        unemployed parent: none before the day, one after it (or the reverse)."""
        for tok in self.tokens:
            s = tok.get("shift")
            if s is None or tok["day"] > self.w.E:
                continue
            parents = self.parents(tok["unit"], tok["day"])
            before = any(status_on(p, tok["day"] - 1) == UNE for p in parents)
            after = any(status_on(p, tok["day"]) == UNE for p in parents)
            if (not before and after) if s.direction == "up" else (before and not after):
                self.w.record.tally(s.id).moved += 1

    def new_family_id(self) -> str:
        return self.w.new_family_id()

    def added(self, p: Person, fid: str, day: int) -> None:
        self.ev(
            "dvv",
            "family.member_added",
            day,
            p.hetu,
            {"family": fid, "role": p.role, "birth_date": self.w.iso[p.born - O0]},
        )

    @staticmethod
    def birthday(born: int, years: int) -> int:
        d = dt.date.fromordinal(born)
        try:
            return d.replace(year=d.year + years).toordinal()
        except ValueError:  # 29 February
            return dt.date(d.year + years, 2, 28).toordinal()

    # ------------------------------------------------------------------ adults
    def adult(self, p: Person, first_day: int, is_a: bool) -> None:
        w, r, d, sg = self.w, self.r, self.d, self.sigma
        S = w.S
        t0, t1 = first_day, p.until
        if t1 < t0:
            return
        code = p.hetu
        adult_day = p.born + 18 * 365
        # Highest education so far (initial load), adult education during the history.
        e = d[EDU]
        u = r.random()
        probs = (
            (0.04 + 0.35 * e, "basic", 16),
            (0.30 + 0.1 * e, "vocational", 19),
            (0.10, "upper_secondary", 19),
            (0.30 - 0.25 * e, "bachelor", 24),
            (0.2 - 0.18 * e, "master", 26),
            (0.02, "doctoral", 31),
        )
        total = sum(max(0.0, x[0]) for x in probs)
        acc = 0.0
        level, age = "vocational", 19
        for pr, lv, ag in probs:
            acc += max(0.0, pr) / total
            if u < acc:
                level, age = lv, ag
                break
        grad = dt.date(dt.date.fromordinal(p.born).year + age, 6, 1).toordinal()
        if grad < S:
            self.ev("koski", "education.completed", grad, code, {"level": level})

        # Employment status trajectory.
        W, H = d[WRK], d[HEA]
        pe = clip(0.87 - 0.8 * W - 0.15 * H - 0.1 * e - 0.1 * sg, 0.05, 0.95)
        if r.random() < pe:
            st = EMP
        else:
            v = r.random()
            st = UNE if v < 0.55 + 0.2 * W else OUT if v < 0.8 + 0.1 * d[VOI] else STU
        if self.arch.pattern == "student parents" and r.random() < 0.5:
            st = STU
        since = max(adult_day, S - 1 - int(r.expovariate(1 / 3.0) * YEAR))
        changes = [(since, st)]
        t = max(S, t0)
        path = self.path_of(p)
        forced = [
            x
            for x in self.tokens
            if t < x["day"] <= t1 and not x.get("done") and p in self.parents(x["unit"], x["day"])
        ]
        override = None  # the exit hazard of a spell a shift forced
        # Competing hazards that follow the state path: a draw crossing a change day
        # (or a forced change) is redrawn from there (memoryless).
        while True:
            now, nb = path.at(t + 1)
            h = override if override is not None else employment_hazard(st, now.d[WRK], now.sigma)
            cand = t + int(r.expovariate(h) * YEAR) + 1
            f = forced[0]["day"] if forced else None
            if f is not None and cand >= f and (nb is None or f <= nb):
                tok = forced.pop(0)
                t = f
                nst = forced_status(st, tok)
                if nst is not None and not tok.get("done"):
                    tok["done"] = True  # a token changes one parent, the first it fits
                    st, override = nst, FORCED_HAZARD.get(tok["kind"])
                    changes.append((t, st))
                continue
            if nb is not None and cand >= nb:
                t = nb - 1
                continue
            t = cand
            if t > t1:
                break
            override = None
            u = r.random()
            if st == EMP:
                nst = UNE if u < 0.9 else STU if u < 0.95 else OUT
            elif st == UNE:
                nst = EMP if u < 0.8 else STU if u < 0.9 else OUT
            elif st == STU:
                nst = EMP if u < 0.7 else UNE
                self.ev(
                    "koski",
                    "education.completed",
                    t,
                    code,
                    {"level": r.choice(("vocational", "bachelor", "master"))},
                )
            else:
                nst = EMP if u < 0.6 else UNE
            st = nst
            changes.append((t, st))
        # Parental leave around births (the first parent).
        if is_a:
            for tb in [k.born for k in self.kids if k.born > S - 300]:
                lo, hi = max(tb - 30, since + 1), tb + 280 + r.randrange(200)
                after = [c for c in changes if c[0] <= hi][-1][1]
                changes = (
                    [c for c in changes if c[0] < lo]
                    + [(lo, PAR), (hi, after)]
                    + [c for c in changes if c[0] > hi]
                )
        changes.sort()
        prev = None
        for day, status in changes:
            if day > t1 or status == prev:
                continue
            self.ev("employment", "employment.status_changed", day, code, {"status": status})
            prev = status
        days = [c[0] for c in changes]
        stats = [c[1] for c in changes]
        p.status = (days, stats)

        def status_at(day: int) -> str:
            return stats[max(0, bisect.bisect_right(days, day) - 1)]

        # Unemployment benefit for spells of unemployment.
        for i, (day, status) in enumerate(changes):
            if status == UNE and day <= t1 and r.random() < 0.85:
                end = changes[i + 1][0] if i + 1 < len(changes) else None
                start = day + r.randrange(15)
                if start > t1 or end is not None and end <= start:
                    continue
                self.episode_events(
                    "kela",
                    "benefit",
                    code,
                    [(start, end if end is not None and end <= t1 else None)],
                    {"benefit": "unemployment_benefit"},
                    "KU",
                )
        # Monthly incomes while employed.
        base = math.exp(r.gauss(math.log(3500) - 0.8 * d[MAT] - 0.4 * e - 0.2 * W, 0.3))
        # Holiday pay not paid in June comes in July or August (seasonality only).
        later_pay = dict(D.HOLIDAY_PAY_LATER) if w.seasonal else None
        holiday_paid = None
        for month, payday in w.paydays:
            if payday < t0 or payday > t1:
                continue
            st = status_at(payday)
            if st == EMP or (st == UNE and r.random() < 0.12):
                g = base * (1 + r.gauss(0, 0.04)) * (0.3 if st == UNE else 1.0)
                if month.endswith("-06") and r.random() < 0.6:
                    g *= 1.5
                    holiday_paid = month[:4]
                elif later_pay and holiday_paid != month[:4] and month[4:] in later_pay:
                    if r.random() < later_pay[month[4:]]:
                        g *= 1.5
                        holiday_paid = month[:4]
                self.ev(
                    "incomes",
                    "income.reported",
                    payday,
                    code,
                    {"month": month, "gross_eur": round(g, 2)},
                )
        # Kela per person.
        self.episode_events(
            "kela",
            "benefit",
            code,
            seg_episodes(
                r, path, lambda s: 0.05 + 0.5 * s.d[HEA], const(35), max(S, t0), t1, adult_day, 7
            ),
            {"benefit": "sickness_allowance"},
            "KS",
        )
        # Health care.
        t0v = max(S, t0)
        for service, rate_of in (
            ("primary_care", lambda s: 0.5 + 2.0 * s.d[HEA]),
            ("dental", const(0.25)),
            ("mental_health", adult_mental_health),
            ("substance_abuse", lambda s: 0.005 + 3.0 * s.d[INS] ** 3),
        ):
            for day in seg_points(r, path, rate_of, t0v, t1):
                self.ev("avohilmo", "health.visit", day, code, {"service": service})
        if is_a:
            for tb in self.new_births:
                for day in points(r, 11, max(t0v, tb - 270), tb - 1):
                    self.ev("avohilmo", "health.visit", day, code, {"service": "maternity_clinic"})
        self.hilmo(code, t0v, t1, path, adult=True)

    def hilmo(self, code, t0, t1, path, adult):
        r = self.r
        f = 1 if adult else 0.5
        for service, rate_of, lo, hi in (
            ("somatic_specialist", lambda s: 0.06 + 0.35 * s.d[HEA], 0, 7),
            (
                "psychiatric",
                lambda s: (0.004 + 0.25 * s.d[HEA] * s.d[INS] + 0.12 * s.sigma**3) * f,
                3,
                60,
            ),
            ("emergency", lambda s: 0.06 + 0.2 * s.d[INS] + 0.1 * s.d[HEA], 0, 2),
        ):
            for day in seg_points(r, path, rate_of, t0, t1):
                self.ev(
                    "hilmo",
                    "care.episode",
                    day,
                    code,
                    {"service": service, "days": r.randint(lo, hi)},
                )

    # ---------------------------------------------------------------- children
    def child(self, k: Person, first_day: int) -> None:
        w, r, d = self.w, self.r, self.d
        S = w.S
        code = k.hetu
        t0, t1 = max(first_day, k.born), k.until
        if t1 < t0:
            return
        b18 = self.birthday(k.born, 18)
        b7 = self.birthday(k.born, 7)
        tc = min(t1, b18 - 1)  # childhood part of the window
        exposure = math.exp(r.gauss(0, 0.25))  # the child's own exposure to insecurity

        def ci_of(s: D.State) -> float:
            return clip(s.d[INS] * exposure)

        ci = ci_of(self.path_a.states[0])
        ce = clip(d[EDU] * math.exp(r.gauss(0, 0.3)) + r.gauss(0, 0.05))
        applicant = self.B.hetu if k.child_of_b else self.A.hetu
        path = self.path_of(k)
        season = w.season
        t0v = max(S, t0)
        # Health care visits.
        visits = [
            ("primary_care", lambda s: 0.6 + 1.0 * s.d[HEA], t0v, t1, None),
            ("dental", const(0.3), t0v, t1, None),
        ]
        clinic = 1 - 0.3 * d[VOI]
        b1 = self.birthday(k.born, 1)
        visits.append(("child_health_clinic", const(7.0 * clinic), t0v, min(t1, b1 - 1), None))
        visits.append(
            ("child_health_clinic", const(1.2 * clinic), max(t0v, b1), min(t1, b7 - 1), None)
        )
        visits.append(("school_health", const(0.8), max(t0v, b7), tc, season["school_health"]))
        b12 = self.birthday(k.born, 12)
        visits.append(
            (
                "mental_health",
                lambda s: (0.02 + 2.0 * ci_of(s) ** 2 + 0.8 * s.sigma**3) * s.mh,
                max(t0v, b12),
                t1,
                season["mental_health_child"],
            )
        )
        for service, rate_of, lo, hi, seas in visits:
            for day in seg_points(r, path, rate_of, lo, hi, seas):
                self.ev("avohilmo", "health.visit", day, code, {"service": service})
        self.hilmo(code, t0v, t1, path, adult=False)

        # Child welfare.
        if tc >= t0v:

            def notif(s: D.State) -> float:
                return (0.01 + 0.9 * ci_of(s) ** 2 + 0.35 * s.sigma**3) * s.notif

            for day in seg_points(r, path, notif, t0v, tc, season["notification"]):
                self.ev("child_welfare", "child_welfare.notification", day, code, {})
            if self.planned is not None:
                client = self.planted_client(k, path, t0v)
            else:
                client = seg_episodes(
                    r,
                    path,
                    lambda s: client_rate(s, ci_of(s)),
                    const(CLIENT_MEAN),
                    t0v,
                    tc,
                    k.born,
                    CLIENT_MIN,
                )
                for start, _ in client:
                    pre = start - r.randint(5, 60)
                    for day in self.multiplied_notification(path, pre):
                        if day >= t0v:
                            self.ev("child_welfare", "child_welfare.notification", day, code, {})
                client = [
                    (s, e if e is not None else (None if tc == t1 or b18 > t1 else b18))
                    for s, e in client
                ]
                self.episode_events(
                    "child_welfare",
                    "child_welfare.client",
                    code,
                    client,
                    {},
                    "LS",
                    "_ended",
                    "_started",
                )
            if client:
                place = seg_episodes(
                    r,
                    path,
                    lambda s: 0.05 * ci_of(s) + 0.25 * s.sigma**4,
                    const(450),
                    t0v,
                    tc,
                    k.born,
                    30,
                )
                self.episode_events(
                    "child_welfare",
                    "child_welfare.placement",
                    code,
                    place,
                    {},
                    "SI",
                    "_ended",
                    "_started",
                )

        # Early childhood education, or child home care allowance.
        if b7 > t0v and k.born < t1:
            ecec = r.random() < 0.9 - 0.35 * d[VOI] - 0.15 * d[SOC]
            start = k.born + int(r.uniform(0.8, 2.8) * YEAR)
            end_ecec = dt.date(dt.date.fromordinal(b7).year, 7, 31).toordinal()
            if ecec and start < end_ecec:
                if start < t1 and end_ecec >= t0v:
                    self.episode_events(
                        "varda",
                        "ecec",
                        code,
                        [(start, end_ecec if end_ecec <= t1 else None)],
                        {},
                        "VA",
                    )
            else:
                home_end = k.born + int(r.uniform(2.0, 3.0) * YEAR)
                start_h = k.born + 300
                if start_h < t1 and home_end >= t0v:
                    self.episode_events(
                        "kela",
                        "benefit",
                        applicant,
                        [(start_h, home_end if home_end <= t1 else None)],
                        {"benefit": "child_home_care_allowance"},
                        "KH",
                    )
        # School: support level, basic education completion.
        if b7 <= tc and b18 > t0v:
            lvl = "general"
            p_int, p_spec = 0.06 + 0.35 * ce + 0.1 * ci, 0.02 + 0.15 * ce**1.5
            for aug in w.augusts:
                if (
                    aug < b7
                    or aug > tc
                    or aug > dt.date(dt.date.fromordinal(k.born).year + 16, 8, 31).toordinal()
                ):
                    continue
                u = r.random()
                if lvl == "general":
                    new = "intensified" if u < p_int * 0.5 else lvl
                elif lvl == "intensified":
                    new = "special" if u < p_spec else "general" if u < p_spec + 0.2 else lvl
                else:
                    new = "intensified" if u < 0.1 else lvl
                if new != lvl:
                    lvl = new
                    if aug >= t0 and aug <= t1:
                        self.ev("koski", "school.support_changed", aug, code, {"level": lvl})
        g16 = dt.date(dt.date.fromordinal(k.born).year + 16, 6, 1).toordinal()
        if t0v <= g16 <= t1:
            self.ev("koski", "education.completed", g16, code, {"level": "basic"})
        g19 = dt.date(dt.date.fromordinal(k.born).year + 19, 6, 1).toordinal()
        if t0v <= g19 <= t1 and r.random() < 0.85 - 0.3 * ce:
            self.ev(
                "koski",
                "education.completed",
                g19,
                code,
                {"level": "upper_secondary" if r.random() < 0.55 - 0.3 * ce else "vocational"},
            )

    def multiplied_notification(self, path: D.Path, day: int) -> list[int]:
        """The notification before a client episode, under the notification multiplier
        in force (a shift's ratio then holds for all of the child's notifications)."""
        m = path.at(day)[0].notif
        if m == 1.0:
            return [day]
        r = self.r
        if m < 1.0:
            return [day] if r.random() < m else []
        extra = poisson(r, m - 1.0)
        return sorted([day] + [day - r.randint(0, 30) for _ in range(extra)])

    # ----------------------------------------------------------------- family
    def family_services(self, p: Person, t0: int, t1: int, path: D.Path) -> None:
        w, r = self.w, self.r
        S = w.S
        code = p.hetu
        born = p.born + 18 * 365
        young = 1.0 if any(k.born > t0 - 3 * 365 for k in self.kids) else 0.3
        starts = w.season["benefit_start"]
        kela = (
            (
                "basic_social_assistance",
                lambda s: 0.03 + 1.6 * s.d[MAT] ** 1.5 + 0.5 * s.d[WRK] ** 2 + 0.6 * s.sigma**2,
                lambda s: 60 + 300 * s.d[MAT],
                28,
                "KT",
                starts,
            ),
            (
                "housing_allowance",
                lambda s: 0.02 + 0.5 * s.d[MAT] + 0.3 * s.d[ENV],
                const(500),
                60,
                "KA",
                starts,
            ),
            (
                "disability_allowance",
                lambda s: 0.005 + 0.12 * s.d[HEA] ** 2,
                const(1500),
                180,
                "KV",
                None,
            ),
        )
        for benefit, rate_of, mean_of, mn, prefix, season in kela:
            self.episode_events(
                "kela",
                "benefit",
                code,
                seg_episodes(r, path, rate_of, mean_of, max(S, t0), t1, born, mn, season=season),
                {"benefit": benefit},
                prefix,
            )
        if self.planned is not None:  # the planted starts replace the flat draws
            self.planted_social(p)
            return
        for service, rate, mean, mn in SOCIAL_SERVICES:
            self.episode_events(
                "social_services",
                "social_service",
                code,
                seg_episodes(
                    r,
                    path,
                    lambda s, rate=rate: rate(s, young),
                    const(mean),
                    max(S, t0),
                    t1,
                    born,
                    mn,
                ),
                {"service": service},
                "SS",
            )


def assign_families(n: int, seed: int, inmover_share: float = 0.06):
    """Municipality, area, archetype and need level of ``n`` families (plus in-movers).

    Returns a list of (postcode, archetype index, need level, in-mover) in family order.
    """
    rng = np.random.default_rng(seed)
    munis = M.load_municipalities()
    areas = M.load_areas()
    codes = sorted(munis)
    hh = np.array([munis[c].households_with_children for c in codes], dtype=float)
    n_in = int(round(n * inmover_share))
    total = n + n_in
    quota = hh / hh.sum() * total
    counts = np.floor(quota).astype(int)
    if total >= len(codes):
        counts = np.maximum(counts, 1)
    while counts.sum() < total:
        counts[np.argmax(quota - counts)] += 1
    while counts.sum() > total:
        counts[np.argmax(counts)] -= 1
    postcodes: list[str] = []
    for c, k in zip(codes, counts, strict=True):
        mine = [a for a in areas if a.municipality == c]
        mine.sort(key=lambda a: -a.weight)
        w = np.array([a.weight for a in mine])
        base = np.zeros(len(mine), dtype=int)
        base[: min(k, len(mine))] = 1  # as many areas as possible get a family
        rest = k - base.sum()
        if rest > 0:
            base += rng.multinomial(rest, w / w.sum())
        for a, m in zip(mine, base, strict=True):
            postcodes.extend([a.postcode] * int(m))
    order = rng.permutation(len(postcodes))
    postcodes = [postcodes[i] for i in order]
    by_code = {a.postcode: a for a in areas}
    sev = np.array([x.severity for x in M.ARCHETYPES])
    sev_c = sev - sev.mean()
    base_w = np.array([x.weight for x in M.ARCHETYPES])
    need = np.array([x.need for x in M.ARCHETYPES])
    arch = np.empty(total, dtype=int)
    scores = np.empty(total)
    prop = np.array(
        [by_code[p].propensity + munis[by_code[p].municipality].effect for p in postcodes]
    )
    for value in np.unique(prop):
        idx = np.flatnonzero(prop == value)
        p = base_w * np.exp(M.AREA_TILT * value * sev_c)
        arch[idx] = rng.choice(len(p), size=len(idx), p=p / p.sum())
    scores = need[arch] + M.AREA_NEED * prop + rng.normal(0, M.NEED_NOISE, total)
    levels = M.need_levels(scores)
    inmover = np.zeros(total, dtype=bool)
    inmover[rng.choice(total, size=n_in, replace=False)] = True
    return [(postcodes[i], int(arch[i]), int(levels[i]), bool(inmover[i])) for i in range(total)]


def family_id(index: int, seed: int) -> str:
    # A permutation of 0..10^9-1, so ids are unique and do not reveal the order.
    return "F" + f"{(index * 722_916_833 + seed * 7_654_321 + 12_345) % 1_000_000_000:09d}"


def simulate(
    families: int,
    seed: int,
    start: dt.date,
    end: dt.date,
    emit,
    dynamics: D.Dynamics | None = None,
    record: D.Record | None = None,
) -> list[dict]:
    """Run the simulation; events go to ``emit(key, event)``; returns the planted truth.

    ``dynamics``: trajectories, seasonality and planted shifts (None: flat, as always);
    what they did goes to ``record`` (trajectories, shift tallies)."""
    w = World(seed, start, end, emit, dynamics, record)
    truth: list[dict] = []
    for i, (postcode, arch, level, inmover) in enumerate(assign_families(families, seed)):
        fam = FamilySim(w, i, family_id(i, seed), M.ARCHETYPES[arch], level, postcode, inmover)
        truth.extend(fam.run())
    return truth
