"""Portfolio design inputs from real multi-asset data, and the portfolio design config they make
(Nicolai 2026, Sections 5, 6.5, Appendix C (75)-(77), D.5-D.6 (85)-(93)).

From the daily closes of several contracts -- the S&P 500 and NASDAQ Composite indices shipped with ``arch``
(``arch.data.sp500``, ``arch.data.nasdaq``, 1999-2018, with volumes) and optionally WTI crude oil
(``arch.data.wti``, FRED's DCOILWTICO, 1986-2019, no volume), aligned on their common dates -- and the margined
portfolio's positions h (notional weights per contract, per unit of portfolio notional), this module estimates
every input of a ``[portfolio]`` design:

* the risk input r_t: the CCP's functional ``[portfolio.risk]`` (every kind of
  :data:`~margin_design.calibration.portfolio_risk.PORTFOLIO_RISK_KINDS`) evaluated by
  :func:`~margin_design.calibration.portfolio_risk.portfolio_risk_input` on the rolling windows of the last m daily
  returns, so the design's states are those of the same functional whose gradient gives d and s_f at load. The
  mark window ending on day t is ``P_j = 1 + sum_{k <= j} R_k`` (per unit notional, 1 at the window's start)
  with R_k the daily LOG returns of each contract, the convention of :mod:`.data` (a one-contract portfolio has
  ``calibrate data``'s risk input). r is the portfolio's daily variance (decimal^2), for VaR, ES and the scan
  its variance equivalent ``(Gamma / k)^2`` (:func:`~margin_design.calibration.portfolio_risk.value_per_vol`);
* the state grid and weights from sqrt(r_t) (:func:`.data.state_table`), and the empirical shock of (30):
  the portfolio's standardised forward close-out loss ``Y_t = -sum_i h_i (P_{i,t+H}/P_{i,t} - 1) / sqrt(H r_t)``
  (a static position h held over the margin period of risk H days, :func:`.data.standardized_losses`);
* the return correlation rho (``numpy.corrcoef`` of the daily log returns over the window) and each contract's
  daily vol (sample sd of its daily log returns, decimal);
* ADV_i = mean close x volume (currency per day) for contracts with volumes; WTI has none, so its ADV is not
  estimated: turnover and participation are read in each contract's OWN ADV units (as for the indices), which
  needs no ADV, and currency inputs (``trigger_notional``, ``sector_notional``) are refused;
* per-contract impact alpha_i (75) from the single-contract calibration
  (:func:`~margin_design.calibration.cap.calibrate_market`): the same elasticity, participation f and impact
  constant k for every contract, alpha_i = delta_i(f)/f with delta_i(f) = k_i sqrt(f) (65). ``alpha_scaling =
  'vol'`` scales k_i = k sigma_i / sigma_1 by each contract's daily vol relative to the first: the square-root
  impact law, impact = Y sigma sqrt(Q/V) with Y of order one across markets (Toth, Lemperiere, Deremble, de
  Lataillade, Kockelkoren and Bouchaud 2011, "Anomalous price impact and the critical nature of liquidity in
  financial markets", Phys. Rev. X 1, 021006; Almgren, Thum, Hauptmann and Li 2005, "Direct estimation of equity
  market impact", Risk 18(7)). Default 'none': D.6's A = alpha [[1, rho], [rho, 1]];
* the impact matrix A: ``'correlation'`` (default) A_ij = sqrt(alpha_i alpha_j) rho_ij
  (:func:`~margin_design.calibration.portfolio_risk.correlation_impact`), or ``'diagonal'`` A = diag(alpha_i);
* the liquidation vector B (26) by (76) contract by contract
  (:func:`~margin_design.calibration.portfolio_risk.liquidation_from_elasticity`): the constrained sector holds
  tau ADV-days in total (``turnover``; or ``sector_notional`` currency, tau_i = X / ADV_i), split across contracts
  by |w_i| / ||w||_1 and signed by w_i, with w its weights (default w = h: it holds the margined portfolio, as
  D.6's sector "keeps portfolio weights"). So x_i = tau_i w_i / ||w||_1 ADV-days of contract i and
  B_i = epsilon x_i / m (a short is bought back, B_i < 0). With h = w = (1/2, 1/2) this is D.6's
  B = (c/2)(1, 1) with c = epsilon tau / m, the single-asset benchmark's c_eff.

:func:`write_portfolio_config` writes the design config (TOML with a comment header recording every estimate and
the command), its state table and shock CSVs, atomically as a set (:func:`.data.write_design_config`). d and s_f are
not written: the design layer computes them from ``[portfolio.risk]`` by JAX at load. Output is deterministic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from margin_design.units import SQRT_252
from margin_design.display import Displayable, text_block
from margin_design.errors import InputError

from ._checks import check_range, to_py
from .cap import calibrate_market, toml_float
from .data import (
    MARKET_INPUTS,
    PriceSeries,
    ObjectiveSettings,
    average_daily_value,
    load_sp500,
    loss_summary,
    market_input_sources,
    market_sources_lines,
    objective_header_line,
    require_losses,
    select_window,
    standardized_losses,
    state_shock_header_lines,
    state_shock_objective_toml,
    state_table,
    write_design_config,
)

__all__ = [
    "DATASETS",
    "ALPHA_SCALINGS",
    "IMPACT_MODELS",
    "CAP_DIRECTIONS",
    "MAX_WINDOW_DAYS",
    "PricePanel",
    "load_nasdaq",
    "load_wti",
    "align_series",
    "load_panel",
    "rolling_mark_windows",
    "portfolio_risk_history",
    "sector_holdings",
    "PortfolioCalibration",
    "calibrate_portfolio",
    "portfolio_config_text",
    "benchmark_caps",
    "cap_summary",
    "load_cap_summary",
    "write_portfolio_config",
]

#: Bundled multi-asset data sets: name -> contracts (WTI is added with ``with_wti``).
DATASETS = {"sp500-nasdaq": ("SP500", "NASDAQ"), "sp500": ("SP500",)}
#: How alpha differs across contracts: 'none' (the same alpha (75) for all) or 'vol' (k scaled by daily vol).
ALPHA_SCALINGS = ("none", "vol")
#: Impact models for A: 'correlation' (A_ij = sqrt(alpha_i alpha_j) rho_ij) or 'diagonal' (no cross-impact).
IMPACT_MODELS = ("correlation", "diagonal")
#: The design's cap over every two-period round trip ('all', Lemma 10) or the paper's (88) along B ('liquidation').
CAP_DIRECTIONS = ("all", "liquidation")
#: Longest risk window in days (ten trading years; the design config's bound on windows).
MAX_WINDOW_DAYS = 2520
#: Windows evaluated per JAX call when building the r history (bounds memory for long windows).
_CHUNK = 2048
_VAR_KINDS = ("variance", "realized_variance", "ewma")
_LAMBDA_KINDS = ("ewma", "fhs_var", "fhs_es")
_LEVEL_KINDS = ("hs_var", "hs_es", "fhs_var", "fhs_es")
_HORIZON_KINDS = ("hs_var", "hs_es", "fhs_var", "fhs_es", "scan")


def _num(x, digits: int = 6) -> str:
    return format(float(x), f".{digits}g")


def _vec(x, digits: int = 6) -> str:
    return "[" + ", ".join(_num(v, digits) for v in np.atleast_1d(x)) + "]"


# ----------------------------------------------------------------------------------------------
# Price data: several contracts on common dates
# ----------------------------------------------------------------------------------------------


def load_nasdaq() -> PriceSeries:
    """The NASDAQ Composite index daily close and volume shipped with ``arch`` (``arch.data.nasdaq``, 1999-2018)."""
    from arch.data import nasdaq

    frame = nasdaq.load()
    return PriceSeries(
        tuple(d.strftime("%Y-%m-%d") for d in frame.index),
        frame["Close"].to_numpy(dtype=float),
        frame["Volume"].to_numpy(dtype=float),
        "NASDAQ Composite index daily close and volume (arch.data.nasdaq; the volume is the listed shares' volume, "
        "so close x volume is a proxy scale for ADV)",
    )


def load_wti() -> PriceSeries:
    """WTI crude oil spot price, dollars per barrel (``arch.data.wti``, FRED DCOILWTICO, 1986-2019); no volume.

    FRED leaves holidays empty; those days are dropped.
    """
    from arch.data import wti

    frame = wti.load()
    price = frame["DCOILWTICO"].to_numpy(dtype=float)
    keep = np.isfinite(price)
    dates = tuple(d.strftime("%Y-%m-%d") for d, k in zip(frame.index, keep) if k)
    return PriceSeries(dates, price[keep], None, "WTI crude oil spot price (arch.data.wti, FRED DCOILWTICO; no volume)")


_LOADERS = {"SP500": load_sp500, "NASDAQ": load_nasdaq, "WTI": load_wti}


@dataclass(frozen=True)
class PricePanel:
    """Daily closes of K contracts on their common dates.

    ``assets`` (K names), ``dates`` (ISO strings), ``close`` (T, K) currency per unit, ``volume`` one array
    (T,) of units traded per day or None per contract, ``sources`` one description per contract, ``dropped``
    days in the window on which some but not all contracts have a close (left out by the alignment).
    """

    assets: tuple
    dates: tuple
    close: np.ndarray = field(repr=False)
    volume: tuple = field(repr=False)
    sources: tuple = ()
    dropped: int = 0

    def __len__(self) -> int:
        return len(self.dates)

    @property
    def k(self) -> int:
        return len(self.assets)


def align_series(named: dict) -> PricePanel:
    """Align {name: PriceSeries} on the dates every series has (intersection, in date order)."""
    names = tuple(named)
    common = set(named[names[0]].dates)
    every = set(named[names[0]].dates)
    for n in names[1:]:
        common &= set(named[n].dates)
        every |= set(named[n].dates)
    dates = tuple(sorted(common))
    close, volume = [], []
    for n in names:
        s = named[n]
        pos = {d: i for i, d in enumerate(s.dates)}
        idx = np.asarray([pos[d] for d in dates], dtype=int)
        close.append(s.close[idx])
        volume.append(None if s.volume is None else s.volume[idx])
    c = np.column_stack(close) if dates else np.empty((0, len(names)))
    return PricePanel(names, dates, c, tuple(volume), tuple(named[n].source for n in names), len(every) - len(common))


def load_panel(dataset: str = "sp500-nasdaq", with_wti: bool = False, start: str | None = None, end: str | None = None) -> PricePanel:
    """The bundled data set's contracts (plus WTI if ``with_wti``), each cut to ``start <= date <= end`` and aligned."""
    if dataset not in DATASETS:
        raise InputError(f"--dataset must be one of {', '.join(DATASETS)}, got {dataset!r}.")
    names = DATASETS[dataset] + (("WTI",) if with_wti else ())
    named = {}
    for n in names:
        full = _LOADERS[n]()
        cut = select_window(full, start, end)
        if len(cut) == 0:
            flag = "--with-wti: " if n == "WTI" else ""
            raise InputError(
                f"{flag}{n} has no closes in the window {start or 'first date'} to {end or 'last date'} "
                f"(its data run from {full.dates[0]} to {full.dates[-1]})."
            )
        named[n] = cut
    panel = align_series(named)
    if len(panel) < 2:
        raise InputError(
            f"{', '.join(names)} have {len(panel)} common dates in the window {start or 'first date'} to {end or 'last date'}; "
            "widen --start/--end."
        )
    return panel


