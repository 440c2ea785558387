"""Backtest margin rules through history: coverage, cost, procyclicality and manipulability exposure.

Data: daily closes (``arch.data.sp500``, 1999-2018, or a user CSV via :mod:`..data`). On day t the risk input r_t
uses returns up to day t (:func:`~margin_design.calibration.data.risk_input_series`: a rolling m-day realised
variance or a RiskMetrics EWMA, daily variance units; for ``hs_var`` / ``hs_es`` the rule's own input,
:func:`~margin_design.calibration.risk_inputs.input_values` on the window of the last m + 1 log closes, i.e. the
variance equivalent (Gamma / k)^2 of the historical-simulation VaR / ES of the last m daily log-return losses) and the rule posts M_t = g(r_t) (margin ratio) to cover
the close-out loss over the margin period of risk (t, t + h]: loss_t = -(P_{t+h}/P_t - 1) per unit notional of
a long position (``short``: +(P_{t+h}/P_t - 1); ``both``: each day counted for both). A breach is loss_t > M_t.

Metrics per rule (:class:`BacktestMetrics`):

* coverage: breaches against the target rate 1 - coverage (coverage = 1 - carry, the first-best quantile (37)),
  with Kupiec's proportion-of-failures likelihood-ratio test, LR = -2 ln[(1-p)^(n-x) p^x] +
  2 ln[(1-x/n)^(n-x) (x/n)^x] ~ chi^2(1) (overlapping h-day windows are serially dependent, so the p-value is
  approximate for h > 1);
* cost: average margin (margin ratio);
* procyclicality (as CCPs report under EMIR art. 28 and the CPMI-IOSCO APC measures): peak-to-trough ratio
  max M / min M, and the largest k-day increases for k = 1, 5, 30, relative (M_{t+k}/M_t - 1) and absolute
  (M_{t+k} - M_t, margin-ratio points);
* manipulability exposure: the share of days on which the rule's right slope dM/dr at r_t exceeded the cap
  K / (2 sqrt(r_t)) ((17) times the input factor; K = the cap on dM/dsigma).

EMIR anti-procyclicality tools (Appendix E.4, EMIR RTS 153/2013 art. 28(1)), history-dependent inputs:

* ``floor``: 10-year look-back floor, the core rule at the mean squared daily return over the last
  ``LOOKBACK_DAYS`` (2520) days -- expanding from the first ``MIN_LOOKBACK_DAYS`` (250) days while the data are
  shorter (NaN, no floor, before that);
* ``stressed``: 25% weight on stressed observations: r_eff = 0.75 r_t + 0.25 r_stress,t with r_stress,t the
  largest r_s over the same look-back (the most volatile window seen, s <= t);
* ``buffer``: a 25% buffer released in stress, the state function of
  :class:`~margin_design.audit.rules.Overlays` (``absorb``) with release at ``BUFFER_RELEASE_VOL``.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from margin_design.errors import InputError

from margin_design.calibration._checks import check_range
from margin_design.calibration.data import PriceSeries, daily_log_returns, risk_input_series, standardized_losses
from margin_design.calibration.risk_inputs import HS_KINDS, InputSpec, input_values
from .rules import Rule

__all__ = [
    "INCREASE_HORIZONS",
    "LOOKBACK_DAYS",
    "MIN_LOOKBACK_DAYS",
    "EMIR_BUFFER",
    "EMIR_STRESSED_WEIGHT",
    "BUFFER_RELEASE_VOL",
    "STRESS_EPISODES",
    "kupiec_pof",
    "largest_increases",
    "BacktestMetrics",
    "backtest_metrics",
    "BacktestData",
    "prepare_backtest",
    "lookback_variance",
    "stressed_variance",
    "emir_rules",
    "run_rule",
]

INCREASE_HORIZONS = (1, 5, 30)
LOOKBACK_DAYS = 2520          # 10 years of trading days (EMIR art. 28(1)(c))
MIN_LOOKBACK_DAYS = 250       # one year: the shortest look-back used for the floor and the stressed period
EMIR_BUFFER = 0.25            # art. 28(1)(a)
EMIR_STRESSED_WEIGHT = 0.25   # art. 28(1)(b)
BUFFER_RELEASE_VOL = 0.02     # daily vol (decimal; 31.7% annualised) from which the buffer is released
#: Stress episodes shaded in the backtest figure (start, end ISO dates).
STRESS_EPISODES = (
    ("9/11", "2001-09-10", "2001-10-31"),
    ("2002 bear market", "2002-07-01", "2002-10-31"),
    ("2008-09 crisis", "2008-09-01", "2009-03-31"),
    ("2010 flash crash", "2010-05-01", "2010-07-15"),
    ("2011 downgrade", "2011-08-01", "2011-10-31"),
    ("2015 devaluation", "2015-08-17", "2015-09-30"),
    ("2018 Feb. vol spike", "2018-02-01", "2018-03-31"),
    ("2018 Q4 sell-off", "2018-10-01", "2018-12-31"),
)


def kupiec_pof(breaches: int, n: int, coverage: float) -> tuple[float, float]:
    """Kupiec's proportion-of-failures test: (LR statistic, p-value from chi^2(1)); target breach rate 1 - coverage."""
    check_range("coverage", coverage, low=0.0, high=1.0, high_inclusive=False, what="in (0, 1)")
    if int(n) < 1 or not 0 <= int(breaches) <= int(n):
        raise InputError(f"the Kupiec test needs 0 <= breaches <= n with n >= 1, got {breaches} of {n}.")
    p0 = 1.0 - coverage
    x, n = int(breaches), int(n)

    def loglik(p):
        a = (n - x) * math.log1p(-p) if n > x else 0.0
        b = x * math.log(p) if x > 0 else 0.0
        return a + b

    lr = max(-2.0 * (loglik(p0) - loglik(x / n)), 0.0)
    return lr, float(stats.chi2.sf(lr, 1))


