"""Anycast RP (RFC 3446) with two MCR routers: both hold the RP address
10.99.0.1 (on their loopback) and peer over MSDP with their own addresses
as originators, on a routed line

    src --link 0-- A --link 1-- B --link 2-- rcv

The source registers with nobody (A, its DR, is an RP itself); B's
receiver joins at B, the other RP. B learns the source from A's SA, joins
toward it through A, and the datagrams arrive, counted exactly by a kernel
socket. B never hands A's source back to A as its own."""

from __future__ import annotations

import json
import time

from daemon_support import daemon, wait_for

from mcr.lab import UdpSender, UdpSink, numbered_payloads, payload_seq
from mcr.lab.line import line
from mcr.lab.netns import _ip

GROUP, PORT = "239.1.1.1", 5000
ANYCAST_RP = "10.99.0.1"
FAST_HELLO = {"hello_period": 1, "triggered_hello_delay": 0.5}
FAST_IGMP = {"query_interval": 2, "query_response_interval": 1, "last_member_query_interval": 0.2}
MSDP_TIMERS = {"keepalive": 3, "hold": 10, "connect_retry": 1, "advertisement_period": 5, "sa_hold": 20}


def config(path, pim_interfaces, originator: str, peer: str, igmp: str | None = None):
    path.mkdir()
    file = path / "mcr.json"
    file.write_text(json.dumps({
        "workers": 1,
        "igmp": {"interfaces": {igmp: FAST_IGMP}} if igmp else {},
        "pim": {"interfaces": {name: FAST_HELLO for name in pim_interfaces},
                "rp": [{"address": ANYCAST_RP, "groups": "239.0.0.0/8"}], "join_prune_period": 5},
        "msdp": {"originator": originator, "peers": [{"address": peer, "local": originator}], **MSDP_TIMERS}}))
    return file


def sa_of(d, source: str) -> dict:
    return next((s for s in d.client.call("msdp.sa")["sa"] if s["source"] == source and s["group"] == GROUP), {})


def test_two_anycast_rps_share_their_sources(tmp_path):
    with line(["src", "a", "b", "rcv"]) as net:
        for ns in (net.ns["a"], net.ns["b"]):
            _ip("-n", ns, "addr", "add", f"{ANYCAST_RP}/32", "dev", "lo")
        (a_src_if, _), (a_link1, a_addr) = net.interfaces("a")
        (b_link1, b_addr), (b_down, _) = net.interfaces("b")
        source = net.left(0)[1]
        net.relay_ns = net.ns["a"]
        with daemon(net, tmp_path / "a", config=config(tmp_path / "a", [a_src_if, a_link1], a_addr, b_addr)) as a:
            net.relay_ns = net.ns["b"]
            with daemon(net, tmp_path / "b", config=config(tmp_path / "b", [b_link1, b_down], b_addr, a_addr,
                                                         igmp=b_down)) as b, \
                    UdpSink(net.ns["rcv"], GROUP, PORT, net.right(2)[0]) as sink:
                for d, peer in ((a, b_addr), (b, a_addr)):
                    wait_for(lambda: [p["state"] for p in d.client.call("msdp.peers")["peers"]] == ["established"],
                             20, f"the MSDP peering toward {peer}")
                time.sleep(3)  # the receiver's IGMP report: (*,G) at B
                with UdpSender(net.ns["src"], net.left(0)[0]) as sender:  # A notices its source, announces it
                    sender.send(numbered_payloads(50, 64, 1), GROUP, PORT, rate_pps=250)
                wait_for(lambda: sa_of(b, source).get("rp") == a_addr, 15, "A's SA for the source at B")
                assert sa_of(a, source).get("peer") is None  # at A it is local
                # B joined toward the source: A forwards it onto link 1 (its data plane has the route).
                wait_for(lambda: any(r["source"] == source and a_link1 in ",".join(r["outputs"])
                                     for r in a.client.call("mroute")["routes"]), 10, "A's (S,G) route toward B")
                with UdpSender(net.ns["src"], net.left(0)[0]) as sender:  # a primer on the new path, then count
                    sender.send(numbered_payloads(50, 64, 3), GROUP, PORT, rate_pps=250)
                sink.receive(100, timeout=3, idle=0.5)
                with UdpSender(net.ns["src"], net.left(0)[0]) as sender:
                    assert sender.send(numbered_payloads(500, 64, 2), GROUP, PORT, rate_pps=250) == 500
                got = sorted(payload_seq(r.payload)[1] for r in sink.receive(500, timeout=10, idle=1.5))
                assert got == list(range(500)), f"{len(got)} of 500 arrived across the two anycast RPs"
                # A learned nothing back: B does not advertise A's source as its own.
                assert all(s.get("peer") is None for s in a.client.call("msdp.sa")["sa"])
