"""The acceptance table of ``[cap] updates = T`` (issue 12, section 3): for the benchmark and liquidation markets and
T = 1..4, the largest scale s of the cap that the T-update stress test cannot beat, the change in the price of
manipulation-proofness J(g*_s) - J(M_fb), the links that change regime against T = 1, the stress test's best profit
before (scale 1) and after (scale s), and the run time.

    .venv/bin/python benchmarks/bench_updates.py [--points N] [--capacity Q]

T = 1 is the paper's two-period cap (not stress-tested, s = 1 by definition); its row also shows what the
T-update test finds at scale 1 with T = 1 (the two-period buy-first trip at the cap, a third-order profit).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=None, help="grid points (default: the example's)")
    ap.add_argument("--capacity", type=float, default=None, help="largest leg |a_u| in ADV units (default: stress.CAPACITY)")
    ap.add_argument("--examples", nargs="*", default=["benchmark.toml", "liquidation.toml"])
    ap.add_argument("--max-T", type=int, default=4)
    ap.add_argument("--resolution", type=float, default=None, help="width of the scale's bisection bracket (default: updates.SCALE_RESOLUTION)")
    args = ap.parse_args(argv)

    from margin_design.audit.stress import CAPACITY, STRESS_TOL
    from margin_design.audit.updates import SCALE_RESOLUTION, cap_scale, solve_with_updates
    from margin_design.design import load_problem
    from margin_design.solvers import solve

    q = args.capacity or CAPACITY
    res = args.resolution or SCALE_RESOLUTION
    print(f"T-update cap: envelope states of the grid, open-loop trips over 1..T updates, legs |a_u| <= {q:g} ADV, "
          f"tolerance {STRESS_TOL:g} (exact expectations), bisection to {res:g}")
    header = ("market", "states", "T", "scale s", "price J(g*)-J(fb)", "change vs T=1", "links changed", "pooled links",
              "best profit s=1", "best profit at s", "seconds")
    print(" | ".join(header))
    for name in args.examples:
        base = load_problem(ROOT / "examples" / name)
        if args.points:
            from margin_design.design.config import problem_from_dict
            import copy

            cfg = copy.deepcopy(base.config)
            cfg["grid"]["points"] = args.points
            base = problem_from_dict(cfg, ROOT / "examples", validated=True)
        ref = solve(base)
        ref_kinds = ref.link_kinds
        ref_price = ref.price_of_manipulation_proofness
        for T in range(1, args.max_T + 1):
            started = time.perf_counter()
            problem = dataclasses.replace(base, cap=dataclasses.replace(base.cap, updates=T))
            if T == 1:
                sched = ref
                two = cap_scale(problem, 1, capacity=q, resolution=res)   # what stress-testing the two-period trips would give
                before, after, s = two.stress["best_profit_scale_1"], None, 1.0
                note = f"(stress-testing T = 1 itself would give s = {two.stress['scale']:.4f}, best profit there {two.stress['best_profit']:+.3e})"
            else:
                sched = solve_with_updates(problem, capacity=q, resolution=res)
                st = sched.stress
                before, after, s = st["best_profit_scale_1"], st["best_profit"], st["scale"]
            kinds = sched.link_kinds
            changed = sum(1 for a, b in zip(ref_kinds, kinds) if a != b)
            pooled = sum(1 for k in kinds if k == "pooling")
            price = sched.price_of_manipulation_proofness
            cells = (name, str(base.n), str(T), f"{s:.4f}", f"{price:.6g}", f"{price - ref_price:+.4g}", str(changed), str(pooled),
                     "n/a" if before is None else f"{before:+.3e}", "n/a (paper's cap)" if after is None else f"{after:+.3e}",
                     f"{time.perf_counter() - started:.1f}")
            print(" | ".join(cells) + (" " + note if T == 1 else ""), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
