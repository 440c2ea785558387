"""Report figures (matplotlib, PNG and PDF), deterministic: same input, byte-identical files.

* ``schedule``: the rule against the first-best across annualised vol, segments shaded and labelled,
  knots marked (and the rounded or step rule when published that way).
* ``slope``: the slope of the rule (dm/dsigma_ann) against the cap K / sqrt(252) of (74).
* ``multipliers``: what each constraint costs at each state, the multipliers G_k in bp of notional per percentage point of
  margin (> 0: the cap binds, the saving if it allowed one more point of rise there; < 0: monotonicity binds).
* ``objective``: expected cost per term, first-best against capped (the price of manipulation-proofness).

In target mode (``objective.kind = "target"``, an existing schedule capped) the first-best is the CCP's existing
schedule, and every figure calls it that (:func:`first_best_label`). Lines that coincide (the rounded and the optimal
rule, a rule at its cap, g* where it tracks the first-best) are drawn in distinct styles, a solid wide line under a
dashed narrow one, so both stay visible, and the legend says "coincides" when they agree everywhere to within
:data:`COINCIDE_FRAC` of the axis (:func:`coincide_note`).
* ``portfolio`` (portfolio designs only): the cap across the assets' alignment, Appendix D.6: the two-asset
  ratios ||AB||/xi_SA = psi/xi_SA = (1 + rho)/sqrt(2) (89)-(91) and sqrt(2)/(1 + rho) (92) against rho, the
  threshold rho = sqrt(2) - 1, and the design marked at its rho (when it has the D.6 structure) or as lines at its
  own psi/xi_SA, ||AB||/xi_SA and xi_SA/psi (:mod:`margin_design.reports.portfolio`).

Determinism: figures are drawn on :class:`matplotlib.figure.Figure` objects (no pyplot, no global backend
switch) inside ``rc_context(RC)`` with a fixed font (DejaVu Sans, shipped with matplotlib), sizes and dpi,
TrueType embedding in PDF, and the time-stamp / software metadata removed.
"""

from __future__ import annotations

import io

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, NullFormatter, PercentFormatter, ScalarFormatter

from margin_design.reports.publish import evaluate
from margin_design.reports.rule_data import SQRT_252

FIGURE_NAMES = ("schedule", "slope", "multipliers", "objective")
PORTFOLIO_FIGURE = "portfolio"
#: Points of the rho grid of the D.6 figure.
RHO_POINTS = 381
DPI = 150
SIZE = (7.0, 4.6)   # inches
RC = {
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "path.simplify": False,
}
PNG_METADATA = {"Software": None}
PDF_METADATA = {"Creator": None, "Producer": None, "CreationDate": None, "ModDate": None}
REGIME_COLORS = {"tracking": "#d9f0d3", "saturated": "#fddbc7", "pooling": "#d1e5f0", "floor": "#e0e0e0"}
LINE = {"rule": "#1b4f9c", "first_best": "#555555", "cap": "#b2182b", "published": "#e08214", "knots": "#1b4f9c"}
#: Two lines "coincide" when they differ nowhere by more than this fraction of the plotted range (a line width).
COINCIDE_FRAC = 0.005
#: Styles that keep coincident lines apart: the base line wide and solid underneath, a line drawn over it narrow and
#: dashed on top (the dash gaps show the base).
BASE = {"lw": 2.8, "zorder": 2}
OVER = {"lw": 1.3, "ls": (0, (5, 3)), "zorder": 4}
#: The multipliers' unit: G_k is expected cost (per unit notional) per unit of margin ratio; x 1e4 (bp) x 0.01 (pp).
G_BP_PER_PP = 1e4 * 0.01


def is_target(data) -> bool:
    """Is the design a capped existing schedule (``objective.kind = "target"``), so its first-best is that schedule?"""
    return data.objective_kind == "target"


def first_best_name(data) -> str:
    """The first-best in a few words: "existing schedule" in target mode, else "first-best"."""
    return "existing schedule" if is_target(data) else "first-best"


