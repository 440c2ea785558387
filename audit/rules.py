"""Margin rules to audit, M = g(r): tables, formulas and the CCP overlays of Appendix E.4 (Nicolai 2026).

Units: r is the variance of daily returns (decimal^2), sigma = sqrt(r) the daily volatility (decimal),
M the margin ratio per unit notional (decimal, 0.05 = 5%). Slopes are dM/dr (margin ratio per unit of
daily variance) unless named ``*_vol`` (dM/dsigma, margin ratio per unit of daily vol).

Base rules
----------
* :class:`TableRule` -- knots (daily vol, margin ratio) read with ``linear`` interpolation in sigma (flat
  beyond the first and last knot, or, for a published table that states it, ``extrapolation = "published"``: flat
  below the first knot and at the last interval's slope above the last, :mod:`margin_design.published_reading`) or as
  a ``step`` table: margin m_k applies for sigma in [vol_k, vol_{k+1}),
  m_0 below the first knot, the last margin from the last knot on (right-continuous). Knots must be strictly
  increasing in vol and margins non-decreasing.
* :class:`FormulaRule` -- an expression in ``r`` (daily variance) or ``sigma`` (daily vol), e.g.
  ``2.326*sqrt(2*r)``, read by the one safe parser :mod:`margin_design.formula` (an ``ast`` whitelist: numbers,
  r, sigma, pi, e, + - * / ** ^ and the functions sqrt, exp, log, abs/Abs, min/Min, max/Max, Heaviside, floor,
  ceiling/ceil; no user text is ever run as code). Its slope is the symbolic derivative (jumps of Heaviside /
  floor / ceiling are reported as discontinuities, not slopes). A formula whose value is not real and finite
  where it is evaluated at r > 0 (``log(r - 1)`` at small r) raises an InputError naming the daily vol.

Overlays (:class:`Overlays`), applied in this order to the core rule (Appendix E.4, EMIR RTS 153/2013 art. 28):

1. ``stressed_weight`` w with ``stressed_vol`` sigma_s (art. 28(1)(b), 25% weight to stressed observations):
   the risk input is mixed with the stressed period's variance, r_eff = (1 - w) r + w sigma_s^2, so the pass-
   through is damped by (1 - w);
2. ``floor`` (margin ratio) or ``floor_vol`` (daily vol of the 10-year look-back, art. 28(1)(c)): M = max(g, F)
   with F = ``floor`` or g(floor_vol^2) -- flat where the floor binds, a kink where it stops binding;
3. ``buffer`` b (art. 28(1)(a), at least 25%) released in stress above ``buffer_release_vol`` sigma_b:
   ``absorb`` (default): M = max(G, min((1 + b) G, (1 + b) G(r_b))) -- (1 + b) G in calm states, then flat
   while the buffer is used up, then G (continuous; the calm-state slope is (1 + b) times steeper);
   ``drop``: M = (1 + b) G for sigma < sigma_b and G from sigma_b on (a downward jump at sigma_b);
4. ``addons``: step add-ons ((threshold daily vol, add-on margin ratio), ...), each added from its threshold on;
5. ``tick``: the result rounded up to a multiple of the tick (margin ratio; 0.0005 = 5 bp): flat between
   jumps of one tick.

Every function is vectorised over r. One-sided values and slopes are exact: ``side="right"`` is the limit
from above (and the right derivative), ``side="left"`` the limit from below.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from margin_design.units import TRADING_DAYS
from margin_design.csvio import VOL_COLUMNS, daily_vol_column, read_csv_columns, read_table
from margin_design.errors import InputError
from margin_design.formula import CONSTANT_NAMES, FUNCTION_NAMES, parse_formula_expr, quote_formula, symbol_r
from margin_design.published_reading import evaluate as published_evaluate
from margin_design.published_reading import extrapolation_slopes, stated_extrapolation

__all__ = [
    "true_runs",
    "INTERPOLATIONS",
    "BUFFER_RELEASES",
    "FORMULA_FUNCTIONS",
    "JUMP_TOL",
    "TableRule",
    "FormulaRule",
    "Overlays",
    "Rule",
    "Breakpoint",
    "parse_formula",
    "read_rule_csv",
    "read_rule_json",
    "read_rule_folder",
    "RuleInfo",
    "VOL_COLUMNS",
    "daily_vol_column",
    "TABLE_EXTRAPOLATION",
    "PUBLISHED_EXTRAPOLATION",
    "EXTRAPOLATIONS",
    "load_rule",
    "is_folder",
    "overlays_from_dict",
]

INTERPOLATIONS = ("linear", "step")
#: How a linear table is read beyond its first and last knot: ``flat`` (:data:`TABLE_EXTRAPOLATION`) or ``published``
#: (:data:`PUBLISHED_EXTRAPOLATION`, the reading a published rule table states).
EXTRAPOLATIONS = ("flat", "published")
BUFFER_RELEASES = ("absorb", "drop")
#: Names a formula may use besides r and sigma (the whitelist of :mod:`margin_design.formula`).
FORMULA_FUNCTIONS = FUNCTION_NAMES + CONSTANT_NAMES
#: A change of margin (ratio) above this across a breakpoint is a jump (1e-10 = 1e-6 bp of notional).
JUMP_TOL = 1e-10
#: One-sided slopes (dM/dr) differing by more than this relative amount make a kink.
KINK_RTOL = 1e-9
#: Slack in ceil(M / tick - slack): a margin within 1e-9 ticks of the lattice is on it (float noise).
CEIL_SLACK = 1e-9
#: Points per unit of sigma-range used to locate crossings (floors, buffers, ticks) before bisection.
DENSE_POINTS = 4001
BISECTION_STEPS = 200
#: Breakpoints closer than this (relative, in r) are one point (a tick crossing found at a knot, say).
MERGE_RTOL = 1e-9
#: Relative offset at which a non-smooth formula is evaluated to take a one-sided value or slope.
FORMULA_SIDE_EPS = 1e-12


def true_runs(mask) -> list[tuple[int, int]]:
    """The maximal runs of True in a 1-D boolean ``mask``, as (first, last) index pairs (both inclusive), in order."""
    edges = np.diff(np.concatenate([[0], np.asarray(mask, dtype=bool).astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), (np.flatnonzero(edges == -1) - 1).tolist()))


def _side(side: str) -> str:
    if side not in ("right", "left"):
        raise ValueError(f"side must be 'right' or 'left', got {side!r}")
    return side


# ----------------------------------------------------------------------------------------------
# Base rules
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class TableRule:
    """Knots (``vol`` daily vol, decimal; ``margin`` margin ratio) with ``linear`` or ``step`` interpolation in sigma."""

    vol: np.ndarray = field(repr=False)
    margin: np.ndarray = field(repr=False)
    interpolation: str = "linear"
    source: str = "table"
    require_monotone: bool = True   # False only for reference schedules (a first-best target may fall)
    extrapolation: str = "flat"     # beyond the knots: "flat" or "published" (flat below, last slope above); EXTRAPOLATIONS

    def __post_init__(self):
        v = np.asarray(self.vol, dtype=float)
        m = np.asarray(self.margin, dtype=float)
        object.__setattr__(self, "vol", v)
        object.__setattr__(self, "margin", m)
        name = self.source
        if self.interpolation not in INTERPOLATIONS:
            raise InputError(f"interpolation = {self.interpolation!r} is not one of {', '.join(INTERPOLATIONS)}.")
        if self.extrapolation not in EXTRAPOLATIONS:
            raise InputError(f"extrapolation = {self.extrapolation!r} is not one of {', '.join(EXTRAPOLATIONS)}.")
        if self.extrapolation == "published" and self.interpolation != "linear":
            raise InputError(f"rule table {name} states the published extrapolation (last slope above the last row), which needs "
                             f"linear interpolation, not {self.interpolation}.")
        if v.ndim != 1 or v.size != m.size or v.size < 2:
            raise InputError(f"rule table {name} needs at least 2 knots with one margin each, got {v.size} vols and {m.size} margins.")
        if not (np.all(np.isfinite(v)) and np.all(np.isfinite(m))):
            raise InputError(f"rule table {name} has a non-finite vol or margin.")
        if np.any(v <= 0):
            raise InputError(f"rule table {name} column vol has {float(v[v <= 0][0])!r}; knots must be positive daily vols (decimal).")
        bad = np.flatnonzero(np.diff(v) <= 0)
        if bad.size:
            k = int(bad[0])
            raise InputError(
                f"rule table {name} knots are out of order: vol {float(v[k + 1])!r} (row {k + 3}) does not exceed {float(v[k])!r} (row {k + 2}); vols must be strictly increasing."
            )
        if np.any(m < 0):
            raise InputError(f"rule table {name} column margin has {float(m[m < 0][0])!r}; margins must be non-negative margin ratios.")
        bad = np.flatnonzero(np.diff(m) < 0) if self.require_monotone else np.empty(0, dtype=int)
        if bad.size:
            k = int(bad[0])
            raise InputError(
                f"rule table {name} is not monotone: margin falls from {float(m[k])!r} to {float(m[k + 1])!r} between vol {float(v[k])!r} and {float(v[k + 1])!r}; a margin rule must be non-decreasing."
            )

    @property
    def kind(self) -> str:
        return f"table ({self.interpolation})"

    @property
    def extrapolation_text(self) -> str:
        """How the table is read beyond its first and last knot, in words."""
        if self.extrapolation == "published":
            return PUBLISHED_EXTRAPOLATION
        return TABLE_EXTRAPOLATION

    def describe(self) -> str:
        return (
            f"{self.interpolation} table {self.source}: {self.vol.size} knots, daily vol {self.vol[0]:.4%} .. {self.vol[-1]:.4%}, "
            f"margin {self.margin[0]:.4%} .. {self.margin[-1]:.4%}, read {self.extrapolation_text}"
        )

    def evaluate(self, r, side: str = "right") -> tuple[np.ndarray, np.ndarray]:
        """(M, dM/dr) at daily variance r, one-sided from ``side`` (exact: knots are breakpoints)."""
        side = _side(side)
        r = np.asarray(r, dtype=float)
        s = np.sqrt(r)
        v, m = self.vol, self.margin
        k = np.searchsorted(v, s, side="right" if side == "right" else "left") - 1
        if self.interpolation == "step":
            value = m[np.clip(k, 0, v.size - 1)]
            return value, np.zeros_like(s)
        inside = (k >= 0) & (k <= v.size - 2)
        kk = np.clip(k, 0, v.size - 2)
        slope_vol = np.where(inside, (m[kk + 1] - m[kk]) / (v[kk + 1] - v[kk]), 0.0)
        if self.extrapolation == "published":   # the published rule's own function, last slope from the last knot on
            value = published_evaluate(v, m, s)
            slope_vol = np.where(k >= v.size - 1, extrapolation_slopes(v, m)[1], slope_vol)
        else:
            value = np.interp(s, v, m)
        with np.errstate(divide="ignore", invalid="ignore"):
            slope_r = np.where(slope_vol != 0, slope_vol / (2.0 * s), 0.0)
        return value, slope_r

    def breakpoints(self) -> np.ndarray:
        """Daily variances at which the rule may be non-smooth: the knots."""
        return self.vol**2


@dataclass(frozen=True, eq=False)
class FormulaRule:
    """M = f(r) from a sympy expression in ``r`` (daily variance) and/or ``sigma`` (daily vol, = sqrt(r))."""

    text: str
    expr: Any = field(repr=False)          # sympy expression in r (sigma substituted)
    derivative: Any = field(repr=False)    # d expr / d r, jumps removed (DiracDelta, Derivative(floor) -> 0)
    variable: str = "r"

    @property
    def kind(self) -> str:
        return f"formula in {self.variable}"

    def describe(self) -> str:
        return f"formula M = {self.text} ({'r = daily variance' if self.variable == 'r' else 'sigma = daily vol'})"

    @cached_property
    def _fns(self):
        import sympy as sp

        r = _symbol_r()
        f = sp.lambdify(r, self.expr, modules=_LAMBDIFY_MODULES)
        d = sp.lambdify(r, self.derivative, modules=_LAMBDIFY_MODULES)
        return f, d

    @cached_property
    def _switches(self) -> tuple:
        """Non-smooth atoms: ('sign', g) changes where g crosses 0; ('int', g) where g crosses an integer."""
        import sympy as sp

        r = _symbol_r()
        out = []
        for atom in sorted(self.expr.atoms(sp.Heaviside, sp.Abs, sp.Max, sp.Min, sp.floor, sp.ceiling, sp.sign), key=sp.default_sort_key):
            if isinstance(atom, (sp.Heaviside, sp.Abs, sp.sign)):
                out.append(("sign", sp.lambdify(r, atom.args[0], modules=_LAMBDIFY_MODULES)))
            elif isinstance(atom, (sp.floor, sp.ceiling)):
                out.append(("int", sp.lambdify(r, atom.args[0], modules=_LAMBDIFY_MODULES)))
            else:  # Max / Min of several arguments: every pairwise difference
                args = atom.args
                for i in range(len(args)):
                    for j in range(i + 1, len(args)):
                        out.append(("sign", sp.lambdify(r, args[i] - args[j], modules=_LAMBDIFY_MODULES)))
        return tuple(out)

    @property
    def smooth(self) -> bool:
        return not self._switches

    def _raw(self, r, at=None) -> tuple[np.ndarray, np.ndarray]:
        """Value and slope at daily variance r; an InputError naming the daily vol (of ``at``, the requested r) where
        the value or slope is not real (never truncated to a real part) or, at r > 0 (the formula's domain: r is a
        positive variance), the value is not finite. At r = 0 (a masked edge case of some callers) it may be inf."""
        f, d = self._fns
        r = np.asarray(r, dtype=float)
        at = r if at is None else np.broadcast_to(np.asarray(at, dtype=float), r.shape)
        with np.errstate(all="ignore"):
            try:
                value = np.broadcast_to(np.asarray(f(r)), r.shape)
                slope = np.broadcast_to(np.asarray(d(r)), r.shape)
            except (ArithmeticError, TypeError, ValueError) as exc:
                raise InputError(f"formula {quote_formula(self.text)} cannot be evaluated in floating point ({type(exc).__name__}).") from None
        for arr, what in ((value, "value"), (slope, "slope")):
            bad = np.iscomplexobj(arr) and np.imag(arr) != 0
            if np.any(bad):
                i = np.unravel_index(int(np.argmax(bad)), r.shape)
                raise InputError(
                    f"formula {quote_formula(self.text)} has the complex {what} {complex(arr[i]):.6g} at daily vol {math.sqrt(at[i]):.6g}; a margin formula must be real."
                )
        value = np.real(value).astype(float)
        bad = ~np.isfinite(value) & (at > 0)
        if np.any(bad):
            i = np.unravel_index(int(np.argmax(bad)), r.shape)
            raise InputError(
                f"formula {quote_formula(self.text)} has the value {float(value[i])!r} at daily vol {math.sqrt(at[i]):.6g}; a margin formula must be real and finite for every daily variance r > 0."
            )
        return value, np.real(slope).astype(float)

    def evaluate(self, r, side: str = "right") -> tuple[np.ndarray, np.ndarray]:
        """(M, dM/dr): the expression and its symbolic derivative; a non-smooth formula is read just to ``side``."""
        side = _side(side)
        r = np.asarray(r, dtype=float)
        if self.smooth:
            return self._raw(r)
        return self._raw(r * (1.0 + FORMULA_SIDE_EPS) if side == "right" else r * (1.0 - FORMULA_SIDE_EPS), at=r)

    def breakpoints(self, r_lo: float, r_hi: float) -> np.ndarray:
        """Daily variances in [r_lo, r_hi] where a switching argument changes sign or crosses an integer."""
        if self.smooth:
            return np.empty(0)
        s = np.linspace(math.sqrt(r_lo), math.sqrt(r_hi), DENSE_POINTS)
        rr = s**2
        pts = []
        for kind, g in self._switches:
            with np.errstate(all="ignore"):
                vals = np.broadcast_to(np.asarray(g(rr), dtype=float), rr.shape)
            key = np.sign(vals) if kind == "sign" else np.floor(vals)

            def keyfn(x, g=g, kind=kind):
                with np.errstate(all="ignore"):
                    val = float(np.asarray(g(np.asarray(x)), dtype=float))
                return np.sign(val) if kind == "sign" else math.floor(val)

            for i in np.flatnonzero(key[1:] != key[:-1]):
                a, b = _bisect_change(keyfn, rr[i], rr[i + 1])
                pts.append(0.5 * (a + b))
        return np.asarray(sorted(pts))


def _symbol_r():
    return symbol_r()


def _heaviside(x, at_zero=0.5):
    """numpy's step; sympy prints Heaviside(x) with its value at 0, 1/2 (the audit reads one-sided limits at a step)."""
    return np.heaviside(x, at_zero)


