"""Malformed frames are dropped into the right counter; good frames around them still pass.

What each crafted frame looks like when the engine reads it (veth, lab):
- veth does not pad short frames to the 60-byte Ethernet minimum, so the
  truncated frames arrive with exactly the bytes sent. (Were they padded, the
  verdicts below would not change for the frames whose IP length is
  consistent; they are judged on the IP total length, not the frame length.)
- The kernel moves the outermost 802.1Q/802.1ad tag of a received frame into
  skb metadata (skb_vlan_untag() in __netif_receive_skb_core(), before packet
  sockets see the frame), so the engine's AF_PACKET socket gets a VLAN-10
  frame untagged, 4 bytes shorter, with the tag in tp_vlan_tci: only a
  vlan=10 rule matches it. For a double (QinQ) tag only the outer tag is
  removed; the inner one stays in the frame and the engine's parser skips
  it, so the frame belongs to the outer VLAN (20 here).
"""

from __future__ import annotations

from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_Router_Alert
from scapy.layers.l2 import Dot1AD, Dot1Q, Ether
from scapy.packet import Raw

from mcr.lab import multicast_mac, numbered_payloads
from mcr.rules import Output, Rule

GROUP, PORT = "239.1.1.1", 5000
OUT_GROUP, OUT_PORT = "239.2.2.2", 6000
SRC_MAC = "02:00:00:00:00:01"
ROUNDS = 5
SIZE = 64


def eth() -> Ether:
    # Multicast destination MAC: the engine's socket filter only passes frames
    # the kernel classed as multicast.
    return Ether(src=SRC_MAC, dst=multicast_mac(GROUP))


def ip(src: str, **fields) -> IP:
    return IP(src=src, dst=GROUP, **fields)


def udp(payload: bytes, **fields) -> UDP:
    return UDP(sport=4000, dport=PORT, **fields) / Raw(payload)


def bad_frames(src: str) -> dict[str, tuple[bytes, str]]:
    """kind -> (frame, drop counter it must land in)."""
    body = b"\xa5" * 40
    good = bytes(eth() / ip(src) / udp(body))
    bad_checksum = bytearray(good)
    bad_checksum[14 + 11] ^= 0x01  # low byte of the IP header checksum
    udp_head = bytes(UDP(sport=4000, dport=PORT, len=8 + len(body)))[:4]
    return {
        # Frame ends 10 bytes into the IP header.
        "cut_in_ip_header": (good[:14 + 10], "truncated"),
        # A consistent IP header (total length 24) carrying half a UDP header.
        "half_udp_header": (bytes(eth() / ip(src, proto=17, len=24) / Raw(udp_head)), "truncated"),
        # Frame cut in the middle of the UDP header but the IP header still
        # announces the whole packet: the IP length runs past the frame, and
        # the parser reports that (bad_ip_length), not "truncated".
        "cut_in_udp_header": (good[:14 + 20 + 4], "bad_ip_length"),
        "ihl_3": (bytes(eth() / ip(src, ihl=3) / udp(body)), "bad_ip_header"),
        "total_length_beyond_frame": (bytes(eth() / ip(src, len=20 + 8 + len(body) + 100) / udp(body)),
                                      "bad_ip_length"),
        "total_length_below_header": (bytes(eth() / ip(src, len=12) / udp(body)), "bad_ip_length"),
        "bad_ip_checksum": (bytes(bad_checksum), "bad_ip_checksum"),
        "first_fragment_mf": (bytes(eth() / ip(src, flags="MF") / udp(body)), "fragment"),
        "later_fragment": (bytes(eth() / ip(src, proto=17, frag=100) / Raw(body)), "fragment"),
        "icmp_to_group": (bytes(eth() / ip(src) / ICMP() / Raw(body)), "not_udp"),
        "tcp_to_group": (bytes(eth() / ip(src) / TCP(sport=4000, dport=PORT) / Raw(body)), "not_udp"),
        "udp_length_beyond_ip": (bytes(eth() / ip(src) / udp(body, len=8 + len(body) + 1)), "bad_udp_length"),
        "ip_version_6_in_ipv4": (bytes(eth() / ip(src, version=6) / udp(body)), "not_ipv4"),
    }


