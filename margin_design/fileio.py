"""Atomic file output: a failed run leaves no half-written file or folder, and never touches a user's files.

Files are written to a temporary sibling and renamed into place (``os.replace`` is atomic on
POSIX within one file system). Folders are assembled in a temporary sibling directory and
swapped in as a whole by :func:`atomic_directory`.

Output folders (``--out DIR`` of ``solve``, ``report``, ``audit``) follow one policy, checked before any
work by :func:`check_output_folder` and again when writing:

* a path that does not exist, or an empty folder, is written;
* an existing folder is replaced as a whole only if every file in it is one this command writes (a
  folder from an earlier run); a folder holding anything else is refused and left untouched;
* an existing regular file, the current folder or one of its parents, and a folder that contains one of
  the command's input files are refused;
* a folder that cannot be written (read-only, missing permission, full disk) is reported in one
  sentence, and no temporary file or folder is left behind.

Every refusal is an :class:`~margin_design.errors.OutputError` with one sentence naming the flag and path.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

from margin_design.errors import OutputError

__all__ = [
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_directory",
    "write_tree",
    "check_output_folder",
    "check_output_file",
]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


def _missing_ancestor(path: Path) -> Path | None:
    """The top-most ancestor of ``path`` (or ``path`` itself) that does not exist yet, or None."""
    top = None
    for p in [path, *path.parents]:
        if p.exists():
            break
        top = p
    return top


@contextlib.contextmanager
def _cleanup_created(path: Path) -> Iterator[None]:
    """Remove the folders created for ``path`` if the block fails (so a failed write leaves nothing)."""
    created = _missing_ancestor(path)
    try:
        yield
    except BaseException:
        if created is not None and created.exists():
            shutil.rmtree(created, ignore_errors=True)
        raise


def check_output_file(path: str | os.PathLike, label: str = "--out") -> Path:
    """Raise OutputError unless ``path`` can be written as one file (it is not a folder; its folder is not a file)."""
    raw = os.fspath(path)
    if not str(raw).strip():
        raise OutputError(f"{label} is empty; name a file to write.")
    path = Path(path)
    if path.is_dir() or raw.endswith(os.sep):
        raise OutputError(f"{label} {str(path)!r} is a folder; give a file name (the file is written atomically).")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise OutputError(f"{label} {str(path)!r} cannot be written: {str(parent)!r} is a file, not a folder.")
            break
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes, label: str = "output file") -> Path:
    """Write ``data`` to ``path`` atomically (temporary file in the same folder, then rename)."""
    path = check_output_file(path, label)
    tmp = None
    try:
        with _cleanup_created(path.parent):
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            try:
                os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the mode open() would
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
    except OSError as exc:
        raise OutputError(f"{label} {str(path)!r} cannot be written: {_reason(exc)}.") from None
    return path


def atomic_write_text(path: str | os.PathLike, text: str, label: str = "output file") -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically, with Unix newlines."""
    return atomic_write_bytes(path, text.encode("utf-8"), label)


def _is_within(child: Path, parent: Path) -> bool:
    try:
        child.relative_to(parent)
        return True
    except ValueError:
        return False


def _foreign_entry(folder: Path, owned: Iterable[str]) -> str | None:
    """The first file or folder inside ``folder`` that no pattern of ``owned`` matches (posix relative paths).

    Walks one level at a time in name order and stops at the first foreign entry, so a large folder that is
    not ours is refused without listing all of it.
    """
    patterns = list(owned)

    def walk(d: Path, prefix: str) -> str | None:
        for entry in sorted(os.scandir(d), key=lambda e: e.name):
            rel = prefix + entry.name
            if entry.is_dir(follow_symlinks=False):
                if not any(pat.startswith(rel + "/") for pat in patterns):
                    return rel
                found = walk(Path(entry.path), rel + "/")
                if found is not None:
                    return found
            elif not any(fnmatch.fnmatchcase(rel, pat) for pat in patterns):
                return rel
        return None

    return walk(folder, "")


