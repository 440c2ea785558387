"""The portfolio audit (Section 5, D.5-D.6; audit/portfolio.py, audit/build.py): H_t of (29), the cap
(88) and the cap over every direction, the one-contract reduction to the single-contract audit, the Section 5.3
market simulation against Lemma 10's identity, the capped optimum's H_t, and the command line.

References: the D.6 example (A = alpha [[1, rho], [rho, 1]], B = c/2 (1, 1), d = -(1, 1)/sqrt(2), alpha = 0.2,
c = 4.5, rho = 0.5) on the grid, states and shocks of examples/benchmark.toml; the first-best of that benchmark,
M_fb = z_0.99 sqrt(2 r), whose slope dM/dsigma = sqrt(2) z_0.99 = 3.29 (37).
"""

from __future__ import annotations

import csv
import json
import math
import tomllib

import numpy as np
import pytest
from conftest import EXAMPLES

from margin_design.audit import BAND_Z, AuditOptions, Fundamentals, InputSpec, build_audit, load_rule
from margin_design.audit.local import SLOPE_RTOL
from margin_design.audit.portfolio import (
    AGREE_Z,
    Liquidation,
    PortfolioMarket,
    PortfolioState,
    portfolio_closed_form,
    portfolio_fundamentals,
    portfolio_local_analysis,
    portfolio_round_trip_curve,
    simulate_portfolio_trades,
)
from margin_design.cli_audit import main

ALPHA, C, RHO = 0.2, 4.5, 0.5          # D.6 with the benchmark market (Sections 3.6, 6.4)
SQRT2 = math.sqrt(2.0)
Z99 = 2.3263478740408408
FB_TEXT = f"{Z99!r}*sqrt(2*r)"         # (37) at the benchmark: M_fb = z sqrt(2 r), dM/dsigma = sqrt(2) z
FIRST_BEST = load_rule(FB_TEXT)
#: Float agreement of quantities computed by two routes (closed forms, the equivalent contract, K = 1 reductions).
EXACT_RTOL = 1e-12
#: A rule built at the cap sits on it up to the solver's rounding: H_t within this of 0 (relative to b'Ab).
ON_CAP_RTOL = 2 * SLOPE_RTOL
#: Monte Carlo paths in the simulation tests; agreement within AGREE_Z standard errors (seeded, so deterministic).
PATHS = 4000
VARIANCE = InputSpec("variance", 1)


def d6_market(rho: float = RHO, **kw) -> PortfolioMarket:
    return PortfolioMarket([[ALPHA, ALPHA * rho], [ALPHA * rho, ALPHA]], [C / 2, C / 2], [-1 / SQRT2, -1 / SQRT2], **kw)


def split_market(rho: float = RHO, **kw) -> PortfolioMarket:
    """B loads on contract 1 only, d on contract 2 only: psi = alpha rho c comes from cross-impact alone."""
    return PortfolioMarket([[ALPHA, ALPHA * rho], [ALPHA * rho, ALPHA]], [C, 0.0], [0.0, -1.0], **kw)


def config(portfolio: dict | None, points: int = 40, kappa: float = 0.0, **objective) -> dict:
    cfg = tomllib.loads((EXAMPLES / "benchmark.toml").read_text())
    cfg["grid"]["points"] = points
    cfg["objective"].update(objective)
    if portfolio is not None:
        cfg["market"] = {"inventory_penalty": kappa}
        cfg["portfolio"] = portfolio
    else:
        cfg["market"]["inventory_penalty"] = kappa
    return cfg


D6 = {"assets": ["A1", "A2"], "impact": [[ALPHA, ALPHA * RHO], [ALPHA * RHO, ALPHA]], "liquidation": [C / 2, C / 2],
      "trigger": [-1 / SQRT2, -1 / SQRT2]}
ONE = {"assets": ["X"], "impact": [[ALPHA]], "liquidation": [C], "trigger": [-1.0]}


