"""Native traffic generator and sink, for tests, notebooks and benchmarks.

    targets = streams("239.1.1.1", 5000, count=4)          # 4 streams: 4 groups
    with Sink(lab.sink_ns[0], lab.sink_if[0], targets) as sink:
        sent = generate(lab.source_ns, lab.source_if, targets, rate=100_000, count=100_000)
        report = sink.result()                              # per stream: lost, dup, latency

The packet work runs in C++ (mcr._engine.Generator / TrafficSink) with the
GIL released; this module opens the sockets inside the namespace it is
given, so the C++ side never needs privileges or namespaces. Every payload
starts with a 24-byte probe: magic "MCRT", stream id, sequence number and
the CLOCK_MONOTONIC send time in ns (one clock for all namespaces), so a
sink anywhere on the host measures one-way latency. `ns=None` works in the
caller's own namespace (the `mcr gen`/`mcr sink` commands on real hosts);
tests always pass a lab namespace.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import threading
import time

from .. import _engine
from ..netns import in_netns
from ..sockets import (PACKET_QDISC_BYPASS, SO_BINDTODEVICE, SO_RCVBUFFORCE, SO_SNDBUFFORCE, SOL_PACKET,
                       force_buffer, interface_address)

PROBE = struct.Struct("!4sIQQ")  # magic, stream id, sequence number, send time (ns)
MAGIC = b"MCRT"
SEND_BUFFER = 4 << 20
RECEIVE_BUFFER = 8 << 20
GRACE = 5.0  # seconds a count-bounded run may take beyond its paced length

Target = tuple[str, int]  # (destination address, UDP port); stream id = position in the list


def probe_payload(stream: int, seq: int, size: int = 64, sent_ns: int | None = None) -> bytes:
    """A payload as the generator makes it (for crafting duplicates and gaps in tests)."""
    if size < PROBE.size:
        raise ValueError(f"size must be at least {PROBE.size}")
    sent = time.monotonic_ns() if sent_ns is None else sent_ns
    return PROBE.pack(MAGIC, stream, seq, sent) + bytes(size - PROBE.size)


def read_probe(payload: bytes) -> tuple[int, int, int]:
    """(stream, seq, sent_ns) of a generated payload; ValueError for anything else."""
    if len(payload) < PROBE.size or payload[:4] != MAGIC:
        raise ValueError("not a generated probe")
    _, stream, seq, sent = PROBE.unpack_from(payload)
    return stream, seq, sent


def streams(destination: str = "239.1.1.1", port: int = 5000, count: int = 1, vary: str = "group") -> list[Target]:
    """`count` targets for `count` concurrent streams: consecutive addresses (vary="group") or ports."""
    if count < 1:
        raise ValueError("count must be at least 1")
    if vary == "group":
        base = ipaddress.IPv4Address(destination)
        return [(str(base + i), port) for i in range(count)]
    if vary == "port":
        if port + count > 65536:
            raise ValueError("not enough ports above the first one")
        return [(destination, port + i) for i in range(count)]
    raise ValueError("vary must be 'group' or 'port'")


def _udp_sender(ifname: str, ttl: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        ifindex = socket.if_nametoindex(ifname)
        sock.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, ifname.encode())
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, struct.pack("4s4si", b"", b"", ifindex))
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ttl)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
        force_buffer(sock, SO_SNDBUFFORCE, socket.SO_SNDBUF, SEND_BUFFER)
    except OSError:
        sock.close()
        raise
    return sock


def _raw_sender(ifname: str) -> socket.socket:
    # Protocol 0: the socket only sends. Bypassing the qdisc saves a lock and
    # a queue per frame; the generator paces and retries on a full device.
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    try:
        sock.setsockopt(SOL_PACKET, PACKET_QDISC_BYPASS, 1)
        force_buffer(sock, SO_SNDBUFFORCE, socket.SO_SNDBUF, SEND_BUFFER)
        sock.bind((ifname, 0))
    except OSError:
        sock.close()
        raise
    return sock


class Generator:
    """A configured generator in `ns` (see generate()); run() once, stop() from another thread."""

    def __init__(self, ns: str | None, ifname: str, targets: list[Target], *, size: int = 64, rate: float = 0,
                 count: int = 0, duration: float | None = None, raw: bool = False, source: str | None = None,
                 ttl: int = 64, tos: int = 0, batch: int = 32, sport: int = 40000) -> None:
        if count <= 0 and duration is None:
            raise ValueError("give a count, a duration or both")
        if duration is None:
            duration = (count / rate if rate else 0) + GRACE
        with in_netns(ns):
            if raw:
                self._sock = _raw_sender(ifname)
                source = source or interface_address(ifname)
                mac = self._sock.getsockname()[4][:6]  # the interface's own MAC
            else:
                self._sock = _udp_sender(ifname, ttl)
                self._sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, tos)
                mac = b"\x02\0\0\0\0\1"
        try:
            self._native = _engine.Generator(
                self._sock.fileno(), [(d, p, i) for i, (d, p) in enumerate(targets)], payload_size=size,
                count=count, duration=duration, rate=rate, raw=raw, batch=batch, source=source or "",
                source_port=sport, source_mac=mac, ttl=ttl, tos=tos)
        except BaseException:
            self._sock.close()
            raise

    def run(self) -> dict:
        """Sends (GIL released) and returns sent, retries, elapsed (s), rate (achieved pps), error."""
        with self._sock:
            result = self._native.run()
        result["rate"] = result["sent"] / result["elapsed"] if result["elapsed"] > 0 else 0.0
        return result

    def stop(self) -> None:
        self._native.stop()


def generate(ns: str | None, ifname: str, targets: list[Target], **options) -> dict:
    """Send probes to `targets` out of `ifname` in `ns`; returns what went out.

    Options: size (payload bytes, >= 24), rate (packets per second over all
    streams, sent round robin; 0: as fast as possible), count and/or
    duration (the run ends at whichever comes first; a count alone still
    stops at its paced length plus 5 s), raw (build frames and send them on
    an AF_PACKET socket: faster, multicast only, source address from
    `source` or the interface), ttl, tos (the DSCP and ECN byte), batch
    (packets per sendmmsg), sport.
    Returns sent, retries, elapsed (s), rate (achieved pps) and error.
    """
    return Generator(ns, ifname, targets, **options).run()


def _receiver(ifname: str | None, destination: str, port: int) -> socket.socket:
    """A UDP socket for one target. Bound to the group itself, so it gets only that group."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        force_buffer(sock, SO_RCVBUFFORCE, socket.SO_RCVBUF, RECEIVE_BUFFER)
        sock.bind((destination, port))
        if ipaddress.IPv4Address(destination).is_multicast:
            if ifname is None:
                raise ValueError("an interface is needed to join a multicast group")
            mreqn = struct.pack("4s4si", socket.inet_aton(destination), b"\0" * 4, socket.if_nametoindex(ifname))
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreqn)
    except OSError:
        sock.close()
        raise
    return sock


