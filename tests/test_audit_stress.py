"""The T-update stress test (audit/stress.py): the JAX market equals the NumPy simulation, its gradient equals finite
differences, T = 1 reproduces Lemma 5's closed form and its 1-D optimum, and the best profit scales like q^3 at the cap,
q^2 beyond it, and is absent for small q strictly inside it."""

from __future__ import annotations

import numpy as np
import pytest

from margin_design.audit import AuditMarket, Fundamentals, Population, SimState, closed_form_profit, load_rule, search_round_trips, simulate_trades
from margin_design.audit.stress import (
    STRESS_TOL,
    _evaluate,
    _expected_profit,
    _jax_input,
    best_trips,
    jax_rule,
    scaling_exponent,
    stress_cases,
    stress_test,
)
from margin_design.calibration._jax import jax, jnp

#: JAX and NumPy runs of the same recursion agree to float rounding of O(1) prices times O(0.01) trades.
SAME = 1e-12
#: Relative agreement of jax.grad with central finite differences (step 1e-7 ADV).
FD_RTOL = 1e-5
#: Scaling exponents read off the smallest three capacities 0.00125..0.005 ADV: within this of the order (3 at the cap, 2 beyond it).
SLOPE_TOL = 0.3

K = 2 / 0.9                                   # the benchmark cap (18): (2 alpha)/(alpha^2 c_eff), alpha 0.2, c_eff 4.5
MARKET = AuditMarket(alpha=0.2, c_eff=4.5)
COSTLY = AuditMarket(alpha=0.2, c_eff=4.5, inventory_penalty=0.05, execution_cost=2e-4, funding_spread=1e-3)
AT_CAP = load_rule(f"0.011979914158349939 + {K!r}*sigma")
BEYOND = load_rule(f"0.011979914158349939 + {1.5 * K!r}*sigma")
INSIDE = load_rule(f"0.011979914158349939 + {0.8 * K!r}*sigma")


def _table_rule():
    from margin_design.audit import Rule, TableRule

    vol = np.array([0.004, 0.008, 0.012, 0.02, 0.04])
    return Rule(TableRule(vol, np.array([0.02, 0.025, 0.036, 0.05, 0.06]), "linear"), name="table")


def test_jax_market_equals_the_numpy_simulation():
    """The one recursion (simulate.market_recursion) run by NumPy and by JAX: same profits, every Rademacher path, costs on;
    the realised variance (4) and the HS VaR / ES inputs (through the same risk_inputs function)."""
    rng = np.random.default_rng(1)
    for rule, state in ((AT_CAP, SimState.spread(1.2e-4, 5, 0.6)), (_table_rule(), SimState.spread(1.2e-4, 5, 0.6)),
                        (_table_rule(), SimState.spread(1.2e-4, 20, 0.6, "hs_var", 0.95)),
                        (AT_CAP, SimState.spread(1.2e-4, 20, 0.6, "hs_es", 0.9))):
        T = 3
        jr = jax_rule(rule, 0.005, 0.03)
        assert jr.exact
        case = stress_cases(rule, jr, [state], COSTLY, T)
        a = rng.uniform(-0.02, 0.02, (6, T + 1))
        a[:, -1] = -a[:, :-1].sum(axis=1)
        spec = state.input
        got = np.asarray(_evaluate(jr.fn, spec.kind, spec.lam, spec.level, COSTLY, jr.params, case.arrays, jnp.asarray(a[None])))[0]
        prof = simulate_trades(rule, case.populations[0], state, COSTLY, a, Fundamentals.rademacher(state.step, T))
        want = prof @ case.fundamentals[0].weights
        assert np.max(np.abs(got - want)) <= SAME


