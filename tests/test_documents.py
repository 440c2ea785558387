"""Documents that open anywhere (issue 11, section 3): report.html, report.tex/report.pdf, audit.md/html, diff.md/html.

The PDF is compiled by pdflatex, its first page rendered by pdftoppm and read back by pdftotext; the HTML page is
rendered and read back (--dump-dom) by headless Chromium. Without these tools the tests skip, except under CI
(environment variable CI set), where a missing tool fails: `.ci/system_deps.sh` installs them.
"""

from __future__ import annotations

import html as html_lib
import io
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
from markdown_it import MarkdownIt

from margin_design.audit import AuditOptions, build_audit, load_rule
from margin_design.cli import main as cli_main
from margin_design.design import load_problem
from margin_design.reports.audit import audit_files
from margin_design.reports.citation import CITATION, EQUATIONS, TITLE, UNDESCRIBED, equation_numbers
from margin_design.reports.html import markdown_escape, write_html_document
from margin_design.reports.latex_doc import compile_pdf
from margin_design.reports.report import ReportOptions, build_report, report_files
from margin_design.reports.rule_data import RuleData
from margin_design.solvers import solve

from conftest import EXAMPLES

#: Standard deviation of the grey levels (0-255) above which a rendered page is not blank; a blank page has 0.
NOT_BLANK_STD = 10.0
#: Share of pixels darker than near-white on a page with text and figures (a blank page has 0).
MIN_INK_SHARE = 0.005
NASTY_TITLE = r"Rule_v2 100% & #1 $x$ {a} \b ^c ~d <script>alert(1)</script> [x](https://example.com) *em*"
CHROMIUM_TIMEOUT = 120


def need(tool: str) -> str:
    """The tool's path; skip without it, except under CI where the set-up must have installed it."""
    path = shutil.which(tool)
    if path is None:
        msg = f"{tool} is not installed (run .ci/system_deps.sh as root)"
        if os.environ.get("CI"):
            pytest.fail(msg + "; CI must install it")
        pytest.skip(msg)
    return path


def _not_blank(png: bytes) -> tuple[float, float]:
    from PIL import Image

    grey = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=float)
    return float(grey.std()), float((grey < 200).mean())


@pytest.fixture(scope="module")
def docs():
    """Report files (with figures) of the two examples a committee reads, and of the benchmark under a hostile title."""
    out = {}
    for name in ("benchmark", "cap_existing_schedule"):
        data = RuleData.from_schedule(solve(load_problem(EXAMPLES / f"{name}.toml")))
        rep = build_report(data, ReportOptions(tick=0.0005, effective_date="2026-07-01"))
        out[name] = (rep, report_files(rep))
        if name == "benchmark":   # the figures do not carry the title: reuse the benchmark's
            nasty = build_report(data, ReportOptions(tick=0.0005, title=NASTY_TITLE))
            figs = {k: v for k, v in out[name][1].items() if k.startswith("figures/")}
            nasty_files = report_files(nasty, figures=False)
            nasty_files.update(figs)
            from margin_design.reports.report import report_html

            nasty_files["report.html"] = report_html(nasty, nasty_files).encode("utf-8")
            out["nasty"] = (nasty, nasty_files)
    return out


def _text(files, name):
    return files[name].decode("utf-8")


# ------------------------------------------------------------------ HTML writer (no tools needed)

def test_html_writer_embeds_figures_and_drops_every_outside_reference():
    png = b"\x89PNG\r\n\x1a\nfake"
    md = (
        "# T\n\n![fig](figures/a.png)\n\n![remote](https://example.com/x.png) ![other](figures/b.png)\n\n"
        "[a link](http://example.com) [pdf](figures/a.pdf) [anchor](#t) <https://auto.example.com>\n\n"
        "<script>alert(1)</script> <img src=\"//cdn.example.com/x.png\">\n\n| a | b |\n|---|---:|\n| 1 | 2 |\n"
    )
    page = write_html_document(md, "<T & T>", {"figures/a.png": png})
    assert "<title>&lt;T &amp; T&gt;</title>" in page
    assert re.findall(r'<img src="([^"]*)"', page) == ["data:image/png;base64,iVBORw0KGgpmYWtl"]
    assert re.findall(r'href="([^"]*)"', page) == ["#t"]
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "remote" in page and "other" in page            # images not embedded become their alt text
    assert '<div class="table-wrap"><table>' in page and "@media print" in page


