"""One converter of results to JSON-ready Python values (for --json, audit.json, diff.json).

It imports neither numpy nor JAX, so the command line's fast paths (--help, --version) can use it.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["jsonable"]


def jsonable(x: Any) -> Any:
    """JSON-ready: numpy scalars and arrays to Python, non-finite floats to None (JSON null), tuples to lists,
    dict keys and other objects (paths) to strings."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, bool) or x is None or isinstance(x, str):
        return x
    if isinstance(x, int):
        return x
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if hasattr(x, "tolist"):  # numpy scalar or array
        return jsonable(x.tolist())
    return str(x)
