"""Design inputs estimated from market data, and the design config they make (Nicolai 2026, Sections 6.1-6.4).

From daily closes (and volumes) of one contract -- the S&P 500 index shipped with ``arch``
(``arch.data.sp500``, 1999-2018) or a user CSV with columns ``date, close, volume`` -- this module estimates:

* the risk input r_t (variance of daily returns, decimal^2): a rolling m-day realised variance
  ``r_t = (1/m) sum_{j<m} R_{t-j}^2`` or a RiskMetrics EWMA ``r_t = lambda r_{t-1} + (1 - lambda) R_t^2``
  (lambda = 0.94), with R_t the daily log return; r_t uses returns up to and including day t;
* the distribution of r across days as state weights on the solver's grid of daily vols sqrt(r);
* the shock model of (30), ``D = sqrt(h r_t) Y``: standardised forward close-out losses
  ``Y_t = loss over (t, t+h] / sqrt(h r_t)``, the loss being ``-(P_{t+h}/P_t - 1)`` per unit notional for a
  long position (positive = loss to the margin holder), used as an ``empirical`` shock, with a Student-t
  maximum-likelihood fit and the normal for comparison;
* ADV = average of close x volume (currency per day), so trigger sizes and the constrained sector's
  position can be expressed as participation f = q P / ADV and turnover tau = X P / ADV.

:func:`write_design_config` writes the design config that ``margin-design solve`` reads (TOML with a
comment header recording the data window and every estimate), plus the state table and shock CSVs it
points to. Output is deterministic: the same data and options give identical bytes.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from margin_design.units import SQRT_252
from margin_design.display import Displayable, text_block
from margin_design.errors import InputError
from margin_design.fileio import atomic_write_text

from ._checks import check_range, to_py
from .cap import BENCHMARK, MarketCalibration, calibrate_market, toml_float
from margin_design.csvio import read_csv_columns, read_table, sort_by_iso_dates

__all__ = [
    "DATASETS",
    "RISK_INPUTS",
    "POSITIONS",
    "MIN_SHOCK_OBSERVATIONS",
    "TAIL_LEVEL",
    "FAT_TAIL_DF",
    "PriceSeries",
    "load_dataset",
    "load_sp500",
    "read_price_csv",
    "select_window",
    "daily_log_returns",
    "realized_variance",
    "ewma_variance",
    "ewma_seed_length",
    "risk_input_series",
    "grid_points",
    "state_weights",
    "standardized_losses",
    "silverman_bandwidth",
    "fit_student_t",
    "shock_quantiles",
    "average_daily_value",
    "participation_rate",
    "turnover_ratio",
    "MARKET_INPUTS",
    "market_input_sources",
    "market_sources_lines",
    "ObjectiveSettings",
    "DataCalibration",
    "grid_quantile_levels",
    "require_losses",
    "state_table",
    "loss_summary",
    "calibrate_from_prices",
    "state_shock_header_lines",
    "objective_header_line",
    "state_shock_objective_toml",
    "design_config_text",
    "states_csv_text",
    "shock_csv_text",
    "design_file_set",
    "write_design_config",
]

#: Bundled data sets (name -> loader).
DATASETS = ("sp500",)
#: Risk inputs that can be estimated, named as in the config's ``[cap] input``.
RISK_INPUTS = ("realized_variance", "ewma")
#: Whose close-out loss is standardised: a long position (loss = -return), a short one, or both pooled.
POSITIONS = ("long", "short", "both")
#: Fewest standardised losses for which an empirical shock is written (about one year of days).
MIN_SHOCK_OBSERVATIONS = 250
#: Tail level at which the empirical shock is compared with the normal and the Student-t (one-sided).
TAIL_LEVEL = 0.99
#: Degrees of freedom of the fat-tailed Student-t reference (unit scale) in the comparison.
FAT_TAIL_DF = 3.0
#: Default significant digits kept for the grid's end points (vol quantiles) in the config.
_GRID_DIGITS = 4

_OBJECTIVE_LOSSES = ("shortfall", "squared_shortfall")
_LIQUIDATION_COSTS = ("quadratic", "linear")
_PARTICIPATION_COSTS = ("linear", "quadratic")
_SPACINGS = ("vol", "variance")


# ----------------------------------------------------------------------------------------------
# Price data
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PriceSeries:
    """Daily closes in date order: ``dates`` (ISO strings), ``close`` (> 0, currency per unit),
    ``volume`` (units traded per day, or None), ``source`` (a description for the config header)."""

    dates: tuple
    close: np.ndarray = field(repr=False)
    volume: np.ndarray | None = field(repr=False)
    source: str

    def __len__(self) -> int:
        return len(self.dates)


def load_sp500() -> PriceSeries:
    """The S&P 500 index daily close and volume shipped with ``arch`` (``arch.data.sp500``, 1999-2018)."""
    from arch.data import sp500

    frame = sp500.load()
    dates = tuple(d.strftime("%Y-%m-%d") for d in frame.index)
    close = frame["Close"].to_numpy(dtype=float)
    volume = frame["Volume"].to_numpy(dtype=float)
    return PriceSeries(
        dates,
        close,
        volume,
        "S&P 500 index daily close and volume (arch.data.sp500; the volume is the constituents' share volume, "
        "so close x volume is a proxy scale for ADV)",
    )


def load_dataset(name: str) -> PriceSeries:
    """A bundled data set by name (see :data:`DATASETS`)."""
    if name == "sp500":
        return load_sp500()
    raise InputError(f"--dataset must be one of {', '.join(DATASETS)}, got {name!r}.")


def read_price_csv(path: str | Path) -> PriceSeries:
    """Read a CSV with columns ``date``, ``close`` (> 0, currency per unit) and optionally ``volume`` (>= 0, units per day).

    Dates in ISO YYYY-MM-DD or another unambiguous format, numbers with or without quoted thousands separators
    (see :mod:`margin_design.csvio`). Rows are sorted by date; a repeated date is an error.
    """
    p = Path(path)
    cols = read_csv_columns(p, required=("close",), optional=("volume",), dates=("date",))
    if "date" not in cols:
        header, _ = read_table(p)
        raise InputError(f"{p.name} has no column 'date' (columns: {', '.join(header)}).")
    close = cols["close"]
    check_range(f"column 'close' of {p.name}", close, low=0.0, what="positive")
    volume = cols.get("volume")
    if volume is not None:
        check_range(f"column 'volume' of {p.name}", volume, low=0.0, low_inclusive=True, what="non-negative")
    idx = sort_by_iso_dates(cols["date"], f"column 'date' of {p.name}")
    dates = tuple(cols["date"][i] for i in idx)
    return PriceSeries(dates, close[idx], None if volume is None else volume[idx], f"{p.name} (user CSV: date, close, volume)")


def select_window(series: PriceSeries, start: str | None = None, end: str | None = None) -> PriceSeries:
    """The closes with ``start <= date <= end`` (ISO dates, either may be None)."""
    lo = _iso("--start", start)
    hi = _iso("--end", end)
    if lo and hi and hi < lo:
        raise InputError(f"--end must not be before --start, got {end} < {start}.")
    keep = [i for i, d in enumerate(series.dates) if (lo is None or d >= lo) and (hi is None or d <= hi)]
    idx = np.asarray(keep, dtype=int)
    return PriceSeries(
        tuple(series.dates[i] for i in keep),
        series.close[idx],
        None if series.volume is None else series.volume[idx],
        series.source,
    )


def _iso(flag: str, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return _dt.date.fromisoformat(value).isoformat()
    except ValueError:
        raise InputError(f"{flag} must be an ISO date (YYYY-MM-DD), got {value!r}.") from None


# ----------------------------------------------------------------------------------------------
# Risk input r_t
# ----------------------------------------------------------------------------------------------


def daily_log_returns(close) -> np.ndarray:
    """Daily log returns ``R_t = log(P_t / P_{t-1})`` (decimal), one fewer than the closes."""
    c = np.asarray(close, dtype=float)
    return np.diff(np.log(c))


def realized_variance(returns, window: int) -> np.ndarray:
    """Rolling realised variance ``r_t = (1/m) sum_{j=0}^{m-1} R_{t-j}^2`` (variance of daily returns, decimal^2).

    Same length as ``returns``; the first ``window - 1`` values are NaN. This is (4) divided by m, so that r is
    the variance of one day's return (the project's unit); zero-mean convention as in RiskMetrics.
    """
    if int(window) != window or window < 1:
        raise InputError(f"window must be a positive integer number of days, got {window}.")
    window = int(window)
    sq = np.asarray(returns, dtype=float) ** 2
    out = np.full(sq.size, np.nan)
    if sq.size >= window:
        cs = np.concatenate([[0.0], np.cumsum(sq)])
        out[window - 1 :] = (cs[window:] - cs[:-window]) / window
    return out


def ewma_seed_length(lam: float) -> int:
    """Days averaged to seed the EWMA: ``ceil(log(0.01)/log(lambda))``, after which the seed weighs < 1% (75 at 0.94)."""
    return int(math.ceil(math.log(0.01) / math.log(lam)))


def ewma_variance(returns, lam: float = 0.94, seed: int | None = None) -> np.ndarray:
    """RiskMetrics EWMA variance ``r_t = lambda r_{t-1} + (1 - lambda) R_t^2`` (decimal^2), lambda in (0, 1).

    Seeded at index ``seed - 1`` with the mean of the first ``seed`` squared returns (default
    :func:`ewma_seed_length`); earlier values are NaN. r_t includes R_t: it is the forecast for day t+1.
    """
    check_range("lambda", lam, low=0.0, high=1.0, high_inclusive=False, what="in (0, 1)")
    sq = np.asarray(returns, dtype=float) ** 2
    s = ewma_seed_length(lam) if seed is None else int(seed)
    out = np.full(sq.size, np.nan)
    if sq.size < s or s < 1:
        return out
    out[s - 1] = sq[:s].mean()
    for t in range(s, sq.size):
        out[t] = lam * out[t - 1] + (1.0 - lam) * sq[t]
    return out


def risk_input_series(close, kind: str = "realized_variance", window: int = 20, lam: float = 0.94) -> np.ndarray:
    """r_t aligned with the closes (index t uses returns up to day t); NaN where not yet defined."""
    if kind not in RISK_INPUTS:
        raise InputError(f"--risk-input must be one of {', '.join(RISK_INPUTS)}, got {kind!r}.")
    ret = daily_log_returns(close)
    r = realized_variance(ret, window) if kind == "realized_variance" else ewma_variance(ret, lam)
    return np.concatenate([[np.nan], r])


# ----------------------------------------------------------------------------------------------
# Grid and state weights
# ----------------------------------------------------------------------------------------------


def grid_points(vol_min: float, vol_max: float, points: int, spacing: str = "vol") -> np.ndarray:
    """The solver's grid of daily vols (decimal): equally spaced in vol, or in variance (``spacing``)."""
    check_range("vol_min", vol_min, low=0.0, what="a positive daily vol (decimal)")
    check_range("vol_max", vol_max, low=float(vol_min), what=f"above vol_min = {float(vol_min):g}")
    if int(points) != points or points < 3:
        raise InputError(f"points must be an integer >= 3, got {points}.")
    if spacing == "vol":
        grid = np.linspace(vol_min, vol_max, int(points))
    elif spacing == "variance":
        grid = np.sqrt(np.linspace(vol_min**2, vol_max**2, int(points)))
    else:
        raise InputError(f"spacing must be one of {', '.join(_SPACINGS)}, got {spacing!r}.")
    grid[0], grid[-1] = vol_min, vol_max  # exact ends (sqrt(vol_min**2) may differ from vol_min in the last bit)
    return grid


