"""Every published calibration number, reproduced from the formulas (Nicolai 2026).

Each check names its source (table, panel, row, column). Printed cells are compared to the paper's
printed rounding: |computed - printed| <= half a unit in the printed last digit (+ float slack).

Paper inconsistencies found (tested against the formulas, discrepancy documented here):

* Table 4 (ROI%) does not follow from its caption: with delta_bps = 200 sqrt(f) (65) and the m_1
  denominator of (64) every one of its 108 cells is off, e.g. Panel A, f = 1%, tau = 1, epsilon = 0.225
  prints 10.1 while (64) gives 8.33 -- and Table 1 Panel B prints 8.3 for the very same case. All 108
  printed cells are reproduced to their rounding by (64) with a single impact constant k ~ 241.6 bp
  instead of 200 (:func:`test_table4_printed_cells_imply_one_impact_constant_other_than_200`), so the
  table was evidently computed with a different impact scale. We test Table 4 against the formula
  (k = 200, agreeing with Table 1) and document the printed table through the implied k.
* (84) reads ``Delta sigma_ann_min(eta_M) ~ 7.14 tau x eta_M`` points "with eta_M in decimal units";
  from (83) the number of points is ``100 tau eta_M / 2.80 = 35.7 tau eta_M`` (7.14 tau is the value at
  eta_M = 0.2, which is what Table 5 prints). We test (83) and Table 5.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from margin_design.calibration import tables
from margin_design.calibration.cap import (
    distortion_bps,
    max_relative_margin_increase,
    relative_cap_coefficient,
    vol_points_needed,
)
from margin_design.calibration.gain import assess_margin_move, profit_bps_lower_bound, roi_pct_lower_bound
from margin_design.calibration.portfolio import (
    TWO_ASSET_RHO_THRESHOLD,
    two_asset_max_relative_increase,
    two_asset_slope_ratio,
)

#: Float noise allowed on top of the printed rounding (a printed half-unit boundary like 230/8 = 28.75).
FLOAT_SLACK = 1e-9
#: Tolerance for quantities the paper states as "about" a whole number (Section 3.6, 6.4 prose).
ABOUT_WHOLE = 0.5
#: Float tolerance of algebraic identities (float64).
IDENTITY_RTOL = 1e-12


def decimals(printed: str) -> int:
    s = printed.strip().rstrip("%")
    return len(s.split(".")[1]) if "." in s else 0


def assert_printed(value: float, printed: str, scale: float = 1.0, where: str = "") -> None:
    """``value * scale`` agrees with ``printed`` to the printed number of decimals."""
    tol = 0.5 * 10 ** (-decimals(printed)) + FLOAT_SLACK
    got = float(value) * scale
    want = float(printed.strip().rstrip("%"))
    assert abs(got - want) <= tol, f"{where}: computed {got!r}, printed {printed}"


# ------------------------------------------------------------------------------------------------
# Table 1 (Section 3.6): epsilon 0.225, tau 1, delta = 200 sqrt(f); rows f, columns m1 in 6/7/8%
# ------------------------------------------------------------------------------------------------

TABLE1_G = {  # Table 1 Panel A, rows f = 0.5%, 1%, 2%; columns 5->6%, 5->7%, 5->8%
    0.005: ["9.0", "18.0", "27.0"],
    0.01: ["4.5", "9.0", "13.5"],
    0.02: ["2.25", "4.5", "6.75"],
}
TABLE1_PI_ROI = {  # Table 1 Panel B, "pi_bps/ROI%"
    0.005: ["99.0/16.5", "226.3/32.3", "353.6/44.2"],
    0.01: ["50.0/8.3", "140.0/20.0", "230.0/28.8"],
    0.02: ["7.1/1.2", "70.7/10.1", "134.4/16.8"],
}


def test_table1_every_cell():
    t = tables.table1()
    for i, f in enumerate(t["participation"]):
        for j, m1 in enumerate(t["margin_to"]):
            where = f"Table 1, f = {f:g}, 5% -> {m1:g}"
            assert_printed(t["G"][i][j], TABLE1_G[f][j], where=where + " Panel A G")
            pi, roi = TABLE1_PI_ROI[f][j].split("/")
            assert_printed(t["profit_bps"][i][j], pi, where=where + " Panel B pi_bps")
            assert_printed(t["roi_pct"][i][j], roi, where=where + " Panel B ROI%")


def test_table1_cells_through_the_gain_command_function():
    # Table 1 Panel A/B, row f = 1%, column 5% -> 7%: G = 9, 140 bp, 20% (also quoted in Section 3.6 prose).
    r = assess_margin_move(0.225, 1.0, 0.01, 0.05, 0.07)
    assert_printed(r.G, "9.0", where="Table 1 A f=1% 5->7")
    assert_printed(r.profit_bps, "140.0", where="Table 1 B f=1% 5->7 pi")
    assert_printed(r.roi_pct, "20.0", where="Table 1 B f=1% 5->7 ROI")
    assert bool(r.profitable)
    # Section 3.6 prose: "Even in the mildest scenario (5% -> 6%) at f = 1%, the bound is 50 bps and 8.3% on margin."
    r = assess_margin_move(0.225, 1.0, 0.01, 0.05, 0.06)
    assert_printed(r.profit_bps, "50", where="Section 3.6 mildest pi")
    assert_printed(r.roi_pct, "8.3", where="Section 3.6 mildest ROI")


def test_section36_worked_example():
    # Section 3.6: f = 1% so delta_bps ~ 20; with G = 6, pi_bps >= 80 bps; ROI >= 80/(100 m), about 11% at m = 7%.
    d = distortion_bps(0.01)
    assert_printed(d, "20", where="Section 3.6 delta_bps(1%)")
    pi = profit_bps_lower_bound(6.0, d)
    assert_printed(pi, "80", where="Section 3.6 pi_bps at G = 6")
    assert abs(float(roi_pct_lower_bound(pi, 0.07)) - 11.0) <= ABOUT_WHOLE  # "about 11% return on posted margin"


# ------------------------------------------------------------------------------------------------
# (65) examples (Appendix C.2)
# ------------------------------------------------------------------------------------------------


def test_equation65_examples():
    # (65): f = 1% -> 20, 2% -> 28, 5% -> 45, 10% -> 63 bp.
    t = tables.equation65()
    for f, d, printed in zip(t["participation"], t["distortion_bps"], ["20", "28", "45", "63"]):
        assert_printed(d, printed, where=f"(65) f = {f:g}")


# ------------------------------------------------------------------------------------------------
# Table 3 (Appendix C.6): G for epsilon = 0.15/0.225/0.30; rows f, columns tau = 0.5, 1, 2
# ------------------------------------------------------------------------------------------------

TABLE3 = {
    0.2: {  # Panel A: Delta M/M = 20%
        0.005: ["3.0/4.5/6.0", "6.0/9.0/12.0", "12.0/18.0/24.0"],
        0.01: ["1.5/2.25/3.0", "3.0/4.5/6.0", "6.0/9.0/12.0"],
        0.02: ["0.75/1.125/1.5", "1.5/2.25/3.0", "3.0/4.5/6.0"],
        0.05: ["0.30/0.45/0.60", "0.60/0.90/1.20", "1.20/1.80/2.40"],
    },
    0.4: {  # Panel B: Delta M/M = 40%
        0.005: ["6.0/9.0/12.0", "12.0/18.0/24.0", "24.0/36.0/48.0"],
        0.01: ["3.0/4.5/6.0", "6.0/9.0/12.0", "12.0/18.0/24.0"],
        0.02: ["1.5/2.25/3.0", "3.0/4.5/6.0", "6.0/9.0/12.0"],
        0.05: ["0.60/0.90/1.20", "1.20/1.80/2.40", "2.40/3.60/4.80"],
    },
    0.6: {  # Panel C: Delta M/M = 60%
        0.005: ["9.0/13.5/18.0", "18.0/27.0/36.0", "36.0/54.0/72.0"],
        0.01: ["4.5/6.75/9.0", "9.0/13.5/18.0", "18.0/27.0/36.0"],
        0.02: ["2.25/3.375/4.5", "4.5/6.75/9.0", "9.0/13.5/18.0"],
        0.05: ["0.90/1.35/1.80", "1.80/2.70/3.60", "3.60/5.40/7.20"],
    },
}


def test_table3_every_cell():
    t = tables.table3()
    for p, jump in enumerate(t["relative_margin_jump"]):
        printed_panel = TABLE3[round(jump, 10)]
        for i, f in enumerate(t["participation"]):
            for j, tau in enumerate(t["turnover"]):
                for k, (eps, cell) in enumerate(zip(t["elasticity"], printed_panel[f][j].split("/"))):
                    assert_printed(t["G"][p][i][j][k], cell, where=f"Table 3 jump {jump:g} f {f:g} tau {tau:g} eps {eps:g}")


# ------------------------------------------------------------------------------------------------
# Table 4 (Appendix C.6): ROI% for epsilon = 0.15/0.225/0.30; see the module docstring
# ------------------------------------------------------------------------------------------------

TABLE4 = {
    0.2: {  # Panel A: m0 = 5% -> m1 = 6%
        0.005: ["2.8/7.1/11.4", "11.4/19.9/28.5", "28.5/45.6/62.6"],
        0.01: ["-2.0/1.0/4.0", "4.0/10.1/16.1", "16.1/28.2/40.3"],
        0.02: ["-7.1/-5.0/-2.8", "-2.8/1.4/5.7", "5.7/14.2/22.8"],
        0.05: ["-15.3/-14.0/-12.6", "-12.6/-9.9/-7.2", "-7.2/-1.8/3.6"],
    },
    0.4: {  # Panel B: m0 = 5% -> m1 = 7%
        0.005: ["9.8/17.1/24.4", "24.4/39.0/53.7", "53.7/83.0/112.3"],
        0.01: ["3.5/8.6/13.8", "13.8/24.2/34.5", "34.5/55.2/75.9"],
        0.02: ["-2.4/1.2/4.9", "4.9/12.2/19.5", "19.5/34.2/48.8"],
        0.05: ["-10.8/-8.5/-6.2", "-6.2/-1.5/3.1", "3.1/12.3/21.6"],
    },
    0.6: {  # Panel C: m0 = 5% -> m1 = 8%
        0.005: ["14.9/24.6/34.2", "34.2/53.4/72.6", "72.6/111.0/149.5"],
        0.01: ["7.5/14.3/21.1", "21.1/34.7/48.3", "48.3/75.5/102.7"],
        0.02: ["1.1/5.9/10.7", "10.7/20.3/29.9", "29.9/49.1/68.3"],
        0.05: ["-7.4/-4.4/-1.4", "-1.4/4.7/10.8", "10.8/23.0/35.1"],
    },
}


def _table4_cells():
    """(jump, m1, f, tau, eps, printed) for all 108 printed cells of Table 4."""
    out = []
    for jump, m1 in zip((0.2, 0.4, 0.6), tables.MARGINS_TO):
        for f in tables.PARTICIPATIONS:
            for tau, cell in zip(tables.TURNOVERS, TABLE4[jump][f]):
                for eps, printed in zip(tables.ELASTICITIES, cell.split("/")):
                    out.append((jump, m1, f, tau, eps, printed))
    return out


def test_table4_is_formula_64_on_the_grid():
    # Table 4 cell by cell from (64)-(67) with delta = 200 sqrt(f), written out independently with numpy.
    t = tables.table4()
    for p, (jump, m1) in enumerate(zip(t["relative_margin_jump"], t["margin_to"])):
        for i, f in enumerate(t["participation"]):
            for j, tau in enumerate(t["turnover"]):
                for k, eps in enumerate(t["elasticity"]):
                    g = eps * jump * tau / f
                    want = (g - 2.0) * 200.0 * math.sqrt(f) / (100.0 * m1)
                    assert t["roi_pct"][p][i][j][k] == pytest.approx(want, rel=IDENTITY_RTOL)


def test_table4_agrees_with_table1_on_shared_cells():
    # Table 4 (epsilon 0.225, tau 1) and Table 1 Panel B describe the same cases; the formula gives
    # Table 1's printed ROI (the printed Table 4 does not: 19.9/10.1/1.4 vs 16.5/8.3/1.2 at 5% -> 6%).
    t = tables.table4()
    j_tau1 = t["turnover"].index(1.0)
    k_eps = t["elasticity"].index(0.225)
    for p in range(3):
        for f, printed in TABLE1_PI_ROI.items():
            i = t["participation"].index(f)
            roi = printed[p].split("/")[1]
            assert_printed(t["roi_pct"][p][i][j_tau1][k_eps], roi, where=f"Table 4 vs Table 1 Panel B, f {f:g}, column {p}")


def test_table4_sign_pattern_every_cell():
    # Table 4 caption: "Negative entries correspond to G < 2" -- true of every printed cell.
    for jump, m1, f, tau, eps, printed in _table4_cells():
        g = eps * jump * tau / f
        assert (float(printed) < 0) == (g < 2), (jump, f, tau, eps, printed)


def _implied_k_interval():
    lo, hi = -math.inf, math.inf
    for jump, m1, f, tau, eps, printed in _table4_cells():
        g = eps * jump * tau / f
        half = 0.5 * 10 ** (-decimals(printed))
        a = (float(printed) - half) * 100 * m1 / ((g - 2) * math.sqrt(f))
        b = (float(printed) + half) * 100 * m1 / ((g - 2) * math.sqrt(f))
        a, b = min(a, b), max(a, b)
        lo, hi = max(lo, a), min(hi, b)
    return lo, hi


def test_table4_printed_cells_imply_one_impact_constant_other_than_200():
    # Discrepancy (module docstring): one k reproduces all 108 printed cells, and it is not the caption's 200.
    lo, hi = _implied_k_interval()
    assert lo <= hi
    assert not (lo <= 200.0 <= hi)


def test_table4_every_printed_cell_with_the_implied_impact_constant():
    # Every printed cell of Table 4 (all panels, all elasticities) from (64) with k at the implied value.
    lo, hi = _implied_k_interval()
    t = tables.table4(impact_k=(lo + hi) / 2.0)
    for p, jump in enumerate((0.2, 0.4, 0.6)):
        for i, f in enumerate(tables.PARTICIPATIONS):
            for j, tau in enumerate(tables.TURNOVERS):
                for k, printed in enumerate(TABLE4[jump][f][j].split("/")):
                    assert_printed(t["roi_pct"][p][i][j][k], printed, where=f"Table 4 jump {jump} f {f} tau {tau} eps#{k}")


# ------------------------------------------------------------------------------------------------
# Table 5 (Appendix D.4) and equation (45)
# ------------------------------------------------------------------------------------------------

TABLE5 = {  # columns tau = 0.5, 1, 2
    "max_rel": ["56%", "28%", "14%"],  # Max Delta m/m for +10 annualised-vol points
    "max_pp": ["2.8", "1.4", "0.7"],  # Max Delta m (pp) for +10 points when m = 5%
    0.2: ["3.6", "7.1", "14.3"],  # vol points needed for a 20% margin jump
    0.4: ["7.1", "14.3", "28.6"],
    0.6: ["10.7", "21.4", "42.9"],
    0.8: ["14.3", "28.6", "57.1"],
}


def test_table5_every_cell():
    t = tables.table5()
    for j, tau in enumerate(t["turnover"]):
        assert_printed(t["max_relative_margin_increase"][j], TABLE5["max_rel"][j], scale=100, where=f"Table 5 row 1 tau {tau:g}")
        assert_printed(t["max_margin_increase_pp"][j], TABLE5["max_pp"][j], where=f"Table 5 row 2 tau {tau:g}")
        for r, jump in enumerate(t["margin_jump"]):
            assert_printed(t["vol_points_needed"][r][j], TABLE5[jump][j], where=f"Table 5 jump {jump:g} tau {tau:g}")


def test_equation45_coefficient():
    # (45) = (82): Delta m/m <= (2.80/tau) Delta sigma_ann at epsilon 0.225, f 1%, delta 20 bp.
    assert_printed(tables.equation45()["coefficient"], "2.80", where="(45)")
    for tau in (0.5, 1.0, 2.0, 3.0):
        assert_printed(relative_cap_coefficient(0.225, tau, 0.01, 20.0) * tau, "2.80", where=f"(45) tau {tau}")
    # (82) prose: "A ten-point increase in annualized volatility implies Delta m/m <= 0.28/tau."
    assert_printed(max_relative_margin_increase(10.0, turnover=1.0), "0.28", where="(82) prose")


def test_equation83_and_84():
    # (83): Delta sigma_min = tau/2.80 x eta_M (decimal vol); Table 5: 7.1 points for eta = 20% at tau = 1.
    for tau in (0.5, 1.0, 2.0):
        for eta in (0.2, 0.5, 1.0):
            pts = float(vol_points_needed(eta, turnover=tau))
            assert pts / 100.0 == pytest.approx(tau / float(relative_cap_coefficient(0.225, 1.0)) * eta, rel=IDENTITY_RTOL)
    # (84) as printed says 7.14 tau x eta_M; that number is the points at eta_M = 0.2 (see module docstring).
    assert_printed(vol_points_needed(0.2, turnover=1.0), "7.14", where="(84) coefficient = points at eta 0.2")


def test_section64_worked_examples():
    t = tables.section64()
    # Section 6.4: tau = 1, +10 points -> at most 28%, "from 5% ... only to about 6.4%".
    assert_printed(t["max_relative_margin_increase"][0], "28", scale=100, where="6.4 tau 1 rel")
    assert_printed(t["max_margin_to"][0], "6.4", scale=100, where="6.4 tau 1 5% -> 6.4%")
    # "When tau = 2, the same volatility shock permits only a 14% increase, so 5% can rise only to about 5.7%."
    assert_printed(t["max_relative_margin_increase"][1], "14", scale=100, where="6.4 tau 2 rel")
    assert_printed(t["max_margin_to"][1], "5.7", scale=100, where="6.4 tau 2 5% -> 5.7%")
    # "raising margin from 5% to 6% ... only if annualized volatility rises by at least about 7 points (tau = 1)
    # and about 14 points (tau = 2)".
    assert abs(t["vol_points_needed"][0] - 7.0) <= ABOUT_WHOLE
    assert abs(t["vol_points_needed"][1] - 14.0) <= ABOUT_WHOLE


# ------------------------------------------------------------------------------------------------
# Appendix D.6: two-asset example
# ------------------------------------------------------------------------------------------------


def test_appendix_d6_cases():
    t = tables.appendix_d6()
    # D.6: rho > sqrt(2) - 1 ~ 0.414 flattens the first-best.
    assert_printed(t["rho_threshold"], "0.414", where="D.6 threshold")
    assert TWO_ASSET_RHO_THRESHOLD == pytest.approx(math.sqrt(2) - 1, rel=IDENTITY_RTOL)
    # (93) three cases: rho = 0 -> 39.6%, 0.5 -> 26.4%, 1 -> 19.8%; from 5%: 1.98, 1.32, 0.99 pp.
    for j, (rel, pp) in enumerate(zip(["39.6", "26.4", "19.8"], ["1.98", "1.32", "0.99"])):
        assert_printed(t["max_relative_margin_increase"][j], rel, scale=100, where=f"(93) rho {t['rho'][j]}")
        assert_printed(t["max_margin_increase_pp"][j], pp, where=f"(93) rho {t['rho'][j]} pp")
    # (92) at the threshold the two caps coincide.
    assert float(two_asset_slope_ratio(TWO_ASSET_RHO_THRESHOLD)) == pytest.approx(1.0, rel=IDENTITY_RTOL)
    assert float(two_asset_max_relative_increase(TWO_ASSET_RHO_THRESHOLD)) == pytest.approx(
        float(max_relative_margin_increase(10.0)), rel=IDENTITY_RTOL
    )


def test_render_and_json_are_complete_and_deterministic():
    t1 = tables.paper_tables()
    t2 = tables.paper_tables()
    assert t1 == t2
    text = tables.render_tables(t1)
    assert text == tables.render_tables(t2)
    for needle in ("Table 1, Panel A", "Table 1, Panel B", "Table 3", "Table 4", "Table 5", "Equation (45)", "Appendix D.6", "Section 6.4"):
        assert needle in text
    # the printed Table 1 cell that sits on a rounding half (230/8 = 28.75) renders as the paper prints it
    assert "230.0/28.8" in text
    assert np.asarray(t1["table4"]["roi_pct"]).shape == (3, 4, 3, 3)
