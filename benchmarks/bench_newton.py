"""Newton iterations and certification over random configurations, and 10^6-state timings.

    python benchmarks/bench_newton.py [--configs 1000] [--seed 0] [--skip-large]

Part 1 solves ``--configs`` random configurations of the supported cost family (tests/random_configs.py:
every loss, shock, liquidation and participation form, state density, spacing and cap input; 20 to 1,000
states) on the exact path and prints the histogram of Newton iterations, the certificates, the relative
gaps and the agreement with the cvxpy path on a subsample. Part 2 times warm certified solves at 10^6
states for every shipped example and for the quadratic-liquidation configuration of issue 9 (lognormal
states, median daily vol 1.1%, dispersion 0.6, grid 0.4%..5%, horizon 2, carry 0.01, prev_margin 0.035,
liquidation weight 800). A second solve of a freshly built problem is the warm time (JAX and numba
compiled). The script runs against whatever ``margin_design`` is importable, so the same script measures
an older version (put its package first on PYTHONPATH).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import tomllib
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

try:  # the same script measures older versions, which set float64 themselves
    from margin_design._runtime import configure_jax  # noqa: E402

    jax = configure_jax()
except ImportError:  # pragma: no cover
    import jax  # noqa: E402

    jax.config.update("jax_enable_x64", True)

from random_configs import random_config  # noqa: E402

from margin_design.design.config import problem_from_dict  # noqa: E402
from margin_design.errors import MarginDesignError  # noqa: E402
from margin_design.solvers import solve  # noqa: E402

ZIGZAG = {
    "grid": {"vol_min": 0.004, "vol_max": 0.05, "points": 1000},
    "states": {"density": "lognormal", "median_vol": 0.011, "dispersion": 0.6},
    "shock": {"model": "normal", "horizon_days": 2.0},
    "objective": {"carry": 0.01, "prev_margin": 0.035, "liquidation_weight": 800.0},
    "market": {"alpha": 0.2, "c_eff": 4.5},
}
CVXPY_SAMPLE_MAX_N = 300   # states; the cvxpy comparison runs on configurations up to this size
CVXPY_EVERY = 5            # ... and on every 5th of them
AGREEMENT_WEIGHT = 1e-12   # compare margins where the state weight is at least this


def part1(count: int, seed0: int) -> None:
    iters, times, gaps, fails, floors = [], [], [], [], 0
    worst_diff = 0.0
    compared = 0
    kinds = Counter()
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(count):
            seed = seed0 + k
            cfg = random_config(seed, tmp)
            try:
                p = problem_from_dict(cfg, tmp)
            except MarginDesignError as exc:  # a random draw the loader refuses (reported, not hidden)
                fails.append((seed, f"refused: {exc}"))
                continue
            t0 = time.perf_counter()
            try:
                res = solve(p, method="exact")
            except MarginDesignError as exc:
                fails.append((seed, f"exact: {exc}"))
                continue
            times.append(time.perf_counter() - t0)
            iters.append(res.solver["iterations"])
            gaps.append(res.certificate.relative_gap)
            if not res.certificate.ok:
                fails.append((seed, "not certified"))
            floors += int(np.asarray(res.schedule)[0] <= 0.0)
            jax.clear_caches()  # each grid size compiles its own programmes; keep the process's memory maps bounded
            for s in res.segments:
                kinds[s["kind"]] += 1
            if p.n <= CVXPY_SAMPLE_MAX_N and k % CVXPY_EVERY == 0:
                try:
                    ref = solve(p, method="cvxpy")
                    heavy = p.weights >= AGREEMENT_WEIGHT
                    worst_diff = max(worst_diff, float(np.max(np.abs(ref.schedule - res.schedule)[heavy])))
                    compared += 1
                except MarginDesignError as exc:
                    fails.append((seed, f"cvxpy: {exc}"))
    it = np.asarray(iters)
    print(f"## Part 1: {count} random configurations (seeds {seed0}..{seed0 + count - 1}), exact path\n")
    print("| Newton iterations | configurations |")
    print("|---:|---:|")
    hist = Counter(iters)
    for v in sorted(hist):
        print(f"| {v} | {hist[v]} |")
    print()
    print("| statistic | value |")
    print("|---|---:|")
    print(f"| solved | {it.size} |")
    print(f"| median / mean / max Newton iterations | {np.median(it):.0f} / {it.mean():.2f} / {it.max()} |")
    print(f"| configurations above 15 iterations | {int(np.sum(it > 15))} |")
    print(f"| certified | {sum(1 for f in fails if f[1] == 'not certified') and it.size - sum(1 for f in fails if f[1] == 'not certified') or it.size} |")
    print(f"| largest relative gap | {max(gaps):.2e} |")
    print(f"| median / max solve time (s) | {np.median(times):.3f} / {max(times):.3f} |")
    print(f"| schedules with the first margin on the floor M = 0 | {floors} |")
    print(f"| segments by kind | {', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))} |")
    print(f"| compared with cvxpy (n <= {CVXPY_SAMPLE_MAX_N}) / largest margin difference | {compared} / {worst_diff:.1e} |")
    print(f"| failures | {len(fails)} |")
    for seed, why in fails[:20]:
        print(f"    seed {seed}: {why}")
    print()


def _example_config(name: str, points: int, tmp: Path) -> tuple[dict, Path]:
    path = ROOT / "examples" / f"{name}.toml"
    cfg = tomllib.loads(path.read_text())
    if cfg.get("objective", {}).get("kind") == "target":
        # the target file defines the states: interpolate it (linear in vol) onto `points` states
        from margin_design.csvio import read_csv_columns

        cols = read_csv_columns(path.parent / cfg["objective"]["file"], required=("vol", "target", "weight"), label="target")
        vol = np.linspace(cols["vol"][0], cols["vol"][-1], points)
        t = np.interp(vol, cols["vol"], cols["target"])
        w = np.interp(vol, cols["vol"], cols["weight"])
        f = tmp / f"{name}_{points}.csv"
        np.savetxt(f, np.column_stack([vol, t, w]), delimiter=",", header="vol,target,weight", comments="", fmt="%.17g")
        cfg["objective"]["file"] = str(f)
        return cfg, tmp
    cfg["grid"]["points"] = points
    return cfg, path.parent


def part2(points: int) -> None:
    print(f"## Part 2: certified solves at {points:,} states (warm = second solve of a freshly built problem)\n")
    print("| configuration | cold s | warm s | Newton | relative gap | certified |")
    print("|---|---:|---:|---:|---:|:---:|")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cases = [(n, *_example_config(n, points, tmp)) for n in ("benchmark", "liquidation", "cap_existing_schedule")]
        z = {k: dict(v) for k, v in ZIGZAG.items()}
        z["grid"]["points"] = points
        cases.append(("issue 9 quadratic liquidation", z, tmp))
        for name, cfg, folder in cases:
            cold = warm = None
            for attempt in range(2):
                p = problem_from_dict({k: dict(v) for k, v in cfg.items()}, folder)
                t0 = time.perf_counter()
                res = solve(p, method="exact")
                dt = time.perf_counter() - t0
                cold, warm = (dt, warm) if attempt == 0 else (cold, dt)
            c = res.certificate
            print(f"| {name} | {cold:.3f} | {warm:.3f} | {res.solver['iterations']} | {c.relative_gap:.1e} | {'yes' if c.ok else 'NO'} |")
    print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--skip-large", action="store_true")
    ap.add_argument("--skip-random", action="store_true")
    a = ap.parse_args()
    if not a.skip_random:
        part1(a.configs, a.seed)
    if not a.skip_large:
        part2(a.points)


if __name__ == "__main__":
    main()
