"""``[cap] updates = T`` (issue 12, section 3): the config key, the scaled cap, the bisection of audit/updates.py and
the properties Appendix A.4 states: s non-increasing in T, the capped optimum at s passes the T-update stress test
where the one at scale 1 fails it, and a tighter cap weakly expands where the rule departs from the first-best."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from conftest import BASE_CONFIG, EXAMPLES

from margin_design.audit.stress import STRESS_TOL
from margin_design.audit.updates import solve_design, solve_with_updates, stress_grid
from margin_design.cli import main
from margin_design.design import load_problem
from margin_design.design.config import problem_from_dict
from margin_design.errors import ConfigError
from margin_design.solvers import solve

#: Fast settings of the bisection in tests (the benchmark script uses the defaults).
FAST = {"resolution": 0.05, "starts": 2, "steps": 60}
SMALL_LIQUIDATION_POINTS = 16


def _cap(extra: str) -> str:
    """BASE_CONFIG with its [cap] section replaced by ``extra`` (kind and input default)."""
    return BASE_CONFIG[: BASE_CONFIG.index("[cap]")] + "[cap]\n" + extra + "\n"


def _problem(path, T, points=None):
    p = load_problem(path)
    if points is not None:
        cfg = json.loads(json.dumps(p.config))
        cfg["grid"]["points"] = points
        p = problem_from_dict(cfg, EXAMPLES, validated=True)
    return dataclasses.replace(p, cap=dataclasses.replace(p.cap, updates=T))


@pytest.mark.parametrize("extra, match", [
    ("updates = 0", "cap.updates = 0 must be an integer >= 1"),
    ('input = "ewma"\nlambda = 0.94\nupdates = 2', "needs a risk input with a window"),
    ("updates = 6", "exceeds the input's window of 5 returns"),
    ('input = "realized_variance"\nwindow = 3\nupdates = 4', "exceeds the input's window of 3 returns"),
    ('kind = "none"\nupdates = 2', "needs cap.kind = 'manipulation_proof'"),
    ("updates = 1.5", "cap.updates = 1.5 must be a finite integer"),
])
def test_config_refuses_bad_updates(write_config, extra, match):
    with pytest.raises(ConfigError, match=match):
        load_problem(write_config(_cap(extra)))


def test_default_is_the_papers_cap_unchanged(write_config):
    """updates = 1 (default): the same schedule and hash as before, scale 1, no stress record."""
    p = load_problem(write_config(BASE_CONFIG))
    assert p.cap.updates == 1 and p.cap.scale == 1.0
    a, b = solve(p), solve_design(load_problem(write_config(_cap("updates = 1"))))
    np.testing.assert_array_equal(a.schedule, b.schedule)
    assert b.stress is None and a.problem.fingerprint() == b.problem.fingerprint()
    d = b.to_dict()["cap"]
    assert d["scale"] == 1.0 and d["updates"] == 1 and "stress_test" not in d
    two = dataclasses.replace(p, cap=dataclasses.replace(p.cap, updates=2))
    assert "cap.updates = 2 NOT applied" in solve(two).summary()      # solvers.solve alone does not scale the cap
    scaled = dataclasses.replace(p.cap, scale=0.5)
    assert scaled.slope_vol == pytest.approx(0.5 * p.cap.slope_vol, rel=1e-15)
    assert "0.5 *" in scaled.formula() and "0.5 *" not in p.cap.formula()


def test_bisection_properties_on_the_liquidation_market():
    """Liquidation market, 16 states: s non-increasing in T = 1, 2, 3; the capped optimum at s passes the stress test
    (best profit <= tolerance) while the one at scale 1 fails it; the links where g* departs from the first-best for T
    include those for T - 1 (a tighter cap, Appendix A.4); every step certified."""
    scales, departs, results = [], [], []
    for T in (1, 2, 3):
        res = solve_with_updates(_problem(EXAMPLES / "liquidation.toml", T, SMALL_LIQUIDATION_POINTS), **FAST)
        assert res.certificate.ok
        results.append(res)
        scales.append(res.problem.cap.scale)
        departs.append({i for i, k in enumerate(res.link_kinds) if k != "tracking"})
    assert scales[0] == 1.0 and scales[1] < 1.0
    assert scales[0] >= scales[1] >= scales[2]
    assert departs[0] <= departs[1] <= departs[2]
    for res in results[1:]:
        st = res.stress
        assert st["best_profit"] <= STRESS_TOL < st["best_profit_scale_1"]
        assert st["trail"][0]["scale"] == 1.0 and not st["trail"][0]["passes"]
        assert all(t["passes"] == (t["best_profit"] <= STRESS_TOL) for t in st["trail"])
        # an independent re-test of the published schedule with more starts and steps finds nothing either
        best, n = stress_grid(res, res.problem.cap.updates, starts=3, steps=120)
        assert n == SMALL_LIQUIDATION_POINTS and best.mean <= STRESS_TOL


def test_cli_solve_writes_scale_and_updates(tmp_path, write_config, capsys):
    cfg = write_config(_cap("updates = 2").replace("points = 40", "points = 12"))
    assert main(["solve", str(cfg), "--out", str(tmp_path / "out"), "--json", str(tmp_path / "s.json")]) == 0
    out = capsys.readouterr().out
    assert "T-update stress test (T = 2)" in out and "tolerance: exact expected profit above" in out
    cap = json.loads((tmp_path / "out" / "schedule.json").read_text())["cap"]
    assert cap["updates"] == 2 and 0 < cap["scale"] < 1
    assert cap["stress_test"]["best_profit"] <= STRESS_TOL and cap["stress_test"]["tolerance"] == STRESS_TOL
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["cap"]["scale"] == cap["scale"] and summary["certified"]


def test_saturated_links_stay_binding_on_a_design_that_pools():
    """examples/cap_existing_schedule.toml pools (the EMIR buffer's release makes the target fall). With T = 2 the cap
    is scaled below 1 and the capped optimum at s passes the stress test; every link saturated at T = 1 still binds
    (saturated or pooled) at T = 2, and so does every pooled link but the block's end. Appendix A.4's "weakly expands
    the pooling regions" does NOT hold link by link here (measured: pooled links 26..33 at s = 1, 27..31 at s = 0.75,
    link 32 tracking): the flatter saturated run meets the released target at a lower level, so the rule rejoins it one
    link earlier. Only a pooled link may leave the binding set, which is what is asserted."""
    one = solve_with_updates(_problem(EXAMPLES / "cap_existing_schedule.toml", 1), **FAST)
    two = solve_with_updates(_problem(EXAMPLES / "cap_existing_schedule.toml", 2), **FAST)
    assert one.certificate.ok and two.certificate.ok
    assert "pooling" in one.link_kinds and "pooling" in two.link_kinds
    assert one.problem.cap.scale == 1.0 and two.problem.cap.scale < 1.0
    assert two.stress["best_profit"] <= STRESS_TOL < two.stress["best_profit_scale_1"]
    kinds = [np.asarray(r.link_kinds) for r in (one, two)]
    binds = [set(np.flatnonzero(k != "tracking")) for k in kinds]
    assert set(np.flatnonzero(kinds[0] == "saturated")) <= binds[1]
    assert binds[0] - binds[1] <= set(np.flatnonzero(kinds[0] == "pooling"))
    assert len(binds[1]) > len(binds[0])
