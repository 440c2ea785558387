"""The Python and Jupyter face of the results: DataFrames, short reprs, HTML tables, text summaries (issue 11, sect. 5).

Every frame is compared with the arrays it is built from, and every repr with the object's own fields, so a
frame or a repr that drifts from the result fails here. The HTML is parsed with :mod:`html.parser` (balanced
tags) and a user's string with markup in it must come back as text, never as a tag.
"""

from __future__ import annotations

import math
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from margin_design.calibration import (
    assess_margin_move,
    calibrate_accounts,
    calibrate_market,
    estimate_elasticity,
)
from margin_design.audit import STATE_UNITS, AuditOptions, build_audit, load_rule
from margin_design.calibration.data import calibrate_from_prices, load_dataset, read_price_csv
from margin_design.design import load_problem
from margin_design.solvers import solve
from margin_design.solvers.result import SEGMENT_FRAME_COLUMNS, STATE_FRAME_UNITS
from margin_design.solvers.segments import SEGMENT_KINDS
from margin_design.solvers.sensitivity import PARAMETER_UNITS, Sensitivities
from margin_design.solvers.sweep import run_sweep, sweep, sweep_frame

from conftest import BASE_CONFIG, EXAMPLES

#: A repr is "a few lines": at most this many lines and characters (a 400-state array printed would be thousands).
MAX_REPR_LINES = 16
MAX_REPR_CHARS = 1600
#: Saturated links rise by the cap increment and pooled links are flat, to rounding of margins of order 0.1.
LINK_TOL = 1e-10
#: A rule name with markup, to check that HTML shows it as text.
HOSTILE = "<script>alert('x')</script> & <b>VaR</b>"

STATE_COLUMNS = ["vol_daily", "vol_annual", "r", "weight", "first_best", "margin", "regime", "multiplier"]


