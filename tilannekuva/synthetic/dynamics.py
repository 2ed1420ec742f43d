"""Dynamics of the synthetic registers: family trajectories, seasonality, planted shifts.

All of it is opt-in (``--dynamics``, ``--shifts N``, ``--population-shift PP``); without
it the simulation draws exactly what it drew before, so default files stay byte-identical.

* A family's *state* (need level, the eight domain intensities, rate multipliers) is a
  piecewise-constant :class:`Path` over days; the simulation reads the state in force
  on each day (``simulate.py``: ``seg_points``, ``seg_episodes``, the employment loop).
* Trajectories: life events (job loss, illness, separation) move a family up, recovery
  brings it back towards its baseline (:data:`LIFE_EVENTS`, :data:`RECOVERY_RATE`).
* Seasonality: monthly factors (mean 1 over the year) thin the point processes
  (:data:`SEASONS`).
* Shifts: :class:`Shift` is one planted change in a scope from a known onset;
  :func:`plan_shifts` picks ``N`` of them for a seed, :func:`population_shift` makes
  the population-wide rise. Their truth (:func:`shift_truth`) is computed from what the
  simulation actually did and never appears in the events.
* Services (``--services``): the starts of the planted services are drawn on the need
  path (selection: :data:`RISING_FACTOR`, :func:`service_supply`) and a start may lower
  the family's latent need (:data:`SERVICE_EFFECTS`, :meth:`Path.with_effect`); a
  counterfactual twin draws the same starts and applies no effect, or none of one
  service's.

See ``docs/synthetic.md``, "Dynamics" and "Services and their planted effects".
"""

from __future__ import annotations

import bisect
import datetime as dt
import random
from dataclasses import asdict, dataclass, field, replace

from tilannekuva.synthetic import model as M
from tilannekuva.synthetic.model import HEA, INS, MAT, SOC, WRK

NEVER = -(10**9)  # the first segment of every path starts "always"

# ---------------------------------------------------------------- seasonality
# Monthly factors (Jan..Dec), normalised to mean 1 so yearly totals stay as before.
# Child welfare notifications come largely from schools and day care: fewer in July.
# School health visits follow the school year. Benefit starts bunch after the summer
# (summer jobs end, applications wait for August).
_RAW_SEASONS = {
    "notification": (1.05, 1.10, 1.10, 1.05, 1.05, 0.85, 0.60, 0.90, 1.10, 1.10, 1.05, 0.95),
    "school_health": (1.15, 1.15, 1.15, 1.10, 1.05, 0.45, 0.10, 0.90, 1.25, 1.20, 1.20, 0.95),
    "mental_health_child": (1.05, 1.05, 1.05, 1.05, 1.00, 0.85, 0.70, 0.90, 1.10, 1.10, 1.05, 1.00),
    "benefit_start": (1.00, 0.95, 0.95, 0.95, 0.90, 0.85, 0.80, 1.25, 1.25, 1.05, 1.00, 1.05),
}
SEASONS = {k: tuple(x * 12 / sum(v) for x in v) for k, v in _RAW_SEASONS.items()}
# Holiday pay (lomaraha, x1.5 of the month): June for 60 % (as without dynamics), of the
# rest July for 60 %, August for the others.
HOLIDAY_PAY_LATER = (("-07", 0.6), ("-08", 1.0))


def season_table(channel: str, iso_days: list[str]) -> tuple[float, list[float]]:
    """(peak factor, acceptance probability per day index) for thinning a channel."""
    f = SEASONS[channel]
    peak = max(f)
    by_month = [x / peak for x in f]
    return peak, [by_month[int(d[5:7]) - 1] for d in iso_days]


# ---------------------------------------------------------------- trajectories
@dataclass(frozen=True)
class LifeEvent:
    name: str
    base: float  # rate per year ...
    slope: float  # ... + slope x the family's intensity in `domain`
    domain: int
    level_up: int
    level_up2: float  # probability of one more level
    shocks: tuple[tuple[int, float], ...]  # (domain, added intensity)
    layoff: bool  # an employed parent loses the job that day


