"""``margin-design calibrate``: the calibration layer on the command line (a thin adapter over the library).

Sub-commands: ``tables``, ``cap``, ``gain``, ``threshold``, ``elasticity``, ``accounts``, ``data``, ``portfolio``.
:func:`register` adds them to the project's top-level parser; every sub-command sets ``func``, a
callable ``func(args) -> int``. User errors are raised as :class:`~margin_design.errors.MarginDesignError`
(the top-level command prints the sentence and exits 2); :func:`main` is a stand-alone entry point that
does the same.

Units on flags: ``--margin-jump`` and ``max_relative_margin_increase`` are decimals (0.2 = a 20% jump),
``--vol-rise`` and ``vol_points_needed`` are annualised-volatility points (10 = from 10% to 20%); every
other rate or ratio (``--participation``, ``--margin``, ``--margin-from``, ``--margin-to``, ``--vol``) is a
decimal; ``--vol`` is a daily volatility; distortions are in bp of notional.

``--json [FILE]`` writes machine-readable output to FILE (atomically; the text is still printed) or, with
no FILE, prints only the JSON to stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tomllib
from pathlib import Path
from typing import Any

from margin_design.errors import ConfigError, InputError
from margin_design.fileio import atomic_write_text, check_output_file

__all__ = ["register", "main"]

_BENCH_ELASTICITY = 0.225
_BENCH_PARTICIPATION = 0.01
_BENCH_DISTORTION_BPS = 20.0
#: calibrate data defaults: realised-variance window (days) and EWMA decay; longest window in days (a trading year).
DEFAULT_WINDOW = 20
DEFAULT_LAMBDA = 0.94
MAX_DAYS = 250


# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------


def _positive(flag: str, value: float | None, what: str = "positive") -> None:
    if value is not None and not (value > 0 and value < float("inf")):
        raise InputError(f"{flag} must be {what}, got {value:g}.")


def _nonnegative(flag: str, value: float | None) -> None:
    if value is not None and not (value >= 0 and value < float("inf")):
        raise InputError(f"{flag} must be non-negative, got {value:g}.")


#: Smallest trigger size accepted (fraction of ADV): 1e-6 of a day's volume is already below one lot in
#: most markets; far smaller values only push the impact and gain formulas to float64's limits.
MIN_PARTICIPATION = 1e-6


def _fraction(flag: str, value: float | None, what: str) -> None:
    if value is not None and not (0 < value <= 1):
        raise InputError(f"{flag} must be {what} in (0, 1], got {value:g}.")


#: Largest impact constant k and distortion accepted (bp): 1e4 bp = 100% of the price.
MAX_BPS = 1e4


def _at_most_bps(flag: str, value: float | None) -> None:
    if value is not None and value > MAX_BPS:
        raise InputError(f"{flag} must be at most {MAX_BPS:g} bp (100% of the price; 20 bp is the benchmark), got {value:g}.")


def _check_market_flags(args: argparse.Namespace) -> None:
    _positive("--elasticity", getattr(args, "elasticity", None), "positive (epsilon_XM = -dlog X/dlog M)")
    _positive("--turnover", getattr(args, "turnover", None), "positive (tau = XP/ADV)")
    _fraction("--participation", getattr(args, "participation", None), "a fraction of ADV")
    f = getattr(args, "participation", None)
    if f is not None and f < MIN_PARTICIPATION:
        raise InputError(f"--participation = {f:g} is below {MIN_PARTICIPATION:g} of ADV; the trigger size f is a decimal fraction of ADV (0.01 = 1%).")
    _fraction("--margin", getattr(args, "margin", None), "a margin ratio")
    _positive("--impact-k", getattr(args, "impact_k", None), "positive (bp)")
    _positive("--distortion-bps", getattr(args, "distortion_bps", None), "positive (bp)")
    _at_most_bps("--impact-k", getattr(args, "impact_k", None))
    _at_most_bps("--distortion-bps", getattr(args, "distortion_bps", None))
    _nonnegative("--inventory-penalty", getattr(args, "inventory_penalty", None))
    _positive("--vol", getattr(args, "vol", None), "a positive daily volatility (decimal)")
    vol = getattr(args, "vol", None)
    if vol is not None:
        from margin_design.plausibility import daily_vol_problem

        why = daily_vol_problem(vol)
        if why is not None:
            raise InputError(f"--vol = {vol!r} is {why}.")


def _preflight_json(args: argparse.Namespace) -> None:
    """Refuse a ``--json FILE`` that cannot be written (a folder, a file as its folder) before any work."""
    from margin_design.cli import check_json_file

    check_json_file(args)


_FLAG_NAMES = {"lam": "lambda"}


def _non_finite(payload: Any, path: str = "") -> str | None:
    """The dotted path of the first non-finite number in ``payload`` (None if all are finite)."""
    if isinstance(payload, dict):
        for k, v in payload.items():
            found = _non_finite(v, f"{path}.{k}" if path else str(k))
            if found:
                return found
    elif isinstance(payload, (list, tuple)):
        for i, v in enumerate(payload):
            found = _non_finite(v, f"{path}[{i}]")
            if found:
                return found
    elif isinstance(payload, float) and not math.isfinite(payload):
        return f"{path} = {payload!r}"
    return None


def _check_finite(args: argparse.Namespace, payload: dict) -> None:
    """One sentence instead of inf/nan in the output: name the result and the number flags given."""
    bad = _non_finite(payload)
    if bad is None:
        return
    given = [
        f"--{_FLAG_NAMES.get(k, k.replace('_', '-'))} {v:g}" for k, v in sorted(vars(args).items())
        if isinstance(v, float) and not isinstance(v, bool)
    ]
    raise InputError(
        f"the result {bad} is not a finite number (float64 overflow or underflow) for {', '.join(given) or 'these inputs'}; "
        "check the units and magnitudes of the flags."
    )


def _emit_json(args: argparse.Namespace, payload: dict, text: str) -> int:
    """Print text and/or JSON according to ``--json [FILE]`` (InputError instead of a non-finite number)."""
    _check_finite(args, payload)
    data = json.dumps(payload, indent=2, allow_nan=False) + "\n"
    target = getattr(args, "json", None)
    if target == "-":
        sys.stdout.write(data)
        return 0
    from margin_design import console

    console.say(text)  # suppressed by -q
    if target is not None:
        atomic_write_text(target, data, label="--json")
    return 0


def _add_json(p: argparse.ArgumentParser) -> None:
    from margin_design.cli import add_json_flag

    add_json_flag(p)


def _add_impact(p: argparse.ArgumentParser, default_note: str = "200") -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--impact-k", type=float, default=None, metavar="K", help=f"impact constant k in delta_bps = k sqrt(f), bp (default {default_note}), eq. (65)")
    g.add_argument(
        "--distortion-bps",
        type=float,
        default=None,
        metavar="BP",
        help="sampled-price distortion delta_bps(f) in bp (default k sqrt(f): 20 bp at the benchmark f = 1%%)",
    )


def _add_cap_market(p: argparse.ArgumentParser, required: bool) -> None:
    kw: dict[str, Any] = {"required": True} if required else {}
    p.add_argument("--elasticity", type=float, metavar="EPS", help="position-margin elasticity epsilon_XM = -dlog X/dlog M (> 0)", **({} if not required else kw))
    p.add_argument("--turnover", type=float, metavar="TAU", help="turnover ratio tau = XP/ADV (constrained sector in days of ADV)", **kw)
    p.add_argument("--participation", type=float, metavar="F", help="trigger size f as a decimal fraction of ADV, in (0, 1]", **kw)
    p.add_argument("--margin", type=float, metavar="M", help="margin ratio m (decimal, 0.05 = 5%%)", **kw)
    _add_impact(p)
    p.add_argument("--inventory-penalty", type=float, default=0.0, metavar="KAPPA", help="inventory penalty kappa >= 0 of (11), (16) (default 0)")


def _fmt(x: Any, digits: int = 4) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, bool):
        return "yes" if x else "no"
    v = float(x)
    if v == float("inf"):
        return "inf"
    return format(v, f".{digits}g")


# ----------------------------------------------------------------------------------------------
# tables
# ----------------------------------------------------------------------------------------------


def _cmd_tables(args: argparse.Namespace) -> int:
    from margin_design.calibration.tables import paper_tables, render_tables

    _preflight_json(args)
    _positive("--impact-k", args.impact_k, "positive (bp)")
    _at_most_bps("--impact-k", args.impact_k)
    t = paper_tables(args.impact_k)
    return _emit_json(args, t, render_tables(t))


# ----------------------------------------------------------------------------------------------
# cap
# ----------------------------------------------------------------------------------------------


def _cmd_cap(args: argparse.Namespace) -> int:
    from margin_design.calibration.cap import calibrate_market
    from margin_design.calibration.tables import text_table

    _preflight_json(args)
    _check_market_flags(args)
    cal = calibrate_market(
        args.elasticity,
        args.turnover,
        args.participation,
        args.margin,
        impact_k=args.impact_k,
        distortion=args.distortion_bps,
        inventory_penalty=args.inventory_penalty,
    )
    payload = cal.to_dict(vol=args.vol)
    cap = payload["cap"]
    rows = [
        ["alpha = delta/f (75)", _fmt(payload["alpha"]), "price change (decimal) per unit of ADV traded"],
        ["c_eff = epsilon tau / m (76)", _fmt(payload["c_eff"]), "ADV units per unit margin ratio"],
        ["alpha * c_eff (77)", _fmt(payload["alpha_c_eff"]), "per unit margin ratio"],
    ] + ([] if args.vol is None else [  # dm/dr depends on the state: only with --vol (JSON: null without it)
        [f"cap dm/dr (17), (74), at daily vol {args.vol:g}", _fmt(cap["dm_dr"]), "margin ratio per unit daily variance"],
    ]) + [
        ["cap dm/dsigma (18), (78)", _fmt(cap["dm_dvol"]), "margin ratio per unit daily vol"],
        ["cap dm/dsigma_ann (79)", _fmt(cap["dm_dvol_annual"]), "margin ratio per unit annualised vol"],
        ["cap (1/m) dm/dsigma_ann (80)", _fmt(cap["relative_dvol_annual"]), "relative margin change per unit annualised vol"],
    ]
    text = text_table(
        ["quantity", "value", "unit"],
        rows,
        left=(0, 2),
        title="Manipulation-proof slope cap (Nicolai 2026, (16)-(18), (74)-(81))\n" + cal.describe() + "\n",
    )
    if args.vol is None:
        text += "\n(the cap in dm/dr depends on the state: give --vol, a daily vol, to add it)"
    if args.append_market is not None:  # the only side effect: after every check of the result and of --json
        _check_finite(args, payload)
        _preflight_json(args)
        _check_market_block(cal)
        _append_market(Path(args.append_market), cal.market_toml())
        text += f"\n\nAppended a [market] block to {args.append_market}."
    return _emit_json(args, payload, text)


def _check_market_block(cal) -> None:
    """The appended [market] block must pass the design config's plausibility bounds (alpha, c_eff)."""
    from margin_design.plausibility import plausibility_hint

    for key, value, source in (("market.alpha", float(cal.alpha), "--distortion-bps or --impact-k and --participation"),
                               ("market.c_eff", float(cal.c_eff), "--elasticity, --turnover and --margin")):
        clause = plausibility_hint(key, value)
        if clause is not None:
            raise InputError(f"--append-market would write {key} = {value!r} (from {source}), which is {clause}.")


