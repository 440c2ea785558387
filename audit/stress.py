"""The T-update stress test: the most profitable trigger-and-reverse strategy over T consecutive margin updates
against a given rule, found by optimisation (Nicolai 2026, Sections 2-3, (9)-(11), Lemma 5, Appendix A.4).

The market is the audit's Section 2 simulation (:mod:`.simulate`): linear impact (2), the configured risk input
Gamma built from the sampled price window (the JAX function of :mod:`margin_design.calibration.risk_inputs` that
the simulation uses, so every input kind it knows works here too), margin reset by the rule M_{u+1} = g(Gamma_u)
(3), forced liquidation by the :class:`~.simulate.Population` of constrained accounts ((6)-(7), c_X = c_eff at the
benchmark margin (63)), inventory penalty kappa (11), execution cost tau and funding spread rho (A.5). The
recursion is written once (:func:`~.simulate.market_recursion`) and run here with ``jax.numpy``.

The strategy is open-loop, as in the paper's (9): a predictable round trip a_t, ..., a_{t+T} with sum a_u = 0
(locality: T <= m, the window of the input, so the benchmark stays stationary, Assumption 15) and the capacity
|a_u| <= q (ADV units). Its expected profit E[Pi](a) = E[-sum a_u P_u - tau sum |a_u| - sum_{u<T} (rho M_u |y_u| +
kappa y_u^2)] (10)-(11) is computed exactly where the fundamentals are enumerated (``envelope`` states: no noise
after t; ``spread`` states: all 2^T Rademacher paths, :class:`~.simulate.Fundamentals`) and by common random numbers
with a Monte Carlo band otherwise. It is maximised over the polytope {sum a = 0, |a_u| <= q} by projected gradient
ascent (Adam steps on jax.grad of E[Pi] taken within the hyperplane sum a = 0, exact Euclidean projection onto the polytope by bisection on its
multiplier), batched over states and multi-started: from the best sequences of the audit's lattice search
(:func:`~.simulate.search_round_trips`' lattice {-1, -1/2, 0, 1/2, 1} x q) and from seeded random points. Every
candidate the ascent ends at and the best lattice sequence are then re-evaluated with :func:`~.simulate.simulate_trades`
on the rule itself, so the reported profit is that of a concrete strategy in the audit's simulation (a lower bound
on the supremum: the search is local, not a proof). Closed-loop strategies (trades reacting to the observed
path, by dynamic programming over a discretised state) are NOT done; with envelope states (no noise) open- and
closed-loop coincide.

The rule enters through a JAX form of M = g(r) (:func:`jax_rule`): a linear table by ``jnp.interp`` in sigma
(exact), a formula by sympy's JAX printer (exact), anything else (overlays, step tables) by its values on a dense
sigma grid plus its breakpoints (then the gradient sees no jumps; the profit reported is still the rule's own).

The T-update test takes the maximum over horizons 1..T (a trader with T updates may use fewer), so its best
profit is non-decreasing in T by construction. Verdicts are worded by the measured scaling of the best profit in
the capacity q (:func:`verdict`): about q^2 (a rule beyond the cap, Theorem 1), about q^3 (a rule exactly at
the cap: the knife-edge of (16), where the convexity of re-leveraging E/M pays at third order), or a profit only
above some trade size (a rule strictly inside the cap: the second-order loss dominates for small trades).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from margin_design.calibration._jax import jax, jnp
from margin_design.calibration.risk_inputs import HS_KINDS, _rule_input
from margin_design.errors import InputError

from .local import AuditMarket
from .rules import Rule, TableRule, FormulaRule, DENSE_POINTS
from .simulate import PROFIT_TOL, BAND_Z, Fundamentals, Population, SimState, market_recursion, simulate_trades, state_prices

__all__ = [
    "CAPACITY",
    "CAPACITIES",
    "STRESS_TOL",
    "RANDOM_STARTS",
    "LATTICE_STARTS",
    "ASCENT_STEPS",
    "POPULATION_SIZE",
    "jax_rule",
    "StressCase",
    "StressPoint",
    "StressReport",
    "stress_cases",
    "best_trips",
    "stress_test",
    "scaling_exponent",
    "verdict",
]

#: Default capacity q (ADV units): the largest leg |a_u| of a strategy; the audit's largest trigger and the 2% ADV
#: legs of the buy-first 4-leg profit the audit found at the cap.
CAPACITY = 0.02
#: Capacities of the scaling fit (ADV units): best profit against q, log-log slope at the small end.
CAPACITIES = (0.00125, 0.0025, 0.005, 0.01, 0.02)
#: The scaling exponent is the log-log slope over the smallest this many capacities with a profit (the order of the
#: profit as q -> 0; higher-order terms bend the curve at the large end).
FIT_POINTS = 3
#: Exact expected profits at or below this (price units x ADV) count as no profit: the simulation's rounding
#: tolerance :data:`~.simulate.PROFIT_TOL`. With Monte Carlo fundamentals the tolerance is BAND_Z standard errors.
STRESS_TOL = PROFIT_TOL
#: Seeded random starts of the ascent per state and horizon.
RANDOM_STARTS = 4
#: Best lattice sequences used as starts per state and horizon.
LATTICE_STARTS = 4
#: Projected Adam steps; the step shrinks geometrically from LR_START q to LR_END q.
ASCENT_STEPS = 160
LR_START = 0.05
LR_END = 1e-4
#: Accounts of the simulated constrained sector (the audit's POPULATION_SIZE).
POPULATION_SIZE = 400
#: Lattice sequences evaluated at once (memory: states x chunk x accounts per period).
LATTICE_CHUNK = 64
#: Lattice of the starts, in units of q/2 (the audit's search lattice -2..2).
LATTICE = (-2, -1, 0, 1, 2)
#: Log-log slope above which a best profit is read as third order (between 2 and 3).
THIRD_ORDER_SLOPE = 2.5


# ----------------------------------------------------------------------------------------------
# The rule, the input and the population in JAX
# ----------------------------------------------------------------------------------------------


def _interp_vol(r, params):
    """g(r) of a linear table in sigma, flat below the first knot, above the last flat (slope 0) or at the last slope."""
    vol, margin, above = params
    s = jnp.sqrt(jnp.maximum(r, 1e-300))
    return jnp.where(s > vol[-1], margin[-1] + above * (s - vol[-1]), jnp.interp(s, vol, margin))


@dataclass(frozen=True, eq=False)
class JaxRule:
    """A rule M = g(r) as ``fn(r, params)`` in jax.numpy (r daily variance, M margin ratio); ``exact`` when it equals
    the rule (a linear table or a formula), else the interpolation of its values on ``how``'s grid."""

    fn: object
    params: tuple
    exact: bool
    how: str

    def __call__(self, r):
        return self.fn(r, self.params)


