"""Tests of the exact chain QP solver ``margin_design.solvers.chain``.

Problem: minimise sum_i a_i/2 (x_i - t_i)^2 s.t. 0 <= x_{i+1} - x_i <= u_i (notes
/work/shared/notes/chain-algorithms.md, sections 0, 1 and 6(a)). The references used here are independent
of the solver: scipy's PAVA for u = inf, an exact rational brute force over all active sets for small n,
and a KKT / duality-gap certificate computed from x alone (section 1).
"""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import isotonic_regression

from margin_design.solvers.chain import (
    FREE,
    POOLED,
    SATURATED,
    ChainQPResult,
    chain_qp,
    chain_qp_block_offsets,
    chain_qp_codes_to_blocks,
    polish_quadratic_blocks,
)

BACKENDS = ("numba", "python")
INF = np.inf
EPS = np.finfo(np.float64).eps

# Tolerances. Absolute tolerances on x are relative to the data scale 1 + max|t| unless stated otherwise.
SCIPY_RTOL = 1e-12  # u = inf versus scipy.optimize.isotonic_regression
BRUTE_RTOL = 1e-10  # versus the exact rational brute force
BACKEND_RTOL = 1e-12  # numba versus python backend
INVARIANCE_RTOL = 1e-10  # shift / scale / reversal invariances
POLISH_RTOL = 1e-14  # polished block levels versus exact rational block levels, relative to 1 + |x|
DP_RTOL = 1e-12  # DP solution versus exact rational block levels (weights within a factor ~1e7)
FEAS_RTOL = 1e-13  # feasibility 0 <= d <= u, relative to |x_i| + |x_{i+1}|
POLISH_FEAS_RTOL = 1e-9  # extra feasibility slack for polished x, relative to 1 + max|t| (see assert_certified)
SIGN_RTOL = 1e-9  # KKT sign residual, relative to sum_{j<=k} (|g_j| + a_j (max|t| + max|x|)); the DP's error
#                   grows with the spread of a (eps * max a / min a), which reaches 1e6 in the property test
ETA_RTOL = 1e-9  # duality gap eta relative to the objective (on top of its rounding floor, see certificate)
CROSSINGS_PER_ELEMENT_MAX = 20.0  # typical inputs (the notes measured about 1-7)
ZIGZAG_CROSSINGS_FACTOR = 10.0  # zig-zag: crossings / n <= factor * n^(1/3) (the notes measured ~2.3 n^(1/3))


# ---------------------------------------------------------------------------------------------------
# independent references


def scale_of(t) -> float:
    return 1.0 + float(np.max(np.abs(t)))


def objective(a, t, x) -> float:
    return 0.5 * float(np.sum(a * (x - t) ** 2))


def brute_force(a, t, u) -> np.ndarray:
    """Exact minimiser by enumerating every link status (free / pooled / saturated) in rational arithmetic.

    Each status vector fixes the blocks and their offsets, hence closed-form levels; the QP is strictly
    convex, so the feasible candidate with the least objective is the minimiser (exact comparisons).
    """
    n = len(t)
    A = [Fraction(float(v)) for v in a]
    T = [Fraction(float(v)) for v in t]
    U = [None if np.isinf(v) else Fraction(float(v)) for v in u]
    options = [(FREE, POOLED) if U[k] is None else (FREE, POOLED, SATURATED) for k in range(n - 1)]
    best_value, best_x = None, None
    for status in itertools.product(*options):
        offsets = [Fraction(0)] * n
        for j in range(1, n):
            if status[j - 1] == SATURATED:
                offsets[j] = offsets[j - 1] + U[j - 1]
            elif status[j - 1] == POOLED:
                offsets[j] = offsets[j - 1]
        starts = [0] + [k + 1 for k in range(n - 1) if status[k] == FREE] + [n]
        x = [Fraction(0)] * n
        for b0, b1 in zip(starts[:-1], starts[1:]):
            level = sum(A[j] * (T[j] - offsets[j]) for j in range(b0, b1)) / sum(A[b0:b1])
            for j in range(b0, b1):
                x[j] = level + offsets[j]
        feasible = all(
            x[k + 1] >= x[k] and (U[k] is None or x[k + 1] - x[k] <= U[k]) for k in range(n - 1)
        )
        if not feasible:
            continue
        value = sum(A[j] * (x[j] - T[j]) ** 2 for j in range(n))
        if best_value is None or value < best_value:
            best_value, best_x = value, x
    return np.array([float(v) for v in best_x])


