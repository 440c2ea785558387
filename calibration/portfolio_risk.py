"""Portfolio risk inputs, their trigger direction d and sensitivity c_r by JAX autodiff, and the impact matrix A and
liquidation vector B of portfolio margining (Nicolai 2026, Sections 4.2, 5 (23)-(29), 6.5 (46), D.5-D.6 (85)-(93)).

A CCP maps a window of sampled mark VECTORS and the margined portfolio's positions h into one number Gamma (25)
and posts M = g(Gamma). The slope cap (87)-(88), ``g'(r) c_r psi <= 2`` with ``psi = max{0, -d'AB}``, needs the
direction d of the last sampled mark vector that raises the input and the input's sensitivity c_r along d
(Assumption 7, (27)). This module computes both from the CCP's own functional.

Units (the project's conventions): marks are per unit notional, normalised to 1 at the start of the window; a
return R_j = P_j - P_{j-1} is a decimal price change per unit notional (additive, as in (2) and (23)); positions
h are the notional of each contract per unit of the margined portfolio's notional (weights: h = (1,) is one
contract, h = (1/2, 1/2) an equally weighted pair), so the portfolio's daily return h'R_j is per unit of its
notional and M is a margin ratio on that notional. The design state r is the VARIANCE of the portfolio's daily
return (decimal^2); sigma = sqrt(r). Impact A is a decimal price change per unit of ADV traded (each contract in
its own ADV units), B is ADV units traded per unit margin ratio, d is a unit K-vector (dimensionless).

Risk functionals (:class:`PortfolioRisk`, ``kind``), of the last ``window`` = m returns of a mark window P of
shape (m + 1, K), with y_j = h'R_j the portfolio return and L_j = -sqrt(H) y_j its loss (H = ``horizon_days``):

* ``variance``: Gamma = y_t^2 (the single-contract (4) with m = 1);
* ``realized_variance``: Gamma = (1/m) sum_j y_j^2;
* ``ewma``: Gamma = lambda^m s + (1 - lambda) sum_j lambda^(m-j) y_j^2, the recursion
  r_t = lambda r_{t-1} + (1 - lambda) y_t^2 run over the window from s = mean of y_j^2 over its first m - 1 returns;
* ``hs_var``, ``hs_es``: historical simulation of the losses L_j: with n = ceil(m (1 - p)) tail scenarios
  (at least 1), VaR is the n-th largest loss and ES the mean of the n largest (p = ``level``);
* ``fhs_var``, ``fhs_es``: filtered historical simulation (Barone-Adesi, Giannopoulos and Vosper 1999, "VaR
  without correlations for portfolios of derivative securities", J. Futures Markets 19(5); Hull and White 1998
  for the rescaling): every contract's returns are standardised by their own EWMA volatility,
  z_{j,i} = R_{j,i} / sigma_{j,i}, with sigma_{j+1,i}^2 = lambda sigma_{j,i}^2 + (1 - lambda) R_{j,i}^2 seeded with
  the mean of R_{j,i}^2 over the window's first m - 1 returns, and the standardised vectors are rescaled by the
  current vol forecast, R*_{j,i} = z_{j,i} sigma_{m+1,i} (whole vectors, so cross-correlations are kept as in
  BGV); VaR / ES as above of the losses -sqrt(H) h'R*_j. BGV filter with a fitted GARCH(1,1); we use the EWMA
  (RiskMetrics) recursion, the GARCH(1,1) with omega = 0, alpha = 1 - lambda, beta = lambda. ``filter =
  'portfolio'`` filters the portfolio return y_j instead of each contract (a single-series FHS of the P&L);
* ``scan``: SPAN-like, NOT CME's SPAN: each contract's price scan range is SR_i = c sqrt(H) sigma_i with
  sigma_i the root mean square of its m returns and c = ``scan_multiplier``; price scenarios move it by the
  fractions f in {-1, -(N-1)/N, ..., (N-1)/N, 1} of SR_i (N = ``scan_steps``, 3 gives SPAN's seven price
  points), volatility scenarios scale the scan range by (1 - v) and (1 + v) (v = ``vol_shift``; with linear
  (futures-like) positions SPAN's vol scenarios, which reprice options, would change nothing, so here they
  stand for a scan range re-estimated at a shifted vol); Gamma is the largest portfolio loss over the
  scenarios. ``scan_netting = 'joint'``: every contract moves by the same fraction of its own range (one
  combined commodity, offsets net), Gamma = c sqrt(H) (1 + v) |sum_i h_i sigma_i|; ``'independent'``: each
  contract is its own combined commodity and the scan risks add (no inter-commodity credit),
  Gamma = c sqrt(H) (1 + v) sum_i |h_i| sigma_i. SPAN's extreme moves (2 x range covered at 35%) never bind
  for linear positions and are left out, as are spread charges and credits.

Variance-equivalent input. The design's state is the portfolio variance r, so a functional that is not a
variance is read in variance units: Gamma is homogeneous of degree 1 in the returns for every VaR, ES and scan
kind, and we set r = (max(Gamma, 0) / k)^2 with k the functional's value per unit portfolio vol (its normal
model: k = sqrt(H) z_p for VaR, sqrt(H) phi(z_p)/(1 - p) for ES, c sqrt(H) (1 + v) for the scan). The map is
increasing, so the CCP's rule M = g~(Gamma) is the same rule as M = g(r) with g = g~(k sqrt(.)), and
g'(r) c_r = g~'(Gamma) c_Gamma: the cap (88) read in r is the cap on the rule in Gamma. r is the portfolio
variance for Gaussian returns (VaR, ES), the variance of a perfectly correlated portfolio (h'sigma)^2 for the
joint scan and (sum |h_i| sigma_i)^2 for the independent scan; variance kinds have r = Gamma. The design's
states (grid, density, shocks) must be built from this same r. A negative VaR (a window in which the portfolio
only gained) maps to r = 0.

Sensitivity. c_r is the one-sided derivative of r with respect to the LAST sampled mark vector P_t along the
unit direction d that raises it (27), from ``jax.grad`` and ``jax.jvp`` on the side that d points to (the
derivative at P_t + eps d, extrapolated to eps -> 0+ as in :mod:`.risk_inputs`). The design needs a number
free of the state: s_f with c_r <= 2 sqrt(r) s_f at every admissible state with input r, attained at a
worst-case state (the single-contract factors of ``design.cap``: 1, 1/sqrt(m), sqrt(1 - lambda)). Worst cases
(:func:`worst_case_window`; ||h|| the Euclidean norm):

* variance kinds: all of the window's variance in the last return (earlier returns 0, EWMA seed 0); the
  gradient is 2 w y_t h with w = 1, 1/m, 1 - lambda, so d = sign(y_t) h/||h||, both signs reachable (the
  last portfolio return can be a loss or a gain) and s_f = ||h|| sqrt(w): ||h||, ||h||/sqrt(m),
  ||h|| sqrt(1 - lambda);
* HS VaR / ES: the last loss is the active order statistic (VaR) or inside the tail (ES); gradient -h or
  -h/n, so d = -h/||h|| only (a sale of the portfolio) and s_f = ||h|| / k or ||h|| / (n k);
* scan: every contract's variance in its last return; |dGamma/dR_{t,i}| = c sqrt(H)(1 + v)|h_i| / sqrt(m), so
  s_f = ||h|| / sqrt(m) and d has components +-|h_i|/||h|| with any pattern of signs (each contract's vol
  rises whichever way its price is pushed): an ``orthant`` branch, whose worst alignment is
  sum_i |d_i| |(AB)_i|;
* FHS: no finite bound exists over all windows (after a quiet spell the vol forecast and the last scenario
  both scale with the last return, so Gamma is quadratic in it with an unbounded weight: Section 4.2.2's
  tranquil-state steepness). We use a documented family: the last standardised loss x is the active
  scenario and the tail statistic of the standardised losses is theta k, theta = ``tail_ratio`` times its
  normal value k (theta = 1: standardised residuals as the normal model says). Then with
  S(x) = sqrt(lambda + (1 - lambda) x^2), VaR (x = theta k): s_f = ||h|| (lambda + 2 (1 - lambda) x^2)/(S(x) k);
  ES (the other n - 1 tail scenarios at standardised loss 1, x = n theta k - (n - 1)):
  s_f = ||h|| ((1 - lambda) x theta / S(x) + S(x)/(n k)); a gain-side branch (+h/||h||, the vol channel alone,
  evaluated at a last gain of FHS_GAIN_Z = 1000 filter sds) has s_f -> ||h|| theta sqrt(1 - lambda). With ``filter = 'contract'`` the family
  has every contract's returns proportional to h (where the contract filter equals the portfolio filter);
  non-proportional windows can be more sensitive and are measured only window by window
  (:func:`trigger_sensitivity_path`).

The output the design needs is (s_f, psi_eff) with psi_eff = :meth:`TriggerSensitivity.alignment` (A, B): the
largest factor x alignment over the worst-case branches, divided by s_f; the cap is
g'(r) <= 2 / (2 sqrt(r) s_f psi_eff), i.e. dM/dsigma <= 2 / (s_f psi_eff) in vol units.

Impact matrix A (Assumption 6: symmetric positive definite with positive diagonal; footnote 15: otherwise a
round trip is an arbitrage): :func:`diagonal_impact`, :func:`correlation_impact` (A_ij = sqrt(alpha_i alpha_j)
rho_ij) and :func:`kyle_impact`, the multivariate Kyle model's unique symmetric positive definite impact
matrix (Garcia del Molino, Mastromatteo, Benzaquen and Bouchaud 2020, "The multivariate Kyle model: more is
different", SIAM J. Financial Math. 11(2); the "Kyle" model of Tomas, Mastromatteo and Benzaquen 2022, "How to
build a cross-impact model from first principles", the one they find both fits and is fit for optimal
execution), Lambda Omega Lambda = Sigma. :func:`check_impact_matrix` refuses what Assumption 6 excludes.
Liquidation vector B (26): :func:`liquidation_from_elasticity` ((76) per contract) and
:func:`liquidation_from_accounts` ((63) per contract, proportional deleveraging of each binding account).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from margin_design.errors import ConfigError, InputError

from ._checks import check_range
from ._jax import jax, jnp
from .accounts import binding_mask
from .cap import liquidation_slope
from .risk_inputs import SIDE_STEP, sampled_ewma, sampled_variance, variance_equivalent
from .tail import normal_multiple, tail_count, tail_statistic

__all__ = [
    "PORTFOLIO_RISK_KINDS",
    "PortfolioRisk",
    "TriggerBranch",
    "TriggerSensitivity",
    "LocalTriggerSensitivity",
    "tail_count",
    "value_per_vol",
    "portfolio_risk_value",
    "portfolio_risk_input",
    "worst_case_window",
    "local_trigger_sensitivity",
    "trigger_and_sensitivity",
    "trigger_sensitivity_path",
    "fhs_worst_factor",
    "diagonal_impact",
    "correlation_impact",
    "return_correlation",
    "kyle_impact",
    "check_impact_matrix",
    "liquidation_from_elasticity",
    "liquidation_from_accounts",
]

#: Risk functionals of a window of mark vectors (the ``[portfolio.risk] kind`` values).
PORTFOLIO_RISK_KINDS = ("variance", "realized_variance", "ewma", "hs_var", "hs_es", "fhs_var", "fhs_es", "scan")
_VARIANCE_KINDS = ("variance", "realized_variance", "ewma")
_DEFAULT_WINDOW = {"variance": 1, "realized_variance": 20, "ewma": 250, "hs_var": 250, "hs_es": 250, "fhs_var": 250, "fhs_es": 250, "scan": 20}
_FILTERS = ("contract", "portfolio")
_NETTINGS = ("joint", "independent")
#: Daily vol (decimal) of the worst-case windows; s_f does not depend on it (every functional is homogeneous).
WORST_CASE_VOL = 0.01
#: Standardised size of the last gain in the FHS gain-side worst case (s_f is within 1e-6 of its limit there).
FHS_GAIN_Z = 1.0e3
#: Gradient steps used to settle the one-sided direction at a kink (d <- grad at P_t + eps d, normalised).
REFINE_STEPS = 2
#: Relative tolerance of the symmetry check of an impact matrix.
SYMMETRY_RTOL = 1e-10


def _key(name: str) -> str:
    return f"portfolio.risk.{name}"


# ----------------------------------------------------------------------------------------------
# The spec
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PortfolioRisk:
    """How the CCP computes its portfolio risk number Gamma (25) from mark vectors (see the module docstring).

    ``kind`` one of :data:`PORTFOLIO_RISK_KINDS`; ``positions`` h (K weights, notional per unit of portfolio
    notional); ``window`` m returns (None: 1 for variance, 20 for realized_variance and scan, 250 otherwise);
    ``lam`` EWMA lambda (ewma, fhs); ``level`` p of VaR / ES in (0.5, 1); ``horizon_days`` H (sqrt(H) scaling of
    VaR, ES, scan); ``filter`` 'contract' (BGV) or 'portfolio' (fhs); ``scan_multiplier`` c (scan range in
    window standard deviations), ``scan_steps`` N, ``vol_shift`` v in [0, 1), ``scan_netting`` 'joint' or
    'independent' (scan); ``tail_ratio`` theta of the FHS worst-case family (standardised tail / normal value).
    Invalid values raise :class:`~margin_design.errors.ConfigError` naming the ``portfolio.risk`` key.
    """

    kind: str
    positions: tuple = (1.0,)
    window: int | None = None
    lam: float = 0.94
    level: float = 0.99
    horizon_days: float = 1.0
    filter: str = "contract"
    scan_multiplier: float = 3.0
    scan_steps: int = 3
    vol_shift: float = 0.0
    scan_netting: str = "joint"
    tail_ratio: float = 1.0

    def __post_init__(self):
        if self.kind not in PORTFOLIO_RISK_KINDS:
            raise ConfigError(f"{_key('kind')} = {self.kind!r} is not one of {', '.join(PORTFOLIO_RISK_KINDS)}.")
        try:
            h = tuple(float(x) for x in np.atleast_1d(np.asarray(self.positions, dtype=float)).ravel())
        except (TypeError, ValueError):
            raise ConfigError(f"{_key('positions')} = {self.positions!r} must be a list of numbers (weights per contract).") from None
        if len(h) == 0 or not all(math.isfinite(x) for x in h) or not any(x != 0.0 for x in h):
            raise ConfigError(f"{_key('positions')} = {self.positions!r} must be a non-empty list of finite weights, not all zero.")
        object.__setattr__(self, "positions", h)
        window = _DEFAULT_WINDOW[self.kind] if self.window is None else self.window
        if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
            raise ConfigError(f"{_key('window')} = {window!r} must be a positive whole number of daily returns.")
        if self.kind == "variance" and window != 1:
            raise ConfigError(f"{_key('window')} = {window!r} must be 1 for kind = 'variance' (use 'realized_variance' for a longer window).")
        if self.kind in ("ewma", "fhs_var", "fhs_es") and window < 2:
            raise ConfigError(f"{_key('window')} = {window!r} must be at least 2 for kind = {self.kind!r} (the EWMA is seeded from the earlier returns).")
        object.__setattr__(self, "window", int(window))
        _check_open("lam", self.lam, 0.0, 1.0)
        _check_open("level", self.level, 0.5, 1.0)
        _check_positive("horizon_days", self.horizon_days)
        if self.filter not in _FILTERS:
            raise ConfigError(f"{_key('filter')} = {self.filter!r} is not one of {', '.join(_FILTERS)}.")
        _check_positive("scan_multiplier", self.scan_multiplier)
        if isinstance(self.scan_steps, bool) or not isinstance(self.scan_steps, (int, np.integer)) or self.scan_steps < 1:
            raise ConfigError(f"{_key('scan_steps')} = {self.scan_steps!r} must be a positive whole number of price steps.")
        if not (isinstance(self.vol_shift, (int, float)) and math.isfinite(self.vol_shift) and 0.0 <= self.vol_shift < 1.0):
            raise ConfigError(f"{_key('vol_shift')} = {self.vol_shift!r} must be in [0, 1).")
        if self.scan_netting not in _NETTINGS:
            raise ConfigError(f"{_key('scan_netting')} = {self.scan_netting!r} is not one of {', '.join(_NETTINGS)}.")
        _check_positive("tail_ratio", self.tail_ratio)

    @property
    def h(self) -> np.ndarray:
        """Positions h as a float64 array (K,)."""
        return np.asarray(self.positions, dtype=float)

    @property
    def n_contracts(self) -> int:
        return len(self.positions)

    @property
    def is_variance(self) -> bool:
        """True for the kinds whose Gamma is already a variance (degree 2 in returns): r = Gamma."""
        return self.kind in _VARIANCE_KINDS

    def describe(self) -> str:
        """One line naming the functional and its parameters, for reports."""
        m = self.window
        text = {
            "variance": "portfolio variance of the last return, r = (h'R_t)^2",
            "realized_variance": f"portfolio realised variance over {m} returns",
            "ewma": f"portfolio EWMA variance, lambda = {self.lam:g}, over {m} returns",
            "hs_var": f"historical-simulation VaR at {self.level:g} over {m} returns",
            "hs_es": f"historical-simulation ES at {self.level:g} over {m} returns",
            "fhs_var": f"filtered HS VaR at {self.level:g} over {m} returns ({self.filter} EWMA filter, lambda = {self.lam:g})",
            "fhs_es": f"filtered HS ES at {self.level:g} over {m} returns ({self.filter} EWMA filter, lambda = {self.lam:g})",
            "scan": f"SPAN-like scan ({self.scan_netting}), range {self.scan_multiplier:g} x window vol over {m} returns, "
            f"{2 * self.scan_steps + 1} price points, vol shift {self.vol_shift:g}",
        }[self.kind]
        return f"{text}; h = [{', '.join(format(x, 'g') for x in self.positions)}]"


def _check_open(name, value, low, high):
    if not (isinstance(value, (int, float, np.floating)) and math.isfinite(value) and low < value < high):
        raise ConfigError(f"{_key(name)} = {value!r} must be in ({low:g}, {high:g}).")


def _check_positive(name, value):
    if not (isinstance(value, (int, float, np.floating)) and math.isfinite(value) and value > 0):
        raise ConfigError(f"{_key(name)} = {value!r} must be a positive number.")


def value_per_vol(spec: PortfolioRisk) -> float | None:
    """k: the functional's value per unit portfolio daily vol in its normal model (None for variance kinds, r = Gamma).

    sqrt(H) z_p (VaR), sqrt(H) phi(z_p)/(1 - p) (ES), c sqrt(H) (1 + v) (scan); r = (max(Gamma, 0)/k)^2.
    """
    if spec.is_variance:
        return None
    if spec.kind == "scan":
        return spec.scan_multiplier * math.sqrt(spec.horizon_days) * (1.0 + spec.vol_shift)
    k = normal_multiple(spec.level, "var" if spec.kind.endswith("var") else "es")
    return math.sqrt(spec.horizon_days) * k


# ----------------------------------------------------------------------------------------------
# The functionals (pure JAX of the window; compiled per spec and shape)
# ----------------------------------------------------------------------------------------------


def _safe_sqrt(v):
    """sqrt(v) with a finite (zero) gradient where v = 0."""
    pos = v > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, v, 1.0)), 0.0)


def _ewma_path(R, lam: float):
    """Variances (m + 1, K): row j is the forecast for return j (row m: after the last), seeded with the mean of R^2 over rows < m - 1."""
    seed = jnp.mean(R[:-1] ** 2, axis=0)

    def step(v, r):
        return lam * v + (1.0 - lam) * r * r, v

    last, path = jax.lax.scan(step, seed, R)
    return jnp.concatenate([path, last[None, :]], axis=0)


def _fhs_losses(R, h, lam: float, horizon: float):
    var = _ewma_path(R, lam)
    sig = _safe_sqrt(var)
    z = jnp.where(sig[:-1] > 0, R / jnp.where(sig[:-1] > 0, sig[:-1], 1.0), 0.0)
    return -math.sqrt(horizon) * ((z * sig[-1]) @ h)


def _scan_value(R, h, spec: PortfolioRisk):
    sig = _safe_sqrt(jnp.mean(R**2, axis=0))
    sr = spec.scan_multiplier * math.sqrt(spec.horizon_days) * sig
    fractions = np.linspace(-1.0, 1.0, 2 * spec.scan_steps + 1)
    vols = np.array([1.0 - spec.vol_shift, 1.0 + spec.vol_shift]) if spec.vol_shift > 0 else np.array([1.0])
    moves = jnp.asarray((fractions[:, None] * vols[None, :]).ravel())  # price move per unit scan range, each scenario
    if spec.scan_netting == "joint":
        return jnp.max(-moves * jnp.dot(h, sr))
    return jnp.sum(jnp.max(-moves[:, None] * (h * sr)[None, :], axis=0))


def _gamma(spec: PortfolioRisk, P):
    """Gamma (25) of the mark window P (m + 1, K) (the last m + 1 rows are used)."""
    m = spec.window
    P = P[-(m + 1):]
    h = jnp.asarray(spec.h)
    kind = spec.kind
    if kind == "scan":
        return _scan_value(jnp.diff(P, axis=0), h, spec)
    if kind.startswith("fhs"):
        R = jnp.diff(P, axis=0)
        if spec.filter == "portfolio":
            R, h = (R @ h)[:, None], jnp.ones(1)
        return tail_statistic(_fhs_losses(R, h, spec.lam, spec.horizon_days), tail_count(m, spec.level), kind.endswith("es"))
    V = P @ h  # portfolio value path: the portfolio kinds are single-contract functionals of it
    if kind == "variance":
        return sampled_variance(V[-2:], mean=False)
    if kind == "realized_variance":
        return sampled_variance(V, mean=True)
    if kind == "ewma":
        y = jnp.diff(V)
        return sampled_ewma(V, spec.lam, jnp.mean(y[:-1] ** 2))
    losses = -math.sqrt(spec.horizon_days) * jnp.diff(V)
    return tail_statistic(losses, tail_count(m, spec.level), kind.endswith("es"))


def _to_r(spec: PortfolioRisk, gamma):
    if spec.is_variance:
        return gamma
    return variance_equivalent(gamma, value_per_vol(spec))


def _r_of(spec: PortfolioRisk, P):
    return _to_r(spec, _gamma(spec, P))


@partial(jax.jit, static_argnums=0)
def _gamma_jit(spec, P):
    return _gamma(spec, P)


def _marks(spec: PortfolioRisk, marks, name: str = "window_of_marks") -> np.ndarray:
    P = np.asarray(marks, dtype=float)
    if P.ndim == 1 and spec.n_contracts == 1:
        P = P[:, None]
    if P.ndim < 2 or P.shape[-1] != spec.n_contracts:
        raise InputError(f"{name} must have shape (rows, {spec.n_contracts}) (one column per contract of portfolio.risk.positions), got {P.shape}.")
    if P.shape[-2] < spec.window + 1:
        raise InputError(f"{name} has {P.shape[-2]} rows but portfolio.risk.window = {spec.window} needs at least {spec.window + 1} sampled marks.")
    if not np.all(np.isfinite(P)):
        raise InputError(f"{name} must contain only finite marks.")
    return P


def portfolio_risk_value(spec: PortfolioRisk, marks):
    """Gamma (25): the functional's own value on the last m + 1 rows of ``marks`` (rows, K) (or a stack (..., rows, K)).

    Variance kinds in decimal^2 (daily variance of the portfolio return); VaR, ES and scan in margin-ratio units
    (decimal loss per unit portfolio notional over ``horizon_days``). Returns a float64 NumPy array.
    """
    P = _marks(spec, marks, "marks")
    f = partial(_gamma_jit, spec)
    for _ in range(P.ndim - 2):
        f = jax.vmap(f)
    return np.asarray(f(jnp.asarray(P)))


def portfolio_risk_input(spec: PortfolioRisk, marks):
    """The design's r (decimal^2): Gamma for variance kinds, the variance equivalent (max(Gamma, 0)/k)^2 otherwise."""
    gamma = portfolio_risk_value(spec, marks)
    if spec.is_variance:
        return gamma
    return (np.maximum(gamma, 0.0) / value_per_vol(spec)) ** 2


