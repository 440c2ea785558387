"""Re-levering on unrealised profits (portfolio margining), and what it does to the cap's c_eff.

Reference ``003_0c9d3cf269947ce9.txt`` (a post on portfolio margining; cited below as "the seed") shows that an
account which may count unrealised profit as collateral, and re-levers on it, builds exposure superlinearly in price
and exponentially in the allowed leverage. This module is the forced-flow side of that observation: it computes the
account's path and turns it into the effective liquidation slope c_eff the manipulation-proof cap (16)-(18) of
Nicolai (2026) should use (so it lives in the calibration layer, beside :mod:`.cap`).

Units (every function): money in multiples of the account's original collateral C0 (so C0 = 1); prices in multiples
of the starting price p0 = 1; price moves (tick, rise, drops) are decimal (0.001 = 0.1%); leverage L is exposure per
unit of counted equity (dimensionless; L = 1/M for a margin ratio M); the discount delta is the share of unrealised
profit that counts as collateral (decimal in [0, 1]; 1 = full portfolio margining); caps are shares (decimal in (0, 1]).

The model (the seed's "Property 1" set-up)
------------------------------------------

A long account starts with collateral C0 = 1 at price p0 = 1 and exposure L C0. On each tick the price rises by the
factor (1 + tick); the account marks its position (unrealised profit U grows by exposure x tick) and re-levers:
it buys until its exposure is L times its *counted* equity (it never sells on the way up; a position above L times
its counted equity is held, as on a venue where only a fall below maintenance margin forces a sale)

    K = C0 + min(delta U, cap),     cap = min(s_a/(1 - s_a) C, s_g/(1 - s_g) (C + O)),

where C is the cash collateral (C0 here: nothing is sold on the way up), s_a the per-account cap (counted unrealised
profit at most a share s_a of counted equity: delta U <= s_a K), s_g the global cap (the venue's counted unrealised
profit at most a share s_g of the venue's counted collateral) and O = (1 - w)/w C0 the other accounts' collateral
per re-levering account (w = ``venue_share``, the re-levering accounts' share of the venue's deposits; w = 1, every
account on the same path, is the worst case, and then the global cap acts as a per-account cap). The *true* equity is
C0 + U, the liabilities are exposure minus true equity (what the account owes on its position). Losses always count
in full (K = C + U for U < 0), as on every derivatives venue. A cleared future that settles variation margin in cash
every day is delta = 1 here (its profit is cash the account may post); delta < 1 describes venues that discount
unsettled profit.

Closed forms (tests in ``tests/test_leverage.py``)
-------------------------------------------------

Without caps and with delta L >= 1 the account buys on every tick, U grows by L K tick per tick and K = C0 + delta U,
so K_k = K_{k-1} (1 + delta L tick) and

    K_k = (1 + delta L tick)^k                                        (counted equity after k ticks)
    K(p) -> p^(delta L)  as tick -> 0 at p = (1 + tick)^k fixed      (a power law: superlinear when delta L > 1)
    K(p) = exp(delta L log p)                                         (exponential in L at a fixed rise)
    true equity = 1 + (K - 1)/delta,  exposure = L K,  liabilities = L K - 1 - (K - 1)/delta.

The discount enters only through the product delta L: counted equity with (delta, L) equals counted equity with
(1, delta L) -- the seed's "allowed leverage on unrealized profits would be 0.75 * 3 = 2.25x" -- but the exposure is
L K, not delta L K. With delta = 1 the account's leverage on its *true* equity stays exactly L: what grows is its size
(p^L C0) and the share of its equity that is unrealised profit, not its leverage ratio. With delta L < 1 the counted
profit never catches up with the position's growth: the account buys nothing, its units stay L and
K = 1 + delta L (p - 1) is linear in p.

What the caps change: the counted equity is bounded, K <= K_max = C0 + min(s_a/(1 - s_a), s_g/(1 - s_g) (1 + O)),
so K_k = min((1 + delta L tick)^k, K_max) and the account stops buying at the tick where a cap binds: from then on
its units are fixed (L K_max / p_bind), its exposure and true equity grow only linearly in the price, and the
exposure at a fixed rise R is at most L K_max (1 + R), linear in L instead of exponential: the caps remove both of
the seed's non-linearities once they bind; the discount only lowers the exponent.

Price drops (decimal falls from the current price, the position held, no re-levering on the way down):
``half_collateral_drop`` = 0.5 C0 / exposure, the fall whose loss equals half of the original collateral (the
seed's "eat into half of the original collateral"); ``equity_to_half_collateral_drop`` = (true equity - 0.5 C0) /
exposure, the fall that takes the true equity down to half of C0 (all profit gone and half of the collateral);
``wipeout_drop`` = true equity / exposure, the fall that wipes the account out (1/L at every point when delta = 1).

A real path (:func:`simulate_path`)
-----------------------------------

On daily closes (the S&P 500 of ``arch``) the account re-levers on up-days and meets margin calls on the way down.
The rule, stated once: initial margin IM = exposure / L; maintenance margin MM = ``maintenance`` x IM, by default
half of IM (Regulation T's 50% initial against FINRA's 25% maintenance, reference ``002_0e752ecb6c9f430f.txt``,
"Regulation T ... maintenance margin"); positions are kept at average cost, so selling realises profit or loss into
the cash collateral C, where it counts in full. Each day: mark to market; if true equity <= 0 the account is closed
with bad debt equal to minus its equity; else if counted equity K < MM, the margin call is met by ``liquidate``
(the whole position is closed at the close, the seed's "cascade liquidation that takes out the entire portfolio";
the account re-enters from its remaining cash on the next up-day) or by ``delever`` (it sells down to L times its
counted equity before the sale, the partial liquidation of exchanges); else, on an up-day, it buys up to L K.

The link to the design problem (:func:`effective_c_eff`)
--------------------------------------------------------

Take the constrained sector of the paper at a state where the margin ratio M binds: X units (ADV units, price
normalised to 1 at the state), counted equity K = M X, cash C, average cost a = 1 - u (u = unrealised profit per unit
of exposure, decimal), so K = C + delta_m X u in the branch where the caps do not bind (delta_m = delta) and K = C
(1 + s/(1 - s)) where a cap s binds (delta_m = 0). Leverage is L = 1/M. The paper's c_X = X/M (Lemma 11, (63), with
the binding sector's position; ``c_eff`` = epsilon tau / m in (76)) holds the sector's equity fixed. Here it is not
fixed. A margin rise dM forces sales S, executed at the clearing price p1 = 1 - alpha S (alpha: decimal price impact
per ADV sold, (75)). The sold units realise their profit into cash; the held ones lose alpha S each:

    K1 = K + rho u S - delta_m alpha X S + O(S^2),    rho = dK/dC - delta_m
       (rho = 1 - delta uncapped, realised profit counts in full; rho = 1/(1 - s) where the cap s binds)

and the constraint (M + dM)(X - S) = K1 gives, to first order,

    S / dM = X / (M + rho u - delta_m alpha X) = c / (1 + rho u L - delta_m alpha c),      c = X / M.

Re-levering on unrealised profit does two things to this slope. Level: after a run-up R the binding sector's exposure
is L K_R times its starting collateral, so c = c_eff K_R with c_eff the slope at the start (the user's, (76)) and
K_R the counted-equity multiple of the tick model at leverage L. Feedback: a fall erodes the counted unrealised
profit at the rate delta_m, so forced sales depress the price, shrink counted equity and force further sales -- the
loop gain delta_m alpha c; with delta_m = 0 (no portfolio margining, or a binding cap) the unrealised profit is a
buffer and there is no such loop. Hence the effective slope the cap should use,

    c_eff' = c_eff K_R / (1 + rho (U/K_R) - delta_m alpha c_eff K_R)       (u L = U / K in the model),

finite while delta_m alpha c_eff K_R < 1 + rho U/K_R (otherwise the loss spiral does not converge: no positive slope
is manipulation-proof), and the tighter cap K' = factor (2 alpha + kappa) / (alpha^2 c_eff') of (18)/(40) with the
risk input's factor of ``design/cap.py``; the cap formula is :func:`margin_design.calibration.cap.cap_dm_dvol`. For a
margin rule M(r) every state has its own L = 1/M(r), K_R and c_eff'; the cap the whole rule must respect is the
tightest. ``tests/test_leverage.py`` checks c_eff' against a finite-difference solution of the exact (non-linear)
forced-sale problem (:func:`forced_sales_exact`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import brentq

from margin_design.display import Displayable, brief, text_block
from margin_design.errors import InputError

from ._checks import check_range, to_py
from .cap import cap_dm_dvol

__all__ = [
    "HALF",
    "ON_FALL",
    "DEFAULT_MAINTENANCE",
    "Guardrails",
    "check_leverage",
    "check_tick",
    "check_rise",
    "tick_prices",
    "LeveragePath",
    "relever_path",
    "tick_path",
    "counted_equity_closed_form",
    "power_law",
    "drops",
    "SimulatedPath",
    "simulate_path",
    "RELEVER_STATE_KEYS",
    "effective_c_eff",
    "forced_sales_exact",
    "DesignLink",
    "design_link",
    "SEED_TICK",
    "SEED_LEVERAGE",
    "SEED_RISE",
    "SEED_DISCOUNT",
    "seed_claims",
    "FAMILY_LEVERAGES",
    "PATHS",
    "load_path",
    "guardrail_scenarios",
    "LeverageStudy",
    "build_study",
]

#: The share of the original collateral in the seed's "half of the original collateral".
HALF = 0.5
#: What the account does when its counted equity falls below the maintenance margin (see the module docstring).
ON_FALL = ("liquidate", "delever")
#: Most ticks a path may have (the study holds a few dozen paths of this length in memory).
MAX_TICKS = 100_000
#: Maintenance margin as a share of the initial margin: FINRA's 25% over Regulation T's 50% (reference 002).
DEFAULT_MAINTENANCE = 0.5


def check_leverage(leverage, name: str = "--leverage") -> np.ndarray:
    """Leverage L (exposure per unit counted equity) must be positive and finite."""
    check_range(name, leverage, low=0.0, what="a positive leverage (exposure per unit of counted equity)")
    return np.asarray(leverage, dtype=float)


def check_tick(tick) -> float:
    """The tick (decimal price rise per tick) must be in (0, 1]."""
    check_range("--tick", tick, low=0.0, high=1.0, what="a decimal price rise per tick in (0, 1] (0.001 = 0.1%)")
    return float(tick)


def check_rise(rise) -> float:
    """The rise (decimal total price rise) must be positive and finite."""
    check_range("--rise", rise, low=0.0, what="a positive decimal price rise (0.4 = 40%)")
    return float(rise)


@dataclass(frozen=True)
class Guardrails:
    """The seed's guardrails on unrealised-profit collateral.

    ``discount`` delta in [0, 1] (share of unrealised profit counted; 1 = full portfolio margining);
    ``account_cap`` s_a in (0, 1] (counted unrealised profit <= s_a x counted equity; None or 1 = no cap);
    ``global_cap`` s_g in (0, 1] (venue's counted unrealised profit <= s_g x venue's counted collateral; None or 1 =
    no cap); ``venue_share`` w in (0, 1]: the re-levering accounts' share of the venue's deposits (1 = every account).
    """

    discount: float = 1.0
    account_cap: float | None = None
    global_cap: float | None = None
    venue_share: float = 1.0

    def __post_init__(self):
        check_range("--discount", self.discount, low=0.0, high=1.0, low_inclusive=True,
                    what="a share of unrealised profit in [0, 1] (1 = full portfolio margining)")
        for flag, v in (("--account-cap", self.account_cap), ("--global-cap", self.global_cap)):
            if v is not None:
                check_range(flag, v, low=0.0, high=1.0, what="a share in (0, 1]")
        check_range("--venue-share", self.venue_share, low=0.0, high=1.0, what="a share of the venue's deposits in (0, 1]")

    @property
    def other_collateral(self) -> float:
        """O = (1 - w)/w: the other accounts' collateral per re-levering account (multiples of C0)."""
        return (1.0 - self.venue_share) / self.venue_share

    def unrealised_cap(self, cash):
        """Largest counted unrealised profit (multiples of C0) at cash collateral ``cash``; inf without caps."""
        cash = np.asarray(cash, dtype=float)
        out = np.full(cash.shape, np.inf)
        if self.account_cap is not None and self.account_cap < 1.0:
            out = np.minimum(out, self.account_cap / (1.0 - self.account_cap) * np.maximum(cash, 0.0))
        if self.global_cap is not None and self.global_cap < 1.0:
            out = np.minimum(out, self.global_cap / (1.0 - self.global_cap) * np.maximum(cash + self.other_collateral, 0.0))
        return out

    def cap_share(self, cash) -> np.ndarray:
        """s of the binding cap's slope d(cap)/dC = s/(1 - s) at ``cash`` (0 without caps): the tighter of the two."""
        cash = np.asarray(cash, dtype=float)
        a = self.account_cap if self.account_cap is not None and self.account_cap < 1.0 else None
        g = self.global_cap if self.global_cap is not None and self.global_cap < 1.0 else None
        if a is None and g is None:
            return np.zeros(cash.shape)
        if g is None:
            return np.full(cash.shape, a)
        if a is None:
            return np.full(cash.shape, g)
        va = a / (1 - a) * cash
        vg = g / (1 - g) * (cash + self.other_collateral)
        return np.where(va <= vg, a, g)

    def counted(self, cash, unrealised):
        """Counted equity K = C + min(U, 0) + min(delta max(U, 0), cap(C)) (multiples of C0)."""
        cash = np.asarray(cash, dtype=float)
        u = np.asarray(unrealised, dtype=float)
        return cash + np.minimum(u, 0.0) + np.minimum(self.discount * np.maximum(u, 0.0), self.unrealised_cap(cash))

    @property
    def any_cap(self) -> bool:
        return any(v is not None and v < 1.0 for v in (self.account_cap, self.global_cap))

    def describe(self) -> str:
        parts = [f"discount delta = {self.discount:g}"]
        if self.account_cap is not None:
            parts.append(f"per-account cap {self.account_cap:g} of counted equity")
        if self.global_cap is not None:
            parts.append(f"global cap {self.global_cap:g} of the venue's collateral (re-levering share {self.venue_share:g})")
        if len(parts) == 1:
            parts.append("no caps")
        return ", ".join(parts)

    def to_dict(self) -> dict:
        return {"discount": self.discount, "account_cap": self.account_cap, "global_cap": self.global_cap,
                "venue_share": self.venue_share}


