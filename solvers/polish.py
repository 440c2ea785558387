"""Exact block solves and active-set refinement for (41).

Given link statuses (codes), the chain splits into blocks: maximal runs of points joined by active
(pooled or saturated) links. Inside a block B every point is x_j = L_B + s_j with the offset s_j the
sum of the caps u over the saturated links of B before j, and the block level L_B solves the
one-dimensional monotone equation

    0 in sum_{j in B} [f_j'(L_B + s_j -), f_j'(L_B + s_j +)]      (f_j = w_j Psi_j; (43) for pooled blocks)

which we solve to float64 precision by Newton's method safeguarded by a bracket (bisection when a Newton
step leaves it). The block that starts a chain carries the floor g_1 >= 0: its level is the root or
MARGIN_FLOOR, whichever is larger, and the floor is active exactly where the first margin ends on it. Interior-point solvers return schedules accurate to about 1e-4 on long grids; this
turns their active set into an exact answer. See ``../shared/notes/chain-algorithms.md`` section 1.
"""

from __future__ import annotations

import numpy as np

from margin_design.design.problem import MARGIN_FLOOR
from margin_design.design.roots import monotone_roots
from margin_design.solvers.certificate import residual_scale
from margin_design.solvers.chain import FREE, POOLED, SATURATED, chain_qp_block_offsets, chain_qp_codes_to_blocks

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
        g, h = problem.smooth_derivatives(x)
        glo, ghi = problem.gradient_bounds(x, g)
        return np.add.reduceat(glo, starts), np.add.reduceat(ghi, starts), np.add.reduceat(h, starts)

    step0 = np.maximum(1e-9 * np.abs(L), 1e-15)  # Newton's answer is already close: explore in small steps
    lower = np.where(np.isin(starts, problem.starts), MARGIN_FLOOR, -np.inf)  # s = 0 at a block start
    L, _ = monotone_roots(sums, np.maximum(L, lower), lower=lower, step0=step0, snap=_kink_levels(problem, L, starts, bid, s))
    return L[bid] + s


def floor_status(problem, x) -> np.ndarray:
    """One bool per chain: is the chain's first margin on the floor g_1 >= 0?"""
    return np.asarray(x)[problem.starts] <= MARGIN_FLOOR


def _kink_levels(problem, L, starts, bid, s):
    """Per block, the level at which its point nearest to the kink M_- sits exactly on it (NaN if no kink)."""
    if not problem.has_kink:
        return None
    K, m0 = problem.kink
    m0 = np.where(K > 0, m0, np.inf)
    dist = np.abs(L[bid] + s - m0)
    best = np.minimum.reduceat(dist, starts)
    pick = np.empty(L.size, np.int64)
    hit = np.flatnonzero(dist == best[bid])
    pick[bid[hit[::-1]]] = hit[::-1]  # first point attaining the minimum in each block
    out = m0[pick] - s[pick]
    return np.where(np.isfinite(out), out, np.nan)


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
        g, h = problem.smooth_derivatives(x)
        glo, ghi = problem.gradient_bounds(x, g)
        scale = residual_scale(x, glo, ghi, h)[:-1]
        tol = 1e-9 * np.maximum(scale, np.finfo(float).tiny)
        new = codes.copy()
        new[(codes == FREE) & (d < 0)] = POOLED
        new[(codes == FREE) & (d > u)] = SATURATED
        new[(codes == POOLED) & (G > tol)] = FREE
        new[(codes == SATURATED) & (G < -tol)] = FREE
        if np.array_equal(new, codes):
            # The certificate's prefix sums put an unmet condition where the propagation runs out of room,
            # which need not be the wrong link (on the floor, where a block's level is pinned, it shows as a
            # subgradient residual instead). Read each active link off its block's suffix: the states after
            # it would move up (pooled link) or down (saturated link) even with the most favourable
            # subgradients.
            up, down = _block_suffix_sums(codes, glo, ghi)
            new[(codes == POOLED) & (up < -tol)] = FREE
            new[(codes == SATURATED) & (down > tol)] = FREE
        if problem.breaks is not None:
            new[problem.breaks] = FREE  # links between the chains of a batch carry no constraint
        if np.array_equal(new, codes):
            break
        codes = new
    return x, codes, cert, G, rounds


def _block_suffix_sums(codes, glo, ghi) -> tuple[np.ndarray, np.ndarray]:
    """Per link k inside a block: (sum of ghi, sum of glo) over the block's states after k (0 on free links)."""
    starts = chain_qp_codes_to_blocks(codes)
    ends = np.append(starts[1:], codes.size + 1) - 1  # last state of each block
    bid = np.zeros(codes.size + 1, np.int64)
    bid[starts[1:]] = 1
    bid = np.cumsum(bid)
    out = []
    for g in (ghi, glo):
        cs = np.cumsum(g)
        out.append(np.where(codes != FREE, cs[ends[bid[:-1]]] - cs[:-1], 0.0))
    return out[0], out[1]
