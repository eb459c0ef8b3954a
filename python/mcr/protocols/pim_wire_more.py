"""PIM-SM messages beyond Hello and Join/Prune, IPv4 only: Register (RFC
7761 4.9.3), Register-Stop (4.9.4), Assert (4.9.6), Bootstrap (RFC 5059
4.1) and Candidate-RP-Advertisement (RFC 5059 4.2). `pim_wire.parse_message`
dispatches here; this module builds on its header and address helpers.

Checksums: a Register's covers only its first 8 bytes (4.9: the header and
the B|N word, never the data), which is also what FRR's pimd sends
(`pim_msg_build_header`). On receive `parse_message` accepts either that or
a checksum over the whole message, as 4.9 asks and as FRR's `pim_pim_packet`
does (it tries the 8 bytes first, then the whole).
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from mcr.membership import inet_checksum

from .pim_wire import (_GROUP, _HEADER, ASSERT, BOOTSTRAP, FAMILY_IPV4, NATIVE_ENCODING, PIM_VERSION,
                       REGISTER, REGISTER_STOP, Malformed, _check_family, _encode_unicast, _parse_unicast)

CANDIDATE_RP = 8  # RFC 5059 4.2 (listed in RFC 7761 4.9 as Candidate-RP-Advertisement)
REGISTER_HEADER_LEN = 8  # 4.9: the PIM header and the B|N word
ASSERT_INFINITE_PREFERENCE = 0x7FFFFFFF  # 4.6.1: an AssertCancel's metric preference (31 bits)
ASSERT_INFINITE_METRIC = 0xFFFFFFFF

_REGISTER_BITS = struct.Struct("!I")
_BORDER, _NULL = 0x80000000, 0x40000000
_ASSERT_METRICS = struct.Struct("!II")  # R|Metric Preference, Metric
_BSR_HEAD = struct.Struct("!HBB")  # fragment tag, hash mask length, BSR priority
_BSR_GROUP_COUNTS = struct.Struct("!BBH")  # RP count, fragment RP count, reserved
_BSR_RP_TAIL = struct.Struct("!HBB")  # RP holdtime, RP priority, reserved
_CRP_HEAD = struct.Struct("!BBH")  # prefix count, priority, holdtime
_IPV4_MIN = 20
_NO_FORWARD = 0x80  # RFC 5059 4.1: the N bit, high bit of the header's reserved byte


@dataclass(frozen=True)
class Register:
    """A Register (4.9.3): `packet` is the whole inner IPv4 packet (for a
    Null-Register, only a dummy header: 4.4.1)."""

    packet: bytes
    border: bool = False  # B: from a PMBR, obsolete in RFC 7761 but still on the wire
    null: bool = False  # N: a Null-Register, probing before the Register-Stop timer ends

    @property
    def source(self) -> str:
        return socket.inet_ntoa(self.packet[12:16])

    @property
    def group(self) -> str:
        return socket.inet_ntoa(self.packet[16:20])


@dataclass(frozen=True)
class RegisterStop:
    """A Register-Stop (4.9.4) for (source, group); source 0.0.0.0 stops
    every source of the group (a wildcard, 4.4.1)."""

    group: str
    source: str
    mask_len: int = 32


@dataclass(frozen=True)
class Assert:
    """An Assert (4.9.6). Source 0.0.0.0 with rpt set is a (*,G) Assert."""

    group: str
    source: str
    rpt: bool  # R: the metric is the RP tree's (4.6.1 rpt_assert_metric)
    preference: int  # 31 bits
    metric: int  # 32 bits


@dataclass(frozen=True)
class BsrRp:
    """One RP of a Bootstrap group range (RFC 5059 4.1)."""

    address: str
    holdtime: int
    priority: int


@dataclass(frozen=True)
class BsrGroup:
    """A group range of a Bootstrap: `rp_count` is the range's total over
    every fragment, `rps` what this fragment holds (its Frag RP Cnt)."""

    group: str
    mask_len: int
    rp_count: int
    rps: tuple[BsrRp, ...] = ()
    admin_scope: bool = False  # Z


@dataclass(frozen=True)
class Bootstrap:
    """A Bootstrap message or one fragment of it (RFC 5059 4.1)."""

    fragment_tag: int
    hash_mask_len: int
    bsr_priority: int
    bsr_address: str
    groups: tuple[BsrGroup, ...] = ()
    no_forward: bool = False  # N: sent unicast to a restarted neighbor, not to be forwarded (5059 3.5)


@dataclass(frozen=True)
class CandidateRp:
    """A Candidate-RP-Advertisement (RFC 5059 4.2); no groups: all of 224/4."""

    rp_address: str
    priority: int
    holdtime: int
    groups: tuple[tuple[str, int], ...] = ()  # (group, mask length)


MoreMessage = Register | RegisterStop | Assert | Bootstrap | CandidateRp


def _fits(name: str, value: int, bits: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << bits:
        raise ValueError(f"{name} must be a whole number that fits {bits} bits, not {value!r}")


def _header(kind: int, body: bytes, flags: int = 0, checked: int | None = None) -> bytes:
    """Header and body with the checksum over the first `checked` bytes
    (None: the whole message)."""
    message = _HEADER.pack(PIM_VERSION << 4 | kind, flags, 0) + body
    covered = message if checked is None else message[:checked]
    return message[:2] + struct.pack("!H", inet_checksum(covered)) + message[4:]


def _encode_group(group: str, mask_len: int, admin_scope: bool = False) -> bytes:
    if isinstance(mask_len, bool) or not isinstance(mask_len, int) or not 0 <= mask_len <= 32:
        raise ValueError(f"mask length must be a whole number in 0..32, not {mask_len!r}")
    return _GROUP.pack(FAMILY_IPV4, NATIVE_ENCODING, 0x01 if admin_scope else 0, mask_len, socket.inet_aton(group))


def _parse_group(data: bytes, offset: int) -> tuple[str, int, bool, int]:
    """(group, mask length, Z bit, next offset) of an Encoded-Group."""
    if len(data) < offset + _GROUP.size:
        raise Malformed("truncated")
    family, encoding, flags, mask_len, raw = _GROUP.unpack_from(data, offset)
    _check_family(family, encoding, mask_len)
    return socket.inet_ntoa(raw), mask_len, bool(flags & 0x01), offset + _GROUP.size


# --- Register (4.9.3) and Register-Stop (4.9.4) ---

def inner_header_problem(packet: bytes) -> str | None:
    """Why `packet` cannot be a Register's inner IPv4 packet, or None. The
    inner header checksum is not checked: FRR sends Null-Registers with it
    zero."""
    if len(packet) < _IPV4_MIN:
        return "register_inner_truncated"
    if packet[0] >> 4 != 4:
        return "register_inner_not_ipv4"
    header_len = (packet[0] & 0x0F) * 4
    if header_len < _IPV4_MIN or header_len > len(packet):
        return "register_inner_bad_header_length"
    total_len = struct.unpack_from("!H", packet, 2)[0]
    if total_len < header_len:
        return "register_inner_bad_total_length"
    if total_len > len(packet):
        return "register_inner_truncated"
    return None


def null_register_packet(source: str, group: str) -> bytes:
    """4.4.1 / 4.9.3: the Null-Register's dummy IP header, S to G with no
    data. Protocol PIM, as FRR sends it; the header checksum is correct."""
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, _IPV4_MIN, 0, 0, 0, 103, 0,
                         socket.inet_aton(source), socket.inet_aton(group))
    return header[:10] + struct.pack("!H", inet_checksum(header)) + header[12:]


def encode_register(message: Register) -> bytes:
    """The PIM bytes of a Register; the checksum covers the first 8 bytes."""
    problem = inner_header_problem(message.packet)
    if problem is not None:
        raise ValueError(f"not an IPv4 packet to encapsulate: {problem}")
    bits = (_BORDER if message.border else 0) | (_NULL if message.null else 0)
    return _header(REGISTER, _REGISTER_BITS.pack(bits) + message.packet, checked=REGISTER_HEADER_LEN)


def _parse_register(body: bytes) -> Register:
    if len(body) < _REGISTER_BITS.size:
        raise Malformed("truncated")
    bits = _REGISTER_BITS.unpack_from(body)[0]
    packet = body[_REGISTER_BITS.size:]
    problem = inner_header_problem(packet)
    if problem is not None:
        raise Malformed(problem)
    return Register(packet, bool(bits & _BORDER), bool(bits & _NULL))


def encode_register_stop(message: RegisterStop) -> bytes:
    return _header(REGISTER_STOP, _encode_group(message.group, message.mask_len) + _encode_unicast(message.source))


def _parse_register_stop(body: bytes) -> RegisterStop:
    group, mask_len, _, offset = _parse_group(body, 0)
    source, _ = _parse_unicast(body, offset)
    return RegisterStop(group, source, mask_len)


# --- Assert (4.9.6) ---

def encode_assert(message: Assert) -> bytes:
    _fits("metric preference", message.preference, 31)
    _fits("metric", message.metric, 32)
    metrics = _ASSERT_METRICS.pack((0x80000000 if message.rpt else 0) | message.preference, message.metric)
    return _header(ASSERT, _encode_group(message.group, 32) + _encode_unicast(message.source) + metrics)


def _parse_assert(body: bytes) -> Assert:
    group, _, _, offset = _parse_group(body, 0)
    source, offset = _parse_unicast(body, offset)
    if len(body) < offset + _ASSERT_METRICS.size:
        raise Malformed("truncated")
    first, metric = _ASSERT_METRICS.unpack_from(body, offset)
    return Assert(group, source, bool(first & 0x80000000), first & 0x7FFFFFFF, metric)


# --- Bootstrap (RFC 5059 4.1) ---

def encode_bootstrap(message: Bootstrap) -> bytes:
    _fits("fragment tag", message.fragment_tag, 16)
    _fits("BSR priority", message.bsr_priority, 8)
    if not 0 <= message.hash_mask_len <= 32:
        raise ValueError(f"hash mask length {message.hash_mask_len} is not in 0..32")
    parts = [_BSR_HEAD.pack(message.fragment_tag, message.hash_mask_len, message.bsr_priority),
             _encode_unicast(message.bsr_address)]
    for group in message.groups:
        _fits("RP count", group.rp_count, 8)
        if len(group.rps) > group.rp_count:
            raise ValueError(f"group {group.group}/{group.mask_len}: {len(group.rps)} RPs in a fragment, "
                             f"more than its RP count {group.rp_count}")
        parts.append(_encode_group(group.group, group.mask_len, group.admin_scope))
        parts.append(_BSR_GROUP_COUNTS.pack(group.rp_count, len(group.rps), 0))
        for rp in group.rps:
            _fits("RP holdtime", rp.holdtime, 16)
            _fits("RP priority", rp.priority, 8)
            parts.append(_encode_unicast(rp.address) + _BSR_RP_TAIL.pack(rp.holdtime, rp.priority, 0))
    return _header(BOOTSTRAP, b"".join(parts), _NO_FORWARD if message.no_forward else 0)


def _parse_bootstrap(flags: int, body: bytes) -> Bootstrap:
    if len(body) < _BSR_HEAD.size:
        raise Malformed("truncated")
    tag, hash_mask_len, priority = _BSR_HEAD.unpack_from(body)
    if hash_mask_len > 32:
        raise Malformed("bad_hash_mask_length")
    bsr, offset = _parse_unicast(body, _BSR_HEAD.size)
    groups = []
    while offset < len(body):
        group, offset = _parse_bsr_group(body, offset)
        groups.append(group)
    return Bootstrap(tag, hash_mask_len, priority, bsr, tuple(groups), bool(flags & _NO_FORWARD))


def _parse_bsr_group(body: bytes, offset: int) -> tuple[BsrGroup, int]:
    group, mask_len, admin_scope, offset = _parse_group(body, offset)
    if len(body) < offset + _BSR_GROUP_COUNTS.size:
        raise Malformed("truncated")
    rp_count, fragment_count, _ = _BSR_GROUP_COUNTS.unpack_from(body, offset)
    offset += _BSR_GROUP_COUNTS.size
    if fragment_count > rp_count:
        raise Malformed("bad_fragment_rp_count")  # RFC 5059 4.1: a fragment holds part of the range's RPs
    rps = []
    for _ in range(fragment_count):
        address, offset = _parse_unicast(body, offset)
        if len(body) < offset + _BSR_RP_TAIL.size:
            raise Malformed("truncated")
        holdtime, priority, _ = _BSR_RP_TAIL.unpack_from(body, offset)
        offset += _BSR_RP_TAIL.size
        rps.append(BsrRp(address, holdtime, priority))
    return BsrGroup(group, mask_len, rp_count, tuple(rps), admin_scope), offset


# --- Candidate-RP-Advertisement (RFC 5059 4.2) ---

def encode_candidate_rp(message: CandidateRp) -> bytes:
    _fits("prefix count", len(message.groups), 8)
    _fits("priority", message.priority, 8)
    _fits("holdtime", message.holdtime, 16)
    parts = [_CRP_HEAD.pack(len(message.groups), message.priority, message.holdtime),
             _encode_unicast(message.rp_address)]
    parts += [_encode_group(group, mask_len) for group, mask_len in message.groups]
    return _header(CANDIDATE_RP, b"".join(parts))


def _parse_candidate_rp(body: bytes) -> CandidateRp:
    if len(body) < _CRP_HEAD.size:
        raise Malformed("truncated")
    count, priority, holdtime = _CRP_HEAD.unpack_from(body)
    rp, offset = _parse_unicast(body, _CRP_HEAD.size)
    groups = []
    for _ in range(count):
        group, mask_len, _, offset = _parse_group(body, offset)
        groups.append((group, mask_len))
    return CandidateRp(rp, priority, holdtime, tuple(groups))


def parse_more(kind: int, data: bytes) -> MoreMessage | None:
    """The message of `kind` in `data` (the whole PIM message, checksum
    already checked), or None for a type this module does not read."""
    body = data[_HEADER.size:]
    if kind == BOOTSTRAP:
        return _parse_bootstrap(data[1], body)  # its N bit sits in the header
    parser = _PARSERS.get(kind)
    return None if parser is None else parser(body)


_PARSERS = {REGISTER: _parse_register, REGISTER_STOP: _parse_register_stop, ASSERT: _parse_assert,
            CANDIDATE_RP: _parse_candidate_rp}
