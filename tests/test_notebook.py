"""notebooks/throughput.ipynb runs from top to bottom (with tiny parameters)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces, raw sockets)")

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "throughput.ipynb"
TINY = """RATES = [20_000, 60_000]
SIZE = 64
DURATION = 0.2
SYSTEMS = ["mcr", "socat", "kernel"]
PLACEMENT = "B"
"""


def test_throughput_notebook_runs() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    (parameters,) = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    parameters.source = TINY
    client = nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute()
    printed = "".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.outputs)
    for system in ("mcr", "socat", "kernel"):
        assert f"{system} [" in printed, printed
    images = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert images, "the notebook drew no plot"