def exact_block_levels(a, t, u, codes) -> np.ndarray:
    """Block levels x_j = L_B + s_j for the given codes, computed in rational arithmetic, then rounded."""
    n = len(t)
    x = np.empty(n)
    start = 0
    while start < n:
        stop = start + 1
        while stop < n and codes[stop - 1] != FREE:
            stop += 1
        offsets = [Fraction(0)]
        for j in range(start + 1, stop):
            offsets.append(offsets[-1] + (Fraction(float(u[j - 1])) if codes[j - 1] == SATURATED else 0))
        weights = [Fraction(float(a[j])) for j in range(start, stop)]
        level = sum(w * (Fraction(float(t[start + m])) - offsets[m]) for m, w in enumerate(weights)) / sum(weights)
        x[start:stop] = [float(level + o) for o in offsets]
        start = stop
    return x


def certificate(a, t, u, x, codes, feas_atol=0.0) -> dict:
    """KKT certificate of section 1, computed from (a, t, u, x, codes) only.

    Returns the scaled balance residual |G_{n-1}|, the worst scaled sign residual over the links (pooled:
    G_k <= 0, saturated: G_k >= 0, free: G_k = 0), the feasibility violation, and the duality-gap bound eta
    with the objective F. For eta, x is shifted by a constant so that G_{n-1} = 0 exactly (this keeps it
    feasible); the sign residual uses the unshifted prefix sums. Infinite bounds enter eta as
    max(t) - min(t), which no difference of the optimum exceeds.
    """
    a, t, u, x = (np.asarray(v, dtype=np.float64) for v in (a, t, u, x))
    g = a * (x - t)
    # The solver is backward stable relative to the data scale, so g_j carries errors ~ eps a_j data_scale.
    data_scale = float(np.max(np.abs(t)) + np.max(np.abs(x)))
    prefix_scale = np.cumsum(np.abs(g) + a * data_scale) + np.finfo(np.float64).tiny
    balance = abs(float(np.sum(g))) / prefix_scale[-1]
    G = np.cumsum(g)[:-1]
    pscale = prefix_scale[:-1]
    viol = np.where(
        codes == POOLED, np.maximum(G, 0), np.where(codes == SATURATED, np.maximum(-G, 0), np.abs(G))
    )
    sign_residual = float(np.max(viol / pscale)) if len(G) else 0.0
    d = np.diff(x)
    dtol = FEAS_RTOL * (np.abs(x[:-1]) + np.abs(x[1:])) + feas_atol + 1e-300
    feasibility = float(np.max(np.maximum(-d, d - u) / dtol)) if len(d) else 0.0
    # eta with the active links taken at their bounds (their rounding noise |d - bound| <= FEAS_RTOL |x| is
    # checked separately); otherwise that noise times large multipliers swamps eta (notes, section 1).
    u_eta = np.minimum(u, float(np.max(t) - np.min(t)))
    d_eta = np.where(codes == POOLED, 0.0, np.where(codes == SATURATED, u_eta, d))
    G = np.cumsum(a * (x - np.sum(g) / np.sum(a) - t))[:-1]  # balanced: G_{n-1} = 0
    eta = float(np.sum(np.maximum(-G, 0) * d_eta + np.maximum(G, 0) * np.maximum(u_eta - d_eta, 0)))
    # Rounding floor of eta: x itself is rounded, so each G_k carries errors of order eps * pscale_k, which
    # eta multiplies by the slack of the link (up to max(t) - min(t) on a free link with an infinite bound).
    eta_floor = EPS * float(np.sum(pscale * u_eta))
    F = objective(a, t, x)
    return dict(balance=balance, sign=sign_residual, feasibility=feasibility, eta=eta, eta_floor=eta_floor, F=F)


