"""Exact solver for the bounded-difference weighted isotonic QP on a chain.

Problem (notes ``/work/shared/notes/chain-algorithms.md``, section 0)::

    minimise  sum_i a_i/2 (x_i - t_i)^2   s.t.  0 <= x_{i+1} - x_i <= u_i,   i = 0..n-2

with ``a_i > 0``, finite ``t_i`` and ``u_i`` in ``(0, +inf]`` (``u_i = inf`` means monotonicity only; with
``u = inf`` everywhere the problem is isotonic regression and the algorithm below reduces to
pool-adjacent-violators).

Algorithm (notes, section 6(a)): the two-stack derivative dynamic programme. The cost-to-go
``V_0 = f_0``, ``V_{i+1}(y) = f_{i+1}(y) + min_{y - u_i <= x <= y} V_i(x)`` is convex; its derivative is a
continuous, increasing, piecewise-linear function. It is kept as a pivot ``p`` (the zero of ``V_i'``),
the breakpoints left of the pivot (stack ``L``, top = largest) and right of it (stack ``R``, top =
smallest). Adding ``f_i'`` and walking the pivot to the new zero ``c_i = argmin V_i`` crosses breakpoints
between the stacks; the window-minimum then splits ``V_i'`` at ``c_i``, inserts a flat zero piece of length
``u_i`` and shifts the right part by ``u_i`` (for ``u_i = inf`` the right part is dropped: PAVA). The
backward pass is ``x_{n-1} = c_{n-1}``, ``x_i = clip(c_i, x_{i+1} - u_i, x_{i+1})``, and the link codes
record which bound the clip took. Cost: ``O(n + crossings)``; the crossing count is returned as a work
counter (the notes measured ~1-7 crossings per element on typical data, growing like ``n^(1/3)`` on the
adversarial zig-zag ``t_i = (-1)^i i``).

Numerical changes against the notes' sketch (which is correct in exact arithmetic; see the tests):

* The sketch keeps the right stack relative to one global offset ``offR = sum of u``. Positions are then
  stored as ``pos - offR`` and lose ``eps * offR`` absolute accuracy; a large ``u_0`` followed by small
  ``u_i`` gives visibly wrong answers (``t = [-50, 0, 10, 20, 30]``, ``u = [1e17, 1, 1, 1]`` returns
  ``x_1 = 4.67`` instead of ``13.5``). Here each right-stack entry stores its position together with the
  running sum of applied bounds at storage time, both sums kept in double-double (TwoSum), and the pending
  shift is the difference of the two sums, so positions are accurate relative to their own magnitude.
* The sketch updates the current slope by adding and subtracting slope jumps, which drifts. Every
  segment's slope is a suffix sum ``a_k + ... + a_i`` (the points rigidly attached to ``x_i``), so each
  breakpoint stores, for the segment beyond it, the double-double prefix sum ``a_0 + ... + a_{k-1}``, and
  the slope is recomputed as the difference from the running double-double sum ``a_0 + ... + a_i``.
* Any ``u_i > 2 (max t - min t)`` is replaced by ``inf``: the optimum lies in ``[min t, max t]`` (clipping
  to that interval keeps feasibility and lowers the objective), so such a bound can never be active. This
  also keeps sums of ``u`` from overflowing.
* ``a`` is scaled by a power of two (exact) so that ``max a`` is in ``[0.5, 1)``; ``x`` is unchanged.
* Codes come from the clip, never from thresholding ``d``. A tie (``c_i`` exactly on a bound) counts as
  active, as in the notes and in scipy's PAVA (equal blocks merge): polishing then merges the block
  instead of producing two levels out of order by a rounding error.

Accuracy: the DP is backward stable relative to the data scale; ``x`` has absolute errors of order
``eps * max|t|`` times the spread of the curvatures, because the derivative values at the pivot carry
rounding from steep segments (``max a / min a ~ 1e13`` costs about 7 digits on the lightest points). The
codes are still right unless a free gap is that small, and :func:`polish_quadratic_blocks` recomputes the
block levels from the codes to full accuracy (notes, section 6(a), "polish").

Termination: within one element the pivot walks in a single direction and every crossing moves one
breakpoint from one stack to the other, so a walk is bounded by the stack size; ``max_crossings``
additionally caps the total work, and both backends raise the same ``RuntimeError`` when it is exceeded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from margin_design.solvers._jit import kernel

__all__ = [
    "FREE",
    "POOLED",
    "SATURATED",
    "ChainQPResult",
    "chain_qp",
    "chain_qp_codes_to_blocks",
    "chain_qp_block_offsets",
    "polish_quadratic_blocks",
]

FREE, POOLED, SATURATED = 0, 1, 2
"""Link status codes (int8): FREE = neither bound active, POOLED = ``x_{i+1} == x_i`` (d = 0 active),
SATURATED = ``x_{i+1} - x_i == u_i`` (d = u active)."""

_BACKENDS = ("numba", "python")
_STATUS_OK, _STATUS_BUDGET = 0, 1
_NO_BUDGET = np.iinfo(np.int64).max


@dataclass(frozen=True)
class ChainQPResult:
    """Solution of the chain QP.

    Attributes
    ----------
    x : (n,) float64
        The minimiser.
    codes : (n-1,) int8
        Link status from the backward-pass clip ``x_i = clip(c_i, x_{i+1} - u_i, x_{i+1})``: POOLED if the
        upper end was taken (``c_i >= x_{i+1}``), SATURATED if the lower end was taken
        (``c_i <= x_{i+1} - u_i``), FREE otherwise.
    crossings : int
        Number of breakpoint crossings done by the forward pass (work counter).
    """

    x: np.ndarray
    codes: np.ndarray
    crossings: int


# ---------------------------------------------------------------------------------------------------
# input handling


def _as_real_vector(name: str, value) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind not in "iuf":
        raise ValueError(f"{name} must be a real numeric array, got dtype {arr.dtype}.")
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}.")
    return np.ascontiguousarray(arr, dtype=np.float64)


def _validate(a, t, u) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """Check the inputs; return float64 ``a, t, u``, the weight scale and the inactive-bound span.

    ``scale`` is the power of two with ``max(a) * scale`` in ``[0.5, 1)`` (scaling ``a`` is exact and does
    not change the minimiser; it keeps sums of ``a`` and products ``a (x - t)`` far from overflow).
    ``span = 2 (max t - min t)``: the optimum lies in ``[min t, max t]`` (clipping to that interval keeps
    feasibility and lowers the objective), so a bound ``u_i > span`` can never be active and the kernels
    treat it as ``inf``; this also keeps the sums of applied bounds from overflowing.
    """
    a = _as_real_vector("a", a)
    t = _as_real_vector("t", t)
    u = _as_real_vector("u", u)
    n = t.shape[0]
    if n == 0:
        raise ValueError("t must contain at least one element.")
    if a.shape[0] != n:
        raise ValueError(f"a must have the same length as t ({n}), got {a.shape[0]}.")
    if u.shape[0] != n - 1:
        raise ValueError(f"u must have length len(t) - 1 = {n - 1}, got {u.shape[0]}.")
    a_min, a_max = a.min(), a.max()  # NaN propagates and fails both tests below
    if not (a_min > 0 and np.isfinite(a_max)):
        raise ValueError("a must be finite and strictly positive.")
    t_min, t_max = t.min(), t.max()
    if not (np.isfinite(t_min) and np.isfinite(t_max)):
        raise ValueError("t must be finite.")
    if n > 1 and not u.min() > 0:  # NaN fails too
        raise ValueError("u must be strictly positive (inf allowed).")
    scale = float(np.ldexp(1.0, -int(np.frexp(a_max)[1])))
    if not a_min * scale > 0:
        raise ValueError("a spans too many orders of magnitude (min(a)/max(a) underflows float64).")
    span = 2.0 * (float(t_max) - float(t_min))
    if not np.isfinite(span):
        span = float(np.finfo(np.float64).max)
    return a, t, u, scale, span


# ---------------------------------------------------------------------------------------------------
# numba kernel


@kernel(helper=True, inline="always")
def _dd_add(hi, lo, v):
    """Double-double accumulation ``(hi, lo) + v`` (TwoSum, then renormalise with FastTwoSum)."""
    s = hi + v
    bb = s - hi
    lo = lo + ((hi - (s - bb)) + (v - bb))
    hi = s + lo
    lo = lo - (hi - s)
    return hi, lo


@kernel()
def _chain_qp_kernel(a, t, u, scale, span, max_crossings):
    """Forward two-stack derivative DP and backward clip (see the module docstring).

    Inputs as returned by :func:`_validate`: the kernel uses ``a * scale`` and treats ``u_i > span`` as
    ``inf``. Returns
    ``(x, codes, crossings, status)`` with status 0 (ok) or 1 (``max_crossings`` exceeded; ``x`` and
    ``codes`` are then meaningless).

    Representation of the derivative ``V_i'``: pivot ``p`` at its zero, current segment slope
    ``(ah - kh) + (al - kl)`` where ``(ah, al)`` is the running double-double sum ``a_0 + ... + a_i`` and
    ``(kh, kl)`` the sum ``a_0 + ... + a_{k-1}`` at the start ``k`` of the current segment's suffix.
    L entries: absolute position and the ``(kh, kl)`` of the segment to their left. R entries: position
    when stored, the running double-double sum ``(oh, ol)`` of applied bounds when stored (the pending
    shift is the difference to the current sum) and the ``(kh, kl)`` of the segment to their right.
    """
    n = t.shape[0]
    cap = max(2 * n, 2)  # every element pushes at most one entry on each stack
    l_pos = np.empty(cap)
    l_kh = np.empty(cap)
    l_kl = np.empty(cap)
    r_pos = np.empty(cap)
    r_oh = np.empty(cap)
    r_ol = np.empty(cap)
    r_kh = np.empty(cap)
    r_kl = np.empty(cap)
    n_l = 0
    n_r = 0

    x = np.empty(n)  # holds c_i = argmin V_i during the forward pass, x after the backward pass
    codes = np.zeros(max(n - 1, 0), dtype=np.int8)
    crossings = 0
    ah = 0.0
    al = 0.0
    oh = 0.0
    ol = 0.0
    kh = 0.0
    kl = 0.0
    p = t[0]  # any start works: for i = 0 the derivative is a_0 (y - t_0)
    for i in range(n):
        ai = a[i] * scale
        ah, al = _dd_add(ah, al, ai)
        # The pivot c_{i-1} lies on the flat piece inserted by the last split (suffix start k = i), so the
        # derivative there is f_i' alone and the slope is a_i.
        gp = ai * (p - t[i])
        s = ai
        if gp < 0.0:  # the zero lies to the right: walk through R
            stop = np.inf
            while n_r > 0:
                top = n_r - 1
                q = r_pos[top] + ((oh - r_oh[top]) + (ol - r_ol[top]))
                v = gp + s * (q - p)
                if v >= 0.0:
                    stop = q
                    break
                crossings += 1
                if crossings > max_crossings:
                    return x, codes, crossings, 1
                l_pos[n_l] = q
                l_kh[n_l] = kh
                l_kl[n_l] = kl
                n_l += 1
                kh = r_kh[top]
                kl = r_kl[top]
                n_r -= 1
                p = q
                gp = v
                s = max((ah - kh) + (al - kl), ai)
            p = min(p - gp / s, stop)
        elif gp > 0.0:  # the zero lies to the left: walk through L
            stop = -np.inf
            while n_l > 0:
                top = n_l - 1
                q = l_pos[top]
                v = gp - s * (p - q)
                if v <= 0.0:
                    stop = q
                    break
                crossings += 1
                if crossings > max_crossings:
                    return x, codes, crossings, 1
                r_pos[n_r] = q
                r_oh[n_r] = oh
                r_ol[n_r] = ol
                r_kh[n_r] = kh
                r_kl[n_r] = kl
                n_r += 1
                kh = l_kh[top]
                kl = l_kl[top]
                n_l -= 1
                p = q
                gp = v
                s = max((ah - kh) + (al - kl), ai)
            p = max(p - gp / s, stop)
        x[i] = p
        if i < n - 1:
            # window-min: split at the zero, insert a flat piece of length u_i, shift the right part
            l_pos[n_l] = p
            l_kh[n_l] = kh
            l_kl[n_l] = kl
            n_l += 1
            ui = u[i]
            if ui > span:
                n_r = 0  # right part dropped: PAVA step
            else:
                r_pos[n_r] = p  # stored before u_i is applied, so it reads back as p + u_i
                r_oh[n_r] = oh
                r_ol[n_r] = ol
                r_kh[n_r] = kh
                r_kl[n_r] = kl
                n_r += 1
                oh, ol = _dd_add(oh, ol, ui)
            kh = ah  # the new flat piece has an empty suffix: slope a_{i+1} once f_{i+1} is added
            kl = al

    for i in range(n - 2, -1, -1):
        upper = x[i + 1]
        ci = x[i]
        if ci >= upper:
            x[i] = upper
            codes[i] = POOLED
        elif u[i] <= span:
            lower = upper - u[i]
            if ci <= lower:
                x[i] = lower
                codes[i] = SATURATED
    return x, codes, crossings, 0


# ---------------------------------------------------------------------------------------------------
# pure-Python backend (independent implementation of the same algorithm, used as a cross-check)


def _dd_add_py(acc: tuple[float, float], v: float) -> tuple[float, float]:
    hi, lo = acc
    s = hi + v
    bb = s - hi
    lo += (hi - (s - bb)) + (v - bb)
    hi = s + lo
    return hi, lo - (hi - s)


def _chain_qp_python(a: np.ndarray, t: np.ndarray, u: np.ndarray, scale: float, span: float, max_crossings: int):
    """Pure-Python version of :func:`_chain_qp_kernel` on list stacks of tuples; same contract."""
    inf = float("inf")
    a_l = [ai * scale for ai in a.tolist()]
    t_l = t.tolist()
    u_l = [ui if ui <= span else inf for ui in u.tolist()]
    n = len(t_l)

    def slope(total: tuple[float, float], start: tuple[float, float], ai: float) -> float:
        return max((total[0] - start[0]) + (total[1] - start[1]), ai)

    left: list[tuple[float, tuple[float, float]]] = []  # (position, suffix-start sum of the segment left of it)
    right: list[tuple[float, tuple[float, float], tuple[float, float]]] = []  # (position, applied-u sum, suffix start)
    c = [0.0] * n
    crossings = 0
    total_a = (0.0, 0.0)
    applied_u = (0.0, 0.0)
    start = (0.0, 0.0)
    p = t_l[0]
    for i in range(n):
        ai = a_l[i]
        total_a = _dd_add_py(total_a, ai)
        gp = ai * (p - t_l[i])
        s = ai  # the pivot sits on the flat piece of the last split
        if gp < 0.0:
            stop = inf
            while right:
                pos, stored_u, far_start = right[-1]
                q = pos + ((applied_u[0] - stored_u[0]) + (applied_u[1] - stored_u[1]))
                v = gp + s * (q - p)
                if v >= 0.0:
                    stop = q
                    break
                crossings += 1
                if crossings > max_crossings:
                    return None, None, crossings, _STATUS_BUDGET
                right.pop()
                left.append((q, start))
                start, p, gp = far_start, q, v
                s = slope(total_a, start, ai)
            p = min(p - gp / s, stop)
        elif gp > 0.0:
            stop = -inf
            while left:
                q, far_start = left[-1]
                v = gp - s * (p - q)
                if v <= 0.0:
                    stop = q
                    break
                crossings += 1
                if crossings > max_crossings:
                    return None, None, crossings, _STATUS_BUDGET
                left.pop()
                right.append((q, applied_u, start))
                start, p, gp = far_start, q, v
                s = slope(total_a, start, ai)
            p = max(p - gp / s, stop)
        c[i] = p
        if i < n - 1:
            left.append((p, start))
            if u_l[i] == inf:
                right.clear()
            else:
                right.append((p, applied_u, start))
                applied_u = _dd_add_py(applied_u, u_l[i])
            start = total_a

    x = [0.0] * n
    codes = [FREE] * (n - 1)
    x[n - 1] = c[n - 1]
    for i in range(n - 2, -1, -1):
        upper = x[i + 1]
        lower = upper - u_l[i]
        if c[i] >= upper:
            x[i], codes[i] = upper, POOLED
        elif c[i] <= lower:
            x[i], codes[i] = lower, SATURATED
        else:
            x[i] = c[i]
    return np.array(x, dtype=np.float64), np.array(codes, dtype=np.int8), crossings, _STATUS_OK


# ---------------------------------------------------------------------------------------------------
# public API


def chain_qp(a, t, u, *, backend: str = "numba", max_crossings: int | None = None) -> ChainQPResult:
    """Solve ``min sum_i a_i/2 (x_i - t_i)^2`` s.t. ``0 <= x_{i+1} - x_i <= u_i`` exactly.

    Two-stack derivative DP of ``/work/shared/notes/chain-algorithms.md`` section 6(a), with the numerical
    changes listed in the module docstring. Cost ``O(n + crossings)``. ``x`` is the DP's backward-clip
    solution (feasible up to one rounding per link); for full accuracy with widely spread ``a`` use
    ``polish_quadratic_blocks(a, t, u, result.codes)``.

    Parameters
    ----------
    a : (n,) array_like
        Curvatures, finite and > 0.
    t : (n,) array_like
        Targets, finite.
    u : (n-1,) array_like
        Upper bounds on the differences, > 0; ``inf`` means monotonicity only.
    backend : {"numba", "python"}
        ``"numba"``: compiled kernel (cached). ``"python"``: independent pure-Python implementation of the
        same algorithm (slow; a cross-check and a fallback).
    max_crossings : int, optional
        Budget on the total number of breakpoint crossings; ``None`` means no budget (the walk is bounded
        by the stack sizes anyway, so the solver always terminates).

    Returns
    -------
    ChainQPResult
        ``x``, link ``codes`` (FREE / POOLED / SATURATED, decided by the backward clip) and ``crossings``.

    Raises
    ------
    ValueError
        Invalid inputs or backend.
    RuntimeError
        The crossing budget was exceeded.
    FloatingPointError
        The arithmetic overflowed (inputs of extreme magnitude).
    """
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}.")
    if max_crossings is None:
        budget = int(_NO_BUDGET)
    elif isinstance(max_crossings, (int, np.integer)) and not isinstance(max_crossings, bool) and max_crossings >= 0:
        budget = int(max_crossings)
    else:
        raise ValueError(f"max_crossings must be a non-negative integer or None, got {max_crossings!r}.")
    a, t, u, scale, span = _validate(a, t, u)
    if backend == "numba":
        x, codes, crossings, status = _chain_qp_kernel.compiled(a, t, u, scale, span, np.int64(budget))
    else:
        x, codes, crossings, status = _chain_qp_python(a, t, u, scale, span, budget)
    if status == _STATUS_BUDGET:
        raise RuntimeError(f"chain_qp exceeded max_crossings = {budget} breakpoint crossings.")
    if not (np.isfinite(x.min()) and np.isfinite(x.max())):
        raise FloatingPointError("chain_qp overflowed; rescale a and t to moderate magnitudes.")
    return ChainQPResult(x=x, codes=codes, crossings=int(crossings))


def _validate_codes(codes, n_links: int) -> np.ndarray:
    arr = np.asarray(codes)
    if arr.ndim != 1 or arr.shape[0] != n_links:
        raise ValueError(f"codes must be one-dimensional of length {n_links}, got shape {arr.shape}.")
    if arr.dtype.kind not in "iu" or not np.all((arr == FREE) | (arr == POOLED) | (arr == SATURATED)):
        raise ValueError("codes must be integers in {FREE, POOLED, SATURATED}.")
    return np.ascontiguousarray(arr, dtype=np.int8)


def chain_qp_codes_to_blocks(codes) -> np.ndarray:
    """Start indices (int64) of the blocks defined by link codes.

    A block is a maximal run of points joined by non-FREE links; a single point is a block. The result is
    like the ``blocks`` of ``scipy.optimize.isotonic_regression`` without the trailing ``n``
    (notes section 1, "Block view").
    """
    arr = np.asarray(codes)
    if arr.ndim != 1:
        raise ValueError(f"codes must be one-dimensional, got shape {arr.shape}.")
    codes = _validate_codes(arr, arr.shape[0])
    return np.concatenate(([0], np.flatnonzero(codes == FREE) + 1)).astype(np.int64)


@kernel()
def _block_offsets_kernel(u, codes):
    n = codes.shape[0] + 1
    s = np.zeros(n)
    for j in range(1, n):
        cj = codes[j - 1]
        if cj == FREE:
            s[j] = 0.0
        elif cj == SATURATED:
            s[j] = s[j - 1] + u[j - 1]
        else:
            s[j] = s[j - 1]
    return s


@kernel()
def _block_levels_kernel(a, t, s, codes, scale):
    """Block levels ``L_B = sum a_j (t_j - s_j) / sum a_j``, accumulated relative to the block's first term."""
    n = t.shape[0]
    x = np.empty(n)
    start = 0
    while start < n:
        stop = start + 1
        while stop < n and codes[stop - 1] != FREE:
            stop += 1
        ref = t[start] - s[start]
        num = 0.0
        den = 0.0
        for j in range(start, stop):
            aj = a[j] * scale
            num += aj * ((t[j] - s[j]) - ref)
            den += aj
        level = ref + num / den
        for j in range(start, stop):
            x[j] = level + s[j]
        start = stop
    return x