LIFE_EVENTS = (
    LifeEvent("job_loss", 0.03, 0.12, WRK, 1, 0.2, ((WRK, 0.25), (MAT, 0.15)), True),
    LifeEvent("illness", 0.02, 0.10, HEA, 1, 0.3, ((HEA, 0.30), (INS, 0.10), (WRK, 0.10)), False),
)
SEPARATION = LifeEvent("separation", 0, 0, SOC, 1, 0.2, ((SOC, 0.25), (MAT, 0.10)), False)
RECOVERY_RATE = 0.8  # per year while above the baseline: one level back, halfway back
WARMUP_DAYS = 730  # life simulated before the history, so it starts in balance
IMPROVEMENT_RATE = 0.05  # per year at the baseline (level >= 2): a lasting step down
IMPROVEMENT_KEEP = 0.85  # domain intensities kept by a lasting improvement


@dataclass(frozen=True)
class State:
    """What the rates read on a day: need level, sigma, domains, rate multipliers."""

    level: int
    sigma: float
    d: tuple[float, ...]
    notif: float = 1.0  # child welfare notifications
    mh: float = 1.0  # mental health visits


def make_state(level: int, d, **mult) -> State:
    level = max(1, min(10, level))
    return State(level, (level - 1) / 9.0, tuple(d), **mult)


def shocked(st: State, ev: LifeEvent, extra: int) -> State:
    d = list(st.d)
    for k, v in ev.shocks:
        d[k] = min(1.0, d[k] + v)
    return make_state(st.level + ev.level_up + extra, d, notif=st.notif, mh=st.mh)


class Path:
    """A piecewise-constant state: ``states[i]`` is in force from ``days[i]``."""

    __slots__ = ("days", "states")

    def __init__(self, state: State):
        self.days = [NEVER]
        self.states = [state]

    def set(self, day: int, state: State) -> None:
        """The state from ``day`` on (days are set in increasing order)."""
        if day == self.days[-1]:
            self.states[-1] = state
        elif day > self.days[-1]:
            self.days.append(day)
            self.states.append(state)
        else:
            raise ValueError("path days must increase")

    def at(self, t: int) -> tuple[State, int | None]:
        """The state on day ``t`` and the next change day after ``t`` (None: none)."""
        i = bisect.bisect_right(self.days, t) - 1
        return self.states[i], self.days[i + 1] if i + 1 < len(self.days) else None

    def segments(self, t0: int, t1: int):
        """(lo, hi, state) covering [t0, t1]; one segment: exactly (t0, t1, state)."""
        if len(self.days) == 1:
            yield t0, t1, self.states[0]
            return
        for i, st in enumerate(self.states):
            lo = max(t0, self.days[i])
            hi = t1 if i + 1 == len(self.days) else min(t1, self.days[i + 1] - 1)
            if lo <= hi:
                yield lo, hi, st

    def joined(self, other: Path, day: int) -> Path:
        """This path before ``day``, ``other`` from ``day`` on."""
        out = Path(self.states[0])
        out.days, out.states = [], []
        for d, s in zip(self.days, self.states, strict=True):
            if d < day:
                out.days.append(d)
                out.states.append(s)
        st, _ = other.at(day)
        out.days.append(day)
        out.states.append(st)
        for d, s in zip(other.days, other.states, strict=True):
            if d > day:
                out.days.append(d)
                out.states.append(s)
        return out

    def with_multiplier(self, name: str, schedule: list[tuple[int, float]]) -> Path:
        """The path with multiplier ``name`` multiplied by a step schedule [(day, value)]."""
        cuts = sorted(set(self.days) | {d for d, _ in schedule})
        out = Path(self.states[0])
        out.days, out.states = [], []
        sdays = [d for d, _ in schedule]
        for day in cuts:
            st, _ = self.at(day)
            j = bisect.bisect_right(sdays, day) - 1
            m = schedule[j][1] if j >= 0 else 1.0
            out.days.append(day)
            out.states.append(replace(st, **{name: getattr(st, name) * m}))
        return out

    def with_effect(self, day: int, levels: int, keep: float) -> Path:
        """The path with every state from ``day`` on lowered by ``levels`` need levels
        (clamped at 1) and its domain intensities multiplied by ``keep``: a lasting
        improvement, so later life events and recoveries (the baseline too) act on the
        shifted states. No effect (0 levels, keep 1): the path itself, no cut day."""
        if levels == 0 and keep == 1.0:
            return self
        out = Path(self.states[0])
        out.days, out.states = [], []
        for d in sorted(set(self.days) | {day}):
            st, _ = self.at(d)
            if d >= day:
                st = make_state(
                    st.level - levels, [x * keep for x in st.d], notif=st.notif, mh=st.mh
                )
            out.days.append(d)
            out.states.append(st)
        return out

    def rises(self) -> list[int]:
        """The change days on which the need level went up (life events, shift shocks)."""
        return [
            d
            for i, d in enumerate(self.days)
            if i and self.states[i].level > self.states[i - 1].level
        ]

    def level_at(self, t: int) -> int:
        return self.at(t)[0].level


