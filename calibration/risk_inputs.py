"""Price-based risk inputs and their directional sensitivity to the last sampled price (Nicolai 2026, Sections
3.3, 4.2, Appendix A.1, A.3), by JAX autodiff, one-sided where the input is not smooth.

A risk input is a function of the sampled price window ``prices = (P_{t-m}, ..., P_t)`` (last axis; leading
axes broadcast), with additive returns R_j = P_j - P_{j-1} as in the model of Section 2 (prices near 1,
so a return is a decimal price change per unit notional). Two kinds:

* ``variance`` inputs, in daily variance units (decimal^2), are fed to the rule M = g(Gamma):
  :func:`sampled_variance` ((4) with ``mean=False``; divided by m, the project's daily variance, by default),
  :func:`sampled_ewma` (RiskMetrics recursion over the window from a seed variance), :func:`trimmed_variance` ((22):
  returns with |R| > c dropped) and :func:`winsorized_variance` (R^2 capped at c^2);
* ``margin`` inputs are margins themselves (margin ratio): :func:`var_multiple` (Section 4.2.2: z_p sigma_hat
  or the ES multiple k_p sigma_hat with sigma_hat = sqrt(RV/(m - 1)), times sqrt(h)) and :func:`scan_risk`
  (Section 4.2.3: the maximum over historical scenarios, the long and the short position's loss under each
  sampled return, times sqrt(h)).

Directional sensitivity (Definition 6, (48)): for s in {+1, -1},
D_s = lim_{h -> 0+} [Gamma(P_t + s h) - Gamma(P_t)] / h, computed as the JAX directional derivative of the
branch active on that side (``jax.jvp`` at P_t + s h with h = ``SIDE_STEP``), plus a jump
J_s = Gamma(P_t + s h) - Gamma(P_t) - D_s h when the input is discontinuous there (Proposition 2).
c_Gamma = max(D_+, D_-, 0) is the sensitivity constant of Assumption 5; the sale of a trigger q moves
P_t by -alpha q, so the margin rises when D_- > 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Callable

import numpy as np

from margin_design.errors import InputError

from ._jax import jax, jnp

__all__ = [
    "SIDE_STEP",
    "INPUT_KINDS",
    "InputSpec",
    "sampled_variance",
    "sampled_ewma",
    "trimmed_variance",
    "winsorized_variance",
    "var_multiple",
    "scan_risk",
    "directional_sensitivity",
    "state_window",
    "input_sensitivity",
    "input_values",
    "envelope_last_return",
]

#: Offset (price units, prices near 1) at which a one-sided derivative is read: h -> 0+ in (48).
SIDE_STEP = 1e-9
#: A change of the input beyond D_s h larger than this relative amount is a jump.
JUMP_RTOL = 1e-7
#: Risk inputs a rule's r can be built from (named as in the design config's [cap] input).
INPUT_KINDS = ("variance", "realized_variance", "ewma")


def _returns(prices):
    return jnp.diff(jnp.asarray(prices, dtype=jnp.float64), axis=-1)


def sampled_variance(prices, mean: bool = True):
    """Realised variance of the window's m returns: sum R_j^2 ((4), ``mean=False``) or its mean (daily variance)."""
    R = _returns(prices)
    s = jnp.sum(R**2, axis=-1)
    return s / R.shape[-1] if mean else s


def sampled_ewma(prices, lam: float, seed_variance):
    """EWMA r = lambda^m r_seed + (1 - lambda) sum_j lambda^(m-1-j) R_j^2 over the window (daily variance)."""
    R = _returns(prices)
    m = R.shape[-1]
    w = (1.0 - lam) * lam ** jnp.arange(m - 1, -1, -1, dtype=jnp.float64)
    return lam**m * jnp.asarray(seed_variance, dtype=jnp.float64) + jnp.sum(w * R**2, axis=-1)


def trimmed_variance(prices, cutoff, mean: bool = True):
    """(22): sum_j R_j^2 1{|R_j| <= c} (divided by m if ``mean``); c = ``cutoff`` (decimal daily return)."""
    R = _returns(prices)
    c = jnp.asarray(cutoff, dtype=jnp.float64)[..., None] if jnp.ndim(cutoff) else cutoff
    s = jnp.sum(jnp.where(jnp.abs(R) <= c, R**2, 0.0), axis=-1)
    return s / R.shape[-1] if mean else s


def winsorized_variance(prices, cutoff, mean: bool = True):
    """sum_j min(R_j^2, c^2) (divided by m if ``mean``): continuous, flat in R_t once |R_t| >= c (Section 4.2.4)."""
    R = _returns(prices)
    c = jnp.asarray(cutoff, dtype=jnp.float64)[..., None] if jnp.ndim(cutoff) else cutoff
    s = jnp.sum(jnp.minimum(R**2, c**2), axis=-1)
    return s / R.shape[-1] if mean else s


