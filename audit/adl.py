"""Risk-based auto-deleveraging (ADL): who is cut when margin and default resources are exhausted.

Reference: ``reference/004_8c2d365bc56737a0.txt``, Campbell, Hey, Moallemi and Nutz (2026), "Risk-Based
Auto-Deleveraging", arXiv:2603.15963. The stored reference is the paper's abstract page only, so this module cites
the abstract's statements (quoted as [A1]-[A6] below) and derives the formulas itself; no equation or proposition
number of the paper is quoted, because the stored text has none:

* [A1] ADL "minimizes the exchange's risk of loss arising from future equity shortfalls";
* [A2] single asset, isolated margin, risk-neutral expected loss: "the unique optimal policy minimizes the maximum
  leverage among participants";
* [A3] "positions are reduced first for the most highly levered accounts, and leverage is progressively equalized
  via a water-filling (or leverage-draining) rule";
* [A4] the policy is "distribution-free, wash-trade resistant, Sybil resistant, and path-independent";
* [A5] multi-asset cross margin: "separable across accounts after introducing asset-level shadow prices";
* [A6] one dominant risk factor: "water-filling ... in a factor-adjusted notion of leverage".

Where it lives: the module computes a policy for a given account book and analyses a given rule (the exchanges'
queue) against it, as the audit analyses a given margin rule; it reads the S&P 500 returns through the calibration
layer and renders nothing (the CSV and the figure are :mod:`margin_design.reports.adl`), hence ``audit/``, beside
the audit (GUIDE.md's table: reference 004 gets "its own small module beside the audit").

Units. Price normalised to 1 (the mark price at the ADL), so a position x_i is signed notional (currency; long > 0)
and the equity e_i is in the same currency; leverage is ``|x_i| / e_i`` (a multiple, 1/leverage is the account's
margin ratio); reductions are in position units (notional at the mark); a shock W is the loss per unit of notional
on the side being deleveraged over the close-out horizon (decimal: -return for longs, +return for shorts).

Single asset (one side of the book: exchanges split longs and shorts and deleverage the side opposite the bankrupt
position). After cuts r_i in [0, |x_i|] (at the mark, equity unchanged) account i holds ``|y_i| = |x_i| - r_i``; its
equity shortfall after the shock is ``(|y_i| W - e_i)^+`` and the exchange's expected loss [A1] is

    EL(r) = sum_i E[(|y_i| W - e_i)^+] = sum_i e_i phi(|y_i| / e_i),   phi(l) = E[(l W - 1)^+]   (e_i > 0).

phi is convex and increasing, and each term is the perspective of phi, so EL is convex in r. KKT with the
multiplier mu of ``sum r_i = R``: phi'(l_i) = mu for every account that is cut, phi'(l_i) <= mu for the rest. With phi
strictly convex (W has a density on its upper tail: normal, Student-t) every cut account ends at one leverage l* and
no untouched account is above it -- leverage water-filling [A2]-[A3], whatever the distribution [A4]:

    l* solves  sum_i max(0, |x_i| - l* e_i) = R,        r_i = max(0, |x_i| - l* e_i).

:func:`water_fill` computes l* exactly by sorting (O(n log n), no bisection). With an empirical (discrete) W, phi is
piecewise linear: water-filling is still optimal (it attains the minimum), but no longer the only optimum.

Accounts with non-positive equity (e_i <= 0 holding a position) have infinite leverage (BitMEX's effective leverage
``|mark value| / (mark value - bankruptcy value)`` diverges as equity -> 0), so the drain reaches them first: they are
closed before any solvent account is cut; if R is smaller than their total position they share it pro rata to
position (the limit of water-filling as their equity tends to zero at a common margin ratio; pro rata keeps Sybil
resistance and path independence). Note, checked in the tests: under the expected-loss objective the marginal value
of cutting account i is ``E[W 1{W > e_i/|y_i|}]``, which peaks at e_i = 0 and falls towards E[W] for deeply
negative equity (that loss is mostly already sunk), so "non-positive equity first" is the exchange's convention and
the water-filling limit, not a consequence of [A1] alone.

The queue rule (:func:`queue_cut`): exchanges rank the side by ``PnL% x effective leverage`` (``PnL% / effective
leverage`` when PnL% < 0; BitMEX, "Auto-Deleveraging", https://www.bitmex.com/app/autoDeleveraging) and close
positions fully in rank order until R is reached. With the mark at 1 and ``entry_price`` p0 (a multiple of the mark
price), ``PnL% = (1 - p0) / p0`` for a long and ``(p0 - 1) / p0`` for a short, and effective leverage = |x_i|/e_i.
Without entry prices every account is given the same positive PnL%, so the queue ranks by leverage alone.

Multi-asset cross margin (:func:`cross_margin_allocation`): account i holds a vector x_i, the exchange must reduce
asset k by R_k (signed: R_k > 0 reduces the longs of asset k, R_k < 0 the shorts); the expected shortfall
``sum_i E[(-y_i . Z - e_i)^+]`` over return scenarios Z is minimised with cvxpy (a linear programme of size
accounts x scenarios, solved by HiGHS). Its Lagrangian with one shadow price
lambda_k per asset separates into one problem per account [A5] (:func:`account_subproblem`). With one factor
(Z = beta F) only the factor exposure ``b_i = beta . y_i`` matters, and the optimum water-fills the factor-adjusted
leverage ``|beta . x_i| / e_i`` [A6] (:func:`factor_water_fill`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np

from margin_design.errors import InputError

__all__ = [
    "Book",
    "WaterFill",
    "leverage",
    "water_fill",
    "optimal_cut",
    "queue_cut",
    "queue_scores",
    "Shock",
    "normal_shock",
    "student_t_shock",
    "empirical_shock",
    "sp500_shock",
    "stop_loss",
    "shortfall",
    "CrossMarginAllocation",
    "cross_margin_allocation",
    "account_subproblem",
    "account_objective",
    "FactorWaterFill",
    "factor_water_fill",
    "POLICIES",
    "read_book",
    "read_cross_book",
    "AdlRun",
    "run_adl",
    "amount",
    "gaussian_scenarios",
    "read_scenarios",
    "CrossRun",
    "run_cross_adl",
]

#: The two single-asset policies: the expected-loss optimum (water-filling) and the exchanges' queue.
POLICIES = ("optimal", "queue")


# ----------------------------------------------------------------------------------------------
# The book
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Book:
    """One side of a single-asset book: ``accounts`` (names), ``position`` (signed notional at the mark, currency;
    all >= 0 or all <= 0), ``equity`` (currency) and optionally ``entry_price`` (average entry price as a multiple of
    the mark price, > 0; used only by the queue's PnL ranking)."""

    accounts: tuple
    position: np.ndarray = field(repr=False)
    equity: np.ndarray = field(repr=False)
    entry_price: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self):
        x = np.asarray(self.position, dtype=float)
        e = np.asarray(self.equity, dtype=float)
        object.__setattr__(self, "position", x)
        object.__setattr__(self, "equity", e)
        if x.ndim != 1 or x.shape != e.shape or len(self.accounts) != x.size:
            raise InputError("position, equity and accounts must be one value per account.")
        if x.size == 0:
            raise InputError("the account book has no accounts.")
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(e))):
            raise InputError("positions and equities must be finite numbers.")
        if np.any(x > 0) and np.any(x < 0):
            raise InputError("ADL reduces one side of the book: positions must be all long (>= 0) or all short (<= 0); "
                             "split the accounts by side and run each side on its own.")
        names = [str(a) for a in self.accounts]
        if len(set(names)) != len(names):
            dup = next(a for a in names if names.count(a) > 1)
            raise InputError(f"account {dup!r} appears more than once; give each account one row.")
        object.__setattr__(self, "accounts", tuple(names))
        if self.entry_price is not None:
            p = np.asarray(self.entry_price, dtype=float)
            if p.shape != x.shape or not np.all(np.isfinite(p)) or np.any(p <= 0):
                raise InputError("entry_price must be a positive number per account (a multiple of the mark price).")
            object.__setattr__(self, "entry_price", p)

    @property
    def side(self) -> float:
        """+1 for a long book, -1 for a short one (+1 if every position is zero)."""
        return -1.0 if np.any(self.position < 0) else 1.0

    @property
    def size(self) -> np.ndarray:
        """|x_i|, the reducible position of each account (notional)."""
        return np.abs(self.position)

    @property
    def total(self) -> float:
        """The total reducible position sum_i |x_i| (notional): the largest R."""
        return float(np.sum(self.size))


