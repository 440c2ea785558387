"""``[portfolio.risk]``: the trigger direction d and sensitivity s_f of a portfolio design from its risk functional.

An analyst does not know d and c_r; they follow from how the CCP computes its portfolio number from the window
of sampled mark vectors and the margined portfolio's positions. The functionals and their JAX derivatives
live in the calibration layer (:mod:`margin_design.calibration.portfolio_risk`: portfolio variance over a window
or EWMA, plain and filtered historical-simulation VaR and ES, a SPAN-like scan); this adapter reads the
``[portfolio.risk]`` table of a design config and reduces the functional to the two inputs of (87)-(88):

* d, the unit direction that raises the input, and s_f with c_r = 2 sqrt(r) s_f at the worst-case admissible
  state. A functional can have several worst-case branches (for the variance kinds a last return of either
  sign; for the scan every sign pattern): the binding one is the branch with the largest s_f psi, since the
  cap is (2 + ...)/(s_f psi). For an "orthant" branch (every sign pattern reachable) the binding direction
  takes each component's sign against (AB)_i, so that -d'AB = sum_i |d_i| |(AB)_i|.

Keys (units): kind (one of the functionals), positions (weights per contract, notional per unit of portfolio
notional), window (daily returns), lambda (EWMA), level (VaR/ES, in (0.5, 1)), horizon_days, filter, scan_multiplier,
scan_steps, vol_shift, scan_netting, tail_ratio (see :class:`~margin_design.calibration.portfolio_risk.PortfolioRisk`).
With ``[portfolio.risk]`` the functional defines the risk input, so ``[cap]`` takes no input, window or lambda;
the design's state grid and shocks must be those of the functional's variance-equivalent input r.
"""

from __future__ import annotations

import numpy as np

from margin_design.errors import ConfigError

__all__ = ["RISK_KEYS", "resolve_risk"]

#: config key -> PortfolioRisk field
RISK_KEYS = {
    "kind": "kind",
    "positions": "positions",
    "window": "window",
    "lambda": "lam",
    "level": "level",
    "horizon_days": "horizon_days",
    "filter": "filter",
    "scan_multiplier": "scan_multiplier",
    "scan_steps": "scan_steps",
    "vol_shift": "vol_shift",
    "scan_netting": "scan_netting",
    "tail_ratio": "tail_ratio",
}


def risk_spec(risk: dict, k: int):
    """The calibration layer's PortfolioRisk for a ``[portfolio.risk]`` table (one-sentence errors)."""
    from margin_design.calibration.portfolio_risk import PortfolioRisk

    for key in risk:
        if key not in RISK_KEYS:
            raise ConfigError(f"unknown key portfolio.risk.{key} = {risk[key]!r}; expected one of {', '.join(RISK_KEYS)}.")
    for key in ("kind", "positions"):
        if key not in risk:
            raise ConfigError(f"missing required key portfolio.risk.{key}.")
    if not isinstance(risk["positions"], list) or len(risk["positions"]) != k:
        raise ConfigError(f"portfolio.risk.positions = {risk['positions']!r} must list one weight per asset ({k}).")
    return PortfolioRisk(**{RISK_KEYS[key]: value for key, value in risk.items()})


#: Largest K for which an orthant branch (every sign pattern reachable, the scan) is expanded pattern by pattern.
MAX_ORTHANT_K = 12


def resolve_risk(section: dict, directions: str = "all") -> tuple[np.ndarray, float, str, tuple]:
    """(d, s_f, source, branches) of the section's risk functional, for its A and B.

    ``branches`` lists every worst-case trigger (d, s_f) (an orthant branch expanded into its sign patterns); (d, s_f)
    is the binding one: the largest s_f Phi (``directions = "all"``) or s_f psi (``"liquidation"``, (88)).
    """
    from margin_design.calibration.portfolio_risk import trigger_and_sensitivity
    from margin_design.design.portfolio import trip_alignment

    spec = risk_spec(section["risk"], len(section["assets"]))
    A = np.asarray(section["impact"], float)
    B = np.asarray(section["liquidation"], float)
    pressure = A @ B
    _, _, details = trigger_and_sensitivity(spec)
    branches = []
    for b in details.branches:
        d = np.asarray(b.direction, float)
        if b.orthant:
            k = d.size
            if k > MAX_ORTHANT_K:
                raise ConfigError(f"portfolio.risk.kind = 'scan' with {k} contracts has 2^{k} trigger sign patterns; at most {MAX_ORTHANT_K} contracts.")
            for signs in np.array(np.meshgrid(*[[-1.0, 1.0]] * k)).reshape(k, -1).T:
                branches.append((np.abs(d) * signs, float(b.s_f), b.side))
        else:
            branches.append((d, float(b.s_f), b.side))

    def strength(br):
        d, s_f, _ = br
        if directions == "all":
            return s_f * trip_alignment(A, B, d, 0.0)
        return s_f * max(0.0, -float(d @ pressure))

    d, s_f, side = max(branches, key=strength)
    return d / np.linalg.norm(d), s_f, f"risk functional {spec.describe()} ({side} branch)", tuple((x / np.linalg.norm(x), f) for x, f, _ in branches)
