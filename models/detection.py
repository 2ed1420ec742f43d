"""Shift detection on the shown history: seasonal baselines, CUSUM, FDR control.

Pure domain logic, bytewax style: :meth:`Detector.step` takes the state, the watermark
day ``W`` and a :class:`Table` of *shown* history (what the API publishes, suppressed
cells as NaN) and returns the new state and the alerts raised. Nothing reads a clock.
:mod:`models.alerts` (the ``rise ≥ 5 pp over 30 days`` rule) stays as it is; its plain
form is here as the method :class:`Rise5pp`, so the rule and the statistical methods can
be compared on one interface (docs/alerts.md).

The pieces:

* :class:`Table`: per scope × series × day, the shown numerator and denominator, as
  numpy arrays (a whole tick is one array operation);
* methods (small classes, hyper-parameters in ``__init__``), each with
  ``score(table, as_of_day) -> Scores``: per (scope, series) the observed share, the
  expected share with a 95 % prediction interval, the statistic, a one-sided p-value
  (for a *rise*), an onset estimate and a strength for ranking:

  - :class:`Farrington`: a quasi-binomial (shares) or quasi-Poisson (rates per family)
    log-linear baseline with trend and annual harmonics, fitted on weekly samples with
    Noufaily-style down-weighting of outbreaks and overdispersion from the Pearson
    residuals; today's count against its prediction on the 2/3-power scale;
  - :class:`Cusum`: a CUSUM (Fricker et al. 2008) on the prewhitened standardised
    residuals of the same baseline: the AR(1) left in the weekly residuals of a stock
    is removed first, so the increments are close to independent and the p-value of
    the CUSUM statistic (its stationary null distribution) is honest;
  - :class:`Level`: today's level against the same series 1–13 weeks ago, each lag
    with the variance it has in the series' own baseline (an empirical variogram), so
    autocorrelated stocks and overlapping windows get an honest variance;
  - :class:`Rise5pp`: today's rule, for comparison;

* :class:`Detector`: minimum counts, Benjamini–Hochberg q-values over all the tests of
  the tick, hysteresis, alert dicts that explain themselves.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(1)
>>> T, n = 3 * 365, 400
>>> num = rng.binomial(n, 0.10, size=(1, 1, T)).astype(float)
>>> num[0, 0, -20:] = rng.binomial(n, 0.20, size=20)  # a shift in the last 20 days
>>> table = Table("2023-01-01", ("a:33100",), ("837",), ("families_social_assistance",),
...               num, np.full((1, T), float(n)))
>>> state, alerts = Detector(Cusum()).step(None, table.last_day, table)
>>> [(a["scope"], a["area"], a["series"], a["method"]) for a in alerts]
[('area', '33100', 'families_social_assistance', 'cusum')]
>>> a = alerts[0]
>>> a["observed"]["share"] > a["expected"]["upper"], a["q"] < 0.05
(True, True)
>>> sorted(state["active"])
['a:33100|families_social_assistance']
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from models.contract import INDICATORS

__all__ = [
    "GROUP_SERIES",
    "METHODS",
    "SERIES",
    "Cusum",
    "Detector",
    "Farrington",
    "Level",
    "Method",
    "Rise5pp",
    "Scores",
    "Table",
    "step",
]

#: Stocks: families with the property on the day (shares of families).
STOCKS: tuple[str, ...] = (
    "families_social_assistance",
    "families_unemployed_parent",
    "families_child_welfare",
    "single_parent_families",
)
#: Rolling sums of events (30 and 90 days): rates per family, not bounded by 1.
WINDOWS: tuple[str, ...] = ("child_welfare_notifications_30d", "mental_health_visits_90d")
#: Shares of families in service-need groups: series name -> the groups summed.
GROUP_SERIES: dict[str, tuple[int, ...]] = {
    "service_need_4_10": tuple(range(4, 11)),
    "service_need_9_10": (9, 10),
}
#: Every watched series, in a fixed order.
SERIES: tuple[str, ...] = STOCKS + WINDOWS + tuple(GROUP_SERIES)
assert set(STOCKS + WINDOWS) <= set(INDICATORS)

_Z95 = float(stats.norm.ppf(0.975))


def _ordinal(day: str) -> int:
    return dt.date.fromisoformat(day[:10]).toordinal()


def _iso(ordinal: int) -> str:
    return dt.date.fromordinal(int(ordinal)).isoformat()


def is_rate(series: str) -> bool:
    """A rate per family (a window count), not a share bounded by 1."""
    return series in WINDOWS


# --------------------------------------------------------------------------- the input


@dataclass(frozen=True)
class Table:
    """The shown history of one tick: scopes × series × days.

    Parameters
    ----------
    first_day
        ISO date of column 0; column ``t`` is ``first_day + t`` days.
    scopes
        Scope keys: ``"all"``, ``"m:<code>"``, ``"a:<postcode>"``.
    municipalities
        The municipality code of each scope (None for ``"all"``).
    series
        Series names (a subset of :data:`SERIES`, or any share / rate).
    num
        Shown numerators, float array ``(scopes, series, days)``; NaN where not shown.
    den
        Shown denominators (families), ``(scopes, days)`` or ``(scopes, series, days)``;
        NaN where not shown.

    The table may reach past the day being scored (a backtest scores one table day by
    day): methods read columns up to ``as_of_day`` only.
    """

    first_day: str
    scopes: tuple[str, ...]
    municipalities: tuple[str | None, ...]
    series: tuple[str, ...]
    num: np.ndarray
    den: np.ndarray

    def __post_init__(self):
        num = np.asarray(self.num, dtype=float)
        den = np.asarray(self.den, dtype=float)
        object.__setattr__(self, "_den2", den if den.ndim == 2 else None)
        if den.ndim == 2:
            den = np.broadcast_to(den[:, None, :], num.shape)
        if num.shape != den.shape or num.shape[:2] != (len(self.scopes), len(self.series)):
            raise ValueError(f"num {num.shape} / den {den.shape} do not fit scopes × series")
        if len(self.municipalities) != len(self.scopes):
            raise ValueError("one municipality per scope")
        object.__setattr__(self, "num", num)
        object.__setattr__(self, "den", den)

    @property
    def n_days(self) -> int:
        return self.num.shape[2]

    @property
    def last_day(self) -> str:
        return _iso(_ordinal(self.first_day) + self.n_days - 1)

    def index(self, day: str) -> int:
        """Column of ``day``; ValueError outside the table."""
        i = _ordinal(day) - _ordinal(self.first_day)
        if not 0 <= i < self.n_days:
            raise ValueError(f"{day} is outside the table ({self.first_day} … {self.last_day})")
        return i

    @classmethod
    def from_pictures(
        cls, pictures: Mapping[str, Mapping], series: tuple[str, ...] = SERIES
    ) -> Table:
        """The table of suppressed pictures ``{day: picture}`` (output of
        :func:`models.suppression.suppress`); days missing in between are NaN.

        >>> def pic(fam, sa, g9):
        ...     g = {str(i): 0 for i in range(1, 11)} | {"9": g9, "10": 0}
        ...     ind = {"families": fam, "families_social_assistance": sa}
        ...     return {"all": {"indicators": ind, "service_need_groups": g},
        ...             "municipalities": {}, "areas": {}}
        >>> t = Table.from_pictures({"2026-01-01": pic(100, 10, 7), "2026-01-03": pic(100, None, 8)})
        >>> t.scopes, t.n_days, t.num[0, SERIES.index("families_social_assistance")].tolist()
        (('all',), 3, [10.0, nan, nan])
        >>> t.num[0, SERIES.index("service_need_9_10")].tolist()
        [7.0, nan, 8.0]
        """
        days = sorted(pictures)
        first = _ordinal(days[0])
        n_days = _ordinal(days[-1]) - first + 1
        muni: dict[str, str | None] = {}
        for pic in pictures.values():
            muni["all"] = None
            for code in pic.get("municipalities") or {}:
                muni[f"m:{code}"] = code
            for pc, body in (pic.get("areas") or {}).items():
                muni[f"a:{pc}"] = (body or {}).get("municipality")
        keys = sorted(muni, key=lambda s: (0 if s == "all" else 1 if s[0] == "m" else 2, s))
        pos = {k: i for i, k in enumerate(keys)}
        num = np.full((len(keys), len(series), n_days), np.nan)
        den = np.full((len(keys), n_days), np.nan)
        for day, pic in pictures.items():
            t = _ordinal(day) - first
            bodies = [("all", pic.get("all") or {})]
            bodies += [(f"m:{c}", b) for c, b in (pic.get("municipalities") or {}).items()]
            bodies += [(f"a:{c}", b) for c, b in (pic.get("areas") or {}).items()]
            for key, body in bodies:
                s = pos[key]
                ind = (body or {}).get("indicators") or {}
                groups = (body or {}).get("service_need_groups") or {}
                fam = ind.get("families")
                den[s, t] = np.nan if fam is None else fam
                for k, name in enumerate(series):
                    if name in GROUP_SERIES:
                        vals = [groups.get(str(g)) for g in GROUP_SERIES[name]]
                        v = None if any(x is None for x in vals) else sum(vals)  # type: ignore[arg-type]
                    else:
                        v = ind.get(name)
                    num[s, k, t] = np.nan if v is None else v
        return cls(_iso(first), tuple(keys), tuple(muni[k] for k in keys), series, num, den)


# --------------------------------------------------------------------------- the output


@dataclass
class Scores:
    """What a method says about every (scope, series) on one day; arrays ``(S, K)``.

    ``observed``/``expected``/``lower``/``upper`` are shares (rates per family for the
    window counts); ``lower``/``upper`` a 95 % prediction interval of today's share.
    ``p`` is one-sided (a rise), NaN where the method could not test (too little
    baseline); ``onset`` a day ordinal, 0 where none; ``strength`` ranks alerts.
    """

    num: np.ndarray
    den: np.ndarray
    observed: np.ndarray
    expected: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    statistic: np.ndarray
    p: np.ndarray
    onset: np.ndarray
    strength: np.ndarray
    details: dict = field(default_factory=dict)


class Method:
    """The interface of a detection method (see :class:`Cusum` for an example)."""

    name = "method"
    #: The detector applies Benjamini–Hochberg to ``p`` (False: the method's own rule).
    uses_fdr = True
    #: The detector's default for the expected count a test needs.
    min_expected = 5.0

    def score(self, table: Table, as_of_day: str) -> Scores:  # pragma: no cover
        raise NotImplementedError

    def raises(self, scores: Scores, q: np.ndarray, q_level: float) -> np.ndarray:
        """Where an alert is raised (given the tick's q-values)."""
        return q <= q_level

    def holds(self, scores: Scores, release_p: float) -> np.ndarray:
        """Where an active alert stays active."""
        return scores.p <= release_p

    def params(self) -> dict:
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}