def leverage(size, equity) -> np.ndarray:
    """Leverage ``|x| / e`` per account (a multiple): 0 without a position, +inf with a position and e <= 0."""
    a = np.abs(np.asarray(size, dtype=float))
    e = np.asarray(equity, dtype=float)
    out = np.zeros(np.broadcast(a, e).shape)
    a, e = np.broadcast_arrays(a, e)
    held = a > 0
    pos = held & (e > 0)
    with np.errstate(over="ignore"):   # a tiny positive equity: leverage overflows to +inf, as for e <= 0
        out[pos] = a[pos] / e[pos]
    out[held & (e <= 0)] = np.inf
    return out


def _check_reduce(reduce: float, total: float) -> float:
    try:
        r = float(reduce)
    except (TypeError, ValueError):
        raise InputError(f"the required reduction R must be a number (position units), got {reduce!r}.") from None
    if not math.isfinite(r) or r < 0:
        raise InputError(f"the required reduction R must be a finite number >= 0 (position units), got {reduce!r}.")
    # a relative slack of a few ulps lets R = the total read back from a CSV sum pass
    if r > total * (1 + 1e-12):
        raise InputError(f"the required reduction R = {r:g} exceeds the total reducible position {total:g} of the book.")
    return min(r, total)


# ----------------------------------------------------------------------------------------------
# Single asset: water-filling and the queue
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WaterFill:
    """The optimal cut [A2]-[A3]: ``reduction`` r_i >= 0 (position units), the leverage ``level`` l* after the cut
    (+inf while only non-positive-equity accounts are cut), and ``insolvent_cut`` (how much of R fell on accounts with
    e <= 0)."""

    reduction: np.ndarray = field(repr=False)
    level: float
    insolvent_cut: float


