"""``margin-design sweep``: solve a grid of configurations and write a tidy table."""

from __future__ import annotations



def _run(args) -> int:
    from margin_design.errors import InputError
    from margin_design.reports.sweep_table import write_sweep_table
    from margin_design.solvers.sweep import run_sweep

    if args.workers < 0:
        raise InputError(f"--workers = {args.workers} must be >= 0 (0 solves in this process).")
    if args.chunk < 1:
        raise InputError(f"--chunk = {args.chunk} must be >= 1.")
    rows = run_sweep(args.config, args.vary, workers=args.workers, scheduler=args.scheduler, chunk_size=args.chunk)
    path = write_sweep_table(rows, args.out)
    bad = sum(not r["certified"] for r in rows)
    prices = [r["price_of_manipulation_proofness"] for r in rows]
    print(
        f"{len(rows)} configurations solved; {len(rows) - bad} certified"
        f"{'' if not bad else f', {bad} NOT certified'}; price of manipulation-proofness from {min(prices):.4g} to {max(prices):.4g}"
    )
    print(f"wrote {path}")
    return 0 if not bad else 1


def register(subparsers) -> None:
    p = subparsers.add_parser("sweep", help="solve a grid of configurations (local cores or a dask cluster)")
    p.add_argument("config", help="base TOML configuration (objective.kind = 'cost')")
    p.add_argument("--vary", action="append", required=True, metavar="SECTION.KEY=SPEC",
                   help="values to sweep: a:b:n (n points from a to b) or v1,v2,...; repeat for a grid")
    p.add_argument("--out", required=True, help="CSV table to write (one row per configuration)")
    p.add_argument("--scheduler", help="address of a dask.distributed scheduler (default: a LocalCluster)")
    p.add_argument("--workers", type=int, default=2, help="LocalCluster workers; 0 solves in this process (default 2)")
    p.add_argument("--chunk", type=int, default=500, help="configurations per work unit (default 500)")
    p.set_defaults(func=_run)


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point: ``main(["sweep", CONFIG, "--vary", ...])``."""
    from margin_design.cli import standalone

    return standalone(register, argv)
