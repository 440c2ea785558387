"""``margin-design audit``'s files and figures: the rendering of an :class:`~margin_design.audit.Audit` (Nicolai 2026).

    from margin_design.audit import AuditOptions, build_audit, load_rule

    audit = build_audit(load_rule("rule.csv"), "examples/benchmark.toml", AuditOptions(data="sp500"))
    write_audit(audit, "out/audit")

The audit itself (local analysis, simulation, backtest, comparison; the :class:`~margin_design.audit.Audit` result
with its text summary) is computed in :mod:`margin_design.audit.build`; this module only renders it.

Files (``write_audit``, written atomically as a folder): ``summary.txt``, ``audit.md`` and ``audit.html`` (the summary
as a document with the figures, embedded in the HTML, and the paper's reference), ``audit.json``, ``states.csv`` and
``states.json`` (the per-state table, unit-named columns), ``jumps.csv``, ``risk_inputs.csv``,
``backtest_paths.csv`` (with data), ``portfolio.md`` and ``portfolio_profits.csv`` (portfolio markets), and
``figures/slope_vs_cap.png``, ``figures/profit_vs_q.png`` (with the simulation), ``figures/backtest.png`` (with
data). Same inputs, byte-identical files.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np

from margin_design.audit.build import (
    PORTFOLIO_STATE_HEADER,
    PROFIT_TABLE_HEADER,
    RULE_LABELS,
    SQRT_252,
    Audit,
    _num,
    _portfolio_state_cells,
    _portfolio_state_index,
    _profit_table_cells,
    _ranges_text,
    _vec,
)
from margin_design.audit.portfolio import AGREE_Z
from margin_design.audit.rules import true_runs
from margin_design.fileio import check_output_folder, write_tree
from margin_design.jsonable import jsonable as _clean

__all__ = [
    "audit_files",
    "write_audit",
    "check_audit_folder",
    "render_audit_figures",
    "portfolio_markdown",
    "STATE_COLUMNS",
    "OPTIONAL_STATE_COLUMNS",
]


def portfolio_markdown(audit) -> str:
    """portfolio.md: the portfolio block, the per-state table and the profit table of a [portfolio] audit."""
    from margin_design.reports.table import markdown_table

    pf = audit.portfolio
    pm = pf["market"]
    t, h = pm.separated_legs()
    out = [f"# Portfolio audit: {audit.rule.name}", "",
           f"Rule: {audit.rule.describe()}. Market: `{audit.market_file}` ({pm.k} contracts: {', '.join(pm.assets)}). "
           "Nicolai (2026), Section 5, Lemma 10, Theorems 3-4, (87)-(88), D.5-D.6. Units: prices per unit notional, trades in ADV, "
           "margins as ratios, r the daily variance of the margined portfolio's return, sigma its daily vol.", "",
           "## Market", ""]
    rows = [
        ["A (price per ADV traded)", str([[float(f"{x:.6g}") for x in row] for row in pm.impact])],
        ["B (ADV per unit margin ratio)", _vec(pm.liquidation)], ["d (unit)", _vec(pm.direction)], ["s_f", f"{pm.sensitivity:.6g}"],
        ["AB", _vec(pm.pressure_vector)], ["psi = max(0, -d'AB) (87)", f"{pm.psi:.6g}"], ["||AB||_2 (86)", f"{pm.price_pressure:.6g}"],
        ["b = B/||B||_1 (Theorem 3's direction)", _vec(pm.b)], ["b'Ab (price per ADV)", f"{pm.bab:.6g}"],
        ["cap (88) on dM/dsigma, K", _num(pm.cap_vol)], ["cap over every two-period direction, K_all = 1/(s_f Phi)", _num(pm.cap_vol_all)],
        ["trigger-harvest trip a*: trigger leg", _vec(t)], ["trigger-harvest trip a*: harvest leg", _vec(h)],
        ["kappa, tau, rho", f"{pm.inventory_penalty:g}, {pm.execution_cost:g}, {pm.funding_spread:g}"],
    ]
    out.append(markdown_table(["quantity", "value"], rows))
    out += ["**Normalisation of B in H_t (29).** Theorem 3 takes `||B||_1 = 1`. Here only the trade direction is normalised: "
            "`b = B/||B||_1` and `a_t = -q b` (so `||a_t||_1 = q`); the bracket keeps the model's liquidation vector B of (26). "
            "Then `E[Pi] = q^2 H_t` to first order with `H_t = b'Ab (c_g c_r psi - 2)`, `c_g = g'(r)` the rule's right slope and "
            "`c_Gamma = c_r = 2 sqrt(r) s_f`: `H_t > 0` iff the slope is over the cap (88) with `kappa = 0`.", "",
            "**Every direction (our derivation).** Lemma 10's identity is a quadratic form in the trade vector a; the direction "
            "`a* = C^-1 (Ad/||Ad|| - AB/||AB||)` (`C = 2A + kappa I`, norms in `C^-1`) has the largest gain per unit own cost "
            "`a'Ca`; it is a trigger leg plus a harvest leg (5.6) and profits iff the slope exceeds `K_all <= K`. "
            "`K_all = K` iff d and -B are aligned (D.6, one contract); otherwise a rule at the cap (88) stays manipulable.", "",
            "## Rules", ""]
    rows = []
    for key in ("rule", "first_best", "capped"):
        sm = pf["local"][key].summary()
        rows.append([RULE_LABELS[key], f"{sm['states_H_positive']} of {sm['states']}", _ranges_text(sm["vol_H_positive"]) or "none",
                     str(sm["states_over_cap88"]), str(sm["states_over_cap_all_directions"]), f"{sm['max_H_t']:+.4g}"])
    out.append(markdown_table(["rule", "H_t > 0 (Theorem 3)", "daily vol with H_t > 0", "over (88)", "over K_all", "max H_t"], rows))
    idx = _portfolio_state_index(audit.problem.n)
    out += ["", f"## State by state ({len(idx)} of {audit.problem.n} states; every state in `states.csv`)", "",
            markdown_table(PORTFOLIO_STATE_HEADER, _portfolio_state_cells(audit, idx))]
    sim = pf["simulation"]
    if sim is not None:
        checks = sim.checks()
        out += ["## Simulation (Section 5.3 market)", ""] + [f"- {line.strip()}" for line in audit.simulation["text"]] + [""]
        out += [f"## Profit table (q = {pm.trigger:g} ADV; every q in `portfolio_profits.csv`)", "",
                "Profits in price units x ADV; closed form = Lemma 10's identity with the simulated sector's exact liquidation; "
                "linear B = -l(a) Delta M - 2 a'Aa (28) with Delta M from the rule; band = 1.96 standard errors.", "",
                markdown_table(PROFIT_TABLE_HEADER, _profit_table_cells(audit))]
        out.append(f"Checks: Monte Carlo agrees with the closed form (|z| <= {AGREE_Z:g}): {checks['a_monte_carlo_agrees']}; "
                   f"first-best profitable where H_t > 0: {checks['b_first_best_profitable_where_H_positive']}; "
                   f"capped optimum not profitable by Theorem 3's trip: {checks['c_capped_not_profitable_theorem3']}; "
                   f"trigger-harvest trip profitable against g* in {checks['capped_separated_profitable_states']} of {len(sim.vols)} states.\n")
    return "\n".join(out)


# ----------------------------------------------------------------------------------------------
# Files and figures
# ----------------------------------------------------------------------------------------------

STATE_COLUMNS = (
    "vol_daily", "vol_annual", "r_daily_variance", "weight", "margin_ratio", "first_best_margin_ratio", "capped_margin_ratio",
    "slope_dm_dr", "slope_dm_dr_left", "slope_dm_dvol", "slope_dm_dvol_annual", "capped_slope_dm_dvol", "cap_dm_dr", "cap_dm_dvol",
    "slope_over_cap", "exceeds_cap", "last_return_abs", "c_gamma_per_price", "c_x_adv_per_margin", "G", "A_price_per_adv2",
    "B_price_per_adv", "q_min_adv", "trigger_adv", "distortion_bps", "margin_after_ratio", "bound15_price_x_adv",
    "bound58_price_x_adv", "profit_bps_64", "profit_bps", "roi_pct", "profitable",
)
OPTIONAL_STATE_COLUMNS = (
    "c_eff_strategic", "c_eff_naive", "strategic_outcome", "manipulation_probability", "G_strategic", "exceeds_cap_strategic",
    "trim_jump_margin_ratio", "trim_gain_per_unit_trigger", "winsor_flat",
) + (
    "c_r_per_price", "H_t_price_per_adv2", "H_t_kappa_price_per_adv2", "theorem3_holds", "cap88_dm_dvol", "exceeds_cap88",
    "cap_all_dm_dvol", "exceeds_cap_all", "separated_coef_price_per_adv2", "first_best_H_t_price_per_adv2", "capped_H_t_price_per_adv2",
)
JUMP_COLUMNS = (
    "threshold_vol_daily", "threshold_vol_annual", "margin_below_ratio", "margin_above_ratio", "jump_ratio", "direction",
    "gain_per_unit_trigger", "gain_bps", "net_bps", "best_trigger_adv", "best_net_price_x_adv", "reach_vol_daily", "source",
)
RISK_INPUT_COLUMNS = ("input", "kind", "vol_daily", "value", "D_down_per_price", "D_up_per_price", "dm_dp", "direction", "jump_margin",
                      "G", "cap_dm_dp", "exceeds_cap", "jump_gain_per_unit_trigger")


def _csv(rows, columns) -> str:
    from margin_design.reports.table import csv_text

    return csv_text([{c: _clean(r.get(c)) for c in columns} for r in rows], columns)


def audit_files(audit: Audit, *, figures: bool = True) -> dict[str, bytes]:
    """{relative path: bytes} of every output file (deterministic)."""
    rows = audit.state_rows()
    cols = STATE_COLUMNS + tuple(c for c in OPTIONAL_STATE_COLUMNS if rows and c in rows[0])
    files = {
        "summary.txt": (audit.summary() + "\n").encode(),
        "audit.json": (json.dumps(audit.to_dict(), indent=2, allow_nan=False) + "\n").encode(),
        "states.csv": _csv(rows, cols).encode(),
        "states.json": (json.dumps(_clean([{c: r.get(c) for c in cols} for r in rows]), indent=1, allow_nan=False) + "\n").encode(),
        "jumps.csv": _csv([j.to_dict() for j in audit.jumps], JUMP_COLUMNS).encode(),
        "risk_inputs.csv": _csv(audit.risk_inputs, RISK_INPUT_COLUMNS).encode(),
    }
    if audit.portfolio is not None:
        files["portfolio.md"] = portfolio_markdown(audit).encode()
        if audit.portfolio["simulation"] is not None:
            files["portfolio_profits.csv"] = _csv(audit.portfolio["simulation"].table(), PROFIT_COLUMNS).encode()
    if audit.backtest is not None:
        b = audit.backtest
        keys = list(b["paths"])
        d = b["data"]
        lines = ["date,close,r_daily_variance,loss_forward_ratio," + ",".join(f"margin_{k}_ratio" for k in keys)]
        for i in range(len(d.dates)):
            vals = [d.close[i], d.r[i], d.loss[i]] + [b["paths"][k][i] for k in keys]
            lines.append(d.dates[i] + "," + ",".join("" if not np.isfinite(x) else repr(float(x)) for x in vals))
        files["backtest_paths.csv"] = ("\n".join(lines) + "\n").encode()
    if figures:
        files.update(render_audit_figures(audit))
    from margin_design.reports.audit_doc import audit_html, audit_markdown

    pngs = {k: v for k, v in files.items() if k.startswith("figures/") and k.endswith(".png")}
    md = audit_markdown(audit, sorted(pngs))
    files["audit.md"] = md.encode("utf-8")
    files["audit.html"] = audit_html(md, audit.rule.name, pngs).encode("utf-8")
    return files


#: Everything an audit folder may hold (an existing folder holding only these is replaced as a whole).
AUDIT_OWNED = ("summary.txt", "audit.md", "audit.html", "audit.json", "states.csv", "states.json", "jumps.csv", "risk_inputs.csv",
               "backtest_paths.csv", "portfolio.md", "portfolio_profits.csv", "figures/*.png")
#: portfolio_profits.csv: one row per (state, rule, strategy, q); profits in price units x ADV.
PROFIT_COLUMNS = ("vol_daily", "rule", "strategy", "q_adv", "H_t", "margin_ratio", "margin_move_ratio", "closed_form", "mc_mean", "mc_band",
                  "mc_lower", "mc_upper", "lemma10_linear_B", "first_order", "significantly_positive")


def check_audit_folder(folder: str | Path, inputs=()) -> Path:
    """Refuse (OutputError) an ``--out`` the audit may not write (see :mod:`margin_design.fileio`), before any work."""
    return check_output_folder(folder, owned=AUDIT_OWNED, inputs=inputs)


def write_audit(audit: Audit, folder: str | Path) -> Path:
    """Write every file into ``folder`` (replaced as a whole, atomically, only if it holds nothing but audit files)."""
    return write_tree(folder, audit_files(audit), owned=AUDIT_OWNED)


def render_audit_figures(audit: Audit) -> dict[str, bytes]:
    """PNG figures: slope vs cap (violations marked), simulated profit vs q, backtest paths."""
    import matplotlib

    from margin_design.reports.figures import RC

    out = {}
    with matplotlib.rc_context(RC):
        out["figures/slope_vs_cap.png"] = _png(_slope_figure(audit))
        if audit.simulation is not None and "curves_obj" in audit.simulation:
            out["figures/profit_vs_q.png"] = _png(_profit_figure(audit))
        elif audit.portfolio is not None and audit.portfolio["simulation"] is not None:
            out["figures/profit_vs_q.png"] = _png(_portfolio_profit_figure(audit))
        if audit.backtest is not None:
            out["figures/backtest.png"] = _png(_backtest_figure(audit))
    return out


def _png(fig) -> bytes:
    from margin_design.reports.figures import DPI, PNG_METADATA

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata=PNG_METADATA)
    return buf.getvalue()


COLORS = {"rule": "#1b4f9c", "first_best": "#555555", "capped": "#1a9850", "cap": "#b2182b", "violation": "#d73027"}


def _fb_label(audit: Audit) -> str:
    """The first-best's name in the figures: the CCP's existing schedule when the market config is a target design."""
    return "existing schedule (target)" if getattr(audit.problem.objective, "kind", None) == "target" else "first-best $M^{fb}$"


def _slope_figure(audit: Audit):
    from matplotlib.figure import Figure
    from matplotlib.ticker import PercentFormatter

    p = audit.problem
    va = SQRT_252 * p.vol
    from margin_design.reports.figures import BASE, OVER, coincide_note

    fig = Figure(figsize=(7.0, 4.6), layout="constrained")
    ax = fig.add_subplot()
    pf = audit.portfolio
    ax.set_title("Slope of the rule against the manipulation-proof cap " + ("(88), portfolio" if pf is not None else "(16)-(18)"))
    to_ann = 2.0 * p.vol / SQRT_252   # dM/dr -> dM/dsigma_ann
    la, fb, cp = audit.local, audit.local_first_best, audit.local_capped

    def slope(a):  # right slopes, the left one at the top end (the rules are flat beyond the grid)
        return to_ann * np.concatenate([a.slope_right[:-1], a.slope_left[-1:]])

    ex = la.exceeds_cap
    edges = np.concatenate([[va[0]], 0.5 * (va[1:] + va[:-1]), [va[-1]]])
    for i, j in true_runs(ex):
        ax.axvspan(edges[i], edges[j + 1], color=COLORS["violation"], alpha=0.12, lw=0, zorder=0)
    if ex.any():
        ax.fill_between([], [], color=COLORS["violation"], alpha=0.12, lw=0, label=f"rule over the cap ({int(ex.sum())} of {ex.size} states)")
    ax.plot(va, to_ann * la.cap_r, color=COLORS["cap"], lw=3.5, alpha=0.45, label=("cap (88)" if pf is not None else "cap (16)") + ", $dM/d\\sigma^{ann}$")
    if pf is not None:
        call = to_ann * pf["local"]["rule"].cap_all_dm_dr
        if np.any(np.isfinite(call)) and np.any(call < to_ann * la.cap_r * (1.0 - 1e-12)):
            ax.plot(va, call, color=COLORS["cap"], lw=1.2, ls="-.", label="two-period cap over every direction, $K_{all}$")
    # the rule wide and solid underneath, the first-best and g* dashed on top: a rule equal to either stays visible
    rs, span = slope(la), float(np.max(np.abs(to_ann * la.cap_r[np.isfinite(la.cap_r)]), initial=0.0))
    span = max(span, float(np.max(np.abs(rs))), 1e-12)
    unit = lambda d: f"{d:.2g} pp per vol point"  # noqa: E731
    ax.plot(va, rs, color=COLORS["rule"], **BASE, label=f"rule: {audit.rule.name}")
    ax.plot(va, slope(fb), color=COLORS["first_best"], ls=(0, (2, 2)), lw=1.3, zorder=3,
            label=_fb_label(audit) + coincide_note(slope(fb), rs, span, "the rule", unit))
    ax.plot(va, slope(cp), color=COLORS["capped"], **OVER, label="capped optimum $g^*$" + coincide_note(slope(cp), rs, span, "the rule", unit))
    for j in audit.jumps[:40]:
        ax.axvline(SQRT_252 * j.vol_daily, color=COLORS["violation"], lw=0.6, ls=":", alpha=0.8)
    if audit.jumps:
        ax.plot([], [], color=COLORS["violation"], lw=0.6, ls=":", label=f"jumps ({len(audit.jumps)}, Section 6.6)")
    finite = np.isfinite(la.cap_r)
    top = max(float(np.max((to_ann * la.slope_right))), float(np.max(slope(fb))),   # the first-best in view too (up to 3 caps)
              float(np.max((to_ann * la.cap_r)[finite])) if finite.any() else 0.0, 1e-6)
    ax.set_ylim(-0.03 * top, 1.15 * min(top, 3.0 * float(np.max((to_ann * la.cap_r)[finite])) if finite.any() else top))
    ax.set_xlim(va[0], va[-1])
    ax.xaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))
    ax.set_xlabel("annualised volatility $\\sqrt{252}\\,\\sigma$ (%)")
    ax.set_ylabel("slope $dM/d\\sigma^{ann}$ (margin points per vol point)")
    fig.legend(loc="outside lower center", ncols=2, fontsize=7, frameon=False)   # below the axes: no line hidden
    return fig


def _profit_figure(audit: Audit):
    from matplotlib.figure import Figure
    from matplotlib.ticker import PercentFormatter

    from margin_design.reports.figures import coincide_note

    curves = audit.simulation["curves_obj"]
    fig = Figure(figsize=(7.0, 5.4), layout="constrained")
    ax = fig.add_subplot()
    k = min(1, len(curves["rule"]) - 1)
    c0 = curves["rule"][k]
    ax.set_title(f"Round trip (-q, +q): simulated expected profit, envelope state, daily vol {math.sqrt(c0.state.r):.2%}")
    # every legend entry names its rule; the rule is drawn first and widest, the first-best and g* on top with their own
    # markers, so a rule equal to one of them shows both (and the legend says they coincide)
    rule_mean = curves["rule"][k].mean / curves["rule"][k].q
    span = max(float(np.ptp(np.concatenate([curves[key][k].mean / curves[key][k].q for key in curves]))), 1e-12)
    marks = {"rule": ("o", 4.5, 2.6, "full"), "first_best": ("s", 6.0, 1.6, "none"), "capped": ("^", 6.0, 1.6, "none")}
    for z, (key, label) in enumerate((("rule", f"rule: {audit.rule.name}"), ("first_best", _fb_label(audit)), ("capped", "capped optimum $g^*$"))):
        c = curves[key][k]
        scale = 1e4 / c.q   # E[Pi] / q in bp of the trigger notional
        mk, ms, lw, fill = marks[key]
        same = "" if key == "rule" else coincide_note(c.mean / c.q, rule_mean, span, "the rule", lambda d: f"{1e4 * d:.2g} bp")
        ax.fill_between(c.q, scale * c.lower, scale * c.upper, color=COLORS[key], alpha=0.2, lw=0)
        ax.plot(c.q, scale * c.mean, marker=mk, ms=ms, fillstyle=fill, color=COLORS[key], lw=lw, zorder=3 + z,
                label=f"{label}, simulated (95% band){same}")
        ax.plot(c.q, scale * c.closed_form, ls="--", lw=lw - 0.6, color=COLORS[key], zorder=3 + z, label=f"{label}, closed form $\\alpha q(L-2q)$")
        if key != "capped":
            ax.plot(c.q, scale * c.bound, ls=":", lw=lw - 0.6, color=COLORS[key], zorder=3 + z, label=f"{label}, Lemma 5 bound (15)")
    ax.axhline(0.0, color="black", lw=0.7)
    ax.xaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=2))
    ax.set_xlabel("trigger q (% of ADV)")
    ax.set_ylabel("expected profit (bp of trigger notional)")
    fig.legend(loc="outside lower center", fontsize=6.5, frameon=False, ncols=2)
    return fig


def _portfolio_profit_figure(audit: Audit):
    from matplotlib.figure import Figure
    from matplotlib.ticker import PercentFormatter

    sim = audit.portfolio["simulation"]
    fig = Figure(figsize=(9.0, 4.6), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    k = min(1, len(sim.vols) - 1)
    fig.suptitle(f"Two-period vector round trips (Section 5.3), envelope state, daily portfolio vol {sim.vols[k]:.2%}", fontsize=9)
    for ax, (st, title) in zip(axes, (("theorem3", "Theorem 3: $a_t = -q\\,B/\\|B\\|_1$"), ("separated", "trigger-harvest (5.6): $a_t = q\\,a^*$"))):
        for key, label in (("first_best", _fb_label(audit)), ("capped", "capped optimum $g^*$"), ("rule", f"rule: {audit.rule.name}")):
            c = sim.curves[key][st][k]
            scale = 1e4 / c.q   # E[Pi] / q in bp of the traded notional ||a_t||_1
            ax.fill_between(c.q, scale * c.lower, scale * c.upper, color=COLORS[key], alpha=0.2, lw=0)
            ax.plot(c.q, scale * c.mean, "o-", ms=3, color=COLORS[key], lw=1.5, label=f"{label}: Monte Carlo, 95% band")
            ax.plot(c.q, scale * c.closed_form, ls="--", lw=1.0, color=COLORS[key], label=f"{label}: closed form (Lemma 10, exact L)")
        ax.axhline(0.0, color="black", lw=0.7)
        ax.set_title(title, fontsize=8)
        ax.xaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=2))
        ax.set_xlabel("trade size $q = \\|a_t\\|_1$ (% of ADV)")
    axes[0].set_ylabel("expected profit (bp of traded notional)")
    axes[0].legend(loc="lower left", fontsize=6, frameon=False)
    return fig


def _backtest_figure(audit: Audit):
    import datetime as dt

    from matplotlib.figure import Figure
    from matplotlib.ticker import PercentFormatter

    from margin_design.audit.backtest import STRESS_EPISODES

    from margin_design.reports.figures import coincide_note

    b = audit.backtest
    d = b["data"]
    x = np.asarray([dt.date.fromisoformat(s) for s in d.dates])
    target = _fb_label(audit).startswith("existing")
    rule_path = b["paths"]["rule"]
    both = np.concatenate([b["paths"][key] for key in ("rule", "first_best", "capped")])
    span = max(float(np.nanmax(both) - np.nanmin(both)), 1e-12)
    fig = Figure(figsize=(8.0, 6.4), layout="constrained")
    axes = fig.subplots(2, 1)
    styles = {"first_best": (COLORS["first_best"], 0.9, "-"), "capped": (COLORS["capped"], 1.2, "-"), "rule": (COLORS["rule"], 1.2, "-"),
              "rule_buffer": ("#e08214", 0.8, "-"), "rule_stressed": ("#8073ac", 0.8, "-"), "rule_floor": ("#b35806", 0.8, "--")}
    lo, hi = x[0], x[-1]
    zoom = (dt.date(2008, 6, 1), dt.date(2009, 6, 30))
    if not (lo <= zoom[0] <= hi):
        zoom = (lo, hi)
    for ax, (a, z) in zip(axes, ((lo, hi), zoom)):
        for name, s, e in STRESS_EPISODES:
            s, e = dt.date.fromisoformat(s), dt.date.fromisoformat(e)
            if e >= a and s <= z:
                ax.axvspan(max(s, a), min(e, z), color="#eeeeee", lw=0, zorder=0)
        sel = (x >= a) & (x <= z)
        for key, path in b["paths"].items():
            col, lw, ls = styles.get(key, ("#999999", 0.8, "-"))
            name, z_order = b["names"][key], 2
            if key == "rule":
                lw, z_order = 2.4, 2   # wide and solid underneath: a first-best or g* path equal to it runs on top
            elif key in ("first_best", "capped"):
                if key == "first_best" and target:
                    name = "existing schedule (target)"
                note = coincide_note(path, rule_path, span, "the rule")
                if note:
                    lw, ls, z_order = 1.1, (0, (4, 3)), 4
                name += note
            ax.plot(x[sel], path[sel], color=col, lw=lw, ls=ls, zorder=z_order, label=name)
        ax.set_xlim(a, z)
        ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=None))
        ax.set_ylabel("margin ratio (% of notional)")
        ax.set_xlabel("date")
    axes[0].set_title(f"Margin paths through history ({d.source.split(' (')[0]}); stress episodes shaded")
    axes[1].set_title("Zoom: 2008-09 crisis" if zoom[0].year == 2008 else "Zoom")
    axes[0].legend(loc="upper left", fontsize=6.5, frameon=False, ncols=2)
    return fig
