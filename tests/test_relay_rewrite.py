"""Destination rewriting: multicast to unicast, and a new group and port."""

from __future__ import annotations

import time

from mcr.lab import numbered_payloads, udp_packets
from mcr.rules import Output, Rule

GROUP, PORT = "239.1.1.1", 5000


def test_multicast_to_unicast(relay_lab) -> None:
    count, size = 1000, 400
    lab = relay_lab()
    c = lab.c
    out = Output(c.sink_addr[0], 6200, c.relay_out[0])
    rule_id = lab.engine.add_rule(Rule(c.relay_in, GROUP, PORT, (out,)))
    sink = lab.sink(0, c.sink_addr[0], 6200)
    collector = lab.collect(sink, count)

    # The first datagrams wait in the relay's neighbour queue while ARP
    # resolves the sink's address; they must not be lost.
    lab.send(lab.frames(numbered_payloads(count, size), GROUP, PORT), rate_pps=5000)

    received = collector.result()
    lab.expect_stream(received, count, size, what=f"unicast sink {c.sink_addr[0]}:6200")
    assert {r.src[0] for r in received} == {c.relay_out_addr[0]}
    stats = lab.wait_relayed({rule_id: count})
    assert stats["rules"][str(rule_id)]["outputs"][str(out)] == {
        "packets": count, "bytes": count * size, "errors": 0}, lab.describe(stats)


def test_group_and_port_rewrite(relay_lab) -> None:
    count, size = 500, 120
    new_group, new_port = "239.9.9.9", 6100
    lab = relay_lab()
    c = lab.c
    rule_id = lab.engine.add_rule(Rule(c.relay_in, GROUP, PORT, (Output(new_group, new_port, c.relay_out[0]),)))
    new_sink = lab.sink(0, new_group, new_port)
    # Listeners on the old group/port and on the old group with the new
    # port: neither may get anything.
    old_sink = lab.sink(0, GROUP, PORT)
    mixed_sink = lab.sink(0, GROUP, new_port)
    capture = lab.capture(0)
    collector = lab.collect(new_sink, count)

    lab.send(lab.frames(numbered_payloads(count, size), GROUP, PORT), rate_pps=5000)

    lab.expect_stream(collector.result(), count, size, what=f"sink on {new_group}:{new_port}")
    # Everything is in the capture once the sink has it, but let the capture
    # thread catch up (bounded).
    deadline = time.monotonic() + 3
    while len(udp_packets(capture.frames)) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    udp = udp_packets(capture.stop())
    destinations = {(p.dst, p.dport) for p in udp}
    assert destinations == {(new_group, new_port)}, f"UDP destinations seen on the sink link: {destinations}"
    assert len(udp) == count, f"{len(udp)} UDP packets on the sink link, expected {count}"
    assert all(p.src == c.relay_out_addr[0] for p in udp)
    assert old_sink.receive(1, timeout=0.3) == []
    assert mixed_sink.receive(1, timeout=0.3) == []
    stats = lab.wait_relayed({rule_id: count})
    assert stats["rules"][str(rule_id)]["packets"] == count, lab.describe(stats)
