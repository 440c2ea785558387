"""Re-levering on unrealised profits (reference 003_0c9d3cf269947ce9.txt; ``calibration/leverage.py``).

Closed forms of the tick model, the guardrails, the real-path simulator as a second method, the seed's claims as
measured, the effective c_eff against a finite-difference solution of the exact forced-sale problem, and the command.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from margin_design.calibration.cap import cap_dm_dvol
from margin_design.calibration.leverage import (
    Guardrails,
    _state_at_end,
    counted_equity_closed_form,
    design_link,
    effective_c_eff,
    forced_sales_exact,
    power_law,
    relever_path,
    seed_claims,
    simulate_path,
    tick_path,
    tick_prices,
)
from margin_design.cli import main
from margin_design.errors import InputError

#: Agreement of two float64 computations of the same recursion (cumprod against a day loop).
EXACT = 1e-12
#: Relative agreement of the linearised c_eff' with the finite-difference slope at dM = 1e-7 (error O(dM)).
FD_TOL = 1e-5


def whole_ticks(tick: float, k: int) -> float:
    """The rise reached by k whole ticks."""
    return (1.0 + tick) ** k - 1.0


# ---------------------------------------------------------------------------------------------- closed forms


@pytest.mark.parametrize("lev,delta", [(1.0, 1.0), (3.0, 1.0), (5.0, 1.0), (3.0, 0.75), (2.0, 0.5), (10.0, 0.3)])
def test_counted_equity_after_k_ticks(lev, delta):
    """K_k = (1 + delta L tick)^k without caps (delta L >= 1), true equity 1 + (K - 1)/delta, exposure L K."""
    tick, k = 0.002, 150
    p = tick_path(lev, tick, whole_ticks(tick, k), Guardrails(delta))
    assert p.ticks == k
    ks = np.arange(k + 1)
    np.testing.assert_allclose(p.counted, counted_equity_closed_form(lev, tick, ks, delta), rtol=EXACT)
    np.testing.assert_allclose(p.true, 1.0 + (p.counted - 1.0) / delta, rtol=EXACT)
    np.testing.assert_allclose(p.exposure, lev * p.counted, rtol=EXACT)
    np.testing.assert_allclose(p.liabilities, lev * p.counted - p.true, rtol=EXACT, atol=EXACT)


def test_power_law_in_the_continuous_limit():
    """K(p) -> p^(delta L) as tick -> 0 at a fixed price: the error falls like the tick (superlinear: delta L > 1)."""
    lev, delta, rise = 3.0, 0.9, 0.5
    errs = []
    for tick in (1e-2, 1e-3, 1e-4):
        k = tick_path(lev, tick, rise, Guardrails(delta)).counted[-1]
        errs.append(abs(k / power_law(1 + rise, lev, delta) - 1))
    assert errs[0] > errs[1] > errs[2]
    assert errs[2] < 2e-4 and errs[1] / errs[2] > 5   # first order in the tick
    # superlinear: the counted equity's log-slope against log price is delta L = 2.7 > 1
    p = tick_path(lev, 1e-4, rise, Guardrails(delta))
    slope = np.diff(np.log(p.counted)) / np.diff(np.log(p.price))
    np.testing.assert_allclose(slope, delta * lev, rtol=2e-4)


def test_exponential_in_leverage_at_a_fixed_rise():
    """At a fixed rise the counted equity is exp(delta L log p): log K is linear in L (second difference 0)."""
    rise = 0.4
    lev = np.arange(1.0, 11.0)
    k = tick_path(lev, 1e-5, rise).counted[:, -1]
    np.testing.assert_allclose(np.log(k), lev * math.log1p(rise), rtol=1e-4)
    assert np.max(np.abs(np.diff(np.log(k), 2))) < 1e-4


def test_discount_acts_through_delta_times_l():
    """The seed's 0.75 x 3 = 2.25x: counted equity with (delta, L) equals (1, delta L); the exposure does not."""
    a = tick_path(3.0, 0.001, 0.4, Guardrails(0.75))
    b = tick_path(2.25, 0.001, 0.4)
    np.testing.assert_allclose(a.counted, b.counted, rtol=EXACT)
    np.testing.assert_allclose(a.exposure / b.exposure, 3.0 / 2.25, rtol=EXACT)