def jax_rule(rule: Rule, vol_lo: float, vol_hi: float) -> JaxRule:
    """The JAX form of ``rule`` for gradients: see the module docstring. ``vol_lo``..``vol_hi`` (daily vol) is the
    range a tabulated form covers (widened by half on either side; flat beyond it)."""
    base = rule.base
    if not rule.overlays.active and isinstance(base, TableRule) and base.interpolation == "linear":
        above = 0.0
        if base.extrapolation == "published":
            from margin_design.published_reading import extrapolation_slopes

            above = extrapolation_slopes(base.vol, base.margin)[1]
        return JaxRule(_interp_vol, (jnp.asarray(base.vol), jnp.asarray(base.margin), jnp.asarray(float(above))), True, "linear table in sigma")
    if not rule.overlays.active and isinstance(base, FormulaRule):
        import sympy as sp

        from margin_design.formula import symbol_r

        f = sp.lambdify(symbol_r(), base.expr, modules=[{"Heaviside": lambda x, h=0.5: jnp.heaviside(x, h)}, "jax"])

        def formula(r, params, f=f):
            return f(jnp.maximum(r, 1e-300)) + 0.0 * r
        return JaxRule(formula, (), True, "formula (sympy's JAX printer)")
    lo, hi = 0.5 * vol_lo, 1.5 * vol_hi
    bps = [b.vol for b in rule.breakpoints(lo, hi)]
    eps = 1e-9 * hi
    s = np.unique(np.concatenate([np.linspace(lo, hi, DENSE_POINTS), [v - eps for v in bps], bps]))
    s = s[(s > 0)]
    m = np.asarray(rule.margin(s * s), dtype=float)
    return JaxRule(_interp_vol, (jnp.asarray(s), jnp.asarray(m), jnp.asarray(0.0)), False,
                   f"its values on {s.size} daily vols {lo:.4%} .. {hi:.4%} (with its breakpoints), linear in sigma")


