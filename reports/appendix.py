"""``report.md`` and ``report.tex``: the methodology appendix (Nicolai 2026, Section 6 and Appendix D).

Both tie together the design problem and the cap (with the paper's equation numbers), the parameter
block, the rule table and segment formulas, the figures, the objective breakdown, the certificate, the
publication checks (knots, rounding, jumps) and the provenance block. ``report.tex`` is a fragment to
``\\input`` (packages: amsmath, amssymb, array, booktabs, graphicx, longtable; ``report.tex`` is the complete document); figures are referenced relative to the report folder.
"""

from __future__ import annotations

import math
import re

from margin_design.reports.portfolio import CONTRACT_HEADERS, CONTRACT_HEADERS_TEX, contract_rows, d6_caption
from margin_design.reports.html import markdown_escape
from margin_design.reports.latex_doc import latex_longtable
from margin_design.reports.rule_data import SQRT_252
from margin_design.reports.table import (
    TeX,
    latex_escape,
    latex_tabular,
    markdown_table,
    cost_line,
    rule_table_latex,
    rule_table_markdown,
)

STEP_WARNING = (
    "A step table has jumps. Section 6.6 of Nicolai (2026): a jump is exploitable however small the slope elsewhere; "
    "a trigger trade of q ADV that pushes the sampled input across a threshold harvests about q * alpha * c_eff * Delta M, "
    "while its own round-trip cost is of order q^2, so small threshold-crossing trades pay. Publish the linear knot table "
    "where possible."
)
PORTFOLIO_STEP_WARNING = (
    "A step table has jumps. Section 6.6 of Nicolai (2026): a jump is exploitable however small the slope elsewhere; "
    "for this portfolio a jump Delta M forces the sales Delta M B and moves prices by Delta M AB, so a trigger of q ADV along the "
    "best direction that pushes the sampled input across a threshold harvests up to q * ||AB|| * Delta M (Cauchy-Schwarz), "
    "while its own round-trip cost is of order q^2, so small threshold-crossing trades pay. Publish the linear knot table "
    "where possible."
)


def step_warning(data) -> str:
    """The Section 6.6 warning of a step table, in the design's terms (alpha c_eff, or ||AB|| for a portfolio)."""
    return PORTFOLIO_STEP_WARNING if data.is_portfolio else STEP_WARNING


def _gain_symbol(data) -> str:
    return "||AB|| Delta M" if data.is_portfolio else "alpha c_eff Delta M"


