"""The whole product chain: solve the capped optimum, audit rules against it, simulate, backtest, write files;
and the command line's one-sentence errors (exit 2)."""

from __future__ import annotations

import argparse
import csv
import json
import math

import numpy as np
import pytest
from conftest import BASE_CONFIG, EXAMPLES

from margin_design.audit import STATE_UNITS, AuditOptions, build_audit, load_rule
from margin_design.audit.build import PROFIT_TOL
from margin_design.cli_audit import main, register
from margin_design.reports.audit import OPTIONAL_STATE_COLUMNS, STATE_COLUMNS, audit_files

Z99 = 2.3263478740408408
#: The benchmark's first-best slope per unit daily vol, sqrt(2) z_0.99, and the cap 2/(alpha c_eff) (examples/benchmark.toml).
FB_SLOPE = math.sqrt(2) * Z99
CAP = 2 / (0.2 * 4.5)
#: Relative tolerance of slopes computed by autodiff and interpolation on the grid.
SLOPE_RTOL = 1e-9


@pytest.fixture(scope="module")
def benchmark_audit():
    """examples/benchmark.toml, the first-best formula as the audited rule, simulation (4,000 paths) and the S&P 500 backtest."""
    rule = load_rule(f"{Z99!r}*sqrt(2*r)", name="VaR 99% 2-day")
    return build_audit(rule, EXAMPLES / "benchmark.toml", AuditOptions(paths=4000, data="sp500"))


def test_capped_optimum_passes_first_best_fails(benchmark_audit):
    a = benchmark_audit
    assert len(a.schedule.segments) == 1 and a.schedule.segments[0]["kind"] == "saturated"
    # local analysis: g* sits at the cap (G = 2, not over it), M_fb is over it in every state with G = 0.9 * 3.29
    assert not a.local_capped.exceeds_cap.any()
    assert np.allclose(a.local_capped.G[:-1], 2.0, rtol=1e-8)
    assert a.local_first_best.exceeds_cap.all()
    assert np.allclose(a.local_first_best.G, 0.2 * 4.5 * FB_SLOPE, rtol=SLOPE_RTOL)
    assert a.local.summary()["share_over_cap"] == 1.0
    # the simulation's checks (a)-(d)
    checks = a.simulation["checks"]
    assert checks["a_lemma5_bound_holds"]
    assert checks["b_first_best_manipulable"]
    assert checks["c_capped_not_manipulable"]
    assert checks["d_search_capped_none"] and checks["d_search_first_best_found"]
    spread = a.simulation["search"]["spread"]
    assert spread["capped"]["best"]["mean"] <= PROFIT_TOL and spread["capped"]["significantly_positive"] == 0
    assert spread["first_best"]["best"]["mean"] > 0
    assert max(int(T) for T in spread["capped"]["best_by_horizon"]) == 4
    # the price of manipulation-proofness is positive; the audited rule is the first-best, so it costs J(M_fb)
    assert a.costs["capped"] > a.costs["first_best"]
    assert a.costs["rule"] == pytest.approx(a.costs["first_best"], rel=1e-9)


def test_backtest_on_sp500(benchmark_audit):
    b = benchmark_audit.backtest
    m = b["metrics"]
    assert set(m) == {"first_best", "capped", "rule", "rule_buffer", "rule_stressed", "rule_floor"}
    assert m["first_best"].days > 4900 and m["first_best"].share_over_cap == 1.0
    assert m["capped"].share_over_cap == 0.0
    # the buffer covers more than the plain rule; the 10-year floor raises the average margin
    assert m["rule_buffer"].breaches < m["rule"].breaches
    assert m["rule_floor"].mean_margin > m["rule"].mean_margin
    # the largest 30-day margin increase of the first-best starts in 2008
    d = m["first_best"].to_dict(b["data"].dates)
    assert d["largest_increases"]["30"]["relative_from_date"].startswith("2008")
    assert 0 < m["capped"].peak_to_trough < m["first_best"].peak_to_trough


