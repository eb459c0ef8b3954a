"""A packet built with scapy, relayed, and checked field by field on arrival.

The relay rewrites TTL and DSCP on its output (`:ttl=8:dscp=46`); a capture
on the receiving link shows exactly what went over the wire.
"""

from __future__ import annotations

import time

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from mcr.lab import multicast_mac, udp_packets


def test_relayed_packet_has_the_output_ttl_and_dscp(mcr_topology, mcr_relay, mcr_frame_sender, mcr_capture):
    net = mcr_topology([("src", "relay"), ("relay", "rcv")])
    mcr_relay(net.ns["relay"], f"in={net.interface('relay', 'src')} group=239.1.1.1:5000 "
                               f"out=239.2.2.2:6000:{net.interface('relay', 'rcv')}:ttl=8:dscp=46")
    capture = mcr_capture(net.ns["rcv"], net.interface("rcv", "relay"))
    packet = (Ether(src="02:00:00:00:00:01", dst=multicast_mac("239.1.1.1"))
              / IP(src=net.address("src", "relay"), dst="239.1.1.1", ttl=32, tos=0)
              / UDP(sport=4000, dport=5000) / Raw(b"checked on arrival"))

    assert mcr_frame_sender(net.ns["src"], net.interface("src", "relay")).send([bytes(packet)]) == 1
    arrived = _wait_for_packets(capture, "239.2.2.2", 6000)

    (ip,) = arrived
    assert (ip.ttl, ip.tos >> 2) == (8, 46)
    assert ip[UDP].sport != 0 and bytes(ip[UDP].payload) == b"checked on arrival"
    rebuilt = ip.copy()
    del rebuilt.chksum  # scapy computes it again from the fields as they arrived
    assert IP(bytes(rebuilt)).chksum == ip.chksum


def _wait_for_packets(capture, group: str, port: int, timeout: float = 3.0) -> list:
    """The UDP packets to group:port the capture saw, polled until one is there or `timeout`."""
    deadline = time.monotonic() + timeout
    while not udp_packets(list(capture.frames), dst=group, dport=port) and time.monotonic() < deadline:
        time.sleep(0.05)
    return udp_packets(capture.stop(), dst=group, dport=port)
