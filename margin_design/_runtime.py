"""Process-wide set-up of the compilers, in one place: JAX in float64 with a persistent compilation cache,
and a usable folder for numba's on-disk cache.

* :func:`configure_jax` switches JAX to float64 (``jax_enable_x64``; every JAX function of the package feeds
  an optimiser or a certificate) and points JAX's persistent compilation cache at a per-user folder, so that
  a second run loads the compiled XLA programmes instead of compiling them again (compiled code is the same,
  so results are byte-identical). Called on import by :mod:`margin_design.design` and by the JAX path of
  :mod:`margin_design.calibration`, hence by every command that solves.
* :func:`configure_numba` makes sure numba can cache the ``@njit(cache=True)`` kernels of
  :mod:`margin_design.solvers`: numba caches next to the source (``__pycache__``) or in the user's cache
  folder, and refuses to import a ``cache=True`` function when neither is writable (an installed package
  used by someone without a writable home). Called by :mod:`margin_design.solvers` before any kernel is
  defined.

Cache folder: ``$XDG_CACHE_HOME/margin-design`` (``~/.cache/margin-design`` when XDG_CACHE_HOME is unset).
When that cannot be created, a private per-user folder in the temporary directory is used
(``<tmp>/margin-design-<uid>``, mode 0700, checked to be ours), else a per-process temporary folder, else
JAX runs without its persistent cache. None of this prints anything unless ``MARGIN_DESIGN_VERBOSE`` is set
(to anything but ``0``). JAX's own settings win: a ``jax_compilation_cache_dir`` set by the user
(``JAX_COMPILATION_CACHE_DIR``) is kept, and ``JAX_ENABLE_COMPILATION_CACHE=false`` turns the cache off;
``NUMBA_CACHE_DIR`` is honoured when it is writable.

Both functions are idempotent and cheap after the first call. This module imports neither JAX nor numba
at import time.
"""

from __future__ import annotations

import atexit
import os
import shutil
import stat
import sys
import tempfile
from pathlib import Path

__all__ = ["cache_root", "configure_jax", "configure_numba", "verbose"]

APP = "margin-design"

_state: dict = {}


def verbose() -> bool:
    """True when ``MARGIN_DESIGN_VERBOSE`` is set to anything but empty or ``0``."""
    return os.environ.get("MARGIN_DESIGN_VERBOSE", "").strip() not in ("", "0")


def _note(message: str) -> None:
    if verbose():
        print(f"{APP}: {message}", file=sys.stderr)


def _writable_dir(path: Path) -> Path | None:
    """``path`` created if needed and proven writable (a temporary file is created and removed), else None."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
    except (OSError, ValueError):
        return None
    return path


def cache_root() -> Path:
    """The per-user cache folder (XDG): ``$XDG_CACHE_HOME/margin-design`` or ``~/.cache/margin-design``.

    Not created here; a relative ``XDG_CACHE_HOME`` is ignored, as the XDG specification asks.
    """
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path(os.path.expanduser("~")) / ".cache"
    return base / APP


def _private_temp_root() -> Path | None:
    """A temporary cache folder that only this user can write: ``<tmp>/margin-design-<uid>`` if it is ours
    (a directory, not a link, owned by us, no access for group or others), else a fresh per-process folder
    removed at exit; None if the system has no usable temporary directory."""
    if "temp_root" in _state:
        return _state["temp_root"]
    root = None
    try:
        tmp = tempfile.gettempdir()
        uid = os.getuid() if hasattr(os, "getuid") else None
        shared = Path(tmp) / f"{APP}-{uid if uid is not None else 'user'}"
        try:
            shared.mkdir(mode=0o700, exist_ok=True)
            st = os.lstat(shared)
            ours = stat.S_ISDIR(st.st_mode) and (uid is None or st.st_uid == uid) and not (st.st_mode & 0o077)
            if ours and _writable_dir(shared) is not None:
                root = shared
        except OSError:
            pass
        if root is None:
            root = Path(tempfile.mkdtemp(prefix=f"{APP}-"))
            atexit.register(shutil.rmtree, root, ignore_errors=True)
    except (OSError, FileNotFoundError):
        root = None
    _state["temp_root"] = root
    return root


def _cache_dir(name: str) -> Path | None:
    """``cache_root()/name`` if usable, else the same name under the private temporary folder, else None."""
    preferred = cache_root() / name
    found = _writable_dir(preferred)
    if found is not None:
        return found
    temp = _private_temp_root()
    found = None if temp is None else _writable_dir(temp / name)
    _note(f"cannot write the cache folder {preferred}; using {found if found is not None else 'no cache'} for {name}")
    return found


# ----------------------------------------------------------------------------------------------
# JAX
# ----------------------------------------------------------------------------------------------


def configure_jax():
    """Switch JAX to float64 and enable its persistent compilation cache; returns the ``jax`` module.

    The cache keeps every compiled programme (``jax_persistent_cache_min_compile_time_secs = 0``, no size
    floor): this package's programmes compile in tens of milliseconds each, far below JAX's default
    threshold of one second, but a solve compiles about ten of them.
    """
    import jax

    if _state.get("jax"):
        return jax
    jax.config.update("jax_enable_x64", True)
    if not jax.config.jax_enable_compilation_cache:
        _note("JAX persistent compilation cache disabled (jax_enable_compilation_cache is off)")
    elif jax.config.jax_compilation_cache_dir:
        _note(f"JAX persistent compilation cache: {jax.config.jax_compilation_cache_dir} (set by the user)")
    else:
        folder = _cache_dir("jax")
        if folder is not None:
            jax.config.update("jax_compilation_cache_dir", str(folder))
            jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
            jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
            _note(f"JAX persistent compilation cache: {folder}")
    _state["jax"] = True
    return jax


# ----------------------------------------------------------------------------------------------
# numba
# ----------------------------------------------------------------------------------------------


def _probe():  # pragma: no cover - never called; its code object stands in for a cached kernel
    pass


def configure_numba(source_file: str) -> None:
    """Make numba's cache usable for the ``@njit(cache=True)`` kernels defined in ``source_file``'s folder.

    Runs numba's own cache locators (``NUMBA_CACHE_DIR``, ``__pycache__`` beside the source, the user-wide
    cache folder) on ``source_file``; if none can write, numba would refuse to define the kernels ("cannot
    cache function ...: no locator available"), so ``numba.config.CACHE_DIR`` is pointed at a writable
    folder (see :func:`cache_root`, then the private temporary folder). Call before the kernels are defined.
    """
    key = ("numba", os.path.dirname(os.path.abspath(source_file)))
    if _state.get(key):
        return
    _state[key] = True
    try:
        from numba.core import caching, config
    except ImportError:  # pragma: no cover - numba is a hard dependency
        return
    locators = getattr(getattr(caching, "_CacheImpl", None), "_locator_classes", None)
    if not locators:  # pragma: no cover - a numba without the class list: let numba decide
        return
    for cls in locators:
        try:
            if cls.from_function(_probe, source_file) is not None:
                return
        except Exception:  # a locator that cannot handle this file: try the next one
            continue
    folder = _cache_dir("numba")
    if folder is not None:
        config.CACHE_DIR = str(folder)
        _note(f"numba cache: {folder} (no writable __pycache__ or user cache folder)")
