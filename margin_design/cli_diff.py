"""``margin-design diff``: compare two margin rules (a thin adapter over :mod:`margin_design.reports.diff`).

    margin-design diff OLD NEW [--market CONFIG] [--vols SPEC] --out DIR [--json]

OLD and NEW: a schedule.json (``solve --out``), rule_table.csv / rule_table.json (``report --out``), a step table, a
``vol,margin`` CSV (daily vol column ``vol_daily``, ``vol`` or ``vol_annual``), a TOML rule file, a report or solve
folder, or a formula in r (daily variance) or sigma (daily vol). ``--vols``: annualised vols in percentage points
(``8:60:1`` or ``10,15,20``). ``--json``: stdout holds exactly one JSON object, the summary. User errors print one
sentence and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["register", "main", "run"]

RULE_HELP = ("a schedule.json, rule_table.csv/.json or step table written by margin-design, a CSV with columns vol_daily (daily "
             "vol, decimal; or vol, the same, or vol_annual, annualised decimal) and margin (margin ratio), a .toml rule file, a "
             "report or solve folder, or a formula in r (daily variance) or sigma (daily vol); a formula that starts with '-' "
             "goes after the options and '--' (margin-design diff --out d -- OLD '-0.001+3*sigma')")


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("old", help="the rule in force: " + RULE_HELP)
    p.add_argument("new", help="the proposed rule (same forms as OLD)")
    p.add_argument("--market", metavar="CONFIG", help="design config (TOML): its cap is checked and J, the design objective, is "
                   "evaluated on its grid for both rules, beside the price of manipulation-proofness")
    p.add_argument("--vols", metavar="SPEC", help="compare at these annualised vols, percentage points: start:stop:step (8:60:1) or a "
                   "list (10,15,20); default: the published points of the rule tables among OLD and NEW, else 1-point steps across "
                   "the range both cover")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for diff.md, diff.html (self-contained), diff.csv, diff.json and figures/diff.{png,pdf} "
                   "(written atomically; an existing folder is replaced only if it holds nothing but diff files)")
    p.add_argument("--method", choices=("exact", "cvxpy"), default="exact", help="solver path for the capped optimum of --market "
                   "(default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print only the machine-readable summary (one JSON object) on stdout")


def _file_inputs(*specs) -> list[str]:
    """The specs that name files or folders (not formulas), for the output-folder check."""
    from margin_design.audit.rules import is_folder

    return [s for s in specs if s is not None and (Path(s).suffix.lower() in (".csv", ".json", ".toml") or is_folder(s))]


def run(args: argparse.Namespace) -> int:
    from margin_design.reports.diff import build_diff, check_diff_folder, write_diff

    from margin_design.audit import load_rule
    from margin_design.cli_audit import _check_rule_plausible

    check_diff_folder(args.out, inputs=_file_inputs(args.old, args.new, args.market))
    rules = []
    for which, spec in (("OLD", args.old), ("NEW", args.new)):
        rule = load_rule(spec)
        _check_rule_plausible(rule, f"{which} {Path(spec).name}" if _file_inputs(spec) else which)  # a table in percent is refused
        rules.append(rule)
    d = build_diff(args.old, args.new, market=args.market, vols=args.vols, method=args.method, old_rule=rules[0], new_rule=rules[1])
    out = write_diff(d, args.out)
    for w in d.warnings:
        print(f"margin-design: warning: {w}", file=sys.stderr)
    if args.json:
        summary = d.to_dict(points=False)
        summary["out"] = str(out)
        print(json.dumps(summary, allow_nan=False))
    else:
        print(d.summary())
        print(f"wrote {out}")
    return 0


def register(subparsers) -> None:
    """Add the ``diff`` subcommand to the top-level parser."""
    p = subparsers.add_parser("diff", help="compare two margin rules: change at each published vol, cap, jumps, design cost")
    _add_arguments(p)
    p.set_defaults(func=run)


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point (``margin-design diff`` arguments without the word ``diff``)."""
    from margin_design.cli import standalone

    return standalone(register, ["diff", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
