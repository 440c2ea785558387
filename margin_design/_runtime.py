"""Process-wide set-up of the compilers, in one place: JAX in float64 with a persistent compilation cache,
and a usable folder for numba's on-disk cache.

* :func:`configure_jax` switches JAX to float64 (``jax_enable_x64``; every JAX function of the package feeds
  an optimiser or a certificate) and points JAX's persistent compilation cache at a per-user folder, so that
  a second run loads the compiled XLA programmes instead of compiling them again (the compiled code is the
  same, so results are byte-identical). Called on import by :mod:`margin_design.design` and by the JAX
  formulas of :mod:`margin_design.calibration`, hence by every command that solves.
* :func:`configure_numba` makes sure numba can cache the ``@njit(cache=True)`` kernels of
  :mod:`margin_design.solvers`. numba caches beside the source (``__pycache__``) or in the user's cache
  folder, and refuses to define a ``cache=True`` function when neither is writable ("cannot cache function
  ...: no locator available"), which is the case for an installed package used by someone without a
  writable home folder. Called by :mod:`margin_design.solvers._jit` before numba compiles the first kernel
  (small solves never import numba).

Folders: ``$XDG_CACHE_HOME/margin-design/{jax,numba}`` (``~/.cache/margin-design/...`` when XDG_CACHE_HOME
is unset; numba's own locations come first and are normally used). When that folder cannot be created, a
private per-user folder in the temporary directory is used, ``<tmp>/margin-design-<uid>`` (mode 0700, used
only if it is a directory owned by this user that nobody else can write). If even that is unusable, numba
gets a per-process temporary folder removed at exit and JAX runs without its persistent cache. Nothing is
printed unless ``MARGIN_DESIGN_VERBOSE`` is set (to anything but ``0``), which prints the folders used.

JAX's and numba's own settings win: a ``jax_compilation_cache_dir`` set by the user
(``JAX_COMPILATION_CACHE_DIR``) is kept, ``JAX_ENABLE_COMPILATION_CACHE=false`` turns the cache off, and a
writable ``NUMBA_CACHE_DIR`` is used by numba as usual. Both functions are idempotent and cheap after the
first call; this module imports neither JAX nor numba at import time.
"""

from __future__ import annotations

import atexit
import gc
import os
import shutil
import stat
import sys
import tempfile
from pathlib import Path

__all__ = ["cache_root", "configure_jax", "configure_numba", "quick_exit", "verbose"]

APP = "margin-design"

_state: dict = {}


def verbose() -> bool:
    """True when ``MARGIN_DESIGN_VERBOSE`` is set to anything but empty or ``0``, or the command runs with -v."""
    from margin_design import console

    return os.environ.get("MARGIN_DESIGN_VERBOSE", "").strip() not in ("", "0") or console.verbose()


def _note(message: str) -> None:
    if verbose():
        print(f"{APP}: {message}", file=sys.stderr)


def _writable_dir(path: Path) -> Path | None:
    """``path``, created if needed and proven writable (a temporary file is created and removed), else None."""
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
    """``<tmp>/margin-design-<uid>``, created with mode 0700, if it is a real directory owned by this user
    that group and others cannot access (another user could otherwise plant compiled code in it); else None."""
    if "temp_root" not in _state:
        root = None
        try:
            uid = os.getuid() if hasattr(os, "getuid") else None
            shared = Path(tempfile.gettempdir()) / f"{APP}-{uid if uid is not None else 'user'}"
            shared.mkdir(mode=0o700, exist_ok=True)
            st = os.lstat(shared)
            private = stat.S_ISDIR(st.st_mode) and (uid is None or st.st_uid == uid) and not st.st_mode & 0o077
            if private and _writable_dir(shared) is not None:
                root = shared
        except OSError:  # includes "no usable temporary directory"
            root = None
        _state["temp_root"] = root
    return _state["temp_root"]


def _cache_dir(name: str) -> tuple[Path | None, str]:
    """(folder, how it was chosen): ``cache_root()/name`` if writable, else the private temporary folder's."""
    preferred = cache_root() / name
    if _writable_dir(preferred) is not None:
        return preferred, ""
    temp = _private_temp_root()
    folder = None if temp is None else _writable_dir(temp / name)
    return folder, f"{preferred} is not writable"