def _append_market(path: Path, block: str) -> None:
    if not path.is_file():
        raise InputError(f"--append-market names {str(path)!r}, which is not an existing config file.")
    text = path.read_text(encoding="utf-8")
    try:
        parsed = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path.name} is not valid TOML ({exc}).") from None
    if "market" in parsed:
        raise ConfigError(f"{path.name} already has a [market] block; remove it before appending a new one.")
    sep = "" if text.endswith("\n\n") or not text else ("\n" if text.endswith("\n") else "\n\n")
    atomic_write_text(path, text + sep + block)


# ----------------------------------------------------------------------------------------------
# gain
# ----------------------------------------------------------------------------------------------


def _cmd_gain(args: argparse.Namespace) -> int:
    from margin_design.calibration.gain import assess_margin_move
    from margin_design.calibration.tables import text_table

    _preflight_json(args)
    _check_market_flags(args)
    _fraction("--margin-from", args.margin_from, "a margin ratio")
    _fraction("--margin-to", args.margin_to, "a margin ratio")
    if not args.margin_to > args.margin_from:
        raise InputError(f"--margin-to must exceed --margin-from (a margin increase), got {args.margin_to:g} <= {args.margin_from:g}.")
    _nonnegative("--execution-cost", args.execution_cost)
    _nonnegative("--funding-spread", args.funding_spread)
    res = assess_margin_move(
        args.elasticity,
        args.turnover,
        args.participation,
        args.margin_from,
        args.margin_to,
        impact_k=args.impact_k,
        distortion=args.distortion_bps,
        inventory_penalty=args.inventory_penalty,
        execution_cost=args.execution_cost,
        funding_spread=args.funding_spread,
    )
    payload = res.to_dict()
    jump = args.margin_to / args.margin_from - 1.0
    rows = [
        ["Delta M / M", _fmt(jump), "decimal"],
        ["G = epsilon (Delta M/M) tau / f (67)", _fmt(payload["G"]), "units liquidated per unit triggered"],
        ["delta_bps(f) (65)", _fmt(payload["distortion_bps"]), "bp of notional"],
        ["alpha = delta/f (75)", _fmt(res.alpha), "price change per unit of ADV traded"],
        ["profit bound pi_bps (64), (58)", _fmt(payload["profit_bps"]), "bp of trigger notional"],
        ["ROI bound pi_bps/(100 m1) (64)", _fmt(payload["roi_pct"]), "percent of post-update margin"],
        ["A = alpha (G - 2) - kappa (58)", _fmt(res.A), "price per unit ADV^2"],
        ["B = 2 tau_exec + rho m0 (58)", _fmt(res.B), "price per unit ADV"],
        ["q_min = B / A (58)", _fmt(payload["q_min"]) if payload["q_min"] is not None else "none (A <= 0)", "ADV units (participation)"],
        ["profitable (alpha (G-2) > kappa, f > q_min)", _fmt(payload["profitable"]), "Lemma 5, Theorem 1, Lemma 15"],
    ]
    title = (
        f"Trigger-and-reverse diagnostics for m0 = {args.margin_from:g} -> m1 = {args.margin_to:g} "
        f"(epsilon {args.elasticity:g}, tau {args.turnover:g}, f {args.participation:g})\n"
    )
    return _emit_json(args, payload, text_table(["quantity", "value", "unit"], rows, title=title, left=(0, 2)))


