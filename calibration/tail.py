"""Historical-simulation tail statistics, shared by the single-contract risk inputs (:mod:`.risk_inputs`) and the
portfolio functionals (:mod:`.portfolio_risk`) (Nicolai 2026, Section 4.2.3: a quantile or tail mean of scenario
losses).

With m scenario losses L_1, ..., L_m (margin-ratio units: decimal loss per unit notional) and confidence level p,
the tail holds n = ceil(m (1 - p)) scenarios (at least one); VaR is the n-th largest loss and ES the mean of the n
largest. The normal model's value per unit daily vol, k = z_p (VaR) or phi(z_p)/(1 - p) (ES), turns either into a
variance equivalent r = (max(Gamma, 0)/k)^2 (daily variance, decimal^2).

Importing this module loads neither JAX nor SciPy (the cap-only commands read :func:`tail_count` and
:func:`normal_multiple` through ``design.cap``); SciPy's normal quantile is loaded on the first call of
:func:`normal_multiple`, JAX on the first call of :func:`tail_statistic`.
"""

from __future__ import annotations

import math

from margin_design.errors import InputError

__all__ = ["TAIL_MEASURES", "tail_count", "normal_multiple", "tail_statistic"]

#: The two tail statistics: the n-th largest loss (VaR) or the mean of the n largest (ES).
TAIL_MEASURES = ("var", "es")


def tail_count(window: int, level: float) -> int:
    """Number of tail scenarios n = ceil(m (1 - p)), at least 1 (VaR is the n-th largest loss, ES the mean of the n largest)."""
    return max(1, math.ceil(window * (1.0 - level) - 1e-9))


def normal_multiple(level: float, measure: str) -> float:
    """k: the normal model's VaR (z_p) or ES (phi(z_p)/(1 - p)) per unit of daily vol (dimensionless)."""
    from scipy.stats import norm

    z = float(norm.ppf(level))
    if measure == "var":
        return z
    if measure == "es":
        return float(norm.pdf(z) / (1.0 - level))
    raise InputError(f"measure = {measure!r} is not one of {', '.join(TAIL_MEASURES)}.")


def tail_statistic(losses, n: int, es: bool):
    """The n-th largest of ``losses`` (last axis) or, with ``es``, the mean of the n largest (JAX, differentiable:
    the derivative in a loss is 1 (VaR) or 1/n (ES) while it is the active order statistic / inside the tail)."""
    from ._jax import jnp

    s = jnp.sort(losses, axis=-1)
    return jnp.mean(s[..., -n:], axis=-1) if es else s[..., -n]
