"""Local analysis: Lemma 1, Lemma 5, Theorem 1, Corollary 1 (16)-(18), (58), Table 1 units, Section 6.6 jumps,
Proposition 2 (trimming), Section 4.2 inputs by JAX autodiff, and Appendix B's strategic c_X^eff -- on
hand-computed cases (values derived in the comments)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import brentq

from margin_design.audit import (
    AuditMarket,
    InputSpec,
    Rule,
    TableRule,
    directional_sensitivity,
    equilibrium_c_eff,
    equilibrium_targets,
    sampled_ewma,
    feedback_gain,
    input_sensitivity,
    jump_gains,
    load_rule,
    local_analysis,
    profit_bound,
    sampled_variance,
    scan_risk,
    strategic_c_eff,
    trimmed_variance,
    trimming_jumps,
    var_multiple,
    winsorized_variance,
)
from margin_design.design import CapSpec, cap_slope_r

#: Autodiff / closed-form agreement (float64; one-sided derivatives are extrapolated to h -> 0).
AD_RTOL = 1e-9
#: Exact arithmetic of closed forms.
EXACT = 1e-12
#: Root-finding tolerance when (16) is recovered numerically.
ROOT_RTOL = 1e-10

# Window of Lemma 1's hand case: returns +0.01, -0.02, +0.01, -0.02, so R_t = -0.02 and RV (4) = 0.001.
PRICES = np.array([1.0, 1.01, 0.99, 1.0, 0.98])


def test_lemma1_rv_sensitivity_to_the_last_price():
    s = directional_sensitivity(lambda p: sampled_variance(p, mean=False), PRICES)
    assert float(s.value) == pytest.approx(0.001, rel=1e-12)
    # dRV/dP_t = 2 R_t = -0.04: a push down raises RV at 0.04 per unit price, a push up lowers it
    assert float(s.down) == pytest.approx(0.04, rel=AD_RTOL)
    assert float(s.up) == pytest.approx(-0.04, rel=AD_RTOL)
    # the inequality of Lemma 1 for Delta P of the sign of R_t: RV(P + dP) - RV(P) = 2 R dP + dP^2 >= 2 |R| |dP|
    for dp in (-1e-4, -1e-3, -0.01):
        p = PRICES.copy()
        p[-1] += dp
        diff = float(sampled_variance(p, mean=False)) - 0.001
        assert diff == pytest.approx(2 * -0.02 * dp + dp**2, rel=1e-9)
        assert diff >= 2 * 0.02 * abs(dp)


@pytest.mark.parametrize("spec, factor", [(InputSpec(), 1.0), (InputSpec("realized_variance", 5), math.sqrt(5)), (InputSpec("ewma", 1, 0.94), 1 / math.sqrt(0.06))])
def test_input_sensitivity_envelope_matches_the_design_cap_factor(spec, factor):
    """c_Gamma at the envelope |R_t| = sqrt(r/w) is 2 sqrt(r) / factor, the input factor of design/cap.py."""
    r = np.array([1e-5, 1e-4, 1.6e-3])
    c, R = input_sensitivity(spec, r)
    assert np.allclose(c, 2 * np.sqrt(r) / factor, rtol=AD_RTOL)
    # a given last return: c_Gamma = 2 w |R| (Lemma 1 for (4): 2|R|)
    c2, R2 = input_sensitivity(spec, r, 0.003)
    assert np.allclose(c2, 2 * spec.weight * 0.003, rtol=AD_RTOL) and np.all(R2 == 0.003)


def _linear_rule(slope_r: float, r0: float, m0: float) -> Rule:
    """g(r) = m0 + slope_r (r - r0), a formula with a constant slope dM/dr."""
    return load_rule(f"{m0!r} + {slope_r!r}*(r - {r0!r})")


def test_lemma5_and_theorem1_hand_case():
    # alpha 0.2, c_X 5, g' = 150 per unit variance, |R_t| = 0.01 (c_RV = 0.02):
    # G = 0.2 * 5 * 150 * 0.02 = 3 (14); (15): (alpha (G - 2) - kappa) q^2 = (0.2 - 0.1) q^2 with kappa 0.1.
    m = AuditMarket(alpha=0.2, c_eff=5.0, inventory_penalty=0.1, trigger=0.01)
    rule = _linear_rule(150.0, 1e-4, 0.05)
    la = local_analysis(rule, np.array([0.01]), m, InputSpec(), last_return=0.01)
    assert la.G[0] == pytest.approx(3.0, rel=AD_RTOL)
    assert la.bound15[0] == pytest.approx(0.1 * 0.01**2, rel=1e-8)
    assert la.profitable[0] and la.exceeds_cap[0]  # Theorem 1: alpha (G - 2) = 0.2 > kappa = 0.1
    assert float(feedback_gain(0.2, 5.0, 150.0, 0.02)) == pytest.approx(3.0, rel=EXACT)
    q = np.linspace(1e-4, 0.05, 50)
    assert np.all(profit_bound(q, 0.2, 3.0, 0.1) > 0)  # every q in (0, q_max] profits
    # with G = 2.4, alpha (G - 2) = 0.08 < kappa = 0.1: not profitable, and the slope is under the cap
    la2 = local_analysis(_linear_rule(120.0, 1e-4, 0.05), np.array([0.01]), m, InputSpec(), last_return=0.01)
    assert la2.G[0] == pytest.approx(2.4, rel=AD_RTOL) and not la2.profitable[0] and not la2.exceeds_cap[0]


def test_eq16_is_the_largest_slope_with_a_non_positive_bound():
    """Corollary 1: the largest g' with (alpha (alpha c_X g' c_RV - 2) - kappa) q^2 <= 0 is (2 alpha + kappa)/(2 alpha^2 c_X |R|)."""
    alpha, c_x, kappa, R, q = 0.2, 4.5, 0.05, 0.012, 0.01
    root = brentq(lambda cg: float(profit_bound(q, alpha, feedback_gain(alpha, c_x, cg, 2 * R), kappa)), 1.0, 1e4, xtol=1e-14, rtol=1e-15)
    assert root == pytest.approx((2 * alpha + kappa) / (2 * alpha**2 * c_x * R), rel=ROOT_RTOL)
    # ... and the audit's cap reproduces it, and at the envelope |R| = sqrt(r) the design's cap (17)
    m = AuditMarket(alpha=alpha, c_eff=c_x, inventory_penalty=kappa)
    la = local_analysis(load_rule("3*sigma"), np.array([0.012, 0.02]), m, InputSpec(), last_return=R)
    assert la.cap_r[0] == pytest.approx(root, rel=ROOT_RTOL)
    for spec, cap in ((InputSpec(), CapSpec(alpha=alpha, c_eff=c_x, inventory_penalty=kappa)),
                      (InputSpec("realized_variance", 5), CapSpec(input="realized_variance", window=5, alpha=alpha, c_eff=c_x, inventory_penalty=kappa)),
                      (InputSpec("ewma", 1, 0.94), CapSpec(input="ewma", lam=0.94, alpha=alpha, c_eff=c_x, inventory_penalty=kappa))):
        vol = np.array([0.005, 0.01, 0.03])
        env = local_analysis(load_rule("3*sigma"), vol, m, spec)
        assert np.allclose(env.cap_r, cap_slope_r(cap, vol**2), rtol=AD_RTOL)


def test_eq58_costs_and_q_min():
    # G = 3 (as above, kappa 0): A = 0.2 (3 - 2) = 0.2; tau 0.001, rho 0.01, M 0.05: B = 0.002 + 0.0005 = 0.0025; q_min = 0.0125
    m = AuditMarket(alpha=0.2, c_eff=5.0, execution_cost=0.001, funding_spread=0.01, trigger=0.01)
    la = local_analysis(_linear_rule(150.0, 1e-4, 0.05), np.array([0.01]), m, InputSpec(), last_return=0.01)
    assert la.A[0] == pytest.approx(0.2, rel=1e-8) and la.B[0] == pytest.approx(0.0025, rel=EXACT)
    assert la.q_min[0] == pytest.approx(0.0125, rel=1e-8)
    assert not la.profitable[0]  # the trigger 0.01 < q_min
    assert la.bound58[0] == pytest.approx(0.2 * 1e-4 - 0.0025 * 0.01, rel=1e-8)


def test_table1_cell_in_audit_units():
    """Table 1, f = 1%, 5% -> 7%: G = 9, 140 bp of notional, ROI 20% (on m_1 = 7%).

    alpha 0.2, c_X 4.5, c_RV 0.02 (|R_t| = 0.01): g' = 9 / (0.2 * 4.5 * 0.02) = 500; M(r) = 5% and
    Delta M = 500 * 0.02 * 0.2 * 0.01 = 2%, so m_1 = 7%; (64): (9 - 2) * 20 bp = 140 bp; 140 / (100 * 0.07) = 20%."""
    m = AuditMarket(alpha=0.2, c_eff=4.5, trigger=0.01)
    la = local_analysis(_linear_rule(500.0, 1e-4, 0.05), np.array([0.01]), m, InputSpec(), last_return=0.01)
    assert la.G[0] == pytest.approx(9.0, rel=AD_RTOL)
    assert la.margin_after[0] == pytest.approx(0.07, rel=1e-8)
    assert la.profit_bps[0] == pytest.approx(140.0, rel=1e-8)
    assert la.profit_bps_64[0] == pytest.approx(140.0, rel=1e-8)
    assert la.roi_pct[0] == pytest.approx(20.0, rel=1e-8)


def test_benchmark_first_best_slope_over_the_cap():
    """M_fb = sqrt(2 r) z_0.99: dM/dsigma = 3.29 > K = 2/(alpha c_eff) = 2.22 everywhere; G = 0.9 * 3.29 = 2.96 at the envelope."""
    z = 2.3263478740408408
    m = AuditMarket(alpha=0.2, c_eff=4.5)
    la = local_analysis(load_rule(f"{z!r}*sqrt(2*r)"), np.linspace(0.004, 0.04, 7), m)
    assert np.all(la.exceeds_cap)
    assert np.allclose(la.G, 0.9 * math.sqrt(2) * z, rtol=AD_RTOL)
    assert np.allclose(la.slope_ratio, math.sqrt(2) * z / (2 / 0.9), rtol=AD_RTOL)
    at_cap = local_analysis(load_rule(f"0.012 + {2 / 0.9!r}*sigma"), np.linspace(0.004, 0.04, 7), m)
    assert not np.any(at_cap.exceeds_cap) and np.allclose(at_cap.G, 2.0, rtol=AD_RTOL)


def test_section66_threshold_crossing_gain():
    # step table: Delta M = 1% at daily vol 2%; gain per unit trigger alpha c_eff Delta M = 0.2 * 4.5 * 0.01 = 0.009;
    # q* = 0.009 / (2 * 2 alpha) = 0.01125; best net = 0.009^2 / (4 * 0.4) = 5.0625e-5; net at q = 1%: 90 - 40 = 50 bp
    rule = Rule(TableRule(np.array([0.01, 0.02]), np.array([0.04, 0.05]), "step"))
    (g,) = jump_gains(rule.discontinuities(0.005, 0.03), AuditMarket(alpha=0.2, c_eff=4.5, trigger=0.01))
    assert g.jump == pytest.approx(0.01, rel=EXACT)
    assert g.gain_per_unit_trigger == pytest.approx(0.009, rel=EXACT)
    assert g.best_trigger_adv == pytest.approx(0.01125, rel=EXACT)
    assert g.best_net == pytest.approx(5.0625e-5, rel=EXACT)
    assert g.net_bps == pytest.approx(50.0, rel=1e-9)
    assert g.reach_vol == pytest.approx(0.2 * 0.01, rel=AD_RTOL)  # input (4) at the envelope: sigma moves by alpha q


def test_proposition2_trimming_jump():
    """Trimming at c makes M jump by g(A + c^2) - g(A) at |R_t| = c (A = the other squared returns, (22) as a sum)."""
    c = 0.03
    rets = np.array([0.01, -0.01, 0.01, -c])
    prices = 1.0 + np.concatenate([[0.0], np.cumsum(rets)])
    A = 3 * 0.01**2
    rule = load_rule("0.01 + 2*sqrt(r)")
    h = 1e-9

    def margin_at(dp):
        p = prices.copy()
        p[-1] += dp
        return float(rule.margin(np.asarray(trimmed_variance(p, c, mean=False))))

    inside, outside = margin_at(+h), margin_at(-h)  # a push up makes |R_t| < c (counted), a push down drops it
    expected = 2 * (math.sqrt(A + c**2) - math.sqrt(A))
    assert inside - outside == pytest.approx(expected, rel=1e-6)
    s = directional_sensitivity(lambda p: trimmed_variance(p, c, mean=False), prices)
    assert abs(float(s.jump_up) + float(s.jump_down)) == pytest.approx(c**2, rel=1e-6)
    # winsorising caps R^2 at c^2: continuous, and flat (zero sensitivity) in the outward direction
    w = directional_sensitivity(lambda p: winsorized_variance(p, c, mean=False), prices)
    assert float(w.jump_up) == 0 and float(w.jump_down) == 0
    assert float(w.down) == 0.0 and float(w.up) == pytest.approx(2 * -c, rel=AD_RTOL)
    # per state, with the mean of m = 4 returns: jump g(r) - g(r - c^2/4)
    m = AuditMarket(alpha=0.2, c_eff=4.5)
    t = trimming_jumps(rule, np.array([0.02]), c, InputSpec("realized_variance", 4), m)
    assert t["jump"][0] == pytest.approx(2 * (0.02 - math.sqrt(0.02**2 - c**2 / 4)), rel=EXACT)


def test_section42_inputs_by_autodiff():
    rets = np.diff(PRICES)
    m = rets.size
    rv = float(np.sum(rets**2))
    # 4.2.2: d sigma_hat / dP_t = R_t / sqrt((m - 1) RV) for sigma_hat = sqrt(RV/(m - 1)); the VaR margin is sqrt(h) z sigma_hat
    z = 2.3263478740408408
    s = directional_sensitivity(lambda p: var_multiple(p, 0.99, 2.0), PRICES)
    assert float(s.down) == pytest.approx(math.sqrt(2) * z * 0.02 / math.sqrt((m - 1) * rv), rel=AD_RTOL)
    # EWMA: dr/dP_t = 2 (1 - lambda) R_t
    e = directional_sensitivity(lambda p: sampled_ewma(p, 0.94, 1e-4), PRICES)
    assert float(e.down) == pytest.approx(2 * 0.06 * 0.02, rel=AD_RTOL)
    # 4.2.3: scan maximum at a tie (|R| = 0.02 twice): one-sided slopes sqrt(h) and 0
    sc = directional_sensitivity(lambda p: scan_risk(p, 2.0), PRICES)
    assert float(sc.down) == pytest.approx(math.sqrt(2), rel=AD_RTOL) and float(sc.up) == pytest.approx(0.0, abs=1e-12)


def test_appendix_b_targets_and_c_eff():
    # (61): x* = (b - rho M)_+ / (chi + eta s2): b = (1, 0.5, 0.001), rho 0.01, M 0.05, chi 2, eta 100, s2 = 1e-4 -> denominator 2.01
    b = np.array([1.0, 0.5, 0.001])
    x = equilibrium_targets(b, 0.05, 2.0, 0.01, 100.0, 1e-4)
    assert np.allclose(x, np.maximum(b - 0.0005, 0) / 2.01, rtol=EXACT)
    # (63) at M = 0.05 with E = (0.02, 0.02, 0.02): caps E/M = 0.4; accounts 1 (0.497) and 2 (0.2485) -> only account 1 binds
    c = strategic_c_eff(np.full(3, 0.02), b, 0.05, 0.05, 2.0, 0.01, 100.0, 1e-4)
    assert c == pytest.approx(0.02 / 3 / 0.05**2, rel=EXACT)


def test_appendix_b_anticipation_dampens_but_does_not_eliminate():
    rng = np.random.default_rng(0)
    equity, benefit = rng.lognormal(0, 0.5, 300) * 0.01, rng.uniform(0, 1, 300)
    rule = load_rule("2.3263478740408408*sqrt(2*r)")
    m = AuditMarket(alpha=0.2, c_eff=4.5)
    naive = equilibrium_c_eff(rule, [0.01], m, equity, benefit, chi=1.0, rho=0.01, eta=0.0)[0]
    damped = equilibrium_c_eff(rule, [0.01], m, equity, benefit, chi=1.0, rho=0.01, eta=1e4)[0]
    mixed = equilibrium_c_eff(rule, [0.01], m, equity, benefit, chi=1.0, rho=0.01, eta=1e6)[0]
    assert naive.outcome == "manipulation" and naive.c_eff == naive.c_eff_naive
    assert damped.outcome == "manipulation" and 0 < damped.c_eff < naive.c_eff      # Proposition 3
    assert mixed.outcome == "mixed" and 0 < mixed.probability < 1
    # at indifference c_X^eff sits on the gain-condition boundary (2 alpha)/(alpha^2 c_g c_Gamma)
    cg = float(rule.slope(np.array(1e-4)))
    assert mixed.c_eff == pytest.approx(0.4 / (0.04 * cg * 0.02), rel=1e-8)
