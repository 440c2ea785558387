"""``margin-design report``: the report folder a methodology document can cite as it is.

    report = build_report(schedule_or_path, ReportOptions(...))
    write_report(report, "out/benchmark-report")

The folder holds ``rule_table.{csv,json,md,tex,xlsx}``, ``parameters.json``, ``report.md``,
``report.tex``, ``schedule.json`` (as written by ``solve``) and ``figures/`` (PNG and PDF); with
``steps`` also ``step_table.csv`` (buckets), ``step_jumps.csv`` and ``step_table.json``; a portfolio design
(``[portfolio]``) also ``figures/portfolio.{png,pdf}``, the cap across the assets' alignment (Appendix D.6). It is written atomically (built in a
temporary sibling folder and swapped in whole).

Determinism: every file is a function of the schedule and the options only (no clock, no paths), so the
same input gives byte-identical files. The one exception is ``schedule.json`` when the report solves the
config itself: it is written by the ``solve`` serializer and carries the solver's wall time
(``solver.seconds``); starting from a saved ``schedule.json`` copies that file byte for byte. The
provenance block in the other files leaves the wall time out.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from margin_design.errors import InputError
from margin_design.fileio import check_output_folder, write_tree
from margin_design.reports import appendix
from margin_design.reports.formulas import segment_formulas
from margin_design.reports.knots import (
    DEFAULT_TOLERANCE,
    RuleCheck,
    Rounding,
    check_rule,
    interpolation_error,
    knot_caps,
    naive_round,
    round_knots,
    select_knots,
)
from margin_design.reports.parameters import ElasticityInputs, check_elasticity_applies, parameter_block, provenance_block
from margin_design.reports.rule_data import RuleData, load_schedule_json
from margin_design.reports.steps import StepTable, bucket_edges, bucket_levels, step_table
from margin_design.reports.table import (
    RuleTable,
    build_rule_table,
    csv_text,
    rule_table_csv,
    rule_table_json,
    rule_table_latex,
    rule_table_markdown,
)

#: Finest rounding tick accepted (margin ratio): 1e-8 = 0.0001 bp; finer ticks overflow the integer tick counts.
MIN_TICK = 1e-8

REPORT_FILES = (
    "rule_table.csv", "rule_table.json", "rule_table.md", "rule_table.tex", "rule_table.xlsx",
    "parameters.json", "report.md", "report.tex", "schedule.json",
)
STEP_FILES = ("step_table.csv", "step_jumps.csv", "step_table.json")
#: Everything a report folder may hold (an existing folder holding only these is replaced as a whole).
REPORT_OWNED = REPORT_FILES + STEP_FILES + ("figures/*.png", "figures/*.pdf")
STEP_BUCKET_COLUMNS = ("bucket", "vol_daily_from", "vol_daily_to", "vol_annual_from", "vol_annual_to", "margin")
STEP_JUMP_COLUMNS = ("threshold_vol_daily", "threshold_vol_annual", "margin_below", "margin_above", "jump", "gain_per_unit_trigger")


def report_version() -> str:
    from margin_design.solvers.result import package_version

    return package_version()


@dataclass(frozen=True)
class ReportOptions:
    """What to publish. ``knots``: number of knots (default: as many as the ``tolerance`` needs);
    ``tolerance``: largest gap between the linear interpolation and the optimal schedule (margin ratio);
    ``tick``: rounding step (margin ratio, e.g. 0.0005 = 5 bp); ``steps``: number of buckets of a step table
    (None: no step table);
    ``effective_date``: ISO date printed in the provenance block; ``title``: report title."""

    knots: int | None = None
    tolerance: float = DEFAULT_TOLERANCE
    tick: float | None = None
    steps: int | None = None
    effective_date: str | None = None
    title: str | None = None
    elasticity: ElasticityInputs | None = None

    def __post_init__(self):
        if self.knots is not None and (isinstance(self.knots, bool) or not isinstance(self.knots, int) or self.knots < 2):
            raise InputError(f"--knots {self.knots!r} must be an integer >= 2.")
        if not (isinstance(self.tolerance, (int, float)) and math.isfinite(self.tolerance) and self.tolerance > 0):
            raise InputError(f"--tolerance {self.tolerance!r} must be a positive margin ratio (e.g. 0.0001 for 1 bp).")
        if self.tick is not None and not (isinstance(self.tick, (int, float)) and math.isfinite(self.tick) and 0 < self.tick < 1):
            raise InputError(f"--round {self.tick!r} must be a tick size in (0, 1) (margin ratio, e.g. 0.0005 for 5 bp).")
        if self.tick is not None and self.tick < MIN_TICK:
            raise InputError(
                f"--round {self.tick!r} is finer than {MIN_TICK:g} (0.0001 bp of notional), the finest tick accepted "
                "(margin ratio, e.g. 0.0005 for 5 bp)."
            )
        if self.effective_date is not None:
            try:
                d = dt.date.fromisoformat(self.effective_date)
            except (TypeError, ValueError):
                raise InputError(f"--effective-date {self.effective_date!r} is not an ISO date (YYYY-MM-DD).") from None
            object.__setattr__(self, "effective_date", d.isoformat())


@dataclass(frozen=True, eq=False)
class Report:
    """Everything the report folder shows, computed once from the schedule and the options."""

    data: RuleData = field(repr=False)
    options: ReportOptions
    knots: np.ndarray = field(repr=False)           # grid indices of the knots
    published: np.ndarray = field(repr=False)       # published margins at the knots (rounded when a tick is given)
    interpolation_error: float                      # max over the grid of |linear interpolation of the knots - schedule|
    published_error: float                          # same for the published (rounded) knots
    check: RuleCheck                                # the published rule: monotone and within the cap between knots
    check_unrounded: RuleCheck
    rounding: Rounding | None
    naive_check: RuleCheck | None                   # per-value rounding, for comparison
    steps: StepTable | None
    formulas: tuple = field(repr=False)
    table: RuleTable = field(repr=False)
    parameters: dict = field(repr=False)
    provenance: dict = field(repr=False)
    warnings: tuple = ()
    changelog: object = field(default=None, repr=False)   # RuleComparison against --previous OLD, or None

    @property
    def title(self) -> str:
        return self.options.title or "Manipulation-proof margin rule"

    def checks_dict(self) -> dict:
        """The publication checks in JSON-ready form (also in ``parameters.json``)."""
        o = self.options
        out = {
            "knots": {
                "count": int(self.knots.size),
                "grid_indices": [int(i) for i in self.knots],
                "tolerance": o.tolerance if o.knots is None else None,
                "requested": o.knots,
                "max_interpolation_error": self.interpolation_error,
                "interpolation": "linear in volatility between knots; error measured at every grid point of the optimal schedule",
            },
            "published_rule": self.check.to_dict(),
            "unrounded_rule": self.check_unrounded.to_dict(),
            "rounding": None,
            "steps": None,
        }
        if self.rounding is not None:
            out["rounding"] = dict(self.rounding.to_dict(), max_published_error=self.published_error,
                                   naive_rounding=self.naive_check.to_dict() if self.naive_check else None)
        if self.steps is not None:
            out["steps"] = {
                "jumps": len(self.steps.jumps),
                "max_jump": self.steps.max_jump,
                "max_gain_per_unit_trigger": self.steps.max_gain_per_unit_trigger,
                "warning": appendix.step_warning(self.data),
            }
        return out


def _as_data(source) -> RuleData:
    if isinstance(source, RuleData):
        return source
    if isinstance(source, (str, Path)):
        return load_schedule_json(source)
    if isinstance(source, dict):
        return RuleData.from_dict(source)
    if hasattr(source, "to_dict") and hasattr(source, "schedule"):
        return RuleData.from_schedule(source)
    raise InputError(f"cannot build a report from {type(source).__name__}; pass a Schedule or a schedule.json path.")


def published_rule(table: RuleTable):
    """The rule this report publishes, as ``diff`` reads its rule_table.json: the table's rows (vol_daily, margin),
    linear in vol between them (:func:`~margin_design.calibration.audit.rules.table_rule` decides the extrapolation)."""
    from margin_design.calibration.audit.rules import Rule, RuleInfo, table_rule

    base = table_rule(table.column("vol_daily"), table.column("margin"), "linear", "this report's rule table")
    return Rule(base, name="this rule", info=RuleInfo("rule table", published_vol=tuple(base.vol.tolist())))


def change_log(table: RuleTable, previous):
    """The change from ``previous`` (a Rule from :func:`load_rule`) to the published rule at its published points."""
    from margin_design.calibration.audit.diff import compare_rules
    from margin_design.reports.diff import pct_label

    new = published_rule(table)
    labels = [pct_label(100.0 * float(v)) for v in table.column("vol_annual")]
    return compare_rules(previous, new, new.base.vol, labels)


def build_report(source, options: ReportOptions | None = None, *, input_file: dict | None = None, previous=None) -> Report:
    """Compute the report from a Schedule, a :class:`RuleData`, a schedule.json dict or its path; ``previous`` (a rule
    from :func:`~margin_design.calibration.audit.load_rule`) adds a change log against it."""
    options = options or ReportOptions()
    data = _as_data(source)
    check_elasticity_applies(options.elasticity, data.is_portfolio)
    warnings: list[str] = []
    knots = select_knots(data.vol, data.schedule, data.segments, tolerance=options.tolerance, count=options.knots)
    vk = data.vol[knots]
    x = data.schedule[knots]
    err = float(interpolation_error(data.vol, data.schedule, knots).max())
    if options.knots is not None and err > options.tolerance:
        warnings.append(
            f"with --knots {options.knots} the linear interpolation departs from the optimal schedule by up to "
            f"{err:.3g} (margin ratio), above the tolerance {options.tolerance:g}."
        )
    check_unrounded = check_rule(vk, x, data.slope_vol)
    rounding = naive_check = None
    published = x
    if options.tick is not None:
        rounding = round_knots(x, knot_caps(vk, data.slope_vol), options.tick)
        published = rounding.margin
        naive_check = check_rule(vk, naive_round(x, options.tick), data.slope_vol)
        if rounding.flat_intervals:
            warnings.append(
                f"the cap is below one tick ({options.tick:g}) on {len(rounding.flat_intervals)} knot interval(s), so the rounded rule "
                "must stay flat there; the error this costs is included in the rounding error."
            )
    pub_err = float(np.max(np.abs(np.interp(data.vol, vk, published) - data.schedule)))
    check = check_rule(vk, published, data.slope_vol)
    if not check.ok:  # pragma: no cover - knots of a feasible schedule and the rounding are feasible by construction
        warnings.append("the published rule fails the monotonicity or cap check between knots; do not publish it.")
    steps = None
    if options.steps is not None:
        edges = data.vol[bucket_edges(data.vol, options.steps)]
        levels = bucket_levels(edges, vk, published, options.tick)
        if data.is_portfolio:
            steps = step_table(edges, levels, None, None, price_pressure=data.trigger_gain_scale)
        else:
            steps = step_table(edges, levels, data.alpha, data.c_eff)
        if steps.jumps:
            warnings.append(
                f"the step table has {len(steps.jumps)} jump(s) of up to {steps.max_jump:.4g} (margin ratio); "
                f"each can be harvested by threshold crossing, gain up to {steps.max_gain_per_unit_trigger:.4g} per unit trigger (Section 6.6)."
            )
    if not data.certificate_ok:
        warnings.append(f"the schedule's optimality certificate fails its targets (relative gap {data.certificate['relative_gap']:.3g}).")
    params, pwarn = parameter_block(data, options.elasticity)
    warnings += pwarn
    formulas = tuple(segment_formulas(data))
    table = build_rule_table(data, knots, published, options.tick)
    provenance = provenance_block(data, options.effective_date, report_version(), input_file)
    return Report(
        data=data, options=options, knots=knots, published=np.asarray(published, float), interpolation_error=err,
        published_error=pub_err, check=check, check_unrounded=check_unrounded, rounding=rounding, naive_check=naive_check,
        steps=steps, formulas=formulas, table=table, parameters=params, provenance=provenance, warnings=tuple(warnings),
        changelog=None if previous is None else change_log(table, previous),
    )


def parameters_json(report: Report) -> str:
    payload = {
        "parameters": report.parameters,
        "segments": [f.to_dict() for f in report.formulas],
        "objective": report.data.objective,
        "checks": report.checks_dict(),
        "provenance": report.provenance,
        "warnings": list(report.warnings),
    }
    if report.changelog is not None:
        from margin_design.reports.diff import changelog_dict

        payload["change_log"] = changelog_dict(report.changelog)
    return json.dumps(payload, indent=2, allow_nan=False) + "\n"


def report_files(report: Report, *, figures: bool = True) -> dict[str, bytes]:
    """Every file of the report folder as {relative path: bytes} (pure; :func:`write_report` writes them)."""
    from margin_design.reports.xlsx import rule_table_xlsx

    t = report.table
    seg = [f.to_dict() for f in report.formulas]
    files = {
        "rule_table.csv": rule_table_csv(t),
        "rule_table.json": rule_table_json(t, {"segments": seg, "checks": report.checks_dict()}),
        "rule_table.md": rule_table_markdown(t, report.formulas),
        "rule_table.tex": rule_table_latex(t, report.formulas),
        "parameters.json": parameters_json(report),
        "report.md": appendix.report_markdown(report),
        "report.tex": appendix.report_latex(report),
        "schedule.json": report.data.schedule_json,
    }
    if report.changelog is not None:  # the change log against --previous: a section of report.md and report.tex
        from margin_design.reports.diff import changelog_latex, changelog_markdown

        new_id = getattr(report, "rule_id", None)
        files["report.md"] = files["report.md"].rstrip("\n") + "\n\n" + changelog_markdown(report.changelog, new_id)
        tex, end = files["report.tex"], "\\end{document}"
        section = changelog_latex(report.changelog, new_id)
        files["report.tex"] = tex.replace(end, section + "\n" + end) if end in tex else tex.rstrip("\n") + "\n\n" + section
    if report.steps is not None:
        files["step_table.csv"] = csv_text(report.steps.buckets, STEP_BUCKET_COLUMNS)
        files["step_jumps.csv"] = csv_text(report.steps.jumps, STEP_JUMP_COLUMNS)
        files["step_table.json"] = json.dumps(report.steps.to_dict(), indent=2, allow_nan=False) + "\n"
    out = {k: v.encode("utf-8") for k, v in files.items()}
    out["rule_table.xlsx"] = rule_table_xlsx(t, report.parameters, report.provenance, report.options.effective_date, report.steps)
    if figures:
        from margin_design.reports.figures import render_figures

        out.update(render_figures(report))
    return dict(sorted(out.items()))


def check_report_folder(folder: str | Path, inputs=()) -> Path:
    """Refuse (OutputError) an ``--out`` the report may not write (see :mod:`margin_design.fileio`), before any work."""
    return check_output_folder(folder, owned=REPORT_OWNED, inputs=inputs)


def write_report(report: Report, folder: str | Path) -> Path:
    """Write the report folder atomically: it appears whole, or (on any error) not at all. An existing folder
    is replaced only if it holds nothing but report files (:data:`REPORT_OWNED`)."""
    return write_tree(folder, report_files(report), owned=REPORT_OWNED)
