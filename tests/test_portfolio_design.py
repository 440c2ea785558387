"""Portfolio margining as a design problem (Sections 5, 6.5, D.5-D.6; design/portfolio.py).

References: the single-contract solve (the reduction is exact), the D.6 closed forms (89)-(93), and the
printed cells of (93).
"""

from __future__ import annotations

import copy
import json
import math
import tomllib

import numpy as np
import pytest
from conftest import EXAMPLES

from margin_design.cli import main
from margin_design.design.config import problem_from_dict
from margin_design.design.portfolio import check_impact_matrix
from margin_design.errors import ConfigError
from margin_design.solvers import solve

# a portfolio solve and its single-contract equivalent agree to this (margin ratio)
REDUCTION_ATOL = 1e-12
# printed precision of (93): 39.6%, 26.4%, 19.8%
PRINTED_PCT = 0.05

ALPHA, C = 0.2, 4.5  # the benchmark market (Sections 3.6, 6.4): alpha = 0.2, c_eff = 4.5
SQRT2 = math.sqrt(2.0)


def benchmark(**objective) -> dict:
    cfg = tomllib.loads((EXAMPLES / "benchmark.toml").read_text())
    cfg["grid"]["points"] = 120
    cfg["objective"].update(objective)
    return cfg


def two_asset(rho: float, liquidation_weight: float = 0.05, **cap) -> dict:
    """The D.6 example: A = alpha [[1, rho], [rho, 1]], B = c/2 (1, 1), d = -(1, 1)/sqrt(2)."""
    cfg = benchmark(liquidation_weight=liquidation_weight)
    cfg["market"] = {"inventory_penalty": 0.0}
    cfg["cap"].update(cap)
    cfg["portfolio"] = {
        "assets": ["A1", "A2"],
        "impact": [[ALPHA, ALPHA * rho], [ALPHA * rho, ALPHA]],
        "liquidation": [C / 2, C / 2],
        "trigger": [-1 / SQRT2, -1 / SQRT2],
    }
    return cfg


@pytest.mark.parametrize("rho", [0.0, SQRT2 - 1.0, 0.8], ids=["below", "at", "above"])
def test_d6_portfolio_equals_the_single_contract_design_it_reduces_to(rho):
    """(89)-(92): psi = ||AB|| = alpha c (1 + rho)/sqrt(2); the portfolio design is the single-contract one with
    alpha c' = psi (cap scaled by sqrt(2)/(1 + rho)) and lambda' c'^2 = lambda_L ||AB||^2 (so lambda' = lambda_L alpha^2)."""
    pf = problem_from_dict(two_asset(rho))
    spec = pf.cap.portfolio
    psi = ALPHA * C * (1 + rho) / SQRT2
    assert spec.psi == pytest.approx(psi, rel=1e-15) and spec.price_pressure == pytest.approx(psi, rel=1e-15)  # (89), (90)
    assert pf.cap.slope_vol / (2 / (ALPHA * C)) == pytest.approx(SQRT2 / (1 + rho), rel=1e-14)  # (92)
    single = benchmark(liquidation_weight=0.05 * ALPHA**2)
    single["market"]["c_eff"] = C * (1 + rho) / SQRT2
    sp = problem_from_dict(single)
    a, b = solve(pf), solve(sp)
    assert a.certificate.ok and b.certificate.ok
    np.testing.assert_allclose(a.schedule, b.schedule, rtol=0, atol=REDUCTION_ATOL)
    assert [s["kind"] for s in a.segments] == [s["kind"] for s in b.segments]
    if rho == SQRT2 - 1.0:  # the threshold: exactly the single-contract benchmark
        bench = solve(problem_from_dict(benchmark(liquidation_weight=0.05 * ALPHA**2)))
        np.testing.assert_allclose(a.schedule, bench.schedule, rtol=0, atol=REDUCTION_ATOL)


@pytest.mark.parametrize("rho, printed", [(0.0, 39.6), (0.5, 26.4), (1.0 - 1e-9, 19.8)])
def test_d6_max_margin_increase_for_ten_vol_points_from_the_solved_design(rho, printed):
    """(93): max Delta m/m for +10 annualised-vol points at m = 5% is 28% x sqrt(2)/(1 + rho): 39.6%, 26.4%, 19.8%
    at rho = 0, 0.5, 1 (D.6, 'A calibration'). Read off the solved portfolio rule: the benchmark saturates
    everywhere, so its slope dM/dsigma is the cap. (rho = 1 makes A singular, which Assumption 6 refuses;
    1 - 1e-9 gives the printed cell.)"""
    res = solve(problem_from_dict(two_asset(rho, liquidation_weight=0.0)))
    assert [s["kind"] for s in res.segments] == ["saturated"]
    slope = np.diff(res.schedule) / np.diff(res.vol)  # margin ratio per unit daily vol
    rise = slope.mean() * 0.10 / math.sqrt(252.0)  # +10 annualised-vol points
    assert 100 * rise / 0.05 == pytest.approx(printed, abs=PRINTED_PCT)