# ----------------------------------------------------------------------------------------------
# The tick model
# ----------------------------------------------------------------------------------------------


def tick_prices(tick: float, rise: float) -> np.ndarray:
    """Prices (multiples of p0) from 1 to 1 + rise in ticks of (1 + tick); the last tick is partial if the rise is
    not a whole number of ticks. ``len - 1`` is the number of ticks."""
    tick, rise = check_tick(tick), check_rise(rise)
    n = math.log1p(rise) / math.log1p(tick)
    k = int(math.ceil(n - 1e-9))
    if k > MAX_TICKS:
        raise InputError(f"--rise {rise:g} in ticks of {tick:g} needs {k} ticks; use a larger --tick (at most {MAX_TICKS:,} ticks).")
    prices = (1.0 + tick) ** np.arange(k + 1, dtype=float)
    prices[-1] = 1.0 + rise
    return prices


@dataclass(frozen=True, repr=False)
class LeveragePath(Displayable):
    """The tick model's path (arrays of shape ``leverage.shape + (ticks + 1,)``; money in multiples of C0).

    ``price`` (multiples of p0), ``counted`` counted equity K, ``true`` true equity C0 + U, ``unrealised`` U,
    ``exposure`` L K, ``liabilities`` exposure - true equity; drops (decimal price falls from the current price):
    ``half_collateral_drop``, ``equity_to_half_collateral_drop``, ``wipeout_drop`` (see the module docstring).
    """

    leverage: Any
    guardrails: Guardrails
    price: np.ndarray = field(repr=False)
    counted: np.ndarray = field(repr=False)
    true: np.ndarray = field(repr=False)
    unrealised: np.ndarray = field(repr=False)
    exposure: np.ndarray = field(repr=False)

    @property
    def ticks(self) -> int:
        return int(self.price.shape[-1] - 1)

    @property
    def liabilities(self) -> np.ndarray:
        return self.exposure - self.true

    @property
    def half_collateral_drop(self) -> np.ndarray:
        return drops(self.true, self.exposure)["half_collateral_drop"]

    @property
    def equity_to_half_collateral_drop(self) -> np.ndarray:
        return drops(self.true, self.exposure)["equity_to_half_collateral_drop"]

    @property
    def wipeout_drop(self) -> np.ndarray:
        return drops(self.true, self.exposure)["wipeout_drop"]

    def final(self) -> dict:
        """The end of the path: the JSON summary keys (multiples of C0, decimal drops)."""
        end = lambda a: to_py(np.asarray(a)[..., -1])  # noqa: E731
        return {
            "ticks": self.ticks,
            "final_price": float(self.price[-1]),
            "equity_multiple": end(self.counted),
            "true_equity_multiple": end(self.true),
            "exposure_multiple": end(self.exposure),
            "liabilities_multiple": end(self.liabilities),
            "half_collateral_drop": end(self.half_collateral_drop),
            "equity_to_half_collateral_drop": end(self.equity_to_half_collateral_drop),
            "wipeout_drop": end(self.wipeout_drop),
        }

    def rows(self) -> list[dict]:
        """One row per tick for a scalar leverage (the CSV), units in the column names."""
        if np.ndim(self.leverage) != 0:
            raise ValueError("rows() needs a path computed for one leverage")
        cols = {
            "tick": np.arange(self.ticks + 1),
            "price_p0": self.price,
            "counted_equity_c0": self.counted,
            "true_equity_c0": self.true,
            "unrealised_profit_c0": self.unrealised,
            "exposure_c0": self.exposure,
            "liabilities_c0": self.liabilities,
            "half_collateral_drop_decimal": self.half_collateral_drop,
            "equity_to_half_collateral_drop_decimal": self.equity_to_half_collateral_drop,
            "wipeout_drop_decimal": self.wipeout_drop,
        }
        return [{k: (int(v[i]) if k == "tick" else float(v[i])) for k, v in cols.items()} for i in range(self.ticks + 1)]

    def _display(self):
        f = self.final()
        return "Re-levering on unrealised profit (tick model)", [
            ("leverage L", brief(self.leverage, "g")),
            ("guardrails", self.guardrails.describe()),
            ("ticks", str(f["ticks"])),
            ("final price", f"{f['final_price']:.6g} p0"),
            ("counted equity", brief(f["equity_multiple"], ".6g", "C0")),
            ("true equity", brief(f["true_equity_multiple"], ".6g", "C0")),
            ("exposure", brief(f["exposure_multiple"], ".6g", "C0")),
            ("liabilities", brief(f["liabilities_multiple"], ".6g", "C0")),
            ("drop losing half of C0", brief(f["half_collateral_drop"], ".4g", "(decimal price fall)")),
            ("drop to true equity C0/2", brief(f["equity_to_half_collateral_drop"], ".4g", "(decimal price fall)")),
            ("drop wiping the account out", brief(f["wipeout_drop"], ".4g", "(decimal price fall)")),
        ]

    def summary(self) -> str:
        return text_block(*self._display())


