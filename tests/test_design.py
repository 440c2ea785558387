"""design/: closed forms (37), FOC (35), derivatives against finite differences, vmap against a loop, cap factors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, stats

from margin_design.design import objective as obj
from margin_design.design.cap import CapSpec, cap_increments, cap_slope_r
from margin_design.design.config import problem_from_dict
from margin_design.design.grid import make_grid, state_weights
from margin_design.design.shocks import ShockSpec, normal_me, normal_sq, t_me, t_sq

import tomllib

from conftest import BASE_CONFIG

CLOSED_FORM_RTOL = 1e-12      # first-best against (37): bisection to the float64 floor
QUADRATURE_RTOL = 1e-8        # closed-form coverage integrals against scipy.integrate.quad
FD_RTOL = 1e-6                # autodiff against central finite differences
FD_STEP = 1e-6
VMAP_RTOL = 1e-12             # batched and scalar XLA kernels may round differently (observed 4e-14)


def base_cfg(**overrides):
    cfg = tomllib.loads(BASE_CONFIG)
    for dotted, value in overrides.items():
        sec, key = dotted.split(".")
        cfg.setdefault(sec, {})[key] = value
    return cfg


# ---------------------------------------------------------------- coverage closed forms


@pytest.mark.parametrize("k", [-3.0, -0.5, 0.0, 0.7, 2.5, 6.0])
def test_normal_mean_excess_matches_quadrature(k):
    me = integrate.quad(lambda y: (y - k) * stats.norm.pdf(y), k, np.inf, epsabs=1e-14)[0]
    sq = 0.5 * integrate.quad(lambda y: (y - k) ** 2 * stats.norm.pdf(y), k, np.inf, epsabs=1e-14)[0]
    assert float(normal_me(k)) == pytest.approx(me, rel=QUADRATURE_RTOL, abs=1e-15)
    assert float(normal_sq(k)) == pytest.approx(sq, rel=QUADRATURE_RTOL, abs=1e-15)


@pytest.mark.parametrize("nu", [2.5, 4.0, 10.0])
@pytest.mark.parametrize("k", [-2.0, 0.0, 0.8, 3.0])
def test_student_t_mean_excess_matches_quadrature(nu, k):
    me = integrate.quad(lambda y: (y - k) * stats.t.pdf(y, nu), k, np.inf, epsabs=1e-13)[0]
    sq = 0.5 * integrate.quad(lambda y: (y - k) ** 2 * stats.t.pdf(y, nu), k, np.inf, epsabs=1e-13, limit=200)[0]
    assert float(t_me(k, nu)) == pytest.approx(me, rel=QUADRATURE_RTOL)
    assert float(t_sq(k, nu)) == pytest.approx(sq, rel=1e-7)


def test_coverage_derivative_is_minus_exceedance_probability():
    # d/dM E[(D - M)_+] = -Pr(D > M): the left side of (35), for all three shock models
    rng = np.random.default_rng(0)
    shocks = [
        ShockSpec("normal", 2.0),
        ShockSpec("student_t", 2.0, df=4.0),
        ShockSpec("empirical", 2.0, sample=rng.standard_normal(200), bandwidth=0.3),
    ]
    r = jnp.array([1e-4, 4e-4])
    M = jnp.array([0.02, 0.03])
    for shock in shocks:
        spec = obj.CostSpec(shock=shock, carry=0.0)
        d1, _ = obj.smooth_derivatives(spec.static, spec.params(), r, M)
        p = obj.exceedance_probability(spec.static, spec.params(), r, M)
        np.testing.assert_allclose(np.asarray(d1), -np.asarray(p), rtol=1e-12)


# ---------------------------------------------------------------- first best


@pytest.mark.parametrize("carry", [0.01, 0.025, 0.1])
@pytest.mark.parametrize("model,df", [("normal", None), ("student_t", 4.0)])
def test_first_best_equals_quantile_closed_form_37(carry, model, df):
    cfg = base_cfg(**{"objective.carry": carry, "shock.model": model})
    if df:
        cfg["shock"]["df"] = df
    p = problem_from_dict(cfg)
    q = stats.norm.ppf(1 - carry) if model == "normal" else stats.t.ppf(1 - carry, df) * np.sqrt((df - 2) / df)
    expected = np.sqrt(2.0 * p.r) * q  # (37): M_fb = sqrt(h r) Q_{1-kappa_M}(Y)
    np.testing.assert_allclose(p.first_best, expected, rtol=CLOSED_FORM_RTOL)


def test_first_best_satisfies_foc_35_with_liquidation_and_participation():
    cfg = base_cfg(
        **{
            "objective.liquidation_weight": 0.02,
            "objective.participation_weight": 0.05,
            "objective.participation_beta": 2.0,
            "objective.participation_cost": "quadratic",
        }
    )
    p = problem_from_dict(cfg)
    fb = p.first_best
    o = p.objective
    above = fb > o.prev_margin
    assert above.any() and (~above).any()
    lhs = np.asarray(obj.exceedance_probability(p.static, p.params, jnp.asarray(p.r), jnp.asarray(fb)))
    # (35)-(36) with C(x) = x^2/2 and H(x) = x^2/2, N = 1 - beta (M - M_-)_+:
    # p(M) = -H'(1 - N) dN/dM = beta * (beta (M - M_-)_+)
    x = np.maximum(fb - o.prev_margin, 0.0)
    rhs = o.carry + o.liquidation_weight * o.c_eff**2 * x + o.participation_weight * o.participation_beta**2 * x
    np.testing.assert_allclose(lhs[above], rhs[above], rtol=1e-10)
    np.testing.assert_allclose(lhs[~above], o.carry, rtol=1e-10)


def test_first_best_is_pinned_at_prev_margin_by_a_linear_liquidation_cost():
    # With C(x) = x the marginal cost jumps by lambda_L c_eff at M_-: states whose quantile margin lies in
    # (M_-, q_{1-carry-lambda_L c}) stay exactly at M_- (an inaction region).
    cfg = base_cfg(**{"objective.liquidation_weight": 0.003, "objective.liquidation_cost": "linear"})
    p = problem_from_dict(cfg)
    fb = p.first_best
    q_lo = np.sqrt(2 * p.r) * stats.norm.ppf(1 - 0.01)
    q_hi = np.sqrt(2 * p.r) * stats.norm.ppf(1 - 0.01 - 0.003 * 4.5)
    pinned = (q_lo > 0.05) & (q_hi <= 0.05)
    assert pinned.sum() >= 2
    assert np.all(fb[pinned] == 0.05)
    np.testing.assert_allclose(fb[q_lo <= 0.05], q_lo[q_lo <= 0.05], rtol=1e-12)
    np.testing.assert_allclose(fb[q_hi > 0.05], q_hi[q_hi > 0.05], rtol=1e-12)


def test_unbounded_first_best_is_a_clear_error():
    from margin_design.errors import ConfigError

    with pytest.raises(ConfigError, match="objective.carry = 0.0 .* unbounded"):
        problem_from_dict(base_cfg(**{"objective.carry": 0.0}))


# ---------------------------------------------------------------- derivatives


def test_jax_gradients_in_every_parameter_match_finite_differences():
    cfg = base_cfg(
        **{
            "objective.liquidation_weight": 0.01,
            "objective.participation_weight": 0.02,
            "objective.participation_beta": 1.5,
            "objective.participation_cost": "quadratic",
            "objective.loss": "squared_shortfall",
        }
    )
    p = problem_from_dict(cfg)
    r, w = jnp.asarray(p.r), jnp.asarray(p.weights)
    x = jnp.asarray(p.first_best * 1.1)
    params = p.params

    def J(prm):
        return obj.weighted_value(p.static, prm, r, w, x)

    grads = jax.grad(J)(params)
    for key in ("carry", "prev_margin", "liquidation_weight", "participation_weight", "participation_beta", "c_eff"):
        bumped = dict(params)
        h = FD_STEP * max(1.0, abs(float(params[key])))
        bumped[key] = params[key] + h
        up = float(J(bumped))
        bumped[key] = params[key] - h
        down = float(J(bumped))
        fd = (up - down) / (2 * h)
        assert float(grads[key]) == pytest.approx(fd, rel=FD_RTOL, abs=1e-13), key
    # horizon_days inside the shock
    hz = params["shock"]["horizon_days"]
    sh = dict(params)
    sh["shock"] = {"horizon_days": hz + 1e-6}
    up = float(J(sh))
    sh["shock"] = {"horizon_days": hz - 1e-6}
    fd = (up - float(J(sh))) / 2e-6
    assert float(grads["shock"]["horizon_days"]) == pytest.approx(fd, rel=FD_RTOL)


@pytest.mark.parametrize("model", ["normal", "student_t", "empirical"])
def test_margin_derivatives_match_finite_differences(model):
    rng = np.random.default_rng(1)
    shock = ShockSpec(model, 2.0, df=5.0 if model == "student_t" else None,
                      sample=rng.standard_t(5, 300) if model == "empirical" else None,
                      bandwidth=0.25 if model == "empirical" else None)
    spec = obj.CostSpec(shock=shock, loss="squared_shortfall", carry=0.01, prev_margin=0.01,
                        liquidation_weight=0.02, c_eff=4.5)
    r = jnp.linspace(1e-5, 1e-3, 7)
    M = jnp.linspace(0.005, 0.09, 7)
    d1, d2 = obj.smooth_derivatives(spec.static, spec.params(), r, M)
    f = lambda m: np.asarray(obj.psi_smooth(spec.static, spec.params(), r, m))
    fd1 = (f(M + FD_STEP) - f(M - FD_STEP)) / (2 * FD_STEP)
    g = lambda m: np.asarray(obj.smooth_derivatives(spec.static, spec.params(), r, m)[0])
    fd2 = (g(M + FD_STEP) - g(M - FD_STEP)) / (2 * FD_STEP)
    np.testing.assert_allclose(np.asarray(d1), fd1, rtol=FD_RTOL, atol=1e-10)
    np.testing.assert_allclose(np.asarray(d2), fd2, rtol=1e-5, atol=1e-8)


def test_vmap_agrees_with_a_loop():
    spec = obj.CostSpec(shock=ShockSpec("student_t", 2.0, df=4.0), carry=0.01, prev_margin=0.03,
                        liquidation_weight=0.05, c_eff=4.5)
    r = jnp.linspace(2e-5, 9e-4, 11)
    M = jnp.linspace(0.01, 0.08, 11)
    f = lambda ri, mi: obj.psi(spec.static, spec.params(), ri, mi)
    vm = jax.vmap(f)(r, M)
    loop = jnp.array([f(ri, mi) for ri, mi in zip(r, M)])
    np.testing.assert_allclose(np.asarray(vm), np.asarray(loop), rtol=VMAP_RTOL)
    gv = jax.vmap(jax.grad(f, argnums=1))(r, M)
    gl = jnp.array([jax.grad(f, argnums=1)(ri, mi) for ri, mi in zip(r, M)])
    np.testing.assert_allclose(np.asarray(gv), np.asarray(gl), rtol=VMAP_RTOL)


# ---------------------------------------------------------------- grid and weights


def test_weights_are_cell_masses_that_sum_to_one():
    g = make_grid(0.005, 0.03, 26, "vol")
    w = state_weights(g, "lognormal", median_vol=0.01, dispersion=0.5)
    assert w.sum() == pytest.approx(1.0, abs=1e-15)
    edges = g.cell_edges()
    dist = stats.lognorm(s=0.5, scale=0.01)
    mass = dist.cdf(edges[1:]) - dist.cdf(edges[:-1])
    np.testing.assert_allclose(w, mass / mass.sum(), rtol=1e-12)
    u = state_weights(make_grid(0.005, 0.03, 26, "variance"), "uniform")
    np.testing.assert_allclose(u[1:-1], u[1], rtol=1e-12)  # uniform in r on a grid uniform in r
    assert u[0] == pytest.approx(u[1] / 2)


def test_table_weights_are_binned_onto_the_grid():
    g = make_grid(0.01, 0.03, 3, "vol")  # cells [0.01,0.015), [0.015,0.025), [0.025,0.03]
    w = state_weights(g, "table", table_vol=np.array([0.01, 0.016, 0.024, 0.03]), table_weight=np.array([1, 1, 1, 1.0]))
    np.testing.assert_allclose(w, [0.25, 0.5, 0.25])


# ---------------------------------------------------------------- cap


ALPHA, CEFF = 0.2, 4.5


def _realized_variance(prices, m):
    R = np.diff(prices)[-m:]
    return np.mean(R**2)


def _ewma(prices, lam, r_prev):
    R = prices[-1] - prices[-2]
    return lam * r_prev + (1 - lam) * R**2


@pytest.mark.parametrize("kappa", [0.0, 0.1])
def test_variance_cap_is_paper_17(kappa):
    cap = CapSpec(alpha=ALPHA, c_eff=CEFF, inventory_penalty=kappa)
    r = np.array([1e-4, 4e-4])
    expected = (2 * ALPHA + kappa) / (2 * ALPHA**2 * CEFF * np.sqrt(r))  # (17)
    np.testing.assert_allclose(cap_slope_r(cap, r), expected, rtol=1e-15)
    assert cap.slope_vol == pytest.approx((2 * ALPHA + kappa) / (ALPHA**2 * CEFF))  # (18)
    if kappa == 0:
        assert cap.slope_vol == pytest.approx(2 / (ALPHA * CEFF))  # (40)


def test_cap_increments_are_the_exact_integral_of_the_r_cap():
    cap = CapSpec(alpha=ALPHA, c_eff=CEFF, input="ewma", lam=0.9)
    vol = np.array([0.005, 0.007, 0.02])
    u = cap_increments(cap, vol)
    for i in range(2):
        integral = integrate.quad(lambda r: cap_slope_r(cap, r), vol[i] ** 2, vol[i + 1] ** 2, epsabs=1e-14)[0]
        assert u[i] == pytest.approx(integral, rel=1e-10)
    assert np.all(np.isinf(cap_increments(CapSpec(kind="none"), vol)))


@pytest.mark.parametrize(
    "cap_input,kw", [("variance", {}), ("realized_variance", {"window": 20}), ("ewma", {"lam": 0.94})]
)
def test_cap_factor_matches_finite_difference_manipulation_of_the_input(cap_input, kw):
    """The factor is (largest |dr/dP| of the paper's input) / (largest |dr/dP| of this input) at equal r.

    Build the worst-case window for each input at variance r (all variance in the last return), push the
    last sampled price by eps, and compare the finite-difference sensitivity with the envelope.
    """
    r = 2.5e-4
    eps = 1e-9
    if cap_input == "variance":  # paper's RV: sum of squared returns (4); here a single return carries r
        prices = np.array([1.0, 1.0 + np.sqrt(r)])
        f = lambda p: np.sum(np.diff(p) ** 2)
    elif cap_input == "realized_variance":
        m = kw["window"]
        prices = np.concatenate([np.ones(m), [1.0 + np.sqrt(m * r)]])
        f = lambda p: _realized_variance(p, m)
    else:
        lam = kw["lam"]
        prices = np.array([1.0, 1.0 + np.sqrt(r / (1 - lam))])  # r_prev = 0, R^2 = r / (1 - lambda)
        f = lambda p: _ewma(p, lam, 0.0)
    assert f(prices) == pytest.approx(r, rel=1e-12)
    bumped = prices.copy()
    bumped[-1] += eps
    sens = (f(bumped) - f(prices)) / eps  # c_RV of (16), worst case at this r
    cap = CapSpec(alpha=ALPHA, c_eff=CEFF, input=cap_input, window=kw.get("window", 1), lam=kw.get("lam", 0.94))
    implied = (2 * ALPHA) / (ALPHA**2 * CEFF * sens)  # (16) with kappa = 0
    assert float(cap_slope_r(cap, r)) == pytest.approx(implied, rel=1e-6)
    # and random windows with the same r never exceed the envelope
    rng = np.random.default_rng(3)
    if cap_input == "realized_variance":
        for _ in range(200):
            R = rng.standard_normal(kw["window"])
            R *= np.sqrt(r * kw["window"] / np.sum(R**2))
            assert abs(2 * R[-1] / kw["window"]) <= sens * (1 + 1e-9)
