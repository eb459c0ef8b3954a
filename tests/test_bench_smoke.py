"""The benchmark harness runs end to end with tiny counts (the numbers are not checked)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces, raw sockets)")

ROOT = Path(__file__).resolve().parent.parent


def namespaces() -> set[str]:
    out = subprocess.run(["ip", "-j", "netns", "list"], capture_output=True, text=True, timeout=30, check=True).stdout
    return {n["name"] for n in json.loads(out or "[]")}


def test_smoke_profile_writes_json_markdown_and_plots(tmp_path: Path) -> None:
    before = namespaces()
    run = subprocess.run([sys.executable, "-m", "benchmarks.run", "--profile", "smoke", "--out", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["profile"] == "smoke" and results["machine"]["cores"] >= 1
    tested = {(r["test"], r["system"]) for r in results["rows"]}
    for system in ("mcr", "socat", "kernel"):
        assert {("ndr", system), ("latency", system)} <= tested, tested
    assert ("fanout", "mcr") in tested
    latency = [r["result"] for r in results["rows"] if r["test"] == "latency" and r["system"] == "mcr"]
    assert latency[0]["sent"] > 0 and latency[0]["delivered"] > 0
    report = (tmp_path / "report.md").read_text()
    assert "## No-drop rate, one stream" in report and "MCR/kernel" in report
    assert {("ndr", "mcr-1w"), ("ndr", "mcr-2w")} <= tested  # mcr daemon with 1 and 2 workers
    assert "## Workers" in report
    assert list(tmp_path.glob("*.png"))
    leftover = {n for n in namespaces() - before if n.startswith(("mcrb-", "mcrf-", "mcrw-"))}
    assert not leftover, f"namespaces left behind: {leftover}"
