"""``margin-design diff``: what changes between a rule in force (OLD) and a proposed rule (NEW), for a committee.

    d = build_diff("out/2026/rule_table.json", "out/2027/rule_table.json", market="examples/liquidation.toml")
    write_diff(d, "out/diff")            # diff.md, diff.html, diff.csv, diff.json, figures/diff.png, figures/diff.pdf

OLD and NEW are anything :func:`~margin_design.audit.load_rule` reads (schedule.json, rule_table.csv /
.json, step tables, a ``vol,margin`` CSV, a TOML rule file, a report or solve folder, a formula in r or sigma). The
comparison core is :func:`~margin_design.audit.diff.compare_rules`; this module chooses the points and the
cap, adds the design cost with a design config, and renders the result.

Points (annualised vol, percentage points): ``vols`` parsed by :func:`~margin_design.reports.vol_points.parse_vol_points`;
by default the union of the rows the rule tables among the inputs publish, else 1-point steps across the range both
rules cover (the ``market`` config's grid when both are formulas). The output says which.

Cap: the manipulation-proof slope cap K (16)-(18) of the ``market`` config, else the cap a schedule.json or rule table
states (NEW's if both state one), else none and the output says the cap was not checked.

Design cost (with ``market``): J (30)-(32), the design objective of :meth:`~margin_design.design.problem.Problem.value`
evaluated on the config's grid for each rule, beside J(g*) and J(M_fb) of the config's capped optimum and first-best
(the price of manipulation-proofness J(g*) - J(M_fb)); and, when OLD and NEW are schedule.json files, the price each
stored for its own config.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import numpy as np

from margin_design.jsonable import jsonable
from margin_design.audit.diff import (SQRT_252, RuleComparison, common_range, compare_rules, covered_range, published_vols,
                                                 reading_beyond_rows)
from margin_design.audit.rules import Rule, load_rule
from margin_design.errors import InputError
from margin_design.fileio import check_output_folder, write_tree
from margin_design.reports.html import markdown_escape
from margin_design.reports.table import csv_text, markdown_table
from margin_design.reports.vol_points import parse_vol_points

__all__ = ["DIFF_FILES", "TITLE", "diff_html", "CSV_COLUMNS", "UNITS", "Diff", "build_diff", "headline", "pct_label", "choose_points", "diff_document", "diff_files", "check_diff_folder",
           "write_diff", "changelog_markdown", "changelog_latex", "changelog_dict", "comparison_table_markdown"]

FIGURE = "figures/diff.png"
DIFF_FILES = ("diff.md", "diff.html", "diff.csv", "diff.json", "figures/diff.png", "figures/diff.pdf")
#: Title of diff.md / diff.html.
TITLE = "Rule comparison"
#: Hex digits of a rule ID printed in human text (the full sha256 is in diff.json), as the report prints it.
SHORT_ID = 12
CSV_COLUMNS = ("vol_annual_pct", "vol_daily", "margin_old", "margin_new", "change", "slope_old_vol_annual", "slope_new_vol_annual",
               "old_extrapolated", "new_extrapolated")
UNITS = {
    "vol_annual_pct": "annualised volatility, percentage points (100 * sqrt(252) * vol_daily), as published or typed",
    "vol_daily": "daily volatility, decimal",
    "margin_old": "margin ratio of OLD (per unit notional), decimal",
    "margin_new": "margin ratio of NEW (per unit notional), decimal",
    "change": "margin_new - margin_old, decimal margin ratio (0.0025 = 0.25 percentage points of notional)",
    "slope_old_vol_annual": "right slope of OLD, d margin / d vol_annual (margin ratio per unit annualised vol)",
    "slope_new_vol_annual": "right slope of NEW, same units",
    "old_extrapolated": "true where the point lies outside OLD's table rows (read there as old.extrapolation says)",
    "new_extrapolated": "true where the point lies outside NEW's table rows (read there as new.extrapolation says)",
}
#: Most points a default 1-point range may have before the output would be unreadable (a range in decimals, say).
MAX_DEFAULT_POINTS = 2000


@dataclass(frozen=True, eq=False)
class Diff:
    """A comparison of OLD and NEW with how its points and cap were chosen and, with a design config, the design cost."""

    comparison: RuleComparison = field(repr=False)
    old_spec: str
    new_spec: str
    points_how: str
    market: str | None
    costs: dict | None = field(repr=False)
    warnings: tuple = ()

    @property
    def old(self) -> Rule:
        return self.comparison.old

    @property
    def new(self) -> Rule:
        return self.comparison.new

    def to_dict(self, points: bool = True) -> dict:
        """The machine-readable summary (``diff.json``; without the per-point rows for ``--json`` when ``points`` is False)."""
        c = self.comparison
        out = {
            "old": _rule_dict(self.old, self.old_spec),
            "new": _rule_dict(self.new, self.new_spec),
            "points": {"how": self.points_how, "count": int(c.vol_daily.size), "vol_annual_pct": list(c.labels)},
            "range": {"vol_daily_from": c.vol_lo, "vol_daily_to": c.vol_hi},
            "extrapolation": {"old": reading_beyond_rows(self.old), "new": reading_beyond_rows(self.new),
                              "note": "how each table rule is read beyond its first and last row (null: a formula, defined everywhere)"},
            "largest_increase": c.largest_increase,
            "largest_decrease": c.largest_decrease,
            "largest_anywhere_in_range": c.anywhere,
            "cap": {
                "checked": c.cap_vol is not None,
                "source": c.cap_source,
                "cap_vol": None if c.cap_vol is None or not math.isfinite(c.cap_vol) else c.cap_vol,
                "cap_vol_annual": None if c.cap_vol is None or not math.isfinite(c.cap_vol) else c.cap_vol / SQRT_252,
                "uncapped": c.cap_vol is not None and not math.isfinite(c.cap_vol),
                "breaks": c.breaks,
            },
            "jumps": c.jumps,
            "design_cost": self.costs,
            "units": dict(UNITS, cap_vol="slope cap K on d margin / d vol_daily (margin ratio per unit daily vol)",
                          design_cost="J: expected cost per unit notional (30)-(32) on the --market config's grid"),
            "warnings": list(self.warnings),
        }
        if points:
            out["rows"] = c.rows()
        return _clean(out)

    def summary(self) -> str:
        """A few lines for the console."""
        c = self.comparison
        lines = [f"diff: OLD {_describe(self.old)}", f"      NEW {_describe(self.new)}",
                 f"  {c.vol_daily.size} point(s): {self.points_how}"]
        lines += ["  " + s for s in headline(c)]
        lines.append("  " + _cap_sentence(c))
        for which in ("old", "new"):
            if c.jumps[which]:
                lines.append(f"  {which.upper()} jumps at {len(c.jumps[which])} vol(s), up to {_pp(max(abs(j['jump']) for j in c.jumps[which]))} "
                             "margin points (threshold-crossing gains, Section 6.6)")
        if self.costs is not None:
            k = self.costs
            lines.append(f"  design cost on {k['config']}: J(OLD) = {k['old']['J']:.6g}, J(NEW) = {k['new']['J']:.6g}, "
                         f"change {k['change_J']:+.4g}; price of manipulation-proofness J(g*) - J(M_fb) = {k['price_of_manipulation_proofness']:.4g}")
        return "\n".join(lines)


# ---------------------------------------------------------------------- building


def _describe(rule: Rule) -> str:
    info = rule.info
    kind = info.kind if info is not None else "rule"
    ident = f", rule ID {info.rule_id[:SHORT_ID]}" if info is not None and info.rule_id else ""
    label = f", version {info.version_label}" if info is not None and info.version_label else ""
    return f"{rule.name} ({kind}{ident}{label}): {rule.describe()}"


def _rule_dict(rule: Rule, spec: str) -> dict:
    info = rule.info
    return {
        "spec": spec, "name": rule.name, "kind": info.kind if info else None, "description": rule.describe(),
        "rule_id": info.rule_id if info else None, "version_label": info.version_label if info else None,
        "published_points": None if published_vols(rule) is None else int(published_vols(rule).size),
        "extrapolation": reading_beyond_rows(rule),
        "cap_vol_stated": None if info is None or info.cap_vol is None or not math.isfinite(info.cap_vol) else info.cap_vol,
    }


def pct_label(x: float) -> str:  # noqa: D401
    """An annualised vol in percentage points as text: 10 significant digits, no trailing zeros."""
    return format(Decimal(f"{x:.10g}").normalize(), "f")


def choose_points(old: Rule, new: Rule, vols: str | None, grid_range: tuple[float, float] | None):
    """(daily vols, labels, how, range): the points of the comparison and the daily-vol range it covers."""
    rng = common_range(old, new) or grid_range
    if vols is not None:
        pts = parse_vol_points(vols, flag="--vols")
        v = pts.daily
        how = f"--vols {vols} (annualised percentage points)"
        return v, tuple(pts.labels()), how, rng
    pubs = [(w, p) for w, p in (("OLD", published_vols(old)), ("NEW", published_vols(new))) if p is not None]
    if pubs:
        v = np.unique(np.concatenate([p for _, p in pubs]))
        names = " and ".join(w for w, _ in pubs)
        how = f"the published points of {names} ({'union' if len(pubs) == 2 else 'its rows'})"
        return v, tuple(pct_label(100.0 * SQRT_252 * x) for x in v), how, rng
    if rng is None:
        raise InputError("OLD and NEW are both formulas, which cover every vol; give --vols (annualised percentage points, "
                         "e.g. 8:60:1) or --market (a design config whose grid sets the range).")
    lo_pct, hi_pct = 100.0 * SQRT_252 * rng[0], 100.0 * SQRT_252 * rng[1]
    a, b = math.ceil(lo_pct - 1e-9), math.floor(hi_pct + 1e-9)
    if a > b:
        raise InputError(f"the range both rules cover, {lo_pct:.4g}% to {hi_pct:.4g}% annualised, holds no whole percentage point; "
                         "give --vols (annualised percentage points).")
    if b - a + 1 > MAX_DEFAULT_POINTS:
        raise InputError(f"the range both rules cover, {lo_pct:.4g}% to {hi_pct:.4g}% annualised, has more than {MAX_DEFAULT_POINTS} "
                         "whole percentage points; give --vols (annualised percentage points).")
    pts = parse_vol_points(f"{a}:{b}:1", flag="the default points")
    how = f"1-point annualised steps from {a}% to {b}% across the range both rules cover (no published points among the inputs)"
    return pts.daily, tuple(pts.labels()), how, rng


def _cap(old: Rule, new: Rule, problem) -> tuple[float | None, str]:
    if problem is not None:
        return float(problem.cap.slope_vol), "the --market config's cap"
    for which, rule in (("NEW", new), ("OLD", old)):
        if rule.info is not None and rule.info.cap_vol is not None:
            return float(rule.info.cap_vol), f"the cap stated by {which} ({rule.info.kind})"
    return None, "no --market config and no cap stated by a schedule.json or rule table"


def _costs(old: Rule, new: Rule, problem, config: str, method: str) -> dict:
    """J of each rule on the config's grid (the one design objective), with J(g*) and J(M_fb) of the config."""
    from margin_design.audit.updates import solve_design

    r = problem.r
    j_old, j_new = problem.value(old.margin(r)), problem.value(new.margin(r))
    sched = solve_design(problem, method=method)   # [cap] updates = T: g* under the scaled cap
    j_star, j_fb = float(sched.objective["value"]), float(sched.objective["first_best_value"])
    price = j_star - j_fb

    def one(j):
        return {"J": j, "above_first_best": j - j_fb, "above_capped_optimum": j - j_star,
                "above_capped_optimum_per_price": (j - j_star) / price if price > 0 else None}

    out = {"config": Path(config).name, "grid_points": int(problem.n), "J_capped_optimum": j_star, "J_first_best": j_fb,
           "price_of_manipulation_proofness": price, "old": one(j_old), "new": one(j_new), "change_J": j_new - j_old}
    stored = [rule.info.objective if rule.info is not None else None for rule in (old, new)]
    if all(s is not None for s in stored):
        po, pn = (s["value"] - s["first_best_value"] for s in stored)
        out["stored_price_of_manipulation_proofness"] = {"old": po, "new": pn, "change": pn - po}
    return out


