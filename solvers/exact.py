"""The exact fast path: Newton steps solved exactly by the chain dynamic programme.

Each Newton step of (41) is the weighted bounded-difference isotonic QP
min sum_i h_i/2 (y_i - t_i)^2 s.t. 0 <= y_{i+1} - y_i <= u_i, which :func:`~margin_design.solvers.chain.chain_qp`
solves exactly in O(n + crossings) (two-stack derivative programme; numba). Psi is separable, so the
diagonal Hessian is exact and Newton converges quadratically; the blocks are then solved exactly and the
answer certified exactly as on the cvxpy path. Linear (kinked) cost forms are handled by Huber
continuation in the Newton phase (widths KINK_DELTAS, relative to the margin scale) and exactly in the
polish and the certificate.
"""

from __future__ import annotations

import numba
import numpy as np

from margin_design.solvers.chain import chain_qp
from margin_design.solvers.newton import solve_with_steps

# Huber widths for the kink of linear cost forms, as fractions of the largest first-best margin.
KINK_DELTAS = (1e-2, 1e-4, 1e-6, 1e-8, 1e-10)


def dp_step(u: np.ndarray, backend: str = "numba"):
    """A Newton-step solver for :func:`solve_with_steps` using the exact chain programme."""
    u = np.asarray(u, float)

    def step(h, t, kink_w, kink_at):
        if kink_w is not None:  # pragma: no cover - solve_exact always smooths the kink first
            raise ValueError("the chain programme takes pure quadratics; smooth the kink first")
        res = chain_qp(h, t, u, backend=backend)
        return res.x, res.codes

    return step


def solve_exact(problem, backend: str = "numba"):
    """Solve (41) on the exact path; returns a certified :class:`~margin_design.solvers.result.Schedule`."""
    scale = max(float(np.max(np.abs(problem.first_best))), 1e-12)
    return solve_with_steps(
        problem,
        dp_step(problem.u, backend),
        method="exact",
        backend=f"chain-dp ({backend})",
        versions={"numba": numba.__version__, "numpy": np.__version__},
        kink_deltas=tuple(d * scale for d in KINK_DELTAS),
    )
