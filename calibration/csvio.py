"""Small CSV reader for the calibration inputs: named columns, one-sentence errors, no pandas.

Headers are matched after stripping blanks and lower-casing. Errors a user can cause (missing file,
missing column, non-numeric or empty cell) raise :class:`~margin_design.errors.InputError`.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

import numpy as np

from margin_design.errors import InputError

__all__ = ["read_table", "read_csv_columns"]


def read_table(path: str | Path) -> tuple[list[str], list[list[str]]]:
    """Header (normalised names) and data rows of a CSV file; blank lines are skipped."""
    p = Path(path)
    try:
        with p.open(newline="", encoding="utf-8-sig") as fh:
            rows = [r for r in csv.reader(fh) if any(c.strip() for c in r)]
    except FileNotFoundError:
        raise InputError(f"the file {str(p)!r} does not exist.") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"cannot read the CSV file {str(p)!r} ({exc}).") from None
    if not rows:
        raise InputError(f"the CSV file {str(p)!r} is empty.")
    header = [c.strip().lower() for c in rows[0]]
    return header, rows[1:]


def _column_index(path: Path, header: list[str], name: str) -> int:
    try:
        return header.index(name)
    except ValueError:
        raise InputError(f"{path.name} has no column {name!r} (columns: {', '.join(header) or 'none'}).") from None


def read_csv_columns(
    path: str | Path,
    required: Sequence[str],
    optional: Sequence[str] = (),
    text: Sequence[str] = (),
) -> dict:
    """Numeric columns ``required`` (must exist) and ``optional`` (if present) as float arrays; ``text`` as lists.

    Every row must have a number in each numeric column read; row numbers in messages count the header as row 1.
    """
    p = Path(path)
    header, rows = read_table(p)
    out: dict = {}
    wanted = [(n, True) for n in required] + [(n, False) for n in optional if n in header]
    for name, _ in wanted:
        j = _column_index(p, header, name)
        vals = np.empty(len(rows))
        for i, r in enumerate(rows):
            cell = r[j].strip() if j < len(r) else ""
            try:
                vals[i] = float(cell)
            except ValueError:
                raise InputError(
                    f"column {name!r} of {p.name} has the non-numeric value {cell!r} in row {i + 2}."
                ) from None
            if not np.isfinite(vals[i]):
                raise InputError(f"column {name!r} of {p.name} has the non-finite value {cell!r} in row {i + 2}.")
        out[name] = vals
    for name in text:
        if name in header:
            j = header.index(name)
            out[name] = [(r[j].strip() if j < len(r) else "") for r in rows]
    return out
