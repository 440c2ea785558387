"""c_X^eff from account-level data (Nicolai 2026, (6)-(8), Appendix A.2.1 Lemma 11, Appendix B (62)-(63)).

Each account i has equity E(i) > 0 and a target exposure x_bar(i) >= 0 (the long side, where forced
adjustment is selling, as in Appendix B.2; flip signs to study short positions). Under the target-with-cap
rule (6) its position at margin M is ``x(i; M) = min{x_bar(i), E(i)/M}``. Accounts carry a mass w(i)
(default 1 each); everything "per unit of total mass" divides by ``sum w``, which is the paper's
normalisation of the trader continuum to [0, 1].

Units: per unit notional (price 1), so M is the margin ratio (decimal) and E/M is a position in the units
of E and x_bar. Give E and x_bar in ADV units (or divide both by ADV, the ``adv`` argument of
:func:`read_accounts_csv`) and c_eff is in ADV units per unit margin ratio, the unit of the design
config's ``[market] c_eff``.

* binding set at M: ``x_bar(i) >= E(i)/M`` (63) (the right derivative of X counts accounts exactly at the cap);
* aggregate exposure (7): ``X(M) = sum_i w(i) x(i; M) / sum_i w(i)``;
* effective liquidation slope (63): ``c_eff = -dX/dM = (1/M^2) sum_{binding} w(i) E(i) / sum_i w(i)``;
* Lemma 11 (55): with B the accounts with ``x_bar(i) > E(i)/M``, for every Delta M in [0, delta_M],
  ``X(M) - X(M + Delta M) >= (int_B E / (M + delta_M)^2) Delta M``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from margin_design.display import Displayable, text_block
from margin_design.errors import InputError

from ._checks import check_range
from margin_design.csvio import read_csv_columns

__all__ = [
    "account_positions",
    "binding_mask",
    "aggregate_exposure",
    "binding_mass",
    "c_eff_from_accounts",
    "lemma11_slope_bound",
    "AccountsCalibration",
    "calibrate_accounts",
    "read_accounts_csv",
]


def _arrays(equity, target, mass):
    e = np.asarray(equity, dtype=float)
    x = np.asarray(target, dtype=float)
    w = np.ones_like(e) if mass is None else np.asarray(mass, dtype=float)
    check_range("equity", e, low=0.0, what="positive (E(i) > 0)")
    check_range("target", x, low=0.0, low_inclusive=True, what="non-negative (long-side target x_bar(i) >= 0)")
    check_range("mass", w, low=0.0, low_inclusive=True, what="non-negative")
    e, x, w = np.broadcast_arrays(e, x, w)
    if e.size == 0:
        raise InputError("the account data has no rows.")
    if not np.sum(w) > 0:
        raise InputError("mass must have a positive total, got 0.")
    return e, x, w


def account_positions(equity, target, margin):
    """Positions under the target-with-cap rule, ``x(i; M) = min{x_bar(i), E(i)/M}`` (6), in the units of E and x_bar."""
    check_range("margin", margin, low=0.0, what="positive (margin ratio, decimal)")
    e = np.asarray(equity, dtype=float)
    x = np.asarray(target, dtype=float)
    return np.minimum(x, e / np.asarray(margin, dtype=float))


def binding_mask(equity, target, margin):
    """Accounts whose cap binds at M: ``x_bar(i) >= E(i)/M`` (63), i.e. ``x_bar(i) M >= E(i)``."""
    check_range("margin", margin, low=0.0, what="positive (margin ratio, decimal)")
    return np.asarray(target, dtype=float) * np.asarray(margin, dtype=float) >= np.asarray(equity, dtype=float)


def aggregate_exposure(equity, target, margin, mass=None):
    """Aggregate constrained exposure per unit of total mass, ``X(M) = sum w x(i; M) / sum w`` (7)."""
    e, x, w = _arrays(equity, target, mass)
    return float(np.sum(w * account_positions(e, x, margin)) / np.sum(w))


def binding_mass(equity, target, margin, mass=None):
    """Fraction of the total mass whose cap binds at M, ``m_t^(0)`` of Appendix B.3 (decimal in [0, 1])."""
    e, x, w = _arrays(equity, target, mass)
    return float(np.sum(w * binding_mask(e, x, margin)) / np.sum(w))


def c_eff_from_accounts(equity, target, margin, mass=None):
    """Effective liquidation slope (63): ``c_eff = (1/M^2) sum_{binding} w(i) E(i) / sum w(i)``.

    Per unit of total mass, in (units of E) per unit margin ratio; it is ``-dX/dM`` from the right at M.
    """
    e, x, w = _arrays(equity, target, mass)
    m = float(margin)
    return float(np.sum(w * e * binding_mask(e, x, m)) / np.sum(w) / m**2)


def lemma11_slope_bound(equity, target, margin, margin_headroom, mass=None):
    """Lemma 11's lower bound on the liquidation slope, ``c_X = int_B E / (M + delta_M)^2`` (55).

    B is the set of accounts strictly over their cap at M (``x_bar(i) > E(i)/M``), per unit of total mass;
    ``margin_headroom`` is delta_M >= 0 (decimal margin ratio). For every Delta M in [0, delta_M],
    ``X(M) - X(M + Delta M) >= c_X Delta M``.
    """
    check_range("margin_headroom", margin_headroom, low=0.0, low_inclusive=True, what="non-negative (delta_M)")
    e, x, w = _arrays(equity, target, mass)
    m = float(margin)
    strict = x * m > e
    return float(np.sum(w * e * strict) / np.sum(w) / (m + float(margin_headroom)) ** 2)


@dataclass(frozen=True, repr=False)
class AccountsCalibration(Displayable):
    """How much constrained accounts must sell per unit rise of the margin ratio, c_X^eff of (63), estimated from
    account-level data at next margin M (decimal margin ratio).

    ``n_accounts``; ``total_mass`` (sum of masses); ``binding_mass`` (fraction of the total mass, decimal);
    ``binding_equity`` (sum of w E over binding accounts per unit of total mass); ``exposure`` X(M) per unit
    of total mass (7); ``c_eff`` (63) per unit of total mass; ``c_eff_total = c_eff x total_mass`` (the
    slope of the summed exposure of the listed accounts); ``lemma11_bound`` (55) at ``margin_headroom``.
    Units: those of E and x_bar (ADV units if they were given or scaled to ADV).
    """

    margin: float
    margin_headroom: float
    n_accounts: int
    total_mass: float
    binding_mass: float
    binding_equity: float
    exposure: float
    c_eff: float
    c_eff_total: float
    lemma11_bound: float

    def to_dict(self) -> dict:
        return {
            "margin": self.margin,
            "margin_headroom": self.margin_headroom,
            "n_accounts": self.n_accounts,
            "total_mass": self.total_mass,
            "binding_mass": self.binding_mass,
            "binding_equity": self.binding_equity,
            "exposure": self.exposure,
            "c_eff": self.c_eff,
            "c_eff_total": self.c_eff_total,
            "lemma11_bound": self.lemma11_bound,
        }

    def _display(self) -> tuple[str, list[tuple[str, str]]]:
        return f"c_X^eff from {self.n_accounts} accounts at margin M = {self.margin:g} (63)", [
            ("binding mass", f"{self.binding_mass:.4g} of the total mass {self.total_mass:.6g}"),
            ("exposure X(M)", f"{self.exposure:.6g} per unit of total mass (7)"),
            ("c_X^eff", f"{self.c_eff:.6g} per unit of total mass; {self.c_eff_total:.6g} for the listed accounts (63)"),
            ("Lemma 11 bound", f"{self.lemma11_bound:.6g} at margin headroom {self.margin_headroom:g} (55)"),
        ]

    def summary(self) -> str:
        """Binding mass, exposure, c_X^eff and Lemma 11's bound (text, one line each)."""
        return text_block(*self._display())


