"""Shared fixtures for the relay integration tests (tests/test_relay_*.py).

Every relay test runs the real engine inside throw-away network namespaces
built by mcr.lab: source -> relay -> sink(s). Nothing is configured in the
root namespace. The `relay_lab` fixture builds a lab, starts an Engine in
the relay namespace and always tears both down, then checks that the
namespaces are really gone.

The helpers live on the RelayLab object the fixture returns, so test
modules never import this file. mcr is imported lazily here because this
conftest also loads for tests that do not need the compiled engine.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import threading
import time
from typing import Callable, Iterator

import pytest

from mcr.membership import inet_checksum

RELAY_TESTS = "test_relay_"
PREFIX = "mcrr"  # namespaces: mcrr-<role>-<hex>; test_lab.py uses mcrt
SPORT = 4000  # UDP source port of the injected frames
SRC_MAC = bytes.fromhex("020000000001")  # mcr.lab.udp_frame's default source MAC


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the relay tests (only those) when not root: they need netns and raw sockets."""
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="relay integration tests need root (network namespaces, raw sockets)")
    for item in items:
        if item.path.name.startswith(RELAY_TESTS):
            item.add_marker(skip)


def netns_names() -> set[str]:
    out = subprocess.run(["ip", "-j", "netns", "list"], check=True, capture_output=True,
                         text=True, timeout=30).stdout
    return {entry["name"] for entry in json.loads(out or "[]")}


def fast_udp_frame(src_ip: str, dst_ip: str, sport: int, dport: int, payload: bytes,
                   ttl: int = 64, tos: int = 0) -> bytes:
    """Byte-identical to mcr.lab.udp_frame() for a multicast destination, ~40x faster.

    Building 10 000 frames with scapy takes ~6 s, too slow for these tests;
    test_relay_basic checks that both builders agree.
    """
    from mcr.lab import multicast_mac

    src, dst = socket.inet_aton(src_ip), socket.inet_aton(dst_ip)
    udp_len = 8 + len(payload)
    checksum = inet_checksum(src + dst + struct.pack("!BBHHHHH", 0, 17, udp_len, sport, dport, udp_len, 0)
                             + payload) or 0xFFFF  # 0 would mean "no checksum"
    udp = struct.pack("!HHHH", sport, dport, udp_len, checksum)
    # Same header fields as scapy's defaults: IHL 5, id 1, no flags.
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, tos, 20 + udp_len, 1, 0, ttl, 17, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", inet_checksum(ip)) + ip[12:]
    mac = bytes.fromhex(multicast_mac(dst_ip).replace(":", ""))
    return mac + SRC_MAC + b"\x08\x00" + ip + udp + payload


class Collector:
    """Reads a UdpSink on a thread, so the sink is drained while traffic is sent.

    Bounded: stops after `count` datagrams, after `timeout` seconds, or after
    `idle` seconds without a datagram once traffic started (UdpSink.receive).
    """

    def __init__(self, sink, count: int, timeout: float, idle: float = 1.0) -> None:
        self.received: list = []
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(sink, count, timeout, idle), daemon=True)
        self._thread.start()

    def _run(self, sink, count: int, timeout: float, idle: float) -> None:
        try:
            self.received = sink.receive(count, timeout=timeout, idle=idle)
        except BaseException as error:  # re-raised in result()
            self._error = error

    def result(self, timeout: float = 60) -> list:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError("collector thread did not finish in time")
        if self._error is not None:
            raise self._error
        return self.received


