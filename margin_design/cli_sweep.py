"""``margin-design sweep``: solve a grid of configurations and write a tidy table."""

from __future__ import annotations

import logging
import os
import signal
import sys

#: Most LocalCluster worker processes (--workers); each imports JAX and holds its own caches.
MAX_WORKERS = max(64, os.cpu_count() or 1)


class _Progress:
    """stderr for the progress bar, remembering whether a bar line is open (to end it before a message)."""

    def __init__(self, stream=sys.stderr):
        self.stream = stream
        self.open_line = False

    def write(self, text: str) -> None:
        self.stream.write(text)
        self.open_line = not text.endswith("\n")

    def flush(self) -> None:
        self.stream.flush()

    def end_line(self) -> None:
        if self.open_line:
            self.stream.write("\n")
            self.open_line = False


def _interrupt(signum, frame):
    """Ctrl-C during a sweep: quiet dask's shutdown warnings (cancelled tasks, killed workers), then interrupt."""
    logging.getLogger("distributed").setLevel(logging.CRITICAL)
    raise KeyboardInterrupt


def _run(args) -> int:
    from margin_design.errors import InputError
    from margin_design.fileio import check_output_file
    from margin_design.reports.sweep_table import write_sweep_table
    from margin_design.solvers.sweep import run_sweep

    if args.workers < 0:
        raise InputError(f"--workers = {args.workers} must be >= 0 (0 solves in this process).")
    if args.workers > MAX_WORKERS:
        raise InputError(f"--workers = {args.workers} is above the maximum of {MAX_WORKERS} local worker processes.")
    if args.chunk < 1:
        raise InputError(f"--chunk = {args.chunk} must be >= 1.")
    if not 0 < args.timeout <= 3600:
        raise InputError(f"--timeout = {args.timeout:g} must be a number of seconds in (0, 3600].")
    check_output_file(args.out, "--out")
    figure = _figure_path(args)
    progress = _Progress(sys.stderr)
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.default_int_handler:
        signal.signal(signal.SIGINT, _interrupt)
    try:
        rows = run_sweep(args.config, args.vary, workers=args.workers, scheduler=args.scheduler, chunk_size=args.chunk,
                         progress=progress, timeout=args.timeout)
    except BaseException:
        progress.end_line()  # the error sentence (or the interruption line) starts on a line of its own
        raise
    finally:
        if previous is signal.default_int_handler:
            signal.signal(signal.SIGINT, previous)
    path = write_sweep_table(rows, args.out)
    bad = sum(not r["certified"] for r in rows)
    prices = [r["price_of_manipulation_proofness"] for r in rows]
    print(
        f"{len(rows)} configurations solved; {len(rows) - bad} certified"
        f"{'' if not bad else f', {bad} NOT certified'}; price of manipulation-proofness from {min(prices):.4g} to {max(prices):.4g}"
    )
    print(f"wrote {path}")
    if figure is not None:
        from margin_design.reports.sweep_figure import write_sweep_figure

        print(f"wrote {write_sweep_figure(rows, figure)}")
    return 0 if not bad else 1


def _figure_path(args):
    """--figure PATH, default the --out table's path with .png; --figure none writes no figure."""
    from pathlib import Path

    from margin_design.errors import InputError
    from margin_design.fileio import check_output_file
    from margin_design.reports.sweep_figure import default_figure_path

    if args.figure is not None and args.figure.lower() == "none":
        return None
    path = Path(args.figure) if args.figure is not None else default_figure_path(args.out)
    if path.resolve() == Path(args.out).resolve() and args.figure is None:
        raise InputError(f"--out {args.out!r} ends in .png, the default path of the sweep figure; name the table .csv or give --figure PATH.")
    if path.resolve() == Path(args.out).resolve():
        raise InputError(f"--figure {str(path)!r} is the --out table itself; give the figure its own .png path.")
    if path.suffix.lower() != ".png":
        raise InputError(f"--figure {str(path)!r} must end in .png (the figure is written as PNG).")
    return check_output_file(path, "--figure")


def register(subparsers) -> None:
    p = subparsers.add_parser("sweep", help="solve a grid of configurations (local cores or a dask cluster)")
    p.add_argument("config", help="base TOML configuration (objective.kind = 'cost')")
    p.add_argument("--vary", action="append", required=True, metavar="SECTION.KEY=SPEC",
                   help="values to sweep: a:b:n (n points from a to b) or v1,v2,...; repeat for a grid; integer keys "
                   "(grid.points, cap.window) take whole numbers (grid.points=10:50:5)")
    p.add_argument("--out", required=True, help="CSV table to write (one row per configuration)")
    p.add_argument("--figure", metavar="PATH",
                   help="PNG figure of the price of manipulation-proofness (bp of notional) and the cap (pp of margin per "
                   "annualised-vol point) against each swept parameter (default: the --out path with .png; 'none' for no figure)")
    p.add_argument("--scheduler", help="address of a dask.distributed scheduler (default: a LocalCluster)")
    p.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                   help="seconds to wait for --scheduler to answer before giving up (default %(default)g)")
    p.add_argument("--workers", type=int, default=2, help="LocalCluster workers; 0 solves in this process (default 2)")
    p.add_argument("--chunk", type=int, default=500, help="configurations per work unit (default 500)")
    p.set_defaults(func=_run)


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point: ``main(["sweep", CONFIG, "--vary", ...])``."""
    from margin_design.cli import standalone

    return standalone(register, argv)
