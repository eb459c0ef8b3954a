"""PIM-SM trees against FRRouting's pimd, on a routed line

    src --link 0-- FRR --link 1-- MCR --link 2-- rcv

A kernel socket on rcv joins a group (IGMP, MCR the querier there); MCR
joins the shared tree toward the RP (FRR), FRR forwards a kernel socket's
datagrams from src, MCR relays them to rcv, and switches to the shortest
path tree. Counted exactly by ordinary sockets; FRR's own view of MCR's
joins is read through vtysh; every Join/Prune MCR sends parses in scapy's
PIM dissector."""

from __future__ import annotations

import json

import pytest
from daemon_support import daemon, wait_for

from mcr.lab import Capture, UdpSender, UdpSink, frr, numbered_payloads, payload_seq
from mcr.lab.line import line

pytestmark = pytest.mark.skipif(not frr.available(), reason="FRR (Debian frr) is not installed")

GROUP, PORT = "239.1.1.1", 5000
FAST_HELLO = {"hello_period": 1, "triggered_hello_delay": 0.5}
FAST_IGMP = {"query_interval": 2, "query_response_interval": 1, "last_member_query_interval": 0.2}


def frr_config(interfaces: list[str], rp: str) -> str:
    text = "frr defaults traditional\nhostname frr\n"
    for name in interfaces:
        text += f"interface {name}\n ip pim\n ip pim hello 1 4\n!\n"
    return text + f"ip pim rp {rp} 239.0.0.0/8\nip pim join-prune-interval 5\n"


def frr_joins(peer: frr.Frr, interface: str) -> dict:
    """FRR's joined downstream state on `interface`: {(source, group): state} (FRR lists
    entries that went back to NOINFO for a while; those are not joins)."""
    joins = peer.show("show ip pim join json").get(interface, {})
    return {(source, group): entry["channelJoinName"] for group, sources in joins.items()
            if isinstance(sources, dict) for source, entry in sources.items()
            if entry.get("channelJoinName") not in (None, "NOINFO")}


class Domain:
    def __init__(self, net) -> None:
        self.net = net
        self.frr_ifs = [name for name, _ in net.interfaces("frr")]
        self.rp = net.right(0)[1]  # FRR's address on the source's link
        self.mcr_up, self.mcr_up_addr = net.right(1)
        self.mcr_down, _ = net.left(2)
        self.frr_down, self.frr_down_addr = net.left(1)  # FRR's interface toward MCR
        self.rcv_if, _ = net.right(2)
        net.relay_ns = net.ns["mcr"]

    def mcr_config(self, tmp_path, **pim) -> str:
        path = tmp_path / "mcr.json"
        path.write_text(json.dumps({
            "workers": 1,
            "igmp": {"interfaces": {self.mcr_down: FAST_IGMP}},
            "pim": {"interfaces": {self.mcr_up: FAST_HELLO, self.mcr_down: FAST_HELLO},
                    "rp": [{"address": self.rp, "groups": "239.0.0.0/8"}], "join_prune_period": 5, **pim}}))
        return path


def send_and_count(domain: Domain, sink: UdpSink, count: int, stream: int) -> list[int]:
    payloads = numbered_payloads(count, 64, stream)
    with UdpSender(domain.net.ns["src"], domain.net.left(0)[0]) as sender:
        assert sender.send(payloads, GROUP, PORT, rate_pps=250) == count
    return sorted(payload_seq(r.payload)[1] for r in sink.receive(count, timeout=10, idle=1.5))


def spt_bit(d, source: str) -> bool:
    upstream = d.client.call("pim.upstream")["upstream"]
    return any(u["source"] == source and u["group"] == GROUP and u.get("spt_bit") for u in upstream)


@pytest.mark.parametrize("switchover", ["immediate", "never"])
def test_receiver_behind_mcr_pulls_traffic_from_frr_as_rp(tmp_path, switchover):
    from scapy.contrib.pim import PIMv2Hdr, PIMv2JoinPrune
    from scapy.layers.l2 import Ether

    with line(["src", "frr", "mcr", "rcv"]) as net:
        domain = Domain(net)
        capture = Capture(net.ns["frr"], domain.frr_down, max_seconds=60)
        with frr.Frr(net.ns["frr"], frr_config(domain.frr_ifs, domain.rp)) as peer, \
                daemon(net, tmp_path, config=domain.mcr_config(tmp_path, spt_switchover=switchover)) as d:
            wait_for(lambda: domain.mcr_up_addr in peer.show("show ip pim neighbor json").get(domain.frr_down, {}),
                     15, "FRR to see MCR as PIM neighbor")
            with UdpSink(net.ns["rcv"], GROUP, PORT, domain.rcv_if) as sink:
                wait_for(lambda: ("*", GROUP) in frr_joins(peer, domain.frr_down), 15,
                         "MCR's (*,G) join to reach FRR")
                # FRR (the source's DR and the RP) drops the first packets of a new source while
                # its kernel resolves the (S,G): a primer first, then exact counts.
                primed = send_and_count(domain, sink, 50, stream=1)
                assert len(primed) > 25, f"only {len(primed)} of 50 primer datagrams arrived"
                source = net.left(0)[1]
                if switchover == "immediate":
                    # The traffic made MCR switch to the shortest-path tree: an (S,G) join at FRR.
                    wait_for(lambda: (source, GROUP) in frr_joins(peer, domain.frr_down), 10,
                             "MCR's (S,G) join (the SPT switchover) to reach FRR")
                    # The first packet arriving on the SPT's interface sets the SPT bit (RFC 7761 4.2.2).
                    assert len(send_and_count(domain, sink, 20, stream=3)) == 20
                    wait_for(lambda: spt_bit(d, source), 5, "MCR to set the SPT bit")
                got = send_and_count(domain, sink, 500, stream=2)
                assert got == list(range(500)), f"{len(got)} of 500 arrived"
                if switchover == "never":
                    assert (source, GROUP) not in frr_joins(peer, domain.frr_down)
                    assert not spt_bit(d, source)
                routes = d.client.call("mroute")["routes"]
                assert any(r["origin"] == "pim" and r["group"] == GROUP for r in routes), routes
            # The receiver left: MCR prunes, and FRR stops forwarding to it.
            wait_for(lambda: not frr_joins(peer, domain.frr_down), 15, "MCR's prunes to clear FRR's join state")
        frames = [Ether(f) for f in capture.stop()]
    ours = [f for f in frames if f.haslayer("IP") and f["IP"].src == domain.mcr_up_addr and f["IP"].proto == 103]
    join_prunes = [PIMv2Hdr(bytes(f["IP"].payload)) for f in ours if bytes(f["IP"].payload)[0] & 0x0F == 3]
    assert join_prunes, "no Join/Prune from MCR on the wire"
    for message in join_prunes:
        assert message.haslayer(PIMv2JoinPrune), message.show(dump=True)
        assert message[PIMv2JoinPrune].up_neighbor_ip == domain.frr_down_addr
