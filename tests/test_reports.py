"""Reports layer: knots, cap checks, cap-preserving rounding, step tables, formulas, table round trips.

The solved examples are shared per module (one solve each). Property tests use random feasible
schedules; the numbers they check are recomputed here independently of the code under test.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from margin_design.design import load_problem
from margin_design.errors import InputError
from margin_design.reports.formulas import M as M_SYM
from margin_design.reports.formulas import r as R_SYM
from margin_design.reports.knots import (
    CAP_CHECK_TOL,
    check_rule,
    interpolation_error,
    knot_caps,
    naive_round,
    round_knots,
    select_knots,
    tick_caps,
)
from margin_design.reports.parameters import ElasticityInputs
from margin_design.reports.report import ReportOptions, build_report, report_files
from margin_design.reports.rule_data import SQRT_252, RuleData
from margin_design.reports.steps import bucket_edges
from margin_design.reports.table import COLUMNS, SIGNIFICANT_DIGITS
from margin_design.solvers import solve

from conftest import EXAMPLES

# Named tolerances.
PRINTED_RTOL = 10.0 ** (1 - SIGNIFICANT_DIGITS)   # machine-readable files carry SIGNIFICANT_DIGITS digits
FORMULA_ATOL = 1e-8        # formulas print 8 significant digits: |a|, |b sqrt(r)| < 1, so error < 1e-8
FOC_ATOL = 1e-8            # residual of (35) at tracking points (probability units); constants print 8 digits
TICK = 0.0005              # 5 bp rounding, as in the issue


@pytest.fixture(scope="module")
def examples():
    """RuleData of the three bundled examples (one solve each)."""
    out = {}
    for name in ("benchmark", "liquidation", "cap_existing_schedule"):
        out[name] = RuleData.from_schedule(solve(load_problem(EXAMPLES / f"{name}.toml")))
    return out


def _pairs_ok(vol, m, K, tol=CAP_CHECK_TOL):
    """Independent check: 0 <= m_j - m_i <= K (vol_j - vol_i) for EVERY pair of knots i < j."""
    for i, j in itertools.combinations(range(len(m)), 2):
        d = m[j] - m[i]
        if d < -tol or (math.isfinite(K) and d > K * (vol[j] - vol[i]) + tol):
            return False
    return True


# ---------------------------------------------------------------------- knots


@pytest.mark.parametrize("name", ["benchmark", "liquidation", "cap_existing_schedule"])
def test_knots_respect_cap_and_monotonicity_between_every_pair(examples, name):
    data = examples[name]
    knots = select_knots(data.vol, data.schedule, data.segments)
    # segment boundaries are knots, and the default tolerance holds at every grid point
    for s in data.segments:
        assert s["start"] in knots and s["end"] in knots
    assert interpolation_error(data.vol, data.schedule, knots).max() <= 1e-4
    vk, mk = data.vol[knots], data.schedule[knots]
    assert _pairs_ok(vk, mk, data.slope_vol)
    assert check_rule(vk, mk, data.slope_vol).ok


def test_knot_count_is_honoured_and_spread_on_an_exact_linear_rule(examples):
    data = examples["benchmark"]   # one saturated segment: exactly linear in vol
    knots = select_knots(data.vol, data.schedule, data.segments, count=11)
    assert knots.size == 11
    gaps = np.diff(data.vol[knots])
    assert gaps.max() - gaps.min() <= 1.5 * np.diff(data.vol).max()   # evenly spaced to one grid step
    assert interpolation_error(data.vol, data.schedule, knots).max() < 1e-12


def test_too_few_knots_is_an_input_error(examples):
    data = examples["cap_existing_schedule"]   # five segments: six boundary knots
    with pytest.raises(InputError, match=r"--knots 3 is below the 6 knots"):
        select_knots(data.vol, data.schedule, data.segments, count=3)


def test_check_rule_flags_decrease_and_cap_excess():
    vol = np.array([0.01, 0.02, 0.03])
    c = check_rule(vol, [0.05, 0.04, 0.07], slope_vol=2.0)   # cap per interval 0.02
    assert not c.monotone and c.decreasing_intervals == (0,)
    assert not c.within_cap and c.cap_violations == (1,)
    assert c.max_cap_excess == pytest.approx(0.01)


# ---------------------------------------------------------------------- rounding


def test_naive_rounding_breaks_the_cap_on_a_constructed_case():
    # Two knots 0.027 daily-vol points apart with K = 2.2222: cap = 0.0006 (1.2 ticks of 5 bp).
    vol = np.array([0.01, 0.01027])
    K = 2.0 / 0.9            # 2 / (alpha c_eff) with alpha = 0.2, c_eff = 4.5
    x = np.array([0.01024, 0.01076])      # increment 0.00052 <= cap 0.0006: feasible
    assert check_rule(vol, x, K).ok
    naive = naive_round(x, TICK)          # 0.0100 and 0.0110: a 10 bp step over a 6 bp cap
    np.testing.assert_array_equal(naive, [0.01, 0.011])
    assert not check_rule(vol, naive, K).within_cap
    rounded = round_knots(x, knot_caps(vol, K), TICK)
    assert check_rule(vol, rounded.margin, K).ok
    assert rounded.margin[1] - rounded.margin[0] in (0.0, pytest.approx(TICK))
    # best feasible pairs are (0.0100, 0.0105) and (0.0105, 0.0110): largest error 2.6 bp (> half a tick)
    assert rounded.max_error == pytest.approx(0.00026, abs=1e-15)


def test_cap_below_one_tick_forces_flat_increments():
    vol = np.array([0.010, 0.0101, 0.0102, 0.0103])
    K = 2.0                                   # caps 0.0002 < one tick of 0.0005
    x = 0.02 + K * (vol - vol[0])             # saturated: rises 0.0006 in total
    r = round_knots(x, knot_caps(vol, K), TICK)
    assert r.flat_intervals == (0, 1, 2)
    assert np.all(np.diff(r.ticks) == 0)
    assert check_rule(vol, r.margin, K).ok
    # the best flat level sits in the middle of the range: error = half the rise, rounded to the lattice
    assert r.max_error == pytest.approx(max(abs(r.margin[0] - x[0]), abs(r.margin[0] - x[-1])))


def _greedy_round(x, caps, tick):
    """The lead's greedy cumulative rounding: round the running value, clip each increment into [0, C_k]."""
    C = tick_caps(caps, tick)
    n = [int(round(x[0] / tick))]
    for k in range(1, len(x)):
        want = int(round(x[k] / tick)) - n[-1]
        n.append(n[-1] + min(max(want, 0), int(C[k - 1])))
    return np.asarray(n)


