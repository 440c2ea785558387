"""Benchmark (prints a table; not a test): how fast ``margin-design app`` answers a slider move.

1. Solve, warm, at 400 states: ``problem_from_dict`` + ``solve`` (exact) of the benchmark with alpha moved, as the
   server does on every update (the issue's target: <= 50 ms).
2. Page update, input to redrawn plot, measured in the browser: the explorer is served on 127.0.0.1, Debian's
   chromium (driven by Playwright) moves the alpha slider one step at a time, MOVES times, waiting for each redraw;
   the page records performance.now() from the input event to the moment Plotly has redrawn all three plots
   (``window.__timings``; this includes the 40 ms debounce, the request, the validation, the solve, the JSON and the
   drawing). Target: <= 300 ms.

Usage: python benchmarks/bench_app.py [--moves 100] [--points 400]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def distribution(name: str, ms) -> str:
    a = np.asarray(ms, float)
    q = np.percentile(a, [0, 50, 90, 99, 100])
    return f"{name:<44} {a.size:>5} {q[0]:>8.1f} {q[1]:>8.1f} {q[2]:>8.1f} {q[3]:>8.1f} {q[4]:>8.1f}"


def solve_times(points: int, moves: int) -> list[float]:
    from margin_design.app.session import BENCHMARK_CONFIG
    from margin_design.design.config import problem_from_dict
    from margin_design.solvers import solve

    out = []
    for i in range(moves + 1):
        cfg = {s: dict(v) for s, v in BENCHMARK_CONFIG.items()}
        cfg["grid"]["points"] = points
        cfg["market"]["alpha"] = 0.2 + 0.001 * i
        t = time.perf_counter()
        solve(problem_from_dict(cfg))
        if i:     # the first solve compiles
            out.append(1e3 * (time.perf_counter() - t))
    return out


def page_times(points: int, moves: int) -> list[float]:
    from playwright.sync_api import sync_playwright

    from margin_design.app.server import Server
    from margin_design.app.session import Explorer

    server = Server(Explorer(None), "127.0.0.1", 0)
    thread = server.start_thread()
    exe = shutil.which("chromium")
    if exe is None:
        raise SystemExit("chromium (Debian package) is not installed")
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1500, "height": 1100})
            page.goto(server.url)
            wait(page, 1)
            if points != 400:
                page.fill("#ctl-grid-points", str(points))
                wait(page, 2)
            page.evaluate("window.__timings = []")
            page.focus("#slider-market-alpha")
            for i in range(moves):
                n = page.evaluate("window.__updates")
                page.keyboard.press("ArrowRight" if (i // 20) % 2 == 0 else "ArrowLeft")
                wait(page, n + 1)
            timings = page.evaluate("window.__timings")
            status = page.inner_text("#status")
            browser.close()
    finally:
        server.stop(thread)
    print(f"last status line: {status}")
    return timings


def wait(page, count: int, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if page.evaluate("window.__updates") >= count:
            return
        time.sleep(0.005)
    raise SystemExit(f"the page did not update within {timeout} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--moves", type=int, default=100)
    ap.add_argument("--points", type=int, default=400)
    args = ap.parse_args()
    solves = solve_times(args.points, args.moves)
    page = page_times(args.points, args.moves)
    print(f"{'milliseconds':<44} {'n':>5} {'min':>8} {'median':>8} {'p90':>8} {'p99':>8} {'max':>8}")
    print(distribution(f"solve, warm, {args.points} states (target <= 50)", solves))
    print(distribution("page update, input to redraw (target <= 300)", page))


if __name__ == "__main__":
    main()