@pytest.mark.parametrize("s", [NASTY_TITLE, "_x_ *y* `z` # h", "1. item", "- item", "a | b", "&amp; &#38; S&P", "~~s~~ $m$", "c_eff M_fb"])
def test_markdown_escape_renders_the_string_itself(s):
    rendered = MarkdownIt("commonmark").enable("table").renderInline(markdown_escape(s))
    assert rendered == html_lib.escape(s, quote=False).replace('"', "&quot;")


# ------------------------------------------------------------------ report.html

@pytest.mark.parametrize("name", ["benchmark", "cap_existing_schedule"])
def test_report_html_is_self_contained_with_every_block(docs, name):
    rep, files = docs[name]
    page = _text(files, "report.html")
    pngs = sorted(k for k in files if k.startswith("figures/") and k.endswith(".png"))
    srcs = re.findall(r'<img src="([^"]*)"', page)
    assert len(srcs) == len(pngs) >= 4 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"<script|<link|@import|url\(", page)
    for heading in ("Parameters", "Rule table", "Figures", "Certificate", "Provenance", "Reference", "Equation numbers used"):
        assert f"{heading}</h2>" in page, heading
    assert html_lib.escape(TITLE) in page and "@media print" in page
    first = rep.table.rows[0]
    assert f"{100 * first['vol_annual']:.2f}" in page                    # the rule table's first vol


def test_hostile_title_is_text_in_html_and_markdown(docs):
    _, files = docs["nasty"]
    page = _text(files, "report.html")
    assert "<script>" not in page and "&lt;script&gt;" in page       # the URL in the title stays text, never a link
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    h1 = re.search(r"<h1>(.*?)</h1>", page).group(1)
    assert html_lib.unescape(h1) == NASTY_TITLE
    md_h1 = _text(files, "report.md").splitlines()[0]
    assert MarkdownIt("commonmark").renderInline(md_h1[2:]) == html_lib.escape(NASTY_TITLE, quote=False).replace('"', "&quot;")


# ------------------------------------------------------------------ citation and equation numbers

@pytest.mark.parametrize("doc", ["report.md", "report_body.tex"])
def test_every_document_cites_the_paper_and_glosses_each_equation_number(docs, doc):
    for name in ("benchmark", "cap_existing_schedule"):
        text = _text(docs[name][1], doc)
        assert (CITATION if doc.endswith(".md") else "Impossibility Theorem for Price-Based Risk Constraints") in text
        numbers = equation_numbers(text)
        assert 40 in numbers or name == "cap_existing_schedule"
        assert numbers and all(n in EQUATIONS for n in numbers), [n for n in numbers if n not in EQUATIONS]
        for n in numbers:
            assert EQUATIONS[n] in text.replace("\\_", "_") or doc.endswith(".tex"), n
        assert UNDESCRIBED.format(n="") not in text.replace("()", "")


def test_equation_numbers_reads_ranges_and_lists():
    assert equation_numbers("(16)-(18), (3), (34); (68)--(72); not (D.2) or (100) or f(1)") == [3, 16, 18, 34, 68, 72]


# ------------------------------------------------------------------ LaTeX: complete document and fragment

def test_tex_is_a_complete_document_around_the_fragment(docs):
    files = docs["benchmark"][1]
    doc, body = _text(files, "report.tex"), _text(files, "report_body.tex")
    assert doc.lstrip("% \n").count("\\documentclass") == 1 and doc.rstrip().endswith("\\end{document}")
    assert body.rstrip() in doc and "\\documentclass" not in body and "\\begin{document}" not in body