def assert_certified(a, t, u, res: ChainQPResult, *, polished: bool = False) -> dict:
    """Check feasibility, code consistency and the KKT certificate of ``res``.

    The DP's backward clip makes its x feasible up to one rounding per link. Polished x (block levels from
    the codes) may be infeasible on a free link by the DP's own error, when the true gap is that small, so
    for it the feasibility slack is POLISH_FEAS_RTOL * max|t|.
    """
    u = np.asarray(u, dtype=np.float64)
    x, codes = res.x, res.codes
    n = len(t)
    assert x.shape == (n,) and x.dtype == np.float64
    assert codes.shape == (n - 1,) and codes.dtype == np.int8
    assert np.all(np.isin(codes, (FREE, POOLED, SATURATED)))
    assert not np.any((codes == SATURATED) & np.isinf(u)), "an infinite bound cannot be saturated"
    d = np.diff(x)
    assert np.all(d[codes == POOLED] == 0.0), "POOLED links must have x_{i+1} == x_i exactly"
    sat = codes == SATURATED
    assert np.all(np.abs(d[sat] - u[sat]) <= FEAS_RTOL * (np.abs(x[:-1][sat]) + np.abs(x[1:][sat]) + u[sat]))
    cert = certificate(a, t, u, x, codes, POLISH_FEAS_RTOL * scale_of(t) if polished else 0.0)
    assert cert["feasibility"] <= 1.0, cert
    assert cert["balance"] <= SIGN_RTOL, cert
    assert cert["sign"] <= SIGN_RTOL, cert
    assert cert["eta"] <= ETA_RTOL * cert["F"] + cert["eta_floor"], cert
    return cert


def random_instance(rng, n, *, kind="random", inf_fraction=0.0):
    a = np.exp(rng.normal(size=n))
    if kind == "random":
        t = rng.normal(size=n) * 3
    elif kind == "walk":
        t = np.cumsum(rng.normal(0.3, 1.0, size=n))
    elif kind == "steep":
        t = np.cumsum(rng.uniform(1.0, 5.0, size=n))
    elif kind == "falling":
        t = -np.cumsum(rng.uniform(0.0, 2.0, size=n))
    else:
        raise AssertionError(kind)
    u = np.exp(rng.normal(size=n - 1)) * 0.5
    u[rng.random(n - 1) < inf_fraction] = INF
    return a, t, u


def zigzag(n):
    return (-1.0) ** np.arange(n) * np.arange(n)


# ---------------------------------------------------------------------------------------------------
# 1. u = inf: scipy's PAVA


def _isotonic_cases():
    rng = np.random.default_rng(11)
    cases = {}
    for n in (1, 2, 3, 10, 257, 2000):
        cases[f"iid-{n}"] = (np.exp(rng.normal(size=n)), rng.normal(size=n))
    n = 1500
    cases["walk"] = (rng.uniform(0.1, 10, n), np.cumsum(rng.normal(size=n)))
    cases["decreasing"] = (np.ones(n), -np.arange(n, dtype=float))
    cases["increasing"] = (rng.uniform(0.5, 2, n), np.arange(n, dtype=float) ** 1.5)
    cases["constant"] = (rng.uniform(0.5, 2, n), np.full(n, 3.25))
    cases["zigzag"] = (np.ones(n), zigzag(n))
    cases["weights-wide"] = (np.exp(rng.uniform(-20, 20, n)), rng.normal(size=n))
    cases["sawtooth"] = (np.ones(n), np.arange(n) % 17 - 0.5 * np.arange(n) / 17)
    cases["large-offset"] = (rng.uniform(0.5, 2, n), 1e6 + np.cumsum(rng.normal(size=n)))
    return cases


