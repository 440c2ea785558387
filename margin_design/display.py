"""How result objects show themselves at a Python prompt and in Jupyter: a short ``repr`` and a small HTML table.

A result object lists its key numbers once, as ``(title, [(label, value text), ...])`` from a
``_display()`` method; :class:`Displayable` turns that into

* ``__repr__``: the title and one indented ``label: value`` line per item (a few lines, never a whole array);
* ``_repr_html_``: the same items as a two-column HTML table with the title as its caption. Every piece of
  text is escaped (:func:`html.escape`), so a user's rule name or file name is shown, never interpreted.

Array-valued fields are shown by :func:`brief` (a scalar as a number, an array as its size and range), so a
400-state result prints in a few lines. Dataclasses that use the mixin pass ``repr=False`` to
``@dataclass`` so the generated field-by-field repr does not replace this one.
"""

from __future__ import annotations

import html
import math
from typing import Any

import numpy as np

__all__ = ["Displayable", "brief", "html_grid", "html_table", "text_block", "yes_no"]


def brief(x: Any, fmt: str = ".6g", unit: str = "") -> str:
    """A scalar as ``format(x, fmt)``; an array as ``"n values, min .. max"``; None as ``"n/a"``."""
    if x is None:
        return "n/a"
    arr = np.asarray(x, dtype=float)
    u = f" {unit}" if unit else ""
    if arr.ndim == 0:
        v = float(arr)
        return (format(v, fmt) if math.isfinite(v) else str(v)) + u
    if arr.size == 0:
        return "0 values"
    finite = arr[np.isfinite(arr)]
    if finite.size == 0:
        return f"{arr.size} values, none finite"
    rng = f"{format(float(finite.min()), fmt)} .. {format(float(finite.max()), fmt)}{u}"
    return f"{arr.size} values, {rng}" + ("" if finite.size == arr.size else f" ({arr.size - finite.size} not finite)")


def yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def text_block(title: str, items: list[tuple[str, str]]) -> str:
    """``title`` and one ``  label: value`` line per item."""
    return "\n".join([title] + [f"  {label}: {value}" for label, value in items])


def html_table(title: str, items: list[tuple[str, str]]) -> str:
    """A two-column HTML table (quantity, value) captioned ``title``; all text escaped."""
    rows = "".join(
        f"<tr><th style=\"text-align:left\">{html.escape(str(label))}</th><td style=\"text-align:left\">{html.escape(str(value))}</td></tr>"
        for label, value in items
    )
    return f"<table><caption style=\"text-align:left\"><b>{html.escape(str(title))}</b></caption><tbody>{rows}</tbody></table>"


def html_grid(title: str, header: list[str], rows: list[list[str]], note: str = "") -> str:
    """An HTML table with a header row, captioned ``title`` and followed by an optional ``note``; all text escaped."""
    esc = html.escape
    head = "".join(f"<th>{esc(str(h))}</th>" for h in header)
    def cell(j, c):  # the first column names the row; the others hold numbers, right-aligned
        return f"<td>{esc(str(c))}</td>" if j == 0 else f"<td style=\"text-align:right\">{esc(str(c))}</td>"

    body = "".join("<tr>" + "".join(cell(j, c) for j, c in enumerate(row)) + "</tr>" for row in rows)
    tail = f"<p>{esc(note)}</p>" if note else ""
    return (f"<table><caption style=\"text-align:left\"><b>{esc(str(title))}</b></caption><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table>{tail}")


class Displayable:
    """Mixin: ``__repr__`` and ``_repr_html_`` from the subclass's ``_display() -> (title, items)``."""

    def _display(self) -> tuple[str, list[tuple[str, str]]]:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def __repr__(self) -> str:
        return text_block(*self._display())

    def _repr_html_(self) -> str:
        return html_table(*self._display())
