"""The relay is a member of each rule's group on its input interface: it
sends IGMP reports, answers queries and leaves with the last rule, all
without the kernel's IP-level join (which would push every relayed packet
through the kernel's own UDP input)."""

from __future__ import annotations

import socket
import time

from scapy.contrib.igmpv3 import IGMPv3, IGMPv3mq
from scapy.layers.inet import IP, IPOption_Router_Alert
from scapy.layers.igmp import IGMP
from scapy.layers.l2 import Ether

from mcr.engine import Engine
from mcr.lab import Capture, FrameSender, chain, multicast_mac
from mcr.netns import in_netns
from mcr.rules import Output, Rule

GROUP = "239.4.4.4"


def kernel_groups(ns: str, ifname: str) -> set[str]:
    """Groups the kernel's IP layer has joined on `ifname` (/proc/net/igmp)."""
    with in_netns(ns), open("/proc/net/igmp") as table:
        lines = table.read().splitlines()[1:]
    groups, current = set(), None
    for line in lines:
        if not line.startswith("\t"):
            current = line.split()[1]
        elif current == ifname:
            groups.add(socket.inet_ntoa(int(line.split()[0], 16).to_bytes(4, "little")))
    return groups


def igmp_from(frames: list[bytes], source: str) -> list:
    packets = [Ether(f) for f in frames]
    return [p[IP] for p in packets if p.haslayer(IP) and p[IP].proto == 2 and p[IP].src == source]


def v3_records(ip) -> list[tuple[int, str]]:
    return [(r.rtype, r.maddr) for r in IGMPv3(bytes(ip.payload)).records]


def query(lab, dst: str, igmp) -> bytes:
    frame = Ether(dst=multicast_mac(dst)) / IP(src=lab.source_addr, dst=dst, ttl=1,
                                              options=[IPOption_Router_Alert()]) / igmp
    return bytes(frame)


def test_reports_queries_and_leave_without_ip_join():
    with chain(n_sinks=1) as lab, Engine(lab.relay_ns) as engine:
        outputs = (Output("239.5.5.5", 6000, lab.relay_out[0]),)
        with Capture(lab.source_ns, lab.source_if, max_seconds=10) as capture:
            first = engine.add_rule(Rule(lab.relay_in, GROUP, 5000, outputs))
            second = engine.add_rule(Rule(lab.relay_in, GROUP, 5001, (Output("239.5.5.5", 6001, lab.relay_out[0]),)))
            time.sleep(1.5)  # the unsolicited report and its repetition one second later
            joined = igmp_from(capture.stop(), lab.relay_in_addr)
        assert [v3_records(p) for p in joined] == [[(4, GROUP)], [(4, GROUP)]]  # CHANGE_TO_EXCLUDE {}, twice
        assert all(p.dst == "224.0.0.22" and p.ttl == 1 for p in joined)
        assert GROUP not in kernel_groups(lab.relay_ns, lab.relay_in), "the kernel joined at the IP level"

        with FrameSender(lab.source_ns, lab.source_if) as sender, \
                Capture(lab.source_ns, lab.source_if, max_seconds=10) as capture:
            sender.send([query(lab, "224.0.0.1", IGMPv3mq(type=0x11, mrcode=5))])  # general, 0.5 s
            time.sleep(1.0)
            answers = igmp_from(capture.stop(), lab.relay_in_addr)
        assert [v3_records(p) for p in answers] == [[(2, GROUP)]]  # MODE_IS_EXCLUDE {}

        # An IGMPv2 group-specific query goes to the group itself, which the
        # IP layer drops (not a member): the relay reads it at the link layer.
        with FrameSender(lab.source_ns, lab.source_if) as sender, \
                Capture(lab.source_ns, lab.source_if, max_seconds=10) as capture:
            sender.send([query(lab, GROUP, IGMP(type=0x11, mrcode=5, gaddr=GROUP))])
            time.sleep(1.0)
            engine.remove_rule(first)  # still needed by the second rule: no leave yet
            time.sleep(0.2)
            engine.remove_rule(second)
            time.sleep(0.3)
            after = igmp_from(capture.stop(), lab.relay_in_addr)
        kinds = [(IGMP(bytes(p.payload)).type, p.dst) for p in after]
        assert kinds == [(0x16, GROUP), (0x17, "224.0.0.2")]  # v2 report to the group, then a v2 leave


def test_stopping_the_relay_leaves_its_groups():
    with chain(n_sinks=1) as lab:
        engine = Engine(lab.relay_ns)
        try:
            engine.add_rule(Rule(lab.relay_in, GROUP, 5000, (Output("239.5.5.5", 6000, lab.relay_out[0]),)))
            with Capture(lab.source_ns, lab.source_if, max_seconds=10) as capture:
                time.sleep(1.2)  # past the repeated join report
                engine.close()
                time.sleep(0.3)
                frames = capture.stop()
        finally:
            engine.close()
        last = igmp_from(frames, lab.relay_in_addr)[-1]
        assert v3_records(last) == [(3, GROUP)]  # CHANGE_TO_INCLUDE {}: a leave
