"""Figures a committee reads at a glance (issue 11, section 4): matplotlib objects inspected, not pixels.

Each test names what a reader saw wrong before: repeated tick labels and empty bars in the cost breakdown,
coincident lines hiding each other, legend entries that do not say which rule they belong to, the existing schedule
of a target design called "first-best", an offset "1e-4" over the multipliers, and no figure for sweeps.
"""

from __future__ import annotations

import json
import math

import matplotlib
import numpy as np
import pytest
from conftest import EXAMPLES

from margin_design.audit import AuditOptions, build_audit, load_rule
from margin_design.cli_sweep import main as sweep_main
from margin_design.design import load_problem
from margin_design.reports.audit import _backtest_figure, _profit_figure, _slope_figure
from margin_design.reports.figures import (
    BUILDERS,
    COINCIDE_FRAC,
    FIGURE_NAMES,
    G_BP_PER_PP,
    RC,
    multipliers_figure,
    objective_figure,
    schedule_figure,
    slope_figure,
)
from margin_design.reports.report import ReportOptions, build_report
from margin_design.reports.rule_data import SQRT_252, RuleData
from margin_design.reports.sweep_figure import sweep_figure, swept_keys
from margin_design.solvers import solve
from margin_design.solvers.sweep import run_sweep

TICK = 0.0005
#: Two-decimal percentages printed in titles and legends: their rounding, relative.
PRINTED_RTOL = 5e-3
#: The benchmark's first-best VaR multiplier z_0.99 (examples/benchmark.toml: 99% coverage, 2-day normal shocks).
Z99 = 2.3263478740408408


@pytest.fixture(scope="module")
def reports():
    """The existing-schedule example published as a rounded step table, the benchmark rounded (one solve each)."""
    cap = RuleData.from_schedule(solve(load_problem(EXAMPLES / "cap_existing_schedule.toml")))
    bench = RuleData.from_schedule(solve(load_problem(EXAMPLES / "benchmark.toml")))
    return {"cap": build_report(cap, ReportOptions(tick=TICK, steps=10)), "bench": build_report(bench, ReportOptions(tick=TICK))}


def _drawn(builder, *args):
    with matplotlib.rc_context(RC):
        fig = builder(*args)
        fig.draw_without_rendering()   # tick labels and offset texts exist only after a draw
    return fig


def _legend_labels(fig) -> list[str]:
    return [t.get_text() for leg in fig.legends + [ax.get_legend() for ax in fig.axes if ax.get_legend()] for t in leg.get_texts()]


def _line(ax, prefix: str):
    hits = [ln for ln in ax.get_lines() if ln.get_label().startswith(prefix)]
    assert len(hits) == 1, (prefix, [ln.get_label() for ln in ax.get_lines()])
    return hits[0]


def _visible_over(base, over) -> None:
    """``over`` runs on top of ``base`` in another style: a different dash or width, higher zorder."""
    assert over.get_zorder() > base.get_zorder()
    assert (over.get_linestyle(), over.get_linewidth()) != (base.get_linestyle(), base.get_linewidth())
    assert over.get_linewidth() < base.get_linewidth() or over.get_linestyle() != base.get_linestyle()


# ------------------------------------------------------------------------------------------------ the report


def test_cost_breakdown_tick_labels_unique_and_zero_bars_marked(reports):
    rep = reports["cap"]
    fig = _drawn(objective_figure, rep)
    ax = fig.axes[0]
    ticks = [t.get_text() for t in ax.get_yticklabels() if ax.get_ylim()[0] <= t.get_position()[1] <= ax.get_ylim()[1]]
    assert len(ticks) >= 3 and len(set(ticks)) == len(ticks), ticks
    assert ax.yaxis.get_offset_text().get_text() == ""
    # the first-best of a target design is the existing schedule: its cost is exactly zero, written as 0 and marked
    obj = rep.data.objective
    assert obj["first_best_value"] == 0.0
    values = [t.get_text() for t in ax.texts]
    assert values.count("0") == len(obj["terms"]) + 1
    assert f"{1e4 * obj['value']:.3g}" in values and float(f"{1e4 * obj['value']:.3g}") > 0
    zero_marks = [ln for ln in ax.get_lines() if np.allclose(ln.get_ydata(), 0.0) and ln.get_linewidth() >= 1.5]
    assert len(zero_marks) == len(obj["terms"]) + 1
    # the RMS distance from the existing schedule in the title equals sqrt(2 J / h) with h = 1 (Appendix D.2: J = h/2 E[(M - t)^2])
    title = ax.get_title()
    rms_pp = float(title.split("existing schedule ")[-1].split(" pp")[0])
    assert rms_pp == pytest.approx(100 * math.sqrt(2 * obj["value"]), rel=PRINTED_RTOL)


