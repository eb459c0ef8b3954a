"""The soak profile (benchmarks/soak.py): its arithmetic on made-up records, and a few seconds of the real thing.

The figures of a real soak are not checked here (the machine is shared);
the end-to-end test checks that a short run at a low rate writes every
field the closing note needs and tears its namespaces down.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmarks import soak_report
from benchmarks.soak_report import SoakDataError, growth, summarise

ROOT = Path(__file__).resolve().parent.parent


def chunk(sent: int, received: int, **extra) -> dict:
    return {"sent": sent, "received": received, "lost": sent - received, **extra}


def samples(supervisor: list[int], worker: list[int], step: float = 10.0, pid: str = "7") -> list[dict]:
    return [{"t": i * step, "supervisor": s, "workers": {pid: w}} for i, (s, w) in enumerate(zip(supervisor, worker))]


def test_baseline_is_the_first_sample_after_warm_up() -> None:
    # 100 -> 200 KiB during the first minute is start-up, not growth.
    points = [(0.0, 100), (30.0, 150), (60.0, 200), (90.0, 204), (120.0, 206)]
    g = growth(points, warmup=60)
    assert g["first_kib"] == 200 and g["last_kib"] == 206 and g["baseline_t"] == 60.0
    assert g["growth"] == pytest.approx(0.03) and g["max_kib"] == 206 and g["warmup_honoured"]


def test_a_run_shorter_than_its_warm_up_falls_back_to_the_first_sample_and_says_so() -> None:
    g = growth([(0.0, 100), (5.0, 110)], warmup=60)
    assert g["first_kib"] == 100 and g["growth"] == pytest.approx(0.10) and not g["warmup_honoured"]


def test_verdict_passes_only_with_no_loss_and_flat_memory() -> None:
    flat = samples([1000] * 13, [500] * 13)
    ok = summarise([chunk(1000, 1000)] * 3, flat, warmup=60)
    assert ok["passed"] and ok["verdict"].startswith("PASS") and ok["loss"]["lost"] == 0

    lossy = summarise([chunk(1000, 1000), chunk(1000, 999)], flat, warmup=60)
    assert not lossy["passed"] and not lossy["checks"]["loss_zero"] and lossy["loss"]["chunks_with_loss"] == 1

    leaking_worker = samples([1000] * 13, [500] * 7 + [520, 530, 540, 550, 560, 570])  # +14 % after warm-up
    grown = summarise([chunk(1000, 1000)], leaking_worker, warmup=60)
    assert grown["checks"] == {"loss_zero": True, "supervisor_rss_flat": True, "worker_rss_flat": False,
                               "one_worker_throughout": True}
    assert grown["rss"]["worker_growth_max"] == pytest.approx(0.14)


def test_a_replaced_worker_fails_the_run_and_each_pid_is_measured_on_its_own() -> None:
    records = samples([1000] * 8, [500] * 8) + samples([1000] * 5, [400] * 5, pid="8")
    for i, record in enumerate(records):
        record["t"] = i * 10.0
    result = summarise([chunk(10, 10)], records, warmup=60)
    assert result["rss"]["workers_seen"] == 2 and not result["checks"]["one_worker_throughout"]
    assert set(result["rss"]["workers"]) == {"worker 7", "worker 8"}


def test_bad_records_are_refused_with_a_clear_error() -> None:
    with pytest.raises(SoakDataError, match="no chunks"):
        summarise([], samples([1], [1]), warmup=0)
    with pytest.raises(SoakDataError, match="no RSS samples"):
        summarise([chunk(1, 1)], [], warmup=0)
    with pytest.raises(SoakDataError, match="malformed chunk"):
        summarise([{"sent": 1}], samples([1], [1]), warmup=0)


@given(st.lists(st.integers(min_value=1, max_value=1 << 30), min_size=1, max_size=50),
       st.floats(min_value=0, max_value=600))
def test_growth_is_last_over_baseline(values: list[int], warmup: float) -> None:
    points = [(i * 10.0, v) for i, v in enumerate(values)]
    g = growth(points, warmup)
    assert g["first_kib"] * (1 + g["growth"]) == pytest.approx(g["last_kib"])
    assert g["max_kib"] == max(values) and g["samples"] <= len(values)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces, raw sockets)")
def test_a_short_soak_writes_every_figure(tmp_path: Path) -> None:
    before = _namespaces()
    run = subprocess.run([sys.executable, "-m", "benchmarks.soak", "--minutes", "0.05", "--rate", "2000",
                          "--chunk", "1.5", "--sample", "1", "--warmup", "1", "--size", "200", "--out", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode in (0, 2), run.stdout + run.stderr  # 2: the verdict failed (a busy machine)
    results = json.loads((tmp_path / "results.json").read_text())
    summary = results["summary"]
    assert summary["loss"]["sent"] > 0 and summary["loss"]["chunks"] == 2
    assert summary["rss"]["supervisor"]["first_kib"] > 0 and summary["rss"]["workers_seen"] == 1
    assert len(results["rss"]) >= 3 and results["settings"]["rate_given"] and results["search"] is None
    assert isinstance(results["daemon"]["drops"], dict) and results["daemon"]["kernel_drops"] >= 0
    assert results["daemon"]["rule_packets"] >= summary["loss"]["received"]
    report = (tmp_path / "report.md").read_text()
    assert summary["verdict"] in report and "## Memory" in report and "kernel_drops" in report
    assert (tmp_path / "rss.png").stat().st_size > 1000
    assert {n for n in _namespaces() - before if n.startswith("mcrk-")} == set()  # torn down (others' may come)


def _namespaces() -> set[str]:
    out = subprocess.run(["ip", "-j", "netns", "list"], capture_output=True, text=True, timeout=30, check=True).stdout
    return {n["name"] for n in json.loads(out or "[]")}


def test_report_renders_from_records() -> None:
    records = samples([1000] * 3, [500] * 3)
    results = {"started": "now", "duration_s": 1.0, "machine": {}, "search": {"ndr_pps": 100.0},
               "settings": {"minutes": 0.1, "rate_pps": 50.0, "rate_given": False, "size": 64, "chunk_s": 3,
                            "sample_s": 10, "warmup_s": 60, "daemon": "d", "generator": "g", "receiver": "r"},
               "chunks": [chunk(100, 99, index=0, t=3.0)], "rss": records,
               "daemon": {"drops": {"no_rule": 0}, "kernel_drops": 1}}
    results["summary"] = summarise(results["chunks"], records, 60)
    text = soak_report.markdown(results)
    assert "**FAIL: loss 1 of 100" in text and "half the measured no-drop rate, 100 pps" in text
    assert "(run shorter than warm-up)" in text and "| 1 | 3 | 100 | 1 |" in text
