"""The reference path: Newton steps as cvxpy quadratic programmes solved by Clarabel.

Each step is built with constants (vectorised ``cp.diff`` constraints) and solved once; the piecewise
cost part at M_- (quadratic and linear forms) and the floor y_1 >= 0 are modelled exactly. Measured on a 2-core machine: building the QP costs about
0.03 s at n = 1,000 and 0.35 s at n = 10,000; DPP ``Parameter``s do not pay here (``multiply(h,
square(x))`` took 21 s to compile at 10,000 points, and at 100,000 points cvxpy's parameter
canonicalisation tries to allocate a dense n-by-2n matrix). Treat this path as the reference up to about
10,000 grid points; long grids belong to the exact path (``method="exact"``).

Interior-point answers are accurate to about 1e-4 in x on long grids (flat directions of pooled and
saturated blocks), so the reported schedule is always the polished, certified one.
"""

from __future__ import annotations

import cvxpy as cp
import numpy as np

from margin_design.design.problem import MARGIN_FLOOR
from margin_design.errors import SolverError
from margin_design.solvers.chain import FREE, POOLED, SATURATED
from margin_design.solvers.chain_pw import ChainStep
from margin_design.solvers.newton import piecewise_part, solve_with_steps

CLARABEL_OPTIONS = {"tol_gap_abs": 1e-12, "tol_gap_rel": 1e-12, "tol_feas": 1e-12, "max_iter": 500}
# Link status from the QP answer: active when within ACTIVE_REL of the bound (relative to u, or to the
# schedule's range when uncapped). Wrong calls are repaired by the active-set refinement and certificate.
ACTIVE_REL = 1e-6


def versions() -> dict:
    import clarabel

    return {"cvxpy": cp.__version__, "clarabel": getattr(clarabel, "__version__", "unknown")}


def cvxpy_step(problem):
    """A Newton-step solver for :func:`solve_with_steps` using cvxpy + Clarabel on the model's QP.

    The piecewise part of the model, w [Q/2 (y - M_-)_+^2 + K (y - M_-)_+], is exact (``pos``), and so is
    the floor y_1 >= 0.
    """
    u = np.asarray(problem.u, float)
    finite = np.isfinite(u)
    idx = np.flatnonzero(finite)
    m0, cq, kq = piecewise_part(problem)
    quad = np.flatnonzero(cq > 0)
    kink = np.flatnonzero(kq > 0)

    def step(h, t):
        n = h.size
        scale = 1.0 / float(np.mean(h))
        y = cp.Variable(n)
        expr = 0.5 * cp.sum(cp.multiply(h * scale, cp.square(y - t)))
        if quad.size:
            expr = expr + 0.5 * cp.sum(cp.multiply(cq[quad] * scale, cp.square(cp.pos(y[quad] - m0[quad]))))
        if kink.size:
            expr = expr + cp.sum(cp.multiply(kq[kink] * scale, cp.pos(y[kink] - m0[kink])))
        cons = [y[0] >= MARGIN_FLOOR]
        if n > 1:
            dy = cp.diff(y)
            cons.append(dy >= 0)
            if idx.size == u.size:
                cons.append(dy <= u)
            elif idx.size:
                cons.append(dy[idx] <= u[idx])
        prob = cp.Problem(cp.Minimize(expr), cons)
        try:
            prob.solve(solver=cp.CLARABEL, **CLARABEL_OPTIONS)
        except cp.SolverError:
            try:
                prob.solve(solver=cp.CLARABEL)
            except cp.SolverError:
                raise SolverError("Clarabel failed on a Newton step of the cvxpy path (badly scaled costs?); try --method exact.") from None
        if y.value is None:
            raise SolverError(f"Clarabel returned status {prob.status} on a Newton step of the cvxpy path; try --method exact.")
        yv = np.asarray(y.value, float)
        d = np.diff(yv)
        span = max(float(np.ptp(yv)), float(np.max(np.abs(yv))), 1e-12)
        ref = np.where(finite, u, span)
        codes = np.full(n - 1, FREE, np.int8)
        codes[d <= ACTIVE_REL * ref] = POOLED
        codes[finite & (u - d <= ACTIVE_REL * np.where(finite, u, 1.0))] = SATURATED
        floor = bool(yv[0] <= MARGIN_FLOOR + ACTIVE_REL * span)
        return ChainStep(x=yv, codes=codes, floor=floor)

    return step


def solve_cvxpy(problem):
    """Solve (41) on the reference path; returns a certified :class:`~margin_design.solvers.result.Schedule`."""
    return solve_with_steps(problem, cvxpy_step(problem), method="cvxpy", backend="CLARABEL", versions=versions())