def test_target_design_calls_its_first_best_the_existing_schedule(reports):
    rep = reports["cap"]
    for name in FIGURE_NAMES:
        fig = _drawn(BUILDERS[name], rep)
        texts = _legend_labels(fig) + [ax.get_title() for ax in fig.axes] + [t.get_text() for ax in fig.axes for t in ax.texts]
        assert not any("first-best" in t for t in texts), (name, texts)
    labels = _legend_labels(_drawn(schedule_figure, rep))
    assert any(t.startswith("existing schedule") for t in labels)
    assert any(t.startswith("existing schedule") for t in _legend_labels(_drawn(slope_figure, rep)))
    # a cost design keeps "first-best"
    assert any(t.startswith("first-best") for t in _legend_labels(_drawn(schedule_figure, reports["bench"])))


def test_multipliers_titled_in_words_with_units_and_no_offset(reports):
    rep = reports["cap"]
    fig = _drawn(multipliers_figure, rep)
    ax = fig.axes[0]
    assert ax.yaxis.get_offset_text().get_text() == ""
    assert "shadow" not in ax.get_title().lower() and "cost" in ax.get_title()
    assert "bp of notional per pp of margin" in ax.get_ylabel()
    ticks = [t.get_text() for t in ax.get_yticklabels()]
    assert all("e" not in t.lower() for t in ticks) and len(set(ticks)) == len(ticks)
    # the areas are the multipliers in bp per pp: G (cost per unit notional per unit margin ratio) x 1e4 x 0.01
    G = rep.data.multipliers
    tops = [float(np.max(np.abs(c.get_paths()[0].vertices[:, 1]))) for c in ax.collections if c.get_label().startswith(("cap", "mono"))]
    assert G_BP_PER_PP == 100.0
    assert max(tops) == pytest.approx(100.0 * float(np.max(np.abs(G))), rel=1e-12)
    labels = _legend_labels(fig)
    assert any(t.startswith("cap binds") for t in labels) and any(t.startswith("monotonicity binds") for t in labels)


def test_rounded_rule_drawn_over_the_optimal_one_and_said_to_coincide(reports):
    rep = reports["bench"]
    ax = _drawn(schedule_figure, rep).axes[0]
    rule, rounded = _line(ax, "optimal schedule"), _line(ax, "published rule")   # the one published line (section 1)
    _visible_over(rule, rounded)
    assert "coincides with $g^*$" in rounded.get_label()
    # the difference printed is the largest gap between the interpolated rounded rule and g*, in pp
    gap = float(rounded.get_label().split("max difference ")[1].split(" pp")[0])
    assert gap == pytest.approx(100 * rep.published_error, rel=0.05)
    assert rep.published_error <= COINCIDE_FRAC * np.ptp(rep.data.first_best)
    # slopes: the benchmark's rule runs along the cap, and the published slope along the rule
    ax = _drawn(slope_figure, rep).axes[0]
    labels = [c.get_label() for c in ax.patches if c.get_label()]
    assert any(t.startswith("rule slope") and "coincides with the cap" in t for t in labels)
    assert any(t.startswith("published rule") and "coincides with the rule" in t for t in labels)
    # the first-best (steeper: slope sqrt(2) z_0.99 / sqrt(252) against the cap 2/(alpha c_eff) / sqrt(252)) does not
    fb = [t for t in labels if t.startswith("first-best")]
    assert fb == ["first-best slope"]
    assert math.sqrt(2) * Z99 > 2 / (0.2 * 4.5)


