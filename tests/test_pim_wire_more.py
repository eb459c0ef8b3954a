"""The Register, Register-Stop, Assert, Bootstrap and Candidate-RP codecs
(mcr.protocols.pim_wire_more, reached through pim_wire.parse_message):
round trips, bytes laid out by hand from RFC 7761 4.9 / RFC 5059 4, every
truncation and bad value raising Malformed, and cross-checks both ways with
the scapy layers in tests/pim_scapy.py."""

from __future__ import annotations

import socket
import struct

import pytest
from hypothesis import given, settings as hypothesis_settings, strategies as st
from scapy.compat import raw
from scapy.contrib.pim import PIMv2Hdr, PIMv2Hello, PIMv2JoinPrune
from scapy.layers.inet import IP, UDP

from mcr.membership import inet_checksum
from mcr.protocols.pim_wire import (GroupSet, Hello, JoinPrune, Malformed, Source, encode_hello, encode_join_prune,
                                    parse_message)
from mcr.protocols.pim_wire_more import (Assert, Bootstrap, BsrGroup, BsrRp, CandidateRp, Register, RegisterStop,
                                         encode_assert, encode_bootstrap, encode_candidate_rp, encode_register,
                                         encode_register_stop, null_register_packet)

from pim_scapy import PIMv2Assert, PIMv2Register, PIMv2RegisterStop

S, G, RP, DR = "10.1.0.2", "239.1.2.3", "10.9.9.9", "10.1.0.1"
DATA = raw(IP(src=S, dst=G, ttl=16) / UDP(sport=5000, dport=5001) / (b"x" * 40))

BOOTSTRAP = Bootstrap(0x1234, 30, 64, "10.0.0.1", (
    BsrGroup("224.0.0.0", 4, 2, (BsrRp("10.0.0.7", 150, 192), BsrRp("10.0.0.8", 150, 10))),
    BsrGroup("239.1.0.0", 16, 1, (BsrRp("10.0.0.9", 0xFFFF, 0),), admin_scope=True),
    BsrGroup("239.2.0.0", 16, 3, (BsrRp("10.0.0.5", 90, 1),)),  # one of three RPs: a fragment
))
MESSAGES = {
    "register": encode_register(Register(DATA)),
    "null_register": encode_register(Register(null_register_packet(S, G), border=True, null=True)),
    "register_stop": encode_register_stop(RegisterStop(G, S)),
    "assert": encode_assert(Assert(G, S, False, 110, 20)),
    "assert_rpt": encode_assert(Assert(G, "0.0.0.0", True, 0x7FFFFFFF, 0xFFFFFFFF)),
    "bootstrap": encode_bootstrap(BOOTSTRAP),
    "candidate_rp": encode_candidate_rp(CandidateRp(RP, 192, 150, (("239.0.0.0", 8), ("224.0.0.0", 4)))),
}


def with_checksum(message: bytes) -> bytes:
    """`message` with its whole-message checksum filled in afresh."""
    zeroed = message[:2] + b"\0\0" + message[4:]
    return zeroed[:2] + struct.pack("!H", inet_checksum(zeroed)) + zeroed[4:]


def scapy_bytes(pim) -> bytes:
    return raw(IP(src=DR, dst=RP) / pim)[20:]


# --- round trips ---

def test_register_round_trip_and_inner_addresses():
    message = parse_message(MESSAGES["register"])
    assert message == Register(DATA) and (message.source, message.group) == (S, G)


def test_null_register_round_trip_and_dummy_header():
    message = parse_message(MESSAGES["null_register"])
    assert message.null and message.border and (message.source, message.group) == (S, G)
    inner = IP(message.packet)
    assert (inner.src, inner.dst, inner.len, inner.proto, len(message.packet)) == (S, G, 20, 103, 20)
    assert inet_checksum(message.packet) == 0  # a correct header checksum


def test_register_checksum_covers_the_first_8_bytes_only():
    payload = MESSAGES["register"]
    assert inet_checksum(payload[:8]) == 0
    assert inet_checksum(payload) != 0  # so a whole-message check alone would refuse it


def test_a_whole_message_register_checksum_is_accepted_too():
    scapy_made = scapy_bytes(PIMv2Hdr(type=1) / PIMv2Register() / IP(DATA))
    assert inet_checksum(scapy_made) == 0 and inet_checksum(scapy_made[:8]) != 0
    assert parse_message(scapy_made) == Register(DATA)