# ----------------------------------------------------------------------------------------------
# threshold (Table 5 rows)
# ----------------------------------------------------------------------------------------------


def _cmd_threshold(args: argparse.Namespace) -> int:
    from margin_design.calibration.cap import max_relative_margin_increase, relative_cap_coefficient, vol_points_needed
    from margin_design.calibration.tables import text_table

    _preflight_json(args)
    _check_market_flags(args)
    if args.margin_jump is None and args.vol_rise is None:
        raise InputError("give --margin-jump (decimal, 0.2 = +20%) or --vol-rise (annualised-vol points), or both.")
    _nonnegative("--margin-jump", args.margin_jump)
    _nonnegative("--vol-rise", args.vol_rise)
    distortion = args.distortion_bps
    kw = dict(
        elasticity=args.elasticity,
        turnover=args.turnover,
        participation=args.participation,
        distortion=distortion,
        impact_k=args.impact_k,
        inventory_penalty=args.inventory_penalty,
    )
    coef = float(relative_cap_coefficient(**kw))
    payload: dict = {}
    rows = [["relative cap coefficient (81): Delta m/m per unit annualised vol (decimal)", _fmt(coef)]]
    if args.margin_jump is not None:
        payload["vol_points_needed"] = float(vol_points_needed(args.margin_jump, **kw))
        rows.append([f"annualised-vol points needed for a {args.margin_jump:g} margin jump (83)-(84)", _fmt(payload["vol_points_needed"])])
    if args.vol_rise is not None:
        payload["max_relative_margin_increase"] = float(max_relative_margin_increase(args.vol_rise, **kw))
        rows.append([f"max Delta m/m (decimal) for +{args.vol_rise:g} annualised-vol points (81)", _fmt(payload["max_relative_margin_increase"])])
    title = f"Implementability thresholds (Table 5): epsilon {args.elasticity:g}, tau {args.turnover:g}, f {args.participation:g}\n"
    return _emit_json(args, payload, text_table(["quantity", "value"], rows, title=title))


# ----------------------------------------------------------------------------------------------
# elasticity
# ----------------------------------------------------------------------------------------------


def _cmd_elasticity(args: argparse.Namespace) -> int:
    from margin_design.calibration.elasticity import estimate_elasticity, read_elasticity_csv
    from margin_design.calibration.tables import text_table

    _preflight_json(args)
    _check_market_flags(args)
    if args.lags < 0:
        raise InputError(f"--lags must be a non-negative integer, got {args.lags}.")
    if args.hac_lags is not None and args.hac_lags < 0:
        raise InputError(f"--hac-lags must be a non-negative integer, got {args.hac_lags}.")
    if not 0 < args.confidence < 1:
        raise InputError(f"--confidence must be in (0, 1), got {args.confidence:g}.")
    margin, position, dates, pos_col = read_elasticity_csv(args.file)
    est = estimate_elasticity(margin, position, distributed_lags=args.lags, confidence=args.confidence, hac_lags=args.hac_lags)
    caps = est.cap_at_interval(
        args.turnover, args.participation, args.margin, impact_k=args.impact_k, distortion=args.distortion_bps, inventory_penalty=args.inventory_penalty
    )
    payload = est.to_dict()
    payload["position_column"] = pos_col
    payload["window"] = None if dates is None else [dates[0], dates[-1]]
    payload["cap_at"] = caps
    payload["cap_inputs"] = {
        "turnover": args.turnover,
        "participation": args.participation,
        "margin": args.margin,
        "impact_k": args.impact_k,
        "distortion_bps": args.distortion_bps,
        "inventory_penalty": args.inventory_penalty,
    }
    rows = []
    for key, label in (("ci_low", "interval low"), ("estimate", "estimate"), ("ci_high", "interval high")):
        c = caps[key]
        eps = {"ci_low": est.ci_low, "estimate": est.epsilon, "ci_high": est.ci_high}[key]
        if c is None:
            rows.append([label, _fmt(eps), "unbounded (epsilon <= 0)", "", ""])
        else:
            rows.append([label, _fmt(eps), _fmt(c["c_eff"]), _fmt(c["cap"]["dm_dvol_annual"]), _fmt(c["cap"]["relative_dvol_annual"])])
    text = (
        f"Elasticity from {Path(args.file).name} ({pos_col} on margin"
        + ("" if dates is None else f", {dates[0]} to {dates[-1]}")
        + f"): {est.summary()}\n\n"
        + text_table(
            ["epsilon at", "epsilon_XM", "c_eff (76)", "cap dm/dsigma_ann (79)", "cap (1/m) dm/dsigma_ann (80)"],
            rows,
            title=f"What the interval implies for the cap (tau {args.turnover:g}, f {args.participation:g}, m {args.margin:g}); "
            "the cap falls as epsilon rises, so the interval's upper end gives the tighter cap",
        )
    )
    return _emit_json(args, payload, text)