def first_best_label(data, tex: bool = True) -> str:
    """What the first-best line is: the CCP's existing schedule in target mode, else M_fb of (34)."""
    if is_target(data):
        return "existing schedule $t$ (target)" if tex else "existing schedule t (target)"
    return "first-best $M^{fb}$ (34)" if tex else "first-best M_fb (34)"


def coincide_note(a, b, span: float, other: str, unit=lambda d: f"{100 * d:.2g} pp") -> str:
    """" (coincides with <other> ...)" when the arrays a, b differ by at most COINCIDE_FRAC * span everywhere, else ""."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    ok = np.isfinite(a) & np.isfinite(b)
    if not ok.any() or not span > 0:
        return ""
    d = float(np.max(np.abs(a[ok] - b[ok])))
    if d > COINCIDE_FRAC * span:
        return ""
    return f" (coincides with {other}" + ("" if d <= 1e-6 * span else f", max difference {unit(d)}") + ")"


def plain_axis(axis) -> None:
    """Numbers read directly: no offset (``1e-3`` in the corner), no scientific notation, enough digits to tell
    neighbouring ticks apart (the ScalarFormatter picks them from the tick spacing)."""
    fmt = ScalarFormatter(useOffset=False)
    fmt.set_scientific(False)
    axis.set_major_formatter(fmt)


def figure_names(report) -> tuple:
    """The figures of this report: :data:`FIGURE_NAMES`, plus ``portfolio`` for a portfolio design."""
    return FIGURE_NAMES + ((PORTFOLIO_FIGURE,) if report.data.is_portfolio else ())


def _pct_axis(ax, which: str = "both", decimals: int = 0) -> None:
    fmt = PercentFormatter(xmax=1.0, decimals=decimals)
    if which in ("x", "both"):
        ax.xaxis.set_major_formatter(fmt)
    if which in ("y", "both"):
        ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=1))


def _shade_segments(ax, report, label: bool = True) -> list:
    data = report.data
    span = data.vol_annual[-1] - data.vol_annual[0]
    ymax = ax.get_ylim()[1]
    seen = {}
    for s in data.segments:
        a, b = SQRT_252 * s["vol_start"], SQRT_252 * s["vol_end"]
        ax.axvspan(a, b, color=REGIME_COLORS[s["kind"]], lw=0, zorder=0)
        seen[s["kind"]] = True
        if label and (b - a) > 0.06 * span:
            ax.text(0.5 * (a + b), ymax, s["kind"], ha="center", va="top", fontsize=8, color="#333333")
    return [Patch(color=REGIME_COLORS[k], label=k if k != "floor" else "floor (M = 0)") for k in REGIME_COLORS if k in seen]


def _legend(fig: Figure, ax, patches=(), ncols: int = 4) -> None:
    handles, _ = ax.get_legend_handles_labels()
    handles = handles + list(patches)
    ncols = min(ncols, len(handles)) if max(len(h.get_label()) for h in handles) < 60 else 1 + (len(handles) > 2)
    fig.legend(handles=handles, loc="outside lower center", ncols=ncols, frameon=False)


def _save(fig: Figure) -> tuple[bytes, bytes]:
    png, pdf = io.BytesIO(), io.BytesIO()
    fig.savefig(png, format="png", dpi=DPI, metadata=PNG_METADATA)
    fig.savefig(pdf, format="pdf", metadata=PDF_METADATA)
    return png.getvalue(), pdf.getvalue()


def _new(title: str):
    fig = Figure(figsize=SIZE, layout="constrained")
    ax = fig.add_subplot()
    ax.set_title(title)
    return fig, ax


def schedule_figure(report) -> Figure:
    data = report.data
    va = data.vol_annual
    fig, ax = _new("Margin rule and the CCP's existing schedule" if is_target(data) else "Margin rule and first-best target")
    span = float(np.ptp(np.concatenate([data.schedule, data.first_best]))) or 1.0
    ax.plot(va, data.first_best, color=LINE["first_best"], ls="--", lw=1.3, zorder=3,
            label=first_best_label(data) + coincide_note(data.first_best, data.schedule, span, "$g^*$"))
    ax.plot(va, data.schedule, color=LINE["rule"], **BASE, label="optimal schedule $g^*$ (41)")
    kv = va[report.knots]
    rule = report.rule
    if report.steps is not None:
        xs, ys = [], []
        for b in report.steps.buckets:
            xs += [b["vol_annual_from"], b["vol_annual_to"]]
            ys += [b["margin"], b["margin"]]
        ax.plot(xs, ys, color=LINE["first_best"], lw=1.0, ls=":", label="step table (not published: jumps, Section 6.6)")
    if rule is not None and rule.form == "published vols":
        ax.plot(kv, report.published, "o", ms=3.0, mfc="none", color=LINE["knots"], label=f"knot interpolation ({len(kv)} knots, not published)", zorder=4)
    # the published rule, extrapolation included, on the grid and its own points: the one line called "published"
    pv = SQRT_252 * rule.vol if rule is not None else kv
    pm = rule.margin if rule is not None else report.published
    xs = np.union1d(va, pv)
    line = evaluate(pv / SQRT_252, pm, xs / SQRT_252) if rule is not None else np.interp(xs, kv, report.published)
    near = coincide_note(np.interp(va, xs, line), data.schedule, span, "$g^*$")
    ax.plot(xs, line, color=LINE["published"], **OVER, label=_published_label(report) + near)
    ax.plot(pv, pm, "o", ms=3.0, color=LINE["published"], zorder=5)
    ax.set_xlabel("annualised volatility $\\sigma^{ann} = \\sqrt{252}\\,\\sigma$ (%)")
    ax.set_ylabel("margin ratio (% of notional)")
    _pct_axis(ax)
    lo = min(float(data.schedule.min()), float(data.first_best.min()), float(np.min(pm)))
    hi = max(float(data.schedule.max()), float(data.first_best.max()), float(np.max(pm)))
    pad = (hi - lo) if hi > lo else max(abs(hi), 1e-3)  # a flat rule (say all on the floor) still gets an axis
    ax.set_ylim(max(0.0, lo - 0.08 * pad), hi + 0.12 * pad)
    ax.set_xlim(va[0], va[-1])
    _legend(fig, ax, _shade_segments(ax, report), ncols=2)
    return fig


def _published_label(report) -> str:
    """The legend entry of the published rule (exactly one per figure), with its rule ID."""
    r = report.rule
    if r is None:
        return "published rule (knots)"
    what = f"{len(r.labels)} points" if r.form == "published vols" else f"{len(r.labels)} knots"
    tick = f", rounded to {r.tick:g}" if r.tick is not None else ""
    return f"published rule {r.short_id} ({what}{tick})"


def slope_figure(report) -> Figure:
    data = report.data
    va = data.vol_annual
    dva = np.diff(va)
    rule = np.diff(data.schedule) / dva
    fb = np.diff(data.first_best) / dva
    fig, ax = _new("Slope of the rule against the manipulation-proof cap")
    cap = data.slope_vol_annual
    r = report.rule
    kv = SQRT_252 * r.vol if r is not None else va[report.knots]
    ks = np.diff(r.margin if r is not None else report.published) / np.diff(kv)
    span = max(float(np.max(np.abs(rule))), cap if np.isfinite(cap) else 0.0) or 1.0
    slope = lambda d: f"{d:.2g} pp per vol point"  # noqa: E731
    at_cap = coincide_note(rule, np.full_like(rule, cap), span, "the cap", slope) if np.isfinite(cap) else ""
    ax.stairs(fb, va, color=LINE["first_best"], ls="--", lw=1.0, zorder=3, baseline=None,
              label=f"{first_best_name(data)} slope" + coincide_note(fb, rule, span, "the rule", slope))
    ax.stairs(rule, va, color=LINE["rule"], **BASE, baseline=None, label="rule slope $dm/d\\sigma^{ann}$ (grid)" + at_cap)
    mid = 0.5 * (va[1:] + va[:-1])
    inside = (mid > kv[0]) & (mid < kv[-1])     # grid intervals the published points span
    ks_grid = ks[np.clip(np.searchsorted(kv, mid[inside]) - 1, 0, ks.size - 1)]
    ax.stairs(ks, kv, color=LINE["published"], **OVER, baseline=None,
              label=_published_label(report) + ", point to point" + coincide_note(ks_grid, rule[inside], span, "the rule", slope))
    top = max(float(rule.max()), float(ks.max()))
    if np.isfinite(cap):
        ax.axhline(cap, color=LINE["cap"], lw=6.0, alpha=0.35, zorder=1, label=f"cap $K/\\sqrt{{252}}$ = {cap:.3f} (74)")
        top = max(top, cap)
    top = top if top > 0 else 1.0
    hi = max(1.35 * top, min(float(fb.max()), 3.0 * top) * 1.05)
    lo = -0.15 * top if float(fb.min()) < 0 else -0.03 * top
    ax.set_ylim(lo, hi)
    clipped = float(fb.max()) > hi or float(fb.min()) < lo
    ax.set_xlabel("annualised volatility (%)")
    ax.set_ylabel("slope (pp of margin per vol point)")
    ax.xaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))
    ax.set_xlim(va[0], va[-1])
    if clipped:
        ax.text(0.01, 0.02, f"{first_best_name(data)} slope clipped to the axis range", transform=ax.transAxes, fontsize=7, color="#555555")
    _legend(fig, ax, _shade_segments(ax, report), ncols=2)
    return fig


def multipliers_figure(report) -> Figure:
    data = report.data
    va = data.vol_annual
    mid = 0.5 * (va[1:] + va[:-1])
    G = data.multipliers   # d(expected cost)/d(increment): per unit of margin ratio
    G = G_BP_PER_PP * G   # bp of notional per percentage point of margin
    fig, ax = _new("What the constraints cost at each state\n(expected cost saved per percentage point of margin the constraint would release)")
    if np.any(G > 0):
        ax.fill_between(mid, 0, np.where(G > 0, G, 0), step="mid", color=LINE["cap"], alpha=0.6, lw=0,
                        label="cap binds: saving if the cap allowed the margin to rise 1 pp more here ($G_k > 0$)")
    if np.any(G < 0):
        ax.fill_between(mid, 0, np.where(G < 0, G, 0), step="mid", color=LINE["rule"], alpha=0.6, lw=0,
                        label="monotonicity binds: saving if the margin could fall 1 pp here ($G_k < 0$)")
    if not np.any(G != 0):
        ax.text(0.5, 0.5, f"no constraint binds: the rule is the {first_best_name(data)}", transform=ax.transAxes, ha="center")
    ax.axhline(0, color="black", lw=0.6)
    ax.set_xlabel("annualised volatility (%)")
    ax.set_ylabel("marginal cost $G_k$ (bp of notional per pp of margin)")
    ax.xaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))
    plain_axis(ax.yaxis)
    ax.set_xlim(va[0], va[-1])
    g = float(np.max(np.abs(G))) or 1.0
    ax.set_ylim(-1.15 * g if np.any(G < 0) else -0.05 * g, 1.15 * g if np.any(G > 0) else 0.05 * g)
    _legend(fig, ax, _shade_segments(ax, report))
    return fig


def objective_figure(report) -> Figure:
    data = report.data
    obj = data.objective
    terms = list(obj["terms"])
    capped = 1e4 * np.asarray([obj["terms"][t] for t in terms] + [obj["value"]])
    fb = 1e4 * np.asarray([obj["first_best_terms"][t] for t in terms] + [obj["first_best_value"]])
    labels = terms + ["total"]
    x = np.arange(len(labels))
    w = 0.38
    title = ("Expected cost by term: " + ("existing schedule" if is_target(data) else "first-best") + " vs manipulation-proof\n"
             f"price of manipulation-proofness = {1e4 * obj['price_of_manipulation_proofness']:.3g} bp of notional")
    if is_target(data):   # a committee reads the distance from the schedule in force in margin points
        rms = float(np.sqrt(np.sum(data.weights * (data.schedule - data.first_best) ** 2) / np.sum(data.weights)))
        title += f"\nroot-mean-square distance of $g^*$ from the existing schedule {100 * rms:.3g} pp of margin"
    fig, ax = _new(title)
    fb_label = (first_best_label(data) + ": zero cost by definition") if is_target(data) else "first-best $M^{fb}$ (ignores the cap)"
    b1 = ax.bar(x - w / 2, fb, w, color="#bababa", edgecolor="#555555", lw=0.6, label=fb_label)
    b2 = ax.bar(x + w / 2, capped, w, color=LINE["rule"], edgecolor=LINE["rule"], lw=0.6, label="manipulation-proof rule $g^*$")
    top = float(max(np.max(np.abs(fb)), np.max(np.abs(capped)))) or 1.0
    for bars, v in ((b1, fb), (b2, capped)):
        ax.bar_label(bars, labels=[_cost_text(t) for t in v], fontsize=7, padding=1)
        for rect, t in zip(bars, v):   # a zero bar has no height: mark its place with a short line on the axis
            if t == 0:
                ax.plot([rect.get_x(), rect.get_x() + rect.get_width()], [0, 0], color="#555555", lw=2.0, zorder=5,
                        solid_capstyle="butt", clip_on=False)
    ax.set_ylim(min(0.0, 1.15 * float(min(fb.min(), capped.min()))), 1.15 * top)
    ax.set_xticks(x, labels)
    ax.set_ylabel("expected cost (bp of notional)")
    plain_axis(ax.yaxis)
    ax.grid(axis="x", visible=False)
    _legend(fig, ax)
    return fig


def _cost_text(v: float) -> str:
    """A bar's value in bp with three significant digits (0.0153, 3.75, 82.1); an exact zero as 0."""
    return "0" if v == 0 else f"{v:.3g}"


