"""The input's RX ring: frames wrap around it many times, including frames
held by queued sends (unicast outputs are sendmsg'd from the ring frame and
must be given back to the kernel when that send completes, or the ring
would stop after one turn)."""

from __future__ import annotations

import subprocess

from mcr.lab import numbered_payloads
from mcr.rules import Output, Rule

GROUP, PORT = "239.1.1.1", 5000
RING = 64  # frames; the engine rounds up to whole 64 KiB blocks (39 frames of 1664 bytes each): 78
COUNT, SIZE = 700, 200  # nine turns of the ring


def test_ring_wraps_with_held_and_copied_frames(relay_lab) -> None:
    lab = relay_lab(rx_frames=RING)
    c = lab.c
    unicast = Output(c.sink_addr[0], 6200, c.relay_out[0])  # held: sendmsg reads the frame
    group = Output("239.2.2.2", 6000, c.relay_out[0])  # copied into the TX ring
    rule_id = lab.engine.add_rule(Rule(c.relay_in, GROUP, PORT, (unicast, group)))
    unicast_sink = lab.sink(0, c.sink_addr[0], 6200)
    group_sink = lab.sink(0, "239.2.2.2", 6000)
    by_unicast = lab.collect(unicast_sink, COUNT)
    by_group = lab.collect(group_sink, COUNT)

    lab.send(lab.frames(numbered_payloads(COUNT, SIZE), GROUP, PORT), rate_pps=5000)

    lab.expect_stream(by_unicast.result(), COUNT, SIZE, what="unicast output (frames held by sends)")
    lab.expect_stream(by_group.result(), COUNT, SIZE, what="multicast output (frames copied)")
    stats = lab.wait_relayed({rule_id: COUNT})
    inp = stats["inputs"][c.relay_in]
    assert inp["frames"] == COUNT and inp["kernel_drops"] == 0, lab.describe(stats)
    assert stats["rules"][rule_id]["outputs"][str(unicast)]["packets"] == COUNT, lab.describe(stats)


def test_frames_beyond_the_mtu_the_ring_was_sized_for_are_counted(relay_lab) -> None:
    """Ring frames are sized for the input's MTU when the input is added. A
    frame that outgrows them (the MTU was raised later) is counted as
    truncated, never relayed cut short; the rule keeps relaying the rest."""
    lab = relay_lab()
    c = lab.c
    rule_id = lab.engine.add_rule(Rule(c.relay_in, GROUP, PORT, (Output("239.2.2.2", 6000, c.relay_out[0]),)))
    for ns, ifname in ((c.source_ns, c.source_if), (c.relay_ns, c.relay_in)):
        subprocess.run(["ip", "-n", ns, "link", "set", ifname, "mtu", "9000"], check=True, timeout=30)
    sink = lab.sink(0, "239.2.2.2", 6000)
    collector = lab.collect(sink, 3, timeout=3, idle=0.5)

    lab.send(lab.frames([b"a" * 100, b"b" * 8000, b"c" * 100], GROUP, PORT), rate_pps=100)

    assert sorted(len(r.payload) for r in collector.result()) == [100, 100]
    stats = lab.wait_stats(lambda s: s["drops"]["truncated"] >= 1)
    assert stats["drops"]["truncated"] == 1 and stats["inputs"][c.relay_in]["frames"] == 3, lab.describe(stats)
    assert stats["rules"][rule_id]["packets"] == 2, lab.describe(stats)