def drops(true, exposure) -> dict:
    """Decimal price falls from the current price, position held: loss of half of C0, true equity down to C0/2, wipe-out."""
    true, exposure = np.asarray(true, float), np.asarray(exposure, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "half_collateral_drop": np.where(exposure > 0, HALF / exposure, np.inf),
            "equity_to_half_collateral_drop": np.where(exposure > 0, (true - HALF) / exposure, np.inf),
            "wipeout_drop": np.where(exposure > 0, true / exposure, np.inf),
        }


def relever_path(prices, leverage, guardrails: Guardrails = Guardrails()) -> LeveragePath:
    """The tick model on a non-decreasing price path ``prices`` (multiples of p0, starting at 1), vectorised.

    ``leverage`` may be an array (any shape); the path is along the last axis. On each tick the account buys up to
    L times its counted equity and never sells on the way up (as :func:`simulate_path`): its units are the running
    maximum of L K_j / p_j. Where delta L >= 1 it buys on every tick until a cap binds and
    K_j = min(K_{j-1} (1 + delta L r_j), K_max) (r_j the j-th decimal rise); where delta L < 1 the counted profit never
    catches up with the position, it buys nothing and K_j = min(1 + delta L (p_j - 1), K_max). U_j = sum of units
    held over each tick times the tick's price change.
    """
    p = np.asarray(prices, dtype=float)
    if p.ndim != 1 or p.size < 1 or abs(p[0] - 1.0) > 1e-12:
        raise InputError("the tick model's price path must start at p0 = 1.")
    r = np.diff(p) / p[:-1]
    if np.any(r < 0):
        raise InputError("the tick model re-levers on a rising path; use simulate_path for a path that also falls.")
    lev = check_leverage(leverage)[..., None]
    dl = guardrails.discount * lev
    k_max = 1.0 + float(guardrails.unrealised_cap(1.0))
    compound = np.concatenate([np.ones(lev.shape), np.cumprod(1.0 + dl * r, axis=-1)], axis=-1)
    linear = 1.0 + dl * (p - 1.0)
    counted = np.minimum(np.where(dl >= 1.0, compound, linear), k_max)
    units = np.maximum.accumulate(lev * counted / p, axis=-1)
    unreal = np.concatenate([np.zeros(lev.shape), np.cumsum(units[..., :-1] * np.diff(p), axis=-1)], axis=-1)
    exposure = units * p
    return LeveragePath(np.asarray(leverage, dtype=float), guardrails, p, counted, 1.0 + unreal, unreal, exposure)