#: Modules for sympy.lambdify: Heaviside as a numpy call (sympy's printer would rewrite it to a Piecewise and
#: simplify that, which takes seconds per Heaviside of a Max), the rest numpy.
_LAMBDIFY_MODULES = [{"Heaviside": _heaviside}, "numpy"]


def _slope_expr(expr):
    """dM/dr of ``expr`` (in r) with the jumps of Heaviside / floor / ceiling left out: those atoms are held fixed
    while differentiating (their derivative is 0 between jumps), so no DiracDelta or Subs(Derivative(floor)) appears."""
    import sympy as sp

    r = symbol_r()
    steps = sorted(expr.atoms(sp.Heaviside, sp.floor, sp.ceiling), key=sp.default_sort_key)
    frozen = {a: sp.Dummy(f"step{i}") for i, a in enumerate(steps)}
    d = sp.diff(expr.xreplace(frozen), r).xreplace({v: k for k, v in frozen.items()})
    return d.replace(lambda e: isinstance(e, sp.DiracDelta), lambda e: sp.Integer(0))


def parse_formula(text: str) -> FormulaRule:
    """Parse ``text`` (an expression in r and/or sigma) into a :class:`FormulaRule`; one-sentence InputError if it cannot.

    The text goes through the one safe parser :func:`margin_design.formula.parse_formula_expr` (an ``ast``
    whitelist; nothing is run). The derivative dM/dr is sympy's with the jumps of Heaviside / floor / ceiling left
    out (:func:`_slope_expr`); it is not passed through ``sympy.simplify``, whose time is unbounded.
    """
    f = parse_formula_expr(text)
    if f.is_constant:
        raise InputError(f"formula {quote_formula(f.text)} does not depend on r or sigma; a constant margin needs no audit.")
    try:
        d = _slope_expr(f.expr)
    except Exception as exc:  # sympy on a whitelisted, bounded expression; name the formula, not a traceback
        raise InputError(f"formula {quote_formula(f.text)} cannot be differentiated symbolically ({type(exc).__name__}); simplify it.") from None
    return FormulaRule(text=f.text, expr=f.expr, derivative=d, variable=f.variable)


