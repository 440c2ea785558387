"""Benchmark (prints a table; not a test): start-up wall time of the command line.

Rows: ``python -c "import jax"`` (the yardstick), ``margin-design --help``, ``margin-design calibrate threshold``
(Table 5 row at the benchmark), and ``margin-design solve examples/benchmark.toml`` (400 states) with cold
caches (a fresh JAX cache folder via XDG_CACHE_HOME and a fresh NUMBA_CACHE_DIR: the first run on a machine)
and with warm caches (every run after the first). Each cell is the minimum and the median wall seconds over
``--repeat`` runs of a fresh process (other processes on the machine disturb single runs; the minimum is the
most stable figure). The last column is the warm solve over the jax import time (target: at most 2).

Each ``--python`` is one installation (default: the interpreter running this script), e.g. to compare
before and after:

    python benchmarks/bench_startup.py --python /work/main/.venv/bin/python .venv/bin/python

The console script next to each interpreter is used (``margin-design``), as a user would run it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCHMARK = ROOT / "examples" / "benchmark.toml"


def wall(cmd: list[str], env: dict, cwd: str) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed with status {proc.returncode}:\n{proc.stderr}")
    return dt


def measure(python: str, repeat: int, cold_repeat: int) -> dict[str, list[float]]:
    python = str(Path(python).absolute())  # the runs start in a temporary folder; keep venv symlinks as they are
    py = Path(python)
    script = py.parent / "margin-design"
    cli = [str(script)] if script.exists() else [python, "-m", "margin_design.cli"]
    base = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_", "JAX_", "XLA_", "MARGIN_DESIGN_"))}
    out: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        warm = dict(base, XDG_CACHE_HOME=f"{tmp}/warm-xdg", NUMBA_CACHE_DIR=f"{tmp}/warm-numba")
        commands = {
            'python -c "import jax"': [python, "-c", "import jax"],
            "margin-design --help": cli + ["--help"],
            "calibrate threshold": cli + ["calibrate", "threshold", "--elasticity", "0.225", "--turnover", "1",
                                          "--participation", "0.01", "--margin-jump", "0.2", "--vol-rise", "10"],
        }
        for name, cmd in commands.items():
            wall(cmd, warm, tmp)  # .pyc files, disk cache
            out[name] = [wall(cmd, warm, tmp) for _ in range(repeat)]
        solve = cli + ["solve", str(BENCHMARK)]
        cold = []
        for i in range(cold_repeat):
            env = dict(base, XDG_CACHE_HOME=f"{tmp}/cold-xdg-{i}", NUMBA_CACHE_DIR=f"{tmp}/cold-numba-{i}")
            cold.append(wall(solve, env, tmp))
        out["solve, first run (cold caches)"] = cold
        wall(solve, warm, tmp)  # fills the warm caches
        out["solve, second run (warm caches)"] = [wall(solve, warm, tmp) for _ in range(repeat)]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--python", nargs="+", default=[sys.executable], help="interpreters of the installations to time")
    ap.add_argument("--repeat", type=int, default=7, help="runs per cell (default: %(default)s)")
    ap.add_argument("--cold-repeat", type=int, default=3, help="cold-cache solve runs (default: %(default)s)")
    args = ap.parse_args()
    results = {py: measure(py, args.repeat, args.cold_repeat) for py in args.python}
    rows = list(next(iter(results.values())))
    labels = [str(Path(py).absolute().parents[2]) if len(Path(py).absolute().parents) > 2 else py for py in args.python]
    cell = 24
    head = f"{'command':<34}" + "".join(f" | {label[-cell:]:>{cell}}" for label in labels)
    print(f"wall seconds, min / median of {args.repeat} runs (cold solve: {args.cold_repeat} runs); {os.cpu_count()} cores")
    print(head)
    print("-" * len(head))
    for row in rows:
        cells = "".join(
            f" | {min(results[py][row]):>{cell // 2 - 1}.3f} / {statistics.median(results[py][row]):<{cell // 2 - 2}.3f}"
            for py in args.python
        )
        print(f"{row:<34}{cells}")
    jax_row, warm_row = rows[0], rows[-1]
    ratios = "".join(f" | {min(results[py][warm_row]) / min(results[py][jax_row]):>{cell}.2f}" for py in args.python)
    print(f"{'warm solve / import jax (min)':<34}{ratios}")


if __name__ == "__main__":
    main()