def tick_path(leverage, tick: float, rise: float, guardrails: Guardrails = Guardrails()) -> LeveragePath:
    """The seed's set-up: price from 1 to 1 + ``rise`` in ticks of ``tick`` (decimal), re-levering on every tick."""
    return relever_path(tick_prices(tick, rise), leverage, guardrails)


def counted_equity_closed_form(leverage, tick, ticks, discount=1.0):
    """(1 + delta L tick)^k: counted equity (multiples of C0) after k whole ticks, no caps."""
    return (1.0 + np.asarray(discount, float) * np.asarray(leverage, float) * float(tick)) ** np.asarray(ticks, float)


def power_law(price, leverage, discount=1.0):
    """p^(delta L): the continuous limit of the counted equity (multiples of C0) at price p (multiples of p0)."""
    return np.asarray(price, float) ** (np.asarray(discount, float) * np.asarray(leverage, float))


# ----------------------------------------------------------------------------------------------
# A real path: re-lever on up-days, margin calls on the way down
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class SimulatedPath(Displayable):
    """Daily path of the account on real closes (arrays ``leverage.shape + (days,)``; money in multiples of C0).

    ``events``: per day 0 none, 1 margin call met by de-levering, 2 liquidation, 3 bankruptcy (true equity <= 0);
    ``forced_sales``: notional sold that day to meet a margin call (multiples of C0); ``bad_debt``: minus the equity
    of a bankrupt account (multiples of C0).
    """

    dates: tuple
    close: np.ndarray = field(repr=False)
    leverage: Any = None
    guardrails: Guardrails = Guardrails()
    on_fall: str = "liquidate"
    maintenance: float = DEFAULT_MAINTENANCE
    true: np.ndarray = field(default=None, repr=False)
    counted: np.ndarray = field(default=None, repr=False)
    exposure: np.ndarray = field(default=None, repr=False)
    events: np.ndarray = field(default=None, repr=False)
    forced_sales: np.ndarray = field(default=None, repr=False)
    bad_debt: np.ndarray = field(default=None, repr=False)

    EVENT_NAMES = ("", "delever", "liquidation", "bankruptcy")

    @property
    def price(self) -> np.ndarray:
        return self.close / self.close[0]

    @property
    def liabilities(self) -> np.ndarray:
        return self.exposure - self.true

    def summary_dict(self) -> dict:
        """Totals over the window (multiples of C0 unless stated)."""
        ev = np.asarray(self.events)
        return {
            "start": self.dates[0], "end": self.dates[-1], "days": len(self.dates),
            "price_end_p0": float(self.price[-1]),
            "final_true_equity": to_py(self.true[..., -1]),
            "max_true_equity": to_py(np.max(self.true, axis=-1)),
            "max_exposure": to_py(np.max(self.exposure, axis=-1)),
            "margin_calls_delevered": to_py(np.sum(ev == 1, axis=-1)),
            "liquidations": to_py(np.sum(ev == 2, axis=-1)),
            "bankruptcies": to_py(np.sum(ev == 3, axis=-1)),
            "forced_sales_total": to_py(np.sum(self.forced_sales, axis=-1)),
            "largest_forced_sale": to_py(np.max(self.forced_sales, axis=-1)),
            "bad_debt_total": to_py(np.sum(self.bad_debt, axis=-1)),
        }

    def rows(self) -> list[dict]:
        """One row per day for a scalar leverage (the CSV), units in the column names."""
        if np.ndim(self.leverage) != 0:
            raise ValueError("rows() needs a path computed for one leverage")
        return [
            {"date": self.dates[i], "close": float(self.close[i]), "price_p0": float(self.price[i]),
             "true_equity_c0": float(self.true[i]), "counted_equity_c0": float(self.counted[i]),
             "exposure_c0": float(self.exposure[i]), "liabilities_c0": float(self.liabilities[i]),
             "forced_sales_c0": float(self.forced_sales[i]), "bad_debt_c0": float(self.bad_debt[i]),
             "event": self.EVENT_NAMES[int(self.events[i])]}
            for i in range(len(self.dates))
        ]

    def _display(self):
        s = self.summary_dict()
        return f"Re-levering on a real path ({s['start']} to {s['end']}, on a margin call: {self.on_fall})", [
            ("leverage L", brief(self.leverage, "g")),
            ("guardrails", self.guardrails.describe()),
            ("maintenance margin", f"{self.maintenance:g} x initial margin (exposure / L)"),
            ("price at the end", f"{s['price_end_p0']:.4g} p0"),
            ("true equity at the end", brief(s["final_true_equity"], ".4g", "C0")),
            ("largest true equity", brief(s["max_true_equity"], ".4g", "C0")),
            ("largest exposure", brief(s["max_exposure"], ".4g", "C0")),
            ("liquidations", brief(s["liquidations"], "g")),
            ("margin calls met by de-levering", brief(s["margin_calls_delevered"], "g")),
            ("bankruptcies", brief(s["bankruptcies"], "g")),
            ("forced sales, total", brief(s["forced_sales_total"], ".4g", "C0 of notional")),
            ("bad debt, total", brief(s["bad_debt_total"], ".4g", "C0")),
        ]

    def summary(self) -> str:
        return text_block(*self._display())


