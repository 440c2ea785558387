"""Command line: a thin adapter over the library.

Exit status: 0 success; 1 ``sweep`` finished with configurations that are not certified, or ``audit --check``
found the rule over the cap; 2 a user error
(bad flag, bad config, bad file, an output that cannot be written), reported as one line
``margin-design: error: <sentence>`` on stderr with no traceback and no output written; 130 interrupted
(Ctrl-C / SIGINT), reported as one line; files and folders are written atomically, so none is left half-written;
141 stdout was a pipe closed by its reader (silent).

Global options, accepted before or after the subcommand (``margin-design -q solve ...`` and
``margin-design solve ... -q`` are the same): ``-q/--quiet``, ``-v/--verbose``; ``--version`` only before it.
What each mode prints is defined in :mod:`margin_design.console`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
import time
import warnings
from pathlib import Path

from margin_design import console
from margin_design._runtime import quick_exit
from margin_design.errors import MarginDesignError

quick_exit()  # a command is a short-lived process: no garbage-collector passes over JAX's objects at exit

# Each module adds its subcommand(s) with register(subparsers): calibrate, report, sweep, audit, diff, adl, leverage, app.
SUBCOMMAND_MODULES = ("cli_calibrate", "cli_report", "cli_sweep", "cli_audit", "cli_diff", "cli_adl", "cli_leverage", "cli_app")

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


_ROLE = re.compile(r":(?:func|class|mod|meth|data|attr|obj|exc|ref):`~?([^`<]*?)(?:\s*<[^>]*>)?`")


def plain_text(text: str) -> str:
    """Help text without reST markup: ``literal`` -> literal, :func:`~a.b.name` -> name (docstrings feed --help)."""
    text = _ROLE.sub(lambda m: m.group(1).rsplit(".", 1)[-1] if m.group(0).split("`")[1].startswith("~") else m.group(1), text)
    return text.replace("``", "")


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``margin-design: error: <what> (see <command> --help)``, no usage block."""

    def error(self, message):  # noqa: D102 - argparse API
        raise UsageError(message, self.prog)

    def format_help(self):  # noqa: D102 - argparse API; subcommand descriptions come from module docstrings
        return plain_text(super().format_help())

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
    elif missing_positional and "--json" in argv[:-1] and not argv[argv.index("--json") + 1].startswith("-"):
        msg += (f"; --json took {argv[argv.index('--json') + 1]!r} as the file to write: put --json after the "
                "positional arguments, or write --json=FILE")
    return f"{msg} (see {exc.prog} --help)"


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _cmd_solve(args) -> int:
    from margin_design.audit.updates import solve_design
    from margin_design.design import load_problem
    from margin_design.reports.schedule_files import check_schedule_folder, write_schedule_files

    if args.out is not None:
        check_schedule_folder(args.out, inputs=[args.config])
    check_json_file(args)
    problem = load_problem(args.config)
    result = solve_design(problem, method=args.method)   # [cap] updates = T > 1: the T-update bisection (audit/updates.py)
    s = result.solver
    console.LOGGER.info(f"solver: {s.get('method')} ({s.get('backend')}), {s.get('iterations')} Newton iterations, "
                        f"{s.get('seconds', float('nan')):.3f} s; {problem.n} states")
    paths = []
    if args.out is not None:  # write before printing, so a refused folder prints nothing but the sentence
        paths = write_schedule_files(result, Path(args.out))
    console.say(result.summary())
    if args.out is not None:
        console.say("wrote " + ", ".join(str(p) for p in paths))
    return finish_json(args, solve_summary(result, args.config, paths))


