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
  or the ES multiple k_p sigma_hat with sigma_hat = sqrt(RV/(m - 1)), times sqrt(h)), :func:`scan_risk`
  (Section 4.2.3: the maximum over historical scenarios, the long and the short position's loss under each
  sampled return, times sqrt(h)) and :func:`hs_tail` (Section 4.2.3: historical-simulation VaR or ES, a quantile
  or tail mean of the window's one-day scenario losses L_j = -R_j of a long position).

Directional sensitivity (Definition 6, (48)): for s in {+1, -1},
D_s = lim_{h -> 0+} [Gamma(P_t + s h) - Gamma(P_t)] / h, computed as the JAX directional derivative of the
branch active on that side (``jax.jvp`` at P_t + s h with h = ``SIDE_STEP``), plus a jump
J_s = Gamma(P_t + s h) - Gamma(P_t) - D_s h when the input is discontinuous there (Proposition 2).
c_Gamma = max(D_+, D_-, 0) is the sensitivity constant of Assumption 5; the sale of a trigger q moves
P_t by -alpha q, so the margin rises when D_- > 0.

Historical-simulation inputs (``hs_var``, ``hs_es``; Section 4.2.3). The window's m returns give m scenario
losses L_j = -R_j (decimal loss per unit notional of a long position, one day); with n = ceil(m (1 - p)) tail
scenarios (:func:`~margin_design.calibration.tail.tail_count`, p = ``level``), VaR is the n-th largest loss and ES
the mean of the n largest. The rule is fed a daily variance (the project's convention, sigma = sqrt(r)), so the
tail statistic Gamma is read in variance units as in the portfolio functionals
(:mod:`.portfolio_risk`): r = (max(Gamma, 0) / k)^2 with k the normal model's value per unit daily vol,
k = z_p (VaR) or phi(z_p)/(1 - p) (ES) (:func:`~margin_design.calibration.tail.normal_multiple`). The map is
increasing, so a CCP rule M = g~(Gamma) is the rule M = g(r) with g = g~(k sqrt(.)); r is the daily variance of
normal returns with that VaR (ES).

One-sided sensitivity of the HS inputs. Hold P_{t-m}, ..., P_{t-1} fixed and move P_t by Delta: only the last
loss L_t = P_{t-1} - P_t changes, by -Delta. An order statistic of (L_1, ..., L_m) is piecewise linear and
continuous in L_t (no jumps: J_+ = J_- = 0), with slope 1 in L_t where L_t is the n-th largest loss and 0
elsewhere; the mean of the n largest has slope 1/n where L_t is inside the tail and 0 outside. So, with
b = 1 (VaR) or 1/n (ES) and Gamma > 0,

    D_- = 2 Gamma b / k^2 = 2 sqrt(r) b / k   if L_t is the active order statistic (VaR) / in the tail (ES),
          or sits exactly on the tail boundary from below (a push down makes it cross into the tail);
    D_- = 0                                     if L_t is strictly outside the tail (a small push cannot reach it);
    D_+ = -D_- where L_t is strictly inside, 0 on the boundary from below (a push up lowers a loss: never > 0).

(For VaR "active" means strictly between the neighbouring order statistics; tied with the (n-1)-th largest loss
from below it is D_- = 0 -- a push down hands the VaR to that loss -- and D_+ = -2 Gamma / k^2.)

The margin therefore rises only from a sale (D_-), and c_Gamma = max(D_+, D_-, 0) <= 2 sqrt(r) b / k at every
window whose input is r, with equality whenever the last loss is in the tail. For a finite push the same holds
globally: Gamma(P_t - Delta) - Gamma(P_t) <= b Delta for Delta > 0 (an order statistic is 1-Lipschitz in each
loss, the tail mean 1/n-Lipschitz), with equality while the last loss stays the active statistic (VaR) or in the
tail (ES). Hence r(P_t - Delta) <= r + 2 sqrt(r) b Delta / k + (b Delta / k)^2, which is the realised-variance
form r + 2 sqrt(w r) Delta + w Delta^2 with w = (b / k)^2 (:attr:`InputSpec.weight`): 1/z_p^2 for VaR and
1/(n k)^2 for ES. The worst case (the envelope, :func:`state_window`) puts the whole tail in the last return:
VaR: L_t = Gamma with the n - 1 larger losses at 2 Gamma; ES: L_t = n Gamma with the other tail scenarios at 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Callable

import numpy as np

from margin_design.errors import InputError

from ._jax import jax, jnp
from .tail import normal_multiple, tail_count, tail_statistic

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
    "hs_tail",
    "variance_equivalent",
    "HS_KINDS",
    "directional_sensitivity",
    "window_sensitivity",
    "hs_state_returns",
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
INPUT_KINDS = ("variance", "realized_variance", "ewma", "hs_var", "hs_es")
#: The historical-simulation kinds: a VaR (n-th largest loss) or ES (mean of the n largest) of the window's losses.
HS_KINDS = ("hs_var", "hs_es")
#: In the HS worst-case window the n - 1 losses above the VaR sit at this multiple of it (any value > 1 gives the
#: same sensitivity; 2, as the portfolio worst case, keeps a trigger moving the price by up to the VaR itself inside it).
HS_UPPER_MULTIPLE = 2.0


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


def var_multiple(prices, level: float = 0.99, horizon_days: float = 1.0, measure: str = "var"):
    """Section 4.2.2 margin: sqrt(h) k_p sigma_hat, sigma_hat = sqrt(RV/(m - 1)) with RV the sum (4); k_p = z_p
    (``var``) or phi(z_p)/(1 - p) (``es``), normal. Margin ratio per unit notional."""
    k = normal_multiple(level, measure)
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


def hs_tail(prices, level: float = 0.99, measure: str = "var"):
    """Section 4.2.3 historical simulation: the VaR (n-th largest) or ES (mean of the n largest, ``measure = 'es'``)
    of the window's m one-day scenario losses L_j = -R_j, n = ceil(m (1 - p)), p = ``level``. Margin ratio (decimal
    loss per unit notional of a long position). One implementation of the tail: :func:`.tail.tail_statistic`."""
    R = _returns(prices)
    return tail_statistic(-R, tail_count(R.shape[-1], level), measure == "es")


def variance_equivalent(gamma, k: float):
    """r = (max(Gamma, 0) / k)^2: a tail statistic Gamma (decimal loss) read as the daily variance (decimal^2) of
    normal returns with that VaR / ES, k its value per unit daily vol (module docstring)."""
    g = jnp.maximum(gamma, 0.0) / k
    return g * g


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
    r = mean of m squared returns (dr/dP = 2R/m); ``ewma``: r = lambda r_prev + (1 - lambda) R^2;
    ``hs_var`` / ``hs_es``: r = (Gamma / k)^2 with Gamma the historical-simulation VaR / ES at ``level`` p of the
    last ``window`` = m one-day losses (module docstring; dr/dP_t = -2 sqrt(r) b / k while the last loss is in the tail).
    """

    kind: str = "variance"
    window: int = 1
    lam: float = 0.94
    level: float = 0.99

    def __post_init__(self):
        if self.kind not in INPUT_KINDS:
            raise InputError(f"risk input = {self.kind!r} is not one of {', '.join(INPUT_KINDS)}.")
        if int(self.window) != self.window or self.window < 1:
            raise InputError(f"risk input window = {self.window!r} must be a positive integer number of returns.")
        if not 0 < self.lam < 1:
            raise InputError(f"risk input lambda = {self.lam!r} must be in (0, 1).")
        if not 0.5 < self.level < 1:
            raise InputError(f"risk input level = {self.level!r} must be in (0.5, 1) (the confidence level p of the VaR / ES).")

    @classmethod
    def of_cap(cls, cap) -> "InputSpec":
        """The input a design's cap is built for (a ``design.cap.CapSpec`` or anything with ``input``, ``window``,
        ``lam`` and ``level``): the window counts for realized_variance and the HS kinds, the level for HS only."""
        windowed = cap.input in ("realized_variance",) + HS_KINDS
        return cls(cap.input, int(cap.window) if windowed else 1, float(cap.lam), float(getattr(cap, "level", 0.99)))

    @property
    def measure(self) -> str | None:
        """'var' or 'es' for the historical-simulation kinds, else None."""
        return self.kind[3:] if self.kind in HS_KINDS else None

    @property
    def tail(self) -> int:
        """n = ceil(m (1 - p)): the number of tail scenarios of an HS kind (1 for the variance kinds)."""
        return tail_count(self.window, self.level) if self.kind in HS_KINDS else 1

    @property
    def value_per_vol(self) -> float | None:
        """k: an HS kind's VaR / ES per unit daily vol in the normal model (z_p or phi(z_p)/(1 - p)); None otherwise."""
        return normal_multiple(self.level, self.measure) if self.kind in HS_KINDS else None

    @property
    def weight(self) -> float:
        """w with r(P_t - Delta) = r + 2 sqrt(w r) Delta + w Delta^2 at the envelope (Delta > 0 a push down of the
        last price): the weight of the last squared return in r, 1, 1/m or 1 - lambda; (1/k)^2 for HS VaR and
        (1/(n k))^2 for HS ES (module docstring). The cap factor of ``design.cap`` is 1/sqrt(w)."""
        if self.kind in HS_KINDS:
            b = 1.0 if self.kind == "hs_var" else 1.0 / self.tail
            return (b / self.value_per_vol) ** 2
        return {"variance": 1.0, "realized_variance": 1.0 / self.window, "ewma": 1.0 - self.lam}[self.kind]

    def describe(self) -> str:
        if self.kind in HS_KINDS:
            name = "VaR" if self.kind == "hs_var" else "ES"
            return (f"r = (HS {name} / {self.value_per_vol:.4g})^2, historical-simulation {name} at {self.level:g} of the last "
                    f"{self.window} daily losses ({self.tail} tail scenario{'s' if self.tail > 1 else ''}), in daily variance units")
        return {
            "variance": "r = sum of the window's squared returns (4)",
            "realized_variance": f"r = mean of the last {self.window} squared daily returns",
            "ewma": f"r = EWMA with lambda = {self.lam:g}",
        }[self.kind]


def envelope_last_return(spec: InputSpec, r) -> np.ndarray:
    """The worst-case |R_t| at input r, sqrt(r / weight): for the variance kinds the largest |R_t| compatible with
    r (all of the window's variance in the last return); for HS the whole tail in the last loss (the VaR itself,
    or n ES with the other tail scenarios at 0)."""
    return np.sqrt(np.asarray(r, dtype=float) / spec.weight)


def hs_state_returns(spec: InputSpec, r, last_loss, background=0.0) -> np.ndarray:
    """Returns (n_states, m) of an HS window whose input equals r, with last return R_t = -last_loss.

    Gamma = k sqrt(r) is the VaR (ES) the window must have. The tail sits just before the last return (so a window
    rolled forward by up to m - n periods keeps it): VaR (and ES with n = 1) -- the n - 1 losses above the VaR at
    HS_UPPER_MULTIPLE x Gamma, and, unless ``last_loss`` is the VaR itself (the envelope), one more scenario at Gamma
    (the last loss is then outside the tail: no first-order sensitivity); ES with n >= 2 -- the other n - 1 tail
    scenarios share n Gamma - last_loss equally. The rest of the window has returns +-``background`` (alternating,
    oldest first), which must lie below every tail loss. ``last_loss`` (decimal) must be in [0, the envelope];
    window m = 1 has only the envelope.
    """
    if spec.kind not in HS_KINDS:
        raise InputError(f"hs_state_returns applies to the HS inputs ({', '.join(HS_KINDS)}), not {spec.kind!r}.")
    r = np.atleast_1d(np.asarray(r, dtype=float))
    m, n = spec.window, spec.tail
    G = spec.value_per_vol * np.sqrt(r)
    env = envelope_last_return(spec, r)
    L = np.broadcast_to(np.asarray(last_loss, dtype=float), r.shape).copy()
    if m == 1:
        L = env
    d = np.broadcast_to(np.asarray(background, dtype=float), r.shape)
    signs = np.where(np.arange(m) % 2 == 0, 1.0, -1.0)
    rets = d[:, None] * signs[None, :]
    if spec.kind == "hs_var" or n == 1:
        at_env = L >= G * (1.0 - 1e-12)
        L = np.where(at_env, G, L)
        rets[:, m - n : m - 1] = -HS_UPPER_MULTIPLE * G[:, None]
        below = ~at_env
        rets[below, m - n - 1] = -G[below]
        smallest = G
    else:
        v = (n * G - L) / (n - 1)
        rets[:, m - n : m - 1] = -v[:, None]
        smallest = np.minimum(v, L)
    if np.any((d > 0) & (d >= smallest)):
        raise InputError("the background returns of an HS window must be smaller than every tail loss.")
    rets[:, -1] = -L
    return rets


def state_window(spec: InputSpec, r, last_return=None):
    """Price windows (and the EWMA seed) whose input equals r with last return R_t = -|last_return|.

    ``last_return`` None is the envelope (:func:`envelope_last_return`); values above it are clipped to it.
    The other m - 1 returns (variance kinds) share the rest of the window's variance equally, with
    alternating signs; for ``ewma`` the window is one return and the seed is r_prev = (r - (1 - lambda) R^2)/lambda;
    HS kinds: :func:`hs_state_returns` with earlier non-tail returns 0.
    Returns (prices of shape (n, m + 1), seed of shape (n,), |R_t| used).
    """
    r = np.atleast_1d(np.asarray(r, dtype=float))
    env = envelope_last_return(spec, r)
    R = env if last_return is None else np.minimum(np.abs(np.broadcast_to(np.asarray(last_return, dtype=float), r.shape)), env)
    if spec.kind in HS_KINDS:
        rets = hs_state_returns(spec, r, R)
        R = -rets[:, -1]
        seed = np.zeros_like(r)
    elif spec.kind == "ewma":
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


def _rule_input(prices, kind: str, lam: float, seed, level: float = 0.99):
    """The rule's input r from the price window: (4), its mean over the window, the EWMA from ``seed``, or the
    variance equivalent of the HS VaR / ES at ``level``."""
    if kind == "variance":
        return sampled_variance(prices, mean=False)
    if kind == "realized_variance":
        return sampled_variance(prices, mean=True)
    if kind in HS_KINDS:
        measure = kind[3:]
        return variance_equivalent(hs_tail(prices, level, measure), normal_multiple(level, measure))
    return sampled_ewma(prices, lam, seed)


_rule_input_jit = jax.jit(_rule_input, static_argnums=(1, 2, 4))


def input_values(spec: InputSpec, prices, seed=0.0) -> np.ndarray:
    """The rule's input r for price windows ``prices`` (last axis), compiled once per shape."""
    return np.asarray(_rule_input_jit(jnp.asarray(prices, dtype=jnp.float64), spec.kind, float(spec.lam), jnp.asarray(seed, dtype=jnp.float64),
                                      float(spec.level)))


def window_sensitivity(spec: InputSpec, prices, seed=0.0) -> Sensitivity:
    """D_+, D_- and the jumps of the rule's input r in the last price of each window ``prices`` (last axis), by JAX
    (:func:`directional_sensitivity`; daily variance per unit price)."""
    p = np.asarray(prices, dtype=float)
    s = np.broadcast_to(np.asarray(seed, dtype=float), p.shape[:-1])
    return directional_sensitivity(_rule_input, p, spec.kind, float(spec.lam), s, float(spec.level))


def input_sensitivity(spec: InputSpec, r, last_return=None) -> tuple[np.ndarray, np.ndarray]:
    """(c_Gamma, |R_t|): the sensitivity of the rule's input to the last sampled price at each state r, by JAX
    (Lemma 1 for (4): 2|R_t|; 2|R_t|/m for the mean; 2 (1 - lambda) |R_t| for the EWMA; 2 sqrt(r)/z_p for HS VaR
    and 2 sqrt(r)/(n k) for HS ES while the last loss is in the tail, 0 outside it), and the |R_t| used."""
    prices, seed, R = state_window(spec, r, last_return)
    return window_sensitivity(spec, prices, seed).c_gamma, R
