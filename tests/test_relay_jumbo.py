"""Jumbo frames: a full 9000-byte IP packet is relayed whole."""

from __future__ import annotations

import time

from mcr.lab import numbered_payloads
from mcr.rules import Output, Rule

GROUP, PORT = "239.1.1.1", 5000
OUT_GROUP, OUT_PORT = "239.2.2.2", 6000
MTU = 9000
SIZE = MTU - 20 - 8  # 8972: the largest UDP payload that fits the MTU unfragmented
COUNT = 200


def test_jumbo_payload_relayed_intact(relay_lab) -> None:
    lab = relay_lab(mtu=MTU)
    c = lab.c
    out = Output(OUT_GROUP, OUT_PORT, c.relay_out[0])
    rule_id = lab.engine.add_rule(Rule(c.relay_in, GROUP, PORT, (out,)))
    collector = lab.collect(lab.sink(0, OUT_GROUP, OUT_PORT), COUNT)
    capture = lab.capture(0, max_frames=COUNT + 100)

    lab.send(lab.frames(numbered_payloads(COUNT, SIZE), GROUP, PORT), rate_pps=2000)

    lab.expect_stream(collector.result(), COUNT, SIZE, what="jumbo sink")
    # Not fragmented by the relay: every relayed datagram is one 9014-byte frame.
    # The capture thread may still be reading its socket: wait (bounded) first.
    deadline = time.monotonic() + 3
    while sum(len(f) > 1500 for f in capture.frames) < COUNT and time.monotonic() < deadline:
        time.sleep(0.05)
    relayed = [f for f in capture.stop() if len(f) > 1500]
    assert len(relayed) == COUNT and {len(f) for f in relayed} == {14 + MTU}
    stats = lab.wait_relayed({rule_id: COUNT})
    assert stats["rules"][str(rule_id)]["outputs"][str(out)] == {
        "packets": COUNT, "bytes": COUNT * SIZE, "errors": 0}, lab.describe(stats)
    assert stats["inputs"][c.relay_in]["bytes"] == COUNT * (14 + MTU), lab.describe(stats)
    assert not any(stats["drops"].values()), lab.describe(stats)
