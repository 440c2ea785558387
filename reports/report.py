"""``margin-design report``: the report folder a methodology document can cite as it is.

    report = build_report(schedule_or_path, ReportOptions(...))
    write_report(report, "out/benchmark-report")

The folder holds ``rule_table.{csv,json,md,tex,xlsx}``, ``parameters.json``, ``report.md``,
``report.html`` (self-contained: figures embedded, no network reference), ``report.tex`` (a complete LaTeX
document), ``report_body.tex`` (the same text as a fragment to ``\\input``), ``report.pdf`` (only with
``pdf=True``: ``report.tex`` compiled by pdflatex), ``schedule.json`` (as written by ``solve``) and ``figures/`` (PNG and PDF); with
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
from margin_design.reports.publish import PublishedRule, check_version_label, evaluate, publish_at_points, publish_knots
from margin_design.reports.parameters import ElasticityInputs, check_elasticity_applies, parameter_block, provenance_block
from margin_design.reports.rule_data import SQRT_252, RuleData, load_schedule_json
from margin_design.reports.steps import StepTable, bucket_edges, bucket_levels, step_table
from margin_design.reports.table import (
    RuleTable,
    build_points_table,
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
    "parameters.json", "report.md", "report.html", "report.tex", "report_body.tex", "schedule.json",
)
STEP_FILES = ("step_table.csv", "step_jumps.csv", "step_table.json")
#: With --published-vols the knot table is kept beside the published one, labelled "not published".
KNOT_FILES = ("knot_table.csv", "knot_table.md")
#: Everything a report folder may hold (an existing folder holding only these is replaced as a whole).
REPORT_OWNED = REPORT_FILES + STEP_FILES + KNOT_FILES + ("report.pdf", "figures/*.png", "figures/*.pdf")
KNOT_STATUS = "knot interpolation of g* (not published)"
STEP_STATUS = "step table (not published: its jumps can be harvested, Section 6.6)"
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
    ``effective_date``: ISO date printed in the provenance block; ``title``: report title;
    ``published_vols``: the published points (a ``--published-vols`` spec, annualised percentage points, or a
    :class:`~margin_design.reports.vol_points.VolPoints`; None: the knot table is the published rule);
    ``published_tolerance``: largest accepted gap between the published rule and g* over the grid (margin ratio;
    None: the larger of 1 bp and one tick); ``version_label``: free text printed with the rule ID."""

    knots: int | None = None
    tolerance: float = DEFAULT_TOLERANCE
    tick: float | None = None
    steps: int | None = None
    effective_date: str | None = None
    title: str | None = None
    elasticity: ElasticityInputs | None = None
    published_vols: object = None
    published_tolerance: float | None = None
    version_label: str | None = None

    def __post_init__(self):
        if isinstance(self.published_vols, str):
            from margin_design.reports.vol_points import parse_vol_points

            object.__setattr__(self, "published_vols", parse_vol_points(self.published_vols))
        object.__setattr__(self, "version_label", check_version_label(self.version_label))
        t = self.published_tolerance
        if t is not None and not (isinstance(t, (int, float)) and math.isfinite(t) and t > 0):
            raise InputError(f"--tolerance {t!r} must be a positive margin ratio (e.g. 0.0001 for 1 bp).")
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
    rule: PublishedRule | None = None               # the rule the folder publishes (points or knots), certified and costed
    knot_table: RuleTable | None = field(default=None, repr=False)   # with --published-vols: the knot form, not published
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
            "published": self.rule.to_dict() if self.rule is not None else None,
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
    linear in vol between them (:func:`~margin_design.audit.rules.table_rule` decides the extrapolation)."""
    from margin_design.audit.rules import Rule, RuleInfo, table_rule

    base = table_rule(table.column("vol_daily"), table.column("margin"), "linear", "this report's rule table",
                      (table.rule or {}).get("extrapolation"))   # the statement rule_table.json carries
    return Rule(base, name="this rule", info=RuleInfo("rule table", published_vol=tuple(base.vol.tolist()),
                                                      extrapolation=base.extrapolation_text))


def change_log(table: RuleTable, previous):
    """The change from ``previous`` (a Rule from :func:`load_rule`) to the published rule at its published points."""
    from margin_design.audit.diff import compare_rules
    from margin_design.reports.diff import pct_label

    new = published_rule(table)
    labels = [pct_label(100.0 * float(v)) for v in table.column("vol_annual")]
    return compare_rules(previous, new, new.base.vol, labels)


def build_report(source, options: ReportOptions | None = None, *, input_file: dict | None = None, problem=None, previous=None) -> Report:
    """Compute the report from a Schedule, a :class:`RuleData`, a schedule.json dict or its path. ``problem``: the
    design problem (to evaluate the published rule's cost J(published) - J(g*)); taken from a Schedule, else rebuilt
    from a schedule.json when possible (:func:`margin_design.reports.publish.problem_for`). ``previous`` (a rule from
    :func:`~margin_design.audit.load_rule`) adds a change log against it."""
    options = options or ReportOptions()
    if problem is None and hasattr(source, "problem") and hasattr(source, "schedule"):
        problem = source.problem
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
    pub = dict(tolerance=options.published_tolerance, problem=problem, version_label=options.version_label)
    knot_table = None
    if options.published_vols is not None:
        rule = publish_at_points(data, options.published_vols, tick=options.tick, **pub)
        table = build_points_table(data, rule)
        knot_table = build_rule_table(data, knots, published, options.tick, rule=rule, status=KNOT_STATUS)
    else:
        rule = publish_knots(data, knots, published, tick=options.tick, **pub)
        table = build_rule_table(data, knots, published, options.tick, rule=rule)
    if not rule.certificate.ok:  # pragma: no cover - feasible by construction (reports/publish.py)
        warnings.append("the published rule fails its certificate (monotone, M >= 0, within the cap on every interval and extrapolation piece); do not publish it.")
    if not rule.within_tolerance:
        warnings.append(_tolerance_warning(data, rule))
    provenance = provenance_block(data, options.effective_date, report_version(), input_file)
    return Report(
        data=data, options=options, knots=knots, published=np.asarray(published, float), interpolation_error=err,
        published_error=pub_err, check=check, check_unrounded=check_unrounded, rounding=rounding, naive_check=naive_check,
        steps=steps, formulas=formulas, table=table, parameters=params, provenance=provenance, warnings=tuple(warnings),
        rule=rule, knot_table=knot_table,
        changelog=None if previous is None else change_log(table, previous),
    )


def _tolerance_warning(data: RuleData, rule: PublishedRule) -> str:
    """Why the published rule is further from g* than the tolerance: where the largest gap is, the gap between the
    points with and without rounding, and what would help."""
    at = rule.max_error_vol
    where = ("below the first published point, where the rule is flat" if at < rule.vol[0] else
             "above the last published point, where the rule continues at the last slope" if at > rule.vol[-1] else "between published points")
    inside = (data.vol >= rule.vol[0]) & (data.vol <= rule.vol[-1])
    gap = float(np.max(np.abs(evaluate(rule.vol, rule.margin, data.vol[inside]) - data.schedule[inside]), initial=0.0))
    before = float(np.max(np.abs(evaluate(rule.vol, rule.optimal, data.vol[inside]) - data.schedule[inside]), initial=0.0))
    text = (f"the published rule departs from the optimal schedule g* by up to {rule.max_error:.3g} (margin ratio) at "
            f"{100 * SQRT_252 * at:.1f}% annualised vol, {where}, above the tolerance {rule.tolerance:g}; between the points the gap is "
            f"{gap:.3g}" + (f" ({before:.3g} before rounding)" if rule.rounding is not None else ""))
    if rule.rounding is not None and gap - before > rule.tolerance:
        text += (f"; between two points the cap allows whole ticks of {rule.tick:g} only, so where g* rises at the cap the rounded "
                 "rule falls behind (a finer --round helps)")
    return text + "; publish points covering the grid, closer points, or accept it with --tolerance."


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


def report_files(report: Report, *, figures: bool = True, pdf: bool = False) -> dict[str, bytes]:
    """Every file of the report folder as {relative path: bytes} (pure; :func:`write_report` writes them).
    ``pdf``: also ``report.pdf``, compiled by pdflatex (needs ``figures``)."""
    from margin_design.reports.xlsx import rule_table_xlsx

    t = report.table
    seg = [f.to_dict() for f in report.formulas]
    files = {
        "rule_table.csv": rule_table_csv(t),
        "rule_table.json": rule_table_json(t, {"segments": seg, "checks": report.checks_dict()}),
        "rule_table.md": rule_table_markdown(t, report.formulas),
        "rule_table.tex": rule_table_latex(t, report.formulas),
        "parameters.json": parameters_json(report),
        "schedule.json": report.data.schedule_json,
    }
    files.update(document_files(report))
    if report.steps is not None:
        tag = {"status": STEP_STATUS, "published_rule_id": report.rule.rule_id if report.rule else None}
        files["step_table.csv"] = csv_text([dict(b, **tag) for b in report.steps.buckets], STEP_BUCKET_COLUMNS + tuple(tag))
        files["step_jumps.csv"] = csv_text(report.steps.jumps, STEP_JUMP_COLUMNS)
        files["step_table.json"] = json.dumps(dict(report.steps.to_dict(), status=STEP_STATUS,
                                                   published_rule_id=report.rule.rule_id if report.rule else None), indent=2, allow_nan=False) + "\n"
    if report.knot_table is not None:
        files["knot_table.csv"] = rule_table_csv(report.knot_table)
        files["knot_table.md"] = rule_table_markdown(report.knot_table, report.formulas)
    out = {k: v.encode("utf-8") for k, v in files.items()}
    out["rule_table.xlsx"] = rule_table_xlsx(t, report.parameters, report.provenance, report.options.effective_date, report.steps)
    if figures:
        from margin_design.reports.figures import render_figures

        out.update(render_figures(report))
    if pdf:
        from margin_design.reports.latex_doc import compile_pdf

        if not figures:
            raise InputError("report.pdf needs the figures (pdf=True with figures=False).")
        out["report.pdf"] = compile_pdf({k: v for k, v in out.items() if k == "report.tex" or k.endswith(".pdf")})
    out["report.html"] = report_html(report, out).encode("utf-8")
    return dict(sorted(out.items()))


def document_files(report: Report) -> dict[str, str]:
    """``report.md``, ``report_body.tex`` (fragment) and ``report.tex`` (complete document), each ending with the
    full reference and the meaning of every equation number it mentions (:mod:`~margin_design.reports.citation`)."""
    from margin_design.reports.citation import latex_references, markdown_references
    from margin_design.reports.latex_doc import fit_tables, latex_document

    md = appendix.report_markdown(report)
    body = fit_tables(appendix.report_latex(report))
    if report.changelog is not None:  # the change log against --previous: a section of every document
        from margin_design.reports.diff import changelog_latex, changelog_markdown

        new_id = report.rule.rule_id if report.rule else None
        md = md.rstrip("\n") + "\n\n" + changelog_markdown(report.changelog, new_id)
        body = body.rstrip("\n") + "\n\n" + changelog_latex(report.changelog, new_id)
    body += latex_references(body)
    return {
        "report.md": md + markdown_references(md),
        "report_body.tex": body,
        "report.tex": latex_document(body, report.title, subject="Methodology appendix (Nicolai 2026, Section 6)"),
    }


def report_html(report: Report, files: dict[str, bytes]) -> str:
    """``report.html`` from ``report.md`` with the PNG figures of ``files`` embedded (the PDF links of the
    Markdown are left out: the page stands alone)."""
    from margin_design.reports.html import write_html_document

    md = files["report.md"].decode("utf-8")
    for name, _ in appendix.figure_captions(report):
        md = md.replace(f" ([PDF](figures/{name}.pdf))", "")
    pngs = {k: v for k, v in files.items() if k.startswith("figures/") and k.endswith(".png")}
    return write_html_document(md, report.title, pngs)


def check_report_folder(folder: str | Path, inputs=()) -> Path:
    """Refuse (OutputError) an ``--out`` the report may not write (see :mod:`margin_design.fileio`), before any work."""
    return check_output_folder(folder, owned=REPORT_OWNED, inputs=inputs)


def write_report(report: Report, folder: str | Path, *, pdf: bool = False) -> Path:
    """Write the report folder atomically: it appears whole, or (on any error) not at all. An existing folder
    is replaced only if it holds nothing but report files (:data:`REPORT_OWNED`). ``pdf``: also ``report.pdf``."""
    return write_tree(folder, report_files(report, pdf=pdf), owned=REPORT_OWNED)
