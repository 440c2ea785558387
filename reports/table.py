"""The canonical rule table: built once from the result, then rendered (CSV, JSON, Markdown, LaTeX).

One row per knot of the published rule. Machine-readable files use decimals and unit-named columns
(:data:`COLUMNS`, :data:`UNITS`); human-readable renderings use percent. Between knots the rule is linear
in volatility (daily or annualised: one is sqrt(252) times the other). ``regime`` and
``slope_vol_annual`` describe the stretch from a knot to the next one (empty on the last knot).

Machine-readable numbers carry :data:`SIGNIFICANT_DIGITS` significant digits; reading them back reproduces
the schedule to that precision.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass

import numpy as np

from margin_design.reports.html import markdown_escape
from margin_design.reports.rule_data import SQRT_252, RuleData

SIGNIFICANT_DIGITS = 12

COLUMNS = (
    "vol_daily", "vol_annual", "variance", "margin", "first_best", "regime", "slope_vol_annual", "cap_vol_annual",
    "gap_to_first_best", "margin_optimal", "rounding_error", "grid_index", "rule_id", "version_label", "extrapolation",
)
UNITS = {
    "vol_daily": "daily volatility, decimal",
    "vol_annual": "annualised volatility sqrt(252) * vol_daily, decimal",
    "variance": "variance of daily returns r = vol_daily^2",
    "margin": "published margin ratio (per unit notional), decimal; rounded when a tick is given",
    "first_best": "first-best margin ratio M_fb (34), decimal",
    "regime": "tracking / saturated / pooling / floor (M = 0): regime of the stretch from this knot to the next",
    "slope_vol_annual": "slope used to the next knot, Delta margin / Delta vol_annual (margin ratio per unit annualised vol)",
    "cap_vol_annual": "cap on dm/dsigma_ann = K / sqrt(252), (74), same units as slope_vol_annual",
    "gap_to_first_best": "margin - first_best, decimal margin ratio",
    "margin_optimal": "optimal (unrounded) schedule at the knot, decimal margin ratio",
    "rounding_error": "margin - margin_optimal, decimal margin ratio",
    "grid_index": "index of the knot on the solver's grid (0-based); empty for a published vol point between grid points",
    "rule_id": "sha256 of the published rule (points, margins, tick, interpolation, extrapolation) and its parameters",
    "version_label": "free-text version label given with --version-label (data, not part of the rule ID)",
    "extrapolation": "first row: the rule below the first point; last row: the rule above the last point",
}

#: :data:`UNITS` for a portfolio design: the risk input is the variance of the margined portfolio's daily return and
#: the cap is (88) (Nicolai 2026, Appendix D.5).
PORTFOLIO_UNITS = dict(
    UNITS,
    vol_daily="daily volatility of the margined portfolio's return, decimal",
    vol_annual="annualised portfolio volatility sqrt(252) * vol_daily, decimal",
    variance="variance of the portfolio's daily return r = vol_daily^2 (the risk input)",
    cap_vol_annual="portfolio cap (88) on dm/dsigma_ann = K / sqrt(252), (74), same units as slope_vol_annual",
)

#: :data:`UNITS` for a target design (``objective.kind = "target"``): its first-best is the CCP's existing schedule.
TARGET_UNITS = dict(
    UNITS,
    first_best="the CCP's existing schedule t (target column of objective.file; the first-best of a target design, Appendix D.2), "
    "decimal margin ratio",
    gap_to_first_best="margin - first_best: the change from the existing schedule, decimal margin ratio",
)
#: Human headers renamed for a target design.
TARGET_HEADERS = {"first_best": "Existing schedule (%)", "gap_to_first_best": "Change from existing (pp)"}


def fixed(x: float) -> float:
    """``x`` rounded to SIGNIFICANT_DIGITS significant digits (the printed precision)."""
    return float(f"{x:.{SIGNIFICANT_DIGITS}g}")


@dataclass(frozen=True)
class RuleTable:
    """Rows (dicts keyed by :data:`COLUMNS`, values already at printed precision) and a caption."""

    rows: tuple
    caption: str
    rounded: bool
    caption_latex: str = ""
    units: dict | None = None   # column units; None: :data:`UNITS` (a portfolio design names the portfolio's vol and (88))
    rule: dict | None = None    # the published rule's ID, label, status, extrapolation, checks and cost (PublishedRule.to_dict + status)

    @property
    def status(self) -> str:
        """"published rule" or what the table is instead (e.g. "knot interpolation (not published)")."""
        return (self.rule or {}).get("status", "published rule")

    def column(self, name: str) -> list:
        return [row[name] for row in self.rows]


def caption_text(data: RuleData, tick: float | None, latex: bool = False) -> str:
    """The table caption (plain text; with ``latex`` the cap is typeset as math and the rest escaped)."""
    K = data.slope_vol_annual
    if latex:
        return latex_escape(caption_text(data, tick)).replace(
            latex_escape(f"dm/dsigma_ann <= K/sqrt(252) = {K:.4f}"),
            rf"$dm/d\sigma^{{\mathrm{{ann}}}} \le K/\sqrt{{252}} = {K:.4f}$",
        )
    if data.is_portfolio:
        cap = (f"dm/dsigma_ann <= K/sqrt(252) = {K:.4f} (88), (74)" if math.isfinite(K) else
               "none from manipulation, psi = 0 (monotonicity only)" if data.cap.get("kind") != "none" else "no slope cap (monotonicity only)")
        text = (
            f"Knots of the manipulation-proof margin rule (Nicolai 2026, Section 6) for the portfolio {', '.join(data.portfolio['assets'])} "
            "(Appendix D.5): volatility is that of the margined portfolio's daily return. Between knots the rule is linear in "
            "volatility (daily or annualised). Regime and slope refer to the stretch from a knot to the next. "
            f"Cap: {cap}."
        )
    else:
        cap = f"dm/dsigma_ann <= K/sqrt(252) = {K:.4f} (74)" if math.isfinite(K) else "no slope cap (monotonicity only)"
        text = (
            "Knots of the manipulation-proof margin rule (Nicolai 2026, Section 6). Between knots the rule is linear in "
            "volatility (daily or annualised). Regime and slope refer to the stretch from a knot to the next. "
            f"Cap: {cap}."
        )
    if tick is not None:
        text += f" Margins are rounded to {tick:g} (cumulative, cap-preserving rounding)."
    return text


def build_rule_table(data: RuleData, knots, margin, tick: float | None = None, rule=None, status: str = "published rule") -> RuleTable:
    """The rule table at grid indices ``knots`` with published margins ``margin`` (rounded or not); ``rule`` the
    :class:`~margin_design.reports.publish.PublishedRule` the folder publishes (its ID is on every row)."""
    knots = np.asarray(knots, int)
    v = data.vol[knots]
    kinds = data.link_kinds
    regimes = [kinds[i] for i in knots[:-1]] + [""]
    return _table(data, v, np.asarray(margin, float), data.schedule[knots], data.first_best[knots], regimes, [int(i) for i in knots],
                  tick, rule, status, caption_text(data, tick), caption_text(data, tick, latex=True))


def build_points_table(data: RuleData, rule, status: str = "published rule") -> RuleTable:
    """The rule table at the published vol points of ``rule`` (a :class:`~margin_design.reports.publish.PublishedRule`).

    ``first_best`` and ``margin_optimal`` are M_fb and g* interpolated linearly in vol at the points; ``regime`` lists the
    regimes of g* the stretch to the next point crosses (joined by "/"); ``grid_index`` is empty (points are not grid points).
    """
    v = np.asarray(rule.vol, float)
    kinds = data.link_kinds
    regimes = []
    for a, b in zip(v[:-1], v[1:]):
        lo = int(np.clip(np.searchsorted(data.vol, a, side="right") - 1, 0, data.n - 2))
        hi = int(np.clip(np.searchsorted(data.vol, b, side="left") - 1, lo, data.n - 2))
        seen = []
        for k in kinds[lo : hi + 1]:
            if k not in seen:
                seen.append(k)
        regimes.append("/".join(seen))
    regimes.append("")
    fb = np.interp(v, data.vol, data.first_best)
    cap = points_caption(data, rule)
    return _table(data, v, rule.margin, rule.optimal, fb, regimes, [None] * v.size, rule.tick, rule, status, cap,
                  latex_escape(cap).replace(latex_escape(f"dm/dsigma_ann <= K/sqrt(252) = {data.slope_vol_annual:.4f}"),
                                            rf"$dm/d\sigma^{{\mathrm{{ann}}}} \le K/\sqrt{{252}} = {data.slope_vol_annual:.4f}$"))


def points_caption(data: RuleData, rule) -> str:
    K = data.slope_vol_annual
    cap = f"dm/dsigma_ann <= K/sqrt(252) = {K:.4f} (74)" if math.isfinite(K) else "no slope cap (monotonicity only)"
    who = f"for the portfolio {', '.join(data.portfolio['assets'])} (Appendix D.5) " if data.is_portfolio else ""
    text = (f"Published manipulation-proof margin rule {who}(Nicolai 2026, Section 6) at annualised vols {rule.labels[0]}% to "
            f"{rule.labels[-1]}% ({len(rule.labels)} points). Between points the rule is linear in volatility (daily or annualised); "
            "regime names the regimes of the optimal schedule g* the stretch to the next point crosses. Cap: " + cap + ".")
    if rule.tick is not None:
        text += f" Margins are rounded to {rule.tick:g} (cumulative, cap-preserving rounding)."
    return text


def _table(data, v, m, x, fb, regimes, grid_idx, tick, rule, status, caption, caption_latex) -> RuleTable:
    va = SQRT_252 * v
    capa = data.slope_vol_annual
    n = v.size
    meta = None
    ext = ["" for _ in range(n)]
    if rule is not None:
        meta = dict(rule.to_dict(), status=status, short_id=rule.short_id)
        texts = rule.extrapolation_text
        if status == "published rule":
            ext[0], ext[-1] = texts["below"], texts["above"]
    rows = []
    for k in range(n):
        last = k == n - 1
        rows.append(
            {
                "vol_daily": fixed(v[k]),
                "vol_annual": fixed(va[k]),
                "variance": fixed(v[k] * v[k]),
                "margin": fixed(m[k]),
                "first_best": fixed(fb[k]),
                "regime": regimes[k],
                "slope_vol_annual": None if last else fixed((m[k + 1] - m[k]) / (va[k + 1] - va[k])),
                "cap_vol_annual": fixed(capa) if math.isfinite(capa) else None,
                "gap_to_first_best": fixed(m[k] - fb[k]),
                "margin_optimal": fixed(x[k]),
                "rounding_error": fixed(m[k] - x[k]),
                "grid_index": grid_idx[k],
                "rule_id": None if rule is None else rule.rule_id,
                "version_label": None if rule is None else rule.version_label,
                "extrapolation": ext[k] or None,
            }
        )
    return RuleTable(rows=tuple(rows), caption=caption, rounded=tick is not None, caption_latex=caption_latex,
                     units=PORTFOLIO_UNITS if data.is_portfolio else TARGET_UNITS if data.objective_kind == "target" else None, rule=meta)


# ---------------------------------------------------------------------- machine-readable


def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)
    return str(v)


def csv_text(rows, columns) -> str:
    """CSV with a header row; floats at repr of their printed value, None as an empty cell."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for row in rows:
        w.writerow([_cell(row[c]) for c in columns])
    return buf.getvalue()