class RelayLab:
    """A chain of namespaces plus a running Engine in the relay namespace."""

    def __init__(self, n_sinks: int = 1, mtu: int = 1500, rx_frames: int = 2048) -> None:
        from mcr.engine import Engine
        from mcr.lab import chain

        self.c = chain(n_sinks=n_sinks, mtu=mtu, prefix=PREFIX)
        self.namespaces = {self.c.source_ns, self.c.relay_ns, *self.c.sink_ns}
        self._closers: list[Callable[[], object]] = []
        self._sender = None
        try:
            self.engine = Engine(self.c.relay_ns, rx_frames=rx_frames)
        except BaseException:
            self.c.close()
            raise

    # Resources that are closed with the lab ---------------------------------

    def _own(self, closer: Callable[[], object]) -> None:
        self._closers.append(closer)

    def udp_sink(self, ns: str, addr: str, port: int, ifname: str | None = None):
        """A UdpSink in one of this lab's namespaces, closed with the lab."""
        from mcr.lab import UdpSink

        assert ns in self.namespaces, f"{ns} is not a namespace of this lab"
        s = UdpSink(ns, addr, port, ifname)
        self._own(s.close)
        return s

    def sink(self, index: int, addr: str, port: int):
        """A UdpSink in sink namespace `index`, joined on the sink link if `addr` is a group."""
        return self.udp_sink(self.c.sink_ns[index], addr, port, self.c.sink_if[index])

    def collect(self, sink, count: int, timeout: float = 20, idle: float = 1.0) -> Collector:
        return Collector(sink, count, timeout, idle)

    def capture(self, index: int, max_seconds: float = 20, max_frames: int = 20000):
        """Capture what arrives on sink `index`'s interface."""
        from mcr.lab import Capture

        cap = Capture(self.c.sink_ns[index], self.c.sink_if[index], max_seconds, max_frames)
        self._own(cap.stop)
        return cap

    def sender(self):
        from mcr.lab import FrameSender

        if self._sender is None:
            self._sender = FrameSender(self.c.source_ns, self.c.source_if)
            self._own(self._sender.close)
        return self._sender

    # Traffic ----------------------------------------------------------------

    def frames(self, payloads: list[bytes], group: str, port: int, src: str | None = None,
               sport: int = SPORT, ttl: int = 64, tos: int = 0) -> list[bytes]:
        """Valid Ethernet/IPv4/UDP frames to multicast `group`:`port`, one per payload."""
        src = src or self.c.source_addr
        return [fast_udp_frame(src, group, sport, port, p, ttl=ttl, tos=tos) for p in payloads]

    def send(self, frames: list[bytes], rate_pps: float | None = 10000, timeout: float = 30) -> None:
        """Inject all `frames` on the source link, paced; fails unless every one went out."""
        sent = self.sender().send(frames, rate_pps=rate_pps, timeout=timeout)
        assert sent == len(frames), f"only {sent} of {len(frames)} frames could be sent"

    # Engine state -----------------------------------------------------------

    def stats(self) -> dict:
        return self.engine.stats()

    def describe(self, stats: dict | None = None) -> str:
        """Engine stats as text for assertion messages (never raises)."""
        try:
            stats = stats if stats is not None else self.stats()
            drops = {k: v for k, v in stats["drops"].items() if v}
            return (f"\nengine drops (non-zero): {drops}\ninputs: {stats['inputs']}\n"
                    f"rules: {json.dumps(stats['rules'], indent=1, default=str)}")
        except Exception as error:  # the engine may be the thing that broke
            return f"\n(engine stats unavailable: {error!r}; engine error: {self.engine.error!r})"

    def wait_stats(self, done: Callable[[dict], bool], timeout: float = 3.0) -> dict:
        """Poll stats until `done(stats)` or `timeout`; returns the last stats either way.

        Send completions can be reaped a moment after the sink already has
        the datagram, so counters are read until they settle, boundedly.
        """
        deadline = time.monotonic() + timeout
        for _ in range(1000):
            stats = self.stats()
            if done(stats) or time.monotonic() >= deadline:
                return stats
            time.sleep(0.02)
        return stats

    def wait_relayed(self, expected: dict[int, int], timeout: float = 3.0) -> dict:
        """Wait until each rule id's output counters reach their expected packet count."""
        def done(stats: dict) -> bool:
            for rule_id, packets in expected.items():
                rule = stats["rules"].get(str(rule_id))
                if rule is None or rule["packets"] < packets:
                    return False
                if any(o["packets"] + o["errors"] < packets for o in rule["outputs"].values()):
                    return False
            return True
        return self.wait_stats(done, timeout)

    # Checks -----------------------------------------------------------------

    def expect_stream(self, received: list, count: int, size: int, stream: int = 0,
                      what: str = "sink") -> None:
        """Assert `received` is exactly seq 0..count-1 of `stream`, each once, intact, `size` bytes."""
        from mcr.lab import payload_intact, payload_seq

        problems = []
        seqs = []
        for r in received:
            if len(r.payload) != size:
                problems.append(f"payload of {len(r.payload)} bytes (expected {size})")
                continue
            s, q = payload_seq(r.payload)
            if s != stream:
                problems.append(f"datagram from stream {s} (expected only stream {stream}), seq {q}")
                continue
            if not payload_intact(r.payload):
                problems.append(f"corrupted payload, seq {q}")
            seqs.append(q)
        expected = set(range(count))
        missing = sorted(expected - set(seqs))
        extra = sorted(set(seqs) - expected)
        duplicates = len(seqs) - len(set(seqs))
        if missing:
            problems.append(f"{len(missing)} missing (first: {missing[:10]})")
        if extra:
            problems.append(f"unexpected seqs {extra[:10]}")
        if duplicates:
            problems.append(f"{duplicates} duplicates")
        assert not problems, (f"{what}: got {len(received)} datagrams, expected exactly {count} "
                              f"of stream {stream}: " + "; ".join(problems[:20]) + self.describe())

    def close(self) -> None:
        try:
            for closer in reversed(self._closers):
                try:
                    closer()
                except OSError:
                    pass
            self.engine.close()
        finally:
            self.c.close()


@pytest.fixture
def relay_lab() -> Iterator[Callable[..., RelayLab]]:
    """Factory: relay_lab(n_sinks=1, mtu=1500, rx_frames=2048) -> RelayLab, torn down after the test."""
    labs: list[RelayLab] = []

    def make(n_sinks: int = 1, mtu: int = 1500, rx_frames: int = 2048) -> RelayLab:
        lab = RelayLab(n_sinks, mtu, rx_frames)
        labs.append(lab)
        return lab

    yield make
    namespaces: set[str] = set()
    errors = []
    for lab in reversed(labs):  # every lab is closed even if one fails to
        namespaces |= lab.namespaces
        try:
            lab.close()
        except Exception as error:
            errors.append(repr(error))
    leftover = namespaces & netns_names()
    assert not leftover and not errors, f"namespaces left behind: {sorted(leftover)}; teardown errors: {errors}"


@pytest.fixture
def fast_frame() -> Callable[..., bytes]:
    """The frame builder RelayLab.frames() uses, for tests that check it."""
    return fast_udp_frame
