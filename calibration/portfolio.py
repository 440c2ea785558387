"""Portfolio margining: alignment, price-pressure scale and the two-asset example (Nicolai 2026, 6.5, D.5-D.6).

Notation: A is the K x K cross-impact matrix (price change per unit traded), B the liquidation vector
induced by a one-unit increase in posted margin (units traded per unit margin), d the direction that
raises the scalar portfolio risk input, c_r the sensitivity of the input along d.

* liquidation price-pressure scale ``||A B||_2`` (D.5, (85)-(86));
* trigger-liquidation alignment ``psi = max{0, -d' A B}`` (46), (87);
* portfolio slope cap ``g'(r) <= 2 / (c_r psi)`` (46), (88);
* two-asset example (D.6): ``A = alpha [[1, rho], [rho, 1]]``, ``B = (c/2)(1, 1)'``, ``d = -(1, 1)'/sqrt(2)`` give
  ``||AB|| / xi_SA = psi / xi_SA = (1 + rho)/sqrt(2)`` (89)-(91), admissible-slope ratio ``sqrt(2)/(1 + rho)`` (92),
  threshold ``rho = sqrt(2) - 1`` and ``max Delta m/m = (single-asset max) x sqrt(2)/(1 + rho)`` (93).
"""

from __future__ import annotations

import math

from ._checks import check_range
from ._jax import jnp
from .cap import max_relative_margin_increase

__all__ = [
    "TWO_ASSET_RHO_THRESHOLD",
    "price_pressure_scale",
    "alignment",
    "portfolio_slope_cap",
    "two_asset_matrices",
    "two_asset_pressure_ratio",
    "two_asset_slope_ratio",
    "two_asset_max_relative_increase",
]

#: Cross-impact correlation at which the two-asset example has the single-asset pressure scale: sqrt(2) - 1 (D.6).
TWO_ASSET_RHO_THRESHOLD = math.sqrt(2.0) - 1.0


def _f(x):
    return jnp.asarray(x, dtype=jnp.float64)


def price_pressure_scale(impact_matrix, liquidation):
    """Liquidation-driven price pressure ``||A B||_2`` per unit margin increase (D.5); A is K x K, B has length K."""
    return jnp.linalg.norm(_f(impact_matrix) @ _f(liquidation), axis=-1)


def alignment(direction, impact_matrix, liquidation):
    """Trigger-liquidation alignment ``psi = max{0, -d' A B}`` (46), (87): price pressure along the risk-raising direction."""
    return jnp.maximum(0.0, -jnp.sum(_f(direction) * (_f(impact_matrix) @ _f(liquidation)), axis=-1))


def portfolio_slope_cap(input_sensitivity, psi):
    """Portfolio analogue of the slope cap, ``g'(r) <= 2 / (c_r psi)`` (46), (88); +inf where psi = 0."""
    check_range("input_sensitivity", input_sensitivity, low=0.0, what="positive (c_r)")
    psi = _f(psi)
    return jnp.where(psi > 0, 2.0 / (_f(input_sensitivity) * jnp.where(psi > 0, psi, 1.0)), jnp.inf)


def two_asset_matrices(rho, alpha=1.0, c=1.0):
    """The D.6 example: ``A = alpha [[1, rho], [rho, 1]]``, ``B = (c/2)(1, 1)'``, ``d = -(1, 1)'/sqrt(2)`` (scalar rho)."""
    a = _f(alpha) * jnp.array([[1.0, rho], [rho, 1.0]], dtype=jnp.float64)
    b = _f(c) / 2.0 * jnp.ones(2, dtype=jnp.float64)
    d = -jnp.ones(2, dtype=jnp.float64) / math.sqrt(2.0)
    return a, b, d


def two_asset_pressure_ratio(rho):
    """``||AB||_2 / xi_SA = psi / xi_SA = (1 + rho)/sqrt(2)`` with ``xi_SA = alpha c`` (89)-(91); rho in [-1, 1]."""
    check_range("rho", rho, low=-1.0, high=1.0, low_inclusive=True, what="a cross-impact correlation in [-1, 1]")
    return (1.0 + _f(rho)) / math.sqrt(2.0)


def two_asset_slope_ratio(rho):
    """Ratio of admissible slopes, portfolio over single asset: ``xi_SA / psi = sqrt(2)/(1 + rho)`` (92); rho in (-1, 1]."""
    check_range("rho", rho, low=-1.0, high=1.0, what="a cross-impact correlation in (-1, 1]")
    return math.sqrt(2.0) / (1.0 + _f(rho))


def two_asset_max_relative_increase(rho, vol_rise_points=10.0, **benchmark):
    """The largest manipulation-proof relative margin increase of the two-asset example for a rise in volatility, (93):
    ``max Delta m/m = [single-asset max for the vol rise] x sqrt(2)/(1 + rho)`` (decimal).

    ``vol_rise_points`` is the annualised-vol rise in points (10 in the paper); ``benchmark`` keywords are passed to
    :func:`~margin_design.calibration.cap.max_relative_margin_increase` (default: the benchmark with tau = 1,
    giving 28% x sqrt(2)/(1 + rho): 39.6%, 26.4%, 19.8% at rho = 0, 0.5, 1).
    """
    single = max_relative_margin_increase(vol_rise_points, **benchmark)
    return single * two_asset_slope_ratio(rho)
