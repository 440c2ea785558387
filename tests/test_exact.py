"""Issue 5: the exact path against the cvxpy reference, batches, sweeps and sensitivities."""

from __future__ import annotations

import copy
import csv
import tomllib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from margin_design.design import load_problem, problem_from_dict
from margin_design.design.batch import stack_problems
from margin_design.solvers import solve
from margin_design.solvers.batch import solve_batch
from margin_design.solvers.certificate import RELATIVE_GAP_TARGET

from conftest import BASE_CONFIG, EXAMPLES
from test_solvers import cost_instances, target_instances

AGREE_ATOL = 1e-10        # two certified exact answers (margin-ratio units)
FD_RTOL = 1e-5            # sensitivities against central finite differences of re-solved problems
FD_REL_STEP = 1e-6


def assert_same(a, b):
    np.testing.assert_allclose(a.schedule, b.schedule, atol=AGREE_ATOL, rtol=0)
    assert [s["kind"] for s in a.segments] == [s["kind"] for s in b.segments]
    assert a.objective["value"] == pytest.approx(b.objective["value"], rel=1e-12)


CORPUS = {
    "benchmark": lambda: load_problem(EXAMPLES / "benchmark.toml"),
    "liquidation": lambda: load_problem(EXAMPLES / "liquidation.toml"),
    "cap_existing": lambda: load_problem(EXAMPLES / "cap_existing_schedule.toml"),
}


def _variant(**changes):
    cfg = tomllib.loads(BASE_CONFIG)
    for dotted, v in changes.items():
        sec, key = dotted.split(".")
        cfg[sec][key] = v
    return lambda: problem_from_dict(cfg)


CORPUS.update(
    {
        "linear_liquidation_kink": _variant(**{"objective.liquidation_weight": 0.003, "objective.liquidation_cost": "linear", "market.alpha": 0.02}),
        "participation_quadratic_t": _variant(**{"objective.participation_weight": 0.05, "objective.participation_beta": 2.0,
                                                 "objective.participation_cost": "quadratic", "shock.model": "student_t", "shock.df": 4.0}),
        "squared_shortfall_ewma": _variant(**{"objective.loss": "squared_shortfall", "cap.input": "ewma", "cap.lambda": 0.97}),
        "uncapped": _variant(**{"cap.kind": "none", "objective.liquidation_weight": 0.5}),
    }
)


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_exact_path_agrees_with_cvxpy_on_the_corpus(name):
    p = CORPUS[name]()
    ex = solve(p, method="exact")
    cv = solve(CORPUS[name](), method="cvxpy")
    assert ex.certificate.ok and ex.certificate.relative_gap <= RELATIVE_GAP_TARGET
    assert cv.certificate.ok
    assert_same(ex, cv)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cost_instances())
def test_random_cost_instances_exact_equals_cvxpy(p):
    ex = solve(p, method="exact")
    assert ex.certificate.relative_gap <= RELATIVE_GAP_TARGET and ex.certificate.ok
    assert_same(ex, solve(p, method="cvxpy"))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(target_instances())
def test_random_quadratic_instances_exact_equals_cvxpy(p):
    ex = solve(p, method="exact")
    assert ex.certificate.relative_gap <= RELATIVE_GAP_TARGET and ex.certificate.ok
    assert_same(ex, solve(p, method="cvxpy"))


def test_exact_path_handles_the_kink_exactly():
    res = solve(CORPUS["linear_liquidation_kink"](), method="exact")
    assert np.sum(res.schedule == 0.05) >= 3  # held exactly at the current margin M_-


# ---------------------------------------------------------------- batches


def test_batch_equals_one_solve_per_configuration():
    cfg = tomllib.loads((EXAMPLES / "liquidation.toml").read_text())
    cfg["grid"]["points"] = 60
    base = problem_from_dict(cfg)
    alphas = np.array([0.1, 0.2, 0.35, 0.2])
    carry = np.array([0.01, 0.005, 0.02, 0.01])
    prev = np.array([0.05, 0.04, 0.06, 0.03])
    batch = stack_problems(base, {"market.alpha": alphas, "objective.carry": carry, "objective.prev_margin": prev})
    answers, _ = solve_batch(batch)
    for i, ans in enumerate(answers):
        c = copy.deepcopy(cfg)
        c["market"]["alpha"], c["objective"]["carry"], c["objective"]["prev_margin"] = float(alphas[i]), float(carry[i]), float(prev[i])
        single = solve(problem_from_dict(c), method="exact")
        assert ans.certificate.ok
        np.testing.assert_allclose(ans.schedule, single.schedule, atol=AGREE_ATOL)
        assert ans.objective == pytest.approx(single.objective["value"], rel=1e-12)
        assert [s["kind"] for s in ans.segments] == [s["kind"] for s in single.segments]
        assert ans.price_of_manipulation_proofness == pytest.approx(single.price_of_manipulation_proofness, rel=1e-9, abs=1e-18)