#: Vol columns a rule table may carry, one meaning each: ``vol_daily`` (canonical: daily vol, decimal), ``vol`` (the
#: legacy name of the same thing) and ``vol_annual`` (annualised vol sqrt(252) * vol_daily, decimal). Every table
#: margin-design writes names its vol ``vol_daily`` (and may add ``vol_annual`` beside it).
#: How a rule table is read outside its first and last row when it states no extrapolation (a ``vol,margin`` CSV, a
#: schedule.json, step and knot tables, rule tables written before the publish change): flat beyond the ends.
TABLE_EXTRAPOLATION = "flat below the first and above the last row"
#: How a table that states the published extrapolation (rule_table.csv/.json of ``report``) is read: exactly as
#: published (:func:`margin_design.published_reading.evaluate`). Decided in :func:`table_rule`.
PUBLISHED_EXTRAPOLATION = "flat below the first row and at the last interval's slope above the last row, as the table states"


@dataclass(frozen=True)
class RuleInfo:
    """Where a rule came from and what its file states besides the margins (for ``diff`` and the change log).

    ``kind``: formula, csv table, rule_table.json, step_table.json, schedule.json, toml rule file;
    ``path``: the file read (None for a formula); ``published_vol``: daily vols (decimal) of the rows a table
    publishes (None for a formula or a solver grid); ``cap_vol``: the slope cap K on dM/dsigma (margin ratio per unit
    daily vol) the file states (None: none stated; inf: uncapped); ``rule_id`` / ``version_label``: as the file states
    them; ``objective``: a schedule.json's stored J(g*) (``value``) and J(M_fb) (``first_best_value``); ``extrapolation``:
    how a table is read beyond its rows, in words (:data:`TABLE_EXTRAPOLATION` or :data:`PUBLISHED_EXTRAPOLATION`).
    """

    kind: str
    path: str | None = None
    published_vol: tuple | None = None
    cap_vol: float | None = None
    rule_id: str | None = None
    version_label: str | None = None
    objective: dict | None = None
    extrapolation: str | None = None


