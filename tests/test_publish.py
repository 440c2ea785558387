"""The published rule (``report --published-vols``): rounding, certificate, extrapolation, cost, rule ID, labels.

Numbers are checked against independent routes: a brute-force minimax rounding on a few points, the design
objective (33) summed in numpy from its closed form for normal shocks, and the cap checked pair by pair.
"""

from __future__ import annotations

import copy
import csv
import io
import itertools
import json
import math
from dataclasses import replace

import numpy as np
import openpyxl
import pytest
from scipy.stats import norm

from margin_design import cli_report
from margin_design.design import load_problem
from margin_design.errors import InputError
from margin_design.reports.figures import schedule_figure
from margin_design.reports.knots import knot_caps, tick_caps
from margin_design.reports.publish import certify, evaluate, publish_at_points, rule_id
from margin_design.reports.report import ReportOptions, build_report, report_files
from margin_design.reports.rule_data import SQRT_252, RuleData
from margin_design.reports.vol_points import parse_vol_points
from margin_design.solvers import solve

from conftest import EXAMPLES

TICK = 0.0005            # 5 bp, as in the issue
ROUND_ATOL = 1e-12       # margins on the tick lattice up to float printing (tick_value is exact in decimal)
J_RTOL = 1e-12           # the numpy sum of (33) against Problem.value: the same closed form, summed in another order
BRUTE_ATOL = 1e-15       # minimax errors compared exactly up to float subtraction


@pytest.fixture(scope="module")
def solved():
    """Schedule and RuleData of the three bundled examples (one solve each)."""
    out = {}
    for name in ("benchmark", "liquidation", "cap_existing_schedule"):
        s = solve(load_problem(EXAMPLES / f"{name}.toml"))
        out[name] = (s, RuleData.from_schedule(s))
    return out


def _pairs_within_cap(vol, m, K) -> bool:
    """Every pair i < j (not only neighbours): 0 <= m_j - m_i <= K (vol_j - vol_i)."""
    for i, j in itertools.combinations(range(len(vol)), 2):
        d = m[j] - m[i]
        if d < -1e-12 or d > K * (vol[j] - vol[i]) + 1e-12:
            return False
    return True


# ---------------------------------------------------------------------- rounding and certificate


@pytest.mark.parametrize("name, spec", [("benchmark", "8:60:1"), ("cap_existing_schedule", "8:55:1"), ("liquidation", "8:60:1")])
def test_published_rule_is_on_the_tick_monotone_and_within_the_cap(solved, name, spec):
    s, data = solved[name]
    rule = publish_at_points(data, parse_vol_points(spec), tick=TICK, problem=s.problem)
    pts = parse_vol_points(spec)
    np.testing.assert_allclose(rule.vol * SQRT_252 * 100, pts.annual_pct_array, rtol=1e-14)
    n = rule.margin / TICK
    np.testing.assert_allclose(n, np.round(n), atol=ROUND_ATOL)
    assert rule.certificate.ok
    assert _pairs_within_cap(rule.vol, rule.margin, data.slope_vol)
    # the optimal values at the points are g* interpolated linearly in vol
    np.testing.assert_allclose(rule.optimal, np.interp(rule.vol, data.vol, data.schedule), rtol=0, atol=0)


def test_rounding_is_the_minimax_by_brute_force(solved):
    """Four points: enumerate every integer-tick chain near the targets; the published error must be the smallest feasible."""
    _, data = solved["liquidation"]
    pts = parse_vol_points("20,21,22,24")      # saturated stretch: the cap (2.8 ticks per point) binds the rounding
    rule = publish_at_points(data, pts, tick=TICK)
    x = rule.optimal
    C = tick_caps(knot_caps(rule.vol, data.slope_vol), TICK)
    base = np.floor(x / TICK).astype(int)
    best = math.inf
    for off in itertools.product(range(-4, 6), repeat=x.size):
        n = base + np.asarray(off)
        d = np.diff(n)
        if np.all(n >= 0) and np.all(d >= 0) and np.all(d <= C):
            best = min(best, float(np.max(np.abs(n * TICK - x))))
    assert rule.rounding.max_error == pytest.approx(best, abs=BRUTE_ATOL)
    # rounding each point on its own would open a step above the cap here (why the chain rounding exists)
    naive = np.round(x / TICK)
    assert np.any(np.diff(naive) > C)