def life_events(
    r: random.Random,
    start: State,
    t0: int,
    t1: int,
    fixed: list[tuple[int, object]],
    warm: int = 0,
) -> tuple[Path, list[tuple[int, int, str]], list[int]]:
    """Simulate a unit's trajectory on [t0, t1].

    ``start`` is the family's baseline; ``warm`` days of life before ``t0`` are
    simulated first (not recorded), so the history starts with the mix of recent job
    losses and illnesses a stationary population has instead of none.
    ``fixed``: (day >= t0, action) applied on their day, where an action is a
    :class:`LifeEvent` (separation) or a callable ``(state, baseline, r) ->
    (state, baseline, cause)`` (a planted shock). Returns the path, the level changes
    (day, level, cause) and the layoff days of job losses.
    """
    st, base = start, start
    t = t0 - warm
    while True:  # warm-up: a draw that crosses t0 is redrawn from t0 (memoryless)
        total, rates, recover = _rates(st, base)
        t += int(r.expovariate(total) * 365.25) + 1
        if t >= t0:
            break
        st, base, _, _ = _random_event(r, st, base, rates, recover, total)
    path = Path(st)
    changes: list[tuple[int, int, str]] = []
    layoffs: list[int] = []
    fixed = sorted(fixed, key=lambda x: x[0])
    t = t0
    while True:
        total, rates, recover = _rates(st, base)
        nxt = t + int(r.expovariate(total) * 365.25) + 1
        if fixed and fixed[0][0] <= min(nxt, t1):
            day, action = fixed.pop(0)
            if isinstance(action, LifeEvent):
                st = shocked(st, action, int(r.random() < action.level_up2))
                cause = action.name
            else:
                st, base, cause = action(st, base, r)
            t = day
        elif nxt > t1:
            break
        else:
            t = nxt
            st, base, cause, layoff = _random_event(r, st, base, rates, recover, total)
            if layoff:
                layoffs.append(t)
        path.set(t, st)
        changes.append((t, st.level, cause))
    return path, changes, layoffs


def _rates(st: State, base: State) -> tuple[float, list[float], float]:
    rates = [ev.base + ev.slope * st.d[ev.domain] for ev in LIFE_EVENTS]
    up = st.level > base.level
    recover = RECOVERY_RATE if up else IMPROVEMENT_RATE if st.level >= 2 else 0.0
    return sum(rates) + recover, rates, recover


def _random_event(r, st, base, rates, recover, total):
    """(state, baseline, cause, layoff) after one life event or recovery."""
    u = r.random() * total
    if u < recover:
        return (*_recovered(st, base), False)
    ev = _pick(LIFE_EVENTS, rates, u - recover)
    return shocked(st, ev, int(r.random() < ev.level_up2)), base, ev.name, ev.layoff


def _pick(events, rates, u):
    """The event whose share of the total rate ``u`` falls in."""
    for ev, rate in zip(events, rates, strict=True):
        if u < rate:
            return ev
        u -= rate
    return events[-1]


