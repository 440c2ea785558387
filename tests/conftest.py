"""Shared fixtures and named tolerances."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# JAX writes persistent-cache entries in place, so two test workers compiling the same programme could read
# each other's half-written entry (a warning on stderr and a recompilation). Each worker gets its own cache.
os.environ["XDG_CACHE_HOME"] = str(Path(tempfile.gettempdir()) / "margin-design-test-cache" / os.environ.get("PYTEST_XDIST_WORKER", "main"))

from margin_design._runtime import configure_jax  # noqa: E402

configure_jax()  # float64 and the persistent compilation cache, as the package sets them

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


@pytest.fixture
def write_config(tmp_path):
    """Write a config text into tmp_path/config.toml and return its path."""

    def _write(text: str, name: str = "config.toml") -> Path:
        p = tmp_path / name
        p.write_text(text)
        return p

    return _write


BASE_CONFIG = """
[grid]
vol_min = 0.005
vol_max = 0.03
points = 40
spacing = "vol"

[states]
density = "lognormal"
median_vol = 0.01
dispersion = 0.5

[shock]
model = "normal"
horizon_days = 2

[objective]
kind = "cost"
loss = "shortfall"
carry = 0.01
prev_margin = 0.05

[market]
alpha = 0.2
c_eff = 4.5

[cap]
kind = "manipulation_proof"
input = "variance"
"""
