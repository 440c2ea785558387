"""The one CSV reader for user files (config tables, calibration data): named columns, one-sentence errors.

Headers are matched after stripping blanks and lower-casing. Errors a user can cause (missing file,
missing column, non-numeric or empty cell) raise :class:`~margin_design.errors.InputError`; the message
names the file, or the config key it came from when ``label`` is given (``states.file = 'w.csv' ...``).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

import numpy as np

from margin_design.errors import InputError

__all__ = ["read_table", "read_csv_columns", "sort_by_iso_dates"]


def _who(path: Path, label: str | None) -> str:
    return f"{label} = {str(path)!r}" if label else f"the file {str(path)!r}"


def read_table(path: str | Path, label: str | None = None) -> tuple[list[str], list[list[str]]]:
    """Header (normalised names) and data rows of a CSV file; blank lines are skipped."""
    p = Path(path)
    try:
        with p.open(newline="", encoding="utf-8-sig") as fh:
            rows = [r for r in csv.reader(fh) if any(c.strip() for c in r)]
    except FileNotFoundError:
        raise InputError(f"{_who(p, label)} does not exist.") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{_who(p, label)} cannot be read as CSV ({exc}).") from None
    if not rows:
        raise InputError(f"{_who(p, label)} is empty.")
    header = [c.strip().lower() for c in rows[0]]
    return header, rows[1:]


def _column_index(path: Path, header: list[str], name: str, label: str | None) -> int:
    try:
        return header.index(name)
    except ValueError:
        raise InputError(f"{_who(path, label)} has no column {name!r} (columns: {', '.join(header) or 'none'}).") from None


def read_csv_columns(
    path: str | Path,
    required: Sequence[str],
    optional: Sequence[str] = (),
    text: Sequence[str] = (),
    label: str | None = None,
) -> dict:
    """Numeric columns ``required`` (must exist) and ``optional`` (if present) as float arrays; ``text`` as lists.

    Every row must have a number in each numeric column read; row numbers in messages count the header as row 1.
    """
    p = Path(path)
    header, rows = read_table(p, label)
    if not rows:
        raise InputError(f"{_who(p, label)} has a header but no data rows.")
    out: dict = {}
    wanted = [(n, True) for n in required] + [(n, False) for n in optional if n in header]
    for name, _ in wanted:
        j = _column_index(p, header, name, label)
        vals = np.empty(len(rows))
        for i, r in enumerate(rows):
            cell = r[j].strip() if j < len(r) else ""
            try:
                vals[i] = float(cell)
            except ValueError:
                raise InputError(f"{_who(p, label)} has the non-numeric value {cell!r} in column {name!r}, row {i + 2}.") from None
            if not np.isfinite(vals[i]):
                raise InputError(f"{_who(p, label)} has the non-finite value {cell!r} in column {name!r}, row {i + 2}.")
        out[name] = vals
    for name in text:
        if name in header:
            j = header.index(name)
            out[name] = [(r[j].strip() if j < len(r) else "") for r in rows]
    return out


def sort_by_iso_dates(dates: Sequence[str], where: str) -> np.ndarray:
    """Row order that sorts ISO dates (YYYY-MM-DD); one-sentence errors for a bad or repeated date.

    ``where`` names the column for messages, e.g. "column 'date' of prices.csv".
    """
    import datetime as _dt

    parsed = []
    for i, d in enumerate(dates):
        try:
            parsed.append(_dt.date.fromisoformat(d))
        except ValueError:
            raise InputError(f"{where} has {d!r} in row {i + 2}, which is not an ISO date (YYYY-MM-DD).") from None
    order = sorted(range(len(parsed)), key=lambda i: parsed[i])
    for a, b in zip(order, order[1:]):
        if parsed[a] == parsed[b]:
            raise InputError(f"{where} repeats the date {dates[a]}.")
    return np.asarray(order, dtype=int)
