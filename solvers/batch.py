"""Solve a stacked batch of configurations (:class:`~margin_design.design.batch.BatchProblem`) in one Newton loop.

Every Newton step runs the exact chain programme on each configuration's chain; JAX evaluates the objective
for all configurations at once. After the joint polish, each configuration gets its own certificate,
objective, segments and (optionally) sensitivities from its slice, so a batch answer is checked exactly
like a single solve.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np

from margin_design.design import objective as obj
from margin_design.solvers.certificate import Certificate, certify, release_degenerate, residual_scale
from margin_design.design.problem import MARGIN_FLOOR
from margin_design.solvers.exact import dp_step
from margin_design.solvers.newton import certified_solution
from margin_design.solvers.polish import floor_status
from margin_design.solvers.segments import segments_from_codes
from margin_design.solvers.sensitivity import PARAMETERS, sensitivity_arrays


@dataclass(frozen=True)
class ChainAnswer:
    """One configuration's certified answer inside a batch (margin ratios; objective per unit notional)."""

    schedule: np.ndarray
    first_best: np.ndarray
    codes: np.ndarray
    segments: list
    objective: float
    first_best_objective: float
    terms: dict
    certificate: Certificate
    sensitivities: dict  # parameter -> d price / d parameter (and dJ), empty if not asked

    @property
    def price_of_manipulation_proofness(self) -> float:
        return self.objective - self.first_best_objective


def solve_batch(batch, *, sensitivities: tuple[str, ...] = ()) -> tuple[list[ChainAnswer], int]:
    """Solve every configuration of ``batch``; returns (answers in order, Newton iterations of the joint loop)."""
    x, codes, _, _, iters = certified_solution(batch, dp_step(batch), method="exact")
    floors = floor_status(batch, x)
    g, h = batch.smooth_derivatives(x)
    glo, ghi = batch.gradient_bounds(x, g)
    r, w = jnp.asarray(batch.r), batch.weights
    terms = {k: w * np.asarray(v) for k, v in obj.psi_terms(batch.static, batch.params, r, jnp.asarray(x)).items()}
    fb = batch.first_best
    fb_terms = {k: w * np.asarray(v) for k, v in obj.psi_terms(batch.static, batch.params, r, jnp.asarray(fb)).items()}
    starts = batch.starts
    sums = {k: np.add.reduceat(v, starts) for k, v in terms.items()}
    fb_sums = {k: np.add.reduceat(v, starts) for k, v in fb_terms.items()}
    sens = {}
    if sensitivities:
        for name, (_, dj, djfb) in sensitivity_arrays(batch, x, codes, tuple(sensitivities)).items():
            sens[name] = (np.add.reduceat(dj, starts), np.add.reduceat(djfb, starts))
    K = np.broadcast_to(np.asarray(batch.cap.slope_vol, float), (batch.count,))
    answers = []
    n = batch.chain
    for c, a in enumerate(starts):
        sl = slice(a, a + n)
        ls = slice(a, a + n - 1)
        value = float(sum(v[c] for v in sums.values()))
        chain_codes = codes[ls]
        fl = bool(floors[c])
        cert, G = certify(x[sl], batch.u[ls], chain_codes, glo[sl], ghi[sl], value, curvature=h[sl], floor=fl, lower=MARGIN_FLOOR)
        released = release_degenerate(chain_codes, G, residual_scale(x[sl], glo[sl], ghi[sl], h[sl]))
        if not np.array_equal(released, chain_codes):
            cert2, _ = certify(x[sl], batch.u[ls], released, glo[sl], ghi[sl], value, curvature=h[sl], floor=fl, lower=MARGIN_FLOOR)
            if cert2.ok or not cert.ok:
                chain_codes, cert = released, cert2
        segs = segments_from_codes(chain_codes, batch.vol[sl], x[sl], fb[sl], float(K[c]), glo[sl], ghi[sl], w[sl], floor=fl)
        answers.append(
            ChainAnswer(
                schedule=x[sl].copy(),
                first_best=fb[sl].copy(),
                codes=chain_codes.copy(),
                segments=segs,
                objective=value,
                first_best_objective=float(sum(v[c] for v in fb_sums.values())),
                terms={k: float(v[c]) for k, v in sums.items()},
                certificate=cert,
                sensitivities={k: {"objective": float(dj[c]), "price": float(dj[c] - djfb[c])} for k, (dj, djfb) in sens.items()},
            )
        )
    return answers, iters


__all__ = ["PARAMETERS", "ChainAnswer", "solve_batch"]
