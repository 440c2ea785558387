"""Each segment's formula, built with sympy from the numbers the solver used (Nicolai 2026, Section 6.3).

* ``saturated`` (42): M = a + b sqrt(r), with b = K the cap on dM/dsigma (daily vol units; 2/(alpha c_eff)
  in the paper's benchmark) and a the segment's intercept.
* ``pooling`` (43): M = k, the pooled level.
* ``floor`` ((3), (34)): M = 0, a leading pooled run held by the floor M >= 0.
* ``tracking``: the rule equals the first-best, defined by the first-order condition (35),
  marginal coverage benefit = kappa_M + lambda_L c_eff^2 (M - M_-)_+ + lambda_P p(M), with only the
  configured cost terms (linear cost forms give Heaviside terms: at M = M_- the condition holds as an
  inclusion). For the shortfall loss the left side is Pr(D > M | r) with D = sqrt(h r) Y; for the
  squared-shortfall loss it is E[(D - M)_+ | r]. Normal shocks get a closed form (erfc); other shocks
  are written with Fbar_Y (the survival function of Y) or e_Y (its mean excess, E[(Y - k)_+]).
  For the target objective (Appendix D.2), tracking is M = t(r), the target of ``objective.file``.

Portfolio designs ((85)-(88)): r is the variance of the margined portfolio's daily return, the cap of a saturated
segment is (88), and the liquidation term of (86) puts ||AB||_2 where (32) has c_eff: the tracking condition
reads ... + lambda_L ||AB||^2 (M - M_-)_+ (quadratic) or lambda_L ||AB|| Heaviside(M - M_-) (linear).

Numbers are sympy Floats with :data:`FORMULA_DIGITS` significant digits. ``text`` is ``sympy.sstr``
(parseable back with ``sympy.sympify``), ``latex`` is ``sympy.latex``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from margin_design.reports.rule_data import SQRT_252, RuleData

FORMULA_DIGITS = 8

M = sp.Symbol("M")
r = sp.Symbol("r", positive=True)
kappa_M, lambda_L, lambda_P, c_eff, M_minus, beta = sp.symbols("kappa_M lambda_L lambda_P c_eff M_- beta")
Fbar_Y = sp.Function("Fbar_Y")
e_Y = sp.Function("e_Y")
t_fun = sp.Function("t")


class _NormAB(sp.Symbol):
    """||AB||_2 of (86): prints as ||AB|| in text and as \\lVert AB \\rVert_2 in LaTeX."""

    def _latex(self, printer):
        return r"\lVert AB \rVert_2"


norm_AB = _NormAB("||AB||")

EQUATIONS = {"saturated": "(42)", "pooling": "(43)", "tracking": "(35)", "floor": "(3), (34)"}


def _f(x: float) -> sp.Float:
    return sp.Float(float(x), FORMULA_DIGITS)


def _num(x: float):
    """An integer-valued parameter stays an Integer (h = 2 prints as 2), anything else a Float."""
    return sp.Integer(int(x)) if float(x).is_integer() else _f(x)


@dataclass(frozen=True)
class SegmentFormula:
    """One segment: its regime, grid points start..end, vol range and its formula (general and numeric)."""

    kind: str
    start: int
    end: int
    vol_start: float
    vol_end: float
    equation: str
    lhs: object = field(repr=False)          # sympy expressions with the calibrated numbers substituted
    rhs: object = field(repr=False)
    general_text: str = ""
    general_latex: str = ""
    note: str = ""
    order: str | None = None                 # "none" keeps the term order a + b sqrt(r) of (42)

    @property
    def text(self) -> str:
        return f"{sp.sstr(self.lhs, order=self.order)} = {sp.sstr(self.rhs, order=self.order)}"

    @property
    def latex(self) -> str:
        return f"{sp.latex(self.lhs, order=self.order)} = {sp.latex(self.rhs, order=self.order)}"

    def to_dict(self) -> dict:
        return {
            "regime": self.kind,
            "start": self.start,
            "end": self.end,
            "vol_daily_from": self.vol_start,
            "vol_daily_to": self.vol_end,
            "vol_annual_from": SQRT_252 * self.vol_start,
            "vol_annual_to": SQRT_252 * self.vol_end,
            "equation": self.equation,
            "formula": self.text,
            "formula_latex": self.latex,
            "general": self.general_text,
            "general_latex": self.general_latex,
            "note": self.note,
        }


def tracking_condition(config: dict, portfolio: dict | None = None) -> tuple:
    """(lhs, rhs, general_text, general_latex, note) of the first-order condition (35) for a cost objective,
    or of M = t(r) for the target objective, with the configured numbers substituted. ``portfolio``: the
    schedule.json portfolio block of a portfolio design (its ||AB|| replaces c_eff, (86))."""
    o = config["objective"]
    if o["kind"] == "target":
        return M, t_fun(r), "M = t(r)", "M = t(r)", f"t = target column of objective.file = {o['file']} (Appendix D.2)"
    k = config["shock"]
    h = _num(k["horizon_days"])
    s = sp.sqrt(h * r)
    model = k["model"]
    shortfall = o["loss"] == "shortfall"
    if model == "normal":
        z = M / s
        if shortfall:
            lhs = sp.erfc(z / sp.sqrt(2)) / 2
        else:
            lhs = s * (sp.exp(-z**2 / 2) / sp.sqrt(2 * sp.pi) - z * sp.erfc(z / sp.sqrt(2)) / 2)
        shock_note = f"D = sqrt({h} r) Y, Y ~ N(0, 1)"
    else:
        scale = s
        if model == "student_t":
            df = float(k["df"])
            scale = s * _f(((df - 2.0) / df) ** 0.5)
            shock_note = f"D = sqrt({h} r) Y, Y = c T with T ~ Student-t(df = {df:g}), c = sqrt((df - 2)/df); Fbar_Y, e_Y survival and mean excess of T"
        else:
            bw = k.get("bandwidth_used", k.get("bandwidth"))
            shock_note = f"D = sqrt({h} r) Y, Y empirical (shock.file) smoothed with a Gaussian kernel, bandwidth {bw:.6g}; Fbar_Y, e_Y its survival function and mean excess"
        lhs = Fbar_Y(M / scale) if shortfall else scale * e_Y(M / scale)
    general_lhs_text = "Pr(D > M | r)" if shortfall else "E[(D - M)_+ | r]"
    general_lhs_latex = r"\Pr(D > M \mid r)" if shortfall else r"\mathbb{E}\left[(D - M)_+ \mid r\right]"
    m = config["market"]
    sym = sp.Integer(0)
    values = {}
    if o["carry"]:
        sym += kappa_M
        values[kappa_M] = _f(o["carry"])
    x = M - M_minus
    if o["liquidation_weight"]:
        # (32): c_eff, forced sales per unit margin ratio; portfolio (86): ||AB||, price pressure per unit margin ratio
        scale, value = (norm_AB, portfolio["price_pressure"]) if portfolio is not None else (c_eff, m["c_eff"])
        sym += lambda_L * scale**2 * sp.Max(0, x) if o["liquidation_cost"] == "quadratic" else lambda_L * scale * sp.Heaviside(x)
        values.update({lambda_L: _f(o["liquidation_weight"]), scale: _f(value)})
        if portfolio is not None:
            shock_note += f"; liquidation on the portfolio price pressure (86), ||AB|| = {float(value):.6g} (price change per unit margin ratio)"
    if o["participation_weight"] and o["participation_beta"]:
        sym += lambda_P * beta * sp.Heaviside(x) if o["participation_cost"] == "linear" else lambda_P * beta**2 * sp.Max(0, x)
        values.update({lambda_P: _f(o["participation_weight"]), beta: _f(o["participation_beta"])})
    if sym.has(M_minus):
        values[M_minus] = _f(o["prev_margin"])
    rhs = sym.xreplace(values)
    general_text = f"{general_lhs_text} = {sp.sstr(sym)}"
    general_latex = f"{general_lhs_latex} = {sp.latex(sym)}"
    return lhs, rhs, general_text, general_latex, shock_note


def segment_formulas(data: RuleData) -> list[SegmentFormula]:
    """One :class:`SegmentFormula` per segment of the solved schedule, in grid order."""
    out = []
    K = data.slope_vol
    units = "(88), daily portfolio vol units" if data.is_portfolio else "(daily vol units)"
    for s in data.segments:
        kind = s["kind"]
        common = dict(kind=kind, start=int(s["start"]), end=int(s["end"]), vol_start=float(s["vol_start"]), vol_end=float(s["vol_end"]), equation=EQUATIONS[kind])
        if kind == "saturated":
            rhs = sp.Add(_f(s["intercept"]), sp.Mul(_f(K), sp.sqrt(r)), evaluate=False)
            out.append(SegmentFormula(lhs=M, rhs=rhs, general_text="M = a + K*sqrt(r)", general_latex=r"M = a + K \sqrt{r}",
                                      note=f"a = intercept, K = cap on dM/dsigma = {K:.6g} {units}", order="none", **common))
        elif kind == "floor":
            out.append(SegmentFormula(lhs=M, rhs=sp.Integer(0), general_text="M = 0", general_latex="M = 0",
                                      note="margins are non-negative, (3) and (34): the floor binds (the unconstrained level would be negative)", **common))
        elif kind == "pooling":
            out.append(SegmentFormula(lhs=M, rhs=_f(s["level"]), general_text="M = k", general_latex="M = k",
                                      note="k solves sum_j w_j dPsi/dM(r_j, k) = 0 over the pooled states", **common))
        else:
            lhs, rhs, gt, gl, note = tracking_condition(data.config, data.portfolio)
            if data.objective_kind == "target":
                common["equation"] = "(D.2)"
            elif data.is_portfolio:
                common["equation"] = "(35), (86)"
            out.append(SegmentFormula(lhs=lhs, rhs=rhs, general_text=gt, general_latex=gl, note=note, **common))
    return out
