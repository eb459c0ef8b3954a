"""Partial checksums leave with a correct UDP checksum on the wire.

A kernel UDP sender's frames reach the relay CHECKSUM_PARTIAL; the relay
asks for checksum offload in the virtio header (see cpp/egress.cpp). On a
veth with offload on, the receiver trusts the partial checksum as the
kernel's own traffic; to see the finished checksum on the wire, the relay's
output here has transmit checksumming off (`ethtool -K IF tx off`), so the
kernel computes it in software before the frame leaves, and a capture on
the sink checks every one. The multicast packet path and keep-source are
both written by the engine; unicast leaves through the kernel's UDP socket.
"""

from __future__ import annotations

import subprocess

import pytest
from scapy.layers.inet import IP, UDP

from mcr.lab import UdpSender, numbered_payloads, udp_counters, udp_packets
from mcr.rules import Output, Rule

GROUP, PORT = "239.1.1.1", 5000
COUNT, SIZE = 300, 333  # an odd size: the checksum's last word is padded


def correct_udp_checksum(ip: IP) -> bool:
    rebuilt = ip.copy()
    del rebuilt[UDP].chksum
    return IP(bytes(rebuilt))[UDP].chksum == ip[UDP].chksum


@pytest.mark.parametrize("offload", ["on", "off"])
def test_partial_checksums_are_completed(relay_lab, offload: str) -> None:
    lab = relay_lab()
    c = lab.c
    subprocess.run(["ip", "netns", "exec", c.relay_ns, "ethtool", "-K", c.relay_out[0], "tx", offload],
                   check=True, timeout=30, capture_output=True)
    outputs = (Output("239.2.2.2", 6000, c.relay_out[0]),
               Output("239.2.2.3", 6001, c.relay_out[0], keep_source=True),
               Output(c.sink_addr[0], 6002, c.relay_out[0]))
    rule_id = lab.engine.add_rule(Rule(c.relay_in, GROUP, PORT, outputs))
    sinks = [lab.udp_sink(c.sink_ns[0], o.destination, o.port, c.sink_if[0] if o.port != 6002 else None)
             for o in outputs]
    collectors = [lab.collect(s, COUNT + 1, timeout=5, idle=0.5) for s in sinks]
    capture = lab.capture(0)
    before = udp_counters(c.sink_ns[0])
    with UdpSender(c.source_ns, c.source_if, ttl=8) as sender:
        assert sender.send(numbered_payloads(COUNT, SIZE), GROUP, PORT, rate_pps=3000) == COUNT

    for o, collector in zip(outputs, collectors):
        lab.expect_stream(collector.result(), COUNT, SIZE, what=f"output {o}")
    assert udp_counters(c.sink_ns[0])["InCsumErrors"] == before["InCsumErrors"]
    frames = capture.stop()
    for o in outputs:
        packets = udp_packets(frames, dst=o.destination, dport=o.port)
        assert len(packets) == COUNT, f"captured {len(packets)} of {COUNT} for {o}"
        if offload == "off":  # the kernel finished every checksum before the frame left
            wrong = [p for p in packets if not correct_udp_checksum(p)]
            assert not wrong, f"{len(wrong)} frames for {o} left with a wrong UDP checksum"
    stats = lab.wait_relayed({rule_id: COUNT})
    assert stats["rules"][str(rule_id)]["packets"] == COUNT, lab.describe(stats)
