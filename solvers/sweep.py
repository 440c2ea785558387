"""Sweeps: solve a grid of configurations and return one tidy row per configuration.

``--vary section.key=SPEC`` takes ``a:b:n`` (n evenly spaced values from a to b inclusive) or a comma list
(``0.005,0.01,0.025``; strings allowed for non-numeric keys). Integer-typed keys (``grid.points``,
``cap.window``) get integer values: ``grid.points=10:50:5`` is 10, 20, 30, 40, 50, and an a:b:n whose values
are not whole numbers is refused. A sweep has at most :data:`MAX_CONFIGURATIONS` configurations. The configurations are the Cartesian
product in the order the keys are given (the last key varies fastest). Keys in
:data:`~margin_design.design.batch.STACKABLE` are solved as stacked batches (one Newton loop per chunk);
other keys (grid size, shock model, ...) split the sweep into groups with their own base problem.
A target design (``objective.kind = "target"``, an existing schedule capped as in Appendix D.2) sweeps its
market and cap keys the same way; its objective is the target file, so cost keys are refused and the
sensitivity columns of the cost weights are NaN.

Chunks are fixed by configuration order and ``chunk_size`` alone, and every chunk is computed the same way
wherever it runs, so a run in-process, on a dask LocalCluster or on a remote dask scheduler gives the same
table. Config files referenced by the base config must be readable by the workers at the same paths.
"""

from __future__ import annotations

import copy
import itertools
import logging
import math
from pathlib import Path

import numpy as np

from margin_design.units import SQRT_252
from margin_design.design.batch import STACKABLE, stack_problems
from margin_design.design.config import SCHEMA, TARGET_KEYS, problem_from_dict, validate
from margin_design.errors import ConfigError, InputError
from margin_design.solvers.sensitivity import PARAMETERS, parameters_of

DEFAULT_CHUNK = 500
#: Seconds to wait for a dask scheduler (``--scheduler``) to answer before giving up.
DEFAULT_TIMEOUT = 30.0
#: Most configurations in one sweep (each is validated up front and gives one row).
MAX_CONFIGURATIONS = 10**6
#: An a:b:n value of an integer key within this (relative) of a whole number counts as that number.
INTEGER_RTOL = 1e-9


def _is_integer_key(key: str) -> bool:
    section, _, name = key.partition(".")
    return SCHEMA.get(section, {}).get(name, ("", None))[0] == "integer"


def parse_vary(spec: str) -> tuple[str, list]:
    """``section.key=a:b:n`` or ``section.key=v1,v2,...`` -> (key, values)."""
    if "=" not in spec:
        raise ConfigError(f"--vary {spec!r} must look like section.key=a:b:n or section.key=v1,v2.")
    key, text = spec.split("=", 1)
    key = key.strip()
    if key.count(".") != 1:
        raise ConfigError(f"--vary key {key!r} must be section.key, for example market.alpha.")
    text = text.strip()
    if text.count(":") == 2:
        a, b, n = text.split(":")
        try:
            a, b, count = float(a), float(b), int(n)
        except ValueError:
            raise ConfigError(f"--vary {spec!r}: a:b:n needs two numbers and an integer count.") from None
        if count < 1:
            raise ConfigError(f"--vary {spec!r}: the count {count} must be at least 1.")
        if count > MAX_CONFIGURATIONS:
            raise ConfigError(f"--vary {spec!r}: the count {count} is above the maximum of {MAX_CONFIGURATIONS:,} configurations.")
        values = [float(v) for v in (np.linspace(a, b, count) if count > 1 else [a])]
        if _is_integer_key(key):  # integer-typed keys (grid.points, cap.window) sweep whole numbers
            for v in values:
                if not math.isfinite(v) or abs(v - round(v)) > INTEGER_RTOL * max(1.0, abs(v)):
                    raise ConfigError(
                        f"--vary {spec!r}: {key} is an integer, but a:b:n gives {v:.6g}; choose a, b and n so that a and "
                        "(b - a)/(n - 1) are whole numbers, or list the values (v1,v2,...)."
                    )
            return key, [int(round(v)) for v in values]
        return key, values
    values = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            raise ConfigError(f"--vary {spec!r} has an empty value.")
        values.append(_scalar(item))
    return key, values


def _scalar(item: str):
    for cast in (int, float):
        try:
            return cast(item)
        except ValueError:
            pass
    return item


