"""The walkthrough notebook (examples/walkthrough.ipynb) runs from top to bottom, so it cannot rot.

It is executed with nbclient on an ipykernel running this interpreter, in a temporary copy of the examples
folder (the notebook writes its outputs next to itself). A cell that raises fails the test. The committed file
must hold no outputs: it is documentation, and outputs would go stale.
"""

from __future__ import annotations

import json
import shutil
import sys

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import EXAMPLES

NOTEBOOK = EXAMPLES / "walkthrough.ipynb"
#: Seconds a single cell may take (the slowest, the report with its figures, takes a few seconds).
CELL_TIMEOUT = 600
#: Figures the notebook draws (schedule against first-best, state weights, the audited rule's slope against the cap).
FIGURES = 3


def test_committed_notebook_has_no_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)
    # every code cell is explained by the markdown before it
    kinds = [c.cell_type for c in nb.cells]
    assert all(kinds[i - 1] == "markdown" or kinds[i - 2] == "markdown" for i, k in enumerate(kinds) if k == "code")


def test_notebook_runs(tmp_path, monkeypatch):
    work = tmp_path / "examples"
    shutil.copytree(EXAMPLES, work)
    # a kernelspec named python3 that runs this interpreter, ahead of any other on the machine
    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (margin-design tests)", "language": "python",
    }))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend renders the figures
    nb = nbformat.read(work / "walkthrough.ipynb", as_version=4)
    client = NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3", resources={"metadata": {"path": str(work)}})
    client.execute()  # raises CellExecutionError naming the cell if one fails
    outputs = {i: c.outputs for i, c in enumerate(nb.cells) if c.cell_type == "code"}
    assert all(o.get("output_type") != "error" for outs in outputs.values() for o in outs)
    figures = sum("image/png" in o.get("data", {}) for outs in outputs.values() for o in outs)
    assert figures == FIGURES
    # what the notebook promises to write
    out = work / "walkthrough-out"
    assert (out / "sp500_design.toml").is_file() and (out / "liquidation-report" / "rule_table.csv").is_file()
    assert (out / "audit" / "summary.txt").is_file() and (out / "diff" / "diff.csv").is_file()
    # the published rule is certified within the cap, and its printed cost is the one the report stores
    printed = "".join(o.get("text", "") for outs in outputs.values() for o in outs if o.get("output_type") == "stream")
    assert "monotone and within the cap: PASS" in printed and "J(published) - J(g*) = " in printed
    table = json.loads((out / "liquidation-report" / "rule_table.json").read_text())
    assert table["status"] == "published rule" and table["rule_id"][:12] in printed
    # the schedule's repr is the short one, shown as an HTML table in Jupyter
    first = next(o for o in outputs[sorted(outputs)[1]] if o.get("output_type") == "execute_result")
    assert "text/html" in first["data"] and "certified" in first["data"]["text/plain"]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
