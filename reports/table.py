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

from margin_design.reports.rule_data import SQRT_252, RuleData

SIGNIFICANT_DIGITS = 12

COLUMNS = (
    "vol_daily", "vol_annual", "variance", "margin", "first_best", "regime", "slope_vol_annual", "cap_vol_annual",
    "gap_to_first_best", "margin_optimal", "rounding_error", "grid_index",
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
    "grid_index": "index of the knot on the solver's grid (0-based)",
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


def build_rule_table(data: RuleData, knots, margin, tick: float | None = None) -> RuleTable:
    """The rule table at grid indices ``knots`` with published margins ``margin`` (rounded or not)."""
    knots = np.asarray(knots, int)
    m = np.asarray(margin, float)
    v = data.vol[knots]
    va = SQRT_252 * v
    x = data.schedule[knots]
    fb = data.first_best[knots]
    capa = data.slope_vol_annual
    rows = []
    kinds = data.link_kinds
    for k, i in enumerate(knots):
        last = k == knots.size - 1
        slope = None if last else fixed((m[k + 1] - m[k]) / (va[k + 1] - va[k]))
        rows.append(
            {
                "vol_daily": fixed(v[k]),
                "vol_annual": fixed(va[k]),
                "variance": fixed(v[k] * v[k]),
                "margin": fixed(m[k]),
                "first_best": fixed(fb[k]),
                "regime": "" if last else kinds[i],
                "slope_vol_annual": slope,
                "cap_vol_annual": fixed(capa) if math.isfinite(capa) else None,
                "gap_to_first_best": fixed(m[k] - fb[k]),
                "margin_optimal": fixed(x[k]),
                "rounding_error": fixed(m[k] - x[k]),
                "grid_index": int(i),
            }
        )
    return RuleTable(rows=tuple(rows), caption=caption_text(data, tick), rounded=tick is not None,
                     caption_latex=caption_text(data, tick, latex=True),
                     units=PORTFOLIO_UNITS if data.is_portfolio else TARGET_UNITS if data.objective_kind == "target" else None)


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
        "interpolation": "linear in volatility between knots",
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
    ("gap_to_first_best", "Gap (pp)", lambda v: pct(v, 4)),
    ("regime", "Regime to next knot", lambda v: v or "end"),
    ("slope_vol_annual", "Slope (pp/vol pt)", lambda v: "" if v is None else f"{v:.4f}"),
    ("cap_vol_annual", "Cap (pp/vol pt)", lambda v: "none" if v is None else f"{v:.4f}"),
)
OPTIMAL = ("margin_optimal", "Unrounded (%)", lambda v: pct(v, 4))


def human_columns(table: RuleTable):
    cols = list(HUMAN)
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
    parts = [
        f"**Rule table.** {table.caption}\n\n",
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
        f"\\caption{{{table.caption_latex or latex_escape(table.caption)}}}\n\\label{{{label}}}\n",
        latex_tabular([h for _, h, _ in cols], body, spec),
        "\\end{table}\n\n",
        "\\begin{table}[htbp]\n\\centering\n\\small\n",
        "\\caption{Segment formulas of the margin rule, calibrated numbers substituted ($r$: daily variance, $M$: margin ratio).}\n",
        f"\\label{{{label}-formulas}}\n",
        latex_tabular(["Regime", "Annual vol (%)", "Eq.", "Formula"], seg_rows, "lrcl"),
        "\\end{table}\n",
    ])
