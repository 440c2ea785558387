"""Benchmark (prints a table; not a test): start-up time of the command line.

Rows: ``python -c "import jax"`` (the yardstick), ``margin-design --help``, ``margin-design calibrate threshold``
(a Table 5 row at the benchmark), and ``margin-design solve examples/benchmark.toml`` (400 states) with cold
caches (a fresh JAX cache folder via XDG_CACHE_HOME and a fresh NUMBA_CACHE_DIR: the first run on a machine)
and with warm caches (every run after the first). Python's byte-code caches are warm in every row (written
by a warm-up run under PYTHONPYCACHEPREFIX, as an installed package has them; PYTHONDONTWRITEBYTECODE is
dropped). Each command runs ``--repeat`` times in a fresh process;
a cell gives the minimum and the median wall seconds, and the minimum CPU seconds (user + system) of the
process. Other processes on the machine disturb single runs: the minimum is the most stable figure, and CPU
time is less sensitive to a busy machine than wall time. The last row is the warm solve over the jax import,
both by their minimum wall time (target: at most 2).

Each ``--python`` is one installation (default: the interpreter running this script); with several, the runs
are interleaved so that a busy spell affects them alike. To compare before and after:

    python benchmarks/bench_startup.py --python /path/to/main/.venv/bin/python .venv/bin/python

The console script next to each interpreter is used (``margin-design``), as a user would run it.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCHMARK = ROOT / "examples" / "benchmark.toml"
THRESHOLD = ["calibrate", "threshold", "--elasticity", "0.225", "--turnover", "1", "--participation", "0.01",
             "--margin-jump", "0.2", "--vol-rise", "10"]
ROWS = ('python -c "import jax"', "margin-design --help", "calibrate threshold",
        "solve, first run (cold caches)", "solve, second run (warm caches)")


def timed(cmd: list[str], env: dict, cwd: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of ``cmd`` in a fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed with status {proc.returncode}:\n{proc.stderr}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


class Installation:
    def __init__(self, python: str, tmp: str, index: int):
        self.python = str(Path(python).absolute())  # runs start in a temporary folder; keep venv symlinks as they are
        parents = Path(self.python).parents
        self.label = str(parents[2]) if len(parents) > 2 else self.python
        script = Path(self.python).parent / "margin-design"
        self.cli = [str(script)] if script.exists() else [self.python, "-m", "margin_design.cli"]
        self.tmp = f"{tmp}/{index}"
        os.makedirs(self.tmp)
        drop = ("NUMBA_", "JAX_", "XLA_", "MARGIN_DESIGN_", "PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")
        base = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
        # byte-code caches as an installed package has them (written by the warm-up run), kept out of the source tree
        self.base = base = dict(base, PYTHONPYCACHEPREFIX=f"{self.tmp}/pycache")
        self.warm = dict(base, XDG_CACHE_HOME=f"{self.tmp}/warm-xdg", NUMBA_CACHE_DIR=f"{self.tmp}/warm-numba")
        self.cold_runs = 0
        self.results: dict[str, list[tuple[float, float]]] = {row: [] for row in ROWS}

    def command(self, row: str) -> tuple[list[str], dict]:
        if row == ROWS[0]:
            return [self.python, "-c", "import jax"], self.warm
        if row == ROWS[1]:
            return self.cli + ["--help"], self.warm
        if row == ROWS[2]:
            return self.cli + THRESHOLD, self.warm
        solve = self.cli + ["solve", str(BENCHMARK)]
        if row == ROWS[3]:
            self.cold_runs += 1
            i = self.cold_runs
            return solve, dict(self.base, XDG_CACHE_HOME=f"{self.tmp}/cold-xdg-{i}", NUMBA_CACHE_DIR=f"{self.tmp}/cold-numba-{i}")
        return solve, self.warm

    def run(self, row: str, record: bool = True) -> None:
        cmd, env = self.command(row)
        result = timed(cmd, env, self.tmp)
        if record:
            self.results[row].append(result)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--python", nargs="+", default=[sys.executable], help="interpreters of the installations to time")
    ap.add_argument("--repeat", type=int, default=9, help="runs per cell (default: %(default)s)")
    ap.add_argument("--cold-repeat", type=int, default=3, help="cold-cache solve runs (default: %(default)s)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        installs = [Installation(py, tmp, i) for i, py in enumerate(args.python)]
        for inst in installs:  # warm-up: byte code of everything a solve imports, the warm caches
            inst.run(ROWS[4], record=False)
        for row in ROWS:
            for inst in installs:  # warm-up: the disk cache
                if row != ROWS[3]:
                    inst.run(row, record=False)
            for _ in range(args.cold_repeat if row == ROWS[3] else args.repeat):
                for inst in installs:
                    inst.run(row)
    cell = 30
    print(f"seconds: wall min / wall median / CPU min of {args.repeat} runs (cold solve: {args.cold_repeat}); "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end")
    head = f"{'command':<32}" + "".join(f" | {inst.label[-cell:]:>{cell}}" for inst in installs)
    print(head)
    print("-" * len(head))
    for row in ROWS:
        cells = ""
        for inst in installs:
            walls = [w for w, _ in inst.results[row]]
            cpus = [c for _, c in inst.results[row]]
            text = f"{min(walls):.3f} / {statistics.median(walls):.3f} / {min(cpus):.3f}"
            cells += f" | {text:>{cell}}"
        print(f"{row:<32}{cells}")
    ratios = "".join(
        f" | {min(w for w, _ in inst.results[ROWS[4]]) / min(w for w, _ in inst.results[ROWS[0]]):>{cell}.2f}"
        for inst in installs
    )
    print(f"{'warm solve / import jax':<32}{ratios}")


if __name__ == "__main__":
    main()