def test_certificate_catches_a_cap_breach_a_fall_and_a_negative_margin(solved):
    _, data = solved["liquidation"]
    rule = publish_at_points(data, parse_vol_points("8:60:1"), tick=TICK)
    K = data.slope_vol
    v, m = rule.vol, rule.margin.copy()
    assert certify(v, m, K, data.vol).ok
    up = m.copy()
    up[20:] += 2 * TICK                      # one step of 2 more ticks: 0.2 pp on a 1-point interval, above the cap 0.14
    c = certify(v, up, K, data.vol)
    assert not c.ok and c.intervals.cap_violations == (19,) and not c.dense.within_cap
    down = m.copy()
    down[30] -= 3 * TICK
    c = certify(v, down, K, data.vol)
    assert not c.intervals.monotone and not c.dense.monotone
    neg = m - m[0] - TICK
    assert not certify(v, neg, K, data.vol).nonnegative
    steep = m.copy()
    steep[-1] = steep[-2] + 1.01 * K * (v[-1] - v[-2])   # the last interval, hence the extrapolation above, beyond the cap
    c = certify(v, steep, K, data.vol)
    assert not c.extrapolation_ok and c.slope_above > K


def test_extrapolation_is_flat_below_and_last_slope_above(solved):
    _, data = solved["liquidation"]
    rule = publish_at_points(data, parse_vol_points("10:50:2"), tick=TICK)
    v, m = rule.vol, rule.margin
    below = np.linspace(data.vol[0], v[0], 7)
    np.testing.assert_array_equal(evaluate(v, m, below), np.full(below.size, m[0]))
    above = np.linspace(v[-1], data.vol[-1], 7)
    slope = (m[-1] - m[-2]) / (v[-1] - v[-2])
    np.testing.assert_allclose(evaluate(v, m, above), m[-1] + slope * (above - v[-1]), rtol=1e-15, atol=1e-15)
    assert 0 <= rule.certificate.slope_above <= data.slope_vol * (1 + 1e-12)
    # the largest gap to g* is measured over the whole grid, extrapolation pieces included
    gap = np.abs(evaluate(v, m, data.vol) - data.schedule)
    assert rule.max_error == float(gap.max()) and rule.max_error_vol == float(data.vol[int(np.argmax(gap))])


def test_points_outside_the_grid_and_a_single_point_are_refused(solved):
    _, data = solved["benchmark"]    # grid 6.35% to 63.5% annualised
    with pytest.raises(InputError, match=r"solved grid covers 6\.35% to 63\.5% only"):
        publish_at_points(data, parse_vol_points("5:60:1"))
    with pytest.raises(InputError, match=r"solved grid covers"):
        publish_at_points(data, parse_vol_points("8:64:1"))
    with pytest.raises(InputError, match="at least two points"):
        publish_at_points(data, parse_vol_points("20"))


# ---------------------------------------------------------------------- cost


def _numpy_objective(cfg: dict, vol, w, M) -> float:
    """(31)-(32) for normal shocks and the shortfall loss, summed in numpy: E[(D - M)+] = s phi(M/s) - M (1 - Phi(M/s)),
    s = sqrt(h) vol; carry kappa_M M; quadratic liquidation lambda_L/2 (c_eff (M - M_-)+)^2."""
    o, h = cfg["objective"], cfg["shock"]["horizon_days"]
    assert cfg["shock"]["model"] == "normal" and o["loss"] == "shortfall" and o["liquidation_cost"] == "quadratic"
    assert o["participation_weight"] == 0
    s = np.sqrt(h) * vol
    z = M / s
    coverage = s * norm.pdf(z) - M * norm.sf(z)
    liq = 0.5 * o["liquidation_weight"] * (cfg["market"]["c_eff"] * np.maximum(M - o["prev_margin"], 0.0)) ** 2
    return float(np.sum(w * (coverage + o["carry"] * M + liq)))


@pytest.mark.parametrize("name", ["benchmark", "liquidation"])
def test_cost_is_nonnegative_and_matches_a_numpy_sum(solved, name):
    s, data = solved[name]
    rule = publish_at_points(data, parse_vol_points("8:60:1"), tick=TICK, problem=s.problem)
    c = rule.cost
    on_grid = evaluate(rule.vol, rule.margin, data.vol)
    j_pub = _numpy_objective(data.config, data.vol, data.weights, on_grid)
    j_opt = _numpy_objective(data.config, data.vol, data.weights, data.schedule)
    j_fb = _numpy_objective(data.config, data.vol, data.weights, data.first_best)
    assert c["J_published"] == pytest.approx(j_pub, rel=J_RTOL)
    assert c["J_optimal"] == pytest.approx(j_opt, rel=J_RTOL)
    assert c["cost_of_publishing"] == pytest.approx(j_pub - j_opt, rel=1e-9)
    assert c["price_of_manipulation_proofness"] == pytest.approx(j_opt - j_fb, rel=1e-9)
    # the published rule on the grid is feasible for (41), so it cannot beat g* beyond the certificate's duality gap
    assert c["cost_of_publishing"] >= -data.certificate["duality_gap"]
    assert c["cost_of_publishing"] > 0     # rounded to 5 bp, the rule is not g*


