"""mcr gen / mcr sink: the native generator and sink agree packet for packet.

A source namespace and a sink namespace joined by one veth pair; the sink
joins the groups. Crafted probes check that duplicates, gaps, reordering
and foreign datagrams are each counted where they belong.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from app_support import joined
from daemon_support import wait_for
from mcr.lab import Lab, Sink, generate, open_socket, probe_payload, read_probe, streams

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces, raw sockets)")

GROUP, PORT = "239.1.1.1", 5000


class Pair:
    def __init__(self, lab: Lab) -> None:
        self.src = lab.add_namespace("src")
        self.dst = lab.add_namespace("sink")
        self.src_if, self.dst_if = lab.add_link(self.src, self.dst, "10.201.0.2/24", "10.201.0.1/24")
        lab.add_route(self.src, "224.0.0.0/4", self.src_if)
        lab.add_route(self.dst, "224.0.0.0/4", self.dst_if)


@pytest.fixture
def pair() -> Iterator[Pair]:
    with Lab("mcrg") as lab:
        yield Pair(lab)


def test_probe_roundtrip() -> None:
    payload = probe_payload(7, 123456789, size=100, sent_ns=42)
    assert len(payload) == 100 and read_probe(payload) == (7, 123456789, 42)
    with pytest.raises(ValueError):
        read_probe(b"not a probe at all, not at all")


def test_udp_socket_1000_packets_arrive_once_in_order(pair: Pair) -> None:
    targets = streams(GROUP, PORT)
    with Sink(pair.dst, pair.dst_if, targets, duration=20, idle=0.5) as sink:
        sent = generate(pair.src, pair.src_if, targets, count=1000, rate=20_000, size=200)
        report = sink.result(timeout=25)
    assert sent["sent"] == 1000 and not sent["error"]
    assert 0.03 < sent["elapsed"] < 1.0, "1000 packets paced at 20k pps take about 50 ms"
    (stream,) = report["streams"]
    assert (stream["id"], stream["received"], stream["unique"], stream["max_seq"]) == (0, 1000, 1000, 999)
    assert (stream["lost"], stream["duplicates"], stream["reordered"]) == (0, 0, 0)
    assert stream["bytes"] == 1000 * 200 and report["invalid"] == 0
    latency = stream["latency_ns"]
    assert latency["count"] == 1000
    assert 0 < latency["p50"] <= latency["p99"] <= latency["p999"] <= latency["max"] < 1_000_000_000


def test_raw_frames_several_streams_by_port(pair: Pair) -> None:
    targets = streams(GROUP, PORT, count=3, vary="port")
    with Sink(pair.dst, pair.dst_if, targets, duration=20, idle=0.5) as sink:
        sent = generate(pair.src, pair.src_if, targets, count=3000, rate=50_000, raw=True, size=64)
        report = sink.result(timeout=25)
    assert sent["sent"] == 3000
    assert [s["id"] for s in report["streams"]] == [0, 1, 2]
    for s in report["streams"]:
        assert (s["unique"], s["lost"], s["duplicates"], s["reordered"], s["max_seq"]) == (1000, 0, 0, 0, 999)
    assert report["unique"] == 3000


def test_duplicate_gap_reorder_and_foreign_datagrams_are_counted(pair: Pair) -> None:
    targets = streams(GROUP, PORT)
    order = [0, 1, 2, 2, 5, 4, 6]  # a duplicate of 2, 3 never sent, 4 after 5
    with Sink(pair.dst, pair.dst_if, targets, duration=20, idle=0.5) as sink:
        # Leaves through the source link: its namespace routes 224.0.0.0/4 there.
        with open_socket(pair.src, socket.AF_INET, socket.SOCK_DGRAM) as tx:
            for seq in order:
                tx.sendto(probe_payload(0, seq), (GROUP, PORT))
                time.sleep(0.002)  # keep the order on the wire
            tx.sendto(b"something else entirely, 32 bytes", (GROUP, PORT))
        report = sink.result(timeout=25)
    (s,) = report["streams"]
    assert (s["received"], s["unique"], s["duplicates"], s["reordered"]) == (7, 6, 1, 1)
    assert (s["max_seq"], s["lost"]) == (6, 1)
    assert report["invalid"] == 1


def test_sink_stops_when_idle_and_on_stop(pair: Pair) -> None:
    started = time.monotonic()
    with Sink(pair.dst, pair.dst_if, streams(GROUP, PORT), duration=20, idle=0.2) as sink:
        report = sink.stop()
    assert time.monotonic() - started < 2 and report["streams"] == [] and report["received"] == 0


def test_bad_settings_are_refused(pair: Pair) -> None:
    with pytest.raises(ValueError, match="payload size"):
        generate(pair.src, pair.src_if, streams(GROUP, PORT), count=1, size=10)
    with pytest.raises(ValueError, match="multicast"):
        generate(pair.src, pair.src_if, [("10.201.0.1", PORT)], count=1, raw=True)
    with pytest.raises(ValueError, match="count, a duration"):
        generate(pair.src, pair.src_if, streams(GROUP, PORT))


def test_cli_gen_and_sink_json(pair: Pair) -> None:
    mcr = [sys.executable, "-m", "mcr"]
    sink = subprocess.Popen(mcr + ["sink", "--netns", pair.dst, "--interface", pair.dst_if, "--group",
                                   f"{GROUP}:{PORT}", "--streams", "2", "--idle", "0.5", "--duration", "20",
                                   "--json"], stdout=subprocess.PIPE, text=True)
    try:
        # The sink joins (after binding) as soon as its interpreter is up: then it is ready.
        wait_for(lambda: sink.poll() is None and joined(pair.dst, pair.dst_if, GROUP), 20, "mcr sink to join")
        gen = subprocess.run(mcr + ["gen", "--netns", pair.src, "--interface", pair.src_if, "--group",
                                    f"{GROUP}:{PORT}", "--streams", "2", "--rate", "20000", "--count", "2000",
                                    "--raw", "--json"], capture_output=True, text=True, timeout=30, check=False)
        out, _ = sink.communicate(timeout=30)
    finally:
        if sink.poll() is None:
            sink.kill()
            sink.wait()
    assert gen.returncode == 0, gen.stderr
    assert json.loads(gen.stdout)["sent"] == 2000
    report = json.loads(out)
    assert [(s["id"], s["unique"], s["lost"]) for s in report["streams"]] == [(0, 1000, 0), (1, 1000, 0)]
