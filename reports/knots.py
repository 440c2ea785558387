"""Publishing a rule without re-opening what the cap closed: knots, checks, cap-preserving rounding.

A published rule is a table of knots (vol_k, m_k) read as linear in volatility between knots. Knots are
grid points of the solved schedule, so the cap between knots i < j is checkable exactly: it is the exact
integral of the cap, K (vol_j - vol_i) (Section 6.3, (40); (74) in annualised units). A piecewise-linear
rule satisfies the cap everywhere iff every knot-to-knot increment lies in [0, K (vol_{k+1} - vol_k)];
the condition between any pair of knots then follows by summing.

* :func:`select_knots`: segment boundaries always (the schedule is exactly linear in vol on saturated and
  pooled runs, so those knots are exact), then the grid point with the largest interpolation error is
  added until the error is within ``tolerance`` (or until ``count`` knots). Any subset of a feasible
  schedule's grid points gives a feasible interpolant (each chord sums feasible increments); the knots
  only trade rows against accuracy.
* :func:`check_rule`: monotonicity and the cap on every knot interval.
* :func:`round_knots`: knot values on a tick lattice with 0 <= m_{k+1} - m_k <= cap_k and the smallest
  possible largest error max_k |m_k - x_k| (exact minimax by interval propagation, below). Rounding each
  value on its own (:func:`naive_round`) can open a step above the cap; see the tests.

Minimax rounding. In integer ticks n_k (m_k = n_k t), with C_k = floor(cap_k / t) the largest
increment allowed on interval k, an error bound E is achievable iff the integer intervals
I_k = [ceil((x_k - E)/t), floor((x_k + E)/t)] (and n_k >= 0) admit a chain with 0 <= n_{k+1} - n_k <= C_k.
Forward propagation S_0 = I_0, S_{k+1} = (S_k + [0, C_k]) intersected with I_{k+1} stays an interval and
decides feasibility; a backward pass then picks n_{N-1} in S_{N-1} and n_k in S_k intersected with
[n_{k+1} - C_k, n_{k+1}] (never empty by construction), each time nearest to x_k / t. Bisection on E
finds the smallest feasible bound; the answer is feasible by construction, exactly, in integers.
Where cap_k < t, C_k = 0 and the rounded rule must be flat on that interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from margin_design.errors import InputError

DEFAULT_TOLERANCE = 1e-4       # interpolation tolerance, margin ratio (1e-4 = 1 bp of notional)
EXACT_TOL = 1e-12              # interpolation errors below this are float noise (exactly linear runs)
CAP_CHECK_TOL = 1e-12          # increments within this of a bound (margin ratio) count as on it (float rounding)
TICK_SLACK = 1e-12             # relative slack in floor(cap / tick): 2.9999999999999996 ticks count as 3
BISECTION_STEPS = 200


# ---------------------------------------------------------------------- knots


def boundary_knots(n: int, segments) -> np.ndarray:
    """Grid indices of the ends of the grid and of every segment (sorted, unique)."""
    idx = {0, n - 1}
    for s in segments:
        idx.add(int(s["start"]))
        idx.add(int(s["end"]))
    return np.asarray(sorted(idx), dtype=int)


def interpolation_error(vol, x, knots) -> np.ndarray:
    """|linear interpolation in vol through (vol[knots], x[knots]) - x| at every grid point."""
    vol = np.asarray(vol, float)
    x = np.asarray(x, float)
    knots = np.asarray(knots, int)
    return np.abs(np.interp(vol, vol[knots], x[knots]) - x)


def select_knots(vol, x, segments, *, tolerance: float = DEFAULT_TOLERANCE, count: int | None = None) -> np.ndarray:
    """Knot indices: segment boundaries, then the worst-interpolated grid point, until the tolerance holds
    (or, with ``count``, until there are exactly ``count`` knots; once the interpolation is exact, the
    widest knot interval is split at its middle grid point). Deterministic (ties go to the lowest index)."""
    vol = np.asarray(vol, float)
    x = np.asarray(x, float)
    n = vol.size
    knots = list(boundary_knots(n, segments))
    if count is not None:
        if count > n:
            raise InputError(f"--knots {count} exceeds the {n} grid points of the schedule.")
        if count < len(knots):
            raise InputError(
                f"--knots {count} is below the {len(knots)} knots the segment boundaries need; use --knots {len(knots)} or more."
            )
    elif not tolerance > 0:
        raise InputError(f"--tolerance {tolerance!r} must be a positive margin ratio.")
    while True:
        err = interpolation_error(vol, x, knots)
        worst = float(err.max())
        if count is None:
            if worst <= tolerance:
                break
        elif len(knots) >= count:
            break
        if worst <= EXACT_TOL:  # exact up to float noise: a finer --tolerance cannot be met by more knots
            if count is not None:
                knots = _spread(vol, knots, count - len(knots))
            break
        knots = sorted(set(knots) | {int(np.argmax(err))})
    return np.asarray(knots, dtype=int)


def _spread(vol: np.ndarray, knots: list, extra: int) -> list:
    """Add ``extra`` knots where the interpolation is already exact: each knot interval gets a share by the
    D'Hondt rule on its width in vol (so the rows come out evenly spaced), placed at the grid points
    nearest to equal subdivisions of the interval."""
    k = np.asarray(knots)
    width = np.diff(vol[k])
    room = np.diff(k) - 1
    alloc = np.zeros(width.size, dtype=int)
    for _ in range(extra):
        score = np.where(alloc < room, width / (alloc + 1), -1.0)
        j = int(np.argmax(score))
        if score[j] < 0:
            break
        alloc[j] += 1
    new = set(int(i) for i in k)
    for j in np.flatnonzero(alloc):
        a, b = int(k[j]), int(k[j + 1])
        inner = np.arange(a + 1, b)
        for t in np.linspace(vol[a], vol[b], alloc[j] + 2)[1:-1]:
            free = [i for i in inner if i not in new]
            new.add(int(min(free, key=lambda i: (abs(vol[i] - t), i))))
    return sorted(new)


# ---------------------------------------------------------------------- checks


def knot_caps(vol_knots, slope_vol: float) -> np.ndarray:
    """Exact integral of the cap over each knot interval: K (vol_{k+1} - vol_k) (inf if uncapped)."""
    dv = np.diff(np.asarray(vol_knots, float))
    if not math.isfinite(slope_vol):
        return np.full(dv.shape, np.inf)
    return slope_vol * dv


@dataclass(frozen=True)
class RuleCheck:
    """Monotonicity and the cap for a rule read linearly between knots (margin-ratio units).

    ``min_increment`` is min_k (m_{k+1} - m_k) (>= 0 when monotone); ``max_cap_excess`` is
    max_k (m_{k+1} - m_k - cap_k) (<= 0 when within the cap); ``max_slope_to_cap`` is the largest
    slope as a share of the cap. Failing intervals are listed by knot index k (interval k to k+1).
    """

    monotone: bool
    within_cap: bool
    min_increment: float
    max_cap_excess: float
    max_slope_to_cap: float
    decreasing_intervals: tuple
    cap_violations: tuple

    @property
    def ok(self) -> bool:
        return self.monotone and self.within_cap

    def to_dict(self) -> dict:
        return {
            "monotone": self.monotone,
            "within_cap": self.within_cap,
            "min_increment": self.min_increment,
            "max_cap_excess": self.max_cap_excess if math.isfinite(self.max_cap_excess) else None,
            "max_slope_to_cap": self.max_slope_to_cap,
            "decreasing_intervals": list(self.decreasing_intervals),
            "cap_violations": list(self.cap_violations),
        }


def check_rule(vol_knots, m, slope_vol: float, tol: float = CAP_CHECK_TOL) -> RuleCheck:
    """Check 0 <= m_{k+1} - m_k <= K (vol_{k+1} - vol_k) on every knot interval (to ``tol``)."""
    m = np.asarray(m, float)
    d = np.diff(m)
    caps = knot_caps(vol_knots, slope_vol)
    excess = d - caps
    dec = tuple(int(k) for k in np.flatnonzero(d < -tol))
    over = tuple(int(k) for k in np.flatnonzero(excess > tol))
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(np.isfinite(caps) & (caps > 0), d / caps, 0.0)
    return RuleCheck(
        monotone=not dec,
        within_cap=not over,
        min_increment=float(d.min()) if d.size else 0.0,
        max_cap_excess=float(excess.max()) if d.size else -math.inf,
        max_slope_to_cap=float(share.max()) if d.size else 0.0,
        decreasing_intervals=dec,
        cap_violations=over,
    )


# ---------------------------------------------------------------------- rounding


def tick_value(n: int, tick: float) -> float:
    """n * tick computed in decimal, so 41 * 0.0005 prints as 0.0205 (not 0.020500000000000001)."""
    return float(Decimal(int(n)) * Decimal(repr(float(tick))))


def tick_caps(caps, tick: float) -> np.ndarray:
    """C_k = floor(cap_k / tick) (integer ticks; a huge number where uncapped)."""
    caps = np.asarray(caps, float)
    big = np.iinfo(np.int64).max // 4
    out = np.empty(caps.shape, dtype=np.int64)
    for k, c in enumerate(caps):
        if not math.isfinite(c):
            out[k] = big
            continue
        q = math.floor(c / tick)
        if (q + 1) * tick <= c * (1.0 + TICK_SLACK):
            q += 1
        out[k] = max(q, 0)
    return out


@dataclass(frozen=True)
class Rounding:
    """A rounded knot table: ``margin`` = ``ticks`` * ``tick``; ``errors`` = margin - unrounded (margin ratio)."""

    tick: float
    ticks: np.ndarray
    margin: np.ndarray
    errors: np.ndarray
    max_error: float
    flat_intervals: tuple     # knot intervals whose cap is below one tick: the increment must be 0 there

    def to_dict(self) -> dict:
        return {
            "tick": self.tick,
            "max_error": self.max_error,
            "flat_intervals": list(self.flat_intervals),
        }


def _chain(lo_b: np.ndarray, hi_b: np.ndarray, C: np.ndarray, target: np.ndarray):
    """Integer chain with lo_b <= n_k <= hi_b and 0 <= n_{k+1} - n_k <= C_k, nearest target; None if none."""
    N = lo_b.size
    lo = np.empty(N, dtype=np.int64)
    hi = np.empty(N, dtype=np.int64)
    lo[0], hi[0] = lo_b[0], hi_b[0]
    if lo[0] > hi[0]:
        return None
    for k in range(N - 1):
        lo[k + 1] = max(lo[k], lo_b[k + 1])
        hi[k + 1] = min(hi[k] + C[k], hi_b[k + 1])
        if lo[k + 1] > hi[k + 1]:
            return None
    n = np.empty(N, dtype=np.int64)
    n[-1] = min(max(int(round(target[-1])), lo[-1]), hi[-1])
    for k in range(N - 2, -1, -1):
        a = max(lo[k], n[k + 1] - C[k])
        b = min(hi[k], n[k + 1])
        n[k] = min(max(int(round(target[k])), a), b)
    return n


def _bounds(x: np.ndarray, tick: float, E: float):
    lo = np.maximum(np.ceil((x - E) / tick), 0).astype(np.int64)
    hi = np.floor((x + E) / tick).astype(np.int64)
    return lo, hi


def round_knots(x, caps, tick: float) -> Rounding:
    """Round knot values ``x`` (margin ratios) to multiples of ``tick`` keeping 0 <= increment <= cap_k
    on every knot interval, with the smallest achievable largest error (module docstring)."""
    x = np.asarray(x, float)
    if not (math.isfinite(tick) and 0 < tick < 1):
        raise InputError(f"--round {tick!r} must be a tick size in (0, 1) (margin ratio, e.g. 0.0005 for 5 bp).")
    if np.any(x < 0):
        raise InputError("the schedule has a negative margin; it cannot be rounded onto a non-negative tick lattice.")
    C = tick_caps(caps, tick)
    target = x / tick
    # An always-feasible starting bound: the flat rule at the first knot's rounded value raised stepwise.
    hi_E = float(np.max(x)) + tick
    n = None
    lo_E = 0.0
    for _ in range(BISECTION_STEPS):
        mid = 0.5 * (lo_E + hi_E)
        cand = _chain(*_bounds(x, tick, mid), C, target)
        if cand is None:
            lo_E = mid
        else:
            hi_E, n = mid, cand
        if hi_E - lo_E <= 1e-15 * max(tick, 1e-300):
            break
    if n is None:  # pragma: no cover - hi_E starts feasible (all zeros ... is within max(x) + tick)
        n = _chain(*_bounds(x, tick, hi_E), C, target)
    margin = np.asarray([tick_value(v, tick) for v in n])
    errors = margin - x
    flat = tuple(int(k) for k in np.flatnonzero(C == 0))
    return Rounding(tick=float(tick), ticks=n, margin=margin, errors=errors, max_error=float(np.max(np.abs(errors))), flat_intervals=flat)


def naive_round(x, tick: float) -> np.ndarray:
    """Round each value on its own to the nearest tick (for comparison only: can break the cap)."""
    return np.asarray([tick_value(v, tick) for v in np.round(np.asarray(x, float) / tick)])
