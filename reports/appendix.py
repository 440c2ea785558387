"""``report.md`` and ``report.tex``: the methodology appendix (Nicolai 2026, Section 6 and Appendix D).

Both tie together the design problem and the cap (with the paper's equation numbers), the parameter
block, the rule table and segment formulas, the figures, the objective breakdown, the certificate, the
publication checks (knots, rounding, jumps) and the provenance block. ``report.tex`` is a fragment to
``\\input`` (packages: amsmath, booktabs, graphicx); figures are referenced relative to the report folder.
"""

from __future__ import annotations

import math

from margin_design.reports.rule_data import SQRT_252
from margin_design.reports.table import (
    TeX,
    latex_escape,
    latex_tabular,
    markdown_table,
    rule_table_latex,
    rule_table_markdown,
)

STEP_WARNING = (
    "A step table has jumps. Section 6.6 of Nicolai (2026): a jump is exploitable however small the slope elsewhere; "
    "a trigger trade of q ADV that pushes the sampled input across a threshold harvests about q * alpha * c_eff * Delta M, "
    "while its own round-trip cost is of order q^2, so small threshold-crossing trades pay. Publish the linear knot table "
    "where possible."
)
FIGURES = (
    ("schedule", "Margin rule against the first-best target across annualised volatility; shaded: regimes."),
    ("slope", "Slope of the rule against the manipulation-proof cap (74), in pp of margin per vol point."),
    ("multipliers", "Shadow prices of the cap (G > 0) and of monotonicity (G < 0) across states."),
    ("objective", "Expected cost by term, first-best against the manipulation-proof rule."),
)
LABELS = {
    "coverage.objective": "Objective",
    "coverage.loss": "Coverage loss l",
    "coverage.carry_kappa_M": "Carrying cost kappa_M",
    "coverage.prev_margin_M_minus": "Margin in force M_- (margin ratio)",
    "coverage.margin_period_days": "Margin period of risk (days)",
    "coverage.target_file": "Target schedule file",
    "shock.model": "Shock model",
    "shock.description": "Shock Y",
    "shock.df": "Student-t degrees of freedom",
    "shock.file": "Shock sample file",
    "shock.bandwidth": "Kernel bandwidth (units of Y)",
    "states.density": "State density f(r | z)",
    "states.median_vol_daily": "Median daily vol",
    "states.dispersion_log_vol": "Dispersion (log-sd of vol)",
    "states.file": "State weights file",
    "states.grid_vol_daily_min": "Grid: lowest daily vol",
    "states.grid_vol_daily_max": "Grid: highest daily vol",
    "states.grid_points": "Grid points",
    "states.grid_spacing": "Grid spacing",
    "liquidation.weight_lambda_L": "Liquidation weight lambda_L",
    "liquidation.cost_form": "Liquidation cost C",
    "participation.weight_lambda_P": "Participation weight lambda_P",
    "participation.beta": "Participation sensitivity beta",
    "participation.cost_form": "Participation cost H",
    "market.alpha": "Price impact alpha (per ADV traded)",
    "market.c_eff": "Forced liquidation c_eff (ADV per unit margin ratio)",
    "market.inventory_penalty_kappa": "Inventory penalty kappa",
    "cap.kind": "Cap",
    "cap.input": "Risk input",
    "cap.window_days": "Realised-variance window (days)",
    "cap.ewma_lambda": "EWMA lambda",
    "cap.slope_vol_daily": "K: cap on dM/dsigma (daily vol)",
    "cap.slope_vol_annual": "K/sqrt(252): cap on dm/dsigma_ann (74)",
    "cap.formula": "Cap formula",
    "elasticity_inputs.elasticity_epsilon": "Elasticity epsilon_XM",
    "elasticity_inputs.turnover_tau": "Turnover tau = XP/ADV",
    "elasticity_inputs.participation_f": "Trigger f (fraction of ADV)",
    "elasticity_inputs.distortion_bps": "Distortion delta (bp)",
    "elasticity_inputs.margin_level_m": "Margin level m",
    "elasticity_inputs.implied_alpha": "Implied alpha = delta/f (75)",
    "elasticity_inputs.implied_c_eff": "Implied c_eff = epsilon tau/m (76)",
    "elasticity_inputs.consistent": "Consistent with alpha, c_eff",
}
PERCENT_KEYS = {"states.median_vol_daily", "states.grid_vol_daily_min", "states.grid_vol_daily_max"}


