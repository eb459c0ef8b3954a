"""Generate, receive and capture test traffic inside lab namespaces.

All classes take a namespace name and refuse None: they only ever send,
join or listen inside namespaces a Lab created, never on host interfaces.
"""

from __future__ import annotations

import errno
import ipaddress
import math
import socket
import struct
import threading
import time
from dataclasses import dataclass

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from ..netns import in_netns
from .netns import interface_index, open_socket

ETH_P_ALL = 0x0003
SO_SNDBUFFORCE = 32  # not exported by Python's socket module
SO_RCVBUFFORCE = 33
DEFAULT_SRC_MAC = "02:00:00:00:00:01"  # locally administered

HEADER = struct.Struct("!II")  # stream id, sequence number
_CYCLE = bytes(range(256))


def _require_ns(ns: str | None) -> str:
    if not ns:
        raise ValueError("a lab namespace is required; refusing to use the root namespace")
    return ns


def multicast_mac(group: str) -> str:
    """01:00:5e followed by the low 23 bits of the group address."""
    low = int(ipaddress.IPv4Address(group)) & 0x7FFFFF
    return "01:00:5e:%02x:%02x:%02x" % (low >> 16, (low >> 8) & 0xFF, low & 0xFF)


def udp_frame(
    src_ip: str,
    dst_ip: str,
    sport: int,
    dport: int,
    payload: bytes,
    ttl: int = 64,
    tos: int = 0,
    src_mac: str | None = None,
    dst_mac: str | None = None,
) -> bytes:
    """An Ethernet/IPv4/UDP frame with valid IP and UDP checksums."""
    if dst_mac is None:
        if not ipaddress.IPv4Address(dst_ip).is_multicast:
            raise ValueError("dst_mac is required for a unicast destination")
        dst_mac = multicast_mac(dst_ip)
    packet = (
        Ether(src=src_mac or DEFAULT_SRC_MAC, dst=dst_mac)
        / IP(src=src_ip, dst=dst_ip, ttl=ttl, tos=tos)
        / UDP(sport=sport, dport=dport)
        / Raw(payload)
    )
    # Serialising lets scapy fill in lengths and both checksums.
    return bytes(packet)


def _pattern(seq: int, length: int) -> bytes:
    # The byte cycle is rotated by the sequence number, so a payload body
    # that ends up under another header (or gets mangled) no longer matches.
    rot = seq % 256
    cycle = _CYCLE[rot:] + _CYCLE[:rot]
    return (cycle * (length // 256 + 1))[:length]


def numbered_payloads(count: int, size: int, stream: int = 0) -> list[bytes]:
    """`count` payloads of `size` bytes: '!II' (stream, seq) then a pattern."""
    if size < HEADER.size:
        raise ValueError(f"size must be at least {HEADER.size}")
    body = size - HEADER.size
    return [HEADER.pack(stream, seq) + _pattern(seq, body) for seq in range(count)]


def payload_seq(payload: bytes) -> tuple[int, int]:
    """(stream, seq) of a payload made by numbered_payloads()."""
    if len(payload) < HEADER.size:
        raise ValueError("payload too short to carry a sequence number")
    stream, seq = HEADER.unpack_from(payload)
    return stream, seq


def payload_intact(payload: bytes) -> bool:
    """True when the padding still matches the pattern for its sequence number."""
    _, seq = payload_seq(payload)
    return payload[HEADER.size:] == _pattern(seq, len(payload) - HEADER.size)


BURST_INTERVAL = 0.001  # seconds of traffic sent back-to-back per burst
RETRIES = 50  # bounded retries per packet when the device queue or send buffer is full


def send_paced(items: list[bytes], send_one, rate_pps: float | None, timeout: float) -> int:
    """Call `send_one(item)` for each item, paced to `rate_pps` in short bursts
    and bounded by `timeout` seconds; returns how many were sent."""
    start = time.monotonic()
    deadline = start + timeout
    burst = max(1, math.ceil(rate_pps * BURST_INTERVAL)) if rate_pps else 1
    sent = 0
    for index, item in enumerate(items):
        if rate_pps and index % burst == 0:
            # Sleep until this burst is due instead of spinning on the clock.
            due = start + index / rate_pps
            if due >= deadline:
                break
            time.sleep(max(0.0, due - time.monotonic()))
        if time.monotonic() >= deadline or not _send_retrying(send_one, item, deadline):
            break
        sent += 1
    return sent


def _send_retrying(send_one, item: bytes, deadline: float) -> bool:
    """One send; a full queue (ENOBUFS, EAGAIN) is retried with backoff, boundedly."""
    delay = 0.0005
    for _ in range(RETRIES):
        try:
            send_one(item)
            return True
        except OSError as exc:
            if exc.errno not in (errno.ENOBUFS, errno.EAGAIN):
                raise
        if time.monotonic() + delay >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
    raise OSError(errno.ENOBUFS, "device queue or send buffer stayed full while sending")


class FrameSender:
    """Injects raw Ethernet frames on an interface inside a lab namespace."""

    def __init__(self, ns: str, ifname: str) -> None:
        # Protocol 0: this socket only sends and never queues received frames.
        self.sock = open_socket(_require_ns(ns), socket.AF_PACKET, socket.SOCK_RAW, 0)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, 4 << 20)
            self.sock.bind((ifname, 0))
        except BaseException:
            self.sock.close()
            raise

    def __enter__(self) -> FrameSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, frames: list[bytes], rate_pps: float | None = None, timeout: float = 30) -> int:
        """Send each frame once, paced to `rate_pps`; returns how many went out."""
        return send_paced(frames, self.sock.send, rate_pps, timeout)