def _input_fn(kind: str, lam: float, level: float):
    """Gamma of a price window (last axis) in jax.numpy: the call :func:`input_values` compiles (kind, lambda, seed 0,
    level)."""
    return lambda prices: _rule_input(prices, kind, lam, 0.0, level)


def _jax_input(spec):
    return _input_fn(spec.kind, float(spec.lam), float(spec.level))


# ----------------------------------------------------------------------------------------------
# States as arrays (batched over the grid)
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class StressCase:
    """The states of one batch as stacked arrays (leading axis: state), for one horizon T: the benchmark prices,
    V_t, M_t = g(Gamma^(0)) and X(M_t), the population (equity, target; ADV units), the fundamentals (shocks
    (states, paths, T), weights), and the :class:`SimState`/:class:`Population`/:class:`Fundamentals` objects."""

    states: tuple
    populations: tuple
    fundamentals: tuple
    arrays: dict = field(repr=False)
    margins: np.ndarray = field(repr=False)

    @property
    def exact(self) -> bool:
        return all(f.exact for f in self.fundamentals)


def _fundamentals(state: SimState, T: int, paths: int | None, seed: int) -> Fundamentals:
    if state.step > 0 or paths is None:
        return Fundamentals.rademacher(state.step, T)
    return Fundamentals.normal(math.sqrt(state.r), T, paths, seed)


def stress_cases(rule: Rule, jrule: JaxRule, states, market: AuditMarket, T: int, *, paths: int | None = None, seed: int = 0) -> StressCase | None:
    """Stack ``states`` (a list of :class:`SimState` sharing input and window) for horizon T. States whose margin
    M_t = g(Gamma^(0)) is 0 have no constrained sector to move and are left out (None if none is left).
    ``paths`` None: exact fundamentals (Rademacher, or none for the envelope); else normal Monte Carlo paths."""
    keep, pops, funds, arr = [], [], [], {k: [] for k in ("prices0", "v0", "m0", "x0", "equity", "target", "shocks", "weights")}
    for i, st in enumerate(states):
        m0 = float(rule.margin(np.asarray(st.r)))
        if not m0 > 0:
            continue
        pop = Population.calibrated(POPULATION_SIZE, m0, market.c_eff)
        fund = _fundamentals(st, T, paths, seed)
        p0 = state_prices(st)
        mj = float(jrule(jnp.asarray(st.r)))
        keep.append(st)
        pops.append(pop)
        funds.append(fund)
        arr["prices0"].append(p0)
        arr["v0"].append(p0[-1] + st.last_return)
        arr["m0"].append(mj)
        arr["x0"].append(float(np.mean(np.minimum(pop.target, pop.equity / mj))))
        arr["equity"].append(pop.equity)
        arr["target"].append(pop.target)
        arr["shocks"].append(fund.shocks[:, :T])
        arr["weights"].append(fund.weights)
    if not keep:
        return None
    shapes = {a.shape for a in arr["shocks"]}
    if len(shapes) != 1:
        raise InputError("the states of one stress batch need the same number of fundamental paths.")
    arrays = {k: jnp.asarray(np.stack([np.asarray(v, dtype=float) for v in vals])) for k, vals in arr.items()}
    return StressCase(tuple(keep), tuple(pops), tuple(funds), arrays, np.asarray([float(rule.margin(np.asarray(s.r))) for s in keep]))


