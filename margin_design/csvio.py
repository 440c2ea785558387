"""The one CSV reader for user files (config tables, calibration data): named columns, one-sentence errors.

Files are read with pandas (imported only when a CSV is read, so commands that read none stay quick). What is
accepted, and what is refused with one sentence naming the file (or the config key it came from when ``label``
is given, ``states.file = 'w.csv' ...``), the row and the column:

* encoding UTF-8, with or without a byte-order mark; Windows (CRLF) or Unix line endings; comma-separated;
* headers are matched after stripping blanks and lower-casing; blanks around cells are ignored; a column
  needed twice under one name is refused;
* rows: a line that is blank, or holds only empty cells (``,,,`` as spreadsheets write at the end), is skipped;
  row numbers in messages are the file's line numbers (the header is row 1); a row with more cells than the
  header is refused (an unquoted ``1,234.5`` would otherwise shift the columns);
* numbers: an empty cell or a missing-value marker (``NA``, ``N/A``, ``#N/A``, ``null``, ``None``) in a column
  that is read is refused (no row is silently dropped); ``inf`` and ``nan`` are refused as non-finite;
  thousands separators are accepted in a quoted cell when they group digits in threes (``"1,234.5"`` is
  1234.5; ``"1,5"`` is refused, being a decimal comma or a typo); a trailing percent sign is accepted in the
  ratio and volatility columns of :data:`PERCENT_COLUMNS` (``5%`` is 0.05, in every other column it is refused);
* dates (columns named in ``dates``): ISO ``YYYY-MM-DD`` (a time of day after it is ignored), ``YYYY/MM/DD``,
  ``YYYYMMDD``, ``31 Jan 2020``, ``31-Jan-2020``, ``31 January 2020``, ``Jan 31, 2020``, ``January 31, 2020``,
  and ``31/01/2020`` or ``01/31/2020`` (also with ``.`` or ``-``) when the column itself tells the day/month order
  (some day is above 12); one format per column. They come back as ISO strings.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np

from margin_design.units import SQRT_252
from margin_design.errors import InputError

__all__ = ["PERCENT_COLUMNS", "MISSING_MARKERS", "VOL_COLUMNS", "read_table", "read_csv_columns", "daily_vol_column", "sort_by_iso_dates"]

#: Columns (by header name) that hold a ratio or a volatility, where a trailing ``%`` divides by 100.
PERCENT_COLUMNS = frozenset({"vol", "vol_daily", "vol_annual", "margin", "target", "first_best"})
#: Cell texts (compared case-insensitively) that mean "no value" and are refused as missing.
MISSING_MARKERS = frozenset({"", "na", "n/a", "#n/a", "null", "none", "-"})

_THOUSANDS = re.compile(r"[+-]?\d{1,3}(,\d{3})+(\.\d*)?([eE][+-]?\d+)?")
_ISO_WITH_TIME = re.compile(r"(\d{4}-\d{2}-\d{2})(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?")
#: Unambiguous date formats tried after ISO, in order (strftime codes).
_DATE_FORMATS = ("%Y/%m/%d", "%Y%m%d", "%d %b %Y", "%d-%b-%Y", "%d %B %Y", "%b %d, %Y", "%B %d, %Y")
_NUMERIC_DMY = re.compile(r"(\d{1,2})([/.-])(\d{1,2})\2(\d{4})")


def _who(path: Path, label: str | None) -> str:
    return f"{label} = {str(path)!r}" if label else f"the file {str(path)!r}"


def _read_frame(path: Path, label: str | None):
    """(header, cells, lines): normalised header names, a DataFrame of stripped cell strings with non-blank rows,
    and each row's line number in the file (header = 1)."""
    import pandas as pd

    try:
        raw = pd.read_csv(
            path, header=None, dtype=str, keep_default_na=False, na_filter=False, skip_blank_lines=False,
            encoding="utf-8-sig", engine="c",
        )
    except FileNotFoundError:
        raise InputError(f"{_who(path, label)} does not exist.") from None
    except pd.errors.EmptyDataError:
        raise InputError(f"{_who(path, label)} is empty.") from None
    except pd.errors.ParserError as exc:
        _refuse_semicolons(path, label)
        m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
        if m:
            columns = f"{m.group(1)} column" + ("" if m.group(1) == "1" else "s")
            raise InputError(
                f"{_who(path, label)} has {m.group(3)} cells in row {m.group(2)} but its header has {columns}; "
                'quote a number written with thousands separators ("1,234.5") or remove the extra cells.'
            ) from None
        raise InputError(f"{_who(path, label)} cannot be read as CSV ({str(exc).strip()}).") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{_who(path, label)} cannot be read as CSV ({exc}).") from None
    cells = raw.apply(lambda col: col.str.strip())
    keep = (cells != "").any(axis=1).to_numpy()
    lines = np.flatnonzero(keep) + 1  # 1-based line numbers (no quoted cell spans lines in these tables)
    cells = cells[keep]
    if cells.empty:
        raise InputError(f"{_who(path, label)} is empty.")
    header = [c.lower() for c in cells.iloc[0]]
    if len(header) == 1:
        _refuse_semicolons(path, label)
    return header, cells.iloc[1:].reset_index(drop=True), lines[1:]