def water_fill(size, equity, reduce: float) -> WaterFill:
    """Leverage water-filling, exactly by sorting (O(n log n)): the level l* solving
    ``sum_i max(0, a_i - l* e_i) = R'`` over the solvent accounts (e_i > 0), with a_i = |x_i| and R' what is left of
    R after the accounts of infinite leverage (e_i <= 0, or |x_i|/e_i beyond the float range) are closed (they go
    first; below their total R is shared pro rata to a_i).

    Between consecutive sorted leverages the left side is linear in l, ``A_k - l E_k`` with A_k, E_k the position and
    equity of the k most levered accounts; l* = (A_k - R') / E_k on the first piece whose lower end reaches R'.
    """
    a = np.abs(np.asarray(size, dtype=float))
    e = np.asarray(equity, dtype=float)
    R = _check_reduce(reduce, float(np.sum(a)))
    r = np.zeros_like(a)
    bad = (a > 0) & ~np.isfinite(leverage(a, e))   # e <= 0, or an equity so small that |x|/e overflows
    s_bad = float(np.sum(a[bad]))
    if R >= float(np.sum(a)) and R > 0:  # everything is closed (exactly, without the rounding of R - s_bad)
        return WaterFill(a.copy(), 0.0, s_bad)
    if R <= s_bad:  # only accounts with e <= 0 are cut (or nothing, R = 0)
        if s_bad > 0:
            r[bad] = a[bad] * (R / s_bad)
        level = float(np.max(leverage(a - r, e)))  # +inf while an account with e <= 0 keeps a position
        return WaterFill(r, level, R if s_bad > 0 else 0.0)
    r[bad] = a[bad]
    rest = R - s_bad                               # > 0, and at most the solvent accounts' total position
    good = np.flatnonzero((a > 0) & ~bad)
    lev = a[good] / e[good]
    order = np.argsort(-lev, kind="stable")
    lv, av, ev = lev[order], a[good][order], e[good][order]
    A, E = np.cumsum(av), np.cumsum(ev)
    nxt = np.append(lv[1:], 0.0)                  # the leverage where the k-th piece ends
    f_end = A - nxt * E                            # sum_i max(0, a_i - l e_i) at l = next leverage, increasing in k
    k = min(int(np.searchsorted(f_end, rest, side="left")), good.size - 1)
    # l* lies on the k-th piece, [next leverage, k-th leverage]; clipping to it absorbs rounding in A_k - R'
    level = min(max((A[k] - rest) / E[k], nxt[k]), lv[k])
    cut = np.zeros(good.size)
    cut[: k + 1] = np.clip(av[: k + 1] - level * ev[: k + 1], 0.0, av[: k + 1])
    r[good[order]] = cut
    return WaterFill(r, float(level), s_bad)


def optimal_cut(book: Book, reduce: float) -> np.ndarray:
    """The expected-loss optimal reductions (position units, >= 0) of ``book``: :func:`water_fill`."""
    return water_fill(book.size, book.equity, reduce).reduction


def queue_scores(book: Book) -> np.ndarray:
    """The exchanges' ADL ranking score per account (BitMEX): ``PnL% x L_eff`` if PnL% > 0, ``PnL% / L_eff`` if
    PnL% < 0, with L_eff = |x|/e (+inf for e <= 0) and PnL% from ``entry_price`` (mark = 1); without entry prices
    PnL% = 1 for everyone (rank by leverage). Higher scores are deleveraged first."""
    lev = leverage(book.size, book.equity)
    if book.entry_price is None:
        pnl = np.ones_like(lev)
    else:
        pnl = book.side * (1.0 - book.entry_price) / book.entry_price
    with np.errstate(invalid="ignore", divide="ignore"):
        score = np.where(pnl > 0, pnl * lev, np.where(pnl < 0, pnl / lev, 0.0))
    return np.where(np.isnan(score), 0.0, score)


def queue_cut(book: Book, reduce: float) -> np.ndarray:
    """The queue rule: close positions fully in order of :func:`queue_scores` (highest first; ties in file order)
    until R is reached, the last account in line partly. Reductions in position units."""
    a = book.size
    R = _check_reduce(reduce, float(np.sum(a)))
    order = np.argsort(-queue_scores(book), kind="stable")
    before = np.concatenate([[0.0], np.cumsum(a[order])[:-1]])
    r = np.zeros_like(a)
    r[order] = np.clip(R - before, 0.0, a[order])
    return r


# ----------------------------------------------------------------------------------------------
# Shocks and the expected shortfall
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shock:
    """A distribution of the loss W per unit of notional on the deleveraged side (decimal) with its stop-loss
    transform ``Pi(k) = E[(W - k)^+]`` (:func:`stop_loss`). ``kind``: normal, student_t or empirical; ``scale``: the
    standard deviation of W; ``df``: Student-t degrees of freedom; ``losses``: the sorted sample (empirical)."""

    kind: str
    scale: float
    df: float | None = None
    losses: np.ndarray | None = field(default=None, repr=False)
    label: str = ""

    def stop_loss(self, k) -> np.ndarray:
        return stop_loss(self, k)


def normal_shock(sigma: float) -> Shock:
    """W ~ N(0, sigma^2), sigma the standard deviation of the horizon return (decimal)."""
    if not (math.isfinite(sigma) and sigma > 0):
        raise InputError(f"the shock's standard deviation must be > 0 (decimal return), got {sigma!r}.")
    return Shock("normal", float(sigma), label=f"normal, sd {sigma:.4g}")


