"""Risk grid and state weights f(r | z) as probability masses.

Units: ``vol`` is the daily volatility sigma = sqrt(r) in decimals (0.01 is 1% a day); ``r`` is the
variance of daily returns.

Quadrature rule (used for every density): the grid points are the nodes; node i owns the cell
between the midpoints to its neighbours, measured in the grid's own spacing variable (sigma for
``spacing = "vol"``, r for ``spacing = "variance"``), and the end cells stop at the grid's ends. The
weight w_i is the probability mass of that cell under the density, renormalised so that the weights
sum to 1 (the density is truncated to [vol_min, vol_max]). This is the midpoint-cell rule: sum_i w_i
phi(r_i) approximates the integral (33) with error O(h^2) for smooth phi.

* ``uniform``: f uniform in r on [r_min, r_max] (the paper's (33) integrates over r).
* ``lognormal``: sigma lognormal with median ``median_vol`` and log-sd ``dispersion``; cell masses
  from the lognormal CDF of sigma.
* ``table``: a CSV of (vol, weight) probability masses. Each mass is assigned to the cell that
  contains its vol (a histogram onto the grid's cells); a table written at the grid points maps one
  to one. Masses outside [vol_min, vol_max] are an error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

from margin_design.errors import ConfigError

SPACINGS = ("vol", "variance")
DENSITIES = ("uniform", "lognormal", "table")


@dataclass(frozen=True)
class RiskGrid:
    """Grid of risk states: ``vol`` (daily volatility, decimal) and ``r = vol**2`` (daily variance)."""

    vol: np.ndarray
    spacing: str

    @property
    def r(self) -> np.ndarray:
        return self.vol**2

    @property
    def n(self) -> int:
        return int(self.vol.size)

    def cell_edges(self) -> np.ndarray:
        """Cell edges in vol units (n + 1 values): midpoints in the spacing variable, ends at the grid ends."""
        x = self.vol if self.spacing == "vol" else self.vol**2
        mid = 0.5 * (x[1:] + x[:-1])
        edges = np.concatenate([[x[0]], mid, [x[-1]]])
        return edges if self.spacing == "vol" else np.sqrt(edges)


def make_grid(vol_min: float, vol_max: float, points: int, spacing: str = "vol") -> RiskGrid:
    """``points`` states from ``vol_min`` to ``vol_max`` (daily vol, decimals), uniform in sigma or in r."""
    if spacing == "vol":
        vol = np.linspace(vol_min, vol_max, points)
    elif spacing == "variance":
        vol = np.sqrt(np.linspace(vol_min**2, vol_max**2, points))
    else:  # validated in config; kept for direct library use
        raise ConfigError(f"grid.spacing = {spacing!r} is not one of {', '.join(SPACINGS)}.")
    vol[0], vol[-1] = vol_min, vol_max
    if np.any(np.diff(vol) <= 0):
        raise ConfigError(
            f"grid.points = {points} states between grid.vol_min = {float(vol_min)!r} and grid.vol_max = {float(vol_max)!r} "
            "are closer together than float64 can tell apart; use fewer points or a wider range."
        )
    return RiskGrid(vol=vol, spacing=spacing)


def state_weights(
    grid: RiskGrid,
    density: str,
    *,
    median_vol: float | None = None,
    dispersion: float | None = None,
    table_vol: np.ndarray | None = None,
    table_weight: np.ndarray | None = None,
) -> np.ndarray:
    """Probability masses w_i (summing to 1) of the grid's cells under ``density`` (see module docstring)."""
    edges = grid.cell_edges()
    if density == "uniform":
        r_edges = edges**2
        mass = np.diff(r_edges)
    elif density == "lognormal":
        z = (np.log(edges) - np.log(median_vol)) / dispersion
        mass = np.diff(ndtr(z))
    elif density == "table":
        tv = np.asarray(table_vol, dtype=float)
        tw = np.asarray(table_weight, dtype=float)
        tol = 1e-12 * grid.vol[-1]
        outside = (tv < grid.vol[0] - tol) | (tv > grid.vol[-1] + tol)
        if outside.any():
            raise ConfigError(
                f"states.file has vol = {float(tv[outside][0])!r} outside the grid "
                f"[{float(grid.vol[0])!r}, {float(grid.vol[-1])!r}] (grid.vol_min, grid.vol_max)."
            )
        # cell index: the cell [edges[i], edges[i+1]) containing each vol; the last edge belongs to the last cell
        idx = np.clip(np.searchsorted(edges, tv, side="right") - 1, 0, grid.n - 1)
        # a table written exactly at grid points must land on those points despite rounding
        near = np.abs(grid.vol[idx] - tv) > np.abs(grid.vol[np.minimum(idx + 1, grid.n - 1)] - tv)
        idx = np.where(near & (np.abs(grid.vol[np.minimum(idx + 1, grid.n - 1)] - tv) <= tol), idx + 1, idx)
        mass = np.bincount(idx, weights=tw, minlength=grid.n)
    else:
        raise ConfigError(f"states.density = {density!r} is not one of {', '.join(DENSITIES)}.")
    total = mass.sum()
    if not np.isfinite(total) or total <= 0:
        where = f"the grid [{float(grid.vol[0])!r}, {float(grid.vol[-1])!r}] (grid.vol_min, grid.vol_max)"
        if density == "lognormal":
            raise ConfigError(
                f"states.median_vol = {float(median_vol)!r} with states.dispersion = {float(dispersion)!r} puts no probability "
                f"mass on {where}; centre the lognormal inside the grid or widen the grid."
            )
        raise ConfigError(f"states.density = {density!r} puts no probability mass on {where}.")
    return mass / total