def chain_qp_block_offsets(u, codes) -> np.ndarray:
    """Offsets ``s_j`` inside blocks: sum of ``u`` over the SATURATED links of j's block before j.

    ``s_j = 0`` at every block start. With these, every point of a block is ``x_j = L_B + s_j``
    (notes section 1, "Block view").
    """
    u = _as_real_vector("u", u)
    codes = _validate_codes(codes, u.shape[0])
    if not np.all(np.isfinite(u[codes == SATURATED])):
        raise ValueError("a SATURATED link must have a finite bound u.")
    return _block_offsets_kernel.for_size(u.shape[0] + 1)(u, codes)


def polish_quadratic_blocks(a, t, u, codes) -> np.ndarray:
    """Exact block levels for the quadratic chain QP given link codes.

    For each block ``B`` (maximal run joined by non-FREE links) ``x_j = L_B + s_j`` with
    ``L_B = sum_B a_j (t_j - s_j) / sum_B a_j`` and offsets ``s_j`` from :func:`chain_qp_block_offsets`
    (notes section 6(a), "polish"). Given the codes of the optimum this reproduces the optimum without the
    rounding accumulated along long saturated runs by the backward pass.
    """
    a, t, u, scale, _ = _validate(a, t, u)
    s = chain_qp_block_offsets(u, codes)
    return _block_levels_kernel.for_size(t.shape[0])(a, t, s, _validate_codes(codes, u.shape[0]), scale)