# ----------------------------------------------------------------------------------------------
# One-sided sensitivity to the last mark vector
# ----------------------------------------------------------------------------------------------


def _unit(g):
    n = jnp.linalg.norm(g)
    return jnp.where(n > 0, g / jnp.where(n > 0, n, 1.0), jnp.zeros_like(g))


@partial(jax.jit, static_argnums=0)
def _local_kernel(spec: PortfolioRisk, P, eps):
    """(r, c_r, d, grad) at the window P: d the unit direction of the last mark vector that raises r, c_r the
    one-sided derivative along it (extrapolated to eps -> 0+), grad the gradient at P itself."""

    def f(last):
        return _r_of(spec, P.at[-1].set(last))

    x0 = P[-1]
    grad = jax.grad(f)
    g0 = grad(x0)
    hdir = jnp.asarray(spec.h) / float(np.linalg.norm(spec.h))

    def side_derivative(d):
        _, d1 = jax.jvp(f, (x0 + eps * d,), (d,))
        _, d2 = jax.jvp(f, (x0 + 2.0 * eps * d,), (d,))
        return 2.0 * d1 - d2

    # candidate directions: the gradient here, and the gradients one step along the portfolio's sale and purchase
    cands = jnp.stack([_unit(g0), _unit(grad(x0 - eps * hdir)), _unit(grad(x0 + eps * hdir))])
    vals = jax.vmap(side_derivative)(cands)
    best = jnp.argmax(vals)
    d, val = cands[best], vals[best]
    for _ in range(REFINE_STEPS):  # settle on the branch active on d's side
        d_new = _unit(grad(x0 + eps * d))
        v_new = side_derivative(d_new)
        better = v_new > val
        d, val = jnp.where(better, d_new, d), jnp.where(better, v_new, val)
    c = jnp.maximum(val, 0.0)
    d = jnp.where(c > 0, d, jnp.zeros_like(d))
    return f(x0), c, d, g0


