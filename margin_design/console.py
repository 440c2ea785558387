"""What the command line prints, in one place: human lines, the --json object, details and progress bars.

Channels:

* human lines (summaries, "wrote ..."): stdout, through :func:`say`; suppressed by ``-q/--quiet`` and by ``--json``;
* the ``--json`` summary: stdout, exactly one JSON object and nothing else (:func:`emit_json`);
* warnings: stderr, always (:func:`warn`), also under ``-q`` and ``--json``;
* details (solver iterations, timings, stage times): stderr, only with ``-v/--verbose``, through the standard
  :mod:`logging` logger ``margin_design`` (library modules may log to ``margin_design.<module>`` at INFO level);
* progress bars: stderr, through :func:`progress`; a tqdm bar with rate and ETA when stderr is a terminal,
  otherwise plain lines: one at each 10% of the work but at most one every 3 seconds, and one when the stage ends
  (a short stage prints one line, a long one at most 11); none under ``-q`` or ``--json``.

The library never imports this module: long computations take an optional callback ``progress(done, total, what)``
(``done`` of ``total`` units finished in the stage named ``what``) and :func:`progress` supplies one.
This module imports neither numpy nor JAX, so ``--version`` and ``--help`` stay fast.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import sys
import time
from typing import Any, Callable, Iterator

from margin_design.jsonable import jsonable

__all__ = ["configure", "say", "warn", "emit_json", "json_mode", "quiet", "verbose", "progress", "progress_callback", "close_bars",
           "LOGGER"]

PROG = "margin-design"
#: The package logger; ``-v`` shows its INFO records on stderr.
LOGGER = logging.getLogger("margin_design")
#: Plain (non-terminal) progress lines: one each time this share of a stage is passed, but not sooner than
#: PLAIN_SECONDS after the previous line, plus one when the stage ends (so a short stage prints one line).
PLAIN_STEP = 0.10
PLAIN_SECONDS = 3.0

_state = {"quiet": False, "verbose": False, "json": False}


class _StderrHandler(logging.Handler):
    """Writes to the current ``sys.stderr`` (looked up per record, so a replaced stderr is honoured)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(f"{PROG}: {record.getMessage()}\n")
        except Exception:  # pragma: no cover - logging must never break a command
            self.handleError(record)


_HANDLER = _StderrHandler()


def configure(*, quiet: bool = False, verbose: bool = False, json_stdout: bool = False) -> None:
    """Set the output mode for one command (called by the command line after parsing)."""
    _state.update(quiet=bool(quiet), verbose=bool(verbose), json=bool(json_stdout))
    if _HANDLER not in LOGGER.handlers:
        LOGGER.addHandler(_HANDLER)
    LOGGER.propagate = False
    LOGGER.setLevel(logging.INFO if verbose else logging.WARNING)


def quiet() -> bool:
    return _state["quiet"]


def verbose() -> bool:
    return _state["verbose"]


def json_mode() -> bool:
    """Is stdout reserved for the one JSON object of ``--json``?"""
    return _state["json"]


def say(text: str = "") -> None:
    """A human line (or block) on stdout, unless ``-q`` or ``--json``."""
    if not (_state["quiet"] or _state["json"]):
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


def warn(text: str) -> None:
    """``margin-design: warning: <text>`` on stderr, in every mode."""
    sys.stderr.write(f"{PROG}: warning: {text}\n")


def emit_json(payload: dict) -> None:
    """Print ``payload`` as the one JSON object on stdout (non-finite numbers become null)."""
    sys.stdout.write(json.dumps(jsonable(payload), indent=2, allow_nan=False) + "\n")


class _Bars:
    """The callback handed to the library: one bar (or series of plain lines) per stage ``what``."""

    def __init__(self, unit: str):
        self.unit = unit
        self.what: str | None = None
        self.bar = None
        self.start = 0.0
        self.next_plain = 0.0
        self.last_line = 0.0
        self.done = self.total = 0
        self.updated = 0.0

    def __call__(self, done: int, total: int, what: str = "") -> None:
        if what != self.what:
            self.close()
            self.what, self.start, self.next_plain = what, time.monotonic(), 0.0
            self.last_line = self.start
            if sys.stderr.isatty():
                from tqdm import tqdm

                self.bar = tqdm(total=total, desc=what, unit=self.unit, file=sys.stderr, leave=True, dynamic_ncols=True)
        self.done, self.total, self.updated = done, total, time.monotonic()
        if self.bar is not None:
            if self.bar.total != total:
                self.bar.total = total
            self.bar.update(done - self.bar.n)
            return
        share = done / total if total else 1.0
        now = time.monotonic()
        due = share + 1e-12 >= self.next_plain and now - self.last_line >= PLAIN_SECONDS
        if done > 0 and (due or done >= total):
            self._plain_line(done, total, share)
            self.last_line = now
            self.next_plain = (math.floor(share / PLAIN_STEP + 1e-9) + 1) * PLAIN_STEP

    def _plain_line(self, done: int, total: int, share: float) -> None:
        from tqdm import tqdm

        elapsed = time.monotonic() - self.start
        rate = done / elapsed if elapsed > 0 else float("inf")
        eta = (total - done) / rate if 0 < rate < float("inf") else 0.0
        rate_text = f"{rate:.3g} {self.unit}/s" if math.isfinite(rate) else f"- {self.unit}/s"
        sys.stderr.write(
            f"{PROG}: {self.what}: {done}/{total} {self.unit} ({share:.0%}), {rate_text}, "
            f"elapsed {tqdm.format_interval(elapsed)}, ETA {tqdm.format_interval(eta)}\n"
        )
        sys.stderr.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.what is not None:  # -v: how long the stage took
            LOGGER.info(f"{self.what}: {self.done}/{self.total} {self.unit} in {self.updated - self.start:.2f} s")
            self.what = None


def _silent(done: int, total: int, what: str = "") -> None:
    return None


_open: list[_Bars] = []


def progress_callback(unit: str = "steps") -> Callable[[int, int, str], None]:
    """A ``progress(done, total, what)`` callback for the library; silent under ``-q`` and ``--json``.
    Its bar stays open until :func:`close_bars` (the command line calls it when a command ends or fails)."""
    if _state["quiet"] or _state["json"]:
        return _silent
    bars = _Bars(unit)
    _open.append(bars)
    return bars


def close_bars() -> None:
    """End every open progress bar (so that what follows starts on a line of its own)."""
    while _open:
        _open.pop().close()


@contextlib.contextmanager
def progress(unit: str = "steps") -> Iterator[Callable[[int, int, str], None]]:
    """:func:`progress_callback` for the duration of a ``with`` block."""
    try:
        yield progress_callback(unit)
    finally:
        close_bars()
