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
import time

import pytest
from daemon_support import daemon, wait_for
from pim_scapy import PIMv2Register, PIMv2RegisterStop
from scapy.contrib.pim import PIMv2Hdr
from scapy.layers.l2 import Ether

from mcr.lab import Capture, UdpSender, UdpSink, frr, numbered_payloads, payload_seq
from mcr.lab.line import line

pytestmark = pytest.mark.skipif(bool(frr.missing(routing=True)), reason=frr.missing(routing=True))

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
    from scapy.contrib.pim import PIMv2JoinPrune

    with line(["src", "frr", "mcr", "rcv"]) as net:
        domain = Domain(net)
        capture = Capture(net.ns["frr"], domain.frr_down, max_seconds=60)
        with frr.Frr(net.ns["frr"], frr_config(domain.frr_ifs, domain.rp)) as peer, \
                daemon(net, tmp_path, config=domain.mcr_config(tmp_path, spt_switchover=switchover)) as d:
            wait_for(lambda: domain.mcr_up_addr in peer.show("show ip pim neighbor json").get(domain.frr_down, {}),
                     15, "FRR to see MCR as PIM neighbor")
            events = d.client.subscribe(timeout=10)
            with UdpSink(net.ns["rcv"], GROUP, PORT, domain.rcv_if) as sink:
                wait_for(lambda: ("*", GROUP) in frr_joins(peer, domain.frr_down), 15,
                         "MCR's (*,G) join to reach FRR")
                with events:  # the new (*,G) entry is on `mcr events`
                    assert any(e["event"] == "pim-route" and e["group"] == GROUP and e["source"] is None
                               for e in iter(events.next, None)), "no pim-route event for the (*,G)"
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
            # ...and FRR no longer sends the group toward MCR.
            upstream = Capture(net.ns["mcr"], domain.mcr_up, max_seconds=10)
            with UdpSender(net.ns["src"], net.left(0)[0]) as sender:
                sender.send(numbered_payloads(100, 64, 9), GROUP, PORT, rate_pps=200)
            time.sleep(0.5)
            leaked = [f for f in map(Ether, upstream.stop()) if f.haslayer("UDP") and f["IP"].dst == GROUP]
            assert not leaked, f"{len(leaked)} datagrams still came upstream after the prune"
        frames = [Ether(f) for f in capture.stop()]
    ours = [f for f in frames if f.haslayer("IP") and f["IP"].src == domain.mcr_up_addr and f["IP"].proto == 103]
    join_prunes = [PIMv2Hdr(bytes(f["IP"].payload)) for f in ours if bytes(f["IP"].payload)[0] & 0x0F == 3]
    assert join_prunes, "no Join/Prune from MCR on the wire"
    for message in join_prunes:
        assert message.haslayer(PIMv2JoinPrune), message.show(dump=True)
        assert message[PIMv2JoinPrune].up_neighbor_ip == domain.frr_down_addr


# --- Registers: MCR as the source's DR, MCR as the RP -------------------------------

def frr_register_state(peer: frr.Frr, source: str) -> str | None:
    return peer.show("show ip pim upstream json").get(GROUP, {}).get(source, {}).get("regState")


def mcr_upstream(d, source: str) -> dict:
    return next((u for u in d.client.call("pim.upstream")["upstream"]
                 if u["source"] == source and u["group"] == GROUP and u["kind"] == "(S,G)"), {})


