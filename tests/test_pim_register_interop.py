"""Our Register codec against FRRouting's pimd as the RP, on one veth link
between two namespaces this test creates: a Register and a Null-Register
built by mcr.protocols.pim_wire_more (checksum over the first 8 bytes),
and a Register checksummed over the whole message, are accepted by FRR,
which answers with a Register-Stop that our codec reads; a corrupted
checksum is not. FRR's RP has no receivers and switches to the SPT at once, so
RFC 7761 4.4.2 has it stop the registers straight away.

The DR side here is a raw IPPROTO_PIM socket, not the supervisor: the
cores are not wired to sockets yet."""

from __future__ import annotations

import select
import socket
import time

import pytest

from mcr.lab import frr
from mcr.membership import inet_checksum
from mcr.lab.netns import Lab, open_socket
from mcr.protocols.pim_wire import REGISTER_STOP, Malformed, parse_message
from mcr.protocols.pim_wire_more import Register, RegisterStop, encode_register, null_register_packet

pytestmark = pytest.mark.skipif(not frr.available(), reason="FRR (Debian frr) is not installed")

DR, RP, G, OTHER_G = "10.77.0.1", "10.77.0.2", "239.7.7.7", "239.7.7.8"
IPPROTO_PIM = 103
ATTEMPTS, INTERVAL = 12, 0.5  # bounded: at most 12 Registers, one every half second


def frr_config(ifname: str) -> str:
    return (f"frr defaults traditional\nhostname rp\nip pim rp {RP} 224.0.0.0/4\n"
            f"interface {ifname}\n ip pim\n")


def inner_packet(group: str) -> bytes:
    """A small UDP datagram from S (the DR's own address: directly connected) to G."""
    udp = b"\x13\x88\x13\x89\x00\x0c\x00\x00data"
    header = (b"\x45\x00" + (20 + len(udp)).to_bytes(2, "big") + b"\x00\x00\x00\x00\x10\x11\x00\x00"
              + socket.inet_aton(DR) + socket.inet_aton(group))
    return header + udp


def register_stop_from(sock: socket.socket, deadline: float) -> RegisterStop | None:
    """The first Register-Stop from the RP before `deadline`; other PIM
    traffic (FRR's Hellos) is skipped."""
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([sock], [], [], left)
        if not ready:
            return None
        data, (source, _) = sock.recvfrom(65535)
        body = data[(data[0] & 0x0F) * 4:]
        if source != RP or len(body) < 1 or body[0] & 0x0F != REGISTER_STOP:
            continue
        try:
            message = parse_message(body)
        except Malformed:
            continue
        if isinstance(message, RegisterStop):
            return message
    return None


def whole_message_checksum(payload: bytes) -> bytes:
    """The same Register with its checksum over every byte instead."""
    zeroed = payload[:2] + b"\0\0" + payload[4:]
    return zeroed[:2] + inet_checksum(zeroed).to_bytes(2, "big") + zeroed[4:]


def corrupted(payload: bytes) -> bytes:
    """Wrong under both checksum rules."""
    return payload[:2] + bytes([payload[2] ^ 0xFF]) + payload[3:]


def registers_until_stopped(sock: socket.socket, payload: bytes, attempts: int = ATTEMPTS) -> RegisterStop | None:
    for _ in range(attempts):
        sock.sendto(payload, (RP, 0))
        stop = register_stop_from(sock, time.monotonic() + INTERVAL)
        if stop is not None:
            return stop
    return None


def register_counters(peer: frr.Frr, ifname: str) -> tuple[int, int]:
    traffic = peer.show("show ip pim interface traffic json")[ifname]
    return traffic["registerRx"], traffic["registerStopTx"]


@pytest.mark.parametrize("variant", ["data", "null", "whole_message_checksum"])
def test_frr_rp_answers_our_register_with_a_register_stop(variant):
    with Lab("mcrreg") as lab:
        dr_ns, rp_ns = lab.add_namespace("dr"), lab.add_namespace("rp")
        _, rp_if = lab.add_link(dr_ns, rp_ns, f"{DR}/24", f"{RP}/24")
        packet = null_register_packet(DR, G) if variant == "null" else inner_packet(G)
        payload = encode_register(Register(packet, null=variant == "null"))
        if variant == "whole_message_checksum":
            payload = whole_message_checksum(payload)
        with frr.Frr(rp_ns, frr_config(rp_if)) as peer, \
                open_socket(dr_ns, socket.AF_INET, socket.SOCK_RAW, IPPROTO_PIM) as sock:
            assert registers_until_stopped(sock, payload) == RegisterStop(G, DR)
            received, stops_sent = register_counters(peer, rp_if)
            assert received >= 1 and stops_sent >= 1


def test_frr_drops_a_register_whose_checksum_is_wrong():
    """The control: the same exchange with a corrupted checksum gets no
    answer, and FRR counts no Register; fixed, it does."""
    with Lab("mcrreg") as lab:
        dr_ns, rp_ns = lab.add_namespace("dr"), lab.add_namespace("rp")
        _, rp_if = lab.add_link(dr_ns, rp_ns, f"{DR}/24", f"{RP}/24")
        with frr.Frr(rp_ns, frr_config(rp_if)) as peer, \
                open_socket(dr_ns, socket.AF_INET, socket.SOCK_RAW, IPPROTO_PIM) as sock:
            assert registers_until_stopped(sock, encode_register(Register(inner_packet(G)))) is not None  # FRR is up
            before = register_counters(peer, rp_if)
            good = encode_register(Register(inner_packet(OTHER_G)))
            assert registers_until_stopped(sock, corrupted(good), attempts=4) is None
            assert register_counters(peer, rp_if) == before
            assert registers_until_stopped(sock, good) == RegisterStop(OTHER_G, DR)
