"""Data flows one way (GUIDE.md, Architecture): the audit (``audit/``, installed as ``margin_design.audit``) analyses a
given rule and may call calibration, design and solvers, but never imports the rendering layer ``reports/``;
calibration, which produces the audit's inputs, never imports the audit; the audit's rendering module
``reports/audit.py`` writes files and figures and solves nothing itself."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
AUDIT_DIR = ROOT / "audit"


def imported_modules(path: Path, package: str) -> set[str]:
    """Every module a source file imports, at module level or inside a function, with relative imports resolved
    against ``package`` (the dotted name of the package holding the file)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                prefix = ".".join(base)
                mod = f"{prefix}.{node.module}" if node.module else prefix
            else:
                mod = node.module
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)   # ``from margin_design import reports``
    return out


def test_imported_modules_resolves_relative_and_lazy_imports(tmp_path):
    """The checker below sees what it must: relative imports one and two levels up, and imports inside functions."""
    src = tmp_path / "m.py"
    src.write_text("from .local import x\nfrom ..reports.figures import RC\n\ndef f():\n    from margin_design import reports\n")
    mods = imported_modules(src, "margin_design.audit")
    assert {"margin_design.audit.local", "margin_design.reports.figures", "margin_design.reports"} <= mods


@pytest.mark.parametrize("path", sorted(AUDIT_DIR.glob("*.py")), ids=lambda p: p.name)
def test_audit_never_imports_reports(path):
    mods = imported_modules(path, "margin_design.audit")
    bad = sorted(m for m in mods if m == "margin_design.reports" or m.startswith("margin_design.reports."))
    assert not bad, f"{path.relative_to(ROOT)} imports the rendering layer: {bad}"


@pytest.mark.parametrize("path", sorted((ROOT / "calibration").glob("*.py")), ids=lambda p: p.name)
def test_calibration_never_imports_the_audit(path):
    mods = imported_modules(path, "margin_design.calibration")
    bad = sorted(m for m in mods if m == "margin_design.audit" or m.startswith("margin_design.audit."))
    assert not bad, f"{path.relative_to(ROOT)} imports the audit: {bad}"


def test_audit_package_holds_the_audit_modules():
    """The audit lives in audit/ (not calibration/audit/), with the computation of build_audit in audit/build.py."""
    assert not (ROOT / "calibration" / "audit").exists()
    assert {"build.py", "rules.py", "local.py", "simulate.py", "backtest.py", "portfolio.py"} <= {p.name for p in AUDIT_DIR.glob("*.py")}


def test_reports_audit_renders_only():
    """reports/audit.py loads no design and runs no solver: the audit it renders was computed by margin_design.audit."""
    mods = imported_modules(ROOT / "reports" / "audit.py", "margin_design.reports")
    bad = sorted(m for m in mods if m.split(".")[:2] in (["margin_design", "solvers"], ["margin_design", "design"]))
    assert not bad, bad
    assert "margin_design.audit.build" in mods


def test_importing_the_audit_loads_no_rendering():
    """``import margin_design.audit`` (the analysis, build_audit included) imports neither reports nor matplotlib."""
    code = ("import sys, margin_design.audit as a; assert callable(a.build_audit); "
            "print(sorted(m for m in sys.modules if m == 'matplotlib' or m.startswith(('matplotlib.', 'margin_design.reports'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT / "tests")
    assert out.stdout.strip() == "[]", out.stdout
