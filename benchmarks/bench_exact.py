"""Benchmark (prints tables; not a test): the exact path against the cvxpy reference, and a 10,000-solve sweep.

Problem: the benchmark market with a liquidation cost (examples/liquidation.toml), n grid points.
Table 1, for n = 10^3 ... 10^6: warm solve seconds of the exact path (a second solve of a freshly built
problem at the same size, so JAX's one-off compilation for the shape is excluded; set-up, i.e. first-best
and convexity check, reported separately), Newton iterations, certified relative gap; for n <= 10^4 also
the cvxpy path's warm seconds, the speed-up, and the agreement of the two (max |difference| of the
schedules, same segments).
Table 2: `margin-design sweep` with 10,000 configurations (100 alphas x 100 carries) at n = 400 on a
LocalCluster of 2 workers, total wall seconds including the cluster's start-up.

Usage: python benchmarks/bench_exact.py [--sizes ...] [--skip-sweep]
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import numpy as np

from margin_design.design import problem_from_dict
from margin_design.solvers import solve

ROOT = Path(__file__).resolve().parents[1]


def problem(n: int):
    cfg = tomllib.loads((ROOT / "examples" / "liquidation.toml").read_text())
    cfg["grid"]["points"] = n
    return problem_from_dict(cfg)


def timed(n: int, method: str):
    solve(problem(n), method=method)  # compile for this shape
    t0 = time.perf_counter()
    p = problem(n)
    t1 = time.perf_counter()
    res = solve(p, method=method)
    return res, time.perf_counter() - t1, t1 - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000, 1000000])
    ap.add_argument("--skip-sweep", action="store_true")
    args = ap.parse_args()
    head = (
        f"{'n':>8} | {'exact s':>8} {'set-up s':>8} {'Newton':>6} {'rel. gap':>9} |"
        f" {'cvxpy s':>8} {'speed-up':>8} {'max |dx|':>9} {'same segments':>13}"
    )
    print(head)
    print("-" * len(head))
    for n in args.sizes:
        ex, t_ex, t_setup = timed(n, "exact")
        cv_cols = f"{'-':>8} {'-':>8} {'-':>9} {'-':>13}"
        if n <= 10000:
            cv, t_cv, _ = timed(n, "cvxpy")
            same = [s["kind"] for s in cv.segments] == [s["kind"] for s in ex.segments] and np.array_equal(
                [s["start"] for s in cv.segments], [s["start"] for s in ex.segments]
            )
            cv_cols = f"{t_cv:8.3f} {t_cv / t_ex:7.1f}x {np.max(np.abs(cv.schedule - ex.schedule)):9.1e} {str(same):>13}"
        print(f"{n:>8} | {t_ex:8.3f} {t_setup:8.3f} {ex.solver['iterations']:>6d} {ex.certificate.relative_gap:9.1e} | {cv_cols}", flush=True)
    if not args.skip_sweep:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "sweep.csv"
            cmd = [sys.executable, "-m", "margin_design", "sweep", str(ROOT / "examples" / "liquidation.toml"),
                   "--vary", "market.alpha=0.1:0.4:100", "--vary", "objective.carry=0.005:0.03:100",
                   "--out", str(out), "--workers", "2", "--chunk", "1000"]
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True)
            wall = time.perf_counter() - t0
            rows = list(csv.DictReader(out.open())) if out.exists() else []
            certified = sum(r["certified"] == "True" for r in rows)
        print()
        print(f"{'sweep':>8} | {'configs':>8} {'n':>5} {'workers':>7} {'wall s':>8} {'certified':>9}")
        print(f"{'':>8} | {len(rows):>8} {400:>5} {2:>7} {wall:8.1f} {certified:>9}   (exit {proc.returncode})")


if __name__ == "__main__":
    main()
