"""Command line: a thin adapter over the library. User errors print one sentence and exit with status 2."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from margin_design._runtime import quick_exit
from margin_design.errors import MarginDesignError

quick_exit()  # a command is a short-lived process: no garbage-collector passes over JAX's objects at exit

# Each module adds its subcommand(s) with register(subparsers): calibrate, report, sweep, audit.
SUBCOMMAND_MODULES = ("cli_calibrate", "cli_report", "cli_sweep", "cli_audit")


def _cmd_solve(args) -> int:
    from margin_design.design import load_problem
    from margin_design.reports.schedule_files import write_schedule_files
    from margin_design.solvers import solve

    problem = load_problem(args.config)
    result = solve(problem, method=args.method)
    print(result.summary())
    if args.out:
        paths = write_schedule_files(result, Path(args.out))
        print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="margin-design",
        description="Manipulation-proof margin schedules (Nicolai 2026, Section 6): solve, calibrate, report.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("solve", help="solve the capped design problem of a config file")
    p.add_argument("config", help="TOML configuration file")
    p.add_argument("--out", help="folder for schedule.json and schedule.csv")
    p.add_argument("--method", choices=("exact", "cvxpy"), default="exact", help="solver path: exact chain programme or the cvxpy reference (default: %(default)s)")
    p.set_defaults(func=_cmd_solve)
    for module in SUBCOMMAND_MODULES:
        importlib.import_module(f"margin_design.{module}").register(sub)
    return parser


def run_parsed(parser: argparse.ArgumentParser, argv: list[str] | None) -> int:
    """Parse ``argv`` and run the chosen subcommand; a user error prints one sentence and returns its status (2)."""
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed its one-line usage error (status 2)
        return int(exc.code or 0)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(func(args) or 0)
    except MarginDesignError as exc:
        print(f"margin-design: error: {exc}", file=sys.stderr)
        return exc.exit_status


def standalone(register, argv: list[str] | None) -> int:
    """Run one subcommand module on its own (``register`` adds it to a fresh parser); for tests and scripts."""
    parser = argparse.ArgumentParser(prog="margin-design")
    register(parser.add_subparsers(dest="command", required=True))
    return run_parsed(parser, argv)


def main(argv: list[str] | None = None) -> int:
    return run_parsed(build_parser(), argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
