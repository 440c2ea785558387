"""Kernels compiled on demand: plain Python on small inputs, numba on large ones.

The solvers' inner loops (the chain programmes, the certificate's interval propagation, block offsets) are
written once, as plain Python over NumPy arrays, and decorated with :func:`kernel`. numba costs about 0.3 s
per process before its first compiled call returns (its import, then the set-up of its target context, even
when the machine code comes from the on-disk cache), while the Python version of these loops takes about
2.5 microseconds per state. So a kernel runs as plain Python up to SMALL_N states and compiled above: a
400-state design (the bundled benchmark) never imports numba, and a 10^6-state one pays the 0.3 s once.

``k.for_size(n)`` returns the callable for an input of n states; ``k(...)`` is the plain-Python call;
``k.compiled`` the numba dispatcher (``@njit(cache=True)``, compiled or loaded from numba's cache on first
use). Helper kernels called from other kernels (``helper=True``) are swapped for their dispatchers in the
callers' module globals when numba first compiles, because numba resolves such calls through the globals.
Both engines run the same operations in the same order on float64, and the tests check that they agree.
``MARGIN_DESIGN_SMALL_N`` overrides the threshold (0: always compiled), for tests and benchmarks.
"""

from __future__ import annotations

import os

__all__ = ["SMALL_N", "Kernel", "kernel", "small_n"]

#: Largest input (states) run as plain Python: at 2.5 us per state and a few calls per solve, the Python
#: loops stay below numba's per-process start-up cost up to about this size.
SMALL_N = 4096

_KERNELS: list["Kernel"] = []


def small_n() -> int:
    """The threshold in force (``MARGIN_DESIGN_SMALL_N`` if set, else SMALL_N)."""
    value = os.environ.get("MARGIN_DESIGN_SMALL_N", "").strip()
    return int(value) if value.isdigit() else SMALL_N


class Kernel:
    """A kernel with a plain-Python body and a numba dispatcher made on first need."""

    def __init__(self, func, options: dict, helper: bool):
        self.py_func = func
        self.options = options
        self.helper = helper
        self._dispatcher = None
        self.__name__ = func.__name__
        self.__qualname__ = func.__qualname__
        self.__doc__ = func.__doc__
        self.__module__ = func.__module__
        self.__wrapped__ = func

    def __call__(self, *args):
        return self.py_func(*args)

    @property
    def compiled(self):
        """The numba dispatcher (numba is imported and every kernel wrapped on the first request)."""
        if self._dispatcher is None:
            _compile_all()
        return self._dispatcher

    def for_size(self, n: int):
        """The plain-Python function for n <= the threshold, else the compiled dispatcher."""
        return self.py_func if n <= small_n() else self.compiled

    def __repr__(self) -> str:
        return f"<kernel {self.__module__}.{self.__qualname__}>"


def kernel(*, helper: bool = False, **options):
    """Decorator: a :class:`Kernel`; ``options`` go to ``numba.njit`` (``cache=True`` is the default)."""
    options.setdefault("cache", True)

    def wrap(func):
        k = Kernel(func, options, helper)
        _KERNELS.append(k)
        return k

    return wrap


def _compile_all() -> None:
    from margin_design import _runtime

    for k in _KERNELS:  # numba needs a writable cache folder before a cache=True function is defined
        _runtime.configure_numba(k.py_func.__code__.co_filename)
    import numba

    for k in _KERNELS:
        if k._dispatcher is None:
            k._dispatcher = numba.njit(**k.options)(k.py_func)
    for k in _KERNELS:
        if k.helper:
            for caller in _KERNELS:
                g = caller.py_func.__globals__
                for name, value in list(g.items()):
                    if value is k:
                        g[name] = k._dispatcher
