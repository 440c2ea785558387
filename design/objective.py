"""The per-state objective Psi(r, M; z) of (31)-(32) as small pure JAX functions (float64).

Units: M is the margin ratio (per unit notional); r the daily variance; D = sqrt(horizon_days r) Y the
close-out loss per unit notional over the margin period (30).

Cost objective (``kind = "cost"``), per state::

    Psi(r, M) = E[l(D - M)]                                     coverage, l = x_+ or x_+^2/2      (31)
              + carry * M                                       carrying cost kappa_M * M          (31)
              + lambda_L * C(c_eff * (M - M_-)_+)               liquidation, C(x) = x^2/2 or x     (32)
              + lambda_P * H(1 - N(M, M_-)),  N = 1 - beta (M - M_-)_+,  H(x) = x or x^2/2        (32)

Every term is convex in M (an expectation of a convex function, a linear term, and convex
non-decreasing C, H composed with the convex (M - M_-)_+), so any combination with non-negative
weights is convex; :func:`check_convexity` verifies this numerically on the grid.

The linear forms C(x) = x and H(x) = x put a kink at M = M_-. They are kept out of the smooth part:
Psi = Psi_smooth + K (M - M_-)_+ with the kink weight K = lambda_L c_eff [C linear] + lambda_P beta
[H linear]. Solvers treat the kink exactly (one-sided derivatives, cvxpy ``pos``), never by smoothing.
The quadratic forms put a jump Q = lambda_L c_eff^2 [C quadratic] + lambda_P beta^2 [H quadratic] into
d2Psi/dM2 at the same point, so

    Psi = Psi_rest + Q/2 (M - M_-)_+^2 + K (M - M_-)_+,

with Psi_rest (coverage and carry) twice continuously differentiable. Newton models Psi_rest by its
Taylor expansion and keeps the piecewise part exact (:mod:`margin_design.solvers.chain_pw`).

Target objective (``kind = "target"``), the quadratic approximation of Appendix D.2: per state
Psi = h / 2 (M - t)^2 with target t (margin ratio) and curvature h (default 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from margin_design.design.shocks import ShockSpec, coverage_terms, exceedance

LOSSES = ("shortfall", "squared_shortfall")
COST_FORMS = ("quadratic", "linear")
TERMS = ("coverage", "carry", "liquidation", "participation")


@dataclass(frozen=True)
class CostSpec:
    """What a margin costs in one state, the cost objective (31)-(32): expected coverage shortfall of the close-out
    loss, the carrying cost of posted margin, the cost of forced liquidation when margin rises above the previous
    level, and lost participation. Rates are per unit notional; ``c_eff`` in ADV units.

    ``carry`` is kappa_M (cost per unit of margin), ``prev_margin`` is M_-(z) (margin ratio before the
    reset), ``liquidation_weight`` lambda_L, ``participation_weight`` lambda_P, ``participation_beta``
    beta (share of cleared activity lost per unit of margin increase), ``c_eff`` c_X^eff(z).
    """

    shock: ShockSpec
    loss: str = "shortfall"
    carry: float = 0.01
    prev_margin: float = 0.0
    liquidation_weight: float = 0.0
    liquidation_cost: str = "quadratic"
    participation_weight: float = 0.0
    participation_beta: float = 0.0
    participation_cost: str = "linear"
    c_eff: float = 1.0

    kind = "cost"

    @property
    def static(self) -> tuple:
        """Hashable structure passed to the jitted functions as a static argument."""
        return ("cost", self.loss, self.liquidation_cost, self.participation_cost, self.shock.static)

    def params(self) -> dict:
        """Differentiable parameters as a pytree of float64 arrays."""
        f = partial(jnp.asarray, dtype=jnp.float64)
        return {
            "carry": f(self.carry),
            "prev_margin": f(self.prev_margin),
            "liquidation_weight": f(self.liquidation_weight),
            "participation_weight": f(self.participation_weight),
            "participation_beta": f(self.participation_beta),
            "c_eff": f(self.c_eff),
            "shock": self.shock.params(),
        }


@dataclass(frozen=True)
class TargetSpec:
    """Quadratic target objective Psi = h/2 (M - t)^2 (Appendix D.2): ``target`` t (margin ratio) and
    ``curvature`` h per state, on the states read from the target CSV."""

    target: np.ndarray = field(repr=False)
    curvature: np.ndarray = field(repr=False)

    kind = "target"
    static = ("target",)

    def params(self) -> dict:
        return {"target": jnp.asarray(self.target, jnp.float64), "curvature": jnp.asarray(self.curvature, jnp.float64)}


def _pos(x):
    return jnp.maximum(x, 0.0)


def psi_terms(static: tuple, params: dict, r, M) -> dict:
    """Each term of Psi(r, M) per state (arrays broadcast over r and M); kinked terms included."""
    if static[0] == "target":
        return {"target": 0.5 * params["curvature"] * (M - params["target"]) ** 2}
    _, loss, liq_form, part_form, shock_static = static
    s = jnp.sqrt(params["shock"]["horizon_days"] * r)
    me, sq = coverage_terms(shock_static, params["shock"], s, M)
    x = _pos(M - params["prev_margin"])
    lx = params["c_eff"] * x
    px = params["participation_beta"] * x
    return {
        "coverage": me if loss == "shortfall" else sq,
        "carry": params["carry"] * M,
        "liquidation": params["liquidation_weight"] * (0.5 * lx * lx if liq_form == "quadratic" else lx),
        "participation": params["participation_weight"] * (px if part_form == "linear" else 0.5 * px * px),
    }


def psi(static: tuple, params: dict, r, M):
    """Psi(r, M; z) of (31)-(32) per state, including kinked terms."""
    return sum(psi_terms(static, params, r, M).values())


def kink_weight(static: tuple, params: dict):
    """K in Psi = Psi_smooth + K (M - M_-)_+ : the jump of dPsi/dM at M = M_- (0 if no linear form)."""
    if static[0] == "target":
        return jnp.asarray(0.0)
    _, _, liq_form, part_form, _ = static
    k = jnp.asarray(0.0)
    if liq_form == "linear":
        k = k + params["liquidation_weight"] * params["c_eff"]
    if part_form == "linear":
        k = k + params["participation_weight"] * params["participation_beta"]
    return k


def curvature_jump(static: tuple, params: dict):
    """Q in Psi = Psi_rest + Q/2 (M - M_-)_+^2 + K (M - M_-)_+ : the jump of d2Psi/dM2 at M = M_- (0 if none)."""
    if static[0] == "target":
        return jnp.asarray(0.0)
    _, _, liq_form, part_form, _ = static
    q = jnp.asarray(0.0)
    if liq_form == "quadratic":
        q = q + params["liquidation_weight"] * params["c_eff"] ** 2
    if part_form == "quadratic":
        q = q + params["participation_weight"] * params["participation_beta"] ** 2
    return q


def kink_location(static: tuple, params: dict):
    """M_- (the kink of the linear cost forms); +inf for the target objective."""
    return jnp.asarray(jnp.inf) if static[0] == "target" else params["prev_margin"]


def psi_smooth(static: tuple, params: dict, r, M):
    """Psi minus its kinked part K (M - M_-)_+; continuously differentiable in M."""
    full = psi(static, params, r, M)
    if static[0] == "target":
        return full
    return full - kink_weight(static, params) * _pos(M - params["prev_margin"])


def psi_rest(static: tuple, params: dict, r, M):
    """Psi minus its piecewise part Q/2 (M - M_-)_+^2 + K (M - M_-)_+: coverage and carry, C^2 in M."""
    if static[0] == "target":
        return psi(static, params, r, M)
    terms = psi_terms(static, params, r, M)
    return terms["coverage"] + terms["carry"]


@partial(jax.jit, static_argnums=0)
def model_derivatives(static: tuple, params: dict, r, w, M):
    """(J, dPsi_rest/dM, d2Psi_rest/dM2): what a Newton step needs besides the exact piecewise part."""

    def total(m):
        return jnp.sum(psi_rest(static, params, r, m))

    d1, d2 = jax.jvp(jax.grad(total), (M,), (jnp.ones_like(M),))
    return jnp.sum(w * psi(static, params, r, M)), d1, d2


@partial(jax.jit, static_argnums=0)
def smooth_derivatives(static: tuple, params: dict, r, M):
    """(dPsi_smooth/dM, d2Psi_smooth/dM2) per state, by forward-over-reverse autodiff (Psi is separable)."""

    def total(m):
        return jnp.sum(psi_smooth(static, params, r, m))

    g = jax.grad(total)
    d1, d2 = jax.jvp(g, (M,), (jnp.ones_like(M),))
    return d1, d2


@partial(jax.jit, static_argnums=0)
def value_and_derivatives(static: tuple, params: dict, r, w, M):
    """(J, dPsi_smooth/dM, d2Psi_smooth/dM2) in one XLA computation: Newton needs all three at each iterate."""
    d1, d2 = smooth_derivatives(static, params, r, M)
    return jnp.sum(w * psi(static, params, r, M)), d1, d2


@partial(jax.jit, static_argnums=0)
def weighted_value(static: tuple, params: dict, r, w, M):
    """J = sum_i w_i Psi(r_i, M_i): the discretised objective (33)."""
    return jnp.sum(w * psi(static, params, r, M))


@partial(jax.jit, static_argnums=0)
def weighted_terms(static: tuple, params: dict, r, w, M) -> dict:
    """sum_i w_i * term_i for each term of Psi."""
    return {k: jnp.sum(w * v) for k, v in psi_terms(static, params, r, M).items()}


@partial(jax.jit, static_argnums=0)
def exceedance_probability(static: tuple, params: dict, r, M):
    """Pr(D > M | r) for the cost objective: the marginal coverage benefit, left side of (35)."""
    s = jnp.sqrt(params["shock"]["horizon_days"] * r)
    return exceedance(static[4], params["shock"], s, M)