# ----------------------------------------------------------------------------------------------
# JAX
# ----------------------------------------------------------------------------------------------


def configure_jax():
    """Switch JAX to float64 and enable its persistent compilation cache; returns the ``jax`` module.

    Every compiled programme is kept (``jax_persistent_cache_min_compile_time_secs = 0``, no size floor):
    this package's programmes compile in tens of milliseconds each, far below JAX's default threshold of
    one second, but a solve needs about ten of them. Call before the first compilation (JAX reads the
    cache settings once, at its first compilation).
    """
    import jax

    if _state.get("jax"):
        return jax
    _state["jax"] = True
    jax.config.update("jax_enable_x64", True)
    if not jax.config.jax_enable_compilation_cache:
        _note("JAX compilation cache: off (jax_enable_compilation_cache is false)")
        return jax
    if jax.config.jax_compilation_cache_dir:
        _note(f"JAX compilation cache: {jax.config.jax_compilation_cache_dir} (JAX's own setting)")
        return jax
    folder, why = _cache_dir("jax")
    if folder is None:
        _note(f"JAX compilation cache: off ({why}, and no private temporary folder)")
        return jax
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    _note(f"JAX compilation cache: {folder}" + (f" ({why})" if why else ""))
    return jax


# ----------------------------------------------------------------------------------------------
# numba
# ----------------------------------------------------------------------------------------------


def _probe():  # pragma: no cover - never called; its code object stands in for a cached kernel's
    pass


def configure_numba(source_file: str) -> None:
    """Make sure numba can cache the ``@njit(cache=True)`` kernels defined in ``source_file``'s folder.

    Asks numba's own cache locators (``NUMBA_CACHE_DIR``, ``__pycache__`` beside the source, the user-wide
    cache folder) whether one of them can write for ``source_file``; if none can, ``numba.config.CACHE_DIR``
    is pointed at ``cache_root()/numba``, else at the private temporary folder, else at a per-process
    temporary folder removed at exit. Call before the kernels are defined.
    """
    folder_key = ("numba", os.path.dirname(os.path.abspath(source_file)))
    if _state.get(folder_key):
        return
    _state[folder_key] = True
    from numba.core import caching, config

    impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl", None)  # public from numba 0.61
    locators = getattr(impl, "_locator_classes", None)
    if locators:
        for cls in locators:
            try:
                if cls.from_function(_probe, source_file) is not None:
                    return
            except Exception:  # a locator that does not apply to this file: try the next one
                continue
    elif _writable_dir(Path(source_file).parent / "__pycache__") is not None:  # pragma: no cover - other numba
        return
    folder, why = _cache_dir("numba")
    if folder is None:
        try:
            folder = Path(tempfile.mkdtemp(prefix=f"{APP}-numba-"))
        except OSError:
            _note("numba cache: no writable folder at all; numba will refuse to define the cached kernels")
            return
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        why += ", and no private temporary folder: this run compiles the kernels afresh"
    config.CACHE_DIR = str(folder)
    _note(f"numba cache: {folder} (no writable __pycache__ beside the source or numba user cache; {why})")


# ----------------------------------------------------------------------------------------------
# exit
# ----------------------------------------------------------------------------------------------


def quick_exit() -> None:
    """For the command line, a short-lived process: skip the garbage collector's passes at interpreter exit.

    Python's shutdown runs full collections over every object still alive; with JAX, numba and SciPy loaded
    that is hundreds of thousands of objects and about 0.2-0.4 s, a quarter of a solve's wall time. An
    ``atexit`` hook calls :func:`gc.freeze`, which moves them all to the permanent generation that
    collections skip. Everything else of a normal exit still happens (other ``atexit`` hooks, which run
    first, joining threads, flushing stdout and stderr); only cyclic garbage left at exit is not finalised
    by the collector, as with ``os._exit``. The commands close what they write (atomic renames), so no
    output depends on that. Registered once per process.
    """
    if not _state.get("quick_exit"):
        _state["quick_exit"] = True
        atexit.register(gc.freeze)
