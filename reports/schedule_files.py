"""``schedule.json`` and ``schedule.csv``: the files ``margin-design solve --out DIR`` writes.

``schedule.json`` keys (public contract): version, grid.r, grid.vol, weights, first_best, schedule,
cap_increments, multipliers, segments, objective, certificate, solver (plus units, cap, config,
source_files, problem_sha256). ``schedule.csv`` has one row per grid point with unit-named columns.
Both are written atomically. Numbers are printed with repr precision (17 significant digits), so
reading the files back reproduces the schedule exactly; the only field that varies between identical
runs is ``solver.seconds``.
"""

from __future__ import annotations

import json
from pathlib import Path

from margin_design.fileio import atomic_write_text

CSV_COLUMNS = ("vol", "r", "weight", "first_best", "schedule", "segment")
CSV_HEADER = ("vol_daily", "variance_daily", "weight", "first_best_margin", "margin", "segment_to_right")


def schedule_json_text(result) -> str:
    return json.dumps(result.to_dict(), indent=2, sort_keys=False, allow_nan=False) + "\n"


def schedule_csv_text(result) -> str:
    lines = [",".join(CSV_HEADER)]
    for row in result.table_rows():
        lines.append(",".join(repr(row[c]) if c != "segment" else row[c] for c in CSV_COLUMNS))
    return "\n".join(lines) + "\n"


def write_schedule_files(result, folder: str | Path) -> list[Path]:
    """Write schedule.json and schedule.csv into ``folder`` (each atomically). Returns the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return [
        atomic_write_text(folder / "schedule.json", schedule_json_text(result)),
        atomic_write_text(folder / "schedule.csv", schedule_csv_text(result)),
    ]


