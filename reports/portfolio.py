"""The portfolio part of a report: the parameter block, the D.6 comparison and the figure's data (Nicolai 2026,
Sections 5, 6.5, Appendix D.5-D.6, (85)-(93)).

A portfolio design reduces to the single-contract problem through two numbers (design/portfolio.py):

* the cap (87)-(88) in vol units, K = (2 + kappa ||B||^2 / B'AB) / (s_f psi), psi = max{0, -d'AB}
  (no cap from manipulation when psi = 0);
* the liquidation scale ||AB||_2 in the liquidation term (86), lambda_L/2 ||AB||^2 (M - M_-)_+^2.

Units: A price change (price normalised to 1) per unit of ADV traded; B ADV per unit rise of the margin ratio;
d a unit vector (dimensionless); AB, psi and ||AB|| price change per unit margin ratio; s_f dimensionless
(c_r = 2 sqrt(r) s_f); caps in margin ratio per unit daily portfolio vol (dM/dsigma), or per unit annualised vol
after dividing by sqrt(252) (74).

The D.6 comparison. The two-asset example A = alpha [[1, rho], [rho, 1]], B = c/2 (1, 1), d = -(1, 1)/sqrt(2) has
||AB|| = psi = xi_SA (1 + rho)/sqrt(2) (89)-(91) against the single-asset benchmark scale xi_SA = alpha c, and the
admissible-slope ratio xi_SA / psi = sqrt(2)/(1 + rho) (92), both equal to 1 at rho = sqrt(2) - 1. A design
*fits* the structure when it has two contracts with equal own impacts, equal positive liquidations and
d = -(1, 1)/sqrt(2) (to :data:`D6_FIT_RTOL`); its rho is then A_12 / A_11. For any design the benchmark scale is
generalised as

    xi_SA = sum_i A_ii |B_i|,

all forced sales (||B||_1 ADV per unit margin ratio) priced at the B-weighted mean own impact, with no
cross-impact: alpha c in D.6 and alpha c_eff for one contract. The design's psi / xi_SA, ||AB|| / xi_SA and
xi_SA / psi are then read against the D.6 curves; the rho-equivalent is where the D.6 curve has the design's
alignment, sqrt(2) psi / xi_SA - 1. The slope ratio xi_SA / psi is (92)'s: the same c_r (s_f) and kappa = 0.
"""

from __future__ import annotations

import math

import numpy as np

from margin_design.reports.rule_data import SQRT_252, RuleData

#: Relative tolerance of the D.6 structure test (equal diagonal, equal B, d = -(1, 1)/sqrt(2)); the design's own
#: unit-vector test of d uses 1e-9 too (design/portfolio.py UNIT_TOL).
D6_FIT_RTOL = 1e-9
#: The rho range drawn in the D.6 figure (rho in (-1, 1); the slope ratio grows without bound as rho -> -1).
RHO_RANGE = (-0.9, 1.0)
SQRT2 = math.sqrt(2.0)

UNITS = {
    "impact_A": "price change (price normalised to 1) per unit of ADV traded, K x K, rows and columns in the order of assets",
    "liquidation_B": "forced sales in ADV of each contract per unit rise of the margin ratio",
    "trigger_d": "unit direction of the sampled mark vector that raises the risk input (dimensionless)",
    "pressure_AB": "price change of each contract per unit rise of the margin ratio, through forced sales",
    "psi": "max{0, -d'AB} (87): price change along d per unit margin ratio",
    "price_pressure_AB_norm": "||AB||_2 (D.5), price change per unit margin ratio; the liquidation scale of (86)",
    "sensitivity_s_f": "dimensionless; the input's sensitivity along d is c_r = 2 sqrt(r) s_f",
    "cap_vol_daily": "margin ratio per unit daily portfolio vol (dM/dsigma), (88)",
    "cap_vol_annual": "margin ratio per unit annualised vol, K / sqrt(252), (74)",
    "benchmark_scale_xi_SA": "price change per unit margin ratio: sum_i A_ii |B_i| (alpha c in D.6)",
}


def benchmark_scale(pf: dict) -> float:
    """xi_SA = sum_i A_ii |B_i| (price change per unit margin ratio): D.6's alpha c, generalised (module docstring)."""
    A = np.asarray(pf["impact"], float)
    B = np.asarray(pf["liquidation"], float)
    return float(np.sum(np.diag(A) * np.abs(B)))