def test_the_sqrt2_minus_1_threshold_from_solved_designs():
    """Below sqrt(2) - 1 the two-asset first-best is steeper and the cap looser than the benchmark's; above, both
    flatter (D.6): compare the solved designs' first-best slopes and caps."""
    # prev_margin = 0, so that the liquidation cost, which flattens the first-best, is charged in every state
    bench = problem_from_dict(benchmark(liquidation_weight=0.05 * ALPHA**2, prev_margin=0.0))
    fb_slope = lambda p: float(np.max(np.diff(p.first_best) / np.diff(p.vol)))  # noqa: E731
    for rho, sign in ((0.2, +1), (0.6, -1)):
        cfg = two_asset(rho)
        cfg["objective"]["prev_margin"] = 0.0
        p = problem_from_dict(cfg)
        assert np.sign(p.cap.slope_vol - bench.cap.slope_vol) == sign
        assert np.sign(fb_slope(p) - fb_slope(bench)) == sign


@pytest.mark.parametrize("cap", [{}, {"input": "realized_variance", "window": 5}, {"input": "ewma", "lambda": 0.94}])
@pytest.mark.parametrize("kappa", [0.0, 0.1])
def test_one_contract_portfolio_is_the_single_contract_problem(cap, kappa):
    """A = [[alpha]], B = [c_eff], d = [-1]: the single-contract problem with liquidation_weight x alpha^2 (86 vs 32),
    the same cap (16)-(18) with the inventory penalty and the input factor."""
    cfg = benchmark(liquidation_weight=0.3)
    cfg["cap"].update(cap)
    cfg["market"] = {"inventory_penalty": kappa}
    cfg["portfolio"] = {"assets": ["X"], "impact": [[ALPHA]], "liquidation": [C], "trigger": [-1.0]}
    single = benchmark(liquidation_weight=0.3 * ALPHA**2)
    single["cap"].update(cap)
    single["market"]["inventory_penalty"] = kappa
    pp, sp = problem_from_dict(cfg), problem_from_dict(single)
    assert pp.cap.slope_vol == pytest.approx(sp.cap.slope_vol, rel=1e-14)
    a, b = solve(pp), solve(sp)
    np.testing.assert_allclose(a.schedule, b.schedule, rtol=0, atol=REDUCTION_ATOL)
    assert a.objective["value"] == pytest.approx(b.objective["value"], rel=1e-13)


def test_misaligned_trigger_under_88_leaves_only_monotonicity(tmp_path):
    """psi = max(0, -d'AB) = 0 when the trigger direction does not load on the liquidation pressure: the paper's (88)
    (cap_directions = "liquidation") imposes no cap."""
    cfg = two_asset(0.5)
    cfg["portfolio"]["trigger"] = [1 / SQRT2, -1 / SQRT2]  # d'AB = 0
    cfg["portfolio"]["cap_directions"] = "liquidation"
    p = problem_from_dict(cfg)
    assert p.cap.portfolio.psi == 0.0 and math.isinf(p.cap.slope_vol) and np.all(np.isinf(p.u))
    res = solve(p)
    assert res.certificate.ok
    np.testing.assert_allclose(res.schedule, np.maximum.accumulate(p.first_best), rtol=0, atol=1e-12)  # fb is monotone here
    d = res.to_dict()
    assert d["portfolio"]["cap_vol"] is None and all(v is None for v in d["cap_increments"])
    assert "psi = 0" in res.summary()


def test_misaligned_trigger_is_still_capped_over_every_trip():
    """The same hedged design with the default cap over every two-period round trip: psi = 0 but the trigger-harvest
    trip of 5.6 (trigger along d, harvest short B) profits above K_all = 1/(s_f Phi) = 7.2577 (the audit's
    simulation shows that trip profitable without the cap)."""
    cfg = two_asset(0.5)
    cfg["portfolio"]["trigger"] = [1 / SQRT2, -1 / SQRT2]
    p = problem_from_dict(cfg)
    assert p.cap.portfolio.psi == 0.0
    assert p.cap.slope_vol == pytest.approx(7.257747386024231, rel=1e-12)
    assert solve(p).certificate.ok