def check_output_folder(
    path: str | os.PathLike,
    *,
    owned: Iterable[str],
    inputs: Iterable[str | os.PathLike] = (),
    label: str = "--out",
) -> Path:
    """Raise OutputError unless ``path`` may be written (or replaced) as a whole by a command writing ``owned``.

    ``owned`` are the relative paths (``fnmatch`` patterns, ``/``-separated) the command writes; ``inputs`` the
    files it reads. See the module docstring for the policy. Nothing is created or changed.
    """
    raw = str(path)
    path = Path(path)
    if not raw.strip():
        raise OutputError(f"{label} is empty; name a folder to write, e.g. {label} out/report.")
    if path.exists() and not path.is_dir():
        raise OutputError(
            f"{label} {raw!r} is an existing file, and {label} names a folder; the file is left untouched, so choose another name."
        )
    target = path.resolve()
    cwd = Path.cwd().resolve()
    if target == cwd or _is_within(cwd, target) or target.parent == target:
        raise OutputError(
            f"{label} {raw!r} is the current folder or one of its parents, which would be replaced as a whole; name a new sub-folder, e.g. {label} report."
        )
    for inp in inputs:
        if inp is None:
            continue
        ip = Path(inp)
        if ip.exists() and _is_within(ip.resolve(), target):
            raise OutputError(
                f"{label} {raw!r} contains the input {str(inp)!r}, and the folder is replaced as a whole; write to another folder."
            )
    if path.is_dir():
        try:
            foreign = _foreign_entry(path, owned)
        except OSError as exc:
            raise OutputError(f"{label} {raw!r} cannot be read: {_reason(exc)}.") from None
        if foreign is not None:
            raise OutputError(
                f"{label} {raw!r} is a folder holding files margin-design did not write (for example {foreign!r}); "
                "it is replaced as a whole, so name a new or empty folder."
            )
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise OutputError(f"{label} {raw!r} cannot be written: {str(parent)!r} is a file, not a folder.")
            break
    return path


@contextlib.contextmanager
def atomic_directory(
    path: str | os.PathLike, *, owned: Iterable[str] | None = None, label: str = "--out"
) -> Iterator[Path]:
    """Build a folder in a temporary sibling and move it to ``path`` only if the block succeeds.

    Usage::

        with atomic_directory("out/report", owned=["*.csv"]) as tmp:
            (tmp / "table.csv").write_text(...)

    If the block raises, the temporary folder is removed and ``path`` is left as it was. An existing
    ``path`` is replaced as a whole (the old folder is removed only after the new one is in place), and only
    if :func:`check_output_folder` accepts it for the files ``owned`` (default: nothing, so only an empty
    folder is replaced). OS errors (permissions, full disk) become one-sentence :class:`OutputError`.
    """
    path = check_output_folder(path, owned=owned or (), label=label)
    tmp: Path | None = None
    block_error: BaseException | None = None
    try:
        with _cleanup_created(path.parent):
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
            try:
                os.chmod(tmp, 0o777 & ~_umask())
                try:
                    yield tmp
                except BaseException as exc:  # the caller's own error: not an output problem
                    block_error = exc
                    raise
                old = None
                if path.exists():
                    old = path.with_name(f".{path.name}.old-{os.getpid()}")
                    if old.exists():
                        shutil.rmtree(old)
                    os.replace(path, old)
                try:
                    os.replace(tmp, path)
                except BaseException:
                    if old is not None:  # put the previous folder back
                        os.replace(old, path)
                    raise
                if old is not None:
                    shutil.rmtree(old, ignore_errors=True)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
    except OSError as exc:
        if exc is block_error:
            raise
        raise OutputError(f"{label} {str(path)!r} cannot be written: {_reason(exc)}.") from None


def write_tree(
    folder: str | os.PathLike, files: dict[str, bytes], *, owned: Iterable[str] | None = None, label: str = "--out"
) -> Path:
    """Write ``{relative path: bytes}`` as a fresh folder, atomically (see :func:`atomic_directory`).

    ``owned`` (default: the keys of ``files``) are the patterns an existing folder may hold to be replaced.
    """
    with atomic_directory(folder, owned=list(files) if owned is None else owned, label=label) as tmp:
        for rel, data in files.items():
            p = tmp / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
    return Path(folder)