def student_t_shock(sigma: float, df: float = 4.0) -> Shock:
    """W = s T with T ~ t_df, scaled (s = sigma sqrt((df-2)/df)) so that W has standard deviation sigma (df > 2)."""
    if not (math.isfinite(sigma) and sigma > 0):
        raise InputError(f"the shock's standard deviation must be > 0 (decimal return), got {sigma!r}.")
    if not (math.isfinite(df) and df > 2):
        raise InputError(f"the Student-t degrees of freedom must be > 2 (finite variance), got {df!r}.")
    return Shock("student_t", float(sigma), df=float(df), label=f"Student-t df {df:g}, sd {sigma:.4g}")


def empirical_shock(losses, label: str = "empirical") -> Shock:
    """W uniform on a sample of losses (decimal); Pi is the exact sample average."""
    w = np.sort(np.asarray(losses, dtype=float).ravel())
    if w.size < 2 or not np.all(np.isfinite(w)):
        raise InputError("an empirical shock needs at least two finite losses.")
    return Shock("empirical", float(np.std(w)), losses=w, label=label)


def sp500_shock(side: float = 1.0, scale_to: float | None = None) -> Shock:
    """The S&P 500 daily simple returns shipped with ``arch`` (1999-2018, via
    :func:`margin_design.calibration.data.load_sp500`), as losses of the ``side`` (+1 long: W = -return; -1 short:
    W = return); ``scale_to`` rescales them to that standard deviation (decimal)."""
    if scale_to is not None and not (math.isfinite(scale_to) and scale_to > 0):
        raise InputError(f"the shock's standard deviation must be > 0 (decimal return), got {scale_to!r}.")
    ret, first, last = _sp500_returns()
    w = -np.sign(side or 1.0) * ret
    if scale_to is not None:
        w = w * (scale_to / np.std(w))
    return empirical_shock(w, label=f"S&P 500 daily returns {first}..{last} ({w.size} days)"
                           + ("" if scale_to is None else f", scaled to sd {scale_to:.4g}"))


@functools.lru_cache(maxsize=1)
def _sp500_returns():
    """(daily simple returns P_t/P_{t-1} - 1, first date, last date) of the bundled S&P 500, read once per process."""
    from margin_design.calibration.data import load_sp500

    s = load_sp500()
    ret = np.diff(s.close) / s.close[:-1]
    ret.setflags(write=False)
    return ret, s.dates[0], s.dates[-1]


def stop_loss(shock: Shock, k) -> np.ndarray:
    """``Pi(k) = E[(W - k)^+]`` in closed form: normal ``sigma pdf(k/sigma) - k (1 - cdf(k/sigma))``; Student-t with
    u = k/s: ``s [((df + u^2)/(df - 1)) f(u) - u (1 - F(u))]``; empirical: the sample mean of (W_j - k)^+ by a
    binary search in the sorted sample and suffix sums."""
    from scipy import stats

    k = np.asarray(k, dtype=float)
    if shock.kind in ("normal", "student_t"):
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            if shock.kind == "normal":
                z = k / shock.scale
                out = shock.scale * stats.norm.pdf(z) - k * stats.norm.sf(z)
            else:
                nu = shock.df
                s = shock.scale * math.sqrt((nu - 2.0) / nu)
                u = k / s
                out = s * ((nu + u * u) / (nu - 1.0) * stats.t.pdf(u, nu) - u * stats.t.sf(u, nu))
        # far in the tails (|k| beyond ~1e150 sd, tiny positions) the limits Pi -> 0 (k -> inf), Pi -> -k (E[W] = 0)
        return np.where(np.isfinite(out), np.maximum(out, np.maximum(-k, 0.0)), np.where(k > 0, 0.0, -k))
    w = shock.losses
    suffix = np.concatenate([np.cumsum(w[::-1])[::-1], [0.0]])
    idx = np.searchsorted(w, k, side="right")
    return (suffix[idx] - (w.size - idx) * k) / w.size


def shortfall(size, equity, shock: Shock) -> np.ndarray:
    """Each account's expected equity shortfall ``E[(|y_i| W - e_i)^+]`` (currency) [A1]: ``|y_i| Pi(e_i/|y_i|)``
    for a position, ``max(0, -e_i)`` without one. Sum it for the exchange's expected loss EL."""
    a = np.abs(np.asarray(size, dtype=float))
    e = np.asarray(equity, dtype=float)
    out = np.maximum(-e, 0.0)
    held = a > 0
    with np.errstate(over="ignore"):
        k = e[held] / a[held]
    out[held] = np.where(np.isfinite(k), a[held] * stop_loss(shock, np.where(np.isfinite(k), k, 0.0)), np.maximum(-e[held], 0.0))
    return out


# ----------------------------------------------------------------------------------------------
# Multi-asset cross margin
# ----------------------------------------------------------------------------------------------


def _eligible(positions, reduce):
    """Upper bounds u_ik on the cut of asset k in account i: |x_ik| where x_ik has the sign of R_k, else 0."""
    X = np.asarray(positions, dtype=float)
    R = np.asarray(reduce, dtype=float)
    return np.where(np.sign(X) == np.sign(R)[None, :], np.abs(X), 0.0) * (R != 0)[None, :]