def _pdf_text(pdf: bytes, tmp_path, first=None) -> str:
    need("pdftotext")
    p = tmp_path / "doc.pdf"
    p.write_bytes(pdf)
    args = ["pdftotext", "-layout"] + (["-f", "1", "-l", str(first)] if first else []) + [str(p), "-"]
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def _render_page1(pdf: bytes, tmp_path) -> bytes:
    need("pdftoppm")
    p = tmp_path / "doc.pdf"
    p.write_bytes(pdf)
    subprocess.run(["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1", "-singlefile", str(p), str(tmp_path / "page1")], check=True)
    return (tmp_path / "page1.png").read_bytes()


@pytest.mark.parametrize("name", ["benchmark", "cap_existing_schedule", "nasty"])
def test_report_tex_compiles_renders_and_holds_the_rule_table(docs, name, tmp_path):
    need("pdflatex")
    rep, files = docs[name]
    pdf = compile_pdf({k: v for k, v in files.items() if k == "report.tex" or k.endswith(".pdf")})
    assert pdf.startswith(b"%PDF")
    std, ink = _not_blank(_render_page1(pdf, tmp_path))
    assert std > NOT_BLANK_STD and ink > MIN_INK_SHARE, (std, ink)
    text = _pdf_text(pdf, tmp_path)
    page1 = _pdf_text(pdf, tmp_path, first=1)
    # The escaped title prints as typed; OT1 draws _ as a rule and ^ ~ as accents, which pdftotext reads as
    # a space and as the accent characters U+02C6, U+02DC: compare without those three.
    def norm(t):
        return " ".join(re.sub(r"[_^~\u02c6\u02dc]", " ", t).split())
    assert norm(rep.title) in norm(page1)
    for row in rep.table.rows:                                         # every row of the rule table
        assert f"{100 * row['vol_annual']:.2f}" in text
    assert "An Impossibility Theorem for Price-Based Risk Constraints" in " ".join(text.split())


def test_report_pdf_is_byte_identical_across_compiles(docs):
    need("pdflatex")
    files = docs["benchmark"][1]
    src = {k: v for k, v in files.items() if k == "report.tex" or k.endswith(".pdf")}
    assert compile_pdf(src) == compile_pdf(src)


def test_a_latex_error_is_one_sentence(tmp_path):
    need("pdflatex")
    from margin_design.errors import InputError

    with pytest.raises(InputError, match=r"^pdflatex could not compile report\.tex: Undefined control sequence\.$"):
        compile_pdf({"report.tex": "\\documentclass{article}\\begin{document}\\nosuchmacro\\end{document}\n"})


# ------------------------------------------------------------------ report.html in Chromium

def _chromium(args, tmp_path):
    exe = need("chromium")
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
           f"--user-data-dir={tmp_path / 'profile'}", *args]
    return subprocess.run(cmd, capture_output=True, timeout=CHROMIUM_TIMEOUT, check=True)


@pytest.mark.parametrize("name", ["benchmark", "cap_existing_schedule"])
def test_report_html_renders_in_chromium_with_the_rule_table(docs, name, tmp_path):
    rep, files = docs[name]
    page = tmp_path / "report.html"
    page.write_bytes(files["report.html"])
    shot = tmp_path / "shot.png"
    _chromium([f"--screenshot={shot}", "--window-size=1000,1800", page.as_uri()], tmp_path)
    std, ink = _not_blank(shot.read_bytes())
    assert std > NOT_BLANK_STD and ink > MIN_INK_SHARE, (std, ink)
    dom = _chromium(["--dump-dom", page.as_uri()], tmp_path).stdout.decode("utf-8")
    tables = re.findall(r"<table>.*?</table>", dom, flags=re.S)
    rule = [t for t in tables if "Annual vol" in t and "Margin" in t]
    assert rule, "rule table missing from the rendered page"
    for row in rep.table.rows:
        assert f"{100 * row['vol_annual']:.2f}" in rule[0]


