"""What the explorer's page asks of the library, without the web server (testable on its own).

Every number on the page comes from the existing layers; this module only wires the page's controls to them:

* controls -> config: the page sends the config's sections and keys (TOML names) with the values as typed; numbers
  are read with ``int``/``float`` only (no evaluation of user text), and the dict goes through the config loader's
  :func:`~margin_design.design.config.validate` -- the one validation, so the page shows the loader's sentence;
* solve: :func:`~margin_design.design.config.problem_from_dict` and :func:`~margin_design.solvers.solve` (exact);
* calibration panel: :func:`~margin_design.calibration.cap.calibrate_market` ((65), (75)-(77)), with the cells of the
  paper's Table 2 grid (:mod:`margin_design.calibration.tables`) as presets;
* an existing rule: a ``vol_daily,margin`` CSV read by :func:`~margin_design.audit.rules.load_rule` (the one rule
  loader) or a formula read by :func:`~margin_design.audit.rules.parse_formula` (the safe parser of
  :mod:`margin_design.formula`); :func:`~margin_design.audit.local.local_analysis` says where it breaks the cap and
  what the trigger-and-reverse trade earns there; its capped version is the target design (``objective.kind =
  "target"``, Appendix D.2) on the design's states and weights;
* export: ``margin-design solve``'s writer (:func:`~margin_design.reports.schedule_files.schedule_json_text`) and
  ``margin-design report``'s (:func:`~margin_design.reports.report.build_report`, :func:`report_files`), so the files
  are those of the command line for the same config; the TOML is written by ``tomli_w`` (floats as ``repr``, so the
  exported config reproduces every value bit for bit; the project's ``toml_float`` keeps 12 digits only).

Units: daily vol (decimal) in configs and files; the page shows annualised vol in % (sqrt(252) x daily), margins in %
of notional, expected costs in bp of notional, slopes in pp of margin per annualised-vol point (= dm/dsigma_ann).
"""

from __future__ import annotations

import hashlib
import math
import re
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from margin_design.errors import ConfigError, InputError

#: Largest uploaded rule file (bytes) and typed formula (characters) the page accepts.
MAX_UPLOAD_BYTES = 256 * 1024
MAX_FORMULA_CHARS = 500
#: Largest grid the page draws (states); finer grids are for ``margin-design solve``.
MAX_PAGE_POINTS = 20_000
#: Uploaded rules kept in memory (the oldest is dropped beyond this).
MAX_RULES = 32
#: The target file of the capped existing rule, beside the exported TOML.
TARGET_FILE = "existing_schedule.csv"
BP = 1e4
_INT_TEXT = re.compile(r"[+-]?\d+")
_SECTIONS = ("grid", "states", "shock", "objective", "market", "cap")


# ---------------------------------------------------------------------- controls -> validated config


def _number(text: str):
    """A typed number: int for integer text, float otherwise; the text itself when it is no number (the loader then
    names the key and the value). Only ``int``/``float`` read it: user text is never evaluated."""
    s = text.strip()
    if _INT_TEXT.fullmatch(s):
        return int(s)
    try:
        return float(s)
    except ValueError:
        return text


def raw_config(controls: dict) -> dict:
    """The config dict (TOML sections and keys) the page's controls describe: numeric keys typed as text are read as
    numbers, empty fields are left out (the loader's default applies, or it says the key is missing)."""
    from margin_design.design.config import SCHEMA

    if not isinstance(controls, dict):
        raise ConfigError("the page sent no configuration; reload the page.")
    raw: dict = {}
    for section, keys in controls.items():
        if not isinstance(keys, dict):
            raw[section] = keys     # the loader refuses it with its own sentence
            continue
        out = {}
        for key, value in keys.items():
            typ = SCHEMA.get(section, {}).get(key, ("string",))[0]
            if isinstance(value, str) and typ in ("number", "integer"):
                if not value.strip():
                    continue
                value = _number(value)
            if value is None:
                continue
            out[key] = value
        raw[section] = out
    return raw


