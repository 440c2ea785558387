"""Benchmark (prints a table; not a test): the cvxpy reference path against a hand-written cvxpy model.

Problem: the benchmark market (examples/benchmark.toml) with a quadratic liquidation cost
(liquidation_weight = 0.05), n = 100, 1,000, 10,000 grid points. For each n:
* cvxpy path: seconds (cold: first solve at this size, including JAX compilation; then a warm solve
  of a freshly built problem, which includes the first-best and the convexity check), Newton
  iterations, certified relative gap;
* hand-written model an analyst would write: coverage by 128-node Gauss-Hermite quadrature with cp.pos,
  solved once by Clarabel; its seconds and the relative error of its objective (evaluated exactly)
  against the certified optimum.

Usage: python benchmarks/bench_solvers.py [--sizes 100 1000 10000] [--skip-hand-above N]
"""

from __future__ import annotations

import argparse
import time
import tomllib
from pathlib import Path

import cvxpy as cp
import numpy as np

from margin_design.design import problem_from_dict
from margin_design.solvers import solve

ROOT = Path(__file__).resolve().parents[1]


def benchmark_problem(n: int):
    cfg = tomllib.loads((ROOT / "examples" / "benchmark.toml").read_text())
    cfg["grid"]["points"] = n
    cfg["objective"]["liquidation_weight"] = 0.05
    return problem_from_dict(cfg)


def hand_written(problem, nodes: int = 128):
    """What an analyst would write: Gauss-Hermite coverage, cp.pos, one Clarabel solve."""
    z, wq = np.polynomial.hermite_e.hermegauss(nodes)  # probabilists' Hermite: weight exp(-z^2/2)
    wq = wq / wq.sum()
    o = problem.objective
    s = np.sqrt(o.shock.horizon_days * problem.r)
    x = cp.Variable(problem.n)
    losses = s[:, None] * z[None, :]                        # n x nodes loss scenarios
    cover = cp.sum(cp.multiply(problem.weights[:, None] * wq[None, :], cp.pos(losses - cp.reshape(x, (problem.n, 1), order="C"))))
    carry = o.carry * (problem.weights @ x)
    liq = 0.5 * o.liquidation_weight * o.c_eff**2 * cp.sum(cp.multiply(problem.weights, cp.square(cp.pos(x - o.prev_margin))))
    cons = [cp.diff(x) >= 0, cp.diff(x) <= problem.u]
    t0 = time.perf_counter()
    cp.Problem(cp.Minimize(cover + carry + liq), cons).solve(solver=cp.CLARABEL)
    return np.asarray(x.value), time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    ap.add_argument("--skip-hand-above", type=int, default=10000)
    args = ap.parse_args()
    head = (
        f"{'n':>7} | {'cold s':>7} {'cvxpy path s':>12} {'Newton it':>9} {'rel. gap':>9} |"
        f" {'hand-written s':>14} {'obj. rel. error':>15} | {'speed-up':>8}"
    )
    print(head)
    print("-" * len(head))
    for n in args.sizes:
        # "cold": first solve at this grid size, including JAX's one-off compilation for the shape;
        # "cvxpy path s": a second solve of a freshly built problem (what a sweep at this size pays).
        p = benchmark_problem(n)
        t0 = time.perf_counter()
        solve(p, method="cvxpy")
        t_cold = time.perf_counter() - t0
        p = benchmark_problem(n)
        t0 = time.perf_counter()
        res = solve(p, method="cvxpy")
        t_path = time.perf_counter() - t0
        hand = "-"
        err = "-"
        speed = "-"
        if n <= args.skip_hand_above:
            xh, t_hand = hand_written(p)
            jh = p.value(xh)
            hand = f"{t_hand:14.3f}"
            err = f"{(jh - res.objective['value']) / abs(res.objective['value']):15.2e}"
            speed = f"{t_hand / t_path:8.1f}x"
        print(
            f"{n:>7} | {t_cold:7.3f} {t_path:12.3f} {res.solver['iterations']:>9d} {res.certificate.relative_gap:9.1e} | {hand:>14} {err:>15} | {speed:>8}"
        )


if __name__ == "__main__":
    main()