@dataclass(frozen=True)
class LocalTriggerSensitivity:
    """The input's sensitivity to the last mark vector at one window.

    ``r`` the input (decimal^2), ``gamma`` the functional's value (its units), ``c_r`` the one-sided derivative of r
    along ``d`` (decimal^2 per unit of mark move along the unit vector d), ``d`` (K,) the unit direction that
    raises r (zeros if no direction does at first order), ``gradient`` dr/dP_t at the window itself,
    ``s_f = c_r / (2 sqrt(r))`` (dimensionless; inf if r = 0 < c_r, 0 if c_r = 0).
    """

    r: float
    gamma: float
    c_r: float
    d: np.ndarray
    gradient: np.ndarray

    @property
    def s_f(self) -> float:
        if self.c_r == 0.0:
            return 0.0
        return self.c_r / (2.0 * math.sqrt(self.r)) if self.r > 0 else math.inf


def local_trigger_sensitivity(spec: PortfolioRisk, window_of_marks, eps: float = SIDE_STEP) -> LocalTriggerSensitivity:
    """d and c_r at a given window of marks (rows, K), by JAX (see :func:`_local_kernel`); the last m + 1 rows are used."""
    P = _marks(spec, window_of_marks)
    if P.ndim != 2:
        raise InputError(f"window_of_marks must have shape (rows, {spec.n_contracts}), got {P.shape}.")
    P = P[-(spec.window + 1):]
    r, c, d, g = _local_kernel(spec, jnp.asarray(P), eps)
    gamma = float(_gamma_jit(spec, jnp.asarray(P)))
    return LocalTriggerSensitivity(float(r), gamma, float(c), np.asarray(d), np.asarray(g))