def fixed_events(
    r: random.Random, start: State, fixed: list[tuple[int, object]]
) -> tuple[Path, list[tuple[int, int, str]], list[int]]:
    """:func:`life_events` without the random ones (shifts on a flat background)."""
    path, changes = Path(start), []
    st, base = start, start
    for day, action in sorted(fixed, key=lambda x: x[0]):
        if isinstance(action, LifeEvent):
            st, cause = shocked(st, action, int(r.random() < action.level_up2)), action.name
        else:
            st, base, cause = action(st, base, r)
        path.set(day, st)
        changes.append((day, st.level, cause))
    return path, changes, []


def _recovered(st: State, base: State) -> tuple[State, State, str]:
    if st.level > base.level:
        d = [(x + b) / 2 for x, b in zip(st.d, base.d, strict=True)]
        level = st.level - 1
        if level == base.level:
            d = list(base.d)
        return make_state(level, d, notif=st.notif, mh=st.mh), base, "recovery"
    low = make_state(st.level - 1, [x * IMPROVEMENT_KEEP for x in st.d], notif=st.notif, mh=st.mh)
    return low, low, "improvement"


# ---------------------------------------------------------------- planted shifts
MECHANISMS = {
    # mechanism: (indicators in the published terms, kind of size)
    "unemployment": (("families_unemployed_parent",), "pp"),
    "need": (("g4-g10",), "pp"),
    "child_welfare": (("child_welfare_notifications_30d",), "ratio"),
    "mental_health": (("mental_health_visits_90d",), "ratio"),
}
SHARE_RANGE = (2.0, 10.0)  # percentage points of the scope's families
RATIO_RANGE = (1.3, 3.0)  # rate ratio (an improvement: its inverse)
# Expected share of the scope's families a hit can move (hit probability = size / this):
# up in unemployment needs an employed parent and none unemployed, down an unemployed
# parent; up in need a level below 4, down a level of 4 or more.
ELIGIBLE = {("unemployment", "up"): 0.72, ("unemployment", "down"): 0.2}
ELIGIBLE.update({("need", "up"): 0.62, ("need", "down"): 0.38})
# Parents laid off by a shift stay unemployed longer (exit hazard per year), parents a
# shift employs keep the job (loss hazard per year): the planted step persists.
SHIFT_UNEMPLOYED_EXIT = 0.3
SHIFT_EMPLOYED_LOSS = 0.02
NEED_SHOCK = ((MAT, 0.2), (SOC, 0.2), (INS, 0.2))
NEED_RELIEF = 0.7  # domain intensities kept when a shift lowers a family below level 4
RAMP_STEP = 7  # a rate ramp rises in weekly steps
POPULATION_RAMP = 182
# The cycle of shift templates of --shifts N: (scope kind, mechanism, direction, shape,
# ramp days). Scope kinds: a municipality, a small or large area, the Vantaa corridor.
TEMPLATES = (
    ("pori", "unemployment", "up", "step", 0),  # a plant closure in Pori
    ("corridor", "child_welfare", "up", "ramp", 56),  # Vantaa railway corridor
    ("large", "unemployment", "down", "ramp", 84),
    ("small", "mental_health", "up", "step", 0),
    ("large", "need", "up", "ramp", 182),
    ("municipality", "child_welfare", "down", "ramp", 42),
    ("small", "child_welfare", "up", "step", 0),
    ("large", "mental_health", "down", "step", 0),
    ("municipality", "need", "up", "ramp", 91),
    ("small", "unemployment", "up", "ramp", 28),
)
CORRIDOR = ("01360", "01300", "01600", "01200", "01620", "01450", "01280", "01350", "01400")
MIN_SMALL = 8  # a "small" area still has this many families (expected) at the start


