"""The solver's answer: a frozen :class:`Schedule` with its certificate, segments and solver record.

Units: ``vol`` daily volatility (decimal), ``r`` daily variance, ``schedule``/``first_best`` margin ratios
(per unit notional), ``cap_increments`` margin-ratio increments between neighbouring states, objective
values in margin-ratio units per unit notional (expected cost per state, weighted by f(r | z)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from importlib import metadata

import numpy as np

from margin_design.units import SQRT_252
from margin_design.display import Displayable, yes_no
from margin_design.solvers.certificate import Certificate

SCHEMA_VERSION = 1


def package_version() -> str:
    try:
        return metadata.version("margin-design")
    except metadata.PackageNotFoundError:  # running from a source tree without installation
        return "0+unknown"


def _portfolio_block(cap) -> dict:
    """schedule.json's ``portfolio`` block; ``cap_vol`` is null when no cap is imposed (cap.kind = "none" or psi = 0)."""
    block = cap.portfolio.to_dict(cap.inventory_penalty)
    if cap.kind == "none":
        block["cap_vol"] = None
    return block


def _finite_or_none(a) -> list:
    return [float(v) if math.isfinite(v) else None for v in np.asarray(a, float)]


@dataclass(frozen=True, eq=False, repr=False)
class Schedule(Displayable):
    """The implementable rule g* on the grid, the first-best it departs from, and the proof of optimality.

    Returned by :func:`margin_design.solvers.solve`. ``schedule`` holds the margin ratio g*(r_i) in every state,
    ``segments`` the stretches where the rule tracks the first-best, rises at the cap (saturated), pools or sits
    on the floor M = 0, ``objective`` the expected cost J of g* and of the first-best, ``certificate`` the KKT
    certificate of optimality and ``solver`` what computed it. :meth:`summary` renders it as text,
    :meth:`to_frame` and :meth:`segments_frame` as pandas DataFrames, and :meth:`to_dict` as ``schedule.json``.
    In a target design (``objective.kind = "target"``) the "first-best" is the CCP's existing schedule that the
    rule is capped against (Appendix D.2).
    """

    problem: object = field(repr=False)
    schedule: np.ndarray = field(repr=False)
    codes: np.ndarray = field(repr=False)
    multipliers: np.ndarray = field(repr=False)   # G_k per link: > 0 cap binds, < 0 monotonicity binds, 0 free
    segments: tuple = field(repr=False)
    objective: dict = field(repr=False)
    certificate: Certificate = field(repr=False)
    solver: dict = field(repr=False)
    #: With ``[cap] updates = T > 1``: what the T-update stress test tested and found (``margin_design.audit.updates``).
    stress: dict | None = field(repr=False, default=None)

    # ------------------------------------------------------------ views of the problem
    @property
    def vol(self) -> np.ndarray:
        return self.problem.vol

    @property
    def r(self) -> np.ndarray:
        return self.problem.r

    @property
    def weights(self) -> np.ndarray:
        return self.problem.weights

    @property
    def first_best(self) -> np.ndarray:
        """M_fb per state (margin ratio): the first-best (34), or in a target design the existing schedule t."""
        return self.problem.first_best

    @property
    def is_target(self) -> bool:
        """True for a target design (``objective.kind = "target"``): ``first_best`` is then the existing schedule."""
        return self.problem.objective.kind == "target"

    @property
    def cap_increments(self) -> np.ndarray:
        return self.problem.u

    @property
    def price_of_manipulation_proofness(self) -> float:
        """J(g*) - J(M^fb) >= 0: expected cost of imposing the cap (objective units)."""
        return self.objective["value"] - self.objective["first_best_value"]

    def sensitivities(self, parameters: tuple[str, ...] | None = None) -> dict:
        """Derivatives of the schedule, J(g*), J(M_fb) and the price of manipulation-proofness with respect to
        alpha, c_eff, inventory_penalty, carry, liquidation_weight, participation_weight and prev_margin, by the
        implicit function theorem on the active set (:mod:`~margin_design.solvers.sensitivity`)."""
        from margin_design.solvers.sensitivity import sensitivities

        return sensitivities(self, parameters)

    # ------------------------------------------------------------ renderings
    def to_dict(self) -> dict:
        """JSON-ready dict with the keys of the public ``schedule.json`` contract."""
        p = self.problem
        return {
            "version": SCHEMA_VERSION,
            "package_version": package_version(),
            "units": {
                "vol": "daily volatility, decimal (annualised = sqrt(252) * vol)",
                "r": "variance of daily returns",
                "margin": "margin ratio, per unit notional",
                "weights": "probability mass of each state",
                "objective": "expected cost per unit notional",
            },
            "grid": {"r": [float(v) for v in p.r], "vol": [float(v) for v in p.vol]},
            "weights": [float(v) for v in p.weights],
            "first_best": [float(v) for v in p.first_best],
            "schedule": [float(v) for v in self.schedule],
            "cap_increments": _finite_or_none(p.u),
            "cap": {
                "kind": p.cap.kind,
                "input": p.cap.input,
                "slope_vol": p.cap.slope_vol if math.isfinite(p.cap.slope_vol) else None,
                "formula": p.cap.formula(),
                "scale": p.cap.scale,
                "updates": p.cap.updates,
                **({"stress_test": dict(self.stress)} if self.stress is not None else {}),
            },
            "multipliers": [float(v) for v in self.multipliers],
            "floor": {"level": 0.0, "active": self.floor_active, "multiplier": self.certificate.floor_multiplier},
            **({"portfolio": _portfolio_block(p.cap)} if p.cap.portfolio is not None else {}),
            "segments": [dict(s) for s in self.segments],
            "objective": dict(self.objective),
            "certificate": self.certificate.to_dict(),
            "solver": dict(self.solver),
            "config": p.config,
            "source_files": {k: {"path": v[0], "sha256": v[1]} for k, v in sorted(p.source_files.items())},
            "problem_sha256": p.fingerprint(),
        }

    @property
    def floor_active(self) -> bool:
        """Is the first margin on the floor g_1 >= 0 ((3), (34))?"""
        from margin_design.design.problem import MARGIN_FLOOR

        return bool(self.schedule[0] <= MARGIN_FLOOR)

    @property
    def link_kinds(self) -> list[str]:
        """The segment kind of every link (n - 1 names: tracking, saturated, pooling, floor)."""
        kinds = [""] * int(self.codes.size)
        for s in self.segments:
            kinds[s["start"] : s["end"]] = [s["kind"]] * (s["end"] - s["start"])
        return kinds

    def table_rows(self) -> list[dict]:
        """One row per grid point: vol, r, weight, first_best, schedule, segment kind of the link to its right."""
        kinds = self.link_kinds + [""]
        return [
            {
                "vol": float(v),
                "r": float(r),
                "weight": float(w),
                "first_best": float(fb),
                "schedule": float(x),
                "segment": k,
            }
            for v, r, w, fb, x, k in zip(self.vol, self.r, self.weights, self.first_best, self.schedule, kinds)
        ]

    def summary(self) -> str:
        """Plain-text summary: segments, objective and price of manipulation-proofness, certificate, solver."""
        ann = SQRT_252
        p = self.problem
        lines = [
            "Manipulation-proof margin schedule (Nicolai 2026, Section 6)",
            f"  states: {p.n}, daily vol {p.vol[0]:.4%} .. {p.vol[-1]:.4%} (annualised {ann * p.vol[0]:.2%} .. {ann * p.vol[-1]:.2%})",
            f"  cap: {p.cap.formula()}",
        ]
        if p.cap.portfolio is not None:
            pf = p.cap.portfolio
            alone = pf.single_contract_caps(p.cap.inventory_penalty)
            ratios = ", ".join(
                f"{name} {p.cap.slope_vol / c:.3g}x" if math.isfinite(c) and math.isfinite(p.cap.slope_vol) else f"{name} n/a"
                for name, c in zip(pf.assets, alone)
            )
            lines += [
                f"  portfolio ({pf.k} contracts: {', '.join(pf.assets)}): psi = max(0, -d'AB) = {pf.psi:.6g}, ||AB|| = {pf.price_pressure:.6g} "
                f"(price change per unit margin ratio); liquidation term lambda_L/2 ||AB||^2 (M - M_-)_+^2 (86)",
                f"    cap relative to each contract's single-contract cap (A_ii, B_i alone): {ratios}"
                + ("" if pf.psi > 0 else "; psi = 0: no cap from manipulation, cap increments are null"),
            ]
        lines += _stress_lines(p.cap, self.stress)
        lines.append("  segments (vol ranges annualised; margins as % of notional):")
        for s in self.segments:
            extra = ""
            if s["kind"] == "saturated":
                extra = f"M = {s['intercept']:+.6f} + {p.cap.slope_vol:.6g} * sqrt(r)"
            elif s["kind"] == "pooling":
                extra = f"M = {s['level']:.6%}  (43) residual {s['residual_43']:.1e}"
            elif s["kind"] == "floor":
                extra = f"M = 0 (the floor M >= 0 binds; multiplier {s['floor_multiplier']:.3g})"
            else:
                extra = f"max |M - M_fb| = {s['max_gap_to_first_best']:.2e}"
            lines.append(
                f"    {s['kind']:<9} vol {ann * s['vol_start']:7.2%} .. {ann * s['vol_end']:7.2%}"
                f"  M {self.schedule[s['start']]:.4%} .. {self.schedule[s['end']]:.4%}   {extra}"
            )
        o = self.objective
        c = self.certificate
        lines += [
            f"  objective J(g*) = {o['value']:.10g}; first-best J(M_fb) = {o['first_best_value']:.10g}",
            f"  price of manipulation-proofness J(g*) - J(M_fb) = {self.price_of_manipulation_proofness:.6g}"
            + (f" ({self.price_of_manipulation_proofness / o['first_best_value']:.2%} of the first-best cost)" if o["first_best_value"] else ""),
            "  terms: " + ", ".join(f"{k} {v:.6g}" for k, v in o["terms"].items()),
            f"  certificate: relative gap {c.relative_gap:.2e}, feasibility {c.feasibility:.1e}, balance {c.balance:.1e},"
            f" complementarity {c.complementarity:.1e} -> {'CERTIFIED' if c.ok else 'NOT CERTIFIED'}",
            f"  solver: {self.solver['method']} ({self.solver['backend']}), {self.solver['iterations']} Newton iterations,"
            f" {self.solver['seconds']:.3f} s",
        ]
        return "\n".join(lines)

    # ------------------------------------------------------------ pandas and Jupyter
    def state_regimes(self) -> list[str]:
        """The regime of every state: the kind of the link to its right (the last state takes the last link's kind)."""
        kinds = self.link_kinds
        return kinds + kinds[-1:] if kinds else ["tracking"] * int(self.schedule.size)

    def to_frame(self):
        """The schedule as a pandas DataFrame, one row per state of the grid, in grid order.

        Columns (all float64 except ``regime``):

        * ``vol_daily``: daily volatility sigma = sqrt(r) (decimal; 0.01 = 1% a day);
        * ``vol_annual``: annualised volatility sqrt(252) * vol_daily (decimal);
        * ``r``: the risk input, the variance of daily returns;
        * ``weight``: the state's probability mass f(r | z) (sums to 1);
        * ``first_best``: M_fb, the first-best margin ratio (34); in a target design the existing schedule t
          that the rule is capped against (``frame.attrs["first_best"]`` says which);
        * ``margin``: g*, the manipulation-proof margin ratio (per unit notional; 0.05 = 5% of notional);
        * ``regime``: categorical, the kind of the link from this state to the next (tracking, saturated,
          pooling, floor; the last state takes the kind of the link to its left);
        * ``multiplier``: G_k, the KKT multiplier of the link from this state to the next (objective units):
          > 0 where the cap binds, < 0 where monotonicity binds (pooling), 0 where the rule is free; NaN on the
          last state, which has no link to its right.

        ``frame.attrs`` records the units and, for the ``first_best`` column, whether it is the first-best or
        the existing schedule.
        """
        import pandas as pd

        from margin_design.solvers.segments import SEGMENT_KINDS

        vol = np.asarray(self.vol, float)
        frame = pd.DataFrame(
            {
                "vol_daily": vol,
                "vol_annual": SQRT_252 * vol,
                "r": np.asarray(self.r, float),
                "weight": np.asarray(self.weights, float),
                "first_best": np.asarray(self.first_best, float),
                "margin": np.asarray(self.schedule, float),
                "regime": pd.Categorical(self.state_regimes(), categories=SEGMENT_KINDS),
                "multiplier": np.append(np.asarray(self.multipliers, float), np.nan),
            }
        )
        frame.index.name = "state"
        frame.attrs["units"] = dict(STATE_FRAME_UNITS)
        frame.attrs["first_best"] = (
            "existing schedule t (target design, Appendix D.2)" if self.is_target else "first-best margin ratio M_fb (34)"
        )
        return frame

    def segments_frame(self):
        """The segments as a pandas DataFrame, one row per stretch, in grid order.

        Columns: ``kind`` (categorical: tracking, saturated, pooling, floor), ``start`` and ``end`` (indices of the
        first and last state of the stretch; neighbouring stretches share their boundary state), ``states``
        (number of states), ``vol_daily_start``/``vol_daily_end`` (daily vol, decimal),
        ``vol_annual_start``/``vol_annual_end`` (annualised vol, decimal), ``margin_start``/``margin_end`` (g* at
        the two ends, margin ratio), ``level`` (the margin of a pooling or floor stretch, (43); NaN otherwise) and
        ``intercept`` (a in M = a + K sigma on a saturated stretch, (42); NaN otherwise).
        """
        import pandas as pd

        from margin_design.solvers.segments import SEGMENT_KINDS

        ann = SQRT_252
        x = np.asarray(self.schedule, float)
        rows = [
            {
                "kind": s["kind"],
                "start": int(s["start"]),
                "end": int(s["end"]),
                "states": int(s["end"]) - int(s["start"]) + 1,
                "vol_daily_start": float(s["vol_start"]),
                "vol_daily_end": float(s["vol_end"]),
                "vol_annual_start": ann * float(s["vol_start"]),
                "vol_annual_end": ann * float(s["vol_end"]),
                "margin_start": float(x[s["start"]]),
                "margin_end": float(x[s["end"]]),
                "level": np.nan if s.get("level") is None else float(s["level"]),
                "intercept": np.nan if s.get("intercept") is None else float(s["intercept"]),
            }
            for s in self.segments
        ]
        frame = pd.DataFrame(rows, columns=list(SEGMENT_FRAME_COLUMNS))
        frame["kind"] = pd.Categorical(frame["kind"], categories=SEGMENT_KINDS)
        for col in ("start", "end", "states"):
            frame[col] = frame[col].astype("int64")
        return frame

    def segment_counts(self) -> dict[str, int]:
        """Number of segments of each kind that occurs, in the order tracking, saturated, pooling, floor."""
        from margin_design.solvers.segments import SEGMENT_KINDS

        counts = {k: sum(1 for s in self.segments if s["kind"] == k) for k in SEGMENT_KINDS}
        return {k: v for k, v in counts.items() if v}

    def _display(self) -> tuple[str, list[tuple[str, str]]]:
        p, o, c = self.problem, self.objective, self.certificate
        ann = SQRT_252
        fb = "existing schedule" if self.is_target else "first-best"
        price = self.price_of_manipulation_proofness
        rel = f" ({price / o['first_best_value']:.2%} of J({fb}))" if o["first_best_value"] else ""
        counts = ", ".join(f"{v} {k}" for k, v in self.segment_counts().items()) or "none"
        items = [
            ("states", f"{p.n}, daily vol {p.vol[0]:.4%} .. {p.vol[-1]:.4%} (annualised {ann * p.vol[0]:.2%} .. {ann * p.vol[-1]:.2%})"),
            ("margin g*", f"{self.schedule[0]:.4%} .. {self.schedule[-1]:.4%} of notional"),
            ("segments", counts),
            ("cap on dM/dsigma", f"{p.cap.slope_vol:.6g} per unit daily vol" if p.cap.kind != "none" and math.isfinite(p.cap.slope_vol) else "none"),
            ("J(g*)", f"{o['value']:.8g} (expected cost per unit notional)"),
            (f"J({fb})", f"{o['first_best_value']:.8g}"),
            ("price of manipulation-proofness", f"{price:.6g}{rel}"),
            ("certified", f"{yes_no(c.ok)} (relative gap {c.relative_gap:.2e})"),
            ("solver", f"{self.solver['method']} ({self.solver['backend']}), Newton iterations: {self.solver['iterations']}"),
        ]
        if self.stress is not None:
            items.insert(4, ("T-update cap", f"scale s = {self.stress['scale']:.4f} of the cap for T = {self.stress['updates']} updates"))
        if p.cap.portfolio is not None:
            pf = p.cap.portfolio
            items.insert(1, ("portfolio", f"{pf.k} contracts ({', '.join(pf.assets)}); psi {pf.psi:.6g}, ||AB|| {pf.price_pressure:.6g}"))
        title = "Manipulation-proof margin schedule" + (" (capped existing schedule)" if self.is_target else "")
        return title, items


