"""`margin-design calibrate ...`: JSON contracts, printed tables, config output, and one-sentence errors (exit 2)."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from margin_design.cli_calibrate import main

#: Float tolerance of values passed through JSON.
IDENTITY_RTOL = 1e-12
#: TOML floats are written with 12 significant digits.
TOML_RTOL = 1e-11
#: Half a unit in the last printed digit of a one-decimal table cell (Table 5).
ONE_DECIMAL = 0.05


def run(capsys, *argv):
    code = main(["calibrate", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, *argv):
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def test_cap_json_contract(capsys):
    out = run_json(capsys, "cap", "--elasticity", "0.225", "--turnover", "1", "--participation", "0.01", "--margin", "0.05")
    assert set(out) == {"alpha", "c_eff", "alpha_c_eff", "cap"}
    assert set(out["cap"]) == {"dm_dr", "dm_dvol", "dm_dvol_annual", "relative_dvol_annual"}
    assert out["alpha"] == pytest.approx(0.2, rel=IDENTITY_RTOL)
    assert out["c_eff"] == pytest.approx(4.5, rel=IDENTITY_RTOL)
    assert out["alpha_c_eff"] == pytest.approx(0.9, rel=IDENTITY_RTOL)
    assert out["cap"]["dm_dr"] is None  # state-dependent: needs --vol
    assert round(out["cap"]["relative_dvol_annual"], 2) == 2.80  # (45) at tau = 1
    with_vol = run_json(capsys, "cap", "--elasticity", "0.225", "--turnover", "1", "--participation", "0.01", "--margin", "0.05", "--vol", "0.01")
    assert with_vol["cap"]["dm_dr"] == pytest.approx(1 / (0.9 * 0.01), rel=IDENTITY_RTOL)  # (74)
    # --distortion-bps 20 is the same as the default k = 200 at f = 1%
    d = run_json(capsys, "cap", "--elasticity", "0.225", "--turnover", "1", "--participation", "0.01", "--margin", "0.05", "--distortion-bps", "20")
    assert d == out


def test_gain_json_contract(capsys):
    # Table 1, f = 1%, 5% -> 7%: G = 9, 140 bp, 20% ROI.
    out = run_json(capsys, "gain", "--elasticity", "0.225", "--turnover", "1", "--participation", "0.01", "--margin-from", "0.05", "--margin-to", "0.07")
    assert {"G", "distortion_bps", "profit_bps", "roi_pct", "profitable"} <= set(out)
    assert out["G"] == pytest.approx(9.0, rel=IDENTITY_RTOL)
    assert out["distortion_bps"] == pytest.approx(20.0, rel=IDENTITY_RTOL)
    assert out["profit_bps"] == pytest.approx(140.0, rel=IDENTITY_RTOL)
    assert out["roi_pct"] == pytest.approx(20.0, rel=IDENTITY_RTOL)
    assert out["profitable"] is True
    costly = run_json(
        capsys, "gain", "--elasticity", "0.225", "--turnover", "1", "--participation", "0.01", "--margin-from", "0.05", "--margin-to", "0.07",
        "--execution-cost", "0.001", "--funding-spread", "0.02",
    )
    assert costly["q_min"] == pytest.approx((2 * 0.001 + 0.02 * 0.05) / (0.2 * 7), rel=IDENTITY_RTOL)  # (58)


def test_threshold_json_contract(capsys):
    # Table 5, tau = 1: 7.1 points for a 20% jump; 28% for +10 points; tau = 2: 14.3 points, 14%.
    out = run_json(capsys, "threshold", "--turnover", "1", "--margin-jump", "0.2")
    assert set(out) == {"vol_points_needed"}
    assert abs(out["vol_points_needed"] - 7.1) <= ONE_DECIMAL
    out = run_json(capsys, "threshold", "--turnover", "1", "--vol-rise", "10")
    assert set(out) == {"max_relative_margin_increase"}
    assert round(out["max_relative_margin_increase"], 2) == 0.28
    both = run_json(capsys, "threshold", "--turnover", "2", "--vol-rise", "10", "--margin-jump", "0.2")
    assert abs(both["vol_points_needed"] - 14.3) <= ONE_DECIMAL and round(both["max_relative_margin_increase"], 2) == 0.14
    # overrides: doubling the elasticity halves the cap, so twice the points are needed
    eps2 = run_json(capsys, "threshold", "--turnover", "1", "--margin-jump", "0.2", "--elasticity", "0.45")
    assert eps2["vol_points_needed"] == pytest.approx(2 * 7.143528539874394, rel=IDENTITY_RTOL)
    dist = run_json(capsys, "threshold", "--turnover", "1", "--margin-jump", "0.2", "--participation", "0.04", "--distortion-bps", "20")
    assert dist["vol_points_needed"] == pytest.approx(7.143528539874394 / 4, rel=IDENTITY_RTOL)


def test_tables_text_and_json(capsys, tmp_path):
    code, text, _ = run(capsys, "tables")
    assert code == 0
    assert "Table 1, Panel A" in text and "Table 5" in text and "Appendix D.6" in text
    data = run_json(capsys, "tables")
    assert set(data) >= {"table1", "table3", "table4", "table5", "equation45", "appendix_d6"}
    assert data["table3"]["G"][0][0][0][0] == pytest.approx(3.0, rel=IDENTITY_RTOL)  # Table 3 A, f 0.5%, tau 0.5, eps 0.15
    target = tmp_path / "tables.json"
    code, text2, _ = run(capsys, "tables", "--json", str(target))
    assert code == 0 and text2 == text
    assert json.loads(target.read_text()) == data
    first = target.read_bytes()
    run(capsys, "tables", "--json", str(target))
    assert target.read_bytes() == first


def _elasticity_csv(path: Path, n: int = 300, eps: float = 0.25) -> Path:
    rng = np.random.default_rng(42)
    dm = rng.standard_normal(n) * 0.05
    dx = -eps * dm + rng.standard_normal(n) * 0.01
    m = 0.05 * np.exp(np.concatenate([[0.0], np.cumsum(dm)]))
    x = 1e4 * np.exp(np.concatenate([[0.0], np.cumsum(dx)]))
    dates = np.arange(np.datetime64("2020-01-01"), np.datetime64("2020-01-01") + n + 1)
    path.write_text("date,margin,position\n" + "".join(f"{d},{a!r},{b!r}\n" for d, a, b in zip(dates, m.tolist(), x.tolist())))
    return path


def test_elasticity_command(capsys, tmp_path):
    p = _elasticity_csv(tmp_path / "oi.csv")
    out = run_json(capsys, "elasticity", str(p))
    assert out["ci"][0] < 0.25 < out["ci"][1]
    assert out["n_obs"] == 300
    assert set(out["cap_at"]) == {"estimate", "ci_low", "ci_high"}
    lo, hi = out["cap_at"]["ci_low"]["cap"]["relative_dvol_annual"], out["cap_at"]["ci_high"]["cap"]["relative_dvol_annual"]
    assert lo > hi
    code, text, _ = run(capsys, "elasticity", str(p))
    assert code == 0 and "interval" in text


def test_accounts_command(capsys, tmp_path):
    p = tmp_path / "accounts.csv"
    p.write_text("equity,target\n1,12\n2,20\n3,25\n4,0\n")
    out = run_json(capsys, "accounts", str(p), "--margin", "0.1")
    assert out["c_eff"] == pytest.approx(75.0, rel=IDENTITY_RTOL)  # (63) hand-made case of test_calibration_accounts
    assert out["binding_mass"] == pytest.approx(0.5, rel=IDENTITY_RTOL)


def test_append_market_block(capsys, tmp_path):
    cfg = tmp_path / "design.toml"
    cfg.write_text('[grid]\nvol_min = 0.004\nvol_max = 0.04\npoints = 50\nspacing = "vol"\n')
    args = ["cap", "--elasticity", "0.3", "--turnover", "2", "--participation", "0.02", "--margin", "0.06", "--append-market", str(cfg)]
    code, _, err = run(capsys, *args)
    assert code == 0, err
    doc = tomllib.loads(cfg.read_text())
    assert doc["grid"]["points"] == 50
    assert doc["market"]["c_eff"] == pytest.approx(0.3 * 2 / 0.06, rel=TOML_RTOL)
    assert doc["market"]["alpha"] == pytest.approx(200 * np.sqrt(0.02) / 1e4 / 0.02, rel=TOML_RTOL)
    code, _, err = run(capsys, *args)
    assert code == 2 and "already has a [market] block" in err


def test_data_command_writes_a_config(capsys, tmp_path):
    out = tmp_path / "cfg" / "design.toml"
    code, text, err = run(capsys, "data", "--dataset", "sp500", "--out", str(out), "--points", "11", "--elasticity", "0.3", "--margin", "0.06")
    assert code == 0, err
    assert "Wrote" in text
    doc = tomllib.loads(out.read_text())
    assert doc["market"]["c_eff"] == pytest.approx(0.3 / 0.06, rel=TOML_RTOL)
    assert (out.parent / "design.states.csv").is_file() and (out.parent / "design.shock.csv").is_file()


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["cap", "--elasticity", "-0.1", "--turnover", "1", "--participation", "0.01", "--margin", "0.05"], "--elasticity"),
        (["cap", "--elasticity", "0", "--turnover", "1", "--participation", "0.01", "--margin", "0.05"], "--elasticity"),
        (["cap", "--elasticity", "0.2", "--turnover", "1", "--participation", "0", "--margin", "0.05"], "--participation"),
        (["cap", "--elasticity", "0.2", "--turnover", "1", "--participation", "1.5", "--margin", "0.05"], "--participation"),
        (["gain", "--elasticity", "0.2", "--turnover", "1", "--participation", "0.01", "--margin-from", "0.06", "--margin-to", "0.05"], "--margin-to"),
        (["threshold", "--turnover", "1"], "--margin-jump"),
        (["threshold", "--turnover", "1", "--margin-jump", "0.2", "--participation", "2"], "--participation"),
        (["data", "--dataset", "sp500", "--out", "x.toml", "--elasticity", "-1"], "--elasticity"),
    ],
)
def test_bad_flags_exit_2_with_one_sentence(capsys, argv, flag):
    code, out, err = run(capsys, *argv)
    assert code == 2
    line = err.strip()
    assert "\n" not in line and flag in line and "Traceback" not in line


def test_bad_files_exit_2_with_one_sentence(capsys, tmp_path):
    missing = tmp_path / "m.csv"
    missing.write_text("date,margin\n2020-01-01,0.05\n")
    code, _, err = run(capsys, "elasticity", str(missing))
    assert code == 2 and "no column 'position' or 'open_interest'" in err
    short = _elasticity_csv(tmp_path / "short.csv", n=10)
    code, _, err = run(capsys, "elasticity", str(short))
    assert code == 2 and "needs at least" in err
    acc = tmp_path / "a.csv"
    acc.write_text("equity,x\n1,2\n")
    code, _, err = run(capsys, "accounts", str(acc), "--margin", "0.1")
    assert code == 2 and "no column 'target'" in err
    code, _, err = run(capsys, "elasticity", str(tmp_path / "nope.csv"))
    assert code == 2 and "does not exist" in err


def test_through_the_installed_console_script():
    script = Path(sys.executable).parent / "margin-design"
    ok = subprocess.run([str(script), "calibrate", "threshold", "--turnover", "1", "--margin-jump", "0.2", "--json"], capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert abs(json.loads(ok.stdout)["vol_points_needed"] - 7.1) <= ONE_DECIMAL
    bad = subprocess.run(
        [str(script), "calibrate", "cap", "--elasticity", "0", "--turnover", "1", "--participation", "0.01", "--margin", "0.05"],
        capture_output=True, text=True, timeout=300,
    )
    assert bad.returncode == 2 and "--elasticity" in bad.stderr and "Traceback" not in bad.stderr