def test_below_delta_l_one_the_account_buys_nothing():
    """delta L < 1: the counted profit never catches up, the units stay L and K = 1 + delta L (p - 1) (linear)."""
    p = tick_path(1.0, 0.001, 0.4, Guardrails(0.6))
    np.testing.assert_allclose(p.exposure, p.price, rtol=EXACT)
    np.testing.assert_allclose(p.counted, 1 + 0.6 * (p.price - 1), rtol=EXACT)


def test_drops():
    """Loss of C0/2: 0.5/exposure (0.5/L at the start); wipe-out: 1/L at every point with delta = 1."""
    p = tick_path(4.0, 0.001, 0.3)
    assert p.half_collateral_drop[0] == pytest.approx(0.5 / 4.0)
    np.testing.assert_allclose(p.half_collateral_drop, 0.5 / p.exposure, rtol=EXACT)
    np.testing.assert_allclose(p.wipeout_drop, 0.25, rtol=1e-12)
    np.testing.assert_allclose(p.equity_to_half_collateral_drop, (p.true - 0.5) / p.exposure, rtol=EXACT)


# ---------------------------------------------------------------------------------------------- what the caps change


@pytest.mark.parametrize("g,kmax", [
    (Guardrails(1.0, account_cap=0.5), 2.0),                                   # 1/(1 - s)
    (Guardrails(1.0, global_cap=0.5), 2.0),                                    # w = 1: the global cap acts per account
    (Guardrails(1.0, global_cap=0.5, venue_share=0.5), 3.0),                   # 1 + s/((1 - s) w)
    (Guardrails(0.8, account_cap=0.6, global_cap=0.5, venue_share=0.25), 2.5),  # the tighter of the two
])
def test_caps_bound_counted_equity(g, kmax):
    """K = min((1 + delta L tick)^k, K_max); after the cap binds the units are fixed: exposure grows like the price,
    true equity linearly in it, and the value at a fixed rise is at most L K_max (1 + rise): linear in L."""
    tick, rise = 0.001, 2.0
    lev = np.array([3.0, 5.0, 8.0])
    p = tick_path(lev, tick, rise, g)
    uncapped = tick_path(lev, tick, rise, Guardrails(g.discount))
    np.testing.assert_allclose(p.counted, np.minimum(uncapped.counted, kmax), rtol=EXACT)
    assert p.counted.max() == pytest.approx(kmax)
    for i in range(lev.size):
        bound = np.nonzero(p.counted[i] >= kmax * (1 - 1e-12))[0][0]
        units = p.exposure[i, bound:] / p.price[bound:]
        np.testing.assert_allclose(units, units[0], rtol=EXACT)
        np.testing.assert_allclose(np.diff(p.true[i, bound:]), units[0] * np.diff(p.price[bound:]), rtol=1e-9)
    assert np.all(p.exposure[:, -1] <= lev * kmax * (1 + rise) * (1 + 1e-12))
    gap = uncapped.exposure[:, -1] / p.exposure[:, -1]
    assert np.all(gap > 1) and np.all(np.diff(gap) > 0)   # what the cap removes grows with L (exponential against linear)


# ---------------------------------------------------------------------------------------------- the real-path simulator


@pytest.mark.parametrize("g", [Guardrails(1.0), Guardrails(0.75), Guardrails(0.3), Guardrails(1.0, account_cap=0.5),
                               Guardrails(0.8, global_cap=0.3, venue_share=0.5)], ids=lambda g: g.describe())
def test_simulator_on_a_rising_path_is_the_tick_model(g):
    """Second method: the day loop with average-cost accounting gives the vectorised tick model on a rising path."""
    prices = tick_prices(0.002, 0.6)
    lev = np.array([1.0, 2.0, 3.0, 5.0])
    sim = simulate_path(tuple(range(prices.size)), prices, lev, g)
    tp = relever_path(prices, lev, g)
    for a, b in ((sim.counted, tp.counted), (sim.true, tp.true), (sim.exposure, tp.exposure)):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    assert not sim.events.any()


