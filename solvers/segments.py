"""The paper's three kinds of stretch, read off the active set: tracking, saturated (42), pooling (43).

A segment is a maximal run of links with the same status: links start..end-1, i.e. points start..end.
* ``tracking`` (free links, 0 < d < u): the rule follows the first-best; reported with the largest
  distance to the first-best over the run's points that form one-point blocks (where stationarity
  gives dPsi/dM = 0 exactly, i.e. M = M^fb).
* ``saturated`` (d = u): M = a + K sigma = a + K sqrt(r) on the run, (42), with K the cap slope in vol
  units; reported with the intercept a.
* ``pooling`` (d = 0): M = k on the run; reported with the level k and the residual of (43),
  sum_j w_j dPsi/dM(r_j, k) over the run's points, relative to sum_j w_j |dPsi/dM|. The residual is zero
  when the run is a whole block (bounded by free links or the ends of the grid, ``whole_block``); a
  pooled run that adjoins a saturated run shares its block, and its residual is the multiplier passed on.
* ``floor``: a pooled run that starts at the first state with the floor g_1 >= 0 active, M = 0 on the run;
  reported with the floor's multiplier lambda = sum_j w_j dPsi/dM(r_j, 0) over the run (>= 0: the cost
  would fall if margins could go negative there, which (3) and (34) rule out).
"""

from __future__ import annotations

import numpy as np

from margin_design.solvers.chain import FREE, POOLED, SATURATED

KIND_NAMES = {FREE: "tracking", SATURATED: "saturated", POOLED: "pooling"}
#: Every kind of stretch, in the order figures and tables list them.
SEGMENT_KINDS = ("tracking", "saturated", "pooling", "floor")


def segments_from_codes(codes, vol, x, first_best, slope_vol, glo, ghi, weights=None, floor: bool = False) -> list[dict]:
    """List of segment dicts (JSON-ready) in grid order.

    States of zero probability mass (``weights == 0``) do not enter the objective, so any feasible margin
    is optimal there; they are left out of the tracking distance. ``floor``: the first margin is on the
    floor g_1 >= 0 (a leading pooled run is then a ``floor`` segment).
    """
    codes = np.asarray(codes)
    n = codes.size + 1
    if codes.size == 0:
        return []
    change = np.flatnonzero(np.diff(codes) != 0) + 1
    run_starts = np.concatenate([[0], change])
    run_ends = np.concatenate([change, [codes.size]])  # exclusive link index = last point index
    free_left = np.concatenate([[not floor], codes == FREE])   # link to the left of point j is free (or none)
    free_right = np.concatenate([codes == FREE, [True]])
    singleton = free_left & free_right
    if weights is not None:
        singleton &= np.asarray(weights) > 0
    out = []
    for a, b in zip(run_starts, run_ends):
        kind = KIND_NAMES[int(codes[a])]
        seg = {
            "kind": kind,
            "start": int(a),
            "end": int(b),
            "vol_start": float(vol[a]),
            "vol_end": float(vol[b]),
            "level": None,
            "intercept": None,
        }
        pts = slice(a, b + 1)
        if kind == "pooling" and floor and a == 0:
            seg["kind"] = "floor"
            seg["level"] = float(x[0])
            seg["floor_multiplier"] = float(max(np.sum(glo[pts]), 0.0))
        elif kind == "saturated":
            intercepts = x[pts] - slope_vol * vol[pts]
            seg["intercept"] = float(intercepts[0])
            seg["intercept_spread"] = float(np.max(intercepts) - np.min(intercepts))
        elif kind == "pooling":
            seg["level"] = float(x[a])
            lo, hi = float(np.sum(glo[pts])), float(np.sum(ghi[pts]))
            resid = 0.0 if lo <= 0.0 <= hi else min(abs(lo), abs(hi))
            scale = float(np.sum(np.maximum(np.abs(glo[pts]), np.abs(ghi[pts])))) or 1.0
            seg["residual_43"] = resid / scale
            seg["whole_block"] = bool((a == 0 or codes[a - 1] == FREE) and (b == n - 1 or codes[b] == FREE))
        else:
            idx = np.arange(a, b + 1)[singleton[pts]]
            seg["max_gap_to_first_best"] = float(np.max(np.abs(x[idx] - first_best[idx]))) if idx.size else 0.0
        out.append(seg)
    return out
