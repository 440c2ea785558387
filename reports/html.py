"""One self-contained HTML page from a Markdown document: ``report.html``, ``audit.html`` (and ``diff``).

    html_text = write_html_document(markdown_text, "Benchmark margin rule", {"figures/schedule.png": png_bytes})

The Markdown is rendered by markdown-it-py (CommonMark plus GitHub tables) with raw HTML switched off, so any
user string inside it (a title, a label, a file name) is text, never markup. The page opens anywhere, offline and
in print: every figure the Markdown references is embedded as a ``data:`` URI, a link or image to anything else
(another file, a URL) is rendered as its plain text, and the CSS is inline (no fonts, scripts or style sheets
from the network). Equations are readable text, as in the Markdown (with the signs <= and >= typeset). The output is a pure function of the inputs
(same input, byte-identical page).
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Mapping

from markdown_it import MarkdownIt

__all__ = ["write_html_document", "markdown_escape", "CSS"]

_MIME = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}

#: Inline style sheet: a readable column on screen, wide tables scroll; A4/Letter-friendly in print.
CSS = """
:root { color-scheme: light; }
body { font-family: "DejaVu Serif", "Georgia", "Times New Roman", serif; font-size: 16px; line-height: 1.45;
       color: #111; background: #fff; max-width: 64rem; margin: 2rem auto; padding: 0 1.5rem; }
h1 { font-size: 1.7rem; margin: 0 0 0.8rem; line-height: 1.2; }
h2 { font-size: 1.3rem; margin: 2rem 0 0.6rem; border-bottom: 1px solid #bbb; padding-bottom: 0.2rem; }
h3 { font-size: 1.1rem; margin: 1.4rem 0 0.5rem; }
p, li { max-width: 52rem; }
code { font-family: "DejaVu Sans Mono", "Consolas", monospace; font-size: 0.85em; background: #f3f3f3;
       padding: 0 0.2em; border-radius: 2px; overflow-wrap: anywhere; }
pre { background: #f6f6f6; border: 1px solid #ddd; padding: 0.6rem 0.8rem; overflow-x: auto; font-size: 0.8rem; line-height: 1.3; }
pre code { background: none; padding: 0; font-size: inherit; overflow-wrap: normal; }
.table-wrap { overflow-x: auto; margin: 0.8rem 0 1.2rem; }
table { border-collapse: collapse; font-size: 0.82rem; font-variant-numeric: tabular-nums; }
th, td { border-top: 1px solid #ccc; border-bottom: 1px solid #ccc; padding: 0.22rem 0.45rem; vertical-align: top; }
thead th { border-top: 2px solid #333; border-bottom: 1.5px solid #333; background: #f4f4f4; }
tbody tr:last-child td { border-bottom: 2px solid #333; }
td { overflow-wrap: break-word; }
td[style*="right"] { white-space: nowrap; }
th { font-weight: 600; }
blockquote { margin: 1rem 0; padding: 0.5rem 1rem; border-left: 4px solid #c0392b; background: #fdf2f0; }
img { display: block; max-width: 100%; height: auto; margin: 0.8rem auto 0.2rem; }
em { color: #333; }
@page { size: auto; margin: 16mm 14mm; }
@media print {
  body { font-size: 10pt; max-width: none; margin: 0; padding: 0; }
  h1 { font-size: 16pt; }
  h2 { font-size: 13pt; break-after: avoid; page-break-after: avoid; }
  h3 { break-after: avoid; page-break-after: avoid; }
  .table-wrap { overflow: visible; }
  table { font-size: 7.5pt; }
  th, td { padding: 0.12rem 0.3rem; }
  tr, img, pre, blockquote { break-inside: avoid; page-break-inside: avoid; }
  img { max-height: 100mm; width: auto; }
  code, pre { background: none; }
  a { color: inherit; text-decoration: none; }
}
""".strip()


def markdown_escape(text: str) -> str:
    """``text`` as literal Markdown text (CommonMark and GitHub): backslash-escapes what could start markup (emphasis,
    links, code, HTML, tables, math, strikethrough, entities; a heading, list or quote marker at the start), so a
    user string (a title, a file name) never turns into markup; an underscore inside a word stays as it is."""
    s = str(text).replace("\n", " ")
    s = re.sub(r"([\\`*\[\]<>|$~!])", r"\\\1", s)
    s = re.sub(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])", r"\\_", s)
    s = re.sub(r"&(?=#?[A-Za-z0-9]+;)", r"\\&", s)
    s = re.sub(r"^(\s*)(\d+)([.)])", r"\1\2\\\3", s)
    return re.sub(r"^(\s*)([#>+=-])", r"\1\\\2", s)


def _data_uri(name: str, data: bytes) -> str:
    suffix = name[name.rfind("."):].lower() if "." in name else ""
    mime = _MIME.get(suffix)
    if mime is None:
        raise ValueError(f"figure {name!r} has no known image type (one of {', '.join(sorted(_MIME))})")
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _renderer(figures: Mapping[str, bytes]) -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable("table")
    uris = {name: _data_uri(name, data) for name, data in figures.items()}

    def image(self, tokens, idx, options, env):
        tok = tokens[idx]
        alt = self.renderInlineAsText(tok.children or [], options, env)
        src = tok.attrGet("src") or ""
        if src not in uris:   # not embedded: never a reference to the network or to another file
            return html.escape(alt)
        return f'<img src="{uris[src]}" alt="{html.escape(alt, quote=True)}">'

    def link_open(self, tokens, idx, options, env):
        href = tokens[idx].attrGet("href") or ""
        keep = href.startswith("#")   # only in-page anchors stay links
        env.setdefault("_links", []).append(keep)
        return f'<a href="{html.escape(href, quote=True)}">' if keep else ""

    def link_close(self, tokens, idx, options, env):
        return "</a>" if env["_links"].pop() else ""

    def text(self, tokens, idx, options, env):   # <= and >= of the readable-text equations as the signs themselves
        return html.escape(tokens[idx].content).replace("&lt;=", "\u2264").replace("&gt;=", "\u2265")

    def table_open(self, tokens, idx, options, env):
        return '<div class="table-wrap"><table>\n'

    def table_close(self, tokens, idx, options, env):
        return "</table></div>\n"

    for name, fn in (("text", text), ("image", image), ("link_open", link_open), ("link_close", link_close),
                     ("table_open", table_open), ("table_close", table_close)):
        md.add_render_rule(name, fn)
    return md


def write_html_document(markdown_text: str, title: str, figures: Mapping[str, bytes] | None = None) -> str:
    """The HTML page (text) of ``markdown_text``, titled ``title`` (escaped), with every image whose path is a
    key of ``figures`` ({path as written in the Markdown: image bytes, PNG/SVG/JPEG}) embedded as a data URI."""
    body = _renderer(figures or {}).render(markdown_text, {})
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n"
        f"<style>\n{CSS}\n</style>\n</head>\n<body>\n<main>\n{body}</main>\n</body>\n</html>\n"
    )
