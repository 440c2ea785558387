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


@dataclass(frozen=True, eq=False)
class Schedule:
    """The implementable rule g* on the grid, the first-best it departs from, and the proof of optimality."""

    problem: object = field(repr=False)
    schedule: np.ndarray = field(repr=False)
    codes: np.ndarray = field(repr=False)
    multipliers: np.ndarray = field(repr=False)   # G_k per link: > 0 cap binds, < 0 monotonicity binds, 0 free
    segments: tuple = field(repr=False)
    objective: dict = field(repr=False)
    certificate: Certificate = field(repr=False)
    solver: dict = field(repr=False)

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
        return self.problem.first_best

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
        ann = math.sqrt(252.0)
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
