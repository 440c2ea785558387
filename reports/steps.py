"""Step (bucketed) tables and the threshold-crossing gain of each jump (Nicolai 2026, Section 6.6).

A step table publishes one margin per volatility bucket. Bucket edges are grid points close to equally
spaced annualised vols (:func:`bucket_edges`); bucket j = [e_j, e_{j+1}) (the last one closed) charges the
published linear rule at its upper edge, rounded up to the tick when one is given, so the step rule never
charges less than the linear rule it replaces (both are monotone). Crossing an interior edge e_j from
below raises margin by

    Delta M_j = L_j - L_{j-1}.

Section 6.6: a jump is exploitable however small the slope elsewhere. A trigger trade of size q (ADV
units) that pushes the sampled input across the threshold harvests about q * alpha * c_eff * Delta M
(price impact alpha per ADV traded, forced liquidation c_eff in ADV per unit margin ratio), while its own
round-trip cost is O(q^2); so for small enough q the jump pays. The table reports the gain per unit of
trigger, alpha * c_eff * Delta M (a price move, decimal of the price), for every jump.

Portfolio designs ((85)-(88)): the jump forces the sales Delta M B, which move prices by Delta M AB; a unit trade
vector v sold before and bought back after harvests v'AB Delta M, at most ||AB||_2 Delta M (Cauchy-Schwarz, at
v = AB/||AB||). The table reports that bound, ||AB|| Delta M, as the gain per unit trigger (q ADV along the best
direction harvests q times it); for a one-contract portfolio it is alpha c_eff Delta M again.
"""

from __future__ import annotations

from dataclasses import dataclass

import math

import numpy as np

from margin_design.calibration.gain import threshold_crossing_gain

from margin_design.errors import InputError
from margin_design.reports.knots import tick_value
from margin_design.reports.rule_data import SQRT_252

DEFAULT_BUCKETS = 10
JUMP_TOL = 1e-15   # increments at or below this (margin ratio) are not jumps (pooled, flat stretches)
CEIL_SLACK = 1e-9  # a level within 1e-9 ticks of a lattice point is on it (float noise, not a new tick)


@dataclass(frozen=True)
class StepTable:
    """Buckets (vol ranges and the margin charged) and the jumps between them with their harvesting gains."""

    buckets: tuple
    jumps: tuple
    alpha: float | None
    c_eff: float | None
    price_pressure: float | None = None   # ||AB||_2 for a portfolio design (alpha and c_eff are then None)

    @property
    def max_jump(self) -> float:
        return max((j["jump"] for j in self.jumps), default=0.0)

    @property
    def max_gain_per_unit_trigger(self) -> float:
        return max((j["gain_per_unit_trigger"] for j in self.jumps), default=0.0)

    def to_dict(self) -> dict:
        if self.price_pressure is not None:
            return {
                "convention": "bucket [vol_from, vol_to) charges the published linear rule at vol_to (rounded up to the tick if any); last bucket closed",
                "price_pressure_AB": self.price_pressure,
                "gain_formula": "gain per unit trigger = ||AB||_2 * jump, the largest harvest v'AB * jump of a unit trade vector v "
                                "(Nicolai 2026, Section 6.6 with the portfolio price pressure of (86)); gain = q * that for a trigger of q ADV",
                "buckets": [dict(b) for b in self.buckets],
                "jumps": [dict(j) for j in self.jumps],
            }
        return {
            "convention": "bucket [vol_from, vol_to) charges the published linear rule at vol_to (rounded up to the tick if any); last bucket closed",
            "alpha": self.alpha,
            "c_eff": self.c_eff,
            "gain_formula": "gain per unit trigger = alpha * c_eff * jump (Nicolai 2026, Section 6.6); gain = q * that for a trigger of q ADV",
            "buckets": [dict(b) for b in self.buckets],
            "jumps": [dict(j) for j in self.jumps],
        }


def bucket_edges(vol, buckets: int) -> np.ndarray:
    """Grid indices of the bucket edges: the grid points nearest to ``buckets`` + 1 equally spaced vols."""
    vol = np.asarray(vol, float)
    if isinstance(buckets, bool) or not isinstance(buckets, int) or buckets < 1:
        raise InputError(f"--steps {buckets!r} must be a positive number of buckets.")
    if buckets > vol.size - 1:
        raise InputError(f"--steps {buckets} exceeds the {vol.size - 1} grid intervals of the schedule.")
    targets = np.linspace(vol[0], vol[-1], buckets + 1)
    idx = np.unique(np.abs(vol[None, :] - targets[:, None]).argmin(axis=1))
    return idx


def bucket_levels(vol_edges, vol_knots, margin_knots, tick: float | None = None) -> np.ndarray:
    """Level of each bucket: the linear rule through the knots at the bucket's upper edge, rounded up to ``tick``."""
    upper = np.interp(np.asarray(vol_edges, float)[1:], vol_knots, margin_knots)
    if tick is None:
        return upper
    return np.asarray([tick_value(math.ceil(v / tick - CEIL_SLACK), tick) for v in upper])


def step_table(vol_edges, levels, alpha: float | None, c_eff: float | None, *, price_pressure: float | None = None) -> StepTable:
    """Buckets between consecutive edges with the given levels and the jump at every interior edge.

    Gain per unit trigger: alpha c_eff Delta M for one contract; with ``price_pressure`` (||AB||_2 of a portfolio
    design, price change per unit margin ratio) ||AB|| Delta M, and ``alpha``, ``c_eff`` must be None.
    """
    if (price_pressure is None) == (alpha is None or c_eff is None):
        raise ValueError("step_table needs alpha and c_eff (one contract) or price_pressure (portfolio), not both")
    v = np.asarray(vol_edges, float)
    L = np.asarray(levels, float)
    buckets = []
    for k in range(v.size - 1):
        buckets.append(
            {
                "bucket": k,
                "vol_daily_from": float(v[k]),
                "vol_daily_to": float(v[k + 1]),
                "vol_annual_from": float(SQRT_252 * v[k]),
                "vol_annual_to": float(SQRT_252 * v[k + 1]),
                "margin": float(L[k]),
            }
        )
    jumps = []
    for k in range(1, v.size - 1):
        dm = float(L[k] - L[k - 1])
        if dm <= JUMP_TOL:
            continue
        jumps.append(
            {
                "threshold_vol_daily": float(v[k]),
                "threshold_vol_annual": float(SQRT_252 * v[k]),
                "margin_below": float(L[k - 1]),
                "margin_above": float(L[k]),
                "jump": dm,
                "gain_per_unit_trigger": float(threshold_crossing_gain(alpha, c_eff, dm)) if price_pressure is None else float(price_pressure) * dm,
            }
        )
    if price_pressure is not None:
        return StepTable(buckets=tuple(buckets), jumps=tuple(jumps), alpha=None, c_eff=None, price_pressure=float(price_pressure))
    return StepTable(buckets=tuple(buckets), jumps=tuple(jumps), alpha=float(alpha), c_eff=float(c_eff))