def build_diff(old_spec: str, new_spec: str, *, market: str | None = None, vols: str | None = None, method: str = "exact",
               old_rule: Rule | None = None, new_rule: Rule | None = None) -> Diff:
    """Compare OLD and NEW (specs for :func:`load_rule`, or rules already loaded); see the module docstring."""
    old = old_rule or load_rule(old_spec)
    new = new_rule or load_rule(new_spec)
    problem = None
    if market is not None:
        from margin_design.design import load_problem

        problem = load_problem(market)
    grid_range = None if problem is None else (float(problem.vol[0]), float(problem.vol[-1]))
    if vols is not None:
        parse_vol_points(vols, flag="--vols")  # a bad --vols is refused before anything is solved
    v, labels, how, rng = choose_points(old, new, vols, grid_range)
    cap, cap_source = _cap(old, new, problem)
    comp = compare_rules(old, new, v, labels, vol_range=rng, cap_vol=cap, cap_source=cap_source)
    warnings = []
    for which in ("old", "new"):
        n = int(comp.extrapolated(which).sum())
        if n:
            warnings.append(f"{n} point(s) lie outside {which.upper()}'s table rows, where it is read "
                            f"{reading_beyond_rows(comp.old if which == 'old' else comp.new)}.")
    costs = _costs(old, new, problem, market, method) if problem is not None else None
    return Diff(comparison=comp, old_spec=str(old_spec), new_spec=str(new_spec), points_how=how, market=market, costs=costs,
                warnings=tuple(warnings))