@pytest.mark.parametrize("seed", range(6))
def test_all_direction_cap_is_the_largest_generalised_eigenvalue(seed):
    """Phi = max over trade vectors a of -(a'AB)(d'Aa)/(a'Ca), C = 2A + kappa I (Lemma 10): an independent route is
    the largest eigenvalue of the pencil (-(u v' + v u')/2, C); and K_all <= K_88 always."""
    from scipy.linalg import eigh

    from margin_design.design.portfolio import PortfolioSpec, trip_alignment

    rng = np.random.default_rng(seed)
    k = int(rng.integers(1, 5))
    X = rng.normal(size=(k, k))
    A = X @ X.T / k + 0.05 * np.eye(k)
    A = A * (0.2 / np.mean(np.diag(A)))
    B = rng.uniform(-1, 4, k)
    d = rng.normal(size=k)
    d /= np.linalg.norm(d)
    kappa = float(rng.choice([0.0, 0.3]))
    u, v = A @ B, A @ d
    M = -0.5 * (np.outer(u, v) + np.outer(v, u))
    top = float(eigh(M, 2 * A + kappa * np.eye(k), eigvals_only=True)[-1])
    assert trip_alignment(A, B, d, kappa) == pytest.approx(max(top, 0.0), rel=1e-9, abs=1e-14)
    spec = PortfolioSpec(assets=tuple(f"c{i}" for i in range(k)), impact=A, liquidation=B, trigger=d)
    assert spec.cap_vol(kappa, "all") <= spec.cap_vol(kappa, "liquidation") * (1 + 1e-12)


@pytest.mark.parametrize("rho", [0.0, 0.5, 0.9])
@pytest.mark.parametrize("kappa", [0.0, 0.1])
def test_both_caps_agree_when_trigger_and_liquidation_are_aligned(rho, kappa):
    """B proportional to -d (D.6): Cauchy-Schwarz holds with equality and K_all = K_88 (kappa = 0). With kappa > 0 they
    differ unless K = 1; for one contract both are (16)-(18)."""
    cfg = two_asset(rho)
    cfg["market"]["inventory_penalty"] = kappa
    spec = problem_from_dict(cfg).cap.portfolio
    if kappa == 0.0:
        assert spec.cap_vol(0.0, "all") == pytest.approx(spec.cap_vol(0.0, "liquidation"), rel=1e-12)
    one = PortfolioSpec_one(kappa)
    assert one.cap_vol(kappa, "all") == pytest.approx((2 * ALPHA + kappa) / (ALPHA**2 * C), rel=1e-12)
    assert one.cap_vol(kappa, "liquidation") == pytest.approx((2 * ALPHA + kappa) / (ALPHA**2 * C), rel=1e-12)


def PortfolioSpec_one(kappa):
    from margin_design.design.portfolio import PortfolioSpec

    return PortfolioSpec(assets=("X",), impact=[[ALPHA]], liquidation=[C], trigger=[-1.0])


