"""The audit of a margin rule against the capped optimum (Nicolai 2026): :func:`build_audit` runs it, :class:`Audit` holds
what it found (``summary()`` text, ``to_dict()``, ``to_frame()``, ``comparison_frame()``).

    from margin_design.audit import AuditOptions, build_audit, load_rule
    from margin_design.reports.audit import write_audit

    audit = build_audit(load_rule("rule.csv"), "examples/benchmark.toml", AuditOptions(data="sp500"))
    print(audit.summary())
    write_audit(audit, "out/audit")   # the files and figures: margin_design.reports.audit

The market config is a design config (``margin-design solve`` format): its [market] (alpha, c_eff, kappa),
[cap] (how the rule's input r is built, hence the cap's input factor) and grid of states are used, and the
capped optimum g* is solved on that grid (``solvers.solve``) and read by linear interpolation in sigma between
grid points (flat beyond the grid ends). The first-best is the design's M_fb (34): sqrt(h r) Q when it scales
with sqrt(r) as in (37) (then extrapolated by that formula), otherwise its grid values read like g*.

What the audit reports (each part computed by a module of :mod:`margin_design.audit`):

* local analysis in every grid state: the rule's one-sided slope dM/dr against the cap (16) with c_Gamma from
  the rule's input (a given last return or the envelope), G (14), the bounds (15) and (58) with q_min, profit per
  notional (bp) and return on margin (%) at the trigger q (Table 1 units);
* jumps (threshold, Delta M, threshold-crossing gain q alpha c_eff Delta M, Section 6.6), kinks and flat
  stretches; with ``trim`` the trimming jumps of Proposition 2 and winsorising's flat stretches;
* other risk inputs (Section 4.2): directional sensitivities by JAX fed to the same gain and cap;
* strategic constrained traders (Appendix B): the equilibrium c_X^eff per state, and the local analysis with it;
* expected cost J (33) of the rule, of g* and of M_fb on the design's states: what the capped optimum costs instead;
* simulation (:mod:`~margin_design.audit.simulate`), the checks (a)-(d):
  (a) the Monte Carlo mean profit of the round trip (-q, +q) is at least Lemma 5's bound (within the band) where
  the gain condition holds; (b) the first-best is profitably manipulable (lower band > 0) in binding states;
  (c) the capped optimum is not (no q with lower band > 0) -- both in envelope states (the whole window's input in
  the last return, normal fundamentals with the state's daily vol, ``paths`` paths, band = mean +- 1.96 s.e.);
  (d) an exhaustive search over open-loop round trips with T = 1..``max_horizon`` (units 0.25%, 0.5%, 1% of ADV
  times -2..2) finds none with positive exact expected profit against g* in a ``spread`` state (half of the
  window's input in the last return, |R_t| = 0.71 sqrt(r); Rademacher fundamentals enumerated exactly), and
  reports the best one against M_fb; the same search in the envelope state is reported too;
* backtest on daily prices (``data``): M_fb, g*, the rule and the rule with each EMIR tool through history
  (:mod:`~margin_design.audit.backtest`).

Portfolio markets (a ``[portfolio]`` section, Section 5; computation in
:mod:`margin_design.audit.portfolio`):

* the local analysis above is that of the equivalent single contract along Theorem 3's direction b = B/||B||_1
  (alpha = b'Ab, c_eff = psi s_f/(sqrt(w) b'Ab), kappa ||b||^2): the same G = c_g c_r psi, cap (88) and bounds;
  jumps harvest b'AB |Delta M| per unit trigger; the other risk inputs and ``trim`` read the margined portfolio's
  return series;
* the portfolio block: A, B, d, psi, ||AB||, H_t of (29) (B normalised in the trade direction only) and Theorem 3's
  condition H_t > 0, the cap (88) against the slope dM/dsigma and the two-period cap over every trade direction
  K_all <= K, state by state, for the rule, M_fb and g*;
* the simulation is the K-contract market of Section 5.3: Theorem 3's trip -q b and the trigger-harvest trip a*
  (5.6) in the same envelope states, Monte Carlo means with bands against Lemma 10's identity, and the profit table;
* refused with one sentence (exit 2): ``accounts`` (Appendix B is one contract's), ``data="sp500"`` (one index; a
  CSV of the margined portfolio's value is backtested as the rule's scalar input), ``max_horizon`` (the
  single-contract search).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from margin_design.calibration._checks import to_py
from margin_design.calibration.cap import TRADING_DAYS_PER_YEAR
from margin_design.calibration.risk_inputs import InputSpec
from margin_design.calibration.tables import text_table
from margin_design.display import Displayable, yes_no
from margin_design.errors import InputError
from margin_design.jsonable import jsonable

from .backtest import backtest_metrics, emir_rules, prepare_backtest, run_rule
from .local import AuditMarket, jump_gains, local_analysis, risk_input_table, trimming_jumps
from .portfolio import (
    AGREE_Z,
    STRATEGIES,
    PortfolioMarket,
    portfolio_jump_gains,
    portfolio_local_analysis,
    portfolio_risk_input_rows,
    simulate_portfolio,
)
from .rules import Rule, TableRule, parse_formula
from .simulate import BAND_Z, PROFIT_TOL, Fundamentals, Population, SimState, round_trip_curve, search_round_trips
from .strategic import equilibrium_c_eff

__all__ = [
    "AuditOptions",
    "Audit",
    "build_audit",
    "first_best_rule",
    "capped_rule",
    "STATE_UNITS",
    "SIM_VOLS",
    "SIM_TRIGGERS",
    "SEARCH_SHARE",
    "PROFIT_TOL",
]

SQRT_252 = math.sqrt(TRADING_DAYS_PER_YEAR)
#: Daily vols of the simulated envelope states (clipped to the grid).
SIM_VOLS = (0.005, 0.01, 0.02, 0.03)
#: Trigger sizes q of the two-period curves (ADV units).
SIM_TRIGGERS = (0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02)
#: Longest round trip T of the single-contract multi-period search when --max-horizon is not given.
DEFAULT_MAX_HORIZON = 4
#: Share of the window's input in the last return in the multi-period search state.
SEARCH_SHARE = 0.5
#: Daily vol of the search state (clipped to the grid).
SEARCH_VOL = 0.01
SEARCH_UNITS = (0.0025, 0.005, 0.01)
SEARCH_LATTICE = (-2, -1, 0, 1, 2)
#: Largest |daily return| accepted by --last-return and --trim (decimal): 1 = 100% in a day.
MAX_DAILY_RETURN = 1.0
#: Most Monte Carlo paths per state (--paths): 10^6 paths x states x periods already take gigabytes.
MAX_PATHS = 10**6
#: Longest window in days (--window, --sim-window, --horizon-days): a trading year.
MAX_WINDOW_DAYS = 250
#: Accounts in the simulated constrained sector.
POPULATION_SIZE = 400
#: Grid-weight quantiles of the states shown for the other risk inputs.
RISK_INPUT_QUANTILES = (0.1, 0.5, 0.9)
#: Relative spread below which M_fb / sqrt(h r) is a constant (the closed form (37) holds).
FB_SCALING_RTOL = 1e-8


@dataclass(frozen=True)
class AuditOptions:
    """Settings of an audit (units in brackets).

    ``last_return`` |R_t| [decimal daily return] or None for the envelope; ``trigger`` q [ADV units];
    ``execution_cost`` tau [decimal of notional per unit traded]; ``funding_spread`` rho [decimal per period];
    ``trim`` cutoff c [decimal daily return]; ``accounts`` CSV (equity, benefit) with ``chi``, ``eta`` for
    Appendix B; ``simulate``, ``paths``, ``seed``, ``sim_window`` m (returns in the simulated window of the
    input (4)), ``max_horizon`` T (None: DEFAULT_MAX_HORIZON; single contract only); ``updates`` T of the T-update
    stress test (:mod:`.stress`; None: not run; single contract only); ``data`` "sp500" or a price CSV with ``start``/``end`` (ISO dates),
    ``backtest_window`` (days of the realised variance; default the config's window or 20), ``position``,
    ``coverage`` (default 1 - carry, else 0.99), ``horizon_days`` (default the config's, else 2); ``method``;
    ``liquidation`` the constrained sector of a [portfolio] simulation: "population" (default; one population of
    accounts per contract, the single-contract simulator's model) or "linear" (Delta X = -B Delta M, (26)).
    """

    last_return: float | None = None
    trigger: float = 0.01
    execution_cost: float = 0.0
    funding_spread: float = 0.0
    trim: float | None = None
    accounts: str | None = None
    chi: float | None = None
    eta: float = 0.0
    simulate: bool = True
    paths: int = 20000
    seed: int = 0
    sim_window: int = 5
    max_horizon: int | None = None
    updates: int | None = None
    data: str | None = None
    start: str | None = None
    end: str | None = None
    backtest_window: int | None = None
    position: str = "long"
    coverage: float | None = None
    horizon_days: int | None = None
    method: str = "exact"
    liquidation: str | None = None

    def __post_init__(self):
        from margin_design.calibration._checks import check_range

        check_range("--trigger", self.trigger, low=0.0, high=1.0, what="a trigger size in ADV units in (0, 1]")
        check_range("--last-return", self.last_return, low=0.0, high=MAX_DAILY_RETURN,
                    what=f"a positive daily return |R_t| (decimal, 0.02 = 2%) up to {MAX_DAILY_RETURN:g}")
        check_range("--trim", self.trim, low=0.0, high=MAX_DAILY_RETURN,
                    what=f"a positive cutoff |R| (decimal daily return, 0.05 = 5%) up to {MAX_DAILY_RETURN:g}")
        check_range("--execution-cost", self.execution_cost, low=0.0, low_inclusive=True, high=1.0,
                    what="a cost in [0, 1] (decimal of notional, 0.0005 = 5 bp)")
        check_range("--funding-spread", self.funding_spread, low=0.0, low_inclusive=True, high=1.0,
                    what="a spread in [0, 1] (decimal per period, 0.001 = 10 bp)")
        check_range("--chi", self.chi, low=0.0, what="positive (quadratic exposure penalty of (59))")
        check_range("--eta", self.eta, low=0.0, low_inclusive=True, what="non-negative (aversion to margin jumps of (59))")
        if int(self.paths) != self.paths or self.paths < 100:
            raise InputError(f"--paths {self.paths!r} must be an integer >= 100.")
        if self.paths > MAX_PATHS:
            raise InputError(f"--paths {self.paths!r} is above the maximum of {MAX_PATHS:,} Monte Carlo paths per state.")
        if int(self.seed) != self.seed or self.seed < 0:
            raise InputError(f"--seed {self.seed!r} must be a non-negative integer.")
        if int(self.sim_window) != self.sim_window or self.sim_window < 2:
            raise InputError(f"--sim-window {self.sim_window!r} must be an integer >= 2 (returns in the window).")
        if self.sim_window > MAX_WINDOW_DAYS:
            raise InputError(f"--sim-window {self.sim_window!r} is above the maximum of {MAX_WINDOW_DAYS} returns.")
        if self.backtest_window is not None and (int(self.backtest_window) != self.backtest_window or not 1 <= self.backtest_window <= MAX_WINDOW_DAYS):
            raise InputError(f"--window {self.backtest_window!r} must be an integer number of days from 1 to {MAX_WINDOW_DAYS}.")
        if self.max_horizon is not None and (int(self.max_horizon) != self.max_horizon or not 1 <= self.max_horizon <= 6):
            raise InputError(f"--max-horizon {self.max_horizon!r} must be an integer from 1 to 6.")
        if self.updates is not None and (int(self.updates) != self.updates or not 1 <= self.updates <= 6):
            raise InputError(f"--updates {self.updates!r} must be an integer from 1 to 6 (margin updates of the stress test).")
        if self.position not in ("long", "short", "both"):
            raise InputError(f"--position {self.position!r} is not one of long, short, both.")
        if self.accounts is not None and self.chi is None:
            raise InputError("--accounts needs --chi, the quadratic exposure penalty chi > 0 of (59).")
        if self.coverage is not None and not 0 < self.coverage < 1:
            raise InputError(f"--coverage {self.coverage!r} must be in (0, 1) (0.99 = 99%).")
        if self.liquidation is not None and self.liquidation not in ("population", "linear"):
            raise InputError(f"--liquidation {self.liquidation!r} is not one of population, linear.")
        if self.horizon_days is not None and (int(self.horizon_days) != self.horizon_days or not 1 <= self.horizon_days <= MAX_WINDOW_DAYS):
            raise InputError(f"--horizon-days {self.horizon_days!r} must be a positive integer number of days up to {MAX_WINDOW_DAYS}.")


@dataclass(frozen=True, eq=False, repr=False)
class Audit(Displayable):
    """Everything the audit of a margin rule found (returned by :func:`build_audit`).

    :meth:`summary` renders it as text, :meth:`to_frame` gives the per-state table and :meth:`comparison_frame`
    the rule against the first-best and the capped optimum as pandas DataFrames, :func:`audit_files` exports it;
    the ``repr`` (and the HTML table in Jupyter) lists the headline numbers.
    """

    rule: Rule
    first_best: Rule
    capped: Rule
    problem: object = field(repr=False)
    schedule: object = field(repr=False)
    market: AuditMarket = None
    input_spec: InputSpec = None
    local: object = field(repr=False, default=None)
    local_first_best: object = field(repr=False, default=None)
    local_capped: object = field(repr=False, default=None)
    breakpoints: tuple = ()
    jumps: tuple = ()
    flats: tuple = ()
    trim: dict | None = field(repr=False, default=None)
    risk_inputs: list = field(repr=False, default_factory=list)
    strategic: tuple | None = field(repr=False, default=None)
    local_strategic: object = field(repr=False, default=None)
    costs: dict = field(repr=False, default_factory=dict)
    simulation: dict | None = field(repr=False, default=None)
    backtest: dict | None = field(repr=False, default=None)
    options: AuditOptions = AuditOptions()
    market_file: str = ""
    #: With a [portfolio] market: {"market": PortfolioMarket, "local": {"rule"|"first_best"|"capped": PortfolioLocal},
    #: "simulation": PortfolioSimulation | None}; ``market`` is then the equivalent single contract along Theorem 3's b.
    portfolio: dict | None = field(repr=False, default=None)
    #: With ``updates`` T: {"rule"|"first_best"|"capped": StressReport} of the T-update stress test (:mod:`.stress`).
    stress: dict | None = field(repr=False, default=None)

    # ------------------------------------------------------------ tables
    def state_rows(self) -> list[dict]:
        """The per-state table: the rule's local analysis plus M_fb, g*, and the strategic / trimming columns."""
        rows = self.local.rows()
        r = self.problem.r
        fb = self.first_best.margin(r)
        cp = self.capped.margin(r)
        cps = self.capped.slope_vol(self.problem.vol)
        prow = self.portfolio["local"]["rule"].rows() if self.portfolio is not None else None
        for i, row in enumerate(rows):
            row["first_best_margin_ratio"] = float(fb[i])
            row["capped_margin_ratio"] = float(cp[i])
            row["capped_slope_dm_dvol"] = float(cps[i])
            row["weight"] = float(self.problem.weights[i])
            if self.strategic is not None:
                s, ls = self.strategic[i], self.local_strategic
                row["c_eff_strategic"] = s.c_eff
                row["c_eff_naive"] = s.c_eff_naive
                row["strategic_outcome"] = s.outcome
                row["manipulation_probability"] = s.probability
                row["G_strategic"] = float(ls.G[i])
                row["exceeds_cap_strategic"] = bool(ls.exceeds_cap[i])
            if self.portfolio is not None:
                row.update(prow[i])
                row["first_best_H_t_price_per_adv2"] = float(self.portfolio["local"]["first_best"].H[i])
                row["capped_H_t_price_per_adv2"] = float(self.portfolio["local"]["capped"].H[i])
            if self.trim is not None:
                j = self.trim["jump"][i]
                row["trim_jump_margin_ratio"] = None if not np.isfinite(j) else float(j)
                g = self.trim["gain_per_unit_trigger"][i]
                row["trim_gain_per_unit_trigger"] = None if not np.isfinite(g) else float(g)
                row["winsor_flat"] = bool(self.trim["winsor_flat"][i])
        return rows

    def comparison_rows(self) -> list[dict]:
        """Rule vs first-best vs capped optimum: manipulability, cost, and (with data) the backtest."""
        out = []
        for name, rule, la in (("rule: " + self.rule.name, self.rule, self.local), ("first-best M_fb", self.first_best, self.local_first_best),
                               ("capped optimum g*", self.capped, self.local_capped)):
            s = la.summary()
            key = {"rule": "rule", "first-best M_fb": "first_best", "capped optimum g*": "capped"}[name.split(":")[0]]
            row = {
                "rule": name,
                "share_states_over_cap": s["share_over_cap"],
                "max_slope_over_cap": s["max_slope_over_cap"],
                "max_G": s["max_G"],
                "max_profit_bps": s["max_profit_bps"],
                "expected_cost": self.costs[key],
            }
            if self.backtest is not None:
                m = self.backtest["metrics"][key]
                row.update({"breach_rate": m.breach_rate, "kupiec_p": m.kupiec_p, "mean_margin": m.mean_margin,
                            "max_1d_increase": m.increases[1]["relative"], "share_days_over_cap": m.share_over_cap})
            out.append(row)
        return out

    # ------------------------------------------------------------ text
    def summary(self) -> str:
        p, m = self.problem, self.market
        la = self.local
        s = la.summary()
        lines = [
            "Margin rule audit (Nicolai 2026: Lemmas 1-5, Theorem 1, (16)-(18), (58), Sections 4.2, 6.6, App. B, E.4)",
            f"  rule: {self.rule.describe()}",
            f"  market ({self.market_file}): alpha = {m.alpha:g} per ADV, c_eff = {m.c_eff:g} ADV per unit margin, kappa = {m.inventory_penalty:g}; "
            f"execution cost = {m.execution_cost:g}, funding spread rho = {m.funding_spread:g}",
            f"  risk input: {self.input_spec.describe()}; cap on dM/dsigma K = {p.cap.slope_vol:.6g} "
            f"(K/sqrt(252) = {p.cap.slope_vol / SQRT_252:.4f} per annualised-vol point)",
            f"  states: {p.n}, daily vol {p.vol[0]:.4%} .. {p.vol[-1]:.4%}; last return: {s['last_return']}; "
            f"trigger q = {m.trigger:g} ADV ({1e4 * m.alpha * m.trigger:.3g} bp distortion)",
            "",
            "Local analysis (slope g'(r) against the cap (16); G = alpha c_X c_g c_Gamma (14); (15), (58), Table 1 units)",
            f"  states over the cap: {s['states_over_cap']} of {s['states']} ({s['share_over_cap']:.1%})"
            + (f", daily vol {_ranges_text(s['vol_over_cap'])}" if s["states_over_cap"] else ""),
            f"  largest slope / cap {s['max_slope_over_cap']:.4g} at daily vol {s['vol_at_max_slope_over_cap']:.4%}; largest G {s['max_G']:.4g}",
            f"  at q = {m.trigger:g} ADV: profit bound up to {s['max_profit_bps']:.4g} bp of notional, {s['max_roi_pct']:.4g}% on margin "
            f"(daily vol {s['vol_at_max_profit']:.4%})",
        ]
        if la.B.max() > 0:
            qm = la.q_min[la.exceeds_cap]
            lines.append(f"  with costs (58): smallest q_min over the manipulable states {float(qm.min()) if qm.size else float('inf'):.4g} ADV")
        if self.portfolio is not None:
            pm = self.portfolio["market"]
            lines[0] = "Margin rule audit, portfolio margining (Nicolai 2026: Section 5, Lemma 10, Theorems 3-4, (87)-(88), D.5-D.6; Lemmas 1-5, (58), 6.6)"
            lines[2] = (f"  portfolio ({self.market_file}): {pm.k} contracts ({', '.join(pm.assets)}), kappa = {pm.inventory_penalty:g}, "
                        f"execution cost = {pm.execution_cost:g}, funding spread rho = {pm.funding_spread:g}; r is the variance of the margined portfolio's daily return")
            lines[4] = (f"  states: {p.n}, daily vol {p.vol[0]:.4%} .. {p.vol[-1]:.4%}; last return: {s['last_return']} (of the margined portfolio); "
                        f"trade size ||a_t||_1 = q = {pm.trigger:g} ADV")
            lines[6] = ("Local analysis along Theorem 3's direction b = B/||B||_1 (the equivalent single contract alpha = b'Ab, "
                        "c_eff = psi s_f/(sqrt(w) b'Ab): G = c_g c_r psi, cap (88), (15) = q^2 (H_t - kappa ||b||^2), (58))")
            lines += [""] + _portfolio_lines(self)
        lines += ["", f"Jumps and kinks (Section 6.6): {len(self.jumps)} jump(s), "
                  f"{sum(1 for b in self.breakpoints if b.is_kink)} kink(s), {len(self.flats)} flat stretch(es)"]
        for j in self.jumps[:8]:
            lines.append(
                f"  jump {j.jump:+.4%} at daily vol {j.vol_daily:.4%} ({j.source}): gain {j.gain_bps:.3g} bp per unit trigger, "
                f"net {j.net_bps:+.3g} bp at q = {m.trigger:g}; best q* = {j.best_trigger_adv:.3g} ADV"
            )
        if len(self.jumps) > 8:
            lines.append(f"  ... {len(self.jumps) - 8} more in jumps.csv")
        for a, b in self.flats[:4]:
            lines.append(f"  flat (pooling) from daily vol {a:.4%} to {b:.4%}")
        if self.trim is not None:
            j = self.trim["jump"]
            ok = np.isfinite(j)
            lines.append(
                f"  trimming at |R| > {self.trim['cutoff']:g} (Proposition 2): margin jumps up to {float(np.max(j[ok])) if ok.any() else 0.0:.4%} "
                f"at |R_t| = c; winsorising is flat in P_t in {int(self.trim['winsor_flat'].sum())} of {p.n} states"
            )
        lines += ["", "Other risk inputs (Section 4.2; JAX one-sided sensitivity to the last price, typical window, median state):"]
        med = _median_state_rows(self.risk_inputs)
        lines.append(text_table(
            ["input", "dM/dP", "G", "cap K_0", "over cap", "jump dM"],
            [[r["input"], f"{r['dm_dp']:.4g}", f"{r['G']:.3g}", "none" if r["cap_dm_dp"] is None else f"{r['cap_dm_dp']:.4g}", "yes" if r["exceeds_cap"] else "no",
              f"{r['jump_margin']:.3g}"] for r in med],
        ))
        if self.strategic is not None:
            ls = self.local_strategic
            outcomes = {k: sum(1 for st in self.strategic if st.outcome == k) for k in ("no manipulation", "manipulation", "mixed")}
            ce = np.asarray([st.c_eff for st in self.strategic])
            lines += ["", "Strategic constrained traders (Appendix B, (61)-(63)):",
                      f"  equilibrium c_X^eff {ce.min():.4g} .. {ce.max():.4g} ADV per unit margin; outcomes {outcomes}",
                      f"  with c_X^eff the rule exceeds the cap in {int(ls.exceeds_cap.sum())} of {p.n} states (largest G {float(ls.G.max()):.4g})"]
        c = self.costs
        lines += ["", "Expected cost J (33) on the design's states (per unit notional):",
                  f"  rule {c['rule']:.8g}; capped optimum g* {c['capped']:.8g}; first-best M_fb {c['first_best']:.8g}",
                  f"  rule - g* = {c['rule'] - c['capped']:+.4g}; price of manipulation-proofness J(g*) - J(M_fb) = {c['capped'] - c['first_best']:+.4g}"]
        if self.simulation is not None:
            title = "Simulation of the Section 5.3 market (K contracts, cross-impact (23), forced sales (26)):" if self.portfolio is not None \
                else "Simulation of the Section 2 market:"
            lines += ["", title] + self.simulation["text"]
            if self.portfolio is not None and self.portfolio["simulation"] is not None:
                lines += ["", f"Profit table (two-period round trips at q = {self.portfolio['market'].trigger:g} ADV; price units x ADV; "
                          "band = 1.96 s.e.; linear B = Lemma 10's -l(a) Delta M - 2 a'Aa):"]
                lines.append(text_table(PROFIT_TABLE_HEADER, _profit_table_cells(self)))
        if self.stress is not None:
            lines += ["", f"T-update stress test (T = {self.options.updates}; open-loop trips (9) by JAX gradients, Appendix A.4):"]
            for key in ("capped", "first_best", "rule"):
                lines += self.stress[key].text()
        if self.backtest is not None:
            b = self.backtest
            lines += ["", f"Backtest: {b['data'].describe()}; coverage target {b['coverage']:.2%}"]
            rows = []
            for key, met in b["metrics"].items():
                rows.append([met.name, f"{met.breaches}/{met.days}", f"{met.breach_rate:.2%}", f"{met.kupiec_p:.3g}", f"{met.mean_margin:.2%}",
                             f"{met.peak_to_trough:.3g}", *[_pct(met.increases[k]["relative"]) for k in (1, 5, 30)],
                             "n/a" if met.share_over_cap is None else f"{met.share_over_cap:.1%}"])
            lines.append(text_table(["rule", "breaches", "rate", "Kupiec p", "mean M", "peak/trough", "max 1d", "max 5d", "max 30d", "days over cap"], rows))
            if b["above_grid"] > 0:
                lines.append(f"  g* is flat beyond the grid: {b['above_grid']:.1%} of the days have daily vol above {p.vol[-1]:.4%}")
        lines += ["", "Summary: rule vs first-best vs capped optimum"]
        comp = self.comparison_rows()
        hdr = ["", "states over cap", "max G", "max profit bp", "cost J"] + (["breach rate", "mean M", "days over cap"] if self.backtest else [])
        body = []
        for row in comp:
            bps = row["max_profit_bps"]
            cells = [row["rule"], f"{row['share_states_over_cap']:.1%}", f"{row['max_G']:.3g}", f"{bps if abs(bps) > 1e-6 else 0.0:.3g}", f"{row['expected_cost']:.6g}"]
            if self.backtest:
                cells += [f"{row['breach_rate']:.2%}", f"{row['mean_margin']:.2%}", f"{row['share_days_over_cap']:.1%}"]
            body.append(cells)
        lines.append(text_table(hdr, body))
        return "\n".join(lines)

    # ------------------------------------------------------------ JSON
    def to_dict(self) -> dict:
        p, m = self.problem, self.market
        out = {
            "units": {
                "vol": "daily volatility, decimal (annualised = sqrt(252) * vol)", "r": "variance of daily returns",
                "margin": "margin ratio per unit notional", "slope_dm_dr": "margin ratio per unit daily variance",
                "slope_dm_dvol": "margin ratio per unit daily vol", "q, trigger, L": "ADV units",
                "profit": "price units x ADV (per unit notional, price 1)", "bps": "basis points of the trigger notional",
            },
            "rule": {"name": self.rule.name, "description": self.rule.describe(), "overlays": self.rule.overlays.to_dict(),
                     "extrapolation": getattr(self.rule.base, "extrapolation_text", None)},   # a table's reading beyond its rows
            "market": {"file": self.market_file, "alpha": m.alpha, "c_eff": m.c_eff, "inventory_penalty": m.inventory_penalty,
                       "execution_cost": m.execution_cost, "funding_spread": m.funding_spread, "trigger_adv": m.trigger,
                       "cap_slope_vol": p.cap.slope_vol, "cap_formula": p.cap.formula(), "input": self.input_spec.describe()},
            "local": self.local.summary(),
            "first_best_local": self.local_first_best.summary(),
            "capped_local": self.local_capped.summary(),
            "jumps": [j.to_dict() for j in self.jumps],
            "kinks": [{"vol_daily": b.vol, "slope_dm_dr_below": b.slope_below, "slope_dm_dr_above": b.slope_above, "source": b.source}
                      for b in self.breakpoints if b.is_kink],
            "flat_stretches_vol_daily": [list(f) for f in self.flats],
            "risk_inputs": self.risk_inputs,
            "costs": dict(self.costs),
            "comparison": self.comparison_rows(),
            "capped_segments": [dict(s) for s in self.schedule.segments],
            "state_columns": STATE_UNITS,
        }
        if self.portfolio is not None:
            pf = self.portfolio
            out["market"]["equivalent_single_contract"] = (
                "alpha, c_eff and kappa above are the equivalent single contract along Theorem 3's direction b = B/||B||_1: "
                "alpha = b'Ab, c_eff = psi s_f/(sqrt(w) b'Ab) (1 if psi = 0, then unused), kappa = kappa ||b||^2")
            out["portfolio"] = {
                "market": pf["market"].to_dict(),
                "rules": {k: pl.summary() for k, pl in pf["local"].items()},
                "states": {"vol_daily": [float(v) for v in p.vol],
                           **{k: {"slope_dm_dvol": [float(x) for x in 2.0 * p.vol * pl.slope_right], "H_t": [float(x) for x in pl.H],
                                  "theorem3_holds": [bool(x) for x in pl.theorem3], "exceeds_cap88": [bool(x) for x in pl.exceeds_cap88],
                                  "exceeds_cap_all": [bool(x) for x in pl.exceeds_cap_all]}
                              for k, pl in pf["local"].items()},
                           "cap88_dm_dvol": [to_py(x) for x in 2.0 * p.vol * pf["local"]["rule"].cap88_dm_dr],
                           "cap_all_dm_dvol": [to_py(x) for x in 2.0 * p.vol * pf["local"]["rule"].cap_all_dm_dr]},
                "refused_options": ["--accounts", "--data sp500", "--max-horizon"],
            }
        if self.trim is not None:
            out["trimming"] = {"cutoff": self.trim["cutoff"], "max_jump": _nanmax(self.trim["jump"]),
                               "states_winsor_flat": int(self.trim["winsor_flat"].sum())}
        if self.strategic is not None:
            out["strategic"] = {"summary": self.local_strategic.summary(),
                                "chi": self.options.chi, "eta": self.options.eta, "rho": m.funding_spread}
        if self.simulation is not None:
            out["simulation"] = {k: v for k, v in self.simulation.items() if k not in ("text", "curves_obj", "table")}
        if self.stress is not None:
            out["stress_test"] = {k: v.to_dict() for k, v in self.stress.items()}
        if self.backtest is not None:
            b = self.backtest
            out["backtest"] = {"data": b["data"].describe(), "coverage": b["coverage"], "above_grid_share": b["above_grid"],
                               "metrics": {k: v.to_dict(b["data"].dates) for k, v in b["metrics"].items()}}
        return _clean(out)

    # ------------------------------------------------------------ pandas and Jupyter
    def to_frame(self):
        """The per-state table (:meth:`state_rows`) as a pandas DataFrame, one row per state of the market config's grid.

        Columns are named with their units (``vol_daily``, ``vol_annual``, ``margin_ratio``, ``slope_dm_dvol``,
        ``cap_dm_dvol``, ``exceeds_cap``, ``G``, ``profit_bps``, ...; the meaning of each is in
        :data:`STATE_UNITS` and ``frame.attrs["units"]``). Values the analysis cannot give (``q_min_adv`` where no
        trade size is profitable, a cap of infinity) are NaN.
        """
        import pandas as pd

        frame = pd.DataFrame(self.state_rows())
        for col in frame.columns:  # columns with a missing value (None) hold numbers: make them float64
            if frame[col].dtype == object and all(v is None or isinstance(v, (int, float)) for v in frame[col]):
                frame[col] = frame[col].astype("float64")
        frame.index.name = "state"
        frame.attrs["units"] = {k: v for k, v in STATE_UNITS.items() if k in frame.columns}
        return frame

    def comparison_frame(self):
        """The rule against the first-best M_fb and the capped optimum g* (:meth:`comparison_rows`), one row each:
        share of states over the cap, largest slope/cap and G, largest profit bound (bp), expected cost J (per unit
        notional), and with a backtest the breach rate, Kupiec p, mean margin, largest 1-day increase (decimal)
        and share of days over the cap."""
        import pandas as pd

        return pd.DataFrame(self.comparison_rows()).set_index("rule")

    def _display(self) -> tuple[str, list[tuple[str, str]]]:
        p, m, s, c = self.problem, self.market, self.local.summary(), self.costs
        cert = self.schedule.certificate
        items = [
            ("rule", self.rule.describe()),
            ("market", f"{self.market_file}: alpha {m.alpha:g}, c_eff {m.c_eff:g}, cap on dM/dsigma {p.cap.slope_vol:.6g} per unit daily vol"),
            ("states", f"{p.n}, daily vol {p.vol[0]:.4%} .. {p.vol[-1]:.4%}"),
            ("breaks the cap", f"{yes_no(s['states_over_cap'] > 0)}: {s['states_over_cap']} of {s['states']} states "
                               f"({s['share_over_cap']:.1%}); largest slope/cap {s['max_slope_over_cap']:.4g}"),
            ("largest gain G", f"{s['max_G']:.4g}; profit bound up to {s['max_profit_bps']:.4g} bp at q = {m.trigger:g} ADV"),
            ("jumps", f"{len(self.jumps)}"),
            ("expected cost J", f"rule {c['rule']:.6g}, capped optimum g* {c['capped']:.6g}, first-best {c['first_best']:.6g}"),
            ("price of manipulation-proofness", f"{c['capped'] - c['first_best']:.6g}"),
            ("g* certified", f"{yes_no(cert.ok)} (relative gap {cert.relative_gap:.2e})"),
        ]
        if self.simulation is not None:
            flags = {k: v for k, v in self.simulation["checks"].items() if isinstance(v, bool)}
            items.append(("simulation checks", ", ".join(f"{k} {yes_no(v)}" for k, v in flags.items())))
        if self.backtest is not None:
            met = self.backtest["metrics"]["rule"]
            items.append(("backtest (rule)", f"{met.breaches}/{met.days} breaches ({met.breach_rate:.2%}), Kupiec p {met.kupiec_p:.3g}"))
        if self.portfolio is not None:
            items.insert(1, ("portfolio", ", ".join(self.portfolio["market"].assets)))
        return f"Margin rule audit: {self.rule.name}", items


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _nanmax(a):
    a = np.asarray(a, dtype=float)
    return float(np.nanmax(a)) if np.any(np.isfinite(a)) else None


def _ranges_text(flat: list) -> str:
    parts = [f"{flat[i]:.4%}-{flat[i + 1]:.4%}" for i in range(0, len(flat), 2)]
    return ", ".join(parts[:4]) + (" ..." if len(parts) > 4 else "")


def _median_state_rows(rows: list) -> list:
    vols = sorted({r["vol_daily"] for r in rows})
    mid = vols[len(vols) // 2] if vols else None
    return [r for r in rows if r["vol_daily"] == mid]


_clean = jsonable  # one JSON converter (margin_design.jsonable)


# ----------------------------------------------------------------------------------------------
# Building the audit
# ----------------------------------------------------------------------------------------------


def _input_spec(problem) -> InputSpec:
    return InputSpec.of_cap(problem.cap)


def first_best_rule(problem) -> Rule:
    """M_fb (34) as a rule: sqrt(h r) Q if the grid values scale with sqrt(r) as in (37), else its grid values
    read linearly in sigma (flat beyond the grid)."""
    fb = np.asarray(problem.first_best, dtype=float)
    h = float(problem.objective.shock.horizon_days) if problem.objective.kind == "cost" else None
    if h is not None:
        q = fb / np.sqrt(h * problem.r)
        if np.all(q > 0) and float(np.ptp(q)) <= FB_SCALING_RTOL * float(np.median(q)):
            base = parse_formula(f"{float(np.median(q))!r}*sqrt({h!r}*r)")
            return Rule(base, name="first-best M_fb")
    return Rule(TableRule(problem.vol, fb, "linear", source="first-best (grid)", require_monotone=False), name="first-best M_fb")


def capped_rule(schedule) -> Rule:
    """g* read linearly in sigma between grid points, flat beyond the grid ends."""
    return Rule(TableRule(schedule.vol, schedule.schedule, "linear", source="capped optimum (grid)"), name="capped optimum g*")


def _market(problem, o: AuditOptions) -> AuditMarket:
    c = problem.cap
    return AuditMarket(alpha=c.alpha, c_eff=c.c_eff, inventory_penalty=c.inventory_penalty,
                       execution_cost=o.execution_cost, funding_spread=o.funding_spread, trigger=o.trigger)


def _risk_input_states(problem) -> np.ndarray:
    cw = np.cumsum(problem.weights)
    idx = sorted({int(min(np.searchsorted(cw, q), problem.n - 1)) for q in RISK_INPUT_QUANTILES})
    return problem.vol[idx]


def build_audit(rule: Rule, market_config, options: AuditOptions | None = None, progress=None) -> Audit:
    """Run the whole audit of ``rule`` in the market of ``market_config`` (a design config path).

    ``progress(done, total, what)``, if given, is called as the market simulation (``what = "simulation"``) and
    the backtest (``what = "backtest"``) advance, in units of their steps (a rule in a state, a rule over the data).
    """
    from margin_design.design import load_problem

    from .updates import solve_design

    o = options or AuditOptions()
    problem = load_problem(market_config)
    pspec = problem.cap.portfolio
    if pspec is not None:
        _refuse_single_contract_options(o)
    elif o.liquidation is not None:
        raise InputError(f"--liquidation {o.liquidation} applies to a [portfolio] --market; the single-contract simulation's "
                         "constrained sector is a population of accounts.")
    vol = problem.vol
    rule.check_monotone(vol)
    if rule.overlays.stressed_weight and rule.overlays.stressed_vol is None:
        raise InputError(f"overlay stressed_weight = {rule.overlays.stressed_weight!r} needs stressed_vol, the daily vol of the stressed period.")
    schedule = solve_design(problem, method=o.method)   # [cap] updates = T > 1: the cap scaled by the T-update bisection
    fb = first_best_rule(problem)
    cp = capped_rule(schedule)
    spec = _input_spec(problem)
    bps = rule.breakpoints(float(vol[0]), float(vol[-1]))
    flats = rule.flat_stretches(vol)
    horizon = o.horizon_days or (int(round(problem.objective.shock.horizon_days)) if problem.objective.kind == "cost" else 2)
    ri_window = o.backtest_window or (spec.window if spec.kind == "realized_variance" else 20)
    portfolio = None
    if pspec is None:
        market = _market(problem, o)
        la = local_analysis(rule, vol, market, spec, o.last_return)
        la_fb = local_analysis(fb, vol, market, spec, o.last_return)
        la_cp = local_analysis(cp, vol, market, spec, o.last_return)
        jumps = jump_gains(tuple(b for b in bps if b.is_jump), market, spec)
        trim = trimming_jumps(rule, vol, o.trim, spec, market) if o.trim is not None else None
        ri = risk_input_table(rule, _risk_input_states(problem), market, window=ri_window, lam=spec.lam, horizon_days=horizon)
    else:
        # Section 5: the single-contract analysis along Theorem 3's direction b = B/||B||_1 (the equivalent contract of
        # audit/portfolio.py) plus H_t (29), the cap (88) and the cap over every direction, state by state
        pm = PortfolioMarket.from_spec(pspec, problem.cap.inventory_penalty, o.execution_cost, o.funding_spread, o.trigger)
        market = pm.equivalent_market(spec)
        (la, pl), (la_fb, pl_fb), (la_cp, pl_cp) = (portfolio_local_analysis(g, vol, pm, spec, o.last_return) for g in (rule, fb, cp))
        jumps = portfolio_jump_gains(tuple(b for b in bps if b.is_jump), pm, spec)
        trim = trimming_jumps(rule, vol, o.trim, spec, pm.harvest_market()) if o.trim is not None else None
        ri = portfolio_risk_input_rows(risk_input_table(rule, _risk_input_states(problem), market, window=ri_window, lam=spec.lam,
                                                        horizon_days=horizon), pm, spec)
        portfolio = {"market": pm, "local": {"rule": pl, "first_best": pl_fb, "capped": pl_cp}, "simulation": None}
    strategic = la_st = None
    if o.accounts is not None:
        from margin_design.csvio import read_csv_columns

        cols = read_csv_columns(o.accounts, required=("equity", "benefit"), label="--accounts")
        strategic = equilibrium_c_eff(rule, vol, market, cols["equity"], cols["benefit"], chi=o.chi, rho=o.funding_spread, eta=o.eta,
                                      input_spec=spec, last_return=o.last_return)
        la_st = local_analysis(rule, vol, market, spec, o.last_return, c_x=np.asarray([s.c_eff for s in strategic]))
    r = problem.r
    costs = {"rule": problem.value(rule.margin(r)), "capped": float(schedule.objective["value"]),
             "first_best": float(schedule.objective["first_best_value"])}
    rules = {"rule": rule, "first_best": fb, "capped": cp}
    if pspec is None:
        sim = _simulation(rules, problem, market, spec, o, tuple(b for b in bps if b.is_jump), progress) if o.simulate else None
    else:
        sim = _portfolio_simulation(rules, problem, portfolio, spec, o, progress) if o.simulate else None
    bt = _backtest(rules, problem, o, horizon, progress) if o.data is not None else None
    stress = _stress(rules, problem, market, spec, o) if o.updates is not None else None
    return Audit(
        rule=rule, first_best=fb, capped=cp, problem=problem, schedule=schedule, market=market, input_spec=spec, local=la,
        local_first_best=la_fb, local_capped=la_cp, breakpoints=bps, jumps=jumps, flats=flats, trim=trim, risk_inputs=ri,
        strategic=strategic, local_strategic=la_st, costs=costs, simulation=sim, backtest=bt, options=o,
        market_file=Path(market_config).name, portfolio=portfolio, stress=stress,
    )


def _stress(rules: dict, problem, market: AuditMarket, spec: InputSpec, o: AuditOptions) -> dict:
    """The T-update stress test of the rule, g* and M_fb in the simulation's envelope states (:mod:`.stress`)."""
    from .stress import CAPACITIES, stress_test

    if spec.kind == "ewma":
        raise InputError("--updates runs the T-update stress test, which simulates realised-variance inputs; the config's cap input is ewma.")
    window = o.sim_window if spec.kind == "variance" else spec.window
    limit = window - spec.tail if spec.kind in ("hs_var", "hs_es") else window
    if o.updates > limit:
        raise InputError(f"--updates {o.updates} exceeds the {limit} updates the simulated window of {window} returns allows (locality)"
                         + ("; raise --sim-window." if spec.kind == "variance" else "."))
    states = [SimState.envelope(v * v, window, spec.kind, spec.level) for v in _sim_states(problem)]
    return {key: stress_test(rule, states, market, o.updates, CAPACITIES) for key, rule in rules.items()}


def _refuse_single_contract_options(o: AuditOptions) -> None:
    """Options that only make sense for one contract, refused for a [portfolio] market with one sentence each."""
    if o.accounts is not None:
        raise InputError("--accounts models the strategic constrained traders of one contract (Appendix B); with a [portfolio] "
                         "--market the forced sales are portfolio.liquidation (B), so --accounts is refused.")
    if o.data == "sp500":
        raise InputError("--data sp500 is one index's price series; with a [portfolio] --market give a CSV (date, close) of the "
                         "margined portfolio's daily value, whose variance is the rule's input.")
    if o.updates is not None:
        raise InputError("--updates runs the single-contract T-update stress test, which a [portfolio] audit does not run "
                         "(it simulates two-period vector round trips, Section 5.3).")
    if o.max_horizon is not None:
        raise InputError("--max-horizon sets the single-contract multi-period search, which a [portfolio] audit does not run "
                         "(it simulates two-period vector round trips, Section 5.3).")


# ----------------------------------------------------------------------------------------------
# Simulation checks (a)-(d)
# ----------------------------------------------------------------------------------------------


def _sim_states(problem) -> list[float]:
    lo, hi = float(problem.vol[0]), float(problem.vol[-1])
    return sorted({min(max(v, lo), hi) for v in SIM_VOLS})


def _simulation(rules: dict, problem, market: AuditMarket, spec: InputSpec, o: AuditOptions, jumps: tuple = (), progress=None) -> dict:
    if spec.kind == "ewma":
        return {"skipped": "the market simulation uses realised-variance inputs; the config's cap input is ewma", "text": [
            "  skipped: the simulated rule reads realised variance, the config's [cap] input is ewma"]}
    kind = spec.kind
    window = o.sim_window if kind == "variance" else spec.window
    q = np.asarray(SIM_TRIGGERS)
    curves: dict = {k: [] for k in rules}
    steps = (len(_sim_states(problem)) + 2) * len(rules) + 1  # curves per state and rule, two searches per rule, the jump
    done = 0

    def advance():
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, steps, "simulation")

    if progress is not None:
        progress(0, steps, "simulation")
    for si, v in enumerate(_sim_states(problem)):
        # the rule reads r = Gamma; an envelope state with Gamma = r has |R_t| = sqrt(r / w)
        state = SimState.envelope(v * v, window, kind, spec.level)
        fund = Fundamentals.normal(v, 1, o.paths, seed=o.seed + si)
        for key, rule in rules.items():
            m0 = float(rule.margin(np.asarray(state.r)))
            pop = Population.calibrated(POPULATION_SIZE, m0, market.c_eff, seed=o.seed)
            curves[key].append(round_trip_curve(rule, pop, state, market, q, fund))
            advance()
    lemma5 = {}
    for key, cs in curves.items():
        viol = 0
        checked = 0
        for c in cs:
            hold = c.G > 2.0 + market.inventory_penalty / market.alpha
            checked += int(hold.sum())
            viol += int(np.sum(hold & (c.upper < c.bound)))
        lemma5[key] = {"checked": checked, "violations": viol}
    pos = {key: [bool(np.any(c.profitable)) for c in cs] for key, cs in curves.items()}   # beyond noise (MonteCarloBand.profitable)
    sv = min(max(SEARCH_VOL, float(problem.vol[0])), float(problem.vol[-1]))
    stationary = window - spec.tail if kind in ("hs_var", "hs_es") else window   # HS: the tail must stay in the window
    horizons = tuple(range(1, max(1, min(o.max_horizon or DEFAULT_MAX_HORIZON, stationary)) + 1))
    searches = {}
    for label, state in (("spread", SimState.spread(sv * sv, window, SEARCH_SHARE, kind, spec.level)),
                         ("envelope", SimState.envelope(sv * sv, window, kind, spec.level))):
        searches[label] = {}
        for key, rule in rules.items():
            m0 = float(rule.margin(np.asarray(state.r)))
            pop = Population.calibrated(POPULATION_SIZE, m0, market.c_eff, seed=o.seed)
            res = search_round_trips(rule, pop, state, market, lambda T, st=state: Fundamentals.rademacher(st.step, T),
                                     horizons=horizons, sizes=SEARCH_UNITS, lattice=SEARCH_LATTICE)
            searches[label][key] = res
            advance()
    jump_curve = None
    ups = [j for j in jumps if j.jump > 0]
    if ups:
        j = max(ups, key=lambda b: b.jump)
        v = j.vol - 0.5 * market.alpha * market.trigger * math.sqrt(spec.weight)   # a trigger of q/2 reaches the threshold
        if v > 0:
            state = SimState.envelope(v * v, window, kind, spec.level)
            m0 = float(rules["rule"].margin(np.asarray(state.r)))
            pop = Population.calibrated(POPULATION_SIZE, m0, market.c_eff, seed=o.seed)
            jump_curve = round_trip_curve(rules["rule"], pop, state, market, q, Fundamentals.normal(v, 1, o.paths, seed=o.seed + 99))
    advance()
    checks = {
        "a_lemma5_bound_holds": all(v["violations"] == 0 for v in lemma5.values()),
        "b_first_best_manipulable": any(pos["first_best"]),
        "c_capped_not_manipulable": not any(pos["capped"]),
        "c_capped_noise_excursion_states": int(sum(bool(np.any(c.noise_excursion)) for c in curves["capped"])),
        "d_search_capped_none": searches["spread"]["capped"].overall[1] <= PROFIT_TOL,
        "d_search_first_best_found": searches["spread"]["first_best"].overall[1] > PROFIT_TOL,
        "rule_manipulable_two_period": any(pos["rule"]),
        "rule_search_found": searches["spread"]["rule"].overall[1] > PROFIT_TOL,
        "rule_jump_crossing_profitable": None if jump_curve is None else bool(np.any(jump_curve.profitable)),
    }
    vols = _sim_states(problem)
    env_desc = "the whole tail in the last loss" if kind in ("hs_var", "hs_es") else "the window's input in the last return"
    text = [
        f"  envelope states ({env_desc}), daily vol {', '.join(f'{v:.2%}' for v in vols)}; "
        f"{o.paths} normal fundamental paths per state (sd = the state's daily vol, seed {o.seed}); band = mean +- {BAND_Z:.2f} s.e.; "
        f"{POPULATION_SIZE} constrained accounts (epsilon_XM 0.225, c_X = c_eff at the state's margin)",
    ]
    for key, label in (("first_best", "first-best M_fb"), ("capped", "capped optimum g*"), ("rule", "rule")):
        c = curves[key][min(1, len(vols) - 1)]
        i = int(np.argmin(np.abs(c.q - market.trigger)))
        text.append(
            f"  {label:<18} (-q, +q) at vol {math.sqrt(c.state.r):.2%}, q = {c.q[i]:g}: E[Pi] = {c.mean[i]:+.3e} +- {BAND_Z * c.se[i]:.1e} "
            f"(closed form {c.closed_form[i]:+.3e}, Lemma 5 bound {c.bound[i]:+.3e}); profitable beyond noise in {sum(pos[key])} of {len(vols)} states"
        )
    text.append(f"  (a) mean >= Lemma 5 bound where the gain condition holds: {'yes' if checks['a_lemma5_bound_holds'] else 'NO'} "
                "(" + ", ".join(f"{k}: {v['checked']} checked, {v['violations']} violations" for k, v in lemma5.items()) + ")")
    text.append(f"  (b) first-best profitably manipulable: {'yes' if checks['b_first_best_manipulable'] else 'no'}; "
                f"(c) capped optimum manipulable by (-q, +q): {'no' if checks['c_capped_not_manipulable'] else 'YES'}")
    n_exc = checks["c_capped_noise_excursion_states"]
    if n_exc:
        text.append(f"      not counted: in {n_exc} of {len(vols)} states the capped optimum's mean is above its 95% band while its exact "
                    f"expectation is <= 0 (within {PROFIT_TOL:g}) and the Monte Carlo agrees with it (|z| <= {AGREE_Z:g}): a noise "
                    "excursion (the band's one-sided 2.5% false alarm), not a profit")
    spread_desc = f"spread state ({SEARCH_SHARE:.0%} of the input in the last return), vol {sv:.2%}"
    if kind in ("hs_var", "hs_es"):
        share = f"{SEARCH_SHARE:.0%} of the tail" if kind == "hs_es" and spec.tail > 1 else f"the {'VaR' if kind == 'hs_var' else 'ES'}"
        spread_desc = f"spread state ({share} in the last loss, the other returns below the tail), vol {sv:.2%}"
    for label, desc in (("spread", spread_desc),
                        ("envelope", f"envelope state, vol {sv:.2%}")):
        n = searches[label]["capped"].searched
        text.append(f"  (d) search over {n} open-loop round trips, T = 1..{horizons[-1]}, exact expectations, {desc}:")
        for key, lab in (("capped", "capped optimum"), ("first_best", "first-best"), ("rule", "rule")):
            res = searches[label][key]
            t, mean, _ = res.overall
            text.append(f"      {lab:<15} best {_trades_text(t)}: E[Pi] = {mean:+.3e} ({res.positive} of {res.searched} positive)")
    if jump_curve is not None:
        k = int(np.argmax(jump_curve.mean))
        text.append(
            f"  (e) threshold crossing: rule's largest jump {ups and max(b.jump for b in ups):+.4%} at daily vol {max(ups, key=lambda b: b.jump).vol:.4%}; "
            f"from daily vol {math.sqrt(jump_curve.state.r):.4%} the best (-q, +q) has q = {jump_curve.q[k]:g}: E[Pi] = {jump_curve.mean[k]:+.3e} "
            f"+- {BAND_Z * jump_curve.se[k]:.1e} (closed form {jump_curve.closed_form[k]:+.3e})"
        )
    envelope_verdict = None
    if searches["envelope"]["capped"].overall[1] > PROFIT_TOL:
        # word the finding by its measured order in q (a rule at the cap: q^3; strictly inside it: only large trades):
        # the same lattice search per unit size, capacity q = 2 units (the lattice's largest leg)
        from .stress import scaling_exponent, verdict

        state = SimState.envelope(sv * sv, window, kind, spec.level)
        m0 = float(rules["capped"].margin(np.asarray(state.r)))
        pop = Population.calibrated(POPULATION_SIZE, m0, market.c_eff, seed=o.seed)
        caps = [2.0 * u for u in SEARCH_UNITS]
        best = [search_round_trips(rules["capped"], pop, state, market, lambda T, st=state: Fundamentals.rademacher(st.step, T),
                                   horizons=horizons, sizes=(u,), lattice=SEARCH_LATTICE).overall for u in SEARCH_UNITS]
        profits = [b[1] for b in best]
        envelope_verdict = {"capacities_adv": caps, "best_profit": profits, "best_trades_adv": [list(b[0]) for b in best],
                            "scaling_exponent": scaling_exponent(caps, profits, PROFIT_TOL), "verdict": verdict(caps, profits, PROFIT_TOL)}
        why = ("the ES envelope's tail is open (the other tail scenarios at zero loss): every later loss of the trader enters it at "
               "first order, so trips over several updates can earn second-order profits against a rule at the two-period cap"
               if kind == "hs_es" and spec.tail > 1 else "re-leveraging E/M is convex in M, so buy-first trips gain where the margin falls")
        text.append(f"      at the envelope, the capped optimum's best lattice trip by largest leg q = {', '.join(f'{c:g}' for c in caps)} ADV: "
                    f"E[Pi] = {', '.join(f'{v:+.2e}' for v in profits)} -- {envelope_verdict['verdict']} ({why})")
    return {
        "checks": checks,
        "lemma5": lemma5,
        "curves": {key: [c.to_dict() for c in cs] for key, cs in curves.items()},
        "search": {label: {key: res.to_dict() for key, res in d.items()} for label, d in searches.items()},
        "jump_curve": None if jump_curve is None else jump_curve.to_dict(),
        **({"envelope_capped_scaling": envelope_verdict} if envelope_verdict is not None else {}),
        "settings": {"paths": o.paths, "seed": o.seed, "window": window, "input": kind, "population": POPULATION_SIZE,
                     "triggers_adv": list(SIM_TRIGGERS), "states_vol_daily": vols, "search_share": SEARCH_SHARE,
                     "search_vol_daily": sv, "search_units_adv": list(SEARCH_UNITS), "search_lattice": list(SEARCH_LATTICE),
                     "band_z": BAND_Z, "profit_tol": PROFIT_TOL},
        "text": text,
        "curves_obj": curves,
    }


def _portfolio_simulation(rules: dict, problem, portfolio: dict, spec: InputSpec, o: AuditOptions, progress=None) -> dict:
    """The Section 5.3 market (audit/portfolio.py): both strategies, every rule, the envelope states."""
    if spec.kind == "ewma":
        return {"kind": "portfolio", "skipped": "the market simulation uses realised-variance inputs; the config's cap input is ewma",
                "text": ["  skipped: the simulated rule reads realised variance, the config's [cap] input is ewma"]}
    pm = portfolio["market"]
    vols = _sim_states(problem)
    if progress is not None:
        progress(0, 1, "simulation")
    sim = simulate_portfolio(rules, pm, spec, vols, SIM_TRIGGERS, paths=o.paths, seed=o.seed, window=o.sim_window,
                             liquidation=o.liquidation or "population", population=POPULATION_SIZE)
    portfolio["simulation"] = sim
    if progress is not None:
        progress(1, 1, "simulation")
    checks = sim.checks()
    k = min(1, len(vols) - 1)
    i = int(np.argmin(np.abs(np.asarray(SIM_TRIGGERS) - pm.trigger)))
    h = pm.holdings(spec)
    text = [
        f"  envelope states (the window's input in the last return of the margined portfolio h = -d s_f/sqrt(w) = "
        f"{_vec(h)}), daily vol {', '.join(f'{v:.2%}' for v in vols)}; {o.paths} paths of independent normal fundamentals per "
        f"contract (sd = the state's daily vol / ||h||, seed {o.seed} + state), band = mean +- {BAND_Z:.2f} s.e.; {sim.liquidation}",
        *([] if pm.explicit else [f"  d and s_f come from {pm.source}; the simulated input is the variance of h'R, which has the same d and "
                                   "c_r = 2 sqrt(r) s_f at the envelope (what the two-period trip reads), standing in for the functional"]),
        f"  strategies at ||a_t||_1 = q: theorem3 = -q b, b = B/||B||_1 = {_vec(pm.b)}; separated = q {_vec(pm.direction_of('separated'))} "
        f"(trigger leg {_vec(pm.separated_legs()[0])}, harvest leg {_vec(pm.separated_legs()[1])}); both reversed at t+1",
    ]
    for key, label in (("first_best", "first-best M_fb"), ("capped", "capped optimum g*"), ("rule", "rule")):
        for st in STRATEGIES:
            c = sim.curves[key][st][k]
            text.append(
                f"  {label:<18} {st:<9} vol {math.sqrt(c.state.r):.2%}, q = {c.q[i]:g}: E[Pi] = {c.mean[i]:+.3e} +- {BAND_Z * c.se[i]:.1e} "
                f"(closed form {c.closed_form[i]:+.3e}, Lemma 10 with linear B {c.lemma10[i]:+.3e}); significantly > 0 in "
                f"{checks[f'{key}_{st}_profitable_states']} of {len(vols)} states"
            )
    text.append(f"  (a) Monte Carlo within {AGREE_Z:g} s.e. of the exact closed form: {'yes' if checks['a_monte_carlo_agrees'] else 'NO'} "
                f"(largest |z| {checks['a_max_abs_z']:.2f})")
    b = checks["b_first_best_profitable_where_H_positive"]
    text.append(f"  (b) first-best profitable by Theorem 3's trip wherever its H_t > 0: {'n/a (H_t <= 0 in every simulated state)' if b is None else 'yes' if b else 'NO'}; "
                f"(c) capped optimum profitable by it: {'no' if checks['c_capped_not_profitable_theorem3'] else 'YES'}")
    n_exc = checks["c_capped_noise_excursion_states"]
    if n_exc:
        text.append(f"      not counted: in {n_exc} of {len(vols)} states the capped optimum's mean is above its 95% band while its exact "
                    f"expectation is <= 0 (within {PROFIT_TOL:g}) and the Monte Carlo agrees with it (|z| <= {AGREE_Z:g}): a noise "
                    "excursion (the band's one-sided 2.5% false alarm), not a profit")
    at_cap = [c for c in sim.curves["capped"]["theorem3"] if np.all(np.abs(c.closed_form) <= PROFIT_TOL)]
    if (o.liquidation or "population") == "linear" and at_cap:
        text.append(f"      with the linear response (26) the capped optimum at the cap earns exactly 0 along b in {len(at_cap)} of {len(vols)} "
                    "states (the knife-edge of (87)): its Monte Carlo verdict there is the sign of the noise; the population sector "
                    "makes it strictly negative (forced sales per unit of margin fall as margin rises)")
    n_sep = checks["capped_separated_profitable_states"]
    text.append(f"  trigger-harvest trip (5.6) against the capped optimum: significantly profitable in {n_sep} of {len(vols)} states"
                + (" -- the cap (88) binds Theorem 3's direction only (two-period cap over every direction "
                   f"K_all = {_num(pm.cap_vol_all)} < K = {_num(pm.cap_vol)})" if n_sep else ""))
    return {"kind": "portfolio", "checks": checks, "portfolio": sim.to_dict(), "table": sim.table(), "text": text}


#: States shown in the text and Markdown state tables (every state is in states.csv).
PORTFOLIO_TABLE_STATES = 8
PROFIT_TABLE_HEADER = ["daily vol", "rule", "strategy", "H_t", "Delta M", "closed form", "MC mean", "+- band", "linear B", "> 0"]
RULE_LABELS = {"rule": "rule", "first_best": "first-best", "capped": "capped g*"}


def _portfolio_state_index(n: int) -> list[int]:
    return sorted({int(round(x)) for x in np.linspace(0, n - 1, min(PORTFOLIO_TABLE_STATES, n))})


def _profit_table_cells(audit) -> list[list[str]]:
    """The profit table at the market's trade size: state, rule, strategy, H_t, Delta M, closed form, MC mean +- band."""
    sim = audit.portfolio["simulation"]
    q0 = audit.portfolio["market"].trigger
    qs = np.asarray(sim.q)
    qk = float(qs[int(np.argmin(np.abs(qs - q0)))])
    rows = [r for r in sim.table() if r["q_adv"] == qk]
    order = {"first_best": 0, "capped": 1, "rule": 2}
    rows.sort(key=lambda r: (r["vol_daily"], order[r["rule"]], r["strategy"]))
    return [[f"{r['vol_daily']:.2%}", RULE_LABELS[r["rule"]], r["strategy"], f"{r['H_t']:+.4g}", f"{r['margin_move_ratio']:.3e}",
             f"{r['closed_form']:+.3e}", f"{r['mc_mean']:+.3e}", f"{r['mc_band']:.1e}", f"{r['lemma10_linear_B']:+.3e}",
             "yes" if r["significantly_positive"] else "no"] for r in rows]


def _portfolio_lines(audit) -> list[str]:
    """The text block of a portfolio audit: A, B, d, psi, ||AB||, the caps, H_t of the three rules, state by state."""
    pf = audit.portfolio
    pm = pf["market"]
    loc = pf["local"]
    t, h = pm.separated_legs()
    lines = [
        "Portfolio margining (Section 5, D.5-D.6)",
        f"  A (price per ADV traded) = {[[float(f'{x:.6g}') for x in row] for row in pm.impact]}; B (ADV per unit margin ratio) = {_vec(pm.liquidation)}; "
        f"d = {_vec(pm.direction)}; s_f = {pm.sensitivity:.6g}",
        f"  AB = {_vec(pm.pressure_vector)}: psi = max(0, -d'AB) = {pm.psi:.6g} (d'AB = {pm.alignment:+.6g}), ||AB||_2 = {pm.price_pressure:.6g} (86)",
        f"  H_t (29) along Theorem 3's trip a_t = -q b, b = B/||B||_1 = {_vec(pm.b)} (||B||_1 = {pm.l1:.6g}; b'Ab = {pm.bab:.6g}): only the trade "
        "direction is normalised, the bracket keeps the model's B, so H_t = b'Ab (c_g c_r psi - 2) with c_g = g'(r) the rule's right slope "
        "and c_Gamma = c_r = 2 sqrt(r) s_f; E[Pi] ~ q^2 (H_t - kappa ||b||^2)",
        f"  cap (88) on dM/dsigma: K = (2 + kappa ||B||^2/B'AB)/(s_f psi) = {_num(pm.cap_vol)}; over every two-period direction (our derivation from "
        f"Lemma 10's identity): K_all = 1/(s_f Phi) = {_num(pm.cap_vol_all)}, Phi = {pm.phi:.6g}",
        f"  trigger-harvest trip (5.6): a* (largest gain per unit own cost, profitable iff the slope exceeds K_all) = trigger leg {_vec(t)} (d'A a = {float(pm.direction @ pm.impact @ t):+.4g}) "
        f"+ harvest leg {_vec(h)} (a'AB = {float(h @ pm.pressure_vector):+.4g}), ||a*||_1 = 1",
    ]
    if not math.isfinite(pm.cap_vol):
        lines.append("  psi = 0: the trigger direction does not load on the liquidation pressure, so (88) sets no cap (monotone only)"
                     + ("; a trigger-harvest trip still profits where the slope exceeds K_all" if math.isfinite(pm.cap_vol_all) else ""))
    elif pm.cap_vol_all < pm.cap_vol * (1.0 - 1e-12):
        lines.append(f"  K_all < K: d and -B are not aligned (in the metric C = 2A + kappa I), so a rule at the cap (88) is still "
                     f"manipulable by the separated trip; K_all/K = {pm.cap_vol_all / pm.cap_vol:.4g}")
    vol = audit.problem.vol
    for key, label in (("rule", f"rule: {audit.rule.name}"), ("first_best", "first-best M_fb"), ("capped", "capped optimum g*")):
        pl = loc[key]
        sm = pl.summary()
        lines.append(
            f"  {label}: H_t > 0 (Theorem 3 holds) in {sm['states_H_positive']} of {sm['states']} states"
            + (f" (daily vol {_ranges_text(sm['vol_H_positive'])})" if sm["states_H_positive"] else "")
            + f"; slope over (88) in {sm['states_over_cap88']}; over K_all in {sm['states_over_cap_all_directions']}; largest H_t {sm['max_H_t']:+.4g}"
        )
    idx = _portfolio_state_index(vol.size)
    lines.append(f"  state by state ({len(idx)} of {vol.size} states shown; every state in states.csv):")
    lines.append(text_table(PORTFOLIO_STATE_HEADER, _portfolio_state_cells(audit, idx)))
    return lines


def _portfolio_state_cells(audit, idx) -> list[list[str]]:
    """Per-state cells: daily vol, the rule's M and dM/dsigma, the caps (88) and K_all, H_t of the three rules."""
    loc = audit.portfolio["local"]
    vol = audit.problem.vol
    pl = loc["rule"]
    return [[f"{vol[i]:.3%}", f"{audit.local.margin[i]:.4%}", f"{2 * vol[i] * pl.slope_right[i]:.4g}", _num(2 * vol[i] * pl.cap88_dm_dr[i]),
             _num(2 * vol[i] * pl.cap_all_dm_dr[i]), f"{pl.H[i]:+.4g}", "yes" if pl.theorem3[i] else "no",
             f"{loc['first_best'].H[i]:+.4g}", f"{loc['capped'].H[i]:+.4g}", f"{pl.separated[i]:+.4g}"] for i in idx]


PORTFOLIO_STATE_HEADER = ["daily vol", "M", "dM/dsigma", "cap (88)", "K_all", "H_t", "H_t > 0", "H_t fb", "H_t g*", "sep. E[Pi]/q^2"]


def _vec(x) -> str:
    return "(" + ", ".join(f"{float(v):.4g}" for v in np.asarray(x, dtype=float)) + ")"


def _num(x) -> str:
    return "none" if x is None or not math.isfinite(float(x)) else f"{float(x):.6g}"


def _trades_text(t) -> str:
    return "(" + ", ".join(f"{x:+g}" for x in t) + ")"


# ----------------------------------------------------------------------------------------------
# Backtest
# ----------------------------------------------------------------------------------------------


def _backtest(rules: dict, problem, o: AuditOptions, horizon: int, progress=None) -> dict:
    from margin_design.calibration.data import load_dataset, read_price_csv, select_window

    series = load_dataset(o.data) if o.data == "sp500" else read_price_csv(o.data)
    series = select_window(series, o.start, o.end)
    spec = _input_spec(problem)
    if spec.kind == "ewma":
        kind, window = "ewma", o.backtest_window or 20
    elif spec.kind in ("hs_var", "hs_es"):
        kind, window = spec.kind, o.backtest_window or spec.window
    else:
        kind, window = "realized_variance", o.backtest_window or (spec.window if spec.kind == "realized_variance" else 20)
    data = prepare_backtest(series, risk_input=kind, window=window, lam=spec.lam, horizon_days=horizon, position=o.position, level=spec.level)
    if o.coverage is not None:
        coverage = o.coverage
    elif problem.objective.kind == "cost":
        coverage = 1.0 - float(problem.objective.carry)
    else:
        coverage = 0.99
    K = problem.cap.slope_vol
    run = {"first_best": (rules["first_best"], ()), "capped": (rules["capped"], ()), "rule": (rules["rule"], ())}
    for tool, (r, hist) in emir_rules(rules["rule"]).items():
        run[f"rule_{tool}"] = (r, hist)
    paths, metrics = {}, {}
    if progress is not None:
        progress(0, len(run), "backtest")
    for i, (key, (r, hist)) in enumerate(run.items(), start=1):
        m, over = run_rule(r, data, hist, cap_vol=K)
        paths[key] = m
        metrics[key] = backtest_metrics(r.name, m, data.loss, coverage, over)
        if progress is not None:
            progress(i, len(run), "backtest")
    v = data.vol
    fin = np.isfinite(v)
    return {"data": data, "paths": paths, "metrics": metrics, "coverage": coverage,
            "above_grid": float(np.mean(v[fin] > problem.vol[-1])), "names": {k: r.name for k, (r, _) in run.items()}}


#: Units of every per-state column (states.csv, audit.json's state_columns, ``Audit.to_frame().attrs``).
STATE_UNITS = {
    "vol_daily": "daily volatility sigma, decimal", "vol_annual": "annualised volatility sqrt(252) sigma, decimal",
    "r_daily_variance": "variance of daily returns r = sigma^2", "weight": "probability mass of the state",
    "margin_ratio": "the rule's margin M = g(r), margin ratio per unit notional",
    "first_best_margin_ratio": "first-best M_fb (34), margin ratio", "capped_margin_ratio": "capped optimum g* (41), margin ratio",
    "slope_dm_dr": "right slope dM/dr (direction a sale pushes r), margin ratio per unit daily variance",
    "slope_dm_dr_left": "left slope dM/dr, margin ratio per unit daily variance",
    "slope_dm_dvol": "2 sigma dM/dr, margin ratio per unit daily vol", "slope_dm_dvol_annual": "margin ratio per unit annualised vol",
    "capped_slope_dm_dvol": "g*'s slope, margin ratio per unit daily vol",
    "cap_dm_dr": "cap (16) (2 alpha + kappa)/(alpha^2 c_X c_Gamma), margin ratio per unit daily variance",
    "cap_dm_dvol": "the cap times 2 sigma, margin ratio per unit daily vol (K of (18) at the envelope)",
    "slope_over_cap": "slope_dm_dr / cap_dm_dr, dimensionless (> 1: manipulable)", "exceeds_cap": "slope over the cap (True/False)",
    "last_return_abs": "|R_t| used, decimal daily return (the envelope sqrt(r/w) unless given)",
    "c_gamma_per_price": "c_Gamma = dr/dP_t, daily variance per unit price (Lemma 1: 2 w |R_t|)",
    "c_x_adv_per_margin": "c_X^eff, ADV units per unit margin ratio", "G": "feedback gain alpha c_X c_g c_Gamma (14), dimensionless",
    "A_price_per_adv2": "A = alpha (G - 2) - kappa of (58), price units per ADV^2", "B_price_per_adv": "B = 2 tau + rho M of (58), price units per ADV",
    "q_min_adv": "q_min = B/A of (58), ADV units (empty: no profitable size)", "trigger_adv": "trigger q, ADV units",
    "distortion_bps": "alpha q, bp of the price", "margin_after_ratio": "M + c_g c_Gamma alpha q, margin ratio after the trigger",
    "bound15_price_x_adv": "(15) (alpha (G - 2) - kappa) q^2, price units x ADV",
    "bound58_price_x_adv": "(58) A q^2 - B q, price units x ADV", "profit_bps_64": "(64) (G - 2) delta_bps, bp of trigger notional",
    "profit_bps": "1e4 (A q - B), bp of trigger notional", "roi_pct": "profit_bps / (100 margin_after_ratio), percent of posted margin",
    "profitable": "gain condition of Theorem 1 and q_min < q (True/False)",
    "c_eff_strategic": "equilibrium c_X^eff (63), ADV per unit margin ratio", "c_eff_naive": "c_X^eff without anticipation, ADV per unit margin ratio",
    "strategic_outcome": "no manipulation | manipulation | mixed", "manipulation_probability": "probability pi of the trigger in equilibrium",
    "G_strategic": "(14) with c_X^eff", "exceeds_cap_strategic": "slope over the cap with c_X^eff (True/False)",
    "trim_jump_margin_ratio": "Proposition 2 jump g(r) - g(r - w c^2), margin ratio", "trim_gain_per_unit_trigger": "alpha c_eff x that jump",
    "winsor_flat": "the envelope |R_t| exceeds c: a winsorised input is flat in P_t (True/False)",
    # portfolio markets ([portfolio], Section 5); the single-contract columns above are then those of the equivalent
    # contract along Theorem 3's direction b = B/||B||_1 (alpha = b'Ab, c_X = psi s_f/(sqrt(w) b'Ab), kappa ||b||^2)
    "c_r_per_price": "c_r = dr/dP_t along d, daily variance per unit price (2 sqrt(r) s_f at the envelope)",
    "H_t_price_per_adv2": "H_t (29) = b'Ab (-(c_g c_r) d'AB - 2), b = B/||B||_1: E[Pi] ~ q^2 H_t (Theorem 3), price units per ADV^2",
    "H_t_kappa_price_per_adv2": "H_t - kappa ||b||_2^2: Theorem 3's trip with the inventory penalty (11), price units per ADV^2",
    "theorem3_holds": "Theorem 3's sufficient condition H_t > 0 (True/False)",
    "cap88_dm_dvol": "the cap (88) (2 + kappa ||B||^2/B'AB)/(s_f psi) at this state, margin ratio per unit daily vol (empty: psi = 0)",
    "exceeds_cap88": "the rule's slope over the cap (88) (True/False)",
    "cap_all_dm_dvol": "two-period cap over every trade direction 1/(s_f Phi), margin ratio per unit daily vol (empty: none)",
    "exceeds_cap_all": "some two-period round trip profits at first order (the trigger-harvest trip of 5.6) (True/False)",
    "separated_coef_price_per_adv2": "first-order E[Pi]/q^2 of the trigger-harvest trip a* (||a||_1 = q), price units per ADV^2",
    "first_best_H_t_price_per_adv2": "H_t (29) along the first-best M_fb, price units per ADV^2",
    "capped_H_t_price_per_adv2": "H_t (29) along the capped optimum g*, price units per ADV^2",
}
