"""What a report needs from a solved schedule, read from the ``schedule.json`` contract.

A report can start from a fresh :class:`~margin_design.solvers.result.Schedule` or from a saved
``schedule.json`` (``margin-design solve --out``). Both routes go through the same JSON dict: a fresh
result is serialised with :func:`~margin_design.reports.schedule_files.schedule_json_text` and parsed back
(JSON floats round-trip exactly), so the two routes give identical tables. Nothing is re-solved.

Units (as in ``schedule.json``): ``vol`` daily volatility (decimal), ``r`` daily variance, margins are
margin ratios per unit notional, ``u`` the cap increments K (vol_{i+1} - vol_i) (inf where uncapped),
``multipliers`` G_k per link (objective units: expected cost per unit notional), ``slope_vol`` the cap K on
dM/dsigma (margin ratio per unit of daily vol).

Portfolio designs (a ``[portfolio]`` section; Nicolai 2026, Sections 5, 6.5, D.5-D.6): the risk input r is the
variance of the margined portfolio's daily return, ``config["market"]`` has no alpha or c_eff, and the
``portfolio`` block of ``schedule.json`` (A, B, d, s_f, psi, ||AB||, the cap (88)) is kept in
:attr:`RuleData.portfolio` after a consistency check: psi, ||AB|| and the caps are recomputed from A, B, d and s_f
(:class:`~margin_design.design.portfolio.PortfolioSpec`) and must agree with the stored numbers.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from margin_design.units import SQRT_252
from margin_design.errors import InputError
from margin_design.reports.schedule_files import schedule_json_text

#: Largest violation of M >= 0, monotonicity or the cap (margin ratio) a stored schedule may show: the solver's
#: own feasibility target (:class:`~margin_design.solvers.certificate.Certificate`) for margins of order 1.
FEASIBILITY_TOL = 1e-12
SCHEMA_VERSION = 1
#: Relative disagreement accepted between the stored portfolio numbers (psi, ||AB||, the caps) and those recomputed
#: from the stored A, B, d, s_f: the same float64 formulas give the same numbers up to a few ulps.
PORTFOLIO_RTOL = 1e-12
PORTFOLIO_KEYS = ("assets", "impact", "liquidation", "trigger", "sensitivity", "source", "psi", "price_pressure", "cap_vol",
                  "cap_directions", "branches", "single_contract_cap_vol")
KIND_CODES = {"tracking": 0, "pooling": 1, "saturated": 2, "floor": 1}  # as in margin_design.solvers.chain (floor: pooled at M = 0)
REQUIRED_KEYS = (
    "version", "grid", "weights", "first_best", "schedule", "cap_increments", "cap", "multipliers",
    "segments", "objective", "certificate", "solver", "config",
)


@dataclass(frozen=True, eq=False)
class RuleData:
    """A solved schedule as plain arrays and dicts (the ``schedule.json`` contract), ready for reporting."""

    vol: np.ndarray = field(repr=False)
    weights: np.ndarray = field(repr=False)
    first_best: np.ndarray = field(repr=False)
    schedule: np.ndarray = field(repr=False)
    u: np.ndarray = field(repr=False)
    multipliers: np.ndarray = field(repr=False)
    codes: np.ndarray = field(repr=False)
    segments: tuple = field(repr=False)
    slope_vol: float
    cap: dict = field(repr=False)
    objective: dict = field(repr=False)
    certificate: dict = field(repr=False)
    solver: dict = field(repr=False)
    config: dict = field(repr=False)
    source_files: dict = field(repr=False)
    problem_sha256: str | None = None
    package_version: str | None = None
    schedule_json: str = field(default="", repr=False)   # the exact text written as the report's schedule.json
    portfolio: dict | None = field(default=None, repr=False)   # the schedule.json ``portfolio`` block, or None

    # ------------------------------------------------------------ derived views
    @property
    def n(self) -> int:
        return int(self.vol.size)

    @property
    def r(self) -> np.ndarray:
        """Daily variance of each state."""
        return self.vol**2

    @property
    def vol_annual(self) -> np.ndarray:
        """Annualised volatility sqrt(252) * vol (decimal)."""
        return SQRT_252 * self.vol

    @property
    def slope_vol_annual(self) -> float:
        """The cap on dm/dsigma_ann, K / sqrt(252), per (74) (inf if uncapped)."""
        return self.slope_vol / SQRT_252

    @property
    def is_portfolio(self) -> bool:
        """Is this a portfolio design (a ``[portfolio]`` section: the cap (88), the liquidation term (86))?"""
        return self.portfolio is not None

    @property
    def alpha(self) -> float | None:
        """market.alpha, the price impact per unit of ADV traded; None for a portfolio design (A replaces it)."""
        v = self.config["market"].get("alpha")
        return None if v is None else float(v)

    @property
    def c_eff(self) -> float | None:
        """market.c_eff, the forced liquidation in ADV per unit margin ratio; None for a portfolio design (B replaces it)."""
        v = self.config["market"].get("c_eff")
        return None if v is None else float(v)

    @property
    def inventory_penalty(self) -> float:
        """market.inventory_penalty kappa (price units per unit of ADV held, (11))."""
        return float(self.config["market"].get("inventory_penalty") or 0.0)

    @property
    def liquidation_scale(self) -> float:
        """The scale inside the liquidation term: c_eff (ADV per unit margin ratio, (32)) for one contract, ||AB||_2
        (price change per unit margin ratio, (86)) for a portfolio."""
        return float(self.portfolio["price_pressure"]) if self.is_portfolio else float(self.c_eff)

    @property
    def trigger_gain_scale(self) -> float:
        """Price move per unit trigger per unit margin jump of a threshold crossing (Section 6.6): alpha c_eff for one
        contract; for a portfolio ||AB||_2, the largest harvest v'AB of a unit trade vector v (Cauchy-Schwarz),
        which is alpha c_eff again for a one-contract portfolio."""
        return float(self.portfolio["price_pressure"]) if self.is_portfolio else self.alpha * self.c_eff

    @property
    def objective_kind(self) -> str:
        return str(self.config["objective"]["kind"])

    @property
    def certificate_ok(self) -> bool:
        """The solver's own acceptance test (:attr:`Certificate.ok`) applied to the stored residuals."""
        from margin_design.solvers.certificate import Certificate

        keys = ("feasibility", "balance", "complementarity", "duality_gap", "relative_gap", "objective")
        return Certificate(**{k: float(self.certificate[k]) for k in keys}).ok

    @property
    def link_kinds(self) -> list[str]:
        """The segment kind of every link, n - 1 names (tracking, saturated, pooling, floor)."""
        kinds = [""] * (self.n - 1)
        for s in self.segments:
            kinds[int(s["start"]) : int(s["end"])] = [s["kind"]] * (int(s["end"]) - int(s["start"]))
        return kinds

    def config_sha256(self) -> str:
        """SHA-256 of the validated configuration as canonical JSON (sorted keys, no spaces)."""
        text = json.dumps(self.config, sort_keys=True, separators=(",", ":"), allow_nan=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    # ------------------------------------------------------------ constructors
    @classmethod
    def from_schedule(cls, result) -> "RuleData":
        """From a solver result: serialise with the ``solve`` serializer and read the JSON back."""
        text = schedule_json_text(result)
        return cls.from_dict(json.loads(text), text=text, name="the solver result")

    @classmethod
    def from_dict(cls, d: dict, *, text: str | None = None, name: str = "schedule.json") -> "RuleData":
        """From a parsed ``schedule.json`` dict; InputError naming the key if it is not one."""
        if not isinstance(d, dict):
            raise InputError(f"{name} does not hold a JSON object (got {type(d).__name__}).")
        for key in REQUIRED_KEYS:
            if key not in d:
                raise InputError(f"{name} has no key {key!r}; is it a schedule.json written by margin-design solve?")
        if d["version"] != SCHEMA_VERSION:
            raise InputError(f"{name} has version = {d['version']!r}; this report reads version {SCHEMA_VERSION}.")
        try:
            vol = _array(d["grid"]["vol"])
            weights = _array(d["weights"])
            fb = _array(d["first_best"])
            x = _array(d["schedule"])
            u = _array(d["cap_increments"], none=math.inf)
            G = _array(d["multipliers"])
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{name} has a malformed array ({exc}).") from None
        n = vol.size
        if n < 2 or not (weights.size == fb.size == x.size == n and u.size == G.size == n - 1):
            raise InputError(f"{name} has arrays of inconsistent lengths (grid.vol has {n} points).")
        if not np.all(np.isfinite(x)) or not np.all(np.diff(vol) > 0):
            raise InputError(f"{name} has a non-finite schedule or a grid that is not increasing.")
        _check_feasible(name, vol, x, u)
        segments = tuple(dict(s) for s in d["segments"])
        codes = np.full(n - 1, -1, dtype=np.int8)
        for s in segments:
            if s.get("kind") not in KIND_CODES:
                raise InputError(f"{name} has a segment of kind {s.get('kind')!r}; expected tracking, saturated, pooling or floor.")
            codes[int(s["start"]) : int(s["end"])] = KIND_CODES[s["kind"]]
        if np.any(codes < 0):
            raise InputError(f"{name} has segments that do not cover every link of the grid.")
        slope = d["cap"].get("slope_vol")
        portfolio = _portfolio_block(name, d, math.inf if slope is None else float(slope))
        return cls(
            vol=vol,
            weights=weights,
            first_best=fb,
            schedule=x,
            u=u,
            multipliers=G,
            codes=codes,
            segments=segments,
            slope_vol=math.inf if slope is None else float(slope),
            cap=dict(d["cap"]),
            objective=dict(d["objective"]),
            certificate=dict(d["certificate"]),
            solver=dict(d["solver"]),
            config=d["config"],
            source_files=dict(d.get("source_files", {})),
            problem_sha256=d.get("problem_sha256"),
            package_version=d.get("package_version"),
            schedule_json=text if text is not None else json.dumps(d, indent=2, allow_nan=False) + "\n",
            portfolio=portfolio,
        )


def _portfolio_block(name: str, d: dict, slope_vol: float) -> dict | None:
    """The ``portfolio`` block of a schedule.json dict, checked against the ``[portfolio]`` config and recomputed.

    None for a single-contract schedule. A block whose psi, ||AB|| or caps disagree (beyond :data:`PORTFOLIO_RTOL`)
    with those of its own A, B, d and s_f, or with the schedule's cap, was edited or damaged: InputError.
    """
    from margin_design.design.portfolio import PortfolioSpec
    from margin_design.errors import ConfigError

    block = d.get("portfolio")
    has_section = isinstance(d.get("config"), dict) and d["config"].get("portfolio") is not None
    if block is None:
        if has_section:
            raise InputError(f"{name} has a [portfolio] configuration but no 'portfolio' block; write it again with margin-design solve.")
        return None
    if not isinstance(block, dict) or any(k not in block for k in PORTFOLIO_KEYS):
        missing = [k for k in PORTFOLIO_KEYS if not isinstance(block, dict) or k not in block]
        raise InputError(f"{name} has a 'portfolio' block without the key(s) {', '.join(missing)}; is it a schedule.json written by margin-design solve?")
    if not has_section:
        raise InputError(f"{name} has a 'portfolio' block but its configuration has no [portfolio] section.")
    kappa = float(d["config"].get("market", {}).get("inventory_penalty") or 0.0)
    try:
        spec = PortfolioSpec(
            assets=tuple(str(a) for a in block["assets"]),
            impact=np.asarray(block["impact"], dtype=float),
            liquidation=np.asarray(block["liquidation"], dtype=float),
            trigger=np.asarray(block["trigger"], dtype=float),
            sensitivity=float(block["sensitivity"]),
            source=str(block["source"]),
            directions=str(block.get("cap_directions", "all")),
            branches=tuple((np.asarray(b["trigger"], dtype=float), float(b["sensitivity"])) for b in block.get("branches", ())),
        )
    except (ConfigError, TypeError, ValueError) as exc:
        raise InputError(f"{name} has an invalid 'portfolio' block ({str(exc).rstrip('.')}).") from None
    cap = spec.cap_vol(kappa)
    singles = spec.single_contract_caps(kappa)
    stored_singles = block["single_contract_cap_vol"]
    imposed = d["cap"].get("kind") != "none"  # with cap.kind = "none" no cap is imposed: cap_vol is null
    checks = [("psi", block["psi"], spec.psi), ("price_pressure", block["price_pressure"], spec.price_pressure),
              ("cap_vol", block["cap_vol"], cap if math.isfinite(cap) and imposed else None)]
    if d["cap"].get("kind") != "none":
        checks.append(("cap.slope_vol", None if not math.isfinite(slope_vol) else slope_vol, cap if math.isfinite(cap) else None))
    if not isinstance(stored_singles, list) or len(stored_singles) != spec.k:
        raise InputError(f"{name} has portfolio.single_contract_cap_vol with the wrong number of entries (there are {spec.k} assets).")
    checks += [(f"single_contract_cap_vol[{i}]", s, float(c) if math.isfinite(c) else None) for i, (s, c) in enumerate(zip(stored_singles, singles))]
    for key, stored, fresh in checks:
        if (stored is None) != (fresh is None) or (
            fresh is not None and not (isinstance(stored, (int, float)) and abs(float(stored) - fresh) <= PORTFOLIO_RTOL * abs(fresh))
        ):
            raise InputError(
                f"{name} has portfolio {key} = {stored!r} but its A, B, d and s_f give {fresh!r}; the file was edited or damaged, so it is not published."
            )
    out = dict(block)
    out["pressure_vector"] = [float(v) for v in spec.pressure_vector]
    out["bab"] = float(spec.liquidation @ spec.impact @ spec.liquidation)
    return out


def _check_feasible(name: str, vol: np.ndarray, x: np.ndarray, u: np.ndarray) -> None:
    """Refuse a schedule that is not a publishable rule: M >= 0, non-decreasing, steps within the cap increments u.

    A schedule written by ``solve`` meets these to float rounding (:data:`FEASIBILITY_TOL`); a failure means the
    file was edited or damaged, and a report must not publish it.
    """
    if np.any(x < -FEASIBILITY_TOL):
        i = int(np.argmin(x))
        raise InputError(
            f"{name} has the negative margin {float(x[i])!r} at daily vol {float(vol[i])!r}; a margin rule must be >= 0, so it is not published."
        )
    d = np.diff(x)
    if np.any(d < -FEASIBILITY_TOL):
        k = int(np.argmin(d))
        raise InputError(
            f"{name} has margins that fall from {float(x[k])!r} to {float(x[k + 1])!r} between daily vol {float(vol[k])!r} and "
            f"{float(vol[k + 1])!r}; a margin rule must be non-decreasing, so it is not published."
        )
    over = d - u
    if np.any(over > FEASIBILITY_TOL):
        k = int(np.argmax(over))
        raise InputError(
            f"{name} has a step of {float(d[k]):.6g} between daily vol {float(vol[k])!r} and {float(vol[k + 1])!r}, above the cap "
            f"increment {float(u[k]):.6g} (cap_increments); a manipulation-proof rule must stay within the cap, so it is not published."
        )


def _array(values, none: float | None = None) -> np.ndarray:
    if none is not None:
        values = [none if v is None else v for v in values]
    a = np.asarray(values, dtype=float)
    if a.ndim != 1:
        raise ValueError("expected a list of numbers")
    return a


def load_schedule_json(path: str | Path) -> RuleData:
    """Read a ``schedule.json`` written by ``margin-design solve --out`` (InputError if it is not one)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"schedule file {str(path)!r} cannot be read: {getattr(exc, 'strerror', None) or exc}.") from None
    try:
        d = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"schedule file {str(path)!r} is not valid JSON: {exc}.") from None
    return RuleData.from_dict(d, text=text, name=f"schedule file {str(path)!r}")