@st.composite
def feasible_schedules(draw):
    """Random feasible schedules on a random grid: increments mix pooled (0), saturated (cap) and free."""
    n = draw(st.integers(2, 12))
    dv = np.asarray(draw(st.lists(st.floats(1e-4, 3e-3), min_size=n - 1, max_size=n - 1)))
    vol = 0.004 + np.concatenate([[0.0], np.cumsum(dv)])
    K = draw(st.sampled_from([0.5, 2.0 / 0.9, 4.969, math.inf]))
    kinds = draw(st.lists(st.sampled_from(["pool", "cap", "free"]), min_size=n - 1, max_size=n - 1))
    fracs = draw(st.lists(st.floats(0.0, 1.0), min_size=n - 1, max_size=n - 1))
    cap = K * dv if math.isfinite(K) else 2.0 * dv
    d = np.array([0.0 if k == "pool" else (c if k == "cap" else f * c) for k, c, f in zip(kinds, cap, fracs)])
    x0 = draw(st.floats(0.0, 0.1))
    tick = draw(st.sampled_from([0.0001, 0.0005, 0.001, 0.0025]))
    return vol, x0 + np.concatenate([[0.0], np.cumsum(d)]), K, tick


@settings(max_examples=150, deadline=None)
@given(feasible_schedules())
def test_cap_preserving_rounding_stays_feasible(case):
    vol, x, K, tick = case
    caps = knot_caps(vol, K)
    r = round_knots(x, caps, tick)
    # exact feasibility in integer ticks: 0 <= n_{k+1} - n_k <= floor(cap_k / tick)
    inc = np.diff(r.ticks)
    assert np.all(inc >= 0)
    assert np.all(inc <= tick_caps(caps, tick))
    # and in margin units, between every pair of knots
    assert _pairs_ok(vol, r.margin, K)
    assert check_rule(vol, r.margin, K).ok
    assert np.all(r.margin >= 0)
    # margins are on the lattice and the reported error is the real one
    np.testing.assert_allclose(r.margin, r.ticks * tick, rtol=0, atol=1e-15)
    assert r.max_error == pytest.approx(float(np.max(np.abs(r.margin - x))), abs=1e-15)
    # never worse than the greedy cumulative rounding, which is also feasible
    g = _greedy_round(x, caps, tick)
    assert np.all(np.diff(g) >= 0) and np.all(np.diff(g) <= tick_caps(caps, tick))
    assert r.max_error <= float(np.max(np.abs(g * tick - x))) + 1e-15