def table_rule(vol, margin, interpolation: str, source: str, statement=None, require_monotone: bool = True) -> TableRule:
    """A rule table read back from a file; the one place that decides how a table is read outside its rows.

    ``statement``: the extrapolation the file states (a rule_table.json's ``extrapolation`` object, or a
    rule_table.csv's first- and last-row ``extrapolation`` cells). The published extrapolation
    (:data:`PUBLISHED_EXTRAPOLATION`) is read as published; no statement means :data:`TABLE_EXTRAPOLATION` (flat); a
    statement of anything else is refused (it would be misread). A step reading (``--interpolation step``) is flat.
    """
    stated = stated_extrapolation(statement)
    if stated is False:
        raise InputError(f"rule table {source} states an extrapolation margin-design does not know ({_statement_text(statement)}); "
                         "remove it to read the table flat beyond its rows.")
    extrapolation = "published" if stated and interpolation == "linear" else "flat"
    return TableRule(np.asarray(vol, float), np.asarray(margin, float), interpolation, source=source, extrapolation=extrapolation,
                     require_monotone=require_monotone)


def _statement_text(statement) -> str:
    if isinstance(statement, dict):
        return "; ".join(f"{k}: {statement.get(k)!s:.80}" for k in ("below", "above"))
    return "; ".join(f"{str(s):.80}" for s in statement)


def _cap_from_column(values, who: str) -> float | None:
    """K (per unit daily vol) from a table's ``cap_vol_annual`` column (per unit annualised vol); None if absent or
    empty (an uncapped design writes empty cells: inf)."""
    if values is None:
        return None
    cells = [str(v).strip() if v is not None else "" for v in values]
    if all(c == "" for c in cells):
        return math.inf
    try:
        caps = {float(c) for c in cells if c != ""}
    except ValueError:
        raise InputError(f"{who} has a non-numeric cap_vol_annual cell.") from None
    if len(caps) != 1 or not all(math.isfinite(c) and c > 0 for c in caps):
        raise InputError(f"{who} has cap_vol_annual values {sorted(caps)!r}; a rule table states one positive cap.")
    return caps.pop() * math.sqrt(TRADING_DAYS)


def _step_kind(interpolation: str | None, who: str) -> str:
    if interpolation not in (None, "step"):
        raise InputError(f"{who} is a step table (buckets); --interpolation {interpolation} does not apply to it.")
    return "step"


def read_rule_csv(path: str | Path, interpolation: str | None = "linear") -> TableRule:
    """A :class:`TableRule` from a CSV: a daily-vol column (:data:`VOL_COLUMNS`) and ``margin`` (margin ratio).

    Reads the ``vol,margin`` tables users write, ``rule_table.csv`` of ``report --out`` (``vol_daily``, ``vol_annual``,
    ``margin`` = the published margin), ``schedule.csv`` of ``solve --out`` and ``step_table.csv`` (buckets from
    ``vol_daily_from``: a step rule). ``interpolation`` None means linear (step for a step table).
    """
    return _read_csv(Path(path), interpolation)[0]


def _read_csv(p: Path, interpolation: str | None, monotone: bool = True) -> tuple[TableRule, RuleInfo]:
    header, _ = read_table(p, label="rule")
    who = f"rule = {str(p)!r}"
    if "vol_daily_from" in header or "vol_annual_from" in header:  # step_table.csv: bucket k charges margin_k from its start
        cols = read_csv_columns(p, required=("margin",), optional=("vol_daily_from", "vol_annual_from"), label="rule")
        cols = {k.removesuffix("_from"): v for k, v in cols.items()}
        rule = table_rule(daily_vol_column(dict(cols, __header__=header), who), cols["margin"], _step_kind(interpolation, who), p.name)
        return rule, RuleInfo("step table", str(p), published_vol=tuple(rule.vol.tolist()), extrapolation=TABLE_EXTRAPOLATION)
    cols = read_csv_columns(p, required=("margin",), optional=VOL_COLUMNS, text=("cap_vol_annual", "extrapolation"), label="rule")
    if "margin" not in cols:  # pragma: no cover - required
        raise InputError(f"{who} has no column 'margin'.")
    vol = daily_vol_column(dict(cols, __header__=header), who)
    ext = cols.get("extrapolation")
    statement = None if ext is None else tuple(_cell_text(c) for c in (ext[0], ext[-1]))
    rule = table_rule(vol, cols["margin"], interpolation or "linear", p.name, statement, require_monotone=monotone)
    cap = _cap_from_column(cols.get("cap_vol_annual"), who)
    kind = "schedule.csv" if "first_best_margin" in header else "csv table"
    published = None if kind == "schedule.csv" else tuple(rule.vol.tolist())
    return rule, RuleInfo(kind, str(p), published_vol=published, cap_vol=cap, extrapolation=rule.extrapolation_text)


def _cell_text(cell) -> str:
    """A text cell as written (an empty cell may come back as 'nan' or 'None')."""
    s = "" if cell is None else str(cell).strip()
    return "" if s.lower() in ("nan", "none") else s


def read_rule_json(path: str | Path, interpolation: str | None = None) -> tuple[TableRule, RuleInfo]:
    """A table rule and its :class:`RuleInfo` from a JSON file margin-design writes: ``rule_table.json`` (rows with
    ``vol_daily`` and the published ``margin``), ``step_table.json`` (buckets: a step rule) or ``schedule.json``
    (``solve --out``: the optimal schedule on the solver's grid, linear in vol between grid points)."""
    import json

    p = Path(path)
    who = f"rule file {str(p)!r}"
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{who} does not exist.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{who} cannot be read ({getattr(exc, 'strerror', None) or exc}).") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{who} is not valid JSON ({exc}).") from None
    if not isinstance(d, dict):
        raise InputError(f"{who} does not hold a JSON object; expected a rule_table.json, step_table.json or schedule.json.")
    try:
        if isinstance(d.get("rows"), list):  # rule_table.json
            rows = d["rows"]
            if not rows or not all(isinstance(r, dict) for r in rows):
                raise InputError(f"{who} has no rows of knots.")
            names = [c for c in VOL_COLUMNS if c in rows[0]]
            cols = {c: [r.get(c) for r in rows] for c in names}
            cols["__header__"] = list(rows[0])
            if any(r.get("margin") is None for r in rows) or any(v is None for c in names for v in cols[c]):
                raise InputError(f"{who} has a row without a vol or a margin.")
            vol = daily_vol_column(cols, who)
            rule = table_rule(vol, [float(r["margin"]) for r in rows], interpolation or "linear", p.name, d.get("extrapolation"))
            cap = _cap_from_column(["" if r.get("cap_vol_annual") is None else r["cap_vol_annual"] for r in rows], who) if "cap_vol_annual" in rows[0] else None
            info = RuleInfo("rule_table.json", str(p), published_vol=tuple(rule.vol.tolist()), cap_vol=cap,
                            rule_id=_text_or_none(d.get("rule_id")), version_label=_text_or_none(d.get("version_label")),
                            extrapolation=rule.extrapolation_text)
            return rule, info
        if isinstance(d.get("buckets"), list):  # step_table.json
            b = d["buckets"]
            if not b or not all(isinstance(x, dict) for x in b):
                raise InputError(f"{who} has no buckets.")
            cols = {c: [x.get(c + "_from") for x in b] for c in VOL_COLUMNS if (c + "_from") in b[0]}
            cols["__header__"] = list(b[0])
            vol = daily_vol_column(cols, who)
            rule = table_rule(vol, [float(x["margin"]) for x in b], _step_kind(interpolation, who), p.name)
            return rule, RuleInfo("step_table.json", str(p), published_vol=tuple(rule.vol.tolist()), extrapolation=TABLE_EXTRAPOLATION)
        if "schedule" in d and isinstance(d.get("grid"), dict):  # schedule.json
            if interpolation not in (None, "linear"):
                raise InputError(f"{who} is a solved schedule, read linearly in vol between grid points; --interpolation {interpolation} does not apply.")
            rule = table_rule(d["grid"]["vol"], d["schedule"], "linear", p.name)
            slope = (d.get("cap") or {}).get("slope_vol")
            cap = None if "cap" not in d else (math.inf if slope is None else float(slope))
            obj = d.get("objective") if isinstance(d.get("objective"), dict) else None
            objective = None
            if obj is not None and obj.get("value") is not None and obj.get("first_best_value") is not None:
                objective = {"value": float(obj["value"]), "first_best_value": float(obj["first_best_value"])}
            return rule, RuleInfo("schedule.json", str(p), cap_vol=cap, objective=objective, extrapolation=TABLE_EXTRAPOLATION)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{who} has a malformed table ({type(exc).__name__}: {exc}).") from None
    raise InputError(f"{who} is not a rule_table.json, step_table.json or schedule.json written by margin-design (no rows, buckets or schedule).")