def validated(controls: dict) -> dict:
    """The validated config (defaults filled) of the page's controls: the config loader's validation, nothing else."""
    from margin_design.design.config import validate

    cfg = validate(raw_config(controls))
    if "portfolio" in cfg:
        raise ConfigError("the explorer designs single-contract rules; solve a [portfolio] config with margin-design solve.")
    if cfg["objective"]["kind"] != "cost":
        raise ConfigError("the page designs from costs (objective.kind = 'cost'); cap an existing schedule in its rule panel.")
    if cfg["grid"]["points"] > MAX_PAGE_POINTS:
        raise ConfigError(f"grid.points = {cfg['grid']['points']!r} is more than the {MAX_PAGE_POINTS:,} states the page draws; "
                          "use fewer points here, or margin-design solve for the fine grid.")
    return cfg


def plain(cfg: dict) -> dict:
    """A validated config as the dict a TOML file holds: unset keys (None) and derived entries left out."""
    out = {}
    for section in _SECTIONS:
        if section in cfg:
            out[section] = {k: v for k, v in cfg[section].items() if v is not None and k != "bandwidth_used"}
    return out


def start_config(path: str | Path | None) -> tuple[dict, Path]:
    """The page's first config (TOML dict) and the folder its relative file names resolve against: CONFIG, or the
    bundled benchmark (Section 6.4, tau = 1). A config the page cannot show is refused with one sentence."""
    from margin_design.design.config import load_config

    if path is None:
        return dict(BENCHMARK_CONFIG), Path.cwd()
    cfg, folder = load_config(path)
    if "portfolio" in cfg:
        raise InputError(f"config {str(path)!r} is a [portfolio] design; the explorer designs single-contract rules "
                         "(solve it with margin-design solve).")
    if cfg["objective"]["kind"] == "target":
        raise InputError(f"config {str(path)!r} caps an existing schedule (objective.kind = 'target'); start the explorer "
                         "from a cost design and load the schedule in its rule panel (a vol_daily,margin CSV).")
    out = plain(cfg)
    for section, key in FILE_KEYS:   # data files by absolute path: the exported TOML then solves from any folder
        if key in out.get(section, {}):
            out[section][key] = str((folder / out[section][key]).resolve())
    return out, folder.resolve()


#: Config keys that name data files (kept as they are by the page, written as absolute paths).
FILE_KEYS = (("states", "file"), ("shock", "file"))

#: The bundled benchmark, examples/benchmark.toml (the paper's tau = 1 calibration, Sections 3.6 and 6.4).
BENCHMARK_CONFIG = {
    "grid": {"vol_min": 0.004, "vol_max": 0.04, "points": 400, "spacing": "vol"},
    "states": {"density": "lognormal", "median_vol": 0.01, "dispersion": 0.5},
    "shock": {"model": "normal", "horizon_days": 2.0},
    "objective": {"kind": "cost", "loss": "shortfall", "carry": 0.01, "prev_margin": 0.05, "liquidation_weight": 0.0,
                  "liquidation_cost": "quadratic", "participation_weight": 0.0, "participation_beta": 0.0,
                  "participation_cost": "linear"},
    "market": {"alpha": 0.2, "c_eff": 4.5, "inventory_penalty": 0.0},
    "cap": {"kind": "manipulation_proof", "input": "variance"},
}


# ---------------------------------------------------------------------- calibration panel


