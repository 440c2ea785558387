"""`margin-design calibrate portfolio`: a [portfolio] design from the S&P 500 / NASDAQ (/ WTI) series shipped with arch
(calibration/portfolio_data.py; Nicolai 2026, Sections 5, 6.5, (75)-(77), D.5-D.6)."""

from __future__ import annotations

import json
import math
import re
import shlex
import tomllib
from pathlib import Path

import numpy as np
import pytest

from margin_design.calibration.cap import calibrate_market
from margin_design.calibration.data import realized_variance
from margin_design.calibration.portfolio import two_asset_pressure_ratio
from margin_design.calibration.portfolio_data import (
    calibrate_portfolio,
    load_panel,
    portfolio_risk_history,
    write_portfolio_config,
)
from margin_design.calibration.portfolio_risk import PortfolioRisk, tail_count, value_per_vol
from margin_design.cli_calibrate import main
from margin_design.design import load_problem
from margin_design.solvers import solve

REPO = Path(__file__).resolve().parents[1]
#: Float tolerance of identities computed two ways in float64.
IDENTITY_RTOL = 1e-12
#: r from mark windows built as 1 + cumulative log returns and differenced back, against direct sums of squared
#: returns: the rounding of the cumulative sum (about 1e-16 on marks near 1) relative to daily returns of ~1e-2.
MARKS_RTOL = 1e-10
#: Header numbers are printed with 6 significant digits (relative rounding <= 5e-6), daily vols with 4 (<= 5e-4).
HEADER_RTOL = 5e-6
HEADER4_RTOL = 5e-4
#: TOML floats are written with 12 significant digits.
TOML_RTOL = 1e-11
#: Grid points in these tests (small: quick solves).
POINTS = "21"
#: The market of the shipped examples (upper ends of the paper's ranges, Appendix C): epsilon 0.3, tau 2.
EPS, TAU, F, M = 0.3, 2.0, 0.01, 0.05


