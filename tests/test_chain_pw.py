"""The piecewise-quadratic chain programme with a hinge and a floor (solvers/chain_pw.py).

References, each independent of the two-stack walk:
* the pure-quadratic chain programme ``chain_qp`` (a different representation: suffix-sum slopes);
* scipy's PAVA clipped at the floor: with u = inf and no hinge the problem is isotonic regression with a
  constant lower bound, whose answer is the unbounded one clipped (Barlow et al. 1972, Thm 1.6);
* brute-force enumeration of faces for n <= 5: every assignment of link statuses, floor status and hinge
  side (below, above, or pinned at m when there is a kink) gives a candidate in closed form; the optimum is
  the best feasible candidate;
* the KKT certificate of the model (interval propagation with one-sided derivatives).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import isotonic_regression

from margin_design.solvers.certificate import certify
from margin_design.solvers.chain import FREE, POOLED, SATURATED, chain_qp
from margin_design.solvers.chain_pw import chain_pwq

# x against chain_qp, relative to max |t| (both are exact up to rounding; curvatures spread 1e6)
QP_RTOL = 1e-10
# against brute force and the clipped isotonic regression (closed forms)
EXACT_ATOL = 1e-10
# the certificate of the model at the programme's answer (before any polish)
MODEL_GAP = 1e-9
# a margin this close (relative to the data) to the kink is read as on it (positions carry a few ulps)
KINK_SNAP = 1e-13


def objective(x, a, t, m, c, k):
    z = np.maximum(x - m, 0.0)
    return float(np.sum(0.5 * a * (x - t) ** 2 + 0.5 * c * z * z + k * z))


def brute_force(a, t, u, m, c, k, lower):
    """The best feasible candidate over all faces (see the module docstring)."""
    n = t.size
    best, best_x = np.inf, None
    sides = (0, 1, 2) if np.any(k > 0) else (0, 1)  # below, above, pinned at m
    floors = (False, True) if lower is not None else (False,)
    for links in itertools.product((FREE, POOLED, SATURATED), repeat=n - 1):
        if any(l == SATURATED and not np.isfinite(u[i]) for i, l in enumerate(links)):
            continue
        s = np.zeros(n)
        block = np.zeros(n, int)
        for j in range(1, n):
            if links[j - 1] == FREE:
                block[j] = block[j - 1] + 1
            else:
                block[j] = block[j - 1]
                s[j] = s[j - 1] + (u[j - 1] if links[j - 1] == SATURATED else 0.0)
        nb = block[-1] + 1
        for side in itertools.product(sides, repeat=n):
            side = np.asarray(side)
            for fl in floors:
                L = np.empty(nb)
                ok = True
                for b in range(nb):
                    idx = np.flatnonzero(block == b)
                    pinned = idx[side[idx] == 2]
                    fixed = []
                    if pinned.size:
                        fixed += list(m - s[pinned])
                    if fl and b == 0:
                        fixed.append(lower - s[0])
                    if fixed:
                        if max(fixed) - min(fixed) > 1e-14:
                            ok = False
                            break
                        L[b] = fixed[0]
                        continue
                    up = side[idx] == 1
                    num = np.sum(a[idx] * (t[idx] - s[idx]) + up * (c[idx] * (m - s[idx]) - k[idx]))
                    L[b] = num / np.sum(a[idx] + up * c[idx])
                if not ok:
                    continue
                x = L[block] + s
                d = np.diff(x)
                if np.any(d < -1e-12) or np.any(d > u + 1e-12) or (lower is not None and x[0] < lower - 1e-12):
                    continue
                f = objective(x, a, t, m, c, k)
                if f < best:
                    best, best_x = f, x
    return best_x, best


def model_certificate(x, codes, floor, a, t, u, m, c, k, lower):
    z = x - m
    z[np.abs(z) <= KINK_SNAP * (1.0 + abs(m) + np.max(np.abs(t)))] = 0.0  # on the kink up to rounding, as the polish snaps
    g = a * (x - t) + c * np.maximum(z, 0.0)
    glo = g + k * (z > 0)
    ghi = g + k * (z >= 0)
    f = objective(x, a, t, m, c, k)
    cert, _ = certify(x, u, codes, glo, ghi, f, curvature=a + c, floor=floor if lower is not None else None, lower=lower or 0.0)
    return cert


def random_instance(rng, n, hinge=True, floor=True, uncapped_share=0.2):
    a = rng.uniform(0.2, 5.0, n)
    t = np.cumsum(rng.normal(0, 1, n))
    u = rng.uniform(0.05, 1.5, n - 1)
    u[rng.random(n - 1) < uncapped_share] = np.inf
    m = float(rng.normal(0, 1.5)) if hinge else 0.0
    c = rng.uniform(0, 20, n) * (rng.random(n) < 0.7) if hinge else np.zeros(n)
    k = rng.uniform(0, 3, n) * (rng.random(n) < 0.5) if hinge else np.zeros(n)
    lower = float(rng.normal(-0.5, 1.0)) if floor else None
    return a, t, u, m, c, k, lower


# ---------------------------------------------------------------- references


def test_without_hinge_or_floor_it_is_the_chain_qp():
    rng = np.random.default_rng(11)
    for _ in range(200):
        n = int(rng.integers(1, 300))
        a = 10 ** rng.uniform(-3, 3, n)
        t = np.cumsum(rng.normal(0, 1, n))
        u = rng.uniform(0.01, 1, n - 1)
        u[rng.random(n - 1) < 0.2] = np.inf
        ref = chain_qp(a, t, u)
        res = chain_pwq(a, t, u)
        np.testing.assert_allclose(res.x, ref.x, rtol=0, atol=QP_RTOL * np.max(np.abs(t)))
        np.testing.assert_array_equal(res.codes, ref.codes)
        assert not res.floor


@pytest.mark.parametrize("seed", range(3))
def test_uncapped_floored_is_clipped_isotonic_regression(seed):
    rng = np.random.default_rng(seed)
    n = 500
    a = rng.uniform(0.1, 3.0, n)
    t = np.cumsum(rng.normal(0, 1, n))
    lower = float(np.quantile(t, 0.4))
    res = chain_pwq(a, t, np.full(n - 1, np.inf), lower=lower)
    ref = np.maximum(isotonic_regression(t, weights=a).x, lower)
    np.testing.assert_allclose(res.x, ref, rtol=0, atol=EXACT_ATOL * np.max(np.abs(t)))
    assert res.floor == bool(ref[0] == lower)


@pytest.mark.parametrize("seed", range(40))
def test_matches_brute_force_enumeration(seed):
    rng = np.random.default_rng(1000 + seed)
    n = int(rng.integers(1, 5))
    a, t, u, m, c, k, lower = random_instance(rng, n, floor=seed % 4 != 0)
    if seed % 3 == 0:
        m = float(np.median(t))  # a hinge inside the data
    if lower is not None and seed % 5 == 0:
        lower = m  # the floor exactly at the hinge
    res = chain_pwq(a, t, u, hinge=(m, c, k), lower=lower)
    x_bf, f_bf = brute_force(a, t, u, m, c, k, lower)
    np.testing.assert_allclose(res.x, x_bf, rtol=0, atol=EXACT_ATOL * (1.0 + np.max(np.abs(t))))
    assert objective(res.x, a, t, m, c, k) <= f_bf + 1e-12 * (1.0 + abs(f_bf))
    if lower is not None:
        assert res.floor == bool(x_bf[0] <= lower + 1e-12)


def test_floor_below_the_hinge_is_folded_exactly():
    # m <= lower: on the feasible set the hinge is a plain quadratic, folded into (a, t)
    rng = np.random.default_rng(3)
    for _ in range(20):
        a, t, u, m, c, k, _ = random_instance(rng, 4)
        lower = m + abs(rng.normal())
        res = chain_pwq(a, t, u, hinge=(m, c, k), lower=lower)
        x_bf, _ = brute_force(a, t, u, m, c, k, lower)
        np.testing.assert_allclose(res.x, x_bf, rtol=0, atol=EXACT_ATOL * (1.0 + np.max(np.abs(t))))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(2, 400), st.integers(0, 2**31 - 1), st.booleans(), st.booleans())
def test_the_model_certificate_holds(n, seed, hinge, floor):
    rng = np.random.default_rng(seed)
    a, t, u, m, c, k, lower = random_instance(rng, n, hinge=hinge, floor=floor)
    res = chain_pwq(a, t, u, hinge=(m, c, k) if hinge else None, lower=lower)
    cert = model_certificate(res.x, res.codes, res.floor, a, t, u, m, c, k, lower)
    assert cert.feasibility <= 1e-12 * (1.0 + np.max(np.abs(t)))
    assert cert.complementarity <= 1e-9 and cert.balance <= 1e-9
    # relative to J, or to J at a constant schedule when the targets are feasible and J* is zero
    f_const = objective(np.full(n, np.median(t)), a, t, m, c, k)
    assert cert.duality_gap <= MODEL_GAP * max(cert.objective, f_const)


def test_invariances():
    """Shifting t, m and the floor by a constant shifts x; scaling a, c, k together leaves x unchanged."""
    rng = np.random.default_rng(5)
    for _ in range(20):
        a, t, u, m, c, k, lower = random_instance(rng, 50, floor=True)
        x = chain_pwq(a, t, u, hinge=(m, c, k), lower=lower).x
        tol = 1e-10 * (1.0 + np.max(np.abs(t)))
        np.testing.assert_allclose(chain_pwq(a, t + 3.0, u, hinge=(m + 3.0, c, k), lower=lower + 3.0).x, x + 3.0, rtol=0, atol=tol)
        np.testing.assert_allclose(chain_pwq(7 * a, t, u, hinge=(m, 7 * c, 7 * k), lower=lower).x, x, rtol=0, atol=tol)


def test_input_validation():
    with pytest.raises(ValueError, match="strictly positive"):
        chain_pwq([1.0, 0.0], [0.0, 1.0], [1.0])
    with pytest.raises(ValueError, match="non-negative"):
        chain_pwq([1.0, 1.0], [0.0, 1.0], [1.0], hinge=(0.0, [-1.0, 0.0], [0.0, 0.0]))
    with pytest.raises(ValueError, match="len"):
        chain_pwq([1.0, 1.0], [0.0, 1.0], [1.0, 2.0])