# ---------------------------------------------------------------------- text


def _show(x) -> str:
    """An annualised vol (percentage points, number or text) for people: at most 2 decimals, no trailing zeros."""
    return f"{float(x):.2f}".rstrip("0").rstrip(".")


def _pp(x: float) -> str:
    """A margin ratio as percentage points of notional, 4 decimals."""
    return f"{100.0 * x:.4f}"


def _bp(x: float, sign: bool = False) -> str:
    """An objective value (per unit notional) in basis points of notional, 4 decimals."""
    return f"{1e4 * x:{'+' if sign else ''}.4f}"


def _change(x: float) -> str:
    """A change of margin ratio in margin points, signed, 4 decimals ("0.0000" for no change)."""
    t = f"{100.0 * x:+.4f}"
    return "0.0000" if t in ("+0.0000", "-0.0000") else t


def _point_text(p: dict, verb: str) -> str:
    beyond = [w for w in ("OLD", "NEW") if p.get(f"{w.lower()}_extrapolated")]
    where = f", beyond {' and '.join(beyond)}'s table rows" if beyond else ""
    return (f"largest {verb}: {100.0 * p['change']:+.4f} margin points at {_show(p['vol_annual_pct'])}% annualised vol "
            f"({_pp(p['margin_old'])}% -> {_pp(p['margin_new'])}% of notional{where})")


