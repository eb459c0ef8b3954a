"""Properties of the MSDP codec (mcr.protocols.msdp_wire): every message we
encode decodes back to itself, a valid stream cut into any chunks decodes
to the same messages, the SA splitter keeps every entry, and no bytes make
the stream decoder raise anything but MsdpDecodeError. The fuzz target
tests/fuzz/msdp_fuzz.py does the last at a larger scale."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from mcr.protocols import msdp_wire
from mcr.protocols.msdp_wire import (Keepalive, MsdpDecodeError, SourceActive, StreamDecoder, UnknownTlv,
                                     decode_tlv, encode, encode_source_actives)

FAST = settings(max_examples=100, deadline=None)

addresses = st.ip_addresses(v=4).map(str)
pairs = st.tuples(addresses, addresses)


@st.composite
def ipv4_packets(draw) -> bytes:
    """Bytes that look like an IPv4 packet: version 4, a header of 20-60 bytes, a total length that fits."""
    ihl = draw(st.integers(5, 15))
    body = draw(st.binary(min_size=ihl * 4 - 4, max_size=ihl * 4 - 4 + 64))
    total = draw(st.integers(ihl * 4, 4 + len(body)))
    return bytes([0x40 | ihl, draw(st.integers(0, 255))]) + struct.pack("!H", total) + body


source_actives = st.builds(SourceActive, addresses, st.lists(pairs, min_size=1, max_size=6).map(tuple),
                           st.just(b"") | ipv4_packets())
unknowns = st.builds(UnknownTlv, st.integers(0, 255).filter(lambda t: t not in (1, 4)), st.binary(max_size=60))
messages = st.one_of(source_actives, st.just(Keepalive()), unknowns)


@FAST
@given(messages)
def test_a_message_decodes_back_to_itself(message) -> None:
    assert decode_tlv(encode(message)) == message


@FAST
@given(st.lists(messages, max_size=6), st.data())
def test_any_split_of_a_valid_stream_decodes_to_the_same_messages(sent, data) -> None:
    stream = b"".join(encode(m) for m in sent)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    decoder, received = StreamDecoder(), []
    for start, end in zip([0, *cuts], [*cuts, len(stream)]):
        received += decoder.feed(stream[start:end])
    assert received == sent and decoder.buffered == 0


@settings(max_examples=60, deadline=None)
@given(addresses, st.integers(1, 1200), st.just(b"") | ipv4_packets().map(lambda p: p * 40))
def test_split_sas_keep_every_entry_in_order_and_fit(rp, count, packet) -> None:
    # Distinct entries (numbered) so that a lost, doubled or reordered one shows.
    entries = [(f"10.{i >> 8}.{i & 255}.1", "239.1.1.1") for i in range(count)]
    wires = encode_source_actives(rp, entries, packet)
    decoded = [decode_tlv(w) for w in wires]
    assert [e for m in decoded for e in m.entries] == entries
    assert all(len(w) <= msdp_wire.MAX_MESSAGE for w in wires)
    assert [m.data for m in decoded] == [packet] + [b""] * (len(wires) - 1)
    assert {m.rp for m in decoded} == {rp}


def decodes_or_is_refused(chunks: list[bytes]) -> None:
    decoder = StreamDecoder()
    try:
        for chunk in chunks:
            decoder.feed(chunk)
    except MsdpDecodeError as error:
        assert str(error)


@FAST
@given(st.lists(st.binary(max_size=120), max_size=5))
def test_random_bytes_never_raise_anything_but_msdp_decode_error(chunks) -> None:
    decodes_or_is_refused(chunks)


@FAST
@given(st.integers(0, 255), st.integers(0, 0xFFFF), st.binary(max_size=200))
def test_any_tlv_header_decodes_or_is_refused(kind, length, body) -> None:
    decodes_or_is_refused([struct.pack("!BH", kind, length) + body])


@FAST
@given(source_actives.map(encode), st.data())
def test_a_cut_or_altered_sa_decodes_or_is_refused(wire, data) -> None:
    at = data.draw(st.integers(0, len(wire) - 1))
    altered = wire[:at] + bytes([data.draw(st.integers(0, 255))]) + wire[at + 1:]
    decodes_or_is_refused([altered[:data.draw(st.integers(0, len(altered)))]])
