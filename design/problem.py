"""The discretised design problem (41): states, weights, objective and cap increments, as immutable data.

    minimise  J(g) = sum_i w_i Psi(r_i, g_i)   subject to  g_1 >= 0,  0 <= g_{i+1} - g_i <= u_i.

Margins are non-negative ((3) and (34) require M >= 0); for a monotone rule that is the single
constraint g_1 >= 0 on the first state, the floor (MARGIN_FLOOR).

Units: ``r`` daily variance, ``vol`` daily volatility, margins as margin ratios, ``w`` probability masses.
This module also holds the pointwise first-best (34) and the convexity check; it imports no solver.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property

import jax.numpy as jnp
import numpy as np
from scipy.special import ndtri

from margin_design.design import objective as obj
from margin_design.design.cap import CapSpec, cap_increments
from margin_design.design.roots import monotone_roots
from margin_design.errors import ConfigError, NonConvexError

# A second derivative below -CONVEXITY_TOL * (typical curvature) on the check grid is non-convex.
CONVEXITY_TOL = 1e-9
#: Largest accepted ratio of the cost forms' curvature jump Q at M_- (and kink K, per unit of margin) to the
#: coverage cost's typical curvature: derivatives near M_- carry rounding of order eps Q |M|, which enters the
#: certificate's duality gap. Measured on the issue-9 configuration (200 and 2,000 states): a ratio of 3e7
#: certifies at relative gap 3e-11, 1e8 does not (4e-10 > 1e-10); the bound keeps a margin below that.
SCALE_RATIO_MAX = 1e7
#: Margins this many units in the last place from the kink M_- of a linear cost form count as on it.
KINK_ULPS = 4
#: The floor of (3) and (34): margins are non-negative (margin ratio).
MARGIN_FLOOR = 0.0


@dataclass(frozen=True, eq=False)
class Problem:
    """One design problem (41): volatility states with their probabilities, the cost of a margin in each state,
    and the slope cap. Immutable inputs only; derived quantities (variances, first-best margins, cap increments)
    are cached properties. Build it with :func:`~margin_design.design.load_problem` and solve it with
    :func:`~margin_design.solvers.solve`."""

    vol: np.ndarray = field(repr=False)       # daily vol of each state (decimal)
    weights: np.ndarray = field(repr=False)   # probability masses w_i, sum 1
    objective: obj.CostSpec | obj.TargetSpec
    cap: CapSpec
    config: dict = field(default_factory=dict, repr=False)          # the validated configuration (for reports)
    source_files: dict = field(default_factory=dict, repr=False)    # {role: (path, sha256)} of input files

    # ----------------------------------------------------------------- basic data
    @property
    def r(self) -> np.ndarray:
        return self.vol**2

    @property
    def n(self) -> int:
        return int(self.vol.size)

    @cached_property
    def u(self) -> np.ndarray:
        """Cap increments u_i (n - 1 values; inf where uncapped)."""
        return cap_increments(self.cap, self.vol)

    @cached_property
    def static(self) -> tuple:
        return self.objective.static

    @cached_property
    def params(self) -> dict:
        return self.objective.params()

    @cached_property
    def _jr(self):
        return jnp.asarray(self.r)

    @cached_property
    def _jw(self):
        return jnp.asarray(self.weights)

    @cached_property
    def kink(self) -> tuple[np.ndarray, np.ndarray]:
        """(K, M_-) per state: Psi = Psi_smooth + K (M - M_-)_+ (K = 0 where no linear cost form applies)."""
        K = np.broadcast_to(np.asarray(obj.kink_weight(self.static, self.params), float), (self.n,))
        m0 = np.broadcast_to(np.asarray(obj.kink_location(self.static, self.params), float), (self.n,))
        return K, m0

    @property
    def has_kink(self) -> bool:
        return bool(np.any(self.kink[0] > 0))

    @cached_property
    def curvature_jump(self) -> np.ndarray:
        """Q per state: Psi = Psi_rest + Q/2 (M - M_-)_+^2 + K (M - M_-)_+ (0 where no quadratic cost form applies)."""
        return np.broadcast_to(np.asarray(obj.curvature_jump(self.static, self.params), float), (self.n,))

    @property
    def breaks(self) -> np.ndarray | None:
        """Links that separate independent chains (a stacked batch); None for a single chain."""
        return None

    @property
    def starts(self) -> np.ndarray:
        """Index of the first state of each chain (one chain: [0]); the floor g >= 0 applies there."""
        return np.zeros(1, np.int64)

    # ----------------------------------------------------------------- objective in numpy terms
    def value(self, x) -> float:
        """J(x) = sum_i w_i Psi(r_i, x_i)."""
        return float(obj.weighted_value(self.static, self.params, self._jr, self._jw, jnp.asarray(x)))

    def terms(self, x) -> dict:
        """sum_i w_i * term_i(x_i) for each term of Psi."""
        t = obj.weighted_terms(self.static, self.params, self._jr, self._jw, jnp.asarray(x))
        return {k: float(v) for k, v in t.items()}

    def value_and_derivatives(self, x) -> tuple[float, np.ndarray, np.ndarray]:
        """(J(x), w_i dPsi_smooth/dM, w_i d2Psi_smooth/dM2) from one fused JAX evaluation."""
        v, d1, d2 = obj.value_and_derivatives(self.static, self.params, self._jr, self._jw, jnp.asarray(x))
        return float(v), self.weights * np.asarray(d1), self.weights * np.asarray(d2)

    def model_derivatives(self, x) -> tuple[float, np.ndarray, np.ndarray]:
        """(J(x), w_i dPsi_rest/dM, w_i d2Psi_rest/dM2): the Newton model's smooth part, from one JAX call."""
        v, d1, d2 = obj.model_derivatives(self.static, self.params, self._jr, self._jw, jnp.asarray(x))
        return float(v), self.weights * np.asarray(d1), self.weights * np.asarray(d2)

    def smooth_derivatives(self, x) -> tuple[np.ndarray, np.ndarray]:
        """(w_i dPsi_smooth/dM, w_i d2Psi_smooth/dM2) at x: one fused JAX evaluation."""
        d1, d2 = self._unweighted_smooth(x)
        return self.weights * d1, self.weights * d2

    def _unweighted_smooth(self, x) -> tuple[np.ndarray, np.ndarray]:
        d1, d2 = obj.smooth_derivatives(self.static, self.params, self._jr, jnp.asarray(x))
        return np.asarray(d1), np.asarray(d2)

    def _kink_jumps(self, x) -> tuple[np.ndarray, np.ndarray]:
        """(K 1{x > M_-}, K 1{x >= M_-}): the kinked part's left and right derivatives per state.

        A margin within KINK_ULPS units in the last place of M_- is on the kink: a block held there is placed as
        level + offset, and that sum rounds to a neighbour of M_- as often as to M_- itself.
        """
        K, m0 = self.kink
        x = np.asarray(x, float)
        if not self.has_kink:
            z = np.zeros_like(x)
            return z, z
        on = self.on_kink(x)
        return K * ((x > m0) & ~on), K * ((x > m0) | on)

    def on_kink(self, x) -> np.ndarray:
        """Per state: is the margin on the kink M_- of a linear cost form (within KINK_ULPS ulps)?"""
        K, m0 = self.kink
        x = np.asarray(x, float)
        return (K > 0) & (np.abs(x - m0) <= KINK_ULPS * np.spacing(np.maximum(np.abs(m0), np.abs(x))))

    def gradient_bounds(self, x, smooth: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(w_i dPsi/dM from the left, from the right) at x: the subdifferential of each f_i = w_i Psi_i.

        ``smooth`` may pass the weighted smooth derivative already computed at x.
        """
        g = self.smooth_derivatives(x)[0] if smooth is None else smooth
        jl, jr = self._kink_jumps(x)
        return g + self.weights * jl, g + self.weights * jr

    def state_derivatives(self, x) -> tuple[np.ndarray, np.ndarray]:
        """(dPsi/dM from the left, from the right) per state, unweighted."""
        d1, _ = self._unweighted_smooth(x)
        jl, jr = self._kink_jumps(x)
        return d1 + jl, d1 + jr

    # ----------------------------------------------------------------- first best (34)
    @cached_property
    def first_best(self) -> np.ndarray:
        """M^fb(r) = argmin_{M >= 0} Psi(r, M) per state (34); the smallest minimiser where Psi is flat.

        Psi is convex, so M^fb solves 0 in [dPsi/dM(M-), dPsi/dM(M+)] with M >= 0, which
        :func:`~margin_design.design.roots.monotone_roots` solves per state by safeguarded Newton from the
        normal quantile guess sqrt(h r) z_{1 - carry}. A state whose derivative never turns positive has
        an unbounded first-best, which is a configuration error.
        """
        if self.objective.kind == "target":
            return np.maximum(np.asarray(self.objective.target, float), 0.0)
        s = np.sqrt(float(self.objective.shock.horizon_days) * self.r)
        carry = np.asarray(self.objective.carry, float)
        guess = s * np.where((carry > 0.0) & (carry < 0.5), ndtri(1.0 - np.clip(carry, 1e-300, 0.5)), 2.0)

        def evaluate(m):
            d1, d2 = self._unweighted_smooth(m)
            jl, jr = self._kink_jumps(m)
            return d1 + jl, d1 + jr, d2

        K, m0 = self.kink
        snap = np.where(K > 0, m0, np.nan)
        m, ok = monotone_roots(evaluate, np.maximum(guess, 0.0), lower=0.0, step0=np.maximum(s, 1e-12), snap=snap)
        far = m > 1e6 * np.maximum(s, 1e-12) + np.maximum(m0, 0.0)
        bad = ~ok | far | ~np.isfinite(m)
        if bad.any():
            i = int(np.argmax(bad))
            raise ConfigError(
                f"objective.carry = {float(np.broadcast_to(carry, (self.n,))[i])!r} with these cost weights leaves the first-best margin unbounded "
                "(no marginal cost ever outweighs coverage); use carry > 0 or a liquidation or participation cost."
            )
        return m

    # ----------------------------------------------------------------- scaling
    def check_scaling(self) -> None:
        """Raise ConfigError if the cost forms at M_- are too steep, against coverage, for float64 to certify.

        The reference is the coverage cost's curvature d2Psi_rest/dM2 at the normal-quantile guess of the
        first-best, weighted-median over the states. Q (quadratic forms) and K (linear forms, per unit of the
        guess margin) may be at most SCALE_RATIO_MAX times it; the message names the key that dominates.
        """
        if self.objective.kind != "cost":
            return
        o = self.objective
        Q = float(np.max(self.curvature_jump))
        K = float(np.max(self.kink[0]))
        if Q == 0.0 and K == 0.0:
            return
        s = np.sqrt(float(o.shock.horizon_days) * self.r)
        guess = np.maximum(s * 2.326, 1e-12)
        _, d2 = self._unweighted_rest(guess)
        w = self.weights
        order = np.argsort(d2)
        cum = np.cumsum(w[order])
        h_ref = float(d2[order][np.searchsorted(cum, 0.5 * cum[-1])])
        scale = max(Q, K / float(np.median(guess)))
        if not (h_ref > 0 and np.isfinite(scale)) or scale > SCALE_RATIO_MAX * h_ref:
            parts = {
                "liquidation_weight": o.liquidation_weight * (o.c_eff**2 if o.liquidation_cost == "quadratic" else o.c_eff / float(np.median(guess))),
                "participation_weight": o.participation_weight
                * (o.participation_beta**2 if o.participation_cost == "quadratic" else o.participation_beta / float(np.median(guess))),
            }
            key = max(parts, key=lambda k: float(np.max(parts[k])))
            value = float(np.max(getattr(o, key)))
            other = (f" with market.c_eff = {float(np.max(o.c_eff)):g}" if key == "liquidation_weight"
                     else f" with objective.participation_beta = {float(np.max(o.participation_beta)):g}")
            ratio = scale / h_ref if h_ref > 0 else float("inf")
            raise ConfigError(
                f"objective.{key} = {value:g}{other} makes the cost at prev_margin {ratio:.1e} times steeper than the coverage "
                f"cost (at most {SCALE_RATIO_MAX:.0e} can be certified in float64); lower it (here objective.{key} "
                f"<= {value * SCALE_RATIO_MAX / ratio:.3g}) or check its units."
            )

    def _unweighted_rest(self, x) -> tuple[np.ndarray, np.ndarray]:
        _, d1, d2 = obj.model_derivatives(self.static, self.params, self._jr, self._jw, jnp.asarray(x))
        return np.asarray(d1), np.asarray(d2)

    # ----------------------------------------------------------------- convexity
    def check_convexity(self, points: int = 12) -> None:
        """Raise NonConvexError unless d2Psi/dM2 >= 0 on the grid of states x a range of margins.

        The smooth part's second derivative comes from JAX; kinks from linear forms are convex by
        construction (K >= 0 is enforced by validation, and re-checked here).
        """
        if self.objective.kind == "target":
            h = np.asarray(self.objective.curvature, float)
            if np.any(h < 0):
                i = int(np.argmax(h < 0))
                raise NonConvexError(
                    f"objective.file has curvature h = {h[i]!r} < 0 at vol = {self.vol[i]!r}: the objective is not convex in M."
                )
            return
        K, m0 = self.kink
        if np.any(K < 0):
            raise NonConvexError(f"the kink weight of the linear cost forms is {float(K.min())!r} < 0: the objective is not convex in M.")
        top = float(np.max(self.first_best)) * 2.0 + float(np.max(m0)) + 1e-3
        grid_m = np.linspace(0.0, top, points)
        for m in grid_m:
            _, d2 = obj.smooth_derivatives(self.static, self.params, self._jr, jnp.full(self.n, m))
            d2 = np.asarray(d2)
            scale = 1.0 + float(np.max(np.abs(d2)))
            if np.any(d2 < -CONVEXITY_TOL * scale):
                i = int(np.argmin(d2))
                raise NonConvexError(
                    f"d2Psi/dM2 = {d2[i]:.3g} < 0 at vol = {float(self.vol[i])!r}, M = {m:.4g}: the objective is not convex in M."
                )

    # ----------------------------------------------------------------- identity
    def fingerprint(self) -> str:
        """SHA-256 of the numeric inputs (grid, weights, objective parameters, cap): identical problems, identical hash."""
        h = hashlib.sha256()
        for a in (self.vol, self.weights, self.u):
            h.update(np.ascontiguousarray(a, dtype=np.float64).tobytes())
        h.update(repr(self.static).encode())
        h.update(repr(self.cap).encode())
        if self.cap.scale != 1.0 or self.cap.updates != 1:   # [cap] updates: the scaled cap is another problem
            h.update(f"scale={self.cap.scale!r} updates={self.cap.updates!r}".encode())
        for leaf in _leaves(self.params):
            h.update(np.ascontiguousarray(np.asarray(leaf, dtype=np.float64)).tobytes())
        return h.hexdigest()


def _leaves(tree):
    if isinstance(tree, dict):
        for k in sorted(tree):
            yield from _leaves(tree[k])
    else:
        yield tree
