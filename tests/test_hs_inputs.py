"""Historical-simulation VaR / ES as [cap] inputs (issue 12, section 4; Nicolai 2026, Section 4.2.3).

The input is r = (Gamma / k)^2 with Gamma the n-th largest (VaR) or the mean of the n largest (ES) of the window's
one-day losses L_j = -R_j, n = ceil(m (1 - p)), k = z_p or phi(z_p)/(1 - p) (calibration/risk_inputs.py). Checked
here: the values against NumPy's sort and the portfolio functional with h = (1,) (a second implementation path);
the one-sided JAX sensitivity against finite differences in the tail, outside it and across the crossing; the cap
factor (design/cap.py) against a brute-force maximisation over random windows with the same r; the factor's
finite-trade bound; a design solved at the HS cap (certificate) and audited; the config errors.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from margin_design.audit import AuditMarket, AuditOptions, Fundamentals, Population, SimState, build_audit, load_rule, local_analysis, simulate_trades
from margin_design.audit.build import capped_rule
from margin_design.calibration.portfolio_risk import PortfolioRisk, portfolio_risk_input
from margin_design.calibration.risk_inputs import (
    InputSpec,
    hs_tail,
    input_sensitivity,
    input_values,
    state_window,
    window_sensitivity,
)
from margin_design.calibration.tail import tail_count
from margin_design.cli import main
from margin_design.design.cap import CapSpec
from margin_design.design.config import problem_from_dict
from margin_design.solvers import solve

from conftest import BASE_CONFIG

import tomllib

#: Closed forms evaluated in float64 (sorting and squaring only).
EXACT = 1e-12
#: One-sided JAX derivative (extrapolated to h -> 0+) against a closed form.
AD_RTOL = 1e-8
#: Forward finite differences of a piecewise-quadratic function with step FD_STEP: error ~ step / Gamma.
FD_STEP = 1e-7
FD_RTOL = 1e-4
Z99 = float(norm.ppf(0.99))
K_ES99 = float(norm.pdf(Z99) / 0.01)


def _prices(returns) -> np.ndarray:
    R = np.atleast_2d(np.asarray(returns, dtype=float))
    return 1.0 + np.concatenate([np.zeros((R.shape[0], 1)), np.cumsum(R, axis=1)], axis=1)


def _r_numpy(returns, level: float, measure: str) -> np.ndarray:
    """Independent NumPy value of the input: sort the losses, take the n-th largest or the mean of the n largest."""
    L = -np.atleast_2d(np.asarray(returns, dtype=float))
    n = max(1, math.ceil(L.shape[1] * (1 - level) - 1e-9))
    s = np.sort(L, axis=1)[:, ::-1]
    gamma = s[:, n - 1] if measure == "var" else s[:, :n].mean(axis=1)
    k = float(norm.ppf(level)) if measure == "var" else float(norm.pdf(norm.ppf(level)) / (1 - level))
    return (np.maximum(gamma, 0.0) / k) ** 2


def test_tail_count_and_factors_at_the_reference_window():
    """m = 250, p = 0.99: n = ceil(2.5) = 3; VaR factor z_0.99 = 2.3263, ES factor 3 phi(z)/0.01 = 3 x 2.6652."""
    assert tail_count(250, 0.99) == 3 and tail_count(20, 0.99) == 1 and tail_count(500, 0.975) == 13
    assert CapSpec(input="hs_var", window=250, level=0.99).input_factor == pytest.approx(Z99, rel=EXACT)
    assert CapSpec(input="hs_es", window=250, level=0.99).input_factor == pytest.approx(3 * K_ES99, rel=EXACT)
    assert 3 * K_ES99 == pytest.approx(7.9956, abs=5e-5)
    # the cap factor is 1/sqrt(w) of InputSpec.weight (one definition of the quadratic term r + 2 sqrt(w r) D + w D^2)
    for kind in ("hs_var", "hs_es"):
        assert 1 / math.sqrt(InputSpec(kind, 250, level=0.99).weight) == pytest.approx(CapSpec(input=kind, window=250, level=0.99).input_factor, rel=EXACT)


def test_last_return_alone_in_the_tail_closed_form():
    """A window whose tail is the last return alone (n = 1: m = 20, p = 0.99): VaR = ES = that loss, r = (loss / k)^2."""
    rng = np.random.default_rng(0)
    R = 0.005 * rng.standard_normal(20)
    R[-1] = -0.04                                   # the largest loss, 4%
    p = _prices(R)
    assert float(hs_tail(p, 0.99, "var")[0]) == pytest.approx(0.04, rel=EXACT)
    assert float(hs_tail(p, 0.99, "es")[0]) == pytest.approx(0.04, rel=EXACT)
    assert float(input_values(InputSpec("hs_var", 20, level=0.99), p)[0]) == pytest.approx((0.04 / Z99) ** 2, rel=EXACT)
    assert float(input_values(InputSpec("hs_es", 20, level=0.99), p)[0]) == pytest.approx((0.04 / K_ES99) ** 2, rel=EXACT)


@pytest.mark.parametrize("kind", ["hs_var", "hs_es"])
def test_values_agree_with_numpy_and_the_portfolio_functional(kind):
    """The same r from NumPy's sort and from calibration/portfolio_risk.py with one contract (h = (1,))."""
    rng = np.random.default_rng(1)
    R = 0.01 * rng.standard_t(4, size=(6, 250))
    spec = InputSpec(kind, 250, level=0.99)
    r = input_values(spec, _prices(R))
    assert np.allclose(r, _r_numpy(R, 0.99, kind[3:]), rtol=EXACT, atol=0)
    port = portfolio_risk_input(PortfolioRisk(kind, (1.0,), window=250, level=0.99), _prices(R)[..., None])
    assert np.allclose(r, port, rtol=EXACT, atol=0)


