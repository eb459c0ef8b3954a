"""Data carried in an SA (RFC 3618 section 8) goes down the shared tree.

    peer --link 0-- MCR (RP) --link 1-- rcv

The peer is a plain TCP socket in its own namespace that connects to MCR
on port 639 (MCR has the higher address, so it listens) and sends SAs
built here byte by byte from the RFC's layout, each carrying a UDP
datagram built by scapy. MCR, the RP with a receiver on its shared tree,
forwards each carried datagram to the receiver, whose kernel socket
counts them (and checks their UDP checksums). SAs that fail the checks are
counted, not cached."""

from __future__ import annotations

import json
import socket
import struct
import time

from daemon_support import daemon, wait_for
from scapy.layers.inet import IP, UDP

from mcr.lab import UdpSink
from mcr.lab.line import line
from mcr.lab.netns import open_socket

GROUP, PORT = "239.1.1.1", 5000
SOURCE = "10.30.0.99"  # on the peer's link, so every namespace routes back to it
FAST_IGMP = {"query_interval": 2, "query_response_interval": 1, "last_member_query_interval": 0.2}


def source_active(rp: str, entries: list[tuple[str, str]], data: bytes = b"") -> bytes:
    """RFC 3618 12.2.1: type 1, length, entry count, RP address, then per
    entry 3 reserved bytes, sprefix length 32, group and source; then the data."""
    body = struct.pack("!B4s", len(entries), socket.inet_aton(rp))
    for source, group in entries:
        body += b"\0\0\0" + bytes([32]) + socket.inet_aton(group) + socket.inet_aton(source)
    body += data
    return struct.pack("!BH", 1, 3 + len(body)) + body


def datagram(seq: int) -> bytes:
    return bytes(IP(src=SOURCE, dst=GROUP, ttl=16) / UDP(sport=40000, dport=PORT) / f"sa-data-{seq}".encode())


def test_data_in_sas_reaches_the_receivers_on_the_shared_tree(tmp_path):
    with line(["peer", "mcr", "rcv"]) as net:
        (mcr_up, mcr_up_addr), (mcr_down, mcr_rp) = net.interfaces("mcr")
        peer_addr = net.left(0)[1]
        net.relay_ns = net.ns["mcr"]
        path = tmp_path / "mcr.json"
        path.write_text(json.dumps({
            "workers": 1, "igmp": {"interfaces": {mcr_down: FAST_IGMP}},
            "pim": {"interfaces": {mcr_down: {"hello_period": 1, "triggered_hello_delay": 0.5}}, "rp": [{"address": mcr_rp, "groups": "239.0.0.0/8"}]},
            "msdp": {"originator": mcr_rp, "keepalive": 3, "hold": 10,
                     "peers": [{"address": peer_addr, "local": mcr_up_addr}]}}))
        with daemon(net, tmp_path, config=path) as d, UdpSink(net.ns["rcv"], GROUP, PORT, net.right(1)[0]) as sink:
            time.sleep(3)  # the receiver's IGMP report: (*,G) at MCR, the RP
            peer = open_socket(net.ns["peer"], socket.AF_INET, socket.SOCK_STREAM)
            try:
                peer.bind((peer_addr, 0))
                wait_for(lambda: peer.connect_ex((mcr_up_addr, 639)) == 0, 10, "MCR to listen on port 639")
                wait_for(lambda: d.client.call("msdp.peers")["peers"][0]["state"] == "established", 5,
                         "MCR to take the connection as its peering")
                for seq in range(5):
                    peer.sendall(source_active(peer_addr, [(SOURCE, GROUP)], datagram(seq)))
                    time.sleep(0.05)
                got = sorted(r.payload for r in sink.receive(5, timeout=5, idle=1.0))
                assert got == [f"sa-data-{seq}".encode() for seq in range(5)], got
                [sa] = d.client.call("msdp.sa")["sa"]
                assert (sa["source"], sa["group"], sa["rp"], sa["peer"]) == (SOURCE, GROUP, peer_addr, peer_addr)
                # An entry with a unicast group is dropped and counted; the session survives it.
                peer.sendall(source_active(peer_addr, [(SOURCE, "10.1.1.1")]))
                wait_for(lambda: d.client.call("msdp.peers")["peers"][0]["counters"].get("sa_in", 0) >= 6, 5,
                         "the sixth SA counted")
                assert [s["group"] for s in d.client.call("msdp.sa")["sa"]] == [GROUP]
                assert d.client.call("msdp.peers")["peers"][0]["state"] == "established"
            finally:
                peer.close()
