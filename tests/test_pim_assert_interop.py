"""PIM Assert between MCR and FRRouting's pimd 8.4 on a shared LAN: the
topology of tests/test_pim_assert_lan.py with FRR as the second router.

    src ---- LAN A (bridge) ---- MCR (.2), FRR (.3, the RP and DR there)
    rcv ---- LAN B (bridge) ---- MCR (.2, DR), FRR (.3)

FRR 8.4 asserts only for (S,G) state on the SPT (its CouldAssert needs the
SPT bit, and a wrong-interface packet needs an (S,G) channel on the
interface), so rcv's test-only downstream PIM router sends FRR a
Join(S,G): FRR forwards S onto LAN B on the SPT. rcv's kernel receiver then
reports to MCR (the DR there), which switches to the SPT and forwards too.
Both see the other's packets on LAN B and assert with the same metric (a
connected source: preference 0, metric 0). Checked: the Asserts on the
wire (tests/pim_scapy.py's layer), the same winner in FRR's `show ip pim
assert` (8.4 has no json form) and our `pim.assert`, and every datagram
reaching the receiver afterwards.

Not checked against FRR: exactly one forwarder. In every run here MCR won
(FRR, in NoInfo, took MCR's Assert as acceptable and lost without sending
its own metric, though its address is higher), and FRR, the LOSER, went on
forwarding S onto LAN B (`show ip mroute` kept the output, its vif counted
600 packets out for 300 sent), so the receiver got each datagram twice.
Exactly once after an Assert is checked between two MCR routers in
tests/test_pim_assert_lan.py."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import pytest
from daemon_support import daemon
from pim_scapy import PIMv2Assert
from scapy.contrib.pim import PIMv2Hdr
from scapy.layers.inet import IP
from scapy.layers.l2 import Ether
from test_pim_assert_lan import (GROUP, PORT, ROUNDS, SRC, DownstreamRouter, SharedLans, by_source, mcr_config,
                                 send, wait_for_or_false)

from mcr.lab import Capture, UdpSink, frr, payload_seq
from mcr.lab.netns import Lab
from mcr.protocols.pim_wire import GroupSet, JoinPrune, Source, encode_join_prune

pytestmark = pytest.mark.skipif(bool(frr.missing(routing=True)), reason=frr.missing(routing=True))

MCR_A, FRR_A = "10.31.0.2", "10.31.0.3"
MCR_B, FRR_B = "10.31.1.2", "10.31.1.3"
IPPROTO_PIM = 103


def frr_config(lans: SharedLans) -> str:
    return ("frr defaults traditional\nhostname frr\n"
            f"interface {lans.two_a}\n ip pim\n ip pim hello 1 4\n ip pim drpriority 100\n!\n"
            f"interface {lans.two_b}\n ip pim\n ip pim hello 1 4\n!\n"
            f"ip pim rp {FRR_A} 239.0.0.0/8\nip pim join-prune-interval 5\n")


def frr_assert(peer: frr.Frr, interface: str) -> tuple[str, str] | None:
    """(state, winner) of FRR's (S,G) assert on `interface` (8.4 has no json form of this)."""
    for line in peer.vtysh("show ip pim assert").splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[0] == interface and fields[2] == SRC and fields[3] == GROUP:
            return fields[4], fields[5]
    return None


def frr_sg_join(peer: frr.Frr, interface: str) -> bool:
    entry = peer.show("show ip pim join json").get(interface, {}).get(GROUP, {}).get(SRC, {})
    return entry.get("channelJoinName") == "JOIN"


def test_mcr_and_frr_assert_on_a_shared_lan_and_one_forwarder_remains(tmp_path):
    with Lab("mcrfa") as lab:
        lans = SharedLans(lab)
        (tmp_path / "one").mkdir()
        conf = mcr_config(tmp_path / "one.json", lans.one_a, lans.one_b, 100, igmp=True)
        conf.write_text(conf.read_text().replace(json.dumps(SRC), json.dumps(FRR_A)))  # FRR is the RP
        capture = Capture(lans.ns["rcv"], lans.rcv_if, max_seconds=90)
        downstream = DownstreamRouter(lans.ns["rcv"])
        downstream.join = encode_join_prune(JoinPrune(FRR_B, 210, (GroupSet(GROUP, joins=(Source(SRC),)),)))
        try:
            with frr.Frr(lans.ns["two"], frr_config(lans)) as peer, \
                    daemon(SimpleNamespace(relay_ns=lans.ns["one"]), tmp_path / "one", config=conf) as one:
                for _ in range(ROUNDS):
                    downstream.send()
                    time.sleep(0.5)
                    if frr_sg_join(peer, lans.two_b):
                        break
                assert frr_sg_join(peer, lans.two_b), peer.vtysh("show ip pim join")
                send(lans, 100, stream=1)  # FRR alone forwards S onto LAN B (the downstream router's join)
                with UdpSink(lans.ns["rcv"], GROUP, PORT, lans.rcv_if) as sink:
                    time.sleep(1.0)  # the report reaches MCR, which forwards too
                    send(lans, 200, stream=2)
                    before = sink.receive(400, timeout=5, idle=1.5)
                    assert len(before) > 200, f"{len(before)} for 200 sent: no second forwarder"
                    decided = wait_for_or_false(lambda: SRC in by_source(one) and frr_assert(peer, lans.two_b), 10)
                    assert decided, (by_source(one), peer.vtysh("show ip pim assert"), peer.vtysh("show ip mroute"))
                    ours, theirs = by_source(one)[SRC], frr_assert(peer, lans.two_b)
                    winner = ours["winner"]
                    # Both must name the same winner and take opposite sides. (Seen here: MCR, the
                    # lower address, wins with equal metrics: FRR, in NoInfo, takes MCR's Assert as
                    # acceptable and loses without asserting its own metric first.)
                    assert ours["winner"] == theirs[1] in (MCR_B, FRR_B), (ours, theirs)
                    mine = "I am Assert Winner" if ours["winner"] == MCR_B else "I am Assert Loser"
                    assert (ours["state"], theirs[0]) == (mine, "LOSER" if mine.endswith("Winner") else "WINNER")
                    text = one.mcr("pim", "assert").stdout
                    assert ours["winner"] in text and SRC in text, text
                    send(lans, 300, stream=3)
                    seqs = sorted(payload_seq(r.payload)[1] for r in sink.receive(600, timeout=10, idle=1.5))
                    # Every datagram reaches the receiver through the winner. Not exactly once:
                    # FRR 8.4 as the LOSER keeps S's output on LAN B (its `show ip mroute` still
                    # lists it and its vif counts every packet out), so each arrives twice.
                    assert set(seqs) == set(range(300)), f"{len(set(seqs))} of 300 arrived"
        finally:
            downstream.close()
            frames = [Ether(f) for f in capture.stop()]
    asserts = [(f[IP].src, PIMv2Hdr(bytes(f[IP].payload))[PIMv2Assert]) for f in frames
               if f.haslayer(IP) and f[IP].proto == IPPROTO_PIM and bytes(f[IP].payload)[0] & 0x0F == 5]
    assert winner in {src for src, _ in asserts}, f"no Assert from the winner {winner} on LAN B"
    for src, body in asserts:
        if body.source == SRC:
            assert (body.group, body.rpt, body.metric_preference, body.metric) == (GROUP, 0, 0, 0), (src, body)