def run(capsys, *argv):
    code = main(["calibrate", "portfolio", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def header_numbers(text: str, label: str) -> list[float]:
    """The numbers on the header line starting with ``# <label>`` (after the colon)."""
    line = next(ln for ln in text.splitlines() if ln.startswith(f"# {label}"))
    # numbers standing alone (not the digits of a name such as SP500)
    return [float(x) for x in re.findall(r"(?<![\w.])-?\d+(?:\.\d+)?(?:e[+-]?\d+)?", line.split(":", 1)[1])]


@pytest.fixture(scope="module")
def arch_returns():
    """Daily log returns of the S&P 500 and NASDAQ closes, computed here from the arch frames (independently)."""
    from arch.data import nasdaq, sp500

    a, b = sp500.load(), nasdaq.load()
    assert a.index.equals(b.index)
    close = np.column_stack([a["Close"].to_numpy(float), b["Close"].to_numpy(float)])
    volume = np.column_stack([a["Volume"].to_numpy(float), b["Volume"].to_numpy(float)])
    return close, volume, np.log(close[1:] / close[:-1])


@pytest.fixture(scope="module")
def panel():
    return load_panel("sp500-nasdaq")


@pytest.fixture(scope="module")
def long_run(tmp_path_factory):
    """The long example's market on a 21-point grid, through the command line (config + JSON)."""
    folder = tmp_path_factory.mktemp("long")
    argv = ["calibrate", "portfolio", "--positions", "0.5,0.5", "--out", str(folder / "long.toml"), "--points", POINTS,
            "--elasticity", str(EPS), "--turnover", str(TAU), "--json", str(folder / "long.json")]
    assert main(argv) == 0
    return folder / "long.toml", json.loads((folder / "long.json").read_text())


def test_written_config_loads_and_solves_certified(long_run):
    cfg, out = long_run
    problem = load_problem(cfg)
    doc = tomllib.loads(cfg.read_text())
    # the state table lands on the solver's grid; the cap is the one the command reported from the same file
    rows = np.loadtxt(cfg.with_name("long.states.csv"), delimiter=",", skiprows=1)
    assert np.array_equal(np.asarray(problem.vol), rows[:, 0])
    assert problem.cap.slope_vol == pytest.approx(out["portfolio"]["cap_vol"], rel=IDENTITY_RTOL)
    assert doc["portfolio"]["risk"] == {"kind": "realized_variance", "positions": [0.5, 0.5], "window": 20}
    assert doc["market"] == {"inventory_penalty": 0.0} and doc["cap"] == {"kind": "manipulation_proof"}
    result = solve(problem)
    assert result.certificate.ok
    # the single contracts' caps (each alone with its B_i) do not bind here, the portfolio's does: it tightens
    assert out["portfolio"]["cap_ratio"][0] < 1.0
    assert {seg["kind"] for seg in result.segments} == {"saturated"}


def test_header_numbers_match_independent_recomputations(long_run, arch_returns):
    cfg, out = long_run
    text = cfg.read_text()
    close, volume, R = arch_returns
    rho = np.corrcoef(R, rowvar=False)[0, 1]
    corr = header_numbers(text, "Return correlation")
    assert corr[1] == pytest.approx(rho, rel=HEADER_RTOL) and corr[2] == pytest.approx(rho, rel=HEADER_RTOL)
    assert out["returns"]["correlation"][0][1] == pytest.approx(rho, rel=IDENTITY_RTOL)
    for i, name in enumerate(("SP500", "NASDAQ")):
        adv20 = float(np.mean(close[-20:, i] * volume[-20:, i]))
        adv_all = float(np.mean(close[:, i] * volume[:, i]))
        numbers = header_numbers(text, f"ADV {name}")  # [20, last 20 days, whole window]
        assert numbers[1] == pytest.approx(adv20, rel=HEADER_RTOL) and numbers[2] == pytest.approx(adv_all, rel=HEADER_RTOL)
        assert out["market"]["contracts"][i]["adv"] == pytest.approx(adv20, rel=IDENTITY_RTOL)
        vol = header_numbers(text, "Daily vol (sd")[2 * i]  # [vol, annualised] per contract
        assert vol == pytest.approx(float(np.std(R[:, i], ddof=1)), rel=HEADER4_RTOL)
    # alpha (75) per contract is the single-contract calibration; B is (76) on the sector's holdings tau w_i/||w||_1
    market = calibrate_market(EPS, TAU, F, M)
    doc = tomllib.loads(text)
    A = np.asarray(doc["portfolio"]["impact"])
    np.testing.assert_allclose(np.diag(A), [market.alpha] * 2, rtol=TOML_RTOL)
    np.testing.assert_allclose(A[0, 1], float(market.alpha) * rho, rtol=TOML_RTOL)
    np.testing.assert_allclose(doc["portfolio"]["liquidation"], [EPS * TAU * 0.5 / M] * 2, rtol=TOML_RTOL)
    impact_line = next(ln for ln in text.splitlines() if ln.startswith("# Impact (65)"))
    assert impact_line.count(f"alpha {float(market.alpha):g}") == 2


def test_vol_scaled_alphas_and_a_signed_sector(panel, arch_returns, tmp_path):
    """--alpha-scaling vol: k_i = k sigma_i/sigma_1 (square-root law), alpha_i = calibrate_market's; diagonal A;
    a sector short the second contract is bought back (B_2 < 0)."""
    _, _, R = arch_returns
    cal = calibrate_portfolio(panel, [0.5, 0.5], elasticity=EPS, turnover=TAU, alpha_scaling="vol", impact_model="diagonal",
                              sector_positions=[1.0, -3.0], points=int(POINTS))
    sig = np.std(R, axis=0, ddof=1)
    for i in range(2):
        ref = calibrate_market(EPS, TAU, F, M, impact_k=200.0 * sig[i] / sig[0])
        assert cal.alphas[i] == pytest.approx(float(ref.alpha), rel=IDENTITY_RTOL)
    np.testing.assert_allclose(cal.impact, np.diag(cal.alphas), rtol=0, atol=0)
    np.testing.assert_allclose(cal.liquidation, [EPS * TAU * 0.25 / M, -EPS * TAU * 0.75 / M], rtol=IDENTITY_RTOL)
    paths, summary = write_portfolio_config(cal, tmp_path / "scaled.toml")
    text = paths["config"].read_text()
    assert "Toth et al. 2011" in text and "(not h)" in text
    assert summary["single_contract_cap_vol"][1] is not None


def test_d6_falls_out_of_the_long_portfolio(long_run):
    """h = (1/2, 1/2), sector holding h, the same alpha: A = alpha [[1, rho], [rho, 1]], B = (c/2)(1, 1) with
    c = epsilon tau / m, d = -(1, 1)/sqrt(2); psi = ||AB|| = alpha c (1 + rho)/sqrt(2) (89)-(91)."""
    cfg, out = long_run
    p = out["portfolio"]
    rho = out["returns"]["correlation"][0][1]
    alpha, c = float(calibrate_market(EPS, TAU, F, M).alpha), EPS * TAU / M
    np.testing.assert_allclose(p["liquidation"], [c / 2, c / 2], rtol=IDENTITY_RTOL)
    np.testing.assert_allclose(p["trigger"], [-1 / math.sqrt(2)] * 2, atol=1e-9)
    d6 = alpha * c * float(two_asset_pressure_ratio(rho))
    assert p["psi"] == pytest.approx(d6, rel=TOML_RTOL) and p["price_pressure"] == pytest.approx(d6, rel=TOML_RTOL)
    assert p["psi_over_benchmark"][0] == pytest.approx((1 + rho) / math.sqrt(2), rel=TOML_RTOL)
    # B proportional to -d: every-round-trip cap = the paper's (88) = 2 / (s_f psi), s_f = ||h|| / sqrt(20)
    s_f = math.sqrt(0.5) / math.sqrt(20)
    assert p["sensitivity"] == pytest.approx(s_f, rel=1e-9)
    assert p["cap_vol_all"] == pytest.approx(p["cap_vol_liquidation"], rel=IDENTITY_RTOL)
    assert p["cap_vol"] == pytest.approx(2 / (s_f * d6), rel=1e-9)


def test_spread_loosens_and_a_misaligned_sector_is_an_option(panel, tmp_path):
    """h = (1/2, -1/2): with B signed by h, psi = ||AB|| = alpha c (1 - rho)/sqrt(2) -- aligned, but the hedged legs'
    cross-impact cancels, so the cap loosens by (1 + rho)/(1 - rho) against the long portfolio's. A sector holding
    (1, 1) gives psi = 0: (88) has no cap, the cap over every round trip stays finite."""
    kw = dict(elasticity=EPS, turnover=TAU, points=int(POINTS))
    rho = None
    caps = {}
    for name, h, w in (("long", [0.5, 0.5], None), ("spread", [0.5, -0.5], None), ("both_long", [0.5, -0.5], [1.0, 1.0])):
        cal = calibrate_portfolio(panel, h, sector_positions=w, **kw)
        rho = cal.correlation[0, 1]
        _, caps[name] = write_portfolio_config(cal, tmp_path / f"{name}.toml")
    alpha, c = float(calibrate_market(EPS, TAU, F, M).alpha), EPS * TAU / M
    s = caps["spread"]
    # 1 - rho cancels: the 12-digit rounding of A_12 in the TOML is amplified by (1 + rho)/(1 - rho)
    cancellation = (1 + rho) / (1 - rho)
    assert s["psi"] == pytest.approx(alpha * c * (1 - rho) / math.sqrt(2), rel=TOML_RTOL * cancellation)
    assert s["alignment_ratio"] == pytest.approx(1.0, rel=TOML_RTOL)
    assert caps["long"]["cap_vol"] / s["cap_vol"] == pytest.approx((1 - rho) / (1 + rho), rel=TOML_RTOL * cancellation)
    b = caps["both_long"]
    assert b["psi"] == 0.0 and b["cap_vol_liquidation"] is None and b["cap_vol"] is not None
    problem = load_problem(tmp_path / "both_long.toml")
    assert math.isfinite(problem.cap.slope_vol) and solve(problem).certificate.ok


def test_output_is_byte_identical_for_the_same_command(capsys, tmp_path):
    out = tmp_path / "again.toml"
    argv = ("--positions", "0.5,-0.5", "--out", str(out), "--points", POINTS, "--risk-input", "ewma", "--window", "100")
    files = [out, out.with_name("again.states.csv"), out.with_name("again.shock.csv")]
    assert run(capsys, *argv)[0] == 0
    first = [f.read_bytes() for f in files]
    assert run(capsys, *argv)[0] == 0
    assert [f.read_bytes() for f in files] == first
    assert f"# Command: margin-design calibrate portfolio --dataset sp500-nasdaq --positions 0.5,-0.5 --out {out}" in first[0].decode()


@pytest.mark.parametrize("dataset, positions", [("sp500", "1"), ("sp500-nasdaq", "1,0")])
def test_one_contract_matches_calibrate_data(capsys, tmp_path, dataset, positions):
    """One contract (K = 1, or h = (1, 0)): the same states and shocks as `calibrate data`, and the same cap."""
    data, port = tmp_path / "data" / "d.toml", tmp_path / "port" / "d.toml"
    assert main(["calibrate", "data", "--dataset", "sp500", "--out", str(data), "--points", POINTS]) == 0
    assert run(capsys, "--dataset", dataset, "--positions", positions, "--out", str(port), "--points", POINTS)[0] == 0
    capsys.readouterr()
    assert data.with_name("d.states.csv").read_bytes() == port.with_name("d.states.csv").read_bytes()
    y_data = np.loadtxt(data.with_name("d.shock.csv"), skiprows=1)
    y_port = np.loadtxt(port.with_name("d.shock.csv"), skiprows=1)
    np.testing.assert_allclose(y_port, y_data, rtol=MARKS_RTOL, atol=0)
    assert load_problem(port).cap.slope_vol == pytest.approx(load_problem(data).cap.slope_vol, rel=IDENTITY_RTOL)


def test_risk_history_is_the_functional(panel, arch_returns):
    """r_t of the functional over rolling windows against direct formulas: realised variance of h'R (data.py) and
    historical-simulation VaR read as a variance, ((n-th largest loss) / (sqrt(H) z_p))^2."""
    _, _, R = arch_returns
    h = np.array([0.5, -0.5])
    y = R @ h
    rv = portfolio_risk_history(panel.close, PortfolioRisk("realized_variance", tuple(h), 20))
    direct = np.concatenate([[np.nan], realized_variance(y, 20)])
    np.testing.assert_allclose(rv[20:], direct[20:], rtol=MARKS_RTOL, atol=0)
    assert np.all(np.isnan(rv[:20]))
    spec = PortfolioRisk("hs_var", tuple(h), 250, level=0.99, horizon_days=2.0)
    hs = portfolio_risk_history(panel.close[:600], spec)
    n, k = tail_count(250, 0.99), value_per_vol(spec)
    for t in (250, 400, 599):
        losses = -math.sqrt(2.0) * y[t - 250 : t]
        var = np.sort(losses)[-n]
        assert hs[t] == pytest.approx((max(var, 0.0) / k) ** 2, rel=MARKS_RTOL)


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["--positions", "0.5,0.5,0.5"], "--positions has 3 weight(s) but --dataset sp500-nasdaq has 2 contracts"),
        (["--positions", "0.5,0.5", "--with-wti"], "--positions has 2 weight(s) but --dataset sp500-nasdaq --with-wti has 3"),
        (["--positions", "0,0"], "--positions = 0,0 are all zero"),
        (["--positions", "a,b"], "--positions must be comma-separated numbers"),
        (["--positions", "0.5,0.5", "--risk-input", "var"], "argument --risk-input: invalid choice: 'var'"),
        (["--positions", "0.5,0.5", "--lambda", "0.9"], "--lambda 0.9 applies only to --risk-input ewma"),
        (["--positions", "0.5,0.5", "--risk-input", "ewma", "--level", "0.99"], "--level 0.99 applies only to"),
        (["--positions", "0.5,0.5", "--window", "0"], "--window must be a positive integer"),
        (["--positions", "0.5,0.5", "--risk-input", "variance", "--window", "5"], "--window 5 does not apply to --risk-input variance"),
        (["--positions", "0.5,0.5,0.2", "--with-wti", "--start", "2018-12-31", "--end", "2018-12-31"], "--with-wti: WTI has no closes in the window"),
        (["--positions", "0.5,0.5,0.2", "--with-wti", "--start", "2019-01-02"], "SP500 has no closes in the window 2019-01-02"),
        (["--positions", "0.5,0.5,0.2", "--with-wti", "--sector-notional", "1e12"], "WTI has no volume"),
        (["--positions", "0.5,0.5", "--risk-input", "variance"], "explodes; use a longer --window"),
        (["--positions", "0.5,0.5", "--start", "2018-06-01"], "at least 250 are needed"),
        (["--positions", "0.5,0.5", "--sector-positions", "1"], "--sector-positions has 1 weight(s)"),
    ],
)
def test_bad_flags_exit_2_with_one_sentence_and_write_nothing(capsys, tmp_path, argv, flag):
    out = tmp_path / "bad.toml"
    code, text, err = run(capsys, *argv, "--out", str(out))
    line = err.strip()
    assert code == 2 and "\n" not in line and flag in line and "Traceback" not in line, err
    assert not any(tmp_path.iterdir())