def test_mcr_as_the_sources_dr_registers_to_frr_as_rp_until_register_stop(tmp_path):
    """src -- MCR -- FRR (RP) -- rcv: MCR encapsulates the kernel sender's
    datagrams in Registers (in the engine), FRR decapsulates them toward its
    receiver, joins the SPT toward MCR and sends Register-Stop; MCR then
    forwards natively and probes with Null-Registers."""
    with line(["src", "mcr", "frr", "rcv"]) as net:
        net.relay_ns = net.ns["mcr"]
        mcr_up, _ = net.right(0)  # toward the source
        mcr_down, mcr_down_addr = net.left(1)
        frr_up, frr_up_addr = net.right(1)
        frr_rcv, _ = net.left(2)
        rcv_if, _ = net.right(2)
        source = net.left(0)[1]
        config = tmp_path / "mcr.json"
        config.write_text(json.dumps({"workers": 1, "pim": {
            "interfaces": {mcr_up: FAST_HELLO, mcr_down: FAST_HELLO},
            "rp": [{"address": frr_up_addr, "groups": "239.0.0.0/8"}], "join_prune_period": 5}}))
        frr_conf = (frr_config([frr_up], frr_up_addr) +
                    f"interface {frr_rcv}\n ip pim\n ip igmp\n ip igmp query-max-response-time 10\n"
                    " ip igmp query-interval 2\n!\n")
        capture = Capture(net.ns["frr"], frr_up, max_seconds=60)
        with frr.Frr(net.ns["frr"], frr_conf) as peer, daemon(net, tmp_path, config=config) as d, \
                UdpSink(net.ns["rcv"], GROUP, PORT, rcv_if) as sink:
            wait_for(lambda: mcr_down_addr in peer.show("show ip pim neighbor json").get(frr_up, {}), 15,
                     "FRR to see MCR as PIM neighbor")
            wait_for(lambda: ("*", GROUP) in {(s, g) for g, v in peer.show("show ip pim upstream json").items()
                                              for s in v}, 15, "the receiver's (*,G) at FRR")
            with UdpSender(net.ns["src"], net.left(0)[0]) as sender:
                primed = sender.send(numbered_payloads(300, 64, 1), GROUP, PORT, rate_pps=100)
            got = {payload_seq(r.payload)[1] for r in sink.receive(primed, timeout=8, idle=1.5)}
            # The first second or so is lost while MCR notices the source and FRR sets up its state.
            assert len(got) > 150, f"{len(got)} of 300 primer datagrams arrived (Registers, then the SPT)"
            wait_for(lambda: mcr_upstream(d, source).get("register_state") == "Prune", 10,
                     "MCR's Register state to reach Prune (FRR's Register-Stop)")
            with UdpSender(net.ns["src"], net.left(0)[0]) as sender:
                assert sender.send(numbered_payloads(500, 64, 2), GROUP, PORT, rate_pps=250) == 500
            seqs = sorted(payload_seq(r.payload)[1] for r in sink.receive(500, timeout=10, idle=1.5))
            assert seqs == list(range(500)), f"{len(seqs)} of 500 arrived natively"
        frames = [Ether(f) for f in capture.stop()]
    from scapy.layers.inet import IP
    ours = [f for f in frames if f.haslayer(IP) and f[IP].src == mcr_down_addr and f[IP].proto == 103]
    registers = [f for f in ours if bytes(f[IP].payload)[0] == 0x21]
    assert registers, "no Register from MCR on the wire"
    parsed = [PIMv2Hdr(bytes(f[IP].payload)) for f in registers]
    null = [m for m in parsed if m[PIMv2Register].null_register]
    data = [m for m in parsed if not m[PIMv2Register].null_register]
    assert data and all(m[PIMv2Register][IP].src == source and m[PIMv2Register][IP].dst == GROUP for m in data)
    assert all(f[IP].dst == frr_up_addr for f in registers)
    assert len(null) <= 2  # probes come every minute or so (Register_Suppression_Time): none or one here


