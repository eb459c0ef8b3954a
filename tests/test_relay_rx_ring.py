"""The input's RX ring: frames wrap around it many times, including frames
held by queued sends (unicast outputs are sendmsg'd from the ring frame and
must be given back to the kernel when that send completes, or the ring
would stop after one turn)."""

from __future__ import annotations

from mcr.lab import numbered_payloads
from mcr.rules import Output, Rule

GROUP, PORT = "239.1.1.1", 5000
RING = 64  # frames; the engine rounds up to whole 64 KiB blocks (7 frames each): 70
COUNT, SIZE = 700, 200  # ten turns of the ring


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
