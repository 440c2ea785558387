"""Compare two margin rules M = g(r) point by point: the comparison core of ``margin-design diff`` and of the report's
change log (Nicolai 2026; rules as in :mod:`.rules`).

Pure analysis, no solver: given two :class:`~.rules.Rule` objects, the daily vols at which a committee reads them
(the published points) and the vol range both cover, it returns the margins and their change at every point, the
largest increase and decrease (at the points and anywhere in the range), where each rule's slope breaks the
manipulation-proof cap K (16)-(18) on dM/dsigma, and each rule's jumps (Section 6.6). Which points to read and which
cap applies is decided by the caller (:mod:`margin_design.reports.diff`).

Units: vols are daily decimals (``vol_daily``) or annualised percentage points (``vol_annual_pct`` = 100 sqrt(252)
vol_daily); margins and changes are margin ratios (decimal of notional; 0.0025 = 0.25 percentage points); K is in
margin ratio per unit of daily vol, ``*_vol_annual`` slopes per unit of annualised vol (K / sqrt(252)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from margin_design.units import SQRT_252
from margin_design.errors import InputError

from .rules import Rule, TableRule, true_runs

__all__ = ["CAP_TOL", "CHANGE_TOL", "DENSE_POINTS", "RuleComparison", "compare_rules", "covered_range", "common_range", "published_vols",
           "reading_beyond_rows"]

#: An increment above K * Delta sigma by more than this (margin ratio; 1e-6 bp of notional) breaks the cap: tables read
#: back from 12-digit files reproduce a saturated stretch to about 1e-13.
CAP_TOL = 1e-10
#: Changes of margin at most this in size (margin ratio) are no change (float noise of a table read back).
CHANGE_TOL = 1e-12
#: Evaluation points (equally spaced in daily vol) across the range, besides every knot and breakpoint of both rules.
DENSE_POINTS = 2001
#: Evaluation nodes closer than this (relative) are one node. Tables print 12 significant digits, so a row read back and
#: the point typed for it (or a dense-grid node on it) differ by up to a few 1e-12 (relative): 1e-12 split one range of
#: cap breaks into five at such points (a formula against a published table).
NODE_RTOL = 1e-10


def covered_range(rule: Rule) -> tuple[float, float] | None:
    """The daily vols (decimal) a table rule states margins for, first to last row; None for a formula (every vol)."""
    if isinstance(rule.base, TableRule):
        return float(rule.base.vol[0]), float(rule.base.vol[-1])
    return None


def reading_beyond_rows(rule: Rule) -> str | None:
    """How a table rule is read beyond its first and last row, in words (flat, or as published when the table states
    the published extrapolation; :func:`~.rules.table_rule`); None for a formula (defined everywhere)."""
    if isinstance(rule.base, TableRule):
        return rule.base.extrapolation_text
    return None


def published_vols(rule: Rule) -> np.ndarray | None:
    """The daily vols of the rows a rule table publishes (None for a formula or a solver's grid)."""
    info = rule.info
    if info is None or info.published_vol is None:
        return None
    return np.asarray(info.published_vol, dtype=float)


def common_range(old: Rule, new: Rule) -> tuple[float, float] | None:
    """The daily-vol range both rules state margins for (None if both are formulas); InputError if two tables do not overlap."""
    ranges = [c for c in (covered_range(old), covered_range(new)) if c is not None]
    if not ranges:
        return None
    lo, hi = max(a for a, _ in ranges), min(b for _, b in ranges)
    if lo >= hi:
        (a0, b0), (a1, b1) = covered_range(old), covered_range(new)
        raise InputError(
            f"OLD covers daily vol {a0:.6g} to {b0:.6g} and NEW {a1:.6g} to {b1:.6g}, which do not overlap; "
            "give --vols (annualised percentage points) to compare them at chosen vols."
        )
    return lo, hi


@dataclass(frozen=True, eq=False)
class RuleComparison:
    """The change from ``old`` to ``new`` at the points and across ``[vol_lo, vol_hi]`` (daily vols)."""

    old: Rule = field(repr=False)
    new: Rule = field(repr=False)
    vol_daily: np.ndarray = field(repr=False)       # the points (daily vol, decimal)
    labels: tuple                                    # the points as annualised percentage points, as published / typed
    margin_old: np.ndarray = field(repr=False)
    margin_new: np.ndarray = field(repr=False)
    vol_lo: float
    vol_hi: float
    cap_vol: float | None                            # K on dM/dsigma (per unit daily vol); None: not checked; inf: uncapped
    cap_source: str
    breaks: dict = field(repr=False)                 # {"old": [range dicts], "new": [...]}
    jumps: dict = field(repr=False)                  # {"old": [jump dicts], "new": [...]}
    anywhere: dict = field(repr=False)               # largest increase / decrease across the range

    @property
    def change(self) -> np.ndarray:
        """New minus old margin at each point (margin ratio)."""
        return self.margin_new - self.margin_old

    @property
    def vol_annual_pct(self) -> np.ndarray:
        return 100.0 * SQRT_252 * self.vol_daily

    def extrapolated(self, which: str) -> np.ndarray:
        """Points outside the rows of a table rule ``which`` ('old' / 'new'), read there as :func:`reading_beyond_rows` says."""
        c = covered_range(self.old if which == "old" else self.new)
        if c is None:
            return np.zeros(self.vol_daily.size, dtype=bool)
        return (self.vol_daily < c[0] * (1 - 1e-12)) | (self.vol_daily > c[1] * (1 + 1e-12))

    def _extreme(self, sign: int) -> dict | None:
        d = sign * self.change
        if d.size == 0 or float(d.max()) <= CHANGE_TOL:
            return None
        i = int(np.argmax(d))
        return self._point(i)

    def _point(self, i: int) -> dict:
        return {"vol_annual_pct": float(self.labels[i]), "vol_daily": float(self.vol_daily[i]), "margin_old": float(self.margin_old[i]),
                "margin_new": float(self.margin_new[i]), "change": float(self.change[i]),
                "old_extrapolated": bool(self.extrapolated("old")[i]), "new_extrapolated": bool(self.extrapolated("new")[i])}

    @property
    def largest_increase(self) -> dict | None:
        """The point with the largest rise new - old > 0 (first of equals), or None if no point rises."""
        return self._extreme(+1)

    @property
    def largest_decrease(self) -> dict | None:
        """The point with the largest fall (most negative change), or None if no point falls."""
        return self._extreme(-1)

    def rows(self) -> list[dict]:
        """One dict per point (machine-readable decimals; the columns of diff.csv)."""
        ro, rn = (self.old.slope_vol(self.vol_daily, "right"), self.new.slope_vol(self.vol_daily, "right"))
        xo, xn = self.extrapolated("old"), self.extrapolated("new")
        out = []
        for i in range(self.vol_daily.size):
            out.append({
                "vol_annual_pct": float(self.labels[i]),
                "vol_daily": float(self.vol_daily[i]),
                "margin_old": float(self.margin_old[i]),
                "margin_new": float(self.margin_new[i]),
                "change": float(self.change[i]),
                "slope_old_vol_annual": float(ro[i]) / SQRT_252,
                "slope_new_vol_annual": float(rn[i]) / SQRT_252,
                "old_extrapolated": bool(xo[i]),
                "new_extrapolated": bool(xn[i]),
            })
        return out


def _nodes(old: Rule, new: Rule, lo: float, hi: float, extra=()) -> np.ndarray:
    """Daily vols where both rules are evaluated across [lo, hi]: a dense grid, every knot, every breakpoint bracket."""
    pts = [np.linspace(lo, hi, DENSE_POINTS), np.asarray(extra, float)]
    for rule in (old, new):
        if isinstance(rule.base, TableRule):
            pts.append(rule.base.vol)
        for b in rule.breakpoints(lo, hi):
            pts.append(np.sqrt([b.r_lo, b.r_hi]))
    v = np.unique(np.concatenate(pts))
    v = v[(v >= lo) & (v <= hi)]
    # nodes within float noise of the previous one (a typed point next to a grid point) would make empty intervals that
    # split a range of cap breaks in two: keep the last of each such cluster (an exact threshold or the upper end of a
    # jump's bracket, so the interval ending there holds the jump)
    keep = np.concatenate([np.diff(v) > NODE_RTOL * v[1:], [True]])
    return v[keep]


def _breaks(rule: Rule, nodes: np.ndarray, m: np.ndarray, cap_vol: float, jumps: list) -> list[dict]:
    """Ranges of daily vol where the rule's increments exceed K * Delta sigma (+ CAP_TOL), merged, with the steepest
    slope in them (per unit annualised vol) and whether a jump lies inside."""
    if cap_vol is None or not math.isfinite(cap_vol):
        return []
    dv = np.diff(nodes)
    inc = np.diff(m)
    over = inc - cap_vol * dv > CAP_TOL
    out: list[dict] = []
    for i, j in true_runs(over):
        a, b = float(nodes[i]), float(nodes[j + 1])
        with np.errstate(divide="ignore"):
            slope = float(np.max(inc[i : j + 1] / dv[i : j + 1]))
        has_jump = any(a * (1 - 2 * NODE_RTOL) <= jp["vol_daily"] <= b * (1 + 2 * NODE_RTOL) for jp in jumps)
        out.append({
            "vol_daily_from": a, "vol_daily_to": b,
            "vol_annual_pct_from": 100.0 * SQRT_252 * a, "vol_annual_pct_to": 100.0 * SQRT_252 * b,
            "max_slope_vol_annual": slope / SQRT_252, "cap_vol_annual": cap_vol / SQRT_252,
            "jump": has_jump,
        })
    return out


def _jumps(rule: Rule, lo: float, hi: float) -> list[dict]:
    return [
        {"vol_daily": b.vol, "vol_annual_pct": 100.0 * SQRT_252 * b.vol, "margin_below": b.margin_below,
         "margin_above": b.margin_above, "jump": b.jump, "source": b.source}
        for b in rule.discontinuities(lo, hi)
    ]


def compare_rules(old: Rule, new: Rule, vol_daily, labels=None, *, vol_range: tuple[float, float] | None = None,
                  cap_vol: float | None = None, cap_source: str = "") -> RuleComparison:
    """Compare ``old`` and ``new`` at the daily vols ``vol_daily`` (labels: their annualised percentage points as
    text) and across ``vol_range`` (default: the points' range, widened to the points).

    ``cap_vol``: the slope cap K on dM/dsigma (margin ratio per unit daily vol) to check both rules against, None for
    no check. Margins are the right limits (rules are read right-continuous at a jump).
    """
    v = np.asarray(vol_daily, dtype=float)
    if v.ndim != 1 or v.size == 0:
        raise InputError("the comparison needs at least one vol point.")
    if labels is None:
        labels = tuple(f"{x:.6g}" for x in 100.0 * SQRT_252 * v)
    lo, hi = (float(v[0]), float(v[-1])) if vol_range is None else vol_range
    lo, hi = min(lo, float(v.min())), max(hi, float(v.max()))
    if hi <= lo:  # one point and no range: a degenerate range around it
        hi = lo * (1 + 1e-9)
    r = v**2
    mo, mn = old.margin(r), new.margin(r)
    nodes = _nodes(old, new, lo, hi, v)
    rn = nodes**2
    Mo, Mn = old.margin(rn), new.margin(rn)
    d = Mn - Mo
    anywhere = {}
    for key, sign in (("largest_increase", 1), ("largest_decrease", -1)):
        k = int(np.argmax(sign * d))
        anywhere[key] = None if float(sign * d[k]) <= CHANGE_TOL else {
            "vol_daily": float(nodes[k]), "vol_annual_pct": 100.0 * SQRT_252 * float(nodes[k]),
            "margin_old": float(Mo[k]), "margin_new": float(Mn[k]), "change": float(d[k])}
    jumps = {"old": _jumps(old, lo, hi), "new": _jumps(new, lo, hi)}
    breaks = {"old": _breaks(old, nodes, Mo, cap_vol, jumps["old"]), "new": _breaks(new, nodes, Mn, cap_vol, jumps["new"])}
    return RuleComparison(
        old=old, new=new, vol_daily=v, labels=tuple(labels), margin_old=np.asarray(mo, float), margin_new=np.asarray(mn, float),
        vol_lo=lo, vol_hi=hi, cap_vol=cap_vol, cap_source=cap_source, breaks=breaks, jumps=jumps, anywhere=anywhere,
    )