def _normal_multiple(level: float, measure: str) -> float:
    from scipy.stats import norm

    z = float(norm.ppf(level))
    if measure == "var":
        return z
    if measure == "es":
        return float(norm.pdf(z) / (1.0 - level))
    raise InputError(f"measure = {measure!r} is not one of var, es.")


def var_multiple(prices, level: float = 0.99, horizon_days: float = 1.0, measure: str = "var"):
    """Section 4.2.2 margin: sqrt(h) k_p sigma_hat, sigma_hat = sqrt(RV/(m - 1)) with RV the sum (4); k_p = z_p
    (``var``) or phi(z_p)/(1 - p) (``es``), normal. Margin ratio per unit notional."""
    k = _normal_multiple(level, measure)
    R = _returns(prices)
    m = R.shape[-1]
    if m < 2:
        raise InputError("a VaR/ES multiple needs a window of at least 2 returns (sigma_hat = sqrt(RV/(m - 1))).")
    return math.sqrt(horizon_days) * k * jnp.sqrt(jnp.sum(R**2, axis=-1) / (m - 1))


def scan_risk(prices, horizon_days: float = 1.0, multiplier: float = 1.0):
    """Section 4.2.3 scan risk: max over historical scenarios of the long (-R_j) and short (+R_j) loss, times
    sqrt(h) and a scan multiplier: a maximum, with kinks where the worst scenario changes. Margin ratio."""
    R = _returns(prices)
    return math.sqrt(horizon_days) * multiplier * jnp.max(jnp.concatenate([R, -R], axis=-1), axis=-1)


@dataclass(frozen=True)
class Sensitivity:
    """One-sided sensitivities of an input to the last sampled price (arrays over the leading axes).

    ``value`` Gamma at the window; ``up`` D_+ and ``down`` D_- (input units per unit price, in the direction of
    the move, (48)); ``jump_up``, ``jump_down`` the discontinuities J_s on each side (input units; 0 if
    continuous); ``c_gamma`` = max(D_+, D_-, 0) (Assumption 5); ``direction`` +1 when the larger rise is
    from pushing the price up (a buy trigger), -1 from pushing it down (a sale, the paper's case).
    """

    value: np.ndarray
    up: np.ndarray
    down: np.ndarray
    jump_up: np.ndarray
    jump_down: np.ndarray

    @property
    def c_gamma(self) -> np.ndarray:
        return np.maximum(np.maximum(self.up, self.down), 0.0)

    @property
    def direction(self) -> np.ndarray:
        return np.where(self.up > self.down, 1, -1)


def _is_static(a) -> bool:
    return isinstance(a, (str, bool, int, float)) and not isinstance(a, np.generic)


@partial(jax.jit, static_argnums=(0, 1))
def _sensitivity_kernel(fn: Callable, static: tuple, p, h, dynamic: tuple):
    """Gamma at p and, for s = +1, -1: Gamma(p + s h) and the derivative extrapolated to h -> 0+ (one compile per shape)."""
    args = [None] * (len(static) + len(dynamic))
    for i, a in static:
        args[i] = a
    free = [i for i in range(len(args)) if all(i != j for j, _ in static)]
    for i, a in zip(free, dynamic):
        args[i] = a

    def f(q):
        return fn(q, *args)

    last = jnp.zeros(p.shape, dtype=jnp.float64).at[..., -1].set(1.0)
    out = [f(p)]
    for s in (1.0, -1.0):
        v1, d1 = jax.jvp(f, (p + s * h * last,), (s * last,))
        _, d2 = jax.jvp(f, (p + 2.0 * s * h * last,), (s * last,))
        out += [v1, 2.0 * d1 - d2]
    return tuple(out)


def directional_sensitivity(fn: Callable, prices, *args, h: float = SIDE_STEP) -> Sensitivity:
    """D_+, D_- and the jumps J_+, J_- of ``fn(prices, *args)`` in the last price (see the module docstring).

    The one-sided derivative is the derivative of the branch active on that side, extrapolated to h -> 0+ from
    its values at P_t + s h and P_t + 2 s h (2 d(h) - d(2h): exact for branches that are quadratic in P_t,
    error O(h^2) otherwise). ``args`` are passed to ``fn``: Python scalars and strings as constants, arrays as
    traced inputs; the computation is compiled once per (fn, constants, shapes), so pass a module-level ``fn``.
    """
    p = jnp.asarray(prices, dtype=jnp.float64)
    static = tuple((i, a) for i, a in enumerate(args) if _is_static(a))
    dynamic = tuple(jnp.asarray(a, dtype=jnp.float64) for a in args if not _is_static(a))
    g0, vu, du, vd, dd = (np.asarray(x) for x in _sensitivity_kernel(fn, static, p, h, dynamic))
    scale = np.maximum(np.maximum(np.abs(g0), np.abs(vu)), np.maximum(np.abs(vd), 1e-300))
    ju = vu - g0 - du * h
    jd = vd - g0 - dd * h
    ju = np.where(np.abs(ju) > JUMP_RTOL * scale, ju, 0.0)
    jd = np.where(np.abs(jd) > JUMP_RTOL * scale, jd, 0.0)
    return Sensitivity(g0, du, dd, ju, jd)