def trigger_sensitivity_path(spec: PortfolioRisk, marks, eps: float = SIDE_STEP) -> dict:
    """State-by-state values along a history of marks (T, K): for every window ending at row t >= m.

    Returns arrays over those windows: ``end`` (row index t), ``r`` (decimal^2), ``c_r``, ``s_f``
    (= c_r / (2 sqrt r), dimensionless), ``d`` (n, K) unit trigger directions. For an audit of how far the local
    sensitivity is from the worst-case factor of :func:`trigger_and_sensitivity`.
    """
    P = _marks(spec, marks)
    m = spec.window
    idx = np.arange(P.shape[0] - m)[:, None] + np.arange(m + 1)[None, :]
    windows = jnp.asarray(P[idx])
    r, c, d, _ = jax.vmap(lambda W: _local_kernel(spec, W, eps))(windows)
    r, c = np.asarray(r), np.asarray(c)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(c == 0.0, 0.0, c / (2.0 * np.sqrt(r)))
    return {"end": np.arange(m, P.shape[0]), "r": r, "c_r": c, "s_f": s, "d": np.asarray(d)}


# ----------------------------------------------------------------------------------------------
# Worst-case states and the state-free output
# ----------------------------------------------------------------------------------------------


def _from_returns(R) -> np.ndarray:
    R = np.asarray(R, dtype=float)
    return 1.0 + np.concatenate([np.zeros((1, R.shape[1])), np.cumsum(R, axis=0)], axis=0)