def summarise(report: dict) -> dict:
    """Adds totals over all streams to a sink report (received, unique, lost, duplicates, reordered)."""
    for key in ("received", "unique", "lost", "duplicates", "reordered", "bytes"):
        report[key] = sum(s[key] for s in report["streams"])
    return report


class Sink:
    """Receives probes for `targets` on `ifname` in `ns`, on a thread, until stopped.

    Joins each multicast target on `ifname` (one socket per target, bound to
    it). Runs until `duration`, or `idle` seconds after the last packet once
    traffic started, or `max_packets`, or stop(). `result()` and stop()
    return the report: per stream received, unique, lost, duplicates,
    reordered, latency_ns (p50, p99, p999, max, mean), plus totals.
    """

    def __init__(self, ns: str | None, ifname: str | None, targets: list[Target], *, duration: float = 30.0,
                 idle: float = 1.0, max_packets: int = 0, max_streams: int = 4096) -> None:
        self._sockets: list[socket.socket] = []
        try:
            with in_netns(ns):
                for destination, port in dict.fromkeys(targets):
                    self._sockets.append(_receiver(ifname, destination, port))
            self._native = _engine.TrafficSink([s.fileno() for s in self._sockets], duration=duration, idle=idle,
                                               max_packets=max_packets, max_streams=max_streams)
        except BaseException:
            self._close_sockets()
            raise
        self._report: dict | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="mcr-sink", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._report = summarise(self._native.run())
        except BaseException as error:  # re-raised by result()
            self._error = error

    def _close_sockets(self) -> None:
        for sock in self._sockets:
            sock.close()
        self._sockets.clear()

    def result(self, timeout: float | None = None) -> dict:
        """Waits for the sink to end by itself (duration, idle, max_packets) and returns its report."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError("the sink is still receiving")
        self._close_sockets()
        if self._error is not None:
            raise self._error
        assert self._report is not None
        return self._report

    def end_window(self, monotonic_ns: int) -> None:
        """Packets arriving after this time.monotonic_ns() instant are counted only as `late`."""
        self._native.end_window(monotonic_ns)

    def stop(self) -> dict:
        """Ends the sink now (within ~20 ms) and returns its report."""
        self._native.stop()
        return self.result(timeout=5.0)

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, *exc: object) -> None:
        self._native.stop()
        self._thread.join(5.0)
        self._close_sockets()