def rule_table_csv(table: RuleTable) -> str:
    return csv_text(table.rows, COLUMNS)


def rule_table_json(table: RuleTable, extra: dict | None = None) -> str:
    payload = {
        "caption": table.caption,
        "status": table.status,
        "rule_id": (table.rule or {}).get("rule_id"),
        "version_label": (table.rule or {}).get("version_label"),
        "interpolation": (table.rule or {}).get("interpolation", "linear in volatility between knots"),
        "extrapolation": (table.rule or {}).get("extrapolation"),
        "rule": table.rule,
        "columns": list(COLUMNS),
        "units": dict(table.units or UNITS),
        "rows": [dict(r) for r in table.rows],
    }
    if extra:
        payload.update(extra)
    return json.dumps(payload, indent=2, allow_nan=False) + "\n"


# ---------------------------------------------------------------------- human-readable


def pct(x, digits: int) -> str:
    return "" if x is None else f"{100.0 * x:.{digits}f}"


HUMAN = (
    # (column, header, formatter) -- percent of notional for margins, percent for vols
    ("vol_daily", "Daily vol (%)", lambda v: pct(v, 4)),
    ("vol_annual", "Annual vol (%)", lambda v: pct(v, 2)),
    ("variance", "Variance r", lambda v: f"{v:.4e}"),
    ("margin", "Margin (%)", lambda v: pct(v, 4)),
    ("first_best", "First-best (%)", lambda v: pct(v, 4)),
    ("gap_to_first_best", "Above first-best (pp)", lambda v: pct(v, 4)),
    ("regime", "Regime to next knot", lambda v: v or "end"),
    ("slope_vol_annual", "Slope (pp/vol pt)", lambda v: "" if v is None else f"{v:.4f}"),
    ("cap_vol_annual", "Cap (pp/vol pt)", lambda v: "none" if v is None else f"{v:.4f}"),
)
OPTIMAL = ("margin_optimal", "Unrounded (%)", lambda v: pct(v, 4))