def test_frr_registers_to_mcr_as_rp_which_joins_the_spt_and_stops_them(tmp_path):
    """src -- FRR (the source's DR) -- MCR (RP) -- rcv: FRR registers the
    kernel sender's traffic to MCR; MCR's engine decapsulates it down the
    shared tree to its receiver, MCR joins toward the source and sends
    Register-Stop, after which the traffic comes natively."""
    with line(["src", "frr", "mcr", "rcv"]) as net:
        domain = Domain(net)
        rp = domain.mcr_up_addr
        source = net.left(0)[1]
        capture = Capture(net.ns["frr"], domain.frr_down, max_seconds=60)
        with frr.Frr(net.ns["frr"], frr_config(domain.frr_ifs, rp)) as peer, \
                daemon(net, tmp_path, config=rp_config(domain, tmp_path, rp)) as d, \
                UdpSink(net.ns["rcv"], GROUP, PORT, domain.rcv_if) as sink:
            wait_for(lambda: domain.mcr_up_addr in peer.show("show ip pim neighbor json").get(domain.frr_down, {}),
                     15, "FRR to see MCR as PIM neighbor")
            time.sleep(3)  # the receiver's IGMP report: MCR, the RP, has (*,G) state (no upstream to join)
            with UdpSender(net.ns["src"], net.left(0)[0]) as sender:
                primed = sender.send(numbered_payloads(100, 64, 1), GROUP, PORT, rate_pps=100)
            got = {payload_seq(r.payload)[1] for r in sink.receive(primed, timeout=5, idle=1.5)}
            assert len(got) > 50, f"{len(got)} of 100 primer datagrams arrived (decapsulated, then the SPT)"
            wait_for(lambda: frr_register_state(peer, source) == "RegPrune", 10,
                     "FRR's Register state to reach Prune (MCR's Register-Stop)")
            assert (source, GROUP) in frr_joins(peer, domain.frr_down), "MCR did not join the SPT"
            with UdpSender(net.ns["src"], net.left(0)[0]) as sender:
                assert sender.send(numbered_payloads(500, 64, 2), GROUP, PORT, rate_pps=250) == 500
            seqs = sorted(payload_seq(r.payload)[1] for r in sink.receive(500, timeout=10, idle=1.5))
            assert seqs == list(range(500)), f"{len(seqs)} of 500 arrived natively"
            stats = d.client.call("stats")
            assert stats["drops"].get("register_bad_checksum", 0) == 0
        frames = [Ether(f) for f in capture.stop()]
    from scapy.layers.inet import IP
    stops = [PIMv2Hdr(bytes(f[IP].payload)) for f in frames if f.haslayer(IP) and f[IP].proto == 103
             and f[IP].src == domain.mcr_up_addr and bytes(f[IP].payload)[0] == 0x22]
    assert stops, "no Register-Stop from MCR on the wire"
    assert all((m[PIMv2RegisterStop].group, m[PIMv2RegisterStop].source) == (GROUP, source) for m in stops)


def rp_config(domain: Domain, tmp_path, rp: str):
    path = tmp_path / "mcr.json"
    path.write_text(json.dumps({
        "workers": 1, "igmp": {"interfaces": {domain.mcr_down: FAST_IGMP}},
        "pim": {"interfaces": {domain.mcr_up: FAST_HELLO, domain.mcr_down: FAST_HELLO},
                "rp": [{"address": rp, "groups": "239.0.0.0/8"}], "join_prune_period": 5}}))
    return path


def test_frr_restart_new_generation_id_gets_mcrs_joins_again(tmp_path):
    """FRR's pimd restarts with no memory of MCR's joins: MCR sends its
    Join again at once, not at the next periodic refresh, and traffic
    resumes. FRR says goodbye (holdtime 0) and comes back, so RPF' is gone
    and back; without the goodbye its new generation ID would do it
    (4.5.6: within t_override). FRR 8.4 sometimes keeps the generation ID
    over a restart (test_pim_neighbors), which the goodbye covers. The CLI
    shows the state on the way."""
    with line(["src", "frr", "mcr", "rcv"]) as net:
        domain = Domain(net)
        config = domain.mcr_config(tmp_path, spt_switchover="never", join_prune_period=60)
        with frr.Frr(net.ns["frr"], frr_config(domain.frr_ifs, domain.rp)) as peer, \
                daemon(net, tmp_path, config=config) as d, UdpSink(net.ns["rcv"], GROUP, PORT, domain.rcv_if) as sink:
            wait_for(lambda: ("*", GROUP) in frr_joins(peer, domain.frr_down), 15, "MCR's (*,G) join at FRR")
            send_and_count(domain, sink, 50, stream=1)  # FRR's first packets of a source: a primer
            assert send_and_count(domain, sink, 200, stream=2) == list(range(200))
            text = d.mcr("pim", "upstream").stdout
            assert GROUP in text and "Joined" in text and domain.frr_down_addr in text, text
            assert domain.rp in d.mcr("pim", "rp").stdout
            assert "rcv" not in d.mcr("pim", "join").stdout  # no PIM router downstream of MCR
            joined = time.monotonic()
            peer.stop_daemon("pimd")
            peer.start_daemon("pimd")
            wait_for(lambda: ("*", GROUP) in frr_joins(peer, domain.frr_down), 20,
                     "MCR's (*,G) join at the restarted FRR")
            # Well before the 60 s periodic Join: the restart itself made MCR send it.
            assert time.monotonic() - joined < 30
            send_and_count(domain, sink, 50, stream=3)
            assert send_and_count(domain, sink, 200, stream=4) == list(range(200))
