"""IGMP on the wire, router side: the queries a querier sends (v1, v2, v3)
and the messages it reads (v1/v2/v3 reports, v2 leaves, other routers'
queries). RFC 1112 appendix I, RFC 2236 section 2, RFC 3376 section 4.

Only the IGMP message: the adapter adds the IP header (TTL 1, TOS 0xC0,
Router Alert) on the way out and strips it on the way in. The host side's
message constants and checksum live in mcr.membership and are shared here.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from mcr.membership import IGMP_QUERY, V2_LEAVE, V2_REPORT, V3_REPORT, inet_checksum

V1_REPORT = 0x12
ALL_SYSTEMS = "224.0.0.1"  # RFC 3376 4.1.12: where general queries go
ANY_GROUP = "0.0.0.0"  # the group field of a general query
MAX_CODE_VALUE = 31 << 10  # RFC 3376 4.1.1: the largest value the floating-point form holds
MAX_V2_TENTHS = 255  # RFC 2236 2.2: Max Resp Time is a plain byte of tenths
# A group-and-source-specific query must fit the link (RFC 3376 4.1.8): a
# 1500-byte packet minus the IP header with Router Alert (24) and the fixed
# part of the query (12), in 4-byte sources. Larger lists go in several queries.
MAX_QUERY_SOURCES = (1500 - 24 - 12) // 4

_HEADER = struct.Struct("!BBH4s")  # type, max resp code, checksum, group: every IGMP message
_V3_QUERY_TAIL = struct.Struct("!BBH")  # Resv|S|QRV, QQIC, number of sources
_RECORD = struct.Struct("!BBH4s")  # record type, aux data len (words), number of sources, group


class Malformed(ValueError):
    """A message that cannot be read; `reason` names the drop counter."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Query:
    """A membership query, as sent or read. v1 queries carry no Max Resp Time;
    only v3 queries carry the S flag, QRV, QQIC and sources."""

    version: int
    group: str = ANY_GROUP
    max_response: float = 10.0  # seconds
    suppress: bool = False  # RFC 3376 4.1.5: Suppress Router-Side Processing
    robustness: int = 0  # QRV (4.1.6); 0: not given
    query_interval: int = 0  # QQI in seconds (4.1.7); 0: not given
    sources: tuple[str, ...] = ()


@dataclass(frozen=True)
class GroupRecord:
    """One group record of a v3 report (RFC 3376 4.2.4); `kind` is the record type."""

    kind: int
    group: str
    sources: tuple[str, ...]


@dataclass(frozen=True)
class V3Report:
    records: tuple[GroupRecord, ...]


@dataclass(frozen=True)
class OldReport:
    """A version 1 (0x12) or version 2 (0x16) membership report."""

    version: int
    group: str


@dataclass(frozen=True)
class Leave:
    """An IGMPv2 Leave Group message (RFC 2236 2.1)."""

    group: str


Message = Query | V3Report | OldReport | Leave


def decode_code(code: int) -> int:
    """Max Resp Code (tenths of seconds) or QQIC (seconds): RFC 3376 4.1.1 and
    4.1.7 share one form, a plain value below 128 and above it
    1|exp(3)|mant(4) meaning (mant | 0x10) << (exp + 3)."""
    if code < 128:
        return code
    return ((code & 0x0F) | 0x10) << (((code >> 4) & 0x07) + 3)


def encode_code(value: int) -> int:
    """The code for `value`; values the form cannot hold exactly are rounded
    down (so hosts answer a little early rather than late)."""
    if not 0 <= value <= MAX_CODE_VALUE:
        raise ValueError(f"{value} does not fit a Max Resp Code or QQIC (0 to {MAX_CODE_VALUE})")
    if value < 128:
        return value
    exp = value.bit_length() - 8  # leaves 5 bits, the mantissa with its implicit leading 1
    return 0x80 | exp << 4 | (value >> (exp + 3)) & 0x0F


