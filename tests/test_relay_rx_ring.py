"""The input's RX ring: frames wrap around it many times, and a slow output
never holds it up (sendmsg outputs read a copy of the payload, not the ring
frame; a ring frame still in use would stop the kernel at it and starve every
rule on that input)."""

from __future__ import annotations

import subprocess

from mcr.lab import numbered_payloads
from mcr.rules import Output, Rule

GROUP, PORT = "239.1.1.1", 5000
RING = 64  # frames; the engine rounds up to whole 64 KiB blocks (39 frames of 1664 bytes each): 78


def test_ring_wraps_with_sendmsg_and_tx_ring_outputs(relay_lab) -> None:
    count, size = 700, 200  # nine turns of the ring
    lab = relay_lab(rx_frames=RING)
    c = lab.c
    unicast = Output(c.sink_addr[0], 6200, c.relay_out[0])  # sendmsg on the UDP socket
    group = Output("239.2.2.2", 6000, c.relay_out[0])  # written into the TX ring
    rule_id = lab.engine.add_rule(Rule(c.relay_in, GROUP, PORT, (unicast, group)))
    by_unicast = lab.collect(lab.sink(0, c.sink_addr[0], 6200), count)
    by_group = lab.collect(lab.sink(0, "239.2.2.2", 6000), count)

    lab.send(lab.frames(numbered_payloads(count, size), GROUP, PORT), rate_pps=5000)

    lab.expect_stream(by_unicast.result(), count, size, what="unicast output")
    lab.expect_stream(by_group.result(), count, size, what="multicast output")
    stats = lab.wait_relayed({rule_id: count})
    inp = stats["inputs"][c.relay_in]
    assert inp["frames"] == count and inp["kernel_drops"] == 0, lab.describe(stats)
    assert stats["rules"][str(rule_id)]["outputs"][str(unicast)]["packets"] == count, lab.describe(stats)


def test_a_stalled_output_does_not_hold_up_the_input(relay_lab) -> None:
    """Rule A's unicast output sits behind a 1 Mbit/s shaper, so its UDP
    socket's send buffer fills and its sends wait; rule B on the same input
    must still relay every packet."""
    count, size = 5000, 1400  # rule A's part, queued in the shaper, outgrows its socket's 8 MB send buffer
    # A ring of 512 frames still wraps twenty times over the 10,000 frames, so
    # a ring frame held by the stalled send would still stop the input; the
    # smallest ring left too little slack for the ASan build's pauses at 10k pps.
    lab = relay_lab(n_sinks=2, rx_frames=512)
    c = lab.c
    subprocess.run(["ip", "netns", "exec", c.relay_ns, "tc", "qdisc", "add", "dev", c.relay_out[0], "root",
                    "tbf", "rate", "1mbit", "burst", "10k", "limit", "64mb"], check=True, timeout=30)
    slow = lab.engine.add_rule(Rule(c.relay_in, GROUP, PORT, (Output(c.sink_addr[0], 6200, c.relay_out[0]),)))
    fast = lab.engine.add_rule(Rule(c.relay_in, "239.1.1.2", PORT, (Output("239.2.2.2", 6000, c.relay_out[1]),)))
    by_fast = lab.collect(lab.sink(1, "239.2.2.2", 6000), count, timeout=20)

    slow_frames = lab.frames(numbered_payloads(count, size, stream=1), GROUP, PORT)
    fast_frames = lab.frames(numbered_payloads(count, size, stream=2), "239.1.1.2", PORT)
    lab.send([f for pair in zip(slow_frames, fast_frames) for f in pair], rate_pps=10000)

    received = by_fast.result()
    # The relay's own counters first: a shortfall there is the relay's; one
    # only at the receiver is the receiving host's (its socket, its veth).
    stats = lab.stats()
    slow_out = stats["rules"][str(slow)]["outputs"]
    assert sum(o["packets"] for o in slow_out.values()) < count, (
        "the shaper did not hold rule A's output back, so this test proved nothing" + lab.describe(stats))
    assert stats["inputs"][c.relay_in]["kernel_drops"] == 0, lab.describe(stats)
    assert stats["rules"][str(fast)]["packets"] == count, lab.describe(stats)
    assert sum(o["packets"] for o in stats["rules"][str(fast)]["outputs"].values()) == count, lab.describe(stats)
    lab.expect_stream(received, count, size, stream=2, what="rule B beside a stalled output")


def test_frames_beyond_the_mtu_the_ring_was_sized_for_are_counted(relay_lab) -> None:
    """Ring frames are sized for the input's MTU when the input is added. A
    frame that outgrows them (the MTU was raised later) is counted as
    truncated, never relayed cut short; the rule keeps relaying the rest."""
    lab = relay_lab()
    c = lab.c
    rule_id = lab.engine.add_rule(Rule(c.relay_in, GROUP, PORT, (Output("239.2.2.2", 6000, c.relay_out[0]),)))
    for ns, ifname in ((c.source_ns, c.source_if), (c.relay_ns, c.relay_in)):
        subprocess.run(["ip", "-n", ns, "link", "set", ifname, "mtu", "9000"], check=True, timeout=30)
    collector = lab.collect(lab.sink(0, "239.2.2.2", 6000), 3, timeout=3, idle=0.5)

    lab.send(lab.frames([b"a" * 100, b"b" * 8000, b"c" * 100], GROUP, PORT), rate_pps=100)

    assert sorted(len(r.payload) for r in collector.result()) == [100, 100]
    stats = lab.wait_stats(lambda s: s["drops"]["truncated"] >= 1)
    assert stats["drops"]["truncated"] == 1 and stats["inputs"][c.relay_in]["frames"] == 3, lab.describe(stats)
    assert stats["rules"][str(rule_id)]["packets"] == 2, lab.describe(stats)