@pytest.mark.parametrize("message", [RegisterStop(G, S), RegisterStop(G, "0.0.0.0", mask_len=32),
                                     Assert(G, S, False, 0, 0), Assert(G, S, True, 0x7FFFFFFF, 0xFFFFFFFF),
                                     BOOTSTRAP, Bootstrap(0, 0, 0, "10.0.0.1", no_forward=True),
                                     CandidateRp(RP, 0, 0), CandidateRp(RP, 255, 0xFFFF, (("239.0.0.0", 8),))])
def test_round_trip(message):
    encode = {RegisterStop: encode_register_stop, Assert: encode_assert, Bootstrap: encode_bootstrap,
              CandidateRp: encode_candidate_rp}[type(message)]
    payload = encode(message)
    assert inet_checksum(payload) == 0
    assert parse_message(payload) == message


def test_bootstrap_bytes_as_rfc_5059_lays_them_out():
    message = Bootstrap(7, 30, 5, "10.0.0.1", (BsrGroup("239.0.0.0", 8, 1, (BsrRp("10.0.0.2", 150, 9),)),),
                        no_forward=True)
    body = (struct.pack("!HBB", 7, 30, 5) + b"\x01\x00" + socket.inet_aton("10.0.0.1")
            + b"\x01\x00\x00\x08" + socket.inet_aton("239.0.0.0") + struct.pack("!BBH", 1, 1, 0)
            + b"\x01\x00" + socket.inet_aton("10.0.0.2") + struct.pack("!HBB", 150, 9, 0))
    assert encode_bootstrap(message) == with_checksum(b"\x24\x80\0\0" + body)  # N: the reserved byte's top bit


def test_candidate_rp_bytes_as_rfc_5059_lays_them_out():
    body = (struct.pack("!BBH", 1, 192, 150) + b"\x01\x00" + socket.inet_aton(RP)
            + b"\x01\x00\x00\x08" + socket.inet_aton("239.0.0.0"))
    assert encode_candidate_rp(CandidateRp(RP, 192, 150, (("239.0.0.0", 8),))) == with_checksum(b"\x28\0\0\0" + body)


# --- against scapy ---

def test_our_register_read_by_scapy():
    packet = IP(raw(IP(src=DR, dst=RP, proto=103) / MESSAGES["null_register"]))
    register = packet[PIMv2Register]
    assert (register.border, register.null_register, register.reserved2) == (1, 1, 0)
    assert (register[IP].src, register[IP].dst) == (S, G)
    data = IP(raw(IP(src=DR, dst=RP, proto=103) / MESSAGES["register"]))
    assert raw(data[PIMv2Register].payload) == DATA


def test_our_register_stop_read_by_scapy():
    stop = IP(raw(IP(src=RP, dst=DR, proto=103) / MESSAGES["register_stop"]))[PIMv2RegisterStop]
    assert (stop.group, stop.mask_len, stop.source, stop.addr_family, stop.source_family) == (G, 32, S, 1, 1)


def test_our_assert_read_by_scapy():
    message = IP(raw(IP(src=DR, dst="224.0.0.13", proto=103) / MESSAGES["assert"]))[PIMv2Assert]
    assert (message.group, message.source, message.rpt, message.metric_preference, message.metric) == (G, S, 0, 110, 20)
    cancel = IP(raw(IP(src=DR, dst="224.0.0.13", proto=103) / MESSAGES["assert_rpt"]))[PIMv2Assert]
    assert (cancel.source, cancel.rpt, cancel.metric_preference, cancel.metric) == ("0.0.0.0", 1, 0x7FFFFFFF,
                                                                                    0xFFFFFFFF)


def test_scapy_register_stop_and_assert_read_by_us():
    stop = scapy_bytes(PIMv2Hdr(type=2) / PIMv2RegisterStop(group=G, source="0.0.0.0"))
    assert parse_message(stop) == RegisterStop(G, "0.0.0.0")
    asserted = scapy_bytes(PIMv2Hdr(type=5) / PIMv2Assert(group=G, source=S, rpt=1, metric_preference=5,
                                                           metric=77))
    assert parse_message(asserted) == Assert(G, S, True, 5, 77)


def test_scapy_still_dissects_hello_and_join_prune_as_before():
    """Binding our layers under PIMv2Hdr leaves the types scapy knows alone."""
    hello = IP(raw(IP(src=DR, dst="224.0.0.13", proto=103) / encode_hello(Hello(105, 1, 7))))
    join = IP(raw(IP(src=DR, dst="224.0.0.13", proto=103)
                  / encode_join_prune(JoinPrune(RP, 210, (GroupSet(G, (Source(S),)),)))))
    assert hello.haslayer(PIMv2Hello) and not hello.haslayer(PIMv2Register)
    assert join[PIMv2JoinPrune].up_neighbor_ip == RP and join[PIMv2JoinPrune].num_group == 1


