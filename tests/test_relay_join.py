"""The relay joins each rule's group on its input interface (so NICs and
IGMP-snooping switches deliver it) and leaves when the last rule goes."""

from __future__ import annotations

import socket
import time

from mcr.engine import Engine
from scapy.layers.inet import IP
from scapy.layers.l2 import Ether

from mcr.lab import Capture, chain
from mcr.netns import in_netns
from mcr.rules import Output, Rule


def joined_groups(ns: str, ifname: str) -> set[str]:
    """Groups the kernel reports as joined on `ifname` (from /proc/net/igmp)."""
    with in_netns(ns), open("/proc/net/igmp") as table:
        lines = table.read().splitlines()[1:]
    groups, current = set(), None
    for line in lines:
        if not line.startswith("\t"):
            current = line.split()[1]
        elif current == ifname:
            groups.add(socket.inet_ntoa(int(line.split()[0], 16).to_bytes(4, "little")))
    return groups


def test_join_on_add_and_leave_on_remove():
    with chain(n_sinks=1) as lab, Engine(lab.relay_ns) as engine:
        with Capture(lab.source_ns, lab.source_if, max_seconds=5) as capture:
            first = engine.add_rule(Rule(lab.relay_in, "239.4.4.4", 5000, (Output("239.5.5.5", 6000, lab.relay_out[0]),)))
            second = engine.add_rule(Rule(lab.relay_in, "239.4.4.4", 5001, (Output("239.5.5.5", 6001, lab.relay_out[0]),)))
            assert "239.4.4.4" in joined_groups(lab.relay_ns, lab.relay_in)
            time.sleep(0.5)
            frames = capture.stop()
        packets = [Ether(f) for f in frames]
        igmp = [p for p in packets if p.haslayer(IP) and p[IP].proto == 2]  # IGMP is IP protocol 2
        assert any(p[IP].src == lab.relay_in_addr for p in igmp), "no IGMP report from the relay"
        engine.remove_rule(first)
        assert "239.4.4.4" in joined_groups(lab.relay_ns, lab.relay_in)  # still needed by the second rule
        engine.remove_rule(second)
        assert "239.4.4.4" not in joined_groups(lab.relay_ns, lab.relay_in)