def calibrate_accounts(equity, target, margin, mass=None, margin_headroom=0.0) -> AccountsCalibration:
    """Binding mass, exposure and c_X^eff (63) with Lemma 11's bound (55) from account arrays (see module doc)."""
    check_range("margin", margin, low=0.0, what="positive (margin ratio, decimal)")
    check_range("margin_headroom", margin_headroom, low=0.0, low_inclusive=True, what="non-negative (delta_M)")
    e, x, w = _arrays(equity, target, mass)
    m = float(margin)
    total = float(np.sum(w))
    c = c_eff_from_accounts(e, x, m, w)
    return AccountsCalibration(
        margin=m,
        margin_headroom=float(margin_headroom),
        n_accounts=int(e.size),
        total_mass=total,
        binding_mass=binding_mass(e, x, m, w),
        binding_equity=float(np.sum(w * e * binding_mask(e, x, m)) / total),
        exposure=aggregate_exposure(e, x, m, w),
        c_eff=c,
        c_eff_total=c * total,
        lemma11_bound=lemma11_slope_bound(e, x, m, margin_headroom, w),
    )


def read_accounts_csv(path: str | Path, adv: float | None = None):
    """Read accounts from a CSV with header columns ``equity``, ``target`` and optionally ``mass``.

    ``equity`` is E(i) > 0 and ``target`` the target exposure x_bar(i) >= 0, in the same units (ADV units,
    or currency with ``adv`` the average daily traded value in that currency, by which both are divided).
    Other columns (an account id, say) are ignored. Returns ``(equity, target, mass_or_None)``.
    """
    cols = read_csv_columns(path, required=("equity", "target"), optional=("mass",))
    e, x = cols["equity"], cols["target"]
    check_range(f"column 'equity' of {Path(path).name}", e, low=0.0, what="positive (E(i) > 0)")
    check_range(
        f"column 'target' of {Path(path).name}",
        x,
        low=0.0,
        low_inclusive=True,
        what="non-negative (long side of Appendix B.2; flip the signs to study short positions)",
    )
    w = cols.get("mass")
    if w is not None:
        check_range(f"column 'mass' of {Path(path).name}", w, low=0.0, low_inclusive=True, what="non-negative")
    if adv is not None:
        check_range("adv", adv, low=0.0, what="positive (average daily traded value)")
        e, x = e / adv, x / adv
    return e, x, w