def test_margin_call_thresholds():
    """One fall d at L = 4, delta = 1, maintenance half of the initial margin: no call while 1 - L d >= (1 - d)/2,
    i.e. d <= 1/(2L - 1); liquidation above; bankruptcy (bad debt L d - 1) once d > 1/L."""
    lev, m = 4.0, 0.5
    edge = (1 - m) / (lev - m)   # 1 - L d = m (1 - d)
    for d, event in ((edge * 0.999, 0), (edge * 1.001, 2), (0.3, 3)):
        sim = simulate_path(("a", "b"), [1.0, 1.0 - d], lev, maintenance=m)
        assert sim.events[-1] == event
        assert sim.true[-1] == pytest.approx(max(0.0, 1 - lev * d) if event == 3 else 1 - lev * d)
    sim = simulate_path(("a", "b"), [1.0, 0.7], lev)
    assert sim.bad_debt[-1] == pytest.approx(lev * 0.3 - 1)
    sim = simulate_path(("a", "b"), [1.0, 1.0 - edge * 1.5], lev, on_fall="delever")
    assert sim.events[-1] == 1
    assert sim.exposure[-1] == pytest.approx(lev * sim.counted[-1])


def test_sp500_path_runs_and_portfolio_margin_levers_up():
    """On the S&P 500 (arch) the re-levering account reaches a larger exposure than the delta = 0 account."""
    from margin_design.calibration.leverage import load_path

    s = load_path("sp500", "2003-03-01", "2007-10-01")
    full = simulate_path(s.dates, s.close, 3.0, Guardrails(1.0))
    none = simulate_path(s.dates, s.close, 3.0, Guardrails(0.0))
    assert full.exposure.max() > 1.5 * none.exposure.max()
    with pytest.raises(InputError, match="outside the sp500 data"):
        load_path("sp500", "1990-01-01", None)
    with pytest.raises(InputError, match="--path must be one of"):
        load_path("nasdaq")


# ---------------------------------------------------------------------------------------------- the seed's claims


def test_seed_half_collateral_claim():
    """Reference 003: "For example, in the case of a price run-up of 40%, a price drop of less than 4% would be enough
    to eat into half of the original collateral." (L = 3, tick 0.1%, C0 = 1.)

    Measured: the fall whose loss is C0/2 is 0.5/(3 K) with K = 1.003^336 (1 + 3 t_last), t_last the partial last tick:
    6.08% -- more than 4%, so the claim does not hold at 3x. The other reading (true equity down to C0/2) needs
    (K - 0.5)/(3 K) = 27.3%. Under 4% from L = 4 (3.26%)."""
    tick, lev = 0.001, 3.0
    k = math.floor(math.log(1.4) / math.log1p(tick))
    t_last = 1.4 / (1 + tick) ** k - 1
    K = (1 + lev * tick) ** k * (1 + lev * t_last)
    f = tick_path(lev, tick, 0.4).final()
    assert f["half_collateral_drop"] == pytest.approx(0.5 / (lev * K), rel=1e-12)
    assert f["equity_to_half_collateral_drop"] == pytest.approx((K - 0.5) / (lev * K), rel=1e-12)
    assert f["half_collateral_drop"] > 0.04            # the claim fails at 3x ...
    assert tick_path(4.0, tick, 0.4).final()["half_collateral_drop"] < 0.04   # ... and holds at 4x
    claim = seed_claims()[0]
    assert claim["value"] == f["half_collateral_drop"]
    assert claim["verdict"].startswith("does not hold")


def test_seed_debt_and_discount_claims():
    """"for a mere $1 of collateral, a position can take on tens of dollars of debt" (3x): liabilities 2 K with
    K -> p^3, so 10 C0 needs p^3 >= 5 (a 71% rise); "0.75 * 3 = 2.25x" holds for the counted equity."""
    claims = seed_claims()
    debt = claims[1]
    assert debt["value"] == pytest.approx(2 * tick_path(3.0, 0.001, 0.4).counted[-1], rel=1e-12)   # L K - K, delta = 1
    assert debt["value"] < 10    # at the 40% rise of the example the debt is not yet "tens of dollars"
    assert "71%" in debt["computed"]
    assert claims[3]["value"] == pytest.approx(1.0, rel=1e-12)


# ---------------------------------------------------------------------------------------------- the link to the cap