def _standardised_losses(spec: PortfolioRisk, y) -> np.ndarray:
    """Standardised losses -y_j / sigma_j of a portfolio return series y (m,) under the EWMA filter (decimal)."""
    var = np.asarray(_ewma_path(jnp.asarray(np.asarray(y, dtype=float)[:, None]), spec.lam))[:, 0]
    return -np.asarray(y, dtype=float) / np.sqrt(var[:-1])


def _fhs_window(spec: PortfolioRisk, side: str) -> np.ndarray:
    """The FHS worst-case family (module docstring), returns along u = h/||h||^2 so that h'R_j = y_j.

    Rows: first the earlier tail scenarios (VaR loss side: n - 1 at standardised loss 2x; gain side: n at theta k),
    then a steady bulk of raw returns +-sigma0, then the last return (loss side: standardised loss x; gain side: a
    gain of FHS_GAIN_Z filter sds). The filter's seed (mean square of the first m - 1 returns) depends on the
    returns it standardises, so the window is rebuilt until the seed is a fixed point.
    """
    m, n, lam = spec.window, tail_count(spec.window, spec.level), spec.lam
    k1 = value_per_vol(spec) / math.sqrt(spec.horizon_days)  # normal value per unit daily vol
    theta = spec.tail_ratio
    s0 = WORST_CASE_VOL
    es = spec.kind.endswith("es")
    if side == "loss":
        x = n * theta * k1 - (n - 1.0) if es else theta * k1
        targets = [] if es else [2.0 * x] * (n - 1)
    else:
        x = theta * k1
        targets = [theta * k1] * n
    if x <= 1.0 + 1e-6:
        raise InputError(f"portfolio.risk.tail_ratio = {theta!r} is too small for the FHS worst case (the tail scenario must exceed the steady bulk, standardised 1).")
    c = len(targets)
    bulk = s0 * np.where(np.arange(m - 1 - c) % 2 == 0, 1.0, -1.0)
    if m - 1 - c < 2 * (n - 1) + 1:
        raise InputError(f"portfolio.risk.window = {m} is too short for the FHS worst case at level {spec.level:g}.")

    def build(seed):
        y = np.empty(m)
        v = seed
        for j in range(m):
            sd = math.sqrt(v)
            if j < c:
                y[j] = -targets[j] * sd
            elif j < m - 1:
                y[j] = bulk[j - c]
            else:
                y[j] = -x * sd if side == "loss" else FHS_GAIN_Z * sd
            v = lam * v + (1.0 - lam) * y[j] * y[j]
        return y

    seed = s0 * s0
    for _ in range(500):
        y = build(seed)
        new = float(np.mean(y[:-1] ** 2))
        if abs(new - seed) <= 1e-15 * new:
            break
        seed = new
    else:  # pragma: no cover - the map is a contraction whenever the tail is a small part of the window
        raise InputError(f"portfolio.risk.window = {m} is too short for the FHS worst case (the filter's seed has no fixed point).")
    sl = _standardised_losses(spec, y)
    if side == "loss" and not es and not (np.all(sl[:c] > x) and np.all(sl[c:-1] < x)):  # pragma: no cover - by construction
        raise InputError("the FHS worst-case window does not make the last scenario the active quantile.")
    return _from_returns(y[:, None] * (spec.h / float(spec.h @ spec.h))[None, :])