# ----------------------------------------------------------------------------------------------
# The portfolio risk input r_t by the CCP's functional over rolling windows
# ----------------------------------------------------------------------------------------------


def rolling_mark_windows(returns, window: int) -> np.ndarray:
    """Mark windows (n - m + 1, m + 1, K) from daily returns (n, K): ``P_j = 1 + sum_{k <= j} R_k``, P_0 = 1.

    Row w holds the window of returns w .. w + m - 1, per unit notional (decimal), 1 at the window's start.
    """
    R = np.asarray(returns, dtype=float)
    m = int(window)
    if R.ndim != 2 or R.shape[0] < m:
        return np.empty((0, m + 1, R.shape[-1] if R.ndim == 2 else 1))
    win = np.lib.stride_tricks.sliding_window_view(R, m, axis=0)  # (n - m + 1, K, m)
    win = np.swapaxes(win, 1, 2)
    zeros = np.zeros((win.shape[0], 1, win.shape[2]))
    return 1.0 + np.concatenate([zeros, np.cumsum(win, axis=1)], axis=1)


def portfolio_risk_history(close, spec) -> np.ndarray:
    """r_t aligned with the closes (T,): the functional ``spec`` on the last m daily log returns up to day t.

    ``close`` (T, K) daily closes; ``spec`` a :class:`~margin_design.calibration.portfolio_risk.PortfolioRisk`.
    r_t (decimal^2, variance equivalent for VaR/ES/scan) is NaN for t < m, where the window is not yet full.
    """
    from .portfolio_risk import portfolio_risk_input

    c = np.asarray(close, dtype=float)
    R = np.diff(np.log(c), axis=0)
    m = spec.window
    out = np.full(c.shape[0], np.nan)
    n = R.shape[0] - m + 1
    for lo in range(0, max(n, 0), _CHUNK):
        hi = min(n, lo + _CHUNK)
        marks = rolling_mark_windows(R[lo : hi + m - 1], m)
        out[m + lo : m + hi] = portfolio_risk_input(spec, marks)
    return out


