"""Files of ``margin-design adl``: the per-account table (CSV) and the leverage figure (PNG) of an ADL computed by
:mod:`margin_design.audit.adl` (this module renders only).

* single asset: ``account,reduction,position_after,leverage_before,leverage_after`` -- reduction in position units
  (notional at the mark price, currency, >= 0), position_after signed notional, leverages as multiples (|x|/e; ``inf``
  for an account with equity <= 0 that holds a position);
* multi-asset: ``account``, ``reduction_<asset>`` and ``position_after_<asset>`` per asset, ``leverage_before`` and
  ``leverage_after`` (gross leverage sum_k |x_k| / e);
* the figure ``<OUT stem>_leverage.png`` next to the CSV: each account's leverage before and after, accounts ranked
  by leverage before, with the water-filling level l* (single asset).

Both files are written atomically (:func:`margin_design.fileio.atomic_write_bytes`); the same input gives the same bytes.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from margin_design.fileio import atomic_write_bytes, check_output_file

__all__ = ["figure_path", "csv_bytes", "leverage_figure_png", "write_adl_files"]


def figure_path(out_csv) -> Path:
    """Where the leverage figure of ``OUT.csv`` goes: ``OUT_leverage.png`` in the same folder."""
    p = Path(out_csv)
    return p.with_name(f"{p.stem}_leverage.png")


def csv_bytes(frame) -> bytes:
    """The table as CSV (full float precision, ``inf`` for infinite leverage, Unix newlines)."""
    return frame.to_csv(index=False, lineterminator="\n", float_format="%.12g").encode("utf-8")


def leverage_figure_png(before, after, level: float | None, title: str,
                        ylabel: str = "leverage |position| / equity (multiple)") -> bytes:
    """Leverage before and after per account (accounts ranked by leverage before, highest first); infinite leverage
    (equity <= 0) is drawn at the top edge and counted in the legend."""
    import matplotlib
    from matplotlib.figure import Figure

    from margin_design.reports.figures import DPI, PNG_METADATA, RC

    before, after = np.asarray(before, float), np.asarray(after, float)
    order = np.argsort(-np.where(np.isfinite(before), before, np.inf), kind="stable")
    b, a = before[order], after[order]
    finite = np.concatenate([b[np.isfinite(b)], a[np.isfinite(a)]])
    top = float(np.max(finite)) * 1.15 if finite.size and np.max(finite) > 0 else 1.0
    n_inf = int(np.sum(~np.isfinite(b)))
    rank = np.arange(1, b.size + 1)
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=(7.0, 4.6), layout="constrained")
        ax = fig.add_subplot()
        ax.set_title(title)
        style = {"drawstyle": "steps-mid"} if b.size > 60 else {"marker": "o", "ms": 3}
        ax.plot(rank, np.where(np.isfinite(b), b, top), color="#999999", lw=2.2,
                label="before" + (f" ({n_inf} with equity <= 0 drawn at the top)" if n_inf else ""), **style)
        amax = float(np.max(a)) if a.size else 0.0
        ax.plot(rank, np.where(np.isfinite(a), a, top), color="#1b4f9c", lw=1.3,
                label=f"after (largest {'inf' if not np.isfinite(amax) else format(amax, '.4g')})", **style)
        if level is not None and np.isfinite(level):
            ax.axhline(level, color="#b2182b", lw=1.0, ls="--", label=f"water-filling level l* = {level:.4g}")
        ax.set_xlabel("account, ranked by leverage before (1 = most levered)")
        ax.set_ylabel(ylabel)
        ax.set_ylim(0, top * 1.02)
        if b.size > 200:
            ax.set_xscale("log")
        else:
            from matplotlib.ticker import MaxNLocator

            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(loc="upper right", frameon=False)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=DPI, metadata=PNG_METADATA)
    return buf.getvalue()


def write_adl_files(frame, out_csv, before, after, level, title: str, gross: bool = False) -> tuple[Path, Path]:
    """Write ``OUT.csv`` and ``OUT_leverage.png`` atomically (``gross``: multi-asset, gross leverage); returns both paths."""
    out = check_output_file(out_csv, "--out")
    ylabel = "gross leverage sum_k |position_k| / equity (multiple)" if gross else "leverage |position| / equity (multiple)"
    png = leverage_figure_png(before, after, level, title, ylabel)
    data = csv_bytes(frame)
    fig_path = atomic_write_bytes(figure_path(out), png, "--out figure")
    return atomic_write_bytes(out, data, "--out"), fig_path
