"""MSDP (RFC 3618) on the wire: the TLVs two peers exchange over their TCP
connection, and a decoder that reassembles them from the byte stream.

Every MSDP message is a TLV (section 12.1): type (1 octet), length (2
octets, counting the type and length fields themselves) and a value. We
handle IPv4 Source-Active (type 1, 12.2.1) and KeepAlive (type 4, 12.2.2);
any other well-formed TLV, among them the obsolete SA-Request and
SA-Response (types 2 and 3), decodes to `UnknownTlv` so that the session can
count and skip it. Decoding is bounds-checked: a TLV that cannot be read
raises `MsdpDecodeError`, after which the stream cannot be trusted and the
session closes the connection.

This module only turns bytes into messages and back; the session
(msdp_peer) and the SA cache use it, neither touches bytes themselves.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from typing import Iterable

MSDP_PORT = 639
MAX_MESSAGE = 9192  # RFC 3618 section 12: no TLV longer than this
SA_HEADER = 8  # type(1) length(2) entry count(1) RP address(4)
SA_ENTRY = 12  # reserved(3) sprefix len(1)=32 group(4) source(4)
TLV_HEADER = 3  # type(1) length(2)

# Section 12.2: TLV types.
SOURCE_ACTIVE, SA_REQUEST, SA_RESPONSE, KEEPALIVE = 1, 2, 3, 4
SPREFIX_LEN = 32  # 12.2.1: the source prefix length is transmitted as 32
MAX_ENTRIES = 0xFF  # the entry count is one octet
IPV4_HEADER = 20  # the shortest IPv4 header, for the encapsulated data packet

_TLV = struct.Struct("!BH")
_SA_HEADER = struct.Struct("!BHB4s")  # type, length, entry count, RP address
_SA_ENTRY = struct.Struct("!3xB4s4s")  # reserved, sprefix len, group, source


class MsdpDecodeError(ValueError):
    """A TLV that cannot be read: the message says what was wrong with it."""


@dataclass(frozen=True)
class SourceActive:
    """An SA message (section 12.2.1): sources the RP `rp` says are active."""

    rp: str  # the originating RP's address (dotted quad)
    entries: tuple[tuple[str, str], ...]  # (source, group) pairs, dotted quads, at least one
    data: bytes = b""  # an encapsulated IPv4 data packet, or empty


@dataclass(frozen=True)
class Keepalive:
    """A KeepAlive (section 12.2.2): three octets, no value."""


@dataclass(frozen=True)
class UnknownTlv:
    """A well-formed TLV of a type we do not handle (counted, ignored)."""

    type: int
    value: bytes


Message = SourceActive | Keepalive | UnknownTlv

KEEPALIVE_BYTES = _TLV.pack(KEEPALIVE, TLV_HEADER)


# --- encoding ----------------------------------------------------------------

def _pack_address(text: str, what: str) -> bytes:
    try:
        return socket.inet_pton(socket.AF_INET, text)
    except (OSError, TypeError) as error:
        raise ValueError(f"{what} {text!r} is not an IPv4 address in dotted-quad form") from error


def _packet_problem(data: bytes) -> str | None:
    """Why `data` does not look like an IPv4 packet, or None if it does."""
    if len(data) < IPV4_HEADER:
        return f"encapsulated data of {len(data)} bytes is shorter than an IPv4 header"
    version, ihl = data[0] >> 4, data[0] & 0x0F
    total = int.from_bytes(data[2:4], "big")
    if version != 4:
        return f"encapsulated data is not IPv4 (version {version})"
    if ihl < 5:
        return f"encapsulated IPv4 header length {ihl * 4} is below 20 bytes"
    if not ihl * 4 <= total <= len(data):
        return f"encapsulated IPv4 total length {total} does not fit its header ({ihl * 4}) and {len(data)} bytes"
    return None


def _encode_sa(message: SourceActive) -> bytes:
    if not message.entries:
        raise ValueError("a Source-Active needs at least one (source, group) entry")
    if len(message.entries) > MAX_ENTRIES:
        raise ValueError(f"{len(message.entries)} entries do not fit one SA (at most {MAX_ENTRIES}); "
                         "use encode_source_actives")
    if message.data and (problem := _packet_problem(message.data)):
        raise ValueError(problem)
    length = SA_HEADER + SA_ENTRY * len(message.entries) + len(message.data)
    if length > MAX_MESSAGE:
        raise ValueError(f"an SA of {length} bytes is over the {MAX_MESSAGE}-byte limit")
    parts = [_SA_HEADER.pack(SOURCE_ACTIVE, length, len(message.entries), _pack_address(message.rp, "RP"))]
    for source, group in message.entries:
        parts.append(_SA_ENTRY.pack(SPREFIX_LEN, _pack_address(group, "group"), _pack_address(source, "source")))
    parts.append(message.data)
    return b"".join(parts)


def _encode_unknown(message: UnknownTlv) -> bytes:
    if not 0 <= message.type <= 0xFF:
        raise ValueError(f"TLV type {message.type} does not fit one octet")
    if message.type in (SOURCE_ACTIVE, KEEPALIVE):
        # It would decode as the real message, not as itself.
        raise ValueError(f"TLV type {message.type} has its own message class")
    length = TLV_HEADER + len(message.value)
    if length > MAX_MESSAGE:
        raise ValueError(f"a TLV of {length} bytes is over the {MAX_MESSAGE}-byte limit")
    return _TLV.pack(message.type, length) + message.value


def encode(message: Message) -> bytes:
    """The TLV for `message`; ValueError for what cannot be encoded."""
    if isinstance(message, SourceActive):
        return _encode_sa(message)
    if isinstance(message, Keepalive):
        return KEEPALIVE_BYTES
    if isinstance(message, UnknownTlv):
        return _encode_unknown(message)
    raise ValueError(f"not an MSDP message: {message!r}")


def encode_source_actives(rp: str, entries: Iterable[tuple[str, str]], data: bytes = b"") -> list[bytes]:
    """As many SA TLVs as the entries need, each <= MAX_MESSAGE; `data` only in the first."""
    pending = list(entries)
    if not pending:
        raise ValueError("a Source-Active needs at least one (source, group) entry")
    messages = []
    while pending:
        room = min(MAX_ENTRIES, (MAX_MESSAGE - SA_HEADER - len(data)) // SA_ENTRY)
        if room < 1:
            raise ValueError(f"encapsulated data of {len(data)} bytes leaves no room for an entry in an SA")
        batch, pending = pending[:room], pending[room:]
        messages.append(_encode_sa(SourceActive(rp, tuple(batch), data)))
        data = b""
    return messages


# --- decoding ----------------------------------------------------------------

def _check_length(kind: int, length: int) -> None:
    """Rejects a TLV header as soon as it is read, before its value arrives."""
    if length < TLV_HEADER:
        raise MsdpDecodeError(f"TLV type {kind} has length {length}, shorter than its own 3-byte header")
    if length > MAX_MESSAGE:
        raise MsdpDecodeError(f"TLV type {kind} has length {length}, over the {MAX_MESSAGE}-byte limit")
    if kind == KEEPALIVE and length != TLV_HEADER:
        raise MsdpDecodeError(f"Keepalive has length {length}, not 3")
    if kind == SOURCE_ACTIVE and length < SA_HEADER:
        raise MsdpDecodeError(f"SA has length {length}, shorter than its {SA_HEADER}-byte header")


def _decode_sa(tlv: bytes) -> SourceActive:
    _, length, count, rp = _SA_HEADER.unpack_from(tlv)
    if count == 0:
        raise MsdpDecodeError("SA with entry count 0")
    end = SA_HEADER + SA_ENTRY * count
    if length < end:
        raise MsdpDecodeError(f"SA of {length} bytes is too short for its {count} entries ({end} bytes)")
    entries = []
    for offset in range(SA_HEADER, end, SA_ENTRY):
        sprefix, group, source = _SA_ENTRY.unpack_from(tlv, offset)
        if sprefix != SPREFIX_LEN:
            raise MsdpDecodeError(f"SA entry with sprefix length {sprefix}, not 32")
        entries.append((socket.inet_ntoa(source), socket.inet_ntoa(group)))
    data = tlv[end:]
    if data and (problem := _packet_problem(data)):
        raise MsdpDecodeError(f"SA from RP {socket.inet_ntoa(rp)}: {problem}")
    return SourceActive(socket.inet_ntoa(rp), tuple(entries), data)


def decode_tlv(tlv: bytes) -> Message:
    """One whole TLV (exactly its length) to a message."""
    if len(tlv) < TLV_HEADER:
        raise MsdpDecodeError(f"{len(tlv)} bytes are shorter than a TLV header")
    kind, length = _TLV.unpack_from(tlv)
    _check_length(kind, length)
    if length != len(tlv):
        raise MsdpDecodeError(f"TLV type {kind} says {length} bytes but {len(tlv)} were given")
    if kind == SOURCE_ACTIVE:
        return _decode_sa(tlv)
    if kind == KEEPALIVE:
        return Keepalive()
    return UnknownTlv(kind, tlv[TLV_HEADER:])


class StreamDecoder:
    """Reassembles TLVs from a TCP byte stream.

    After `feed` raised MsdpDecodeError the stream has lost its framing: the
    buffer is dropped and the caller is expected to close the connection.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()

    @property
    def buffered(self) -> int:
        """Bytes held waiting for the rest of a TLV."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Message]:
        """The messages that `data` completes, in order; raises MsdpDecodeError on a malformed TLV."""
        self._buffer += data
        messages: list[Message] = []
        start = 0
        try:
            while len(self._buffer) - start >= TLV_HEADER:
                kind, length = _TLV.unpack_from(self._buffer, start)
                _check_length(kind, length)
                if len(self._buffer) - start < length:
                    break
                messages.append(decode_tlv(bytes(self._buffer[start:start + length])))
                start += length
        except MsdpDecodeError:
            self._buffer.clear()
            raise
        del self._buffer[:start]
        return messages
