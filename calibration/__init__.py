"""Calibration layer: from empirical inputs to the manipulation-proof cap and the design config (Nicolai 2026).

Modules (equation numbers of the paper in every docstring):

* :mod:`.cap` -- impact mapping (65), alpha and c_eff (75)-(77), the cap in every unit system (16)-(18),
  (74), (78)-(81), Table 5 thresholds (83)-(84);
* :mod:`.gain` -- forced-liquidation multiple G (67), profit and ROI bounds (64), the gain condition of
  Lemma 5 / Theorem 1, execution and funding costs (58);
* :mod:`.portfolio` -- portfolio alignment and cap (46), (87)-(88), the two-asset example (89)-(93);
* :mod:`.portfolio_risk` -- portfolio risk functionals (variance, EWMA, HS / FHS VaR and ES, SPAN-like scan) of mark
  vectors (25), their trigger direction d and factor s_f (c_r = 2 sqrt(r) s_f, (27), (87)-(88)) by JAX, the impact
  matrix A (Assumption 6: diagonal, correlation, multivariate Kyle) and the liquidation vector B (26), (63), (76);
* :mod:`.risk_inputs` -- price-based risk inputs of one contract (realised variance (4), EWMA, trimmed (22) /
  winsorised variance, VaR / ES multiples 4.2.2, scan maxima 4.2.3) and their one-sided sensitivity c_Gamma to the
  last sampled price by JAX (Definition 6, (48)); the audit (:mod:`margin_design.audit`) reads rules through them;
* :mod:`.accounts` -- c_X^eff from account-level data (63) and Lemma 11 (55);
* :mod:`.elasticity` -- epsilon_XM from a time series with Newey-West standard errors;
* :mod:`.data` -- risk input, state weights, empirical shock and ADV from price data; the design config;
* :mod:`.tables` -- Tables 1, 3, 4, 5, (45), (65), Section 6.4 and D.6 computed from the formulas.
* :mod:`.leverage` -- re-levering on unrealised profits (reference 003): the tick model with discount and caps, a
  real-path simulator with margin calls, the seed's claims measured, and the effective c_eff' the cap should use.

Units throughout: per unit notional (price 1), margins are decimal ratios, positions in units of ADV,
r is the variance of daily returns, sigma = sqrt(r) the daily vol, sigma_ann = sqrt(252) sigma.
"""

from __future__ import annotations

import importlib

# Exports are loaded on first use (as in margin_design.reports): ``from margin_design.calibration.cap import ...``
# then runs only the cap formulas, without JAX, SciPy's statistics or the data sets, so that the cap-only
# commands start quickly. The names and what they refer to are unchanged.
_EXPORTS = {
    "AccountsCalibration": "accounts",
    "aggregate_exposure": "accounts",
    "binding_mass": "accounts",
    "c_eff_from_accounts": "accounts",
    "calibrate_accounts": "accounts",
    "lemma11_slope_bound": "accounts",
    "read_accounts_csv": "accounts",
    "BENCHMARK": "cap",
    "DEFAULT_IMPACT_K_BPS": "cap",
    "TRADING_DAYS_PER_YEAR": "cap",
    "CapValues": "cap",
    "MarketCalibration": "cap",
    "alpha_c_eff": "cap",
    "calibrate_market": "cap",
    "cap_dm_dr": "cap",
    "cap_dm_dvol": "cap",
    "cap_dm_dvol_annual": "cap",
    "cap_relative_dvol_annual": "cap",
    "distortion_bps": "cap",
    "impact_alpha": "cap",
    "liquidation_slope": "cap",
    "max_relative_margin_increase": "cap",
    "participation_for_distortion": "cap",
    "relative_cap_coefficient": "cap",
    "vol_points_needed": "cap",
    "DataCalibration": "data",
    "ObjectiveSettings": "data",
    "PriceSeries": "data",
    "calibrate_from_prices": "data",
    "ewma_variance": "data",
    "load_dataset": "data",
    "load_sp500": "data",
    "read_price_csv": "data",
    "realized_variance": "data",
    "standardized_losses": "data",
    "write_design_config": "data",
    "ElasticityEstimate": "elasticity",
    "estimate_elasticity": "elasticity",
    "hac_ols": "elasticity",
    "read_elasticity_csv": "elasticity",
    "GainAssessment": "gain",
    "assess_margin_move": "gain",
    "gain_coefficients": "gain",
    "gain_condition": "gain",
    "liquidation_multiple": "gain",
    "minimum_trigger": "gain",
    "profit_bps_lower_bound": "gain",
    "roi_pct_lower_bound": "gain",
    "TWO_ASSET_RHO_THRESHOLD": "portfolio",
    "alignment": "portfolio",
    "portfolio_slope_cap": "portfolio",
    "price_pressure_scale": "portfolio",
    "two_asset_max_relative_increase": "portfolio",
    "two_asset_pressure_ratio": "portfolio",
    "two_asset_slope_ratio": "portfolio",
    "PORTFOLIO_RISK_KINDS": "portfolio_risk",
    "PortfolioRisk": "portfolio_risk",
    "TriggerBranch": "portfolio_risk",
    "TriggerSensitivity": "portfolio_risk",
    "LocalTriggerSensitivity": "portfolio_risk",
    "tail_count": "tail",
    "value_per_vol": "portfolio_risk",
    "portfolio_risk_value": "portfolio_risk",
    "portfolio_risk_input": "portfolio_risk",
    "worst_case_window": "portfolio_risk",
    "local_trigger_sensitivity": "portfolio_risk",
    "trigger_and_sensitivity": "portfolio_risk",
    "trigger_sensitivity_path": "portfolio_risk",
    "fhs_worst_factor": "portfolio_risk",
    "diagonal_impact": "portfolio_risk",
    "correlation_impact": "portfolio_risk",
    "return_correlation": "portfolio_risk",
    "kyle_impact": "portfolio_risk",
    "check_impact_matrix": "portfolio_risk",
    "liquidation_from_elasticity": "portfolio_risk",
    "liquidation_from_accounts": "portfolio_risk",
    "paper_tables": "tables",
    "render_tables": "tables",
    "Guardrails": "leverage",
    "tick_path": "leverage",
    "simulate_path": "leverage",
    "effective_c_eff": "leverage",
    "build_study": "leverage",
}


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'margin_design.calibration' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))