# --------------------------------------------------------------------------- the baseline


def _weekly(table: Table, as_of_day: str, max_weeks: int):
    """Weekly samples ending on ``as_of_day``: (day ordinals (J,), Y (B, J), N (B, J))."""
    a = table.index(as_of_day)
    j = min(a // 7 + 1, max_weeks)
    idx = a - 7 * np.arange(j - 1, -1, -1)
    s, k = len(table.scopes), len(table.series)
    y = table.num[:, :, idx].reshape(s * k, j)
    den2 = getattr(table, "_den2", None)
    if den2 is not None:  # one denominator per scope: index it once
        n = np.repeat(den2[:, idx], k, axis=0)
    else:
        n = table.den[:, :, idx].reshape(s * k, j)
    return _ordinal(table.first_day) + idx, y, n


@dataclass
class _Fit:
    mu: np.ndarray  # (B, J) fitted share / rate
    phi: np.ndarray  # (B,) overdispersion
    var_eta: np.ndarray  # (B,) variance of the linear predictor today (x0' A^-1 x0 · φ)
    n_base: np.ndarray  # (B,) baseline points used
    base: np.ndarray  # (B, J) baseline mask
    shown: np.ndarray  # (B, J) shown mask


def _design(days: np.ndarray, as_of: int, harmonics: int, trend: bool) -> np.ndarray:
    t = (days - as_of) / 365.25
    cols = [np.ones_like(t)] + ([t] if trend else [])
    for h in range(1, harmonics + 1):
        ang = 2 * np.pi * h * days / 365.25
        cols += [np.sin(ang), np.cos(ang)]
    return np.stack(cols, axis=1)


def _fit_baseline(
    days: np.ndarray,
    y: np.ndarray,
    n: np.ndarray,
    rate: np.ndarray,
    *,
    guard_weeks: int,
    harmonics: int,
    trend: bool,
    ridge: float,
    reweight: float,
    iterations: int = 3,
) -> _Fit:
    """Quasi-binomial / quasi-Poisson GLMs of every series at once (batched IRLS).

    ``logit(share)`` (``log(rate)`` where ``rate``) = intercept + trend + annual
    harmonics; fitted on the shown weekly samples at least ``guard_weeks`` weeks before
    today; a Gaussian prior (``ridge`` precision) on all but the intercept keeps short
    or gappy series estimable. Points more than ``reweight`` standardised residuals
    above the fit are down-weighted and the model refitted (Noufaily et al. 2013).
    """
    b, j = y.shape
    x = _design(days, int(days[-1]), harmonics, trend)
    p_dim = x.shape[1]
    xx = (x[:, :, None] * x[:, None, :]).reshape(j, p_dim * p_dim)  # X'WX = w @ xx
    shown = np.isfinite(y) & np.isfinite(n) & (n >= 1)
    shown &= rate[:, None] | (y <= n)
    base = shown.copy()
    base[:, max(j - guard_weeks, 0) :] = False
    yy = np.where(shown, y, 0.0)
    nn = np.where(shown, n, 1.0)
    pen = np.full(p_dim, ridge)
    pen[0] = 1e-8
    # Start from the mean share of the baseline.
    tot = np.maximum((yy * base).sum(1), 0.5)
    m0 = tot / np.maximum((nn * base).sum(1), 1.0)
    m0 = np.clip(m0, 1e-6, None)
    beta = np.zeros((b, p_dim))
    beta[:, 0] = np.where(
        rate, np.log(m0), np.log(np.clip(m0, 1e-6, 1 - 1e-6) / (1 - np.clip(m0, 1e-6, 1 - 1e-6)))
    )
    w_rob = np.ones((b, j))

    share = (~rate).astype(float)[:, None]  # 1: logit link, 0: log link
    base_f = base.astype(float)

    def mean_var(eta):
        ex = np.exp(np.clip(eta, -30, 30))
        mu = ex / (1.0 + ex * share)  # expit for shares, exp for rates
        v = nn * mu * (1.0 - mu * share)  # Var(count)/φ = dcount/dη (canonical links)
        return mu, np.maximum(v, 1e-9)

    r = np.zeros((b, j))
    mu = np.zeros((b, j))
    for rnd, its in enumerate((iterations, 1)):  # round 2 starts next to its optimum
        bw = base_f * w_rob
        for _ in range(its):
            eta = np.einsum("bp,jp->bj", beta, x)
            mu, v = mean_var(eta)
            w = bw * v
            # einsum, not matmul: these products are small, and a multi-threaded BLAS
            # on a busy machine costs more in spinning threads than it saves.
            a = np.einsum("bj,jk->bk", w, xx).reshape(b, p_dim, p_dim) + np.diag(pen)
            rhs = np.einsum("bj,jp->bp", w * eta + bw * (yy - nn * mu), x)
            beta = np.linalg.solve(a, rhs[:, :, None])[:, :, 0]
        mu, v = mean_var(np.einsum("bp,jp->bj", beta, x))
        r = (yy - nn * mu) / np.sqrt(v)
        n_base = base.sum(1)
        dof = np.maximum(n_base - p_dim, 1)
        phi = np.maximum((bw * r**2).sum(1) / dof, 1.0)
        a_inv = np.linalg.inv(a)
        if rnd == 0:
            s = r / np.sqrt(phi)[:, None]
            w_rob = np.minimum(1.0, (reweight / np.maximum(s, 1e-9)) ** 2)
    # Weekly residuals of a stock are autocorrelated: the coefficients are known less
    # well than independent points would say. Inflate their variance by the AR(1)
    # factor (1 + ρ) / (1 − ρ) of the baseline residuals.
    prev = np.concatenate([np.zeros((b, 1)), r[:, :-1]], axis=1)
    pair = base & np.concatenate([np.zeros((b, 1), bool), base[:, :-1]], axis=1)
    pf = pair.astype(float)
    rho = np.clip(
        (pf * r * prev).sum(1) / np.maximum((pf * prev * prev).sum(1), 1e-12),
        0.0,
        0.95,
    )
    x0 = x[-1]
    var_eta = phi * (1 + rho) / (1 - rho) * np.einsum("p,bpq,q->b", x0, a_inv, x0)
    return _Fit(mu, phi, var_eta, base.sum(1), base, shown)


def _predict(fit: _Fit, y_now, n_now, rate):
    """Expected count today, its prediction sd, 95 % interval of the share, z (2/3 power)."""
    mu = fit.mu[:, -1]
    v1 = np.where(rate, mu, mu * (1 - mu))  # per family
    e = n_now * mu
    var = fit.phi * n_now * v1 + (n_now * v1) ** 2 * fit.var_eta
    sd = np.sqrt(np.maximum(var, 1e-12))
    # Farrington (1996): the 2/3-power transform makes the count close to normal.
    ep = np.maximum(e, 1e-9)
    c = (2 / 3) * sd / ep

    def count_at(zv):
        return ep * np.maximum(1 + c * zv, 0.0) ** 1.5

    z = ((np.maximum(y_now, 0) / ep) ** (2 / 3) - 1) / np.maximum(c, 1e-12)
    with np.errstate(invalid="ignore", divide="ignore"):
        lower = count_at(-_Z95) / n_now
        upper = count_at(_Z95) / n_now
    return e, sd, lower, upper, z


# --------------------------------------------------------------------------- methods


class _Seasonal(Method):
    """Shared hyper-parameters and the baseline of :class:`Farrington` and :class:`Cusum`."""

    def __init__(
        self,
        guard_weeks: int = 4,
        harmonics: int = 1,
        trend: bool = False,
        ridge: float = 4.0,
        reweight: float = 2.58,
        max_years: float = 5.0,
        min_baseline_weeks: int = 52,
        warmup_weeks: int = 13,
    ):
        self.guard_weeks = guard_weeks
        self.warmup_weeks = warmup_weeks
        self.harmonics = harmonics
        self.trend = trend
        self.ridge = ridge
        self.reweight = reweight
        self.max_years = max_years
        self.min_baseline_weeks = min_baseline_weeks

    def _baseline(self, table: Table, as_of_day: str):
        days, y, n = _weekly(table, as_of_day, int(self.max_years * 52.18) + 1)
        # The first weeks of a stream are not a baseline: the first pictures are partial
        # (the initial load still arriving) and the window counts are still filling.
        y[:, days < _ordinal(table.first_day) + 7 * self.warmup_weeks] = np.nan
        rate = np.repeat(np.array([is_rate(s) for s in table.series]), len(table.scopes))
        rate = rate.reshape(len(table.series), len(table.scopes)).T.reshape(-1)
        fit = _fit_baseline(
            days,
            y,
            n,
            rate,
            guard_weeks=self.guard_weeks,
            harmonics=self.harmonics,
            trend=self.trend,
            ridge=self.ridge,
            reweight=self.reweight,
        )
        a = table.index(as_of_day)
        y_now = table.num[:, :, a].reshape(-1)
        n_now = table.den[:, :, a].reshape(-1)
        e, sd, lower, upper, z = _predict(fit, y_now, n_now, rate)
        ok = (
            (fit.n_base >= self.min_baseline_weeks)
            & np.isfinite(y_now)
            & np.isfinite(n_now)
            & (n_now >= 1)
        )
        return days, y, n, fit, y_now, n_now, e, lower, upper, z, ok


_FIELDS = ("num", "den", "observed", "expected", "lower", "upper", "statistic", "p", "onset")


def _scores(table: Table, arrays: tuple, details: dict) -> Scores:
    """:class:`Scores` from flat ``(S·K,)`` arrays in the order of :data:`_FIELDS` + strength."""
    s, k = len(table.scopes), len(table.series)
    a = [np.asarray(x, dtype=float).reshape(s, k) for x in arrays]
    d = {name: np.asarray(v, dtype=float).reshape(s, k) for name, v in details.items()}
    return Scores(**dict(zip(_FIELDS, a[:9], strict=True)), strength=a[9], details=d)


class Farrington(_Seasonal):
    """Today's count against a seasonal quasi-likelihood baseline (Farrington-flexible).

    The baseline is a quasi-binomial GLM of the share (quasi-Poisson with the families
    as offset for the 30/90-day counts) on *weekly* samples ending today: intercept,
    linear trend and ``harmonics`` annual sine/cosine pairs, fitted on every shown week
    of the last ``max_years`` years except the last ``guard_weeks`` (so a current
    outbreak is not in its own baseline). As in Noufaily et al. (2013) points more than
    ``reweight`` standardised residuals above the fit are down-weighted and the model is
    refitted once; the overdispersion φ is the Pearson statistic of the baseline over
    its degrees of freedom (at least 1). For a stock, φ also absorbs the slow,
    autocorrelated wandering of the share around the curve, so the test of today's
    value against the prediction is a marginal test with an honest variance.

    The prediction variance of today's count is ``φ n μ(1−μ) + (n μ(1−μ))² Var(η̂)``,
    and the count is compared with it on Farrington's 2/3-power scale: ``statistic`` is
    that z, ``p = 1 − Φ(z)``; the interval is the 95 % prediction interval of the share.
    ``onset`` is the first weekly sample of the current run above expected.

    Parameters
    ----------
    guard_weeks
        Most recent weeks left out of the baseline fit.
    harmonics
        Annual harmonic pairs (seasonality); 0: none.
    trend
        Add a linear trend (extrapolated to today: off by default, as a stock's slow
        wandering makes a fitted trend unreliable).
    ridge
        Prior precision of the trend and harmonic coefficients (logit / log scale).
    reweight
        Standardised residual above which a baseline point is down-weighted.
    max_years
        Years of history used.
    min_baseline_weeks
        Shown baseline weeks needed to test at all.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> T = 3 * 365
    >>> season = 0.10 + 0.03 * np.sin(2 * np.pi * np.arange(T) / 365.25)
    >>> num = rng.binomial(500, season, size=(2, 1, T)).astype(float)
    >>> num[1, 0, -1] = 500 * (season[-1] + 0.08)  # scope 1: today 8 pp above
    >>> table = Table("2023-01-01", ("a:1", "a:2"), ("837", "837"),
    ...               ("families_unemployed_parent",), num, np.full((2, T), 500.0))
    >>> sc = Farrington().score(table, table.last_day)
    >>> np.round(sc.expected[:, 0], 2).tolist(), bool(sc.p[1, 0] < 1e-4), bool(sc.p[0, 0] > 0.01)
    ([0.1, 0.1], True, True)
    >>> bool(sc.lower[0, 0] < sc.expected[0, 0] < sc.upper[0, 0] < sc.observed[1, 0])
    True
    """

    name = "farrington"

    def score(self, table: Table, as_of_day: str) -> Scores:
        days, y, n, fit, y_now, n_now, e, lower, upper, z, ok = self._baseline(table, as_of_day)
        p = np.where(ok, stats.norm.sf(z), np.nan)
        # Onset: the first weekly sample of the run of samples above the fit up to today.
        above = fit.shown & (y > n * fit.mu)
        above[:, -1] = ok & (z > 0)
        run = np.cumprod(above[:, ::-1], axis=1)[:, ::-1]  # 1 on the trailing run
        first = np.argmax(run, axis=1)
        onset = np.where(run[:, -1] > 0, days[first], 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            obs = y_now / n_now
            exp_share = e / n_now
        strength = np.where(ok, -np.log10(np.clip(p, 1e-300, 1)), np.nan)
        arrays = (y_now, n_now, obs, exp_share, lower, upper, np.where(ok, z, np.nan), p, onset)
        return _scores(table, (*arrays, strength), {"phi": fit.phi})


#: Degrees of freedom the increments' null law is rounded down to (inf: normal).
_DFS = np.array([4.5, 5.0, 6.0, 7.0, 8.0, 10.0, 12.0, 15.0, 20.0, 30.0, 50.0, 100.0, np.inf])


@functools.lru_cache(maxsize=64)
def _cusum_null(k: float, df: float, step: float = 0.05, top: float = 40.0):
    """Survival function of the stationary CUSUM ``S = max(0, S + Z − k)`` under the null.

    ``Z`` is standard normal (``df`` = inf) or a Student t scaled to unit variance
    (heavier tails for small counts). The stationary law of the Markov chain on a grid
    (Brook & Evans 1972) is the solution of ``π P = π``, ``Σ π = 1``.
    """
    grid = np.arange(0.0, top + step / 2, step)
    dist = stats.norm() if math.isinf(df) else stats.t(df, scale=math.sqrt((df - 2) / df))
    # P(next in cell j | now at g_i): cells [g_j − step/2, g_j + step/2), cell 0 = S ≤ step/2
    edges = np.concatenate(([-np.inf], grid[:-1] + step / 2, [np.inf]))
    cdf = dist.cdf(edges[None, :] - grid[:, None] + k)
    trans = np.diff(cdf, axis=1)
    m = trans.T - np.eye(len(grid))
    m[-1, :] = 1.0
    rhs = np.zeros(len(grid))
    rhs[-1] = 1.0
    pi = np.clip(np.linalg.solve(m, rhs), 0.0, None)
    # P(S ≥ g_i): the mass of cells i… (cell i holds [g_i − step/2, g_i + step/2)), so
    # shift by half a cell to stay on the conservative side.
    sf = np.clip(pi[::-1].cumsum()[::-1] / pi.sum(), 0.0, 1.0)
    return grid - step / 2, sf


def _cusum_sf(s: np.ndarray, k: float, df: np.ndarray) -> np.ndarray:
    """P(S ≥ s) under the stationary null, per element, ``df`` rounded down to :data:`_DFS`."""
    df_q = _DFS[np.clip(np.searchsorted(_DFS, df, side="right") - 1, 0, len(_DFS) - 1)]
    out = np.ones_like(s)
    for d in np.unique(df_q):
        grid, sf = _cusum_null(float(k), float(d))
        sel = df_q == d
        out[sel] = np.interp(s[sel], grid, sf, left=1.0, right=0.0)
    return out


class Cusum(_Seasonal):
    """A one-sided CUSUM on the prewhitened residuals of the seasonal baseline.

    Fricker, Hegler & Dunfee (2008) run a CUSUM on the standardised residuals of an
    adaptive regression that removes the seasonal and weekly pattern. Here the baseline
    is that of :class:`Farrington`, on weekly samples ending today; standardised
    residuals ``e`` (observed − fitted over ``√(φ V)``) of a stock are strongly
    autocorrelated (next week's families are mostly this week's), so they are
    prewhitened with the AR(1) coefficient ``ρ`` of the baseline residuals:
    ``u = e_t − ρ e_{t−1}`` (ρ near 1 makes ``u`` the week's change). ``u`` is divided
    by its baseline standard deviation, and the CUSUM
    ``S_t = max(0, S_{t−1} + u_t/σ_u − k)`` runs over the last ``run_weeks`` samples.

    The p-value is ``P(S ≥ s)`` under the stationary null law of ``S`` (increments
    ``Student t(df)`` of unit variance: small counts move by whole families, heavier than
    normal), computed once on a grid; the CUSUM started ``run_weeks`` ago from 0 is
    stochastically smaller, so the p-value is conservative. ``onset`` is the first
    weekly sample after the CUSUM's last zero. The expected value and interval shown are
    those of the baseline (as in :class:`Farrington`).

    Parameters
    ----------
    k
        Reference value (allowance), in standard deviations of the increments: the
        CUSUM is tuned to a shift of ``2k`` of them.
    df
        Degrees of freedom of the increments' null law (``math.inf``: normal).
    run_weeks
        Weekly samples the CUSUM runs over.
    guard_weeks, harmonics, trend, ridge, reweight, max_years, min_baseline_weeks
        As in :class:`Farrington`.

    Examples
    --------
    A stock: 300 families, each on social assistance for about 4 months at a time, so
    the share moves slowly; on day ``T − 15`` fifteen more families (5 pp) enter.

    >>> import numpy as np
    >>> rng = np.random.default_rng(3)
    >>> T, n, p, stay = 3 * 365, 300, 0.10, 1 - 1 / 120
    >>> on = np.zeros((2, T)); k = np.full(2, int(n * p))
    >>> for t in range(T):
    ...     k = k - rng.binomial(k, 1 - stay) + rng.binomial(n - k, p * (1 - stay) / (1 - p))
    ...     if t == T - 15:
    ...         k[1] += 15
    ...     on[:, t] = k
    >>> table = Table("2023-01-01", ("a:1", "a:2"), ("837", "837"),
    ...               ("families_social_assistance",), on[:, None, :], np.full((2, T), n))
    >>> sc = Cusum().score(table, table.last_day)
    >>> bool(sc.p[0, 0] > 0.05), bool(sc.p[1, 0] < 1e-3)
    (True, True)
    >>> table.index(_iso(int(sc.onset[1, 0]))) >= T - 21
    True
    """

    name = "cusum"

    def __init__(
        self,
        k: float = 1.0,
        df: float | None = None,
        run_weeks: int = 26,
        rho: float | None = 1.0,
        guard_weeks: int = 4,
        harmonics: int = 1,
        trend: bool = False,
        ridge: float = 4.0,
        reweight: float = 2.58,
        max_years: float = 5.0,
        min_baseline_weeks: int = 52,
        warmup_weeks: int = 13,
    ):
        super().__init__(
            guard_weeks,
            harmonics,
            trend,
            ridge,
            reweight,
            max_years,
            min_baseline_weeks,
            warmup_weeks,
        )
        self.k = k
        self.df = df
        self.run_weeks = run_weeks
        self.rho = rho

    def score(self, table: Table, as_of_day: str) -> Scores:
        days, y, n, fit, y_now, n_now, e_now, lower, upper, _z, ok = self._baseline(
            table, as_of_day
        )
        v = np.where(
            np.repeat(
                np.array([is_rate(s) for s in table.series])[None, :], len(table.scopes), 0
            ).reshape(-1)[:, None],
            fit.mu,
            fit.mu * (1 - fit.mu),
        )
        with np.errstate(invalid="ignore", divide="ignore"):
            e = np.where(fit.shown, (y - n * fit.mu) / np.sqrt(fit.phi[:, None] * n * v), np.nan)
        prev = np.concatenate([np.full((e.shape[0], 1), np.nan), e[:, :-1]], axis=1)
        pair = fit.base & np.isfinite(prev) & np.isfinite(e)
        pb = np.where(pair, prev, 0.0)
        eb = np.where(pair, e, 0.0)
        if self.rho is None:
            rho = np.clip((pb * eb).sum(1) / np.maximum((pb * pb).sum(1), 1e-12), 0.0, 1.0)
        else:
            rho = np.full(e.shape[0], float(self.rho))
        u = e - rho[:, None] * prev
        ub = np.where(pair, u, 0.0)
        n_pair = pair.sum(1)
        sigma = np.sqrt((ub * ub).sum(1) / np.maximum(n_pair - 1, 1))
        # Floor at half a family's move (in e units): a stock that never moved would
        # otherwise have σ = 0 and make any change infinitely significant.
        with np.errstate(invalid="ignore", divide="ignore"):
            one = 1.0 / np.sqrt(fit.phi * n_now * np.where(np.isfinite(v[:, -1]), v[:, -1], 1.0))
        sigma = np.maximum(sigma, np.nan_to_num(one, nan=0.0) * 0.5)
        sigma = np.maximum(sigma, 1e-6)
        zz = u / sigma[:, None]
        w = min(self.run_weeks, zz.shape[1])
        inc = np.nan_to_num(zz[:, -w:] - self.k, nan=0.0)  # a gap: no change
        s_t = np.zeros(zz.shape[0])
        last_zero = np.full(zz.shape[0], -1)
        for i in range(w):
            s_t = np.maximum(0.0, s_t + inc[:, i])
            last_zero = np.where(s_t <= 0, i, last_zero)
        ok &= n_pair >= self.min_baseline_weeks // 2
        if self.df is None:
            # Small counts move by whole families: a weekly change is a difference of
            # two small Poisson counts, heavier-tailed than normal. Its excess kurtosis
            # is 1 / Var(change in families); a t law with the same kurtosis has
            # ν = 4 + 6 Var (conservative in the far tail, where t is heavier).
            var_count = sigma**2 * np.nan_to_num(fit.phi * n_now * v[:, -1], nan=0.0)
            df = 4.0 + 6.0 * var_count
        else:
            df = np.full(s_t.shape, float(self.df))
        p = np.where(ok, _cusum_sf(s_t, self.k, df), np.nan)
        run_start = np.clip(zz.shape[1] - w + last_zero + 1, 0, zz.shape[1] - 1)
        onset = np.where(ok & (s_t > 0), days[run_start], 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            obs = y_now / n_now
            exp_share = e_now / n_now
        strength = np.where(ok, -np.log10(np.clip(p, 1e-300, 1)), np.nan)
        arrays = (y_now, n_now, obs, exp_share, lower, upper, np.where(ok, s_t, np.nan), p, onset)
        return _scores(table, (*arrays, strength), {"rho": rho, "phi": fit.phi, "df": df})


class Level(_Seasonal):
    """Today's level against the same series ``K`` weeks ago, for a few lags ``K``, with
    the variance each lag has *in this series' own history* (an empirical variogram).

    A stock's share wanders (its families are mostly the same from week to week), and
    a window count is a rolling sum; a test that treats weekly samples as independent
    is overconfident, and one that takes the stock's whole wandering around a seasonal
    curve as its variance (:class:`Farrington`) is too cautious to see anything. The
    change over ``K`` weeks has a variance between the two, which the series' own
    history measures: for each lag, ``γ_K = mean (r_t − r_{t−K})²`` over the pairs of
    shown baseline weeks, where ``r`` is the share (rate per family) minus the seasonal
    baseline of :class:`Farrington` (so the season's own rise is not a change). Today's
    change ``D_K = r_today − r_{today−K}`` is compared with ``√γ_K``:

    * a step shows in full at every lag that reaches back before it, at the variance of
      the shortest such lag (for a stock, nearly a week's turnover);
    * a ramp accumulates at the longer lags, whose variance grows slower than the
      ramp's square (a stock's change over ``K`` weeks is bounded by its turnover);
    * a window count compared with a week at least a window back compares disjoint
      windows, with their true variance.

    ``γ_K`` is estimated from overlapping differences, so its precision is that of
    about ``pairs / K`` independent ones: the p-value of each lag is that of a Student
    t with ``ν = min(pairs / K − 1, 4 + 6 Var)`` degrees of freedom (the second term is
    the small-count kurtosis of :class:`Cusum`), and the lags are combined by
    Bonferroni (``p = L · min p_K``). ``γ_K`` is floored at ``floor_families`` families
    (a stock that never moved would otherwise make a one-family move certain).

    ``expected`` is the share ``K*`` weeks ago moved by the season to today (``K*`` the
    lag with the smallest p), with the 95 % interval of that lag; ``statistic`` the
    lag's t; ``onset`` the first weekly sample after the one compared with.

    Parameters
    ----------
    lags
        Lags in weeks.
    floor_families
        Lower bound of the standard deviation of a lag's change, in families.
    guard_weeks, harmonics, trend, ridge, reweight, max_years, min_baseline_weeks
        As in :class:`Farrington` (the variogram uses baseline weeks only).

    Examples
    --------
    The stock of :class:`Cusum`'s example (300 families, stays of about 4 months), with
    five more scopes; scope 1 gets +5 pp (15 families) on day ``T − 15``.

    >>> import numpy as np
    >>> rng = np.random.default_rng(3)
    >>> T, n, p, stay = 3 * 365, 300, 0.10, 1 - 1 / 120
    >>> on = np.zeros((6, T)); k = np.full(6, int(n * p))
    >>> for t in range(T):
    ...     k = k - rng.binomial(k, 1 - stay) + rng.binomial(n - k, p * (1 - stay) / (1 - p))
    ...     if t == T - 15:
    ...         k[1] += 15
    ...     on[:, t] = k
    >>> table = Table("2023-01-01", tuple(f"a:{i}" for i in range(6)), ("837",) * 6,
    ...               ("families_social_assistance",), on[:, None, :], np.full((6, T), n))
    >>> sc = Level().score(table, table.last_day)
    >>> bool(np.delete(sc.p[:, 0], 1).min() > 0.01), bool(sc.p[1, 0] < 1e-4)
    (True, True)
    >>> table.index(_iso(int(sc.onset[1, 0]))) >= T - 21
    True
    """

    name = "level"

    def __init__(
        self,
        lags: tuple[int, ...] = (1, 2, 3, 4, 6, 9, 13),
        floor_families: float = 1.0,
        guard_weeks: int = 4,
        harmonics: int = 1,
        trend: bool = False,
        ridge: float = 4.0,
        reweight: float = 2.58,
        max_years: float = 5.0,
        min_baseline_weeks: int = 52,
        warmup_weeks: int = 13,
    ):
        super().__init__(
            guard_weeks,
            harmonics,
            trend,
            ridge,
            reweight,
            max_years,
            min_baseline_weeks,
            warmup_weeks,
        )
        self.lags = tuple(int(x) for x in lags)
        self.floor_families = floor_families

    def score(self, table: Table, as_of_day: str) -> Scores:
        days, y, n, fit, y_now, n_now, e_now, lower, upper, _z, ok = self._baseline(
            table, as_of_day
        )
        j = y.shape[1]
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.where(fit.shown, y / np.where(fit.shown, n, 1.0) - fit.mu, np.nan)
            obs = y_now / n_now
        b = r.shape[0]
        best_p = np.ones(b)
        best = dict(
            t=np.full(b, np.nan),
            ref=np.full(b, np.nan),
            sd=np.full(b, np.nan),
            lag=np.zeros(b, int),
        )
        tested = np.zeros(b, bool)
        floor = self.floor_families / np.where(n_now >= 1, n_now, np.nan)
        for lag in self.lags:
            if lag >= j:
                continue
            d = r[:, lag:] - r[:, :-lag]
            pair = fit.base[:, lag:] & fit.base[:, :-lag] & np.isfinite(d)
            m = pair.sum(1)
            with np.errstate(invalid="ignore", divide="ignore"):
                gamma = np.where(pair, d, 0.0) ** 2
                gamma = gamma.sum(1) / np.maximum(m, 1)
                sd = np.sqrt(np.maximum(gamma, floor**2))
                d_now = r[:, -1] - r[:, -1 - lag]
                tt = d_now / sd
                var_count = (sd * n_now) ** 2
            df = np.minimum(m / lag - 1.0, 4.0 + 6.0 * np.nan_to_num(var_count, nan=0.0))
            can = ok & np.isfinite(tt) & (m >= self.min_baseline_weeks // 2) & (df >= 2.0)
            p = np.where(can, stats.t.sf(np.nan_to_num(tt, nan=0.0), np.maximum(df, 2.0)), 1.0)
            better = can & (p < best_p)
            best_p = np.where(better, p, best_p)
            best["t"] = np.where(better, tt, best["t"])
            best["ref"] = np.where(better, r[:, -1 - lag], best["ref"])
            best["sd"] = np.where(better, sd, best["sd"])
            best["lag"] = np.where(better, lag, best["lag"])
            tested |= can
        n_lags = sum(1 for lag in self.lags if lag < j)
        p = np.where(tested, np.minimum(1.0, n_lags * best_p), np.nan)
        mu_now = fit.mu[:, -1]
        hit = tested & np.isfinite(best["t"])
        exp_share = np.where(hit, np.maximum(mu_now + best["ref"], 0.0), np.nan)
        q = float(stats.norm.ppf(0.975))
        lo = np.where(hit, np.maximum(exp_share - q * best["sd"], 0.0), np.nan)
        hi = np.where(hit, exp_share + q * best["sd"], np.nan)
        onset = np.where(hit & (best["t"] > 0), days[np.clip(j - best["lag"], 0, j - 1)], 0)
        strength = np.where(tested, -np.log10(np.clip(p, 1e-300, 1)), np.nan)
        arrays = (y_now, n_now, obs, exp_share, lo, hi, np.where(hit, best["t"], np.nan), p, onset)
        return _scores(table, (*arrays, strength), {"lag": best["lag"], "phi": fit.phi})


class Rise5pp(Method):
    """Today's rule (:mod:`models.alerts`): the share rose ``rise`` or more over
    ``window_days``, with ``min_families`` shown families at both ends; an active pair is
    released when the rise falls under ``rise / 2``.

    ``expected`` is the share ``window_days`` ago and the interval is empty (the rule has
    none); ``statistic`` the rise; ``p`` a naive one-sided two-proportion z-test, for
    information only (the rule decides, not Benjamini–Hochberg); ``onset`` the first day
    of the window on which the share was at least half the rise above the start.

    Parameters
    ----------
    window_days
        Days between the two values compared.
    rise
        Rise of the share that raises (0.05 = 5 percentage points).
    min_families
        Shown families needed at both ends.

    Examples
    --------
    >>> import numpy as np
    >>> num = np.array([[[10.0] * 31 + [17.0]]]); den = np.full((1, 32), 100.0)
    >>> t = Table("2026-01-01", ("all",), (None,), ("families_social_assistance",), num, den)
    >>> sc = Rise5pp().score(t, t.last_day)
    >>> round(float(sc.statistic[0, 0]), 4), _iso(int(sc.onset[0, 0]))
    (0.07, '2026-02-01')
    """

    name = "rise5pp"
    uses_fdr = False
    min_expected = 0.0  # today's rule has none

    def __init__(self, window_days: int = 30, rise: float = 0.05, min_families: int = 20):
        self.window_days = window_days
        self.rise = rise
        self.min_families = min_families

    def score(self, table: Table, as_of_day: str) -> Scores:
        a = table.index(as_of_day)
        b = a - self.window_days
        num_now, den_now = table.num[:, :, a], table.den[:, :, a]
        nan = np.full(num_now.shape, np.nan)
        if b < 0:
            with np.errstate(invalid="ignore", divide="ignore"):
                obs = num_now / den_now
            return Scores(num_now, den_now, obs, nan, nan, nan, nan, nan, nan * 0, nan)
        num_b, den_b = table.num[:, :, b], table.den[:, :, b]
        ok = (
            np.isfinite(num_now)
            & np.isfinite(num_b)
            & (den_now >= max(self.min_families, 1))
            & (den_b >= max(self.min_families, 1))
        )
        with np.errstate(invalid="ignore", divide="ignore"):
            obs = num_now / den_now
            before = num_b / den_b
            rise = np.where(ok, obs - before, np.nan)
            pool = (num_now + num_b) / (den_now + den_b)
            se = np.sqrt(pool * (1 - pool) * (1 / den_now + 1 / den_b))
            z = rise / se
        p = np.where(ok, stats.norm.sf(np.nan_to_num(z, nan=0.0)), np.nan)
        p = np.where(ok & (se == 0), np.where(rise > 0, 0.0, 1.0), p)
        # Onset: first day in the window at least rise/2 above the start.
        with np.errstate(invalid="ignore", divide="ignore"):
            path = table.num[:, :, b : a + 1] / table.den[:, :, b : a + 1]
        hit = np.nan_to_num(path - before[:, :, None], nan=-1.0) >= self.rise / 2
        first = np.argmax(hit, axis=2)
        onset = np.where(ok & hit.any(axis=2), _ordinal(table.first_day) + b + first, 0)
        return Scores(num_now, den_now, obs, before, before, before, rise, p, onset, rise * 100)

    def raises(self, scores: Scores, q: np.ndarray, q_level: float) -> np.ndarray:
        return np.nan_to_num(scores.statistic, nan=-1.0) >= self.rise - 1e-12

    def holds(self, scores: Scores, release_p: float) -> np.ndarray:
        return np.nan_to_num(scores.statistic, nan=-1.0) >= self.rise / 2


#: The methods by name, with default hyper-parameters.
METHODS: dict[str, type[Method]] = {m.name: m for m in (Farrington, Cusum, Level, Rise5pp)}


# --------------------------------------------------------------------------- the detector


def _kind(scope: str) -> tuple[str, str | None]:
    if scope == "all":
        return "all", None
    if scope.startswith("m:"):
        return "municipality", None
    return "area", scope[2:]


def alert_id(method: str, scope: str, series: str, as_of: str) -> str:
    return hashlib.sha256(f"{method}|{scope}|{series}|{as_of}".encode()).hexdigest()[:20]


def _num(x, digits=6):
    x = float(x)
    return None if not math.isfinite(x) else round(x, digits)


class Detector:
    """Runs a method over a whole tick: minimum counts, FDR, hysteresis, alert dicts.

    Parameters
    ----------
    method
        A :class:`Method` (default :class:`Cusum`).
    q
        Benjamini–Hochberg level: an alert is raised where the q-value (over all the
        tests of the tick) is at most ``q``.
    release_p
        An active pair stays active while its raw p-value is at most ``release_p``
        (hysteresis: the evidence must fall well below the raising level to re-arm).
    min_families
        Shown families needed today (the denominator).
    min_expected
        Expected count (expected share × families) needed; None: the method's own
        default (5; 0 for :class:`Rise5pp`, which reproduces today's rule).
    fdr_by
        ``"tick"``: one Benjamini–Hochberg family of all the tests of the tick;
        ``"series"``: one family per series (each controls its own FDR at ``q``; under
        the global null a tick then raises something with probability up to
        ``q`` × the number of series).

    Only pairs whose numerator and denominator are shown today, with at least
    ``min_families`` families and ``min_expected`` expected, are tested: a pair that
    is not tested raises nothing and does not count in the FDR. An active pair that
    cannot be tested (its cell became hidden) stays as it is.

    State (JSON): ``{"method": name, "as_of": day, "active": {"scope|series":
    raised day}, "raised_today": [pairs]}``.

    Examples
    --------
    >>> import numpy as np
    >>> T = 400
    >>> num = np.full((2, 1, T), 10.0); num[0, 0, -5:] = 17.0
    >>> den = np.array([[100.0] * T, [12.0] * T])
    >>> num[1, 0, -5:] = 9.0  # a 12-family scope: too small
    >>> t = Table("2025-01-01", ("a:33100", "a:33200"), ("837", "837"),
    ...           ("families_social_assistance",), num, den)
    >>> det = Detector(Rise5pp())
    >>> state, out = det.step(None, t.last_day, t)
    >>> [(a["area"], a["observed"]["share"], a["expected"]["share"]) for a in out]
    [('33100', 0.17, 0.1)]
    >>> state, out = det.step(state, t.last_day, t)  # the same tick again: nothing new
    >>> out, state["active"]
    ([], {'a:33100|families_social_assistance': '2026-02-04'})
    """

    def __init__(
        self,
        method: Method | None = None,
        q: float = 0.05,
        release_p: float = 0.2,
        min_families: int = 20,
        min_expected: float | None = None,
        fdr_by: str = "tick",
    ):
        if fdr_by not in ("tick", "series"):
            raise ValueError("fdr_by is 'tick' or 'series'")
        self.fdr_by = fdr_by
        self.method = method if method is not None else Cusum()
        self.q = q
        self.release_p = release_p
        self.min_families = min_families
        self.min_expected = self.method.min_expected if min_expected is None else min_expected

    def step(self, state: Mapping | None, as_of_day: str, table: Table):
        """One tick: ``(state, W, table) -> (state, alerts)``; alerts ranked by strength."""
        day = as_of_day[:10]
        st = dict(state or {})
        if st.get("method", self.method.name) != self.method.name:
            # Another method's episodes (TK_ALERT_METHOD changed): not this one's to hold.
            st = {"as_of": st.get("as_of")}
        active: dict[str, str] = dict(st.get("active") or {})
        raised_today = set(st.get("raised_today") or []) if st.get("as_of") == day else set()
        sc = self.method.score(table, day)
        fam = sc.den
        with np.errstate(invalid="ignore"):
            tested = (
                np.isfinite(sc.num)
                & np.isfinite(fam)
                & (fam >= max(self.min_families, 1))
                & np.isfinite(sc.p)
                & (np.nan_to_num(sc.expected * fam, nan=-1.0) >= self.min_expected)
            )
        q = np.full(sc.p.shape, np.nan)
        groups = (
            [tested]
            if self.fdr_by == "tick"
            else [
                tested & (np.arange(tested.shape[1]) == k)[None, :] for k in range(tested.shape[1])
            ]
        )
        for g in groups:
            if g.any():
                q[g] = stats.false_discovery_control(np.clip(sc.p[g], 0.0, 1.0), method="bh")
        fire = tested & self.method.raises(sc, np.nan_to_num(q, nan=2.0), self.q)
        hold = tested & self.method.holds(sc, self.release_p)
        alerts = []
        new_active: dict[str, str] = {}
        scopes, series = table.scopes, table.series
        where = {f"{s}|{k}": (si, ki) for si, s in enumerate(scopes) for ki, k in enumerate(series)}
        for pair, raised_on in active.items():
            si, ki = where.get(pair, (None, None))
            if si is None or not tested[si, ki] or hold[si, ki]:
                new_active[pair] = raised_on  # kept while it cannot be tested
        for si, ki in zip(*np.nonzero(fire), strict=True):
            pair = f"{scopes[si]}|{series[ki]}"
            if pair in active:
                continue
            if not fire[si, ki]:
                continue
            new_active[pair] = day
            if pair in raised_today:
                continue
            raised_today.add(pair)
            alerts.append(self._alert(sc, q, si, ki, scopes[si], series[ki], table, day))
        alerts.sort(key=lambda a: (-(a["strength"] or 0.0), a["scope_key"], a["series"]))
        for rank, a in enumerate(alerts, 1):
            a["rank"] = rank
        new_state = {
            "method": self.method.name,
            "as_of": day,
            "active": dict(sorted(new_active.items())),
            "raised_today": sorted(raised_today),
        }
        return new_state, alerts

    def _alert(self, sc: Scores, q, si, ki, scope, series, table, day) -> dict:
        kind, area = _kind(scope)
        onset = int(sc.onset[si, ki]) if np.isfinite(sc.onset[si, ki]) else 0
        obs, exp = _num(sc.observed[si, ki]), _num(sc.expected[si, ki])
        lo, hi = _num(sc.lower[si, ki]), _num(sc.upper[si, ki])
        p, qv = _sig(sc.p[si, ki]), _sig(q[si, ki])
        unit = "per family" if is_rate(series) else "of families"
        where = {"all": "all six", "municipality": scope, "area": f"area {area}"}[kind]
        interval = f" (95 % {_pct(lo)}–{_pct(hi)})" if lo is not None and lo != hi else ""
        text = (
            f"{series} in {where}: {_pct(obs)} {unit} against {_pct(exp)} expected{interval};"
            f" {self.method.name} {sc.statistic[si, ki]:.3g}, p={p:.2g}, q={qv:.2g}"
            + (f", since {_iso(onset)}" if onset else "")
        )
        return {
            "id": alert_id(self.method.name, scope, series, day),
            "method": self.method.name,
            "as_of": day,
            "scope": kind,
            "scope_key": scope,
            "area": area,
            "municipality": table.municipalities[si],
            "series": series,
            "observed": {
                "share": obs,
                "numerator": _num(sc.num[si, ki]),
                "denominator": _num(sc.den[si, ki]),
            },
            "expected": {"share": exp, "lower": lo, "upper": hi},
            "statistic": _num(sc.statistic[si, ki]),
            "p": p,
            "q": qv,
            "onset": _iso(onset) if onset else None,
            "strength": _num(sc.strength[si, ki]),
            "recent": _recent(table, si, ki, day),
            "explanation": text,
        }


#: Weekly points of the series an alert carries (a quarter, ending on its day).
RECENT_WEEKS = 13


def _recent(table: Table, si: int, ki: int, day: str) -> dict:
    """The scope's published share of the series once a week up to ``day`` (None where
    hidden or before the table), so that an alert shows what it rose from."""
    t = table.index(day)
    cols = range(t - 7 * (RECENT_WEEKS - 1), t + 1, 7)
    shares = []
    for u in cols:
        den = table.den[si, ki, u] if u >= 0 else np.nan
        shares.append(_num(table.num[si, ki, u] / den) if den > 0 else None)
    first = dt.date.fromisoformat(day) - dt.timedelta(days=7 * (RECENT_WEEKS - 1))
    return {"from": first.isoformat(), "every_days": 7, "shares": shares}


def _sig(x, digits=4):
    """A p- or q-value to ``digits`` significant digits (tiny ones stay non-zero)."""
    x = float(x)
    return None if not math.isfinite(x) else float(f"{x:.{digits}g}")


def _pct(x) -> str:
    return "?" if x is None else f"{100 * x:.1f} %"


def step(state: Mapping | None, as_of_day: str, table: Table, detector: Detector | None = None):
    """``(state, W, table) -> (state, alerts)`` with the default :class:`Detector`."""
    return (detector or Detector()).step(state, as_of_day, table)
