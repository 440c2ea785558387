"""A small, vectorised simulation of the Section 2 market, to check the theory on any rule (Nicolai 2026).

What is simulated (one benchmark state S_t, periods u = t, ..., t + T):

* fundamentals V_u, a martingale (1): V_{u+1} = V_u + eps_{u+1}, eps i.i.d. mean zero -- ``normal`` draws
  (Monte Carlo) or ``rademacher`` steps +-s enumerated exactly over all 2^T paths (:class:`Fundamentals`);
* linear impact (2): P_u = V_u + alpha (Delta X_u + a_u), prices near 1 (per unit notional), a_u in ADV units;
* the rule applied to the risk input of the last m sampled returns R_u = P_u - P_{u-1}: the sum (4) of their
  squares (input ``variance``), its mean (``realized_variance``) or the variance equivalent of their
  historical-simulation VaR / ES (``hs_var``, ``hs_es``), always through
  :func:`margin_design.calibration.risk_inputs.input_values`, M_{u+1} = g(Gamma_u) (3);
* a population of constrained traders (:class:`Population`): equity E(i), constant targets x_bar(i), positions
  x = min{x_bar, E/M_u} (6)-(7) (long side), so Delta X_u = X(M_u) - X(M_{u-1}) is forced liquidation when the
  margin rises; c_X of the population at the benchmark margin is set to the market's c_eff (63);
* a strategic trader with a predictable (open-loop) round trip a_t, ..., a_{t+T}, sum a = 0 (9), earning
  Pi = -sum a_u P_u - tau sum |a_u| - rho sum_{u<T} M_u |y_u| - kappa sum_{u<T} y_u^2 ((10), (11), A.5).

Benchmark states (:class:`SimState`) are stationary: absent the deviation the constrained sector does not trade
(Delta X^0 = 0, Assumption 15) and margins do not move, so the benchmark has no predictable drift:

* ``envelope``: the window's earlier returns are zero and the whole input sits in the last return,
  |R_t^(0)| = sqrt(r / w) (w = 1 for (4), 1/m for the mean) -- the worst case behind the cap (17);
  for HS VaR / ES the whole tail sits in the last loss (:func:`~margin_design.calibration.risk_inputs.state_window`:
  the last loss is the VaR with the n - 1 larger losses at twice it, or n ES with the other tail scenarios at 0),
  the worst case behind the HS cap factor; fundamentals after t are ``normal`` (two-period checks: only
  E[V_{t+1}] = V_t matters) or zero;
* ``spread``: a share s of the input in the last return, the rest in m - 1 earlier returns of size +-d
  (alternating), and Rademacher fundamentals of step d: every benchmark return has size d, so the benchmark
  input stays exactly at r while R_t is in the window (T <= m) -- the multi-period search uses it. HS kinds: the
  tail just before the last return (VaR: the last loss is the VaR; ES: a share s of the tail's sum n ES in the
  last loss), the other returns +-d with d = min(sigma, half the smallest tail loss): entering and leaving
  returns never reach the tail, so the VaR / ES stays at r while the tail is in the window (T <= m - n).

Two-period closed form (Lemma 5): E[Pi] = alpha q (L - 2q) - kappa q^2 - (2 tau + rho M_t) q with
L = X(M_t) - X(M_t + Delta M(q)) computed exactly from the population (Delta M(q) from the input of the window
with P_t lowered by alpha q).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from margin_design.errors import InputError

from margin_design.calibration._checks import check_range
from margin_design.calibration.accounts import account_positions, c_eff_from_accounts, lemma11_slope_bound
from margin_design.calibration.risk_inputs import HS_KINDS, InputSpec, hs_state_returns, input_values, window_sensitivity
from .local import AuditMarket, feedback_gain
from .rules import Rule

__all__ = [
    "BAND_Z",
    "PROFIT_TOL",
    "AGREE_Z",
    "Population",
    "SimState",
    "Fundamentals",
    "simulate_trades",
    "market_recursion",
    "state_prices",
    "ProfitCurve",
    "round_trip_curve",
    "closed_form_profit",
    "SearchResult",
    "search_round_trips",
]

#: Normal quantile of the two-sided 95% confidence band of a Monte Carlo mean.
BAND_Z = 1.959963984540054
#: Exact expected profits below this (price units x ADV) count as zero (float rounding of sums of O(1) prices).
PROFIT_TOL = 1e-13
#: Monte Carlo agreement with the exact closed form: |mean - closed form| within this many standard errors.
#: (The profit of a two-period trip is linear in the fundamental shocks, so with common random numbers every
#: comparison in a state shares one z-score per trade direction; 4 keeps a false alarm below 1e-4 per direction.)
AGREE_Z = 4.0
#: Binding accounts target twice their cap at the benchmark margin; slack accounts half of it, so the binding set
#: does not change for margin moves between -50% and +100% (c_X is then an upper bound on the realised slope).
BIND_FACTOR = 2.0
SLACK_FACTOR = 0.5
#: Largest number of sampled prices (sequences x paths x window) simulated at once; more paths are run in chunks of
#: paths (each path is independent), so a 250-return HS window does not hold gigabytes (20,000 paths x 6 trades x 251).
SIM_CHUNK_PRICES = 4_000_000


@dataclass(frozen=True, eq=False)
class Population:
    """Constrained traders: ``equity`` E(i) and ``target`` x_bar(i) (ADV units, equal masses)."""

    equity: np.ndarray = field(repr=False)
    target: np.ndarray = field(repr=False)

    @classmethod
    def calibrated(
        cls, n: int, margin: float, c_eff: float, elasticity: float = 0.225, overshoot: float = BIND_FACTOR, dispersion: float = 0.5, seed: int = 0
    ) -> "Population":
        """n accounts with lognormal equity (log-sd ``dispersion``), calibrated at the benchmark ``margin`` M:

        * binding accounts target ``overshoot`` x their cap E/M (they re-lever if M falls, up to that factor);
        * slack accounts target about SLACK_FACTOR x their cap, so the binding set does not change for margin rises
          below 1/SLACK_FACTOR - 1 = 100%;
        * the binding accounts' share of exposure is ``elasticity`` (epsilon_XM = -dlog X/dlog M, 0.225 in the paper);
        * equities are scaled so that c_X (63) at M equals ``c_eff``; the sector's size is then
          tau = X = c_eff M / epsilon (ADV units; 1 at the paper's benchmark M = 5%, c_eff = 4.5).
        """
        if int(n) != n or n < 2:
            raise InputError(f"population size {n!r} must be an integer >= 2.")
        check_range("elasticity", elasticity, low=0.0, high=1.0, high_inclusive=False, what="in (0, 1) (binding share of exposure)")
        check_range("overshoot", overshoot, low=1.0, what="above 1 (binding targets exceed their caps)")
        check_range("margin", margin, low=0.0, what="positive (margin ratio)")
        rng = np.random.default_rng(seed)
        e = rng.lognormal(0.0, dispersion, int(n))
        # binding equity share such that slack accounts at SLACK_FACTOR x cap give the requested elasticity
        share = 1.0 / (1.0 + (1.0 / elasticity - 1.0) / SLACK_FACTOR)
        order = rng.permutation(int(n))
        cum = np.cumsum(e[order]) / e.sum()
        k = int(np.searchsorted(cum, share)) + 1
        bind = np.zeros(int(n), dtype=bool)
        bind[order[: min(k, int(n) - 1)]] = True
        slack = (1.0 / elasticity - 1.0) * e[bind].sum() / e[~bind].sum()
        x = np.where(bind, overshoot, slack) * e / margin
        scale = c_eff / c_eff_from_accounts(e, x, margin)
        return cls(e * scale, x * scale)

    def exposure(self, margins) -> np.ndarray:
        """X(M) = mean_i min{x_bar(i), E(i)/M} (7), ADV units, for every margin in ``margins`` (any shape)."""
        m = np.asarray(margins, dtype=float)
        u, inv = np.unique(m.ravel(), return_inverse=True)
        xs = np.empty(u.size)
        for k in range(0, u.size, 2048):
            chunk = u[k : k + 2048]
            xs[k : k + chunk.size] = account_positions(self.equity[None, :], self.target[None, :], chunk[:, None]).mean(axis=1)
        return xs[inv].reshape(m.shape)

    def c_x(self, margin: float) -> float:
        """c_X^eff = -dX/dM from the right at ``margin`` (63)."""
        return c_eff_from_accounts(self.equity, self.target, margin)


@dataclass(frozen=True)
class SimState:
    """Benchmark state S_t: the m - 1 earlier ``history`` returns and the benchmark last return R_t^(0) (< 0),
    the ``input`` spec (kind variance | realized_variance | hs_var | hs_es, window m) and the Rademacher ``step``
    of fundamentals that keeps it stationary (0 for the envelope state)."""

    history: tuple
    last_return: float
    input: InputSpec
    step: float = 0.0
    label: str = ""

    def __post_init__(self):
        if self.input.kind == "ewma":
            raise InputError("the market simulation supports the realised-variance inputs (variance, realized_variance), not ewma.")
        if len(self.history) != self.window - 1:
            raise InputError(f"the state needs {self.window - 1} earlier returns for a window of {self.window}, got {len(self.history)}.")

    @property
    def window(self) -> int:
        return max(int(self.input.window), 2) if self.input.kind == "variance" else int(self.input.window)

    @property
    def returns(self) -> np.ndarray:
        return np.asarray(tuple(self.history) + (self.last_return,), dtype=float)

    @property
    def spec(self) -> InputSpec:
        """The input spec with the state's window (m >= 2 for ``variance``)."""
        return InputSpec(self.input.kind, self.window, self.input.lam, self.input.level)

    @property
    def prices(self) -> np.ndarray:
        """The benchmark window P_{t-m}, ..., P_t (m + 1 prices, P_{t-m} = 1)."""
        return 1.0 + np.concatenate([[0.0], np.cumsum(self.returns)])

    @property
    def _w(self) -> float:
        return 1.0 if self.input.kind == "variance" else 1.0 / self.window

    @property
    def r(self) -> float:
        """The benchmark input Gamma_t^(0) (daily variance units): the sum (4) or mean of squares, else (HS) from the
        window by ``input_values``."""
        if self.input.kind in HS_KINDS:
            return float(input_values(self.spec, self.prices))
        return float(np.sum(self.returns**2) * self._w)

    def input_after(self, move) -> np.ndarray:
        """The input (daily variance) with P_t moved by ``move`` (price units, any shape; a sale of q moves it by
        -alpha q): Lemma 1's r + w ((R_t + move)^2 - R_t^2) for the variance kinds, else ``input_values``."""
        mv = np.asarray(move, dtype=float)
        if self.input.kind not in HS_KINDS:
            return self.r + self._w * ((self.last_return + mv) ** 2 - self.last_return**2)
        win = np.broadcast_to(self.prices, mv.shape + (self.window + 1,)).copy()
        win[..., -1] += mv
        return input_values(self.spec, win)

    def sensitivity_down(self) -> float:
        """D_-: the one-sided derivative of the input in P_t from below (a sale's side; daily variance per unit
        price): Lemma 1's -2 w R_t for the variance kinds, else by JAX (``window_sensitivity``)."""
        if self.input.kind not in HS_KINDS:
            return -2.0 * self._w * self.last_return
        return float(window_sensitivity(self.spec, self.prices).down)

    @classmethod
    def envelope(cls, r: float, window: int = 5, kind: str = "variance", level: float = 0.99) -> "SimState":
        """All of the input in the last return: |R_t^(0)| = sqrt(r / w), earlier returns zero (HS: the whole tail
        in the last loss, :func:`~margin_design.calibration.risk_inputs.state_window`). ``level`` p of HS kinds."""
        spec = InputSpec(kind, window, level=level)
        label = f"envelope, vol {math.sqrt(r):.4%}"
        if kind in HS_KINDS:
            rets = hs_state_returns(spec, r, math.sqrt(r / spec.weight))[0]
            return cls(tuple(float(x) for x in rets[:-1]), float(rets[-1]), spec, 0.0, label)
        m = max(window, 2) if kind == "variance" else window
        return cls(tuple([0.0] * (m - 1)), -math.sqrt(r / spec.weight), spec, 0.0, label)

    @classmethod
    def spread(cls, r: float, window: int = 5, share: float = 0.8, kind: str = "variance", level: float = 0.99) -> "SimState":
        """A ``share`` of the input in the last return, the rest in m - 1 earlier returns +-d; Rademacher step d
        (HS kinds: the module docstring)."""
        check_range("share", share, low=0.0, high=1.0, what="a share in (0, 1]")
        spec = InputSpec(kind, window, level=level)
        if kind in HS_KINDS:
            n, G = spec.tail, spec.value_per_vol * math.sqrt(r)
            es = kind == "hs_es" and n > 1
            last = share * n * G if es else G
            smallest = min(last, (n * G - last) / (n - 1)) if es else G
            d = min(math.sqrt(r), 0.5 * smallest)
            rets = hs_state_returns(spec, r, last, background=d)[0]
            return cls(tuple(float(x) for x in rets[:-1]), float(rets[-1]), spec, d,
                       f"spread ({share:.0%} of the tail in the last loss), vol {math.sqrt(r):.4%}" if es else f"spread (the tail statistic in the last loss), vol {math.sqrt(r):.4%}")
        m = max(window, 2) if kind == "variance" else window
        w = spec.weight
        d = math.sqrt((1.0 - share) * r / (w * (m - 1)))
        hist = tuple(d * (1.0 if k % 2 == 0 else -1.0) for k in range(m - 1))
        return cls(hist, -math.sqrt(share * r / w), spec, d, f"spread ({share:.0%} in the last return), vol {math.sqrt(r):.4%}")


@dataclass(frozen=True, eq=False)
class Fundamentals:
    """Increments eps_{t+1}, ..., eps_{t+T} of V (``shocks``, paths x T, price units) with path ``weights``;
    ``exact`` when the paths enumerate the distribution (the mean is then exact, its standard error 0)."""

    shocks: np.ndarray = field(repr=False)
    weights: np.ndarray = field(repr=False)
    exact: bool
    label: str

    @classmethod
    def normal(cls, sd: float, periods: int, paths: int, seed: int = 0) -> "Fundamentals":
        rng = np.random.default_rng(seed)
        return cls(sd * rng.standard_normal((int(paths), int(periods))), np.full(int(paths), 1.0 / paths), False, f"normal, sd {sd:.4g}, {paths} paths (seed {seed})")

    @classmethod
    def rademacher(cls, step: float, periods: int) -> "Fundamentals":
        signs = np.asarray(list(itertools.product((1.0, -1.0), repeat=int(periods))), dtype=float).reshape(-1, int(periods))
        return cls(step * signs, np.full(signs.shape[0], 1.0 / signs.shape[0]), True, f"+-{step:.4g} steps, all {signs.shape[0]} paths (exact)")

    def mean_se(self, values) -> tuple[np.ndarray, np.ndarray]:
        """Weighted mean over the last axis and its Monte Carlo standard error (0 when exact)."""
        v = np.asarray(values, dtype=float)
        mean = v @ self.weights
        if self.exact:
            return mean, np.zeros_like(mean)
        n = v.shape[-1]
        return mean, v.std(axis=-1, ddof=1) / math.sqrt(n)


def _input_values(state: SimState, windows: np.ndarray) -> np.ndarray:
    return input_values(state.spec, windows)


def state_prices(state: SimState) -> np.ndarray:
    """The benchmark window's prices P_{t-m}, ..., P_{t-1} (price units, P_{t-1} = 1) before the last return R_t^(0)."""
    prices0 = 1.0 + np.concatenate([[0.0], np.cumsum(state.returns[:-1])])   # P_{t-m} .. P_{t-1}
    return prices0 - prices0[-1] + 1.0


def market_recursion(xp, trades, shocks, prices0, v0, margin0, x0, margin_fn, exposure_fn, input_fn, market: AuditMarket, trace: bool = False):
    """The Section 2 market over periods u = t, ..., t + T, written once for NumPy (``xp = numpy``, the simulation)
    and JAX (``xp = jax.numpy``, the gradients of the T-update stress test, :mod:`.stress`).

    ``trades`` (sequences, T + 1) in ADV units; ``shocks`` (paths, >= T) the increments eps of V; ``prices0`` the m
    benchmark prices P_{t-m}..P_{t-1}; ``v0`` = V_t; ``margin0`` = M_t, ``x0`` = X(M_t) (the stationary benchmark);
    ``margin_fn`` g (3), ``exposure_fn`` X(M) (7), ``input_fn`` Gamma of a price window (last axis). Per period:
    P_u = V_u + alpha (Delta X_u + a_u) (2), cash -= a_u P_u + tau |a_u| (A.5), and while the trader holds y_u:
    cash -= rho M_u |y_u| + kappa y_u^2 ((11), A.5); then M_{u+1} = g(Gamma(P_{u-m+1..u})). Returns (cash
    (sequences, paths), trace dict of lists or None)."""
    n_seq, periods = trades.shape
    T = periods - 1
    shape = (n_seq, shocks.shape[0])
    m = prices0.shape[-1]
    margin = xp.full(shape, margin0)
    x_prev = xp.full(shape, x0)
    v = xp.full(shape, v0)
    win = xp.broadcast_to(prices0, shape + (m,))
    cash = xp.zeros(shape)
    y = xp.zeros(shape)
    kap, tau, rho, alpha = market.inventory_penalty, market.execution_cost, market.funding_spread, market.alpha
    rec = {k: [] for k in ("price", "fundamental", "margin", "flow")} if trace else None
    for u in range(periods):
        if u > 0:
            v = v + shocks[None, :, u - 1]
        x = exposure_fn(margin)
        au = trades[:, u][:, None]
        p = v + alpha * (x - x_prev + au)
        if rec is not None:
            rec["price"].append(p)
            rec["fundamental"].append(v)
            rec["margin"].append(margin)
            rec["flow"].append(x - x_prev)
        cash = cash - au * p - tau * xp.abs(au)
        y = y + au
        if u < T:
            cash = cash - rho * margin * xp.abs(y) - kap * y**2
        if u == T:   # the margin set after the last period is never used (and costs a window of m returns per path)
            break
        full = xp.concatenate([win, p[..., None]], axis=-1)
        margin = margin_fn(input_fn(full))
        win = full[..., 1:]
        x_prev = x
    return cash, rec


def simulate_trades(
    rule: Rule, population: Population, state: SimState, market: AuditMarket, trades, fundamentals: Fundamentals, *, trace: bool = False
):
    """Trader profit (price units x ADV) for every trade sequence (rows of ``trades``, ADV units, periods t..t+T)
    on every fundamental path: array (sequences, paths). With ``trace`` also a dict of arrays (sequences, paths,
    T + 1): ``price`` P_u, ``fundamental`` V_u, ``margin`` M_u in force, ``flow`` Delta X_u (constrained order flow).
    The recursion is :func:`market_recursion` (shared with the JAX stress test)."""
    a = np.atleast_2d(np.asarray(trades, dtype=float))
    n_seq, periods = a.shape
    T = periods - 1
    if fundamentals.shocks.shape[1] < T:
        raise InputError(f"the fundamentals cover {fundamentals.shocks.shape[1]} periods, the trades need {T}.")
    if T > state.window:
        raise InputError(f"horizon T = {T} exceeds the window m = {state.window}: the benchmark would drift when R_t leaves the window.")
    n_paths = fundamentals.shocks.shape[0]
    per_path = n_seq * (state.window + 1)
    if not trace and n_paths > 1 and per_path * n_paths > SIM_CHUNK_PRICES:
        step = max(1, SIM_CHUNK_PRICES // per_path)
        return np.concatenate([
            simulate_trades(rule, population, state, market, a,
                            Fundamentals(fundamentals.shocks[k : k + step], fundamentals.weights[k : k + step], fundamentals.exact, fundamentals.label))
            for k in range(0, n_paths, step)], axis=1)
    prices0 = state_prices(state)
    m0 = float(rule.margin(np.asarray(state.r)))           # M_t = g(Gamma_t^(0)) (stationary)
    x0 = float(population.exposure(m0))                     # X_{t-1} = X(M_t)
    cash, rec = market_recursion(np, a, fundamentals.shocks, prices0, prices0[-1] + state.last_return, m0, x0, rule.margin,
                                 population.exposure, lambda w: _input_values(state, w), market, trace)
    if not trace:
        return cash
    return cash, {k: np.stack(v, axis=-1) for k, v in rec.items()}


class MonteCarloBand:
    """The 95% band of a Monte Carlo mean profit: ``mean``, ``se`` and the exact ``closed_form`` arrays (per trigger
    size) of the subclass, and the one rule that decides "profitable" for the single-contract and portfolio audits."""

    @property
    def upper(self) -> np.ndarray:
        return self.mean + BAND_Z * self.se

    @property
    def lower(self) -> np.ndarray:
        return self.mean - BAND_Z * self.se

    @property
    def significantly_positive(self) -> np.ndarray:
        """Profit above zero beyond the band (lower band > 0)."""
        return self.lower > 0

    @property
    def z(self) -> np.ndarray:
        """(mean - closed form)/se: the Monte Carlo error in standard errors."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.se > 0, (self.mean - self.closed_form) / np.where(self.se > 0, self.se, 1.0), 0.0)

    @property
    def noise_excursion(self) -> np.ndarray:
        """Significantly positive by the Monte Carlo band while the exact expectation is <= 0 up to rounding
        (closed form <= PROFIT_TOL) and the Monte Carlo agrees with it (|z| <= AGREE_Z): a noise excursion. The
        two-period profit is the closed form plus a zero-mean term in the fundamental shocks shared by every q of a
        state (-a_{t+1}(V_{t+1} - V_t)), so where the exact profit is ~0 (a rule saturating the cap) or slightly
        negative the band's one-sided 2.5% false alarm fires in about one state in forty (more with few paths)."""
        return self.significantly_positive & (self.closed_form <= PROFIT_TOL) & (np.abs(self.z) <= AGREE_Z)

    @property
    def profitable(self) -> np.ndarray:
        """Profitable beyond Monte Carlo noise: significantly positive (lower band > 0), except a noise excursion.
        Where the Monte Carlo disagrees with the closed form (|z| > AGREE_Z) its verdict stands."""
        return self.significantly_positive & ~self.noise_excursion


@dataclass(frozen=True, eq=False)
class ProfitCurve(MonteCarloBand):
    """Expected profit of the two-period round trip (-q, +q) against q (ADV units), with its band.

    ``mean``/``se`` Monte Carlo mean and standard error (price units x ADV); ``closed_form`` alpha q (L - 2q) -
    kappa q^2 - (2 tau + rho M) q with the exact L; ``bound`` the Lemma 5 / (58) lower bound with interval
    constants (c_g the smallest right slope of g on [Gamma^(0), Gamma(q)], c_X Lemma 11's (55) on
    [M, M + Delta M], c_RV = D_- the input's one-sided slope in P_t from below, 2 w |R_t^(0)| for (4) and the mean); ``G`` that bound's gain (14); ``margin_move`` Delta M(q).
    """

    q: np.ndarray = field(repr=False)
    mean: np.ndarray = field(repr=False)
    se: np.ndarray = field(repr=False)
    closed_form: np.ndarray = field(repr=False)
    bound: np.ndarray = field(repr=False)
    G: np.ndarray = field(repr=False)
    margin_move: np.ndarray = field(repr=False)
    margin: float
    state: SimState
    fundamentals: str
    exact: bool

    def to_dict(self) -> dict:
        return {
            "state": self.state.label,
            "benchmark_input": self.state.r,
            "last_return": self.state.last_return,
            "margin_ratio": self.margin,
            "fundamentals": self.fundamentals,
            "band": "mean +- 1.96 standard errors (95%)" if not self.exact else "exact expectation",
            "q_adv": [float(v) for v in self.q],
            "mean": [float(v) for v in self.mean],
            "se": [float(v) for v in self.se],
            "closed_form": [float(v) for v in self.closed_form],
            "lemma5_bound": [float(v) for v in self.bound],
            "G": [float(v) for v in self.G],
            "margin_move": [float(v) for v in self.margin_move],
        }


def closed_form_profit(rule: Rule, population: Population, state: SimState, market: AuditMarket, q) -> tuple[np.ndarray, np.ndarray]:
    """(E[Pi], L) of the round trip (-q, +q) from Lemma 5's identity with the exact liquidation L (A.5 costs included).

    A negative q is the buy-first trip (+|q|, -|q|): the identity E[Pi] = alpha q (L - 2q) holds for either sign
    (L < 0 when the margin falls), the costs are charged on |q|."""
    q = np.asarray(q, dtype=float)
    a = market.alpha
    m0 = float(rule.margin(np.asarray(state.r)))
    gam = state.input_after(-a * q)
    L = population.exposure(m0) - population.exposure(rule.margin(gam))
    ex = a * q * (L - 2.0 * q) - market.inventory_penalty * q**2 - (2.0 * market.execution_cost + market.funding_spread * m0) * np.abs(q)
    return ex, L


def round_trip_curve(rule: Rule, population: Population, state: SimState, market: AuditMarket, q, fundamentals: Fundamentals) -> ProfitCurve:
    """Monte Carlo expected profit of (-q, +q) on the grid ``q`` (ADV units), with the closed form and Lemma 5's bound."""
    q = np.asarray(q, dtype=float)
    check_range("q", q, low=0.0, what="positive trigger sizes (ADV units)")
    trades = np.stack([-q, q], axis=1)
    prof = simulate_trades(rule, population, state, market, trades, fundamentals)
    mean, se = fundamentals.mean_se(prof)
    closed, _ = closed_form_profit(rule, population, state, market, q)
    a = market.alpha
    m0 = float(rule.margin(np.asarray(state.r)))
    c_rv = abs(state.sensitivity_down())   # 2 w |R_t| for the variance kinds (Lemma 1); HS: the module docstring
    G = np.empty(q.size)
    dm = np.empty(q.size)
    gams = state.input_after(-a * q)
    for k, qk in enumerate(q):
        g1 = float(gams[k])
        pts = np.linspace(state.r, g1, 257)
        c_g = min(float(np.min(rule.slope(pts[:-1], "right"))), float(rule.slope(pts[-1], "left"))) if g1 > state.r else 0.0
        dm[k] = float(rule.margin(np.asarray(g1))) - m0
        c_x = lemma11_slope_bound(population.equity, population.target, m0, max(dm[k], 0.0))
        G[k] = float(feedback_gain(a, c_x, c_g, c_rv))
    bound = (a * (G - 2.0) - market.inventory_penalty) * q**2 - (2.0 * market.execution_cost + market.funding_spread * m0) * q
    return ProfitCurve(q, mean, se, closed, bound, G, dm, m0, state, fundamentals.label, fundamentals.exact)


@dataclass(frozen=True)
class SearchResult:
    """Best open-loop round trip found per horizon T: ``best`` {T: (trades tuple in ADV units, mean, se)} and the
    overall best; ``searched`` number of sequences; ``positive`` how many had a mean above their band (> 1.96 se)."""

    best: dict
    overall: tuple
    searched: int
    positive: int
    lattice: tuple
    sizes: tuple
    fundamentals: str

    @property
    def profitable(self) -> bool:
        trades, mean, se = self.overall
        return mean - BAND_Z * se > 0

    def to_dict(self) -> dict:
        return {
            "searched": self.searched,
            "significantly_positive": self.positive,
            "lattice_units": list(self.lattice),
            "unit_sizes_adv": list(self.sizes),
            "fundamentals": self.fundamentals,
            "best_by_horizon": {str(T): {"trades_adv": list(t), "mean": m, "se": s} for T, (t, m, s) in sorted(self.best.items())},
            "best": {"trades_adv": list(self.overall[0]), "mean": self.overall[1], "se": self.overall[2]},
            "profitable": self.profitable,
        }


def search_round_trips(
    rule: Rule,
    population: Population,
    state: SimState,
    market: AuditMarket,
    fundamentals_for,
    horizons=(1, 2, 3, 4),
    sizes=(0.005, 0.01, 0.02),
    lattice=(-2, -1, 0, 1, 2),
) -> SearchResult:
    """Exhaustive search over open-loop round trips a_u = unit * k_u, k_u in ``lattice``, sum k = 0 (9), not all zero,
    for each horizon T in ``horizons`` and unit in ``sizes`` (ADV units). ``fundamentals_for(T)`` returns the
    :class:`Fundamentals` for T periods. The zero trade (profit 0) is always available, so a best mean <= 0
    means no profitable round trip was found."""
    best: dict = {}
    searched = positive = 0
    lat = tuple(int(k) for k in lattice)
    for T in horizons:
        ks = np.asarray([c + (-sum(c),) for c in itertools.product(lat, repeat=int(T)) if -sum(c) in lat and any(c + (-sum(c),))], dtype=float)
        if ks.size == 0:
            continue
        seqs = np.concatenate([u * ks for u in sizes], axis=0)
        fund = fundamentals_for(int(T))
        prof = simulate_trades(rule, population, state, market, seqs, fund)
        mean, se = fund.mean_se(prof)
        searched += seqs.shape[0]
        positive += int(np.sum(mean - BAND_Z * se > 0))
        i = int(np.argmax(mean))
        best[int(T)] = (tuple(float(x) for x in seqs[i]), float(mean[i]), float(se[i]))
    overall = max(best.values(), key=lambda t: t[1])
    return SearchResult(best, overall, searched, positive, lat, tuple(float(s) for s in sizes), fundamentals_for(max(horizons)).label)