ISOTONIC_CASES = _isotonic_cases()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(ISOTONIC_CASES))
def test_isotonic_matches_scipy(name, backend):
    a, t = ISOTONIC_CASES[name]
    u = np.full(len(t) - 1, INF)
    res = chain_qp(a, t, u, backend=backend)
    ref = isotonic_regression(t, weights=a).x
    np.testing.assert_allclose(res.x, ref, rtol=0, atol=SCIPY_RTOL * scale_of(t))
    assert not np.any(res.codes == SATURATED)
    np.testing.assert_allclose(
        polish_quadratic_blocks(a, t, u, res.codes), ref, rtol=0, atol=SCIPY_RTOL * scale_of(t)
    )


@pytest.mark.parametrize("name", ["iid-257", "iid-2000", "walk", "weights-wide"])
def test_isotonic_blocks_match_scipy(name):
    """On continuous random data (no ties) the blocks are scipy's ``blocks`` without the trailing n."""
    a, t = ISOTONIC_CASES[name]
    res = chain_qp(a, t, np.full(len(t) - 1, INF))
    np.testing.assert_array_equal(chain_qp_codes_to_blocks(res.codes), isotonic_regression(t, weights=a).blocks[:-1])


# ---------------------------------------------------------------------------------------------------
# 2. brute force over all active sets (n <= 7)


def _brute_cases():
    rng = np.random.default_rng(22)
    cases = []
    for _ in range(60):
        n = int(rng.integers(1, 8))
        a = np.exp(rng.normal(size=n) * 1.5)
        t = rng.normal(size=n) * rng.choice([0.1, 1.0, 10.0])
        if rng.random() < 0.4:
            t = np.cumsum(np.abs(t))
        u = np.exp(rng.normal(size=n - 1) * 2.0) * rng.choice([1e-6, 0.1, 1.0, 1e6])
        u[rng.random(n - 1) < 0.2] = INF
        cases.append((a, t, u))
    for _ in range(30):  # integer data: ties and degenerate active sets
        n = int(rng.integers(2, 8))
        a = rng.integers(1, 4, n).astype(float)
        t = rng.integers(-3, 4, n).astype(float)
        u = rng.integers(1, 4, n - 1).astype(float)
        u[rng.random(n - 1) < 0.2] = INF
        cases.append((a, t, u))
    # regression: a large bound followed by small ones (a global right-stack offset loses the small ones)
    cases.append((np.ones(5), np.array([-50.0, 0.0, 10.0, 20.0, 30.0]), np.array([1e17, 1.0, 1.0, 1.0])))
    return cases


BRUTE_CASES = _brute_cases()


@pytest.mark.parametrize("backend", BACKENDS)
def test_brute_force_small(backend):
    for a, t, u in BRUTE_CASES:
        res = chain_qp(a, t, u, backend=backend)
        ref = brute_force(a, t, u)
        np.testing.assert_allclose(res.x, ref, rtol=0, atol=BRUTE_RTOL * scale_of(t), err_msg=f"{a=} {t=} {u=}")
        np.testing.assert_allclose(
            polish_quadratic_blocks(a, t, u, res.codes), ref, rtol=0, atol=BRUTE_RTOL * scale_of(t)
        )


def test_large_bound_then_small_bounds_keeps_relative_accuracy():
    """Positions shifted by a huge bound must stay accurate relative to their own size, not to sum(u)."""
    a = np.array([1.0, 2.0, 1.0, 0.5, 1.0, 1.0])
    t = np.array([0.0, 0.3, 10.0, 20.0, 30.0, 6e8])
    u = np.array([1e9, 0.7, 1.3, 1.1, INF])  # 1e9 < 2 (max t - min t): not reducible to inf
    ref = brute_force(a, t, u)
    for backend in BACKENDS:
        res = chain_qp(a, t, u, backend=backend)
        np.testing.assert_allclose(res.x, ref, rtol=1e-13, atol=1e-13)
        assert res.codes.tolist() == [FREE, SATURATED, SATURATED, SATURATED, FREE]