def _fmt(key: str, v) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if key in PERCENT_KEYS:
            return f"{100 * v:.4g}% (annualised {100 * SQRT_252 * v:.4g}%)"
        return f"{v:.6g}"
    return str(v)


def parameter_rows(block: dict) -> list[tuple[str, str]]:
    """(label, value) rows of the parameter block, skipping entries that do not apply (None)."""
    rows = []
    for group, entries in block.items():
        for k, v in entries.items():
            key = f"{group}.{k}"
            if v is None or key not in LABELS:
                continue
            rows.append((LABELS[key], _fmt(key, v)))
    return rows


def _sci(x: float) -> str:
    return f"{x:.3g}" if x != 0 else "0"


def _objective_rows(obj: dict) -> list[list[str]]:
    rows = []
    for t in obj["terms"]:
        a, b = obj["first_best_terms"][t], obj["terms"][t]
        rows.append([t, f"{1e4 * a:.4f}", f"{1e4 * b:.4f}", f"{1e4 * (b - a):+.4f}"])
    rows.append(["total", f"{1e4 * obj['first_best_value']:.4f}", f"{1e4 * obj['value']:.4f}",
                 f"{1e4 * obj['price_of_manipulation_proofness']:+.4f}"])
    return rows


def _cert_rows(report) -> list[list[str]]:
    c = report.provenance["certificate"]
    return [
        ["relative duality gap", _sci(c["relative_gap"])],
        ["duality gap (objective units)", _sci(c["duality_gap"])],
        ["feasibility (margin ratio)", _sci(c["feasibility"])],
        ["balance (relative)", _sci(c["balance"])],
        ["complementarity (relative)", _sci(c["complementarity"])],
        ["verdict", "CERTIFIED" if c["ok"] else "NOT CERTIFIED"],
    ]


def _provenance_rows(report) -> list[list[str]]:
    p = report.provenance
    s = p["solver"]
    rows = [
        ["effective date", p["effective_date"] or "not stated (--effective-date)"],
        ["margin-design (report)", p["package_version"]],
        ["margin-design (solve)", str(p["solved_with_package_version"])],
        ["configuration SHA-256", p["config_sha256"]],
        ["problem SHA-256", str(p["problem_sha256"])],
    ]
    if "input" in p:
        rows.append([f"input file ({p['input'].get('kind')})", f"{p['input'].get('name')} sha256 {p['input'].get('sha256')}"])
    for role, f in p["input_data_files"].items():
        rows.append([f"data file {role}", f"{f.get('path')} sha256 {f.get('sha256')}"])
    versions = ", ".join(f"{k} {v}" for k, v in sorted(s.get("versions", {}).items()))
    rows.append(["solver", f"{s.get('method')} ({s.get('backend')}; {versions}), {s.get('iterations')} Newton iterations"])
    return rows


def _tex_breakable(value: str) -> TeX:
    """Escape, and let 64-digit hashes break every 16 characters (copy-paste keeps them whole)."""
    out = []
    for word in str(value).split(" "):
        if len(word) == 64 and all(ch in "0123456789abcdef" for ch in word):
            out.append("\\texttt{" + "\\allowbreak ".join(word[i : i + 16] for i in range(0, 64, 16)) + "}")
        else:
            out.append(latex_escape(word))
    return TeX(" ".join(out))