@settings(max_examples=60, deadline=None)
@given(feasible_schedules())
def test_cap_preserving_rounding_is_minimax_on_small_cases(case):
    vol, x, K, tick = case
    x, vol = x[:4], vol[:4]
    caps = knot_caps(vol, K)
    C = tick_caps(caps, tick)
    r = round_knots(x, caps, tick)
    base = np.round(x / tick).astype(int)
    best = math.inf
    for off in itertools.product(range(-3, 4), repeat=len(x)):   # brute force around the nearest ticks
        n = base + np.asarray(off)
        if np.any(n < 0) or np.any(np.diff(n) < 0) or np.any(np.diff(n) > C):
            continue
        best = min(best, float(np.max(np.abs(n * tick - x))))
    if math.isfinite(best):
        assert r.max_error <= best + 1e-15


def test_rounding_rejects_a_bad_tick():
    with pytest.raises(InputError, match=r"--round"):
        round_knots([0.01, 0.02], [0.1], 0.0)


# ---------------------------------------------------------------------- steps


def test_step_table_reports_jumps_and_gains(examples):
    data = examples["liquidation"]
    rep = build_report(data, ReportOptions(tick=TICK, steps=8), )
    # independent recomputation: edges near 9 equally spaced vols, levels = published linear rule at the
    # upper edge rounded up to the tick, jumps = level differences, gain = alpha c_eff jump (Section 6.6)
    targets = np.linspace(data.vol[0], data.vol[-1], 9)
    edges = np.array([data.vol[np.argmin(np.abs(data.vol - t))] for t in targets])
    vk = data.vol[rep.knots]
    upper = np.interp(edges[1:], vk, rep.published)
    levels = np.ceil(np.round(upper / TICK, 9)) * TICK
    alpha, c_eff = 0.2, 4.5                      # examples/liquidation.toml [market]
    want = [(edges[k], levels[k] - levels[k - 1]) for k in range(1, 8) if levels[k] - levels[k - 1] > 1e-12]
    got = rep.steps.jumps
    assert len(got) == len(want) > 0
    for j, (thr, dm) in zip(got, want):
        assert j["threshold_vol_daily"] == pytest.approx(thr, abs=1e-15)
        assert j["threshold_vol_annual"] == pytest.approx(SQRT_252 * thr, rel=1e-14)
        assert j["jump"] == pytest.approx(dm, abs=1e-12)
        assert j["gain_per_unit_trigger"] == pytest.approx(alpha * c_eff * dm, abs=1e-12)
    # the step rule never charges less than the linear published rule
    for b in rep.steps.buckets:
        inside = (data.vol >= b["vol_daily_from"]) & (data.vol <= b["vol_daily_to"])
        assert np.all(b["margin"] >= np.interp(data.vol[inside], vk, rep.published) - 1e-12)
    # and a warning says the jumps are exploitable
    assert any("threshold crossing" in w for w in rep.warnings)
    files = report_files(rep, figures=False)
    rows = list(csv.DictReader(io.StringIO(files["step_jumps.csv"].decode())))
    assert [float(r["jump"]) for r in rows] == [j["jump"] for j in got]
    assert "Section 6.6" in files["report.md"].decode()


def test_bucket_edges_validation(examples):
    with pytest.raises(InputError, match=r"--steps"):
        bucket_edges(examples["benchmark"].vol, 0)


# ---------------------------------------------------------------------- formulas


def test_saturated_formula_parses_back_and_reproduces_the_schedule(examples):
    for name in ("benchmark", "cap_existing_schedule"):
        data = examples[name]
        rep = build_report(data, ReportOptions(knots=max(12, len(data.segments) + 1)))
        for f in rep.formulas:
            if f.kind != "saturated":
                continue
            lhs, rhs = f.text.split(" = ")
            assert lhs == "M"
            expr = sp.sympify(rhs, locals={"r": R_SYM})
            assert "\\sqrt{r}" in f.latex
            idx = [i for i in rep.knots if f.start <= i <= f.end]
            assert len(idx) >= 2
            for i in idx:
                value = float(expr.subs(R_SYM, float(data.r[i])))
                assert value == pytest.approx(data.schedule[i], abs=FORMULA_ATOL)


