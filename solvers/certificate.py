"""Optimality certificate for the chain problem (41), from the KKT conditions (68)-(72) on the grid.

Notation (see ``../shared/notes/chain-algorithms.md`` section 1): f_i = w_i Psi(r_i, .), g_i in the
subdifferential [f_i'(x_i-), f_i'(x_i+)], d_k = x_{k+1} - x_k, and G_k = sum_{j<=k} g_j. The multiplier of
link k is mu_k = max(G_k, 0) (cap active, d_k = u_k) or nu_k = max(-G_k, 0) (monotonicity active, d_k = 0).
KKT holds iff the g_i can be chosen so that G_{n-1} = 0 (balance), G_k <= 0 on pooled links, G_k >= 0 on
saturated links and G_k = 0 on free links. For kinked objectives the choice of g_i inside the
subdifferential is made by the O(n) interval propagation of the notes; for smooth ones G is the plain
prefix sum.

Convexity then bounds the suboptimality of x: with G_{n-1} = 0,

    F(x) - F* <= eta = sum_k [ nu_k d_k + mu_k (u_k - d_k) ]            (Lagrangian duality gap)

The bound is valid when G_{n-1} = 0, which the block polish enforces to rounding; the balance residual
is reported and checked beside it.

The floor g_1 >= 0 ((3), (34)) is a link from a virtual point fixed at 0 to the first state, with multiplier
lambda >= 0. While the floor is not active, lambda = 0 and the conditions above apply unchanged (the floor
only adds -x_1 <= 0 to feasibility). When it is active (x_1 = 0), the virtual point's derivative is free,
so the prefix sums start from G_virtual = -lambda <= 0 instead of 0: the balance G_{n-1} = 0 then reads
lambda = sum_i g_i >= 0, and eta gains lambda * x_1 (zero on the floor). The certificate reports feasibility, balance |G_{n-1}|, the scaled
sign/complementarity residual and eta / |F|. Link statuses come from the solver's active set, never from thresholds on d.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from margin_design.solvers._jit import kernel

from margin_design.solvers.chain import FREE, POOLED, SATURATED

# Target of every certified answer (issue 2): eta / |F| <= RELATIVE_GAP_TARGET.
RELATIVE_GAP_TARGET = 1e-10
# Complementarity residuals are relative to the running scale sum_{j<=k} |g_j|.
COMPLEMENTARITY_TARGET = 1e-8


@dataclass(frozen=True)
class Certificate:
    """KKT certificate of a schedule. All residuals are non-negative; zero is exact optimality.

    feasibility: max violation of 0 <= d_k <= u_k (margin-ratio units).
    balance: |G_{n-1}| / sum_i |g_i| (relative; 0 when the schedule cannot be shifted to lower cost).
    complementarity: max_k sign violation of G_k for the link's status / sum_{j<=k} |g_j|, including the
        distance of the chosen g_i from their subdifferentials.
    duality_gap: eta (objective units); relative_gap: eta / max(|F|, tiny), the true ratio (with margins
        non-negative every term of F is non-negative, so |F| is the scale of the objective).
    floor_multiplier: lambda of the floor g_1 >= 0 (objective units per unit margin ratio; 0 when the floor
        is not active; summed over the chains of a batch).
    """

    feasibility: float
    balance: float
    complementarity: float
    duality_gap: float
    relative_gap: float
    objective: float
    floor_multiplier: float = 0.0

    @property
    def ok(self) -> bool:
        return bool(
            self.relative_gap <= RELATIVE_GAP_TARGET
            and self.complementarity <= COMPLEMENTARITY_TARGET
            and self.balance <= COMPLEMENTARITY_TARGET
            and self.feasibility <= 1e-12 * max(1.0, abs(self.objective))
        )

    def to_dict(self) -> dict:
        return {k: float(v) for k, v in asdict(self).items()}


@kernel()
def _choose_prefix_sums(glo, ghi, codes, vstart):
    """Interval propagation: pick G_k with increments in [glo_k, ghi_k] meeting the link constraints.

    ``vstart[k]`` marks the first state of a chain whose floor is active: the running set restarts there
    from G_virtual in (-inf, 0] (the virtual fixed point and its pooled link) instead of from 0.
    Returns G (n,) and Gv (n,): the chosen G_virtual at those states (0 elsewhere). Where the constraints
    cannot be met exactly, the nearest point is kept so that the residual measures the violation.
    """
    n = glo.size
    rlo = np.empty(n)
    rhi = np.empty(n)
    lo = 0.0
    hi = 0.0
    inf = np.inf
    for k in range(n):
        if vstart[k]:
            lo = -inf
            hi = 0.0
        lo += glo[k]
        hi += ghi[k]
        if k == n - 1 or codes[k] == 0:
            alo, ahi = 0.0, 0.0
        elif codes[k] == 1:
            alo, ahi = -inf, 0.0
        else:
            alo, ahi = 0.0, inf
        nlo = max(lo, alo)
        nhi = min(hi, ahi)
        if nlo > nhi:
            if lo > ahi:
                nlo = lo
                nhi = lo
            else:
                nlo = hi
                nhi = hi
        rlo[k] = nlo
        rhi[k] = nhi
        lo = nlo
        hi = nhi
    G = np.empty(n)
    Gv = np.zeros(n)
    G[n - 1] = min(max(0.0, rlo[n - 1]), rhi[n - 1])
    for k in range(n - 1, -1, -1):
        if vstart[k]:  # G_virtual = G_k - g_k with g_k in [glo_k, ghi_k] and G_virtual <= 0
            a = G[k] - ghi[k]
            b = min(0.0, G[k] - glo[k])
            if a > b:
                a = min(G[k] - 0.5 * (ghi[k] + glo[k]), 0.0)
                b = a
            Gv[k] = min(max(0.0, a), b)
        if k == 0:
            break
        if vstart[k]:  # the chain before is independent of this one
            G[k - 1] = min(max(0.0, rlo[k - 1]), rhi[k - 1])
            continue
        a = max(rlo[k - 1], G[k] - ghi[k])
        b = min(rhi[k - 1], G[k] - glo[k])
        if a > b:
            a = min(max(G[k] - 0.5 * (ghi[k] + glo[k]), rlo[k - 1]), rhi[k - 1])
            b = a
        G[k - 1] = min(max(0.0, a), b)
    return G, Gv


def residual_scale(x, glo, ghi, curvature=None) -> np.ndarray:
    """Running scale sum_{j<=k} (|g_j| + h_j |x_j|) against which prefix-sum residuals are measured."""
    absg = np.maximum(np.abs(glo), np.abs(ghi))
    if curvature is not None:
        absg = absg + np.abs(np.asarray(curvature, float)) * np.abs(np.asarray(x, float))
    return np.cumsum(absg)


def certify(
    x, u, codes, glo, ghi, objective: float, curvature=None, breaks=None, floor=None, starts=None, lower: float = 0.0
) -> tuple[Certificate, np.ndarray]:
    """Certificate of ``x`` for (41) given link ``codes`` and weighted one-sided derivatives ``glo <= ghi``.

    ``curvature`` (weighted second derivatives, optional) sets the scale of the relative residuals:
    each state contributes |g_i| + h_i |x_i|, the size its derivative would change under a relative
    perturbation of its margin. Without it, near the first-best every g_i is rounding noise and a
    residual relative to sum |g| alone would be meaningless.

    ``breaks`` marks links between independent chains of a stacked batch: they carry no constraint, are
    coded FREE (so G_k = 0 there is each chain's balance) and are left out of the feasibility check.

    ``floor`` (one bool per chain, chains starting at ``starts``; default one chain starting at 0) adds the
    floor x_start >= ``lower`` of every chain, active where True; None means the chain has no floor.

    Returns (certificate, G) where G (n - 1 values, one per link) are the multipliers' prefix sums:
    G_k > 0 is the shadow price of the cap on link k, G_k < 0 that of monotonicity, 0 on free links.
    """
    x = np.asarray(x, float)
    u = np.asarray(u, float)
    codes = np.asarray(codes, np.int8)
    glo = np.asarray(glo, float)
    ghi = np.asarray(ghi, float)
    n = x.size
    vstart = np.zeros(n, np.bool_)
    floor_viol = 0.0
    if floor is not None:
        starts = np.zeros(1, np.int64) if starts is None else np.asarray(starts, np.int64)
        floor = np.broadcast_to(np.asarray(floor, bool), starts.shape)
        vstart[starts[floor]] = True
        floor_viol = float(np.max(np.maximum(lower - x[starts], 0.0)))
    if n == 1:
        if vstart[0]:
            lam = max(0.5 * (glo[0] + ghi[0]), 0.0) if ghi[0] >= 0.0 else 0.0
            bal = 0.0 if ghi[0] >= 0.0 else -ghi[0]
            gap = lam * max(float(x[0]) - lower, 0.0)
        else:
            lam = 0.0
            bal = 0.0 if glo[0] <= 0.0 <= ghi[0] else min(abs(glo[0]), abs(ghi[0]))
            gap = 0.0
        scale = max(abs(glo[0]), abs(ghi[0]), np.finfo(float).tiny)
        rel = gap / max(abs(float(objective)), np.finfo(float).tiny) if gap > 0 else 0.0
        cert = Certificate(floor_viol, bal / scale, 0.0, gap, rel, float(objective), lam)
        return cert, np.zeros(0)
    d = np.diff(x)
    lower_viol = np.maximum(-d, 0.0)
    if breaks is not None:
        lower_viol = np.where(breaks, 0.0, lower_viol)
    feas = float(max(np.max(lower_viol), np.max(np.maximum(d - u, 0.0)), floor_viol))
    if np.array_equal(glo, ghi) and not vstart.any():
        G = np.cumsum(glo)
        Gv = np.zeros(n)
    else:
        G, Gv = _choose_prefix_sums.for_size(n)(glo, ghi, codes, vstart)
    g = np.diff(np.concatenate([[0.0], G]))
    g[vstart] = G[vstart] - Gv[vstart]  # a chain on its floor starts from G_virtual, not from the chain before
    sub_violation = np.maximum(np.maximum(glo - g, g - ghi), 0.0)
    scale = residual_scale(x, glo, ghi, curvature)
    tiny = np.finfo(float).tiny
    Gk = G[:-1]
    viol = np.where(
        codes == FREE,
        np.abs(Gk),
        np.where(codes == POOLED, np.maximum(Gk, 0.0), np.where(codes == SATURATED, np.maximum(-Gk, 0.0), np.inf)),
    )
    comp = float(np.max(np.concatenate([viol / np.maximum(scale[:-1], tiny), sub_violation / np.maximum(scale, tiny)])))
    balance = float(abs(G[-1]) / max(scale[-1], tiny))
    nu = np.maximum(-Gk, 0.0)
    # On uncapped links (u = inf) a positive G_k cannot be a cap multiplier: it is a sign violation, counted
    # in the complementarity residual above (rounding noise passes its tolerance), not an infinite gap.
    capped = np.isfinite(u)
    mu = np.where(capped, np.maximum(Gk, 0.0), 0.0)
    if breaks is not None:
        nu = np.where(breaks, 0.0, nu)  # G_k = 0 is required there; its residual is in the complementarity
    lam = np.maximum(-Gv, 0.0)
    eta = float(
        np.sum(nu * np.maximum(d, 0.0))
        + np.sum(mu * np.maximum(np.where(capped, u - d, 0.0), 0.0))
        + np.sum(lam * np.maximum(x - lower, 0.0))
    )
    rel = eta / max(abs(float(objective)), tiny) if eta > 0 else 0.0
    return Certificate(feas, balance, comp, eta, rel, float(objective), float(np.sum(lam))), Gk


def release_degenerate(codes, G, scale, tol: float = COMPLEMENTARITY_TARGET) -> np.ndarray:
    """Label active links whose multiplier vanishes (|G_k| <= tol * scale_k) as FREE.

    Such a link meets its bound without being held there (for example two states both at their own
    first-best, pinned at the kink M_- of a linear cost): it is part of a tracking stretch, not a pooled
    or saturated one. Both labellings satisfy KKT; this one makes the segments report only binding
    constraints, so that every solver path labels the same schedule the same way.
    """
    codes = np.asarray(codes, np.int8).copy()
    idle = (codes != FREE) & (np.abs(G) <= tol * np.asarray(scale)[: codes.size])
    codes[idle] = FREE
    return codes