def solve_summary(result, config, paths) -> dict:
    """The ``solve --json`` object (keys documented in the README): J, price, certificate, segments, files."""
    o, c = result.objective, result.certificate
    return {
        "command": "solve",
        "config": str(config),
        "states": int(result.problem.n),
        "objective": o["value"],
        "first_best_objective": o["first_best_value"],
        "price_of_manipulation_proofness": result.price_of_manipulation_proofness,
        "terms": dict(o["terms"]),
        "cap": {"formula": result.problem.cap.formula(), "slope_vol": result.problem.cap.slope_vol, "scale": result.problem.cap.scale,
                "updates": result.problem.cap.updates, **({"stress_test": dict(result.stress)} if result.stress is not None else {})},
        "certified": bool(c.ok),
        "certificate": c.to_dict(),
        "segments": [dict(seg) for seg in result.segments],
        "solver": dict(result.solver),
        "files": [str(p) for p in paths],
    }


def add_json_flag(p: argparse.ArgumentParser) -> None:
    """``--json [FILE]``: the same option, with the same meaning, on every command that has it."""
    p.add_argument(
        "--json", nargs="?", const="-", default=None, metavar="FILE",
        help="machine-readable summary: without FILE print only one JSON object on stdout (human lines and progress "
        "are suppressed, warnings still go to stderr); with FILE write it there (atomically) and print as usual",
    )


def check_json_file(args) -> None:
    """Refuse a ``--json FILE`` that cannot be written before any work."""
    from margin_design.fileio import check_output_file

    target = getattr(args, "json", None)
    if target not in (None, "-"):
        check_output_file(target, "--json")


def files_in(folder) -> list[str]:
    """Every file written under an output folder, sorted (the ``files`` entry of a --json summary)."""
    return sorted(str(f) for f in Path(folder).rglob("*") if f.is_file())


def finish_json(args, payload: dict, status: int = 0) -> int:
    """Print or write the ``--json`` object of a command (nothing without --json); returns ``status``."""
    target = getattr(args, "json", None)
    if target == "-":
        console.emit_json(payload)
    elif target is not None:
        import json

        from margin_design.fileio import atomic_write_text

        atomic_write_text(target, json.dumps(console.jsonable(payload), indent=2, allow_nan=False) + "\n", label="--json")
    return status


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
    add_json_flag(p)
    p.set_defaults(func=_cmd_solve)
    for module in SUBCOMMAND_MODULES:
        importlib.import_module(f"margin_design.{module}").register(sub)
    parser.add_argument("--version", action="version", version=f"{PROG} {_version()}", help="print the installed version and exit")
    add_global_flags(parser)
    return parser


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("margin-design")
    except metadata.PackageNotFoundError:  # a source tree that was never installed
        return "0+unknown"


def add_global_flags(parser: argparse.ArgumentParser) -> None:
    """-q/--quiet and -v/--verbose on ``parser`` and every subcommand below it, so they work before or after the
    subcommand (SUPPRESS: a subcommand that does not see the flag keeps the value given before it)."""
    g = parser.add_mutually_exclusive_group()
    g.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                   help="print no human lines and no progress on stdout/stderr (warnings, errors and --json still appear)")
    g.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                   help="add details on stderr: solver iterations, timings, cache folders")
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            for sub in a.choices.values():
                add_global_flags(sub)


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
    quiet, verbose = bool(getattr(args, "quiet", False)), bool(getattr(args, "verbose", False))
    if quiet and verbose:  # one before and one after the subcommand
        _print_error(f"-q/--quiet and -v/--verbose exclude each other; give one (see {PROG} --help).")
        return EXIT_USAGE
    console.configure(quiet=quiet, verbose=verbose, json_stdout=getattr(args, "json", None) == "-")
    with warnings.catch_warnings(record=True) as held:
        try:
            started = time.perf_counter()
            try:
                status = int(func(args) or 0)
            finally:  # an error sentence or the interruption line starts on a line of its own
                console.close_bars()
            console.LOGGER.info(f"{_chosen_parser(parser, args).prog.removeprefix(PROG).strip()} finished in {time.perf_counter() - started:.2f} s")
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
    add_global_flags(parser)
    return _interruptible(run_parsed, parser, argv)


def main(argv: list[str] | None = None) -> int:
    return _interruptible(lambda: run_parsed(build_parser(), argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