def _check_cross(positions, equity, reduce, scenarios, assets=None):
    X = np.asarray(positions, dtype=float)
    e = np.asarray(equity, dtype=float)
    R = np.asarray(reduce, dtype=float)
    Z = np.asarray(scenarios, dtype=float)
    if X.ndim != 2 or e.shape != (X.shape[0],) or R.shape != (X.shape[1],) or Z.ndim != 2 or Z.shape[1] != X.shape[1]:
        raise InputError("positions must be accounts x assets, equity one value per account, the reduction one value "
                         "per asset and the scenarios draws x assets.")
    for name, v in (("positions", X), ("equity", e), ("reduction", R), ("scenarios", Z)):
        if not np.all(np.isfinite(v)):
            raise InputError(f"the {name} must be finite numbers.")
    U = _eligible(X, R)
    avail = U.sum(axis=0)
    over = np.flatnonzero(np.abs(R) > avail * (1 + 1e-12))
    if over.size:
        k = int(over[0])
        side = "long" if R[k] > 0 else "short"
        name = f"asset {k + 1}" if assets is None else repr(str(assets[k]))
        raise InputError(f"the required reduction {R[k]:g} of {name} exceeds its total {side} position {avail[k]:g}.")
    return X, e, R, Z, U


@dataclass(frozen=True)
class CrossMarginAllocation:
    """The expected-shortfall optimal cross-margin cut (cvxpy): ``reduction`` (accounts x assets, >= 0, the amount by
    which |x_ik| falls), ``positions_after``, ``shadow_price`` lambda_k per asset, the derivative of the optimal expected
    shortfall in the required reduction, ``lambda_k = d EL* / d|R_k|`` (currency per unit of position; < 0: one more
    unit of required cut in asset k lowers EL* by |lambda_k|), ``expected_shortfall`` (currency, over the scenarios) and the solver's name and status."""

    reduction: np.ndarray = field(repr=False)
    positions_after: np.ndarray = field(repr=False)
    shadow_price: np.ndarray
    expected_shortfall: float
    solver: str
    status: str


def _scenario_shortfall(Y, e, Z):
    """sum_i mean_s (-(y_i . Z_s) - e_i)^+ (currency), numpy."""
    L = -(np.asarray(Y) @ np.asarray(Z).T) - np.asarray(e)[:, None]
    return float(np.maximum(L, 0.0).mean(axis=1).sum())


def _solve_lp(prob) -> str:
    """Solve a cvxpy LP with HiGHS via scipy (a vertex solution: accounts that are not cut get exactly 0, and exact
    duals), falling back to Clarabel (interior point) if it fails. Returns the solver's name."""
    import warnings

    import cvxpy as cp

    with warnings.catch_warnings():
        # cvxpy's bound propagation multiplies infinite bounds by zero coefficients (harmless NaN warnings)
        warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"cvxpy\.")
        try:   # HiGHS through scipy (cvxpy's HIGHS interface prints a banner on stdout, which holds --json)
            prob.solve(solver=cp.SCIPY, scipy_options={"method": "highs"})
            if prob.status == "optimal":
                return "SCIPY-HiGHS"
        except cp.error.SolverError:
            pass
        prob.solve(solver=cp.CLARABEL)
    return "CLARABEL"


def cross_margin_allocation(positions, equity, reduce, scenarios, assets=None) -> CrossMarginAllocation:
    """Minimise the expected shortfall ``(1/S) sum_{i,s} (-(y_i . Z_s) - e_i)^+`` over cuts a_ik in [0, u_ik]
    (u_ik = |x_ik| when x_ik has the sign of R_k) with ``sum_i a_ik = |R_k|`` per asset, y_ik = x_ik - sign(x_ik)
    a_ik, over the return scenarios Z (draws x assets, decimal returns over the close-out horizon; ``assets``: names for
    messages). A linear programme
    (sample average of the expected loss [A1]) solved with cvxpy; the per-asset equality duals are the shadow prices
    lambda_k = d EL*/d|R_k| [A5] (cvxpy's equality dual nu, with Lagrangian f + nu . (sum_i a_i - |R|), is -lambda)."""
    import cvxpy as cp

    X, e, R, Z, U = _check_cross(positions, equity, reduce, scenarios, assets)
    n, K = X.shape
    S = np.sign(X)
    a = cp.Variable((n, K), nonneg=True)
    Y = X - cp.multiply(S, a)
    loss = -(Y @ Z.T) - e[:, None]
    objective = cp.Minimize(cp.sum(cp.pos(loss)) / Z.shape[0])
    balance = cp.sum(a, axis=0) == np.abs(R)
    prob = cp.Problem(objective, [balance, a <= U])
    solver = _solve_lp(prob)
    if prob.status not in ("optimal", "optimal_inaccurate") or a.value is None:
        raise InputError(f"the cross-margin allocation could not be solved (cvxpy status {prob.status}).")
    A = np.clip(a.value, 0.0, U)
    Yv = X - S * A
    # cvxpy's Lagrangian is f + nu . (sum_i a_i - |R|), so d EL*/d|R| = -nu (checked by finite differences in the tests)
    lam = -np.asarray(balance.dual_value, dtype=float).ravel() + 0.0   # + 0.0: no "-0" in tables
    return CrossMarginAllocation(A, Yv, lam, _scenario_shortfall(Yv, e, Z), solver, prob.status)


