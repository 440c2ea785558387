"""Solvers for the constrained design problem (41): minimise sum_i w_i Psi(r_i, g_i) s.t. 0 <= g_{i+1} - g_i <= u_i.

``solve(problem, method=...)`` returns a frozen, certified :class:`Schedule`.
* ``"exact"`` (default): Newton steps by the exact chain dynamic programme (long grids, batches).
* ``"cvxpy"``: the reference path (Newton steps as Clarabel QPs); up to about 10,000 states.
``solve_batch`` (:mod:`~margin_design.solvers.batch`) solves stacked configurations in one loop, and
:mod:`~margin_design.solvers.sweep` runs grids of configurations locally or on dask.
"""

from __future__ import annotations

from margin_design.errors import ConfigError
from margin_design.solvers.result import Schedule

METHODS = ("cvxpy", "exact")


def solve(problem, method: str = "exact") -> Schedule:
    """Find the manipulation-proof margin rule for ``problem`` and prove it optimal.

    Minimises the expected cost sum_i w_i Psi(r_i, g_i) over margins g_i (margin ratios) that never fall from one
    volatility state to the next, never rise faster than the slope cap allows, and never go below zero -- the
    paper's problem (41). Returns a frozen :class:`Schedule` with the margins, the stretches where the rule tracks
    the first-best, rises at the cap or pools, and a KKT certificate (duality gap and residuals). ``method``:
    ``"exact"`` (default; the chain dynamic programme, any grid size) or ``"cvxpy"`` (the reference path through
    Clarabel, up to about 10,000 states). ``result.certificate.ok`` says whether the answer is certified.
    """
    if method == "cvxpy":
        from margin_design.solvers.cvxpy_path import solve_cvxpy

        return solve_cvxpy(problem)
    if method == "exact":
        from margin_design.solvers.exact import solve_exact

        return solve_exact(problem)
    raise ConfigError(f"method = {method!r} is not one of {', '.join(METHODS)}.")


__all__ = ["METHODS", "Schedule", "solve"]
