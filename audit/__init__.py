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

from margin_design.calibration.risk_inputs import (
    InputSpec,
    directional_sensitivity,
    sampled_ewma,
    input_sensitivity,
    sampled_variance,
    scan_risk,
    trimmed_variance,
    var_multiple,
    winsorized_variance,
)

from .backtest import (
    BacktestData,
    BacktestMetrics,
    backtest_metrics,
    emir_rules,
    kupiec_pof,
    largest_increases,
    prepare_backtest,
    run_rule,
)
from .local import (
    AuditMarket,
    JumpGain,
    LocalAnalysis,
    feedback_gain,
    jump_gains,
    local_analysis,
    profit_bound,
    risk_input_table,
    slope_cap_r,
    trimming_jumps,
)
from .rules import Breakpoint, FormulaRule, Overlays, Rule, TableRule, load_rule, parse_formula, read_rule_csv
from .simulate import (
    BAND_Z,
    PROFIT_TOL,
    Fundamentals,
    Population,
    ProfitCurve,
    SearchResult,
    SimState,
    closed_form_profit,
    round_trip_curve,
    search_round_trips,
    simulate_trades,
)
from .stress import StressPoint, StressReport, best_trips, jax_rule, stress_test
from .updates import cap_scale, solve_design, solve_with_updates
from .strategic import StrategicState, equilibrium_c_eff, equilibrium_targets, strategic_c_eff
from .build import STATE_UNITS, Audit, AuditOptions, build_audit  # last: it builds on the modules above

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
