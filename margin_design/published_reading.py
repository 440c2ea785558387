"""How a published rule table is read between and beyond its points: the one definition.

A published rule is a table of points (vol_k, m_k) read linearly in volatility between points (daily or
annualised vol: one is sqrt(252) times the other), with this extrapolation (:data:`EXTRAPOLATION`):

* below the first point the margin stays flat at the first published margin m_0;
* above the last point it continues at the slope of the last published interval,
  (m_N - m_{N-1}) / (vol_N - vol_{N-1}).

Why this extrapolation, and the certificate that it stays within the cap: :mod:`margin_design.reports.publish`, which
publishes rules with it. The loader :func:`margin_design.audit.rules.load_rule` reads a table back with
the same :func:`evaluate` when the table states this extrapolation (:func:`stated_extrapolation`), so ``audit`` and
``diff`` read a published rule exactly as it was published, also beyond its points. The module sits below both (it
imports nothing of the package) so that neither layer imports the other.

Units: vols are daily decimals; margins margin ratios; slopes margin ratio per unit daily vol.
"""

from __future__ import annotations

import numpy as np

__all__ = ["INTERPOLATION", "EXTRAPOLATION", "ABOVE_PHRASE", "BELOW_PHRASE", "extrapolation_slopes", "evaluate",
           "extrapolation_row_texts", "stated_extrapolation"]

INTERPOLATION = "linear in volatility between published points (daily or annualised vol)"
EXTRAPOLATION = {
    "below": "flat at the first published margin (slope 0)",
    "above": "continues at the slope of the last published interval (within the cap)",
}
#: The words of a rule table's ``extrapolation`` cells (first row: below, last row: above) that state this reading.
BELOW_PHRASE = "(the first published margin)"
ABOVE_PHRASE = "rises at the last published slope"


def extrapolation_slopes(vol, margin) -> tuple[float, float]:
    """(slope below the first point, slope above the last point), margin ratio per unit daily vol."""
    v = np.asarray(vol, float)
    m = np.asarray(margin, float)
    return 0.0, float((m[-1] - m[-2]) / (v[-1] - v[-2]))


def evaluate(vol_points, margin, vol) -> np.ndarray:
    """The published rule at daily vols ``vol``: linear between points, :data:`EXTRAPOLATION` outside."""
    vp = np.asarray(vol_points, float)
    m = np.asarray(margin, float)
    x = np.asarray(vol, float)
    _, above = extrapolation_slopes(vp, m)
    # np.interp is flat below vp[0] (and above vp[-1], replaced by the last slope)
    return np.where(x > vp[-1], m[-1] + above * (x - vp[-1]), np.interp(x, vp, m))


def extrapolation_row_texts(vol_annual_first: float, vol_annual_last: float, margin_first: float, slope_above_vol_annual: float) -> dict:
    """The extrapolation in words with the numbers (annualised vols and margin as decimals; the slope in margin ratio per unit
    annualised vol, which is percentage points of margin per vol point):
    the ``extrapolation`` cells of a published rule table's first and last rows."""
    return {
        "below": f"below {100 * vol_annual_first:g}% annualised vol: flat at {100 * margin_first:.4f}% {BELOW_PHRASE}",
        "above": f"above {100 * vol_annual_last:g}% annualised vol: {ABOVE_PHRASE}, {slope_above_vol_annual:.4f} pp of margin per "
                 "vol point (within the cap)",
    }


def stated_extrapolation(statement) -> bool | None:
    """Whether a table's statement is this module's extrapolation: True if it is, None if the table states none, False
    if it states something else. ``statement``: a rule_table.json's ``extrapolation`` object, or the (first row, last
    row) ``extrapolation`` cells of a rule_table.csv."""
    if statement is None:
        return None
    if isinstance(statement, dict):
        return statement.get("below") == EXTRAPOLATION["below"] and statement.get("above") == EXTRAPOLATION["above"]
    below, above = ("" if s is None else str(s).strip() for s in statement)
    if not below and not above:
        return None
    return below.startswith("below ") and below.endswith(BELOW_PHRASE) and above.startswith("above ") and ABOVE_PHRASE in above
