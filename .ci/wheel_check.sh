#!/usr/bin/env bash
# Non-editable install check: `pip install .` into a fresh venv, then prove that
# (1) everything imports under margin_design, (2) no generic top-level names are claimed,
# (3) the console script solves the bundled benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/venv"
# Reuse the project's venv as a local package cache so the check needs no second download.
"$tmp/venv/bin/python" -m pip install --quiet --upgrade pip
"$tmp/venv/bin/python" -m pip install --quiet .
cd "$tmp"
"$tmp/venv/bin/python" - <<'PY'
import importlib, importlib.util, sys
for name in ["margin_design", "margin_design.design", "margin_design.solvers",
             "margin_design.calibration", "margin_design.audit", "margin_design.reports", "margin_design.cli"]:
    importlib.import_module(name)
for generic in ["design", "solvers", "calibration", "audit", "reports"]:
    if importlib.util.find_spec(generic) is not None:
        sys.exit(f"the wheel claims the generic top-level name {generic!r}")
import margin_design
assert "site-packages" in margin_design.__file__, margin_design.__file__
from importlib.resources import files
for page_file in ("index.html", "app.js", "app.css"):   # the explorer's page ships in the wheel
    assert (files("margin_design.app") / "static" / page_file).is_file(), page_file
print("wheel imports ok from", margin_design.__file__)
PY
"$tmp/venv/bin/margin-design" solve "$OLDPWD/examples/benchmark.toml" --out "$tmp/out" >/dev/null
test -s "$tmp/out/schedule.json"
# without the optional extra [app], `margin-design app` says how to install it (one sentence, exit status 2)
status=0; "$tmp/venv/bin/margin-design" app --no-browser 2>"$tmp/app.err" || status=$?
test "$status" = 2 && grep -q "pip install 'margin-design\[app\]'" "$tmp/app.err"
echo "wheel-check: non-editable install solved the benchmark"
# (4) a user who can write neither the installed package nor a home folder can still solve (numba and JAX
# caches fall back to a private temporary folder). Root writes anywhere, so this step needs an ordinary
# user; as root, tests/test_startup.py runs the same check as nobody.
if [ "$(id -u)" != 0 ]; then
    mkdir "$tmp/tmp"
    chmod -R a-w "$tmp/venv/lib"
    status=0
    env -u NUMBA_CACHE_DIR -u XDG_CACHE_HOME -u JAX_COMPILATION_CACHE_DIR HOME=/nonexistent TMPDIR="$tmp/tmp" \
        "$tmp/venv/bin/margin-design" solve "$OLDPWD/examples/benchmark.toml" >/dev/null || status=$?
    chmod -R u+w "$tmp/venv/lib"
    test "$status" = 0
    echo "wheel-check: solved from a read-only install without a writable home folder"
fi