class UdpSender:
    """An ordinary kernel UDP socket in a lab namespace, sending to multicast groups.

    FrameSender injects frames we built, with a full UDP checksum. Real
    applications send through the kernel's UDP socket instead, and on a veth
    (or any device offloading checksums) their frames leave CHECKSUM_PARTIAL:
    a packet socket on the other end sees TP_STATUS_CSUMNOTREADY and a UDP
    checksum field holding only the pseudo-header sum. A relay has to cope
    with those, so tests judge it with this sender too.

    Multicast leaves through `ifname` (IP_MULTICAST_IF by ifindex) with
    `ttl` and `tos`; loopback is off, so the sending namespace never
    receives its own datagrams. `source_port` None lets the kernel pick one;
    `self.port` is the port in use either way. `source_address` (one of the
    interface's) sends from that address instead of the primary one.
    """

    def __init__(self, ns: str, ifname: str, *, ttl: int = 64, tos: int = 0,
                 source_port: int | None = None, source_address: str | None = None) -> None:
        ns = _require_ns(ns)
        self.sock = open_socket(ns, socket.AF_INET, socket.SOCK_DGRAM)
        try:
            # struct ip_mreqn: multicast address (unused), local address (any), ifindex.
            mreqn = struct.pack("4s4si", socket.inet_aton("0.0.0.0"), socket.inet_aton("0.0.0.0"),
                                interface_index(ns, ifname))
            self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, mreqn)
            self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ttl)
            self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
            self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, tos)
            self.sock.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, 4 << 20)
            self.sock.bind((source_address or "0.0.0.0", source_port or 0))
            # Non-blocking: a full send buffer is retried below, boundedly,
            # instead of blocking past the caller's timeout.
            self.sock.setblocking(False)
            self.port: int = self.sock.getsockname()[1]
        except BaseException:
            self.sock.close()
            raise

    def __enter__(self) -> UdpSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, payloads: list[bytes], group: str, port: int, rate_pps: float | None = None,
             timeout: float = 30) -> int:
        """Send each payload once as one datagram to `group`:`port`, paced to `rate_pps`.

        Bounded by `timeout` seconds like FrameSender.send; returns how many
        datagrams the kernel accepted.
        """
        return send_paced(payloads, lambda payload: self.sock.sendto(payload, (group, port)), rate_pps, timeout)


def udp_counters(ns: str) -> dict[str, int]:
    """The `Udp:` counters of /proc/net/snmp in namespace `ns` (InDatagrams, InCsumErrors, ...).

    A receiving kernel drops a datagram with a wrong UDP checksum silently,
    counting it only here (InCsumErrors, InErrors), so tests read these
    before and after to tell a checksum fault from plain loss.
    /proc/thread-self/net follows the calling thread's network namespace;
    /proc/self/net (what /proc/net points at) follows the process leader's,
    which is the wrong one when called from any other thread.
    """
    with in_netns(_require_ns(ns)), open("/proc/thread-self/net/snmp") as f:
        lines = [line.split() for line in f if line.startswith("Udp:")]
    if len(lines) != 2:
        raise RuntimeError(f"no Udp: counters in /proc/net/snmp of {ns}")
    names, values = lines
    return dict(zip(names[1:], map(int, values[1:])))


