"""Start-up (issue 9, part 4): what each command imports, the persistent JAX cache, and solving without a
writable home folder. Speed itself is measured in benchmarks/bench_startup.py, never asserted here.

Every check runs the command in a fresh interpreter (a subprocess), since imports and caches are per process.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import stat
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import pytest

from margin_design import _runtime

from conftest import EXAMPLES, ROOT

TIMEOUT = 600
#: Modules that a command which solves nothing must not import (seconds of start-up between them).
HEAVY = ("jax", "jaxlib", "numba", "llvmlite", "cvxpy", "scipy", "sympy", "matplotlib", "dask", "pandas", "statsmodels", "arch", "openpyxl")
MARKET = ["--elasticity", "0.225", "--turnover", "1", "--participation", "0.01"]
NO_SOLVE = [
    ["--help"],
    ["solve", "--help"],
    ["calibrate", "--help"],
    ["calibrate", "threshold", "--help"],
    ["calibrate", "cap", "--help"],
    ["report", "--help"],
    ["sweep", "--help"],
    ["audit", "--help"],
    ["calibrate", "threshold", *MARKET, "--margin-jump", "0.2", "--vol-rise", "10"],
    ["calibrate", "threshold", *MARKET, "--margin-jump", "0.2", "--json"],
    ["calibrate", "cap", *MARKET, "--margin", "0.05", "--vol", "0.01"],
    ["calibrate", "cap", *MARKET, "--margin", "0.05", "--json"],
]

# Runs the command line in-process and reports the exit status and which heavy modules it imported.
_IMPORTS_SCRIPT = """
import json, sys
from margin_design.cli import main
try:
    status = main(json.loads(sys.argv[1]))
except SystemExit as exc:  # --help exits through argparse
    status = exc.code or 0
heavy = sorted({name.split(".")[0] for name in sys.modules} & set(json.loads(sys.argv[2])))
print("\\n" + json.dumps({"status": status, "heavy": heavy}))
"""


def _imports(args: list[str], env: dict | None = None) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", _IMPORTS_SCRIPT, json.dumps(args), json.dumps(HEAVY)],
        capture_output=True, text=True, timeout=TIMEOUT, env=env,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("args", NO_SOLVE, ids=" ".join)
def test_commands_that_solve_nothing_import_no_jax_numba_or_cvxpy(args):
    got = _imports(args)
    assert got["status"] == 0
    assert got["heavy"] == []


def test_the_import_check_sees_jax_and_numba_when_a_command_solves():
    # the control for the test above: the same check on `solve` does see the heavy modules
    got = _imports(["solve", str(EXAMPLES / "benchmark.toml")])
    assert got["status"] == 0
    assert {"jax", "scipy"} <= set(got["heavy"])
    assert "cvxpy" not in got["heavy"]  # only --method cvxpy imports cvxpy
    # a 400-state design runs the solver's kernels as plain Python (solvers/_jit.py): numba is not even imported
    assert "numba" not in got["heavy"]
    forced = _imports(["solve", str(EXAMPLES / "benchmark.toml")], env=dict(os.environ, MARGIN_DESIGN_SMALL_N="0"))
    assert forced["status"] == 0 and "numba" in forced["heavy"]


# ----------------------------------------------------------------------------------------------
# the persistent compilation cache
# ----------------------------------------------------------------------------------------------

# Solves with the console entry point and prints, last, how many XLA programmes came from the disk cache.
_CACHE_HITS_SCRIPT = """
import json, sys
import jax.monitoring
hits = []
jax.monitoring.register_event_listener(lambda event, **kw: hits.append(event) if event == "/jax/compilation_cache/cache_hits" else None)
from margin_design.cli import main
status = main(sys.argv[1:])
print("\\n" + json.dumps({"status": status, "cache_hits": len(hits)}))
"""


def _without_solver_seconds(path: Path) -> dict:
    data = json.loads(path.read_text())
    data["solver"].pop("seconds")  # wall time of the solve: the one field that differs between runs
    return data


def test_second_solve_loads_compiled_programmes_from_the_cache_with_identical_results(tmp_path):
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "xdg"))
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    env.pop("JAX_ENABLE_COMPILATION_CACHE", None)
    cache = tmp_path / "xdg" / "margin-design" / "jax"
    runs = []
    for name in ("cold", "warm"):
        proc = subprocess.run(
            [sys.executable, "-c", _CACHE_HITS_SCRIPT, "solve", str(EXAMPLES / "benchmark.toml"), "--out", str(tmp_path / name)],
            capture_output=True, text=True, timeout=TIMEOUT, env=env,
        )
        assert proc.returncode == 0, proc.stderr
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        if name == "cold":
            entries = sorted(p.name for p in cache.iterdir() if p.name.endswith("-cache"))
    assert runs[0]["status"] == runs[1]["status"] == 0
    assert len(entries) >= 4  # the objective's jitted functions, at least
    # the cold run compiles (a programme requested twice in one run is a hit the second time), the warm one loads
    assert runs[0]["cache_hits"] < len(entries) <= runs[1]["cache_hits"]
    assert sorted(p.name for p in cache.iterdir() if p.name.endswith("-cache")) == entries  # nothing compiled anew
    assert (tmp_path / "cold" / "schedule.csv").read_bytes() == (tmp_path / "warm" / "schedule.csv").read_bytes()
    assert _without_solver_seconds(tmp_path / "cold" / "schedule.json") == _without_solver_seconds(tmp_path / "warm" / "schedule.json")


# ----------------------------------------------------------------------------------------------
# no writable home folder
# ----------------------------------------------------------------------------------------------


def _unavailable(reason: str):
    """Skip on a developer's machine; under CI (env var CI set) the missing tool is a failure."""
    if os.environ.get("CI"):
        pytest.fail(f"CI must run this test: {reason}")
    pytest.skip(reason)