def _expected_profit(a, case, fn, params, input_fn, market):
    """E[Pi] of one trade vector a (T + 1,) in one state (arrays of :class:`StressCase` without the state axis)."""
    def exposure(M):
        return jnp.mean(jnp.minimum(case["target"], case["equity"] / M[..., None]), axis=-1)

    cash, _ = market_recursion(jnp, a[None, :], case["shocks"], case["prices0"], case["v0"], case["m0"], case["x0"],
                               lambda r: fn(r, params), exposure, input_fn, market)
    return cash[0] @ case["weights"]


def _project(v, q):
    """Euclidean projection of v (..., n) onto {sum v = 0, |v_i| <= q}: clip(v - lambda, -q, q) with lambda the root of
    the non-increasing piecewise-linear S(lambda) = sum clip(v - lambda, -q, q), exact: S is linear between its 2n
    breakpoints v_i -+ q, so lambda interpolates between the last breakpoint with S >= 0 and the next one."""
    bp = jnp.sort(jnp.concatenate([v - q, v + q], axis=-1), axis=-1)                      # (..., 2n)
    S = jnp.sum(jnp.clip(v[..., None, :] - bp[..., :, None], -q, q), axis=-1)             # S at each breakpoint
    k = jnp.clip(jnp.sum(S >= 0, axis=-1) - 1, 0, bp.shape[-1] - 2)[..., None]
    b0, b1 = jnp.take_along_axis(bp, k, -1), jnp.take_along_axis(bp, k + 1, -1)
    s0, s1 = jnp.take_along_axis(S, k, -1), jnp.take_along_axis(S, k + 1, -1)
    lam = jnp.where(s0 > s1, b0 + s0 / jnp.where(s0 > s1, s0 - s1, 1.0) * (b1 - b0), b0)
    return jnp.clip(v - lam, -q, q)


@partial(jax.jit, static_argnums=(0, 1, 2, 3, 4))
def _evaluate(fn, kind, lam, level, market, params, arrays, a):
    """E[Pi] of trade vectors a (states, k, T + 1) in every state (price units x ADV)."""
    input_fn = _input_fn(kind, lam, level)
    one = lambda x, c: _expected_profit(x, c, fn, params, input_fn, market)   # noqa: E731
    return jax.vmap(jax.vmap(one, in_axes=(0, None)), in_axes=(0, 0))(a, arrays)


@partial(jax.jit, static_argnums=(0, 1, 2, 3, 4, 5))
def _ascend(fn, kind, lam, level, market, steps, params, arrays, a0, q):
    """Projected Adam ascent of E[Pi] from starts a0 (states, starts, T + 1); returns the best point seen and its value."""
    input_fn = _input_fn(kind, lam, level)
    vg = jax.value_and_grad(lambda x, c: _expected_profit(x, c, fn, params, input_fn, market))
    batched = jax.vmap(jax.vmap(vg, in_axes=(0, None)), in_axes=(0, 0))
    b1, b2, eps = 0.9, 0.999, 1e-30
    rates = q * LR_START * (LR_END / LR_START) ** (jnp.arange(steps) / max(steps - 1, 1))

    def step(carry, k):
        a, m, v, best_a, best_v = carry
        val, g = batched(a, arrays)
        better = val > best_v
        best_a = jnp.where(better[..., None], a, best_a)
        best_v = jnp.where(better, val, best_v)
        g = jnp.where(jnp.isfinite(g), g, 0.0)
        g = g - jnp.mean(g, axis=-1, keepdims=True)      # the gradient within the hyperplane sum a = 0
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        t = k + 1.0
        upd = (m / (1 - b1**t)) / (jnp.sqrt(v / (1 - b2**t)) + eps * q)
        a = _project(a + rates[k] * upd, q)
        return (a, m, v, best_a, best_v), None

    z = jnp.zeros_like(a0)
    init = (_project(a0, q), z, z, a0, jnp.full(a0.shape[:-1], -jnp.inf))
    (a, _, _, best_a, best_v), _ = jax.lax.scan(step, init, jnp.arange(steps))
    val = batched(a, arrays)[0]
    better = val > best_v
    return jnp.where(better[..., None], a, best_a), jnp.where(better, val, best_v)