# ----------------------------------------------------------------------------------------------
# The constrained sector
# ----------------------------------------------------------------------------------------------


def sector_holdings(weights, turnover) -> np.ndarray:
    """x_i = tau_i w_i / ||w||_1: the constrained sector's holdings in ADV-days of each contract (signed).

    ``weights`` w (K,) the sector's portfolio weights (notional, signed); ``turnover`` tau_i (scalar or (K,)) its
    total position in days of contract i's ADV (the turnover ratio tau = XP/ADV of (76) read in contract i's ADV).
    """
    w = np.atleast_1d(np.asarray(weights, dtype=float))
    norm = float(np.sum(np.abs(w)))
    if not norm > 0:
        raise InputError("--sector-positions must not be all zero.")
    return np.asarray(turnover, dtype=float) * w / norm


# ----------------------------------------------------------------------------------------------
# The calibration
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class PortfolioCalibration(Displayable):
    """Everything estimated for one portfolio design config (see :func:`calibrate_portfolio`).

    :meth:`summary` (and the ``repr``) lists the data, the risk functional, the state grid and the impact and
    liquidation estimates; :meth:`to_frame` gives the state grid, :meth:`contracts_frame` one row per contract.

    Units: vols daily (decimal), r daily variance of the portfolio return (decimal^2), Y dimensionless, ADV
    currency per day, participation f and holdings x in ADV units of each contract, alpha (75) and A decimal
    price change per unit of ADV traded, B (76) ADV units per unit margin ratio, margin m a decimal ratio.
    The state and shock fields have the names of :class:`~margin_design.calibration.data.DataCalibration`.
    """

    dataset: str
    panel: PricePanel = field(repr=False)
    spec: object = None  # PortfolioRisk
    horizon_days: int = 2
    position: str = "long"
    n_windows: int = 0
    n_zero: int = 0
    # states and shock (as in DataCalibration)
    n_risk: int = 0
    vol_quantile_levels: tuple = (0.01, 0.99)
    vol_quantiles: dict = field(default_factory=dict)
    grid: np.ndarray = field(repr=False, default=None)
    spacing: str = "vol"
    weights: np.ndarray = field(repr=False, default=None)
    share_below: float = 0.0
    share_above: float = 0.0
    losses: np.ndarray = field(repr=False, default=None)
    loss_stats: dict = field(default_factory=dict)
    bandwidth: float = 0.0
    tail: dict = field(default_factory=dict)
    # returns
    correlation: np.ndarray = field(repr=False, default=None)
    vols: np.ndarray = field(repr=False, default=None)
    # liquidity
    adv: tuple = ()
    adv_full: tuple = ()
    adv_window: int = 20
    # market
    elasticity: float = 0.225
    margin: float = 0.05
    inventory_penalty: float = 0.0
    alpha_scaling: str = "none"
    vol_ratio: np.ndarray = field(repr=False, default=None)
    markets: tuple = ()  # MarketCalibration per contract: the whole sector (tau_i) in contract i
    trigger_notional: float | None = None
    sector_notional: float | None = None
    sector_weights: np.ndarray = field(repr=False, default=None)
    holdings: np.ndarray = field(repr=False, default=None)
    impact_model: str = "correlation"
    cap_directions: str = "all"
    #: Where each market input came from (:func:`~margin_design.calibration.data.market_input_sources`).
    market_sources: dict = field(default_factory=dict)
    impact: np.ndarray = field(repr=False, default=None)
    liquidation: np.ndarray = field(repr=False, default=None)
    objective: ObjectiveSettings = field(default_factory=ObjectiveSettings)

    @property
    def assets(self) -> tuple:
        return self.panel.assets

    @property
    def positions(self) -> np.ndarray:
        """h (K,): notional weight of each contract per unit of portfolio notional."""
        return self.spec.h

    @property
    def start(self) -> str:
        return self.panel.dates[0]

    @property
    def end(self) -> str:
        return self.panel.dates[-1]

    @property
    def n_prices(self) -> int:
        return len(self.panel)

    @property
    def vol_min(self) -> float:
        return float(self.grid[0])

    @property
    def vol_max(self) -> float:
        return float(self.grid[-1])

    @property
    def alphas(self) -> np.ndarray:
        """alpha_i (75): decimal price change per unit of contract i's ADV traded."""
        return np.array([float(m.alpha) for m in self.markets])

    @property
    def turnovers(self) -> np.ndarray:
        """tau_i: the sector's total position in days of contract i's ADV (the single-asset benchmark's turnover)."""
        return np.array([float(m.turnover) for m in self.markets])

    @property
    def c_benchmark(self) -> np.ndarray:
        """c_i = epsilon tau_i / m (76): the single-asset benchmark's c_eff, the whole sector in contract i (D.6's c)."""
        return np.array([float(m.c_eff) for m in self.markets])

    def risk_table(self) -> dict:
        """The ``[portfolio.risk]`` table: the functional and its parameters (only the keys its kind uses)."""
        s = self.spec
        t = {"kind": s.kind, "positions": [float(v) for v in s.positions], "window": int(s.window)}
        if s.kind in _LAMBDA_KINDS:
            t["lambda"] = float(s.lam)
        if s.kind in _LEVEL_KINDS:
            t["level"] = float(s.level)
        if s.kind in _HORIZON_KINDS:
            t["horizon_days"] = float(s.horizon_days)
        return t

    def to_dict(self) -> dict:
        """Every estimate (JSON-ready; the loss sample is summarised, not listed)."""
        contracts = []
        for i, name in enumerate(self.assets):
            m = self.markets[i]
            contracts.append(
                {
                    "asset": name,
                    "source": self.panel.sources[i],
                    "position": float(self.positions[i]),
                    "daily_vol": float(self.vols[i]),
                    "adv": self.adv[i],
                    "adv_full_window": self.adv_full[i],
                    "participation": float(m.participation),
                    "impact_k_bps": None if m.impact_k is None else float(m.impact_k),
                    "distortion_bps": float(m.distortion_bps),
                    "alpha": float(m.alpha),
                    "sector_weight": float(self.sector_weights[i]),
                    "turnover": float(m.turnover),
                    "holdings": float(self.holdings[i]),
                    "liquidation": float(self.liquidation[i]),
                    "c_benchmark": float(m.c_eff),
                }
            )
        return {
            "data": {
                "dataset": self.dataset,
                "assets": list(self.assets),
                "start": self.start,
                "end": self.end,
                "n_prices": self.n_prices,
                "dropped_days": self.panel.dropped,
            },
            "risk": {**self.risk_table(), "describe": self.spec.describe(), "n_windows": self.n_windows, "n_days": self.n_risk,
                     "zero_days": self.n_zero, "daily_vol_quantiles": self.vol_quantiles},
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
            "shock": {"horizon_days": self.horizon_days, "position": self.position, **self.loss_stats, "bandwidth": self.bandwidth, "tail": self.tail},
            "returns": {"correlation": to_py(self.correlation), "daily_vol": to_py(self.vols)},
            "market": {
                "elasticity": float(self.elasticity),
                "margin": float(self.margin),
                "inventory_penalty": float(self.inventory_penalty),
                "alpha_scaling": self.alpha_scaling,
                "impact_model": self.impact_model,
                "cap_directions": self.cap_directions,
                "adv_window_days": self.adv_window,
                "trigger_notional": self.trigger_notional,
                "sector_notional": self.sector_notional,
                "contracts": contracts,
                "impact": to_py(self.impact),
                "liquidation": to_py(self.liquidation),
                "sources": dict(self.market_sources),
            },
        }

    def to_frame(self):
        """The solver's states as a pandas DataFrame, one row per grid point: ``vol_daily`` (daily vol of the
        margined portfolio's return, decimal), ``vol_annual`` (decimal), ``r`` (daily variance) and ``weight``
        (share of the windows nearest the point), all float64."""
        from .data import _states_frame

        return _states_frame(self.grid, self.weights)

    def contracts_frame(self):
        """One row per contract (index ``asset``), the per-contract estimates of :meth:`to_dict`: ``position`` h_i
        (notional weight), ``daily_vol`` (decimal), ``adv`` (currency per day; NaN without volumes),
        ``participation`` f_i (fraction of ADV), ``distortion_bps`` (bp), ``alpha`` (75) (price change per ADV),
        ``sector_weight``, ``turnover`` tau_i (days of ADV), ``holdings`` x_i (ADV), ``liquidation`` B_i (26) (ADV per
        unit margin ratio) and ``c_benchmark`` (the single-asset c_eff (76))."""
        import pandas as pd

        rows = self.to_dict()["market"]["contracts"]
        cols = ["asset", "position", "daily_vol", "adv", "participation", "distortion_bps", "alpha", "sector_weight",
                "turnover", "holdings", "liquidation", "c_benchmark"]
        frame = pd.DataFrame([{c: r[c] for c in cols} for r in rows], columns=cols).set_index("asset")
        return frame.astype("float64")

    def _display(self) -> tuple[str, list[tuple[str, str]]]:
        from .data import _state_shock_items

        def vec(a):
            return "[" + ", ".join(format(float(v), ".4g") for v in np.ravel(a)) + "]"

        return f"Portfolio design inputs from {self.dataset} ({', '.join(self.assets)})", _state_shock_items(self) + [
            ("risk functional", self.spec.describe()),
            ("shock", f"{self.loss_stats['n']} standardised {self.horizon_days}-day losses ({self.position} position)"),
            ("impact A", f"{self.impact_model}: [{', '.join(vec(row) for row in np.atleast_2d(self.impact))}] (price change per ADV traded)"),
            ("liquidation B", f"{vec(self.liquidation)} (ADV per unit margin ratio, (26))"),
            ("alpha per contract", vec(self.alphas)),
        ]

    def summary(self) -> str:
        """The data, risk functional, state grid and the impact and liquidation estimates (text, one line each)."""
        return text_block(*self._display())


