"""The configuration file (TOML): the public contract of ``margin-design solve``. Keys are kept stable.

    [grid]       vol_min, vol_max (daily vol, decimals), points (int >= 3), spacing = "vol" | "variance"
    [states]     density = "uniform" | "lognormal" | "table"; median_vol (daily vol), dispersion (log-sd); file (CSV: vol, weight)
    [shock]      model = "normal" | "student_t" | "empirical"; df; file (CSV: y); bandwidth (units of Y); horizon_days
    [objective]  kind = "cost" | "target"; loss = "shortfall" | "squared_shortfall"; carry (kappa_M);
                 prev_margin (margin ratio M_-); liquidation_weight; liquidation_cost = "quadratic" | "linear";
                 participation_weight; participation_beta; participation_cost = "linear" | "quadratic";
                 for "target": file (CSV: vol, target, weight[, curvature])
    [market]     alpha (price impact per ADV traded), c_eff (c_X^eff, ADV per unit margin ratio), inventory_penalty (kappa)
    [cap]        kind = "manipulation_proof" | "none"; input = "variance" | "realized_variance" | "ewma" | "hs_var" | "hs_es";
                 window (daily returns in the window: realized_variance, hs_var, hs_es); lambda (ewma);
                 level (confidence level p of the historical-simulation VaR / ES, a probability in (0.5, 1), e.g. 0.99);
                 updates = T (1..m: consecutive margin updates the cap withstands; solve scales the cap, audit/updates.py)

Every violation raises :class:`~margin_design.errors.ConfigError` (or InputError for files) with one
sentence naming the key and the value. Relative file paths are resolved against the config file's folder.
In target mode the CSV defines the states and their weights, so [grid], [states] and [shock] must be absent.
A key that does not apply to the chosen options is refused, not ignored: shock.df needs model = "student_t",
shock.file and shock.bandwidth need model = "empirical", states.file needs density = "table",
states.median_vol and states.dispersion need density = "lognormal", objective.file needs kind = "target",
cap.window needs input = "realized_variance", "hs_var" or "hs_es", cap.lambda needs input = "ewma", cap.level needs
input = "hs_var" or "hs_es" (which need both window and level).

Plausibility bounds (a value above its bound is almost always a unit mistake, such as a percentage typed
for a decimal, and is refused with a sentence suggesting the decimal; the bounds live in one table,
:data:`PLAUSIBILITY`, key -> (upper bound, hint)):

    daily volatility       grid.vol_min, grid.vol_max, states.median_vol, the vol columns of states.file and
                           objective.file:  MIN_DAILY_VOL = 1e-6 <= vol <= MAX_DAILY_VOL = 0.5 (50% a day,
                           794% annualised; the S&P 500's worst day, 19 October 1987, was a fall of about 20%)
    margin ratio           objective.prev_margin, the target column of objective.file:
                           0 <= M <= MAX_MARGIN_RATIO = 1 (100% of notional, full collateral)
    objective.carry        0, or at least MIN_POSITIVE_CARRY = 1e-12 (1 - carry must differ from 1 in float64)
    shock.horizon_days     <= 250 (a trading year)
    shock.df               <= 1e6 (the Student-t is then the normal to 6 digits: use model = "normal")
    cap.window             <= 2520 days (ten trading years)
    market.alpha           <= 10 (a trade of 1% of ADV moving the price 10%; benchmark 0.2)
    market.c_eff           <= 1e4 (ADV per unit margin ratio; benchmark 0.225 x 1 / 0.05 = 4.5)

Limits of size and range: grid.points <= MAX_GRID_POINTS = 10^7 states (the exact solver does 10^6 in about
1.5 s), and the slope cap K implied by
[market] and [cap] must be at most MAX_CAP_SLOPE = 1e5 margin ratio per unit daily vol (a looser cap never
binds on a plausible grid and cannot be certified in float64; use cap.kind = "none" instead).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import tomllib
from pathlib import Path
from typing import Any

import numpy as np

from margin_design.design.cap import CAP_INPUTS, CAP_KINDS, SUM_WINDOW, CapSpec
from margin_design.design.grid import DENSITIES, SPACINGS, make_grid, state_weights
from margin_design.design.objective import COST_FORMS, LOSSES, CostSpec, TargetSpec
from margin_design.design.portfolio import portfolio_spec, validate_portfolio_section
from margin_design.design.problem import Problem
from margin_design.design.shocks import SHOCK_MODELS, ShockSpec
from margin_design.csvio import VOL_COLUMNS, daily_vol_column
from margin_design.csvio import read_csv_columns as _read_columns
from margin_design.errors import ConfigError, InputError, NonConvexError

_NUM = "number"
_INT = "integer"
_STR = "string"

# section -> key -> (type, default or REQUIRED)
REQUIRED = object()
SCHEMA: dict[str, dict[str, tuple[str, Any]]] = {
    "grid": {"vol_min": (_NUM, REQUIRED), "vol_max": (_NUM, REQUIRED), "points": (_INT, REQUIRED), "spacing": (_STR, "vol")},
    "states": {"density": (_STR, "uniform"), "median_vol": (_NUM, None), "dispersion": (_NUM, None), "file": (_STR, None)},
    "shock": {"model": (_STR, "normal"), "df": (_NUM, None), "file": (_STR, None), "bandwidth": (_NUM, None), "horizon_days": (_NUM, 1.0)},
    "objective": {
        "kind": (_STR, "cost"),
        "loss": (_STR, "shortfall"),
        "carry": (_NUM, None),
        "prev_margin": (_NUM, 0.0),
        "liquidation_weight": (_NUM, 0.0),
        "liquidation_cost": (_STR, "quadratic"),
        "participation_weight": (_NUM, 0.0),
        "participation_beta": (_NUM, 0.0),
        "participation_cost": (_STR, "linear"),
        "file": (_STR, None),
    },
    "market": {"alpha": (_NUM, None), "c_eff": (_NUM, None), "inventory_penalty": (_NUM, 0.0)},  # alpha, c_eff required without [portfolio]
    "cap": {"kind": (_STR, "manipulation_proof"), "input": (_STR, "variance"), "window": (_INT, None), "lambda": (_NUM, None),
            "level": (_NUM, None), "updates": (_INT, None)},
}
CHOICES = {
    ("grid", "spacing"): SPACINGS,
    ("states", "density"): DENSITIES,
    ("shock", "model"): SHOCK_MODELS,
    ("objective", "kind"): ("cost", "target"),
    ("objective", "loss"): LOSSES,
    ("objective", "liquidation_cost"): COST_FORMS,
    ("objective", "participation_cost"): ("linear", "quadratic"),
    ("cap", "kind"): CAP_KINDS,
    ("cap", "input"): CAP_INPUTS,
}
TARGET_KEYS = {"kind", "file"}

# ---------------------------------------------------------------------- plausibility and limits

from margin_design.plausibility import (  # noqa: E402,F401 - re-exported: the config contract's bounds
    MAX_DAILY_VOL,
    MIN_DAILY_VOL,
    MAX_MARGIN_RATIO,
    MAX_GRID_POINTS,
    MAX_CAP_SLOPE,
    MAX_STUDENT_DF,
    MIN_POSITIVE_CARRY,
    PLAUSIBILITY,
    fmt_number,
    plausibility_hint,
    check_plausible,
    daily_vol_problem,
    margin_ratio_problem,
)


def _check_vol_key(key: str, value: float) -> None:
    why = daily_vol_problem(value, key)
    if why is not None:
        raise ConfigError(f"{key} = {float(value)!r} is {why}.")


def load_config(path: str | Path) -> tuple[dict, Path]:
    """Read and validate a config file; return (normalised config with defaults filled in, its folder)."""
    path = Path(path)
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise InputError(f"config file {str(path)!r} cannot be read: {exc.strerror or exc}.") from None
    try:
        raw = tomllib.loads(text.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid TOML: {exc}.") from None
    return validate(raw), path.parent


def validate(raw: dict) -> dict:
    """Check sections, keys, types, names and ranges; fill defaults. Returns a new nested dict."""
    for section in raw:
        if section not in SCHEMA and section != "portfolio":
            raise ConfigError(f"unknown section [{section}]; expected one of {', '.join('[' + s + ']' for s in [*SCHEMA, 'portfolio'])}.")
        if not isinstance(raw[section], dict):
            raise ConfigError(f"{section} = {raw[section]!r} must be a table [{section}].")
    kind = raw.get("objective", {}).get("kind", "cost")
    _check_type("objective", "kind", kind, _STR)
    if kind not in ("cost", "target"):
        raise ConfigError(f"objective.kind = {kind!r} is not one of cost, target.")
    if kind == "target":
        for section in ("grid", "states", "shock"):
            if section in raw:
                raise ConfigError(f"section [{section}] must be absent with objective.kind = 'target' (the target file defines the states).")
    cfg: dict[str, dict] = {}
    if "portfolio" in raw:
        cfg["portfolio"] = validate_portfolio_section(raw["portfolio"])
        if cfg["portfolio"]["risk"] is not None:
            given = [k for k in ("input", "window", "lambda", "level") if k in raw.get("cap", {})]
            if given:
                raise ConfigError(
                    f"cap.{given[0]} = {raw['cap'][given[0]]!r} does not apply with [portfolio.risk]: the risk functional defines "
                    "the risk input (set its window and lambda in [portfolio.risk])."
                )
        for key in ("alpha", "c_eff"):
            if key in raw.get("market", {}):
                raise ConfigError(
                    f"market.{key} = {raw['market'][key]!r} does not apply with [portfolio]: the impact matrix A and the liquidation "
                    "vector B replace alpha and c_eff; [market] keeps only inventory_penalty."
                )
    for section, keys in SCHEMA.items():
        given = raw.get(section, {})
        for key in given:
            if key not in keys:
                raise ConfigError(f"unknown key {section}.{key} = {given[key]!r}; expected one of {', '.join(keys)}.")
        if kind == "target" and section in ("grid", "states", "shock"):
            continue
        out = {}
        for key, (typ, default) in keys.items():
            if key in given:
                _check_type(section, key, given[key], typ)
                out[key] = float(given[key]) if typ == _NUM else given[key]
                choices = CHOICES.get((section, key))
                if choices and out[key] not in choices:
                    raise ConfigError(f"{section}.{key} = {out[key]!r} is not one of {', '.join(choices)}.")
            elif default is REQUIRED:
                raise ConfigError(f"missing required key {section}.{key}.")
            else:
                out[key] = default
        cfg[section] = out
    if kind == "target":
        extra = sorted(k for k in raw.get("objective", {}) if k not in TARGET_KEYS)
        if extra:
            raise ConfigError(f"objective.{extra[0]} does not apply with objective.kind = 'target' (only file).")
    if cfg.get("cap", {}).get("level", 0.0) is None:
        # cap.level is kept only when given, so that the validated config of every design without an HS input, and
        # with it the published rule ID (its sha256, reports/publish.py), is the same as before the key existed
        del cfg["cap"]["level"]
    _check_ranges(cfg)
    if cfg["cap"]["updates"] in (None, 1):   # the paper's cap: the validated config (and every ID hashing it) as without the key
        del cfg["cap"]["updates"]
    return cfg


def _check_type(section: str, key: str, value: Any, typ: str) -> None:
    ok = {
        _NUM: isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value),
        _INT: isinstance(value, int) and not isinstance(value, bool),
        _STR: isinstance(value, str),
    }[typ]
    if not ok:
        raise ConfigError(f"{section}.{key} = {value!r} must be a finite {typ}.")


def _need(cfg: dict, section: str, key: str, why: str) -> Any:
    value = cfg[section][key]
    if value is None:
        raise ConfigError(f"missing required key {section}.{key} ({why}).")
    return value


def _only_with(cfg: dict, section: str, key: str, option: str, allowed: tuple[str, ...]) -> None:
    """Refuse ``section.key`` (given, i.e. not None) unless ``section.option`` is one of ``allowed``."""
    value = cfg[section][key]
    if value is not None and cfg[section][option] not in allowed:
        need = " or ".join(repr(a) for a in allowed)
        raise ConfigError(
            f"{section}.{key} = {value!r} applies only to {section}.{option} = {need}, not {cfg[section][option]!r}; remove it."
        )


def _check_ranges(cfg: dict) -> None:
    o = cfg["objective"]
    if o["kind"] == "cost":
        if o["file"] is not None:
            raise ConfigError(f"objective.file = {o['file']!r} applies only to objective.kind = 'target', not 'cost'; remove it.")
        g = cfg["grid"]
        if not g["vol_min"] > 0:
            raise ConfigError(f"grid.vol_min = {g['vol_min']!r} must be positive (daily volatility, decimal).")
        _check_vol_key("grid.vol_min", g["vol_min"])
        check_plausible("grid.vol_max", g["vol_max"])
        if not g["vol_max"] > g["vol_min"]:
            raise ConfigError(f"grid.vol_max = {g['vol_max']!r} must be greater than grid.vol_min = {g['vol_min']!r}.")
        if g["points"] < 3:
            raise ConfigError(f"grid.points = {g['points']!r} must be an integer >= 3.")
        if g["points"] > MAX_GRID_POINTS:
            raise ConfigError(
                f"grid.points = {g['points']!r} is above the maximum of {MAX_GRID_POINTS:,} states "
                "(the exact solver does 10^6 in about 1.5 s); use fewer points."
            )
        s = cfg["states"]
        _only_with(cfg, "states", "file", "density", ("table",))
        _only_with(cfg, "states", "median_vol", "density", ("lognormal",))
        _only_with(cfg, "states", "dispersion", "density", ("lognormal",))
        if s["density"] == "lognormal":
            med = _need(cfg, "states", "median_vol", "density = 'lognormal'")
            disp = _need(cfg, "states", "dispersion", "density = 'lognormal'")
            if not med > 0:
                raise ConfigError(f"states.median_vol = {med!r} must be positive (daily volatility, decimal).")
            _check_vol_key("states.median_vol", med)
            if not disp > 0:
                raise ConfigError(f"states.dispersion = {disp!r} must be positive (log-sd of volatility).")
        if s["density"] == "table":
            _need(cfg, "states", "file", "density = 'table'")
        k = cfg["shock"]
        _only_with(cfg, "shock", "df", "model", ("student_t",))
        _only_with(cfg, "shock", "file", "model", ("empirical",))
        _only_with(cfg, "shock", "bandwidth", "model", ("empirical",))
        if not k["horizon_days"] > 0:
            raise ConfigError(f"shock.horizon_days = {k['horizon_days']!r} must be positive (days).")
        check_plausible("shock.horizon_days", k["horizon_days"])
        if k["model"] == "student_t":
            df = _need(cfg, "shock", "df", "model = 'student_t'")
            if not df > 2:
                raise ConfigError(f"shock.df = {df!r} must be greater than 2 (the shock is scaled to unit variance).")
            check_plausible("shock.df", df)
        if k["model"] == "empirical":
            _need(cfg, "shock", "file", "model = 'empirical'")
            if k["bandwidth"] is not None and not k["bandwidth"] > 0:
                raise ConfigError(f"shock.bandwidth = {k['bandwidth']!r} must be positive (units of Y).")
        carry = _need(cfg, "objective", "carry", "kind = 'cost'")
        if not 0 <= carry < 1:
            raise ConfigError(f"objective.carry = {carry!r} must be in [0, 1).")
        if 0 < carry < MIN_POSITIVE_CARRY:
            raise ConfigError(
                f"objective.carry = {carry!r} is below {fmt_number(MIN_POSITIVE_CARRY)}: the coverage level 1 - carry then rounds "
                "to 1 in float64; use a larger carry, or carry = 0 with a liquidation or participation cost."
            )
        for key in ("liquidation_weight", "participation_weight", "participation_beta"):
            if o[key] < 0:
                raise ConfigError(f"objective.{key} = {o[key]!r} must be non-negative.")
        if o["prev_margin"] < 0:
            raise ConfigError(f"objective.prev_margin = {o['prev_margin']!r} must be non-negative (margin ratio).")
        check_plausible("objective.prev_margin", o["prev_margin"])
    else:
        _need(cfg, "objective", "file", "kind = 'target'")
    m = cfg["market"]
    for key in ("alpha", "c_eff") if "portfolio" not in cfg else ():
        if m[key] is None:
            raise ConfigError(f"missing required key market.{key}.")
        if not m[key] > 0:
            raise ConfigError(f"market.{key} = {m[key]!r} must be positive.")
        check_plausible(f"market.{key}", m[key])
    if m["inventory_penalty"] < 0:
        raise ConfigError(f"market.inventory_penalty = {m['inventory_penalty']!r} must be non-negative.")
    c = cfg["cap"]
    windowed = ("realized_variance", "hs_var", "hs_es")
    if c["window"] is not None:
        if c["input"] not in windowed:
            raise ConfigError(f"cap.window = {c['window']!r} applies only to cap.input = 'realized_variance', 'hs_var' or 'hs_es', not {c['input']!r}.")
        if c["window"] < 1:
            raise ConfigError(f"cap.window = {c['window']!r} must be an integer >= 1 (days).")
        if plausibility_hint("cap.window", c["window"]) is not None:
            raise ConfigError(f"cap.window = {c['window']!r} is {plausibility_hint('cap.window', c['window'])}.")
    elif c["input"] in windowed:
        raise ConfigError(f"missing required key cap.window (input = {c['input']!r}).")
    if c["lambda"] is not None:
        if c["input"] != "ewma":
            raise ConfigError(f"cap.lambda = {c['lambda']!r} applies only to cap.input = 'ewma', not {c['input']!r}.")
        if not 0 < c["lambda"] < 1:
            raise ConfigError(f"cap.lambda = {c['lambda']!r} must be in (0, 1).")
    elif c["input"] == "ewma":
        raise ConfigError("missing required key cap.lambda (input = 'ewma').")
    if c.get("level") is not None:
        if c["input"] not in ("hs_var", "hs_es"):
            raise ConfigError(f"cap.level = {c['level']!r} applies only to cap.input = 'hs_var' or 'hs_es', not {c['input']!r}.")
        if not 0.5 < c["level"] < 1:
            raise ConfigError(f"cap.level = {c['level']!r} must be a confidence level in (0.5, 1), e.g. 0.99 (a probability, not a percentage).")
    elif c["input"] in ("hs_var", "hs_es"):
        raise ConfigError(f"missing required key cap.level (input = {c['input']!r}; the VaR / ES confidence level, e.g. 0.99).")
    if c["kind"] == "manipulation_proof":
        _check_cap_slope(cfg)
    _check_updates(cfg)


def _check_updates(cfg: dict) -> None:
    """cap.updates = T: an integer from 1 to CapSpec.max_updates (locality: the window m, or m - n for HS VaR / ES); T > 1
    needs a manipulation-proof single-contract cap whose input has a window (the sum (4) over SUM_WINDOW returns)."""
    c = cfg["cap"]
    T = 1 if c.get("updates") is None else c["updates"]
    if T < 1:
        raise ConfigError(f"cap.updates = {T!r} must be an integer >= 1 (consecutive margin updates; 1 = the paper's two-period cap).")
    if T == 1:
        return
    if c["kind"] != "manipulation_proof":
        raise ConfigError(f"cap.updates = {T!r} scales the manipulation-proof cap, so it needs cap.kind = 'manipulation_proof', not {c['kind']!r}.")
    if "portfolio" in cfg:
        raise ConfigError(f"cap.updates = {T!r} applies to a single contract; the T-update stress test does not simulate a [portfolio] market.")
    limit = _cap_spec(cfg).max_updates
    if limit is None:
        raise ConfigError(f"cap.updates = {T!r} needs a risk input with a window of sampled returns (variance, realized_variance, "
                          f"hs_var or hs_es), not {c['input']!r}.")
    if T > limit:
        m = c["window"] if c["window"] is not None else SUM_WINDOW
        tail = f" less its {m - limit} tail losses" if c["input"] in ("hs_var", "hs_es") else ""
        raise ConfigError(f"cap.updates = {T!r} exceeds the input's window of {m} returns{tail} ({limit}); the stress test needs "
                          "the benchmark input to stay put while the trip lasts (locality).")


def _cap_spec(cfg: dict) -> CapSpec:
    m, c = cfg["market"], cfg["cap"]
    cap = CapSpec(
        kind=c["kind"],
        input=c["input"],
        alpha=m["alpha"] if m["alpha"] is not None else math.nan,
        c_eff=m["c_eff"] if m["c_eff"] is not None else math.nan,
        inventory_penalty=m["inventory_penalty"],
        window=c["window"] or 1,
        lam=c["lambda"] if c["lambda"] is not None else 0.94,
        level=c.get("level") if c.get("level") is not None else 0.99,
        updates=c.get("updates") or 1,
    )
    if "portfolio" in cfg:
        cap = dataclasses.replace(cap, portfolio=portfolio_spec(cfg["portfolio"], input_factor=cap.input_factor))
    return cap


def _check_cap_slope(cfg: dict) -> None:
    """Refuse a slope cap K = factor (2 alpha + kappa) / (alpha^2 c_eff) above MAX_CAP_SLOPE (or not a number)."""
    m = cfg["market"]
    try:
        cap = _cap_spec(cfg)
        K = cap.slope_vol
    except (ZeroDivisionError, OverflowError):
        cap, K = None, math.inf
    if cap is not None and cap.portfolio is not None:
        if cap.portfolio.psi > 0 and not K <= MAX_CAP_SLOPE:
            raise ConfigError(
                f"[portfolio] gives psi = {cap.portfolio.psi:.3g} and the slope cap K = {K:.3g} (margin ratio per unit daily "
                f"portfolio vol), above {fmt_number(MAX_CAP_SLOPE)}: a cap that loose never binds and cannot be certified in "
                "float64; check the units of portfolio.impact and portfolio.liquidation, or use cap.kind = 'none'."
            )
        return
    if not K <= MAX_CAP_SLOPE:
        kappa = f", market.inventory_penalty = {m['inventory_penalty']!r}" if m["inventory_penalty"] else ""
        c = cfg["cap"]
        if c["input"] == "realized_variance":
            kappa += f" and cap.window = {c['window']!r}"
        elif c["input"] in ("hs_var", "hs_es"):
            kappa += f" and cap.window = {c['window']!r}, cap.level = {c['level']!r}"
        elif c["input"] == "ewma":
            kappa += f" and cap.lambda = {c['lambda']!r}"
        raise ConfigError(
            f"market.alpha = {m['alpha']!r} with market.c_eff = {m['c_eff']!r}{kappa} gives the slope cap "
            f"K = {K:.3g} (margin ratio per unit daily vol), above {fmt_number(MAX_CAP_SLOPE)}: a cap that loose never binds "
            "and cannot be certified in float64; check the units of alpha and c_eff, or use cap.kind = 'none'."
        )


# ---------------------------------------------------------------------- files

#: Largest |y| accepted in an empirical shock sample (standardised losses: a 1000-sigma day is not data).
MAX_STANDARDISED_SHOCK = 1e3


def _check_vol_column(who: str, key: str, vol: np.ndarray) -> None:
    """InputError naming the first row whose daily vol is not positive or not plausible (see :data:`PLAUSIBILITY`)."""
    vol = np.asarray(vol, float)
    bad = ~(vol >= MIN_DAILY_VOL) | (vol > PLAUSIBILITY[key][0])
    if bad.any():
        i = int(np.argmax(bad))
        raise InputError(f"{who} has vol = {fmt_number(vol[i])} in row {i + 2}, which is {daily_vol_problem(vol[i], key)}.")


def _check_margin_column(who: str, key: str, m: np.ndarray) -> None:
    """InputError naming the first row whose margin ratio is negative or not plausible (see :data:`PLAUSIBILITY`)."""
    m = np.asarray(m, float)
    bad = ~(m >= 0) | (m > PLAUSIBILITY[key][0])
    if bad.any():
        i = int(np.argmax(bad))
        raise InputError(f"{who} has {key.split(':')[1]} = {fmt_number(m[i])} in row {i + 2}, which is {margin_ratio_problem(m[i], key)}.")


def read_csv_columns(path: Path, role: str, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Numeric columns of a CSV named by config key ``role`` (the shared reader of :mod:`margin_design.csvio`)."""
    return _read_columns(path, required=required, optional=optional, label=role)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def silverman_bandwidth(y: np.ndarray) -> float:
    """Silverman's rule of thumb 0.9 min(sd, IQR/1.34) S^(-1/5), the default kernel bandwidth (units of Y)."""
    sd = float(np.std(y, ddof=1))
    q75, q25 = np.percentile(y, [75, 25])
    spread = min(sd, (q75 - q25) / 1.34) if q75 > q25 else sd
    return 0.9 * spread * y.size ** (-0.2)


