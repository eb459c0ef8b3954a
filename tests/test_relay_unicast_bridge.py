"""Two relays carry a multicast stream across a routed network that has none.

    source --239.1.1.1--> A --unicast 10.210.2.2:9000--> hop (router, no
    multicast) --> B --239.5.5.5--> receivers r1, r2

A relays multicast to a unicast destination; B's rule takes that unicast
destination (its own address and port) as input and sends it on as
multicast. Everything is judged with ordinary sockets: a kernel UDP sender
at the source, kernel receivers, and the ICMP counters of B (the host must
not answer the unicast stream with port unreachable).
"""

from __future__ import annotations

import subprocess

from mcr.engine import Engine
from mcr.lab import Lab, UdpSender, UdpSink, in_netns, numbered_payloads, udp_counters
from mcr.rules import Output, Rule

GROUP, PORT = "239.1.1.1", 5000
OUT_GROUP, OUT_PORT = "239.5.5.5", 7000
B_ADDR, B_PORT = "10.210.2.2", 9000
COUNT, SIZE = 1000, 400


def icmp_counters(ns: str) -> dict[str, int]:
    with in_netns(ns), open("/proc/thread-self/net/snmp") as f:
        names, values = [line.split() for line in f if line.startswith("Icmp:")][:2]
    return dict(zip(names[1:], map(int, values[1:])))


def test_multicast_to_unicast_to_multicast() -> None:
    from conftest import Collector, netns_names

    lab = Lab("mcru")
    engines: list[Engine] = []
    closers = []
    try:
        src, a, hop, b, r1, r2 = (lab.add_namespace(role) for role in ("src", "a", "hop", "b", "r1", "r2"))
        src_if, a_in = lab.add_link(src, a, "10.210.0.2/24", "10.210.0.1/24")
        a_out, hop_a = lab.add_link(a, hop, "10.210.1.1/24", "10.210.1.2/24")
        hop_b, b_in = lab.add_link(hop, b, "10.210.2.1/24", f"{B_ADDR}/24")
        b_out1, r1_if = lab.add_link(b, r1, "10.210.3.1/24", "10.210.3.2/24")
        b_out2, r2_if = lab.add_link(b, r2, "10.210.4.1/24", "10.210.4.2/24")
        lab.add_route(src, "224.0.0.0/4", src_if)
        for ns, ifname in ((r1, r1_if), (r2, r2_if)):
            lab.add_route(ns, "224.0.0.0/4", ifname)
        lab.set_sysctl(hop, "net.ipv4.ip_forward", 1)
        subprocess.run(["ip", "-n", a, "route", "add", "10.210.2.0/24", "via", "10.210.1.2"], check=True, timeout=30)
        # B can answer A (so it would send ICMP port unreachable if nothing held the port).
        subprocess.run(["ip", "-n", b, "route", "add", "10.210.1.0/24", "via", "10.210.2.1"], check=True, timeout=30)

        engine_a, engine_b = Engine(a), Engine(b)
        engines += [engine_a, engine_b]
        engine_a.add_rule(Rule(a_in, GROUP, PORT, (Output(B_ADDR, B_PORT, a_out),)))
        rule_b = engine_b.add_rule(Rule(b_in, B_ADDR, B_PORT, (Output(OUT_GROUP, OUT_PORT, b_out1),
                                                               Output(OUT_GROUP, OUT_PORT, b_out2))))
        sinks = [UdpSink(r1, OUT_GROUP, OUT_PORT, r1_if), UdpSink(r2, OUT_GROUP, OUT_PORT, r2_if)]
        closers += [s.close for s in sinks]
        before = {ns: udp_counters(ns) for ns in (r1, r2)}
        icmp_before = icmp_counters(b)
        collectors = [Collector(s, COUNT + 1, timeout=10, idle=1.0) for s in sinks]
        with UdpSender(src, src_if, ttl=8) as sender:
            assert sender.send(numbered_payloads(COUNT, SIZE), GROUP, PORT, rate_pps=5000) == COUNT

        for ns, collector in zip((r1, r2), collectors):
            received = collector.result()
            seqs = sorted(int.from_bytes(r.payload[4:8], "big") for r in received)
            assert seqs == list(range(COUNT)), f"{ns}: {len(received)} of {COUNT} arrived"
            assert all(r.payload == p for r, p in zip(sorted(received, key=lambda r: r.payload[4:8]),
                                                      numbered_payloads(COUNT, SIZE)))
            assert udp_counters(ns)["InCsumErrors"] == before[ns]["InCsumErrors"]
        stats = engine_b.stats()
        assert stats["rules"][str(rule_b)]["packets"] == COUNT, stats
        icmp = icmp_counters(b)
        assert icmp["OutDestUnreachs"] == icmp_before["OutDestUnreachs"], \
            "B's kernel answered the unicast stream with ICMP destination unreachable"
    finally:
        for close in closers:
            close()
        for engine in engines:
            engine.close()
        namespaces = set(lab.namespaces)
        lab.close()
        assert not (namespaces & netns_names())