# ------------------------------------------------------------------ CLI --pdf

def test_report_cli_pdf_writes_report_pdf(docs, tmp_path):
    need("pdflatex")
    src = tmp_path / "schedule.json"                    # a saved schedule: the CLI does not solve again
    src.write_bytes(docs["benchmark"][1]["schedule.json"])
    out = tmp_path / "rep"
    assert cli_main(["report", str(src), "--out", str(out), "--pdf", "--title", "A_b & c"]) == 0
    for f in ("report.pdf", "report.tex", "report_body.tex", "report.html", "report.md"):
        assert (out / f).is_file(), f
    assert (out / "report.pdf").read_bytes().startswith(b"%PDF")


def test_report_cli_pdf_without_pdflatex_is_one_sentence(tmp_path, monkeypatch, capsys):
    import margin_design.reports.latex_doc as latex_doc

    monkeypatch.setattr(latex_doc.shutil, "which", lambda name: None)
    out = tmp_path / "rep"
    assert cli_main(["report", str(EXAMPLES / "benchmark.toml"), "--out", str(out), "--pdf"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--pdf needs pdflatex" in err and len(err.splitlines()) == 1 and not out.exists()


# ------------------------------------------------------------------ audit.md / audit.html

@pytest.fixture(scope="module")
def audit_docs():
    rule = load_rule("2.326*sqrt(2*r)", name="VaR_99 2-day *draft*")
    audit = build_audit(rule, EXAMPLES / "benchmark.toml", AuditOptions(simulate=False))
    return audit, audit_files(audit)


def test_audit_markdown_and_html(audit_docs, tmp_path):
    audit, files = audit_docs
    md, page = _text(files, "audit.md"), _text(files, "audit.html")
    assert md.startswith("# Margin rule audit: VaR_99 2-day \\*draft\\*\n")
    assert "## Summary: rule vs first-best vs capped optimum" in md and CITATION in md
    assert "| input |" in md                                       # the risk-input text table became a Markdown table
    numbers = equation_numbers(md)
    assert 16 in numbers and all(n in EQUATIONS for n in numbers)
    pngs = [k for k in files if k.startswith("figures/") and k.endswith(".png")]
    srcs = re.findall(r'<img src="([^"]*)"', page)
    assert len(srcs) == len(pngs) >= 1 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page) and "<script" not in page
    assert "<h1>Margin rule audit: VaR_99 2-day *draft*</h1>" in page
    cost = audit.costs
    assert f"{cost['capped']:.8g}" in page                         # a number of the summary reaches the page


# ------------------------------------------------------------------ diff.md / diff.html

DIFF_RULE_NAME = "VaR_99 *draft* <b>x</b>"


@pytest.fixture(scope="module")
def diff_docs(docs, tmp_path_factory):
    """diff of a VaR formula (hostile name) against the benchmark's published rule_table.json, with the benchmark's config."""
    from margin_design.reports.diff import build_diff, diff_files

    folder = tmp_path_factory.mktemp("diffdoc")
    table = folder / "rule_table.json"
    table.write_bytes(docs["benchmark"][1]["rule_table.json"])
    old = load_rule("2.326*sqrt(2*r)", name=DIFF_RULE_NAME)
    d = build_diff("2.326*sqrt(2*r)", str(table), market=str(EXAMPLES / "benchmark.toml"), old_rule=old)
    return d, diff_files(d)


def test_diff_markdown_and_html_are_self_contained_and_cite_the_paper(diff_docs):
    from margin_design.reports.diff import DIFF_FILES

    d, files = diff_docs
    assert set(files) == set(DIFF_FILES)
    md, page = _text(files, "diff.md"), _text(files, "diff.html")
    # the Markdown ends with the full reference and glosses every equation number it uses
    assert md.rstrip().endswith("|") and "## Reference" in md and CITATION.replace("*", "\\*") in md
    numbers = equation_numbers(md)
    assert {16, 18, 30, 32} <= set(numbers) and all(n in EQUATIONS for n in numbers), numbers
    for n in numbers:
        assert EQUATIONS[n] in md, n
    # one figure, embedded; nothing from the network; the hostile name is text
    srcs = re.findall(r'<img src="([^"]*)"', page)
    assert len(srcs) == 1 and srcs[0].startswith("data:image/png;base64,")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"<script|<link|@import|url\(", page)
    assert "<b>x</b>" not in page and "VaR_99 *draft* &lt;b&gt;x&lt;/b&gt;" in page
    for heading in ("Summary", "Design cost on benchmark.toml", "Figure", "Change at each point", "Reference", "Equation numbers used"):
        assert re.search(rf"<h2>{re.escape(heading)}[^<]*</h2>", page), heading
    assert "<title>Rule comparison</title>" in page and "@media print" in page
    c = d.comparison
    assert f"{100 * c.change[0]:+.4f}" in page                          # a number of the per-point table reaches the page