def calibration_presets() -> list[dict]:
    """The calibration panel's presets: the paper's benchmark (Section 3.6) and every cell of the Table 2 grid used by
    Tables 3-4 (epsilon x tau x f at m_0 = 5%, distortion delta_bps = 200 sqrt(f), (65))."""
    from margin_design.calibration.cap import BENCHMARK, distortion_bps
    from margin_design.calibration.tables import ELASTICITIES, MARGIN_FROM, PARTICIPATIONS, TURNOVERS

    b = BENCHMARK
    out = [{"label": f"benchmark (Section 3.6): eps {b['elasticity']:g}, tau {b['turnover']:g}, f {100 * b['participation']:g}%, "
                     f"m {100 * b['margin']:g}%, delta {b['distortion_bps']:g} bp",
            "elasticity": b["elasticity"], "turnover": b["turnover"], "participation": b["participation"],
            "margin": b["margin"], "distortion_bps": b["distortion_bps"]}]
    for eps in ELASTICITIES:
        for tau in TURNOVERS:
            for f in PARTICIPATIONS:
                d = float(distortion_bps(f))
                out.append({"label": f"Tables 3-4 cell: eps {eps:g}, tau {tau:g}, f {100 * f:g}% (delta {d:.3g} bp), m {100 * MARGIN_FROM:g}%",
                            "elasticity": eps, "turnover": tau, "participation": f, "margin": MARGIN_FROM, "distortion_bps": d})
    return out


def calibrate(inputs: dict) -> dict:
    """alpha (75) and c_eff (76) from elasticity, turnover, participation (decimal of ADV), margin (decimal) and distortion
    (bp; empty: 200 sqrt(f), (65)), by :func:`~margin_design.calibration.cap.calibrate_market`."""
    from margin_design.calibration.cap import calibrate_market

    values = {}
    for name in ("elasticity", "turnover", "participation", "margin", "distortion_bps", "inventory_penalty"):
        v = inputs.get(name)
        if isinstance(v, str):
            v = None if not v.strip() else _number(v)
        if isinstance(v, str) or isinstance(v, bool) or (v is not None and not isinstance(v, (int, float))):
            raise InputError(f"{name} = {v!r} must be a number.")
        values[name] = v
    for name in ("elasticity", "turnover", "participation", "margin"):
        if values[name] is None:
            raise InputError(f"give {name} to calibrate alpha and c_eff.")
    cal = calibrate_market(values["elasticity"], values["turnover"], values["participation"], values["margin"],
                           distortion=values["distortion_bps"], inventory_penalty=values["inventory_penalty"] or 0.0)
    return {"alpha": float(cal.alpha), "c_eff": float(cal.c_eff), "alpha_c_eff": float(cal.alpha_c_eff),
            "distortion_bps": float(cal.distortion_bps), "describe": cal.describe(), "cap": cal.cap().to_dict()}


# ---------------------------------------------------------------------- existing rules


@dataclass(frozen=True)
class LoadedRule:
    """An existing rule the user gave: the audit's :class:`~margin_design.audit.rules.Rule`, a label, its kind and the
    id the page refers to it by."""

    rule: object
    label: str
    kind: str      # "csv" | "formula"
    id: str


def _read_rule(kind: str, text: str, name: str, folder: Path):
    from margin_design.audit.rules import Rule, load_rule, parse_formula
    from margin_design.cli_audit import _check_rule_plausible

    if kind == "formula":
        if len(text) > MAX_FORMULA_CHARS:
            raise InputError(f"the formula has {len(text):,} characters; at most {MAX_FORMULA_CHARS} are accepted.")
        if not text.strip():
            raise InputError("type a formula in r (daily variance) or sigma (daily vol), e.g. 2.326*sqrt(2*r).")
        return Rule(parse_formula(text), name=text.strip())
    data = text.encode("utf-8")
    if len(data) > MAX_UPLOAD_BYTES:
        raise InputError(f"the rule file has {len(data):,} bytes; at most {MAX_UPLOAD_BYTES:,} are accepted (a rule table has a few hundred rows).")
    path = folder / "rule.csv"
    path.write_bytes(data)
    stem = Path(name or "rule.csv").stem[:60] or "rule"
    # a falling existing schedule is data here (its capped version pools): read it like a first-best reference
    rule = load_rule(str(path), name=stem, monotone=False)
    _check_rule_plausible(rule, repr(name or "rule.csv"))
    return rule