def write(tmp_path, cfg: dict, name: str = "market.toml"):
    path = tmp_path / name
    path.write_text("".join(f"[{s}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in keys.items()) + "\n" for s, keys in cfg.items()))
    return path


# ---------------------------------------------------------------------- H_t (29) and the caps


def test_h_t_of_the_d6_example_against_the_closed_form():
    """D.6: b = (1/2, 1/2), b'Ab = alpha (1 + rho)/2, -d'AB = psi = alpha c (1 + rho)/sqrt(2) (90), and along M_fb
    c_g c_r = dM/dsigma = sqrt(2) z, so (29) is H_t = alpha (1 + rho)/2 (z alpha c (1 + rho) - 2) in every state."""
    pm = d6_market()
    vol = np.linspace(0.004, 0.04, 25)
    la, pl = portfolio_local_analysis(FIRST_BEST, vol, pm, VARIANCE)
    bab = ALPHA * (1 + RHO) / 2
    psi = ALPHA * C * (1 + RHO) / SQRT2
    assert pm.bab == pytest.approx(bab, rel=EXACT_RTOL) and pm.psi == pytest.approx(psi, rel=EXACT_RTOL)
    H = bab * (Z99 * ALPHA * C * (1 + RHO) - 2)
    np.testing.assert_allclose(pl.H, H, rtol=1e-9)                     # c_g c_r from the rule by JAX: 1e-9
    assert H > 0 and pl.theorem3.all() and pl.exceeds_cap88.all()     # Theorem 3's condition holds everywhere
    np.testing.assert_allclose(pl.c_r, 2 * vol, rtol=EXACT_RTOL)      # c_r = 2 sqrt(r) s_f, s_f = 1 at the envelope
    # the equivalent contract's (15) is q^2 H_t, its gain G = c_g c_r psi, its cap (16) the cap (88) (2/psi in vol units)
    np.testing.assert_allclose(la.bound15, pm.trigger**2 * pl.H, rtol=1e-12)
    np.testing.assert_allclose(la.G, SQRT2 * Z99 * psi, rtol=1e-9)
    np.testing.assert_allclose(2 * vol * la.cap_r, 2 / psi, rtol=EXACT_RTOL)
    assert pm.cap_vol == pytest.approx(2 / psi, rel=EXACT_RTOL)
    # the trigger moves the margin by c_g c_r psi q/||B||_1 (the equivalent contract's alpha q c_Gamma c_g would not)
    np.testing.assert_allclose(la.margin_after - la.margin, SQRT2 * Z99 * psi * pm.trigger / C, rtol=1e-9)


def test_h_t_with_inventory_penalty_is_the_equivalent_contracts_gain_coefficient():
    """H_t - kappa ||b||^2 is E[Pi]/q^2 of Theorem 3's trip with kappa (11), i.e. (58)'s A = alpha_e (G - 2) - kappa_e;
    its sign is the cap K = (2 + kappa ||B||^2/B'AB)/(s_f psi) of design/portfolio.py."""
    pm = d6_market(inventory_penalty=0.1)
    vol = np.linspace(0.004, 0.04, 25)
    la, pl = portfolio_local_analysis(FIRST_BEST, vol, pm, VARIANCE)
    np.testing.assert_allclose(pl.H_kappa, la.A, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(pl.H - pl.H_kappa, 0.1 * 0.5, rtol=EXACT_RTOL)   # kappa ||b||^2, b = (1/2, 1/2)
    B = np.array([C / 2, C / 2])
    A = np.array([[ALPHA, ALPHA * RHO], [ALPHA * RHO, ALPHA]])
    assert pm.cap_vol == pytest.approx((2 + 0.1 * B @ B / (B @ A @ B)) / pm.psi, rel=EXACT_RTOL)


@pytest.mark.parametrize("make", [d6_market, split_market], ids=["d6", "split"])
@pytest.mark.parametrize("kappa", [0.0, 0.3])
def test_separated_direction_has_the_largest_gain_per_unit_cost(make, kappa):
    """Over unit-l1 directions (a fine angle grid for K = 2), Lemma 10's first-order margin-channel gain
    -c l(a) m(a)_+ per unit own cost a'Ca (C = 2A + kappa I) is largest at a*, where it equals c Phi. So every
    direction loses when c Phi < 1 and a* profits when c Phi > 1: K_all = 1/(s_f Phi) is the two-period cap over
    every direction, and K_all <= K (88) (Theorem 3's direction b is one of them)."""
    pm = make(inventory_penalty=kappa)
    theta = np.linspace(0, 2 * np.pi, 20001)
    dirs = np.stack([np.cos(theta), np.sin(theta)], axis=1)
    dirs /= np.abs(dirs).sum(axis=1, keepdims=True)
    u, v, Cm = pm.pressure_vector, pm.impact @ pm.direction, pm.cost_matrix
    own = np.einsum("ni,ij,nj->n", dirs, Cm, dirs)
    a = pm.direction_of("separated")
    assert abs(float(np.abs(a).sum()) - 1.0) < 1e-15
    for c in (0.5 / pm.phi, 2.0 / pm.phi):
        gain = -c * (dirs @ u) * np.maximum(dirs @ v, 0)
        at_best = float(pm.first_order_coefficient("separated", c)) + float(a @ Cm @ a)
        assert at_best / float(a @ Cm @ a) == pytest.approx(c * pm.phi, rel=1e-12)
        assert np.max(gain / own) <= c * pm.phi * (1 + 1e-12) and np.max(gain / own) == pytest.approx(c * pm.phi, rel=1e-6)
        if c * pm.phi < 1:
            assert np.all(gain - own < 0)
        else:
            assert pm.first_order_coefficient("separated", c) > 0
    assert pm.cap_vol_all <= pm.cap_vol * (1 + EXACT_RTOL)


def test_caps_of_the_aligned_and_the_split_portfolio():
    """K_all = K when d and -B are aligned (D.6, kappa = 0); with B on contract 1 and d on contract 2,
    Phi = (sqrt(B'AB d'Ad) + psi)/4 = alpha c (1 + rho)/4 and K_all/K = 2 rho/(1 + rho) < 1. The separated trip
    then sells both contracts: a trigger leg in contract 2 (d's) and a harvest leg in contract 1 (B's)."""
    d6 = d6_market()
    assert d6.cap_vol_all == pytest.approx(d6.cap_vol, rel=EXACT_RTOL)
    np.testing.assert_allclose(d6.direction_of("separated"), d6.direction_of("theorem3"), atol=1e-15)
    sp = split_market()
    assert sp.psi == pytest.approx(ALPHA * RHO * C, rel=EXACT_RTOL)
    assert sp.phi == pytest.approx(ALPHA * C * (1 + RHO) / 4, rel=EXACT_RTOL)
    assert sp.cap_vol_all / sp.cap_vol == pytest.approx(2 * RHO / (1 + RHO), rel=EXACT_RTOL)
    trig, harv = sp.separated_legs()
    np.testing.assert_allclose(trig, [0.0, -0.5], atol=1e-15)
    np.testing.assert_allclose(harv, [-0.5, 0.0], atol=1e-15)
    assert sp.direction @ sp.impact @ trig > 0 and harv @ sp.pressure_vector < 0   # m > 0 (trigger), l < 0 (harvest)
    # psi = 0 (d orthogonal to AB): no cap from (88), but K_all = 4/(s_f sqrt(B'AB d'Ad)) is finite
    hedged = PortfolioMarket(d6.impact, d6.liquidation, [1 / SQRT2, -1 / SQRT2])
    assert hedged.psi == 0 and math.isinf(hedged.cap_vol)
    B, d = hedged.liquidation, hedged.direction
    assert hedged.cap_vol_all == pytest.approx(4 / math.sqrt((B @ hedged.impact @ B) * (d @ hedged.impact @ d)), rel=1e-12)


# ---------------------------------------------------------------------- the Section 5.3 market


def test_the_simulated_trip_follows_23_25_26_on_one_path():
    """Linear response: P_t = V_t + A a_t (23), M_{t+1} = g(r(a)) (25), Delta X_{t+1} = -B Delta M (26),
    P_{t+1} = V_{t+1} + A(-B Delta M - a_t), Pi = a_t'(P_{t+1} - P_t) (24)."""
    pm = d6_market()
    h = pm.holdings(VARIANCE)
    state = PortfolioState.envelope(1e-4, h, 5)
    m0 = float(FIRST_BEST.margin(1e-4))
    liq = Liquidation.linear(pm.liquidation, m0)
    a = 0.01 * pm.direction_of("theorem3")
    shock = np.array([[[0.003, -0.002]]])
    fund = Fundamentals(shock, np.array([1.0]), True, "one path")
    cash, tr = simulate_portfolio_trades(FIRST_BEST, liq, state, pm, np.stack([a, -a])[None], fund, trace=True)
    p_t, p_t1 = tr["price"][0, 0, 0], tr["price"][0, 0, 1]
    v_t, v_t1 = tr["fundamental"][0, 0, 0], tr["fundamental"][0, 0, 1]
    np.testing.assert_allclose(p_t, v_t + pm.impact @ a, atol=1e-15)
    # the sale along b moves h'P by h'Aa = -q psi/||B||_1, so sigma' = sigma + q psi/||B||_1 and M = sqrt(2) z sigma'
    m1 = SQRT2 * Z99 * (0.01 + 0.01 * pm.psi / C)
    assert tr["margin"][0, 0, 1] == pytest.approx(m1, rel=1e-12)
    np.testing.assert_allclose(tr["flow"][0, 0, 1], -pm.liquidation * (m1 - m0), rtol=1e-12)
    np.testing.assert_allclose(p_t1, v_t1 + pm.impact @ (-pm.liquidation * (m1 - m0) - a), atol=1e-15)
    assert cash[0, 0] == pytest.approx(a @ (p_t1 - p_t), abs=1e-17)


@pytest.mark.parametrize("kind", ["linear", "population"])
@pytest.mark.parametrize("make, strategy, vol", [(d6_market, "theorem3", 0.005), (d6_market, "theorem3", 0.02),
                                                 (split_market, "separated", 0.01), (split_market, "theorem3", 0.01)])
def test_monte_carlo_mean_within_its_band_of_lemma_10(kind, make, strategy, vol):
    """The Monte Carlo mean of the two-period trip is within AGREE_Z standard errors of the exact closed form, which is
    Lemma 10's -l(a) Delta M - 2 a'Aa (28) under the linear response (26) and the same identity with the sector's exact
    liquidation L for the populations (kappa = 0.05, tau = 1 bp, rho = 10 bp on margin: all costs included)."""
    pm = make(inventory_penalty=0.05, execution_cost=1e-4, funding_spread=1e-3)
    q = np.array([0.0025, 0.01, 0.02])
    state = PortfolioState.envelope(vol * vol, pm.holdings(VARIANCE), 5)
    m0 = float(FIRST_BEST.margin(vol * vol))
    liq = Liquidation.linear(pm.liquidation, m0) if kind == "linear" else Liquidation.population(pm.liquidation, m0, 400, seed=3)
    c = portfolio_round_trip_curve(FIRST_BEST, liq, state, pm, strategy, q, portfolio_fundamentals(vol, 2, 1, PATHS, seed=11))
    assert np.all(np.abs(c.mean - c.closed_form) <= AGREE_Z * c.se)
    if kind == "linear":
        np.testing.assert_allclose(c.closed_form, c.lemma10, rtol=1e-12, atol=1e-20)
    else:   # forced sales per unit of margin fall as margin rises (E/M is convex): below the linear response
        assert np.all(c.closed_form < c.lemma10)


def test_first_best_profitable_where_h_positive_and_capped_not_d6():
    """Theorem 4 in the simulation: along M_fb (H_t > 0) Theorem 3's trip is significantly profitable; along a rule
    at the cap (88), M = m + (2/psi) sigma, it is not (population sector: strictly negative, 2nd order)."""
    pm = d6_market()
    capped = load_rule(f"0.0137 + {2 / pm.psi!r}*sigma")
    for vol in (0.005, 0.02):
        state = PortfolioState.envelope(vol * vol, pm.holdings(VARIANCE), 5)
        fund = portfolio_fundamentals(vol, 2, 1, PATHS, seed=5)
        out = {}
        for name, rule in (("fb", FIRST_BEST), ("cap", capped)):
            liq = Liquidation.population(pm.liquidation, float(rule.margin(vol * vol)), 400, seed=0)
            out[name] = portfolio_round_trip_curve(rule, liq, state, pm, "theorem3", np.array([0.0025, 0.005, 0.01]), fund)
        assert np.all(out["fb"].closed_form > 0) and out["fb"].significantly_positive.any()
        assert not out["cap"].significantly_positive.any() and np.all(out["cap"].closed_form < 0)
        np.testing.assert_allclose(out["cap"].lemma10, 0.0, atol=1e-18)   # Lemma 10 with linear B: exactly 0 at the cap


def test_split_trigger_harvest_trip_profits_where_theorem3_does_not():
    """B on contract 1, d on contract 2: along M_fb, H_t < 0 (Theorem 3's trip loses) but the slope sqrt(2) z = 3.29
    exceeds K_all = 4/(alpha c (1 + rho)) = 2.96, so the trigger-harvest trip profits (linear response (26))."""
    pm = split_market()
    vol = 0.01
    la, pl = portfolio_local_analysis(FIRST_BEST, np.array([vol]), pm, VARIANCE)
    assert pl.H[0] < 0 and not pl.exceeds_cap88[0] and pl.exceeds_cap_all[0] and pl.separated[0] > 0
    state = PortfolioState.envelope(vol * vol, pm.holdings(VARIANCE), 5)
    liq = Liquidation.linear(pm.liquidation, float(FIRST_BEST.margin(vol * vol)))
    fund = portfolio_fundamentals(vol, 2, 1, PATHS, seed=7)
    q = np.array([0.005, 0.01])
    sep = portfolio_round_trip_curve(FIRST_BEST, liq, state, pm, "separated", q, fund)
    thm = portfolio_round_trip_curve(FIRST_BEST, liq, state, pm, "theorem3", q, fund)
    assert sep.significantly_positive.all() and np.all(thm.upper < 0)
    cf = portfolio_closed_form(FIRST_BEST, liq, state, pm, pm.direction_of("separated"), q)
    np.testing.assert_allclose(cf["first_order"], q**2 * pl.separated[0], rtol=1e-9)   # the first order is exact here (M linear in sigma')


# ---------------------------------------------------------------------- the capped optimum


@pytest.mark.parametrize("kappa", [0.0, 0.1])
def test_capped_optimum_h_t_on_and_below_the_cap(tmp_path, kappa):
    """What is exactly true of the capped optimum g* (read linearly in sigma): c_g c_r psi = s_f psi dg*/dsigma <=
    s_f psi K = 2 + kappa ||B||^2/B'AB in every state, with equality on saturated links. So H_t - kappa ||b||^2 <= 0
    everywhere and = 0 where g* is at the cap, < 0 where it tracks or pools. With kappa = 0 that is H_t <= 0; with
    kappa > 0, H_t > 0 on the saturated links (Theorem 3 ignores the penalty), so 'H_t <= 0' is not the invariant.
    The top state has g* flat beyond the grid: H_t = -2 b'Ab."""
    cfg = config(D6, points=60, kappa=kappa, liquidation_weight=2.0)
    audit = build_audit(load_rule("3*sigma"), write(tmp_path, cfg), AuditOptions(simulate=False))
    pl = audit.portfolio["local"]["capped"]
    pm = audit.portfolio["market"]
    tol = ON_CAP_RTOL * pm.bab
    sat = np.zeros(pl.vol.size, dtype=bool)
    for s in audit.schedule.segments:
        if s["kind"] == "saturated":
            sat[s["start"]:s["end"]] = True
    assert sat.any() and (~sat[:-1]).any()                          # both saturated and tracking links
    assert np.all(pl.H_kappa <= tol)
    np.testing.assert_allclose(pl.H_kappa[sat], 0.0, atol=tol)
    assert np.all(pl.H_kappa[~sat] < -tol)
    assert pl.H[-1] == pytest.approx(-2 * pm.bab, rel=EXACT_RTOL)
    assert not pl.exceeds_cap88.any() and not audit.local_capped.exceeds_cap.any()
    if kappa == 0:
        assert np.all(pl.H <= tol) and not pl.theorem3.any()
    else:
        assert np.all(pl.H[sat] > tol) and pl.theorem3[sat].all()


# ---------------------------------------------------------------------- one contract: the single-contract audit


def test_one_contract_portfolio_audit_is_the_single_contract_audit(tmp_path):
    """A = [[alpha]], B = [c_eff], d = [-1]: the portfolio audit reproduces the single-contract audit's G, cap, bounds
    (15)/(58), margin after the trigger, jumps (Section 6.6), trimming, other inputs, costs, and its simulation (the
    closed form of Lemma 5 and the Monte Carlo mean and error, path by path); H_t = alpha (G - 2)."""
    rule = load_rule(FB_TEXT).with_overlays(addons=((0.02, 0.004),), name="fb + add-on")
    opts = dict(paths=400, trim=0.03, execution_cost=1e-4, funding_spread=1e-3)
    single = build_audit(rule, write(tmp_path, config(None, kappa=0.05), "single.toml"), AuditOptions(max_horizon=1, **opts))
    port = build_audit(rule, write(tmp_path, config(ONE, kappa=0.05), "one.toml"), AuditOptions(**opts))
    for name in ("G", "cap_r", "A", "B", "q_min", "bound15", "bound58", "margin_after", "profit_bps", "roi_pct", "c_gamma", "c_x"):
        np.testing.assert_allclose(getattr(port.local, name), getattr(single.local, name), rtol=EXACT_RTOL, atol=1e-15, err_msg=name)
    np.testing.assert_allclose(port.portfolio["local"]["rule"].H, ALPHA * (single.local.G - 2), rtol=EXACT_RTOL, atol=1e-15)
    assert len(port.jumps) == len(single.jumps) == 1
    for a, b in zip(port.jumps, single.jumps):
        assert_same_record(a.to_dict(), b.to_dict())
    np.testing.assert_allclose(port.trim["gain_per_unit_trigger"], single.trim["gain_per_unit_trigger"], rtol=EXACT_RTOL)
    assert len(port.risk_inputs) == len(single.risk_inputs) > 0
    for a, b in zip(port.risk_inputs, single.risk_inputs):
        assert_same_record(a, b)
    assert port.costs == pytest.approx(single.costs, rel=EXACT_RTOL)
    sim = port.portfolio["simulation"]
    for k, c1 in enumerate(single.simulation["curves_obj"]["rule"]):
        c = sim.curves["rule"]["theorem3"][k]
        np.testing.assert_allclose(c.closed_form, c1.closed_form, rtol=EXACT_RTOL)
        np.testing.assert_allclose(c.mean, c1.mean, rtol=EXACT_RTOL)
        np.testing.assert_allclose(c.se, c1.se, rtol=EXACT_RTOL)


def assert_same_record(a: dict, b: dict) -> None:
    """Equal keys; floats equal to EXACT_RTOL, everything else exactly."""
    assert a.keys() == b.keys()
    for key, value in b.items():
        if isinstance(value, float) and not isinstance(value, bool):
            assert a[key] == pytest.approx(value, rel=EXACT_RTOL, abs=1e-15), key
        else:
            assert a[key] == value, key


# ---------------------------------------------------------------------- the command line


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_portfolio_audit_writes_the_portfolio_block(tmp_path, capsys):
    market = write(tmp_path, config(D6))
    code, out, err = run_cli(capsys, FB_TEXT, "--market", market, "--paths", "4000", "--out", tmp_path / "a")
    assert code == 0, err
    assert "Portfolio margining (Section 5, D.5-D.6)" in out and "H_t > 0 (Theorem 3 holds) in 40 of 40 states" in out
    assert "Profit table" in out
    folder = tmp_path / "a"
    doc = json.loads((folder / "audit.json").read_text())
    pf = doc["portfolio"]
    assert pf["market"]["psi"] == pytest.approx(ALPHA * C * (1 + RHO) / SQRT2, rel=EXACT_RTOL)
    assert pf["market"]["cap88_dm_dvol"] == pytest.approx(2 / pf["market"]["psi"], rel=EXACT_RTOL)
    assert pf["rules"]["first_best"]["states_H_positive"] == 40 and pf["rules"]["capped"]["states_H_positive"] == 0
    checks = doc["simulation"]["checks"]
    assert checks["a_monte_carlo_agrees"] and checks["b_first_best_profitable_where_H_positive"] and checks["c_capped_not_profitable_theorem3"]
    states = list(csv.DictReader((folder / "states.csv").read_text().splitlines()))
    assert len(states) == 40 and all(s["theorem3_holds"] == "True" for s in states)
    assert float(states[0]["cap88_dm_dvol"]) == pytest.approx(2 / pf["market"]["psi"], rel=1e-12)
    assert set(doc["state_columns"]) >= set(states[0])               # every column has its unit
    md = (folder / "portfolio.md").read_text()
    assert "## Profit table" in md and "| capped g* | theorem3 |" in md
    profits = list(csv.DictReader((folder / "portfolio_profits.csv").read_text().splitlines()))
    assert len(profits) == 4 * 3 * 2 * 6                             # states x rules x strategies x q
    assert (folder / "figures" / "profit_vs_q.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--accounts", "acc.csv", "--chi", "1"], "--accounts models the strategic constrained traders of one contract"),
        (["--data", "sp500"], "--data sp500 is one index's price series"),
        (["--max-horizon", "2"], "--max-horizon sets the single-contract multi-period search"),
    ],
)
def test_cli_refuses_single_contract_options_for_a_portfolio(tmp_path, capsys, extra, match):
    market = write(tmp_path, config(D6))
    code, out, err = run_cli(capsys, FB_TEXT, "--market", market, "--no-simulation", *extra)
    assert code == 2 and out == ""
    assert match in err and err.count("\n") == 1


