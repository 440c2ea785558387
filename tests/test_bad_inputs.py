"""A corpus of bad inputs across every subcommand (issue 9, part 6): each mistake gets one sentence, exit 2,
and nothing is lost.

Every case runs ``margin_design.cli.main(argv)`` in-process, in a fresh folder holding the case's files (also
the working folder), and checks: exit status 2; exactly one line on stderr, ``margin-design: error: ...``; no
traceback; nothing on stdout; the folder's files byte for byte as before (no output written, the user's files
untouched, no temporary left behind). Where the mistake is a config value (or a flag value) the sentence must
name the key and the value (``match``). A few cases run through a real subprocess of the installed
``margin-design`` script (real stderr, warnings), and one interrupts a long run with SIGINT.
"""

from __future__ import annotations

import copy
import errno
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from margin_design.cli import EXIT_INTERRUPTED, main

# ---------------------------------------------------------------------- configs

BASE = {
    "grid": {"vol_min": 0.005, "vol_max": 0.03, "points": 40, "spacing": "vol"},
    "states": {"density": "lognormal", "median_vol": 0.01, "dispersion": 0.5},
    "shock": {"model": "normal", "horizon_days": 2},
    "objective": {"kind": "cost", "loss": "shortfall", "carry": 0.01, "prev_margin": 0.05},
    "market": {"alpha": 0.2, "c_eff": 4.5},
    "cap": {"kind": "manipulation_proof", "input": "variance"},
}
TARGET = {
    "objective": {"kind": "target", "file": "t.csv"},
    "market": {"alpha": 0.2, "c_eff": 4.5},
    "cap": {"kind": "manipulation_proof", "input": "variance"},
}
GOOD_TARGET_CSV = "vol,target,weight\n0.01,0.02,1\n0.02,0.03,1\n0.03,0.05,1\n"
DIFF_T = "vol_daily,margin\n0.01,0.03\n0.02,0.05\n"   # a rule table: daily vol, margin ratio


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return json.dumps(v)


def config(set: dict | None = None, drop: tuple = (), base: dict = BASE) -> str:
    """TOML text of ``base`` with ``set`` ({"section.key": value}) applied and ``drop`` ("section" or "section.key") removed."""
    d = copy.deepcopy(base)
    for k, v in (set or {}).items():
        section, key = k.split(".")
        d.setdefault(section, {})[key] = v
    for k in drop:
        if "." in k:
            section, key = k.split(".")
            d[section].pop(key)
        else:
            d.pop(k)
    return "".join(f"[{s}]\n" + "".join(f"{k} = {_toml_value(v)}\n" for k, v in keys.items()) + "\n" for s, keys in d.items())


def target(csv: str, set: dict | None = None) -> dict:
    """Files of a target-mode config reading ``t.csv``."""
    return {"c.toml": config(set, base=TARGET), "t.csv": csv}


def tampered(edit):
    """A schedule.json file built from the session's solved schedule, changed by ``edit(dict)``."""

    def build(schedule_text: str) -> str:
        d = json.loads(schedule_text)
        edit(d)
        return json.dumps(d, indent=2)

    return build


def _fall(d):
    d["schedule"][5] = d["schedule"][4] - 0.01


def _over_cap(d):
    d["schedule"][-1] += 0.5


def _negative(d):
    d["schedule"] = [v - 1.0 for v in d["schedule"]]


def _short(d):
    d["weights"] = d["weights"][:-1]


def _version(d):
    d["version"] = 2


def _no_cap(d):
    d.pop("cap")


# ---------------------------------------------------------------------- the corpus
# (id, argv, files {relative path: text | bytes | callable(schedule.json text)}, regex the sentence must match)

SOLVE = ["solve", "c.toml", "--out", "out"]
C = {"c.toml": config()}
Y_CSV = "y\n" + "".join(f"{v}\n" for v in (0.1, -0.5, 1.2, 0.3, 2.5, -1.0, 0.7, 0.0, 1.5, -0.2, 0.4, -0.8))
W_CSV = "vol,weight\n0.005,1\n0.01,2\n0.02,2\n0.03,1\n"
EMPIRICAL = {"shock.model": "empirical", "shock.file": "y.csv"}
TABLE_STATES = {"states.density": "table", "states.file": "w.csv"}
NO_LOGNORMAL = ("states.median_vol", "states.dispersion")