FIGURES = (
    ("schedule", "Margin rule against the first-best target across annualised volatility; shaded: regimes."),
    ("slope", "Slope of the rule against the manipulation-proof cap (74), in pp of margin per vol point."),
    ("multipliers", "What the constraints cost at each state: expected cost saved (bp of notional) per percentage point of margin "
                    "the cap (G > 0) or monotonicity (G < 0) would release."),
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
    "cap.window_days": "Risk-input window (daily returns)",
    "cap.ewma_lambda": "EWMA lambda",
    "cap.hs_level": "HS VaR / ES confidence level p",
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
PORTFOLIO_LABELS = {
    "liquidation.weight_lambda_L": "Liquidation weight lambda_L, (86)",
    "liquidation.term": "Liquidation term (price pressure)",
    "cap.input": "Risk input (of the portfolio's daily return)",
    "cap.slope_vol_daily": "K: cap (88) on dM/dsigma (daily portfolio vol)",
    "cap.slope_vol_annual": "K/sqrt(252): cap on dm/dsigma_ann (88), (74)",
    "cap.equation": "Cap equation",
    "portfolio.assets": "Portfolio contracts",
    "portfolio.sensitivity_s_f": "Input sensitivity s_f (c_r = 2 sqrt(r) s_f)",
    "portfolio.sensitivity_source": "Source of d and s_f",
    "portfolio.psi": "psi = max(0, -d'AB), (87) (price per unit margin ratio)",
    "portfolio.price_pressure_AB_norm": "||AB||_2, D.5 (price per unit margin ratio)",
    "portfolio.cap_vol_daily": "Portfolio cap K, (88) (daily portfolio vol)",
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
    """(label, value) rows of the parameter block, skipping entries that do not apply (None).

    A portfolio design (a ``portfolio`` group) gets its own labels for the cap, the liquidation weight and the
    portfolio's scalars; its vectors and matrix are in the per-contract table (:func:`portfolio_contract_table`).
    """
    labels = dict(LABELS, **PORTFOLIO_LABELS) if "portfolio" in block else LABELS
    rows = []
    for group, entries in block.items():
        for k, v in entries.items():
            key = f"{group}.{k}"
            if v is None or key not in labels:
                continue
            if key == "portfolio.assets":
                rows.append((labels[key], ", ".join(v)))
                continue
            if key == "portfolio.cap_vol_daily":   # shown in the cap group when it is the cap in force
                if not block["portfolio"]["cap_imposed"]:
                    rows.append((labels[key], f"{v:.6g} (not imposed: cap.kind = none)"))
                continue
            rows.append((labels[key], _fmt(key, v)))
    if "portfolio" in block and block["portfolio"]["cap_vol_daily"] is None:
        rows.append((labels["portfolio.cap_vol_daily"], "none: psi = 0, no cap from manipulation (monotonicity only)"))
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
        f"Cap and monotonicity between knots ({'knot interpolation, not published' if report.knot_table is not None else 'published rule'}): {'PASS' if c.ok else 'FAIL'}; smallest increment {c.min_increment:.2e}, "
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
    pr = report.rule
    if pr is not None:
        c = pr.certificate
        lines.append(
            f"Published rule {pr.short_id} ({len(pr.labels)} {'points at the published vols' if pr.form == 'published vols' else 'knots'}): "
            f"{'PASS' if c.ok else 'FAIL'} on every interval between points and on both extrapolation pieces (below: slope 0; above: slope "
            f"{c.slope_above / SQRT_252:.4f} pp per vol point, cap {report.data.slope_vol_annual:.4f}): monotone, M >= 0, within the cap; "
            f"checked again on the union of the points and the solver grid. Largest gap to g* over the grid {pr.max_error:.2e} at "
            f"{100 * SQRT_252 * pr.max_error_vol:.1f}% annualised vol (tolerance {pr.tolerance:g}: {'within' if pr.within_tolerance else 'EXCEEDED'})."
        )
        if pr.form == "published vols" and pr.rounding is not None:
            lines.append(
                f"Published points rounded to ticks of {pr.rounding.tick:g} by the same cap-preserving minimax rounding; largest rounding error "
                f"{pr.rounding.max_error:.2e} at the points"
                + (f"; the cap is below one tick on {len(pr.rounding.flat_intervals)} interval(s), where the rule stays flat" if pr.rounding.flat_intervals else "")
                + "."
            )
        lines.append("Cost of publishing: " + cost_line(pr.cost) + ".")
    s = report.steps
    if s is not None:
        lines.append(
            f"Step table: {len(s.buckets)} buckets, {len(s.jumps)} jump(s); largest jump {100 * s.max_jump:.4f}% of notional, "
            f"largest threshold-crossing gain {_gain_symbol(report.data)} = {1e4 * s.max_gain_per_unit_trigger:.2f} bp of the price per unit trigger "
            "(a trigger of q ADV harvests q times that; Section 6.6)."
        )
    return lines


def _knot_note(report) -> str:
    if report.knot_table is None:
        return ""
    return ("The knot interpolation of g* (segment boundaries plus the worst-interpolated grid points) is kept in knot_table.csv and "
            "knot_table.md for reference; it is not the published rule.\n\n")


def _cost_sentence(report) -> str:
    """The published rule's cost next to the price of manipulation-proofness (Markdown- and LaTeX-safe plain text)."""
    r = report.rule
    if r is None:
        return ""
    return (f"Published rule {r.short_id}: " + cost_line(r.cost) + ". The cost of publishing is the expected cost (33) of the published "
            "rule, interpolated onto the solver grid, above that of the optimal schedule g*.\n\n")


def _updates_sentence(d) -> str:
    """What the T-update stress test tested and at what tolerance (``[cap] updates = T > 1``; "" otherwise)."""
    st = d.cap.get("stress_test")
    if not st:
        return ""
    b1, b = st["best_profit_scale_1"], st["best_profit"]
    return (
        f" Multi-update manipulation (Appendix A.4): the cap withstands T = {st['updates']} consecutive margin updates: K above is the paper's cap "
        f"times s = {st['scale']:.4f}, the largest scale (bisection to {st['resolution']:g}) whose capped optimum the T-update stress "
        f"test cannot beat: {st['strategies']}, in {st['states']}; tolerance: {st['tolerance_text']}. Best expected profit found against "
        f"the unscaled cap: {'none' if b1 is None else f'{b1:+.3e}'} price units x ADV; against this rule: {'none' if b is None else f'{b:+.3e}'}."
    )


def _no_cap_text(d) -> str:
    if d.is_portfolio and d.cap.get("kind") != "none":
        return "monotonicity only (psi = max(0, -d'AB) = 0: the trigger direction does not load on the liquidation pressure, so (87) sets no cap)"
    return "monotonicity only (no slope cap)"


def _design_paragraph_md(report) -> str:
    d = report.data
    cfg = d.config
    K = d.slope_vol
    pf = d.is_portfolio
    eq_cap = "(88)" if pf else "(40)"
    cap = (f"0 <= dM/dsigma <= K = {K:.6g} in daily-vol units {eq_cap} (here {d.cap.get('formula')}), i.e. dm/dsigma_ann <= K/sqrt(252) = "
           f"{K / SQRT_252:.4f} margin points per annualised-vol point (74)") if math.isfinite(K) else _no_cap_text(d)
    if cfg["objective"]["kind"] == "cost":
        o, k = cfg["objective"], cfg["shock"]
        if pf:
            liq = f", the liquidation cost {_liq_md(d)} with lambda_L = {o['liquidation_weight']:g} and ||AB|| = {d.liquidation_scale:.6g}"
            head = ("For a risk state r (the variance of the margined portfolio's daily return; sigma = sqrt(r) its daily volatility) the "
                    "per-state cost Psi^P(r, M; z) of (85)-(86)")
            other = "(86)"
        else:
            liq = f", the liquidation cost lambda_L C(c_eff (M - M_-)_+) with lambda_L = {o['liquidation_weight']:g}"
            head = "For a risk state r (the variance of daily returns; sigma = sqrt(r) the daily volatility) the per-state cost Psi(r, M; z) of (31)-(32)"
            other = "(32)"
        cost = (
            f"{head} "
            f"adds the expected uncovered close-out loss ({o['loss']}, D = sqrt({k['horizon_days']:g} r) Y over a {k['horizon_days']:g}-day margin period, "
            f"{k['model']} shocks) and the carrying cost kappa_M M = {o['carry']:g} M"
            + (liq if o["liquidation_weight"] else "")
            + (f", the participation cost lambda_P H(1 - N) with lambda_P = {o['participation_weight']:g}" if o["participation_weight"] else "")
            + f"; the other terms of {other} have zero weight here" * (not (o["liquidation_weight"] and o["participation_weight"]))
            + ". The first-best margin M_fb(r) minimises Psi state by state (34); where interior it solves (35)."
        )
    else:
        cost = (
            "The per-state cost is the quadratic approximation of Appendix D.2, Psi = h/2 (M - t(r))^2, around the target schedule t of "
            f"{cfg['objective']['file']}; the first-best is the target itself."
        )
    why = ("(Corollary 1, (38); for a portfolio, the trigger along d and the forced sales B through the cross-impact A, Section 5 and (87))"
           if pf else "(Corollary 1, (38))")
    return (
        f"{cost} A public rule M = g(r) that passes measured risk into margin too steeply can be manipulated by a trigger-and-reverse "
        f"trade {why}; the sufficient cap is {cap}. The published rule solves (41): minimise J(g) = integral f(r | z) "
        f"Psi(r, g(r); z) dr (33) over weakly increasing rules under the cap, on {d.n} states with probability masses f(r | z); between "
        "grid points the cap integrates exactly to K (sigma_{i+1} - sigma_i). By the KKT conditions (68)-(72) the rule tracks the "
        "first-best where it can, rises at the cap (42) where the first-best is too steep, and pools at a level solving (43) where "
        "even that is too much. Segments of this rule: "
        + "; ".join(f"{f.kind} from {100 * SQRT_252 * f.vol_start:.2f}% to {100 * SQRT_252 * f.vol_end:.2f}% annualised vol" for f in report.formulas)
        + "." + _updates_sentence(d)
    )


def _liq_md(d) -> str:
    if d.config["objective"].get("liquidation_cost") == "linear":
        return "lambda_L ||AB|| (M - M_-)_+ (linear form of (86))"
    return "lambda_L/2 ||AB||^2 (M - M_-)_+^2 of (86)"


def _liq_tex(d) -> str:
    if d.config["objective"].get("liquidation_cost") == "linear":
        return "$\\lambda_L \\lVert AB\\rVert_2 (M-M_-)_+$ (linear form of (86))"
    return "$\\tfrac{\\lambda_L}{2}\\lVert AB\\rVert_2^2 (M-M_-)_+^2$ of (86)"


def _fb_cost_header(report) -> str:
    """Header of the first-best column of the objective table: the CCP's existing schedule for a target design."""
    return "Existing schedule (bp)" if report.data.objective_kind == "target" else "First-best (bp)"


def figure_captions(report) -> list[tuple[str, str]]:
    """(name, caption) of every figure of the report: :data:`FIGURES`, and the D.6 figure for a portfolio design."""
    out = list(FIGURES)
    if report.data.objective_kind == "target":   # a target design's first-best is the CCP's existing schedule
        out = [(n, c.replace("the first-best target", "the CCP's existing schedule").replace("first-best", "existing schedule"))
               for n, c in out]
    if report.data.is_portfolio:
        out.append(("portfolio", d6_caption(report.parameters["portfolio"])))
    return out


def _d6_sentence(block: dict, tex: bool = False) -> str:
    """Where the design sits on the D.6 example ((89)-(92)): plain text, or LaTeX with ``tex``."""
    c = block["d6"]
    fit = c["two_asset_fit"]
    thr = c["rho_threshold"]
    # plain text -> LaTeX for the symbols used below (the rest is escaped)
    sym = {
        "||AB||": r"$\lVert AB\rVert_2$", "psi": r"$\psi$", "xi_SA": r"$\xi^{SA}$", "rho": r"$\rho$", "alpha": r"$\alpha$",
        "sqrt(2)": r"$\sqrt2$", "[[1, rho], [rho, 1]]": r"$\begin{pmatrix}1&\rho\\ \rho&1\end{pmatrix}$", "c_r": r"$c_r$",
        "kappa": r"$\kappa$", "sum_i A_ii |B_i|": r"$\sum_i A_{ii}|B_i|$",
    }

    def t(x: str) -> str:
        return sym.get(x, latex_escape(x)) if tex else x

    def T(x: str) -> str:
        return latex_escape(x) if tex else x

    if fit is not None:
        rho = fit["rho"]
        if rho > thr:
            side = "above", "the first-best is flatter and the cap tighter than the single-asset benchmark's"
        elif rho < thr:
            side = "below", "the first-best is steeper and the cap looser than the single-asset benchmark's"
        else:
            side = "at", "the design is the single-asset benchmark exactly"
        return "".join([
            T("This design has the two-asset structure of Appendix D.6: A = "), t("alpha"), " ", t("[[1, rho], [rho, 1]]"), T(" with "), t("alpha"),
            T(f" = {fit['alpha']:.6g} and "), t("rho"), T(f" = {rho:.6g}, B = c/2 (1, 1) with c = {fit['c']:.6g}, d = -(1, 1)/"), t("sqrt(2)"),
            T(". Then "), t("||AB||"), " = ", t("psi"), " = ", t("alpha"), T(" c (1 + "), t("rho"), ")/", t("sqrt(2)"), T(" (89)-(90), "),
            t("||AB||"), "/", t("xi_SA"), " = ", t("psi"), "/", t("xi_SA"), T(" = (1 + "), t("rho"), ")/", t("sqrt(2)"),
            T(f" = {fit['pressure_ratio_89_91']:.4f} (91) against the single-asset benchmark scale "), t("xi_SA"), " = ", t("alpha"),
            T(f" c = {c['benchmark_scale_xi_SA']:.6g}, and the admissible slope is "), t("sqrt(2)"), T("/(1 + "), t("rho"),
            T(f") = {fit['slope_ratio_92']:.4f} times the benchmark's (92) (the same "), t("c_r"), ", ", t("kappa"), T(" = 0); "), t("rho"),
            T(f" is {side[0]} "), t("sqrt(2)"), T(f" - 1 = {thr:.3f}: {side[1]}."),
        ])
    parts = [
        T("This design does not have the two-asset structure of Appendix D.6 (A = "), t("alpha"), " ", t("[[1, rho], [rho, 1]]"),
        T(", B = c/2 (1, 1), d = -(1, 1)/"), t("sqrt(2)"), T("); against the single-asset benchmark scale generalised as "), t("xi_SA"), " = ",
        t("sum_i A_ii |B_i|"), T(f" = {c['benchmark_scale_xi_SA']:.6g} (all forced sales at the B-weighted mean own impact, no cross-impact; "),
        t("alpha"), T(" c in D.6) it has "), t("psi"), "/", t("xi_SA"), T(f" = {c['psi_over_xi_SA']:.4f} and "), t("||AB||"), "/", t("xi_SA"),
        T(f" = {c['price_pressure_over_xi_SA']:.4f}, so "),
    ]
    if c["slope_ratio_xi_SA_over_psi"] is None:
        parts += [t("psi"), T(" = 0 and (87) sets no cap")]
    else:
        parts += [T("an admissible slope "), t("xi_SA"), "/", t("psi"), T(f" = {c['slope_ratio_xi_SA_over_psi']:.4f} times the benchmark's (92) (the same "),
                  t("c_r"), ", ", t("kappa"), T(" = 0)")]
    if c["rho_equivalent"] is not None:
        parts += [T("; the two-asset example of D.6 has this alignment at "), t("rho"), T(f" = {c['rho_equivalent']:.4f} ("), t("sqrt(2)"), " ",
                  t("psi"), "/", t("xi_SA"), T(" - 1), against the threshold "), t("sqrt(2)"), T(f" - 1 = {thr:.3f}")]
    parts.append(".")
    return "".join(parts)


def _contracts(block: dict) -> str:
    n = block["contracts"]
    return f"{n} contract" + ("s" if n != 1 else "")


def _portfolio_md(report) -> str:
    b = report.parameters["portfolio"]
    cap = b["cap_vol_daily"]
    kappa = b["inventory_penalty_kappa"]
    if cap is None:
        cap_txt = "psi = 0 here, so (87) sets no cap: the rule is only monotone"
    else:
        cap_txt = (f"here K = {cap:.6g} margin ratio per unit daily portfolio vol (K/sqrt(252) = {cap / SQRT_252:.4f} per annualised-vol point, (74))"
                   + ("" if b["cap_imposed"] else ", not imposed because the configuration has cap.kind = none"))
    ab = ", ".join(f"{v:.6g}" for v in b["pressure_AB"])
    return (
        f"The margin is one requirement M = g(r) on a portfolio of {_contracts(b)} ({', '.join(b['assets'])}); the risk input r is the "
        "variance of the margined portfolio's daily return (Section 5, Appendix D.5). Three inputs describe the market: the cross-impact matrix A "
        "(price change per unit of ADV traded, symmetric positive definite, Assumption 6), the liquidation vector B (forced sales in ADV of each "
        "contract per unit rise of the margin ratio) and the trigger direction d (the unit direction of the sampled mark vector that raises r), "
        f"with the input's sensitivity along d written c_r = 2 sqrt(r) s_f, s_f = {b['sensitivity_s_f']:.6g} ({b['sensitivity_source']}). "
        f"A unit rise of the margin forces the sales B, which move prices by AB = ({ab}) (price change per unit margin ratio). "
        "Two numbers carry the portfolio into the design problem:\n\n"
        f"- the liquidation price-pressure scale ||AB||_2 = {b['price_pressure_AB_norm']:.6g} (D.5): the liquidation term is "
        f"{b['liquidation_term']} in place of lambda_L C(c_eff (M - M_-)_+) of (32); larger ||AB|| makes the first-best flatter. (86) charges the "
        "price pressure and (32) the flow, so lambda_L is in other units: a one-contract portfolio A = [[alpha]], B = [c_eff], d = [-1] is the "
        "single-contract problem with lambda_L multiplied by alpha^2;\n"
        f"- the trigger-liquidation alignment psi = max{{0, -d'AB}} = {b['psi']:.6g} (87): a trigger along d and the forced sales that follow push "
        "prices the same way. The no-manipulation condition (g'(r) c_r) psi <= 2 of (87)-(88), with the inventory penalty kappa = "
        f"{kappa:g} on the trade vector (the paper's (88) has kappa = 0), is in vol units dM/dsigma <= K_88 = (2 + kappa ||B||^2/B'AB)/(s_f psi); "
        + _all_directions_md(b, cap_txt) + "\n\n"
        "With these two numbers the portfolio design is the single-contract problem of Section 6 (the cap (88) in place of (40), ||AB|| in place of "
        "c_eff), solved by the same solver with the same certificate; for one contract both reduce to (16)-(18) and (32) exactly. The contract "
        "table below compares K with each contract's own single-contract cap. "
        + _d6_sentence(b) + " The last figure draws the D.6 ratios across rho with this design marked."
    )


def _all_directions_md(b: dict, cap_txt: str) -> str:
    """The cap sentence: (88) as used, or the cap over every two-period round trip with (88) beside it."""
    if b.get("cap_directions") == "liquidation":
        return f"{cap_txt} (the configuration asks for (88), trips along the liquidation direction B only)."
    k88 = b.get("cap_vol_88_daily")
    return (
        "that condition only rules out round trips along B (Theorem 3), while the trigger-harvest trip of Section 5.6 triggers along d and "
        "harvests along B. Over every two-period round trip a, -a, Lemma 10's profit -c (a'AB)(d'Aa) - a'(2A + kappa I)a (c = g'(r) c_r) "
        "is negative iff c Phi <= 1 with Phi = (sqrt(u'C^-1u v'C^-1v) - u'C^-1v)/2, u = AB, v = Ad, C = 2A + kappa I (our derivation), "
        f"so this design uses K = 1/(s_f Phi) (Phi = {b.get('phi', 0.0):.6g}); it equals K_88 when B is proportional to -d and is tighter "
        f"otherwise (K_88 = {'none' if k88 is None else format(k88, '.6g')}); " + cap_txt + "."
    )


def _portfolio_tex(report) -> str:
    b = report.parameters["portfolio"]
    cap = b["cap_vol_daily"]
    kappa = b["inventory_penalty_kappa"]
    if cap is None:
        cap_txt = "Here $\\psi=0$, so (87) sets no cap: the rule is only monotone."
    else:
        cap_txt = ("\\begin{equation*}\n\\frac{dM}{d\\sigma} \\le K = "
                   + ("\\frac{2+\\kappa\\lVert B\\rVert^2/B^\\top\\!AB}{s_f\\,\\psi} = " if b.get("cap_directions") == "liquidation" else "\\frac{1}{s_f\\,\\Phi} = ")
                   + f"{cap:.6g}" + ",\\qquad \\frac{K}{\\sqrt{252}} = " + f"{cap / SQRT_252:.4f}" + ("\\qquad\\text{(88), (74)}\n\\end{equation*}\n" if b.get("cap_directions") == "liquidation" else "\\qquad\\text{(Lemma 10), (74)}\n\\end{equation*}\n")
                   + ("" if b["cap_imposed"] else "It is not imposed: the configuration has \\texttt{cap.kind = none}.\n"))
    ab = ", ".join(f"{v:.6g}" for v in b["pressure_AB"])
    names = latex_escape(", ".join(b["assets"]))
    return (
        f"The margin is one requirement $M=g(r)$ on a portfolio of {_contracts(b)} ({names}); the risk input $r$ is the variance of the "
        "margined portfolio's daily return (Section~5, Appendix~D.5). The cross-impact matrix $A$ (price change per unit of ADV traded, symmetric "
        "positive definite, Assumption~6), the liquidation vector $B$ (forced sales in ADV of each contract per unit rise of the margin ratio) and "
        "the trigger direction $d$ (the unit direction of the sampled mark vector that raises $r$) describe the market; the input's sensitivity "
        f"along $d$ is $c_r = 2\\sqrt r\\, s_f$ with $s_f = {b['sensitivity_s_f']:.6g}$ ({latex_escape(b['sensitivity_source'])}). "
        f"A unit rise of the margin forces the sales $B$, which move prices by $AB = ({ab})$. Two numbers carry the portfolio into the design "
        "problem. The liquidation price-pressure scale "
        f"$\\lVert AB\\rVert_2 = {b['price_pressure_AB_norm']:.6g}$ (D.5) enters the liquidation term {_liq_tex(report.data)} in place of "
        "$\\lambda_L C(c^{\\mathrm{eff}}_X (M-M_-)_+)$ of (32): (86) charges the price pressure and (32) the flow, so a one-contract portfolio "
        "$A=\\alpha$, $B=c^{\\mathrm{eff}}_X$, $d=-1$ is the single-contract problem with $\\lambda_L$ multiplied by $\\alpha^2$. The "
        f"trigger-liquidation alignment $\\psi = \\max\\{{0,-d^\\top AB\\}} = {b['psi']:.6g}$ (87) sets the cap: the no-manipulation condition "
        f"$(g'(r)c_r)\\psi \\le 2$ of (87)--(88), with the inventory penalty $\\kappa = {kappa:g}$ on the trade vector (the paper's (88) has "
        "$\\kappa=0$), rules out round trips along $B$. "
        + ("" if b.get("cap_directions") == "liquidation" else
           "Over every two-period round trip (Lemma 10, our derivation) the condition is $g'(r)c_r\\Phi \\le 1$ with "
           "$\\Phi = (\\sqrt{u^\\top C^{-1}u\\; v^\\top C^{-1}v} - u^\\top C^{-1}v)/2$, $u = AB$, $v = Ad$, $C = 2A+\\kappa I$, "
           f"$\\Phi = {b.get('phi', 0.0):.6g}$; it equals (88) when $B$ is proportional to $-d$ and is tighter otherwise, and this design uses it. ")
        + "In vol units\n" + cap_txt +
        "With these two numbers the portfolio design is the single-contract problem of Section~6 (the cap (88) in place of (40), "
        "$\\lVert AB\\rVert_2$ in place of $c^{\\mathrm{eff}}_X$), solved by the same solver with the same certificate. "
        + _d6_sentence(b, tex=True) + " The last figure draws the D.6 ratios across $\\rho$ with this design marked.\n"
    )


_MD_MARKUP = re.compile(r"[\\`*_\[\]<>$~!&]")   # a cell without these renders as typed (numbers stay unescaped)


def _md_rows(rows):
    """Table cells as literal Markdown: the plain-text math of the cells (M_-, (.)_+, 2*alpha) never turns into emphasis."""
    return [[markdown_escape(c) if _MD_MARKUP.search(str(c)) else c for c in row] for row in rows]


def report_markdown(report) -> str:
    d = report.data
    p = report.provenance
    obj = d.objective
    parts = [
        f"# {markdown_escape(report.title)}\n\n",
        f"Methodology appendix generated by margin-design {p['package_version']} from the design of Nicolai (2026), Section 6. "
        f"Effective date: {p['effective_date'] or 'not stated'}. Certificate: {'CERTIFIED' if p['certificate']['ok'] else 'NOT CERTIFIED'} "
        f"(relative gap {_sci(p['certificate']['relative_gap'])}).\n\n",
    ]
    if report.warnings:
        parts.append("> **Warnings**\n>\n" + "".join(f"> - {markdown_escape(w)}\n" for w in report.warnings) + "\n")
    parts += [
        "## 1. Design problem and cap\n\n", markdown_escape(_design_paragraph_md(report)), "\n\n",
    ]
    if d.is_portfolio:
        parts += ["### Portfolio\n\n", markdown_escape(_portfolio_md(report)), "\n\n"]
    parts += [
        "## 2. Parameters\n\n", markdown_table(["Parameter", "Value"], _md_rows(parameter_rows(report.parameters)), [":---", ":---"]), "\n",
    ]
    if d.is_portfolio:
        parts += [
            "Contracts of the portfolio: cross-impact A, forced sales B, trigger direction d, price pressure AB, and each contract's "
            "single-contract cap for comparison (contract i alone: A_ii, B_i, d = -1, the same s_f and kappa; (16)-(18)), against the "
            "portfolio cap K of (88).\n\n",
            markdown_table(list(CONTRACT_HEADERS), _md_rows(contract_rows(report.parameters["portfolio"])), [":---"] + ["---:"] * 7), "\n",
        ]
    parts += [
        "## 3. Rule table\n\n", rule_table_markdown(report.table, report.formulas), "\n",
        _knot_note(report),
        "Formula notes: " + markdown_escape(" ".join(sorted({f"{f.kind}: {f.general_text} ({f.note})." for f in report.formulas}))) + "\n\n",
    ]
    if report.steps is not None:
        rows = [[f"{100 * j['threshold_vol_annual']:.2f}", f"{100 * j['threshold_vol_daily']:.4f}", f"{100 * j['margin_below']:.4f}",
                 f"{100 * j['margin_above']:.4f}", f"{100 * j['jump']:.4f}", f"{1e4 * j['gain_per_unit_trigger']:.2f}"] for j in report.steps.jumps]
        parts += [
            "### Step table jumps\n\n", f"> **Warning.** {step_warning(d)}\n\n",
            f"{len(report.steps.buckets)} buckets of about equal width in volatility; each bucket [from, to) charges the published linear rule at "
            "its upper edge" + (" rounded up to the tick" if report.rounding is not None else "") + ", so it never charges less than the linear rule. Jumps:\n\n",
            markdown_table(["Threshold annual vol (%)", "Threshold daily vol (%)", "Margin below (%)", "Margin above (%)", "Jump (pp)",
                            f"Gain per unit trigger {_gain_symbol(d)} (bp)"], rows, ["---:"] * 6),
            "\n",
        ]
    parts.append("## 4. Figures\n\n")
    for name, cap in figure_captions(report):
        parts.append(f"![{cap}](figures/{name}.png)\n\n*Figure: {cap}* ([PDF](figures/{name}.pdf))\n\n")
    parts += [
        "## 5. Objective and price of manipulation-proofness\n\n",
        f"Expected cost per unit notional in bp of notional (33), {'the existing schedule' if report.data.objective_kind == 'target' else 'first-best M_fb'} against the manipulation-proof rule g*.\n\n",
        markdown_table(["Term", _fb_cost_header(report), "Rule (bp)", "Difference (bp)"], _objective_rows(obj), [":---", "---:", "---:", "---:"]), "\n",
        _cost_sentence(report).replace("*", "\\*"),
        "## 6. Certificate\n\n",
        "KKT certificate of the solved schedule (68)-(72): feasibility of 0 <= increment <= cap, balance and complementarity of the "
        "multipliers, and the Lagrangian duality gap bounding the suboptimality.\n\n",
        markdown_table(["Check", "Value"], _cert_rows(report), [":---", "---:"]), "\n",
        "## 7. Publication checks: knots, rounding and jumps\n\n",
        "".join(f"- {line.replace('*', chr(92) + '*')}\n" for line in _check_lines(report)), "\n",
        "## 8. Provenance\n\n",
        markdown_table(["Item", "Value"], _provenance_rows(report), [":---", ":---"]),
    ]
    return "".join(parts)


def _design_paragraph_tex(report) -> str:
    d = report.data
    cfg = d.config
    K = d.slope_vol
    pf = d.is_portfolio
    if cfg["objective"]["kind"] == "cost":
        o, k = cfg["objective"], cfg["shock"]
        head = ("For a risk state $r$ (the variance of the margined portfolio's daily return; $\\sigma=\\sqrt r$ its daily volatility) the "
                "per-state cost $\\Psi^P(r,M;z)$ of (85)--(86)" if pf else
                "For a risk state $r$ (the variance of daily returns; $\\sigma=\\sqrt r$ the daily volatility) the per-state cost "
                "$\\Psi(r,M;z)$ of (31)--(32)")
        liq = (f", the liquidation cost {_liq_tex(d)} with $\\lambda_L = {o['liquidation_weight']:g}$ and "
               f"$\\lVert AB\\rVert_2 = {d.liquidation_scale:.6g}$" if pf else
               f", the liquidation cost $\\lambda_L C(c^{{\\mathrm{{eff}}}}_X (M-M_-)_+)$ with $\\lambda_L = {o['liquidation_weight']:g}$")
        cost = (
            head + " adds the expected uncovered close-out loss, with "
            f"$D=\\sqrt{{{k['horizon_days']:g}\\,r}}\\,Y$ over a {k['horizon_days']:g}-day margin period ({latex_escape(k['model'])} shocks) "
            f"and the carrying cost $\\kappa_M M$ with $\\kappa_M = {o['carry']:g}$"
            + (liq if o["liquidation_weight"] else "")
            + (f", the participation cost $\\lambda_P H(1-N)$ with $\\lambda_P = {o['participation_weight']:g}$" if o["participation_weight"] else "")
            + f"; the other terms of {'(86)' if pf else '(32)'} have zero weight here" * (not (o["liquidation_weight"] and o["participation_weight"]))
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
            "\\frac{dm}{d\\sigma^{\\mathrm{ann}}} \\le \\frac{K}{\\sqrt{252}} = " + f"{K / SQRT_252:.4f}" + "\\qquad\\text{" + ("(88)" if pf else "(40)") + ", (74)}\n\\end{equation*}\n"
        )
    else:
        cap = ("Here the rule is only required to be monotone: $\\psi=\\max\\{0,-d^\\top AB\\}=0$, so (87) sets no cap.\n"
               if pf and d.cap.get("kind") != "none" else "Here the rule is only required to be monotone (no slope cap).\n")
    segs = "; ".join(
        f"{f.kind} from {100 * SQRT_252 * f.vol_start:.2f}\\% to {100 * SQRT_252 * f.vol_end:.2f}\\%" for f in report.formulas
    )
    return (
        cost + " A public rule $M=g(r)$ that passes measured risk into margin too steeply can be manipulated by a trigger-and-reverse "
        "trade (Corollary~1, (38)" + ("; for a portfolio Section~5 and (87)" if pf else "") + "); the sufficient cap is\n" + cap +
        "The published rule solves (41),\n\\begin{equation*}\n\\min_{g}\\ J(g)=\\int f(r\\mid z)\\,\\Psi(r,g(r);z)\\,dr \\quad\\text{s.t. } "
        "g \\text{ weakly increasing and within the cap},\n\\end{equation*}\n"
        f"on {d.n} states with probability masses $f(r\\mid z)$; between grid points the cap integrates exactly to $K(\\sigma_{{i+1}}-\\sigma_i)$. "
        "By the KKT conditions (68)--(72) the rule tracks the first-best where it can, rises at the cap (42) where the first-best is too "
        f"steep, and pools at a level solving (43) where even that is too much. Segments (annualised vol): {segs}."
        + latex_escape(_updates_sentence(d)) + "\n"
    )


def report_latex(report) -> str:
    d = report.data
    p = report.provenance
    obj = d.objective
    esc = latex_escape
    parts = [
        "% Methodology appendix generated by margin-design; \\input this file. Requires amsmath, amssymb, array, booktabs, graphicx, longtable.\n",
        f"\\section*{{{esc(report.title)}}}\n",
        f"Methodology appendix from the design of Nicolai (2026), Section~6. Effective date: {esc(p['effective_date'] or 'not stated')}. "
        f"Certificate: {'CERTIFIED' if p['certificate']['ok'] else 'NOT CERTIFIED'} (relative gap {_sci(p['certificate']['relative_gap'])}).\n\n",
    ]
    if report.warnings:
        parts.append("\\paragraph{Warnings.}\n\\begin{itemize}\n" + "".join(f"\\item {esc(w)}\n" for w in report.warnings) + "\\end{itemize}\n\n")
    parts += [
        "\\subsection*{Design problem and cap}\n", _design_paragraph_tex(report), "\n",
    ]
    if d.is_portfolio:
        parts += ["\\subsubsection*{Portfolio}\n", _portfolio_tex(report), "\n"]
    parts += [
        "\\subsection*{Parameters}\n{\\small\n",
        latex_longtable(["Parameter", "Value"], parameter_rows(report.parameters), ">{\\raggedright\\arraybackslash}p{0.36\\linewidth}p{0.55\\linewidth}"),
        "}\n\n",
    ]
    if d.is_portfolio:
        parts += [
            "Contracts of the portfolio: row of the cross-impact matrix $A$ (price change per unit of ADV traded), forced sales $B_i$ (ADV per "
            "unit margin ratio), trigger direction $d_i$, price pressure $(AB)_i$ (price change per unit margin ratio), and each contract's "
            "single-contract cap for comparison (contract $i$ alone: $A_{ii}$, $B_i$, $d=-1$, the same $s_f$ and $\\kappa$; (16)--(18)), "
            "$K_i$ per unit daily vol and $K_i/\\sqrt{252}$ in pp of margin per annualised-vol point, against the portfolio cap $K$ of (88)."
            "\n\\begin{center}\n\\scriptsize\n",
            latex_tabular([TeX(h) for h in CONTRACT_HEADERS_TEX], contract_rows(report.parameters["portfolio"]), "lrrrrrrr"),
            "\\end{center}\n\n",
        ]
    parts += [
        "\\subsection*{Rule table}\n", rule_table_latex(report.table, report.formulas), "\n",
        "Formula notes: " + " ".join(sorted({f"{f.kind}: ${f.general_latex}$ ({esc(f.note)})." for f in report.formulas})) + "\n\n",
    ]
    if report.steps is not None:
        rows = [[f"{100 * j['threshold_vol_annual']:.2f}", f"{100 * j['margin_below']:.4f}", f"{100 * j['margin_above']:.4f}",
                 f"{100 * j['jump']:.4f}", f"{1e4 * j['gain_per_unit_trigger']:.2f}"] for j in report.steps.jumps]
        parts += [
            "\\subsection*{Step table jumps}\n", f"\\textbf{{Warning.}} {esc(step_warning(d))}\n\n",
            "\\begin{center}\n\\small\n",
            latex_tabular(["Threshold vol (ann., %)", "Below (%)", "Above (%)", "Jump (pp)",
                           TeX("Gain $\\lVert AB\\rVert_2 \\Delta M$ (bp)" if d.is_portfolio else "Gain $\\alpha c^{\\mathrm{eff}}_X \\Delta M$ (bp)")], rows, "rrrrr"),
            "\\end{center}\n\n",
        ]
    parts.append("\\subsection*{Figures}\n")
    for name, cap in figure_captions(report):
        parts.append(
            "\\begin{figure}[htbp]\n\\centering\n"
            f"\\includegraphics[width=0.9\\linewidth]{{figures/{name}.pdf}}\n\\caption{{{esc(cap)}}}\n\\label{{fig:margin-{name}}}\n\\end{{figure}}\n"
        )
    parts += [
        "\n\\subsection*{Objective and price of manipulation-proofness}\n",
        "Expected cost per unit notional in bp of notional (33).\n\\begin{center}\n\\small\n",
        latex_tabular(["Term", _fb_cost_header(report), "Rule (bp)", "Difference (bp)"], _objective_rows(obj), "lrrr"),
        "\\end{center}\n\n",
        esc(_cost_sentence(report)),
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