# ---------------------------------------------------------------------------------------------------
# 3. KKT certificate


def _certificate_cases():
    rng = np.random.default_rng(33)
    cases = {}
    for kind in ("random", "walk", "steep", "falling"):
        for inf_fraction in (0.0, 0.3):
            cases[f"{kind}-inf{inf_fraction}"] = random_instance(rng, 1200, kind=kind, inf_fraction=inf_fraction)
    n = 1000
    cases["saturated-only"] = (rng.uniform(0.5, 2, n), np.arange(n) * 10.0, rng.uniform(0.1, 1.0, n - 1))
    cases["pooled-only"] = (rng.uniform(0.5, 2, n), -np.arange(n) * 1.0, rng.uniform(0.1, 1.0, n - 1))
    cases["tiny-u"] = (rng.uniform(0.5, 2, n), rng.normal(size=n), np.full(n - 1, 1e-9))
    cases["mixed-u"] = (
        rng.uniform(0.5, 2, n),
        np.cumsum(rng.normal(0.5, 1, n)),
        np.where(rng.random(n - 1) < 0.5, 1e-6, 1e3),
    )
    cases["weights-wide"] = (np.exp(rng.uniform(-15, 15, n)), np.cumsum(rng.normal(0.3, 1, n)), rng.uniform(0.1, 1, n - 1))
    cases["large-offset"] = (np.ones(n), 1e6 + np.cumsum(rng.normal(0.3, 1, n)), rng.uniform(0.1, 1, n - 1))
    cases["zigzag"] = (np.ones(n), zigzag(n), np.full(n - 1, 2.5))
    return cases


CERT_CASES = _certificate_cases()


@pytest.mark.parametrize("name", sorted(CERT_CASES))
def test_certificate(name):
    a, t, u = CERT_CASES[name]
    res = chain_qp(a, t, u)
    assert_certified(a, t, u, res)
    polished = polish_quadratic_blocks(a, t, u, res.codes)
    assert_certified(a, t, u, ChainQPResult(x=polished, codes=res.codes, crossings=res.crossings), polished=True)
    exact = exact_block_levels(a, t, u, res.codes)
    assert np.max(np.abs(polished - exact) / (1 + np.abs(exact))) <= POLISH_RTOL
    if np.max(a) / np.min(a) <= 1e7:
        assert np.max(np.abs(res.x - exact) / (1 + np.abs(exact))) <= DP_RTOL


def test_wide_weights_need_polish():
    """With curvatures spread over ~13 orders of magnitude the DP loses digits on the light points (its
    pivot values carry rounding from steep segments), but the codes are right: the certificate holds and
    the polished block levels are exact."""
    rng = np.random.default_rng(34)
    n = 2000
    a, t, u = np.exp(rng.uniform(-15, 15, n)), np.cumsum(rng.normal(0.3, 1, n)), rng.uniform(0.1, 1, n - 1)
    res = chain_qp(a, t, u)
    assert_certified(a, t, u, res)
    exact = exact_block_levels(a, t, u, res.codes)
    polished = polish_quadratic_blocks(a, t, u, res.codes)
    assert np.max(np.abs(polished - exact) / (1 + np.abs(exact))) <= POLISH_RTOL
    assert np.max(np.abs(res.x - exact) / (1 + np.abs(exact))) <= 1e-6