def _text_or_none(v) -> str | None:
    return None if v is None else str(v)


#: The rule a folder stands for: the published rule table of a ``report --out`` folder, else the ``schedule.json``
#: of a ``solve --out`` folder.
FOLDER_RULE_FILES = ("rule_table.json", "schedule.json")


def read_rule_folder(path: str | Path, interpolation: str | None = None) -> tuple[TableRule, RuleInfo]:
    """The rule of a ``report --out`` folder (its ``rule_table.json``) or a ``solve --out`` folder (``schedule.json``)."""
    p = Path(path)
    for name in FOLDER_RULE_FILES:
        if (p / name).is_file():
            return read_rule_json(p / name, interpolation)
    raise InputError(f"folder {str(p)!r} holds neither rule_table.json (report --out) nor schedule.json (solve --out).")


# ----------------------------------------------------------------------------------------------
# Overlays
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Overlays:
    """CCP overlays inside g (Appendix E.4); see the module docstring for the exact definitions and order.

    ``floor`` margin ratio; ``floor_vol`` daily vol of the long look-back (floor = core rule there);
    ``buffer`` fraction (0.25 = 25%); ``buffer_release_vol`` daily vol; ``buffer_release`` absorb | drop;
    ``stressed_weight`` fraction; ``stressed_vol`` daily vol of the stressed period; ``tick`` margin ratio;
    ``addons`` ((threshold daily vol, add-on margin ratio), ...).
    """

    floor: float | None = None
    floor_vol: float | None = None
    buffer: float = 0.0
    buffer_release_vol: float | None = None
    buffer_release: str = "absorb"
    stressed_weight: float = 0.0
    stressed_vol: float | None = None
    tick: float | None = None
    addons: tuple = ()

    def __post_init__(self):
        def pos(name, v, what="positive"):
            if v is not None and not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise InputError(f"overlay {name} = {v!r} must be {what}.")

        pos("floor", self.floor, "a positive margin ratio")
        pos("floor_vol", self.floor_vol, "a positive daily vol (decimal)")
        pos("buffer_release_vol", self.buffer_release_vol, "a positive daily vol (decimal)")
        pos("stressed_vol", self.stressed_vol, "a positive daily vol (decimal)")
        pos("tick", self.tick, "a positive margin ratio (0.0005 = 5 bp)")
        if self.floor is not None and self.floor_vol is not None:
            raise InputError("give either overlay floor (margin ratio) or floor_vol (daily vol of the look-back), not both.")
        if not (isinstance(self.buffer, (int, float)) and 0 <= self.buffer < 10):
            raise InputError(f"overlay buffer = {self.buffer!r} must be a fraction >= 0 (0.25 = EMIR's 25%).")
        if self.buffer > 0 and self.buffer_release_vol is None:
            raise InputError(f"overlay buffer = {self.buffer!r} needs buffer_release_vol, the daily vol at which the buffer is released.")
        if self.buffer_release not in BUFFER_RELEASES:
            raise InputError(f"overlay buffer_release = {self.buffer_release!r} is not one of {', '.join(BUFFER_RELEASES)}.")
        if not (isinstance(self.stressed_weight, (int, float)) and 0 <= self.stressed_weight < 1):
            raise InputError(f"overlay stressed_weight = {self.stressed_weight!r} must be in [0, 1) (0.25 = EMIR's 25%).")
        adds = []
        for a in self.addons:
            try:
                thr, amount = (float(x) for x in a)
            except (TypeError, ValueError):
                raise InputError(f"overlay addons entry {a!r} must be a pair [threshold daily vol, add-on margin ratio].") from None
            if not (math.isfinite(thr) and thr > 0 and math.isfinite(amount) and amount > 0):
                raise InputError(f"overlay addons entry {list(a)!r} needs a positive threshold daily vol and a positive add-on margin ratio.")
            adds.append((thr, amount))
        object.__setattr__(self, "addons", tuple(sorted(adds)))

    @property
    def active(self) -> bool:
        return any([self.floor, self.floor_vol, self.buffer, self.stressed_weight, self.tick, self.addons])

    def describe(self) -> list[str]:
        out = []
        if self.stressed_weight:
            where = f"daily vol {self.stressed_vol:.4%}" if self.stressed_vol is not None else "the most volatile window of the look-back"
            out.append(f"stressed weight {self.stressed_weight:g} on the stressed-period variance ({where})")
        if self.floor is not None:
            out.append(f"floor at margin {self.floor:.4%}")
        if self.floor_vol is not None:
            out.append(f"floor at the core rule's margin for the look-back daily vol {self.floor_vol:.4%}")
        if self.buffer:
            out.append(f"buffer {self.buffer:.0%} released ({self.buffer_release}) from daily vol {self.buffer_release_vol:.4%}")
        for thr, amount in self.addons:
            out.append(f"add-on {amount:.4%} from daily vol {thr:.4%}")
        if self.tick:
            out.append(f"rounded up to a tick of {self.tick:g}")
        return out

    def to_dict(self) -> dict:
        return {
            "floor": self.floor, "floor_vol": self.floor_vol, "buffer": self.buffer, "buffer_release_vol": self.buffer_release_vol,
            "buffer_release": self.buffer_release, "stressed_weight": self.stressed_weight, "stressed_vol": self.stressed_vol,
            "tick": self.tick, "addons": [list(a) for a in self.addons],
        }