def test_audit_files_and_figures(benchmark_audit):
    files = audit_files(benchmark_audit)
    for name in ("summary.txt", "audit.json", "states.csv", "states.json", "jumps.csv", "risk_inputs.csv", "backtest_paths.csv",
                 "figures/slope_vs_cap.png", "figures/profit_vs_q.png", "figures/backtest.png"):
        assert name in files and files[name]
    rows = list(csv.DictReader(files["states.csv"].decode().splitlines()))
    assert len(rows) == 400 and all(r["exceeds_cap"] == "True" for r in rows)
    assert float(rows[0]["capped_slope_dm_dvol"]) == pytest.approx(CAP, rel=1e-9)
    doc = json.loads(files["audit.json"])
    assert set(STATE_COLUMNS + OPTIONAL_STATE_COLUMNS) <= set(doc["state_columns"]) == set(STATE_UNITS)  # every column has its unit
    assert doc["simulation"]["checks"]["c_capped_not_manipulable"] is True
    assert files["figures/slope_vs_cap.png"][:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------- command line


@pytest.fixture
def small_market(write_config):
    return write_config(BASE_CONFIG, "market.toml")


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_step_table_with_overlays_writes_deterministic_files(tmp_path, small_market, capsys):
    rule = tmp_path / "rule.csv"
    rule.write_text("vol,margin\n0.005,0.02\n0.01,0.03\n0.02,0.05\n0.03,0.07\n")
    args = [rule, "--market", small_market, "--interpolation", "step", "--tick", "0.0025", "--addon", "0.025:0.005",
            "--paths", "200", "--max-horizon", "2", "--trim", "0.02"]
    code, out, err = run_cli(capsys, *args, "--out", tmp_path / "a")
    assert code == 0, err
    assert "Jumps and kinks (Section 6.6)" in out and "step add-on" in out and "wrote" in out
    code, _, err = run_cli(capsys, *args, "--out", tmp_path / "b")
    assert code == 0, err
    names = sorted(p.relative_to(tmp_path / "a").as_posix() for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert "figures/slope_vs_cap.png" in names and "figures/profit_vs_q.png" in names and "jumps.csv" in names
    for n in names:
        assert (tmp_path / "a" / n).read_bytes() == (tmp_path / "b" / n).read_bytes(), n
    jumps = list(csv.DictReader((tmp_path / "a" / "jumps.csv").read_text().splitlines()))
    assert any(abs(float(j["threshold_vol_daily"]) - 0.025) < 1e-9 for j in jumps)
    states = list(csv.DictReader((tmp_path / "a" / "states.csv").read_text().splitlines()))
    assert len(states) == 40 and "trim_jump_margin_ratio" in states[0]


def test_cli_strategic_accounts(tmp_path, small_market, capsys):
    rng = np.random.default_rng(0)
    acc = tmp_path / "accounts.csv"
    acc.write_text("equity,benefit\n" + "".join(f"{float(e)!r},{float(b)!r}\n" for e, b in zip(rng.lognormal(0, 0.5, 50) * 0.01, rng.uniform(0, 1, 50))))
    code, out, err = run_cli(capsys, f"{Z99!r}*sqrt(2*r)", "--market", small_market, "--no-simulation", "--accounts", acc, "--chi", "1", "--eta", "1e4")
    assert code == 0, err
    assert "Strategic constrained traders (Appendix B" in out


@pytest.mark.parametrize(
    "content, match",
    [
        ("vol,margin\n0.01,0.03\n0.02,0.05\n0.015,0.06\n", "knots are out of order"),
        ("vol,margin\n0.01,0.05\n0.02,0.04\n", "is not monotone"),
        ("vol,level\n0.01,0.05\n0.02,0.06\n", "has no column 'margin'"),
    ],
)
def test_cli_bad_tables_exit_2(tmp_path, small_market, capsys, content, match):
    rule = tmp_path / "rule.csv"
    rule.write_text(content)
    code, out, err = run_cli(capsys, rule, "--market", small_market, "--no-simulation")
    assert code == 2 and out == ""
    assert err.startswith("margin-design: error: ") and match in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "argv, match",
    [
        (["2*(r", "--no-simulation"], "cannot be parsed"),
        (["3*x", "--no-simulation"], "unknown symbol x"),
        (["0.05 - sigma", "--no-simulation"], "is not monotone"),
        (["3*sigma", "--buffer", "0.25", "--no-simulation"], "needs buffer_release_vol"),
        (["3*sigma", "--data", "prices.xlsx", "--no-simulation"], "must be 'sp500' or a .csv"),
        (["3*sigma", "--accounts", "a.csv", "--no-simulation"], "--accounts needs --chi"),
        (["3*sigma", "--paths", "5"], "--paths 5 must be an integer >= 100"),
        (["rule.txt", "--no-simulation"], "must be a .csv or .json table, a .toml rule file, a report or solve folder, or a formula"),
    ],
)
def test_cli_user_errors_exit_2(small_market, capsys, argv, match):
    code, out, err = run_cli(capsys, argv[0], "--market", small_market, *argv[1:])
    assert code == 2 and out == ""
    assert match in err and err.count("\n") == 1


def test_cli_missing_market_and_bad_addon(tmp_path, capsys):
    code, _, err = run_cli(capsys, "3*sigma", "--market", tmp_path / "missing.toml")
    assert code == 2 and "cannot be read" in err
    code, _, err = run_cli(capsys, "3*sigma", "--market", tmp_path / "m.toml", "--addon", "0.02")
    assert code == 2 and "VOL:AMOUNT" in err


def test_register_adds_the_audit_subcommand():
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["audit", "3*sigma", "--market", "m.toml", "--tick", "0.0005"])
    assert args.command == "audit" and args.tick == 0.0005 and callable(args.func)