def _lattice(T: int) -> np.ndarray:
    """Sequences k in LATTICE^(T+1), sum 0, not all zero (the audit's search lattice), in units of q/2."""
    lat = tuple(LATTICE)
    ks = [c + (-sum(c),) for c in itertools.product(lat, repeat=int(T)) if -sum(c) in lat and any(c + (-sum(c),))]
    return np.asarray(ks, dtype=float) / 2.0


@dataclass(frozen=True)
class StressPoint:
    """The best strategy found in one state for one capacity q (ADV units) and horizon T: ``trades`` (ADV units,
    a_t..a_{t+T}), ``mean`` expected profit (price units x ADV), ``se`` its Monte Carlo standard error (0 if exact)."""

    state: str
    vol: float
    margin: float
    T: int
    capacity: float
    trades: tuple
    mean: float
    se: float
    exact: bool

    @property
    def profitable(self) -> bool:
        """Above the tolerance: STRESS_TOL when exact, else lower 95% band above 0."""
        return self.mean > STRESS_TOL if self.exact else self.mean - BAND_Z * self.se > 0

    def to_dict(self) -> dict:
        return {"state": self.state, "vol_daily": self.vol, "margin_ratio": self.margin, "horizon_T": self.T, "capacity_adv": self.capacity,
                "trades_adv": list(self.trades), "expected_profit": self.mean, "se": self.se, "exact": self.exact,
                "profitable": self.profitable}


