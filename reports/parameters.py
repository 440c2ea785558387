"""The parameter block and the provenance block of a report.

Parameter block: coverage (loss, carrying cost kappa_M, margin period, shock model and its fitted
parameters), state weights, liquidation and participation weights, the market state (alpha, c_eff,
inventory penalty kappa), the cap and its formula, and, where the user gives them, the elasticity inputs
alpha and c_eff came from (Nicolai 2026, (75)-(77)):

    alpha = delta / f,        c_eff = epsilon * tau / m,

with delta = distortion_bps / 10^4 the sampled-price distortion of a trigger of f (fraction of ADV),
epsilon the elasticity of constrained positions to margin, tau = XP/ADV the constrained sector's size and
m the margin level. A mismatch with the configured alpha or c_eff beyond :data:`CONSISTENCY_RTOL` is a
warning, not an error (the config may have been calibrated differently).

Portfolio designs (a ``[portfolio]`` section, (85)-(88)): the market block holds only the inventory penalty, the
``portfolio`` group holds A, B, d, s_f, psi, ||AB||, the cap (88) and each contract's single-contract cap
(:mod:`margin_design.reports.portfolio`), the objective reads (85)-(86) with the liquidation term on the price
pressure ||AB|| (M - M_-), and the elasticity inputs are refused (:func:`check_elasticity_applies`): (75)-(77)
calibrate one alpha and one c_eff, which a portfolio design does not have.

Provenance block: package versions, the configuration and problem hashes, the input data files' hashes,
solver and backend versions, the certificate and the effective date the user gives (never the clock).
The solver's wall time is left out so that reruns are byte-identical.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from margin_design.errors import InputError
from margin_design.reports.portfolio import liquidation_term_text, portfolio_parameters
from margin_design.reports.rule_data import SQRT_252, RuleData

CONSISTENCY_RTOL = 0.01    # relative mismatch between implied and configured alpha / c_eff that triggers a warning


@dataclass(frozen=True)
class ElasticityInputs:
    """Optional calibration inputs (decimals except ``distortion_bps``): epsilon, tau, f, delta (bp), m."""

    elasticity: float | None = None
    turnover: float | None = None
    participation: float | None = None
    distortion_bps: float | None = None
    margin_level: float | None = None

    def __post_init__(self):
        checks = {
            "--elasticity": (self.elasticity, "a positive elasticity epsilon_XM = -dlog X/dlog M"),
            "--turnover": (self.turnover, "a positive turnover tau = XP/ADV"),
            "--participation": (self.participation, "a trigger size f in (0, 1] (fraction of ADV)"),
            "--distortion-bps": (self.distortion_bps, "a positive distortion in bp of the price"),
            "--margin-level": (self.margin_level, "a margin ratio in (0, 1]"),
        }
        for flag, (v, what) in checks.items():
            if v is None:
                continue
            bad = not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0)
            if flag in ("--participation", "--margin-level") and not bad:
                bad = v > 1
            if bad:
                raise InputError(f"{flag} = {v!r} must be {what}.")

    @property
    def given(self) -> bool:
        return any(v is not None for v in (self.elasticity, self.turnover, self.participation, self.distortion_bps))


ELASTICITY_FLAGS = (
    ("elasticity", "--elasticity"), ("turnover", "--turnover"), ("participation", "--participation"),
    ("distortion_bps", "--distortion-bps"), ("margin_level", "--margin-level"),
)


def check_elasticity_applies(inputs: ElasticityInputs | None, is_portfolio: bool) -> None:
    """InputError (one sentence naming the flags) when elasticity inputs are given for a portfolio design.

    (75)-(77) turn one elasticity, turnover, trigger and distortion into one alpha and one c_eff; a portfolio design
    has an impact matrix A and a liquidation vector B instead, calibrated per contract and across contracts, so
    there is nothing for the scalar flags to check.
    """
    if inputs is None or not is_portfolio:
        return
    given = [flag for key, flag in ELASTICITY_FLAGS if getattr(inputs, key) is not None]
    if given:
        names = given[0] if len(given) == 1 else ", ".join(given[:-1]) + " and " + given[-1]
        raise InputError(
            f"{names} {'does' if len(given) == 1 else 'do'} not apply to a [portfolio] design: the elasticity inputs check market.alpha "
            "and market.c_eff through (75)-(77), and a portfolio has the impact matrix A and the liquidation vector B in their place "
            "((86)-(88)); drop the flag."
        )


def _implied(inputs: ElasticityInputs, data: RuleData) -> tuple[dict, list[str]]:
    o = data.config["objective"]
    m = inputs.margin_level
    m_source = "--margin-level"
    if m is None and o.get("kind") == "cost" and o.get("prev_margin"):
        m, m_source = float(o["prev_margin"]), "objective.prev_margin"
    out = {
        "elasticity_epsilon": inputs.elasticity,
        "turnover_tau": inputs.turnover,
        "participation_f": inputs.participation,
        "distortion_bps": inputs.distortion_bps,
        "margin_level_m": m,
        "margin_level_source": m_source if m is not None else None,
        "implied_alpha": None,
        "implied_c_eff": None,
        "consistent": None,
    }
    warnings = []
    ok = True
    checked = False
    if inputs.participation is not None and inputs.distortion_bps is not None:
        a = inputs.distortion_bps / 1e4 / inputs.participation
        out["implied_alpha"] = a
        checked = True
        if abs(a - data.alpha) > CONSISTENCY_RTOL * data.alpha:
            ok = False
            warnings.append(
                f"alpha = delta/f = {inputs.distortion_bps:g} bp / {inputs.participation:g} = {a:.6g} (75) differs from market.alpha = {data.alpha:g}."
            )
    if inputs.elasticity is not None and inputs.turnover is not None and m is not None:
        c = inputs.elasticity * inputs.turnover / m
        out["implied_c_eff"] = c
        checked = True
        if abs(c - data.c_eff) > CONSISTENCY_RTOL * data.c_eff:
            ok = False
            warnings.append(
                f"c_eff = epsilon*tau/m = {inputs.elasticity:g} * {inputs.turnover:g} / {m:g} = {c:.6g} (76)-(77) differs from market.c_eff = {data.c_eff:g}."
            )
    if checked:
        out["consistent"] = ok
    return out, warnings


def parameter_block(data: RuleData, inputs: ElasticityInputs | None = None) -> tuple[dict, list[str]]:
    """(JSON-ready parameter block, warnings). Units are in the key names or the ``units`` entry."""
    cfg = data.config
    o, mk, cp = cfg["objective"], cfg["market"], cfg["cap"]
    block: dict = {}
    if o["kind"] == "cost":
        k, s, g = cfg["shock"], cfg["states"], cfg["grid"]
        block["coverage"] = {
            "objective": (
                f"cost: E[l(D - M)] + kappa_M M + {liquidation_term_text(data)} + lambda_P H(1 - N^P), (85)-(86)" if data.is_portfolio
                else "cost: E[l(D - M)] + kappa_M M + lambda_L C(c_eff (M - M_-)_+) + lambda_P H(1 - N), (31)-(32)"
            ),
            "loss": o["loss"],
            "carry_kappa_M": o["carry"],
            "prev_margin_M_minus": o["prev_margin"],
            "margin_period_days": k["horizon_days"],
        }
        shock = {"model": k["model"]}
        if k["model"] == "normal":
            shock["description"] = "Y ~ N(0, 1) (no fitted parameters)"
        elif k["model"] == "student_t":
            shock["df"] = k["df"]
            shock["description"] = "Y = sqrt((df-2)/df) T, T ~ Student-t(df) (unit variance)"
        else:
            shock["file"] = k["file"]
            shock["bandwidth"] = k.get("bandwidth_used", k.get("bandwidth"))
            shock["description"] = "Y from the empirical sample in shock.file, Gaussian-kernel smoothed"
        block["shock"] = shock
        block["states"] = {
            "density": s["density"],
            "median_vol_daily": s["median_vol"],
            "dispersion_log_vol": s["dispersion"],
            "file": s["file"],
            "grid_vol_daily_min": g["vol_min"],
            "grid_vol_daily_max": g["vol_max"],
            "grid_points": g["points"],
            "grid_spacing": g["spacing"],
        }
        block["liquidation"] = {"weight_lambda_L": o["liquidation_weight"], "cost_form": o["liquidation_cost"]}
        if data.is_portfolio:
            # (86) charges the price pressure ||AB|| (M - M_-), (32) the flow c_eff (M - M_-): lambda_L is in those units
            block["liquidation"]["term"] = liquidation_term_text(data)
            block["liquidation"]["scale_AB_norm"] = data.liquidation_scale
        block["participation"] = {
            "weight_lambda_P": o["participation_weight"],
            "beta": o["participation_beta"],
            "cost_form": o["participation_cost"],
        }
    else:
        block["coverage"] = {
            "objective": "target: Psi = h/2 (M - t)^2 (Appendix D.2)",
            "target_file": o["file"],
        }
        block["states"] = {"density": "from objective.file", "grid_points": data.n,
                           "grid_vol_daily_min": float(data.vol[0]), "grid_vol_daily_max": float(data.vol[-1])}
    if data.is_portfolio:
        block["market"] = {"inventory_penalty_kappa": mk["inventory_penalty"]}
        block["portfolio"] = portfolio_parameters(data)
    else:
        block["market"] = {"alpha": mk["alpha"], "c_eff": mk["c_eff"], "inventory_penalty_kappa": mk["inventory_penalty"]}
    K = data.slope_vol
    block["cap"] = {
        "kind": cp["kind"],
        "input": cp["input"],
        "window_days": cp["window"],
        "ewma_lambda": cp["lambda"],
        "hs_level": cp.get("level"),
        "slope_vol_daily": K if math.isfinite(K) else None,
        "slope_vol_annual": K / SQRT_252 if math.isfinite(K) else None,
        "formula": data.cap.get("formula"),
        "annual_units": "dm/dsigma_ann <= K / sqrt(252), (74)",
    }
    if data.is_portfolio:
        directions = data.portfolio.get("cap_directions", "all")
        block["cap"]["equation"] = (
            "(87)-(88), round trips along B" if directions == "liquidation" else "every two-period round trip (Lemma 10); (88) for comparison"
        ) + "; sigma is the daily vol of the margined portfolio's return"
        if data.config.get("portfolio", {}).get("risk"):
            # the risk functional, not [cap], defines the input (d and s_f come from it)
            block["cap"].update(input=f"[portfolio.risk]: {data.portfolio['source']}", window_days=None, ewma_lambda=None)
    warnings: list[str] = []
    if inputs is not None and (inputs.given or inputs.margin_level is not None):
        block["elasticity_inputs"], warnings = _implied(inputs, data)
    return block, warnings


def provenance_block(data: RuleData, effective_date: str | None, report_version: str, input_file: dict | None = None) -> dict:
    """Versions, hashes, solver record (without wall time), certificate and effective date."""
    cert = {k: float(v) for k, v in data.certificate.items()}
    cert["ok"] = data.certificate_ok
    solver = {k: v for k, v in data.solver.items() if k != "seconds"}
    out = {
        "effective_date": effective_date,
        "package_version": report_version,
        "solved_with_package_version": data.package_version,
        "config_sha256": data.config_sha256(),
        "config_hash_definition": "SHA-256 of the validated configuration as canonical JSON (sorted keys, no spaces)",
        "problem_sha256": data.problem_sha256,
        "input_data_files": {k: dict(v) for k, v in sorted(data.source_files.items())},
        "solver": solver,
        "certificate": cert,
    }
    if input_file is not None:
        out["input"] = dict(input_file)
    return out