@pytest.mark.parametrize("kind", ["hs_var", "hs_es"])
def test_one_sided_sensitivity_in_and_out_of_the_tail_matches_finite_differences(kind):
    """In the tail D_- = 2 sqrt(r) b / k (b = 1 VaR, 1/n ES) and D_+ = -D_-; strictly outside the tail both are 0;
    the input has no jumps. Each checked against forward finite differences of the input itself."""
    m, level = 40, 0.95                       # n = 2
    spec = InputSpec(kind, m, level=level)
    n, k = spec.tail, spec.value_per_vol
    b = 1.0 if kind == "hs_var" else 1.0 / n
    rng = np.random.default_rng(2)
    R = 0.01 * rng.standard_normal((3, m))
    R[:, :-1] = np.clip(R[:, :-1], -0.02, 0.02)
    R[:, -3] = -0.03                          # a fixed larger loss: with n = 2 the last loss below is the VaR
    inside = R.copy()
    inside[:, -1] = -0.025                    # the 2nd largest loss: the active order statistic, inside the ES tail
    outside = R.copy()
    outside[:, -1] = +0.01                    # a gain: far outside the tail
    for rets, in_tail in ((inside, True), (outside, False)):
        P = _prices(rets)
        r = input_values(spec, P)
        s = window_sensitivity(spec, P)
        bumped_down, bumped_up = P.copy(), P.copy()
        bumped_down[:, -1] -= FD_STEP
        bumped_up[:, -1] += FD_STEP
        fd_down = (input_values(spec, bumped_down) - r) / FD_STEP
        fd_up = (input_values(spec, bumped_up) - r) / FD_STEP
        expect = 2 * np.sqrt(r) * b / k if in_tail else np.zeros_like(r)
        assert np.allclose(s.down, expect, rtol=AD_RTOL, atol=0)
        assert np.allclose(s.up, -expect, rtol=AD_RTOL, atol=0)
        assert np.allclose(fd_down, expect, rtol=FD_RTOL, atol=1e-15)
        assert np.allclose(fd_up, -expect, rtol=FD_RTOL, atol=1e-15)
        assert np.all(s.jump_up == 0) and np.all(s.jump_down == 0)
        assert np.allclose(s.c_gamma, expect, rtol=AD_RTOL, atol=0)


