"""The MSDP codec (mcr.protocols.msdp_wire) against byte vectors worked out
by hand from RFC 3618 section 12, and every malformed TLV it must refuse
with MsdpDecodeError. scapy has no MSDP layer, so there is nothing to
cross-check against there; the vectors are the reference."""

from __future__ import annotations

import struct

import pytest

from mcr.protocols import msdp_wire
from mcr.protocols.msdp_wire import (Keepalive, MsdpDecodeError, SourceActive, StreamDecoder, UnknownTlv,
                                     decode_tlv, encode, encode_source_actives)

# Type 1, length 20, one entry, RP 10.0.0.1; reserved 000000, sprefix 32,
# group 239.1.2.3, source 192.168.1.10 (section 12.2 puts the group first).
SA_ONE = bytes.fromhex("010014" "01" "0a000001" "000000" "20" "ef010203" "c0a8010a")
SA_TWO = bytes.fromhex("010020" "02" "0a000001"
                       "00000020" "ef010203" "c0a8010a"
                       "00000020" "e8010101" "0a090807")
KEEPALIVE = bytes.fromhex("040003")


def ipv4_packet(payload: bytes = b"hi") -> bytes:
    """A minimal IPv4 header (no checksum needed: we only check its shape) and a payload."""
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0, 64, 17, 0,
                       bytes([192, 168, 1, 10]), bytes([239, 1, 2, 3])) + payload


def test_constants_follow_the_rfc() -> None:
    assert (msdp_wire.MSDP_PORT, msdp_wire.MAX_MESSAGE, msdp_wire.SA_HEADER, msdp_wire.SA_ENTRY) == (639, 9192, 8, 12)


def test_a_one_entry_sa_is_byte_exact() -> None:
    message = SourceActive("10.0.0.1", (("192.168.1.10", "239.1.2.3"),))
    assert encode(message) == SA_ONE
    assert decode_tlv(SA_ONE) == message


def test_a_two_entry_sa_is_byte_exact() -> None:
    message = SourceActive("10.0.0.1", (("192.168.1.10", "239.1.2.3"), ("10.9.8.7", "232.1.1.1")))
    assert encode(message) == SA_TWO
    assert decode_tlv(SA_TWO) == message


def test_a_keepalive_is_three_bytes() -> None:
    assert encode(Keepalive()) == KEEPALIVE
    assert decode_tlv(KEEPALIVE) == Keepalive()


def test_an_sa_carries_its_data_packet_after_the_entries() -> None:
    packet = ipv4_packet()
    message = SourceActive("10.0.0.1", (("192.168.1.10", "239.1.2.3"),), packet)
    wire = encode(message)
    assert wire[1:3] == (20 + len(packet)).to_bytes(2, "big") and wire[20:] == packet
    assert decode_tlv(wire) == message


def test_sa_request_and_response_and_other_types_are_unknown() -> None:
    # SA-Request (2): reserved octet + group; SA-Response (3) looks like an SA.
    request = bytes.fromhex("020008" "00" "ef010203")
    assert decode_tlv(request) == UnknownTlv(2, bytes.fromhex("00ef010203"))
    assert decode_tlv(b"\x03" + SA_ONE[1:]) == UnknownTlv(3, SA_ONE[3:])
    assert decode_tlv(bytes.fromhex("ff0003")) == UnknownTlv(255, b"")
    assert encode(UnknownTlv(5, b"ab")) == bytes.fromhex("0500056162")


MALFORMED = [
    (bytes.fromhex("040002"), "shorter than its own 3-byte header"),
    (bytes.fromhex("010000"), "shorter than its own 3-byte header"),
    (bytes.fromhex("0523f0") + bytes(9189), "over the 9192-byte limit"),
    (bytes.fromhex("040004") + b"\0", "Keepalive has length 4"),
    (bytes.fromhex("010007") + bytes(4), "shorter than its 8-byte header"),
    (bytes.fromhex("010008" "00" "0a000001"), "entry count 0"),
    (SA_TWO[:1] + b"\x00\x14" + SA_TWO[3:20], "too short for its 2 entries"),
    (SA_ONE[:11] + b"\x18" + SA_ONE[12:], "sprefix length 24"),
    (SA_ONE[:1] + b"\x00\x16" + SA_ONE[3:] + b"\x45\x00", "shorter than an IPv4 header"),
    (SA_ONE[:1] + b"\x00\x28" + SA_ONE[3:] + b"\x65" + ipv4_packet(b"")[1:], r"not IPv4 \(version 6\)"),
    (SA_ONE[:1] + b"\x00\x28" + SA_ONE[3:] + b"\x44" + ipv4_packet(b"")[1:], "below 20 bytes"),
    (SA_ONE[:1] + b"\x00\x28" + SA_ONE[3:] + ipv4_packet(b"")[:2] + b"\x00\x40" + ipv4_packet(b"")[4:],
     "total length 64"),
]


