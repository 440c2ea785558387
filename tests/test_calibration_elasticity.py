"""Elasticity regression with Newey-West standard errors: coverage, shrinking interval, input errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from margin_design.calibration.elasticity import (
    MIN_OBSERVATIONS,
    estimate_elasticity,
    hac_ols,
    newey_west_lags,
    read_elasticity_csv,
)
from margin_design.errors import InputError

#: True elasticity used in the simulations.
TRUE_EPS = 0.3
#: Monte Carlo design of the coverage check: simulations, sample size, AR(1) persistence of the margin
#: changes and of the position shocks (autocorrelation is what HAC errors are for).
N_SIMULATIONS = 500
N_OBS = 500
AR_COEF = 0.3
CONFIDENCE = 0.95
#: Allowed gap between empirical and nominal coverage: ~3 binomial standard errors at 500 simulations
#: (sqrt(0.95 x 0.05 / 500) = 0.0097), which also absorbs HAC's small finite-sample under-coverage.
COVERAGE_TOLERANCE = 0.03
#: Interval widths should shrink like 1/sqrt(n): 4x the data -> about half the width.
WIDTH_RATIO_BOUNDS = (0.35, 0.65)
#: Float tolerance for algebraic identities.
IDENTITY_RTOL = 1e-10
#: statsmodels' HAC regression against the hand-written reference below: the same sums in a different order.
CROSS_CHECK_RTOL = 1e-9


def newey_west_covariance(regressors: np.ndarray, residuals: np.ndarray, lags: int) -> np.ndarray:
    """The project's hand-written HAC covariance before statsmodels replaced it (kept as an independent reference).

    ``(X'X)^-1 S (X'X)^-1 x n/(n-k)`` with Bartlett weights ``1 - l/(L+1)`` and
    ``S = sum_t u_t^2 x_t x_t' + sum_{l=1}^{L} w_l sum_t u_t u_{t-l} (x_t x_{t-l}' + x_{t-l} x_t')``.
    """
    x = np.asarray(regressors, dtype=float)
    u = np.asarray(residuals, dtype=float)
    n, k = x.shape
    xu = x * u[:, None]
    s = xu.T @ xu
    for lag in range(1, int(lags) + 1):
        w = 1.0 - lag / (lags + 1.0)
        g = xu[lag:].T @ xu[:-lag]
        s += w * (g + g.T)
    bread = np.linalg.inv(x.T @ x)
    return bread @ s @ bread * (n / (n - k))


def reference_estimate(margin, position, distributed_lags=0, confidence=0.95, hac_lags=None):
    """The former production estimator, line for line: lstsq, the reference covariance, Student-t interval."""
    from scipy import stats

    dm, dx = np.diff(np.log(margin)), np.diff(np.log(position))
    lags = distributed_lags
    n, k = dm.size - lags, lags + 2
    design = np.column_stack([np.ones(n)] + [dm[lags - j : lags - j + n] for j in range(lags + 1)])
    y = dx[lags:]
    beta, *_ = np.linalg.lstsq(design, y, rcond=None)
    nw = newey_west_lags(n) if hac_lags is None else hac_lags
    cov = newey_west_covariance(design, y - design @ beta, nw)
    sel = np.r_[0.0, np.ones(k - 1)]
    eps, se = -float(sel @ beta), math.sqrt(float(sel @ cov @ sel))
    q = float(stats.t.ppf(0.5 + confidence / 2.0, n - k))
    return {"epsilon": eps, "std_error": se, "ci": (eps - q * se, eps + q * se), "beta": beta, "cov": cov, "hac_lags": nw}


def simulate(rng: np.random.Generator, n: int, eps: float = TRUE_EPS, phi: float = AR_COEF):
    """Levels of margin and position with dlog X = 0.001 - eps dlog M + u, AR(1) dlog M and u."""
    e = rng.standard_normal(n) * 0.05
    v = rng.standard_normal(n) * 0.02
    dm = np.empty(n)
    u = np.empty(n)
    dm[0], u[0] = e[0], v[0]
    for t in range(1, n):
        dm[t] = phi * dm[t - 1] + e[t]
        u[t] = phi * u[t - 1] + v[t]
    dx = 0.001 - eps * dm + u
    margin = 0.05 * np.exp(np.concatenate([[0.0], np.cumsum(dm)]))
    position = 100.0 * np.exp(np.concatenate([[0.0], np.cumsum(dx)]))
    return margin, position


def test_interval_covers_the_true_elasticity_at_the_stated_rate():
    rng = np.random.default_rng(20260101)
    hits = 0
    for _ in range(N_SIMULATIONS):
        m, x = simulate(rng, N_OBS)
        est = estimate_elasticity(m, x, confidence=CONFIDENCE)
        hits += est.ci_low <= TRUE_EPS <= est.ci_high
    coverage = hits / N_SIMULATIONS
    assert abs(coverage - CONFIDENCE) <= COVERAGE_TOLERANCE, coverage


def test_interval_shrinks_as_the_sample_grows():
    rng = np.random.default_rng(7)
    widths = {}
    for n in (250, 1000, 4000):
        w = []
        for _ in range(40):
            m, x = simulate(rng, n)
            est = estimate_elasticity(m, x)
            w.append(est.ci_high - est.ci_low)
        widths[n] = float(np.mean(w))
    assert widths[1000] < widths[250] and widths[4000] < widths[1000]
    for small, big in ((250, 1000), (1000, 4000)):
        lo, hi = WIDTH_RATIO_BOUNDS
        assert lo <= widths[big] / widths[small] <= hi


def test_exact_recovery_and_distributed_lags():
    rng = np.random.default_rng(3)
    dm = rng.standard_normal(300) * 0.05
    # noise-free response spread over today and yesterday: -0.2 dm_t - 0.1 dm_{t-1} -> cumulative epsilon 0.3
    dx = -0.2 * dm + np.concatenate([[0.0], -0.1 * dm[:-1]])
    m = np.exp(np.concatenate([[0.0], np.cumsum(dm)]))
    x = np.exp(np.concatenate([[0.0], np.cumsum(dx)]))
    est = estimate_elasticity(m, x, distributed_lags=1)
    assert est.epsilon == pytest.approx(0.3, rel=IDENTITY_RTOL)
    assert est.coefficients[1:] == pytest.approx([-0.2, -0.1], rel=IDENTITY_RTOL)
    assert est.n_obs == 300 - 1  # 301 levels -> 300 changes, one lost to the distributed lag


def test_newey_west_lag_rule_and_zero_lag_is_white():
    assert newey_west_lags(100) == 4
    assert newey_west_lags(500) == math.floor(4 * 5 ** (2 / 9))
    rng = np.random.default_rng(1)
    x = np.column_stack([np.ones(50), rng.standard_normal(50)])
    y = x @ np.array([0.3, -0.7]) + rng.standard_normal(50) * (1.0 + np.abs(x[:, 1]))  # heteroskedastic noise
    fit = hac_ols(x, y, 0)
    u = fit.resid
    # White (1980) HC0 times the n/(n-k) factor, written out
    white = np.linalg.inv(x.T @ x) @ (x.T * u**2) @ x @ np.linalg.inv(x.T @ x) * 50 / 48
    assert np.allclose(newey_west_covariance(x, u, 0), white, rtol=IDENTITY_RTOL)
    assert np.allclose(fit.cov_params(), white, rtol=IDENTITY_RTOL)
    # and statsmodels' own heteroskedasticity-robust path: HC1 = HC0 x n/(n-k)
    import statsmodels.api as sm

    assert np.allclose(sm.OLS(y, x).fit(cov_type="HC1").cov_params(), white, rtol=IDENTITY_RTOL)


def test_hac_of_a_mean_matches_the_long_run_variance_closed_form():
    # Intercept-only regression: beta = mean(y), and the Bartlett HAC variance of the mean is the long-run variance
    # (gamma_0 + 2 sum_l (1 - l/(L+1)) gamma_l) / n, gamma_l = (1/n) sum_t u_t u_{t-l}, times n/(n-1).
    rng = np.random.default_rng(17)
    e = rng.standard_normal(400)
    y = 0.5 + e + 0.6 * np.r_[0.0, e[:-1]]  # MA(1): autocorrelated
    lags = 6
    u = y - y.mean()
    n = y.size
    gamma = [float(u[l:] @ u[: n - l]) / n for l in range(lags + 1)]
    long_run = gamma[0] + 2.0 * sum((1.0 - l / (lags + 1.0)) * gamma[l] for l in range(1, lags + 1))
    fit = hac_ols(np.ones((n, 1)), y, lags)
    assert fit.params[0] == pytest.approx(y.mean(), rel=IDENTITY_RTOL)
    assert fit.cov_params()[0, 0] == pytest.approx(long_run / n * n / (n - 1), rel=IDENTITY_RTOL)


@pytest.mark.parametrize("distributed_lags, hac_lags", [(0, None), (2, None), (1, 0), (0, 12)])
def test_statsmodels_reproduces_the_hand_written_estimator_on_synthetic_data(distributed_lags, hac_lags):
    rng = np.random.default_rng(100 + distributed_lags)
    m, x = simulate(rng, 700)
    _assert_same(m, x, distributed_lags, hac_lags)


@pytest.mark.parametrize("distributed_lags", [0, 3])
def test_statsmodels_reproduces_the_hand_written_estimator_on_real_data(distributed_lags):
    # Real, autocorrelated and heteroskedastic series: the S&P 500 close and share volume shipped with arch
    # (arch.data.sp500), 2008-2010, standing in for margin and position (only the estimator is under test).
    from arch.data import sp500

    frame = sp500.load().loc["2008-01-01":"2010-12-31"]
    _assert_same(frame["Close"].to_numpy(float), frame["Volume"].to_numpy(float), distributed_lags, None)


def _assert_same(m, x, distributed_lags, hac_lags):
    ref = reference_estimate(m, x, distributed_lags, CONFIDENCE, hac_lags)
    est = estimate_elasticity(m, x, distributed_lags=distributed_lags, confidence=CONFIDENCE, hac_lags=hac_lags)
    assert est.hac_lags == ref["hac_lags"]
    assert est.coefficients == pytest.approx(ref["beta"], rel=CROSS_CHECK_RTOL, abs=1e-14)
    assert np.allclose(est.covariance, ref["cov"], rtol=CROSS_CHECK_RTOL, atol=0.0)
    assert est.epsilon == pytest.approx(ref["epsilon"], rel=CROSS_CHECK_RTOL)
    assert est.std_error == pytest.approx(ref["std_error"], rel=CROSS_CHECK_RTOL)
    assert (est.ci_low, est.ci_high) == pytest.approx(ref["ci"], rel=CROSS_CHECK_RTOL)


def test_cap_at_the_interval_ends_is_monotone():
    rng = np.random.default_rng(11)
    m, x = simulate(rng, 400)
    est = estimate_elasticity(m, x)
    caps = est.cap_at_interval(turnover=1.0, participation=0.01, margin=0.05)
    lo = caps["ci_low"]["cap"]["relative_dvol_annual"]
    mid = caps["estimate"]["cap"]["relative_dvol_annual"]
    hi = caps["ci_high"]["cap"]["relative_dvol_annual"]
    # the cap scales like 1/epsilon (80): the upper end of the interval gives the tighter cap
    assert lo > mid > hi
    assert mid * est.epsilon == pytest.approx(hi * est.ci_high, rel=IDENTITY_RTOL)


def test_cap_is_unbounded_where_the_interval_reaches_zero():
    rng = np.random.default_rng(5)
    m, x = simulate(rng, 60, eps=0.0)
    est = estimate_elasticity(m, x)
    assert est.ci_low < 0
    assert est.cap_at_interval()["ci_low"] is None


def _write(tmp_path, text, name="series.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_csv_reader_sorts_dates_and_accepts_open_interest(tmp_path):
    rows = ["date,margin,open_interest"] + [f"2020-01-{d:02d},{0.05 + 0.001 * (d % 3)},{100 - d}" for d in range(30, 0, -1)]
    m, x, dates, col = read_elasticity_csv(_write(tmp_path, "\n".join(rows) + "\n"))
    assert col == "open_interest"
    assert dates[0] == "2020-01-01" and dates[-1] == "2020-01-30"
    assert x[0] == 99 and x[-1] == 70


@pytest.mark.parametrize(
    "text, match",
    [
        ("date,margin\n2020-01-01,0.05\n", "no column 'position' or 'open_interest'"),
        ("date,position\n2020-01-01,5\n", "no column 'margin'"),
        ("margin,position\n0.05,abc\n", "non-numeric value 'abc' in column 'position', row 2"),
        ("margin,position\n0.05,-1\n", "column 'position' of series.csv must be positive"),
        ("date,margin,position\n2020-01-01,0.05,1\n2020-01-01,0.06,2\n", "repeats the date 2020-01-01"),
        ("date,margin,position\n01/02/2020,0.05,1\n", "not an ISO date"),
    ],
)
def test_csv_errors(tmp_path, text, match):
    with pytest.raises(InputError, match=match):
        read_elasticity_csv(_write(tmp_path, text))


def test_too_few_observations_and_constant_margin():
    m = np.linspace(0.05, 0.06, MIN_OBSERVATIONS)  # MIN_OBSERVATIONS levels -> one fewer change
    with pytest.raises(InputError, match="needs at least 20 observations"):
        estimate_elasticity(m, np.linspace(1, 2, m.size))
    with pytest.raises(InputError, match="margin never changes"):
        estimate_elasticity(np.full(50, 0.05), np.linspace(1, 2, 50))