# ----------------------------------------------------------------------------------------------
# The rule's own input: windows that reproduce a state r with a given last return
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InputSpec:
    """How the rule's input r is built from sampled prices (the design config's [cap] input).

    ``variance``: r = sum of the window's squared returns, (4) (dr/dP = 2R, Lemma 1); ``realized_variance``:
    r = mean of m squared returns (dr/dP = 2R/m); ``ewma``: r = lambda r_prev + (1 - lambda) R^2.
    """

    kind: str = "variance"
    window: int = 1
    lam: float = 0.94

    def __post_init__(self):
        if self.kind not in INPUT_KINDS:
            raise InputError(f"risk input = {self.kind!r} is not one of {', '.join(INPUT_KINDS)}.")
        if int(self.window) != self.window or self.window < 1:
            raise InputError(f"risk input window = {self.window!r} must be a positive integer number of returns.")
        if not 0 < self.lam < 1:
            raise InputError(f"risk input lambda = {self.lam!r} must be in (0, 1).")

    @property
    def weight(self) -> float:
        """Weight of the last squared return in r: 1, 1/m or 1 - lambda."""
        return {"variance": 1.0, "realized_variance": 1.0 / self.window, "ewma": 1.0 - self.lam}[self.kind]

    def describe(self) -> str:
        return {
            "variance": "r = sum of the window's squared returns (4)",
            "realized_variance": f"r = mean of the last {self.window} squared daily returns",
            "ewma": f"r = EWMA with lambda = {self.lam:g}",
        }[self.kind]


def envelope_last_return(spec: InputSpec, r) -> np.ndarray:
    """The largest |R_t| compatible with r: all of the window's variance in the last return, sqrt(r / weight)."""
    return np.sqrt(np.asarray(r, dtype=float) / spec.weight)


def state_window(spec: InputSpec, r, last_return=None):
    """Price windows (and the EWMA seed) whose input equals r with last return R_t = -|last_return|.

    ``last_return`` None is the envelope (:func:`envelope_last_return`); values above it are clipped to it.
    The other m - 1 returns (variance kinds) share the rest of the window's variance equally, with
    alternating signs; for ``ewma`` the window is one return and the seed is r_prev = (r - (1 - lambda) R^2)/lambda.
    Returns (prices of shape (n, m + 1), seed of shape (n,), |R_t| used).
    """
    r = np.atleast_1d(np.asarray(r, dtype=float))
    env = envelope_last_return(spec, r)
    R = env if last_return is None else np.minimum(np.abs(np.broadcast_to(np.asarray(last_return, dtype=float), r.shape)), env)
    if spec.kind == "ewma":
        seed = np.maximum((r - (1.0 - spec.lam) * R**2) / spec.lam, 0.0)
        rets = -R[:, None]
    else:
        m = max(spec.window, 2) if spec.kind == "variance" else spec.window
        total = r / spec.weight if spec.kind == "variance" else r * m
        rest = np.maximum(total - R**2, 0.0)
        if m > 1:
            other = np.sqrt(rest / (m - 1))
            signs = np.where(np.arange(m - 1) % 2 == 0, 1.0, -1.0)
            rets = np.concatenate([other[:, None] * signs[None, :], -R[:, None]], axis=1)
        else:
            rets = -R[:, None]
        seed = np.zeros_like(r)
    prices = 1.0 + np.concatenate([np.zeros((r.size, 1)), np.cumsum(rets, axis=1)], axis=1)
    return prices, seed, R


def _rule_input(prices, kind: str, lam: float, seed):
    """The rule's input r from the price window: (4), its mean over the window, or the EWMA from ``seed``."""
    if kind == "variance":
        return sampled_variance(prices, mean=False)
    if kind == "realized_variance":
        return sampled_variance(prices, mean=True)
    return sampled_ewma(prices, lam, seed)


_rule_input_jit = jax.jit(_rule_input, static_argnums=(1, 2))


def input_values(spec: InputSpec, prices, seed=0.0) -> np.ndarray:
    """The rule's input r for price windows ``prices`` (last axis), compiled once per shape."""
    return np.asarray(_rule_input_jit(jnp.asarray(prices, dtype=jnp.float64), spec.kind, float(spec.lam), jnp.asarray(seed, dtype=jnp.float64)))


def input_sensitivity(spec: InputSpec, r, last_return=None) -> tuple[np.ndarray, np.ndarray]:
    """(c_Gamma, |R_t|): the sensitivity of the rule's input to the last sampled price at each state r, by JAX
    (Lemma 1 for (4): 2|R_t|; 2|R_t|/m for the mean; 2 (1 - lambda) |R_t| for the EWMA), and the |R_t| used."""
    prices, seed, R = state_window(spec, r, last_return)
    sens = directional_sensitivity(_rule_input, prices, spec.kind, float(spec.lam), seed)
    return sens.c_gamma, R
