"""The benchmark harness runs end to end with tiny counts (the numbers are not checked)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mcr.lab.relays import kernel_multicast_routing

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
        if system == "kernel" and not kernel_multicast_routing():  # reported, not measured
            assert any("CONFIG_IP_MROUTE" in n["why"] for n in results["not_measured"]), results["not_measured"]
            continue
        assert {("ndr", system), ("latency", system)} <= tested, tested
    assert ("fanout", "mcr") in tested
    latency = [r["result"] for r in results["rows"] if r["test"] == "latency" and r["system"] == "mcr"]
    assert latency[0]["sent"] > 0 and latency[0]["delivered"] > 0
    report = (tmp_path / "report.md").read_text()
    assert "## No-drop rate, one stream" in report and "MCR/kernel" in report
    assert {("ndr", "mcr-1w"), ("ndr", "mcr-2w")} <= tested  # mcr daemon with 1 and 2 workers
    assert "## Workers" in report
    assert {("wildcards", "mcr-exact"), ("wildcards", "mcr-exact+wildcards"), ("wildcards", "mcr-range-hit"),
            ("wildcards-cpu", "mcr-exact")} <= tested
    assert "## Any-port and range rules" in report
    assert list(tmp_path.glob("*.png"))
    leftover = {n for n in namespaces() - before if n.startswith(("mcrb-", "mcrf-", "mcrw-", "mcrs-", "mcrx-"))}
    assert not leftover, f"namespaces left behind: {leftover}"


def read_sysfs(ns: str, path: str) -> str:
    return subprocess.run(["ip", "netns", "exec", ns, "cat", path], capture_output=True, text=True, timeout=30,
                          check=True).stdout.strip()


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="placements pin to core 1")
def test_placements_set_every_knob_and_c_relays() -> None:
    """C gives the input veth a NAPI thread on the relay core; B and A take it away again (and set RPS)."""
    from benchmarks.run import RELAY_CORE, napi_threads, set_placement
    from mcr.lab import Sink, chain, generate, streams
    from mcr.lab.relays import McrRelay

    with chain(n_sinks=1, prefix="mcrp") as setup:
        ns, dev = setup.relay_ns, setup.relay_in
        rps = f"/sys/class/net/{dev}/queues/rx-0/rps_cpus"
        set_placement(ns, dev, "C")
        assert read_sysfs(ns, f"/sys/class/net/{dev}/threaded") == "1"
        assert int(read_sysfs(ns, rps), 16) == 0
        threads = napi_threads(dev)
        assert threads and all(os.sched_getaffinity(pid) == {RELAY_CORE} for pid in threads)
        with McrRelay(ns, dev, setup.relay_out, streams(), source=setup.source_addr,
                      out_addrs=setup.relay_out_addr, cpu=RELAY_CORE) as relay:
            with Sink(setup.sink_ns[0], setup.sink_if[0], relay.outputs, duration=20, idle=2) as sink:
                sent = generate(setup.source_ns, setup.source_if, relay.inputs, count=2000, rate=20000, raw=True)
                report = sink.result(timeout=20)
        assert sent["sent"] == 2000 and report["unique"] == 2000, report
        set_placement(ns, dev, "B")
        assert read_sysfs(ns, f"/sys/class/net/{dev}/threaded") == "0" and not napi_threads(dev)
        assert int(read_sysfs(ns, rps), 16) == 1 << RELAY_CORE
        set_placement(ns, dev, "A")
        assert int(read_sysfs(ns, rps), 16) == 0


def test_excess_splits_overload_losses() -> None:
    run = subprocess.run([sys.executable, "-m", "benchmarks.excess", "--profile", "smoke", "--placements", "A",
                          "--repeats", "1"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    rows = {line.split("|")[2].strip(): line.split("|") for line in run.stdout.splitlines()[2:]}
    assert set(rows) == {"mcr", "kernel"}, run.stdout
    assert rows["mcr"][8].strip().replace(",", "").isdigit()  # MCR's packet ring drops were read
    if kernel_multicast_routing():
        assert rows["kernel"][8].strip() == "—"
    else:
        assert "CONFIG_IP_MROUTE" in rows["kernel"][3], run.stdout