@pytest.mark.parametrize("kind", ["hs_var", "hs_es"])
def test_crossing_into_the_tail(kind):
    """The last loss eps below the tail boundary (the n-th largest loss v): D_- = 0 there (a small push cannot reach
    the tail), on the boundary D_- is the full in-tail slope and D_+ = 0, and a push of Delta > eps raises Gamma by
    exactly b (Delta - eps) -- the integral of the one-sided slopes along the path."""
    m, level = 40, 0.95
    spec = InputSpec(kind, m, level=level)
    n, k = spec.tail, spec.value_per_vol
    b = 1.0 if kind == "hs_var" else 1.0 / n
    R = np.where(np.arange(m) % 2 == 0, 0.004, -0.004)
    R[-4], R[-3] = -0.03, -0.02               # the two largest losses; v = 0.02 is the 2nd (n = 2)
    eps = 0.001
    R[-1] = -(0.02 - eps)                     # the last loss just below the tail boundary
    P = _prices(R)
    g0 = 0.02 if kind == "hs_var" else 0.025  # VaR = 2nd largest; ES = mean of 0.03 and 0.02
    r0 = float(input_values(spec, P)[0])
    assert r0 == pytest.approx((g0 / k) ** 2, rel=EXACT)
    s = window_sensitivity(spec, P)
    assert float(s.down[0]) == 0.0 and float(s.up[0]) == 0.0
    for delta in (0.5 * eps, 2 * eps, 5 * eps):
        moved = P.copy()
        moved[:, -1] -= delta
        expect = ((g0 + b * max(delta - eps, 0.0)) / k) ** 2
        assert float(input_values(spec, moved)[0]) == pytest.approx(expect, rel=EXACT)
    # on the boundary itself: the one-sided slopes differ (a kink, no jump)
    edge = P.copy()
    edge[:, -1] -= eps
    s = window_sensitivity(spec, edge)
    assert float(s.down[0]) == pytest.approx(2 * g0 * b / k**2, rel=AD_RTOL)
    assert float(s.up[0]) == 0.0 and float(s.jump_down[0]) == 0.0 and float(s.jump_up[0]) == 0.0


@pytest.mark.parametrize("kind,m,level", [("hs_var", 40, 0.95), ("hs_es", 40, 0.95), ("hs_var", 250, 0.99), ("hs_es", 250, 0.99)])
def test_cap_factor_against_brute_force_over_windows_with_the_same_r(kind, m, level):
    """max over windows with input r of c_Gamma / (2 sqrt r) equals 1 / factor of design/cap.py, and no window
    exceeds it; the finite-trade bound r(P_t - D) <= r + 2 sqrt(r) D / f + (D / f)^2 holds on every window."""
    r0 = 1e-4
    spec = InputSpec(kind, m, level=level)
    factor = CapSpec(input=kind, window=m, level=level).input_factor
    rng = np.random.default_rng(4)
    R = rng.standard_t(3, size=(600, m))
    R[:, -1] *= rng.uniform(0.0, 4.0, size=600)        # last returns from small to deep in the tail
    n = spec.tail
    others = np.sort(-R[::3, :-1], axis=1)[:, ::-1]      # every third window: the last loss between the (n-1)-th
    upper = others[:, n - 2] if n > 1 else others[:, 0] + 2.0   # and the n-th largest other loss, i.e. the VaR itself
    R[::3, -1] = -0.5 * (upper + others[:, n - 1])
    P0 = _prices(R)
    r = input_values(spec, P0)
    keep = r > 0
    R = R[keep] * np.sqrt(r0 / r[keep])[:, None]      # the tail statistic is homogeneous of degree 1 in the returns
    P = _prices(R)
    assert np.allclose(input_values(spec, P), r0, rtol=1e-10)
    ratio = window_sensitivity(spec, P).c_gamma / (2 * math.sqrt(r0))
    assert float(ratio.max()) == pytest.approx(1 / factor, rel=AD_RTOL)
    assert np.all(ratio <= (1 / factor) * (1 + AD_RTOL))
    assert np.sum(ratio > 0.5 / factor) > 50            # many windows attain it (every window with the last loss in the tail)
    for delta in (1e-4, 1e-3, 1e-2):
        moved = P.copy()
        moved[:, -1] -= delta
        bound = r0 + 2 * math.sqrt(r0) * delta / factor + (delta / factor) ** 2
        assert np.all(input_values(spec, moved) <= bound * (1 + 1e-12))
    # the envelope window (state_window) attains the bound, and input_sensitivity reports it
    c, L = input_sensitivity(spec, np.array([r0]))
    assert float(c[0]) == pytest.approx(2 * math.sqrt(r0) / factor, rel=AD_RTOL)
    assert float(L[0]) == pytest.approx(math.sqrt(r0) * factor, rel=EXACT)   # the VaR, or n ES (the whole tail in the last loss)


