"""The paper's calibration tables, computed from the formulas (Nicolai 2026, Tables 1, 3, 4, 5, (45), (65), 6.4, D.6).

Nothing here is typed in from the paper: every cell is the formula of :mod:`.cap`, :mod:`.gain` or
:mod:`.portfolio` evaluated on the paper's grid (Table 2). :func:`paper_tables` returns a JSON-ready
dictionary (full precision, units in the keys or in ``"units"``); :func:`render_tables` prints aligned
plain-text tables rounded as the paper prints them.

Grids (Table 2): margin m_0 = 5% -> m_1 in {6%, 7%, 8%} (Delta M/M in {20%, 40%, 60%}), epsilon_XM in
{0.15, 0.225, 0.30}, tau in {0.5, 1, 2}, f in {0.5%, 1%, 2%, 5%}, delta_bps(f) = 200 sqrt(f).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Sequence

import numpy as np

from ._checks import to_py
from .cap import (
    BENCHMARK,
    DEFAULT_IMPACT_K_BPS,
    distortion_bps,
    max_relative_margin_increase,
    relative_cap_coefficient,
    vol_points_needed,
)

# .gain and .portfolio (jax.numpy) are imported by the tables that use them, so that text_table and the
# cap-only commands (calibrate cap, calibrate threshold) run without importing JAX.

__all__ = [
    "MARGIN_FROM",
    "MARGINS_TO",
    "ELASTICITIES",
    "TURNOVERS",
    "PARTICIPATIONS",
    "TABLE1_PARTICIPATIONS",
    "table1",
    "table3",
    "table4",
    "table5",
    "equation45",
    "equation65",
    "section64",
    "appendix_d6",
    "paper_tables",
    "render_tables",
    "text_table",
    "fixed",
]

#: Table 2: baseline margin ratio m_0 (decimal).
MARGIN_FROM = 0.05
#: Table 2: post-jump margin ratios m_1 (decimal); Delta M/M = m_1/m_0 - 1 in {20%, 40%, 60%}.
MARGINS_TO = (0.06, 0.07, 0.08)
#: Table 2: position-margin elasticities epsilon_XM.
ELASTICITIES = (0.15, 0.225, 0.30)
#: Table 2: turnover ratios tau = XP/ADV.
TURNOVERS = (0.5, 1.0, 2.0)
#: Table 2 (Tables 3-4 rows): participation f, decimal of ADV.
PARTICIPATIONS = (0.005, 0.01, 0.02, 0.05)
#: Table 1 rows: participation f, decimal of ADV.
TABLE1_PARTICIPATIONS = (0.005, 0.01, 0.02)
#: Table 5: margin jumps eta_M (decimal) in rows 3-6 and the +10-point vol rise of rows 1-2.
TABLE5_JUMPS = (0.2, 0.4, 0.6, 0.8)
TABLE5_VOL_RISE_POINTS = 10.0
#: (65) examples: participation f (decimal of ADV).
EQ65_PARTICIPATIONS = (0.01, 0.02, 0.05, 0.10)
#: D.6 cases: cross-impact correlation rho.
D6_RHOS = (0.0, 0.5, 1.0)


def _jumps() -> np.ndarray:
    return np.asarray(MARGINS_TO) / MARGIN_FROM - 1.0


def table1(impact_k: float = DEFAULT_IMPACT_K_BPS) -> dict:
    """Table 1: G (Panel A) and pi_bps / ROI% lower bounds (Panel B) at epsilon 0.225, tau = 1 (64)-(67).

    Rows are f in {0.5%, 1%, 2%}, columns m_0 = 5% -> m_1 in {6%, 7%, 8%}.
    """
    from .gain import liquidation_multiple, profit_bps_lower_bound, roi_pct_lower_bound

    f = np.asarray(TABLE1_PARTICIPATIONS)[:, None]
    m1 = np.asarray(MARGINS_TO)[None, :]
    jump = m1 / MARGIN_FROM - 1.0
    g = liquidation_multiple(BENCHMARK["elasticity"], jump, BENCHMARK["turnover"], f)
    d = distortion_bps(f, impact_k)
    pi = profit_bps_lower_bound(g, d)
    roi = roi_pct_lower_bound(pi, m1)
    return {
        "source": "Table 1 (Section 3.6), eqs (64), (65), (67)",
        "inputs": {"elasticity": BENCHMARK["elasticity"], "turnover": BENCHMARK["turnover"], "margin_from": MARGIN_FROM, "impact_k_bps": impact_k},
        "participation": list(TABLE1_PARTICIPATIONS),
        "margin_to": list(MARGINS_TO),
        "relative_margin_jump": to_py(_jumps()),
        "G": to_py(g),
        "profit_bps": to_py(pi),
        "roi_pct": to_py(roi),
        "units": "rows: participation f (decimal of ADV); columns: margin_to m_1 (decimal); G dimensionless; "
        "profit_bps in bp of trigger notional; roi_pct in percent of post-update margin m_1",
    }


def _grid():
    jump = _jumps()[:, None, None, None]
    f = np.asarray(PARTICIPATIONS)[None, :, None, None]
    tau = np.asarray(TURNOVERS)[None, None, :, None]
    eps = np.asarray(ELASTICITIES)[None, None, None, :]
    return jump, f, tau, eps


def table3() -> dict:
    """Table 3: G = epsilon (Delta M/M) tau / f (67) on the full grid; index order [jump][f][tau][epsilon]."""
    from .gain import liquidation_multiple

    jump, f, tau, eps = _grid()
    g = liquidation_multiple(eps, jump, tau, f)
    return {
        "source": "Table 3 (Appendix C.6), eq (67)",
        "relative_margin_jump": to_py(_jumps()),
        "participation": list(PARTICIPATIONS),
        "turnover": list(TURNOVERS),
        "elasticity": list(ELASTICITIES),
        "G": to_py(g),
        "units": "G[jump][participation][turnover][elasticity], dimensionless; jump and participation decimal",
    }


def table4(impact_k: float = DEFAULT_IMPACT_K_BPS) -> dict:
    """Table 4: ROI% lower bound (64) with delta_bps = k sqrt(f) (65) and denominator m_1; index [jump][f][tau][eps].

    Note: with k = 200 (the caption's mapping) the formula agrees with Table 1 Panel B on their shared cells, but
    not with the printed Table 4, whose 108 cells all follow from (64) with a single k of about 241.6 bp
    (e.g. Panel A, f = 1%, tau = 1, epsilon = 0.225: printed 10.1, formula 8.3 = Table 1's 8.3).
    ``table4(impact_k=241.6)`` reproduces the printed table; see tests/test_calibration_tables.py.
    """
    from .gain import liquidation_multiple, profit_bps_lower_bound, roi_pct_lower_bound

    jump, f, tau, eps = _grid()
    m1 = (np.asarray(MARGINS_TO))[:, None, None, None]
    g = liquidation_multiple(eps, jump, tau, f)
    roi = roi_pct_lower_bound(profit_bps_lower_bound(g, distortion_bps(f, impact_k)), m1)
    return {
        "source": "Table 4 (Appendix C.6), eqs (64), (65), (67)",
        "inputs": {"margin_from": MARGIN_FROM, "impact_k_bps": impact_k},
        "margin_to": list(MARGINS_TO),
        "relative_margin_jump": to_py(_jumps()),
        "participation": list(PARTICIPATIONS),
        "turnover": list(TURNOVERS),
        "elasticity": list(ELASTICITIES),
        "roi_pct": to_py(roi),
        "units": "roi_pct[jump][participation][turnover][elasticity], percent of post-update margin m_1",
    }


def table5(margin: float = MARGIN_FROM) -> dict:
    """Table 5: implementability thresholds under the benchmark (81), (83)-(84), for tau in {0.5, 1, 2}."""
    tau = np.asarray(TURNOVERS)
    rel = max_relative_margin_increase(TABLE5_VOL_RISE_POINTS, turnover=tau)
    pts = vol_points_needed(np.asarray(TABLE5_JUMPS)[:, None], turnover=tau[None, :])
    return {
        "source": "Table 5 (Appendix D.4), eqs (81), (83), (84)",
        "inputs": {k: BENCHMARK[k] for k in ("elasticity", "participation", "distortion_bps")},
        "turnover": list(TURNOVERS),
        "vol_rise_points": TABLE5_VOL_RISE_POINTS,
        "max_relative_margin_increase": to_py(rel),
        "margin": margin,
        "max_margin_increase_pp": to_py(100.0 * margin * rel),
        "margin_jump": list(TABLE5_JUMPS),
        "vol_points_needed": to_py(pts),
        "units": "max_relative_margin_increase decimal (0.28 = 28%); max_margin_increase_pp in percentage points of "
        "notional; vol_points_needed[jump][turnover] in annualised-vol points",
    }


def equation45() -> dict:
    """(45)/(82): Delta m/m <= (c/tau) Delta sigma_ann at the benchmark; c = 2f/(sqrt(252) epsilon delta) = 2.80."""
    c = relative_cap_coefficient(BENCHMARK["elasticity"], 1.0, BENCHMARK["participation"], BENCHMARK["distortion_bps"])
    return {
        "source": "eq (45) (Section 6.4) = eq (82) (Appendix D.4), from (81)",
        "inputs": {k: BENCHMARK[k] for k in ("elasticity", "participation", "distortion_bps")},
        "coefficient": to_py(c),
        "units": "Delta m/m <= coefficient/tau x Delta sigma_ann, Delta sigma_ann in decimal annualised vol",
    }


def equation65(impact_k: float = DEFAULT_IMPACT_K_BPS) -> dict:
    """(65) examples: delta_bps(f) = 200 sqrt(f) at f = 1%, 2%, 5%, 10% (20, 28, 45, 63 bp)."""
    return {
        "source": "eq (65) (Appendix C.2)",
        "participation": list(EQ65_PARTICIPATIONS),
        "distortion_bps": to_py(distortion_bps(np.asarray(EQ65_PARTICIPATIONS), impact_k)),
        "units": "participation decimal of ADV; distortion in bp of notional",
    }


def section64() -> dict:
    """Section 6.4 worked examples: +10 vol points from m = 5% at tau = 1, 2; vol points for a 5% -> 6% move."""
    tau = np.asarray([1.0, 2.0])
    rel = max_relative_margin_increase(TABLE5_VOL_RISE_POINTS, turnover=tau)
    return {
        "source": "Section 6.4 text below (45)",
        "turnover": to_py(tau),
        "vol_rise_points": TABLE5_VOL_RISE_POINTS,
        "margin_from": MARGIN_FROM,
        "max_relative_margin_increase": to_py(rel),
        "max_margin_to": to_py(MARGIN_FROM * (1.0 + rel)),
        "margin_jump": 0.2,
        "vol_points_needed": to_py(vol_points_needed(0.2, turnover=tau)),
        "units": "margins decimal; vol in annualised-vol points",
    }


def appendix_d6(margin: float = MARGIN_FROM) -> dict:
    """D.6 two-asset example: ratios (91)-(92), threshold rho = sqrt(2) - 1, calibration (93) at tau = 1."""
    from .portfolio import TWO_ASSET_RHO_THRESHOLD, two_asset_max_relative_increase, two_asset_pressure_ratio, two_asset_slope_ratio

    rho = np.asarray(D6_RHOS)
    rel = two_asset_max_relative_increase(rho, TABLE5_VOL_RISE_POINTS, turnover=1.0)
    return {
        "source": "Appendix D.6, eqs (89)-(93)",
        "rho_threshold": TWO_ASSET_RHO_THRESHOLD,
        "rho": list(D6_RHOS),
        "pressure_ratio": to_py(two_asset_pressure_ratio(rho)),
        "slope_ratio": to_py(two_asset_slope_ratio(rho)),
        "turnover": 1.0,
        "vol_rise_points": TABLE5_VOL_RISE_POINTS,
        "max_relative_margin_increase": to_py(rel),
        "margin": margin,
        "max_margin_increase_pp": to_py(100.0 * margin * rel),
        "units": "ratios dimensionless; max_relative_margin_increase decimal; max_margin_increase_pp in percentage points",
    }


def paper_tables(impact_k: float = DEFAULT_IMPACT_K_BPS) -> dict:
    """All reproduced tables as one JSON-ready dictionary (full precision)."""
    return {
        "table1": table1(impact_k),
        "table3": table3(),
        "table4": table4(impact_k),
        "table5": table5(),
        "equation45": equation45(),
        "equation65": equation65(impact_k),
        "section64": section64(),
        "appendix_d6": appendix_d6(),
    }


# ----------------------------------------------------------------------------------------------
# Plain-text rendering
# ----------------------------------------------------------------------------------------------


def text_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None, left: Sequence[int] = (0,)) -> str:
    """Aligned plain-text table: the columns in ``left`` (default the first) left-aligned, the others right-aligned."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[j]) for r in cells) for j in range(len(headers))]

    def line(r):
        return "  ".join(r[j].ljust(widths[j]) if j in left else r[j].rjust(widths[j]) for j in range(len(r))).rstrip()

    out = [] if title is None else [title]
    out.append(line(cells[0]))
    out.append("  ".join("-" * w for w in widths))
    out.extend(line(r) for r in cells[1:])
    return "\n".join(out)


def fixed(x: float, decimals: int) -> str:
    """``x`` with ``decimals`` decimals, rounding halves away from zero as printed tables do (230/8 -> 28.8).

    The value is first rounded to 9 decimals so that float noise (28.749999999999996) does not flip a half.
    """
    d = Decimal(repr(round(float(x), 9))).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
    s = format(d, "f")
    return "0" + s[2:] if s.startswith("-0") and not any(c in s[2:] for c in "123456789") else s


def _g(x: float) -> str:
    """G as printed: up to three decimals, trailing zeros dropped, at least one decimal (2.25, 1.125, 9.0)."""
    s = fixed(x, 3).rstrip("0")
    return s + "0" if s.endswith(".") else s


def _pct(x: float) -> str:
    return f"{100 * x:g}%"


def render_tables(tables: dict | None = None) -> str:
    """Plain-text rendering of :func:`paper_tables` with the paper's rounding."""
    t = paper_tables() if tables is None else tables
    parts: list[str] = []

    t1 = t["table1"]
    cols = [f"m0 {_pct(MARGIN_FROM)} -> m1 {_pct(m)}" for m in t1["margin_to"]]
    parts.append(
        text_table(
            ["f (of ADV)"] + cols,
            [[_pct(f)] + [_g(v) for v in row] for f, row in zip(t1["participation"], t1["G"])],
            title="Table 1, Panel A: forced-liquidation multiple G = L/q (67); epsilon 0.225, tau 1, delta_bps = 200 sqrt(f)",
        )
    )
    parts.append(
        text_table(
            ["f (of ADV)"] + [c + "  pi_bps/ROI%" for c in cols],
            [
                [_pct(f)] + [f"{fixed(p, 1)}/{fixed(r, 1)}" for p, r in zip(prow, rrow)]
                for f, prow, rrow in zip(t1["participation"], t1["profit_bps"], t1["roi_pct"])
            ],
            title="Table 1, Panel B: pi_bps >= (G - 2) delta_bps (bp of trigger notional), ROI% >= pi_bps/(100 m1) (64)",
        )
    )

    t3 = t["table3"]
    t4 = t["table4"]
    for key, label, fmt in (
        ("G", "Table 3: G = epsilon (Delta M/M) tau / f (67); cells epsilon = 0.15/0.225/0.30", _g),
        ("roi_pct", "Table 4: ROI% lower bound (64), delta_bps = 200 sqrt(f), denominator m1; cells epsilon = 0.15/0.225/0.30", lambda v: fixed(v, 1)),
    ):
        src = t3 if key == "G" else t4
        parts.append(label)
        for p, (jump, m1) in enumerate(zip(src["relative_margin_jump"], MARGINS_TO)):
            title = f"  Panel {'ABC'[p]}: Delta M/M = {100 * jump:.0f}%" + ("" if key == "G" else f" (m0 5% -> m1 {_pct(m1)})")
            rows = [
                [_pct(f)] + ["/".join(fmt(v) for v in src[key][p][i][j]) for j in range(len(TURNOVERS))]
                for i, f in enumerate(src["participation"])
            ]
            parts.append(text_table(["f (of ADV)"] + [f"tau = {x:g}" for x in TURNOVERS], rows, title=title))

    t5 = t["table5"]
    rows = [
        ["Max Delta m/m for +10 annualised-vol points"] + [fixed(100 * v, 0) + "%" for v in t5["max_relative_margin_increase"]],
        ["Max Delta m for +10 annualised-vol points when m = 5%"] + [fixed(v, 1) + " pp" for v in t5["max_margin_increase_pp"]],
    ]
    rows += [
        [f"Annualised-vol points needed for a {100 * j:.0f}% margin jump"] + [fixed(v, 1) for v in row]
        for j, row in zip(t5["margin_jump"], t5["vol_points_needed"])
    ]
    parts.append(
        text_table(
            [""] + [f"tau = {x:g}" for x in t5["turnover"]],
            rows,
            title="Table 5: implementability thresholds (81), (83)-(84); benchmark epsilon 0.225, f 1%, delta 20 bp",
        )
    )

    e45 = t["equation45"]
    parts.append(
        f"Equation (45): Delta m/m <= ({e45['coefficient']:.2f}/tau) Delta sigma_ann  "
        f"(coefficient 2 f / (sqrt(252) epsilon delta) = {e45['coefficient']:.6f}; Delta sigma_ann decimal)"
    )

    e65 = t["equation65"]
    parts.append(
        text_table(
            ["f (of ADV)", "delta_bps (bp)"],
            [[_pct(f), fixed(d, 0)] for f, d in zip(e65["participation"], e65["distortion_bps"])],
            title="Equation (65): delta_bps(f) = 200 sqrt(f)",
        )
    )

    s64 = t["section64"]
    parts.append(
        text_table(
            ["tau", "max Delta m/m (+10 pts)", "5% can rise to", "vol points for 5% -> 6%"],
            [
                [f"{tau:g}", fixed(100 * r, 0) + "%", fixed(100 * m, 1) + "%", fixed(p, 0)]
                for tau, r, m, p in zip(s64["turnover"], s64["max_relative_margin_increase"], s64["max_margin_to"], s64["vol_points_needed"])
            ],
            title="Section 6.4 worked examples",
        )
    )

    d6 = t["appendix_d6"]
    parts.append(
        text_table(
            ["rho", "||AB||/xi_SA = psi/xi_SA", "slope ratio sqrt(2)/(1+rho)", "max Delta m/m (+10 pts)", "max Delta m at m = 5%"],
            [
                [f"{r:g}", fixed(p, 4), fixed(s, 4), fixed(100 * m, 1) + "%", fixed(pp, 2) + " pp"]
                for r, p, s, m, pp in zip(d6["rho"], d6["pressure_ratio"], d6["slope_ratio"], d6["max_relative_margin_increase"], d6["max_margin_increase_pp"])
            ],
            title=f"Appendix D.6: two-asset example (89)-(93), tau = 1; threshold rho = sqrt(2) - 1 = {d6['rho_threshold']:.4f}",
        )
    )
    return "\n\n".join(parts) + "\n"
