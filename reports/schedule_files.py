"""``schedule.json`` and ``schedule.csv``: the files ``margin-design solve --out DIR`` writes.

``schedule.json`` keys (public contract): version, grid.r, grid.vol, weights, first_best, schedule,
cap_increments, multipliers, segments, objective, certificate, solver (plus units, cap, config,
source_files, problem_sha256). ``schedule.csv`` has one row per grid point with unit-named columns.
The folder is written atomically as a whole (:func:`~margin_design.fileio.write_tree`): both files appear
together or neither does, and an existing folder is replaced only if it holds nothing but these two files
(a folder from an earlier ``solve``). Numbers are printed with repr precision (17 significant digits), so
reading the files back reproduces the schedule exactly; the only field that varies between identical
runs is ``solver.seconds``.
"""

from __future__ import annotations

import json
from pathlib import Path

from margin_design.fileio import check_output_folder, write_tree

CSV_COLUMNS = ("vol", "r", "weight", "first_best", "schedule", "segment")
#: The files ``solve --out`` writes (an existing folder holding only these is replaced as a whole).
SCHEDULE_FILES = ("schedule.json", "schedule.csv")
CSV_HEADER = ("vol_daily", "variance_daily", "weight", "first_best_margin", "margin", "segment_to_right")


def schedule_json_text(result) -> str:
    """The ``schedule.json`` text of a solved :class:`~margin_design.solvers.Schedule` (``result.to_dict()``, indented JSON)."""
    return json.dumps(result.to_dict(), indent=2, sort_keys=False, allow_nan=False) + "\n"


def schedule_csv_text(result) -> str:
    lines = [",".join(CSV_HEADER)]
    for row in result.table_rows():
        lines.append(",".join(repr(row[c]) if c != "segment" else row[c] for c in CSV_COLUMNS))
    return "\n".join(lines) + "\n"


def check_schedule_folder(folder: str | Path, inputs=()) -> Path:
    """Refuse (OutputError) an ``--out`` that ``write_schedule_files`` may not write, before any solving."""
    return check_output_folder(folder, owned=SCHEDULE_FILES, inputs=inputs)


def write_schedule_files(result, folder: str | Path) -> list[Path]:
    """Write schedule.json and schedule.csv as the folder ``folder``, atomically as a pair. Returns the paths."""
    files = {
        "schedule.json": schedule_json_text(result).encode("utf-8"),
        "schedule.csv": schedule_csv_text(result).encode("utf-8"),
    }
    folder = write_tree(folder, files, owned=SCHEDULE_FILES)
    return [folder / name for name in SCHEDULE_FILES]