def _check_vector(flag: str, values, k: int, names) -> np.ndarray:
    v = np.atleast_1d(np.asarray(values, dtype=float))
    if v.size != k:
        raise InputError(f"{flag} has {v.size} weight(s) but the data have {k} contract(s) ({', '.join(names)}); give one per contract.")
    if not np.all(np.isfinite(v)):
        raise InputError(f"{flag} must be finite numbers, got {', '.join(format(x, 'g') for x in v)}.")
    if not np.any(v != 0.0):
        raise InputError(f"{flag} are all zero; give at least one non-zero weight.")
    return v


def _check_loss_scale(y, spec) -> None:
    """Refuse standardised losses the design loader would refuse (|Y| above its bound): r_t is then near zero on
    some days (a one-return variance, a tiny window), so Y = loss / sqrt(H r_t) is not a usable shock sample."""
    from margin_design.design.config import MAX_STANDARDISED_SHOCK

    worst = float(np.max(np.abs(y)))
    if worst > MAX_STANDARDISED_SHOCK:
        raise InputError(
            f"--risk-input {spec.kind} with --window {spec.window} gives standardised losses up to {worst:.4g} "
            f"(the design refuses |Y| above {MAX_STANDARDISED_SHOCK:g}): r_t is near zero on some days (a window too short, or a "
            "functional that nets a hedged portfolio's legs, as the joint scan does), so loss / sqrt(H r_t) explodes; use a longer "
            "--window or another --risk-input (realized_variance, ewma)."
        )