def worst_case_window(spec: PortfolioRisk, side: str = "loss") -> np.ndarray:
    """The worst-case admissible mark window (m + 1, K) for the cap (module docstring), at daily vol ~ 1%.

    ``side`` 'loss': the last portfolio return is a loss (a sale of the portfolio raises the input, the paper's
    case); 'gain': it is a gain (variance kinds and FHS only: HS VaR / ES cannot be raised from a gain).
    Variance kinds: all variance in the last return, R_t = -+ sigma0 h/||h||^2 (so h'R_t = -+ sigma0), earlier 0.
    HS: the last loss sigma0 is the n-th largest (VaR: n - 1 earlier losses 2 sigma0) or in the tail (ES).
    Scan: earlier returns 0, every contract's last return against its position (a long falls, a short rises).
    FHS: the family of the module docstring.
    """
    if side not in ("loss", "gain"):
        raise InputError(f"side = {side!r} is not one of loss, gain.")
    m, s0 = spec.window, WORST_CASE_VOL
    h = spec.h
    u = h / float(h @ h)
    sign = -1.0 if side == "loss" else 1.0
    if spec.kind in _VARIANCE_KINDS:
        R = np.zeros((m, h.size))
        R[-1] = sign * s0 * u
        return _from_returns(R)
    if spec.kind in ("hs_var", "hs_es"):
        if side == "gain":
            raise InputError(f"side = 'gain' has no worst case for kind = {spec.kind!r} (a gain never enters the loss tail).")
        n = tail_count(m, spec.level)
        losses = np.zeros(m)
        if spec.kind == "hs_var":
            losses[: n - 1] = 2.0 * s0
        losses[-1] = s0
        return _from_returns(-losses[:, None] * u[None, :])
    if spec.kind == "scan":
        if side == "gain":
            raise InputError("side = 'gain' is not needed for kind = 'scan' (its orthant branch already holds every sign pattern).")
        against = np.where(h < 0, 1.0, -1.0)  # a long contract's price falls, a short's rises
        w = np.ones(h.size)
        if spec.scan_netting == "joint" and abs(float(h @ w)) <= 1e-9 * float(np.abs(h).sum()):
            w = np.where(h > 0, 2.0, 1.0)  # perfectly netted vols would give Gamma = 0; unequal vols
        R = np.zeros((m, h.size))
        R[-1] = against * s0 * w
        return _from_returns(R)
    return _fhs_window(spec, side)


def fhs_worst_factor(spec: PortfolioRisk, side: str = "loss") -> float:
    """Closed form of s_f in the FHS worst-case family (module docstring), for checks: dimensionless.

    VaR loss side ||h|| (lambda + 2 (1 - lambda) x^2)/(S(x) k), x = theta k; ES loss side
    ||h|| ((1 - lambda) x theta / S(x) + S(x)/(n k)), x = n theta k - (n - 1); gain side ||h|| theta (1 - lambda) X / S(X)
    with X = FHS_GAIN_Z (-> ||h|| theta sqrt(1 - lambda)). k per day (sqrt(H) cancels in r).
    """
    if not spec.kind.startswith("fhs"):
        raise InputError(f"fhs_worst_factor applies to kind fhs_var or fhs_es, not {spec.kind!r}.")
    lam, theta = spec.lam, spec.tail_ratio
    k = value_per_vol(spec) / math.sqrt(spec.horizon_days)
    n = tail_count(spec.window, spec.level)
    hn = float(np.linalg.norm(spec.h))

    def S(x):
        return math.sqrt(lam + (1.0 - lam) * x * x)

    if side == "gain":
        return hn * theta * (1.0 - lam) * FHS_GAIN_Z / S(FHS_GAIN_Z)
    if spec.kind == "fhs_var":
        x = theta * k
        return hn * (lam + 2.0 * (1.0 - lam) * x * x) / (S(x) * k)
    x = n * theta * k - (n - 1.0)
    return hn * ((1.0 - lam) * x * theta / S(x) + S(x) / (n * k))


@dataclass(frozen=True)
class TriggerBranch:
    """A worst-case trigger branch: unit ``direction`` (K,), its factor ``s_f`` (c_r = 2 sqrt(r) s_f), ``orthant``
    True when every sign pattern of the direction's components is reachable with the same factor (scan), the
    ``side`` ('loss' or 'gain') of the worst-case window and the window itself (m + 1, K)."""

    direction: np.ndarray
    s_f: float
    orthant: bool
    side: str
    window: np.ndarray = field(repr=False)

    def alignment(self, impact_matrix, liquidation) -> float:
        """psi of this branch: max{0, -d'AB} (87), or sum_i |d_i| |(AB)_i| over the orthant (its largest -d'AB)."""
        from .portfolio import alignment

        A = np.asarray(impact_matrix, dtype=float)
        B = np.asarray(liquidation, dtype=float)
        if self.orthant:
            return float(np.sum(np.abs(self.direction) * np.abs(A @ B)))
        return float(alignment(self.direction, A, B))


@dataclass(frozen=True)
class TriggerSensitivity:
    """The portfolio input's trigger direction and state-free sensitivity factor.

    ``d`` (K,) the unit direction of the primary branch (a sale of the portfolio, as in D.6, when that is a worst
    case); ``s_f`` its factor: c_r <= 2 sqrt(r) s_f at every admissible state (dimensionless; 1, 1/sqrt(m),
    sqrt(1 - lambda) for one contract and the variance kinds); ``branches`` all worst-case branches;
    ``mode`` 'worst_case' or 'data'; ``local`` the :class:`LocalTriggerSensitivity` at the data window (data mode).
    """

    spec: PortfolioRisk
    d: np.ndarray
    s_f: float
    branches: tuple
    mode: str
    local: LocalTriggerSensitivity | None = None

    def cap_product(self, impact_matrix, liquidation) -> float:
        """max over branches of s_f x psi: the cap is g'(r) <= 2 / (2 sqrt(r) cap_product) (88)."""
        return max(b.s_f * b.alignment(impact_matrix, liquidation) for b in self.branches)

    def alignment(self, impact_matrix, liquidation) -> float:
        """psi_eff = cap_product / s_f: the alignment to pair with s_f in (87)-(88) (price per unit margin ratio)."""
        return self.cap_product(impact_matrix, liquidation) / self.s_f if self.s_f > 0 else 0.0

    def describe(self) -> str:
        d = ", ".join(format(float(x), ".6g") for x in self.d)
        return f"{self.spec.describe()}: d = [{d}], s_f = {self.s_f:.6g} ({self.mode}, {len(self.branches)} branch(es))"


