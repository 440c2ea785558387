"""The design problem of Nicolai (2026), Section 6, as plain immutable data plus pure JAX functions.

Units throughout: per unit notional (price normalised to 1), so a margin M is the margin ratio;
the risk input r is the variance of daily returns, sigma = sqrt(r) the daily volatility and
sqrt(252) * sigma the annualised volatility; positions and flows are in units of average daily
traded value (ADV).

Importing this package switches JAX to float64 (``jax_enable_x64``): everything here feeds an
optimiser or a certificate. The switch and JAX's persistent compilation cache are set up in one place,
:func:`margin_design._runtime.configure_jax`.
"""

from margin_design._runtime import configure_jax

configure_jax()

from margin_design.design.cap import CapSpec, cap_increments, cap_slope_r, cap_slope_vol  # noqa: E402
from margin_design.design.config import load_config, load_problem, problem_from_dict  # noqa: E402
from margin_design.design.grid import RiskGrid, make_grid, state_weights  # noqa: E402
from margin_design.design.objective import CostSpec, TargetSpec  # noqa: E402
from margin_design.design.problem import Problem  # noqa: E402

__all__ = [
    "CapSpec",
    "CostSpec",
    "Problem",
    "RiskGrid",
    "TargetSpec",
    "cap_increments",
    "cap_slope_r",
    "cap_slope_vol",
    "load_config",
    "load_problem",
    "make_grid",
    "problem_from_dict",
    "state_weights",
]