def largest_increases(margins, horizon: int) -> dict:
    """Largest k-day increases of a margin path (NaNs skipped): relative max (M_{t+k}/M_t - 1) and absolute
    max (M_{t+k} - M_t, margin ratio), with the start index of each; None when no pair exists."""
    m = np.asarray(margins, dtype=float)
    k = int(horizon)
    if m.size <= k:
        return {"relative": None, "absolute": None, "relative_at": None, "absolute_at": None}
    a, b = m[:-k], m[k:]
    ok = np.isfinite(a) & np.isfinite(b) & (a > 0)
    if not ok.any():
        return {"relative": None, "absolute": None, "relative_at": None, "absolute_at": None}
    rel = np.where(ok, b / np.where(ok, a, 1.0) - 1.0, -np.inf)
    ab = np.where(ok, b - a, -np.inf)
    i, j = int(np.argmax(rel)), int(np.argmax(ab))
    return {"relative": float(rel[i]), "absolute": float(ab[j]), "relative_at": i, "absolute_at": j}


@dataclass(frozen=True)
class BacktestMetrics:
    """Backtest metrics of one margin path (see the module docstring); margins are margin ratios."""

    name: str
    days: int
    breaches: int
    breach_rate: float
    target_rate: float
    kupiec_lr: float
    kupiec_p: float
    mean_margin: float
    min_margin: float
    max_margin: float
    peak_to_trough: float
    increases: dict = field(repr=False)   # {k: {"relative", "absolute", "relative_at", "absolute_at"}}
    share_over_cap: float | None = None

    def to_dict(self, dates=None) -> dict:
        inc = {}
        for k, v in self.increases.items():
            d = dict(v)
            if dates is not None:
                for key in ("relative_at", "absolute_at"):
                    if d[key] is not None:
                        d[key.replace("_at", "_from_date")] = dates[d[key]]
                        d[key.replace("_at", "_to_date")] = dates[d[key] + int(k)]
            inc[str(k)] = d
        return {
            "name": self.name,
            "days": self.days,
            "breaches": self.breaches,
            "breach_rate": self.breach_rate,
            "target_rate": self.target_rate,
            "kupiec_lr": self.kupiec_lr,
            "kupiec_p": self.kupiec_p,
            "mean_margin_ratio": self.mean_margin,
            "min_margin_ratio": self.min_margin,
            "max_margin_ratio": self.max_margin,
            "peak_to_trough": self.peak_to_trough,
            "largest_increases": inc,
            "share_days_slope_over_cap": self.share_over_cap,
        }