def test_state_window_below_the_envelope():
    """A given |R_t| below the VaR leaves the last loss outside the tail (c = 0); for ES it stays in the tail."""
    r = np.array([1e-4, 4e-4])
    for kind, zero in (("hs_var", True), ("hs_es", False)):
        spec = InputSpec(kind, 250, level=0.99)
        P, _, L = state_window(spec, r, 0.005)
        assert np.allclose(input_values(spec, P), r, rtol=1e-12) and np.all(L == 0.005)
        c, _ = input_sensitivity(spec, r, 0.005)
        expect = 0.0 if zero else 2 * np.sqrt(r) / CapSpec(input=kind, window=250, level=0.99).input_factor
        assert np.allclose(c, expect, rtol=AD_RTOL, atol=0)


@pytest.mark.parametrize("kind", ["hs_var", "hs_es"])
def test_simulated_states_move_as_the_closed_form_and_stay_stationary(kind):
    """Envelope: a sale of q raises Gamma by alpha q b exactly; spread: the benchmark input (and so the margin)
    does not move when nobody trades, with Rademacher fundamentals of the state's step (T <= m - n)."""
    r, m = 1e-4, 50
    spec = InputSpec(kind, m, level=0.95)
    f = CapSpec(input=kind, window=m, level=0.95).input_factor
    env = SimState.envelope(r, m, kind, 0.95)
    assert env.r == pytest.approx(r, rel=1e-12)
    moves = np.array([0.0005, 0.002])
    assert np.allclose(env.input_after(-moves), (math.sqrt(r) + moves / f) ** 2, rtol=1e-12)
    assert env.sensitivity_down() == pytest.approx(2 * math.sqrt(r) / f, rel=AD_RTOL)
    sp = SimState.spread(r, m, 0.5, kind, 0.95)
    assert sp.r == pytest.approx(r, rel=1e-12) and sp.step > 0
    rule = load_rule("3*sigma")
    pop = Population.calibrated(50, float(rule.margin(np.asarray(r))), 4.5, seed=0)
    T = 4
    _, tr = simulate_trades(rule, pop, sp, AuditMarket(0.2, 4.5), np.zeros((1, T + 1)), Fundamentals.rademacher(sp.step, T), trace=True)
    assert np.allclose(tr["margin"], 3 * math.sqrt(r), rtol=1e-12)
    assert spec.tail == 3


def _config(kind: str, c_eff: float = 10.0, window: int = 50, level: float = 0.95) -> str:
    text = BASE_CONFIG.replace("c_eff = 4.5", f"c_eff = {c_eff!r}")
    return text.replace('input = "variance"', f'input = "{kind}"\nwindow = {window}\nlevel = {level!r}')


