"""MSDP between MCR and FRRouting's pimd (8.4), each the RP of its own PIM
domain, on a routed line of namespaces:

    src --link 0-- RP1 --link 1-- RP2 --link 2-- rcv

The RPs are PIM neighbors on link 1 and MSDP peers over it. A kernel
socket on rcv joins a group; a kernel socket on src sends. The RP of the
source's domain announces the source in an SA; the RP of the receiver's
domain, with receivers on its shared tree, joins toward the source, and
the datagrams arrive, counted exactly by the receiving socket. Both ways
round (MCR listens in one, connects in the other: the higher address
listens), and the peering survives a restart of either side."""

from __future__ import annotations

import json
import time

import pytest
from daemon_support import daemon, wait_for

from mcr.lab import UdpSender, UdpSink, frr, numbered_payloads, payload_seq
from mcr.lab.line import line

pytestmark = pytest.mark.skipif(bool(frr.missing(routing=True)), reason=frr.missing(routing=True))

GROUP, PORT = "239.1.1.1", 5000
FAST_HELLO = {"hello_period": 1, "triggered_hello_delay": 0.5}
FAST_IGMP = {"query_interval": 2, "query_response_interval": 1, "last_member_query_interval": 0.2}
# sa_hold stays at its default (90 s): FRR re-sends its SAs every 60 s.
MSDP_TIMERS = {"keepalive": 3, "hold": 10, "connect_retry": 1, "advertisement_period": 5}


def frr_config(pim_interfaces: list[str], rp: str, peer: str, source: str, igmp: str | None = None) -> str:
    text = "frr defaults traditional\nhostname frr\n"
    for name in pim_interfaces:
        text += f"interface {name}\n ip pim\n ip pim hello 1 4\n"
        if name == igmp:
            text += " ip igmp\n ip igmp query-interval 2\n"
        text += "!\n"
    return text + (f"ip pim rp {rp} 239.0.0.0/8\nip pim join-prune-interval 5\n"
                   f"ip msdp timers 3 10 2\nip msdp peer {peer} source {source}\n")


def mcr_config(tmp_path, pim_interfaces: list[str], rp: str, peer: str, local: str,
               igmp: str | None = None) -> str:
    path = tmp_path / "mcr.json"
    path.write_text(json.dumps({
        "workers": 1,
        "igmp": {"interfaces": {igmp: FAST_IGMP}} if igmp else {},
        "pim": {"interfaces": {name: FAST_HELLO for name in pim_interfaces},
                "rp": [{"address": rp, "groups": "239.0.0.0/8"}], "join_prune_period": 5},
        "msdp": {"originator": rp, "peers": [{"address": peer, "local": local}], **MSDP_TIMERS}}))
    return path


def frr_peer_state(peer: frr.Frr, address: str) -> str | None:
    return peer.show("show ip msdp peer json").get(address, {}).get("state")


def mcr_peer_state(d, address: str) -> str | None:
    return next((p["state"] for p in d.client.call("msdp.peers")["peers"] if p["peer"] == address), None)


def frr_sa(peer: frr.Frr, source: str) -> dict:
    return peer.show("show ip msdp sa json").get(GROUP, {}).get(source, {})


def mcr_sa(d, source: str) -> dict:
    return next((s for s in d.client.call("msdp.sa")["sa"] if s["source"] == source and s["group"] == GROUP), {})


def send_and_count(net, sink: UdpSink, count: int, stream: int) -> list[int]:
    with UdpSender(net.ns["src"], net.left(0)[0]) as sender:
        assert sender.send(numbered_payloads(count, 64, stream), GROUP, PORT, rate_pps=250) == count
    return sorted(payload_seq(r.payload)[1] for r in sink.receive(count, timeout=10, idle=1.5))


def flows_exactly(net, sink: UdpSink, stream: int) -> None:
    """A primer (an RP drops the first packets of a new source while its
    kernel or tree resolves it), then 500 datagrams that must all arrive."""
    send_and_count(net, sink, 50, stream)
    got = send_and_count(net, sink, 500, stream + 1)
    assert got == list(range(500)), f"{len(got)} of 500 arrived"


def test_a_receiver_in_mcrs_domain_gets_a_source_in_frrs_domain(tmp_path):
    """src -- FRR (RP1) -- MCR (RP2) -- rcv; MCR has the higher address on link 1, so it listens."""
    with line(["src", "frr", "mcr", "rcv"]) as net:
        frr_rp, frr_link1 = net.right(0)[1], net.left(1)
        mcr_link1, (mcr_down, mcr_rp) = net.right(1), net.left(2)
        source = net.left(0)[1]
        net.relay_ns = net.ns["mcr"]
        config = mcr_config(tmp_path, [mcr_link1[0], mcr_down], mcr_rp, frr_link1[1], mcr_link1[1], igmp=mcr_down)
        with daemon(net, tmp_path, config=config) as d, UdpSink(net.ns["rcv"], GROUP, PORT, net.right(2)[0]) as sink:
            # Subscribed before FRR starts, so the peering's coming up is in the stream.
            events = d.client.subscribe(timeout=15)
            with frr.Frr(net.ns["frr"], frr_config([n for n, _ in net.interfaces("frr")], frr_rp, mcr_link1[1],
                                                   frr_link1[1])) as peer:
                with events:
                    wait_for(lambda: mcr_peer_state(d, frr_link1[1]) == "established", 20, "MCR's MSDP peering up")
                    assert any(e["event"] == "msdp-peer" and e["change"] == "up" for e in iter(events.next, None))
                assert frr_peer_state(peer, mcr_link1[1]) == "established"
                [row] = d.client.call("msdp.peers")["peers"]
                assert row["role"] == "passive"
                time.sleep(3)  # the receiver's IGMP report: MCR, the RP, has (*,G) state
                send_and_count(net, sink, 50, stream=1)  # FRR sees the source and announces it
                # FRR 8.4 names its peering address, not its RP address, as the SA's originating RP.
                wait_for(lambda: mcr_sa(d, source).get("rp") == frr_link1[1], 15, "FRR's SA for the source at MCR")
                assert mcr_sa(d, source)["peer"] == frr_link1[1]
                wait_for(lambda: source in peer.show("show ip pim join json").get(frr_link1[0], {}).get(GROUP, {}),
                         15, "MCR's (S,G) join toward the source at FRR")
                flows_exactly(net, sink, stream=2)
                routes = d.client.call("mroute")["routes"]
                assert any(r["source"] == source and r.get("msdp", {}).get("rp") == frr_link1[1]
                           for r in routes), routes
                assert source in d.mcr("msdp", "sa").stdout

                peer.stop_daemon("pimd")  # FRR restarts: it connects again (the lower address)
                wait_for(lambda: mcr_peer_state(d, frr_link1[1]) != "established", 15, "MCR to see the peer go")
                peer.start_daemon("pimd")
                wait_for(lambda: mcr_peer_state(d, frr_link1[1]) == "established", 30,
                         "the peering back after FRR's restart")
                send_and_count(net, sink, 50, stream=4)
                wait_for(lambda: source in peer.show("show ip pim join json").get(frr_link1[0], {}).get(GROUP, {}),
                         20, "MCR's (S,G) join at the restarted FRR")
                flows_exactly(net, sink, stream=5)


def test_a_receiver_in_frrs_domain_gets_a_source_in_mcrs_domain(tmp_path):
    """src -- MCR (RP1) -- FRR (RP2) -- rcv; MCR has the lower address on link 1, so it connects."""
    with line(["src", "mcr", "frr", "rcv"]) as net:
        (mcr_src_if, mcr_rp), mcr_link1 = net.right(0), net.left(1)
        frr_link1, (frr_down, frr_rp) = net.right(1), net.left(2)
        source = net.left(0)[1]
        net.relay_ns = net.ns["mcr"]
        config = mcr_config(tmp_path, [mcr_src_if, mcr_link1[0]], mcr_rp, frr_link1[1], mcr_link1[1])
        frr_text = frr_config([frr_link1[0], frr_down], frr_rp, mcr_link1[1], frr_link1[1], igmp=frr_down)
        with frr.Frr(net.ns["frr"], frr_text) as peer, \
                UdpSink(net.ns["rcv"], GROUP, PORT, net.right(2)[0]) as sink:
            with daemon(net, tmp_path, config=config) as d:
                wait_for(lambda: mcr_peer_state(d, frr_link1[1]) == "established", 20, "MCR's MSDP peering up")
                assert d.client.call("msdp.peers")["peers"][0]["role"] == "active"
                time.sleep(3)  # FRR's querier hears the receiver: (*,G) at FRR, the RP
                send_and_count(net, sink, 50, stream=1)  # MCR, DR and RP of the source, announces it
                wait_for(lambda: frr_sa(peer, source).get("rp") == mcr_rp, 15, "MCR's SA for the source at FRR")
                assert mcr_sa(d, source).get("peer") is None  # ours: local
                flows_exactly(net, sink, stream=2)

                peer.stop_daemon("pimd")  # FRR restarts: MCR connects again
                peer.start_daemon("pimd")
                wait_for(lambda: frr_peer_state(peer, mcr_link1[1]) == "established", 30,
                         "the peering back after FRR's restart")
                wait_for(lambda: frr_sa(peer, source).get("rp") == mcr_rp, 15, "the SA again at the restarted FRR")
                flows_exactly(net, sink, stream=4)
            with daemon(net, tmp_path, config=config) as d:  # MCR restarts
                wait_for(lambda: mcr_peer_state(d, frr_link1[1]) == "established", 30,
                         "the peering back after MCR's restart")
                flows_exactly(net, sink, stream=6)