def simulate_path(dates, close, leverage, guardrails: Guardrails = Guardrails(), *, on_fall: str = "liquidate",
                  maintenance: float = DEFAULT_MAINTENANCE) -> SimulatedPath:
    """Re-lever on up-days, meet margin calls on down-days (rule in the module docstring), on daily ``close`` prices.

    ``leverage`` may be an array (the days are looped, the accounts vectorised). Money in multiples of C0, the first
    close is p0. ``maintenance``: maintenance margin as a share of the initial margin exposure/L, in (0, 1].
    """
    if on_fall not in ON_FALL:
        raise InputError(f"--on-fall must be one of {', '.join(ON_FALL)}, got {on_fall!r}.")
    check_range("--maintenance", maintenance, low=0.0, high=1.0, what="a share of the initial margin in (0, 1]")
    close = np.asarray(close, dtype=float)
    if close.ndim != 1 or close.size < 2:
        raise InputError("the price path needs at least two daily closes.")
    check_range("close", close, low=0.0, what="positive")
    lev = check_leverage(leverage)
    g = guardrails
    p = close / close[0]
    n = p.size
    shape = lev.shape + (n,)
    true, counted, exposure = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    events, sales, bad = np.zeros(shape, dtype=np.int8), np.zeros(shape), np.zeros(shape)
    cash = np.ones(lev.shape)
    q = lev * 1.0            # units at p0 = 1: exposure L C0
    avg = np.ones(lev.shape)
    alive = np.ones(lev.shape, dtype=bool)
    true[..., 0], counted[..., 0], exposure[..., 0] = 1.0, 1.0, lev
    for t in range(1, n):
        pt = p[t]
        u = q * (pt - avg)
        eq = cash + u
        bust = alive & (q > 0) & (eq <= 0)
        bad[..., t] = np.where(bust, -eq, 0.0)
        sales[..., t] = np.where(bust, q * pt, 0.0)
        events[..., t] = np.where(bust, 3, 0)
        alive = alive & ~bust
        q = np.where(bust, 0.0, q)
        cash = np.where(bust, 0.0, cash)
        u = np.where(bust, 0.0, u)
        k = g.counted(cash, u)
        x = q * pt
        call = alive & (q > 0) & (k < maintenance * x / lev)
        if on_fall == "liquidate":
            sold = np.where(call, q, 0.0)
            events[..., t] = np.where(call, 2, events[..., t])
        else:
            q_new = np.maximum(lev * k / pt, 0.0)
            sold = np.where(call, q - q_new, 0.0)
            events[..., t] = np.where(call, 1, events[..., t])
        sales[..., t] += sold * pt
        cash = cash + sold * (pt - avg)
        q = q - sold
        u = q * (pt - avg)
        k = g.counted(cash, u)
        buy = alive & ~call & (pt > p[t - 1]) & (lev * k / pt > q)
        q_new = np.where(buy, lev * k / pt, q)
        with np.errstate(divide="ignore", invalid="ignore"):
            avg = np.where(buy, (q * avg + (q_new - q) * pt) / q_new, np.where(q > 0, avg, pt))
        q = q_new
        u = q * (pt - avg)
        true[..., t] = cash + u
        counted[..., t] = g.counted(cash, u)
        exposure[..., t] = q * pt
    return SimulatedPath(tuple(dates), close, lev if lev.ndim else float(lev), g, on_fall, float(maintenance),
                         true, counted, exposure, events, sales, bad)


# ----------------------------------------------------------------------------------------------
# The link to the design: the effective c_eff and the tighter cap
# ----------------------------------------------------------------------------------------------

#: What :func:`effective_c_eff` needs from the model's state, in multiples of C0 (see the module docstring).
RELEVER_STATE_KEYS = ("counted", "unrealised", "cash", "marginal_discount", "release")


def _state_at_end(path: LeveragePath) -> dict:
    """The model's state at the end of a tick path: counted K, unrealised U, cash C = C0, and the marginal terms
    delta_m (counted share of a small price change of U) and rho = dK/dC - delta_m at that point."""
    g = path.guardrails
    k, u = path.counted[..., -1], path.unrealised[..., -1]
    cap = g.unrealised_cap(np.ones_like(k))
    finite = np.isfinite(cap)
    binding = finite & (g.discount * u >= np.where(finite, cap, 0.0) * (1 - 1e-12))
    s = g.cap_share(np.ones_like(k))
    d_m = np.where(binding, 0.0, np.where(u > 0, g.discount, 1.0))
    dk_dc = np.where(binding, 1.0 / (1.0 - s), 1.0)
    return {"counted": k, "unrealised": u, "cash": np.ones_like(k), "marginal_discount": d_m, "release": dk_dc - d_m}


def effective_c_eff(c_eff, alpha, counted, unrealised, marginal_discount, release):
    """c_eff' = c_eff K / (1 + rho U/K - delta_m alpha c_eff K), ADV units per unit margin ratio; inf if the loop diverges.

    ``c_eff``: the constrained sector's liquidation slope at the start of the run-up (ADV per unit margin ratio, (76));
    ``alpha``: price impact per ADV traded (decimal, (75)); ``counted`` K and ``unrealised`` U: the model's state
    (multiples of C0); ``marginal_discount`` delta_m and ``release`` rho: see the module docstring.
    """
    check_range("--alpha", alpha, low=0.0, what="positive (price impact per unit ADV)")
    check_range("--c-eff", c_eff, low=0.0, what="positive (ADV units per unit margin ratio)")
    c_lvl = np.asarray(c_eff, float) * np.asarray(counted, float)
    den = 1.0 + np.asarray(release, float) * np.asarray(unrealised, float) / np.asarray(counted, float) \
        - np.asarray(marginal_discount, float) * np.asarray(alpha, float) * c_lvl
    with np.errstate(divide="ignore"):
        return np.where(den > 0, c_lvl / np.where(den > 0, den, 1.0), np.inf)


def forced_sales_exact(d_margin, *, margin, cash, unrealised, impact, guardrails: Guardrails) -> float:
    """Forced sales S (notional, multiples of C0) of a binding account after its margin ratio rises by ``d_margin``.

    The account (the model's state: ``cash`` C and ``unrealised`` U in multiples of C0, price normalised to 1) binds
    at ``margin`` M: its exposure is X = K/M with K = ``guardrails.counted(C, U)`` and its average cost is
    a = 1 - U/X. It sells S at the clearing price p1 = 1 - ``impact`` S (``impact``: decimal price fall per C0 of
    notional sold), realising S (p1 - a) into cash, and S solves (M + dM)(X - S) = K(C + S(p1 - a), (X - S)(p1 - a))
    exactly (Brent's method). A second method for :func:`effective_c_eff`: in ADV units (C0 = c_eff M^2 ADV, impact =
    alpha c_eff M^2) its finite-difference slope S/dM must agree with c_eff' as dM -> 0.
    """
    k0 = float(guardrails.counted(cash, unrealised))
    x = k0 / margin
    a = 1.0 - unrealised / x

    def excess(s):
        p1 = 1.0 - impact * s
        k1 = float(guardrails.counted(cash + s * (p1 - a), (x - s) * (p1 - a)))
        return (margin + d_margin) * (x - s) - k1

    hi = 0.5 * x
    if excess(0.0) * excess(hi) > 0:
        raise ValueError("no forced-sale solution in [0, X/2]: the margin rise is too large or the spiral diverges")
    return brentq(excess, 0.0, hi, xtol=1e-15 * max(1.0, x), rtol=4e-16 * 8)


