"""The explorer's server-side logic without a browser (margin_design.app.session and .server), and the ``app`` command.

Numbers are checked against independent routes: the config loader and ``solve`` on the same config, the closed forms
(65), (75)-(76) for the calibration panel, the cap (16)-(18) for a rule built at a known multiple of it, and the
command line's files for the exports.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request

import numpy as np
import pytest

from conftest import EXAMPLES

pytest.importorskip("starlette") if not os.environ.get("CI") else None
from margin_design.app import session  # noqa: E402
from margin_design.app.session import BENCHMARK_CONFIG, Explorer, calibrate, calibration_presets, raw_config  # noqa: E402
from margin_design.design.config import load_config, validate  # noqa: E402
from margin_design.errors import ConfigError, InputError  # noqa: E402

#: Seconds the ``app`` command may take to print its address (imports, JAX) on a shared machine.
START_TIMEOUT = 60.0


def typed(cfg: dict) -> dict:
    """The controls as the page sends them: every number as the text in its field."""
    return {s: {k: (repr(v) if isinstance(v, float) else str(v) if isinstance(v, int) and not isinstance(v, bool) else v)
                for k, v in d.items()} for s, d in cfg.items()}


@pytest.fixture(scope="module")
def explorer():
    ex = Explorer(None)
    yield ex
    ex.close()


def test_the_built_in_start_is_the_bundled_benchmark():
    assert session.plain(load_config(EXAMPLES / "benchmark.toml")[0]) == BENCHMARK_CONFIG


def test_typed_numbers_are_read_and_text_is_never_evaluated():
    raw = raw_config({"market": {"alpha": " 0.25 ", "c_eff": "__import__('os').system('true')", "inventory_penalty": ""},
                      "grid": {"points": "400", "vol_min": "4e-3"}})
    assert raw == {"market": {"alpha": 0.25, "c_eff": "__import__('os').system('true')"}, "grid": {"points": 400, "vol_min": 0.004}}
    assert isinstance(raw["grid"]["points"], int)
    with pytest.raises(ConfigError, match=r"market\.c_eff = \"__import__\('os'\)\.system\('true'\)\" must be a finite number"):
        session.validated(typed(dict(BENCHMARK_CONFIG, market={"alpha": 0.2, "c_eff": "__import__('os').system('true')"})))


@pytest.mark.parametrize("section,key,value", [("objective", "carry", 1.5), ("market", "alpha", -0.2), ("grid", "points", 2),
                                               ("shock", "df", 5.0), ("market", "alpha", float("nan"))])
def test_the_page_refuses_with_the_config_loaders_own_sentence(section, key, value):
    cfg = json.loads(json.dumps(BENCHMARK_CONFIG))
    cfg[section][key] = value
    with pytest.raises(ConfigError) as loader:
        validate(cfg)
    with pytest.raises(ConfigError) as page:
        session.validated(typed(cfg))
    assert str(page.value) == str(loader.value)


def test_the_page_limits_its_grid_and_refuses_other_design_kinds():
    cfg = typed(dict(BENCHMARK_CONFIG, grid=dict(BENCHMARK_CONFIG["grid"], points=session.MAX_PAGE_POINTS + 1)))
    with pytest.raises(ConfigError, match="the page draws"):
        session.validated(cfg)
    with pytest.raises(InputError, match="objective.kind = 'target'"):
        Explorer(EXAMPLES / "cap_existing_schedule.toml")
    with pytest.raises(InputError, match=r"\[portfolio\]"):
        Explorer(EXAMPLES / "portfolio_long.toml")
    with pytest.raises(InputError, match="cannot be read"):
        Explorer(EXAMPLES / "no-such.toml")


def test_page_numbers_are_those_of_solve_on_the_same_config(explorer):
    from margin_design.design import load_problem
    from margin_design.solvers import solve

    ref = solve(load_problem(EXAMPLES / "liquidation.toml"))
    cfg = session.plain(load_config(EXAMPLES / "liquidation.toml")[0])
    out = explorer.page(typed(cfg))
    assert out["price"] == ref.price_of_manipulation_proofness
    assert out["cap"]["slope_vol"] == ref.problem.cap.slope_vol
    assert out["margin_pct"] == [100 * float(x) for x in ref.schedule]
    assert [s["kind"] for s in out["segments"]] == [s["kind"] for s in ref.segments]
    assert out["certificate"]["ok"] and out["certificate"]["relative_gap"] == ref.certificate.relative_gap
    assert out["config"] == cfg


def test_calibration_panel_gives_the_closed_forms():
    # (65): delta = 200 sqrt(0.01) = 20 bp; (75): alpha = 20e-4 / 0.01 = 0.2; (76): c_eff = 0.225 x 1 / 0.05 = 4.5
    out = calibrate({"elasticity": "0.225", "turnover": "1", "participation": "0.01", "margin": "0.05", "distortion_bps": ""})
    assert out["distortion_bps"] == pytest.approx(20.0, rel=1e-15)
    assert out["alpha"] == pytest.approx(0.2, rel=1e-15) and out["c_eff"] == pytest.approx(4.5, rel=1e-15)
    # (80) at the benchmark is 2.80 (eq. (45)): (1/m) dm/dsigma_ann = 2 / (alpha c_eff sqrt(252) m)
    assert out["cap"]["relative_dvol_annual"] == pytest.approx(2 / (0.9 * 252 ** 0.5 * 0.05), rel=1e-12)
    with pytest.raises(InputError, match="participation"):
        calibrate({"elasticity": "0.225", "turnover": "1", "participation": "2", "margin": "0.05"})
    with pytest.raises(InputError, match="elasticity = 'x' must be a number"):
        calibrate({"elasticity": "x", "turnover": "1", "participation": "0.01", "margin": "0.05"})


def test_presets_are_the_benchmark_and_every_cell_of_the_table_2_grid():
    presets = calibration_presets()
    assert len(presets) == 1 + 3 * 3 * 4
    cells = {(p["elasticity"], p["turnover"], p["participation"]) for p in presets[1:]}
    assert cells == {(e, t, f) for e in (0.15, 0.225, 0.30) for t in (0.5, 1.0, 2.0) for f in (0.005, 0.01, 0.02, 0.05)}
    for p in presets:
        assert p["distortion_bps"] == pytest.approx(200 * p["participation"] ** 0.5, rel=1e-12)   # (65)
        assert p["margin"] == 0.05


def test_a_rule_at_twice_the_cap_is_flagged_there_and_capped(explorer):
    """A rule linear in vol rising at 2K (K the cap on dM/dsigma, (18)) over half the grid: the local analysis finds the
    slope at twice the cap exactly there, and its capped version rises at the cap (saturated) across it."""
    K = 2 / (0.2 * 4.5)   # (40) with kappa = 0
    vol = [0.004, 0.02, 0.04]
    margin = [0.02, 0.03, 0.03 + 2 * K * 0.02]   # 0.625 per unit daily vol (under the cap), then 2K
    loaded = explorer.add_rule("csv", "vol_daily,margin\n" + "".join(f"{v!r},{m!r}\n" for v, m in zip(vol, margin)), "twice.csv")
    out = explorer.page(typed(BENCHMARK_CONFIG), loaded.id)
    r = out["rule"]
    assert r["max_slope_over_cap"] == pytest.approx(2.0, rel=1e-9)
    lo, hi = r["over_cap_pct"][-1]
    # from the knot at 2% daily vol to the last state but one (the table is flat beyond its last knot)
    assert lo == pytest.approx(100 * 252 ** 0.5 * 0.02, rel=0.01) and hi == pytest.approx(100 * 252 ** 0.5 * 0.04, rel=0.01)
    assert r["max_gain_bps"] > 0 and not r["falls"]
    assert out["target"] and "saturated" in [s["kind"] for s in out["segments"]]
    assert np.all(np.diff(out["margin_pct"]) / np.diff(out["vol_annual_pct"]) <= out["cap"]["slope_vol_annual"] * (1 + 1e-9))


def test_rules_are_size_limited_and_formulas_go_through_the_safe_parser(explorer, tmp_path):
    with pytest.raises(InputError, match="at most"):
        explorer.add_rule("csv", "vol_daily,margin\n" + "0.01,0.05\n" * (session.MAX_UPLOAD_BYTES // 10), "big.csv")
    with pytest.raises(InputError, match="at most 500"):
        explorer.add_rule("formula", "r+" * 300 + "r")
    canary = tmp_path / "canary"
    with pytest.raises(InputError):
        explorer.add_rule("formula", f"__import__('os').system('touch {canary}')")
    assert not canary.exists()
    # a file name typed as a formula is a (bad) formula, never a file read on the server
    with pytest.raises(InputError):
        explorer.add_rule("formula", str(EXAMPLES / "data" / "existing_schedule.csv"))
    with pytest.raises(InputError, match="percent|plausib|decimal|daily vol"):
        explorer.add_rule("csv", "vol_daily,margin\n1,5\n2,6\n", "percent.csv")
    with pytest.raises(InputError, match="no longer on the server"):
        explorer.rule("0123456789abcdef")


def test_rule_mode_exports_reproduce_with_the_command_line(explorer, tmp_path, capsys):
    from margin_design.cli import main

    loaded = explorer.add_rule("csv", "vol_daily,margin\n0.004,0.02\n0.015,0.06\n0.02,0.045\n0.04,0.09\n", "falling.csv")
    controls = typed(BENCHMARK_CONFIG)
    for what in ("toml", "target", "schedule", "rule_table_csv"):
        name, data = explorer.export(what, controls, loaded.id)
        (tmp_path / name).write_bytes(data)
    cfg = tomllib.loads((tmp_path / "margin-design.toml").read_text())
    assert cfg["objective"] == {"kind": "target", "file": session.TARGET_FILE}
    assert main(["report", str(tmp_path / "margin-design.toml"), "--out", str(tmp_path / "report")]) == 0
    assert (tmp_path / "rule_table.csv").read_bytes() == (tmp_path / "report" / "rule_table.csv").read_bytes()
    mine = json.loads((tmp_path / "schedule.json").read_text())
    assert "pooling" in [s["kind"] for s in mine["segments"]]
    with pytest.raises(InputError, match="no existing rule"):
        explorer.export("target", controls)
    with pytest.raises(InputError, match="not one of"):
        explorer.export("pdf", controls)
    capsys.readouterr()


def test_the_server_answers_one_sentence_and_refuses_foreign_hosts(monkeypatch):
    from margin_design.app.server import MAX_BODY_BYTES, Server

    explorer = Explorer(None)             # its own: stopping the server removes the explorer's temporary folder
    s = Server(explorer, "127.0.0.1", 0)
    thread = s.start_thread()
    try:
        def post(path, body, host=None):
            req = urllib.request.Request(s.url + path.lstrip("/"), data=body, headers={"Content-Type": "application/json"})
            if host:
                req.add_header("Host", host)
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    return r.status, r.read()
            except urllib.error.HTTPError as e:
                return e.code, e.read()

        code, body = post("api/solve", json.dumps({"config": typed(BENCHMARK_CONFIG)}).encode())
        assert code == 200 and json.loads(body)["certificate"]["ok"]
        code, body = post("api/solve", json.dumps({"config": typed(dict(BENCHMARK_CONFIG, market={"alpha": -1, "c_eff": 4.5}))}).encode())
        assert code == 400 and json.loads(body) == {"error": "market.alpha = -1.0 must be positive."}
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)   # announce a body over the limit, send none:
        conn.putrequest("POST", "/api/solve")                              # refused on the header, before it is read
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(MAX_BODY_BYTES + 1))
        conn.endheaders()
        r = conn.getresponse()
        assert r.status == 400 and "at most" in json.loads(r.read())["error"]
        conn.close()
        code, body = post("api/solve", b"{not json")
        assert code == 400 and json.loads(body) == {"error": "the request is not JSON; reload the page."}
        code, _ = post("api/solve", b"{}", host="attacker.example")      # DNS rebinding: refused before any work
        assert code == 400

        def broken(*a, **k):
            raise ZeroDivisionError("internal detail")

        monkeypatch.setattr(explorer, "page", broken)
        code, body = post("api/solve", json.dumps({"config": {}}).encode())
        err = json.loads(body)["error"]
        assert code == 500 and "ZeroDivisionError" in err and "Traceback" not in err and "internal detail" not in err
        with urllib.request.urlopen(s.url + "vendor/plotly.min.js", timeout=30) as r:   # served locally, no CDN
            assert r.status == 200 and b"plotly" in r.read(4096).lower()
    finally:
        s.stop(thread)
        monkeypatch.undo()


def _start_app(args, cwd) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "margin_design", "app", "--no-browser", "--port", "0", *args], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    end = time.monotonic() + START_TIMEOUT
    line = ""
    while time.monotonic() < end and proc.poll() is None:
        line = proc.stdout.readline()
        if "serving" in line:
            return proc, line.split("serving ", 1)[1].split()[0]
    proc.kill()
    raise AssertionError(f"margin-design app did not start: {line!r} {proc.stderr.read()!r}")


def test_the_app_command_serves_and_stops_cleanly_on_ctrl_c(tmp_path):
    proc, url = _start_app([str(EXAMPLES / "liquidation.toml")], tmp_path)
    try:
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url + "api/start", timeout=30) as r:
            start = json.loads(r.read())
        assert start["config_name"] == "liquidation.toml" and start["config"]["objective"]["liquidation_weight"] > 0
        with urllib.request.urlopen(url, timeout=30) as r:
            assert "default-src 'self'" in r.headers["Content-Security-Policy"]
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert err.strip() == "margin-design: interrupted; no file was left half-written.", err
    assert "Traceback" not in err


def test_the_app_command_refuses_with_one_sentence(tmp_path):
    import socket

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    for args, message in ((["no-such.toml"], "config file 'no-such.toml' cannot be read"),
                          (["--port", "70000"], "--port 70000 must be between 0 and 65535"),
                          (["--port", str(port)], f"cannot listen on 127.0.0.1:{port} (Address already in use); choose another --port")):
        p = subprocess.run([sys.executable, "-m", "margin_design", "app", "--no-browser", *args], cwd=tmp_path,
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 2 and p.stderr.count("\n") == 1 and message in p.stderr, p.stderr
    taken.close()


def test_another_host_is_served_only_with_a_warning(tmp_path):
    proc, url = _start_app(["--host", "0.0.0.0"], tmp_path)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert "warning: serving on 0.0.0.0" in err and "no login" in err


def test_no_library_layer_imports_the_explorer():
    """The explorer is an adapter like the command line: nothing in calibration, design, solvers, audit or reports
    imports margin_design.app (data flows one way, GUIDE.md)."""
    from test_architecture import ROOT, imported_modules

    for layer in ("calibration", "design", "solvers", "audit", "reports"):
        for path in sorted((ROOT / layer).glob("*.py")):
            mods = imported_modules(path, f"margin_design.{layer}")
            assert not [m for m in mods if m == "margin_design.app" or m.startswith("margin_design.app.")], path
