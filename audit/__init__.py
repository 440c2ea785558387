"""Audit any margin rule M = g(r): where it is manipulable, by how much, what that costs (Nicolai 2026).

The analysis of a given rule; it consumes solved schedules and calibrated markets and never renders (the files and
figures are :mod:`margin_design.reports.audit`):

* :mod:`.build` -- the whole audit: :func:`build_audit` solves the capped optimum g* of the market config, runs the
  analyses below for the rule, g* and the first-best, and returns an :class:`Audit` (``summary()``, ``to_dict()``,
  ``to_frame()``, ``comparison_frame()``) configured by :class:`AuditOptions`;
* :mod:`.rules` -- rule objects: tables (linear / step in daily vol), sympy formulas in r or sigma, and the CCP
  overlays of Appendix E.4 (stressed weight, floor, buffer, step add-ons, tick rounding), with exact one-sided
  values and slopes, breakpoints, jumps, kinks and flat stretches;
* :mod:`margin_design.calibration.risk_inputs` (re-exported here; the cap's input factor uses them too) --
  price-based risk inputs (realised variance (4), EWMA, trimmed (22) / winsorised variance, VaR / ES multiples
  4.2.2, scan maxima 4.2.3) and their one-sided sensitivity to the last sampled price by JAX;
* :mod:`.local` -- per-state slope vs the cap (16)-(18), the gain G (14), the bounds (15) and (58), Table 1 units,
  threshold-crossing gains of jumps (Section 6.6), Proposition 2's trimming jumps, other inputs (Section 4.2);
* :mod:`.strategic` -- c_X^eff from the equilibrium targets of strategic constrained traders (Appendix B, (61)-(63));
* :mod:`.simulate` -- a vectorised simulation of the Section 2 market: round-trip profit curves with Monte Carlo
  bands, the closed form of Lemma 5, and a search over multi-period round trips;
* :mod:`.stress` -- the T-update stress test: the most profitable open-loop round trip over T consecutive margin
  updates by JAX gradients (multi-start projected ascent) in the same simulated market, its scaling in the trade
  size q and a verdict worded by that scaling;
* :mod:`.updates` -- ``[cap] updates = T``: the largest scale s of the cap whose capped optimum the T-update stress
  test cannot beat (bisection, each step a certified solve); :func:`solve_with_updates` is the solve of ``margin-design solve``;
* :mod:`.backtest` -- margin paths through history: Kupiec coverage test, cost, procyclicality (peak-to-trough,
  largest 1/5/30-day increases), share of days over the cap; EMIR art. 28 tools.

Units throughout: per unit notional (price 1), margins are margin ratios, r the variance of daily returns,
sigma = sqrt(r) the daily vol (annualised sqrt(252) sigma), positions and trades in ADV units.
"""

from __future__ import annotations

import importlib

# Lazy exports, as in margin_design.calibration: a name is imported from its module on first use, so importing one
# submodule (``margin-design solve`` imports .updates) does not import the whole audit (the backtest's scipy.stats).
# Names of this package's modules are relative; margin_design.calibration.risk_inputs is re-exported.
_EXPORTS = {
    "InputSpec": "margin_design.calibration.risk_inputs",
    "directional_sensitivity": "margin_design.calibration.risk_inputs",
    "sampled_ewma": "margin_design.calibration.risk_inputs",
    "input_sensitivity": "margin_design.calibration.risk_inputs",
    "sampled_variance": "margin_design.calibration.risk_inputs",
    "scan_risk": "margin_design.calibration.risk_inputs",
    "trimmed_variance": "margin_design.calibration.risk_inputs",
    "var_multiple": "margin_design.calibration.risk_inputs",
    "winsorized_variance": "margin_design.calibration.risk_inputs",
    "BacktestData": "backtest",
    "BacktestMetrics": "backtest",
    "backtest_metrics": "backtest",
    "emir_rules": "backtest",
    "kupiec_pof": "backtest",
    "largest_increases": "backtest",
    "prepare_backtest": "backtest",
    "run_rule": "backtest",
    "AuditMarket": "local",
    "JumpGain": "local",
    "LocalAnalysis": "local",
    "feedback_gain": "local",
    "jump_gains": "local",
    "local_analysis": "local",
    "profit_bound": "local",
    "risk_input_table": "local",
    "slope_cap_r": "local",
    "trimming_jumps": "local",
    "Breakpoint": "rules",
    "FormulaRule": "rules",
    "Overlays": "rules",
    "Rule": "rules",
    "TableRule": "rules",
    "load_rule": "rules",
    "parse_formula": "rules",
    "read_rule_csv": "rules",
    "BAND_Z": "simulate",
    "PROFIT_TOL": "simulate",
    "Fundamentals": "simulate",
    "Population": "simulate",
    "ProfitCurve": "simulate",
    "SearchResult": "simulate",
    "SimState": "simulate",
    "closed_form_profit": "simulate",
    "round_trip_curve": "simulate",
    "search_round_trips": "simulate",
    "simulate_trades": "simulate",
    "StressPoint": "stress",
    "StressReport": "stress",
    "best_trips": "stress",
    "jax_rule": "stress",
    "stress_test": "stress",
    "cap_scale": "updates",
    "solve_design": "updates",
    "solve_with_updates": "updates",
    "StrategicState": "strategic",
    "equilibrium_c_eff": "strategic",
    "equilibrium_targets": "strategic",
    "strategic_c_eff": "strategic",
    "STATE_UNITS": "build",
    "Audit": "build",
    "AuditOptions": "build",
    "build_audit": "build",
}


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'margin_design.audit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module if module.startswith("margin_design.") else f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))


__all__ = [
    "STATE_UNITS",
    "Audit",
    "AuditMarket",
    "AuditOptions",
    "BAND_Z",
    "PROFIT_TOL",
    "BacktestData",
    "BacktestMetrics",
    "Breakpoint",
    "FormulaRule",
    "Fundamentals",
    "InputSpec",
    "JumpGain",
    "LocalAnalysis",
    "Overlays",
    "Population",
    "ProfitCurve",
    "Rule",
    "SearchResult",
    "SimState",
    "StrategicState",
    "StressPoint",
    "StressReport",
    "TableRule",
    "backtest_metrics",
    "best_trips",
    "build_audit",
    "closed_form_profit",
    "directional_sensitivity",
    "emir_rules",
    "equilibrium_c_eff",
    "equilibrium_targets",
    "feedback_gain",
    "input_sensitivity",
    "jax_rule",
    "jump_gains",
    "kupiec_pof",
    "largest_increases",
    "load_rule",
    "local_analysis",
    "parse_formula",
    "prepare_backtest",
    "profit_bound",
    "read_rule_csv",
    "risk_input_table",
    "round_trip_curve",
    "run_rule",
    "sampled_ewma",
    "sampled_variance",
    "scan_risk",
    "search_round_trips",
    "simulate_trades",
    "solve_design",
    "solve_with_updates",
    "cap_scale",
    "slope_cap_r",
    "strategic_c_eff",
    "stress_test",
    "trimmed_variance",
    "trimming_jumps",
    "var_multiple",
    "winsorized_variance",
]