@dataclass(frozen=True)
class Shift:
    id: str
    scope_type: str  # area | municipality | all
    scope: str  # postcode, municipality code, or "all"
    municipality: str | None
    onset: dt.date
    shape: str  # step | ramp
    ramp_days: int
    direction: str  # up | down
    mechanism: str  # unemployment | need | child_welfare | mental_health
    size: float  # target: percentage points (share mechanisms) or rate ratio

    @property
    def kind(self) -> str:
        return MECHANISMS[self.mechanism][1]

    def covers(self, postcode: str, municipality: str) -> bool:
        if self.scope_type == "area":
            return postcode == self.scope
        if self.scope_type == "municipality":
            return municipality == self.scope
        return municipality in M.CENTRES

    def hit_probability(self) -> float:
        return min(1.0, self.size / 100.0 / ELIGIBLE[(self.mechanism, self.direction)])

    def shock_day(self, r: random.Random) -> int:
        """A hit family's own shock day: a ramp spreads them evenly over its length."""
        o = self.onset.toordinal()
        return o + (r.randint(0, self.ramp_days) if self.shape == "ramp" else 0)

    def schedule(self) -> list[tuple[int, float]]:
        """Rate multiplier steps (day, value) of a ratio shift."""
        m = self.size
        o = self.onset.toordinal()
        if self.shape == "step" or self.ramp_days <= 0:
            return [(o, m)]
        n = max(1, self.ramp_days // RAMP_STEP)
        return [(o + i * RAMP_STEP, 1 + (m - 1) * (i + 1) / n) for i in range(n)]


def need_shock(s: Shift, tally: ShiftTally):
    """The action of a need shift on one hit family: up moves a family below level 4 to
    4 (or 5) with heavier domains, down moves a family at 4+ to 3 (or 2) with lighter
    ones; the new level is the family's new baseline, so recovery does not undo it."""

    def action(st: State, base: State, r: random.Random):
        cause = f"shift:{s.id}"
        if s.direction == "up" and st.level < 4:
            d = list(st.d)
            for k, v in NEED_SHOCK:
                d[k] = min(1.0, d[k] + v)
            new = make_state(4 + int(r.random() < 0.3), d, notif=st.notif, mh=st.mh)
        elif s.direction == "down" and st.level >= 4:
            d = [x * NEED_RELIEF for x in st.d]
            new = make_state(3 - int(r.random() < 0.3), d, notif=st.notif, mh=st.mh)
        else:
            return st, base, cause
        tally.moved += 1
        return new, new, cause

    return action


def _validate(s: Shift) -> Shift:
    if s.mechanism not in MECHANISMS:
        raise ValueError(f"unknown mechanism {s.mechanism!r}")
    if s.direction not in ("up", "down") or s.shape not in ("step", "ramp"):
        raise ValueError("direction is up|down and shape step|ramp")
    if s.kind == "ratio" and not (s.size > 0 and (s.size > 1) == (s.direction == "up")):
        raise ValueError("a ratio shift's size is > 1 up and < 1 down")
    if s.kind == "pp" and not 0 < s.size <= 100:
        raise ValueError("a share shift's size is in percentage points (0, 100]")
    return s


def plan_shifts(
    n: int,
    seed: int,
    start: dt.date,
    end: dt.date,
    area_families: dict[str, int],
    onset_from: dt.date | None = None,
) -> list[Shift]:
    """``n`` shifts on disjoint scopes of every size, sizes spread over the ranges.

    ``area_families``: expected families per postcode at the start (scope sizes).
    Onsets fall between ``onset_from`` (default 270 days after ``start``) and 180 days
    before ``end``.
    """
    r = random.Random(f"shifts:{seed}")
    areas = {a.postcode: a for a in M.load_areas()}
    ranked = sorted(
        (c for c in area_families if area_families[c] > 0), key=lambda c: (area_families[c], c)
    )
    third = max(1, len(ranked) // 3)
    pools = {
        "small": [c for c in ranked[:third] if area_families[c] >= MIN_SMALL] or ranked[:third],
        "large": ranked[-third:],
        "corridor": [c for c in CORRIDOR if c in area_families],
    }
    used_areas: set[str] = set()
    used_munis: set[str] = set()
    lo = onset_from.toordinal() if onset_from else start.toordinal() + 270
    hi = end.toordinal() - 180
    if hi <= lo:
        raise ValueError("the history is too short for shifts (needs > 15 months)")
    kinds = [MECHANISMS[TEMPLATES[i % len(TEMPLATES)][1]][1] for i in range(n)]
    fracs = {k: _spread(r, sum(1 for x in kinds if x == k)) for k in ("pp", "ratio")}
    out = []
    for i in range(n):
        where, mech, direction, shape, ramp = TEMPLATES[i % len(TEMPLATES)]
        scope_type, code, muni = _pick_scope(r, where, areas, pools, used_areas, used_munis)
        kind = MECHANISMS[mech][1]
        frac = fracs[kind].pop()
        if kind == "pp":
            size = round(SHARE_RANGE[0] + frac * (SHARE_RANGE[1] - SHARE_RANGE[0]), 1)
        else:
            size = round(RATIO_RANGE[0] + frac * (RATIO_RANGE[1] - RATIO_RANGE[0]), 2)
            size = size if direction == "up" else round(1 / size, 3)
        # a ramp longer than the window may end after it (the onset is what is scored)
        onset = dt.date.fromordinal(r.randint(lo, max(lo, hi - ramp)))
        out.append(
            _validate(
                Shift(
                    f"S{i + 1:02d}",
                    scope_type,
                    code,
                    muni,
                    onset,
                    shape,
                    ramp,
                    direction,
                    mech,
                    size,
                )
            )
        )
    return out


def _spread(r: random.Random, k: int) -> list[float]:
    """``k`` fractions spanning 0..1 evenly, in a seeded order."""
    fr = [i / (k - 1) if k > 1 else 0.5 for i in range(k)]
    r.shuffle(fr)
    return fr


def _pick_scope(r, where, areas, pools, used_areas, used_munis):
    # Disjoint scopes: a municipality is free only while none of its areas is taken.
    taken = used_munis | {areas[c].municipality for c in used_areas}
    free_munis = [m for m in sorted(M.CENTRES) if m not in taken]
    if where == "pori" and "609" in free_munis:
        where, choice = "municipality", "609"
    elif where in ("municipality", "pori") and free_munis:
        choice = r.choice(free_munis)
        where = "municipality"
    else:
        where = where if where in pools else "large"
        free = [
            c
            for c in pools[where]
            if c not in used_areas and areas[c].municipality not in used_munis
        ]
        if not free:
            free = [
                c
                for p in pools.values()
                for c in p
                if c not in used_areas and areas[c].municipality not in used_munis
            ]
        if not free:
            raise ValueError("no free scope left for another shift")
        code = r.choice(free)
        used_areas.add(code)
        return "area", code, areas[code].municipality
    used_munis.add(choice)
    return "municipality", choice, choice


def population_shift(
    pp: float, start: dt.date, end: dt.date, onset: dt.date | None = None
) -> Shift:
    """A population-wide rise in need: ``pp`` points of families moved to level >= 4,
    ramped over :data:`POPULATION_RAMP` days from ``onset`` (default mid-history)."""
    if onset is None:
        onset = dt.date.fromordinal((start.toordinal() + end.toordinal()) // 2)
    return _validate(
        Shift("P01", "all", "all", None, onset, "ramp", POPULATION_RAMP, "up", "need", pp)
    )


# ---------------------------------------------------------------- planted services
@dataclass(frozen=True)
class ServiceEffect:
    """The planted effect of a service start on the unit's latent need: with
    ``probability`` (drawn at the start), ``delay_days`` after the start the need level
    goes down by ``levels`` (clamped at 1) and the domain intensities are multiplied by
    ``keep``, for good (:meth:`Path.with_effect`)."""

    service: str
    probability: float
    levels: int
    delay_days: int
    keep: float

    @property
    def changes(self) -> bool:
        """Whether a drawn effect changes the path (:meth:`Path.with_effect`)."""
        return self.levels != 0 or self.keep != 1.0


CLIENT_SERVICE = "child_welfare_open_care"  # child welfare client episodes (LS…)
# The planted effects (docs/synthetic.md, "Services and their planted effects").
# Family counselling and child welfare open care have none: a before/after comparison
# of open care looks harmful through selection alone (its starts follow crises).
SERVICE_EFFECTS = (
    ServiceEffect("family_work", 0.5, 1, 60, IMPROVEMENT_KEEP),
    ServiceEffect("home_service", 0.3, 1, 30, IMPROVEMENT_KEEP),
    ServiceEffect("family_counselling", 0.0, 0, 0, 1.0),
    ServiceEffect("multi_professional_support", 0.6, 1, 120, IMPROVEMENT_KEEP),
    ServiceEffect("substance_abuse_services", 0.4, 1, 90, IMPROVEMENT_KEEP),
    ServiceEffect(CLIENT_SERVICE, 0.0, 0, 0, 1.0),
)
EFFECTS = {e.service: e for e in SERVICE_EFFECTS}
RISING_FACTOR = 3.0  # start hazard x this ...
RISING_DAYS = 180  # ... within this many days from a rise of the need level
SUPPLY_RANGE = (0.6, 1.6)  # per-municipality supply factor, uniform, once per seed
SERVICE_WARM_DAYS = 3 * 365  # starts drawn from this long before the unit's history


def service_supply(seed: int) -> dict[str, float]:
    """The supply factor of each of the six municipalities (rounded: the truth holds
    exactly the factors used); elsewhere (before moving in) the factor is 1."""
    r = random.Random(f"services:{seed}")
    return {m: round(r.uniform(*SUPPLY_RANGE), 3) for m in sorted(M.CENTRES)}


# ---------------------------------------------------------------- options and records
@dataclass
class Dynamics:
    """What the simulation does beyond the flat default (all off: the default)."""

    trajectories: bool = False
    seasonality: bool = False
    shifts: list[Shift] = field(default_factory=list)
    services: bool = False  # planted services (selection and effects)
    # the same starts, no effect applied (True), or all but one service's (its code)
    counterfactual: bool | str = False
    supply: dict[str, float] = field(default_factory=dict)  # municipality -> factor

    @property
    def active(self) -> bool:
        return self.trajectories or self.seasonality or bool(self.shifts) or self.services


@dataclass
class ShiftTally:
    families_at_onset: int = 0
    hit: int = 0
    moved: int = 0


@dataclass
class Record:
    """What the simulation did: trajectories (family, day, level, cause), shift tallies
    and the planted service starts."""

    trajectories: list[dict] = field(default_factory=list)
    tallies: dict[str, ShiftTally] = field(default_factory=dict)
    services: list[dict] = field(default_factory=list)  # planted service starts

    def tally(self, shift_id: str) -> ShiftTally:
        return self.tallies.setdefault(shift_id, ShiftTally())


def shift_truth(shifts: list[Shift], record: Record) -> list[dict]:
    """The truth of each planted shift in the published terms (see the module doc)."""
    out = []
    for s in shifts:
        t = record.tallies.get(s.id, ShiftTally())
        indicators, kind = MECHANISMS[s.mechanism]
        if kind == "pp":
            sign = 1 if s.direction == "up" else -1
            size = (
                round(sign * 100.0 * t.moved / t.families_at_onset, 3)
                if t.families_at_onset
                else 0.0
            )
            unit = "percentage_points"
        else:
            size, unit = s.size, "rate_ratio"
        row = asdict(s)
        row["onset"] = s.onset.isoformat()
        row["target_size"] = row.pop("size")
        row.update(
            indicators=list(indicators),
            unit=unit,
            planted={name: size for name in indicators},
            families_at_onset=t.families_at_onset,
            families_hit=t.hit,
            families_moved=t.moved,
        )
        out.append(row)
    return out


def service_truth(seed: int, start: dt.date, end: dt.date, dyn: Dynamics, record: Record) -> dict:
    """The truth of the planted services (docs/synthetic.md, "The services truth file")."""
    return {
        "seed": seed,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "counterfactual": dyn.counterfactual,
        "supply": dict(dyn.supply),
        "effects": [asdict(e) for e in SERVICE_EFFECTS],
        "starts": record.services,
    }