OVERLAY_KEYS = ("floor", "floor_vol", "buffer", "buffer_release_vol", "buffer_release", "stressed_weight", "stressed_vol", "tick", "addons")


def overlays_from_dict(d: dict, where: str = "[overlays]") -> Overlays:
    """Overlays from a TOML table; unknown keys and wrong types raise one-sentence InputErrors."""
    for k, v in d.items():
        if k not in OVERLAY_KEYS:
            raise InputError(f"unknown key {k} = {v!r} in {where}; expected one of {', '.join(OVERLAY_KEYS)}.")
        if k == "buffer_release":
            if not isinstance(v, str):
                raise InputError(f"{where} buffer_release = {v!r} must be a string (absorb or drop).")
        elif k == "addons":
            if not isinstance(v, list):
                raise InputError(f"{where} addons = {v!r} must be a list of [threshold daily vol, add-on margin ratio] pairs.")
        elif isinstance(v, bool) or not isinstance(v, (int, float)):
            raise InputError(f"{where} {k} = {v!r} must be a number.")
    kw = {k: (float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v) for k, v in d.items()}
    if "addons" in kw:
        kw["addons"] = tuple(tuple(a) if isinstance(a, list) else a for a in kw["addons"])
    return Overlays(**kw)


# ----------------------------------------------------------------------------------------------
# Composite rule
# ----------------------------------------------------------------------------------------------


def _max2(a, da, b, db, side):
    """Pointwise max of (value, one-sided slope) pairs: ties take the larger right / smaller left slope."""
    tie = a == b
    pick_a = (a > b) | (tie & ((da >= db) if side == "right" else (da <= db)))
    return np.where(pick_a, a, b), np.where(pick_a, da, db)


def _min2(a, da, b, db, side):
    tie = a == b
    pick_a = (a < b) | (tie & ((da <= db) if side == "right" else (da >= db)))
    return np.where(pick_a, a, b), np.where(pick_a, da, db)


def _at_or_above(s, thr, side):
    """1{sigma >= thr} read from ``side``: at sigma = thr the right limit is 1, the left limit 0."""
    return (s > thr) | ((s == thr) & (side == "right"))


