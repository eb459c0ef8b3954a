"""Properties of the PIM codec (mcr.protocols.pim_wire): Hellos and
Join/Prunes we encode parse back to themselves, and no bytes make
parse_message raise anything but Malformed (message types added later are
covered through parse_message too). The fuzz target tests/fuzz/pim_fuzz.py
does the second at a larger scale."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from mcr.membership import inet_checksum
from mcr.protocols import pim_wire

FAST = settings(max_examples=200, deadline=None)

addresses = st.ip_addresses(v=4).map(str)
u16, u32 = st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF)
mask_lens = st.integers(0, 32)


def with_checksum(message: bytes) -> bytes:
    if len(message) < 4:
        return message
    zeroed = message[:2] + b"\0\0" + message[4:]
    return zeroed[:2] + struct.pack("!H", inet_checksum(zeroed)) + zeroed[4:]


hellos = st.builds(
    pim_wire.Hello, u16, st.none() | u32, st.none() | u32,
    st.none() | st.builds(pim_wire.LanPruneDelay, st.booleans(), st.integers(0, pim_wire.MAX_PROPAGATION_DELAY_MS),
                          u16),
    st.lists(addresses, max_size=6).map(tuple))
sources = st.builds(pim_wire.Source, addresses, st.booleans(), st.booleans(), st.booleans(), mask_lens)
group_sets = st.builds(pim_wire.GroupSet, addresses, st.lists(sources, max_size=4).map(tuple),
                       st.lists(sources, max_size=4).map(tuple), mask_lens, st.booleans(), st.booleans())
join_prunes = st.builds(pim_wire.JoinPrune, addresses, u16, st.lists(group_sets, max_size=5).map(tuple))


@FAST
@given(hellos)
def test_a_hello_parses_back_to_itself(hello) -> None:
    assert pim_wire.parse_message(pim_wire.encode_hello(hello)) == hello


@FAST
@given(join_prunes)
def test_a_join_prune_parses_back_to_itself(message) -> None:
    assert pim_wire.parse_message(pim_wire.encode_join_prune(message)) == message


def parses_or_is_malformed(message: bytes) -> None:
    try:
        pim_wire.parse_message(message)
    except pim_wire.Malformed as error:
        assert error.reason


@FAST
@given(st.binary(max_size=200), st.booleans())
def test_any_bytes_parse_or_are_malformed(data, fix_checksum) -> None:
    parses_or_is_malformed(with_checksum(data) if fix_checksum else data)


@FAST
@given(st.integers(0, 15), st.binary(max_size=100))
def test_every_type_with_a_good_header_parses_or_is_malformed(kind, body) -> None:
    parses_or_is_malformed(with_checksum(bytes([pim_wire.PIM_VERSION << 4 | kind, 0, 0, 0]) + body))


@FAST
@given(st.one_of(hellos.map(pim_wire.encode_hello), join_prunes.map(pim_wire.encode_join_prune)), st.data())
def test_a_cut_or_altered_message_parses_or_is_malformed(message, data) -> None:
    cut = message[:data.draw(st.integers(0, len(message)))]
    at = data.draw(st.integers(0, max(len(cut) - 1, 0)))
    altered = cut[:at] + bytes([data.draw(st.integers(0, 255))]) + cut[at + 1:] if cut else cut
    parses_or_is_malformed(with_checksum(altered))
