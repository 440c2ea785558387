"""``margin-design diff``, the report's change log and the read-back of every table margin-design writes (issue 11,
section 2).

Numbers are checked against independent sources: two formulas at known points against hand-computed margins
(M = a + b sigma at sigma = p / 100 / sqrt(252)); the design cost against evaluating each rule on its own with
``Problem.value``, and the diff of a schedule.json on its own config against the J(g*) and J(M_fb) the solver stored;
the round trip of every table solve/report write against the table it was written from (zero change at the rows).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from margin_design.audit import load_rule
from margin_design.audit.diff import CAP_TOL, compare_rules
from margin_design.cli import main
from margin_design.errors import InputError
from margin_design.reports.diff import DIFF_FILES, build_diff

SQRT_252 = math.sqrt(252)
#: Tables print 12 significant digits: a margin read back from a CSV/JSON table is within this of the schedule's.
READBACK_TOL = 1e-12
#: J is a float64 sum over the grid: the same rule evaluated by two routes agrees to this (relative).
J_RTOL = 1e-12
#: A formula with Heaviside / floor is read one-sided, at r (1 + 1e-12) (rules.FORMULA_SIDE_EPS): margins within this.
ONE_SIDED_RTOL = 1e-11

CONFIG = """[grid]
vol_min = 0.004
vol_max = 0.03
points = 60
spacing = "vol"
[states]
density = "lognormal"
median_vol = 0.01
dispersion = 0.5
[shock]
model = "normal"
horizon_days = 2
[objective]
kind = "cost"
loss = "shortfall"
carry = 0.01
prev_margin = 0.05
liquidation_weight = 0.5
[market]
alpha = 0.2
c_eff = 4.5
[cap]
kind = "manipulation_proof"
input = "variance"
"""


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """A solve folder and two report folders (unrounded; rounded to 5 bp with a step table) of one config."""
    from margin_design.fileio import write_tree
    from margin_design.reports.report import ReportOptions, build_report, report_files

    root = tmp_path_factory.mktemp("diff")
    (root / "c.toml").write_text(CONFIG)
    assert main(["solve", str(root / "c.toml"), "--out", str(root / "solve")]) == 0
    sched = root / "solve" / "schedule.json"
    # the report's files as `report --out` writes them, without the figures (not tables; they take most of the time)
    for name, opts in (("report", ReportOptions(tolerance=0.0002)), ("rounded", ReportOptions(tick=0.0005, steps=6))):
        write_tree(root / name, report_files(build_report(sched, opts), figures=False))
    return root


def _csv(path: Path) -> list[dict]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


# ---------------------------------------------------------------------- numbers against hand computation


def test_two_formulas_at_known_points():
    old, new = load_rule("0.01 + 2*sigma"), load_rule("0.02 + 1*sigma")
    d = build_diff("old", "new", vols="10,20,30", old_rule=old, new_rule=new)
    c = d.comparison
    s = np.array([10.0, 20.0, 30.0]) / 100 / SQRT_252
    np.testing.assert_allclose(c.vol_daily, s, rtol=1e-15)
    np.testing.assert_allclose(c.margin_old, 0.01 + 2 * s, rtol=1e-14)
    np.testing.assert_allclose(c.margin_new, 0.02 + s, rtol=1e-14)
    np.testing.assert_allclose(c.change, 0.01 - s, rtol=1e-12)      # new - old = 0.01 - sigma: rises below sigma = 1%
    assert c.largest_increase["vol_annual_pct"] == 10.0 and c.largest_increase["change"] == pytest.approx(0.01 - s[0], rel=1e-12)
    assert c.largest_decrease["vol_annual_pct"] == 30.0 and c.largest_decrease["change"] == pytest.approx(0.01 - s[2], rel=1e-12)
    # anywhere in [10%, 30%]: the same ends (the change is linear in sigma)
    assert c.anywhere["largest_decrease"]["vol_daily"] == pytest.approx(s[2], rel=1e-12)
    assert c.cap_vol is None and "not checked" in d.summary()
    rows = c.rows()
    assert rows[1]["slope_old_vol_annual"] == pytest.approx(2 / SQRT_252, rel=1e-12)   # dM/dsigma_ann = 2 / sqrt(252)
    assert rows[1]["slope_new_vol_annual"] == pytest.approx(1 / SQRT_252, rel=1e-12)


def test_only_increases_says_no_point_falls():
    d = build_diff("a", "b", vols="8:12:2", old_rule=load_rule("0.01 + 2*sigma"), new_rule=load_rule("0.012 + 2.2*sigma"))
    assert d.comparison.largest_decrease is None and "no point falls" in d.summary()
    assert d.comparison.largest_increase["vol_annual_pct"] == 12.0


def test_cap_breaks_and_jumps():
    K = 2.1  # per unit daily vol
    s = np.array([0.006, 0.012, 0.025])
    old, new = load_rule("0.01 + 2*sigma"), load_rule("0.01 + 2.2*sigma + 0.004*Heaviside(sigma - 0.02)")
    c = compare_rules(old, new, s, vol_range=(0.005, 0.03), cap_vol=K, cap_source="test")
    assert c.breaks["old"] == []                                             # slope 2 < 2.1 everywhere
    (b,) = c.breaks["new"]                                                   # 2.2 > 2.1 across the whole range
    assert b["vol_daily_from"] == pytest.approx(0.005) and b["vol_daily_to"] == pytest.approx(0.03)
    assert b["jump"] is True
    (j,) = c.jumps["new"]
    assert j["vol_daily"] == pytest.approx(0.02, rel=1e-9) and j["jump"] == pytest.approx(0.004, rel=1e-9)
    assert c.jumps["old"] == []
    np.testing.assert_allclose(c.change, 0.2 * s + 0.004 * (s >= 0.02), rtol=ONE_SIDED_RTOL)
    # a rule exactly at the cap does not break it
    at = compare_rules(old, load_rule(f"0.01 + {K!r}*sigma"), s, vol_range=(0.005, 0.03), cap_vol=K)
    assert at.breaks["new"] == []
    # a step table breaks any cap at its jumps only
    step = load_rule("0.03 + 0.01*Heaviside(sigma - 0.015)")
    c = compare_rules(old, step, s, vol_range=(0.005, 0.03), cap_vol=K)
    assert len(c.breaks["new"]) == 1 and c.breaks["new"][0]["jump"]
    assert c.breaks["new"][0]["vol_daily_from"] <= 0.015 <= c.breaks["new"][0]["vol_daily_to"]
    assert CAP_TOL < 1e-9


# ---------------------------------------------------------------------- one vol column naming


def test_vol_column_names(tmp_path):
    daily = tmp_path / "daily.csv"
    daily.write_text("vol_daily,margin\n0.01,0.03\n0.02,0.05\n")
    legacy = tmp_path / "legacy.csv"
    legacy.write_text("vol,margin\n0.01,0.03\n0.02,0.05\n")
    annual = tmp_path / "annual.csv"
    annual.write_text(f"vol_annual,margin\n{0.01 * SQRT_252!r},0.03\n{0.02 * SQRT_252!r},0.05\n")
    both = tmp_path / "both.csv"
    both.write_text(f"vol_daily,vol_annual,margin\n0.01,{0.01 * SQRT_252!r},0.03\n0.02,{0.02 * SQRT_252!r},0.05\n")
    r = np.array([0.008, 0.015, 0.02, 0.025]) ** 2
    ref = load_rule(str(daily)).margin(r)
    np.testing.assert_allclose(ref, [0.03, 0.04, 0.05, 0.05], rtol=1e-14)   # linear between rows, flat outside
    for p in (legacy, annual, both):
        np.testing.assert_allclose(load_rule(str(p)).margin(r), ref, rtol=1e-14, atol=1e-16)
    bad = tmp_path / "bad.csv"
    bad.write_text("vol_daily,vol_annual,margin\n0.01,0.01,0.03\n0.02,0.02,0.05\n")   # annualised column holds daily vols
    with pytest.raises(InputError, match=r"conflicting vol columns 'vol_daily' = 0\.01 and 'vol_annual' = 0\.01 \(annualised"):
        load_rule(str(bad))
    two = tmp_path / "two.csv"
    two.write_text("vol_daily,vol,margin\n0.01,0.011,0.03\n0.02,0.02,0.05\n")
    with pytest.raises(InputError, match=r"conflicting vol columns 'vol_daily' = 0\.01 and 'vol' = 0\.011"):
        load_rule(str(two))


# ---------------------------------------------------------------------- read-back and round trip


def test_everything_written_reads_back(written):
    sched = load_rule(str(written / "solve" / "schedule.json"))
    d = json.loads((written / "solve" / "schedule.json").read_text())
    np.testing.assert_array_equal(sched.base.vol, d["grid"]["vol"])
    np.testing.assert_array_equal(sched.margin(np.asarray(d["grid"]["vol"]) ** 2), d["schedule"])
    assert sched.info.kind == "schedule.json" and sched.info.cap_vol == d["cap"]["slope_vol"]
    # schedule.csv: the same numbers (repr precision)
    np.testing.assert_array_equal(load_rule(str(written / "solve" / "schedule.csv")).base.margin, d["schedule"])
    for folder in ("report", "rounded"):
        rows = _csv(written / folder / "rule_table.csv")
        vol = np.array([float(x["vol_daily"]) for x in rows])
        margin = np.array([float(x["margin"]) for x in rows])
        for name in ("rule_table.csv", "rule_table.json", ""):
            rule = load_rule(str(written / folder / name) if name else str(written / folder))
            np.testing.assert_array_equal(rule.base.vol, vol)
            np.testing.assert_array_equal(rule.margin(vol**2), margin)
            assert rule.info.cap_vol == pytest.approx(d["cap"]["slope_vol"], rel=1e-11)
            assert len(rule.info.published_vol) == len(rows)
    buckets = _csv(written / "rounded" / "step_table.csv")
    for name in ("step_table.csv", "step_table.json"):
        step = load_rule(str(written / "rounded" / name))
        assert step.base.interpolation == "step"
        lo = np.array([float(b["vol_daily_from"]) for b in buckets])
        hi = np.array([float(b["vol_daily_to"]) for b in buckets])
        mid = 0.5 * (lo + hi)
        np.testing.assert_array_equal(step.margin(mid**2), [float(b["margin"]) for b in buckets])


def test_round_trip_diff_is_zero_at_published_points(written):
    """A rule against its own written table changes by nothing at the published points."""
    sched = str(written / "solve" / "schedule.json")
    for folder, tol in (("report", READBACK_TOL), ("rounded", None)):
        table = str(written / folder / "rule_table.json")
        same = build_diff(table, str(written / folder / "rule_table.csv"))
        assert np.all(same.comparison.change == 0.0)
        assert same.comparison.largest_increase is None and same.comparison.largest_decrease is None
        if tol is not None:  # unrounded: the rows are the schedule's values at the knots, printed to 12 digits
            c = build_diff(sched, table).comparison
            assert "published points of NEW" in build_diff(sched, table).points_how
            assert np.max(np.abs(c.change)) <= tol
    step = build_diff(str(written / "rounded" / "step_table.csv"), str(written / "rounded" / "step_table.json")).comparison
    assert np.all(step.change == 0.0)
    both = build_diff(str(written / "solve" / "schedule.json"), str(written / "solve" / "schedule.csv"),
                      vols="10:60:1").comparison
    assert np.all(both.change == 0.0)


def test_audit_reads_what_report_writes(written, capsys):
    status = main(["audit", str(written / "rounded" / "rule_table.csv"), "--market", str(written / "c.toml"), "--no-simulation",
                   "--method", "exact"])
    assert status == 0
    assert "rule_table.csv: " in capsys.readouterr().out


# ---------------------------------------------------------------------- design cost


def test_design_cost_against_separate_evaluation(written):
    from margin_design.design import load_problem

    cfg = str(written / "c.toml")
    sched = str(written / "solve" / "schedule.json")
    d = build_diff(sched, "0.002 + 3*sigma", market=cfg)
    k = d.costs
    problem = load_problem(cfg)
    j_old = problem.value(load_rule(sched).margin(problem.r))
    j_new = problem.value(0.002 + 3 * problem.vol)
    assert k["old"]["J"] == pytest.approx(j_old, rel=J_RTOL) and k["new"]["J"] == pytest.approx(j_new, rel=J_RTOL)
    assert k["change_J"] == pytest.approx(j_new - j_old, rel=1e-9)
    stored = json.loads(Path(sched).read_text())["objective"]
    # g* on its own config: J(OLD) is the solver's J(g*), so it is the capped optimum and costs the price above M_fb
    assert k["old"]["J"] == pytest.approx(stored["value"], rel=J_RTOL)
    assert k["old"]["above_capped_optimum"] == pytest.approx(0.0, abs=J_RTOL * stored["value"])
    assert k["price_of_manipulation_proofness"] == pytest.approx(stored["value"] - stored["first_best_value"], rel=1e-9)
    assert k["new"]["above_capped_optimum"] > 0   # any other rule costs more than the optimum
    # the cap is the config's: 3 > K = 2/(alpha c_eff) = 2.22 per unit daily vol, so NEW breaks it everywhere
    assert d.comparison.cap_vol == pytest.approx(2 / 0.9, rel=1e-12)
    assert d.comparison.breaks["old"] == [] and len(d.comparison.breaks["new"]) == 1
    assert "1-point annualised steps" in d.points_how   # schedule.json publishes no points, a formula neither
    assert d.comparison.labels[0] == str(math.ceil(100 * SQRT_252 * 0.004))


def test_stored_price_when_both_are_schedules(written, tmp_path):
    other = CONFIG.replace("alpha = 0.2", "alpha = 0.25")
    (tmp_path / "o.toml").write_text(other)
    assert main(["solve", str(tmp_path / "o.toml"), "--out", str(tmp_path / "o")]) == 0
    old, new = written / "solve" / "schedule.json", tmp_path / "o" / "schedule.json"
    d = build_diff(str(old), str(new), market=str(written / "c.toml"))
    so, sn = (json.loads(p.read_text())["objective"] for p in (old, new))
    s = d.costs["stored_price_of_manipulation_proofness"]
    assert s["old"] == pytest.approx(so["value"] - so["first_best_value"], rel=1e-12)
    assert s["new"] == pytest.approx(sn["value"] - sn["first_best_value"], rel=1e-12)
    assert s["new"] > s["old"]  # a larger price impact tightens the cap: manipulation-proofness costs more
    assert d.comparison.cap_source == "the --market config's cap"
    # without --market, the cap NEW states is the one checked
    plain = build_diff(str(old), str(new)).comparison
    assert plain.cap_vol == json.loads(new.read_text())["cap"]["slope_vol"] == pytest.approx(2 / (0.25 * 4.5), rel=1e-12)
    assert plain.cap_source == "the cap stated by NEW (schedule.json)"


# ---------------------------------------------------------------------- the command


def test_cli_writes_the_folder_and_json_is_one_object(written, tmp_path, capfd):
    out = tmp_path / "d"
    status = main(["diff", str(written / "report"), str(written / "rounded" / "rule_table.json"), "--market", str(written / "c.toml"),
                   "--out", str(out), "--json"])
    o, e = capfd.readouterr()
    assert status == 0, e
    summary = json.loads(o)                      # exactly one JSON object and nothing else
    assert o.count("\n") == 1 and o.endswith("}\n")
    assert summary["points"]["how"].startswith("the published points of OLD and NEW (union)")
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == sorted(DIFF_FILES)
    rows = _csv(out / "diff.csv")
    assert len(rows) == summary["points"]["count"]
    for row in rows:
        assert float(row["change"]) == pytest.approx(float(row["margin_new"]) - float(row["margin_old"]), abs=1e-15)
    full = json.loads((out / "diff.json").read_text())
    assert full["largest_increase"] == summary["largest_increase"] and len(full["rows"]) == len(rows)
    md = (out / "diff.md").read_text()
    assert "## Change at each point" in md and "![OLD and NEW margin rules and their difference](figures/diff.png)" in md
    png = (out / "figures" / "diff.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 20_000
    # a rerun gives byte-identical files (the folder is replaced as a whole)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert main(["diff", str(written / "report"), str(written / "rounded" / "rule_table.json"), "--market", str(written / "c.toml"),
                 "--out", str(out)]) == 0
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert "wrote" in capfd.readouterr().out


def test_figure_is_not_blank(written):
    from io import BytesIO

    from matplotlib.image import imread

    from margin_design.reports.diff import diff_document

    md, figs = diff_document(build_diff(str(written / "solve" / "schedule.json"), "0.002 + 3*sigma", market=str(written / "c.toml")))
    img = imread(BytesIO(figs["figures/diff.png"]))
    assert img.shape[0] > 500 and img.std() > 0.05       # drawn, not a blank page
    assert set(figs) == {"figures/diff.png", "figures/diff.pdf"} and "figures/diff.png" in md


# ---------------------------------------------------------------------- the report's change log


def test_report_previous_adds_a_change_log(written, tmp_path):
    from margin_design.fileio import write_tree
    from margin_design.reports.report import ReportOptions, build_report, report_files

    out = tmp_path / "r"
    prev = written / "report" / "rule_table.json"
    report = build_report(written / "solve" / "schedule.json", ReportOptions(tick=0.0005), previous=load_rule(str(prev)))
    write_tree(out, report_files(report, figures=False))
    md = (out / "report.md").read_text()
    prev_id = json.loads(prev.read_text())["rule_id"]       # the previous table states its rule ID (section 1)
    assert "## Change log" in md and f"Rule ID: previous {prev_id}, this rule {report.rule.rule_id}." in md
    assert "\\section*{Change log}" in (out / "report.tex").read_text()
    log = json.loads((out / "parameters.json").read_text())["change_log"]
    rows = _csv(out / "rule_table.csv")
    assert [r["vol_daily"] for r in log["rows"]] == [float(r["vol_daily"]) for r in rows]   # at this rule's published points
    # the same numbers as diff OLD NEW (one comparison core)
    c = build_diff(str(prev), str(out / "rule_table.json"), vols=None).comparison
    mine = {round(r["vol_daily"], 15): r["change"] for r in log["rows"]}
    matched = 0
    for v, ch in zip(c.vol_daily, c.change):
        if round(float(v), 15) in mine:
            assert mine[round(float(v), 15)] == pytest.approx(float(ch), abs=1e-15)
            matched += 1
    assert matched == len(mine) == len(rows)
    assert any(abs(r["change"]) > 1e-5 for r in log["rows"])   # rounding to 5 bp moves the rule: the log is not all zeros


#: Files of a report folder that are not rules (parameters and the jumps of a step table): refused in one sentence.
NOT_RULES = {"parameters.json": "is not a rule_table.json, step_table.json or schedule.json", "step_jumps.csv": "has no column 'margin'"}


def test_every_table_of_the_folders_is_read_or_refused(written):
    seen = set()
    for folder in ("solve", "report", "rounded"):
        for p in sorted((written / folder).iterdir()):
            if p.suffix not in (".csv", ".json"):
                continue
            seen.add(p.name)
            if p.name in NOT_RULES:
                with pytest.raises(InputError, match=NOT_RULES[p.name]):
                    load_rule(str(p))
                continue
            rule = load_rule(str(p))
            assert rule.base.vol.size >= 2 and np.all(np.diff(rule.base.margin) >= 0)
    assert seen >= {"schedule.json", "schedule.csv", "rule_table.csv", "rule_table.json", "step_table.csv", "step_table.json",
                    "step_jumps.csv", "parameters.json"}


# ---------------------------------------------------------------------- read back as published (extrapolation included)

#: A published table read back: its vols carry 12 significant digits (relative error <= 5e-13), so the rule read back
#: agrees with the published rule in memory to this (margin ratio) below, between and above the points up to 1.5 times
#: the last point (above it the last slope, computed from two rows 1 vol point apart, carries ~1e-11 relative error, and
#: that grows with the distance: 3.7e-12 at 3 times the last point). Against the published definition applied to the
#: table's own rows the reading is exact.
PUBLISHED_READBACK_TOL = 1e-12
PUBLISHED_SPEC = "7:47:1"   # 40 points: every 1% falls on a node of the dense grid (2001 nodes) too


@pytest.fixture(scope="module")
def published(written):
    """A report folder publishing at round vols (rounded to 5 bp), and its PublishedRule in memory."""
    from margin_design.fileio import write_tree
    from margin_design.reports.report import ReportOptions, build_report, report_files

    report = build_report(written / "solve" / "schedule.json", ReportOptions(published_vols=PUBLISHED_SPEC, tick=0.0005))
    write_tree(written / "published", report_files(report, figures=False))
    return written / "published", report.rule


def test_published_table_reads_back_as_published(published):
    from margin_design.reports.publish import evaluate

    folder, rule = published
    assert rule.certificate.slope_above > 0                 # the extrapolation above differs from a flat reading
    lo, hi = float(rule.vol[0]), float(rule.vol[-1])
    x = np.concatenate([np.linspace(0.5 * lo, lo, 7), np.linspace(lo, hi, 101), np.linspace(hi, 1.5 * hi, 11)])
    far = np.linspace(1.5 * hi, 3 * hi, 7)
    expect = evaluate(rule.vol, rule.margin, x)
    rows = _csv(folder / "rule_table.csv")
    vol_rows, margin_rows = (np.array([float(r[c]) for r in rows]) for c in ("vol_daily", "margin"))
    for name in ("rule_table.csv", "rule_table.json", ""):
        read = load_rule(str(folder / name) if name else str(folder))
        assert read.base.extrapolation == "published" and "last interval's slope above" in read.info.extrapolation
        np.testing.assert_allclose(read.margin(x**2), expect, rtol=0, atol=PUBLISHED_READBACK_TOL)
        every = np.concatenate([x, far])     # the published definition on the rows as written: the same numbers
        np.testing.assert_array_equal(read.margin(every**2), evaluate(vol_rows, margin_rows, every))
        # the slope above the last point is the published one, on both sides of the last point and far above it
        top = np.array([hi * (1 - 1e-9), hi, 1.5 * hi, 3 * hi])
        np.testing.assert_allclose(read.slope_vol(top), rule.certificate.slope_above, rtol=1e-9)
        np.testing.assert_array_equal(read.slope_vol(np.array([0.5 * lo, 0.99 * lo])), 0.0)   # flat below
    # a flat reading of the same rows would be wrong above the last point: the test can tell the readings apart
    assert expect[-1] - rule.margin[-1] > 100 * PUBLISHED_READBACK_TOL


def test_tables_stating_no_extrapolation_stay_flat(published, tmp_path):
    folder, rule = published
    knot = load_rule(str(folder / "knot_table.csv"))     # the knot table beside a published-vols rule states none
    user = tmp_path / "user.csv"
    user.write_text("vol_daily,margin\n0.01,0.03\n0.02,0.05\n")
    rows = json.loads((folder / "rule_table.json").read_text())
    rows.pop("extrapolation")                            # an older rule_table.json (before the publish change)
    older = tmp_path / "older.json"
    older.write_text(json.dumps(rows))
    for r in (knot, load_rule(str(user)), load_rule(str(older)), load_rule(str(folder / "rule_table.csv"), interpolation="step")):
        assert r.base.extrapolation == "flat" and r.info.extrapolation == "flat below the first and above the last row"
        top = float(r.base.vol[-1])
        assert float(r.margin(np.array([(2 * top) ** 2]))[0]) == r.base.margin[-1]
    # a statement margin-design does not know is refused, not misread
    rows["extrapolation"] = {"below": "flat", "above": "at the cap"}
    odd = tmp_path / "odd.json"
    odd.write_text(json.dumps(rows))
    with pytest.raises(InputError, match="states an extrapolation margin-design does not know"):
        load_rule(str(odd))


def test_diff_of_published_rule_against_its_own_table_is_zero_everywhere(published):
    from margin_design.audit import Rule, TableRule

    folder, rule = published
    # the published rule in memory, read by the published definition (not through any file)
    mine = Rule(TableRule(rule.vol, rule.margin, extrapolation="published", source="in memory"), name="published rule")
    lo, hi = float(rule.vol[0]), float(rule.vol[-1])
    for name in ("rule_table.json", "rule_table.csv"):
        read = load_rule(str(folder / name))
        # points below, between and above the published ones, and a range reaching well beyond both ends
        c = compare_rules(mine, read, np.array([0.5 * lo, lo, 0.5 * (lo + hi), hi, 1.5 * hi]), vol_range=(0.5 * lo, 1.5 * hi))
        assert np.max(np.abs(c.change)) <= PUBLISHED_READBACK_TOL
        assert c.largest_increase is None and c.largest_decrease is None
        assert c.anywhere["largest_increase"] is None and c.anywhere["largest_decrease"] is None
    # the folder (it stands for its rule_table.json) against its rule_table.csv: the same rule, zero everywhere
    d = build_diff(str(folder), str(folder / "rule_table.csv"), vols="5:90:5")
    assert np.all(d.comparison.change == 0.0)
    assert d.comparison.anywhere == {"largest_increase": None, "largest_decrease": None}
    assert d.comparison.extrapolated("new").any()        # 5%, 50%, ... 90% lie beyond the rows
    assert d.to_dict()["extrapolation"]["new"] == load_rule(str(folder / "rule_table.csv")).info.extrapolation
    assert any("last interval's slope above the last row" in w for w in d.warnings)


def test_audit_of_published_table_has_the_published_slope_above_the_last_point(published, written, tmp_path):
    folder, rule = published
    out = tmp_path / "audit"
    assert main(["audit", str(folder / "rule_table.csv"), "--market", str(written / "c.toml"), "--no-simulation", "--out", str(out),
                 "-q"]) == 0
    states = _csv(out / "states.csv")
    above = [s for s in states if float(s["vol_daily"]) > float(rule.vol[-1])]
    assert above, "the config's grid reaches beyond the last published point"
    for s in above:
        assert float(s["slope_dm_dvol"]) == pytest.approx(rule.certificate.slope_above, rel=1e-9)
    assert "last interval's slope above the last row" in (out / "audit.md").read_text()
    assert "last interval's slope above the last row" in json.loads((out / "audit.json").read_text())["rule"]["extrapolation"]


def test_formula_steeper_than_the_cap_breaks_it_in_one_range_across_a_published_table(published):
    """Published points read back from 12-digit rows sit ~1e-12 (relative) from the dense grid's nodes: such near-equal
    nodes must not split one range of cap breaks into several (they did at 1e-12 node merging)."""
    folder, rule = published
    d = build_diff("3*sigma", str(folder / "rule_table.json"))       # slope 3 > K = 2/(0.2 * 4.5) per unit daily vol
    c = d.comparison
    assert c.cap_vol == pytest.approx(2 / 0.9, rel=1e-9)
    assert len(c.breaks["old"]) == 1 and c.breaks["new"] == []
    b = c.breaks["old"][0]
    assert b["vol_daily_from"] == pytest.approx(rule.vol[0], rel=1e-9) and b["vol_daily_to"] == pytest.approx(rule.vol[-1], rel=1e-9)
    assert b["max_slope_vol_annual"] == pytest.approx(3 / SQRT_252, rel=1e-9)


def test_largest_change_beyond_a_table_says_so(published):
    folder, rule = published
    d = build_diff(str(folder / "rule_table.json"), "0.001 + 3*sigma", vols="5:60:5")   # 5% lies below the first row
    inc = d.comparison.largest_increase
    assert inc is not None and inc["old_extrapolated"] and not inc["new_extrapolated"]
    assert inc["vol_annual_pct"] == 60.0 and "beyond OLD's table rows" in d.summary()