CASES = [
    # --- plausibility of config values (a percentage typed for a decimal, and absurd magnitudes)
    ("vol_max percent", SOLVE, {"c.toml": config({"grid.vol_max": 4})},
     r"grid\.vol_max = 4\.0 is a daily volatility of 400%; write decimals \(0\.04 for 4% a day\); daily vols above 0\.5 are refused\.$"),
    ("vol_max 1e200", SOLVE, {"c.toml": config({"grid.vol_max": 1e200})}, r"grid\.vol_max = 1e\+200 is a daily volatility of 1e\+202%; daily vols above 0\.5"),
    ("vol_max 0.6", SOLVE, {"c.toml": config({"grid.vol_max": 0.6})}, r"grid\.vol_max = 0\.6 is a daily volatility of 60%"),
    ("vol_min 1e-200", SOLVE, {"c.toml": config({"grid.vol_min": 1e-200})}, r"grid\.vol_min = 1e-200 is a daily volatility .*below 1e-06"),
    ("vol_min 1e-7", SOLVE, {"c.toml": config({"grid.vol_min": 1e-7})}, r"grid\.vol_min = 1e-07 is a daily volatility"),
    ("vol_min percent", SOLVE, {"c.toml": config({"grid.vol_min": 1, "grid.vol_max": 3})}, r"grid\.vol_min = 1\.0 is a daily volatility of 100%"),
    ("points int64 max", SOLVE, {"c.toml": config({"grid.points": 9223372036854775807})}, r"grid\.points = 9223372036854775807 is above the maximum of 10,000,000"),
    ("points 1e9", SOLVE, {"c.toml": config({"grid.points": 10**9})}, r"grid\.points = 1000000000 is above the maximum"),
    ("points 1e7+1", SOLVE, {"c.toml": config({"grid.points": 10**7 + 1})}, r"grid\.points = 10000001 is above"),
    ("points closer than float64", SOLVE, {"c.toml": config({"grid.vol_min": 0.01, "grid.vol_max": 0.01 + 1e-15, "grid.points": 1000})},
     r"grid\.points = 1000 states .* closer together than float64"),
    # --- costs so steep at prev_margin that float64 cannot certify the answer (issue 9, part 5)
    ("liquidation weight 1e300", SOLVE, {"c.toml": config({"objective.liquidation_weight": 1e300})},
     r"objective\.liquidation_weight = 1e\+300 with market\.c_eff = 4\.5 makes the cost at prev_margin .* times steeper than the coverage cost"),
    ("liquidation weight 1e8", SOLVE, {"c.toml": config({"objective.liquidation_weight": 1e8})}, r"objective\.liquidation_weight = 1e\+08 with .* makes the cost"),
    ("linear liquidation weight 1e300", SOLVE, {"c.toml": config({"objective.liquidation_weight": 1e300, "objective.liquidation_cost": "linear"})},
     r"objective\.liquidation_weight = 1e\+300 with .* makes the cost"),
    ("participation weight 1e12", SOLVE,
     {"c.toml": config({"objective.participation_weight": 1e12, "objective.participation_beta": 2.0, "objective.participation_cost": "quadratic"})},
     r"objective\.participation_weight = 1e\+12 with .* makes the cost"),
    ("participation beta 1e300", SOLVE,
     {"c.toml": config({"objective.participation_weight": 0.1, "objective.participation_beta": 1e300})}, r"objective\.participation_weight = 0\.1 with objective\.participation_beta = 1e\+300 makes the cost"),
    ("median_vol percent", SOLVE, {"c.toml": config({"states.median_vol": 1.5})}, r"states\.median_vol = 1\.5 is a daily volatility of 150%"),
    ("median_vol 1e-300", SOLVE, {"c.toml": config({"states.median_vol": 1e-300})}, r"states\.median_vol = 1e-300 is a daily volatility"),
    ("dispersion 1e300", SOLVE, {"c.toml": config({"states.dispersion": 1e300})},
     r"states\.median_vol = 0\.01 with states\.dispersion = 1e\+300 puts no probability mass"),
    ("prev_margin percent", SOLVE, {"c.toml": config({"objective.prev_margin": 5})},
     r"objective\.prev_margin = 5\.0 is a margin ratio of 500% of notional; write decimals \(0\.05 for 5%\)"),
    ("prev_margin 1e300", SOLVE, {"c.toml": config({"objective.prev_margin": 1e300})}, r"objective\.prev_margin = 1e\+300 is a margin ratio"),
    ("alpha 1e-300", SOLVE, {"c.toml": config({"market.alpha": 1e-300})}, r"market\.alpha = 1e-300 with market\.c_eff = 4\.5 gives the slope cap"),
    ("alpha 1e300", SOLVE, {"c.toml": config({"market.alpha": 1e300})}, r"market\.alpha = 1e\+300 is a price impact"),
    ("alpha 1e200", SOLVE, {"c.toml": config({"market.alpha": 1e200})}, r"market\.alpha = 1e\+200 is a price impact"),
    ("alpha in bp", SOLVE, {"c.toml": config({"market.alpha": 20})}, r"market\.alpha = 20\.0 is a price impact of 2000% per ADV"),
    ("alpha 1e-10", SOLVE, {"c.toml": config({"market.alpha": 1e-10})}, r"market\.alpha = 1e-10 .* slope cap K = 4\.44e\+09"),
    ("c_eff 1e-300", SOLVE, {"c.toml": config({"market.c_eff": 1e-300})}, r"market\.c_eff = 1e-300 gives the slope cap"),
    ("c_eff 1e-8", SOLVE, {"c.toml": config({"market.c_eff": 1e-8})}, r"market\.c_eff = 1e-08 gives the slope cap"),
    ("c_eff 1e300", SOLVE, {"c.toml": config({"market.c_eff": 1e300})}, r"market\.c_eff = 1e\+300 is 1e\+300 ADV"),
    ("inventory penalty 1e10", SOLVE, {"c.toml": config({"market.inventory_penalty": 1e10})}, r"market\.inventory_penalty = 10000000000\.0 gives the slope cap"),
    ("df 1e300", SOLVE, {"c.toml": config({"shock.model": "student_t", "shock.df": 1e300})}, r"shock\.df = 1e\+300 is more degrees of freedom"),
    ("df 1e7", SOLVE, {"c.toml": config({"shock.model": "student_t", "shock.df": 1e7})}, r"shock\.df = 10000000\.0 is more degrees of freedom"),
    ("horizon 1e300", SOLVE, {"c.toml": config({"shock.horizon_days": 1e300})}, r"shock\.horizon_days = 1e\+300 is a margin period of risk"),
    ("horizon 500", SOLVE, {"c.toml": config({"shock.horizon_days": 500})}, r"shock\.horizon_days = 500\.0 is a margin period of risk of 500 days"),
    ("carry 1e-300", SOLVE, {"c.toml": config({"objective.carry": 1e-300})}, r"objective\.carry = 1e-300 is below 1e-12"),
    ("carry 1e-17", SOLVE, {"c.toml": config({"objective.carry": 1e-17})}, r"objective\.carry = 1e-17 is below 1e-12"),
    # --- keys that do not apply
    ("df with normal", SOLVE, {"c.toml": config({"shock.df": 5})}, r"shock\.df = 5\.0 applies only to shock\.model = 'student_t', not 'normal'"),
    ("bandwidth with normal", SOLVE, {"c.toml": config({"shock.bandwidth": 0.3})}, r"shock\.bandwidth = 0\.3 applies only to shock\.model = 'empirical'"),
    ("negative bandwidth with student_t", SOLVE, {"c.toml": config({"shock.model": "student_t", "shock.df": 5, "shock.bandwidth": -5})},
     r"shock\.bandwidth = -5\.0 applies only to shock\.model = 'empirical', not 'student_t'"),
    ("negative bandwidth with empirical", SOLVE, {"c.toml": config({**EMPIRICAL, "shock.bandwidth": -1}), "y.csv": Y_CSV},
     r"shock\.bandwidth = -1\.0 must be positive"),
    ("shock file with normal", SOLVE, {"c.toml": config({"shock.file": "y.csv"}), "y.csv": Y_CSV}, r"shock\.file = 'y\.csv' applies only to shock\.model = 'empirical'"),
    ("states file with lognormal", SOLVE, {"c.toml": config({"states.file": "w.csv"}), "w.csv": W_CSV},
     r"states\.file = 'w\.csv' applies only to states\.density = 'table', not 'lognormal'"),
    ("median_vol with uniform", SOLVE, {"c.toml": config({"states.density": "uniform"}, drop=("states.dispersion",))},
     r"states\.median_vol = 0\.01 applies only to states\.density = 'lognormal', not 'uniform'"),
    ("dispersion with uniform", SOLVE, {"c.toml": config({"states.density": "uniform"}, drop=("states.median_vol",))},
     r"states\.dispersion = 0\.5 applies only to states\.density = 'lognormal', not 'uniform'"),
    ("median_vol with table", SOLVE, {"c.toml": config(TABLE_STATES, drop=("states.dispersion",)), "w.csv": W_CSV},
     r"states\.median_vol = 0\.01 applies only to states\.density = 'lognormal', not 'table'"),
    ("objective file in cost mode", SOLVE, {"c.toml": config({"objective.file": "t.csv"}), "t.csv": GOOD_TARGET_CSV},
     r"objective\.file = 't\.csv' applies only to objective\.kind = 'target', not 'cost'"),
    ("window with variance input", SOLVE, {"c.toml": config({"cap.window": 5})}, r"cap\.window = 5 applies only to cap\.input = 'realized_variance'"),
    ("lambda with variance input", SOLVE, {"c.toml": config({"cap.lambda": 0.9})}, r"cap\.lambda = 0\.9 applies only to cap\.input = 'ewma'"),
    ("target with carry", SOLVE, target(GOOD_TARGET_CSV, {"objective.carry": 0.01}), r"objective\.carry does not apply with objective\.kind = 'target'"),
    ("target with grid", SOLVE, {"c.toml": config({"grid.points": 3, "grid.vol_min": 0.01, "grid.vol_max": 0.02}, base=TARGET), "t.csv": GOOD_TARGET_CSV},
     r"section \[grid\] must be absent"),
    # --- files read by the config: shocks, states, targets
    ("constant empirical sample", SOLVE, {"c.toml": config(EMPIRICAL), "y.csv": "y\n" + "0.5\n" * 20},
     r"shock\.file = 'y\.csv' has 20 observations all equal to 0\.5, so the kernel bandwidth"),
    ("empirical y 1e300", SOLVE, {"c.toml": config(EMPIRICAL), "y.csv": Y_CSV + "1e300\n"}, r"shock\.file = 'y\.csv' has y = 1e\+300 in row 14"),
    ("empirical 5 observations", SOLVE, {"c.toml": config(EMPIRICAL), "y.csv": "y\n1\n2\n3\n4\n5\n"}, r"shock\.file = 'y\.csv' has 5 observations; at least 10"),
    ("empirical missing file", SOLVE, {"c.toml": config(EMPIRICAL)}, r"shock\.file = '.*y\.csv' does not exist"),
    ("empirical no y column", SOLVE, {"c.toml": config(EMPIRICAL), "y.csv": "loss\n1\n2\n"}, r"shock\.file = '.*y\.csv' has no column 'y'"),
    ("empirical inf", SOLVE, {"c.toml": config(EMPIRICAL), "y.csv": Y_CSV + "inf\n"}, r"shock\.file = '.*y\.csv' has the non-finite value 'inf'"),
    ("states vol percent", SOLVE, {"c.toml": config(TABLE_STATES, drop=NO_LOGNORMAL), "w.csv": "vol,weight\n4,1\n"},
     r"states\.file = 'w\.csv' has vol = 4 in row 2, which is a daily volatility of 400%"),
    ("states weights overflow", SOLVE, {"c.toml": config(TABLE_STATES, drop=NO_LOGNORMAL), "w.csv": "vol,weight\n0.01,1e308\n0.02,1e308\n"},
     r"states\.file = 'w\.csv' column weight sums to more than float64"),
    ("states negative weight", SOLVE, {"c.toml": config(TABLE_STATES, drop=NO_LOGNORMAL), "w.csv": "vol,weight\n0.01,-1\n0.02,1\n"},
     r"states\.file = 'w\.csv' column weight has a negative mass -1\."),
    ("states vol outside grid", SOLVE, {"c.toml": config(TABLE_STATES, drop=NO_LOGNORMAL), "w.csv": "vol,weight\n0.04,1\n"},
     r"states\.file has vol = 0\.04 outside the grid \[0\.005, 0\.03\]"),
    ("target curvature all zero", SOLVE, target("vol,target,weight,curvature\n0.01,0.02,1,0\n0.02,0.03,1,0\n0.03,0.05,1,0\n"),
     r"objective\.file = 't\.csv' column curvature is zero in every state"),
    ("target weights 1e308", SOLVE, target("vol,target,weight\n0.01,0.02,1e308\n0.02,0.03,1e308\n0.03,0.05,1e308\n"),
     r"objective\.file = 't\.csv' column weight sums to more than float64"),
    ("target 1e300", SOLVE, target("vol,target,weight\n0.01,1e300,1\n0.02,-1e300,1\n0.03,0.05,1\n"),
     r"objective\.file = 't\.csv' has target = 1e\+300 in row 2, which is a margin ratio of 1e\+302%"),
    ("target -1e300", SOLVE, target("vol,target,weight\n0.01,-1e300,1\n0.02,1e300,1\n0.03,0.05,1\n"),
     r"objective\.file = 't\.csv' has target = -1e\+300 in row 2, which is not a non-negative margin ratio"),
    ("target percent", SOLVE, target("vol,target,weight\n0.01,5,1\n0.02,6,1\n0.03,7,1\n"),
     r"has target = 5 in row 2, which is a margin ratio of 500% of notional; write decimals \(0\.05 for 5%\)"),
    ("target negative", SOLVE, target("vol,target,weight\n0.01,-0.5,1\n0.02,0.03,1\n0.03,0.05,1\n"), r"has target = -0\.5 in row 2"),
    ("target vol percent", SOLVE, target("vol,target,weight\n1,0.05,1\n2,0.06,1\n3,0.07,1\n"),
     r"has vol = 1 in row 2, which is a daily volatility of 100%; write decimals \(0\.01 for 1% a day\)"),
    ("target vol 1e-300", SOLVE, target("vol,target,weight\n1e-300,0.02,1\n0.02,0.03,1\n0.03,0.05,1\n"), r"has vol = 1e-300 in row 2"),
    ("target vol not increasing", SOLVE, target("vol,target,weight\n0.01,0.02,1\n0.01,0.03,1\n0.03,0.05,1\n"), r"column vol must be strictly increasing, but row 3"),
    ("target two rows", SOLVE, target("vol,target,weight\n0.01,0.02,1\n0.02,0.03,1\n"), r"objective\.file = 't\.csv' has 2 rows; at least 3"),
    ("target negative curvature", SOLVE, target("vol,target,weight,curvature\n0.01,0.02,1,1\n0.02,0.03,1,-1\n0.03,0.05,1,1\n"),
     r"curvature h = -1 < 0 at vol = 0\.02 \(row 3\): the objective is not convex"),
    ("target zero weight", SOLVE, target("vol,target,weight\n0.01,0.02,0\n0.02,0.03,1\n0.03,0.05,1\n"), r"column weight has 0; weights must be positive"),
    ("target no weight column", SOLVE, target("vol,target\n0.01,0.02\n0.02,0.03\n0.03,0.05\n"), r"has no column 'weight'"),
    ("target missing file", SOLVE, {"c.toml": config(base=TARGET)}, r"objective\.file = '.*t\.csv' does not exist"),
    ("target file not utf-8", SOLVE, {"c.toml": config(base=TARGET), "t.csv": b"vol,target,weight\n\xff\xfe,1,1\n"}, r"cannot be read as CSV"),
    # --- config syntax and types
    ("not toml", SOLVE, {"c.toml": "[grid\nvol_min = "}, r"config file 'c\.toml' is not valid TOML"),
    ("config not utf-8", SOLVE, {"c.toml": b"\xff\xfe[grid]\n"}, r"config file 'c\.toml' is not valid TOML"),
    ("config missing", ["solve", "none.toml"], {}, r"config file 'none\.toml' cannot be read"),
    ("config is a folder", ["solve", "d"], {"d/x.txt": "x"}, r"config file 'd' cannot be read"),
    ("unknown section", SOLVE, {"c.toml": config() + "[extra]\nx = 1\n"}, r"unknown section \[extra\]"),
    ("unknown key", SOLVE, {"c.toml": config({"grid.step": 2})}, r"unknown key grid\.step = 2"),
    ("points as string", SOLVE, {"c.toml": config({"grid.points": "40"})}, r"grid\.points = '40' must be a finite integer"),
    ("points as float", SOLVE, {"c.toml": config({"grid.points": 40.5})}, r"grid\.points = 40\.5 must be a finite integer"),
    ("alpha bool", SOLVE, {"c.toml": config({"market.alpha": True})}, r"market\.alpha = True must be a finite number"),
    ("alpha nan", SOLVE, {"c.toml": config().replace("alpha = 0.2", "alpha = nan")}, r"market\.alpha = nan must be a finite number"),
    ("alpha inf", SOLVE, {"c.toml": config().replace("alpha = 0.2", "alpha = inf")}, r"market\.alpha = inf must be a finite number"),
    ("points 2", SOLVE, {"c.toml": config({"grid.points": 2})}, r"grid\.points = 2 must be an integer >= 3"),
    ("vol_max below vol_min", SOLVE, {"c.toml": config({"grid.vol_max": 0.004})}, r"grid\.vol_max = 0\.004 must be greater than grid\.vol_min = 0\.005"),
    ("cap window 0", SOLVE, {"c.toml": config({"cap.input": "realized_variance", "cap.window": 0})}, r"cap\.window = 0 must be an integer >= 1"),
    ("cap lambda 1.5", SOLVE, {"c.toml": config({"cap.input": "ewma", "cap.lambda": 1.5})}, r"cap\.lambda = 1\.5 must be in \(0, 1\)"),
    ("realized without window", SOLVE, {"c.toml": config({"cap.input": "realized_variance"})}, r"missing required key cap\.window"),
    ("cap window 1e9", SOLVE, {"c.toml": config({"cap.input": "realized_variance", "cap.window": 10**9})},
     r"cap\.window = 1000000000 is a realised-variance window of 1000000000 days"),
    ("ewma lambda near 1", SOLVE, {"c.toml": config({"cap.input": "ewma", "cap.lambda": 0.9999999999999999})},
     r"and cap\.lambda = 0\.9999999999999999 gives the slope cap K = 2\.11e\+08"),
    ("cap kind unknown", SOLVE, {"c.toml": config({"cap.kind": "soft"})}, r"cap\.kind = 'soft' is not one of"),
    ("missing market", SOLVE, {"c.toml": config(drop=("market",))}, r"missing required key market\.alpha"),
    ("lognormal without median", SOLVE, {"c.toml": config(drop=("states.median_vol",))}, r"missing required key states\.median_vol"),
    # --- solve --out
    ("solve out is a file", SOLVE, {**C, "out": "my notes"}, r"--out 'out' is an existing file, and --out names a folder; the file is left untouched"),
    ("solve out is cwd", ["solve", "c.toml", "--out", "."], C, r"--out '\.' is the current folder or one of its parents"),
    ("solve out is parent", ["solve", "c.toml", "--out", ".."], C, r"--out '\.\.' is the current folder or one of its parents"),
    ("solve out holds the config", ["solve", "d/c.toml", "--out", "d"], {"d/c.toml": config()}, r"--out 'd' contains the input 'd/c\.toml'"),
    ("solve out has foreign files", SOLVE, {**C, "out/notes.txt": "mine", "out/schedule.json": "{}"},
     r"--out 'out' is a folder holding files margin-design did not write \(for example 'notes\.txt'\)"),
    ("solve out below a file", ["solve", "c.toml", "--out", "f/out"], {**C, "f": "x"}, r"--out 'f/out' cannot be written: 'f' is a file"),
    ("solve out empty", ["solve", "c.toml", "--out", ""], C, r"--out is empty"),
    # --- report
    ("report falling margins", ["report", "s.json", "--out", "r"], {"s.json": tampered(_fall)},
     r"schedule file 's\.json' has margins that fall from .* a margin rule must be non-decreasing, so it is not published"),
    ("report step above cap", ["report", "s.json", "--out", "r"], {"s.json": tampered(_over_cap)}, r"above the cap increment .* not published"),
    ("report negative margin", ["report", "s.json", "--out", "r"], {"s.json": tampered(_negative)}, r"has the negative margin -0\.9.* must be >= 0"),
    ("report short arrays", ["report", "s.json", "--out", "r"], {"s.json": tampered(_short)}, r"arrays of inconsistent lengths"),
    ("report version 2", ["report", "s.json", "--out", "r"], {"s.json": tampered(_version)}, r"has version = 2"),
    ("report no cap key", ["report", "s.json", "--out", "r"], {"s.json": tampered(_no_cap)}, r"has no key 'cap'"),
    ("report not json", ["report", "s.json", "--out", "r"], {"s.json": "{not json"}, r"is not valid JSON"),
    ("report json list", ["report", "s.json", "--out", "r"], {"s.json": "[1, 2]"}, r"does not hold a JSON object"),
    ("report missing input", ["report", "none.json", "--out", "r"], {}, r"schedule file 'none\.json' cannot be read"),
    ("report txt input", ["report", "s.txt", "--out", "r"], {"s.txt": "x"}, r"input 's\.txt' must be a \.toml configuration or a schedule\.json"),
    ("report round 1e-300", ["report", "s.json", "--out", "r", "--round", "1e-300"], {"s.json": tampered(lambda d: None)}, r"--round 1e-300 is finer than 1e-08"),
    ("report round 2", ["report", "s.json", "--out", "r", "--round", "2"], {"s.json": tampered(lambda d: None)}, r"--round 2\.0 must be a tick size in \(0, 1\)"),
    ("report round 0", ["report", "s.json", "--out", "r", "--round", "0"], {"s.json": tampered(lambda d: None)}, r"--round 0\.0 must be a tick size"),
    ("report tolerance -1", ["report", "s.json", "--out", "r", "--tolerance", "-1"], {"s.json": tampered(lambda d: None)}, r"--tolerance -1\.0 must be"),
    ("report knots 1", ["report", "s.json", "--out", "r", "--knots", "1"], {"s.json": tampered(lambda d: None)}, r"--knots 1 must be an integer >= 2"),
    ("report knots huge", ["report", "s.json", "--out", "r", "--knots", "100000"], {"s.json": tampered(lambda d: None)}, r"--knots 100000 exceeds"),
    ("report steps 0", ["report", "s.json", "--out", "r", "--steps", "0"], {"s.json": tampered(lambda d: None)}, r"--steps"),
    ("report bad date", ["report", "s.json", "--out", "r", "--effective-date", "July 1"], {"s.json": tampered(lambda d: None)},
     r"--effective-date 'July 1' is not an ISO date"),
    ("report margin level percent", ["report", "s.json", "--out", "r", "--margin-level", "5"], {"s.json": tampered(lambda d: None)},
     r"--margin-level = 5\.0 must be a margin ratio in \(0, 1\]"),
    ("report participation 3", ["report", "s.json", "--out", "r", "--participation", "3"], {"s.json": tampered(lambda d: None)}, r"--participation = 3\.0"),
    ("report elasticity nan", ["report", "s.json", "--out", "r", "--elasticity", "nan"], {"s.json": tampered(lambda d: None)}, r"--elasticity = nan"),
    ("report out is a file", ["report", "s.json", "--out", "r"], {"s.json": tampered(lambda d: None), "r": "my file"}, r"--out 'r' is an existing file"),
    ("report out is cwd", ["report", "s.json", "--out", "."], {"s.json": tampered(lambda d: None)}, r"--out '\.' is the current folder"),
    ("report out holds the input", ["report", "d/schedule.json", "--out", "d"], {"d/schedule.json": tampered(lambda d: None)},
     r"--out 'd' contains the input 'd/schedule\.json'"),
    ("report out has foreign files", ["report", "s.json", "--out", "r"], {"s.json": tampered(lambda d: None), "r/keep.txt": "old"},
     r"--out 'r' is a folder holding files margin-design did not write \(for example 'keep\.txt'\)"),
    ("report of a bad config", ["report", "c.toml", "--out", "r"], {"c.toml": config({"grid.vol_max": 4})}, r"grid\.vol_max = 4\.0 is a daily volatility"),
    # --- audit
    ("audit seed -1", ["audit", "0.1+r", "--market", "c.toml", "--seed", "-1"], C, r"--seed -1 must be a non-negative integer"),
    ("audit window 0", ["audit", "0.1+r", "--market", "c.toml", "--window", "0"], C, r"--window 0 must be an integer number of days from 1 to 250"),
    ("audit window -5", ["audit", "0.1+r", "--market", "c.toml", "--window", "-5"], C, r"--window -5 must be"),
    ("audit paths 10", ["audit", "0.1+r", "--market", "c.toml", "--paths", "10"], C, r"--paths 10 must be an integer >= 100"),
    ("audit paths 1e9", ["audit", "0.1+r", "--market", "c.toml", "--paths", "1000000000"], C, r"--paths 1000000000 is above the maximum"),
    ("audit sim window 1", ["audit", "0.1+r", "--market", "c.toml", "--sim-window", "1"], C, r"--sim-window 1 must be an integer >= 2"),
    ("audit sim window 1e9", ["audit", "0.1+r", "--market", "c.toml", "--sim-window", "1000000000"], C, r"--sim-window 1000000000 is above"),
    ("audit max horizon 9", ["audit", "0.1+r", "--market", "c.toml", "--max-horizon", "9"], C, r"--max-horizon 9 must be an integer from 1 to 6"),
    ("audit horizon days 0", ["audit", "0.1+r", "--market", "c.toml", "--horizon-days", "0"], C, r"--horizon-days 0 must be"),
    ("audit horizon days 1e9", ["audit", "0.1+r", "--market", "c.toml", "--horizon-days", "1000000000"], C, r"--horizon-days 1000000000 must be"),
    ("audit floor-vol percent", ["audit", "0.1+r", "--market", "c.toml", "--floor-vol", "2"], C,
     r"--floor-vol = 2\.0 is a daily volatility of 200%; write decimals \(0\.02 for 2% a day\)"),
    ("audit buffer-release-vol 5", ["audit", "0.1+r", "--market", "c.toml", "--buffer", "0.25", "--buffer-release-vol", "5"], C,
     r"--buffer-release-vol = 5\.0 is a daily volatility of 500%"),
    ("audit stressed-vol 1e300", ["audit", "0.1+r", "--market", "c.toml", "--stressed-weight", "0.25", "--stressed-vol", "1e300"], C,
     r"--stressed-vol = 1e\+300 is a daily volatility"),
    ("audit floor percent", ["audit", "0.1+r", "--market", "c.toml", "--floor", "5"], C, r"--floor = 5\.0 is a margin ratio of 500%"),
    ("audit tick 0", ["audit", "0.1+r", "--market", "c.toml", "--tick", "0"], C, r"--tick = 0\.0 is not a positive margin ratio"),
    ("audit addon vol percent", ["audit", "0.1+r", "--market", "c.toml", "--addon", "3:0.01"], C, r"--addon 3\.0:0\.01: VOL = 3\.0 is a daily volatility of 300%"),
    ("audit addon amount percent", ["audit", "0.1+r", "--market", "c.toml", "--addon", "0.02:7"], C, r"--addon 0\.02:7\.0: AMOUNT = 7\.0 is a margin ratio"),
    ("audit addon syntax", ["audit", "0.1+r", "--market", "c.toml", "--addon", "x"], C, r"--addon 'x' must be VOL:AMOUNT"),
    ("audit last return 1e300", ["audit", "0.1+r", "--market", "c.toml", "--last-return", "1e300"], C, r"--last-return must be .* got 1e\+300"),
    ("audit trim 1e300", ["audit", "0.1+r", "--market", "c.toml", "--trim", "1e300"], C, r"--trim must be .* got 1e\+300"),
    ("audit execution cost 2", ["audit", "0.1+r", "--market", "c.toml", "--execution-cost", "2"], C, r"--execution-cost must be .* got 2"),
    ("audit funding spread -1", ["audit", "0.1+r", "--market", "c.toml", "--funding-spread", "-1"], C, r"--funding-spread must be .* got -1"),
    ("audit trigger 2", ["audit", "0.1+r", "--market", "c.toml", "--trigger", "2"], C, r"--trigger must be"),
    ("audit coverage 1.5", ["audit", "0.1+r", "--market", "c.toml", "--coverage", "1.5"], C, r"--coverage 1\.5 must be in \(0, 1\)"),
    ("audit accounts without chi", ["audit", "0.1+r", "--market", "c.toml", "--accounts", "a.csv"], {**C, "a.csv": "equity,benefit\n1,1\n"},
     r"--accounts needs --chi"),
    ("audit data txt", ["audit", "0.1+r", "--market", "c.toml", "--data", "p.txt"], C, r"--data 'p\.txt' must be 'sp500' or a \.csv file"),
    ("audit rule '-r'", ["audit", "-r", "--market", "c.toml"], C, r"'-r' starts with '-' and reads as an option: put a value like it after '--'"),
    ("audit decreasing formula", ["audit", "--market", "c.toml", "--", "-r"], C, r"formula M = -r .* gives the negative margin"),
    ("audit rule csv not monotone", ["audit", "rule.csv", "--market", "c.toml"], {**C, "rule.csv": "vol,margin\n0.01,0.05\n0.02,0.03\n"},
     r"rule table .* is not monotone"),
    ("audit rule table vol percent", ["audit", "rule.csv", "--market", "c.toml"], {**C, "rule.csv": "vol,margin\n1,0.05\n2,0.06\n"},
     r"rule table rule\.csv has vol = 1 in row 2, which is a daily volatility of 100%"),
    ("audit rule table margin percent", ["audit", "rule.csv", "--market", "c.toml"], {**C, "rule.csv": "vol,margin\n0.01,5\n0.02,6\n"},
     r"rule table rule\.csv has margin = 5 in row 2, which is a margin ratio of 500%"),
    ("audit rule file floor percent", ["audit", "r.toml", "--market", "c.toml"], {**C, "r.toml": '[rule]\nformula = "0.01+2*sigma"\n[overlays]\nfloor = 5\n'},
     r"overlay floor = 5\.0 of r\.toml is a margin ratio of 500%"),
    ("audit market config bad", ["audit", "0.1+r", "--market", "c.toml"], {"c.toml": config({"grid.vol_max": 4})}, r"grid\.vol_max = 4\.0 is a daily volatility"),
    ("audit market missing", ["audit", "0.1+r", "--market", "none.toml"], {}, r"config file 'none\.toml' cannot be read"),
    ("audit out is a file", ["audit", "0.1+r", "--market", "c.toml", "--out", "a"], {**C, "a": "mine"}, r"--out 'a' is an existing file"),
    ("audit out has foreign files", ["audit", "0.1+r", "--market", "c.toml", "--out", "a"], {**C, "a/mine.txt": "mine"}, r"did not write \(for example 'mine\.txt'\)"),
    ("audit out is cwd", ["audit", "0.1+r", "--market", "c.toml", "--out", "."], C, r"--out '\.' is the current folder"),
    ("audit out holds the market", ["audit", "0.1+r", "--market", "a/c.toml", "--out", "a"], {"a/c.toml": config()}, r"--out 'a' contains the input 'a/c\.toml'"),
    # --- calibrate
    ("tables impact-k 1e308", ["calibrate", "tables", "--impact-k", "1e308"], {}, r"--impact-k must be at most 10000 bp .* got 1e\+308"),
    ("tables impact-k -1", ["calibrate", "tables", "--impact-k", "-1"], {}, r"--impact-k must be positive"),
    ("tables json folder", ["calibrate", "tables", "--json", "d"], {"d/x": "x"}, r"--json 'd' is a folder; give a file name"),
    ("cap json folder", ["calibrate", "cap", "--elasticity", "0.225", "--turnover", "1", "--participation", "0.01", "--margin", "0.05", "--json", "d"],
     {"d/x": "x"}, r"--json 'd' is a folder"),
    ("cap elasticity -1", ["calibrate", "cap", "--elasticity", "-1", "--turnover", "1", "--participation", "0.01", "--margin", "0.05"], {},
     r"--elasticity must be positive"),
    ("cap participation 2", ["calibrate", "cap", "--elasticity", "0.225", "--turnover", "1", "--participation", "2", "--margin", "0.05"], {},
     r"--participation must be a fraction of ADV in \(0, 1\], got 2"),
    ("cap margin percent", ["calibrate", "cap", "--elasticity", "0.225", "--turnover", "1", "--participation", "0.01", "--margin", "5"], {},
     r"--margin must be a margin ratio in \(0, 1\], got 5"),
    ("cap vol percent", ["calibrate", "cap", "--elasticity", "0.225", "--turnover", "1", "--participation", "0.01", "--margin", "0.05", "--vol", "2"], {},
     r"--vol = 2\.0 is a daily volatility of 200%"),
    ("cap vol 0", ["calibrate", "cap", "--elasticity", "0.225", "--turnover", "1", "--participation", "0.01", "--margin", "0.05", "--vol", "0"], {},
     r"--vol must be a positive daily volatility"),
    ("cap distortion 1e5", ["calibrate", "cap", "--elasticity", "0.225", "--turnover", "1", "--participation", "0.01", "--margin", "0.05",
                            "--distortion-bps", "1e5"], {}, r"--distortion-bps must be at most 10000 bp"),
    ("cap impact and distortion", ["calibrate", "cap", "--elasticity", "0.225", "--turnover", "1", "--participation", "0.01", "--margin", "0.05",
                                   "--impact-k", "200", "--distortion-bps", "20"], {}, r"argument --distortion-bps: not allowed with argument --impact-k"),
    ("cap missing margin", ["calibrate", "cap", "--elasticity", "0.225", "--turnover", "1", "--participation", "0.01"], {},
     r"the following arguments are required: --margin \(see margin-design calibrate cap --help\)"),
    ("cap append to missing file", ["calibrate", "cap", "--elasticity", "0.225", "--turnover", "1", "--participation", "0.01", "--margin", "0.05",
                                    "--append-market", "none.toml"], {}, r"--append-market names 'none\.toml', which is not an existing config file"),
    ("cap append with market", ["calibrate", "cap", "--elasticity", "0.225", "--turnover", "1", "--participation", "0.01", "--margin", "0.05",
                                "--append-market", "c.toml"], C, r"c\.toml already has a \[market\] block"),
    ("cap append implausible alpha", ["calibrate", "cap", "--elasticity", "0.225", "--turnover", "1", "--participation", "0.01", "--margin", "0.05",
                                      "--distortion-bps", "5000", "--append-market", "c.toml"], {"c.toml": config(drop=("market",))},
     r"--append-market would write market\.alpha = 50\.0 .* values above 10 are refused"),
    ("cap append with json folder", ["calibrate", "cap", "--elasticity", "0.225", "--turnover", "1", "--participation", "0.01", "--margin", "0.05",
                                     "--append-market", "c.toml", "--json", "d"], {"c.toml": config(drop=("market",)), "d/x": "x"}, r"--json 'd' is a folder"),
    ("gain margin down", ["calibrate", "gain", "--elasticity", "0.225", "--turnover", "1", "--participation", "0.01", "--margin-from", "0.07",
                          "--margin-to", "0.05"], {}, r"--margin-to must exceed --margin-from"),
    ("gain margin-from 0", ["calibrate", "gain", "--elasticity", "0.225", "--turnover", "1", "--participation", "0.01", "--margin-from", "0",
                            "--margin-to", "0.05"], {}, r"--margin-from must be a margin ratio in \(0, 1\], got 0"),
    ("gain execution cost -1", ["calibrate", "gain", "--elasticity", "0.225", "--turnover", "1", "--participation", "0.01", "--margin-from", "0.05",
                                "--margin-to", "0.07", "--execution-cost", "-1"], {}, r"--execution-cost must be non-negative, got -1"),
    ("gain json folder", ["calibrate", "gain", "--elasticity", "0.225", "--turnover", "1", "--participation", "0.01", "--margin-from", "0.05",
                          "--margin-to", "0.07", "--json", "d"], {"d/x": "x"}, r"--json 'd' is a folder"),
    ("threshold margin jump 1e308", ["calibrate", "threshold", "--turnover", "1", "--margin-jump", "1e308", "--json"], {},
     r"the result vol_points_needed = inf is not a finite number .*--margin-jump 1e\+308"),
    ("threshold margin jump 1e308 text", ["calibrate", "threshold", "--turnover", "1", "--margin-jump", "1e308"], {}, r"vol_points_needed = inf"),
    ("threshold vol rise 1e308", ["calibrate", "threshold", "--turnover", "1", "--vol-rise", "1e308"], {}, r"max_relative_margin_increase = inf .*--vol-rise 1e\+308"),
    ("threshold turnover 1e308", ["calibrate", "threshold", "--turnover", "1e308", "--margin-jump", "0.2"], {}, r"vol_points_needed = inf .*--turnover 1e\+308"),
    ("threshold participation 1e-308", ["calibrate", "threshold", "--turnover", "1", "--margin-jump", "0.2", "--participation", "1e-308"], {},
     r"--participation = 1e-308 is below 1e-06 of ADV"),
    ("threshold neither", ["calibrate", "threshold", "--turnover", "1"], {}, r"give --margin-jump .* or --vol-rise"),
    ("threshold jump -1", ["calibrate", "threshold", "--turnover", "1", "--margin-jump", "-1"], {}, r"--margin-jump must be non-negative, got -1"),
    ("elasticity missing file", ["calibrate", "elasticity", "none.csv"], {}, r"none\.csv"),
    ("elasticity lags -1", ["calibrate", "elasticity", "e.csv", "--lags", "-1"], {"e.csv": "margin,position\n0.05,1\n"}, r"--lags must be a non-negative integer, got -1"),
    ("elasticity confidence 1", ["calibrate", "elasticity", "e.csv", "--confidence", "1"], {"e.csv": "margin,position\n0.05,1\n"}, r"--confidence must be in \(0, 1\), got 1"),
    ("elasticity no margin column", ["calibrate", "elasticity", "e.csv"], {"e.csv": "m,position\n0.05,1\n0.06,2\n"}, r"margin"),
    ("accounts missing file", ["calibrate", "accounts", "none.csv", "--margin", "0.05"], {}, r"none\.csv"),
    ("accounts margin 0", ["calibrate", "accounts", "a.csv", "--margin", "0"], {"a.csv": "equity,target\n1,12\n"}, r"--margin must be a margin ratio in \(0, 1\], got 0"),
    ("accounts negative equity", ["calibrate", "accounts", "a.csv", "--margin", "0.05"], {"a.csv": "equity,target\n-1,12\n2,20\n"}, r"column 'equity' of a\.csv must be positive"),
    ("data lambda without ewma", ["calibrate", "data", "--dataset", "sp500", "--out", "d.toml", "--lambda", "0.5"], {},
     r"--lambda 0\.5 applies only to --risk-input ewma, not realized_variance"),
    ("data window with ewma", ["calibrate", "data", "--dataset", "sp500", "--out", "d.toml", "--risk-input", "ewma", "--window", "5"], {},
     r"--window 5 applies only to --risk-input realized_variance, not ewma"),
    ("data points 1e9", ["calibrate", "data", "--dataset", "sp500", "--out", "d.toml", "--points", "1000000000"], {}, r"--points 1000000000 is above the maximum"),
    ("data out folder", ["calibrate", "data", "--dataset", "sp500", "--out", "d"], {"d/x": "x"}, r"--out 'd' is a folder"),
    ("data out not toml", ["calibrate", "data", "--dataset", "sp500", "--out", "d.txt"], {}, r"--out must name a \.toml file, got 'd\.txt'"),
    ("data out sibling folder", ["calibrate", "data", "--dataset", "sp500", "--out", "d.toml"], {"d.states.csv/x": "x"}, r"--out 'd\.states\.csv' is a folder"),
    ("data window 0", ["calibrate", "data", "--dataset", "sp500", "--out", "d.toml", "--window", "0"], {}, r"--window must be a positive integer number of days"),
    ("data lambda 1", ["calibrate", "data", "--dataset", "sp500", "--out", "d.toml", "--risk-input", "ewma", "--lambda", "1"], {}, r"--lambda must be in \(0, 1\), got 1"),
    ("data csv missing", ["calibrate", "data", "--csv", "p.csv", "--out", "d.toml"], {}, r"p\.csv"),
    ("data csv bad date", ["calibrate", "data", "--csv", "p.csv", "--out", "d.toml"], {"p.csv": "date,close\n2020-01-01,1\n2020-13-01,2\n"},
     r"is not an ISO date"),
    # --- user CSV formats read with pandas (margin_design/csvio.py): what stays refused, in one sentence
    ("data csv missing close", ["calibrate", "data", "--csv", "p.csv", "--out", "d.toml"], {"p.csv": "date,close\n2020-01-01,1\n2020-01-02,NA\n"},
     r"p\.csv' has a missing value \('NA'\) in column 'close', row 3; every row needs a number there"),
    ("data csv unquoted thousands", ["calibrate", "data", "--csv", "p.csv", "--out", "d.toml"], {"p.csv": "date,close\n2020-01-01,1,234.5\n"},
     r"p\.csv' has 3 cells in row 2 but its header has 2 columns; quote a number written with thousands separators"),
    ("data csv percent close", ["calibrate", "data", "--csv", "p.csv", "--out", "d.toml"], {"p.csv": "date,close\n2020-01-01,5%\n"},
     r"has '5%' in column 'close', row 2; a percent sign is read only in the ratio and volatility columns"),
    ("data csv ambiguous dates", ["calibrate", "data", "--csv", "p.csv", "--out", "d.toml"], {"p.csv": "date,close\n01/02/2020,1\n03/04/2020,2\n"},
     r"column 'date' of p\.csv has '01/02/2020' in row 2, which is not an ISO date \(YYYY-MM-DD\), and no day in the column is above 12"),
    ("data csv empty date", ["calibrate", "data", "--csv", "p.csv", "--out", "d.toml"], {"p.csv": "date,close\n2020-01-01,1\n,2\n"},
     r"column 'date' of p\.csv has an empty cell in row 3; every row needs a date"),
    ("data csv semicolons", ["calibrate", "data", "--csv", "p.csv", "--out", "d.toml"], {"p.csv": "date;close\n2020-01-01;1,5\n"},
     r"p\.csv' looks semicolon-separated \(header 'date;close'\); save it comma-separated"),
    ("data csv close twice", ["calibrate", "data", "--csv", "p.csv", "--out", "d.toml"], {"p.csv": "date,close,close\n2020-01-01,1,2\n"},
     r"p\.csv' has the column 'close' 2 times; keep one"),
    ("target decimal comma", SOLVE, target('vol,target,weight\n0.01,"0,02",1\n0.02,0.03,1\n0.03,0.05,1\n'),
     r"objective\.file = 't\.csv' has the non-numeric value '0,02' in column 'target', row 2 \(decimals take a point"),
    ("states percent weight", SOLVE, {"c.toml": config(TABLE_STATES, drop=NO_LOGNORMAL), "w.csv": "vol,weight\n0.01,50%\n0.02,50%\n"},
     r"states\.file = 'w\.csv' has '50%' in column 'weight', row 2; a percent sign is read only in the ratio and volatility columns"),
    ("target percent vol too big", SOLVE, target("vol,target,weight\n1%,5%,1\n200%,6%,1\n300%,7%,1\n"),
     r"has vol = 2 in row 3, which is a daily volatility of 200%"),
    ("audit rule table empty margin", ["audit", "rule.csv", "--market", "c.toml"], {**C, "rule.csv": "vol,margin\n0.01,\n0.02,0.06\n"},
     r"rule = 'rule\.csv' has an empty cell in column 'margin', row 2"),
    ("elasticity NA position", ["calibrate", "elasticity", "e.csv"], {"e.csv": "margin,position\n0.05,1\n0.06,#N/A\n"},
     r"e\.csv' has a missing value \('#N/A'\) in column 'position', row 3"),
    ("data quantiles reversed", ["calibrate", "data", "--dataset", "sp500", "--out", "d.toml", "--vol-quantiles", "0.9", "0.1"], {},
     r"--vol-quantiles must satisfy 0 <= low < high <= 1"),
    ("data carry 1", ["calibrate", "data", "--dataset", "sp500", "--out", "d.toml", "--carry", "1"], {}, r"--carry must be in \[0, 1\)"),
    ("data start bogus", ["calibrate", "data", "--dataset", "sp500", "--out", "d.toml", "--start", "yesterday"], {}, r"--start must be an ISO date"),
    ("calibrate without subcommand", ["calibrate"], {}, r"the following arguments are required: \{tables,cap"),
    ("calibrate unknown subcommand", ["calibrate", "bogus"], {}, r"argument \{tables,cap,gain,threshold,elasticity,accounts,data,portfolio\}: invalid choice: 'bogus'"),
    # --- sweep
    ("sweep integer key fractions", ["sweep", "c.toml", "--vary", "grid.points=10:50:4", "--out", "s.csv", "--workers", "0"], C,
     r"--vary 'grid\.points=10:50:4': grid\.points is an integer, but a:b:n gives 23\.3333"),
    ("sweep count 1e9", ["sweep", "c.toml", "--vary", "market.alpha=0.1:0.2:1000000000", "--out", "s.csv", "--workers", "0"], C,
     r"the count 1000000000 is above the maximum of 1,000,000"),
    ("sweep product too big", ["sweep", "c.toml", "--vary", "market.alpha=0.1:0.2:1001", "--vary", "objective.carry=0.01:0.02:1000", "--out", "s.csv"], C,
     r"--vary gives 1,001,000 configurations, above the maximum"),
    ("sweep points 1e9", ["sweep", "c.toml", "--vary", "grid.points=1000000000", "--out", "s.csv", "--workers", "0"], C,
     r"grid\.points = 1000000000 is above the maximum"),
    ("sweep vol_max percent", ["sweep", "c.toml", "--vary", "grid.vol_max=0.04,4", "--out", "s.csv", "--workers", "0"], C,
     r"grid\.vol_max = 4\.0 is a daily volatility of 400%"),
    ("sweep no equals", ["sweep", "c.toml", "--vary", "market.alpha", "--out", "s.csv"], C, r"--vary 'market\.alpha' must look like section\.key=a:b:n"),
    ("sweep no section", ["sweep", "c.toml", "--vary", "alpha=1", "--out", "s.csv"], C, r"--vary key 'alpha' must be section\.key"),
    ("sweep bad a:b:n", ["sweep", "c.toml", "--vary", "market.alpha=a:b:c", "--out", "s.csv"], C, r"a:b:n needs two numbers and an integer count"),
    ("sweep empty value", ["sweep", "c.toml", "--vary", "market.alpha=1,,2", "--out", "s.csv"], C, r"has an empty value"),
    ("sweep invalid value", ["sweep", "c.toml", "--vary", "market.alpha=-1,0.2", "--out", "s.csv", "--workers", "0"], C, r"market\.alpha = -1\.0 must be positive"),
    ("sweep unknown key", ["sweep", "c.toml", "--vary", "market.beta=1,2", "--out", "s.csv", "--workers", "0"], C, r"unknown key market\.beta"),
    ("sweep key twice", ["sweep", "c.toml", "--vary", "market.alpha=0.1", "--vary", "market.alpha=0.2", "--out", "s.csv"], C, r"--vary names a key twice"),
    ("sweep out folder", ["sweep", "c.toml", "--vary", "market.alpha=0.1,0.2", "--out", "d", "--workers", "0"], {**C, "d/x": "x"}, r"--out 'd' is a folder"),
    ("sweep target config cost key", ["sweep", "c.toml", "--vary", "objective.carry=0.01,0.02", "--out", "s.csv", "--workers", "0"],
     target(GOOD_TARGET_CSV), r"objective\.carry does not apply with objective\.kind = 'target'"),
    ("sweep target config bad alpha", ["sweep", "c.toml", "--vary", "market.alpha=0.2,-1", "--out", "s.csv", "--workers", "0"],
     target(GOOD_TARGET_CSV), r"market\.alpha = -1\.0 must be positive"),
    ("sweep scheduler not an address", ["sweep", "c.toml", "--vary", "market.alpha=0.1,0.2", "--out", "s.csv", "--scheduler", "foo", "--timeout", "1"], C,
     r"--scheduler 'foo' is not a dask address"),
    ("sweep timeout 0", ["sweep", "c.toml", "--vary", "market.alpha=0.1", "--out", "s.csv", "--timeout", "0"], C, r"--timeout = 0 must be a number of seconds"),
    ("sweep workers -1", ["sweep", "c.toml", "--vary", "market.alpha=0.1", "--out", "s.csv", "--workers", "-1"], C, r"--workers = -1 must be >= 0"),
    ("sweep workers 1e5", ["sweep", "c.toml", "--vary", "market.alpha=0.1", "--out", "s.csv", "--workers", "100000"], C, r"--workers = 100000 is above the maximum"),
    ("sweep out empty", ["sweep", "c.toml", "--vary", "market.alpha=0.1", "--out", "", "--workers", "0"], C, r"--out is empty; name a file"),
    ("sweep out trailing slash", ["sweep", "c.toml", "--vary", "market.alpha=0.1", "--out", "new/", "--workers", "0"], C, r"--out 'new' is a folder"),
    ("sweep chunk 0", ["sweep", "c.toml", "--vary", "market.alpha=0.1", "--out", "s.csv", "--chunk", "0"], C, r"--chunk = 0 must be >= 1"),
    ("sweep without vary", ["sweep", "c.toml", "--out", "s.csv"], C, r"the following arguments are required: --vary \(see margin-design sweep --help\)"),
    # --- command-line conventions (issue 11): --json, -q/-v, --check, --execution-cost
    ("solve json took the config", ["solve", "--json", "c.toml"], C,
     r"required: config; --json took 'c\.toml' as the file to write: put --json after the positional arguments"),
    ("solve json file is a folder", ["solve", "c.toml", "--json", "d"], {**C, "d/x": "x"}, r"--json 'd' is a folder"),
    ("report json file is a folder", ["report", "c.toml", "--out", "r", "--json", "d"], {**C, "d/x": "x"}, r"--json 'd' is a folder"),
    ("audit json file is a folder", ["audit", "0.01+r", "--market", "c.toml", "--no-simulation", "--json", "d"], {**C, "d/x": "x"},
     r"--json 'd' is a folder"),
    ("sweep json file is a folder", ["sweep", "c.toml", "--vary", "market.alpha=0.1", "--out", "s.csv", "--workers", "0", "--json", "d"],
     {**C, "d/x": "x"}, r"--json 'd' is a folder"),
    ("quiet and verbose", ["solve", "c.toml", "-q", "-v"], C, r"argument -v/--verbose: not allowed with argument -q/--quiet"),
    ("quiet before verbose after", ["-q", "solve", "c.toml", "-v"], C, r"-q/--quiet and -v/--verbose exclude each other"),
    ("audit check takes no value", ["audit", "0.01+r", "--market", "c.toml", "--check=yes"], C,
     r"argument --check: ignored explicit argument 'yes'"),
    ("audit execution cost not a number", ["audit", "0.01+r", "--market", "c.toml", "--execution-cost", "5bp"], C,
     r"argument --execution-cost: invalid float value: '5bp'"),
    ("audit tau is not an option", ["audit", "0.01+r", "--market", "c.toml", "--tau", "0.001"], C, r"unrecognized arguments: --tau"),
    ("version after a subcommand", ["solve", "c.toml", "--version"], C, r"unrecognized arguments: --version"),
    # --- diff (issue 11, section 2) and report --previous
    ("diff both formulas", ["diff", "0.01+2*sigma", "0.02+sigma", "--out", "d"], {},
     r"OLD and NEW are both formulas, which cover every vol; give --vols \(annualised percentage points"),
    ("diff vols negative step", ["diff", "a.csv", "0.02+sigma", "--vols", "8:60:-1", "--out", "d"], {"a.csv": DIFF_T},
     r"--vols '8:60:-1': the step must be positive\.$"),
    ("diff vols empty", ["diff", "a.csv", "0.02+sigma", "--vols", "", "--out", "d"], {"a.csv": DIFF_T}, r"--vols is empty"),
    ("diff vols decreasing", ["diff", "a.csv", "0.02+sigma", "--vols", "20,10", "--out", "d"], {"a.csv": DIFF_T},
     r"--vols '20,10': points must be strictly increasing"),
    ("diff vols above 50% a day", ["diff", "a.csv", "0.02+sigma", "--vols", "900", "--out", "d"], {"a.csv": DIFF_T},
     r"--vols '900': 900% annualised is above"),
    ("diff missing table", ["diff", "old.csv", "0.02+sigma", "--out", "d"], {}, r"rule = 'old\.csv' does not exist\.$"),
    ("diff conflicting vol columns", ["diff", "c.csv", "0.02+sigma", "--out", "d"],
     {"c.csv": "vol_daily,vol_annual,margin\n0.01,0.01,0.03\n0.02,0.02,0.05\n"},
     r"conflicting vol columns 'vol_daily' = 0\.01 and 'vol_annual' = 0\.01 \(annualised, divided by sqrt\(252\)\) in row 2"),
    ("diff no vol column", ["diff", "c.csv", "0.02+sigma", "--out", "d"], {"c.csv": "sigma,margin\n0.01,0.03\n0.02,0.05\n"},
     r"has no column 'vol_daily' \(daily vol, decimal; the legacy 'vol' and the annualised 'vol_annual' are read too\)"),
    ("diff tables do not overlap", ["diff", "a.csv", "b.csv", "--out", "d"],
     {"a.csv": DIFF_T, "b.csv": "vol,margin\n0.03,0.06\n0.04,0.07\n"}, r"OLD covers daily vol 0\.01 to 0\.02 and NEW 0\.03 to 0\.04, which do not overlap"),
    ("diff table in percent", ["diff", "p.csv", "0.02+sigma", "--out", "d"], {"p.csv": "vol_daily,margin\n1,3\n2,5\n"},
     r"rule table OLD p\.csv has vol = 1 in row 2, which is a daily volatility of 100%"),
    ("diff json list", ["diff", "a.json", "0.02+sigma", "--out", "d"], {"a.json": "[1, 2]"}, r"does not hold a JSON object"),
    ("diff json broken", ["diff", "a.json", "0.02+sigma", "--out", "d"], {"a.json": "{"}, r"rule file 'a\.json' is not valid JSON"),
    ("diff json unknown", ["diff", "a.json", "0.02+sigma", "--out", "d"], {"a.json": '{"x": 1}'},
     r"is not a rule_table\.json, step_table\.json or schedule\.json written by margin-design"),
    ("diff json falling rows", ["diff", "a.json", "0.02+sigma", "--out", "d"],
     {"a.json": '{"rows": [{"vol_daily": 0.01, "margin": 0.05}, {"vol_daily": 0.02, "margin": 0.03}]}'}, r"is not monotone: margin falls"),
    ("diff folder without a rule", ["diff", "x", "0.02+sigma", "--out", "d"], {"x/notes.txt": "hello"},
     r"folder 'x' holds neither rule_table\.json \(report --out\) nor schedule\.json \(solve --out\)"),
    ("diff formula that is a folder", ["diff", "r", "0.02+sigma", "--out", "d"], {"r/notes.txt": "hello"},
     r"rule 'r' is both a formula and a folder; write \./r for the folder"),
    ("diff out is a file", ["diff", "a.csv", "0.02+sigma", "--out", "a.csv"], {"a.csv": DIFF_T}, r"--out 'a\.csv' is an existing file"),
    ("diff out holds an input", ["diff", "d/a.csv", "0.02+sigma", "--out", "d"], {"d/a.csv": DIFF_T}, r"--out 'd' contains the input 'd/a\.csv'"),
    ("diff market missing", ["diff", "a.csv", "0.02+sigma", "--market", "m.toml", "--out", "d"], {"a.csv": DIFF_T},
     r"config file 'm\.toml' cannot be read"),
    ("diff without out", ["diff", "a.csv", "0.02+sigma"], {"a.csv": DIFF_T}, r"required: --out \(see margin-design diff --help\)$"),
    ("report previous missing", ["report", "s.json", "--out", "r", "--previous", "old.json"], {"s.json": lambda t: t},
     r"rule file 'old\.json' does not exist"),
    ("report previous both formula", ["report", "s.json", "--out", "r", "--previous", "0.01+"], {"s.json": lambda t: t}, r"0\.01\+"),
    # --- argument parsing, every subcommand and the top level: one line and a hint
    ("no command", [], {}, r"the following arguments are required: command \(see margin-design --help\)$"),
    ("unknown command", ["bogus"], {}, r"invalid choice: 'bogus' .*\(see margin-design --help\)$"),
    ("solve without config", ["solve"], {}, r"required: config \(see margin-design solve --help\)$"),
    ("solve unknown method", ["solve", "c.toml", "--method", "magic"], C, r"argument --method: invalid choice: 'magic'"),
    ("solve unknown flag", ["solve", "c.toml", "--bogus"], C, r"unrecognized arguments: --bogus \(see margin-design solve --help\)$"),
    ("report knots not int", ["report", "s.json", "--out", "r", "--knots", "1.5"], {}, r"argument --knots: invalid int value: '1\.5' \(see margin-design report --help\)$"),
    ("report without out", ["report", "s.json"], {}, r"required: --out \(see margin-design report --help\)$"),
    ("audit paths not int", ["audit", "0.1+r", "--market", "c.toml", "--paths", "x"], C,
     r"argument --paths: invalid int value: 'x' \(see margin-design audit --help\)$"),
    ("audit interpolation", ["audit", "r.csv", "--market", "c.toml", "--interpolation", "cubic"], C, r"argument --interpolation: invalid choice: 'cubic'"),
    ("audit without market", ["audit", "0.1+r"], {}, r"required: --market"),
    ("calibrate cap flag not float", ["calibrate", "cap", "--elasticity", "x", "--turnover", "1", "--participation", "0.01", "--margin", "0.05"], {},
     r"argument --elasticity: invalid float value: 'x' \(see margin-design calibrate cap --help\)$"),
    ("calibrate data risk input", ["calibrate", "data", "--dataset", "sp500", "--out", "d.toml", "--risk-input", "garch"], {}, r"argument --risk-input: invalid choice"),
    ("calibrate data no source", ["calibrate", "data", "--out", "d.toml"], {}, r"one of the arguments --dataset --csv is required"),
    ("sweep workers not int", ["sweep", "c.toml", "--vary", "market.alpha=0.1", "--out", "s.csv", "--workers", "two"], C, r"argument --workers: invalid int value"),
    ("sweep timeout not float", ["sweep", "c.toml", "--vary", "market.alpha=0.1", "--out", "s.csv", "--timeout", "soon"], C, r"argument --timeout: invalid float"),
]


