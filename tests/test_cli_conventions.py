"""Command-line conventions (issue 11, section 6): --version, --json, -q/-v, progress lines, audit --check,
sweeps of target designs, option names and help texts.

Every --json test parses stdout with json.loads and checks the numbers against the files the command wrote or
against an independent solve. stderr is captured (not a terminal), so progress shows as plain lines.
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from conftest import BASE_CONFIG, EXAMPLES

from margin_design import console
from margin_design.cli import build_parser, main

#: Agreement between a sweep row and the same configuration solved on its own (both certified optima; the
#: batch and the single solve take different Newton paths, so only the optimum's value is shared).
SWEEP_RTOL = 1e-9
#: Most plain progress lines one stage may print when stderr is not a terminal (one per 10% plus the end).
MAX_PLAIN_LINES = 11

SMALL = BASE_CONFIG   # the suite's small cost design (alpha 0.2, c_eff 4.5, variance input: K = 2.22)
#: A rule over the cap of SMALL (dM/dsigma = 2.326 sqrt(2) = 3.29 > K = 2.22) and one well within it (0.5).
STEEP_RULE = "2.326*sqrt(2*r)"
FLAT_RULE = "0.01+0.5*sigma"


@pytest.fixture
def small(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.toml").write_text(SMALL)
    return tmp_path


def run(capfd, *argv):
    capfd.readouterr()
    status = main(list(argv))
    out, err = capfd.readouterr()
    return status, out, err


def progress_lines(err: str, stage: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith(f"margin-design: {stage}: ")]


# ---------------------------------------------------------------------- --version


def test_version_is_the_installed_metadata_and_loads_no_jax():
    code = "import sys; from margin_design.cli import main; s = main(['--version']); print('jax' in sys.modules, s)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    first, last = res.stdout.splitlines()[0], res.stdout.splitlines()[-1]
    assert first == f"margin-design {metadata.version('margin-design')}"
    assert last == "False 0"


# ---------------------------------------------------------------------- --json


def test_solve_json_matches_the_written_schedule(small, capfd):
    status, out, err = run(capfd, "solve", "c.toml", "--out", "o", "--json")
    assert status == 0 and err == ""
    summary = json.loads(out)  # exactly one JSON object, nothing else
    written = json.loads((small / "o" / "schedule.json").read_text())
    assert summary["objective"] == written["objective"]["value"]
    assert summary["first_best_objective"] == written["objective"]["first_best_value"]
    assert summary["price_of_manipulation_proofness"] == pytest.approx(
        written["objective"]["value"] - written["objective"]["first_best_value"], rel=0, abs=0)
    assert summary["segments"] == written["segments"]
    assert summary["certificate"] == written["certificate"] and summary["certified"] is True
    assert summary["states"] == len(written["schedule"])
    assert sorted(Path(f).name for f in summary["files"]) == ["schedule.csv", "schedule.json"]


def test_json_file_keeps_the_human_lines(small, capfd):
    status, out, _ = run(capfd, "solve", "c.toml", "--json", "s.json")
    assert status == 0 and "Manipulation-proof margin schedule" in out
    assert json.loads((small / "s.json").read_text())["certified"] is True


def test_report_json_lists_what_it_wrote(small, capfd):
    status, out, _ = run(capfd, "report", "c.toml", "--out", "r", "--json")
    assert status == 0
    summary = json.loads(out)
    files = sorted(p.resolve() for p in (small / "r").rglob("*") if p.is_file())
    assert sorted(Path(f).resolve() for f in summary["files"]) == files
    table = json.loads((small / "r" / "rule_table.json").read_text())
    rows = table.get("rows") or table.get("knots")
    assert summary["knots"] == len(rows)
    assert summary["cap_and_monotonicity_ok"] is True
    schedule = json.loads((small / "r" / "schedule.json").read_text())
    assert summary["segments"] == schedule["segments"] and summary["objective"] == schedule["objective"]["value"]


def test_warnings_reach_stderr_under_json_and_quiet(small, capfd):
    """A step table's Section 6.6 warning: on stderr in every mode, and in the JSON object's warnings."""
    status, out, err = run(capfd, "report", "c.toml", "--out", "r", "--steps", "5", "--json")
    assert status == 0
    warnings = json.loads(out)["warnings"]
    assert warnings and [f"margin-design: warning: {w}" for w in warnings] == err.splitlines()
    status, out, err = run(capfd, "-q", "report", "c.toml", "--out", "r", "--steps", "5")
    assert status == 0 and out == "" and err.splitlines() == [f"margin-design: warning: {w}" for w in warnings]


def test_sweep_json_matches_the_table(small, capfd):
    status, out, err = run(capfd, "sweep", "c.toml", "--vary", "market.alpha=0.1,0.3", "--out", "s.csv", "--workers", "0", "--json")
    assert status == 0
    assert progress_lines(err, "sweep") == []  # --json: no progress
    summary = json.loads(out)
    rows = list(csv.DictReader((small / "s.csv").open()))
    prices = [float(r["price_of_manipulation_proofness"]) for r in rows]
    assert summary["configurations"] == len(rows) == 2 and summary["certified"] == 2
    assert summary["price_of_manipulation_proofness"] == {"min": min(prices), "max": max(prices)}


# ---------------------------------------------------------------------- audit --check and --json


def test_audit_check_fails_over_the_cap_after_writing(small, capfd):
    status, out, err = run(capfd, "audit", STEEP_RULE, "--market", "c.toml", "--no-simulation", "--check", "--out", "a", "--json")
    assert status == 1
    written = json.loads((small / "a" / "audit.json").read_text())  # outputs written as usual
    summary = json.loads(out)
    assert summary["check"] == "fail" and summary["breaks_cap"] is True
    assert summary["local"] == written["local"] and written["local"]["states_over_cap"] > 0
    assert summary["costs"] == written["costs"]
    lines = [line for line in err.splitlines() if "check failed" in line]
    assert len(lines) == 1 and f"{written['local']['states_over_cap']} of {written['local']['states']} states" in lines[0]


def test_audit_check_passes_within_the_cap(small, capfd):
    status, out, err = run(capfd, "audit", FLAT_RULE, "--market", "c.toml", "--no-simulation", "--check")
    assert status == 0 and "check failed" not in err
    assert "check passed" in out.splitlines()[-1]


def test_audit_without_check_exits_0_over_the_cap(small, capfd):
    status, _, err = run(capfd, "audit", STEEP_RULE, "--market", "c.toml", "--no-simulation")
    assert status == 0 and "check failed" not in err


# ---------------------------------------------------------------------- -q / -v


@pytest.mark.parametrize("argv", [["-q", "solve", "c.toml"], ["solve", "c.toml", "-q"], ["solve", "c.toml", "--quiet"]])
def test_quiet_prints_nothing_before_or_after_the_subcommand(small, capfd, argv):
    status, out, err = run(capfd, *argv, "--out", "o")
    assert status == 0 and out == "" and err == ""
    assert (small / "o" / "schedule.json").is_file()


def test_verbose_adds_solver_details_on_stderr(small, capfd):
    status, out, err = run(capfd, "-v", "solve", "c.toml")
    assert status == 0 and "Newton iterations" in out
    details = [line for line in err.splitlines() if line.startswith("margin-design: solver: ")]
    assert len(details) == 1 and re.search(r"\d+ Newton iterations, [\d.]+ s; 40 states", details[0])
    status, out2, err2 = run(capfd, "solve", "c.toml")
    assert "margin-design: solver:" not in err2
    assert out2.splitlines()[:-1] == out.splitlines()[:-1]  # the same summary (its last line has the wall time)


# ---------------------------------------------------------------------- progress


def test_sweep_progress_is_a_few_plain_lines_off_a_terminal(small, capfd):
    status, _, err = run(capfd, "sweep", "c.toml", "--vary", "market.alpha=0.1:0.3:6", "--out", "s.csv", "--workers", "0", "--chunk", "2")
    assert status == 0
    lines = progress_lines(err, "sweep")
    assert 1 <= len(lines) <= MAX_PLAIN_LINES
    assert lines[-1].startswith("margin-design: sweep: 6/6 configurations (100%)") and "ETA" in lines[-1] and "/s" in lines[-1]
    status, _, err = run(capfd, "-q", "sweep", "c.toml", "--vary", "market.alpha=0.1:0.3:6", "--out", "s.csv", "--workers", "0", "--chunk", "2")
    assert status == 0 and err == ""


def test_audit_progress_for_simulation_and_backtest(small, capfd):
    argv = ["audit", FLAT_RULE, "--market", "c.toml", "--paths", "200", "--data", "sp500", "--start", "2015-01-01"]
    status, _, err = run(capfd, *argv)
    assert status == 0
    for stage in ("simulation", "backtest"):
        lines = progress_lines(err, stage)
        assert 1 <= len(lines) <= MAX_PLAIN_LINES and "(100%)" in lines[-1]
    status, _, err = run(capfd, *argv, "-q")
    assert status == 0 and progress_lines(err, "simulation") == progress_lines(err, "backtest") == []


def test_calibrate_data_progress(small, capfd):
    status, _, err = run(capfd, "calibrate", "data", "--dataset", "sp500", "--out", "d.toml", "--start", "2015-01-01")
    assert status == 0
    lines = progress_lines(err, "calibrate data")
    assert 1 <= len(lines) <= MAX_PLAIN_LINES and lines[-1].startswith("margin-design: calibrate data: 5/5 stages (100%)")
    status, out, err = run(capfd, "calibrate", "data", "--dataset", "sp500", "--out", "d.toml", "--start", "2015-01-01", "--json")
    assert status == 0 and progress_lines(err, "calibrate data") == []
    assert json.loads(out)["files"]["config"].endswith("d.toml")


def test_plain_progress_steps_and_silence(capsys):
    """The callback itself: at most one line per 10% (rate-limited), always one at the end; silent under -q."""
    console.configure()
    try:
        with console.progress("items") as tick:
            for i in range(1001):
                tick(i, 1000, "work")
        err = capsys.readouterr().err.splitlines()
        assert 1 <= len(err) <= MAX_PLAIN_LINES and err[-1].startswith("margin-design: work: 1000/1000 items (100%)")
        console.configure(quiet=True)
        with console.progress("items") as tick:
            tick(1, 1, "work")
        assert capsys.readouterr().err == ""
    finally:
        console.configure()


# ---------------------------------------------------------------------- sweep of a target design


def test_target_sweep_matches_individual_solves(tmp_path, capfd):
    from margin_design.design.config import load_config, problem_from_dict
    from margin_design.solvers import solve

    src = EXAMPLES / "cap_existing_schedule.toml"
    out = tmp_path / "s.csv"
    status, stdout, _ = run(capfd, "sweep", str(src), "--vary", "market.alpha=0.1,0.4", "--vary", "market.c_eff=3,6",
                            "--out", str(out), "--workers", "0", "--json")
    assert status == 0 and json.loads(stdout)["certified"] == 4
    rows = list(csv.DictReader(out.open()))
    cfg, folder = load_config(src)
    raw = {s: {k: v for k, v in sec.items() if v is not None} for s, sec in cfg.items()}
    raw["objective"] = {"kind": "target", "file": cfg["objective"]["file"]}
    prices = set()
    for row in rows:
        one = copy.deepcopy(raw)
        one["market"].update(alpha=float(row["market.alpha"]), c_eff=float(row["market.c_eff"]))
        alone = solve(problem_from_dict(one, folder))
        assert alone.certificate.ok and row["certified"] == "True"
        assert float(row["objective"]) == pytest.approx(alone.objective["value"], rel=SWEEP_RTOL)
        assert float(row["price_of_manipulation_proofness"]) == pytest.approx(alone.price_of_manipulation_proofness, rel=SWEEP_RTOL)
        assert row["dprice_d_carry"] == "nan"  # a target design has no cost weights
        prices.add(round(float(row["price_of_manipulation_proofness"]), 12))
    assert len(prices) == 4  # the market really varied


# ---------------------------------------------------------------------- option names and help texts


def _parsers(parser=None):
    parser = parser or build_parser()
    yield parser
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            for sub in a.choices.values():
                yield from _parsers(sub)


def test_help_texts_have_no_rest_markup():
    parsers = list(_parsers())
    assert len(parsers) >= 13  # top level, solve, calibrate and its eight, report, sweep, audit
    for p in parsers:
        text = p.format_help()
        for mark in ("``", ":func:", ":class:", ":mod:", ":meth:"):
            assert mark not in text, (p.prog, mark)


def test_help_runs_for_every_subcommand(capfd):
    for p in _parsers():
        argv = p.prog.split()[1:] + ["--help"]
        status, out, _ = run(capfd, *argv)
        assert status == 0 and out.startswith("usage: ") and "``" not in out


def test_tau_means_turnover_only():
    """'tau' names the turnover XP/ADV (calibrate); the execution cost is --execution-cost with its unit."""
    for p in _parsers():
        for a in p._actions:
            text = f"{a.metavar or ''} {a.help or ''}"
            if a.metavar == "TAU" or "--tau" in a.option_strings:
                assert "--turnover" in a.option_strings, (p.prog, a.option_strings)
            if "--execution-cost" in a.option_strings:
                assert a.metavar != "TAU" and "decimal of notional" in text


def test_calibrate_cap_without_vol_omits_dm_dr(capfd):
    argv = ["calibrate", "cap", "--elasticity", "0.225", "--turnover", "1", "--participation", "0.01", "--margin", "0.05"]
    status, out, _ = run(capfd, *argv)
    assert status == 0 and "n/a" not in out and "cap dm/dr" not in out and "cap dm/dsigma (18)" in out
    status, out, _ = run(capfd, *argv, "--vol", "0.01")
    row = next(line for line in out.splitlines() if line.startswith("cap dm/dr"))
    status, js, _ = run(capfd, *argv, "--vol", "0.01", "--json")
    # (17): dm/dr = K / (2 sigma) with K = dm/dsigma
    value = json.loads(js)["cap"]
    assert value["dm_dr"] == pytest.approx(value["dm_dvol"] / (2 * 0.01), rel=1e-12)
    assert float(re.split(r"\s{2,}", row)[1]) == pytest.approx(value["dm_dr"], rel=1e-3)  # printed to 4 digits
