"""Test-only helpers for PIM Registers: a scapy layer in scapy's own style
(scapy.contrib.pim has Hello and Join/Prune, not Register), and a raw
IPPROTO_PIM socket in a lab namespace that sends or receives them.

The production code never builds a Register in Python: the engine does
(cpp/pim_register.h). These judge its output and feed its input.
"""

from __future__ import annotations

import socket
import time

from scapy.fields import BitField, ByteField, FlagsField, XShortField
from scapy.layers.inet import IP
from scapy.packet import Packet
from scapy.utils import checksum

from mcr.lab.netns import open_socket

IPPROTO_PIM = 103


class PIMRegister(Packet):
    """RFC 7761 4.9.3: the PIM header (version 2, type 1), then B, N and 30
    reserved bits; the checksum covers these 8 bytes only. The payload is
    the encapsulated IPv4 packet."""

    name = "PIMv2 Register"
    fields_desc = [
        BitField("version", 2, 4),
        BitField("type", 1, 4),
        ByteField("reserved", 0),
        XShortField("chksum", None),
        FlagsField("flags", 0, 2, ["N", "B"]),  # the first bit on the wire is B, then N
        BitField("reserved2", 0, 30),
    ]

    def post_build(self, pkt: bytes, pay: bytes) -> bytes:
        if self.chksum is None:
            pkt = pkt[:2] + checksum(pkt[:8]).to_bytes(2, "big") + pkt[4:]
        return pkt + pay

    def guess_payload_class(self, payload: bytes):
        return IP

    def header_checksum_ok(self) -> bool:
        return checksum(bytes(self)[:8]) == 0


class PimSocket:
    """A raw IPPROTO_PIM socket in namespace `ns`: what an RP or a DR would use."""

    def __init__(self, ns: str) -> None:
        self.sock = open_socket(ns, socket.AF_INET, socket.SOCK_RAW, IPPROTO_PIM)

    def send(self, pim: bytes, to: str) -> None:
        """One PIM message to `to`; the kernel writes the outer IPv4 header."""
        self.sock.sendto(pim, (to, 0))

    def receive(self, count: int, timeout: float, idle: float = 1.0) -> list[IP]:
        """Up to `count` whole packets (outer IP header first), within
        `timeout` seconds, stopping `idle` seconds after the last one."""
        packets: list[IP] = []
        deadline = time.monotonic() + timeout
        last = None
        while len(packets) < count:
            now = time.monotonic()
            wait = deadline - now if last is None else min(deadline - now, last + idle - now)
            if wait <= 0:
                break
            self.sock.settimeout(wait)
            try:
                data = self.sock.recv(65535)
            except TimeoutError:
                break
            packets.append(IP(data))
            last = time.monotonic()
        return packets

    def close(self) -> None:
        self.sock.close()
