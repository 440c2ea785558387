"""The solver kernels give the same answers as plain Python and compiled by numba (solvers/_jit.py).

Both engines run the same operations in the same order on float64, so the answers must agree exactly; a
difference would mean the threshold SMALL_N changes results, and results must not depend on the grid size
through the engine.
"""

from __future__ import annotations

import numpy as np
import pytest

from margin_design.solvers import _jit
from margin_design.solvers.certificate import _choose_prefix_sums
from margin_design.solvers.chain import FREE, POOLED, SATURATED, _block_levels_kernel, _block_offsets_kernel, _chain_qp_kernel
from margin_design.solvers.chain_pw import _pwq_kernel


def _instance(rng, n):
    a = rng.uniform(0.2, 5.0, n)
    t = np.cumsum(rng.normal(0, 1, n))
    u = rng.uniform(0.05, 1.5, n - 1)
    u[rng.random(n - 1) < 0.2] = np.inf
    return a, t, u


@pytest.mark.parametrize("seed", range(5))
def test_both_engines_agree_exactly(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 3000))
    a, t, u = _instance(rng, n)
    c = rng.uniform(0, 20, n) * (rng.random(n) < 0.7)
    k = rng.uniform(0, 3, n) * (rng.random(n) < 0.5)
    span = 2.0 * float(t.max() - t.min() + 5.0)
    finite = u[u <= span]
    cases = [
        (_pwq_kernel, (a, t, u, c, k, float(np.median(t)), True, float(t.min()) + 1.0, True, span, 8e-16, float(finite.sum()))),
        (_chain_qp_kernel, (a, t, u, 1.0 / 8.0, span, np.int64(2**62))),
    ]
    codes = rng.choice(np.array([FREE, POOLED, SATURATED], np.int8), n - 1)
    codes[~np.isfinite(u)] = FREE
    s = _block_offsets_kernel(u, codes)
    glo = rng.normal(size=n)
    cases += [
        (_block_offsets_kernel, (u, codes)),
        (_block_levels_kernel, (a, t, s, codes, 1.0 / 8.0)),
        (_choose_prefix_sums, (glo, glo + rng.uniform(0, 1, n) * (rng.random(n) < 0.3), codes, rng.random(n) < 0.01)),
    ]
    for kern, args in cases:
        py = kern.py_func(*args)
        nb = kern.compiled(*args)
        py = py if isinstance(py, tuple) else (py,)
        nb = nb if isinstance(nb, tuple) else (nb,)
        for p_, n_ in zip(py, nb):
            np.testing.assert_array_equal(np.asarray(p_), np.asarray(n_), err_msg=kern.__name__)


def test_the_threshold_picks_the_engine(monkeypatch):
    monkeypatch.setenv("MARGIN_DESIGN_SMALL_N", "10")
    assert _pwq_kernel.for_size(10) is _pwq_kernel.py_func
    assert _pwq_kernel.for_size(11) is _pwq_kernel.compiled
    monkeypatch.delenv("MARGIN_DESIGN_SMALL_N")
    assert _jit.small_n() == _jit.SMALL_N