def _install_read_only(dest: Path) -> Path:
    """Lay the package out as the wheel does (pyproject's package-dir), then make it read-only."""
    setup = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    target = dest / "site"
    for package, folder in setup["package-dir"].items():
        out = target.joinpath(*package.split("."))
        out.mkdir(parents=True, exist_ok=True)
        for src in (ROOT / folder).iterdir():
            if src.suffix == ".py" or src.name == "py.typed":
                shutil.copy2(src, out / src.name)
    for path in sorted(target.rglob("*"), reverse=True):
        path.chmod(0o555 if path.is_dir() else 0o444)
    target.chmod(0o555)
    return target


def _runner() -> list[str]:
    """The prefix that runs a command as a user who cannot write the package or the home folder."""
    if os.geteuid() != 0:
        return []  # an ordinary user cannot write the read-only copy
    for tool, prefix in (
        ("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "--"]),
        ("runuser", ["-u", "nobody", "--"]),
    ):
        path = shutil.which(tool)
        if path:
            return [path, *prefix]
    _unavailable("running as root, and neither setpriv nor runuser is available to switch to an unprivileged user")


def _interpreter(runner: list[str], deps: list[str]) -> str:
    """An interpreter of this Python version that the unprivileged user can run with this environment's packages."""
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    probe = f"import site, sys\nfor d in {deps!r}: site.addsitedir(d)\nimport numpy\nprint('%d.%d' % sys.version_info[:2])"
    candidates = [sys.executable, getattr(sys, "_base_executable", "")]
    candidates += [shutil.which(f"python{version}", path=p) or "" for p in ("/usr/local/bin", "/usr/bin", "/bin")]
    for exe in dict.fromkeys(c for c in candidates if c):
        try:
            proc = subprocess.run([*runner, exe, "-I", "-S", "-c", probe], capture_output=True, text=True, timeout=TIMEOUT, cwd="/")
        except OSError:
            continue
        if proc.returncode == 0 and proc.stdout.strip() == version:
            return exe
    _unavailable(f"no Python {version} that the unprivileged user can run with this environment's packages")


# Puts the read-only copy first on the path, the environment's packages after it, and runs the command line.
_SOLVE_SCRIPT = """
import json, site, sys
deps, package = json.loads(sys.argv[1]), sys.argv[2]
for d in deps:
    site.addsitedir(d)
sys.path.insert(0, package)
import margin_design.solvers
assert margin_design.solvers.__file__.startswith(package), margin_design.solvers.__file__
from margin_design.cli import main
sys.exit(main(sys.argv[3:]))
"""


def test_solve_runs_without_a_writable_home_or_package_folder(tmp_path):
    runner = _runner()
    deps = [d for d in [*site.getsitepackages(), site.getusersitepackages()] if os.path.isdir(d)]
    exe = _interpreter(runner, deps)
    # /tmp/pytest-of-<user> is private: the unprivileged user needs a folder it can reach
    box = Path(tempfile.mkdtemp(prefix="margin-design-nohome-"))
    try:
        box.chmod(0o755)
        package = _install_read_only(box)
        shutil.copy2(EXAMPLES / "benchmark.toml", box / "benchmark.toml")
        tmp = box / "tmp"  # the user's temporary folder (TMPDIR): the fallback for both caches
        tmp.mkdir()
        tmp.chmod(0o1777)
        # MARGIN_DESIGN_SMALL_N=0: compiled kernels even on this small grid, so that numba's cache is exercised
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/nonexistent", "TMPDIR": str(tmp), "MARGIN_DESIGN_SMALL_N": "0"}

        def run(**extra):
            cmd = [*runner, exe, "-I", "-S", "-c", _SOLVE_SCRIPT, json.dumps(deps), str(package), "solve", str(box / "benchmark.toml")]
            return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, env=dict(env, **extra), cwd="/")

        quiet = run()
        assert quiet.returncode == 0, quiet.stderr
        assert "CERTIFIED" in quiet.stdout
        # no message unless asked for
        assert not [line for line in quiet.stderr.splitlines() if "cache" in line.lower() or "margin-design" in line]
        loud = run(MARGIN_DESIGN_VERBOSE="1")
        assert loud.returncode == 0, loud.stderr
        uid = 65534 if runner else os.getuid()
        fallback = tmp / f"margin-design-{uid}"
        assert f"numba cache: {fallback / 'numba'}" in loud.stderr
        assert f"JAX compilation cache: {fallback / 'jax'}" in loud.stderr
        # both caches were written there, and the folder is private to the user
        assert list((fallback / "numba").rglob("*.nbi")) and list((fallback / "jax").iterdir())
        assert stat.S_IMODE(fallback.stat().st_mode) == 0o700
        # and the answer is the usual one
        from margin_design.design import load_problem
        from margin_design.solvers import solve

        expected = solve(load_problem(EXAMPLES / "benchmark.toml")).summary()
        for text in (quiet.stdout, loud.stdout):
            got = [line for line in text.splitlines() if "solver:" not in line]
            assert got == [line for line in expected.splitlines() if "solver:" not in line]
    finally:
        for path in box.rglob("*"):
            if path.is_dir() and not path.is_symlink():
                path.chmod(0o755)
        shutil.rmtree(box, ignore_errors=True)