def _check_lines(report) -> list[str]:
    """Plain sentences (Markdown-safe, no LaTeX) describing the publication checks."""
    o = report.options
    c = report.check
    n = int(report.knots.size)
    lines = []
    if o.knots is None:
        lines.append(
            f"Knots: {n} knots (segment boundaries plus the worst-interpolated grid points) keep the linear interpolation in volatility "
            f"within {report.interpolation_error:.2e} of the optimal schedule at every grid point (tolerance {o.tolerance:g} margin ratio)."
        )
    else:
        lines.append(
            f"Knots: {n} knots as requested; the linear interpolation in volatility departs from the optimal schedule by at most "
            f"{report.interpolation_error:.2e} (margin ratio) at the grid points."
        )
    cap_txt = (f"every increment is within the cap (largest slope {100 * c.max_slope_to_cap:.2f}% of the cap; largest excess {c.max_cap_excess:.2e})"
               if math.isfinite(report.data.slope_vol) else "the rule is uncapped")
    lines.append(
        f"Cap and monotonicity between knots (published rule): {'PASS' if c.ok else 'FAIL'}; smallest increment {c.min_increment:.2e}, "
        f"{cap_txt}. Between knots i < j the cap is the exact integral K (vol_j - vol_i); passing on consecutive knots implies every pair."
    )
    r = report.rounding
    if r is None:
        lines.append("Rounding: none (margins printed unrounded).")
    else:
        lines.append(
            f"Rounding: knots rounded to ticks of {r.tick:g} along the chain (cumulative, cap-preserving: 0 <= increment <= floor(cap/tick) ticks), "
            f"minimising the largest error; largest rounding error {r.max_error:.2e} at the knots, {report.published_error:.2e} against the "
            f"optimal schedule over the grid."
        )
        if r.flat_intervals:
            lines.append(f"The cap is below one tick on knot interval(s) {', '.join(str(k) for k in r.flat_intervals)}: the rounded rule is flat there.")
        nc = report.naive_check
        if nc is not None:
            lines.append(
                "Rounding each knot on its own would " + (
                    f"break the cap on {len(nc.cap_violations)} interval(s) and monotonicity on {len(nc.decreasing_intervals)}."
                    if not nc.ok else "also pass here (it is not guaranteed to)."
                )
            )
    s = report.steps
    if s is not None:
        lines.append(
            f"Step table: {len(s.buckets)} buckets, {len(s.jumps)} jump(s); largest jump {100 * s.max_jump:.4f}% of notional, "
            f"largest threshold-crossing gain alpha c_eff Delta M = {1e4 * s.max_gain_per_unit_trigger:.2f} bp of the price per unit trigger "
            "(a trigger of q ADV harvests q times that; Section 6.6)."
        )
    return lines


def _design_paragraph_md(report) -> str:
    d = report.data
    cfg = d.config
    K = d.slope_vol
    cap = (f"0 <= dM/dsigma <= K = {K:.6g} in daily-vol units (40) (here {d.cap.get('formula')}), i.e. dm/dsigma_ann <= K/sqrt(252) = "
           f"{K / SQRT_252:.4f} margin points per annualised-vol point (74)") if math.isfinite(K) else "monotonicity only (no slope cap)"
    if cfg["objective"]["kind"] == "cost":
        o, k = cfg["objective"], cfg["shock"]
        cost = (
            f"For a risk state r (the variance of daily returns; sigma = sqrt(r) the daily volatility) the per-state cost Psi(r, M; z) of (31)-(32) "
            f"adds the expected uncovered close-out loss ({o['loss']}, D = sqrt({k['horizon_days']:g} r) Y over a {k['horizon_days']:g}-day margin period, "
            f"{k['model']} shocks) and the carrying cost kappa_M M = {o['carry']:g} M"
            + (f", the liquidation cost lambda_L C(c_eff (M - M_-)_+) with lambda_L = {o['liquidation_weight']:g}" if o["liquidation_weight"] else "")
            + (f", the participation cost lambda_P H(1 - N) with lambda_P = {o['participation_weight']:g}" if o["participation_weight"] else "")
            + "; the other terms of (32) have zero weight here" * (not (o["liquidation_weight"] and o["participation_weight"]))
            + ". The first-best margin M_fb(r) minimises Psi state by state (34); where interior it solves (35)."
        )
    else:
        cost = (
            "The per-state cost is the quadratic approximation of Appendix D.2, Psi = h/2 (M - t(r))^2, around the target schedule t of "
            f"{cfg['objective']['file']}; the first-best is the target itself."
        )
    return (
        f"{cost} A public rule M = g(r) that passes measured risk into margin too steeply can be manipulated by a trigger-and-reverse "
        f"trade (Corollary 1, (38)); the sufficient cap is {cap}. The published rule solves (41): minimise J(g) = integral f(r | z) "
        f"Psi(r, g(r); z) dr (33) over weakly increasing rules under the cap, on {d.n} states with probability masses f(r | z); between "
        "grid points the cap integrates exactly to K (sigma_{i+1} - sigma_i). By the KKT conditions (68)-(72) the rule tracks the "
        "first-best where it can, rises at the cap (42) where the first-best is too steep, and pools at a level solving (43) where "
        "even that is too much. Segments of this rule: "
        + "; ".join(f"{f.kind} from {100 * SQRT_252 * f.vol_start:.2f}% to {100 * SQRT_252 * f.vol_end:.2f}% annualised vol" for f in report.formulas)
        + "."
    )


