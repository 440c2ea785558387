"""``margin-design report``: the folder, byte-identical reruns, the schedule.json route, XLSX, golden tables,
atomic writes and user errors (exit status 2).

Set MARGIN_DESIGN_UPDATE_GOLDEN=1 to rewrite tests/golden/ after an intended change of the renderings.
"""

from __future__ import annotations

import csv
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import openpyxl
import pytest

from margin_design import cli_report
from margin_design.reports.figures import FIGURE_NAMES
from margin_design.reports.report import REPORT_FILES, ReportOptions, build_report, report_files
from margin_design.reports.rule_data import load_schedule_json
from margin_design.reports.table import COLUMNS
from margin_design.reports.xlsx import SHEETS

from conftest import EXAMPLES

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("MARGIN_DESIGN_UPDATE_GOLDEN") == "1"
DATE = "2026-07-01"


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _without_seconds(text: bytes) -> dict:
    d = json.loads(text)
    d["solver"].pop("seconds")
    return d


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """The benchmark report written twice by the command line (two solves), as in the issue."""
    base = tmp_path_factory.mktemp("bench")
    outs = []
    for k in (1, 2):
        out = base / f"run{k}"
        args = [str(EXAMPLES / "benchmark.toml"), "--out", str(out), "--effective-date", DATE, "--round", "0.0005", "--steps"]
        assert cli_report.main(args) == 0
        outs.append(out)
    return outs


def test_report_folder_has_every_file(two_runs):
    files = _files(two_runs[0])
    for name in REPORT_FILES:
        assert name in files, name
    for fig in FIGURE_NAMES:
        assert files[f"figures/{fig}.png"].startswith(b"\x89PNG\r\n\x1a\n")
        assert files[f"figures/{fig}.pdf"].startswith(b"%PDF")
    assert {"step_table.csv", "step_jumps.csv", "step_table.json"} <= set(files)
    assert not [p for p in two_runs[0].parent.iterdir() if p.name.startswith(".")]   # no temporary folders left


def test_reruns_are_byte_identical(two_runs):
    a, b = _files(two_runs[0]), _files(two_runs[1])
    assert set(a) == set(b)
    differ = [k for k in a if a[k] != b[k] and k != "schedule.json"]
    assert not differ, differ
    # schedule.json is the solve serializer's output: identical but for the solver's wall time
    assert _without_seconds(a["schedule.json"]) == _without_seconds(b["schedule.json"])


def test_figures_carry_no_timestamps(two_runs):
    files = _files(two_runs[0])
    for fig in FIGURE_NAMES:
        pdf = files[f"figures/{fig}.pdf"]
        assert b"CreationDate" not in pdf and b"Producer" not in pdf
        assert b"Software" not in files[f"figures/{fig}.png"]


def test_schedule_json_route_gives_the_same_tables(two_runs, tmp_path):
    out = tmp_path / "from-json"
    args = [str(two_runs[0] / "schedule.json"), "--out", str(out), "--effective-date", DATE, "--round", "0.0005", "--steps"]
    assert cli_report.main(args) == 0
    a, b = _files(two_runs[0]), _files(out)
    assert set(a) == set(b)
    for name in ("rule_table.csv", "rule_table.json", "rule_table.md", "rule_table.tex", "step_table.csv", "step_jumps.csv"):
        assert a[name] == b[name], name
    assert b["schedule.json"] == (two_runs[0] / "schedule.json").read_bytes()   # copied byte for byte
    for fig in FIGURE_NAMES:
        assert a[f"figures/{fig}.png"] == b[f"figures/{fig}.png"]
    # the parameter blocks agree; provenance differs only in the input file it names
    pa, pb = json.loads(a["parameters.json"]), json.loads(b["parameters.json"])
    assert pa["parameters"] == pb["parameters"] and pa["checks"] == pb["checks"]
    assert pa["provenance"].pop("input")["kind"] == "config"
    assert pb["provenance"].pop("input")["kind"] == "schedule.json"
    assert pa["provenance"] == pb["provenance"]