@dataclass(frozen=True, repr=False)
class DesignLink(Displayable):
    """Per-state effective c_eff and tighter cap for a margin rule M(r) under re-levering (arrays over the rule's vols).

    ``vol`` daily vol (decimal), ``margin`` margin ratio (decimal), ``leverage`` 1/M, ``counted`` K_R (multiples of C0
    after the run-up ``rise``), ``c_eff_effective`` (ADV per unit margin ratio; inf: the loss spiral diverges),
    ``cap`` K = factor (2 alpha + kappa)/(alpha^2 c_eff) and ``cap_effective`` (margin ratio per unit daily vol),
    ``slope`` the rule's dM/dsigma on each interval's right end (margin ratio per unit daily vol; NaN at the first).
    """

    vol: np.ndarray = field(repr=False)
    margin: np.ndarray = field(repr=False)
    leverage: np.ndarray = field(repr=False)
    counted: np.ndarray = field(repr=False)
    unrealised: np.ndarray = field(repr=False)
    c_eff: float = 0.0
    alpha: float = 0.0
    inventory_penalty: float = 0.0
    factor: float = 1.0
    rise: float = 0.0
    tick: float = 0.0
    guardrails: Guardrails = Guardrails()
    c_eff_effective: np.ndarray = field(default=None, repr=False)
    slope: np.ndarray = field(default=None, repr=False)
    skipped: int = 0

    @property
    def cap(self) -> float:
        return float(self.factor * cap_dm_dvol(self.alpha, self.c_eff, self.inventory_penalty))

    @property
    def cap_effective(self) -> np.ndarray:
        c = np.asarray(self.c_eff_effective, float)
        with np.errstate(divide="ignore"):
            return np.where(np.isfinite(c), self.factor * (2 * self.alpha + self.inventory_penalty) / (self.alpha ** 2 * c), 0.0)

    @property
    def binding(self) -> int:
        """Index of the state with the largest c_eff' (the tightest cap)."""
        return int(np.argmax(np.where(np.isfinite(self.c_eff_effective), self.c_eff_effective, np.inf)))

    def over_cap(self) -> np.ndarray:
        """Where the rule's slope (into each state) exceeds that state's tighter cap (NaN slopes count as no)."""
        s = np.nan_to_num(self.slope, nan=-np.inf)
        return s > self.cap_effective * (1 + 1e-9)

    def to_dict(self) -> dict:
        b = self.binding
        return {
            "c_eff": self.c_eff, "alpha": self.alpha, "inventory_penalty": self.inventory_penalty, "cap_factor": self.factor,
            "rise": self.rise, "tick": self.tick, "guardrails": self.guardrails.to_dict(),
            "cap_dm_dvol": self.cap,
            "c_eff_effective_max": to_py(self.c_eff_effective[b]),
            "cap_dm_dvol_effective_min": to_py(self.cap_effective[b]),
            "binding_vol_daily": float(self.vol[b]), "binding_margin": float(self.margin[b]),
            "binding_leverage": float(self.leverage[b]),
            "states": int(self.vol.size), "states_skipped_zero_margin": self.skipped,
            "states_over_effective_cap": int(np.sum(self.over_cap())),
            "spiral_diverges_states": int(np.sum(~np.isfinite(self.c_eff_effective))),
        }

    def rows(self) -> list[dict]:
        over = self.over_cap()
        ce, ke = self.c_eff_effective, self.cap_effective
        return [
            {"vol_daily": float(self.vol[i]), "vol_annual": float(self.vol[i] * math.sqrt(252.0)), "margin": float(self.margin[i]),
             "leverage": float(self.leverage[i]), "counted_equity_c0": float(self.counted[i]),
             "unrealised_profit_c0": float(self.unrealised[i]), "c_eff": self.c_eff,
             "c_eff_effective": float(ce[i]) if np.isfinite(ce[i]) else None,
             "cap_dm_dvol": self.cap, "cap_dm_dvol_effective": float(ke[i]),
             "slope_dm_dvol": float(self.slope[i]) if np.isfinite(self.slope[i]) else None,
             "over_effective_cap": bool(over[i])}
            for i in range(self.vol.size)
        ]

    def _display(self):
        d = self.to_dict()
        ce = d["c_eff_effective_max"]
        return f"Re-levering and the cap (after a {100 * self.rise:g}% run-up, {self.guardrails.describe()})", [
            ("c_eff (input)", f"{self.c_eff:.6g} ADV per unit margin ratio"),
            ("cap K", f"{self.cap:.6g} margin ratio per unit daily vol"),
            ("tightest state", f"vol_annual {100 * math.sqrt(252) * d['binding_vol_daily']:.4g}%, margin {d['binding_margin']:.4g}, "
                               f"L = 1/M = {d['binding_leverage']:.4g}"),
            ("effective c_eff", "infinite (the loss spiral diverges)" if ce is None else f"{ce:.6g} ADV per unit margin ratio"),
            ("cap with re-levering K'", f"{d['cap_dm_dvol_effective_min']:.6g} margin ratio per unit daily vol "
                                        f"({d['cap_dm_dvol_effective_min'] / self.cap:.3g} x K)"),
            ("states whose slope exceeds their K'", f"{d['states_over_effective_cap']} of {d['states']}"),
        ]

    def summary(self) -> str:
        return text_block(*self._display())


