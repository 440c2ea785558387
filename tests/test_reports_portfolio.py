"""``margin-design report`` of a portfolio design (Sections 5, 6.5, Appendix D.5-D.6; reports/portfolio.py).

References: the D.6 closed forms (89)-(92) for A = alpha [[1, rho], [rho, 1]], B = c/2 (1, 1), d = -(1, 1)/sqrt(2):
||AB|| = psi = alpha c (1 + rho)/sqrt(2), ratios (1 + rho)/sqrt(2) and sqrt(2)/(1 + rho), threshold sqrt(2) - 1; the
single-contract reduction (a one-contract portfolio A = [[alpha]], B = [c_eff], d = [-1] is the single-contract
problem with lambda_L x alpha^2, design/portfolio.py); the single-contract report files, which must not change.
"""

from __future__ import annotations

import copy
import json
import math
import re
import tomllib

import numpy as np
import openpyxl
import pytest
import sympy as sp

from margin_design import cli_report
from margin_design.calibration.portfolio import TWO_ASSET_RHO_THRESHOLD, two_asset_pressure_ratio, two_asset_slope_ratio
from margin_design.design.config import problem_from_dict
from margin_design.errors import InputError
from margin_design.reports.figures import FIGURE_NAMES, PORTFOLIO_FIGURE
from margin_design.reports.formulas import M as M_SYM
from margin_design.reports.formulas import r as R_SYM
from margin_design.reports.parameters import ElasticityInputs
from margin_design.reports.portfolio import D6_FIT_RTOL, d6_curves, two_asset_fit
from margin_design.reports.report import ReportOptions, build_report, report_files
from margin_design.reports.rule_data import SQRT_252, RuleData
from margin_design.solvers import solve

from conftest import EXAMPLES

# psi, ||AB|| and the caps go through a matrix product and a norm: a few ulps from the closed forms
CLOSED_FORM_RTOL = 1e-14
# residual of the first-order condition (35) at tracking points (probability units); constants print 8 digits
FOC_ATOL = 1e-8
# the one-contract portfolio and its single-contract twin solve to the same schedule to this (margin ratio)
REDUCTION_ATOL = 1e-12
TICK = 0.0005            # 5 bp rounding, as in the issue
DATE = "2026-07-01"

ALPHA, C = 0.2, 4.5      # the benchmark market (Sections 3.6, 6.4): alpha = 0.2, c_eff = 4.5
SQRT2 = math.sqrt(2.0)
RHOS = (0.0, SQRT2 - 1.0, 0.8)


def _config(example: str = "benchmark", points: int = 120, **objective) -> dict:
    cfg = tomllib.loads((EXAMPLES / f"{example}.toml").read_text())
    cfg["grid"]["points"] = points
    cfg["objective"].update(objective)
    return cfg


def two_asset(rho: float, example: str = "benchmark", liquidation_weight: float = 0.05, **objective) -> dict:
    """The D.6 example on an example's market state: A = alpha [[1, rho], [rho, 1]], B = c/2 (1, 1), d = -(1, 1)/sqrt(2)."""
    cfg = _config(example, liquidation_weight=liquidation_weight, **objective)
    cfg["market"] = {"inventory_penalty": 0.0}
    cfg["portfolio"] = {
        "assets": ["SPX", "NDX"],
        "impact": [[ALPHA, ALPHA * rho], [ALPHA * rho, ALPHA]],
        "liquidation": [C / 2, C / 2],
        "trigger": [-1 / SQRT2, -1 / SQRT2],
    }
    return cfg


def one_contract(liquidation_weight: float, example: str = "liquidation") -> dict:
    """A = [[alpha]], B = [c_eff], d = [-1]: the single-contract problem with lambda_L x alpha^2 (86 against 32)."""
    cfg = _config(example, liquidation_weight=liquidation_weight)
    cfg["market"] = {"inventory_penalty": 0.0}
    cfg["portfolio"] = {"assets": ["X"], "impact": [[ALPHA]], "liquidation": [C], "trigger": [-1.0]}
    return cfg