def test_xlsx_has_three_sheets_with_the_csv_numbers(two_runs):
    folder = two_runs[0]
    wb = openpyxl.load_workbook(folder / "rule_table.xlsx")
    assert wb.sheetnames[:3] == list(SHEETS) and wb.sheetnames[3:] == ["steps"]
    rule = list(wb["rule"].iter_rows(values_only=True))
    assert rule[0] == COLUMNS
    with open(folder / "rule_table.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rule) - 1 == len(rows)
    for xl, row in zip(rule[1:], rows):
        for col, v in zip(COLUMNS, xl):
            if row[col] == "":
                assert v is None
            elif col in ("regime", "rule_id", "version_label", "extrapolation"):   # text columns
                assert v == row[col]
            else:
                assert float(v) == float(row[col]), col
    params = dict(wb["parameters"].iter_rows(min_row=2, values_only=True))
    assert params["market.alpha"] == 0.2 and params["market.c_eff"] == 4.5
    assert params["coverage.carry_kappa_M"] == 0.01
    prov = dict(wb["provenance"].iter_rows(min_row=2, values_only=True))
    assert prov["effective_date"] == DATE
    assert prov["certificate.ok"] is True
    assert len(prov["config_sha256"]) == 64
    with zipfile.ZipFile(folder / "rule_table.xlsx") as z:
        assert {i.date_time for i in z.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        assert b"2026-07-01T00:00:00Z" in z.read("docProps/core.xml")


def test_rule_table_passes_checks_in_parameters_json(two_runs):
    p = json.loads((two_runs[0] / "parameters.json").read_text())
    assert p["checks"]["published_rule"]["monotone"] and p["checks"]["published_rule"]["within_cap"]
    assert p["checks"]["rounding"]["tick"] == 0.0005
    assert p["provenance"]["effective_date"] == DATE
    assert "seconds" not in p["provenance"]["solver"]
    assert p["provenance"]["certificate"]["ok"] is True
    assert p["checks"]["steps"]["jumps"] > 0 and any("threshold crossing" in w for w in p["warnings"])
    md = (two_runs[0] / "report.md").read_text()
    for needle in ("(41)", "(74)", "## 2. Parameters", "figures/schedule.png", "Certificate", "rounding error", "Section 6.6"):
        assert needle in md, needle


# ---------------------------------------------------------------------- golden files


@pytest.mark.parametrize(
    "stem, options",
    [("benchmark", ReportOptions()), ("benchmark_knots11_round5bp", ReportOptions(knots=11, tick=0.0005))],
)
def test_golden_tables(two_runs, stem, options):
    data = load_schedule_json(two_runs[0] / "schedule.json")
    files = report_files(build_report(data, options), figures=False)
    for ext in ("md", "tex"):
        got = files[f"rule_table.{ext}"].decode()
        path = GOLDEN / f"{stem}_rule_table.{ext}"
        if UPDATE:
            path.parent.mkdir(exist_ok=True)
            path.write_text(got)
        assert got == path.read_text(), f"{path.name} differs; rerun with MARGIN_DESIGN_UPDATE_GOLDEN=1 if intended"


# ---------------------------------------------------------------------- failures and errors


def test_failed_run_leaves_no_partial_folder(two_runs, tmp_path, monkeypatch):
    from margin_design.reports import figures

    def boom(report):
        raise RuntimeError("figure failure")

    monkeypatch.setattr(figures, "render_figures", boom)
    src = str(two_runs[0] / "schedule.json")
    out = tmp_path / "report"
    with pytest.raises(RuntimeError):
        cli_report.main([src, "--out", str(out)])
    assert not out.exists() and not list(tmp_path.iterdir())
    # an existing report is left as it was (a folder holding only report files may be replaced, so the run gets
    # as far as the failure; a folder with other files is refused before any work, see test_bad_inputs.py)
    out.mkdir()
    (out / "report.md").write_text("old")
    with pytest.raises(RuntimeError):
        cli_report.main([src, "--out", str(out)])
    assert [p.name for p in tmp_path.iterdir()] == ["report"] and (out / "report.md").read_text() == "old"


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--effective-date", "July 1"], "--effective-date"),
        (["--knots", "1"], "--knots 1"),
        (["--knots", "500"], "--knots 500 exceeds"),
        (["--round", "2"], "--round"),
        (["--tolerance", "-1"], "--tolerance"),
        (["--participation", "3"], "--participation"),
        (["--steps", "0"], "--steps"),
    ],
)
def test_bad_flags_exit_2_with_one_sentence(two_runs, tmp_path, capsys, extra, message):
    out = tmp_path / "r"
    assert cli_report.main([str(two_runs[0] / "schedule.json"), "--out", str(out)] + extra) == 2
    err = capsys.readouterr().err
    assert err.startswith("margin-design: error: ") and message in err and "Traceback" not in err
    assert not out.exists()


def test_bad_inputs_exit_2(tmp_path, capsys):
    p = tmp_path / "notes.txt"
    p.write_text("x")
    assert cli_report.main([str(p), "--out", str(tmp_path / "r")]) == 2
    assert ".toml configuration or a schedule.json" in capsys.readouterr().err
    assert cli_report.main([str(tmp_path / "missing.json"), "--out", str(tmp_path / "r")]) == 2
    assert "cannot be read" in capsys.readouterr().err


def test_register_adds_the_report_subcommand():
    import argparse

    parser = argparse.ArgumentParser()
    cli_report.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["report", "x.toml", "--out", "d", "--round", "0.0005", "--steps"])
    assert args.func is cli_report.run and args.tick == 0.0005 and args.steps == 10
    assert np.isclose(parser.parse_args(["report", "x.json", "--out", "d", "--knots", "7"]).knots, 7)