def test_unrounded_knots_cost_nothing(solved):
    """The benchmark's g* is linear in vol (two knots, one saturated run): its knot table is g* itself, cost 0."""
    s, data = solved["benchmark"]
    rep = build_report(s)
    assert rep.rule.form == "knots" and rep.rule.cost["cost_of_publishing"] == pytest.approx(0.0, abs=1e-18)


def test_cost_from_a_schedule_json(solved, tmp_path):
    s, data = solved["liquidation"]
    opts = ReportOptions(tick=TICK, published_vols="8:60:1")
    fresh = build_report(s, opts).rule
    again = build_report(json.loads(data.schedule_json), opts).rule     # rebuilt from the stored config, no data file
    assert again.cost == fresh.cost and again.rule_id == fresh.rule_id
    _, cap = solved["cap_existing_schedule"]     # its target CSV is not inside the schedule.json
    rep = build_report(json.loads(cap.schedule_json), ReportOptions(tick=TICK, published_vols="8:55:1"))
    assert rep.rule.cost["available"] is False and "objective.file" in rep.rule.cost["reason"]
    files = report_files(rep, figures=False)
    assert "not available" in files["rule_table.md"].decode() and "not available" in files["report.md"].decode()
    assert json.loads(files["rule_table.json"])["rule"]["cost"]["available"] is False
    tampered = json.loads(data.schedule_json)
    tampered["problem_sha256"] = "0" * 64
    rep = build_report(tampered, opts)
    assert rep.rule.cost["available"] is False and "differs" in rep.rule.cost["reason"]


# ---------------------------------------------------------------------- rule ID and version label


def test_rule_id_is_a_content_hash(solved):
    s, data = solved["liquidation"]
    opts = ReportOptions(tick=TICK, published_vols="8:60:1")
    a, b = build_report(s, opts).rule, build_report(s, opts).rule
    assert a.rule_id == b.rule_id and len(a.rule_id) == 64 and a.short_id == a.rule_id[:12]
    assert build_report(s, replace(opts, version_label="v2")).rule.rule_id == a.rule_id      # the label names, it does not change
    m = a.margin.copy()
    m[10] += TICK
    assert rule_id(data, a.vol, m, TICK, a.labels) != a.rule_id                               # one published margin
    assert build_report(s, replace(opts, tick=0.0001)).rule.rule_id != a.rule_id             # the tick (and so the margins)
    assert build_report(s, replace(opts, published_vols="8:60:2")).rule.rule_id != a.rule_id # the points
    cfg = copy.deepcopy(data.config)
    cfg["objective"]["carry"] = 0.011                                                          # a design parameter
    assert rule_id(replace(data, config=cfg), a.vol, a.margin, TICK, a.labels) != a.rule_id
    assert rule_id(replace(data, slope_vol=data.slope_vol * 1.01), a.vol, a.margin, TICK, a.labels) != a.rule_id   # the cap