def write_toml(path, cfg: dict):
    """A config dict as TOML (JSON literals are TOML literals for these strings, numbers and lists)."""
    path.write_text("".join(f"[{s}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in keys.items()) + "\n" for s, keys in cfg.items()))
    return path


def data_of(cfg: dict) -> RuleData:
    res = solve(problem_from_dict(cfg))
    assert res.certificate.ok
    return RuleData.from_schedule(res)


@pytest.fixture(scope="module")
def d6():
    """RuleData of the D.6 designs at rho below, at and above sqrt(2) - 1 (one solve each)."""
    return {rho: data_of(two_asset(rho)) for rho in RHOS}


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory):
    """A portfolio report written twice by the command line (two solves), with rounding and a step table."""
    base = tmp_path_factory.mktemp("pf")
    src = write_toml(base / "portfolio.toml", two_asset(0.8))
    outs = []
    for k in (1, 2):
        out = base / f"run{k}"
        assert cli_report.main([str(src), "--out", str(out), "--effective-date", DATE, "--round", str(TICK), "--steps"]) == 0
        outs.append(out)
    return outs


def _files(folder) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------- the parameter block against D.6


@pytest.mark.parametrize("rho", RHOS, ids=["below", "at", "above"])
def test_parameter_block_has_the_d6_closed_forms(d6, rho):
    """(89)-(92): psi = ||AB|| = alpha c (1 + rho)/sqrt(2); K = 2/(s_f psi) with s_f = 1 (variance input, kappa = 0);
    each contract alone has (2 A_ii)/(A_ii^2 B_i) = 2/(alpha c/2); the ratios are the calibration module's."""
    rep = build_report(d6[rho])
    pf = rep.parameters["portfolio"]
    xi = ALPHA * C
    psi = xi * (1 + rho) / SQRT2
    assert pf["assets"] == ["SPX", "NDX"] and pf["contracts"] == 2
    assert pf["impact_A"] == [[ALPHA, ALPHA * rho], [ALPHA * rho, ALPHA]]
    assert pf["liquidation_B"] == [C / 2, C / 2] and pf["trigger_d"] == [-1 / SQRT2, -1 / SQRT2]
    assert pf["psi"] == pytest.approx(psi, rel=CLOSED_FORM_RTOL)                        # (90)
    assert pf["price_pressure_AB_norm"] == pytest.approx(psi, rel=CLOSED_FORM_RTOL)     # (89)
    np.testing.assert_allclose(pf["pressure_AB"], [xi / 2 * (1 + rho)] * 2, rtol=CLOSED_FORM_RTOL)
    assert pf["sensitivity_s_f"] == 1.0 and "explicit" in pf["sensitivity_source"]
    assert pf["cap_vol_daily"] == pytest.approx(2 / psi, rel=CLOSED_FORM_RTOL)          # (88), vol units
    assert pf["cap_vol_annual"] == pytest.approx(2 / psi / SQRT_252, rel=CLOSED_FORM_RTOL)
    assert rep.parameters["cap"]["slope_vol_daily"] == pf["cap_vol_daily"]
    single = 2 / (ALPHA * C / 2)
    np.testing.assert_allclose(pf["single_contract_cap_vol_daily"], [single] * 2, rtol=CLOSED_FORM_RTOL)
    np.testing.assert_allclose(pf["cap_over_single_contract_cap"], [(2 / psi) / single] * 2, rtol=CLOSED_FORM_RTOL)
    c = pf["d6"]
    assert c["benchmark_scale_xi_SA"] == pytest.approx(xi, rel=CLOSED_FORM_RTOL)        # xi_SA = alpha c
    assert c["psi_over_xi_SA"] == pytest.approx((1 + rho) / SQRT2, rel=CLOSED_FORM_RTOL)  # (91)
    assert c["slope_ratio_xi_SA_over_psi"] == pytest.approx(SQRT2 / (1 + rho), rel=CLOSED_FORM_RTOL)  # (92)
    assert c["rho_equivalent"] == pytest.approx(rho, abs=CLOSED_FORM_RTOL)
    fit = c["two_asset_fit"]
    assert fit["rho"] == pytest.approx(rho, abs=CLOSED_FORM_RTOL) and fit["alpha"] == ALPHA and fit["c"] == C
    assert fit["pressure_ratio_89_91"] == pytest.approx(float(two_asset_pressure_ratio(rho)), rel=CLOSED_FORM_RTOL)
    assert fit["slope_ratio_92"] == pytest.approx(float(two_asset_slope_ratio(rho)), rel=CLOSED_FORM_RTOL)
    # the market block holds no alpha or c_eff; the liquidation weight is said to be on ||AB|| (86)
    assert rep.parameters["market"] == {"inventory_penalty_kappa": 0.0}
    assert "(86)" in rep.parameters["liquidation"]["term"] and "(85)-(86)" in rep.parameters["coverage"]["objective"]
    assert rep.parameters["liquidation"]["scale_AB_norm"] == pf["price_pressure_AB_norm"]


def test_first_best_and_cap_sides_of_the_threshold(d6):
    """D.6: below sqrt(2) - 1 the cap is looser than the benchmark's 2/(alpha c), above it tighter; at it equal."""
    bench = 2 / (ALPHA * C)
    sides = {}
    for rho, data in d6.items():
        fit = build_report(data).parameters["portfolio"]["d6"]["two_asset_fit"]
        sides[rho] = (np.sign(round(data.slope_vol / bench - 1, 12)), fit["first_best"])
    assert sides[0.0] == (1.0, "steeper than the benchmark")
    assert sides[0.8] == (-1.0, "flatter than the benchmark")
    assert sides[SQRT2 - 1.0][0] == 0.0


def test_d6_structure_is_recognised_only_when_it_holds():
    base = {"impact": [[0.3, 0.1], [0.1, 0.3]], "liquidation": [1.0, 1.0], "trigger": [-1 / SQRT2, -1 / SQRT2]}
    fit = two_asset_fit(base)
    assert fit == {"rho": pytest.approx(1 / 3, rel=CLOSED_FORM_RTOL), "alpha": 0.3, "c": 2.0}
    for key, value in [
        ("impact", [[0.3, 0.1], [0.1, 0.3 * (1 + 100 * D6_FIT_RTOL)]]),  # unequal own impacts
        ("liquidation", [1.0, 1.5]),                                     # unequal forced sales
        ("liquidation", [-1.0, -1.0]),                                   # buying, not selling (c > 0 in D.6)
        ("trigger", [1 / SQRT2, 1 / SQRT2]),                             # the other direction
        ("trigger", [-0.6, -0.8]),
    ]:
        assert two_asset_fit(dict(base, **{key: value})) is None, (key, value)
    assert two_asset_fit({"impact": [[0.2]], "liquidation": [1.0], "trigger": [-1.0]}) is None


def test_general_portfolio_is_read_against_the_generalised_benchmark_scale():
    """Three contracts, psi != ||AB||: xi_SA = sum_i A_ii |B_i|, psi/xi_SA and the rho-equivalent sqrt(2) psi/xi_SA - 1
    (module docstring); the cap uses psi (88), the liquidation term ||AB|| (86) (the tracking condition holds with it) and
    the step gains ||AB|| Delta M."""
    cfg = _config("liquidation", liquidation_weight=5.0)
    cfg["market"] = {"inventory_penalty": 0.0}
    A = [[0.2, 0.1, 0.05], [0.1, 0.3, 0.08], [0.05, 0.08, 0.4]]
    B, d = [2.0, 1.0, 0.5], [-0.6, -0.8, 0.0]
    cfg["portfolio"] = {"assets": ["SPX", "NDX", "RTY"], "impact": A, "liquidation": B, "trigger": d, "cap_directions": "liquidation"}
    data = data_of(cfg)
    rep = build_report(data, ReportOptions(tick=TICK, steps=6))
    pf = rep.parameters["portfolio"]
    AB = np.array(A) @ np.array(B)
    psi, norm = max(0.0, -float(np.dot(d, AB))), float(np.linalg.norm(AB))
    assert abs(psi - norm) > 0.1 * norm   # the test tells the two apart
    xi = 0.2 * 2.0 + 0.3 * 1.0 + 0.4 * 0.5
    assert pf["psi"] == pytest.approx(psi, rel=CLOSED_FORM_RTOL)
    assert pf["price_pressure_AB_norm"] == pytest.approx(norm, rel=CLOSED_FORM_RTOL)
    assert pf["cap_vol_daily"] == pytest.approx(2 / psi, rel=CLOSED_FORM_RTOL)
    assert pf["d6"]["two_asset_fit"] is None
    assert pf["d6"]["benchmark_scale_xi_SA"] == pytest.approx(xi, rel=CLOSED_FORM_RTOL)
    assert pf["d6"]["rho_equivalent"] == pytest.approx(SQRT2 * psi / xi - 1, rel=CLOSED_FORM_RTOL)
    singles = [2 * a / (a * a * b) for a, b in zip((0.2, 0.3, 0.4), B)]
    np.testing.assert_allclose(pf["single_contract_cap_vol_daily"], singles, rtol=CLOSED_FORM_RTOL)
    assert rep.steps.jumps
    for j in rep.steps.jumps:
        assert j["gain_per_unit_trigger"] == pytest.approx(norm * j["jump"], rel=CLOSED_FORM_RTOL)
    f = [f for f in rep.formulas if f.kind == "tracking"][0]
    resid = sp.lambdify((M_SYM, R_SYM), f.lhs - f.rhs, modules=["scipy", "numpy"])
    pts = [i for i in range(f.start, f.end + 1) if data.schedule[i] == data.first_best[i] and data.schedule[i] > 0.05]
    assert len(pts) > 10   # tracking above M_- = 0.05, where the liquidation term is charged
    for i in pts:
        assert abs(resid(data.schedule[i], data.r[i])) <= FOC_ATOL
    md = report_files(rep, figures=False)["report.md"].decode()
    assert "does not have the two-asset structure" in md and "| RTY | 0.05, 0.08, 0.4 | 0.5 | 0 |" in md


def test_figure_curves_are_the_calibration_closed_forms():
    rho = np.linspace(-0.9, 1.0, 77)
    pressure, slope = d6_curves(rho)
    np.testing.assert_allclose(pressure, (1 + rho) / SQRT2, rtol=CLOSED_FORM_RTOL)   # (89)-(91)
    np.testing.assert_allclose(slope, SQRT2 / (1 + rho), rtol=CLOSED_FORM_RTOL)      # (92)
    at = d6_curves(np.array([TWO_ASSET_RHO_THRESHOLD]))
    assert at[0][0] == pytest.approx(1.0, rel=CLOSED_FORM_RTOL) and at[1][0] == pytest.approx(1.0, rel=CLOSED_FORM_RTOL)


# ---------------------------------------------------------------------- formulas, steps, one-contract reduction


def test_tracking_condition_has_the_price_pressure_and_holds(tmp_path):
    """Tracking (35) with (86): Pr(D > M | r) = kappa_M + lambda_L ||AB||^2 (M - M_-)_+, with ||AB||^2 = (alpha c (1 + rho)/sqrt(2))^2."""
    rho, lam = 0.5, 5.0
    data = data_of(two_asset(rho, example="liquidation", liquidation_weight=lam))
    rep = build_report(data)
    tr = [f for f in rep.formulas if f.kind == "tracking"]
    assert tr and tr[0].equation == "(35), (86)"
    f = tr[0]
    assert f.general_text == "Pr(D > M | r) = kappa_M + lambda_L*||AB||**2*Max(0, M - M_-)"
    assert "\\lVert AB \\rVert_2" in f.general_latex and "||AB||" in f.note
    coef = lam * (ALPHA * C * (1 + rho) / SQRT2) ** 2
    got = f.rhs.subs(M_SYM, 0.0625)                     # M - M_- = 0.0125 above the kink (M_- = 0.05)
    assert float(got) == pytest.approx(0.01 + coef * 0.0125, rel=1e-7)   # constants print 8 significant digits
    resid = sp.lambdify((M_SYM, R_SYM), f.lhs - f.rhs, modules=["scipy", "numpy"])
    pts = [i for i in range(f.start, f.end + 1) if data.schedule[i] == data.first_best[i]]
    assert len(pts) > 10
    for i in pts:
        assert abs(resid(data.schedule[i], data.r[i])) <= FOC_ATOL


def test_one_contract_portfolio_reports_the_single_contract_numbers():
    """The liquidation example as a one-contract portfolio A = [[alpha]], B = [c_eff], d = [-1] with lambda_L / alpha^2:
    same cap, same schedule, same step gains (||AB|| = alpha c_eff), the same tracking right-hand side, and K equal to
    the contract's single-contract cap."""
    single = data_of(_config("liquidation"))                       # lambda_L = 0.2 on c_eff = 4.5: 0.2 * 4.5^2 = 4.05
    pf = data_of(one_contract(0.2 / ALPHA**2))                     # lambda_L = 5 on ||AB|| = 0.9: 5 * 0.81 = 4.05
    np.testing.assert_allclose(pf.schedule, single.schedule, rtol=0, atol=REDUCTION_ATOL)
    assert pf.slope_vol == pytest.approx(single.slope_vol, rel=CLOSED_FORM_RTOL)
    opts = ReportOptions(tick=TICK, steps=8)
    a, b = build_report(pf, opts), build_report(single, opts)
    assert [j["jump"] for j in a.steps.jumps] == [j["jump"] for j in b.steps.jumps] and a.steps.jumps
    np.testing.assert_allclose([j["gain_per_unit_trigger"] for j in a.steps.jumps],
                               [j["gain_per_unit_trigger"] for j in b.steps.jumps], rtol=CLOSED_FORM_RTOL)
    ta = [f for f in a.formulas if f.kind == "tracking"][0]
    tb = [f for f in b.formulas if f.kind == "tracking"][0]
    for m in (0.03, 0.05, 0.07, 0.2):   # both read 0.01 + 4.05 (M - 0.05)_+ (8 significant digits)
        assert float((ta.rhs - tb.rhs).subs(M_SYM, m)) == pytest.approx(0.0, abs=FOC_ATOL)
    block = a.parameters["portfolio"]
    assert block["cap_over_single_contract_cap"] == [pytest.approx(1.0, rel=CLOSED_FORM_RTOL)]
    assert block["d6"]["rho_equivalent"] == pytest.approx(TWO_ASSET_RHO_THRESHOLD, rel=CLOSED_FORM_RTOL)
    sj = a.steps.to_dict()
    assert sj["price_pressure_AB"] == pytest.approx(ALPHA * C, rel=CLOSED_FORM_RTOL) and "alpha" not in sj


def test_step_gain_is_the_price_pressure_times_the_jump(d6):
    data = d6[0.8]
    rep = build_report(data, ReportOptions(tick=TICK, steps=6))
    assert rep.steps.jumps
    for j in rep.steps.jumps:
        assert j["gain_per_unit_trigger"] == pytest.approx(ALPHA * C * 1.8 / SQRT2 * j["jump"], rel=CLOSED_FORM_RTOL)
    md = report_files(rep, figures=False)["report.md"].decode()
    assert "\\|\\|AB\\|\\| Delta M (bp)" in md and "q * ||AB|| * Delta M" in md and "alpha c_eff" not in md


def test_no_cap_when_the_trigger_does_not_load_on_the_liquidation_pressure():
    cfg = two_asset(0.5)
    cfg["portfolio"]["trigger"] = [1 / SQRT2, 1 / SQRT2]   # -d'AB < 0: psi = 0
    rep = build_report(data_of(cfg))
    pf = rep.parameters["portfolio"]
    assert pf["psi"] == 0.0 and pf["cap_vol_daily"] is None and rep.parameters["cap"]["slope_vol_daily"] is None
    assert pf["d6"]["slope_ratio_xi_SA_over_psi"] is None and pf["d6"]["rho_equivalent"] is None
    files = report_files(rep)
    md = files["report.md"].decode()
    assert "psi = 0" in md and "no cap from manipulation" in md and "(87) sets no cap" in md
    assert files[f"figures/{PORTFOLIO_FIGURE}.png"].startswith(b"\x89PNG")


# ---------------------------------------------------------------------- the report folder


def test_portfolio_report_folder_has_the_d6_figure_and_reruns_byte_identical(cli_runs):
    a, b = _files(cli_runs[0]), _files(cli_runs[1])
    for name in FIGURE_NAMES + (PORTFOLIO_FIGURE,):
        assert a[f"figures/{name}.png"].startswith(b"\x89PNG\r\n\x1a\n") and a[f"figures/{name}.pdf"].startswith(b"%PDF")
    assert set(a) == set(b)
    assert [k for k in a if a[k] != b[k] and k != "schedule.json"] == []
    # schedule.json carries the solver's wall time (as for any config input): equal without it
    sa, sb = json.loads(a["schedule.json"]), json.loads(b["schedule.json"])
    sa["solver"].pop("seconds"), sb["solver"].pop("seconds")
    assert sa == sb
    assert b"CreationDate" not in a[f"figures/{PORTFOLIO_FIGURE}.pdf"]


def test_portfolio_report_text(cli_runs):
    md = (cli_runs[0] / "report.md").read_text()
    tex = (cli_runs[0] / "report.tex").read_text()
    for needle in ("### Portfolio", "(85)-(86)", "(87)", "(88)", "(89)-(90)", "(91)", "(92)",
                   "figures/portfolio.png", "rho = 0.8", "| SPX | 0.2, 0.16 | 2.25 | -0.707107 |"):
        assert needle in md, needle
    # plain-text math is escaped in the Markdown source; the reader sees it as typed
    import html
    import re

    from markdown_it import MarkdownIt

    shown = html.unescape(re.sub(r"<[^>]+>", "", MarkdownIt("commonmark").enable("table").render(md)))
    assert "lambda_L/2 ||AB||^2 (M - M_-)_+^2" in shown
    assert "\\subsubsection*{Portfolio}" in tex and "\\lVert AB\\rVert_2" in tex and "figures/portfolio.pdf" in tex
    for text in (md, tex):
        assert not re.search(r"\b(None|nan|inf)\b", text) and "(40), (74)" not in text and "alpha c_eff Delta M" not in text
    # LaTeX: balanced braces and math shifts (unescaped)
    plain = re.sub(r"\\[{}$%&_#]", "", tex)
    assert plain.count("{") == plain.count("}") and plain.count("$") % 2 == 0
    # the caption of the D.6 figure says what is drawn and where this design sits
    cap = re.search(r"\*Figure: (Cap across the assets' alignment.*?)\* \(\[PDF\]\(figures/portfolio\.pdf\)\)", md).group(1)
    assert "(89)-(91)" in cap and "(92)" in cap and "rho = sqrt(2) - 1 = 0.414" in cap and "rho = 0.8" in cap
    # the rule table names the portfolio's vol and the cap (88)
    rt = json.loads((cli_runs[0] / "rule_table.json").read_text())
    assert "(88)" in rt["caption"] and "portfolio" in rt["units"]["vol_daily"]
    params = json.loads((cli_runs[0] / "parameters.json").read_text())["parameters"]
    assert "alpha" not in params["market"] and params["portfolio"]["units"]["psi"].startswith("max{0, -d'AB} (87)")
    ws = openpyxl.load_workbook(cli_runs[0] / "rule_table.xlsx")["parameters"]
    rows = {r[0]: r[1] for r in ws.iter_rows(min_row=2, values_only=True)}
    assert rows["portfolio.psi"] == params["portfolio"]["psi"] and json.loads(rows["portfolio.impact_A"]) == params["portfolio"]["impact_A"]


def test_schedule_json_route_gives_the_same_portfolio_report(cli_runs, tmp_path):
    out = tmp_path / "again"
    assert cli_report.main([str(cli_runs[0] / "schedule.json"), "--out", str(out), "--effective-date", DATE,
                            "--round", str(TICK), "--steps"]) == 0
    a, b = _files(cli_runs[0]), _files(out)
    differ = [k for k in a if a[k] != b[k]]
    assert differ == ["parameters.json", "report.html", "report.md", "report.tex", "report_body.tex", "rule_table.xlsx"]   # the provenance names its input file
    pa = json.loads(a["parameters.json"])
    pb = json.loads(b["parameters.json"])
    assert pa["parameters"] == pb["parameters"]


# ---------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "flags, named",
    [
        (["--elasticity", "0.225"], "--elasticity does not apply"),
        (["--participation", "0.01", "--distortion-bps", "20"], "--participation and --distortion-bps do not apply"),
        (["--margin-level", "0.05"], "--margin-level does not apply"),
    ],
)
def test_elasticity_flags_are_refused_for_a_portfolio(cli_runs, tmp_path, capsys, flags, named):
    out = tmp_path / "r"
    assert cli_report.main([str(cli_runs[0] / "schedule.json"), "--out", str(out)] + flags) == 2
    err = capsys.readouterr().err
    assert err.startswith("margin-design: error: ") and named in err and "[portfolio]" in err
    assert err.count("\n") == 1 and "Traceback" not in err and not out.exists()