def test_diff_html_renders_in_chromium_with_the_comparison_table(diff_docs, tmp_path):
    d, files = diff_docs
    page = tmp_path / "diff.html"
    page.write_bytes(files["diff.html"])
    shot = tmp_path / "shot.png"
    _chromium([f"--screenshot={shot}", "--window-size=1000,2400", page.as_uri()], tmp_path)
    std, ink = _not_blank(shot.read_bytes())
    assert std > NOT_BLANK_STD and ink > MIN_INK_SHARE, (std, ink)
    dom = _chromium(["--dump-dom", page.as_uri()], tmp_path).stdout.decode("utf-8")
    tables = [t for t in re.findall(r"<table>.*?</table>", dom, flags=re.S) if "Change (margin points)" in t]
    assert tables, "the per-point comparison table is missing from the rendered page"
    c = d.comparison
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", tables[0])
    for i in range(c.vol_daily.size):
        assert f"{100 * c.margin_new[i]:.4f}" in cells and f"{100 * c.margin_old[i]:.4f}" in cells
    assert re.search(r'<img src="data:image/png;base64,', dom)


def test_portfolio_report_with_steps_compiles(tmp_path):
    """The portfolio paragraphs, the per-contract table (TeX headers) and the step-table jumps compile too."""
    need("pdflatex")
    data = RuleData.from_schedule(solve(load_problem(EXAMPLES / "portfolio_long.toml")))
    rep = build_report(data, ReportOptions(tick=0.0005, steps=6, title="Portfolio_long 50% & co"))
    files = report_files(rep)
    pdf = compile_pdf({k: v for k, v in files.items() if k == "report.tex" or k.endswith(".pdf")})
    text = " ".join(_pdf_text(pdf, tmp_path).split())
    assert "Step table jumps" in text and "Portfolio" in text
    for asset in rep.parameters["portfolio"]["assets"]:
        assert asset in text
    for doc in ("report.md", "report_body.tex"):
        numbers = equation_numbers(_text(files, doc))
        assert 88 in numbers and all(n in EQUATIONS for n in numbers)


def test_plain_text_math_is_not_taken_for_markup_in_html():
    """The prose and tables write math as plain text (M_-, (.)_+, sigma_{i+1}, 2*alpha): in report.html it must read as
    typed, not as emphasis (a missing escape turned half of the design paragraph into italics)."""
    data = RuleData.from_schedule(solve(load_problem(EXAMPLES / "liquidation.toml")))
    page = report_files(build_report(data, ReportOptions(tick=0.0005)), figures=False)
    from margin_design.reports.report import report_html

    text = html_lib.unescape(re.sub(r"<[^>]+>", "", report_html(build_report(data, ReportOptions(tick=0.0005)), page)))
    for typed in ("lambda_L C(c_eff (M - M_-)_+) with lambda_L = 0.2", "K (sigma_{i+1} - sigma_i)",
                  "K = 1 * (2*alpha + kappa)/(alpha^2 * c_eff)", "E[l(D - M)] + kappa_M M"):
        assert typed in text, typed