__all__ = [
    "AccountsCalibration",
    "aggregate_exposure",
    "binding_mass",
    "c_eff_from_accounts",
    "calibrate_accounts",
    "lemma11_slope_bound",
    "read_accounts_csv",
    "BENCHMARK",
    "DEFAULT_IMPACT_K_BPS",
    "TRADING_DAYS_PER_YEAR",
    "CapValues",
    "MarketCalibration",
    "alpha_c_eff",
    "calibrate_market",
    "cap_dm_dr",
    "cap_dm_dvol",
    "cap_dm_dvol_annual",
    "cap_relative_dvol_annual",
    "distortion_bps",
    "impact_alpha",
    "liquidation_slope",
    "max_relative_margin_increase",
    "participation_for_distortion",
    "relative_cap_coefficient",
    "vol_points_needed",
    "DataCalibration",
    "ObjectiveSettings",
    "PriceSeries",
    "calibrate_from_prices",
    "ewma_variance",
    "load_dataset",
    "load_sp500",
    "read_price_csv",
    "realized_variance",
    "standardized_losses",
    "write_design_config",
    "ElasticityEstimate",
    "estimate_elasticity",
    "hac_ols",
    "read_elasticity_csv",
    "GainAssessment",
    "assess_margin_move",
    "gain_coefficients",
    "gain_condition",
    "liquidation_multiple",
    "minimum_trigger",
    "profit_bps_lower_bound",
    "roi_pct_lower_bound",
    "TWO_ASSET_RHO_THRESHOLD",
    "alignment",
    "portfolio_slope_cap",
    "price_pressure_scale",
    "two_asset_max_relative_increase",
    "two_asset_pressure_ratio",
    "two_asset_slope_ratio",
    "PORTFOLIO_RISK_KINDS",
    "PortfolioRisk",
    "TriggerBranch",
    "TriggerSensitivity",
    "LocalTriggerSensitivity",
    "tail_count",
    "value_per_vol",
    "portfolio_risk_value",
    "portfolio_risk_input",
    "worst_case_window",
    "local_trigger_sensitivity",
    "trigger_and_sensitivity",
    "trigger_sensitivity_path",
    "fhs_worst_factor",
    "diagonal_impact",
    "correlation_impact",
    "return_correlation",
    "kyle_impact",
    "check_impact_matrix",
    "liquidation_from_elasticity",
    "liquidation_from_accounts",
    "paper_tables",
    "render_tables",
    "Guardrails",
    "tick_path",
    "simulate_path",
    "effective_c_eff",
    "build_study",
]
