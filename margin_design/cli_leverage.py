"""``margin-design leverage``: re-levering on unrealised profits (reference 003), a thin adapter over
:mod:`margin_design.calibration.leverage` (the model) and :mod:`margin_design.reports.leverage` (the files).

    margin-design leverage --leverage L --tick T --rise R [--discount D] [--account-cap S] [--global-cap S]
        [--venue-share W] [--path sp500 --start DATE --end DATE] [--on-fall liquidate|delever] [--maintenance S]
        [--schedule RULE --alpha A --c-eff C [--inventory-penalty K] [--cap-input ...]] --out DIR [--json]

Units: money in multiples of the original collateral C0; prices in multiples of p0; --tick, --rise and the drops are
decimal price moves (0.001 = 0.1%); --discount, caps, --venue-share and --maintenance are decimal shares. ``--json``
prints one JSON object (at least ticks, equity_multiple = counted equity, exposure_multiple, liabilities_multiple,
half_collateral_drop). User errors print one sentence and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["register", "main", "run"]


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--leverage", type=float, required=True, metavar="L",
                   help="allowed leverage: exposure per unit of counted equity (> 0; L = 1/M for a margin ratio M)")
    p.add_argument("--tick", type=float, required=True, metavar="T", help="price rise per tick, decimal in (0, 1] (0.001 = 0.1%%)")
    p.add_argument("--rise", type=float, required=True, metavar="R", help="total price rise, decimal > 0 (0.4 = 40%%)")
    p.add_argument("--discount", type=float, default=1.0, metavar="D",
                   help="share of unrealised profit counted as collateral, in [0, 1] (default 1: full portfolio margining)")
    p.add_argument("--account-cap", type=float, default=None, metavar="S",
                   help="per-account cap: counted unrealised profit at most S x counted equity, S in (0, 1]")
    p.add_argument("--global-cap", type=float, default=None, metavar="S",
                   help="global cap: the venue's counted unrealised profit at most S x its counted collateral, S in (0, 1]")
    p.add_argument("--venue-share", type=float, default=1.0, metavar="W",
                   help="share of the venue's deposits held by accounts re-levering on this path, in (0, 1] (default 1: all; "
                        "then the global cap acts per account)")
    p.add_argument("--path", default=None, metavar="NAME", help="also run the account on a real daily path: sp500 (arch.data.sp500, 1999-2018)")
    p.add_argument("--start", default=None, metavar="DATE", help="first date of --path (ISO YYYY-MM-DD)")
    p.add_argument("--end", default=None, metavar="DATE", help="last date of --path (ISO YYYY-MM-DD)")
    p.add_argument("--on-fall", default="liquidate", metavar="RULE",
                   help="real path: a margin call (counted equity below maintenance) is met by 'liquidate' (close the position) "
                        "or 'delever' (sell down to L x counted equity) (default: %(default)s)")
    p.add_argument("--maintenance", type=float, default=0.5, metavar="S",
                   help="real path: maintenance margin as a share of the initial margin exposure/L, in (0, 1] (default 0.5: "
                        "FINRA 25%% over Regulation T 50%%)")
    p.add_argument("--schedule", default=None, metavar="RULE",
                   help="a margin rule (schedule.json, rule table, TOML rule file or formula): report the effective c_eff and the "
                        "tighter cap at each of its states (leverage 1/M); needs --alpha and --c-eff")
    p.add_argument("--vols", default=None, metavar="SPEC",
                   help="annualised vols in percentage points (8:60:1 or 10,15,20) at which to evaluate --schedule "
                        "(default: a table's own rows; needed for a formula)")
    p.add_argument("--alpha", type=float, default=None, metavar="A", help="price impact per unit of ADV traded, decimal (75)")
    p.add_argument("--c-eff", type=float, default=None, metavar="C",
                   help="the constrained sector's liquidation slope before the run-up, ADV per unit margin ratio (76)")
    p.add_argument("--inventory-penalty", type=float, default=0.0, metavar="KAPPA", help="kappa >= 0 of (16) (default 0)")
    p.add_argument("--cap-input", default="variance", metavar="INPUT",
                   help="the risk input the cap is for: variance, realized_variance or ewma (default: %(default)s)")
    p.add_argument("--window", type=int, default=1, metavar="M", help="days of a realized_variance input (default 1)")
    p.add_argument("--lam", type=float, default=0.94, metavar="LAMBDA", help="decay of an ewma input (default 0.94)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="folder for leverage.md, leverage.json, the CSVs and figures/ (written atomically; an existing folder is "
                        "replaced only if it holds nothing but leverage files)")
    p.add_argument("--json", action="store_true", help="print only the summary (one JSON object) on stdout")


def _rule_arrays(args) -> tuple:
    """(daily vols, margin ratios, description) of --schedule, read by the audit's loader."""
    import numpy as np

    from margin_design.audit import load_rule
    from margin_design.cli_audit import _check_rule_plausible
    from margin_design.errors import InputError
    from margin_design.reports.vol_points import parse_vol_points

    rule = load_rule(args.schedule)
    _check_rule_plausible(rule, Path(args.schedule).name)
    if args.vols is not None:
        vol = parse_vol_points(args.vols, "--vols").daily
    elif isinstance(getattr(rule.base, "vol", None), np.ndarray):
        vol = np.asarray(rule.base.vol, float)
    else:
        raise InputError(f"--schedule {args.schedule!r} is a formula; give --vols (annualised percentage points) to evaluate it.")
    return vol, np.asarray(rule.margin(vol ** 2), float), rule.describe()