def _branch(spec: PortfolioRisk, side: str) -> TriggerBranch:
    P = worst_case_window(spec, side)
    loc = local_trigger_sensitivity(spec, P)
    return TriggerBranch(loc.d, loc.s_f, spec.kind == "scan", side, P)


def trigger_and_sensitivity(spec: PortfolioRisk, window_of_marks=None):
    """The direction in which a manipulator moves the portfolio's marks to raise the CCP's risk number, and how
    strongly: (d, s_f, details) for the portfolio cap (87)-(88), with c_r = 2 sqrt(r) s_f.

    Without data: d and s_f at the worst-case states of :func:`worst_case_window` (both sides where both are
    reachable), by JAX; ``details`` is a :class:`TriggerSensitivity` whose :meth:`~TriggerSensitivity.alignment`
    gives psi_eff for given A and B (the largest s_f x psi over the branches, divided by s_f). With
    ``window_of_marks`` (rows, K), a real history: d and s_f = c_r / (2 sqrt r) there (local, not a bound), with
    ``details.local`` holding r, c_r and the gradient. d is a unit K-vector with d'Delta P > 0 raising the input.
    """
    if window_of_marks is not None:
        loc = local_trigger_sensitivity(spec, window_of_marks)
        P = _marks(spec, window_of_marks)[-(spec.window + 1):]
        side = "loss" if float(loc.d @ spec.h) <= 0 else "gain"
        b = TriggerBranch(loc.d, loc.s_f, False, side, P)
        t = TriggerSensitivity(spec, loc.d, loc.s_f, (b,), "data", loc)
        return t.d, t.s_f, t
    sides = ("loss",) if spec.kind in ("hs_var", "hs_es", "scan") else ("loss", "gain")
    branches = tuple(_branch(spec, s) for s in sides)
    top = max(b.s_f for b in branches)
    primary = next(b for b in sorted(branches, key=lambda b: b.side != "loss") if b.s_f >= top * (1.0 - 1e-9))
    t = TriggerSensitivity(spec, primary.direction, primary.s_f, branches, "worst_case")
    return t.d, t.s_f, t


# ----------------------------------------------------------------------------------------------
# Impact matrix A (Assumption 6, footnote 15)
# ----------------------------------------------------------------------------------------------


def check_impact_matrix(impact_matrix, name: str = "portfolio.impact") -> np.ndarray:
    """A as a symmetrised float64 (K, K) array, or a one-sentence ConfigError if Assumption 6 fails.

    The design layer's check (:func:`margin_design.design.portfolio.check_impact_matrix`): square, finite,
    symmetric (Schneider and Lillo 2019: asymmetric cross-impact admits a dynamic arbitrage), positive diagonal
    and positive definite (footnote 15). A scalar is a 1 x 1 matrix. Units: price change per unit of ADV traded.
    """
    from margin_design.design.portfolio import check_impact_matrix as check

    A = np.asarray(impact_matrix, dtype=float) if np.ndim(impact_matrix) else np.array([[float(impact_matrix)]])
    return check(A, key=name)


def diagonal_impact(alphas) -> np.ndarray:
    """A = diag(alpha_i) from per-contract single-asset alphas (75), decimal price change per unit of own ADV; no cross-impact."""
    a = np.atleast_1d(np.asarray(alphas, dtype=float))
    check_range("alphas", a, low=0.0, what="positive (price impact per unit ADV)")
    return check_impact_matrix(np.diag(a), "diagonal impact")


def _check_correlation(rho, K: int, name: str) -> np.ndarray:
    C = np.asarray(rho, dtype=float)
    if C.ndim == 0 and K == 2:
        C = np.array([[1.0, float(C)], [float(C), 1.0]])
    if C.shape != (K, K):
        raise InputError(f"{name} must be a {K} x {K} matrix (one row per contract), got shape {C.shape}.")
    if not np.all(np.isfinite(C)) or np.max(np.abs(C - C.T)) > SYMMETRY_RTOL or np.max(np.abs(np.diag(C) - 1.0)) > SYMMETRY_RTOL or np.max(np.abs(C)) > 1.0 + SYMMETRY_RTOL:
        raise InputError(f"{name} must be a symmetric correlation matrix (unit diagonal, entries in [-1, 1]).")
    return C


def correlation_impact(alphas, correlation) -> np.ndarray:
    """A_ij = sqrt(alpha_i alpha_j) rho_ij (PSD by construction, definite if rho is): impact correlated like returns.

    ``alphas`` (K,) per-contract single-asset impact (75); ``correlation`` (K, K) return correlation (a scalar for
    K = 2). D.6's A = alpha [[1, rho], [rho, 1]] is the case alpha_1 = alpha_2. Checked by :func:`check_impact_matrix`.
    """
    a = np.atleast_1d(np.asarray(alphas, dtype=float))
    check_range("alphas", a, low=0.0, what="positive (price impact per unit ADV)")
    C = _check_correlation(correlation, a.size, "correlation")
    s = np.sqrt(a)
    return check_impact_matrix(s[:, None] * C * s[None, :], "correlation impact")


def return_correlation(marks) -> np.ndarray:
    """Sample correlation (K, K) of the contracts' daily returns R_j = P_j - P_{j-1} from marks (rows, K)."""
    P = np.asarray(marks, dtype=float)
    if P.ndim != 2 or P.shape[0] < 3:
        raise InputError(f"marks must have shape (rows >= 3, K), got {P.shape}.")
    C = np.corrcoef(np.diff(P, axis=0), rowvar=False)
    return np.atleast_2d(C)


