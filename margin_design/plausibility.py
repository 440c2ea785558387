"""Plausibility bounds and size limits of every input, in one place, with the sentences that refuse them.

A value above its bound is almost always a unit mistake (a percentage typed for a decimal); the refusal
suggests the decimal. This module imports nothing heavy (no numpy, no JAX), so the command line can check
flags before it loads the solver. :mod:`margin_design.design.config` documents the bounds of the config keys.
"""

from __future__ import annotations

import math
import re

from margin_design.errors import ConfigError


#: Largest daily volatility accepted anywhere (decimal): 0.5 = 50% a day, about 794% annualised.
MAX_DAILY_VOL = 0.5
#: Smallest daily volatility accepted (decimal): 1e-6 = 0.0001% a day (0.0016% annualised).
MIN_DAILY_VOL = 1e-6
#: Largest margin ratio accepted as an input: 1 = 100% of notional (full collateral).
MAX_MARGIN_RATIO = 1.0
#: Largest grid (states); the exact solver does 10^6 states in about 1.5 s.
MAX_GRID_POINTS = 10**7
#: Largest slope cap K (margin ratio per unit daily vol) accepted with cap.kind = "manipulation_proof":
#: measured, the cvxpy path fails at K = 1e7 and the exact path at about 1e9; a cap this loose never binds.
MAX_CAP_SLOPE = 1e5
#: Largest Student-t degrees of freedom: beyond it the Student-t equals the normal to 6 digits.
MAX_STUDENT_DF = 1e6

#: Smallest positive objective.carry: below it the coverage level 1 - carry rounds to 1 in float64 (measured: the
#: first-best is lost below about 1e-16).
MIN_POSITIVE_CARRY = 1e-12

_VOL_HINT = (
    "a daily volatility of {percent}%[; write decimals ({decimal} for {value}% a day)]; daily vols above {bound} are refused"
)
_MARGIN_HINT = (
    "a margin ratio of {percent}% of notional[; write decimals ({decimal} for {value}%)]; margin ratios above {bound} "
    "(100% of notional) are refused"
)

#: key -> (upper bound, hint): a value above the bound is refused with ``key = value is <hint>.`` The hint may use
#: {value}, {percent} (value x 100), {decimal} (value / 100) and {bound}; a part in [brackets] is kept only when
#: value / 100 is within the bound (the value reads as a percentage). Keys ``file:column`` bound a CSV column.
PLAUSIBILITY: dict[str, tuple[float, str]] = {
    "grid.vol_min": (MAX_DAILY_VOL, _VOL_HINT),
    "grid.vol_max": (MAX_DAILY_VOL, _VOL_HINT),
    "states.median_vol": (MAX_DAILY_VOL, _VOL_HINT),
    "states.file:vol": (MAX_DAILY_VOL, _VOL_HINT),
    "objective.file:vol": (MAX_DAILY_VOL, _VOL_HINT),
    "objective.file:target": (MAX_MARGIN_RATIO, _MARGIN_HINT),
    "objective.prev_margin": (MAX_MARGIN_RATIO, _MARGIN_HINT),
    "shock.horizon_days": (250.0, "a margin period of risk of {value} days; periods above {bound} days (a trading year) are refused"),
    "shock.df": (MAX_STUDENT_DF, "more degrees of freedom than matter: above {bound} the Student-t is the normal to 6 digits, "
                 "so use shock.model = 'normal'"),
    "cap.window": (2520.0, "a realised-variance window of {value} days; windows above {bound} days (ten trading years) are refused"),
    "market.alpha": (10.0, "a price impact of {percent}% per ADV traded (a trade of 1% of ADV moving the price {value}%); "
                     "write alpha = delta / f in decimals (0.2 = 20 bp for 1% of ADV); values above {bound} are refused"),
    "market.c_eff": (1e4, "{value} ADV of forced liquidation per unit margin ratio (c_eff = epsilon tau / m, benchmark 4.5); "
                     "values above {bound} are refused"),
}


def fmt_number(x: float) -> str:
    """A plain, short rendering of a number for sentences (12 significant digits, no numpy repr)."""
    return format(float(x), ".12g")


def plausibility_hint(key: str, value: float) -> str | None:
    """The refusal clause for ``value`` of ``key`` if it is above its bound in :data:`PLAUSIBILITY`, else None."""
    bound, hint = PLAUSIBILITY[key]
    if not float(value) > bound:
        return None
    v = float(value)
    hint = re.sub(r"\[(.*?)\]", r"\1" if v / 100.0 <= bound else "", hint)
    return hint.format(value=fmt_number(v), percent=fmt_number(100.0 * v), decimal=fmt_number(v / 100.0), bound=fmt_number(bound))


def check_plausible(key: str, value: float | None, label: str | None = None) -> None:
    """ConfigError ``<label or key> = <value> is <hint>.`` if ``value`` is above the bound of ``key``."""
    if value is None:
        return
    clause = plausibility_hint(key, value)
    if clause is not None:
        raise ConfigError(f"{label or key} = {float(value)!r} is {clause}.")


def daily_vol_problem(value: float, key: str = "grid.vol_max") -> str | None:
    """Why ``value`` is not an acceptable daily volatility (decimal), or None: the clause after ``X = v is``.

    Bounds: positive, at least MIN_DAILY_VOL, at most the bound of ``key`` in :data:`PLAUSIBILITY`.
    """
    v = float(value)
    if not math.isfinite(v) or v <= 0:
        return "not a positive daily volatility (decimal, 0.01 = 1% a day)"
    if v < MIN_DAILY_VOL:
        return (f"a daily volatility of {fmt_number(100.0 * v)}%; daily vols below {fmt_number(MIN_DAILY_VOL)} "
                f"({fmt_number(100.0 * MIN_DAILY_VOL)}% a day) are refused")
    return plausibility_hint(key, v)


def margin_ratio_problem(value: float, key: str = "objective.prev_margin", *, positive: bool = False) -> str | None:
    """Why ``value`` is not an acceptable margin ratio (decimal of notional), or None: non-negative (or positive)
    and at most the bound of ``key`` in :data:`PLAUSIBILITY`."""
    v = float(value)
    if not math.isfinite(v) or v < 0 or (positive and v == 0):
        return f"not a {'positive' if positive else 'non-negative'} margin ratio (decimal of notional, 0.05 = 5%)"
    return plausibility_hint(key, v)
