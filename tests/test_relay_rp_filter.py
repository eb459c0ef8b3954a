"""Strict reverse-path filtering in the relay namespace does not stop the relay.

The engine reads frames from an AF_PACKET socket, below the IP layer, so a
multicast source the relay has no route back to is still relayed even though
the kernel's own IP stack drops the same packets (rp_filter=1).
"""

from __future__ import annotations

import subprocess

from mcr.lab import numbered_payloads
from mcr.rules import Output, Rule

GROUP, PORT = "239.1.1.1", 5000
OUT_GROUP, OUT_PORT = "239.2.2.2", 6000
UNROUTABLE = "192.0.2.77"  # TEST-NET-1: the relay namespace has no route to it
COUNT, SIZE = 1000, 200
CONTROL = 20


def rp_filter_drops(ns: str) -> int:
    """TcpExt IPReversePathFilter of namespace `ns` (packets the IP layer dropped for rp_filter)."""
    text = subprocess.run(["ip", "netns", "exec", ns, "cat", "/proc/net/netstat"], check=True,
                          capture_output=True, text=True, timeout=30).stdout
    lines = [line.split() for line in text.splitlines() if line.startswith("TcpExt:")]
    names, values = lines[0], lines[1]
    return int(values[names.index("IPReversePathFilter")])


def test_unroutable_source_relayed_under_strict_rp_filter(relay_lab) -> None:
    lab = relay_lab()
    c = lab.c
    # The lab turns rp_filter off in every namespace; make the relay strict.
    c.lab.set_sysctl(c.relay_ns, "net.ipv4.conf.all.rp_filter", 1)
    c.lab.set_sysctl(c.relay_ns, f"net.ipv4.conf.{c.relay_in}.rp_filter", 1)

    # A plain socket in the relay namespace, listening on the input group.
    local = lab.udp_sink(c.relay_ns, GROUP, PORT, c.relay_in)

    # Control: from the routable source address the kernel delivers to it...
    lab.send(lab.frames(numbered_payloads(CONTROL, SIZE, stream=1), GROUP, PORT))
    lab.expect_stream(local.receive(CONTROL, timeout=5, idle=0.5), CONTROL, SIZE, stream=1,
                      what="relay-namespace socket, routable source")

    out = Output(OUT_GROUP, OUT_PORT, c.relay_out[0])
    rule_id = lab.engine.add_rule(Rule(c.relay_in, GROUP, PORT, (out,)))
    sink = lab.sink(0, OUT_GROUP, OUT_PORT)
    collector = lab.collect(sink, COUNT, timeout=15)
    rpf_before = rp_filter_drops(c.relay_ns)

    lab.send(lab.frames(numbered_payloads(COUNT, SIZE), GROUP, PORT, src=UNROUTABLE), rate_pps=5000)

    # ...the relay forwards every packet of the unroutable source...
    lab.expect_stream(collector.result(), COUNT, SIZE, what="sink behind the relay")
    stats = lab.wait_relayed({rule_id: COUNT})
    assert stats["rules"][str(rule_id)]["packets"] == COUNT, lab.describe(stats)
    # ...while the kernel's IP layer in the relay namespace drops them all:
    # the setup really exercises rp_filter.
    leaked = local.receive(COUNT, timeout=1.0, idle=0.5)
    assert leaked == [], f"kernel delivered {len(leaked)} unroutable-source datagrams; rp_filter not active"
    assert rp_filter_drops(c.relay_ns) - rpf_before == COUNT
