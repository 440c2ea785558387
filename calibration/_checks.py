"""Input checks shared by the calibration functions.

The formulas in this package are pure and differentiable, so they must also run on JAX tracers
(inside ``jax.grad`` / ``jax.jit``). The checks below therefore only look at *concrete* inputs
(Python numbers, NumPy arrays, concrete JAX arrays) and silently skip tracers. A failed check raises
:class:`~margin_design.errors.InputError` with one sentence naming the argument and the offending value.
"""

from __future__ import annotations

from typing import Any

import math
import sys

import numpy as np

from margin_design.errors import InputError

__all__ = ["check_range", "fmt_value", "to_py"]


def _is_tracer(x: Any) -> bool:
    jax = sys.modules.get("jax")  # a value can only be a tracer once JAX is imported; do not import it here
    if jax is None:
        return False
    try:
        return isinstance(x, jax.core.Tracer)
    except Exception:  # pragma: no cover - a partially imported jax
        return False


def fmt_value(x: Any) -> str:
    """Short, deterministic rendering of an offending value for an error sentence."""
    arr = np.asarray(x, dtype=float)
    if arr.ndim == 0:
        return format(float(arr), ".6g")
    return "[" + ", ".join(format(float(v), ".6g") for v in arr.ravel()[:6]) + (", ...]" if arr.size > 6 else "]")


def check_range(
    name: str,
    x: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = False,
    high_inclusive: bool = True,
    what: str | None = None,
) -> None:
    """Raise InputError unless every element of ``x`` is finite and inside the stated interval.

    ``name`` is the argument (or flag / key / column) named in the message; ``what`` optionally
    replaces the default interval description (e.g. "a participation rate in (0, 1]").
    """
    if x is None or _is_tracer(x):
        return
    try:
        arr = np.asarray(x, dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got {x!r}.") from None
    lo_br = "[" if low_inclusive else "("
    hi_br = "]" if high_inclusive else ")"
    interval = f"{lo_br}{'-inf' if low is None else format(low, 'g')}, {'inf' if high is None else format(high, 'g')}{hi_br}"
    desc = what or f"in {interval}"
    bad = ~np.isfinite(arr)
    if low is not None:
        bad |= (arr < low) if low_inclusive else (arr <= low)
    if high is not None:
        bad |= (arr > high) if high_inclusive else (arr >= high)
    if np.any(bad):
        offending = arr[bad] if arr.ndim else arr
        raise InputError(f"{name} must be {desc}, got {fmt_value(offending)}.")


def to_py(x: Any):
    """JSON-friendly value: float for scalars, nested lists for arrays, None for None and non-finite values."""
    if x is None:
        return None
    arr = np.asarray(x, dtype=float)
    if arr.ndim == 0:
        v = float(arr)
        return v if math.isfinite(v) else None
    return [to_py(v) for v in arr]