def report_markdown(report) -> str:
    d = report.data
    p = report.provenance
    obj = d.objective
    parts = [
        f"# {report.title}\n\n",
        f"Methodology appendix generated by margin-design {p['package_version']} from the design of Nicolai (2026), Section 6. "
        f"Effective date: {p['effective_date'] or 'not stated'}. Certificate: {'CERTIFIED' if p['certificate']['ok'] else 'NOT CERTIFIED'} "
        f"(relative gap {_sci(p['certificate']['relative_gap'])}).\n\n",
    ]
    if report.warnings:
        parts.append("> **Warnings**\n>\n" + "".join(f"> - {w}\n" for w in report.warnings) + "\n")
    parts += [
        "## 1. Design problem and cap\n\n", _design_paragraph_md(report), "\n\n",
        "## 2. Parameters\n\n", markdown_table(["Parameter", "Value"], parameter_rows(report.parameters), [":---", ":---"]), "\n",
        "## 3. Rule table\n\n", rule_table_markdown(report.table, report.formulas), "\n",
        "Formula notes: " + " ".join(sorted({f"{f.kind}: {f.general_text} ({f.note})." for f in report.formulas})) + "\n\n",
    ]
    if report.steps is not None:
        rows = [[f"{100 * j['threshold_vol_annual']:.2f}", f"{100 * j['threshold_vol_daily']:.4f}", f"{100 * j['margin_below']:.4f}",
                 f"{100 * j['margin_above']:.4f}", f"{100 * j['jump']:.4f}", f"{1e4 * j['gain_per_unit_trigger']:.2f}"] for j in report.steps.jumps]
        parts += [
            "### Step table jumps\n\n", f"> **Warning.** {STEP_WARNING}\n\n",
            f"{len(report.steps.buckets)} buckets of about equal width in volatility; each bucket [from, to) charges the published linear rule at "
            "its upper edge" + (" rounded up to the tick" if report.rounding is not None else "") + ", so it never charges less than the linear rule. Jumps:\n\n",
            markdown_table(["Threshold annual vol (%)", "Threshold daily vol (%)", "Margin below (%)", "Margin above (%)", "Jump (pp)",
                            "Gain per unit trigger alpha c_eff Delta M (bp)"], rows, ["---:"] * 6),
            "\n",
        ]
    parts.append("## 4. Figures\n\n")
    for name, cap in FIGURES:
        parts.append(f"![{cap}](figures/{name}.png)\n\n*Figure: {cap}* ([PDF](figures/{name}.pdf))\n\n")
    parts += [
        "## 5. Objective and price of manipulation-proofness\n\n",
        "Expected cost per unit notional in bp of notional (33), first-best M_fb against the manipulation-proof rule g*.\n\n",
        markdown_table(["Term", "First-best (bp)", "Rule (bp)", "Difference (bp)"], _objective_rows(obj), [":---", "---:", "---:", "---:"]), "\n",
        "## 6. Certificate\n\n",
        "KKT certificate of the solved schedule (68)-(72): feasibility of 0 <= increment <= cap, balance and complementarity of the "
        "multipliers, and the Lagrangian duality gap bounding the suboptimality.\n\n",
        markdown_table(["Check", "Value"], _cert_rows(report), [":---", "---:"]), "\n",
        "## 7. Publication checks: knots, rounding and jumps\n\n",
        "".join(f"- {line}\n" for line in _check_lines(report)), "\n",
        "## 8. Provenance\n\n",
        markdown_table(["Item", "Value"], _provenance_rows(report), [":---", ":---"]),
    ]
    return "".join(parts)


