"""PIM Assert on a shared LAN between two MCR routers: both can forward
the same (S,G) onto it, they assert, and afterwards exactly one does.

    src ---- LAN A (bridge) ---- MCR 1 (.2), MCR 2 (.3)
    rcv ---- LAN B (bridge) ---- MCR 1 (.2), MCR 2 (.3)

Both run PIM on both LANs; the RP is the source host's address (on LAN A
for both, so neither sends a Join upstream and both forward from LAN A).
rcv is a kernel receiver (IGMP to MCR 1, the DR on LAN B) and also a
test-only downstream PIM router that sends Hellos and a Join(*,G) to
MCR 2, so both forward onto LAN B: the classic case (RFC 7761 4.6). Each
sees the other's packets on an outgoing interface (the notify entry on a
CouldAssert interface) and asserts. Checked: Asserts from both on the wire
(parsed by tests/pim_scapy.py's layer), both name the same winner in
`pim.assert`, and the kernel receiver then gets each datagram exactly
once. The winner is MCR 1: its local receiver made it switch to the SPT,
while MCR 2 forwards on the RP tree, and an SPT metric beats an RPT one
(4.6.3); MCR 2, the loser, keeps (S,G) state so that only S leaves its
olist on LAN B (lost_assert(S,G,rpt)).

Against FRR 8.4 see tests/test_pim_assert_interop.py. With the Join(*,G)
of this file sent to FRR instead (FRR the RP and DR on LAN A), FRR never
asserted: its `show ip pim assert` stayed empty while both forwarded, and
`show ip mroute` showed an (S,G) entry it made from MCR's copies arriving
on LAN B (Input LAN B, no outputs, flags SP, proto none), after which its
kernel dropped the source's packets from LAN A as wrong-interface: FRR
stopped forwarding without an Assert.
"""

from __future__ import annotations

import json
import socket
import time
from types import SimpleNamespace

from daemon_support import daemon
from pim_scapy import PIMv2Assert
from scapy.contrib.pim import PIMv2Hdr
from scapy.layers.inet import IP
from scapy.layers.l2 import Ether

from mcr.lab import Capture, UdpSender, UdpSink, numbered_payloads, payload_seq
from mcr.lab.netns import Lab, open_socket
from mcr.protocols.pim_wire import (ALL_PIM_ROUTERS, GroupSet, Hello, JoinPrune, Source, encode_hello,
                                    encode_join_prune)

GROUP, PORT = "239.1.1.1", 5000
SRC, ONE_A, TWO_A = "10.31.0.10", "10.31.0.2", "10.31.0.3"
RCV, ONE_B, TWO_B = "10.31.1.10", "10.31.1.2", "10.31.1.3"
IPPROTO_PIM = 103
ROUNDS = 30  # bounded: at most 30 Hello + Join rounds from the downstream router, one every half second


class SharedLans:
    """The two bridged LANs of the module docstring."""

    def __init__(self, lab: Lab) -> None:
        ns = {role: lab.add_namespace(role) for role in ("src", "one", "two", "rcv", "swa", "swb")}
        self.ns = ns
        self.src_if, a_src = lab.add_link(ns["src"], ns["swa"], f"{SRC}/24", None)
        self.one_a, a_one = lab.add_link(ns["one"], ns["swa"], f"{ONE_A}/24", None)
        self.two_a, a_two = lab.add_link(ns["two"], ns["swa"], f"{TWO_A}/24", None)
        self.rcv_if, b_rcv = lab.add_link(ns["rcv"], ns["swb"], f"{RCV}/24", None)
        self.one_b, b_one = lab.add_link(ns["one"], ns["swb"], f"{ONE_B}/24", None)
        self.two_b, b_two = lab.add_link(ns["two"], ns["swb"], f"{TWO_B}/24", None)
        # No snooping: the LANs flood multicast, as a hub would; both routers see all of it.
        lab.add_bridge(ns["swa"], [a_src, a_one, a_two], mcast_snooping=0)
        lab.add_bridge(ns["swb"], [b_rcv, b_one, b_two], mcast_snooping=0)
        lab.add_route(ns["src"], "224.0.0.0/4", self.src_if)
        lab.add_route(ns["rcv"], "224.0.0.0/4", self.rcv_if)


def mcr_config(path, up: str, down: str, dr_priority: int, igmp: bool):
    hello = {"hello_period": 1, "triggered_hello_delay": 0.5}
    config = {"workers": 1,
              "pim": {"interfaces": {up: hello, down: {**hello, "dr_priority": dr_priority}},
                      "rp": [{"address": SRC, "groups": "239.0.0.0/8"}], "join_prune_period": 5,
                      "spt_switchover": "immediate"}}
    if igmp:
        config["igmp"] = {"interfaces": {down: {"query_interval": 2, "query_response_interval": 1}}}
    path.write_text(json.dumps(config))
    return path


class DownstreamRouter:
    """rcv as a PIM router: Hellos, and a Join(*,G) for FRR."""

    def __init__(self, ns: str) -> None:
        self.sock = open_socket(ns, socket.AF_INET, socket.SOCK_RAW, IPPROTO_PIM)
        self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(RCV))
        self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
        self.join = encode_join_prune(JoinPrune(TWO_B, 210, (GroupSet(GROUP, joins=(
            Source(SRC, wildcard=True, rpt=True),)),)))

    def send(self) -> None:
        self.sock.sendto(encode_hello(Hello(105, 0, 777)), (ALL_PIM_ROUTERS, 0))  # DR priority 0: never DR
        self.sock.sendto(self.join, (ALL_PIM_ROUTERS, 0))

    def close(self) -> None:
        self.sock.close()