def test_pooled_formula_is_the_level(examples):
    data = examples["cap_existing_schedule"]
    rep = build_report(data)
    pooled = [f for f in rep.formulas if f.kind == "pooling"]
    assert pooled
    for f in pooled:
        k = float(sp.sympify(f.text.split(" = ")[1]))
        np.testing.assert_allclose(data.schedule[f.start : f.end + 1], k, atol=FORMULA_ATOL)


def test_tracking_formula_is_the_first_order_condition(examples):
    data = examples["liquidation"]   # normal shocks, h = 2, kappa_M = 0.01, lambda_L = 0.2, M_- = 0.05
    rep = build_report(data)
    tr = [f for f in rep.formulas if f.kind == "tracking"]
    assert tr and tr[0].equation == "(35)"
    assert tr[0].text == "erfc(M/(2*sqrt(r)))/2 = 4.05*Max(0, M - 0.05) + 0.01"
    resid = sp.lambdify((M_SYM, R_SYM), tr[0].lhs - tr[0].rhs, modules=["scipy", "numpy"])
    f = tr[0]
    pts = [i for i in range(f.start, f.end + 1) if data.schedule[i] == data.first_best[i]]
    assert len(pts) > 10
    for i in pts:
        assert abs(resid(data.schedule[i], data.r[i])) <= FOC_ATOL


# ---------------------------------------------------------------------- table round trips


def test_csv_and_json_round_trip_to_printed_precision(examples):
    data = examples["liquidation"]
    rep = build_report(data, ReportOptions(knots=9))
    files = report_files(rep, figures=False)
    rows = list(csv.DictReader(io.StringIO(files["rule_table.csv"].decode())))
    js = json.loads(files["rule_table.json"])
    assert tuple(rows[0]) == COLUMNS and js["columns"] == list(COLUMNS)
    k = rep.knots
    want = {
        "vol_daily": data.vol[k], "vol_annual": SQRT_252 * data.vol[k], "variance": data.r[k],
        "margin": data.schedule[k], "first_best": data.first_best[k], "margin_optimal": data.schedule[k],
    }
    for col, values in want.items():
        np.testing.assert_allclose([float(r[col]) for r in rows], values, rtol=PRINTED_RTOL, atol=0)
        np.testing.assert_allclose([r[col] for r in js["rows"]], values, rtol=PRINTED_RTOL, atol=0)
    assert [int(r["grid_index"]) for r in rows] == list(k)
    assert rows[-1]["regime"] == "" and rows[-1]["slope_vol_annual"] == ""
    assert {r["regime"] for r in rows[:-1]} == {"saturated", "tracking"}
    cap = float(rows[0]["cap_vol_annual"])
    assert cap == pytest.approx(data.slope_vol / SQRT_252, rel=PRINTED_RTOL)
    # slope used between knots, in annualised-vol units, never above the cap (74)
    for a, b in zip(rows, rows[1:]):
        slope = (float(b["margin"]) - float(a["margin"])) / (float(b["vol_annual"]) - float(a["vol_annual"]))
        assert float(a["slope_vol_annual"]) == pytest.approx(slope, rel=1e-9)
        assert float(a["slope_vol_annual"]) <= cap * (1 + 1e-9)


def test_rounded_table_publishes_lattice_values(examples):
    data = examples["cap_existing_schedule"]
    rep = build_report(data, ReportOptions(tick=TICK))
    files = report_files(rep, figures=False)
    rows = list(csv.DictReader(io.StringIO(files["rule_table.csv"].decode())))
    m = np.array([float(r["margin"]) for r in rows])
    np.testing.assert_allclose(m / TICK, np.round(m / TICK), atol=1e-9)
    err = np.array([float(r["rounding_error"]) for r in rows])
    assert np.max(np.abs(err)) == pytest.approx(rep.rounding.max_error, rel=PRINTED_RTOL)
    assert _pairs_ok(data.vol[rep.knots], m, data.slope_vol)
    assert json.loads(files["parameters.json"])["checks"]["rounding"]["max_error"] == rep.rounding.max_error


