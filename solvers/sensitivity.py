"""Derivatives of the optimal schedule, its cost and the price of manipulation-proofness (implicit function theorem).

On a fixed active set the optimal schedule is smooth in the parameters: every block B has
x_j = L_B + s_j with offsets s_j = K * S_j (K the cap slope in vol units, S_j the sum of sigma-steps over
the block's saturated links before j) and the level solving Phi_B(L, theta) = sum_{j in B} w_j
Psi'(r_j, L + s_j; theta) = 0. Differentiating,

    dL_B/dtheta = - sum_B w_j [Psi''_j ds_j/dtheta + d_theta Psi'_j] / sum_B w_j Psi''_j,
    dx_j/dtheta = dL_B/dtheta + ds_j/dtheta,

and a block held at the kink M_- of a linear cost form by its point j* moves with the kink:
dL_B/dtheta = dM_-/dtheta - ds_j*/dtheta. A block held by the floor M >= 0 does not move. The cost derivative is the chain rule
dJ/dtheta = sum_j w_j [Psi'_j dx_j/dtheta + d_theta Psi_j], the first-best cost's is the envelope
theorem sum_j w_j d_theta Psi_j(M_fb), and the price of manipulation-proofness J(g*) - J(M_fb) is their
difference. Parameter derivatives of Psi come from JAX (forward mode). Valid away from active-set changes;
the tests compare with finite differences of re-solved problems.

Parameters (units): alpha (price impact per ADV), c_eff (ADV per unit margin ratio; enters the cap and the
liquidation term), inventory_penalty kappa, carry kappa_M, liquidation_weight lambda_L,
participation_weight lambda_P, prev_margin M_- (margin ratio).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from margin_design.design import objective as obj
from margin_design.errors import ConfigError
from margin_design.design.problem import MARGIN_FLOOR
from margin_design.solvers.polish import block_layout

CAP_PARAMETERS = ("alpha", "c_eff", "inventory_penalty")
COST_PARAMETERS = ("carry", "liquidation_weight", "participation_weight", "prev_margin")
PARAMETERS = CAP_PARAMETERS + COST_PARAMETERS


def _cap_slope_derivative(cap, name: str) -> float:
    """dK/dtheta for K = factor (2 alpha + kappa) / (alpha^2 c_eff), or (2 + kappa ||B||^2/B'AB)/(s_f psi) for a portfolio."""
    if cap.kind == "none":
        return 0.0
    if cap.portfolio is not None:
        pf = cap.portfolio
        if name in ("alpha", "c_eff"):
            raise ConfigError(f"{name} is not a parameter of a portfolio design (the impact matrix A and the liquidation vector B replace alpha and c_eff).")
        if name == "inventory_penalty" and pf.psi > 0:
            B = pf.liquidation
            return float(B @ B) / float(B @ pf.impact @ B) / (pf.sensitivity * pf.psi)
        return 0.0
    f, a, c, kap = cap.input_factor, cap.alpha, cap.c_eff, cap.inventory_penalty
    if name == "alpha":
        return -f * 2.0 * (a + kap) / (a**3 * c)
    if name == "c_eff":
        return -cap.slope_vol / c
    if name == "inventory_penalty":
        return f / (a * a * c)
    return 0.0


def _param_tangent(params: dict, name: str) -> dict:
    tangent = jax.tree_util.tree_map(jnp.zeros_like, params)
    if name in tangent:
        tangent[name] = jnp.ones_like(params[name])
    return tangent


def sensitivity_arrays(problem, x, codes, parameters: tuple[str, ...] = PARAMETERS) -> dict:
    """{parameter: (dx/dtheta per state, per-state terms of dJ/dtheta, per-state terms of dJ_fb/dtheta)}.

    Works for a single chain and for a stacked batch (blocks never cross the batch's breaks, which are
    FREE links; the cap parameters of a batch are per configuration).
    """
    p = problem
    x = np.asarray(x, float)
    codes = np.asarray(codes)
    n = x.size
    r = jnp.asarray(p.r)
    w = p.weights
    static, params = p.static, p.params
    cost = p.objective.kind == "cost"
    K_kink, m0 = p.kink

    # the polish's block layout with sigma-steps in place of the caps: offsets S_j, and s_j = K * S_j
    starts, bid, S = block_layout(codes, np.diff(p.vol))

    g_s, h_s = p.smooth_derivatives(x)                 # weighted
    H = np.add.reduceat(h_s, starts)
    # blocks held at the kink: their subdifferential strictly contains 0 with a point exactly at M_-
    at_kink = np.zeros(starts.size, bool)
    kink_point = np.full(starts.size, -1)
    if cost and p.has_kink:
        on = np.flatnonzero(p.on_kink(x))
        at_kink[bid[on]] = True
        kink_point[bid[on[::-1]]] = on[::-1]
    # blocks that start a chain with its first margin on the floor g_1 >= 0 (their level is fixed at 0)
    floor = np.isin(starts, p.starts) & (x[starts] <= MARGIN_FLOOR)
    glo, ghi = p.gradient_bounds(x, g_s)
    g = np.where(p.on_kink(x), 0.5 * (glo + ghi), ghi) if cost and p.has_kink else g_s
    chain = getattr(p, "chain", 0) or n

    out = {}
    for name in parameters:
        if name not in PARAMETERS:
            raise ValueError(f"unknown parameter {name!r}; expected one of {', '.join(PARAMETERS)}")
        dK = np.atleast_1d(np.asarray(_cap_slope_derivative(p.cap, name), float))
        ds = (np.repeat(dK, chain) if dK.size > 1 else dK) * S
        if cost and name in params:
            tangent = _param_tangent(params, name)
            _, dpsi1 = jax.jvp(lambda prm: obj.smooth_derivatives(static, prm, r, jnp.asarray(x))[0], (params,), (tangent,))
            _, dkink = jax.jvp(lambda prm: obj.kink_weight(static, prm), (params,), (tangent,))
            dpsi1 = np.asarray(dpsi1) + np.asarray(dkink) * (x > m0)
            _, dpsi = jax.jvp(lambda prm: obj.psi(static, prm, r, jnp.asarray(x)), (params,), (tangent,))
            _, dpsi_fb = jax.jvp(lambda prm: obj.psi(static, prm, r, jnp.asarray(p.first_best)), (params,), (tangent,))
            dpsi, dpsi_fb = np.asarray(dpsi), np.asarray(dpsi_fb)
        else:
            dpsi1 = np.zeros(n)
            dpsi = np.zeros(n)
            dpsi_fb = np.zeros(n)
        num = np.add.reduceat(h_s * ds + w * dpsi1, starts)
        dL = np.where(H > 0, -num / np.where(H > 0, H, 1.0), 0.0)
        if at_kink.any():
            dm0 = 1.0 if name == "prev_margin" else 0.0
            dL = np.where(at_kink, dm0 - ds[np.maximum(kink_point, 0)], dL)
        if floor.any():
            dL = np.where(floor, 0.0, dL)  # a block on the floor M >= 0 stays there: s = 0 at a chain's start
        dx = dL[bid] + ds
        out[name] = (dx, g * dx + w * dpsi, w * dpsi_fb)
    return out


def parameters_of(problem) -> tuple[str, ...]:
    """The parameters a problem has: a portfolio design has no alpha or c_eff (A and B replace them), a target
    design (Appendix D.2) no cost weights (its objective is the target file)."""
    names = PARAMETERS
    if getattr(problem.cap, "portfolio", None) is not None:
        names = tuple(p for p in names if p not in ("alpha", "c_eff"))
    if problem.objective.kind == "target":
        names = tuple(p for p in names if p in CAP_PARAMETERS)
    return names


#: What each parameter is and its unit (the derivatives are per unit of it).
PARAMETER_UNITS = {
    "alpha": "price impact alpha, decimal price change per ADV traded",
    "c_eff": "forced liquidation c_eff, ADV per unit margin ratio",
    "inventory_penalty": "inventory penalty kappa, price per ADV^2",
    "carry": "carry cost kappa_M, per unit margin ratio",
    "liquidation_weight": "liquidation-cost weight lambda_L",
    "participation_weight": "participation-cost weight lambda_P",
    "prev_margin": "previous margin M_-, margin ratio",
}


class Sensitivities(dict):
    """Derivatives of the optimal schedule and its costs, one entry per parameter (a dict, shown briefly).

    ``sens[name]`` is ``{"schedule": dg*/dtheta per state (array, margin ratio per unit of the parameter),
    "objective": dJ(g*)/dtheta, "first_best_objective": dJ(M_fb)/dtheta, "price": d(J(g*) - J(M_fb))/dtheta}``
    (costs per unit notional per unit of the parameter; units of each parameter in :data:`PARAMETER_UNITS`).
    :meth:`to_frame` gives one row per parameter, :meth:`schedule_frame` the per-state derivatives, and
    :meth:`summary` a text table; the ``repr`` lists the cost derivatives, never the per-state arrays.
    """

    def __init__(self, entries: dict, vol=None):
        super().__init__(entries)
        #: Daily vol of each state (decimal), the index of the per-state derivatives.
        self.vol = None if vol is None else np.asarray(vol, float)

    def _rows(self) -> list[list[str]]:
        return [
            [name, f"{d['objective']:.6g}", f"{d['first_best_objective']:.6g}", f"{d['price']:.6g}",
             f"{float(np.max(np.abs(d['schedule']))) if np.size(d['schedule']) else 0.0:.4g}"]
            for name, d in self.items()
        ]

    _HEADER = ["parameter", "dJ(g*)/dtheta", "dJ(M_fb)/dtheta", "dprice/dtheta", "max |dg*/dtheta|"]

    def _title(self) -> str:
        n = "" if self.vol is None else f", {self.vol.size} states"
        return f"Sensitivities of the optimal schedule (implicit function theorem on the active set{n})"

    def __repr__(self) -> str:
        lines = [self._title()]
        for row in self._rows():
            lines.append(f"  {row[0]}: dJ(g*) {row[1]}, dJ(M_fb) {row[2]}, dprice {row[3]}, max |dg*| {row[4]}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from margin_design.display import html_grid

        return html_grid(self._title(), self._HEADER, self._rows(),
                         note="price = J(g*) - J(M_fb), the price of manipulation-proofness; costs per unit notional, per unit of each parameter.")

    def summary(self) -> str:
        """Text table: the cost derivatives per parameter and the largest change of the rule, with units."""
        from margin_design.calibration.tables import text_table

        units = "\n".join(f"  {k}: {PARAMETER_UNITS[k]}" for k in self if k in PARAMETER_UNITS)
        return (text_table(self._HEADER, self._rows(), title=self._title())
                + "\nprice = J(g*) - J(M_fb), the price of manipulation-proofness; derivatives per unit of the parameter:\n" + units)

    def to_frame(self):
        """One row per parameter (index ``parameter``): ``objective`` dJ(g*)/dtheta, ``first_best_objective``
        dJ(M_fb)/dtheta, ``price`` d(J(g*) - J(M_fb))/dtheta (costs per unit notional per unit of the parameter),
        ``margin_max_abs`` the largest |dg*/dtheta| over the states (margin ratio per unit of the parameter), and
        ``unit`` what the parameter is and its unit. All float64 except ``unit``."""
        import pandas as pd

        frame = pd.DataFrame(
            {
                "objective": [float(d["objective"]) for d in self.values()],
                "first_best_objective": [float(d["first_best_objective"]) for d in self.values()],
                "price": [float(d["price"]) for d in self.values()],
                "margin_max_abs": [float(np.max(np.abs(d["schedule"]))) if np.size(d["schedule"]) else 0.0 for d in self.values()],
                "unit": [PARAMETER_UNITS.get(k, "") for k in self],
            },
            index=pd.Index(list(self), name="parameter"),
        )
        return frame

    def schedule_frame(self):
        """dg*/dtheta per state: one row per state (index ``state``), ``vol_daily`` (decimal) and one float64 column
        per parameter (margin ratio per unit of the parameter)."""
        import pandas as pd

        data = {} if self.vol is None else {"vol_daily": self.vol}
        data.update({k: np.asarray(d["schedule"], float) for k, d in self.items()})
        frame = pd.DataFrame(data)
        frame.index.name = "state"
        return frame


def sensitivities(result, parameters: tuple[str, ...] | None = None) -> Sensitivities:
    """Derivatives of g*, J(g*), J(M_fb) and the price of manipulation-proofness with respect to each parameter.

    Returns a :class:`Sensitivities` dict ``{parameter: {"schedule": dx/dtheta (array), "objective",
    "first_best_objective", "price"}}``; the default parameters are those the problem has
    (:func:`parameters_of`). Valid on the solution's active set (see the module docstring).
    """
    parameters = parameters_of(result.problem) if parameters is None else parameters
    out = {}
    for name, (dx, dj, djfb) in sensitivity_arrays(result.problem, result.schedule, result.codes, parameters).items():
        dJ, dJfb = float(np.sum(dj)), float(np.sum(djfb))
        out[name] = {"schedule": dx, "objective": dJ, "first_best_objective": dJfb, "price": dJ - dJfb}
    return Sensitivities(out, vol=result.vol)
