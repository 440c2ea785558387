"""Newton's method for (41) with an exact piecewise model step, then block polish and certificate.

Psi = Psi_rest + Q/2 (M - M_-)_+^2 + K (M - M_-)_+ (see :mod:`margin_design.design.objective`). At each
iterate x the step minimises the model

    sum_i g_i (y_i - x_i) + h_i/2 (y_i - x_i)^2 + w_i [Q/2 (y_i - M_-)_+^2 + K (y_i - M_-)_+]
    s.t.  y_1 >= 0,  0 <= diff(y) <= u

(g, h: the weighted derivatives of Psi_rest, whose Hessian is diagonal because Psi is separable), i.e. a
chain programme with targets t = x - g/h and the piecewise part kept exact. Only Psi_rest is expanded, so
the model is exact across M_- and Newton converges quadratically there too. (With the Taylor model of the
whole Psi, quadratic liquidation costs made Newton advance a saturated block by one state per iteration:
29 iterations at 1,000 states and 49 at 10^6 for the configuration of issue 9.) A backtracking line
search on the JAX objective keeps J monotone; convex combinations of feasible points stay feasible. The
step solver is pluggable: the exact chain programme (:mod:`margin_design.solvers.chain_pw`) or cvxpy/
Clarabel (the reference path). Afterwards each block is solved exactly and certified
(:mod:`~margin_design.solvers.polish`, :mod:`~margin_design.solvers.certificate`).
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from margin_design.design.problem import MARGIN_FLOOR
from margin_design.errors import SolverError
from margin_design.solvers.certificate import certify, release_degenerate, residual_scale
from margin_design.solvers.polish import floor_status, refine_active_set
from margin_design.solvers.result import Schedule
from margin_design.solvers.segments import segments_from_codes

# Curvature floor, relative to the largest weighted curvature: keeps flat states' Newton targets finite.
CURVATURE_FLOOR = 1e-12
ARMIJO = 1e-4
MAX_NEWTON = 60
MAX_RESTARTS = 3
# Stop when the step is below STEP_TOL * (1 + max|x|) or the model predicts a negligible decrease.
STEP_TOL = 1e-12
DECREASE_TOL = 1e-15
# The line search gives up below this step length (the model's decrease is then below J's rounding).
MIN_STEP = 1e-12

# step(a, t) -> object with x, codes: minimiser of sum a/2 (y - t)^2 + the exact piecewise part, feasible
QPStep = Callable[[np.ndarray, np.ndarray], object]


def piecewise_part(problem):
    """(M_-, c, k) per state: the exact part w_i [c/2 (y - M_-)_+^2 + k (y - M_-)_+] of the weighted objective."""
    K, m0 = problem.kink
    return m0, problem.weights * problem.curvature_jump, problem.weights * K


def _piecewise_value(y, m0, c, k) -> float:
    z = np.maximum(y - m0, 0.0)
    return float(np.dot(c, 0.5 * z * z) + np.dot(k, z))


def newton_iterations(problem, step: QPStep, x0: np.ndarray | None = None, *, max_iter: int = MAX_NEWTON, step_tol: float = STEP_TOL):
    """Damped Newton from ``x0`` (or from the model's minimiser at the first-best). Returns (x, codes, iterations)."""
    m0, c, k = piecewise_part(problem)

    def evaluate(x):
        """(J, g, h) of the smooth part Psi_rest at x, from one fused JAX call; h floored."""
        F, g, h = problem.model_derivatives(x)
        return F, g, np.maximum(h, CURVATURE_FLOOR * max(float(h.max()), np.finfo(float).tiny))

    if x0 is None:
        fb = problem.first_best
        _, g, h = evaluate(fb)
        res = step(h, fb - g / h)
        x, codes = res.x, res.codes
    else:
        x = np.asarray(x0, float)
        codes = None
    F, g, h = evaluate(x)
    px = _piecewise_value(x, m0, c, k)
    it = 0
    for it in range(1, max_iter + 1):
        res = step(h, x - g / h)
        y, codes = res.x, res.codes
        dx = y - x
        py = _piecewise_value(y, m0, c, k)
        pred = float(np.dot(g, dx) + 0.5 * np.dot(h, dx * dx)) + py - px
        if np.max(np.abs(dx)) <= step_tol * (1.0 + np.max(np.abs(x))) or pred >= -DECREASE_TOL * max(abs(F), 1e-300):
            break
        # full step first, with the derivatives the next iteration needs; shorter steps by value only
        xn = y
        Fn, gn, hn = evaluate(xn)
        a = 1.0
        F0 = F
        if Fn > F0 + ARMIJO * pred:
            # shorter steps are valued by problem.value, a different XLA programme whose rounding differs from the
            # fused evaluation's by a few ulps of J: compare like with like
            F0 = problem.value(x)
        while Fn > F0 + ARMIJO * a * pred and a >= MIN_STEP:
            a *= 0.5
            xn = x + a * dx
            Fn = problem.value(xn)
            gn = None
        if a < MIN_STEP or Fn >= F0:  # no decrease J can resolve in float64: the polish takes it from here
            break
        if gn is None:
            Fn, gn, hn = evaluate(xn)
        x, F, g, h = xn, Fn, gn, hn
        px = _piecewise_value(x, m0, c, k)
    return x, codes, it


def solve_with_steps(problem, step: QPStep, *, method: str, backend: str, versions: dict) -> Schedule:
    """Newton + polish + certificate; restarts Newton from the polished point if the certificate fails."""
    t0 = time.perf_counter()
    x, codes, cert, G, total_iters = certified_solution(problem, step, method=method)
    seconds = time.perf_counter() - t0
    return build_schedule(problem, x, codes, cert, G, method=method, backend=backend, versions=versions, iterations=total_iters, seconds=seconds)


def problem_certificate(problem, x, codes):
    """The certificate of ``x`` with link ``codes`` for ``problem`` (floor status read off x)."""
    g, h = problem.smooth_derivatives(x)
    glo, ghi = problem.gradient_bounds(x, g)
    return certify(
        x, problem.u, codes, glo, ghi, problem.value(x), curvature=h, breaks=problem.breaks,
        floor=floor_status(problem, x), starts=problem.starts, lower=MARGIN_FLOOR,
    )


def certified_solution(problem, step: QPStep, *, method: str):
    """Newton, then polish and certify, restarting Newton from the polished point if the certificate fails.

    Returns (x, codes, certificate, G, Newton iterations); raises SolverError if no certificate is reached.
    """

    def cert_fn(x, codes):
        return problem_certificate(problem, x, codes)

    x, codes, total_iters = newton_iterations(problem, step)
    for _ in range(MAX_RESTARTS):
        x, codes, cert, G, _ = refine_active_set(problem, codes, x, cert_fn)
        if cert.ok:
            break
        x, codes, iters = newton_iterations(problem, step, x)
        total_iters += iters
    else:
        raise SolverError(
            f"the {method} path could not certify the schedule (relative gap {cert.relative_gap:.2e}, "
            f"complementarity {cert.complementarity:.2e}); try --method {'exact' if method == 'cvxpy' else 'cvxpy'}."
        )
    if problem.breaks is None:  # a batch releases per configuration, against each chain's own prefix sums
        g, h = problem.smooth_derivatives(x)
        glo, ghi = problem.gradient_bounds(x, g)
        released = release_degenerate(codes, G, residual_scale(x, glo, ghi, h))
        if not np.array_equal(released, codes):
            cert2, G2 = cert_fn(x, released)
            if cert2.ok:
                codes, cert, G = released, cert2, G2
    return x, codes, cert, G, total_iters


def build_schedule(problem, x, codes, cert, G, *, method, backend, versions, iterations, seconds) -> Schedule:
    """Assemble the frozen result: objective (total, per term, first-best), segments, certificate, solver record."""
    fb = problem.first_best
    glo, ghi = problem.gradient_bounds(x)  # for the segments' (43) residuals
    terms = problem.terms(x)
    fb_terms = problem.terms(fb)
    objective = {
        "value": float(sum(terms.values())),
        "first_best_value": float(sum(fb_terms.values())),
        "price_of_manipulation_proofness": float(sum(terms.values()) - sum(fb_terms.values())),
        "terms": terms,
        "first_best_terms": fb_terms,
    }
    floor = bool(floor_status(problem, x)[0])
    segs = segments_from_codes(codes, problem.vol, x, fb, problem.cap.slope_vol, glo, ghi, problem.weights, floor=floor)
    solver = {"method": method, "backend": backend, "versions": versions, "iterations": int(iterations), "seconds": round(float(seconds), 3)}
    return Schedule(
        problem=problem,
        schedule=np.asarray(x, float),
        codes=np.asarray(codes, np.int8),
        multipliers=np.asarray(G, float),
        segments=tuple(segs),
        objective=objective,
        certificate=cert,
        solver=solver,
    )