def _refuse_semicolons(path: Path, label: str | None) -> None:
    """One sentence for a semicolon-separated file (a spreadsheet's export in a decimal-comma locale)."""
    with path.open(encoding="utf-8-sig", errors="replace") as fh:
        first = fh.readline().strip()
    if ";" in first and "," not in first:
        raise InputError(f"{_who(path, label)} looks semicolon-separated (header {first!r}); save it comma-separated, with decimal points.")


def read_table(path: str | Path, label: str | None = None) -> tuple[list[str], list[list[str]]]:
    """Header (normalised names) and data rows (stripped cell strings) of a CSV file; blank lines are skipped."""
    header, cells, _ = _read_frame(Path(path), label)
    return header, cells.values.tolist()


def _column_index(path: Path, header: list[str], name: str, label: str | None) -> int:
    if header.count(name) > 1:
        raise InputError(f"{_who(path, label)} has the column {name!r} {header.count(name)} times; keep one.")
    try:
        return header.index(name)
    except ValueError:
        raise InputError(f"{_who(path, label)} has no column {name!r} (columns: {', '.join(header) or 'none'}).") from None


def _numbers(who: str, name: str, cells, lines, percent: bool) -> np.ndarray:
    """A column of cell strings as floats (see the module docstring for what is accepted)."""
    import pandas as pd

    text = cells.astype(str)
    missing = text.str.lower().isin(MISSING_MARKERS).to_numpy()
    if missing.any():
        i = int(np.argmax(missing))
        what = "an empty cell" if text.iloc[i] == "" else f"a missing value ({text.iloc[i]!r})"
        raise InputError(f"{who} has {what} in column {name!r}, row {lines[i]}; every row needs a number there (fill it in or delete the row).")
    has_pct = text.str.endswith("%").to_numpy()
    if has_pct.any() and not percent:
        i = int(np.argmax(has_pct))
        raise InputError(
            f"{who} has {text.iloc[i]!r} in column {name!r}, row {lines[i]}; a percent sign is read only in the ratio and "
            f"volatility columns ({', '.join(sorted(PERCENT_COLUMNS))}), so write a plain number here."
        )
    body = text.where(~has_pct, text.str[:-1].str.rstrip())
    grouped = body.str.fullmatch(_THOUSANDS.pattern).to_numpy()
    body = body.where(~grouped, body.str.replace(",", "", regex=False))
    vals = pd.to_numeric(body, errors="coerce").to_numpy(dtype=float)
    bad = np.isnan(vals) & ~body.str.lower().isin(("nan", "+nan", "-nan")).to_numpy()
    if bad.any():
        i = int(np.argmax(bad))
        hint = ""
        if "," in text.iloc[i]:
            hint = ' (decimals take a point; thousands separators must group digits in threes, as in "1,234.5")'
        raise InputError(f"{who} has the non-numeric value {text.iloc[i]!r} in column {name!r}, row {lines[i]}{hint}.")
    finite = np.isfinite(vals)
    if not finite.all():
        i = int(np.argmin(finite))
        raise InputError(f"{who} has the non-finite value {text.iloc[i]!r} in column {name!r}, row {lines[i]}.")
    return np.where(has_pct, vals / 100.0, vals)