def _stress_lines(cap, stress) -> list[str]:
    """The summary's lines on ``[cap] updates = T`` (none for the paper's two-period cap)."""
    if cap.updates == 1 and stress is None:
        return []
    if stress is None:
        return [f"  cap.updates = {cap.updates} NOT applied: this solve kept the cap at scale {cap.scale:g}; solve with "
                "margin_design.audit.solve_with_updates (what margin-design solve does) to scale it"]
    b1, b = stress["best_profit_scale_1"], stress["best_profit"]
    return [
        f"  T-update stress test (T = {stress['updates']}): largest scale of the cap s = {stress['scale']:.4f} (bisection to "
        f"{stress['resolution']:g}, {len(stress['trail'])} certified solves, {stress['seconds']:.1f} s)",
        f"    tested: {stress['strategies']}; {stress['states']}",
        f"    tolerance: {stress['tolerance_text']}; best profit at scale 1 "
        + ("n/a" if b1 is None else f"{b1:+.3e}") + f", at s {'n/a' if b is None else f'{b:+.3e}'}",
    ]


#: Units of the columns of :meth:`Schedule.to_frame` (also in ``frame.attrs["units"]``).
STATE_FRAME_UNITS = {
    "vol_daily": "daily volatility sqrt(r), decimal",
    "vol_annual": "annualised volatility sqrt(252 r), decimal",
    "r": "variance of daily returns",
    "weight": "probability mass of the state",
    "first_best": "margin ratio per unit notional (first-best M_fb, or the existing schedule in a target design)",
    "margin": "margin ratio per unit notional (g*)",
    "regime": "segment kind of the link to the next state",
    "multiplier": "KKT multiplier G_k of the link to the next state (objective units); NaN on the last state",
}
#: Columns of :meth:`Schedule.segments_frame`.
SEGMENT_FRAME_COLUMNS = (
    "kind", "start", "end", "states", "vol_daily_start", "vol_daily_end", "vol_annual_start", "vol_annual_end",
    "margin_start", "margin_end", "level", "intercept",
)
