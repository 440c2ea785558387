"""The exact fast path: Newton steps solved exactly by the chain dynamic programme.

Each Newton step of (41) is the chain programme min sum_i a_i/2 (y_i - t_i)^2 + w_i [Q/2 (y_i - M_-)_+^2
+ K (y_i - M_-)_+] s.t. y_1 >= 0, 0 <= y_{i+1} - y_i <= u_i: the Taylor model of the smooth part of Psi plus
its exact piecewise part (quadratic and linear cost forms at M_-), which
:func:`~margin_design.solvers.chain_pw.chain_pwq` solves in O(n + crossings) (two-stack derivative
programme; plain Python on small grids, numba on large ones, see :mod:`~margin_design.solvers._jit`). Psi is separable, so the diagonal Hessian is exact and Newton converges quadratically;
the blocks are then solved exactly and the answer certified exactly as on the cvxpy path.
"""

from __future__ import annotations

from importlib import metadata

import numpy as np

from margin_design.design.problem import MARGIN_FLOOR
from margin_design.solvers._jit import small_n
from margin_design.solvers.chain_pw import ChainStep, chain_pwq
from margin_design.solvers.newton import piecewise_part, solve_with_steps


def dp_step(problem):
    """A Newton-step solver for :func:`solve_with_steps`: the exact chain programme on each chain of ``problem``.

    A single problem is one chain; a stacked batch (:class:`~margin_design.design.batch.BatchProblem`) has
    one chain per configuration, with its own cap increments, hinge M_- and floor.
    """
    u = np.asarray(problem.u, float)
    m0, c, k = piecewise_part(problem)
    starts = np.asarray(problem.starts)
    ends = np.append(starts[1:], problem.n)
    hinged = bool(np.any(c > 0) or np.any(k > 0))

    def step(a, t):
        if starts.size == 1:
            return chain_pwq(a, t, u, hinge=(m0[0], c, k) if hinged else None, lower=MARGIN_FLOOR)
        x = np.empty(a.size)
        codes = np.zeros(a.size - 1, np.int8)
        floor = np.zeros(starts.size, bool)
        for j, (lo, hi) in enumerate(zip(starts, ends)):
            res = chain_pwq(a[lo:hi], t[lo:hi], u[lo : hi - 1], hinge=(m0[lo], c[lo:hi], k[lo:hi]) if hinged else None, lower=MARGIN_FLOOR)
            x[lo:hi] = res.x
            codes[lo : hi - 1] = res.codes
            floor[j] = res.floor
        return ChainStep(x=x, codes=codes, floor=bool(floor[0]))

    return step


def solve_exact(problem):
    """Solve (41) on the exact path; returns a certified :class:`~margin_design.solvers.result.Schedule`."""
    return solve_with_steps(
        problem,
        dp_step(problem),
        method="exact",
        backend=f"chain-dp ({'python' if problem.n <= small_n() else 'numba'})",
        versions={"numba": metadata.version("numba"), "numpy": np.__version__},
    )
