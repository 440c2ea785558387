"""Audit rules: tables, formulas, overlays (Appendix E.4), exact one-sided slopes, jumps, kinks and errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from margin_design.audit import Overlays, Rule, TableRule, load_rule, parse_formula
from margin_design.errors import InputError

#: Float tolerance of closed forms evaluated in float64.
EXACT = 1e-12
#: Breakpoints located by bisection: relative accuracy of a threshold (daily vol).
THRESHOLD_RTOL = 1e-9

VOL = np.array([0.01, 0.02, 0.04])
MARGIN = np.array([0.03, 0.05, 0.08])


def table(interp="linear", **over):
    return Rule(TableRule(VOL, MARGIN, interp), Overlays(**over))


# ---------------------------------------------------------------------- tables


def test_linear_table_exact_one_sided_slopes():
    rule = table()
    # dM/dsigma is 0.02/0.01 = 2 on [0.01, 0.02] and 0.03/0.02 = 1.5 on [0.02, 0.04]; dM/dr = (dM/dsigma) / (2 sigma)
    assert rule.slope(np.array(0.02**2), "left") == pytest.approx(2.0 / (2 * 0.02), rel=EXACT)
    assert rule.slope(np.array(0.02**2), "right") == pytest.approx(1.5 / (2 * 0.02), rel=EXACT)
    assert rule.slope_vol(np.array(0.015)) == pytest.approx(2.0, rel=EXACT)
    assert rule.margin(np.array(0.03**2)) == pytest.approx(0.065, rel=EXACT)
    # flat beyond the knots; the slope at the last knot from the right is 0, from the left 1.5
    assert rule.margin(np.array(0.005**2)) == 0.03 and rule.margin(np.array(0.05**2)) == 0.08
    assert rule.slope(np.array(0.04**2), "right") == 0.0
    assert rule.slope_vol(np.array(0.04), "left") == pytest.approx(1.5, rel=EXACT)
    kinks = rule.kinks(0.005, 0.05)
    assert [round(k.vol, 12) for k in kinks] == [0.01, 0.02, 0.04]
    assert rule.discontinuities(0.005, 0.05) == ()


def test_step_table_jumps_and_flat_stretches():
    rule = table("step")
    assert rule.margin(np.array(0.02**2)) == 0.05            # right-continuous
    assert rule.evaluate(np.array(0.02**2), "left")[0] == 0.03
    jumps = rule.discontinuities(0.005, 0.05)
    assert [(round(j.vol, 12), round(j.jump, 12)) for j in jumps] == [(0.02, 0.02), (0.04, 0.03)]
    assert rule.flat_stretches(np.linspace(0.005, 0.05, 10))   # flat between the jumps


def test_lemma2_pass_through_on_a_table():
    """Lemma 2: g(RV') - g(RV) >= c_g (RV' - RV) with c_g the smallest slope dM/dr on I = [0.01^2, 0.04^2]."""
    rule = table()
    r = np.linspace(0.01**2, 0.04**2, 301)
    c_g = min(float(np.min(rule.slope(r, "right")[:-1])), float(rule.slope(r[-1], "left")))
    assert c_g == pytest.approx(1.5 / (2 * 0.04), rel=EXACT)   # hand-computed: the flattest piece at its top end
    a, b = np.meshgrid(r, r)
    up = b >= a
    assert np.all(rule.margin(b)[up] - rule.margin(a)[up] >= c_g * (b - a)[up] - EXACT)


@pytest.mark.parametrize(
    "vol, margin, match",
    [
        ([0.01, 0.03, 0.02], [0.03, 0.04, 0.05], "out of order"),
        ([0.01, 0.02, 0.03], [0.03, 0.05, 0.04], "not monotone"),
        ([0.01], [0.03], "at least 2 knots"),
        ([-0.01, 0.02], [0.03, 0.04], "positive daily vols"),
    ],
)
def test_bad_tables(vol, margin, match):
    with pytest.raises(InputError, match=match):
        TableRule(np.array(vol), np.array(margin))


def test_rule_csv_errors(tmp_path):
    p = tmp_path / "rule.csv"
    p.write_text("vol,margin\n0.01,0.03\n0.02,abc\n")
    with pytest.raises(InputError, match="non-numeric value 'abc' in column 'margin', row 3"):
        load_rule(str(p))
    p.write_text("sigma,margin\n0.01,0.03\n")
    with pytest.raises(InputError, match=r"has no column 'vol_daily' \(daily vol, decimal; the legacy 'vol' and the annualised 'vol_annual' are read too\)"):
        load_rule(str(p))
    with pytest.raises(InputError, match="does not exist"):
        load_rule(str(tmp_path / "missing.csv"))


# ---------------------------------------------------------------------- formulas


def test_formula_symbolic_slope():
    rule = load_rule("2.326*sqrt(2*r)")
    r = np.array([1e-4, 4e-4])
    assert np.allclose(rule.slope(r), 2.326 * math.sqrt(2) / (2 * np.sqrt(r)), rtol=EXACT, atol=0)
    sig = load_rule("0.012 + 2.5*sigma")
    assert sig.base.variable == "sigma"
    assert sig.slope_vol(np.array(0.01)) == pytest.approx(2.5, rel=EXACT)


def test_formula_with_a_switch_has_a_jump():
    rule = load_rule("0.03 + 0.01*Heaviside(sigma - 0.02)")
    (j,) = rule.discontinuities(0.01, 0.03)
    assert j.vol == pytest.approx(0.02, rel=THRESHOLD_RTOL)
    assert j.jump == pytest.approx(0.01, rel=1e-9)
    kinked = load_rule("Max(0.03, 3*sigma)")
    (k,) = kinked.kinks(0.005, 0.03)
    assert k.vol == pytest.approx(0.01, rel=THRESHOLD_RTOL)
    assert (k.slope_below, k.slope_above) == (0.0, pytest.approx(3 / (2 * 0.01), rel=1e-6))


@pytest.mark.parametrize(
    "text, match",
    [("2*(r", "cannot be parsed"), ("2*x + r", "unknown symbol x"), ("0.05", "does not depend on r or sigma"), ("", "is empty")],
)
def test_bad_formulas(text, match):
    with pytest.raises(InputError, match=match):
        parse_formula(text)


def test_non_monotone_formula_is_rejected_on_the_grid():
    rule = load_rule("0.05 - sigma")
    with pytest.raises(InputError, match="not monotone"):
        rule.check_monotone(np.linspace(0.005, 0.04, 20))


# ---------------------------------------------------------------------- overlays


def test_floor_kink_where_it_stops_binding():
    rule = load_rule("3*sigma", overlays={"floor": 0.03})
    (k,) = rule.kinks(0.005, 0.03)
    assert k.vol == pytest.approx(0.01, rel=THRESHOLD_RTOL)        # 3 sigma = 0.03
    assert rule.slope(np.array(0.008**2)) == 0.0                   # flat where the floor binds
    assert rule.flat_stretches(np.linspace(0.005, 0.03, 26))[0][0] == 0.005


def test_buffer_absorb_and_drop():
    absorb = load_rule("3*sigma", overlays={"buffer": 0.25, "buffer_release_vol": 0.02})
    # calm: 1.25 x 3 sigma (slope 3.75 in sigma); buffered level 1.25 * 0.06 = 0.075 held until 3 sigma = 0.075
    assert absorb.slope_vol(np.array(0.01)) == pytest.approx(3.75, rel=EXACT)
    assert absorb.margin(np.array(0.022**2)) == pytest.approx(0.075, rel=EXACT)
    assert absorb.slope_vol(np.array(0.03)) == pytest.approx(3.0, rel=EXACT)
    vols = sorted(round(k.vol, 9) for k in absorb.kinks(0.005, 0.04))
    assert vols == [0.02, 0.025]
    drop = load_rule("3*sigma", overlays={"buffer": 0.25, "buffer_release_vol": 0.02, "buffer_release": "drop"})
    (j,) = drop.discontinuities(0.005, 0.04)
    assert j.jump == pytest.approx(-0.25 * 0.06, rel=EXACT)       # released: (1 + b) g -> g at the threshold


def test_stressed_weight_damps_the_slope():
    rule = load_rule("100*r", overlays={"stressed_weight": 0.25, "stressed_vol": 0.03})
    r = np.array(1e-4)
    assert rule.margin(r) == pytest.approx(100 * (0.75 * 1e-4 + 0.25 * 9e-4), rel=EXACT)
    assert rule.slope(r) == pytest.approx(75.0, rel=EXACT)


def test_tick_and_addons():
    rule = load_rule("3*sigma", overlays={"tick": 0.005, "addons": [[0.02, 0.01]]})
    jumps = rule.discontinuities(0.005, 0.03)
    # ticks of 0.005 crossed where 3 sigma = 0.02, 0.025, ..., 0.09; the add-on adds 0.01 at sigma = 0.02
    sizes = [round(j.jump, 12) for j in jumps]
    assert all(s in (0.005, 0.015) for s in sizes)
    at_addon = [j for j in jumps if abs(j.vol - 0.02) < 1e-9]
    assert len(at_addon) == 1 and "step add-on" in at_addon[0].source
    assert np.all(rule.slope(np.linspace(0.006, 0.029, 50) ** 2) == 0.0)


def test_overlay_validation():
    with pytest.raises(InputError, match="needs buffer_release_vol"):
        Overlays(buffer=0.25)
    with pytest.raises(InputError, match="stressed_weight = 1.5 must be in"):
        Overlays(stressed_weight=1.5)
    with pytest.raises(InputError, match="either overlay floor"):
        Overlays(floor=0.02, floor_vol=0.01)
    with pytest.raises(InputError, match="addons entry"):
        Overlays(addons=((0.02,),))


def test_toml_rule_file(tmp_path):
    (tmp_path / "t.csv").write_text("vol,margin\n0.01,0.03\n0.02,0.05\n")
    p = tmp_path / "rule.toml"
    p.write_text('[rule]\ntable = "t.csv"\ninterpolation = "step"\nname = "house rule"\n[overlays]\nfloor = 0.04\n')
    rule = load_rule(str(p))
    assert rule.name == "house rule" and rule.overlays.floor == 0.04
    assert rule.margin(np.array(0.015**2)) == 0.04
    p.write_text('[rule]\nformula = "3*sigma"\n[overlays]\nflor = 0.04\n')
    with pytest.raises(InputError, match="unknown key flor"):
        load_rule(str(p))
    p.write_text('[rule]\nformula = "3*sigma"\ntable = "t.csv"\n')
    with pytest.raises(InputError, match="exactly one of rule.formula and rule.table"):
        load_rule(str(p))


def test_true_runs_against_groupby():
    """true_runs (the one run finder of the audit's ranges, flat stretches, cap violations and figure bands) against
    itertools.groupby on random masks, the empty mask and all-True / all-False masks."""
    import itertools

    from margin_design.audit.rules import true_runs

    rng = np.random.default_rng(0)
    masks = [np.zeros(0, bool), np.ones(4, bool), np.zeros(4, bool)] + [rng.random(n) < 0.5 for n in (1, 2, 7, 40) for _ in range(25)]
    for m in masks:
        want, k = [], 0
        for value, group in itertools.groupby(m.tolist()):
            n = len(list(group))
            if value:
                want.append((k, k + n - 1))
            k += n
        assert true_runs(m) == want