def test_certificate_detects_a_wrong_answer():
    """The certificate is not vacuous: perturbed or mislabelled solutions fail it."""
    a, t, u = CERT_CASES["walk-inf0.0"]
    res = chain_qp(a, t, u)
    free = np.flatnonzero(res.codes == FREE)
    x_bad = res.x.copy()
    x_bad[free[0] + 1 :] += 1e-3  # still feasible if the free gap allows it; breaks stationarity
    bad = certificate(a, t, u, x_bad, res.codes)
    assert bad["sign"] > SIGN_RTOL or bad["feasibility"] > 1.0
    codes_bad = res.codes.copy()
    codes_bad[res.codes == POOLED] = SATURATED
    assert certificate(a, t, u, res.x, codes_bad)["sign"] > SIGN_RTOL


# ---------------------------------------------------------------------------------------------------
# 4. invariances


@pytest.mark.parametrize("backend", BACKENDS)
def test_invariances(backend):
    rng = np.random.default_rng(44)
    for kind in ("random", "walk"):
        a, t, u = random_instance(rng, 400, kind=kind, inf_fraction=0.2)
        x = chain_qp(a, t, u, backend=backend).x
        tol = INVARIANCE_RTOL * scale_of(t)
        for c in (-7.25, 1e3):
            np.testing.assert_allclose(chain_qp(a, t + c, u, backend=backend).x, x + c, rtol=0, atol=INVARIANCE_RTOL * (scale_of(t) + abs(c)))
        for c in (1e-6, 3.7, 1e8):
            np.testing.assert_allclose(chain_qp(c * a, t, u, backend=backend).x, x, rtol=0, atol=tol)
        rev = chain_qp(a[::-1], -t[::-1], u[::-1], backend=backend)
        np.testing.assert_allclose(rev.x, -x[::-1], rtol=0, atol=tol)


def test_power_of_two_weight_scaling_is_bitwise():
    a, t, u = random_instance(np.random.default_rng(45), 300, kind="walk")
    x = chain_qp(a, t, u).x
    np.testing.assert_array_equal(chain_qp(a * 2.0**40, t, u).x, x)


# ---------------------------------------------------------------------------------------------------
# 5. adversarial zig-zag and the crossing-count guard


@pytest.mark.parametrize("n", [1000, 10000])
def test_zigzag(n):
    rng = np.random.default_rng(n)
    a = rng.uniform(0.5, 2.0, n)
    t = zigzag(n)
    u = rng.uniform(0.1, 2.0, n - 1)
    res = chain_qp(a, t, u)
    assert_certified(a, t, u, res)
    res_py = chain_qp(a, t, u, backend="python")
    np.testing.assert_allclose(res_py.x, res.x, rtol=0, atol=BACKEND_RTOL * scale_of(t))
    np.testing.assert_array_equal(res_py.codes, res.codes)
    assert res_py.crossings == res.crossings
    assert res.crossings / n <= ZIGZAG_CROSSINGS_FACTOR * n ** (1 / 3)


@pytest.mark.parametrize("kind", ["iid", "walk", "walk-drift", "sawtooth", "steep"])
def test_crossing_count_guard(kind):
    n = 20000
    rng = np.random.default_rng(55)
    a = rng.uniform(0.5, 2.0, n)
    t = {
        "iid": rng.normal(size=n),
        "walk": np.cumsum(rng.normal(size=n)),
        "walk-drift": np.cumsum(rng.normal(0.3, 1.0, size=n)),
        "sawtooth": (np.arange(n) % 50) * 0.4,
        "steep": np.arange(n) * 3.0,
    }[kind]
    u = rng.uniform(0.1, 2.0, n - 1)
    res = chain_qp(a, t, u)
    assert res.crossings / n <= CROSSINGS_PER_ELEMENT_MAX
    assert_certified(a, t, u, res)


@pytest.mark.parametrize("backend", BACKENDS)
def test_crossing_budget(backend):
    n = 300
    a, t, u = np.ones(n), zigzag(n), np.full(n - 1, 2.0)
    needed = chain_qp(a, t, u).crossings
    assert needed > 10
    res = chain_qp(a, t, u, backend=backend, max_crossings=needed)
    assert res.crossings == needed
    with pytest.raises(RuntimeError, match="max_crossings"):
        chain_qp(a, t, u, backend=backend, max_crossings=needed - 1)