# ----------------------------------------------------------------------------------------------
# accounts
# ----------------------------------------------------------------------------------------------


def _cmd_accounts(args: argparse.Namespace) -> int:
    from margin_design.calibration.accounts import calibrate_accounts, read_accounts_csv
    from margin_design.calibration.tables import text_table

    _preflight_json(args)
    _fraction("--margin", args.margin, "a margin ratio")
    _nonnegative("--margin-headroom", args.margin_headroom)
    _positive("--adv", args.adv, "positive (currency per day)")
    e, x, w = read_accounts_csv(args.file, adv=args.adv)
    res = calibrate_accounts(e, x, args.margin, w, margin_headroom=args.margin_headroom)
    unit = "ADV units" if args.adv is not None else "units of the equity column"
    rows = [
        ["accounts", str(res.n_accounts), ""],
        ["total mass", _fmt(res.total_mass), "sum of 'mass' (1 per account by default)"],
        ["binding mass m_t^(0) (App. B.3)", _fmt(res.binding_mass), "fraction of total mass with x_bar >= E/M"],
        ["binding equity", _fmt(res.binding_equity), f"{unit}, per unit of total mass"],
        ["exposure X(M) (7)", _fmt(res.exposure), f"{unit}, per unit of total mass"],
        ["c_eff (63)", _fmt(res.c_eff), f"{unit} per unit margin ratio, per unit of total mass"],
        ["c_eff x total mass", _fmt(res.c_eff_total), f"{unit} per unit margin ratio, summed over accounts"],
        [f"Lemma 11 bound (55), delta_M = {res.margin_headroom:g}", _fmt(res.lemma11_bound), f"{unit} per unit margin ratio, per unit of total mass"],
    ]
    title = f"c_X^eff from accounts in {Path(args.file).name} at next margin M = {args.margin:g}\n"
    return _emit_json(args, res.to_dict(), text_table(["quantity", "value", "unit"], rows, title=title, left=(0, 2)))


# ----------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------


def _check_data_flags(args: argparse.Namespace) -> None:
    """Checks shared by ``data`` and ``portfolio``: market, notionals, horizon, grid points, ADV window, --json."""
    from margin_design.plausibility import MAX_GRID_POINTS

    _preflight_json(args)
    _check_market_flags(args)
    _positive("--trigger-notional", args.trigger_notional, "positive (currency)")
    _positive("--sector-notional", args.sector_notional, "positive (currency)")
    if not 1 <= args.horizon_days <= MAX_DAYS:
        raise InputError(f"--horizon-days must be a positive integer up to {MAX_DAYS}, got {args.horizon_days}.")
    if args.points < 3:
        raise InputError(f"--points must be an integer >= 3, got {args.points}.")
    if args.points > MAX_GRID_POINTS:
        raise InputError(f"--points {args.points} is above the maximum of {MAX_GRID_POINTS:,} grid points (grid.points of the config).")
    if not 1 <= args.adv_window <= MAX_DAYS:
        raise InputError(f"--adv-window must be a positive integer number of days up to {MAX_DAYS}, got {args.adv_window}.")


def _check_out_set(out_flag: str) -> Path:
    """--out must be a .toml file that, with its .states.csv and .shock.csv siblings, can be written."""
    out = check_output_file(out_flag, "--out")
    if out.suffix.lower() != ".toml":
        raise InputError(f"--out must name a .toml file, got {str(out)!r}.")
    for sibling in (out.with_name(out.stem + ".states.csv"), out.with_name(out.stem + ".shock.csv")):
        check_output_file(sibling, "--out")
    return out


def _objective_settings(args: argparse.Namespace):
    from margin_design.calibration.data import ObjectiveSettings

    return ObjectiveSettings(
        loss=args.loss,
        carry=args.carry,
        prev_margin=args.prev_margin,
        liquidation_weight=args.liquidation_weight,
        liquidation_cost=args.liquidation_cost,
        participation_weight=args.participation_weight,
        participation_beta=args.participation_beta,
        participation_cost=args.participation_cost,
    )