def expand(base_cfg: dict, varies: list[tuple[str, list]]) -> tuple[list[str], list[tuple]]:
    """Keys and the list of value tuples (Cartesian product), each configuration validated up front."""
    keys = [k for k, _ in varies]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"--vary names a key twice: {keys}.")
    total = math.prod(len(v) for _, v in varies)
    if total > MAX_CONFIGURATIONS:
        raise ConfigError(f"--vary gives {total:,} configurations, above the maximum of {MAX_CONFIGURATIONS:,}; sweep fewer values.")
    combos = list(itertools.product(*[v for _, v in varies]))
    for combo in combos:  # one-sentence errors before any solving
        cfg = validate(_apply(base_cfg, keys, combo))
        if cfg["cap"].get("updates", 1) > 1:
            raise ConfigError(f"cap.updates = {cfg['cap']['updates']!r}: sweep solves the paper's two-period cap; the T-update cap "
                              "needs margin-design solve (a bisection of certified solves per configuration).")
    return keys, combos


def _apply(base_cfg: dict, keys: list[str], combo: tuple) -> dict:
    cfg = copy.deepcopy(base_cfg)
    for key, value in zip(keys, combo):
        section, name = key.split(".")
        cfg.setdefault(section, {})[name] = value
    return cfg


def _chunks(keys, combos, chunk_size):
    """Deterministic work units: (group values of non-stackable keys, [(index, combo), ...])."""
    fixed = [i for i, k in enumerate(keys) if k not in STACKABLE]
    groups: dict[tuple, list] = {}
    for idx, combo in enumerate(combos):
        groups.setdefault(tuple(combo[i] for i in fixed), []).append((idx, combo))
    units = []
    for _, members in groups.items():
        for a in range(0, len(members), chunk_size):
            units.append(members[a : a + chunk_size])
    return units


def solve_chunk(base_cfg: dict, folder: str, keys: list[str], members: list[tuple[int, tuple]]) -> list[dict]:
    """Solve one work unit (same non-stackable values) as a stacked batch; rows in configuration order."""
    from margin_design.solvers.batch import solve_batch

    stack_keys = [k for k in keys if k in STACKABLE]
    first = _apply(base_cfg, keys, members[0][1])
    base = problem_from_dict(first, folder)
    overrides = {k: np.array([combo[keys.index(k)] for _, combo in members], float) for k in stack_keys}
    batch = stack_problems(base, overrides, count=len(members))
    answers, _ = solve_batch(batch, sensitivities=parameters_of(batch))
    ann = SQRT_252
    caps = np.broadcast_to(np.asarray(batch.cap.slope_vol, float), (batch.count,)) / ann   # K / sqrt(252) (74)
    rows = []
    for (idx, combo), ans, cap in zip(members, answers, caps):
        row = {"config": idx}
        row.update({k: v for k, v in zip(keys, combo)})
        fbv = ans.first_best_objective
        row.update(
            {
                "objective": ans.objective,
                "first_best_objective": fbv,
                "price_of_manipulation_proofness": ans.price_of_manipulation_proofness,
                "price_relative": ans.price_of_manipulation_proofness / fbv if fbv else float("nan"),
                "cap_vol_annual": float(cap),
                "segments": ";".join(
                    f"{s['kind']}:{ann * s['vol_start']:.4f}-{ann * s['vol_end']:.4f}" for s in ans.segments
                ),
                "n_segments": len(ans.segments),
                "relative_gap": ans.certificate.relative_gap,
                "certified": bool(ans.certificate.ok),
            }
        )
        for name in PARAMETERS:  # a portfolio design has no alpha or c_eff, a target design no cost weights: NaN
            row[f"dprice_d_{name}"] = ans.sensitivities[name]["price"] if name in ans.sensitivities else float("nan")
        rows.append(row)
    return rows