def account_subproblem(position, equity, bounds, shadow_price, scenarios):
    """One account's own problem given the shadow prices [A5]: ``min over 0 <= a <= u of
    mean_s (-(y . Z_s) - e)^+ - lambda . a`` (y = x - sign(x) a). Returns (the minimising cut, the minimum value);
    the global allocation separates when each account's cut attains its own minimum."""
    import cvxpy as cp

    x = np.asarray(position, dtype=float)
    Z = np.asarray(scenarios, dtype=float)
    u = np.asarray(bounds, dtype=float)
    a = cp.Variable(x.size, nonneg=True)
    y = x - cp.multiply(np.sign(x), a)
    value = cp.sum(cp.pos(-(Z @ y) - float(equity))) / Z.shape[0] - np.asarray(shadow_price) @ a
    prob = cp.Problem(cp.Minimize(value), [a <= u])
    _solve_lp(prob)
    return np.clip(a.value, 0.0, u), float(prob.value)


def account_objective(position, equity, cut, shadow_price, scenarios) -> float:
    """The value of :func:`account_subproblem`'s objective at a given cut (numpy)."""
    x = np.asarray(position, dtype=float)
    y = x - np.sign(x) * np.asarray(cut, dtype=float)
    return _scenario_shortfall(y[None, :], [equity], scenarios) - float(np.asarray(shadow_price) @ np.asarray(cut))


@dataclass(frozen=True)
class FactorWaterFill:
    """Water-filling in factor-adjusted leverage [A6]: ``exposure`` b_i = beta . x_i, ``factor_cut`` c_i (factor
    units), ``level`` l* of |b_i|/e_i after the cut, and ``reduction`` (accounts x assets) realising the factor cuts
    with the per-asset totals R_k (a transportation problem, scipy's HiGHS)."""

    exposure: np.ndarray = field(repr=False)
    factor_cut: np.ndarray = field(repr=False)
    level: float
    reduction: np.ndarray = field(repr=False)


def factor_water_fill(positions, equity, beta, reduce) -> FactorWaterFill:
    """One factor, Z = beta F: account i's shortfall depends on y_i only through b_i = beta . y_i, so the problem is the
    single-asset one in b with total factor cut B = beta . R (long-only books, beta > 0, R >= 0, so every cut lowers b).
    Water-fill b (:func:`water_fill`), then find cuts a_ik in [0, x_ik] with ``sum_k beta_k a_ik = c_i`` and
    ``sum_i a_ik = R_k``; InputError if no such cuts exist (the per-asset totals then bind beyond the factor)."""
    from scipy.optimize import linprog

    X = np.asarray(positions, dtype=float)
    b_vec = np.asarray(beta, dtype=float)
    R = np.asarray(reduce, dtype=float)
    e = np.asarray(equity, dtype=float)
    if np.any(X < 0) or np.any(b_vec <= 0) or np.any(R < 0):
        raise InputError("factor water-filling needs long-only positions, positive betas and reductions R_k >= 0.")
    exposure = X @ b_vec
    wf = water_fill(exposure, e, float(b_vec @ R))
    n, K = X.shape
    # variables a_ik (row-major); sum_k beta_k a_ik = c_i ; sum_i a_ik = R_k
    A_eq = np.zeros((n + K, n * K))
    for i in range(n):
        A_eq[i, i * K:(i + 1) * K] = b_vec
    for k in range(K):
        A_eq[n + k, k::K] = 1.0
    b_eq = np.concatenate([wf.reduction, R])
    res = linprog(np.zeros(n * K), A_eq=A_eq, b_eq=b_eq, bounds=list(zip(np.zeros(n * K), X.ravel())), method="highs")
    if res.status != 0:
        raise InputError("the factor water-filling cut cannot be met with the required per-asset reductions.")
    return FactorWaterFill(exposure, wf.reduction, wf.level, np.clip(res.x.reshape(n, K), 0.0, X))


# ----------------------------------------------------------------------------------------------
# Reading books, one run of a policy
# ----------------------------------------------------------------------------------------------


def read_book(path) -> Book:
    """A single-asset book from a CSV with columns ``account`` (name), ``position`` (signed notional at the mark,
    currency; one side: all >= 0 or all <= 0), ``equity`` (currency) and optionally ``entry_price`` (a multiple of
    the mark price, > 0). Read with :func:`margin_design.csvio.read_csv_columns` (one-sentence errors)."""
    from pathlib import Path

    from margin_design.csvio import read_csv_columns, read_table

    p = Path(path)
    cols = read_csv_columns(p, required=("position", "equity"), optional=("entry_price",), text=("account",))
    if "account" not in cols:
        header, _ = read_table(p)
        raise InputError(f"{p.name} has no column 'account' (columns: {', '.join(header)}).")
    names = cols["account"]
    if any(not a for a in names):
        raise InputError(f"{p.name} has an empty cell in column 'account' (row {names.index('') + 2}).")
    return Book(tuple(names), cols["position"], cols["equity"], cols.get("entry_price"))