@pytest.mark.parametrize("g,margin,rise", [
    (Guardrails(1.0), 0.2, 0.4),
    (Guardrails(0.75), 0.1, 0.1),
    (Guardrails(0.2), 0.2, 0.3),
    (Guardrails(1.0, account_cap=0.5), 0.2, 0.4),                       # cap binding: delta_m = 0, rho = 1/(1 - s)
    (Guardrails(0.8, global_cap=0.3, venue_share=0.5), 0.2, 0.4),       # global cap binding
], ids=["full", "discount", "small-discount", "account-cap", "global-cap"])
def test_effective_c_eff_against_finite_differences(g, margin, rise):
    """c_eff' = c_eff K / (1 + rho U/K - delta_m alpha c_eff K) is the slope S/dM of the exact forced-sale problem
    (sales at the clearing price, realised profit into cash, caps on counted profit) as dM -> 0."""
    c_eff, alpha = 4.5, 0.02
    st = _state_at_end(tick_path(1.0 / margin, 0.001, rise, g))
    ce = float(effective_c_eff(c_eff, alpha, st["counted"], st["unrealised"], st["marginal_discount"], st["release"]))
    adv_per_c0 = c_eff * margin ** 2      # C0 in ADV units when the binding sector's slope is c_eff at K = 1
    slopes = []
    for dm in (1e-6, 1e-7):
        s = forced_sales_exact(dm, margin=margin, cash=1.0, unrealised=float(st["unrealised"]), impact=alpha * adv_per_c0,
                               guardrails=g)
        slopes.append(adv_per_c0 * s / dm)
    assert slopes[1] == pytest.approx(ce, rel=FD_TOL)
    assert abs(slopes[1] - ce) < abs(slopes[0] - ce) + 1e-9 * ce    # converges as dM shrinks
    # and it is not the paper's fixed-equity slope: re-levering changes it
    assert abs(ce / (c_eff * float(st["counted"])) - 1) > 0.01


def test_effective_c_eff_limits():
    """Full portfolio margin at K = 1, U = 0: c/(1 - alpha c); the loop diverges (inf) once delta alpha c K >= 1 + rho U/K."""
    assert float(effective_c_eff(4.5, 0.1, 1.0, 0.0, 1.0, 0.0)) == pytest.approx(4.5 / (1 - 0.45))
    assert math.isinf(float(effective_c_eff(4.5, 0.2, 1.2, 0.2, 1.0, 0.0)))


def test_design_link_cap_is_the_cap_formula(tmp_path):
    """The cap with re-levering is design/cap.py's K at c_eff' in every state, and at delta = 0 it is looser (c' < c)."""
    from margin_design.design.cap import CapSpec

    vol = np.linspace(0.005, 0.04, 8)
    margin = 0.05 + 1.5 * (vol - 0.005)
    link = design_link(vol, margin, c_eff=4.5, alpha=0.02, rise=0.05, tick=0.001, guardrails=Guardrails(0.5),
                       inventory_penalty=0.01, factor=CapSpec(input="realized_variance", window=20).input_factor)
    for i in range(vol.size):
        spec = CapSpec(alpha=0.02, c_eff=float(link.c_eff_effective[i]), inventory_penalty=0.01, input="realized_variance", window=20)
        assert link.cap_effective[i] == pytest.approx(spec.slope_vol, rel=1e-12)
    assert link.cap == pytest.approx(math.sqrt(20) * cap_dm_dvol(0.02, 4.5, 0.01), rel=1e-12)
    assert np.all(link.c_eff_effective > 4.5)
    loose = design_link(vol, margin, c_eff=4.5, alpha=0.02, rise=0.05, tick=0.001, guardrails=Guardrails(0.0))
    assert np.all(loose.c_eff_effective < 4.5)
    with pytest.raises(InputError, match="no state with a positive margin"):
        design_link(vol, np.zeros_like(vol), c_eff=4.5, alpha=0.02, rise=0.05, tick=0.001)


# ---------------------------------------------------------------------------------------------- the command