# ---------------------------------------------------------------------- machinery


@pytest.fixture(scope="module")
def schedule_text(tmp_path_factory) -> str:
    """schedule.json text of the base config, solved once for the report cases."""
    from margin_design.design import problem_from_dict
    from margin_design.reports.schedule_files import schedule_json_text
    from margin_design.solvers import solve

    cfg = copy.deepcopy(BASE)
    return schedule_json_text(solve(problem_from_dict(cfg), method="exact"))


def _write_files(folder: Path, files: dict, schedule: str | None) -> None:
    for rel, content in files.items():
        p = folder / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if callable(content):
            content = content(schedule)
        p.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))


def snapshot(folder: Path) -> dict:
    """{relative path: sha256 of the bytes, or 'dir'} of everything under ``folder`` (hidden entries included)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        out[rel] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def assert_one_sentence(status, out: str, err: str, match: str | None = None) -> str:
    assert status == 2, (status, out, err)
    assert "Traceback" not in err and "Traceback" not in out, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("margin-design: error: "), lines[0]
    sentence = lines[0][len("margin-design: error: "):]
    if match is not None:
        assert re.search(match, sentence), f"{sentence!r} does not match {match!r}"
    return sentence


@pytest.mark.parametrize("argv, files, match", [pytest.param(a, f, m, id=i) for i, a, f, m in CASES])
def test_bad_input(argv, files, match, tmp_path, monkeypatch, capfd, request):
    needs_schedule = any(callable(c) for c in files.values())
    schedule = request.getfixturevalue("schedule_text") if needs_schedule else None
    _write_files(tmp_path, files, schedule)
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    capfd.readouterr()
    status = main(list(argv))
    out, err = capfd.readouterr()
    assert_one_sentence(status, out, err, match)
    assert out == "", out
    assert snapshot(tmp_path) == before  # nothing written, the user's files untouched, no temporaries left


def test_corpus_size():
    assert len(CASES) >= 150
    assert len({c[0] for c in CASES}) == len(CASES)


# ---------------------------------------------------------------------- cases that need a patch


def _read_only(monkeypatch):
    """Make every new file or folder fail as in a read-only folder (the tests may run as root, who ignores modes)."""

    def deny(*args, dir=None, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(dir))

    monkeypatch.setattr(tempfile, "mkstemp", deny)
    monkeypatch.setattr(tempfile, "mkdtemp", deny)


@pytest.mark.parametrize(
    "argv, match",
    [
        pytest.param(["solve", "c.toml", "--out", "out"], r"--out 'out' cannot be written: Permission denied\.$", id="solve"),
        pytest.param(["calibrate", "cap", "--elasticity", "0.225", "--turnover", "1", "--participation", "0.01", "--margin", "0.05", "--json", "cap.json"],
                     r"--json 'cap\.json' cannot be written: Permission denied\.$", id="calibrate cap --json"),
        pytest.param(["calibrate", "tables", "--json", "t.json"], r"--json 't\.json' cannot be written: Permission denied\.$", id="calibrate tables --json"),
        pytest.param(["calibrate", "cap", "--elasticity", "0.225", "--turnover", "1", "--participation", "0.01", "--margin", "0.05",
                      "--append-market", "m.toml"], r"cannot be written: Permission denied\.$", id="calibrate cap --append-market"),
    ],
)
def test_read_only_folder_is_one_sentence(argv, match, tmp_path, monkeypatch, capfd):
    (tmp_path / "c.toml").write_text(config())
    (tmp_path / "m.toml").write_text(config(drop=("market",)))
    monkeypatch.chdir(tmp_path)
    _read_only(monkeypatch)
    before = snapshot(tmp_path)
    capfd.readouterr()
    status = main(argv)
    out, err = capfd.readouterr()
    assert_one_sentence(status, "", err, match)
    assert snapshot(tmp_path) == before


def test_numpy_warnings_before_an_error_are_dropped(tmp_path, monkeypatch, capfd):
    """A RuntimeWarning raised on the way to a user error does not reach stderr: the one sentence does."""
    import margin_design.design as design
    from margin_design.errors import ConfigError

    def load_problem(path):
        np.log(np.zeros(1))  # RuntimeWarning: divide by zero
        raise ConfigError("market.alpha = 1.0 is refused for this test.")

    monkeypatch.setattr(design, "load_problem", load_problem)
    monkeypatch.chdir(tmp_path)
    capfd.readouterr()
    with warnings.catch_warnings(), np.errstate(all="warn"):
        warnings.simplefilter("always")
        # print to stderr as outside pytest (pytest records warnings instead)
        warnings.showwarning = lambda msg, cat, fn, ln, file=None, line=None: sys.stderr.write(warnings.formatwarning(msg, cat, fn, ln, line))
        status = main(["solve", "c.toml"])
    out, err = capfd.readouterr()
    assert_one_sentence(status, out, err, r"market\.alpha = 1\.0 is refused")


def test_closed_pipe_is_silent(monkeypatch, capfd):
    """``margin-design calibrate tables | head -1``: the reader closing the pipe is not an error sentence."""
    from margin_design import cli_calibrate

    def closed(args, payload, text):
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    monkeypatch.setattr(cli_calibrate, "_emit_json", closed)
    capfd.readouterr()
    assert main(["calibrate", "tables"]) == 141
    out, err = capfd.readouterr()
    assert err == "" and out == ""


def test_solve_writes_its_pair_atomically(tmp_path, monkeypatch, capfd):
    """A run stopped between schedule.json and schedule.csv leaves the earlier pair as it was, not a new json
    beside an old csv."""
    from margin_design.reports import schedule_files

    (tmp_path / "c.toml").write_text(config())
    monkeypatch.chdir(tmp_path)
    assert main(["solve", "c.toml", "--out", "out"]) == 0
    before = snapshot(tmp_path)
    (tmp_path / "c.toml").write_text(config({"objective.carry": 0.02}))
    before["c.toml"] = snapshot(tmp_path)["c.toml"]

    def killed(result):
        raise KeyboardInterrupt

    monkeypatch.setattr(schedule_files, "schedule_csv_text", killed)
    capfd.readouterr()
    assert main(["solve", "c.toml", "--out", "out"]) == EXIT_INTERRUPTED
    _, err = capfd.readouterr()
    assert err.splitlines() == ["margin-design: interrupted; no file was left half-written."]
    assert snapshot(tmp_path) == before


def test_replacing_an_earlier_solve_folder_is_allowed(tmp_path, monkeypatch, capsys):
    """The policy refuses foreign folders, not our own: a second solve into the same --out replaces it whole."""
    (tmp_path / "c.toml").write_text(config())
    monkeypatch.chdir(tmp_path)
    assert main(["solve", "c.toml", "--out", "out"]) == 0
    first = snapshot(tmp_path / "out")
    assert sorted(first) == ["schedule.csv", "schedule.json"]
    assert main(["solve", "c.toml", "--out", "out"]) == 0
    assert sorted(snapshot(tmp_path / "out")) == ["schedule.csv", "schedule.json"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_integer_keys_sweep_integers(tmp_path, monkeypatch):
    from margin_design.solvers.sweep import parse_vary

    assert parse_vary("grid.points=10:50:5") == ("grid.points", [10, 20, 30, 40, 50])
    assert all(type(v) is int for v in parse_vary("cap.window=1:5:5")[1])
    assert parse_vary("market.alpha=0.1:0.3:3")[1] == pytest.approx([0.1, 0.2, 0.3])


# ---------------------------------------------------------------------- real subprocesses

SCRIPT = shutil.which("margin-design", path=str(Path(sys.executable).parent)) or "margin-design"


def _run_script(args, cwd, **kw):
    env = dict(os.environ, PYTHONWARNINGS="default")  # show every warning the run raises
    return subprocess.run([SCRIPT, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=120, **kw)


@pytest.mark.parametrize(
    "args, files, match",
    [
        pytest.param(["solve", "c.toml"], {"c.toml": config({"grid.vol_max": 4})}, r"grid\.vol_max = 4\.0 is a daily volatility of 400%", id="vol_max percent"),
        pytest.param(["solve", "c.toml", "--out", "out"], {"c.toml": config(), "out": "mine"}, r"--out 'out' is an existing file", id="solve out file"),
        pytest.param(["audit", "0.1+r", "--market", "c.toml", "--paths", "x"], {"c.toml": config()}, r"invalid int value: 'x' \(see margin-design audit --help\)$",
                     id="usage error"),
        pytest.param(["solve", "c.toml"], {"c.toml": config({"grid.vol_max": 1e200})}, r"grid\.vol_max = 1e\+200", id="overflowing vol, no warnings"),
        pytest.param(["sweep", "c.toml", "--vary", "market.alpha=0.1,0.2", "--out", "s.csv", "--scheduler", "tcp://127.0.0.1:1", "--timeout", "1"],
                     {"c.toml": config()}, r"--scheduler 'tcp://127\.0\.0\.1:1': no dask scheduler answered within --timeout 1 s", id="scheduler refused"),
    ],
)
def test_installed_script_prints_one_line(args, files, match, tmp_path):
    _write_files(tmp_path, files, None)
    before = snapshot(tmp_path)
    proc = _run_script(args, tmp_path)
    assert_one_sentence(proc.returncode, proc.stdout, proc.stderr, match)
    assert proc.stdout == ""
    assert snapshot(tmp_path) == before


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to see when the run is busy")
def test_sigint_is_one_line_and_exit_130(tmp_path):
    """Ctrl-C in a long solve: one line on stderr, no traceback, exit 130, nothing written."""
    (tmp_path / "c.toml").write_text(config({"grid.points": 5_000_000}))
    before = snapshot(tmp_path)
    proc = subprocess.Popen([SCRIPT, "solve", "c.toml", "--out", "out"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while _cpu_seconds(proc.pid) < 4.0 and proc.poll() is None and time.monotonic() < deadline:  # imports done, solving
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_INTERRUPTED, (proc.returncode, err)
    assert "Traceback" not in err
    assert err.splitlines() == ["margin-design: interrupted; no file was left half-written."], err
    assert out == ""
    assert snapshot(tmp_path) == before