def state_weights(vols, grid, spacing: str = "vol") -> np.ndarray:
    """Share of observations nearest each grid point (probability masses summing to 1).

    Distance is measured in vol (``spacing = "vol"``) or variance; observations outside the grid go to the
    end points. ``vols`` are daily vols sqrt(r_t) (decimal), ``grid`` increasing daily vols.
    """
    v = np.asarray(vols, dtype=float)
    v = v[np.isfinite(v)]
    g = np.asarray(grid, dtype=float)
    if v.size == 0:
        raise InputError("there are no risk-input observations to weight the states.")
    if spacing == "variance":
        v, g = v**2, g**2
    edges = (g[1:] + g[:-1]) / 2.0
    idx = np.searchsorted(edges, v, side="right")
    counts = np.bincount(idx, minlength=g.size).astype(float)
    return counts / counts.sum()


# ----------------------------------------------------------------------------------------------
# Shock model
# ----------------------------------------------------------------------------------------------


def standardized_losses(close, risk, horizon_days: int = 2, position: str = "long", weights=None) -> np.ndarray:
    """Standardised forward close-out losses ``Y_t = loss(t, t+h] / sqrt(h r_t)`` (dimensionless, loss > 0).

    ``close`` are the daily closes, ``risk`` r_t aligned with them (:func:`risk_input_series`), ``horizon_days``
    h the margin period of risk in days. The loss per unit notional is ``-(P_{t+h}/P_t - 1)`` for a long position
    and ``+(P_{t+h}/P_t - 1)`` for a short one; ``"both"`` stacks the two. Overlapping windows, every day t with r_t.

    With ``weights`` h (K,), ``close`` is a (T, K) panel of closes and the return is that of a portfolio holding
    the notional weights h at t (per unit of its notional): ``sum_i h_i (P_{i,t+h}/P_{i,t} - 1)``.
    """
    if int(horizon_days) != horizon_days or horizon_days < 1:
        raise InputError(f"--horizon-days must be a positive integer, got {horizon_days}.")
    if position not in POSITIONS:
        raise InputError(f"--position must be one of {', '.join(POSITIONS)}, got {position!r}.")
    h = int(horizon_days)
    c = np.asarray(close, dtype=float)
    r = np.asarray(risk, dtype=float)
    if c.shape[0] <= h:
        return np.empty(0)
    t = np.arange(c.shape[0] - h)
    ok = np.isfinite(r[t]) & (r[t] > 0)
    t = t[ok]
    ret = c[t + h] / c[t] - 1.0
    if weights is not None:
        ret = ret @ np.asarray(weights, dtype=float)
    scale = np.sqrt(h * r[t])
    if position == "long":
        return -ret / scale
    if position == "short":
        return ret / scale
    return np.concatenate([-ret / scale, ret / scale])