def test_schedule_json_has_the_portfolio_block(tmp_path):
    cfg = two_asset(0.5)
    path = tmp_path / "p.toml"
    text = "".join(f"[{s}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in keys.items()) + "\n" for s, keys in cfg.items())
    path.write_text(text)
    assert main(["solve", str(path), "--out", str(tmp_path / "out")]) == 0
    d = json.loads((tmp_path / "out" / "schedule.json").read_text())
    block = d["portfolio"]
    assert set(block) >= {"assets", "impact", "liquidation", "trigger", "psi", "price_pressure", "cap_vol"}
    assert block["psi"] == pytest.approx(ALPHA * C * 1.5 / SQRT2, rel=1e-15)
    assert block["cap_vol"] == pytest.approx(d["cap"]["slope_vol"], rel=1e-15)


BAD = [
    ("market.alpha beside [portfolio]", lambda c: c["market"].update(alpha=0.2), r"market\.alpha = 0\.2 does not apply with \[portfolio\]"),
    ("market.c_eff beside [portfolio]", lambda c: c["market"].update(c_eff=4.5), r"market\.c_eff = 4\.5 does not apply"),
    ("not positive definite", lambda c: c["portfolio"].update(impact=[[0.2, 0.3], [0.3, 0.2]]), r"not positive definite .*arbitrage \(footnote 15\)"),
    ("not symmetric", lambda c: c["portfolio"].update(impact=[[0.2, 0.1], [0.05, 0.2]]), r"portfolio\.impact is not symmetric"),
    ("negative diagonal", lambda c: c["portfolio"].update(impact=[[-0.2, 0.0], [0.0, 0.2]]), r"portfolio\.impact\[0\]\[0\] = -0\.2 must be positive"),
    ("impact row too long", lambda c: c["portfolio"].update(impact=[[0.2, 0.1, 0.0], [0.1, 0.2, 0.0]]), r"portfolio\.impact\[0\] has 3 entries but there are 2 assets"),
    ("impact too many rows", lambda c: c["portfolio"].update(impact=[[0.2, 0.1], [0.1, 0.2], [0.0, 0.0]]), r"list of 2 rows of 2 numbers"),
    ("liquidation wrong length", lambda c: c["portfolio"].update(liquidation=[1.0, 2.0, 3.0]), r"portfolio\.liquidation has 3 entries but there are 2 assets"),
    ("trigger wrong length", lambda c: c["portfolio"].update(trigger=[1.0]), r"portfolio\.trigger has 1 entries but there are 2 assets"),
    ("trigger not a unit vector", lambda c: c["portfolio"].update(trigger=[-1.0, -1.0]), r"portfolio\.trigger has norm 1\.41421; .*unit vector"),
    ("zero liquidation", lambda c: c["portfolio"].update(liquidation=[0.0, 0.0]), r"portfolio\.liquidation is zero"),
    ("no trigger", lambda c: c["portfolio"].pop("trigger"), r"missing required key portfolio\.trigger"),
    ("duplicate asset", lambda c: c["portfolio"].update(assets=["A", "A"]), r"portfolio\.assets names 'A' twice"),
    ("unknown key", lambda c: c["portfolio"].update(correlation=0.5), r"unknown key portfolio\.correlation"),
    ("string in B", lambda c: c["portfolio"].update(liquidation=[1.0, "x"]), r"portfolio\.liquidation has the entry 'x'"),
]


@pytest.mark.parametrize("edit, match", [pytest.param(e, m, id=i) for i, e, m in BAD])
def test_bad_portfolio_inputs_get_one_sentence(edit, match):
    cfg = copy.deepcopy(two_asset(0.5))
    edit(cfg)
    with pytest.raises(ConfigError, match=match):
        problem_from_dict(cfg)


def test_impact_matrix_check_is_assumption_6():
    np.testing.assert_array_equal(check_impact_matrix([[0.2, 0.1], [0.1, 0.2]]), [[0.2, 0.1], [0.1, 0.2]])
    with pytest.raises(ConfigError, match="positive definite"):
        check_impact_matrix([[1.0, 1.0], [1.0, 1.0]])  # PSD but singular: rho = 1


def test_no_cap_kind_publishes_a_null_cap(tmp_path):
    """cap.kind = "none": the portfolio block's cap_vol is null and the report reads the file back."""
    from margin_design.reports.rule_data import RuleData

    cfg = two_asset(0.5)
    cfg["cap"]["kind"] = "none"
    res = solve(problem_from_dict(cfg))
    d = res.to_dict()
    assert d["portfolio"]["cap_vol"] is None and d["portfolio"]["psi"] > 0
    data = RuleData.from_schedule(res)
    assert data.n == res.problem.n


# ---------------------------------------------------------------- [portfolio.risk]


def risk_design(risk: dict, liquidation=(C / 2, C / 2)) -> dict:
    cfg = two_asset(0.5)
    cfg["cap"].pop("input")  # the functional defines the input
    cfg["portfolio"].pop("trigger")
    cfg["portfolio"]["liquidation"] = list(liquidation)
    cfg["portfolio"]["risk"] = risk
    return cfg


def test_risk_functional_gives_d_and_s_f():
    """Portfolio realised variance of h'R over 20 returns, h = (1/2, 1/2): d = -(1, 1)/sqrt(2) and
    s_f = ||h|| / sqrt(20) (notes/portfolio.md: gradient 2 (h'R) h, worst case all variance in the last return),
    so psi is D.6's (90) and the cap is 2 / (s_f psi)."""
    p = problem_from_dict(risk_design({"kind": "realized_variance", "positions": [0.5, 0.5], "window": 20}))
    spec = p.cap.portfolio
    np.testing.assert_allclose(spec.trigger, [-1 / SQRT2, -1 / SQRT2], atol=1e-9)
    assert spec.sensitivity == pytest.approx(math.sqrt(0.5) / math.sqrt(20.0), rel=1e-9)
    assert spec.psi == pytest.approx(ALPHA * C * 1.5 / SQRT2, rel=1e-9)
    assert p.cap.slope_vol == pytest.approx(2.0 / (spec.sensitivity * spec.psi), rel=1e-12)
    assert solve(p).certificate.ok


def test_risk_functional_picks_the_binding_branch():
    """B opposing the positions (the constrained sector is short what the portfolio is long): the sale trigger has
    psi = 0, the purchase trigger (the gain-side worst case of a variance input) binds with D.6's psi."""
    p = problem_from_dict(risk_design({"kind": "variance", "positions": [0.5, 0.5]}, liquidation=(-C / 2, -C / 2)))
    spec = p.cap.portfolio
    np.testing.assert_allclose(spec.trigger, [1 / SQRT2, 1 / SQRT2], atol=1e-9)
    assert spec.psi == pytest.approx(ALPHA * C * 1.5 / SQRT2, rel=1e-9)


def test_one_contract_risk_functional_is_the_single_contract_input():
    """kind = 'variance' on one contract is the single-contract input (4): s_f = 1, the same design."""
    cfg = benchmark(liquidation_weight=0.3)
    cfg["market"] = {"inventory_penalty": 0.0}
    cfg["cap"].pop("input")
    cfg["portfolio"] = {"assets": ["X"], "impact": [[ALPHA]], "liquidation": [C], "risk": {"kind": "variance", "positions": [1.0]}}
    a = solve(problem_from_dict(cfg))
    b = solve(problem_from_dict(benchmark(liquidation_weight=0.3 * ALPHA**2)))
    np.testing.assert_allclose(a.schedule, b.schedule, rtol=0, atol=REDUCTION_ATOL)


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda c: c["cap"].update(input="ewma", **{"lambda": 0.94}), r"cap\.input = 'ewma' does not apply with \[portfolio\.risk\]"),
        (lambda c: c["portfolio"]["risk"].update(horizon=2), r"unknown key portfolio\.risk\.horizon"),
        (lambda c: c["portfolio"]["risk"].update(positions=[1.0]), r"portfolio\.risk\.positions = \[1\.0\] must list one weight per asset \(2\)"),
        (lambda c: c["portfolio"]["risk"].pop("kind"), r"missing required key portfolio\.risk\.kind"),
        (lambda c: c["portfolio"]["risk"].update(level=1.2), r"portfolio\.risk\.level = 1\.2 must be in \(0\.5, 1\)"),
        (lambda c: c["portfolio"].update(trigger=[-1 / SQRT2, -1 / SQRT2]), r"give either portfolio\.trigger or \[portfolio\.risk\]"),
    ],
)
def test_bad_risk_tables_get_one_sentence(edit, match):
    cfg = risk_design({"kind": "hs_var", "positions": [0.5, 0.5]})
    edit(cfg)
    with pytest.raises(ConfigError, match=match):
        problem_from_dict(cfg)