def test_legend_labels_unique(reports):
    for rep in reports.values():
        for name in FIGURE_NAMES:
            labels = _legend_labels(_drawn(BUILDERS[name], rep))
            assert len(set(labels)) == len(labels), (name, labels)


# ------------------------------------------------------------------------------------------------ the audit


@pytest.fixture(scope="module")
def audits(tmp_path_factory):
    """The benchmark audited with its first-best formula (rule = first-best) and with g* itself (rule = capped)."""
    opts = AuditOptions(paths=400, data="sp500", start="2008-01-01", end="2009-12-31")
    fb = build_audit(load_rule(f"{Z99!r}*sqrt(2*r)", name="VaR 99% 2-day"), EXAMPLES / "benchmark.toml", opts)
    g = fb.schedule
    table = tmp_path_factory.mktemp("rule") / "g_star.csv"
    table.write_text("\n".join(["vol,margin"] + [f"{float(v)!r},{float(m)!r}" for v, m in zip(g.vol, g.schedule)]) + "\n")
    capped = build_audit(load_rule(str(table), name="g star"), EXAMPLES / "benchmark.toml", opts)
    return {"first_best": fb, "capped": capped}


def test_round_trip_legend_names_the_rule_of_every_entry(audits):
    fig = _drawn(_profit_figure, audits["first_best"])
    labels = _legend_labels(fig)
    assert len(set(labels)) == len(labels), labels
    prefixes = ("rule: VaR 99% 2-day, ", "first-best $M^{fb}$, ", "capped optimum $g^*$, ")
    assert all(t.startswith(prefixes) for t in labels), labels
    for kind in ("closed form", "Lemma 5 bound"):
        owners = {p for t in labels for p in prefixes if t.startswith(p) and kind in t}
        assert len(owners) == len([t for t in labels if kind in t]) >= 2
    # the audited rule is the first-best: both simulated curves drawn, in distinct markers, and said to coincide
    ax = fig.axes[0]
    rule, fb = _line(ax, "rule: VaR 99% 2-day, simulated"), _line(ax, "first-best $M^{fb}$, simulated")
    assert rule.get_marker() != fb.get_marker() and fb.get_zorder() > rule.get_zorder()
    assert "coincides with the rule" in fb.get_label()
    assert "coincides" not in _line(ax, "capped optimum $g^*$, simulated").get_label()


@pytest.mark.parametrize("which, other", [("first_best", "first-best"), ("capped", "capped optimum")])
def test_audit_slope_and_backtest_keep_coincident_lines_visible(audits, which, other):
    a = audits[which]
    ax = _drawn(_slope_figure, a).axes[0]
    rule, twin = _line(ax, f"rule: {a.rule.name}"), _line(ax, other)
    _visible_over(rule, twin)
    assert "coincides with the rule" in twin.get_label()
    third = _line(ax, "capped optimum" if which == "first_best" else "first-best")
    assert "coincides" not in third.get_label()
    assert np.allclose(rule.get_ydata(), twin.get_ydata(), rtol=COINCIDE_FRAC)
    fig = _drawn(_backtest_figure, a)
    for ax in fig.axes:
        names = a.backtest["names"]
        lines = {ln.get_label(): ln for ln in ax.get_lines()}
        rule = lines[names["rule"]]
        twin = next(ln for lbl, ln in lines.items() if lbl.startswith(names[which]))
        _visible_over(rule, twin)
        assert "coincides with the rule" in twin.get_label()


# ------------------------------------------------------------------------------------------------ sweeps


@pytest.fixture(scope="module")
def sweep_rows():
    return run_sweep(EXAMPLES / "benchmark.toml", ["market.alpha=0.1,0.2,0.4", "market.c_eff=3,4.5"], workers=0, progress=None)