def test_elasticity_inputs_are_recorded_and_checked(examples):
    data = examples["benchmark"]
    ok = build_report(data, ReportOptions(elasticity=ElasticityInputs(0.225, 1.0, 0.01, 20.0)))
    e = ok.parameters["elasticity_inputs"]
    assert e["implied_alpha"] == pytest.approx(0.2) and e["implied_c_eff"] == pytest.approx(4.5)   # (75)-(77), Section 3.6
    assert e["consistent"] is True and not ok.warnings
    bad = build_report(data, ReportOptions(elasticity=ElasticityInputs(0.225, 2.0, 0.01, 20.0)))
    assert bad.parameters["elasticity_inputs"]["consistent"] is False
    assert any("c_eff" in w for w in bad.warnings)
    with pytest.raises(InputError, match=r"--participation"):
        ElasticityInputs(participation=1.5)


def test_options_validation():
    with pytest.raises(InputError, match=r"--effective-date"):
        ReportOptions(effective_date="01/07/2026")
    with pytest.raises(InputError, match=r"--knots"):
        ReportOptions(knots=1)
    with pytest.raises(InputError, match=r"--tolerance"):
        ReportOptions(tolerance=0.0)
    assert ReportOptions(effective_date="2026-07-01").effective_date == "2026-07-01"


def test_schedule_json_route_rejects_foreign_json(tmp_path):
    from margin_design.reports.rule_data import load_schedule_json

    p = tmp_path / "x.json"
    p.write_text('{"version": 1}')
    with pytest.raises(InputError, match=r"has no key 'grid'"):
        load_schedule_json(p)
    p.write_text("{not json")
    with pytest.raises(InputError, match=r"not valid JSON"):
        load_schedule_json(p)


# ---------------------------------------------------------------------- other objectives and caps


def _variant(base: str, replace: dict) -> str:
    for old, new in replace.items():
        assert old in base
        base = base.replace(old, new)
    return base


VARIANTS = {
    # squared shortfall, quadratic participation cost: (35) with E[(D - M)_+] on the left
    "squared_shortfall": {
        'loss = "shortfall"': 'loss = "squared_shortfall"',
        "prev_margin = 0.05": "prev_margin = 0.02\nparticipation_weight = 0.5\nparticipation_beta = 2.0\nparticipation_cost = \"quadratic\"",
        "carry = 0.01": "carry = 0.0005",
    },
    # Student-t shocks, linear liquidation cost (a kink at M_-)
    "student_t": {
        'model = "normal"': 'model = "student_t"\ndf = 5',
        "carry = 0.01": "carry = 0.1",
        "prev_margin = 0.05": "prev_margin = 0.02\nliquidation_weight = 0.0005\nliquidation_cost = \"linear\"",
    },
    # no slope cap: monotonicity only
    "uncapped": {'kind = "manipulation_proof"': 'kind = "none"'},
}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_other_objectives_and_uncapped_rules(write_config, name):
    from scipy import stats
    from scipy.special import erfc

    from conftest import BASE_CONFIG

    data = RuleData.from_schedule(solve(load_problem(write_config(_variant(BASE_CONFIG, VARIANTS[name])))))
    rep = build_report(data, ReportOptions(tick=TICK, steps=5))
    files = report_files(rep, figures=False)
    assert rep.check.ok and _pairs_ok(data.vol[rep.knots], rep.published, data.slope_vol)
    assert "rule_table.tex" in files and b"\\toprule" in files["rule_table.tex"]
    tracking = [f for f in rep.formulas if f.kind == "tracking"]
    assert tracking
    f = tracking[0]
    df = 5.0
    modules = [{
        "Fbar_Y": lambda k: stats.t.sf(k, df),
        "e_Y": lambda k: (df + k * k) / (df - 1) * stats.t.pdf(k, df) - k * stats.t.sf(k, df),
        "erfc": erfc,
        "Heaviside": lambda x, h0=0.5: np.heaviside(x, h0),
    }, "numpy"]
    resid = sp.lambdify((M_SYM, R_SYM), f.lhs - f.rhs, modules=modules)
    pts = [i for i in range(data.n) if data.schedule[i] == data.first_best[i] and data.schedule[i] > 0]
    pts = [i for i in pts if abs(data.schedule[i] - data.config["objective"]["prev_margin"]) > 1e-6]   # off the kink
    assert pts
    for i in pts:
        assert abs(resid(data.schedule[i], data.r[i])) <= FOC_ATOL, (name, i)
    if name == "uncapped":
        assert math.isinf(data.slope_vol)
        assert rep.table.rows[0]["cap_vol_annual"] is None
        assert "no slope cap" in rep.table.caption
    if name == "student_t":
        assert "Fbar_Y" in f.text and "Heaviside" in f.text   # survival function of T; the linear cost's kink
