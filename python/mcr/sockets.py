"""The privileged sockets the engine is handed: packet inputs, UDP and packet egress.

The engine opens no socket itself; whoever holds the privileges (this
process, or later the supervisor) opens them here and passes them over the
command channel.
"""

from __future__ import annotations

import ctypes
import fcntl
import socket
import struct
from typing import Callable

from . import _engine

ETH_P_ALL = 0x0003
SO_ATTACH_FILTER = 26
SO_BINDTODEVICE = 25
SO_RCVBUFFORCE = 33
SO_SNDBUFFORCE = 32
PACKET_IGNORE_OUTGOING = 23
PACKET_FANOUT = 18
PACKET_FANOUT_HASH = 0  # by flow: one stream stays on one worker, in order
SOL_PACKET = 263
PACKET_HOST, PACKET_MULTICAST = 0, 2
SIOCGIFADDR = 0x8915
SIOCGIFMTU = 0x8921
SIOCGIFHWADDR = 0x8927
PACKET_QDISC_BYPASS = 20
PACKET_VNET_HDR = 15
SKF_AD_PKTTYPE = 0xFFFFF000 + 4  # classic BPF ancillary load of skb->pkt_type

EGRESS_SNDBUF = 4 << 20


def bpf(code: int, jt: int, jf: int, k: int) -> bytes:
    """One classic BPF instruction."""
    return struct.pack("HBBI", code, jt, jf, k)


def attach_filter(sock: socket.socket, program: list[bytes]) -> None:
    code = b"".join(program)
    buffer = ctypes.create_string_buffer(code)  # must outlive the setsockopt call
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, struct.pack("HL", len(program), ctypes.addressof(buffer)))


# Let through frames addressed to a multicast MAC that carry IPv4 (or a VLAN
# tag the NIC left in place), and UDP/IPv4 addressed to this host (unicast
# inputs: rules whose group is an address of the interface). Everything else
# (ARP, IPv6, TCP, our own transmissions, which are PACKET_OUTGOING) stays in
# the kernel.
_INPUT_FILTER = [
    bpf(0x20, 0, 0, SKF_AD_PKTTYPE),  # 0: ld pkttype
    bpf(0x15, 1, 0, PACKET_MULTICAST),  # 1: multicast -> 3
    bpf(0x15, 4, 8, PACKET_HOST),  # 2: to this host -> 7, else drop
    bpf(0x28, 0, 0, 12),  # 3: ldh [12] (ethertype)
    bpf(0x15, 7, 0, 0x0800),  # 4: IPv4 -> accept
    bpf(0x15, 6, 0, 0x8100),  # 5: 802.1Q -> accept
    bpf(0x15, 5, 4, 0x88A8),  # 6: 802.1ad -> accept, else drop
    bpf(0x28, 0, 0, 12),  # 7: ldh [12]
    bpf(0x15, 0, 2, 0x0800),  # 8: IPv4 ? next : drop
    bpf(0x30, 0, 0, 23),  # 9: ldb [23] (IP protocol)
    bpf(0x15, 1, 0, 17),  # 10: UDP -> accept
    bpf(0x06, 0, 0, 0),  # 11: drop
    bpf(0x06, 0, 0, 0x40000),  # 12: accept whole frame
]


# Links without an Ethernet header (tun, WireGuard, GRE, ipip) hand over bare
# IPv4 packets: let through those to a multicast destination, and UDP.
_BARE_IP_INPUT_FILTER = [
    bpf(0x30, 0, 0, 0),  # 0: ldb [0] (version, IHL)
    bpf(0x54, 0, 0, 0xF0),  # 1: and #0xf0
    bpf(0x15, 0, 5, 0x40),  # 2: IPv4 ? next : drop
    bpf(0x30, 0, 0, 16),  # 3: ldb [16] (the destination's first byte)
    bpf(0x54, 0, 0, 0xF0),  # 4
    bpf(0x15, 3, 0, 0xE0),  # 5: 224.0.0.0/4 -> accept
    bpf(0x30, 0, 0, 9),  # 6: ldb [9] (IP protocol)
    bpf(0x15, 1, 0, 17),  # 7: UDP -> accept
    bpf(0x06, 0, 0, 0),  # 8: drop
    bpf(0x06, 0, 0, 0x40000),  # 9: accept whole packet
]

ARPHRD_ETHER = 1