def silverman_bandwidth(y) -> float:
    """Gaussian-kernel bandwidth by Silverman's rule, ``0.9 min(sd, IQR/1.349) n^(-1/5)`` (units of Y)."""
    y = np.asarray(y, dtype=float)
    sd = float(np.std(y, ddof=1))
    q75, q25 = np.quantile(y, [0.75, 0.25])
    spread = min(sd, float(q75 - q25) / 1.349) if q75 > q25 else sd
    return 0.9 * spread * y.size ** (-0.2)


def fit_student_t(y) -> tuple[float, float, float]:
    """Maximum-likelihood Student-t fit of Y: ``(df, loc, scale)`` (scipy.stats.t.fit)."""
    df, loc, scale = stats.t.fit(np.asarray(y, dtype=float))
    return float(df), float(loc), float(scale)


def shock_quantiles(y, level: float = TAIL_LEVEL, fat_df: float = FAT_TAIL_DF) -> dict:
    """One-sided ``level`` quantiles of Y and of the comparison models (all in units of Y).

    ``empirical``: of the sample; ``normal``: of N(0, 1), the shock of ``model = "normal"`` (Y is already
    standardised by sqrt(h r_t)); ``normal_moments``: of a normal with Y's mean and sd; ``student_t_fit``:
    of the maximum-likelihood Student-t; ``student_t_fat``: of a standard Student-t with ``fat_df`` degrees
    of freedom (unit scale), a fat-tailed reference.
    """
    y = np.asarray(y, dtype=float)
    df, loc, scale = fit_student_t(y)
    return {
        "level": level,
        "empirical": float(np.quantile(y, level)),
        "normal": float(stats.norm.ppf(level)),
        "normal_moments": float(np.mean(y) + np.std(y, ddof=1) * stats.norm.ppf(level)),
        "student_t_fit": float(stats.t.ppf(level, df, loc, scale)),
        "student_t_fit_params": {"df": df, "loc": loc, "scale": scale},
        "student_t_fat": float(stats.t.ppf(level, fat_df)),
        "student_t_fat_df": fat_df,
    }


# ----------------------------------------------------------------------------------------------
# Liquidity: ADV, participation, turnover
# ----------------------------------------------------------------------------------------------


def average_daily_value(close, volume, window: int | None = None) -> float:
    """ADV: mean of close x volume (currency per day) over the last ``window`` days (all days if None)."""
    c = np.asarray(close, dtype=float)
    v = np.asarray(volume, dtype=float)
    dv = c * v
    if window is not None:
        if int(window) != window or window < 1:
            raise InputError(f"--adv-window must be a positive integer number of days, got {window}.")
        dv = dv[-int(window) :]
    if dv.size == 0 or not np.mean(dv) > 0:
        raise InputError("the traded value (close x volume) is zero, so ADV is not defined.")
    return float(np.mean(dv))


def participation_rate(notional, adv):
    """Participation ``f = q P / ADV``: a trade's notional (currency) as a decimal fraction of ADV (currency/day)."""
    check_range("adv", adv, low=0.0, what="positive (currency per day)")
    return np.asarray(notional, dtype=float) / float(adv)


def turnover_ratio(position_notional, adv):
    """Turnover ``tau = X P / ADV``: the constrained sector's position notional in days of ADV."""
    check_range("adv", adv, low=0.0, what="positive (currency per day)")
    return np.asarray(position_notional, dtype=float) / float(adv)


# ----------------------------------------------------------------------------------------------
# Where the market inputs come from
# ----------------------------------------------------------------------------------------------

#: The cap's market inputs: name -> (symbol, command-line flag(s) that set it, the built-in default's value and origin).
#: The defaults are the paper's benchmark calibration (cap.BENCHMARK), not estimates from the data.
MARKET_INPUTS = {
    "elasticity": ("epsilon_XM", "--elasticity", BENCHMARK["elasticity"], "the paper's benchmark (Hedegaard 2014; Section 3.6)"),
    "turnover": ("tau", "--turnover or --sector-notional", BENCHMARK["turnover"], "the paper's benchmark (Table 1)"),
    "participation": ("f", "--participation or --trigger-notional", BENCHMARK["participation"], "the paper's benchmark trigger of 1% of ADV"),
    "margin": ("m", "--margin", BENCHMARK["margin"], "the paper's benchmark m0 = 5% (Table 1)"),
    "impact": ("k", "--impact-k or --distortion-bps", BENCHMARK["impact_k_bps"], "delta_bps = 200 sqrt(f) bp, (65) (Frazzini et al. 2018)"),
    "inventory_penalty": ("kappa", "--inventory-penalty", 0.0, "no inventory penalty"),
}


def market_input_sources(*, elasticity=None, turnover=None, participation=None, margin=None, impact_k=None, distortion=None,
                         inventory_penalty=None, sector_notional=None, trigger_notional=None) -> dict:
    """Where each of :data:`MARKET_INPUTS` comes from: ``"given"`` (not None here), ``"default"`` (None: the built-in
    benchmark value) or ``"data"`` (turnover or participation from a notional divided by the data's ADV)."""

    def src(value, notional=None):
        return "data" if notional is not None else ("default" if value is None else "given")

    return {
        "elasticity": src(elasticity),
        "turnover": src(turnover, sector_notional),
        "participation": src(participation, trigger_notional),
        "margin": src(margin),
        "impact": "default" if impact_k is None and distortion is None else "given",
        "inventory_penalty": src(inventory_penalty),
    }


def market_sources_lines(market: MarketCalibration | None, sources: dict, console: bool = False) -> list[str]:
    """Lines saying, for each market input, its value (omitted when ``market`` is None) and whether it was given, a
    built-in default or from the data; a second line (if any input is a default) says where the defaults come from
    and which flags set them. Config comment lines, or with ``console`` indented lines for the terminal (shorter).
    Empty when ``sources`` is empty."""
    if not sources:
        return []
    label = {"given": "given", "default": "built-in default", "data": "from the data (notional / ADV)"}
    value = {} if market is None else {
        "elasticity": float(market.elasticity),
        "turnover": float(market.turnover),
        "participation": float(market.participation),
        "margin": float(market.margin),
        "inventory_penalty": float(market.inventory_penalty),
    }
    parts = []
    for name, (symbol, _, _, _) in MARKET_INPUTS.items():
        if market is None:
            text = symbol
        elif name == "impact":
            if market.impact_k is None:
                text = f"delta {float(market.distortion_bps):.6g} bp"
            else:
                text = f"k {float(market.impact_k):g} bp"
        else:
            text = f"{symbol} {value[name]:g}"
        parts.append(f"{text} {label[sources[name]]}")
    defaults = [name for name in MARKET_INPUTS if sources[name] == "default"]
    flags = ", ".join(MARKET_INPUTS[n][1] for n in defaults)
    if console:
        lines = [f"  market inputs: {', '.join(parts)}"]
        if defaults:
            lines.append(f"  built-in defaults are the paper's benchmark, not estimates for these data; set them with {flags}")
        return lines
    lines = [f"# Market inputs: {', '.join(parts)}."]
    if defaults:
        origin = "; ".join(f"{MARKET_INPUTS[n][0]} {MARKET_INPUTS[n][2]:g} is {MARKET_INPUTS[n][3]}" for n in defaults)
        lines.append(f"#   Built-in defaults are not estimated from these data ({origin}); set them for this market with {flags}.")
    return lines


# ----------------------------------------------------------------------------------------------
# The design config
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectiveSettings:
    """The ``[objective]`` block (31)-(32): loss ell, carry kappa_M in [0, 1), previous margin M_- (decimal;
    None = the market's margin m), liquidation and participation weights and shapes."""

    loss: str = "shortfall"
    carry: float = 0.01
    prev_margin: float | None = None
    liquidation_weight: float = 0.0
    liquidation_cost: str = "quadratic"
    participation_weight: float = 0.0
    participation_beta: float = 0.0
    participation_cost: str = "linear"

    def validate(self) -> None:
        if self.loss not in _OBJECTIVE_LOSSES:
            raise InputError(f"--loss must be one of {', '.join(_OBJECTIVE_LOSSES)}, got {self.loss!r}.")
        if self.liquidation_cost not in _LIQUIDATION_COSTS:
            raise InputError(f"--liquidation-cost must be one of {', '.join(_LIQUIDATION_COSTS)}, got {self.liquidation_cost!r}.")
        if self.participation_cost not in _PARTICIPATION_COSTS:
            raise InputError(f"--participation-cost must be one of {', '.join(_PARTICIPATION_COSTS)}, got {self.participation_cost!r}.")
        check_range("--carry", self.carry, low=0.0, high=1.0, low_inclusive=True, high_inclusive=False, what="in [0, 1)")
        if self.prev_margin is not None:
            check_range("--prev-margin", self.prev_margin, low=0.0, what="a positive margin ratio (decimal)")
        check_range("--liquidation-weight", self.liquidation_weight, low=0.0, low_inclusive=True, what="non-negative")
        check_range("--participation-weight", self.participation_weight, low=0.0, low_inclusive=True, what="non-negative")
        check_range("--participation-beta", self.participation_beta, low=0.0, low_inclusive=True, what="non-negative")


@dataclass(frozen=True, repr=False)
class DataCalibration(Displayable):
    """Everything estimated from the data for one design config (see :func:`calibrate_from_prices`).

    :meth:`summary` (and the ``repr``) lists the data window, the risk input, the state grid, the shock's tail and
    the market inputs; :meth:`to_frame` gives the state grid and its weights as a pandas DataFrame;
    :func:`write_design_config` writes the design config that ``load_problem`` reads.

    Units: vols are daily (decimal), r daily variance, Y dimensionless, ADV currency per day, participation and
    turnover in ADV units; ``market`` holds alpha (75) and c_eff (76).
    """

    source: str
    start: str
    end: str
    n_prices: int
    risk_input: str
    window: int
    lam: float
    horizon_days: int
    position: str
    n_risk: int
    vol_quantile_levels: tuple
    vol_quantiles: dict
    grid: np.ndarray = field(repr=False)
    spacing: str = "vol"
    weights: np.ndarray = field(repr=False, default=None)
    share_below: float = 0.0
    share_above: float = 0.0
    losses: np.ndarray = field(repr=False, default=None)
    loss_stats: dict = field(default_factory=dict)
    bandwidth: float = 0.0
    tail: dict = field(default_factory=dict)
    adv: float | None = None
    adv_full: float | None = None
    adv_window: int | None = None
    trigger_notional: float | None = None
    sector_notional: float | None = None
    market: MarketCalibration | None = None
    objective: ObjectiveSettings = field(default_factory=ObjectiveSettings)
    #: Where each market input came from (:func:`market_input_sources`): "given", "default" or "data".
    market_sources: dict = field(default_factory=dict)

    @property
    def vol_min(self) -> float:
        return float(self.grid[0])

    @property
    def vol_max(self) -> float:
        return float(self.grid[-1])

    def to_dict(self) -> dict:
        """Every estimate (JSON-ready; the loss sample itself is summarised, not listed)."""
        return {
            "data": {"source": self.source, "start": self.start, "end": self.end, "n_prices": self.n_prices},
            "risk_input": {
                "kind": self.risk_input,
                "window": self.window if self.risk_input == "realized_variance" else None,
                "lambda": self.lam if self.risk_input == "ewma" else None,
                "n_days": self.n_risk,
                "daily_vol_quantiles": self.vol_quantiles,
            },
            "grid": {
                "vol_min": self.vol_min,
                "vol_max": self.vol_max,
                "points": int(self.grid.size),
                "spacing": self.spacing,
                "quantile_levels": list(self.vol_quantile_levels),
                "vol": to_py(self.grid),
                "weight": to_py(self.weights),
                "share_below": self.share_below,
                "share_above": self.share_above,
            },
            "shock": {
                "horizon_days": self.horizon_days,
                "position": self.position,
                **self.loss_stats,
                "bandwidth": self.bandwidth,
                "tail": self.tail,
            },
            "liquidity": {
                "adv": self.adv,
                "adv_window_days": self.adv_window,
                "adv_full_window": self.adv_full,
                "trigger_notional": self.trigger_notional,
                "sector_notional": self.sector_notional,
            },
            "market": {
                "elasticity": float(self.market.elasticity),
                "turnover": float(self.market.turnover),
                "participation": float(self.market.participation),
                "margin": float(self.market.margin),
                "distortion_bps": float(self.market.distortion_bps),
                "inventory_penalty": float(self.market.inventory_penalty),
                **self.market.to_dict(),
                "sources": dict(self.market_sources),
            },
        }

    def to_frame(self):
        """The solver's states as a pandas DataFrame, one row per grid point: ``vol_daily`` (daily vol, decimal),
        ``vol_annual`` (sqrt(252) vol_daily, decimal), ``r`` (daily variance) and ``weight`` (share of the data's
        days nearest the point; sums to 1), all float64 -- the ``states.csv`` that :func:`write_design_config` writes."""
        return _states_frame(self.grid, self.weights)

    def _display(self) -> tuple[str, list[tuple[str, str]]]:
        t, m = self.tail, self.market
        window = f"window {self.window} days" if self.risk_input == "realized_variance" else f"lambda {self.lam:g}"
        return f"Design inputs from {self.source}", _state_shock_items(self) + [
            ("risk input", f"{self.risk_input} ({window}); {self.n_risk} days"),
            ("shock", f"{self.loss_stats['n']} standardised {self.horizon_days}-day losses ({self.position} position); 99% quantile "
                      f"empirical {t['empirical']:.3f}, normal {t['normal']:.3f}, Student-t fit {t['student_t_fit']:.3f}"),
            ("liquidity", "no volumes" if self.adv is None else f"ADV {self.adv:.4g} per day ({self.adv_window}-day mean)"),
            ("market", f"epsilon_XM {float(m.elasticity):g}, tau {float(m.turnover):g}, f {float(m.participation):g}, m {float(m.margin):g} -> "
                       f"alpha {float(m.alpha):.6g} per ADV, c_eff {float(m.c_eff):.6g} ADV per unit margin"),
        ]

    def summary(self) -> str:
        """The data window, risk input, state grid, shock and market inputs (text, one line each)."""
        return text_block(*self._display())


def _states_frame(grid, weights):
    """States as a DataFrame: vol_daily, vol_annual, r, weight (float64, one row per grid point)."""
    import pandas as pd

    vol = np.asarray(grid, float)
    frame = pd.DataFrame({"vol_daily": vol, "vol_annual": SQRT_252 * vol, "r": vol * vol,
                          "weight": np.asarray(weights, float)})
    frame.index.name = "state"
    return frame


def _state_shock_items(cal) -> list[tuple[str, str]]:
    """Display lines shared by the single-contract and the portfolio calibration: data window and state grid."""
    ann = SQRT_252
    return [
        ("data", f"{cal.start} to {cal.end}, {cal.n_prices} closes"),
        ("states", f"{cal.grid.size} points, daily vol {cal.vol_min:.4%} .. {cal.vol_max:.4%} (annualised {ann * cal.vol_min:.2%} .. "
                   f"{ann * cal.vol_max:.2%}; {cal.spacing} spacing); days below {cal.share_below:.1%}, above {cal.share_above:.1%}"),
    ]


def _q(x: float, digits: int = _GRID_DIGITS) -> float:
    return float(f"{x:.{digits}g}")


def grid_quantile_levels(vol_quantiles) -> tuple[float, float]:
    """The grid's (low, high) quantile levels of daily vol, checked: 0 <= low < high <= 1."""
    lo_q, hi_q = (float(v) for v in vol_quantiles)
    if not 0.0 <= lo_q < hi_q <= 1.0:
        raise InputError(f"--vol-quantiles must satisfy 0 <= low < high <= 1, got {lo_q:g} {hi_q:g}.")
    return lo_q, hi_q


def require_losses(losses, start: str, end: str) -> None:
    """Refuse a data window with fewer than :data:`MIN_SHOCK_OBSERVATIONS` standardised losses (one sentence)."""
    n = int(np.size(losses))
    if n < MIN_SHOCK_OBSERVATIONS:
        raise InputError(
            f"the data window {start} to {end} gives {n} standardised losses; "
            f"at least {MIN_SHOCK_OBSERVATIONS} are needed (widen --start/--end)."
        )


def state_table(vol, points: int = 51, vol_quantiles: tuple = (0.01, 0.99), spacing: str = "vol") -> dict:
    """The solver's grid and state weights from observed daily vols sqrt(r_t) (decimal; r_t > 0 only).

    The grid spans the ``vol_quantiles`` of ``vol`` (ends rounded to 4 significant digits) with ``points`` points
    spaced in ``spacing``; weights are the share of days nearest each grid point (:func:`state_weights`). Returns
    the :class:`DataCalibration` fields ``n_risk, vol_quantile_levels, vol_quantiles, grid, spacing, weights,
    share_below, share_above`` (shares of days outside the grid, decimal).
    """
    lo_q, hi_q = grid_quantile_levels(vol_quantiles)
    vol = np.asarray(vol, dtype=float)
    vmin, vmax = _q(float(np.quantile(vol, lo_q))), _q(float(np.quantile(vol, hi_q)))
    if not vmax > vmin:
        raise InputError(f"the daily-vol quantiles {lo_q:g} and {hi_q:g} coincide ({vmin:g}), so no grid can be built.")
    grid = grid_points(vmin, vmax, points, spacing)
    levels = (0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0)
    return {
        "n_risk": int(vol.size),
        "vol_quantile_levels": (lo_q, hi_q),
        "vol_quantiles": {format(lv, "g"): float(np.quantile(vol, lv)) for lv in levels},
        "grid": grid,
        "spacing": spacing,
        "weights": state_weights(vol, grid, spacing),
        "share_below": float(np.mean(vol < grid[0])),
        "share_above": float(np.mean(vol > grid[-1])),
    }


def loss_summary(losses) -> dict:
    """The empirical shock's :class:`DataCalibration` fields from standardised losses Y (dimensionless):
    ``losses, loss_stats`` (n, moments, quantiles), ``bandwidth`` (Silverman) and ``tail`` (:func:`shock_quantiles`)."""
    y = np.asarray(losses, dtype=float)
    loss_stats = {
        "n": int(y.size),
        "mean": float(np.mean(y)),
        "sd": float(np.std(y, ddof=1)),
        "skewness": float(stats.skew(y)),
        "excess_kurtosis": float(stats.kurtosis(y)),
        "quantiles": {format(lv, "g"): float(np.quantile(y, lv)) for lv in (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 0.995)},
    }
    return {"losses": y, "loss_stats": loss_stats, "bandwidth": silverman_bandwidth(y), "tail": shock_quantiles(y)}


def calibrate_from_prices(
    series: PriceSeries,
    *,
    risk_input: str = "realized_variance",
    window: int = 20,
    lam: float = 0.94,
    horizon_days: int = 2,
    position: str = "long",
    points: int = 51,
    vol_quantiles: tuple = (0.01, 0.99),
    spacing: str = "vol",
    elasticity: float | None = None,
    turnover: float | None = None,
    participation: float | None = None,
    margin: float | None = None,
    impact_k: float | None = None,
    distortion: float | None = None,
    inventory_penalty: float | None = None,
    trigger_notional: float | None = None,
    sector_notional: float | None = None,
    adv_window: int = 20,
    objective: ObjectiveSettings | None = None,
    progress=None,
) -> DataCalibration:
    """Estimate a design's inputs from daily closes: states, weights, shock and the market inputs of the cap.

    From the closes it builds the CCP's risk input r_t, a grid of daily-vol states between two quantiles of
    sqrt(r_t) with the share of days nearest each as its weight, and the empirical shock (standardised close-out
    losses over the margin period of risk); with the elasticity, turnover, participation and margin it calibrates
    alpha (75) and c_eff (76). :func:`write_design_config` writes the result as a design config (see the module
    docstring for the estimators).

    ``risk_input`` "realized_variance" (``window`` days) or "ewma" (``lam``); ``horizon_days`` the margin period of
    risk; ``position`` whose loss is standardised; the grid spans the ``vol_quantiles`` of daily vol sqrt(r_t)
    with ``points`` points. Market inputs (cap): ``elasticity`` epsilon_XM, ``margin`` m (decimal), impact via
    ``impact_k`` (bp) or ``distortion`` (bp), ``inventory_penalty`` kappa; turnover tau and participation f are given
    directly or from ``sector_notional`` / ``trigger_notional`` (currency) divided by ADV (needs volumes). An input
    left None takes the paper's benchmark value (:data:`MARKET_INPUTS`: epsilon 0.225, tau 1, f 1%, m 5%, k 200 bp,
    kappa 0) and is recorded as a built-in default, not an estimate, in ``market_sources`` and the written config.
    ``progress(done, total, "calibrate data")``, if given, is called after each of the five stages (risk input,
    losses, state grid, shock fit, market).
    """
    stage = 0

    def advance():
        nonlocal stage
        stage += 1
        if progress is not None:
            progress(stage, 5, "calibrate data")

    objective = objective or ObjectiveSettings()
    objective.validate()
    if risk_input not in RISK_INPUTS:
        raise InputError(f"--risk-input must be one of {', '.join(RISK_INPUTS)}, got {risk_input!r}.")
    if spacing not in _SPACINGS:
        raise InputError(f"--spacing must be one of {', '.join(_SPACINGS)}, got {spacing!r}.")
    grid_quantile_levels(vol_quantiles)
    if int(window) != window or window < 1:
        raise InputError(f"--window must be a positive integer number of days, got {window}.")
    if risk_input == "ewma":
        check_range("--lambda", lam, low=0.0, high=1.0, high_inclusive=False, what="in (0, 1)")
    if turnover is not None and sector_notional is not None:
        raise InputError("give either --turnover or --sector-notional, not both.")
    if participation is not None and trigger_notional is not None:
        raise InputError("give either --participation or --trigger-notional, not both.")
    if len(series) < 2:
        raise InputError(f"the data window has {len(series)} closes; at least {MIN_SHOCK_OBSERVATIONS} are needed.")

    close = series.close
    r = risk_input_series(close, risk_input, int(window), lam)
    advance()
    finite = np.isfinite(r) & (r > 0)
    vol = np.sqrt(r[finite])
    y = standardized_losses(close, r, horizon_days, position)
    require_losses(y, series.dates[0], series.dates[-1])
    advance()
    states = state_table(vol, points, vol_quantiles, spacing)
    advance()
    shock = loss_summary(y)
    advance()

    adv = adv_full = None
    if series.volume is not None and np.any(series.volume > 0):
        adv = average_daily_value(close, series.volume, adv_window)
        adv_full = average_daily_value(close, series.volume)
    if (trigger_notional is not None or sector_notional is not None) and adv is None:
        raise InputError("--trigger-notional and --sector-notional need volumes to compute ADV, but the data have no 'volume' column.")
    if trigger_notional is not None:
        check_range("--trigger-notional", trigger_notional, low=0.0, what="positive (currency)")
        participation = float(participation_rate(trigger_notional, adv))
    if sector_notional is not None:
        check_range("--sector-notional", sector_notional, low=0.0, what="positive (currency)")
        turnover = float(turnover_ratio(sector_notional, adv))
    sources = market_input_sources(
        elasticity=elasticity, turnover=turnover, participation=participation, margin=margin, impact_k=impact_k,
        distortion=distortion, inventory_penalty=inventory_penalty, sector_notional=sector_notional, trigger_notional=trigger_notional,
    )

    def pick(name, value):
        return MARKET_INPUTS[name][2] if value is None else value

    market = calibrate_market(
        pick("elasticity", elasticity),
        pick("turnover", turnover),
        pick("participation", participation),
        pick("margin", margin),
        impact_k=impact_k,
        distortion=distortion,
        inventory_penalty=pick("inventory_penalty", inventory_penalty),
    )
    advance()

    return DataCalibration(
        source=series.source,
        start=series.dates[0],
        end=series.dates[-1],
        n_prices=len(series),
        risk_input=risk_input,
        window=int(window),
        lam=float(lam),
        horizon_days=int(horizon_days),
        position=position,
        **states,
        **shock,
        adv=adv,
        adv_full=adv_full,
        adv_window=int(adv_window) if adv is not None else None,
        trigger_notional=trigger_notional,
        sector_notional=sector_notional,
        market=market,
        objective=objective,
        market_sources=sources,
    )


def _toml_str(s: str) -> str:
    """A TOML basic string (JSON string escapes are valid TOML escapes)."""
    return json.dumps(s)


def _num(x: Any, digits: int = 6) -> str:
    return format(float(x), f".{digits}g")


def state_shock_header_lines(cal, states_file: str, shock_file: str, loss_desc: str, risk_name: str = "sqrt(r_t)") -> list[str]:
    """Comment-header lines on the state grid, its weights and the empirical shock of a calibration ``cal``
    (a :class:`DataCalibration` or any object with the same fields); ``loss_desc`` says whose loss Y is."""
    ls = cal.loss_stats
    tail = cal.tail
    tfit = tail["student_t_fit_params"]
    vq = cal.vol_quantiles
    lv = format(TAIL_LEVEL, "g")
    return [
        f"# Daily vol {risk_name} quantiles: "
        + ", ".join(f"{k} {_num(vq[k], 4)}" for k in ("0", "0.01", "0.05", "0.5", "0.95", "0.99", "1"))
        + f" (median annualised {_num(math.sqrt(252) * vq['0.5'], 4)}).",
        f"# Grid: daily vol from the {cal.vol_quantile_levels[0]:g} to the {cal.vol_quantile_levels[1]:g} quantile (rounded to {_GRID_DIGITS} digits), "
        f"{cal.grid.size} points spaced in {cal.spacing}.",
        f"# States: share of days nearest each grid point ({states_file}); days outside the grid go to its ends "
        f"({100 * cal.share_below:.2f}% below, {100 * cal.share_above:.2f}% above).",
        f"# Shock: Y_t = loss over {cal.horizon_days} days, {loss_desc}, / sqrt({cal.horizon_days} r_t); {ls['n']} overlapping values ({shock_file}).",
        f"#   mean {_num(ls['mean'], 4)}, sd {_num(ls['sd'], 4)}, skewness {_num(ls['skewness'], 4)}, excess kurtosis {_num(ls['excess_kurtosis'], 4)}; "
        f"quantiles 95% {_num(ls['quantiles']['0.95'], 4)}, 99% {_num(ls['quantiles']['0.99'], 4)}, 99.5% {_num(ls['quantiles']['0.995'], 4)}.",
        f"#   {lv} quantile: empirical {_num(tail['empirical'], 4)}; normal N(0,1) {_num(tail['normal'], 4)} "
        f"(moment-matched {_num(tail['normal_moments'], 4)}); Student-t ML fit (df {_num(tfit['df'], 4)}, loc {_num(tfit['loc'], 4)}, "
        f"scale {_num(tfit['scale'], 4)}) {_num(tail['student_t_fit'], 4)}; Student-t df {tail['student_t_fat_df']:g} unit scale {_num(tail['student_t_fat'], 4)}.",
        f"#   Kernel bandwidth (Silverman's rule): {_num(cal.bandwidth, 4)}.",
    ]


def _prev_margin(cal) -> float:
    """M_- of the objective: the given previous margin, else the calibration's margin ratio m (decimal)."""
    if cal.objective.prev_margin is not None:
        return float(cal.objective.prev_margin)
    margin = getattr(cal, "margin", None)
    return float(cal.market.margin if margin is None else margin)


def objective_header_line(cal) -> str:
    """The ``# Objective:`` comment line of a calibration's config."""
    obj = cal.objective
    return (
        f"# Objective: loss {obj.loss}, carry {obj.carry:g}, previous margin {_prev_margin(cal):g}, liquidation weight {obj.liquidation_weight:g}, "
        f"participation weight {obj.participation_weight:g}."
    )


def state_shock_objective_toml(cal, states_file: str, shock_file: str) -> list[str]:
    """The ``[grid] [states] [shock] [objective]`` blocks of a calibration's config, as lines (each block ends blank)."""
    obj = cal.objective
    return [
        "[grid]",
        f"vol_min = {toml_float(cal.vol_min)}",
        f"vol_max = {toml_float(cal.vol_max)}",
        f"points = {int(cal.grid.size)}",
        f'spacing = "{cal.spacing}"',
        "",
        "[states]",
        'density = "table"',
        f"file = {_toml_str(states_file)}",
        "",
        "[shock]",
        'model = "empirical"',
        f"file = {_toml_str(shock_file)}",
        f"bandwidth = {toml_float(cal.bandwidth)}",
        f"horizon_days = {toml_float(cal.horizon_days)}",
        "",
        "[objective]",
        'kind = "cost"',
        f'loss = "{obj.loss}"',
        f"carry = {toml_float(obj.carry)}",
        f"prev_margin = {toml_float(_prev_margin(cal))}",
        f"liquidation_weight = {toml_float(obj.liquidation_weight)}",
        f'liquidation_cost = "{obj.liquidation_cost}"',
        f"participation_weight = {toml_float(obj.participation_weight)}",
        f"participation_beta = {toml_float(obj.participation_beta)}",
        f'participation_cost = "{obj.participation_cost}"',
        "",
    ]


def design_config_text(cal: DataCalibration, states_file: str, shock_file: str) -> str:
    """The TOML text of the design config (comment header, then [grid] [states] [shock] [objective] [market] [cap])."""
    m = cal.market
    if cal.risk_input == "realized_variance":
        rdesc = f"rolling {cal.window}-day realised variance, mean of the last {cal.window} squared daily log returns"
    else:
        rdesc = f"RiskMetrics EWMA, lambda = {cal.lam:g}, seeded with the mean of the first {ewma_seed_length(cal.lam)} squared daily log returns"
    loss_desc = {"long": "-(P[t+h]/P[t] - 1), a long position", "short": "+(P[t+h]/P[t] - 1), a short position", "both": "long and short positions pooled"}[cal.position]
    lines = [
        "# Design config written by `margin-design calibrate data` (margin_design.calibration.data).",
        "# Model: Nicolai (2026), losses D = sqrt(horizon_days * r) * Y (30); cap (39)-(40) with alpha (75) and c_eff (76).",
        "# Units: per unit notional (price 1); margins are decimal ratios; r = variance of daily returns; vols are daily, decimal.",
        f"# Data: {cal.source}; window {cal.start} to {cal.end}, {cal.n_prices} daily closes.",
        f"# Risk input r_t: {rdesc}; {cal.n_risk} days.",
        *state_shock_header_lines(cal, states_file, shock_file, loss_desc),
    ]
    if cal.adv is not None:
        lines.append(
            f"# ADV (mean close x volume, currency per day): last {cal.adv_window} days {_num(cal.adv, 6)}; whole window {_num(cal.adv_full, 6)}."
        )
    else:
        lines.append("# ADV: not available (the data have no volumes).")
    if cal.trigger_notional is not None:
        lines.append(f"#   Trigger notional {_num(cal.trigger_notional, 6)} -> participation f = {_num(m.participation, 6)} of ADV.")
    if cal.sector_notional is not None:
        lines.append(f"#   Constrained-sector notional {_num(cal.sector_notional, 6)} -> turnover tau = {_num(m.turnover, 6)} days of ADV.")
    lines += [
        f"# Market: {m.describe()}.",
        *market_sources_lines(m, cal.market_sources),
        objective_header_line(cal),
        "",
        *state_shock_objective_toml(cal, states_file, shock_file),
        m.market_toml().rstrip("\n"),
        "",
        "[cap]",
        'kind = "manipulation_proof"',
        f'input = "{cal.risk_input}"',
        (f"window = {cal.window}" if cal.risk_input == "realized_variance" else f"lambda = {toml_float(cal.lam)}"),
        "",
    ]
    return "\n".join(lines)


def states_csv_text(cal: DataCalibration) -> str:
    """``vol_daily,weight`` rows at the grid points (daily vol decimal, probability mass)."""
    return "vol_daily,weight\n" + "".join(f"{float(v)!r},{float(w)!r}\n" for v, w in zip(cal.grid, cal.weights))


def shock_csv_text(cal: DataCalibration) -> str:
    """``y`` rows, one standardised close-out loss per row (positive = loss), in date order."""
    return "y\n" + "".join(f"{float(v)!r}\n" for v in cal.losses)


def design_file_set(out: str | Path) -> dict:
    """The three paths a design config ``out`` (.toml) is written as: config, ``<stem>.states.csv``, ``<stem>.shock.csv``."""
    out = Path(out)
    if out.suffix.lower() != ".toml":
        raise InputError(f"--out must name a .toml file, got {str(out)!r}.")
    return {"config": out, "states": out.with_name(out.stem + ".states.csv"), "shock": out.with_name(out.stem + ".shock.csv")}


def write_design_config(cal: DataCalibration, out: str | Path, config_text=None) -> dict:
    """Write ``out`` (the TOML) and, next to it, ``<stem>.states.csv`` and ``<stem>.shock.csv``, each atomically.

    The CSVs are written first, so the config never points at a missing file. Returns the three paths.
    ``config_text(cal, states_name, shock_name) -> str`` writes the TOML (default :func:`design_config_text`);
    ``cal`` needs ``grid``, ``weights`` and ``losses`` for the CSVs.
    """
    paths = design_file_set(out)
    text = (config_text or design_config_text)(cal, paths["states"].name, paths["shock"].name)
    atomic_write_text(paths["states"], states_csv_text(cal))
    atomic_write_text(paths["shock"], shock_csv_text(cal))
    atomic_write_text(paths["config"], text)
    return paths
