"""QoS: the packet priority a rule or output carries reaches Linux's own
traffic control, and a worker serves priority inputs first.

Judged by the kernel, not by MCR: an nftables chain on the output's egress
hook (where the kernel hands a packet to the qdisc) counts packets by
`meta priority`, and ordinary UDP sockets count what arrives. Low rates
only; the overload figures (an EF stream against a best-effort one at about
twice the no-drop rate) are in benchmarks/qos.py.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time

import pytest
from daemon_support import daemon, wait_for

from mcr.lab import Lab, UdpSender, UdpSink, chain, nft, numbered_payloads, payload_seq, udp_counters

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces, raw sockets)")

COUNT = 200
EF, CS1, CS7 = 46 << 2, 8 << 2, 56 << 2  # TOS bytes: DSCP EF (class 5), CS1 (1) and CS7 (7)
PRIORITIES = ("0:0", "0:1", "0:3", "0:5", "0:6")


def count_priorities(ns: str, dev: str) -> None:
    """An nftables egress chain on `dev` counting UDP packets per priority in PRIORITIES."""
    nft(ns, "add", "table", "netdev", "qos")
    nft(ns, "add", "chain", "netdev", "qos", "out", f"{{ type filter hook egress device {dev} priority 0; }}")
    for priority in PRIORITIES:
        nft(ns, "add", "rule", "netdev", "qos", "out", "meta", "l4proto", "udp", "meta", "priority", priority,
            "counter")


def priority_counts(ns: str) -> dict[str, int]:
    text = nft(ns, "list", "ruleset")
    return {m[0]: int(m[1]) for m in re.findall(r"meta priority (\S+) counter packets (\d+)", text)}


def received(sink: UdpSink, count: int) -> list[tuple[int, int]]:
    return sorted(payload_seq(r.payload) for r in sink.receive(count + 1, timeout=5, idle=0.5))


def numbered(count: int, stream: int = 0) -> list[tuple[int, int]]:
    return [(stream, i) for i in range(count)]


def test_rule_and_output_priorities_and_dscp_classes_reach_the_egress_hook(tmp_path):
    """Rule A gives priority 3 to both outputs but one, which says 0 (and so
    takes the packet path, as outputs without a priority do); rule B classifies by DSCP: EF packets get 5, CS1 1 and CS7 6 (the most a
    worker without CAP_NET_ADMIN may set)."""
    with chain(n_sinks=1) as lab:
        out, sink_ns, sink_if = lab.relay_out[0], lab.sink_ns[0], lab.sink_if[0]
        count_priorities(lab.relay_ns, out)
        path = tmp_path / "mcr.json"
        path.write_text(json.dumps({"workers": 1, "rules": [
            {"input_interface": lab.relay_in, "group": "239.1.1.1", "port": 5000, "priority": 3,
             "outputs": [f"239.2.2.1:6000:{out}", f"239.2.2.2:6000:{out}:priority=0"]},
            {"input_interface": lab.relay_in, "group": "239.1.1.2", "port": 5000, "priority": "dscp",
             "outputs": [f"239.2.2.3:6000:{out}"]}]}))
        before = udp_counters(sink_ns)
        with daemon(lab, tmp_path, config=path) as d, \
                UdpSink(sink_ns, "239.2.2.1", 6000, sink_if) as classed, \
                UdpSink(sink_ns, "239.2.2.2", 6000, sink_if) as plain, \
                UdpSink(sink_ns, "239.2.2.3", 6000, sink_if) as by_dscp:
            wait_for(lambda: len(d.client.mroute()) == 2, 5, "both rules installed")
            time.sleep(0.5)  # the receivers' joins reach the relay's link
            counts_before = priority_counts(lab.relay_ns)
            with UdpSender(lab.source_ns, lab.source_if, ttl=8) as sender:
                assert sender.send(numbered_payloads(COUNT, 100), "239.1.1.1", 5000, rate_pps=2000) == COUNT
            for stream, tos, n in ((0, EF, COUNT), (1, CS1, COUNT // 2), (2, CS7, COUNT // 4)):
                with UdpSender(lab.source_ns, lab.source_if, ttl=8, tos=tos) as sender:
                    assert sender.send(numbered_payloads(n, 100, stream), "239.1.1.2", 5000, rate_pps=2000) == n
            assert received(classed, COUNT) == numbered(COUNT)
            assert received(plain, COUNT) == numbered(COUNT)
            assert received(by_dscp, 2 * COUNT) == numbered(COUNT) + numbered(COUNT // 2, 1) + numbered(COUNT // 4, 2)
            counts = {k: v - counts_before.get(k, 0) for k, v in priority_counts(lab.relay_ns).items()}
        # nft names priority 0 "none": the priority=0 output's packets, and only those.
        assert counts == {"none": COUNT, "0:1": COUNT // 2, "0:3": COUNT, "0:5": COUNT, "0:6": COUNT // 4}, counts
        assert udp_counters(sink_ns)["InCsumErrors"] == before["InCsumErrors"]


def test_a_stopped_worker_serves_the_priority_input_first_when_it_resumes(tmp_path):
    """Two inputs, the best-effort one first in the config. While the worker
    is stopped both rings fill; once it runs again, a pass empties the
    priority input before the best-effort one gets its budget, so every
    priority packet reaches the receiver before the first best-effort one.
    (Without priorities the worker reads the inputs in turn, 256 frames each,
    and the two streams interleave.)"""
    with Lab(prefix="mcrq") as lab:
        be_src, ef_src, relay, sink = (lab.add_namespace(r) for r in ("be", "ef", "relay", "sink"))
        be_if, be_in = lab.add_link(be_src, relay, "10.202.0.2/24", "10.202.0.1/24")
        ef_if, ef_in = lab.add_link(ef_src, relay, "10.202.1.2/24", "10.202.1.1/24")
        out, sink_if = lab.add_link(relay, sink, "10.202.2.1/24", "10.202.2.2/24")
        for ns, ifname in ((be_src, be_if), (ef_src, ef_if), (sink, sink_if)):
            lab.add_route(ns, "224.0.0.0/4", ifname)

        class Topology:  # what daemon_support needs
            relay_ns = relay

        path = tmp_path / "mcr.json"
        path.write_text(json.dumps({"workers": 1, "rules": [
            {"input_interface": be_in, "group": "239.1.1.1", "port": 5000, "outputs": [f"239.2.2.2:6000:{out}"]},
            {"input_interface": ef_in, "group": "239.1.1.5", "port": 5000, "priority": 5,
             "outputs": [f"239.2.2.2:6000:{out}"]}]}))
        count = 1000  # of each: less than an input ring (2,048 frames), more than a pass's budget (256)
        with daemon(Topology, tmp_path, config=path) as d, UdpSink(sink, "239.2.2.2", 6000, sink_if) as receiver:
            wait_for(lambda: len(d.client.mroute()) == 2, 5, "both rules installed")
            with UdpSender(be_src, be_if, ttl=8) as be, UdpSender(ef_src, ef_if, ttl=8, tos=EF) as ef:
                for sender, stream in ((be, 0), (ef, 1)):  # a primer of each: the path is up
                    sender.send(numbered_payloads(1, 64, stream=stream + 2), "239.1.1.5" if stream else "239.1.1.1",
                                5000)
                primers = receiver.receive(2, timeout=5, idle=0.5)
                assert len(primers) == 2, primers
                (worker,) = d.worker_pids()
                os.kill(worker, signal.SIGSTOP)
                try:
                    assert be.send(numbered_payloads(count, 64, stream=0), "239.1.1.1", 5000, rate_pps=20000) == count
                    assert ef.send(numbered_payloads(count, 64, stream=1), "239.1.1.5", 5000, rate_pps=20000) == count
                    time.sleep(0.1)  # the last frames reach the rings
                finally:
                    os.kill(worker, signal.SIGCONT)
                order = [payload_seq(r.payload) for r in receiver.receive(2 * count + 1, timeout=5, idle=0.5)]
        assert sorted(order) == sorted([(0, i) for i in range(count)] + [(1, i) for i in range(count)])
        first_be = next(i for i, (stream, _) in enumerate(order) if stream == 0)
        assert first_be == count, f"{count - first_be} priority packets came after the first best-effort one"
