"""Benchmark (prints tables; not a test): optimal ADL (leverage water-filling) against the exchanges' queue on a generated
book of 10,000 accounts, and the solve time of the sorting algorithm (:mod:`margin_design.audit.adl`).

Population (one long side, numpy PCG64, seed 0): equity e ~ lognormal, median 1,000 (currency), log-sd 1.5; leverage
L = 1 + lognormal(median 4, log-sd 0.9) capped at 100 (the largest leverage venues allow); position x = L e (notional at
the mark, currency); entry price p0 = exp(N(-0.05, 0.10)) times the mark (the deleveraged side is mostly in profit), so
the queue's BitMEX score PnL% x leverage mixes profit and leverage. R is a share of the total position.

Policies: optimal (water-filling, the expected-loss optimum), queue (BitMEX ranking PnL% x leverage, whole accounts in
order), queue-lev (the same queue ranked by leverage alone, no entry prices).
Shocks: the loss W per unit of long notional over the close-out horizon: normal, Student-t (df 4), and the S&P 500
daily returns 1999-2018 shipped with arch (W = -return), all with the same standard deviation: the S&P 500 sample's
(about 1.2%, an equity-index day) and 4% (a crypto-like day; the S&P 500 returns rescaled).
Expected shortfall EL = sum_i E[(|y_i| W - e_i)^+] (currency), before and after the cut.

Table 2: solve seconds of water_fill (and of the queue) for 10^4 ... 10^6 accounts, best of 5.

Usage: python benchmarks/bench_adl.py [--accounts 10000] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from margin_design.audit.adl import (
    Book,
    leverage,
    normal_shock,
    queue_cut,
    shortfall,
    sp500_shock,
    student_t_shock,
    water_fill,
)

MAX_LEVERAGE = 100.0


def population(n: int, seed: int = 0) -> Book:
    rng = np.random.default_rng(seed)
    e = rng.lognormal(np.log(1000.0), 1.5, n)
    L = np.minimum(1.0 + rng.lognormal(np.log(4.0), 0.9, n), MAX_LEVERAGE)
    p0 = np.exp(rng.normal(-0.05, 0.10, n))
    return Book(tuple(f"a{i}" for i in range(n)), L * e, e, entry_price=p0)


def shocks(sd: float | None):
    sp = sp500_shock(1.0, scale_to=sd)
    sd = sp.scale
    return sd, {"normal": normal_shock(sd), "t4": student_t_shock(sd, 4.0), "sp500": sp}


def comparison(book: Book, shares=(0.01, 0.05, 0.20), sds=(None, 0.04)) -> None:
    lev = leverage(book.size, book.equity)
    print(f"book: {len(book.accounts):,} accounts, total position {book.total:,.0f}, equity {np.sum(book.equity):,.0f}; "
          f"leverage median {np.median(lev):.2f}, 99th pct {np.percentile(lev, 99):.1f}, max {np.max(lev):.1f}")
    no_pnl = Book(book.accounts, book.position, book.equity)
    for sd in sds:
        sd, sh = shocks(sd)
        print(f"\nshock sd {100 * sd:.2f}% (normal, Student-t df 4, S&P 500 empirical scaled to it); EL in currency")
        head = f"{'R/total':>8} {'policy':<10} {'cut':>6} {'max lev left':>13} " + " ".join(f"{'EL ' + k:>13}" for k in sh)
        print(head)
        print("-" * len(head))
        before = {k: float(np.sum(shortfall(book.size, book.equity, s))) for k, s in sh.items()}
        print(f"{'0':>8} {'(before)':<10} {0:>6} {np.max(lev):>13.2f} " + " ".join(f"{before[k]:>13,.1f}" for k in sh))
        for share in shares:
            R = share * book.total
            cuts = {"optimal": water_fill(book.size, book.equity, R).reduction, "queue": queue_cut(book, R),
                    "queue-lev": queue_cut(no_pnl, R)}
            for name, r in cuts.items():
                left = book.size - r
                el = {k: float(np.sum(shortfall(left, book.equity, s))) for k, s in sh.items()}
                print(f"{share:>8.0%} {name:<10} {int(np.sum(r > 0)):>6} {np.max(leverage(left, book.equity)):>13.2f} "
                      + " ".join(f"{el[k]:>13,.1f}" for k in sh))


def timings(sizes=(10_000, 100_000, 1_000_000), repeats: int = 5) -> None:
    print(f"\n{'accounts':>10} {'water_fill s':>13} {'queue s':>10}")
    for n in sizes:
        book = population(n, seed=1)
        R = 0.05 * book.total
        best_w = best_q = np.inf
        for _ in range(repeats):
            t0 = time.perf_counter()
            water_fill(book.size, book.equity, R)
            t1 = time.perf_counter()
            queue_cut(book, R)
            t2 = time.perf_counter()
            best_w, best_q = min(best_w, t1 - t0), min(best_q, t2 - t1)
        print(f"{n:>10,} {best_w:>13.4f} {best_q:>10.4f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--accounts", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-timing", action="store_true")
    a = ap.parse_args()
    comparison(population(a.accounts, a.seed))
    if not a.skip_timing:
        timings()


if __name__ == "__main__":
    main()