def test_cli_liquidation_flag_is_for_portfolios(tmp_path, capsys):
    market = write(tmp_path, config(None))
    code, out, err = run_cli(capsys, FB_TEXT, "--market", market, "--no-simulation", "--liquidation", "linear")
    assert code == 2 and "--liquidation linear applies to a [portfolio] --market" in err and err.count("\n") == 1


# ---------------------------------------------------------------------- the design's default cap, every direction

SPLIT = {"assets": ["A1", "A2"], "impact": [[ALPHA, ALPHA * RHO], [ALPHA * RHO, ALPHA]], "liquidation": [C, 0.0],
         "trigger": [0.0, -1.0]}


@pytest.mark.parametrize("directions", ["all", "liquidation"])
def test_the_designs_capped_optimum_resists_the_trigger_harvest_trip_only_with_the_all_direction_cap(tmp_path, directions):
    """B on contract 1, d on contract 2, a cost that pushes the first-best above both caps. Under the paper's (88)
    (trips along B only) the capped optimum stays profitable for the trigger-harvest trip of 5.6, which is what the
    audit found; under the default cap over every two-period trip, K_all = 1/(s_f Phi), it is not."""
    pf = dict(SPLIT, cap_directions=directions)
    cfg = config(pf, points=60)
    audit = build_audit(load_rule("3*sigma"), write(tmp_path, cfg), AuditOptions(simulate=False))
    pl = audit.portfolio["local"]["capped"]
    pm = audit.portfolio["market"]
    tol = ON_CAP_RTOL * pm.bab
    if directions == "all":
        assert not pl.exceeds_cap_all.any() and np.all(pl.separated <= tol)
    else:
        assert pl.exceeds_cap_all.any() and np.any(pl.separated > tol)


