"""Manipulation diagnostics for a proposed margin move (Nicolai 2026, Section 3.4-3.6, Appendices A.5, C).

Units: per unit notional (price 1), margin m a decimal ratio, trigger size q and participation f in units
of ADV (a decimal fraction of full-day ADV), distortion delta in bp of notional, profits in bp of trigger
notional, ROI in percent of posted margin.

* forced-liquidation multiple (67): ``G = L/q = epsilon_XM (Delta M / M) tau / f``;
* profit lower bound (64): ``pi_bps >= (G - 2) delta_bps``; ``ROI% >= pi_bps / (100 m_1)`` on the post-update margin;
* gain condition of Lemma 5 / Theorem 1: the two-period round trip is profitable iff ``alpha (G - 2) > kappa``;
* with proportional execution cost tau_exec and funding spread rho (Lemma 15, (58)):
  ``E[Pi] >= A q^2 - B q``, ``A = alpha (G - 2) - kappa``, ``B = 2 tau_exec + rho M``, ``q_min = B / A``.

Pure ``jax.numpy`` functions; arguments broadcast and are differentiable where smooth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from margin_design.display import Displayable, brief, text_block
from margin_design.errors import InputError

from ._checks import check_range, fmt_value, to_py as _to_py
from ._jax import jax, jnp
from .cap import BPS_PER_UNIT, impact_alpha, resolve_distortion_bps

__all__ = [
    "liquidation_multiple",
    "relative_margin_jump",
    "profit_bps_lower_bound",
    "roi_pct_lower_bound",
    "gain_condition",
    "gain_coefficients",
    "minimum_trigger",
    "GainAssessment",
    "assess_margin_move",
]


def _f(x):
    return jnp.asarray(x, dtype=jnp.float64)


def relative_margin_jump(margin_from, margin_to):
    """Relative requirement change ``Delta M / M = (m_1 - m_0) / m_0`` (decimal; 5% -> 6% is 0.2), Appendix C.5."""
    check_range("margin_from", margin_from, low=0.0, high=1.0, what="a margin ratio in (0, 1]")
    check_range("margin_to", margin_to, low=0.0, high=1.0, what="a margin ratio in (0, 1]")
    m0 = _f(margin_from)
    return (_f(margin_to) - m0) / m0


def liquidation_multiple(elasticity, margin_jump, turnover, participation):
    """Forced-liquidation multiple ``G = L/q = epsilon_XM (Delta M/M) tau / f`` (67), dimensionless.

    ``margin_jump`` Delta M/M is decimal (0.2 = +20%), ``turnover`` tau = XP/ADV, ``participation`` f is
    the trigger as a decimal fraction of ADV. Units liquidated at t+1 per unit triggered at t (Table 1, Table 3).
    """
    check_range("elasticity", elasticity, low=0.0, what="positive (epsilon_XM = -dlog X/dlog M)")
    check_range("turnover", turnover, low=0.0, what="positive (tau = XP/ADV)")
    check_range("participation", participation, low=0.0, high=1.0, what="a fraction of ADV in (0, 1]")
    return _f(elasticity) * _f(margin_jump) * _f(turnover) / _f(participation)


def profit_bps_lower_bound(multiple, distortion):
    """Profit lower bound in bp of trigger notional, ``pi_bps >= (G - 2) delta_bps`` (64), kappa = tau = rho = 0."""
    return (_f(multiple) - 2.0) * _f(distortion)


def roi_pct_lower_bound(profit_bps, margin_after):
    """Return on posted margin in percent, ``ROI% >= pi_bps / (100 m_1)`` (64), on the post-update margin m_1 (decimal)."""
    check_range("margin_to", margin_after, low=0.0, high=1.0, what="a margin ratio in (0, 1]")
    return _f(profit_bps) / (100.0 * _f(margin_after))


def gain_condition(alpha, multiple, inventory_penalty: Any = 0.0):
    """Lemma 5 / Theorem 1: the two-period trigger-and-reverse trade is profitable iff ``alpha (G - 2) > kappa``.

    Returns a boolean array. ``alpha`` is price impact per unit ADV (75), kappa the inventory penalty (11).
    """
    return _f(alpha) * (_f(multiple) - 2.0) > _f(inventory_penalty)


def gain_coefficients(alpha, multiple, inventory_penalty=0.0, execution_cost=0.0, funding_spread=0.0, margin=0.0):
    """Coefficients of the profit bound with linear wedges, ``E[Pi] >= A q^2 - B q`` (58).

    ``A = alpha (G - 2) - kappa`` (price per unit ADV^2) and ``B = 2 tau_exec + rho M`` (price per unit ADV),
    where ``execution_cost`` tau_exec is the proportional cost per unit traded (decimal of notional),
    ``funding_spread`` rho the per-period funding spread (decimal) and ``margin`` M = m_0 the margin at t.
    """
    check_range("execution_cost", execution_cost, low=0.0, low_inclusive=True, what="non-negative (decimal of notional)")
    check_range("funding_spread", funding_spread, low=0.0, low_inclusive=True, what="non-negative (decimal per period)")
    a = _f(alpha) * (_f(multiple) - 2.0) - _f(inventory_penalty)
    b = 2.0 * _f(execution_cost) + _f(funding_spread) * _f(margin)
    return a, b


def threshold_crossing_gain(alpha, c_eff, jump):
    """Harvesting gain per unit of trigger of crossing a jump Delta M in the rule: alpha c_eff Delta M
    (Section 6.6; a trigger of q ADV earns q times this, against an own round-trip cost of order q^2).
    Units: alpha per ADV traded, c_eff ADV per unit margin ratio, jump in margin ratio."""
    return _f(alpha) * _f(c_eff) * _f(jump)


def minimum_trigger(a, b):
    """``q_min = B / A`` (58), in ADV units (a participation rate); +inf where ``A <= 0`` (no trigger size profits)."""
    a = _f(a)
    b = _f(b)
    return jnp.where(a > 0, b / jnp.where(a > 0, a, 1.0), jnp.inf)


@dataclass(frozen=True, repr=False)
class GainAssessment(Displayable):
    """Diagnostics for a proposed move m_0 -> m_1 (arrays broadcast over the inputs).

    G: liquidation multiple (67); distortion_bps: delta_bps(f); alpha: impact per unit ADV (75);
    profit_bps: bound on profit per unit trigger notional in bp, ``1e4 (A f - B)`` -- equal to
    ``(G - 2) delta_bps`` of (64) without costs; roi_pct: ``profit_bps / (100 m_1)`` (64);
    A, B, q_min: (58), q_min in ADV units (+inf when A <= 0); profitable: ``A > 0`` and ``f > q_min``
    (the gain condition ``alpha (G - 2) > kappa`` of Lemma 5 when there are no costs).
    """

    G: Any
    distortion_bps: Any
    alpha: Any
    profit_bps: Any
    roi_pct: Any
    A: Any
    B: Any
    q_min: Any
    profitable: Any

    def to_dict(self) -> dict:
        """``{"G", "distortion_bps", "profit_bps", "roi_pct", "profitable", "q_min"}`` (q_min None when infinite)."""
        prof = self.profitable
        prof = bool(prof) if jnp.ndim(prof) == 0 else [bool(v) for v in jnp.ravel(prof)]
        return {
            "G": _to_py(self.G),
            "distortion_bps": _to_py(self.distortion_bps),
            "profit_bps": _to_py(self.profit_bps),
            "roi_pct": _to_py(self.roi_pct),
            "profitable": prof,
            "q_min": _to_py(self.q_min),
        }

    def _display(self) -> tuple[str, list[tuple[str, str]]]:
        prof = np.asarray(self.profitable, bool)
        verdict = ("yes" if prof else "no") if prof.ndim == 0 else f"{int(prof.sum())} of {prof.size}"
        return "Manipulation gain of a margin increase (Lemma 5, (58), (64), (67))", [
            ("liquidation multiple G (67)", brief(self.G, ".4g")),
            ("distortion delta", brief(self.distortion_bps, ".4g", "bp")),
            ("alpha (75)", brief(self.alpha, ".4g", "price change per ADV traded")),
            ("profit bound", brief(self.profit_bps, ".4g", "bp of the trigger notional")),
            ("return on margin", brief(self.roi_pct, ".4g", "% of the margin posted")),
            ("smallest profitable trigger q_min (58)", brief(self.q_min, ".4g", "ADV")),
            ("profitable", verdict),
        ]

    def summary(self) -> str:
        """G, the distortion, the profit and ROI bounds, q_min and whether the move is profitable (text)."""
        return text_block(*self._display())


def assess_margin_move(
    elasticity,
    turnover,
    participation,
    margin_from,
    margin_to,
    *,
    impact_k=None,
    distortion=None,
    inventory_penalty: Any = 0.0,
    execution_cost: Any = 0.0,
    funding_spread: Any = 0.0,
) -> GainAssessment:
    """G, profit and ROI bounds and q_min for a margin move ``margin_from -> margin_to`` (decimal ratios).

    Give either ``impact_k`` (bp; delta = k sqrt(f), default 200) or ``distortion`` (delta_bps, bp).
    ``execution_cost`` tau_exec (decimal of notional per unit traded) and ``funding_spread`` rho (decimal
    per period, on the margin m_0 at t) enter through (58). Table 1 is this function on its grid.
    """
    if impact_k is not None and distortion is not None:
        raise InputError("give either impact_k or distortion_bps, not both.")
    check_range("inventory_penalty", inventory_penalty, low=0.0, low_inclusive=True, what="non-negative (kappa)")
    jump = relative_margin_jump(margin_from, margin_to)
    if not _is_traced(jump) and np.any(np.asarray(jump) <= 0):
        bad = np.asarray(jump) <= 0
        m0 = np.broadcast_to(np.asarray(margin_from, dtype=float), bad.shape)[bad]
        m1 = np.broadcast_to(np.asarray(margin_to, dtype=float), bad.shape)[bad]
        raise InputError(
            f"margin_to must exceed margin_from (the diagnostics are for a margin increase), got {fmt_value(m0)} -> {fmt_value(m1)}."
        )
    d_bps = resolve_distortion_bps(participation, distortion, impact_k if distortion is None else None)
    g = liquidation_multiple(elasticity, jump, turnover, participation)
    alpha = impact_alpha(participation, d_bps)
    a, b = gain_coefficients(alpha, g, inventory_penalty, execution_cost, funding_spread, margin_from)
    f = _f(participation)
    profit = BPS_PER_UNIT * (a * f - b)
    q_min = minimum_trigger(a, b)
    return GainAssessment(
        G=g,
        distortion_bps=d_bps,
        alpha=alpha,
        profit_bps=profit,
        roi_pct=roi_pct_lower_bound(profit, margin_to),
        A=a,
        B=b,
        q_min=q_min,
        profitable=(a > 0) & (f > q_min),
    )


def _is_traced(x) -> bool:
    return isinstance(x, jax.core.Tracer)