# ----------------------------------------------------------------------------------------------
# the folders
# ----------------------------------------------------------------------------------------------


def test_cache_root_follows_xdg_and_ignores_a_relative_xdg_cache_home(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert _runtime.cache_root() == tmp_path / "margin-design"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert _runtime.cache_root() == tmp_path / "home" / ".cache" / "margin-design"


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="ownership checks need POSIX user ids")
def test_the_temporary_fallback_is_used_only_if_private(monkeypatch, tmp_path):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    folder = tmp_path / f"margin-design-{os.getuid()}"

    def fresh():
        monkeypatch.setattr(_runtime, "_state", {})
        return _runtime._private_temp_root()

    assert fresh() == folder and stat.S_IMODE(folder.stat().st_mode) == 0o700
    folder.chmod(0o777)  # others could plant compiled code in it
    assert fresh() is None
    folder.rmdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    folder.symlink_to(elsewhere)  # a link, possibly planted by someone else
    assert fresh() is None


# ----------------------------------------------------------------------------------------------
# the cap formulas on plain numbers: NumPy, same bits as jax.numpy
# ----------------------------------------------------------------------------------------------


def test_cap_formulas_give_the_same_bits_on_numbers_as_on_jax_scalars():
    import jax.numpy as jnp
    import numpy as np

    from margin_design.calibration import cap

    rng = np.random.default_rng(20260901)
    for _ in range(300):
        eps, tau, kappa = rng.uniform(0.01, 2.0), rng.uniform(0.05, 5.0), rng.uniform(0.0, 1.0)
        f, m, vol = rng.uniform(1e-4, 1.0), rng.uniform(1e-3, 1.0), rng.uniform(1e-4, 0.2)
        k, jump, pts = rng.uniform(1.0, 500.0), rng.uniform(0.0, 3.0), rng.uniform(0.0, 50.0)
        cases = [
            (cap.relative_cap_coefficient, (eps, tau, f, None, k, kappa)),
            (cap.vol_points_needed, (jump, eps, tau, f, None, k, kappa)),
            (cap.max_relative_margin_increase, (pts, eps, tau, f, None, k, kappa)),
            (cap.participation_for_distortion, (k * np.sqrt(f), k)),
        ]
        cal = cap.calibrate_market(eps, tau, f, m, impact_k=k, inventory_penalty=kappa)
        a, c = cal.alpha, cal.c_eff
        cases += [
            (cap.cap_dm_dr, (a, c, vol, kappa)),
            (cap.cap_relative_dvol_annual, (a, c, m, kappa)),
            (cap.alpha_c_eff, (eps, tau, m, f, float(cal.distortion_bps))),
        ]
        for fn, args in cases:
            plain = fn(*args)
            traced = fn(*(None if x is None else jnp.asarray(x) for x in args))
            assert type(plain).__module__ == "numpy"  # computed without JAX
            assert np.asarray(plain).tobytes() == np.asarray(traced).tobytes(), fn.__name__


def test_solve_does_not_import_the_whole_audit(tmp_path):
    """`margin-design solve` reaches the T-update bisection through margin_design.audit.updates; the audit package
    exports lazily (like margin_design.calibration), so a solve imports neither the audit's build nor its backtest
    (scipy.stats), and every exported name still resolves."""
    script = (
        "import json, sys\n"
        "from margin_design.cli import main\n"
        f"status = main(['solve', {str(EXAMPLES / 'benchmark.toml')!r}, '--out', {str(tmp_path / 'out')!r}])\n"
        "import margin_design.audit as audit\n"
        "loaded = sorted(m for m in ('margin_design.audit.build', 'margin_design.audit.backtest', 'scipy.stats') if m in sys.modules)\n"
        "resolved = all(getattr(audit, name) is not None for name in audit.__all__)\n"
        "print(json.dumps({'status': status, 'loaded': loaded, 'resolved': resolved}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out == {"status": 0, "loaded": [], "resolved": True}
