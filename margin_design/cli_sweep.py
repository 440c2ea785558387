"""``margin-design sweep``: solve a grid of configurations and write a tidy table."""

from __future__ import annotations

import logging
import os
import signal

from margin_design import console

#: Most LocalCluster worker processes (--workers); each imports JAX and holds its own caches.
MAX_WORKERS = max(64, os.cpu_count() or 1)


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
    from margin_design.cli import check_json_file, finish_json

    check_json_file(args)
    figure = _figure_path(args)
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.default_int_handler:
        signal.signal(signal.SIGINT, _interrupt)
    try:  # the bar is closed before an error sentence or the interruption line, which start on a line of their own
        with console.progress("configurations") as progress:
            rows = run_sweep(args.config, args.vary, workers=args.workers, scheduler=args.scheduler, chunk_size=args.chunk,
                             progress=progress, timeout=args.timeout)
    finally:
        if previous is signal.default_int_handler:
            signal.signal(signal.SIGINT, previous)
    path = write_sweep_table(rows, args.out)
    bad = sum(not r["certified"] for r in rows)
    prices = [r["price_of_manipulation_proofness"] for r in rows]
    console.say(
        f"{len(rows)} configurations solved; {len(rows) - bad} certified"
        f"{'' if not bad else f', {bad} NOT certified'}; price of manipulation-proofness from {min(prices):.4g} to {max(prices):.4g}"
    )
    console.say(f"wrote {path}")
    files = [str(path)]
    if figure is not None:
        from margin_design.reports.sweep_figure import write_sweep_figure

        files.append(str(write_sweep_figure(rows, figure)))
        console.say(f"wrote {files[-1]}")
    summary = {
        "command": "sweep",
        "config": str(args.config),
        "vary": list(args.vary),
        "configurations": len(rows),
        "certified": len(rows) - bad,
        "not_certified_configs": [r["config"] for r in rows if not r["certified"]],
        "price_of_manipulation_proofness": {"min": min(prices), "max": max(prices)},
        "files": files,
    }
    return finish_json(args, summary, 0 if not bad else 1)


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
    p.add_argument("config", help="base TOML configuration: a cost design, or a target design (an existing schedule, "
                   "objective.kind = 'target') whose market and cap vary (market.alpha, market.c_eff, cap.window, ...)")
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
    from margin_design.cli import add_json_flag

    add_json_flag(p)
    p.set_defaults(func=_run)


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point: ``main(["sweep", CONFIG, "--vary", ...])``."""
    from margin_design.cli import standalone

    return standalone(register, argv)