def _iso_dates(who: str, name: str, cells, lines) -> list[str]:
    """A column of dates as ISO strings (formats in the module docstring; one format per column)."""
    import pandas as pd

    text = cells.astype(str)
    missing = text.str.lower().isin(MISSING_MARKERS).to_numpy()
    if missing.any():
        i = int(np.argmax(missing))
        what = "an empty cell" if text.iloc[i] == "" else f"a missing value ({text.iloc[i]!r})"
        raise InputError(f"{who} has {what} in row {lines[i]}; every row needs a date.")
    iso = text.str.extract(f"^{_ISO_WITH_TIME.pattern}$", expand=False)
    tries = {"%Y-%m-%d": pd.to_datetime(iso, format="%Y-%m-%d", errors="coerce")}
    for fmt in _DATE_FORMATS:
        tries[fmt] = pd.to_datetime(text, format=fmt, errors="coerce")
    numeric = text.str.extract(f"^{_NUMERIC_DMY.pattern}$")
    if numeric.notna().all(axis=None):
        first, second = numeric[0].astype(int), numeric[2].astype(int)
        stitched = numeric[3] + "-"
        dayfirst = pd.to_datetime(stitched + second.astype(str) + "-" + first.astype(str), format="%Y-%m-%d", errors="coerce")
        monthfirst = pd.to_datetime(stitched + first.astype(str) + "-" + second.astype(str), format="%Y-%m-%d", errors="coerce")
        ok_d, ok_m = bool(dayfirst.notna().all()), bool(monthfirst.notna().all())
        if ok_d and ok_m and not (first == second).all():
            i = int(np.argmax(((first <= 12) & (second <= 12)).to_numpy()))
            raise InputError(
                f"{who} has {text.iloc[i]!r} in row {lines[i]}, which is not an ISO date (YYYY-MM-DD), and no day in the column is above 12 "
                "to tell day/month from month/day; write YYYY-MM-DD."
            )
        tries["day/month"] = dayfirst if ok_d else monthfirst
    for parsed in tries.values():
        if parsed.notna().all():
            return [d.date().isoformat() for d in parsed]
    best = max(tries.values(), key=lambda p: int(p.notna().sum()))  # the column's format: the one most cells follow
    i = int(np.argmax(best.isna().to_numpy()))
    raise InputError(
        f"{who} has {text.iloc[i]!r} in row {lines[i]}, which is not an ISO date (YYYY-MM-DD) or another date format read in this column "
        "(2020/01/31, 20200131, 31 Jan 2020, Jan 31, 2020, 31/01/2020 when some day is above 12)."
    )


def read_csv_columns(
    path: str | Path,
    required: Sequence[str],
    optional: Sequence[str] = (),
    text: Sequence[str] = (),
    label: str | None = None,
    dates: Sequence[str] = (),
) -> dict:
    """Numeric columns ``required`` (must exist) and ``optional`` (if present) as float arrays; ``text`` columns
    (if present) as lists of stripped strings; ``dates`` columns (if present) as lists of ISO date strings.

    Every row must have a number in each numeric column read and a date in each date column read; row numbers in
    messages are the file's line numbers, the header being row 1. See the module docstring for the formats.
    """
    p = Path(path)
    header, cells, lines = _read_frame(p, label)
    if cells.empty:
        raise InputError(f"{_who(p, label)} has a header but no data rows.")
    who = _who(p, label)
    out: dict = {}
    for name in [*required, *(n for n in optional if n in header)]:
        j = _column_index(p, header, name, label)
        out[name] = _numbers(who, name, cells.iloc[:, j], lines, name in PERCENT_COLUMNS)
    for name in dates:
        if name in header:
            j = _column_index(p, header, name, label)
            out[name] = _iso_dates(f"column {name!r} of {p.name}", name, cells.iloc[:, j], lines)
    for name in text:
        if name in header:
            out[name] = cells.iloc[:, header.index(name)].astype(str).tolist()
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


#: The vol columns every table may carry, in order of preference: ``vol_daily`` (daily vol, decimal; what
#: margin-design writes), ``vol`` (the same, the legacy name) and ``vol_annual`` (annualised, decimal).
VOL_COLUMNS = ("vol_daily", "vol", "vol_annual")
#: Two vol columns of one table agree if they differ by at most this (relative): tables print 12 significant digits.
VOL_COLUMN_RTOL = 1e-9


def daily_vol_column(cols: dict, who: str) -> np.ndarray:
    """The daily vol (decimal) of a table's rows from whichever of :data:`VOL_COLUMNS` it has (``cols``: name -> array).

    ``vol_daily`` and ``vol`` are daily vols; ``vol_annual`` is divided by sqrt(252). A table without any of them, or
    whose vol columns disagree, raises one-sentence InputError naming ``who``. One naming for every table margin-design
    reads: rule tables, target schedules and state tables.
    """
    present = [c for c in VOL_COLUMNS if c in cols]
    if not present:
        raise InputError(
            f"{who} has no column 'vol_daily' (daily vol, decimal; the legacy 'vol' and the annualised 'vol_annual' are read too)"
            f" (columns: {', '.join(cols.get('__header__', ())) or 'none'})."
        )
    daily = {c: np.asarray(cols[c], dtype=float) / (SQRT_252 if c == "vol_annual" else 1.0) for c in present}
    first = present[0]
    for c in present[1:]:
        a, b = daily[first], daily[c]
        bad = np.flatnonzero(np.abs(a - b) > VOL_COLUMN_RTOL * np.maximum(np.abs(a), np.abs(b)))
        if bad.size:
            i = int(bad[0])
            what = "annualised, divided by sqrt(252)" if c == "vol_annual" else "daily"
            raise InputError(
                f"{who} has the conflicting vol columns '{first}' = {float(cols[first][i])!r} and '{c}' = {float(cols[c][i])!r} "
                f"({what}) in row {i + 2}; keep one, 'vol_daily' (daily vol, decimal)."
            )
    return daily[first]
