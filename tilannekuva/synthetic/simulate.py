"""Family-by-family simulation of three years of register events.

Each family is simulated with its own ``random.Random`` seeded from (seed, family
index), so a family's events do not depend on the others, except for the individual
numbers of identity codes, which are handed out in family order (deterministic).
Days are ``date.toordinal()`` integers. Events are handed to ``emit(key, event)``
where ``key`` is the UTC millisecond of ``recorded_at`` (the file's sort key).
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
import random
from collections.abc import Callable

import numpy as np

from models import hetu
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

    def __init__(self, seed: int, start: dt.date, end: dt.date, emit: Callable[[int, dict], None]):
        self.seed = seed
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


def episodes(r, rate, mean_days, t0, t1, born, min_days=7, warm=3 * 365):
    """Alternating renewal process: (start, end or None) of episodes seen on [t0, t1]."""
    out = []
    if rate <= 0 or t1 < t0:
        return out
    t = max(t0 - warm, born)
    while True:
        t += int(r.expovariate(rate / YEAR)) + 1
        if t > t1:
            return out
        dur = max(min_days, int(r.expovariate(1.0 / mean_days)))
        end = t + dur
        if end >= t0:
            out.append((t, end if end <= t1 else None))
        t = end


def clip(x: float, lo: float = 0.0, hi: float = 1.0) -> float:
    return lo if x < lo else hi if x > hi else x


class Person:
    __slots__ = ("hetu", "born", "role", "until", "child_of_b")

    def __init__(self, code, born, role, until):
        self.hetu, self.born, self.role, self.until = code, born, role, until
        self.child_of_b = False


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

    # ------------------------------------------------------------------ events
    def ev(self, src: str, typ: str, occ: int, person: str | None, data: dict) -> None:
        w, r = self.w, self.r
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
        if np_from is not None:
            tn = np_from + int(r.expovariate(0.09) * YEAR)
            if tn < t_end:
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

        # Person-level registers.
        adults = [(self.A, True), (self.B, False), (self.C, False)]
        for p, is_a in adults:
            if p is not None:
                self.adult(p, first_day, is_a)
        for k in self.kids:
            self.child(k, first_day)
        # Family-level services: applicant A for the family, B for the new family.
        self.family_services(self.A, first_day, t_end)
        if self.sep is not None:
            self.family_services(self.B, self.sep, E)
        return self.truth

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
        hz = {
            EMP: 0.03 + 0.45 * W**1.5 + 0.12 * sg * sg,
            UNE: max(0.25, 1.6 * (1 - W) - 0.6 * sg),
            STU: 0.45,
            OUT: 0.1 * (1 - W) + 0.05,
        }
        while True:
            t += int(r.expovariate(hz[st]) * YEAR) + 1
            if t > t1:
                break
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
        for month, payday in w.paydays:
            if payday < t0 or payday > t1:
                continue
            st = status_at(payday)
            if st == EMP or (st == UNE and r.random() < 0.12):
                g = base * (1 + r.gauss(0, 0.04)) * (0.3 if st == UNE else 1.0)
                if month.endswith("-06") and r.random() < 0.6:
                    g *= 1.5
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
            episodes(r, 0.05 + 0.5 * H, 35, max(S, t0), t1, adult_day, 7),
            {"benefit": "sickness_allowance"},
            "KS",
        )
        # Health care.
        t0v = max(S, t0)
        mh = 0.03 + 3.0 * (0.5 * H + 0.5 * d[INS]) ** 2 + 1.2 * sg**3
        for service, rate in (
            ("primary_care", 0.5 + 2.0 * H),
            ("dental", 0.25),
            ("mental_health", mh),
            ("substance_abuse", 0.005 + 3.0 * d[INS] ** 3),
        ):
            for day in points(r, rate, t0v, t1):
                self.ev("avohilmo", "health.visit", day, code, {"service": service})
        if is_a:
            for tb in self.new_births:
                for day in points(r, 11, max(t0v, tb - 270), tb - 1):
                    self.ev("avohilmo", "health.visit", day, code, {"service": "maternity_clinic"})
        self.hilmo(code, t0v, t1, adult=True)

    def hilmo(self, code, t0, t1, adult):
        r, d, sg = self.r, self.d, self.sigma
        h, ins = d[HEA], d[INS]
        for service, rate, lo, hi in (
            ("somatic_specialist", 0.06 + 0.35 * h, 0, 7),
            ("psychiatric", (0.004 + 0.25 * h * ins + 0.12 * sg**3) * (1 if adult else 0.5), 3, 60),
            ("emergency", 0.06 + 0.2 * ins + 0.1 * h, 0, 2),
        ):
            for day in points(r, rate, t0, t1):
                self.ev(
                    "hilmo",
                    "care.episode",
                    day,
                    code,
                    {"service": service, "days": r.randint(lo, hi)},
                )

    # ---------------------------------------------------------------- children
    def child(self, k: Person, first_day: int) -> None:
        w, r, d, sg = self.w, self.r, self.d, self.sigma
        S = w.S
        code = k.hetu
        t0, t1 = max(first_day, k.born), k.until
        if t1 < t0:
            return
        b18 = self.birthday(k.born, 18)
        b7 = self.birthday(k.born, 7)
        tc = min(t1, b18 - 1)  # childhood part of the window
        ci = clip(d[INS] * math.exp(r.gauss(0, 0.25)))  # the child's own exposure
        ce = clip(d[EDU] * math.exp(r.gauss(0, 0.3)) + r.gauss(0, 0.05))
        applicant = self.B.hetu if k.child_of_b else self.A.hetu
        t0v = max(S, t0)
        # Health care visits.
        visits = [("primary_care", 0.6 + 1.0 * d[HEA], t0v, t1), ("dental", 0.3, t0v, t1)]
        clinic = 1 - 0.3 * d[VOI]
        b1 = self.birthday(k.born, 1)
        visits.append(("child_health_clinic", 7.0 * clinic, t0v, min(t1, b1 - 1)))
        visits.append(("child_health_clinic", 1.2 * clinic, max(t0v, b1), min(t1, b7 - 1)))
        visits.append(("school_health", 0.8, max(t0v, b7), tc))
        b12 = self.birthday(k.born, 12)
        visits.append(("mental_health", 0.02 + 2.0 * ci**2 + 0.8 * sg**3, max(t0v, b12), t1))
        for service, rate, lo, hi in visits:
            for day in points(r, rate, lo, hi):
                self.ev("avohilmo", "health.visit", day, code, {"service": service})
        self.hilmo(code, t0v, t1, adult=False)

        # Child welfare.
        if tc >= t0v:
            notif = 0.01 + 0.9 * ci**2 + 0.35 * sg**3
            for day in points(r, notif, t0v, tc):
                self.ev("child_welfare", "child_welfare.notification", day, code, {})
            client = episodes(r, 0.004 + 0.4 * ci**2 * sg + 0.22 * sg**4, 500, t0v, tc, k.born, 60)
            for start, _ in client:
                pre = start - r.randint(5, 60)
                if pre >= t0v:
                    self.ev("child_welfare", "child_welfare.notification", pre, code, {})
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
                place = episodes(r, 0.05 * ci + 0.25 * sg**4, 450, t0v, tc, k.born, 30)
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

    # ----------------------------------------------------------------- family
    def family_services(self, p: Person, t0: int, t1: int) -> None:
        w, r, d, sg = self.w, self.r, self.d, self.sigma
        S = w.S
        code = p.hetu
        born = p.born + 18 * 365
        young = any(k.born > t0 - 3 * 365 for k in self.kids)
        kela = (
            (
                "basic_social_assistance",
                0.03 + 1.6 * d[MAT] ** 1.5 + 0.5 * d[WRK] ** 2 + 0.6 * sg**2,
                60 + 300 * d[MAT],
                28,
                "KT",
            ),
            ("housing_allowance", 0.02 + 0.5 * d[MAT] + 0.3 * d[ENV], 500, 60, "KA"),
            ("disability_allowance", 0.005 + 0.12 * d[HEA] ** 2, 1500, 180, "KV"),
        )
        for benefit, rate, mean, mn, prefix in kela:
            self.episode_events(
                "kela",
                "benefit",
                code,
                episodes(r, rate, mean, max(S, t0), t1, born, mn),
                {"benefit": benefit},
                prefix,
            )
        social = (
            ("family_work", 0.01 + 0.5 * sg**2 + 0.2 * d[SOC], 180, 30),
            ("home_service", (0.01 + 0.3 * d[SOC] + 0.2 * sg**2) * (1.0 if young else 0.3), 90, 14),
            ("family_counselling", 0.03 + 0.3 * d[SOC] + 0.2 * d[INS], 120, 14),
            ("multi_professional_support", 1.4 * max(0.0, sg - 0.6), 365, 60),
            ("substance_abuse_services", 0.003 + 0.8 * d[INS] ** 2 * d[HEA], 270, 30),
        )
        for service, rate, mean, mn in social:
            self.episode_events(
                "social_services",
                "social_service",
                code,
                episodes(r, rate, mean, max(S, t0), t1, born, mn),
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


def simulate(families: int, seed: int, start: dt.date, end: dt.date, emit) -> list[dict]:
    """Run the simulation; events go to ``emit(key, event)``; returns the planted truth."""
    w = World(seed, start, end, emit)
    truth: list[dict] = []
    for i, (postcode, arch, level, inmover) in enumerate(assign_families(families, seed)):
        fam = FamilySim(w, i, family_id(i, seed), M.ARCHETYPES[arch], level, postcode, inmover)
        truth.extend(fam.run())
    return truth