def _check_covariance(M, name: str) -> np.ndarray:
    C = np.atleast_2d(np.asarray(M, dtype=float))
    if C.ndim != 2 or C.shape[0] != C.shape[1]:
        raise InputError(f"{name} must be a square K x K covariance matrix, got shape {C.shape}.")
    if not np.all(np.isfinite(C)) or np.max(np.abs(C - C.T)) > SYMMETRY_RTOL * (np.max(np.abs(C)) or 1.0):
        raise InputError(f"{name} must be a finite symmetric covariance matrix.")
    lo = float(np.min(np.linalg.eigvalsh(C)))
    if not lo > 0:
        raise InputError(f"{name} is not positive definite (smallest eigenvalue {lo:.3g}); the Kyle model needs every portfolio to have some variance.")
    return 0.5 * (C + C.T)


def _sym_sqrt(M):
    w, V = np.linalg.eigh(0.5 * (M + M.T))
    return (V * np.sqrt(w)) @ V.T, (V / np.sqrt(w)) @ V.T


def kyle_impact(return_covariance, flow_covariance, alphas=None) -> np.ndarray:
    """The multivariate Kyle impact matrix Lambda = Omega^(-1/2) (Omega^(1/2) Sigma Omega^(1/2))^(1/2) Omega^(-1/2).

    The unique symmetric positive definite solution of Lambda Omega Lambda = Sigma (Garcia del Molino et al. 2020;
    the "Kyle" cross-impact model of Tomas, Mastromatteo and Benzaquen 2022): price changes are the impact of the
    order flow, so the return covariance ``return_covariance`` Sigma (K, K, decimal^2 per day) is what order flow
    of covariance ``flow_covariance`` Omega (K, K, (ADV units)^2 per day, signed daily order flow of each contract
    in its own ADV) generates. For K = 1 it is sigma / sigma_Q (e.g. 1% vol, order-flow sd 5% of ADV: 0.2 per
    ADV, the benchmark alpha). ``alphas`` (K,) rescales by congruence, D Lambda D with D = diag(sqrt(alpha_i /
    Lambda_ii)), so the diagonal equals given single-asset alphas (75) while keeping the model's cross-structure
    and definiteness. Units: decimal price change per unit of ADV traded.
    """
    S = _check_covariance(return_covariance, "return_covariance")
    O = _check_covariance(flow_covariance, "flow_covariance")
    if S.shape != O.shape:
        raise InputError(f"return_covariance {S.shape} and flow_covariance {O.shape} must have the same shape.")
    o_half, o_ihalf = _sym_sqrt(O)
    mid, _ = _sym_sqrt(o_half @ S @ o_half)
    L = o_ihalf @ mid @ o_ihalf
    L = 0.5 * (L + L.T)
    if alphas is not None:
        a = np.atleast_1d(np.asarray(alphas, dtype=float))
        check_range("alphas", a, low=0.0, what="positive (price impact per unit ADV)")
        if a.size != L.shape[0]:
            raise InputError(f"alphas has {a.size} entries for a {L.shape[0]} x {L.shape[0]} impact matrix.")
        D = np.sqrt(a / np.diag(L))
        L = D[:, None] * L * D[None, :]
    return check_impact_matrix(L, "Kyle impact")


# ----------------------------------------------------------------------------------------------
# Liquidation vector B (26)
# ----------------------------------------------------------------------------------------------


def liquidation_from_elasticity(holdings, elasticity, margin) -> np.ndarray:
    """B_i = epsilon_i x_i / m, (76) contract by contract: ADV units of contract i sold per unit margin ratio.

    ``holdings`` x_i the constrained sector's holdings of contract i in units of its ADV (tau_i = X_i P / ADV_i,
    signed: a short is bought back, B_i < 0, as (26) with Delta X = -B Delta M says); ``elasticity`` epsilon_XM
    (scalar or per contract, > 0); ``margin`` m the portfolio margin ratio (decimal). For one long contract it is
    :func:`~margin_design.calibration.cap.liquidation_slope`.
    """
    x = np.atleast_1d(np.asarray(holdings, dtype=float))
    check_range("holdings", x, what="finite (ADV units)")
    eps = np.broadcast_to(np.asarray(elasticity, dtype=float), x.shape)
    check_range("elasticity", eps, low=0.0, what="positive (epsilon_XM = -dlog X/dlog M)")
    mag = np.asarray(liquidation_slope(eps, np.where(x != 0, np.abs(x), 1.0), margin), dtype=float)
    return np.where(x != 0, np.sign(x) * mag, 0.0)


def liquidation_from_accounts(equity, targets, margin, adv=None, mass=None) -> np.ndarray:
    """B from account data, (63) per contract: accounts deleverage proportionally when the portfolio cap binds.

    Account i has equity E(i) > 0 and target holdings x_bar(i) (K, signed notional); under a portfolio margin
    ratio M on gross notional n(i) = sum_k |x_bar_k(i)|, its holdings are x_bar(i) min{1, E(i)/(M n(i))} (the
    target-with-cap rule (6) keeping portfolio weights, as D.6's constrained sector does). Binding accounts
    (n(i) M >= E(i), :func:`~margin_design.calibration.accounts.binding_mask`) sell, per unit margin ratio,
    B_k = (1/M^2) sum_binding w E x_bar_k / n / sum w, divided by ``adv`` (K,) to give ADV units of each
    contract (None: targets and equity already in one common unit per contract). For K = 1 and long targets this
    is c_eff of (63) (:func:`~margin_design.calibration.accounts.c_eff_from_accounts`).
    """
    e = np.atleast_1d(np.asarray(equity, dtype=float))
    X = np.asarray(targets, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2 or X.shape[0] != e.size:
        raise InputError(f"targets must have shape ({e.size}, K) (one row per account), got {np.shape(targets)}.")
    check_range("equity", e, low=0.0, what="positive (E(i) > 0)")
    check_range("targets", X, what="finite (target notional per contract)")
    check_range("margin", margin, low=0.0, what="positive (margin ratio, decimal)")
    w = np.ones_like(e) if mass is None else np.broadcast_to(np.asarray(mass, dtype=float), e.shape)
    check_range("mass", w, low=0.0, low_inclusive=True, what="non-negative")
    if not np.sum(w) > 0:
        raise InputError("mass must have a positive total, got 0.")
    gross = np.sum(np.abs(X), axis=1)
    M = float(margin)
    bind = binding_mask(e, gross, M) & (gross > 0)
    share = np.where(gross[:, None] > 0, X / np.where(gross > 0, gross, 1.0)[:, None], 0.0)
    B = np.sum((w * e * bind)[:, None] * share, axis=0) / np.sum(w) / M**2
    if adv is not None:
        v = np.broadcast_to(np.asarray(adv, dtype=float), B.shape)
        check_range("adv", v, low=0.0, what="positive (average daily traded value per contract)")
        B = B / v
    return B
