"""Test-only scapy layers for the PIM messages scapy.contrib.pim lacks:
Register (RFC 7761 4.9.3), Register-Stop (4.9.4) and Assert (4.9.6), IPv4
only, in scapy's own style, bound under PIMv2Hdr by message type.

scapy's PIMv2Hdr fills the checksum over the whole message, also for a
Register: that is the "whole message" variant 4.9 says receivers should
accept too.
"""

from __future__ import annotations

from scapy.contrib.pim import PIMv2Hdr
from scapy.fields import BitField, ByteField, IntField, IPField
from scapy.layers.inet import IP
from scapy.packet import Packet, bind_layers


def _encoded_group(prefix: str = "") -> list:
    return [ByteField(f"{prefix}addr_family", 1), ByteField(f"{prefix}encoding_type", 0),
            BitField(f"{prefix}bidirectional", 0, 1), BitField(f"{prefix}reserved", 0, 6),
            BitField(f"{prefix}admin_scope", 0, 1), ByteField(f"{prefix}mask_len", 32),
            IPField(f"{prefix}group", "0.0.0.0")]


def _encoded_unicast(name: str) -> list:
    return [ByteField(f"{name}_family", 1), ByteField(f"{name}_encoding", 0), IPField(name, "0.0.0.0")]


class PIMv2Register(Packet):
    name = "PIMv2 Register"
    fields_desc = [BitField("border", 0, 1), BitField("null_register", 0, 1), BitField("reserved2", 0, 30)]

    def guess_payload_class(self, payload):
        return IP


class PIMv2RegisterStop(Packet):
    name = "PIMv2 Register-Stop"
    fields_desc = _encoded_group() + _encoded_unicast("source")


class PIMv2Assert(Packet):
    name = "PIMv2 Assert"
    fields_desc = _encoded_group() + _encoded_unicast("source") + [
        BitField("rpt", 0, 1), BitField("metric_preference", 0, 31), IntField("metric", 0)]


bind_layers(PIMv2Hdr, PIMv2Register, type=1)
bind_layers(PIMv2Hdr, PIMv2RegisterStop, type=2)
bind_layers(PIMv2Hdr, PIMv2Assert, type=5)