# --- bad input ---

def _truncations(name: str):
    payload = MESSAGES[name]
    return [with_checksum(payload[:n]) for n in range(4, len(payload))]


@pytest.mark.parametrize("name", ["register", "null_register", "register_stop", "assert", "candidate_rp"])
def test_every_truncation_is_malformed(name):
    for cut in _truncations(name):
        if name.endswith("register"):
            cut = cut[:2] + b"\0\0" + cut[4:]
            cut = cut[:2] + struct.pack("!H", inet_checksum(cut[:8])) + cut[4:]
        with pytest.raises(Malformed):
            parse_message(cut)


def test_bootstrap_truncations_are_malformed_except_at_a_range_boundary():
    payload = MESSAGES["bootstrap"]
    first, second = 8 + 4 + 2 * 10, 8 + 4 + 10  # a range: group 8, counts 4, each RP 10
    boundaries = {14 + first, 14 + first + second}
    for n in range(4, len(payload)):
        cut = with_checksum(payload[:n])
        if n in boundaries or n == 14:
            assert isinstance(parse_message(cut), Bootstrap)
            continue
        with pytest.raises(Malformed):
            parse_message(cut)


def _body_patch(name: str, offset: int, value: bytes) -> bytes:
    payload = MESSAGES[name]
    return with_checksum(payload[:offset] + value + payload[offset + len(value):])


BAD = {
    "bad_address_family": _body_patch("register_stop", 4, b"\x02"),
    "bad_encoding_type": _body_patch("assert", 5, b"\x01"),
    "bad_mask_length": _body_patch("register_stop", 7, b"\x21"),
    "bad_hash_mask_length": _body_patch("bootstrap", 6, b"\x21"),
    "bad_fragment_rp_count": _body_patch("bootstrap", 4 + 4 + 6 + 8, b"\x01\x02"),
    "register_inner_not_ipv4": _body_patch("register", 8, b"\x65"),
    "register_inner_bad_header_length": _body_patch("register", 8, b"\x44"),
    "register_inner_bad_total_length": _body_patch("register", 10, b"\x00\x10"),
    "register_inner_truncated": _body_patch("register", 10, b"\x04\x00"),
    "bad_checksum": MESSAGES["assert"][:-1] + b"\x99",
}


@pytest.mark.parametrize("reason", sorted(BAD))
def test_bad_values_raise_malformed_by_name(reason):
    data = BAD[reason]
    if reason.startswith("register_inner"):
        data = data[:2] + b"\0\0" + data[4:]
        data = data[:2] + struct.pack("!H", inet_checksum(data[:8])) + data[4:]
    with pytest.raises(Malformed) as caught:
        parse_message(data)
    assert caught.value.reason == reason


@hypothesis_settings(max_examples=400, deadline=None)
@given(kind=st.sampled_from([1, 2, 4, 5, 8]), body=st.binary(max_size=80))
def test_garbage_raises_only_malformed(kind, body):
    data = with_checksum(bytes([0x20 | kind, 0, 0, 0]) + body)
    try:
        parse_message(data)
    except Malformed:
        pass


@pytest.mark.parametrize("build", [
    lambda: encode_register(Register(b"\x45" + b"\0" * 10)),
    lambda: encode_assert(Assert(G, S, False, 1 << 31, 0)),
    lambda: encode_assert(Assert(G, S, False, 0, 1 << 32)),
    lambda: encode_register_stop(RegisterStop(G, S, mask_len=33)),
    lambda: encode_bootstrap(Bootstrap(1 << 16, 30, 0, "10.0.0.1")),
    lambda: encode_bootstrap(Bootstrap(1, 33, 0, "10.0.0.1")),
    lambda: encode_bootstrap(Bootstrap(1, 30, 0, "10.0.0.1", (BsrGroup(G, 32, 0, (BsrRp(RP, 1, 1),)),))),
    lambda: encode_bootstrap(Bootstrap(1, 30, 0, "10.0.0.1", (BsrGroup(G, 32, 1, (BsrRp(RP, 1 << 16, 1),)),))),
    lambda: encode_candidate_rp(CandidateRp(RP, 256, 0)),
])
def test_encoders_reject_values_that_do_not_fit(build):
    with pytest.raises(ValueError):
        build()
