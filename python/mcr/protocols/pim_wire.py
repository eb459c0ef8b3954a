"""PIM-SM version 2 on the wire, IPv4 only: the common header (RFC 7761
4.9), Hello with its options (4.9.2) and Join/Prune (4.9.5) with the
encoded addresses they carry (4.9.1). Register, Register-Stop, Assert,
Bootstrap and Candidate-RP-Advertisement are read by pim_wire_more, to
which `parse_message` hands them; other types parse to an `Other`
placeholder.

Only the PIM message: the adapter adds the IP header (protocol 103, TTL 1,
to ALL_PIM_ROUTERS) on the way out and strips it on the way in. For IPv4
the checksum has no pseudo-header (4.9), so the message is checkable alone.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mcr.membership import inet_checksum

if TYPE_CHECKING:
    from .pim_wire_more import MoreMessage

PIM_VERSION = 2
ALL_PIM_ROUTERS = "224.0.0.13"  # RFC 7761 4.9: where Hellos and Join/Prunes go
# RFC 7761 4.9 message types.
HELLO, REGISTER, REGISTER_STOP, JOIN_PRUNE, BOOTSTRAP, ASSERT = 0, 1, 2, 3, 4, 5

# Hello option types (RFC 7761 4.9.2).
OPT_HOLDTIME, OPT_LAN_PRUNE_DELAY, OPT_DR_PRIORITY, OPT_GENERATION_ID, OPT_ADDRESS_LIST = 1, 2, 19, 20, 24
HOLDTIME_FOREVER = 0xFFFF  # 4.9.2: "the receiver of this message never times out the neighbor"
DEFAULT_HOLDTIME = 105  # 4.11 Default_Hello_Holdtime, for a Hello that omits the option
MAX_PROPAGATION_DELAY_MS = 0x7FFF  # 15 bits beside the T bit

FAMILY_IPV4 = 1  # IANA address family numbers, as 4.9.1 uses them
NATIVE_ENCODING = 0  # 4.9.1: the only encoding type defined

_HEADER = struct.Struct("!BBH")  # PIM Ver(4)|Type(4), reserved, checksum
_OPTION = struct.Struct("!HH")  # option type, option length (of the value)
_UNICAST = struct.Struct("!BB4s")  # 4.9.1 Encoded-Unicast: family, encoding type, address
_GROUP = struct.Struct("!BBBB4s")  # Encoded-Group: family, encoding type, B|Rsrvd|Z, mask len, address
_SOURCE = struct.Struct("!BBBB4s")  # Encoded-Source: family, encoding type, Rsrvd|S|W|R, mask len, address
_JP_TAIL = struct.Struct("!BBH")  # after the upstream neighbor: reserved, number of groups, holdtime
_JP_COUNTS = struct.Struct("!HH")  # after each group: number of joined, number of pruned sources
_REGISTER_HEADER_LEN = 8  # 4.9: a Register's checksum covers the header and flags only


class Malformed(ValueError):
    """A message that cannot be read; `reason` names the drop counter."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class LanPruneDelay:
    """The LAN Prune Delay option (RFC 7761 4.9.2, option 2)."""

    tracking: bool  # the T bit: willing to disable Join suppression (4.3.3)
    propagation_delay_ms: int
    override_interval_ms: int


@dataclass(frozen=True)
class Hello:
    """A Hello's options. None (or no addresses) means the option was absent."""

    holdtime: int = DEFAULT_HOLDTIME
    dr_priority: int | None = None
    generation_id: int | None = None
    lan_prune_delay: LanPruneDelay | None = None
    addresses: tuple[str, ...] = ()  # Address List: the sender's secondary addresses


@dataclass(frozen=True)
class Source:
    """An Encoded-Source address with its flags (RFC 7761 4.9.1)."""

    address: str
    sparse: bool = True  # S: MUST be 1 for PIM-SM
    wildcard: bool = False  # W: the join or prune is (*,G), the address is the RP's
    rpt: bool = False  # R: sent down the RP tree
    mask_len: int = 32


@dataclass(frozen=True)
class GroupSet:
    """One group of a Join/Prune: an Encoded-Group address and its sources."""

    group: str
    joins: tuple[Source, ...] = ()
    prunes: tuple[Source, ...] = ()
    mask_len: int = 32
    bidirectional: bool = False  # B
    admin_scope: bool = False  # Z


@dataclass(frozen=True)
class JoinPrune:
    """A Join/Prune message (RFC 7761 4.9.5)."""

    upstream: str  # the Upstream Neighbor Address: the router that should act on it
    holdtime: int
    groups: tuple[GroupSet, ...] = ()


@dataclass(frozen=True)
class Other:
    """A PIM message of a type this module does not read."""

    type: int


Message = Hello | JoinPrune | Other


