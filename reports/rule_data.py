"""What a report needs from a solved schedule, read from the ``schedule.json`` contract.

A report can start from a fresh :class:`~margin_design.solvers.result.Schedule` or from a saved
``schedule.json`` (``margin-design solve --out``). Both routes go through the same JSON dict: a fresh
result is serialised with :func:`~margin_design.reports.schedule_files.schedule_json_text` and parsed back
(JSON floats round-trip exactly), so the two routes give identical tables. Nothing is re-solved.

Units (as in ``schedule.json``): ``vol`` daily volatility (decimal), ``r`` daily variance, margins are
margin ratios per unit notional, ``u`` the cap increments K (vol_{i+1} - vol_i) (inf where uncapped),
``multipliers`` G_k per link (objective units: expected cost per unit notional), ``slope_vol`` the cap K on
dM/dsigma (margin ratio per unit of daily vol).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from margin_design.errors import InputError
from margin_design.reports.schedule_files import schedule_json_text

TRADING_DAYS = 252
#: Largest violation of M >= 0, monotonicity or the cap (margin ratio) a stored schedule may show: the solver's
#: own feasibility target (:class:`~margin_design.solvers.certificate.Certificate`) for margins of order 1.
FEASIBILITY_TOL = 1e-12
SQRT_252 = math.sqrt(TRADING_DAYS)
SCHEMA_VERSION = 1
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
    def alpha(self) -> float:
        return float(self.config["market"]["alpha"])

    @property
    def c_eff(self) -> float:
        return float(self.config["market"]["c_eff"])

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
        )


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
