"""Many configurations of one design problem stacked into a single chain with breaks (a batch).

A sweep varies numeric parameters (alpha, c_eff, carry, ...) over configurations that share the grid,
weights, shock model and functional forms. Stacking them gives one long state vector: the objective's
parameters become per-state arrays (JAX broadcasts them), each configuration's cap gives its own
increments, and the links between configurations are *breaks* that carry no constraint. One JAX
evaluation and one Newton loop then serve every configuration; each configuration's certificate is
computed on its own slice. Units as in :mod:`margin_design.design.problem`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from margin_design.design.problem import Problem
from margin_design.errors import ConfigError

# Config keys that can vary within one batch (numeric, and not changing the grid or the functional forms).
STACKABLE = {
    "market.alpha": ("cap", "alpha"),
    "market.c_eff": ("both", "c_eff"),
    "market.inventory_penalty": ("cap", "inventory_penalty"),
    "objective.carry": ("objective", "carry"),
    "objective.prev_margin": ("objective", "prev_margin"),
    "objective.liquidation_weight": ("objective", "liquidation_weight"),
    "objective.participation_weight": ("objective", "participation_weight"),
    "objective.participation_beta": ("objective", "participation_beta"),
}


@dataclass(frozen=True, eq=False)
class BatchProblem(Problem):
    """``count`` configurations of ``chain`` states each, stacked; cap parameters are arrays of length count."""

    chain: int = 0
    count: int = 0

    @cached_property
    def u(self) -> np.ndarray:
        K = np.broadcast_to(np.asarray(self.cap.slope_vol, float), (self.count,))
        per_link = np.repeat(K, self.chain)[:-1]
        u = per_link * np.diff(self.vol)
        u[self.breaks] = np.inf
        return u

    @cached_property
    def breaks(self) -> np.ndarray:
        b = np.zeros(self.n - 1, bool)
        b[self.chain - 1 :: self.chain] = True
        return b

    @property
    def starts(self) -> np.ndarray:
        return np.arange(self.count) * self.chain


def stack_problems(base: Problem, overrides: dict[str, np.ndarray], count: int | None = None) -> BatchProblem:
    """Stack ``base`` with each configuration's values of the STACKABLE keys in ``overrides`` (equal lengths);
    ``count`` copies of ``base`` when ``overrides`` is empty.

    A target objective (``objective.kind = "target"``, Appendix D.2) stacks too: its per-state target and
    curvature are repeated for every configuration, and only the market's keys (the cap) can vary, since the
    cost weights are not part of it; ``market.c_eff`` then enters the cap alone.
    """
    target = base.objective.kind == "target"
    sizes = {len(np.atleast_1d(v)) for v in overrides.values()}
    if len(sizes) > 1:
        raise ConfigError(f"batch overrides have different lengths {sorted(sizes)}.")
    count = sizes.pop() if sizes else (1 if count is None else int(count))
    n = base.n
    cap_kw, obj_kw = {}, {}
    if target:
        obj_kw = {"target": np.tile(np.asarray(base.objective.target, float), count),
                  "curvature": np.tile(np.asarray(base.objective.curvature, float), count)}
    for key, values in overrides.items():
        if key not in STACKABLE:
            raise ConfigError(f"{key} cannot vary inside a batch; stackable keys: {', '.join(STACKABLE)}.")
        where, field = STACKABLE[key]
        if target and where == "objective":
            raise ConfigError(f"{key} does not apply with objective.kind = 'target' (the target file is the objective); vary the market instead.")
        values = np.asarray(values, float)
        if where in ("cap", "both"):
            cap_kw[field] = values
        if where in ("objective", "both") and not target:
            obj_kw[field] = np.repeat(values, n)
    cap = dataclasses.replace(base.cap, **cap_kw)
    objective = dataclasses.replace(base.objective, **obj_kw)
    batch = BatchProblem(
        vol=np.tile(base.vol, count),
        weights=np.tile(base.weights, count),
        objective=objective,
        cap=cap,
        config=base.config,
        source_files=base.source_files,
        chain=n,
        count=count,
    )
    batch.check_scaling()
    batch.check_convexity()
    return batch