def test_every_format_carries_id_label_extrapolation_and_cost(solved):
    s, _ = solved["liquidation"]
    label = "Q3 *draft* | $x$ <b>&_#"
    rep = build_report(s, ReportOptions(tick=TICK, published_vols="8:60:1", version_label=label))
    files = report_files(rep, figures=False)
    rid = rep.rule.rule_id
    rows = list(csv.DictReader(io.StringIO(files["rule_table.csv"].decode())))
    assert len(rows) == 53 and {r["rule_id"] for r in rows} == {rid} and {r["version_label"] for r in rows} == {label}
    assert rows[0]["extrapolation"].startswith("below 8% annualised vol: flat") and rows[-1]["extrapolation"].startswith("above 60%")
    assert all(r["extrapolation"] == "" for r in rows[1:-1]) and all(r["grid_index"] == "" for r in rows)
    js = json.loads(files["rule_table.json"])
    assert js["rule_id"] == rid and js["version_label"] == label and js["status"] == "published rule"
    assert js["extrapolation"]["below"] and js["extrapolation"]["above"] and js["rule"]["certificate"]["ok"]
    md = files["rule_table.md"].decode()
    assert rep.rule.short_id in md and "Extrapolation" in md and "J(published) - J(g\\*)" in md
    # the label renders as itself: no emphasis, no table cell break, no HTML tag
    from markdown_it import MarkdownIt
    import html as _html
    assert "<b>" not in md and _html.escape(label, quote=False) in MarkdownIt("commonmark").enable("table").render(md)
    tex = files["rule_table.tex"].decode()
    assert rep.rule.short_id in tex and r"Q3 *draft* \textbar{} \$x\$ \textless{}b\textgreater{}\&\_\#" in tex
    assert "Extrapolation" in tex and "price of manipulation-proofness" in tex
    for doc in ("report.md", "report.tex"):
        text = files[doc].decode()
        assert rep.rule.short_id in text and "price of manipulation-proofness" in text
    wb = openpyxl.load_workbook(io.BytesIO(report_files(rep, figures=False)["rule_table.xlsx"]))
    prov = dict(wb["provenance"].iter_rows(min_row=2, values_only=True))
    assert prov["rule.rule_id"] == rid and prov["rule.version_label"] == label
    assert prov["rule.extrapolation.below_text"] == rows[0]["extrapolation"] and prov["rule.certificate.ok"] is True
    assert prov["rule.cost.cost_of_publishing"] == pytest.approx(rep.rule.cost["cost_of_publishing"], rel=1e-14)   # Excel keeps 15 digits
    # the knot form is kept and labelled as not published
    knot = files["knot_table.md"].decode()
    assert "knot interpolation of g* (not published)".replace("*", "\\*") in knot
    assert json.loads(files["parameters.json"])["checks"]["published"]["form"] == "published vols"
    knot_rows = list(csv.DictReader(io.StringIO(files["knot_table.csv"].decode())))
    assert {r["rule_id"] for r in knot_rows} == {rid} and all(r["extrapolation"] == "" for r in knot_rows)


def test_exactly_one_published_line_in_the_figure(solved):
    s, _ = solved["liquidation"]
    for opts in (ReportOptions(tick=TICK, published_vols="8:60:1", steps=6), ReportOptions(tick=TICK), ReportOptions(steps=4)):
        rep = build_report(s, opts)
        labels = [line.get_label() for line in schedule_figure(rep).axes[0].get_lines()]
        published = [lab for lab in labels if "published" in lab and "not published" not in lab]
        assert published == [f"published rule {rep.rule.short_id} " + published[0].split(" ", 3)[3]], labels
        assert "optimal schedule $g^*$ (41)" in labels
        if opts.steps:
            assert any(lab.startswith("step table (not published") for lab in labels)
            rows = list(csv.DictReader(io.StringIO(report_files(rep, figures=False)["step_table.csv"].decode())))
            assert {r["published_rule_id"] for r in rows} == {rep.rule.rule_id} and all("not published" in r["status"] for r in rows)


def test_version_label_and_tolerance_errors_are_one_sentence():
    with pytest.raises(InputError, match="--version-label must be one line"):
        ReportOptions(version_label="a\nb")
    with pytest.raises(InputError, match="--version-label is empty"):
        ReportOptions(version_label="  ")
    with pytest.raises(InputError, match="--tolerance"):
        ReportOptions(published_tolerance=-1.0)
    with pytest.raises(InputError, match="not a number"):
        ReportOptions(published_vols="8:60:x")


def test_tolerance_warns_and_is_stated(solved):
    s, _ = solved["liquidation"]
    tight = build_report(s, ReportOptions(tick=TICK, published_vols="8:60:1"))
    assert not tight.rule.within_tolerance and tight.rule.tolerance == TICK   # default: the larger of 1 bp and one tick
    assert any("above the tolerance" in w for w in tight.warnings)
    loose = build_report(s, ReportOptions(tick=TICK, published_vols="8:60:1", published_tolerance=0.01))
    assert loose.rule.within_tolerance and not any("above the tolerance" in w for w in loose.warnings)


# ---------------------------------------------------------------------- command line (acceptance)


def test_cli_publishes_the_existing_schedule_example(tmp_path, capsys):
    out = tmp_path / "rep"
    assert cli_report.main([str(EXAMPLES / "cap_existing_schedule.toml"), "--out", str(out), "--published-vols", "8:55:1",
                            "--round", str(TICK), "--version-label", "2026-Q3"]) == 0
    line = capsys.readouterr().out
    p = json.loads((out / "parameters.json").read_text())["checks"]["published"]
    assert p["certificate"]["ok"] and p["form"] == "published vols" and p["points"] == 48
    assert f"published rule {p['rule_id'][:12]} (2026-Q3): 48 points" in line and "PASS" in line
    assert "price of manipulation-proofness" in line and "J(published) - J(g*) = " in line
    assert {"knot_table.csv", "knot_table.md", "rule_table.csv"} <= {f.name for f in out.iterdir()}
    # the console's knot line does not read as the published rule
    assert line.splitlines()[0].startswith("report: knot interpolation (kept as knot_table, not published): ")
