"""The rule a CCP publishes: margins at round annualised vols, rounded to a tick, certified and costed.

    rule = publish_at_points(data, parse_vol_points("8:60:1"), tick=0.0005, problem=problem)

**Reading.** The published rule is a table of points (vol_k, m_k), read as linear in volatility between
points (daily or annualised vol: one is sqrt(252) times the other), with this extrapolation
(:data:`EXTRAPOLATION`):

* below the first point the margin stays flat at the first published margin m_0;
* above the last point it continues at the slope of the last published interval,
  (m_N - m_{N-1}) / (vol_N - vol_{N-1}).

(The definition, :func:`evaluate`, lives in :mod:`margin_design.published_reading`, so that ``audit`` and ``diff`` read a
published rule table back with this very function.)

Why, from a risk committee's chair: beyond the table the rule must still be defined, monotone, M >= 0 and
within the cap, and it must not leave stress states short of cover. Above the last point losses are largest:
a flat continuation would freeze margin exactly where coverage matters most, and a continuation at the
cap K would charge more than the solved rule ever does where it tracks a first-best flatter than the cap.
The last published slope is the solved rule's own trend at the top of the table, it is within the cap because
the last interval is (checked below), so the continuation is manipulation-proof and keeps coverage rising in
stress. Below the first point states are calm: extrapolating the first slope downwards would lower margins
below anything computed (and could reach M < 0); holding m_0 is a floor, slope 0, trivially within the cap
and >= 0. A committee wanting more cover in the tail publishes more points.

**Points outside the solved grid are refused** (one sentence naming the grid's range): g* and the objective
are defined on the grid only, so neither the tolerance nor the cost could be stated there.

**Certificate.** The published values start from g* interpolated linearly at the points; g* is feasible on
the grid, so its interpolant rises by at most K (vol_j - vol_i) between any two points (the exact integral of
the cap, :mod:`margin_design.reports.knots`), and :func:`~margin_design.reports.knots.round_knots` puts them on
the tick lattice keeping 0 <= m_{k+1} - m_k <= K (vol_{k+1} - vol_k) with the smallest largest error.
:func:`certify` then checks, without trusting that argument: every interval between points (monotone and
within the cap), the two extrapolation pieces (slope in [0, K]), M >= 0, and, as a second route, the rule
evaluated on the union of the points and the solver grid (a piecewise-linear function satisfies a slope
bound everywhere iff it does between consecutive breakpoints, and the union holds all of them).

**Tolerance.** max |published - g*| over the solver grid (extrapolation pieces included). Above the
tolerance the report warns (it does not refuse: a committee may accept a coarser table knowingly); the
number, the tolerance and the verdict are in every output. Default tolerance: the larger of 1 bp and one tick.

**Cost.** J(published) - J(g*), with J the design objective (33) evaluated by
:meth:`margin_design.design.problem.Problem.value` at the published rule interpolated onto the solver grid,
printed next to the price of manipulation-proofness J(g*) - J(M_fb). It is >= 0 up to the solver's duality
gap because the published rule on the grid is feasible for (41). From a ``schedule.json`` the problem is
rebuilt from the stored configuration only when it needs no data file and its fingerprint matches
``problem_sha256``; otherwise the cost is stated as not available, with the reason.

**Rule ID.** sha256 of canonical JSON of the published points, margins, tick, interpolation, extrapolation
and the parameters (the validated design configuration, the data files' sha256 and the cap K). Same inputs,
same ID; any changed margin or parameter, another ID. The version label is not part of the ID (it names a
rule; it does not change it).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from dataclasses import dataclass, field

import numpy as np

from margin_design.errors import InputError
from margin_design.published_reading import EXTRAPOLATION, INTERPOLATION, evaluate, extrapolation_row_texts, extrapolation_slopes
from margin_design.reports.knots import CAP_CHECK_TOL, DEFAULT_TOLERANCE, RuleCheck, Rounding, check_rule, knot_caps, round_knots
from margin_design.reports.rule_data import SQRT_252, RuleData

#: Relative slack when comparing an extrapolation slope with K (a slope is a quotient: ulps, not margin).
SLOPE_RTOL = 1e-12
#: Relative disagreement accepted between J(g*) recomputed here and the value stored with the schedule.
J_RTOL = 1e-9
ID_PREFIX = 12
MAX_LABEL = 200


def default_tolerance(tick: float | None) -> float:
    """The larger of 1 bp and one tick (margin ratio)."""
    return max(DEFAULT_TOLERANCE, tick or 0.0)


def check_version_label(label: str | None) -> str | None:
    """A free-text label (data, escaped wherever rendered): printable, one line, at most :data:`MAX_LABEL` characters."""
    if label is None:
        return None
    s = str(label)
    if not s.strip():
        raise InputError("--version-label is empty; give a short free text such as 'v2026.07' or omit it.")
    if len(s) > MAX_LABEL or any(not ch.isprintable() for ch in s):
        raise InputError(f"--version-label must be one line of at most {MAX_LABEL} printable characters.")
    return s


# ---------------------------------------------------------------------- the rule as a function


@dataclass(frozen=True)
class Certificate:
    """The published rule is monotone, >= 0 and within the cap on every interval and extrapolation piece."""

    intervals: RuleCheck             # between consecutive published points
    slope_below: float               # margin ratio per unit daily vol
    slope_above: float
    extrapolation_ok: bool           # both pieces have slope in [0, K]
    nonnegative: bool                # m_0 >= 0 (with monotonicity and a flat floor below: M >= 0 everywhere)
    dense: RuleCheck                 # second route: the rule on the union of points and grid

    @property
    def ok(self) -> bool:
        return self.intervals.ok and self.extrapolation_ok and self.nonnegative and self.dense.ok

    def to_dict(self) -> dict:
        return {
            "ok": self.ok,
            "intervals": self.intervals.to_dict(),
            "extrapolation": {"slope_below_vol_annual": self.slope_below / SQRT_252, "slope_above_vol_annual": self.slope_above / SQRT_252,
                              "within_cap_and_monotone": self.extrapolation_ok},
            "nonnegative": self.nonnegative,
            "dense_check_on_points_and_grid": self.dense.to_dict(),
        }


def certify(vol_points, margin, slope_vol: float, grid_vol) -> Certificate:
    """Check every interval, both extrapolation pieces, M >= 0, and the rule evaluated on points + grid."""
    vp = np.asarray(vol_points, float)
    m = np.asarray(margin, float)
    intervals = check_rule(vp, m, slope_vol)
    below, above = extrapolation_slopes(vp, m)
    cap = slope_vol * (1.0 + SLOPE_RTOL) if math.isfinite(slope_vol) else math.inf
    extra_ok = all(0.0 <= s <= cap for s in (below, above))
    xs = np.union1d(vp, np.asarray(grid_vol, float))
    dense = check_rule(xs, evaluate(vp, m, xs), slope_vol)
    return Certificate(intervals=intervals, slope_below=below, slope_above=above, extrapolation_ok=extra_ok,
                       nonnegative=bool(m[0] >= -CAP_CHECK_TOL), dense=dense)


# ---------------------------------------------------------------------- cost


def problem_for(data: RuleData, problem=None):
    """(problem, None) to evaluate J, or (None, reason) when it cannot be rebuilt from the schedule alone."""
    if problem is not None:
        return problem, None
    if data.source_files:
        roles = ", ".join(sorted(data.source_files))
        return None, (f"the schedule.json does not hold the data file(s) its objective needs ({roles}); "
                      "run report on the TOML configuration to state the cost")
    from margin_design.design import problem_from_dict

    try:
        rebuilt = problem_from_dict(copy.deepcopy(data.config), validated=True)
    except Exception as exc:  # a config from another version of the package: say so rather than guess
        return None, f"the stored configuration cannot be rebuilt into the design problem ({str(exc).rstrip('.')})"
    if data.problem_sha256 is None or rebuilt.fingerprint() != data.problem_sha256:
        return None, "the design problem rebuilt from the stored configuration differs from the solved one (problem_sha256)"
    return rebuilt, None


def rule_cost(problem, data: RuleData, published_on_grid) -> dict:
    """J(published) - J(g*) and the price of manipulation-proofness J(g*) - J(M_fb), objective units (33)."""
    j_pub = problem.value(np.asarray(published_on_grid, float))
    j_opt = problem.value(data.schedule)
    j_fb = problem.value(data.first_best)
    stored = float(data.objective["value"])
    if abs(j_opt - stored) > J_RTOL * max(abs(stored), 1e-300):
        raise InputError(f"J(g*) = {j_opt!r} recomputed for the published rule's cost differs from the stored {stored!r}; "
                         "the schedule does not belong to this problem.")
    return {
        "available": True,
        "J_published": j_pub,
        "J_optimal": j_opt,
        "J_first_best": j_fb,
        "cost_of_publishing": j_pub - j_opt,
        "price_of_manipulation_proofness": j_opt - j_fb,
        "units": "expected cost per unit notional (objective (33)); x 1e4 for bp of notional",
        "evaluated_on": "the solver grid, published rule interpolated (and extrapolated) onto it",
    }


# ---------------------------------------------------------------------- rule ID


def rule_id(data: RuleData, vol_points, margin, tick: float | None, point_labels=None) -> str:
    """sha256 (hex) of the published rule and its parameters as canonical JSON (module docstring)."""
    payload = {
        "schema": "margin-design published rule 1",
        "points_vol_annual_pct": list(point_labels) if point_labels is not None else [repr(float(v)) for v in 100 * SQRT_252 * np.asarray(vol_points, float)],
        "margins": [repr(float(v)) for v in margin],
        "tick": None if tick is None else repr(float(tick)),
        "interpolation": INTERPOLATION,
        "extrapolation": EXTRAPOLATION,
        "parameters": {
            "config": data.config,
            "data_files_sha256": {k: (v.get("sha256") if isinstance(v, dict) else v) for k, v in sorted(data.source_files.items())},
            "cap_slope_vol": None if not math.isfinite(data.slope_vol) else repr(float(data.slope_vol)),
        },
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ---------------------------------------------------------------------- the published rule


@dataclass(frozen=True, eq=False)
class PublishedRule:
    """The rule as published: points (daily vol and annualised percentage labels), margins, checks, cost, ID."""

    form: str                                   # "published vols" or "knots"
    vol: np.ndarray = field(repr=False)         # daily vol of each point (decimal)
    labels: tuple = field(repr=False)           # annualised vol of each point, percentage points as typed
    margin: np.ndarray = field(repr=False)      # published margin ratio at each point
    optimal: np.ndarray = field(repr=False)     # g* interpolated at each point (before rounding)
    tick: float | None
    rounding: Rounding | None
    certificate: Certificate
    max_error: float                            # max over the solver grid of |published - g*|
    max_error_vol: float                        # daily vol of the grid point where it occurs
    tolerance: float
    cost: dict = field(repr=False)
    rule_id: str
    version_label: str | None = None

    @property
    def within_tolerance(self) -> bool:
        return self.max_error <= self.tolerance

    @property
    def short_id(self) -> str:
        return self.rule_id[:ID_PREFIX]

    @property
    def extrapolation_text(self) -> dict:
        """The extrapolation in words with the numbers (annualised vol, pp of margin per vol point)."""
        return extrapolation_row_texts(float(SQRT_252 * self.vol[0]), float(SQRT_252 * self.vol[-1]), float(self.margin[0]),
                                       self.certificate.slope_above / SQRT_252)

    def to_dict(self) -> dict:
        return {
            "form": self.form,
            "rule_id": self.rule_id,
            "version_label": self.version_label,
            "interpolation": INTERPOLATION,
            "extrapolation": dict(EXTRAPOLATION, below_text=self.extrapolation_text["below"], above_text=self.extrapolation_text["above"]),
            "points": len(self.labels),
            "tick": self.tick,
            "certificate": self.certificate.to_dict(),
            "max_abs_error_vs_optimal": self.max_error,
            "max_abs_error_at_vol_annual": self.max_error_vol * SQRT_252,
            "tolerance": self.tolerance,
            "within_tolerance": self.within_tolerance,
            "cost": dict(self.cost),
        }


def _finish(form, data, vol, labels, x, tick, tolerance, problem, version_label) -> PublishedRule:
    rounding = None
    margin = np.asarray(x, float)
    if tick is not None:
        rounding = round_knots(x, knot_caps(vol, data.slope_vol), tick)
        margin = rounding.margin
    cert = certify(vol, margin, data.slope_vol, data.vol)
    on_grid = evaluate(vol, margin, data.vol)
    gap = np.abs(on_grid - data.schedule)
    err, at = float(np.max(gap)), float(data.vol[int(np.argmax(gap))])
    prob, reason = problem_for(data, problem)
    cost = rule_cost(prob, data, on_grid) if prob is not None else {"available": False, "reason": reason}
    return PublishedRule(
        form=form, vol=np.asarray(vol, float), labels=tuple(labels), margin=np.asarray(margin, float), optimal=np.asarray(x, float),
        tick=tick, rounding=rounding, certificate=cert, max_error=err, max_error_vol=at,
        tolerance=default_tolerance(tick) if tolerance is None else float(tolerance), cost=cost,
        rule_id=rule_id(data, vol, margin, tick, labels), version_label=check_version_label(version_label),
    )


def publish_at_points(data: RuleData, points, *, tick: float | None = None, tolerance: float | None = None, problem=None,
                      version_label: str | None = None) -> PublishedRule:
    """The rule at the published points (a :class:`~margin_design.reports.vol_points.VolPoints`): g* interpolated
    linearly in vol, rounded to ``tick`` (cap-preserving minimax), certified and costed (module docstring)."""
    vol = points.daily
    labels = points.labels()
    if vol.size < 2:
        raise InputError("--published-vols needs at least two points (a rule is read as linear between them).")
    lo, hi = float(data.vol_annual[0]), float(data.vol_annual[-1])
    a = points.annual_pct_array / 100.0
    if a[0] < lo * (1 - 1e-12) or a[-1] > hi * (1 + 1e-12):
        raise InputError(
            f"--published-vols runs from {labels[0]}% to {labels[-1]}% annualised but the solved grid covers "
            f"{100 * lo:.4g}% to {100 * hi:.4g}% only; publish points inside it (g* and its cost exist only on the grid)."
        )
    vol = np.clip(vol, data.vol[0], data.vol[-1])   # an end point equal to the grid's end up to float rounding
    x = np.interp(vol, data.vol, data.schedule)
    return _finish("published vols", data, vol, labels, x, tick, tolerance, problem, version_label)


def publish_knots(data: RuleData, knots, margin, *, tick: float | None = None, tolerance: float | None = None, problem=None,
                  version_label: str | None = None) -> PublishedRule:
    """The knot table as the published rule (no --published-vols): knots are grid points, margins as given
    (already rounded by the report when a tick is set, so no second rounding here)."""
    knots = np.asarray(knots, int)
    vol = data.vol[knots]
    labels = [f"{100 * SQRT_252 * v:.12g}" for v in vol]
    rule = _finish("knots", data, vol, labels, np.asarray(margin, float), None, tolerance, problem, version_label)
    return PublishedRule(**{**rule.__dict__, "tick": tick, "optimal": data.schedule[knots],
                            "rule_id": rule_id(data, vol, margin, tick, labels),
                            "tolerance": default_tolerance(tick) if tolerance is None else float(tolerance)})