@pytest.mark.parametrize("wire, says", MALFORMED, ids=[says for _, says in MALFORMED])
def test_malformed_tlvs_are_refused_with_a_reason(wire: bytes, says: str) -> None:
    with pytest.raises(MsdpDecodeError, match=says):
        StreamDecoder().feed(wire)


def test_decode_tlv_wants_exactly_one_tlv() -> None:
    with pytest.raises(MsdpDecodeError, match="shorter than a TLV header"):
        decode_tlv(b"\x04\x00")
    with pytest.raises(MsdpDecodeError, match="says 3 bytes but 4"):
        decode_tlv(KEEPALIVE + b"\0")


def test_a_too_long_tlv_is_refused_from_its_header_alone() -> None:
    with pytest.raises(MsdpDecodeError, match="over the 9192-byte limit"):
        StreamDecoder().feed(bytes.fromhex("0123f1"))


UNENCODABLE = [
    (SourceActive("10.0.0.1", ()), "at least one"),
    (SourceActive("10.0.0.300", (("1.1.1.1", "239.1.1.1"),)), "RP '10.0.0.300'"),
    (SourceActive("10.0.0.1", (("::1", "239.1.1.1"),)), "source '::1'"),
    (SourceActive("10.0.0.1", (("1.1.1.1", "239.1"),)), "group '239.1'"),
    (SourceActive("10.0.0.1", (("1.1.1.1", "239.1.1.1"),), b"\x45" + bytes(5)), "shorter than an IPv4 header"),
    (SourceActive("10.0.0.1", (("1.1.1.1", "239.1.1.1"),) * 256), "at most 255"),
    (SourceActive("10.0.0.1", (("1.1.1.1", "239.1.1.1"),), ipv4_packet(bytes(9200))), "over the 9192-byte"),
    (UnknownTlv(1, b""), "own message class"),
    (UnknownTlv(256, b""), "does not fit one octet"),
    (UnknownTlv(9, bytes(9190)), "over the 9192-byte"),
    ("not a message", "not an MSDP message"),
]


@pytest.mark.parametrize("message, says", UNENCODABLE, ids=[says for _, says in UNENCODABLE])
def test_encode_refuses_what_it_cannot_encode(message, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        encode(message)


def test_many_entries_split_into_several_sas_data_in_the_first() -> None:
    entries = [(f"10.0.{i // 256}.{i % 256}", "239.1.1.1") for i in range(600)]
    packet = ipv4_packet(bytes(100))
    wires = encode_source_actives("10.0.0.1", entries, packet)
    assert [w[3] for w in wires] == [255, 255, 90]
    decoded = [decode_tlv(w) for w in wires]
    assert [e for m in decoded for e in m.entries] == entries
    assert decoded[0].data == packet and decoded[1].data == b"" and decoded[2].data == b""
    assert all(len(w) <= msdp_wire.MAX_MESSAGE for w in wires)


def test_big_data_leaves_fewer_entries_in_the_first_sa() -> None:
    packet = ipv4_packet(bytes(9192 - 8 - 20 - 12 * 3))  # room for exactly 3 entries
    wires = encode_source_actives("10.0.0.1", [("1.1.1.1", "239.1.1.1")] * 5, packet)
    assert [w[3] for w in wires] == [3, 2] and len(wires[0]) == 9192


def test_encode_source_actives_refuses_nothing_to_say_or_no_room() -> None:
    with pytest.raises(ValueError, match="at least one"):
        encode_source_actives("10.0.0.1", [])
    with pytest.raises(ValueError, match="no room"):
        encode_source_actives("10.0.0.1", [("1.1.1.1", "239.1.1.1")], ipv4_packet(bytes(9170)))


def test_the_stream_decoder_waits_for_the_rest_of_a_tlv() -> None:
    decoder = StreamDecoder()
    assert decoder.feed(SA_ONE[:2]) == [] and decoder.buffered == 2
    assert decoder.feed(SA_ONE[2:10]) == [] and decoder.buffered == 10
    assert decoder.feed(SA_ONE[10:] + KEEPALIVE + SA_TWO[:5]) == [decode_tlv(SA_ONE), Keepalive()]
    assert decoder.buffered == 5
    assert decoder.feed(SA_TWO[5:]) == [decode_tlv(SA_TWO)] and decoder.buffered == 0


def test_the_stream_decoder_drops_its_buffer_after_an_error() -> None:
    decoder = StreamDecoder()
    assert decoder.feed(KEEPALIVE + b"\x04\x00") == [Keepalive()] and decoder.buffered == 2
    with pytest.raises(MsdpDecodeError, match="has length 2, shorter"):
        decoder.feed(b"\x02" + KEEPALIVE)
    assert decoder.buffered == 0
