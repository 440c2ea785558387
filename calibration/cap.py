"""From empirical elasticities to the manipulation-proof slope cap (Nicolai 2026, Sections 3.6, 6.3-6.4, App. C-D).

Units (the project's conventions): everything is per unit notional with the price normalised to 1,
so the margin M equals the margin ratio m (decimal, 0.05 = 5%); positions and trade sizes are in units
of average daily traded value (ADV); the risk input r is the variance of daily returns, sigma = sqrt(r)
the daily volatility (decimal) and sigma_ann = sqrt(252) sigma the annualised volatility (decimal).
Distortions are in basis points of notional (bp), participation f is a decimal fraction of full-day ADV.

Chain of formulas (equation numbers of the paper):

* impact mapping (65): ``delta_bps(f) = k sqrt(f)``, k = 200 bp by default;
* price impact per unit ADV traded (75): ``alpha = delta(f) / f`` with ``delta = delta_bps / 1e4``;
* effective liquidation slope in ADV units (76): ``c_eff = epsilon_XM tau / m``;
* their product (77): ``alpha c_eff = (epsilon_XM tau / m) delta(f) / f``;
* the cap (16)-(18) with inventory penalty kappa, which for kappa = 0 is (39)-(40) and (74):
  ``dm/dr <= (2 alpha + kappa) / (2 alpha^2 c_eff sigma)``,
  ``dm/dsigma <= (2 alpha + kappa) / (alpha^2 c_eff)``,
  ``dm/dsigma_ann = dm/dsigma / sqrt(252)`` (79), relative ``(1/m) dm/dsigma_ann`` (80);
* the benchmark reading (44)/(81): ``Delta m / m <= 2 f / (sqrt(252) epsilon tau delta(f)) Delta sigma_ann``,
  2.80/tau at epsilon = 0.225, f = 1%, delta = 20 bp (45)/(82); Table 5 thresholds (83)-(84).

Every function is a pure array expression: arguments broadcast (a sweep over epsilon, tau, f is one call)
and the formulas can be differentiated with ``jax.grad``. Numbers and NumPy arrays are computed with NumPy
(no JAX import), JAX arrays and tracers with jax.numpy, to the same float64 bits (:mod:`._xp`). Concrete
inputs are range-checked and raise :class:`~margin_design.errors.InputError`; traced inputs are not checked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from margin_design.units import TRADING_DAYS
from margin_design.display import Displayable, brief, text_block
from margin_design.errors import InputError

from ._checks import check_range, to_py as _to_py
from ._xp import f64 as _f, sqrt as _sqrt, square as _square

__all__ = [
    "TRADING_DAYS_PER_YEAR",
    "BPS_PER_UNIT",
    "DEFAULT_IMPACT_K_BPS",
    "BENCHMARK",
    "distortion_bps",
    "participation_for_distortion",
    "impact_alpha",
    "liquidation_slope",
    "alpha_c_eff",
    "cap_dm_dr",
    "cap_dm_dvol",
    "cap_dm_dvol_annual",
    "cap_relative_dvol_annual",
    "relative_cap_coefficient",
    "max_relative_margin_increase",
    "vol_points_needed",
    "CapValues",
    "MarketCalibration",
    "calibrate_market",
    "resolve_distortion_bps",
    "toml_float",
]

#: Trading days per year used to annualise daily volatility, sigma_ann = sqrt(252) sigma (Section 6.4).
TRADING_DAYS_PER_YEAR = TRADING_DAYS
#: Basis points per unit (decimal): delta = delta_bps / 1e4 (Appendix C.1).
BPS_PER_UNIT = 1e4
#: Square-root impact constant k in delta_bps(f) = k sqrt(f), in bp (65); 2 x the ~100 bp one-way cost scale.
DEFAULT_IMPACT_K_BPS = 200.0

#: The paper's benchmark calibration (Section 3.6, Table 1 caption, Section 6.4, Appendix D.4):
#: elasticity epsilon_XM, turnover tau = XP/ADV, participation f (decimal of ADV), margin ratio m,
#: distortion delta_bps(1%) = 200 sqrt(0.01) = 20 bp.
BENCHMARK = {
    "elasticity": 0.225,
    "turnover": 1.0,
    "participation": 0.01,
    "margin": 0.05,
    "impact_k_bps": DEFAULT_IMPACT_K_BPS,
    "distortion_bps": 20.0,
}

_SQRT_YEAR = math.sqrt(TRADING_DAYS_PER_YEAR)


# ----------------------------------------------------------------------------------------------
# Impact, alpha, c_eff: (65), (75)-(77)
# ----------------------------------------------------------------------------------------------


def distortion_bps(participation, impact_k: Any = DEFAULT_IMPACT_K_BPS):
    """Sampled-price distortion of a trigger of size f, in bp of notional: ``delta_bps(f) = k sqrt(f)`` (65).

    ``participation`` f is the trigger notional as a decimal fraction of full-day ADV, in (0, 1];
    ``impact_k`` is k in bp (default 200: 1% of ADV -> 20 bp, 2% -> 28 bp, 5% -> 45 bp, 10% -> 63 bp).
    """
    check_range("participation", participation, low=0.0, high=1.0, what="a fraction of ADV in (0, 1]")
    check_range("impact_k", impact_k, low=0.0, what="positive (bp)")
    return _f(impact_k) * _sqrt(_f(participation))


def participation_for_distortion(distortion, impact_k: Any = DEFAULT_IMPACT_K_BPS):
    """Inverse of (65): the participation f (decimal of ADV) whose distortion is ``distortion`` bp, ``(delta_bps/k)^2``."""
    check_range("distortion_bps", distortion, low=0.0, what="positive (bp)")
    check_range("impact_k", impact_k, low=0.0, what="positive (bp)")
    return _square(_f(distortion) / _f(impact_k))


def impact_alpha(participation, distortion):
    """Price impact per unit ADV traded, ``alpha = delta(f) / f`` with ``delta = delta_bps / 1e4`` (75).

    With the price and ADV normalised to 1 (per unit notional, positions in ADV units), (75)
    ``alpha = (P^2 / ADV) delta(f) / f`` reduces to ``delta(f)/f``: decimal price change per unit of ADV traded.
    ``distortion`` is delta_bps(f) in bp (see :func:`distortion_bps`).
    """
    check_range("participation", participation, low=0.0, high=1.0, what="a fraction of ADV in (0, 1]")
    check_range("distortion_bps", distortion, low=0.0, what="positive (bp)")
    return _f(distortion) / BPS_PER_UNIT / _f(participation)


def liquidation_slope(elasticity, turnover, margin):
    """Effective liquidation slope ``c_X^eff = epsilon_XM tau / m`` in ADV units per unit margin ratio (76).

    ``elasticity`` epsilon_XM = -dlog X / dlog M (> 0), ``turnover`` tau = XP/ADV (> 0, in days of ADV),
    ``margin`` m = M/P (decimal margin ratio, in (0, 1]).
    """
    check_range("elasticity", elasticity, low=0.0, what="positive (epsilon_XM = -dlog X/dlog M)")
    check_range("turnover", turnover, low=0.0, what="positive (tau = XP/ADV)")
    check_range("margin", margin, low=0.0, high=1.0, what="a margin ratio in (0, 1]")
    return _f(elasticity) * _f(turnover) / _f(margin)


def alpha_c_eff(elasticity, turnover, margin, participation, distortion):
    """The amplification product ``alpha c_eff = (epsilon_XM tau / m) delta(f) / f`` (77), dimensionless per unit margin ratio."""
    return impact_alpha(participation, distortion) * liquidation_slope(elasticity, turnover, margin)


# ----------------------------------------------------------------------------------------------
# The cap in every unit system: (16)-(18), (39)-(40), (74), (78)-(80)
# ----------------------------------------------------------------------------------------------


def _cap_checks(alpha, c_eff, inventory_penalty):
    check_range("alpha", alpha, low=0.0, what="positive (price impact per unit ADV)")
    check_range("c_eff", c_eff, low=0.0, what="positive (ADV units per unit margin)")
    check_range("inventory_penalty", inventory_penalty, low=0.0, low_inclusive=True, what="non-negative (kappa)")


def cap_dm_dvol(alpha, c_eff, inventory_penalty: Any = 0.0):
    """Cap on the slope of margin (ratio, decimal) per unit daily volatility (decimal): ``dm/dsigma``.

    ``(2 alpha + kappa) / (alpha^2 c_eff)`` (18); with kappa = 0 this is ``2/(alpha c_eff)`` of (40)/(74).
    Constant in the state: in volatility units the maximal safe pass-through does not depend on sigma.
    """
    _cap_checks(alpha, c_eff, inventory_penalty)
    a = _f(alpha)
    return (2.0 * a + _f(inventory_penalty)) / (_square(a) * _f(c_eff))


def cap_dm_dr(alpha, c_eff, vol, inventory_penalty: Any = 0.0):
    """Cap on the slope of margin (ratio) per unit daily *variance* r at daily vol sigma = sqrt(r): ``dm/dr``.

    ``(2 alpha + kappa) / (2 alpha^2 c_eff sigma)`` (17); with kappa = 0 this is ``1/(alpha c_eff sigma)`` of
    (39)/(74). ``vol`` is the daily volatility sigma (decimal, > 0); the cap is tighter in tranquil states.
    """
    check_range("vol", vol, low=0.0, what="a positive daily volatility (decimal)")
    return cap_dm_dvol(alpha, c_eff, inventory_penalty) / (2.0 * _f(vol))


def cap_dm_dvol_annual(alpha, c_eff, inventory_penalty: Any = 0.0):
    """Cap on margin (ratio) per unit annualised volatility (decimal): ``dm/dsigma_ann = dm/dsigma / sqrt(252)`` (74), (79)."""
    return cap_dm_dvol(alpha, c_eff, inventory_penalty) / _SQRT_YEAR


def cap_relative_dvol_annual(alpha, c_eff, margin, inventory_penalty: Any = 0.0):
    """Relative cap ``(1/m) dm/dsigma_ann`` (80): proportional margin change per unit annualised vol (decimal).

    With alpha and c_eff from (75)-(76) it equals ``2 f / (sqrt(252) epsilon tau delta(f))`` for kappa = 0,
    which does not depend on m (2.80/tau at the benchmark, (45)).
    """
    check_range("margin", margin, low=0.0, high=1.0, what="a margin ratio in (0, 1]")
    return cap_dm_dvol_annual(alpha, c_eff, inventory_penalty) / _f(margin)


def resolve_distortion_bps(participation, distortion=None, impact_k=None):
    """delta_bps(f): the given ``distortion`` (bp) if not None, else ``impact_k sqrt(f)`` (65), k = 200 if None."""
    if distortion is not None:
        check_range("distortion_bps", distortion, low=0.0, what="positive (bp)")
        return _f(distortion)
    return distortion_bps(participation, DEFAULT_IMPACT_K_BPS if impact_k is None else impact_k)


def relative_cap_coefficient(
    elasticity,
    turnover,
    participation=BENCHMARK["participation"],
    distortion=None,
    impact_k=None,
    inventory_penalty: Any = 0.0,
):
    """Coefficient of (44)/(81): ``Delta m/m <= coef x Delta sigma_ann`` with Delta sigma_ann in decimal.

    ``coef = 2 f / (sqrt(252) epsilon_XM tau delta(f)) x (1 + kappa/(2 alpha))``; the factor in kappa comes from
    (16) and is 1 for kappa = 0. At the benchmark (epsilon 0.225, f 1%, delta 20 bp) ``coef = 2.80/tau`` (45), (82).
    ``distortion`` is delta_bps (bp); if None it is ``impact_k sqrt(f)`` (65). Independent of the margin level m.
    """
    check_range("elasticity", elasticity, low=0.0, what="positive (epsilon_XM = -dlog X/dlog M)")
    check_range("turnover", turnover, low=0.0, what="positive (tau = XP/ADV)")
    check_range("participation", participation, low=0.0, high=1.0, what="a fraction of ADV in (0, 1]")
    check_range("inventory_penalty", inventory_penalty, low=0.0, low_inclusive=True, what="non-negative (kappa)")
    d_bps = resolve_distortion_bps(participation, distortion, impact_k)
    f = _f(participation)
    delta = d_bps / BPS_PER_UNIT
    alpha = delta / f
    base = 2.0 * f / (_SQRT_YEAR * _f(elasticity) * _f(turnover) * delta)
    return base * (1.0 + _f(inventory_penalty) / (2.0 * alpha))


def max_relative_margin_increase(
    vol_rise_points,
    elasticity=BENCHMARK["elasticity"],
    turnover=BENCHMARK["turnover"],
    participation=BENCHMARK["participation"],
    distortion=None,
    impact_k=None,
    inventory_penalty: Any = 0.0,
):
    """Largest manipulation-proof relative margin increase Delta m/m (decimal) for a rise in annualised vol (81).

    ``vol_rise_points`` is the rise in annualised volatility in *points* (10 = from 10% to 20%). Table 5 row 1:
    ``2.80/tau x 0.10`` = 56% / 28% / 14% at tau = 0.5 / 1 / 2 under the benchmark.
    """
    check_range("vol_rise_points", vol_rise_points, low=0.0, low_inclusive=True, what="non-negative (annualised-vol points)")
    coef = relative_cap_coefficient(elasticity, turnover, participation, distortion, impact_k, inventory_penalty)
    return coef * _f(vol_rise_points) / 100.0


def vol_points_needed(
    margin_jump,
    elasticity=BENCHMARK["elasticity"],
    turnover=BENCHMARK["turnover"],
    participation=BENCHMARK["participation"],
    distortion=None,
    impact_k=None,
    inventory_penalty: Any = 0.0,
):
    """Annualised-vol points needed for a relative margin jump eta_M (decimal, 0.2 = +20%) to be manipulation-proof.

    ``Delta sigma_ann_min(eta_M) = tau/2.80 x eta_M`` (83), i.e. ``7.14 tau eta_M`` points (84) under the benchmark;
    in general ``100 eta_M / coef`` with coef from :func:`relative_cap_coefficient`. Table 5 rows 3-6.
    """
    check_range("margin_jump", margin_jump, low=0.0, low_inclusive=True, what="a non-negative relative jump (decimal)")
    coef = relative_cap_coefficient(elasticity, turnover, participation, distortion, impact_k, inventory_penalty)
    return 100.0 * _f(margin_jump) / coef


# ----------------------------------------------------------------------------------------------
# A bundle for the command line and the design config: MarketCalibration
# ----------------------------------------------------------------------------------------------


def toml_float(x: float) -> str:
    """Deterministic TOML float literal (12 significant digits; always has a '.' or an exponent)."""
    v = float(x)
    if not math.isfinite(v):
        raise ValueError(f"cannot write the non-finite value {v!r} to TOML")
    s = format(v, ".12g")
    if not any(c in s for c in ".en"):
        s += ".0"
    return s


@dataclass(frozen=True, repr=False)
class CapValues(Displayable):
    """The cap in every unit system (per unit notional; margin m is a decimal ratio).

    dm_dr: per unit daily variance at the given daily vol (None when no vol is given), (17)/(74);
    dm_dvol: per unit daily vol (decimal), (18)/(74); dm_dvol_annual: per unit annualised vol (decimal), (79);
    relative_dvol_annual: ``(1/m) dm/dsigma_ann``, proportional margin change per unit annualised vol, (80).
    """

    dm_dr: Any
    dm_dvol: Any
    dm_dvol_annual: Any
    relative_dvol_annual: Any

    def to_dict(self) -> dict:
        return {
            "dm_dr": _to_py(self.dm_dr),
            "dm_dvol": _to_py(self.dm_dvol),
            "dm_dvol_annual": _to_py(self.dm_dvol_annual),
            "relative_dvol_annual": _to_py(self.relative_dvol_annual),
        }

    def _display(self) -> tuple[str, list[tuple[str, str]]]:
        return "Manipulation-proof slope cap", [
            ("dM/dr", brief(self.dm_dr, unit="per unit daily variance")),
            ("dM/dsigma", brief(self.dm_dvol, unit="per unit daily vol (18)")),
            ("dM/dsigma_ann", brief(self.dm_dvol_annual, unit="per unit annualised vol (79)")),
            ("(1/m) dM/dsigma_ann", brief(self.relative_dvol_annual, unit="per unit annualised vol (80)")),
        ]

    def summary(self) -> str:
        """The cap in each unit system, one line each (text)."""
        return text_block(*self._display())


@dataclass(frozen=True, repr=False)
class MarketCalibration(Displayable):
    """Market inputs of the cap, from empirical elasticities (Appendix D.3).

    Fields are the user's inputs: ``elasticity`` epsilon_XM, ``turnover`` tau = XP/ADV, ``participation`` f
    (decimal of ADV), ``margin`` m (decimal ratio), ``distortion_bps`` delta_bps(f) in bp (given, or k sqrt(f)),
    ``impact_k`` (bp; None when the distortion was given directly) and ``inventory_penalty`` kappa (>= 0, price
    per unit ADV^2). Derived: ``alpha`` (75), ``c_eff`` (76), ``alpha_c_eff`` (77) and :meth:`cap`.
    """

    elasticity: Any
    turnover: Any
    participation: Any
    margin: Any
    distortion_bps: Any
    impact_k: Any
    inventory_penalty: Any

    @property
    def alpha(self):
        """alpha = delta(f)/f: decimal price change per unit of ADV traded (75)."""
        return impact_alpha(self.participation, self.distortion_bps)

    @property
    def c_eff(self):
        """c_X^eff = epsilon tau / m: ADV units liquidated per unit margin ratio (76)."""
        return liquidation_slope(self.elasticity, self.turnover, self.margin)

    @property
    def alpha_c_eff(self):
        """alpha c_eff (77), per unit margin ratio."""
        return self.alpha * self.c_eff

    def cap(self, vol=None) -> CapValues:
        """The cap in every unit system; ``dm_dr`` is evaluated at daily vol ``vol`` (decimal) or None."""
        a, c, k = self.alpha, self.c_eff, self.inventory_penalty
        return CapValues(
            dm_dr=None if vol is None else cap_dm_dr(a, c, vol, k),
            dm_dvol=cap_dm_dvol(a, c, k),
            dm_dvol_annual=cap_dm_dvol_annual(a, c, k),
            relative_dvol_annual=cap_relative_dvol_annual(a, c, self.margin, k),
        )

    def to_dict(self, vol=None) -> dict:
        """``{"alpha", "c_eff", "alpha_c_eff", "cap": {"dm_dr", "dm_dvol", "dm_dvol_annual", "relative_dvol_annual"}}``."""
        return {
            "alpha": _to_py(self.alpha),
            "c_eff": _to_py(self.c_eff),
            "alpha_c_eff": _to_py(self.alpha_c_eff),
            "cap": self.cap(vol).to_dict(),
        }

    def market_toml(self) -> str:
        """The ``[market]`` block of a design config: alpha, c_eff (ADV units) and inventory_penalty (kappa)."""
        for name in ("elasticity", "turnover", "participation", "margin", "distortion_bps", "inventory_penalty"):
            if np.ndim(getattr(self, name)) != 0:
                raise ValueError(f"a [market] block needs scalar inputs, but {name} is an array")
        return (
            "[market]\n"
            f"alpha = {toml_float(self.alpha)}\n"
            f"c_eff = {toml_float(self.c_eff)}\n"
            f"inventory_penalty = {toml_float(self.inventory_penalty)}\n"
        )

    def describe(self) -> str:
        """One line recording the inputs and the derived alpha, c_eff (for config headers and reports)."""
        k = "given" if self.impact_k is None else f"k = {float(self.impact_k):g} bp x sqrt(f)"
        return (
            f"epsilon_XM = {float(self.elasticity):g}, tau = {float(self.turnover):g}, f = {float(self.participation):g}, "
            f"m = {float(self.margin):g}, delta = {float(self.distortion_bps):.6g} bp ({k}), kappa = {float(self.inventory_penalty):g}"
            f" -> alpha = {float(self.alpha):.6g}, c_eff = {float(self.c_eff):.6g}, alpha*c_eff = {float(self.alpha_c_eff):.6g}, "
            f"(1/m) dm/dsigma_ann <= {float(self.cap().relative_dvol_annual):.4g}"
        )

    def _display(self) -> tuple[str, list[tuple[str, str]]]:
        cap = self.cap()
        impact = "given" if self.impact_k is None else f"k = {brief(self.impact_k, 'g')} bp x sqrt(f) (65)"
        return "Market calibration of the manipulation-proof cap (Appendix D.3)", [
            ("elasticity epsilon_XM", brief(self.elasticity, "g")),
            ("turnover tau", brief(self.turnover, "g", "(position in days of ADV)")),
            ("participation f", brief(self.participation, "g", "(trigger, fraction of ADV)")),
            ("margin m", brief(self.margin, "g", "(margin ratio)")),
            ("distortion delta", brief(self.distortion_bps, ".6g", f"bp ({impact})")),
            ("inventory penalty kappa", brief(self.inventory_penalty, "g")),
            ("alpha (75)", brief(self.alpha, ".6g", "price change per ADV traded")),
            ("c_eff (76)", brief(self.c_eff, ".6g", "ADV per unit margin ratio")),
            ("cap dM/dsigma (18)", brief(cap.dm_dvol, ".6g", "per unit daily vol (risk input: the variance of one return)")),
            ("cap dM/dsigma_ann (79)", brief(cap.dm_dvol_annual, ".6g", "per unit annualised vol")),
            ("cap (1/m) dM/dsigma_ann (80)", brief(cap.relative_dvol_annual, ".6g", "relative margin change per unit annualised vol")),
        ]

    def summary(self) -> str:
        """The inputs, alpha and c_eff they imply, and the cap in each unit system (text, one line each)."""
        return text_block(*self._display())


def calibrate_market(
    elasticity,
    turnover,
    participation,
    margin,
    *,
    impact_k=None,
    distortion=None,
    inventory_penalty: Any = 0.0,
) -> MarketCalibration:
    """Bundle the empirical inputs of the cap: epsilon_XM, tau, f (decimal of ADV), m (decimal), impact.

    Give either ``impact_k`` (bp, delta = k sqrt(f), default 200, (65)) or ``distortion`` (delta_bps in bp),
    not both. ``inventory_penalty`` is kappa of (11)/(16), >= 0. Arrays broadcast.
    """
    if impact_k is not None and distortion is not None:
        raise InputError("give either impact_k or distortion_bps, not both.")
    check_range("elasticity", elasticity, low=0.0, what="positive (epsilon_XM = -dlog X/dlog M)")
    check_range("turnover", turnover, low=0.0, what="positive (tau = XP/ADV)")
    check_range("participation", participation, low=0.0, high=1.0, what="a fraction of ADV in (0, 1]")
    check_range("margin", margin, low=0.0, high=1.0, what="a margin ratio in (0, 1]")
    check_range("inventory_penalty", inventory_penalty, low=0.0, low_inclusive=True, what="non-negative (kappa)")
    k = None if distortion is not None else (DEFAULT_IMPACT_K_BPS if impact_k is None else impact_k)
    d = resolve_distortion_bps(participation, distortion, k)
    return MarketCalibration(
        elasticity=elasticity,
        turnover=turnover,
        participation=participation,
        margin=margin,
        distortion_bps=d,
        impact_k=k,
        inventory_penalty=inventory_penalty,
    )
