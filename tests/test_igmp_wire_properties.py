"""Properties of the IGMP codec (mcr.protocols.igmp_wire): what we encode
parses back to the same message, and no bytes make the parser raise
anything but Malformed. The fuzz target (tests/fuzz/igmp_fuzz.py) covers
the second at a larger scale; these run in the ordinary suite."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from mcr import membership
from mcr.membership import inet_checksum
from mcr.protocols import igmp_wire
from mcr.protocols.igmp_wire import Query

FAST = settings(max_examples=200, deadline=None)

addresses = st.ip_addresses(v=4).map(str)
# Max Resp Code and QQIC values the floating-point form holds exactly.
codable = st.integers(0, 255).map(igmp_wire.decode_code)


def with_checksum(message: bytes) -> bytes:
    if len(message) < 4:
        return message
    zeroed = message[:2] + b"\0\0" + message[4:]
    return zeroed[:2] + struct.pack("!H", inet_checksum(zeroed)) + zeroed[4:]


queries = st.one_of(
    st.builds(Query, st.just(1), addresses, st.just(0.0)),
    st.builds(Query, st.just(2), addresses, st.integers(1, igmp_wire.MAX_V2_TENTHS).map(lambda t: t / 10)),
    st.builds(Query, st.just(3), addresses, codable.map(lambda t: t / 10), st.booleans(), st.integers(0, 7),
              codable, st.lists(addresses, max_size=20).map(tuple)))


@FAST
@given(queries)
def test_a_query_parses_back_to_itself(query) -> None:
    assert igmp_wire.parse_message(igmp_wire.encode_query(query)) == query


@FAST
@given(st.integers(0, igmp_wire.MAX_CODE_VALUE))
def test_a_code_holds_the_largest_value_it_can_up_to_the_one_asked(value) -> None:
    held = igmp_wire.decode_code(igmp_wire.encode_code(value))
    assert held <= value
    assert all(igmp_wire.decode_code(code) <= held or igmp_wire.decode_code(code) > value for code in range(256))


@FAST
@given(st.sampled_from([(igmp_wire.V1_REPORT, 1), (membership.V2_REPORT, 2), (membership.V2_LEAVE, None)]),
       addresses)
def test_v1_v2_reports_and_leaves_parse_back(kind, group) -> None:
    code, version = kind
    expected = igmp_wire.Leave(group) if version is None else igmp_wire.OldReport(version, group)
    assert igmp_wire.parse_message(membership.v2_message(code, group)) == expected


records = st.lists(st.tuples(st.integers(1, 6), addresses, st.lists(addresses, max_size=8)), max_size=8)


@FAST
@given(records)
def test_a_v3_report_parses_back_to_its_records(records) -> None:
    parsed = igmp_wire.parse_message(membership.v3_report(records))
    assert parsed == igmp_wire.V3Report(tuple(igmp_wire.GroupRecord(k, g, tuple(s)) for k, g, s in records))


def parses_or_is_malformed(message: bytes) -> None:
    try:
        igmp_wire.parse_message(message)
    except igmp_wire.Malformed as error:
        assert error.reason


@FAST
@given(st.binary(max_size=200), st.booleans())
def test_any_bytes_parse_or_are_malformed(data, fix_checksum) -> None:
    parses_or_is_malformed(with_checksum(data) if fix_checksum else data)


@FAST
@given(st.one_of(queries.map(igmp_wire.encode_query), records.map(membership.v3_report)), st.data())
def test_a_cut_or_altered_message_parses_or_is_malformed(message, data) -> None:
    cut = message[:data.draw(st.integers(0, len(message)))]
    at = data.draw(st.integers(0, max(len(cut) - 1, 0)))
    altered = cut[:at] + bytes([data.draw(st.integers(0, 255))]) + cut[at + 1:] if cut else cut
    parses_or_is_malformed(with_checksum(altered))
