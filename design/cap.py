"""The manipulation-proof slope cap, (16)-(18) and (38)-(40), and its exact integral between grid points.

Units: r is the daily variance, sigma = sqrt(r) daily vol, M the margin ratio; alpha is price impact per
unit of ADV traded (price normalised to 1), c_eff = c_X^eff the forced liquidation (ADV units) per unit of
margin ratio, kappa the trader's inventory penalty of (11).

Corollary 1 gives, for a rule fed by an input whose sensitivity to the last sampled price is c_RV,
g'(r) <= (2 alpha + kappa) / (alpha^2 c_eff c_RV)  (16). The bound on c_RV depends on how the input r is
built from sampled prices (Lemma 1, Section 4.2.2), through the largest last return |R| compatible with r:

* ``variance`` (the paper's (17), (39)): r = RV with dr/dP = 2R (Lemma 1) and |R| <= sqrt(r), so
  c_RV <= 2 sqrt(r) and g'(r) <= (2 alpha + kappa) / (2 alpha^2 c_eff sqrt(r)).  Factor 1.
* ``realized_variance`` with window m: r = (1/m) sum of the last m squared daily returns, so dr/dP = 2R/m
  and |R| <= sqrt(m r) (all of the window's variance in the last return); c_RV <= 2 sqrt(m r)/m =
  2 sqrt(r/m), and the cap is sqrt(m) times (17).  Factor sqrt(m).
* ``ewma`` with lambda: r_t = lambda r_{t-1} + (1 - lambda) R^2, so dr/dP = 2 (1 - lambda) R and, since
  r_{t-1} >= 0, R^2 <= r / (1 - lambda); c_RV <= 2 sqrt((1 - lambda) r), and the cap is (17) divided by
  sqrt(1 - lambda).  Factor 1 / sqrt(1 - lambda).
* ``hs_var`` / ``hs_es`` with window m and level p (Section 4.2.3, historical simulation): Gamma is the n-th
  largest (VaR) or the mean of the n largest (ES) of the window's one-day losses L_j = -R_j (decimal loss per
  unit notional), n = ceil(m (1 - p)). The rule is fed a daily variance, so Gamma enters as its variance
  equivalent r = (max(Gamma, 0)/k)^2, k the normal model's value per unit daily vol: k = z_p (VaR),
  phi(z_p)/(1 - p) (ES) -- the convention of the portfolio functionals (``calibration.portfolio_risk``: ``_to_r``,
  ``value_per_vol``); for normal returns r is the daily variance. Gamma = k sqrt(r) is fixed by r. One-sidedly:
  raising P_t lowers L_t, so no buy raises Gamma (D_+ <= 0); lowering P_t by Delta (the sale of a trigger q,
  Delta = alpha q) raises Gamma by at most b Delta, b = 1 (an order statistic is 1-Lipschitz in each loss) or
  1/n (the tail mean), with equality while L_t is the active order statistic / inside the tail. So
  D_- = (dr/dGamma) b = 2 Gamma b / k^2 = 2 sqrt(r) b / k and c_RV <= 2 sqrt(r) b / k at every window with input r,
  attained whenever the last loss is in the tail; the last return's size does not enter (the bound
  does not need the envelope, only that the tail holds L_t). The cap is k/b times (17).
  Factor z_p (VaR), n phi(z_p)/(1 - p) (ES).  Example: m = 250, p = 0.99: n = ceil(2.5) = 3, VaR factor
  z_0.99 = 2.3263, ES factor 3 x 2.6652 = 7.9956 (a 250-day realised variance has sqrt(250) = 15.81).
  In the CCP's own units (sigma = Gamma / k): dM/dVaR <= (2 alpha + kappa)/(alpha^2 c_eff) = K_0 of (18), and
  dM/dES <= n K_0 -- a sale moves the VaR one for one with the price, the ES by 1/n.

In volatility units (18), (40): d g(sigma^2)/d sigma <= K = factor * (2 alpha + kappa) / (alpha^2 c_eff), a
constant. Between grid points the cap integrates exactly: u_i = K (sigma_{i+1} - sigma_i)
= integral of the r-cap from r_i to r_{i+1}. (With kappa = 0 and factor 1, K = 2 / (alpha c_eff) as in (40).)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

CAP_KINDS = ("manipulation_proof", "none")
CAP_INPUTS = ("variance", "realized_variance", "ewma", "hs_var", "hs_es")
#: Window m (returns) of the sum (4) when the input is ``variance``, whose config has no window: the window the audit
#: simulates (its --sim-window default) and the T-update stress test uses; ``updates`` may be 1..SUM_WINDOW then.
SUM_WINDOW = 5


@dataclass(frozen=True)
class CapSpec:
    """The cap's inputs: market state z (alpha, c_eff, inventory penalty kappa) and the risk input's construction
    (``window`` m in daily returns for realized_variance, hs_var, hs_es; ``lam`` lambda for ewma; ``level`` p, the
    confidence level of hs_var / hs_es, a probability in (0.5, 1))."""

    kind: str = "manipulation_proof"
    input: str = "variance"
    alpha: float = 0.2
    c_eff: float = 4.5
    inventory_penalty: float = 0.0
    window: int = 1
    lam: float = 0.94
    level: float = 0.99
    portfolio: object = field(default=None, repr=False)   # a PortfolioSpec: the cap is (88) (design/portfolio.py)
    #: Uniform scale s in (0, 1] of the cap (1: the paper's two-period cap); ``margin_design.audit.updates`` sets it to the
    #: largest s whose capped optimum the T-update stress test finds unprofitable. Not in the repr: problem.fingerprint
    #: adds scale and updates only when they differ from 1 (unchanged hashes for the paper's cap).
    scale: float = field(default=1.0, repr=False)
    #: T of ``[cap] updates``: consecutive margin updates the cap must withstand (1: the two-period round trip).
    updates: int = field(default=1, repr=False)

    @property
    def input_factor(self) -> float:
        """Multiplier of the paper's (17) for this risk input (derived in the module docstring)."""
        if self.portfolio is not None:
            return 1.0 / float(self.portfolio.sensitivity)
        if self.input == "variance":
            return 1.0
        if self.input == "realized_variance":
            return float(np.sqrt(self.window))
        if self.input == "ewma":
            return float(1.0 / np.sqrt(1.0 - self.lam))
        if self.input in ("hs_var", "hs_es"):
            from margin_design.calibration.tail import normal_multiple, tail_count

            if self.input == "hs_var":
                return normal_multiple(self.level, "var")
            return tail_count(self.window, self.level) * normal_multiple(self.level, "es")
        raise ValueError(f"unknown cap input {self.input!r}")

    @property
    def slope_vol(self) -> float:
        """K: the cap on dM/dsigma (margin ratio per unit of daily vol), (18)/(40) times the input factor and the
        ``scale`` s; inf if none."""
        if self.kind == "none":
            return float("inf")
        if self.portfolio is not None:
            return self.scale * self.portfolio.cap_vol(self.inventory_penalty)
        a, c, kap = self.alpha, self.c_eff, self.inventory_penalty
        return self.scale * self.input_factor * (2.0 * a + kap) / (a * a * c)

    @property
    def max_updates(self) -> int | None:
        """The largest ``updates`` T the T-update stress test can simulate (locality: the benchmark input stays put while
        the trip lasts): the window m of the sum (4) (SUM_WINDOW) or of realized_variance; m - n for HS VaR / ES (the n
        tail losses must stay in the window); None for ewma (no window)."""
        if self.input == "variance":
            return SUM_WINDOW
        if self.input == "realized_variance":
            return int(self.window)
        if self.input in ("hs_var", "hs_es"):
            from margin_design.calibration.tail import tail_count

            return int(self.window) - int(tail_count(self.window, self.level))
        return None

    def scale_text(self) -> str:
        """What the scale and updates mean, for the cap's formula text ("" for the paper's cap, s = 1 and T = 1)."""
        if self.scale == 1.0 and self.updates == 1:
            return ""
        return (f"; scaled by s = {self.scale:.6g}, the largest scale whose capped optimum the T-update stress test finds "
                f"unprofitable with T = {self.updates} updates")

    def formula(self) -> str:
        """The cap as text, with its numbers, for reports."""
        if self.kind == "none":
            return "no slope cap (monotonicity only)"
        if self.portfolio is not None:
            p = self.portfolio
            k88 = p.cap_vol(self.inventory_penalty, "liquidation")
            tail = (f"psi = {p.psi:.6g}, ||AB|| = {p.price_pressure:.6g}, s_f = {p.sensitivity:.6g}, kappa = {self.inventory_penalty:g}, "
                    f"input = {p.source}")
            if p.directions == "liquidation":
                if not p.psi > 0:
                    return ("no slope cap from manipulation: psi = max(0, -d'AB) = 0 (the trigger direction does not load on the "
                            "liquidation pressure; trips along B only, (88)); monotonicity only")
                return f"dM/dsigma <= K = (2 + kappa ||B||^2/B'AB)/(s_f psi) = {self.slope_vol:.6g} (88), trips along B ({tail})"
            if not math.isfinite(self.slope_vol):
                return "no slope cap from manipulation: no two-period round trip loads on the margin channel (Phi = 0); monotonicity only"
            return (
                f"dM/dsigma <= K = 1/(s_f Phi) = {self.slope_vol:.6g}, every two-period round trip (Lemma 10; "
                f"Phi = {p.phi(self.inventory_penalty):.6g}; the paper's (88), trips along B, gives "
                + (f"{k88:.6g}" if math.isfinite(k88) else "no cap")
                + f"; {tail})"
            )
        s = "" if self.scale == 1.0 else f"{self.scale:.6g} * "
        text = (
            f"dM/dsigma <= K = {s}{self.input_factor:.6g} * (2*alpha + kappa)/(alpha^2 * c_eff) = {self.slope_vol:.6g}"
            f" (alpha = {self.alpha:g}, c_eff = {self.c_eff:g}, kappa = {self.inventory_penalty:g}, input = {self.input})"
        )
        if self.input in ("hs_var", "hs_es"):
            from margin_design.calibration.tail import normal_multiple, tail_count

            name, measure = ("VaR", "var") if self.input == "hs_var" else ("ES", "es")
            text += (f"; r = (HS {name} / {normal_multiple(self.level, measure):.4g})^2, the daily variance equivalent of the "
                     f"historical-simulation {name} at {self.level:g} of the last {self.window} daily losses "
                     f"({tail_count(self.window, self.level)} tail scenarios)")
        return text + self.scale_text()


def cap_slope_vol(cap: CapSpec) -> float:
    """The steepest a manipulation-proof rule may rise: the cap K on dM/dsigma, margin ratio per unit daily vol.

    Constant in sigma ((18), (40)), including the factor of the CCP's risk input (a 20-day realised variance
    moves less with one price than the variance of one return, so its cap is sqrt(20) times looser)."""
    return cap.slope_vol


def cap_slope_r(cap: CapSpec, r) -> np.ndarray:
    """The cap expressed per unit of daily variance r: dM/dr <= K / (2 sqrt(r)), (17)/(39) times the input factor."""
    return cap.slope_vol / (2.0 * np.sqrt(np.asarray(r, dtype=float)))


def cap_increments(cap: CapSpec, vol: np.ndarray) -> np.ndarray:
    """The largest margin increase the cap allows from each grid point to the next, u_i = K (sigma_{i+1} - sigma_i)
    (margin ratio; n - 1 values, the exact integral of the cap; +inf without a cap)."""
    dv = np.diff(np.asarray(vol, dtype=float))
    if cap.kind == "none":
        return np.full(dv.shape, np.inf)
    return cap.slope_vol * dv