def good_frame(shape: str, src: str, payload: bytes) -> bytes:
    """A relayable frame, plain or in an unusual but valid shape."""
    if shape == "plain":
        return bytes(eth() / ip(src) / udp(payload))
    if shape == "vlan_10":
        return bytes(eth() / Dot1Q(vlan=10) / ip(src) / udp(payload))
    if shape == "qinq_20_10":
        return bytes(eth() / Dot1AD(vlan=20) / Dot1Q(vlan=10) / ip(src) / udp(payload))
    assert shape == "ip_options"  # IHL 6: the UDP header starts after 24 bytes
    return bytes(eth() / ip(src, options=[IPOption_Router_Alert()]) / udp(payload))


# Good shapes and how many bytes the kernel removes before the engine reads them.
STRIPPED = {"plain": 0, "vlan_10": 4, "qinq_20_10": 4, "ip_options": 0}
VLAN_OF = {"plain": None, "vlan_10": 10, "qinq_20_10": 20, "ip_options": None}  # the rule that takes each


def test_malformed_frames_counted_good_frames_relayed(relay_lab) -> None:
    lab = relay_lab()
    c = lab.c
    out = Output(OUT_GROUP, OUT_PORT, c.relay_out[0])
    rule_ids = {vlan: lab.engine.add_rule(Rule(c.relay_in, GROUP, PORT, (out,), vlan=vlan))
                for vlan in (None, 10, 20)}
    sink = lab.sink(0, OUT_GROUP, OUT_PORT)

    bad = bad_frames(c.source_addr)
    kinds = list(bad)
    n_good = ROUNDS * len(kinds) * len(STRIPPED)
    payloads = iter(numbered_payloads(n_good, SIZE))
    frames, expected_input_bytes = [], 0
    for _ in range(ROUNDS):
        for kind in kinds:
            # Every bad frame is surrounded by one good frame of each shape.
            for shape in STRIPPED:
                frame = good_frame(shape, c.source_addr, next(payloads))
                frames.append(frame)
                expected_input_bytes += len(frame) - STRIPPED[shape]
            frames.append(bad[kind][0])
            expected_input_bytes += len(bad[kind][0])
    collector = lab.collect(sink, n_good + 1, idle=0.5)

    lab.send(frames, rate_pps=2000)

    lab.expect_stream(collector.result(), n_good, SIZE, what="good frames among malformed ones")
    per_vlan = {vlan: n_good // len(STRIPPED) * list(VLAN_OF.values()).count(vlan) for vlan in rule_ids}
    stats = lab.wait_relayed({rule_ids[vlan]: n for vlan, n in per_vlan.items()})
    expected = dict.fromkeys(stats["drops"], 0)
    for _frame, reason in bad.values():
        expected[reason] += ROUNDS
    per_kind = {kind: reason for kind, (_f, reason) in bad.items()}
    assert stats["drops"] == expected, f"expected per kind ({ROUNDS} each): {per_kind}" + lab.describe(stats)
    for vlan, n in per_vlan.items():
        assert stats["rules"][str(rule_ids[vlan])]["packets"] == n, f"rule for VLAN {vlan}" + lab.describe(stats)
    # Every frame reached the engine (none filtered out before it), and the
    # tagged ones arrived without their outer tag.
    assert stats["inputs"][c.relay_in]["frames"] == len(frames), lab.describe(stats)
    assert stats["inputs"][c.relay_in]["bytes"] == expected_input_bytes, lab.describe(stats)

    # The engine is still relaying after all that.
    after = numbered_payloads(200, SIZE, stream=1)
    collector = lab.collect(sink, 201, idle=0.5)
    lab.send(lab.frames(after, GROUP, PORT), rate_pps=5000)
    lab.expect_stream(collector.result(), 200, SIZE, stream=1, what="good frames afterwards")