def best_trips(rule: Rule, states, market: AuditMarket, T: int, capacity: float = CAPACITY, *, jrule: JaxRule | None = None,
               paths: int | None = None, seed: int = 0, starts: int = RANDOM_STARTS, lattice_starts: int = LATTICE_STARTS,
               steps: int = ASCENT_STEPS) -> list[StressPoint]:
    """The best open-loop round trip over exactly T updates (T + 1 trades, sum 0, |a_u| <= ``capacity``) in each
    of ``states`` (one batch), by multi-start projected gradient ascent; profits re-evaluated on the rule by
    :func:`simulate_trades`. States with margin 0 are skipped."""
    if int(T) != T or T < 1:
        raise InputError(f"the horizon T = {T!r} must be a positive integer number of updates.")
    states = list(states)
    if not states:
        return []
    spec0 = states[0].input
    limit = states[0].window - (spec0.tail if spec0.kind in HS_KINDS else 0)   # HS: the n tail losses stay in the window
    if T > limit:
        raise InputError(f"T = {T} updates exceed the {limit} the input's window of {states[0].window} returns allows (locality).")
    vols = [math.sqrt(s.r) for s in states]
    jr = jrule or jax_rule(rule, min(vols), max(vols))
    case = stress_cases(rule, jr, states, market, T, paths=paths, seed=seed)
    if case is None:
        return []
    n = len(case.states)
    spec = case.states[0].input
    kind, lam, level = spec.kind, float(spec.lam), float(spec.level)
    q = float(capacity)
    lat = _lattice(T) * q
    pad = -lat.shape[0] % LATTICE_CHUNK        # zero trades (profit 0) fill the last chunk: one compiled shape
    padded = np.concatenate([lat, np.zeros((pad, T + 1))])
    vals = np.concatenate([
        np.asarray(_evaluate(jr.fn, kind, lam, level, market, jr.params, case.arrays,
                             jnp.asarray(np.broadcast_to(padded[k : k + LATTICE_CHUNK], (n, LATTICE_CHUNK, T + 1)))))
        for k in range(0, padded.shape[0], LATTICE_CHUNK)], axis=1)[:, : lat.shape[0]]
    top = np.argsort(-vals, axis=1)[:, : min(lattice_starts, lat.shape[0])]
    rng = np.random.default_rng(seed)
    rand = rng.uniform(-q, q, (n, starts, T + 1))
    a0 = np.concatenate([lat[top], rand], axis=1)
    best_a, _ = _ascend(jr.fn, kind, lam, level, market, int(steps), jr.params, case.arrays, jnp.asarray(a0), q)
    best_a = np.asarray(best_a)
    out = []
    for i, (st, pop, fund) in enumerate(zip(case.states, case.populations, case.fundamentals)):
        cand = np.concatenate([best_a[i], lat[top[i, :1]]], axis=0)
        cand[:, -1] = -cand[:, :-1].sum(axis=1)         # exact round trip (the projection leaves ~1e-18)
        cand = np.clip(cand, -q, q)
        cand[:, -1] = -cand[:, :-1].sum(axis=1)
        ok = np.abs(cand[:, -1]) <= q * (1 + 1e-12)
        cand = cand[ok]
        prof = simulate_trades(rule, pop, st, market, cand, fund)
        mean, se = fund.mean_se(prof)
        k = int(np.argmax(mean))
        out.append(StressPoint(st.label, math.sqrt(st.r), float(case.margins[i]), int(T), q, tuple(float(x) for x in cand[k]),
                               float(mean[k]), float(se[k]), fund.exact))
    return out


# ----------------------------------------------------------------------------------------------
# Scaling in q and the verdict
# ----------------------------------------------------------------------------------------------


def scaling_exponent(capacities, profits, tol: float = STRESS_TOL) -> float | None:
    """Least-squares slope of log(best profit) on log(q) over the smallest FIT_POINTS capacities whose profit exceeds
    ``tol`` (at least two): the order of the profit in q as q -> 0. None with fewer than two."""
    q = np.asarray(capacities, dtype=float)
    p = np.asarray(profits, dtype=float)
    idx = np.flatnonzero(p > tol)[:FIT_POINTS]
    if idx.size < 2:
        return None
    return float(np.polyfit(np.log(q[idx]), np.log(p[idx]), 1)[0])


def verdict(capacities, profits, tol: float = STRESS_TOL) -> str:
    """The verdict worded by the scaling of the best profit in the capacity q (see the module docstring)."""
    q = np.asarray(capacities, dtype=float)
    p = np.asarray(profits, dtype=float)
    pos = p > tol
    if not pos.any():
        return f"no profitable strategy up to q = {q.max():g} ADV"
    if not pos[0]:
        q_min = float(q[int(np.argmax(pos))])
        return (f"profitable only for trades of about {q_min:g} ADV and more (none at q = {q[0]:g}): a loss at second order "
                "that a larger trade overcomes, as for a rule strictly inside the cap")
    e = scaling_exponent(q, p, tol)
    if e is None:
        return f"profitable at q = {q[0]:g} ADV (one capacity: no scaling measured)"
    if e >= THIRD_ORDER_SLOPE:
        return (f"third-order profit (scales like q^{e:.2f}): the knife-edge of the cap (16), a rule at the cap whose "
                "convex re-leveraging pays at third order")
    return f"second-order profit (scales like q^{e:.2f}): the rule passes more than the cap allows (Theorem 1)"


