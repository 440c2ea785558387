"""Backtest metrics on tiny hand-made series with known answers; EMIR look-back inputs; alignment of losses."""

from __future__ import annotations

import math

import numpy as np
import pytest

from margin_design.audit import backtest_metrics, kupiec_pof, largest_increases, load_rule, prepare_backtest, run_rule
from margin_design.audit.backtest import emir_rules, lookback_variance, stressed_variance
from margin_design.calibration.data import read_price_csv
from margin_design.errors import InputError

EXACT = 1e-12

# Hand-made path: margins and the forward losses they must cover.
MARGINS = np.array([0.10, 0.12, 0.09, 0.15, 0.15, 0.18])
LOSSES = np.array([0.05, 0.13, 0.02, 0.16, 0.00, 0.10])   # breaches on days 1 (0.13 > 0.12) and 3 (0.16 > 0.15)


def test_kupiec_by_hand():
    # x = 2 breaches in n = 6 days against p = 1%:
    # LR = -2 [4 ln 0.99 + 2 ln 0.01] + 2 [4 ln(4/6) + 2 ln(2/6)]
    lr, p = kupiec_pof(2, 6, 0.99)
    expected = -2 * (4 * math.log(0.99) + 2 * math.log(0.01)) + 2 * (4 * math.log(4 / 6) + 2 * math.log(2 / 6))
    assert lr == pytest.approx(expected, rel=EXACT)
    assert p == pytest.approx(math.erfc(math.sqrt(expected / 2)), rel=1e-10)   # chi^2(1) survival = erfc(sqrt(x/2))
    # no breach in 100 days at 1%: LR = -2 * 100 ln 0.99 = 2.0100...
    lr0, _ = kupiec_pof(0, 100, 0.99)
    assert lr0 == pytest.approx(-200 * math.log(0.99), rel=EXACT)
    # exactly the target rate: LR = 0, p = 1
    lr1, p1 = kupiec_pof(1, 100, 0.99)
    assert lr1 == pytest.approx(0.0, abs=1e-12) and p1 == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(InputError, match="breaches <= n"):
        kupiec_pof(7, 6, 0.99)


def test_largest_increases_by_hand():
    one = largest_increases(MARGINS, 1)
    # 1-day ratios 1.2, 0.75, 1.6667, 1.0, 1.2 -> +66.7% from day 2; differences 0.02, -0.03, 0.06, 0, 0.03 -> +0.06 from day 2
    assert one["relative"] == pytest.approx(0.15 / 0.09 - 1, rel=EXACT) and one["relative_at"] == 2
    assert one["absolute"] == pytest.approx(0.06, rel=EXACT) and one["absolute_at"] == 2
    five = largest_increases(MARGINS, 5)
    assert five["relative"] == pytest.approx(0.8, rel=EXACT) and five["absolute"] == pytest.approx(0.08, rel=EXACT)
    assert largest_increases(MARGINS, 30)["relative"] is None   # no 30-day pair in a 6-day path


def test_backtest_metrics_by_hand():
    over = np.array([True, False, False, True, False, False])
    m = backtest_metrics("hand", MARGINS, LOSSES, 0.99, over)
    assert (m.days, m.breaches) == (6, 2)
    assert m.breach_rate == pytest.approx(2 / 6, rel=EXACT) and m.target_rate == pytest.approx(0.01, rel=EXACT)
    assert m.mean_margin == pytest.approx(0.79 / 6, rel=EXACT)
    assert m.peak_to_trough == pytest.approx(0.18 / 0.09, rel=EXACT)
    assert m.share_over_cap == pytest.approx(2 / 6, rel=EXACT)
    assert m.kupiec_lr == pytest.approx(kupiec_pof(2, 6, 0.99)[0], rel=EXACT)
    d = m.to_dict(dates=[f"2020-01-0{i + 1}" for i in range(6)])
    assert d["largest_increases"]["1"]["relative_from_date"] == "2020-01-03"
    # a NaN margin (no risk input yet) is not scored; a NaN loss (end of sample) neither
    m2 = backtest_metrics("nan", np.r_[np.nan, MARGINS[1:]], np.r_[LOSSES[:-1], np.nan], 0.99)
    assert (m2.days, m2.breaches) == (4, 2)


def test_lookback_inputs_by_hand():
    ret = np.array([0.01, -0.02, 0.03, 0.0])
    lb = lookback_variance(ret, lookback=2, minimum=2)
    # mean of the last 2 squared returns from index 1 on: (1e-4 + 4e-4)/2, (4e-4 + 9e-4)/2, (9e-4 + 0)/2
    assert np.isnan(lb[0]) and np.allclose(lb[1:], [2.5e-4, 6.5e-4, 4.5e-4], rtol=EXACT)
    r = np.array([np.nan, 1.0, 3.0, 2.0, 0.5, 0.4])
    assert np.allclose(stressed_variance(r, lookback=3, minimum=1)[1:], [1.0, 3.0, 3.0, 3.0, 2.0], rtol=EXACT)


def test_prepare_backtest_alignment_and_emir_tools(tmp_path):
    rng = np.random.default_rng(0)
    n = 400
    close = 100 * np.exp(np.cumsum(0.01 * rng.standard_normal(n)))
    lines = ["date,close"] + [f"{np.datetime64('2001-01-01') + i},{float(c)!r}" for i, c in enumerate(close)]
    p = tmp_path / "prices.csv"
    p.write_text("\n".join(lines) + "\n")
    d = prepare_backtest(read_price_csv(p), window=20, horizon_days=2)
    assert d.loss[10] == pytest.approx(-(close[12] / close[10] - 1), rel=EXACT)   # loss over (t, t+h], long position
    assert np.all(np.isnan(d.loss[-2:])) and np.all(np.isnan(d.r[:20]))
    rule = load_rule("2.3263478740408408*sqrt(2*r)")
    m, over = run_rule(rule, d, cap_vol=2 / 0.9)
    assert np.all(np.isnan(m[:20])) and np.allclose(m[20:], 2.3263478740408408 * np.sqrt(2 * d.r[20:]), rtol=EXACT)
    assert over[20:].all()   # the first-best's slope 3.29 > 2.22 on every day
    tools = emir_rules(rule)
    fl, _ = run_rule(tools["floor"][0], d, tools["floor"][1])
    ok = np.isfinite(fl)
    assert np.all(fl[ok] >= m[ok] - EXACT) and np.isnan(fl[:250]).all()   # the floor needs a year of look-back
    st, _ = run_rule(tools["stressed"][0], d, tools["stressed"][1])
    ok = np.isfinite(st)
    expected = 2.3263478740408408 * np.sqrt(2 * (0.75 * d.r + 0.25 * d.stressed_r))
    assert np.allclose(st[ok], expected[ok], rtol=EXACT)
    bu, _ = run_rule(tools["buffer"][0], d)
    calm = d.vol < 0.02
    assert np.allclose(bu[calm & np.isfinite(bu)], 1.25 * m[calm & np.isfinite(bu)], rtol=EXACT)