def test_gradient_equals_finite_differences():
    state = SimState.spread(1e-4, 5, 0.5)
    jr = jax_rule(BEYOND, 0.005, 0.02)
    case = stress_cases(BEYOND, jr, [state], COSTLY, 2)
    one = {k: v[0] for k, v in case.arrays.items()}
    f = lambda a: _expected_profit(a, one, jr.fn, jr.params, _jax_input(state.input), COSTLY)   # noqa: E731
    a = jnp.asarray([-0.013, 0.004, 0.009])
    g = np.asarray(jax.grad(f)(a))
    h = 1e-7
    fd = np.array([(float(f(a.at[i].add(h))) - float(f(a.at[i].add(-h)))) / (2 * h) for i in range(3)])
    assert np.allclose(g, fd, rtol=FD_RTOL, atol=1e-10)


def test_T1_reproduces_lemma5_and_its_one_dimensional_optimum():
    """T = 1 against a rule beyond the cap: the best two-period trip is interior (the liquidation L saturates at
    c_X M as the margin rises), and equals the maximum of Lemma 5's E[Pi] = alpha q (L - 2q) - kappa q^2 - (2 tau + rho M) |q|
    over a fine grid of signed q (negative: buy first)."""
    state = SimState.envelope(1e-4, 5)
    cap = 0.1
    (pt,) = best_trips(BEYOND, [state], COSTLY, 1, cap)
    pop = Population.calibrated(400, float(BEYOND.margin(np.asarray(state.r))), 4.5)
    qs = np.linspace(-cap, cap, 40001)
    closed, _ = closed_form_profit(BEYOND, pop, state, COSTLY, qs)
    i = int(np.argmax(closed))
    assert 0 < abs(qs[i]) < cap * 0.99                         # interior
    assert pt.trades[0] == pytest.approx(-qs[i], abs=2 * (qs[1] - qs[0]))
    assert pt.mean == pytest.approx(closed[i], rel=1e-6)
    # the simulation's profit of (-q, +q) is the closed form (deterministic fundamentals after t)
    for q in (0.004, -0.011):
        prof = simulate_trades(BEYOND, pop, state, COSTLY, [[-q, q]], Fundamentals.rademacher(0.0, 1))
        assert float(prof.mean()) == pytest.approx(float(closed_form_profit(BEYOND, pop, state, COSTLY, q)[0]), abs=SAME)


def test_scaling_at_beyond_and_inside_the_cap():
    """Envelope state, T = 2: q^3 at the cap (the knife-edge of (16)), q^2 beyond it, nothing at small q inside it."""
    state = SimState.envelope(1e-4, 5)
    qs = (0.00125, 0.0025, 0.005, 0.01, 0.02)
    at = stress_test(AT_CAP, [state], MARKET, 2, qs).rows()[0]
    beyond = stress_test(BEYOND, [state], MARKET, 2, qs).rows()[0]
    inside = stress_test(INSIDE, [state], MARKET, 2, qs).rows()[0]
    assert at["scaling_exponent"] == pytest.approx(3.0, abs=SLOPE_TOL) and "third-order" in at["verdict"]
    assert beyond["scaling_exponent"] == pytest.approx(2.0, abs=SLOPE_TOL) and "second-order" in beyond["verdict"]
    assert inside["profits_by_capacity"][0] <= STRESS_TOL
    assert "second-order" not in inside["verdict"] and "third-order" not in inside["verdict"]
    assert scaling_exponent(qs, [1e-20] * 4) is None


def test_more_updates_never_find_less():
    """The T-update test maximises over horizons 1..T, so its best profit is non-decreasing in T; at T = 4 the optimiser
    beats the audit's exhaustive lattice search (legs k x 1% ADV, k in -2..2: the buy-first 4-leg +1.7e-4 at the cap)."""
    state = SimState.envelope(1e-4, 5)
    best = [stress_test(AT_CAP, [state], MARKET, T, (0.02,)).rows()[0]["expected_profit"] for T in (1, 2, 4)]
    assert best[0] <= best[1] <= best[2]
    pop = Population.calibrated(400, float(AT_CAP.margin(np.asarray(state.r))), 4.5)
    lattice = search_round_trips(AT_CAP, pop, state, MARKET, lambda T: Fundamentals.rademacher(0.0, T), horizons=(1, 2, 3, 4), sizes=(0.01,))
    assert lattice.overall[1] == pytest.approx(1.7e-4, rel=0.01)
    assert best[2] >= lattice.overall[1] and best[2] > 1.5 * best[0]


