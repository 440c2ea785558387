"""Benchmark of the exact chain QP solver ``margin_design.solvers.chain.chain_qp``.

Problem: minimise sum_i a_i/2 (x_i - t_i)^2 s.t. 0 <= x_{i+1} - x_i <= u_i (two-stack derivative DP of
/work/shared/notes/chain-algorithms.md, section 6(a)). Instances: random-walk target with drift,
t = cumsum(N(0.3, 1)), a ~ U(0.5, 2), u ~ U(0.1, 1.5), which gives a mix of free, pooled and saturated links;
then the adversarial zig-zag t_i = (-1)^i i. For each n the table shows the numba time (best of --repeats,
after a warm-up call), the pure-Python backend time (up to --python-max-n), crossings per element, the
largest backend difference, the link mix and the certificate eta/|F| of section 1 (duality-gap bound,
active links taken at their bounds as the notes recommend).

Usage: python benchmarks/bench_chain.py [--repeats 5] [--python-max-n 100000] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from margin_design.solvers.chain import FREE, POOLED, SATURATED, chain_qp


def eta_over_F(a, t, u, x, codes) -> float:
    """Duality-gap bound eta / |F| (notes, section 1) after shifting x so that sum_i a_i (x_i - t_i) = 0."""
    x_bal = x - np.sum(a * (x - t)) / np.sum(a)
    G = np.cumsum(a * (x_bal - t))[:-1]
    u_eta = np.minimum(u, np.max(t) - np.min(t))
    d = np.where(codes == POOLED, 0.0, np.where(codes == SATURATED, u_eta, np.diff(x)))
    eta = np.sum(np.maximum(-G, 0) * d + np.maximum(G, 0) * np.maximum(u_eta - d, 0))
    F = 0.5 * np.sum(a * (x - t) ** 2)
    return float(eta / abs(F)) if F != 0 else float(eta)


def best_time(fn, repeats: int) -> tuple[float, object]:
    best, out = np.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def run(kind: str, sizes, repeats: int, python_max_n: int, seed: int) -> None:
    print(f"\n{kind} target")
    header = (
        f"{'n':>9} {'numba [s]':>10} {'python [s]':>11} {'cross/n':>8} {'max|dx|':>9} "
        f"{'free':>6} {'pooled':>6} {'sat':>6} {'eta/|F|':>9}"
    )
    print(header)
    print("-" * len(header))
    for n in sizes:
        rng = np.random.default_rng(seed + n)
        a = rng.uniform(0.5, 2.0, n)
        u = rng.uniform(0.1, 1.5, n - 1)
        t = np.cumsum(rng.normal(0.3, 1.0, n)) if kind == "random-walk" else (-1.0) ** np.arange(n) * np.arange(n)
        chain_qp(a, t, u)  # warm-up (the kernel is cached on disk after the first compilation)
        t_numba, res = best_time(lambda: chain_qp(a, t, u), repeats)
        if n <= python_max_n:
            t_python, res_py = best_time(lambda: chain_qp(a, t, u, backend="python"), 1)
            python_col = f"{t_python:11.4f}"
            diff_col = f"{np.max(np.abs(res.x - res_py.x)):9.1e}"
        else:
            python_col = f"{'-':>11}"
            diff_col = f"{'-':>9}"
        mix = np.bincount(res.codes, minlength=3) / max(n - 1, 1)
        print(
            f"{n:>9} {t_numba:10.4f} {python_col} {res.crossings / n:8.2f} {diff_col} "
            f"{mix[FREE]:6.3f} {mix[POOLED]:6.3f} {mix[SATURATED]:6.3f} "
            f"{eta_over_F(a, t, u, res.x, res.codes):9.1e}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--python-max-n", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sizes = [1_000, 10_000, 100_000, 1_000_000]
    for kind in ("random-walk", "zig-zag"):
        run(kind, sizes, args.repeats, args.python_max_n, args.seed)


if __name__ == "__main__":
    main()