def headline(c: RuleComparison) -> list[str]:
    """Two sentences: the largest increase and the largest decrease at the points (or that none rises / falls)."""
    inc, dec = c.largest_increase, c.largest_decrease
    return [_point_text(inc, "increase") if inc else "no point rises",
            _point_text(dec, "decrease") if dec else "no point falls"]


def _break_text(x: dict) -> str:
    """A range where a rule breaks the cap, in annualised percentage points ("a jump at" when it is a jump alone)."""
    a, b = x["vol_annual_pct_from"], x["vol_annual_pct_to"]
    if x["jump"] and b - a < 0.05:
        return f"a jump at {b:.2f}%"
    return f"{a:.2f}-{b:.2f}%" + (" (with a jump)" if x["jump"] else "")


def _cap_sentence(c: RuleComparison) -> str:
    if c.cap_vol is None:
        return f"cap not checked ({c.cap_source}); give --market CONFIG to check it"
    if not math.isfinite(c.cap_vol):
        return f"no slope cap applies ({c.cap_source}: uncapped)"
    parts = []
    for which in ("old", "new"):
        b = c.breaks[which]
        if not b:
            parts.append(f"{which.upper()} within the cap")
        else:
            where = ", ".join(_break_text(x) for x in b[:5])
            more = f" and {len(b) - 5} more" if len(b) > 5 else ""
            parts.append(f"{which.upper()} breaks it at {where}{more} annualised")
    return (f"manipulation-proof cap (16)-(18) {c.cap_vol / SQRT_252:.4f} margin points per point of annualised vol ({c.cap_source}): "
            + "; ".join(parts))