def test_sweep_rows_carry_the_cap(sweep_rows):
    # the benchmark's cap is K = 2/(alpha c_eff) per unit daily vol (paper (17), kappa = 0, variance input), K/sqrt(252) (74)
    for r in sweep_rows:
        assert r["cap_vol_annual"] == pytest.approx(2 / (r["market.alpha"] * r["market.c_eff"]) / SQRT_252, rel=1e-12)


def test_sweep_figure_axes_and_data(sweep_rows):
    assert swept_keys(sweep_rows) == ["market.alpha", "market.c_eff"]
    fig = _drawn(sweep_figure, sweep_rows)
    axes = np.asarray(fig.axes).reshape(2, 2)
    xlabels = [ax.get_xlabel().replace("\n", " ") for ax in axes[1]]    # long labels wrap
    assert "price impact" in xlabels[0] and "ADV liquidated per unit margin ratio" in xlabels[1]
    assert "bp of notional" in axes[0, 0].get_ylabel() and "pp of margin per vol point" in axes[1, 0].get_ylabel()
    for ax in fig.axes:
        assert ax.yaxis.get_offset_text().get_text() == ""
    # top left: price in bp against alpha, one line per c_eff; bottom right: the cap against c_eff, one line per alpha
    by = {(r["market.alpha"], r["market.c_eff"]): r for r in sweep_rows}
    price_lines = {ln.get_label(): ln for ln in axes[0, 0].get_lines()}
    assert set(price_lines) == {"c_eff = 3", "c_eff = 4.5"}
    for c in (3.0, 4.5):
        ln = price_lines[f"c_eff = {c:g}"]
        np.testing.assert_allclose(ln.get_xdata(), [0.1, 0.2, 0.4])
        np.testing.assert_allclose(ln.get_ydata(), [1e4 * by[(a, c)]["price_of_manipulation_proofness"] for a in (0.1, 0.2, 0.4)], rtol=1e-12)
    cap_lines = {ln.get_label(): ln for ln in axes[1, 1].get_lines()}
    assert set(cap_lines) == {"alpha = 0.1", "alpha = 0.2", "alpha = 0.4"}
    np.testing.assert_allclose(cap_lines["alpha = 0.2"].get_ydata(), [2 / (0.2 * c) / SQRT_252 for c in (3.0, 4.5)], rtol=1e-12)
    # the benchmark (alpha 0.2, c_eff 4.5) costs 0.239 bp (examples: report J(g*) - J(M_fb) = 2.39e-5)
    assert 1e4 * by[(0.2, 4.5)]["price_of_manipulation_proofness"] == pytest.approx(0.239, abs=5e-4)


def test_sweep_figure_draws_a_line_that_does_not_depend_on_the_other_parameter_once(sweep_rows):
    """The cap does not depend on the carry: one line, said to be the same for every carry, not three hiding each other;
    and the x tick labels (4-decimal carries) never overlap."""
    rows = run_sweep(EXAMPLES / "benchmark.toml", ["market.alpha=0.1,0.2", "objective.carry=0.005,0.01,0.025"],
                     workers=0, progress=None)
    fig = _drawn(sweep_figure, rows)
    axes = np.asarray(fig.axes).reshape(2, 2)
    cap_lines = axes[1, 0].get_lines()
    assert [ln.get_label() for ln in cap_lines] == ["the same for every carry"]
    np.testing.assert_allclose(cap_lines[0].get_ydata(), [2 / (a * 4.5) / SQRT_252 for a in (0.1, 0.2)], rtol=1e-12)
    assert len(axes[0, 0].get_lines()) == 3          # the price does depend on the carry: a line each
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    with matplotlib.rc_context(RC):     # drawn as the PNG is written (the tick locator depends on the rc font sizes)
        renderer = FigureCanvasAgg(fig).get_renderer()
        fig.draw(renderer)
    for ax in fig.axes:
        lo, hi = ax.get_xlim()
        shown = [t for t in ax.get_xticklabels() if t.get_text() and lo <= t.get_position()[0] <= hi]
        boxes = [t.get_window_extent(renderer) for t in shown]
        # a visible gap (4 px at the figure's dpi) between neighbouring labels, not labels run together
        assert all(a.x1 + 4 <= b.x0 for a, b in zip(boxes, boxes[1:])), [t.get_text() for t in shown]


