"""A cap that withstands T consecutive margin updates: ``[cap] updates = T`` (Nicolai 2026, Appendix A.4).

The paper's cap (16)-(18) rules out the two-period trigger-and-reverse round trip. Appendix A.4: enforcing a
finite-horizon requirement over repeated resets "can only tighten the admissible local pass-through bound, and thus
weakly expands the pooling regions". Here the bound is found numerically: the largest uniform scale s in (0, 1] of
the cap K (``CapSpec.scale``) such that the T-update stress test (:mod:`.stress`) finds no open-loop strategy over
1..T updates with expected profit above the tolerance against the capped optimum g*_s, in any envelope state of the
design's grid, for any trade vector with legs |a_u| <= the capacity q (ADV units).

* Each candidate s is a certified solve (``solvers.solve`` of the problem with the cap scaled by s; an uncertified
  solve stops with an error) and each g*_s is stress-tested in every grid state at once (batched).
* States: the envelope state of every grid point (the window's whole input in the last return, the worst case
  behind the cap (17); no fundamental noise after t, so expectations are exact and open- and closed-loop
  strategies coincide). States whose margin is 0 have nothing to trigger and are skipped.
* Tolerance: exact expectations, so an absolute tolerance, :data:`~.stress.STRESS_TOL` (price units x ADV), the
  simulation's rounding tolerance.
* Bisection: s = 1 first (if it passes, the paper's cap stands); else halving until a scale passes, then
  bisection until the bracket is narrower than SCALE_RESOLUTION; the answer is the passing end. The test at
  T maximises over horizons 1..T, so the best profit it finds is non-decreasing in T and s is non-increasing in T.
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np

from margin_design.design.cap import SUM_WINDOW
from margin_design.errors import InputError, SolverError

from .local import AuditMarket
from .simulate import SimState
from .stress import CAPACITY, STRESS_TOL, best_trips, jax_rule

__all__ = ["SCALE_RESOLUTION", "MIN_SCALE", "cap_scale", "solve_design", "solve_with_updates", "stress_grid", "stress_window"]

#: Width of the final bisection bracket of the scale s (dimensionless).
SCALE_RESOLUTION = 1e-3
#: Smallest scale tried when halving from 1: below it the cap is (numerically) no cap at all.
MIN_SCALE = 1.0 / 1024


def stress_window(cap) -> int:
    """The window m of the stress test's input: the config's window (realized_variance, HS VaR / ES), or SUM_WINDOW for
    the sum (4); the largest T is ``cap.max_updates`` (m, or m - n for HS)."""
    if cap.input in ("realized_variance", "hs_var", "hs_es"):
        return int(cap.window)
    if cap.input == "variance":
        return SUM_WINDOW
    raise InputError(f"the T-update stress test needs a risk input with a window of sampled returns (variance, realized_variance, "
                     f"hs_var or hs_es), not {cap.input!r}.")


def stress_grid(schedule, T: int, capacity: float = CAPACITY, *, starts: int | None = None, steps: int | None = None):
    """Stress-test the capped optimum of ``schedule`` in the envelope state of every grid point: the best open-loop
    trip over 1..T updates with legs up to ``capacity`` (ADV units). Returns (best StressPoint or None, number of
    states tested)."""
    from .build import capped_rule

    p = schedule.problem
    cap = p.cap
    m = stress_window(cap)
    market = AuditMarket(alpha=cap.alpha, c_eff=cap.c_eff, inventory_penalty=cap.inventory_penalty)
    rule = capped_rule(schedule)
    states = [SimState.envelope(float(v) ** 2, m, cap.input, cap.level) for v in p.vol]
    jr = jax_rule(rule, float(p.vol[0]), float(p.vol[-1]))
    kw = {k: v for k, v in (("starts", starts), ("steps", steps)) if v is not None}
    best, n = None, 0
    for h in range(1, int(T) + 1):
        pts = best_trips(rule, states, market, h, capacity, jrule=jr, **kw)
        n = max(n, len(pts))
        for pt in pts:
            if best is None or pt.mean > best.mean:
                best = pt
    return best, n


def _certified_solve(problem, scale: float, method: str):
    from margin_design.solvers import solve

    scaled = dataclasses.replace(problem, cap=dataclasses.replace(problem.cap, scale=float(scale)))
    sched = solve(scaled, method=method)
    if not sched.certificate.ok:
        raise SolverError(f"the solve with the cap scaled by s = {scale:.6g} is not certified (relative gap "
                          f"{sched.certificate.relative_gap:.2e}); the T-update bisection needs certified steps.")
    return sched


def solve_with_updates(problem, method: str = "exact", *, capacity: float = CAPACITY, resolution: float = SCALE_RESOLUTION,
                       progress=None, starts: int | None = None, steps: int | None = None):
    """The capped optimum whose cap withstands ``problem.cap.updates`` = T updates (module docstring): a certified
    :class:`~margin_design.solvers.Schedule` at the largest passing scale s, with ``stress`` recording what was tested.
    T = 1 is the paper's two-period cap, solved as it is (``solvers.solve``, no stress test).

    ``capacity`` q (ADV units) bounds every leg; ``progress(done, total, what)`` is called after each tested scale."""
    from margin_design.solvers import solve

    if int(problem.cap.updates) == 1:
        return solve(problem, method=method)
    return cap_scale(problem, int(problem.cap.updates), method, capacity=capacity, resolution=resolution, progress=progress,
                     starts=starts, steps=steps)


def cap_scale(problem, T: int, method: str = "exact", *, capacity: float = CAPACITY, resolution: float = SCALE_RESOLUTION,
              progress=None, starts: int | None = None, steps: int | None = None):
    """The bisection of the module docstring for any T >= 1 (T = 1 stress-tests the two-period trips themselves, which
    the paper's cap rules out only to second order): the certified schedule at the largest passing scale, with ``stress``."""
    T = int(T)
    stress_window(problem.cap)
    if not 1 <= T <= problem.cap.max_updates:
        raise InputError(f"T = {T!r} updates must be from 1 to {problem.cap.max_updates}, what the input's window of "
                         f"{stress_window(problem.cap)} returns allows (locality).")
    problem = dataclasses.replace(problem, cap=dataclasses.replace(problem.cap, updates=T))
    if not 0 < resolution < 1:
        raise InputError(f"resolution = {resolution!r} must be in (0, 1) (width of the scale's bisection bracket).")
    started = time.perf_counter()
    trail = []

    def test(s):
        sched = _certified_solve(problem, s, method)
        best, n = stress_grid(sched, T, capacity, starts=starts, steps=steps)
        profit = -math.inf if best is None else best.mean
        ok = not profit > STRESS_TOL
        trail.append({"scale": float(s), "best_profit": None if best is None else float(profit), "passes": bool(ok)})
        if progress is not None:
            progress(len(trail), None, "T-update bisection")
        return sched, best, n, ok

    first = test(1.0)
    at_one = first[1]
    if first[3]:
        lo, hi = first, None
        s_lo = 1.0
    else:
        s_hi, s_lo, lo = 1.0, 0.5, None
        while s_lo >= MIN_SCALE:
            r = test(s_lo)
            if r[3]:
                lo = r
                break
            s_hi, s_lo = s_lo, s_lo / 2
        if lo is None:
            raise SolverError(f"no scale of the cap down to {MIN_SCALE:g} withstands T = {T} updates in the stress test; "
                              "check the market (alpha, c_eff) and the capacity.")
        while s_hi - s_lo > resolution:
            mid = 0.5 * (s_lo + s_hi)
            r = test(mid)
            if r[3]:
                s_lo, lo = mid, r
            else:
                s_hi = mid
    sched, best, n, _ = lo
    info = {
        "updates": T,
        "scale": float(s_lo),
        "tolerance": float(STRESS_TOL),
        "tolerance_text": f"exact expected profit above {STRESS_TOL:g} price units x ADV (no noise after t: exact expectations)",
        "capacity_adv": float(capacity),
        "states": f"the envelope state of each of the {n} grid states with a positive margin ("
                  + ("the whole tail in the last loss, the worst case behind the HS cap factor"
                     if problem.cap.input in ("hs_var", "hs_es") else "the window's input in the last return, the worst case behind (17)")
                  + f"); window m = {stress_window(problem.cap)} returns",
        "strategies": f"open-loop round trips over 1..{T} updates (9), sum a = 0, |a_u| <= {capacity:g} ADV; multi-start projected "
                      "gradient ascent by JAX, candidates re-evaluated in the simulation (a search, not a proof)",
        "resolution": float(resolution),
        "best_profit_scale_1": None if at_one is None else float(at_one.mean),
        "best_trades_scale_1": None if at_one is None else list(at_one.trades),
        "best_state_scale_1_vol_daily": None if at_one is None else float(at_one.vol),
        "best_profit": None if best is None else float(best.mean),
        "best_trades": None if best is None else list(best.trades),
        "trail": trail,
        "seconds": time.perf_counter() - started,
    }
    return dataclasses.replace(sched, stress=info)


def solve_design(problem, method: str = "exact", **kw):
    """The solve of ``margin-design solve``: ``solvers.solve`` for the paper's cap (updates = 1), the T-update
    bisection :func:`solve_with_updates` otherwise."""
    return solve_with_updates(problem, method, **kw)