def read_cross_book(path, assets) -> tuple[tuple, np.ndarray, np.ndarray]:
    """A multi-asset book: columns ``account``, ``equity`` (currency) and one column per asset in ``assets`` (signed
    notional at the mark, currency). Returns (accounts, positions accounts x assets, equity)."""
    from pathlib import Path

    from margin_design.csvio import read_csv_columns, read_table

    p = Path(path)
    header, _ = read_table(p)
    missing = [a for a in ("account", "equity", *assets) if a.strip().lower() not in header]
    if missing:
        raise InputError(f"{p.name} has no column {missing[0]!r} (columns: {', '.join(header)}); a multi-asset book has "
                         "account, equity and one position column per asset named in --reduce.")
    cols = read_csv_columns(p, required=("equity", *[a.strip().lower() for a in assets]), text=("account",))
    names = cols["account"]
    if len(set(names)) != len(names):
        dup = next(a for a in names if names.count(a) > 1)
        raise InputError(f"account {dup!r} appears more than once in {p.name}; give each account one row.")
    X = np.column_stack([cols[a.strip().lower()] for a in assets])
    return tuple(names), X, cols["equity"]


@dataclass(frozen=True)
class AdlRun:
    """One ADL of a single-asset book: the chosen ``policy``'s reductions, and both policies' maximum leverage left and
    expected shortfall EL (currency) under ``shock``, before and after (the comparison the issue asks for)."""

    book: Book = field(repr=False)
    reduce: float
    policy: str
    reduction: np.ndarray = field(repr=False)
    level: float
    shock: Shock = field(repr=False)
    comparison: dict = field(repr=False)

    @property
    def leverage_before(self) -> np.ndarray:
        return leverage(self.book.size, self.book.equity)

    @property
    def leverage_after(self) -> np.ndarray:
        return leverage(self.book.size - self.reduction, self.book.equity)

    @property
    def position_after(self) -> np.ndarray:
        return self.book.position - self.book.side * self.reduction

    def to_frame(self):
        """account, reduction (position units, >= 0), position_after (signed notional), leverage_before,
        leverage_after (multiples; inf for equity <= 0 with a position)."""
        import pandas as pd

        return pd.DataFrame({
            "account": list(self.book.accounts),
            "reduction": self.reduction,
            "position_after": self.position_after + 0.0,
            "leverage_before": self.leverage_before,
            "leverage_after": self.leverage_after,
        })

    def to_dict(self) -> dict:
        lb, la = self.leverage_before, self.leverage_after
        return {
            "policy": self.policy,
            "reduce": self.reduce,
            "accounts": len(self.book.accounts),
            "accounts_cut": int(np.sum(self.reduction > 0)),
            "total_position": self.book.total,
            "level": _finite_or_none(self.level),
            "max_leverage_before": _finite_or_none(float(np.max(lb))),
            "max_leverage_after": _finite_or_none(float(np.max(la))),
            "shock": self.shock.label,
            "comparison": self.comparison,
        }

    def summary(self) -> str:
        c = self.comparison
        lines = [
            f"ADL of {len(self.book.accounts)} accounts ({'long' if self.book.side > 0 else 'short'} side, total position "
            f"{amount(self.book.total)}): reduce R = {amount(self.reduce)} by the {self.policy} policy; "
            f"{int(np.sum(self.reduction > 0))} accounts cut.",
            f"expected shortfall EL under {self.shock.label} (currency): before {amount(c['before']['expected_shortfall'])}",
            f"{'policy':<10}{'max leverage left':>20}{'EL after':>16}",
        ]
        for name in POLICIES:
            row = c[name]
            lev = row["max_leverage"]
            lines.append(f"{name:<10}{'inf' if lev is None else format(lev, ',.4g'):>20}{amount(row['expected_shortfall']):>16}")
        return "\n".join(lines)


def amount(v: float) -> str:
    """A position or currency amount for titles and console lines: thousands separators, no exponent below 10^15."""
    return f"{v:,.0f}" if abs(v) >= 1e4 else f"{v:,.6g}"


def _finite_or_none(v: float):
    return float(v) if math.isfinite(v) else None


def run_adl(book: Book, reduce: float, policy: str = "optimal", shock: Shock | None = None) -> AdlRun:
    """Cut ``book`` by ``reduce`` (position units) with ``policy`` (optimal: :func:`water_fill`; queue:
    :func:`queue_cut`) and compare both policies under ``shock`` (default: the S&P 500 daily losses of the side)."""
    if policy not in POLICIES:
        raise InputError(f"--policy must be one of {', '.join(POLICIES)}, got {policy!r}.")
    wf = water_fill(book.size, book.equity, reduce)
    cuts = {"optimal": wf.reduction, "queue": queue_cut(book, reduce)}
    shock = sp500_shock(book.side) if shock is None else shock
    comparison = {"before": {"max_leverage": _finite_or_none(float(np.max(leverage(book.size, book.equity)))),
                             "expected_shortfall": float(np.sum(shortfall(book.size, book.equity, shock)))}}
    for name, r in cuts.items():
        comparison[name] = {"max_leverage": _finite_or_none(float(np.max(leverage(book.size - r, book.equity)))),
                            "expected_shortfall": float(np.sum(shortfall(book.size - r, book.equity, shock)))}
    r = cuts[policy]
    level = wf.level if policy == "optimal" else float(np.max(leverage(book.size - r, book.equity)))
    return AdlRun(book, float(reduce), policy, r, level, shock, comparison)