def test_command_writes_the_folder_and_json(tmp_path, capsys):
    rule = tmp_path / "rule.csv"
    vol = np.linspace(0.005, 0.04, 8)
    rule.write_text("vol_daily,margin\n" + "".join(f"{v:.6f},{0.05 + 1.5 * (v - 0.005):.6f}\n" for v in vol))
    out = tmp_path / "lev"
    status = main(["leverage", "--leverage", "3", "--tick", "0.001", "--rise", "0.4", "--discount", "0.9", "--account-cap", "0.6",
                   "--path", "sp500", "--start", "2007-01-01", "--end", "2009-12-31", "--schedule", str(rule), "--alpha", "0.02",
                   "--c-eff", "4.5", "--out", str(out), "--json"])
    assert status == 0
    summary = json.loads(capsys.readouterr().out)
    for key in ("ticks", "equity_multiple", "exposure_multiple", "liabilities_multiple", "half_collateral_drop"):
        assert key in summary
    f = tick_path(3.0, 0.001, 0.4, Guardrails(0.9, account_cap=0.6)).final()
    assert summary["equity_multiple"] == f["equity_multiple"]
    assert summary["exposure_multiple"] == f["exposure_multiple"]
    assert summary["real_path"]["as given"]["days"] > 700
    assert summary["design"]["states"] == 8
    names = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert {"leverage.md", "leverage.json", "leverage_path.csv", "leverage_guardrails.csv", "leverage_real_path.csv",
            "leverage_design.csv", "figures/leverage_power.png", "figures/leverage_real_path.png",
            "figures/leverage_design.pdf"} <= names
    header = (out / "leverage_path.csv").read_text().splitlines()[0]
    assert header.startswith("tick,price_p0,counted_equity_c0,true_equity_c0")
    md = (out / "leverage.md").read_text()
    assert "eat into half of the original collateral" in md and "does not hold at 3x" in md


@pytest.mark.parametrize("args,match", [
    (["--leverage", "-3"], "--leverage must be a positive leverage"),
    (["--tick", "0"], "--tick must be"),
    (["--tick", "-0.01"], "--tick must be"),
    (["--discount", "1.5"], "--discount must be"),
    (["--discount", "-0.1"], "--discount must be"),
    (["--account-cap", "0"], r"--account-cap must be a share in \(0, 1\]"),
    (["--global-cap", "1.2"], r"--global-cap must be a share in \(0, 1\]"),
    (["--rise", "nan"], "--rise must be"),
    (["--path", "nasdaq"], "--path must be one of sp500"),
    (["--path", "sp500", "--start", "1980-01-01"], "outside the sp500 data"),
    (["--path", "sp500", "--end", "2030-01-01"], "outside the sp500 data"),
    (["--start", "2005-01-01"], "give --path sp500"),
    (["--on-fall", "panic", "--path", "sp500"], "--on-fall must be one of"),
    (["--schedule", "0.05 + 2*sigma", "--alpha", "0.02"], "is a formula; give --vols"),
    (["--schedule", "0.05 + 2*sigma", "--vols", "10:40:5", "--alpha", "0.02"], "needs --alpha and --c-eff"),
    (["--alpha", "0.02"], "go with --schedule"),
])
def test_bad_input_is_one_sentence_and_status_2(tmp_path, capsys, args, match):
    base = {"--leverage": "3", "--tick": "0.001", "--rise": "0.4"}
    given = dict(zip(args[::2], args[1::2]))
    argv = ["leverage"] + [x for k, v in {**base, **given}.items() for x in (k, v)] + ["--out", str(tmp_path / "o")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("margin-design: error: ")
    import re
    assert re.search(match, err[0]), err[0]
    assert not (tmp_path / "o").exists()


def test_readme_guardrail_table_is_what_the_tool_measures():
    """The README's guardrail table (40% rise, 0.1% ticks, L = 1..5) is the tool's output, cell by cell."""
    from pathlib import Path

    from margin_design.calibration.leverage import guardrail_scenarios

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = text.split("Guardrail table (`leverage.md`", 1)[1].split("\n\n", 2)[1]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in section.splitlines()[2:]]
    scen = guardrail_scenarios(Guardrails())
    fins = [tick_path(np.arange(1.0, 6.0), 0.001, 0.4, g).final() for _, g in scen]
    assert len(rows) == 5
    for i, row in enumerate(rows):
        assert row[0] == f"{i + 1}"
        assert row[1:5] == [f"{f['exposure_multiple'][i]:.3f}" for f in fins]
        assert row[5:9] == [f"{100 * f['half_collateral_drop'][i]:.2f}%" for f in fins]