def human_columns(table: RuleTable):
    cols = list(HUMAN)
    if (table.rule or {}).get("form") == "published vols" and table.status == "published rule":
        cols[6] = ("regime", "Regime of g* to next point", HUMAN[6][2])
    if table.units is TARGET_UNITS:
        cols = [(c, TARGET_HEADERS.get(c, h), f) for c, h, f in cols]
    if table.rounded:
        cols.insert(4, OPTIMAL)
    return cols


_TEX_CHARS = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}",
}


def latex_escape(s: str) -> str:
    """Escape text for LaTeX (text mode, any font encoding): specials, and <=, >=, <, >, | as symbols."""
    s = str(s)
    out = []
    i = 0
    while i < len(s):
        two = s[i : i + 2]
        if two in ("<=", ">="):
            out.append(r"$\le$" if two == "<=" else r"$\ge$")
            i += 2
            continue
        out.append(_TEX_CHARS.get(s[i], s[i]))
        i += 1
    return "".join(out)


def rule_header_lines(table: RuleTable, full_id: bool = True) -> list[tuple[str, str, bool]]:
    """(label, value, is_free_text) lines naming the table's status, rule ID, version label, reading and cost."""
    r = table.rule
    if r is None:
        return []
    rid = f"{r['short_id']} (sha256 {r['rule_id']})" if full_id else f"{r['short_id']} (first 12 hex digits of the sha256 in rule_table.json)"
    lines = [("Status", table.status, False),
             ("Rule ID" if table.status == "published rule" else "ID of the published rule (not this table)", rid, False)]
    if r.get("version_label") is not None:
        lines.append(("Version label", r["version_label"], True))
    if table.status == "published rule":
        e = r["extrapolation"]
        c = r["certificate"]
        lines += [
            ("Interpolation", r["interpolation"], False),
            ("Extrapolation", f"{e['below_text']}; {e['above_text']}", False),
            ("Certified", ("PASS" if c["ok"] else "FAIL") + ": monotone, M >= 0 and within the cap on every interval and both extrapolation pieces", False),
            ("Largest gap to g*", f"{r['max_abs_error_vs_optimal']:.2e} margin ratio over the solver grid, at "
             f"{100 * r['max_abs_error_at_vol_annual']:.1f}% annualised vol (tolerance {r['tolerance']:g}: "
             + ("within" if r["within_tolerance"] else "EXCEEDED") + ")", False),
            ("Cost", cost_line(r["cost"]), False),
        ]
    return lines