def _design_paragraph_tex(report) -> str:
    d = report.data
    cfg = d.config
    K = d.slope_vol
    if cfg["objective"]["kind"] == "cost":
        o, k = cfg["objective"], cfg["shock"]
        cost = (
            "For a risk state $r$ (the variance of daily returns; $\\sigma=\\sqrt r$ the daily volatility) the per-state cost "
            "$\\Psi(r,M;z)$ of (31)--(32) adds the expected uncovered close-out loss, with "
            f"$D=\\sqrt{{{k['horizon_days']:g}\\,r}}\\,Y$ over a {k['horizon_days']:g}-day margin period ({latex_escape(k['model'])} shocks) "
            f"and the carrying cost $\\kappa_M M$ with $\\kappa_M = {o['carry']:g}$"
            + (f", the liquidation cost $\\lambda_L C(c^{{\\mathrm{{eff}}}}_X (M-M_-)_+)$ with $\\lambda_L = {o['liquidation_weight']:g}$" if o["liquidation_weight"] else "")
            + (f", the participation cost $\\lambda_P H(1-N)$ with $\\lambda_P = {o['participation_weight']:g}$" if o["participation_weight"] else "")
            + "; the other terms of (32) have zero weight here" * (not (o["liquidation_weight"] and o["participation_weight"]))
            + ". The first-best margin $M^{\\mathrm{fb}}(r)$ minimises $\\Psi$ state by state (34); where interior it solves (35)."
        )
    else:
        cost = (
            "The per-state cost is the quadratic approximation of Appendix D.2, $\\Psi=\\tfrac h2 (M-t(r))^2$, around the target schedule "
            f"$t$ of \\texttt{{{latex_escape(cfg['objective']['file'])}}}; the first-best is the target itself."
        )
    if math.isfinite(K):
        cap = (
            "\\begin{equation*}\n0 \\le \\frac{dM}{d\\sigma} \\le K = " + f"{K:.6g}" + ",\\qquad "
            "\\frac{dm}{d\\sigma^{\\mathrm{ann}}} \\le \\frac{K}{\\sqrt{252}} = " + f"{K / SQRT_252:.4f}" + "\\qquad\\text{(40), (74)}\n\\end{equation*}\n"
        )
    else:
        cap = "Here the rule is only required to be monotone (no slope cap).\n"
    segs = "; ".join(
        f"{f.kind} from {100 * SQRT_252 * f.vol_start:.2f}\\% to {100 * SQRT_252 * f.vol_end:.2f}\\%" for f in report.formulas
    )
    return (
        cost + " A public rule $M=g(r)$ that passes measured risk into margin too steeply can be manipulated by a trigger-and-reverse "
        "trade (Corollary~1, (38)); the sufficient cap is\n" + cap +
        "The published rule solves (41),\n\\begin{equation*}\n\\min_{g}\\ J(g)=\\int f(r\\mid z)\\,\\Psi(r,g(r);z)\\,dr \\quad\\text{s.t. } "
        "g \\text{ weakly increasing and within the cap},\n\\end{equation*}\n"
        f"on {d.n} states with probability masses $f(r\\mid z)$; between grid points the cap integrates exactly to $K(\\sigma_{{i+1}}-\\sigma_i)$. "
        "By the KKT conditions (68)--(72) the rule tracks the first-best where it can, rises at the cap (42) where the first-best is too "
        f"steep, and pools at a level solving (43) where even that is too much. Segments (annualised vol): {segs}.\n"
    )


