"""The published volatility points of a rule, as an analyst types them (one parser for ``report`` and ``diff``).

A CCP publishes its rule at round annualised volatilities: ``8:60:1`` means 8%, 9%, ..., 60% annualised
(start:stop:step in percentage points, both ends included), and ``10,15,20,30`` lists points. Points are
returned both as annualised percentage points (for tables a committee reads) and as daily decimal vols
(the solver's unit: sigma_daily = sigma_annual / sqrt(252)).

Note the step form differs from ``sweep``'s ``start:stop:count``: here the third number is the step in
percentage points, because a published table is defined by its spacing.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import numpy as np

from margin_design.errors import InputError
from margin_design.plausibility import MAX_DAILY_VOL
from margin_design.reports.rule_data import SQRT_252

#: Most published points accepted (a table longer than this is a unit mistake, e.g. a step of 0.001).
MAX_POINTS = 10_000
#: Largest annualised vol accepted, percentage points: the daily bound of plausibility.py (0.5 a day, ~794%).
MAX_ANNUAL_PCT = 100.0 * MAX_DAILY_VOL * SQRT_252


@dataclass(frozen=True)
class VolPoints:
    """Published points: ``annual_pct`` (annualised vol, percentage points, exact decimals as typed) and
    ``daily`` (daily vol, decimal)."""

    annual_pct: tuple[Decimal, ...]

    @property
    def annual_pct_array(self) -> np.ndarray:
        return np.array([float(x) for x in self.annual_pct])

    @property
    def daily(self) -> np.ndarray:
        return self.annual_pct_array / 100.0 / SQRT_252

    def labels(self) -> list[str]:
        """Points as typed, without trailing zeros ("8", "8.5")."""
        return [format(x.normalize(), "f") for x in self.annual_pct]


def _number(text: str, spec: str, flag: str) -> Decimal:
    try:
        x = Decimal(text.strip())
    except InvalidOperation:
        raise InputError(f"{flag} {spec!r}: {text.strip()!r} is not a number (annualised vol in percentage points, e.g. 8:60:1 or 10,15,20).") from None
    if not x.is_finite():
        raise InputError(f"{flag} {spec!r}: {text.strip()!r} is not a finite number.")
    return x


def parse_vol_points(spec: str, flag: str = "--published-vols") -> VolPoints:
    """Parse ``start:stop:step`` or a comma list of annualised vols in percentage points.

    Points must be positive, strictly increasing, at most :data:`MAX_POINTS` of them and at most
    :data:`MAX_ANNUAL_PCT`. A range includes ``stop`` when it lies on the step lattice (exact decimal
    arithmetic, so 8:9:0.1 has 11 points). Every mistake raises :class:`InputError` with one sentence.
    """
    text = str(spec).strip()
    if not text:
        raise InputError(f"{flag} is empty; give annualised vols in percentage points, e.g. 8:60:1 or 10,15,20.")
    if ":" in text:
        parts = text.split(":")
        if len(parts) != 3:
            raise InputError(f"{flag} {spec!r} must be start:stop:step in annualised percentage points (e.g. 8:60:1).")
        start, stop, step = (_number(p, spec, flag) for p in parts)
        if step <= 0:
            raise InputError(f"{flag} {spec!r}: the step must be positive.")
        if stop < start:
            raise InputError(f"{flag} {spec!r}: stop {stop} is below start {start}.")
        count = int((stop - start) / step) + 1
        if count > MAX_POINTS:
            raise InputError(f"{flag} {spec!r} gives {count} points; at most {MAX_POINTS} are accepted (is the step in percentage points?).")
        points = [start + k * step for k in range(count)]
    else:
        points = [_number(p, spec, flag) for p in text.split(",") if p.strip() != ""] if "," in text else [_number(text, spec, flag)]
        if len(points) > MAX_POINTS:
            raise InputError(f"{flag} lists {len(points)} points; at most {MAX_POINTS} are accepted.")
        if any(b <= a for a, b in zip(points, points[1:])):
            raise InputError(f"{flag} {spec!r}: points must be strictly increasing.")
    if points[0] <= 0:
        raise InputError(f"{flag} {spec!r}: vols must be positive (annualised, percentage points).")
    if points[-1] > Decimal(repr(MAX_ANNUAL_PCT)):
        raise InputError(f"{flag} {spec!r}: {points[-1]}% annualised is above {MAX_ANNUAL_PCT:.0f}% (50% a day); "
                         "vols are percentage points, not decimals.")
    return VolPoints(tuple(points))