@pytest.mark.parametrize("kind,c_eff", [("hs_var", 10.0), ("hs_es", 25.0)])
def test_design_at_the_hs_cap_is_certified_and_its_audit_passes(kind, c_eff):
    """A large c_eff makes the HS cap bind (m = 50, p = 0.95: factors z = 1.645 and 3 x 2.063 = 6.19): the exact solve saturates at K = factor (2 alpha)/(alpha^2 c_eff), with a
    certificate; the audit's local analysis reads c_Gamma = 2 sqrt(r)/factor and finds the optimum on the cap
    (never above it) while the first-best (37) is over it."""
    problem = problem_from_dict(tomllib.loads(_config(kind, c_eff)))
    factor = problem.cap.input_factor
    K = factor * 2 * 0.2 / (0.2**2 * c_eff)
    assert problem.cap.slope_vol == pytest.approx(K, rel=EXACT)
    sched = solve(problem, method="exact")
    assert sched.certificate.ok
    slope = np.diff(sched.schedule) / np.diff(problem.vol)
    assert np.all(slope <= K * (1 + 1e-9)) and np.max(slope) == pytest.approx(K, rel=1e-9)
    spec = InputSpec(kind, 50, level=0.95)
    la = local_analysis(load_rule(f"{Z99!r}*sqrt(2*r)"), problem.vol, AuditMarket(0.2, c_eff), spec)
    assert np.allclose(la.c_gamma, 2 * problem.vol / factor, rtol=AD_RTOL)
    assert np.sqrt(2) * Z99 > K and np.all(la.slope_ratio > 1)      # the first-best (37), dM/dsigma = sqrt(2) z_0.99
    at_cap = local_analysis(capped_rule(sched), problem.vol[1:-1], AuditMarket(0.2, c_eff), spec)
    assert np.allclose(at_cap.slope_ratio, 1.0, rtol=1e-6) and np.allclose(at_cap.G, 2.0, rtol=1e-6)   # on (16), G = 2


def test_audit_command_runs_on_an_hs_design(tmp_path, capsys):
    """`margin-design audit` on a design whose [cap] input is hs_es: the simulation uses the HS input, the capped
    optimum is not manipulable by (-q, +q) and the first-best is (Lemma 5's bound holds)."""
    cfg = tmp_path / "hs.toml"
    cfg.write_text(_config("hs_es", 25.0))
    assert main(["solve", str(cfg), "--out", str(tmp_path / "sol"), "-q"]) == 0
    assert main(["audit", "--market", str(cfg), str(tmp_path / "sol"), "--out", str(tmp_path / "aud"), "--paths", "400", "--max-horizon", "2",
                 "--json"]) == 0
    import json

    out = json.loads(capsys.readouterr().out)
    text = json.dumps(out)
    assert "hs_es" in text
    audit = build_audit(load_rule(str(tmp_path / "sol")), cfg, AuditOptions(paths=400, max_horizon=2))
    sim = audit.simulation
    assert sim["settings"]["input"] == "hs_es" and sim["settings"]["window"] == 50
    assert sim["checks"]["a_lemma5_bound_holds"] and sim["checks"]["b_first_best_manipulable"] and sim["checks"]["c_capped_not_manipulable"]


