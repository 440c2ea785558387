"""``margin-design adl``: risk-based auto-deleveraging of an account book (a thin adapter over
:mod:`margin_design.audit.adl`; files by :mod:`margin_design.reports.adl`).

    margin-design adl ACCOUNTS.csv --reduce R --out OUT.csv [--policy optimal|queue] [--shock sp500|normal|t] [--json]
    margin-design adl BOOK.csv --reduce BTC=10,ETH=-5 --out OUT.csv (--scenarios SCEN.csv | --vol-daily SD [--corr RHO]) [--json]

Single asset: ACCOUNTS.csv has columns ``account,position,equity`` (position: signed notional at the mark price,
currency, one side of the book; equity: currency) and optionally ``entry_price`` (multiple of the mark price, for the
queue's PnL ranking); R is the total reduction in position units. Multi-asset (``--reduce`` names assets): BOOK.csv has
``account,equity`` and one position column per asset; R_k > 0 cuts the longs of asset k, R_k < 0 the shorts. Writes
OUT.csv and OUT_leverage.png (atomically). User errors print one sentence and exit with status 2.
"""

from __future__ import annotations

import argparse
import re
import sys

from margin_design.errors import InputError

__all__ = ["register", "main", "run", "parse_reduce"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


def parse_reduce(text: str):
    """``--reduce``: one number (single asset, position units) or ``ASSET=R,...`` (multi-asset, signed position units).
    Returns a float, or a list of (asset, value)."""
    t = str(text).strip()
    if "=" not in t:
        try:
            return float(t)
        except ValueError:
            raise InputError(f"--reduce must be a number (position units) or ASSET=R,... for several assets, got {text!r}.") from None
    out = []
    for part in t.split(","):
        name, _, value = part.partition("=")
        name = name.strip()
        if not _NAME.match(name):
            raise InputError(f"--reduce: {part.strip()!r} is not ASSET=R with an asset name that is a CSV column header.")
        try:
            out.append((name, float(value)))
        except ValueError:
            raise InputError(f"--reduce: the reduction of {name!r} must be a number (position units), got {value.strip()!r}.") from None
    names = [n.lower() for n, _ in out]
    if len(set(names)) != len(names):
        raise InputError(f"--reduce names an asset twice: {text!r}.")
    return out


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("accounts", metavar="ACCOUNTS.csv",
                   help="single asset: columns account, position (signed notional at the mark price, currency; all >= 0 or all "
                   "<= 0), equity (currency), optional entry_price (multiple of the mark price); multi-asset: account, equity "
                   "and one position column per asset named in --reduce")
    p.add_argument("--reduce", required=True, metavar="R",
                   help="required total reduction: one number >= 0 (position units, notional at the mark) for a single asset, or "
                   "ASSET=R,... per asset (signed position units: R > 0 cuts that asset's longs, R < 0 its shorts)")
    p.add_argument("--out", required=True, metavar="OUT.csv",
                   help="the per-account table (account, reduction, position_after, leverage_before, leverage_after); the figure "
                   "OUT_leverage.png is written next to it")
    p.add_argument("--policy", choices=("optimal", "queue"), default="optimal",
                   help="optimal: leverage water-filling (expected-loss optimum); queue: the exchanges' rank by PnL%% x leverage, "
                   "cut fully in order (single asset only; default: %(default)s)")
    p.add_argument("--shock", choices=("sp500", "normal", "t"), default=None,
                   help="single asset: the loss distribution for the expected shortfall: S&P 500 daily returns 1999-2018 (arch), "
                   "normal or Student-t with --vol-daily (default: sp500)")
    p.add_argument("--vol-daily", type=float, metavar="SD",
                   help="standard deviation of the shock over the close-out horizon (decimal daily return, e.g. 0.03): normal/t "
                   "shocks (default: the S&P 500 sample's, 0.0120), rescales the S&P 500 returns when given with sp500, and sets the Gaussian multi-asset scenarios")
    p.add_argument("--df", type=float, default=None, help="Student-t degrees of freedom of --shock t (> 2; default: 4)")
    p.add_argument("--scenarios", metavar="SCEN.csv",
                   help="multi-asset: joint return scenarios, one column per asset (decimal returns over the horizon), one draw per row")
    p.add_argument("--corr", type=float, default=None, help="multi-asset Gaussian scenarios: common pairwise correlation (default: 0.5)")
    p.add_argument("--draws", type=int, default=None, help="multi-asset Gaussian scenarios: number of draws (default: 1000)")
    p.add_argument("--seed", type=int, default=None, help="multi-asset Gaussian scenarios: random seed (default: 0)")
    from margin_design.cli import add_json_flag

    add_json_flag(p)


def _single(args, R: float):
    from margin_design.audit import adl

    extra = [f for f, v in (("--scenarios", args.scenarios), ("--corr", args.corr), ("--draws", args.draws), ("--seed", args.seed)) if v is not None]
    if extra:
        raise InputError(f"{extra[0]} sets the multi-asset scenarios; a single-asset --reduce R uses --shock and --vol-daily.")
    if args.df is not None and args.shock != "t":
        raise InputError("--df applies to --shock t only.")
    book = adl.read_book(args.accounts)
    if args.shock in (None, "sp500"):
        shock = adl.sp500_shock(book.side, scale_to=args.vol_daily)
    else:
        sd = args.vol_daily if args.vol_daily is not None else adl.sp500_shock(book.side).scale
        shock = adl.normal_shock(sd) if args.shock == "normal" else adl.student_t_shock(sd, 4.0 if args.df is None else args.df)
    run = adl.run_adl(book, R, args.policy, shock)
    amount = adl.amount
    title = f"ADL, {run.policy} policy: R = {amount(R)} of {amount(book.total)} (position units)"
    return run, title, (run.level if run.policy == "optimal" else None)


def _multi(args, pairs):
    from margin_design.audit import adl

    if args.policy != "optimal":
        raise InputError("--policy queue is defined for a single asset; the multi-asset cut is the expected-loss optimum.")
    if args.shock is not None or args.df is not None:
        raise InputError("--shock and --df apply to a single asset; the multi-asset scenarios come from --scenarios or --vol-daily.")
    assets = [n for n, _ in pairs]
    accounts, X, e = adl.read_cross_book(args.accounts, assets)
    if args.scenarios is not None:
        if args.vol_daily is not None or args.corr is not None or args.draws is not None or args.seed is not None:
            raise InputError("--scenarios gives the multi-asset scenarios; --vol-daily, --corr, --draws and --seed generate "
                             "Gaussian ones instead: give one or the other.")
        Z = adl.read_scenarios(args.scenarios, assets)
        label = f"{Z.shape[0]} scenarios from {args.scenarios}"
    elif args.vol_daily is not None:
        corr, draws, seed = (0.5 if args.corr is None else args.corr), (1000 if args.draws is None else args.draws), (args.seed or 0)
        Z = adl.gaussian_scenarios(len(assets), args.vol_daily, corr, draws, seed)
        label = f"{draws} Gaussian draws, sd {args.vol_daily:g}, correlation {corr:g}, seed {seed}"
    else:
        raise InputError("a multi-asset ADL needs return scenarios: give --scenarios SCEN.csv or --vol-daily SD.")
    import numpy as np

    run = adl.run_cross_adl(accounts, assets, X, e, np.array([v for _, v in pairs]), Z, label)
    return run, f"cross-margin ADL: {', '.join(f'{n} {v:+,.6g}' for n, v in pairs)} (gross leverage)", None


def run(args: argparse.Namespace) -> int:
    from margin_design import console
    from margin_design.cli import check_json_file, finish_json
    from margin_design.fileio import check_output_file
    from margin_design.reports.adl import write_adl_files

    check_output_file(args.out, "--out")
    check_json_file(args)
    reduce = parse_reduce(args.reduce)
    res, title, level = _single(args, reduce) if isinstance(reduce, float) else _multi(args, reduce)
    paths = write_adl_files(res.to_frame(), args.out, res.leverage_before, res.leverage_after, level, title,
                            gross=not isinstance(reduce, float))
    console.say(res.summary())
    console.say("wrote " + ", ".join(str(p) for p in paths))
    payload = {"command": "adl", **res.to_dict(), "files": [str(p) for p in paths]}
    return finish_json(args, payload)


def register(subparsers) -> None:
    """Add the ``adl`` subcommand to the top-level parser."""
    p = subparsers.add_parser(
        "adl", help="risk-based auto-deleveraging: leverage water-filling vs the exchanges' queue",
        description="Risk-based auto-deleveraging (Campbell, Hey, Moallemi and Nutz 2026): cut a required reduction R from "
        "an account book by the expected-loss optimum (leverage water-filling: the most levered accounts first, down to a "
        "common leverage l*) or by the exchanges' queue, and compare both on the largest leverage left and the expected "
        "shortfall sum_i E[(|y_i| W - e_i)^+] (currency) under a shock W. With --reduce ASSET=R,... the cross-margin "
        "allocation is solved with cvxpy and its asset shadow prices reported.")
    _add_arguments(p)
    p.set_defaults(func=run)


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point (``margin-design adl`` arguments without the word ``adl``)."""
    from margin_design.cli import standalone

    return standalone(register, ["adl", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