def _cmd_data(args: argparse.Namespace) -> int:
    from margin_design.calibration.data import (
        calibrate_from_prices,
        load_dataset,
        market_sources_lines,
        read_price_csv,
        select_window,
        write_design_config,
    )

    _check_data_flags(args)
    if args.risk_input == "ewma" and args.window is not None:
        raise InputError(f"--window {args.window} applies only to --risk-input realized_variance, not ewma (which uses --lambda).")
    if args.risk_input != "ewma" and args.lam is not None:
        raise InputError(f"--lambda {args.lam:g} applies only to --risk-input ewma, not {args.risk_input} (which uses --window).")
    window = DEFAULT_WINDOW if args.window is None else args.window
    lam = DEFAULT_LAMBDA if args.lam is None else args.lam
    if not 1 <= window <= MAX_DAYS:
        raise InputError(f"--window must be a positive integer number of days up to {MAX_DAYS}, got {window}.")
    if not 0 < lam < 1:
        raise InputError(f"--lambda must be in (0, 1), got {lam:g}.")
    _check_out_set(args.out)
    series = load_dataset(args.dataset) if args.csv is None else read_price_csv(args.csv)
    series = select_window(series, args.start, args.end)
    from margin_design import console

    cal = calibrate_from_prices(
        series,
        risk_input=args.risk_input,
        window=window,
        lam=lam,
        horizon_days=args.horizon_days,
        position=args.position,
        points=args.points,
        vol_quantiles=tuple(args.vol_quantiles),
        spacing=args.spacing,
        elasticity=args.elasticity,
        turnover=args.turnover,
        participation=args.participation,
        margin=args.margin,
        impact_k=args.impact_k,
        distortion=args.distortion_bps,
        inventory_penalty=args.inventory_penalty,
        trigger_notional=args.trigger_notional,
        sector_notional=args.sector_notional,
        adv_window=args.adv_window,
        objective=_objective_settings(args),
        progress=console.progress_callback("stages"),
    )
    console.close_bars()
    paths = write_design_config(cal, args.out)
    payload = cal.to_dict()
    payload["files"] = {k: str(v) for k, v in paths.items()}
    tail = cal.tail
    text = "\n".join(
        [
            f"Wrote {paths['config']} (with {paths['states'].name} and {paths['shock'].name}).",
            f"  data: {cal.start} to {cal.end}, {cal.n_prices} closes; risk input {cal.risk_input}"
            + (f" (window {cal.window})" if cal.risk_input == "realized_variance" else f" (lambda {cal.lam:g})"),
            f"  grid: daily vol {cal.vol_min:g} to {cal.vol_max:g}, {cal.grid.size} points",
            f"  shock: {cal.loss_stats['n']} standardised {cal.horizon_days}-day losses; 99% quantile empirical {tail['empirical']:.3f}, "
            f"normal {tail['normal']:.3f}, Student-t fit {tail['student_t_fit']:.3f} (df {tail['student_t_fit_params']['df']:.2f})",
            f"  market: alpha {float(cal.market.alpha):.4g}, c_eff {float(cal.market.c_eff):.4g}",
            *market_sources_lines(cal.market, cal.market_sources, console=True),
        ]
    )
    return _emit_json(args, payload, text)


# ----------------------------------------------------------------------------------------------
# portfolio
# ----------------------------------------------------------------------------------------------

#: Risk functionals of ``calibrate portfolio`` ([portfolio.risk] kinds) and which take --lambda / --level.
PORTFOLIO_KINDS = ("realized_variance", "ewma", "variance", "hs_var", "hs_es", "fhs_var", "fhs_es", "scan")
_LAMBDA_KINDS = ("ewma", "fhs_var", "fhs_es")
_LEVEL_KINDS = ("hs_var", "hs_es", "fhs_var", "fhs_es")
#: Flags recorded in the command line of the config header even at their default value.
_ALWAYS_RECORDED = ("dataset",)