class Explorer:
    """The server's state: the start config and its folder, the existing rules given so far (each in a folder of its
    own under a private temporary folder), and one lock so that no two solves run at once."""

    def __init__(self, config_path: str | Path | None = None):
        self.start, self.folder = start_config(config_path)
        self.config_name = Path(config_path).name if config_path else "benchmark (built in)"
        self._tmp = Path(tempfile.mkdtemp(prefix="margin-design-app-"))
        self._rules: dict[str, LoadedRule] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)

    # ------------------------------------------------------------------ rules
    def add_rule(self, kind: str, text: str, name: str = "") -> LoadedRule:
        """Read an uploaded ``vol_daily,margin`` CSV (``kind = "csv"``) or a typed formula; InputError on bad input."""
        if kind not in ("csv", "formula"):
            raise InputError(f"rule kind {kind!r} is not one of csv, formula.")
        if not isinstance(text, str):
            raise InputError("the rule must be text (a CSV file or a formula).")
        rid = hashlib.sha256(f"{kind}\0{text}".encode("utf-8")).hexdigest()[:16]
        if rid in self._rules:
            return self._rules[rid]
        folder = self._tmp / rid
        folder.mkdir(exist_ok=True)
        try:
            rule = _read_rule(kind, text, name, folder)
        except Exception:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        loaded = LoadedRule(rule, rule.name if kind == "formula" else (name or "rule.csv"), kind, rid)
        while len(self._rules) >= MAX_RULES:
            old = next(iter(self._rules))
            shutil.rmtree(self._tmp / old, ignore_errors=True)
            del self._rules[old]
        self._rules[rid] = loaded
        return loaded

    def rule(self, rid) -> LoadedRule | None:
        if rid in (None, ""):
            return None
        if rid not in self._rules:
            raise InputError("the existing rule is no longer on the server (it was restarted); load it again.")
        return self._rules[rid]

    # ------------------------------------------------------------------ solving
    def design(self, controls: dict, rid=None):
        """(result, cost problem, loaded rule or None, the config that reproduces the result, the target file's text or
        None).

        Without a rule: the cost design of the controls. With one: the rule evaluated on the design's states is the
        target t of a target design (Appendix D.2) with the same market and cap, written as TARGET_FILE."""
        from margin_design.design.config import problem_from_dict, validate
        from margin_design.solvers import solve

        cfg = validated(controls)
        loaded = self.rule(rid)
        with self._lock:
            problem = problem_from_dict(cfg, self.folder, validated=True)
            if loaded is None:
                return solve(problem), problem, None, plain(cfg), None
            folder = self._tmp / loaded.id
            margin = loaded.rule.evaluate(problem.r, "right")[0]
            text = "vol_daily,target,weight\n" + "".join(
                f"{float(v)!r},{float(m)!r},{float(w)!r}\n" for v, m, w in zip(problem.vol, margin, problem.weights))
            (folder / TARGET_FILE).write_text(text, encoding="utf-8")
            target = {"objective": {"kind": "target", "file": TARGET_FILE},
                      "market": plain(cfg)["market"], "cap": plain(cfg)["cap"]}
            tcfg = validate(target)
            # the TOML of a target design holds only the keys given (the loader refuses cost keys with kind = 'target')
            return solve(problem_from_dict(tcfg, folder, validated=True)), problem, loaded, target, text

    def page(self, controls: dict, rid=None) -> dict:
        """Everything the page draws for these controls (and existing rule, if any)."""
        started = time.perf_counter()
        result, problem, loaded, cfg, _ = self.design(controls, rid)
        seconds = time.perf_counter() - started
        out = view(result)
        out["solve_ms"] = 1e3 * seconds
        out["config"] = cfg
        if loaded is not None:
            out["rule"] = rule_view(loaded, problem, result)
        return out

    # ------------------------------------------------------------------ export
    def export(self, what: str, controls: dict, rid=None, tick=None, published_vols=None) -> tuple[str, bytes]:
        """(file name, bytes) of an export: ``toml`` (the config), ``target`` (the existing schedule the TOML names, in
        rule mode), ``schedule`` (schedule.json), ``rule_table_csv`` / ``rule_table_json`` (margin-design report's)."""
        result, _, loaded, cfg, target_text = self.design(controls, rid)
        if what == "toml":
            return "margin-design.toml", toml_text(cfg, loaded)
        if what == "target":
            if loaded is None:
                raise InputError("there is no existing rule on the page to export.")
            return TARGET_FILE, target_text.encode("utf-8")   # the file this very solve read
        if what == "schedule":
            from margin_design.reports.schedule_files import schedule_json_text

            return "schedule.json", schedule_json_text(result).encode("utf-8")
        if what in ("rule_table_csv", "rule_table_json"):
            from margin_design.reports.knots import DEFAULT_TOLERANCE
            from margin_design.reports.parameters import ElasticityInputs
            from margin_design.reports.report import ReportOptions, build_report, report_files
            from margin_design.reports.rule_data import RuleData

            tick = None if tick in (None, "") else _number(str(tick))
            if tick is not None and not isinstance(tick, (int, float)):
                raise InputError(f"the rounding tick {tick!r} must be a margin ratio such as 0.0005 (5 bp).")
            options = ReportOptions(tolerance=DEFAULT_TOLERANCE, tick=tick, elasticity=ElasticityInputs(),
                                    published_vols=published_vols or None)   # as margin-design report builds them
            report = build_report(RuleData.from_schedule(result), options, problem=result.problem)
            name = "rule_table.csv" if what == "rule_table_csv" else "rule_table.json"
            return name, report_files(report, figures=False)[name]
        raise InputError(f"export {what!r} is not one of toml, target, schedule, rule_table_csv, rule_table_json.")


