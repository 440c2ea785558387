"""Calibration layer: from empirical inputs to the manipulation-proof cap and the design config (Nicolai 2026).

Modules (equation numbers of the paper in every docstring):

* :mod:`.cap` -- impact mapping (65), alpha and c_eff (75)-(77), the cap in every unit system (16)-(18),
  (74), (78)-(81), Table 5 thresholds (83)-(84);
* :mod:`.gain` -- forced-liquidation multiple G (67), profit and ROI bounds (64), the gain condition of
  Lemma 5 / Theorem 1, execution and funding costs (58);
* :mod:`.portfolio` -- portfolio alignment and cap (46), (87)-(88), the two-asset example (89)-(93);
* :mod:`.accounts` -- c_X^eff from account-level data (63) and Lemma 11 (55);
* :mod:`.elasticity` -- epsilon_XM from a time series with Newey-West standard errors;
* :mod:`.data` -- risk input, state weights, empirical shock and ADV from price data; the design config;
* :mod:`.tables` -- Tables 1, 3, 4, 5, (45), (65), Section 6.4 and D.6 computed from the formulas.

Units throughout: per unit notional (price 1), margins are decimal ratios, positions in units of ADV,
r is the variance of daily returns, sigma = sqrt(r) the daily vol, sigma_ann = sqrt(252) sigma.
"""

from __future__ import annotations

from .accounts import (
    AccountsCalibration,
    aggregate_exposure,
    binding_mass,
    c_eff_from_accounts,
    calibrate_accounts,
    lemma11_slope_bound,
    read_accounts_csv,
)
from .cap import (
    BENCHMARK,
    DEFAULT_IMPACT_K_BPS,
    TRADING_DAYS_PER_YEAR,
    CapValues,
    MarketCalibration,
    alpha_c_eff,
    calibrate_market,
    cap_dm_dr,
    cap_dm_dvol,
    cap_dm_dvol_annual,
    cap_relative_dvol_annual,
    distortion_bps,
    impact_alpha,
    liquidation_slope,
    max_relative_margin_increase,
    participation_for_distortion,
    relative_cap_coefficient,
    vol_points_needed,
)
from .data import (
    DataCalibration,
    ObjectiveSettings,
    PriceSeries,
    calibrate_from_prices,
    ewma_variance,
    load_dataset,
    load_sp500,
    read_price_csv,
    realized_variance,
    standardized_losses,
    write_design_config,
)
from .elasticity import ElasticityEstimate, estimate_elasticity, newey_west_covariance, read_elasticity_csv
from .gain import (
    GainAssessment,
    assess_margin_move,
    gain_coefficients,
    gain_condition,
    liquidation_multiple,
    minimum_trigger,
    profit_bps_lower_bound,
    roi_pct_lower_bound,
)
from .portfolio import (
    TWO_ASSET_RHO_THRESHOLD,
    alignment,
    portfolio_slope_cap,
    price_pressure_scale,
    two_asset_max_relative_increase,
    two_asset_pressure_ratio,
    two_asset_slope_ratio,
)
from .tables import paper_tables, render_tables

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
    "newey_west_covariance",
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
    "paper_tables",
    "render_tables",
]