def joined_on(d, interface: str) -> bool:
    return any(j["interface"] == interface and j["group"] == GROUP and j.get("state") == "Join"
               for j in d.client.call("pim.join")["joins"])


def wait_for_or_false(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def by_source(d) -> dict:
    return {a["source"] or "*": a for a in mcr_asserts(d)}


def decided_key(one, two) -> str | None:
    """The (S,G) or (*,G) machine (source or "*") both routers have, one winning and one losing."""
    ones, twos = by_source(one), by_source(two)
    for key in (SRC, "*"):
        if key in ones and key in twos and {ones[key]["state"], twos[key]["state"]} == {
                "I am Assert Winner", "I am Assert Loser"}:
            return key
    return None


def mcr_asserts(d) -> list[dict]:
    return [a for a in d.client.call("pim.assert")["asserts"] if a["group"] == GROUP]


def send(lans: SharedLans, count: int, stream: int) -> None:
    with UdpSender(lans.ns["src"], lans.src_if) as sender:
        assert sender.send(numbered_payloads(count, 64, stream), GROUP, PORT, rate_pps=200) == count


def test_two_mcr_routers_assert_on_a_shared_lan_and_one_forwarder_remains(tmp_path):
    with Lab("mcras") as lab:
        lans = SharedLans(lab)
        (tmp_path / "one").mkdir()
        (tmp_path / "two").mkdir()
        one_conf = mcr_config(tmp_path / "one.json", lans.one_a, lans.one_b, 100, igmp=True)
        two_conf = mcr_config(tmp_path / "two.json", lans.two_a, lans.two_b, 1, igmp=False)
        capture = Capture(lans.ns["rcv"], lans.rcv_if, max_seconds=90)
        downstream = DownstreamRouter(lans.ns["rcv"])
        try:
            with daemon(SimpleNamespace(relay_ns=lans.ns["one"]), tmp_path / "one", config=one_conf) as one, \
                    daemon(SimpleNamespace(relay_ns=lans.ns["two"]), tmp_path / "two", config=two_conf) as two, \
                    UdpSink(lans.ns["rcv"], GROUP, PORT, lans.rcv_if) as sink:
                for _ in range(ROUNDS):
                    downstream.send()
                    time.sleep(0.5)
                    if joined_on(two, lans.two_b):
                        break
                assert joined_on(two, lans.two_b), two.client.call("pim.join")
                send(lans, 200, stream=1)  # both forward until they assert
                before = sink.receive(400, timeout=5, idle=1.5)
                assert len(before) > 200, f"{len(before)} for 200 sent: no second forwarder, nothing to assert"
                # Which machine decides depends on which packet each saw first: the (S,G) one (MCR 1
                # on the SPT wins, 4.6.3: SPT beats RPT) or the (*,G) one (equal RPT metrics: the
                # higher address, MCR 2, wins). Either way the two must agree.
                decided = wait_for_or_false(lambda: decided_key(one, two) is not None, 10)
                assert decided, (mcr_asserts(one), mcr_asserts(two))
                key = decided_key(one, two)
                ones, twos = by_source(one)[key], by_source(two)[key]
                winner = ones["winner"]
                assert twos["winner"] == winner and winner in (ONE_B, TWO_B), (ones, twos)
                if key == SRC:
                    assert winner == ONE_B and ones["winner_metric"]["rpt"] is False and twos["my_metric"]["rpt"]
                else:
                    assert winner == TWO_B  # equal RPT metrics: the higher address
                states = {ONE_B: ones["state"], TWO_B: twos["state"]}
                loser = TWO_B if winner == ONE_B else ONE_B
                assert (states[winner], states[loser]) == ("I am Assert Winner", "I am Assert Loser"), states
                text = (two if loser == TWO_B else one).mcr("pim", "assert").stdout
                assert "Loser" in text and winner in text, text
                send(lans, 300, stream=2)
                seqs = sorted(payload_seq(r.payload)[1] for r in sink.receive(600, timeout=10, idle=1.5))
                assert seqs == list(range(300)), f"{len(seqs)} datagrams for 300 sent (duplicates: two forwarders)"
        finally:
            downstream.close()
            frames = [Ether(f) for f in capture.stop()]
    asserts = [(f[IP].src, PIMv2Hdr(bytes(f[IP].payload))) for f in frames
               if f.haslayer(IP) and f[IP].proto == IPPROTO_PIM and bytes(f[IP].payload)[0] & 0x0F == 5]
    senders = {src for src, _ in asserts}
    assert winner in senders, f"no Assert from the winner {winner} on LAN B (from {senders})"
    for src, message in asserts:
        body = message[PIMv2Assert]
        assert body.group == GROUP and body.source in (SRC, "0.0.0.0"), message.show(dump=True)
        if src == ONE_B and body.source == SRC:
            assert (body.rpt, body.metric_preference, body.metric) == (0, 0, 0)  # a connected source, SPT
