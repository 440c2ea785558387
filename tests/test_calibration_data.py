"""Design inputs from real data (the S&P 500 series shipped with arch) and the design config they make."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from margin_design.calibration.data import (
    MIN_SHOCK_OBSERVATIONS,
    ObjectiveSettings,
    average_daily_value,
    calibrate_from_prices,
    daily_log_returns,
    ewma_seed_length,
    ewma_variance,
    grid_points,
    load_sp500,
    read_price_csv,
    realized_variance,
    risk_input_series,
    select_window,
    standardized_losses,
    state_weights,
    write_design_config,
)
from margin_design.errors import InputError

#: Float tolerance of identities.
IDENTITY_RTOL = 1e-12
#: Accumulated rounding of 40 EWMA steps.
UNROLL_RTOL = 1e-10
#: The grid ends are vol quantiles rounded to 4 significant digits (relative error <= 5e-4).
GRID_ROUNDING_RTOL = 5e-4
#: Share of days below the 1% vol quantile after rounding the grid end (5000 days: one day is 2e-4).
TAIL_SHARE_ATOL = 2e-3
#: Grid points used in these tests (small, to keep the end-to-end solve quick).
TEST_POINTS = 21
#: The design-config contract: sections and the keys each may hold.
CONFIG_KEYS = {
    "grid": {"vol_min", "vol_max", "points", "spacing"},
    "states": {"density", "median_vol", "dispersion", "file"},
    "shock": {"model", "df", "file", "bandwidth", "horizon_days"},
    "objective": {
        "kind",
        "loss",
        "carry",
        "prev_margin",
        "liquidation_weight",
        "liquidation_cost",
        "participation_weight",
        "participation_beta",
        "participation_cost",
    },
    "market": {"alpha", "c_eff", "inventory_penalty"},
    "cap": {"kind", "input", "window", "lambda"},
}


@pytest.fixture(scope="module")
def sp500():
    return load_sp500()


@pytest.fixture(scope="module")
def cal_rv(sp500):
    return calibrate_from_prices(sp500, points=TEST_POINTS)


@pytest.fixture(scope="module")
def cal_ewma(sp500):
    return calibrate_from_prices(sp500, risk_input="ewma", lam=0.94, points=TEST_POINTS)


def test_risk_inputs_match_their_definitions():
    rng = np.random.default_rng(0)
    r = rng.standard_normal(200) * 0.01
    rv = realized_variance(r, 20)
    assert np.all(np.isnan(rv[:19]))
    for t in (19, 50, 199):
        assert rv[t] == pytest.approx(np.mean(r[t - 19 : t + 1] ** 2), rel=IDENTITY_RTOL)
    ew = ewma_variance(r, 0.94)
    s = ewma_seed_length(0.94)
    assert s == 75
    assert ew[s - 1] == pytest.approx(np.mean(r[:s] ** 2), rel=IDENTITY_RTOL)
    # unrolled: r_t = lambda^k r_{t-k} + (1 - lambda) sum_j lambda^j R_{t-j}^2
    t, k = 150, 40
    unrolled = 0.94**k * ew[t - k] + 0.06 * sum(0.94**j * r[t - j] ** 2 for j in range(k))
    assert ew[t] == pytest.approx(unrolled, rel=UNROLL_RTOL)
    # aligned with closes: index t of the series uses returns up to day t
    close = np.exp(np.concatenate([[0.0], np.cumsum(r)]))
    aligned = risk_input_series(close, "realized_variance", 20)
    assert aligned[20] == pytest.approx(np.mean(daily_log_returns(close)[:20] ** 2), rel=IDENTITY_RTOL)


def test_state_weights_are_nearest_grid_point_masses():
    grid = grid_points(0.01, 0.03, 3)
    vols = np.array([0.005, 0.0149, 0.0151, 0.02, 0.026, 0.05])
    w = state_weights(vols, grid)
    assert w == pytest.approx([2 / 6, 2 / 6, 2 / 6], rel=IDENTITY_RTOL)
    wv = state_weights(vols, grid_points(0.01, 0.03, 3, "variance"), "variance")
    assert wv.sum() == pytest.approx(1.0, rel=IDENTITY_RTOL)


def test_standardized_losses_sign_and_scale():
    close = np.array([100.0, 101.0, 99.0, 98.0, 102.0])
    risk = np.array([np.nan, 1e-4, 4e-4, 1e-4, 1e-4])
    y = standardized_losses(close, risk, horizon_days=2, position="long")
    # t = 1: 101 -> 98, a 2.97% fall, is a positive loss for a long, scaled by sqrt(2 x 1e-4)
    assert y[0] == pytest.approx((1 - 98 / 101) / np.sqrt(2e-4), rel=IDENTITY_RTOL)
    assert y[1] == pytest.approx(-(102 / 99 - 1) / np.sqrt(8e-4), rel=IDENTITY_RTOL)
    short = standardized_losses(close, risk, 2, "short")
    assert short == pytest.approx(-y, rel=IDENTITY_RTOL)
    both = standardized_losses(close, risk, 2, "both")
    assert both.size == 2 * y.size


@pytest.mark.parametrize("which", ["cal_rv", "cal_ewma"])
def test_empirical_99_quantile_is_between_the_normal_and_a_fat_tailed_t(which, request):
    cal = request.getfixturevalue(which)
    tail = cal.tail
    # Y is standardised by sqrt(h r_t): the normal shock is N(0, 1); a Student-t with 3 degrees of freedom on the
    # same unit scale is the fat-tailed reference. Daily S&P 500 close-out losses sit in between.
    assert tail["normal"] < tail["empirical"] < tail["student_t_fat"]
    assert tail["normal_moments"] < tail["empirical"]
    assert cal.loss_stats["excess_kurtosis"] > 0


def test_grid_range_and_weights_come_from_the_data(cal_rv):
    q = cal_rv.vol_quantiles
    assert cal_rv.vol_min == pytest.approx(q["0.01"], rel=GRID_ROUNDING_RTOL)
    assert cal_rv.vol_max == pytest.approx(q["0.99"], rel=GRID_ROUNDING_RTOL)
    assert cal_rv.weights.sum() == pytest.approx(1.0, rel=IDENTITY_RTOL)
    assert cal_rv.weights.size == TEST_POINTS
    assert cal_rv.share_below == pytest.approx(0.01, abs=TAIL_SHARE_ATOL)
    # ADV = mean close x volume over the last 20 days of the window
    s = load_sp500()
    assert cal_rv.adv == pytest.approx(float(np.mean(s.close[-20:] * s.volume[-20:])), rel=IDENTITY_RTOL)


def _write(cal, folder: Path) -> Path:
    return write_design_config(cal, folder / "design.toml")["config"]


def test_config_follows_the_contract(cal_rv, cal_ewma, tmp_path):
    for cal, (inp, key, val) in ((cal_rv, ("realized_variance", "window", 20)), (cal_ewma, ("ewma", "lambda", 0.94))):
        folder = tmp_path / inp
        cfg = _write(cal, folder)
        text = cfg.read_text()
        doc = tomllib.loads(text)
        assert set(doc) == set(CONFIG_KEYS)
        for section, keys in doc.items():
            assert set(keys) <= CONFIG_KEYS[section], section
        assert doc["cap"] == {"kind": "manipulation_proof", "input": inp, key: val}
        assert doc["market"] == {"alpha": 0.2, "c_eff": 4.5, "inventory_penalty": 0.0}
        assert doc["shock"]["model"] == "empirical" and doc["states"]["density"] == "table"
        # header records the window and the estimates
        assert "1999-01-04 to 2018-12-31" in text and "Student-t ML fit" in text and "ADV" in text
        # the state table sits at the grid points the solver will build from [grid]
        g = doc["grid"]
        rows = (folder / doc["states"]["file"]).read_text().splitlines()
        assert rows[0] == "vol_daily,weight"
        vols = np.array([float(r.split(",")[0]) for r in rows[1:]])
        weights = np.array([float(r.split(",")[1]) for r in rows[1:]])
        assert np.array_equal(vols, grid_points(g["vol_min"], g["vol_max"], g["points"], g["spacing"]))
        assert weights.sum() == pytest.approx(1.0, rel=IDENTITY_RTOL)
        y = (folder / doc["shock"]["file"]).read_text().splitlines()
        assert y[0] == "y" and len(y) - 1 == cal.loss_stats["n"]
        assert np.quantile([float(v) for v in y[1:]], 0.99) == pytest.approx(cal.tail["empirical"], rel=IDENTITY_RTOL)


def test_output_is_byte_identical_across_runs(sp500, tmp_path):
    a = calibrate_from_prices(sp500, points=TEST_POINTS)
    b = calibrate_from_prices(sp500, points=TEST_POINTS)
    pa = write_design_config(a, tmp_path / "a" / "design.toml")
    pb = write_design_config(b, tmp_path / "b" / "design.toml")
    for key in ("config", "states", "shock"):
        assert pa[key].read_bytes() == pb[key].read_bytes()


def test_user_csv_gives_the_same_estimates_as_the_dataset(sp500, tmp_path):
    win = select_window(sp500, "2010-01-01", "2012-12-31")
    lines = ["date,close,volume"] + [f"{d},{float(c)!r},{float(v)!r}" for d, c, v in zip(win.dates, win.close, win.volume)]
    # shuffled row order must not matter
    body = lines[1:]
    body = body[1::2] + body[::2]
    p = tmp_path / "prices.csv"
    p.write_text("\n".join([lines[0]] + body) + "\n")
    from_csv = calibrate_from_prices(read_price_csv(p), points=TEST_POINTS, trigger_notional=1e9, sector_notional=2e12)
    from_set = calibrate_from_prices(win, points=TEST_POINTS, trigger_notional=1e9, sector_notional=2e12)
    assert np.array_equal(from_csv.grid, from_set.grid)
    assert np.array_equal(from_csv.losses, from_set.losses)
    assert from_csv.adv == pytest.approx(from_set.adv, rel=IDENTITY_RTOL)
    # trigger and sector notionals in currency become participation f and turnover tau in ADV units
    adv = average_daily_value(win.close, win.volume, 20)
    assert float(from_csv.market.participation) == pytest.approx(1e9 / adv, rel=IDENTITY_RTOL)
    assert float(from_csv.market.turnover) == pytest.approx(2e12 / adv, rel=IDENTITY_RTOL)


def test_data_errors(sp500, tmp_path):
    short = select_window(sp500, "2018-06-01", "2018-07-31")
    with pytest.raises(InputError, match=f"at least {MIN_SHOCK_OBSERVATIONS} are needed"):
        calibrate_from_prices(short)
    with pytest.raises(InputError, match="--end must not be before --start"):
        select_window(sp500, "2018-01-01", "2017-01-01")
    p = tmp_path / "prices.csv"
    p.write_text("date,volume\n2020-01-01,5\n")
    with pytest.raises(InputError, match="no column 'close'"):
        read_price_csv(p)
    with pytest.raises(InputError, match="--carry must be in"):
        calibrate_from_prices(sp500, objective=ObjectiveSettings(carry=1.0))
    with pytest.raises(InputError, match="elasticity must be positive"):
        calibrate_from_prices(sp500, elasticity=0.0)


def test_end_to_end_config_solves(cal_rv, tmp_path):
    """The written config is accepted unchanged by the design loader and by `margin-design solve`."""
    cfg = _write(cal_rv, tmp_path)
    from margin_design.design.config import load_problem

    problem = load_problem(cfg)
    # the state table lands one to one on the solver's grid: same states, same probability masses
    assert np.array_equal(np.asarray(problem.vol), cal_rv.grid)
    assert np.allclose(np.asarray(problem.weights), cal_rv.weights, rtol=IDENTITY_RTOL, atol=0)
    script = Path(sys.executable).parent / "margin-design"
    out = tmp_path / "solved"
    run = subprocess.run([str(script), "solve", str(cfg), "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert (out / "schedule.json").is_file() and (out / "schedule.json").stat().st_size > 0