def _parse_weights(flag: str, text: str) -> list[float]:
    """Comma-separated notional weights ('0.5,-0.5') as floats; one sentence if they are not numbers."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise InputError(f"{flag} must be comma-separated numbers (one notional weight per contract, e.g. 0.5,0.5), got {text!r}.") from None
    if not all(math.isfinite(v) for v in values):
        raise InputError(f"{flag} must be finite numbers, got {text!r}.")
    if not any(v != 0.0 for v in values):
        raise InputError(f"{flag} = {text} are all zero; give at least one non-zero weight.")
    return values


def _arg_text(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def _command_line(args: argparse.Namespace, parser: argparse.ArgumentParser, prog: str) -> str:
    """The command as flags that differ from their defaults (plus :data:`_ALWAYS_RECORDED`), for config headers."""
    import shlex

    parts = prog.split()
    for action in parser._actions:
        if not action.option_strings or action.dest in ("help", "json"):
            continue
        value = getattr(args, action.dest, None)
        if value is None or (value == action.default and action.dest not in _ALWAYS_RECORDED):
            continue
        flag = action.option_strings[-1] if action.option_strings[-1].startswith("--") else action.option_strings[0]
        if isinstance(action, argparse._StoreTrueAction):
            parts.append(flag)
        elif isinstance(value, (list, tuple)):
            parts += [flag, *(_arg_text(v) for v in value)]
        else:
            parts += [flag, _arg_text(value)]
    return " ".join(shlex.quote(p) for p in parts)


def _check_portfolio_flags(args: argparse.Namespace) -> tuple[list[float], list[float] | None]:
    from margin_design.calibration.portfolio_data import DATASETS, MAX_WINDOW_DAYS

    _check_data_flags(args)
    kind = args.risk_input
    if args.window is not None:
        if not 1 <= args.window <= MAX_WINDOW_DAYS:
            raise InputError(f"--window must be a positive integer number of days up to {MAX_WINDOW_DAYS}, got {args.window}.")
        if kind == "variance" and args.window != 1:
            raise InputError(f"--window {args.window} does not apply to --risk-input variance (the last return alone); use realized_variance for a longer window.")
        if kind in _LAMBDA_KINDS and args.window < 2:
            raise InputError(f"--window must be at least 2 for --risk-input {kind} (the EWMA is seeded from the window's earlier returns), got {args.window}.")
    if args.lam is not None:
        if kind not in _LAMBDA_KINDS:
            raise InputError(f"--lambda {args.lam:g} applies only to --risk-input {', '.join(_LAMBDA_KINDS)}, not {kind}.")
        if not 0 < args.lam < 1:
            raise InputError(f"--lambda must be in (0, 1), got {args.lam:g}.")
    if args.level is not None:
        if kind not in _LEVEL_KINDS:
            raise InputError(f"--level {args.level:g} applies only to --risk-input {', '.join(_LEVEL_KINDS)}, not {kind}.")
        if not 0.5 < args.level < 1:
            raise InputError(f"--level must be in (0.5, 1), got {args.level:g}.")
    names = DATASETS[args.dataset] + (("WTI",) if args.with_wti else ())
    data = f"--dataset {args.dataset}" + (" --with-wti" if args.with_wti else "")
    weights = {}
    for flag, text in (("--positions", args.positions), ("--sector-positions", args.sector_positions)):
        if text is None:
            continue
        w = _parse_weights(flag, text)
        if len(w) != len(names):
            raise InputError(f"{flag} has {len(w)} weight(s) but {data} has {len(names)} contracts ({', '.join(names)}); give one per contract.")
        weights[flag] = w
    return weights["--positions"], weights.get("--sector-positions")


def _cmd_portfolio(args: argparse.Namespace) -> int:
    from margin_design.calibration.portfolio_data import calibrate_portfolio, load_panel, write_portfolio_config

    positions, sector = _check_portfolio_flags(args)
    _check_out_set(args.out)
    panel = load_panel(args.dataset, args.with_wti, args.start, args.end)
    cal = calibrate_portfolio(
        panel,
        positions,
        dataset=args.dataset,
        kind=args.risk_input,
        window=args.window,
        lam=DEFAULT_LAMBDA if args.lam is None else args.lam,
        level=0.99 if args.level is None else args.level,
        horizon_days=args.horizon_days,
        position=args.position,
        points=args.points,
        vol_quantiles=tuple(args.vol_quantiles),
        spacing=args.spacing,
        elasticity=args.elasticity,
        turnover=args.turnover,
        participation=args.participation,
        margin=args.margin,
        impact_k=args.impact_k,
        distortion=args.distortion_bps,
        inventory_penalty=args.inventory_penalty,
        trigger_notional=args.trigger_notional,
        sector_notional=args.sector_notional,
        sector_positions=sector,
        alpha_scaling=args.alpha_scaling,
        impact_model=args.impact_model,
        cap_directions=args.cap_directions,
        adv_window=args.adv_window,
        objective=_objective_settings(args),
    )
    command = _command_line(args, args.command_parser, "margin-design calibrate portfolio")
    paths, cap = write_portfolio_config(cal, args.out, command)
    payload = cal.to_dict()
    payload["portfolio"] = cap
    payload["command"] = command
    payload["files"] = {k: str(v) for k, v in paths.items()}
    tail = cal.tail
    names = cal.assets

    def vec(values, digits=4):
        return "[" + ", ".join("none" if v is None else format(float(v), f".{digits}g") for v in values) + "]"

    K = cap["cap_vol"]
    text = "\n".join(
        [
            f"Wrote {paths['config']} (with {paths['states'].name} and {paths['shock'].name}).",
            f"  data: {', '.join(names)}, {cal.start} to {cal.end}, {cal.n_prices} common closes; positions h = {vec(cal.positions)}",
            f"  risk input: {cal.spec.describe()}; r on {cal.n_risk} days",
            f"  grid: portfolio daily vol {cal.vol_min:g} to {cal.vol_max:g}, {cal.grid.size} points",
            f"  shock: {cal.loss_stats['n']} standardised {cal.horizon_days}-day portfolio losses; 99% quantile empirical {tail['empirical']:.3f}, "
            f"normal {tail['normal']:.3f}, Student-t fit {tail['student_t_fit']:.3f} (df {tail['student_t_fit_params']['df']:.2f})",
            f"  daily vol {vec(cal.vols)}; return correlation {vec(cal.correlation[0][1:]) if cal.panel.k > 1 else 'n/a (one contract)'}"
            + (" (first row)" if cal.panel.k > 2 else ""),
            f"  alpha (75) {vec(cal.alphas)} per unit ADV; B (76) {vec(cal.liquidation)} ADV per unit margin ratio; A {cal.impact_model}"
            + ("" if cal.alpha_scaling == "none" else ", alpha scaled by daily vol"),
            f"  cap at load: d = {vec(cap['trigger'])}, s_f = {cap['sensitivity']:.4g}, psi = {cap['psi']:.4g}, ||AB|| = {cap['price_pressure']:.4g}, "
            f"Phi = {cap['phi']:.4g}",
            f"  cap dM/dsigma <= {'none (no round trip profits: monotone only)' if K is None else format(K, '.4g')} ({cap['cap_directions']} trade "
            f"directions; every round trip {vec([cap['cap_vol_all']])[1:-1]}, (88) along B {vec([cap['cap_vol_liquidation']])[1:-1]})",
            f"  each contract alone {vec(cap['single_contract_cap_vol'])}, ratio {vec(cap['cap_ratio'])}",
            f"  D.6 single-asset benchmark (whole sector in one contract): psi/(alpha c) = {vec(cap['psi_over_benchmark'])}, "
            f"cap {vec(cap['benchmark_cap_vol'])}, ratio {vec(cap['benchmark_ratio'])}",
        ]
    )
    return _emit_json(args, payload, text)


# ----------------------------------------------------------------------------------------------
# Parser
# ----------------------------------------------------------------------------------------------


def _add_out_and_window(d: argparse.ArgumentParser) -> None:
    d.add_argument("--out", required=True, metavar="CONFIG.toml", help="design config to write (plus CONFIG.states.csv and CONFIG.shock.csv)")
    d.add_argument("--start", default=None, help="first date (YYYY-MM-DD) of the data window")
    d.add_argument("--end", default=None, help="last date (YYYY-MM-DD) of the data window")


def _add_states_and_shock(d: argparse.ArgumentParser, position_help: str) -> None:
    d.add_argument("--horizon-days", type=int, default=2, help="margin period of risk in days (default 2)")
    d.add_argument("--position", choices=["long", "short", "both"], default="long", help=position_help)
    d.add_argument("--points", type=int, default=51, help="grid points (default 51)")
    d.add_argument("--vol-quantiles", type=float, nargs=2, default=[0.01, 0.99], metavar=("LOW", "HIGH"), help="grid range as quantiles of daily vol (default 0.01 0.99)")
    d.add_argument("--spacing", choices=["vol", "variance"], default="vol", help="grid spacing (default vol)")


def _add_data_market(d: argparse.ArgumentParser, per_contract: bool = False) -> None:
    own = " in each contract's own ADV" if per_contract else ""
    # unset inputs stay None, so that the config written can label them built-in defaults (the paper's benchmark)
    bench = ", the paper's benchmark, labelled a built-in default in the config"
    d.add_argument("--elasticity", type=float, default=None, metavar="EPS", help=f"epsilon_XM (default 0.225{bench})")
    tg = d.add_mutually_exclusive_group()
    tg.add_argument("--turnover", type=float, default=None, metavar="TAU", help=f"tau = XP/ADV{', days' + own if per_contract else ''} (default 1{bench})")
    tg.add_argument(
        "--sector-notional", type=float, default=None, metavar="X",
        help="constrained-sector position notional (currency); tau = X/ADV" + (" per contract (needs volumes)" if per_contract else ""),
    )
    fg = d.add_mutually_exclusive_group()
    fg.add_argument("--participation", type=float, default=None, metavar="F", help=f"trigger size f, decimal of ADV{own.replace(' in', ',')} (default 0.01{bench})")
    fg.add_argument(
        "--trigger-notional", type=float, default=None, metavar="Q",
        help="trigger notional (currency); f = Q/ADV" + (" per contract (needs volumes)" if per_contract else ""),
    )
    d.add_argument("--margin", type=float, default=None, metavar="M", help=f"margin ratio m for c_eff = epsilon tau / m (default 0.05{bench})")
    _add_impact(d)
    d.add_argument("--inventory-penalty", type=float, default=None, metavar="KAPPA", help="inventory penalty kappa >= 0 (default 0)")
    d.add_argument("--adv-window", type=int, default=20, help="days averaged for ADV, ending at the window's last date (default 20)")


def _add_objective(d: argparse.ArgumentParser, liquidation_help: str = "lambda_L (default 0)") -> None:
    d.add_argument("--loss", choices=["shortfall", "squared_shortfall"], default="shortfall", help="coverage loss (default shortfall)")
    d.add_argument("--carry", type=float, default=0.01, help="carry cost kappa_M in [0, 1) (default 0.01)")
    d.add_argument("--prev-margin", type=float, default=None, help="margin in place before the reset, decimal (default --margin)")
    d.add_argument("--liquidation-weight", type=float, default=0.0, help=liquidation_help)
    d.add_argument("--liquidation-cost", choices=["quadratic", "linear"], default="quadratic", help="C(.) (default quadratic)")
    d.add_argument("--participation-weight", type=float, default=0.0, help="lambda_P (default 0)")
    d.add_argument("--participation-beta", type=float, default=0.0, help="beta: share of cleared activity lost per unit margin increase (default 0)")
    d.add_argument("--participation-cost", choices=["linear", "quadratic"], default="linear", help="H(.) (default linear)")


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``calibrate`` sub-command (with its eight sub-commands) to ``subparsers``; returns its parser."""
    p = subparsers.add_parser(
        "calibrate",
        help="calibrate the cap and the manipulation diagnostics; reproduce the paper's tables; estimate design inputs from data",
        description=__doc__.split("\n\n")[0],
    )
    sub = p.add_subparsers(dest="calibrate_command", metavar="{tables,cap,gain,threshold,elasticity,accounts,data,portfolio}", required=True)

    t = sub.add_parser("tables", help="reproduce Tables 1, 3, 4, 5, eq. (45) and the D.6 calibration from the formulas")
    t.add_argument("--impact-k", type=float, default=200.0, metavar="K", help="impact constant k in delta_bps = k sqrt(f), bp (default 200)")
    _add_json(t)
    t.set_defaults(func=_cmd_tables)

    c = sub.add_parser("cap", help="alpha, c_eff, alpha*c_eff and the cap in every unit system")
    _add_cap_market(c, required=True)
    c.add_argument("--vol", type=float, default=None, metavar="SIGMA", help="daily volatility (decimal) at which to evaluate dm/dr")
    c.add_argument("--append-market", default=None, metavar="CONFIG", help="append the [market] block to this design config")
    _add_json(c)
    c.set_defaults(func=_cmd_cap)

    g = sub.add_parser("gain", help="G, profit and ROI bounds and q_min for a proposed margin move")
    g.add_argument("--elasticity", type=float, required=True, metavar="EPS", help="position-margin elasticity epsilon_XM (> 0)")
    g.add_argument("--turnover", type=float, required=True, metavar="TAU", help="turnover ratio tau = XP/ADV")
    g.add_argument("--participation", type=float, required=True, metavar="F", help="trigger size f, decimal fraction of ADV in (0, 1]")
    g.add_argument("--margin-from", type=float, required=True, metavar="M0", help="margin ratio before the update (decimal)")
    g.add_argument("--margin-to", type=float, required=True, metavar="M1", help="margin ratio after the update (decimal)")
    _add_impact(g)
    g.add_argument("--inventory-penalty", type=float, default=0.0, metavar="KAPPA", help="inventory penalty kappa >= 0 (default 0)")
    g.add_argument("--execution-cost", type=float, default=0.0, metavar="TAU_EXEC", help="proportional execution cost per unit traded, decimal of notional (58)")
    g.add_argument("--funding-spread", type=float, default=0.0, metavar="RHO", help="funding spread per period on posted margin, decimal (58)")
    _add_json(g)
    g.set_defaults(func=_cmd_gain)

    th = sub.add_parser("threshold", help="Table 5 rows: vol points needed for a margin jump, or the max jump for a vol rise")
    th.add_argument("--turnover", type=float, required=True, metavar="TAU", help="turnover ratio tau = XP/ADV")
    th.add_argument("--margin-jump", type=float, default=None, metavar="J", help="relative margin jump, decimal (0.2 = +20%%)")
    th.add_argument("--vol-rise", type=float, default=None, metavar="V", help="rise in annualised volatility, in points (10 = from 10%% to 20%%)")
    th.add_argument("--elasticity", type=float, default=_BENCH_ELASTICITY, metavar="EPS", help="epsilon_XM (default 0.225)")
    th.add_argument("--participation", type=float, default=_BENCH_PARTICIPATION, metavar="F", help="trigger size f, decimal of ADV (default 0.01)")
    _add_impact(th, default_note="200, i.e. 20 bp at f = 1%%")
    th.add_argument("--inventory-penalty", type=float, default=0.0, metavar="KAPPA", help="inventory penalty kappa >= 0 (default 0)")
    _add_json(th)
    th.set_defaults(func=_cmd_threshold)

    e = sub.add_parser("elasticity", help="estimate epsilon_XM from a CSV of margin and position (or open_interest)")
    e.add_argument("file", metavar="FILE.csv", help="CSV with columns margin, position or open_interest, and optionally date")
    e.add_argument("--lags", type=int, default=0, help="distributed lags of the margin change (default 0); epsilon is the cumulative response")
    e.add_argument("--hac-lags", type=int, default=None, help="Newey-West lag (default floor(4 (n/100)^(2/9)))")
    e.add_argument("--confidence", type=float, default=0.95, help="confidence level of the interval (default 0.95)")
    e.add_argument("--turnover", type=float, default=1.0, metavar="TAU", help="tau for the implied cap (default 1)")
    e.add_argument("--participation", type=float, default=_BENCH_PARTICIPATION, metavar="F", help="f for the implied cap (default 0.01)")
    e.add_argument("--margin", type=float, default=0.05, metavar="M", help="margin ratio m for the implied cap (default 0.05)")
    _add_impact(e)
    e.add_argument("--inventory-penalty", type=float, default=0.0, metavar="KAPPA", help="inventory penalty kappa >= 0 (default 0)")
    _add_json(e)
    e.set_defaults(func=_cmd_elasticity)

    a = sub.add_parser("accounts", help="c_X^eff (63) and Lemma 11's bound from account-level equity and targets")
    a.add_argument("file", metavar="FILE.csv", help="CSV with columns equity, target and optionally mass")
    a.add_argument("--margin", type=float, required=True, metavar="M", help="the next posted margin ratio M (decimal)")
    a.add_argument("--margin-headroom", type=float, default=0.0, metavar="DELTA_M", help="delta_M of Lemma 11 (decimal margin ratio, default 0)")
    a.add_argument("--adv", type=float, default=None, help="ADV in the currency of the equity column, to express c_eff in ADV units")
    _add_json(a)
    a.set_defaults(func=_cmd_accounts)

    d = sub.add_parser("data", help="estimate design inputs from price data and write a design config")
    src = d.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", choices=["sp500"], help="bundled data: sp500 (arch.data.sp500, 1999-2018)")
    src.add_argument("--csv", metavar="FILE", help="CSV with columns date (YYYY-MM-DD or another unambiguous format), close (currency per unit) and optionally volume (units per day)")
    _add_out_and_window(d)
    d.add_argument("--risk-input", choices=["realized_variance", "ewma"], default="realized_variance", help="risk input r_t (default realized_variance)")
    d.add_argument("--window", type=int, default=None, help="realised-variance window in days (default 20; only with --risk-input realized_variance)")
    d.add_argument("--lambda", dest="lam", type=float, default=None, help="EWMA decay lambda (default 0.94, RiskMetrics; only with --risk-input ewma)")
    _add_states_and_shock(d, "whose close-out loss is standardised (default long)")
    _add_data_market(d)
    _add_objective(d)
    _add_json(d)
    d.set_defaults(func=_cmd_data)

    pf = sub.add_parser(
        "portfolio",
        help="estimate portfolio design inputs (A, B, [portfolio.risk], states, shocks) from multi-asset data and write a design config",
        description="Build a [portfolio] design config from the daily S&P 500 and NASDAQ Composite series shipped with arch "
        "(WTI crude added with --with-wti): the portfolio's risk-input history, state grid and weights, empirical close-out "
        "losses, return correlation, ADV, alpha (75) per contract, A, B (76) and [portfolio.risk] (Nicolai 2026, Sections 5, 6.5, D.5-D.6).",
    )
    pf.add_argument("--dataset", choices=["sp500-nasdaq", "sp500"], default="sp500-nasdaq",
                    help="bundled data: sp500-nasdaq (arch.data.sp500 and arch.data.nasdaq, 1999-2018; default) or sp500 (one contract)")
    pf.add_argument("--with-wti", action="store_true",
                    help="add WTI crude oil (arch.data.wti, 1986-2019, no volume: its tau and f are in its own ADV units), aligned on common dates")
    pf.add_argument("--positions", required=True, metavar="H1,H2,...",
                    help="the margined portfolio's notional weights h per contract, per unit of portfolio notional (e.g. 0.5,0.5 or 0.5,-0.5; write --positions=-0.5,0.5 when the first is negative)")
    _add_out_and_window(pf)
    pf.add_argument("--risk-input", choices=list(PORTFOLIO_KINDS), default="realized_variance",
                    help="the CCP's risk functional, the [portfolio.risk] kind (default realized_variance)")
    pf.add_argument("--window", type=int, default=None,
                    help="returns in the risk window, days (default 20 for realized_variance and scan, 1 for variance, 250 otherwise)")
    pf.add_argument("--lambda", dest="lam", type=float, default=None, help="EWMA decay lambda (default 0.94; ewma, fhs_var, fhs_es)")
    pf.add_argument("--level", type=float, default=None, help="VaR / ES confidence level in (0.5, 1) (default 0.99; hs_*, fhs_*)")
    _add_states_and_shock(pf, "whose close-out loss is standardised: long = the holder of h (default), short = its counterparty, both pooled")
    _add_data_market(pf, per_contract=True)
    pf.add_argument("--alpha-scaling", choices=["none", "vol"], default="none",
                    help="alpha (75) per contract: none = the same for every contract (default, D.6), vol = k scaled by daily vol "
                    "relative to the first contract (square-root impact law)")
    pf.add_argument("--impact-model", choices=["correlation", "diagonal"], default="correlation",
                    help="impact matrix A: correlation = sqrt(alpha_i alpha_j) rho_ij (default), diagonal = diag(alpha_i)")
    pf.add_argument("--cap-directions", choices=["all", "liquidation"], default="all",
                    help="the design's slope cap: all = every two-period round trip (Lemma 10, default), liquidation = the paper's (88), "
                    "trips along B only (written as [portfolio] cap_directions)")
    pf.add_argument("--sector-positions", default=None, metavar="W1,W2,...",
                    help="the constrained sector's notional weights w (default --positions): tau split by |w_i|/||w||_1, signed by w_i, gives B (76)")
    _add_objective(pf, "lambda_L of (86), charging the price pressure ||AB||^2 (M - M_-)_+^2 (default 0)")
    _add_json(pf)
    pf.set_defaults(func=_cmd_portfolio, command_parser=pf)
    return p


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point: ``main(["calibrate", "cap", ...])``; user errors print one sentence and return 2."""
    from margin_design.cli import standalone

    return standalone(register, argv)

if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