def comparison_table_markdown(c: RuleComparison, old_head: str = "Old margin (%)", new_head: str = "New margin (%)") -> str:
    """The per-point table (percent of notional; change in margin points), Markdown."""
    rows = []
    xo, xn = c.extrapolated("old"), c.extrapolated("new")
    for i in range(c.vol_daily.size):
        mark = ("*" if xo[i] else "") + ("†" if xn[i] else "")
        rows.append([_show(c.labels[i]) + mark, f"{100 * c.vol_daily[i]:.4f}", _pp(c.margin_old[i]), _pp(c.margin_new[i]),
                     _change(c.margin_new[i] - c.margin_old[i])])
    text = markdown_table(["Annual vol (%)", "Daily vol (%)", old_head, new_head, "Change (margin points)"], rows,
                          ["---:"] * 5)
    notes = ([rf"\* outside OLD's table rows, where OLD is read {reading_beyond_rows(c.old)}"] if xo.any() else []) + (
        [f"† outside NEW's table rows, where NEW is read {reading_beyond_rows(c.new)}"] if xn.any() else [])
    if notes:
        text += "\n" + "; ".join(notes) + ".\n"
    return text


def _rule_line(rule: Rule, spec: str) -> str:
    """A rule for a Markdown page: its description and the file it was read from (user text, escaped)."""
    where = f" Read from {spec}." if rule.info is not None and rule.info.path else ""
    return markdown_escape(_describe(rule) + "." + where)


def _beyond_sentence(d: Diff) -> str:
    """How each table rule is read beyond its first and last row (the reading its file states), one sentence."""
    readings = {w: reading_beyond_rows(r) for w, r in (("OLD", d.old), ("NEW", d.new)) if reading_beyond_rows(r) is not None}
    if not readings:
        return "both rules are formulas, defined at every vol."
    if len(readings) == 2 and readings["OLD"] == readings["NEW"]:
        return f"beyond its rows, each is read {readings['OLD']}."
    return "beyond its rows, " + "; ".join(f"{w} is read {t}" for w, t in readings.items()) + "."


def diff_markdown(d: Diff, figure: str | None = FIGURE) -> str:
    c = d.comparison
    out = [f"# {TITLE}\n",
           f"- **OLD** (the rule in force): {_rule_line(d.old, d.old_spec)}", f"- **NEW** (the proposed rule): {_rule_line(d.new, d.new_spec)}",
           f"- **Points** ({c.vol_daily.size} points): {d.points_how}. Between the rows of a table the rule is read linearly in vol "
           f"(a step table as steps); {_beyond_sentence(d)}",
           "- Margins are percent of notional; changes are margin points (percentage points of notional), NEW minus OLD.\n",
           "## Summary\n"]
    out += [f"- {s[0].upper()}{s[1:]}." for s in headline(c)]
    a = c.anywhere
    for key, verb in (("largest_increase", "rise"), ("largest_decrease", "fall")):
        p = a[key]
        if p is not None:
            out.append(f"- Largest {verb} anywhere between {100 * SQRT_252 * c.vol_lo:.2f}% and {100 * SQRT_252 * c.vol_hi:.2f}% annualised: "
                       f"{100 * p['change']:+.4f} margin points at {p['vol_annual_pct']:.2f}%.")
    out.append(f"- {_cap_sentence(c)[0].upper()}{_cap_sentence(c)[1:]}.")
    for which in ("old", "new"):
        js = c.jumps[which]
        if js:
            items = "; ".join(f"{j['vol_annual_pct']:.2f}% ({_pp(j['margin_below'])}% -> {_pp(j['margin_above'])}%)" for j in js[:8])
            out.append(f"- {which.upper()} jumps at {len(js)} vol(s): {items}{' ...' if len(js) > 8 else ''}; every jump can be harvested "
                       "by crossing its threshold (Section 6.6).")
        else:
            out.append(f"- {which.upper()} has no jump in the range.")
    for w in d.warnings:
        out.append(f"- Note: {w}")
    if d.costs is not None:
        k = d.costs
        out += ["", f"## Design cost on {markdown_escape(k['config'])} ({k['grid_points']} states)\n",
                "J is the expected cost, (30)-(32), of each rule on the config's grid, in basis points of notional; g* is the "
                "config's capped optimum and M_fb its first-best, so J(g*) - J(M_fb) is the price of manipulation-proofness. "
                "The last column is a rule's cost above g* in units of that price.\n"]
        rows = [[name, _bp(v["J"]), _bp(v["above_first_best"], sign=True), _bp(v["above_capped_optimum"], sign=True),
                 "" if v["above_capped_optimum_per_price"] is None else f"{v['above_capped_optimum_per_price']:.3g}"]
                for name, v in (("OLD", k["old"]), ("NEW", k["new"]))]
        out.append(markdown_table(["Rule", "J (bp)", "J - J(M_fb) (bp)", "J - J(g*) (bp)", "(J - J(g*)) / price"], rows,
                                  [":---"] + ["---:"] * 4))
        out.append(f"Change in J, NEW - OLD: {_bp(k['change_J'], sign=True)} bp of notional. J(g*) = {_bp(k['J_capped_optimum'])} bp, "
                   f"J(M_fb) = {_bp(k['J_first_best'])} bp, price of manipulation-proofness {_bp(k['price_of_manipulation_proofness'])} bp.")
        cheap = [name for name, v in (("OLD", k["old"]), ("NEW", k["new"])) if v["above_capped_optimum"] < 0]
        if cheap:
            out.append(f"\n{' and '.join(cheap)} cost{'s' if len(cheap) == 1 else ''} less than g*: only a rule steeper than the cap "
                       "somewhere can, and J does not count what manipulating it costs the CCP (see the cap line above); a lower J "
                       "is not a better rule here.")
        s = k.get("stored_price_of_manipulation_proofness")
        if s is not None:
            out.append(f"\nEach schedule.json's own price of manipulation-proofness (on its own config): OLD {_bp(s['old'])} bp, "
                       f"NEW {_bp(s['new'])} bp, change {_bp(s['change'], sign=True)} bp.")
    if figure is not None:
        out += ["", "## Figure\n", f"![OLD and NEW margin rules and their difference]({figure})"]
    out += ["", "## Change at each point\n", comparison_table_markdown(c)]
    return "\n".join(out).rstrip("\n") + "\n"