def calibrate_portfolio(
    panel: PricePanel,
    positions,
    *,
    dataset: str = "sp500-nasdaq",
    kind: str = "realized_variance",
    window: int | None = None,
    lam: float = 0.94,
    level: float = 0.99,
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
    sector_positions=None,
    alpha_scaling: str = "none",
    impact_model: str = "correlation",
    cap_directions: str = "all",
    adv_window: int = 20,
    objective: ObjectiveSettings | None = None,
) -> PortfolioCalibration:
    """Estimate a portfolio design's inputs from the panel's closes (see the module docstring).

    ``positions`` h (K notional weights); ``kind``, ``window`` (days; None: the kind's default), ``lam``,
    ``level`` the functional of ``[portfolio.risk]``; ``horizon_days`` H the margin period of risk (days);
    ``position`` whose loss is standardised ('long': the holder of h). Market inputs as in
    :func:`~margin_design.calibration.data.calibrate_from_prices`, per contract in its own ADV units;
    ``sector_positions`` w the constrained sector's weights (None: h); ``alpha_scaling`` and ``impact_model``
    see :data:`ALPHA_SCALINGS`, :data:`IMPACT_MODELS`. Invalid inputs raise a one-sentence InputError.
    """
    from .portfolio_risk import PortfolioRisk, correlation_impact, diagonal_impact, liquidation_from_elasticity

    objective = objective or ObjectiveSettings()
    objective.validate()
    sources = market_input_sources(
        elasticity=elasticity, turnover=turnover, participation=participation, margin=margin, impact_k=impact_k,
        distortion=distortion, inventory_penalty=inventory_penalty, sector_notional=sector_notional, trigger_notional=trigger_notional,
    )
    elasticity = MARKET_INPUTS["elasticity"][2] if elasticity is None else elasticity
    margin = MARKET_INPUTS["margin"][2] if margin is None else margin
    inventory_penalty = MARKET_INPUTS["inventory_penalty"][2] if inventory_penalty is None else inventory_penalty
    k, names = panel.k, panel.assets
    h = _check_vector("--positions", positions, k, names)
    w = h if sector_positions is None else _check_vector("--sector-positions", sector_positions, k, names)
    if alpha_scaling not in ALPHA_SCALINGS:
        raise InputError(f"--alpha-scaling must be one of {', '.join(ALPHA_SCALINGS)}, got {alpha_scaling!r}.")
    if impact_model not in IMPACT_MODELS:
        raise InputError(f"--impact-model must be one of {', '.join(IMPACT_MODELS)}, got {impact_model!r}.")
    if cap_directions not in CAP_DIRECTIONS:
        raise InputError(f"--cap-directions must be one of {', '.join(CAP_DIRECTIONS)}, got {cap_directions!r}.")
    if turnover is not None and sector_notional is not None:
        raise InputError("give either --turnover or --sector-notional, not both.")
    if participation is not None and trigger_notional is not None:
        raise InputError("give either --participation or --trigger-notional, not both.")
    no_volume = [n for n, v in zip(names, panel.volume) if v is None or not np.any(v > 0)]
    if (trigger_notional is not None or sector_notional is not None) and no_volume:
        flag = "--trigger-notional" if trigger_notional is not None else "--sector-notional"
        raise InputError(
            f"{flag} is in currency and needs every contract's ADV, but {', '.join(no_volume)} has no volume; "
            "give --participation / --turnover in each contract's own ADV units instead."
        )
    spec = PortfolioRisk(
        kind=kind,
        positions=tuple(float(x) for x in h),
        window=window,
        lam=lam,
        level=level,
        horizon_days=float(horizon_days) if kind in _HORIZON_KINDS else 1.0,
    )

    close = panel.close
    r = portfolio_risk_history(close, spec)
    defined = np.isfinite(r)
    positive = defined & (r > 0)
    vol = np.sqrt(r[positive])
    y = standardized_losses(close, r, horizon_days, position, weights=h)
    require_losses(y, panel.dates[0], panel.dates[-1])
    _check_loss_scale(y, spec)
    states = state_table(vol, points, vol_quantiles, spacing)

    R = np.diff(np.log(close), axis=0)
    if k > 1:
        C = np.corrcoef(R, rowvar=False)
        C = 0.5 * (C + C.T)
        np.fill_diagonal(C, 1.0)
    else:
        C = np.ones((1, 1))
    vols = np.std(R, axis=0, ddof=1)
    if not np.all(vols > 0):
        i = int(np.argmin(vols > 0))
        raise InputError(f"{names[i]} has no price changes in the window {panel.dates[0]} to {panel.dates[-1]}, so its daily vol is zero.")

    adv, adv_full = [], []
    for i in range(k):
        v = panel.volume[i]
        if v is None or not np.any(v > 0):
            adv.append(None)
            adv_full.append(None)
        else:
            adv.append(average_daily_value(close[:, i], v, adv_window))
            adv_full.append(average_daily_value(close[:, i], v))

    if trigger_notional is not None:
        check_range("--trigger-notional", trigger_notional, low=0.0, what="positive (currency)")
        f = np.array([trigger_notional / a for a in adv])
        if np.any(f > 1.0):
            i = int(np.argmax(f > 1.0))
            raise InputError(f"--trigger-notional {trigger_notional:g} is {f[i]:.3g} days of {names[i]}'s ADV; a trigger is at most one day's ADV (f <= 1).")
    else:
        f = np.full(k, 0.01 if participation is None else float(participation))
    if sector_notional is not None:
        check_range("--sector-notional", sector_notional, low=0.0, what="positive (currency)")
        tau = np.array([sector_notional / a for a in adv])
    else:
        tau = np.full(k, 1.0 if turnover is None else float(turnover))
    ratio = vols / vols[0] if alpha_scaling == "vol" else np.ones(k)
    markets = []
    for i in range(k):
        kw = {"distortion": float(distortion) * ratio[i]} if distortion is not None else {
            "impact_k": (200.0 if impact_k is None else float(impact_k)) * ratio[i]
        }
        markets.append(calibrate_market(elasticity, tau[i], f[i], margin, inventory_penalty=inventory_penalty, **kw))
    alphas = np.array([float(m.alpha) for m in markets])
    x = sector_holdings(w, tau)
    B = liquidation_from_elasticity(x, elasticity, margin)
    A = correlation_impact(alphas, C) if impact_model == "correlation" else diagonal_impact(alphas)

    return PortfolioCalibration(
        dataset=dataset,
        panel=panel,
        spec=spec,
        horizon_days=int(horizon_days),
        position=position,
        n_windows=int(np.sum(defined)),
        n_zero=int(np.sum(defined & (r == 0))),
        **states,
        **loss_summary(y),
        correlation=C,
        vols=vols,
        adv=tuple(adv),
        adv_full=tuple(adv_full),
        adv_window=int(adv_window),
        elasticity=float(elasticity),
        margin=float(margin),
        inventory_penalty=float(inventory_penalty),
        alpha_scaling=alpha_scaling,
        vol_ratio=ratio,
        markets=tuple(markets),
        trigger_notional=trigger_notional,
        sector_notional=sector_notional,
        sector_weights=w,
        holdings=x,
        impact_model=impact_model,
        cap_directions=cap_directions,
        market_sources=sources,
        impact=A,
        liquidation=B,
        objective=objective,
    )