# ---------------------------------------------------------------- sensitivities

SENS_WHERE = {
    "alpha": "market",
    "c_eff": "market",
    "carry": "objective",
    "liquidation_weight": "objective",
    "prev_margin": "objective",
}


@pytest.mark.parametrize("name", sorted(SENS_WHERE))
def test_sensitivities_match_finite_differences(name):
    cfg = tomllib.loads((EXAMPLES / "liquidation.toml").read_text())
    cfg["grid"]["points"] = 120
    sec = SENS_WHERE[name]
    base = solve(problem_from_dict(copy.deepcopy(cfg)), method="exact")
    sens = base.sensitivities((name,))[name]
    v = cfg[sec][name]
    h = FD_REL_STEP * max(abs(v), 1.0)
    out = []
    for sign in (+1, -1):
        c = copy.deepcopy(cfg)
        c[sec][name] = v + sign * h
        out.append(solve(problem_from_dict(c), method="exact"))
    up, down = out
    assert np.array_equal(up.codes, base.codes) and np.array_equal(down.codes, base.codes)  # away from active-set changes
    fd_x = (up.schedule - down.schedule) / (2 * h)
    np.testing.assert_allclose(sens["schedule"], fd_x, rtol=FD_RTOL, atol=FD_RTOL * np.max(np.abs(fd_x)) + 1e-12)
    fd_j = (up.objective["value"] - down.objective["value"]) / (2 * h)
    assert sens["objective"] == pytest.approx(fd_j, rel=FD_RTOL, abs=1e-14)
    fd_p = (up.price_of_manipulation_proofness - down.price_of_manipulation_proofness) / (2 * h)
    assert sens["price"] == pytest.approx(fd_p, rel=FD_RTOL, abs=1e-12)


# ---------------------------------------------------------------- sweep


def _read(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


def test_sweep_on_a_local_cluster_equals_the_in_process_run(tmp_path, write_config):
    from margin_design.cli import main

    cfg_text = (EXAMPLES / "liquidation.toml").read_text().replace("points = 400", "points = 50")
    cfg = write_config(cfg_text)
    args = ["sweep", str(cfg), "--vary", "market.alpha=0.1:0.4:4", "--vary", "objective.carry=0.005,0.02", "--chunk", "3"]
    assert main(args + ["--out", str(tmp_path / "local.csv"), "--workers", "0"]) == 0
    assert main(args + ["--out", str(tmp_path / "cluster.csv"), "--workers", "2"]) == 0
    assert (tmp_path / "local.csv").read_bytes() == (tmp_path / "cluster.csv").read_bytes()
    rows = _read(tmp_path / "local.csv")
    assert len(rows) == 8 and all(r["certified"] == "True" for r in rows)
    assert [float(r["market.alpha"]) for r in rows[:2]] == [0.1, 0.1]  # last key varies fastest
    # a sweep row equals the single solve of that configuration
    c = tomllib.loads(cfg_text)
    c["market"]["alpha"], c["objective"]["carry"] = 0.2, 0.02
    single = solve(problem_from_dict(c, cfg.parent), method="exact")
    assert float(rows[3]["objective"]) == pytest.approx(single.objective["value"], rel=1e-12)


def test_sweep_rejects_a_bad_value_with_one_line(tmp_path, capsys):
    from margin_design.cli import main

    status = main(["sweep", str(EXAMPLES / "benchmark.toml"), "--vary", "market.alpha=-1,0.2", "--out", str(tmp_path / "t.csv"), "--workers", "0"])
    assert status == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "market.alpha = -1.0 must be positive" in err[0]
    assert not (tmp_path / "t.csv").exists()
