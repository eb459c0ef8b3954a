"""Tests for the namespace lab itself (needs root for netns and raw sockets)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from typing import Iterator

import pytest

if os.geteuid() != 0:
    pytest.skip("lab tests need root", allow_module_level=True)

from mcr.lab import (
    Capture,
    Chain,
    FrameSender,
    UdpSink,
    chain,
    in_netns,
    interface_mac,
    numbered_payloads,
    payload_intact,
    payload_seq,
    udp_frame,
    udp_packets,
)

PREFIX = "mcrt"
GROUP, PORT, SPORT = "239.1.2.3", 5000, 4000


def netns_names() -> set[str]:
    out = subprocess.run(["ip", "-j", "netns", "list"], check=True,
                         capture_output=True, text=True).stdout
    return {entry["name"] for entry in json.loads(out or "[]")}


@pytest.fixture(autouse=True)
def no_leftover_namespaces() -> Iterator[None]:
    yield
    assert not {n for n in netns_names() if n.startswith(PREFIX + "-")}


@pytest.fixture
def lab_chain() -> Iterator[Chain]:
    with chain(n_sinks=1, prefix=PREFIX) as c:
        yield c


def all_namespaces(c: Chain) -> set[str]:
    return {c.source_ns, c.relay_ns, *c.sink_ns}


def test_chain_namespaces_exist_then_vanish() -> None:
    with chain(n_sinks=1, prefix=PREFIX) as c:
        assert all_namespaces(c) <= netns_names()
    assert not all_namespaces(c) & netns_names()
    c.close()  # idempotent


def test_chain_cleanup_on_exception() -> None:
    with pytest.raises(RuntimeError, match="boom"):
        with chain(n_sinks=1, prefix=PREFIX) as c:
            raise RuntimeError("boom")
    assert not all_namespaces(c) & netns_names()


def test_chain_links_addresses_and_mtu() -> None:
    with chain(n_sinks=2, mtu=9000, prefix=PREFIX) as c:
        assert c.sink_addr == ["10.200.1.2", "10.200.2.2"]
        assert c.relay_out_addr == ["10.200.1.1", "10.200.2.1"]
        ends = [(c.source_ns, c.source_if, c.source_addr),
                (c.relay_ns, c.relay_in, c.relay_in_addr)]
        ends += zip(c.sink_ns, c.sink_if, c.sink_addr)
        ends += [(c.relay_ns, i, a) for i, a in zip(c.relay_out, c.relay_out_addr)]
        for ns, ifname, addr in ends:
            assert len(ifname) <= 15
            out = subprocess.run(["ip", "-n", ns, "-j", "addr", "show", "dev", ifname],
                                 check=True, capture_output=True, text=True).stdout
            (link,) = json.loads(out)
            assert link["mtu"] == 9000 and "UP" in link["flags"]
            assert addr in [a["local"] for a in link["addr_info"]]


def test_in_netns_restores_namespace_on_error(lab_chain: Chain) -> None:
    before = os.stat("/proc/thread-self/ns/net").st_ino
    with pytest.raises(KeyError):
        with in_netns(lab_chain.relay_ns):
            assert os.stat("/proc/thread-self/ns/net").st_ino != before
            raise KeyError("x")
    assert os.stat("/proc/thread-self/ns/net").st_ino == before


def test_set_sysctl_reaches_namespace(lab_chain: Chain) -> None:
    key = f"net/ipv4/conf/{lab_chain.relay_in}/rp_filter"
    lab_chain.lab.set_sysctl(lab_chain.relay_ns, key.replace("/", "."), 1)
    with in_netns(lab_chain.relay_ns), open("/proc/sys/" + key) as f:
        assert f.read().strip() == "1"
    out = subprocess.run(["ip", "netns", "exec", lab_chain.relay_ns, "sysctl", "-n",
                          "net.ipv4.conf.all.rp_filter"],
                         check=True, capture_output=True, text=True).stdout
    assert out.strip() == "0"


def test_numbered_payloads_roundtrip() -> None:
    payloads = numbered_payloads(300, 64, stream=3)
    assert all(len(p) == 64 for p in payloads)
    assert [payload_seq(p) for p in payloads] == [(3, i) for i in range(300)]
    assert all(payload_intact(p) for p in payloads)
    corrupted = payloads[5][:-1] + bytes([payloads[5][-1] ^ 1])
    assert not payload_intact(corrupted)


def test_unicast_frame_needs_mac() -> None:
    with pytest.raises(ValueError):
        udp_frame("10.0.0.1", "10.0.0.2", 1, 2, b"x")


def test_multicast_frames_reach_sink_in_relay(lab_chain: Chain) -> None:
    c = lab_chain
    payloads = numbered_payloads(200, 200)
    frames = [udp_frame(c.source_addr, GROUP, SPORT, PORT, p) for p in payloads]
    with UdpSink(c.relay_ns, GROUP, PORT, c.relay_in) as sink, \
            FrameSender(c.source_ns, c.source_if) as sender:
        assert sender.send(frames, rate_pps=5000, timeout=10) == 200
        got = sink.receive(200, timeout=10)
    assert sorted(payload_seq(r.payload)[1] for r in got) == list(range(200))
    assert all(payload_intact(r.payload) and len(r.payload) == 200 for r in got)
    assert {r.src for r in got} == {(c.source_addr, SPORT)}


def test_unicast_frame_reaches_relay_address(lab_chain: Chain) -> None:
    c = lab_chain
    mac = interface_mac(c.relay_ns, c.relay_in)
    frame = udp_frame(c.source_addr, c.relay_in_addr, SPORT, PORT, b"hello unicast",
                      dst_mac=mac)
    with UdpSink(c.relay_ns, c.relay_in_addr, PORT) as sink, \
            FrameSender(c.source_ns, c.source_if) as sender:
        assert sender.send([frame]) == 1
        got = sink.receive(1, timeout=5)
    assert [r.payload for r in got] == [b"hello unicast"]


def test_capture_sees_ttl_and_tos(lab_chain: Chain) -> None:
    c = lab_chain
    frame = udp_frame(c.source_addr, GROUP, SPORT, PORT, b"marked", ttl=7, tos=0xB8)
    inbound = Capture(c.relay_ns, c.relay_in, max_seconds=10)
    outbound = Capture(c.source_ns, c.source_if, max_seconds=10)
    with FrameSender(c.source_ns, c.source_if) as sender:
        assert sender.send([frame]) == 1
    # The frame is delivered synchronously on a veth, but give the thread a
    # moment to pick it up before stopping.
    packets = []
    for _ in range(20):
        packets = udp_packets(inbound.frames, dst=GROUP, dport=PORT)
        if packets:
            break
        time.sleep(0.05)
    inbound.stop()
    assert not udp_packets(outbound.stop(), dst=GROUP)  # own transmissions skipped
    (ip,) = packets
    assert (ip.ttl, ip.tos, ip.src, ip.sport) == (7, 0xB8, c.source_addr, SPORT)
    assert bytes(ip.payload.payload) == b"marked"
