"""Portfolio margining as the same design problem (Sections 5, 6.5, D.5-D.6 of Nicolai 2026).

K contracts share one scalar margin requirement M = g(r), where the risk input r is the variance of the
margined portfolio's daily return (so the state grid, its density and the shocks are those of that scalar, and
the shock is the portfolio's close-out loss). Notation and units:

* A (K x K): cross-impact, the price change (price normalised to 1) per unit of ADV traded (23). Assumption 6:
  symmetric positive definite with a positive diagonal; anything else is refused, since a non-PSD impact matrix
  is itself an arbitrage (footnote 15).
* B (K): forced sales, in ADV of each contract, per unit rise of the margin ratio (26); ||B||_1 > 0
  (Assumption 9).
* d (K): the unit direction of the last sampled mark vector that raises r (27); c_r its sensitivity. The
  design reads c_r through the dimensionless s_f with c_r = 2 sqrt(r) s_f at the worst-case admissible state:
  in explicit mode s_f is the single-contract benchmark's, 1 / (the [cap] input factor), as D.6 assumes; with a
  risk functional it comes from the functional's gradient.
* psi = max{0, -d'AB} (87), the trigger-liquidation alignment (price change per unit margin ratio along d);
  ||AB||_2 the price-pressure scale (D.5).

The portfolio reduces to the single-contract problem through two numbers, so there is one problem type and
one solve path:

* Liquidation cost (85)-(86), as printed: lambda_L/2 ||AB||^2 (M - M_-)_+^2 (quadratic form; the linear form is
  lambda_L ||AB|| (M - M_-)_+). The objective's liquidation scale, c_eff in (32), is ||AB||. Note the unit
  change: (32) charges the flow c_eff (M - M_-), (86) the price pressure ||AB|| (M - M_-), so a one-contract
  portfolio A = [[alpha]], B = [c_eff], d = [-1] is the single-contract problem with liquidation_weight
  multiplied by alpha^2.
* Slope cap, two versions (``directions``):

  - ``"liquidation"``, the paper's (87)-(88): trips along the liquidation direction, a = -q B at t and +q B at
    t+1 (Theorem 3). The margin channel earns c_g c_r psi q^2 B'AB and the round trip costs 2 q^2 B'AB (own
    impact, Lemma 10) plus kappa q^2 ||B||^2 (the inventory penalty of (11) on the trade vector), so no profit
    requires g'(r) c_r psi <= 2 + kappa ||B||^2/(B'AB). With c_r = 2 sqrt(r) s_f and dM/dsigma = 2 sigma g'(r)
    (sigma = sqrt(r), daily portfolio vol) the cap in vol units is the constant

        dM/dsigma <= K_88 = (2 + kappa ||B||^2 / (B'AB)) / (s_f psi),

    infinite (monotonicity only) when psi = 0.
  - ``"all"`` (the default): every two-period round trip a, -a. Lemma 10's identity, E[Pi](a) = -c (a'u)(v'a)
    - a'Ca with c = g'(r) c_r, u = AB, v = Ad and C = 2A + kappa I, is a quadratic form in a; its largest value
    per unit of own cost a'Ca is c Phi - 1 with

        Phi = ( sqrt(u'C^-1 u  v'C^-1 v) - u'C^-1 v ) / 2,

    so no trip profits iff g'(r) c_r Phi <= 1, i.e. dM/dsigma <= K_all = 1 / (s_f Phi). By Cauchy-Schwarz
    K_all <= K_88, with equality iff C^-1/2 AB and C^-1/2 Ad point in opposite directions (B proportional to -d
    when kappa = 0: the D.6 example, and every one-contract portfolio). When the trigger and the liquidation
    directions differ, (88) leaves the trigger-harvest trip of Section 5.6 profitable (the audit shows it), so
    the design uses K_all unless asked for (88). This is our derivation from Lemma 10, not the paper's.

  For one contract (A = alpha, B = c_eff, d = -1, s_f = 1/factor) both are factor (2 alpha + kappa) /
  (alpha^2 c_eff), the single-contract (16)-(18) exactly, inventory penalty included.

A risk functional can have several worst-case trigger branches (d, s_f) (the variance kinds: a last return of
either sign); the cap is the smallest over the branches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from margin_design.errors import ConfigError

__all__ = ["PortfolioSpec", "check_impact_matrix", "portfolio_spec", "validate_portfolio_section", "trip_alignment",
           "PORTFOLIO_KEYS", "CAP_DIRECTIONS", "UNIT_TOL", "PHI_RTOL"]

#: |‖d‖ - 1| above this is not a unit vector (the trigger direction must be normalised).
UNIT_TOL = 1e-9
#: Relative asymmetry of A accepted as rounding: |A - A'| <= SYMMETRY_RTOL max|A|.
SYMMETRY_RTOL = 1e-12
#: Phi below PHI_RTOL times its scale sqrt(u'C^-1u v'C^-1v) is zero (no trip profits at any slope).
PHI_RTOL = 1e-12
#: The cap's trade directions: every two-period round trip (Lemma 10), or the liquidation direction only ((88)).
CAP_DIRECTIONS = ("all", "liquidation")


def trip_alignment(impact, liquidation, direction, inventory_penalty: float = 0.0) -> float:
    """Phi = (sqrt(u'C^-1u v'C^-1v) - u'C^-1v)/2 with u = AB, v = Ad, C = 2A + kappa I (module docstring).

    Some two-period round trip profits iff g'(r) c_r Phi > 1; units: price per unit margin ratio, as psi.
    """
    A = np.asarray(impact, float)
    C = 2.0 * A + inventory_penalty * np.eye(A.shape[0])
    u, v = A @ np.asarray(liquidation, float), A @ np.asarray(direction, float)
    cu, cv = np.linalg.solve(C, u), np.linalg.solve(C, v)
    scale = math.sqrt(max(float(u @ cu), 0.0) * max(float(v @ cv), 0.0))
    p = 0.5 * (scale - float(u @ cv))
    return p if p > PHI_RTOL * scale else 0.0


def _fmt(x) -> str:
    return format(float(x), ".6g")


def check_impact_matrix(A, key: str = "portfolio.impact", k: int | None = None) -> np.ndarray:
    """A as a float64 (K, K) array if it is a valid cross-impact matrix (Assumption 6), else ConfigError.

    Valid: finite, square (K x K when ``k`` is given), symmetric (to SYMMETRY_RTOL), positive diagonal and
    positive definite (smallest eigenvalue > 0). A non-PSD impact matrix is itself an arbitrage (footnote 15):
    the round trip along an eigenvector with a negative eigenvalue has negative expected execution cost.
    """
    try:
        a = np.asarray(A, dtype=float)
    except (TypeError, ValueError):
        raise ConfigError(f"{key} must be a K x K matrix of numbers (price change per unit of ADV traded).") from None
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.size == 0:
        raise ConfigError(f"{key} has shape {a.shape}; it must be a square K x K matrix (a list of K rows of K numbers).")
    if k is not None and a.shape[0] != k:
        raise ConfigError(f"{key} is {a.shape[0]} x {a.shape[0]} but there are {k} assets; it must be {k} x {k}.")
    if not np.all(np.isfinite(a)):
        raise ConfigError(f"{key} has a non-finite entry.")
    scale = float(np.max(np.abs(a)))
    if np.max(np.abs(a - a.T)) > SYMMETRY_RTOL * scale:
        i, j = np.unravel_index(int(np.argmax(np.abs(a - a.T))), a.shape)
        raise ConfigError(
            f"{key} is not symmetric ({key}[{i}][{j}] = {_fmt(a[i, j])} but [{j}][{i}] = {_fmt(a[j, i])}): asymmetric "
            "cross-impact admits a dynamic arbitrage (Schneider and Lillo 2019), so Assumption 6 needs a symmetric matrix."
        )
    if np.any(np.diag(a) <= 0):
        i = int(np.argmax(np.diag(a) <= 0))
        raise ConfigError(f"{key}[{i}][{i}] = {_fmt(a[i, i])} must be positive: a contract's own price impact is positive (Assumption 6).")
    a = 0.5 * (a + a.T)
    low = float(np.linalg.eigvalsh(a)[0])
    if not low > 0:
        raise ConfigError(
            f"{key} is not positive definite (smallest eigenvalue {_fmt(low)}): a non-PSD impact matrix is itself an "
            "arbitrage (footnote 15), so Assumption 6 requires it to be positive definite."
        )
    return a


@dataclass(frozen=True, eq=False)
class PortfolioSpec:
    """The portfolio inputs of (85)-(88): A, B, d and s_f, with the derived psi, ||AB|| and cap (module docstring).

    ``assets`` names the K contracts; ``impact`` A (price per ADV traded), ``liquidation`` B (ADV per unit margin
    ratio), ``trigger`` d (unit vector), ``sensitivity`` s_f (dimensionless, c_r = 2 sqrt(r) s_f), ``source``
    says where d and s_f come from, ``risk`` the risk functional's settings (for provenance) or None.
    """

    assets: tuple
    impact: np.ndarray = field(repr=False)
    liquidation: np.ndarray = field(repr=False)
    trigger: np.ndarray = field(repr=False)
    sensitivity: float = 1.0
    source: str = "explicit"
    risk: dict | None = field(default=None, repr=False)
    directions: str = "all"
    branches: tuple = field(default=(), repr=False)   # ((d, s_f), ...): every worst-case trigger; () = ((trigger, sensitivity),)

    def __post_init__(self):
        k = len(self.assets)
        if k < 1:
            raise ConfigError("portfolio.assets is empty; name at least one contract.")
        object.__setattr__(self, "impact", check_impact_matrix(self.impact, k=k))
        for key, name in (("liquidation", "B"), ("trigger", "d")):
            v = np.asarray(getattr(self, key), dtype=float)
            if v.shape != (k,):
                raise ConfigError(f"portfolio.{key} has {v.size} entries but there are {k} assets; give one per asset ({name}).")
            if not np.all(np.isfinite(v)):
                raise ConfigError(f"portfolio.{key} has a non-finite entry.")
            object.__setattr__(self, key, v)
        if not np.sum(np.abs(self.liquidation)) > 0:
            raise ConfigError("portfolio.liquidation is zero: a margin rise must force some sales (Assumption 9, ||B||_1 > 0).")
        norm = float(np.linalg.norm(self.trigger))
        if abs(norm - 1.0) > UNIT_TOL:
            raise ConfigError(
                f"portfolio.trigger has norm {_fmt(norm)}; the trigger direction d must be a unit vector (divide it by its norm)."
            )
        if not (math.isfinite(self.sensitivity) and self.sensitivity > 0):
            raise ConfigError(f"the portfolio input sensitivity s_f = {_fmt(self.sensitivity)} must be positive.")
        if self.directions not in CAP_DIRECTIONS:
            raise ConfigError(f"portfolio.cap_directions = {self.directions!r} is not one of {', '.join(CAP_DIRECTIONS)}.")
        branches = self.branches or ((self.trigger, self.sensitivity),)
        object.__setattr__(self, "branches", tuple((np.asarray(d, float), float(f)) for d, f in branches))

    # ------------------------------------------------------------ derived quantities
    @property
    def k(self) -> int:
        return len(self.assets)

    @property
    def pressure_vector(self) -> np.ndarray:
        """AB: the price change of each contract per unit rise of the margin ratio, through forced sales."""
        return self.impact @ self.liquidation

    @property
    def price_pressure(self) -> float:
        """||AB||_2 (D.5): price pressure per unit margin ratio; the liquidation scale of (86)."""
        return float(np.linalg.norm(self.pressure_vector))

    @property
    def psi(self) -> float:
        """psi = max{0, -d'AB} (87): price pressure along the trigger direction per unit margin ratio."""
        return float(max(0.0, -float(self.trigger @ self.pressure_vector)))

    def phi(self, inventory_penalty: float = 0.0) -> float:
        """Phi of the primary trigger d (:func:`trip_alignment`): some round trip profits iff g'(r) c_r Phi > 1."""
        return trip_alignment(self.impact, self.liquidation, self.trigger, inventory_penalty)

    def cap_vol(self, inventory_penalty: float = 0.0, directions: str | None = None) -> float:
        """The slope cap on dM/dsigma (margin ratio per unit daily portfolio vol), the smallest over the trigger branches:
        ``"all"`` 1/(s_f Phi) over every two-period trip, ``"liquidation"`` (88) (2 + kappa ||B||^2/B'AB)/(s_f psi);
        inf where no trip profits (Phi = 0, or psi = 0 for (88))."""
        directions = self.directions if directions is None else directions
        B, A = self.liquidation, self.impact
        caps = []
        for d, s_f in self.branches:
            if directions == "all":
                p = trip_alignment(A, B, d, inventory_penalty)
                caps.append(math.inf if not p > 0 else 1.0 / (s_f * p))
            else:
                psi = max(0.0, -float(d @ A @ B))
                caps.append(math.inf if not psi > 0 else (2.0 + inventory_penalty * float(B @ B) / float(B @ A @ B)) / (s_f * psi))
        return min(caps)

    def single_contract_caps(self, inventory_penalty: float = 0.0) -> np.ndarray:
        """Each contract alone (A_ii, B_i, d = -1, the same s_f): (2 A_ii + kappa)/(s_f A_ii^2 B_i), inf where B_i = 0."""
        a = np.diag(self.impact)
        b = np.abs(self.liquidation)
        with np.errstate(divide="ignore"):
            return np.where(b > 0, (2.0 * a + inventory_penalty) / (self.sensitivity * a * a * np.where(b > 0, b, 1.0)), np.inf)

    def describe(self, inventory_penalty: float = 0.0) -> str:
        cap = self.cap_vol(inventory_penalty)
        return (
            f"portfolio of {self.k} ({', '.join(self.assets)}): psi = {self.psi:.6g}, ||AB|| = {self.price_pressure:.6g}, "
            f"s_f = {self.sensitivity:.6g} ({self.source}), cap ({self.directions} trade directions) dM/dsigma <= "
            + (f"{cap:.6g}" if math.isfinite(cap) else "none (no round trip profits: monotone only)")
        )

    def to_dict(self, inventory_penalty: float = 0.0) -> dict:
        """The ``portfolio`` block of schedule.json (units in the keys' documentation)."""
        cap = self.cap_vol(inventory_penalty)
        c88, call = self.cap_vol(inventory_penalty, "liquidation"), self.cap_vol(inventory_penalty, "all")
        return {
            "assets": list(self.assets),
            "impact": [[float(v) for v in row] for row in self.impact],
            "liquidation": [float(v) for v in self.liquidation],
            "trigger": [float(v) for v in self.trigger],
            "sensitivity": float(self.sensitivity),
            "source": self.source,
            "psi": self.psi,
            "price_pressure": self.price_pressure,
            "cap_vol": cap if math.isfinite(cap) else None,
            "cap_directions": self.directions,
            "phi": self.phi(inventory_penalty),
            "cap_vol_liquidation": c88 if math.isfinite(c88) else None,
            "cap_vol_all": call if math.isfinite(call) else None,
            "branches": [{"trigger": [float(v) for v in d], "sensitivity": float(f)} for d, f in self.branches],
            "single_contract_cap_vol": [float(c) if math.isfinite(c) else None for c in self.single_contract_caps(inventory_penalty)],
        }


# ----------------------------------------------------------------------------------------------
# the [portfolio] section of a design config
# ----------------------------------------------------------------------------------------------

#: The public contract of ``[portfolio]``: assets (names), impact (A, K x K), liquidation (B, K), trigger (d, K,
#: a unit vector; optional when the risk functional [portfolio.risk] gives it), risk (the functional's table).
PORTFOLIO_KEYS = ("assets", "impact", "liquidation", "trigger", "cap_directions", "risk")


def _number_list(key: str, value, length: int | None = None) -> list[float]:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{key} = {value!r} must be a non-empty list of numbers.")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ConfigError(f"{key} has the entry {v!r}; every entry must be a finite number.")
        out.append(float(v))
    if length is not None and len(out) != length:
        raise ConfigError(f"{key} has {len(out)} entries but there are {length} assets; give one per asset.")
    return out


def validate_portfolio_section(raw) -> dict:
    """Check the types and shapes of ``[portfolio]`` (one sentence per mistake); returns a plain normalised dict.

    The mathematical checks (A symmetric positive definite, d a unit vector, B non-zero) are the
    :class:`PortfolioSpec`'s, run here too so that a bad file fails at load.
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"portfolio = {raw!r} must be a table [portfolio].")
    for key in raw:
        if key not in PORTFOLIO_KEYS:
            raise ConfigError(f"unknown key portfolio.{key} = {raw[key]!r}; expected one of {', '.join(PORTFOLIO_KEYS)}.")
    for key in ("assets", "impact", "liquidation"):
        if key not in raw:
            raise ConfigError(f"missing required key portfolio.{key}.")
    assets = raw["assets"]
    if not isinstance(assets, list) or not assets or not all(isinstance(a, str) and a.strip() for a in assets):
        raise ConfigError(f"portfolio.assets = {assets!r} must be a non-empty list of contract names.")
    if len(set(assets)) != len(assets):
        dup = next(a for a in assets if assets.count(a) > 1)
        raise ConfigError(f"portfolio.assets names {dup!r} twice; each contract once.")
    k = len(assets)
    impact = raw["impact"]
    if not isinstance(impact, list) or len(impact) != k or not all(isinstance(row, list) for row in impact):
        raise ConfigError(f"portfolio.impact must be a list of {k} rows of {k} numbers (the K x K cross-impact matrix A), one row per asset.")
    rows = [_number_list(f"portfolio.impact[{i}]", row, k) for i, row in enumerate(impact)]
    out = {
        "assets": [str(a) for a in assets],
        "impact": rows,
        "liquidation": _number_list("portfolio.liquidation", raw["liquidation"], k),
        "trigger": _number_list("portfolio.trigger", raw["trigger"], k) if "trigger" in raw else None,
        "cap_directions": raw.get("cap_directions", "all"),
        "risk": None,
    }
    if out["cap_directions"] not in CAP_DIRECTIONS:
        raise ConfigError(
            f"portfolio.cap_directions = {out['cap_directions']!r} is not one of {', '.join(CAP_DIRECTIONS)} "
            "(all: every two-period round trip; liquidation: the paper's (88), trips along B)."
        )
    if "risk" in raw:
        if not isinstance(raw["risk"], dict):
            raise ConfigError(f"portfolio.risk = {raw['risk']!r} must be a table [portfolio.risk].")
        if out["trigger"] is not None:
            raise ConfigError("give either portfolio.trigger or [portfolio.risk], not both: the risk functional determines the trigger direction d.")
        out["risk"] = dict(raw["risk"])
    elif out["trigger"] is None:
        raise ConfigError("missing required key portfolio.trigger (the unit direction d that raises the risk input), or give [portfolio.risk].")
    portfolio_spec(out, input_factor=1.0)  # the mathematical checks, now
    return out


def portfolio_spec(section: dict, input_factor: float = 1.0) -> PortfolioSpec:
    """The :class:`PortfolioSpec` of a validated ``[portfolio]`` dict.

    Explicit mode (``trigger`` given): s_f = 1 / ``input_factor``, the single-contract benchmark's sensitivity of
    the configured [cap] input, as D.6 assumes. With ``risk``: d and s_f from the risk functional.
    """
    directions = section.get("cap_directions", "all")
    if section.get("risk") is not None:
        from margin_design.design.portfolio_risk import resolve_risk  # the functional's gradient, by JAX

        trigger, sensitivity, source, branches = resolve_risk(section, directions)
        risk = dict(section["risk"])
    else:
        trigger, sensitivity, source, risk = section["trigger"], 1.0 / float(input_factor), "explicit d; s_f of the [cap] input", None
        branches = ()
    return PortfolioSpec(
        assets=tuple(section["assets"]),
        impact=np.asarray(section["impact"], float),
        liquidation=np.asarray(section["liquidation"], float),
        trigger=np.asarray(trigger, float),
        sensitivity=sensitivity,
        source=source,
        risk=risk,
        directions=directions,
        branches=branches,
    )
