"""The sweep figure: the price of manipulation-proofness and the cap against each swept parameter.

``margin-design sweep CONFIG --vary ... --out sweep.csv`` writes ``sweep.png`` beside the CSV (same stem, or the
path given by ``--figure``). Layout: one column per swept parameter (``--vary`` key), two rows sharing that x axis:

* top: the price of manipulation-proofness J(g*) - J(M_fb), in bp of notional (x 1e4 of the expected cost per unit
  notional, (33));
* bottom: the cap K / sqrt(252) on dm/dsigma_ann (74), in percentage points of margin per annualised-vol point
  (the ``cap_vol_annual`` column; a design without a cap draws no line and says so).

With one swept parameter each panel has one line. With more, each panel draws one line per combination of the
other parameters' values (labelled, up to :data:`MAX_LINES`); beyond that it draws their median with the min-max
band. Every point is a solved configuration (markers); uncertified configurations are circled in red.
"""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from margin_design.fileio import atomic_write_bytes
from margin_design.reports.figures import DPI, PNG_METADATA, RC, plain_axis

#: Most lines per panel before the other parameters are summarised by median and min-max band.
MAX_LINES = 8
#: Unit of each sweepable key, for the x axis (the keys of design/config.py and design/batch.py STACKABLE).
KEY_UNITS = {
    "market.alpha": "price impact per unit of ADV traded",
    "market.c_eff": "ADV liquidated per unit margin ratio",
    "market.inventory_penalty": "kappa, price per unit of ADV held",
    "objective.carry": "kappa_M, carry cost per unit margin ratio",
    "objective.prev_margin": "M_-, margin ratio",
    "objective.liquidation_weight": "lambda_L, weight of the liquidation term",
    "objective.participation_weight": "weight of the participation term",
    "objective.participation_beta": "participation elasticity beta",
    "grid.points": "number of states",
    "grid.vol_min": "daily vol, decimal",
    "grid.vol_max": "daily vol, decimal",
    "states.median_vol": "daily vol, decimal",
    "states.dispersion": "log-sd of vol",
    "shock.horizon_days": "trading days",
    "shock.df": "degrees of freedom",
    "cap.window": "daily returns in the risk-input window",
    "cap.lambda": "EWMA decay",
    "cap.level": "HS VaR / ES confidence level p",
}
PRICE_BP = 1e4      # price per unit notional -> bp of notional
CAP_PP = 1.0        # dm/dsigma_ann (decimal per decimal) = pp of margin per annualised-vol point


def swept_keys(rows: list[dict]) -> list[str]:
    """The ``--vary`` keys of a sweep table: its ``section.key`` columns, in table order."""
    return [k for k in rows[0] if k.count(".") == 1 and not k.startswith("dprice_d_")] if rows else []


def _axis_label(key: str) -> str:
    unit = KEY_UNITS.get(key)
    import textwrap

    return textwrap.fill(f"{key} ({unit})" if unit else key, 56)   # a long unit wraps instead of running off the panel


