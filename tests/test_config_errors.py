"""Bad configurations: each listed error case exits with status 2, prints one line, writes nothing."""

from __future__ import annotations

import pytest

from margin_design.cli import main

from conftest import BASE_CONFIG


def _replace(old: str, new: str) -> str:
    assert old in BASE_CONFIG, old
    return BASE_CONFIG.replace(old, new)


def _table_states(file: str) -> str:
    """BASE_CONFIG with density = "table" reading ``file`` (median_vol and dispersion apply only to lognormal states)."""
    text = _replace('density = "lognormal"', f'density = "table"\nfile = "{file}"')
    return text.replace("median_vol = 0.01\n", "").replace("dispersion = 0.5\n", "")


CASES = {
    "not toml": ("[grid\nvol_min = ", "not valid TOML"),
    "unknown section": (BASE_CONFIG + "\n[extra]\nx = 1\n", r"unknown section \[extra\]"),
    "unknown key": (_replace("points = 40", "points = 40\nstep = 2"), r"unknown key grid.step = 2"),
    "missing key": (_replace("vol_max = 0.03\n", ""), r"missing required key grid.vol_max"),
    "wrong type": (_replace("points = 40", 'points = "40"'), r"grid.points = '40' must be a finite integer"),
    "float points": (_replace("points = 40", "points = 40.0"), r"grid.points = 40.0 must be a finite integer"),
    "vol_min not positive": (_replace("vol_min = 0.005", "vol_min = 0.0"), r"grid.vol_min = 0.0 must be positive"),
    "vol not increasing": (_replace("vol_max = 0.03", "vol_max = 0.004"), r"grid.vol_max = 0.004 must be greater"),
    "points < 3": (_replace("points = 40", "points = 2"), r"grid.points = 2 must be an integer >= 3"),
    "unknown spacing": (_replace('spacing = "vol"', 'spacing = "log"'), r"grid.spacing = 'log' is not one of"),
    "unknown density": (_replace('density = "lognormal"', 'density = "gamma"'), r"states.density = 'gamma' is not one of"),
    "unknown model": (_replace('model = "normal"', 'model = "cauchy"'), r"shock.model = 'cauchy' is not one of"),
    "unknown loss": (_replace('loss = "shortfall"', 'loss = "pinball"'), r"objective.loss = 'pinball' is not one of"),
    "unknown cost form": (_replace("prev_margin = 0.05", 'prev_margin = 0.05\nliquidation_cost = "cubic"'), r"objective.liquidation_cost = 'cubic' is not one of"),
    "unknown participation form": (_replace("prev_margin = 0.05", 'prev_margin = 0.05\nparticipation_cost = "log"'), r"objective.participation_cost = 'log' is not one of"),
    "unknown cap input": (_replace('input = "variance"', 'input = "range"'), r"cap.input = 'range' is not one of"),
    "df <= 2": (_replace('model = "normal"', 'model = "student_t"\ndf = 2'), r"shock.df = 2.0 must be greater than 2"),
    "horizon <= 0": (_replace("horizon_days = 2", "horizon_days = 0"), r"shock.horizon_days = 0.0 must be positive"),
    "carry >= 1": (_replace("carry = 0.01", "carry = 1.0"), r"objective.carry = 1.0 must be in \[0, 1\)"),
    "carry < 0": (_replace("carry = 0.01", "carry = -0.1"), r"objective.carry = -0.1 must be in \[0, 1\)"),
    "negative weight": (_replace("prev_margin = 0.05", "prev_margin = 0.05\nliquidation_weight = -1"), r"objective.liquidation_weight = -1.0 must be non-negative"),
    "negative participation weight": (_replace("prev_margin = 0.05", "prev_margin = 0.05\nparticipation_weight = -1"), r"objective.participation_weight = -1.0 must be non-negative"),
    "negative beta": (_replace("prev_margin = 0.05", "prev_margin = 0.05\nparticipation_beta = -0.5"), r"objective.participation_beta = -0.5 must be non-negative"),
    "alpha <= 0": (_replace("alpha = 0.2", "alpha = 0"), r"market.alpha = 0.0 must be positive"),
    "c_eff <= 0": (_replace("c_eff = 4.5", "c_eff = -4.5"), r"market.c_eff = -4.5 must be positive"),
    "negative inventory penalty": (_replace("c_eff = 4.5", "c_eff = 4.5\ninventory_penalty = -0.1"), r"market.inventory_penalty = -0.1 must be non-negative"),
    "window < 1": (_replace('input = "variance"', 'input = "realized_variance"\nwindow = 0'), r"cap.window = 0 must be an integer >= 1"),
    "lambda outside (0,1)": (_replace('input = "variance"', 'input = "ewma"\nlambda = 1.0'), r"cap.lambda = 1.0 must be in \(0, 1\)"),
    "missing states file": (_table_states("nope.csv"), r"states.file = '.*nope.csv' does not exist"),
    "missing shock file": (_replace('model = "normal"', 'model = "empirical"\nfile = "missing.csv"'), r"shock.file = '.*missing.csv' does not exist"),
    "target with grid": ('[objective]\nkind = "target"\nfile = "t.csv"\n[grid]\nvol_min = 0.01\nvol_max = 0.02\npoints = 3\n[market]\nalpha = 0.2\nc_eff = 4.5\n', r"section \[grid\] must be absent"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_config_exits_2_with_one_line(name, write_config, tmp_path, capsys):
    text, pattern = CASES[name]
    cfg = write_config(text)
    out = tmp_path / "out"
    status = main(["solve", str(cfg), "--out", str(out)])
    captured = capsys.readouterr()
    assert status == 2
    lines = [ln for ln in captured.err.splitlines() if ln.strip()]
    assert len(lines) == 1, captured.err
    import re

    assert re.search(pattern, lines[0]), lines[0]
    assert "Traceback" not in captured.err
    assert not out.exists()


def test_missing_column_in_states_file(write_config, tmp_path, capsys):
    (tmp_path / "w.csv").write_text("vol,mass\n0.01,1\n")
    cfg = write_config(_table_states("w.csv"))
    assert main(["solve", str(cfg)]) == 2
    assert "has no column 'weight'" in capsys.readouterr().err


def test_unreadable_number_in_target_file(write_config, tmp_path, capsys):
    (tmp_path / "t.csv").write_text("vol,target,weight\n0.01,0.02,1\n0.02,abc,1\n0.03,0.05,1\n")
    cfg = write_config('[objective]\nkind = "target"\nfile = "t.csv"\n[market]\nalpha = 0.2\nc_eff = 4.5\n')
    assert main(["solve", str(cfg)]) == 2
    assert "has the non-numeric value 'abc' in column 'target', row 3" in capsys.readouterr().err


def test_negative_curvature_is_refused_as_non_convex(write_config, tmp_path, capsys):
    (tmp_path / "t.csv").write_text("vol,target,weight,curvature\n0.01,0.02,1,1\n0.02,0.03,1,-1\n0.03,0.05,1,1\n")
    cfg = write_config('[objective]\nkind = "target"\nfile = "t.csv"\n[market]\nalpha = 0.2\nc_eff = 4.5\n')
    assert main(["solve", str(cfg)]) == 2
    assert "not convex" in capsys.readouterr().err


def test_missing_config_file(tmp_path, capsys):
    assert main(["solve", str(tmp_path / "none.toml")]) == 2
    assert "cannot be read" in capsys.readouterr().err


def test_design_tables_take_every_vol_naming(tmp_path):
    """One vol naming for every table (issue 11): a target schedule with vol_daily, vol or vol_annual gives one problem."""
    import math
    from pathlib import Path

    import numpy as np

    from margin_design.design import load_problem

    src = Path(__file__).resolve().parents[1] / "examples"
    text = (src / "cap_existing_schedule.toml").read_text()
    rows = (src / "data" / "existing_schedule.csv").read_text().splitlines()
    assert rows[0].startswith("vol_daily,")
    problems = []
    for name, scale in (("vol_daily", 1.0), ("vol", 1.0), ("vol_annual", math.sqrt(252))):
        d = tmp_path / name
        (d / "data").mkdir(parents=True)
        body = [f"{float(r.split(',', 1)[0]) * scale!r},{r.split(',', 1)[1]}" for r in rows[1:]]
        (d / "data" / "existing_schedule.csv").write_text("\n".join([name + "," + rows[0].split(",", 1)[1], *body]) + "\n")
        (d / "c.toml").write_text(text)
        problems.append(load_problem(d / "c.toml"))
    for p in problems[1:]:
        np.testing.assert_allclose(p.vol, problems[0].vol, rtol=1e-14)
        np.testing.assert_array_equal(p.objective.target, problems[0].objective.target)
