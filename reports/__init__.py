"""Reports: rule tables, figures and a methodology appendix for a solved schedule (Nicolai 2026, Section 6).

    from margin_design.reports import ReportOptions, build_report, write_report
    report = build_report(schedule_or_schedule_json_path, ReportOptions(tick=0.0005, effective_date="2026-07-01"))
    write_report(report, "out/benchmark-report")

Exports are loaded lazily so that importing :mod:`margin_design.reports.schedule_files` (``solve``) does
not pull in sympy, matplotlib or openpyxl.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "ReportOptions": "report",
    "Report": "report",
    "build_report": "report",
    "report_files": "report",
    "write_report": "report",
    "REPORT_FILES": "report",
    "RuleData": "rule_data",
    "load_schedule_json": "rule_data",
    "ElasticityInputs": "parameters",
    "select_knots": "knots",
    "check_rule": "knots",
    "round_knots": "knots",
    "naive_round": "knots",
    "step_table": "steps",
    "segment_formulas": "formulas",
    "build_rule_table": "table",
    "render_figures": "figures",
    "write_html_document": "html",
    "latex_document": "latex_doc",
    "compile_pdf": "latex_doc",
    "schedule_json_text": "schedule_files",
    "write_schedule_files": "schedule_files",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"margin_design.reports.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'margin_design.reports' has no attribute {name!r}")