def sweep_figure(rows: list[dict]) -> Figure:
    """The figure for the rows of :func:`margin_design.solvers.sweep.run_sweep` (or the read-back CSV)."""
    keys = swept_keys(rows)
    if not keys:
        raise ValueError("a sweep table without swept (section.key) columns has nothing to plot")
    n = len(keys)
    fig = Figure(figsize=(max(4.2 * n, 6.0), 6.4), layout="constrained")
    axes = np.asarray(fig.subplots(2, n, sharex="col", squeeze=False))
    fig.suptitle("Sweep: price of manipulation-proofness and the cap against the swept parameters", fontsize=10)
    price = PRICE_BP * np.asarray([float(r["price_of_manipulation_proofness"]) for r in rows])
    cap = CAP_PP * np.asarray([float(r.get("cap_vol_annual", "nan")) for r in rows])   # a table without the column: no cap line
    ok = np.asarray([str(r["certified"]) == "True" for r in rows])
    values = {k: np.asarray([float(r[k]) for r in rows]) for k in keys}
    for j, key in enumerate(keys):
        others = [k for k in keys if k != key]
        levels = [sorted(set(values[k].tolist())) for k in others]
        combos = list(itertools.product(*levels))
        x_all = values[key]
        for i, (y, ylabel) in enumerate(((price, "price of manipulation-proofness\n(bp of notional)"),
                                          (cap, "cap $K/\\sqrt{252}$\n(pp of margin per vol point)"))):
            ax = axes[i, j]
            finite = np.isfinite(y)
            xs_f = np.asarray(sorted(set(x_all[finite].tolist())))
            flat = others and finite.any() and all(np.ptp(y[finite & (x_all == v)]) <= 1e-12 * max(1.0, float(np.max(np.abs(y[finite]))))
                                                   for v in xs_f)
            if flat:   # the same line for every value of the other parameters: draw it once and say so
                ys = np.asarray([y[finite & (x_all == v)][0] for v in xs_f])
                ax.plot(xs_f, ys, "o-", ms=4, lw=1.4, color="#333333", label="the same for every " + ", ".join(k.split(".")[1] for k in others))
                ax.legend(fontsize=7, frameon=False)
            elif len(combos) <= MAX_LINES:
                for combo in combos:
                    sel = np.ones(len(rows), bool)
                    for k, v in zip(others, combo):
                        sel &= values[k] == v
                    sel &= finite
                    if not sel.any():
                        continue
                    order = np.argsort(x_all[sel])
                    label = ", ".join(f"{k.split('.')[1]} = {v:g}" for k, v in zip(others, combo)) or None
                    ax.plot(x_all[sel][order], y[sel][order], "o-", ms=4, lw=1.4, label=label)
            else:
                xs = np.asarray(sorted(set(x_all[finite].tolist())))
                stats = np.asarray([np.percentile(y[finite & (x_all == v)], [0, 50, 100]) for v in xs])
                ax.fill_between(xs, stats[:, 0], stats[:, 2], alpha=0.25, lw=0,
                                label=f"min-max over {len(combos)} combinations of " + ", ".join(others))
                ax.plot(xs, stats[:, 1], "o-", ms=4, lw=1.4, label="median")
            bad = ~ok & finite
            if bad.any():
                ax.plot(x_all[bad], y[bad], "o", ms=9, mfc="none", mec="#d73027", mew=1.2, label="not certified")
            if not finite.any():
                why = "no cap (cap.kind = none)" if "cap_vol_annual" in rows[0] else "the table has no cap_vol_annual column"
                ax.text(0.5, 0.5, why, transform=ax.transAxes, ha="center", va="center")
            plain_axis(ax.yaxis)
            ax.xaxis.set_major_locator(MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10]))   # at most ~6 ticks: 4-decimal values never overlap
            if j == 0:
                ax.set_ylabel(ylabel)
            if i == 1:
                ax.set_xlabel(_axis_label(key))
            if i == 0:
                ax.set_title(f"against {key}", fontsize=9)
            if ax.get_legend_handles_labels()[0] and i == 0:
                ax.legend(fontsize=7, frameon=False)
    return fig


def sweep_figure_png(rows: list[dict]) -> bytes:
    """PNG bytes of :func:`sweep_figure` (deterministic: the report figures' rc settings and metadata)."""
    with matplotlib.rc_context(RC):
        fig = sweep_figure(rows)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=DPI, metadata=PNG_METADATA)
    return buf.getvalue()


def default_figure_path(csv_path: str | Path) -> Path:
    """``sweep.csv`` -> ``sweep.png`` beside it."""
    return Path(csv_path).with_suffix(".png")


def write_sweep_figure(rows: list[dict], path: str | Path, label: str = "--figure") -> Path:
    """Write the sweep figure to ``path`` atomically."""
    return atomic_write_bytes(path, sweep_figure_png(rows), label=label)

