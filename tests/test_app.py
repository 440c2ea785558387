"""``margin-design app`` in a real browser: Playwright for Python driving Debian's ``chromium`` (never Playwright's own
browser download), against the explorer served in this process on a free port of 127.0.0.1.

Every number the tests compare comes from an independent route: the command line (``margin-design solve --json``,
``solve --out``, ``report --out``) run on a config written here or exported by the page. Screenshots go to the test's
tmp folder (``pytest --basetemp`` keeps them). Without chromium or playwright the tests skip, except under CI
(environment variable CI set), where they fail: ``.ci/system_deps.sh`` installs chromium and ``make test`` playwright.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import tomllib
from pathlib import Path

import pytest

from conftest import EXAMPLES

#: Longest wait for the page to finish an update (seconds); the first solve compiles the solver.
UPDATE_TIMEOUT = 30.0


def _need_browser():
    msg = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        msg = "playwright (pip) is not installed"
    if msg is None and shutil.which("chromium") is None:
        msg = "chromium (Debian package) is not installed"
    if msg is not None:
        if os.environ.get("CI"):
            pytest.fail(msg + "; CI must install it (.ci/system_deps.sh, make install)")
        pytest.skip(msg)


@pytest.fixture(scope="module")
def server():
    pytest.importorskip("starlette") if not os.environ.get("CI") else None
    from margin_design.app.server import Server
    from margin_design.app.session import Explorer

    s = Server(Explorer(None), "127.0.0.1", 0)
    thread = s.start_thread()
    yield s
    s.stop(thread)


@pytest.fixture(scope="module")
def browser():
    _need_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(browser, server, tmp_path):
    ctx = browser.new_context(viewport={"width": 1500, "height": 1100}, accept_downloads=True)
    pg = ctx.new_page()
    pg.errors = []
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    pg.on("console", lambda m: pg.errors.append(m.text) if m.type == "error" else None)
    pg.goto(server.url)
    wait_update(pg, 1)
    yield pg
    ctx.close()


def wait_update(pg, count: int) -> None:
    """Wait until the page has finished ``count`` updates and has none in flight, queued or debouncing (polled with
    evaluate: the page's content-security policy forbids the string evaluation of wait_for_function)."""
    end = time.monotonic() + UPDATE_TIMEOUT
    while time.monotonic() < end:
        if pg.evaluate("window.__updates >= %d && window.__idle()" % count):
            return
        time.sleep(0.05)
    raise AssertionError(f"the page did not finish {count} updates in {UPDATE_TIMEOUT} s: {pg.inner_text('#status')}")


def updates(pg) -> int:
    return pg.evaluate("window.__updates")


def value(pg, selector: str, attr: str = "data-value") -> float:
    return float(pg.get_attribute(selector, attr))


def solve_json(cfg: dict, tmp_path, capsys) -> dict:
    """``margin-design solve CONFIG --json`` on ``cfg`` written as TOML (the command line's own answer)."""
    import tomli_w

    from margin_design.cli import main

    path = tmp_path / "check.toml"
    path.write_text(tomli_w.dumps(cfg))
    capsys.readouterr()
    assert main(["solve", str(path), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def benchmark_config() -> dict:
    return tomllib.loads((EXAMPLES / "benchmark.toml").read_text())


def download(pg, selector: str, folder: Path) -> Path:
    with pg.expect_download() as dl:
        pg.click(selector)
    path = folder / dl.value.suggested_filename
    dl.value.save_as(path)
    return path


def test_page_loads_with_the_benchmark(page, tmp_path, capsys):
    expected = solve_json(benchmark_config(), tmp_path, capsys)
    assert value(page, "#cap-value") == expected["cap"]["slope_vol"]
    assert value(page, "#price-value") == expected["price_of_manipulation_proofness"]
    assert page.get_attribute("#cert-value", "data-ok") == "true" and expected["certified"]
    assert page.get_attribute("#regimes", "data-kinds") == " ".join(s["kind"] for s in expected["segments"])
    assert "400 states" in page.inner_text("#status")
    assert page.is_hidden("#error")
    assert page.evaluate("document.getElementById('plot-schedule').data[1].y.length") == 400
    page.screenshot(path=str(tmp_path / "benchmark.png"), full_page=True)
    assert page.errors == []


def test_moving_alpha_gives_the_cap_and_price_solve_gives(page, tmp_path, capsys):
    before = (value(page, "#cap-value"), value(page, "#price-value"))
    n = updates(page)
    page.focus("#slider-market-alpha")
    for _ in range(6):                      # six steps of 0.005: alpha 0.2 -> 0.23
        page.keyboard.press("ArrowRight")
    wait_update(page, n + 1)
    alpha = page.input_value("#ctl-market-alpha")
    assert float(alpha) == pytest.approx(0.23)
    cfg = benchmark_config()
    cfg["market"]["alpha"] = float(alpha)
    expected = solve_json(cfg, tmp_path, capsys)
    shown = (value(page, "#cap-value"), value(page, "#price-value"))
    assert shown == (expected["cap"]["slope_vol"], expected["price_of_manipulation_proofness"])
    assert shown[0] < before[0] and shown[1] > before[1]   # a larger impact tightens the cap and raises its price
    assert f"{expected['cap']['slope_vol'] / 252 ** 0.5:.4f} pp per vol point" == page.inner_text("#cap-value")
    page.screenshot(path=str(tmp_path / "alpha.png"), full_page=True)


def test_an_invalid_value_shows_the_loaders_sentence_and_keeps_the_last_plot(page, tmp_path):
    from margin_design.design.config import validate
    from margin_design.errors import ConfigError

    plot = page.evaluate("document.getElementById('plot-schedule').data[1].y")
    cap = page.inner_text("#cap-value")
    for key, typed in (("objective-carry", "1.5"), ("market-alpha", "abc")):
        cfg = benchmark_config()
        section, name = key.split("-", 1)
        cfg[section][name] = float(typed) if typed != "abc" else typed
        with pytest.raises(ConfigError) as exc:
            validate(cfg)
        good = page.input_value(f"#ctl-{key}")
        n = updates(page)
        page.fill(f"#ctl-{key}", typed)
        wait_update(page, n + 1)
        assert page.is_visible("#error")
        assert str(exc.value) in page.inner_text("#error")
        assert page.evaluate("document.getElementById('plot-schedule').data[1].y") == plot
        assert page.inner_text("#cap-value") == cap
        if key == "objective-carry":
            page.screenshot(path=str(tmp_path / "invalid.png"), full_page=True)
        n = updates(page)
        page.fill(f"#ctl-{key}", good)
        wait_update(page, n + 1)
        assert page.is_hidden("#error")
    # the refused requests answer HTTP 400 with the sentence (the browser logs the status); nothing else went wrong
    assert [e for e in page.errors if "status of 400" not in e] == []


def _falling_schedule(tmp_path) -> Path:
    """A CCP schedule with a released anti-procyclicality buffer: margin falls between 1.5% and 2% daily vol."""
    path = tmp_path / "existing.csv"
    path.write_text("vol_daily,margin\n0.004,0.02\n0.015,0.06\n0.02,0.045\n0.04,0.09\n")
    return path


def test_uploading_a_non_monotone_schedule_shows_pooling(page, tmp_path, capsys):
    n = updates(page)
    page.set_input_files("#rule-file", str(_falling_schedule(tmp_path)))
    wait_update(page, n + 1)
    kinds = page.get_attribute("#regimes", "data-kinds").split()
    assert "pooling" in kinds
    assert page.is_visible("#rule-panel")
    words = page.inner_text("#rule-words")
    assert "falls between 23.8% and 31.7% vol" in words and "pools" in words
    assert "rises faster than the cap" in words
    page.screenshot(path=str(tmp_path / "upload.png"), full_page=True)
    # the capped version is the target design of the exported TOML and CSV: the command line gives the same schedule
    toml = download(page, "[data-export=toml]", tmp_path)
    download(page, "[data-export=target]", tmp_path)
    shown = download(page, "[data-export=schedule]", tmp_path)
    from margin_design.cli import main

    assert main(["solve", str(toml), "--out", str(tmp_path / "cli")]) == 0
    cli = json.loads((tmp_path / "cli" / "schedule.json").read_text())
    mine = json.loads(shown.read_text())
    assert cli["schedule"] == mine["schedule"] and [s["kind"] for s in cli["segments"]] == kinds
    assert page.errors == []


def test_exported_toml_resolves_to_the_same_schedule(page, tmp_path):
    n = updates(page)
    page.fill("#ctl-objective-carry", "0.02")
    page.fill("#ctl-market-c_eff", "6")
    wait_update(page, n + 1)
    toml = download(page, "[data-export=toml]", tmp_path)
    shown = download(page, "[data-export=schedule]", tmp_path)
    from margin_design.cli import main

    assert main(["solve", str(toml), "--out", str(tmp_path / "cli")]) == 0
    cli = json.loads((tmp_path / "cli" / "schedule.json").read_text())
    mine = json.loads(shown.read_text())
    assert cli["config"]["objective"]["carry"] == 0.02 and cli["config"]["market"]["c_eff"] == 6
    for d in (cli, mine):
        d["solver"].pop("seconds")
    assert cli == mine                     # the whole schedule.json but the solver's wall time
    plotted = page.evaluate("document.getElementById('plot-schedule').data[1].y")
    assert plotted == pytest.approx([100 * m for m in cli["schedule"]], rel=1e-15)


def test_exported_rule_table_equals_margin_design_report_byte_for_byte(page, tmp_path):
    page.fill("#export-tick", "0.0005")
    page.fill("#export-vols", "8:60:2")
    files = [download(page, f"[data-export={w}]", tmp_path) for w in ("toml", "rule_table_csv", "rule_table_json")]
    from margin_design.cli import main

    out = tmp_path / "report"
    assert main(["report", str(files[0]), "--out", str(out), "--round", "0.0005", "--published-vols", "8:60:2"]) == 0
    for f in files[1:]:
        assert f.read_bytes() == (out / f.name).read_bytes(), f.name
    assert "0.0005" in files[1].read_text()   # rounded margins: 5 bp ticks


def test_a_calibration_preset_sets_alpha_and_c_eff(page, tmp_path, capsys):
    from margin_design.app.session import calibrate, calibration_presets

    presets = calibration_presets()
    i = next(k for k, p in enumerate(presets) if (p["elasticity"], p["turnover"], p["participation"]) == (0.3, 2.0, 0.02))
    page.click("#calibration summary")                  # the panel opens on demand
    page.select_option("#cal-preset", str(i))
    n = updates(page)
    page.click("#cal-apply")
    wait_update(page, n + 1)
    expected = calibrate({k: presets[i][k] for k in ("elasticity", "turnover", "participation", "margin", "distortion_bps")})
    assert float(page.input_value("#ctl-market-alpha")) == expected["alpha"]
    assert float(page.input_value("#ctl-market-c_eff")) == expected["c_eff"]
    cfg = benchmark_config()
    cfg["market"].update(alpha=expected["alpha"], c_eff=expected["c_eff"])
    assert value(page, "#cap-value") == solve_json(cfg, tmp_path, capsys)["cap"]["slope_vol"]
    assert "(75)" in page.inner_text("#cal-result")


def test_a_typed_formula_is_audited_and_capped(page, tmp_path):
    n = updates(page)
    page.fill("#rule-formula", "2.326*sqrt(2*r)")      # the 99% 2-day normal VaR: slope 3.29 per unit daily vol, over the cap
    page.click("#rule-use")
    wait_update(page, n + 1)
    words = page.inner_text("#rule-words")
    ratio = 2.326 * 2 ** 0.5 / (2 / (0.2 * 4.5))       # dM/dsigma = 2.326 sqrt(2) against the cap (40), K = 2/(alpha c_eff)
    assert "rises faster than the cap in 400 of 400 states" in words and f"up to {ratio:.2f} times the cap" in words
    assert page.get_attribute("#regimes", "data-kinds") == "saturated"
    n = updates(page)
    page.fill("#rule-formula", "__import__('os').getcwd()")
    page.click("#rule-use")
    page.wait_for_timeout(500)
    assert "bad" in page.get_attribute("#rule-status", "class") and updates(page) == n
    page.screenshot(path=str(tmp_path / "formula.png"), full_page=True)


def test_historical_simulation_input_shows_its_window_and_level(page, tmp_path, capsys):
    """Choosing hs_var shows the window and level controls (filled with their suggestions) and gives the cap and price
    `solve` gives for that config; the level control is hidden again for the variance input."""
    assert page.is_hidden("#ctl-cap-level")
    n = updates(page)
    page.select_option("#ctl-cap-input", "hs_var")
    wait_update(page, n + 1)
    assert page.is_visible("#ctl-cap-window") and page.is_visible("#ctl-cap-level")
    assert page.is_hidden("#error"), page.inner_text("#error")
    cfg = benchmark_config()
    cfg["cap"].update(input="hs_var", window=int(page.input_value("#ctl-cap-window")), level=float(page.input_value("#ctl-cap-level")))
    expected = solve_json(cfg, tmp_path, capsys)
    assert (value(page, "#cap-value"), value(page, "#price-value")) == (expected["cap"]["slope_vol"], expected["price_of_manipulation_proofness"])
    page.screenshot(path=str(tmp_path / "hs_var.png"), full_page=True)
    n = updates(page)
    page.select_option("#ctl-cap-input", "variance")
    wait_update(page, n + 1)
    assert page.is_hidden("#ctl-cap-level") and page.is_hidden("#ctl-cap-window")