def encode_query(query: Query) -> bytes:
    """The IGMP bytes of `query`, checksum included, in the format of its version."""
    group = socket.inet_aton(query.group)
    tenths = round(query.max_response * 10)
    if query.version == 1:  # RFC 3376 7.3.1: a v1 querier sends Max Resp Time 0
        message = _HEADER.pack(IGMP_QUERY, 0, 0, group)
    elif query.version == 2:
        if not 1 <= tenths <= MAX_V2_TENTHS:
            raise ValueError(f"an IGMPv2 query's Max Resp Time is 0.1 to 25.5 s, not {query.max_response}")
        message = _HEADER.pack(IGMP_QUERY, tenths, 0, group)
    else:
        qrv = query.robustness if query.robustness <= 7 else 0  # 4.1.6: above 7, send 0
        flags = (0x08 if query.suppress else 0) | qrv
        message = (_HEADER.pack(IGMP_QUERY, encode_code(tenths), 0, group)
                   + _V3_QUERY_TAIL.pack(flags, encode_code(query.query_interval), len(query.sources))
                   + b"".join(socket.inet_aton(s) for s in query.sources))
    return message[:2] + struct.pack("!H", inet_checksum(message)) + message[4:]


def parse_message(message: bytes) -> Message:
    """The IGMP message in `message` (the bytes after the IP header).
    Raises Malformed, whose reason names what was wrong."""
    if len(message) < _HEADER.size:
        raise Malformed("too_short")
    if inet_checksum(message) != 0:
        raise Malformed("bad_checksum")
    kind, code, _, raw_group = _HEADER.unpack_from(message)
    group = socket.inet_ntoa(raw_group)
    if kind == IGMP_QUERY:
        return _parse_query(message, code, group)
    if kind in (V1_REPORT, V2_REPORT):
        return OldReport(1 if kind == V1_REPORT else 2, group)
    if kind == V2_LEAVE:
        return Leave(group)
    if kind == V3_REPORT:
        return V3Report(_parse_records(message))
    raise Malformed("unknown_type")


def _parse_query(message: bytes, code: int, group: str) -> Query:
    # RFC 3376 7.1: 8 octets is v1 (code 0) or v2; 9 to 11 octets is no valid
    # query and is ignored; 12 or more is v3, and any data past the sources
    # is ignored (4.1.10).
    if len(message) == _HEADER.size:
        return Query(1, group, 0.0) if code == 0 else Query(2, group, code / 10)
    if len(message) < _HEADER.size + _V3_QUERY_TAIL.size:
        raise Malformed("bad_query_length")
    flags, qqic, count = _V3_QUERY_TAIL.unpack_from(message, _HEADER.size)
    start = _HEADER.size + _V3_QUERY_TAIL.size
    if len(message) < start + 4 * count:
        raise Malformed("truncated")
    return Query(3, group, decode_code(code) / 10, bool(flags & 0x08), flags & 0x07, decode_code(qqic),
                 _addresses(message, start, count))


def _parse_records(message: bytes) -> tuple[GroupRecord, ...]:
    """The group records of a v3 report (RFC 3376 4.2): header, sources, then
    auxiliary data, which is skipped (4.2.10)."""
    (count,) = struct.unpack_from("!H", message, 6)
    records, offset = [], 8
    for _ in range(count):
        if len(message) < offset + _RECORD.size:
            raise Malformed("truncated")
        kind, aux_words, sources, group = _RECORD.unpack_from(message, offset)
        start = offset + _RECORD.size
        offset = start + 4 * (sources + aux_words)
        if len(message) < offset:
            raise Malformed("truncated")
        records.append(GroupRecord(kind, socket.inet_ntoa(group), _addresses(message, start, sources)))
    return tuple(records)


def _addresses(message: bytes, start: int, count: int) -> tuple[str, ...]:
    return tuple(socket.inet_ntoa(message[i:i + 4]) for i in range(start, start + 4 * count, 4))