def test_elasticity_inputs_are_refused_by_the_library_and_kept_for_one_contract(d6):
    with pytest.raises(InputError, match=r"^--elasticity and --turnover do not apply to a \[portfolio\] design"):
        build_report(d6[0.8], ReportOptions(elasticity=ElasticityInputs(elasticity=0.225, turnover=1.0)))
    single = data_of(_config())
    rep = build_report(single, ReportOptions(elasticity=ElasticityInputs(0.225, 1.0, 0.01, 20.0)))
    assert rep.parameters["elasticity_inputs"]["consistent"] is True   # (75)-(77) against alpha = 0.2, c_eff = 4.5


def _edited(d: dict, edit) -> dict:
    d = copy.deepcopy(d)
    edit(d)
    return d


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda d: d["portfolio"].update(psi=d["portfolio"]["psi"] * 1.01), r"portfolio psi = .* its A, B, d and s_f give"),
        (lambda d: d["portfolio"].update(impact=[[0.2, 0.3], [0.3, 0.2]]), r"invalid 'portfolio' block \(portfolio\.impact is not positive definite"),
        (lambda d: d["portfolio"].pop("trigger"), r"'portfolio' block without the key\(s\) trigger"),
        (lambda d: d.pop("portfolio"), r"has a \[portfolio\] configuration but no 'portfolio' block"),
        (lambda d: d["cap"].update(slope_vol=d["cap"]["slope_vol"] * 2), r"portfolio cap\.slope_vol = .* give"),
        (lambda d: d["portfolio"].update(single_contract_cap_vol=[1.0, 2.0]), r"single_contract_cap_vol\[0\] = 1\.0"),
    ],
)
def test_a_damaged_portfolio_block_is_refused(d6, edit, match):
    d = json.loads(d6[0.8].schedule_json)
    with pytest.raises(InputError, match=match):
        RuleData.from_dict(_edited(d, edit))


# ---------------------------------------------------------------------- the single-contract report is unchanged


def test_single_contract_report_has_no_portfolio_parts():
    data = data_of(_config())
    rep = build_report(data, ReportOptions(steps=5))
    files = report_files(rep)
    assert not data.is_portfolio and "portfolio" not in rep.parameters
    assert rep.parameters["market"] == {"alpha": 0.2, "c_eff": 4.5, "inventory_penalty_kappa": 0.0}
    assert f"figures/{PORTFOLIO_FIGURE}.png" not in files
    md = files["report.md"].decode()
    assert "### Portfolio" not in md and "(88)" not in md and "(40)" in md and "alpha c_eff Delta M" in md
    assert json.loads(files["step_table.json"])["alpha"] == 0.2
