"""Local manipulability of a rule in every state: slope against the cap, the gain, the profit bounds
(Nicolai 2026, Lemmas 1-5, Theorem 1, Corollary 1 (16)-(18), Appendix A.5 (58), Section 6.6, Table 1 units).

Units: per unit notional (price 1); r daily variance, sigma daily vol, M margin ratio; trigger q, liquidation L
and c_eff in ADV units (c_eff = ADV liquidated per unit of margin ratio); alpha = price change per unit of
ADV traded; profits in price units per unit notional (bp of the trigger notional where named ``_bps``).

In state r with last sampled return R_t, a sale of q at t raises the rule's input by c_Gamma alpha q
(Lemma 1: c_Gamma = c_RV = 2|R_t| for (4); the envelope |R_t| <= sqrt(r) gives 2 sqrt(r)), margin by
c_g c_Gamma alpha q (Lemma 2, c_g the right slope dM/dr) and forced liquidation by L >= c_X c_g c_Gamma alpha q
(Lemma 3). With G = alpha c_X c_g c_Gamma (14), the two-period round trip (-q, +q) earns

    E[Pi] >= (alpha (G - 2) - kappa) q^2                                            (15)
    E[Pi] >= A q^2 - B q,  A = alpha (G - 2) - kappa,  B = 2 tau + rho M,  q_min = B/A (58)

and is profitable iff alpha (G - 2) > kappa (Theorem 1), i.e. iff the slope exceeds the cap (16):

    dM/dr <= (2 alpha + kappa) / (alpha^2 c_X c_Gamma)  = K_0 / c_Gamma,  K_0 = (2 alpha + kappa)/(alpha^2 c_X)  (18).

Jumps (Section 6.6): crossing an upward threshold with a trigger of q harvests about q alpha c_eff Delta M
against an own round-trip impact cost (2 alpha + kappa) q^2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from margin_design.errors import InputError

from margin_design.calibration._checks import check_range, to_py
from margin_design.calibration.cap import BPS_PER_UNIT, TRADING_DAYS_PER_YEAR, cap_dm_dvol
from margin_design.calibration.gain import gain_coefficients, minimum_trigger, profit_bps_lower_bound, roi_pct_lower_bound, threshold_crossing_gain
from margin_design.calibration.risk_inputs import InputSpec, input_sensitivity
from .rules import Breakpoint, Rule, true_runs

__all__ = [
    "SLOPE_RTOL",
    "AuditMarket",
    "feedback_gain",
    "profit_bound",
    "slope_cap_r",
    "LocalAnalysis",
    "local_analysis",
    "JumpGain",
    "jump_gains",
    "trimming_jumps",
    "risk_input_table",
]

#: A slope within this relative amount of the cap counts as on it (a rule built at the cap is not flagged).
SLOPE_RTOL = 1e-9
_SQRT_YEAR = math.sqrt(TRADING_DAYS_PER_YEAR)


@dataclass(frozen=True)
class AuditMarket:
    """Market inputs of the audit: ``alpha`` (price change per unit ADV traded), ``c_eff`` (c_X^eff, ADV per unit
    margin ratio), ``inventory_penalty`` kappa (11), ``execution_cost`` tau (decimal of notional per unit traded,
    A.5), ``funding_spread`` rho (decimal per period, on the margin M_t, A.5), ``trigger`` q (ADV units: the
    trigger size at which profits are reported; 0.01 = 1% of ADV, the paper's benchmark f)."""

    alpha: float
    c_eff: float
    inventory_penalty: float = 0.0
    execution_cost: float = 0.0
    funding_spread: float = 0.0
    trigger: float = 0.01

    def __post_init__(self):
        check_range("alpha", self.alpha, low=0.0, what="positive (price impact per unit ADV)")
        check_range("c_eff", self.c_eff, low=0.0, what="positive (ADV per unit margin ratio)")
        check_range("inventory_penalty", self.inventory_penalty, low=0.0, low_inclusive=True, what="non-negative (kappa)")
        check_range("execution_cost", self.execution_cost, low=0.0, low_inclusive=True, what="non-negative (decimal of notional)")
        check_range("funding_spread", self.funding_spread, low=0.0, low_inclusive=True, what="non-negative (decimal per period)")
        check_range("trigger", self.trigger, low=0.0, high=1.0, what="a trigger size in ADV units in (0, 1]")

    @property
    def cap_vol(self) -> float:
        """K_0 = (2 alpha + kappa)/(alpha^2 c_eff) (18): the cap on dM/dP_t, and on dM/dsigma for the input (4)."""
        return float(cap_dm_dvol(self.alpha, self.c_eff, self.inventory_penalty))


def feedback_gain(alpha, c_x, c_g, c_gamma):
    """G = alpha c_X c_g c_Gamma (14): units of forced liquidation at t+1 per unit of trigger at t (dimensionless)."""
    return np.asarray(alpha, dtype=float) * np.asarray(c_x, dtype=float) * np.asarray(c_g, dtype=float) * np.asarray(c_gamma, dtype=float)


def profit_bound(q, alpha, G, inventory_penalty=0.0, execution_cost=0.0, funding_spread=0.0, margin=0.0):
    """Lower bound on E[Pi] of the round trip (-q, +q): A q^2 - B q (58); (15) when tau = rho = 0. Price units x ADV."""
    a, b = gain_coefficients(alpha, G, inventory_penalty, execution_cost, funding_spread, margin)
    q = np.asarray(q, dtype=float)
    return np.asarray(a) * q**2 - np.asarray(b) * q


def slope_cap_r(alpha, c_x, c_gamma, inventory_penalty=0.0):
    """The cap (16) on dM/dr: (2 alpha + kappa)/(alpha^2 c_X c_Gamma) (inf where c_Gamma = 0)."""
    k0 = np.asarray(cap_dm_dvol(alpha, c_x, inventory_penalty), dtype=float)
    c = np.asarray(c_gamma, dtype=float)
    with np.errstate(divide="ignore"):
        return np.where(c > 0, k0 / np.where(c > 0, c, 1.0), np.inf)


@dataclass(frozen=True, eq=False)
class LocalAnalysis:
    """Per-state diagnostics (arrays over the daily-vol grid ``vol``); see :meth:`rows` for the column units."""

    vol: np.ndarray = field(repr=False)
    margin: np.ndarray = field(repr=False)
    slope_right: np.ndarray = field(repr=False)     # dM/dr from above (the direction a sale pushes r)
    slope_left: np.ndarray = field(repr=False)
    last_return: np.ndarray = field(repr=False)     # |R_t| used (decimal daily return)
    c_gamma: np.ndarray = field(repr=False)         # dr/dP_t (per unit price)
    cap_r: np.ndarray = field(repr=False)           # (16) on dM/dr
    c_x: np.ndarray = field(repr=False)             # c_X used (ADV per unit margin ratio)
    G: np.ndarray = field(repr=False)
    A: np.ndarray = field(repr=False)
    B: np.ndarray = field(repr=False)
    q_min: np.ndarray = field(repr=False)
    margin_after: np.ndarray = field(repr=False)    # M_{t+1} after the trigger (first order)
    bound15: np.ndarray = field(repr=False)         # (15) at the trigger q: (alpha (G - 2) - kappa) q^2
    bound58: np.ndarray = field(repr=False)         # (58) at the trigger q: A q^2 - B q
    profit_bps_64: np.ndarray = field(repr=False)   # (64): (G - 2) delta_bps, no costs, kappa = 0
    profit_bps: np.ndarray = field(repr=False)      # 1e4 (A q - B): (58) per unit trigger notional, bp
    roi_pct: np.ndarray = field(repr=False)
    market: AuditMarket
    input: InputSpec
    envelope: bool

    @property
    def r(self) -> np.ndarray:
        return self.vol**2

    @property
    def slope_ratio(self) -> np.ndarray:
        """slope / cap (dimensionless): > 1 where the rule is manipulable."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(np.isfinite(self.cap_r), self.slope_right / self.cap_r, 0.0)

    @property
    def exceeds_cap(self) -> np.ndarray:
        return self.slope_right > self.cap_r * (1.0 + SLOPE_RTOL)

    @property
    def profitable(self) -> np.ndarray:
        """The gain condition alpha (G - 2) > kappa of Theorem 1 (the slope over the cap, with slack SLOPE_RTOL)
        and, with linear costs, a trigger above q_min = B/A (58): q_min < the market's trigger."""
        return self.exceeds_cap & (self.q_min < self.market.trigger)

    def rows(self) -> list[dict]:
        """One dict per state; keys name their units."""
        out = []
        m = self.market
        for i in range(self.vol.size):
            s = float(self.vol[i])
            out.append(
                {
                    "vol_daily": s,
                    "vol_annual": _SQRT_YEAR * s,
                    "r_daily_variance": s * s,
                    "margin_ratio": float(self.margin[i]),
                    "slope_dm_dr": float(self.slope_right[i]),
                    "slope_dm_dr_left": float(self.slope_left[i]),
                    "slope_dm_dvol": 2.0 * s * float(self.slope_right[i]),
                    "slope_dm_dvol_annual": 2.0 * s * float(self.slope_right[i]) / _SQRT_YEAR,
                    "cap_dm_dr": to_py(self.cap_r[i]),
                    "cap_dm_dvol": to_py(2.0 * s * self.cap_r[i]),
                    "slope_over_cap": float(self.slope_ratio[i]),
                    "exceeds_cap": bool(self.exceeds_cap[i]),
                    "last_return_abs": float(self.last_return[i]),
                    "c_gamma_per_price": float(self.c_gamma[i]),
                    "c_x_adv_per_margin": float(self.c_x[i]),
                    "G": float(self.G[i]),
                    "A_price_per_adv2": float(self.A[i]),
                    "B_price_per_adv": float(self.B[i]),
                    "q_min_adv": to_py(self.q_min[i]),
                    "trigger_adv": m.trigger,
                    "distortion_bps": BPS_PER_UNIT * m.alpha * m.trigger,
                    "margin_after_ratio": float(self.margin_after[i]),
                    "bound15_price_x_adv": float(self.bound15[i]),
                    "bound58_price_x_adv": float(self.bound58[i]),
                    "profit_bps_64": float(self.profit_bps_64[i]),
                    "profit_bps": float(self.profit_bps[i]),
                    "roi_pct": float(self.roi_pct[i]),
                    "profitable": bool(self.profitable[i]),
                }
            )
        return out

    def summary(self) -> dict:
        """Headline numbers: share of states over the cap, worst state, largest G and profit."""
        ex = self.exceeds_cap
        i = int(np.argmax(self.slope_ratio))
        j = int(np.argmax(self.profit_bps))
        return {
            "states": int(self.vol.size),
            "states_over_cap": int(ex.sum()),
            "share_over_cap": float(ex.mean()),
            "vol_over_cap": [float(v) for v in _ranges(self.vol, ex)],
            "max_slope_over_cap": float(self.slope_ratio[i]),
            "vol_at_max_slope_over_cap": float(self.vol[i]),
            "max_G": float(np.max(self.G)),
            "max_profit_bps": float(self.profit_bps[j]),
            "max_roi_pct": float(self.roi_pct[j]),
            "vol_at_max_profit": float(self.vol[j]),
            "last_return": "envelope |R_t| = sqrt(r / w)" if self.envelope else "given |R_t| (clipped at the envelope)",
        }


def _ranges(vol, mask) -> list[float]:
    """Flattened [start, end, start, end, ...] daily-vol ranges of the True runs of ``mask``."""
    return [vol[k] for run in true_runs(mask) for k in run]


def local_analysis(
    rule: Rule,
    vol,
    market: AuditMarket,
    input_spec: InputSpec = InputSpec(),
    last_return=None,
    c_x=None,
) -> LocalAnalysis:
    """Slope vs cap, G, (15), (58) and Table 1 units in every state of the daily-vol grid ``vol``.

    ``last_return`` |R_t| (decimal daily return, scalar or per state) or None for the envelope (all of the
    window's variance in the last return, the worst case behind (17)); ``c_x`` overrides c_X per state (e.g. the
    strategic c_X^eff of Appendix B); by default the market's c_eff.
    """
    vol = np.asarray(vol, dtype=float)
    if vol.ndim != 1 or vol.size < 1 or np.any(vol <= 0):
        raise InputError("the audit grid must be positive daily vols.")
    if last_return is not None:
        check_range("last_return", last_return, low=0.0, what="a positive daily return |R_t| (decimal)")
    r = vol**2
    mval, sr = rule.evaluate(r, "right")
    sl = rule.slope(r, "left")
    c_gamma, R = input_sensitivity(input_spec, r, last_return)
    cx = np.full(vol.shape, market.c_eff) if c_x is None else np.broadcast_to(np.asarray(c_x, dtype=float), vol.shape)
    kap = market.inventory_penalty
    cap_r = np.where(cx > 0, slope_cap_r(market.alpha, np.where(cx > 0, cx, 1.0), c_gamma, kap), np.inf)
    G = feedback_gain(market.alpha, cx, sr, c_gamma)
    a, b = gain_coefficients(market.alpha, G, kap, market.execution_cost, market.funding_spread, mval)
    a, b = np.asarray(a), np.asarray(b)
    q_min = np.asarray(minimum_trigger(a, b))
    q = market.trigger
    dm = sr * c_gamma * market.alpha * q
    after = mval + dm
    bound15 = profit_bound(q, market.alpha, G, kap)
    bound58 = a * q**2 - b * q
    profit = BPS_PER_UNIT * (a * q - b)
    p64 = np.asarray(profit_bps_lower_bound(G, BPS_PER_UNIT * market.alpha * q))
    roi = np.asarray(roi_pct_lower_bound(profit, np.clip(after, 1e-12, 1.0)))
    return LocalAnalysis(
        vol=vol, margin=mval, slope_right=sr, slope_left=sl, last_return=R, c_gamma=c_gamma, cap_r=cap_r, c_x=cx, G=G,
        A=a, B=b, q_min=q_min, margin_after=after, bound15=bound15, bound58=bound58, profit_bps_64=p64, profit_bps=profit, roi_pct=np.asarray(roi), market=market,
        input=input_spec, envelope=last_return is None,
    )


# ----------------------------------------------------------------------------------------------
# Jumps (Section 6.6) and trimming (Proposition 2)
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JumpGain:
    """A discontinuity and its threshold-crossing trade (Section 6.6).

    ``vol_daily`` threshold; ``margin_below``/``margin_above`` one-sided margins (ratio); ``jump`` Delta M;
    ``gain_per_unit_trigger`` alpha c_eff |Delta M| (price units per ADV triggered); ``gain_bps`` at the market's
    trigger q (bp of trigger notional, before costs) and ``net_bps`` after the own round-trip impact
    (2 alpha + kappa) q; ``best_trigger_adv`` q* = alpha c_eff |Delta M| / (2 (2 alpha + kappa)) maximising the
    net harvest, ``best_net`` its value (price units x ADV); ``reach_vol`` how far below (above, for a downward
    jump) the threshold a state can be for a trigger of q to cross it (first order, daily vol); ``source``.
    """

    vol_daily: float
    margin_below: float
    margin_above: float
    jump: float
    gain_per_unit_trigger: float
    gain_bps: float
    net_bps: float
    best_trigger_adv: float
    best_net: float
    reach_vol: float
    source: str

    def to_dict(self) -> dict:
        return {
            "threshold_vol_daily": self.vol_daily,
            "threshold_vol_annual": _SQRT_YEAR * self.vol_daily,
            "margin_below_ratio": self.margin_below,
            "margin_above_ratio": self.margin_above,
            "jump_ratio": self.jump,
            "direction": "up" if self.jump > 0 else "down",
            "gain_per_unit_trigger": self.gain_per_unit_trigger,
            "gain_bps": self.gain_bps,
            "net_bps": self.net_bps,
            "best_trigger_adv": self.best_trigger_adv,
            "best_net_price_x_adv": self.best_net,
            "reach_vol_daily": self.reach_vol,
            "source": self.source,
        }


def jump_gains(jumps: tuple[Breakpoint, ...], market: AuditMarket, input_spec: InputSpec = InputSpec()) -> tuple[JumpGain, ...]:
    """Threshold-crossing gains q alpha c_eff Delta M (Section 6.6) for each jump; a downward jump is crossed from
    above by a trade that lowers the input (re-leveraging of binding traders is the harvest, the sign-reversed trip)."""
    out = []
    a, c, kap, q = market.alpha, market.c_eff, market.inventory_penalty, market.trigger
    for j in jumps:
        dm = abs(j.jump)
        per = float(threshold_crossing_gain(a, c, dm))
        own = (2.0 * a + kap) * q
        c_gamma, _ = input_sensitivity(input_spec, np.asarray([j.r]))
        reach = a * q * float(c_gamma[0]) / (2.0 * math.sqrt(j.r))
        out.append(
            JumpGain(
                vol_daily=j.vol, margin_below=j.margin_below, margin_above=j.margin_above, jump=j.jump,
                gain_per_unit_trigger=per, gain_bps=BPS_PER_UNIT * per, net_bps=BPS_PER_UNIT * (per - own),
                best_trigger_adv=per / (2.0 * (2.0 * a + kap)), best_net=per**2 / (4.0 * (2.0 * a + kap)),
                reach_vol=reach, source=j.source,
            )
        )
    return tuple(out)


def trimming_jumps(rule: Rule, vol, cutoff: float, input_spec: InputSpec, market: AuditMarket) -> dict:
    """Proposition 2 per state: trimming returns with |R| > c makes M jump at |R_t| = c by
    g(r) - g(r - w c^2) (w the last squared return's weight in r: 1 for (4), 1/m for the mean), where r includes
    the last return at the cutoff; winsorising instead leaves M flat in P_t once |R_t| >= c.

    Returns per-state arrays: ``jump`` (margin ratio, NaN where r < w c^2), ``gain_per_unit_trigger``
    alpha c_eff jump, and ``winsor_flat`` (True where the envelope |R_t| exceeds c, so the winsorised input's
    sensitivity to the last price is zero there).
    """
    if input_spec.kind not in ("variance", "realized_variance"):
        raise InputError(f"--trim applies to realised-variance inputs (cap.input variance or realized_variance), not to {input_spec.kind}.")
    check_range("--trim", cutoff, low=0.0, what="a positive cutoff |R| (decimal daily return)")
    vol = np.asarray(vol, dtype=float)
    r = vol**2
    w = input_spec.weight
    ok = r >= w * cutoff**2
    below = np.where(ok, r - w * cutoff**2, 0.0)
    jump = np.where(ok, rule.margin(r) - rule.margin(below), np.nan)
    from margin_design.calibration.risk_inputs import envelope_last_return

    return {
        "cutoff": float(cutoff),
        "jump": jump,
        "gain_per_unit_trigger": market.alpha * market.c_eff * jump,
        "winsor_flat": envelope_last_return(input_spec, r) >= cutoff,
    }


# ----------------------------------------------------------------------------------------------
# Other risk inputs (Section 4.2): directional sensitivity by autodiff, fed to the same gain and cap
# ----------------------------------------------------------------------------------------------


def _typical_window(vol, m: int, last=None):
    """Price windows (n, m + 1): m returns of size sigma with alternating signs, the last one -|last| (default -sigma)."""
    vol = np.atleast_1d(np.asarray(vol, dtype=float))
    signs = np.where(np.arange(m - 1) % 2 == 0, 1.0, -1.0)
    lastv = vol if last is None else np.broadcast_to(np.asarray(last, dtype=float), vol.shape)
    rets = np.concatenate([vol[:, None] * signs[None, :], -lastv[:, None]], axis=1)
    return 1.0 + np.concatenate([np.zeros((vol.size, 1)), np.cumsum(rets, axis=1)], axis=1)


def risk_input_table(
    rule: Rule,
    vol,
    market: AuditMarket,
    *,
    window: int = 20,
    lam: float = 0.94,
    level: float = 0.99,
    es_level: float = 0.975,
    horizon_days: float = 2.0,
    trim_multiple: float = 3.0,
) -> list[dict]:
    """Directional sensitivity of standard CCP inputs to the last sampled price (Section 4.2, A.3), by JAX, and
    what it does to margin: one row per (input, state).

    The window in state sigma holds m = ``window`` returns of size sigma with alternating signs, the last one
    -sigma (all variance inputs then equal sigma^2). ``variance`` inputs feed the audited rule:
    dM/dP = g'(Gamma) D_s; ``margin`` inputs are the margin: dM/dP = D_s (VaR z_p / ES k_p multiples of
    sigma_hat times sqrt(h), 4.2.2; the historical-scenario scan maximum times sqrt(h), 4.2.3). The gain is
    G = alpha c_eff dM/dP (14) and the cap on dM/dP is K_0 = (2 alpha + kappa)/(alpha^2 c_eff) (16)/(18).
    Trimmed / winsorised variance (cutoff c = ``trim_multiple`` sigma) are also read at a window whose last
    return sits exactly at the cutoff: trimming jumps there (Proposition 2), winsorising is flat beyond it.
    Columns: D_down / D_up (input units per unit price, for a push down / up), dm_dp (margin ratio per unit
    price, the larger side), jump_margin (margin ratio, the larger one-sided jump), G, cap_dm_dp, exceeds_cap.
    """
    from margin_design.calibration.risk_inputs import directional_sensitivity, sampled_ewma, sampled_variance, scan_risk, trimmed_variance, var_multiple, winsorized_variance

    vol = np.atleast_1d(np.asarray(vol, dtype=float))
    m = int(window)
    if m < 2:
        raise InputError(f"the risk-input window must be at least 2 returns, got {window}.")
    k0 = market.cap_vol
    base = _typical_window(vol, m)
    cut = trim_multiple * vol
    at_cut = _typical_window(vol, m, last=cut)
    hd = float(horizon_days)
    specs = [
        (f"realised variance, mean of {m} returns", "variance", sampled_variance, base, (True,)),
        (f"EWMA, lambda {lam:g}", "variance", sampled_ewma, base, (float(lam), vol**2)),
        (f"VaR {level:.1%} x sigma_hat, {hd:g}-day (4.2.2)", "margin", var_multiple, base, (float(level), hd, "var")),
        (f"ES {es_level:.1%} x sigma_hat, {hd:g}-day (4.2.2)", "margin", var_multiple, base, (float(es_level), hd, "es")),
        (f"scan: max historical scenario, {hd:g}-day (4.2.3)", "margin", scan_risk, base, (hd,)),
        (f"trimmed variance, c = {trim_multiple:g} sigma (22)", "variance", trimmed_variance, base, (cut, True)),
        (f"trimmed variance at |R_t| = c = {trim_multiple:g} sigma", "variance", trimmed_variance, at_cut, (cut, True)),
        (f"winsorised variance at |R_t| = c = {trim_multiple:g} sigma", "variance", winsorized_variance, at_cut, (cut, True)),
    ]
    rows = []
    for name, kind, fn, prices, args in specs:
        s = directional_sensitivity(fn, prices, *args)
        g0 = np.asarray(s.value, dtype=float)
        if kind == "variance":
            gr = rule.slope(g0, "right")
            m0 = rule.margin(g0)
            dmdp_down, dmdp_up = gr * np.maximum(s.down, 0.0), gr * np.maximum(s.up, 0.0)
            jd = rule.margin(np.maximum(g0 + s.jump_down, 0.0)) - m0
            ju = rule.margin(np.maximum(g0 + s.jump_up, 0.0)) - m0
        else:
            dmdp_down, dmdp_up = np.maximum(s.down, 0.0), np.maximum(s.up, 0.0)
            jd, ju = s.jump_down, s.jump_up
        dmdp = np.maximum(dmdp_down, dmdp_up)
        jump = np.where(np.abs(jd) >= np.abs(ju), jd, ju)
        for i in range(vol.size):
            rows.append(
                {
                    "input": name,
                    "kind": kind,
                    "vol_daily": float(vol[i]),
                    "value": float(g0[i]),
                    "D_down_per_price": float(s.down[i]),
                    "D_up_per_price": float(s.up[i]),
                    "dm_dp": float(dmdp[i]),
                    "direction": "push down (sell)" if dmdp_down[i] >= dmdp_up[i] else "push up (buy)",
                    "jump_margin": float(jump[i]),
                    "G": float(market.alpha * market.c_eff * dmdp[i]),
                    "cap_dm_dp": k0,
                    "exceeds_cap": bool(dmdp[i] > k0 * (1.0 + SLOPE_RTOL)),
                    "jump_gain_per_unit_trigger": float(market.alpha * market.c_eff * abs(jump[i])),
                }
            )
    return rows
