"""``margin-design solve``: files, keys of schedule.json, atomic output, the summary a user sees."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np

from margin_design.cli import main

from conftest import EXAMPLES

REQUIRED_KEYS = {
    "version", "grid", "weights", "first_best", "schedule", "cap_increments", "multipliers",
    "segments", "objective", "certificate", "solver",
}


def test_solve_writes_schedule_json_and_csv(tmp_path, capsys):
    out = tmp_path / "bench"
    assert main(["solve", str(EXAMPLES / "liquidation.toml"), "--out", str(out), "--method", "cvxpy"]) == 0
    text = capsys.readouterr().out
    assert "CERTIFIED" in text and "saturated" in text and "tracking" in text
    data = json.loads((out / "schedule.json").read_text())
    assert REQUIRED_KEYS <= set(data)
    assert set(data["grid"]) >= {"r", "vol"}
    assert set(data["objective"]) >= {"value", "first_best_value", "terms"}
    assert set(data["objective"]["terms"]) == {"coverage", "carry", "liquidation", "participation"}
    assert set(data["certificate"]) >= {"feasibility", "balance", "complementarity", "relative_gap"}
    assert set(data["solver"]) >= {"method", "backend", "iterations", "seconds"}
    for seg in data["segments"]:
        assert set(seg) >= {"kind", "start", "end", "vol_start", "vol_end", "level", "intercept"}
    n = len(data["schedule"])
    assert len(data["multipliers"]) == n - 1 == len(data["cap_increments"])
    # segments tile the links
    assert data["segments"][0]["start"] == 0 and data["segments"][-1]["end"] == n - 1
    assert all(a["end"] == b["start"] for a, b in zip(data["segments"], data["segments"][1:]))
    # the CSV reproduces the schedule exactly (repr precision)
    with open(out / "schedule.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == n
    np.testing.assert_array_equal([float(r["margin"]) for r in rows], data["schedule"])
    np.testing.assert_array_equal([float(r["vol_daily"]) for r in rows], data["grid"]["vol"])
    assert rows[0]["segment_to_right"] == "saturated" and rows[-1]["segment_to_right"] == ""
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_console_script_runs_as_a_module(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "margin_design", "solve", str(EXAMPLES / "cap_existing_schedule.toml")],
        capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "pooling" in proc.stdout


def test_unknown_method_is_a_usage_error(capsys):
    assert main(["solve", str(EXAMPLES / "benchmark.toml"), "--method", "magic"]) == 2
    assert "invalid choice" in capsys.readouterr().err