def _cap_factor(args) -> float:
    from margin_design.design.cap import CAP_INPUTS, CapSpec
    from margin_design.errors import InputError

    if args.cap_input not in CAP_INPUTS:
        raise InputError(f"--cap-input must be one of {', '.join(CAP_INPUTS)}, got {args.cap_input!r}.")
    if args.window < 1:
        raise InputError(f"--window must be a positive number of days, got {args.window}.")
    if not 0.0 < args.lam < 1.0:
        raise InputError(f"--lam must be in (0, 1), got {args.lam:g}.")
    return CapSpec(input=args.cap_input, window=args.window, lam=args.lam).input_factor


def run(args: argparse.Namespace) -> int:
    from margin_design.calibration.leverage import Guardrails, build_study, load_path
    from margin_design.errors import InputError
    from margin_design.reports.leverage import check_leverage_folder, write_leverage

    inputs = [args.schedule] if args.schedule and Path(args.schedule).suffix.lower() in (".csv", ".json", ".toml") else []
    check_leverage_folder(args.out, inputs=inputs)
    guard = Guardrails(args.discount, args.account_cap, args.global_cap, args.venue_share)
    if args.path is None and (args.start is not None or args.end is not None):
        raise InputError("--start and --end choose dates of --path; give --path sp500.")
    path = load_path(args.path, args.start, args.end) if args.path is not None else None
    design = {}
    if args.schedule is not None:
        vol, margin, source = _rule_arrays(args)
        design = dict(rule_vol=vol, rule_margin=margin, rule_source=source, alpha=args.alpha, c_eff=args.c_eff,
                      inventory_penalty=args.inventory_penalty, cap_factor=_cap_factor(args))
    elif args.alpha is not None or args.c_eff is not None or args.vols is not None:
        raise InputError("--alpha, --c-eff and --vols go with --schedule (the margin rule whose cap they tighten).")
    study = build_study(args.leverage, args.tick, args.rise, guard, path=path, on_fall=args.on_fall,
                        maintenance=args.maintenance, **design)
    out = write_leverage(study, args.out)
    if args.json:
        summary = study.to_dict()
        summary["out"] = str(out)
        print(json.dumps(summary, allow_nan=False))
    else:
        print(study.summary())
        print(f"wrote {out}")
    return 0


def register(subparsers) -> None:
    """Add the ``leverage`` subcommand to the top-level parser."""
    p = subparsers.add_parser("leverage", help="re-levering on unrealised profits (reference 003): exposure, liabilities, "
                              "guardrails, a real path, and the tighter cap it implies")
    _add_arguments(p)
    p.set_defaults(func=run)


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point (``margin-design leverage`` arguments without the word ``leverage``)."""
    from margin_design.cli import standalone

    return standalone(register, ["leverage", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