def test_with_wti_aligns_three_contracts(tmp_path):
    """WTI (no volume) on the indices' common dates: its ADV is n/a and tau, f are in its own ADV units."""
    panel = load_panel("sp500-nasdaq", with_wti=True, start="2012-01-01", end="2016-12-31")
    assert panel.assets == ("SP500", "NASDAQ", "WTI") and panel.volume[2] is None
    assert panel.dropped > 0 and np.all(np.isfinite(panel.close))
    cal = calibrate_portfolio(panel, [0.4, 0.4, 0.2], points=int(POINTS))
    paths, summary = write_portfolio_config(cal, tmp_path / "wti.toml")
    assert cal.adv[2] is None and "ADV WTI: not available" in paths["config"].read_text()
    np.testing.assert_allclose(cal.liquidation, [0.225 * 0.4 / M, 0.225 * 0.4 / M, 0.225 * 0.2 / M], rtol=IDENTITY_RTOL)
    assert solve(load_problem(paths["config"])).certificate.ok


@pytest.mark.parametrize("name", ["portfolio_long", "portfolio_spread"])
def test_shipped_examples_are_what_their_command_writes(capsys, tmp_path, monkeypatch, name):
    """The example's header records its command; run in a fresh folder it writes the same three files, and the
    example solves certified."""
    cfg = REPO / "examples" / f"{name}.toml"
    command = next(ln for ln in cfg.read_text().splitlines() if ln.startswith("# Command: "))[len("# Command: "):]
    argv = shlex.split(command)
    assert argv[:3] == ["margin-design", "calibrate", "portfolio"]
    (tmp_path / "examples").mkdir()
    monkeypatch.chdir(tmp_path)
    assert main(argv[1:]) == 0
    capsys.readouterr()
    for suffix in (".toml", ".states.csv", ".shock.csv"):
        assert (tmp_path / "examples" / f"{name}{suffix}").read_bytes() == (REPO / "examples" / f"{name}{suffix}").read_bytes()
    assert solve(load_problem(cfg)).certificate.ok
