"""c_X^eff from accounts, (63), and Lemma 11's lower bound (55)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from margin_design.calibration.accounts import (
    aggregate_exposure,
    binding_mass,
    c_eff_from_accounts,
    calibrate_accounts,
    lemma11_slope_bound,
    read_accounts_csv,
)
from margin_design.errors import InputError

#: Float tolerance of the closed forms.
IDENTITY_RTOL = 1e-12
#: Relative step of the finite-difference derivative of X(M), and its tolerance.
FD_STEP = 1e-7
FD_RTOL = 1e-5


def test_hand_made_case():
    # Four accounts at M = 0.1; caps E/M = 10, 20, 30, 40.
    # targets 12 (binds: 12 >= 10), 20 (binds exactly: 20 >= 20), 25 (slack), 0 (slack).
    e = np.array([1.0, 2.0, 3.0, 4.0])
    x = np.array([12.0, 20.0, 25.0, 0.0])
    m = 0.1
    # (63): c_eff = (1/M^2) (E_1 + E_2) / 4 = (1 + 2) / 4 / 0.01 = 75 per unit of total mass
    assert c_eff_from_accounts(e, x, m) == pytest.approx(75.0, rel=IDENTITY_RTOL)
    assert binding_mass(e, x, m) == pytest.approx(0.5, rel=IDENTITY_RTOL)
    # (7): X = (10 + 20 + 25 + 0)/4
    assert aggregate_exposure(e, x, m) == pytest.approx(55.0 / 4, rel=IDENTITY_RTOL)
    # Lemma 11 counts only strictly over-cap accounts (account 1): 1/4 / (0.1 + 0.02)^2
    assert lemma11_slope_bound(e, x, m, 0.02) == pytest.approx(0.25 / 0.12**2, rel=IDENTITY_RTOL)
    res = calibrate_accounts(e, x, m, mass=np.array([2.0, 2.0, 2.0, 2.0]), margin_headroom=0.02)
    # equal masses do not change per-unit-mass quantities; the total scales with the mass
    assert res.c_eff == pytest.approx(75.0, rel=IDENTITY_RTOL)
    assert res.c_eff_total == pytest.approx(75.0 * 8, rel=IDENTITY_RTOL)
    # unequal masses weight the accounts
    w = np.array([3.0, 1.0, 0.0, 0.0])
    assert c_eff_from_accounts(e, x, m, w) == pytest.approx((3 * 1 + 1 * 2) / 4 / m**2, rel=IDENTITY_RTOL)


def _exposure(e, x, m):
    return float(np.mean(np.minimum(x, e / m)))


def test_c_eff_is_the_right_derivative_of_exposure():
    rng = np.random.default_rng(0)
    e = rng.uniform(0.5, 2.0, 200)
    x = rng.uniform(0.0, 60.0, 200)
    m = 0.05
    h = FD_STEP * m
    fd = -(_exposure(e, x, m + h) - _exposure(e, x, m)) / h
    assert c_eff_from_accounts(e, x, m) == pytest.approx(fd, rel=FD_RTOL)


@settings(max_examples=100, deadline=None)
@given(
    n=st.integers(1, 40),
    seed=st.integers(0, 2**32 - 1),
    margin=st.floats(0.01, 0.5),
    headroom=st.floats(0.0, 0.3),
    frac=st.floats(0.0, 1.0),
)
def test_lemma11_lower_bound_on_random_accounts(n, seed, margin, headroom, frac):
    rng = np.random.default_rng(seed)
    e = rng.uniform(0.01, 5.0, n)
    x = rng.uniform(0.0, 3.0, n) * e / margin  # a mix of binding (x > E/M) and slack accounts
    w = rng.uniform(0.0, 2.0, n) + 1e-3
    bound = lemma11_slope_bound(e, x, margin, headroom, w)
    # the bound never exceeds the local slope (63) ...
    assert bound <= c_eff_from_accounts(e, x, margin, w) * (1 + IDENTITY_RTOL)
    # ... and (55): X(M) - X(M + dM) >= bound x dM for every dM in [0, headroom]
    dm = frac * headroom

    def x_of(mm):
        return float(np.sum(w * np.minimum(x, e / mm)) / np.sum(w))

    liquidation = x_of(margin) - x_of(margin + dm)
    assert liquidation >= bound * dm - 1e-12 * max(1.0, liquidation)


def test_accounts_csv(tmp_path):
    p = tmp_path / "accounts.csv"
    p.write_text("account,equity,target,mass\na,1,12,1\nb,2,20,1\nc,3,25,1\nd,4,0,1\n")
    e, x, w = read_accounts_csv(p)
    assert c_eff_from_accounts(e, x, 0.1, w) == pytest.approx(75.0, rel=IDENTITY_RTOL)
    e2, x2, _ = read_accounts_csv(p, adv=10.0)
    # in ADV units c_eff scales with 1/ADV
    assert c_eff_from_accounts(e2, x2, 0.1) == pytest.approx(7.5, rel=IDENTITY_RTOL)


@pytest.mark.parametrize(
    "text, match",
    [
        ("equity\n1\n", "no column 'target'"),
        ("equity,target\n0,1\n", "column 'equity' of accounts.csv must be positive"),
        ("equity,target\n1,-2\n", "column 'target' of accounts.csv must be non-negative"),
        ("equity,target\n", "has a header but no data rows"),
    ],
)
def test_accounts_csv_errors(tmp_path, text, match):
    p = tmp_path / "accounts.csv"
    p.write_text(text)
    with pytest.raises(InputError, match=match):
        e, x, w = read_accounts_csv(p)
        calibrate_accounts(e, x, 0.1, w)