def toml_text(cfg: dict, loaded: LoadedRule | None = None) -> bytes:
    """The TOML file that reproduces the page: ``margin-design solve`` on it gives the page's schedule."""
    import tomli_w

    head = ["# Written by margin-design app: `margin-design solve` on this file reproduces the page's schedule.",
            "# Units: daily vol (decimal), margin ratios (decimal), alpha per unit of ADV traded, c_eff in ADV per unit margin ratio."]
    if loaded is not None:
        head.append(f"# The existing rule {loaded.label!r} capped (Appendix D.2): keep {TARGET_FILE} beside this file.")
    return ("\n".join(head) + "\n\n" + tomli_w.dumps(cfg)).encode("utf-8")


# ---------------------------------------------------------------------- what the page draws


def _floats(a) -> list:
    return [float(v) if math.isfinite(v) else None for v in np.asarray(a, float)]


def view(result) -> dict:
    """The page's numbers for a solved :class:`~margin_design.solvers.Schedule` (units in the keys)."""
    from margin_design.reports.figures import coincide_note
    from margin_design.solvers.certificate import RELATIVE_GAP_TARGET
    from margin_design.units import SQRT_252

    p, o, c = result.problem, result.objective, result.certificate
    va = SQRT_252 * np.asarray(p.vol, float)
    x, fb = np.asarray(result.schedule, float), np.asarray(result.first_best, float)
    K = p.cap.slope_vol if p.cap.kind != "none" else math.inf
    price = result.price_of_manipulation_proofness
    return {
        "target": bool(result.is_target),
        "vol_annual_pct": _floats(100 * va),
        "margin_pct": _floats(100 * x),
        "first_best_pct": _floats(100 * fb),
        "gap_pp": _floats(100 * (x - fb)),                                   # g* - first-best (or - the existing rule)
        # " (coincides with g*)" when the two lines are within a line width of each other (the report figures' rule)
        "first_best_note": coincide_note(fb, x, float(np.ptp(np.concatenate([x, fb]))) or 1.0, "g*"),
        "slope_pp_per_point": _floats(np.diff(x) / np.diff(va)),            # dm/dsigma_ann on each grid interval
        "first_best_slope_pp_per_point": _floats(np.diff(fb) / np.diff(va)),
        "segments": [{"kind": s["kind"], "from_pct": float(100 * SQRT_252 * s["vol_start"]), "to_pct": float(100 * SQRT_252 * s["vol_end"]),
                      "margin_from_pct": float(100 * x[s["start"]]), "margin_to_pct": float(100 * x[s["end"]])} for s in result.segments],
        "cap": {"slope_vol": K if math.isfinite(K) else None, "slope_vol_annual": K / SQRT_252 if math.isfinite(K) else None,
                "formula": p.cap.formula(), "kind": p.cap.kind},
        "objective": {"value": o["value"], "first_best_value": o["first_best_value"], "terms": dict(o["terms"]),
                      "first_best_terms": dict(o["first_best_terms"])},
        "price": price,
        "price_bp": BP * price,
        "price_relative": price / o["first_best_value"] if o["first_best_value"] else None,
        "certificate": {"ok": bool(c.ok), "relative_gap_target": RELATIVE_GAP_TARGET, **c.to_dict()},
        # a target design: the root-mean-square distance of g* from the existing schedule (as the report's cost figure)
        "rms_distance_pp": float(100 * np.sqrt(np.sum(p.weights * (x - fb) ** 2) / np.sum(p.weights))),
        "states": int(p.n),
    }