def run_sweep(
    config_path: str | Path,
    vary: list[str],
    *,
    workers: int = 2,
    scheduler: str | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    progress=None,
    timeout: float = DEFAULT_TIMEOUT,
) -> list[dict]:
    """Run a sweep; ``scheduler`` (a dask address, waited for ``timeout`` seconds) or ``workers`` (LocalCluster
    size; 0 = in this process). ``progress(done, total, "sweep")``, if given, is called with the number of
    configurations solved so far after each work unit (and with 0 before the first)."""
    from margin_design.design.config import load_config

    cfg, folder = load_config(config_path)
    raw = _raw_config(cfg)
    keys, combos = expand(raw, [parse_vary(v) for v in vary])
    units = _chunks(keys, combos, chunk_size)
    folder = str(Path(folder).resolve())
    results: dict[int, list[dict]] = {}
    stacked = [k for k in keys if k in STACKABLE]
    logging.getLogger(__name__).info(
        f"sweep: {len(combos)} configurations in {len(units)} work unit(s) of at most {chunk_size}; stacked in one Newton loop "
        f"per unit: {', '.join(stacked) or 'none'}; {'in this process' if scheduler is None and workers == 0 else 'on dask'}"
    )

    solved = 0

    def report(unit_index=None):
        nonlocal solved
        if unit_index is not None:
            solved += len(units[unit_index])
        if progress is not None:
            progress(solved, len(combos), "sweep")

    if scheduler is None and workers == 0:
        report()
        for i, members in enumerate(units):
            results[i] = solve_chunk(raw, folder, keys, members)
            report(i)
    else:
        from dask.distributed import Client, LocalCluster, as_completed

        cluster = None
        if scheduler is None:
            # silence_logs: workers log only errors (their warnings about cancelled tasks after Ctrl-C are noise)
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                                   silence_logs=logging.ERROR)
            client = Client(cluster)
        else:
            try:
                client = Client(scheduler, timeout=timeout)
            except ValueError as exc:
                raise InputError(f"--scheduler {scheduler!r} is not a dask address ({str(exc).rstrip('.')}); use e.g. tcp://HOST:8786.") from None
            except (OSError, TimeoutError) as exc:
                raise InputError(
                    f"--scheduler {scheduler!r}: no dask scheduler answered within --timeout {timeout:g} s ({str(exc).rstrip('.')}); "
                    "check the address and that the scheduler is running."
                ) from None
        report()  # after connecting, so a refused connection prints only its sentence
        try:
            futures = {client.submit(solve_chunk, raw, folder, keys, members, pure=False): i for i, members in enumerate(units)}
            for fut in as_completed(futures):
                results[futures[fut]] = fut.result()
                report(futures[fut])
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    rows = [row for i in range(len(units)) for row in results[i]]
    return sorted(rows, key=lambda r: r["config"])


def _raw_config(cfg: dict) -> dict:
    """The validated config without derived entries (so it can be re-validated per configuration)."""
    raw = copy.deepcopy(cfg)
    raw.get("shock", {}).pop("bandwidth_used", None)
    if raw.get("objective", {}).get("kind") == "target":  # the filled-in cost defaults do not apply to a target file
        raw["objective"] = {k: v for k, v in raw["objective"].items() if k in TARGET_KEYS}
    return {s: {k: v for k, v in sec.items() if v is not None} for s, sec in raw.items()}


def sweep_frame(rows: list[dict]):
    """The rows of :func:`run_sweep` as a pandas DataFrame, one row per configuration (index ``config``).

    Columns, in the order of the CSV that ``margin-design sweep`` writes: the swept keys (``market.alpha``, ...,
    in the config's units), ``objective`` J(g*) and ``first_best_objective`` J(M_fb) (expected cost per unit
    notional), ``price_of_manipulation_proofness`` J(g*) - J(M_fb) and ``price_relative`` (that divided by
    J(M_fb)), ``segments`` (text: kind:annualised vol from-to, decimal), ``n_segments`` (int64),
    ``relative_gap`` (certified duality gap / J), ``certified`` (bool) and ``dprice_d_<parameter>`` (derivative
    of the price of manipulation-proofness per unit of each parameter; NaN where a design has no such parameter).
    """
    import pandas as pd

    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    frame = frame.set_index("config")
    frame["n_segments"] = frame["n_segments"].astype("int64")
    frame["certified"] = frame["certified"].astype(bool)
    return frame


def sweep(config_path: str | Path, vary, *, workers: int = 0, scheduler: str | None = None, chunk_size: int = DEFAULT_CHUNK,
          timeout: float = DEFAULT_TIMEOUT):
    """Solve a grid of configurations of the design in ``config_path`` and return the table as a DataFrame.

    ``vary`` is either a list of ``"section.key=SPEC"`` strings, as ``margin-design sweep --vary`` takes them
    (``"market.alpha=0.1:0.4:31"``, ``"objective.carry=0.005,0.01"``), or a dict ``{"section.key": values}`` with a
    list of values or a SPEC string. ``workers=0`` (the default here) solves in this process; ``workers > 0``
    starts a dask LocalCluster and ``scheduler`` uses a running dask scheduler, as on the command line. The
    columns are those of :func:`sweep_frame`; nothing is printed.
    """
    if isinstance(vary, dict):
        vary = [f"{key}={values if isinstance(values, str) else ','.join(_spec_text(v) for v in values)}" for key, values in vary.items()]
    elif isinstance(vary, str):
        vary = [vary]
    rows = run_sweep(config_path, list(vary), workers=workers, scheduler=scheduler, chunk_size=chunk_size, progress=None, timeout=timeout)
    return sweep_frame(rows)


def _spec_text(value) -> str:
    """One value of a --vary list: numbers at full precision (repr), anything else as text."""
    if isinstance(value, (bool, np.bool_)):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    return str(value)
