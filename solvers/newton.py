"""Newton's method for (41) with an exact-or-reference quadratic step, then block polish and certificate.

Psi is separable, so diag(w Psi'') is the exact Hessian of J. At each iterate x the step solves the
constrained quadratic model

    min_y  sum_i g_i (y_i - x_i) + h_i/2 (y_i - x_i)^2 + sum_i K w_i (y_i - M_-)_+     s.t. 0 <= diff(y) <= u

(g, h: smooth part's weighted derivatives; the kinked linear-cost part is kept exact), i.e. a weighted
chain QP with targets t = x - g/h. A backtracking line search on the JAX objective keeps J monotone;
convex combinations of feasible points stay feasible. The step solver is pluggable: cvxpy/Clarabel (the
reference path) or the exact chain programme. Afterwards each block is solved exactly and certified
(:mod:`~margin_design.solvers.polish`, :mod:`~margin_design.solvers.certificate`).
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from margin_design.errors import SolverError
from margin_design.solvers.certificate import certify, release_degenerate, residual_scale
from margin_design.solvers.polish import refine_active_set
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

# step(h, t, kink_w, kink_at) -> (y, codes)
QPStep = Callable[[np.ndarray, np.ndarray, np.ndarray, float], tuple[np.ndarray, np.ndarray]]


def _model(x, y, g, h, kw, m0) -> float:
    dx = y - x
    val = float(np.dot(g, dx) + 0.5 * np.dot(h, dx * dx))
    if kw is not None:
        val += float(np.dot(kw, np.maximum(y - m0, 0.0) - np.maximum(x - m0, 0.0)))
    return val


def _huber(z, delta):
    """Smoothing of z_+ with width delta: 0 (z <= 0), z^2/(2 delta) (0 < z < delta), z - delta/2 (z >= delta)."""
    zc = np.clip(z, 0.0, delta)
    return zc * zc / (2.0 * delta) + np.maximum(z - delta, 0.0)


def newton_iterations(
    problem,
    step: QPStep,
    x0: np.ndarray | None = None,
    *,
    max_iter: int = MAX_NEWTON,
    step_tol: float = STEP_TOL,
    kink_delta: float | None = None,
):
    """Damped Newton from ``x0`` (or from the quadratic model at the first-best). Returns (x, codes, iterations).

    ``kink_delta=None``: the kink K w (x - M_-)_+ goes to the step solver exactly (cvxpy ``pos``).
    ``kink_delta > 0``: for step solvers that take pure quadratics (the exact chain programme), the kink is
    replaced by its Huber smoothing of width ``kink_delta`` and Newton minimises the smoothed objective; the
    exact answer then comes from the block polish and the certificate, which treat the kink exactly.
    """
    K, m0 = problem.kink
    kw = problem.weights * K if problem.has_kink else None
    smooth = kw is not None and kink_delta is not None

    def huber_shift(x):
        z = x - m0
        return float(np.dot(kw, _huber(z, kink_delta) - np.maximum(z, 0.0)))

    def value(x):
        return problem.value(x) + (huber_shift(x) if smooth else 0.0)

    def evaluate(x):
        """(F, g, h) of the (smoothed) objective at x, from one fused JAX call."""
        F, g, h = problem.value_and_derivatives(x)
        if smooth:
            z = x - m0
            F += huber_shift(x)
            g = g + kw * np.clip(z / kink_delta, 0.0, 1.0)
            h = h + kw * ((z > 0) & (z < kink_delta)) / kink_delta
        return F, g, np.maximum(h, CURVATURE_FLOOR * max(float(h.max()), np.finfo(float).tiny))

    step_kw = None if smooth else kw
    if x0 is None:
        fb = problem.first_best
        _, _, h = evaluate(fb)
        x, codes = step(h, fb, step_kw, m0)
    else:
        x = np.asarray(x0, float)
        codes = None
    F, g, h = evaluate(x)
    it = 0
    for it in range(1, max_iter + 1):
        y, codes = step(h, x - g / h, step_kw, m0)
        pred = _model(x, y, g, h, step_kw, m0)
        dx = y - x
        if np.max(np.abs(dx)) <= step_tol * (1.0 + np.max(np.abs(x))) or pred >= -DECREASE_TOL * max(abs(F), 1e-300):
            break
        # full step first, with the derivatives the next iteration needs; shorter steps by value only
        xn = y
        Fn, gn, hn = evaluate(xn)
        a = 1.0
        while Fn > F + ARMIJO * a * pred and a >= 1e-12:
            a *= 0.5
            xn = x + a * dx
            Fn = value(xn)
            gn = None
        if Fn > F:  # no decrease possible at machine precision
            break
        if gn is None:
            Fn, gn, hn = evaluate(xn)
        x, F, g, h = xn, Fn, gn, hn
    return x, codes, it


def solve_with_steps(problem, step: QPStep, *, method: str, backend: str, versions: dict, kink_deltas=None) -> Schedule:
    """Newton + polish + certificate; restarts Newton from the polished point if the certificate fails.

    ``kink_deltas``: a decreasing sequence of Huber widths for step solvers that need pure quadratics
    (continuation: each Newton run starts from the previous answer); None passes the kink to the step.
    """
    t0 = time.perf_counter()
    x, codes, cert, G, total_iters = certified_solution(problem, step, method=method, kink_deltas=kink_deltas)
    seconds = time.perf_counter() - t0
    return build_schedule(problem, x, codes, cert, G, method=method, backend=backend, versions=versions, iterations=total_iters, seconds=seconds)


def certified_solution(problem, step: QPStep, *, method: str, kink_deltas=None):
    """Newton, then polish and certify, restarting Newton from the polished point if the certificate fails.

    Returns (x, codes, certificate, G, Newton iterations); raises SolverError if no certificate is reached.
    """

    def cert_fn(x, codes):
        g, h = problem.smooth_derivatives(x)
        glo, ghi = problem.gradient_bounds(x, g)
        return certify(x, problem.u, codes, glo, ghi, problem.value(x), curvature=h, breaks=problem.breaks)

    def run_newton(x0):
        if problem.has_kink and kink_deltas is not None:
            total = 0
            for delta in kink_deltas:
                x0, codes, iters = newton_iterations(problem, step, x0, kink_delta=delta)
                total += iters
            return x0, codes, total
        return newton_iterations(problem, step, x0)

    x, codes, total_iters = run_newton(None)
    for _ in range(MAX_RESTARTS):
        x, codes, cert, G, _ = refine_active_set(problem, codes, x, cert_fn)
        if cert.ok:
            break
        x, codes, iters = run_newton(x)
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
    segs = segments_from_codes(codes, problem.vol, x, fb, problem.cap.slope_vol, glo, ghi, problem.weights)
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
