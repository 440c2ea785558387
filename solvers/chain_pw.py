"""Exact chain programme for the Newton model of (41): quadratics plus a hinge at M_-, with the floor M >= 0.

Problem::

    minimise  sum_i [ a_i/2 (x_i - t_i)^2 + c_i/2 (x_i - m)_+^2 + k_i (x_i - m)_+ ]
    s.t.      0 <= x_{i+1} - x_i <= u_i  (i = 0..n-2),   x_0 >= lower  (optional)

with a_i > 0, c_i >= 0, k_i >= 0 and one hinge location m for the whole chain. This is the exact Newton
model of the design objective: Psi = Psi_rest + Q/2 (M - M_-)_+^2 + K (M - M_-)_+, where the quadratic
liquidation and participation forms put a curvature jump Q and the linear forms a kink K at M_- (see
:mod:`margin_design.design.objective`). Newton takes the second-order Taylor model of the smooth Psi_rest
only and keeps the piecewise part exact, so a step never misjudges the curvature of states that cross
M_- (issue 9: with the Taylor model of the whole Psi, a saturated block whose end sits just above M_-
advanced by one state per Newton iteration, 29-49 iterations). ``lower`` is the floor of (3) and (34),
M >= 0: a monotone rule is non-negative iff its first margin is.

Algorithm: the two-stack derivative programme of :mod:`margin_design.solvers.chain` (notes
``chain-algorithms.md`` section 6(a)), generalised to derivatives with slope changes and upward jumps at
breakpoints ("derivative jumps stored as value jumps at breakpoints", notes 6(b)). V_i' is kept as a
pivot p with the derivative value g and slope s there, and breakpoints left of it (stack L) and right of
it (stack R), each with its value jump dj and slope change ds (crossing to the right adds them). Adding
f_i adds a_i (p - t_i) to g and a_i to s; its hinge enters as one breakpoint at m. Every hinge breakpoint
sits at m when it enters and only ever shifts right (window-min shifts), so hinges live in their own
structures: a deque L2 (new ones go to the bottom, at m, below every other hinge) and a stack R2 (new ones
go on top). The walk crosses the nearest breakpoint of either structure. The zero c_i is where
g(c-) <= 0 <= g(c+); it may sit inside a jump. The window-min splits there: L gets (c, -g, -s), R gets
(c, +g, +s) shifted later by u_i, and the pivot sits on the new flat piece (g = s = 0). The floor is a
wall: the walk never goes left of ``lower``, and a zero "at the wall" keeps g > 0 (the split then records
the jump from the flat piece back to g, as for any jump).

Unlike :func:`~margin_design.solvers.chain.chain_qp`, slopes are carried as increments (the suffix-sum
representation has no room for hinges), so they carry rounding of order eps times the largest slope: this
kernel is for Newton steps, whose answer the block polish and the certificate make exact afterwards. Codes
come from the backward clip (ties, to a few ulps, count as active), and ``floor`` tells whether x_0 sits on the floor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from margin_design.solvers._jit import kernel
from margin_design.solvers.chain import POOLED, SATURATED, _as_real_vector, _dd_add

__all__ = ["ChainStep", "chain_pwq"]

#: The backward clip counts c_i within TIE_RTOL (|x_{i+1}| + sum of finite u) of a bound as on it: positions
#: carry a few ulps of rounding of their magnitude and of the bounds summed to shift them, and a zero that sits exactly on a bound in exact arithmetic (for instance
#: where the floor and a saturated link hold the same state) must get the active code, or the certificate
#: would ask for a zero multiplier on a link that is held. An active code with a zero multiplier is valid.
TIE_RTOL = 8.0 * np.finfo(float).eps


@dataclass(frozen=True)
class ChainStep:
    """Solution of the piecewise-quadratic chain programme: ``x``, link ``codes`` and whether x_0 is on the floor."""

    x: np.ndarray
    codes: np.ndarray
    floor: bool


@kernel()
def _pwq_kernel(a, t, u, c, k, m, has_hinge, lower, has_floor, span, tie, u_total):
    n = t.shape[0]
    cap = 2 * n + 2
    # main stacks
    l_pos = np.empty(cap)
    l_dj = np.empty(cap)
    l_ds = np.empty(cap)
    r_pos = np.empty(cap)
    r_oh = np.empty(cap)
    r_ol = np.empty(cap)
    r_dj = np.empty(cap)
    r_ds = np.empty(cap)
    n_l = 0
    n_r = 0
    # hinge deque L2 occupies [lo2, hi2) of its arrays; hinge stack R2
    h_pos = np.empty(cap)
    h_dj = np.empty(cap)
    h_ds = np.empty(cap)
    lo2 = n + 1
    hi2 = n + 1
    q_pos = np.empty(n + 1)
    q_oh = np.empty(n + 1)
    q_ol = np.empty(n + 1)
    q_dj = np.empty(n + 1)
    q_ds = np.empty(n + 1)
    n_q = 0

    x = np.empty(n)
    codes = np.zeros(max(n - 1, 0), dtype=np.int8)
    oh = 0.0
    ol = 0.0
    inf = np.inf
    p = t[0]
    if has_floor and p < lower:
        p = lower
    g = 0.0
    s = 0.0
    for i in range(n):
        ai = a[i]
        g += ai * (p - t[i])
        s += ai
        if has_hinge and (c[i] > 0.0 or k[i] > 0.0):
            if p > m:
                lo2 -= 1
                h_pos[lo2] = m
                h_dj[lo2] = k[i]
                h_ds[lo2] = c[i]
                g += c[i] * (p - m) + k[i]
                s += c[i]
            else:
                q_pos[n_q] = m
                q_oh[n_q] = oh
                q_ol[n_q] = ol
                q_dj[n_q] = k[i]
                q_ds[n_q] = c[i]
                n_q += 1
        if g < 0.0:  # the zero lies to the right
            while True:
                qa = inf
                qb = inf
                if n_r > 0:
                    top = n_r - 1
                    qa = r_pos[top] + ((oh - r_oh[top]) + (ol - r_ol[top]))
                if n_q > 0:
                    top = n_q - 1
                    qb = q_pos[top] + ((oh - q_oh[top]) + (ol - q_ol[top]))
                q = min(qa, qb)
                if g >= 0.0 and q > p:  # every breakpoint at p crossed: the zero is inside the jump at p
                    break
                sl = max(s, ai)
                if q == inf:
                    p = p - g / sl
                    g = 0.0
                    break
                if q > p:
                    v = g + sl * (q - p)
                    if v >= 0.0:
                        p = min(p - g / sl, q)
                        g = 0.0
                        break
                    p = q
                    g = v
                if qa <= qb:
                    top = n_r - 1
                    dj = r_dj[top]
                    ds = r_ds[top]
                    n_r -= 1
                    l_pos[n_l] = q
                    l_dj[n_l] = dj
                    l_ds[n_l] = ds
                    n_l += 1
                else:
                    top = n_q - 1
                    dj = q_dj[top]
                    ds = q_ds[top]
                    n_q -= 1
                    h_pos[hi2] = q
                    h_dj[hi2] = dj
                    h_ds[hi2] = ds
                    hi2 += 1
                g = g + dj
                s = s + ds
        elif g > 0.0:  # the zero lies to the left
            while True:
                qa = -inf
                qb = -inf
                if n_l > 0:
                    qa = l_pos[n_l - 1]
                if hi2 > lo2:
                    qb = h_pos[hi2 - 1]
                q = max(qa, qb)
                wall = has_floor and q < lower
                if wall:
                    q = lower
                if g <= 0.0 and (q < p or wall):  # every breakpoint at p crossed: the zero is inside the jump
                    break
                sl = max(s, ai)
                if q == -inf:
                    p = p - g / sl
                    g = 0.0
                    break
                if q < p:
                    v = g - sl * (p - q)
                    if v <= 0.0:
                        p = max(p - g / sl, q)
                        g = 0.0
                        break
                    p = q
                    g = v
                if wall:  # the floor: the zero is inside its (infinite) jump, g > 0
                    break
                if qa >= qb:
                    n_l -= 1
                    dj = l_dj[n_l]
                    ds = l_ds[n_l]
                    r_pos[n_r] = q  # stored with the current shift: reads back as q
                    r_oh[n_r] = oh
                    r_ol[n_r] = ol
                    r_dj[n_r] = dj
                    r_ds[n_r] = ds
                    n_r += 1
                else:
                    hi2 -= 1
                    dj = h_dj[hi2]
                    ds = h_ds[hi2]
                    q_pos[n_q] = q
                    q_oh[n_q] = oh
                    q_ol[n_q] = ol
                    q_dj[n_q] = dj
                    q_ds[n_q] = ds
                    n_q += 1
                g = g - dj
                s = s - ds
        x[i] = p
        if i < n - 1:
            # window-min: split at the zero, flat piece of length u_i, right part shifted by u_i
            l_pos[n_l] = p
            l_dj[n_l] = -g
            l_ds[n_l] = -s
            n_l += 1
            ui = u[i]
            if ui > span:
                n_r = 0
                n_q = 0
            else:
                r_pos[n_r] = p
                r_oh[n_r] = oh
                r_ol[n_r] = ol
                r_dj[n_r] = g
                r_ds[n_r] = s
                n_r += 1
                oh, ol = _dd_add(oh, ol, ui)
            g = 0.0
            s = 0.0

    for i in range(n - 2, -1, -1):
        upper = x[i + 1]
        ci = x[i]
        tie_i = tie * (abs(upper) + u_total)
        if ci >= upper - tie_i:
            x[i] = upper
            codes[i] = POOLED
        elif u[i] <= span:
            lower_i = upper - u[i]
            if ci <= lower_i + tie_i:
                x[i] = lower_i
                codes[i] = SATURATED
    return x, codes


def chain_pwq(a, t, u, *, hinge: tuple | None = None, lower: float | None = None) -> ChainStep:
    """Solve the piecewise-quadratic chain programme of the module docstring exactly (up to rounding).

    Parameters
    ----------
    a, t : (n,) array_like
        Curvatures (finite, > 0) and targets (finite) of the quadratic parts.
    u : (n-1,) array_like
        Upper bounds on the differences, > 0; ``inf`` means monotonicity only.
    hinge : (m, c, k), optional
        Hinge location m (scalar) with the curvature jumps c (n,) >= 0 and kinks k (n,) >= 0 there.
    lower : float, optional
        Floor on x_0 (and so on every x_i).
    """
    a = _as_real_vector("a", a)
    t = _as_real_vector("t", t)
    u = _as_real_vector("u", u)
    n = t.shape[0]
    if n == 0 or a.shape[0] != n or u.shape[0] != n - 1:
        raise ValueError(f"chain_pwq needs len(a) == len(t) = n >= 1 and len(u) = n - 1, got {a.shape[0]}, {n}, {u.shape[0]}.")
    if not (a.min() > 0 and np.isfinite(a.max())):
        raise ValueError("a must be finite and strictly positive.")
    if not (np.isfinite(t.min()) and np.isfinite(t.max())):
        raise ValueError("t must be finite.")
    if n > 1 and not u.min() > 0:
        raise ValueError("u must be strictly positive (inf allowed).")
    scale = float(np.ldexp(1.0, -int(np.frexp(a.max())[1])))
    lo, hi = float(t.min()), float(t.max())
    if hinge is not None:
        m, c, k = hinge
        m = float(m)
        c = np.ascontiguousarray(np.broadcast_to(np.asarray(c, float), (n,))) * scale
        k = np.ascontiguousarray(np.broadcast_to(np.asarray(k, float), (n,))) * scale
        if not (np.isfinite(m) and np.all(c >= 0) and np.all(k >= 0) and np.isfinite(c.max()) and np.isfinite(k.max())):
            raise ValueError("hinge needs a finite location and finite, non-negative curvature jumps and kinks.")
        if lower is not None and m <= float(lower):
            # on the feasible set x >= lower >= m the hinge is a plain quadratic: fold it into (a, t)
            a_new = a + c / scale
            t = (a * t + (c * m - k) / scale) / a_new
            a, c, k = a_new, np.zeros(n), np.zeros(n)
            scale = float(np.ldexp(1.0, -int(np.frexp(a.max())[1])))
            lo, hi = float(t.min()), float(t.max())
        lo, hi = min(lo, m), max(hi, m)
        has_hinge = bool(c.max() > 0 or k.max() > 0)
    else:
        m, c, k, has_hinge = 0.0, np.zeros(n), np.zeros(n), False
    if lower is not None:
        lower = float(lower)
        if not np.isfinite(lower):
            raise ValueError("lower must be finite.")
        hi = max(hi, lower)
    # the optimum lies in [lo, hi]: clipping to it keeps feasibility and lowers every term, so a bound
    # u_i > 2 (hi - lo) is never active (and the sums of applied bounds stay finite)
    span = 2.0 * (hi - lo)
    if not np.isfinite(span):
        span = float(np.finfo(np.float64).max)
    # a position carries rounding of a few ulps of its own magnitude and of the bounds summed to shift it
    finite_u = u[u <= span]
    u_total = float(finite_u.sum()) if finite_u.size else 0.0
    x, codes = _pwq_kernel.for_size(n)(a * scale, t, u, c, k, m, has_hinge, 0.0 if lower is None else lower, lower is not None, span, TIE_RTOL, u_total)
    if not (np.isfinite(x.min()) and np.isfinite(x.max())):
        raise FloatingPointError("chain_pwq overflowed; rescale a and t to moderate magnitudes.")
    # x_0 may sit a few ulps above the floor when it was placed by a saturated link that ends on it
    floor = lower is not None and bool(x[0] <= lower + TIE_RTOL * (abs(x[0]) + u_total))
    if floor:
        x[0] = lower
    return ChainStep(x=x, codes=codes, floor=floor)
