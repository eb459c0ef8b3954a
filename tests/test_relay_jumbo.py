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


LARGEST_MTU = 65535  # veth's largest, and the largest a 16-bit length can say


def test_output_with_the_largest_mtu_keeps_its_tx_ring(relay_lab, capfd) -> None:
    """An output whose MTU is 65535 still writes its frames through a TX ring.

    TX ring frames are sized for the MTU up to 9216 bytes (what an input ring
    delivers at most); sized for 65535 they were larger than a ring block, the
    kernel refused the ring (EINVAL, logged as a warning) and every frame took
    its own sendmsg. Frame lengths are kept within 16 bits (cpp/egress.cpp).
    """
    import subprocess

    lab = relay_lab(mtu=MTU)
    c = lab.c
    for ns, ifname in ((c.relay_ns, c.relay_out[0]), (c.sink_ns[0], c.sink_if[0])):
        subprocess.run(["ip", "-n", ns, "link", "set", ifname, "mtu", str(LARGEST_MTU)], check=True, timeout=30)
    out = Output(OUT_GROUP, OUT_PORT, c.relay_out[0])
    rule_id = lab.engine.add_rule(Rule(c.relay_in, GROUP, PORT, (out,)))
    collector = lab.collect(lab.sink(0, OUT_GROUP, OUT_PORT), COUNT)

    lab.send(lab.frames(numbered_payloads(COUNT, SIZE), GROUP, PORT), rate_pps=2000)

    lab.expect_stream(collector.result(), COUNT, SIZE, what=f"sink behind an MTU of {LARGEST_MTU}")
    stats = lab.wait_relayed({rule_id: COUNT})
    assert stats["rules"][str(rule_id)]["outputs"][str(out)] == {
        "packets": COUNT, "bytes": COUNT * SIZE, "errors": 0}, lab.describe(stats)
    assert not any(stats["drops"].values()), lab.describe(stats)
    assert stats["events"]["tx_ring_full"] == 0, stats["events"]
    warnings = [line for line in capfd.readouterr().err.splitlines() if "TX ring" in line]
    assert not warnings, f"the output's TX ring was refused: {warnings}"