def _bisect_change(key, lo: float, hi: float) -> tuple[float, float]:
    """Shrink [lo, hi] (key(lo) != key(hi)) to the float-resolution bracket of the change."""
    klo = key(lo)
    for _ in range(BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        if mid <= lo or mid >= hi:
            break
        if key(mid) == klo:
            lo = mid
        else:
            hi = mid
    return lo, hi


@dataclass(frozen=True)
class Breakpoint:
    """A point where the rule is non-smooth: daily variance bracket [r_lo, r_hi] (equal when known exactly),
    one-sided margins (ratio) and slopes dM/dr on each side, and what made it."""

    r_lo: float
    r_hi: float
    margin_below: float
    margin_above: float
    slope_below: float
    slope_above: float
    source: str

    @property
    def r(self) -> float:
        return 0.5 * (self.r_lo + self.r_hi)

    @property
    def vol(self) -> float:
        return math.sqrt(self.r)

    @property
    def jump(self) -> float:
        """Delta M = M(r+) - M(r-) (margin ratio); > 0 an upward jump."""
        return self.margin_above - self.margin_below

    @property
    def is_jump(self) -> bool:
        return abs(self.jump) > JUMP_TOL

    @property
    def is_kink(self) -> bool:
        scale = max(abs(self.slope_below), abs(self.slope_above), 1e-300)
        return (not self.is_jump) and abs(self.slope_above - self.slope_below) > KINK_RTOL * scale


@dataclass(frozen=True, eq=False)
class Rule:
    """A core rule with overlays: the public M = g(r) under audit."""

    base: Any
    overlays: Overlays = Overlays()
    name: str = "rule"
    info: RuleInfo | None = None   # where the rule came from (file kind, published rows, stated cap, rule ID)

    def describe(self) -> str:
        parts = [self.base.describe()] + self.overlays.describe()
        return "; ".join(parts)

    def with_overlays(self, name: str | None = None, **kw) -> "Rule":
        return Rule(self.base, replace(self.overlays, **kw), name or self.name, self.info)

    # ------------------------------------------------------------ evaluation
    def _core(self, r, side, floor_r=None, stressed_r=None):
        """Steps 1-2 (stressed weight, floor): (value, dM/dr)."""
        o = self.overlays
        r = np.asarray(r, dtype=float)
        if o.stressed_weight:
            w = o.stressed_weight
            if stressed_r is None and o.stressed_vol is None:
                raise InputError(f"overlay stressed_weight = {w!r} needs stressed_vol, the daily vol of the stressed period.")
            rs = o.stressed_vol**2 if stressed_r is None else np.asarray(stressed_r, dtype=float)
            v, d = self.base.evaluate((1.0 - w) * r + w * rs, side)
            d = (1.0 - w) * d
        else:
            v, d = self.base.evaluate(r, side)
        if o.floor is not None or o.floor_vol is not None or floor_r is not None:
            if floor_r is not None:
                level = self.base.evaluate(np.asarray(floor_r, dtype=float), "right")[0]
            elif o.floor is not None:
                level = np.full_like(v, o.floor)
            else:
                level = self.base.evaluate(np.full_like(v, o.floor_vol**2), "right")[0]
            v, d = _max2(v, d, level, np.zeros_like(v), side)
        return v, d

    def _buffered(self, r, side, floor_r=None, stressed_r=None):
        """Steps 1-4 (before rounding)."""
        o = self.overlays
        r = np.asarray(r, dtype=float)
        v, d = self._core(r, side, floor_r, stressed_r)
        if o.buffer:
            b = o.buffer
            s = np.sqrt(r)
            if o.buffer_release == "absorb":
                rb = np.full_like(r, o.buffer_release_vol**2)
                level = (1.0 + b) * self._core(rb, "right", floor_r, stressed_r)[0]
                hv, hd = _min2((1.0 + b) * v, (1.0 + b) * d, level, np.zeros_like(v), side)
                v, d = _max2(v, d, hv, hd, side)
            else:
                calm = ~_at_or_above(s, o.buffer_release_vol, side)
                v, d = np.where(calm, (1.0 + b) * v, v), np.where(calm, (1.0 + b) * d, d)
        if o.addons:
            s = np.sqrt(r)
            for thr, amount in o.addons:
                v = v + amount * _at_or_above(s, thr, side)
        return v, d

    def evaluate(self, r, side: str = "right", *, floor_r=None, stressed_r=None) -> tuple[np.ndarray, np.ndarray]:
        """(M, dM/dr) at daily variance r, one-sided from ``side``.

        ``floor_r`` (daily variance of the long look-back) and ``stressed_r`` (daily variance of the stressed
        period) may be arrays aligned with r: the backtest passes the history-dependent EMIR inputs that way.
        A ``floor_r`` applies a floor even if the overlays have none.
        """
        side = _side(side)
        v, d = self._buffered(r, side, floor_r, stressed_r)
        t = self.overlays.tick
        if t:
            v = t * np.ceil(v / t - CEIL_SLACK)
            d = np.zeros_like(d)
        return v, d

    def margin(self, r, **kw) -> np.ndarray:
        """M = g(r) (margin ratio); at a jump the right limit (the rule is read as right-continuous)."""
        return self.evaluate(r, "right", **kw)[0]

    def slope(self, r, side: str = "right", **kw) -> np.ndarray:
        """One-sided dM/dr (margin ratio per unit of daily variance)."""
        return self.evaluate(r, side, **kw)[1]

    def slope_vol(self, vol, side: str = "right") -> np.ndarray:
        """One-sided dM/dsigma = 2 sigma dM/dr (margin ratio per unit of daily vol)."""
        vol = np.asarray(vol, dtype=float)
        return 2.0 * vol * self.slope(vol**2, side)

    # ------------------------------------------------------------ structure
    def breakpoints(self, vol_lo: float, vol_hi: float) -> tuple[Breakpoint, ...]:
        """Every point in [vol_lo, vol_hi] (daily vol) where the rule may be non-smooth, with its one-sided limits."""
        o = self.overlays
        r_lo, r_hi = vol_lo**2, vol_hi**2
        w = o.stressed_weight
        if w and o.stressed_vol is None:
            raise InputError(f"overlay stressed_weight = {w!r} needs stressed_vol, the daily vol of the stressed period.")
        rs = o.stressed_vol**2 if w else 0.0

        def to_state(r_eff):
            return (np.asarray(r_eff, dtype=float) - w * rs) / (1.0 - w)

        exact: list[tuple[float, str]] = []
        brackets: list[tuple[float, float, str]] = []
        re_lo, re_hi = (1.0 - w) * r_lo + w * rs, (1.0 - w) * r_hi + w * rs
        if isinstance(self.base, TableRule):
            base_pts = self.base.breakpoints()
        else:
            base_pts = self.base.breakpoints(re_lo, re_hi)
        for p in np.atleast_1d(to_state(base_pts)):
            exact.append((float(p), "core rule (knot or switch)"))
        for thr, _ in o.addons:
            exact.append((thr**2, "step add-on"))
        if o.buffer:
            exact.append((o.buffer_release_vol**2, "buffer release"))
        s_dense = np.linspace(vol_lo, vol_hi, DENSE_POINTS)
        r_dense = np.unique(np.concatenate([s_dense**2, [p for p, _ in exact if r_lo <= p <= r_hi]]))

        def crossings(fn, label):
            vals = fn(r_dense)
            for i in np.flatnonzero(vals[1:] != vals[:-1]):
                a, b = _bisect_change(lambda x: float(fn(np.asarray([x]))[0]), r_dense[i], r_dense[i + 1])
                brackets.append((a, b, label))

        if o.floor is not None or o.floor_vol is not None:
            level = o.floor if o.floor is not None else float(self.base.evaluate(np.asarray(o.floor_vol**2), "right")[0])

            def floor_key(x):
                if w:
                    x = (1 - w) * x + w * rs
                return np.sign(self.base.evaluate(x, "right")[0] - level)

            crossings(floor_key, "floor starts or stops binding")
        if o.buffer and o.buffer_release == "absorb":
            level = (1.0 + o.buffer) * float(self._core(np.asarray(o.buffer_release_vol**2), "right")[0])
            crossings(lambda x: np.sign(self._core(x, "right")[0] - level), "buffer used up")
        if o.tick:
            t = o.tick
            crossings(lambda x: np.ceil(self._buffered(x, "right")[0] / t - CEIL_SLACK), "tick rounding")
        out = []
        for p, label in exact:
            if r_lo <= p <= r_hi:
                brackets.append((p, p, label))
        merged: list[list] = []
        for a, b, label in sorted(brackets):
            if merged and a <= merged[-1][1] * (1.0 + MERGE_RTOL):
                last = merged[-1]
                last[1] = max(last[1], b)
                if label not in last[2]:
                    last[2] = last[2] + " + " + label
            else:
                merged.append([a, b, label])
        for a, b, label in merged:
            vl, dl = self.evaluate(np.asarray(a), "left")
            vr, dr = self.evaluate(np.asarray(b), "right")
            out.append(Breakpoint(float(a), float(b), float(vl), float(vr), float(dl), float(dr), label))
        return tuple(out)

    def discontinuities(self, vol_lo: float, vol_hi: float) -> tuple[Breakpoint, ...]:
        """The jumps (|Delta M| > JUMP_TOL) in [vol_lo, vol_hi], in order of the threshold."""
        return tuple(b for b in self.breakpoints(vol_lo, vol_hi) if b.is_jump)

    def kinks(self, vol_lo: float, vol_hi: float) -> tuple[Breakpoint, ...]:
        """Continuous points whose one-sided slopes differ (relative KINK_RTOL)."""
        return tuple(b for b in self.breakpoints(vol_lo, vol_hi) if b.is_kink)

    def flat_stretches(self, vol) -> tuple[tuple[float, float], ...]:
        """Runs of the daily-vol grid ``vol`` (>= 2 points) on which both one-sided slopes are zero (pooling)."""
        vol = np.asarray(vol, dtype=float)
        r = vol**2
        flat = (self.slope(r, "right") == 0) & (self.slope(r, "left") == 0)
        return tuple((float(vol[i]), float(vol[j])) for i, j in true_runs(flat) if j > i)

    def check_monotone(self, vol) -> None:
        """Raise InputError if the core rule is negative, non-finite or decreasing on the daily-vol grid ``vol``."""
        if isinstance(self.base, TableRule) and not self.base.require_monotone:
            return
        vol = np.asarray(vol, dtype=float)
        v, d = self.base.evaluate(vol**2, "right")
        what = self.base.describe()
        bad = ~np.isfinite(v) | ~np.isfinite(d)
        if bad.any():
            i = int(np.argmax(bad))
            raise InputError(f"{what} is not finite at daily vol {vol[i]:.6g}.")
        if np.any(v < 0):
            i = int(np.argmax(v < 0))
            raise InputError(f"{what} gives the negative margin {v[i]:.6g} at daily vol {vol[i]:.6g}.")
        dv = np.diff(v)
        tol = 1e-12 * max(1.0, float(np.max(np.abs(v))))
        if np.any(dv < -tol) or np.any(d < -1e-12 * max(1.0, float(np.max(np.abs(d))))):
            i = int(np.argmax(dv < -tol)) if np.any(dv < -tol) else max(int(np.argmax(d < 0)) - 1, 0)
            raise InputError(
                f"{what} is not monotone: margin falls from {v[i]:.6g} to {v[i + 1]:.6g} between daily vol {vol[i]:.6g} and {vol[i + 1]:.6g}; a margin rule must be non-decreasing."
            )


# ----------------------------------------------------------------------------------------------
# Loading a rule: CSV table, TOML [rule] file, or a formula string
# ----------------------------------------------------------------------------------------------

RULE_KEYS = ("formula", "table", "interpolation", "name")
#: Suffixes of files a user may mistake for rule files (named in the error when the spec is not a formula).
OTHER_FILE_SUFFIXES = (".txt", ".xlsx", ".xls", ".tsv", ".cvs", ".tml")


def _suffix(spec: str) -> str:
    """The lower-case file suffix of ``spec`` read as a path (pure string work: no file-system call)."""
    try:
        return Path(spec).suffix.lower()
    except (TypeError, ValueError):
        return ""


def _exists(spec: str) -> bool:
    """True if ``spec`` names an existing file or folder; False for strings no file system accepts (too long, NUL)."""
    try:
        return Path(spec).exists()
    except (OSError, ValueError):
        return False


def is_folder(spec) -> bool:
    """True if ``spec`` names an existing folder; False for strings no file system accepts (too long, NUL)."""
    try:
        return Path(spec).is_dir()
    except (OSError, ValueError):
        return False


def load_rule(spec: str, *, interpolation: str | None = None, overlays: dict | None = None, name: str | None = None,
              monotone: bool = True) -> Rule:
    """The rule named by ``spec``: a ``.csv`` table, a ``.json`` table margin-design wrote, a ``.toml`` rule file, a
    ``report --out`` / ``solve --out`` folder, or a formula in r / sigma.

    Tables (:func:`read_rule_csv`, :func:`read_rule_json`): a daily-vol column -- ``vol_daily`` (canonical), ``vol``
    (legacy, the same) or ``vol_annual`` (annualised, divided by sqrt(252)) -- and ``margin`` (margin ratio); this reads
    back every table ``solve --out`` and ``report --out`` write (schedule.json/.csv, rule_table.csv/.json,
    step_table.csv/.json). A folder stands for its rule_table.json, else its schedule.json. ``rule.info``
    (:class:`RuleInfo`) keeps what the file states besides the margins (published rows, cap, rule ID, reading).
    Beyond its first and last row a table is read as it states (:func:`table_rule`): a published rule_table.csv/.json
    exactly as published (flat below, the last interval's slope above), any table stating nothing flat.

    TOML format::

        [rule]
        formula = "2.326*sqrt(2*r)"     # or: table = "rule.csv" (relative to the TOML's folder)
        interpolation = "linear"         # tables only: linear | step
        name = "current VaR rule"        # optional label
        [overlays]                       # all optional; see Overlays
        floor = 0.02
        buffer = 0.25
        buffer_release_vol = 0.02
        stressed_weight = 0.25
        stressed_vol = 0.03
        tick = 0.0005
        addons = [[0.026, 0.005]]

    ``interpolation`` and ``overlays`` (a dict of overlay keys) override the file's values. ``monotone=False`` reads a
    ``vol,margin`` CSV whose margins may fall (an existing schedule to be capped in target mode, like the first-best
    reference of the audit); every other check is the same.

    ``spec`` is a file only if it ends in ``.csv``, ``.json`` or ``.toml`` (a missing one is an error saying so); any
    other string is a formula, parsed by :func:`parse_formula` (never run as code), even if a file of that name exists;
    only a string that is no formula is read as a folder.
    """
    if interpolation is not None and interpolation not in INTERPOLATIONS:
        raise InputError(f"--interpolation = {interpolation!r} is not one of {', '.join(INTERPOLATIONS)}.")
    spec = str(spec) if isinstance(spec, Path) else spec
    if not isinstance(spec, str):
        raise InputError(f"rule {spec!r} must be a path to a .csv or .toml rule file or a formula (text).")
    p = Path(spec)
    over: dict = {}
    label = name
    suffix = _suffix(spec)
    if suffix == ".csv":
        base, info = _read_csv(p, interpolation, monotone)
        label = label or p.stem
    elif suffix == ".json":
        base, info = read_rule_json(p, interpolation)
        label = label or p.stem
    elif suffix == ".toml":
        try:
            raw = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(f"rule file {str(p)!r} does not exist.") from None
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise InputError(f"rule file {str(p)!r} is not readable TOML ({exc}).") from None
        for sec in raw:
            if sec not in ("rule", "overlays"):
                raise InputError(f"rule file {p.name} has the unknown section [{sec}]; expected [rule] and optionally [overlays].")
        rule = raw.get("rule")
        if not isinstance(rule, dict):
            raise InputError(f"rule file {p.name} has no [rule] table.")
        for k in rule:
            if k not in RULE_KEYS:
                raise InputError(f"unknown key rule.{k} in {p.name}; expected one of {', '.join(RULE_KEYS)}.")
        for k in rule:
            if not isinstance(rule[k], str):
                raise InputError(f"rule.{k} = {rule[k]!r} in {p.name} must be a string.")
        if ("formula" in rule) == ("table" in rule):
            raise InputError(f"rule file {p.name} must give exactly one of rule.formula and rule.table.")
        if "formula" in rule:
            if "interpolation" in rule:
                raise InputError(f"rule.interpolation in {p.name} applies only to tables, not to rule.formula.")
            try:
                base = parse_formula(rule["formula"])
            except InputError as exc:
                raise InputError(f"rule.formula in {p.name}: {exc}") from None
        else:
            interp = interpolation or rule.get("interpolation", "linear")
            if interp not in INTERPOLATIONS:
                raise InputError(f"rule.interpolation = {interp!r} in {p.name} is not one of {', '.join(INTERPOLATIONS)}.")
            base = read_rule_csv(p.parent / rule["table"], interp)
        info = RuleInfo("toml rule file", str(p), published_vol=tuple(base.vol.tolist()) if isinstance(base, TableRule) else None,
                        extrapolation=base.extrapolation_text if isinstance(base, TableRule) else None)
        if not isinstance(raw.get("overlays", {}), dict):
            raise InputError(f"overlays in {p.name} must be a table [overlays].")
        over = dict(raw.get("overlays", {}))
        label = label or rule.get("name") or p.stem
    else:
        try:
            base = parse_formula(spec)
        except InputError as exc:
            # not a formula: if it looks like a file, say what files are accepted (checked only now, and safely:
            # a long formula is no file name, and a formula is never read as a path)
            if is_folder(spec):
                base, info = read_rule_folder(p, interpolation)
                over = {}
                label = label or p.name
            elif suffix in OTHER_FILE_SUFFIXES or _exists(spec):
                raise InputError(f"rule {quote_formula(spec)} must be a .csv or .json table, a .toml rule file, a report or solve folder, "
                                 "or a formula in r or sigma.") from None
            elif "/" in spec and "(" not in spec:
                raise InputError(f"rule {quote_formula(spec)} is neither an existing .csv/.json/.toml file or folder nor a formula in r or sigma.") from None
            else:
                raise exc
        else:
            if is_folder(spec):
                raise InputError(f"rule {quote_formula(spec)} is both a formula and a folder; write ./{spec} for the folder.")
            if interpolation is not None:
                raise InputError("--interpolation applies only to table rules, not to a formula.")
            label = label or "formula rule"
            info = RuleInfo("formula")
    if overlays:
        over.update({k: v for k, v in overlays.items() if v is not None})
    return Rule(base, overlays_from_dict(over), label, info)