# ----------------------------------------------------------------------------------------------
# Multi-asset: scenarios and one run
# ----------------------------------------------------------------------------------------------


def gaussian_scenarios(assets: int, vol: float, corr: float, draws: int = 1000, seed: int = 0) -> np.ndarray:
    """Joint return scenarios (draws x assets, decimal): normal, standard deviation ``vol`` for every asset and a
    common pairwise correlation ``corr`` (in (-1/(assets-1), 1)), from numpy's PCG64 with ``seed``."""
    if not (math.isfinite(vol) and vol > 0):
        raise InputError(f"--vol-daily must be > 0 (decimal daily return standard deviation), got {vol!r}.")
    low = -1.0 / (assets - 1) if assets > 1 else -1.0
    if not (math.isfinite(corr) and low < corr < 1):
        raise InputError(f"--corr must lie in ({low:g}, 1) for {assets} assets, got {corr!r}.")
    if not (isinstance(draws, int) and 2 <= draws <= 100_000):
        raise InputError(f"--draws must be an integer in [2, 100000], got {draws!r}.")
    C = vol * vol * (corr * np.ones((assets, assets)) + (1 - corr) * np.eye(assets))
    return np.random.default_rng(seed).multivariate_normal(np.zeros(assets), C, size=draws, method="cholesky")


def read_scenarios(path, assets) -> np.ndarray:
    """Return scenarios from a CSV with one column per asset (decimal returns over the close-out horizon, one joint
    draw per row)."""
    from margin_design.csvio import read_csv_columns

    cols = read_csv_columns(path, required=[a.strip().lower() for a in assets])
    Z = np.column_stack([cols[a.strip().lower()] for a in assets])
    if Z.shape[0] < 2:
        raise InputError(f"the scenario file {str(path)!r} needs at least two rows (joint return draws).")
    return Z


@dataclass(frozen=True)
class CrossRun:
    """One multi-asset ADL: the book, the required reductions per asset (signed, position units), the cvxpy
    allocation with its shadow prices, and the expected shortfall before and after (currency, over the scenarios)."""

    accounts: tuple
    assets: tuple
    positions: np.ndarray = field(repr=False)
    equity: np.ndarray = field(repr=False)
    reduce: np.ndarray
    allocation: CrossMarginAllocation = field(repr=False)
    shortfall_before: float
    scenarios: str

    @property
    def leverage_before(self) -> np.ndarray:
        """Gross leverage sum_k |x_ik| / e_i (a multiple)."""
        return leverage(np.abs(self.positions).sum(axis=1), self.equity)

    @property
    def leverage_after(self) -> np.ndarray:
        return leverage(np.abs(self.allocation.positions_after).sum(axis=1), self.equity)

    def to_frame(self):
        import pandas as pd

        cols = {"account": list(self.accounts)}
        for k, a in enumerate(self.assets):
            cols[f"reduction_{a}"] = self.allocation.reduction[:, k]
        for k, a in enumerate(self.assets):
            cols[f"position_after_{a}"] = self.allocation.positions_after[:, k] + 0.0
        cols["leverage_before"] = self.leverage_before
        cols["leverage_after"] = self.leverage_after
        return pd.DataFrame(cols)

    def to_dict(self) -> dict:
        al = self.allocation
        return {
            "policy": "optimal",
            "assets": list(self.assets),
            "reduce": dict(zip(self.assets, map(float, self.reduce))),
            "accounts": len(self.accounts),
            "accounts_cut": int(np.sum(al.reduction.sum(axis=1) > 0)),
            "shadow_price": dict(zip(self.assets, map(float, al.shadow_price))),
            "expected_shortfall_before": self.shortfall_before,
            "expected_shortfall_after": al.expected_shortfall,
            "max_gross_leverage_before": _finite_or_none(float(np.max(self.leverage_before))),
            "max_gross_leverage_after": _finite_or_none(float(np.max(self.leverage_after))),
            "scenarios": self.scenarios,
            "solver": {"name": al.solver, "status": al.status},
        }

    def summary(self) -> str:
        d = self.to_dict()
        prices = ", ".join(f"{a} {v:.6g}" for a, v in d["shadow_price"].items())
        return "\n".join([
            f"cross-margin ADL of {d['accounts']} accounts over {len(self.assets)} assets ({self.scenarios}); "
            f"{d['accounts_cut']} accounts cut (cvxpy {self.allocation.solver}, {self.allocation.status}).",
            f"expected shortfall EL (currency): before {amount(self.shortfall_before)}, after {amount(self.allocation.expected_shortfall)}",
            f"shadow prices d EL*/d|R_k| (currency per unit of position): {prices}",
        ])


def run_cross_adl(accounts, assets, positions, equity, reduce, scenarios, label: str) -> CrossRun:
    """Solve the cross-margin allocation (:func:`cross_margin_allocation`) and package it with EL before the cut."""
    X, e, R, Z, _ = _check_cross(positions, equity, reduce, scenarios, assets)
    al = cross_margin_allocation(X, e, R, Z, assets)
    return CrossRun(tuple(accounts), tuple(assets), X, e, R, al, _scenario_shortfall(X, e, Z), label)
