"""Random valid design configurations across the supported cost family, for property tests and benchmarks.

``random_config(seed, folder)`` returns a config dict (the TOML contract of ``margin-design solve``) drawn
from every loss, shock, liquidation and participation form, state density, spacing and cap input, with
parameters in ranges a CCP analyst could plausibly set (daily vols 0.2%..8%, carry, weights and
impacts over orders of magnitude). An empirical shock writes its sample CSV into ``folder``. The same
seed gives the same configuration, so a failing case can be replayed from its seed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _logu(rng, lo, hi):
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def random_config(seed: int, folder: str | Path, *, points: tuple[int, int] = (20, 1000)) -> dict:
    """One random cost configuration (see the module docstring); ``points`` bounds the grid size."""
    rng = np.random.default_rng(seed)
    folder = Path(folder)
    vol_min = _logu(rng, 0.002, 0.008)
    cfg: dict = {
        "grid": {
            "vol_min": vol_min,
            "vol_max": _logu(rng, max(0.02, 3 * vol_min), 0.08),
            "points": int(round(_logu(rng, *points))),
            "spacing": str(rng.choice(["vol", "variance"])),
        },
        "states": {},
        "shock": {"horizon_days": float(rng.choice([1.0, 2.0, 5.0, 10.0]))},
        "objective": {"kind": "cost"},
        "market": {"alpha": _logu(rng, 0.05, 1.0), "c_eff": _logu(rng, 0.5, 30.0)},
        "cap": {},
    }
    if rng.random() < 0.7:
        cfg["states"] = {"density": "lognormal", "median_vol": _logu(rng, 0.005, 0.02), "dispersion": float(rng.uniform(0.2, 0.9))}
    else:
        cfg["states"] = {"density": "uniform"}
    model = str(rng.choice(["normal", "student_t", "empirical"]))
    cfg["shock"]["model"] = model
    if model == "student_t":
        cfg["shock"]["df"] = float(rng.uniform(2.5, 30.0))
    elif model == "empirical":
        df = rng.uniform(3.0, 10.0)
        y = rng.standard_t(df, int(rng.integers(200, 2000))) / np.sqrt(df / (df - 2.0))
        path = folder / f"shock_{seed}.csv"
        path.write_text("y\n" + "\n".join(repr(float(v)) for v in y) + "\n")
        cfg["shock"]["file"] = str(path)
        if rng.random() < 0.3:
            cfg["shock"]["bandwidth"] = float(rng.uniform(0.05, 0.5))
    o = cfg["objective"]
    o["loss"] = str(rng.choice(["shortfall", "squared_shortfall"]))
    o["carry"] = _logu(rng, 1e-3, 0.3) if o["loss"] == "shortfall" else _logu(rng, 1e-5, 2e-2)
    o["prev_margin"] = float(rng.choice([0.0, rng.uniform(0.0, 0.12)]))
    if rng.random() < 0.7:
        o["liquidation_cost"] = str(rng.choice(["quadratic", "linear"]))
        o["liquidation_weight"] = _logu(rng, 1e-3, 1e3) if o["liquidation_cost"] == "quadratic" else _logu(rng, 1e-4, 1.0)
    if rng.random() < 0.5:
        o["participation_cost"] = str(rng.choice(["linear", "quadratic"]))
        o["participation_weight"] = _logu(rng, 1e-4, 1.0)
        o["participation_beta"] = _logu(rng, 0.1, 50.0)
    if rng.random() < 0.3:
        cfg["market"]["inventory_penalty"] = float(rng.uniform(0.0, 0.5))
    c = cfg["cap"]
    if rng.random() < 0.1:
        c["kind"] = "none"
    else:
        c["input"] = str(rng.choice(["variance", "realized_variance", "ewma"]))
        if c["input"] == "realized_variance":
            c["window"] = int(rng.integers(1, 21))
        elif c["input"] == "ewma":
            c["lambda"] = float(rng.uniform(0.8, 0.99))
    return cfg