@pytest.mark.parametrize(
    "cap_lines,match",
    [
        ('input = "hs_var"\nlevel = 0.99', r"missing required key cap\.window \(input = 'hs_var'\)"),
        ('input = "hs_es"\nwindow = 250', r"missing required key cap\.level \(input = 'hs_es'"),
        ('input = "variance"\nlevel = 0.99', r"cap\.level = 0\.99 applies only to cap\.input = 'hs_var' or 'hs_es', not 'variance'"),
        ('input = "ewma"\nlambda = 0.94\nwindow = 20', r"cap\.window = 20 applies only to cap\.input = 'realized_variance', 'hs_var' or 'hs_es'"),
        ('input = "hs_var"\nwindow = 250\nlevel = 99.0', r"cap\.level = 99\.0 must be a confidence level in \(0\.5, 1\)"),
        ('input = "hs_var"\nwindow = 250\nlevel = 0.4', r"cap\.level = 0\.4 must be a confidence level"),
        ('input = "hs_var"\nwindow = 0\nlevel = 0.99', r"cap\.window = 0 must be an integer >= 1"),
    ],
)
def test_config_errors_are_one_sentence(tmp_path, capsys, cap_lines, match):
    import re

    cfg = tmp_path / "c.toml"
    cfg.write_text(BASE_CONFIG.replace('input = "variance"', cap_lines))
    assert main(["solve", str(cfg), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert re.search(match, err), err
    assert len(err.splitlines()) == 1 and not (tmp_path / "out").exists()


def test_backtest_reads_the_hs_input_from_log_closes(tmp_path):
    """Day t's input is the HS VaR of the m log-return losses up to t, in variance units (NumPy sort as reference);
    NaN before m returns exist."""
    from margin_design.audit.backtest import prepare_backtest
    from margin_design.calibration.data import read_price_csv

    rng = np.random.default_rng(5)
    n, m = 320, 50
    close = 100 * np.exp(np.cumsum(0.01 * rng.standard_t(4, size=n)))
    p = tmp_path / "prices.csv"
    p.write_text("date,close\n" + "".join(f"{np.datetime64('2001-01-01') + i},{float(c)!r}\n" for i, c in enumerate(close)))
    d = prepare_backtest(read_price_csv(p), risk_input="hs_var", window=m, horizon_days=2, level=0.95)
    assert np.all(np.isnan(d.r[:m])) and np.all(np.isfinite(d.r[m:]))
    logret = np.diff(np.log(close))
    for t in (m, m + 7, n - 1):
        assert d.r[t] == pytest.approx(float(_r_numpy(logret[t - m : t], 0.95, "var")[0]), rel=EXACT)
    assert "historical-simulation VaR at 0.95" in d.describe()


def test_trimming_is_refused_for_an_hs_input():
    from margin_design.audit import trimming_jumps
    from margin_design.errors import InputError

    with pytest.raises(InputError, match="--trim applies to realised-variance inputs .* not to hs_var"):
        trimming_jumps(load_rule("3*sigma"), np.array([0.01]), 0.02, InputSpec("hs_var", 250), AuditMarket(0.2, 4.5))


@pytest.mark.parametrize("kind", ["hs_var", "hs_es"])
def test_single_contract_factor_equals_the_portfolio_worst_case_for_one_contract(kind):
    """A second derivation: the portfolio functional's worst-case trigger factor s_f (its own worst-case window and
    autodiff, calibration/portfolio_risk.py) for h = (1,) is 1 / the single-contract cap factor, and d is a sale."""
    from margin_design.calibration.portfolio_risk import trigger_and_sensitivity

    d, s_f, _ = trigger_and_sensitivity(PortfolioRisk(kind, (1.0,), window=250, level=0.99))
    assert 1.0 / s_f == pytest.approx(CapSpec(input=kind, window=250, level=0.99).input_factor, rel=AD_RTOL)
    assert np.allclose(d, [-1.0])


def test_input_spec_of_a_cap_carries_window_and_level():
    """The one conversion from a design's cap to the input the audit and the stress test read."""
    s = InputSpec.of_cap(CapSpec(input="hs_es", window=250, level=0.975))
    assert (s.kind, s.window, s.level, s.tail) == ("hs_es", 250, 0.975, 7)
    assert InputSpec.of_cap(CapSpec(input="variance", window=7)).window == 1
    assert InputSpec.of_cap(CapSpec(input="realized_variance", window=20)).window == 20


def test_simulation_in_chunks_of_paths_equals_one_pass(monkeypatch):
    """Long HS windows are simulated in chunks of paths (audit/simulate.py, SIM_CHUNK_PRICES); every path is independent,
    so the profits equal those of one pass."""
    import margin_design.audit.simulate as sim

    state = SimState.envelope(1e-4, 50, "hs_es", 0.95)
    rule = load_rule("0.004 + 3*sigma")
    pop = Population.calibrated(50, float(rule.margin(np.asarray(state.r))), 4.5, seed=0)
    trades = np.stack([-Q_CHUNK, Q_CHUNK], axis=1)
    fund = Fundamentals.normal(0.01, 1, 300, seed=2)
    one = simulate_trades(rule, pop, state, AuditMarket(0.2, 4.5), trades, fund)
    monkeypatch.setattr(sim, "SIM_CHUNK_PRICES", 5000)     # 3 x 51 prices per path: chunks of 32 paths
    chunked = simulate_trades(rule, pop, state, AuditMarket(0.2, 4.5), trades, fund)
    assert chunked.shape == one.shape == (3, 300)
    np.testing.assert_allclose(chunked, one, rtol=EXACT, atol=1e-18)


Q_CHUNK = np.array([0.0025, 0.01, 0.02])