def cost_line(cost: dict) -> str:
    """J(published) - J(g*) next to the price of manipulation-proofness, bp of notional (or why it is not available)."""
    if not cost.get("available"):
        return f"J(published) - J(g*) not available: {cost['reason']}"
    return (f"J(published) - J(g*) = {1e4 * cost['cost_of_publishing']:.4f} bp of notional; price of manipulation-proofness "
            f"J(g*) - J(M_fb) = {1e4 * cost['price_of_manipulation_proofness']:.4f} bp")


def markdown_table(headers, rows, align=None) -> str:
    """A GitHub-flavoured Markdown table (pipes in cells escaped)."""
    def clean(c):
        return str(c).replace("|", "\\|")

    align = align or ["---"] * len(headers)
    lines = ["| " + " | ".join(clean(h) for h in headers) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(clean(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


class TeX(str):
    """A string that is already LaTeX (not escaped by :func:`latex_tabular`)."""


def latex_tabular(headers, rows, spec: str) -> str:
    """A booktabs tabular; cells are escaped unless they are :class:`TeX` or start with '$' (math)."""
    def cell(c):
        if isinstance(c, TeX):
            return str(c)
        c = str(c)
        return c if c.startswith("$") else latex_escape(c)

    lines = [rf"\begin{{tabular}}{{{spec}}}", r"\toprule", " & ".join(cell(h) for h in headers) + r" \\", r"\midrule"]
    lines += [" & ".join(cell(c) for c in row) + r" \\" for row in rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def segment_rows_md(formulas) -> list:
    return [
        [f.kind, f"{100 * SQRT_252 * f.vol_start:.2f} – {100 * SQRT_252 * f.vol_end:.2f}", f.equation, f"`{f.text}`"]
        for f in formulas
    ]


def rule_table_markdown(table: RuleTable, formulas) -> str:
    cols = human_columns(table)
    body = [[fmt(row[c]) for c, _, fmt in cols] for row in table.rows]
    align = ["---:" if c != "regime" else ":---" for c, _, _ in cols]
    head = "".join(f"- **{k.replace('*', chr(92) + '*')}:** {markdown_escape(v) if free else v.replace('*', chr(92) + '*')}\n"
                   for k, v, free in rule_header_lines(table))
    parts = [
        f"**Rule table ({table.status.replace('*', chr(92) + '*')}).** {table.caption}\n\n",
        head + ("\n" if head else ""),
        markdown_table([h for _, h, _ in cols], body, align),
        "\n**Segment formulas** (sympy, calibrated numbers substituted; r = daily variance, M = margin ratio).\n\n",
        markdown_table(["Regime", "Annual vol (%)", "Eq.", "Formula"], segment_rows_md(formulas), [":---", "---:", ":---:", ":---"]),
    ]
    return "".join(parts)


def rule_table_latex(table: RuleTable, formulas, label: str = "tab:margin-rule") -> str:
    """Two booktabs floats ready to ``\\input``: the rule table and the segment formulas."""
    cols = human_columns(table)
    body = [[fmt(row[c]) for c, _, fmt in cols] for row in table.rows]
    spec = "".join("l" if c == "regime" else "r" for c, _, _ in cols)
    seg_rows = [
        [f.kind, f"{100 * SQRT_252 * f.vol_start:.2f}--{100 * SQRT_252 * f.vol_end:.2f}", f.equation, f"${f.latex}$"]
        for f in formulas
    ]
    return "".join([
        "% Requires \\usepackage{booktabs}. Generated by margin-design report; do not edit by hand.\n",
        "\\begin{table}[htbp]\n\\centering\n\\scriptsize\n",
        "\\caption{" + ("" if table.status == "published rule" else latex_escape(table.status.capitalize()) + ". ")
        + f"{table.caption_latex or latex_escape(table.caption)}}}\n\\label{{{label}}}\n",
        ("{\\raggedright\n" + "".join(f"\\textbf{{{latex_escape(k)}:}} {latex_escape(v)}\\par\n" for k, v, _ in rule_header_lines(table, full_id=False))
         + "}\\medskip\n") if table.rule else "",
        latex_tabular([h for _, h, _ in cols], body, spec),
        "\\end{table}\n\n",
        "\\begin{table}[htbp]\n\\centering\n\\small\n",
        "\\caption{Segment formulas of the margin rule, calibrated numbers substituted ($r$: daily variance, $M$: margin ratio).}\n",
        f"\\label{{{label}-formulas}}\n",
        latex_tabular(["Regime", "Annual vol (%)", "Eq.", "Formula"], seg_rows, "lrcl"),
        "\\end{table}\n",
    ])
