"""Command line: a thin adapter over the library.

Exit status: 0 success; 1 ``sweep`` finished with configurations that are not certified; 2 a user error
(bad flag, bad config, bad file, an output that cannot be written), reported as one line
``margin-design: error: <sentence>`` on stderr with no traceback and no output written; 130 interrupted
(Ctrl-C / SIGINT), reported as one line; files and folders are written atomically, so none is left half-written;
141 stdout was a pipe closed by its reader (silent).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings
from pathlib import Path

from margin_design._runtime import quick_exit
from margin_design.errors import MarginDesignError

quick_exit()  # a command is a short-lived process: no garbage-collector passes over JAX's objects at exit

# Each module adds its subcommand(s) with register(subparsers): calibrate, report, sweep, audit, diff.
SUBCOMMAND_MODULES = ("cli_calibrate", "cli_report", "cli_sweep", "cli_audit", "cli_diff")

PROG = "margin-design"
#: Exit status of a user error (one sentence on stderr) and of an interrupted run (SIGINT, 128 + 2).
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
#: Exit status when stdout is a pipe that the reader closed early (128 + SIGPIPE), printed silently.
EXIT_BROKEN_PIPE = 141


class UsageError(MarginDesignError):
    """A command-line syntax error found by argparse; ``prog`` is the (sub)command whose help to point at."""

    def __init__(self, message: str, prog: str):
        super().__init__(message)
        self.prog = prog


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``margin-design: error: <what> (see <command> --help)``, no usage block."""

    def error(self, message):  # noqa: D102 - argparse API
        raise UsageError(message, self.prog)

    def parse_args(self, args=None, namespace=None):  # noqa: D102 - argparse API
        ns, extra = self.parse_known_args(args, namespace)
        if extra:
            raise UsageError(f"unrecognized arguments: {' '.join(extra)}", _chosen_parser(self, ns).prog)
        return ns


def _chosen_parser(parser: argparse.ArgumentParser, ns: argparse.Namespace) -> argparse.ArgumentParser:
    """The deepest sub-command parser selected in ``ns`` (for help hints)."""
    while True:
        sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        name = getattr(ns, sub.dest, None) if sub is not None else None
        if sub is None or name not in sub.choices:
            return parser
        parser = sub.choices[name]


def _find_parser(parser: argparse.ArgumentParser, prog: str) -> argparse.ArgumentParser | None:
    if parser.prog == prog:
        return parser
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            for p in a.choices.values():
                found = _find_parser(p, prog)
                if found is not None:
                    return found
    return None


def _usage_sentence(parser: argparse.ArgumentParser, exc: UsageError, argv: list[str]) -> str:
    """One line for an argparse error; points at '--' when a value that starts with '-' was read as an option."""
    msg = str(exc)
    sub = _find_parser(parser, exc.prog) or parser
    known = set(sub._option_string_actions)
    dashed = [
        t for t in argv
        if t.startswith("-") and not t.startswith("--") and t not in known and not _is_number(t)
    ]
    missing_positional = msg.startswith("the following arguments are required:") and any(
        not name.strip().startswith("-") for name in msg.split(":", 1)[1].split(",")
    )
    if dashed and missing_positional:
        t = dashed[0]
        msg += f"; {t!r} starts with '-' and reads as an option: put a value like it after '--', e.g. {exc.prog} ... -- {t!r}"
    return f"{msg} (see {exc.prog} --help)"


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _cmd_solve(args) -> int:
    from margin_design.design import load_problem
    from margin_design.reports.schedule_files import check_schedule_folder, write_schedule_files
    from margin_design.solvers import solve

    if args.out is not None:
        check_schedule_folder(args.out, inputs=[args.config])
    problem = load_problem(args.config)
    result = solve(problem, method=args.method)
    if args.out is not None:  # write before printing, so a refused folder prints nothing but the sentence
        paths = write_schedule_files(result, Path(args.out))
    print(result.summary())
    if args.out is not None:
        print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog=PROG,
        description="Manipulation-proof margin schedules (Nicolai 2026, Section 6): solve, calibrate, report.",
        epilog="Exit status: 0 success, 1 sweep with uncertified configurations, 2 user error (one line on stderr), "
        "130 interrupted (Ctrl-C).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("solve", help="solve the capped design problem of a config file")
    p.add_argument("config", help="TOML configuration file")
    p.add_argument("--out", help="folder for schedule.json and schedule.csv (written atomically as a pair; an existing folder "
                   "is replaced only if it holds nothing but these two files)")
    p.add_argument("--method", choices=("exact", "cvxpy"), default="exact", help="solver path: exact chain programme or the cvxpy reference (default: %(default)s)")
    p.set_defaults(func=_cmd_solve)
    for module in SUBCOMMAND_MODULES:
        importlib.import_module(f"margin_design.{module}").register(sub)
    return parser


def _print_error(sentence: str) -> None:
    print(f"{PROG}: error: {sentence}", file=sys.stderr)


def run_parsed(parser: argparse.ArgumentParser, argv: list[str] | None) -> int:
    """Parse ``argv`` and run the chosen subcommand; a user error prints one sentence and returns its status (2).

    Python warnings raised while a command runs (numpy RuntimeWarnings from extreme inputs) are held back:
    they are shown after a successful run and dropped when the run ends in a user error, so stderr then holds
    exactly the one sentence.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        _print_error(_usage_sentence(parser, exc, argv))
        return EXIT_USAGE
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    func = getattr(args, "func", None)
    if func is None:  # pragma: no cover - every parser sets func
        _print_error(f"choose a command (see {PROG} --help).")
        return EXIT_USAGE
    with warnings.catch_warnings(record=True) as held:
        try:
            status = int(func(args) or 0)
        except MarginDesignError as exc:
            _print_error(str(exc))
            return exc.exit_status
        except BrokenPipeError:  # the reader went away (``margin-design calibrate tables | head``): not a mistake
            _silence_stdout()
            return EXIT_BROKEN_PIPE
        except MemoryError:
            _print_error("the run needs more memory than this machine has; reduce grid.points, the number of sweep "
                         "configurations or the data window.")
            return EXIT_USAGE
        except OSError as exc:  # a file-system problem the command did not name (permissions, full disk, ...)
            where = f" {exc.filename!r}" if getattr(exc, "filename", None) else ""
            _print_error(f"cannot access{where}: {exc.strerror or exc}.")
            return EXIT_USAGE
    for w in held:
        warnings.showwarning(w.message, w.category, w.filename, w.lineno, w.file, w.line)
    return status


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush does not complain about the closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # a captured or replaced stdout (tests) has no file descriptor
        pass


def _interruptible(run, *a) -> int:
    try:
        return run(*a)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; no file was left half-written.", file=sys.stderr)
        return EXIT_INTERRUPTED


def standalone(register, argv: list[str] | None) -> int:
    """Run one subcommand module on its own (``register`` adds it to a fresh parser); for tests and scripts."""
    parser = Parser(prog=PROG)
    register(parser.add_subparsers(dest="command", required=True))
    return _interruptible(run_parsed, parser, argv)


def main(argv: list[str] | None = None) -> int:
    return _interruptible(lambda: run_parsed(build_parser(), argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
