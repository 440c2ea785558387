"""``margin-design audit``: audit any margin rule (a thin adapter over :mod:`margin_design.audit`,
which computes it, and :mod:`margin_design.reports.audit`, which writes its files).

    margin-design audit RULE --market market.toml [--data sp500|prices.csv] [--out DIR]

RULE is one of
  * a CSV table with columns ``vol_daily`` (daily vol, decimal; the legacy ``vol`` and the annualised ``vol_annual`` are
    read too) and ``margin`` (margin ratio), read with
    ``--interpolation linear`` (in sigma, the default) or ``step`` (margin m_k from knot k on);
  * a TOML rule file with a ``[rule]`` table (``formula = "..."`` or ``table = "file.csv"``, ``interpolation``,
    ``name``) and optionally ``[overlays]`` (floor, floor_vol, buffer, buffer_release_vol, buffer_release,
    stressed_weight, stressed_vol, tick, addons);
  * a table margin-design wrote: ``schedule.json`` / ``schedule.csv`` (``solve --out``), ``rule_table.csv`` /
    ``rule_table.json`` and ``step_table.csv`` / ``step_table.json`` (``report --out``), or the folder itself;
  * a formula in ``r`` (daily variance) or ``sigma`` (daily vol), e.g. ``"2.326*sqrt(2*r)"``.

Overlay flags (applied after the file's overlays, Appendix E.4; margins are ratios, vols daily decimals):
``--floor M`` or ``--floor-vol V``; ``--buffer B --buffer-release-vol V [--buffer-release absorb|drop]``;
``--stressed-weight W --stressed-vol V``; ``--tick T``; ``--addon VOL:AMOUNT`` (repeatable).

``--market`` is a design config (``margin-design solve`` format); its market, cap input and grid are used and
the capped optimum is solved on it. With a ``[portfolio]`` section (Section 5) the audit adds psi, ||AB||, H_t of
(29) and the cap (88) state by state and simulates the K-contract market; options for one contract are then
refused with one sentence: ``--accounts`` (Appendix B's constrained traders of one contract), ``--data sp500``
(one index; a CSV of the margined portfolio's value is accepted) and ``--max-horizon`` (the single-contract
multi-period search). User errors print one sentence and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys

from margin_design.errors import InputError

__all__ = ["register", "main", "run"]


def _addon(text: str) -> tuple[float, float]:
    try:
        vol, amount = text.split(":")
        return float(vol), float(amount)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--addon {text!r} must be VOL:AMOUNT (daily vol threshold : add-on margin ratio), e.g. 0.026:0.005") from None


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("rule", help="rule: a .csv table (vol_daily or vol or vol_annual, and margin), a schedule.json, rule_table.json or "
                   "step_table.json margin-design wrote (or its solve / report folder), a .toml rule file, or a formula in r (daily variance) or sigma "
                   "(daily vol) using only numbers, pi, e, + - * / ** (or ^), parentheses and the functions sqrt, exp, log, "
                   "abs, Abs, min, Min, max, Max, Heaviside, floor, ceiling, ceil (nothing else is accepted; never run as code); "
                   "a formula that starts with '-' goes after '--' (margin-design audit --market m.toml -- '-0.001+3*sigma')")
    p.add_argument("--market", required=True, help="design config (TOML) giving the market, the cap input and the grid of states")
    p.add_argument("--data", help="backtest data: 'sp500' (arch's S&P 500, 1999-2018) or a CSV with date, close[, volume]")
    p.add_argument("--out", help="output folder (written atomically; an existing folder is replaced only if it holds nothing "
                   "but audit files; never the current folder, a file, or a folder holding an input)")
    p.add_argument("--name", help="label of the rule in tables and figures")
    p.add_argument("--interpolation", choices=("linear", "step"), help="table rules: linear in sigma (default) or step")
    p.add_argument("--method", choices=("cvxpy", "exact"), default="exact", help="solver path for the capped optimum (default: %(default)s)")
    g = p.add_argument_group("overlays (Appendix E.4; margin ratios, daily vols)")
    g.add_argument("--floor", type=float, metavar="M", help="floor on the margin (margin ratio)")
    g.add_argument("--floor-vol", type=float, metavar="V", help="floor at the rule's margin for this long look-back daily vol")
    g.add_argument("--buffer", type=float, metavar="B", help="buffer share (0.25 = EMIR's 25%%) held in calm states")
    g.add_argument("--buffer-release-vol", type=float, metavar="V", help="daily vol from which the buffer is released")
    g.add_argument("--buffer-release", choices=("absorb", "drop"), help="absorb (continuous, default) or drop (a downward jump)")
    g.add_argument("--stressed-weight", type=float, metavar="W", help="weight on the stressed period's variance (0.25 = EMIR's 25%%)")
    g.add_argument("--stressed-vol", type=float, metavar="V", help="daily vol of the stressed period")
    g.add_argument("--tick", type=float, metavar="T", help="round margins up to this tick (margin ratio; 0.0005 = 5 bp)")
    g.add_argument("--addon", type=_addon, action="append", metavar="VOL:AMOUNT", help="step add-on from a daily vol (repeatable)")
    g = p.add_argument_group("local analysis")
    g.add_argument("--last-return", type=float, metavar="R", help="|R_t|, the last sampled daily return (decimal); default: the envelope sqrt(r/w)")
    g.add_argument("--trigger", type=float, default=0.01, metavar="Q", help="trigger size q in ADV units for profits (default 0.01 = 1%% of ADV)")
    g.add_argument("--execution-cost", type=float, default=0.0, metavar="COST", help="proportional execution cost per unit traded, "
                   "decimal of notional (0.0005 = 5 bp; the paper's tau of (58), not the turnover tau = XP/ADV of calibrate)")
    g.add_argument("--funding-spread", type=float, default=0.0, metavar="RHO", help="funding spread rho on posted margin (decimal per period), (58), (61)")
    g.add_argument("--trim", type=float, metavar="C", help="also report trimming / winsorising at the cutoff |R| = C (decimal daily return)")
    g = p.add_argument_group("strategic constrained traders (Appendix B)")
    g.add_argument("--accounts", metavar="CSV", help="accounts with columns equity (ADV units) and benefit b(i)")
    g.add_argument("--chi", type=float, help="quadratic exposure penalty chi > 0 of (59)")
    g.add_argument("--eta", type=float, default=0.0, help="aversion eta >= 0 to margin jumps of (59)")
    g = p.add_argument_group("simulation")
    g.add_argument("--no-simulation", action="store_true", help="skip the market simulation")
    g.add_argument("--paths", type=int, default=20000, help="Monte Carlo paths per state (default %(default)s)")
    g.add_argument("--seed", type=int, default=0, help="random seed (default %(default)s)")
    g.add_argument("--sim-window", type=int, default=5, help="returns in the simulated window of the input (4) (default %(default)s; "
                   "realized_variance and HS inputs simulate the config's own window)")
    g.add_argument("--liquidation", choices=("population", "linear"), help="[portfolio] markets: the constrained sector of the "
                   "simulation, one population of accounts per contract calibrated to B (default) or the linear Delta X = -B Delta M of (26)")
    g.add_argument("--max-horizon", type=int, help="longest round trip T of the multi-period search (default 4; one contract only: "
                   "refused with a [portfolio] --market, whose simulation is of two-period vector round trips)")
    g.add_argument("--updates", type=int, help="run the T-update stress test with T updates (1-6, <= the simulated window): the best "
                   "open-loop trip against the rule, g* and M_fb by JAX gradients, its scaling in q and a verdict (one contract only)")
    g = p.add_argument_group("backtest")
    g.add_argument("--start", metavar="YYYY-MM-DD", help="first date of the backtest")
    g.add_argument("--end", metavar="YYYY-MM-DD", help="last date of the backtest")
    g.add_argument("--window", type=int, dest="backtest_window", help="daily returns in the backtest's risk-input window: the realised variance, or the HS VaR / ES "
                   "of an hs_var / hs_es config (default: the config's window, else 20)")
    g.add_argument("--position", choices=("long", "short", "both"), default="long", help="whose close-out loss is covered (default %(default)s)")
    g.add_argument("--coverage", type=float, help="target coverage (default 1 - carry of the config, else 0.99)")
    g.add_argument("--horizon-days", type=int, help="margin period of risk in days (default the config's, else 2)")
    g = p.add_argument_group("output")
    g.add_argument("--check", action="store_true", help="exit with status 1 when the rule breaks the cap anywhere (a state whose "
                   "slope is over the cap, or an upward jump), after writing the outputs as usual; 0 otherwise (for a CCP's own CI)")
    from margin_design.cli import add_json_flag

    add_json_flag(g)


def _check_overlay_flags(args: argparse.Namespace) -> None:
    """Daily-vol and margin-ratio flags must be plausible decimals (bounds of :mod:`margin_design.design.config`)."""
    from margin_design.plausibility import daily_vol_problem, margin_ratio_problem

    checks = [
        ("--floor-vol", args.floor_vol, daily_vol_problem),
        ("--buffer-release-vol", args.buffer_release_vol, daily_vol_problem),
        ("--stressed-vol", args.stressed_vol, daily_vol_problem),
        ("--floor", args.floor, margin_ratio_problem),
        ("--tick", args.tick, lambda v: margin_ratio_problem(v, positive=True)),
    ]
    for vol, amount in args.addon or ():
        checks.append((f"--addon {vol!r}:{amount!r}: VOL", vol, daily_vol_problem))
        checks.append((f"--addon {vol!r}:{amount!r}: AMOUNT", amount, lambda v: margin_ratio_problem(v, positive=True)))
    for flag, value, problem in checks:
        why = None if value is None else problem(value)
        if why is not None:
            raise InputError(f"{flag} = {value!r} is {why}.")


def _check_rule_plausible(rule, source: str) -> None:
    """A rule table's vols and margins, and the overlays of a rule file, must be plausible decimals (a table
    written in percent would otherwise be audited as a rule for daily vols of 100% and more)."""
    import numpy as np

    from margin_design.plausibility import daily_vol_problem, margin_ratio_problem

    base = getattr(rule, "base", None)
    for column, problem in (("vol", daily_vol_problem), ("margin", margin_ratio_problem)):
        values = getattr(base, column, None)
        if values is None or not isinstance(values, np.ndarray):
            continue
        for i, v in enumerate(np.asarray(values, float)):
            why = problem(v)
            if why is not None:
                raise InputError(f"rule table {source} has {column} = {float(v):.12g} in row {i + 2}, which is {why}.")
    o = getattr(rule, "overlays", None)
    checks = [("floor_vol", daily_vol_problem), ("buffer_release_vol", daily_vol_problem), ("stressed_vol", daily_vol_problem),
              ("floor", margin_ratio_problem), ("tick", margin_ratio_problem)]
    for name, problem in checks:
        v = getattr(o, name, None)
        why = None if v is None else problem(v)
        if why is not None:
            raise InputError(f"overlay {name} = {float(v)!r} of {source} is {why}.")
    for pair in getattr(o, "addons", ()) or ():
        vol, amount = (float(x) for x in pair)
        why = daily_vol_problem(vol) or margin_ratio_problem(amount)
        if why is not None:
            raise InputError(f"overlay addons entry [{vol!r}, {amount!r}] of {source} is {why}.")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from margin_design.audit import AuditOptions, build_audit, load_rule
    from margin_design.reports.audit import check_audit_folder, write_audit

    if args.out is not None:
        inputs = [args.market, args.accounts, args.data if args.data != "sp500" else None]
        from margin_design.audit.rules import is_folder

        if Path(args.rule).suffix.lower() in (".csv", ".json", ".toml") or is_folder(args.rule):
            inputs.append(args.rule)
        check_audit_folder(args.out, inputs=inputs)

    _check_overlay_flags(args)
    overlays = {
        "floor": args.floor, "floor_vol": args.floor_vol, "buffer": args.buffer, "buffer_release_vol": args.buffer_release_vol,
        "buffer_release": args.buffer_release, "stressed_weight": args.stressed_weight, "stressed_vol": args.stressed_vol,
        "tick": args.tick, "addons": [list(a) for a in args.addon] if args.addon else None,
    }
    rule = load_rule(args.rule, interpolation=args.interpolation, overlays=overlays, name=args.name)
    _check_rule_plausible(rule, Path(args.rule).name if Path(args.rule).suffix.lower() in (".csv", ".json", ".toml") else "the rule")
    if args.data is not None and args.data != "sp500" and not args.data.lower().endswith(".csv"):
        raise InputError(f"--data {args.data!r} must be 'sp500' or a .csv file with columns date, close.")
    options = AuditOptions(
        last_return=args.last_return, trigger=args.trigger, execution_cost=args.execution_cost, funding_spread=args.funding_spread,
        trim=args.trim, accounts=args.accounts, chi=args.chi, eta=args.eta, simulate=not args.no_simulation, paths=args.paths,
        seed=args.seed, sim_window=args.sim_window, max_horizon=args.max_horizon, updates=args.updates, data=args.data, start=args.start, end=args.end,
        backtest_window=args.backtest_window, position=args.position, coverage=args.coverage, horizon_days=args.horizon_days,
        method=args.method, liquidation=args.liquidation,
    )
    from margin_design import console
    from margin_design.cli import check_json_file, files_in, finish_json

    check_json_file(args)
    with console.progress("steps") as progress:
        audit = build_audit(rule, args.market, options, progress=progress)
    console.say(audit.summary())
    files = []
    if args.out:
        out = write_audit(audit, args.out)
        files = files_in(out)
        console.say(f"wrote {out}")
    breaks = cap_breaks(audit)
    status = 0
    if args.check and breaks:  # on stderr, in every mode (-q, --json): the line a CI log shows
        sys.stderr.write(f"margin-design: check failed: the rule breaks the cap: {breaks}.\n")
        status = 1
    elif args.check:
        console.say("check passed: the rule stays within the cap in every state and has no upward jump.")
    d = audit.to_dict()
    summary = {"command": "audit", "rule": d["rule"], "market": d["market"], "local": d["local"], "costs": d["costs"],
               "jumps": len(d["jumps"]), "breaks_cap": bool(breaks), "check": None if not args.check else ("fail" if breaks else "pass"),
               "comparison": d["comparison"], "files": files}
    if "simulation" in d:
        summary["simulation_checks"] = d["simulation"].get("checks")
    if "backtest" in d:
        summary["backtest"] = {"data": d["backtest"]["data"], "coverage": d["backtest"]["coverage"]}
    return finish_json(args, summary, status)


def cap_breaks(audit) -> str:
    """Where the rule breaks the cap (the --check sentence), or '' when it does not: states whose slope is over
    the cap (16) and upward jumps (an infinite slope, Section 6.6)."""
    s = audit.local.summary()
    ups = [j for j in audit.jumps if j.jump > 0]
    parts = []
    if s["states_over_cap"]:
        parts.append(f"{s['states_over_cap']} of {s['states']} states have a slope over the cap (largest slope/cap "
                     f"{s['max_slope_over_cap']:.4g} at daily vol {s['vol_at_max_slope_over_cap']:.4%})")
    if ups:
        parts.append(f"{len(ups)} upward jump(s), the first at daily vol {ups[0].vol_daily:.4%}")
    return "; ".join(parts)


def register(subparsers) -> None:
    """Add the ``audit`` subcommand to the top-level parser."""
    p = subparsers.add_parser("audit", help="audit a margin rule: manipulability, its cost against the capped optimum, simulation and backtest")
    _add_arguments(p)
    p.set_defaults(func=run)


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point (``margin-design audit`` arguments without the word ``audit``)."""
    from margin_design.cli import standalone

    return standalone(register, ["audit", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
