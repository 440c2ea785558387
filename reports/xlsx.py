"""``rule_table.xlsx``: a rule sheet, a parameter sheet and a provenance sheet (plus ``steps`` on request).

Cells hold the same decimals as ``rule_table.csv`` (unit-named headers); percent columns carry a percent
number format so the sheet reads in percent while the numbers stay machine-readable.

Byte-identical output: openpyxl stamps docProps/core.xml with the current time and the zip entries with
the clock. The workbook's created/modified properties are set to the effective date (or
:data:`FIXED_EPOCH` without one) and the archive is re-written with fixed entry times, same order and
compression.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile

from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.writer.excel import ExcelWriter

from margin_design.reports.table import COLUMNS

FIXED_EPOCH = dt.datetime(2000, 1, 1)
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
PERCENT_COLUMNS = {"vol_daily", "vol_annual", "margin", "first_best", "gap_to_first_best", "margin_optimal", "rounding_error",
                   "vol_daily_from", "vol_daily_to", "vol_annual_from", "vol_annual_to", "margin_below", "margin_above", "jump"}
SHEETS = ("rule", "parameters", "provenance")


def _flatten(prefix: str, value, out: list) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif isinstance(value, (list, tuple)):
        out.append((prefix, json.dumps(value)))
    else:
        out.append((prefix, value))


def _sheet(ws, columns, rows) -> None:
    ws.append(list(columns))
    for c in ws[1]:
        c.font = Font(bold=True)
    for row in rows:
        ws.append([row[c] for c in columns])
    for j, col in enumerate(columns, start=1):
        if col in PERCENT_COLUMNS:
            for (cell,) in ws.iter_rows(min_row=2, min_col=j, max_col=j):
                cell.number_format = "0.0000%"
        ws.column_dimensions[ws.cell(row=1, column=j).column_letter].width = max(12, len(col) + 2)
    ws.freeze_panes = "A2"


def _key_value_sheet(ws, pairs) -> None:
    ws.append(["key", "value"])
    for c in ws[1]:
        c.font = Font(bold=True)
    for k, v in pairs:
        ws.append([k, v])
    ws.column_dimensions["A"].width = 44
    ws.column_dimensions["B"].width = 70


def rule_table_xlsx(table, parameters: dict, provenance: dict, effective_date: str | None, steps=None) -> bytes:
    """The workbook as bytes (deterministic)."""
    wb = Workbook()
    ws = wb.active
    ws.title = "rule"
    _sheet(ws, COLUMNS, table.rows)
    p_pairs: list = []
    _flatten("", parameters, p_pairs)
    _key_value_sheet(wb.create_sheet("parameters"), p_pairs)
    v_pairs: list = [("caption", table.caption), ("status", table.status)]
    if table.rule is not None:
        _flatten("rule", {k: v for k, v in table.rule.items() if k != "certificate"}, v_pairs)
        v_pairs.append(("rule.certificate.ok", table.rule["certificate"]["ok"]))
    _flatten("", provenance, v_pairs)
    _key_value_sheet(wb.create_sheet("provenance"), v_pairs)
    if steps is not None:
        ws = wb.create_sheet("steps")
        cols = ("threshold_vol_daily", "threshold_vol_annual", "margin_below", "margin_above", "jump", "gain_per_unit_trigger")
        _sheet(ws, cols, steps.jumps)
    stamp = dt.datetime.fromisoformat(effective_date) if effective_date else FIXED_EPOCH
    wb.properties.created = stamp
    wb.properties.modified = stamp
    wb.properties.creator = "margin-design"
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as archive:
        ExcelWriter(wb, archive).write_data()
    return _fix_zip_times(raw.getvalue())


def _fix_zip_times(data: bytes) -> bytes:
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=ZIP_TIME)
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = 0o600 << 16
            dst.writestr(fixed, src.read(info.filename))
    return out.getvalue()