def two_asset_fit(pf: dict) -> dict | None:
    """(rho, alpha, c) when the design has the D.6 structure (module docstring), else None.

    alpha = A_11 (price change per ADV traded), rho = A_12 / A_11 (dimensionless), c = B_1 + B_2 (ADV per unit
    margin ratio, the total liquidation).
    """
    A = np.asarray(pf["impact"], float)
    B = np.asarray(pf["liquidation"], float)
    d = np.asarray(pf["trigger"], float)
    if A.shape != (2, 2):
        return None
    close = lambda a, b: abs(a - b) <= D6_FIT_RTOL * max(abs(a), abs(b))  # noqa: E731
    if not (close(A[0, 0], A[1, 1]) and B[0] > 0 and close(B[0], B[1])):
        return None
    if not (abs(d[0] + 1.0 / SQRT2) <= D6_FIT_RTOL and abs(d[1] + 1.0 / SQRT2) <= D6_FIT_RTOL):
        return None
    return {"rho": float(A[0, 1] / A[0, 0]), "alpha": float(A[0, 0]), "c": float(B[0] + B[1])}


def d6_comparison(pf: dict) -> dict:
    """The design against the single-asset benchmark scale xi_SA and the D.6 curves (JSON-ready; module docstring)."""
    from margin_design.calibration.portfolio import TWO_ASSET_RHO_THRESHOLD, two_asset_pressure_ratio, two_asset_slope_ratio

    xi = benchmark_scale(pf)
    psi, norm = float(pf["psi"]), float(pf["price_pressure"])
    rho_eq = SQRT2 * psi / xi - 1.0 if xi > 0 else None
    fit = two_asset_fit(pf)
    out = {
        "benchmark_scale_xi_SA": xi,
        "benchmark_definition": "xi_SA = sum_i A_ii |B_i|: all forced sales at the B-weighted mean own impact, no cross-impact (alpha c in D.6)",
        "psi_over_xi_SA": psi / xi if xi > 0 else None,
        "price_pressure_over_xi_SA": norm / xi if xi > 0 else None,
        "slope_ratio_xi_SA_over_psi": xi / psi if psi > 0 and xi > 0 else None,
        "rho_equivalent": rho_eq if rho_eq is not None and -1.0 < rho_eq <= 1.0 else None,
        "rho_threshold": TWO_ASSET_RHO_THRESHOLD,
        "two_asset_fit": None,
    }
    if fit is not None:
        rho = fit["rho"]
        fit["pressure_ratio_89_91"] = float(two_asset_pressure_ratio(rho))
        fit["slope_ratio_92"] = float(two_asset_slope_ratio(rho)) if rho > -1.0 else None
        fit["first_best"] = "flatter than the benchmark" if rho > TWO_ASSET_RHO_THRESHOLD else (
            "steeper than the benchmark" if rho < TWO_ASSET_RHO_THRESHOLD else "as the benchmark")
        out["two_asset_fit"] = fit
    return out


def portfolio_parameters(data: RuleData) -> dict:
    """The ``portfolio`` group of the parameter block (units in :data:`UNITS`, also written as its ``units`` entry)."""
    pf = data.portfolio
    kappa = data.inventory_penalty
    cap = pf["cap_vol"]
    singles = pf["single_contract_cap_vol"]
    imposed = data.cap.get("kind") != "none"
    return {
        "assets": list(pf["assets"]),
        "contracts": len(pf["assets"]),
        "impact_A": [list(map(float, row)) for row in pf["impact"]],
        "liquidation_B": [float(v) for v in pf["liquidation"]],
        "trigger_d": [float(v) for v in pf["trigger"]],
        "pressure_AB": list(pf["pressure_vector"]),
        "sensitivity_s_f": float(pf["sensitivity"]),
        "sensitivity_source": pf["source"],
        "psi": float(pf["psi"]),
        "price_pressure_AB_norm": float(pf["price_pressure"]),
        "BAB": float(pf["bab"]),
        "inventory_penalty_kappa": kappa,
        "cap_directions": pf.get("cap_directions", "all"),
        "cap_formula": (
            "K = (2 + kappa ||B||^2 / B'AB) / (s_f psi), (87)-(88), trips along B; no cap from manipulation when psi = 0"
            if pf.get("cap_directions") == "liquidation" else
            "K = 1 / (s_f Phi), every two-period round trip (Lemma 10), Phi = (sqrt(u'C^-1 u v'C^-1 v) - u'C^-1 v)/2 with "
            "u = AB, v = Ad, C = 2A + kappa I; equals (88) when B is proportional to -d, tighter otherwise"
        ),
        "phi": pf.get("phi"),
        "cap_vol_88_daily": pf.get("cap_vol_liquidation"),
        "cap_vol_all_daily": pf.get("cap_vol_all"),
        "cap_vol_daily": cap,
        "cap_vol_annual": None if cap is None else cap / SQRT_252,
        "cap_imposed": imposed,
        "single_contract_cap_vol_daily": singles,
        "single_contract_cap_vol_annual": [None if c is None else c / SQRT_252 for c in singles],
        "single_contract_definition": "contract i alone: A = A_ii, B = B_i, d = -1, the same s_f and kappa: (2 A_ii + kappa) / (s_f A_ii^2 B_i), (16)-(18)",
        "cap_over_single_contract_cap": [None if (c is None or cap is None) else cap / c for c in singles],
        "liquidation_term": liquidation_term_text(data),
        "d6": d6_comparison(pf),
        "units": dict(UNITS),
    }