# ----------------------------------------------------------------------------------------------
# The design config
# ----------------------------------------------------------------------------------------------


def _toml_list(values) -> str:
    return "[" + ", ".join(toml_float(v) for v in np.atleast_1d(values)) + "]"


def _risk_desc(cal: PortfolioCalibration) -> str:
    s = cal.spec
    if s.is_variance:
        what = "r_t = the functional's value (a variance)"
    else:
        from .portfolio_risk import value_per_vol

        what = (
            f"r_t = (max(Gamma_t, 0) / k)^2, its variance equivalent, k = {_num(value_per_vol(s))} per unit portfolio vol "
            f"({cal.n_zero} windows with Gamma <= 0 give r = 0 and are left out of the states and shocks)"
        )
    return (
        f"# Risk input r_t: [portfolio.risk] {s.describe()}; evaluated by portfolio_risk_input on {cal.n_windows} rolling windows of the "
        f"last {s.window} daily log returns (marks 1 + cumulative return, per unit notional); {what}; {cal.n_risk} days with r > 0."
    )


def _sector_desc(cal: PortfolioCalibration) -> str:
    w = cal.sector_weights
    same = np.array_equal(w, cal.positions)
    who = "the margined portfolio (w = h)" if same else f"weights w = {_vec(w)} (not h)"
    if cal.sector_notional is not None:
        size = f"X = {_num(cal.sector_notional)} currency, tau_i = X / ADV_i = {_vec(cal.turnovers)} days of each contract's ADV"
    else:
        size = f"tau = {_num(cal.turnovers[0])} days of each contract's own ADV"
    return (
        f"# Constrained sector: holds {who}, {size}; x_i = tau_i w_i / ||w||_1 = {_vec(cal.holdings)} ADV-days; "
        f"B_i = epsilon x_i / m (76) = {_vec(cal.liquidation)} ADV per unit margin ratio (26)."
    )