def test_sensitivities_of_a_portfolio_design_match_finite_differences():
    """The IFT derivative of the price of manipulation-proofness in kappa, through the portfolio cap
    (2 + kappa ||B||^2/B'AB)/(s_f psi), against re-solved central differences; alpha and c_eff are not parameters."""
    cfg = two_asset(0.5, liquidation_weight=0.2)
    cfg["market"]["inventory_penalty"] = 0.1
    res = solve(problem_from_dict(cfg))
    sens = res.sensitivities()
    assert "alpha" not in sens and "c_eff" not in sens
    h = 1e-4
    prices = []
    for kappa in (0.1 - h, 0.1 + h):
        c = copy.deepcopy(cfg)
        c["market"]["inventory_penalty"] = kappa
        prices.append(solve(problem_from_dict(c)).price_of_manipulation_proofness)
    fd = (prices[1] - prices[0]) / (2 * h)
    assert sens["inventory_penalty"]["price"] == pytest.approx(fd, rel=1e-5)
    with pytest.raises(ConfigError, match="alpha is not a parameter of a portfolio design"):
        res.sensitivities(("alpha",))


def test_sweep_of_a_portfolio_design(tmp_path):
    from margin_design.solvers.sweep import run_sweep

    cfg = two_asset(0.5)
    path = tmp_path / "p.toml"
    path.write_text("".join(f"[{s}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in keys.items()) + "\n" for s, keys in cfg.items()))
    rows = run_sweep(path, ["objective.carry=0.005,0.01"], workers=0, progress=None)
    assert [r["certified"] for r in rows] == [True, True]
    assert math.isnan(rows[0]["dprice_d_alpha"]) and math.isfinite(rows[0]["dprice_d_carry"])