# ---------------------------------------------------------------------------------------------------
# 6. huge bounds behave as monotonicity only


@pytest.mark.parametrize("backend", BACKENDS)
def test_huge_bounds_equal_isotonic(backend):
    rng = np.random.default_rng(66)
    for kind in ("random", "walk", "falling"):
        a, t, _ = random_instance(rng, 500, kind=kind)
        x_inf = chain_qp(a, t, np.full(499, INF), backend=backend).x
        for big in (1e300, 1e12, np.finfo(np.float64).max):
            res = chain_qp(a, t, np.full(499, big), backend=backend)
            np.testing.assert_allclose(res.x, x_inf, rtol=0, atol=SCIPY_RTOL * scale_of(t))
            assert not np.any(res.codes == SATURATED)


def test_lower_bound_reduction():
    """Lower bounds only (x_{i+1} - x_i >= l_i) reduce to isotonic regression on shifted targets (notes
    section 0); the reduced solution is optimal for the original problem, checked by its certificate with
    d - l in the role of d and an infinite upper bound."""
    rng = np.random.default_rng(67)
    n = 400
    a, t, l = rng.uniform(0.5, 2, n), np.cumsum(rng.normal(size=n)), rng.uniform(0.0, 0.5, n - 1)
    shift = np.concatenate(([0.0], np.cumsum(l)))
    z = chain_qp(a, t - shift, np.full(n - 1, INF)).x
    x = z + shift
    assert np.all(np.diff(x) >= l - 1e-12)
    res = chain_qp(a, t - shift, np.full(n - 1, 1e300))
    np.testing.assert_allclose(res.x + shift, x, rtol=0, atol=SCIPY_RTOL * scale_of(t))
    cert = certificate(a, t - shift, np.full(n - 1, INF), z, res.codes)
    assert cert["sign"] <= SIGN_RTOL and cert["eta"] <= ETA_RTOL * cert["F"] + cert["eta_floor"]


# ---------------------------------------------------------------------------------------------------
# 7. property test


@st.composite
def chain_instances(draw):
    n = draw(st.integers(1, 30))
    a = draw(st.lists(st.floats(1e-3, 1e3), min_size=n, max_size=n))
    t = draw(st.lists(st.floats(-100, 100), min_size=n, max_size=n))
    u = draw(st.lists(st.one_of(st.floats(1e-4, 1e3), st.just(INF)), min_size=n - 1, max_size=n - 1))
    return np.array(a), np.array(t), np.array(u, dtype=np.float64)


@settings(max_examples=200, deadline=None)
@given(chain_instances())
def test_property_backends_agree_and_are_optimal(instance):
    a, t, u = instance
    res = chain_qp(a, t, u)
    res_py = chain_qp(a, t, u, backend="python")
    np.testing.assert_allclose(res_py.x, res.x, rtol=0, atol=BACKEND_RTOL * scale_of(t))
    np.testing.assert_array_equal(res_py.codes, res.codes)
    d = np.diff(res.x)
    assert np.all(d >= 0) and np.all(d <= u * (1 + 4 * EPS) + FEAS_RTOL * (np.abs(res.x[:-1]) + np.abs(res.x[1:])))
    assert_certified(a, t, u, res)
    polished = polish_quadratic_blocks(a, t, u, res.codes)
    assert_certified(a, t, u, ChainQPResult(x=polished, codes=res.codes, crossings=res.crossings), polished=True)
    if len(t) <= 6:
        np.testing.assert_allclose(res.x, brute_force(a, t, u), rtol=0, atol=BRUTE_RTOL * scale_of(t))


# ---------------------------------------------------------------------------------------------------
# blocks, offsets and polish