def test_audit_reports_the_T_update_verdict(write_config):
    """``AuditOptions(updates=T)``: the audit's clearly separated block, per rule and state, with the verdict by scaling;
    without it the audit has no stress block."""
    from conftest import BASE_CONFIG

    from margin_design.audit import AuditOptions, build_audit

    cfg = write_config(BASE_CONFIG.replace("points = 40", "points = 12"))
    audit = build_audit(load_rule("0.01+r"), cfg, AuditOptions(simulate=False, updates=1))
    assert set(audit.stress) == {"rule", "first_best", "capped"}
    d = audit.to_dict()["stress_test"]
    capped = d["capped"]["states"]
    # g* saturates the cap: third order inside the grid; at the grid's first state a buy-first trip lowers sigma below the grid,
    # where g* is flat (no re-leveraging), and a sale-first trip loses at second order: no profit
    assert [s["verdict"].split(" (")[0].split(" up")[0] for s in capped] == ["no profitable strategy"] + ["third-order profit"] * 3
    assert any("second-order" in s["verdict"] for s in d["first_best"]["states"])
    assert "T-update stress test (T = 1" in audit.summary()
    plain = build_audit(load_rule("0.01+r"), cfg, AuditOptions(simulate=False))
    assert plain.stress is None and "stress_test" not in plain.to_dict()


def test_projection_onto_round_trips_is_euclidean():
    """The exact projection onto {sum a = 0, |a_u| <= q} agrees with scipy's SLSQP on the same quadratic programme."""
    from scipy.optimize import minimize

    from margin_design.audit.stress import _project

    rng = np.random.default_rng(4)
    v = rng.normal(0.0, 0.03, (6, 5))
    q = 0.02
    a = np.asarray(_project(jnp.asarray(v), q))
    assert np.max(np.abs(a.sum(axis=1))) <= SAME and np.max(np.abs(a)) <= q
    for i in range(v.shape[0]):
        ref = minimize(lambda x: np.sum((x - v[i]) ** 2), np.zeros(5), method="SLSQP", bounds=[(-q, q)] * 5,
                       constraints=[{"type": "eq", "fun": np.sum}], options={"ftol": 1e-15, "maxiter": 500})
        assert np.allclose(a[i], ref.x, atol=1e-7)


def test_monte_carlo_fundamentals_give_a_band_around_the_closed_form():
    """With ``paths`` the expectation is a Monte Carlo mean over normal fundamentals (common random numbers) and the
    report carries its 95% band. For T = 1 only E[V_{t+1}] = V_t matters (the profit is the closed form plus a term
    linear in the shock), so the best trip's Monte Carlo mean agrees with Lemma 5's closed form for the same trades
    within AGREE_Z standard errors, and a rule beyond the cap is profitable beyond the band."""
    from margin_design.audit.simulate import AGREE_Z, BAND_Z

    state = SimState.envelope(1e-4, 5)
    pt, = best_trips(BEYOND, [state], MARKET, 1, 0.01, paths=2000, seed=3)
    assert not pt.exact and pt.se > 0
    pop = stress_cases(BEYOND, jax_rule(BEYOND, 0.005, 0.02), [state], MARKET, 1).populations[0]   # the stress test's own sector
    q = -pt.trades[0]                                 # (-q, +q): q > 0 sells first
    exact, _ = closed_form_profit(BEYOND, pop, state, MARKET, np.array([q]))
    assert abs(pt.mean - float(exact[0])) <= AGREE_Z * pt.se
    assert pt.mean - BAND_Z * pt.se > 0 and pt.profitable
    rep = stress_test(BEYOND, [state], MARKET, 1, (0.01,), paths=2000, seed=3)
    text = "\n".join(rep.text())
    assert "+- " in text and rep.rows()[0]["band"] == pytest.approx(BAND_Z * rep.rows()[0]["se"])