@dataclass
class Received:
    payload: bytes
    src: tuple[str, int]


class UdpSink:
    """A UDP receiver in a lab namespace, for a multicast group or a unicast address.

    For a group, `ifname` names the interface to join on. A socket bound to
    a group address only gets datagrams sent to that group and port.
    """

    def __init__(self, ns: str, addr: str, port: int, ifname: str | None = None) -> None:
        ns = _require_ns(ns)
        self.sock = open_socket(ns, socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 16 << 20)
            self.sock.bind((addr, port))
            if ipaddress.IPv4Address(addr).is_multicast:
                self._join(ns, addr, ifname)
        except BaseException:
            self.sock.close()
            raise

    def _join(self, ns: str, group: str, ifname: str | None) -> None:
        if ifname is None:
            raise ValueError("ifname is required to join a multicast group")
        # struct ip_mreqn: group, local address (any), interface index.
        mreqn = struct.pack("4s4si", socket.inet_aton(group),
                            socket.inet_aton("0.0.0.0"), interface_index(ns, ifname))
        self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreqn)

    def __enter__(self) -> UdpSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def receive(self, count: int, timeout: float, idle: float = 1.0, read=None) -> list:
        """Collect up to `count` datagrams within `timeout` seconds.

        Stops early once traffic has started and then paused for `idle` seconds.
        `read(sock)` reads one datagram (default: a Received from recvfrom);
        tests that want ancillary data pass their own.
        """
        read = read or (lambda sock: Received(*sock.recvfrom(65535)))
        deadline = time.monotonic() + timeout
        received: list = []
        while len(received) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self.sock.settimeout(min(remaining, idle) if received else remaining)
            try:
                received.append(read(self.sock))
            except TimeoutError:
                break
        return received


class Capture:
    """Records frames arriving on an interface in a lab namespace, in a thread.

    Frames the namespace itself transmits are skipped, so a capture shows
    what came in over the wire.
    """

    POLL = 0.1  # how often the thread checks for stop()

    def __init__(self, ns: str, ifname: str, max_seconds: float = 10.0,
                 max_frames: int = 10000) -> None:
        self.frames: list[bytes] = []
        self.times: list[float] = []  # time.monotonic() when each frame was read
        # Bound to ETH_P_ALL only at bind() time so frames from other
        # interfaces never slip in before the socket is tied to `ifname`.
        self.sock = open_socket(_require_ns(ns), socket.AF_PACKET, socket.SOCK_RAW, 0)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 16 << 20)
            self.sock.bind((ifname, ETH_P_ALL))
            self.sock.settimeout(self.POLL)
        except BaseException:
            self.sock.close()
            raise
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(max_seconds, max_frames), daemon=True)
        self._thread.start()

    def _run(self, max_seconds: float, max_frames: int) -> None:
        deadline = time.monotonic() + max_seconds
        while (not self._stop.is_set() and len(self.frames) < max_frames
               and time.monotonic() < deadline):
            try:
                self._record(*self.sock.recvfrom(65535))
            except TimeoutError:
                continue
        # What arrived before stop() but was not read yet is part of the capture:
        # a test that stops right after its last send must still see that frame.
        self.sock.setblocking(False)
        while len(self.frames) < max_frames and time.monotonic() < deadline:
            try:
                self._record(*self.sock.recvfrom(65535))
            except BlockingIOError:
                break

    def _record(self, data: bytes, addr: tuple) -> None:
        if addr[2] != socket.PACKET_OUTGOING:
            self.times.append(time.monotonic())
            self.frames.append(data)

    def __enter__(self) -> Capture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> list[bytes]:
        """Stop capturing (idempotent) and return the frames seen."""
        self._stop.set()
        # The thread wakes every POLL seconds, so this join is short.
        self._thread.join(timeout=5)
        self.sock.close()
        return list(self.frames)


def udp_packets(frames: list[bytes], dst: str | None = None,
                dport: int | None = None) -> list[IP]:
    """IPv4/UDP packets (scapy IP layers) among `frames`, optionally filtered."""
    packets = []
    for frame in frames:
        packet = Ether(frame)
        if IP not in packet or UDP not in packet:
            continue
        ip = packet[IP]
        if (dst is None or ip.dst == dst) and (dport is None or ip[UDP].dport == dport):
            packets.append(ip)
    return packets