# ---------------------------------------------------------------------- problem


def load_problem(path: str | Path) -> Problem:
    """Read, validate and build the design problem described by a config file."""
    cfg, folder = load_config(path)
    return problem_from_dict(cfg, folder, validated=True)


def problem_from_dict(cfg: dict, folder: str | Path = ".", *, validated: bool = False) -> Problem:
    """Build a :class:`Problem` from a config dict (validated here unless ``validated``)."""
    if not validated:
        cfg = validate(cfg)
    folder = Path(folder)
    files: dict[str, tuple[str, str]] = {}
    m, o = cfg["market"], cfg["objective"]
    cap = _cap_spec(cfg)
    if o["kind"] == "target":
        p = folder / o["file"]
        cols = read_csv_columns(p, "objective.file", ("target", "weight"), ("curvature", *VOL_COLUMNS))
        files["objective.file"] = (str(o["file"]), _sha256(p))
        who = f"objective.file = {o['file']!r}"
        vol, w = daily_vol_column(cols, who), cols["weight"]
        h = cols.get("curvature", np.ones_like(vol))
        if vol.size < 3:
            raise InputError(f"{who} has {vol.size} rows; at least 3 states are needed.")
        _check_vol_column(who, "objective.file:vol", vol)
        if np.any(np.diff(vol) <= 0):
            i = int(np.argmax(np.diff(vol) <= 0))
            raise InputError(
                f"{who} column vol must be strictly increasing, but row {i + 3} has {fmt_number(vol[i + 1])} after {fmt_number(vol[i])}."
            )
        _check_margin_column(who, "objective.file:target", cols["target"])
        if np.any(w <= 0):
            raise InputError(f"{who} column weight has {fmt_number(w[w <= 0][0])}; weights must be positive.")
        total = float(np.sum(w))
        if not math.isfinite(total):
            raise InputError(f"{who} column weight sums to more than float64 holds; rescale the weights (only their ratios matter).")
        if np.any(h < 0):
            i = int(np.argmax(h < 0))
            raise NonConvexError(
                f"{who} has curvature h = {fmt_number(h[i])} < 0 at vol = {fmt_number(vol[i])} (row {i + 2}): the objective is not convex in M."
            )
        if not np.any(h > 0):
            raise InputError(f"{who} column curvature is zero in every state, so every rule costs the same; give positive curvatures.")
        objective = TargetSpec(target=cols["target"], curvature=h)
        weights = w / total
    else:
        g, s, k = cfg["grid"], cfg["states"], cfg["shock"]
        grid = make_grid(g["vol_min"], g["vol_max"], g["points"], g["spacing"])
        vol = grid.vol
        if s["density"] == "table":
            p = folder / s["file"]
            cols = read_csv_columns(p, "states.file", ("weight",), VOL_COLUMNS)
            files["states.file"] = (str(s["file"]), _sha256(p))
            who = f"states.file = {s['file']!r}"
            cols["vol"] = daily_vol_column(cols, who)
            _check_vol_column(who, "states.file:vol", cols["vol"])
            if np.any(cols["weight"] < 0):
                raise InputError(f"{who} column weight has a negative mass {fmt_number(cols['weight'].min())}.")
            if not math.isfinite(float(np.sum(cols["weight"]))):
                raise InputError(f"{who} column weight sums to more than float64 holds; rescale the masses (only their ratios matter).")
            weights = state_weights(grid, "table", table_vol=cols["vol"], table_weight=cols["weight"])
        else:
            weights = state_weights(grid, s["density"], median_vol=s["median_vol"], dispersion=s["dispersion"])
        sample = bandwidth = None
        if k["model"] == "empirical":
            p = folder / k["file"]
            sample = read_csv_columns(p, "shock.file", ("y",))["y"]
            files["shock.file"] = (str(k["file"]), _sha256(p))
            if sample.size < 10:
                raise InputError(f"shock.file = {k['file']!r} has {sample.size} observations; at least 10 are needed.")
            if k["bandwidth"] is None and not float(np.std(sample)) > 0:
                raise InputError(
                    f"shock.file = {k['file']!r} has {sample.size} observations all equal to {fmt_number(sample[0])}, so the kernel "
                    "bandwidth (Silverman's rule) is 0; give a sample that varies or set shock.bandwidth > 0."
                )
            if np.max(np.abs(sample)) > MAX_STANDARDISED_SHOCK:
                i = int(np.argmax(np.abs(sample)))
                raise InputError(
                    f"shock.file = {k['file']!r} has y = {fmt_number(sample[i])} in row {i + 2}; the values are standardised losses "
                    f"(loss / (daily vol x sqrt(horizon_days))), so values beyond +-{fmt_number(MAX_STANDARDISED_SHOCK)} are refused."
                )
            bandwidth = k["bandwidth"] if k["bandwidth"] is not None else silverman_bandwidth(sample)
            cfg["shock"]["bandwidth_used"] = bandwidth
        shock = ShockSpec(model=k["model"], horizon_days=k["horizon_days"], df=k["df"], sample=sample, bandwidth=bandwidth)
        objective = CostSpec(
            shock=shock,
            loss=o["loss"],
            carry=o["carry"],
            prev_margin=o["prev_margin"],
            liquidation_weight=o["liquidation_weight"],
            liquidation_cost=o["liquidation_cost"],
            participation_weight=o["participation_weight"],
            participation_beta=o["participation_beta"],
            participation_cost=o["participation_cost"],
            # the liquidation scale: c_eff (ADV per unit margin ratio) for one contract, ||AB||_2 (price pressure per
            # unit margin ratio) for a portfolio, (86); see design/portfolio.py for the unit change
            c_eff=m["c_eff"] if cap.portfolio is None else cap.portfolio.price_pressure,
        )
    problem = Problem(vol=np.asarray(vol, float), weights=np.asarray(weights, float), objective=objective, cap=cap, config=cfg, source_files=files)
    problem.check_scaling()
    problem.check_convexity()
    return problem