def backtest_metrics(name: str, margins, losses, coverage: float, over_cap=None, horizons=INCREASE_HORIZONS) -> BacktestMetrics:
    """Metrics of a margin path ``margins`` (M_t) against forward losses ``losses`` (loss over (t, t+h], NaN where
    unknown); ``over_cap`` optional booleans per day (slope above the cap). Days with a NaN margin are skipped."""
    m = np.asarray(margins, dtype=float)
    loss = np.asarray(losses, dtype=float)
    if m.shape != loss.shape:
        raise InputError(f"margins and losses must be aligned, got {m.size} and {loss.size} days.")
    scored = np.isfinite(m) & np.isfinite(loss)
    n = int(scored.sum())
    if n == 0:
        raise InputError(f"rule {name!r} has no day with both a margin and a forward loss to backtest.")
    x = int(np.sum(loss[scored] > m[scored]))
    lr, p = kupiec_pof(x, n, coverage)
    fm = m[np.isfinite(m)]
    share = None
    if over_cap is not None:
        oc = np.asarray(over_cap, dtype=bool)
        share = float(np.mean(oc[np.isfinite(m)]))
    return BacktestMetrics(
        name=name, days=n, breaches=x, breach_rate=x / n, target_rate=1.0 - coverage, kupiec_lr=lr, kupiec_p=p,
        mean_margin=float(fm.mean()), min_margin=float(fm.min()), max_margin=float(fm.max()),
        peak_to_trough=float(fm.max() / fm.min()) if fm.min() > 0 else float("inf"),
        increases={int(k): largest_increases(m, int(k)) for k in horizons}, share_over_cap=share,
    )


# ----------------------------------------------------------------------------------------------
# History: risk input, forward losses, EMIR inputs
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class BacktestData:
    """Aligned daily arrays: ``dates`` (ISO), ``close``, ``r`` risk input (daily variance, NaN until defined),
    ``loss`` forward h-day loss per unit notional (NaN for the last h days), ``floor_r`` and ``stressed_r``
    (EMIR look-back inputs, daily variance); plus the settings used."""

    dates: tuple
    close: np.ndarray = field(repr=False)
    r: np.ndarray = field(repr=False)
    loss: np.ndarray = field(repr=False)
    floor_r: np.ndarray = field(repr=False)
    stressed_r: np.ndarray = field(repr=False)
    horizon_days: int
    risk_input: str
    window: int
    lam: float
    position: str
    source: str
    level: float = 0.99

    @property
    def vol(self) -> np.ndarray:
        return np.sqrt(self.r)

    def describe(self) -> str:
        if self.risk_input in HS_KINDS:
            ri = f"rolling {self.window}-day historical-simulation {'VaR' if self.risk_input == 'hs_var' else 'ES'} at {self.level:g}, as (Gamma / k)^2"
        else:
            ri = f"rolling {self.window}-day realised variance" if self.risk_input == "realized_variance" else f"EWMA (lambda {self.lam:g})"
        return f"{self.source}; {self.dates[0]} to {self.dates[-1]}, {len(self.dates)} days; risk input {ri}; {self.horizon_days}-day {self.position} losses"


def lookback_variance(returns, lookback: int = LOOKBACK_DAYS, minimum: int = MIN_LOOKBACK_DAYS) -> np.ndarray:
    """Mean squared daily return over the last ``lookback`` days (expanding from ``minimum`` days), aligned with the
    returns (index t uses returns up to t); NaN before ``minimum`` returns."""
    sq = np.asarray(returns, dtype=float) ** 2
    cs = np.concatenate([[0.0], np.cumsum(sq)])
    t = np.arange(sq.size)
    start = np.maximum(0, t + 1 - lookback)
    count = t + 1 - start
    out = (cs[t + 1] - cs[start]) / count
    return np.where(count >= minimum, out, np.nan)


