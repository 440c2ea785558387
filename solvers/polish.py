"""Exact block solves and active-set refinement for (41).

Given link statuses (codes), the chain splits into blocks: maximal runs of points joined by active
(pooled or saturated) links. Inside a block B every point is x_j = L_B + s_j with the offset s_j the
sum of the caps u over the saturated links of B before j, and the block level L_B solves the
one-dimensional monotone equation

    0 in sum_{j in B} [f_j'(L_B + s_j -), f_j'(L_B + s_j +)]      (f_j = w_j Psi_j; (43) for pooled blocks)

which we solve to float64 precision by Newton's method safeguarded by a bracket (bisection when a Newton
step leaves it). Interior-point solvers return schedules accurate to about 1e-4 on long grids; this
turns their active set into an exact answer. See ``../shared/notes/chain-algorithms.md`` section 1.
"""

from __future__ import annotations

import numpy as np

from margin_design.solvers.certificate import residual_scale
from margin_design.solvers.chain import FREE, POOLED, SATURATED, chain_qp_block_offsets, chain_qp_codes_to_blocks

MAX_LEVEL_ITER = 200
MAX_REFINE_ROUNDS = 60


def block_layout(codes: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(starts, block_id, offsets) for link ``codes``: block start indices, each point's block, s_j."""
    starts = chain_qp_codes_to_blocks(codes)
    block_id = np.zeros(np.asarray(codes).size + 1, np.int64)
    block_id[starts[1:]] = 1
    block_id = np.cumsum(block_id)
    return starts, block_id, chain_qp_block_offsets(u, codes)


def solve_block_levels(problem, codes: np.ndarray, x_guess: np.ndarray) -> np.ndarray:
    """The exact schedule for the given active set: x_j = L_B + s_j with each L_B solving its block equation."""
    u = problem.u
    starts, bid, s = block_layout(codes, u)
    L = np.asarray(x_guess, float)[starts] - s[starts]

    def sums(level):
        x = level[bid] + s
        glo, ghi = problem.gradient_bounds(x)
        _, h = problem.smooth_derivatives(x)
        return np.add.reduceat(glo, starts), np.add.reduceat(ghi, starts), np.add.reduceat(h, starts)

    flo, fhi, H = sums(L)
    done = (flo <= 0.0) & (fhi >= 0.0)
    # bracket: lo with F+(lo) < 0, hi with F+(hi) >= 0
    width = np.maximum(1e-4, 1e-2 * np.abs(L))
    lo = np.where(fhi < 0, L, L - width)
    hi = np.where(fhi >= 0, L, L + width)
    for _ in range(200):
        _, fh_lo, _ = sums(lo)
        _, fh_hi, _ = sums(hi)
        bad_lo = (fh_lo >= 0) & ~done  # blocks already at a root (e.g. zero-weight states) need no bracket
        bad_hi = (fh_hi < 0) & ~done
        if not (bad_lo.any() or bad_hi.any()):
            break
        span = hi - lo
        lo = np.where(bad_lo, lo - 2.0 * span, lo)
        hi = np.where(bad_hi, hi + 2.0 * span, hi)
    L = np.clip(L, lo, hi)
    converged = done.copy()
    eps = np.finfo(float).eps
    for _ in range(MAX_LEVEL_ITER):
        flo, fhi, H = sums(L)
        done = (flo <= 0.0) & (fhi >= 0.0)
        up = fhi >= 0.0
        hi = np.where(up & ~done, np.minimum(hi, L), hi)
        lo = np.where(~up & ~done, np.maximum(lo, L), lo)
        newton = L - fhi / np.where(H > 0, H, np.inf)
        inside = (newton > lo) & (newton < hi) & (H > 0)
        cand = np.where(inside, newton, 0.5 * (lo + hi))
        # a Newton step at the rounding level of L, or a bracket that cannot shrink further: converged
        tiny_step = inside & (np.abs(cand - L) <= 4.0 * eps * np.maximum(np.abs(L), 1e-300))
        narrow = (hi - lo) <= 4.0 * eps * np.maximum(np.abs(hi), 1e-300)
        L = np.where(converged | done, L, cand)
        converged |= done | tiny_step | narrow
        if converged.all():
            break
    return _snap_to_kink(problem, L, starts, bid, s, sums)


def _snap_to_kink(problem, L, starts, bid, s, sums):
    """Put blocks whose root is the kink M_- of a linear cost form exactly there.

    When 0 lies strictly inside the jump of the block's subdifferential, the root is a level at which
    some point of the block sits exactly at M_-; floating-point bisection only gets within an ulp, on the
    wrong side of which the one-sided derivative is off by the whole jump.
    """
    K, m0 = problem.kink
    if K <= 0 or not np.isfinite(m0):
        return L[bid] + s
    dist = np.abs(L[bid] + s - m0)
    best = np.minimum.reduceat(dist, starts)
    pick = np.full(L.size, -1)
    hit = np.flatnonzero(dist == best[bid])
    pick[bid[hit[::-1]]] = hit[::-1]  # first point attaining the minimum in each block
    cand = m0 - s[pick]
    flo, fhi, _ = sums(cand)
    ok = (flo <= 0.0) & (fhi >= 0.0) & (best <= 1e-9 * max(1.0, abs(m0)))
    L = np.where(ok, cand, L)
    return L[bid] + s


def refine_active_set(problem, codes, x_guess, certify_fn):
    """Polish, certify, and repair a wrong active set by flipping the links whose KKT conditions fail.

    Free links that came out infeasible are closed (pooled if d < 0, saturated if d > u); active links
    whose multiplier has the wrong sign are freed. Returns (x, codes, certificate, G, rounds).
    """
    codes = np.asarray(codes, np.int8).copy()
    u = problem.u
    x = np.asarray(x_guess, float)
    for rounds in range(1, MAX_REFINE_ROUNDS + 1):
        x = solve_block_levels(problem, codes, x)
        cert, G = certify_fn(x, codes)
        if cert.ok:
            return x, codes, cert, G, rounds
        d = np.diff(x)
        glo, ghi = problem.gradient_bounds(x)
        scale = residual_scale(x, glo, ghi, problem.smooth_derivatives(x)[1])[:-1]
        tol = 1e-9 * np.maximum(scale, np.finfo(float).tiny)
        new = codes.copy()
        new[(codes == FREE) & (d < 0)] = POOLED
        new[(codes == FREE) & (d > u)] = SATURATED
        new[(codes == POOLED) & (G > tol)] = FREE
        new[(codes == SATURATED) & (G < -tol)] = FREE
        if np.array_equal(new, codes):
            break
        codes = new
    return x, codes, cert, G, rounds