def portfolio_config_text(cal: PortfolioCalibration, states_file: str, shock_file: str, command: str | None = None, cap_lines=()) -> str:
    """The TOML text of the portfolio design config: a comment header (the command, the data, every estimate and the
    ``cap_lines`` computed at load), then [grid] [states] [shock] [objective] [market] [cap] [portfolio] [portfolio.risk]."""
    k = cal.panel.k
    h = cal.positions
    loss_desc = {
        "long": "-sum_i h_i (P_i[t+h]/P_i[t] - 1), the holder of the margined portfolio h",
        "short": "+sum_i h_i (P_i[t+h]/P_i[t] - 1), the counterparty of the margined portfolio",
        "both": "the holder's and the counterparty's losses pooled",
    }[cal.position]
    lines = ["# Portfolio design config written by `margin-design calibrate portfolio` (margin_design.calibration.portfolio_data)."]
    if command:
        lines.append(f"# Command: {command}")
    lines += [
        "# Model: Nicolai (2026) Sections 5, 6.5, D.5-D.6: state r = variance of the margined portfolio's daily return; losses D = sqrt(horizon_days * r) * Y (30);",
        "#   slope cap with d and s_f (c_r = 2 sqrt(r) s_f) computed from [portfolio.risk] by JAX at load: over every two-period round trip"
        " (Lemma 10, the design's default) or (87)-(88) along B (cap_directions = \"liquidation\"); liquidation term (86) with ||AB||^2.",
        "# Units: per unit portfolio notional (prices 1); margins are decimal ratios; r = daily variance; vols daily, decimal; A per unit of ADV traded; B in ADV per unit margin ratio.",
    ]
    for name, src in zip(cal.assets, cal.panel.sources):
        lines.append(f"# Data {name}: {src}.")
    dropped = f"; {cal.panel.dropped} days on which only some contracts have a close are left out" if k > 1 else ""
    lines.append(f"# Window: {cal.start} to {cal.end}, {cal.n_prices} common daily closes{dropped}.")
    lines.append(f"# Positions h (notional weights per unit of portfolio notional): {', '.join(f'{n} {_num(x)}' for n, x in zip(cal.assets, h))}.")
    lines.append(_risk_desc(cal))
    lines += state_shock_header_lines(cal, states_file, shock_file, loss_desc, risk_name="sqrt(r_t) of the portfolio")
    vols = ", ".join(f"{n} {_num(v, 4)} (annualised {_num(SQRT_252 * v, 4)})" for n, v in zip(cal.assets, cal.vols))
    lines.append(f"# Daily vol (sd of daily log returns over the window): {vols}.")
    if k > 1:
        rows = "; ".join(_vec(row, 6) for row in cal.correlation)
        lines.append(f"# Return correlation rho (numpy.corrcoef of daily log returns over the window): [{rows}].")
    for i, n in enumerate(cal.assets):
        if cal.adv[i] is None:
            lines.append(
                f"# ADV {n}: not available ({n} has no volume in the data); tau and f are read in {n}'s own ADV units, like every contract's, "
                "so alpha and B need no ADV (currency inputs --trigger-notional / --sector-notional are refused)."
            )
        else:
            lines.append(
                f"# ADV {n} (mean close x volume, currency per day): last {cal.adv_window} days {_num(cal.adv[i])}; whole window {_num(cal.adv_full[i])}."
            )
    if cal.trigger_notional is not None:
        lines.append(f"#   Trigger notional {_num(cal.trigger_notional)} -> participation f_i = Q / ADV_i = {_vec([m.participation for m in cal.markets])}.")
    scaling = (
        "k_i = k sigma_i / sigma_1 (square-root impact law: Toth et al. 2011, Almgren et al. 2005), sigma ratios " + _vec(cal.vol_ratio)
        if cal.alpha_scaling == "vol"
        else "the same k for every contract"
    )
    per = "; ".join(
        f"{n}: f {_num(m.participation)}, delta {_num(m.distortion_bps)} bp, alpha {_num(m.alpha)}" for n, m in zip(cal.assets, cal.markets)
    )
    kdesc = "given delta" if cal.markets[0].impact_k is None else f"k = {_num(cal.markets[0].impact_k)} bp x sqrt(f) for {cal.assets[0]}"
    lines.append(f"# Impact (65), (75) per contract ({kdesc}; {scaling}): {per}.")
    if cal.impact_model == "correlation":
        lines.append("# Impact matrix A = sqrt(alpha_i alpha_j) rho_ij (correlation model: impact correlated like returns; Assumption 6).")
    else:
        lines.append("# Impact matrix A = diag(alpha_i) (no cross-impact).")
    lines.append(_sector_desc(cal))
    m0 = cal.markets[0]
    lines.append(
        f"# Market: epsilon_XM = {cal.elasticity:g}, m = {cal.margin:g}, kappa = {cal.inventory_penalty:g}; "
        f"single-asset benchmark (the whole sector in one contract) alpha_i c_i = {_vec(cal.alphas * cal.c_benchmark)} ({cal.assets[0]}: {m0.describe()})."
    )
    lines += market_sources_lines(None, cal.market_sources)
    lines += list(cap_lines)
    lines.append(objective_header_line(cal))
    lines.append("#   liquidation_weight is lambda_L of (86): it charges the price pressure ||AB||^2 (M - M_-)_+^2, not the flow c_eff^2 of (32).")
    lines.append("")
    lines += state_shock_objective_toml(cal, states_file, shock_file)
    lines += [
        "[market]",
        f"inventory_penalty = {toml_float(cal.inventory_penalty)}",
        "",
        "[cap]",
        'kind = "manipulation_proof"',
        "",
        "[portfolio]",
        "assets = [" + ", ".join(f'"{n}"' for n in cal.assets) + "]",
        "impact = [" + ", ".join(_toml_list(row) for row in cal.impact) + "]",
        f"liquidation = {_toml_list(cal.liquidation)}",
        *([f'cap_directions = "{cal.cap_directions}"'] if cal.cap_directions != "all" else []),
        "",
        "[portfolio.risk]",
    ]
    for key, value in cal.risk_table().items():
        if key == "kind":
            lines.append(f'kind = "{value}"')
        elif key == "positions":
            lines.append(f"positions = {_toml_list(value)}")
        elif key == "window":
            lines.append(f"window = {int(value)}")
        else:
            lines.append(f"{key} = {toml_float(value)}")
    lines.append("")
    return "\n".join(lines)


def benchmark_caps(cal: PortfolioCalibration) -> np.ndarray:
    """D.6's single-asset benchmark cap for each contract (dM/dsigma, margin ratio per unit of its daily vol).

    Contract i margined alone by the same functional (positions (1,)) with the whole constrained sector in it:
    A = [[alpha_i]], B = [c_i], c_i = epsilon tau_i / m (76), so the cap is (2 + kappa/alpha_i) / (s_f1 alpha_i c_i),
    the single-contract (16)-(18) with the functional's one-contract factor s_f1 (1/sqrt(m) for a realised variance:
    the cap of ``calibrate data``). The binding branch is the one with the largest s_f x psi, as in the design.
    """
    from .portfolio_risk import PortfolioRisk, trigger_and_sensitivity

    s = cal.spec
    one = PortfolioRisk(kind=s.kind, positions=(1.0,), window=s.window, lam=s.lam, level=s.level, horizon_days=s.horizon_days)
    _, _, details = trigger_and_sensitivity(one)
    out = []
    for a, c in zip(cal.alphas, cal.c_benchmark):
        product = details.cap_product([[a]], [c])
        out.append((2.0 + cal.inventory_penalty / a) / product if product > 0 else math.inf)
    return np.asarray(out)