@dataclass(frozen=True, eq=False)
class StressReport:
    """The T-update stress test of a rule: per state (rows of ``points``: capacities x states), the best strategy
    over horizons 1..T at each capacity, the scaling exponent in q and the verdict."""

    rule: str
    T: int
    capacities: tuple
    points: dict = field(repr=False)   # {state label: [StressPoint per capacity]}
    jax_form: str = ""

    def rows(self) -> list[dict]:
        out = []
        for label, pts in self.points.items():
            prof = [p.mean for p in pts]
            best = pts[-1]
            out.append({
                "state": label, "vol_daily": best.vol, "margin_ratio": best.margin, "updates_T": self.T,
                "capacity_adv": best.capacity, "best_horizon": best.T, "best_trades_adv": list(best.trades),
                "expected_profit": best.mean, "se": best.se, "band": None if best.exact else BAND_Z * best.se, "exact": best.exact,
                "profitable": best.profitable, "profits_by_capacity": prof,
                "scaling_exponent": scaling_exponent(self.capacities, prof), "verdict": verdict(self.capacities, prof),
            })
        return out

    @property
    def profitable(self) -> bool:
        return any(pts[-1].profitable for pts in self.points.values())

    def to_dict(self) -> dict:
        return {"rule": self.rule, "updates_T": self.T, "capacities_adv": list(self.capacities), "tolerance": STRESS_TOL,
                "strategy": "open-loop (9), sum a = 0, |a_u| <= capacity, horizons 1..T; best of multi-start projected gradient ascent",
                "jax_rule": self.jax_form, "states": self.rows()}

    def text(self) -> list[str]:
        lines = [f"  T-update stress test of {self.rule}: T = {self.T}, open-loop trips over 1..{self.T} updates (9), |a_u| <= q, "
                 f"q = {', '.join(f'{c:g}' for c in self.capacities)} ADV; exact expectations unless a band is shown; "
                 f"profit above {STRESS_TOL:g} counts"]
        for r in self.rows():
            band = "" if r["band"] is None else f" +- {r['band']:.1e}"
            if not r["profitable"]:
                lines.append(f"    {r['state']}: no trip beats not trading at q = {r['capacity_adv']:g} (best E[Pi] = "
                             f"{r['expected_profit']:+.3e}{band}); {r['verdict']}")
                continue
            lines.append(f"    {r['state']}: best at q = {r['capacity_adv']:g} (T = {r['best_horizon']}) "
                         f"{_trades_text(r['best_trades_adv'])}: E[Pi] = {r['expected_profit']:+.3e}{band}; {r['verdict']}")
        return lines


def _trades_text(t) -> str:
    return "(" + ", ".join(f"{x:+.4g}" for x in t) + ")"


def _best_over_horizons(per_T: list[list[StressPoint]]) -> list[StressPoint]:
    """Per state, the best point over the horizons (lists aligned by state)."""
    return [max(pts, key=lambda p: p.mean) for pts in zip(*per_T)]


def stress_test(rule: Rule, states, market: AuditMarket, T: int, capacities=CAPACITIES, *, paths: int | None = None, seed: int = 0,
                starts: int = RANDOM_STARTS, steps: int = ASCENT_STEPS) -> StressReport:
    """The T-update stress test of ``rule`` in ``states`` (a list of :class:`SimState` with one input and window):
    for each capacity q in ``capacities`` (ADV units) the best open-loop trip over 1..T updates in every state."""
    states = list(states)
    vols = [math.sqrt(s.r) for s in states]
    jr = jax_rule(rule, min(vols), max(vols))
    points: dict = {}
    for q in capacities:
        per_T = [best_trips(rule, states, market, h, q, jrule=jr, paths=paths, seed=seed, starts=starts, steps=steps) for h in range(1, int(T) + 1)]
        for p in _best_over_horizons(per_T):
            points.setdefault(p.state, []).append(p)
    return StressReport(rule.name, int(T), tuple(float(c) for c in capacities), points, jr.how)
