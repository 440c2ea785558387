"""``margin-design report``: rule tables, figures and a methodology appendix (a thin adapter over
:mod:`margin_design.reports`).

    margin-design report examples/benchmark.toml --out out/benchmark-report
    margin-design report out/benchmark/schedule.json --out out/benchmark-report --round 0.0005 --effective-date 2026-07-01

A ``.toml`` input is solved (``--method``); a ``.json`` input is a saved ``schedule.json`` and is not
re-solved. Units on flags: ``--tolerance`` and ``--round`` are margin ratios (0.0001 = 1 bp of notional),
``--elasticity``, ``--turnover``, ``--participation`` and ``--margin-level`` decimals, ``--distortion-bps``
basis points. User errors print one sentence and exit with status 2.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

from margin_design.errors import InputError

__all__ = ["register", "main", "run"]


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="a TOML configuration (solved here) or a schedule.json written by 'margin-design solve --out'")
    p.add_argument("--out", required=True, help="report folder (written atomically; an existing folder is replaced only if it "
                   "holds nothing but report files; never the current folder, a file, or a folder holding the input)")
    p.add_argument("--method", choices=("cvxpy", "exact"), default="exact", help="solver path for a TOML input (default: %(default)s)")
    p.add_argument("--effective-date", metavar="YYYY-MM-DD", help="effective date printed in the provenance block (never the clock)")
    p.add_argument("--knots", type=int, metavar="N", help="number of knots (default: as many as --tolerance needs)")
    p.add_argument("--tolerance", type=float, default=None, metavar="TOL",
                   help="largest gap between the linear knot interpolation and the optimal schedule, margin ratio (default 0.0001 = 1 bp); "
                   "also the largest accepted gap of the published rule to g* over the grid (default there: the larger of 1 bp and one "
                   "--round tick), above which the report warns")
    p.add_argument("--published-vols", metavar="SPEC",
                   help="publish the rule at these annualised vols, percentage points: start:stop:step (8:60:1) or a list (10,15,20); "
                   "inside the solved grid's range; linear in vol between points, flat below the first, last slope above the last")
    p.add_argument("--version-label", metavar="TEXT", help="free-text version label printed with the rule ID (not part of the ID)")
    p.add_argument("--round", type=float, dest="tick", metavar="TICK", help="round published margins to this tick (margin ratio; 0.0005 = 5 bp), cap-preserving")
    p.add_argument("--steps", type=int, nargs="?", const=10, default=None, metavar="BUCKETS",
                   help="also publish a bucketed step table (default 10 equal-width vol buckets), with its jumps and threshold-crossing gains (Section 6.6)")
    p.add_argument("--title", help="report title")
    p.add_argument("--pdf", action="store_true", help="also compile report.tex to report.pdf with pdflatex (TeX Live must be installed)")
    p.add_argument("--previous", metavar="OLD", help="the rule in force (any rule 'margin-design diff' reads, typically the previous "
                   "rule_table.json): adds a change-log section, the change at each published vol")
    g = p.add_argument_group("elasticity inputs (recorded in the parameter block and checked against alpha and c_eff; not for [portfolio] designs)")
    g.add_argument("--elasticity", type=float, help="epsilon_XM = -dlog X / dlog M (decimal)")
    g.add_argument("--turnover", type=float, help="tau = XP / ADV (decimal)")
    g.add_argument("--participation", type=float, help="trigger size f as a fraction of ADV (decimal, e.g. 0.01)")
    g.add_argument("--distortion-bps", type=float, help="sampled-price distortion delta of the trigger, in bp")
    g.add_argument("--margin-level", type=float, help="margin level m for c_eff = epsilon tau / m (decimal; default objective.prev_margin)")
    from margin_design.cli import add_json_flag

    add_json_flag(p)


def run(args: argparse.Namespace) -> int:
    from margin_design.reports.knots import DEFAULT_TOLERANCE
    from margin_design.reports.parameters import ElasticityInputs
    from margin_design.reports.report import ReportOptions, build_report, check_report_folder, write_report
    from margin_design.reports.rule_data import RuleData, load_schedule_json

    from margin_design import console
    from margin_design.cli import check_json_file, files_in, finish_json

    src = Path(args.input)
    from margin_design.audit.rules import is_folder, load_rule

    previous_file = args.previous is not None and (Path(args.previous).suffix.lower() in (".csv", ".json", ".toml") or is_folder(args.previous))
    check_report_folder(args.out, inputs=[src] + ([args.previous] if previous_file else []))
    check_json_file(args)
    if args.pdf:
        from margin_design.reports.latex_doc import pdflatex_path

        pdflatex_path()  # refuse before the solve, not after
    previous = None if args.previous is None else load_rule(args.previous)
    elasticity = ElasticityInputs(
        elasticity=args.elasticity, turnover=args.turnover, participation=args.participation,
        distortion_bps=args.distortion_bps, margin_level=args.margin_level,
    )
    options = ReportOptions(
        knots=args.knots,
        tolerance=DEFAULT_TOLERANCE if args.tolerance is None else args.tolerance,
        tick=args.tick,
        steps=args.steps,
        effective_date=args.effective_date,
        title=args.title,
        elasticity=elasticity,
        published_vols=args.published_vols,
        published_tolerance=args.tolerance,
        version_label=args.version_label,
    )
    suffix = src.suffix.lower()
    if suffix == ".json":
        data = load_schedule_json(src)
        problem = None   # rebuilt from the stored configuration for the cost when it needs no data file
        kind = "schedule.json"
    elif suffix == ".toml":
        from margin_design.design import load_problem
        from margin_design.design.config import load_config
        from margin_design.reports.parameters import check_elasticity_applies
        from margin_design.audit.updates import solve_design

        check_elasticity_applies(elasticity, "portfolio" in load_config(src)[0])  # before the solve, not after
        problem = load_problem(src)
        data = RuleData.from_schedule(solve_design(problem, method=args.method))   # [cap] updates = T: the scaled cap
        kind = "config"
    else:
        raise InputError(f"input {str(src)!r} must be a .toml configuration or a schedule.json file.")
    try:
        digest = hashlib.sha256(src.read_bytes()).hexdigest()
    except OSError as exc:  # pragma: no cover - read a moment ago
        raise InputError(f"input {str(src)!r} cannot be read: {exc.strerror or exc}.") from None
    report = build_report(data, options, input_file={"kind": kind, "name": src.name, "sha256": digest}, problem=problem,
                          previous=previous)
    out = write_report(report, args.out, pdf=args.pdf)
    c = report.check
    console.say(
        ("report: knot interpolation (kept as knot_table, not published): " if report.rule is not None and report.rule.form == "published vols"
         else "report: ")
        + f"{report.knots.size} knots, interpolation error {report.interpolation_error:.2e}, "
        f"cap and monotonicity between knots {'PASS' if c.ok else 'FAIL'}"
        + (f", largest rounding error {report.rounding.max_error:.2e}" if report.rounding else "")
        + (f", {len(report.steps.jumps)} step jump(s)" if report.steps else "")
    )
    from margin_design.reports.table import cost_line

    r = report.rule
    console.say(
        f"published rule {r.short_id}" + (f" ({r.version_label})" if r.version_label else "")
        + f": {len(r.labels)} {'points' if r.form == 'published vols' else 'knots'}, monotone and within the cap on every interval and "
        f"extrapolation piece {'PASS' if r.certificate.ok else 'FAIL'}, largest gap to g* {r.max_error:.2e} "
        f"({'within' if r.within_tolerance else 'ABOVE'} tolerance {r.tolerance:g}); {cost_line(r.cost)}"
    )
    if report.changelog is not None:
        from margin_design.reports.diff import headline

        console.say("change log against " + args.previous + ": " + "; ".join(headline(report.changelog)))
    for w in report.warnings:
        console.warn(w)
    console.say(f"wrote {out}")
    summary = {
        "command": "report",
        "input": {"kind": kind, "path": str(src), "sha256": digest},
        "knots": int(report.knots.size),
        "interpolation_error": float(report.interpolation_error),
        "published_error": float(report.published_error),
        "cap_and_monotonicity_ok": bool(c.ok),
        "rounding_max_error": float(report.rounding.max_error) if report.rounding else None,
        "step_jumps": len(report.steps.jumps) if report.steps else None,
        "objective": data.objective.get("value"),
        "first_best_objective": data.objective.get("first_best_value"),
        "segments": [dict(seg) for seg in data.segments],
        "certificate": dict(data.certificate),
        "warnings": list(report.warnings),
        "folder": str(out),
        "files": files_in(out),
    }
    return finish_json(args, summary)


def register(subparsers) -> None:
    """Add the ``report`` subcommand to the top-level parser."""
    p = subparsers.add_parser("report", help="rule tables, figures and a methodology appendix for a config or a schedule.json")
    _add_arguments(p)
    p.set_defaults(func=run)


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point (``margin-design report`` arguments without the word ``report``)."""
    from margin_design.cli import standalone

    return standalone(register, ["report", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