def cap_summary(spec, cal: PortfolioCalibration | None = None) -> dict:
    """psi, ||AB||, s_f, d, the cap and each contract's single-contract cap of a loaded portfolio design.

    ``spec`` the design's :class:`~margin_design.design.portfolio.PortfolioSpec` (``load_problem(...).cap.portfolio``).
    Caps bound dM/dsigma (margin ratio per unit daily vol; None = no cap). ``single_contract_cap_vol`` (the
    design's): each contract alone with its own A_ii and B_i and the portfolio's s_f; ``cap_ratio`` the cap over it
    (< 1: tighter). With the calibration ``cal``: D.6's single-asset benchmark (:func:`benchmark_caps`) and the
    ratios psi / (alpha_i c_i) and ||AB|| / (alpha_i c_i) of (91).
    """
    kappa = 0.0 if cal is None else cal.inventory_penalty
    out = spec.to_dict(kappa)
    cap = out["cap_vol"]
    out["cap_ratio"] = [None if (cap is None or c is None) else cap / c for c in out["single_contract_cap_vol"]]
    out["alignment_ratio"] = out["psi"] / out["price_pressure"] if out["price_pressure"] > 0 else None
    if cal is not None:
        xi = cal.alphas * cal.c_benchmark
        bench = benchmark_caps(cal)
        out["benchmark_alpha_c"] = [float(x) for x in xi]
        out["psi_over_benchmark"] = [float(out["psi"] / x) for x in xi]
        out["pressure_over_benchmark"] = [float(out["price_pressure"] / x) for x in xi]
        out["benchmark_cap_vol"] = [float(b) if math.isfinite(b) else None for b in bench]
        out["benchmark_ratio"] = [None if (cap is None or not math.isfinite(b)) else cap / float(b) for b in bench]
    return out


def _cap_text(value) -> str:
    return "none" if value is None else _num(value)


def cap_header_lines(summary: dict, assets) -> list[str]:
    """Comment lines recording the cap computed at load (see :func:`cap_summary`)."""

    def caps(values, ratios):
        return ", ".join(f"{n} {_cap_text(c)}" + ("" if r is None else f" (ratio {_num(r, 4)})") for n, c, r in zip(assets, values, ratios))

    lines = [
        f"# Cap at load (margin_design.design.load_problem of this file): d = {_vec(summary['trigger'])} ({summary['source']}); "
        f"s_f = {_num(summary['sensitivity'])}; psi = max(0, -d'AB) = {_num(summary['psi'])}; ||AB|| = {_num(summary['price_pressure'])}"
        + ("" if summary["alignment_ratio"] is None else f" (psi/||AB|| = {_num(summary['alignment_ratio'], 4)})")
        + f"; Phi = {_num(summary['phi'])} (Lemma 10).",
        f"#   cap dM/dsigma <= {_cap_text(summary['cap_vol'])} ({summary['cap_directions']} trade directions; every round trip: "
        f"{_cap_text(summary['cap_vol_all'])}, the paper's (88) along B: {_cap_text(summary['cap_vol_liquidation'])}; none = no cap).",
        f"#   Each contract alone (its A_ii and B_i, the same s_f): {caps(summary['single_contract_cap_vol'], summary['cap_ratio'])}.",
    ]
    if "benchmark_cap_vol" in summary:
        lines.append(
            f"#   D.6 single-asset benchmark (the whole sector in contract i, margined alone by the same functional): alpha_i c_i = "
            f"{_vec(summary['benchmark_alpha_c'], 4)}, psi/(alpha c) = {_vec(summary['psi_over_benchmark'], 4)}, ||AB||/(alpha c) = "
            f"{_vec(summary['pressure_over_benchmark'], 4)} (both (1 + rho)/sqrt(2) for D.6's h = w = (1/2, 1/2)); its cap {caps(summary['benchmark_cap_vol'], summary['benchmark_ratio'])}."
        )
    return lines


def load_cap_summary(config: str | Path, cal: PortfolioCalibration) -> dict:
    """Load a written portfolio config with :func:`margin_design.design.load_problem` and summarise its cap."""
    from margin_design.design import load_problem

    problem = load_problem(config)
    return cap_summary(problem.cap.portfolio, cal)


def write_portfolio_config(cal: PortfolioCalibration, out: str | Path, command: str | None = None) -> tuple[dict, dict]:
    """Write the portfolio design config ``out`` (.toml), ``<stem>.states.csv`` and ``<stem>.shock.csv``.

    The set is first written to a temporary folder and loaded with ``load_problem`` (so d, s_f, psi and the cap
    come from the file as the solver will read it, and a config the loader refuses is never written); the header
    then records that cap and the set is written to ``out``, CSVs first, each file atomically
    (:func:`~margin_design.calibration.data.write_design_config`). Returns (paths, cap summary).
    """
    import tempfile

    from .data import design_file_set

    out = Path(out)
    design_file_set(out)  # --out must name a .toml file

    def text(lines):
        return lambda c, states, shock: portfolio_config_text(c, states, shock, command, lines)

    with tempfile.TemporaryDirectory(prefix="margin-design-portfolio-") as tmp:
        trial = write_design_config(cal, Path(tmp) / out.name, text(()))
        summary = load_cap_summary(trial["config"], cal)
    paths = write_design_config(cal, out, text(cap_header_lines(summary, cal.assets)))
    return paths, summary
