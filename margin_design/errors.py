"""Typed errors a user can cause.

Every message is one sentence naming the offending key (or file, or flag) and its value.
The command line prints the message and exits with status 2, never a traceback.
"""

from __future__ import annotations


class MarginDesignError(Exception):
    """Base class of every error a user can cause (bad config, impossible parameters, bad files)."""

    exit_status = 2


class ConfigError(MarginDesignError):
    """A configuration file or value is invalid: unknown/missing key, wrong type, out of range."""


class InputError(MarginDesignError):
    """A data file or command-line input is missing, unreadable or has the wrong columns/values."""


class NonConvexError(MarginDesignError):
    """The per-state objective is not convex in the margin M on the grid."""


class SolverError(MarginDesignError):
    """A solver failed to produce a certified answer (numerical trouble, not a user mistake we can name)."""


class OutputError(MarginDesignError):
    """An output path cannot be written as asked (an existing file where a folder is wanted, a folder with
    files margin-design did not write, a read-only folder, a full disk); nothing is written."""