# --- the header ---

def _with_header(kind: int, body: bytes) -> bytes:
    message = _HEADER.pack(PIM_VERSION << 4 | kind, 0, 0) + body
    return message[:2] + struct.pack("!H", inet_checksum(message)) + message[4:]


def parse_message(data: bytes) -> Message | MoreMessage:
    """The PIM message in `data` (the bytes after the IP header). Raises
    Malformed, whose reason names what was wrong."""
    if len(data) < _HEADER.size:
        raise Malformed("short")
    first, _, _ = _HEADER.unpack_from(data)
    if first >> 4 != PIM_VERSION:
        raise Malformed("bad_version")
    kind = first & 0x0F
    if inet_checksum(data) != 0 and not (kind == REGISTER and inet_checksum(data[:_REGISTER_HEADER_LEN]) == 0):
        # 4.9: a Register's checksum covers its first 8 bytes, though one over
        # the whole message "should also be accepted": both are tried.
        raise Malformed("bad_checksum")
    if kind == HELLO:
        return _parse_hello(data[_HEADER.size:])
    if kind == JOIN_PRUNE:
        return _parse_join_prune(data[_HEADER.size:])
    # Imported here: pim_wire_more builds on this module's helpers.
    from .pim_wire_more import parse_more
    more = parse_more(kind, data)
    return Other(kind) if more is None else more


# --- Hello (4.9.2) ---

def _option(kind: int, value: bytes) -> bytes:
    return _OPTION.pack(kind, len(value)) + value


def encode_hello(hello: Hello) -> bytes:
    """The PIM bytes of `hello`, checksum included. Holdtime always goes
    (4.9.2: a Hello MUST carry it); the other options when given."""
    options = [_option(OPT_HOLDTIME, struct.pack("!H", hello.holdtime))]
    if hello.lan_prune_delay is not None:
        lpd = hello.lan_prune_delay
        if not 0 <= lpd.propagation_delay_ms <= MAX_PROPAGATION_DELAY_MS:
            raise ValueError(f"propagation delay {lpd.propagation_delay_ms} ms does not fit 15 bits")
        first = (0x8000 if lpd.tracking else 0) | lpd.propagation_delay_ms
        options.append(_option(OPT_LAN_PRUNE_DELAY, struct.pack("!HH", first, lpd.override_interval_ms)))
    if hello.dr_priority is not None:
        options.append(_option(OPT_DR_PRIORITY, struct.pack("!I", hello.dr_priority)))
    if hello.generation_id is not None:
        options.append(_option(OPT_GENERATION_ID, struct.pack("!I", hello.generation_id)))
    if hello.addresses:
        options.append(_option(OPT_ADDRESS_LIST, b"".join(_encode_unicast(a) for a in hello.addresses)))
    return _with_header(HELLO, b"".join(options))


# Option type -> the value length it must have; 0: variable.
_OPTION_LENGTHS = {OPT_HOLDTIME: 2, OPT_LAN_PRUNE_DELAY: 4, OPT_DR_PRIORITY: 4, OPT_GENERATION_ID: 4,
                   OPT_ADDRESS_LIST: 0}


def _parse_hello(body: bytes) -> Hello:
    fields: dict[str, object] = {}
    offset = 0
    while offset < len(body):
        if len(body) < offset + _OPTION.size:
            raise Malformed("truncated_option")
        kind, length = _OPTION.unpack_from(body, offset)
        value = body[offset + _OPTION.size:offset + _OPTION.size + length]
        if len(value) < length:
            raise Malformed("truncated_option")
        offset += _OPTION.size + length
        if kind not in _OPTION_LENGTHS:
            continue  # 4.9.2: unknown options are ignored, so new ones can be added
        if _OPTION_LENGTHS[kind] not in (0, length):
            raise Malformed("bad_option_length")
        fields.update(_read_option(kind, value))
    return Hello(**fields)  # each value was built for its field by _read_option; a repeated option: the last wins


def _read_option(kind: int, value: bytes) -> dict[str, object]:
    if kind == OPT_HOLDTIME:
        return {"holdtime": struct.unpack("!H", value)[0]}
    if kind == OPT_LAN_PRUNE_DELAY:
        first, override = struct.unpack("!HH", value)
        return {"lan_prune_delay": LanPruneDelay(bool(first & 0x8000), first & 0x7FFF, override)}
    if kind == OPT_DR_PRIORITY:
        return {"dr_priority": struct.unpack("!I", value)[0]}
    if kind == OPT_GENERATION_ID:
        return {"generation_id": struct.unpack("!I", value)[0]}
    return {"addresses": _address_list(value)}


_ADDRESS_SIZES = {FAMILY_IPV4: 4, 2: 16}  # RFC 7761 4.9.1 families: IPv4, IPv6