def report_latex(report) -> str:
    d = report.data
    p = report.provenance
    obj = d.objective
    esc = latex_escape
    parts = [
        "% Methodology appendix generated by margin-design; \\input this file. Requires amsmath, booktabs, graphicx.\n",
        f"\\section*{{{esc(report.title)}}}\n",
        f"Methodology appendix from the design of Nicolai (2026), Section~6. Effective date: {esc(p['effective_date'] or 'not stated')}. "
        f"Certificate: {'CERTIFIED' if p['certificate']['ok'] else 'NOT CERTIFIED'} (relative gap {_sci(p['certificate']['relative_gap'])}).\n\n",
    ]
    if report.warnings:
        parts.append("\\paragraph{Warnings.}\n\\begin{itemize}\n" + "".join(f"\\item {esc(w)}\n" for w in report.warnings) + "\\end{itemize}\n\n")
    parts += [
        "\\subsection*{Design problem and cap}\n", _design_paragraph_tex(report), "\n",
        "\\subsection*{Parameters}\n\\begin{center}\n\\small\n",
        latex_tabular(["Parameter", "Value"], parameter_rows(report.parameters), "lp{0.55\\linewidth}"),
        "\\end{center}\n\n",
        "\\subsection*{Rule table}\n", rule_table_latex(report.table, report.formulas), "\n",
        "Formula notes: " + " ".join(sorted({f"{f.kind}: ${f.general_latex}$ ({esc(f.note)})." for f in report.formulas})) + "\n\n",
    ]
    if report.steps is not None:
        rows = [[f"{100 * j['threshold_vol_annual']:.2f}", f"{100 * j['margin_below']:.4f}", f"{100 * j['margin_above']:.4f}",
                 f"{100 * j['jump']:.4f}", f"{1e4 * j['gain_per_unit_trigger']:.2f}"] for j in report.steps.jumps]
        parts += [
            "\\subsection*{Step table jumps}\n", f"\\textbf{{Warning.}} {esc(STEP_WARNING)}\n\n",
            "\\begin{center}\n\\small\n",
            latex_tabular(["Threshold vol (ann., %)", "Below (%)", "Above (%)", "Jump (pp)", TeX("Gain $\\alpha c^{\\mathrm{eff}}_X \\Delta M$ (bp)")], rows, "rrrrr"),
            "\\end{center}\n\n",
        ]
    parts.append("\\subsection*{Figures}\n")
    for name, cap in FIGURES:
        parts.append(
            "\\begin{figure}[htbp]\n\\centering\n"
            f"\\includegraphics[width=0.9\\linewidth]{{figures/{name}.pdf}}\n\\caption{{{esc(cap)}}}\n\\label{{fig:margin-{name}}}\n\\end{{figure}}\n"
        )
    parts += [
        "\n\\subsection*{Objective and price of manipulation-proofness}\n",
        "Expected cost per unit notional in bp of notional (33).\n\\begin{center}\n\\small\n",
        latex_tabular(["Term", "First-best (bp)", "Rule (bp)", "Difference (bp)"], _objective_rows(obj), "lrrr"),
        "\\end{center}\n\n",
        "\\subsection*{Certificate}\nKKT certificate of the solved schedule (68)--(72).\n\\begin{center}\n\\small\n",
        latex_tabular(["Check", "Value"], _cert_rows(report), "lr"),
        "\\end{center}\n\n",
        "\\subsection*{Publication checks: knots, rounding and jumps}\n\\begin{itemize}\n",
        "".join(f"\\item {esc(line)}\n" for line in _check_lines(report)),
        "\\end{itemize}\n\n",
        "\\subsection*{Provenance}\n\\begin{center}\n\\scriptsize\n",
        latex_tabular(["Item", "Value"], [[a, _tex_breakable(b)] for a, b in _provenance_rows(report)], "lp{0.7\\linewidth}"),
        "\\end{center}\n",
    ]
    return "".join(parts)