def rule_view(loaded: LoadedRule, problem, capped) -> dict:
    """The existing rule on the design's states: its margins and slopes, where its slope exceeds the cap (16)-(18) and
    the trigger-and-reverse gain there ((58): profit per unit of trigger notional, bp, at a trigger of 1% of ADV), where
    it falls, and how far its capped version moves from it."""
    from margin_design.audit.build import _input_spec
    from margin_design.audit.local import AuditMarket, local_analysis
    from margin_design.units import SQRT_252

    m = problem.cap
    la = local_analysis(loaded.rule, problem.vol, AuditMarket(alpha=m.alpha, c_eff=m.c_eff, inventory_penalty=m.inventory_penalty),
                        _input_spec(problem))
    va = SQRT_252 * np.asarray(problem.vol, float)
    margin = np.asarray(la.margin, float)
    s = la.summary()
    over = la.exceeds_cap
    falls = np.diff(margin) < 0
    worst = int(np.argmax(np.where(over, la.profit_bps, -np.inf))) if over.any() else None
    ranges = lambda vols: [[float(100 * SQRT_252 * a), float(100 * SQRT_252 * b)] for a, b in zip(vols[::2], vols[1::2])]  # noqa: E731
    fall_at = np.flatnonzero(falls)
    dist = np.asarray(capped.schedule, float) - margin
    return {
        "label": loaded.label,
        "kind": loaded.kind,
        "id": loaded.id,
        "margin_pct": _floats(100 * margin),
        "slope_pp_per_point": _floats(np.diff(margin) / np.diff(va)),
        "over_cap_pct": ranges(s["vol_over_cap"]),
        "states_over_cap": int(s["states_over_cap"]),
        "max_slope_over_cap": float(s["max_slope_over_cap"]),
        "vol_at_max_slope_over_cap_pct": float(100 * SQRT_252 * s["vol_at_max_slope_over_cap"]),
        "trigger_adv": float(la.market.trigger),
        "max_gain_bps": float(la.profit_bps[worst]) if worst is not None else None,
        "max_gain_roi_pct": float(la.roi_pct[worst]) if worst is not None else None,
        "vol_at_max_gain_pct": float(va[worst]) * 100 if worst is not None else None,
        "profitable_states": int(np.sum(la.profitable)),
        "falls": bool(falls.any()),
        "falls_from_pct": float(100 * va[fall_at[0]]) if fall_at.size else None,
        "falls_to_pct": float(100 * va[fall_at[-1] + 1]) if fall_at.size else None,
        "max_change_pp": float(100 * np.max(np.abs(dist))),
    }
