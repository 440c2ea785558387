"""``audit.md`` and ``audit.html``: the audit of a margin rule as a document a committee can read.

The text is the audit's own :meth:`~margin_design.audit.Audit.summary` (one source, not a second wording):
each paragraph of the summary becomes a section, its indented lines a list, and its aligned plain-text tables
(:func:`~margin_design.calibration.tables.text_table`) Markdown tables, cut at the column positions of the table's
dash rule. Then the figures (linked in the Markdown, embedded in the HTML), the portfolio block of a portfolio
audit, the reference and the meaning of every equation number used (:mod:`~margin_design.reports.citation`).
"""

from __future__ import annotations

import re

from margin_design.reports.citation import markdown_references
from margin_design.reports.html import markdown_escape, write_html_document
from margin_design.reports.table import markdown_table

__all__ = ["audit_markdown", "audit_html", "AUDIT_TITLE", "FIGURE_CAPTIONS"]

AUDIT_TITLE = "Margin rule audit"

#: Audit figure (as written by render_audit_figures) -> caption.
FIGURE_CAPTIONS = {
    "figures/slope_vs_cap.png": "Slope of the rule against the manipulation-proof cap, state by state; states over the cap marked.",
    "figures/profit_vs_q.png": "Simulated expected profit of the round trip against the trigger size q, with Lemma 5's bound.",
    "figures/backtest.png": "Margin paths of the rule, the capped optimum g* and the first-best through the price history.",
}

_DASHES = re.compile(r"^-+( +-+)*$")


def _columns(dash_line: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in re.finditer(r"-+", dash_line)]


def _table_md(lines: list[str]) -> str:
    """An aligned text table (header, dash rule, rows) as a Markdown table; cells cut at the dash columns."""
    cols = _columns(lines[1])
    starts = [a for a, _ in cols] + [None]

    def cells(line: str) -> list[str]:
        return [line[starts[j] : (starts[j + 1] if starts[j + 1] is not None else None)].strip() for j in range(len(cols))]

    header, rows = cells(lines[0]), [cells(ln) for ln in lines[2:]]
    align = [":---"] + ["---:"] * (len(cols) - 1)
    return markdown_table([markdown_escape(h) for h in header], [[markdown_escape(c) for c in r] for r in rows], align)


def _block_md(block: list[str], heading: str) -> str:
    """One paragraph of the summary: heading, then its lines as list items and its text tables as tables."""
    title, rest = block[0].rstrip(":"), ""
    if len(title) > 60:   # a long first line: a short heading, the rest as its opening sentence
        cut = next((m.start() for m in re.finditer(": ", title)
                    if title[: m.start()].count("(") == title[: m.start()].count(")")), -1)   # not inside parentheses
        if cut > 0:
            title, rest = title[:cut], title[cut:].lstrip(": ").strip()
    out = [f"{heading} {markdown_escape(title)}\n\n"] + ([f"{markdown_escape(rest)}.\n\n"] if rest else [])
    items: list[str] = []
    i = 1
    while i < len(block):
        if i + 1 < len(block) and _DASHES.match(block[i + 1].strip()) and block[i + 1].startswith("-"):
            end = i + 2
            while end < len(block) and block[end].strip() and not block[end].startswith("  "):
                end += 1
            if items:
                out.append("".join(f"- {markdown_escape(x)}\n" for x in items) + "\n")
                items = []
            out.append(_table_md(block[i:end]) + "\n")
            i = end
            continue
        items.append(block[i].strip())
        i += 1
    if items:
        out.append("".join(f"- {markdown_escape(x)}\n" for x in items) + "\n")
    return "".join(out)


def audit_markdown(audit, figures=()) -> str:
    """``audit.md``: the summary as sections and tables, the ``figures`` (paths), the portfolio block, the reference."""
    from margin_design.reports.audit import portfolio_markdown

    blocks, cur = [], []
    for line in audit.summary().splitlines():
        if line.strip():
            cur.append(line)
        elif cur:
            blocks.append(cur)
            cur = []
    if cur:
        blocks.append(cur)
    parts = [f"# {AUDIT_TITLE}: {markdown_escape(audit.rule.name)}\n\n",
             "Audit of a given margin rule against the manipulation-proof slope cap and the capped optimum g* of Nicolai (2026); "
             "every number below is also in `audit.json`, `states.csv` and `jumps.csv`.\n\n"]
    head = blocks[0]
    parts.append(f"{markdown_escape(head[0])}.\n\n")
    parts.append(_block_md(["Rule, market and risk input"] + head[1:], "##"))
    for b in blocks[1:]:
        parts.append(_block_md(b, "##"))
    if figures:
        parts.append("## Figures\n\n")
        for path in figures:
            cap = FIGURE_CAPTIONS.get(path, path)
            parts.append(f"![{cap}]({path})\n\n*Figure: {cap}*\n\n")
    if audit.portfolio is not None:
        pf = portfolio_markdown(audit)
        parts.append("\n".join(("#" + ln) if ln.startswith("#") else ln for ln in pf.splitlines()) + "\n")
    md = "".join(parts)
    return md + markdown_references(md)


def audit_html(markdown_text: str, rule_name: str, figures: dict[str, bytes]) -> str:
    """``audit.html``: ``audit.md`` with its figures embedded (:func:`~margin_design.reports.html.write_html_document`)."""
    return write_html_document(markdown_text, f"{AUDIT_TITLE}: {rule_name}", figures)
