"""Strategic constrained traders: c_X^eff from the equilibrium targets (Nicolai 2026, Appendix B, (59)-(63), Prop. 3).

Accounts i have equity E(i) > 0 and a marginal value of exposure b(i) >= 0 (long side, Appendix B.2). Given the
margin in force M_t and the anticipated second moment of the next margin change sigma_M^2 (60), the interior
target of (59) is

    x_bar*(i) = (b(i) - rho M_t)_+ / (chi + eta sigma_M^2)                                        (61)

and the effective liquidation slope at the benchmark next margin M_{t+1}^(0) is (63):
c_X^eff = (1/M^2) sum_{x_bar*(i) >= E(i)/M} E(i) / (number of accounts) -- computed by
:func:`~margin_design.calibration.accounts.c_eff_from_accounts` (the formula lives there, once).

Equilibrium (B.1-B.4) in a state r with M_t = g(r) (a stationary benchmark: the update leaves margin unchanged,
so sigma_M^2 comes from manipulation only). The manipulator's round trip (-q, +q) with the largest admissible
trigger q (``trigger``) moves margin by Delta M(q) = g(r + Delta r(q)) - g(r); it is played iff the gain
condition holds with the equilibrium c_X^eff (A = alpha (alpha c_X^eff c_g c_Gamma - 2) - kappa > 0 and
q > q_min, (58)). Three outcomes:

* ``no manipulation``: even with sigma_M^2 = 0 the gain condition fails: c_X^eff = c_X(0);
* ``manipulation``: with sigma_M^2 = Delta M(q)^2 the condition still holds: c_X^eff = c_X(Delta M^2) > 0 --
  anticipation dampens but does not remove the channel (Proposition 3);
* ``mixed``: manipulating is profitable if anticipated to be absent and unprofitable if anticipated for sure;
  the manipulator mixes with probability pi so that sigma_M^2 = pi Delta M^2 leaves him indifferent, c_X^eff at
  the gain-condition boundary (2 alpha + kappa)/(alpha^2 c_g c_Gamma) (c_X is a step function of sigma_M^2 with
  finitely many accounts: the reported pi is where it crosses the boundary).

Units: E and targets in ADV units, b and rho M in price units per unit of position (so b - rho M is a marginal
value), chi and eta sigma_M^2 in price units per ADV^2; c_X^eff in ADV per unit margin ratio.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from margin_design.errors import InputError

from margin_design.calibration._checks import check_range
from margin_design.calibration.accounts import binding_mass, c_eff_from_accounts
from margin_design.calibration.risk_inputs import InputSpec, input_sensitivity
from .local import AuditMarket
from .rules import Rule

__all__ = ["equilibrium_targets", "strategic_c_eff", "StrategicState", "equilibrium_c_eff"]

BISECTION_STEPS = 80


def equilibrium_targets(benefit, margin_now, chi: float, rho: float, eta: float, margin_move_sq):
    """(61): x_bar*(i) = (b(i) - rho M_t)_+ / (chi + eta sigma_M^2), in ADV units (arrays broadcast)."""
    check_range("chi", chi, low=0.0, what="positive (quadratic exposure penalty)")
    check_range("rho", rho, low=0.0, low_inclusive=True, what="non-negative (funding spread)")
    check_range("eta", eta, low=0.0, low_inclusive=True, what="non-negative (aversion to margin jumps)")
    b = np.asarray(benefit, dtype=float)
    return np.maximum(b - rho * np.asarray(margin_now, dtype=float), 0.0) / (chi + eta * np.asarray(margin_move_sq, dtype=float))


def strategic_c_eff(equity, benefit, margin_now, margin_next, chi, rho, eta, margin_move_sq) -> float:
    """(63) with the targets of (61): c_X^eff at the benchmark next margin M_{t+1}^(0) (ADV per unit margin ratio)."""
    x = equilibrium_targets(benefit, margin_now, chi, rho, eta, margin_move_sq)
    return c_eff_from_accounts(equity, x, margin_next)


@dataclass(frozen=True)
class StrategicState:
    """Equilibrium in one state: ``c_eff`` c_X^eff (63); ``c_eff_naive`` with sigma_M^2 = 0 (no anticipation);
    ``outcome`` (no manipulation | manipulation | mixed); ``probability`` pi of manipulation; ``margin_move``
    Delta M(q) (margin ratio); ``margin_move_sd`` sqrt(pi) |Delta M|; ``binding_share`` of accounts at M."""

    vol: float
    c_eff: float
    c_eff_naive: float
    outcome: str
    probability: float
    margin_move: float
    margin_move_sd: float
    binding_share: float

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def equilibrium_c_eff(
    rule: Rule,
    vol,
    market: AuditMarket,
    equity,
    benefit,
    *,
    chi: float,
    rho: float = 0.0,
    eta: float = 0.0,
    input_spec: InputSpec = InputSpec(),
    last_return=None,
) -> tuple[StrategicState, ...]:
    """The equilibrium c_X^eff of Appendix B in each state of the daily-vol grid ``vol`` (module docstring)."""
    e = np.asarray(equity, dtype=float)
    b = np.asarray(benefit, dtype=float)
    check_range("equity", e, low=0.0, what="positive (E(i) > 0, ADV units)")
    check_range("benefit", b, low=0.0, low_inclusive=True, what="non-negative (b(i))")
    if e.shape != b.shape or e.size == 0:
        raise InputError(f"equity and benefit need one value per account, got {e.size} and {b.size}.")
    vol = np.asarray(vol, dtype=float)
    r = vol**2
    m0, cg = rule.evaluate(r, "right")
    c_gamma, _ = input_sensitivity(input_spec, r, last_return)
    a, kap, q = market.alpha, market.inventory_penalty, market.trigger
    tau, rho_f = market.execution_cost, market.funding_spread
    # Delta M(q) of the trigger: the input rises by c_Gamma alpha q + w alpha^2 q^2 (Lemma 1, exact for (4)).
    dr = c_gamma * a * q + input_spec.weight * (a * q) ** 2
    dm = rule.margin(r + dr) - m0
    boundary = np.where(cg * c_gamma > 0, (2.0 * a + kap) / (a * a * np.where(cg * c_gamma > 0, cg * c_gamma, 1.0)), np.inf)

    def profitable(c, i):
        A = a * (a * c * cg[i] * c_gamma[i] - 2.0) - kap
        B = 2.0 * tau + rho_f * m0[i]
        return A > 0 and A * q > B

    out = []
    for i in range(vol.size):
        M = float(m0[i])

        def c_of(s2, M=M):
            return strategic_c_eff(e, b, M, M, chi, rho, eta, s2)

        def bind(s2, M=M):
            return binding_mass(e, equilibrium_targets(b, M, chi, rho, eta, s2), M)

        c0 = c_of(0.0)
        move = float(dm[i])
        if not profitable(c0, i):
            out.append(StrategicState(float(vol[i]), c0, c0, "no manipulation", 0.0, move, 0.0, bind(0.0)))
            continue
        c1 = c_of(move**2)
        if profitable(c1, i):
            out.append(StrategicState(float(vol[i]), c1, c0, "manipulation", 1.0, move, abs(move), bind(move**2)))
            continue
        lo, hi = 0.0, 1.0  # probability pi: profitable at lo, not at hi
        for _ in range(BISECTION_STEPS):
            mid = 0.5 * (lo + hi)
            if profitable(c_of(mid * move**2), i):
                lo = mid
            else:
                hi = mid
        pi = 0.5 * (lo + hi)
        c_mid = min(float(boundary[i]), c0)
        out.append(StrategicState(float(vol[i]), c_mid, c0, "mixed", pi, move, float(np.sqrt(pi)) * abs(move), bind(pi * move**2)))
    return tuple(out)