class _Checker(HTMLParser):
    """Parses HTML, checking that every tag is closed in order; collects the text and the tags seen."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.tags, self.text = [], [], []

    def handle_starttag(self, tag, attrs):
        self.stack.append(tag)
        self.tags.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:] or 'nothing'}"
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def parse_html(markup: str) -> _Checker:
    p = _Checker()
    p.feed(markup)
    p.close()
    assert not p.stack, f"unclosed tags {p.stack}"
    assert "table" in p.tags
    return p


def check_repr(obj) -> str:
    text = repr(obj)
    assert len(text) <= MAX_REPR_CHARS and len(text.splitlines()) <= MAX_REPR_LINES, text
    assert "[" not in text or text.count(",") < 60  # no array listing
    parse_html(obj._repr_html_())
    return text


# ------------------------------------------------------------------ schedules
#: Designs whose answers have every kind of stretch between them: saturated and tracking (liquidation), pooling
#: (the existing schedule), a floor at M = 0 (carrying margin costs more than the coverage it buys), a portfolio.
DESIGNS = ["liquidation", "cap_existing_schedule", "floor", "portfolio_spread"]


@pytest.fixture(scope="module")
def schedules(tmp_path_factory):
    floor = tmp_path_factory.mktemp("floor") / "floor.toml"
    floor.write_text(BASE_CONFIG.replace("carry = 0.01", "carry = 0.6"))
    out = {name: solve(load_problem(EXAMPLES / f"{name}.toml")) for name in DESIGNS if name != "floor"}
    out["floor"] = solve(load_problem(floor))
    assert "floor" in out["floor"].segment_counts()
    return out


@pytest.mark.parametrize("name", DESIGNS)
def test_schedule_frame_columns_dtypes_and_values(schedules, name):
    res = schedules[name]
    f = res.to_frame()
    assert list(f.columns) == STATE_COLUMNS == list(STATE_FRAME_UNITS)
    assert len(f) == res.problem.n and f.index.name == "state"
    for col in STATE_COLUMNS:
        if col != "regime":
            assert f[col].dtype == np.float64, col
    assert isinstance(f["regime"].dtype, pd.CategoricalDtype) and list(f["regime"].cat.categories) == list(SEGMENT_KINDS)
    np.testing.assert_array_equal(f["vol_daily"].to_numpy(), res.vol)
    np.testing.assert_array_equal(f["vol_annual"].to_numpy(), math.sqrt(252.0) * res.vol)
    np.testing.assert_array_equal(f["r"].to_numpy(), res.r)
    np.testing.assert_array_equal(f["weight"].to_numpy(), res.weights)
    np.testing.assert_array_equal(f["first_best"].to_numpy(), res.first_best)
    np.testing.assert_array_equal(f["margin"].to_numpy(), res.schedule)
    np.testing.assert_array_equal(f["multiplier"].to_numpy()[:-1], res.multipliers)
    assert np.isnan(f["multiplier"].iloc[-1])
    # the regime of each state's link to the right, checked against the margins themselves (not the codes)
    step = np.diff(f["margin"].to_numpy())
    regime = f["regime"].to_numpy()[:-1]
    sat, pool = regime == "saturated", np.isin(regime, ["pooling", "floor"])
    np.testing.assert_allclose(step[sat], res.cap_increments[sat], rtol=0, atol=LINK_TOL)
    np.testing.assert_allclose(step[pool], 0.0, atol=LINK_TOL)
    assert np.all(f["multiplier"].to_numpy()[:-1][sat] >= 0)
    assert f["regime"].iloc[-1] == f["regime"].iloc[-2]
    which = f.attrs["first_best"]
    assert ("existing schedule" in which) == (name == "cap_existing_schedule") == res.is_target


@pytest.mark.parametrize("name", DESIGNS)
def test_segments_frame(schedules, name):
    res = schedules[name]
    f = res.segments_frame()
    assert list(f.columns) == list(SEGMENT_FRAME_COLUMNS)
    assert len(f) == len(res.segments)
    assert isinstance(f["kind"].dtype, pd.CategoricalDtype)
    assert all(f[c].dtype == np.int64 for c in ("start", "end", "states"))
    assert all(f[c].dtype == np.float64 for c in SEGMENT_FRAME_COLUMNS if c not in ("kind", "start", "end", "states"))
    assert list(f["kind"]) == [s["kind"] for s in res.segments]
    # stretches cover the grid end to end, sharing their boundary states
    assert f["start"].iloc[0] == 0 and f["end"].iloc[-1] == res.problem.n - 1
    assert (f["start"].to_numpy()[1:] == f["end"].to_numpy()[:-1]).all()
    assert f["states"].sum() == res.problem.n + len(f) - 1
    np.testing.assert_array_equal(f["vol_daily_start"].to_numpy(), res.vol[f["start"].to_numpy()])
    np.testing.assert_array_equal(f["vol_annual_end"].to_numpy(), math.sqrt(252.0) * res.vol[f["end"].to_numpy()])
    np.testing.assert_array_equal(f["margin_start"].to_numpy(), res.schedule[f["start"].to_numpy()])
    np.testing.assert_array_equal(f["margin_end"].to_numpy(), res.schedule[f["end"].to_numpy()])
    for row, seg in zip(f.itertuples(), res.segments):
        assert (seg["kind"] == "saturated") == (not np.isnan(row.intercept))
        assert (seg["kind"] in ("pooling", "floor")) == (not np.isnan(row.level))


@pytest.mark.parametrize("name", DESIGNS)
def test_schedule_repr_has_the_key_numbers(schedules, name):
    res = schedules[name]
    text = check_repr(res)
    o, c = res.objective, res.certificate
    assert f"{res.problem.n}," in text
    assert f"{o['value']:.8g}" in text and f"{o['first_best_value']:.8g}" in text
    assert f"{res.price_of_manipulation_proofness:.6g}" in text
    assert f"certified: {'yes' if c.ok else 'no'} (relative gap {c.relative_gap:.2e})" in text
    for kind, count in res.segment_counts().items():
        assert f"{count} {kind}" in text
    assert ("existing schedule" in text) == res.is_target
    assert ("portfolio" in text) == (res.problem.cap.portfolio is not None)
    assert isinstance(res.summary(), str) and "CERTIFIED" in res.summary()
    html_text = "".join(parse_html(res._repr_html_()).text)
    assert f"{o['value']:.8g}" in html_text


def test_sensitivities_are_a_short_dict(schedules):
    res = schedules["liquidation"]
    sens = res.sensitivities()
    assert isinstance(sens, Sensitivities) and isinstance(sens, dict)
    text = check_repr(sens)
    for name, d in sens.items():
        assert f"{name}: dJ(g*) {d['objective']:.6g}, dJ(M_fb) {d['first_best_objective']:.6g}, dprice {d['price']:.6g}" in text
    f = sens.to_frame()
    assert list(f.index) == list(sens) and f.index.name == "parameter"
    assert list(f.columns) == ["objective", "first_best_objective", "price", "margin_max_abs", "unit"]
    for name, d in sens.items():
        assert f.loc[name, "objective"] == d["objective"] and f.loc[name, "price"] == d["price"]
        assert f.loc[name, "margin_max_abs"] == np.max(np.abs(d["schedule"]))
        assert f.loc[name, "unit"] == PARAMETER_UNITS[name]
    g = sens.schedule_frame()
    assert list(g.columns) == ["vol_daily", *sens]
    for name, d in sens.items():
        np.testing.assert_array_equal(g[name].to_numpy(), d["schedule"])
    assert "per unit of the parameter" in sens.summary()
    cells = parse_html(sens._repr_html_())
    assert cells.tags.count("tr") == len(sens) + 1 and f"{sens['carry']['price']:.6g}" in cells.text
    # asking for one parameter gives the same numbers
    one = res.sensitivities(("carry",))
    assert list(one) == ["carry"] and one["carry"]["price"] == sens["carry"]["price"]


def test_html_helpers_escape_every_cell():
    from margin_design.display import html_grid, html_table

    for markup, copies in ((html_table(HOSTILE, [(HOSTILE, HOSTILE)]), 3), (html_grid(HOSTILE, [HOSTILE], [[HOSTILE]], note=HOSTILE), 4)):
        p = parse_html(markup)
        assert "script" not in p.tags and "<script>" not in markup
        assert "".join(p.text).count(HOSTILE) == copies


# ------------------------------------------------------------------ sweeps
def test_sweep_frame_matches_the_rows(write_config):
    cfg = write_config(BASE_CONFIG.replace("points = 40", "points = 12"))
    rows = run_sweep(cfg, ["market.alpha=0.1,0.3", "objective.carry=0.005,0.02"], workers=0, progress=None)
    f = sweep_frame(rows)
    assert f.index.name == "config" and list(f.index) == [r["config"] for r in rows]
    assert list(f.columns) == [k for k in rows[0] if k != "config"]
    assert f["certified"].dtype == bool and f["n_segments"].dtype == np.int64
    for col in ("market.alpha", "objective", "price_of_manipulation_proofness", "dprice_d_alpha"):
        assert f[col].dtype == np.float64
        np.testing.assert_array_equal(f[col].to_numpy(), [r[col] for r in rows])
    # the dict form of vary is the same sweep
    g = sweep(cfg, {"market.alpha": [0.1, 0.3], "objective.carry": "0.005,0.02"})
    pd.testing.assert_frame_equal(f, g)


# ------------------------------------------------------------------ audit
#: A market file name with markup (no slash, so it is one file name).
HOSTILE_FILE = "<i>bench & 'co'.toml"


@pytest.fixture(scope="module")
def audit(tmp_path_factory):
    market = tmp_path_factory.mktemp("market") / HOSTILE_FILE
    market.write_text((EXAMPLES / "benchmark.toml").read_text())
    rule = load_rule("2.326*sqrt(2*r)", name=HOSTILE)
    return build_audit(rule, market, AuditOptions(simulate=False))


def test_audit_frames(audit):
    f = audit.to_frame()
    rows = audit.state_rows()
    assert list(f.columns) == list(rows[0]) and len(f) == audit.problem.n
    assert set(f.columns) <= set(STATE_UNITS) | {"weight"}
    np.testing.assert_array_equal(f["vol_daily"].to_numpy(), audit.problem.vol)
    np.testing.assert_array_equal(f["margin_ratio"].to_numpy(), [r["margin_ratio"] for r in rows])
    np.testing.assert_array_equal(f["capped_margin_ratio"].to_numpy(), audit.schedule.schedule)
    assert f["exceeds_cap"].dtype == bool and f["q_min_adv"].dtype == np.float64
    c = audit.comparison_frame()
    assert len(c) == 3 and c["expected_cost"].tolist() == [audit.costs[k] for k in ("rule", "first_best", "capped")]


def test_audit_repr_and_escaped_html(audit):
    text = check_repr(audit)
    s, c = audit.local.summary(), audit.costs
    assert HOSTILE in text  # plain text keeps the name as given
    assert f"{s['states_over_cap']} of {s['states']} states" in text
    assert f"{c['capped'] - c['first_best']:.6g}" in text
    markup = audit._repr_html_()
    assert "<script>" not in markup and "&lt;script&gt;" in markup and "<i>" not in markup
    p = parse_html(markup)
    assert "script" not in p.tags and "i" not in p.tags and "b" in p.tags  # the caption's own <b>, never the name's
    shown = "".join(p.text)
    assert HOSTILE in shown and HOSTILE_FILE in shown  # shown as text: the title and a value
    assert isinstance(audit.summary(), str)


# ------------------------------------------------------------------ calibration results
def test_market_calibration_and_cap_values():
    cal = calibrate_market(0.225, 1.0, 0.01, 0.05)
    text = check_repr(cal)
    assert f"alpha (75): {float(cal.alpha):.6g}" in text and f"c_eff (76): {float(cal.c_eff):.6g}" in text
    assert f"{float(cal.cap().dm_dvol):.6g} per unit daily vol" in text
    assert cal.summary() == text
    cap = cal.cap(0.01)
    assert f"{float(cap.dm_dr):.6g} per unit daily variance" in check_repr(cap)
    wide = calibrate_market(np.linspace(0.1, 0.3, 400), 1.0, 0.01, 0.05)
    text = check_repr(wide)
    assert "400 values, 0.1 .. 0.3" in text


def test_gain_accounts_elasticity():
    g = assess_margin_move(0.225, 1.0, np.linspace(0.001, 0.02, 400), 0.05, 0.07)
    text = check_repr(g)
    assert f"{int(np.sum(g.profitable))} of 400" in text
    assert f"{float(np.min(g.G)):.4g} .. {float(np.max(g.G)):.4g}" in text
    rng = np.random.default_rng(1)
    acc = calibrate_accounts(rng.uniform(0.1, 1, 50), rng.uniform(1, 5, 50), 0.05)
    assert f"{acc.c_eff:.6g} per unit of total mass" in check_repr(acc)
    m = 0.05 * np.exp(0.1 * rng.normal(size=200))
    x = np.exp(-0.2 * np.log(m) + 0.05 * rng.normal(size=200))
    est = estimate_elasticity(m, x)
    text = check_repr(est)
    assert f"{est.epsilon:.4g}" in text and f"[{est.ci_low:.4g}, {est.ci_high:.4g}]" in text


@pytest.fixture(scope="module")
def sp500_calibration():
    return calibrate_from_prices(load_dataset("sp500"), points=21)


def test_data_calibration(sp500_calibration):
    cal = sp500_calibration
    text = check_repr(cal)
    assert f"{cal.start} to {cal.end}, {cal.n_prices} closes" in text
    assert f"{cal.grid.size} points" in text and f"c_eff {float(cal.market.c_eff):.6g} ADV" in text
    assert cal.summary() == text
    f = cal.to_frame()
    assert list(f.columns) == ["vol_daily", "vol_annual", "r", "weight"] and all(f.dtypes == np.float64)
    np.testing.assert_array_equal(f["vol_daily"].to_numpy(), cal.grid)
    np.testing.assert_array_equal(f["weight"].to_numpy(), cal.weights)
    np.testing.assert_array_equal(f["vol_annual"].to_numpy(), math.sqrt(252.0) * cal.grid)


def test_data_calibration_html_escapes_the_file_name(tmp_path):
    series = load_dataset("sp500")
    path = tmp_path / "<b>closes & co.csv"
    path.write_text("date,close\n" + "\n".join(f"{d},{float(c)!r}" for d, c in zip(series.dates[:600], series.close[:600])) + "\n")
    cal = calibrate_from_prices(read_price_csv(path), points=11)
    markup = cal._repr_html_()
    p = parse_html(markup)
    assert "<b>closes" not in markup and path.name in "".join(p.text)
