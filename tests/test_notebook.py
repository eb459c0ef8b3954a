"""The notebooks in notebooks/ run from top to bottom (with tiny parameters) and reach their own conclusions.

Each notebook has one cell tagged "parameters", which the test replaces
with small values. The lab-experiment notebooks leave a SUMMARY dict of
what they measured; the test appends a cell that prints it as JSON and
checks it, so a notebook whose experiment went wrong fails here, not only
one that raised.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from mcr.lab.relays import kernel_multicast_routing

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces, raw sockets)")

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
SUMMARY_MARK = "NOTEBOOK-SUMMARY "
TINY = """RATES = [20_000, 60_000]
SIZE = 64
DURATION = 0.2
SYSTEMS = ["mcr", "socat", "kernel"]
PLACEMENT = "B"
"""


def run_notebook(name: str, parameters: str, summary: bool = False) -> tuple[str, int, dict | None]:
    """Executes notebooks/`name` with its parameters cell replaced; (printed text, PNG count, SUMMARY)."""
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    (cell,) = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    cell.source = parameters
    if summary:
        notebook.cells.append(nbformat.v4.new_code_cell(f"import json; print({SUMMARY_MARK!r} + json.dumps(SUMMARY))"))
    client = nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    printed = "".join(o.get("text", "") for o in outputs)
    images = sum("image/png" in o.get("data", {}) for o in outputs)
    found = None
    if summary:
        (line,) = [x for x in printed.splitlines() if x.startswith(SUMMARY_MARK)]
        found = json.loads(line[len(SUMMARY_MARK):])
    return printed, images, found


def lab_namespaces(prefix: str) -> set[str]:
    out = subprocess.run(["ip", "-j", "netns", "list"], check=True, capture_output=True, text=True, timeout=30).stdout
    return {entry["name"] for entry in json.loads(out or "[]") if entry["name"].startswith(prefix + "-")}


def test_throughput_notebook_runs() -> None:
    printed, images, _ = run_notebook("throughput.ipynb", TINY)
    for system in ("mcr", "socat", "kernel"):
        if system == "kernel" and not kernel_multicast_routing():
            assert "kernel: not measured: this kernel has no multicast routing" in printed, printed
            continue
        assert f"{system} [" in printed, printed
    assert images, "the notebook drew no plot"


def test_fanout_notebook_every_output_gets_the_stream() -> None:
    before = lab_namespaces("mcrf")
    printed, images, summary = run_notebook("fanout.ipynb", """OUTPUTS = [1, 2, 4]
RATE = 5_000
SIZE = 128
DURATION = 0.3
MIN_FRACTION = 0.95
""", summary=True)
    assert summary["outputs"] == [1, 2, 4], printed
    assert summary["min_fraction"] >= 0.95, printed
    assert summary["counters_agree"], printed
    # Delivered rate grows with the outputs: 4 outputs deliver well over twice what 1 does.
    assert summary["delivered_pps"][2] > 2.5 * summary["delivered_pps"][0], printed
    assert summary["plotted"] and images, "the notebook drew no plot"
    assert lab_namespaces("mcrf") == before, "the notebook left namespaces behind"


def test_join_leave_notebook_measures_both_latencies_within_its_bounds() -> None:
    before = lab_namespaces("mcrj")
    printed, images, summary = run_notebook("join_leave.ipynb", """CYCLES = 2
QUIET = 0.6
HOLD = 0.8
RATE = 200
LMQI = 0.2
JOIN_BOUND = 1.0
LEAVE_BOUND = 1.0
""", summary=True)
    assert len(summary["join_latency"]) == len(summary["leave_latency"]) == 2, printed
    assert summary["before_first_join"] == 0, printed
    assert all(0 <= j < summary["join_bound"] for j in summary["join_latency"]), printed
    # A leave is not instant: MCR asks twice, LMQI apart, before it prunes (LMQT 0.4 s).
    assert all(0.2 < x < summary["leave_bound"] for x in summary["leave_latency"]), printed
    assert summary["host_got"] > 0 and summary["on_link"] >= summary["host_got"], printed
    assert summary["plotted"] and images, "the notebook drew no plot"
    assert lab_namespaces("mcrj") == before, "the notebook left namespaces behind"


def test_link_flap_notebook_recovers_from_both_flaps() -> None:
    before = lab_namespaces("mcrl")
    printed, images, summary = run_notebook("link_flap.ipynb", """LINKS = ["output", "input"]
RATE = 500
DURATION = 1.2
DOWN_AT = 0.4
DOWN_FOR = 0.3
RECOVERY_BOUND = 0.5
""", summary=True)
    results = summary["results"]
    assert [r["link"] for r in results] == ["output", "input"], printed
    for r in results:
        assert r["recovery"] is not None and r["recovery"] < summary["recovery_bound"], printed
        assert r["missing_after_recovery"] == 0 and r["reordered"] == 0, printed
        assert r["while_down"] == 0, printed
        # The outage shows as a gap about as long as the link was down, not as a stall of the whole stream.
        assert summary["down_for"] * 0.8 < r["gap"] < summary["down_for"] + 0.3, printed
    assert summary["drops"].get("output_down", 0) > 0 and summary["drops"].get("rx_error", 0) >= 1, printed
    assert summary["plotted"] and images, "the notebook drew no plot"
    assert lab_namespaces("mcrl") == before, "the notebook left namespaces behind"