def test_blocks_and_offsets():
    codes = np.array([POOLED, FREE, SATURATED, POOLED, SATURATED, FREE, FREE], dtype=np.int8)
    u = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])
    np.testing.assert_array_equal(chain_qp_codes_to_blocks(codes), [0, 2, 6, 7])
    np.testing.assert_array_equal(chain_qp_block_offsets(u, codes), [0, 0, 0, 3, 3, 8, 0, 0])
    assert chain_qp_codes_to_blocks(np.zeros(0, dtype=np.int8)).tolist() == [0]
    x = polish_quadratic_blocks(np.ones(8), np.arange(8.0), u, codes)
    np.testing.assert_allclose(x[:2], [0.5, 0.5])
    level = np.mean(np.arange(2.0, 6.0) - np.array([0, 3, 3, 8]))
    np.testing.assert_allclose(x[2:6], level + np.array([0, 3, 3, 8]))
    np.testing.assert_allclose(x[6:], [6.0, 7.0])


def test_single_point():
    for backend in BACKENDS:
        res = chain_qp([2.0], [1.5], [], backend=backend)
        assert res.x.tolist() == [1.5] and res.codes.shape == (0,) and res.crossings == 0


# ---------------------------------------------------------------------------------------------------
# 8. input validation


@pytest.mark.parametrize(
    "a, t, u, message",
    [
        ([1.0, 1.0], [0.0, 1.0], [1.0, 1.0], "u must have length"),
        ([1.0], [0.0, 1.0], [1.0], "a must have the same length"),
        ([], [], [], "at least one element"),
        ([[1.0, 1.0]], [0.0, 1.0], [1.0], "one-dimensional"),
        ([1.0, 0.0], [0.0, 1.0], [1.0], "strictly positive"),
        ([1.0, -1.0], [0.0, 1.0], [1.0], "strictly positive"),
        ([1.0, np.inf], [0.0, 1.0], [1.0], "a must be finite"),
        ([1.0, np.nan], [0.0, 1.0], [1.0], "a must be finite"),
        ([1.0, 1.0], [0.0, np.nan], [1.0], "t must be finite"),
        ([1.0, 1.0], [0.0, -np.inf], [1.0], "t must be finite"),
        ([1.0, 1.0], [0.0, 1.0], [0.0], "u must be strictly positive"),
        ([1.0, 1.0], [0.0, 1.0], [-np.inf], "u must be strictly positive"),
        ([1.0, 1.0], [0.0, 1.0], [np.nan], "u must be strictly positive"),
        ([1.0, 1.0], ["a", "b"], [1.0], "real numeric"),
        ([1.0, 1.0], [1j, 0.0], [1.0], "real numeric"),
        ([1e-300, 1e300], [0.0, 1.0], [1.0], "orders of magnitude"),
    ],
)
def test_input_validation(a, t, u, message):
    for backend in BACKENDS:
        with pytest.raises(ValueError, match=message):
            chain_qp(a, t, u, backend=backend)


def test_overflow_is_reported():
    for backend in BACKENDS:
        with pytest.raises(FloatingPointError, match="overflowed"):
            chain_qp([1.0, 1.0], [1e308, -1e308], [INF], backend=backend)


def test_option_validation():
    with pytest.raises(ValueError, match="backend"):
        chain_qp([1.0], [0.0], [], backend="fortran")
    with pytest.raises(ValueError, match="max_crossings"):
        chain_qp([1.0], [0.0], [], max_crossings=-1)
    with pytest.raises(ValueError, match="codes"):
        chain_qp_codes_to_blocks(np.array([0, 3]))
    with pytest.raises(ValueError, match="codes must be one-dimensional of length"):
        polish_quadratic_blocks([1.0, 1.0], [0.0, 1.0], [1.0], [0, 0])
    with pytest.raises(ValueError, match="SATURATED link must have a finite bound"):
        chain_qp_block_offsets([INF], [SATURATED])