def stressed_variance(r, lookback: int = LOOKBACK_DAYS, minimum: int = MIN_LOOKBACK_DAYS) -> np.ndarray:
    """Largest risk input r_s over the last ``lookback`` days (s <= t, NaNs skipped): the stressed period's variance;
    NaN until ``minimum`` defined values have been seen."""
    r = np.asarray(r, dtype=float)
    out = np.full(r.size, np.nan)
    q: deque = deque()
    seen = 0
    for t in range(r.size):
        while q and q[0] <= t - lookback:
            q.popleft()
        if np.isfinite(r[t]):
            seen += 1
            while q and r[q[-1]] <= r[t]:
                q.pop()
            q.append(t)
        if q and seen >= minimum:
            out[t] = r[q[0]]
    return out


def prepare_backtest(
    series: PriceSeries,
    *,
    risk_input: str = "realized_variance",
    window: int = 20,
    lam: float = 0.94,
    horizon_days: int = 2,
    position: str = "long",
    level: float = 0.99,
) -> BacktestData:
    """Risk input, forward losses and EMIR look-back inputs from daily closes (see the module docstring); ``level``
    the confidence level of an HS ``risk_input``."""
    if len(series) < MIN_LOOKBACK_DAYS + horizon_days + 2:
        raise InputError(f"the price data have {len(series)} days; the backtest needs at least {MIN_LOOKBACK_DAYS + horizon_days + 2}.")
    close = np.asarray(series.close, dtype=float)
    if risk_input in HS_KINDS:
        m = int(window)
        if close.size <= m:
            raise InputError(f"the price data have {close.size} days; an HS window of {m} returns needs at least {m + 1}.")
        r = np.full(close.size, np.nan)   # day t uses the log closes t - m .. t
        r[m:] = input_values(InputSpec(risk_input, m, lam, level), np.lib.stride_tricks.sliding_window_view(np.log(close), m + 1))
    else:
        r = risk_input_series(close, risk_input, int(window), lam)
    # forward raw losses: the standardised losses of data.py with sqrt(h r) = 1 (r = 1/h) are the losses themselves
    h = int(horizon_days)
    ones = np.full(close.size, 1.0 / h)
    raw = standardized_losses(close, ones, h, "short" if position == "short" else "long")
    loss = np.full(close.size, np.nan)
    loss[: raw.size] = raw
    if position == "both":
        loss = np.where(np.isfinite(loss), np.abs(loss), np.nan)
    ret = daily_log_returns(close)
    floor_r = np.concatenate([[np.nan], lookback_variance(ret)])
    stressed_r = stressed_variance(r)
    return BacktestData(
        dates=tuple(series.dates), close=close, r=r, loss=loss, floor_r=floor_r, stressed_r=stressed_r, horizon_days=h,
        risk_input=risk_input, window=int(window), lam=float(lam), position=position, source=series.source, level=float(level),
    )


def emir_rules(rule: Rule) -> dict:
    """The rule with each EMIR tool: name -> (Rule, keyword arguments of Rule.evaluate for the history inputs)."""
    return {
        "buffer": (rule.with_overlays(f"{rule.name} + 25% buffer", buffer=EMIR_BUFFER, buffer_release_vol=BUFFER_RELEASE_VOL, buffer_release="absorb"), ()),
        "stressed": (rule.with_overlays(f"{rule.name} + 25% stressed weight", stressed_weight=EMIR_STRESSED_WEIGHT, stressed_vol=None), ("stressed_r",)),
        "floor": (rule.with_overlays(f"{rule.name} + 10-year floor"), ("floor_r",)),
    }


def run_rule(rule: Rule, data: BacktestData, history=(), cap_vol: float | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """(margin path, days over the cap) of ``rule`` through ``data``; ``history`` names the look-back inputs
    (``floor_r``, ``stressed_r``) passed to the rule; ``cap_vol`` K (dM/dsigma) for the exposure share.
    Days whose risk input (or a requested look-back input) is undefined get NaN."""
    r = data.r
    ok = np.isfinite(r) & (r > 0)
    kw = {}
    for name in history:
        arr = getattr(data, name)
        ok &= np.isfinite(arr)
        kw[name] = arr
    rr = np.where(ok, r, 1e-4)
    kw = {k: np.where(ok, v, 1e-4) for k, v in kw.items()}
    m, d = rule.evaluate(rr, "right", **kw)
    m = np.where(ok, m, np.nan)
    over = None
    if cap_vol is not None:
        over = np.where(ok, d > cap_vol / (2.0 * np.sqrt(rr)) * (1.0 + 1e-9), False)
    return m, over