def portfolio_figure(report) -> Figure:
    """The D.6 picture: pressure and slope ratios of the two-asset example against rho, with this design marked."""
    from margin_design.reports.portfolio import RHO_RANGE, d6_curves

    block = report.parameters["portfolio"]
    c = block["d6"]
    fit = c["two_asset_fit"]
    mark = fit["rho"] if fit is not None else c["rho_equivalent"]
    # the rho range reaches the design's rho when it lies left of RHO_RANGE (rho > -1 always: A is positive definite)
    left = RHO_RANGE[0] if mark is None or mark >= RHO_RANGE[0] + 0.02 else max(mark - 0.02, 0.5 * (mark - 1.0))
    rho = np.linspace(left, RHO_RANGE[1], RHO_POINTS)
    pressure, slope = d6_curves(rho)
    thr = c["rho_threshold"]
    fig, ax = _new("Cap across the assets' alignment (Appendix D.6): two assets, A = $\\alpha$[[1, $\\rho$], [$\\rho$, 1]]")
    ax.plot(rho, pressure, color=LINE["first_best"], lw=1.8,
            label="$\\|AB\\|/\\xi_{SA} = \\psi/\\xi_{SA} = (1+\\rho)/\\sqrt{2}$ (89)-(91): first-best flatness")
    ax.plot(rho, slope, color=LINE["cap"], lw=1.8, label="admissible slope / benchmark $= \\sqrt{2}/(1+\\rho)$ (92)")
    ax.axhline(1.0, color="black", lw=0.6)
    ax.axvline(thr, color="black", lw=0.8, ls=":", label=f"$\\rho = \\sqrt{{2}} - 1$ = {thr:.3f}")
    names = ", ".join(block["assets"])
    if fit is not None:
        r = fit["rho"]
        ax.plot([r], [fit["pressure_ratio_89_91"]], "o", ms=6, color=LINE["first_best"], zorder=5)
        ax.plot([r], [fit["slope_ratio_92"]], "o", ms=6, color=LINE["cap"], zorder=5,
                label=f"this design ({names}): $\\rho$ = {r:.3g}")
        ax.annotate(f"{fit['pressure_ratio_89_91']:.3f}", (r, fit["pressure_ratio_89_91"]), textcoords="offset points", xytext=(-6, 6), ha="right", fontsize=7)
        ax.annotate(f"{fit['slope_ratio_92']:.3f}", (r, fit["slope_ratio_92"]), textcoords="offset points", xytext=(-6, -11), ha="right", fontsize=7)
    else:
        p, q = c["psi_over_xi_SA"], c["price_pressure_over_xi_SA"]
        same = abs(q - p) <= 1e-12 * q
        if p > 0:   # psi = 0 (no cap) has no place on a log axis; the legend and the caption say so
            ax.axhline(p, color=LINE["first_best"], lw=1.0, ls="--",
                       label=f"this design ({names}): $\\psi/\\xi_{{SA}}$" + (" = $\\|AB\\|/\\xi_{SA}$" if same else "") + f" = {p:.3f}")
        if not same:
            ax.axhline(q, color=LINE["published"], lw=1.0, ls="--",
                       label=(f"this design ({names})" if p <= 0 else "this design") + f": $\\|AB\\|/\\xi_{{SA}}$ = {q:.3f}")
        if c["slope_ratio_xi_SA_over_psi"] is None:
            ax.plot([], [], " ", label="this design: $\\psi$ = 0, no cap from manipulation (87)")
        else:
            ax.axhline(c["slope_ratio_xi_SA_over_psi"], color=LINE["cap"], lw=1.0, ls="--",
                       label=f"this design: $\\xi_{{SA}}/\\psi$ = {c['slope_ratio_xi_SA_over_psi']:.3f}")
        if mark is not None:
            ax.plot([mark, mark], [p, c["slope_ratio_xi_SA_over_psi"]], "o", ms=5, color="black", zorder=5,
                    label=f"D.6 alignment equal to the design's: $\\rho$ = {mark:.3f}")
    ax.set_yscale("log")
    lo = min(float(pressure.min()), *(v for v in (c["psi_over_xi_SA"], c["price_pressure_over_xi_SA"]) if v))
    hi = max(float(slope.max()), c["slope_ratio_xi_SA_over_psi"] or 0.0, c["price_pressure_over_xi_SA"] or 0.0)
    ax.set_ylim(0.8 * lo, 1.25 * hi)
    ax.set_xlim(rho[0], rho[-1])
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("cross-impact correlation $\\rho$ (D.6)")
    ax.set_ylabel("ratio to the single-asset benchmark (log scale)")
    ax.text(thr + 0.02, 0.9 * 1.25 * hi, "first-best flatter,\ncap tighter", fontsize=7, va="top", color="#333333")
    ax.text(thr - 0.02, 0.9 * 1.25 * hi, "first-best steeper,\ncap looser", fontsize=7, va="top", ha="right", color="#333333")
    fig.legend(loc="outside lower center", ncols=2, frameon=False)
    return fig


BUILDERS = {"schedule": schedule_figure, "slope": slope_figure, "multipliers": multipliers_figure, "objective": objective_figure,
            PORTFOLIO_FIGURE: portfolio_figure}


def render_figures(report) -> dict[str, bytes]:
    """{"figures/<name>.png": bytes, "figures/<name>.pdf": bytes} for every figure."""
    out = {}
    with matplotlib.rc_context(RC):
        for name in figure_names(report):
            fig = BUILDERS[name](report)
            png, pdf = _save(fig)
            out[f"figures/{name}.png"] = png
            out[f"figures/{name}.pdf"] = pdf
    return out