# ---------------------------------------------------------------------- the figure


def _legend_name(rule: Rule) -> str:
    """A rule's name for a legend: a formula by its text (shortened), a table by its name."""
    text = getattr(rule.base, "text", None)
    if text is not None and rule.name == "formula rule":
        return "M = " + (text if len(text) <= 40 else text[:37] + "...")
    path = Path(rule.info.path) if rule.info is not None and rule.info.path else None
    if path is not None and rule.name == path.stem and path.parent.name:   # two rule_table.json files: name their folders
        return f"{path.parent.name}/{path.name}"
    return rule.name


def diff_figure(d: Diff):
    """Both rules (percent of notional) over annualised vol, the published points marked and cap breaks shaded, and
    their difference NEW - OLD in margin points beneath."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import PercentFormatter

    from margin_design.reports.figures import LINE

    c = d.comparison
    lo, hi = c.vol_lo, c.vol_hi
    at_jumps = [j["vol_daily"] for w in ("old", "new") for j in c.jumps[w]]
    v = np.unique(np.concatenate([np.linspace(lo, hi, 1201), c.vol_daily, at_jumps]))
    r = v**2
    mo, mn = c.old.margin(r), c.new.margin(r)
    va = 100 * SQRT_252 * v
    pa = c.vol_annual_pct
    fig = Figure(figsize=(7.0, 6.2))
    ax, ax2 = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    for rule, m, style in ((c.old, mo, dict(color="#777777", lw=2.2, ls="--")), (c.new, mn, dict(color=LINE["rule"], lw=1.6))):
        which = "OLD" if rule is c.old else "NEW"
        cov = covered_range(rule)
        inside = np.ones(v.size, bool) if cov is None else (v >= cov[0]) & (v <= cov[1])
        ax.plot(va, np.where(inside, 100 * m, np.nan), label=f"{which}: {_legend_name(rule)}", **style)
        if not inside.all():  # beyond a table's rows: read as the table states (reading_beyond_rows), drawn dotted
            below, above = v <= cov[0], v >= cov[1]
            label = f"{which} beyond its rows ({'flat below, last slope above' if rule.base.extrapolation == 'published' else 'flat'})"
            for part in (below, above):
                if part.sum() > 1:
                    ax.plot(va[part], 100 * m[part], color=style["color"], lw=1.2, ls=":", label=label)
                    label = None
    ax.plot(pa, 100 * c.margin_old, ls="none", marker="o", ms=3.5, mfc="white", mec="#777777")
    ax.plot(pa, 100 * c.margin_new, ls="none", marker="o", ms=3, color=LINE["rule"], label="comparison points")
    # where a rule's slope is above the cap: a broad translucent band under its line (a jump: a triangle at its top)
    for which, m, color in (("old", mo, "#fdae61"), ("new", mn, "#d73027")):
        label, jump_label = f"{which.upper()} steeper than the cap", f"{which.upper()} jumps (steeper than any cap)"
        for b in c.breaks[which]:
            inside = (v >= b["vol_daily_from"]) & (v <= b["vol_daily_to"])
            if b["jump"] and b["vol_annual_pct_to"] - b["vol_annual_pct_from"] < 0.05:
                x = b["vol_annual_pct_to"]
                ax.plot([x], [100 * float(c.old.margin(np.array([b["vol_daily_to"] ** 2]))[0] if which == "old" else
                              c.new.margin(np.array([b["vol_daily_to"] ** 2]))[0])],
                        ls="none", marker="^", ms=7, color=color, alpha=0.9, label=jump_label, zorder=1)
                jump_label = None
            else:
                ax.plot(va[inside], 100 * m[inside], color=color, lw=7, alpha=0.35, solid_capstyle="butt", label=label, zorder=1)
                label = None
    ax.set_ylabel("margin (% of notional)")
    ax.yaxis.set_major_formatter(PercentFormatter(decimals=1))
    ax.set_title("Margin rules OLD and NEW" + ("" if c.cap_vol is not None else " (cap not checked)"))
    ax.legend(loc="upper left", frameon=False)
    ch = 100 * (mn - mo)
    ax2.axhline(0.0, color="black", lw=0.8)
    ax2.fill_between(va, 0, ch, where=ch >= 0, interpolate=True, color="#d73027", alpha=0.25, lw=0, label="NEW higher")
    ax2.fill_between(va, 0, ch, where=ch < 0, interpolate=True, color="#4575b4", alpha=0.25, lw=0, label="NEW lower")
    ax2.plot(va, ch, color="black", lw=1.0)
    ax2.plot(pa, 100 * c.change, ls="none", marker="o", ms=3, color="black")
    ax2.margins(y=0.35)
    mid = 0.5 * (va[0] + va[-1])
    for p, txt in ((c.largest_increase, "largest increase"), (c.largest_decrease, "largest decrease")):
        if p is not None:
            x = 100 * SQRT_252 * p["vol_daily"]
            right = x > mid
            ax2.annotate(f"{txt}\n{100 * p['change']:+.3f} pts at {_show(p['vol_annual_pct'])}%", (x, 100 * p["change"]),
                         textcoords="offset points", xytext=(-6 if right else 6, 6 if p["change"] > 0 else -6), fontsize=7,
                         ha="right" if right else "left", va="bottom" if p["change"] > 0 else "top")
    ax2.set_ylabel("NEW - OLD (margin points)")
    ax2.set_xlabel("annualised volatility (%)")
    ax2.legend(loc="best", frameon=False)
    fig.align_ylabels([ax, ax2])
    fig.tight_layout()
    return fig


def diff_document(d: Diff, figure_dir: str = "figures") -> tuple[str, dict[str, bytes]]:
    """The Markdown page (ending with the paper's full reference and the equation numbers it uses,
    :func:`~margin_design.reports.citation.markdown_references`) and its figures ({relative path: bytes}): one call for
    diff.md and diff.html."""
    from margin_design.reports.citation import markdown_references

    import matplotlib

    from margin_design.reports.figures import DPI, PDF_METADATA, PNG_METADATA, RC

    png, pdf = f"{figure_dir}/diff.png", f"{figure_dir}/diff.pdf"
    with matplotlib.rc_context(RC):
        fig = diff_figure(d)
        buf_png, buf_pdf = io.BytesIO(), io.BytesIO()
        fig.savefig(buf_png, format="png", dpi=DPI, metadata=PNG_METADATA)
        fig.savefig(buf_pdf, format="pdf", metadata=PDF_METADATA)
    md = diff_markdown(d, png)
    return md + markdown_references(md), {png: buf_png.getvalue(), pdf: buf_pdf.getvalue()}


def diff_html(markdown_text: str, figures: dict[str, bytes]) -> str:
    """``diff.html``: ``diff.md`` with its figure embedded, self-contained (:func:`~margin_design.reports.html.write_html_document`)."""
    from margin_design.reports.html import write_html_document

    return write_html_document(markdown_text, TITLE, {k: v for k, v in figures.items() if k.endswith(".png")})


def diff_files(d: Diff) -> dict[str, bytes]:
    """Every file of the diff folder as {relative path: bytes}."""
    md, figs = diff_document(d)
    out = {"diff.md": md.encode("utf-8"), "diff.html": diff_html(md, figs).encode("utf-8"), "diff.csv": csv_text(d.comparison.rows(), CSV_COLUMNS).encode("utf-8"),
           "diff.json": (json.dumps(d.to_dict(), indent=2, allow_nan=False) + "\n").encode("utf-8")}
    out.update(figs)
    return dict(sorted(out.items()))


def check_diff_folder(folder: str | Path, inputs=()) -> Path:
    """Refuse (OutputError) an ``--out`` the diff may not write (:mod:`margin_design.fileio`), before any work."""
    return check_output_folder(folder, owned=DIFF_FILES, inputs=inputs)


def write_diff(d: Diff, folder: str | Path) -> Path:
    """Write the diff folder atomically (it appears whole or not at all)."""
    return write_tree(folder, diff_files(d), owned=DIFF_FILES)


# ---------------------------------------------------------------------- the report's change log


def changelog_dict(c: RuleComparison) -> dict:
    """The change log in JSON-ready form (``parameters.json``)."""
    return _clean({
        "previous": _rule_dict(c.old, c.old.info.path if c.old.info and c.old.info.path else c.old.name),
        "rule_id_previous": c.old.info.rule_id if c.old.info else None,
        "largest_increase": c.largest_increase, "largest_decrease": c.largest_decrease,
        "rows": c.rows(),
    })


def changelog_markdown(c: RuleComparison, new_id: str | None = None) -> str:
    """A "Change log" section: rule IDs old/new, the change at each published point, largest increase and decrease."""
    old_id = c.old.info.rule_id if c.old.info is not None else None
    lines = ["## Change log\n",
             f"Previous rule: {markdown_escape(_describe(c.old))}.",
             f"Rule ID: previous {old_id or 'not stated'}, this rule {new_id or 'not stated'}.",
             f"Changes are margin points (percentage points of notional), this rule minus the previous one, at the published points; "
             + (f"beyond its rows the previous rule is read {reading_beyond_rows(c.old)}.\n" if reading_beyond_rows(c.old) else
                "the previous rule is a formula.\n")]
    lines += [f"- {s[0].upper()}{s[1:]}." for s in headline(c)]
    lines += ["", comparison_table_markdown(c, "Previous (%)", "This rule (%)")]
    return "\n".join(lines).rstrip("\n") + "\n"


def changelog_latex(c: RuleComparison, new_id: str | None = None) -> str:
    """The change log as a LaTeX section (booktabs table)."""
    from margin_design.reports.table import latex_escape, latex_tabular

    old_id = c.old.info.rule_id if c.old.info is not None else None
    rows = [[_show(c.labels[i]), f"{_pp(c.margin_old[i])}", f"{_pp(c.margin_new[i])}", _change(c.margin_new[i] - c.margin_old[i])]
            for i in range(c.vol_daily.size)]
    head = [latex_escape((s[0].upper() + s[1:]).replace(" -> ", " to ")) + "." for s in headline(c)]
    return "".join([
        "\\section*{Change log}\n",
        latex_escape(f"Previous rule: {_describe(c.old)}. Rule ID: previous {old_id or 'not stated'}, this rule {new_id or 'not stated'}. "
                     "Changes are margin points (percentage points of notional), this rule minus the previous one."), "\n\n",
        " ".join(head), "\n\n",
        "\\begin{center}\n\\small\n",
        latex_tabular(["Annual vol (%)", "Previous (%)", "This rule (%)", "Change (points)"], rows, "rrrr"),
        "\\end{center}\n",
    ])


_clean = jsonable  # one JSON converter (margin_design.jsonable)
