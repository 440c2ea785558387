"""The sweep table: one row per configuration, written atomically as CSV (repr precision, fixed column order)."""

from __future__ import annotations

from pathlib import Path

from margin_design.fileio import atomic_write_text

UNITS = {
    "objective": "J(g*), expected cost per unit notional",
    "first_best_objective": "J(M_fb), expected cost per unit notional",
    "price_of_manipulation_proofness": "J(g*) - J(M_fb), per unit notional",
    "price_relative": "(J(g*) - J(M_fb)) / J(M_fb)",
    "cap_vol_annual": "the cap K/sqrt(252) on dm/dsigma_ann (74), margin ratio per unit of annualised vol (inf: no cap)",
    "segments": "kind:annualised vol from-to (decimal)",
    "relative_gap": "certified duality gap / J",
}


def sweep_csv_text(rows: list[dict]) -> str:
    if not rows:
        return ""
    cols = list(rows[0])
    lines = [",".join(cols)]
    for row in rows:
        cells = []
        for c in cols:
            v = row[c]
            cells.append(repr(float(v)) if isinstance(v, float) else str(v))
        lines.append(",".join(cells))
    return "\n".join(lines) + "\n"


def write_sweep_table(rows: list[dict], path: str | Path) -> Path:
    """Write the table to ``path`` atomically (OutputError, naming ``--out``, if it is a folder or cannot be written)."""
    return atomic_write_text(path, sweep_csv_text(rows), label="--out")