# ---------------------------------------------------------------------- check (c) at the knife-edge of the cap

#: Seed and path count of a D.6 state (vol 1%, q = 0.01, linear response (26)) whose shared Monte Carlo noise is
#: z = +2.01 standard errors: the rule exactly at the cap K_all has exact profit 0 (3e-21, rounding) there, yet its mean
#: +6.8e-06 is above its 95% band 6.7e-06 (found by scanning seeds 0..39; the test asserts the excursion happens).
EXCURSION_SEED, EXCURSION_PATHS = 1, 400


def test_capped_check_ignores_a_noise_excursion_at_the_knife_edge():
    """A rule saturating the cap has E[Pi] = 0 exactly along b with the linear response; a Monte Carlo mean above its
    band there is the band's one-sided 2.5% false alarm (the reported `c_capped_not_profitable_theorem3: False` of
    portfolio_long with --liquidation linear --seed 18, or the population sector with --seed 15). Check (c) must not
    count it, and must still count a rule over the cap whose exact profit is positive beyond the band."""
    from margin_design.audit import PROFIT_TOL
    from margin_design.audit.portfolio import simulate_portfolio

    pm = d6_market()
    at_cap = load_rule(f"{pm.cap_vol_all!r}*sigma")
    sim = simulate_portfolio({"first_best": FIRST_BEST, "capped": at_cap}, pm, VARIANCE, (0.01,), (0.01,), paths=EXCURSION_PATHS,
                             seed=EXCURSION_SEED, liquidation="linear")
    c = sim.curves["capped"]["theorem3"][0]
    assert abs(c.closed_form[0]) <= PROFIT_TOL                        # the knife-edge: exact profit 0 up to rounding
    assert c.significantly_positive[0] and abs(c.z[0]) <= AGREE_Z      # the precondition: an excursion within the MC error
    assert c.noise_excursion[0] and not c.profitable[0]
    checks = sim.checks()
    assert checks["c_capped_not_profitable_theorem3"] is True and checks["c_capped_noise_excursion_states"] == 1
    assert checks["capped_theorem3_profitable_states"] == 0
    # control: twice the cap, on the same paths, profits beyond the band and is counted
    over = simulate_portfolio({"first_best": FIRST_BEST, "capped": load_rule(f"{2 * pm.cap_vol_all!r}*sigma")}, pm, VARIANCE, (0.01,),
                              (0.01,), paths=EXCURSION_PATHS, seed=EXCURSION_SEED, liquidation="linear")
    co = over.curves["capped"]["theorem3"][0]
    assert co.closed_form[0] > BAND_Z * co.se[0] and co.profitable[0] and not co.noise_excursion[0]
    assert over.checks()["c_capped_not_profitable_theorem3"] is False