def liquidation_term_text(data: RuleData) -> str:
    """The liquidation term of (86) as configured (plain text)."""
    o = data.config["objective"]
    if o.get("liquidation_cost") == "linear":
        return "lambda_L ||AB|| (M - M_-)_+ (linear form of (86))"
    return "lambda_L/2 ||AB||^2 (M - M_-)_+^2 (86)"


def contract_rows(block: dict) -> list[list[str]]:
    """One row per contract: name, row of A, B_i, d_i, (AB)_i, single-contract cap (daily and annual) and K / K_i."""
    rows = []
    for i, name in enumerate(block["assets"]):
        single = block["single_contract_cap_vol_daily"][i]
        ratio = block["cap_over_single_contract_cap"][i]
        rows.append([
            name,
            ", ".join(f"{v:.6g}" for v in block["impact_A"][i]),
            f"{block['liquidation_B'][i]:.6g}",
            f"{block['trigger_d'][i]:.6g}",
            f"{block['pressure_AB'][i]:.6g}",
            "none" if single is None else f"{single:.6g}",
            "none" if single is None else f"{single / SQRT_252:.4f}",
            "n/a" if ratio is None else f"{ratio:.4g}",
        ])
    return rows


CONTRACT_HEADERS = (
    "Contract", "Row of A (price per ADV traded)", "B_i (ADV per unit margin ratio)", "d_i", "(AB)_i (price per unit margin ratio)",
    "Alone: cap K_i (daily vol)", "Alone: K_i/sqrt(252) (pp/vol pt)", "K / K_i",
)

#: The same columns in LaTeX (units in the sentence above the table).
CONTRACT_HEADERS_TEX = (
    "Contract", "Row of $A$", "$B_i$", "$d_i$", "$(AB)_i$", "$K_i$ alone", "$K_i/\\sqrt{252}$", "$K/K_i$",
)


def d6_curves(rho) -> tuple[np.ndarray, np.ndarray]:
    """(||AB||/xi_SA = psi/xi_SA, sqrt(2)/(1 + rho)) on the grid ``rho`` in (-1, 1]: (89)-(92), by the calibration formulas."""
    from margin_design.calibration.portfolio import two_asset_pressure_ratio, two_asset_slope_ratio

    return np.asarray(two_asset_pressure_ratio(rho), float), np.asarray(two_asset_slope_ratio(rho), float)


def d6_caption(block: dict) -> str:
    """The caption of the D.6 figure: what is drawn, and where this design sits."""
    c = block["d6"]
    names = ", ".join(block["assets"])
    base = (
        "Cap across the assets' alignment (Appendix D.6): for A = alpha [[1, rho], [rho, 1]], B = c/2 (1, 1), d = -(1, 1)/sqrt(2), "
        "the price-pressure and alignment ratio ||AB||/xi_SA = psi/xi_SA = (1 + rho)/sqrt(2) (89)-(91) (above 1: first-best flatter than "
        "the single-asset benchmark xi_SA = alpha c) and the admissible-slope ratio sqrt(2)/(1 + rho) (92) (below 1: cap tighter), "
        f"log scale, both 1 at rho = sqrt(2) - 1 = {c['rho_threshold']:.3f} (dotted). "
    )
    fit = c["two_asset_fit"]
    if fit is not None:
        slope = "no cap (psi = 0)" if fit["slope_ratio_92"] is None else f"slope ratio {fit['slope_ratio_92']:.3f}"
        return base + (
            f"Marked: this design ({names}) has the D.6 structure with rho = {fit['rho']:.4g} (alpha = {fit['alpha']:.4g}, c = {fit['c']:.4g}): "
            f"||AB||/xi_SA = psi/xi_SA = {fit['pressure_ratio_89_91']:.3f}, {slope}; its first-best is {fit['first_best']}."
        )
    parts = [f"psi/xi_SA = {c['psi_over_xi_SA']:.3f}", f"||AB||/xi_SA = {c['price_pressure_over_xi_SA']:.3f}"]
    parts.append("no cap (psi = 0)" if c["slope_ratio_xi_SA_over_psi"] is None else f"xi_SA/psi = {c['slope_ratio_xi_SA_over_psi']:.3f}")
    where = (f"; the D.6 curve has its alignment at rho = {c['rho_equivalent']:.3f} (marked)" if c["rho_equivalent"] is not None
             else "; its alignment lies outside the D.6 curve's range")
    return base + (
        f"This design ({names}) does not have the D.6 structure; dashed lines: its {', '.join(parts)} against the generalised benchmark "
        f"scale xi_SA = sum_i A_ii |B_i| = {c['benchmark_scale_xi_SA']:.4g}{where}."
    )
