"""The one trading-year convention of the project: sigma_ann = sqrt(252) sigma_daily (imports nothing heavy)."""

import math

#: Trading days per year: annualised vol = sqrt(TRADING_DAYS) x daily vol.
TRADING_DAYS = 252
SQRT_252 = math.sqrt(TRADING_DAYS)
