"""The relay never reads back what it sent: its own transmissions on an
interface that is also an input do not match rules there (no loops)."""

from __future__ import annotations

from mcr.engine import Engine
from mcr.lab import FrameSender, UdpSink, chain, numbered_payloads, udp_frame
from mcr.rules import Output, Rule


def test_own_transmissions_are_not_relayed_again():
    packets = 300
    with chain(n_sinks=1) as lab, Engine(lab.relay_ns) as engine:
        # Rule A sends out of relay_out[0]; rule B listens on that very interface
        # for what A sends. Only frames arriving from the sink side may match B.
        a = engine.add_rule(Rule(lab.relay_in, "239.1.1.1", 5000, (Output("239.7.7.7", 7000, lab.relay_out[0]),)))
        b = engine.add_rule(Rule(lab.relay_out[0], "239.7.7.7", 7000, (Output("239.8.8.8", 8000, lab.relay_in),)))
        with UdpSink(lab.sink_ns[0], "239.7.7.7", 7000, lab.sink_if[0]) as sink:
            frames = [udp_frame(lab.source_addr, "239.1.1.1", 4000, 5000, p) for p in numbered_payloads(packets, 64)]
            with FrameSender(lab.source_ns, lab.source_if) as sender:
                sender.send(frames, rate_pps=5000)
            assert len(sink.receive(packets, timeout=10)) == packets
        stats = engine.stats()
    assert stats["rules"][str(a)]["packets"] == packets
    assert stats["rules"][str(b)]["packets"] == 0, stats
    # Only the sink's IGMP reports arrive on relay_out[0] (counted as not_udp);
    # none of the relay's own 300 transmissions do.
    assert stats["inputs"][lab.relay_out[0]]["frames"] == stats["drops"]["not_udp"] < packets, stats