def _address_list(value: bytes) -> tuple[str, ...]:
    """The IPv4 secondary addresses of an Address List (RFC 7761 4.3.4).
    Entries of another family are skipped, not fatal: a router may list its
    IPv6 addresses too (FRR does after a restart), and the rest of the Hello
    still holds."""
    addresses, offset = [], 0
    while offset + 2 <= len(value):
        family, encoding = value[offset], value[offset + 1]
        size = _ADDRESS_SIZES.get(family)
        if size is None or encoding != NATIVE_ENCODING or offset + 2 + size > len(value):
            break  # an entry we cannot size: the rest of the list is unreadable, the Hello is not
        if family == FAMILY_IPV4:
            addresses.append(socket.inet_ntoa(value[offset + 2:offset + 6]))
        offset += 2 + size
    return tuple(addresses)


# --- encoded addresses (4.9.1) ---

def _encode_unicast(address: str) -> bytes:
    return _UNICAST.pack(FAMILY_IPV4, NATIVE_ENCODING, socket.inet_aton(address))


def _check_family(family: int, encoding: int, mask_len: int = 32) -> None:
    if family != FAMILY_IPV4:
        raise Malformed("bad_address_family")
    if encoding != NATIVE_ENCODING:
        raise Malformed("bad_encoding_type")
    if mask_len > 32:
        raise Malformed("bad_mask_length")


def _parse_unicast(data: bytes, offset: int) -> tuple[str, int]:
    if len(data) < offset + _UNICAST.size:
        raise Malformed("truncated")
    family, encoding, raw = _UNICAST.unpack_from(data, offset)
    _check_family(family, encoding)
    return socket.inet_ntoa(raw), offset + _UNICAST.size


def _encode_source(source: Source) -> bytes:
    flags = (0x04 if source.sparse else 0) | (0x02 if source.wildcard else 0) | (0x01 if source.rpt else 0)
    return _SOURCE.pack(FAMILY_IPV4, NATIVE_ENCODING, flags, source.mask_len, socket.inet_aton(source.address))


def _parse_source(data: bytes, offset: int) -> tuple[Source, int]:
    if len(data) < offset + _SOURCE.size:
        raise Malformed("truncated")
    family, encoding, flags, mask_len, raw = _SOURCE.unpack_from(data, offset)
    _check_family(family, encoding, mask_len)
    source = Source(socket.inet_ntoa(raw), bool(flags & 0x04), bool(flags & 0x02), bool(flags & 0x01), mask_len)
    return source, offset + _SOURCE.size


# --- Join/Prune (4.9.5) ---

def encode_join_prune(message: JoinPrune) -> bytes:
    """The PIM bytes of `message`, checksum included."""
    if len(message.groups) > 255:
        raise ValueError("a Join/Prune holds at most 255 groups; send several")
    parts = [_encode_unicast(message.upstream), _JP_TAIL.pack(0, len(message.groups), message.holdtime)]
    for group in message.groups:
        flags = (0x80 if group.bidirectional else 0) | (0x01 if group.admin_scope else 0)
        parts.append(_GROUP.pack(FAMILY_IPV4, NATIVE_ENCODING, flags, group.mask_len, socket.inet_aton(group.group)))
        parts.append(_JP_COUNTS.pack(len(group.joins), len(group.prunes)))
        parts.extend(_encode_source(s) for s in group.joins + group.prunes)
    return _with_header(JOIN_PRUNE, b"".join(parts))


def _parse_join_prune(body: bytes) -> JoinPrune:
    upstream, offset = _parse_unicast(body, 0)
    if len(body) < offset + _JP_TAIL.size:
        raise Malformed("truncated")
    _, count, holdtime = _JP_TAIL.unpack_from(body, offset)
    offset += _JP_TAIL.size
    groups = []
    for _ in range(count):
        group, offset = _parse_group_set(body, offset)
        groups.append(group)
    return JoinPrune(upstream, holdtime, tuple(groups))


def _parse_group_set(body: bytes, offset: int) -> tuple[GroupSet, int]:
    if len(body) < offset + _GROUP.size + _JP_COUNTS.size:
        raise Malformed("truncated")
    family, encoding, flags, mask_len, raw = _GROUP.unpack_from(body, offset)
    _check_family(family, encoding, mask_len)
    joined, pruned = _JP_COUNTS.unpack_from(body, offset + _GROUP.size)
    offset += _GROUP.size + _JP_COUNTS.size
    sources = []
    for _ in range(joined + pruned):
        source, offset = _parse_source(body, offset)
        sources.append(source)
    group = GroupSet(socket.inet_ntoa(raw), tuple(sources[:joined]), tuple(sources[joined:]), mask_len,
                     bool(flags & 0x80), bool(flags & 0x01))
    return group, offset
