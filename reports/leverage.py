"""The ``margin-design leverage`` folder: the study of :mod:`margin_design.calibration.leverage` as files.

Files (written atomically as one folder, :func:`margin_design.fileio.write_tree`):

* ``leverage.md``: settings, the path's end, the seed's claims checked, the guardrail table, the real path and the
  design link (when asked for), and the figures;
* ``leverage.json``: the summary (``LeverageStudy.to_dict``); ``leverage_path.csv``: the tick model's path, one row per
  tick, units in the column names (``_c0``: multiples of the original collateral C0; ``_p0``: multiples of the
  starting price; ``_decimal``: decimal price falls); ``leverage_guardrails.csv``: the guardrail table, long form;
  ``leverage_real_path.csv`` (with ``--path``): one row per day; ``leverage_design.csv`` (with ``--schedule``): one
  row per state of the rule;
* ``figures/``: ``leverage_power`` (equity and liabilities against price for L = 1..5, the seed's charts 1-3),
  ``leverage_by_l`` (the value at the rise against L, linear and log scale, the seed's chart 4), ``leverage_guardrails``
  (exposure and the half-collateral drop under each guardrail), ``leverage_real_path`` and ``leverage_design`` when
  asked for; PNG and PDF, deterministic (:mod:`margin_design.reports.figures`).
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from margin_design.calibration.leverage import SEED_LEVERAGE, SEED_TICK
from margin_design.fileio import check_output_folder, write_tree
from margin_design.reports.figures import DPI, PDF_METADATA, PNG_METADATA, RC, plain_axis
from margin_design.reports.table import csv_text, markdown_table

__all__ = ["LEVERAGE_FILES", "check_leverage_folder", "leverage_files", "write_leverage", "leverage_markdown"]

#: Every file the command may write (an existing --out holding only these is replaced).
LEVERAGE_FILES = ("leverage.md", "leverage.json", "leverage_path.csv", "leverage_guardrails.csv", "leverage_real_path.csv",
                  "leverage_design.csv", "figures/leverage_*.png", "figures/leverage_*.pdf")
PATH_COLUMNS = ("tick", "price_p0", "counted_equity_c0", "true_equity_c0", "unrealised_profit_c0", "exposure_c0", "liabilities_c0",
                "half_collateral_drop_decimal", "equity_to_half_collateral_drop_decimal", "wipeout_drop_decimal")
GUARDRAIL_COLUMNS = ("guardrail", "leverage", "counted_equity_c0", "true_equity_c0", "exposure_c0", "liabilities_c0",
                     "half_collateral_drop_decimal", "equity_to_half_collateral_drop_decimal")
REAL_COLUMNS = ("date", "close", "price_p0", "true_equity_c0", "counted_equity_c0", "exposure_c0", "liabilities_c0",
                "forced_sales_c0", "bad_debt_c0", "event")
DESIGN_COLUMNS = ("vol_daily", "vol_annual", "margin", "leverage", "counted_equity_c0", "unrealised_profit_c0", "c_eff",
                  "c_eff_effective", "cap_dm_dvol", "cap_dm_dvol_effective", "slope_dm_dvol", "over_effective_cap")
COLORS = ("#1b4f9c", "#2c7fb8", "#e08214", "#b2182b", "#542788", "#1a9850")
#: Line styles of the guardrail scenarios: the first (no guardrail) wide and solid underneath, the others narrower and
#: dashed on top, so that a guardrail that does not bind (its line on the first) stays visible.
STYLES = ({"lw": 3.2, "ls": "-", "zorder": 2}, {"lw": 1.6, "ls": (0, (6, 2)), "zorder": 3}, {"lw": 1.6, "ls": (0, (2, 2)), "zorder": 4},
          {"lw": 1.6, "ls": (0, (6, 2, 1, 2)), "zorder": 5}, {"lw": 1.3, "ls": (0, (1, 1)), "zorder": 6})
SIZE = (7.0, 4.6)


def check_leverage_folder(folder, inputs=()) -> Path:
    """Refuse (OutputError) an ``--out`` the command may not write, before any work."""
    return check_output_folder(folder, owned=LEVERAGE_FILES, inputs=inputs)


def _save(fig: Figure) -> tuple[bytes, bytes]:
    png, pdf = io.BytesIO(), io.BytesIO()
    fig.savefig(png, format="png", dpi=DPI, metadata=PNG_METADATA)
    fig.savefig(pdf, format="pdf", metadata=PDF_METADATA)
    return png.getvalue(), pdf.getvalue()


def power_figure(study) -> Figure:
    """Counted (and true) equity and liabilities against price for L = 1..5 (the seed's charts 1-3)."""
    fam = study.family
    fig = Figure(figsize=(8.0, 4.2), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    for i, lev in enumerate(np.atleast_1d(fam.leverage)):
        c = COLORS[i % len(COLORS)]
        ax1.plot(fam.price, fam.counted[i], color=c, lw=1.8, label=f"L = {lev:g}")
        if study.guardrails.discount < 1 or study.guardrails.any_cap:
            ax1.plot(fam.price, fam.true[i], color=c, lw=1.0, ls="--")
        ax2.plot(fam.price, fam.liabilities[i], color=c, lw=1.8, label=f"L = {lev:g}")
    ax1.set_xlabel("price (multiples of p0)")
    ax1.set_ylabel("counted equity (multiples of C0)" + ("; dashed: true equity" if study.guardrails.discount < 1 or study.guardrails.any_cap else ""))
    ax2.set_xlabel("price (multiples of p0)")
    ax2.set_ylabel("liabilities = exposure - true equity (multiples of C0)")
    ax1.legend(frameon=False, loc="upper left")
    fig.suptitle(f"Re-levering on unrealised profit every {100 * study.tick:g}% tick ({study.guardrails.describe()})", fontsize=10)
    return fig


def by_leverage_figure(study) -> Figure:
    """Counted equity at the rise against L, linear and log scale, with the continuous limit exp(delta L log p)."""
    bl, plain = study.by_leverage, study.by_leverage_plain
    lev = bl.leverage
    p = 1.0 + study.rise
    fig = Figure(figsize=(8.0, 4.2), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    guarded = study.guardrails.discount < 1 or study.guardrails.any_cap
    for ax in (ax1, ax2):
        ax.plot(lev, plain.counted[:, -1], color=COLORS[0], lw=2.0, label="no guardrail")
        ax.plot(lev, p ** lev, color="black", lw=1.0, ls=":", label=f"continuous limit {p:g}^L")
        if guarded:
            ax.plot(lev, bl.counted[:, -1], color=COLORS[3], lw=2.0, label=study.guardrails.describe())
        ax.set_xlabel("leverage L (exposure per unit of counted equity)")
    ax1.set_ylabel(f"counted equity at a {100 * study.rise:g}% rise (multiples of C0)")
    ax2.set_yscale("log")
    plain_axis(ax2.yaxis)
    ax2.set_ylabel("same, log scale (a straight line is exponential in L)")
    ax1.legend(frameon=False, loc="upper left", fontsize=7)
    fig.suptitle(f"Value at a {100 * study.rise:g}% rise against the allowed leverage ({100 * study.tick:g}% ticks)", fontsize=10)
    return fig


def guardrails_figure(study) -> Figure:
    """Exposure and the half-collateral drop against price at the user's L under each guardrail."""
    fig = Figure(figsize=(8.0, 4.2), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    for i, (name, _) in enumerate(study.scenarios):
        pth = study.at_leverage[name]
        style = STYLES[i % len(STYLES)]
        ax1.plot(pth.price, pth.exposure, color=COLORS[i % len(COLORS)], label=name, **style)
        ax2.plot(pth.price, 100 * pth.half_collateral_drop, color=COLORS[i % len(COLORS)], label=name, **style)
    ax1.set_xlabel("price (multiples of p0)")
    ax1.set_ylabel("exposure (multiples of C0)")
    ax2.set_xlabel("price (multiples of p0)")
    ax2.set_ylabel("price fall whose loss is C0/2 (%)")
    ax1.legend(frameon=False, loc="upper left", fontsize=7)
    fig.suptitle(f"Guardrails at L = {study.leverage:g}", fontsize=10)
    return fig


def real_path_figure(study) -> Figure:
    """The real path: price, true equity (log) under each variant with margin-call events, exposure."""
    real = study.real
    base = real["as given"]
    fig = Figure(figsize=(8.0, 6.4), layout="constrained")
    ax0, ax1, ax2 = fig.subplots(3, 1, sharex=True, height_ratios=(1, 1.5, 1))
    x = np.array([np.datetime64(d) for d in base.dates])
    ax0.plot(x, base.price, color="black", lw=1.0)
    ax0.set_ylabel("price (multiples of p0)")
    for i, (name, sim) in enumerate(real.items()):
        c = COLORS[i % len(COLORS)] if i else COLORS[3]
        style = STYLES[i % len(STYLES)]
        label = f"{'on a call: ' + study.on_fall if name == 'as given' else ('on a call: ' + name if name in ('delever', 'liquidate') else name)}"
        ax1.plot(x, np.maximum(sim.true, 1e-4), color=c, label=label, **style)
        ax2.plot(x, sim.exposure, color=c, **style)
        hit = np.nonzero(sim.events > 0)[0]
        if hit.size:
            ax1.plot(x[hit], np.maximum(sim.true[hit], 1e-4), ls="none", marker="v", ms=4, color=c, zorder=7)
    ax1.plot(x, base.price, color="black", lw=0.8, ls=":", label="unlevered (L = 1, no re-levering)")
    ax1.set_yscale("log")
    plain_axis(ax1.yaxis)
    ax1.set_ylabel("true equity (multiples of C0, log)")
    ax1.legend(frameon=False, fontsize=7, loc="lower left")
    ax2.set_ylabel("exposure (multiples of C0)")
    ax2.set_xlabel("date")
    fig.suptitle(f"Daily re-levering on a real path: L = {study.leverage:g}, {study.guardrails.describe()}\n"
                 "triangles: margin calls (liquidation, de-levering or bankruptcy)", fontsize=9)
    return fig


def design_figure(study) -> Figure:
    """c_eff' across the rule's states, and the rule's slope against the cap and the tighter cap."""
    d = study.design
    va = 100 * math.sqrt(252.0) * d.vol
    fig = Figure(figsize=(8.0, 4.2), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    ce = np.where(np.isfinite(d.c_eff_effective), d.c_eff_effective, np.nan)
    ax1.plot(va, ce, color=COLORS[3], lw=1.8, label="effective c_eff'")
    ax1.axhline(d.c_eff, color=COLORS[0], lw=1.2, ls="--", label="c_eff (input)")
    ax1.set_xlabel("annualised volatility (%)")
    ax1.set_ylabel("ADV per unit margin ratio" + ("; gaps: the loss spiral diverges" if np.isnan(ce).any() else ""))
    ax1.legend(frameon=False, fontsize=7)
    ax2.plot(va, d.slope, color="#999999", lw=3.2, zorder=2, label="rule's slope dM/dsigma")
    ax2.axhline(d.cap, color=COLORS[0], lw=1.3, ls=(0, (5, 3)), zorder=4, label="cap K")
    ax2.plot(va, d.cap_effective, color=COLORS[3], lw=1.8, label="cap with re-levering K'")
    ax2.set_xlabel("annualised volatility (%)")
    ax2.set_ylabel("margin ratio per unit daily vol")
    ax2.legend(frameon=False, fontsize=7)
    fig.suptitle(f"Re-levering after a {100 * study.rise:g}% run-up and the cap ({study.guardrails.describe()})", fontsize=10)
    return fig


def render_figures(study) -> dict[str, bytes]:
    """{relative path: bytes} of every figure, PNG and PDF."""
    builders = {"leverage_power": power_figure, "leverage_by_l": by_leverage_figure, "leverage_guardrails": guardrails_figure}
    if study.real is not None:
        builders["leverage_real_path"] = real_path_figure
    if study.design is not None:
        builders["leverage_design"] = design_figure
    out = {}
    with matplotlib.rc_context(RC):
        for name, build in builders.items():
            png, pdf = _save(build(study))
            out[f"figures/{name}.png"] = png
            out[f"figures/{name}.pdf"] = pdf
    return out


def _pct(x, digits=2) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{100 * x:.{digits}f}%"


def guardrail_tables(study) -> str:
    """Markdown: exposure and the half-collateral drop for L = 1..5 under each guardrail, at the study's rise."""
    names = [n for n, _ in study.scenarios]
    fins = {n: study.table[n].final() for n in names}
    levs = [f"{lev:g}" for lev in study.table[names[0]].leverage]
    rows_x = [[lev] + [f"{fins[n]['exposure_multiple'][i]:.3f}" for n in names] for i, lev in enumerate(levs)]
    rows_k = [[lev] + [f"{fins[n]['equity_multiple'][i]:.3f}" for n in names] for i, lev in enumerate(levs)]
    rows_d = [[lev] + [_pct(fins[n]["half_collateral_drop"][i]) for n in names] for i, lev in enumerate(levs)]
    head = ["L"] + names
    return (f"Counted equity at a {100 * study.rise:g}% rise (multiples of C0):\n\n" + markdown_table(head, rows_k)
            + f"\nExposure at a {100 * study.rise:g}% rise (multiples of C0):\n\n" + markdown_table(head, rows_x)
            + "\nPrice fall whose loss is half of the original collateral (decimal, as %):\n\n" + markdown_table(head, rows_d))


def leverage_markdown(study) -> str:
    """The ``leverage.md`` page."""
    f = study.path.final()
    g = study.guardrails
    lines = [
        "# Re-levering on unrealised profit",
        "",
        f"Model (reference 003, `calibration/leverage.py`): collateral C0 = 1, price p0 = 1, the price rises by {100 * study.tick:g}% per "
        f"tick up to {100 * study.rise:g}% ({f['ticks']} ticks); on each tick the account buys up to L = {study.leverage:g} times its "
        f"counted equity (collateral + delta x unrealised profit, capped); {g.describe()}. Money in multiples of C0, price "
        "falls decimal (shown as %).",
        "",
        markdown_table(["quantity", "value"], [
            ["counted equity", f"{f['equity_multiple']:.4f} C0"],
            ["true equity (C0 + unrealised profit)", f"{f['true_equity_multiple']:.4f} C0"],
            ["exposure", f"{f['exposure_multiple']:.4f} C0"],
            ["liabilities (exposure - true equity)", f"{f['liabilities_multiple']:.4f} C0"],
            ["price fall whose loss is C0/2", _pct(f["half_collateral_drop"])],
            ["price fall taking the true equity to C0/2", _pct(f["equity_to_half_collateral_drop"])],
            ["price fall wiping the account out", _pct(f["wipeout_drop"])],
        ]),
        "Without caps the counted equity after k ticks is (1 + delta L tick)^k (delta L >= 1), a power law p^(delta L) "
        "in the continuous limit and exponential in L at a fixed rise; a cap bounds it at 1/(1 - s) C0, after which the "
        "account stops buying and its exposure grows only with the price.",
        "",
        "![equity and liabilities against price](figures/leverage_power.png)",
        "",
        "![value against L](figures/leverage_by_l.png)",
        "",
        "## The seed's claims, measured",
        "",
        f"At the seed's own settings (L = {SEED_LEVERAGE:g}, tick {100 * SEED_TICK:g}%, C0 = 1, full portfolio margining):",
        "",
        markdown_table(["claim (reference 003)", "measured", "verdict"],
                       [[c["claim"], c["computed"], c["verdict"]] for c in study.claims]),
        "## Guardrails",
        "",
        guardrail_tables(study),
        "![guardrails](figures/leverage_guardrails.png)",
        "",
    ]
    if study.real is not None:
        rows = []
        for name, sim in study.real.items():
            s = sim.summary_dict()
            label = f"on a call: {study.on_fall}" if name == "as given" else (f"on a call: {name}" if name in ("delever", "liquidate") else name)
            rows.append([label, f"{s['final_true_equity']:.4g}", f"{s['max_true_equity']:.4g}", f"{s['max_exposure']:.4g}",
                         f"{s['liquidations']:g}", f"{s['margin_calls_delevered']:g}", f"{s['bankruptcies']:g}",
                         f"{s['forced_sales_total']:.4g}", f"{s['bad_debt_total']:.4g}"])
        s0 = study.real["as given"].summary_dict()
        lines += [
            "## A real path",
            "",
            f"{study.real_source}, {s0['start']} to {s0['end']} ({s0['days']} days; the price ends at {s0['price_end_p0']:.4g} p0). "
            f"The account re-levers up to L = {study.leverage:g} times its counted equity on up-days; its maintenance margin is "
            f"{study.maintenance:g} x the initial margin exposure/L (Regulation T 50% initial, FINRA 25% maintenance: reference 002); "
            "below it the call is met by closing the whole position (liquidate; the account re-enters from its cash on the next "
            "up-day) or by selling down to L times the counted equity (delever); a true equity at or below 0 closes the "
            "account with bad debt. Money in multiples of C0.",
            "",
            markdown_table(["variant", "true equity at the end", "largest true equity", "largest exposure", "liquidations",
                            "de-leverings", "bankruptcies", "forced sales (notional)", "bad debt"], rows),
            "![real path](figures/leverage_real_path.png)",
            "",
        ]
    if study.design is not None:
        d = study.design.to_dict()
        ce = d["c_eff_effective_max"]
        lines += [
            "## The link to the cap",
            "",
            f"Rule: {study.design_source}. Each state's leverage is 1/M(r); after a {100 * study.rise:g}% run-up with re-levering "
            "the binding sector's forced sales per unit margin rise are c_eff' = c_eff K / (1 + rho U/K - delta_m alpha c_eff K) "
            "(derivation in `calibration/leverage.py`), and the cap the rule must respect is K' = factor (2 alpha + kappa)/(alpha^2 c_eff').",
            "",
            markdown_table(["quantity", "value"], [
                ["c_eff (input)", f"{d['c_eff']:.6g} ADV per unit margin ratio"],
                ["alpha", f"{d['alpha']:.6g} price change per ADV traded"],
                ["cap K", f"{d['cap_dm_dvol']:.6g} margin ratio per unit daily vol"],
                ["tightest state", f"vol_annual {100 * math.sqrt(252) * d['binding_vol_daily']:.4g}%, margin {d['binding_margin']:.4g}, L = {d['binding_leverage']:.4g}"],
                ["effective c_eff' there", "infinite: the loss spiral diverges" if ce is None else f"{ce:.6g} ADV per unit margin ratio"],
                ["cap with re-levering K' there", f"{d['cap_dm_dvol_effective_min']:.6g} margin ratio per unit daily vol "
                                                  f"({d['cap_dm_dvol_effective_min'] / d['cap_dm_dvol']:.3g} x K)"],
                ["states whose slope exceeds their K'", f"{d['states_over_effective_cap']} of {d['states']}"],
                ["states where the spiral diverges", f"{d['spiral_diverges_states']}"],
            ]),
            "![design link](figures/leverage_design.png)",
            "",
        ]
    return "\n".join(lines)


def leverage_files(study) -> dict[str, bytes]:
    """Every file of the folder as {relative path: bytes}."""
    out = {
        "leverage.md": leverage_markdown(study).encode("utf-8"),
        "leverage.json": (json.dumps(study.to_dict(), indent=2, allow_nan=False) + "\n").encode("utf-8"),
        "leverage_path.csv": csv_text(study.path.rows(), PATH_COLUMNS).encode("utf-8"),
    }
    rows = []
    for name, pth in study.table.items():
        fin = pth.final()
        for i, lev in enumerate(pth.leverage):
            rows.append({"guardrail": name, "leverage": float(lev), "counted_equity_c0": fin["equity_multiple"][i],
                         "true_equity_c0": fin["true_equity_multiple"][i], "exposure_c0": fin["exposure_multiple"][i],
                         "liabilities_c0": fin["liabilities_multiple"][i], "half_collateral_drop_decimal": fin["half_collateral_drop"][i],
                         "equity_to_half_collateral_drop_decimal": fin["equity_to_half_collateral_drop"][i]})
    out["leverage_guardrails.csv"] = csv_text(rows, GUARDRAIL_COLUMNS).encode("utf-8")
    if study.real is not None:
        out["leverage_real_path.csv"] = csv_text(study.real["as given"].rows(), REAL_COLUMNS).encode("utf-8")
    if study.design is not None:
        out["leverage_design.csv"] = csv_text(study.design.rows(), DESIGN_COLUMNS).encode("utf-8")
    out.update(render_figures(study))
    return dict(sorted(out.items()))


def write_leverage(study, folder) -> Path:
    """Write the folder atomically (it appears whole or not at all)."""
    return write_tree(folder, leverage_files(study), owned=LEVERAGE_FILES)
