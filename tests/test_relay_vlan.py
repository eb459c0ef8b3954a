"""VLANs on a trunk: rules match the tag the frame arrived with, outputs can tag.

This kernel has no 8021q devices, but a tagged frame sent raw into a veth
still reaches the relay's packet socket, with the tag stripped into
tp_vlan_tci (TP_STATUS_VLAN_VALID). These are crafted frames on purpose: no
application on a veth without VLAN devices sends tagged frames.
"""

from __future__ import annotations

import socket
import struct
import time

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Dot1Q, Ether
from scapy.packet import Raw

from mcr.lab import numbered_payloads, open_socket, multicast_mac
from mcr.rules import Output, Rule

GROUP, PORT = "239.1.1.1", 5000
OUT_GROUP, OUT_PORT = "239.2.2.2", 6000
COUNT, SIZE = 50, 64
SOL_PACKET, PACKET_AUXDATA, ETH_P_ALL = 263, 8, 3
TP_STATUS_VLAN_VALID = 0x10


def tagged_frames(lab, vlan: int | None, stream: int) -> list[bytes]:
    frames = []
    for payload in numbered_payloads(COUNT, SIZE, stream=stream):
        eth = Ether(src="02:00:00:00:00:01", dst=multicast_mac(GROUP))
        l3 = IP(src=lab.c.source_addr, dst=GROUP, ttl=8) / UDP(sport=4000, dport=PORT) / Raw(payload)
        frames.append(bytes(eth / Dot1Q(vlan=vlan) / l3 if vlan is not None else eth / l3))
    return frames


class TagCapture:
    """A packet socket that also reports the tag the kernel stripped (PACKET_AUXDATA)."""

    def __init__(self, ns: str, ifname: str) -> None:
        self.sock = open_socket(ns, socket.AF_PACKET, socket.SOCK_RAW, 0)
        self.sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
        self.sock.bind((ifname, ETH_P_ALL))
        self.sock.settimeout(0.5)

    def read(self) -> list[tuple[int | None, bytes]]:
        """(VLAN id or None, frame) for every UDP frame to OUT_GROUP seen so far."""
        seen = []
        while True:
            try:
                data, ancillary, _, addr = self.sock.recvmsg(65535, socket.CMSG_SPACE(20))
            except TimeoutError:
                return seen
            if addr[2] == socket.PACKET_OUTGOING or IP not in Ether(data) or Ether(data)[IP].dst != OUT_GROUP:
                continue
            vlan = None
            for level, kind, value in ancillary:
                if level == SOL_PACKET and kind == PACKET_AUXDATA:
                    status, _, _, _, _, tci, _ = struct.unpack("IIIHHHH", value[:20])
                    vlan = tci & 0xFFF if status & TP_STATUS_VLAN_VALID else None
            seen.append((vlan, data))

    def close(self) -> None:
        self.sock.close()


def streams_arriving(capture: TagCapture) -> dict[tuple[int | None, int], int]:
    """{(output VLAN, stream id): datagrams} among the captured frames."""
    counts: dict[tuple[int | None, int], int] = {}
    for vlan, frame in capture.read():
        stream = int.from_bytes(bytes(Ether(frame)[UDP].payload)[:4], "big")
        counts[(vlan, stream)] = counts.get((vlan, stream), 0) + 1
    return counts


def send_all(lab) -> None:
    # stream 0 untagged, stream 1 on VLAN 10, stream 2 on VLAN 20
    for vlan, stream in ((None, 0), (10, 1), (20, 2)):
        lab.send(tagged_frames(lab, vlan, stream), rate_pps=2000)
    time.sleep(0.3)


def test_untagged_rule_matches_untagged_frames_only(relay_lab) -> None:
    lab = relay_lab()
    c = lab.c
    rule_id = lab.engine.add_rule(Rule(c.relay_in, GROUP, PORT, (Output(OUT_GROUP, OUT_PORT, c.relay_out[0]),)))
    capture = TagCapture(c.sink_ns[0], c.sink_if[0])
    lab._own(capture.close)
    send_all(lab)
    assert streams_arriving(capture) == {(None, 0): COUNT}, lab.describe()
    stats = lab.wait_relayed({rule_id: COUNT})
    assert stats["rules"][str(rule_id)]["packets"] == COUNT, lab.describe(stats)
    assert stats["drops"]["no_rule"] == 2 * COUNT, lab.describe(stats)


def test_vlan_rule_matches_its_vlan_and_outputs_tag(relay_lab) -> None:
    lab = relay_lab()
    c = lab.c
    tagged_out = Output(OUT_GROUP, OUT_PORT, c.relay_out[0], vlan=30)
    plain_out = Output(OUT_GROUP, OUT_PORT + 1, c.relay_out[0])
    rule = Rule.parse(f"in={c.relay_in} group={GROUP}:{PORT} vlan=10 out={tagged_out},{plain_out}")
    assert rule.vlan == 10 and rule.outputs == (tagged_out, plain_out)
    rule_id = lab.engine.add_rule(rule)
    capture = TagCapture(c.sink_ns[0], c.sink_if[0])
    lab._own(capture.close)
    send_all(lab)
    # VLAN 10's stream, once tagged 30 and once untagged (to port 6001); nothing else.
    assert streams_arriving(capture) == {(30, 1): COUNT, (None, 1): COUNT}, lab.describe()
    stats = lab.wait_relayed({rule_id: COUNT})
    assert stats["rules"][str(rule_id)]["packets"] == COUNT, lab.describe(stats)
    assert stats["drops"]["no_rule"] == 2 * COUNT, lab.describe(stats)
