"""Vectorised roots of monotone one-dimensional equations with kinks: 0 in [F(L-), F(L+)].

Used for the first-best (34) (one equation per state) and by the solvers' block polish (one equation per
block, (43)). Each unknown L has a non-decreasing right-continuous F+ and its left limit F-; the root is a
level with F-(L) <= 0 <= F+(L). Newton steps with the smooth curvature H, safeguarded by a bracket built
from the signs seen so far (bisection once both ends are known, doubling steps before that). From a good
start it costs two or three evaluations, which is what long grids need.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

MAX_ROOT_ITER = 200
EPS = np.finfo(float).eps
SNAP_REL = 1e-9

# evaluate(L) -> (F-, F+, H) arrays like L
Evaluate = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]


def monotone_roots(
    evaluate: Evaluate,
    L0: np.ndarray,
    *,
    lower: np.ndarray | float = -np.inf,
    step0: np.ndarray | float = 1e-3,
    snap: np.ndarray | None = None,
):
    """Solve 0 in [F-(L), F+(L)] for every component, with L >= ``lower``.

    Returns (L, converged). Components whose root lies at or below ``lower`` (F+(lower) >= 0) return
    ``lower``. ``step0`` is the first exploratory step where the curvature gives no Newton step.
    ``snap``: the kink location of each component, if any (NaN for none). A root at a kink has 0 strictly
    inside the jump of F; floating-point iterations only get within an ulp of it, on the wrong side of
    which F is off by the whole jump, so roots within SNAP_REL of their kink are tested there exactly.
    """
    L = np.maximum(np.asarray(L0, float).copy(), lower)
    lo = np.broadcast_to(np.asarray(lower, float), L.shape).copy()
    lo_known = np.isfinite(lo)
    hi = np.full(L.shape, np.inf)
    converged = np.zeros(L.shape, bool)
    step = np.broadcast_to(np.asarray(step0, float), L.shape).copy()
    if lo_known.any():
        flo, fhi, _ = evaluate(np.where(lo_known, lo, L))
        at_lower = lo_known & (fhi >= 0.0)
        L = np.where(at_lower, lo, L)
        converged |= at_lower
    for _ in range(MAX_ROOT_ITER):
        flo, fhi, H = evaluate(L)
        done = (flo <= 0.0) & (fhi >= 0.0)
        converged |= done
        up = fhi >= 0.0
        hi = np.where(~converged & up, np.minimum(hi, L), hi)
        lo = np.where(~converged & ~up, np.maximum(lo, L), lo)
        lo_known |= ~converged & ~up
        newton = L - fhi / np.where(H > 0, H, np.inf)
        inside = (H > 0) & (newton > np.where(lo_known, lo, -np.inf)) & (newton < hi)
        both = lo_known & np.isfinite(hi)
        explore = np.where(up, L - step, L + step)
        explore = np.where(lo_known & (explore <= lo), 0.5 * (L + lo), explore)
        mid = np.where(both, 0.5 * (np.where(both, lo, 0.0) + np.where(both, hi, 0.0)), 0.0)
        cand = np.where(inside, newton, np.where(both, mid, explore))
        step = np.where(inside | both, step, 2.0 * step)
        # a Newton correction at the rounding level of L: converged (the bracket may already sit on L itself)
        tiny = (H > 0) & (np.abs(newton - L) <= 4.0 * EPS * np.maximum(np.abs(L), 1e-300))
        narrow = both & ((hi - lo) <= 4.0 * EPS * np.maximum(np.abs(hi), 1e-300))
        L = np.where(converged | tiny, L, cand)
        converged |= tiny | narrow
        if converged.all():
            break
    if snap is not None:
        snap = np.asarray(snap, float)
        near = np.isfinite(snap) & (np.abs(L - np.nan_to_num(snap)) <= SNAP_REL * np.maximum(1.0, np.abs(np.nan_to_num(snap))))
        if near.any():
            flo, fhi, _ = evaluate(np.where(near, snap, L))
            at = near & (flo <= 0.0) & (fhi >= 0.0)
            L = np.where(at, snap, L)
            converged |= at
    return L, converged