def test_sweep_writes_the_figure_beside_the_table(tmp_path, capsys):
    out = tmp_path / "sweep.csv"
    assert sweep_main(["sweep", str(EXAMPLES / "benchmark.toml"), "--vary", "market.alpha=0.1,0.2", "--workers", "0", "--out", str(out)]) == 0
    png = tmp_path / "sweep.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {png}" in capsys.readouterr().out
    assert sweep_main(["sweep", str(EXAMPLES / "benchmark.toml"), "--vary", "market.alpha=0.1,0.2", "--workers", "0",
                       "--out", str(tmp_path / "b.csv"), "--figure", "none"]) == 0
    assert not (tmp_path / "b.png").exists()
    code = sweep_main(["sweep", str(EXAMPLES / "benchmark.toml"), "--vary", "market.alpha=0.1,0.2", "--workers", "0",
                       "--out", str(tmp_path / "c.csv"), "--figure", str(tmp_path / "c.pdf")])
    assert code == 2 and "must end in .png" in capsys.readouterr().err
    assert not (tmp_path / "c.csv").exists()
    code = sweep_main(["sweep", str(EXAMPLES / "benchmark.toml"), "--vary", "market.alpha=0.1,0.2", "--workers", "0",
                       "--out", str(tmp_path / "d.png")])
    assert code == 2 and "default path of the sweep figure" in capsys.readouterr().err
    assert not (tmp_path / "d.png").exists()


def test_target_design_tables_and_captions_name_the_existing_schedule(reports):
    from margin_design.reports.appendix import figure_captions
    from margin_design.reports.table import UNITS, rule_table_json, rule_table_markdown

    cap, bench = reports["cap"], reports["bench"]
    md = rule_table_markdown(cap.table, cap.formulas)
    assert "Existing schedule (%)" in md and "Change from existing (pp)" in md and "First-best" not in md
    units = json.loads(rule_table_json(cap.table, {}))["units"]
    assert units["first_best"].startswith("the CCP's existing schedule")
    assert "First-best (%)" in rule_table_markdown(bench.table, bench.formulas)
    assert json.loads(rule_table_json(bench.table, {}))["units"] == UNITS
    captions = dict(figure_captions(cap))
    assert "existing schedule" in captions["schedule"] and not any("first-best" in c for c in captions.values())
    assert "first-best" in dict(figure_captions(bench))["schedule"]
    from margin_design.reports.appendix import report_latex, report_markdown

    for text in (report_markdown(cap), report_latex(cap)):
        assert "Existing schedule (bp)" in text and "First-best (bp)" not in text
    assert "First-best (bp)" in report_markdown(bench)


def test_sweep_figure_summarises_many_combinations_by_median_and_range():
    rows = run_sweep(EXAMPLES / "benchmark.toml", ["market.alpha=0.1,0.2,0.4", "market.c_eff=3,4.5,6", "objective.carry=0.005,0.01,0.02"],
                     workers=0, progress=None)
    fig = _drawn(sweep_figure, rows)
    axes = np.asarray(fig.axes).reshape(2, 3)
    ax = axes[0, 0]   # price against alpha; the other two parameters give 9 > MAX_LINES combinations
    median = _line(ax, "median")
    price = {a: [1e4 * r["price_of_manipulation_proofness"] for r in rows if r["market.alpha"] == a] for a in (0.1, 0.2, 0.4)}
    np.testing.assert_allclose(median.get_ydata(), [np.median(price[a]) for a in (0.1, 0.2, 0.4)], rtol=1e-12)
    assert any(c.get_label().startswith("min-max over 9 combinations") for c in ax.collections)
    assert "carry cost" in axes[1, 2].get_xlabel()
