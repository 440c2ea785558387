"""Portfolio risk functionals, their trigger direction d and factor s_f by autodiff, impact matrices and B
(calibration.portfolio_risk; Nicolai 2026 Sections 4.2, 5 (25)-(27), 6.5 (46), D.5-D.6 (85)-(93)).

Every check has an independent reference: closed forms written out here in NumPy, finite differences of the
functional itself, the single-contract machinery of calibration.risk_inputs and design.cap, the normal
distribution on large Gaussian windows, brute-force enumeration, or the paper's D.6 numbers.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.stats import norm

from margin_design.calibration import portfolio_risk as pr
from margin_design.calibration.accounts import c_eff_from_accounts
from margin_design.calibration.risk_inputs import directional_sensitivity, sampled_variance
from margin_design.calibration.cap import liquidation_slope
from margin_design.calibration.portfolio import alignment, price_pressure_scale, two_asset_matrices
from margin_design.design.cap import CapSpec
from margin_design.errors import ConfigError, InputError

#: Closed forms evaluated two ways in float64 (sums, sorts, matrix square roots).
EXACT_RTOL = 1e-10
#: Autodiff (one-sided, extrapolated to eps -> 0+) against a closed-form derivative.
AD_RTOL = 1e-8
#: A direction read one step eps = 1e-9 to the side of a kink (the gradient there, not extrapolated): error ~ eps/|R|.
DIR_RTOL = 1e-6
#: Autodiff against second-order finite differences of the functional (exact on quadratic pieces).
FD_RTOL = 1e-6
#: Finite-difference step on marks (price units, marks near 1, returns ~ 1e-2).
FD_STEP = 1e-6
#: Historical VaR / ES / scan on N = 200,000 Gaussian days against the normal closed form: the VaR quantile's
#: standard error is sqrt(p (1 - p) / N) / phi(z_p) = 0.36% of z_p sigma at p = 0.99, ES's about 0.5%; 2% is
#: more than four standard errors.
GAUSS_RTOL = 0.02
GAUSS_DAYS = 200_000
#: A local factor may reach the worst case but not exceed it (float64 slack of the one-sided derivative).
BOUND_SLACK = 1e-7

RNG_SEED = 20260514


def _rng():
    return np.random.default_rng(RNG_SEED)


def _window(rows, K, vol=0.01, rng=None):
    rng = rng or _rng()
    R = vol * rng.standard_normal((rows - 1, K))
    return 1.0 + np.vstack([np.zeros((1, K)), np.cumsum(R, axis=0)])


# ----------------------------------------------------------------------------------------------
# Independent NumPy references of the functionals
# ----------------------------------------------------------------------------------------------


def _ref_gamma(spec, P):
    m, h = spec.window, spec.h
    P = np.asarray(P, dtype=float)[-(m + 1):]
    R = np.diff(P, axis=0)
    y = R @ h
    H = spec.horizon_days
    n = max(1, math.ceil(m * (1 - spec.level) - 1e-9))
    if spec.kind == "variance":
        return y[-1] ** 2
    if spec.kind == "realized_variance":
        return float(np.mean(y**2))
    if spec.kind == "ewma":
        v = float(np.mean(y[:-1] ** 2))
        for yj in y:
            v = spec.lam * v + (1 - spec.lam) * yj * yj
        return v
    if spec.kind == "scan":
        sig = np.sqrt(np.mean(R**2, axis=0))
        c = spec.scan_multiplier * math.sqrt(H) * (1 + spec.vol_shift)
        return c * (abs(h @ sig) if spec.scan_netting == "joint" else np.abs(h) @ sig)
    if spec.kind.startswith("fhs"):
        X = y[:, None] if spec.filter == "portfolio" else R
        w = np.ones(1) if spec.filter == "portfolio" else h
        scen = np.empty_like(X)
        for i in range(X.shape[1]):
            v = float(np.mean(X[:-1, i] ** 2))
            sd = np.empty(m)
            for j in range(m):
                sd[j] = math.sqrt(v)
                v = spec.lam * v + (1 - spec.lam) * X[j, i] ** 2
            scen[:, i] = X[:, i] / sd * math.sqrt(v)
        losses = -math.sqrt(H) * (scen @ w)
    else:
        losses = -math.sqrt(H) * y
    top = np.sort(losses)[::-1][:n]
    return float(np.mean(top)) if spec.kind.endswith("es") else float(top[-1])


ALL_SPECS = [
    pr.PortfolioRisk("variance", (0.6, -0.3, 0.2)),
    pr.PortfolioRisk("realized_variance", (0.6, -0.3, 0.2), window=15),
    pr.PortfolioRisk("ewma", (0.6, -0.3, 0.2), window=30, lam=0.9),
    pr.PortfolioRisk("hs_var", (0.6, -0.3, 0.2), window=120, level=0.975, horizon_days=2.0),
    pr.PortfolioRisk("hs_es", (0.6, -0.3, 0.2), window=120, level=0.975),
    pr.PortfolioRisk("fhs_var", (0.6, -0.3, 0.2), window=120, level=0.975, lam=0.9),
    pr.PortfolioRisk("fhs_es", (0.6, -0.3, 0.2), window=120, level=0.975, lam=0.9, filter="portfolio"),
    pr.PortfolioRisk("scan", (0.6, -0.3, 0.2), window=15, vol_shift=0.2, horizon_days=2.0),
    pr.PortfolioRisk("scan", (0.6, -0.3, 0.2), window=15, scan_netting="independent", scan_steps=2),
]


@pytest.mark.parametrize("spec", ALL_SPECS, ids=lambda s: f"{s.kind}-{s.filter}-{s.scan_netting}")
def test_functional_matches_its_closed_form(spec):
    P = _window(spec.window + 6, 3)  # a longer history: the last m + 1 rows are used
    assert float(pr.portfolio_risk_value(spec, P)) == pytest.approx(_ref_gamma(spec, P), rel=EXACT_RTOL)
    # a stack of windows is one call
    stack = np.stack([P, _window(spec.window + 6, 3, rng=np.random.default_rng(1))])
    vals = pr.portfolio_risk_value(spec, stack)
    assert vals[1] == pytest.approx(_ref_gamma(spec, stack[1]), rel=EXACT_RTOL)
    r = float(pr.portfolio_risk_input(spec, P))
    k = pr.value_per_vol(spec)
    expect = _ref_gamma(spec, P) if k is None else (max(_ref_gamma(spec, P), 0.0) / k) ** 2
    assert r == pytest.approx(expect, rel=EXACT_RTOL)


def test_value_per_vol_constants():
    z = norm.ppf(0.99)
    assert pr.value_per_vol(pr.PortfolioRisk("hs_var")) == pytest.approx(z, rel=EXACT_RTOL)
    assert pr.value_per_vol(pr.PortfolioRisk("fhs_es", horizon_days=4.0)) == pytest.approx(2 * norm.pdf(z) / 0.01, rel=EXACT_RTOL)
    assert pr.value_per_vol(pr.PortfolioRisk("scan", scan_multiplier=2.5, vol_shift=0.2)) == pytest.approx(3.0, rel=EXACT_RTOL)
    assert pr.value_per_vol(pr.PortfolioRisk("ewma")) is None
    # n = ceil(m (1 - p)) tail scenarios, guarded against 500 x (1 - 0.99) = 5.000000000000004
    assert pr.tail_count(250, 0.99) == 3 and pr.tail_count(500, 0.99) == 5 and pr.tail_count(20, 0.99) == 1


def test_negative_var_maps_to_zero_input():
    spec = pr.PortfolioRisk("hs_var", (1.0,), window=10)
    P = 1.0 + 0.01 * np.arange(11.0)[:, None]  # ten gains: the 1st largest loss is -0.01
    assert float(pr.portfolio_risk_value(spec, P)) == pytest.approx(-0.01, rel=EXACT_RTOL)
    assert float(pr.portfolio_risk_input(spec, P)) == 0.0


# ----------------------------------------------------------------------------------------------
# Sensitivity: closed forms, single-contract reductions, finite differences
# ----------------------------------------------------------------------------------------------


def test_portfolio_variance_gradient_closed_form():
    # notes/portfolio.md: r = (h'R)^2 has gradient 2 (h'R) h, so d = sign(h'R) h/||h|| and c_r = 2 |h'R| ||h||
    h = np.array([0.7, -0.2, 0.4])
    spec = pr.PortfolioRisk("variance", tuple(h))
    for seed in range(4):
        P = _window(2, 3, rng=np.random.default_rng(seed))
        y = float((P[1] - P[0]) @ h)
        loc = pr.local_trigger_sensitivity(spec, P)
        assert np.allclose(loc.gradient, 2 * y * h, rtol=AD_RTOL, atol=0)
        assert np.allclose(loc.d, np.sign(y) * h / np.linalg.norm(h), rtol=AD_RTOL, atol=1e-15)
        assert loc.c_r == pytest.approx(2 * abs(y) * np.linalg.norm(h), rel=AD_RTOL)
        assert loc.s_f == pytest.approx(np.linalg.norm(h), rel=AD_RTOL)


@pytest.mark.parametrize(
    "kind, window, lam",
    [("variance", 1, 0.94), ("realized_variance", 20, 0.94), ("realized_variance", 5, 0.94), ("ewma", 250, 0.94), ("ewma", 40, 0.97)],
)
def test_single_contract_factors_match_design_cap(kind, window, lam):
    # design/cap.py: the vol-unit cap is input_factor x (18), input_factor = 1, sqrt(m), 1/sqrt(1 - lambda); s_f is its inverse
    _, s_f, det = pr.trigger_and_sensitivity(pr.PortfolioRisk(kind, (1.0,), window=window, lam=lam))
    expected = {"variance": 1.0, "realized_variance": 1 / math.sqrt(window), "ewma": math.sqrt(1 - lam)}[kind]
    assert s_f == pytest.approx(expected, rel=AD_RTOL)
    cap_input = "variance" if kind == "variance" else kind
    assert 1.0 / s_f == pytest.approx(CapSpec(input=cap_input, window=window, lam=lam).input_factor, rel=AD_RTOL)
    # both signs of the last return are worst cases with the same factor; the primary is the sale (the paper's d = -1)
    assert [b.side for b in det.branches] == ["loss", "gain"]
    assert det.d.tolist() == [-1.0]
    assert det.branches[1].direction.tolist() == [1.0]
    assert det.branches[1].s_f == pytest.approx(s_f, rel=AD_RTOL)


def test_single_contract_local_sensitivity_matches_single_asset_inputs():
    # calibration.risk_inputs computes the one-sided derivative of the single-contract (4)/m by its own kernel
    rng = np.random.default_rng(7)
    P = _window(21, 1, rng=rng)
    spec = pr.PortfolioRisk("realized_variance", (1.0,), window=20)
    loc = pr.local_trigger_sensitivity(spec, P)
    ref = directional_sensitivity(lambda p: sampled_variance(p, mean=True), P[:, 0])
    assert loc.c_r == pytest.approx(float(ref.c_gamma), rel=AD_RTOL)
    assert loc.d[0] == (1.0 if float(ref.up) > float(ref.down) else -1.0)


def test_equal_weight_two_contract_factors():
    # h = (1/2, 1/2): ||h|| = 1/sqrt(2); the variance kinds scale the single-contract factors by it, HS uses
    # ||h||/k and ||h||/(n k), the scan ||h||/sqrt(m); d = -(1, 1)/sqrt(2), the D.6 trigger
    h = (0.5, 0.5)
    hn = 1 / math.sqrt(2)
    z = norm.ppf(0.99)
    k_es = norm.pdf(z) / 0.01
    expected = {
        "variance": hn,
        "realized_variance": hn / math.sqrt(20),
        "ewma": hn * math.sqrt(0.06),
        "hs_var": hn / z,
        "hs_es": hn / (3 * k_es),
        "scan": hn / math.sqrt(20),
    }
    for kind, value in expected.items():
        d, s_f, _ = pr.trigger_and_sensitivity(pr.PortfolioRisk(kind, h))
        assert s_f == pytest.approx(value, rel=AD_RTOL), kind
        assert np.allclose(d, [-hn, -hn], rtol=AD_RTOL), kind


@pytest.mark.parametrize("kind", ["fhs_var", "fhs_es"])
@pytest.mark.parametrize("filt", ["contract", "portfolio"])
def test_fhs_worst_case_family_closed_form(kind, filt):
    spec = pr.PortfolioRisk(kind, (0.5, 0.3), window=120, lam=0.9, level=0.98, filter=filt, tail_ratio=1.2)
    d, s_f, det = pr.trigger_and_sensitivity(spec)
    loss, gain = det.branches
    assert loss.s_f == pytest.approx(pr.fhs_worst_factor(spec, "loss"), rel=AD_RTOL)
    assert gain.s_f == pytest.approx(pr.fhs_worst_factor(spec, "gain"), rel=AD_RTOL)
    # the gain-side branch is the vol channel alone, which tends to ||h|| theta sqrt(1 - lambda)
    assert gain.s_f == pytest.approx(np.linalg.norm(spec.h) * 1.2 * math.sqrt(0.1), rel=1e-5)
    hn = spec.h / np.linalg.norm(spec.h)
    assert np.allclose(loss.direction, -hn, rtol=AD_RTOL) and np.allclose(gain.direction, hn, rtol=AD_RTOL)
    assert s_f == loss.s_f and np.array_equal(d, loss.direction)


def test_fhs_has_no_finite_state_free_bound():
    # Section 4.2.2: after a quiet spell the FHS input is steepest. A calm window (returns +-0.1%, filter vol 0.1%)
    # then a last loss of 2% (x = 20 filter sds, in the tail): Gamma ~ sqrt(1 - lambda) x^2 sigma / n is quadratic in
    # the last return, s_f ~ 2 sqrt(1 - lambda) x / (n k) = 1.58, four times the documented family's 0.41
    spec = pr.PortfolioRisk("fhs_es", (1.0,), window=60, level=0.95)
    y = 0.001 * np.where(np.arange(60) % 2 == 0, 1.0, -1.0)
    y[-1] = -0.02
    P = 1.0 + np.concatenate([[0.0], np.cumsum(y)])[:, None]
    local = pr.local_trigger_sensitivity(spec, P).s_f
    _, worst_family, _ = pr.trigger_and_sensitivity(spec)
    assert worst_family == pytest.approx(pr.fhs_worst_factor(spec), rel=AD_RTOL)
    assert local > 3 * worst_family


def _fd_one_sided(spec, P, d, step=FD_STEP):
    def r_at(t):
        Q = P.copy()
        Q[-1] = Q[-1] + t * d
        return float(pr.portfolio_risk_input(spec, Q))

    return (-3 * r_at(0.0) + 4 * r_at(step) - r_at(2 * step)) / (2 * step)


def _fd_gradient(spec, P, step=FD_STEP):
    g = np.empty(P.shape[1])
    for i in range(P.shape[1]):
        up, dn = P.copy(), P.copy()
        up[-1, i] += step
        dn[-1, i] -= step
        g[i] = (float(pr.portfolio_risk_input(spec, up)) - float(pr.portfolio_risk_input(spec, dn))) / (2 * step)
    return g


@pytest.mark.parametrize("spec", ALL_SPECS, ids=lambda s: f"{s.kind}-{s.filter}-{s.scan_netting}")
def test_autodiff_matches_finite_differences(spec):
    # at a worst-case window with a small random perturbation of every mark (no ties between scenarios)
    P = pr.worst_case_window(spec) + 1e-5 * np.random.default_rng(3).standard_normal((spec.window + 1, 3))
    loc = pr.local_trigger_sensitivity(spec, P)
    assert loc.c_r > 0
    assert loc.c_r == pytest.approx(_fd_one_sided(spec, P, loc.d), rel=FD_RTOL)
    assert np.allclose(loc.gradient, _fd_gradient(spec, P), rtol=FD_RTOL, atol=FD_RTOL * np.abs(loc.gradient).max())
    # d is the steepest ascent: no coordinate direction raises r faster
    for e in np.vstack([np.eye(3), -np.eye(3)]):
        assert _fd_one_sided(spec, P, e) <= loc.c_r * (1 + FD_RTOL)


@pytest.mark.parametrize("spec", ALL_SPECS[:5] + ALL_SPECS[7:], ids=lambda s: f"{s.kind}-{s.scan_netting}")
def test_local_factor_never_exceeds_the_worst_case(spec):
    # the worst case is a bound: over random windows (and random histories with fat tails) s_f(local) <= s_f(worst)
    _, worst, _ = pr.trigger_and_sensitivity(spec)
    rng = np.random.default_rng(11)
    R = 0.01 * rng.standard_t(3, size=(400, 3)) * np.exp(0.5 * rng.standard_normal((400, 1)))
    P = 1.0 + np.vstack([np.zeros((1, 3)), np.cumsum(R, axis=0)])
    path = pr.trigger_sensitivity_path(spec, P)
    assert np.all(path["s_f"] <= worst * (1 + BOUND_SLACK))
    assert np.max(path["s_f"]) > 0


def test_one_sided_derivative_at_a_tie_in_the_order_statistic():
    # HS VaR with n = 2 and the last loss tied with an earlier one at the 2nd largest: pushing the last loss up makes
    # it the active scenario (slope ||h|| in Gamma), pushing it down leaves the tie partner active (slope 0); the
    # one-sided derivative along the sale is positive whatever the gradient at the kink itself says
    h = np.array([0.6, 0.8])
    spec = pr.PortfolioRisk("hs_var", tuple(h), window=20, level=0.9)  # n = 2
    losses = np.zeros(20)
    losses[0], losses[5], losses[-1] = 0.03, 0.01, 0.01
    u = h / (h @ h)
    P = 1.0 + np.vstack([np.zeros((1, 2)), np.cumsum(-losses[:, None] * u[None, :], axis=0)])
    loc = pr.local_trigger_sensitivity(spec, P)
    k = pr.value_per_vol(spec)
    assert np.allclose(loc.d, -h / np.linalg.norm(h), rtol=AD_RTOL)
    assert loc.c_r == pytest.approx(2 * (0.01 / k) * np.linalg.norm(h) / k, rel=AD_RTOL)
    assert loc.c_r == pytest.approx(_fd_one_sided(spec, P, loc.d), rel=FD_RTOL)
    assert _fd_one_sided(spec, P, -loc.d) == pytest.approx(0.0, abs=FD_RTOL * loc.c_r)


def test_one_sided_derivative_where_the_gradient_vanishes():
    # independent scan, contract 2 flat over the window: sigma_2 = 0, so dGamma/dP_2 = 0 at the point, but a push of
    # either sign gives sigma_2 = |dP|/sqrt(m): the one-sided slope of r = (Gamma/k)^2 in P_2 is 2 (Gamma/k) |h_2|/sqrt(m),
    # and in P_1 it is the gradient 2 (Gamma/k) |h_1| R_t1 / (m sigma_1); c_r is the norm of the two
    m, h = 12, np.array([0.6, -0.8])
    spec = pr.PortfolioRisk("scan", tuple(h), window=m, scan_netting="independent")
    R = np.zeros((m, 2))
    R[:, 0] = 0.01 * np.random.default_rng(2).standard_normal(m)
    P = 1.0 + np.vstack([np.zeros((1, 2)), np.cumsum(R, axis=0)])
    sig1 = math.sqrt(np.mean(R[:, 0] ** 2))
    g_over_k = abs(h[0]) * sig1
    expected = 2 * g_over_k * np.array([abs(h[0]) * R[-1, 0] / (m * sig1), abs(h[1]) / math.sqrt(m)])
    loc = pr.local_trigger_sensitivity(spec, P)
    assert loc.gradient[1] == 0.0
    assert loc.c_r == pytest.approx(np.linalg.norm(expected), rel=AD_RTOL)
    assert abs(loc.d[0]) == pytest.approx(abs(expected[0]) / np.linalg.norm(expected), rel=DIR_RTOL)
    assert loc.c_r == pytest.approx(_fd_one_sided(spec, P, loc.d), rel=FD_RTOL)


def test_sensitivity_path_agrees_with_a_loop():
    spec = pr.PortfolioRisk("hs_es", (0.4, 0.6), window=30, level=0.9)
    P = _window(45, 2)
    path = pr.trigger_sensitivity_path(spec, P)
    assert path["end"].tolist() == list(range(30, 45))
    for j, t in enumerate(path["end"]):
        loc = pr.local_trigger_sensitivity(spec, P[: t + 1])
        assert path["c_r"][j] == pytest.approx(loc.c_r, rel=EXACT_RTOL, abs=1e-300)
        assert path["r"][j] == pytest.approx(loc.r, rel=EXACT_RTOL)
        assert np.allclose(path["d"][j], loc.d, rtol=EXACT_RTOL, atol=1e-15)


def test_data_mode_returns_local_values():
    spec = pr.PortfolioRisk("ewma", (0.5, 0.5), window=50)
    P = _window(80, 2)
    d, s_f, det = pr.trigger_and_sensitivity(spec, P)
    loc = pr.local_trigger_sensitivity(spec, P)
    assert det.mode == "data" and det.local.c_r == loc.c_r
    assert s_f == pytest.approx(loc.c_r / (2 * math.sqrt(loc.r)), rel=EXACT_RTOL)
    _, worst, _ = pr.trigger_and_sensitivity(spec)
    assert s_f <= worst * (1 + BOUND_SLACK)


# ----------------------------------------------------------------------------------------------
# Gaussian windows: VaR / ES / scan against the normal closed form
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gaussian_marks():
    cov = np.array([[1.0, 0.3], [0.3, 2.25]]) * 1e-4  # vols 1% and 1.5%, correlation 0.2
    R = np.random.default_rng(5).multivariate_normal(np.zeros(2), cov, size=GAUSS_DAYS)
    return 1.0 + np.vstack([np.zeros((1, 2)), np.cumsum(R, axis=0)]), cov


def test_historical_var_es_match_the_normal_closed_form(gaussian_marks):
    P, cov = gaussian_marks
    h = np.array([0.5, 0.5])
    sigma_p = math.sqrt(h @ cov @ h)
    z = norm.ppf(0.99)
    var = pr.PortfolioRisk("hs_var", tuple(h), window=GAUSS_DAYS, horizon_days=2.0)
    es = pr.PortfolioRisk("hs_es", tuple(h), window=GAUSS_DAYS)
    assert float(pr.portfolio_risk_value(var, P)) == pytest.approx(math.sqrt(2) * z * sigma_p, rel=GAUSS_RTOL)
    assert float(pr.portfolio_risk_value(es, P)) == pytest.approx(norm.pdf(z) / 0.01 * sigma_p, rel=GAUSS_RTOL)
    # the variance equivalent is the portfolio variance
    assert float(pr.portfolio_risk_input(var, P)) == pytest.approx(sigma_p**2, rel=2 * GAUSS_RTOL)
    assert float(pr.portfolio_risk_input(es, P)) == pytest.approx(sigma_p**2, rel=2 * GAUSS_RTOL)


def test_filtered_var_standardised_quantile_is_normal(gaussian_marks):
    # FHS on the portfolio filter: Gamma / sigma_{m+1} is the quantile of the standardised losses, z_p for Gaussian
    # data up to the noise of the estimated vol, which fattens the standardised tail by about s^2 (1 + z^2)/2 with
    # s^2 = (1 - lambda)/(2 (1 + lambda)) the relative variance of the vol estimate: 0.4% at lambda = 0.995
    # (2.4% at 0.97, too close to the tolerance to test the quantile)
    P, cov = gaussian_marks
    h = np.array([0.5, 0.5])
    spec = pr.PortfolioRisk("fhs_var", tuple(h), window=GAUSS_DAYS, filter="portfolio", lam=0.995)
    y = np.diff(P, axis=0) @ h
    v = float(np.mean(y[:-1] ** 2))
    for yj in y:
        v = 0.995 * v + 0.005 * yj * yj
    assert float(pr.portfolio_risk_value(spec, P)) / math.sqrt(v) == pytest.approx(norm.ppf(0.99), rel=GAUSS_RTOL)


def test_scan_matches_vols(gaussian_marks):
    P, cov = gaussian_marks
    h = np.array([1.0, -0.5])
    vols = np.sqrt(np.diag(cov))
    joint = pr.PortfolioRisk("scan", tuple(h), window=GAUSS_DAYS)
    indep = pr.PortfolioRisk("scan", tuple(h), window=GAUSS_DAYS, scan_netting="independent")
    assert math.sqrt(float(pr.portfolio_risk_input(joint, P))) == pytest.approx(abs(h @ vols), rel=GAUSS_RTOL)
    assert math.sqrt(float(pr.portfolio_risk_input(indep, P))) == pytest.approx(np.abs(h) @ vols, rel=GAUSS_RTOL)


# ----------------------------------------------------------------------------------------------
# Invariances and the alignment of branches
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["variance", "realized_variance", "ewma", "hs_var", "hs_es", "fhs_var", "scan"])
def test_scaling_positions_scales_the_factor(kind):
    h = (0.5, 0.2, -0.3)
    d1, s1, _ = pr.trigger_and_sensitivity(pr.PortfolioRisk(kind, h, window=None if kind != "fhs_var" else 80))
    for c in (3.0, -0.5):
        d2, s2, _ = pr.trigger_and_sensitivity(pr.PortfolioRisk(kind, tuple(c * np.array(h)), window=None if kind != "fhs_var" else 80))
        assert s2 == pytest.approx(abs(c) * s1, rel=AD_RTOL)
        if kind == "scan":  # orthant: the same set of directions up to signs
            assert np.allclose(np.abs(d2), np.abs(d1), rtol=AD_RTOL)
        else:
            assert np.allclose(d2, np.sign(c) * d1, rtol=AD_RTOL)


@pytest.mark.parametrize("kind", ["realized_variance", "hs_es", "fhs_es", "scan"])
def test_permuting_contracts_permutes_d(kind):
    h = np.array([0.5, 0.2, -0.3])
    perm = np.array([2, 0, 1])
    win = None if kind != "fhs_es" else 80
    d1, s1, _ = pr.trigger_and_sensitivity(pr.PortfolioRisk(kind, tuple(h), window=win))
    d2, s2, _ = pr.trigger_and_sensitivity(pr.PortfolioRisk(kind, tuple(h[perm]), window=win))
    assert s2 == pytest.approx(s1, rel=AD_RTOL)
    assert np.allclose(d2, d1[perm], rtol=AD_RTOL)
    # on data: permuting the columns of the window permutes the local direction
    spec1 = pr.PortfolioRisk(kind, tuple(h), window=win)
    spec2 = pr.PortfolioRisk(kind, tuple(h[perm]), window=win)
    P = _window(spec1.window + 1, 3)
    l1, l2 = pr.local_trigger_sensitivity(spec1, P), pr.local_trigger_sensitivity(spec2, P[:, perm])
    assert l2.c_r == pytest.approx(l1.c_r, rel=AD_RTOL)
    assert np.allclose(l2.d, l1.d[perm], rtol=AD_RTOL, atol=1e-15)


def test_scan_orthant_every_sign_pattern_is_reachable_and_alignment_is_their_max():
    h = np.array([0.6, -0.3, 0.2])
    spec = pr.PortfolioRisk("scan", tuple(h), window=10, scan_netting="independent")
    _, s_f, det = pr.trigger_and_sensitivity(spec)
    assert det.branches[0].orthant
    seen = set()
    for signs in itertools.product((-1.0, 1.0), repeat=3):
        R = np.zeros((10, 3))
        R[-1] = 0.01 * np.array(signs) * np.array([1.0, 2.0, 1.5])
        P = 1.0 + np.vstack([np.zeros((1, 3)), np.cumsum(R, axis=0)])
        loc = pr.local_trigger_sensitivity(spec, P)
        assert loc.s_f == pytest.approx(s_f, rel=AD_RTOL)
        assert np.allclose(np.abs(loc.d), np.abs(h) / np.linalg.norm(h), rtol=AD_RTOL)
        seen.add(tuple(np.sign(loc.d)))
    assert len(seen) == 8
    A = np.array([[0.3, 0.1, 0.0], [0.1, 0.2, 0.05], [0.0, 0.05, 0.25]])
    B = np.array([2.0, -1.0, 0.5])
    brute = max(float(alignment(np.array(s) * np.abs(h) / np.linalg.norm(h), A, B)) for s in itertools.product((-1.0, 1.0), repeat=3))
    assert det.branches[0].alignment(A, B) == pytest.approx(brute, rel=EXACT_RTOL)
    assert det.cap_product(A, B) == pytest.approx(s_f * brute, rel=EXACT_RTOL)


def test_gain_branch_enters_the_alignment_when_liquidation_opposes_the_portfolio():
    # variance input, h long both contracts, but the constrained sector is short: B < 0, so -d'AB > 0 for d = +h
    spec = pr.PortfolioRisk("variance", (0.5, 0.5))
    d, s_f, det = pr.trigger_and_sensitivity(spec)
    A, B, _ = two_asset_matrices(0.3, alpha=0.2, c=4.5)
    A, B = np.asarray(A), -np.asarray(B)
    assert float(alignment(d, A, B)) == 0.0  # the sale trigger is harmless ...
    expected = 0.2 * 4.5 * 1.3 / math.sqrt(2)  # ... the purchase trigger is (90) with the sign turned
    assert det.alignment(A, B) == pytest.approx(expected, rel=AD_RTOL)


def test_d6_two_asset_example_from_the_functional():
    # D.6: A = alpha [[1, rho], [rho, 1]], B = (c/2)(1, 1), d = -(1, 1)/sqrt(2): psi = alpha c (1 + rho)/sqrt(2) (90)
    alpha, c, rho = 0.2, 4.5, 0.5
    A = pr.correlation_impact([alpha, alpha], rho)
    A_paper, B_paper, d_paper = (np.asarray(x) for x in two_asset_matrices(rho, alpha, c))
    assert np.allclose(A, A_paper, rtol=EXACT_RTOL)
    B = pr.liquidation_from_elasticity([0.5, 0.5], 0.225, 0.05)  # (76): eps tau / m = 0.225 x 0.5 / 0.05 = c/2 each
    assert np.allclose(B, B_paper, rtol=EXACT_RTOL)
    d, s_f, det = pr.trigger_and_sensitivity(pr.PortfolioRisk("variance", (0.5, 0.5)))
    assert np.allclose(d, d_paper, rtol=AD_RTOL)
    assert det.alignment(A, B) == pytest.approx(alpha * c * (1 + rho) / math.sqrt(2), rel=AD_RTOL)
    assert float(price_pressure_scale(A, B)) == pytest.approx(alpha * c * (1 + rho) / math.sqrt(2), rel=EXACT_RTOL)  # (89)


# ----------------------------------------------------------------------------------------------
# Validation
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"kind": "garch"}, r"portfolio\.risk\.kind = 'garch' is not one of"),
        ({"kind": "hs_var", "level": 1.2}, r"portfolio\.risk\.level = 1\.2 must be in \(0\.5, 1\)\."),
        ({"kind": "hs_var", "level": 0.5}, r"portfolio\.risk\.level = 0\.5 must be in \(0\.5, 1\)\."),
        ({"kind": "ewma", "lam": 1.0}, r"portfolio\.risk\.lam = 1\.0 must be in \(0, 1\)\."),
        ({"kind": "realized_variance", "window": 0}, r"portfolio\.risk\.window = 0 must be a positive whole number"),
        ({"kind": "realized_variance", "window": 2.5}, r"portfolio\.risk\.window = 2\.5 must be a positive whole number"),
        ({"kind": "variance", "window": 5}, r"portfolio\.risk\.window = 5 must be 1 for kind = 'variance'"),
        ({"kind": "fhs_var", "window": 1}, r"portfolio\.risk\.window = 1 must be at least 2"),
        ({"kind": "variance", "positions": ()}, r"portfolio\.risk\.positions = \(\) must be a non-empty list"),
        ({"kind": "variance", "positions": (0.0, 0.0)}, r"not all zero"),
        ({"kind": "variance", "positions": (1.0, float("nan"))}, r"portfolio\.risk\.positions = .* finite"),
        ({"kind": "variance", "positions": ("a",)}, r"portfolio\.risk\.positions = \('a',\) must be a list of numbers"),
        ({"kind": "hs_var", "horizon_days": 0}, r"portfolio\.risk\.horizon_days = 0 must be a positive number\."),
        ({"kind": "fhs_var", "filter": "garch"}, r"portfolio\.risk\.filter = 'garch' is not one of contract, portfolio\."),
        ({"kind": "scan", "scan_multiplier": -1.0}, r"portfolio\.risk\.scan_multiplier = -1\.0 must be a positive number\."),
        ({"kind": "scan", "scan_steps": 0}, r"portfolio\.risk\.scan_steps = 0 must be a positive whole number"),
        ({"kind": "scan", "vol_shift": 1.0}, r"portfolio\.risk\.vol_shift = 1\.0 must be in \[0, 1\)\."),
        ({"kind": "scan", "scan_netting": "spread"}, r"portfolio\.risk\.scan_netting = 'spread' is not one of joint, independent\."),
        ({"kind": "fhs_es", "tail_ratio": 0.0}, r"portfolio\.risk\.tail_ratio = 0\.0 must be a positive number\."),
    ],
)
def test_spec_validation(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        pr.PortfolioRisk(**kwargs)


def test_marks_validation():
    spec = pr.PortfolioRisk("realized_variance", (0.5, 0.5), window=5)
    with pytest.raises(InputError, match=r"must have shape \(rows, 2\)"):
        pr.portfolio_risk_value(spec, np.ones((6, 3)))
    with pytest.raises(InputError, match=r"has 4 rows but portfolio\.risk\.window = 5 needs at least 6"):
        pr.portfolio_risk_value(spec, np.ones((4, 2)))
    with pytest.raises(InputError, match=r"only finite marks"):
        pr.local_trigger_sensitivity(spec, np.full((6, 2), np.nan))
    with pytest.raises(InputError, match=r"side = 'gain' has no worst case for kind = 'hs_var'"):
        pr.worst_case_window(pr.PortfolioRisk("hs_var"), "gain")
    with pytest.raises(InputError, match=r"tail_ratio = 0\.3 is too small"):
        pr.trigger_and_sensitivity(pr.PortfolioRisk("fhs_var", tail_ratio=0.3))


# ----------------------------------------------------------------------------------------------
# Impact matrices (Assumption 6, footnote 15) and liquidation vectors (26)
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "A, match",
    [
        (np.ones((2, 3)), r"has shape \(2, 3\); it must be a square K x K matrix"),
        (np.array([[0.2, np.inf], [np.inf, 0.2]]), r"has a non-finite entry"),
        (np.array([[0.2, 0.1], [0.0, 0.2]]), r"is not symmetric .* dynamic arbitrage \(Schneider and Lillo 2019"),
        (np.array([[0.2, 0.0], [0.0, -0.1]]), r"portfolio\.impact\[1\]\[1\] = -0\.1 must be positive: .* \(Assumption 6\)"),
        (np.array([[0.2, 0.3], [0.3, 0.2]]), r"is not positive definite .* a non-PSD impact matrix is itself an arbitrage \(footnote 15\)"),
        (np.array([[0.2, 0.2], [0.2, 0.2]]), r"is not positive definite"),
    ],
)
def test_check_impact_matrix_refuses(A, match):
    with pytest.raises(ConfigError, match=match):
        pr.check_impact_matrix(A)


def test_footnote15_round_trip_cost_is_negative_for_a_refused_matrix():
    # the reason for the refusal: along the eigenvector with a negative eigenvalue, q^2 v'Av < 0 (footnote 15)
    A = np.array([[0.2, 0.3], [0.3, 0.2]])
    w, V = np.linalg.eigh(A)
    assert V[:, 0] @ A @ V[:, 0] < 0
    assert np.allclose(pr.check_impact_matrix(np.diag([0.2, 0.1])), np.diag([0.2, 0.1]), rtol=EXACT_RTOL)


def test_diagonal_and_correlation_impact():
    assert np.allclose(pr.diagonal_impact([0.2, 0.1]), np.diag([0.2, 0.1]), rtol=EXACT_RTOL)
    C = np.array([[1.0, 0.4, -0.2], [0.4, 1.0, 0.1], [-0.2, 0.1, 1.0]])
    a = np.array([0.2, 0.05, 0.1])
    A = pr.correlation_impact(a, C)
    assert np.allclose(A, np.sqrt(np.outer(a, a)) * C, rtol=EXACT_RTOL)
    with pytest.raises(InputError, match=r"correlation must be a symmetric correlation matrix"):
        pr.correlation_impact(a, 2 * C)
    with pytest.raises(InputError, match=r"alphas must be positive"):
        pr.diagonal_impact([0.2, 0.0])
    # return correlation from marks, against NumPy's definition on the returns
    P = _window(300, 3)
    assert np.allclose(pr.return_correlation(P), np.corrcoef(np.diff(P, axis=0).T), rtol=EXACT_RTOL)


def _random_pd(K, rng, scale):
    X = rng.standard_normal((K, K + 2))
    return scale * (X @ X.T) / (K + 2)


def test_kyle_impact_properties():
    rng = np.random.default_rng(9)
    for K in (1, 2, 4):
        S = _random_pd(K, rng, 1e-4)
        O = _random_pd(K, rng, 0.0025)
        L = pr.kyle_impact(S, O)
        assert np.allclose(L, L.T, rtol=0, atol=EXACT_RTOL * np.abs(L).max())
        assert np.min(np.linalg.eigvalsh(L)) > 0
        assert np.allclose(L @ O @ L, S, rtol=1e-8, atol=1e-8 * np.abs(S).max())  # Lambda Omega Lambda = Sigma
        # scaling: Sigma -> c Sigma scales Lambda by sqrt(c); Omega -> c Omega by 1/sqrt(c)
        assert np.allclose(pr.kyle_impact(4 * S, O), 2 * L, rtol=1e-8)
        assert np.allclose(pr.kyle_impact(S, 4 * O), L / 2, rtol=1e-8)
    # K = 1: sigma / sigma_Q; 1% daily vol and order-flow sd of 5% of ADV give 0.2, the benchmark alpha (75)
    assert float(pr.kyle_impact([[1e-4]], [[0.0025]])[0, 0]) == pytest.approx(0.2, rel=EXACT_RTOL)
    # commuting (diagonal) inputs: Lambda = Sigma^(1/2) Omega^(-1/2) entry by entry
    assert np.allclose(pr.kyle_impact(np.diag([1e-4, 4e-4]), np.diag([0.01, 0.04])), np.diag([0.1, 0.1]), rtol=EXACT_RTOL)


def test_kyle_impact_rescaled_to_given_alphas():
    S = np.array([[1e-4, 0.6e-4], [0.6e-4, 2.25e-4]])
    O = np.array([[0.0025, 0.0005], [0.0005, 0.0016]])
    L = pr.kyle_impact(S, O, alphas=[0.2, 0.3])
    assert np.allclose(np.diag(L), [0.2, 0.3], rtol=EXACT_RTOL)
    base = pr.kyle_impact(S, O)
    corr = lambda M: M / np.sqrt(np.outer(np.diag(M), np.diag(M)))  # noqa: E731
    assert np.allclose(corr(L), corr(base), rtol=EXACT_RTOL)  # the cross-structure is kept
    with pytest.raises(InputError, match=r"return_covariance is not positive definite"):
        pr.kyle_impact(np.array([[1.0, 2.0], [2.0, 1.0]]) * 1e-4, O)


def test_liquidation_from_elasticity_is_76_per_contract():
    B = pr.liquidation_from_elasticity([1.0, -0.5, 0.0], [0.225, 0.3, 0.2], 0.05)
    assert B[0] == pytest.approx(float(liquidation_slope(0.225, 1.0, 0.05)), rel=EXACT_RTOL)  # 4.5, the benchmark c_eff
    assert B[1] == pytest.approx(-0.3 * 0.5 / 0.05, rel=EXACT_RTOL)  # a short is bought back
    assert B[2] == 0.0


def test_liquidation_from_accounts_reduces_to_63():
    rng = np.random.default_rng(4)
    E = rng.uniform(0.01, 0.1, 50)
    x = rng.uniform(0.1, 2.0, 50)
    w = rng.uniform(0.5, 2.0, 50)
    B = pr.liquidation_from_accounts(E, x, 0.06, mass=w)
    assert B.shape == (1,)
    assert B[0] == pytest.approx(c_eff_from_accounts(E, x, 0.06, w), rel=EXACT_RTOL)


def test_liquidation_from_accounts_two_contracts_by_hand():
    # account 1: E = 0.1, targets (2, -1) -> gross 3, binds at M = 0.05 (3 x 0.05 = 0.15 >= 0.1): shares (2/3, -1/3)
    # account 2: E = 0.5, targets (1, 1) -> gross 2, slack (0.1 < 0.5)
    # B = (1/M^2) E_1 share_1 / 2 accounts = (0.1 / 0.0025) (2/3, -1/3) / 2 = (40/3, -20/3); per ADV (2, 4)
    B = pr.liquidation_from_accounts([0.1, 0.5], [[2.0, -1.0], [1.0, 1.0]], 0.05, adv=[2.0, 4.0])
    assert np.allclose(B, [40 / 3 / 2, -20 / 3 / 4], rtol=EXACT_RTOL)
    with pytest.raises(InputError, match=r"targets must have shape \(2, K\)"):
        pr.liquidation_from_accounts([0.1, 0.5], np.ones((3, 2)), 0.05)