def design_link(vol, margin, *, c_eff: float, alpha: float, rise: float, tick: float,
                guardrails: Guardrails = Guardrails(), inventory_penalty: float = 0.0, factor: float = 1.0) -> DesignLink:
    """The effective c_eff and tighter cap at every state of a margin rule (``vol`` daily vol, ``margin`` ratio).

    Each state's leverage is L = 1/M(r); the tick model runs the run-up ``rise`` at that leverage (ticks of ``tick``)
    and :func:`effective_c_eff` turns its end state into c_eff'. States with M <= 0 (no finite leverage) are left out
    and counted in ``skipped``. ``factor`` is the risk input's factor of ``design/cap.py`` (1 for the variance of one
    return). The rule's slope dM/dsigma is the finite difference into each state.
    """
    vol, margin = np.asarray(vol, float), np.asarray(margin, float)
    check_range("--alpha", alpha, low=0.0, what="positive (price impact per unit ADV)")
    check_range("--c-eff", c_eff, low=0.0, what="positive (ADV units per unit margin ratio)")
    check_range("--inventory-penalty", inventory_penalty, low=0.0, low_inclusive=True, what="non-negative (kappa)")
    keep = margin > 0
    if not keep.any():
        raise InputError("the margin rule has no state with a positive margin, so no finite leverage 1/M to study.")
    slope = np.full(vol.shape, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        slope[1:] = np.where(np.diff(vol) > 0, np.diff(margin) / np.diff(vol), np.nan)
    v, m, sl = vol[keep], margin[keep], slope[keep]
    lev = 1.0 / m
    path = tick_path(lev, tick, rise, guardrails)
    st = _state_at_end(path)
    ce = effective_c_eff(c_eff, alpha, st["counted"], st["unrealised"], st["marginal_discount"], st["release"])
    return DesignLink(v, m, lev, st["counted"], st["unrealised"], float(c_eff), float(alpha), float(inventory_penalty),
                      float(factor), float(rise), float(tick), guardrails, ce, sl, int((~keep).sum()))


# ----------------------------------------------------------------------------------------------
# The seed's claims, measured with the model
# ----------------------------------------------------------------------------------------------

#: The seed's example ("a tick size of 0.1% growth, initial collateral of 1 USDC, and leverage factor of 3x").
SEED_TICK = 0.001
SEED_LEVERAGE = 3.0
SEED_RISE = 0.4
#: The seed's example discount ("if the discount factor is 0.75").
SEED_DISCOUNT = 0.75


def _first_price_reaching(path: LeveragePath, values, level: float) -> float | None:
    hit = np.nonzero(np.asarray(values) >= level)[0]
    return float(path.price[hit[0]]) if hit.size else None


def seed_claims() -> list[dict]:
    """Each quantitative claim of reference 003 with what the tick model computes at the seed's own settings.

    Returns dicts ``{"claim", "reading", "computed", "verdict"}`` (text) plus ``"value"`` (the number measured).
    """
    out = []
    base = tick_path(SEED_LEVERAGE, SEED_TICK, SEED_RISE)
    f = base.final()
    lev = np.arange(1.0, 11.0)
    fam = tick_path(lev, SEED_TICK, SEED_RISE).final()
    half_by_l = np.asarray(fam["half_collateral_drop"])
    first_l = float(lev[np.nonzero(half_by_l < 0.04)[0][0]])
    far = tick_path(SEED_LEVERAGE, SEED_TICK, 2.0)
    p_hold = _first_price_reaching(far, -np.asarray(far.half_collateral_drop), -0.04)
    out.append({
        "claim": "in the case of a price run-up of 40%, a price drop of less than 4% would be enough to eat into half of "
                 "the original collateral (L = 3, tick 0.1%, C0 = 1)",
        "reading": "the fall whose loss equals C0/2 (0.5 C0 / exposure); and the fall that takes the true equity to C0/2",
        "value": f["half_collateral_drop"],
        "computed": f"{100 * f['half_collateral_drop']:.2f}% (loss of C0/2) and {100 * f['equity_to_half_collateral_drop']:.1f}% "
                    f"(true equity down to C0/2), exposure {f['exposure_multiple']:.3f} C0; under 4% only from L = {first_l:g} "
                    f"({100 * half_by_l[int(first_l) - 1]:.2f}%) or, at L = 3, from a run-up of {100 * (p_hold - 1):.1f}%",
        "verdict": ("holds" if f["half_collateral_drop"] < 0.04 else
                    f"does not hold at 3x ({100 * f['half_collateral_drop']:.1f}% > 4% even in the reading most favourable to it); "
                    f"under 4% from L = {first_l:g}"),
    })
    long = tick_path(SEED_LEVERAGE, SEED_TICK, 2.0)
    p10 = _first_price_reaching(long, long.liabilities, 10.0)
    p20 = _first_price_reaching(long, long.liabilities, 20.0)
    out.append({
        "claim": "for a mere $1 of collateral, a position can take on tens of dollars of debt without ever settling a position (3x)",
        "reading": "liabilities = exposure - true equity, multiples of C0",
        "value": f["liabilities_multiple"],
        "computed": f"{f['liabilities_multiple']:.2f} C0 at a 40% rise; 10 C0 from a {100 * (p10 - 1):.0f}% rise, 20 C0 from a "
                    f"{100 * (p20 - 1):.0f}% rise",
        "verdict": (f"holds only after a run-up of {100 * (p10 - 1):.0f}% or more (at the 40% rise of the seed's example the "
                    f"debt is {f['liabilities_multiple']:.1f} C0)"),
    })
    k_end = far.counted[-1]
    slope = float(np.log(k_end / far.counted[-2]) / np.log(far.price[-1] / far.price[-2]))
    out.append({
        "claim": "both the portfolio asset and liabilities curves follow power equations (superlinear growth in price)",
        "reading": "counted equity against price, d log K / d log p",
        "value": slope,
        "computed": f"K = (1 + delta L tick)^k, d log K / d log p = {slope:.4f} at L = 3 (continuous limit delta L = 3); "
                    f"K at p = 3 is {k_end:.2f} against 3^3 = 27",
        "verdict": ("holds" if abs(slope - SEED_LEVERAGE) < 0.01 else "does not hold")
                   + " for delta L > 1 (for delta L < 1 the account buys nothing and K is linear in p)",
    })
    a = tick_path(SEED_LEVERAGE, SEED_TICK, SEED_RISE, Guardrails(SEED_DISCOUNT)).final()
    b = tick_path(SEED_DISCOUNT * SEED_LEVERAGE, SEED_TICK, SEED_RISE).final()
    out.append({
        "claim": "if the previous allowed leverage was 3x, then the allowed leverage on unrealized profits would be 0.75 * 3 = 2.25x",
        "reading": "counted equity with (delta = 0.75, L = 3) against (delta = 1, L = 2.25)",
        "value": a["equity_multiple"] / b["equity_multiple"],
        "computed": f"counted equity {a['equity_multiple']:.4f} against {b['equity_multiple']:.4f} C0; exposure "
                    f"{a['exposure_multiple']:.3f} against {b['exposure_multiple']:.3f} C0",
        "verdict": ("holds for the counted equity" if abs(a["equity_multiple"] / b["equity_multiple"] - 1) < 1e-9 else "does not hold")
                   + f"; the exposure is still L K, {a['exposure_multiple'] / b['exposure_multiple']:.3g} times a {SEED_DISCOUNT * SEED_LEVERAGE:g}x account's",
    })
    k = np.asarray(fam["equity_multiple"])
    ratio = k[1:] / k[:-1]
    out.append({
        "claim": "this growth scales exponentially with the maximum allowed per-position leverage",
        "reading": "counted equity at a 40% rise for L = 1..10: ratio K(L+1)/K(L)",
        "value": float(ratio.max() / ratio.min()),
        "computed": f"K(L+1)/K(L) from {ratio.min():.4f} to {ratio.max():.4f} (continuous limit 1.4 for every L); K(10) = {k[-1]:.1f} C0",
        "verdict": (f"holds: exp(delta L log p) in the continuous limit; with 0.1% ticks the ratio drifts by "
                    f"{100 * (ratio.max() / ratio.min() - 1):.2f}% across L = 1..10"),
    })
    kmax = 1.0 + float(Guardrails(1.0, account_cap=0.5).unrealised_cap(1.0))
    cap5 = tick_path(5.0, SEED_TICK, 2.0, Guardrails(1.0, account_cap=0.5))
    out.append({
        "claim": "global and per-account caps on unrealized collateral ... should provide stronger guarantees around solvency",
        "reading": "counted equity bound K_max = 1/(1 - s) with a per-account cap s = 0.5, L = 5 up to a 200% rise",
        "value": float(cap5.counted[-1]),
        "computed": f"counted equity stops at {kmax:g} C0 (uncapped: {tick_path(5.0, SEED_TICK, 2.0).counted[-1]:.0f} C0); "
                    f"exposure then grows only with the price (units fixed), {cap5.exposure[-1]:.1f} C0 at p = 3",
        "verdict": ("holds in the model" if abs(cap5.counted[-1] - kmax) < 1e-9 else "does not hold")
                   + ": the cap bounds counted equity and removes the power law once it binds",
    })
    return out


# ----------------------------------------------------------------------------------------------
# The whole study behind ``margin-design leverage``
# ----------------------------------------------------------------------------------------------

#: Leverages of the seed's figures and of the guardrail table.
FAMILY_LEVERAGES = (1.0, 2.0, 3.0, 4.0, 5.0)
#: Price paths that can be studied by name (loaded by :func:`margin_design.calibration.data.load_dataset`).
PATHS = ("sp500",)


def load_path(name: str, start: str | None = None, end: str | None = None):
    """Daily closes of a bundled data set between ``start`` and ``end`` (ISO dates, inside the data's range)."""
    from .data import _iso, load_dataset, select_window

    if name not in PATHS:
        raise InputError(f"--path must be one of {', '.join(PATHS)}, got {name!r}.")
    series = load_dataset(name)
    first, last = series.dates[0], series.dates[-1]
    for flag, value in (("--start", start), ("--end", end)):
        iso = _iso(flag, value)
        if iso is not None and not first <= iso <= last:
            raise InputError(f"{flag} {value} is outside the {name} data, which runs from {first} to {last}.")
    window = select_window(series, start, end)
    if len(window) < 2:
        raise InputError(f"the {name} data between {start or first} and {end or last} hold fewer than two closes.")
    return window


def guardrail_scenarios(g: Guardrails) -> tuple[tuple[str, Guardrails], ...]:
    """The guardrail table's columns: none; a discount (the user's, else the seed's 0.75); a per-account cap (the
    user's, else 0.5); a global cap (the user's with its venue share, else 0.5 with half of the venue re-levering);
    and the user's combination when it has more than one guardrail."""
    d = g.discount if g.discount < 1.0 else SEED_DISCOUNT
    a = g.account_cap if g.account_cap is not None else 0.5
    if g.global_cap is not None:
        s, w = g.global_cap, g.venue_share
    else:
        s, w = 0.5, (g.venue_share if g.venue_share < 1.0 else 0.5)
    out = [("none", Guardrails()), (f"discount {d:g}", Guardrails(d)), (f"account cap {a:g}", Guardrails(1.0, account_cap=a)),
           (f"global cap {s:g} (share {w:g})", Guardrails(1.0, global_cap=s, venue_share=w))]
    given = sum([g.discount < 1.0, g.account_cap is not None, g.global_cap is not None])
    if given > 1:
        out.append(("as given", g))
    return tuple(out)


@dataclass(frozen=True, repr=False)
class LeverageStudy(Displayable):
    """Everything ``margin-design leverage`` reports (computed here; rendered by ``reports/leverage.py``).

    ``path``: the tick model at the user's L; ``family``: L = 1..5 with the user's guardrails; ``by_leverage``: L on a
    grid, value at the rise; ``scenarios`` / ``table``: the guardrail table (name -> path over L = 1..5) and
    ``at_leverage`` (name -> path at the user's L); ``real``: simulated real paths (name -> :class:`SimulatedPath`);
    ``design``: the :class:`DesignLink` of a margin rule; ``claims``: :func:`seed_claims`.
    """

    leverage: float
    tick: float
    rise: float
    guardrails: Guardrails
    path: LeveragePath = field(repr=False)
    family: LeveragePath = field(repr=False)
    by_leverage: LeveragePath = field(repr=False)
    by_leverage_plain: LeveragePath = field(repr=False)
    scenarios: tuple = field(repr=False)
    table: dict = field(repr=False)
    at_leverage: dict = field(repr=False)
    claims: list = field(repr=False)
    real: dict | None = field(default=None, repr=False)
    real_source: str | None = None
    on_fall: str = "liquidate"
    maintenance: float = DEFAULT_MAINTENANCE
    design: DesignLink | None = field(default=None, repr=False)
    design_source: str | None = None

    def to_dict(self) -> dict:
        out = {"leverage": self.leverage, "tick": self.tick, "rise": self.rise, "guardrails": self.guardrails.to_dict()}
        out.update(self.path.final())
        out["units"] = {"equity_multiple": "counted equity, multiples of C0", "true_equity_multiple": "multiples of C0",
                        "exposure_multiple": "multiples of C0", "liabilities_multiple": "exposure - true equity, multiples of C0",
                        "half_collateral_drop": "decimal price fall whose loss is C0/2",
                        "equity_to_half_collateral_drop": "decimal price fall taking true equity to C0/2",
                        "wipeout_drop": "decimal price fall taking true equity to 0", "final_price": "multiples of p0"}
        out["guardrail_table"] = {name: {"leverage": list(FAMILY_LEVERAGES), **{k: v for k, v in p.final().items()
                                                                              if k not in ("ticks", "final_price")}}
                                  for name, p in self.table.items()}
        if self.real is not None:
            out["real_path"] = {"source": self.real_source, "on_fall": self.on_fall, "maintenance": self.maintenance,
                                **{name: sim.summary_dict() for name, sim in self.real.items()}}
        if self.design is not None:
            out["design"] = {"source": self.design_source, **self.design.to_dict()}
        out["seed_claims"] = [{k: (to_py(v) if k == "value" else v) for k, v in c.items()} for c in self.claims]
        return out

    def _display(self):
        return self.path._display()

    def summary(self) -> str:
        parts = [self.path.summary()]
        if self.real is not None:
            parts.append(self.real["as given"].summary())
        if self.design is not None:
            parts.append(self.design.summary())
        return "\n".join(parts)


def build_study(leverage: float, tick: float, rise: float, guardrails: Guardrails = Guardrails(), *,
                path=None, on_fall: str = "liquidate", maintenance: float = DEFAULT_MAINTENANCE,
                rule_vol=None, rule_margin=None, rule_source: str | None = None, alpha=None, c_eff=None,
                inventory_penalty: float = 0.0, cap_factor: float = 1.0) -> LeverageStudy:
    """Compute the study: the tick model, L = 1..5, the value against L, the guardrail table, optionally a real path
    (``path``: a :class:`~margin_design.calibration.data.PriceSeries`) and the design link of a margin rule
    (``rule_vol`` daily vols, ``rule_margin`` margin ratios, with ``alpha`` and ``c_eff``; arrays read by the caller)."""
    lev = float(check_leverage(leverage))
    tick, rise = check_tick(tick), check_rise(rise)
    if on_fall not in ON_FALL:
        raise InputError(f"--on-fall must be one of {', '.join(ON_FALL)}, got {on_fall!r}.")
    check_range("--maintenance", maintenance, low=0.0, high=1.0, what="a share of the initial margin in (0, 1]")
    prices = tick_prices(tick, rise)
    fam = np.asarray(FAMILY_LEVERAGES)
    grid = np.arange(1.0, max(10.0, math.ceil(2 * lev)) + 1e-9, 0.25)
    scen = guardrail_scenarios(guardrails)
    real = None
    source = None
    if path is not None:
        real = {"as given": simulate_path(path.dates, path.close, lev, guardrails, on_fall=on_fall, maintenance=maintenance),
                ("delever" if on_fall == "liquidate" else "liquidate"):
                    simulate_path(path.dates, path.close, lev, guardrails, on_fall="delever" if on_fall == "liquidate" else "liquidate",
                                  maintenance=maintenance),
                "no portfolio margin (delta = 0)":
                    simulate_path(path.dates, path.close, lev, Guardrails(0.0), on_fall=on_fall, maintenance=maintenance)}
        source = path.source
    design = None
    if rule_vol is not None:
        if alpha is None or c_eff is None:
            raise InputError("--schedule needs --alpha and --c-eff (the cap's market inputs) to derive the effective c_eff.")
        design = design_link(rule_vol, rule_margin, c_eff=c_eff, alpha=alpha, rise=rise, tick=tick, guardrails=guardrails,
                             inventory_penalty=inventory_penalty, factor=cap_factor)
    return LeverageStudy(
        leverage=lev, tick=tick, rise=rise, guardrails=guardrails,
        path=relever_path(prices, lev, guardrails),
        family=relever_path(prices, fam, guardrails),
        by_leverage=relever_path(prices, grid, guardrails),
        by_leverage_plain=relever_path(prices, grid, Guardrails()),
        scenarios=scen,
        table={name: relever_path(prices, fam, g) for name, g in scen},
        at_leverage={name: relever_path(prices, lev, g) for name, g in scen},
        claims=seed_claims(), real=real, real_source=source, on_fall=on_fall, maintenance=float(maintenance),
        design=design, design_source=rule_source,
    )
