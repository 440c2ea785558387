"""Issue 11, section 7: user CSV files read with pandas (formats accepted, one-sentence refusals), and
``calibrate data`` labelling each market input given, a built-in default or from the data.

The statsmodels HAC regression is cross-checked against the former hand-written estimator in
tests/test_calibration_elasticity.py; the refusals of the command line are in the corpus of tests/test_bad_inputs.py.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from margin_design.audit.rules import read_rule_csv
from margin_design.calibration.cap import BENCHMARK
from margin_design.calibration.data import (
    MARKET_INPUTS,
    PriceSeries,
    calibrate_from_prices,
    design_config_text,
    read_price_csv,
)
from margin_design.calibration.elasticity import read_elasticity_csv
from margin_design.csvio import read_csv_columns, read_table
from margin_design.errors import InputError

# ---------------------------------------------------------------------- CSV formats


def _write(tmp_path, content, name="t.csv"):
    p = tmp_path / name
    p.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return p


def test_a_spreadsheet_export_reads_like_the_plain_file(tmp_path):
    # byte-order mark, Windows line endings, blanks around names and cells, quoted thousands separators,
    # percent signs in the margin column, a blank line and a row of empty cells at the end
    messy = _write(
        tmp_path,
        b'\xef\xbb\xbf Date , Margin ,Position\r\n2020-01-03, 5.5% ,"1,300"\r\n2020-01-02,5%,"1,234.5"\r\n'
        b'2020-01-06,0.06,"12,345,678.25"\r\n\r\n,,\r\n',
    )
    plain = _write(tmp_path, "date,margin,position\n2020-01-03,0.055,1300\n2020-01-02,0.05,1234.5\n2020-01-06,0.06,12345678.25\n", "p.csv")
    got = read_csv_columns(messy, ("margin", "position"), dates=("date",))
    want = read_csv_columns(plain, ("margin", "position"), dates=("date",))
    assert got["date"] == want["date"] == ["2020-01-03", "2020-01-02", "2020-01-06"]
    # 5.5% is 0.055 exactly as float("5.5") / 100 is; the decimal file says 0.055, one rounding apart at most
    assert got["margin"] == pytest.approx(want["margin"], rel=1e-15)
    assert got["position"].tolist() == [1300.0, 1234.5, 12345678.25]
    m, x, dates, col = read_elasticity_csv(messy)
    assert dates == ["2020-01-02", "2020-01-03", "2020-01-06"] and col == "position"
    assert x.tolist() == [1234.5, 1300.0, 12345678.25]


def test_numbers_are_parsed_exactly_as_python_floats(tmp_path):
    # pandas' parser gives the same bits as float(): outputs stay byte-identical to the former csv-module reader
    rng = np.random.default_rng(4)
    values = (rng.standard_normal(2000) * 10.0 ** rng.integers(-12, 12, 2000)).tolist()
    p = _write(tmp_path, "y\n" + "".join(f"{v!r}\n" for v in values))
    assert read_csv_columns(p, ("y",))["y"].tobytes() == np.array([float(repr(v)) for v in values]).tobytes()


@pytest.mark.parametrize(
    "cells",
    [
        ["2020-01-31", "2020-02-03"],
        ["2020-01-31 16:00:00", "2020-02-03T16:00"],
        ["2020/01/31", "2020/02/03"],
        ["20200131", "20200203"],
        ["31 Jan 2020", "3 Feb 2020"],
        ["31-Jan-2020", "03-Feb-2020"],
        ["31 January 2020", "3 February 2020"],
        ['"Jan 31, 2020"', '"Feb 3, 2020"'],
        ['"January 31, 2020"', '"February 3, 2020"'],
        ["31/01/2020", "03/02/2020"],  # day first: 31 cannot be a month
        ["01/31/2020", "02/03/2020"],  # month first: 31 cannot be a month
        ["31.01.2020", "03.02.2020"],
    ],
)
def test_date_formats(tmp_path, cells):
    p = _write(tmp_path, "date,close\n" + "".join(f"{c},{i + 1}\n" for i, c in enumerate(cells)))
    assert read_csv_columns(p, ("close",), dates=("date",))["date"] == ["2020-01-31", "2020-02-03"]
    assert read_price_csv(p).dates == ("2020-01-31", "2020-02-03")


@pytest.mark.parametrize(
    "text, match",
    [
        ("date,close\n01/02/2020,1\n", r"'01/02/2020' in row 2, which is not an ISO date \(YYYY-MM-DD\), and no day in the column is above 12"),
        ("date,close\n2020-01-01,1\n\n2020-02-30,2\n", r"'2020-02-30' in row 4, which is not an ISO date"),  # row = line, blank line counted
        ("date,close\n2020-01-01,1\n31/01/2020,2\n", r"'31/01/2020' in row 3, which is not an ISO date"),  # one format per column
        ("date,close\n2020-01,1\n", r"'2020-01' in row 2, which is not an ISO date"),  # a month is not a day
        ("date,close\n2020-01-01,1\nNA,2\n", r"has a missing value \('NA'\) in row 3; every row needs a date"),
    ],
)
def test_dates_refused(tmp_path, text, match):
    with pytest.raises(InputError, match=match):
        read_price_csv(_write(tmp_path, text))


@pytest.mark.parametrize(
    "text, match",
    [
        ("vol,margin\n0.01,0.05\n0.02,\n", r"has an empty cell in column 'margin', row 3; every row needs a number there"),
        ("vol,margin\n0.01,0.05\n0.02\n", r"has an empty cell in column 'margin', row 3"),  # a short row
        ("vol,margin\n0.01,0.05\n0.02,n/a\n", r"has a missing value \('n/a'\) in column 'margin', row 3"),
        ("vol,margin\n0.01,0.05\n0.02,nan\n", r"has the non-finite value 'nan' in column 'margin', row 3"),
        ("vol,margin\n0.01,0.05,\n", r"has 3 cells in row 2 but its header has 2 columns"),
        ('vol,margin\n0.01,"1,23"\n', r"non-numeric value '1,23' in column 'margin', row 2 \(decimals take a point"),
        ('vol,margin\n0.01,"12,3456"\n', r"non-numeric value '12,3456' in column 'margin', row 2"),
        ("vol,margin\n0.01,5%%\n", r"non-numeric value '5%%' in column 'margin', row 2"),
        ("vol,margin\n0.01,abc\n", r"non-numeric value 'abc' in column 'margin', row 2\.$"),
        ("vol;margin\n0,01;0,05\n", r"looks semicolon-separated"),
        ("vol,margin,vol\n0.01,0.05,0.02\n", r"has the column 'vol' 2 times"),
        ("vol,margin\n", r"has a header but no data rows"),
        ("\n\n", r"is empty"),
        ('vol,margin\n0.01,"0.05\n', r"cannot be read as CSV"),
    ],
)
def test_cells_refused(tmp_path, text, match):
    with pytest.raises(InputError, match=match):
        read_rule_csv(_write(tmp_path, text))


def test_percent_signs_in_ratio_and_vol_columns(tmp_path):
    pct = read_rule_csv(_write(tmp_path, "vol,margin\n1%,5%\n2.5%,12.5%\n", "pct.csv"))
    dec = read_rule_csv(_write(tmp_path, "vol,margin\n0.01,0.05\n0.025,0.125\n", "dec.csv"))
    assert np.allclose(pct.vol, dec.vol, rtol=1e-15) and np.allclose(pct.margin, dec.margin, rtol=1e-15)
    with pytest.raises(InputError, match=r"has '2%' in column 'close', row 2; a percent sign is read only"):
        read_price_csv(_write(tmp_path, "date,close\n2020-01-01,2%\n"))


def test_read_table_gives_stripped_cells_and_skips_blank_rows(tmp_path):
    header, rows = read_table(_write(tmp_path, " A ,b\r\n x , 1 \r\n\r\n,\r\n y,2\r\n"))
    assert header == ["a", "b"] and rows == [["x", "1"], ["y", "2"]]


def test_pandas_is_imported_only_when_a_csv_is_read():
    code = (
        "import sys, margin_design.csvio, margin_design.calibration.data, margin_design.calibration.elasticity\n"
        "print('pandas' in sys.modules, 'statsmodels' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    # calibration.data imports scipy (not pandas); statsmodels is imported only by the regression itself
    assert out == ["False", "False"]


# ---------------------------------------------------------------------- where the market inputs come from


@pytest.fixture(scope="module")
def prices():
    """Two years of a synthetic daily close and volume (deterministic), enough for the 250 losses needed."""
    rng = np.random.default_rng(11)
    n = 520
    close = 100.0 * np.exp(np.cumsum(rng.standard_normal(n) * 0.01 * (1.0 + 0.5 * np.sin(np.arange(n) / 40.0))))
    dates = tuple(str(d) for d in np.arange(np.datetime64("2019-01-01"), np.datetime64("2019-01-01") + n))
    return PriceSeries(dates, close, np.full(n, 1e6), "synthetic")


def test_defaults_are_labelled_defaults(prices):
    cal = calibrate_from_prices(prices, points=11)
    assert cal.market_sources == {name: "default" for name in MARKET_INPUTS}
    assert float(cal.market.elasticity) == BENCHMARK["elasticity"] and float(cal.market.c_eff) == pytest.approx(4.5, rel=1e-15)
    text = design_config_text(cal, "s.csv", "y.csv")
    assert "user-given" not in text
    line = next(x for x in text.splitlines() if x.startswith("# Market inputs:"))
    assert "epsilon_XM 0.225 built-in default" in line and "tau 1 built-in default" in line and "f 0.01 built-in default" in line
    assert "# Built-in defaults are not estimated from these data" in text.replace("#   ", "# ")
    assert cal.to_dict()["market"]["sources"]["elasticity"] == "default"


def test_given_and_data_inputs_are_labelled_so(prices):
    cal = calibrate_from_prices(prices, points=11, elasticity=0.3, sector_notional=5e8, participation=0.02, margin=0.06,
                                impact_k=150.0, inventory_penalty=0.0)
    assert cal.market_sources == {"elasticity": "given", "turnover": "data", "participation": "given", "margin": "given",
                                  "impact": "given", "inventory_penalty": "given"}
    text = design_config_text(cal, "s.csv", "y.csv")
    line = next(x for x in text.splitlines() if x.startswith("# Market inputs:"))
    assert "epsilon_XM 0.3 given" in line and "from the data (notional / ADV)" in line and "k 150 bp given" in line
    assert "built-in default" not in text  # nothing was left to a default
    # a value equal to the default is still the user's: given, not default
    same = calibrate_from_prices(prices, points=11, elasticity=BENCHMARK["elasticity"])
    assert same.market_sources["elasticity"] == "given" and same.market_sources["turnover"] == "default"
    assert float(same.market.c_eff) == float(calibrate_from_prices(prices, points=11).market.c_eff)


def test_calibrate_data_says_on_the_console_which_inputs_are_defaults(prices, tmp_path, capsys):
    from margin_design.cli import main

    csv = tmp_path / "p.csv"
    csv.write_text("date,close,volume\n" + "".join(f"{d},{float(c)!r},1000000\n" for d, c in zip(prices.dates, prices.close)))
    assert main(["calibrate", "data", "--csv", str(csv), "--out", str(tmp_path / "d.toml"), "--points", "11", "--elasticity", "0.3"]) == 0
    out = capsys.readouterr().out
    assert "market inputs: epsilon_XM 0.3 given, tau 1 built-in default, f 0.01 built-in default" in out
    assert "built-in defaults are the paper's benchmark, not estimates for these data; set them with --turnover" in out
    assert "--elasticity" not in out.split("set them with")[1]  # the given one is not among the flags to set
    assert "epsilon_XM 0.3 given" in (tmp_path / "d.toml").read_text()
    assert main(["calibrate", "data", "--csv", str(csv), "--out", str(tmp_path / "e.toml"), "--points", "11", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["market"]["sources"] == {name: "default" for name in MARKET_INPUTS}


def test_calibrate_portfolio_labels_its_market_inputs_too():
    # the shipped example was written with --elasticity 0.3 --turnover 2.0 and nothing else: the rest are defaults
    from conftest import EXAMPLES

    text = (EXAMPLES / "portfolio_long.toml").read_text()
    assert "user-given" not in text
    assert ("# Market inputs: epsilon_XM given, tau given, f built-in default, m built-in default, k built-in default, "
            "kappa built-in default.") in text.splitlines()
