"""Array namespace of the closed-form calibration formulas: NumPy for plain numbers, jax.numpy otherwise.

The cap formulas (:mod:`.cap`) are elementary float64 arithmetic (+, -, *, /, squares, sqrt). A value is
computed with NumPy when it is a plain number (a Python or NumPy scalar, or an array of one element), so
``margin-design calibrate cap`` and ``calibrate threshold``, which pass numbers, never import JAX and start
in a fraction of a second. JAX arrays and tracers (inside ``jax.grad``, ``jax.vmap``, ``jax.jit``) and
arrays of more than one element go to jax.numpy (float64, set by :func:`margin_design._runtime.configure_jax`),
as before. The split keeps every result bit for bit: on scalars each of these operations is correctly
rounded in both libraries, but XLA divides an array by a scalar through its reciprocal (``x * (1/c)``),
which differs from NumPy's ``x / c`` in the last bit for many elements (30-70% of random ones); so arrays stay
where they were. Squares are written ``x * x``, which is what ``jax.numpy``'s ``x ** 2`` computes
(``lax.integer_pow``), whereas NumPy's scalar ``**`` may go through ``pow``.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

__all__ = ["xp", "f64", "sqrt", "square"]


def _is_jax(x: Any, jax) -> bool:
    if isinstance(x, jax.Array):  # concrete JAX arrays and tracers
        return True
    if isinstance(x, (list, tuple)):
        return any(_is_jax(v, jax) for v in x)
    return False


def xp(x: Any):
    """``numpy`` for a plain number (at most one element, not a JAX value), else ``jax.numpy`` (imported then)."""
    jax = sys.modules.get("jax")
    if (jax is not None and _is_jax(x, jax)) or np.size(x) > 1:
        from ._jax import jnp

        return jnp
    return np


def f64(x: Any):
    """``x`` as a float64 array of its own namespace (NumPy for numbers, JAX for JAX values)."""
    return xp(x).asarray(x, dtype=np.float64)


def sqrt(x: Any):
    return xp(x).sqrt(x)


def square(x: Any):
    return x * x
