"""Audit of a margin rule under portfolio margining (Nicolai 2026, Section 5, Appendix D.5-D.6).

K contracts share one scalar margin M = g(r); r is the variance of the margined portfolio's daily return.
Symbols and units (per unit notional, prices near 1, trades and positions in ADV units):

* A (K x K): cross-impact, price change per unit of ADV traded (23); symmetric positive definite (Assumption 6).
* B (K): forced sales, ADV of each contract per unit rise of the margin ratio (26).
* d (K): unit direction of the last mark vector that raises r (27); c_r its sensitivity (daily variance per unit
  price), c_r = 2 sqrt(r) s_f at the worst-case (envelope) state (``sensitivity`` s_f, dimensionless).
* psi = max{0, -d'AB} (87), price pressure along d per unit margin ratio; ||AB||_2 the price-pressure scale (86).
* m(a) = d'Aa and l(a) = a'AB (Section 5.3): the trigger and the harvest exposure of a trade vector a.

**Theorem 3's H_t and how B is normalised.** Theorem 3 takes ||B_t||_1 = 1. Here B is the model's liquidation
vector (26), which carries the size of the forced sales, so only the *trade direction* is normalised:
b = B/||B||_1, and the round trip is a_t = -q b, a_{t+1} = +q b with ||a_t||_1 = q (the capacity measure of
Section 5.1). Lemma 10's identity then gives, to first order in q, E[Pi] = q^2 H_t with

    H_t = (b'Ab) (-(c_g c_r) d'AB - 2)                                                   (29)

where the bracket uses the unnormalised B (the liquidation that actually happens) and c_g = g'(r) is the rule's
right slope (margin ratio per unit daily variance). So H_t > 0 iff c_g c_r psi > 2: Theorem 3's sufficient
condition is exactly "the slope is over the cap (88) with kappa = 0". With the inventory penalty kappa of (11)
on the trade vector, the same trip earns q^2 (H_t - kappa ||b||_2^2), which is positive iff the slope is over
the cap (88) K_88 = (2 + kappa ||B||^2/B'AB)/(s_f psi) (design/portfolio.py). For K = 1 (A = [[alpha]],
B = [c_X], d = [-1]) b = 1 and H_t = alpha (G - 2), the single-contract gain condition.

**The equivalent single contract.** Along Theorem 3's direction the whole single-contract analysis of
:mod:`.local` applies with alpha_e = b'Ab (the own impact of the liquidation portfolio b, price per ADV),
c_e = psi s_f / (sqrt(w) b'Ab) (ADV per unit margin ratio; w the weight of the last squared return in the
[cap] input, so c_Gamma = 2 sqrt(w r) at the envelope and c_e c_Gamma alpha_e = c_r psi) and kappa_e = kappa
||b||_2^2: G = c_g c_r psi (14), (15) = q^2 (H_t - kappa ||b||^2), (58) with B = 2 tau + rho M (||b||_1 = 1),
and the cap (16) is (88). Only the size of the margin move differs (the trigger moves the input by
c_r psi q/||B||_1, not by c_Gamma alpha_e q), so ``margin_after`` and the return on margin are recomputed, and
threshold-crossing harvests (Section 6.6) are b'AB |Delta M| per unit trigger.

**Every direction (our derivation, not in the paper).** Lemma 10's identity to first order,
E[Pi](a) = -c (a'u)(v'a) - a'Ca with c = c_g c_r, u = AB, v = Ad and C = 2A + kappa I, is a quadratic form.
Its largest value per unit own cost a'Ca is c Phi - 1 with

    Phi = ( sqrt(u'C^-1 u  v'C^-1 v) - u'C^-1 v ) / 2,

attained at a* proportional to C^-1 ( v/||v|| - u/||u|| ) (norms ||x||^2 = x'C^-1 x), which has m(a*) >= 0 and
l(a*) <= 0. So some two-period round trip is profitable at first order iff c_g c_r Phi > 1, i.e. iff the slope
exceeds K_all = 1/(s_f Phi) in vol units. By Cauchy-Schwarz K_all <= K (88), with equality iff C^-1/2 AB and
C^-1/2 Ad are opposite (B proportional to -d when kappa = 0, as in D.6 and for one contract). When they are not,
the cap (88) is necessary but not sufficient (which is why the design imposes K_all by default,
``portfolio.cap_directions = "all"``): a* is the trigger-harvest separated trip of Section 5.6, a trigger
leg C^-1 v/||v|| (along d when kappa = 0: it moves the input, m > 0) plus a harvest leg -C^-1 u/||u|| (short the
liquidation portfolio B when kappa = 0: l < 0). When d and B load on different contracts (and kappa = 0) the two
legs sit in different contracts: trigger in d's, harvest in B's.

**The market simulation** (Section 5.3, vectorised like :mod:`.simulate`, same envelope states, error bands and
seeds): fundamentals V_u a martingale with independent normal increments per contract; prices
P_u = V_u + A(Delta X_u + a_u) (23); the scalar input r computed by the [cap] input (:func:`margin_design.calibration.risk_inputs.input_values`)
from the margined portfolio's price h'P_u with holdings h = -d s_f/sqrt(w), so that dr/dP_t = c_r d at the
envelope (h = -d in explicit mode, where s_f = sqrt(w); with a risk functional, [portfolio.risk], this variance of
h'R stands in for the functional: it has the design's d and c_r at the envelope, which is what the two-period trip
reads); the margin reset M_{u+1} = g(r_u); and the constrained sector (:class:`Liquidation`): by default one
population of constrained traders per contract (:class:`.simulate.Population`, the single-contract simulator's)
calibrated so that -dX_k/dM = B_k at the benchmark margin (a short population when B_k < 0, none when B_k = 0), so
a one-contract portfolio is the single-contract simulation exactly; or the linear response Delta X = -B Delta M of
(26). The exact two-period closed form is Lemma 10's identity with the
sector's exact liquidation vector L = X(M_t) - X(M_t + Delta M):

    E[Pi] = -a'A L - 2 a'Aa - kappa ||a||_2^2 - (2 tau + rho M_t) ||a||_1,

which is -l(a) Delta M - 2 a'Aa - costs (Lemma 10 with Delta M from the rule) under the linear response.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

from margin_design.errors import InputError

from margin_design.calibration._checks import check_range, to_py
from margin_design.calibration.gain import roi_pct_lower_bound
from margin_design.calibration.risk_inputs import InputSpec, input_values
from .local import SLOPE_RTOL, AuditMarket, LocalAnalysis, _ranges, jump_gains, local_analysis
from .rules import Rule
from .simulate import AGREE_Z, BAND_Z, PROFIT_TOL, Fundamentals, MonteCarloBand, Population, SimState

__all__ = [
    "AGREE_Z",
    "STRATEGIES",
    "PortfolioMarket",
    "PortfolioLocal",
    "portfolio_local_analysis",
    "portfolio_jump_gains",
    "portfolio_risk_input_rows",
    "Liquidation",
    "PortfolioState",
    "portfolio_fundamentals",
    "simulate_portfolio_trades",
    "portfolio_closed_form",
    "PortfolioCurve",
    "portfolio_round_trip_curve",
    "PortfolioSimulation",
    "simulate_portfolio",
]

#: Relative size of A's asymmetry accepted as rounding.
SYMMETRY_RTOL = 1e-12
#: Entries of a trade leg below this share of its largest entry are rounding, set to 0.
LEG_ATOL = 1e-13
#: The two round trips of the portfolio audit.
STRATEGIES = {
    "theorem3": "Theorem 3/4: a_t = -q B/||B||_1, a_{t+1} = +q B/||B||_1",
    "separated": "trigger-harvest (5.6): a_t = q a*/||a*||_1, a* = C^-1(Ad/||Ad|| - AB/||AB||), reversed at t+1",
}


def _fmt(x) -> str:
    return format(float(x), ".6g")


@dataclass(frozen=True, eq=False)
class PortfolioMarket:
    """Market inputs of a portfolio audit (module docstring for the symbols).

    ``impact`` A (price per ADV traded), ``liquidation`` B (ADV per unit margin ratio), ``direction`` d (unit
    vector), ``sensitivity`` s_f (dimensionless, c_r = 2 sqrt(r) s_f at the envelope), ``inventory_penalty``
    kappa (11) on the trade vector (kappa ||y||_2^2 per period held), ``execution_cost`` tau (decimal of notional
    per unit traded, on ||a||_1), ``funding_spread`` rho (decimal per period on M_t ||y||_1), ``trigger`` q
    (ADV units, the size ||a_t||_1 of the round trip at which profits are reported), ``assets`` the names,
    ``source`` where d and s_f come from ("explicit", or a risk functional's description).
    """

    impact: np.ndarray = field(repr=False)
    liquidation: np.ndarray = field(repr=False)
    direction: np.ndarray = field(repr=False)
    sensitivity: float = 1.0
    inventory_penalty: float = 0.0
    execution_cost: float = 0.0
    funding_spread: float = 0.0
    trigger: float = 0.01
    assets: tuple = ()
    source: str = "explicit"

    def __post_init__(self):
        a = np.asarray(self.impact, dtype=float)
        if a.ndim != 2 or a.shape[0] != a.shape[1] or a.size == 0 or not np.all(np.isfinite(a)):
            raise InputError(f"the impact matrix A must be a finite square K x K matrix, got shape {a.shape}.")
        k = a.shape[0]
        if np.max(np.abs(a - a.T)) > SYMMETRY_RTOL * float(np.max(np.abs(a))):
            raise InputError("the impact matrix A must be symmetric (Assumption 6).")
        a = 0.5 * (a + a.T)
        if not float(np.linalg.eigvalsh(a)[0]) > 0:
            raise InputError("the impact matrix A must be positive definite (Assumption 6, footnote 15).")
        b = np.asarray(self.liquidation, dtype=float)
        d = np.asarray(self.direction, dtype=float)
        for name, v in (("liquidation B", b), ("trigger direction d", d)):
            if v.shape != (k,) or not np.all(np.isfinite(v)):
                raise InputError(f"the {name} must have {k} finite entries, one per contract.")
        if not np.sum(np.abs(b)) > 0:
            raise InputError("the liquidation vector B is zero: a margin rise must force some sales (Assumption 9).")
        if abs(float(np.linalg.norm(d)) - 1.0) > 1e-9:
            raise InputError(f"the trigger direction d must be a unit vector, got norm {_fmt(np.linalg.norm(d))}.")
        check_range("sensitivity s_f", self.sensitivity, low=0.0, what="positive (c_r = 2 sqrt(r) s_f)")
        check_range("inventory_penalty", self.inventory_penalty, low=0.0, low_inclusive=True, what="non-negative (kappa)")
        check_range("execution_cost", self.execution_cost, low=0.0, low_inclusive=True, what="non-negative (decimal of notional)")
        check_range("funding_spread", self.funding_spread, low=0.0, low_inclusive=True, what="non-negative (decimal per period)")
        check_range("trigger", self.trigger, low=0.0, high=1.0, what="a trade size in ADV units in (0, 1]")
        names = tuple(str(s) for s in self.assets) if self.assets else tuple(f"contract {i + 1}" for i in range(k))
        if len(names) != k:
            raise InputError(f"{len(names)} asset names for {k} contracts.")
        object.__setattr__(self, "impact", a)
        object.__setattr__(self, "liquidation", b)
        object.__setattr__(self, "direction", d)
        object.__setattr__(self, "assets", names)

    @classmethod
    def from_spec(cls, spec, inventory_penalty: float = 0.0, execution_cost: float = 0.0, funding_spread: float = 0.0,
                  trigger: float = 0.01) -> "PortfolioMarket":
        """From a design ``PortfolioSpec`` (any object with ``impact``, ``liquidation``, ``trigger`` (d),
        ``sensitivity`` and ``assets``) and the audit's costs and trade size."""
        return cls(spec.impact, spec.liquidation, spec.trigger, float(spec.sensitivity), inventory_penalty, execution_cost,
                   funding_spread, trigger, tuple(spec.assets), str(getattr(spec, "source", "explicit")))

    # ------------------------------------------------------------ derived quantities
    @property
    def k(self) -> int:
        return int(self.impact.shape[0])

    @property
    def explicit(self) -> bool:
        """d and s_f given in the config (explicit mode); otherwise from a risk functional ([portfolio.risk])."""
        return self.source.startswith("explicit")

    @property
    def l1(self) -> float:
        """||B||_1: total forced sales (ADV, all contracts) per unit rise of the margin ratio."""
        return float(np.sum(np.abs(self.liquidation)))

    @property
    def b(self) -> np.ndarray:
        """Theorem 3's unit-l1 liquidation direction b = B/||B||_1 (the trade direction of strategy ``theorem3``)."""
        return self.liquidation / self.l1

    @property
    def pressure_vector(self) -> np.ndarray:
        """u = AB: price change of each contract per unit margin rise, through forced sales (Lemma 9)."""
        return self.impact @ self.liquidation

    @property
    def alignment(self) -> float:
        """d'AB (signed; Theorem 3 needs it negative), price per unit margin ratio."""
        return float(self.direction @ self.pressure_vector)

    @property
    def psi(self) -> float:
        """psi = max{0, -d'AB} (87)."""
        return max(0.0, -self.alignment)

    @property
    def price_pressure(self) -> float:
        """||AB||_2 (86)."""
        return float(np.linalg.norm(self.pressure_vector))

    @property
    def bab(self) -> float:
        """b'Ab: own impact of the unit-l1 liquidation portfolio (price per ADV); alpha of the equivalent contract."""
        return float(self.b @ self.impact @ self.b)

    @property
    def cost_matrix(self) -> np.ndarray:
        """C = 2A + kappa I: the round trip's own cost a'Ca (impact paid twice, Lemma 10, plus the inventory penalty)."""
        return 2.0 * self.impact + self.inventory_penalty * np.eye(self.k)

    @property
    def cap_vol(self) -> float:
        """The cap (88) on dM/dsigma along Theorem 3's direction: (2 + kappa ||B||^2/B'AB)/(s_f psi); inf if psi = 0."""
        if not self.psi > 0:
            return math.inf
        B = self.liquidation
        return (2.0 + self.inventory_penalty * float(B @ B) / float(B @ self.impact @ B)) / (self.sensitivity * self.psi)

    @property
    def phi(self) -> float:
        """Phi = (sqrt(u'C^-1u v'C^-1v) - u'C^-1v)/2 (module docstring): c_g c_r Phi > 1 iff some trip profits; the design
        layer's :func:`~margin_design.design.portfolio.trip_alignment`, the cap the design imposes by default."""
        from margin_design.design.portfolio import trip_alignment

        return trip_alignment(self.impact, self.liquidation, self.direction, self.inventory_penalty)

    @property
    def cap_vol_all(self) -> float:
        """The two-period cap over every trade direction, 1/(s_f Phi) on dM/dsigma (inf if Phi = 0); <= cap_vol."""
        p = self.phi
        return math.inf if not p > 0 else 1.0 / (self.sensitivity * p)

    def separated_legs(self) -> tuple[np.ndarray, np.ndarray]:
        """(trigger leg, harvest leg) of a* = trigger + harvest, the direction with the largest margin-channel gain per
        unit own cost a'Ca (so it profits whenever any direction does, c Phi > 1; at a given ||a||_1 another direction
        may earn more once c Phi > 1), scaled so ||a*||_1 = 1:
        trigger C^-1 v/||v|| (m > 0; along d when kappa = 0), harvest -C^-1 u/||u|| (l < 0; -B direction when
        kappa = 0). If no direction profits (Phi = 0) both legs are Theorem 3's direction halved."""
        if not self.phi > 0:
            return -0.5 * self.b, -0.5 * self.b
        C = self.cost_matrix
        u, v = self.pressure_vector, self.impact @ self.direction
        cu, cv = np.linalg.solve(C, u), np.linalg.solve(C, v)
        trig = cv / math.sqrt(float(v @ cv))
        harv = -cu / math.sqrt(float(u @ cu))
        # entries at rounding level are zero (with kappa = 0, C^-1 A d = d/2 exactly: a contract d does not load on)
        trig = np.where(np.abs(trig) > LEG_ATOL * float(np.max(np.abs(trig))), trig, 0.0)
        harv = np.where(np.abs(harv) > LEG_ATOL * float(np.max(np.abs(harv))), harv, 0.0)
        n = float(np.sum(np.abs(trig + harv)))
        return trig / n, harv / n

    def direction_of(self, strategy: str) -> np.ndarray:
        """The unit-l1 trade direction of the leg at t (sold or bought at t, reversed at t + 1)."""
        if strategy == "theorem3":
            return -self.b
        if strategy == "separated":
            t, h = self.separated_legs()
            return t + h
        raise InputError(f"strategy {strategy!r} is not one of {', '.join(STRATEGIES)}.")

    def first_order_coefficient(self, strategy: str, c) -> np.ndarray:
        """E[Pi] / q^2 to first order for the unit-l1 ``strategy`` direction at c = c_g c_r (Lemma 10's identity,
        before the linear costs): -c l(a) m(a) - a'Ca (price units x ADV per ADV^2)."""
        a = self.direction_of(strategy)
        m = float(self.direction @ self.impact @ a)
        l = float(a @ self.pressure_vector)
        return -np.asarray(c, dtype=float) * l * max(m, 0.0) - float(a @ self.cost_matrix @ a)

    def holdings(self, spec: InputSpec) -> np.ndarray:
        """h = -d s_f / sqrt(w): the margined portfolio whose return variance is the rule's input in the simulation
        (dr/dP_t = c_r d at the envelope; h = -d in explicit mode)."""
        return -self.direction * self.sensitivity / math.sqrt(spec.weight)

    def sensitivity_ratio(self, spec: InputSpec) -> float:
        """c_r / c_Gamma = s_f / sqrt(w): the portfolio's sensitivity over the [cap] input's single-series one (1 in
        explicit mode)."""
        return self.sensitivity / math.sqrt(spec.weight)

    def equivalent_c_eff(self, spec: InputSpec) -> float:
        """c_e = psi s_f/(sqrt(w) b'Ab) (ADV per unit margin ratio), 0 when psi = 0."""
        return self.psi * self.sensitivity_ratio(spec) / self.bab

    def equivalent_market(self, spec: InputSpec) -> AuditMarket:
        """The single contract with the same G, cap and bounds along Theorem 3's direction (module docstring):
        alpha = b'Ab, c_eff = c_e, kappa = kappa ||b||^2. When psi = 0, c_e = 0 cannot be an AuditMarket:
        c_eff is then 1 and must be overridden (``local_analysis(..., c_x=0)``; :func:`portfolio_local_analysis` does)."""
        c = self.equivalent_c_eff(spec)
        return AuditMarket(alpha=self.bab, c_eff=c if c > 0 else 1.0, inventory_penalty=self.inventory_penalty * float(self.b @ self.b),
                           execution_cost=self.execution_cost, funding_spread=self.funding_spread, trigger=self.trigger)

    def harvest_market(self) -> AuditMarket:
        """alpha = b'Ab, c_eff = ||B||_1: alpha c_eff = b'AB, the harvest per unit trigger and unit margin jump along b
        (threshold crossing, Section 6.6); the own cost (2 alpha + kappa ||b||^2) q is Theorem 3's trip's."""
        return AuditMarket(alpha=self.bab, c_eff=self.l1, inventory_penalty=self.inventory_penalty * float(self.b @ self.b),
                           execution_cost=self.execution_cost, funding_spread=self.funding_spread, trigger=self.trigger)

    def to_dict(self) -> dict:
        t, h = self.separated_legs()
        a = t + h
        return {
            "assets": list(self.assets),
            "impact_A_price_per_adv": [[float(x) for x in row] for row in self.impact],
            "liquidation_B_adv_per_margin": [float(x) for x in self.liquidation],
            "trigger_direction_d": [float(x) for x in self.direction],
            "sensitivity_s_f": float(self.sensitivity),
            "source": self.source,
            "psi": self.psi,
            "d_AB": self.alignment,
            "AB_price_per_margin": [float(x) for x in self.pressure_vector],
            "AB_norm": self.price_pressure,
            "B_l1_adv_per_margin": self.l1,
            "b_direction": [float(x) for x in self.b],
            "bAb_price_per_adv": self.bab,
            "normalisation": "Theorem 3's ||B||_1 = 1 is applied to the trade direction b = B/||B||_1 only; the "
                             "bracket of H_t (29) keeps the model's B (26), so H_t > 0 iff c_g c_r psi > 2",
            "cap88_dm_dvol": to_py(self.cap_vol),
            "phi": self.phi,
            "cap_all_directions_dm_dvol": to_py(self.cap_vol_all),
            "separated_trigger_leg": [float(x) for x in t],
            "separated_harvest_leg": [float(x) for x in h],
            "separated_direction": [float(x) for x in a],
            "separated_m_per_adv": float(self.direction @ self.impact @ a),
            "separated_l_per_adv": float(a @ self.pressure_vector),
            "theorem3_m_per_adv": float(self.direction @ self.impact @ -self.b),
            "theorem3_l_per_adv": float(-self.b @ self.pressure_vector),
            "inventory_penalty": self.inventory_penalty,
            "execution_cost": self.execution_cost,
            "funding_spread": self.funding_spread,
            "trigger_adv": self.trigger,
        }


# ----------------------------------------------------------------------------------------------
# Per-state analysis along a rule
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class PortfolioLocal:
    """Per-state portfolio diagnostics along a rule (arrays over the daily-vol grid ``vol``).

    ``slope_right`` c_g = g'(r) (margin ratio per unit daily variance); ``c_r`` (daily variance per unit price
    along d); ``H`` (29) and ``H_kappa`` = H - kappa ||b||^2 (price units x ADV per ADV^2: E[Pi] ~ q^2 H of
    Theorem 3's trip); ``separated`` the first-order E[Pi]/q^2 of the separated trip; ``cap88_dm_dr``,
    ``cap_all_dm_dr`` the caps (88) and over every direction on dM/dr at this state's c_r.
    """

    vol: np.ndarray = field(repr=False)
    slope_right: np.ndarray = field(repr=False)
    c_r: np.ndarray = field(repr=False)
    H: np.ndarray = field(repr=False)
    H_kappa: np.ndarray = field(repr=False)
    separated: np.ndarray = field(repr=False)
    cap88_dm_dr: np.ndarray = field(repr=False)
    cap_all_dm_dr: np.ndarray = field(repr=False)
    market: PortfolioMarket

    @property
    def gain(self) -> np.ndarray:
        """c_g c_r psi: G of (14) along Theorem 3's direction (dimensionless; > 2 iff H_t > 0)."""
        return self.slope_right * self.c_r * self.market.psi

    @property
    def theorem3(self) -> np.ndarray:
        """Theorem 3's sufficient condition H_t > 0 (with slack SLOPE_RTOL: a rule at the cap does not hold it)."""
        return (-self.market.alignment) * self.slope_right * self.c_r > 2.0 * (1.0 + SLOPE_RTOL)

    @property
    def exceeds_cap88(self) -> np.ndarray:
        return self.slope_right > self.cap88_dm_dr * (1.0 + SLOPE_RTOL)

    @property
    def exceeds_cap_all(self) -> np.ndarray:
        """Some two-period trip profits at first order (the separated trip): slope over 1/(c_r Phi)."""
        return self.slope_right > self.cap_all_dm_dr * (1.0 + SLOPE_RTOL)

    def rows(self) -> list[dict]:
        """One dict per state; keys name their units (reports/audit.py's PORTFOLIO_STATE_UNITS)."""
        out = []
        for i in range(self.vol.size):
            s = float(self.vol[i])
            out.append({
                "c_r_per_price": float(self.c_r[i]),
                "H_t_price_per_adv2": float(self.H[i]),
                "H_t_kappa_price_per_adv2": float(self.H_kappa[i]),
                "theorem3_holds": bool(self.theorem3[i]),
                "cap88_dm_dvol": to_py(2.0 * s * self.cap88_dm_dr[i]),
                "exceeds_cap88": bool(self.exceeds_cap88[i]),
                "cap_all_dm_dvol": to_py(2.0 * s * self.cap_all_dm_dr[i]),
                "exceeds_cap_all": bool(self.exceeds_cap_all[i]),
                "separated_coef_price_per_adv2": float(self.separated[i]),
            })
        return out

    def summary(self) -> dict:
        th, ex, ea = self.theorem3, self.exceeds_cap88, self.exceeds_cap_all
        i = int(np.argmax(self.H))
        return {
            "states": int(self.vol.size),
            "states_H_positive": int(th.sum()),
            "vol_H_positive": [float(v) for v in _ranges(self.vol, th)],
            "states_over_cap88": int(ex.sum()),
            "states_over_cap_all_directions": int(ea.sum()),
            "max_H_t": float(self.H[i]),
            "vol_at_max_H_t": float(self.vol[i]),
            "max_separated_coef": float(np.max(self.separated)),
        }


def portfolio_local_analysis(rule: Rule, vol, pm: PortfolioMarket, input_spec: InputSpec = InputSpec(), last_return=None) -> tuple[LocalAnalysis, PortfolioLocal]:
    """(LocalAnalysis of the equivalent single contract, PortfolioLocal) in every state of the daily-vol grid.

    ``last_return`` is |h'R_t|, the margined portfolio's last daily return (decimal), or None for the envelope.
    The LocalAnalysis is :func:`.local.local_analysis` with :meth:`PortfolioMarket.equivalent_market` (so G, (15),
    (58), the cap and the flags are Theorem 3's trip's), with ``margin_after`` = M + c_g c_r psi q/||B||_1 and
    the return on margin recomputed.
    """
    vol = np.asarray(vol, dtype=float)
    eq = pm.equivalent_market(input_spec)
    c_e = pm.equivalent_c_eff(input_spec)
    la = local_analysis(rule, vol, eq, input_spec, last_return, c_x=np.full(vol.shape, c_e))
    c_r = la.c_gamma * pm.sensitivity_ratio(input_spec)
    cg = la.slope_right
    after = la.margin + cg * c_r * pm.psi * pm.trigger / pm.l1
    roi = np.asarray(roi_pct_lower_bound(la.profit_bps, np.clip(after, 1e-12, 1.0)))
    la = dataclasses.replace(la, margin_after=after, roi_pct=roi)
    H = pm.bab * (-(cg * c_r) * pm.alignment - 2.0)
    Hk = H - pm.inventory_penalty * float(pm.b @ pm.b)
    c = cg * c_r
    sep = pm.first_order_coefficient("separated", c)
    # the caps bound c_g c_r: (2 + kappa ||B||^2/B'AB)/psi = s_f K (88) and 1/Phi = s_f K_all; on dM/dr divide by c_r
    # (at the envelope c_r = 2 sigma s_f, so 2 sigma times these is K and K_all)
    cap88 = _per_r(pm.cap_vol * pm.sensitivity, c_r)
    capall = _per_r(pm.cap_vol_all * pm.sensitivity, c_r)
    pl = PortfolioLocal(vol=vol, slope_right=cg, c_r=c_r, H=H, H_kappa=Hk, separated=np.asarray(sep, dtype=float),
                        cap88_dm_dr=cap88, cap_all_dm_dr=capall, market=pm)
    return la, pl


def _per_r(cap_c: float, c_r) -> np.ndarray:
    """A cap on c_g c_r as a cap on dM/dr = c_g: cap_c / c_r (inf where c_r = 0 or the cap is inf)."""
    c_r = np.asarray(c_r, dtype=float)
    if not math.isfinite(cap_c):
        return np.full(c_r.shape, np.inf)
    return np.where(c_r > 0, cap_c / np.where(c_r > 0, c_r, 1.0), np.inf)


def portfolio_jump_gains(jumps, pm: PortfolioMarket, input_spec: InputSpec = InputSpec()) -> tuple:
    """Threshold-crossing gains (Section 6.6) of Theorem 3's trip: harvest b'AB |Delta M| per unit trigger, own cost
    (2 b'Ab + kappa ||b||^2) q; ``reach_vol`` is the daily vol a trigger q covers, c_r psi q/(||B||_1 2 sigma)."""
    gains = jump_gains(jumps, pm.harvest_market(), input_spec)
    # jump_gains' reach is alpha q c_Gamma/(2 sigma) with alpha = b'Ab; the trigger moves the input by c_r psi q/||B||_1
    scale = (pm.psi / pm.l1) * pm.sensitivity_ratio(input_spec) / pm.bab
    return tuple(dataclasses.replace(g, reach_vol=g.reach_vol * scale) for g in gains)


def portfolio_risk_input_rows(rows: list[dict], pm: PortfolioMarket, input_spec: InputSpec = InputSpec()) -> list[dict]:
    """Rewrite the market columns of :func:`.local.risk_input_table` rows for Theorem 3's trip. The rows read each
    input on the margined portfolio's price series h'P (dM/dP is per unit move of h'P); then G = psi (s_f/sqrt(w))
    dM/dP, the cap on dM/dP is K_0 = (2 + kappa ||b||^2/b'Ab)/(psi s_f/sqrt(w)) (None if psi = 0), and a jump
    harvests b'AB |jump| per unit trigger (equal to the single-contract columns when K = 1)."""
    ge = pm.psi * pm.sensitivity_ratio(input_spec)
    k0 = (2.0 + pm.inventory_penalty * float(pm.b @ pm.b) / pm.bab) / ge if ge > 0 else math.inf
    harvest = pm.bab * pm.l1
    out = []
    for r in rows:
        r = dict(r)
        r["G"] = float(ge * r["dm_dp"])
        r["cap_dm_dp"] = to_py(k0)
        r["exceeds_cap"] = bool(r["dm_dp"] > k0 * (1.0 + SLOPE_RTOL))
        r["jump_gain_per_unit_trigger"] = float(harvest * abs(r["jump_margin"]))
        out.append(r)
    return out


# ----------------------------------------------------------------------------------------------
# The Section 5.3 market
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Liquidation:
    """The constrained sector contract by contract: positions X_k(M) (ADV units) at margin M.

    ``kind`` "population": ``populations[k]`` (a :class:`.simulate.Population` calibrated so that its c_X at the
    benchmark margin is |B_k|, or None when B_k = 0) with ``signs[k]`` = sign(B_k) (a short population for
    B_k < 0: it buys back when margin rises); "linear": X_k(M) = -B_k (M - M_t), exactly (26).
    """

    kind: str
    liquidation: np.ndarray = field(repr=False)
    margin: float
    populations: tuple = field(default=(), repr=False)

    @classmethod
    def population(cls, liquidation, margin: float, n: int = 400, seed: int = 0, elasticity: float = 0.225) -> "Liquidation":
        """One population of ``n`` accounts per contract with B_k != 0 (the same seed for every contract, so equal
        B_k give equal sectors), each calibrated at the benchmark ``margin`` (:meth:`.simulate.Population.calibrated`)."""
        B = np.asarray(liquidation, dtype=float)
        pops = tuple(Population.calibrated(n, margin, abs(float(bk)), elasticity=elasticity, seed=seed) if bk != 0 else None for bk in B)
        return cls("population", B, float(margin), pops)

    @classmethod
    def linear(cls, liquidation, margin: float) -> "Liquidation":
        return cls("linear", np.asarray(liquidation, dtype=float), float(margin))

    def exposure(self, margins) -> np.ndarray:
        """X(M) for every margin in ``margins`` (any shape): array of shape margins.shape + (K,), ADV units."""
        m = np.asarray(margins, dtype=float)
        if self.kind == "linear":
            return -(m - self.margin)[..., None] * self.liquidation
        cols = [np.sign(bk) * pop.exposure(m) if pop is not None else np.zeros(m.shape) for bk, pop in zip(self.liquidation, self.populations)]
        return np.stack(cols, axis=-1)

    def describe(self) -> str:
        if self.kind == "linear":
            return "linear forced sales Delta X = -B Delta M (26)"
        n = next((p.equity.size for p in self.populations if p is not None), 0)
        return f"one population of {n} constrained accounts per contract with B_k != 0 (c_X = |B_k| at the benchmark margin, epsilon_XM 0.225)"


@dataclass(frozen=True)
class PortfolioState:
    """Benchmark state: ``scalar`` the margined portfolio's window (a :class:`.simulate.SimState` of h'R: earlier
    returns and the last return R_t^(0) < 0, input spec) and the ``holdings`` h; the mark vectors move along
    h/||h||^2 (R_j = rho_j h/||h||^2 with rho_j the scalar returns), earlier marks at 1."""

    scalar: SimState
    holdings: tuple

    @classmethod
    def envelope(cls, r: float, holdings, window: int = 5, kind: str = "variance") -> "PortfolioState":
        """All of the window's input in the last portfolio return (the worst case behind the cap)."""
        return cls(SimState.envelope(r, window, kind), tuple(float(x) for x in holdings))

    @property
    def r(self) -> float:
        return self.scalar.r

    @property
    def window(self) -> int:
        return self.scalar.window

    @property
    def label(self) -> str:
        return self.scalar.label

    @property
    def h(self) -> np.ndarray:
        return np.asarray(self.holdings, dtype=float)

    def mark_window(self) -> tuple[np.ndarray, np.ndarray]:
        """(P_{t-m}, ..., P_{t-1}) as an (m, K) array and V_t = P_t^(0) (K,): prices near 1."""
        h = self.h
        e = h / float(h @ h)
        rets = self.scalar.returns
        path = np.concatenate([[0.0], np.cumsum(rets[:-1])])
        path = path - path[-1]
        prices = 1.0 + path[:, None] * e[None, :]
        return prices, prices[-1] + rets[-1] * e


def portfolio_fundamentals(sd: float, k: int, periods: int, paths: int, seed: int = 0) -> Fundamentals:
    """Independent normal increments of V with standard deviation ``sd`` per contract and period (price units),
    shocks of shape (paths, periods, K); for K = 1 the draws are those of :meth:`.simulate.Fundamentals.normal`."""
    rng = np.random.default_rng(seed)
    shocks = sd * rng.standard_normal((int(paths), int(periods), int(k)))
    return Fundamentals(shocks, np.full(int(paths), 1.0 / paths), False, f"normal, sd {sd:.4g} per contract, {paths} paths (seed {seed})")


def simulate_portfolio_trades(rule: Rule, liquidation: Liquidation, state: PortfolioState, pm: PortfolioMarket, trades,
                              fundamentals: Fundamentals, *, trace: bool = False):
    """Trader profit (price units x ADV) of every trade-vector sequence on every fundamental path.

    ``trades`` (sequences, periods, K) in ADV units for periods t..t+T; returns (sequences, paths), with ``trace``
    also a dict of arrays (sequences, paths, periods[, K]): ``price`` P_u, ``fundamental`` V_u, ``margin`` M_u in
    force, ``flow`` Delta X_u, ``input`` r_u. Profit Pi = -sum a_u'P_u - tau sum ||a_u||_1
    - sum_{u<T} (rho M_u ||y_u||_1 + kappa ||y_u||_2^2) ((24), (11), A.5).
    """
    a = np.asarray(trades, dtype=float)
    if a.ndim == 2:
        a = a[None]
    n_seq, periods, k = a.shape
    if k != pm.k:
        raise InputError(f"the trades have {k} contracts, the market {pm.k}.")
    T = periods - 1
    if fundamentals.shocks.ndim != 3 or fundamentals.shocks.shape[1] < T or fundamentals.shocks.shape[2] != k:
        raise InputError(f"the fundamentals must be shocks of shape (paths, >= {T}, {k}).")
    if T > state.window:
        raise InputError(f"horizon T = {T} exceeds the window m = {state.window}: the benchmark would drift when R_t leaves the window.")
    n_paths = fundamentals.shocks.shape[0]
    shape = (n_seq, n_paths)
    h = state.h
    spec = InputSpec(state.scalar.input.kind, state.window, state.scalar.input.lam)
    marks, v0 = state.mark_window()
    win = np.broadcast_to(marks @ h, shape + (state.window,)).copy()            # the margined portfolio's prices h'P
    margin = np.full(shape, float(rule.margin(np.asarray(state.r))))             # M_t = g(r^(0)) (stationary)
    x_prev = np.broadcast_to(liquidation.exposure(margin[0, 0]), shape + (k,)).copy()
    v = np.broadcast_to(v0, shape + (k,)).copy()
    cash = np.zeros(shape)
    y = np.zeros(shape + (k,))
    A = pm.impact
    kap, tau, rho = pm.inventory_penalty, pm.execution_cost, pm.funding_spread
    rec = None
    if trace:
        rec = {"price": np.empty(shape + (periods, k)), "fundamental": np.empty(shape + (periods, k)), "flow": np.empty(shape + (periods, k)),
               "margin": np.empty(shape + (periods,)), "input": np.empty(shape + (periods,))}
    for u in range(periods):
        if u > 0:
            v = v + fundamentals.shocks[None, :, u - 1, :]
        x = liquidation.exposure(margin)
        au = a[:, u, :][:, None, :]
        p = v + (x - x_prev + au) @ A.T                                           # (23)
        cash = cash - np.sum(au * p, axis=-1) - tau * np.sum(np.abs(au), axis=-1)
        y = y + au
        if u < T:
            cash = cash - rho * margin * np.sum(np.abs(y), axis=-1) - kap * np.sum(y * y, axis=-1)
        full = np.concatenate([win, (p @ h)[..., None]], axis=-1)
        r_u = input_values(spec, full)
        if rec is not None:
            rec["price"][:, :, u], rec["fundamental"][:, :, u], rec["flow"][:, :, u] = p, v, x - x_prev
            rec["margin"][:, :, u], rec["input"][:, :, u] = margin, r_u
        margin = rule.margin(r_u)                                                 # M_{u+1} = g(r_u) (25)
        win = full[..., 1:]
        x_prev = x
    return (cash, rec) if trace else cash


def portfolio_closed_form(rule: Rule, liquidation: Liquidation, state: PortfolioState, pm: PortfolioMarket, direction, q) -> dict:
    """Exact expectations of the two-period trip a_t = q dir, a_{t+1} = -q dir (``direction`` unit l1, ``q`` ADV
    sizes): Lemma 10's identity with the sector's exact liquidation L and the rule's exact Delta M.

    Returns arrays over q: ``closed_form`` -a'AL - 2a'Aa - kappa ||a||^2 - (2 tau + rho M)||a||_1; ``lemma10``
    the same with L = B Delta M (-l(a) Delta M - ..., (28) as an identity); ``first_order`` q^2 (-c l m - a'Ca)
    - linear costs with c = c_g c_r at the state (Theorem 3: q^2 (H_t - kappa ||b||^2) for ``theorem3``);
    ``margin_move`` Delta M, ``m`` = d'Aa, ``l`` = a'AB, ``input_after`` r(a) (all per q).
    """
    q = np.asarray(q, dtype=float)
    e = np.asarray(direction, dtype=float)
    A = pm.impact
    sc = state.scalar
    w = 1.0 if sc.input.kind == "variance" else 1.0 / state.window               # weight of the last squared return
    m0 = float(rule.margin(np.asarray(state.r)))
    a = q[:, None] * e[None, :]
    dh = a @ A @ state.h                                                          # h'(P_t - P_t^(0)) = h'Aa
    gam = state.r + w * ((sc.last_return + dh) ** 2 - sc.last_return**2)
    m1 = rule.margin(gam)
    dm = m1 - m0
    L = liquidation.exposure(m0)[None, :] - liquidation.exposure(m1)
    own = np.einsum("qi,ij,qj->q", a, A, a)
    costs = pm.inventory_penalty * np.sum(a * a, axis=1) + (2.0 * pm.execution_cost + pm.funding_spread * m0) * np.sum(np.abs(a), axis=1)
    harvest = -np.einsum("qi,ij,qj->q", a, A, L)
    l = a @ pm.pressure_vector
    m = a @ A @ pm.direction
    c_g = float(rule.slope(np.asarray(state.r), "right"))
    c_r = 2.0 * w * abs(sc.last_return) * float(np.linalg.norm(state.h))
    lin = (2.0 * pm.execution_cost + pm.funding_spread * m0) * np.sum(np.abs(a), axis=1)
    first = q**2 * (-(c_g * c_r) * float(e @ pm.pressure_vector) * max(float(pm.direction @ A @ e), 0.0) - float(e @ pm.cost_matrix @ e)) - lin
    return {"closed_form": harvest - 2.0 * own - costs, "lemma10": -l * dm - 2.0 * own - costs, "first_order": first,
            "margin_move": dm, "m": m, "l": l, "input_after": gam, "margin": m0, "c_g": c_g, "c_r": c_r}


@dataclass(frozen=True, eq=False)
class PortfolioCurve(MonteCarloBand):
    """Expected profit of one two-period vector round trip against its size q (ADV units, ||a_t||_1 = q).

    ``mean``/``se`` Monte Carlo mean and standard error (price units x ADV); ``closed_form``, ``lemma10``,
    ``first_order``, ``margin_move`` (Delta M, margin ratio), ``m``, ``l`` from :func:`portfolio_closed_form`.
    """

    strategy: str
    direction: np.ndarray = field(repr=False)
    q: np.ndarray = field(repr=False)
    mean: np.ndarray = field(repr=False)
    se: np.ndarray = field(repr=False)
    closed_form: np.ndarray = field(repr=False)
    lemma10: np.ndarray = field(repr=False)
    first_order: np.ndarray = field(repr=False)
    margin_move: np.ndarray = field(repr=False)
    m: np.ndarray = field(repr=False)
    l: np.ndarray = field(repr=False)
    margin: float
    state: PortfolioState
    fundamentals: str
    liquidation: str

    def to_dict(self) -> dict:
        return {
            "strategy": self.strategy,
            "direction": [float(x) for x in self.direction],
            "state": self.state.label,
            "benchmark_input": self.state.r,
            "margin_ratio": self.margin,
            "fundamentals": self.fundamentals,
            "liquidation": self.liquidation,
            "band": f"mean +- {BAND_Z:.2f} standard errors (95%)",
            "q_adv": [float(v) for v in self.q],
            "mean": [float(v) for v in self.mean],
            "se": [float(v) for v in self.se],
            "closed_form": [float(v) for v in self.closed_form],
            "lemma10_linear_B": [float(v) for v in self.lemma10],
            "first_order": [float(v) for v in self.first_order],
            "margin_move": [float(v) for v in self.margin_move],
            "m_trigger": [float(v) for v in self.m],
            "l_harvest": [float(v) for v in self.l],
        }


def portfolio_round_trip_curve(rule: Rule, liquidation: Liquidation, state: PortfolioState, pm: PortfolioMarket, strategy: str, q,
                               fundamentals: Fundamentals) -> PortfolioCurve:
    """Monte Carlo expected profit of ``strategy``'s round trip (a_t = q dir, a_{t+1} = -q dir) on the grid ``q``."""
    q = np.asarray(q, dtype=float)
    check_range("q", q, low=0.0, what="positive trade sizes (ADV units)")
    e = pm.direction_of(strategy)
    trades = np.stack([q[:, None] * e[None, :], -q[:, None] * e[None, :]], axis=1)
    prof = simulate_portfolio_trades(rule, liquidation, state, pm, trades, fundamentals)
    mean, se = fundamentals.mean_se(prof)
    cf = portfolio_closed_form(rule, liquidation, state, pm, e, q)
    return PortfolioCurve(strategy, e, q, mean, se, cf["closed_form"], cf["lemma10"], cf["first_order"], cf["margin_move"], cf["m"], cf["l"],
                          cf["margin"], state, fundamentals.label, liquidation.describe())


@dataclass(frozen=True, eq=False)
class PortfolioSimulation:
    """The portfolio simulation of an audit: ``curves[rule][strategy]`` one :class:`PortfolioCurve` per state,
    the per-state H_t at the simulated states (``H[rule]``), and :meth:`checks`."""

    curves: dict = field(repr=False)
    H: dict = field(repr=False)
    vols: tuple
    q: tuple
    paths: int
    seed: int
    window: int
    input: str
    liquidation: str

    def checks(self) -> dict:
        """(a) Monte Carlo within AGREE_Z standard errors of the exact closed form everywhere; (b) the first-best is
        profitable by Theorem 3's trip in every simulated state where its H_t > 0 (None if there is none);
        (c) the capped optimum is not, in any state; the separated trip's verdicts (a finding, not a check).
        Profitable = :attr:`PortfolioCurve.profitable` (lower 95% band > 0, noise excursions against an exact
        expectation <= 0 excepted; ``c_capped_noise_excursion_states`` counts those of (c))."""
        zs = [float(np.max(np.abs(c.z))) for d in self.curves.values() for cs in d.values() for c in cs]
        fb = self.curves["first_best"]["theorem3"]
        hpos = [bool(h > 0) for h in self.H["first_best"]]
        out = {
            "a_monte_carlo_agrees": max(zs) <= AGREE_Z,
            "a_max_abs_z": max(zs),
            # None when the first-best has H_t <= 0 in every simulated state (nothing to check)
            "b_first_best_profitable_where_H_positive": (all(bool(np.any(c.profitable)) for c, hp in zip(fb, hpos) if hp)
                                                         if any(hpos) else None),
            "c_capped_not_profitable_theorem3": not any(bool(np.any(c.profitable)) for c in self.curves["capped"]["theorem3"]),
            "c_capped_noise_excursion_states": int(sum(bool(np.any(c.noise_excursion)) for c in self.curves["capped"]["theorem3"])),
        }
        for key in self.curves:
            for s in STRATEGIES:
                out[f"{key}_{s}_profitable_states"] = int(sum(bool(np.any(c.profitable)) for c in self.curves[key][s]))
        return out

    def table(self) -> list[dict]:
        """The profit table: one row per (state, rule, strategy, q); profits in price units x ADV."""
        rows = []
        for key, d in self.curves.items():
            for s, cs in d.items():
                for si, c in enumerate(cs):
                    for i in range(c.q.size):
                        rows.append({
                            "vol_daily": float(self.vols[si]), "rule": key, "strategy": s, "q_adv": float(c.q[i]),
                            "H_t": float(self.H[key][si]), "margin_ratio": c.margin, "margin_move_ratio": float(c.margin_move[i]),
                            "closed_form": float(c.closed_form[i]), "mc_mean": float(c.mean[i]), "mc_band": float(BAND_Z * c.se[i]),
                            "mc_lower": float(c.lower[i]), "mc_upper": float(c.upper[i]), "lemma10_linear_B": float(c.lemma10[i]),
                            "first_order": float(c.first_order[i]), "significantly_positive": bool(c.significantly_positive[i]),
                        })
        return rows

    def to_dict(self) -> dict:
        return {
            "settings": {"states_vol_daily": list(self.vols), "q_adv": list(self.q), "paths": self.paths, "seed": self.seed,
                         "window": self.window, "input": self.input, "liquidation": self.liquidation, "band_z": BAND_Z,
                         "agree_z": AGREE_Z, "strategies": dict(STRATEGIES)},
            "checks": self.checks(),
            "H_t_at_states": {k: [float(x) for x in v] for k, v in self.H.items()},
            "curves": {k: {s: [c.to_dict() for c in cs] for s, cs in d.items()} for k, d in self.curves.items()},
        }


def simulate_portfolio(rules: dict, pm: PortfolioMarket, spec: InputSpec, vols, q, *, paths: int = 20000, seed: int = 0,
                       window: int = 5, liquidation: str = "population", population: int = 400) -> PortfolioSimulation:
    """Both strategies' two-period trips for every rule in ``rules`` ({key: Rule}; keys ``first_best`` and
    ``capped`` are needed by the checks) in the envelope states of daily vol ``vols``.

    The margined portfolio h (:meth:`PortfolioMarket.holdings`) reads the [cap] input ``spec`` (``variance`` or
    ``realized_variance``; a ``variance`` input takes ``window`` returns); fundamentals have sd sigma/||h|| per
    contract (the portfolio's daily vol is sigma), ``paths`` paths, seed ``seed + state index`` (as the
    single-contract audit); the constrained sector is :class:`Liquidation` ``liquidation`` at each rule's
    benchmark margin, with ``population`` accounts per contract and seed ``seed``.
    """
    if spec.kind == "ewma":
        raise InputError("the portfolio simulation supports the realised-variance inputs (variance, realized_variance), not ewma.")
    if liquidation not in ("population", "linear"):
        raise InputError(f"liquidation = {liquidation!r} is not one of population, linear.")
    win = int(window) if spec.kind == "variance" else int(spec.window)
    h = pm.holdings(spec)
    q = np.asarray(q, dtype=float)
    curves = {key: {s: [] for s in STRATEGIES} for key in rules}
    H = {key: [] for key in rules}
    label = ""
    for si, v in enumerate(vols):
        state = PortfolioState.envelope(v * v, h, win, spec.kind)
        fund = portfolio_fundamentals(v / float(np.linalg.norm(h)), pm.k, 1, paths, seed=seed + si)
        for key, rule in rules.items():
            m0 = float(rule.margin(np.asarray(state.r)))
            liq = Liquidation.population(pm.liquidation, m0, population, seed) if liquidation == "population" else Liquidation.linear(pm.liquidation, m0)
            label = liq.describe()
            for s in STRATEGIES:
                curves[key][s].append(portfolio_round_trip_curve(rule, liq, state, pm, s, q, fund))
            cf = portfolio_closed_form(rule, liq, state, pm, -pm.b, q[:1])
            H[key].append(pm.bab * (-(cf["c_g"] * cf["c_r"]) * pm.alignment - 2.0))
    return PortfolioSimulation(curves, H, tuple(float(v) for v in vols), tuple(float(x) for x in q), int(paths), int(seed), win, spec.kind, label)