def link_type(ifname: str) -> int:
    """The interface's ARPHRD_* hardware type (1: Ethernet; tun and WireGuard: ARPHRD_NONE)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        raw = fcntl.ioctl(probe.fileno(), SIOCGIFHWADDR, struct.pack("16s16s", ifname.encode(), b""))
    return struct.unpack_from("H", raw, 16)[0]


def has_ethernet_header(ifname: str) -> bool:
    return link_type(ifname) == ARPHRD_ETHER


def force_buffer(sock: socket.socket, force: int, plain: int, size: int) -> None:
    """Raise a socket buffer past the sysctl cap when privileged, else as far as allowed."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, force, size)
    except PermissionError:
        sock.setsockopt(socket.SOL_SOCKET, plain, size)


def open_input_socket(ifname: str, fanout_group: int | None = None) -> socket.socket:
    """An AF_PACKET socket receiving multicast IPv4 frames arriving on `ifname`.

    Below the IP layer, so the kernel's reverse-path filter never drops what
    the relay should see. Sockets of several workers in one `fanout_group`
    share the interface's traffic: each frame goes to exactly one of them.
    """
    program = _INPUT_FILTER if has_ethernet_header(ifname) else _BARE_IP_INPUT_FILTER
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    try:
        attach_filter(sock, program)
        sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
        sock.bind((ifname, ETH_P_ALL))
        if fanout_group is not None:
            sock.setsockopt(SOL_PACKET, PACKET_FANOUT, (fanout_group & 0xFFFF) | PACKET_FANOUT_HASH << 16)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def open_egress_socket(ifname: str) -> socket.socket:
    """A UDP socket that sends out of `ifname` only; TTL and TOS come per packet."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        ifindex = socket.if_nametoindex(ifname)
        sock.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, ifname.encode())
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, struct.pack("4s4si", b"", b"", ifindex))
        # Our own multicast must not come back to us as input.
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
        force_buffer(sock, SO_SNDBUFFORCE, socket.SO_SNDBUF, EGRESS_SNDBUF)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def open_packet_egress_socket(ifname: str, queued: bool = False) -> tuple[socket.socket, dict]:
    """An AF_PACKET socket that sends prebuilt frames out of `ifname`, and what
    the frames need (link_info). It receives nothing (protocol 0). Raises
    OSError if the interface has no IPv4 address. `queued` keeps the qdisc in
    the way, for the frames of outputs with a priority (QoS); otherwise the
    frames bypass it."""
    link = link_info(ifname)
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    try:
        if not queued:
            sock.setsockopt(SOL_PACKET, PACKET_QDISC_BYPASS, 1)  # nothing to queue on: veth/NICs take it directly
        # Every frame the engine sends starts with a virtio_net_hdr whose hdr_len
        # makes the kernel build one linear buffer (see cpp/egress.cpp).
        sock.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
        force_buffer(sock, SO_SNDBUFFORCE, socket.SO_SNDBUF, EGRESS_SNDBUF)
        sock.bind((ifname, 0))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock, link


def link_info(ifname: str) -> dict:
    """What the packet path's frames take from `ifname`: its first IPv4
    address (their source), MTU and MAC. Raises OSError without an address."""
    source = interface_address(ifname)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        mtu = struct.unpack("16si", fcntl.ioctl(probe.fileno(), SIOCGIFMTU, struct.pack("16si", ifname.encode(), 0)))[1]
        # struct ifreq with a sockaddr: family (2 bytes), then the hardware address.
        raw = fcntl.ioctl(probe.fileno(), SIOCGIFHWADDR, struct.pack("16s16s", ifname.encode(), b""))
    return {"source": source, "mtu": mtu, "mac": raw[18:24]}


def open_output_sockets(ifname: str) -> list[tuple[socket.socket, Callable, tuple]]:
    """Every socket an output interface needs, each with the command that hands
    it to the engine and that command's arguments after the ifindex: the UDP
    socket, and the packet socket multicast outputs use when the interface
    has an IPv4 address and an Ethernet header (otherwise every output takes
    the UDP socket: on tun, WireGuard or GRE the kernel's IP layer is the
    only framing there is, so keep-source and vlan= outputs need Ethernet)."""
    opened = [(open_egress_socket(ifname), _engine.encode_add_egress, ())]
    if not has_ethernet_header(ifname):
        return opened
    try:
        frames, link = open_packet_egress_socket(ifname)
    except OSError:
        return opened
    return opened + [(frames, _engine.encode_add_packet_egress, (link["source"], link["mtu"], link["mac"]))]


def open_queued_sockets(ifname: str) -> list[tuple[socket.socket, Callable, tuple]]:
    """The packet socket whose frames pass `ifname`'s qdisc, for outputs with
    a priority (QoS), with its command and arguments as open_output_sockets
    gives them; none where the packet path is not used. Opened only for an
    interface that has such an output: each TX ring maps 4 MiB."""
    if not has_ethernet_header(ifname):
        return []
    try:
        queued, link = open_packet_egress_socket(ifname, queued=True)
    except OSError:
        return []
    return [(queued, _engine.encode_add_queued_egress, (link["source"], link["mtu"], link["mac"]))]


def interface_address(ifname: str) -> str:
    """The first IPv4 address of `ifname` (the source of the packet path's frames)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            raw = fcntl.ioctl(probe.fileno(), SIOCGIFADDR, struct.pack("256s", ifname.encode()[:15]))
        except OSError as error:
            raise OSError(error.errno, f"interface {ifname} has no IPv4 address for a source-specific join") from None
    return socket.inet_ntoa(raw[20:24])


class PortClaims:
    """UDP sockets bound to the (address, port) of unicast inputs, that drop
    everything they get. The relay reads a unicast input through its packet
    socket; without a socket bound to that port the host's own UDP stack would
    also answer every datagram with ICMP port unreachable, and senders that
    read ICMP errors (or a connected socket) would stop. The kernel counts what
    these sockets drop as UDP InErrors. Counted per (address, port), so rules
    sharing one share the socket."""

    def __init__(self) -> None:
        self._claims: dict[tuple[str, int], list] = {}

    def claim(self, address: str, port: int) -> None:
        """Call inside the interface's network namespace."""
        key = (address, port)
        if key in self._claims:
            self._claims[key][1] += 1
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            attach_filter(sock, [bpf(0x06, 0, 0, 0)])  # drop all: never queued, never read
            sock.bind(key)
        except OSError:
            sock.close()
            raise
        self._claims[key] = [sock, 1]

    def release(self, address: str, port: int) -> None:
        entry = self._claims.get((address, port))
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            entry[0].close()
            del self._claims[(address, port)]

    def close(self) -> None:
        for sock, _ in self._claims.values():
            sock.close()
        self._claims.clear()


IPPROTO_PIM = 103
IP_MTU_DISCOVER, IP_PMTUDISC_DONT = 10, 0
REGISTER_RCVBUF = 4 << 20

# A raw socket sees each packet from its IP header: let through PIM
# Registers only (version 2, type 1, the first byte after the IP header);
# the supervisor's own raw socket reads Hellos, Join/Prunes and Register-Stops.
_REGISTER_FILTER = [
    bpf(0xB1, 0, 0, 0),  # 0: ldxb 4*([0]&0xf) (the IP header length)
    bpf(0x50, 0, 0, 0),  # 1: ldb [x+0] (PIM version and type)
    bpf(0x15, 0, 1, 0x21),  # 2: Register ? accept : drop
    bpf(0x06, 0, 0, 0x40000),  # 3: accept
    bpf(0x06, 0, 0, 0),  # 4: drop
]
_DROP_ALL = [bpf(0x06, 0, 0, 0)]


def open_register_socket() -> socket.socket:
    """The raw IPPROTO_PIM socket the engine's register outputs send on (the
    kernel writes the outer IPv4 header). DF is clear, so a Register beyond
    the path MTU leaves fragmented, as Linux's pimreg sends it; it receives
    nothing (every raw PIM socket would get a copy of each PIM message)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, IPPROTO_PIM)
    try:
        attach_filter(sock, _DROP_ALL)
        sock.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DONT)
        force_buffer(sock, SO_SNDBUFFORCE, socket.SO_SNDBUF, EGRESS_SNDBUF)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def open_register_input_socket(reading: bool = True) -> socket.socket:
    """The raw IPPROTO_PIM socket the engine reads Registers from (at the
    RP); with `reading` False one that reads nothing (for a second worker)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, IPPROTO_PIM)
    try:
        attach_filter(sock, _REGISTER_FILTER if reading else _DROP_ALL)
        force_buffer(sock, SO_RCVBUFFORCE, socket.SO_RCVBUF, REGISTER_RCVBUF)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock
