"""Helpers for the relay tests that use senders and receivers we did not write
(test_relay_applications.py, test_relay_application_tools.py)."""

from __future__ import annotations

import socket
import struct
import subprocess
import time
from dataclasses import dataclass

from mcr.lab import Received, UdpSender, udp_counters

GROUP, PORT = "239.1.1.1", 5000
OUT_GROUP, OUT_PORT = "239.2.2.2", 6000
COUNT, SIZE, RATE = 1000, 300, 5000
TIMEOUT = 5  # seconds a collector waits; traffic lasts well under one
IDLE = 0.5  # collectors wait for one more datagram than expected, this long

SOL_PACKET, PACKET_AUXDATA = 263, 8
TP_STATUS_CSUMNOTREADY = 0x8
IP_RECVTTL = 12  # not exported by Python's socket module




class UdpCounters:
    """`Udp:` counters of some namespaces, read now; delta() reads them again.

    Linux counts InDatagrams when the application reads a datagram, and
    verifies a deferred checksum at the latest then, so delta() means
    something only after the receivers have drained their sockets.
    """

    def __init__(self, *namespaces: str) -> None:
        self.before = {ns: udp_counters(ns) for ns in namespaces}

    def delta(self, ns: str) -> dict[str, int]:
        after = udp_counters(ns)
        return {key: after[key] - self.before[ns].get(key, 0) for key in after}


def expect_delivered(lab, counters: UdpCounters, ns: str, received: list, count: int, size: int,
                     stream: int = 0, what: str = "sink") -> None:
    """Exactly seq 0..count-1 arrived intact, the kernel of `ns` read exactly
    `count` datagrams, and it dropped none for a bad UDP checksum."""
    d = counters.delta(ns)
    nonzero = {k: v for k, v in d.items() if v}
    assert d["InCsumErrors"] == 0, (
        f"{what}: the kernel in {ns} dropped {d['InCsumErrors']} datagrams for a bad UDP checksum "
        f"({len(received)} of {count} arrived); Udp counter changes {nonzero}" + lab.describe())
    lab.expect_stream(received, count, size, stream=stream, what=what)
    assert d["InDatagrams"] == count, f"{what}: Udp counter changes in {ns}: {nonzero}" + lab.describe()
    assert d["InErrors"] == 0 and d["RcvbufErrors"] == 0, f"{what}: Udp counter changes in {ns}: {nonzero}"


def send(lab, payloads: list[bytes], group: str = GROUP, port: int = PORT, rate: float = RATE,
         **sender_options) -> None:
    """Send `payloads` from a kernel UDP socket (UdpSender) in the source namespace, all of them."""
    with UdpSender(lab.c.source_ns, lab.c.source_if, **sender_options) as sender:
        sent = sender.send(payloads, group, port, rate_pps=rate, timeout=30)
    assert sent == len(payloads), f"the kernel socket accepted only {sent} of {len(payloads)} datagrams"


def run(cmd: list[str], timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def stop(process: subprocess.Popen) -> None:
    """Terminate a process this test started, by its own handle, and reap it."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def joined(ns: str, ifname: str, group: str) -> bool:
    out = run(["ip", "-n", ns, "maddr", "show", "dev", ifname], timeout=10).stdout
    return f"inet  {group}" in out or f"inet {group}" in out


@dataclass
class Marked(Received):
    ttl: int
    tos: int


class MarkingReceiver:
    """Wraps a UdpSink so each datagram also reports its IP TTL and TOS
    (IP_RECVTTL / IP_RECVTOS ancillary data): what an application can see of
    the output's ttl= and dscp= without a capture."""

    def __init__(self, sink) -> None:
        self.sink = sink
        sink.sock.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)
        sink.sock.setsockopt(socket.IPPROTO_IP, socket.IP_RECVTOS, 1)

    def receive(self, count: int, timeout: float, idle: float = 1.0) -> list[Marked]:
        return self.sink.receive(count, timeout, idle, read=self._read)

    @staticmethod
    def _read(sock: socket.socket) -> Marked:
        data, ancillary, _, src = sock.recvmsg(65535, 2 * socket.CMSG_SPACE(4))
        ttl = tos = -1
        for level, kind, value in ancillary:
            if (level, kind) == (socket.IPPROTO_IP, socket.IP_TTL):
                (ttl,) = struct.unpack("i", value[:4])
            elif (level, kind) == (socket.IPPROTO_IP, socket.IP_TOS):
                tos = value[0]
        return Marked(data, src, ttl, tos)


def feed_paced(stream, payloads: list[bytes], rate_pps: float, timeout: float = 30) -> int:
    """Write each payload with its own write(2), paced; returns how many were written."""
    start = time.monotonic()
    burst = max(1, int(rate_pps / 1000))
    for index, payload in enumerate(payloads):
        if index % burst == 0:
            due = start + index / rate_pps
            if due - start >= timeout:
                return index
            time.sleep(max(0.0, due - time.monotonic()))
        stream.write(payload)
    return len(payloads)


# The premise ----------------------------------------------------------------

